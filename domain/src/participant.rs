//! Participants: who a campaign sends to, with the fields its templates fill.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One customer of a campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Participant {
    pub customer: String,
    /// E-mail address or `+E.164` number.
    pub address: String,
    /// The anti-spam segment (the campaign's when absent).
    pub segment: Option<String>,
    pub fields: Fields,
}

/// A participant's template fields by name.
pub type Fields = BTreeMap<String, FieldValue>;

/// One field's value as the CRM sent it (a JSON value), kept so that it
/// renders exactly as it was written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FieldValue {
    Null,
    Bool(bool),
    /// A number as its JSON text (`12`, `1.5e3`).
    Number(String),
    Text(String),
    /// An array or object, as compact JSON text.
    Json(String),
}

/// The fields of a participant as the CRM sent them (JSON values by name).
pub fn fields_from_json(json: impl IntoIterator<Item = (String, serde_json::Value)>) -> Fields {
    json.into_iter()
        .map(|(name, value)| (name, FieldValue::from_json(value)))
        .collect()
}

impl FieldValue {
    /// The value of a JSON field.
    pub fn from_json(value: serde_json::Value) -> Self {
        match value {
            serde_json::Value::Null => Self::Null,
            serde_json::Value::Bool(b) => Self::Bool(b),
            serde_json::Value::Number(n) => Self::Number(n.to_string()),
            serde_json::Value::String(s) => Self::Text(s),
            other => Self::Json(other.to_string()),
        }
    }

    /// What a template puts in for it: text as it is, null as nothing,
    /// anything else as its JSON text.
    pub fn render(&self) -> &str {
        match self {
            Self::Null => "",
            Self::Bool(true) => "true",
            Self::Bool(false) => "false",
            Self::Number(text) | Self::Text(text) | Self::Json(text) => text,
        }
    }
}

/// E.164 as participants give it: `+` then 8 to 15 digits, no leading zero.
pub fn is_msisdn(address: &str) -> bool {
    address.strip_prefix('+').is_some_and(|d| {
        (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) && !d.starts_with('0')
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fields_render_as_their_json_did() {
        for value in [
            json!(null),
            json!(true),
            json!(12),
            json!(-3),
            json!(1.5e300),
            json!(0.1),
            json!("text \"quoted\""),
            json!([1, "a"]),
            json!({"k": {"n": 1}}),
        ] {
            let expected = match &value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => String::new(),
                other => other.to_string(),
            };
            assert_eq!(FieldValue::from_json(value).render(), expected);
        }
    }
}
