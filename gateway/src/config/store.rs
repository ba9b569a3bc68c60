//! `[store]`: where the daemon keeps its state.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub engine: String,
    pub path: PathBuf,
    pub url: Option<String>,
    /// Free bytes on the data directory's disk below which writes are
    /// refused (and sending pauses) until space is freed.
    pub min_free_bytes: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            engine: "embedded".into(),
            path: PathBuf::from("./sluice-data"),
            url: None,
            min_free_bytes: store::embedded::DEFAULT_RESERVE,
        }
    }
}

impl StoreConfig {
    pub(super) fn problems(&self) -> Vec<String> {
        match self.engine.as_str() {
            "embedded" => Vec::new(),
            "redis" => {
                vec!["store.engine: the redis engine is not available in this build yet".into()]
            }
            other => vec![format!(
                "store.engine: `{other}` is not `embedded` or `redis`"
            )],
        }
    }
}
