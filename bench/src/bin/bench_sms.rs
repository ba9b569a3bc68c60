//! SMS throughput of a started campaign through the whole pipeline (store
//! claim → SMPP bind → SMSC sink → receipt → `delivered` fact), against a
//! bare rusmppc loop on the same sink in the same process, with the same
//! connection count and window:
//! `cargo run --release -p bench --bin bench_sms [MESSAGES] [BINDS] [WINDOW]`
//! (100,000 messages, 1 bind, window 64 by default). A second baseline, the
//! same loop over sluice's own SMPP session, shows what the pipeline costs
//! on top of the client it uses.

use std::time::{Duration, Instant};

use anyhow::ensure;
use bench::{
    args::positional,
    cpu,
    http::Api,
    sms_baseline::{bare_rusmppc_rate, bare_session_rate},
    sms_campaign::{self, metric},
    smsc_sink::SmscSink,
};
use gateway::config::Smsc;
use tokio_util::sync::CancellationToken;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = positional(1, "messages", 100_000)?;
    let binds: usize = positional(2, "binds", 1)?;
    let window: usize = positional(3, "window", 64)?;
    let sink = SmscSink::start().await?;

    // BENCH_BARE=0 leaves the baselines out (bench/instructions.sh counts
    // the pipeline's instructions alone, under valgrind, where rusmppc's
    // loop takes minutes).
    let baselines = if std::env::var("BENCH_BARE").as_deref() == Ok("0") {
        None
    } else {
        Some(baselines(&sink.addr(), n, window).await?)
    };

    let dir = tempfile::tempdir()?;
    let mut config = bench::loopback_config(dir.path());
    config.dispatch.claim_batch = 1024;
    config.sms.smsc = vec![toml::from_str::<Smsc>(&format!(
        "host = \"127.0.0.1\"\nport = {}\nsystem_id = \"bench\"\nbinds = {binds}\nwindow = {window}",
        sink.port
    ))?];
    let shutdown = CancellationToken::new();
    let running = gateway::start(config, shutdown.clone()).await?;
    let api = Api::new(running.api);
    sms_campaign::declare_and_upload(&api, n).await?;
    // Wait for the bind before starting the clock.
    sms_campaign::wait_ready(&api).await?;

    let submits_before = sink.submits();
    // bench/profile.sh starts recording at this line.
    eprintln!("bench_sms: starting the campaign");
    let cpu_before = cpu::process_seconds();
    let (elapsed, counts) = sms_campaign::run_until_delivered(&api, n).await?;
    let sluice_cpu = cpu::micros_per_message_since(cpu_before, n);
    // The receipt counter is bumped just after the facts are durable.
    let settled = Instant::now();
    let metrics = loop {
        let metrics = api.text("/metrics").await?;
        let matched = metric(&metrics, "sluice_smpp_receipts_total", "result=\"matched\"");
        if matched >= n as f64 || settled.elapsed() > Duration::from_secs(5) {
            break metrics;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    shutdown.cancel();
    running.stopped().await;
    let pipeline = n as f64 / elapsed;
    let matched = metric(&metrics, "sluice_smpp_receipts_total", "result=\"matched\"");
    let unmatched = metric(
        &metrics,
        "sluice_smpp_receipts_total",
        "result=\"unmatched\"",
    );
    println!(
        "sluice, {binds} bind(s), window {window}: {n} messages start→all delivered facts in {elapsed:.2} s: {pipeline:.0} messages/s"
    );
    println!(
        "sink submits: {}; receipts matched {matched}, unmatched {unmatched} ({:.1}% matched); counts {counts}",
        sink.submits() - submits_before,
        100.0 * matched / n as f64
    );
    println!("sluice: {sluice_cpu:.1} µs CPU per message (the whole daemon and the sink)");
    if let Some(Baselines {
        rusmppc,
        rusmppc_cpu,
        session,
        session_cpu,
    }) = baselines
    {
        println!(
            "ratio sluice / bare rusmppc: {:.2} (rate), {:.2} (CPU per message, lower is better)",
            pipeline / rusmppc,
            sluice_cpu / rusmppc_cpu
        );
        println!(
            "ratio sluice / bare sluice session: {:.2} (rate), {:.2} (CPU per message)",
            pipeline / session,
            sluice_cpu / session_cpu
        );
    }
    Ok(())
}

/// The two bare loops' rates (messages/s) and CPU per message (µs).
struct Baselines {
    rusmppc: f64,
    rusmppc_cpu: f64,
    session: f64,
    session_cpu: f64,
}

/// Runs both bare loops on `sink`, one after the other, and prints them.
async fn baselines(sink: &str, n: usize, window: usize) -> anyhow::Result<Baselines> {
    let cpu_before = cpu::process_seconds();
    let bare = bare_rusmppc_rate(sink, n, window).await?;
    let bare_cpu = cpu::micros_per_message_since(cpu_before, n);
    ensure!(bare.receipts == n, "bare run incomplete: {bare:?}");
    println!(
        "bare rusmppc, 1 connection, window {window}: {:.0} messages/s, {bare_cpu:.1} µs CPU per message (client and sink)",
        bare.rate()
    );

    let cpu_before = cpu::process_seconds();
    let own = bare_session_rate(sink, n, window).await?;
    let own_cpu = cpu::micros_per_message_since(cpu_before, n);
    ensure!(own.receipts == n, "bare session run incomplete: {own:?}");
    println!(
        "bare sluice SMPP session, 1 connection, window {window}: {:.0} messages/s, {own_cpu:.1} µs CPU per message (client and sink)",
        own.rate()
    );

    Ok(Baselines {
        rusmppc: bare.rate(),
        rusmppc_cpu: bare_cpu,
        session: own.rate(),
        session_cpu: own_cpu,
    })
}
