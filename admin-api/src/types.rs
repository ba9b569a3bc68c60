//! Versioned wire types. Only ever extended: CRMs code against them.

pub mod v1;
