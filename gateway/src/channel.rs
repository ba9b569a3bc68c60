//! Upstream channels. Each send ends in a [`Delivery`](crate::domain::Delivery)
//! that the rules turn into an outcome: record success, fail for good, retry
//! later, or slow the whole upstream down.

pub mod email;
pub mod mail;
pub mod sms;
pub mod smtp;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use crate::domain::CampaignRecord;

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
