//! What shards (`store.shards`) change on a Redis Cluster: two nodes send
//! three SMS campaigns at once through a Cluster of three masters of the
//! benchmark's own (`appendfsync always`), first with one shard (every
//! key on one master), then with three (one on each master), in one
//! process on the same SMSC sink:
//! `cargo run --release -p bench --bin bench_sms_cluster [MESSAGES] [WINDOW] [ROUNDS]`
//! (60,000 messages in all, window 64, one round by default).
//!
//! Prints for each: messages/s, CPU per message of the nodes' process
//! (daemons and sink), and of each master, and the busiest master's share.
//! On 2 cores the nodes and the masters share the CPU, so throughput here
//! does not grow; what shards change is how Redis's work splits over the
//! masters, which bounds throughput when each has a machine of its own:
//! at most 1 / (the busiest master's µs per message).

use anyhow::ensure;
use bench::{
    args::positional,
    cpu,
    nodes::Nodes,
    redis_server::{RedisCluster, RedisServer, print_commandstats},
    sms_campaign,
    smsc_sink::SmscSink,
};
use gateway::config::{Config, Smsc};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The campaigns sent at once: with three shards, one in each.
const CAMPAIGNS: [&str; 3] = ["spring", "summer", "autumn"];

/// What one run measured.
struct Run {
    rate: f64,
    /// µs of CPU per message: the daemons and the sink.
    nodes_cpu: f64,
    /// µs of CPU per message of each master.
    masters_cpu: Vec<f64>,
    /// Requests to Redis per message.
    requests: f64,
}

impl Run {
    fn busiest(&self) -> f64 {
        self.masters_cpu.iter().copied().fold(0.0, f64::max)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = positional(1, "messages", 60_000)?;
    let window: usize = positional(2, "window", 64)?;
    let rounds: usize = positional(3, "rounds", 1)?;
    ensure!(rounds >= 1, "rounds must be at least 1");
    let per_campaign = n / CAMPAIGNS.len();
    let sink = SmscSink::start().await?;
    let cluster = RedisCluster::start(3)?;
    let dir = tempfile::tempdir()?;
    let config = |node: &str, shards: u16, round: usize| -> anyhow::Result<Config> {
        let mut config =
            bench::loopback_config(&dir.path().join(format!("{node}-{shards}-{round}")));
        config.dispatch.claim_batch = 1024;
        config.sms.smsc = vec![toml::from_str::<Smsc>(&format!(
            "host = \"127.0.0.1\"\nport = {}\nsystem_id = \"bench\"\nwindow = {window}",
            sink.port
        ))?];
        config.store.engine = "redis".into();
        config.store.urls = cluster.urls();
        config.store.node = Some(node.into());
        config.store.shards = shards;
        Ok(config)
    };
    let mut runs: [Vec<Run>; 2] = Default::default();
    for round in 1..=rounds {
        for (shards, runs) in [1u16, 3].into_iter().zip(runs.iter_mut()) {
            cluster.flush()?;
            let configs = [config("n1", shards, round)?, config("n2", shards, round)?];
            let on = run(&configs, &cluster, per_campaign).await?;
            report(&format!("round {round}, {shards} shard(s)"), &on);
            runs.push(on);
        }
    }
    for (shards, runs) in [1, 3].into_iter().zip(&runs) {
        let mut busiest: Vec<f64> = runs.iter().map(Run::busiest).collect();
        busiest.sort_by(f64::total_cmp);
        let mut rates: Vec<f64> = runs.iter().map(|r| r.rate).collect();
        rates.sort_by(f64::total_cmp);
        let busiest = busiest[busiest.len() / 2];
        println!(
            "{shards} shard(s), median of {rounds}: {:.0} messages/s here; the busiest master {busiest:.1} µs per message, so Redis carries at most {:.0}k messages/s with a machine per master",
            rates[rates.len() / 2],
            1e3 / busiest
        );
    }
    Ok(())
}

/// Starts a daemon per config, declares the campaigns of `per_campaign`
/// participants each on the first, sends them all and stops the daemons.
async fn run(
    configs: &[Config],
    cluster: &RedisCluster,
    per_campaign: usize,
) -> anyhow::Result<Run> {
    let nodes = Nodes::start(configs).await?;
    let apis = &nodes.apis;
    for (k, id) in CAMPAIGNS.iter().enumerate() {
        let customers = k * per_campaign..(k + 1) * per_campaign;
        sms_campaign::declare_and_upload_to(&apis[0], id, customers).await?;
    }
    for api in apis {
        sms_campaign::wait_ready(api).await?;
    }
    let n = per_campaign * CAMPAIGNS.len();
    for master in &cluster.masters {
        master.cli(&["CONFIG", "RESETSTAT"])?;
    }
    let masters_before = masters_cpu(cluster)?;
    let requests_before = sms_campaign::store_requests(apis).await?;
    let cpu_before = cpu::process_seconds();
    let campaigns: Vec<(&str, usize)> = CAMPAIGNS.iter().map(|id| (*id, per_campaign)).collect();
    let (elapsed, counts) = sms_campaign::run_all_until_delivered(&apis[0], &campaigns).await?;
    let nodes_cpu = cpu::micros_per_message_since(cpu_before, n);
    let requests = (sms_campaign::store_requests(apis).await? - requests_before) / n as f64;
    let masters_cpu = masters_cpu(cluster)?
        .iter()
        .zip(masters_before)
        .map(|(after, before)| (after - before) * 1e6 / n as f64)
        .collect();
    ensure!(
        counts.iter().all(|c| c["delivered"] == per_campaign),
        "not all delivered: {counts:?}"
    );
    let masters: Vec<&RedisServer> = cluster.masters.iter().collect();
    print_commandstats(&masters, n)?;
    nodes.stop().await;
    Ok(Run {
        rate: n as f64 / elapsed,
        nodes_cpu,
        masters_cpu,
        requests,
    })
}

/// CPU seconds each master has used.
fn masters_cpu(cluster: &RedisCluster) -> anyhow::Result<Vec<f64>> {
    cluster.masters.iter().map(|m| m.cpu_seconds()).collect()
}

fn report(what: &str, run: &Run) {
    let masters: Vec<String> = run.masters_cpu.iter().map(|c| format!("{c:.1}")).collect();
    let total: f64 = run.masters_cpu.iter().sum();
    println!(
        "{what}: {:.0} messages/s, {:.1} µs CPU per message in the nodes' process, masters {} µs (in all {total:.1}; the busiest {:.0}%), {:.3} Redis requests per message",
        run.rate,
        run.nodes_cpu,
        masters.join(" / "),
        100.0 * run.busiest() / total.max(f64::MIN_POSITIVE),
        run.requests
    );
}
