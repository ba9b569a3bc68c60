//! Upstream channels. Each send ends in a [`Delivery`] that says what the
//! dispatcher must do next: record success, fail for good, retry later, or
//! slow the whole upstream down.

pub mod email;
pub mod mail;
pub mod sms;
pub mod smtp;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::domain::{CampaignRecord, Upstream};

/// A campaign's content parsed once, per campaign number: content is fixed
/// once a campaign starts, so the parse is kept for every later message.
pub struct Parsed<T>(Mutex<HashMap<u32, Arc<T>>>);

impl<T> Default for Parsed<T> {
    fn default() -> Self {
        Self(Mutex::new(HashMap::new()))
    }
}

impl<T> Parsed<T> {
    /// The campaign's parsed content, parsing it with `parse` the first time.
    pub fn get(
        &self,
        campaign: &CampaignRecord,
        parse: impl FnOnce(&CampaignRecord) -> Result<T, String>,
    ) -> Result<Arc<T>, String> {
        let mut cache = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(t) = cache.get(&campaign.seq) {
            return Ok(t.clone());
        }
        let parsed = Arc::new(parse(campaign)?);
        cache.insert(campaign.seq, parsed.clone());
        Ok(parsed)
    }
}

/// The upstream's answer to one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// Accepted upstream; `reply` is what it said (e.g. `250 2.0.0 queued as X`),
    /// `upstream` the SMSC's ids for the parts (SMS only).
    Accepted {
        reply: String,
        upstream: Option<Upstream>,
    },
    /// Cannot be sent, ever (e.g. a template field the participant lacks,
    /// an SMSC's permanent error).
    Permanent { reply: String },
    /// An SMTP relay refused it, answering the command of `phase` with
    /// `code` (4xx or 5xx). The bounce rules read `reply` and `phase` ("user
    /// unknown" at MAIL FROM is about our sender, not the recipient): a hard
    /// bounce is final, a soft one or a 4xx is tried again while attempts
    /// are left.
    Refused {
        reply: String,
        code: u16,
        phase: bounce::Phase,
    },
    /// Try again later (connection lost, timeout, an SMSC's temporary error).
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
