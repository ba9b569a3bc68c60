//! The crate's one error type.

use serde::Serialize;

/// One problem found while validating limits or a send window: the field it
/// concerns (a JSON-path-like name such as `caps[1].hours`) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Which field, e.g. `tz`, `caps[0].days[2]`, `quotas.gold.per`.
    pub field: String,
    /// What is wrong with it, in words an administrator can act on.
    pub message: String,
}

impl Problem {
    pub(crate) fn new(field: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Self {
            field: field.into(),
            message: message.to_string(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Why a time zone, an hour range or a period did not parse; each says it
/// in words an administrator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("time zone is empty")]
    EmptyTimeZone,
    #[error("unknown time zone {0:?} (expected an IANA name such as Europe/Berlin)")]
    UnknownTimeZone(String),
    #[error("{0:?} is not of the form HH:MM-HH:MM")]
    NotARange(String),
    #[error("{0:?} is not a time HH:MM (00:00 to 23:59)")]
    BadStart(String),
    #[error("{0:?} is not a time HH:MM (00:00 to 24:00)")]
    BadEnd(String),
    #[error("range {0:?} starts at 24:00")]
    StartsAtMidnight(String),
    #[error(
        "range {0:?} ends before it starts; write an overnight range as two ranges, e.g. 22:00-24:00 and 00:00-06:00"
    )]
    EndsBeforeStart(String),
    #[error("{0:?} is not an ISO 8601 period such as P7D, P1W or PT12H")]
    NotAPeriod(String),
    #[error("{0:?}: years and months have no fixed length; use days, e.g. P30D")]
    NoFixedLength(String),
    #[error("{0:?} is too long")]
    TooLong(String),
}

/// Everything that can go wrong in `throttle`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Limits or a window failed validation; every problem is listed.
    #[error("invalid configuration: {}", list(.0))]
    Invalid(Vec<Problem>),
    /// A plan refers to a campaign that was not declared.
    #[error("unknown campaign {0:?}")]
    UnknownCampaign(String),
    /// Two campaigns in one plan share an id.
    #[error("campaign {0:?} declared twice")]
    DuplicateCampaign(String),
    /// Campaign `after` references form a cycle through this campaign.
    #[error("campaign {0:?} depends on itself through `after`")]
    DependencyCycle(String),
    /// The planning horizon is empty or too long.
    #[error("bad plan horizon: {0}")]
    Horizon(String),
    /// Exported quota state could not be decoded.
    #[error("bad quota state: {0}")]
    QuotaState(&'static str),
    /// A date/time computation left the supported range.
    #[error("time out of range: {0}")]
    Time(#[from] jiff::Error),
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
