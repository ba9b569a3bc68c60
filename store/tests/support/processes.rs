//! `redis-server` processes for tests: one on a free loopback port, or a
//! Redis Cluster of three masters (with replicas, or over TLS only), every
//! write fsynced before it is answered (`appendfsync always`), stopped
//! when dropped. Shared by the store's tests (`support`) and the
//! end-to-end tests of nodes on a Cluster, which include this file.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use tempfile::TempDir;

/// A free loopback port.
pub(crate) fn free_port() -> u16 {
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
pub(crate) fn spawn(port: u16, dir: &Path, extra: &[&str], certs: Option<&Certs>) -> Option<Child> {
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
        if started.elapsed() > Duration::from_secs(10) {
            // Not left running: it would hold the test runner's pipes.
            let _ = server.kill();
            let _ = server.wait();
            panic!("redis-server did not listen on port {port} within 10 s");
        }
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
pub(crate) fn cli(args: &[&str]) -> String {
    cli_with(None, args)
}

/// `redis-cli` with `args`, over TLS trusting `ca` if given; its output.
pub(crate) fn cli_with(ca: Option<&Path>, args: &[&str]) -> String {
    let tls = ca.map(|ca| vec!["--tls".into(), "--cacert".into(), ca.to_owned()]);
    let out = Command::new("redis-cli")
        .args(tls.unwrap_or_default())
        .args(args)
        .output()
        .expect("redis-cli (it comes with redis-server)");
    String::from_utf8_lossy(&out.stdout).into_owned()
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
    // A server also listens on its port + 10000 (the cluster bus). A port
    // found free may be found again once released: each is taken once
    // (two servers given one port made a cluster of a server twice).
    let mut ports: Vec<u16> = Vec::with_capacity(count);
    while ports.len() < count {
        let p = free_port();
        let bus = p + 10_000;
        let taken = ports
            .iter()
            .any(|&q| [q, q + 10_000].contains(&p) || [q, q + 10_000].contains(&bus));
        if p < 55_000 && !taken && TcpListener::bind(("127.0.0.1", bus)).is_ok() {
            ports.push(p);
        }
    }
    /// Those started so far, stopped unless all start (a panic included).
    struct Started(Vec<Child>);
    impl Drop for Started {
        fn drop(&mut self) {
            for server in &mut self.0 {
                let _ = server.kill();
                let _ = server.wait();
            }
        }
    }
    let mut started = Started(Vec::new());
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
        started.0.push(spawn(port, &own, &cluster, certs)?);
    }
    Some((ports, std::mem::take(&mut started.0)))
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

    /// Its servers' URLs: `rediss://` when it takes TLS.
    pub fn seeds(&self) -> Vec<String> {
        let scheme = if self.certs.is_some() {
            "rediss"
        } else {
            "redis"
        };
        (self.ports.iter())
            .map(|p| format!("{scheme}://127.0.0.1:{p}"))
            .collect()
    }

    /// The CA its certificates are signed by, when it takes TLS.
    pub fn ca(&self) -> Option<&Path> {
        self.certs.as_ref().map(|c| c.ca.as_path())
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

    /// Each live master's keys, by its port.
    pub fn keys_by_master(&self) -> Vec<(u16, Vec<String>)> {
        self.live()
            .filter(|p| {
                self.cli(&["-p", &p.to_string(), "ROLE"])
                    .lines()
                    .next()
                    .is_some_and(|role| role.trim() == "master")
            })
            .map(|p| {
                let keys = self.cli(&["-p", &p.to_string(), "KEYS", "*"]);
                (
                    p,
                    keys.lines()
                        .map(str::to_owned)
                        .filter(|k| !k.is_empty())
                        .collect(),
                )
            })
            .collect()
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
