//! Why a campaign's content or a participant cannot be sent: said to the
//! CRM (a declaration's problems, an upload's rejected lines) or in a
//! message's `failed` fact.

use std::collections::BTreeSet;

use smpp::text::TooManyParts;

use crate::template::TemplateError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unfit {
    #[error("address `{0}` is not an e-mail address")]
    NotAnEmailAddress(String),
    #[error("address `{0}` is not an E.164 number")]
    NotANumber(String),
    /// An e-mail's templates name fields the participant lacks.
    #[error("missing template field(s) {}", quoted(.0))]
    MissingTemplateFields(BTreeSet<String>),
    /// An SMS text names fields the participant lacks.
    #[error("missing field(s): {}", listed(.0))]
    MissingFields(BTreeSet<String>),
    #[error(transparent)]
    TooManyParts(#[from] TooManyParts),
    #[error("campaign has no {0} content")]
    NoContent(&'static str),
    /// The e-mail content's problems, each naming its field.
    #[error("{}", .0.join("; "))]
    EmailContent(Vec<String>),
    #[error("content.sms.from: `{0}` is not a number or 1 to 11 letters and digits")]
    SmsSender(String),
    #[error("content.sms.text: {0}")]
    SmsText(TemplateError),
}

/// `` `a`, `b` ``
fn quoted(names: &BTreeSet<String>) -> String {
    names
        .iter()
        .map(|f| format!("`{f}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `a, b`
fn listed(names: &BTreeSet<String>) -> String {
    names.iter().cloned().collect::<Vec<_>>().join(", ")
}
