//! SMPP 3.4 as sluice's ESME speaks it, below the gateway's channel: a
//! session that windows requests over one connection ([`session`]), what
//! command statuses mean for a message ([`status`]), GSM 03.38 and UCS-2
//! encoding with concatenation ([`text`]), and what an SMSC's `deliver_sm`
//! says (a delivery receipt or a handset's text, [`inbound`]).
//!
//! Binding, reconnecting, throttling and matching receipts to messages are
//! the gateway's (`gateway::channel::sms`).

// Tests may unwrap: the workspace denies `unwrap_used` in library code only.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod inbound;
mod pdus;
pub mod session;
pub mod status;
pub mod text;

#[cfg(any(test, feature = "testing"))]
pub mod testing;
