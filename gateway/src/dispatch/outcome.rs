//! What the store records of an upstream's answer to one send: the rules'
//! outcome, with refusals read by the bounce rules, and final bounces
//! counted.

use crate::{metrics::Metrics, returns};
use domain::{Delivery, Millis, Outcome};
use rules::{self, RetryPolicy};

/// The outcome of `delivery`, this attempt's number being `attempt`. A
/// refusal that ends the message as bounced counts in the bounces metric; a
/// soft one sent again is a retry, not a bounce.
pub(super) fn of(
    delivery: Delivery,
    attempt: u32,
    now: Millis,
    retry: &RetryPolicy,
    metrics: &Metrics,
) -> Outcome {
    let mut verdict = None;
    let outcome = rules::answered(delivery, attempt, now, retry, |code, phase, reply| {
        let (v, detail) = returns::classify_reply(code, phase, reply);
        verdict = Some(v);
        (v, detail)
    });
    if let Some(verdict) = verdict {
        metrics.bounce_if_final(&outcome, &verdict);
    }
    outcome
}

#[cfg(test)]
mod tests;
