//! The Redis engine on a Redis Cluster of three masters that take TLS
//! only (`rediss://`, the cluster bus too), its CA given in the store's
//! options (`store.tls_ca_file`) rather than the system's: the whole
//! store contract.

mod support;

use std::sync::Arc;

use async_trait::async_trait;
use store::{Store, contract::Harness};
use support::RedisCluster;

struct TlsClusterHarness(RedisCluster);

#[async_trait]
impl Harness for TlsClusterHarness {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(
            self.0
                .open("contract")
                .await
                .expect("connect to the cluster over TLS"),
        )
    }
}

store::contract_suite!(TlsClusterHarness(RedisCluster::start_tls()));
