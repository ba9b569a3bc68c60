//! A webhook receiver down for an hour, on a clock 1,000 times short (the
//! sender's back-off from 1 ms to 60 ms, the outage 3.6 s): the backlog
//! stays in the store, the sender holds one batch and retries at most once
//! a (short) minute, and once the receiver is back every fact arrives once,
//! in order. And the cursor: one that cannot be read is waited out, never
//! taken for the start of the feed; one moved by another node is kept.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Router, extract::State, http::StatusCode, routing::post};
use domain::{CampaignDecl, ChannelKind, Participant};
use std::time::Instant;
use store::{Catalog, Intake, LimitState, embedded::Embedded};
use tokio_util::sync::CancellationToken;

use super::{Retry, WebhookSender};
use crate::{
    config::Webhook,
    metrics::{Metrics, WebhookLabels},
};

const FACTS: usize = 5_000;
const BATCH: usize = 200;
/// How much shorter the test's clock runs.
const SCALE: u32 = 1_000;

/// The receiver: 503 while `down`, else takes each batch's cursors.
#[derive(Default)]
struct Receiver {
    down: AtomicBool,
    attempts: AtomicUsize,
    /// Per attempt while down, when it came and the first cursor it carried.
    refused: Mutex<Vec<(Instant, u64)>>,
    delivered: Mutex<Vec<u64>>,
    largest_batch: AtomicUsize,
}

async fn take(State(r): State<Arc<Receiver>>, body: axum::body::Bytes) -> StatusCode {
    let page: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    let cursors: Vec<u64> = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["cursor"].as_u64().expect("cursor"))
        .collect();
    r.attempts.fetch_add(1, Ordering::Relaxed);
    r.largest_batch.fetch_max(cursors.len(), Ordering::Relaxed);
    if r.down.load(Ordering::Relaxed) {
        r.refused
            .lock()
            .expect("lock")
            .push((Instant::now(), cursors[0]));
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    r.delivered.lock().expect("lock").extend(cursors);
    StatusCode::OK
}

async fn receiver() -> (Arc<Receiver>, SocketAddr) {
    let state = Arc::new(Receiver::default());
    state.down.store(true, Ordering::Relaxed);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = Router::new()
        .route("/hook", post(take))
        .with_state(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (state, addr)
}

/// A receiver of one connection, which `answer` speaks raw HTTP on from
/// its start (the request unread); its address, and `answer`'s end.
async fn one_connection<T, F>(
    answer: impl FnOnce(tokio::net::TcpStream) -> F + Send + 'static,
) -> (SocketAddr, tokio::task::JoinHandle<T>)
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let handle = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.expect("accept");
        answer(socket).await
    });
    (addr, handle)
}

/// The sender to `addr` of `store`'s feed, on the short clock.
fn sender(store: Arc<Embedded>, addr: SocketAddr) -> WebhookSender {
    let config = Webhook {
        url: format!("http://{addr}/hook"),
        secret_env: "UNUSED".into(),
        batch: BATCH,
        ca_file: None,
    };
    WebhookSender {
        index: 0,
        client: super::client(&config).expect("client"),
        config,
        secret: b"s".to_vec(),
        store,
        metrics: Arc::new(Metrics::default()),
        retry: Retry {
            first: Retry::default().first / SCALE,
            max: Retry::default().max / SCALE,
            // Not shortened: a post timed out that the receiver took would
            // come again, and this test counts every fact once.
            answer: Retry::default().answer,
        },
    }
}

/// Waits (generously: not a speed check) until the receiver holds `n`
/// cursors.
async fn delivered(receiver: &Receiver, n: usize) -> Vec<u64> {
    let start = Instant::now();
    loop {
        let got = receiver.delivered.lock().expect("lock").clone();
        if got.len() >= n {
            return got;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{} of {n} facts delivered",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A store whose feed holds `FACTS` `accepted` facts.
async fn backlog(dir: &std::path::Path) -> Arc<Embedded> {
    let store = Arc::new(Embedded::open(dir).expect("open"));
    store
        .put_campaign("c", CampaignDecl::new(ChannelKind::Email, "outage"))
        .await
        .expect("declare");
    let people = (0..FACTS)
        .map(|i| Participant {
            customer: format!("c{i}"),
            address: format!("c{i}@example.org"),
            segment: None,
            fields: Default::default(),
        })
        .collect();
    store.add_participants("c", people, 1).await.expect("add");
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_an_hour_gets_the_backlog_in_order_once_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = backlog(dir.path()).await;
    let (receiver, addr) = receiver().await;
    let sender = sender(store.clone(), addr);
    let metrics = sender.metrics.clone();
    let backlog_age = || {
        metrics
            .webhook_backlog_age
            .get_or_create(&WebhookLabels {
                webhook: "0".into(),
            })
            .get()
    };
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(sender.run(shutdown.clone()));

    let hour = Duration::from_secs(3600) / SCALE;
    tokio::time::sleep(hour).await;
    // The facts date from the epoch's first second: the gauge says so.
    assert!(backlog_age() > 1e9, "{}", backlog_age());
    let refused = receiver.refused.lock().expect("lock").clone();
    assert!(
        refused.iter().all(|&(_, first)| first == 1),
        "every try sends the oldest batch again, nothing skipped"
    );
    // Back-off doubling from 1 s up to 60 s: each try waits at least its
    // back-off after the last (a lower bound, whatever the machine's load)...
    let retry = Retry::default();
    for (n, pair) in refused.windows(2).enumerate() {
        let backoff = (retry.first * 2u32.pow(n.min(10) as u32)).min(retry.max) / SCALE;
        let gap = pair[1].0 - pair[0].0;
        assert!(
            gap >= backoff,
            "try {} came {gap:?} after the one before, under its back-off {backoff:?}",
            n + 2
        );
    }
    // ...and waits no longer than a minute: doubling without the cap would
    // make 12 tries in the hour, one a minute about 65.
    let tries = refused.len();
    assert!(
        (15..=7 + 60).contains(&tries),
        "{tries} tries in an hour down"
    );

    receiver.down.store(false, Ordering::Relaxed);
    delivered(&receiver, FACTS).await;
    let start = Instant::now();
    while backlog_age() != 0.0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{}",
            backlog_age()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown.cancel();
    running.await.expect("sender");
    let delivered = receiver.delivered.lock().expect("lock").clone();
    let expected: Vec<u64> = (1..=FACTS as u64).collect();
    assert_eq!(delivered, expected, "every fact once, in order");
    assert!(
        receiver.largest_batch.load(Ordering::Relaxed) <= BATCH,
        "the sender holds one batch at a time"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_that_cannot_be_read_is_waited_out_not_taken_for_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = backlog(dir.path()).await;
    let (receiver, addr) = receiver().await;
    receiver.down.store(false, Ordering::Relaxed);
    let sender = sender(store.clone(), addr);
    let key = sender.cursor_key();
    store
        .put_meta(&key, b"not a cursor".to_vec())
        .await
        .expect("spoil the cursor");
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(sender.run(shutdown.clone()));

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.attempts.load(Ordering::Relaxed),
        0,
        "nothing is sent while where delivery stopped is unknown"
    );
    store
        .put_meta(&key, b"4990".to_vec())
        .await
        .expect("mend the cursor");
    let got = delivered(&receiver, 10).await;
    shutdown.cancel();
    running.await.expect("sender");
    assert_eq!(got, (4991..=5000).collect::<Vec<u64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_moved_by_another_node_meanwhile_is_kept_and_read_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = backlog(dir.path()).await;
    let (receiver, addr) = receiver().await;
    let sender = sender(store.clone(), addr);
    let key = sender.cursor_key();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(sender.run(shutdown.clone()));

    // The sender holds the first batch (refused); meanwhile another node
    // delivers up to 4,000 and moves the cursor there.
    while receiver.attempts.load(Ordering::Relaxed) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    store
        .put_meta(&key, b"4000".to_vec())
        .await
        .expect("another node's cursor");
    receiver.down.store(false, Ordering::Relaxed);
    let got = delivered(&receiver, BATCH + 1_000).await;
    shutdown.cancel();
    running.await.expect("sender");
    let expected: Vec<u64> = (1..=BATCH as u64).chain(4001..=5000).collect();
    assert_eq!(
        got, expected,
        "the held batch, then on from the other node's cursor"
    );
    assert_eq!(
        store.meta(&key).await.expect("cursor").as_deref(),
        Some(&b"5000"[..])
    );
}

/// A receiver that answers 200 and then stalls in its body has answered:
/// the post ends within the answer time, it does not hang the sender.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_stalling_after_its_answer_does_not_hold_the_sender() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (addr, _) = one_connection(|mut socket| async move {
        let mut request = vec![0; 64 * 1024];
        let _ = socket.read(&mut request).await;
        let _ = socket
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
            .await;
        // The other seven bytes never come; the connection stays open.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(socket);
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Embedded::open(dir.path()).expect("open"));
    let mut sender = sender(store, addr);
    // Time enough for the head on a loaded machine, none for the body.
    sender.retry.answer = Duration::from_secs(2);
    let posted = tokio::time::timeout(Duration::from_secs(10), sender.post(b"{}".to_vec()))
        .await
        .expect("the post ended, the body given up");
    assert!(posted.is_ok(), "a 200 is an answer: {posted:?}");
}

/// A receiver whose answer's body never ends is not read into memory: the
/// body is read up to `MAX_ANSWER_BODY` and the connection dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_answer_body_is_not_read_whole() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const CAP: usize = 256 << 20;
    let (addr, server) = one_connection(|mut socket| async move {
        let mut request = vec![0; 64 * 1024];
        let _ = socket.read(&mut request).await;
        let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        socket.write_all(head).await.expect("head");
        let mut chunk = b"10000\r\n".to_vec();
        chunk.extend(std::iter::repeat_n(b'x', 0x10000));
        chunk.extend_from_slice(b"\r\n");
        let mut written = 0;
        while written < CAP && socket.write_all(&chunk).await.is_ok() {
            written += chunk.len();
        }
        written
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Embedded::open(dir.path()).expect("open"));
    let mut sender = sender(store, addr);
    sender.retry.answer = Duration::from_secs(5);
    let posted = sender.post(b"{}".to_vec()).await;
    assert!(posted.is_ok(), "a 200 is an answer: {posted:?}");
    drop(sender);
    let written = tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .expect("the connection was dropped")
        .expect("server");
    // What the sockets' buffers took (a few MiB), not the whole stream.
    assert!(
        written < 64 << 20,
        "{written} bytes of the answer were taken"
    );
}

/// A post that cannot reach the receiver says why (the client's own
/// message says only at what stage).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_post_names_its_cause() {
    // Bound, never listening: refused, and no other test can take it.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let addr = socket.local_addr().expect("addr");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Embedded::open(dir.path()).expect("open"));
    let error = sender(store, addr)
        .post(b"{}".to_vec())
        .await
        .expect_err("nothing listens");
    let text = error.to_string();
    assert!(text.contains("refused"), "{text}");
}

/// Stopping waits for a receiver that does not answer a few seconds, not
/// the post's answer time: the batch goes again after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_in_flight_does_not_hold_the_shutdown() {
    let (accepted, taken) = tokio::sync::oneshot::channel();
    let (addr, _) = one_connection(|socket| async move {
        let _ = accepted.send(());
        // Reads nothing, answers nothing.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(socket);
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = backlog(dir.path()).await;
    let sender = sender(store, addr);
    assert_eq!(sender.retry.answer, Duration::from_secs(30));
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(sender.run(shutdown.clone()));
    taken.await.expect("the post began");
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("stopped before the post's 30 s answer time")
        .expect("sender");
}
