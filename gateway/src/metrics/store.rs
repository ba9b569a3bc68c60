//! `sluice_store_requests_total`: requests sent to the store's server (the
//! Redis engine; a pipeline or a script counts once), read from the store
//! at each scrape. The embedded engine has no server: no series.

use std::sync::Arc;

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::counter::ConstCounter,
};
use store::Store;

pub struct StoreRequests(pub Arc<dyn Store>);

impl std::fmt::Debug for StoreRequests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreRequests")
    }
}

impl Collector for StoreRequests {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some(requests) = self.0.requests() {
            let metric = ConstCounter::new(requests);
            let e = encoder.encode_descriptor(
                "sluice_store_requests",
                "Requests sent to the store's server (a pipeline or a script is one)",
                None,
                metric.metric_type(),
            )?;
            metric.encode(e)?;
        }
        Ok(())
    }
}
