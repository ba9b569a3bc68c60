//! `[api]`: the CRM and administrator HTTP API.

use std::{net::SocketAddr, path::PathBuf};

use serde::Deserialize;

use super::Listen;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Api {
    /// `crm:TOKEN,admin:TOKEN`; `SLUICE_API_TOKENS` overrides it.
    pub tokens: String,
    pub max_body_bytes: usize,
    /// Bytes of bodies read whole that every request together may hold.
    pub max_body_memory: usize,
    /// PEM certificate chain and key: the listener speaks TLS with them
    /// (read again on SIGHUP).
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
}

impl Default for Api {
    fn default() -> Self {
        Self {
            tokens: String::new(),
            max_body_bytes: 256 * 1024 * 1024,
            max_body_memory: 512 * 1024 * 1024,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

impl Api {
    /// Its problems; an API without tokens must listen on loopback only.
    pub(super) fn problems(&self, listen: &Listen) -> Vec<String> {
        let mut problems = Vec::new();
        match admin_api::Tokens::parse(&self.tokens) {
            Err(e) => problems.push(format!("api.tokens: {e}")),
            Ok(tokens) if tokens.is_open() => {
                if listen
                    .api
                    .parse::<SocketAddr>()
                    .is_ok_and(|a| !a.ip().is_loopback())
                {
                    problems.push(format!(
                        "listen.api: `{}` is not loopback, so API tokens are required (SLUICE_API_TOKENS)",
                        listen.api
                    ));
                }
            }
            Ok(_) => {}
        }
        if self.max_body_bytes == 0 {
            problems.push("api.max_body_bytes: must be > 0".into());
        }
        if self.max_body_memory < self.max_body_bytes {
            problems.push(format!(
                "api.max_body_memory: {} is less than api.max_body_bytes ({}): no body that large could be read",
                self.max_body_memory, self.max_body_bytes
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn an_open_api_must_stay_on_loopback() {
        let open =
            Config::from_toml("[listen]\napi = \"0.0.0.0:7800\"\n", Vec::new()).expect("parse");
        assert!(
            open.validate()
                .expect_err("open")
                .to_string()
                .contains("tokens are required")
        );
        let env = vec![("SLUICE_API_TOKENS".to_owned(), "crm:x".to_owned())];
        let closed = Config::from_toml("[listen]\napi = \"0.0.0.0:7800\"\n", env).expect("parse");
        closed.validate().expect("tokens set");
    }

    #[test]
    fn the_body_memory_must_hold_one_largest_body() {
        let small = Config::from_toml(
            "[api]\nmax_body_bytes = 1000\nmax_body_memory = 999\n",
            Vec::new(),
        )
        .expect("parse");
        let error = small.validate().expect_err("too small").to_string();
        assert!(
            error.contains("api.max_body_memory: 999 is less than api.max_body_bytes (1000)"),
            "{error}"
        );
        Config::from_toml("[api]\nmax_body_memory = 268435456\n", Vec::new())
            .expect("parse")
            .validate()
            .expect("equal to the largest body");
    }
}
