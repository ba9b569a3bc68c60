//! The Redis engine passes the store's contract, against a real
//! `redis-server` started for each test on a free loopback port, with
//! every write fsynced before it is answered (`appendfsync always`).

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use store::{
    Store,
    contract::Harness,
    redis::{Options, Redis},
};
use tempfile::TempDir;

struct RedisHarness {
    server: Child,
    port: u16,
    _dir: TempDir,
}

impl RedisHarness {
    fn new() -> Self {
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
}

impl Drop for RedisHarness {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

#[async_trait]
impl Harness for RedisHarness {
    async fn open(&self) -> Arc<dyn Store> {
        let options = Options {
            url: format!("redis://127.0.0.1:{}/0", self.port),
            password: None,
            node: "contract".into(),
        };
        Arc::new(Redis::open(options).await.expect("connect to redis-server"))
    }
}

store::contract_suite!(RedisHarness::new());
