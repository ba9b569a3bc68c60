//! Concatenated texts an attempt left half sent: the parts the SMSC took
//! before the session dropped or the rest was refused, so that the text's
//! next attempt sends only the rest, on the same SMSC and under the same
//! reference, and the handset can put it together (docs/api.md, "Events").
//!
//! Kept on the node that sent the parts, in memory: a restart, another node
//! of a shared store, or another SMSC sends the text again whole. Parts are
//! gone on from only while their receipts can still be matched: a receipt
//! waits `sms.receipt_wait_secs` for its id to be linked, and the ids are
//! linked only once the whole text is taken.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use domain::{Delivery, MessageNo};
use smpp::status::Refusal;
use tokio::time::Instant;

use super::{LOST_RETRY, bind::SubmitError, refused};

/// Half-sent texts remembered at most; beyond, those past going on from
/// are dropped, and if that is not enough, all.
const TABLE: usize = 1 << 16;

/// One text's parts so far.
#[derive(Debug, Clone)]
pub struct HalfSentText {
    pub smsc: u16,
    pub reference: u8,
    /// Each part's id at that SMSC, where it took the part.
    pub ids: Vec<Option<String>>,
    /// When its first parts were taken: their receipts wait from then.
    pub since: Instant,
}

#[derive(Debug)]
pub struct HalfSent {
    texts: Mutex<HashMap<MessageNo, HalfSentText>>,
    /// How long after its first parts a text is gone on from; later it is
    /// sent again whole, lest its first receipts have been given up on.
    go_on_within: Duration,
}

/// What becomes of a text's entry after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remember {
    /// The parts taken now, for the next attempt.
    Taken,
    /// Nothing: the text is done with.
    Nothing,
    /// The entry as it was: this attempt sent nothing.
    AsItWas,
}

impl HalfSent {
    /// Gone on from while their receipts can wait: half of `receipt_wait`,
    /// the rest being the margin for the attempt that goes on.
    pub fn new(receipt_wait: Duration) -> Self {
        Self {
            texts: Mutex::default(),
            go_on_within: receipt_wait / 2,
        }
    }

    fn texts(&self) -> MutexGuard<'_, HashMap<MessageNo, HalfSentText>> {
        self.texts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What an earlier attempt of `msg` left, if anything.
    pub fn of(&self, msg: MessageNo) -> Option<HalfSentText> {
        self.texts().get(&msg).cloned()
    }

    /// Whether `text`'s parts can be gone on from for a text of `parts`.
    pub fn resumable(&self, text: &HalfSentText, parts: usize) -> bool {
        text.ids.len() == parts && text.since.elapsed() < self.go_on_within
    }

    /// `msg` is done with: every part taken, or refused for good.
    pub fn forget(&self, msg: MessageNo) {
        self.texts().remove(&msg);
    }

    pub fn remember(&self, msg: MessageNo, what: Remember, text: HalfSentText) {
        match what {
            Remember::AsItWas => {}
            Remember::Nothing => self.forget(msg),
            Remember::Taken => {
                let mut texts = self.texts();
                if texts.len() >= TABLE {
                    texts.retain(|_, t| t.since.elapsed() < self.go_on_within);
                    if texts.len() >= TABLE {
                        texts.clear();
                    }
                }
                texts.insert(msg, text);
            }
        }
    }
}

/// Puts the SMSC's id for each part just sent into its slot of `taken`
/// (the empty ones, in order); returns the error that speaks for the parts
/// not taken (the weightiest) and how many were taken now.
pub fn take_answers(
    taken: &mut [Option<String>],
    answers: impl IntoIterator<Item = Result<String, SubmitError>>,
) -> (Option<SubmitError>, usize) {
    let mut failure: Option<SubmitError> = None;
    let mut sent_now = 0;
    let just_sent = taken.iter_mut().filter(|id| id.is_none());
    for (slot, answer) in just_sent.zip(answers) {
        match answer {
            Ok(id) => {
                *slot = Some(id);
                sent_now += 1;
            }
            Err(e) if failure.as_ref().is_none_or(|f| e.weight() > f.weight()) => {
                failure = Some(e);
            }
            Err(_) => {}
        }
    }
    (failure, sent_now)
}

/// What a text gets when not every part went (`failure` the part's error
/// that speaks for it), `taken` of its `total` parts now with the SMSC,
/// `sent_now` of them in this attempt; and what becomes of its entry.
pub fn partly_sent(
    failure: SubmitError,
    taken: usize,
    total: usize,
    sent_now: usize,
) -> (Delivery, Remember) {
    let for_good = matches!(
        failure,
        SubmitError::Refused {
            class: Refusal::Permanent,
            ..
        }
    );
    if for_good {
        return (refused(failure), Remember::Nothing);
    }
    if taken == 0 {
        return (refused(failure), Remember::AsItWas);
    }
    let so_far = |reply: String| format!("{reply} after {taken} of the {total} parts were sent");
    let delivery = match failure {
        // Nothing more went out: not an attempt.
        SubmitError::Unsent { reply, retry_after } if sent_now == 0 => {
            Delivery::Unsent { reply, retry_after }
        }
        SubmitError::Unsent { reply, retry_after } => Delivery::Transient {
            reply: so_far(reply),
            retry_after: Some(retry_after.max(LOST_RETRY)),
        },
        SubmitError::Lost(reply) => Delivery::Unconfirmed {
            reply: so_far(reply),
            retry_after: Some(LOST_RETRY),
        },
        SubmitError::Refused { .. } => Delivery::Transient {
            reply: so_far(failure.to_string()),
            retry_after: None,
        },
    };
    (delivery, Remember::Taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answers_fill_the_parts_not_taken_before_in_order() {
        let mut taken = vec![Some("a".to_owned()), None, None, None];
        let lost = || SubmitError::Lost("connection lost".into());
        let unsent = SubmitError::Unsent {
            reply: "SMSC not bound".into(),
            retry_after: Duration::from_secs(5),
        };
        let answers = vec![Err(unsent), Ok("c".to_owned()), Err(lost())];
        let (failure, sent_now) = take_answers(&mut taken, answers);
        assert_eq!(
            taken,
            [Some("a"), None, Some("c"), None].map(|id| id.map(str::to_owned))
        );
        assert_eq!(sent_now, 1);
        assert_eq!(
            failure.map(|f| f.to_string()),
            Some(lost().to_string()),
            "the weightier"
        );
    }

    /// A text some of whose parts the SMSC took keeps them for its next
    /// attempt, unless it was refused for good; an attempt that sent nothing
    /// is not one and leaves what an earlier one kept.
    #[test]
    fn a_text_partly_sent_keeps_its_parts_taken_unless_refused_for_good() {
        let unsent = || SubmitError::Unsent {
            reply: "SMSC not bound".into(),
            retry_after: Duration::from_secs(5),
        };
        let refusal = |class| SubmitError::Refused {
            status: 0x45,
            class,
        };
        let after = "after 1 of the 3 parts were sent";
        let kind = |(delivery, keep): (Delivery, Remember)| {
            let (kind, reply) = match &delivery {
                Delivery::Unsent { reply, .. } => ("unsent", reply),
                Delivery::Transient { reply, .. } => ("transient", reply),
                Delivery::Unconfirmed { reply, .. } => ("unconfirmed", reply),
                Delivery::Permanent { reply } => ("permanent", reply),
                other => panic!("{other:?}"),
            };
            (kind, reply.ends_with(after), keep)
        };
        let lost = SubmitError::Lost("connection lost".into());
        let transient = refusal(Refusal::Transient);
        let permanent = refusal(Refusal::Permanent);
        // (failure, parts taken, parts sent now) → (kind, reply says so far, entry)
        let cases = [
            ((unsent(), 0, 0), ("unsent", false, Remember::AsItWas)),
            ((unsent(), 1, 0), ("unsent", false, Remember::Taken)),
            ((unsent(), 1, 1), ("transient", true, Remember::Taken)),
            ((lost, 1, 1), ("unconfirmed", true, Remember::Taken)),
            ((transient, 1, 1), ("transient", true, Remember::Taken)),
            (
                (permanent.clone(), 1, 1),
                ("permanent", false, Remember::Nothing),
            ),
            ((permanent, 0, 0), ("permanent", false, Remember::Nothing)),
        ];
        for ((failure, taken, sent_now), expected) in cases {
            let case = format!("{failure:?}, {taken} taken, {sent_now} now");
            assert_eq!(
                kind(partly_sent(failure, taken, 3, sent_now)),
                expected,
                "{case}"
            );
        }
    }

    /// Parts are gone on from only while their receipts can still wait for
    /// their ids, and only for a text of as many parts.
    #[test]
    fn a_text_is_gone_on_from_only_while_its_first_receipts_can_wait() {
        let half_sent = HalfSent::new(Duration::from_secs(60));
        let text = |since| HalfSentText {
            smsc: 0,
            reference: 7,
            ids: vec![Some("1".into()), None],
            since,
        };
        let now = Instant::now();
        assert!(half_sent.resumable(&text(now), 2));
        assert!(!half_sent.resumable(&text(now), 3), "another text");
        let long_ago = (now.checked_sub(Duration::from_secs(31))).expect("up 31 s");
        assert!(
            !half_sent.resumable(&text(long_ago), 2),
            "receipts given up on"
        );
        let msg = MessageNo {
            campaign: 1,
            participant: 2,
        };
        half_sent.remember(msg, Remember::Taken, text(now));
        half_sent.remember(msg, Remember::AsItWas, text(long_ago));
        assert_eq!(half_sent.of(msg).map(|t| t.since), Some(now));
        half_sent.remember(msg, Remember::Nothing, text(now));
        assert!(half_sent.of(msg).is_none());
    }
}
