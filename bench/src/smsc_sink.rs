//! A fast SMSC sink for measuring SMPP clients: accepts any bind, answers
//! each `submit_sm` at once with an incrementing decimal message id and, when
//! the submit asked for one, sends a DELIVERED receipt (`deliver_sm` with
//! esm_class 0x04, the `receipted_message_id` and `message_state` TLVs and a
//! short classic text). It keeps nothing but counters.
//!
//! Writes are coalesced: every response and receipt for the commands already
//! read is fed into the write buffer, and the buffer is flushed once the
//! read side has nothing more decoded or readable. It runs on the caller's
//! tokio runtime (`start` spawns the accept loop and one task per
//! connection), in the same process as the benchmark.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use futures_util::{FutureExt, SinkExt, StreamExt};
use rusmpp::{
    Command, CommandStatus, Pdu,
    pdus::{BindReceiverResp, BindTransceiverResp, BindTransmitterResp, DeliverSm, SubmitSmResp},
    tlvs::MessageDeliveryRequestTlvValue,
    tokio_codec::CommandCodec,
    types::{COctetString, OctetString},
    values::{EsmClass, MessageState},
};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;

/// What the sink counted.
#[derive(Debug, Default)]
pub struct SinkCounters {
    /// `submit_sm` answered.
    pub submits: AtomicU64,
    /// Receipts written.
    pub receipts_sent: AtomicU64,
    /// `deliver_sm_resp` received.
    pub receipts_acked: AtomicU64,
    /// Successful binds.
    pub binds: AtomicU64,
}

pub struct SmscSink {
    pub port: u16,
    pub counters: Arc<SinkCounters>,
}

impl SmscSink {
    /// Binds 127.0.0.1 on an ephemeral port and serves on the current tokio
    /// runtime.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let counters = Arc::new(SinkCounters::default());
        let ids = Arc::new(AtomicU64::new(0));
        let shared = counters.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (counters, ids) = (shared.clone(), ids.clone());
                tokio::spawn(async move {
                    let _ = session(stream, &counters, &ids).await;
                });
            }
        });
        Ok(Self { port, counters })
    }

    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn submits(&self) -> u64 {
        self.counters.submits.load(Ordering::Relaxed)
    }

    pub fn receipts_acked(&self) -> u64 {
        self.counters.receipts_acked.load(Ordering::Relaxed)
    }
}

type Conn = Framed<TcpStream, CommandCodec>;

/// Commands answered between two flushes at most.
const MAX_BATCH: usize = 1024;

async fn session(
    stream: TcpStream,
    counters: &SinkCounters,
    ids: &AtomicU64,
) -> Result<(), rusmpp::tokio_codec::EncodeError> {
    stream.set_nodelay(true)?;
    let mut framed = Framed::with_capacity(stream, CommandCodec::new(), 64 * 1024);
    let mut sequence = 0u32;
    loop {
        let Some(Ok(command)) = framed.next().await else {
            return Ok(());
        };
        if !answer(&mut framed, command, counters, ids, &mut sequence).await? {
            return SinkExt::<Command>::flush(&mut framed).await;
        }
        // Everything already decoded, or readable without waiting, first
        // (at most a bounded batch, so a client that never pauses still
        // gets its answers).
        let mut batch = 1;
        while batch < MAX_BATCH
            && let Some(next) = framed.next().now_or_never()
        {
            batch += 1;
            let Some(Ok(command)) = next else {
                return SinkExt::<Command>::flush(&mut framed).await;
            };
            if !answer(&mut framed, command, counters, ids, &mut sequence).await? {
                return SinkExt::<Command>::flush(&mut framed).await;
            }
        }
        SinkExt::<Command>::flush(&mut framed).await?;
    }
}

/// Feeds the answers to `command`; false when the session ends.
async fn answer(
    framed: &mut Conn,
    command: Command,
    counters: &SinkCounters,
    ids: &AtomicU64,
    sequence: &mut u32,
) -> Result<bool, rusmpp::tokio_codec::EncodeError> {
    let seq = command.sequence_number();
    let ok = |pdu: Pdu| Command::new(CommandStatus::EsmeRok, seq, pdu);
    match command.pdu() {
        Some(Pdu::SubmitSm(sm)) => {
            let n = ids.fetch_add(1, Ordering::Relaxed) + 1;
            let id = COctetString::<1, 65>::from_string(n.to_string()).unwrap_or_default();
            let resp = SubmitSmResp::builder().message_id(id.clone()).build();
            framed.feed(ok(resp.into())).await?;
            counters.submits.fetch_add(1, Ordering::Relaxed);
            if u8::from(sm.registered_delivery) & 0x03 != 0 {
                let text = format!(
                    "id:{n} sub:001 dlvrd:001 submit date:2501010000 done date:2501010000 stat:DELIVRD err:000 text:"
                );
                let receipt = DeliverSm::builder()
                    .source_addr_ton(sm.dest_addr_ton)
                    .source_addr_npi(sm.dest_addr_npi)
                    .source_addr(sm.destination_addr.clone())
                    .dest_addr_ton(sm.source_addr_ton)
                    .dest_addr_npi(sm.source_addr_npi)
                    .destination_addr(sm.source_addr.clone())
                    .esm_class(EsmClass::from(0x04))
                    .short_message(OctetString::from_string(text).unwrap_or_default())
                    .tlvs(vec![
                        MessageDeliveryRequestTlvValue::ReceiptedMessageId(id),
                        MessageDeliveryRequestTlvValue::MessageState(MessageState::Delivered),
                    ])
                    .build();
                *sequence = sequence.wrapping_add(1).max(1);
                framed
                    .feed(Command::new(CommandStatus::EsmeRok, *sequence, receipt))
                    .await?;
                counters.receipts_sent.fetch_add(1, Ordering::Relaxed);
            }
        }
        Some(Pdu::DeliverSmResp(_)) => {
            counters.receipts_acked.fetch_add(1, Ordering::Relaxed);
        }
        Some(Pdu::BindTransceiver(_)) => {
            counters.binds.fetch_add(1, Ordering::Relaxed);
            framed
                .feed(ok(BindTransceiverResp::default().into()))
                .await?;
        }
        Some(Pdu::BindTransmitter(_)) => {
            counters.binds.fetch_add(1, Ordering::Relaxed);
            framed
                .feed(ok(BindTransmitterResp::default().into()))
                .await?;
        }
        Some(Pdu::BindReceiver(_)) => {
            counters.binds.fetch_add(1, Ordering::Relaxed);
            framed.feed(ok(BindReceiverResp::default().into())).await?;
        }
        Some(Pdu::EnquireLink) => framed.feed(ok(Pdu::EnquireLinkResp)).await?,
        Some(Pdu::Unbind) => {
            framed.feed(ok(Pdu::UnbindResp)).await?;
            return Ok(false);
        }
        _ if command.id().is_response() => {}
        _ => {
            let nack = Command::new(CommandStatus::EsmeRinvcmdid, seq, Pdu::GenericNack);
            framed.feed(nack).await?;
        }
    }
    Ok(true)
}
