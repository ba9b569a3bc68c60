//! sluice admin api
