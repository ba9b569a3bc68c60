//! Ingest at scale, the daemon in its own process so that its memory is its
//! own: `sluice serve` (the binary named by `BENCH_SLUICE_BIN`, default
//! `target/release/sluice`) takes `N` participants (default 10 million) as
//! NDJSON uploads of at most `U` each (default 1 million: a body stays under
//! the API's 256 MB limit), then the campaign is started. Prints the ingest
//! rate, the daemon's peak and settled RSS (per participant), the store's
//! bytes on disk per participant, and the time from `start` to the first
//! message at an SMTP sink.
//!
//! `cargo run --release -p bench --bin bench_ingest_scale [N] [U]`
//!
//! Run it against an older build with `BENCH_SLUICE_BIN=/path/to/sluice`.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use bench::{args::positional, daemon_process::Daemon, smtp_sink::SmtpSink};

/// Bytes of every file under `dir`.
fn disk_bytes(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            disk_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = positional(1, "participants", 10_000_000)?;
    let per_upload: usize = positional(2, "participants per upload", 1_000_000)?;
    anyhow::ensure!(per_upload > 0, "participants per upload must be above 0");
    let sink = SmtpSink::start().await?;
    let dir = tempfile::tempdir()?;
    let daemon = Daemon::start(dir.path(), sink.port).await?;
    let decl = serde_json::json!({"channel": "email", "name": "scale", "content": {"email": {
        "from": "offers@telco.example", "subject": "{{name}}", "text": "Hello {{name}}"}}});
    daemon.api.declare("scale", &decl).await?;
    let idle_rss = daemon.memory("VmRSS")?;
    let mut uploading = Duration::ZERO;
    for from in (0..n).step_by(per_upload) {
        let to = (from + per_upload).min(n);
        let body = bench::participants_ndjson(from, to);
        let started = Instant::now();
        daemon.api.upload("scale", body, to - from).await?;
        uploading += started.elapsed();
    }
    let peak = daemon.memory("VmHWM")?;
    let settled = daemon.memory("VmRSS")?;
    let disk = disk_bytes(&dir.path().join("data"))?;
    let started = Instant::now();
    daemon.api.start("scale").await?;
    while sink.received() == 0 {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(60),
            "no message within 60 s of start"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let first = started.elapsed();
    let per = |bytes: u64| bytes as f64 / n as f64;
    let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
    println!("participants: {n} in uploads of {per_upload}");
    println!(
        "ingest: {:.0} participants/s (upload time {:.1} s)",
        n as f64 / uploading.as_secs_f64(),
        uploading.as_secs_f64()
    );
    println!(
        "daemon RSS: idle {:.0} MiB, peak {:.0} MiB, settled {:.0} MiB; \
         {:.0} bytes per participant over idle (settled), {:.0} (peak)",
        mib(idle_rss),
        mib(peak),
        mib(settled),
        per(settled.saturating_sub(idle_rss)),
        per(peak.saturating_sub(idle_rss))
    );
    println!(
        "disk: {:.0} MiB, {:.0} bytes per participant",
        mib(disk),
        per(disk)
    );
    println!(
        "first message {:.0} ms after start",
        first.as_secs_f64() * 1e3
    );
    Ok(())
}
