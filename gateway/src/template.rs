//! `{{field}}` templates: parsed once per campaign, filled per participant.
//! Fields come from the participant (`customer`, `address`, `segment`) and
//! from the extra `fields` the CRM attached.

use std::collections::BTreeSet;

use domain::Participant;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(String),
}

/// How a filled-in value is written into the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// As is (plain text bodies).
    None,
    /// `& < > " '` escaped (HTML bodies).
    Html,
    /// Line breaks folded to spaces (header values such as the subject).
    Header,
    /// Percent-encoded but for RFC 3986's unreserved characters (a value in
    /// a URL's path segment, query or fragment: it can end none of them).
    Url,
}

/// Why a template did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("`{{{{` at byte {at} is never closed")]
    Unclosed { at: usize },
    #[error("`{{{{{0}}}}}` is not a field name")]
    NotAFieldName(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `text`; an unclosed `{{` or an empty name is an error.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or(TemplateError::Unclosed {
                at: text.len() - rest.len() + open,
            })?;
            let name = after[..close].trim();
            // `{{untracked:URL}}` is the link tracker's marker: left as written.
            if name.starts_with("untracked:") {
                parts.push(Part::Text(rest[open..open + close + 4].to_owned()));
                rest = &after[close + 2..];
                continue;
            }
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            {
                return Err(TemplateError::NotAFieldName(after[..close].to_owned()));
            }
            parts.push(Part::Field(name.to_owned()));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Self { parts })
    }

    /// Field names the template needs.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Field(f) => Some(f.as_str()),
            Part::Text(_) => None,
        })
    }

    pub fn render(&self, p: &Participant, escape: Escape) -> String {
        let mut out = String::with_capacity(
            self.parts
                .iter()
                .map(|p| match p {
                    Part::Text(t) => t.len(),
                    Part::Field(_) => 16,
                })
                .sum(),
        );
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Field(name) => {
                    push_escaped(&mut out, &field_value(p, name).unwrap_or_default(), escape)
                }
            }
        }
        out
    }
}

/// The value of a field for a participant, if it has one.
pub fn field_value(p: &Participant, name: &str) -> Option<String> {
    match name {
        "customer" => Some(p.customer.clone()),
        "address" => Some(p.address.clone()),
        "segment" => p.segment.clone(),
        _ => p.fields.get(name).map(|v| v.render().to_owned()),
    }
}

/// Fields a set of templates needs that a participant lacks.
pub fn missing_fields<'a>(
    templates: impl IntoIterator<Item = &'a Template>,
    p: &Participant,
) -> BTreeSet<String> {
    templates
        .into_iter()
        .flat_map(Template::fields)
        .filter(|f| field_value(p, f).is_none())
        .map(str::to_owned)
        .collect()
}

fn push_escaped(out: &mut String, value: &str, escape: Escape) {
    match escape {
        Escape::None => out.push_str(value),
        Escape::Header => out.extend(
            value
                .chars()
                .map(|c| if c == '\r' || c == '\n' { ' ' } else { c }),
        ),
        Escape::Url => {
            for byte in value.bytes() {
                if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                    out.push(char::from(byte));
                } else {
                    out.push_str(&format!("%{byte:02X}"));
                }
            }
        }
        Escape::Html => {
            for c in value.chars() {
                match c {
                    '&' => out.push_str("&amp;"),
                    '<' => out.push_str("&lt;"),
                    '>' => out.push_str("&gt;"),
                    '"' => out.push_str("&quot;"),
                    '\'' => out.push_str("&#39;"),
                    c => out.push(c),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use domain::FieldValue;

    use super::*;

    fn participant() -> Participant {
        let mut p = Participant {
            customer: "c42".into(),
            address: "ann@example.org".into(),
            segment: Some("gold".into()),
            fields: Default::default(),
        };
        p.fields.insert(
            "name".into(),
            FieldValue::from_json(serde_json::json!("Ann <&> \"O'Neil\"")),
        );
        p.fields
            .insert("gb".into(), FieldValue::from_json(serde_json::json!(21.5)));
        p
    }

    #[test]
    fn fills_fields_with_the_right_escaping() {
        let t = Template::parse("Hi {{ name }}, you used {{gb}} GB ({{segment}}/{{customer}})")
            .expect("parse");
        let p = participant();
        assert_eq!(
            t.render(&p, Escape::None),
            "Hi Ann <&> \"O'Neil\", you used 21.5 GB (gold/c42)"
        );
        assert_eq!(
            t.render(&p, Escape::Html),
            "Hi Ann &lt;&amp;&gt; &quot;O&#39;Neil&quot;, you used 21.5 GB (gold/c42)"
        );
    }

    #[test]
    fn header_values_cannot_inject_lines() {
        let t = Template::parse("Offer for {{name}}").expect("parse");
        let mut p = participant();
        p.fields.insert(
            "name".into(),
            FieldValue::from_json(serde_json::json!("x\r\nBcc: evil@example.com")),
        );
        assert_eq!(
            t.render(&p, Escape::Header),
            "Offer for x  Bcc: evil@example.com"
        );
    }

    #[test]
    fn reports_missing_fields_and_bad_templates() {
        let t = Template::parse("{{name}} {{plan}}").expect("parse");
        let missing = missing_fields([&t], &participant());
        assert_eq!(
            missing.into_iter().collect::<Vec<_>>(),
            vec!["plan".to_owned()]
        );
        assert!(Template::parse("Hi {{name").is_err());
        assert!(Template::parse("Hi {{}}").is_err());
        assert!(Template::parse("Hi {{a b}}").is_err());
        assert_eq!(
            Template::parse("no fields")
                .expect("parse")
                .render(&participant(), Escape::None),
            "no fields"
        );
    }

    #[test]
    fn the_untracked_link_marker_is_left_for_the_link_tracker() {
        let t =
            Template::parse("see {{untracked:https://x.example/a?b=1}} {{name}}").expect("parse");
        assert_eq!(t.fields().collect::<Vec<_>>(), vec!["name"]);
        let out = t.render(&participant(), Escape::Html);
        assert!(
            out.starts_with("see {{untracked:https://x.example/a?b=1}} Ann"),
            "{out}"
        );
    }

    #[test]
    fn parse_errors_say_where_and_what() {
        assert_eq!(
            Template::parse("Hi {{name")
                .expect_err("unclosed")
                .to_string(),
            "`{{` at byte 3 is never closed"
        );
        assert_eq!(
            Template::parse("Hi {{ two words }}")
                .expect_err("bad name")
                .to_string(),
            "`{{ two words }}` is not a field name"
        );
    }

    proptest::proptest! {
        /// Any template text parses or is refused, and any parsed one
        /// renders any field values under every escaping without panic; a
        /// header value never gets a line break.
        #[test]
        fn any_template_and_values_render_without_panic(text in "\\PC{0,60}|[{}a-z ]{0,30}", value in "\\PC{0,30}|[\r\n<>&\"' a-z]{0,30}") {
            let Ok(template) = Template::parse(&text) else {
                return Ok(());
            };
            let mut p = participant();
            for field in template.fields().map(str::to_owned).collect::<Vec<_>>() {
                p.fields.insert(field, domain::FieldValue::Text(value.clone()));
            }
            for escape in [Escape::None, Escape::Html, Escape::Header, Escape::Url] {
                let out = template.render(&p, escape);
                if escape == Escape::Header {
                    proptest::prop_assert!(!out.contains(['\r', '\n']) || text.contains(['\r', '\n']), "{:?}", out);
                }
            }
        }
    }
}
