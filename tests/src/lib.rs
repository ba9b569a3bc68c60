//! End-to-end harness: starts the real `sluice` binary on ephemeral loopback
//! ports against real protocol peers (Python `aiosmtpd`, an HTTP receiver,
//! Postfix's `smtp-sink`, the npm `smpp` server, Chromium), and talks to it
//! over plain HTTP/1.1.
//!
//! No test passes without its peer: a missing peer fails the test, naming it
//! and the command that installs it ([`peers`]). No test passes by returning
//! early: a test using a peer must hold a [`MustReachEnd`] (every peer's
//! start takes one), which fails it unless it says `reached()` after its last
//! check.

#![allow(clippy::unwrap_used)] // test harness: a failure here is a test failure

mod guard;
pub mod http;
pub mod npm_smsc;
pub mod peers;
pub mod postfix_smtpd;
pub mod redis_server;
pub mod smsc;
pub mod smtp_sink;
pub mod tls_proxy;

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub use guard::{MustReachEnd, must_reach_end};
pub use http::{Response, request};
use peers::peers_dir;

/// Where cargo put the `sluice` binary of this build.
/// A loopback port nothing listens on (now): for a peer to start on later,
/// or a listener whose address must be known in advance.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `done` until it holds, failing with `what` after `within`.
pub fn wait_until(what: &str, within: std::time::Duration, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(start.elapsed() < within, "no {what} within {within:?}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// An hour or a day: a period whose counts (a cap, a plan hour, an
/// exclusion day) start again at its UTC boundary.
pub const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);
pub const DAY: std::time::Duration = std::time::Duration::from_secs(86_400);

/// Sleeps past the next UTC boundary of `period` when it is less than
/// `margin` away: what a test counts within one period must not straddle
/// two (a cap full today is empty again tomorrow, rightly).
pub fn clear_of_boundary(period: std::time::Duration, margin: std::time::Duration) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let left = period - std::time::Duration::from_secs(now.as_secs() % period.as_secs());
    if left < margin {
        std::thread::sleep(left + std::time::Duration::from_secs(1));
    }
}

pub fn sluice_bin() -> PathBuf {
    workspace_bin("sluice", "gateway")
}

pub fn sluicectl_bin() -> PathBuf {
    workspace_bin("sluicectl", "ctl")
}

/// The binary `name` of package `package`, built beside the tests.
fn workspace_bin(name: &str, package: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = profile_dir.join(name);
    assert!(
        bin.exists(),
        "{} is missing: build the workspace (cargo build -p {package}) first",
        bin.display()
    );
    bin
}

/// Reads the `key=value` words of the first line of a child's stdout that has `key=`.
fn read_announcement(child: &mut Child, key: &str) -> String {
    announcement(child, key).remove(key).unwrap()
}

fn announcement(child: &mut Child, key: &str) -> std::collections::HashMap<String, String> {
    let stdout = child.stdout.take().unwrap();
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line).unwrap();
        assert!(n > 0, "process ended before announcing {key}");
        let words: std::collections::HashMap<String, String> = line
            .split_whitespace()
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        if words.contains_key(key) {
            // Keep draining stdout so the child never blocks on a full pipe.
            std::thread::spawn(move || {
                let mut sink = String::new();
                while reader.read_line(&mut sink).is_ok_and(|n| n > 0) {
                    sink.clear();
                }
            });
            return words;
        }
    }
}

/// A Python peer from `peers/`: it prints `port=N` once it listens and
/// appends one JSON object per thing it received to its log.
struct PythonPeer {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl PythonPeer {
    /// Runs `script` with `python`, a [`peers::python`].
    fn spawn(mut python: Command, script: &str, log: PathBuf, args: &[String]) -> Self {
        let mut child = python
            .arg(peers_dir().join(script))
            .arg("--log")
            .arg(&log)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let port = read_announcement(&mut child, "port").parse().unwrap();
        Self { child, port, log }
    }

    /// The complete lines of the log, parsed.
    fn logged(&self) -> Vec<serde_json::Value> {
        let Ok(text) = std::fs::read_to_string(&self.log) else {
            return Vec::new();
        };
        text.lines()
            .filter(|l| l.ends_with('}'))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for PythonPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Python `aiosmtpd` server that logs each accepted message.
pub struct SmtpPeer {
    peer: PythonPeer,
    pub port: u16,
}

/// One message as the SMTP peer received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub data: String,
}

impl SmtpPeer {
    /// Starts the peer on a free port (fails the test without aiosmtpd).
    pub fn start(end: &MustReachEnd, dir: &Path) -> Self {
        Self::start_on(end, dir, 0)
    }

    pub fn start_on(end: &MustReachEnd, dir: &Path, port: u16) -> Self {
        let log = dir.join(format!("smtp-received-{port}.ndjson"));
        let peer = PythonPeer::spawn(
            peers::python_with_aiosmtpd(end),
            "smtp_peer.py",
            log,
            &["--port".into(), port.to_string()],
        );
        Self {
            port: peer.port,
            peer,
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.peer
            .logged()
            .iter()
            .map(|v| Received {
                mail_from: v["mail_from"].as_str().unwrap().to_owned(),
                rcpt_tos: v["rcpt_tos"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_str().unwrap().to_owned())
                    .collect(),
                data: v["data"].as_str().unwrap().to_owned(),
            })
            .collect()
    }
}

/// A Python HTTP endpoint that logs webhook posts and fails the first few.
pub struct WebhookReceiver {
    peer: PythonPeer,
    pub port: u16,
}

/// One webhook post as received.
#[derive(Debug, Clone)]
pub struct Post {
    pub signature: String,
    pub body: String,
}

impl Post {
    /// The cursors of the facts it carries, in order.
    pub fn cursors(&self) -> Vec<u64> {
        let body: serde_json::Value = serde_json::from_str(&self.body).unwrap();
        body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["cursor"].as_u64().unwrap())
            .collect()
    }
}

impl WebhookReceiver {
    pub fn start(end: &MustReachEnd, dir: &Path, fail_first: usize) -> Self {
        let log = dir.join("webhook-posts.ndjson");
        let peer = PythonPeer::spawn(
            peers::python(end),
            "webhook_receiver.py",
            log,
            &["--fail-first".into(), fail_first.to_string()],
        );
        Self {
            port: peer.port,
            peer,
        }
    }

    pub fn posts(&self) -> Vec<Post> {
        self.peer
            .logged()
            .iter()
            .map(|v| Post {
                signature: v["signature"].as_str().unwrap_or_default().to_owned(),
                body: v["body"].as_str().unwrap().to_owned(),
            })
            .collect()
    }
}

/// The `[[email.relays]]` entry for a peer.
pub fn relay_config(peer: &SmtpPeer) -> String {
    format!(
        "[[email.relays]]\nhost = \"127.0.0.1\"\nport = {}\n",
        peer.port
    )
}

/// The real daemon, configured by a TOML text, with its own data directory.
pub struct Daemon {
    child: Option<Child>,
    pub api: String,
    /// The tracking listener.
    pub tracking: String,
    /// The bounce intake SMTP listener.
    pub bounce: String,
    config: PathBuf,
    data: PathBuf,
    envs: Vec<(String, String)>,
}

impl Daemon {
    /// Writes `config_toml` (listeners on port 0 are added) and starts sluice.
    pub fn start(dir: &Path, config_toml: &str) -> Self {
        Self::start_with_env(dir, config_toml, &[])
    }

    pub fn start_with_env(dir: &Path, config_toml: &str, envs: &[(&str, &str)]) -> Self {
        let config = dir.join("sluice.toml");
        let text = format!(
            "[listen]\napi = \"127.0.0.1:0\"\ntracking = \"127.0.0.1:0\"\nbounce = \"127.0.0.1:0\"\n\n{config_toml}"
        );
        std::fs::write(&config, text).unwrap();
        let mut daemon = Self {
            child: None,
            api: String::new(),
            tracking: String::new(),
            bounce: String::new(),
            config,
            data: dir.join("data"),
            envs: envs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        daemon.restart();
        daemon
    }

    /// Sets an environment variable for the next `restart`.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.envs.retain(|(k, _)| k != key);
        self.envs.push((key.to_owned(), value.to_owned()));
    }

    /// Starts the daemon again on the same data (after `kill9` or `terminate`).
    pub fn restart(&mut self) {
        let mut child = Command::new(sluice_bin())
            .args(["serve", "--config"])
            .arg(&self.config)
            .arg("--data")
            .arg(&self.data)
            .env_remove("SLUICE_API_TOKENS")
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(self.log_file())
            .spawn()
            .unwrap();
        let mut words = announcement(&mut child, "api");
        self.api = words.remove("api").unwrap();
        self.tracking = words.remove("tracking").unwrap_or_default();
        self.bounce = words.remove("bounce").unwrap_or_default();
        self.child = Some(child);
    }

    /// The daemon's log (its stderr, every run appended), for assertions;
    /// a failing test prints it.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.data.with_file_name("sluice.log")
    }

    fn log_file(&self) -> std::fs::File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap()
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGHUP: the daemon reads its TLS certificates again.
    pub fn hangup(&self) {
        let child = self.child.as_ref().expect("running");
        let sent = Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// SIGTERM and wait for a clean exit; returns whether it exited 0.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        child.wait().unwrap().success()
    }

    pub fn get(&self, path: &str) -> Response {
        request("GET", &self.api, path, &[], b"")
    }

    pub fn delete(&self, path: &str) -> Response {
        request("DELETE", &self.api, path, &[], b"")
    }

    pub fn put_json(&self, path: &str, body: &serde_json::Value) -> Response {
        request(
            "PUT",
            &self.api,
            path,
            &[("content-type", "application/json")],
            body.to_string().as_bytes(),
        )
    }

    pub fn post(&self, path: &str, content_type: &str, body: &[u8]) -> Response {
        request(
            "POST",
            &self.api,
            path,
            &[("content-type", content_type)],
            body,
        )
    }

    /// Declares an e-mail campaign (`window` optional) and uploads
    /// `participants` customers `c0..` at `u0@example.org..`.
    pub fn email_campaign(&self, id: &str, window: Option<serde_json::Value>, participants: usize) {
        let mut decl = serde_json::json!({"channel": "email", "name": id, "expected_participants": participants,
            "content": {"email": {"from": "o@telco.test", "subject": "Hi {{customer}}", "text": "Offer for {{customer}}"}}});
        if let Some(w) = window {
            decl["window"] = w;
        }
        self.declare(id, &decl);
        let rows: Vec<_> = (0..participants)
            .map(|i| serde_json::json!({"customer": format!("c{i}"), "address": format!("u{i}@example.org")}))
            .collect();
        let r = self.upload(id, &rows);
        assert_eq!(r["accepted"], participants, "{r}");
    }

    /// Declares campaign `id` as `decl`, asserting it is accepted.
    pub fn declare(&self, id: &str, decl: &serde_json::Value) {
        let r = self.put_json(&format!("/v1/campaigns/{id}"), decl);
        assert_eq!(r.status, 200, "{}", r.text());
    }

    /// Uploads `rows` as NDJSON to campaign `id`; returns the upload's
    /// answer (accepted, rejected lines), asserting a 200.
    pub fn upload(&self, id: &str, rows: &[serde_json::Value]) -> serde_json::Value {
        let body: String = rows.iter().map(|row| format!("{row}\n")).collect();
        let r = self.post(
            &format!("/v1/campaigns/{id}/participants"),
            "application/x-ndjson",
            body.as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }

    /// Starts campaign `id`, asserting it started.
    pub fn start_campaign(&self, id: &str) {
        let r = self.post(
            &format!("/v1/campaigns/{id}/start"),
            "application/json",
            b"",
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }

    /// Declares, fills and starts an e-mail campaign to `(customer, address)`
    /// pairs; returns its state once finished.
    pub fn run_email_campaign(&self, id: &str, participants: &[(&str, &str)]) -> serde_json::Value {
        let decl = serde_json::json!({"channel": "email", "name": id,
            "content": {"email": {"from": "o@telco.test", "subject": "Offer", "text": "Hello {{customer}}"}}});
        self.declare(id, &decl);
        let rows: Vec<_> = participants
            .iter()
            .map(|(c, a)| serde_json::json!({"customer": c, "address": a}))
            .collect();
        let r = self.post(
            &format!("/v1/campaigns/{id}/participants"),
            "application/json",
            serde_json::json!(rows).to_string().as_bytes(),
        );
        assert_eq!(r.json()["accepted"], participants.len(), "{}", r.text());
        self.start_campaign(id);
        self.wait_for_campaign(id, Duration::from_secs(60), |v| v["state"] == "finished")
    }

    /// Polls the campaign until `done` holds for its JSON, or panics at `deadline`.
    pub fn wait_for_campaign(
        &self,
        id: &str,
        deadline: Duration,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let r = self.get(&format!("/v1/campaigns/{id}"));
            let v = r.json();
            if done(&v) {
                return v;
            }
            assert!(
                start.elapsed() < deadline,
                "campaign {id} did not get there in {deadline:?}: {v}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Every fact in the feed, following cursors.
    pub fn all_events(&self) -> Vec<serde_json::Value> {
        let mut after = 0;
        let mut events = Vec::new();
        loop {
            let page = self
                .get(&format!("/v1/events?after={after}&limit=10000"))
                .json();
            let batch = page["events"].as_array().unwrap().clone();
            if batch.is_empty() {
                return events;
            }
            after = page["next"].as_u64().unwrap();
            events.extend(batch);
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("--- sluice's log ---\n{}", self.log());
        }
    }
}
