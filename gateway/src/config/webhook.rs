//! `[[webhooks]]`: the endpoints events are posted to.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    pub url: String,
    /// Environment variable holding the HMAC secret.
    pub secret_env: String,
    #[serde(default = "default_webhook_batch")]
    pub batch: usize,
    /// PEM file of the CAs an https endpoint's certificate must chain to,
    /// instead of the system's trust store (e.g. a CRM behind a private CA).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl Webhook {
    /// Whether the endpoint is spoken to over TLS (its URL's scheme).
    pub fn is_https(&self) -> bool {
        self.url
            .parse::<hyper::Uri>()
            .is_ok_and(|u| u.scheme_str() == Some("https"))
    }

    /// The problems of this webhook, `at` being where it is in the file.
    pub(super) fn problems(&self, at: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let web = self
            .url
            .parse::<hyper::Uri>()
            .is_ok_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some());
        if !web {
            problems.push(format!(
                "{at}.url: `{}` must be an http:// or https:// URL",
                self.url
            ));
        }
        if self.ca_file.is_some() && !self.is_https() {
            problems.push(format!("{at}.ca_file: only for https:// URLs"));
        }
        if !(1..=MAX_BATCH).contains(&self.batch) {
            problems.push(format!("{at}.batch: must be 1..={MAX_BATCH}"));
        }
        problems
    }
}

/// Most events a POST carries: a batch is read into memory whole (and a
/// typo's extra zeros must not make the feed's read ask for gigabytes).
const MAX_BATCH: usize = 10_000;

fn default_webhook_batch() -> usize {
    500
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn webhooks_post_to_http_or_https_urls_and_a_ca_file_is_for_https() {
        let check = |url: &str, ca: &str| {
            let text = format!("[[webhooks]]\nurl = \"{url}\"\nsecret_env = \"S\"\n{ca}");
            Config::from_toml(&text, Vec::new())
                .expect("parse")
                .validate_with(&|_| Some("s".into()))
                .is_ok()
        };
        assert!(check("http://127.0.0.1:9000/hook", ""));
        assert!(check("https://crm.example:8443/hook", ""));
        assert!(check("https://crm.example/hook", "ca_file = \"ca.pem\""));
        assert!(check("HTTPS://crm.example/hook", "ca_file = \"ca.pem\""));
        for url in ["ftp://crm.example/", "https://", "crm.example/hook", ""] {
            assert!(!check(url, ""), "{url}");
        }
        let url = "http://127.0.0.1:9000/hook";
        assert!(check(url, "batch = 10000"));
        assert!(!check(url, "batch = 0"));
        assert!(!check(url, "batch = 100000000"), "a typo's zeros");
        assert!(!check("http://crm.example/hook", "ca_file = \"ca.pem\""));
    }
}
