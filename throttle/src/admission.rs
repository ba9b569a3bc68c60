//! The admission decision: one call per message that combines the campaign
//! window, exclusion days, load caps, blacklist, quota and bandwidth, and
//! either records the send or says why not and when to ask again.

use jiff::Timestamp;

use crate::blacklist::Blacklist;
use crate::bucket::Bucket;
use crate::calendar;
use crate::cap::Caps;
use crate::error::Result;
use crate::exclusion::ExclusionDays;
use crate::key::CustomerKey;
use crate::limits::Limits;
use crate::quota::{QuotaBook, QuotaCheck, QuotaRule};
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
    /// The customer or address is blacklisted.
    Blacklisted,
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
            Suppression::Blacklisted => "blacklisted",
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
    /// The address (phone number or e-mail), also checked against the
    /// blacklist, if known.
    pub address: Option<CustomerKey>,
    /// The customer's segment, which selects the quota rule.
    pub segment: Option<&'a str>,
}

/// How many times the combined next-opening search may hop between
/// exclusion days and window openings.
const MAX_HOPS: usize = 64;

/// One channel's compiled limits (exclusion days, caps, bandwidth) and their
/// state. The blacklist and the quota book are passed in, so the caller can
/// keep one per channel or share one across channels.
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
        let tz = calendar::time_zone(&limits.tz)
            .map_err(|e| crate::Error::Invalid(vec![crate::Problem::new("tz", e)]))?;
        let mut problems = Vec::new();
        let caps = limits
            .compiled_caps(&mut problems)
            .into_iter()
            .map(|(_, c)| c)
            .collect();
        let old_caps = std::mem::replace(&mut self.caps, Caps::none());
        self.caps = old_caps.carry_over(tz, caps);
        self.bucket = next.bucket.continuing(&self.bucket);
        self.exclusion = next.exclusion;
        Ok(())
    }

    /// The channel's bandwidth bucket. (To change limits, build a new
    /// `Admission`; quota state lives in the [`QuotaBook`] and survives.)
    pub fn bucket(&self) -> &Bucket {
        &self.bucket
    }

    /// Decides for one message at `now`, recording the send on [`Decision::Go`].
    ///
    /// Order: blacklist and campaign end (final), campaign start, exclusion
    /// day, window, caps (deferrals), quota (final), bandwidth (deferral).
    #[inline]
    pub fn admit(
        &mut self,
        now: Timestamp,
        window: &mut Window,
        req: &Request<'_>,
        blacklist: &Blacklist,
        quotas: &mut QuotaBook,
    ) -> Result<Decision> {
        let (d, rule) = self.decide_rule(now, window, req, blacklist, quotas)?;
        if d == Decision::Go {
            self.bucket.record(now);
            self.caps.record(now)?;
            if let Some(rule) = rule {
                quotas.record(req.customer, rule, now);
            }
        }
        Ok(d)
    }

    /// [`admit`](Self::admit) for each request in order, all at `now`,
    /// appending the decisions to `out`. Same results as calling `admit` in
    /// a loop, but the customers' quota slots and blacklist entries are
    /// fetched from memory together, so with millions of customers a batch
    /// runs several times faster than one-by-one calls.
    pub fn admit_batch(
        &mut self,
        now: Timestamp,
        window: &mut Window,
        reqs: &[Request<'_>],
        blacklist: &Blacklist,
        quotas: &mut QuotaBook,
        out: &mut Vec<Decision>,
    ) -> Result<()> {
        const CHUNK: usize = 16;
        const AHEAD: usize = 4;
        // Software pipelining: while chunk k is decided, the memory for
        // chunks k + 1 ..= k + AHEAD is already on its way.
        let warm = |chunk: &[Request<'_>], quotas: &QuotaBook| {
            let mut keys = [CustomerKey(0); CHUNK];
            for (k, r) in keys.iter_mut().zip(chunk) {
                *k = r.customer;
            }
            quotas.warm(&keys[..chunk.len()]);
        };
        let chunk = |k: usize| reqs.get(k * CHUNK..((k + 1) * CHUNK).min(reqs.len()));
        for k in 0..AHEAD {
            if let Some(c) = chunk(k) {
                warm(c, quotas);
            }
        }
        let mut k = 0;
        while let Some(c) = chunk(k) {
            if let Some(next) = chunk(k + AHEAD) {
                warm(next, quotas);
            }
            for r in c {
                out.push(self.admit(now, window, r, blacklist, quotas)?);
            }
            k += 1;
        }
        Ok(())
    }

    /// As [`admit`](Self::admit) but records nothing.
    pub fn decide(
        &mut self,
        now: Timestamp,
        window: &mut Window,
        req: &Request<'_>,
        blacklist: &Blacklist,
        quotas: &QuotaBook,
    ) -> Result<Decision> {
        Ok(self.decide_rule(now, window, req, blacklist, quotas)?.0)
    }

    /// [`decide`](Self::decide), plus the quota rule that applied.
    #[inline]
    fn decide_rule(
        &mut self,
        now: Timestamp,
        window: &mut Window,
        req: &Request<'_>,
        blacklist: &Blacklist,
        quotas: &QuotaBook,
    ) -> Result<(Decision, Option<QuotaRule>)> {
        let blocked = if !blacklist.is_empty()
            && (blacklist.contains_key(req.customer)
                || req.address.is_some_and(|a| blacklist.contains_key(a)))
        {
            Decision::Suppress(Suppression::Blacklisted)
        } else if window.ended(now) {
            Decision::Suppress(Suppression::CampaignEnded)
        } else if let Some(start) = window.start().filter(|s| now < *s) {
            self.defer(Deferral::NotStarted, start, window)?
        } else if let Some(until) = self.exclusion.check(now)? {
            self.defer(Deferral::ExclusionDay, until, window)?
        } else {
            match window.check(now)? {
                Opening::Open { .. } => match self.caps.check(now)? {
                    Some(t) => self.defer(Deferral::CapReached, t, window)?,
                    None => Decision::Go,
                },
                Opening::Closed { opens: Some(t) } => {
                    self.defer(Deferral::OutsideWindow, t, window)?
                }
                Opening::Closed { opens: None } => Decision::Suppress(Suppression::CampaignEnded),
            }
        };
        if blocked != Decision::Go {
            return Ok((blocked, None));
        }
        let rule = quotas.rule_for(req.segment);
        if let Some(rule) = rule
            && let QuotaCheck::Exceeded { free_at } = quotas.check(req.customer, rule, now)
        {
            return Ok((
                Decision::Suppress(Suppression::QuotaExceeded { free_at }),
                Some(rule),
            ));
        }
        if let Err(t) = self.bucket.check(now) {
            return Ok((
                Decision::Defer {
                    reason: Deferral::RateLimited,
                    retry_at: t,
                },
                rule,
            ));
        }
        Ok((Decision::Go, rule))
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
