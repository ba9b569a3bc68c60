//! `[email]`: bounces, retries, the SMTP relays (`[[email.relays]]`) and DKIM.

use std::path::PathBuf;

use serde::Deserialize;

use rules::RetryPolicy;

use super::{connector, retry};

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
    /// PEM certificate chain and key: the bounce listener offers STARTTLS
    /// with them (read again on SIGHUP).
    pub bounce_tls_cert_file: Option<PathBuf>,
    pub bounce_tls_key_file: Option<PathBuf>,
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
            bounce_tls_cert_file: None,
            bounce_tls_key_file: None,
        }
    }
}

impl Email {
    pub fn retry(&self) -> RetryPolicy {
        retry::policy(self.max_attempts, self.retry_base_secs, self.retry_max_secs)
    }

    pub(super) fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.bounce_domain.is_empty() || self.bounce_domain.contains(['@', ' ']) {
            problems.push(format!(
                "email.bounce_domain: `{}` is not a domain",
                self.bounce_domain
            ));
        }
        problems.extend(retry::problems(
            "email",
            self.max_attempts,
            self.retry_base_secs,
            self.retry_max_secs,
        ));
        problems.extend(connector::name_problems(
            "email.relays",
            self.relays.iter().map(|r| (r.name.as_deref(), r.name())),
        ));
        for (i, r) in self.relays.iter().enumerate() {
            problems.extend(r.problems(&format!("email.relays[{i}]")));
        }
        if let Some(m) = &self.bounce_maildir
            && !(m.join("new").is_dir() && m.join("cur").is_dir())
        {
            problems.push(format!(
                "email.bounce_maildir: {} has no new/ and cur/",
                m.display()
            ));
        }
        if let Some(d) = &self.dkim
            && !d.key_file.is_file()
        {
            problems.push(format!(
                "email.dkim.key_file: {} is not a readable file",
                d.key_file.display()
            ));
        }
        problems
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
    /// How long the relay may take over a message's content, and again to
    /// answer its end (RFC 5321 4.5.3.2.6 suggests 10 minutes; a send must
    /// end well within the dispatch lease): without an answer the message
    /// is unconfirmed.
    #[serde(default = "default_data_timeout")]
    pub data_timeout_secs: u64,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
}

impl Email {
    /// Relays whose timeouts let a send outlast half the dispatch lease: the
    /// message would be claimed and sent again while the first send waits.
    pub(super) fn send_time_problems(&self, lease_secs: u64) -> Vec<String> {
        let mut problems = Vec::new();
        for (i, r) in self.relays.iter().enumerate() {
            let at = format!("email.relays[{i}]");
            if r.timeout_secs == 0 || r.data_timeout_secs == 0 {
                problems.push(format!(
                    "{at}: timeout_secs and data_timeout_secs must be > 0"
                ));
            } else if r.timeout_secs + r.data_timeout_secs > lease_secs / 2 {
                problems.push(format!(
                    "{at}: timeout_secs + data_timeout_secs ({} s) must be at most half of dispatch.lease_secs ({lease_secs} s): a longer send would be claimed and sent again",
                    r.timeout_secs + r.data_timeout_secs
                ));
            }
        }
        problems
    }
}

impl Relay {
    /// Its name: as configured, or `host:port`.
    pub fn name(&self) -> String {
        connector::name(self.name.as_deref(), &self.host, self.port)
    }

    /// The problems of this relay, `at` being where it is in the file.
    fn problems(&self, at: &str) -> Vec<String> {
        let mut problems = connector::address_problems(at, &self.host, self.port);
        if self.connections == 0 {
            problems.push(format!("{at}.connections: must be ≥ 1"));
        }
        if self.username.is_some() != self.password_env.is_some() {
            problems.push(format!("{at}: username and password_env go together"));
        }
        problems
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
fn default_data_timeout() -> u64 {
    90
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
