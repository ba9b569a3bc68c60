//! How long each field of a request may be (`docs/api.md#limits`), and how
//! much of a refused value an error shows: a client that sends a 50 MB name
//! gets a short refusal, not its name back on every read.

use super::{CampaignDecl, ParticipantIn};

/// A campaign's name and every short text of a declaration (sender, window
/// strings, fallback names).
pub const MAX_NAME: usize = 200;
/// A campaign or customer id (`valid_id`).
pub const MAX_ID: usize = 128;
/// A segment name, a field's name.
pub const MAX_KEY: usize = 64;
/// An address: an e-mail's 64-character local part, `@` and a 255-character
/// domain (RFC 5321 §4.5.3.1); an E.164 number is far shorter.
pub const MAX_ADDRESS: usize = 320;
/// An e-mail subject: one header line (RFC 5322 §2.1.1).
pub const MAX_SUBJECT: usize = 998;
/// An e-mail's text or HTML body, an SMS text (before rendering).
pub const MAX_BODY: usize = 1 << 20;
/// Fields per participant.
pub const MAX_FIELDS: usize = 100;
/// One field's value, as JSON.
pub const MAX_FIELD_VALUE: usize = 8 << 10;
/// Strings in one list of a window (weekdays, hours).
pub const MAX_LIST: usize = 64;

/// Characters of a refused value shown in an error before it is cut.
const SHOWN: usize = 64;
/// Characters of a whole error message, whatever its quotes hold.
const MESSAGE: usize = 1024;

/// `problems` gets "`field`: N characters, at most `max`" when `value` is longer.
fn check(problems: &mut Vec<String>, field: &str, value: &str, max: usize) {
    let n = value.chars().count();
    if n > max {
        problems.push(format!("{field}: {n} characters, at most {max}"));
    }
}

/// Every field of a declaration over its limit.
pub fn declaration_problems(d: &CampaignDecl) -> Vec<String> {
    let mut problems = Vec::new();
    let p = &mut problems;
    check(p, "name", &d.name, MAX_NAME);
    if let Some(segment) = &d.segment {
        check(p, "segment", segment, MAX_KEY);
    }
    if let Some(w) = &d.window {
        for (field, value) in [("start", &w.start), ("end", &w.end), ("tz", &w.tz)] {
            if let Some(value) = value {
                check(p, &format!("window.{field}"), value, MAX_NAME);
            }
        }
        for (field, list) in [("weekdays", &w.weekdays), ("hours", &w.hours)] {
            if list.len() > MAX_LIST {
                p.push(format!(
                    "window.{field}: {} entries, at most {MAX_LIST}",
                    list.len()
                ));
            }
            for (i, value) in list.iter().enumerate() {
                check(p, &format!("window.{field}[{i}]"), value, MAX_NAME);
            }
        }
    }
    if let Some(content) = &d.content {
        if let Some(sms) = &content.sms {
            check(p, "content.sms.from", &sms.from, MAX_NAME);
            check(p, "content.sms.text", &sms.text, MAX_BODY);
        }
        if let Some(email) = &content.email {
            check(p, "content.email.from", &email.from, MAX_ADDRESS + MAX_NAME);
            check(p, "content.email.subject", &email.subject, MAX_SUBJECT);
            check(p, "content.email.text", &email.text, MAX_BODY);
            if let Some(html) = &email.html {
                check(p, "content.email.html", html, MAX_BODY);
            }
        }
    }
    if let Some(f) = &d.fallback {
        check(p, "fallback.campaign", &f.campaign, MAX_ID);
        check(p, "fallback.address_field", &f.address_field, MAX_KEY);
        if let Some(after) = &f.after {
            check(p, "fallback.after", after, MAX_NAME);
        }
    }
    problems
}

/// The first field of a participant over its limit.
pub fn participant_problem(p: &ParticipantIn) -> Option<String> {
    let mut problems = Vec::new();
    check(&mut problems, "customer", &p.customer, MAX_ID);
    check(&mut problems, "address", &p.address, MAX_ADDRESS);
    if let Some(segment) = &p.segment {
        check(&mut problems, "segment", segment, MAX_KEY);
    }
    if p.fields.len() > MAX_FIELDS {
        problems.push(format!(
            "fields: {} fields, at most {MAX_FIELDS}",
            p.fields.len()
        ));
    }
    for (name, value) in &p.fields {
        if name.chars().count() > MAX_KEY {
            problems.push(format!(
                "fields: a name of {} characters, at most {MAX_KEY}",
                name.chars().count()
            ));
        }
        let len = value.to_string().len();
        if len > MAX_FIELD_VALUE {
            problems.push(format!(
                "fields.{}: {len} bytes of JSON, at most {MAX_FIELD_VALUE}",
                shown(name)
            ));
        }
    }
    problems.into_iter().next()
}

/// A blacklist entry (customer id or address) over its limit.
pub fn entry_problem(entry: &str) -> Option<String> {
    let mut problems = Vec::new();
    check(&mut problems, "entry", entry, MAX_ADDRESS);
    problems.into_iter().next()
}

/// `value` as an error shows it: whole up to 64 characters, else its start
/// and how long it was.
pub fn shown(value: &str) -> String {
    let n = value.chars().count();
    if n <= SHOWN {
        return value.to_owned();
    }
    let start: String = value.chars().take(SHOWN - 16).collect();
    format!("{start}… ({n} characters)")
}

/// A message with every quoted value in it (between backticks, or a JSON
/// string between double quotes as serde writes them) cut as [`shown`]
/// cuts it, whoever wrote the message.
pub fn shorten_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(4 * SHOWN));
    let mut rest = message;
    while let Some(open) = rest.find(['`', '"']) {
        let quote = rest[open..].chars().next().unwrap_or('`');
        out.push_str(&rest[..=open]);
        let body = &rest[open + 1..];
        let Some(len) = quoted_len(body, quote) else {
            out.push_str(&shown(body));
            return cut(out);
        };
        out.push_str(&shown(&body[..len]));
        out.push(quote);
        rest = &body[len + 1..];
    }
    out.push_str(rest);
    cut(out)
}

/// `message` cut to [`MESSAGE`] characters: quotes that do not pair up as
/// values (a backtick inside a value) cannot make it echo a long value.
fn cut(message: String) -> String {
    match message.char_indices().nth(MESSAGE) {
        Some((end, _)) => format!("{}… (cut)", &message[..end]),
        None => message,
    }
}

/// The length of `body` up to its closing `quote` (a double-quoted string
/// may escape a quote with a backslash), if it closes.
fn quoted_len(body: &str, quote: char) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        match c {
            '\\' if quote == '"' && !escaped => escaped = true,
            c if c == quote && !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_quoted_values_are_cut_and_short_ones_kept() {
        let long = "a".repeat(100_000);
        let cut = shorten_quoted(&format!("customer `{long}` is not valid; name `ok`"));
        assert_eq!(
            cut,
            format!(
                "customer `{}… (100000 characters)` is not valid; name `ok`",
                "a".repeat(48)
            )
        );
        let serde = format!("invalid type: string \"{long}\\\"x\", expected u64");
        let cut = shorten_quoted(&serde);
        assert!(
            cut.len() < 120 && cut.ends_with("\", expected u64"),
            "{cut}"
        );
        let unclosed = shorten_quoted(&format!("oops `{long}"));
        assert!(unclosed.len() < 100, "{unclosed}");
        assert_eq!(shorten_quoted("plain text"), "plain text");
        // A backtick inside a value pairs with the wrong one: the whole
        // message is still cut.
        let sneaky = shorten_quoted(&format!("unknown field `a`{long}`, expected `x`"));
        assert!(sneaky.chars().count() < 1100, "{}", sneaky.len());
    }

    #[test]
    fn every_field_over_its_limit_is_named() {
        let decl: CampaignDecl = serde_json::from_value(serde_json::json!({
            "channel": "email",
            "name": "n".repeat(MAX_NAME + 1),
            "segment": "s".repeat(MAX_KEY + 1),
            "content": {"email": {"from": "a@b.org", "subject": "s".repeat(MAX_SUBJECT + 1),
                                   "text": "t"}},
        }))
        .expect("declaration");
        assert_eq!(
            declaration_problems(&decl),
            [
                "name: 201 characters, at most 200",
                "segment: 65 characters, at most 64",
                "content.email.subject: 999 characters, at most 998",
            ]
        );
        let mut p: ParticipantIn =
            serde_json::from_value(serde_json::json!({"customer": "c", "address": "a@b.org"}))
                .expect("participant");
        assert_eq!(participant_problem(&p), None);
        p.fields
            .insert("big".into(), "x".repeat(MAX_FIELD_VALUE).into());
        assert_eq!(
            participant_problem(&p).as_deref(),
            Some("fields.big: 8194 bytes of JSON, at most 8192")
        );
        assert_eq!(entry_problem(&"e".repeat(MAX_ADDRESS)), None);
        assert!(entry_problem(&"e".repeat(MAX_ADDRESS + 1)).is_some());
    }
}
