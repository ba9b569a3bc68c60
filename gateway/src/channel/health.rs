//! An upstream connector's last connection outcome, for `/readyz`,
//! `GET /v1/channels`, the log and a gauge: a failure is logged with the
//! connector's name and address when it starts or changes (not at every
//! retry), recovery once; the gauge is 1 once the last connection
//! succeeded, 0 before and while failing.

use std::sync::{Mutex, OnceLock};

use domain::{Millis, now_ms};

use prometheus_client::metrics::gauge::Gauge;

/// What a connector is doing now, as `GET /v1/channels` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Bound (an SMSC) or reached at its last connection (a relay).
    Up,
    /// Not up yet, or up before and being connected again.
    Connecting,
    /// Its last connection attempt failed.
    Failing,
    /// Stopped by an operator.
    Stopped,
}

/// One connector's health, named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorReport {
    /// "smtp_relay" or "smsc".
    pub kind: &'static str,
    pub name: String,
    /// host:port
    pub address: String,
    pub condition: Condition,
    /// The last connection failure, kept after recovery, and when it was.
    pub last_error: Option<(String, Millis)>,
    /// An SMSC's binds up and configured.
    pub binds: Option<(usize, usize)>,
}

#[derive(Default)]
struct Outcome {
    /// The last connection attempt's failure, while it lasts.
    failing: Option<String>,
    /// The last connection succeeded.
    reached: bool,
    last_error: Option<(String, Millis)>,
}

pub struct Health {
    kind: &'static str,
    name: String,
    address: String,
    /// "SMTP relay main (10.0.0.5:25)": what the log and `/readyz` name.
    upstream: String,
    outcome: Mutex<Outcome>,
    up: OnceLock<Gauge>,
}

impl Health {
    /// `kind` one of [`SMTP_RELAY`] and [`SMSC`]; `name` the configured
    /// name, which defaults to the address (then said once).
    pub fn new(kind: Kind, name: &str, host: &str, port: u16) -> Self {
        let address = format!("{host}:{port}");
        let upstream = if name == address {
            format!("{} {address}", kind.said)
        } else {
            format!("{} {name} ({address})", kind.said)
        };
        Self {
            kind: kind.id,
            name: name.to_owned(),
            address,
            upstream,
            outcome: Mutex::default(),
            up: OnceLock::new(),
        }
    }

    /// Reports the outcome in `gauge` from now on.
    pub fn report_to(&self, gauge: Gauge) {
        let _ = self.up.set(gauge);
    }

    fn set_up(&self, up: bool) {
        if let Some(gauge) = self.up.get() {
            gauge.set(i64::from(up));
        }
    }

    /// The connector could not be reached (or refused us) with `error`.
    pub fn failed(&self, error: &dyn std::fmt::Display) {
        let error = error.to_string();
        let mut outcome = self.lock();
        if outcome.failing.as_deref() != Some(error.as_str()) {
            tracing::warn!(upstream = %self.upstream, error = %error, "upstream cannot be reached; retrying");
        }
        outcome.last_error = Some((error.clone(), now_ms()));
        outcome.failing = Some(error);
        outcome.reached = false;
        self.set_up(false);
    }

    /// The connector answered: forget the failure.
    pub fn reached(&self) {
        let mut outcome = self.lock();
        if outcome.failing.take().is_some() {
            tracing::info!(upstream = %self.upstream, "upstream reached again");
        }
        outcome.reached = true;
        self.set_up(true);
    }

    /// "SMTP relay main (10.0.0.5:25): connection refused", while failing.
    pub fn failure(&self) -> Option<String> {
        self.lock()
            .failing
            .as_ref()
            .map(|error| format!("{}: {error}", self.upstream))
    }

    /// What this connector is, for other reasons about it.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// The connector's health; `up` says whether it is up now when its
    /// owner knows better than the last connection outcome (an SMSC whose
    /// session dropped is not up though its last bind succeeded); `on`
    /// whether an operator let it run.
    pub fn report(&self, up: Option<bool>, on: bool) -> ConnectorReport {
        let outcome = self.lock();
        let condition = match (on, up.unwrap_or(outcome.reached), &outcome.failing) {
            (false, _, _) => Condition::Stopped,
            (true, true, _) => Condition::Up,
            (true, false, Some(_)) => Condition::Failing,
            (true, false, None) => Condition::Connecting,
        };
        ConnectorReport {
            kind: self.kind,
            name: self.name.clone(),
            address: self.address.clone(),
            condition,
            last_error: outcome.last_error.clone(),
            binds: None,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Outcome> {
        self.outcome
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A kind of connector: its identifier in the API and its name in text.
#[derive(Debug, Clone, Copy)]
pub struct Kind {
    id: &'static str,
    said: &'static str,
}

pub const SMTP_RELAY: Kind = Kind {
    id: "smtp_relay",
    said: "SMTP relay",
};
pub const SMSC: Kind = Kind {
    id: "smsc",
    said: "SMSC",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_names_the_connector_and_its_address_until_it_is_reached() {
        let named = Health::new(SMTP_RELAY, "main", "10.0.0.5", 25);
        assert_eq!(named.failure(), None);
        named.failed(&"connection refused");
        assert_eq!(
            named.failure().as_deref(),
            Some("SMTP relay main (10.0.0.5:25): connection refused")
        );
        named.reached();
        assert_eq!(named.failure(), None);
        let gauge = Gauge::default();
        named.report_to(gauge.clone());
        named.failed(&"timed out");
        assert_eq!(gauge.get(), 0, "failing");
        named.reached();
        assert_eq!(gauge.get(), 1, "reached");
        let unnamed = Health::new(SMSC, "10.0.0.6:2775", "10.0.0.6", 2775);
        assert_eq!(unnamed.upstream(), "SMSC 10.0.0.6:2775");
    }

    #[test]
    fn the_report_goes_from_connecting_to_failing_to_up_and_keeps_the_last_error() {
        let relay = Health::new(SMTP_RELAY, "main", "10.0.0.5", 25);
        let report = relay.report(None, true);
        assert_eq!(
            (report.kind, report.name.as_str(), report.address.as_str()),
            ("smtp_relay", "main", "10.0.0.5:25")
        );
        assert_eq!(report.condition, Condition::Connecting);
        assert_eq!(report.last_error, None);
        relay.failed(&"connection refused");
        let report = relay.report(None, true);
        assert_eq!(report.condition, Condition::Failing);
        assert_eq!(
            report.last_error.map(|(e, _)| e).as_deref(),
            Some("connection refused")
        );
        relay.reached();
        let report = relay.report(None, true);
        assert_eq!(report.condition, Condition::Up);
        assert_eq!(
            report.last_error.map(|(e, _)| e).as_deref(),
            Some("connection refused"),
            "the last error stays after recovery"
        );
        assert_eq!(
            relay.report(Some(false), true).condition,
            Condition::Connecting,
            "reached once but said down by its owner: being connected again"
        );
        assert_eq!(relay.report(None, false).condition, Condition::Stopped);
    }
}
