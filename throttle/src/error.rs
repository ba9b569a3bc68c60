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
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
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
