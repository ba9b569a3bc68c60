//! A real `redis-server` (or a Redis Cluster of three) for the Redis
//! engine's tests, started on free loopback ports with every write fsynced
//! before it is answered (`appendfsync always`), and stopped when dropped.

// Each test binary that includes this module uses a part of it.
#![allow(dead_code)]

mod processes;

use std::{
    process::Command,
    time::{Duration, Instant},
};

pub use processes::RedisCluster;
use processes::{cli, free_port, spawn};
use store::redis::{Options, Redis, Servers};
use tempfile::TempDir;

pub struct RedisServer {
    server: std::process::Child,
    pub port: u16,
    _dir: TempDir,
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A replica of this server, once it has caught up with it.
    pub fn start_replica(&self) -> Self {
        let master = self.port.to_string();
        // A replica's first sync starts at once, not after 5 s.
        self.cli(&["CONFIG", "SET", "repl-diskless-sync-delay", "0"]);
        let replica = Self::start_with(&["--replicaof", "127.0.0.1", &master]);
        let started = Instant::now();
        while !cli(&["-p", &replica.port.to_string(), "INFO", "replication"])
            .contains("master_link_status:up")
        {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the replica did not catch up with its master within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        replica
    }

    /// Stops the server answering (SIGSTOP), as a hung machine would.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([signal, &self.server.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success(), "kill {signal} failed");
    }

    fn start_with(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        for _ in 0..5 {
            let port = free_port();
            if let Some(server) = spawn(port, dir.path(), extra, None) {
                return Self {
                    server,
                    port,
                    _dir: dir,
                };
            }
        }
        panic!("no free port for redis-server after 5 tries")
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// `redis-cli` on this server with `args`; its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let port = self.port.to_string();
        let mut all = vec!["-p", port.as_str()];
        all.extend(args);
        cli(&all)
    }

    /// How many of `keys` exist.
    pub fn exists(&self, keys: &[String]) -> u64 {
        let port = self.port.to_string();
        let mut args = vec!["-p", port.as_str(), "EXISTS"];
        args.extend(keys.iter().map(String::as_str));
        cli(&args).trim().parse().expect("a count")
    }

    /// How many times Redis ran `command` (`INFO commandstats`).
    pub fn calls(&self, command: &str) -> u64 {
        let port = self.port.to_string();
        let prefix = format!("cmdstat_{}:calls=", command.to_lowercase());
        cli(&["-p", port.as_str(), "INFO", "commandstats"])
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix.as_str()))
            .map_or(0, |rest| {
                rest.split(',')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("a count")
            })
    }

    /// How many values Redis has freed in the background (`UNLINK`).
    pub fn lazyfreed(&self) -> u64 {
        let port = self.port.to_string();
        cli(&["-p", port.as_str(), "INFO", "memory"])
            .lines()
            .find_map(|l| l.trim().strip_prefix("lazyfreed_objects:"))
            .expect("lazyfreed_objects in INFO memory")
            .parse()
            .expect("a count")
    }

    /// A store on this server, as node `node`.
    pub async fn open(&self, node: &str) -> Result<Redis, store::StoreError> {
        self.open_with(node, 0).await
    }

    /// A store on this server whose writes wait for `replicas` replicas.
    pub async fn open_with(&self, node: &str, replicas: u32) -> Result<Redis, store::StoreError> {
        Redis::open(self.options(node, replicas, 1)).await
    }

    /// A store on this server with its campaigns in `shards` shards.
    pub async fn open_sharded(&self, node: &str, shards: u16) -> Result<Redis, store::StoreError> {
        Redis::open(self.options(node, 0, shards)).await
    }

    fn options(&self, node: &str, replicas: u32, shards: u16) -> Options {
        Options {
            servers: Servers::One(self.url()),
            password: None,
            node: node.into(),
            replicas,
            certificates: Default::default(),
            shards,
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// Stores on a cluster.
impl RedisCluster {
    /// A store on this cluster, as node `node`.
    pub async fn open(&self, node: &str) -> Result<Redis, store::StoreError> {
        self.open_with(node, 0).await
    }

    /// A store on this cluster whose writes wait for `replicas` replicas;
    /// over TLS, it trusts the cluster's CA (`store.tls_ca_file`).
    pub async fn open_with(&self, node: &str, replicas: u32) -> Result<Redis, store::StoreError> {
        Redis::open(self.options(node, replicas, 1)).await
    }

    /// A store on this cluster with its campaigns in `shards` shards.
    pub async fn open_sharded(&self, node: &str, shards: u16) -> Result<Redis, store::StoreError> {
        Redis::open(self.options(node, 0, shards)).await
    }

    fn options(&self, node: &str, replicas: u32, shards: u16) -> Options {
        let ca = self.ca().map(|ca| std::fs::read(ca).expect("the CA"));
        Options {
            servers: Servers::Cluster(self.seeds()),
            password: None,
            node: node.into(),
            replicas,
            certificates: store::redis::Certificates { ca, client: None },
            shards,
        }
    }
}
