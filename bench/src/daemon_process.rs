//! `sluice serve` in a process of its own, so that its memory is its own:
//! the binary named by `BENCH_SLUICE_BIN` (default `target/release/sluice`),
//! its e-mail relay an SMTP sink of the bench.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context;

use crate::http::Api;

/// The daemon, killed when dropped.
pub struct Daemon {
    child: Child,
    pub api: Api,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    pub async fn start(dir: &Path, sink_port: u16) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let config = dir.join("sluice.toml");
        std::fs::write(
            &config,
            format!(
                "[listen]\napi = \"127.0.0.1:{port}\"\ntracking = \"127.0.0.1:0\"\n\
                 bounce = \"127.0.0.1:0\"\n\n[[email.relays]]\nhost = \"127.0.0.1\"\n\
                 port = {sink_port}\nconnections = 16\n"
            ),
        )?;
        let bin = std::env::var_os("BENCH_SLUICE_BIN")
            .map_or_else(|| PathBuf::from("target/release/sluice"), PathBuf::from);
        let child = Command::new(&bin)
            .args(["serve", "--config"])
            .arg(&config)
            .arg("--data")
            .arg(dir.join("data"))
            .env_remove("SLUICE_API_TOKENS")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {} (BENCH_SLUICE_BIN)", bin.display()))?;
        let daemon = Self {
            child,
            api: Api::new(([127, 0, 0, 1], port).into()),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while daemon.api.text("/healthz").await.is_err() {
            anyhow::ensure!(Instant::now() < deadline, "the daemon never answered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(daemon)
    }

    /// A field of `/proc/<pid>/status` in bytes (`VmRSS`, `VmHWM`).
    pub fn memory(&self, field: &str) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
            .with_context(|| format!("no {field} in /proc/<pid>/status"))?;
        Ok(kib * 1024)
    }

    /// Starts the peak of `memory("VmHWM")` over from the RSS of now
    /// (`/proc/<pid>/clear_refs`), to measure one step's peak.
    pub fn reset_peak(&self) -> anyhow::Result<()> {
        std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5")
            .context("resetting the peak RSS (/proc/<pid>/clear_refs)")
    }
}
