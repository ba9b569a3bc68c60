//! Prometheus metrics of the daemon (names follow Prometheus conventions:
//! `_total` counters, seconds, no customer or message ids in labels), in
//! OpenMetrics or, for scrapers that do not ask for it, the classic text
//! format (`classic`); the process's own metrics come from `process`.

mod classic;
mod process;
mod store;

pub use admin_api::Exposition;

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram, info::Info},
    registry::Registry,
};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub channel: &'static str,
    pub outcome: &'static str,
}

/// One webhook, by its place in `[[webhooks]]` (its URL may carry a
/// secret in its query).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    pub webhook: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BounceLabels {
    pub kind: &'static str,
    pub reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub channel: &'static str,
    pub reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EngagementLabels {
    /// `clicked`, `opened`, `unsubscribed`, `opted_out` or `complained`.
    pub kind: &'static str,
}

/// One API request: the route's template (never the path itself, so no id
/// becomes a label), the method and the status answered.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub method: &'static str,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelLabels {
    pub channel: &'static str,
}

/// One SMPP bind: the SMSC's name (`sms.smsc[].name`, else `host:port`)
/// and the bind's position.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BindLabels {
    pub smsc: String,
    pub bind: String,
}

/// One SMTP relay, by its name (`email.relays[].name`, else `host:port`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RelayLabels {
    pub relay: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReceiptLabels {
    pub smsc: String,
    pub bind: String,
    /// `matched` or `unmatched`.
    pub result: &'static str,
}

pub struct Metrics {
    registry: Registry,
    /// SMPP binds: 1 while bound, 0 otherwise.
    pub smpp_bound: Family<BindLabels, Gauge>,
    /// submit_sm sent and not yet answered, per bind.
    pub smpp_window: Family<BindLabels, Gauge>,
    /// Seconds from submit_sm to its response, per bind.
    pub smpp_submit_seconds: Family<BindLabels, Histogram>,
    /// submit_sm answered ESME_RTHROTTLED or ESME_RMSGQFUL, per bind.
    pub smpp_throttled: Family<BindLabels, Counter>,
    /// Delivery receipts by whether they matched a message.
    pub smpp_receipts: Family<ReceiptLabels, Counter>,
    /// Messages by channel and what became of them.
    pub messages: Family<OutcomeLabels, Counter>,
    /// Seconds from claim to the upstream's answer.
    pub send_seconds: Family<ChannelLabels, Histogram>,
    /// Participants accepted by uploads.
    pub participants_accepted: Counter,
    /// Messages being sent right now.
    pub in_flight: Gauge,
    /// Messages waiting to be sent, per channel.
    pub queue_depth: Family<ChannelLabels, Gauge>,
    /// Webhook batches by result.
    pub webhook_batches: Family<OutcomeLabels, Counter>,
    /// Per webhook, how old the oldest fact it has not delivered is.
    pub webhook_backlog_age: Family<WebhookLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// Bounced recipients by kind and reason (at send time and returned).
    pub bounces: Family<BounceLabels, Counter>,
    /// Returned mail that matched no message (kept, not dropped).
    pub bounces_unmatched: Counter,
    /// The channel's configured bandwidth (messages per second).
    pub rate_limit: Family<ChannelLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// How long the longest-waiting due message has waited, per channel.
    pub oldest_wait: Family<ChannelLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// Messages load control deferred, by reason.
    pub deferred: Family<ReasonLabels, Counter>,
    /// Messages not sent on purpose, by reason.
    pub suppressed: Family<ReasonLabels, Counter>,
    /// Sends whose answer never came after the whole message went out: the
    /// possible duplicates, since each is sent again.
    pub unconfirmed: Family<ChannelLabels, Counter>,
    /// SMTP relays: 1 once the last connection succeeded, else 0.
    pub relay_up: Family<RelayLabels, Gauge>,
    /// Clicks, opens, unsubscribes and opt-outs recorded.
    pub engagements: Family<EngagementLabels, Counter>,
    /// API requests answered, by route, method and status.
    pub api_requests: Family<RequestLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut root = Registry::default();
        root.register_collector(Box::new(process::Process::default()));
        let registry = root.sub_registry_with_prefix("sluice");
        registry.register(
            "build",
            "The daemon's version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        let messages = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "messages",
            "Messages by channel and outcome",
            messages.clone(),
        );
        let send_seconds = Family::<ChannelLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ])
        });
        registry.register(
            "send_duration_seconds",
            "Seconds from claim to the upstream's answer",
            send_seconds.clone(),
        );
        let participants_accepted = Counter::default();
        registry.register(
            "participants_accepted",
            "Participants accepted by uploads",
            participants_accepted.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "messages_in_flight",
            "Messages being sent right now",
            in_flight.clone(),
        );
        let queue_depth = Family::<ChannelLabels, Gauge>::default();
        registry.register(
            "queue_depth_messages",
            "Messages of running campaigns waiting to be sent",
            queue_depth.clone(),
        );
        let webhook_batches = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "webhook_batches",
            "Webhook batches by result",
            webhook_batches.clone(),
        );
        let webhook_backlog_age =
            Family::<WebhookLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "webhook_backlog_age_seconds",
            "Per webhook, the age of the oldest fact it has not delivered (0: none waiting, or another node delivers)",
            webhook_backlog_age.clone(),
        );
        let bounces = Family::<BounceLabels, Counter>::default();
        registry.register(
            "bounces",
            "Bounced recipients by kind and reason",
            bounces.clone(),
        );
        let bounces_unmatched = Counter::default();
        registry.register(
            "bounces_unmatched",
            "Returned mail that matched no message",
            bounces_unmatched.clone(),
        );
        let rate_limit =
            Family::<ChannelLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "channel_rate_limit",
            "Configured bandwidth in messages per second",
            rate_limit.clone(),
        );
        let oldest_wait =
            Family::<ChannelLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register_with_unit(
            "queue_oldest_wait",
            "How long the longest-waiting due message has waited",
            prometheus_client::registry::Unit::Seconds,
            oldest_wait.clone(),
        );
        let deferred = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "messages_deferred",
            "Messages load control deferred, by reason",
            deferred.clone(),
        );
        let suppressed = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "messages_suppressed",
            "Messages not sent on purpose, by reason",
            suppressed.clone(),
        );
        let unconfirmed = Family::<ChannelLabels, Counter>::default();
        registry.register(
            "messages_unconfirmed",
            "Sends whose answer never came after the whole message went out (connection lost or timed out); each is sent again, so each may arrive twice",
            unconfirmed.clone(),
        );
        let relay_up = Family::<RelayLabels, Gauge>::default();
        registry.register(
            "relay_up",
            "SMTP relays: 1 once the last connection succeeded, else 0",
            relay_up.clone(),
        );
        let engagements = Family::<EngagementLabels, Counter>::default();
        registry.register(
            "engagements",
            "Clicks, opens, unsubscribes and opt-outs recorded",
            engagements.clone(),
        );
        let api_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "api_requests",
            "API requests answered, by route, method and status",
            api_requests.clone(),
        );
        let smpp_bound = Family::<BindLabels, Gauge>::default();
        registry.register(
            "smpp_bind_up",
            "SMPP binds: 1 while bound, 0 otherwise",
            smpp_bound.clone(),
        );
        let smpp_window = Family::<BindLabels, Gauge>::default();
        registry.register(
            "smpp_window_in_flight",
            "submit_sm sent and not yet answered",
            smpp_window.clone(),
        );
        let smpp_submit_seconds = Family::<BindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ])
        });
        registry.register(
            "smpp_submit_duration_seconds",
            "Seconds from submit_sm to its response",
            smpp_submit_seconds.clone(),
        );
        let smpp_throttled = Family::<BindLabels, Counter>::default();
        registry.register(
            "smpp_throttled",
            "submit_sm answered ESME_RTHROTTLED or ESME_RMSGQFUL",
            smpp_throttled.clone(),
        );
        let smpp_receipts = Family::<ReceiptLabels, Counter>::default();
        registry.register(
            "smpp_receipts",
            "Delivery receipts by whether they matched a message",
            smpp_receipts.clone(),
        );
        Self {
            registry: root,
            smpp_bound,
            smpp_window,
            smpp_submit_seconds,
            smpp_throttled,
            smpp_receipts,
            deferred,
            suppressed,
            unconfirmed,
            rate_limit,
            oldest_wait,
            messages,
            send_seconds,
            participants_accepted,
            in_flight,
            queue_depth,
            webhook_batches,
            webhook_backlog_age,
            bounces,
            bounces_unmatched,
            relay_up,
            engagements,
            api_requests,
        }
        .with_known_labels()
    }
}

/// Label values known in advance, exposed at 0 from the start so dashboards
/// show a flat line, not "no data".
const OUTCOMES: [&str; 6] = [
    "submitted",
    "failed",
    "retried",
    "bounced_hard",
    "bounced_soft",
    "suppressed",
];
const DEFERRALS: [&str; 7] = [
    "plan",
    "not_started",
    "outside_window",
    "exclusion_day",
    "cap_reached",
    "rate_limited",
    "upstream_unavailable",
];
/// Load control's reasons to suppress; the others are the suppression
/// list's (`domain::SuppressReason::ALL`).
const LIMIT_SUPPRESSIONS: [&str; 2] = ["quota_exceeded", "campaign_ended"];

impl Metrics {
    /// Adds the store's own series (`sluice_store_writable`,
    /// `sluice_store_requests_total`).
    pub fn watch_store(&mut self, store: std::sync::Arc<dyn ::store::Store>) {
        self.registry
            .register_collector(Box::new(store::StoreSeries(store)));
    }

    /// Creates the series of a channel at zero, so dashboards show them
    /// before the first message (the channel registry calls it per channel).
    pub fn know_channel(&self, channel: &'static str) {
        drop(self.send_seconds.get_or_create(&ChannelLabels { channel }));
        drop(self.queue_depth.get_or_create(&ChannelLabels { channel }));
        drop(self.unconfirmed.get_or_create(&ChannelLabels { channel }));
        for outcome in OUTCOMES {
            drop(
                self.messages
                    .get_or_create(&OutcomeLabels { channel, outcome }),
            );
        }
        for reason in DEFERRALS {
            drop(
                self.deferred
                    .get_or_create(&ReasonLabels { channel, reason }),
            );
        }
        let listed = domain::SuppressReason::ALL.map(domain::SuppressReason::as_str);
        for reason in LIMIT_SUPPRESSIONS.into_iter().chain(listed) {
            drop(
                self.suppressed
                    .get_or_create(&ReasonLabels { channel, reason }),
            );
        }
    }

    /// Counts a bounce that ends its message (hard, or soft out of
    /// attempts), by `verdict`'s kind and reason; a soft bounce sent again
    /// is a retry, not counted.
    pub fn bounce_if_final(&self, outcome: &domain::Outcome, verdict: &bounce::Verdict) {
        if matches!(outcome, domain::Outcome::Bounced { retry: None, .. }) {
            self.bounces
                .get_or_create(&BounceLabels {
                    kind: verdict.kind.as_str(),
                    reason: verdict.reason.as_str(),
                })
                .inc();
        }
    }

    /// Counts one API request.
    pub fn api_request(&self, route: &str, method: &str, status: u16) {
        // Only the methods the API knows: any other would be a new series.
        let method = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
            .into_iter()
            .find(|&m| m == method)
            .unwrap_or("other");
        self.api_requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                method,
                status,
            })
            .inc();
    }

    /// Notes that webhook `index`'s oldest fact not delivered is
    /// `age_secs` old.
    pub fn webhook_backlog(&self, index: usize, age_secs: f64) {
        self.webhook_backlog_age
            .get_or_create(&WebhookLabels {
                webhook: index.to_string(),
            })
            .set(age_secs);
    }

    fn with_known_labels(self) -> Self {
        for outcome in ["delivered", "failed"] {
            drop(self.webhook_batches.get_or_create(&OutcomeLabels {
                channel: "webhook",
                outcome,
            }));
        }
        for kind in domain::Engagement::ALL {
            drop(self.engagements.get_or_create(&EngagementLabels {
                kind: kind.as_str(),
            }));
        }
        self
    }

    /// Every metric, written out as `exposition`.
    pub fn render(&self, exposition: Exposition) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        match exposition {
            Exposition::OpenMetrics => out,
            Exposition::Classic => classic::to_classic(&out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_channel_shows_every_suppression_reason_at_zero() {
        let metrics = Metrics::default();
        metrics.know_channel("sms");
        let text = metrics.render(Exposition::Classic);
        for reason in [
            "quota_exceeded",
            "campaign_ended",
            "blacklisted",
            "hard_bounce",
            "unsubscribed",
            "opted_out",
            "complained",
        ] {
            let series = format!(
                "sluice_messages_suppressed_total{{channel=\"sms\",reason=\"{reason}\"}} 0"
            );
            assert!(text.contains(&series), "{series} in {text}");
        }
    }

    #[test]
    fn a_request_with_an_unknown_method_adds_no_series_of_its_own() {
        let metrics = Metrics::default();
        metrics.api_request("/healthz", "GET", 200);
        metrics.api_request("/healthz", "BREW", 405);
        metrics.api_request("/healthz", "TRACE", 405);
        let text = metrics.render(Exposition::Classic);
        assert!(
            text.contains(
                "sluice_api_requests_total{route=\"/healthz\",method=\"other\",status=\"405\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "sluice_api_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 1"
            ),
            "{text}"
        );
    }
}
