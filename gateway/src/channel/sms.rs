//! The SMS channel: SMPP 3.4 towards SMSCs.

pub mod text;
