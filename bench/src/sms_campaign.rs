//! SMS campaigns driven through a running daemon's API, as the SMS
//! benchmarks run them: declared, `n` participants uploaded, started once
//! the bind is up, timed until every message has its `delivered` fact.

use std::time::{Duration, Instant};

use anyhow::ensure;
use hyper::Method;

use crate::http::Api;

/// The campaign's id.
pub const ID: &str = "bench";

/// Declares the campaign and uploads `n` participants (`c{i}`).
pub async fn declare_and_upload(api: &Api, n: usize) -> anyhow::Result<()> {
    declare_and_upload_to(api, ID, 0..n).await
}

/// Declares campaign `id` and uploads participants `c{i}` for each `i`
/// of `customers`.
pub async fn declare_and_upload_to(
    api: &Api,
    id: &str,
    customers: std::ops::Range<usize>,
) -> anyhow::Result<()> {
    let decl = serde_json::json!({"channel": "sms", "name": id,
        "content": {"sms": {"from": "Telco", "text": "Hello {{name}}, your offer is waiting."}}});
    api.declare(id, &decl).await?;
    let n = customers.len();
    let body: String = customers
        .map(|i| {
            format!(
                "{{\"customer\":\"c{i}\",\"address\":\"+4915{:09}\",\"fields\":{{\"name\":\"N{i}\"}}}}\n",
                i
            )
        })
        .collect();
    api.upload(id, body, n).await
}

/// Waits until the daemon is ready (its bind is up).
pub async fn wait_ready(api: &Api) -> anyhow::Result<()> {
    let bound = Instant::now();
    while !api.text("/readyz").await?.contains("\"ready\":true") {
        ensure!(bound.elapsed() < Duration::from_secs(10), "never bound");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Starts the campaign and waits until all `n` messages are delivered;
/// returns the seconds it took and the campaign's counts.
pub async fn run_until_delivered(api: &Api, n: usize) -> anyhow::Result<(f64, serde_json::Value)> {
    let (elapsed, mut counts) = run_all_until_delivered(api, &[(ID, n)]).await?;
    Ok((elapsed, counts.remove(0)))
}

/// Starts each of `campaigns` (id, messages) and waits until all their
/// messages are delivered; returns the seconds it took and each one's
/// counts.
pub async fn run_all_until_delivered(
    api: &Api,
    campaigns: &[(&str, usize)],
) -> anyhow::Result<(f64, Vec<serde_json::Value>)> {
    let started = Instant::now();
    for (id, _) in campaigns {
        api.start(id).await?;
    }
    let mut settled = Vec::with_capacity(campaigns.len());
    for &(id, n) in campaigns {
        let counts = loop {
            let (_, state) = api
                .call(
                    Method::GET,
                    &format!("/v1/campaigns/{id}"),
                    "application/json",
                    "",
                )
                .await?;
            if state["counts"]["delivered"] == n {
                break state["counts"].clone();
            }
            ensure!(
                started.elapsed() < Duration::from_secs(600),
                "campaign did not settle: {state}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        settled.push(counts);
    }
    Ok((started.elapsed().as_secs_f64(), settled))
}

/// Requests the nodes behind `apis` sent to their store so far.
pub async fn store_requests(apis: &[Api]) -> anyhow::Result<f64> {
    let mut total = 0.0;
    for api in apis {
        let metrics = api.text("/metrics").await?;
        total += metric(&metrics, "sluice_store_requests_total", "");
    }
    Ok(total)
}

/// The sum of the samples of metric `name` whose labels contain `filter`.
pub fn metric(text: &str, name: &str, filter: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(filter))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
