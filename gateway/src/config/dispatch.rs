//! `[dispatch]`: how many messages are claimed and sent at once.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dispatch {
    /// Messages being sent at once, over all campaigns.
    pub concurrency: usize,
    /// How long a claimed message stays leased before it may be claimed again.
    pub lease_secs: u64,
    /// Messages claimed at once.
    pub claim_batch: usize,
}

impl Default for Dispatch {
    fn default() -> Self {
        Self {
            concurrency: 256,
            lease_secs: 300,
            claim_batch: 256,
        }
    }
}

impl Dispatch {
    pub(super) fn problems(&self) -> Vec<String> {
        if self.concurrency == 0 || self.claim_batch == 0 || self.lease_secs == 0 {
            vec!["dispatch.concurrency, claim_batch and lease_secs must be > 0".into()]
        } else {
            Vec::new()
        }
    }
}
