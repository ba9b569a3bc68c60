//! SMS throughput on the Redis engine against the embedded engine, in one
//! process, on the same SMSC sink, with a `redis-server` of its own
//! (`appendfsync always`):
//! `cargo run --release -p bench --bin bench_sms_redis [MESSAGES] [WINDOW] [ROUNDS]`
//! (100,000 messages, window 64, one round by default).
//!
//! Runs the same campaign (start → every receipt matched and durable) on
//! the embedded engine, then on one, two and three nodes on Redis (the
//! campaign declared on the first, all sending), and prints for each:
//! messages/s, the ratio to the embedded run, CPU per message of the
//! nodes' process (daemons and sink), of Redis, requests to Redis per
//! message (`sluice_store_requests_total`), and Redis memory per queued
//! message (`used_memory` after the upload, before the start), and how
//! fast the campaign's participants were uploaded (one NDJSON request,
//! staged and published). With more
//! than one round the three runs are repeated in turn and the medians
//! printed last: the ratio of one round's runs moves with the machine's
//! noise, the embedded run's most (it is the shortest).
//!
//! `BENCH_REDIS_REPLICAS=1` gives the Redis a replica and the nodes
//! `store.replicas = 1`: every write waits for the replica (`WAIT`).

use anyhow::ensure;
use bench::{
    args::positional, cpu, nodes::Nodes, redis_server::RedisServer, sms_campaign,
    smsc_sink::SmscSink,
};
use gateway::config::{Config, Smsc};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What one run measured.
#[derive(Clone, Copy)]
struct Run {
    rate: f64,
    /// µs of CPU per message: the daemons and the sink.
    nodes_cpu: f64,
    /// µs of CPU per message of Redis.
    redis_cpu: f64,
    requests: f64,
    memory: f64,
    /// Participants uploaded per second (the upload's one request).
    upload: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = positional(1, "messages", 100_000)?;
    let window: usize = positional(2, "window", 64)?;
    let rounds: usize = positional(3, "rounds", 1)?;
    ensure!(rounds >= 1, "rounds must be at least 1");
    let sink = SmscSink::start().await?;
    let redis = RedisServer::start()?;
    let replicas: u32 = std::env::var("BENCH_REDIS_REPLICAS").map_or(Ok(0), |r| r.parse())?;
    let _replicas = (0..replicas)
        .map(|_| redis.start_replica())
        .collect::<anyhow::Result<Vec<_>>>()?;
    if replicas > 0 {
        println!("the Redis has {replicas} replica(s), and every write waits for them");
    }
    let dir = tempfile::tempdir()?;

    let config = |node: Option<&str>, round: usize| -> anyhow::Result<Config> {
        let files = format!("{}-{round}", node.unwrap_or("embedded"));
        let mut config = bench::loopback_config(&dir.path().join(files));
        config.dispatch.claim_batch = 1024;
        config.sms.smsc = vec![toml::from_str::<Smsc>(&format!(
            "host = \"127.0.0.1\"\nport = {}\nsystem_id = \"bench\"\nwindow = {window}",
            sink.port
        ))?];
        if let Some(node) = node {
            config.store.engine = "redis".into();
            config.store.url = Some(redis.url());
            config.store.node = Some(node.into());
            config.store.replicas = replicas;
        }
        Ok(config)
    };

    let mut embedded = Vec::new();
    // Runs of 1, 2 and 3 nodes on Redis.
    let mut on_redis: [Vec<Run>; 3] = Default::default();
    for round in 1..=rounds {
        if rounds > 1 {
            println!("round {round} of {rounds}");
        }
        let base = run(&[config(None, round)?], &redis, n, false).await?;
        report("embedded engine, 1 node", &base, &base);
        redis.cli(&["FLUSHALL"])?;
        for (i, runs) in on_redis.iter_mut().enumerate() {
            let configs = NODES[..=i]
                .iter()
                .map(|node| config(Some(node), round))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let on = run(&configs, &redis, n, true).await?;
            report(&redis_nodes(i + 1), &on, &base);
            if i == 0 {
                bench::redis_server::print_commandstats(&[&redis], n)?;
            }
            redis.cli(&["FLUSHALL"])?;
            runs.push(on);
        }
        embedded.push(base);
    }
    let embedded = median(&embedded);
    let on_redis = on_redis.map(|runs| median(&runs));
    if rounds > 1 {
        println!("medians of {rounds} rounds:");
        report("embedded engine, 1 node", &embedded, &embedded);
        for (i, on) in on_redis.iter().enumerate() {
            report(&redis_nodes(i + 1), on, &embedded);
        }
    }
    let one = on_redis[0];
    println!(
        "2 cores: the nodes and Redis share them, so more nodes here only split the same CPU; \
         throughput with N nodes on N machines is at most N / ({:.1} µs per node) and 1 / ({:.1} µs of Redis) messages/s",
        one.nodes_cpu, one.redis_cpu
    );
    Ok(())
}

/// The names the nodes on Redis take, as many as a run starts.
const NODES: [&str; 3] = ["n1", "n2", "n3"];

fn redis_nodes(count: usize) -> String {
    format!(
        "Redis engine, {count} node{}",
        if count == 1 { "" } else { "s" }
    )
}

/// Each figure's median over `runs` (the upper middle of an even count).
fn median(runs: &[Run]) -> Run {
    let of = |figure: fn(&Run) -> f64| {
        let mut values: Vec<f64> = runs.iter().map(figure).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    Run {
        rate: of(|r| r.rate),
        nodes_cpu: of(|r| r.nodes_cpu),
        redis_cpu: of(|r| r.redis_cpu),
        requests: of(|r| r.requests),
        memory: of(|r| r.memory),
        upload: of(|r| r.upload),
    }
}

/// Starts a daemon per config, runs the campaign on the first (all of
/// them sending) and stops them.
async fn run(
    configs: &[Config],
    redis: &RedisServer,
    n: usize,
    on_redis: bool,
) -> anyhow::Result<Run> {
    let nodes = Nodes::start(configs).await?;
    let apis = &nodes.apis;
    let memory_before = redis.number("memory", "used_memory")?;
    let uploading = std::time::Instant::now();
    sms_campaign::declare_and_upload(&apis[0], n).await?;
    let upload = n as f64 / uploading.elapsed().as_secs_f64();
    let memory = (redis.number("memory", "used_memory")? - memory_before) / n as f64;
    for api in apis {
        sms_campaign::wait_ready(api).await?;
    }
    redis.cli(&["CONFIG", "RESETSTAT"])?;
    let requests_before = sms_campaign::store_requests(apis).await?;
    let redis_before = redis.cpu_seconds()?;
    let cpu_before = cpu::process_seconds();
    // What `bench/profile.sh sms_redis` waits for before it records.
    eprintln!(
        "bench_sms_redis: starting the campaign ({} node(s), {})",
        configs.len(),
        if on_redis { "Redis" } else { "embedded" }
    );
    let (elapsed, counts) = sms_campaign::run_until_delivered(&apis[0], n).await?;
    let nodes_cpu = cpu::micros_per_message_since(cpu_before, n);
    let redis_cpu = (redis.cpu_seconds()? - redis_before) * 1e6 / n as f64;
    let requests = (sms_campaign::store_requests(apis).await? - requests_before) / n as f64;
    ensure!(counts["delivered"] == n, "not all delivered: {counts}");
    nodes.stop().await;
    Ok(Run {
        rate: n as f64 / elapsed,
        nodes_cpu,
        redis_cpu: if on_redis { redis_cpu } else { 0.0 },
        requests,
        memory: if on_redis { memory } else { 0.0 },
        upload,
    })
}

fn report(what: &str, run: &Run, embedded: &Run) {
    println!(
        "{what}: {:.0} messages/s ({:.2} of the embedded engine), {:.1} µs CPU per message in the nodes' process, {:.1} µs in Redis, {:.3} Redis requests per message, {:.0} bytes of Redis memory per queued message; uploaded at {:.0} participants/s",
        run.rate,
        run.rate / embedded.rate,
        run.nodes_cpu,
        run.redis_cpu,
        run.requests,
        run.memory,
        run.upload
    );
}
