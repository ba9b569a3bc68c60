//! The project's own fake SMSC: real SMPP 3.4 over loopback (127.0.0.1, an
//! ephemeral port), on its own tokio runtime in a background thread, so that
//! plain `#[test]` functions can point the real daemon at it.
//!
//! It binds transmitters, receivers and transceivers (checking system_id and
//! password when accounts are configured), answers `submit_sm` with message
//! ids, sends delivery receipts and mobile-originated messages as
//! `deliver_sm`, and records everything it received and sent so a test can
//! assert on it byte for byte. [`SmscBehaviour`] injects the faults a real
//! SMSC shows: throttling, queue full, per-destination permanent errors,
//! dropped connections with submits in flight, stalls, garbage on the wire,
//! receipts before the `submit_sm_resp`, held or delayed receipts.
//!
//! Submits are numbered from 1 across all connections of one fake (the
//! "Nth submit" of the knobs); one-shot faults fire once, so a client that
//! reconnects afterwards finds a healthy SMSC.
//!
//! [`RawEsme`] is a minimal client over the same codec for testing peers
//! without the daemon.

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    str::FromStr,
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use rusmpp::{
    Command, CommandId, CommandStatus, Pdu,
    encode::{Encode, Length},
    pdus::{
        BindReceiverResp, BindTransceiver, BindTransceiverResp, BindTransmitterResp, DeliverSm,
        DeliverSmResp, SubmitSm, SubmitSmResp,
    },
    tlvs::{MessageDeliveryRequestTlvValue, TlvValue},
    tokio_codec::CommandCodec,
    types::{AnyOctetString, COctetString, OctetString},
    values::{
        DataCoding, EsmClass, InterfaceVersion, MessagePayload, MessageState, Npi,
        RegisteredDelivery, Ton,
    },
};
use tokio::{net::TcpStream, sync::mpsc};
use tokio_util::{codec::Framed, sync::CancellationToken};

/// SMPP command status values the fake answers with.
pub mod status {
    pub const OK: u32 = 0x00;
    pub const INVCMDLEN: u32 = 0x02;
    pub const INVCMDID: u32 = 0x03;
    pub const INVBNDSTS: u32 = 0x04;
    pub const ALYBND: u32 = 0x05;
    pub const INVDSTADR: u32 = 0x0B;
    pub const BINDFAIL: u32 = 0x0D;
    pub const INVPASWD: u32 = 0x0E;
    pub const MSGQFUL: u32 = 0x14;
    pub const THROTTLED: u32 = 0x58;
}

/// How `submit_sm_resp` message ids are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MessageIds {
    /// `2684354561`
    #[default]
    Decimal,
    /// `A0000001`
    UpperHex,
    /// `a0000001`
    LowerHex,
}

impl MessageIds {
    /// Ids count up from 0xA000_0000 so that the hex forms contain letters.
    pub fn format(self, n: u64) -> String {
        match self {
            Self::Decimal => n.to_string(),
            Self::UpperHex => format!("{n:X}"),
            Self::LowerHex => format!("{n:x}"),
        }
    }
}

/// What a delivery receipt carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReceiptFormat {
    /// `receipted_message_id` (0x001E) and `message_state` (0x0427) TLVs and
    /// the classic `id:.. stat:..` text.
    #[default]
    TlvAndText,
    /// The classic text only, no TLVs (as many SMPP 3.4 SMSCs do).
    TextOnly,
}

/// The final state a receipt reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FinalState {
    #[default]
    Delivered,
    Undeliverable,
    Rejected,
    Expired,
}

impl FinalState {
    /// The `stat:` word of the receipt text.
    pub fn stat(self) -> &'static str {
        match self {
            Self::Delivered => "DELIVRD",
            Self::Undeliverable => "UNDELIV",
            Self::Rejected => "REJECTD",
            Self::Expired => "EXPIRED",
        }
    }

    /// The `message_state` TLV value.
    pub fn message_state(self) -> u8 {
        match self {
            Self::Delivered => 2,
            Self::Expired => 3,
            Self::Undeliverable => 5,
            Self::Rejected => 8,
        }
    }

    /// The `err:` field of the receipt text.
    pub fn err(self) -> &'static str {
        match self {
            Self::Delivered => "000",
            _ => "001",
        }
    }

    fn as_rusmpp(self) -> MessageState {
        match self {
            Self::Delivered => MessageState::Delivered,
            Self::Expired => MessageState::Expired,
            Self::Undeliverable => MessageState::Undeliverable,
            Self::Rejected => MessageState::Rejected,
        }
    }
}

/// Bytes the fake writes where a PDU should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Garbage {
    /// A header announcing `command_length` 7 (less than a header).
    CommandLength7,
    /// A well-formed 16-byte header with command id 0x0000_0999.
    BogusCommandId,
    /// These bytes, as they are.
    Bytes(Vec<u8>),
}

impl Garbage {
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Self::CommandLength7 => vec![0, 0, 0, 7, 0xde, 0xad, 0xbe],
            Self::BogusCommandId => {
                let mut b = Vec::with_capacity(16);
                b.extend_from_slice(&16u32.to_be_bytes());
                b.extend_from_slice(&0x0000_0999u32.to_be_bytes());
                b.extend_from_slice(&0u32.to_be_bytes());
                b.extend_from_slice(&0x7777u32.to_be_bytes());
                b
            }
            Self::Bytes(b) => b.clone(),
        }
    }
}

/// Drop the connection when the `nth` submit arrives, leaving it and the
/// `unanswered - 1` submits before it (on that connection) without a
/// response. The held-back ones only exist for a client whose window is
/// larger than `unanswered - 1`; a client waiting for them never sends the
/// `nth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DropAfter {
    pub nth: u64,
    pub unanswered: u64,
}

/// From the submit after the `after_submits`th on, answer no submit for
/// `duration` (they get no response at all, ever; `enquire_link` is still
/// answered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    pub after_submits: u64,
    pub duration: Duration,
}

/// How the fake behaves. Build with [`SmscBehaviour::default`] and the
/// chained setters; change it while running with [`FakeSmsc::configure`].
#[derive(Debug, Clone, Default)]
pub struct SmscBehaviour {
    /// Accepted `(system_id, password)`; empty accepts any credentials. An
    /// unknown system_id is answered ESME_RBINDFAIL, a wrong password
    /// ESME_RINVPASWD.
    pub accounts: Vec<(String, String)>,
    /// Answer every bind ESME_RBINDFAIL.
    pub refuse_binds: bool,
    pub message_ids: MessageIds,
    /// How the id is written inside the receipt text, when it differs from
    /// the `submit_sm_resp` (a known SMSC quirk: hex in the response,
    /// decimal in the receipt). The TLV always carries the response's form.
    pub receipt_text_ids: Option<MessageIds>,
    pub receipts: ReceiptFormat,
    /// Write the receipt before the `submit_sm_resp`, on the same
    /// connection (when it is a transceiver).
    pub receipt_before_resp: bool,
    pub receipt_delay: Duration,
    /// Keep receipts until [`FakeSmsc::release_receipts`].
    pub hold_receipts: bool,
    /// Final state per destination address; others get `default_state`.
    pub final_states: HashMap<String, FinalState>,
    pub default_state: FinalState,
    /// A permanent error status per destination address (e.g.
    /// [`status::INVDSTADR`]); such submits get no message id and no receipt.
    pub submit_errors: HashMap<String, u32>,
    /// Answer `throttle_status` to this many next submits.
    pub throttle_next: u64,
    /// Answer `throttle_status` to every K-th submit.
    pub throttle_every: Option<u64>,
    /// ESME_RTHROTTLED (default) or ESME_RMSGQFUL.
    pub throttle_status: Option<u32>,
    pub drop_after: Option<DropAfter>,
    pub stall: Option<Stall>,
    /// After answering the Nth submit, write these bytes on its connection.
    pub garbage_after: Option<(u64, Garbage)>,
}

impl SmscBehaviour {
    pub fn account(mut self, system_id: &str, password: &str) -> Self {
        self.accounts.push((system_id.into(), password.into()));
        self
    }
    pub fn refuse_binds(mut self) -> Self {
        self.refuse_binds = true;
        self
    }
    pub fn message_ids(mut self, ids: MessageIds) -> Self {
        self.message_ids = ids;
        self
    }
    pub fn receipt_text_ids(mut self, ids: MessageIds) -> Self {
        self.receipt_text_ids = Some(ids);
        self
    }
    pub fn receipts(mut self, format: ReceiptFormat) -> Self {
        self.receipts = format;
        self
    }
    pub fn receipt_before_resp(mut self) -> Self {
        self.receipt_before_resp = true;
        self
    }
    pub fn receipt_delay(mut self, delay: Duration) -> Self {
        self.receipt_delay = delay;
        self
    }
    pub fn hold_receipts(mut self) -> Self {
        self.hold_receipts = true;
        self
    }
    pub fn final_state(mut self, destination: &str, state: FinalState) -> Self {
        self.final_states.insert(destination.into(), state);
        self
    }
    pub fn submit_error(mut self, destination: &str, status: u32) -> Self {
        self.submit_errors.insert(destination.into(), status);
        self
    }
    /// Answer `status` (e.g. [`status::THROTTLED`]) to the next `n` submits.
    pub fn throttle_next(mut self, n: u64, status: u32) -> Self {
        self.throttle_next = n;
        self.throttle_status = Some(status);
        self
    }
    /// Answer `status` to every `k`-th submit.
    pub fn throttle_every(mut self, k: u64, status: u32) -> Self {
        self.throttle_every = Some(k.max(1));
        self.throttle_status = Some(status);
        self
    }
    pub fn drop_after(mut self, nth: u64, unanswered: u64) -> Self {
        self.drop_after = Some(DropAfter {
            nth,
            unanswered: unanswered.max(1),
        });
        self
    }
    pub fn stall(mut self, after_submits: u64, duration: Duration) -> Self {
        self.stall = Some(Stall {
            after_submits,
            duration,
        });
        self
    }
    pub fn garbage_after(mut self, nth: u64, garbage: Garbage) -> Self {
        self.garbage_after = Some((nth, garbage));
        self
    }
}

/// How a connection is bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindMode {
    Transmitter,
    Receiver,
    Transceiver,
}

impl BindMode {
    pub fn can_submit(self) -> bool {
        self != Self::Receiver
    }
    pub fn can_receive(self) -> bool {
        self != Self::Transmitter
    }
}

/// One bind attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindRecord {
    /// 1-based connection index.
    pub connection: usize,
    pub mode: BindMode,
    pub system_id: String,
    pub password: String,
    pub interface_version: u8,
    pub status: u32,
}

/// One `submit_sm` as the fake received it, and what it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedSm {
    /// 1-based submit number across the fake.
    pub number: u64,
    /// 1-based connection index.
    pub connection: usize,
    /// The system_id that connection bound with (empty when unbound).
    pub system_id: String,
    pub sequence_number: u32,
    pub service_type: String,
    pub source_addr: String,
    pub source_ton: u8,
    pub source_npi: u8,
    pub destination_addr: String,
    pub dest_ton: u8,
    pub dest_npi: u8,
    pub esm_class: u8,
    pub protocol_id: u8,
    pub registered_delivery: u8,
    pub data_coding: u8,
    /// Exactly the `short_message` octets.
    pub short_message: Vec<u8>,
    /// The `message_payload` TLV (0x0424), if any.
    pub message_payload: Option<Vec<u8>>,
    /// Every TLV as (tag, value octets), in order.
    pub tlvs: Vec<(u16, Vec<u8>)>,
    /// The status answered; `None` when no response was sent.
    pub status: Option<u32>,
    /// The message id answered (ESME_ROK only).
    pub message_id: Option<String>,
}

impl ReceivedSm {
    /// The message octets: `message_payload` when present, else `short_message`.
    pub fn body(&self) -> &[u8] {
        self.message_payload
            .as_deref()
            .unwrap_or(&self.short_message)
    }

    /// Whether the submit asked for a delivery receipt.
    pub fn wants_receipt(&self) -> bool {
        self.registered_delivery & 0x03 != 0
    }
}

/// What a `deliver_sm` sent by the fake was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliverKind {
    Receipt {
        /// The id as the `submit_sm_resp` gave it (and the TLV carries).
        message_id: String,
        /// The id as the text carries it.
        text_id: String,
        /// The destination of the original submit.
        destination_addr: String,
        state: FinalState,
        with_tlvs: bool,
    },
    Mo {
        from: String,
        to: String,
    },
}

/// One `deliver_sm` the fake wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentDeliver {
    pub connection: usize,
    pub sequence_number: u32,
    pub kind: DeliverKind,
    pub esm_class: u8,
    pub data_coding: u8,
    pub short_message: Vec<u8>,
    /// The status of the `deliver_sm_resp`, once it came back.
    pub response: Option<u32>,
}

impl SentDeliver {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.short_message).into_owned()
    }
}

/// Everything the fake has seen and done.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// TCP connections accepted.
    pub connections: u64,
    pub binds: Vec<BindRecord>,
    pub received: Vec<ReceivedSm>,
    pub delivers: Vec<SentDeliver>,
    /// Submits answered with the throttle status.
    pub throttled: u64,
    pub enquire_links: u64,
    pub unbinds: u64,
    /// `generic_nack` PDUs received from clients (status of each).
    pub generic_nacks: Vec<u32>,
    /// Requests the fake answered with a `generic_nack`.
    pub unknown_commands: u64,
    /// Input the codec could not decode (the connection is then closed).
    pub malformed: u64,
    /// Times garbage was written.
    pub garbage_sent: u64,
}

impl Observed {
    /// Successful binds.
    pub fn bound(&self) -> usize {
        self.binds.iter().filter(|b| b.status == status::OK).count()
    }
    pub fn receipts(&self) -> impl Iterator<Item = &SentDeliver> {
        self.delivers
            .iter()
            .filter(|d| matches!(d.kind, DeliverKind::Receipt { .. }))
    }
    pub fn mos(&self) -> impl Iterator<Item = &SentDeliver> {
        self.delivers
            .iter()
            .filter(|d| matches!(d.kind, DeliverKind::Mo { .. }))
    }
}

/// A `deliver_sm` waiting to be written to some receiver.
#[derive(Debug)]
struct Job {
    /// Only a receiver bound with this system_id may take it (`None`: any).
    system_id: Option<String>,
    pdu: DeliverSm,
    kind: DeliverKind,
}

enum Out {
    Deliver(Box<Job>),
    Unbind,
    Close,
}

struct Link {
    connection: usize,
    tx: mpsc::UnboundedSender<Out>,
    bound: Option<(String, BindMode)>,
}

#[derive(Default)]
struct State {
    behaviour: SmscBehaviour,
    observed: Observed,
    submits: u64,
    next_id: u64,
    links: Vec<Link>,
    /// Receipts/MOs waiting for a receiver to bind.
    pending: VecDeque<Job>,
    /// Receipts kept until `release_receipts`.
    held: Vec<Job>,
    stalled_until: Option<Instant>,
}

impl State {
    /// Hands `job` to a bound receiver (the `prefer`red connection first),
    /// or keeps it until one binds.
    fn route(&mut self, job: Job, prefer: Option<usize>) {
        let fits = |l: &Link| {
            l.bound.as_ref().is_some_and(|(id, mode)| {
                mode.can_receive() && job.system_id.as_ref().is_none_or(|want| want == id)
            })
        };
        let pick = self
            .links
            .iter()
            .filter(|l| fits(l))
            .find(|l| Some(l.connection) == prefer)
            .or_else(|| self.links.iter().find(|l| fits(l)));
        match pick {
            Some(link) => {
                if let Err(mpsc::error::SendError(Out::Deliver(job))) =
                    link.tx.send(Out::Deliver(Box::new(job)))
                {
                    self.pending.push_back(*job);
                }
            }
            None => self.pending.push_back(job),
        }
    }

    /// After a receiver bound: everything pending that it may take.
    fn flush_pending(&mut self) {
        let pending: Vec<Job> = self.pending.drain(..).collect();
        for job in pending {
            self.route(job, None);
        }
    }
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the state and wakes every waiter.
    fn update<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let r = f(&mut self.lock());
        self.changed.notify_all();
        r
    }
}

/// The fake SMSC; stops (closing every connection) on drop.
pub struct FakeSmsc {
    port: u16,
    shared: Arc<Shared>,
    stop: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

impl FakeSmsc {
    /// Listens on 127.0.0.1 on an ephemeral port and serves in a background
    /// thread with its own tokio runtime.
    pub fn start(behaviour: SmscBehaviour) -> Self {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("fake smsc: bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("fake smsc: non-blocking listener");
        let port = listener.local_addr().expect("fake smsc: local addr").port();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                behaviour,
                next_id: 0xA000_0000,
                ..State::default()
            }),
            changed: Condvar::new(),
        });
        let stop = CancellationToken::new();
        let thread = {
            let (shared, stop) = (shared.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("fake-smsc-{port}"))
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("fake smsc: tokio runtime");
                    runtime.block_on(accept_loop(listener, shared, stop));
                })
                .expect("fake smsc: spawn thread")
        };
        Self {
            port,
            shared,
            stop,
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Changes the behaviour while running (e.g. `|b| b.throttle_next = 3`).
    pub fn configure(&self, f: impl FnOnce(&mut SmscBehaviour)) {
        self.shared.update(|s| f(&mut s.behaviour));
    }

    /// A copy of everything seen so far.
    pub fn observed(&self) -> Observed {
        self.shared.lock().observed.clone()
    }

    pub fn received(&self) -> Vec<ReceivedSm> {
        self.shared.lock().observed.received.clone()
    }

    pub fn receipts_sent(&self) -> Vec<SentDeliver> {
        self.shared.lock().observed.receipts().cloned().collect()
    }

    pub fn mo_sent(&self) -> Vec<SentDeliver> {
        self.shared.lock().observed.mos().cloned().collect()
    }

    pub fn binds(&self) -> Vec<BindRecord> {
        self.shared.lock().observed.binds.clone()
    }

    pub fn connections(&self) -> u64 {
        self.shared.lock().observed.connections
    }

    pub fn throttled(&self) -> u64 {
        self.shared.lock().observed.throttled
    }

    /// Connections currently bound.
    pub fn bound_now(&self) -> usize {
        self.shared
            .lock()
            .links
            .iter()
            .filter(|l| l.bound.is_some())
            .count()
    }

    /// Receipts held by `hold_receipts` and not released yet.
    pub fn held_receipts(&self) -> usize {
        self.shared.lock().held.len()
    }

    /// Sends every held receipt now (and stops holding new ones).
    pub fn release_receipts(&self) {
        self.shared.update(|s| {
            s.behaviour.hold_receipts = false;
            for job in std::mem::take(&mut s.held) {
                s.route(job, None);
            }
        });
    }

    /// Sends the held receipts for these `submit_sm_resp` message ids now
    /// and keeps holding the others (and new ones); returns how many went.
    pub fn release_receipts_of(&self, message_ids: &[&str]) -> usize {
        self.shared.update(|s| {
            let (go, keep): (Vec<Job>, Vec<Job>) =
                std::mem::take(&mut s.held).into_iter().partition(|job| {
                    matches!(&job.kind, DeliverKind::Receipt { message_id, .. }
                        if message_ids.contains(&message_id.as_str()))
                });
            s.held = keep;
            let n = go.len();
            for job in go {
                s.route(job, None);
            }
            n
        })
    }

    /// Stop answering submits for `duration` from now.
    pub fn stall_for(&self, duration: Duration) {
        self.shared
            .update(|s| s.stalled_until = Some(Instant::now() + duration));
    }

    /// A mobile-originated message to any bound receiver or transceiver (or
    /// the first one that binds): `data_coding` 0 when every character is
    /// the same octet in ASCII and the GSM 03.38 default alphabet, UCS-2
    /// (0x08) otherwise; over 255 octets it travels in `message_payload`.
    pub fn send_mo(&self, from: &str, to: &str, text: &str) {
        let same_in_gsm =
            |c: char| matches!(c, '\n' | '\r' | ' '..='#' | '%'..='?' | 'A'..='Z' | 'a'..='z');
        let (data_coding, bytes) = if text.chars().all(same_in_gsm) {
            (0, text.as_bytes().to_vec())
        } else {
            (8, text.encode_utf16().flat_map(u16::to_be_bytes).collect())
        };
        self.send_mo_raw(from, to, data_coding, &bytes);
    }

    /// A mobile-originated message with these exact octets.
    pub fn send_mo_raw(&self, from: &str, to: &str, data_coding: u8, bytes: &[u8]) {
        let builder = DeliverSm::builder()
            .source_addr_ton(Ton::International)
            .source_addr_npi(Npi::from(1))
            .source_addr(c_octets(from))
            .dest_addr_ton(Ton::Unknown)
            .dest_addr_npi(Npi::from(0))
            .destination_addr(c_octets(to))
            .esm_class(EsmClass::from(0))
            .data_coding(DataCoding::from(data_coding));
        let pdu = if bytes.len() <= 255 {
            builder
                .short_message(OctetString::from_slice(bytes).expect("≤ 255 octets"))
                .build()
        } else {
            builder
                .tlvs(vec![MessageDeliveryRequestTlvValue::MessagePayload(
                    MessagePayload::new(AnyOctetString::from_slice(bytes)),
                )])
                .build()
        };
        let job = Job {
            system_id: None,
            pdu,
            kind: DeliverKind::Mo {
                from: from.into(),
                to: to.into(),
            },
        };
        self.shared.update(|s| s.route(job, None));
    }

    /// Closes every connection at once, without unbind.
    pub fn drop_connections(&self) {
        self.shared.update(|s| {
            for link in &s.links {
                let _ = link.tx.send(Out::Close);
            }
        });
    }

    /// Sends `unbind` on every bound connection; each closes on the client's
    /// `unbind_resp`.
    pub fn unbind_all(&self) {
        self.shared.update(|s| {
            for link in s.links.iter().filter(|l| l.bound.is_some()) {
                let _ = link.tx.send(Out::Unbind);
            }
        });
    }

    /// Waits until `done` holds for what the fake observed, or panics after
    /// `timeout` saying `what` it waited for and what it had.
    pub fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&Observed) -> bool,
    ) -> Observed {
        let guard = self.shared.lock();
        let (guard, result) = self
            .shared
            .changed
            .wait_timeout_while(guard, timeout, |s| !done(&s.observed))
            .unwrap_or_else(PoisonError::into_inner);
        assert!(
            !result.timed_out(),
            "fake smsc: no {what} within {timeout:?}; it has {} connection(s), {} bind(s), {} submit(s), {} deliver_sm(s)",
            guard.observed.connections,
            guard.observed.binds.len(),
            guard.observed.received.len(),
            guard.observed.delivers.len(),
        );
        guard.observed.clone()
    }

    /// Waits for at least `count` received submits and returns them all.
    pub fn wait_for(&self, count: usize, timeout: Duration) -> Vec<ReceivedSm> {
        self.wait_until(&format!("{count} submit_sm"), timeout, |o| {
            o.received.len() >= count
        })
        .received
    }

    /// Waits for `count` receipts the client acknowledged (any status).
    pub fn wait_for_receipt_acks(&self, count: usize, timeout: Duration) -> Vec<SentDeliver> {
        self.wait_until(&format!("{count} acknowledged receipts"), timeout, |o| {
            o.receipts().filter(|d| d.response.is_some()).count() >= count
        })
        .receipts()
        .cloned()
        .collect()
    }

    /// Waits for `count` successful binds in total.
    pub fn wait_for_binds(&self, count: usize, timeout: Duration) {
        self.wait_until(&format!("{count} binds"), timeout, |o| o.bound() >= count);
    }
}

impl Drop for FakeSmsc {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn c_octets<const MIN: usize, const MAX: usize>(s: &str) -> COctetString<MIN, MAX> {
    COctetString::from_str(s)
        .unwrap_or_else(|e| panic!("fake smsc: {s:?} does not fit a C-octet string: {e:?}"))
}

async fn accept_loop(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("fake smsc: tokio listener");
    loop {
        let stream = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let _ = stream.set_nodelay(true);
        let (tx, rx) = mpsc::unbounded_channel();
        let connection = shared.update(|s| {
            s.observed.connections += 1;
            let connection = s.observed.connections as usize;
            s.links.push(Link {
                connection,
                tx,
                bound: None,
            });
            connection
        });
        let conn = Connection {
            id: connection,
            shared: shared.clone(),
            framed: Framed::new(stream, CommandCodec::new()),
            bound: None,
            sequence: 0,
            held_back: Vec::new(),
        };
        tokio::spawn(conn.run(rx, stop.child_token()));
    }
}

/// What the connection does after a command.
enum Flow {
    Continue,
    Close,
}

struct Connection {
    id: usize,
    shared: Arc<Shared>,
    framed: Framed<TcpStream, CommandCodec>,
    bound: Option<(String, BindMode)>,
    sequence: u32,
    /// Sequence numbers of submits left without a response (drop_after).
    held_back: Vec<u32>,
}

/// What to answer one submit.
enum Answer {
    /// No response at all.
    Nothing,
    /// No response, and close the connection.
    Drop,
    Status(u32),
    Accepted {
        message_id: String,
        receipt: Option<Box<Job>>,
        garbage: Option<Vec<u8>>,
    },
}

impl Connection {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Out>, stop: CancellationToken) {
        loop {
            let flow = tokio::select! {
                _ = stop.cancelled() => Flow::Close,
                out = rx.recv() => match out {
                    Some(Out::Deliver(job)) => self.deliver(*job).await,
                    Some(Out::Unbind) => {
                        let seq = self.next_sequence();
                        self.write(Command::new(CommandStatus::EsmeRok, seq, Pdu::Unbind)).await
                    }
                    Some(Out::Close) | None => Flow::Close,
                },
                frame = self.framed.next() => match frame {
                    None => Flow::Close,
                    Some(Ok(command)) => self.handle(command).await,
                    Some(Err(_)) => {
                        self.shared.update(|s| s.observed.malformed += 1);
                        let nack = Command::new(CommandStatus::from(status::INVCMDLEN), 0, Pdu::GenericNack);
                        let _ = self.write(nack).await;
                        Flow::Close
                    }
                },
            };
            if let Flow::Close = flow {
                break;
            }
        }
        // Whatever was queued for this connection goes to another receiver.
        rx.close();
        let id = self.id;
        self.shared.update(|s| {
            s.links.retain(|l| l.connection != id);
            while let Ok(out) = rx.try_recv() {
                if let Out::Deliver(job) = out {
                    s.route(*job, None);
                }
            }
        });
    }

    fn next_sequence(&mut self) -> u32 {
        self.sequence = self.sequence.wrapping_add(1).max(1);
        self.sequence
    }

    async fn write(&mut self, command: Command) -> Flow {
        match self.framed.send(command).await {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Close,
        }
    }

    /// Queues a `deliver_sm` in the write buffer and records it (not flushed).
    async fn feed_deliver(&mut self, job: Job) -> Flow {
        let sequence_number = self.next_sequence();
        let record = SentDeliver {
            connection: self.id,
            sequence_number,
            esm_class: u8::from(job.pdu.esm_class),
            data_coding: u8::from(job.pdu.data_coding),
            short_message: job.pdu.short_message().to_vec(),
            kind: job.kind,
            response: None,
        };
        let command = Command::new(CommandStatus::EsmeRok, sequence_number, job.pdu);
        if self.framed.feed(command).await.is_err() {
            return Flow::Close;
        }
        self.shared.update(|s| s.observed.delivers.push(record));
        Flow::Continue
    }

    async fn deliver(&mut self, job: Job) -> Flow {
        if let Flow::Close = self.feed_deliver(job).await {
            return Flow::Close;
        }
        match SinkExt::<Command>::flush(&mut self.framed).await {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Close,
        }
    }

    async fn handle(&mut self, command: Command) -> Flow {
        let seq = command.sequence_number();
        let id = command.id();
        match command.pdu() {
            Some(Pdu::BindTransmitter(b)) => {
                let creds = Credentials::of(&b.system_id, &b.password, b.interface_version);
                self.bind(seq, BindMode::Transmitter, creds).await
            }
            Some(Pdu::BindReceiver(b)) => {
                let creds = Credentials::of(&b.system_id, &b.password, b.interface_version);
                self.bind(seq, BindMode::Receiver, creds).await
            }
            Some(Pdu::BindTransceiver(b)) => {
                let creds = Credentials::of(&b.system_id, &b.password, b.interface_version);
                self.bind(seq, BindMode::Transceiver, creds).await
            }
            Some(Pdu::SubmitSm(sm)) => self.submit(seq, sm).await,
            Some(Pdu::DeliverSmResp(_)) => {
                let (conn, status) = (self.id, u32::from(command.status()));
                self.shared.update(|s| {
                    if let Some(d) = s.observed.delivers.iter_mut().rev().find(|d| {
                        d.connection == conn && d.sequence_number == seq && d.response.is_none()
                    }) {
                        d.response = Some(status);
                    }
                });
                Flow::Continue
            }
            Some(Pdu::EnquireLink) => {
                self.shared.update(|s| s.observed.enquire_links += 1);
                self.write(Command::new(
                    CommandStatus::EsmeRok,
                    seq,
                    Pdu::EnquireLinkResp,
                ))
                .await
            }
            Some(Pdu::Unbind) => {
                self.shared.update(|s| s.observed.unbinds += 1);
                let _ = self
                    .write(Command::new(CommandStatus::EsmeRok, seq, Pdu::UnbindResp))
                    .await;
                Flow::Close
            }
            Some(Pdu::UnbindResp) => Flow::Close,
            Some(Pdu::GenericNack) => {
                let status = u32::from(command.status());
                self.shared
                    .update(|s| s.observed.generic_nacks.push(status));
                Flow::Continue
            }
            _ if id.is_response() => Flow::Continue,
            _ => {
                self.shared.update(|s| s.observed.unknown_commands += 1);
                self.write(Command::new(
                    CommandStatus::from(status::INVCMDID),
                    seq,
                    Pdu::GenericNack,
                ))
                .await
            }
        }
    }

    async fn bind(&mut self, seq: u32, mode: BindMode, creds: Credentials) -> Flow {
        let Credentials {
            system_id,
            password,
            interface_version,
        } = creds;
        let conn = self.id;
        let already = self.bound.is_some();
        let status = self.shared.update(|s| {
            let status = if s.behaviour.refuse_binds {
                status::BINDFAIL
            } else if already {
                status::ALYBND
            } else if s.behaviour.accounts.is_empty() {
                status::OK
            } else {
                match s.behaviour.accounts.iter().find(|(id, _)| *id == system_id) {
                    None => status::BINDFAIL,
                    Some((_, pw)) if *pw != password => status::INVPASWD,
                    Some(_) => status::OK,
                }
            };
            s.observed.binds.push(BindRecord {
                connection: conn,
                mode,
                system_id: system_id.clone(),
                password,
                interface_version,
                status,
            });
            status
        });
        let ok = status == status::OK;
        let own_id = c_octets("fakesmsc");
        let version = ok.then_some(InterfaceVersion::Smpp3_4);
        let pdu: Pdu = match mode {
            BindMode::Transmitter => BindTransmitterResp::new(own_id, version).into(),
            BindMode::Receiver => BindReceiverResp::new(own_id, version).into(),
            BindMode::Transceiver => BindTransceiverResp::new(own_id, version).into(),
        };
        let flow = self
            .write(Command::new(CommandStatus::from(status), seq, pdu))
            .await;
        if ok {
            self.bound = Some((system_id.clone(), mode));
            self.shared.update(|s| {
                if let Some(link) = s.links.iter_mut().find(|l| l.connection == conn) {
                    link.bound = Some((system_id, mode));
                }
                s.flush_pending();
            });
        }
        flow
    }

    async fn submit(&mut self, seq: u32, sm: &SubmitSm) -> Flow {
        let conn = self.id;
        let bound = self.bound.clone();
        let mut received = received_sm(sm, conn, seq, bound.as_ref());
        let answer = self.shared.update(|s| {
            s.submits += 1;
            let number = s.submits;
            received.number = number;
            let answer = decide(s, &received, bound.as_ref(), self.held_back.len() as u64);
            match &answer {
                Answer::Nothing | Answer::Drop => {}
                Answer::Status(st) => received.status = Some(*st),
                Answer::Accepted { message_id, .. } => {
                    received.status = Some(status::OK);
                    received.message_id = Some(message_id.clone());
                }
            }
            s.observed.received.push(received);
            answer
        });
        match answer {
            Answer::Nothing => {
                self.held_back.push(seq);
                Flow::Continue
            }
            Answer::Drop => Flow::Close,
            Answer::Status(st) => {
                let resp = SubmitSmResp::builder().build();
                self.write(Command::new(CommandStatus::from(st), seq, resp))
                    .await
            }
            Answer::Accepted {
                message_id,
                receipt,
                garbage,
            } => {
                let resp = SubmitSmResp::builder()
                    .message_id(c_octets(&message_id))
                    .build();
                let resp = Command::new(CommandStatus::EsmeRok, seq, resp);
                let (before, delay, hold) = {
                    let s = self.shared.lock();
                    (
                        s.behaviour.receipt_before_resp,
                        s.behaviour.receipt_delay,
                        s.behaviour.hold_receipts,
                    )
                };
                let can_receive = bound.as_ref().is_some_and(|(_, m)| m.can_receive());
                match receipt.map(|job| *job) {
                    None => {}
                    // Written ahead of the response, in the same flush.
                    Some(job) if before && can_receive => {
                        if let Flow::Close = self.feed_deliver(job).await {
                            return Flow::Close;
                        }
                    }
                    // Held or routed before the response goes out, so that a
                    // client seeing the response sees the fake's state too; a
                    // receipt routed to this connection is written after it.
                    Some(job) if hold => self.shared.update(|s| s.held.push(job)),
                    Some(job) if delay.is_zero() => {
                        self.shared.update(|s| s.route(job, Some(conn)));
                    }
                    Some(job) => {
                        let shared = self.shared.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(delay).await;
                            shared.update(|s| {
                                if s.behaviour.hold_receipts {
                                    s.held.push(job);
                                } else {
                                    s.route(job, Some(conn));
                                }
                            });
                        });
                    }
                }
                if let Flow::Close = self.write(resp).await {
                    return Flow::Close;
                }
                if let Some(bytes) = garbage {
                    self.framed.write_buffer_mut().extend_from_slice(&bytes);
                    if SinkExt::<Command>::flush(&mut self.framed).await.is_err() {
                        return Flow::Close;
                    }
                    self.shared.update(|s| s.observed.garbage_sent += 1);
                }
                Flow::Continue
            }
        }
    }
}

/// What a bind PDU asks for.
struct Credentials {
    system_id: String,
    password: String,
    interface_version: u8,
}

impl Credentials {
    fn of(
        system_id: &COctetString<1, 16>,
        password: &COctetString<1, 9>,
        version: InterfaceVersion,
    ) -> Self {
        Self {
            system_id: system_id.to_string(),
            password: password.to_string(),
            interface_version: u8::from(version),
        }
    }
}

fn received_sm(
    sm: &SubmitSm,
    connection: usize,
    sequence_number: u32,
    bound: Option<&(String, BindMode)>,
) -> ReceivedSm {
    let mut message_payload = None;
    let tlvs = sm
        .tlvs()
        .iter()
        .map(|tlv| {
            if let Some(TlvValue::MessagePayload(p)) = tlv.value() {
                message_payload = Some(p.value.as_ref().to_vec());
            }
            let mut buf = vec![0u8; tlv.length()];
            let n = tlv.encode(&mut buf);
            buf.truncate(n);
            (
                u16::from(tlv.tag()),
                buf.get(4..).unwrap_or_default().to_vec(),
            )
        })
        .collect();
    ReceivedSm {
        number: 0,
        connection,
        system_id: bound.map(|(id, _)| id.clone()).unwrap_or_default(),
        sequence_number,
        service_type: sm.service_type.value().to_string(),
        source_addr: sm.source_addr.to_string(),
        source_ton: u8::from(sm.source_addr_ton),
        source_npi: u8::from(sm.source_addr_npi),
        destination_addr: sm.destination_addr.to_string(),
        dest_ton: u8::from(sm.dest_addr_ton),
        dest_npi: u8::from(sm.dest_addr_npi),
        esm_class: u8::from(sm.esm_class),
        protocol_id: sm.protocol_id,
        registered_delivery: u8::from(sm.registered_delivery),
        data_coding: u8::from(sm.data_coding),
        short_message: sm.short_message().to_vec(),
        message_payload,
        tlvs,
        status: None,
        message_id: None,
    }
}

/// What to answer submit `r` (already numbered), given the behaviour.
fn decide(
    s: &mut State,
    r: &ReceivedSm,
    bound: Option<&(String, BindMode)>,
    held_back: u64,
) -> Answer {
    if !bound.is_some_and(|(_, mode)| mode.can_submit()) {
        return Answer::Status(status::INVBNDSTS);
    }
    let n = r.number;
    let b = &s.behaviour;
    if let Some(d) = b.drop_after {
        if n == d.nth {
            return Answer::Drop;
        }
        if n + d.unanswered > d.nth && n < d.nth && held_back < d.unanswered - 1 {
            return Answer::Nothing;
        }
    }
    if let Some(stall) = b.stall
        && n == stall.after_submits + 1
    {
        s.stalled_until = Some(Instant::now() + stall.duration);
    }
    if s.stalled_until.is_some_and(|until| Instant::now() < until) {
        return Answer::Nothing;
    }
    let b = &mut s.behaviour;
    let throttle_status = b.throttle_status.unwrap_or(status::THROTTLED);
    if b.throttle_next > 0 {
        b.throttle_next -= 1;
        s.observed.throttled += 1;
        return Answer::Status(throttle_status);
    }
    if b.throttle_every.is_some_and(|k| n.is_multiple_of(k)) {
        s.observed.throttled += 1;
        return Answer::Status(throttle_status);
    }
    if let Some(st) = b.submit_errors.get(&r.destination_addr) {
        return Answer::Status(*st);
    }
    s.next_id += 1;
    let message_id = b.message_ids.format(s.next_id);
    let text_id = b
        .receipt_text_ids
        .unwrap_or(b.message_ids)
        .format(s.next_id);
    let state = b
        .final_states
        .get(&r.destination_addr)
        .copied()
        .unwrap_or(b.default_state);
    // registered_delivery 1: success or failure; 2: failure only.
    let wanted = match r.registered_delivery & 0x03 {
        1 => true,
        2 => state != FinalState::Delivered,
        _ => false,
    };
    let receipt = wanted.then(|| {
        Box::new(Job {
            system_id: Some(r.system_id.clone()),
            pdu: receipt_pdu(r, &message_id, &text_id, state, b.receipts),
            kind: DeliverKind::Receipt {
                message_id: message_id.clone(),
                text_id,
                destination_addr: r.destination_addr.clone(),
                state,
                with_tlvs: b.receipts == ReceiptFormat::TlvAndText,
            },
        })
    });
    let garbage = b
        .garbage_after
        .as_ref()
        .filter(|(nth, _)| *nth == n)
        .map(|(_, g)| g.bytes());
    Answer::Accepted {
        message_id,
        receipt,
        garbage,
    }
}

/// The classic receipt text: `id:.. sub:001 dlvrd:.. submit date:YYMMDDhhmm
/// done date:YYMMDDhhmm stat:.. err:.. text:<first 20 characters>`.
pub fn receipt_text(text_id: &str, state: FinalState, original: &[u8], data_coding: u8) -> String {
    let now = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%y%m%d%H%M")
        .to_string();
    let text: String = if matches!(data_coding, 0 | 1 | 3) {
        original
            .iter()
            .take(20)
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '.'
                }
            })
            .collect()
    } else {
        String::new()
    };
    let dlvrd = if state == FinalState::Delivered {
        "001"
    } else {
        "000"
    };
    format!(
        "id:{text_id} sub:001 dlvrd:{dlvrd} submit date:{now} done date:{now} stat:{} err:{} text:{text}",
        state.stat(),
        state.err()
    )
}

fn receipt_pdu(
    r: &ReceivedSm,
    message_id: &str,
    text_id: &str,
    state: FinalState,
    format: ReceiptFormat,
) -> DeliverSm {
    let text = receipt_text(text_id, state, r.body(), r.data_coding);
    let tlvs = match format {
        ReceiptFormat::TlvAndText => vec![
            MessageDeliveryRequestTlvValue::ReceiptedMessageId(c_octets(message_id)),
            MessageDeliveryRequestTlvValue::MessageState(state.as_rusmpp()),
        ],
        ReceiptFormat::TextOnly => Vec::new(),
    };
    DeliverSm::builder()
        .source_addr_ton(Ton::from(r.dest_ton))
        .source_addr_npi(Npi::from(r.dest_npi))
        .source_addr(c_octets(&r.destination_addr))
        .dest_addr_ton(Ton::from(r.source_ton))
        .dest_addr_npi(Npi::from(r.source_npi))
        .destination_addr(c_octets(&r.source_addr))
        .esm_class(EsmClass::from(0x04))
        .registered_delivery(RegisteredDelivery::from(0))
        .data_coding(DataCoding::from(0))
        .short_message(OctetString::from_slice(text.as_bytes()).expect("receipt text ≤ 255 octets"))
        .tlvs(tlvs)
        .build()
}

/// A minimal ESME over the same codec, for testing SMSC peers directly.
pub struct RawEsme {
    framed: Framed<TcpStream, CommandCodec>,
    sequence: u32,
    /// Commands read while waiting for something else.
    backlog: VecDeque<Command>,
}

impl RawEsme {
    pub async fn connect(addr: impl tokio::net::ToSocketAddrs) -> Self {
        let stream = TcpStream::connect(addr).await.expect("raw esme: connect");
        Self {
            framed: Framed::new(stream, CommandCodec::new()),
            sequence: 0,
            backlog: VecDeque::new(),
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.framed
            .get_ref()
            .local_addr()
            .expect("raw esme: local addr")
    }

    /// Sends a request with the next sequence number and returns the number.
    pub async fn request(&mut self, pdu: impl Into<Pdu>) -> u32 {
        self.sequence += 1;
        let seq = self.sequence;
        self.send(Command::new(CommandStatus::EsmeRok, seq, pdu))
            .await;
        seq
    }

    pub async fn send(&mut self, command: Command) {
        self.framed.send(command).await.expect("raw esme: send");
    }

    /// The next command from the SMSC (`None`: closed or undecodable);
    /// panics when nothing comes within `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<Command> {
        if let Some(c) = self.backlog.pop_front() {
            return Some(c);
        }
        self.read(timeout).await
    }

    async fn read(&mut self, timeout: Duration) -> Option<Command> {
        match tokio::time::timeout(timeout, self.framed.next()).await {
            Ok(Some(Ok(c))) => Some(c),
            Ok(_) => None,
            Err(_) => panic!("raw esme: nothing from the SMSC within {timeout:?}"),
        }
    }

    /// Reads until the response to `seq`; other commands wait in the backlog.
    pub async fn response(&mut self, seq: u32, timeout: Duration) -> Command {
        if let Some(i) = self
            .backlog
            .iter()
            .position(|c| c.id().is_response() && c.sequence_number() == seq)
        {
            return self.backlog.remove(i).expect("just found");
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let c = match tokio::time::timeout(left, self.framed.next()).await {
                Ok(Some(Ok(c))) => c,
                Ok(other) => {
                    panic!("raw esme: connection ended waiting for response {seq}: {other:?}")
                }
                Err(_) => panic!("raw esme: no response to {seq} within {timeout:?}"),
            };
            if c.id().is_response() && c.sequence_number() == seq {
                return c;
            }
            self.backlog.push_back(c);
        }
    }

    /// Binds as a transceiver with interface version 3.4; returns the status.
    pub async fn bind_transceiver(&mut self, system_id: &str, password: &str) -> u32 {
        let bind = BindTransceiver::builder()
            .system_id(c_octets(system_id))
            .password(c_octets(password))
            .system_type(COctetString::empty())
            .interface_version(InterfaceVersion::Smpp3_4)
            .addr_ton(Ton::Unknown)
            .addr_npi(Npi::from(0))
            .address_range(COctetString::empty())
            .build();
        let seq = self.request(bind).await;
        let resp = self.response(seq, Duration::from_secs(5)).await;
        assert_eq!(resp.id(), CommandId::BindTransceiverResp, "{resp:?}");
        u32::from(resp.status())
    }

    /// Submits `text` (data_coding 0) from `from` to `to` asking for a
    /// receipt; returns the response's status and message id.
    pub async fn submit(&mut self, from: &str, to: &str, short_message: &[u8]) -> (u32, String) {
        let sm = SubmitSm::builder()
            .source_addr_ton(Ton::Alphanumeric)
            .source_addr_npi(Npi::from(0))
            .source_addr(c_octets(from))
            .dest_addr_ton(Ton::International)
            .dest_addr_npi(Npi::from(1))
            .destination_addr(c_octets(to))
            .registered_delivery(RegisteredDelivery::from(1))
            .data_coding(DataCoding::from(0))
            .short_message(OctetString::from_slice(short_message).expect("≤ 255 octets"))
            .build();
        let seq = self.request(sm).await;
        let resp = self.response(seq, Duration::from_secs(5)).await;
        let id = match resp.pdu() {
            Some(Pdu::SubmitSmResp(r)) => r.message_id().to_string(),
            _ => String::new(),
        };
        (u32::from(resp.status()), id)
    }

    /// Waits for the next `deliver_sm`, answers it with `deliver_sm_resp`
    /// ESME_ROK and returns it.
    pub async fn next_deliver(&mut self, timeout: Duration) -> DeliverSm {
        let deadline = Instant::now() + timeout;
        let waiting = self
            .backlog
            .iter()
            .position(|c| c.id() == CommandId::DeliverSm);
        let mut from_backlog = waiting.and_then(|i| self.backlog.remove(i));
        loop {
            let c = match from_backlog.take() {
                Some(c) => c,
                None => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    self.read(left)
                        .await
                        .expect("raw esme: connection ended waiting for deliver_sm")
                }
            };
            if let Some(Pdu::DeliverSm(d)) = c.pdu() {
                let d = d.clone();
                let resp = Command::new(
                    CommandStatus::EsmeRok,
                    c.sequence_number(),
                    DeliverSmResp::default(),
                );
                self.send(resp).await;
                return d;
            }
            self.backlog.push_back(c);
            if self.backlog.len() > 1000 {
                panic!("raw esme: no deliver_sm among 1000 commands");
            }
        }
    }
}

/// The `receipted_message_id` and `message_state` TLVs of a receipt, if any.
pub fn receipt_tlvs(d: &DeliverSm) -> (Option<String>, Option<u8>) {
    let mut id = None;
    let mut state = None;
    for tlv in d.tlvs() {
        match tlv.value() {
            Some(TlvValue::ReceiptedMessageId(v)) => id = Some(v.to_string()),
            Some(TlvValue::MessageState(v)) => state = Some(u8::from(*v)),
            _ => {}
        }
    }
    (id, state)
}
