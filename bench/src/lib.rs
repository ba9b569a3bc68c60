//! Load generators, sinks and benchmarks for sluice. Each `src/bin/bench_*`
//! prints its figures (as ratios to a same-run baseline where one exists);
//! `BENCHMARKS.md` at the root records them with the command that made them.

pub mod args;
pub mod cpu;
pub mod daemon_process;
pub mod http;
pub mod nodes;
pub mod redis_server;
pub mod sms_baseline;
pub mod sms_campaign;
pub mod smsc_sink;
pub mod smtp_baseline;
pub mod smtp_sink;

/// The daemon's configuration for a benchmark: every listener on an
/// ephemeral loopback port, the store in `dir`.
pub fn loopback_config(dir: &std::path::Path) -> gateway::config::Config {
    let mut config = gateway::config::Config::default();
    config.listen.api = "127.0.0.1:0".into();
    config.listen.tracking = "127.0.0.1:0".into();
    config.listen.bounce = "127.0.0.1:0".into();
    config.store.path = dir.join("data");
    config
}

/// Participants `from..to` as an NDJSON upload body, each with a `name`
/// field (`cust-000000042`, `user42@example.org`).
pub fn participants_ndjson(from: usize, to: usize) -> String {
    let mut body = String::with_capacity((to - from) * 96);
    for i in from..to {
        body.push_str(&format!(
            "{{\"customer\":\"cust-{i:09}\",\"address\":\"user{i}@example.org\",\
             \"fields\":{{\"name\":\"Customer {i}\"}}}}\n"
        ));
    }
    body
}
