//! Every refusal, whichever layer makes it, is an RFC 9457 problem document
//! (`docs/api.md#errors`) naming the parameter or segment at fault.

use axum::{
    body::Body,
    http::{
        HeaderMap, Request, StatusCode,
        header::{ALLOW, CONTENT_TYPE},
    },
};
use serde_json::Value;
use tower::ServiceExt;

use super::{app, post};
use crate::{Tokens, error::PROBLEM_JSON};

/// Sends `req`, checks that the answer is a problem with `status` and the
/// members every problem has, and returns its headers and body.
async fn problem(req: Request<Body>, status: StatusCode) -> (HeaderMap, Value) {
    let (_, router) = app(Tokens::default());
    let res = router.oneshot(req).await.expect("infallible");
    assert_eq!(res.status(), status);
    let headers = res.headers().clone();
    assert_eq!(headers[CONTENT_TYPE], PROBLEM_JSON);
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .expect("body");
    let body: Value = serde_json::from_slice(&bytes).expect("a JSON body");
    assert_eq!(body["type"], "about:blank", "{body}");
    assert_eq!(body["status"], status.as_u16(), "{body}");
    assert_eq!(body["title"], status.canonical_reason().expect("reason"));
    assert!(body["detail"].is_string(), "{body}");
    assert!(body["error"].is_string(), "{body}");
    (headers, body)
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).expect("request")
}

fn detail(body: &Value) -> &str {
    body["detail"].as_str().expect("detail")
}

#[tokio::test]
async fn an_unknown_route_is_a_404_naming_the_path() {
    for path in [
        "/v1/campagins/c1",
        "/",
        "/v1/campaigns/c1/participants/extra",
    ] {
        let (_, body) = problem(get(path), StatusCode::NOT_FOUND).await;
        assert!(detail(&body).contains(path), "{body}");
    }
}

#[tokio::test]
async fn a_wrong_method_is_a_405_with_allow_on_every_route() {
    for (path, allow) in [
        ("/v1/events", "GET,HEAD"),
        ("/v1/campaigns/c1/participants", "GET,HEAD,POST"),
        ("/metrics", "GET,HEAD"),
        ("/healthz", "GET,HEAD"),
        ("/readyz", "GET,HEAD"),
    ] {
        let req = Request::delete(path).body(Body::empty()).expect("request");
        let (headers, body) = problem(req, StatusCode::METHOD_NOT_ALLOWED).await;
        assert_eq!(headers[ALLOW], allow, "{path}");
        assert!(detail(&body).contains(path), "{body}");
        assert!(detail(&body).contains("DELETE"), "{body}");
    }
}

#[tokio::test]
async fn an_unknown_query_parameter_is_named_with_the_accepted_ones() {
    let (_, body) = problem(get("/v1/events?after=3&limt=5"), StatusCode::BAD_REQUEST).await;
    assert_eq!(body["field"], "limt");
    assert!(detail(&body).contains("`limt`"), "{body}");
    assert!(detail(&body).contains("`after`, `limit`"), "{body}");
    let (_, body) = problem(get("/healthz?verbose=1"), StatusCode::BAD_REQUEST).await;
    assert_eq!(body["field"], "verbose");
    assert!(
        detail(&body).contains("takes no query parameters"),
        "{body}"
    );
}

#[tokio::test]
async fn a_bad_missing_or_repeated_query_value_names_the_parameter() {
    let (_, body) = problem(get("/v1/events?after=x"), StatusCode::BAD_REQUEST).await;
    assert_eq!(body["field"], "after");
    assert_eq!(
        detail(&body),
        "query parameter `after` must be an integer 0..=18446744073709551615, not `x`"
    );
    let (_, body) = problem(get("/v1/events?limit=-1"), StatusCode::BAD_REQUEST).await;
    assert_eq!(body["field"], "limit");
    let missing = get("/v1/campaigns/c1/participants");
    let (_, body) = problem(missing, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["field"], "outcome");
    assert!(detail(&body).contains("`outcome` is required"), "{body}");
    let (_, body) = problem(get("/v1/events?after=1&after=2"), StatusCode::BAD_REQUEST).await;
    assert_eq!(body["field"], "after");
    assert!(detail(&body).contains("more than once"), "{body}");
}

#[tokio::test]
async fn query_values_out_of_range_stay_422_and_name_the_parameter() {
    let (_, body) = problem(get("/v1/events?limit=0"), StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["field"], "limit");
    assert_eq!(body["problems"][0], "limit must be 1..=10000");
    let sleepy = get("/v1/campaigns/c1/participants?outcome=sleepy");
    let (_, body) = problem(sleepy, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["field"], "outcome");
    assert!(detail(&body).contains("outcome `sleepy`"), "{body}");
}

#[tokio::test]
async fn bad_path_segments_are_named() {
    let (_, body) = problem(get("/v1/channels/fax/limits"), StatusCode::NOT_FOUND).await;
    assert_eq!(body["field"], "channel");
    assert_eq!(body["error"], "no channel `fax` (email or sms)");
    let (_, body) = problem(get("/v1/campaigns/bad%20id"), StatusCode::NOT_FOUND).await;
    assert_eq!(body["field"], "id");
    let (_, body) = problem(get("/v1/campaigns/%FF"), StatusCode::BAD_REQUEST).await;
    assert_eq!(body["field"], "id");
    assert!(detail(&body).contains("`id`"), "{body}");
    let pause = Request::post("/v1/campaigns/c1/snooze")
        .body(Body::empty())
        .expect("request");
    let (_, body) = problem(pause, StatusCode::NOT_FOUND).await;
    assert_eq!(body["field"], "action");
}

/// The whole-body routes used to answer axum's plain-text "length limit
/// exceeded"; every route now names the limit (1024 in these tests).
#[tokio::test]
async fn a_too_large_body_is_a_413_naming_the_limit() {
    let big = " ".repeat(2000);
    for req in [
        Request::put("/v1/blacklist/sms").body(Body::from(big.clone())),
        Request::put("/v1/campaigns/c1").body(Body::from(big.clone())),
        Request::post("/v1/bounces").body(Body::from(big.clone())),
    ] {
        let (_, body) = problem(req.expect("request"), StatusCode::PAYLOAD_TOO_LARGE).await;
        assert_eq!(body["limit"], 1024);
        assert_eq!(detail(&body), "body larger than 1024 bytes");
    }
    let upload = post(
        "/v1/campaigns/c1/participants",
        "application/x-ndjson",
        &big,
    );
    let (_, body) = problem(upload, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert_eq!(body["limit"], 1024);
}

#[tokio::test]
async fn malformed_json_is_a_400_naming_the_line() {
    let req = Request::put("/v1/campaigns/c1")
        .body(Body::from("{\n\"channel\":"))
        .expect("request");
    let (_, body) = problem(req, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["line"], 2);
    assert!(
        detail(&body).starts_with("malformed JSON at line 2"),
        "{body}"
    );
}

/// A refused value is echoed cut short: a long name neither comes back
/// whole nor is stored (issue 20). (The test router takes 1 KiB bodies.)
#[tokio::test]
async fn values_over_their_limit_are_refused_with_a_short_echo() {
    let long = "n".repeat(900);
    let req = Request::put("/v1/campaigns/c1")
        .body(Body::from(format!(
            r#"{{"channel":"email","name":"{long}"}}"#
        )))
        .expect("request");
    let (_, body) = problem(req, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["problems"][0], "name: 900 characters, at most 200");
    let req = Request::put("/v1/campaigns/c1")
        .body(Body::from(format!(r#"{{"channel":"{long}","name":"x"}}"#)))
        .expect("request");
    let (_, body) = problem(req, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(body.to_string().len() < 900, "{body}");
    assert!(detail(&body).contains("(900 characters)"), "{body}");
}

#[tokio::test]
async fn an_invalid_declaration_is_a_422_with_every_problem() {
    let req = Request::put("/v1/campaigns/c1")
        .body(Body::from(
            r#"{"channel":"email","name":"x","colour":"red"}"#,
        ))
        .expect("request");
    let (_, body) = problem(req, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["error"], "invalid request");
    let first = body["problems"][0].as_str().expect("a problem");
    assert!(first.contains("colour"), "{body}");
    assert_eq!(detail(&body), format!("invalid request: {first}"));
    assert!(body.get("field").is_none(), "{body}");
}

#[tokio::test]
async fn a_refused_token_is_a_problem_with_www_authenticate() {
    let (_, router) = app(Tokens::new(vec![(crate::Role::Crm, "c".into())]));
    let res = router.oneshot(get("/v1/events")).await.expect("infallible");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()[CONTENT_TYPE], PROBLEM_JSON);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
}
