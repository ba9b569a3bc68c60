//! The whole daemon behind the redirect benchmark: starts the real `sluice`
//! binary (release build beside this one) with a campaign whose one message
//! carries one tracked link, prints that link's click URL as `url URL`, and
//! on SIGTERM waits for the click facts to be durable and prints
//! `events clicked=N refused=0` (what wrk counted as non-3xx is the refused).
//! Speaks the protocol of `bench/redirect.sh`:
//! `BENCH_REDIRECT_BIN=target/release/bench_redirect_daemon bench/redirect.sh`.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context, bail, ensure};
use base64::Engine;
use bench::{http::Api, smtp_sink::SmtpSink};
use clicktrack::{Keyring, LinkIndex, MessageNo, Token};
use hyper::Method;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut threads = "1".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--threads" => threads = args.next().context("--threads N")?,
            other => bail!("unknown argument {other:?} (--threads)"),
        }
    }
    let sink = SmtpSink::start().await?;
    let dir = tempfile::tempdir()?;
    let tracking_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config = format!(
        "[listen]\napi = \"127.0.0.1:0\"\ntracking = \"127.0.0.1:{tracking_port}\"\nbounce = \"127.0.0.1:0\"\n\
         [tracking]\nbase_url = \"http://127.0.0.1:{tracking_port}\"\n\
         [[email.relays]]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n",
        sink.port
    );
    std::fs::write(dir.path().join("sluice.toml"), config)?;
    let spec = format!(
        "1:{}",
        base64::engine::general_purpose::STANDARD.encode([7u8; 32])
    );
    let sluice = std::env::current_exe()?.with_file_name("sluice");
    ensure!(
        sluice.exists(),
        "{} is missing: cargo build --release --bin sluice",
        sluice.display()
    );
    let mut child = Command::new(&sluice)
        .args(["serve", "--config"])
        .arg(dir.path().join("sluice.toml"))
        .arg("--data")
        .arg(dir.path().join("data"))
        .env("SLUICE_TRACKING_KEYS", &spec)
        .env("TOKIO_WORKER_THREADS", &threads)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    let api_addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("api="))
        .context("no api= in the daemon's first line")?
        .parse()?;
    let api = Api::new(api_addr);

    let decl = serde_json::json!({"channel": "email", "name": "redirect", "content": {"email": {
        "from": "o@telco.example", "subject": "s", "text": "t",
        "html": "<a href=\"http://example.com/\">offer</a>"}}});
    api.call(
        Method::PUT,
        "/v1/campaigns/r",
        "application/json",
        decl.to_string(),
    )
    .await?;
    let one = r#"[{"customer":"c0","address":"c0@example.org"}]"#;
    api.call(
        Method::POST,
        "/v1/campaigns/r/participants",
        "application/json",
        one,
    )
    .await?;
    api.call(
        Method::POST,
        "/v1/campaigns/r/start",
        "application/json",
        "",
    )
    .await?;
    while sink.received() < 1 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The first campaign is number 0, its first participant number 0.
    let keys = Keyring::from_spec(&spec)?;
    let token = keys.mint(Token::Click {
        message: MessageNo(0),
        link: LinkIndex(0),
    });
    println!("url http://127.0.0.1:{tracking_port}/c/{token}");

    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?
        .recv()
        .await;
    let clicked = settled_clicks(&api).await?;
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    // Wait off this (single) runtime thread: the SMTP sink must keep
    // answering, or the daemon's QUIT on its idle relay connection waits for
    // a reply that never comes and shutdown takes the whole grace period.
    tokio::task::spawn_blocking(move || child.wait()).await??;
    println!("events clicked={clicked} refused=0");
    Ok(())
}

/// Counts `clicked` facts in the feed until two reads a moment apart agree.
async fn settled_clicks(api: &Api) -> anyhow::Result<u64> {
    let mut last = u64::MAX;
    loop {
        let mut after = 0u64;
        let mut clicked = 0u64;
        loop {
            let (_, page) = api
                .call(
                    Method::GET,
                    &format!("/v1/events?after={after}&limit=10000"),
                    "",
                    "",
                )
                .await?;
            let events = page["events"].as_array().context("events")?;
            if events.is_empty() {
                break;
            }
            clicked += events.iter().filter(|e| e["type"] == "clicked").count() as u64;
            after = page["next"].as_u64().context("next")?;
        }
        if clicked == last {
            return Ok(clicked);
        }
        last = clicked;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
