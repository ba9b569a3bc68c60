//! One bind to an SMSC: keeps an SMPP 3.4 session up (connect, bind,
//! enquire_link, reconnect with jittered exponential back-off), limits the
//! submit_sm outstanding on it to its window, and pauses it when the SMSC
//! throttles. `session.rs` does the framing and matches responses to
//! requests; this file is about staying connected and polite.
//!
//! In `pair` mode a bind is a transmitter (submits) plus a receiver (receipts
//! and handset messages); in `transceiver` mode one session does both.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use prometheus_client::metrics::{counter::Counter, gauge::Gauge, histogram::Histogram};
use rand::Rng;
use rusmpp::{
    Command, CommandStatus, Pdu,
    pdus::{BindReceiver, BindTransceiver, BindTransmitter, DataSmResp, DeliverSmResp},
    types::COctetString,
    values::InterfaceVersion,
};
use tokio::{
    net::TcpStream,
    sync::{RwLock, RwLockReadGuard, Semaphore, mpsc, watch},
    time::Instant,
};
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

use smpp::{
    inbound::Inbound,
    session::{Frame, RequestError, Session, Timing},
    status::{self, Refusal},
};

use super::FieldError;
use crate::channel::{
    NoPermit,
    health::{self, ConnectorReport, Health},
    permits_by,
    switch::Switch,
};
use crate::{
    config::{BindMode, Smsc},
    metrics::{BindLabels, Metrics, ReceiptLabels},
};

/// Handed back without reaching the SMSC: `reply` says why.
fn unsent(reply: &str, retry_after: Duration) -> SubmitError {
    SubmitError::Unsent {
        reply: reply.to_owned(),
        retry_after,
    }
}

/// Why a part got no window room.
fn no_room(no: NoPermit) -> &'static str {
    match no {
        NoPermit::TooLate => "SMPP window full",
        NoPermit::Closed => "bind closed",
    }
}

/// Longest pause of a bind the SMSC keeps throttling.
const MAX_THROTTLE_PAUSE: Duration = Duration::from_secs(30);
/// A send that found the window full is tried again after this.
const WINDOW_RETRY: Duration = Duration::from_millis(100);
/// A send that found the bind down is tried again after this.
pub const UNBOUND_RETRY: Duration = Duration::from_secs(5);
/// How long an unbind may take at shutdown before the connection is dropped.
const UNBIND_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a stopped SMSC's submits in flight may take to be answered.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A bind field, refused when too long for the PDU (SMPP caps each).
fn octets<const N: usize>(
    field: &'static str,
    value: &str,
) -> Result<COctetString<1, N>, FieldError> {
    super::c_octet_string(value).map_err(|e| FieldError {
        field,
        source: format!("at most {} characters: {e}", N - 1).into(),
    })
}

/// Why a bind could not be opened (it is tried again after a back-off).
#[derive(Debug, thiserror::Error)]
enum OpenError {
    #[error("connecting: {0}")]
    Connect(std::io::Error),
    #[error("TLS server name: {0}")]
    ServerName(rustls::pki_types::InvalidDnsNameError),
    #[error("TLS handshake: {0}")]
    Handshake(std::io::Error),
    #[error("{0}: no answer within {1:?}")]
    TimedOut(&'static str, Duration),
    #[error(transparent)]
    Pdu(#[from] FieldError),
    #[error("bind refused: {}", status::describe(*.0))]
    Refused(u32),
    #[error(transparent)]
    Session(RequestError),
}

/// Why a submit_sm did not get a message id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// Connection lost or no answer in time: whether the SMSC took it is
    /// unknown, so the message goes back to the queue.
    #[error("{0}")]
    Lost(String),
    /// Never sent (not bound, window full or throttled until the deadline):
    /// not an attempt; worth trying again after `retry_after`.
    #[error("{reply}")]
    Unsent {
        reply: String,
        retry_after: Duration,
    },
    /// Refused with a status other than a throttling one.
    #[error("{}", status::describe(*.status))]
    Refused { status: u32, class: Refusal },
}

impl SubmitError {
    /// Which error of a message's parts speaks for the message, the
    /// weightier: a permanent refusal ends it, a part lost leaves it
    /// unconfirmed, any other refusal makes it an attempt, and a part
    /// unsent is not one.
    pub fn weight(&self) -> u8 {
        match self {
            Self::Refused {
                class: Refusal::Permanent,
                ..
            } => 3,
            Self::Lost(_) => 2,
            Self::Refused { .. } => 1,
            Self::Unsent { .. } => 0,
        }
    }
}

/// One bind's metric handles, looked up once rather than per message.
pub struct BindMetrics {
    bound: Gauge,
    window: Gauge,
    submit_seconds: Histogram,
    throttled: Counter,
    pub receipts: Arc<ReceiptCounts>,
}

/// One bind's receipts, counted matched or not.
pub struct ReceiptCounts {
    /// The bind's labels, which a receipt parked durably keeps.
    pub labels: BindLabels,
    matched: Counter,
    unmatched: Counter,
}

impl ReceiptCounts {
    pub fn new(metrics: &Metrics, labels: &BindLabels) -> Self {
        let counter = |result| {
            metrics
                .smpp_receipts
                .get_or_create(&ReceiptLabels {
                    smsc: labels.smsc.clone(),
                    bind: labels.bind.clone(),
                    result,
                })
                .clone()
        };
        Self {
            labels: labels.clone(),
            matched: counter("matched"),
            unmatched: counter("unmatched"),
        }
    }

    /// Counts a receipt, matched to a message or not.
    pub fn count(&self, matched: bool) {
        match matched {
            true => self.matched.inc(),
            false => self.unmatched.inc(),
        };
    }
}

impl BindMetrics {
    fn new(metrics: &Metrics, labels: &BindLabels) -> Self {
        Self {
            bound: metrics.smpp_bound.get_or_create(labels).clone(),
            window: metrics.smpp_window.get_or_create(labels).clone(),
            submit_seconds: metrics.smpp_submit_seconds.get_or_create(labels).clone(),
            throttled: metrics.smpp_throttled.get_or_create(labels).clone(),
            receipts: Arc::new(ReceiptCounts::new(metrics, labels)),
        }
    }
}

/// A deliver_sm (or data_sm) to answer once what it says is durable.
pub struct Delivered {
    pub smsc: u16,
    pub metrics: Arc<BindMetrics>,
    pub sequence_number: u32,
    pub session: Arc<Session>,
    pub inbound: Inbound,
    /// Came as a data_sm, so answered with a data_sm_resp.
    pub as_data_sm: bool,
}

impl Delivered {
    /// Answers the deliver_sm or data_sm; a session that has gone cannot be
    /// answered (the SMSC resends on the next one).
    pub fn answer(&self, status: CommandStatus) {
        let response = if self.as_data_sm {
            Pdu::DataSmResp(DataSmResp::default())
        } else {
            Pdu::DeliverSmResp(DeliverSmResp::default())
        };
        self.session.respond(self.sequence_number, status, response);
    }
}

pub struct Bind {
    pub smsc: u16,
    pub labels: BindLabels,
    config: Arc<Smsc>,
    password: String,
    tls: Option<TlsConnector>,
    /// The session submits go through, while bound.
    submitter: watch::Sender<Option<Arc<Session>>>,
    window: Semaphore,
    /// Held shared by each message for all its parts, taken whole by a stop
    /// so that it never cuts a concatenated message in two.
    messages: RwLock<()>,
    pause: Mutex<Pause>,
    /// Sessions bound right now (see `sessions`).
    sessions_up: AtomicUsize,
    metrics: Arc<BindMetrics>,
    /// The last bind attempt's failure, for the log and `/readyz`.
    health: Health,
    /// The operator's on/off for the SMSC this bind is one of.
    switch: Arc<Switch>,
}

/// Why a session ended.
enum Ended {
    /// The daemon is stopping: no new session.
    Shutdown,
    /// An operator stopped the SMSC: a new session once started again.
    Stopped,
    /// The SMSC or the network ended it: a new session after back-off.
    Lost,
}

/// Throttling state: paused until `until`; `streak` throttles in a row.
#[derive(Debug, Default)]
struct Pause {
    until: Option<Instant>,
    streak: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Transceiver,
    Transmitter,
    Receiver,
}

impl Bind {
    pub fn new(
        smsc: u16,
        index: usize,
        config: Arc<Smsc>,
        password: String,
        tls: Option<TlsConnector>,
        metrics: Arc<Metrics>,
        switch: Arc<Switch>,
    ) -> Self {
        let labels = BindLabels {
            smsc: config.name(),
            bind: index.to_string(),
        };
        let metrics = Arc::new(BindMetrics::new(&metrics, &labels));
        let health = Health::new(health::SMSC, &labels.smsc, &config.host, config.port);
        Self {
            smsc,
            labels,
            window: Semaphore::new(config.window),
            messages: RwLock::new(()),
            config,
            password,
            tls,
            submitter: watch::channel(None).0,
            pause: Mutex::new(Pause::default()),
            sessions_up: AtomicUsize::new(0),
            metrics,
            health,
            switch,
        }
    }

    pub fn is_bound(&self) -> bool {
        self.submitter.borrow().is_some()
    }

    /// Free room in the window (to pick the least loaded bind).
    pub fn room(&self) -> usize {
        self.window.available_permits()
    }

    /// Keeps this bind's sessions up until `stop`.
    pub async fn run(self: Arc<Self>, inbound: mpsc::Sender<Delivered>, stop: CancellationToken) {
        let roles: &[Role] = match self.config.bind_mode {
            BindMode::Transceiver => &[Role::Transceiver],
            BindMode::Pair => &[Role::Transmitter, Role::Receiver],
        };
        let sessions = roles.iter().map(|&role| {
            let bind = self.clone();
            let (inbound, stop) = (inbound.clone(), stop.clone());
            async move { bind.keep_up(role, inbound, stop).await }
        });
        futures_util::future::join_all(sessions).await;
    }

    /// Submits one message's parts and returns the SMSC's message id for
    /// each, in order. Window room is taken for several parts at once (up to
    /// half the window, so that a long text never waits for the whole
    /// window to empty), and they go out together rather than each after
    /// the one before is answered. Throttling answers pause the bind and the
    /// part is sent again: they are never a failure of the message. Parts
    /// that cannot start by `give_up_at` (the message's lease must not run
    /// out while they wait here), and those after a part that failed, are
    /// handed back unsent.
    pub async fn submit_parts(
        &self,
        parts: &[Frame],
        give_up_at: Instant,
    ) -> Vec<Result<String, SubmitError>> {
        let mut answers = Vec::with_capacity(parts.len());
        for together in parts.chunks((self.config.window / 2).max(1)) {
            let n = u32::try_from(together.len()).expect("a window fits in u32");
            let room = if answers.iter().any(Result::is_err) {
                Err("an earlier part was not taken")
            } else if !answers.is_empty() && Instant::now() >= give_up_at {
                Err("no time left for the later parts")
            } else {
                permits_by(&self.window, n, give_up_at)
                    .await
                    .map_err(no_room)
            };
            match room {
                Ok(_room) => {
                    let sent = together.iter().map(|sm| self.submit(sm, give_up_at));
                    answers.extend(futures_util::future::join_all(sent).await);
                }
                Err(reply) => {
                    answers.extend(together.iter().map(|_| Err(unsent(reply, WINDOW_RETRY))));
                }
            }
        }
        answers
    }

    /// A text of one part (most are): [`Bind::submit_parts`] for it alone.
    pub async fn submit_one(&self, sm: &Frame, give_up_at: Instant) -> Result<String, SubmitError> {
        let _room = (permits_by(&self.window, 1, give_up_at).await)
            .map_err(|no| unsent(no_room(no), WINDOW_RETRY))?;
        self.submit(sm, give_up_at).await
    }

    /// Sends one submit_sm in window room already taken.
    async fn submit(&self, sm: &Frame, give_up_at: Instant) -> Result<String, SubmitError> {
        let window = &self.metrics.window;
        loop {
            let paused_until = self.lock_pause().until;
            // A pause that has ended (its time is kept) holds nothing up.
            let waited_for = give_up_at.max(Instant::now());
            if let Some(until) = paused_until.filter(|&t| t > waited_for) {
                return Err(unsent("SMSC throttling", until - Instant::now()));
            }
            self.wait_while_paused().await;
            let session = self
                .submitter
                .borrow()
                .clone()
                .ok_or_else(|| unsent("SMSC not bound", UNBOUND_RETRY))?;
            window.inc();
            let started = Instant::now();
            let answer = session.send(sm).await;
            window.dec();
            self.metrics
                .submit_seconds
                .observe(started.elapsed().as_secs_f64());
            let response = match answer {
                Ok(response) => response,
                // The session ended before this submit was queued (the
                // bind has not noticed yet): the SMSC never saw it.
                Err(RequestError::NotSent) => {
                    return Err(unsent("SMSC connection lost", UNBOUND_RETRY));
                }
                Err(e) => return Err(SubmitError::Lost(e.to_string())),
            };
            let status = u32::from(response.status());
            if status != status::OK {
                match status::classify(status) {
                    Refusal::Throttled => self.throttled(),
                    Refusal::Unbound => {
                        // The session is bound no more: ended, and bound again.
                        session.close();
                        return Err(unsent("SMSC says the session is not bound", UNBOUND_RETRY));
                    }
                    class => return Err(SubmitError::Refused { status, class }),
                }
                continue;
            }
            self.lock_pause().streak = 0;
            return match response.pdu() {
                Some(Pdu::SubmitSmResp(resp)) => Ok(resp.message_id().as_str().to_owned()),
                _ => Err(SubmitError::Lost(format!(
                    "SMSC answered submit_sm with {:?}",
                    response.id()
                ))),
            };
        }
    }

    async fn wait_while_paused(&self) {
        loop {
            let until = self.lock_pause().until;
            match until {
                Some(t) if t > Instant::now() => tokio::time::sleep_until(t).await,
                _ => return,
            }
        }
    }

    /// Pauses the bind: the first throttle for `throttle_pause_ms`, doubling
    /// while the SMSC keeps throttling. Concurrent throttles of one burst
    /// extend the same pause rather than compounding it.
    fn throttled(&self) {
        self.metrics.throttled.inc();
        let now = Instant::now();
        let mut pause = self.lock_pause();
        if pause.until.is_some_and(|t| t > now) {
            return;
        }
        let base = Duration::from_millis(self.config.throttle_pause_ms);
        let length = base
            .saturating_mul(2u32.saturating_pow(pause.streak.min(16)))
            .min(MAX_THROTTLE_PAUSE);
        pause.streak += 1;
        pause.until = Some(now + length);
        tracing::info!(smsc = %self.labels.smsc, bind = %self.labels.bind, pause_ms = length.as_millis() as u64, "SMSC throttled; bind paused");
    }

    fn lock_pause(&self) -> std::sync::MutexGuard<'_, Pause> {
        self.pause
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// One session's life: open, serve until it drops, back off, again.
    async fn keep_up(&self, role: Role, inbound: mpsc::Sender<Delivered>, stop: CancellationToken) {
        let min = Duration::from_millis(self.config.reconnect_min_ms);
        let max = Duration::from_secs(self.config.reconnect_max_secs);
        let mut backoff = min;
        while !stop.is_cancelled() {
            if !self.switch.is_on() {
                tracing::info!(upstream = %self.health.upstream(), bind = %self.labels.bind, ?role, "SMSC stopped by an operator; waiting to be started");
                tokio::select! {
                    () = self.switch.until_on() => {}
                    () = stop.cancelled() => break,
                }
                backoff = min;
            }
            let opened = tokio::select! {
                opened = self.open(role) => opened,
                () = stop.cancelled() => break,
            };
            match opened {
                Ok((session, requests)) => {
                    let bound_at = Instant::now();
                    self.health.reached();
                    tracing::info!(upstream = %self.health.upstream(), bind = %self.labels.bind, ?role, "SMPP bound");
                    self.set_bound(role, Some(session.clone()));
                    let ended = self.serve(role, &session, requests, &inbound, &stop).await;
                    self.set_bound(role, None);
                    match ended {
                        Ended::Shutdown => break,
                        Ended::Stopped => continue,
                        Ended::Lost => {}
                    }
                    backoff = backoff_after_session(backoff, bound_at.elapsed(), min, max);
                    tracing::warn!(upstream = %self.health.upstream(), bind = %self.labels.bind, ?role, "SMPP session lost; reconnecting");
                }
                Err(e) => {
                    // Logged when the error starts or changes; each retry at debug.
                    self.health.failed(&e);
                    tracing::debug!(smsc = %self.labels.smsc, bind = %self.labels.bind, ?role, error = %e, retry_ms = backoff.as_millis() as u64, "SMPP bind failed");
                }
            }
            let wait = backoff.mul_f64(rand::rng().random_range(0.5..1.0));
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = stop.cancelled() => break,
            }
            backoff = (backoff * 2).min(max);
        }
    }

    fn set_bound(&self, role: Role, session: Option<Arc<Session>>) {
        let up = match session.is_some() {
            true => self.sessions_up.fetch_add(1, Ordering::AcqRel) + 1,
            false => self.sessions_up.fetch_sub(1, Ordering::AcqRel) - 1,
        };
        if role != Role::Receiver {
            self.submitter.send_replace(session);
        }
        self.metrics.bound.set(i64::from(up == self.sessions()));
    }

    /// Sessions a bind keeps: one transceiver, or a transmitter and a receiver.
    fn sessions(&self) -> usize {
        match self.config.bind_mode {
            BindMode::Transceiver => 1,
            BindMode::Pair => 2,
        }
    }

    /// Why the bind is down: its last failure, or that it has not bound yet.
    pub fn down_reason(&self) -> Option<String> {
        if self.is_up() {
            return None;
        }
        if !self.switch.is_on() {
            return Some(format!(
                "{}: stopped by an operator",
                self.health.upstream()
            ));
        }
        Some(
            self.health
                .failure()
                .unwrap_or_else(|| format!("{}: not bound yet", self.health.upstream())),
        )
    }

    /// The bind's health: up while every session is.
    pub fn report(&self) -> ConnectorReport {
        self.health.report(Some(self.is_up()), self.switch.is_on())
    }

    /// Every session of the bind is up: it can submit and take receipts.
    pub fn is_up(&self) -> bool {
        self.sessions_up.load(Ordering::Acquire) == self.sessions()
    }

    /// Connects (TCP or TLS) and binds with interface version 3.4.
    async fn open(&self, role: Role) -> Result<(Arc<Session>, mpsc::Receiver<Command>), OpenError> {
        let address = (self.config.host.as_str(), self.config.port);
        // A host that drops the SYN, or a port that never speaks TLS, must
        // not hold the bind for ever: each step gets a response's time.
        let patience = Duration::from_secs(self.config.response_timeout_secs);
        let in_time = |step| move |_| OpenError::TimedOut(step, patience);
        let tcp = tokio::time::timeout(patience, TcpStream::connect(address))
            .await
            .map_err(in_time("connecting"))?
            .map_err(OpenError::Connect)?;
        // Submits are small and latency-bound; never wait for Nagle.
        tcp.set_nodelay(true).map_err(OpenError::Connect)?;
        let timing = Timing {
            response_timeout: Duration::from_secs(self.config.response_timeout_secs),
            enquire_link: Duration::from_secs(self.config.enquire_link_secs.max(1)),
        };
        let (session, requests) = match &self.tls {
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from(self.config.host.clone())
                    .map_err(OpenError::ServerName)?;
                let stream = tokio::time::timeout(patience, tls.connect(name, tcp))
                    .await
                    .map_err(in_time("TLS handshake"))?
                    .map_err(OpenError::Handshake)?;
                Session::start(stream, timing)
            }
            None => Session::start(tcp, timing),
        };
        let answer = session.request(self.bind_pdu(role)?).await;
        let refusal = match answer {
            Ok(response) if u32::from(response.status()) == status::OK => None,
            Ok(response) => Some(OpenError::Refused(u32::from(response.status()))),
            Err(e) => Some(OpenError::Session(e)),
        };
        if let Some(refusal) = refusal {
            session.close();
            return Err(refusal);
        }
        Ok((session, requests))
    }

    /// The bind request for `role`, as SMPP 3.4.
    fn bind_pdu(&self, role: Role) -> Result<Pdu, FieldError> {
        let (system_id, password, system_type) = (
            octets("system_id", &self.config.system_id)?,
            octets("password", &self.password)?,
            octets("system_type", &self.config.system_type)?,
        );
        // The three bind PDUs have the same fields and no common type
        // rusmpp exports; address TON/NPI stay at their default, Unknown.
        macro_rules! bind_as {
            ($pdu:ident) => {
                $pdu::builder()
                    .system_id(system_id)
                    .password(password)
                    .system_type(system_type)
                    .interface_version(InterfaceVersion::Smpp3_4)
                    .build()
                    .into()
            };
        }
        Ok(match role {
            Role::Transceiver => bind_as!(BindTransceiver),
            Role::Transmitter => bind_as!(BindTransmitter),
            Role::Receiver => bind_as!(BindReceiver),
        })
    }

    /// Serves a bound session until it drops (false) or `stop` unbinds it (true).
    async fn serve(
        &self,
        role: Role,
        session: &Arc<Session>,
        mut requests: mpsc::Receiver<Command>,
        inbound: &mpsc::Sender<Delivered>,
        stop: &CancellationToken,
    ) -> Ended {
        loop {
            let request = tokio::select! {
                request = requests.recv() => request,
                () = stop.cancelled() => {
                    Self::unbind(session).await;
                    return Ended::Shutdown;
                }
                () = self.switch.until_off() => {
                    let stopping = tokio::select! {
                        () = self.drain(role) => Ended::Stopped,
                        () = stop.cancelled() => Ended::Shutdown,
                    };
                    Self::unbind(session).await;
                    return stopping;
                }
            };
            let Some(command) = request else {
                return Ended::Lost;
            };
            let sequence_number = command.sequence_number();
            let (said, as_data_sm) = match command.pdu() {
                Some(Pdu::DeliverSm(sm)) => (smpp::inbound::parse(sm), false),
                // SMPP 3.4 §4.7: an SMSC may send receipts and handsets'
                // texts as data_sm too.
                Some(Pdu::DataSm(sm)) => (smpp::inbound::parse_data_sm(sm), true),
                Some(Pdu::Unbind) => {
                    tracing::warn!(smsc = %self.labels.smsc, bind = %self.labels.bind, "SMSC unbound us");
                    session.respond(sequence_number, CommandStatus::EsmeRok, Pdu::UnbindResp);
                    session.close();
                    return Ended::Lost;
                }
                // The one request SMPP 3.4 defines without a response.
                Some(Pdu::AlertNotification(_)) => continue,
                // SMPP 3.4 §4.3: a request we do not handle gets a
                // generic_nack; an SMSC would otherwise wait for an
                // answer that never comes.
                _ => {
                    tracing::warn!(smsc = %self.labels.smsc, bind = %self.labels.bind, command_id = ?command.id(), "SMSC sent a command we do not handle; answered generic_nack");
                    session.respond(
                        sequence_number,
                        CommandStatus::EsmeRinvcmdid,
                        Pdu::GenericNack,
                    );
                    continue;
                }
            };
            let delivered = Delivered {
                smsc: self.smsc,
                metrics: self.metrics.clone(),
                sequence_number,
                session: session.clone(),
                inbound: said,
                as_data_sm,
            };
            if inbound.send(delivered).await.is_err() {
                return Ended::Lost;
            }
        }
    }

    async fn unbind(session: &Session) {
        let _ = tokio::time::timeout(UNBIND_TIMEOUT, session.request(Pdu::Unbind)).await;
        session.close();
    }

    /// Before a stopped SMSC is unbound: the messages under way finish,
    /// every part answered (up to `DRAIN_TIMEOUT`), and no new one starts on
    /// this session, so that stopping loses no answer and cuts no message.
    async fn drain(&self, role: Role) {
        if role == Role::Receiver {
            return;
        }
        let _no_message = tokio::time::timeout(DRAIN_TIMEOUT, self.messages.write()).await;
        self.submitter.send_replace(None);
    }

    /// Held while one message's parts are submitted (see `messages`).
    pub async fn message(&self) -> RwLockReadGuard<'_, ()> {
        self.messages.read().await
    }
}

/// The back-off after a session that was up for `up`: one that stayed up
/// `max` or longer starts it over from `min`; one the SMSC dropped sooner
/// (a bind accepted, then closed: too many sessions, a suspended account)
/// keeps it growing, lest the bind hammer the SMSC every `min`.
fn backoff_after_session(
    backoff: Duration,
    up: Duration,
    min: Duration,
    max: Duration,
) -> Duration {
    if up >= max { min } else { backoff }
}

#[cfg(test)]
mod backoff_tests {
    use super::*;

    #[test]
    fn a_session_dropped_soon_after_its_bind_keeps_the_back_off_growing() {
        let (min, max) = (Duration::from_millis(125), Duration::from_secs(30));
        let grown = Duration::from_secs(4);
        assert_eq!(
            backoff_after_session(grown, Duration::from_millis(50), min, max),
            grown,
            "closed at once after its bind"
        );
        assert_eq!(
            backoff_after_session(grown, Duration::from_secs(30), min, max),
            min,
            "a session that stayed up starts over"
        );
    }
}

#[cfg(test)]
mod tests {
    use smpp::testing::{pdu, read_pdu};
    use tokio::{
        io::AsyncWriteExt,
        net::{TcpListener, TcpStream},
    };

    use super::*;

    /// A bind (more config lines in `extra`) bound as a transceiver to a
    /// scripted SMSC, with the SMSC's end of the connection.
    struct Scripted {
        bind: Arc<Bind>,
        smsc: TcpStream,
        /// Where the bind connects again.
        listener: TcpListener,
        /// What the SMSC's deliver_sm and data_sm said.
        inbound: mpsc::Receiver<Delivered>,
        stop: CancellationToken,
        running: tokio::task::JoinHandle<()>,
    }

    impl Scripted {
        async fn bound(extra: &str) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("listen");
            let port = listener.local_addr().expect("addr").port();
            let config: Smsc = toml::from_str(&format!(
                "host = \"127.0.0.1\"\nport = {port}\nsystem_id = \"sluice\"\n{extra}"
            ))
            .expect("config");
            let bind = Arc::new(Bind::new(
                0,
                0,
                Arc::new(config),
                "pw".into(),
                None,
                Arc::new(Metrics::default()),
                Arc::default(),
            ));
            let (tx, inbound) = mpsc::channel(1);
            let stop = CancellationToken::new();
            let running = tokio::spawn(bind.clone().run(tx, stop.clone()));
            let smsc = accept_bind(&listener, &bind).await;
            Self {
                bind,
                smsc,
                inbound,
                listener,
                stop,
                running,
            }
        }

        /// Stops the bind, answering its unbind so that shutdown does not
        /// wait for its timeout.
        async fn stop(mut self) {
            self.stop.cancel();
            let (id, seq) = next_request(&mut self.smsc).await;
            assert_eq!(id, 0x0000_0006, "unbind");
            let resp = pdu(0x8000_0006, 0, seq, b"");
            self.smsc.write_all(&resp).await.expect("unbind resp");
            self.running.await.expect("bind task");
        }
    }

    /// The bind's next connection on `listener`, its bind_transceiver
    /// answered OK, once the bind says it is bound.
    async fn accept_bind(listener: &TcpListener, bind: &Bind) -> TcpStream {
        let (mut smsc, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
            .await
            .expect("connected within 5 s")
            .expect("accept");
        let (id, _, seq) = read_pdu(&mut smsc).await;
        assert_eq!(id, 0x0000_0009, "bind_transceiver");
        let resp = pdu(0x8000_0009, 0, seq, b"smsc\0");
        smsc.write_all(&resp).await.expect("bind resp");
        tokio::time::timeout(Duration::from_secs(5), async {
            while !bind.is_bound() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("bound within 5 s");
        smsc
    }

    /// The next PDU from the bind other than an enquire_link, which is
    /// answered.
    async fn next_request(smsc: &mut TcpStream) -> (u32, u32) {
        loop {
            let (id, _, seq) = read_pdu(smsc).await;
            if id != 0x0000_0015 {
                return (id, seq);
            }
            let resp = pdu(0x8000_0015, 0, seq, b"");
            smsc.write_all(&resp).await.expect("enquire_link resp");
        }
    }

    /// The next submit_sm's sequence number, read within 5 s.
    async fn next_submit(smsc: &mut TcpStream) -> u32 {
        let (id, seq) = tokio::time::timeout(Duration::from_secs(5), next_request(smsc))
            .await
            .expect("no submit_sm within 5 s");
        assert_eq!(id, 0x0000_0004, "submit_sm");
        seq
    }

    #[tokio::test]
    async fn an_unknown_command_from_the_smsc_is_answered_generic_nack() {
        let mut script = Scripted::bound("").await;
        let (bind, smsc) = (&script.bind, &mut script.smsc);
        // A well-formed header with a command id SMPP does not define.
        let unknown = pdu(0x0000_0999, 0, 0x7777, b"");
        smsc.write_all(&unknown).await.expect("unknown command");
        let answer = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let (id, status, seq) = read_pdu(smsc).await;
                if id == 0x8000_0000 {
                    return (status, seq);
                }
            }
        })
        .await
        .expect("no generic_nack within 5 s");
        assert_eq!(answer, (0x0000_0003, 0x7777), "ESME_RINVCMDID");
        assert!(bind.is_bound(), "the session carries on");
        script.stop().await;
    }

    /// `sm` submitted on a task of its own, with 30 s to go.
    fn submit_in_background(
        bind: &Arc<Bind>,
        sm: &Frame,
    ) -> tokio::task::JoinHandle<Result<String, SubmitError>> {
        let (bind, sm) = (bind.clone(), sm.clone());
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            bind.submit_one(&sm, deadline).await
        })
    }

    /// A message of three parts submitted on a task of its own, with 30 s
    /// to go.
    fn three_parts_in_background(
        bind: &Arc<Bind>,
    ) -> tokio::task::JoinHandle<Vec<Result<String, SubmitError>>> {
        let bind = bind.clone();
        let sm = Frame::new(rusmpp::pdus::SubmitSm::builder().build());
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            bind.submit_parts(&[sm.clone(), sm.clone(), sm], deadline)
                .await
        })
    }

    /// ESME_RINVBNDSTS: the SMSC takes the session as bound no more. The
    /// message was not taken (unsent, no attempt), and the bind binds again.
    #[tokio::test]
    async fn a_session_the_smsc_says_is_not_bound_is_bound_again() {
        let mut script = Scripted::bound("reconnect_min_ms = 10").await;
        let sm = Frame::new(rusmpp::pdus::SubmitSm::builder().build());
        let submitted = submit_in_background(&script.bind, &sm);
        let (id, seq) = next_request(&mut script.smsc).await;
        assert_eq!(id, 0x0000_0004, "submit_sm");
        let resp = pdu(0x8000_0004, 0x0000_0004, seq, b"\0");
        script.smsc.write_all(&resp).await.expect("submit resp");
        let answer = submitted.await.expect("submit");
        assert!(
            matches!(&answer, Err(SubmitError::Unsent { .. })),
            "not taken, not a failure: {answer:?}"
        );
        script.smsc = accept_bind(&script.listener, &script.bind).await;
        script.stop().await;
    }

    #[tokio::test]
    async fn a_submit_finding_the_window_full_gives_up_at_its_deadline() {
        let mut script = Scripted::bound("window = 1").await;
        let sm = Frame::new(rusmpp::pdus::SubmitSm::builder().build());
        let first = submit_in_background(&script.bind, &sm);
        let (id, first_seq) = next_request(&mut script.smsc).await;
        assert_eq!(id, 0x0000_0004, "submit_sm");

        // The one slot is taken by the unanswered first submit.
        let second = (script.bind).submit_one(&sm, Instant::now() + Duration::from_millis(100));
        let second = tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("the submit gave up long after its deadline");
        assert!(
            matches!(&second, Err(SubmitError::Unsent { reply, .. }) if reply == "SMPP window full"),
            "{second:?}"
        );

        let resp = pdu(0x8000_0004, 0, first_seq, b"first\0");
        script.smsc.write_all(&resp).await.expect("submit resp");
        assert_eq!(first.await.expect("first"), Ok("first".to_owned()));
        // Its slot is free again.
        let third = submit_in_background(&script.bind, &sm);
        let (id, seq) = next_request(&mut script.smsc).await;
        assert_eq!(id, 0x0000_0004, "submit_sm");
        let resp = pdu(0x8000_0004, 0, seq, b"third\0");
        script.smsc.write_all(&resp).await.expect("submit resp");
        assert_eq!(third.await.expect("third"), Ok("third".to_owned()));
        script.stop().await;
    }

    /// A message's parts go out together, not each after the one before is
    /// answered, up to half the window at a time; each gets its id.
    #[tokio::test]
    async fn a_messages_parts_are_written_together_within_half_the_window() {
        let mut script = Scripted::bound("window = 4").await;
        let submitted = three_parts_in_background(&script.bind);
        // Two parts, half the window of 4, before either is answered.
        let first = next_submit(&mut script.smsc).await;
        let second = next_submit(&mut script.smsc).await;
        for (seq, id) in [(first, "1"), (second, "2")] {
            let resp = pdu(0x8000_0004, 0, seq, format!("{id}\0").as_bytes());
            script.smsc.write_all(&resp).await.expect("submit resp");
        }
        let third = next_submit(&mut script.smsc).await;
        let resp = pdu(0x8000_0004, 0, third, b"3\0");
        script.smsc.write_all(&resp).await.expect("submit resp");
        let ids: Vec<_> = submitted.await.expect("submit").into_iter().collect();
        assert_eq!(ids, ["1", "2", "3"].map(|id| Ok(id.to_owned())));
        script.stop().await;
    }

    /// Once a part fails, the message's later parts are not sent: they
    /// could only be billed for a text that is sent again.
    #[tokio::test]
    async fn the_parts_after_a_failed_one_are_not_sent() {
        let mut script = Scripted::bound("window = 2").await;
        let submitted = three_parts_in_background(&script.bind);
        // A window of 2 takes one part at a time: the first is refused.
        let first = next_submit(&mut script.smsc).await;
        let resp = pdu(0x8000_0004, 0x45, first, b"\0");
        script.smsc.write_all(&resp).await.expect("submit resp");
        let answers = submitted.await.expect("submit");
        assert!(
            matches!(&answers[0], Err(SubmitError::Refused { status: 0x45, .. })),
            "{answers:?}"
        );
        assert!(
            answers[1..]
                .iter()
                .all(|a| matches!(a, Err(SubmitError::Unsent { .. }))),
            "{answers:?}"
        );
        // The next PDU the SMSC reads is the unbind, not a later part.
        script.stop().await;
    }

    /// A port that takes the connection but never answers the TLS handshake
    /// does not hold the bind: it gives up after a response's time and
    /// connects again, and `/readyz` is told why.
    #[tokio::test]
    async fn a_tls_handshake_that_never_answers_is_given_up_and_tried_again() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("listen");
        let port = listener.local_addr().expect("addr").port();
        let config: Smsc = toml::from_str(&format!(
            "host = \"127.0.0.1\"\nport = {port}\nsystem_id = \"sluice\"\ntls = true\n\
             response_timeout_secs = 1\nreconnect_min_ms = 10\n"
        ))
        .expect("config");
        let tls = mail_send::smtp::tls::build_tls_connector(true).expect("TLS connector");
        let bind = Arc::new(Bind::new(
            0,
            0,
            Arc::new(config),
            "pw".into(),
            Some(tls),
            Arc::new(Metrics::default()),
            Arc::default(),
        ));
        let (tx, _rx) = mpsc::channel(1);
        let stop = CancellationToken::new();
        let running = tokio::spawn(bind.clone().run(tx, stop.clone()));
        let accept = async || {
            let accepted = tokio::time::timeout(Duration::from_secs(5), listener.accept());
            accepted
                .await
                .expect("connected within 5 s")
                .expect("accept")
                .0
        };
        let _silent = accept().await;
        let _again = accept().await;
        let error = bind.report().last_error.map(|(e, _)| e).unwrap_or_default();
        assert!(
            error.contains("TLS handshake: no answer within 1s"),
            "{error}"
        );
        stop.cancel();
        running.await.expect("bind task");
    }

    /// A receipt an SMSC sends as a data_sm (SMPP 3.4 §4.7) is read like a
    /// deliver_sm and answered with a data_sm_resp, not refused as unknown.
    #[tokio::test]
    async fn a_receipt_sent_as_data_sm_is_read_and_answered_data_sm_resp() {
        let mut script = Scripted::bound("").await;
        let mut body = b"\0\x01\x01491\0\x01\x01123\0\x04\0\0".to_vec();
        body.extend([0x00, 0x1E, 0x00, 0x04]);
        body.extend(b"abc\0");
        body.extend([0x04, 0x27, 0x00, 0x01, 0x02]);
        let data_sm = pdu(0x0000_0103, 0, 61, &body);
        script.smsc.write_all(&data_sm).await.expect("data_sm");
        let said = tokio::time::timeout(Duration::from_secs(5), script.inbound.recv()).await;
        let said = said.expect("read within 5 s").expect("the bind runs");
        let Inbound::Receipt(receipt) = &said.inbound else {
            panic!("not a receipt: {:?}", said.inbound);
        };
        assert_eq!(
            (receipt.id.as_str(), receipt.stat.as_str()),
            ("abc", "DELIVRD")
        );
        said.answer(CommandStatus::EsmeRok);
        let answer = tokio::time::timeout(Duration::from_secs(5), next_request(&mut script.smsc));
        assert_eq!(
            answer.await.expect("answered"),
            (0x8000_0103, 61),
            "data_sm_resp"
        );
        script.stop().await;
    }
}
