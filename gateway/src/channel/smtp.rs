//! The SMTP channel: a pool of reused connections to each configured relay,
//! STARTTLS when the relay offers it (rustls), optional AUTH, PIPELINING
//! (RFC 2920) when offered, so a message costs two round trips instead of
//! four, and with it CHUNKING (RFC 3030) when offered too, so it costs one.
//! A relay's reply becomes a [`Delivery`]: 2xx accepted, 5xx permanent, 4xx
//! and lost connections transient.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures_util::FutureExt;
use mail_send::{
    Credentials, SmtpClient,
    smtp::{AssertReply, message::Parameters},
};
use smtp_proto::{Response, response::parser::ResponseReceiver};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufStream},
    net::TcpStream,
    sync::Semaphore,
    time::Instant,
};
use tokio_rustls::{TlsConnector, client::TlsStream};

use domain::Phase;

use tokio_util::sync::CancellationToken;

use super::{
    NoPermit, StartError,
    health::{self, ConnectorReport, Health},
    switch::Switch,
};
use crate::{
    config::{Relay as RelayConfig, TlsMode},
    metrics::{Metrics, RelayLabels},
};
use domain::Delivery;

/// An open session, buffered so pipelined commands leave in one write.
enum Client {
    Plain(SmtpClient<BufStream<TcpStream>>),
    Tls(Box<SmtpClient<BufStream<TlsStream<TcpStream>>>>),
}

struct Connection {
    client: Client,
    transfer: Transfer,
}

/// A failing relay's: when sends may connect again, the wait after that
/// try fails too, the last error, and when the failure that set it was
/// noted.
struct Backoff {
    until: Instant,
    wait: Duration,
    error: String,
    noted: Instant,
}

/// A connection waiting for the next send, since when (see `MAX_IDLE`).
struct Idle {
    since: Instant,
    conn: Connection,
}

/// How a message goes to the relay, by what it offered in EHLO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transfer {
    /// Each command waits for its reply.
    Serial,
    /// PIPELINING (RFC 2920): MAIL, RCPT and DATA in one write; the
    /// content after the 354.
    Pipelined,
    /// PIPELINING and CHUNKING (RFC 3030): MAIL, RCPT and one `BDAT n
    /// LAST` with the content in one write, the three replies together:
    /// one round trip a message instead of two, and no dot-stuffing.
    Chunked,
}

impl Transfer {
    fn offered(caps: &smtp_proto::EhloResponse<String>) -> Self {
        match (
            caps.has_capability(smtp_proto::EXT_PIPELINING),
            caps.has_capability(smtp_proto::EXT_CHUNKING),
        ) {
            (true, true) => Self::Chunked,
            (true, false) => Self::Pipelined,
            (false, _) => Self::Serial,
        }
    }
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

impl Connection {
    /// Whether the relay has closed this idle session, or said something
    /// unasked (its 421 before closing): found without waiting. Outside
    /// tokio's budget: a task that has spent it (a driver polling many
    /// sends) would otherwise be told "not ready" without a look at the
    /// socket.
    fn closed_by_relay(&mut self) -> bool {
        let mut byte = [0u8; 1];
        on_client!(&mut self.client, c => {
            tokio::task::coop::unconstrained(c.stream.read(&mut byte))
                .now_or_never()
                .is_some()
        })
    }
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
    health: Health,
    /// An operator's stop and start.
    switch: Switch,
    idle: Mutex<Vec<Idle>>,
    slots: Semaphore,
    tls: Option<TlsConnector>,
    credentials: Option<Credentials<String>>,
    /// While its connections fail (see `connect_for_send`).
    backoff: Mutex<Option<Backoff>>,
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
    pub fn new(configs: &[RelayConfig], helo: &str) -> Result<Self, StartError> {
        let mut relays = Vec::with_capacity(configs.len());
        for config in configs {
            let tls = match config.tls {
                TlsMode::None => None,
                TlsMode::Starttls | TlsMode::Tls => Some(
                    mail_send::smtp::tls::build_tls_connector(config.tls_insecure).map_err(
                        |e| StartError::Tls {
                            at: format!("relay {}", config.name()),
                            source: e.into(),
                        },
                    )?,
                ),
            };
            let credentials = match (&config.username, &config.password_env) {
                (Some(user), Some(env)) => {
                    let secret = std::env::var(env).map_err(|_| StartError::RelaySecret {
                        relay: config.name(),
                        var: env.clone(),
                    })?;
                    Some(Credentials::new(user.clone(), secret))
                }
                _ => None,
            };
            relays.push(Arc::new(Relay {
                switch: Switch::default(),
                name: config.name(),
                health: Health::new(
                    health::SMTP_RELAY,
                    &config.name(),
                    &config.host,
                    config.port,
                ),
                idle: Mutex::new(Vec::new()),
                slots: Semaphore::new(config.connections),
                tls,
                credentials,
                backoff: Mutex::new(None),
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

    /// The longest a send to any relay can take once it has a connection.
    pub fn longest_send(&self) -> Duration {
        (self.relays.iter().map(|r| r.longest_send()))
            .max()
            .unwrap_or_default()
    }

    /// Sends one message to one recipient with envelope sender `from`,
    /// answered by `done_by`: a send that cannot get a connection in time
    /// for that is handed back unsent.
    pub async fn send(&self, from: &str, to: &str, message: &[u8], done_by: Instant) -> Delivery {
        let Some(relay) = self.pick() else {
            if self.relays.is_empty() {
                return Delivery::Transient {
                    reply: "no relay configured".into(),
                    retry_after: None,
                };
            }
            // Not an attempt: the message waits for a relay to be started.
            return Delivery::Unsent {
                reply: "every relay is stopped".into(),
                retry_after: STOPPED_RETRY,
            };
        };
        let start_by = super::start_by(done_by, relay.longest_send());
        let _slot = match super::permits_by(&relay.slots, 1, start_by).await {
            Ok(slot) => slot,
            Err(NoPermit::TooLate) => {
                return Delivery::Unsent {
                    reply: format!(
                        "no connection to relay {} free in time to be answered within the lease",
                        relay.name
                    ),
                    retry_after: BUSY_RETRY,
                };
            }
            Err(NoPermit::Closed) => {
                return Delivery::Transient {
                    reply: "relay pool closed".into(),
                    retry_after: None,
                };
            }
        };
        // Stopped while this send waited for a slot: it waits for a start.
        if !relay.switch.is_on() {
            return Delivery::Unsent {
                reply: format!("relay {} is stopped", relay.name),
                retry_after: STOPPED_RETRY,
            };
        }
        // A reused connection the relay has since closed fails on its first
        // command; that is not the message's fault, so try a fresh one once.
        // Not when the whole message had gone out: the relay may have it.
        // One the relay is seen to have closed already is not tried at all:
        // a chunked message (whole in its first write) would be left
        // unconfirmed on it.
        if let Some(mut conn) = relay.take_idle()
            && !conn.closed_by_relay()
        {
            match transaction(conn, relay.data_timeout(), from, to, message).await {
                // A relay closing an idle session says 421 to the next
                // command: the session's fault, not the message's.
                Outcome::Replied(
                    Delivery::Refused {
                        code: 421,
                        phase: Phase::MailFrom,
                        ..
                    },
                    _,
                ) => {}
                Outcome::Replied(delivery, conn) => {
                    relay.put_idle(conn);
                    return delivery;
                }
                Outcome::Unconfirmed(reason) => return unconfirmed(&relay.name, &reason),
                Outcome::Lost(_) => {}
            }
        }
        // Nothing left for the relay: not an attempt. The next sends go to
        // a relay that answers, if one does (`pick`).
        let conn = match relay.connect_for_send(&self.helo).await {
            Ok(conn) => conn,
            Err((error, retry_after)) => {
                return Delivery::Unsent {
                    reply: format!("connecting to {}: {error}", relay.name),
                    retry_after,
                };
            }
        };
        match transaction(conn, relay.data_timeout(), from, to, message).await {
            Outcome::Replied(delivery, conn) => {
                relay.put_idle(conn);
                delivery
            }
            Outcome::Unconfirmed(reason) => unconfirmed(&relay.name, &reason),
            Outcome::Lost(reason) => Delivery::Transient {
                reply: format!("{}: {reason}", relay.name),
                retry_after: None,
            },
        }
    }

    /// Connects to every relay once at start, so that one that cannot be
    /// reached is logged and reported by `/readyz` before the first
    /// campaign, then tries the failing ones again every `PROBE_INTERVAL`
    /// until they answer. A connection made is kept for the next send.
    pub async fn watch(self: Arc<Self>, stop: CancellationToken) {
        let mut first = true;
        loop {
            for relay in &self.relays {
                if relay.switch.is_on()
                    && (first || relay.health.failure().is_some())
                    && let Ok(conn) = relay.connect_noted(&self.helo).await
                {
                    relay.put_idle(Some(conn));
                }
            }
            first = false;
            tokio::select! {
                () = tokio::time::sleep(PROBE_INTERVAL) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    /// Reports each relay's health in `sluice_relay_up{relay}`.
    pub fn report_health(&self, metrics: &Metrics) {
        for relay in &self.relays {
            let labels = RelayLabels {
                relay: relay.name.clone(),
            };
            relay
                .health
                .report_to(metrics.relay_up.get_or_create(&labels).clone());
        }
    }

    /// Each relay's health, in configured order.
    pub fn reports(&self) -> Vec<ConnectorReport> {
        self.relays.iter().map(|r| r.report()).collect()
    }

    /// Starts (`on`) or stops the relay named `name`: stopped, it takes no
    /// message and its idle connections are closed. Its health after, if
    /// there is such a relay.
    pub fn switch(&self, name: &str, on: bool) -> Option<ConnectorReport> {
        let relay = self.relays.iter().find(|r| r.name == name)?;
        // Under the idle lock, which `put_idle` checks the switch under: no
        // connection is left idle on a stopped relay.
        let mut idle = relay.lock_idle();
        if relay.switch.set(on) {
            tracing::info!(relay = %name, on, "SMTP relay switched by an operator");
        }
        if on {
            // Started (after a fix, say): the next send tries it at once.
            *relay.lock_backoff() = None;
        } else {
            tokio::spawn(quit(std::mem::take(&mut *idle)));
        }
        drop(idle);
        Some(relay.report())
    }

    /// The relays stopped or that failed their last connection, each with
    /// why.
    pub fn failures(&self) -> Vec<String> {
        self.relays
            .iter()
            .filter_map(|r| match r.switch.is_on() {
                true => r.health.failure(),
                false => Some(format!("{}: stopped by an operator", r.health.upstream())),
            })
            .collect()
    }

    /// Says QUIT on every idle connection; a relay that does not answer
    /// within `QUIT_TIMEOUT` is left, so it cannot hold up shutdown.
    pub async fn close(&self) {
        for relay in &self.relays {
            let idle = std::mem::take(&mut *relay.lock_idle());
            quit(idle).await;
        }
    }

    /// The next relay in turn that an operator has not stopped, one whose
    /// last connection did not fail if there is one (the failing ones are
    /// probed until they answer, `watch`).
    fn pick(&self) -> Option<&Arc<Relay>> {
        let n = self.relays.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let in_turn = || (0..n).map(|i| &self.relays[(start + i) % n]);
        let on = |r: &&Arc<Relay>| r.switch.is_on();
        (in_turn().filter(on).find(|r| r.health.failure().is_none())).or_else(|| in_turn().find(on))
    }
}

/// How long a relay may take to answer QUIT at shutdown.
const QUIT_TIMEOUT: Duration = Duration::from_secs(2);
/// How soon a message is tried again while every relay is stopped.
const STOPPED_RETRY: Duration = Duration::from_secs(5);
/// How soon a relay that could not be reached is connected to again for a
/// send; doubling while it keeps failing, up to `PROBE_INTERVAL`, so that a
/// relay refusing our credentials is not asked every second by every send.
const UNREACHABLE_RETRY: Duration = Duration::from_secs(1);
/// An idle connection kept longer is closed rather than used: a NAT or a
/// load balancer on the way may have forgotten it without a word (AWS's
/// NAT after 350 s, Azure's after 4 minutes), and a message written into
/// it would only be unconfirmed.
const MAX_IDLE: Duration = Duration::from_secs(60);
/// When a message that found every connection of its relay busy is
/// tried again.
const BUSY_RETRY: Duration = Duration::from_secs(1);

/// Says QUIT on each connection; one that does not answer within
/// `QUIT_TIMEOUT` is dropped.
async fn quit(connections: Vec<Idle>) {
    for Idle { conn, .. } in connections {
        let quit = async {
            match conn.client {
                Client::Plain(c) => c.quit().await,
                Client::Tls(c) => c.quit().await,
            }
        };
        let _ = tokio::time::timeout(QUIT_TIMEOUT, quit).await;
    }
}
/// How often a relay that could not be reached is tried again when no
/// send tries it meanwhile.
const PROBE_INTERVAL: Duration = Duration::from_secs(10);

enum Outcome {
    /// The relay answered; the connection, if still in a clean state.
    Replied(Delivery, Option<Connection>),
    /// The connection broke before the message's end was sent.
    Lost(String),
    /// The connection broke after the message's end was sent, before the
    /// relay's answer: it may have the message.
    Unconfirmed(String),
}

fn unconfirmed(relay: &str, reason: &str) -> Delivery {
    Delivery::Unconfirmed {
        reply: format!(
            "{relay}: no answer after the message was sent ({reason}); the relay may have it"
        ),
        retry_after: None,
    }
}

/// One message on `conn`; the relay has `data_timeout` for the message's
/// content and the answer to its end.
async fn transaction(
    mut conn: Connection,
    data_timeout: Duration,
    from: &str,
    to: &str,
    message: &[u8],
) -> Outcome {
    let transfer = conn.transfer;
    let result = on_client!(&mut conn.client, c => exchange(c, transfer, data_timeout, from, to, message).await);
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
        Err(Failure::Unconfirmed(e)) => Outcome::Unconfirmed(e.to_string()),
    }
}

/// Why a transaction did not end in an accepted message.
enum Failure {
    /// The relay answered the command of `Phase` with something other than
    /// what lets the transaction go on.
    Refused(Phase, Response<String>),
    /// The connection broke, timed out or spoke garbage.
    Broken(mail_send::Error),
    /// The same, once the message's final dot was sent.
    Unconfirmed(mail_send::Error),
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
    transfer: Transfer,
    data_timeout: Duration,
    from: &str,
    to: &str,
    message: &[u8],
) -> Result<Response<String>, Failure> {
    if transfer == Transfer::Chunked {
        return chunked(c, data_timeout, from, to, message).await;
    }
    if transfer == Transfer::Serial {
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
        send_data(c, message, data_timeout).await?;
        return final_reply(c, data_timeout).await;
    }
    let commands = [
        format!("MAIL FROM:<{from}>\r\n"),
        format!("RCPT TO:<{to}>\r\n"),
        "DATA\r\n".to_owned(),
    ];
    let replies = pipelined(c, &commands).await?;
    // The session ended early (a 421, or a refusal and then a close): its
    // first refusal is the answer.
    if replies.len() < commands.len() {
        return Err(first_refusal(&replies).map_or(
            Failure::Broken(mail_send::Error::UnparseableReply),
            |(phase, refusal)| Failure::Refused(phase, refusal.clone()),
        ));
    }
    let mut replies = replies.into_iter();
    let (Some(mail), Some(rcpt), Some(data)) = (replies.next(), replies.next(), replies.next())
    else {
        return Err(mail_send::Error::UnparseableReply.into());
    };
    let refused = [(Phase::MailFrom, mail), (Phase::RcptTo, rcpt)]
        .into_iter()
        .find(|(_, r)| !(200..300).contains(&r.code));
    match (refused, data.code) {
        (None, 354) => {
            send_data(c, message, data_timeout).await?;
            final_reply(c, data_timeout).await
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

/// MAIL, RCPT and the message as one `BDAT n LAST` chunk in one write,
/// then the three replies, all within `timeout`. Until the chunk has left
/// whole the relay cannot have the message; after that, a session lost
/// before the last reply leaves it unconfirmed.
async fn chunked<T: AsyncRead + AsyncWrite + Unpin>(
    c: &mut SmtpClient<T>,
    timeout: Duration,
    from: &str,
    to: &str,
    message: &[u8],
) -> Result<Response<String>, Failure> {
    // A message ends with a line break, as after DATA.
    let end: &[u8] = if message.ends_with(b"\r\n") {
        b""
    } else {
        b"\r\n"
    };
    let commands = format!(
        "MAIL FROM:<{from}>\r\nRCPT TO:<{to}>\r\nBDAT {} LAST\r\n",
        message.len() + end.len()
    );
    let send = async {
        c.stream.write_all(commands.as_bytes()).await?;
        c.stream.write_all(message).await?;
        c.stream.write_all(end).await?;
        c.stream.flush().await
    };
    tokio::time::timeout(timeout, send)
        .await
        .map_err(|_| Failure::Broken(mail_send::Error::Timeout))??;
    let mut replies = Vec::with_capacity(3);
    let read = tokio::time::timeout(timeout, read_replies(c, 3, &mut replies)).await;
    // The first refusal is the answer, also when the session was lost after
    // it: what follows a refused MAIL or RCPT is refused for want of it.
    if let Some((phase, refusal)) = first_refusal(&replies) {
        return once_sent(phase, refusal.clone());
    }
    match read {
        Err(_) => Err(Failure::Unconfirmed(mail_send::Error::Timeout)),
        Ok(Err(e)) => Err(Failure::Unconfirmed(e)),
        Ok(Ok(())) => replies
            .pop()
            .ok_or(Failure::Unconfirmed(mail_send::Error::UnparseableReply)),
    }
}

/// The first reply of MAIL, RCPT and DATA (or BDAT) that is not a 2xx, with
/// its phase.
fn first_refusal(replies: &[Response<String>]) -> Option<(Phase, &Response<String>)> {
    [Phase::MailFrom, Phase::RcptTo, Phase::Data]
        .into_iter()
        .zip(replies)
        .find(|(_, r)| !(200..300).contains(&r.code))
}

/// A reply to `phase` once the whole message went: a 2xx takes it, a 4xx
/// or 5xx refuses it; anything else is out of step, and the relay may have
/// the message.
fn once_sent(phase: Phase, reply: Response<String>) -> Result<Response<String>, Failure> {
    match reply.code {
        200..300 => Ok(reply),
        400..600 => Err(Failure::Refused(phase, reply)),
        _ => Err(Failure::Unconfirmed(mail_send::Error::UnexpectedReply(
            reply,
        ))),
    }
}

/// The relay's answer to a message's end, within `timeout`: without one,
/// whether it has the message is unknown.
async fn final_reply<T: AsyncRead + AsyncWrite + Unpin>(
    c: &mut SmtpClient<T>,
    timeout: Duration,
) -> Result<Response<String>, Failure> {
    let reply = tokio::time::timeout(timeout, c.read())
        .await
        .map_err(|_| Failure::Unconfirmed(mail_send::Error::Timeout))?
        .map_err(Failure::Unconfirmed)?;
    once_sent(Phase::Data, reply)
}

/// The message, within `timeout`: a relay that stops reading cannot hold
/// the send forever.
async fn send_data<T: AsyncRead + AsyncWrite + Unpin>(
    c: &mut SmtpClient<T>,
    message: &[u8],
    timeout: Duration,
) -> Result<(), Failure> {
    tokio::time::timeout(timeout, write_data(&mut c.stream, message))
        .await
        .map_err(|_| Failure::Broken(mail_send::Error::Timeout))??;
    Ok(())
}

/// Sends `commands` at once and reads their replies, all within the
/// relay's timeout. A 421 ends the replies early: the relay is closing the
/// session (RFC 5321 3.8), and what it said is the answer, not the lost
/// connection after it.
async fn pipelined<T: AsyncRead + AsyncWrite + Unpin>(
    c: &mut SmtpClient<T>,
    commands: &[String],
) -> Result<Vec<Response<String>>, Failure> {
    let timeout = c.timeout;
    let mut replies = Vec::with_capacity(commands.len());
    let exchange = async {
        for command in commands {
            c.stream.write_all(command.as_bytes()).await?;
        }
        c.stream.flush().await?;
        read_replies(c, commands.len(), &mut replies).await
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(())) => Ok(replies),
        // A refusal, then the session lost: the refusal is the answer.
        Ok(Err(_)) if first_refusal(&replies).is_some() => Ok(replies),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(mail_send::Error::Timeout.into()),
    }
}

/// Reads the replies to `n` pipelined commands into `replies`, fewer if
/// one is a 421: the relay is closing the session (RFC 5321 3.8), and what
/// it said is the answer, not the lost connection after it. Those read
/// before an error stay in `replies`.
async fn read_replies<T: AsyncRead + AsyncWrite + Unpin>(
    c: &mut SmtpClient<T>,
    n: usize,
    replies: &mut Vec<Response<String>>,
) -> mail_send::Result<()> {
    let mut buf = vec![0u8; 1024];
    let mut parser = ResponseReceiver::default();
    loop {
        let got = c.stream.read(&mut buf).await?;
        if got == 0 {
            return Err(mail_send::Error::UnparseableReply);
        }
        let mut bytes = buf[..got].iter();
        loop {
            match parser.parse(&mut bytes) {
                Ok(reply) => {
                    let closing = reply.code == 421;
                    replies.push(reply);
                    if closing || replies.len() == n {
                        return Ok(());
                    }
                    parser.reset();
                }
                Err(smtp_proto::Error::NeedsMoreData { .. }) => break,
                Err(_) => return Err(mail_send::Error::UnparseableReply),
            }
        }
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
    fn report(&self) -> ConnectorReport {
        self.health.report(None, self.switch.is_on())
    }

    fn data_timeout(&self) -> Duration {
        Duration::from_secs(self.config.data_timeout_secs)
    }

    /// The longest a send can take once it has a connection: a connection
    /// made, then the transaction (what `check-config` holds to half the
    /// lease).
    fn longest_send(&self) -> Duration {
        Duration::from_secs(self.config.timeout_secs + self.config.data_timeout_secs)
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The idle connection used last, if it has not waited too long;
    /// those that have are closed.
    fn take_idle(&self) -> Option<Connection> {
        let mut idle = self.lock_idle();
        let last = idle.pop()?;
        if last.since.elapsed() <= MAX_IDLE {
            return Some(last.conn);
        }
        // The rest were put back earlier still.
        let stale: Vec<Idle> = std::iter::once(last).chain(idle.drain(..)).collect();
        drop(idle);
        drop(tokio::spawn(quit(stale)));
        None
    }

    /// Keeps `conn` for the next send, unless the relay was stopped
    /// meanwhile.
    fn put_idle(&self, conn: Option<Connection>) {
        let Some(conn) = conn else {
            return;
        };
        let conn = Idle {
            since: Instant::now(),
            conn,
        };
        let mut idle = self.lock_idle();
        if self.switch.is_on() {
            idle.push(conn);
        } else {
            drop(idle);
            drop(tokio::spawn(quit(vec![conn])));
        }
    }

    /// A new connection for a send, unless the relay is failing and its
    /// back-off has not run out: then the last error and how long until the
    /// next try.
    async fn connect_for_send(&self, helo: &str) -> Result<Connection, (String, Duration)> {
        let waiting = (self.lock_backoff().as_ref()).map(|b| {
            (
                b.until.saturating_duration_since(Instant::now()),
                b.error.clone(),
            )
        });
        if let Some((wait, error)) = waiting.filter(|(wait, _)| !wait.is_zero()) {
            return Err((error, wait));
        }
        self.connect_noted(helo).await.map_err(|e| {
            let wait = (self.lock_backoff().as_ref()).map_or(UNREACHABLE_RETRY, |b| b.wait);
            (e.to_string(), wait)
        })
    }

    /// A new connection, its success or failure noted in the relay's health
    /// and back-off.
    async fn connect_noted(&self, helo: &str) -> mail_send::Result<Connection> {
        let tried = Instant::now();
        let connected = self.connect(helo).await;
        let mut backoff = self.lock_backoff();
        match &connected {
            Ok(_) => {
                self.health.reached();
                *backoff = None;
            }
            Err(e) => {
                self.health.failed(e);
                let wait = match backoff.as_ref() {
                    None => UNREACHABLE_RETRY,
                    // Tried before the failure that set the back-off was
                    // noted (sends connecting at once): one failure, one
                    // doubling.
                    Some(b) if tried < b.noted => b.wait,
                    Some(b) => (b.wait * 2).min(PROBE_INTERVAL),
                };
                let now = Instant::now();
                *backoff = Some(Backoff {
                    until: now + wait,
                    wait,
                    error: e.to_string(),
                    noted: now,
                });
            }
        }
        connected
    }

    fn lock_backoff(&self) -> std::sync::MutexGuard<'_, Option<Backoff>> {
        self.backoff
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Opens a session ready for MAIL FROM: greeting, EHLO, TLS as
    /// configured (STARTTLS only when offered), AUTH if configured. Each of
    /// the host's addresses is tried in turn, each connect within
    /// `timeout_secs`, and the SMTP opening after it within `timeout_secs`
    /// too: a relay that takes the connection and never greets (a TLS port
    /// spoken to in plain text, say) must not hold the send.
    async fn connect(&self, helo: &str) -> mail_send::Result<Connection> {
        let timeout = Duration::from_secs(self.config.timeout_secs);
        let address = (self.config.host.as_str(), self.config.port);
        let addresses = tokio::time::timeout(timeout, tokio::net::lookup_host(address))
            .await
            .map_err(|_| mail_send::Error::Timeout)??;
        let mut failed = std::io::Error::new(std::io::ErrorKind::NotFound, "host has no address");
        for addr in addresses {
            match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    let opening = self.open(SmtpClient { stream, timeout }, helo);
                    return tokio::time::timeout(timeout, opening)
                        .await
                        .map_err(|_| mail_send::Error::Timeout)?;
                }
                Ok(Err(e)) => failed = e,
                Err(_) => failed = std::io::ErrorKind::TimedOut.into(),
            }
        }
        Err(failed.into())
    }

    async fn open(
        &self,
        mut plain: SmtpClient<TcpStream>,
        helo: &str,
    ) -> mail_send::Result<Connection> {
        // Commands are small and answered one by one: never wait for Nagle.
        plain.stream.set_nodelay(true)?;
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
                    // Credentials never go in clear to a relay that was to
                    // speak TLS: one on the way may have struck STARTTLS
                    // from the EHLO answer to read them.
                    Some(_) if self.credentials.is_some() => {
                        return Err(mail_send::Error::MissingStartTls);
                    }
                    _ => (Client::Plain(buffered(plain)), caps),
                }
            }
        };
        if let Some(credentials) = &self.credentials {
            on_client!(&mut client, c => c.authenticate(credentials, &caps).await.map(drop))?;
        }
        Ok(Connection {
            client,
            transfer: Transfer::offered(&caps),
        })
    }
}

#[cfg(test)]
mod tests;
