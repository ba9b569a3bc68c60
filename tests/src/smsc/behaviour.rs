//! What a fake SMSC is told to do (`SmscBehaviour`, its faults) and what it
//! records (`Observed`).

use super::*;

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
    /// Message number `n` as this SMSC writes it.
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

    pub(super) fn as_rusmpp(self) -> MessageState {
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
    /// The first message id given (counting up from it); by default
    /// 0xA000_0001, whose hex form has a letter.
    pub first_id: Option<u64>,
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
    pub fn first_id(mut self, n: u64) -> Self {
        self.first_id = Some(n);
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
