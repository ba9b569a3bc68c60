//! A million-entry blacklist import through the API, durable before the
//! answer, then look-ups of listed and unlisted entries:
//! `cargo run --release -p bench --bin bench_blacklist [ENTRIES]` (1,000,000).

use std::time::{Duration, Instant};

use anyhow::ensure;
use bench::{args::positional, http::Api};
use hyper::Method;
use tokio_util::sync::CancellationToken;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = positional(1, "entries", 1_000_000)?;
    let dir = tempfile::tempdir()?;
    let config = bench::loopback_config(dir.path());
    let shutdown = CancellationToken::new();
    let running = gateway::start(config, shutdown.clone()).await?;
    let api = Api::new(running.api);

    // Half customer ids, half addresses, as an administrator's export has them.
    let entries: Vec<String> = (0..n)
        .map(|i| {
            if i % 2 == 0 {
                format!("c{i}")
            } else {
                format!("+4915{i:09}")
            }
        })
        .collect();
    let body = serde_json::to_string(&entries)?;
    let size = body.len();
    let started = Instant::now();
    let (status, answer) = api
        .call(Method::PUT, "/v1/blacklist/sms", "application/json", body)
        .await?;
    let import = started.elapsed().as_secs_f64();
    ensure!(
        status == 200 && answer["added"] == n,
        "import answered {status}: {answer}"
    );
    let (status, _) = api
        .call(
            Method::GET,
            &format!("/v1/blacklist/sms/c{}", n - 2),
            "application/json",
            "",
        )
        .await?;
    ensure!(status == 200, "the last entry is not listed ({status})");

    println!(
        "blacklist import: {n} entries ({:.1} MB of JSON) durable in {import:.2} s: {:.0} entries/s",
        size as f64 / 1e6,
        n as f64 / import
    );
    let probes: Vec<String> = (0..1000)
        .map(|i| format!("c{}", i * (n / 1000) + i % 2))
        .collect();
    let started = Instant::now();
    let listed = membership(&api, &probes).await?;
    println!(
        "GET /v1/blacklist/sms/ID: {:?} per look-up over HTTP; {listed} of 1000 probes listed (500 expected)",
        started.elapsed() / 1000
    );
    ensure!(listed == 500, "look-ups disagree with the import");
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), running.stopped()).await?;
    Ok(())
}

async fn membership(api: &Api, probes: &[String]) -> anyhow::Result<usize> {
    let mut listed = 0;
    for p in probes {
        let (status, _) = api
            .call(
                Method::GET,
                &format!("/v1/blacklist/sms/{p}"),
                "application/json",
                "",
            )
            .await?;
        listed += usize::from(status == 200);
    }
    Ok(listed)
}
