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

use std::path::{Path, PathBuf};

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

/// A throw-away CA and a certificate it signs for `127.0.0.1`, made with
/// `openssl`, for servers that take TLS only.
pub struct Certs {
    pub ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Certs {
    /// Makes them in `dir`.
    fn make(dir: &Path) -> Self {
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        let made = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(["req", "-x509", "-nodes", "-days", "1"])
                .args(ec)
                .args(args)
                .current_dir(dir)
                .output()
                .expect("openssl (apt-get install openssl)");
            assert!(out.status.success(), "openssl: {out:?}");
        };
        made(&[
            "-subj",
            "/CN=test-ca",
            "-keyout",
            "ca-key.pem",
            "-out",
            "ca.pem",
        ]);
        made(&[
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
        ]);
        Self {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }

    /// `redis-server`'s arguments to take TLS only, on `port`, its cluster
    /// bus and replication too.
    fn server_args(&self, port: u16) -> Vec<String> {
        let file = |p: &PathBuf| p.to_str().expect("a UTF-8 path").to_owned();
        [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &file(&self.cert),
            "--tls-key-file",
            &file(&self.key),
            "--tls-ca-cert-file",
            &file(&self.ca),
            "--tls-auth-clients",
            "no",
            "--tls-cluster",
            "yes",
            "--tls-replication",
            "yes",
        ]
        .map(str::to_owned)
        .to_vec()
    }
}

/// Starts `redis-server` on `port` with its files in `dir` and `extra`
/// arguments, over TLS only with `certs`; waits until it listens. `None`
/// when the port was taken meanwhile (another test's server got it first:
/// ours exited).
fn spawn(port: u16, dir: &Path, extra: &[&str], certs: Option<&Certs>) -> Option<Child> {
    let tls = certs.map(|c| c.server_args(port)).unwrap_or_default();
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
        .args(&tls)
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
    let ca = certs.map(|c| c.ca.as_path());
    let theirs = cli_with(ca, &["-p", &port.to_string(), "CONFIG", "GET", "dir"]);
    if !theirs.contains(dir.to_str().unwrap_or_default()) {
        let _ = server.kill();
        let _ = server.wait();
        return None;
    }
    Some(server)
}

/// `redis-cli` with `args`; its output.
fn cli(args: &[&str]) -> String {
    cli_with(None, args)
}

/// `redis-cli` with `args`, over TLS trusting `ca` if given; its output.
fn cli_with(ca: Option<&Path>, args: &[&str]) -> String {
    let tls = ca.map(|ca| vec!["--tls".into(), "--cacert".into(), ca.to_owned()]);
    let out = Command::new("redis-cli")
        .args(tls.unwrap_or_default())
        .args(args)
        .output()
        .expect("redis-cli (it comes with redis-server)");
    String::from_utf8_lossy(&out.stdout).into_owned()
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
        Redis::open(Options {
            servers: Servers::One(self.url()),
            password: None,
            node: node.into(),
            replicas,
            certificates: Default::default(),
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

/// `count` cluster-enabled servers on free ports, their files under `dir`;
/// `None` when another test's server took one of the ports meanwhile
/// (those started are stopped). A master missing for a second is taken
/// for failed (`cluster-node-timeout`), so that a replica takes over in
/// seconds.
fn cluster_servers(
    dir: &Path,
    count: usize,
    certs: Option<&Certs>,
) -> Option<(Vec<u16>, Vec<Child>)> {
    // A server also listens on its port + 10000 (the cluster bus).
    let ports: Vec<u16> = std::iter::repeat_with(free_port)
        .filter(|&p| p < 55_000 && TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok())
        .take(count)
        .collect();
    let mut servers = Vec::new();
    for &port in &ports {
        let own = dir.join(port.to_string());
        std::fs::create_dir_all(&own).expect("a directory");
        let cluster = [
            "--cluster-enabled",
            "yes",
            "--cluster-node-timeout",
            "1000",
            "--repl-diskless-sync-delay",
            "0",
        ];
        match spawn(port, &own, &cluster, certs) {
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
/// joined with `redis-cli --cluster create`), over TLS only if it has
/// `certs`.
pub struct RedisCluster {
    servers: Vec<Option<Child>>,
    ports: Vec<u16>,
    certs: Option<Certs>,
    _dir: TempDir,
}

impl RedisCluster {
    /// Three masters.
    pub fn start() -> Self {
        Self::start_with(0)
    }

    /// Three masters, each with `replicas` replicas.
    pub fn start_with(replicas: usize) -> Self {
        Self::start_cluster(replicas, false)
    }

    /// Three masters that take TLS only (a throw-away CA's certificate),
    /// their cluster bus too.
    pub fn start_tls() -> Self {
        Self::start_cluster(0, true)
    }

    fn start_cluster(replicas: usize, tls: bool) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let certs = tls.then(|| Certs::make(dir.path()));
        let (ports, servers) = (0..5)
            .find_map(|_| cluster_servers(dir.path(), 3 * (1 + replicas), certs.as_ref()))
            .expect("free ports for a cluster after 5 tries");
        let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let cluster = Self {
            servers: servers.into_iter().map(Some).collect(),
            ports,
            certs,
            _dir: dir,
        };
        let replicas = replicas.to_string();
        let mut create = vec!["--cluster", "create"];
        create.extend(nodes.iter().map(String::as_str));
        create.extend(["--cluster-replicas", &replicas, "--cluster-yes"]);
        cluster.cli(&create);
        let started = Instant::now();
        let synced = |p: &u16| {
            let info = cluster.cli(&["-p", &p.to_string(), "INFO", "replication"]);
            info.contains(&format!("connected_slaves:{replicas}"))
                || info.contains("master_link_status:up")
        };
        while !cluster.ports.iter().all(|p| cluster.is_ok(*p) && synced(p)) {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the cluster of {nodes:?} did not come up"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        cluster
    }

    /// `redis-cli` with `args`, over TLS if the cluster takes it.
    pub fn cli(&self, args: &[&str]) -> String {
        cli_with(self.certs.as_ref().map(|c| c.ca.as_path()), args)
    }

    /// Whether the server on `port` sees the cluster whole.
    fn is_ok(&self, port: u16) -> bool {
        self.cli(&["-p", &port.to_string(), "CLUSTER", "INFO"])
            .contains("cluster_state:ok")
    }

    /// A store on this cluster, as node `node`.
    pub async fn open(&self, node: &str) -> Result<Redis, store::StoreError> {
        self.open_with(node, 0).await
    }

    /// A store on this cluster whose writes wait for `replicas` replicas;
    /// over TLS, it trusts the cluster's CA (`store.tls_ca_file`).
    pub async fn open_with(&self, node: &str, replicas: u32) -> Result<Redis, store::StoreError> {
        let scheme = if self.certs.is_some() {
            "rediss"
        } else {
            "redis"
        };
        let ca = self
            .certs
            .as_ref()
            .map(|c| std::fs::read(&c.ca).expect("the CA"));
        Redis::open(Options {
            servers: Servers::Cluster(
                self.ports
                    .iter()
                    .map(|p| format!("{scheme}://127.0.0.1:{p}"))
                    .collect(),
            ),
            password: None,
            node: node.into(),
            replicas,
            certificates: store::redis::Certificates { ca, client: None },
        })
        .await
    }

    /// The master that holds the engine's keys (they share one slot), as
    /// a live server of the cluster sees it.
    pub fn keys_master(&self) -> u16 {
        self.serving_master()
            .expect("a live master serves the engine's slot")
    }

    /// The master that serves the engine's slot, unless it is failing.
    fn serving_master(&self) -> Option<u16> {
        let asked = self.live().next().expect("a live server");
        let slot = self.cli(&[
            "-p",
            &asked.to_string(),
            "CLUSTER",
            "KEYSLOT",
            "sluice:{g}:feed",
        ]);
        let slot: u16 = slot.trim().parse().expect("a slot");
        let nodes = self.cli(&["-p", &asked.to_string(), "CLUSTER", "NODES"]);
        nodes.lines().find_map(|line| master_serving(line, slot))
    }

    /// The ports of the servers not killed.
    fn live(&self) -> impl Iterator<Item = u16> + '_ {
        self.ports
            .iter()
            .zip(&self.servers)
            .filter(|(_, s)| s.is_some())
            .map(|(p, _)| *p)
    }

    /// Kills the server on `port` (SIGKILL: it answers nothing more).
    pub fn kill(&mut self, port: u16) {
        let at = self.ports.iter().position(|p| *p == port).expect("ours");
        if let Some(mut server) = self.servers[at].take() {
            let _ = server.kill();
            let _ = server.wait();
        }
    }

    /// Waits until every live server sees the cluster whole again and a
    /// live master serves the engine's slot; the master's port.
    pub fn await_failover(&self, within: Duration) -> u16 {
        let started = Instant::now();
        loop {
            let ok = self.live().all(|p| self.is_ok(p));
            let master = ok.then(|| self.serving_master()).flatten();
            if let Some(master) = master.filter(|m| self.live().any(|p| p == *m)) {
                return master;
            }
            assert!(
                started.elapsed() < within,
                "no replica took over within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The port of the master that `line` of `CLUSTER NODES` names, if it is
/// live and serves `slot` (its ranges are `a-b` or `a`).
fn master_serving(line: &str, slot: u16) -> Option<u16> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let flags = fields.get(2)?;
    if !flags.contains("master") || flags.contains("fail") {
        return None;
    }
    let serves = fields.iter().skip(8).any(|range| {
        let mut ends = range.splitn(2, '-').map(|n| n.parse::<u16>());
        match (ends.next(), ends.next()) {
            (Some(Ok(a)), Some(Ok(b))) => (a..=b).contains(&slot),
            (Some(Ok(a)), None) => a == slot,
            _ => false,
        }
    });
    let address = fields.get(1)?.split('@').next()?;
    serves.then(|| address.rsplit(':').next()?.parse().ok())?
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for server in self.servers.iter_mut().flatten() {
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}
