//! Channel load policy for sluice: may this message go now, and if not, why
//! and when to ask again; and the load plan of a channel.
//!
//! Everything here is pure and synchronous and takes `now` as an argument;
//! nothing reads a clock, sleeps, does I/O or spawns. The crate does not send,
//! store or schedule messages, and knows nothing of the gateway: the
//! dispatcher asks [`Admission::admit`] (or [`Admission::admit_batch`]) before
//! each send and persists quota state through [`QuotaBook::export`] /
//! [`QuotaBook::import`].
//!
//! Main types: [`Limits`] (a channel's limits as the administrator writes
//! them; [`Limits::validate`] lists every problem), [`Admission`] (one
//! channel's exclusion days, load caps and bandwidth [`Bucket`], with their
//! state), [`Window`] (a campaign's send window and start/end, in its own
//! time zone), [`QuotaBook`] (exact "at most N per P" per customer and
//! segment in about 15 bytes per customer), [`Decision`] (go, defer until an
//! instant, or suppress with a reason), and the load planner [`plan::plan`].
//! The quota book is passed to each call, so one can serve a single channel
//! or be shared by several.
//!
//! Blacklists are not kept here: the caller checks its own suppression list
//! (blacklist entries, hard bounces, opt-outs) before asking for admission.
//!
//! ```
//! use throttle::{Admission, CustomerKey, Decision, Limits, QuotaBook, Request, Window, WindowSpec};
//! # fn main() -> throttle::Result<()> {
//! let limits: Limits = serde_json::from_str(r#"{"rate_per_sec": 50, "tz": "Europe/Berlin",
//!     "exclusion_days": ["2026-12-24"], "quotas": {"*": {"max": 1, "per": "P7D"}}}"#).unwrap();
//! limits.validate()?; // Err(Error::Invalid(every problem)) -> HTTP 422
//! let now: throttle::jiff::Timestamp = "2026-11-23T09:00:00Z".parse().unwrap();
//! let mut channel = Admission::new(&limits)?;
//! let mut quotas = QuotaBook::new(limits.quota_rules()?, now);
//! let spec = WindowSpec { tz: "Europe/Berlin".into(), days: None, hours: Some(vec!["09:00-18:00".into()]) };
//! let mut window = Window::new(&spec, None, None)?;
//! let req = Request { customer: CustomerKey::of("crm-42"), segment: Some("gold") };
//! assert_eq!(channel.admit(now, &mut window, &req, &mut quotas)?, Decision::Go);
//! // Persist after a send; import on start-up so a restart never resets a quota.
//! let bytes = quotas.export(req.customer).map(|s| s.to_bytes());
//! // A second message to the same customer within 7 days is suppressed.
//! assert!(matches!(channel.admit(now, &mut window, &req, &mut quotas)?, Decision::Suppress(_)));
//! # let _ = bytes; Ok(()) }
//! ```

mod admission;
mod bucket;
pub mod calendar;
mod cap;
mod error;
mod exclusion;
mod key;
mod limits;
pub mod plan;
mod quota;
mod window;

/// The time library of this crate's API (`Timestamp`, time zones), re-exported
/// so callers use the same version.
pub use jiff;

pub use admission::{Admission, Decision, Deferral, Request, Suppression};
pub use bucket::Bucket;
pub use cap::{ActiveCap, CapCount, CapSpec, Caps};
pub use error::{Error, ParseError, Problem, Result};
pub use exclusion::ExclusionDays;
pub use key::{CustomerKey, hash64};
pub use limits::{Limits, QuotaSpec, parse_period};
pub use quota::{MAX_PERIOD_SECS, QuotaBook, QuotaCheck, QuotaRule, QuotaState, UNIT_SECS};
pub use window::{Opening, Window, WindowSpec};
