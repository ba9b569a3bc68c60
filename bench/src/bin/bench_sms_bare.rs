//! The bare SMPP baseline: one rusmppc connection against the in-process
//! SMSC sink, submit to receipt:
//! `cargo run --release -p bench --bin bench_sms_bare [MESSAGES] [WINDOW]`
//! (200,000 messages, window 64 by default).

use std::sync::atomic::Ordering;

use anyhow::ensure;
use bench::{sms_baseline::bare_rusmppc_rate, smsc_sink::SmscSink};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let messages: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(200_000);
    let window: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(64);
    let sink = SmscSink::start().await?;
    let run = bare_rusmppc_rate(&sink.addr(), messages, window).await?;
    ensure!(
        run.submitted == messages && run.receipts == messages,
        "incomplete run: {run:?}"
    );
    println!(
        "bare rusmppc, 1 connection, window {window}: {messages} messages submit→receipt in {:.2} s",
        run.elapsed.as_secs_f64()
    );
    println!("rate: {:.0} messages/s", run.rate());
    println!(
        "sink: {} submits, {} receipts sent, {} acknowledged",
        sink.submits(),
        sink.counters.receipts_sent.load(Ordering::Relaxed),
        sink.receipts_acked()
    );
    Ok(())
}
