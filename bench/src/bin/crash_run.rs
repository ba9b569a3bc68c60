//! The long crash run: an e-mail campaign of 1,000,000 participants whose
//! daemon is killed with SIGKILL ten times at random moments (twice during
//! the upload, once right after the start, five times while sending, twice
//! while settling) and restarted each time. It checks, and prints for
//! `RELIABILITY.md`:
//! - every participant of an acknowledged upload is in the campaign, and
//!   none of an upload killed before its answer;
//! - every recipient got its message, duplicates within the in-flight
//!   window of each kill while sending;
//! - the fact feed never loses or changes a fact it has shown, and its
//!   cursors only go up; each customer has one `accepted` fact and at least
//!   one `submitted`.
//!
//! `cargo build --release --bin sluice -p bench --bin crash_run &&
//!  target/release/crash_run [PARTICIPANTS] [SEED]`

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use bench::{args::positional, http::Api, smtp_sink::SmtpSink};
use hyper::Method;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Sends being made at once.
const CONCURRENCY: usize = 64;
/// What one kill can duplicate at most: the sends being made and as many
/// again answered but not yet durable (the dispatcher's bound, however
/// slow the disk; the end-to-end crash test's bound too).
const IN_FLIGHT: usize = 2 * CONCURRENCY;
/// Participants per upload request.
const CHUNK: usize = 50_000;
const CAMPAIGN: &str = "crash";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = positional(1, "participants", 1_000_000)?;
    let seed: u64 = positional(2, "seed", now_nanos())?;
    let mut random = XorShift(seed | 1);
    println!("crash run: {n} participants, seed {seed}");
    let sink = SmtpSink::start_counting_recipients().await?;
    let dir = tempfile::tempdir()?;
    let mut daemon = Daemon::start(dir.path(), sink.port)?;
    let api = Api::new(daemon.api);
    daemon.ready(&api).await?;
    let mut feed = Feed::default();
    let mut kills = Kills::default();

    api.declare(
        CAMPAIGN,
        &serde_json::json!({"channel": "email", "name": "crash run",
        "content": {"email": {"from": "Offers <offers@telco.example>",
            "subject": "{{name}}, go unlimited", "text": "Hello {{name}}."}}}),
    )
    .await?;

    // Upload, killed during two of the requests: each request is sent again
    // until it is acknowledged.
    let chunks = n.div_ceil(CHUNK);
    let killed_at = [chunks / 3, 2 * chunks / 3];
    for chunk in 0..chunks {
        let body = ndjson(chunk * CHUNK..((chunk + 1) * CHUNK).min(n));
        if killed_at.contains(&chunk) {
            let upload = tokio::spawn(upload_once(daemon.api, body.clone()));
            tokio::time::sleep(Duration::from_millis(random.below(100))).await;
            daemon.kill_and_restart(&api, &mut kills, "upload").await?;
            let answered = matches!(upload.await, Ok(Ok(200)));
            // All or nothing: the killed request is in whole or not at all
            // (whole also when the kill fell between its commit and its
            // answer), and in whole if it was answered.
            let before = chunk * CHUNK;
            let seen = campaign(&api).await?["participants"].as_u64();
            let whole = ((chunk + 1) * CHUNK).min(n);
            ensure!(
                seen == Some(whole as u64) || (!answered && seen == Some(before as u64)),
                "after a kill during an upload: {seen:?} participants, {before} acknowledged before it (answered: {answered})"
            );
            println!(
                "killed during an upload: {seen:?} participants visible, {before} acknowledged before it (answered: {answered})"
            );
        }
        upload_until_acknowledged(&api, &daemon, body).await?;
    }
    let view = campaign(&api).await?;
    ensure!(
        view["participants"] == n,
        "participants after the upload: {view}"
    );
    feed.check(&api).await?;

    // Start, killed right after it was acknowledged.
    api.start(CAMPAIGN).await?;
    daemon.kill_and_restart(&api, &mut kills, "start").await?;
    ensure!(
        campaign(&api).await?["state"] != "declared",
        "the start was lost"
    );
    feed.check(&api).await?;

    // Sending, killed five times.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(300 + random.below(1700))).await;
        daemon.kill_and_restart(&api, &mut kills, "sending").await?;
        feed.check(&api).await?;
    }

    // Settling: killed when 90% and 99% are recorded.
    for share in [0.90, 0.99] {
        wait_for(&api, |v| {
            v["counts"]["submitted"].as_u64().unwrap_or(0) as f64 >= share * n as f64
        })
        .await?;
        daemon
            .kill_and_restart(&api, &mut kills, "settling")
            .await?;
        feed.check(&api).await?;
    }
    let done = wait_for(&api, |v| v["state"] == "finished").await?;
    ensure!(
        done["counts"]["submitted"] == n,
        "not all submitted: {done}"
    );
    feed.check(&api).await?;
    daemon.stop();

    let received = sink.per_recipient();
    let missing = (0..n)
        .filter(|i| !received.contains_key(&format!("u{i}@example.org")))
        .count();
    let duplicates: u64 = received.values().map(|&c| u64::from(c) - 1).sum();
    let sending_kills = kills.during("sending") + kills.during("settling") + kills.during("start");
    let bound = sending_kills * IN_FLIGHT;
    let (accepted, submitted) = feed.per_customer();
    let accepted_twice = accepted.values().filter(|&&c| c > 1).count();
    let unsubmitted = (0..n)
        .filter(|i| !submitted.contains_key(format!("c{i}").as_str()))
        .count();
    println!("kills: {} ({})", kills.total(), kills.summary());
    println!("participants acknowledged and stored: {n}");
    println!("recipients without their message: {missing}");
    println!(
        "duplicates at the relay: {duplicates} (bound: {sending_kills} kills while sending × {IN_FLIGHT} in flight = {bound})"
    );
    println!(
        "facts: {} read, {} checks after restarts, none lost or changed, cursors only up",
        feed.seen.len(),
        feed.checks
    );
    println!(
        "customers with one accepted fact: {} of {n} ({accepted_twice} with more); without a submitted fact: {unsubmitted}",
        accepted.len()
    );
    ensure!(missing == 0, "{missing} recipients got nothing");
    ensure!(duplicates as usize <= bound, "duplicates over the bound");
    ensure!(
        accepted.len() == n && accepted_twice == 0,
        "accepted facts wrong"
    );
    ensure!(
        unsubmitted == 0,
        "{unsubmitted} customers without a submitted fact"
    );
    println!("crash run passed");
    Ok(())
}

fn ndjson(customers: std::ops::Range<usize>) -> String {
    customers
        .map(|i| {
            format!("{{\"customer\":\"c{i}\",\"address\":\"u{i}@example.org\",\"fields\":{{\"name\":\"N{i}\"}}}}\n")
        })
        .collect()
}

async fn upload_once(api: SocketAddr, body: String) -> anyhow::Result<u16> {
    let path = format!("/v1/campaigns/{CAMPAIGN}/participants");
    let (status, _) = Api::new(api)
        .call(Method::POST, &path, "application/x-ndjson", body)
        .await?;
    Ok(status)
}

/// Sends one upload request until it is answered 200.
async fn upload_until_acknowledged(api: &Api, daemon: &Daemon, body: String) -> anyhow::Result<()> {
    let path = format!("/v1/campaigns/{CAMPAIGN}/participants");
    for _ in 0..20 {
        match api
            .call(Method::POST, &path, "application/x-ndjson", body.clone())
            .await
        {
            Ok((200, _)) => return Ok(()),
            other => {
                eprintln!("upload not acknowledged ({other:?}); again");
                daemon.ready(api).await?;
            }
        }
    }
    bail!("an upload was never acknowledged")
}

async fn campaign(api: &Api) -> anyhow::Result<serde_json::Value> {
    let (status, view) = api
        .call(
            Method::GET,
            &format!("/v1/campaigns/{CAMPAIGN}"),
            "application/json",
            "",
        )
        .await?;
    ensure!(status == 200, "campaign answered {status}: {view}");
    Ok(view)
}

async fn wait_for(
    api: &Api,
    done: impl Fn(&serde_json::Value) -> bool,
) -> anyhow::Result<serde_json::Value> {
    let start = Instant::now();
    loop {
        let view = campaign(api).await?;
        if done(&view) {
            return Ok(view);
        }
        ensure!(start.elapsed() < Duration::from_secs(1800), "stuck: {view}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The feed as read so far: every fact's cursor and a hash of it.
#[derive(Default)]
struct Feed {
    seen: Vec<(u64, u64)>,
    kinds: Vec<(String, String)>,
    checks: usize,
}

impl Feed {
    /// Reads the whole feed again: what was shown before must be there
    /// unchanged, with cursors only going up.
    async fn check(&mut self, api: &Api) -> anyhow::Result<()> {
        let mut all = Vec::with_capacity(self.seen.len());
        let mut kinds = Vec::with_capacity(self.seen.len());
        let mut after = 0u64;
        loop {
            let (status, page) = api
                .call(
                    Method::GET,
                    &format!("/v1/events?after={after}&limit=10000"),
                    "application/json",
                    "",
                )
                .await?;
            ensure!(status == 200, "feed answered {status}");
            let events = page["events"].as_array().context("events")?;
            if events.is_empty() {
                break;
            }
            for e in events {
                let cursor = e["cursor"].as_u64().context("cursor")?;
                ensure!(
                    cursor > after,
                    "cursor {cursor} after {after}: went backwards"
                );
                after = cursor;
                let mut hasher = DefaultHasher::new();
                e.to_string().hash(&mut hasher);
                all.push((cursor, hasher.finish()));
                kinds.push((
                    e["type"].as_str().unwrap_or_default().to_owned(),
                    e["customer"].as_str().unwrap_or_default().to_owned(),
                ));
            }
        }
        ensure!(
            all.len() >= self.seen.len(),
            "the feed shrank: {} < {}",
            all.len(),
            self.seen.len()
        );
        if let Some(i) = (0..self.seen.len()).find(|&i| all[i] != self.seen[i]) {
            bail!("fact {:?} shown before is now {:?}", self.seen[i], all[i]);
        }
        self.seen = all;
        self.kinds = kinds;
        self.checks += 1;
        Ok(())
    }

    /// `accepted` and `submitted` facts per customer.
    fn per_customer(&self) -> (HashMap<&str, u32>, HashMap<&str, u32>) {
        let (mut accepted, mut submitted) = (HashMap::new(), HashMap::new());
        for (kind, customer) in &self.kinds {
            match kind.as_str() {
                "accepted" => *accepted.entry(customer.as_str()).or_default() += 1,
                "submitted" => *submitted.entry(customer.as_str()).or_default() += 1,
                _ => {}
            }
        }
        (accepted, submitted)
    }
}

#[derive(Default)]
struct Kills(Vec<&'static str>);

impl Kills {
    fn during(&self, phase: &str) -> usize {
        self.0.iter().filter(|&&p| p == phase).count()
    }

    fn total(&self) -> usize {
        self.0.len()
    }

    fn summary(&self) -> String {
        ["upload", "start", "sending", "settling"]
            .iter()
            .map(|p| format!("{} during {p}", self.during(p)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The sluice daemon as a child process, on fixed loopback ports so that
/// it answers at the same address after every restart.
struct Daemon {
    child: Option<Child>,
    config: PathBuf,
    log: PathBuf,
    api: SocketAddr,
}

impl Daemon {
    fn start(dir: &Path, relay_port: u16) -> anyhow::Result<Self> {
        let api: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let config = dir.join("sluice.toml");
        std::fs::write(
            &config,
            format!(
                "[listen]\napi = \"{api}\"\ntracking = \"127.0.0.1:{}\"\nbounce = \"127.0.0.1:{}\"\n\
                 [store]\npath = \"{}\"\n\
                 [dispatch]\nconcurrency = {CONCURRENCY}\nclaim_batch = {CONCURRENCY}\n\
                 [[email.relays]]\nhost = \"127.0.0.1\"\nport = {relay_port}\ntls = \"none\"\nconnections = {CONCURRENCY}\n",
                free_port()?,
                free_port()?,
                dir.join("data").display()
            ),
        )?;
        let mut daemon = Self {
            child: None,
            config,
            log: dir.join("sluice.log"),
            api,
        };
        daemon.spawn()?;
        Ok(daemon)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let bin = std::env::var("SLUICE_BIN").unwrap_or_else(|_| "target/release/sluice".into());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(&bin)
            .args(["serve", "--config"])
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {bin} (cargo build --release --bin sluice)"))?;
        self.child = Some(child);
        Ok(())
    }

    async fn ready(&self, api: &Api) -> anyhow::Result<()> {
        let start = Instant::now();
        while api.text("/healthz").await.is_err() {
            ensure!(
                start.elapsed() < Duration::from_secs(120),
                "the daemon did not come up (log: {})",
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    async fn kill_and_restart(
        &mut self,
        api: &Api,
        kills: &mut Kills,
        phase: &'static str,
    ) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?; // SIGKILL
            child.wait()?;
        }
        kills.0.push(phase);
        let down = Instant::now();
        self.spawn()?;
        self.ready(api).await?;
        println!(
            "kill {} during {phase}: back in {:.2} s",
            kills.total(),
            down.elapsed().as_secs_f64()
        );
        Ok(())
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
}

/// A small seeded generator, so that a run can be repeated by its seed.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}
