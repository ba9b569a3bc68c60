//! The store's series, read from the store at each scrape:
//! `sluice_store_writable` (1 while the store takes writes, 0 while it
//! refuses them: a full disk, Redis lost, its replicas lagging), and
//! `sluice_store_requests_total`, requests sent to the store's server (the
//! Redis engine; a pipeline or a script counts once; the embedded engine
//! has no server: no series).

use std::sync::Arc;

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge},
};
use store::Store;

pub struct StoreSeries(pub Arc<dyn Store>);

impl std::fmt::Debug for StoreSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreSeries")
    }
}

impl Collector for StoreSeries {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let writable = ConstGauge::new(i64::from(self.0.write_refusal().is_none()));
        let e = encoder.encode_descriptor(
            "sluice_store_writable",
            "1 while the store takes writes, 0 while it refuses them (/readyz says why)",
            None,
            writable.metric_type(),
        )?;
        writable.encode(e)?;
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
