//! A real `redis-server` for nodes sharing one Redis: started on a free
//! loopback port, every write fsynced before it is answered (`appendonly
//! yes`, `appendfsync always`), stopped when dropped.

use std::{
    path::Path,
    process::{Child, Stdio},
    time::Duration,
};

use crate::{MustReachEnd, free_port, peers, wait_until};

pub struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    /// Starts one, keeping its files in `dir` (fails the test without
    /// `redis-server`, naming its install command).
    pub fn start(end: &MustReachEnd, dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port();
        let child = peers::redis_server(end)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        wait_until("redis-server listening", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Self { child, port }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
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
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
