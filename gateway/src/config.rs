//! The daemon's configuration: TOML with explicit defaults for every key,
//! overridden by `SLUICE_SECTION__KEY` environment variables, validated as a
//! whole so every problem is reported at once before any port is bound.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

use rules::RetryPolicy;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Parse(String),
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub listen: Listen,
    pub api: Api,
    pub store: StoreConfig,
    pub tracking: Tracking,
    pub email: Email,
    pub sms: Sms,
    pub dispatch: Dispatch,
    pub webhooks: Vec<Webhook>,
}

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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Api {
    /// `crm:TOKEN,admin:TOKEN`; `SLUICE_API_TOKENS` overrides it.
    pub tokens: String,
    pub max_body_bytes: usize,
}

impl Default for Api {
    fn default() -> Self {
        Self {
            tokens: String::new(),
            max_body_bytes: 256 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub engine: String,
    pub path: PathBuf,
    pub url: Option<String>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            engine: "embedded".into(),
            path: PathBuf::from("./sluice-data"),
            url: None,
        }
    }
}

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
}

/// Most connections `tracking.max_connections` may allow.
pub const MAX_TRACKING_CONNECTIONS: usize = 1_000_000;

impl Default for Tracking {
    fn default() -> Self {
        Self {
            base_url: "http://127.0.0.1:7801".into(),
            keys_env: "SLUICE_TRACKING_KEYS".into(),
            max_connections: 4096,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Email {
    /// Domain of the per-message Return-Path, handled by `listen.bounce`.
    pub bounce_domain: String,
    /// Name announced in EHLO.
    pub helo: String,
    /// Sends tried before a transient failure becomes `failed`.
    pub max_attempts: u32,
    /// First retry delay; doubles on every further attempt.
    pub retry_base_secs: u64,
    pub retry_max_secs: u64,
    /// Environment variable holding the secret that signs Return-Path tokens.
    pub token_secret_env: String,
    pub relays: Vec<Relay>,
    pub dkim: Option<Dkim>,
    /// A Maildir whose `new/` receives returned mail (besides `listen.bounce`).
    pub bounce_maildir: Option<PathBuf>,
}

impl Email {
    pub fn retry(&self) -> RetryPolicy {
        retry_policy(self.max_attempts, self.retry_base_secs, self.retry_max_secs)
    }
}

fn retry_policy(max_attempts: u32, base_secs: u64, max_secs: u64) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base: Duration::from_secs(base_secs),
        max: Duration::from_secs(max_secs),
    }
}

impl Default for Email {
    fn default() -> Self {
        Self {
            bounce_domain: "bounces.example.com".into(),
            helo: "sluice.localhost".into(),
            max_attempts: 5,
            retry_base_secs: 30,
            retry_max_secs: 3600,
            token_secret_env: "SLUICE_TOKEN_SECRET".into(),
            relays: Vec::new(),
            dkim: None,
            bounce_maildir: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain text only.
    None,
    /// Upgrade when the relay offers STARTTLS.
    Starttls,
    /// TLS from the first byte.
    Tls,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Relay {
    /// What logs and errors call it; `host:port` when not given.
    #[serde(default)]
    pub name: Option<String>,
    pub host: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    #[serde(default = "default_tls")]
    pub tls: TlsMode,
    /// Accept any certificate (test relays only).
    #[serde(default)]
    pub tls_insecure: bool,
    /// Connections kept open and reused.
    #[serde(default = "default_connections")]
    pub connections: usize,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
}

impl Sms {
    pub fn retry(&self) -> RetryPolicy {
        retry_policy(self.max_attempts, self.retry_base_secs, self.retry_max_secs)
    }

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(1..=255).contains(&self.max_parts) {
            problems.push("sms.max_parts: must be 1..=255".into());
        }
        if self.max_attempts == 0 {
            problems.push("sms.max_attempts: must be ≥ 1".into());
        }
        if self.retry_base_secs == 0 || self.retry_max_secs < self.retry_base_secs {
            problems.push("sms.retry_base_secs must be > 0 and ≤ sms.retry_max_secs".into());
        }
        problems.extend(name_problems(
            "sms.smsc",
            self.smsc.iter().map(|c| (c.name.as_deref(), c.name())),
        ));
        for (i, c) in self.smsc.iter().enumerate() {
            let at = format!("sms.smsc[{i}]");
            if c.host.is_empty() {
                problems.push(format!("{at}.host: empty"));
            }
            if c.port == 0 {
                problems.push(format!("{at}.port: must be > 0"));
            }
            if c.system_id.is_empty() || c.system_id.len() > 15 {
                problems.push(format!("{at}.system_id: 1 to 15 characters"));
            }
            if c.system_type.len() > 12 {
                problems.push(format!("{at}.system_type: at most 12 characters"));
            }
            if c.password_env.is_some() && c.password_file.is_some() {
                problems.push(format!("{at}: password_env or password_file, not both"));
            }
            if c.binds == 0 {
                problems.push(format!("{at}.binds: must be ≥ 1"));
            }
            if c.window == 0 {
                problems.push(format!("{at}.window: must be ≥ 1"));
            }
            if c.response_timeout_secs == 0 {
                problems.push(format!("{at}.response_timeout_secs: must be > 0"));
            }
            if c.reconnect_min_ms == 0 || c.reconnect_max_secs * 1000 < c.reconnect_min_ms {
                problems.push(format!(
                    "{at}: reconnect_min_ms must be > 0 and ≤ reconnect_max_secs"
                ));
            }
        }
        problems
    }
}

impl Relay {
    /// Its name: as configured, or `host:port`.
    pub fn name(&self) -> String {
        connector_name(self.name.as_deref(), &self.host, self.port)
    }
}

/// A connector's name: the configured one, or `host:port`.
fn connector_name(configured: Option<&str>, host: &str, port: u16) -> String {
    configured.map_or_else(|| format!("{host}:{port}"), str::to_owned)
}

/// Names that are empty or given to two connectors of `section` (metrics and
/// logs tell connectors apart by name).
fn name_problems<'a>(
    section: &str,
    names: impl Iterator<Item = (Option<&'a str>, String)>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, (configured, name)) in names.enumerate() {
        if configured.is_some_and(|n| n.trim().is_empty()) {
            problems.push(format!("{section}[{i}].name: empty"));
        } else if !seen.insert(name.clone()) {
            problems.push(format!(
                "{section}[{i}].name: `{name}` names another one too"
            ));
        }
    }
    problems
}

impl Smsc {
    /// Its name: as configured, or `host:port`.
    pub fn name(&self) -> String {
        connector_name(self.name.as_deref(), &self.host, self.port)
    }

    /// The bind password, from the environment or a file (empty if neither).
    pub fn password(&self) -> Result<String, String> {
        if let Some(var) = &self.password_env {
            return std::env::var(var)
                .map_err(|_| format!("environment variable {var} is not set"));
        }
        if let Some(path) = &self.password_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
            return Ok(text.lines().next().unwrap_or_default().to_owned());
        }
        Ok(String::new())
    }
}

fn default_smtp_port() -> u16 {
    25
}
fn default_tls() -> TlsMode {
    TlsMode::Starttls
}
fn default_connections() -> usize {
    16
}
fn default_timeout() -> u64 {
    30
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dkim {
    pub domain: String,
    pub selector: String,
    /// PEM file with the RSA private key.
    pub key_file: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sms {
    /// Most parts one message may be split into.
    pub max_parts: usize,
    /// Inbound texts that opt the sender out (compared case-insensitively).
    pub stop_words: Vec<String>,
    pub max_attempts: u32,
    pub retry_base_secs: u64,
    pub retry_max_secs: u64,
    /// How long a receipt whose id is not known yet waits for its
    /// submit_sm_resp to be recorded before it is kept as unmatched.
    pub receipt_wait_secs: u64,
    pub smsc: Vec<Smsc>,
}

impl Default for Sms {
    fn default() -> Self {
        Self {
            max_parts: 6,
            stop_words: [
                "STOP",
                "STOPALL",
                "UNSUBSCRIBE",
                "CANCEL",
                "END",
                "QUIT",
                "ARRET",
            ]
            .map(String::from)
            .to_vec(),
            max_attempts: 5,
            retry_base_secs: 30,
            retry_max_secs: 3600,
            receipt_wait_secs: 60,
            smsc: Vec::new(),
        }
    }
}

/// One SMSC (SMPP 3.4 server).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Smsc {
    /// What metrics, logs and errors call it; `host:port` when not given.
    #[serde(default)]
    pub name: Option<String>,
    pub host: String,
    #[serde(default = "default_smpp_port")]
    pub port: u16,
    /// TLS from the first byte.
    #[serde(default)]
    pub tls: bool,
    /// Accept any certificate (test SMSCs only).
    #[serde(default)]
    pub tls_insecure: bool,
    pub system_id: String,
    /// Environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// File holding the password (first line).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub system_type: String,
    /// Source address TON/NPI; by default derived from the sender
    /// (`+digits` international, digits unknown, letters alphanumeric).
    #[serde(default)]
    pub source_ton: Option<u8>,
    #[serde(default)]
    pub source_npi: Option<u8>,
    /// Binds kept open to this SMSC.
    #[serde(default = "default_binds")]
    pub binds: usize,
    /// `transceiver`, or `pair` (a transmitter and a receiver per bind).
    #[serde(default)]
    pub bind_mode: BindMode,
    /// submit_sm outstanding per bind.
    #[serde(default = "default_window")]
    pub window: usize,
    #[serde(default = "default_smpp_response_timeout")]
    pub response_timeout_secs: u64,
    #[serde(default = "default_enquire_link")]
    pub enquire_link_secs: u64,
    /// Reconnect back-off: from `reconnect_min_ms`, doubling up to `reconnect_max_secs`.
    #[serde(default = "default_reconnect_min")]
    pub reconnect_min_ms: u64,
    #[serde(default = "default_reconnect_max")]
    pub reconnect_max_secs: u64,
    /// First pause of a bind the SMSC throttled; doubles while it keeps throttling.
    #[serde(default = "default_throttle_pause")]
    pub throttle_pause_ms: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BindMode {
    #[default]
    Transceiver,
    Pair,
}

fn default_smpp_port() -> u16 {
    2775
}
fn default_binds() -> usize {
    1
}
fn default_window() -> usize {
    64
}
fn default_smpp_response_timeout() -> u64 {
    10
}
fn default_enquire_link() -> u64 {
    30
}
fn default_reconnect_min() -> u64 {
    250
}
fn default_reconnect_max() -> u64 {
    30
}
fn default_throttle_pause() -> u64 {
    500
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dispatch {
    /// Messages being sent at once, over all campaigns.
    pub concurrency: usize,
    /// How long a claimed message stays leased before it may be claimed again.
    pub lease_secs: u64,
    /// Messages claimed at once.
    pub claim_batch: usize,
}

impl Default for Dispatch {
    fn default() -> Self {
        Self {
            concurrency: 256,
            lease_secs: 300,
            claim_batch: 256,
        }
    }
}

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
}

fn default_webhook_batch() -> usize {
    500
}

impl Config {
    /// Reads `path` (or the defaults) and applies the environment.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let text = match path {
            Some(p) => std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                path: p.into(),
                source,
            })?,
            None => String::new(),
        };
        Self::from_toml(&text, std::env::vars())
    }

    /// Parses TOML text, then overrides with `SLUICE_SECTION__KEY` variables.
    pub fn from_toml(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut doc: toml::Table =
            toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        for (name, value) in env {
            if name == "SLUICE_API_TOKENS" {
                set(&mut doc, &["api", "tokens"], toml::Value::String(value));
            } else if let Some(path) = name.strip_prefix("SLUICE_").filter(|p| p.contains("__")) {
                let keys: Vec<String> = path.split("__").map(str::to_lowercase).collect();
                let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                set(&mut doc, &keys, env_value(&value));
            }
        }
        toml::Value::Table(doc)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse(e.to_string()))
    }

    /// Every problem at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        for (key, addr) in [
            ("listen.api", &self.listen.api),
            ("listen.tracking", &self.listen.tracking),
            ("listen.bounce", &self.listen.bounce),
        ] {
            if addr.parse::<SocketAddr>().is_err() {
                problems.push(format!("{key}: `{addr}` is not an IP:port address"));
            }
        }
        match admin_api::Tokens::parse(&self.api.tokens) {
            Err(e) => problems.push(format!("api.tokens: {e}")),
            Ok(tokens) if tokens.is_open() => {
                if self
                    .listen
                    .api
                    .parse::<SocketAddr>()
                    .is_ok_and(|a| !a.ip().is_loopback())
                {
                    problems.push(format!(
                        "listen.api: `{}` is not loopback, so API tokens are required (SLUICE_API_TOKENS)",
                        self.listen.api
                    ));
                }
            }
            Ok(_) => {}
        }
        if self.api.max_body_bytes == 0 {
            problems.push("api.max_body_bytes: must be > 0".into());
        }
        match self.store.engine.as_str() {
            "embedded" => {}
            "redis" => problems
                .push("store.engine: the redis engine is not available in this build yet".into()),
            other => problems.push(format!(
                "store.engine: `{other}` is not `embedded` or `redis`"
            )),
        }
        if !self.tracking.base_url.starts_with("http://")
            && !self.tracking.base_url.starts_with("https://")
        {
            problems.push(format!(
                "tracking.base_url: `{}` is not an http(s) URL",
                self.tracking.base_url
            ));
        }
        if !(1..=MAX_TRACKING_CONNECTIONS).contains(&self.tracking.max_connections) {
            problems.push(format!(
                "tracking.max_connections: must be 1..={MAX_TRACKING_CONNECTIONS}"
            ));
        }
        if self.email.bounce_domain.is_empty() || self.email.bounce_domain.contains(['@', ' ']) {
            problems.push(format!(
                "email.bounce_domain: `{}` is not a domain",
                self.email.bounce_domain
            ));
        }
        if self.email.max_attempts == 0 {
            problems.push("email.max_attempts: must be ≥ 1".into());
        }
        if self.email.retry_base_secs == 0 || self.email.retry_max_secs < self.email.retry_base_secs
        {
            problems.push("email.retry_base_secs must be > 0 and ≤ email.retry_max_secs".into());
        }
        problems.extend(self.sms.problems());
        problems.extend(name_problems(
            "email.relays",
            self.email
                .relays
                .iter()
                .map(|r| (r.name.as_deref(), r.name())),
        ));
        for (i, r) in self.email.relays.iter().enumerate() {
            if r.host.is_empty() {
                problems.push(format!("email.relays[{i}].host: empty"));
            }
            if r.port == 0 {
                problems.push(format!("email.relays[{i}].port: must be > 0"));
            }
            if r.connections == 0 {
                problems.push(format!("email.relays[{i}].connections: must be ≥ 1"));
            }
            if r.username.is_some() != r.password_env.is_some() {
                problems.push(format!(
                    "email.relays[{i}]: username and password_env go together"
                ));
            }
        }
        if let Some(m) = &self.email.bounce_maildir
            && !(m.join("new").is_dir() && m.join("cur").is_dir())
        {
            problems.push(format!(
                "email.bounce_maildir: {} has no new/ and cur/",
                m.display()
            ));
        }
        if let Some(d) = &self.email.dkim
            && !d.key_file.is_file()
        {
            problems.push(format!(
                "email.dkim.key_file: {} is not a readable file",
                d.key_file.display()
            ));
        }
        if self.dispatch.concurrency == 0
            || self.dispatch.claim_batch == 0
            || self.dispatch.lease_secs == 0
        {
            problems.push("dispatch.concurrency, claim_batch and lease_secs must be > 0".into());
        }
        for (i, w) in self.webhooks.iter().enumerate() {
            let uri = w.url.parse::<hyper::Uri>();
            let web = uri.as_ref().is_ok_and(|u| {
                matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some()
            });
            if !web {
                problems.push(format!(
                    "webhooks[{i}].url: `{}` must be an http:// or https:// URL",
                    w.url
                ));
            }
            if w.ca_file.is_some() && !w.is_https() {
                problems.push(format!("webhooks[{i}].ca_file: only for https:// URLs"));
            }
            if w.batch == 0 {
                problems.push(format!("webhooks[{i}].batch: must be ≥ 1"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

/// Environment values are TOML scalars when they parse as one, else strings.
fn env_value(raw: &str) -> toml::Value {
    let parsed: Result<toml::Table, _> = toml::from_str(&format!("v = {raw}"));
    match parsed.ok().and_then(|mut t| t.remove("v")) {
        Some(v @ (toml::Value::Integer(_) | toml::Value::Boolean(_) | toml::Value::Float(_))) => v,
        _ => toml::Value::String(raw.to_owned()),
    }
}

fn set(doc: &mut toml::Table, keys: &[&str], value: toml::Value) {
    let Some((last, parents)) = keys.split_last() else {
        return;
    };
    let mut table = doc;
    for key in parents {
        let entry = table
            .entry((*key).to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let toml::Value::Table(t) = entry else { return };
        table = t;
    }
    table.insert((*last).to_owned(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_loopback_only() {
        let c = Config::from_toml("", Vec::new()).expect("parse");
        c.validate().expect("valid");
        assert_eq!(c.listen.api, "127.0.0.1:7800");
        assert_eq!(c.store.path, PathBuf::from("./sluice-data"));
    }

    #[test]
    fn environment_overrides_the_file() {
        let env = vec![
            ("SLUICE_LISTEN__API".to_owned(), "127.0.0.1:0".to_owned()),
            ("SLUICE_DISPATCH__CONCURRENCY".to_owned(), "9".to_owned()),
            ("SLUICE_API_TOKENS".to_owned(), "crm:abc".to_owned()),
            ("UNRELATED".to_owned(), "x".to_owned()),
        ];
        let c = Config::from_toml("[listen]\napi = \"127.0.0.1:1\"\n", env).expect("parse");
        assert_eq!(c.listen.api, "127.0.0.1:0");
        assert_eq!(c.dispatch.concurrency, 9);
        assert_eq!(c.api.tokens, "crm:abc");
    }

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
    fn unknown_keys_are_refused() {
        let err = Config::from_toml("[listen]\napi = \"127.0.0.1:1\"\ncolour = 1\n", Vec::new());
        assert!(err.expect_err("unknown key").to_string().contains("colour"));
    }

    #[test]
    fn webhooks_post_to_http_or_https_urls_and_a_ca_file_is_for_https() {
        let check = |url: &str, ca: &str| {
            let text = format!("[[webhooks]]\nurl = \"{url}\"\nsecret_env = \"S\"\n{ca}");
            Config::from_toml(&text, Vec::new())
                .expect("parse")
                .validate()
                .is_ok()
        };
        assert!(check("http://127.0.0.1:9000/hook", ""));
        assert!(check("https://crm.example:8443/hook", ""));
        assert!(check("https://crm.example/hook", "ca_file = \"ca.pem\""));
        assert!(check("HTTPS://crm.example/hook", "ca_file = \"ca.pem\""));
        for url in ["ftp://crm.example/", "https://", "crm.example/hook", ""] {
            assert!(!check(url, ""), "{url}");
        }
        assert!(!check("http://crm.example/hook", "ca_file = \"ca.pem\""));
    }

    #[test]
    fn connectors_are_named_host_and_port_unless_named_and_names_are_unique() {
        let text = r#"
            [[email.relays]]
            host = "10.0.0.1"
            [[email.relays]]
            name = "backup"
            host = "10.0.0.2"
            [[sms.smsc]]
            host = "smsc.example"
            system_id = "a"
            [[sms.smsc]]
            host = "smsc.example"
            system_id = "b"
            [[sms.smsc]]
            name = " "
            host = "other.example"
            system_id = "c"
        "#;
        let c = Config::from_toml(text, Vec::new()).expect("parse");
        assert_eq!(c.email.relays[0].name(), "10.0.0.1:25");
        assert_eq!(c.email.relays[1].name(), "backup");
        assert_eq!(c.sms.smsc[0].name(), "smsc.example:2775");
        let ConfigError::Invalid(problems) = c.validate().expect_err("invalid") else {
            panic!("not a validation error");
        };
        assert!(
            problems
                .contains(&"sms.smsc[1].name: `smsc.example:2775` names another one too".into()),
            "{problems:#?}"
        );
        assert!(
            problems.contains(&"sms.smsc[2].name: empty".into()),
            "{problems:#?}"
        );
        assert_eq!(problems.len(), 2, "{problems:#?}");
    }

    #[test]
    fn every_problem_is_reported() {
        let text = r#"
            [listen]
            api = "nowhere"
            [store]
            engine = "floppy"
            [tracking]
            max_connections = 0
            [email]
            max_attempts = 0
            [[email.relays]]
            host = ""
            connections = 0
        "#;
        let c = Config::from_toml(text, Vec::new()).expect("parse");
        let ConfigError::Invalid(problems) = c.validate().expect_err("invalid") else {
            panic!("not Invalid")
        };
        assert_eq!(problems.len(), 6, "{problems:#?}");
    }
}
