//! Channel load policy for sluice: may this message go now, and if not, why
//! and when to ask again.
//!
//! Everything here is pure and synchronous and takes `now` as an argument;
//! nothing reads a clock, sleeps, does I/O or spawns. The crate does not send,
//! store or schedule messages: the gateway's dispatcher asks
//! [`Admission::admit`] before each send and persists quota state through
//! [`QuotaBook::export`]/[`QuotaBook::import`].
//!
//! Main types: [`Limits`] (a channel's limits as the administrator writes
//! them, with [`Limits::validate`] listing every problem), [`Admission`] (one
//! channel's compiled policy and state: exclusion days, load caps, blacklist,
//! per-segment quotas and the bandwidth [`Bucket`]), [`Window`] (a campaign's
//! send window and start/end), [`Decision`] (go, defer until, or suppress with
//! a reason), [`QuotaBook`] (exact "at most N per P" per customer in about 16
//! bytes each), [`Blacklist`], and the load planner [`plan::plan`].

mod admission;
mod blacklist;
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
pub use blacklist::Blacklist;
pub use bucket::Bucket;
pub use cap::{CapSpec, Caps};
pub use error::{Error, Problem, Result};
pub use exclusion::ExclusionDays;
pub use key::{CustomerKey, hash64};
pub use limits::{Limits, QuotaSpec, parse_period};
pub use quota::{MAX_PERIOD_SECS, QuotaBook, QuotaCheck, QuotaRule, QuotaState, UNIT_SECS};
pub use window::{Opening, Window, WindowSpec};
