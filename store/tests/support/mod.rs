//! A real `redis-server` for the Redis engine's tests, started on a free
//! loopback port with every write fsynced before it is answered
//! (`appendfsync always`), and stopped when dropped.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use store::redis::{Options, Redis};
use tempfile::TempDir;

pub struct RedisServer {
    server: Child,
    pub port: u16,
    _dir: TempDir,
}

impl RedisServer {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let server = Command::new("redis-server")
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
            .arg(dir.path())
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
            std::thread::sleep(Duration::from_millis(10));
        }
        Self {
            server,
            port,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// How many of `keys` exist.
    #[allow(dead_code)] // the contract's test binary does not look at keys
    pub fn exists(&self, keys: &[String]) -> u64 {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "EXISTS"])
            .args(keys)
            .output()
            .expect("redis-cli (it comes with redis-server)");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a count")
    }

    /// A store on this server, as node `node`.
    pub async fn open(&self, node: &str) -> Result<Redis, store::StoreError> {
        Redis::open(Options {
            url: self.url(),
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
