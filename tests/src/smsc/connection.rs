//! One ESME's connection to the fake: binds, submits, receipts and the
//! faults its behaviour injects.

use super::*;

/// What the connection does after a command.
enum Flow {
    Continue,
    Close,
}

pub(super) struct Connection {
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
    /// Serves `stream` as connection `id` until it closes or `stop`.
    pub(super) fn spawn(
        id: usize,
        shared: Arc<Shared>,
        stream: TcpStream,
        rx: mpsc::UnboundedReceiver<Out>,
        stop: CancellationToken,
    ) {
        let conn = Connection {
            id,
            shared,
            framed: Framed::new(stream, CommandCodec::new()),
            bound: None,
            sequence: 0,
            held_back: Vec::new(),
        };
        tokio::spawn(conn.run(rx, stop));
    }

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

pub(super) fn receipt_pdu(
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
