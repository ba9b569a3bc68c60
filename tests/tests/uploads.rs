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

use sluice_e2e::Daemon;

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

/// An upload to `campaign` whose body has begun with 10,000 lines (two
/// whole batches and some) and is not finished.
fn begin_upload(daemon: &Daemon, campaign: &str) -> TcpStream {
    let mut stream = TcpStream::connect(&daemon.api).unwrap();
    write!(
        stream,
        "POST /v1/campaigns/{campaign}/participants HTTP/1.1\r\nhost: sluice\r\n\
         connection: close\r\ncontent-type: application/x-ndjson\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    .unwrap();
    chunk(&mut stream, &rows(0, 10_000));
    stream
}

fn participants(daemon: &Daemon, campaign: &str) -> u64 {
    let r = daemon.get(&format!("/v1/campaigns/{campaign}"));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["participants"].as_u64().unwrap()
}

#[test]
fn a_request_shows_its_participants_at_its_answer_or_never() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(dir.path(), "");
    daemon.declare("up", &serde_json::json!({"channel": "email", "name": "up"}));

    // Streaming: the batches already read are staged, and unseen.
    let stream = begin_upload(&daemon, "up");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        participants(&daemon, "up"),
        0,
        "staged participants are seen"
    );

    // Killed before the answer: nothing of it after the restart.
    daemon.kill9();
    drop(stream);
    daemon.restart();
    assert_eq!(
        participants(&daemon, "up"),
        0,
        "an unanswered upload left participants"
    );

    // Cancelled while it streams: refused whole.
    let mut stream = begin_upload(&daemon, "up");
    std::thread::sleep(Duration::from_millis(300));
    let cancel = daemon.post("/v1/campaigns/up/cancel", "application/json", b"");
    assert_eq!(cancel.status, 200, "{}", cancel.text());
    chunk(&mut stream, &rows(10_000, 10));
    chunk(&mut stream, "");
    let mut answer = String::new();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 409"), "{answer}");
    assert!(answer.contains("cancelled"), "{answer}");
    assert_eq!(participants(&daemon, "up"), 0);

    // The same upload to a new campaign goes through whole.
    daemon.declare(
        "again",
        &serde_json::json!({"channel": "email", "name": "again"}),
    );
    let r = daemon.post(
        "/v1/campaigns/again/participants",
        "application/x-ndjson",
        rows(0, 10_010).as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["accepted"], 10_010);
    assert_eq!(participants(&daemon, "again"), 10_010);
}
