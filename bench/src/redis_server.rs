//! A `redis-server` of a benchmark's own: a free loopback port, every
//! write fsynced before it is answered (`appendfsync always`, what the
//! Redis engine needs for "acknowledged means durable"; the environment
//! may say otherwise), stopped when dropped; and what its `INFO` says.

use std::{
    collections::HashMap,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};

pub struct RedisServer {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// `appendfsync` is `always` unless `BENCH_REDIS_APPENDFSYNC` says
    /// otherwise (to see what the fsync of every write costs).
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(&[])
    }

    /// A replica of this server, once it has caught up with it.
    pub fn start_replica(&self) -> anyhow::Result<Self> {
        // Its first sync starts at once, not after 5 s.
        self.cli(&["CONFIG", "SET", "repl-diskless-sync-delay", "0"])?;
        let replica = Self::start_with(&["--replicaof", "127.0.0.1", &self.port.to_string()])?;
        poll_until(
            "the replica did not catch up",
            Duration::from_secs(10),
            Duration::from_millis(20),
            || {
                Ok(replica
                    .cli(&["INFO", "replication"])?
                    .contains("master_link_status:up"))
            },
        )?;
        Ok(replica)
    }

    /// A server that joins a Redis Cluster ([`RedisCluster`]).
    fn start_for_cluster() -> anyhow::Result<Self> {
        Self::start_with(&["--cluster-enabled", "yes", "--cluster-node-timeout", "5000"])
    }

    fn start_with(extra: &[&str]) -> anyhow::Result<Self> {
        let fsync = std::env::var("BENCH_REDIS_APPENDFSYNC").unwrap_or_else(|_| "always".into());
        let dir = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "yes", "--appendfsync", &fsync])
            .args(extra)
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .context("redis-server (apt-get install redis-server, or cargo xtask peers)")?;
        poll_until(
            "redis-server did not start",
            Duration::from_secs(10),
            Duration::from_millis(10),
            || Ok(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()),
        )?;
        Ok(Self {
            child,
            port,
            _dir: dir,
        })
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// `redis-cli` with `args` against this server; its output.
    pub fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .context("redis-cli")?;
        ensure!(out.status.success(), "redis-cli {args:?} failed");
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The `field:value` lines of `INFO section`.
    pub fn info(&self, section: &str) -> anyhow::Result<HashMap<String, String>> {
        Ok(self
            .cli(&["INFO", section])?
            .lines()
            .filter_map(|l| l.trim_end().split_once(':'))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect())
    }

    /// A number of `INFO section`.
    pub fn number(&self, section: &str, field: &str) -> anyhow::Result<f64> {
        self.info(section)?
            .get(field)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("INFO {section} has no number {field}"))
    }

    /// CPU seconds the server has used (user and system).
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        Ok(self.number("cpu", "used_cpu_user")? + self.number("cpu", "used_cpu_sys")?)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Redis Cluster of masters of a benchmark's own, joined with
/// `redis-cli --cluster create` (equal ranges of slots each).
pub struct RedisCluster {
    pub masters: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start(masters: usize) -> anyhow::Result<Self> {
        let masters = (0..masters)
            .map(|_| RedisServer::start_for_cluster())
            .collect::<anyhow::Result<Vec<_>>>()?;
        let nodes: Vec<String> = masters
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.port))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .status()
            .context("redis-cli --cluster create")?;
        ensure!(created.success(), "redis-cli --cluster create failed");
        poll_until(
            "the cluster did not come up",
            Duration::from_secs(20),
            Duration::from_millis(50),
            || {
                for master in &masters {
                    if !master
                        .cli(&["CLUSTER", "INFO"])?
                        .contains("cluster_state:ok")
                    {
                        return Ok(false);
                    }
                }
                Ok(true)
            },
        )?;
        Ok(Self { masters })
    }

    /// Its masters' URLs (`store.urls`).
    pub fn urls(&self) -> Vec<String> {
        self.masters
            .iter()
            .map(|m| format!("redis://127.0.0.1:{}", m.port))
            .collect()
    }

    /// Empties every master.
    pub fn flush(&self) -> anyhow::Result<()> {
        for master in &self.masters {
            master.cli(&["FLUSHALL"])?;
        }
        Ok(())
    }
}

/// Where `servers` spent their time since their stats were reset: the
/// commands by total time, with their calls per message of `n` (`INFO
/// commandstats`, which counts the commands scripts run too), summed over
/// the servers.
pub fn print_commandstats(servers: &[&RedisServer], n: usize) -> anyhow::Result<()> {
    let mut rows: HashMap<String, (f64, f64)> = HashMap::new();
    for server in servers {
        for (name, v) in server.info("commandstats")? {
            let field = |f: &str| {
                v.split(',')
                    .find_map(|kv| kv.strip_prefix(f)?.strip_prefix('='))
                    .and_then(|x| x.parse::<f64>().ok())
            };
            let (Some(name), Some(calls), Some(usec)) =
                (name.strip_prefix("cmdstat_"), field("calls"), field("usec"))
            else {
                continue;
            };
            let row = rows.entry(name.to_owned()).or_default();
            row.0 += calls;
            row.1 += usec;
        }
    }
    let mut rows: Vec<(String, (f64, f64))> = rows.into_iter().collect();
    rows.sort_by(|a, b| b.1.1.total_cmp(&a.1.1));
    for (name, (calls, usec)) in rows.iter().take(8) {
        println!(
            "  redis {name}: {:.3} calls per message, {:.1} µs per message",
            calls / n as f64,
            usec / n as f64
        );
    }
    Ok(())
}

/// Asks `ready` every `every` until it says yes; `failure` once `within`
/// has gone by first.
fn poll_until(
    failure: &str,
    within: Duration,
    every: Duration,
    mut ready: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    while !ready()? {
        ensure!(started.elapsed() < within, "{failure}");
        std::thread::sleep(every);
    }
    Ok(())
}
