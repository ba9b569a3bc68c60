//! The live daemon against its OpenAPI document (`GET /v1/openapi.json`):
//! Schemathesis generates requests from the document, valid and invalid,
//! and checks every answer: no 5xx, each status, content type, header and
//! body as documented, invalid input refused, a token required where the
//! document says so, 405 with `Allow` for undocumented methods, and what a
//! deleted resource answers after.

#![allow(clippy::unwrap_used)]

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use serde_json::json;
use sluice_e2e::{Daemon, SmtpPeer, must_reach_end, peers, request};

const CRM: &str = "crm-token";
const ADMIN: &str = "admin-token";

/// Long enough for the run below on two cores (it takes about half a
/// minute); a hung run fails instead of blocking the suite.
const BUDGET: Duration = Duration::from_secs(240);

/// Schemathesis's settings beside its command line. Every check is on,
/// with two exceptions, each for a reason the document cannot remove:
///
/// - `/readyz` answers 503 by design when the gateway cannot send (the run
///   itself stops the relay through the connector route), so a 503 there
///   is its documented answer, not a server error.
/// - `positive_data_acceptance` (a request the schemas allow must not be
///   refused with 400 or 422) is off for the operations whose bodies the
///   daemon checks beyond what JSON Schema can say: a declaration's
///   templates, addresses, IANA zones and referenced campaigns; a
///   participant's address for the campaign's channel; limits' zones and
///   durations; a plan needing the channel's limits first; a blacklist
///   entry that is only whitespace (Rust's and the regex engines'
///   whitespace differ, so no `pattern` can say it exactly).
const CONFIG: &str = r#"
[checks]
enabled = true

[[operations]]
include-path = "/readyz"
checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "503"]

[[operations]]
include-operation-id = ["declareCampaign", "previewMessage", "sendTest", "computePlan", "putLimits", "addToBlacklist"]
checks.positive_data_acceptance.enabled = false
"#;

/// Sends `body` as the administrator, asserting success.
fn call(daemon: &Daemon, method: &str, path: &str, body: &serde_json::Value) {
    let auth = format!("Bearer {ADMIN}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let r = request(
        method,
        &daemon.api,
        path,
        &headers,
        body.to_string().as_bytes(),
    );
    assert!(r.status < 300, "{method} {path}: {} {}", r.status, r.text());
}

#[test]
fn schemathesis_finds_the_live_api_as_documented() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let relay = SmtpPeer::start(&end, dir.path());
    let daemon = Daemon::start(
        dir.path(),
        &format!(
            "[api]\ntokens = \"crm:{CRM},admin:{ADMIN}\"\n\n[[email.relays]]\nname = \"main\"\nhost = \"127.0.0.1\"\nport = {}\n",
            relay.port
        ),
    );

    // The daemon serves the document as committed, without a token.
    let served = daemon.get("/v1/openapi.json");
    assert_eq!(served.status, 200, "{}", served.text());
    assert_eq!(served.header("content-type"), Some("application/json"));
    assert_eq!(
        served.text(),
        include_str!("../../admin-api/openapi.json"),
        "the daemon under test serves another document: rebuild it (cargo build -p gateway --bins)"
    );

    // What the document's examples name exists, so that they reach the
    // handlers' success paths: campaign `spring-1` with a participant,
    // the blacklisted `ann@example.org`, e-mail limits and a plan.
    let decl = json!({"channel": "email", "name": "Spring",
        "content": {"email": {"from": "offers@telco.example", "subject": "Hi {{customer}}", "text": "Hello"}}});
    call(&daemon, "PUT", "/v1/campaigns/spring-1", &decl);
    call(
        &daemon,
        "POST",
        "/v1/campaigns/spring-1/participants",
        &json!([{"customer": "c0", "address": "carl@example.org"}]),
    );
    call(
        &daemon,
        "PUT",
        "/v1/blacklist/email",
        &json!(["ann@example.org"]),
    );
    call(
        &daemon,
        "PUT",
        "/v1/channels/email/limits",
        &json!({"rate_per_sec": 50, "tz": "Europe/Berlin"}),
    );
    call(&daemon, "POST", "/v1/channels/email/plan", &json!({}));

    let config = dir.path().join("schemathesis.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let mut schemathesis = peers::schemathesis(&end);
    schemathesis
        .arg("--config-file")
        .arg(&config)
        .arg("--no-color")
        .args(["run", &format!("http://{}/v1/openapi.json", daemon.api)])
        .args(["--header", &format!("Authorization: Bearer {ADMIN}")])
        // Deterministic and bounded: a fixed seed, 100 cases an operation
        // in each generating phase, one worker (two cores: the daemon
        // needs the other; parallel workers also trip a Hypothesis race).
        .args(["--seed", "17", "--max-examples", "100", "--workers", "1"])
        .args(["--request-timeout", "30", "--generation-database", "none"])
        .current_dir(dir.path())
        // Serializers for the NDJSON upload and the raw mail of a bounce.
        .env(
            "SCHEMATHESIS_HOOKS",
            peers::peers_dir().join("schemathesis_hooks.py"),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = schemathesis.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > BUDGET {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("Schemathesis ran over {BUDGET:?}:\n{}", out.join().unwrap());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    eprintln!(
        "Schemathesis took {:.1?}; its summary:\n{}",
        started.elapsed(),
        out.lines()
            .skip_while(|l| !l.contains("SUMMARY"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        status.success(),
        "Schemathesis found the API off its document ({status}):\n{out}\n{err}"
    );
    // It tested every operation but the document itself (which it reads
    // rather than tests).
    let document: serde_json::Value = served.json();
    let operations: usize = document["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| {
            ["get", "put", "post", "delete", "patch"]
                .iter()
                .filter(|m| item.get(**m).is_some())
                .count()
        })
        .sum();
    assert!(
        out.contains(&format!("Tested: {}", operations - 1)),
        "not every operation was tested:\n{out}"
    );
    end.reached();
}
