//! A small JSON Schema (2020-12) validator for the subset `openapi.json`
//! uses, so that the handlers' answers are checked against the document
//! without a validator crate's dependency tree. A schema keyword it does not
//! implement is an error ([`unsupported`]), never silently passed: the
//! document cannot use a constraint this check would not enforce.

use std::cmp::Ordering;

use serde_json::{Number, Value};

/// Keywords that only annotate: nothing to check.
const ANNOTATIONS: &[&str] = &[
    "description",
    "title",
    "default",
    "example",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$comment",
];

/// Keywords [`validate`] checks.
const CHECKED: &[&str] = &[
    "$ref",
    "type",
    "enum",
    "const",
    "format",
    "properties",
    "required",
    "additionalProperties",
    "propertyNames",
    "minProperties",
    "maxProperties",
    "items",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "allOf",
    "anyOf",
    "oneOf",
];

/// Formats [`validate`] checks; any other is refused by [`unsupported`].
const FORMATS: &[&str] = &["date-time"];

/// Every keyword of `schema` and its subschemas (not following `$ref`s)
/// that [`validate`] would not check, as `at/keyword`; and in a closed
/// object (`additionalProperties: false`), every `required` member its
/// `properties` do not describe (Schemathesis would take it as any value).
pub fn unsupported(schema: &Value, at: &str, found: &mut Vec<String>) {
    let Some(object) = schema.as_object() else {
        if !schema.is_boolean() {
            found.push(format!("{at}: a schema must be an object or a boolean"));
        }
        return;
    };
    if let (Some(required), Some(properties), Some(Value::Bool(false))) = (
        object.get("required").and_then(Value::as_array),
        object.get("properties").and_then(Value::as_object),
        object.get("additionalProperties"),
    ) {
        for name in required.iter().filter_map(Value::as_str) {
            if !properties.contains_key(name) {
                found.push(format!("{at}/required: `{name}` is not in properties"));
            }
        }
    }
    for (keyword, value) in object {
        let here = format!("{at}/{keyword}");
        if ANNOTATIONS.contains(&keyword.as_str()) {
            continue;
        }
        if !CHECKED.contains(&keyword.as_str()) {
            found.push(here);
            continue;
        }
        match keyword.as_str() {
            "format" if !value.as_str().is_some_and(|f| FORMATS.contains(&f)) => {
                found.push(format!("{here}: {value}"));
            }
            "properties" => {
                for (name, sub) in value.as_object().into_iter().flatten() {
                    unsupported(sub, &format!("{here}/{name}"), found);
                }
            }
            "additionalProperties" | "propertyNames" | "items" => unsupported(value, &here, found),
            "allOf" | "anyOf" | "oneOf" => {
                for (i, sub) in value.as_array().into_iter().flatten().enumerate() {
                    unsupported(sub, &format!("{here}/{i}"), found);
                }
            }
            _ => {}
        }
    }
}

/// Checks `instance` against `schema`, whose `$ref`s point into `root`;
/// each violation is pushed to `errors`, named by its place in the instance.
pub fn validate(
    root: &Value,
    schema: &Value,
    instance: &Value,
    at: &str,
    errors: &mut Vec<String>,
) {
    let object = match schema {
        Value::Bool(true) => return,
        Value::Bool(false) => {
            errors.push(format!("{at}: no value is allowed here"));
            return;
        }
        Value::Object(object) => object,
        _ => {
            errors.push(format!("{at}: the schema is not an object: {schema}"));
            return;
        }
    };
    for (keyword, value) in object {
        if ANNOTATIONS.contains(&keyword.as_str()) {
            continue;
        }
        let mut fail = |why: String| errors.push(format!("{at}: {why}"));
        match keyword.as_str() {
            "$ref" => match value.as_str().and_then(|r| resolve(root, r)) {
                Some(target) => validate(root, target, instance, at, errors),
                None => fail(format!("unresolved $ref {value}")),
            },
            "type" => {
                let types: Vec<&str> = match value {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                    _ => vec![],
                };
                if !types.iter().any(|t| has_type(instance, t)) {
                    fail(format!("{} is not of type {value}", short(instance)));
                }
            }
            "enum" => {
                if !value.as_array().is_some_and(|vs| vs.contains(instance)) {
                    fail(format!("{} is not one of {value}", short(instance)));
                }
            }
            "const" => {
                if value != instance {
                    fail(format!("{} is not {value}", short(instance)));
                }
            }
            "format" => {
                if let (Some("date-time"), Some(text)) = (value.as_str(), instance.as_str())
                    && !is_date_time(text)
                {
                    fail(format!("`{text}` is not an RFC 3339 date-time"));
                }
            }
            "required" => {
                if let Some(members) = instance.as_object() {
                    for name in value
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                    {
                        if !members.contains_key(name) {
                            fail(format!("required member `{name}` is missing"));
                        }
                    }
                }
            }
            "properties" => {
                if let (Some(members), Some(properties)) = (instance.as_object(), value.as_object())
                {
                    for (name, member) in members {
                        if let Some(sub) = properties.get(name) {
                            validate(root, sub, member, &format!("{at}/{name}"), errors);
                        }
                    }
                }
            }
            "additionalProperties" => {
                if let Some(members) = instance.as_object() {
                    let known = object.get("properties").and_then(Value::as_object);
                    for (name, member) in members {
                        if known.is_some_and(|k| k.contains_key(name)) {
                            continue;
                        }
                        if value == &Value::Bool(false) {
                            errors.push(format!("{at}: member `{name}` is not in the document"));
                        } else {
                            validate(root, value, member, &format!("{at}/{name}"), errors);
                        }
                    }
                }
            }
            "propertyNames" => {
                for name in instance.as_object().into_iter().flat_map(|m| m.keys()) {
                    let name = Value::String(name.clone());
                    validate(
                        root,
                        value,
                        &name,
                        &format!("{at} (a member's name)"),
                        errors,
                    );
                }
            }
            "minProperties" | "maxProperties" => {
                if let (Some(members), Some(n)) = (instance.as_object(), value.as_u64()) {
                    let len = members.len() as u64;
                    if (keyword == "minProperties" && len < n)
                        || (keyword == "maxProperties" && len > n)
                    {
                        fail(format!("{len} members, {keyword} {n}"));
                    }
                }
            }
            "items" => {
                for (i, item) in instance.as_array().into_iter().flatten().enumerate() {
                    validate(root, value, item, &format!("{at}/{i}"), errors);
                }
            }
            "minItems" | "maxItems" => {
                if let (Some(items), Some(n)) = (instance.as_array(), value.as_u64()) {
                    let len = items.len() as u64;
                    if (keyword == "minItems" && len < n) || (keyword == "maxItems" && len > n) {
                        fail(format!("{len} items, {keyword} {n}"));
                    }
                }
            }
            "minLength" | "maxLength" => {
                if let (Some(text), Some(n)) = (instance.as_str(), value.as_u64()) {
                    let len = text.chars().count() as u64;
                    if (keyword == "minLength" && len < n) || (keyword == "maxLength" && len > n) {
                        fail(format!("{len} characters, {keyword} {n}"));
                    }
                }
            }
            "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum" => {
                if let (Value::Number(x), Value::Number(bound)) = (instance, value) {
                    let order = compare(x, bound);
                    let ok = match keyword.as_str() {
                        "minimum" => order != Ordering::Less,
                        "maximum" => order != Ordering::Greater,
                        "exclusiveMinimum" => order == Ordering::Greater,
                        _ => order == Ordering::Less,
                    };
                    if !ok {
                        fail(format!("{x} is beyond {keyword} {bound}"));
                    }
                }
            }
            "allOf" | "anyOf" | "oneOf" => {
                let branches = value.as_array().map(Vec::as_slice).unwrap_or_default();
                let mut failures = Vec::new();
                let mut passed = 0;
                for branch in branches {
                    let mut branch_errors = Vec::new();
                    validate(root, branch, instance, at, &mut branch_errors);
                    if branch_errors.is_empty() {
                        passed += 1;
                    }
                    failures.extend(branch_errors);
                }
                match keyword.as_str() {
                    "allOf" => errors.extend(failures),
                    "anyOf" if passed == 0 => {
                        fail(format!(
                            "no branch of anyOf matches: {}",
                            failures.join("; ")
                        ));
                    }
                    "oneOf" if passed != 1 => {
                        fail(format!(
                            "{passed} branches of oneOf match, not one: {}",
                            failures.join("; ")
                        ));
                    }
                    _ => {}
                }
            }
            other => fail(format!("the validator does not implement `{other}`")),
        }
    }
}

/// The value a local reference (`#/components/...`) points at.
pub fn resolve<'a>(root: &'a Value, reference: &str) -> Option<&'a Value> {
    root.pointer(reference.strip_prefix('#')?)
}

fn has_type(value: &Value, name: &str) -> bool {
    match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => match value {
            Value::Number(n) => {
                n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            _ => false,
        },
        _ => false,
    }
}

/// Compares exactly when both are integers, else as floats.
fn compare(a: &Number, b: &Number) -> Ordering {
    let int = |n: &Number| {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    };
    match (int(a), int(b)) {
        (Some(a), Some(b)) => a.cmp(&b),
        _ => {
            let (a, b) = (
                a.as_f64().unwrap_or(f64::NAN),
                b.as_f64().unwrap_or(f64::NAN),
            );
            a.partial_cmp(&b).unwrap_or(Ordering::Equal)
        }
    }
}

/// RFC 3339 `date-time`: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
pub fn is_date_time(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        b.get(range.clone())
            .is_some_and(|d| d.len() == range.len() && d.iter().all(u8::is_ascii_digit))
    };
    let number = |range: std::ops::Range<usize>| {
        text.get(range)
            .and_then(|d| d.parse::<u32>().ok())
            .unwrap_or(99)
    };
    let shape = digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10)
        && matches!(b.get(10), Some(b'T' | b't'))
        && digits(11..13)
        && b.get(13) == Some(&b':')
        && digits(14..16)
        && b.get(16) == Some(&b':')
        && digits(17..19);
    if !shape
        || !(1..=12).contains(&number(5..7))
        || !(1..=31).contains(&number(8..10))
        || number(11..13) > 23
        || number(14..16) > 59
        || number(17..19) > 60
    {
        return false;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let n = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &fraction[n..];
    }
    match rest.as_bytes() {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit())
                && (h1 - b'0') * 10 + (h2 - b'0') <= 23
                && (m1 - b'0') * 10 + (m2 - b'0') <= 59
        }
        _ => false,
    }
}

/// A value as an error shows it: whole when short.
fn short(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(80) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn errors(schema: Value, instance: Value) -> Vec<String> {
        let root = json!({"components": {"schemas": {"N": {"type": "integer", "minimum": 1}}}});
        let mut errors = Vec::new();
        validate(&root, &schema, &instance, "", &mut errors);
        errors
    }

    #[test]
    fn the_validator_catches_what_the_document_relies_on() {
        let object = json!({
            "type": "object", "additionalProperties": false, "required": ["a"],
            "properties": {"a": {"$ref": "#/components/schemas/N"}, "b": {"enum": ["x"]}}
        });
        assert!(errors(object.clone(), json!({"a": 1, "b": "x"})).is_empty());
        assert_eq!(errors(object.clone(), json!({"a": 0})).len(), 1);
        assert_eq!(errors(object.clone(), json!({"b": "x"})).len(), 1);
        assert_eq!(errors(object.clone(), json!({"a": 1, "c": 1})).len(), 1);
        assert_eq!(errors(object, json!({"a": 1, "b": "y"})).len(), 1);
        assert_eq!(
            errors(json!({"type": ["string", "null"]}), json!(null)).len(),
            0
        );
        assert_eq!(errors(json!({"type": "integer"}), json!(1.5)).len(), 1);
        assert_eq!(errors(json!({"maxLength": 2}), json!("éé")).len(), 0);
        assert_eq!(errors(json!({"maxLength": 2}), json!("ééé")).len(), 1);
        assert_eq!(
            errors(json!({"maximum": 18446744073709551615u64}), json!(u64::MAX)).len(),
            0
        );
        assert_eq!(errors(json!({"exclusiveMinimum": 0}), json!(0)).len(), 1);
        assert_eq!(
            errors(
                json!({"oneOf": [{"type": "string"}, {"const": "a"}]}),
                json!("a")
            )
            .len(),
            1
        );
        assert_eq!(errors(json!({"$ref": "#/nowhere"}), json!(1)).len(), 1);
        let items = json!({"type": "array", "items": {"type": "string"}, "maxItems": 1});
        assert_eq!(errors(items, json!(["a", 2])).len(), 2);
    }

    #[test]
    fn date_times_are_rfc_3339() {
        for good in [
            "2026-12-04T10:00:00.123Z",
            "2026-12-04T10:00:00Z",
            "2026-12-04T10:00:00+01:00",
        ] {
            assert!(is_date_time(good), "{good}");
        }
        for bad in [
            "2026-12-04",
            "2026-12-04 10:00:00Z",
            "2026-13-04T10:00:00Z",
            "2026-12-04T10:00:00",
            "2026-12-04T10:00:00.Z",
        ] {
            assert!(!is_date_time(bad), "{bad}");
        }
    }

    #[test]
    fn keywords_it_does_not_check_are_refused() {
        let mut found = Vec::new();
        unsupported(
            &json!({"type": "string", "pattern": "^a$", "properties": {"x": {"format": "uri"}}}),
            "#",
            &mut found,
        );
        assert_eq!(found.len(), 2, "{found:?}");
        found.clear();
        unsupported(
            &json!({"required": ["a", "b"], "properties": {"a": {}}, "additionalProperties": false}),
            "#",
            &mut found,
        );
        assert_eq!(found, ["#/required: `b` is not in properties"]);
    }
}
