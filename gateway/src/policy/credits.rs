//! Send slots of a channel's shared bandwidth that this node holds: taken
//! from the store in small batches (`Shared::pace`, GCRA on the Redis
//! server's clock), so that nodes sharing a store together keep to the
//! channel's rate while asking Redis about once per batch, not per message.

use std::{collections::HashMap, sync::Mutex, time::Duration};

// Tokio's clock (the system's, unless a test pauses it): tests step past a
// keep of a few milliseconds without a loaded machine's stall making a
// slot stale early.
use tokio::time::Instant;

use domain::{ChannelKind, Millis};
use store::{Shared, StoreError};

/// How long granted slots stay good, on this node's own clock (a caller's
/// `now` may be old: a claimed batch can wait for its turn). The store
/// grants slots at the rate with one ask's worth of burst, so in any
/// second the nodes together send at most what it granted in that second
/// and the keep before it: the rate plus 2% (the keep) plus one ask (2%
/// of the rate from 50 a second up to 12,800; one message below), whatever
/// the number of nodes. Slots kept longer would let a node send a burst
/// the others did not count on.
const SLOTS_KEEP: Duration = Duration::from_millis(20);

/// What one ask takes at most: a fiftieth of a second's worth (so that a
/// node's batch stays within the 2% of a second the rate may overshoot in
/// any second), at least one, at most 256.
pub fn slots_per_ask(rate_per_sec: f64) -> u32 {
    (rate_per_sec / 50.0).floor().clamp(1.0, 256.0) as u32
}

#[derive(Default)]
pub struct Credits {
    held: Mutex<HashMap<ChannelKind, Held>>,
    /// The version of each channel's limits the store answered the last
    /// ask with (`Paced::limits_version`).
    limits_seen: Mutex<HashMap<ChannelKind, u64>>,
}

#[derive(Clone, Copy)]
struct Held {
    slots: u32,
    good_until: Instant,
}

/// What asking for slots came to.
pub enum Slot {
    /// Slots held now (one of them taken, by [`Credits::take`]).
    Taken(u32),
    /// None free before `until`.
    Wait { until: Millis },
}

impl Credits {
    /// Takes one slot of `channel`'s bandwidth at `now`, asking the store
    /// for more when none is held.
    pub async fn take(
        &self,
        shared: &dyn Shared,
        channel: ChannelKind,
        rate_per_sec: f64,
        now: Millis,
    ) -> Result<Slot, StoreError> {
        if self.take_held(channel) {
            return Ok(Slot::Taken(1));
        }
        let slot = self.reserve(shared, channel, rate_per_sec, now).await?;
        if let Slot::Taken(_) = slot
            && !self.take_held(channel)
        {
            // Taken meanwhile by another claim of this node: ask again later.
            return Ok(Slot::Wait { until: now + 1 });
        }
        Ok(slot)
    }

    /// Makes sure slots of `channel` are held at `now`: those held, or as
    /// many as the store grants.
    pub async fn reserve(
        &self,
        shared: &dyn Shared,
        channel: ChannelKind,
        rate_per_sec: f64,
        now: Millis,
    ) -> Result<Slot, StoreError> {
        let held = self.held(channel);
        if held > 0 {
            return Ok(Slot::Taken(held));
        }
        let paced = shared
            .pace(channel.as_str(), rate_per_sec, slots_per_ask(rate_per_sec))
            .await?;
        lock(&self.limits_seen).insert(channel, paced.limits_version);
        if paced.granted == 0 {
            return Ok(Slot::Wait {
                until: now + paced.retry_ms.max(1),
            });
        }
        self.hold_granted(channel, paced.granted);
        Ok(Slot::Taken(paced.granted))
    }

    /// The version of `channel`'s limits in the store as of the last ask
    /// (0 before one).
    pub fn limits_version(&self, channel: ChannelKind) -> u64 {
        lock(&self.limits_seen).get(&channel).copied().unwrap_or(0)
    }

    fn held(&self, channel: ChannelKind) -> u32 {
        let now = Instant::now();
        self.lock()
            .get(&channel)
            .filter(|h| h.good_until >= now)
            .map_or(0, |h| h.slots)
    }

    /// Returns slots taken and not used (the message did not go after
    /// all): held again while those they came with are good, dropped once
    /// those are stale (a slot is never sent on past its keep, however
    /// long its message took to not go).
    pub fn give_back(&self, channel: ChannelKind, slots: u32) {
        let now = Instant::now();
        if let Some(h) = self.lock().get_mut(&channel)
            && h.good_until >= now
        {
            h.slots += slots;
        }
    }

    /// Holds `slots` granted now; slots added to good ones go stale with
    /// them.
    fn hold_granted(&self, channel: ChannelKind, slots: u32) {
        if slots == 0 {
            return;
        }
        let now = Instant::now();
        let fresh = Held {
            slots: 0,
            good_until: now + SLOTS_KEEP,
        };
        let mut held = self.lock();
        let entry = held.entry(channel).or_insert(fresh);
        if entry.good_until < now {
            *entry = fresh;
        }
        entry.slots += slots;
    }

    fn take_held(&self, channel: ChannelKind) -> bool {
        let now = Instant::now();
        let mut held = self.lock();
        match held.get_mut(&channel) {
            Some(h) if h.slots > 0 && h.good_until >= now => {
                h.slots -= 1;
                true
            }
            _ => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ChannelKind, Held>> {
        lock(&self.held)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store that grants every slot asked for and answers the limits
    /// version it is given.
    struct Versions(Mutex<Vec<u64>>);

    #[async_trait::async_trait]
    impl Shared for Versions {
        async fn pace(&self, _: &str, _: f64, wanted: u32) -> store::Result<store::Paced> {
            Ok(store::Paced {
                granted: wanted,
                retry_ms: 0,
                limits_version: lock(&self.0).remove(0),
            })
        }
        async fn limits_changed(&self, _: &str) -> store::Result<()> {
            Ok(())
        }
        async fn count_up_to(&self, _: &str, _: u64, wanted: u64, _: Millis) -> store::Result<u64> {
            Ok(wanted)
        }
        async fn lead(&self, _: &str, _: Millis) -> store::Result<bool> {
            Ok(true)
        }
    }

    /// The version is the last answer's, not the largest seen: a Redis that
    /// lost its data counts again from 0, and a change after that must
    /// still show. Before, the largest was kept and such a change hid
    /// behind it.
    #[tokio::test]
    async fn the_limits_version_is_the_last_answers_even_when_it_went_down() {
        let store = Versions(Mutex::new(vec![5, 1]));
        let credits = Credits::default();
        let ask = || async {
            // Slots held would spare the ask: let them go stale first.
            tokio::time::sleep(SLOTS_KEEP + Duration::from_millis(5)).await;
            credits
                .reserve(&store, ChannelKind::Sms, 1_000.0, 0)
                .await
                .map(drop)
        };
        assert_eq!(
            credits.limits_version(ChannelKind::Sms),
            0,
            "before any ask"
        );
        ask().await.expect("asks");
        assert_eq!(credits.limits_version(ChannelKind::Sms), 5);
        ask().await.expect("asks");
        assert_eq!(credits.limits_version(ChannelKind::Sms), 1);
        assert_eq!(credits.limits_version(ChannelKind::Email), 0);
    }

    #[test]
    fn an_ask_is_a_fiftieth_of_a_second_within_bounds() {
        assert_eq!(slots_per_ask(1_000.0), 20);
        assert_eq!(slots_per_ask(10.0), 1);
        assert_eq!(slots_per_ask(1e6), 256);
    }

    #[tokio::test(start_paused = true)]
    async fn slots_given_back_are_taken_again_until_they_go_stale() {
        let credits = Credits::default();
        credits.hold_granted(ChannelKind::Sms, 2);
        assert!(credits.take_held(ChannelKind::Sms));
        credits.give_back(ChannelKind::Sms, 1);
        credits.hold_granted(ChannelKind::Sms, 1);
        assert!(credits.take_held(ChannelKind::Sms));
        assert!(!credits.take_held(ChannelKind::Email));
        assert_eq!(credits.held(ChannelKind::Sms), 2);
        tokio::time::advance(SLOTS_KEEP + Duration::from_millis(5)).await;
        assert_eq!(
            credits.held(ChannelKind::Sms),
            0,
            "stale slots are not held"
        );
        assert!(
            !credits.take_held(ChannelKind::Sms),
            "stale slots are not sent on, however old the caller's clock"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_given_back_after_its_keep_is_dropped() {
        let credits = Credits::default();
        credits.hold_granted(ChannelKind::Sms, 1);
        assert!(credits.take_held(ChannelKind::Sms));
        // Its message did not go, and said so only after the keep.
        tokio::time::advance(SLOTS_KEEP + Duration::from_millis(5)).await;
        credits.give_back(ChannelKind::Sms, 1);
        assert_eq!(credits.held(ChannelKind::Sms), 0);
        assert!(
            !credits.take_held(ChannelKind::Sms),
            "a slot is not sent on past its keep"
        );
    }
}
