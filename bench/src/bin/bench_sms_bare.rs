//! The bare SMPP baseline: one rusmppc connection against the in-process
//! SMSC sink, submit to receipt, next to the ceiling of the sink itself (the
//! same traffic from a raw codec client):
//! `cargo run --release -p bench --bin bench_sms_bare [MESSAGES] [WINDOW]`
//! (200,000 messages, window 64 by default).

use std::sync::atomic::Ordering;

use anyhow::ensure;
use bench::{
    args::positional,
    sms_baseline::{BareRun, bare_rusmppc_rate, raw_codec_rate},
    smsc_sink::SmscSink,
};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let messages: usize = positional(1, "messages", 200_000)?;
    let window: usize = positional(2, "window", 64)?;
    let sink = SmscSink::start().await?;
    let complete = |run: &BareRun| {
        ensure!(
            run.submitted == messages && run.receipts == messages,
            "incomplete run: {run:?}"
        );
        Ok(())
    };
    let raw = raw_codec_rate(&sink.addr(), messages, window).await?;
    complete(&raw)?;
    let bare = bare_rusmppc_rate(&sink.addr(), messages, window).await?;
    complete(&bare)?;
    println!("{messages} messages, 1 connection, window {window}, submit→receipt answered:");
    println!(
        "  raw codec client (sink ceiling): {:>8.0} messages/s ({:.2} s)",
        raw.rate(),
        raw.elapsed.as_secs_f64()
    );
    println!(
        "  bare rusmppc (baseline):         {:>8.0} messages/s ({:.2} s), {:.2} of the ceiling",
        bare.rate(),
        bare.elapsed.as_secs_f64(),
        bare.rate() / raw.rate()
    );
    println!(
        "sink: {} submits, {} receipts sent, {} acknowledged",
        sink.submits(),
        sink.counters.receipts_sent.load(Ordering::Relaxed),
        sink.receipts_acked()
    );
    Ok(())
}
