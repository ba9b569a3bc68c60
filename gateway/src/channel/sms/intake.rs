//! What SMSCs send us: delivery receipts become `delivered`/`failed` facts,
//! a handset's STOP blacklists its number. Each deliver_sm is answered only
//! once what it says is durable, so an SMSC resends what a crash lost.
//!
//! A receipt can overtake the submit_sm_resp it belongs to (the SMSC sends
//! it before we have recorded the message id). A receipt is therefore
//! first matched once every outcome the dispatcher had been handed when
//! it arrived is durable ([`Recorded`]); one still unknown then waits
//! here, unanswered, and is matched again once the outcomes handed by then
//! are durable (or after `RETRY_EVERY`: another node may have sent its
//! message). One still unknown `parked::AFTER` its arrival is parked
//! durably and answered (`parked.rs`). Either way it is matched again until
//! the id is known or `wait` has passed; then it is kept as unmatched.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use futures_util::future::join_all;
use rusmpp::CommandStatus;
use serde::{Deserialize, Serialize};
use tokio::{sync::mpsc, time::Instant};

use smpp::inbound::{Inbound, Receipt, State};

use super::{
    bind::{Delivered, ReceiptCounts},
    numbering::Numbering,
    parked,
};
use crate::{
    engagements::EngagementLog,
    metrics::{BindLabels, Metrics},
    recorded::Recorded,
    unmatched::Kept,
};
use domain::{
    ChannelKind, Engaged, Engagement, FactDetail, IdReadings, Millis, ReceiptIn, ReceiptMatch,
    SuppressReason, now_ms,
};
use store::Store;

/// deliver_sm handled in one store round trip at most.
const BATCH: usize = 1024;
/// Receipts for unknown ids kept at most (the last ones).
const KEPT_RECEIPTS: u64 = 10_000;

/// Where receipts for unknown ids are kept.
pub fn unmatched_receipts() -> Kept {
    Kept::new("receipt", KEPT_RECEIPTS)
}

/// A receipt for an unknown id as it is kept (JSON).
#[derive(Debug, Serialize, Deserialize)]
pub struct KeptReceipt {
    pub smsc: u16,
    pub id: String,
    pub at: Millis,
    pub kept_at: Millis,
    pub stat: Option<String>,
    pub error: Option<String>,
    pub reason: Option<String>,
}
/// How often a receipt waiting unanswered is matched again while no
/// outcome is written (another node may have sent its message).
const RETRY_EVERY: Duration = Duration::from_millis(200);

pub struct Intake {
    pub store: Arc<dyn Store>,
    /// Where opt-outs are recorded.
    pub engagements: EngagementLog,
    /// Upper-cased words that opt a handset out.
    pub stop_words: Vec<String>,
    /// How handsets' numbers are read.
    pub numbering: Numbering,
    /// How long an unknown receipt waits for its id to be recorded.
    pub wait: Duration,
    /// How many of the dispatcher's outcomes are durable.
    pub recorded: Recorded,
    /// Receipts for unknown ids, a ring of the last ones
    /// ([`unmatched_receipts`]).
    pub unmatched: Kept,
    /// Where parked receipts taken up again after a restart are counted.
    pub metrics: Arc<Metrics>,
    /// This node's name, which its parked receipts carry.
    pub node: String,
}

/// A receipt not settled yet: not tried, or its id unknown when tried.
struct Waiting {
    receipt: ReceiptIn,
    wait: Wait,
    /// Tried once this many outcomes handed to the recorder are durable.
    after: u64,
    /// Since when it waits for that, or (parked) since its last try.
    since: Instant,
}

/// How a receipt waits for its id: its answer, and since and until when.
struct Wait {
    held: Held,
    counts: Arc<ReceiptCounts>,
    /// When it came (taken up again after a restart: when it was).
    came: Instant,
    /// Outcomes handed to the recorder when it came.
    came_after: u64,
    /// When its id is no longer waited for (from its first try on).
    until: Option<Instant>,
}

enum Held {
    /// Its deliver_sm, answered once the receipt is settled or parked.
    Unanswered(Delivered),
    /// Parked under `key`, holding `value`; its deliver_sm was answered.
    Parked { key: String, value: Vec<u8> },
}

/// The receipts waiting for their ids.
#[derive(Default)]
struct Pending {
    /// Unanswered: matched again as outcomes become durable.
    waiting: Vec<Waiting>,
    /// Parked, in the order of their next try (`since` never decreases).
    parked: VecDeque<Waiting>,
    /// Receipts parked by this node so far (their keys' last part).
    parked_ever: u64,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.waiting.is_empty() && self.parked.is_empty()
    }

    /// Takes out the receipts to match again now.
    fn ready(&mut self, durable: u64, now: Instant) -> Vec<Waiting> {
        // Taken out in place: a receipt is a few hundred bytes, and
        // partitioning into new vectors moved each one again as they grew.
        let mut ready = Vec::with_capacity(self.waiting.len());
        ready.extend(
            self.waiting
                .extract_if(.., |w| durable >= w.after || now >= w.since + RETRY_EVERY),
        );
        while let Some(w) = self.parked.front()
            && now >= w.since + parked::RETRY_EVERY
        {
            ready.extend(self.parked.pop_front());
        }
        ready
    }

    /// Puts back a receipt whose id is still unknown.
    fn wait_again(&mut self, w: Waiting) {
        match w.wait.held {
            Held::Unanswered(_) => self.waiting.push(w),
            Held::Parked { .. } => self.parked.push_back(w),
        }
    }
}

/// What each SMSC's receipts showed of how it writes message ids: most
/// write them as in submit_sm_resp and their receipts match as given; one
/// whose receipts match only in the other base mixes bases. Until either
/// is seen, an id is read in the other base only where that is unlikely to
/// be mistaken ([`IdReadings`]); once seen, the more frequent decides (a
/// late copy of a receipt matching another message in the other base is
/// outweighed by the receipts after it). Learnt anew after a restart.
#[derive(Default)]
struct ReceiptBases(HashMap<u16, Matches>);

#[derive(Default)]
struct Matches {
    as_given: u64,
    other_base: u64,
}

impl ReceiptBases {
    fn readings(&self, smsc: u16) -> IdReadings {
        match self.0.get(&smsc) {
            Some(m) if m.as_given > m.other_base => IdReadings::AsGiven,
            Some(m) if m.other_base > 0 => IdReadings::Any,
            _ => IdReadings::Unmistakable,
        }
    }

    /// Notes how a receipt of `smsc` matched; `telling`: its id reads
    /// otherwise in the other base (one digit does not).
    fn note(&mut self, smsc: u16, telling: bool, matched: &ReceiptMatch) {
        let m = self.0.entry(smsc).or_default();
        match matched {
            ReceiptMatch::Matched if telling => m.as_given += 1,
            ReceiptMatch::MatchedInOtherBase => {
                m.other_base += 1;
                if m.other_base == 1 && m.as_given == 0 {
                    tracing::info!(
                        smsc,
                        "the SMSC writes receipt ids in another base than its submit_sm_resp; \
                         its receipts' ids are read in both bases"
                    );
                }
            }
            _ => {}
        }
    }
}

impl Intake {
    /// Runs until every bind has stopped (the channel closes).
    pub async fn run(self, mut rx: mpsc::Receiver<Delivered>) {
        let mut durable = self.recorded.watch();
        let mut bases = ReceiptBases::default();
        let mut pending = self.take_up_parked().await;
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let received = if pending.is_empty() {
                rx.recv_many(&mut batch, BATCH).await
            } else {
                tokio::select! {
                    n = rx.recv_many(&mut batch, BATCH) => n,
                    // Outcomes were written: a waiting receipt may match.
                    Ok(()) = durable.changed() => 1,
                    () = tokio::time::sleep(RETRY_EVERY) => 1,
                }
            };
            if received == 0 {
                break;
            }
            let now = Instant::now();
            let handed = self.recorded.handed();
            for delivered in batch.drain(..) {
                match &delivered.inbound {
                    Inbound::Receipt(r) => {
                        let receipt = receipt_in(delivered.smsc, r);
                        let counts = delivered.metrics.receipts.clone();
                        pending.waiting.push(Waiting {
                            receipt,
                            wait: Wait {
                                held: Held::Unanswered(delivered),
                                counts,
                                came: now,
                                came_after: handed,
                                until: None,
                            },
                            after: handed,
                            since: now,
                        });
                    }
                    Inbound::Mobile { from, ton, text } => {
                        let from = self.numbering.international(from, *ton);
                        let text = text.clone();
                        self.mobile(delivered, &from, &text).await;
                    }
                    Inbound::Unreadable(text) => {
                        tracing::warn!(smsc = delivered.smsc, text = %text, "receipt without a message id");
                        delivered.metrics.receipts.count(false);
                        delivered.answer(CommandStatus::EsmeRok);
                    }
                }
            }
            let written = *durable.borrow_and_update();
            let ready = pending.ready(written, now);
            self.settle(ready, written, &mut bases, &mut pending).await;
        }
        // Stopping: what still waits unanswered is answered as a temporary
        // failure so the SMSC sends it again after the restart; what is
        // parked is taken up again then.
        for w in pending.waiting {
            if let Held::Unanswered(delivered) = w.wait.held {
                delivered.answer(CommandStatus::EsmeRxTAppn);
            }
        }
    }

    /// The receipts this node parked before this start, waiting again for
    /// their ids until they were to, and those another node of a shared
    /// store left well past their wait (to be settled once).
    async fn take_up_parked(&self) -> Pending {
        let mut pending = Pending::default();
        let stored = match self.store.meta_prefix(parked::PREFIX).await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::error!(error = %e, "parked receipts not read; they are taken up at the next start");
                return pending;
            }
        };
        let now = Instant::now();
        let wall = now_ms();
        let mut counts: HashMap<BindLabels, Arc<ReceiptCounts>> = HashMap::new();
        let mut given_up = Vec::new();
        // Alone on its store, every parked receipt is this node's.
        let alone = self.store.shared().is_none();
        let abandoned_after = parked::ABANDONED_AFTER.as_millis() as u64;
        for (key, value) in stored {
            if value == parked::CLAIMED {
                given_up.push(key);
                continue;
            }
            let p = match parked::decode(&value) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(key = %key, error = %e, "a parked receipt cannot be read; left in the store");
                    continue;
                }
            };
            let ours = alone || p.node == self.node;
            if !ours && wall < p.until.saturating_add(abandoned_after) {
                continue; // Its node is settling it.
            }
            let counts = (counts.entry(p.labels))
                .or_insert_with_key(|labels| Arc::new(ReceiptCounts::new(&self.metrics, labels)))
                .clone();
            let left = Duration::from_millis(p.until.saturating_sub(wall));
            pending.parked.push_back(Waiting {
                receipt: p.receipt,
                wait: Wait {
                    held: Held::Parked { key, value },
                    counts,
                    came: now,
                    came_after: 0,
                    until: Some(now + left),
                },
                after: 0,
                since: now,
            });
        }
        // Being given up on when a node stopped: gone from the ring.
        self.unpark(given_up).await;
        tracing::info!(receipts = pending.parked.len(), "parked receipts taken up");
        pending
    }

    /// Matches receipts; those still unknown wait again, parked once they
    /// have waited unanswered long enough; those waited for long enough are
    /// given up on.
    async fn settle(
        &self,
        receipts: Vec<Waiting>,
        written: u64,
        bases: &mut ReceiptBases,
        pending: &mut Pending,
    ) {
        if receipts.is_empty() {
            return;
        }
        // What is handed over from now on cannot be what they wait for.
        let handed = self.recorded.handed();
        let (waits, items): (Vec<_>, Vec<_>) = receipts
            .into_iter()
            .map(|w| {
                let smsc = w.receipt.smsc;
                let telling = w.receipt.id.trim().trim_start_matches('0').len() > 1;
                // Parked, it was answered: if the store fails, it waits
                // again, so it is copied (unanswered ones are not).
                let copy = matches!(w.wait.held, Held::Parked { .. }).then(|| w.receipt.clone());
                let receipt = ReceiptIn {
                    readings: bases.readings(smsc),
                    ..w.receipt
                };
                ((w.wait, smsc, telling, copy), receipt)
            })
            .unzip();
        let matches = match self.store.receipts(items).await {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "receipts not recorded; the SMSC will resend those not parked");
                let since = Instant::now();
                for (wait, _, _, copy) in waits {
                    if let Some(receipt) = copy {
                        pending.wait_again(Waiting {
                            receipt,
                            wait,
                            after: handed,
                            since,
                        });
                    } else if let Held::Unanswered(delivered) = wait.held {
                        delivered.answer(CommandStatus::EsmeRxTAppn);
                    }
                }
                return;
            }
        };
        let now = Instant::now();
        let mut unparked = Vec::new();
        let mut to_park = Vec::new();
        let mut expired = Vec::new();
        for ((wait, smsc, telling, _), matched) in waits.into_iter().zip(matches) {
            bases.note(smsc, telling, &matched);
            let until = wait.until.unwrap_or(now + self.wait);
            match matched {
                ReceiptMatch::Matched | ReceiptMatch::MatchedInOtherBase => {
                    wait.counts.count(true);
                    match wait.held {
                        Held::Unanswered(delivered) => delivered.answer(CommandStatus::EsmeRok),
                        Held::Parked { key, .. } => unparked.push(key),
                    }
                }
                ReceiptMatch::Unknown(receipt) if until > now => {
                    let w = Waiting {
                        receipt: *receipt,
                        wait: Wait {
                            until: Some(until),
                            ..wait
                        },
                        after: handed,
                        since: now,
                    };
                    // Parked only while our own outcomes keep up: parking
                    // adds writes of its own.
                    let parkable = matches!(w.wait.held, Held::Unanswered(_))
                        && now >= w.wait.came + parked::AFTER
                        && written >= w.wait.came_after
                        && pending.parked.len() + to_park.len() < parked::MAX;
                    match parkable {
                        true => to_park.push((w, until)),
                        false => pending.wait_again(w),
                    }
                }
                ReceiptMatch::Unknown(receipt) => expired.push(Waiting {
                    receipt: *receipt,
                    wait,
                    after: handed,
                    since: now,
                }),
            }
        }
        let parked = join_all(to_park.into_iter().map(|(w, until)| {
            pending.parked_ever += 1;
            self.park(w, until, pending.parked_ever)
        }))
        .await;
        for w in parked {
            pending.wait_again(w);
        }
        self.unpark(unparked).await;
        // Last: what waits again from here on came later than all above.
        self.give_up(expired, pending).await;
    }

    /// Parks a receipt waiting for its id `until`, durably, as this node's
    /// `n`th, and answers its deliver_sm; one that cannot be parked goes on
    /// waiting unanswered.
    async fn park(&self, w: Waiting, until: Instant, n: u64) -> Waiting {
        let Held::Unanswered(delivered) = w.wait.held else {
            return w;
        };
        let left = until.saturating_duration_since(Instant::now()).as_millis();
        let until_ms = now_ms().saturating_add(u64::try_from(left).unwrap_or(u64::MAX));
        let key = parked::key(&w.receipt, n);
        let value = parked::encode(&self.node, &w.receipt, &w.wait.counts.labels, until_ms);
        let held = match self.store.put_meta(&key, value.clone()).await {
            Ok(()) => {
                delivered.answer(CommandStatus::EsmeRok);
                Held::Parked { key, value }
            }
            Err(e) => {
                tracing::warn!(error = %e, "a receipt for an unknown id not parked; it waits unanswered");
                Held::Unanswered(delivered)
            }
        };
        Waiting {
            wait: Wait { held, ..w.wait },
            ..w
        }
    }

    /// Removes the keys of parked receipts now settled. One a failure
    /// leaves is taken up again at the next start and, its message
    /// settled, given up on.
    async fn unpark(&self, keys: Vec<String>) {
        for result in join_all(keys.iter().map(|key| self.store.delete_meta(key))).await {
            if let Err(e) = result {
                tracing::warn!(error = %e, "a settled receipt is still parked");
            }
        }
    }

    /// Receipts no message claims, waited for long enough: kept durably
    /// together (the last `KEPT_RECEIPTS`), counted, and answered or
    /// unparked. A parked one is first claimed, since another node that
    /// took it up may give it up too: only the node that claims it keeps
    /// it. One that cannot be kept while parked waits to be tried again.
    async fn give_up(&self, expired: Vec<Waiting>, pending: &mut Pending) {
        if expired.is_empty() {
            return;
        }
        let claims = join_all(expired.iter().map(|w| async {
            match &w.wait.held {
                Held::Unanswered(_) => Ok(true),
                Held::Parked { key, value } => {
                    (self.store)
                        .put_meta_if(key, Some(value), parked::CLAIMED.to_vec())
                        .await
                }
            }
        }))
        .await;
        let mut claimed = Vec::with_capacity(expired.len());
        for (mut w, claim) in expired.into_iter().zip(claims) {
            match (claim, &mut w.wait.held) {
                (Ok(true), Held::Parked { value, .. }) => {
                    *value = parked::CLAIMED.to_vec();
                    claimed.push(w);
                }
                (Ok(true), Held::Unanswered(_)) => claimed.push(w),
                // Settled by the node that holds it too.
                (Ok(false), _) => {}
                (Err(e), _) => {
                    tracing::warn!(error = %e, "a parked receipt not claimed; tried again");
                    pending.wait_again(w);
                }
            }
        }
        for w in &claimed {
            tracing::warn!(smsc = w.receipt.smsc, id = %w.receipt.id, "receipt for an unknown message id; kept");
        }
        let values = claimed.iter().map(|w| kept_receipt(&w.receipt)).collect();
        let kept = self.unmatched.keep_all(self.store.as_ref(), values).await;
        if let Err(e) = &kept {
            tracing::error!(error = %e, "receipts for unknown ids not kept");
        }
        let mut unparked = Vec::new();
        for w in claimed {
            match (&kept, w.wait.held) {
                (Ok(()), Held::Unanswered(delivered)) => {
                    w.wait.counts.count(false);
                    delivered.answer(CommandStatus::EsmeRok);
                }
                (Ok(()), Held::Parked { key, .. }) => {
                    w.wait.counts.count(false);
                    unparked.push(key);
                }
                (Err(_), Held::Unanswered(delivered)) => {
                    delivered.answer(CommandStatus::EsmeRxTAppn);
                }
                (Err(_), held) => pending.wait_again(Waiting {
                    wait: Wait { held, ..w.wait },
                    since: Instant::now(),
                    ..w
                }),
            }
        }
        self.unpark(unparked).await;
    }

    /// A handset's text: a STOP word records `opted_out` on the latest
    /// message sent to the number, which suppresses it for SMS in the same
    /// write (the rules), or suppresses it alone when no message went to it.
    async fn mobile(&self, delivered: Delivered, from: &str, text: &str) {
        if !self.is_stop(text) {
            tracing::info!(smsc = delivered.smsc, from = %from, "message from a handset (not an opt-out)");
            delivered.answer(CommandStatus::EsmeRok);
            return;
        }
        let recorded = match self.store.last_message_to(ChannelKind::Sms, from).await {
            Err(e) => Err(e),
            Ok(Some(msg)) => {
                let detail = FactDetail {
                    text: Some(text.to_owned()),
                    ..FactDetail::default()
                };
                let opted_out = Engaged {
                    msg,
                    at: now_ms(),
                    kind: Engagement::OptedOut,
                    detail,
                };
                self.engagements.record(vec![opted_out]).await
            }
            Ok(None) => {
                let national = !from.is_empty() && from.bytes().all(|b| b.is_ascii_digit());
                if national && self.numbering.country_code.is_none() {
                    tracing::warn!(from = %from, "opt-out from a number in national form: it matches no participant; set sms.country_code to read such numbers");
                }
                self.store
                    .suppress(ChannelKind::Sms, from, SuppressReason::OptedOut)
                    .await
            }
        };
        let status = match recorded {
            Ok(()) => {
                tracing::info!(from = %from, "handset opted out");
                CommandStatus::EsmeRok
            }
            Err(e) => {
                tracing::error!(error = %e, "opt-out not recorded; the SMSC will resend it");
                CommandStatus::EsmeRxTAppn
            }
        };
        delivered.answer(status);
    }

    fn is_stop(&self, text: &str) -> bool {
        let word = text
            .trim()
            .trim_end_matches(['.', '!'])
            .trim()
            .to_uppercase();
        self.stop_words.contains(&word)
    }
}

/// A receipt for an unknown id as it is kept.
fn kept_receipt(receipt: &ReceiptIn) -> Vec<u8> {
    let d = &receipt.detail;
    let value = KeptReceipt {
        smsc: receipt.smsc,
        id: receipt.id.clone(),
        at: receipt.at,
        kept_at: now_ms(),
        stat: d.stat.clone(),
        error: d.error.clone(),
        reason: d.reason.clone(),
    };
    serde_json::to_vec(&value).expect("a kept receipt is plain JSON")
}

fn receipt_in(smsc: u16, r: &Receipt) -> ReceiptIn {
    let reason = (r.state == State::Failed).then(|| match &r.error {
        Some(e) => format!("{} (err {e})", r.stat),
        None => r.stat.clone(),
    });
    let detail = FactDetail {
        stat: Some(r.stat.clone()),
        error: r.error.clone(),
        reason,
        ..FactDetail::default()
    };
    ReceiptIn {
        smsc,
        id: r.id.clone(),
        // As far as is known yet: `settle` reads it again each try.
        readings: IdReadings::Unmistakable,
        delivered: match r.state {
            State::Delivered => Some(true),
            State::Failed => Some(false),
            State::Intermediate => None,
        },
        at: now_ms(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_smscs_receipts_decide_how_its_ids_are_read() {
        let mut bases = ReceiptBases::default();
        assert_eq!(bases.readings(0), IdReadings::Unmistakable);
        // SMSC 0 writes ids as submitted; its first receipt after a
        // restart was a late copy that matched another message in the
        // other base.
        bases.note(0, true, &ReceiptMatch::MatchedInOtherBase);
        assert_eq!(bases.readings(0), IdReadings::Any);
        bases.note(0, true, &ReceiptMatch::Matched);
        bases.note(0, true, &ReceiptMatch::Matched);
        assert_eq!(bases.readings(0), IdReadings::AsGiven);
        // SMSC 1 mixes bases; one-digit ids match as given in both.
        bases.note(1, true, &ReceiptMatch::MatchedInOtherBase);
        for _ in 0..5 {
            bases.note(1, false, &ReceiptMatch::Matched);
        }
        assert_eq!(bases.readings(1), IdReadings::Any);
        assert_eq!(bases.readings(2), IdReadings::Unmistakable);
    }
}
