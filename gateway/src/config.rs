//! The daemon's configuration: TOML with explicit defaults for every key,
//! overridden by `SLUICE_SECTION__KEY` environment variables, validated as a
//! whole so every problem is reported at once before any port is bound.
//!
//! This file holds the root ([`Config`]): loading, the environment and
//! [`Config::validate`], which gathers the problems of every section. Each
//! section of `sluice.toml` lives in a file of its own with its defaults and
//! its checks; what `[email]` and `[sms]` share (connector names and
//! addresses, retry keys) lives once, in `connector` and `retry`.

mod api;
mod connector;
mod dispatch;
mod email;
mod listen;
mod retry;
mod secrets;
mod sms;
mod store;
mod tracking;
mod warnings;
mod webhook;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use api::Api;
pub use dispatch::Dispatch;
pub use email::{Dkim, Email, Relay, TlsMode};
pub use listen::Listen;
pub use sms::{BindMode, PasswordError, Sms, Smsc};
pub use store::StoreConfig;
pub use tracking::{MAX_TRACKING_CONNECTIONS, Tracking};
pub use webhook::Webhook;

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

    /// Every problem at once, section by section, then the secrets it
    /// names that the environment or the disk does not have.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_with(&|var| std::env::var_os(var))
    }

    /// [`Config::validate`] with `env` giving environment variables' values.
    pub fn validate_with(
        &self,
        env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
    ) -> Result<(), ConfigError> {
        let mut problems = self.listen.problems();
        // Whether the API may go without tokens depends on where it listens.
        problems.extend(self.api.problems(&self.listen));
        problems.extend(self.store.problems());
        problems.extend(self.tracking.problems());
        problems.extend(self.email.problems());
        problems.extend(self.email.send_time_problems(self.dispatch.lease_secs));
        problems.extend(self.sms.problems());
        problems.extend(self.sms.send_time_problems(self.dispatch.lease_secs));
        problems.extend(self.dispatch.problems());
        for (i, w) in self.webhooks.iter().enumerate() {
            problems.extend(w.problems(&format!("webhooks[{i}]")));
        }
        problems.extend(self.secret_problems(env));
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
mod tests;
