//! What the nodes sharing a store count together beyond the bandwidth: a
//! load cap's period, a campaign's hour in the plan. Each is a counter in
//! the store counted up only to its max (`Shared::count_up_to`); a node
//! takes a small allowance of it at a time and sends against that, so the
//! nodes together never send more than the max allows. An allowance left
//! when its period ends is lost: the nodes may send up to one allowance
//! each fewer than the max, never more.

use std::{collections::HashMap, sync::Mutex};

use domain::Millis;
use store::{Shared, StoreError};

/// How long a period's shared counter outlives the period.
const KEEP_AFTER_END_MS: Millis = 24 * 3_600_000;

/// A period counted across nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    /// What names it on every node (the store's key).
    pub name: String,
    pub max: u64,
    /// When the period ends.
    pub ends: Millis,
    /// When to ask again if it is full, and why to say it waits.
    pub full_until: Millis,
    pub full_reason: &'static str,
}

/// What asking for room came to.
#[derive(Debug, PartialEq)]
pub enum Room {
    /// One send counted in each of these periods (by name).
    Taken(Vec<String>),
    /// A period is full: ask again at `until` (the last of the full ones).
    Full { until: Millis, reason: &'static str },
}

/// How many sends one ask takes at most: about what the bandwidth sends in
/// a fiftieth of a second, and no more than a 64th of the max, so that
/// what other nodes hold unused stays a small part of it.
pub fn allowance(max: u64, per_ask: u32) -> u64 {
    u64::from(per_ask).min(max / 64).max(1)
}

/// The allowances this node holds, per period: sends left, and when the
/// period ends.
#[derive(Default)]
pub struct Allowances {
    held: Mutex<HashMap<String, (u64, Millis)>>,
}

impl Allowances {
    /// Counts one send at `now` in every period of `counted`, asking the
    /// store for an allowance of those this node holds none of; all or none.
    pub async fn take(
        &self,
        shared: &dyn Shared,
        counted: &[Counted],
        per_ask: u32,
        now: Millis,
    ) -> Result<Room, StoreError> {
        for c in counted {
            if self.held(&c.name) > 0 {
                continue;
            }
            let keep = c.ends.saturating_sub(now) + KEEP_AFTER_END_MS;
            let granted = shared
                .count_up_to(&c.name, c.max, allowance(c.max, per_ask), keep)
                .await?;
            self.add(c, granted);
        }
        let mut held = self.lock();
        // Periods over are gone.
        held.retain(|_, &mut (_, ends)| ends > now);
        let full = counted
            .iter()
            .filter(|c| held.get(&c.name).is_none_or(|&(n, _)| n == 0))
            .max_by_key(|c| c.full_until);
        if let Some(c) = full {
            return Ok(Room::Full {
                until: c.full_until,
                reason: c.full_reason,
            });
        }
        for c in counted {
            if let Some((n, _)) = held.get_mut(&c.name) {
                *n -= 1;
            }
        }
        Ok(Room::Taken(
            counted.iter().map(|c| c.name.clone()).collect(),
        ))
    }

    /// Returns one send to each of the periods named (a message that did
    /// not go).
    pub fn give_back(&self, names: &[String]) {
        let mut held = self.lock();
        for name in names {
            if let Some((n, _)) = held.get_mut(name) {
                *n += 1;
            }
        }
    }

    fn add(&self, c: &Counted, n: u64) {
        if n > 0 {
            self.lock().entry(c.name.clone()).or_insert((0, c.ends)).0 += n;
        }
    }

    fn held(&self, name: &str) -> u64 {
        self.lock().get(name).map_or(0, |&(n, _)| n)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, Millis)>> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_allowance_is_small_against_the_max_and_at_least_one() {
        assert_eq!(allowance(100_000, 20), 20);
        assert_eq!(allowance(640, 20), 10);
        assert_eq!(allowance(10, 20), 1);
        assert_eq!(allowance(0, 20), 1, "the store grants none of a max of 0");
    }

    #[test]
    fn sends_given_back_are_held_per_period_while_it_lasts() {
        let allowances = Allowances::default();
        let period = |name: &str| Counted {
            name: name.into(),
            max: 10,
            ends: 1_000,
            full_until: 1_000,
            full_reason: "test",
        };
        allowances.add(&period("a"), 2);
        allowances.add(&period("b"), 1);
        allowances.give_back(&["a".into()]);
        assert_eq!((allowances.held("a"), allowances.held("b")), (3, 1));
    }
}
