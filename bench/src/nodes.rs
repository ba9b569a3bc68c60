//! Daemons of a benchmark's own, in its process: started from their
//! configurations, reached through their APIs, stopped together.

use gateway::config::Config;
use tokio_util::sync::CancellationToken;

use crate::http::Api;

pub struct Nodes {
    shutdown: CancellationToken,
    running: Vec<gateway::Running>,
    /// Each node's API, in the order of the configurations.
    pub apis: Vec<Api>,
}

impl Nodes {
    /// A daemon per configuration.
    pub async fn start(configs: &[Config]) -> anyhow::Result<Self> {
        let shutdown = CancellationToken::new();
        let mut running = Vec::with_capacity(configs.len());
        for config in configs {
            running.push(gateway::start(config.clone(), shutdown.clone()).await?);
        }
        let apis = running.iter().map(|r| Api::new(r.api)).collect();
        Ok(Self {
            shutdown,
            running,
            apis,
        })
    }

    /// Stops them all, and waits until each has.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for node in self.running {
            node.stopped().await;
        }
    }
}
