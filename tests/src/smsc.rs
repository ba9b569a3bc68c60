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

mod behaviour;
mod connection;
mod raw_esme;

pub use behaviour::*;
use connection::*;
pub use raw_esme::*;

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
                next_id: behaviour
                    .first_id
                    .map_or(0xA000_0000, |n| n.checked_sub(1).expect("ids start at 1")),
                behaviour,
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
        self.send_mo_numbered(1, from, to, text);
    }

    /// [`send_mo`](Self::send_mo) from a number of SMPP type `ton` (2, a
    /// national number, say).
    pub fn send_mo_numbered(&self, ton: u8, from: &str, to: &str, text: &str) {
        let same_in_gsm =
            |c: char| matches!(c, '\n' | '\r' | ' '..='#' | '%'..='?' | 'A'..='Z' | 'a'..='z');
        let (data_coding, bytes) = if text.chars().all(same_in_gsm) {
            (0, text.as_bytes().to_vec())
        } else {
            (8, text.encode_utf16().flat_map(u16::to_be_bytes).collect())
        };
        self.mo(Ton::from(ton), from, to, data_coding, &bytes);
    }

    /// A mobile-originated message with these exact octets.
    pub fn send_mo_raw(&self, from: &str, to: &str, data_coding: u8, bytes: &[u8]) {
        self.mo(Ton::International, from, to, data_coding, bytes);
    }

    fn mo(&self, ton: Ton, from: &str, to: &str, data_coding: u8, bytes: &[u8]) {
        let builder = DeliverSm::builder()
            .source_addr_ton(ton)
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

    /// A delivery receipt (TLVs and text, `DELIVRD`) for `message_id`, an
    /// id this fake never gave: another system's send on the same account.
    pub fn send_stray_receipt(&self, message_id: &str) {
        let sent = ReceivedSm {
            number: 0,
            connection: 0,
            system_id: String::new(),
            sequence_number: 0,
            service_type: String::new(),
            source_addr: "other-system".into(),
            source_ton: 5,
            source_npi: 0,
            destination_addr: "+4915100000099".into(),
            dest_ton: 1,
            dest_npi: 1,
            esm_class: 0,
            protocol_id: 0,
            registered_delivery: 1,
            data_coding: 0,
            short_message: b"not ours".to_vec(),
            message_payload: None,
            tlvs: Vec::new(),
            status: Some(status::OK),
            message_id: Some(message_id.into()),
        };
        let state = FinalState::Delivered;
        let job = Job {
            system_id: None,
            pdu: receipt_pdu(
                &sent,
                message_id,
                message_id,
                state,
                ReceiptFormat::TlvAndText,
            ),
            kind: DeliverKind::Receipt {
                message_id: message_id.into(),
                text_id: message_id.into(),
                destination_addr: sent.destination_addr.clone(),
                state,
                with_tlvs: true,
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
        Connection::spawn(connection, shared.clone(), stream, rx, stop.child_token());
    }
}
