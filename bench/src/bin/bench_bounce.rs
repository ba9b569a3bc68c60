//! Bounce classification throughput on one thread.
//!
//! Loads every corpus file (`bounce/testdata/eml/*.eml`) into memory, then
//! classifies them round-robin for a bounded time, in half-second rounds,
//! and prints bounces/s per wall-clock second and per second of this
//! thread's CPU time (the per-core figure: median and best round, which
//! stay meaningful when other processes share the machine).
//!
//! `cargo run --release -p bench --bin bench_bounce [SECONDS]` (default 3).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bench::args::positional;

/// Target from issue 5: bounces per second per core.
const TARGET: f64 = 20_000.0;

fn main() -> Result<()> {
    let seconds: f64 = positional(1, "seconds", 3.0)?;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bounce/testdata/eml");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "eml") {
            files
                .push(std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?);
        }
    }
    if files.is_empty() {
        bail!("no corpus files in {}", dir.display());
    }
    let bytes: usize = files.iter().map(Vec::len).sum();

    // Warm up (builds the rule automaton, touches the data).
    let mut recipients = 0usize;
    for raw in &files {
        recipients += bounce::classify(raw)?.recipients.len();
    }

    // Rounds of about half a second each, so that a burst of load from
    // other processes on a shared machine shows as one slow round.
    let rounds = ((seconds / 0.5).round() as usize).max(1);
    let round_budget = Duration::from_secs_f64(seconds / rounds as f64);
    let mut per_core = Vec::with_capacity(rounds);
    let mut done = 0usize;
    let start = Instant::now();
    for _ in 0..rounds {
        let cpu_start = bench::cpu::thread_seconds();
        let round_start = Instant::now();
        let mut round_done = 0usize;
        while round_start.elapsed() < round_budget {
            for raw in &files {
                let bounce = bounce::classify(std::hint::black_box(raw))?;
                std::hint::black_box(&bounce);
            }
            round_done += files.len();
        }
        let wall = round_start.elapsed().as_secs_f64();
        let cpu = match (cpu_start, bench::cpu::thread_seconds()) {
            (Some(a), Some(b)) if b > a => b - a,
            _ => wall,
        };
        per_core.push(round_done as f64 / cpu);
        done += round_done;
    }
    let wall = start.elapsed().as_secs_f64();
    per_core.sort_by(f64::total_cmp);
    let median = per_core[per_core.len() / 2];
    let best = per_core[per_core.len() - 1];
    println!(
        "bench_bounce: {} files ({:.1} KiB avg, {recipients} recipients), {done} classifications in {wall:.2}s on 1 thread",
        files.len(),
        bytes as f64 / files.len() as f64 / 1024.0,
    );
    println!(
        "bench_bounce: {:.0} bounces/s (wall clock)",
        done as f64 / wall
    );
    println!(
        "bench_bounce: per core (thread CPU time), {rounds} rounds: median {median:.0} bounces/s, best {best:.0} bounces/s"
    );
    println!(
        "bench_bounce: target {TARGET:.0} bounces/s per core (median): {}",
        if median >= TARGET { "met" } else { "NOT met" }
    );
    Ok(())
}
