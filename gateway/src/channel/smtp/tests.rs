//! The SMTP client against a scripted relay on loopback: what it sends,
//! pipelined or not, and how each reply becomes a delivery.

use std::sync::Arc;

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpListener,
    sync::Mutex as AsyncMutex,
};

use super::*;

/// A relay offering what `offered` needs (PIPELINING, and CHUNKING with
/// AUTH PLAIN, and no STARTTLS), whose
/// answers are chosen by the addresses and the content:
/// sender `refused@` 553 at MAIL FROM (then 503 to what follows), sender
/// `shutdown@` 421 and the connection closed, sender `blocked@` 554 and
/// the connection closed, sender `once@` accepted but
/// the session's next MAIL FROM answered 421 and closed (an idle timeout); recipient `user` 250, `gone`
/// 550 5.1.1, `late` 550 but DATA still 354, `busy` 451, `drop` 250 and
/// the connection closed after the message's end, unanswered, `mute` 250
/// and no answer ever after the message's end, `close` 250 and the session
/// closed once the message is answered, `odd` 250 and a 354 (out of step)
/// to the message's end; a line
/// `spam` in the content 550 at its end.
/// Every line it reads is kept for the assertions, a `BDAT` chunk's too.
async fn relay(offered: Transfer) -> (u16, Arc<AsyncMutex<Vec<String>>>) {
    relay_on(
        TcpListener::bind("127.0.0.1:0").await.expect("bind"),
        offered,
    )
}

/// Every way of sending, most capable first.
const TRANSFERS: [Transfer; 3] = [Transfer::Chunked, Transfer::Pipelined, Transfer::Serial];

/// [`relay`] on a listener of the caller's.
fn relay_on(listener: TcpListener, offered: Transfer) -> (u16, Arc<AsyncMutex<Vec<String>>>) {
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(AsyncMutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let (r, mut w) = stream.into_split();
                let mut r = BufReader::new(r);
                w.write_all(b"220 scripted\r\n").await.expect("greet");
                let (mut in_data, mut rcpt_ok, mut late) = (false, false, false);
                let (mut mail_ok, mut spam, mut drop_at_end) = (true, false, false);
                let (mut mute_at_end, mut close_at_end, mut odd_at_end) = (false, false, false);
                let (mut once, mut stale) = (false, false);
                let mut line = String::new();
                while r.read_line(&mut line).await.unwrap_or(0) > 0 {
                    log.lock().await.push(line.trim_end().to_owned());
                    let message_ends = if in_data {
                        spam |= line == "spam\r\n";
                        line == ".\r\n"
                    } else if let Some(size) = line.strip_prefix("BDAT ") {
                        let size = size.trim_end().trim_end_matches(" LAST");
                        let mut chunk = vec![0; size.parse().expect("BDAT size")];
                        r.read_exact(&mut chunk).await.expect("chunk");
                        let chunk = String::from_utf8(chunk).expect("text");
                        let lines = chunk.strip_suffix("\r\n").unwrap_or(&chunk).split("\r\n");
                        for l in lines {
                            spam |= l == "spam";
                            log.lock().await.push(l.to_owned());
                        }
                        true
                    } else {
                        false
                    };
                    let reply: &[u8] = if message_ends {
                        in_data = false;
                        if drop_at_end {
                            return;
                        }
                        if mute_at_end {
                            std::future::pending::<()>().await;
                        }
                        stale = once;
                        if !mail_ok {
                            b"503 5.5.1 sender not yet given\r\n"
                        } else if spam {
                            b"550 5.7.1 message content rejected\r\n"
                        } else if odd_at_end {
                            b"354 out of step\r\n"
                        } else if rcpt_ok {
                            if close_at_end {
                                let _ = w.write_all(b"250 2.0.0 queued as 42\r\n").await;
                                return;
                            }
                            b"250 2.0.0 queued as 42\r\n"
                        } else {
                            b"554 5.5.1 no valid recipients\r\n"
                        }
                    } else if in_data {
                        b""
                    } else if line.starts_with("MAIL") && (stale || line.contains("<shutdown@")) {
                        let _ = w.write_all(b"421 4.3.2 shutting down\r\n").await;
                        return;
                    } else if line.starts_with("MAIL") && line.contains("<blocked@") {
                        let _ = w.write_all(b"554 5.7.1 your address is blocked\r\n").await;
                        return;
                    } else if line.starts_with("MAIL") {
                        once = line.contains("<once@");
                        mail_ok = !line.contains("<refused@");
                        spam = false;
                        if mail_ok {
                            b"250 ok\r\n"
                        } else {
                            b"553 5.1.2 <refused@bounce.test>: domain not found\r\n"
                        }
                    } else if !mail_ok && (line.starts_with("RCPT") || line.starts_with("DATA")) {
                        b"503 5.5.1 sender not yet given\r\n"
                    } else if line.starts_with("EHLO") {
                        match offered {
                            Transfer::Chunked => {
                                b"250-scripted\r\n250-PIPELINING\r\n250-AUTH PLAIN\r\n250 CHUNKING\r\n"
                            }
                            Transfer::Pipelined => b"250-scripted\r\n250 PIPELINING\r\n",
                            Transfer::Serial => b"250 scripted\r\n",
                        }
                    } else if line.starts_with("RCPT") {
                        drop_at_end = line.contains("<drop@");
                        mute_at_end = line.contains("<mute@");
                        close_at_end = line.contains("<close@");
                        odd_at_end = line.contains("<odd@");
                        rcpt_ok = line.contains("<user@")
                            || drop_at_end
                            || mute_at_end
                            || close_at_end
                            || odd_at_end;
                        late = line.contains("<late@");
                        if rcpt_ok {
                            b"250 ok\r\n"
                        } else if line.contains("<busy@") {
                            b"451 4.3.0 try again later\r\n"
                        } else {
                            b"550 5.1.1 user unknown\r\n"
                        }
                    } else if line.starts_with("QUIT") {
                        // Silent, as some relays are: QUIT must not hang shutdown.
                        b""
                    } else if line.starts_with("DATA") {
                        if rcpt_ok || late {
                            in_data = true;
                            b"354 go\r\n"
                        } else {
                            b"554 5.5.1 no valid recipients\r\n"
                        }
                    } else {
                        b"250 ok\r\n"
                    };
                    w.write_all(reply).await.expect("reply");
                    line.clear();
                }
            });
        }
    });
    (port, seen)
}

/// One plain-text connection to the relay on `port`.
fn config(port: u16) -> RelayConfig {
    RelayConfig {
        name: None,
        host: "127.0.0.1".into(),
        port,
        tls: TlsMode::None,
        tls_insecure: false,
        connections: 1,
        timeout_secs: 5,
        data_timeout_secs: 5,
        username: None,
        password_env: None,
    }
}

/// A deadline no test send reaches.
fn later() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(600)
}

fn pool(port: u16) -> RelayPool {
    pool_of(config(port))
}

/// A pool of the one relay `relay`.
fn pool_of(relay: RelayConfig) -> RelayPool {
    RelayPool::new(&[relay], "test.local").expect("pool")
}

#[tokio::test]
async fn replies_become_deliveries_chunked_pipelined_and_serial() {
    for offered in TRANSFERS {
        let (port, seen) = relay(offered).await;
        let pool = pool(port);
        let ok = pool
            .send(
                "b-x@bounce.test",
                "user@example.org",
                b"Subject: hi\r\n\r\n.dot line\r\n",
                later(),
            )
            .await;
        assert_eq!(
            ok,
            Delivery::Accepted {
                reply: "250 2.0.0 queued as 42".into(),
                upstream: None,
            }
        );
        let gone = pool
            .send(
                "b-x@bounce.test",
                "gone@example.org",
                b"Subject: hi\r\n\r\nbody\r\n",
                later(),
            )
            .await;
        assert_eq!(
            gone,
            Delivery::Refused {
                reply: "550 5.1.1 user unknown".into(),
                code: 550,
                phase: Phase::RcptTo,
            }
        );
        let late = pool
            .send(
                "b-x@bounce.test",
                "late@example.org",
                b"Subject: hi\r\n\r\nbody\r\n",
                later(),
            )
            .await;
        assert_eq!(
            late,
            Delivery::Refused {
                reply: "550 5.1.1 user unknown".into(),
                code: 550,
                phase: Phase::RcptTo,
            }
        );
        let again = pool
            .send(
                "b-y@bounce.test",
                "user@example.org",
                b"Subject: again\r\n\r\nbody\r\n",
                later(),
            )
            .await;
        assert!(
            matches!(again, Delivery::Accepted { .. }),
            "the connection is reused after a refusal: {again:?}"
        );
        let seen = seen.lock().await.clone();
        assert_eq!(
            seen.iter().filter(|l| l.starts_with("EHLO")).count(),
            1,
            "one session: {seen:?}"
        );
        if offered == Transfer::Chunked {
            assert!(
                seen.contains(&".dot line".to_owned()),
                "a chunk as it is, not dot-stuffed: {seen:?}"
            );
        } else {
            assert!(
                seen.contains(&"..dot line".to_owned()),
                "dot-stuffed body: {seen:?}"
            );
        }
        assert!(
            seen.contains(&"RSET".to_owned()),
            "reset after a refusal: {seen:?}"
        );
        let after = |rcpt: &str, n: usize| -> Vec<String> {
            let at = seen.iter().position(|l| l == rcpt).expect("rcpt sent");
            seen[at + 1..at + 1 + n].to_vec()
        };
        match offered {
            Transfer::Chunked => {
                // The chunk went with the commands; the relay read it whole.
                for rcpt in ["RCPT TO:<gone@example.org>", "RCPT TO:<late@example.org>"] {
                    assert_eq!(
                        after(rcpt, 5),
                        ["BDAT 21 LAST", "Subject: hi", "", "body", "RSET"],
                        "{seen:?}"
                    );
                }
                assert_eq!(after("Subject: again", 2), ["", "body"], "{seen:?}");
                let again = b"Subject: again\r\n\r\nbody\r\n".len();
                assert!(
                    seen.contains(&format!("BDAT {again} LAST")),
                    "the chunk is the message as composed, no line added: {seen:?}"
                );
            }
            Transfer::Pipelined => {
                assert_eq!(
                    after("RCPT TO:<gone@example.org>", 2),
                    ["DATA", "RSET"],
                    "{seen:?}"
                );
                assert_eq!(
                    after("RCPT TO:<late@example.org>", 3),
                    ["DATA", ".", "RSET"],
                    "{seen:?}"
                );
            }
            Transfer::Serial => {
                assert_eq!(after("RCPT TO:<gone@example.org>", 1), ["RSET"], "{seen:?}");
            }
        }
        if offered != Transfer::Chunked {
            assert_eq!(
                after("Subject: again", 3),
                ["", "body", "."],
                "the body as composed, no line added: {seen:?}"
            );
        }
    }
}

#[tokio::test]
async fn each_refusal_names_the_command_it_answered() {
    for offered in TRANSFERS {
        let (port, _) = relay(offered).await;
        let pool = pool(port);
        let refusal = |d: Delivery| match d {
            Delivery::Refused { code, phase, .. } => (code, phase),
            other => panic!("not a refusal: {other:?}"),
        };
        let ok = b"Subject: hi\r\n\r\nbody\r\n";
        let sender = pool
            .send("refused@bounce.test", "user@example.org", ok, later())
            .await;
        assert_eq!(refusal(sender), (553, Phase::MailFrom), "{offered:?}");
        let busy = pool
            .send("b-x@bounce.test", "busy@example.org", ok, later())
            .await;
        assert_eq!(refusal(busy), (451, Phase::RcptTo), "{offered:?}");
        let spam = pool
            .send(
                "b-x@bounce.test",
                "user@example.org",
                b"Subject: hi\r\n\r\nspam\r\n",
                later(),
            )
            .await;
        assert_eq!(refusal(spam), (550, Phase::Data), "{offered:?}");
        let after = pool
            .send("b-x@bounce.test", "user@example.org", ok, later())
            .await;
        assert!(matches!(after, Delivery::Accepted { .. }), "{after:?}");
    }
}

#[tokio::test]
async fn closing_does_not_wait_for_a_relay_silent_on_quit() {
    let (port, _) = relay(Transfer::Chunked).await;
    let pool = pool(port);
    let sent = pool
        .send(
            "b-x@bounce.test",
            "user@example.org",
            b"Subject: hi\r\n\r\nx\r\n",
            later(),
        )
        .await;
    assert!(matches!(sent, Delivery::Accepted { .. }), "{sent:?}");
    let closed = tokio::time::timeout(QUIT_TIMEOUT * 3, pool.close()).await;
    assert!(
        closed.is_ok(),
        "close waited for a QUIT answer that never came"
    );
}

/// Nothing left for a relay that cannot be reached: the message is handed
/// back unsent, not an attempt (it was one, and a relay down for a few
/// retries failed messages that never left).
#[tokio::test]
async fn a_relay_that_is_down_leaves_the_message_unsent() {
    let delivery = pool(free_port().await)
        .send("b@x.test", "user@example.org", b"x", later())
        .await;
    assert!(
        matches!(&delivery, Delivery::Unsent { reply, .. } if reply.starts_with("connecting to ")),
        "{delivery:?}"
    );
}

/// A relay that greets every connection with a 554 after `greeting_after`;
/// its port, and how many connections it took.
async fn refusing_relay(greeting_after: Duration) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                tokio::time::sleep(greeting_after).await;
                let _ = stream.write_all(b"554 5.7.1 no service\r\n").await;
            });
        }
    });
    (port, connections)
}

/// A relay that keeps refusing (here its greeting is a 554) is connected
/// to again only once its back-off has run out, not by every send: one
/// refusing our credentials is not asked every second by each message.
#[tokio::test]
async fn a_failing_relay_is_tried_again_only_after_its_back_off() {
    let (port, connections) = refusing_relay(Duration::ZERO).await;
    let pool = pool(port);
    for _ in 0..5 {
        let delivery = pool
            .send("b@x.test", "user@example.org", b"x", later())
            .await;
        assert!(matches!(delivery, Delivery::Unsent { .. }), "{delivery:?}");
    }
    assert_eq!(
        connections.load(Ordering::Relaxed),
        1,
        "one try within the back-off"
    );
    tokio::time::sleep(UNREACHABLE_RETRY + Duration::from_millis(100)).await;
    let delivery = pool
        .send("b@x.test", "user@example.org", b"x", later())
        .await;
    assert!(matches!(delivery, Delivery::Unsent { .. }), "{delivery:?}");
    assert_eq!(
        connections.load(Ordering::Relaxed),
        2,
        "tried again after it"
    );
    // An operator's stop and start (after a fix, say) ends the back-off.
    let name = format!("127.0.0.1:{port}");
    pool.switch(&name, false).expect("the relay");
    pool.switch(&name, true).expect("the relay");
    pool.send("b@x.test", "user@example.org", b"x", later())
        .await;
    assert_eq!(
        connections.load(Ordering::Relaxed),
        3,
        "tried at once after a start"
    );
}

/// Sends that connect at once to a failing relay fail together: that is
/// one failure, so the back-off is the first one's, not doubled by each.
#[tokio::test]
async fn sends_failing_together_double_the_back_off_once() {
    // Late, so that the sends' connections overlap.
    let (port, connections) = refusing_relay(Duration::from_millis(200)).await;
    let pool = pool_of(RelayConfig {
        connections: 4,
        ..config(port)
    });
    let sends = (0..4).map(|_| pool.send("b@x.test", "user@example.org", b"x", later()));
    for delivery in futures_util::future::join_all(sends).await {
        assert!(matches!(delivery, Delivery::Unsent { .. }), "{delivery:?}");
    }
    let together = connections.load(Ordering::Relaxed);
    assert!(together > 1, "the sends connected at once: {together}");
    tokio::time::sleep(UNREACHABLE_RETRY + Duration::from_millis(100)).await;
    pool.send("b@x.test", "user@example.org", b"x", later())
        .await;
    assert_eq!(
        connections.load(Ordering::Relaxed),
        together + 1,
        "tried again once the first back-off ran out"
    );
}

/// Of two relays, one down: once it has failed, sends go to the other,
/// and none is lost to it.
#[tokio::test]
async fn sends_go_to_the_relay_that_answers_while_another_is_down() {
    let (up, seen) = relay(Transfer::Chunked).await;
    let relays = [config(free_port().await), config(up)];
    let pool = RelayPool::new(&relays, "test.local").expect("pool");
    let mut unsent = 0;
    for _ in 0..6 {
        match pool
            .send("b@x.test", "user@example.org", b"x", later())
            .await
        {
            Delivery::Accepted { .. } => {}
            Delivery::Unsent { .. } => unsent += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(unsent <= 1, "{unsent} sends tried the relay that is down");
    let mails = seen
        .lock()
        .await
        .iter()
        .filter(|l| l.starts_with("MAIL"))
        .count();
    assert_eq!(mails, 6 - unsent);
}

/// A connection idle longer than `MAX_IDLE` is closed, not used: a NAT on
/// the way may have forgotten it, and a message written into it would
/// only be unconfirmed.
#[tokio::test]
async fn a_connection_idle_too_long_is_not_used_again() {
    let (port, seen) = relay(Transfer::Chunked).await;
    let pool = pool(port);
    let send = || pool.send("b@x.test", "user@example.org", b"x", later());
    assert!(matches!(send().await, Delivery::Accepted { .. }));
    assert!(matches!(send().await, Delivery::Accepted { .. }));
    let ehlos = |seen: &[String]| seen.iter().filter(|l| l.starts_with("EHLO")).count();
    assert_eq!(
        ehlos(&seen.lock().await),
        1,
        "a fresh connection is used again"
    );
    for idle in pool.relays[0].lock_idle().iter_mut() {
        let long_ago = Instant::now().checked_sub(MAX_IDLE + Duration::from_secs(1));
        idle.since = long_ago.expect("up a minute");
    }
    assert!(matches!(send().await, Delivery::Accepted { .. }));
    assert_eq!(
        ehlos(&seen.lock().await),
        2,
        "a new connection for a stale one"
    );
}

/// A relay that takes the connection and never greets (a TLS port spoken
/// to in plain text, say) is given up after `timeout_secs`, unsent.
#[tokio::test]
async fn a_relay_that_never_greets_is_given_up_after_its_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let held = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        std::future::pending::<()>().await;
        drop(stream);
    });
    let silent = RelayConfig {
        timeout_secs: 1,
        ..config(port)
    };
    let pool = pool_of(silent);
    let sent = pool.send("b@x.test", "user@example.org", b"x", later());
    let delivery = tokio::time::timeout(Duration::from_secs(5), sent)
        .await
        .expect("given up within 5 s");
    assert!(matches!(delivery, Delivery::Unsent { .. }), "{delivery:?}");
    held.abort();
}

/// With credentials, a relay that should speak TLS but offers no STARTTLS
/// (one on the way may have struck it from the EHLO answer) is not sent
/// them in clear.
#[tokio::test]
async fn credentials_are_never_sent_in_clear_to_a_relay_without_starttls() {
    let (port, seen) = relay(Transfer::Chunked).await;
    let guarded = RelayConfig {
        tls: TlsMode::Starttls,
        username: Some("sluice".into()),
        // Any variable that is set: what it holds must never be sent.
        password_env: Some("PATH".into()),
        ..config(port)
    };
    let pool = pool_of(guarded);
    let delivery = pool
        .send("b@x.test", "user@example.org", b"x", later())
        .await;
    assert!(
        matches!(&delivery, Delivery::Unsent { reply, .. } if reply.contains("STARTTLS")),
        "{delivery:?}"
    );
    let seen = seen.lock().await;
    assert!(!seen.iter().any(|l| l.starts_with("AUTH")), "{seen:?}");
}

/// A loopback port nothing listens on (now).
async fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

#[tokio::test]
async fn a_relay_that_cannot_be_reached_is_named_until_it_answers() {
    let port = free_port().await;
    let pool = pool(port);
    assert_eq!(pool.failures(), Vec::<String>::new(), "not tried yet");
    pool.send("b@x.test", "user@example.org", b"x", later())
        .await;
    let failures = pool.failures();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].starts_with(&format!("SMTP relay 127.0.0.1:{port}: ")),
        "{failures:?}"
    );
    relay_on(
        TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("rebind"),
        Transfer::Chunked,
    );
    // Past its back-off, the next send connects again.
    tokio::time::sleep(UNREACHABLE_RETRY + Duration::from_millis(100)).await;
    let delivery = pool
        .send("b@x.test", "user@example.org", b"x", later())
        .await;
    assert!(
        matches!(delivery, Delivery::Accepted { .. }),
        "{delivery:?}"
    );
    assert_eq!(pool.failures(), Vec::<String>::new(), "reached again");
}

#[tokio::test]
async fn the_probe_finds_an_unreachable_relay_before_any_send() {
    let pool = Arc::new(pool(free_port().await));
    let stop = CancellationToken::new();
    tokio::spawn(pool.clone().watch(stop.clone()));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while pool.failures().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the probe never ran"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stop.cancel();
}

/// A connection lost after the message's final dot leaves it unconfirmed:
/// the relay may have it, so it is not sent again at once on a fresh
/// connection (as a stale reused connection's first command is), but
/// reported for the dispatcher to count and retry later. Before, a reused
/// connection lost there resent the message at once: the relay got it
/// twice.
#[tokio::test]
async fn a_connection_lost_after_the_message_leaves_it_unconfirmed_and_unrepeated() {
    for offered in TRANSFERS {
        let (port, seen) = relay(offered).await;
        let pool = pool(port);
        let ok = b"Subject: hi\r\n\r\nbody\r\n";
        let first = pool
            .send("b-x@bounce.test", "user@example.org", ok, later())
            .await;
        assert!(matches!(first, Delivery::Accepted { .. }), "{first:?}");
        // On the reused connection, then on a fresh one.
        for round in 1..=2 {
            let lost = pool
                .send("b-x@bounce.test", "drop@example.org", ok, later())
                .await;
            let Delivery::Unconfirmed { reply, .. } = &lost else {
                panic!("not unconfirmed: {lost:?}");
            };
            assert!(reply.contains("the relay may have it"), "{reply}");
            let sent = seen
                .lock()
                .await
                .iter()
                .filter(|l| l.as_str() == "RCPT TO:<drop@example.org>")
                .count();
            assert_eq!(sent, round, "sent once per send, {offered:?}");
        }
        let after = pool
            .send("b-x@bounce.test", "user@example.org", ok, later())
            .await;
        assert!(matches!(after, Delivery::Accepted { .. }), "{after:?}");
    }
}

/// A relay that refuses MAIL FROM and closes the session: the refusal is
/// the answer, and the next message gets a new session. A 421 (the relay
/// shutting down) is a temporary refusal; a 554 (a relay blocking the
/// sender's address often closes too) a permanent one. Before, the 554's
/// lost session hid it: the message was tried again on a fresh session and
/// came back transient (over DATA) or unconfirmed (in a chunk).
#[tokio::test]
async fn a_refusal_and_then_a_closed_session_is_the_refusal_and_the_next_send_reconnects() {
    for offered in TRANSFERS {
        let (port, _) = relay(offered).await;
        let pool = pool(port);
        let ok = b"Subject: hi\r\n\r\nbody\r\n";
        for (sender, code) in [("shutdown@bounce.test", 421), ("blocked@bounce.test", 554)] {
            let first = pool
                .send("b-x@bounce.test", "user@example.org", ok, later())
                .await;
            assert!(matches!(first, Delivery::Accepted { .. }), "{first:?}");
            let closing = pool.send(sender, "user@example.org", ok, later()).await;
            assert!(
                matches!(
                    closing,
                    Delivery::Refused { code: c, phase: Phase::MailFrom, .. } if c == code
                ),
                "{offered:?}, {sender}: {closing:?}"
            );
        }
        let after = pool
            .send("b-x@bounce.test", "user@example.org", ok, later())
            .await;
        assert!(matches!(after, Delivery::Accepted { .. }), "{after:?}");
    }
}

/// Implicit TLS to a relay that speaks plain text: the handshake fails,
/// the send is handed back unsent naming the relay, and the relay's health
/// says why.
#[tokio::test]
async fn a_failed_tls_handshake_is_unsent_and_named() {
    let (port, _) = relay(Transfer::Chunked).await;
    let secure = RelayConfig {
        name: Some("secure".into()),
        tls: TlsMode::Tls,
        ..config(port)
    };
    let pool = pool_of(secure);
    let delivery = pool
        .send("b@x.test", "user@example.org", b"x", later())
        .await;
    let Delivery::Unsent { reply, .. } = &delivery else {
        panic!("not unsent: {delivery:?}");
    };
    assert!(reply.starts_with("connecting to secure: "), "{reply}");
    let failures = pool.failures();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].starts_with(&format!("SMTP relay secure (127.0.0.1:{port}): ")),
        "{failures:?}"
    );
}

/// A relay that never answers a message's end: after the relay's timeout
/// the message is unconfirmed (it may have it), not waited for forever.
/// Before, the final reply was read with no timeout and the send hung.
#[tokio::test]
async fn a_relay_silent_after_the_message_times_out_unconfirmed() {
    for offered in TRANSFERS {
        let (port, _) = relay(offered).await;
        // Not the reply timeout: that one would outlast the test's bound.
        let quick = RelayConfig {
            timeout_secs: 30,
            data_timeout_secs: 1,
            ..config(port)
        };
        let pool = pool_of(quick);
        let send = pool.send("b-x@bounce.test", "mute@example.org", b"x\r\n", later());
        let sent = tokio::time::timeout(std::time::Duration::from_secs(10), send)
            .await
            .expect("the send gave up within the relay's timeout");
        assert!(matches!(sent, Delivery::Unconfirmed { .. }), "{sent:?}");
    }
}

/// Every connection busy (here the one, with a relay silent after the
/// message) until too late for a send to be answered by its deadline: the
/// message is handed back unsent, never started and then cut off by the
/// lease (which would count it unconfirmed and use an attempt).
#[tokio::test]
async fn a_send_that_cannot_get_a_connection_in_time_is_unsent() {
    let (port, _) = relay(Transfer::Chunked).await;
    let one = RelayConfig {
        timeout_secs: 1,
        data_timeout_secs: 2,
        ..config(port)
    };
    let pool = pool_of(one);
    let busy = pool.send("b-x@bounce.test", "mute@example.org", b"x\r\n", later());
    let soon = tokio::time::Instant::now() + Duration::from_millis(3_200);
    let waiting = pool.send("b-y@bounce.test", "user@example.org", b"x\r\n", soon);
    let (busy, waiting) = tokio::join!(busy, waiting);
    assert!(matches!(busy, Delivery::Unconfirmed { .. }), "{busy:?}");
    let Delivery::Unsent { reply, .. } = &waiting else {
        panic!("not unsent: {waiting:?}");
    };
    assert!(reply.contains("free in time"), "{reply}");
}

/// A test send (no lease) waits for a busy relay's connection, up to
/// `TEST_SEND_WAIT`, however long the relay's timeouts: it was handed back
/// at once when they added up to more than that wait.
#[tokio::test]
async fn a_test_send_waits_for_a_busy_relay() {
    let (port, _) = relay(Transfer::Chunked).await;
    let slow = RelayConfig {
        timeout_secs: 30,
        data_timeout_secs: 2,
        ..config(port)
    };
    let pool = pool_of(slow);
    let busy = pool.send("b-x@bounce.test", "mute@example.org", b"x\r\n", later());
    let deadline = super::super::test_send_deadline(pool.longest_send());
    let test = pool.send(
        "test-send@bounce.test",
        "user@example.org",
        b"x\r\n",
        deadline,
    );
    let (busy, test) = tokio::join!(busy, test);
    assert!(matches!(busy, Delivery::Unconfirmed { .. }), "{busy:?}");
    assert!(matches!(test, Delivery::Accepted { .. }), "{test:?}");
}

/// A relay that closes an idle session says 421 to the next command: on a
/// reused connection that is the session's fault, not the message's, so
/// the message goes on a fresh connection at once.
#[tokio::test]
async fn a_421_on_a_reused_connection_is_retried_on_a_fresh_one() {
    for offered in TRANSFERS {
        let (port, _) = relay(offered).await;
        let pool = pool(port);
        let ok = b"Subject: hi\r\n\r\nbody\r\n";
        let first = pool
            .send("once@bounce.test", "user@example.org", ok, later())
            .await;
        assert!(matches!(first, Delivery::Accepted { .. }), "{first:?}");
        let next = pool
            .send("b-x@bounce.test", "user@example.org", ok, later())
            .await;
        assert!(
            matches!(next, Delivery::Accepted { .. }),
            "{offered:?}: {next:?}"
        );
    }
}

/// A session the relay closed while idle is not used for the next message:
/// on it a chunked message (sent whole in its first write) could only be
/// unconfirmed, where a fresh session sends it. Before, the next message
/// went on it and came back unconfirmed.
#[tokio::test]
async fn a_session_the_relay_closed_while_idle_is_not_used_again() {
    for offered in TRANSFERS {
        let (port, seen) = relay(offered).await;
        let pool = pool(port);
        let ok = b"Subject: hi\r\n\r\nbody\r\n";
        let first = pool
            .send("b-x@bounce.test", "close@example.org", ok, later())
            .await;
        assert!(matches!(first, Delivery::Accepted { .. }), "{first:?}");
        // Idle for a while: the relay's close has arrived.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let next = pool
            .send("b-x@bounce.test", "user@example.org", ok, later())
            .await;
        assert!(
            matches!(next, Delivery::Accepted { .. }),
            "{offered:?}: {next:?}"
        );
        let seen = seen.lock().await.clone();
        let sessions = seen.iter().filter(|l| l.starts_with("EHLO")).count();
        let sent = seen
            .iter()
            .filter(|l| *l == "RCPT TO:<user@example.org>")
            .count();
        assert_eq!((sessions, sent), (2, 1), "{offered:?}: {seen:?}");
    }
}

/// A reply out of step with the protocol after the whole message went (a
/// 354 to its end): the relay may have it, so it is unconfirmed and not
/// sent again at once. Before, it counted as a lost session and the
/// message went again on a fresh one.
#[tokio::test]
async fn an_answer_out_of_step_after_the_message_leaves_it_unconfirmed_and_unrepeated() {
    for offered in TRANSFERS {
        let (port, seen) = relay(offered).await;
        let pool = pool(port);
        let ok = b"Subject: hi\r\n\r\nbody\r\n";
        let first = pool
            .send("b-x@bounce.test", "user@example.org", ok, later())
            .await;
        assert!(matches!(first, Delivery::Accepted { .. }), "{first:?}");
        let odd = pool
            .send("b-x@bounce.test", "odd@example.org", ok, later())
            .await;
        assert!(
            matches!(odd, Delivery::Unconfirmed { .. }),
            "{offered:?}: {odd:?}"
        );
        let sent = seen
            .lock()
            .await
            .iter()
            .filter(|l| l.as_str() == "RCPT TO:<odd@example.org>")
            .count();
        assert_eq!(sent, 1, "sent once, {offered:?}");
    }
}

/// Whether the relay closed an idle session is seen even when the task has
/// spent its cooperative budget, as a driver polling many sends does.
/// Before, the look then came back "not closed" without reading the
/// socket, and a chunked message went onto the closed session.
#[tokio::test]
async fn a_closed_session_is_seen_however_much_budget_the_task_has_spent() {
    let (port, _) = relay(Transfer::Chunked).await;
    let pool = pool(port);
    let ok = b"Subject: hi\r\n\r\nbody\r\n";
    let first = pool
        .send("b-x@bounce.test", "close@example.org", ok, later())
        .await;
    assert!(matches!(first, Delivery::Accepted { .. }), "{first:?}");
    // Idle for a while: the relay's close has arrived.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let mut idle = pool.relays[0].take_idle().expect("the session is kept");
    spend_the_task_budget();
    assert!(idle.closed_by_relay(), "the relay's close is seen");
}

/// Polls a ready channel until tokio's budget for this task poll is gone.
fn spend_the_task_budget() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    loop {
        tx.send(()).expect("the receiver is here");
        if rx.recv().now_or_never().is_none() {
            break;
        }
    }
    assert!(!tokio::task::coop::has_budget_remaining());
}
