//! Load caps counted across the nodes that share a store: a node takes a
//! small allowance of each cap period applying now from the period's
//! shared counter (`Shared::count_up_to`, never past the cap's max) and
//! sends against it, so that the nodes together never send more than a
//! cap allows. An allowance left when its period ends is lost: the nodes
//! may send up to one allowance each fewer than the cap, never more.

use std::{collections::HashMap, sync::Mutex};

use domain::{ChannelKind, Millis};
use store::{Shared, StoreError};
use throttle::{ActiveCap, jiff::civil::Date};

/// How long a period's shared counter outlives the period.
const KEEP_AFTER_END_MS: Millis = 24 * 3_600_000;

/// A cap's period, as the nodes name it: its definition (not its index,
/// which an edit of the limits may change) and its local day.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Period {
    channel: ChannelKind,
    /// The cap's definition as JSON.
    cap: String,
    day: Date,
}

impl Period {
    pub fn new(channel: ChannelKind, cap: String, day: Date) -> Self {
        Self { channel, cap, day }
    }

    /// The shared counter's key.
    fn key(&self) -> String {
        format!("cap:{}:{}:{}", self.channel.as_str(), self.day, self.cap)
    }
}

/// What asking for room in the caps came to.
#[derive(Debug, PartialEq)]
pub enum CapRoom {
    /// One send counted in each of these periods.
    Taken(Vec<Period>),
    /// A cap is full until its period ends.
    Full { until: Millis },
}

/// How many sends one ask takes at most: about what the bandwidth sends in
/// a fiftieth of a second, and no more than a 64th of the cap, so that
/// what other nodes hold unused stays a small part of it.
pub fn allowance(max: u64, per_ask: u32) -> u64 {
    u64::from(per_ask).min(max / 64).max(1)
}

/// The allowances this node holds, per period.
#[derive(Default)]
pub struct CapCredits {
    held: Mutex<HashMap<Period, u64>>,
}

impl CapCredits {
    /// Counts one send at `now` in every period of `active` (each with its
    /// cap's definition), asking the store for an allowance of those this
    /// node holds none of; all or none.
    pub async fn take(
        &self,
        shared: &dyn Shared,
        channel: ChannelKind,
        active: &[(String, ActiveCap)],
        per_ask: u32,
        now: Millis,
    ) -> Result<CapRoom, StoreError> {
        if active.is_empty() {
            return Ok(CapRoom::Taken(Vec::new()));
        }
        let periods: Vec<Period> = active
            .iter()
            .map(|(cap, a)| Period::new(channel, cap.clone(), a.day))
            .collect();
        for (period, (_, a)) in periods.iter().zip(active) {
            if self.held(period) > 0 {
                continue;
            }
            let ends = super::millis(a.ends);
            let keep = ends.saturating_sub(now) + KEEP_AFTER_END_MS;
            let granted = shared
                .count_up_to(&period.key(), a.max, allowance(a.max, per_ask), keep)
                .await?;
            self.give_back(std::slice::from_ref(period), granted);
        }
        let mut held = self.lock();
        let full = periods
            .iter()
            .zip(active)
            .filter(|(p, _)| held.get(*p).copied().unwrap_or(0) == 0)
            .map(|(_, (_, a))| super::millis(a.ends))
            .max();
        if let Some(until) = full {
            return Ok(CapRoom::Full { until });
        }
        for period in &periods {
            if let Some(n) = held.get_mut(period) {
                *n -= 1;
            }
        }
        // Periods of days gone by are over.
        let today = periods.iter().map(|p| p.day).min();
        held.retain(|p, _| today.is_none_or(|t| p.day >= t) || p.channel != channel);
        Ok(CapRoom::Taken(periods))
    }

    /// Returns `n` sends to each of `periods` (a message that did not go).
    pub fn give_back(&self, periods: &[Period], n: u64) {
        if n == 0 {
            return;
        }
        let mut held = self.lock();
        for period in periods {
            *held.entry(period.clone()).or_default() += n;
        }
    }

    fn held(&self, period: &Period) -> u64 {
        self.lock().get(period).copied().unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Period, u64>> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_allowance_is_small_against_the_cap_and_at_least_one() {
        assert_eq!(allowance(100_000, 20), 20);
        assert_eq!(allowance(640, 20), 10);
        assert_eq!(allowance(10, 20), 1);
        assert_eq!(allowance(0, 20), 1, "the store grants none of a cap of 0");
    }

    #[test]
    fn sends_given_back_are_held_per_period() {
        let credits = CapCredits::default();
        let day: Date = "2026-12-05".parse().expect("date");
        let a = Period::new(ChannelKind::Sms, "{\"max\":5}".into(), day);
        let b = Period::new(ChannelKind::Sms, "{\"max\":9}".into(), day);
        credits.give_back(&[a.clone(), b.clone()], 2);
        credits.give_back(std::slice::from_ref(&a), 1);
        assert_eq!((credits.held(&a), credits.held(&b)), (3, 2));
    }
}
