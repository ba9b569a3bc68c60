//! An upstream connector's last connection outcome, for `/readyz`, the log
//! and a gauge: a failure is logged with the connector's name and address
//! when it starts or changes (not at every retry), recovery once; the gauge
//! is 1 once the last connection succeeded, 0 before and while failing.

use std::sync::{Mutex, OnceLock};

use prometheus_client::metrics::gauge::Gauge;

pub struct Health {
    /// "SMTP relay main (10.0.0.5:25)": what the log and `/readyz` name.
    upstream: String,
    failing: Mutex<Option<String>>,
    up: OnceLock<Gauge>,
}

impl Health {
    /// `kind` like "SMTP relay"; `name` the configured name, which defaults
    /// to the address (then said once).
    pub fn new(kind: &str, name: &str, host: &str, port: u16) -> Self {
        let address = format!("{host}:{port}");
        let upstream = if name == address {
            format!("{kind} {address}")
        } else {
            format!("{kind} {name} ({address})")
        };
        Self {
            upstream,
            failing: Mutex::new(None),
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
        let mut failing = self.lock();
        if failing.as_deref() != Some(error.as_str()) {
            tracing::warn!(upstream = %self.upstream, error = %error, "upstream cannot be reached; retrying");
        }
        *failing = Some(error);
        self.set_up(false);
    }

    /// The connector answered: forget the failure.
    pub fn reached(&self) {
        if self.lock().take().is_some() {
            tracing::info!(upstream = %self.upstream, "upstream reached again");
        }
        self.set_up(true);
    }

    /// "SMTP relay main (10.0.0.5:25): connection refused", while failing.
    pub fn failure(&self) -> Option<String> {
        self.lock()
            .as_ref()
            .map(|error| format!("{}: {error}", self.upstream))
    }

    /// What this connector is, for other reasons about it.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.failing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_names_the_connector_and_its_address_until_it_is_reached() {
        let named = Health::new("SMTP relay", "main", "10.0.0.5", 25);
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
        let unnamed = Health::new("SMSC", "10.0.0.6:2775", "10.0.0.6", 2775);
        assert_eq!(unnamed.upstream(), "SMSC 10.0.0.6:2775");
    }
}
