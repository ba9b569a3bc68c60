//! What the store records of an upstream's answer to one send.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::RetryPolicy;
use crate::{
    channel::Delivery,
    domain::{Millis, Outcome},
    metrics::{BounceLabels, Metrics},
    returns,
};

/// What the store records, given the upstream's answer and this attempt's number.
/// Refusals go through the bounce rules, so a 550 5.1.1 at RCPT is a hard
/// bounce like a returned DSN saying the same, and a 4xx's retry fact
/// carries its reason and status too.
pub(super) fn of(
    delivery: Delivery,
    attempt: u32,
    now: Millis,
    retry: &RetryPolicy,
    metrics: &Metrics,
) -> Outcome {
    let retry_at = |after: Option<Duration>| {
        now + after.unwrap_or_else(|| retry.delay(attempt)).as_millis() as u64
    };
    let attempts_left = attempt < retry.max_attempts;
    // Temporary trouble: again later, or given up once attempts run out.
    let temporary = |reply: String, retry_after, mut detail: Map<String, Value>| {
        if attempts_left {
            Outcome::Retry {
                due: retry_at(retry_after),
                reason: reply,
                detail,
            }
        } else {
            detail.insert("attempts".into(), json!(attempt));
            Outcome::Failed {
                reason: format!("gave up after {attempt} attempts: {reply}"),
                detail,
            }
        }
    };
    match delivery {
        Delivery::Accepted { reply, upstream } => {
            let mut detail = Map::new();
            detail.insert("reply".into(), json!(reply));
            Outcome::Submitted { detail, upstream }
        }
        Delivery::Refused { reply, code, phase } => {
            let (verdict, mut detail) = returns::classify_reply(code, phase, &reply);
            let reason = json!(verdict.reason.as_str());
            let hard = verdict.kind == bounce::Kind::Hard;
            if code >= 500 {
                metrics
                    .bounces
                    .get_or_create(&BounceLabels {
                        kind: verdict.kind.as_str(),
                        reason: verdict.reason.as_str(),
                    })
                    .inc();
            }
            // A 4xx, or a soft 5xx with attempts left: sent again later.
            if code < 500 || (!hard && attempts_left) {
                detail.insert("bounce_reason".into(), reason);
                return temporary(reply, None, detail);
            }
            detail.insert("reason".into(), reason);
            Outcome::Bounced {
                hard,
                retry: None,
                detail,
            }
        }
        Delivery::Permanent { reply } => Outcome::Failed {
            reason: reply,
            detail: Map::new(),
        },
        Delivery::Transient { reply, retry_after } => temporary(reply, retry_after, Map::new()),
        // Handled before an outcome is recorded (`SendJob::send`).
        Delivery::Unsent { reply, retry_after } => Outcome::Retry {
            due: now + retry_after.as_millis() as u64,
            reason: reply,
            detail: Map::new(),
        },
        Delivery::Throttled { retry_after } => Outcome::Retry {
            due: now + retry_after.as_millis() as u64,
            reason: "upstream throttled".into(),
            detail: Map::new(),
        },
    }
}

#[cfg(test)]
mod tests;
