//! Uploads are all or nothing, seen from outside: a request whose body is
//! still streaming shows none of its participants; killed with `kill -9`
//! before its answer it leaves none after the restart; a campaign cancelled
//! while it streams refuses it whole with 409.

#![allow(clippy::unwrap_used)]

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

use sluice_e2e::{Daemon, wait_until};

/// Participants in two whole batches of the API (4,096 each): staged as
/// soon as they are read, so a body of exactly this many ends on a batch
/// boundary and the next step is the publish.
const TWO_BATCHES: usize = 8_192;

/// `lines` participants from `from` as NDJSON.
fn rows(from: usize, lines: usize) -> String {
    (from..from + lines)
        .map(|i| format!("{{\"customer\":\"c{i}\",\"address\":\"u{i}@example.org\"}}\n"))
        .collect()
}

/// One chunk of a chunked HTTP/1.1 body.
fn chunk(stream: &mut TcpStream, data: &str) {
    write!(stream, "{:x}\r\n{data}\r\n", data.len()).unwrap();
    stream.flush().unwrap();
}

/// An upload to `campaign` whose body has begun with two whole batches and
/// is not finished; returns once the daemon has staged them.
fn begin_upload(daemon: &Daemon, campaign: &str) -> TcpStream {
    let mut stream = TcpStream::connect(&daemon.api).unwrap();
    write!(
        stream,
        "POST /v1/campaigns/{campaign}/participants HTTP/1.1\r\nhost: sluice\r\n\
         connection: close\r\ncontent-type: application/x-ndjson\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    .unwrap();
    chunk(&mut stream, &rows(0, TWO_BATCHES));
    wait_until("the batches staged", Duration::from_secs(30), || {
        view(daemon, campaign)["uploading"] == TWO_BATCHES
    });
    stream
}

fn view(daemon: &Daemon, campaign: &str) -> serde_json::Value {
    let r = daemon.get(&format!("/v1/campaigns/{campaign}"));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn participants(daemon: &Daemon, campaign: &str) -> u64 {
    view(daemon, campaign)["participants"].as_u64().unwrap()
}

#[test]
fn a_request_shows_its_participants_at_its_answer_or_never() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(dir.path(), "");
    daemon.declare("up", &serde_json::json!({"channel": "email", "name": "up"}));

    // Streaming: the batches already read are staged, and unseen.
    let stream = begin_upload(&daemon, "up");
    assert_eq!(
        participants(&daemon, "up"),
        0,
        "staged participants are seen"
    );
    assert_eq!(view(&daemon, "up")["counts"]["pending"], 0);

    // Killed before the answer: nothing of it after the restart.
    daemon.kill9();
    drop(stream);
    daemon.restart();
    let after = view(&daemon, "up");
    assert_eq!(
        after["participants"], 0,
        "an unanswered upload left participants"
    );
    assert_eq!(after["uploading"], 0);

    // Cancelled while it streams, the body then ending on a batch boundary:
    // its publish is refused, whole.
    let mut stream = begin_upload(&daemon, "up");
    let cancel = daemon.post("/v1/campaigns/up/cancel", "application/json", b"");
    assert_eq!(cancel.status, 200, "{}", cancel.text());
    chunk(&mut stream, "");
    let mut answer = String::new();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 409"), "{answer}");
    assert!(answer.contains("cancelled"), "{answer}");
    let after = view(&daemon, "up");
    assert_eq!(after["participants"], 0);
    assert_eq!(after["uploading"], 0, "the refused upload was abandoned");

    // The same upload to a new campaign goes through whole.
    daemon.declare(
        "again",
        &serde_json::json!({"channel": "email", "name": "again"}),
    );
    let r = daemon.post(
        "/v1/campaigns/again/participants",
        "application/x-ndjson",
        rows(0, TWO_BATCHES + 10).as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["accepted"], TWO_BATCHES + 10);
    assert_eq!(participants(&daemon, "again"), (TWO_BATCHES + 10) as u64);
}

/// A CRM's retry sent while its first try is still being read (its client
/// timed out; the request is not dropped yet): the retry counts every
/// customer as its own, whatever then becomes of the first try.
#[test]
fn a_retry_beside_an_upload_still_being_read_adds_every_customer() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), "");
    let retry = |campaign: &str| {
        let r = daemon.post(
            &format!("/v1/campaigns/{campaign}/participants"),
            "application/x-ndjson",
            rows(0, TWO_BATCHES).as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let answer = r.json();
        assert_eq!(
            (&answer["accepted"], &answer["duplicates"]),
            (&serde_json::json!(TWO_BATCHES), &serde_json::json!(0)),
            "the retry's answer: {answer}"
        );
    };

    // The first try goes away unanswered after the retry's answer.
    daemon.declare("up", &serde_json::json!({"channel": "email", "name": "up"}));
    let first = begin_upload(&daemon, "up");
    retry("up");
    drop(first);
    wait_until("the first try abandoned", Duration::from_secs(30), || {
        view(&daemon, "up")["uploading"] == 0
    });
    assert_eq!(
        participants(&daemon, "up"),
        TWO_BATCHES as u64,
        "the customers the retry answered for were lost with the first try"
    );

    // The first try ends after the retry: its customers are duplicates.
    daemon.declare(
        "two",
        &serde_json::json!({"channel": "email", "name": "two"}),
    );
    let mut first = begin_upload(&daemon, "two");
    retry("two");
    chunk(&mut first, "");
    let mut answer = String::new();
    first
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let _ = first.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains(&format!("\"accepted\":0,\"duplicates\":{TWO_BATCHES}")),
        "{answer}"
    );
    assert_eq!(participants(&daemon, "two"), TWO_BATCHES as u64);
}

/// Participants uploaded before a content (or before a change of it) were
/// checked against what was declared then: a content naming a field some
/// of them lack is refused, naming them, rather than failing each at send
/// time; and no content changes while an upload is read against the old.
#[test]
fn a_new_content_is_refused_when_participants_uploaded_before_it_lack_its_fields() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), "");
    let content = |text: &str| {
        serde_json::json!({"channel": "email", "name": "late", "content": {"email": {
            "from": "news@telco.test", "subject": "Hello", "text": text}}})
    };
    daemon.declare(
        "late",
        &serde_json::json!({"channel": "email", "name": "late"}),
    );
    let rows: String = (0..12)
        .map(|i| {
            let gb = if i == 5 { r#","gb":20"# } else { "" };
            format!(
                "{{\"customer\":\"c{i}\",\"address\":\"u{i}@example.org\",\"fields\":{{\"name\":\"N{i}\"{gb}}}}}\n"
            )
        })
        .collect();
    let r = daemon.post(
        "/v1/campaigns/late/participants",
        "application/x-ndjson",
        rows.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());

    let r = daemon.put_json(
        "/v1/campaigns/late",
        &content("Hi {{name}}, {{gb}} GB left"),
    );
    assert_eq!(r.status, 422, "{}", r.text());
    let problems = r.json()["problems"].clone();
    let problems = problems.as_array().unwrap();
    assert_eq!(
        problems.len(),
        11,
        "ten named, the rest counted: {problems:?}"
    );
    assert_eq!(
        problems[0],
        "content: participant `c0`, uploaded before it, cannot be sent it: missing template field(s) `gb`"
    );
    assert!(
        !problems
            .iter()
            .any(|p| p.as_str().unwrap().contains("`c5`")),
        "c5 has the field: {problems:?}"
    );
    assert_eq!(
        problems[10],
        "content: 1 more participants uploaded before it cannot be sent it"
    );
    assert_eq!(view(&daemon, "late")["content"], serde_json::Value::Null);

    // A content every participant can be sent is taken.
    daemon.declare("late", &content("Hi {{name}}"));

    // Not while an upload is read against the content as it is.
    daemon.declare("busy", &content("Hello"));
    let stream = begin_upload(&daemon, "busy");
    let r = daemon.put_json("/v1/campaigns/busy", &content("Hello!"));
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("upload being read"), "{}", r.text());
    drop(stream);
    wait_until("the upload abandoned", Duration::from_secs(30), || {
        view(&daemon, "busy")["uploading"] == 0
    });
    daemon.declare("busy", &content("Hello!"));
}

/// An audience larger than a page of the store (10,000) is read, checked
/// and added a page at a time and comes whole: the audience query answers
/// every participant once, a next stage takes every one with its address
/// field (refusing those without, by their position in the audience), and
/// a new content is checked against every participant.
#[test]
fn audiences_of_many_pages_are_answered_added_and_checked_whole() {
    const N: usize = 25_000;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), "");
    let declared = |name: &str| serde_json::json!({"channel": "email", "name": name});
    daemon.declare("first", &declared("first"));
    daemon.declare("next", &declared("next"));
    // Every 1,000th participant has no other address.
    let rows: String = (0..N)
        .map(|i| {
            let other = if i % 1_000 == 7 {
                String::new()
            } else {
                format!(r#","fields":{{"other":"o{i}@example.org"}}"#)
            };
            format!("{{\"customer\":\"c{i}\",\"address\":\"u{i}@example.org\"{other}}}\n")
        })
        .collect();
    let r = daemon.post(
        "/v1/campaigns/first/participants",
        "application/x-ndjson",
        rows.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["accepted"], N);

    let audience = daemon.get("/v1/campaigns/first/participants?outcome=pending");
    assert_eq!(audience.status, 200, "{}", audience.text());
    let customers: Vec<String> = audience
        .text()
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            row["customer"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(customers.len(), N);
    let distinct: std::collections::BTreeSet<&String> = customers.iter().collect();
    assert_eq!(distinct.len(), N, "every participant once");

    let r = daemon.post(
        "/v1/campaigns/next/participants/from",
        "application/json",
        br#"{"campaign": "first", "outcome": "pending", "address_field": "other"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let added = r.json();
    assert_eq!(added["accepted"], N - N / 1_000, "{added}");
    let refused: Vec<u64> = added["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    // Positions in the audience, as the audience query answers it.
    let positions: Vec<u64> = (1..)
        .zip(&customers)
        .filter(|(_, c)| c[1..].parse::<usize>().unwrap() % 1_000 == 7)
        .map(|(line, _)| line)
        .collect();
    assert_eq!(refused, positions, "refused by their audience position");
    let next = daemon
        .get("/v1/campaigns/next/participants?outcome=pending")
        .text();
    let lines: Vec<&str> = next.lines().collect();
    assert_eq!(lines.len(), N - N / 1_000);
    assert!(
        lines[0].contains(r#""address":"o0@example.org""#),
        "{}",
        lines[0]
    );

    let needs_plan = serde_json::json!({"channel": "email", "name": "first", "content": {"email": {
        "from": "news@telco.test", "subject": "Hello", "text": "{{plan}}"}}});
    let r = daemon.put_json("/v1/campaigns/first", &needs_plan);
    assert_eq!(r.status, 422, "{}", r.text());
    let problems = r.json()["problems"].clone();
    assert_eq!(
        problems[10],
        format!(
            "content: {} more participants uploaded before it cannot be sent it",
            N - 10
        ),
        "every participant checked"
    );
}
