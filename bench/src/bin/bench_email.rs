//! E-mail throughput from a started campaign to a fast loopback SMTP sink,
//! with the p99 time from claim to the relay's 250, then the sink's ceiling
//! in the same run: bare pipelined SMTP sessions, as many as sluice's relay
//! connections, sending messages of the size sluice sent:
//! `cargo run --release -p bench --bin bench_email [MESSAGES]`.
//! `BENCH_DKIM_KEY=FILE` signs every message with that RSA key (PEM), as
//! `[email.dkim]` does.

use std::time::{Duration, Instant};

use anyhow::ensure;
use bench::{args::positional, cpu, http::Api, smtp_baseline, smtp_sink::SmtpSink};
use gateway::config::{Dkim, Relay, TlsMode};
use hyper::Method;
use tokio_util::sync::CancellationToken;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = positional(1, "messages", 50_000)?;
    let sink = SmtpSink::start().await?;
    let dir = tempfile::tempdir()?;
    let mut config = bench::loopback_config(dir.path());
    config.dispatch.concurrency = 128;
    config.dispatch.claim_batch = 128;
    config.email.relays = vec![Relay {
        name: None,
        host: "127.0.0.1".into(),
        port: sink.port,
        tls: TlsMode::None,
        tls_insecure: false,
        connections: CONNECTIONS,
        timeout_secs: 30,
        data_timeout_secs: 90,
        username: None,
        password_env: None,
    }];
    config.email.dkim = std::env::var_os("BENCH_DKIM_KEY").map(|key| Dkim {
        domain: "telco.example".into(),
        selector: "bench".into(),
        key_file: key.into(),
    });
    let shutdown = CancellationToken::new();
    let running = gateway::start(config, shutdown.clone()).await?;
    let api = Api::new(running.api);
    let decl = serde_json::json!({"channel": "email", "name": "bench", "content": {"email": {
        "from": "Offers <offers@telco.example>", "subject": "{{name}}, go unlimited",
        "text": "Hello {{name}}, your offer is waiting.", "html": "<p>Hello {{name}}, your offer is waiting.</p>"}}});
    api.declare("bench", &decl).await?;
    let body: String = (0..n)
        .map(|i| format!("{{\"customer\":\"c{i}\",\"address\":\"u{i}@example.org\",\"fields\":{{\"name\":\"N{i}\"}}}}\n"))
        .collect();
    api.upload("bench", body, n).await?;

    // bench/profile.sh starts recording at this line.
    eprintln!("bench_email: starting the campaign");
    let cpu_before = cpu::process_seconds();
    let started = Instant::now();
    api.start("bench").await?;
    loop {
        let (_, state) = api
            .call(Method::GET, "/v1/campaigns/bench", "application/json", "")
            .await?;
        if state["state"] == "finished" {
            ensure!(
                state["counts"]["submitted"] == n,
                "not all submitted: {state}"
            );
            break;
        }
        ensure!(
            started.elapsed() < Duration::from_secs(600),
            "campaign did not finish: {state}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let sluice_cpu = cpu::micros_per_message_since(cpu_before, n);
    let metrics = api.text("/metrics").await?;
    shutdown.cancel();
    running.stopped().await;
    let received = sink.received();
    let size = usize::try_from(sink.received_bytes() / received.max(1))?;
    println!("messages: {n} (sink received {received}, {size} bytes each on average)");
    let sluice_rate = n as f64 / elapsed;
    println!(
        "throughput start→finished: {sluice_rate:.0} messages/s, {sluice_cpu:.1} µs CPU per message (the whole daemon and the sink)"
    );
    match p99_upper_bound(&metrics) {
        Some(p99) => println!(
            "p99 claim→250: ≤ {:.1} ms (histogram bucket bound)",
            p99 * 1000.0
        ),
        None => println!("p99 claim→250: not found in /metrics"),
    }

    let content = smtp_baseline::content_of(size);
    let cpu_before = cpu::process_seconds();
    let bare =
        smtp_baseline::bare_sessions(sink.port, CONNECTIONS, n, &content, sink.chunking).await?;
    let bare_cpu = cpu::micros_per_message_since(cpu_before, n);
    let bare_rate = n as f64 / bare.as_secs_f64();
    println!(
        "sink ceiling (bare pipelined SMTP sessions, {CONNECTIONS} connections, {size}-byte messages, {}): {bare_rate:.0} messages/s, {bare_cpu:.1} µs CPU per message (client and sink)",
        if sink.chunking { "BDAT" } else { "DATA" }
    );
    println!(
        "ratio sluice / sink ceiling: {:.2} (rate), {:.2} (CPU per message)",
        sluice_rate / bare_rate,
        sluice_cpu / bare_cpu
    );
    Ok(())
}

/// sluice's relay connections, and the bare sessions of the ceiling.
const CONNECTIONS: usize = 128;

/// The smallest histogram bucket bound holding 99% of the e-mail sends.
fn p99_upper_bound(metrics: &str) -> Option<f64> {
    let buckets: Vec<(f64, f64)> = metrics
        .lines()
        .filter(|l| {
            l.starts_with("sluice_send_duration_seconds_bucket") && l.contains("channel=\"email\"")
        })
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            let count: f64 = l.rsplit(' ').next()?.parse().ok()?;
            Some((le, count))
        })
        .collect();
    let total = buckets.iter().map(|b| b.1).fold(0.0, f64::max);
    buckets
        .iter()
        .find(|(_, c)| *c >= total * 0.99)
        .map(|(le, _)| *le)
}
