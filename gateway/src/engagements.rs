//! What recipients did (clicks, opens, unsubscribes, opt-outs), recorded in
//! the store and counted in `sluice_engagements_total` once recorded: the
//! one way the tracking endpoint and the SMS intake record them.

use std::sync::Arc;

use domain::{Engaged, Engagement};
use store::Store;

use crate::metrics::{EngagementLabels, Metrics};

#[derive(Clone)]
pub struct EngagementLog {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl EngagementLog {
    pub fn new(store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Self {
        Self { store, metrics }
    }

    /// Records `items` (durable when it returns `Ok`), then counts them.
    pub async fn record(&self, items: Vec<Engaged>) -> store::Result<()> {
        let mut per_kind = [0u64; Engagement::ALL.len()];
        for item in &items {
            if let Some(i) = Engagement::ALL.iter().position(|&k| k == item.kind) {
                per_kind[i] += 1;
            }
        }
        self.store.engage(items).await?;
        for (kind, n) in Engagement::ALL.into_iter().zip(per_kind) {
            if n > 0 {
                self.metrics
                    .engagements
                    .get_or_create(&EngagementLabels {
                        kind: kind.as_str(),
                    })
                    .inc_by(n);
            }
        }
        Ok(())
    }
}
