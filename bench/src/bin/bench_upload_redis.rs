//! How long a large upload holds Redis: stages MESSAGES participants on one
//! node on a `redis-server` of its own (`appendfsync always`), in batches
//! of 4,096 as the API stages an NDJSON body, then publishes them, while
//! another thread asks Redis `PING` every 20 ms on its own connection:
//! `cargo run --release -p bench --bin bench_upload_redis [PARTICIPANTS] [ROUNDS]`
//! (1,000,000 participants, one round by default).
//!
//! Prints per round the staging and publishing rates, and what the `PING`s
//! met during each: the 99th percentile of their waits, the slowest, and
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

/// What the `PING`s met.
struct Pings {
    /// Each answer's wait, sorted.
    waits: Vec<Duration>,
    busy: usize,
}

impl Pings {
    fn summary(&self) -> String {
        let ms = |d: Option<&Duration>| d.copied().unwrap_or_default().as_secs_f64() * 1e3;
        format!(
            "{}: p99 {:.0} ms, slowest {:.0} ms, {} answered BUSY",
            self.waits.len(),
            ms(self.waits.get(self.waits.len() * 99 / 100)),
            ms(self.waits.last()),
            self.busy
        )
    }
}

/// A thread asking `PING` until stopped.
struct Pinger {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<anyhow::Result<Pings>>,
}

impl Pinger {
    fn start(port: u16) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || ping_until(port, &stop)
        });
        Self { stop, thread }
    }

    fn stop(self) -> anyhow::Result<Pings> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the pinger thread")
    }
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
            replicas: 0,
            certificates: Default::default(),
            shards: 1,
        })
        .await?;
        node.put_campaign("c1", CampaignDecl::new(ChannelKind::Sms, "spring"))
            .await?;
        let upload = node.new_upload();
        let pinging = Pinger::start(redis.port);
        let started = Instant::now();
        for batch in people.chunks(BATCH) {
            node.stage("c1", upload, batch.to_vec()).await?;
        }
        let staging = started.elapsed();
        let staging_pings = pinging.stop()?;

        let pinging = Pinger::start(redis.port);
        let started = Instant::now();
        let published = node.publish(upload, 1).await?;
        let publishing = started.elapsed();
        let publishing_pings = pinging.stop()?;
        ensure!(published == n as u64, "published {published} of {n}");

        println!(
            "round {round}: staged in {:.1} s ({:.0}/s; PINGs {}), published in {:.1} s ({:.0}/s; PINGs {})",
            staging.as_secs_f64(),
            n as f64 / staging.as_secs_f64(),
            staging_pings.summary(),
            publishing.as_secs_f64(),
            n as f64 / publishing.as_secs_f64(),
            publishing_pings.summary(),
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
