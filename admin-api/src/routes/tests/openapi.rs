//! `admin-api/openapi.json` against the code: every route the router has is
//! documented with exactly its methods, and every documented operation
//! reaches a handler; the handlers' answers, success and error, conform to
//! the document (status, content type, headers, body schema); the document
//! is OpenAPI 3.1.0 whose every `$ref` resolves.

mod schema;

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    sync::Arc,
};

use async_trait::async_trait;
use axum::{
    Router,
    body::Body,
    http::{
        HeaderMap, Method, Request, StatusCode,
        header::{ALLOW, CONTENT_TYPE},
    },
};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::super::{ApiConfig, openapi::DOCUMENT, router};
use crate::{
    Exposition,
    auth::{Role, Tokens},
    backend::{AudienceRows, Backend, BackendError, BackendResult, UploadId},
    types::v1::*,
};

fn document() -> Value {
    serde_json::from_str(DOCUMENT).expect("openapi.json is JSON")
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

/// Every documented operation: (METHOD, path template).
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if METHODS.contains(&method.as_str()) {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

// ------------------------------------------------------------ the document

#[test]
fn the_document_is_openapi_3_1_and_every_ref_resolves() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let mut refs = Vec::new();
    collect_refs(&doc, "#", &mut refs);
    assert!(refs.len() > 100, "{} refs", refs.len());
    let unresolved: Vec<&(String, String)> = refs
        .iter()
        .filter(|(_, r)| schema::resolve(&doc, r).is_none())
        .collect();
    assert!(unresolved.is_empty(), "unresolved $refs: {unresolved:?}");
    // Every component is used: a schema nothing refers to is a field or
    // an answer the document lost.
    for kind in ["schemas", "responses", "parameters"] {
        for name in doc["components"][kind]
            .as_object()
            .expect("components")
            .keys()
        {
            let target = format!("#/components/{kind}/{name}");
            assert!(
                refs.iter().any(|(_, r)| *r == target),
                "{target} is never used"
            );
        }
    }
}

fn collect_refs(value: &Value, at: &str, refs: &mut Vec<(String, String)>) {
    match value {
        Value::Object(members) => {
            for (name, member) in members {
                if name == "$ref" {
                    refs.push((
                        at.to_owned(),
                        member.as_str().unwrap_or_default().to_owned(),
                    ));
                } else {
                    collect_refs(member, &format!("{at}/{name}"), refs);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_refs(item, &format!("{at}/{i}"), refs);
            }
        }
        _ => {}
    }
}

/// The schemas answers are checked against use only what the validator
/// checks, so a constraint in the document is a constraint tested.
#[test]
fn answer_schemas_use_only_checked_keywords() {
    let doc = document();
    let mut found = Vec::new();
    for (name, s) in doc["components"]["schemas"].as_object().expect("schemas") {
        schema::unsupported(s, &format!("#/components/schemas/{name}"), &mut found);
    }
    for (at, response) in responses(&doc) {
        for (media, content) in response["content"].as_object().into_iter().flatten() {
            for key in ["schema", "x-item-schema"] {
                if let Some(s) = content.get(key) {
                    schema::unsupported(s, &format!("{at}/{media}/{key}"), &mut found);
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "keywords the check does not enforce: {found:#?}"
    );
}

/// Every request body's example is a body its schema takes: the examples
/// are what a reader copies, and what Schemathesis sends first.
#[test]
fn request_examples_fit_their_schemas() {
    let doc = document();
    let mut checked = 0;
    let mut errors = Vec::new();
    for (path, method, op) in operations(&doc) {
        let body = deref(&doc, &op["requestBody"]);
        for (media, content) in body["content"].as_object().into_iter().flatten() {
            let Some(example) = content.get("example") else {
                continue;
            };
            // A text body (NDJSON, mail) is its example's string.
            assert!(
                media == "application/json" || example.is_string(),
                "{method} {path} {media}: a text example"
            );
            schema::validate(
                &doc,
                &content["schema"],
                example,
                &format!("{method} {path} {media}"),
                &mut errors,
            );
            checked += 1;
        }
    }
    assert!(errors.is_empty(), "{errors:#?}");
    assert!(checked >= 10, "{checked} examples");
}

/// Every response object of the document, resolved, with where it is.
fn responses(doc: &Value) -> Vec<(String, Value)> {
    let mut all = Vec::new();
    for (path, method, op) in operations(doc) {
        for (status, response) in op["responses"].as_object().expect("responses") {
            let response = deref(doc, response);
            all.push((format!("{method} {path} {status}"), response));
        }
    }
    all
}

fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            if METHODS.contains(&method.as_str()) {
                ops.push((path.clone(), method.to_uppercase(), op.clone()));
            }
        }
    }
    ops
}

fn deref(doc: &Value, value: &Value) -> Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(r) => schema::resolve(doc, r).cloned().expect("ref resolves"),
        None => value.clone(),
    }
}

/// What every operation answers whatever it does: 400 for a query
/// parameter it does not take (every route refuses those); on a route that
/// needs a token, 401, and 403 where that is the administrator's; every
/// error a problem document; no catch-all `default` that would let any
/// status through.
#[test]
fn every_operation_documents_the_answers_every_route_gives() {
    let doc = document();
    for (path, method, op) in operations(&doc) {
        let label = format!("{method} {path}");
        let responses = op["responses"].as_object().expect("responses");
        assert!(!responses.contains_key("default"), "{label}: `default`");
        assert!(responses.contains_key("400"), "{label}: no 400");
        let role = match op["security"].as_array().map(Vec::as_slice) {
            Some([]) => None,
            Some([requirement]) => {
                let roles = requirement["bearerAuth"].as_array().expect("bearerAuth");
                assert_eq!(roles.len(), 1, "{label}: one role");
                roles[0].as_str()
            }
            _ => panic!("{label}: each operation says its security"),
        };
        assert_eq!(
            role.is_some(),
            path.starts_with("/v1/") && path != "/v1/openapi.json",
            "{label}: /v1 routes need a token, the others none"
        );
        if let Some(role) = role {
            assert!(matches!(role, "crm" | "admin"), "{label}: role {role}");
            assert!(responses.contains_key("401"), "{label}: no 401");
            assert_eq!(
                responses.contains_key("403"),
                role == "admin",
                "{label}: 403 is the administrator's routes'"
            );
        } else {
            assert!(
                !responses.contains_key("401"),
                "{label}: 401 without a token"
            );
        }
        for (status, response) in responses {
            let response = deref(&doc, response);
            let is_error = status.starts_with('4') || status.starts_with('5');
            let problem = response["content"]
                .get("application/problem+json")
                .is_some();
            // `/readyz` answers 503 with its readiness, not a problem.
            if is_error && path != "/readyz" {
                assert!(problem, "{label} {status}: not a problem document");
            }
        }
    }
}

// ------------------------------------------------------------ the router

/// The `.route(PATH, METHODS)` calls of the crate's source, as (METHOD,
/// path): axum cannot list its routes, so the source is read. A routing
/// call this reader does not understand fails the test, so no route can
/// hide from it.
fn routes_in_source() -> BTreeSet<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut routes = BTreeSet::new();
    for file in rust_files(&src) {
        let text = std::fs::read_to_string(&file).expect("source");
        let code = without_comments(&text);
        for call in [
            ".nest(",
            ".nest_service(",
            ".route_service(",
            ".fallback_service(",
        ] {
            assert!(
                !code.contains(call),
                "{}: `{call}` adds routes this test cannot see: document them in openapi.json and teach `routes_in_source` to read them",
                file.display()
            );
        }
        let mut rest = code.as_str();
        while let Some(start) = rest.find(".route(") {
            let call = &rest[start + ".route(".len()..];
            let end = closing_paren(call)
                .unwrap_or_else(|| panic!("{}: an unclosed .route(", file.display()));
            let args = &call[..end];
            let path = args
                .trim_start()
                .strip_prefix('"')
                .and_then(|p| p.split_once('"'))
                .map(|(p, _)| p.to_owned())
                .unwrap_or_else(|| {
                    panic!(
                        "{}: a .route( whose path is not a literal: {args}",
                        file.display()
                    )
                });
            let methods = method_calls(args);
            assert!(
                !methods.is_empty(),
                "{}: no method in {args}",
                file.display()
            );
            for method in methods {
                routes.insert((method, path.clone()));
            }
            rest = &call[end..];
        }
    }
    routes
}

/// The crate's `.rs` files, tests left out.
fn rust_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("src dir") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name == "tests" || name == "tests.rs" {
            continue;
        }
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if name.ends_with(".rs") {
            files.push(path);
        }
    }
    files
}

/// `text` with its `//` comments blanked (string literals kept whole).
fn without_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                '\\' => out.extend(chars.next()),
                '"' => in_string = false,
                _ => {}
            }
        } else if c == '/' && chars.peek() == Some(&'/') {
            for c in chars.by_ref() {
                if c == '\n' {
                    out.push('\n');
                    break;
                }
            }
        } else {
            in_string = c == '"';
            out.push(c);
        }
    }
    out
}

/// Where the parenthesis opened just before `text` closes.
fn closing_paren(text: &str) -> Option<usize> {
    let mut depth = 1;
    let mut in_string = false;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match (in_string, c) {
            (true, '\\') if !escaped => {
                escaped = true;
                continue;
            }
            (true, '"') if !escaped => in_string = false,
            (false, '"') => in_string = true,
            (false, '(') => depth += 1,
            (false, ')') => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        escaped = false;
    }
    None
}

/// The methods a method router expression calls: `get(h).post(h2)`, or
/// `any(h)` as every method.
fn method_calls(args: &str) -> BTreeSet<String> {
    let mut methods = BTreeSet::new();
    let bytes = args.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        if ident(bytes[i]) && (i == 0 || !ident(bytes[i - 1])) {
            let start = i;
            while i < bytes.len() && ident(bytes[i]) {
                i += 1;
            }
            let word = &args[start..i];
            let called = bytes.get(i) == Some(&b'(');
            let path_segment = start >= 2 && &args[start - 2..start] == "::";
            if called && !path_segment {
                if METHODS.contains(&word) {
                    methods.insert(word.to_uppercase());
                }
                assert!(
                    !matches!(
                        word,
                        "any" | "on" | "any_service" | "on_service" | "get_service"
                    ),
                    "`{word}(` in a route: document each method it takes and teach `method_calls` to read it"
                );
            }
        } else {
            i += 1;
        }
    }
    methods
}

#[test]
fn the_source_reader_reads_the_routes_it_is_shown() {
    let code = without_comments(
        "// .route(\"/hidden\", get(x))\n.route(\n \"/a/{id}\",\n put(m::declare).get(m::show) // x\n .delete(m::delete),\n)",
    );
    let args = &code[code.find(".route(").expect("route") + 7..];
    let args = &args[..closing_paren(args).expect("closes")];
    assert!(args.trim_start().starts_with("\"/a/{id}\""));
    assert_eq!(
        method_calls(args),
        ["DELETE", "GET", "PUT"].map(String::from).into()
    );
}

/// Every route of the router is documented with exactly its methods, and
/// nothing else is: fails when someone adds a route or a method without
/// documenting it, or documents one that is not there.
#[test]
fn every_route_is_documented_and_every_documented_operation_exists() {
    let routes = routes_in_source();
    assert!(
        routes.contains(&("GET".into(), "/healthz".into()))
            && routes.contains(&("DELETE".into(), "/v1/campaigns/{id}".into())),
        "the source reader found {routes:?}"
    );
    let doc = documented(&document());
    let undocumented: Vec<_> = routes.difference(&doc).collect();
    let missing: Vec<_> = doc.difference(&routes).collect();
    assert!(
        undocumented.is_empty(),
        "routes not in admin-api/openapi.json: {undocumented:?}"
    );
    assert!(
        missing.is_empty(),
        "documented operations with no route: {missing:?}"
    );
}

/// The same, by requests to the router itself: each documented operation
/// reaches a handler (not the 404 of no route, not a 405), and each method
/// a documented path does not document is a 405 whose `Allow` lists
/// exactly the documented ones (and HEAD, which axum answers with GET).
#[tokio::test]
async fn the_router_answers_exactly_the_documented_methods() {
    let doc = document();
    let router = fake_router(Tokens::default(), None);
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let uri = concrete(&doc, path, item);
        for method in ["GET", "PUT", "POST", "DELETE", "PATCH"] {
            let documented = item.get(method.to_lowercase()).is_some();
            let req = Request::builder()
                .method(method)
                .uri(&uri)
                .body(Body::empty())
                .expect("request");
            let res = router.clone().oneshot(req).await.expect("infallible");
            let status = res.status();
            let allow = res
                .headers()
                .get(ALLOW)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = body_bytes(res).await;
            let text = String::from_utf8_lossy(&body);
            if documented {
                assert_ne!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {uri}: {text}"
                );
                let no_route = serde_json::from_slice::<Value>(&body).is_ok_and(|p| {
                    p["detail"]
                        .as_str()
                        .is_some_and(|d| d.starts_with("no route `"))
                });
                assert!(!no_route, "{method} {uri} reaches no route: {text}");
            } else {
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {uri} is not documented but answers: {text}"
                );
                let mut listed: BTreeSet<String> = allow
                    .unwrap_or_default()
                    .split(',')
                    .map(|m| m.trim().to_owned())
                    .filter(|m| !m.is_empty())
                    .collect();
                if item.get("get").is_some() {
                    assert!(listed.remove("HEAD"), "{uri}: HEAD with GET");
                }
                let expected: BTreeSet<String> = item
                    .as_object()
                    .expect("item")
                    .keys()
                    .filter(|m| METHODS.contains(&m.as_str()))
                    .map(|m| m.to_uppercase())
                    .collect();
                assert_eq!(listed, expected, "{uri}: Allow");
            }
        }
    }
}

/// A path of `template` with each parameter filled in from the document
/// (its example, else its first enum value).
fn concrete(doc: &Value, template: &str, item: &Value) -> String {
    let mut parameters: Vec<Value> = Vec::new();
    for p in item["parameters"].as_array().into_iter().flatten() {
        parameters.push(deref(doc, p));
    }
    let mut uri = template.to_owned();
    for p in parameters {
        let name = p["name"].as_str().expect("name");
        let s = deref(doc, &p["schema"]);
        let value = p["example"]
            .as_str()
            .or_else(|| s["enum"][0].as_str())
            .unwrap_or("x");
        uri = uri.replace(&format!("{{{name}}}"), value);
    }
    assert!(
        !uri.contains('{'),
        "{template}: a parameter without a value"
    );
    uri
}

// ------------------------------------------------------------ the answers

/// Conforms `status`, `headers` and `body`, the answer to `method` on
/// `path` (no query), to the document: the status is documented for the
/// operation, the content type is one it documents for that status, the
/// body validates against its schema (NDJSON: each line against
/// `x-item-schema`), required headers are there.
fn conforms(
    doc: &Value,
    method: &str,
    path: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), String> {
    let (template, op) = operation_of(doc, method, path)
        .ok_or_else(|| format!("{method} {path}: no documented operation"))?;
    let label = format!("{method} {template} {}", status.as_u16());
    let response = op["responses"]
        .get(status.as_str())
        .map(|r| deref(doc, r))
        .ok_or_else(|| format!("{label}: status not documented"))?;
    let mut errors = Vec::new();
    for (name, header) in response["headers"].as_object().into_iter().flatten() {
        let header = deref(doc, header);
        match headers.get(name.as_str()).and_then(|v| v.to_str().ok()) {
            Some(value) => schema::validate(
                doc,
                &header["schema"],
                &Value::String(value.to_owned()),
                &format!("header {name}"),
                &mut errors,
            ),
            None if header["required"] == true => errors.push(format!("header {name} missing")),
            None => {}
        }
    }
    let Some(content) = response.get("content").and_then(Value::as_object) else {
        if !body.is_empty() {
            errors.push(format!("a body where none is documented: {body:?}"));
        }
        return finish(&label, errors);
    };
    let media = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .ok_or_else(|| format!("{label}: no Content-Type"))?;
    let documented = content
        .get(&media)
        .ok_or_else(|| format!("{label}: Content-Type {media} is not documented"))?;
    let text = std::str::from_utf8(body).map_err(|e| format!("{label}: {e}"))?;
    if media == "application/json" || media.ends_with("+json") {
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("{label}: not JSON: {e}"))?;
        schema::validate(doc, &documented["schema"], &value, "", &mut errors);
    } else {
        let whole = Value::String(text.to_owned());
        schema::validate(doc, &documented["schema"], &whole, "", &mut errors);
        if let Some(item) = documented.get("x-item-schema") {
            for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.is_empty()) {
                match serde_json::from_str::<Value>(line) {
                    Ok(value) => {
                        schema::validate(doc, item, &value, &format!("line {}", i + 1), &mut errors)
                    }
                    Err(e) => errors.push(format!("line {}: not JSON: {e}", i + 1)),
                }
            }
        }
    }
    finish(&label, errors)
}

fn finish(label: &str, errors: Vec<String>) -> Result<(), String> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("{label}: {}", errors.join("; ")))
    }
}

/// The documented operation a request reaches: the path template matching
/// `path` with the most literal segments (axum prefers those too).
fn operation_of(doc: &Value, method: &str, path: &str) -> Option<(String, Value)> {
    let segments: Vec<&str> = path.split('/').collect();
    doc["paths"]
        .as_object()?
        .iter()
        .filter_map(|(template, item)| {
            let parts: Vec<&str> = template.split('/').collect();
            if parts.len() != segments.len() {
                return None;
            }
            let mut literal = 0;
            for (part, segment) in parts.iter().zip(&segments) {
                if part.starts_with('{') {
                    if segment.is_empty() {
                        return None;
                    }
                } else if part == segment {
                    literal += 1;
                } else {
                    return None;
                }
            }
            let op = item.get(method.to_lowercase())?;
            Some((literal, template.clone(), op.clone()))
        })
        .max_by_key(|(literal, _, _)| *literal)
        .map(|(_, template, op)| (template, op))
}

async fn body_bytes(res: axum::response::Response) -> axum::body::Bytes {
    axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .expect("body")
}

/// How the fake backend fails, when it does.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fail {
    NotFound,
    Conflict,
    Invalid,
    Unavailable,
    DiskFull,
    Internal,
    TooLarge,
}

impl Fail {
    fn error(self) -> BackendError {
        match self {
            Self::NotFound => BackendError::NotFound("no campaign `spring-1`".into()),
            Self::Conflict => {
                BackendError::Conflict("cannot start campaign `spring-1`: it is Finished".into())
            }
            Self::Invalid => {
                BackendError::Invalid(vec!["window.tz: unknown zone `Mars/Olympus`".into()])
            }
            Self::Unavailable => BackendError::Unavailable("store cannot commit".into()),
            Self::DiskFull => BackendError::InsufficientStorage("disk full: 10 bytes free".into()),
            Self::Internal => BackendError::Internal("no sms channel runs".into()),
            Self::TooLarge => BackendError::TooLarge(10 << 20),
        }
    }
}

/// A backend answering as the daemon does, every member filled in (so
/// that an undocumented one shows), or failing as told.
struct Fake {
    fail: Option<Fail>,
}

impl Fake {
    fn check(&self) -> BackendResult<()> {
        self.fail.map_or(Ok(()), |f| Err(f.error()))
    }
}

fn campaign_view(id: &str, state: CampaignState) -> CampaignView {
    let declaration = serde_json::from_value(json!({
        "channel": "email", "name": "Unlimited plan", "segment": "gold", "priority": 5,
        "expected_participants": 20000,
        "window": {"start": "2026-12-07T08:00:00Z", "end": "2026-12-11T18:00:00Z",
                   "tz": "Europe/Berlin", "weekdays": ["mon", "tue"], "hours": ["09:00-12:00"]},
        "content": {
            "email": {"from": "Telco <offers@telco.example>", "subject": "{{name}}", "text": "Hi", "html": "<p>Hi</p>"},
            "sms": {"from": "Telco", "text": "Hi", "track_links": true}
        },
        "fallback": {"campaign": "spring-sms", "after": "PT6H"}
    }))
    .expect("declaration");
    let counts = [
        "pending",
        "submitted",
        "delivered",
        "failed",
        "bounced_hard",
        "bounced_soft",
        "suppressed",
        "fallback",
        "clicked",
        "opened",
        "unsubscribed",
        "opted_out",
        "complained",
    ]
    .iter()
    .map(|o| ((*o).to_owned(), 1))
    .collect();
    CampaignView {
        id: id.into(),
        state,
        declaration,
        participants: 12,
        uploading: 3,
        counts,
        progress: CampaignProgress {
            done: 11,
            pending: 1,
            rate_per_sec: Some(19.9),
            eta: Some("2026-12-04T15:40:12.000Z".into()),
        },
    }
}

fn connector(on: bool) -> ConnectorHealth {
    ConnectorHealth {
        kind: "smsc".into(),
        name: "main".into(),
        address: "10.0.0.6:2775".into(),
        state: if on {
            ConnectorState::Connecting
        } else {
            ConnectorState::Stopped
        },
        last_error: Some("bind refused: ESME_RBINDFAIL (0x0000000D)".into()),
        last_error_at: Some("2026-12-04T10:05:00.000Z".into()),
        binds_up: Some(0),
        binds: Some(2),
    }
}

fn stored_limits() -> Value {
    json!({"rate_per_sec": 50.0, "burst": 5, "tz": "Europe/Berlin",
           "exclusion_days": ["2026-12-24"],
           "caps": [{"days": ["sat", "sun"], "hours": "09:00-18:00", "max": 20000}],
           "quotas": {"*": {"max": 2, "per": "P7D"}}})
}

fn plan() -> Value {
    json!({"hours": [{"hour": "2026-12-04T10:00:00Z", "capacity": 180000, "allocated": {"spring-1": 20000}}],
           "campaigns": {
               "spring-1": {"planned": 20000, "finish": "2026-12-04T11:00:00Z", "feasible": true,
                            "shortfall": 0, "priority": 5, "rank": 1},
               "spring-2": {"planned": 0, "finish": null, "feasible": false, "shortfall": 7}}})
}

#[async_trait]
impl Backend for Fake {
    async fn declare(&self, id: &str, _decl: CampaignDecl) -> BackendResult<CampaignView> {
        self.check()?;
        Ok(campaign_view(id, CampaignState::Declared))
    }
    fn new_upload(&self) -> UploadId {
        0
    }
    async fn add_participants(
        &self,
        _campaign: &str,
        _upload: UploadId,
        batch: Vec<(usize, ParticipantIn)>,
    ) -> BackendResult<UploadResult> {
        self.check()?;
        Ok(UploadResult {
            accepted: batch.len() as u64,
            ..Default::default()
        })
    }
    async fn publish(&self, _upload: UploadId) -> BackendResult<u64> {
        Ok(1)
    }
    async fn abandon(&self, _upload: UploadId) {}
    async fn add_from(&self, _c: &str, _source: AudienceSource) -> BackendResult<UploadResult> {
        self.check()?;
        let mut result = UploadResult {
            accepted: 2,
            duplicates: 1,
            ..Default::default()
        };
        result.reject(Rejected::new(
            4,
            "customer `c4`: field `phone` is missing or empty",
        ));
        Ok(result)
    }
    async fn control(&self, id: &str, _action: Control) -> BackendResult<CampaignView> {
        self.check()?;
        Ok(campaign_view(id, CampaignState::Running))
    }
    async fn campaign(&self, id: &str) -> BackendResult<CampaignView> {
        self.check()?;
        Ok(campaign_view(id, CampaignState::Paused))
    }
    async fn delete_campaign(&self, _id: &str) -> BackendResult<()> {
        self.check()
    }
    async fn send_test(&self, _id: &str, p: ParticipantIn) -> BackendResult<TestSend> {
        self.check()?;
        Ok(TestSend {
            channel: ChannelKind::Email,
            to: p.address,
            outcome: "refused".into(),
            reply: "550 5.1.1 no such user".into(),
        })
    }
    async fn preview(&self, _id: &str, p: ParticipantIn) -> BackendResult<MessagePreview> {
        self.check()?;
        Ok(MessagePreview {
            channel: ChannelKind::Email,
            from: "Telco <offers@telco.example>".into(),
            to: p.address,
            subject: Some("Ann, go unlimited".into()),
            text: "Hello Ann".into(),
            html: Some("<p>Hello Ann</p>".into()),
            encoding: None,
            parts: None,
        })
    }
    async fn campaigns(&self, _filter: CampaignFilter) -> BackendResult<CampaignPage> {
        self.check()?;
        Ok(CampaignPage {
            campaigns: vec![
                campaign_view("spring-2", CampaignState::Finished),
                campaign_view("spring-1", CampaignState::Cancelled),
            ],
            next: Some(41),
        })
    }
    /// Two pages of one row each, so that the answer is streamed.
    async fn audience_page(
        &self,
        _c: &str,
        outcome: &str,
        from: u32,
    ) -> BackendResult<AudienceRows> {
        self.check()?;
        Ok(match from {
            0 => AudienceRows {
                rows: vec![AudienceRow {
                    customer: "c1".into(),
                    address: "ann@example.org".into(),
                    outcome: outcome.into(),
                    at: Some("2026-12-04T10:00:00.123Z".into()),
                }],
                next: Some(1),
            },
            _ => AudienceRows {
                rows: vec![AudienceRow {
                    customer: "c2".into(),
                    address: "bob@example.org".into(),
                    outcome: outcome.into(),
                    at: None,
                }],
                next: None,
            },
        })
    }
    async fn events(&self, _after: u64, _limit: usize) -> BackendResult<EventPage> {
        self.check()?;
        let event = |cursor: u64, kind: &str, detail: Value| Event {
            cursor,
            at: "2026-12-04T10:00:00.123Z".into(),
            campaign: "spring-1".into(),
            customer: "c2".into(),
            kind: kind.into(),
            detail: detail.as_object().cloned().unwrap_or_default(),
        };
        Ok(EventPage {
            events: vec![
                event(40, "accepted", json!({})),
                event(
                    41,
                    "bounced",
                    json!({"bounce": "soft", "reason": "mailbox_full", "status": "4.2.2",
                           "replycode": 452, "diagnostic": "452 4.2.2 full", "retry_at": "2026-12-04T10:05:00.000Z"}),
                ),
                event(
                    42,
                    "retry_scheduled",
                    json!({"reason": "421 busy", "attempt": 1, "retry_at": "2026-12-04T10:05:00.000Z", "bounce_reason": "busy"}),
                ),
                event(
                    43,
                    "failed",
                    json!({"reason": "gave up", "attempts": 5, "stat": "UNDELIV", "error": "001"}),
                ),
                event(44, "submitted", json!({"reply": "250 2.0.0 Ok"})),
                event(45, "clicked", json!({"url": "https://shop.example/"})),
                event(46, "suppressed", json!({"why": "blacklisted"})),
                event(47, "opted_out", json!({"text": "STOP"})),
                event(48, "fallback", json!({"to": "spring-sms"})),
            ],
            next: 48,
        })
    }
    async fn import_bounce(&self, _raw: &[u8]) -> BackendResult<BounceImport> {
        self.check()?;
        Ok(BounceImport {
            is_bounce: true,
            matched: 1,
            unmatched: 0,
        })
    }
    async fn unmatched(
        &self,
        kind: UnmatchedKind,
        _before: Option<u64>,
        limit: usize,
    ) -> BackendResult<UnmatchedPage> {
        self.check()?;
        let item = match kind {
            UnmatchedKind::Mail => UnmatchedItem {
                n: 7,
                message: Some("X-Sluice-Kept-At: 2026-12-04T10:00:00Z\r\nFrom: MAILER-DAEMON@mx.example.org\r\n\r\nhello\r\n".into()),
                receipt: None,
            },
            UnmatchedKind::Receipt => UnmatchedItem {
                n: 7,
                message: None,
                receipt: Some(UnmatchedReceipt {
                    smsc: 0,
                    id: "4f2a".into(),
                    at: "2026-12-04T10:00:00Z".into(),
                    kept_at: "2026-12-04T10:00:01Z".into(),
                    stat: Some("DELIVRD".into()),
                    error: Some("000".into()),
                    reason: None,
                }),
            },
        };
        Ok(UnmatchedPage {
            kept: 8,
            capacity: 1_000,
            items: vec![item; limit.min(1)],
        })
    }
    async fn put_limits(&self, _c: &str, _limits: Value) -> BackendResult<Value> {
        self.check()?;
        Ok(stored_limits())
    }
    async fn get_limits(&self, _c: &str) -> BackendResult<Value> {
        self.check()?;
        Ok(stored_limits())
    }
    async fn blacklist_add(&self, _c: &str, entries: Vec<String>) -> BackendResult<usize> {
        self.check()?;
        Ok(entries.len())
    }
    async fn blacklist_remove(&self, _c: &str, entry: &str) -> BackendResult<bool> {
        self.check()?;
        Ok(entry != "nobody")
    }
    async fn blacklist_get(&self, _c: &str, entry: &str) -> BackendResult<Option<String>> {
        self.check()?;
        Ok((entry != "nobody").then(|| "hard_bounce".into()))
    }
    fn channels(&self) -> ChannelsView {
        ChannelsView {
            channels: vec![
                ChannelHealth {
                    channel: ChannelKind::Email,
                    connectors: vec![ConnectorHealth {
                        kind: "smtp_relay".into(),
                        name: "10.0.0.5:25".into(),
                        address: "10.0.0.5:25".into(),
                        state: ConnectorState::Up,
                        last_error: None,
                        last_error_at: None,
                        binds_up: None,
                        binds: None,
                    }],
                },
                ChannelHealth {
                    channel: ChannelKind::Sms,
                    connectors: vec![connector(false)],
                },
            ],
        }
    }
    fn switch_connector(&self, _c: &str, _name: &str, on: bool) -> BackendResult<ConnectorHealth> {
        self.check()?;
        Ok(connector(on))
    }
    async fn blacklist_list(&self, _c: &str, _f: BlacklistFilter) -> BackendResult<BlacklistPage> {
        self.check()?;
        Ok(BlacklistPage {
            entries: vec![BlacklistEntry {
                entry: "ann@example.org".into(),
                why: "unsubscribed".into(),
            }],
            next: Some("ann@example.org".into()),
        })
    }
    async fn plan(&self, _c: &str, _ids: Option<Vec<String>>) -> BackendResult<Value> {
        self.check()?;
        Ok(plan())
    }
    async fn stored_plan(&self, _c: &str) -> BackendResult<Value> {
        self.check()?;
        Ok(plan())
    }
    fn metrics(&self, _exposition: Exposition) -> String {
        "# TYPE sluice_up gauge\nsluice_up 1\n".into()
    }
    fn count_request(&self, _route: &str, _method: &str, _status: u16) {}
    fn not_ready(&self) -> Vec<String> {
        match self.fail {
            Some(_) => vec!["SMSC main (10.0.0.6:2775): not bound yet".into()],
            None => vec![],
        }
    }
}

/// Bodies up to this many bytes are taken (413 beyond).
const MAX_BODY: usize = 64 << 10;

fn fake_router(tokens: Tokens, fail: Option<Fail>) -> Router {
    let config = ApiConfig {
        tokens,
        max_body_bytes: MAX_BODY,
        max_body_memory: 1 << 20,
    };
    router(Arc::new(Fake { fail }), config)
}

fn tokens() -> Tokens {
    Tokens::new(vec![(Role::Crm, "c".into()), (Role::Admin, "a".into())])
}

/// One request of the table: what is sent, how the backend behaves, and
/// the status the handler must answer.
struct Case {
    method: &'static str,
    uri: &'static str,
    token: Option<&'static str>,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    fail: Option<Fail>,
    status: u16,
}

fn case(method: &'static str, uri: &'static str, status: u16) -> Case {
    Case {
        method,
        uri,
        token: Some("a"),
        content_type: None,
        body: Vec::new(),
        fail: None,
        status,
    }
}

impl Case {
    fn json(mut self, body: Value) -> Self {
        self.content_type = Some("application/json");
        self.body = body.to_string().into_bytes();
        self
    }
    fn raw(mut self, content_type: Option<&'static str>, body: &str) -> Self {
        self.content_type = content_type;
        self.body = body.as_bytes().to_vec();
        self
    }
    fn token(mut self, token: Option<&'static str>) -> Self {
        self.token = token;
        self
    }
    fn fail(mut self, fail: Fail) -> Self {
        self.fail = Some(fail);
        self
    }
}

fn cases() -> Vec<Case> {
    use Fail::*;
    let decl = json!({"channel": "email", "name": "Unlimited plan", "priority": 5,
        "window": {"start": "2026-12-07T08:00:00Z", "tz": "Europe/Berlin"},
        "content": {"email": {"from": "offers@telco.example", "subject": "Hi", "text": "Hi {{name}}"}},
        "fallback": {"campaign": "spring-sms", "on": ["bounced_hard"]}});
    let ann = json!({"customer": "c1", "address": "ann@example.org", "segment": "gold", "fields": {"name": "Ann"}});
    let limits = json!({"rate_per_sec": 50, "tz": "Europe/Berlin", "quotas": {"*": {"max": 2, "per": "P7D"}}});
    let big = " ".repeat(MAX_BODY + 1);
    let ndjson = "{\"customer\":\"c1\",\"address\":\"ann@example.org\"}\n{\"customer\": oops}\n";
    vec![
        // Campaigns.
        case("PUT", "/v1/campaigns/spring-1", 200)
            .json(decl.clone())
            .token(Some("c")),
        case("PUT", "/v1/campaigns/spring-1", 400).raw(Some("application/json"), "{\n\"channel\":"),
        case("PUT", "/v1/campaigns/bad%20id", 404).json(decl.clone()),
        case("PUT", "/v1/campaigns/spring-1", 409)
            .json(decl.clone())
            .fail(Conflict),
        case("PUT", "/v1/campaigns/spring-1", 413).raw(None, &big),
        case("PUT", "/v1/campaigns/spring-1", 422)
            .json(json!({"channel": "email", "name": "x", "colour": 1})),
        case("PUT", "/v1/campaigns/spring-1", 422)
            .json(decl.clone())
            .fail(Invalid),
        case("PUT", "/v1/campaigns/spring-1", 503)
            .json(decl.clone())
            .fail(Unavailable),
        case("PUT", "/v1/campaigns/spring-1", 507)
            .json(decl.clone())
            .fail(DiskFull),
        case("PUT", "/v1/campaigns/spring-1", 500)
            .json(decl)
            .fail(Internal),
        case("PUT", "/v1/campaigns/spring-1", 401).token(None),
        case("GET", "/v1/campaigns/spring-1", 200),
        case("GET", "/v1/campaigns/spring-1", 404).fail(NotFound),
        case("GET", "/v1/campaigns/spring-1?x=1", 400),
        case("GET", "/v1/campaigns/spring-1", 401).token(Some("wrong")),
        case("DELETE", "/v1/campaigns/spring-1", 204),
        case("DELETE", "/v1/campaigns/spring-1", 409).fail(Conflict),
        case("DELETE", "/v1/campaigns/spring-1", 404).fail(NotFound),
        case("DELETE", "/v1/campaigns/spring-1", 507).fail(DiskFull),
        case("POST", "/v1/campaigns/spring-1/start", 200),
        case("POST", "/v1/campaigns/spring-1/cancel", 409).fail(Conflict),
        case("POST", "/v1/campaigns/spring-1/wake", 404),
        case("POST", "/v1/campaigns/spring-1/pause", 503).fail(Unavailable),
        case(
            "GET",
            "/v1/campaigns?state=running&channel=sms&limit=2&before=7",
            200,
        ),
        case("GET", "/v1/campaigns?limit=0", 422),
        case("GET", "/v1/campaigns?state=asleep", 400),
        case("POST", "/v1/campaigns/spring-1/preview", 200).json(ann.clone()),
        case("POST", "/v1/campaigns/spring-1/preview", 422)
            .json(ann.clone())
            .fail(Invalid),
        case("POST", "/v1/campaigns/spring-1/preview", 404)
            .json(ann.clone())
            .fail(NotFound),
        case("POST", "/v1/campaigns/spring-1/preview", 400).raw(None, "{"),
        case("POST", "/v1/campaigns/spring-1/test", 200).json(ann.clone()),
        case("POST", "/v1/campaigns/spring-1/test", 409)
            .json(ann.clone())
            .fail(Conflict),
        case("POST", "/v1/campaigns/spring-1/test", 422)
            .json(json!({"address": "ann@example.org"})),
        case("POST", "/v1/campaigns/spring-1/participants", 200)
            .raw(Some("application/x-ndjson"), ndjson),
        case(
            "POST",
            "/v1/campaigns/spring-1/participants?dry_run=true",
            200,
        )
        .json(json!([ann, 7])),
        case("POST", "/v1/campaigns/spring-1/participants", 400)
            .raw(Some("text/csv"), "customer\nc1\n"),
        case(
            "POST",
            "/v1/campaigns/spring-1/participants?dry_run=maybe",
            400,
        )
        .json(json!([])),
        case("POST", "/v1/campaigns/spring-1/participants", 409)
            .raw(Some("application/x-ndjson"), ndjson)
            .fail(Conflict),
        case("POST", "/v1/campaigns/spring-1/participants", 507)
            .raw(Some("application/x-ndjson"), ndjson)
            .fail(DiskFull),
        case("POST", "/v1/campaigns/spring-1/participants", 413)
            .raw(Some("application/json"), &big),
        case(
            "GET",
            "/v1/campaigns/spring-1/participants?outcome=clicked",
            200,
        ),
        case("GET", "/v1/campaigns/spring-1/participants", 400),
        case(
            "GET",
            "/v1/campaigns/spring-1/participants?outcome=sleepy",
            422,
        ),
        case(
            "GET",
            "/v1/campaigns/spring-1/participants?outcome=opened",
            404,
        )
        .fail(NotFound),
        case("POST", "/v1/campaigns/spring-2/participants/from", 200)
            .json(json!({"campaign": "spring-1", "outcome": "clicked", "address_field": "phone"})),
        case("POST", "/v1/campaigns/spring-2/participants/from", 422)
            .json(json!({"campaign": "spring-1", "outcome": "nope"})),
        case("POST", "/v1/campaigns/spring-2/participants/from", 404)
            .json(json!({"campaign": "spring-1", "outcome": "clicked"}))
            .fail(NotFound),
        // Facts.
        case("GET", "/v1/events?after=39&limit=10", 200).token(Some("c")),
        case("GET", "/v1/events?limit=0", 422),
        case("GET", "/v1/events?after=x", 400),
        // Channels.
        case("GET", "/v1/channels", 200),
        case("GET", "/v1/channels", 403).token(Some("c")),
        case("GET", "/v1/channels", 401).token(None),
        case("POST", "/v1/channels/sms/connectors/main/stop", 200),
        case("POST", "/v1/channels/sms/connectors/main/restart", 404),
        case("POST", "/v1/channels/sms/connectors/other/start", 404).fail(NotFound),
        case("POST", "/v1/channels/sms/connectors/main/start", 403).token(Some("c")),
        case("PUT", "/v1/channels/email/limits", 200).json(limits.clone()),
        case("PUT", "/v1/channels/email/limits", 400).raw(None, "["),
        case("PUT", "/v1/channels/email/limits", 422)
            .json(limits.clone())
            .fail(Invalid),
        case("PUT", "/v1/channels/fax/limits", 404).json(limits.clone()),
        case("PUT", "/v1/channels/email/limits", 507)
            .json(limits)
            .fail(DiskFull),
        case("GET", "/v1/channels/sms/limits", 200),
        case("GET", "/v1/channels/sms/limits", 404).fail(NotFound),
        case("POST", "/v1/channels/email/plan", 200),
        case("POST", "/v1/channels/email/plan", 200).json(json!({"campaigns": ["spring-1"]})),
        case("POST", "/v1/channels/email/plan", 400).raw(None, "{"),
        case("POST", "/v1/channels/email/plan", 422).json(json!({"x": 1})),
        case("POST", "/v1/channels/email/plan", 422).fail(Invalid),
        case("GET", "/v1/channels/email/plan", 200),
        case("GET", "/v1/channels/email/plan", 404).fail(NotFound),
        // Blacklist.
        case("PUT", "/v1/blacklist/email", 200).json(json!(["c42", "someone@example.org"])),
        case("PUT", "/v1/blacklist/email", 422).json(json!(["c42", " "])),
        case("PUT", "/v1/blacklist/email", 400).json(json!({"entries": []})),
        case("PUT", "/v1/blacklist/email", 503)
            .json(json!(["c42"]))
            .fail(Unavailable),
        case(
            "GET",
            "/v1/blacklist/email?q=example&why=unsubscribed&after=a&limit=5",
            200,
        ),
        case("GET", "/v1/blacklist/email?why=spam", 400),
        case("GET", "/v1/blacklist/email?limit=0", 422),
        case("GET", "/v1/blacklist/email/ann%40example.org", 200),
        case("GET", "/v1/blacklist/email/nobody", 404),
        case("DELETE", "/v1/blacklist/email/ann%40example.org", 204),
        case("DELETE", "/v1/blacklist/email/nobody", 404),
        case("DELETE", "/v1/blacklist/sms/c42", 403).token(Some("c")),
        // Bounces.
        case("POST", "/v1/bounces", 200).raw(
            Some("message/rfc822"),
            "From: MAILER-DAEMON\r\n\r\nfailed\r\n",
        ),
        case("POST", "/v1/bounces", 400),
        case("POST", "/v1/bounces", 413)
            .raw(None, "x")
            .fail(TooLarge),
        case("POST", "/v1/bounces", 500)
            .raw(None, "x")
            .fail(Internal),
        case("GET", "/v1/bounces/unmatched", 200),
        case("GET", "/v1/bounces/unmatched?limit=5&before=7", 200),
        case("GET", "/v1/bounces/unmatched?limit=0", 422),
        case("GET", "/v1/bounces/unmatched?limit=101", 422),
        case("GET", "/v1/bounces/unmatched?before=x", 400),
        case("GET", "/v1/bounces/unmatched?since=1", 400),
        case("GET", "/v1/bounces/unmatched", 403).token(Some("c")),
        case("GET", "/v1/bounces/unmatched", 503).fail(Unavailable),
        case("GET", "/v1/receipts/unmatched?limit=1000", 200),
        case("GET", "/v1/receipts/unmatched?limit=1001", 422),
        case("GET", "/v1/receipts/unmatched", 403).token(Some("c")),
        case("GET", "/v1/receipts/unmatched", 500).fail(Internal),
        // Without a token.
        case("GET", "/v1/openapi.json", 200).token(None),
        case("GET", "/v1/openapi.json?v=2", 400).token(None),
        case("GET", "/admin/plan/email", 200).token(None),
        case("GET", "/admin/plan/fax", 404).token(None),
        case("GET", "/console", 200).token(None),
        case("GET", "/console?x=1", 400).token(None),
        case("GET", "/console/", 200).token(None),
        case("GET", "/console/?x=1", 400).token(None),
        case("GET", "/console/console.js", 200).token(None),
        case("GET", "/console/console.css", 200).token(None),
        case("GET", "/console/secrets.txt", 404).token(None),
        case("GET", "/metrics", 200).token(None),
        case("GET", "/metrics?x", 400).token(None),
        case("GET", "/healthz", 200).token(None),
        case("GET", "/healthz?verbose=1", 400).token(None),
        case("GET", "/readyz", 200).token(None),
        case("GET", "/readyz", 503).token(None).fail(NotFound),
        case("GET", "/readyz?x=1", 400).token(None),
    ]
}

/// Every case's answer conforms to the document, and every documented
/// operation is answered at least once with success and once with an
/// error: a new operation needs its cases here.
#[tokio::test]
async fn the_handlers_answers_conform_to_the_document() {
    let doc = document();
    let mut seen: BTreeMap<(String, String), BTreeSet<u16>> = BTreeMap::new();
    let mut failures = Vec::new();
    for case in cases() {
        let router = fake_router(tokens(), case.fail);
        let mut req = Request::builder().method(case.method).uri(case.uri);
        if let Some(token) = case.token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        if let Some(content_type) = case.content_type {
            req = req.header(CONTENT_TYPE, content_type);
        }
        let req = req.body(Body::from(case.body)).expect("request");
        let res = router.oneshot(req).await.expect("infallible");
        let status = res.status();
        let headers = res.headers().clone();
        let body = body_bytes(res).await;
        let label = format!("{} {} ({:?})", case.method, case.uri, case.fail);
        if status.as_u16() != case.status {
            failures.push(format!(
                "{label}: {status}, expected {}: {}",
                case.status,
                String::from_utf8_lossy(&body)
            ));
            continue;
        }
        let path = case.uri.split('?').next().unwrap_or_default();
        if let Err(e) = conforms(&doc, case.method, path, status, &headers, &body) {
            failures.push(format!("{label}: {e}"));
        }
        if let Some((template, _)) = operation_of(&doc, case.method, path) {
            seen.entry((case.method.to_owned(), template))
                .or_default()
                .insert(status.as_u16());
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    for (method, path) in documented(&doc) {
        let statuses = seen
            .get(&(method.clone(), path.clone()))
            .cloned()
            .unwrap_or_default();
        assert!(
            statuses.iter().any(|s| *s < 300) && statuses.iter().any(|s| *s >= 400),
            "{method} {path}: cases give {statuses:?}; add a success and an error"
        );
    }
}

/// The checker itself fails answers that do not conform, so the test
/// above cannot pass by checking nothing.
#[test]
fn answers_off_the_document_are_caught() {
    let doc = document();
    let json_headers = |ct: &str| {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, ct.parse().expect("header"));
        h
    };
    let problem = json!({"type": "about:blank", "title": "Not Found", "status": 404,
                         "detail": "no campaign", "error": "no campaign"});
    let ok = |status: u16, ct: &str, body: &Value| {
        conforms(
            &doc,
            "GET",
            "/v1/campaigns/c1",
            StatusCode::from_u16(status).expect("status"),
            &json_headers(ct),
            body.to_string().as_bytes(),
        )
    };
    assert_eq!(ok(404, "application/problem+json", &problem), Ok(()));
    // An undocumented status, content type, member, a wrong status member.
    assert!(ok(409, "application/problem+json", &problem).is_err());
    assert!(ok(404, "application/json", &problem).is_err());
    let mut extra = problem.clone();
    extra["hint"] = json!("x");
    assert!(ok(404, "application/problem+json", &extra).is_err());
    let mut wrong = problem;
    wrong["status"] = json!(400);
    assert!(ok(404, "application/problem+json", &wrong).is_err());
    let view = serde_json::to_value(campaign_view("c1", CampaignState::Running)).expect("json");
    assert_eq!(ok(200, "application/json", &view), Ok(()));
    let mut lost = view.clone();
    lost["counts"]
        .as_object_mut()
        .expect("counts")
        .remove("opened");
    assert!(ok(200, "application/json", &lost).is_err());
    let mut new = view;
    new["progress"]["speed"] = json!(1);
    assert!(ok(200, "application/json", &new).is_err());
    // 401 without its WWW-Authenticate.
    let unauthorized = json!({"type": "about:blank", "title": "Unauthorized", "status": 401,
        "detail": "missing or wrong bearer token", "error": "missing or wrong bearer token"});
    assert!(ok(401, "application/problem+json", &unauthorized).is_err());
    // A body where 204 has none.
    assert!(
        conforms(
            &doc,
            "DELETE",
            "/v1/campaigns/c1",
            StatusCode::NO_CONTENT,
            &HeaderMap::new(),
            b"{}"
        )
        .is_err()
    );
}

/// The document is served as committed, to anyone, as JSON.
#[tokio::test]
async fn the_document_is_served_without_a_token() {
    let router = fake_router(tokens(), None);
    let req = Request::builder()
        .method(Method::GET)
        .uri("/v1/openapi.json")
        .body(Body::empty())
        .expect("request");
    let res = router.oneshot(req).await.expect("infallible");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[CONTENT_TYPE], "application/json");
    assert_eq!(body_bytes(res).await, DOCUMENT.as_bytes());
}
