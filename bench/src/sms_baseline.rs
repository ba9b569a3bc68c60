//! The baseline an SMS benchmark compares sluice against: one bare `rusmppc`
//! connection, bound as a transceiver with interface version 3.4, submitting
//! as fast as a window of outstanding `submit_sm` allows and answering every
//! receipt. Whatever sluice adds (queueing, throttling, durable facts) is
//! measured against this in the same run.
//!
//! rusmppc 0.4's connection future handles at most 5 queued client actions
//! and about 2 writes per poll, and when it stops at those limits it returns
//! `Pending` without arranging to be polled again: the rest of a burst waits
//! for unrelated input (a response from the SMSC, or the next enquire_link
//! tick) and, when none comes, stays unsent. Pipelined submits or a batch of
//! `deliver_sm_resp` stall that way (seen here: a run of 40 messages with a
//! window of 16 stopped with 24 receipts unanswered). So the baseline drives
//! the connection itself ([`Driven`]): every request is sent with
//! `no_wait` (its future ends once written) and counted while unwritten, and
//! the connection is polled again as long as that count is not zero.
//! Responses then come back as events. rusmppc also leaves Nagle's
//! algorithm on, so the baseline opens the TCP stream itself with
//! `TCP_NODELAY`.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};
use futures_util::{StreamExt, stream::FuturesUnordered};
use rusmpp::{
    CommandStatus, Pdu,
    pdus::{BindTransceiver, DeliverSmResp, SubmitSm},
    types::{COctetString, OctetString},
    values::{DataCoding, InterfaceVersion, Npi, RegisteredDelivery, Ton},
};
use rusmppc::{Client, ConnectionBuilder, Event};
use tokio::sync::Semaphore;

/// What one bare run did.
#[derive(Debug, Clone, Copy)]
pub struct BareRun {
    /// From the first submit to the last receipt answered.
    pub elapsed: Duration,
    /// `submit_sm` answered ESME_ROK.
    pub submitted: usize,
    /// Receipts received and answered.
    pub receipts: usize,
}

impl BareRun {
    /// Messages per second, submit to receipt.
    pub fn rate(&self) -> f64 {
        self.submitted as f64 / self.elapsed.as_secs_f64()
    }
}

/// A rusmppc connection future, polled again while requests are unwritten.
pub struct Driven<F> {
    connection: Pin<Box<F>>,
    unwritten: Arc<AtomicUsize>,
}

impl<F: Future<Output = ()>> Driven<F> {
    pub fn new(connection: F, unwritten: Arc<AtomicUsize>) -> Self {
        Self {
            connection: Box::pin(connection),
            unwritten,
        }
    }
}

impl<F: Future<Output = ()>> Future for Driven<F> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.connection.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(()),
            Poll::Pending => {
                if self.unwritten.load(Ordering::Acquire) > 0 {
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
        }
    }
}

/// Submits handed to the connection but not yet written, at most.
const MAX_QUEUED_WRITES: usize = 8;

/// Sends a request with `no_wait`, counting it as unwritten until it is.
async fn counted<T>(
    unwritten: &AtomicUsize,
    request: impl Future<Output = Result<T, rusmppc::error::Error>>,
) -> Result<T, rusmppc::error::Error> {
    unwritten.fetch_add(1, Ordering::AcqRel);
    let result = request.await;
    unwritten.fetch_sub(1, Ordering::AcqRel);
    result
}

/// Submits `messages` over one rusmppc connection to `addr` (`host:port`)
/// with at most `window` outstanding, each asking for a receipt, and waits
/// until every receipt arrived and was answered.
pub async fn bare_rusmppc_rate(
    addr: &str,
    messages: usize,
    window: usize,
) -> anyhow::Result<BareRun> {
    ensure!(window > 0, "window must be at least 1");
    let stream = connect(addr).await?;
    let (client, events, connection) = ConnectionBuilder::new()
        .disable_interface_version_check()
        .no_enquire_link_interval()
        .response_timeout(Duration::from_secs(30))
        .no_spawn()
        .connected(stream);
    let unwritten = Arc::new(AtomicUsize::new(0));
    tokio::spawn(Driven::new(connection, unwritten.clone()));
    client
        .bind_transceiver(bind_transceiver()?)
        .await
        .context("bind_transceiver")?;

    let window = Arc::new(Semaphore::new(window));
    let started = Instant::now();
    let reader = tokio::spawn(read_events(
        client.clone(),
        events,
        unwritten.clone(),
        window.clone(),
        messages,
    ));

    let mut writes = FuturesUnordered::new();
    let submitter = &client;
    for i in 0..messages {
        window.acquire().await?.forget();
        let sm = submit_sm(i)?;
        // A few writes queued at once, so the connection batches them.
        if writes.len() >= MAX_QUEUED_WRITES
            && let Some(written) = writes.next().await
        {
            let written: Result<u32, rusmppc::error::Error> = written;
            written.context("submit_sm")?;
        }
        writes.push(counted(&unwritten, async move {
            submitter.no_wait().submit_sm(sm).await
        }));
    }
    while let Some(written) = writes.next().await {
        written.context("submit_sm")?;
    }
    let (submitted, receipts) = reader.await??;
    let elapsed = started.elapsed();
    // The sink closes the connection after its unbind_resp.
    let _ = counted(&unwritten, client.no_wait().unbind()).await;
    let _ = client.close().await;
    Ok(BareRun {
        elapsed,
        submitted,
        receipts,
    })
}

/// Counts `submit_sm_resp` (releasing window slots) and answers receipts
/// until `messages` of each arrived; returns both counts.
async fn read_events(
    client: Client,
    mut events: impl futures_util::Stream<Item = Event> + Unpin,
    unwritten: Arc<AtomicUsize>,
    window: Arc<Semaphore>,
    messages: usize,
) -> anyhow::Result<(usize, usize)> {
    let mut acks = FuturesUnordered::new();
    let (mut submitted, mut receipts) = (0, 0);
    while submitted < messages || receipts < messages {
        tokio::select! {
            Some(ack) = acks.next(), if !acks.is_empty() => {
                let ack: Result<(), rusmppc::error::Error> = ack;
                ack.context("deliver_sm_resp")?;
            }
            event = events.next() => match event {
                Some(Event::Incoming(command)) => match command.pdu() {
                    Some(Pdu::SubmitSmResp(_)) => {
                        ensure!(
                            command.status() == CommandStatus::EsmeRok,
                            "submit_sm answered {:?}",
                            command.status()
                        );
                        submitted += 1;
                        window.add_permits(1);
                    }
                    Some(Pdu::DeliverSm(_)) => {
                        receipts += 1;
                        acks.push(counted(
                            &unwritten,
                            client.deliver_sm_resp(
                                command.sequence_number(),
                                DeliverSmResp::default(),
                            ),
                        ));
                    }
                    _ => {}
                },
                Some(Event::Error(e)) => bail!("after {submitted} responses and {receipts} receipts: {e}"),
                None => bail!("connection closed after {submitted} responses and {receipts} receipts"),
            },
        }
    }
    while let Some(ack) = acks.next().await {
        ack.context("deliver_sm_resp")?;
    }
    Ok((submitted, receipts))
}

/// A connection to the sink with Nagle's algorithm off. rusmppc's own
/// `connect` leaves it on, which with one write per PDU meets the peer's
/// delayed ACKs (≈ 40 ms stalls), so every bare loop connects here.
async fn connect(addr: &str) -> anyhow::Result<tokio::net::TcpStream> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// The bind of every bare loop: a transceiver, SMPP 3.4.
fn bind_transceiver() -> anyhow::Result<BindTransceiver> {
    Ok(BindTransceiver::builder()
        .system_id(c_octets("bench")?)
        .password(c_octets("bench")?)
        .interface_version(InterfaceVersion::Smpp3_4)
        .build())
}

/// The `i`th message of a bare run: a short GSM text asking for a receipt.
fn submit_sm(i: usize) -> anyhow::Result<SubmitSm> {
    let text = OctetString::from_string("Your code is 123456".into())
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(SubmitSm::builder()
        .source_addr_ton(Ton::Alphanumeric)
        .source_addr_npi(Npi::Unknown)
        .source_addr(c_octets("Telco")?)
        .dest_addr_ton(Ton::International)
        .dest_addr_npi(Npi::Isdn)
        .destination_addr(c_octets(&format!("4917{i:08}"))?)
        .registered_delivery(RegisteredDelivery::from(1))
        .data_coding(DataCoding::McSpecific)
        .short_message(text)
        .build())
}

/// The same loop over sluice's own SMPP session (`smpp::
/// session`): a task per submit within the window, as the gateway sends,
/// and every receipt answered. Against this, a run of sluice shows what the
/// rest of the pipeline (claims, load control, templates, durable facts)
/// costs on top of the SMPP client it uses.
pub async fn bare_session_rate(
    addr: &str,
    messages: usize,
    window: usize,
) -> anyhow::Result<BareRun> {
    use smpp::session::{Session, Timing};

    ensure!(window > 0, "window must be at least 1");
    let stream = connect(addr).await?;
    let timing = Timing {
        response_timeout: Duration::from_secs(30),
        enquire_link: Duration::from_secs(3600),
    };
    let (session, mut requests) = Session::start(stream, timing);
    let bound = session.request(bind_transceiver()?).await?;
    ensure!(
        bound.status() == CommandStatus::EsmeRok,
        "bind answered {bound:?}"
    );
    let started = Instant::now();
    let receipts = {
        let session = session.clone();
        tokio::spawn(async move {
            let mut receipts = 0;
            while receipts < messages {
                let Some(command) = requests.recv().await else {
                    bail!("closed after {receipts} receipts");
                };
                if let Some(Pdu::DeliverSm(_)) = command.pdu() {
                    receipts += 1;
                    let (sequence, ok) = (command.sequence_number(), CommandStatus::EsmeRok);
                    session.respond(sequence, ok, DeliverSmResp::default());
                }
            }
            anyhow::Ok(receipts)
        })
    };
    let window = Arc::new(Semaphore::new(window));
    let mut submits = tokio::task::JoinSet::new();
    let mut submitted = 0;
    for i in 0..messages {
        let permit = window.clone().acquire_owned().await?;
        let (session, sm) = (session.clone(), submit_sm(i)?);
        submits.spawn(async move {
            let answer = session.request(sm).await;
            drop(permit);
            let answer = answer?;
            ensure!(
                answer.status() == CommandStatus::EsmeRok,
                "submit_sm answered {answer:?}"
            );
            anyhow::Ok(())
        });
        // Reaped as they finish, so the set stays a window's size.
        while let Some(done) = submits.try_join_next() {
            done??;
            submitted += 1;
        }
    }
    while let Some(done) = submits.join_next().await {
        done??;
        submitted += 1;
    }
    let receipts = receipts.await??;
    let elapsed = started.elapsed();
    session.close();
    Ok(BareRun {
        elapsed,
        submitted,
        receipts,
    })
}

fn c_octets<const MIN: usize, const MAX: usize>(s: &str) -> anyhow::Result<COctetString<MIN, MAX>> {
    COctetString::from_string(s.to_owned()).map_err(|e| anyhow::anyhow!("{s:?}: {e:?}"))
}

/// The ceiling of the sink and the codec, without any client library: one
/// connection speaking SMPP through rusmpp's codec directly, submits and
/// `deliver_sm_resp` written in batches with one flush each, at most
/// `window` submits outstanding. Shows how far the sink is from being the
/// bottleneck of a run.
pub async fn raw_codec_rate(addr: &str, messages: usize, window: usize) -> anyhow::Result<BareRun> {
    use futures_util::SinkExt;
    use rusmpp::{Command, tokio_codec::CommandCodec};
    use tokio_util::codec::Framed;

    ensure!(window > 0, "window must be at least 1");
    let stream = connect(addr).await?;
    let mut framed = Framed::new(stream, CommandCodec::new());
    framed
        .send(Command::new(CommandStatus::EsmeRok, 1, bind_transceiver()?))
        .await?;
    match framed.next().await {
        Some(Ok(c)) if c.status() == CommandStatus::EsmeRok => {}
        other => bail!("bind answered {other:?}"),
    }
    let (mut tx, mut rx) = framed.split();
    let permits = Arc::new(Semaphore::new(window));
    let (acks, mut to_ack) = tokio::sync::mpsc::unbounded_channel::<u32>();
    let started = Instant::now();

    // The reader cannot write: it hands receipts' sequence numbers over.
    let reader = {
        let permits = permits.clone();
        tokio::spawn(async move {
            let (mut submitted, mut receipts) = (0, 0);
            while submitted < messages || receipts < messages {
                let Some(command) = rx.next().await else {
                    bail!("closed after {submitted} responses and {receipts} receipts");
                };
                let command = command?;
                match command.pdu() {
                    Some(Pdu::SubmitSmResp(_)) => {
                        submitted += 1;
                        permits.add_permits(1);
                    }
                    Some(Pdu::DeliverSm(_)) => {
                        receipts += 1;
                        acks.send(command.sequence_number())?;
                    }
                    _ => continue,
                }
            }
            anyhow::Ok((submitted, receipts))
        })
    };
    let mut next = 0;
    let mut seq = 1u32;
    let mut acked = 0;
    while next < messages || acked < messages {
        let mut fed = 0;
        while let Ok(s) = to_ack.try_recv() {
            tx.feed(Command::new(
                CommandStatus::EsmeRok,
                s,
                DeliverSmResp::default(),
            ))
            .await?;
            acked += 1;
            fed += 1;
        }
        while next < messages
            && let Ok(permit) = permits.try_acquire()
        {
            permit.forget();
            seq += 2;
            tx.feed(Command::new(CommandStatus::EsmeRok, seq, submit_sm(next)?))
                .await?;
            next += 1;
            fed += 1;
        }
        if fed > 0 {
            SinkExt::<Command>::flush(&mut tx).await?;
            continue;
        }
        tokio::select! {
            s = to_ack.recv() => {
                let Some(s) = s else { bail!("reader ended") };
                tx.feed(Command::new(CommandStatus::EsmeRok, s, DeliverSmResp::default())).await?;
                acked += 1;
            }
            // A window slot is free again: the next round takes it.
            permit = permits.acquire(), if next < messages => drop(permit?),
        }
    }
    SinkExt::<Command>::flush(&mut tx).await?;
    let (submitted, receipts) = reader.await??;
    Ok(BareRun {
        elapsed: started.elapsed(),
        submitted,
        receipts,
    })
}
