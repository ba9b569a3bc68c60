//! One SMPP session over rusmpp's codec: a writer that sends every queued
//! PDU in one system call, a reader that matches responses to requests by
//! sequence number, and an `enquire_link` keep-alive. The SMSC's own requests
//! (deliver_sm, unbind, anything unknown) go to whoever opened the session.
//!
//! We own this rather than use rusmppc's client: that wrote one PDU per
//! system call and, in 0.4, had to be re-polled from outside to write a
//! burst at all; a gateway at tens of thousands of submits a second lives on
//! writing a whole window's worth at once. Windowing, throttling and
//! reconnecting stay in `bind.rs`.

use std::{
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use bytes::{BufMut, Bytes, BytesMut};

use crate::pdus::{Pdus, Undecodable};
use futures_util::StreamExt;
use rusmpp::{
    Command, CommandId, CommandStatus, Pdu,
    pdus::{DataSmResp, DeliverSmResp},
    tokio_codec::CommandCodec,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt},
    sync::{mpsc, oneshot},
    time::Instant,
};
use tokio_util::{
    codec::{Encoder, FramedRead},
    sync::CancellationToken,
};

/// The largest sequence number SMPP 3.4 allows.
const MAX_SEQUENCE: u32 = 0x7FFF_FFFF;
/// Bounds of the period at which requests past their deadline are failed.
const SWEEP_MIN: Duration = Duration::from_millis(10);
const SWEEP_MAX: Duration = Duration::from_millis(250);
/// PDUs written in one system call at most.
const WRITE_BATCH: usize = 512;
/// The SMSC's requests waiting for the bind; beyond this the reader waits,
/// which holds the SMSC back through TCP.
const REQUESTS_QUEUE: usize = 1024;

/// Why a request got no response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The session had ended before the request was queued: the SMSC
    /// never saw it.
    #[error("SMPP session closed; request not sent")]
    NotSent,
    /// The session ended after the request was queued: whether the SMSC
    /// took it is unknown.
    #[error("SMPP session closed before the response")]
    Closed,
    #[error("SMPP response timed out")]
    TimedOut,
    /// The SMSC answered with a PDU that cannot be decoded: whether it
    /// took the request is unknown.
    #[error("SMPP response could not be decoded")]
    Undecodable,
}

/// Timing of a session.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long a request waits for its response.
    pub response_timeout: Duration,
    /// How often the link is checked with `enquire_link`.
    pub enquire_link: Duration,
}

/// A request encoded once, to be sent as often as needed (a throttled
/// submit_sm goes again): each send only sets the sequence number. Cloning
/// it shares the bytes.
#[derive(Debug, Clone)]
pub struct Frame(Bytes);

impl Frame {
    pub fn new(pdu: impl Into<Pdu>) -> Self {
        Self(encode(&Command::new(CommandStatus::EsmeRok, 0, pdu)))
    }
}

/// A PDU as it goes on the wire. Into memory, rusmpp's codec cannot fail
/// (its only error is I/O); were it to, the PDU would be left out and its
/// request time out.
fn encode(command: &Command) -> Bytes {
    let mut bytes = BytesMut::new();
    if let Err(e) = CommandCodec::new().encode(command, &mut bytes) {
        tracing::error!(error = %e, command_id = ?command.id(), "SMPP PDU could not be encoded");
        bytes.clear();
    }
    bytes.freeze()
}

/// A PDU queued for the writer, with the sequence number it goes out with.
struct Outgoing {
    frame: Bytes,
    sequence: u32,
}

/// A request waiting for its response.
struct Waiter {
    answer: oneshot::Sender<Result<Command, RequestError>>,
    deadline: Instant,
}

/// Requests waiting, by sequence number: numbers we give, so hashed with
/// foldhash rather than SipHash.
type Waiting = foldhash::HashMap<u32, Waiter>;

/// A running session. Dropping the last handle does not close it: `close`
/// does, and so does the SMSC hanging up or sending what we cannot read.
pub struct Session {
    outgoing: mpsc::UnboundedSender<Outgoing>,
    waiting: Mutex<Waiting>,
    last_sequence: AtomicU32,
    closed: CancellationToken,
    timing: Timing,
}

impl Session {
    /// Starts the session's reader, writer and keep-alive on `stream`, and
    /// returns it with the requests the SMSC sends (ending when it closes).
    pub fn start<S>(stream: S, timing: Timing) -> (Arc<Self>, mpsc::Receiver<Command>)
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (reader, writer) = tokio::io::split(stream);
        let (outgoing, queued) = mpsc::unbounded_channel();
        let (requests, incoming) = mpsc::channel(REQUESTS_QUEUE);
        let session = Arc::new(Self {
            outgoing,
            waiting: Mutex::new(Waiting::default()),
            last_sequence: AtomicU32::new(0),
            closed: CancellationToken::new(),
            timing,
        });
        tokio::spawn(session.clone().write(writer, queued));
        tokio::spawn(session.clone().read(reader, requests));
        tokio::spawn(session.clone().keep_alive());
        tokio::spawn(session.clone().expire());
        (session, incoming)
    }

    /// Sends a request and waits for its response (whatever its status).
    pub async fn request(&self, pdu: impl Into<Pdu>) -> Result<Command, RequestError> {
        self.send(&Frame::new(pdu)).await
    }

    /// Sends an encoded request and waits for its response.
    pub async fn send(&self, request: &Frame) -> Result<Command, RequestError> {
        let sequence = self.next_sequence();
        let (answer, response) = oneshot::channel();
        let deadline = Instant::now() + self.timing.response_timeout;
        self.lock_waiting()
            .insert(sequence, Waiter { answer, deadline });
        // Checked after registering: `end` cancels, then empties the table.
        if self.closed.is_cancelled() {
            self.lock_waiting().remove(&sequence);
            return Err(RequestError::NotSent);
        }
        let outgoing = Outgoing {
            frame: request.0.clone(),
            sequence,
        };
        if self.outgoing.send(outgoing).is_err() {
            // The writer has stopped: nothing queued now is written.
            self.lock_waiting().remove(&sequence);
            return Err(RequestError::NotSent);
        }
        // `expire` answers TimedOut; a dropped sender means the session ended.
        response.await.unwrap_or(Err(RequestError::Closed))
    }

    /// Answers one of the SMSC's requests. On a closed session the answer
    /// is lost, and the SMSC sends its request again on the next one.
    pub fn respond(&self, sequence: u32, status: CommandStatus, pdu: impl Into<Pdu>) {
        let frame = encode(&Command::new(status, sequence, pdu.into()));
        let _ = self.outgoing.send(Outgoing { frame, sequence });
    }

    /// Closes the session: what is queued is still written, then the
    /// connection is shut down.
    pub fn close(&self) {
        self.closed.cancel();
    }

    /// Resolves once the session has ended, however it ended.
    pub async fn closed(&self) {
        self.closed.cancelled().await;
    }

    /// SMPP sequence numbers run from 1 to 0x7FFFFFFF and wrap to 1, each
    /// once in every turn (so no two requests in flight share one while
    /// fewer than 2^31 are).
    fn next_sequence(&self) -> u32 {
        let after = |n: u32| if n >= MAX_SEQUENCE { 1 } else { n + 1 };
        let last = self
            .last_sequence
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| Some(after(n)))
            .unwrap_or_else(|n| n);
        after(last)
    }

    fn lock_waiting(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends the session: every request still waiting learns it is closed.
    fn end(&self) {
        self.closed.cancel();
        self.lock_waiting().clear();
    }

    async fn write(
        self: Arc<Self>,
        mut writer: impl AsyncWrite + Unpin,
        mut queued: mpsc::UnboundedReceiver<Outgoing>,
    ) {
        let mut batch = Vec::with_capacity(WRITE_BATCH);
        let mut bytes = BytesMut::with_capacity(64 * 1024);
        loop {
            let received = tokio::select! {
                n = queued.recv_many(&mut batch, WRITE_BATCH) => n,
                () = self.closed.cancelled() => {
                    // Answers queued before the close still go out.
                    while let Ok(pdu) = queued.try_recv() {
                        batch.push(pdu);
                    }
                    0
                }
            };
            if received > 0 {
                // Tasks woken together (by a burst of responses) each queue
                // a PDU; one turn of the scheduler lets them all in, which
                // took a window's PDUs from ~2 per write to ~50.
                tokio::task::yield_now().await;
                while batch.len() < WRITE_BATCH
                    && let Ok(pdu) = queued.try_recv()
                {
                    batch.push(pdu);
                }
            }
            for Outgoing { frame, sequence } in batch.drain(..) {
                // command_length, command_id, command_status, then ours.
                if let (Some(head), Some(body)) = (frame.get(..12), frame.get(16..)) {
                    bytes.extend_from_slice(head);
                    bytes.put_u32(sequence);
                    bytes.extend_from_slice(body);
                }
            }
            if let Err(e) = writer.write_all(&bytes).await {
                tracing::debug!(error = %e, "SMPP write failed");
                break;
            }
            bytes.clear();
            if received == 0 {
                break;
            }
        }
        let _ = writer.shutdown().await;
        self.end();
    }

    /// A PDU framed by its command_length but not decodable (a TLV that
    /// breaks the specification, say) is answered and skipped, so that the
    /// session and what comes after it go on. A request is refused for
    /// good, lest the SMSC send the same bytes for ever; a response fails
    /// its request now.
    fn answer_undecodable(&self, garbled: Undecodable) {
        let Undecodable {
            id,
            sequence,
            error,
        } = garbled;
        tracing::warn!(command_id = format_args!("{id:#010x}"), sequence, %error, "SMSC sent a PDU that cannot be decoded; answered and skipped");
        let refused = CommandStatus::EsmeRxPAppn;
        match CommandId::from(id) {
            id if id.is_response() => {
                if let Some(waiter) = self.lock_waiting().remove(&sequence) {
                    let _ = waiter.answer.send(Err(RequestError::Undecodable));
                }
            }
            CommandId::DeliverSm => self.respond(sequence, refused, DeliverSmResp::default()),
            CommandId::DataSm => self.respond(sequence, refused, DataSmResp::default()),
            _ => self.respond(sequence, CommandStatus::EsmeRinvcmdid, Pdu::GenericNack),
        }
    }

    async fn read(
        self: Arc<Self>,
        reader: impl AsyncRead + Unpin,
        requests: mpsc::Sender<Command>,
    ) {
        let mut frames = FramedRead::new(reader, Pdus);
        loop {
            let frame = tokio::select! {
                frame = frames.next() => frame,
                () = self.closed.cancelled() => break,
            };
            let command = match frame {
                Some(Ok(Ok(command))) => command,
                Some(Ok(Err(garbled))) => {
                    self.answer_undecodable(garbled);
                    continue;
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "SMSC sent what is not an SMPP PDU; session dropped");
                    break;
                }
                None => break,
            };
            if command.id().is_response() {
                // A response nobody waits for any more (timed out) is dropped.
                if let Some(waiter) = self.lock_waiting().remove(&command.sequence_number()) {
                    let _ = waiter.answer.send(Ok(command));
                }
            } else if command.id() == rusmpp::CommandId::EnquireLink {
                self.respond(
                    command.sequence_number(),
                    CommandStatus::EsmeRok,
                    Pdu::EnquireLinkResp,
                );
            } else if requests.send(command).await.is_err() {
                break;
            }
        }
        self.end();
    }

    /// Answers requests past their deadline with `TimedOut`. One sweep every
    /// few milliseconds instead of a timer per request: at tens of thousands
    /// of submits a second the timers cost more than the sweeps. A timeout
    /// thus fires up to one sweep period late.
    async fn expire(self: Arc<Self>) {
        let period = (self.timing.response_timeout / 8).clamp(SWEEP_MIN, SWEEP_MAX);
        let mut sweeps = tokio::time::interval(period);
        sweeps.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = sweeps.tick() => {}
                () = self.closed.cancelled() => return,
            }
            let now = Instant::now();
            let expired: Vec<Waiter> = self
                .lock_waiting()
                .extract_if(|_, w| w.deadline <= now)
                .map(|(_, w)| w)
                .collect();
            for waiter in expired {
                let _ = waiter.answer.send(Err(RequestError::TimedOut));
            }
        }
    }

    /// Checks the link every `enquire_link`; a link that does not answer
    /// within the response timeout is dropped.
    async fn keep_alive(self: Arc<Self>) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.timing.enquire_link) => {}
                () = self.closed.cancelled() => return,
            }
            if let Err(e) = self.request(Pdu::EnquireLink).await {
                if e == RequestError::TimedOut {
                    tracing::warn!("SMSC did not answer enquire_link; session dropped");
                }
                self.end();
                return;
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use tokio::{
        io::AsyncWriteExt,
        net::{TcpListener, TcpStream},
    };

    use super::*;
    use crate::testing::{pdu, read_pdu};

    const ENQUIRE_LINK: u32 = 0x0000_0015;
    const ENQUIRE_LINK_RESP: u32 = 0x8000_0015;

    /// A session on one end of a loopback connection, the SMSC's end.
    async fn connected(timing: Timing) -> (Arc<Session>, mpsc::Receiver<Command>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("listen");
        let ours = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (theirs, _) = listener.accept().await.expect("accept");
        let (session, requests) = Session::start(ours, timing);
        (session, requests, theirs)
    }

    /// An enquire_link asked on a task of its own.
    fn enquire_in_background(
        session: &Arc<Session>,
    ) -> tokio::task::JoinHandle<Result<Command, RequestError>> {
        let session = session.clone();
        tokio::spawn(async move { session.request(Pdu::EnquireLink).await })
    }

    fn patient() -> Timing {
        Timing {
            response_timeout: Duration::from_secs(30),
            enquire_link: Duration::from_secs(3600),
        }
    }

    /// Past 0x7FFFFFFF the numbers start again at 1, each once a turn: none
    /// is taken twice while a request may still wait under it, however many
    /// requests a long-lived session has sent (its counter past 2^31 or 2^32).
    #[tokio::test]
    async fn sequence_numbers_wrap_to_1_past_0x7fffffff_without_repeating() {
        let (session, _requests, _smsc) = connected(patient()).await;
        session.last_sequence.store(0x7FFF_FFFD, Ordering::Relaxed);
        let numbers: Vec<u32> = (0..5).map(|_| session.next_sequence()).collect();
        assert_eq!(numbers, [0x7FFF_FFFE, 0x7FFF_FFFF, 1, 2, 3]);
        session.last_sequence.store(u32::MAX - 2, Ordering::Relaxed);
        let mut numbers: Vec<u32> = (0..6).map(|_| session.next_sequence()).collect();
        assert!(
            numbers.iter().all(|n| (1..=MAX_SEQUENCE).contains(n)),
            "{numbers:?}"
        );
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), 6, "a number taken twice: {numbers:?}");
    }

    #[tokio::test]
    async fn responses_find_their_requests_whatever_their_order() {
        let (session, _requests, mut smsc) = connected(patient()).await;
        let first = enquire_in_background(&session);
        let (_, _, seq1) = read_pdu(&mut smsc).await;
        let second = enquire_in_background(&session);
        let (_, _, seq2) = read_pdu(&mut smsc).await;
        assert_ne!(seq1, seq2);
        let answers = [
            pdu(ENQUIRE_LINK_RESP, 0x58, seq2, b""),
            pdu(ENQUIRE_LINK_RESP, 0, seq1, b""),
        ]
        .concat();
        smsc.write_all(&answers).await.expect("answers");
        let status = |r: Result<Command, RequestError>| u32::from(r.expect("answered").status());
        assert_eq!(status(first.await.expect("task")), 0);
        assert_eq!(status(second.await.expect("task")), 0x58);
    }

    #[tokio::test]
    async fn a_frame_sent_twice_goes_out_with_a_sequence_number_each() {
        let (session, _requests, mut smsc) = connected(patient()).await;
        let frame = Frame::new(Pdu::EnquireLink);
        let twice = tokio::spawn({
            let (session, frame) = (session.clone(), frame.clone());
            async move { futures_util::join!(session.send(&frame), session.send(&frame)) }
        });
        let (id1, _, seq1) = read_pdu(&mut smsc).await;
        let (id2, _, seq2) = read_pdu(&mut smsc).await;
        assert_eq!((id1, id2), (ENQUIRE_LINK, ENQUIRE_LINK));
        assert_ne!(seq1, seq2, "each send has its own sequence number");
        assert!(
            seq1 != 0 && seq2 != 0,
            "the frame's placeholder never goes out"
        );
        let answers = [
            pdu(ENQUIRE_LINK_RESP, 0, seq1, b""),
            pdu(ENQUIRE_LINK_RESP, 0, seq2, b""),
        ]
        .concat();
        smsc.write_all(&answers).await.expect("answers");
        let (first, second) = twice.await.expect("task");
        assert!(first.is_ok() && second.is_ok());
    }

    #[tokio::test]
    async fn an_unanswered_request_times_out_and_the_session_carries_on() {
        let timing = Timing {
            response_timeout: Duration::from_millis(200),
            ..patient()
        };
        let (session, _requests, mut smsc) = connected(timing).await;
        let late = session.request(Pdu::EnquireLink).await;
        assert_eq!(late.expect_err("nobody answered"), RequestError::TimedOut);
        let (_, _, seq_late) = read_pdu(&mut smsc).await;
        // Its answer comes after all: dropped, and the next request still works.
        smsc.write_all(&pdu(ENQUIRE_LINK_RESP, 0, seq_late, b""))
            .await
            .expect("late answer");
        let next = enquire_in_background(&session);
        let (_, _, seq) = read_pdu(&mut smsc).await;
        smsc.write_all(&pdu(ENQUIRE_LINK_RESP, 0, seq, b""))
            .await
            .expect("answer");
        assert!(next.await.expect("task").is_ok());
    }

    #[tokio::test]
    async fn the_smsc_hanging_up_fails_every_waiting_request_as_closed() {
        let (session, mut requests, mut smsc) = connected(patient()).await;
        let waiting = enquire_in_background(&session);
        read_pdu(&mut smsc).await;
        drop(smsc);
        assert_eq!(
            waiting.await.expect("task").expect_err("hung up"),
            RequestError::Closed
        );
        session.closed().await;
        assert!(
            requests.recv().await.is_none(),
            "the requests end with the session"
        );
        assert_eq!(
            session.request(Pdu::EnquireLink).await.expect_err("closed"),
            RequestError::NotSent,
            "a request on an ended session never reached the SMSC"
        );
    }

    #[tokio::test]
    async fn enquire_link_from_the_smsc_is_answered_and_garbage_ends_the_session() {
        let (session, _requests, mut smsc) = connected(patient()).await;
        smsc.write_all(&pdu(ENQUIRE_LINK, 0, 41, b""))
            .await
            .expect("enquire_link");
        assert_eq!(read_pdu(&mut smsc).await, (ENQUIRE_LINK_RESP, 0, 41));
        // A header whose command_length (7) is shorter than a header.
        let garbage = pdu(ENQUIRE_LINK, 0, 42, b"");
        let garbage = [&7u32.to_be_bytes()[..], &garbage[4..]].concat();
        smsc.write_all(&garbage).await.expect("garbage");
        tokio::time::timeout(Duration::from_secs(5), session.closed())
            .await
            .expect("the session ends on bytes that are not a PDU");
    }

    /// A deliver_sm that cannot be read at all (its short_message cut short
    /// of its sm_length) is refused for good and skipped: the session, and
    /// the PDU after it, go on, where the session used to be dropped and
    /// the SMSC sent the same PDU again on the next one, for ever.
    #[tokio::test]
    async fn a_pdu_that_cannot_be_decoded_is_refused_and_the_session_goes_on() {
        let (session, mut requests, mut smsc) = connected(patient()).await;
        let mut body = b"\0\x01\x01491\0\x01\x01123\0\x04\0\0\0\0\0\0\0\0".to_vec();
        body.push(10);
        body.extend(b"abc");
        smsc.write_all(&pdu(0x0000_0005, 0, 51, &body))
            .await
            .expect("deliver_sm");
        smsc.write_all(&pdu(ENQUIRE_LINK, 0, 52, b""))
            .await
            .expect("enquire_link");
        assert_eq!(
            read_pdu(&mut smsc).await,
            (0x8000_0005, 0x65, 51),
            "ESME_RX_P_APPN"
        );
        assert_eq!(read_pdu(&mut smsc).await, (ENQUIRE_LINK_RESP, 0, 52));
        let receipt = b"\0\x01\x01491\0\x01\x01123\0\x04\0\0\0\0\0\0\0\0\x02id";
        smsc.write_all(&pdu(0x0000_0005, 0, 53, receipt))
            .await
            .expect("deliver_sm");
        let next = tokio::time::timeout(Duration::from_secs(5), requests.recv()).await;
        let next = next
            .expect("the next deliver_sm within 5 s")
            .expect("a request");
        assert_eq!(
            next.sequence_number(),
            53,
            "only the decodable one is handed on"
        );
        assert!(!session.closed.is_cancelled(), "the session goes on");
    }

    /// A response that cannot be decoded fails its request at once (whether
    /// the SMSC took it is unknown), not at its timeout.
    #[tokio::test]
    async fn an_undecodable_response_fails_its_request_at_once() {
        let (session, _requests, mut smsc) = connected(patient()).await;
        let asked = enquire_in_background(&session);
        let (_, _, sequence) = read_pdu(&mut smsc).await;
        // A submit_sm_resp whose message_id has no NUL.
        smsc.write_all(&pdu(0x8000_0004, 0, sequence, b"abc"))
            .await
            .expect("response");
        let answer = tokio::time::timeout(Duration::from_secs(5), asked).await;
        let answer = answer.expect("answered within 5 s").expect("request task");
        assert!(
            matches!(answer, Err(RequestError::Undecodable)),
            "{answer:?}"
        );
    }

    #[tokio::test]
    async fn a_silent_link_is_dropped_by_the_keep_alive() {
        let timing = Timing {
            response_timeout: Duration::from_millis(100),
            enquire_link: Duration::from_millis(100),
        };
        let (session, _requests, mut smsc) = connected(timing).await;
        assert_eq!(read_pdu(&mut smsc).await.0, ENQUIRE_LINK);
        tokio::time::timeout(Duration::from_secs(5), session.closed())
            .await
            .expect("an unanswered enquire_link ends the session");
    }
}
