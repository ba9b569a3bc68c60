//! What reading a large audience costs the daemon: `N` participants
//! (default 2 million) are uploaded to one campaign, then the daemon's peak
//! RSS over what it held before is measured for each of the three readers
//! of a whole audience: the audience query (`GET .../participants?outcome=
//! pending`, counted as it streams), a next stage built from it
//! (`participants/from`), and a new content checked against every
//! participant (a `PUT` the check refuses). Each step runs in a daemon of its
//! own, its peak started over (`/proc/<pid>/clear_refs`) after the upload.
//!
//! `cargo run --release -p bench --bin bench_audience [N]`
//!
//! Run it against an older build with `BENCH_SLUICE_BIN=/path/to/sluice`.

use std::time::Instant;

use bench::{args::positional, daemon_process::Daemon, smtp_sink::SmtpSink};
use hyper::Method;

/// Participants per upload: a body stays under the API's 256 MB limit.
const PER_UPLOAD: usize = 1_000_000;

/// Runs `step`, printing its time and the daemon's peak RSS over what it
/// held before, in all and per participant.
async fn measured<F: std::future::Future<Output = anyhow::Result<()>>>(
    daemon: &Daemon,
    n: usize,
    what: &str,
    step: F,
) -> anyhow::Result<()> {
    daemon.reset_peak()?;
    let before = daemon.memory("VmRSS")?;
    let started = Instant::now();
    step.await?;
    let took = started.elapsed();
    let over = daemon.memory("VmHWM")?.saturating_sub(before);
    println!(
        "{what}: {:.2} s, peak RSS {:.0} MiB over the {:.0} MiB before ({:.0} bytes per participant)",
        took.as_secs_f64(),
        over as f64 / (1 << 20) as f64,
        before as f64 / (1 << 20) as f64,
        over as f64 / n as f64
    );
    Ok(())
}

/// The declaration of campaign `first` with `text` as its content.
fn first(text: &str) -> serde_json::Value {
    serde_json::json!({"channel": "email", "name": "first", "content": {"email": {
        "from": "offers@telco.example", "subject": "Offer", "text": text}}})
}

/// A daemon of its own for one step (what an earlier step allocated would
/// otherwise be reused), holding `first` with `n` participants and an empty
/// campaign `next`.
async fn daemon_with(dir: &std::path::Path, sink_port: u16, n: usize) -> anyhow::Result<Daemon> {
    let daemon = Daemon::start(dir, sink_port).await?;
    daemon
        .api
        .declare("first", &first("Hello {{name}}"))
        .await?;
    daemon
        .api
        .declare(
            "next",
            &serde_json::json!({"channel": "email", "name": "next"}),
        )
        .await?;
    for from in (0..n).step_by(PER_UPLOAD) {
        let to = (from + PER_UPLOAD).min(n);
        daemon
            .api
            .upload("first", bench::participants_ndjson(from, to), to - from)
            .await?;
    }
    Ok(daemon)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = positional(1, "participants", 2_000_000)?;
    let sink = SmtpSink::start().await?;
    println!("participants: {n}, a daemon of its own for each step");

    let dir = tempfile::tempdir()?;
    let daemon = daemon_with(dir.path(), sink.port, n).await?;
    measured(&daemon, n, "audience query", async {
        let lines = daemon
            .api
            .count_lines("/v1/campaigns/first/participants?outcome=pending")
            .await?;
        anyhow::ensure!(lines == n, "the audience answered {lines} lines");
        Ok(())
    })
    .await?;

    let dir = tempfile::tempdir()?;
    let daemon = daemon_with(dir.path(), sink.port, n).await?;
    measured(&daemon, n, "next stage (participants/from)", async {
        let source = serde_json::json!({"campaign": "first", "outcome": "pending"});
        let (status, answer) = daemon
            .api
            .call(
                Method::POST,
                "/v1/campaigns/next/participants/from",
                "application/json",
                source.to_string(),
            )
            .await?;
        anyhow::ensure!(
            status == 200 && answer["accepted"] == n,
            "participants/from answered {status}: {answer}"
        );
        Ok(())
    })
    .await?;

    let dir = tempfile::tempdir()?;
    let daemon = daemon_with(dir.path(), sink.port, n).await?;
    measured(&daemon, n, "content check (refused)", async {
        let (status, answer) = daemon
            .api
            .call(
                Method::PUT,
                "/v1/campaigns/first",
                "application/json",
                first("Hello {{name}}, your plan {{plan}}").to_string(),
            )
            .await?;
        anyhow::ensure!(status == 422, "the new content answered {status}: {answer}");
        Ok(())
    })
    .await?;
    Ok(())
}
