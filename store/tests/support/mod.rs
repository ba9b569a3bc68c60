//! A real `redis-server` (or a Redis Cluster of three) for the Redis
//! engine's tests, started on free loopback ports with every write fsynced
//! before it is answered (`appendfsync always`), and stopped when dropped.

// Each test binary that includes this module uses a part of it.
#![allow(dead_code)]

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use std::path::Path;

use store::redis::{Options, Redis, Servers};
use tempfile::TempDir;

pub struct RedisServer {
    server: Child,
    pub port: u16,
    _dir: TempDir,
}

/// A free loopback port.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Starts `redis-server` on `port` with its files in `dir` and `extra`
/// arguments; waits until it listens. `None` when the port was taken
/// meanwhile (another test's server got it first: ours exited).
fn spawn(port: u16, dir: &Path, extra: &[&str]) -> Option<Child> {
    let mut server = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args([
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ])
        .args(extra)
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "redis-server could not start ({e}): install it with \
                 `apt-get install redis-server` (or `cargo xtask peers`)"
            )
        });
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "redis-server did not listen on port {port} within 10 s"
        );
        if server.try_wait().is_ok_and(|exited| exited.is_some()) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // Listening on the port, but is it ours?
    let theirs = cli(&["-p", &port.to_string(), "CONFIG", "GET", "dir"]);
    if !theirs.contains(dir.to_str().unwrap_or_default()) {
        let _ = server.kill();
        let _ = server.wait();
        return None;
    }
    Some(server)
}

/// `redis-cli` with `args`; its output.
fn cli(args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(args)
        .output()
        .expect("redis-cli (it comes with redis-server)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl RedisServer {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        for _ in 0..5 {
            let port = free_port();
            if let Some(server) = spawn(port, dir.path(), &[]) {
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
        Redis::open(Options {
            servers: Servers::One(self.url()),
            password: None,
            node: node.into(),
        })
        .await
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// Three cluster-enabled servers on free ports, their files under `dir`;
/// `None` when another test's server took one of the ports meanwhile
/// (those started are stopped).
fn three_masters(dir: &Path) -> Option<(Vec<u16>, Vec<Child>)> {
    // A master also listens on its port + 10000 (the cluster bus).
    let ports: Vec<u16> = std::iter::repeat_with(free_port)
        .filter(|&p| p < 55_000 && TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok())
        .take(3)
        .collect();
    let mut servers = Vec::new();
    for &port in &ports {
        let own = dir.join(port.to_string());
        std::fs::create_dir_all(&own).expect("a directory");
        match spawn(port, &own, &["--cluster-enabled", "yes"]) {
            Some(server) => servers.push(server),
            None => {
                for mut server in servers {
                    let _ = server.kill();
                    let _ = server.wait();
                }
                return None;
            }
        }
    }
    Some((ports, servers))
}

/// A Redis Cluster of three masters on loopback (`--cluster-enabled yes`,
/// joined with `redis-cli --cluster create`).
pub struct RedisCluster {
    servers: Vec<Child>,
    ports: Vec<u16>,
    _dir: TempDir,
}

impl RedisCluster {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (ports, servers) = (0..5)
            .find_map(|_| three_masters(dir.path()))
            .expect("three free ports for a cluster after 5 tries");
        let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let mut create = vec!["--cluster", "create"];
        create.extend(nodes.iter().map(String::as_str));
        create.push("--cluster-yes");
        cli(&create);
        let cluster = Self {
            servers,
            ports,
            _dir: dir,
        };
        let started = Instant::now();
        while !cluster
            .ports
            .iter()
            .all(|p| cli(&["-p", &p.to_string(), "CLUSTER", "INFO"]).contains("cluster_state:ok"))
        {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the cluster of {nodes:?} did not come up"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        cluster
    }

    /// A store on this cluster, as node `node`.
    pub async fn open(&self, node: &str) -> Result<Redis, store::StoreError> {
        Redis::open(Options {
            servers: Servers::Cluster(
                self.ports
                    .iter()
                    .map(|p| format!("redis://127.0.0.1:{p}"))
                    .collect(),
            ),
            password: None,
            node: node.into(),
        })
        .await
    }

    /// The master that holds the engine's keys (they share one slot).
    pub fn keys_master(&self) -> u16 {
        let slot = cli(&[
            "-p",
            &self.ports[0].to_string(),
            "CLUSTER",
            "KEYSLOT",
            "sluice:{g}:feed",
        ]);
        let slot: u16 = slot.trim().parse().expect("a slot");
        let owner = self.ports.iter().copied().find(|p| {
            cli(&[
                "-p",
                &p.to_string(),
                "CLUSTER",
                "COUNTKEYSINSLOT",
                &slot.to_string(),
            ])
            .trim()
            .parse::<u64>()
            .is_ok_and(|n| n > 0)
        });
        owner.expect("a master holds the keys")
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for server in &mut self.servers {
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}
