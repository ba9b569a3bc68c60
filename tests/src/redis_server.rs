//! A real `redis-server` for nodes sharing one Redis: started on a free
//! loopback port, every write fsynced before it is answered (`appendonly
//! yes`, `appendfsync always`), stopped when dropped.

use std::{
    path::{Path, PathBuf},
    process::{Child, Stdio},
    time::Duration,
};

use crate::{MustReachEnd, free_port, peers, wait_until};

pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts one, keeping its files in `dir` (fails the test without
    /// `redis-server`, naming its install command).
    pub fn start(end: &MustReachEnd, dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let mut server = Self {
            child: None,
            port: free_port(),
            dir: dir.to_owned(),
        };
        server.restart(end);
        server
    }

    /// Starts it again on the same port and files (after `kill9`).
    pub fn restart(&mut self, end: &MustReachEnd) {
        let port = self.port;
        let child = peers::redis_server(end)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "yes"])
            .args(["--appendfsync", "always"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        wait_until("redis-server listening", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    /// SIGKILL: Redis is gone until `restart`.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
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
