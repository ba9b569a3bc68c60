//! How long a large upload holds Redis: stages MESSAGES participants on one
//! node on a `redis-server` of its own (`appendfsync always`), in batches
//! of 4,096 as the API stages an NDJSON body, then publishes them, while
//! another thread asks Redis `PING` every 20 ms on its own connection:
//! `cargo run --release -p bench --bin bench_upload_redis [PARTICIPANTS] [ROUNDS]`
//! (1,000,000 participants, one round by default).
//!
//! Prints per round the staging and publishing rates, and what the `PING`s
//! met while the publish ran: the slowest answer, the 99th percentile, and
//! how many were answered `BUSY` (Redis running a script past its
//! `busy-reply-threshold`, which every node takes for Redis being lost).

use std::{
    io::{BufRead, BufReader, Write},
    net::TcpStream,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};
use bench::{args::positional, redis_server::RedisServer};
use domain::{CampaignDecl, ChannelKind, Participant};
use store::{
    Catalog, Intake,
    redis::{Options, Redis, Servers},
};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Participants per `stage` call: the API's batch.
const BATCH: usize = 4_096;
const PING_EVERY: Duration = Duration::from_millis(20);

/// What the `PING`s met while a publish ran.
struct Pings {
    /// Each answer's wait, sorted.
    waits: Vec<Duration>,
    busy: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = positional(1, "participants", 1_000_000)?;
    let rounds: usize = positional(2, "rounds", 1)?;
    ensure!(rounds >= 1, "rounds must be at least 1");
    let people: Vec<Participant> = (0..n)
        .map(|i| Participant {
            customer: format!("c{i}"),
            address: format!("+4915{i:09}"),
            segment: None,
            fields: Default::default(),
        })
        .collect();
    println!("{n} participants, staged in batches of {BATCH}, then published; PING every 20 ms");
    for round in 1..=rounds {
        let redis = RedisServer::start()?;
        let node = Redis::open(Options {
            servers: Servers::One(redis.url()),
            password: None,
            node: "bench".into(),
        })
        .await?;
        node.put_campaign("c1", CampaignDecl::new(ChannelKind::Sms, "spring"))
            .await?;
        let upload = node.new_upload();
        let started = Instant::now();
        for batch in people.chunks(BATCH) {
            node.stage("c1", upload, batch.to_vec()).await?;
        }
        let staging = started.elapsed();

        let stop = Arc::new(AtomicBool::new(false));
        let pinger = std::thread::spawn({
            let (port, stop) = (redis.port, stop.clone());
            move || ping_until(port, &stop)
        });
        let started = Instant::now();
        let published = node.publish(upload, 1).await?;
        let publishing = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        let pings = pinger.join().expect("the pinger thread")?;
        ensure!(published == n as u64, "published {published} of {n}");

        let slowest = pings.waits.last().copied().unwrap_or_default();
        let p99 = pings
            .waits
            .get(pings.waits.len() * 99 / 100)
            .copied()
            .unwrap_or_default();
        println!(
            "round {round}: staged in {:.1} s ({:.0}/s), published in {:.1} s ({:.0}/s); meanwhile {} PINGs: slowest {:.0} ms, p99 {:.0} ms, {} answered BUSY",
            staging.as_secs_f64(),
            n as f64 / staging.as_secs_f64(),
            publishing.as_secs_f64(),
            n as f64 / publishing.as_secs_f64(),
            pings.waits.len(),
            slowest.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            pings.busy,
        );
    }
    Ok(())
}

/// Asks `PING` every [`PING_EVERY`] until `stop`, on a connection of its
/// own (RESP by hand: one line out, one line back).
fn ping_until(port: u16, stop: &AtomicBool) -> anyhow::Result<Pings> {
    let stream = TcpStream::connect(("127.0.0.1", port)).context("a connection to ping on")?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut pings = Pings {
        waits: Vec::new(),
        busy: 0,
    };
    let mut answer = String::new();
    while !stop.load(Ordering::Relaxed) {
        let asked = Instant::now();
        writer.write_all(b"PING\r\n")?;
        answer.clear();
        reader.read_line(&mut answer)?;
        pings.waits.push(asked.elapsed());
        if answer.starts_with("-BUSY") {
            pings.busy += 1;
        } else {
            ensure!(answer.starts_with("+PONG"), "PING answered {answer:?}");
        }
        std::thread::sleep(PING_EVERY);
    }
    pings.waits.sort_unstable();
    Ok(pings)
}
