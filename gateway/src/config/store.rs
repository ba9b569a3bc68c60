//! `[store]`: where the daemon keeps its state: the embedded engine in a
//! data directory (the default), or a Redis that several nodes share.

use std::path::PathBuf;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use serde::Deserialize;

/// The most shards a Redis store spreads over: a read of every shard (a
/// receipt's link, a suppression) asks each.
const MAX_SHARDS: u16 = 256;

/// Days the Redis engine keeps what ended when `retention_days` is not set.
const DEFAULT_RETENTION_DAYS: u32 = 90;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub engine: String,
    pub path: PathBuf,
    /// The Redis engine's server: `redis://host:port/db` or `rediss://`.
    pub url: Option<String>,
    /// A Redis Cluster's seed nodes, instead of `url`.
    pub urls: Vec<String>,
    /// The environment variable holding the Redis password, if any.
    pub password_env: Option<String>,
    /// This node's name among the nodes sharing the Redis (default: host
    /// name and pid); two running nodes never share one.
    pub node: Option<String>,
    /// Free bytes on the data directory's disk below which writes are
    /// refused (and sending pauses) until space is freed.
    pub min_free_bytes: u64,
    /// Days the Redis engine keeps an ended campaign and the feed's facts
    /// (default 90; 0 keeps them until a campaign is deleted).
    pub retention_days: Option<u32>,
    /// Replicas of the Redis (of each master in a Cluster) that must have
    /// a write before the node answers it (0: the master's answer).
    pub replicas: u32,
    /// Shards the Redis engine spreads campaigns over (each under a hash
    /// tag of its own, so a Cluster's masters share the work); fixed when
    /// the store is made.
    pub shards: u16,
    /// Over `rediss://`: a PEM file of the CAs to trust instead of the
    /// system's.
    pub tls_ca_file: Option<PathBuf>,
    /// Over `rediss://`: a PEM client certificate (chain) and its key, for
    /// a Redis that asks its clients for one.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            engine: "embedded".into(),
            path: PathBuf::from("./sluice-data"),
            url: None,
            urls: Vec::new(),
            password_env: None,
            node: None,
            min_free_bytes: store::embedded::DEFAULT_RESERVE,
            retention_days: None,
            replicas: 0,
            shards: 1,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

impl StoreConfig {
    /// This node's name: `node`, else the host's name and the pid.
    pub fn node_name(&self) -> String {
        if let Some(node) = &self.node {
            return node.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        let host = if host.is_empty() {
            "sluice".into()
        } else {
            host
        };
        format!("{host}-{}", std::process::id())
    }

    pub(super) fn problems(&self) -> Vec<String> {
        match self.engine.as_str() {
            "embedded" => self.embedded_problems(),
            "redis" => self.redis_problems(),
            other => vec![format!(
                "store.engine: `{other}` is not `embedded` or `redis`"
            )],
        }
    }

    /// Keys of the redis engine set for the embedded one.
    fn embedded_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.retention_days.is_some() {
            problems.push("store.retention_days: retention is the redis engine's; the embedded engine keeps facts and counts until a campaign is deleted".into());
        }
        if self.replicas > 0 {
            problems.push("store.replicas: replicas are the redis engine's; the embedded engine writes to its data directory".into());
        }
        if self.shards != 1 {
            problems.push("store.shards: shards are the redis engine's; the embedded engine keeps one store on disk".into());
        }
        if let Some(key) = self.tls_key() {
            problems.push(format!(
                "{key}: TLS certificates are the redis engine's; the embedded engine keeps its state on disk"
            ));
        }
        problems
    }

    /// The first `tls_*` key set, if any.
    fn tls_key(&self) -> Option<&'static str> {
        [
            ("store.tls_ca_file", &self.tls_ca_file),
            ("store.tls_cert_file", &self.tls_cert_file),
            ("store.tls_key_file", &self.tls_key_file),
        ]
        .into_iter()
        .find_map(|(key, file)| file.is_some().then_some(key))
    }

    fn redis_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let not_redis =
            |url: &String| !url.starts_with("redis://") && !url.starts_with("rediss://");
        match (&self.url, self.urls.is_empty()) {
            (None, true) => problems.push(
                "store.url: the redis engine needs the server's URL, e.g. `redis://127.0.0.1:6379/0` (or store.urls, a Redis Cluster's nodes)".into(),
            ),
            (Some(_), false) => problems.push(
                "store.urls: give store.url (one server) or store.urls (a Redis Cluster), not both".into(),
            ),
            _ => {}
        }
        for (key, url) in self
            .url
            .iter()
            .map(|u| ("store.url", u))
            .chain(self.urls.iter().map(|u| ("store.urls", u)))
            .filter(|(_, u)| not_redis(u))
        {
            problems.push(format!(
                "{key}: `{url}` is not a `redis://` or `rediss://` URL"
            ));
        }
        if let Some(var) = &self.password_env
            && std::env::var_os(var).is_none()
        {
            problems.push(format!(
                "store.password_env: the environment variable `{var}` is not set"
            ));
        }
        if !(1..=MAX_SHARDS).contains(&self.shards) {
            problems.push(format!(
                "store.shards: {} is not between 1 and {MAX_SHARDS}",
                self.shards
            ));
        }
        if self.node.as_deref().is_some_and(|n| n.trim().is_empty()) {
            problems.push("store.node: a node's name must not be empty".into());
        }
        let plain = |url: &String| !url.starts_with("rediss://");
        if let Some(key) = self.tls_key()
            && self.url.iter().chain(&self.urls).any(plain)
        {
            problems.push(format!(
                "{key}: certificates are for a Redis reached over TLS; make every URL `rediss://`"
            ));
        }
        problems
    }

    /// The Redis engine's server(s): `urls` (a Cluster) or `url`.
    pub fn redis_servers(&self) -> store::redis::Servers {
        match &self.url {
            Some(url) if self.urls.is_empty() => store::redis::Servers::One(url.clone()),
            _ => store::redis::Servers::Cluster(self.urls.clone()),
        }
    }

    /// How long the Redis engine keeps what ended, if not for ever.
    pub fn retention(&self) -> Option<std::time::Duration> {
        let days = self.retention_days.unwrap_or(DEFAULT_RETENTION_DAYS);
        (days > 0).then(|| std::time::Duration::from_secs(u64::from(days) * 86_400))
    }

    /// The Redis engine's options, as node `node`; why not, naming the
    /// key, when a certificate file cannot be read.
    pub fn redis_options(&self, node: String) -> Result<store::redis::Options, String> {
        let read = |key: &str, file: &Option<PathBuf>| {
            file.as_ref()
                .map(|path| {
                    std::fs::read(path)
                        .map_err(|e| format!("{key}: cannot read {}: {e}", path.display()))
                })
                .transpose()
        };
        let ca = read("store.tls_ca_file", &self.tls_ca_file)?;
        let cert = read("store.tls_cert_file", &self.tls_cert_file)?;
        let key = read("store.tls_key_file", &self.tls_key_file)?;
        // Checked here, where the key can be named: past this, a bad file
        // fails only as "cannot reach Redis".
        for (name, pem) in [("store.tls_ca_file", &ca), ("store.tls_cert_file", &cert)] {
            if let Some(pem) = pem
                && !CertificateDer::pem_slice_iter(pem).any(|c| c.is_ok())
            {
                return Err(format!("{name}: holds no PEM certificate"));
            }
        }
        if let Some(pem) = &key
            && PrivateKeyDer::from_pem_slice(pem).is_err()
        {
            return Err("store.tls_key_file: holds no PEM private key".into());
        }
        Ok(store::redis::Options {
            servers: self.redis_servers(),
            password: self.redis_password(),
            node,
            replicas: self.replicas,
            shards: self.shards,
            certificates: store::redis::Certificates {
                ca,
                client: cert.zip(key),
            },
        })
    }

    /// The password from `password_env`, if one is named.
    pub fn redis_password(&self) -> Option<String> {
        self.password_env
            .as_deref()
            .and_then(|var| std::env::var(var).ok())
    }
}
