//! `[tracking]`: the public listener for opens, clicks and unsubscribes.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tracking {
    /// What links in messages point to.
    pub base_url: String,
    /// Environment variable with the signing keys, `ID:BASE64SECRET[,ID:SECRET...]`
    /// (first signs, others still verify); without it a key is generated
    /// once and kept in the store.
    pub keys_env: String,
    /// Most connections the public tracking listener keeps open; beyond it
    /// new ones wait until one closes. Keep it below the process's open-file
    /// limit (`ulimit -n`) with room for the store, relays and SMSCs.
    pub max_connections: usize,
    /// PEM certificate chain and key: the listener speaks TLS with them
    /// (read again on SIGHUP).
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
}

/// Most connections `tracking.max_connections` may allow.
pub const MAX_TRACKING_CONNECTIONS: usize = 1_000_000;

impl Default for Tracking {
    fn default() -> Self {
        Self {
            base_url: "http://127.0.0.1:7801".into(),
            keys_env: "SLUICE_TRACKING_KEYS".into(),
            max_connections: 4096,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

impl Tracking {
    pub(super) fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !self.base_url.starts_with("http://") && !self.base_url.starts_with("https://") {
            problems.push(format!(
                "tracking.base_url: `{}` is not an http(s) URL",
                self.base_url
            ));
        }
        if !(1..=MAX_TRACKING_CONNECTIONS).contains(&self.max_connections) {
            problems.push(format!(
                "tracking.max_connections: must be 1..={MAX_TRACKING_CONNECTIONS}"
            ));
        }
        problems
    }
}
