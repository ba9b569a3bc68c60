//! What the store records of an upstream's answer to one send: the rules'
//! outcome, with refusals read by the bounce rules and counted.

use crate::{
    metrics::{BounceLabels, Metrics},
    returns,
};
use domain::{Delivery, Millis, Outcome};
use rules::{self, RetryPolicy};

/// The outcome of `delivery`, this attempt's number being `attempt`. A
/// refusal with a 5xx counts in the bounces metric.
pub(super) fn of(
    delivery: Delivery,
    attempt: u32,
    now: Millis,
    retry: &RetryPolicy,
    metrics: &Metrics,
) -> Outcome {
    rules::answered(delivery, attempt, now, retry, |code, phase, reply| {
        let (verdict, detail) = returns::classify_reply(code, phase, reply);
        if code >= 500 {
            metrics
                .bounces
                .get_or_create(&BounceLabels {
                    kind: verdict.kind.as_str(),
                    reason: verdict.reason.as_str(),
                })
                .inc();
        }
        (verdict, detail)
    })
}

#[cfg(test)]
mod tests;
