//! The SMS channel as the dispatcher sees it: personalise the text, encode it
//! (GSM 03.38 or UCS-2, concatenated parts), submit every part through one
//! bind of an SMSC, and hand back the SMSC's ids so receipts can be matched.

pub mod bind;
mod checks;
mod half_sent;
pub mod intake;
mod numbering;
mod parked;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use clicktrack::LinkTable;
use rusmpp::{
    pdus::SubmitSm,
    types::{COctetString, COctetStringError, OctetString},
    values::{DataCoding, EsmClass, Npi, RegisteredDelivery, Ton},
};
use tokio::{sync::mpsc, time::Instant};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use smpp::{session::Frame, status::Refusal, text};

use self::{
    bind::{Bind, SubmitError, UNBOUND_RETRY},
    half_sent::{HalfSent, HalfSentText, partly_sent, take_answers},
    intake::Intake,
};
use super::{
    Channel, Deps, Parsed, ParticipantCheck, Preview, StartError, Unfit,
    health::{Condition, ConnectorReport},
    start_by,
    switch::Switch,
    test_send_deadline,
};
use crate::{
    BoxError,
    config::Smsc as SmscConfig,
    engagements::EngagementLog,
    links::{Links, sms_table},
    template::{Escape, Template, missing_fields},
};
use domain::{
    CampaignDecl, CampaignRecord, ChannelKind, Delivery, Participant, SmsContent, Upstream,
};
use rules::RetryPolicy;
use store::Claim;

/// deliver_sm waiting for the intake at most; beyond, binds stop reading.
const INBOUND_QUEUE: usize = 8192;
/// A message whose session dropped mid-submit is tried again after this.
const LOST_RETRY: Duration = Duration::from_secs(1);
/// Destinations remembered for UDH references before the table restarts.
const REFERENCE_TABLE: usize = 1 << 20;

pub struct SmsChannel {
    smscs: Vec<Smsc>,
    max_parts: usize,
    references: References,
    half_sent: HalfSent,
    templates: Parsed<SmsTemplate>,
    /// Rewrites links of campaigns that track them.
    links: Arc<Links>,
    turn: AtomicUsize,
    retry: RetryPolicy,
    stop: CancellationToken,
    tasks: TaskTracker,
}

struct Smsc {
    index: u16,
    config: Arc<SmscConfig>,
    binds: Vec<Arc<Bind>>,
    /// An operator's stop and start, for every bind.
    switch: Arc<Switch>,
}

impl Smsc {
    /// Its bound bind with the most room, if one is bound.
    fn bound_bind(&self) -> Option<&Arc<Bind>> {
        (self.binds.iter())
            .filter(|b| b.is_bound())
            .max_by_key(|b| b.room())
    }

    /// Stopped by an operator; else up with any bind up; else failing while a bind's last attempt
    /// failed; else connecting. The last error is the latest of any bind.
    fn report(&self) -> ConnectorReport {
        let reports: Vec<ConnectorReport> = self.binds.iter().map(|b| b.report()).collect();
        let up = reports
            .iter()
            .filter(|r| r.condition == Condition::Up)
            .count();
        let condition = [Condition::Stopped, Condition::Up, Condition::Failing]
            .into_iter()
            .find(|c| reports.iter().any(|r| r.condition == *c))
            .unwrap_or(Condition::Connecting);
        let last_error = reports
            .iter()
            .filter_map(|r| r.last_error.clone())
            .max_by_key(|(_, at)| *at);
        let first = reports.into_iter().next().expect("an SMSC has a bind");
        ConnectorReport {
            condition,
            last_error,
            binds: Some((up, self.binds.len())),
            ..first
        }
    }
}

impl std::fmt::Debug for SmsChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsChannel")
            .field("smscs", &self.smscs.len())
            .finish_non_exhaustive()
    }
}

impl SmsChannel {
    /// Starts every bind of every configured SMSC and the inbound intake.
    pub fn start(deps: &Deps<'_>) -> Result<Self, StartError> {
        let config = &deps.config.sms;
        let metrics = &deps.metrics;
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        let (tx, rx) = mpsc::channel(INBOUND_QUEUE);
        let mut smscs = Vec::new();
        for (i, c) in config.smsc.iter().enumerate() {
            let index = u16::try_from(i).map_err(|_| StartError::TooManySmscs)?;
            let password = c
                .password()
                .map_err(|source| StartError::SmscPassword { index: i, source })?;
            let tls = if c.tls {
                Some(
                    mail_send::smtp::tls::build_tls_connector(c.tls_insecure).map_err(|e| {
                        StartError::Tls {
                            at: format!("sms.smsc[{i}]"),
                            source: e.into(),
                        }
                    })?,
                )
            } else {
                None
            };
            let config = Arc::new(c.clone());
            let switch = Arc::new(Switch::default());
            let binds: Vec<Arc<Bind>> = (0..c.binds)
                .map(|b| {
                    Arc::new(Bind::new(
                        index,
                        b,
                        config.clone(),
                        password.clone(),
                        tls.clone(),
                        metrics.clone(),
                        switch.clone(),
                    ))
                })
                .collect();
            for bind in &binds {
                tasks.spawn(bind.clone().run(tx.clone(), stop.clone()));
            }
            smscs.push(Smsc {
                index,
                config,
                binds,
                switch,
            });
        }
        drop(tx);
        if smscs.is_empty() {
            tracing::warn!("no SMSC configured: SMS campaigns cannot start");
        }
        let intake = Intake {
            store: deps.store.clone(),
            engagements: EngagementLog::new(deps.store.clone(), deps.metrics.clone()),
            stop_words: config.stop_words.iter().map(|w| w.to_uppercase()).collect(),
            numbering: numbering::Numbering {
                country_code: config.country_code.clone(),
            },
            wait: Duration::from_secs(config.receipt_wait_secs),
            recorded: deps.recorded.clone(),
            unmatched: intake::unmatched_receipts(),
            metrics: metrics.clone(),
            node: deps.config.store.node_name(),
        };
        tasks.spawn(intake.run(rx));
        Ok(Self {
            smscs,
            max_parts: config.max_parts,
            references: References::default(),
            half_sent: HalfSent::new(Duration::from_secs(config.receipt_wait_secs)),
            templates: Parsed::default(),
            links: deps.links.clone(),
            turn: AtomicUsize::new(0),
            retry: config.retry(),
            stop,
            tasks,
        })
    }

    /// Messages that may be outstanding at once over all binds.
    fn capacity(&self) -> usize {
        self.smscs
            .iter()
            .map(|s| s.config.window * s.binds.len())
            .sum()
    }

    async fn deliver(
        &self,
        campaign: &CampaignRecord,
        claim: &Claim,
        done_by: Instant,
    ) -> Delivery {
        let template = match self.template(campaign) {
            Ok(t) => t,
            Err(unfit) => return Delivery::permanent(unfit),
        };
        let p = &claim.participant;
        if let Err(unfit) = template.check_fields(p) {
            return Delivery::permanent(unfit);
        }
        let text = template.render(p, |p, text| {
            let table = self.links.table(campaign, |decl| self.link_table(decl));
            self.links.track_sms(&table, claim.msg, p, text)
        });
        self.submit(&template.from, &p.address, &text, done_by, Some(claim))
            .await
    }

    /// Sends `text` from `from` to `address` as its parts, all on one bind,
    /// answered by `done_by`. A message (`claim`; a test send has none) that
    /// an earlier attempt left half sent goes on from where that stopped.
    async fn submit(
        &self,
        from: &str,
        address: &str,
        text: &str,
        done_by: Instant,
        claim: Option<&Claim>,
    ) -> Delivery {
        // Only a message sent before can have been left half sent.
        let earlier = (claim.filter(|c| c.attempts > 0)).and_then(|c| self.half_sent.of(c.msg));
        let mut reference = earlier.as_ref().map(|e| e.reference);
        let fresh_reference = || *reference.get_or_insert_with(|| self.references.next(address));
        let parts = match text::encode(text, fresh_reference, self.max_parts) {
            Ok(parts) => parts,
            Err(e) => {
                return Delivery::Permanent {
                    reply: e.to_string(),
                };
            }
        };
        let earlier = earlier.filter(|e| self.half_sent.resumable(e, parts.len()));
        // The parts taken are linked to one SMSC's ids, so the rest go
        // there too while it is bound; elsewhere the text starts over
        // (under its reference, so the handset still puts it together).
        let picked = (earlier.as_ref())
            .and_then(|e| self.smscs.get(usize::from(e.smsc)))
            .and_then(|s| Some(s).zip(s.bound_bind()))
            .or_else(|| self.pick());
        let Some((smsc, bind)) = picked else {
            return Delivery::Unsent {
                reply: "no SMSC bound".into(),
                retry_after: UNBOUND_RETRY,
            };
        };
        let (mut taken, since) = match earlier {
            Some(e) if e.smsc == smsc.index => (e.ids, e.since),
            _ => (vec![None; parts.len()], Instant::now()),
        };
        let mut to_send = Vec::with_capacity(parts.len());
        for (part, id) in parts.into_iter().zip(&taken) {
            if id.is_none() {
                match submit_sm(from, smsc.config.as_ref(), address, part) {
                    Ok(sm) => to_send.push(Frame::new(sm)),
                    Err(e) => return Delivery::permanent(e),
                }
            }
        }
        // How long one send may wait for window room or a throttling SMSC
        // before the message is handed back unsent: till its last part's
        // answer would come too late.
        let response = Duration::from_secs(smsc.config.response_timeout_secs);
        let give_up_at = start_by(done_by, response);
        // Every part on this bind, or none: an operator's stop waits for it.
        let whole = bind.message().await;
        let (failure, sent_now) = match to_send.as_slice() {
            [one] => take_answers(&mut taken, [bind.submit_one(one, give_up_at).await]),
            parts => take_answers(&mut taken, bind.submit_parts(parts, give_up_at).await),
        };
        drop(whole);
        let several = taken.len() > 1;
        let Some(failure) = failure else {
            if let Some(claim) = claim.filter(|_| several) {
                self.half_sent.forget(claim.msg);
            }
            return accepted(smsc.index, taken);
        };
        let parts_taken = taken.iter().flatten().count();
        let (delivery, remember) = partly_sent(failure, parts_taken, taken.len(), sent_now);
        if let Some(claim) = claim.filter(|_| several) {
            let text = HalfSentText {
                smsc: smsc.index,
                reference: reference.expect("a text of several parts has a reference"),
                ids: taken,
                since,
            };
            self.half_sent.remember(claim.msg, remember, text);
        }
        delivery
    }

    /// `campaign`'s SMS content and its template parsed afresh, once `p`
    /// passed the upload's checks.
    fn checked<'c>(
        &self,
        campaign: &'c CampaignRecord,
        p: &Participant,
    ) -> Result<(&'c SmsContent, SmsTemplate), Unfit> {
        let content = campaign.decl.sms().ok_or(Unfit::NoContent("SMS"))?;
        if let Some(unfit) = self.participant_check(campaign)?(p) {
            return Err(unfit);
        }
        Ok((content, SmsTemplate::new(content, self.max_parts)?))
    }

    /// `p`'s text with its links as written: a test or a preview has no
    /// message to sign tracked links for.
    fn untracked(&self, template: &SmsTemplate, p: &Participant) -> String {
        template.render(p, |_, text| self.links.untracked(text, false))
    }

    /// The bound bind with the most room, SMSCs taken in turn.
    fn pick(&self) -> Option<(&Smsc, &Arc<Bind>)> {
        let n = self.smscs.len();
        let start = self.turn.fetch_add(1, Ordering::Relaxed);
        (0..n).find_map(|i| {
            let smsc = &self.smscs[(start + i) % n];
            Some(smsc).zip(smsc.bound_bind())
        })
    }

    fn template(&self, campaign: &CampaignRecord) -> Result<Arc<SmsTemplate>, Unfit> {
        self.templates.get(campaign, |campaign| {
            let content = campaign.decl.sms().ok_or(Unfit::NoContent("SMS"))?;
            SmsTemplate::new(content, self.max_parts)
        })
    }
}

#[async_trait]
impl Channel for SmsChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Sms
    }

    /// Up to every bind's window four times over, so the windows, not the
    /// dispatcher, are what limits an SMSC.
    fn concurrency(&self) -> usize {
        4 * self.capacity().max(1)
    }

    fn retry(&self) -> &RetryPolicy {
        &self.retry
    }

    fn is_configured(&self) -> bool {
        !self.smscs.is_empty()
    }

    /// An SMSC is ready with at least one bind fully up (in pair mode its
    /// receiver too, or receipts would wait at the SMSC); else its first
    /// bind's reason.
    fn not_ready(&self) -> Vec<String> {
        self.smscs
            .iter()
            .filter(|s| !s.binds.iter().any(|b| b.is_up()))
            .filter_map(|s| s.binds.first().and_then(|b| b.down_reason()))
            .collect()
    }

    fn connectors(&self) -> Vec<ConnectorReport> {
        self.smscs.iter().map(Smsc::report).collect()
    }

    /// Stopping drains each bind's window, then unbinds; starting binds again.
    fn switch_connector(&self, name: &str, on: bool) -> Option<ConnectorReport> {
        let smsc = self.smscs.iter().find(|s| s.config.name() == name)?;
        if smsc.switch.set(on) {
            tracing::info!(smsc = %name, on, "SMSC switched by an operator");
        }
        Some(smsc.report())
    }

    fn start_blocker(&self, campaign: &CampaignRecord) -> Option<String> {
        if campaign.decl.sms().is_none() {
            Some(Unfit::NoContent("SMS").to_string())
        } else if !self.is_configured() {
            Some("no SMSC is configured".into())
        } else {
            None
        }
    }

    fn content_problems(&self, decl: &CampaignDecl, seq: u32) -> Vec<String> {
        match decl.sms() {
            Some(content) => checks::content_problems(content, seq, self.max_parts, &self.links),
            None => vec!["content.sms: required for an sms campaign".into()],
        }
    }

    /// The text's links, if it asks for tracking.
    fn link_table(&self, decl: &CampaignDecl) -> Result<LinkTable, clicktrack::Error> {
        decl.sms().map_or_else(|| Ok(LinkTable::new()), sms_table)
    }

    fn participant_check(&self, campaign: &CampaignRecord) -> Result<ParticipantCheck, Unfit> {
        checks::participant_check(campaign, self.max_parts, self.links.clone())
    }

    fn preview(&self, campaign: &CampaignRecord, p: &Participant) -> Result<Preview, Unfit> {
        let (content, template) = self.checked(campaign, p)?;
        let table = sms_table(content).unwrap_or_default();
        let longest = template.render(p, |p, text| {
            self.links.longest_sms(&table, p, text, campaign.seq)
        });
        let (coding, parts) = text::parts_needed(&longest);
        Ok(Preview::Sms {
            from: content.from.clone(),
            text: self.untracked(&template, p),
            coding,
            parts,
        })
    }

    async fn send_test(
        &self,
        campaign: &CampaignRecord,
        p: &Participant,
    ) -> Result<Delivery, Unfit> {
        let (content, template) = self.checked(campaign, p)?;
        let text = self.untracked(&template, p);
        let longest = (self.smscs.iter())
            .map(|s| Duration::from_secs(s.config.response_timeout_secs))
            .max()
            .unwrap_or_default();
        let done_by = test_send_deadline(longest);
        Ok((self.submit(&content.from, &p.address, &text, done_by, None)).await)
    }

    async fn send(&self, campaign: &CampaignRecord, claim: &Claim, done_by: Instant) -> Delivery {
        self.deliver(campaign, claim, done_by).await
    }

    /// Unbinds every session and waits for the intake to answer what it holds.
    async fn close(&self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// Concatenated messages to one handset need distinct 8-bit references
/// while in flight: a counter per destination gives 256 before one repeats.
#[derive(Debug, Default)]
struct References(Mutex<HashMap<String, u8>>);

impl References {
    fn next(&self, destination: &str) -> u8 {
        let mut table = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if table.len() >= REFERENCE_TABLE {
            table.clear();
        }
        let next = table
            .entry(destination.to_owned())
            .or_insert_with(rand::random);
        *next = next.wrapping_add(1);
        *next
    }
}

/// A campaign's SMS content, parsed once.
#[derive(Debug)]
pub struct SmsTemplate {
    pub from: String,
    text: Template,
    max_parts: usize,
}

impl SmsTemplate {
    pub fn new(content: &SmsContent, max_parts: usize) -> Result<Self, Unfit> {
        sender_problem(&content.from).map_or(Ok(()), Err)?;
        Self::with_any_sender(content, max_parts)
    }

    /// The text parsed, the sender taken as it is: for a check that tells
    /// a bad sender and a bad text at once.
    fn with_any_sender(content: &SmsContent, max_parts: usize) -> Result<Self, Unfit> {
        let template = Template::parse(&content.text).map_err(Unfit::SmsText)?;
        Ok(Self {
            from: content.from.clone(),
            text: template,
            max_parts,
        })
    }

    /// The text for `p`, its links finished by `links` (tracked when the
    /// campaign tracks them, `{{untracked:URL}}` markers removed).
    pub fn render(
        &self,
        p: &Participant,
        links: impl FnOnce(&Participant, &str) -> String,
    ) -> String {
        links(p, &self.text.render(p, Escape::None))
    }

    /// Why this participant's message cannot be sent, if it cannot: a
    /// missing field, or a personalised text needing too many parts once
    /// `longest` has finished its links, tracked ones at the longest form
    /// tracking can give them.
    pub fn check(
        &self,
        p: &Participant,
        longest: impl FnOnce(&Participant, &str) -> String,
    ) -> Result<(), Unfit> {
        self.check_fields(p)?;
        text::check(&self.render(p, longest), self.max_parts)?;
        Ok(())
    }

    /// Why no message of this template can be sent: its text without any
    /// field needs too many parts (`longest` as for [`SmsTemplate::check`]).
    pub fn problem(&self, longest: impl FnOnce(&Participant, &str) -> String) -> Option<String> {
        let nobody = Participant {
            customer: String::new(),
            address: String::new(),
            segment: None,
            fields: Default::default(),
        };
        text::check(&self.render(&nobody, longest), self.max_parts)
            .err()
            .map(|e| format!("content.sms.text: {e}"))
    }
}

impl SmsTemplate {
    fn check_fields(&self, p: &Participant) -> Result<(), Unfit> {
        let missing = missing_fields([&self.text], p);
        if missing.is_empty() {
            return Ok(());
        }
        Err(Unfit::MissingFields(missing))
    }
}

/// Why `from` cannot be an SMS sender: `+` and up to 15 digits, up to 20
/// digits, or up to 11 alphanumeric characters (GSM 03.40).
pub fn sender_problem(from: &str) -> Option<Unfit> {
    let digits = from.strip_prefix('+').unwrap_or(from);
    let numeric = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    let ok = if numeric {
        digits.len() <= if from.starts_with('+') { 15 } else { 20 }
    } else {
        !from.is_empty()
            && from.chars().count() <= 11
            && from.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ')
    };
    (!ok).then(|| Unfit::SmsSender(from.to_owned()))
}

/// The source TON/NPI a sender implies, unless the SMSC's configuration says.
fn source_address(from: &str, config: &SmscConfig) -> (Ton, Npi, String) {
    let (ton, npi, address) = match from.strip_prefix('+') {
        Some(digits) => (Ton::International, Npi::Isdn, digits.to_owned()),
        None if from.bytes().all(|b| b.is_ascii_digit()) => {
            (Ton::Unknown, Npi::Isdn, from.to_owned())
        }
        None => (Ton::Alphanumeric, Npi::Unknown, from.to_owned()),
    };
    (
        config.source_ton.map_or(ton, Ton::from),
        config.source_npi.map_or(npi, Npi::from),
        address,
    )
}

/// A PDU field the SMPP types would not take as given (too long, not ASCII).
#[derive(Debug, thiserror::Error)]
#[error("{field}: {source}")]
pub struct FieldError {
    pub field: &'static str,
    pub source: BoxError,
}

fn submit_sm(
    from: &str,
    config: &SmscConfig,
    to: &str,
    part: text::Part,
) -> Result<SubmitSm, FieldError> {
    let (source_ton, source_npi, source) = source_address(from, config);
    let field = |field, e: &dyn std::fmt::Display| FieldError {
        field,
        source: e.to_string().into(),
    };
    let esm_class = EsmClass::from(if part.esm_class_udhi { 0x40 } else { 0x00 });
    Ok(SubmitSm::builder()
        .source_addr_ton(source_ton)
        .source_addr_npi(source_npi)
        .source_addr(c_octet_string(&source).map_err(|e| field("source", &e))?)
        .dest_addr_ton(Ton::International)
        .dest_addr_npi(Npi::Isdn)
        .destination_addr(
            c_octet_string(to.trim_start_matches('+')).map_err(|e| field("destination", &e))?,
        )
        .esm_class(esm_class)
        // The SMSC's receipt of the final outcome, success or failure, and
        // nothing else: `request_all` would also ask the handset for SME
        // acknowledgements and the SMSC for intermediate notifications.
        .registered_delivery(RegisteredDelivery::from(0x01))
        .data_coding(DataCoding::from(part.data_coding))
        .short_message(
            OctetString::from_vec(part.short_message).map_err(|e| field("short_message", &e))?,
        )
        .build())
}

/// `text` NUL-terminated, in one allocation: rusmpp's `from_str` copies
/// it, grows the copy for the NUL, then boxes an owner for it.
fn c_octet_string<const MIN: usize, const MAX: usize>(
    text: &str,
) -> Result<COctetString<MIN, MAX>, COctetStringError> {
    let mut bytes = Vec::with_capacity(text.len() + 1);
    bytes.extend_from_slice(text.as_bytes());
    bytes.push(0);
    COctetString::from_bytes(bytes.into())
}

/// What the dispatcher makes of a submit that got no id.
/// Every part taken: the message is with `smsc`, under these ids.
fn accepted(smsc: u16, taken: Vec<Option<String>>) -> Delivery {
    let ids: Vec<String> = taken.into_iter().flatten().collect();
    Delivery::Accepted {
        reply: format!("submit_sm_resp ESME_ROK message_id={}", ids.join(",")),
        upstream: Some(Upstream { smsc, ids }),
    }
}

fn refused(e: SubmitError) -> Delivery {
    match e {
        SubmitError::Lost(reply) => Delivery::Unconfirmed {
            reply,
            retry_after: Some(LOST_RETRY),
        },
        SubmitError::Unsent { reply, retry_after } => Delivery::Unsent { reply, retry_after },
        SubmitError::Refused {
            class: Refusal::Permanent,
            ..
        } => Delivery::Permanent {
            reply: e.to_string(),
        },
        SubmitError::Refused { .. } => Delivery::Transient {
            reply: e.to_string(),
            retry_after: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senders_are_numbers_or_short_names() {
        for ok in ["+4915112345678", "12345", "Sluice", "ACME Bank"] {
            assert_eq!(sender_problem(ok), None, "{ok}");
        }
        for bad in ["", "+", "TwelveLetter", "+1234567890123456", "a@b"] {
            assert!(sender_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn the_sender_decides_ton_and_npi_unless_configured() {
        let mut config: SmscConfig =
            toml::from_str("host = \"h\"\nsystem_id = \"s\"").expect("config");
        assert_eq!(
            source_address("+4915112345678", &config),
            (Ton::International, Npi::Isdn, "4915112345678".into())
        );
        assert_eq!(
            source_address("Sluice", &config),
            (Ton::Alphanumeric, Npi::Unknown, "Sluice".into())
        );
        config.source_ton = Some(3);
        config.source_npi = Some(0);
        assert_eq!(
            source_address("12345", &config),
            (Ton::NetworkSpecific, Npi::Unknown, "12345".into())
        );
    }

    #[test]
    fn a_submit_asks_for_the_final_receipt_only() {
        let config: SmscConfig = toml::from_str("host = \"h\"\nsystem_id = \"s\"").expect("config");
        let part = text::encode("Hi", || 1, 1).expect("one part").remove(0);
        let sm = submit_sm("Sluice", &config, "+4915112345678", part).expect("submit_sm");
        // SMSC receipt on success or failure; no SME acknowledgements, no
        // intermediate notifications (SMSCs may refuse those with 0x07).
        assert_eq!(u8::from(sm.registered_delivery), 0x01);
    }

    #[test]
    fn addresses_go_nul_terminated_and_bad_ones_name_their_field() {
        let config: SmscConfig = toml::from_str("host = \"h\"\nsystem_id = \"s\"").expect("config");
        let part = || text::encode("Hi", || 1, 1).expect("one part").remove(0);
        let sm = submit_sm("Sluice", &config, "+4915112345678", part()).expect("submit_sm");
        assert_eq!(sm.source_addr.as_ref(), b"Sluice\0");
        assert_eq!(sm.destination_addr.as_ref(), b"4915112345678\0");
        let refused = |from, to| {
            submit_sm(from, &config, to, part())
                .expect_err("refused")
                .field
        };
        assert_eq!(refused("Slüice", "+4915112345678"), "source");
        assert_eq!(refused("Sluice", "+49151\u{0}2345678"), "destination");
        assert_eq!(refused("Sluice", &"1".repeat(21)), "destination");
    }

    #[test]
    fn references_differ_for_consecutive_messages_to_one_handset() {
        let refs = References::default();
        let first = refs.next("+491");
        assert_eq!(refs.next("+491"), first.wrapping_add(1));
        assert_eq!(refs.next("+491"), first.wrapping_add(2));
    }
}
