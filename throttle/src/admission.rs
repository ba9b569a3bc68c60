//! The admission decision: one call per message that combines the campaign
//! window, exclusion days, load caps, quota and bandwidth, and either
//! records the send or says why not and when to ask again.

use jiff::Timestamp;

use crate::bucket::Bucket;
use crate::calendar;
use crate::cap::{CapCount, Caps};
use crate::error::Result;
use crate::exclusion::ExclusionDays;
use crate::key::CustomerKey;
use crate::limits::Limits;
use crate::quota::{QuotaBook, QuotaCheck, QuotaRule, SlotHint};
use crate::window::{Opening, Window};

/// Why a message must wait (it is kept and retried, not dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Deferral {
    /// The campaign has not started yet.
    NotStarted,
    /// Outside the campaign's send window.
    OutsideWindow,
    /// Today is an exclusion day on this channel.
    ExclusionDay,
    /// A load cap's period is full.
    CapReached,
    /// The channel's bandwidth is in use; the next slot is `retry_at`.
    RateLimited,
}

/// Why a message must not be sent at all (final: record a `suppressed`
/// fact with this reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Suppression {
    /// The customer's anti-spam quota is used up; it frees at `free_at`
    /// (informational: the message is suppressed, not deferred).
    QuotaExceeded {
        /// When the customer could receive a message again.
        free_at: Timestamp,
    },
    /// The campaign has ended (or its window never opens before its end).
    CampaignEnded,
}

impl Deferral {
    /// A stable lower-case label, e.g. for metrics (`reason="cap_reached"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Deferral::NotStarted => "not_started",
            Deferral::OutsideWindow => "outside_window",
            Deferral::ExclusionDay => "exclusion_day",
            Deferral::CapReached => "cap_reached",
            Deferral::RateLimited => "rate_limited",
        }
    }
}

impl Suppression {
    /// A stable lower-case label, e.g. for facts and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Suppression::QuotaExceeded { .. } => "quota_exceeded",
            Suppression::CampaignEnded => "campaign_ended",
        }
    }
}

/// The answer to "may this message go now?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Send it now; the send has been recorded (bandwidth, caps, quota).
    Go,
    /// Not now: keep the message and ask again at `retry_at` (the earliest
    /// instant at which the blocking constraints can have lifted).
    Defer {
        /// What blocked it first.
        reason: Deferral,
        /// When to ask again.
        retry_at: Timestamp,
    },
    /// Never: drop the message and record why.
    Suppress(Suppression),
}

/// Who a message is for.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The customer ([`CustomerKey::of`] their CRM id).
    pub customer: CustomerKey,
    /// The customer's segment, which selects the quota rule.
    pub segment: Option<&'a str>,
}

/// A decision plus what recording it needs.
#[derive(Debug, Clone, Copy)]
struct Verdict {
    decision: Decision,
    /// The quota rule that applied, if any.
    rule: Option<QuotaRule>,
    /// Where the customer's quota slot was found.
    slot: SlotHint,
}

/// How many times the combined next-opening search may hop between
/// exclusion days and window openings.
const MAX_HOPS: usize = 64;

/// Requests whose memory [`Admission::admit_batch`] fetches together. Large
/// enough to keep many cache misses in flight at once, small enough that
/// what they bring in (a few cache lines per request) is still in the
/// first-level cache when the block is decided.
const BLOCK: usize = 32;

/// One channel's compiled limits (exclusion days, caps, bandwidth) and their
/// state. The quota book is passed in, so the caller can keep one per
/// channel or share one across channels.
#[derive(Debug, Clone)]
pub struct Admission {
    exclusion: ExclusionDays,
    caps: Caps,
    bucket: Bucket,
}

impl Admission {
    /// Compiles validated limits ([`Error::Invalid`](crate::Error::Invalid)
    /// lists every problem otherwise).
    pub fn new(limits: &Limits) -> Result<Admission> {
        limits.validate()?;
        let tz = calendar::time_zone(&limits.tz)
            .map_err(|e| crate::Error::Invalid(vec![crate::Problem::new("tz", e)]))?;
        let mut problems = Vec::new();
        let caps = limits
            .compiled_caps(&mut problems)
            .into_iter()
            .map(|(_, c)| c)
            .collect();
        let burst = limits.burst.map_or(1, |b| u32::try_from(b).unwrap_or(1));
        Ok(Admission {
            exclusion: ExclusionDays::new(
                tz.clone(),
                limits
                    .exclusion_days
                    .iter()
                    .filter_map(|d| calendar::date(d)),
            ),
            caps: Caps::new(tz, caps),
            bucket: Bucket::new(limits.rate_per_sec, burst)?,
        })
    }

    /// Applies new limits without a restart: cap counters of unchanged caps
    /// and the bandwidth schedule carry over, so an edit never releases a
    /// burst or resets a partly used cap. (Quota rules live in the
    /// [`QuotaBook`]: call [`QuotaBook::set_rules`] with
    /// [`Limits::quota_rules`].)
    pub fn set_limits(&mut self, limits: &Limits) -> Result<()> {
        let next = Admission::new(limits)?;
        let old_caps = std::mem::replace(&mut self.caps, Caps::none());
        self.caps = old_caps.carry_over(next.caps);
        self.bucket = next.bucket.continuing(&self.bucket);
        self.exclusion = next.exclusion;
        Ok(())
    }

    /// The load caps' instances applying at `now`.
    pub fn active_caps(&mut self, now: Timestamp) -> Result<Vec<crate::ActiveCap>> {
        self.caps.active(now)
    }

    /// The load caps' counters of the last two days, to persist (e.g. every
    /// second) and [`restore`](Admission::restore_cap_count) after a restart.
    pub fn cap_counts(&self) -> Vec<CapCount> {
        self.caps.counters()
    }

    /// Raises a cap's counter to a persisted count. `counter.cap` must index
    /// the same cap in these limits as where it was counted.
    pub fn restore_cap_count(&mut self, counter: CapCount) {
        self.caps.restore(counter);
    }

    /// The channel's bandwidth bucket. (To change limits, build a new
    /// `Admission`; quota state lives in the [`QuotaBook`] and survives.)
    pub fn bucket(&self) -> &Bucket {
        &self.bucket
    }

    /// Takes back from the caps a send recorded at `at` that did not go
    /// (its bandwidth is spent either way; a quota send is taken back from
    /// the [`QuotaBook`] with [`QuotaBook::forget`]).
    pub fn unrecord_caps(&mut self, at: Timestamp) -> Result<()> {
        self.caps.unrecord(at)
    }

    /// Decides for one message at `now`, recording the send on [`Decision::Go`].
    ///
    /// Order: campaign end (final), campaign start, exclusion day, window,
    /// caps (deferrals), quota (final), bandwidth (deferral).
    #[inline]
    pub fn admit(
        &mut self,
        now: Timestamp,
        window: &mut Window,
        req: &Request<'_>,
        quotas: &mut QuotaBook,
    ) -> Result<Decision> {
        let v = self.decide_rule(now, window, req, quotas, None)?;
        self.commit(now, req, quotas, v)
    }

    /// Records the send of a [`Decision::Go`] verdict.
    #[inline]
    fn commit(
        &mut self,
        now: Timestamp,
        req: &Request<'_>,
        quotas: &mut QuotaBook,
        v: Verdict,
    ) -> Result<Decision> {
        if v.decision == Decision::Go {
            self.bucket.record(now);
            self.caps.record(now)?;
            if let Some(rule) = v.rule {
                quotas.record_at(req.customer, rule, now, v.slot);
            }
        }
        Ok(v.decision)
    }

    /// [`admit`](Self::admit) for each request in order, all at `now`,
    /// appending the decisions to `out`. Same results as calling `admit` in
    /// a loop, but with millions of customers several times faster: the
    /// memory each block of 32 requests needs is fetched together, instead
    /// of one cache miss after another.
    pub fn admit_batch(
        &mut self,
        now: Timestamp,
        window: &mut Window,
        reqs: &[Request<'_>],
        quotas: &mut QuotaBook,
        out: &mut Vec<Decision>,
    ) -> Result<()> {
        // Every request shares `now`, so the campaign and calendar part of
        // the decision (start, end, exclusion day, window) is the same for
        // all: work it out once, at the first request that needs it.
        let mut gate: Option<Option<Decision>> = None;
        let mut keys = [CustomerKey(0); BLOCK];
        for block in reqs.chunks(BLOCK) {
            // Pass one: independent loads only, so the CPU overlaps their
            // cache misses. The quota slots are only warmed, as deciding
            // may change them.
            for (key, r) in keys.iter_mut().zip(block) {
                *key = r.customer;
            }
            quotas.warm(&keys[..block.len()]);
            // Pass two: decide in order, from the cache.
            for r in block {
                let v = self.decide_rule(now, window, r, quotas, Some(&mut gate))?;
                out.push(self.commit(now, r, quotas, v)?);
            }
        }
        Ok(())
    }

    /// What `req` gets now, without recording it, and what
    /// [`commit`](Self::commit) needs to record it.
    /// `gate` caches [`gate`](Self::gate) across calls that share `now`
    /// and `window` (`Some(None)` until the first call fills it).
    #[inline]
    fn decide_rule(
        &mut self,
        now: Timestamp,
        window: &mut Window,
        req: &Request<'_>,
        quotas: &QuotaBook,
        gate: Option<&mut Option<Option<Decision>>>,
    ) -> Result<Verdict> {
        let blocked = |decision| Verdict {
            decision,
            rule: None,
            slot: SlotHint::NONE,
        };
        let closed = match gate {
            None => self.gate(now, window)?,
            Some(Some(g)) => *g,
            Some(cache) => *cache.insert(self.gate(now, window)?),
        };
        if let Some(d) = closed {
            return Ok(blocked(d));
        }
        if let Some(t) = self.caps.check(now)? {
            return Ok(blocked(self.defer(Deferral::CapReached, t, window)?));
        }
        let rule = quotas.rule_for(req.segment);
        let mut slot = SlotHint::NONE;
        if let Some(rule) = rule {
            let (check, s) = quotas.check_slot(req.customer, rule, now);
            if let QuotaCheck::Exceeded { free_at } = check {
                return Ok(Verdict {
                    decision: Decision::Suppress(Suppression::QuotaExceeded { free_at }),
                    rule: Some(rule),
                    slot: s,
                });
            }
            slot = s;
        }
        if let Err(t) = self.bucket.check(now) {
            return Ok(Verdict {
                decision: Decision::Defer {
                    reason: Deferral::RateLimited,
                    retry_at: t,
                },
                rule,
                slot,
            });
        }
        Ok(Verdict {
            decision: Decision::Go,
            rule,
            slot,
        })
    }

    /// The part of the decision that depends only on `now` and the
    /// campaign: `None` if the campaign has started, has not ended, today is
    /// not excluded and the window is open; otherwise the decision.
    #[inline]
    fn gate(&mut self, now: Timestamp, window: &mut Window) -> Result<Option<Decision>> {
        Ok(Some(if window.ended(now) {
            Decision::Suppress(Suppression::CampaignEnded)
        } else if let Some(start) = window.start().filter(|s| now < *s) {
            self.defer(Deferral::NotStarted, start, window)?
        } else if let Some(until) = self.exclusion.check(now)? {
            self.defer(Deferral::ExclusionDay, until, window)?
        } else {
            match window.check(now)? {
                Opening::Open { .. } => return Ok(None),
                Opening::Closed { opens: Some(t) } => {
                    self.defer(Deferral::OutsideWindow, t, window)?
                }
                Opening::Closed { opens: None } => Decision::Suppress(Suppression::CampaignEnded),
            }
        }))
    }

    /// A deferral whose `retry_at` is moved past exclusion days and window
    /// closings, so that the dispatcher does not wake up only to be told to
    /// wait again.
    fn defer(&self, reason: Deferral, from: Timestamp, window: &Window) -> Result<Decision> {
        let mut t = from;
        for _ in 0..MAX_HOPS {
            if let Some(until) = self.exclusion.peek(t)? {
                t = until;
                continue;
            }
            match window.at(t)? {
                Opening::Open { .. } => break,
                Opening::Closed { opens: Some(o) } => t = o,
                Opening::Closed { opens: None } => {
                    return Ok(Decision::Suppress(Suppression::CampaignEnded));
                }
            }
        }
        Ok(Decision::Defer {
            reason,
            retry_at: t,
        })
    }
}

#[cfg(test)]
mod tests;
