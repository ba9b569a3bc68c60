//! Upstream channels. Each send ends in a [`Delivery`] that says what the
//! dispatcher must do next: record success, fail for good, retry later, or
//! slow the whole upstream down.

pub mod email;
pub mod mail;
pub mod sms;
pub mod smtp;

use std::time::Duration;

use crate::domain::Upstream;

/// The upstream's answer to one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// Accepted upstream; `reply` is what it said (e.g. `250 2.0.0 queued as X`),
    /// `upstream` the SMSC's ids for the parts (SMS only).
    Accepted {
        reply: String,
        upstream: Option<Upstream>,
    },
    /// Refused for good (5xx).
    Permanent { reply: String, code: Option<u16> },
    /// Try again later (4xx, connection lost, timeout).
    Transient {
        reply: String,
        retry_after: Option<Duration>,
    },
    /// Never sent: no upstream could take it now (none bound, or throttled
    /// for longer than the lease allows). Not an attempt: it waits, no fact.
    Unsent {
        reply: String,
        retry_after: Duration,
    },
    /// The upstream asked us to slow down; not a failure of this message.
    Throttled { retry_after: Duration },
}
