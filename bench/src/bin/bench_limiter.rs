//! The throttle crate's limiters against `governor`, the Rust ecosystem's
//! GCRA limiter, in one program on simulated clocks (no sleeping, no
//! wall-clock reads inside the loops, so only the limiters are measured):
//!
//! - **unkeyed**, the channel bandwidth: `throttle::Bucket` (GCRA) against
//!   `governor`'s direct limiter, both at 1,000/s with a burst of 10, asked
//!   twice per interval; decisions per second and messages admitted over
//!   the simulated span (both must admit `rate × span + burst`).
//! - **keyed**, the per-segment anti-spam quota "3 per 7 days" per customer:
//!   `throttle::QuotaBook` against `governor`'s keyed (dashmap) limiter
//!   with the closest quota it can express (a burst of 3, one more every
//!   7/3 days); decisions per second over `customers` keys, and what each
//!   admits to one customer asking every day for 28 days.
//!
//! `cargo run --release -p bench --bin bench_limiter [customers] [decisions]`
//! (defaults 100,000 and 5,000,000). Prints the ratios throttle/governor.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use anyhow::Context;
use bench::args::positional;
use governor::{Quota, RateLimiter, clock::FakeRelativeClock};
use throttle::jiff::{SignedDuration, Timestamp};
use throttle::{Bucket, CustomerKey, QuotaBook, QuotaCheck, QuotaRule, hash64};

/// The daemon's allocator, as in `sluice`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RATE: u32 = 1_000;
const BURST: u32 = 10;
const WEEK_SECS: u64 = 7 * 86_400;

fn main() -> anyhow::Result<()> {
    let customers: u64 = positional(1, "customers", 100_000)?;
    let decisions: u64 = positional(2, "decisions", 5_000_000)?;
    unkeyed(decisions)?;
    keyed(customers, decisions)?;
    exactness_per_customer()?;
    Ok(())
}

/// Decisions per second of `run`, which makes `decisions` of them.
fn rate_of(decisions: u64, run: impl FnOnce() -> u64) -> (f64, u64) {
    let started = Instant::now();
    let admitted = run();
    (decisions as f64 / started.elapsed().as_secs_f64(), admitted)
}

fn unkeyed(decisions: u64) -> anyhow::Result<()> {
    // Asked twice per interval: half the requests are admitted.
    let step_ns = 1_000_000_000 / i64::from(RATE) / 2;
    let start = Timestamp::from_second(1_800_000_000).context("start")?;
    let (ours, ours_admitted) = rate_of(decisions, || {
        let mut bucket = Bucket::new(f64::from(RATE), BURST).expect("valid bucket");
        let mut now = start;
        let mut admitted = 0;
        for _ in 0..decisions {
            now += SignedDuration::from_nanos(step_ns);
            admitted += u64::from(bucket.try_acquire(now).is_ok());
        }
        admitted
    });
    let (theirs, theirs_admitted) = rate_of(decisions, || {
        let clock = FakeRelativeClock::default();
        let quota = Quota::per_second(NonZeroU32::new(RATE).expect("nonzero"))
            .allow_burst(NonZeroU32::new(BURST).expect("nonzero"));
        let limiter = RateLimiter::direct_with_clock(quota, clock.clone());
        let mut admitted = 0;
        for _ in 0..decisions {
            clock.advance(Duration::from_nanos(step_ns as u64));
            admitted += u64::from(limiter.check().is_ok());
        }
        admitted
    });
    let span_secs = decisions as f64 * step_ns as f64 / 1e9;
    println!(
        "unkeyed GCRA, {RATE}/s burst {BURST}, {decisions} decisions over {span_secs:.0} s simulated \
         (exact: {:.0} admitted)",
        f64::from(RATE) * span_secs + f64::from(BURST)
    );
    println!("  throttle::Bucket   {ours:>14.0} decisions/s, {ours_admitted} admitted");
    println!("  governor direct    {theirs:>14.0} decisions/s, {theirs_admitted} admitted");
    println!("  ratio throttle/governor: {:.2}", ours / theirs);
    Ok(())
}

fn key(i: u64) -> CustomerKey {
    CustomerKey(hash64(&i.to_le_bytes()))
}

/// A decision per step over `customers` keys in a scattered order, the
/// clock moving a millisecond per step: each customer comes back every
/// `customers` ms, so most are refused once they had their 3.
fn keyed(customers: u64, decisions: u64) -> anyhow::Result<()> {
    let start = Timestamp::from_second(1_800_000_000).context("start")?;
    let rule = QuotaRule::new(3, WEEK_SECS as i64)?;
    let order = |i: u64| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % customers;
    let (ours, ours_admitted) = rate_of(decisions, || {
        let mut book =
            QuotaBook::with_capacity([("*".to_owned(), rule)], start, customers as usize);
        let mut admitted = 0;
        for i in 0..decisions {
            let now = start + SignedDuration::from_millis(i as i64);
            admitted += u64::from(book.try_take(key(order(i)), rule, now) == QuotaCheck::Allowed);
        }
        admitted
    });
    let (theirs, theirs_admitted) = rate_of(decisions, || {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::dashmap_with_clock(governor_weekly_quota(), clock.clone());
        let mut admitted = 0;
        for i in 0..decisions {
            clock.advance(Duration::from_millis(1));
            admitted += u64::from(limiter.check_key(&key(order(i)).0).is_ok());
        }
        admitted
    });
    println!(
        "keyed, 3 per 7 days, {customers} customers, {decisions} decisions (a millisecond apart)"
    );
    println!("  throttle::QuotaBook {ours:>13.0} decisions/s, {ours_admitted} admitted");
    println!("  governor keyed      {theirs:>13.0} decisions/s, {theirs_admitted} admitted");
    println!("  ratio throttle/governor: {:.2}", ours / theirs);
    Ok(())
}

/// The closest `governor` comes to "3 in any 7 days": 3 at once, then one
/// more every 7/3 days.
fn governor_weekly_quota() -> Quota {
    Quota::with_period(Duration::from_secs(WEEK_SECS / 3))
        .expect("non-zero period")
        .allow_burst(NonZeroU32::new(3).expect("nonzero"))
}

/// One customer asking once a day for 28 days under "3 per 7 days": the
/// quota allows 12 (3 in each of 4 weeks, never more than 3 in any 7
/// consecutive days); what each limiter admits, and the most it admits in
/// any 7 consecutive days.
fn exactness_per_customer() -> anyhow::Result<()> {
    let start = Timestamp::from_second(1_800_000_000).context("start")?;
    let rule = QuotaRule::new(3, WEEK_SECS as i64)?;
    let mut book = QuotaBook::new([("*".to_owned(), rule)], start);
    let clock = FakeRelativeClock::default();
    let limiter = RateLimiter::dashmap_with_clock(governor_weekly_quota(), clock.clone());
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for day in 0..28i64 {
        let now = start + SignedDuration::from_secs(day * 86_400);
        if book.try_take(key(7), rule, now) == QuotaCheck::Allowed {
            ours.push(day);
        }
        if limiter.check_key(&key(7).0).is_ok() {
            theirs.push(day);
        }
        clock.advance(Duration::from_secs(86_400));
    }
    let most_in_a_week = |days: &[i64]| {
        (0..28)
            .map(|from| days.iter().filter(|&&d| d >= from && d < from + 7).count())
            .max()
            .unwrap_or(0)
    };
    println!("one customer asking daily for 28 days under 3 per 7 days:");
    println!(
        "  throttle::QuotaBook admits {} (at most {} in any 7 days): days {ours:?}",
        ours.len(),
        most_in_a_week(&ours)
    );
    println!(
        "  governor keyed      admits {} (at most {} in any 7 days): days {theirs:?}",
        theirs.len(),
        most_in_a_week(&theirs)
    );
    Ok(())
}
