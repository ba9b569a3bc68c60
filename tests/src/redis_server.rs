//! A real `redis-server` for nodes sharing one Redis: started on a free
//! loopback port, every write fsynced before it is answered (`appendonly
//! yes`, `appendfsync always`), stopped when dropped. One started with
//! `start_tls` also takes TLS on a second port, with a certificate for
//! `127.0.0.1` signed by a throw-away CA (`Tls::ca`).

use std::{
    path::{Path, PathBuf},
    process::{Child, Stdio},
    time::Duration,
};

use crate::{
    MustReachEnd, free_port, peers,
    tls_proxy::{make_ca_and_localhost_cert, make_client_cert},
    wait_until,
};

pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    tls: Option<Tls>,
    /// The port of the master it replicates, if it is a replica.
    master: Option<u16>,
}

/// A server's TLS port and the CA its certificate is signed by; and, if
/// it asks its clients for a certificate, one the CA signed, with its key.
pub struct Tls {
    pub port: u16,
    pub ca: PathBuf,
    pub client: Option<(PathBuf, PathBuf)>,
}

impl RedisServer {
    /// Starts one, keeping its files in `dir` (fails the test without
    /// `redis-server`, naming its install command).
    pub fn start(end: &MustReachEnd, dir: &Path) -> Self {
        Self::start_with(end, dir, None)
    }

    /// Starts one that takes TLS too (`tls`, `tls_url`).
    pub fn start_tls(end: &MustReachEnd, dir: &Path) -> Self {
        Self::start_with(end, dir, Some(false))
    }

    /// Starts one that takes TLS too and asks each client for a
    /// certificate (`tls-auth-clients yes`, Redis's default with TLS).
    pub fn start_tls_asking_clients(end: &MustReachEnd, dir: &Path) -> Self {
        Self::start_with(end, dir, Some(true))
    }

    /// Starts a replica of this server, its files in `dir`, and waits
    /// until it has caught up.
    pub fn start_replica(&self, end: &MustReachEnd, dir: &Path) -> Self {
        // Its first sync starts at once, not after 5 s.
        self.text(end, &["CONFIG", "SET", "repl-diskless-sync-delay", "0"]);
        std::fs::create_dir_all(dir).unwrap();
        let mut replica = Self::new(dir, None);
        replica.master = Some(self.port);
        for _ in 0..5 {
            if replica.try_start(end) {
                wait_until("the replica caught up", Duration::from_secs(10), || {
                    (replica.text(end, &["INFO", "replication"])).contains("master_link_status:up")
                });
                return replica;
            }
            replica.port = free_port();
        }
        panic!("no free port for a redis-server replica after 5 tries")
    }

    /// `tls`: whether it takes TLS, and then whether it asks clients for
    /// a certificate.
    fn new(dir: &Path, tls: Option<bool>) -> Self {
        Self {
            child: None,
            port: free_port(),
            dir: dir.to_owned(),
            tls: tls.map(|ask_clients| Tls {
                port: free_port(),
                ca: dir.join("ca.pem"),
                client: ask_clients
                    .then(|| (dir.join("client-cert.pem"), dir.join("client-key.pem"))),
            }),
            master: None,
        }
    }

    fn start_with(end: &MustReachEnd, dir: &Path, tls: Option<bool>) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        if let Some(ask_clients) = tls {
            make_ca_and_localhost_cert(end, dir, "");
            if ask_clients {
                let signer = ("ca.pem", "ca-key.pem");
                make_client_cert(
                    end,
                    dir,
                    "/CN=sluice-node",
                    signer,
                    "client-key.pem",
                    "client-cert.pem",
                );
            }
        }
        for _ in 0..5 {
            let mut server = Self::new(dir, tls);
            if server.try_start(end) {
                return server;
            }
        }
        panic!("no free port for redis-server after 5 tries")
    }

    /// Starts it again on the same port and files (after `kill9`).
    pub fn restart(&mut self, end: &MustReachEnd) {
        assert!(
            self.try_start(end),
            "redis-server could not listen on port {} again",
            self.port
        );
    }

    /// Starts it on its port; `false` when it could not listen there
    /// (another test's server took the port since it was found free).
    fn try_start(&mut self, end: &MustReachEnd) -> bool {
        let port = self.port;
        let mut server = peers::redis_server(end);
        server
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "yes"])
            .args(["--appendfsync", "always"])
            .arg("--dir")
            .arg(&self.dir);
        if let Some(master) = self.master {
            server.args(["--replicaof", "127.0.0.1", &master.to_string()]);
        }
        if let Some(tls) = &self.tls {
            let file = |name: &str| self.dir.join(name).to_str().unwrap().to_owned();
            server
                .args(["--tls-port", &tls.port.to_string()])
                .args(["--tls-cert-file", &file("cert.pem")])
                .args(["--tls-key-file", &file("key.pem")])
                .args(["--tls-ca-cert-file", &file("ca.pem")])
                .args([
                    "--tls-auth-clients",
                    if tls.client.is_some() { "yes" } else { "no" },
                ]);
        }
        // Owned from the start: if it never listens, the failing test's
        // drop kills it instead of leaving it holding the runner's pipes.
        let child = self
            .child
            .insert(server.stdout(Stdio::null()).spawn().unwrap());
        let mut exited = false;
        wait_until("redis-server listening", Duration::from_secs(10), || {
            exited = child.try_wait().is_ok_and(|status| status.is_some());
            exited || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        // Listening, but is it ours?
        let dir = peers::redis_cli(end)
            .args(["-p", &port.to_string(), "CONFIG", "GET", "dir"])
            .output()
            .unwrap();
        let ours = !exited
            && String::from_utf8_lossy(&dir.stdout)
                .contains(self.dir.canonicalize().unwrap().to_str().unwrap());
        if !ours {
            self.kill9();
        }
        ours
    }

    /// SIGKILL: Redis is gone until `restart`.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP, then SIGCONT after `how_long`: Redis answers nothing
    /// meanwhile (a failover or a stalled host), and keys expire while it
    /// is stopped.
    pub fn pause(&self, how_long: Duration) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        for (signal, then) in [("-STOP", how_long), ("-CONT", Duration::ZERO)] {
            let sent = std::process::Command::new("kill")
                .args([signal, &pid])
                .status()
                .unwrap();
            assert!(sent.success(), "kill {signal} {pid}");
            std::thread::sleep(then);
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Its TLS port and CA, if it was started with `start_tls`.
    pub fn tls(&self) -> Option<&Tls> {
        self.tls.as_ref()
    }

    /// The `rediss://` URL of its TLS port (started with `start_tls`).
    pub fn tls_url(&self) -> String {
        let tls = self.tls().expect("started with start_tls");
        format!("rediss://127.0.0.1:{}/0", tls.port)
    }

    /// `redis-cli` with `args` against this server; its answer (`--json`).
    pub fn cli(&self, end: &MustReachEnd, args: &[&str]) -> serde_json::Value {
        let out = peers::redis_cli(end)
            .args(["-p", &self.port.to_string(), "--json"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
        // Binary values come as their raw bytes: read lossily.
        serde_json::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap()
    }

    /// `redis-cli` with `args` against this server; its answer as text.
    fn text(&self, end: &MustReachEnd, args: &[&str]) -> String {
        let out = peers::redis_cli(end)
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The `[store]` section of a node named `node` on this server.
    pub fn store_config(&self, node: &str) -> String {
        format!(
            "[store]\nengine = \"redis\"\nurl = \"{}\"\nnode = \"{node}\"\n",
            self.url()
        )
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill9();
    }
}
