//! A lane's series of the metrics every send updates, each looked up in
//! its family once: a `Family` lookup takes the family's lock and hashes
//! the labels, which the two workers did for every message.

use std::sync::OnceLock;

use prometheus_client::metrics::{counter::Counter, histogram::Histogram};

use crate::metrics::{ChannelLabels, Metrics, OutcomeLabels};
use domain::{ChannelKind, Outcome};

/// The `outcome` label of `sluice_messages_total`, by [`outcome_index`].
const OUTCOMES: [&str; 7] = [
    "submitted",
    "delivered",
    "failed",
    "retried",
    "bounced_hard",
    "bounced_soft",
    "suppressed",
];

pub(super) struct SendSeries {
    send_seconds: Histogram,
    /// Made on first use: a series `Metrics` does not show at 0 from the
    /// start (`delivered`) appears once it counts, as it did when every
    /// count looked it up.
    outcomes: [OnceLock<Counter>; OUTCOMES.len()],
    channel: &'static str,
}

impl SendSeries {
    pub(super) fn new(metrics: &Metrics, channel: ChannelKind) -> Self {
        let channel = channel.as_str();
        Self {
            send_seconds: metrics
                .send_seconds
                .get_or_create(&ChannelLabels { channel })
                .clone(),
            outcomes: Default::default(),
            channel,
        }
    }

    pub(super) fn observe_send(&self, seconds: f64) {
        self.send_seconds.observe(seconds);
    }

    /// Counts `outcome` in `sluice_messages_total`.
    pub(super) fn count(&self, metrics: &Metrics, outcome: &Outcome) {
        let i = outcome_index(outcome);
        let counter = self.outcomes[i].get_or_init(|| {
            metrics
                .messages
                .get_or_create(&OutcomeLabels {
                    channel: self.channel,
                    outcome: OUTCOMES[i],
                })
                .clone()
        });
        counter.inc();
    }
}

fn outcome_index(outcome: &Outcome) -> usize {
    match outcome {
        Outcome::Submitted { .. } => 0,
        Outcome::Receipt {
            delivered: true, ..
        } => 1,
        Outcome::Receipt { .. } | Outcome::Failed { .. } => 2,
        Outcome::Retry { .. } => 3,
        Outcome::Bounced { hard: true, .. } => 4,
        Outcome::Bounced { hard: false, .. } => 5,
        Outcome::Suppressed { .. } => 6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Exposition;
    use domain::FactDetail;

    #[test]
    fn outcomes_count_in_their_family_and_appear_once_counted() {
        let metrics = Metrics::default();
        let series = SendSeries::new(&metrics, ChannelKind::Sms);
        let submitted = Outcome::Submitted {
            detail: FactDetail::default(),
            upstream: None,
        };
        series.count(&metrics, &submitted);
        series.count(&metrics, &submitted);
        series.count(
            &metrics,
            &Outcome::Failed {
                reason: "refused".into(),
                detail: FactDetail::default(),
            },
        );
        series.observe_send(0.002);
        let text = metrics.render(Exposition::Classic);
        for line in [
            "sluice_messages_total{channel=\"sms\",outcome=\"submitted\"} 2",
            "sluice_messages_total{channel=\"sms\",outcome=\"failed\"} 1",
            "sluice_send_duration_seconds_count{channel=\"sms\"} 1",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        assert!(
            !text.contains("sluice_messages_total{channel=\"sms\",outcome=\"delivered\"}"),
            "{text}"
        );
    }
}
