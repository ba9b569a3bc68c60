//! `RawEsme`: a minimal SMPP client over the same codec, for testing peers
//! without the daemon.

use super::*;

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
