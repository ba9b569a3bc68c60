//! Each running campaign's pace, for the ETA `GET /v1/campaigns/{id}`
//! shows: its pending count sampled every few seconds (and at each read),
//! and the rate it fell at over the last minute. Sampling the store's
//! counts leaves the send path untouched.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use domain::{CampaignState, Millis, now_ms};
use store::Store;
use tokio_util::sync::CancellationToken;

/// How far back the pace looks.
const WINDOW_MS: Millis = 60_000;
/// The shortest span a pace is measured over: below it one sample's
/// timing noise would dominate.
const MIN_SPAN_MS: Millis = 2_000;
/// How often running campaigns are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// How fast a campaign's pending messages go, and when none will be left.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    pub per_sec: f64,
    pub eta: Millis,
}

#[derive(Default)]
pub struct Progress {
    /// Per campaign, `(at, pending)` oldest first, within `WINDOW_MS`.
    samples: Mutex<HashMap<String, VecDeque<(Millis, u64)>>>,
}

impl Progress {
    /// Notes that `campaign` had `pending` messages at `at`.
    pub fn observe(&self, campaign: &str, at: Millis, pending: u64) {
        let mut samples = self.lock();
        let kept = samples.entry(campaign.to_owned()).or_default();
        kept.push_back((at, pending));
        while kept
            .front()
            .is_some_and(|&(t, _)| t + WINDOW_MS < at && kept.len() > 2)
        {
            kept.pop_front();
        }
    }

    /// `campaign`'s pace over the samples kept, once they span
    /// two seconds and its pending messages fell; none when they did
    /// not (paused, waiting for its window, or taking new participants
    /// faster than it sends).
    pub fn pace(&self, campaign: &str) -> Option<Pace> {
        let samples = self.lock();
        let kept = samples.get(campaign)?;
        let (&(t0, p0), &(t1, p1)) = (kept.front()?, kept.back()?);
        if t1 < t0 + MIN_SPAN_MS || p1 >= p0 {
            return None;
        }
        let per_sec = (p0 - p1) as f64 * 1000.0 / (t1 - t0) as f64;
        let eta = t1 + (p1 as f64 / per_sec * 1000.0).ceil() as Millis;
        Some(Pace { per_sec, eta })
    }

    /// Drops `campaign`'s samples: it is not running, so an old pace
    /// would mislead once it runs again.
    pub fn forget(&self, campaign: &str) {
        self.lock().remove(campaign);
    }

    /// Samples every running campaign every [`SAMPLE_EVERY`] until `stop`.
    pub async fn sample(self: Arc<Self>, store: Arc<dyn Store>, stop: CancellationToken) {
        let mut every = tokio::time::interval(SAMPLE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = every.tick() => {}
            }
            let Ok(campaigns) = store.campaigns().await else {
                continue;
            };
            for campaign in campaigns {
                if campaign.state != CampaignState::Running {
                    self.forget(&campaign.id);
                } else if let Ok(counts) = store.counts(&campaign.id).await {
                    self.observe(&campaign.id, now_ms(), pending(&counts));
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<(Millis, u64)>>> {
        self.samples
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Messages not sent yet.
pub fn pending(counts: &store::Counts) -> u64 {
    counts.by_status.get("pending").copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pace_is_how_fast_pending_fell_over_the_last_minute() {
        let progress = Progress::default();
        progress.observe("c", 0, 1_000);
        assert_eq!(progress.pace("c"), None, "one sample");
        progress.observe("c", 1_000, 900);
        assert_eq!(progress.pace("c"), None, "under two seconds");
        progress.observe("c", 5_000, 500);
        assert_eq!(
            progress.pace("c"),
            Some(Pace {
                per_sec: 100.0,
                eta: 10_000
            })
        );
        // Samples older than the window go: the pace follows a change.
        progress.observe("c", 70_000, 400);
        progress.observe("c", 80_000, 300);
        let pace = progress.pace("c").expect("falling");
        assert_eq!(pace.per_sec, 10.0, "from 400 at 70 s to 300 at 80 s");
        assert_eq!(pace.eta, 110_000);
        assert_eq!(progress.pace("other"), None);
    }

    #[test]
    fn no_pace_when_pending_does_not_fall_or_after_a_pause() {
        let progress = Progress::default();
        progress.observe("c", 0, 100);
        progress.observe("c", 5_000, 100);
        assert_eq!(progress.pace("c"), None, "standing still");
        progress.observe("c", 10_000, 150);
        assert_eq!(progress.pace("c"), None, "growing");
        progress.observe("c", 15_000, 50);
        assert!(progress.pace("c").is_some());
        progress.forget("c");
        assert_eq!(progress.pace("c"), None);
    }
}
