//! Bounce classification throughput on one thread.
//!
//! Loads every corpus file (`bounce/testdata/eml/*.eml`) into memory, then
//! classifies them round-robin for a bounded time and prints bounces/s,
//! both per wall-clock second and per second of this thread's CPU time
//! (the per-core figure; it stays honest when other processes share the
//! machine).
//!
//! `cargo run --release -p bench --bin bench_bounce [SECONDS]` (default 3).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Target from issue 5: bounces per second per core.
const TARGET: f64 = 20_000.0;

/// CPU time (user + system) of the calling thread, in seconds, from
/// `/proc/thread-self/stat` (Linux; `None` elsewhere).
fn thread_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the line, in clock ticks (100 per second).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn main() -> Result<()> {
    let seconds: f64 = match std::env::args().nth(1) {
        Some(s) => s.parse().context("SECONDS must be a number")?,
        None => 3.0,
    };
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

    let budget = Duration::from_secs_f64(seconds);
    let cpu_start = thread_cpu_seconds();
    let start = Instant::now();
    let mut done = 0usize;
    while start.elapsed() < budget {
        for raw in &files {
            let bounce = bounce::classify(std::hint::black_box(raw))?;
            std::hint::black_box(&bounce);
        }
        done += files.len();
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = match (cpu_start, thread_cpu_seconds()) {
        (Some(a), Some(b)) if b > a => Some(b - a),
        _ => None,
    };
    let wall_rate = done as f64 / wall;
    println!(
        "bench_bounce: {} files ({:.1} KiB avg, {recipients} recipients), {done} classifications in {wall:.2}s on 1 thread",
        files.len(),
        bytes as f64 / files.len() as f64 / 1024.0,
    );
    println!("bench_bounce: {wall_rate:.0} bounces/s (wall clock)");
    let per_core = match cpu {
        Some(cpu) => {
            let rate = done as f64 / cpu;
            println!("bench_bounce: {rate:.0} bounces/s per core (thread CPU time {cpu:.2}s)");
            rate
        }
        None => wall_rate,
    };
    println!(
        "bench_bounce: target {TARGET:.0} bounces/s per core: {}",
        if per_core >= TARGET { "met" } else { "NOT met" }
    );
    Ok(())
}
