//! The SMTP channel: a pool of reused connections to each configured relay,
//! STARTTLS when the relay offers it (rustls), optional AUTH, and PIPELINING
//! (RFC 2920) when offered, so a message costs two round trips instead of
//! four. A relay's reply becomes a [`Delivery`]: 2xx accepted, 5xx
//! permanent, 4xx and lost connections transient.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use mail_send::{
    Credentials, SmtpClient,
    smtp::{AssertReply, message::Parameters},
};
use smtp_proto::Response;
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufStream},
    net::TcpStream,
    sync::Semaphore,
};
use tokio_rustls::{TlsConnector, client::TlsStream};

use domain::Phase;

use crate::config::{Relay as RelayConfig, TlsMode};
use domain::Delivery;

/// An open session, buffered so pipelined commands leave in one write.
enum Client {
    Plain(SmtpClient<BufStream<TcpStream>>),
    Tls(Box<SmtpClient<BufStream<TlsStream<TcpStream>>>>),
}

struct Connection {
    client: Client,
    /// The relay offered PIPELINING.
    pipelining: bool,
}

/// Runs the same body on either kind of client.
macro_rules! on_client {
    ($client:expr, $c:ident => $body:expr) => {
        match $client {
            Client::Plain($c) => $body,
            Client::Tls($c) => $body,
        }
    };
}

fn buffered<T: AsyncRead + AsyncWrite>(c: SmtpClient<T>) -> SmtpClient<BufStream<T>> {
    SmtpClient {
        stream: BufStream::new(c.stream),
        timeout: c.timeout,
    }
}

struct Relay {
    config: RelayConfig,
    name: String,
    idle: Mutex<Vec<Connection>>,
    slots: Semaphore,
    tls: Option<TlsConnector>,
    credentials: Option<Credentials<String>>,
}

/// Every configured relay, used in turn.
pub struct RelayPool {
    relays: Vec<Arc<Relay>>,
    next: AtomicUsize,
    helo: String,
}

impl std::fmt::Debug for RelayPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.relays.iter().map(|r| &r.name))
            .finish()
    }
}

impl RelayPool {
    /// Prepares the pool; connections are opened on first use.
    pub fn new(configs: &[RelayConfig], helo: &str) -> Result<Self, String> {
        let mut relays = Vec::with_capacity(configs.len());
        for config in configs {
            let tls = match config.tls {
                TlsMode::None => None,
                TlsMode::Starttls | TlsMode::Tls => Some(
                    mail_send::smtp::tls::build_tls_connector(config.tls_insecure)?,
                ),
            };
            let credentials = match (&config.username, &config.password_env) {
                (Some(user), Some(env)) => {
                    let secret = std::env::var(env).map_err(|_| {
                        format!(
                            "relay {}: environment variable {env} is not set",
                            config.host
                        )
                    })?;
                    Some(Credentials::new(user.clone(), secret))
                }
                _ => None,
            };
            relays.push(Arc::new(Relay {
                name: config.name(),
                idle: Mutex::new(Vec::new()),
                slots: Semaphore::new(config.connections),
                tls,
                credentials,
                config: config.clone(),
            }));
        }
        Ok(Self {
            relays,
            next: AtomicUsize::new(0),
            helo: helo.to_owned(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.relays.is_empty()
    }

    /// Sends one message to one recipient with envelope sender `from`.
    pub async fn send(&self, from: &str, to: &str, message: &[u8]) -> Delivery {
        let Some(relay) = self.pick() else {
            return Delivery::Transient {
                reply: "no relay configured".into(),
                retry_after: None,
            };
        };
        let Ok(_slot) = relay.slots.acquire().await else {
            return Delivery::Transient {
                reply: "relay pool closed".into(),
                retry_after: None,
            };
        };
        // A reused connection the relay has since closed fails on its first
        // command; that is not the message's fault, so try a fresh one once.
        if let Some(conn) = relay.take_idle() {
            match transaction(conn, from, to, message).await {
                Outcome::Replied(delivery, conn) => {
                    relay.put_idle(conn);
                    return delivery;
                }
                Outcome::Lost(_) => {}
            }
        }
        let conn = match relay.connect(&self.helo).await {
            Ok(conn) => conn,
            Err(e) => {
                return Delivery::Transient {
                    reply: format!("connecting to {}: {e}", relay.name),
                    retry_after: None,
                };
            }
        };
        match transaction(conn, from, to, message).await {
            Outcome::Replied(delivery, conn) => {
                relay.put_idle(conn);
                delivery
            }
            Outcome::Lost(reason) => Delivery::Transient {
                reply: format!("{}: {reason}", relay.name),
                retry_after: None,
            },
        }
    }

    /// Says QUIT on every idle connection; a relay that does not answer
    /// within `QUIT_TIMEOUT` is left, so it cannot hold up shutdown.
    pub async fn close(&self) {
        for relay in &self.relays {
            let idle = std::mem::take(&mut *relay.lock_idle());
            for conn in idle {
                let quit = async {
                    match conn.client {
                        Client::Plain(c) => c.quit().await,
                        Client::Tls(c) => c.quit().await,
                    }
                };
                let _ = tokio::time::timeout(QUIT_TIMEOUT, quit).await;
            }
        }
    }

    fn pick(&self) -> Option<&Arc<Relay>> {
        if self.relays.is_empty() {
            return None;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.relays.get(n % self.relays.len())
    }
}

/// How long a relay may take to answer QUIT at shutdown.
const QUIT_TIMEOUT: Duration = Duration::from_secs(2);

enum Outcome {
    /// The relay answered; the connection, if still in a clean state.
    Replied(Delivery, Option<Connection>),
    /// The connection broke before an answer.
    Lost(String),
}

async fn transaction(mut conn: Connection, from: &str, to: &str, message: &[u8]) -> Outcome {
    let pipelining = conn.pipelining;
    let result =
        on_client!(&mut conn.client, c => exchange(c, pipelining, from, to, message).await);
    match result {
        Ok(reply) => {
            let delivery = Delivery::Accepted {
                reply: reply_text(&reply),
                upstream: None,
            };
            Outcome::Replied(delivery, Some(conn))
        }
        Err(Failure::Refused(phase, reply)) if (400..600).contains(&reply.code) => {
            let delivery = Delivery::Refused {
                reply: reply_text(&reply),
                code: reply.code,
                phase,
            };
            // The transaction is half done: reset it before reuse.
            let reusable = on_client!(&mut conn.client, c => c.rset().await).is_ok();
            Outcome::Replied(delivery, reusable.then_some(conn))
        }
        // A reply outside 4xx/5xx where a refusal was due: the session is
        // out of step, so it is not reused.
        Err(Failure::Refused(_, reply)) => {
            Outcome::Lost(format!("unexpected reply {}", reply_text(&reply)))
        }
        Err(Failure::Broken(e)) => Outcome::Lost(e.to_string()),
    }
}

/// Why a transaction did not end in an accepted message.
enum Failure {
    /// The relay answered the command of `Phase` with something other than
    /// what lets the transaction go on.
    Refused(Phase, Response<String>),
    /// The connection broke, timed out or spoke garbage.
    Broken(mail_send::Error),
}

impl From<mail_send::Error> for Failure {
    fn from(e: mail_send::Error) -> Self {
        Failure::Broken(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Broken(e.into())
    }
}

/// Tags the relay's refusal of a command with the command's phase.
fn refused_at(phase: Phase) -> impl FnOnce(mail_send::Error) -> Failure {
    move |e| match e {
        mail_send::Error::UnexpectedReply(reply) => Failure::Refused(phase, reply),
        e => Failure::Broken(e),
    }
}

async fn exchange<T: AsyncRead + AsyncWrite + Unpin>(
    c: &mut SmtpClient<T>,
    pipelining: bool,
    from: &str,
    to: &str,
    message: &[u8],
) -> Result<Response<String>, Failure> {
    if !pipelining {
        let params = Parameters::default();
        c.mail_from(from, &params)
            .await
            .map_err(refused_at(Phase::MailFrom))?;
        c.rcpt_to(to, &params)
            .await
            .map_err(refused_at(Phase::RcptTo))?;
        c.cmd(b"DATA\r\n")
            .await?
            .assert_code(354)
            .map_err(refused_at(Phase::Data))?;
        write_data(&mut c.stream, message).await?;
        return c
            .read()
            .await?
            .into_positive_completion()
            .map_err(refused_at(Phase::Data));
    }
    let commands = [
        format!("MAIL FROM:<{from}>\r\n"),
        format!("RCPT TO:<{to}>\r\n"),
        "DATA\r\n".to_owned(),
    ];
    let mut replies = c.cmds(commands).await?.into_iter();
    let (Some(mail), Some(rcpt), Some(data)) = (replies.next(), replies.next(), replies.next())
    else {
        return Err(mail_send::Error::UnparseableReply.into());
    };
    let refused = [(Phase::MailFrom, mail), (Phase::RcptTo, rcpt)]
        .into_iter()
        .find(|(_, r)| !(200..300).contains(&r.code));
    match (refused, data.code) {
        (None, 354) => {
            write_data(&mut c.stream, message).await?;
            c.read()
                .await?
                .into_positive_completion()
                .map_err(refused_at(Phase::Data))
        }
        (Some((phase, refusal)), 354) => {
            // RFC 2920: the relay took DATA although nothing can be delivered;
            // end the empty message and report the refusal.
            c.stream.write_all(b".\r\n").await?;
            c.stream.flush().await?;
            let _ = c.read().await?;
            Err(Failure::Refused(phase, refusal))
        }
        (Some((phase, refusal)), _) => Err(Failure::Refused(phase, refusal)),
        (None, _) => Err(Failure::Refused(Phase::Data, data)),
    }
}

/// The message as DATA content: lines starting with `.` doubled (RFC 5321
/// 4.5.2), a final CRLF only if the message lacks one, then `.`.
async fn write_data<W: AsyncWrite + Unpin>(w: &mut W, message: &[u8]) -> std::io::Result<()> {
    let mut line_start = true;
    let mut from = 0;
    for (i, &b) in message.iter().enumerate() {
        if line_start && b == b'.' {
            w.write_all(&message[from..i]).await?;
            w.write_all(b".").await?;
            from = i;
        }
        line_start = b == b'\n';
    }
    w.write_all(&message[from..]).await?;
    if !message.ends_with(b"\r\n") {
        w.write_all(b"\r\n").await?;
    }
    w.write_all(b".\r\n").await?;
    w.flush().await
}

/// A reply as the relay wrote it: `550 5.1.1 user unknown`.
fn reply_text(reply: &Response<String>) -> String {
    let (code, esc, message) = (reply.code, reply.esc, &reply.message);
    if esc[0] == 0 {
        format!("{code} {message}")
    } else {
        format!("{code} {}.{}.{} {message}", esc[0], esc[1], esc[2])
    }
}

impl Relay {
    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn take_idle(&self) -> Option<Connection> {
        self.lock_idle().pop()
    }

    fn put_idle(&self, conn: Option<Connection>) {
        if let Some(conn) = conn {
            self.lock_idle().push(conn);
        }
    }

    /// Opens a session ready for MAIL FROM: greeting, EHLO, TLS as
    /// configured (STARTTLS only when offered), AUTH if configured.
    async fn connect(&self, helo: &str) -> mail_send::Result<Connection> {
        let timeout = Duration::from_secs(self.config.timeout_secs);
        let addr = tokio::net::lookup_host((self.config.host.as_str(), self.config.port))
            .await?
            .next()
            .ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "host has no address")
            })?;
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| mail_send::Error::Timeout)??;
        // Commands are small and answered one by one: never wait for Nagle.
        stream.set_nodelay(true)?;
        let mut plain = SmtpClient { stream, timeout };
        let host = self.config.host.as_str();
        let (mut client, caps) = match (&self.tls, self.config.tls) {
            (Some(tls), TlsMode::Tls) => {
                let mut c = plain.into_tls(tls, host).await?;
                c.read().await?.assert_positive_completion()?;
                let caps = c.ehlo(helo).await?;
                (Client::Tls(Box::new(buffered(c))), caps)
            }
            (tls, _) => {
                plain.read().await?.assert_positive_completion()?;
                let caps = plain.ehlo(helo).await?;
                match tls {
                    Some(tls) if caps.has_capability(smtp_proto::EXT_START_TLS) => {
                        let mut c = plain.start_tls(tls, host).await?;
                        let caps = c.ehlo(helo).await?;
                        (Client::Tls(Box::new(buffered(c))), caps)
                    }
                    _ => (Client::Plain(buffered(plain)), caps),
                }
            }
        };
        if let Some(credentials) = &self.credentials {
            on_client!(&mut client, c => c.authenticate(credentials, &caps).await.map(drop))?;
        }
        let pipelining = caps.has_capability(smtp_proto::EXT_PIPELINING);
        Ok(Connection { client, pipelining })
    }
}

#[cfg(test)]
mod tests {
    //! The SMTP client against a scripted relay on loopback: what it sends,
    //! pipelined or not, and how each reply becomes a delivery.

    use std::sync::Arc;

    use tokio::{
        io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
        net::TcpListener,
        sync::Mutex as AsyncMutex,
    };

    use super::*;

    /// A relay whose answers are chosen by the addresses and the content:
    /// sender `refused@` 553 at MAIL FROM (then 503 to what follows);
    /// recipient `user` 250, `gone` 550 5.1.1, `late` 550 but DATA still
    /// 354, `busy` 451; a line `spam` in the content 550 at its end.
    /// Every line it reads is kept for the assertions.
    async fn relay(pipelining: bool) -> (u16, Arc<AsyncMutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
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
                    let (mut mail_ok, mut spam) = (true, false);
                    let mut line = String::new();
                    while r.read_line(&mut line).await.unwrap_or(0) > 0 {
                        log.lock().await.push(line.trim_end().to_owned());
                        let reply: &[u8] = if in_data {
                            spam |= line == "spam\r\n";
                            if line == ".\r\n" {
                                in_data = false;
                                if spam {
                                    b"550 5.7.1 message content rejected\r\n"
                                } else if rcpt_ok {
                                    b"250 2.0.0 queued as 42\r\n"
                                } else {
                                    b"554 5.5.1 no valid recipients\r\n"
                                }
                            } else {
                                b""
                            }
                        } else if line.starts_with("MAIL") {
                            mail_ok = !line.contains("<refused@");
                            spam = false;
                            if mail_ok {
                                b"250 ok\r\n"
                            } else {
                                b"553 5.1.2 <refused@bounce.test>: domain not found\r\n"
                            }
                        } else if !mail_ok && (line.starts_with("RCPT") || line.starts_with("DATA"))
                        {
                            b"503 5.5.1 sender not yet given\r\n"
                        } else if line.starts_with("EHLO") {
                            if pipelining {
                                b"250-scripted\r\n250 PIPELINING\r\n"
                            } else {
                                b"250 scripted\r\n"
                            }
                        } else if line.starts_with("RCPT") {
                            rcpt_ok = line.contains("<user@");
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

    fn pool(port: u16) -> RelayPool {
        let config = RelayConfig {
            name: None,
            host: "127.0.0.1".into(),
            port,
            tls: TlsMode::None,
            tls_insecure: false,
            connections: 1,
            timeout_secs: 5,
            username: None,
            password_env: None,
        };
        RelayPool::new(&[config], "test.local").expect("pool")
    }

    #[tokio::test]
    async fn replies_become_deliveries_with_and_without_pipelining() {
        for pipelining in [true, false] {
            let (port, seen) = relay(pipelining).await;
            let pool = pool(port);
            let ok = pool
                .send(
                    "b-x@bounce.test",
                    "user@example.org",
                    b"Subject: hi\r\n\r\n.dot line\r\n",
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
            assert!(
                seen.contains(&"..dot line".to_owned()),
                "dot-stuffed body: {seen:?}"
            );
            assert!(
                seen.contains(&"RSET".to_owned()),
                "reset after a refusal: {seen:?}"
            );
            let after = |rcpt: &str, n: usize| -> Vec<String> {
                let at = seen.iter().position(|l| l == rcpt).expect("rcpt sent");
                seen[at + 1..at + 1 + n].to_vec()
            };
            if pipelining {
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
            } else {
                assert_eq!(after("RCPT TO:<gone@example.org>", 1), ["RSET"], "{seen:?}");
            }
            assert_eq!(
                after("Subject: again", 3),
                ["", "body", "."],
                "the body as composed, no line added: {seen:?}"
            );
        }
    }

    #[tokio::test]
    async fn each_refusal_names_the_command_it_answered() {
        for pipelining in [true, false] {
            let (port, _) = relay(pipelining).await;
            let pool = pool(port);
            let refusal = |d: Delivery| match d {
                Delivery::Refused { code, phase, .. } => (code, phase),
                other => panic!("not a refusal: {other:?}"),
            };
            let ok = b"Subject: hi\r\n\r\nbody\r\n";
            let sender = pool
                .send("refused@bounce.test", "user@example.org", ok)
                .await;
            assert_eq!(refusal(sender), (553, Phase::MailFrom), "{pipelining}");
            let busy = pool.send("b-x@bounce.test", "busy@example.org", ok).await;
            assert_eq!(refusal(busy), (451, Phase::RcptTo), "{pipelining}");
            let spam = pool
                .send(
                    "b-x@bounce.test",
                    "user@example.org",
                    b"Subject: hi\r\n\r\nspam\r\n",
                )
                .await;
            assert_eq!(refusal(spam), (550, Phase::Data), "{pipelining}");
            let after = pool.send("b-x@bounce.test", "user@example.org", ok).await;
            assert!(matches!(after, Delivery::Accepted { .. }), "{after:?}");
        }
    }

    #[tokio::test]
    async fn closing_does_not_wait_for_a_relay_silent_on_quit() {
        let (port, _) = relay(true).await;
        let pool = pool(port);
        let sent = pool
            .send(
                "b-x@bounce.test",
                "user@example.org",
                b"Subject: hi\r\n\r\nx\r\n",
            )
            .await;
        assert!(matches!(sent, Delivery::Accepted { .. }), "{sent:?}");
        let closed = tokio::time::timeout(QUIT_TIMEOUT * 3, pool.close()).await;
        assert!(
            closed.is_ok(),
            "close waited for a QUIT answer that never came"
        );
    }

    #[tokio::test]
    async fn a_relay_that_is_down_is_a_transient_failure() {
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let delivery = pool(port).send("b@x.test", "user@example.org", b"x").await;
        assert!(
            matches!(delivery, Delivery::Transient { .. }),
            "{delivery:?}"
        );
    }
}
