//! The rule table: what each fact does to a message, to its address and to
//! its campaign. Pure functions over the domain model, with no I/O: an engine
//! applies a [`Decision`] together with the fact that caused it in one atomic
//! write, and holds no business rule of its own (ARCHITECTURE.md, "Rules").
//!
//! | fact | message | address |
//! |---|---|---|
//! | upstream accepted | `submitted`, one more attempt | |
//! | delivery receipt (every part) | `delivered` or `failed`, only if still `submitted` | |
//! | 4xx, transient error, soft 5xx with attempts left | `pending`, due after back-off | |
//! | the same, attempts used up | `failed` | |
//! | hard bounce (at send time or returned) | `bounced_hard` | suppressed (`hard_bounce`) |
//! | soft bounce returned | `pending` at back-off, or `bounced_soft` when out of attempts | |
//! | suppressed by load control | `suppressed` | |
//! | unsubscribed, opted out, complained | engagement flag | suppressed (`unsubscribed`, `opted_out`, `complained`) |
//! | clicked, opened | engagement flag | |
//!
//! | ended undelivered (above), fallback takes it ([`falls_back`]) | `fallback` flag; the fallback campaign gets the participant ([`fallback_participant`]) | |
//! | uploaded without an address to a campaign with a fallback | `fallback`, never sent; the same | |
//!
//! A decision also says when a message ended undelivered ([`Undelivered`]),
//! what a campaign's fallback to another channel is triggered by.

mod campaign;
mod fallback;
mod retry;

use std::time::Duration;

use bounce::{Kind, Verdict};
use domain::{
    Delivery, Engagement, FactDetail, FactKind, MessageState, Millis, Outcome, Phase, Status,
    SuppressReason,
};

pub use campaign::{closed_to_participants, may_finish};
pub use domain::Undelivered;
pub use fallback::{fallback_participant, falls_back};
pub use retry::RetryPolicy;

/// What an engine writes for one outcome, atomically with its fact.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The message's state after the fact.
    pub state: MessageState,
    /// The fact for the feed and what it adds to the outcome's detail.
    pub fact: FactKind,
    pub detail: FactDetail,
    /// Never send to the message's address on its campaign's channel again.
    pub suppress: Option<SuppressReason>,
    /// The message ended without reaching its recipient: what a campaign's
    /// fallback to another channel is triggered by.
    pub undelivered: Option<Undelivered>,
}

/// The decision for `outcome`, reported at `at` for a message in `before`.
pub fn settle(before: MessageState, at: Millis, outcome: Outcome) -> Decision {
    let state = |status, attempts, due| MessageState {
        status,
        attempts,
        due,
        at,
    };
    let sent = before.attempts + 1;
    let decide = |state, fact, detail| Decision {
        state,
        fact,
        detail,
        suppress: None,
        undelivered: None,
    };
    match outcome {
        Outcome::Submitted { detail, .. } => decide(
            state(Status::Submitted, sent, before.due),
            FactKind::Submitted,
            detail,
        ),
        Outcome::Receipt { delivered, detail } => {
            let (status, fact) = if delivered {
                (Status::Delivered, FactKind::Delivered)
            } else {
                (Status::Failed, FactKind::Failed)
            };
            Decision {
                undelivered: (!delivered).then_some(Undelivered::Failed),
                ..decide(state(status, before.attempts, before.due), fact, detail)
            }
        }
        Outcome::Failed { reason, mut detail } => {
            detail.reason = Some(reason);
            Decision {
                undelivered: Some(Undelivered::Failed),
                ..decide(
                    state(Status::Failed, sent, before.due),
                    FactKind::Failed,
                    detail,
                )
            }
        }
        Outcome::Retry {
            due,
            reason,
            mut detail,
        } => {
            detail.reason = Some(reason);
            detail.attempt = Some(sent);
            detail.retry_at = Some(due);
            decide(
                state(Status::Pending, sent, due),
                FactKind::RetryScheduled,
                detail,
            )
        }
        Outcome::Bounced {
            hard,
            retry,
            mut detail,
            ..
        } => {
            detail.bounce = Some(if hard { "hard" } else { "soft" }.to_owned());
            let (status, due) = match (hard, retry) {
                (true, _) => (Status::BouncedHard, before.due),
                (false, Some(retry)) => {
                    detail.retry_at = Some(retry);
                    (Status::Pending, retry)
                }
                (false, None) => (Status::BouncedSoft, before.due),
            };
            let undelivered = match status {
                Status::BouncedHard => Some(Undelivered::BouncedHard),
                Status::BouncedSoft => Some(Undelivered::Failed),
                _ => None,
            };
            Decision {
                state: state(status, before.attempts, due),
                fact: FactKind::Bounced,
                detail,
                suppress: hard.then_some(SuppressReason::HardBounce),
                undelivered,
            }
        }
        Outcome::Suppressed { why } => {
            let detail = FactDetail {
                why: Some(why),
                ..FactDetail::default()
            };
            decide(
                state(Status::Suppressed, before.attempts, before.due),
                FactKind::Suppressed,
                detail,
            )
        }
    }
}

/// Whether a delivery receipt still settles a message in `status`: only one
/// waiting for it (a late receipt after a bounce or a failure changes nothing).
pub fn receipt_settles(status: Status) -> bool {
    status == Status::Submitted
}

/// What one part's final receipt does to a message sent in parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartReceipt {
    /// A part failed earlier: the message is settled already.
    AlreadySettled,
    /// `left` parts still wait for their receipt.
    Wait { left: u8 },
    /// The message is settled: every part delivered, or this one failed.
    Settle { delivered: bool },
}

/// The receipt of one of `parts` parts, `waiting` parts still waiting before
/// it (`None`: no receipt seen yet). One failed part fails the message.
pub fn part_receipt(parts: u8, waiting: Option<u8>, delivered: bool) -> PartReceipt {
    let waiting = waiting.unwrap_or(parts);
    if parts > 1 && waiting == 0 {
        return PartReceipt::AlreadySettled;
    }
    match waiting.saturating_sub(1) {
        left @ 1.. if delivered && parts > 1 => PartReceipt::Wait { left },
        _ => PartReceipt::Settle { delivered },
    }
}

/// The message statuses the audience for `outcome` selects. A channel that
/// does not report delivery (e-mail: no receipt) counts a message the
/// upstream accepted as delivered: the best knowledge until a bounce says
/// otherwise. Engagement outcomes (clicked, ...) select by flag, not here.
pub fn audience_statuses(outcome: &str, reports_delivery: bool) -> &'static [Status] {
    match (outcome, reports_delivery) {
        ("delivered", false) => &[Status::Submitted, Status::Delivered],
        ("delivered", true) => &[Status::Delivered],
        ("pending", _) => &[Status::Pending],
        ("submitted", _) => &[Status::Submitted],
        ("failed", _) => &[Status::Failed],
        ("bounced_hard", _) => &[Status::BouncedHard],
        ("bounced_soft", _) => &[Status::BouncedSoft],
        ("suppressed", _) => &[Status::Suppressed],
        // With the messages flagged `FELL_BACK` after they ended undelivered.
        ("fallback", _) => &[Status::Fallback],
        _ => &[],
    }
}

/// The message flag the audience for `outcome` selects by besides its
/// statuses (a click, ..., a fallback), or 0 for none.
pub fn audience_flag(outcome: &str) -> u8 {
    match outcome {
        "fallback" => domain::FELL_BACK,
        _ => Engagement::ALL
            .into_iter()
            .find(|e| e.as_str() == outcome)
            .map_or(0, Engagement::bit),
    }
}

/// What a recipient's action does to their address.
pub fn engaged(kind: Engagement) -> Option<SuppressReason> {
    match kind {
        Engagement::Unsubscribed => Some(SuppressReason::Unsubscribed),
        Engagement::OptedOut => Some(SuppressReason::OptedOut),
        Engagement::Complained => Some(SuppressReason::Complained),
        Engagement::Clicked | Engagement::Opened => None,
    }
}

/// Whether `kind` on a message already flagged with it is recorded again:
/// each click and open is an event of its own, but a recipient leaves
/// (unsubscribes, opts out, complains) once, however often the notice of
/// it comes (a provider's resent report, a retried one-click POST).
pub fn recorded_again(kind: Engagement) -> bool {
    engaged(kind).is_none()
}

/// The outcome of the upstream's answer to attempt number `attempt` (≥ 1).
/// A refusal is read by `classify` (the bounce rules: verdict and the reply's
/// fields), so a 550 5.1.1 at RCPT is a hard bounce like a returned DSN
/// saying the same, and a 4xx's retry fact carries its reason too.
pub fn answered(
    delivery: Delivery,
    attempt: u32,
    now: Millis,
    retry: &RetryPolicy,
    classify: impl FnOnce(u16, Phase, &str) -> (Verdict, FactDetail),
) -> Outcome {
    let retry_at = |after: Option<Duration>| {
        now + after.unwrap_or_else(|| retry.delay(attempt)).as_millis() as u64
    };
    let attempts_left = attempt < retry.max_attempts;
    // Temporary trouble: again later, or given up once attempts run out.
    let temporary = |reply: String, retry_after, mut detail: FactDetail| {
        if attempts_left {
            Outcome::Retry {
                due: retry_at(retry_after),
                reason: reply,
                detail,
            }
        } else {
            detail.attempts = Some(attempt);
            Outcome::Failed {
                reason: format!("gave up after {attempt} attempts: {reply}"),
                detail,
            }
        }
    };
    let later = |due: Duration, reason: String| Outcome::Retry {
        due: now + due.as_millis() as u64,
        reason,
        detail: FactDetail::default(),
    };
    match delivery {
        Delivery::Accepted { reply, upstream } => {
            let detail = FactDetail {
                reply: Some(reply),
                ..FactDetail::default()
            };
            Outcome::Submitted { detail, upstream }
        }
        Delivery::Refused { reply, code, phase } => {
            let (verdict, mut detail) = classify(code, phase, &reply);
            let reason = verdict.reason.as_str().to_owned();
            let hard = verdict.kind == Kind::Hard;
            // A 4xx, or a soft 5xx with attempts left: sent again later.
            if code < 500 || (!hard && attempts_left) {
                detail.bounce_reason = Some(reason);
                return temporary(reply, None, detail);
            }
            detail.reason = Some(reason);
            Outcome::Bounced {
                hard,
                retry: None,
                detail,
                returned: false,
            }
        }
        Delivery::Permanent { reply } => Outcome::Failed {
            reason: reply,
            detail: FactDetail::default(),
        },
        Delivery::Transient { reply, retry_after }
        | Delivery::Unconfirmed { reply, retry_after } => {
            temporary(reply, retry_after, FactDetail::default())
        }
        // Not an attempt: handled before an outcome is recorded.
        Delivery::Unsent { reply, retry_after } => later(retry_after, reply),
        Delivery::Throttled { retry_after } => later(retry_after, "upstream throttled".into()),
    }
}

/// The outcome of a returned bounce for a message sent `attempts` times: a
/// soft one is sent again after back-off while attempts are left.
pub fn returned(
    hard: bool,
    attempts: u32,
    now: Millis,
    retry: &RetryPolicy,
    detail: FactDetail,
) -> Outcome {
    let retry = (!hard && attempts < retry.max_attempts)
        .then(|| now + retry.delay(attempts.max(1)).as_millis() as u64);
    Outcome::Bounced {
        hard,
        retry,
        detail,
        returned: true,
    }
}

/// Whether `outcome` still changes a message in `status`, sent `attempts`
/// times. A returned bounce settles only a message handed over and
/// waiting for its outcome; a report for a message never sent, or a copy
/// or replay arriving once the message is settled, changes nothing (it
/// would count twice). While a resend is due, the resend is not out yet,
/// so a report is about a send already counted: a hard one (the final
/// failure after a delay notice) still settles the message, a soft one
/// (a copy, another delay notice) changes nothing.
pub fn applies(status: Status, attempts: u32, outcome: &Outcome) -> bool {
    let Outcome::Bounced {
        returned: true,
        hard,
        ..
    } = outcome
    else {
        return true;
    };
    let resend_due = status == Status::Pending && attempts > 0;
    status == Status::Submitted || (resend_due && *hard)
}

#[cfg(test)]
mod tests;
