//! Admission decisions per second on one core with ten million customers,
//! and bytes of quota state per customer.
//!
//! Each decision runs the whole admission path: campaign start/end,
//! exclusion day, send window (Europe/Berlin office hours), a load cap, the
//! per-segment quota (3 per 7 days) and the channel bucket. (Blacklists are
//! not part of it: the daemon checks its store's suppression list before it
//! asks for admission.) Bounded to a few seconds.
//!
//! `cargo run --release -p bench --bin bench_admission [customers] [seconds]`

use std::time::{Duration, Instant};

/// The daemon's allocator (see gateway/src/main.rs), so memory behaves as
/// it does in `sluice`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::bail;
use bench::args::positional;
use throttle::jiff;
use throttle::{
    Admission, CapSpec, CustomerKey, Decision, Limits, QuotaBook, QuotaSpec, Request, Suppression,
    Window, WindowSpec, hash64,
};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The 1-minute load average, so that each figure carries how busy the
/// machine was; "?" if unavailable.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(String::from))
        .unwrap_or_else(|| "?".into())
}

fn key(i: u64) -> CustomerKey {
    CustomerKey(hash64(&i.to_le_bytes()))
}

fn main() -> anyhow::Result<()> {
    let customers: u64 = positional(1, "customers", 10_000_000)?;
    let seconds: f64 = positional(2, "seconds", 3.0)?;
    let load_at_start = load_average();

    let weekdays = ["mon", "tue", "wed", "thu", "fri"]
        .map(String::from)
        .to_vec();
    let limits = Limits {
        rate_per_sec: 1e8,
        burst: Some(1_000_000),
        tz: "Europe/Berlin".into(),
        exclusion_days: ["2026-12-24", "2026-12-25", "2026-12-31"]
            .map(String::from)
            .to_vec(),
        caps: vec![CapSpec {
            days: Some(weekdays.clone()),
            hours: Some("08:00-20:00".into()),
            max: 1_000_000_000,
        }],
        quotas: [
            (
                "*".to_string(),
                QuotaSpec {
                    max: 3,
                    per: "P7D".into(),
                },
            ),
            (
                "gold".to_string(),
                QuotaSpec {
                    max: 1,
                    per: "P1D".into(),
                },
            ),
        ]
        .into(),
    };
    // Monday 2026-11-23 09:00 UTC (10:00 in Berlin), inside the window.
    let t0: jiff::Timestamp = "2026-11-23T09:00:00Z".parse()?;
    let t0_ns = t0.as_nanosecond();
    let mut admission = Admission::new(&limits)?;
    let mut window = Window::new(
        &WindowSpec {
            tz: "Europe/Berlin".into(),
            days: Some(weekdays),
            hours: Some(vec!["08:00-20:00".into()]),
        },
        Some("2026-11-01T00:00:00Z".parse()?),
        Some("2027-01-31T00:00:00Z".parse()?),
    )?;
    let mut quotas = QuotaBook::with_capacity(limits.quota_rules()?, t0, customers as usize);

    // Populate: every customer receives one message (10 M decisions).
    let mut tick: i128 = 0;
    let mut go = 0u64;
    let started = Instant::now();
    for i in 0..customers {
        tick += 1;
        let now = jiff::Timestamp::from_nanosecond(t0_ns + tick * 100)?;
        let req = Request {
            customer: key(i),
            segment: None,
        };
        if admission.admit(now, &mut window, &req, &mut quotas)? == Decision::Go {
            go += 1;
        }
    }
    let populate = started.elapsed();
    let populate_rate = customers as f64 / populate.as_secs_f64();

    // Measure: random customers, bounded by time; one call per message,
    // then batches of 256 messages sharing one `now` (what a dispatcher
    // that claims messages in batches does).
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let budget = Duration::from_secs_f64(seconds / 2.0);
    let mut outcomes = [0u64; 4];
    let mut count = |d: &Decision| {
        let slot = match d {
            Decision::Go => 0,
            Decision::Suppress(Suppression::QuotaExceeded { .. }) => 1,
            Decision::Suppress(Suppression::CampaignEnded) => 2,
            Decision::Defer { .. } => 3,
        };
        outcomes[slot] += 1;
    };
    let segments = [Some("gold"), Some("silver")];
    let mut single_n = 0u64;
    let cpu0 = bench::cpu::thread_seconds().unwrap_or(0.0);
    let started = Instant::now();
    loop {
        for _ in 0..65_536 {
            tick += 1;
            let now = jiff::Timestamp::from_nanosecond(t0_ns + tick * 100)?;
            let i = rng.next() % customers;
            let req = Request {
                customer: key(i),
                segment: segments[usize::from(!i.is_multiple_of(10))],
            };
            count(&admission.admit(now, &mut window, &req, &mut quotas)?);
        }
        single_n += 65_536;
        // BENCH_BATCH_ONLY=1 shortens this phase (for profiling the other).
        if started.elapsed() >= budget || std::env::var_os("BENCH_BATCH_ONLY").is_some() {
            break;
        }
    }
    let single_time = started.elapsed();
    let single_cpu = bench::cpu::thread_seconds().unwrap_or(0.0) - cpu0;
    let single_rate = single_n as f64 / single_time.as_secs_f64();

    let mut n = 0u64;
    let mut reqs = Vec::with_capacity(256);
    let mut out = Vec::with_capacity(256);
    let cpu0 = bench::cpu::thread_seconds().unwrap_or(0.0);
    let started = Instant::now();
    loop {
        for _ in 0..256 {
            tick += 256;
            let now = jiff::Timestamp::from_nanosecond(t0_ns + tick * 100)?;
            reqs.clear();
            out.clear();
            for _ in 0..256 {
                let i = rng.next() % customers;
                reqs.push(Request {
                    customer: key(i),
                    segment: segments[usize::from(!i.is_multiple_of(10))],
                });
            }
            admission.admit_batch(now, &mut window, &reqs, &mut quotas, &mut out)?;
            out.iter().for_each(&mut count);
        }
        n += 65_536;
        if started.elapsed() >= budget {
            break;
        }
    }
    let elapsed = started.elapsed();
    let batch_cpu = bench::cpu::thread_seconds().unwrap_or(0.0) - cpu0;
    let rate = n as f64 / elapsed.as_secs_f64();
    let batch_per_cpu = n as f64 / batch_cpu;
    let single_per_cpu = single_n as f64 / single_cpu;
    if (quotas.len() as u64) < customers * 98 / 100 {
        bail!("only {} customers hold quota state", quotas.len());
    }
    let bytes = quotas.memory_bytes() as f64 / quotas.len() as f64;

    println!(
        "bench_admission: {customers} customers, 1 core, load average {} at start, {} at end",
        load_at_start,
        load_average()
    );
    println!(
        "  populate: {customers} decisions ({go} go) in {:.2} s = {:.2} M decisions/s",
        populate.as_secs_f64(),
        populate_rate / 1e6
    );
    println!(
        "  random customers, one call each: {single_n} decisions in {:.2} s = {:.2} M decisions/s wall, {:.2} M per CPU-second",
        single_time.as_secs_f64(),
        single_rate / 1e6,
        single_per_cpu / 1e6
    );
    println!(
        "  random customers, admit_batch(256): {n} decisions in {:.2} s = {:.2} M decisions/s wall, {:.2} M per CPU-second = {:.2}x one call each (both runs: go {}, over quota {}, campaign ended {}, deferred {})",
        elapsed.as_secs_f64(),
        rate / 1e6,
        batch_per_cpu / 1e6,
        batch_per_cpu / single_per_cpu,
        outcomes[0],
        outcomes[1],
        outcomes[2],
        outcomes[3]
    );
    println!(
        "  quota state: {} customers, {:.1} bytes/customer (target <= 16)",
        quotas.len(),
        bytes
    );
    println!(
        "  baseline (not run here): governor keyed limiter ~2.2 M checks/s, ~29 bytes/key on this machine per issue 4"
    );
    Ok(())
}
