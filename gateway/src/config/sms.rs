//! `[sms]`: splitting, opt-out words, retries and the SMSCs (`[[sms.smsc]]`).

use std::path::PathBuf;

use serde::Deserialize;

use rules::RetryPolicy;

use super::{connector, retry};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sms {
    /// Most parts one message may be split into.
    pub max_parts: usize,
    /// Inbound texts that opt the sender out (compared case-insensitively).
    pub stop_words: Vec<String>,
    /// The country code (`49`) a handset's national number is read in.
    pub country_code: Option<String>,
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
            country_code: None,
            max_attempts: 5,
            retry_base_secs: 30,
            retry_max_secs: 3600,
            receipt_wait_secs: 60,
            smsc: Vec::new(),
        }
    }
}

impl Sms {
    /// SMSCs whose answer may come later than half the dispatch lease: a
    /// send waiting for it would be claimed and sent again, and one
    /// finding the window full could never wait for room in time.
    pub(super) fn send_time_problems(&self, lease_secs: u64) -> Vec<String> {
        (self.smsc.iter().enumerate())
            .filter(|(_, c)| c.response_timeout_secs > lease_secs / 2)
            .map(|(i, c)| {
                format!(
                    "sms.smsc[{i}].response_timeout_secs ({} s) must be at most half of dispatch.lease_secs ({lease_secs} s): a longer wait for an answer would be claimed and sent again",
                    c.response_timeout_secs
                )
            })
            .collect()
    }

    pub fn retry(&self) -> RetryPolicy {
        retry::policy(self.max_attempts, self.retry_base_secs, self.retry_max_secs)
    }

    pub(super) fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if !(1..=255).contains(&self.max_parts) {
            problems.push("sms.max_parts: must be 1..=255".into());
        }
        if let Some(cc) = &self.country_code
            && !is_country_code(cc)
        {
            problems.push(format!(
                "sms.country_code: `{cc}` is not a country calling code (1 to 3 digits, not starting with 0, e.g. \"49\")"
            ));
        }
        problems.extend(retry::problems(
            "sms",
            self.max_attempts,
            self.retry_base_secs,
            self.retry_max_secs,
        ));
        problems.extend(connector::name_problems(
            "sms.smsc",
            self.smsc.iter().map(|c| (c.name.as_deref(), c.name())),
        ));
        for (i, c) in self.smsc.iter().enumerate() {
            problems.extend(c.problems(&format!("sms.smsc[{i}]")));
        }
        problems
    }
}

fn is_country_code(cc: &str) -> bool {
    (1..=3).contains(&cc.len()) && cc.bytes().all(|b| b.is_ascii_digit()) && !cc.starts_with('0')
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

/// Why an SMSC's password could not be had.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("environment variable {0} is not set")]
    Unset(String),
    #[error("reading {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Smsc {
    /// Its name: as configured, or `host:port`.
    pub fn name(&self) -> String {
        connector::name(self.name.as_deref(), &self.host, self.port)
    }

    /// The bind password, from the environment or a file (empty if neither).
    pub fn password(&self) -> Result<String, PasswordError> {
        if let Some(var) = &self.password_env {
            return std::env::var(var).map_err(|_| PasswordError::Unset(var.clone()));
        }
        if let Some(path) = &self.password_file {
            let text = std::fs::read_to_string(path).map_err(|source| PasswordError::Read {
                path: path.clone(),
                source,
            })?;
            return Ok(text.lines().next().unwrap_or_default().to_owned());
        }
        Ok(String::new())
    }

    /// The problems of this SMSC, `at` being where it is in the file.
    fn problems(&self, at: &str) -> Vec<String> {
        let mut problems = connector::address_problems(at, &self.host, self.port);
        // SMPP 3.4 caps these bind fields at 16 and 13 octets, NUL included.
        if self.system_id.is_empty() || self.system_id.len() > 15 {
            problems.push(format!("{at}.system_id: 1 to 15 characters"));
        }
        if self.system_type.len() > 12 {
            problems.push(format!("{at}.system_type: at most 12 characters"));
        }
        if self.password_env.is_some() && self.password_file.is_some() {
            problems.push(format!("{at}: password_env or password_file, not both"));
        }
        if self.binds == 0 {
            problems.push(format!("{at}.binds: must be ≥ 1"));
        }
        if self.window == 0 {
            problems.push(format!("{at}.window: must be ≥ 1"));
        }
        if self.response_timeout_secs == 0 {
            problems.push(format!("{at}.response_timeout_secs: must be > 0"));
        }
        if self.reconnect_min_ms == 0 || self.reconnect_max_secs * 1000 < self.reconnect_min_ms {
            problems.push(format!(
                "{at}: reconnect_min_ms must be > 0 and ≤ reconnect_max_secs"
            ));
        }
        problems
    }
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
