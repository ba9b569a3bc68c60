//! `[listen]`: the addresses the daemon binds.

use std::net::SocketAddr;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Listen {
    pub api: String,
    pub tracking: String,
    pub bounce: String,
}

impl Default for Listen {
    fn default() -> Self {
        Self {
            api: "127.0.0.1:7800".into(),
            tracking: "127.0.0.1:7801".into(),
            bounce: "127.0.0.1:2525".into(),
        }
    }
}

impl Listen {
    pub(super) fn problems(&self) -> Vec<String> {
        [
            ("listen.api", &self.api),
            ("listen.tracking", &self.tracking),
            ("listen.bounce", &self.bounce),
        ]
        .into_iter()
        .filter(|(_, addr)| addr.parse::<SocketAddr>().is_err())
        .map(|(key, addr)| format!("{key}: `{addr}` is not an IP:port address"))
        .collect()
    }
}
