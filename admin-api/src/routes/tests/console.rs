//! The web console's routes (`routes/console.rs`): the page and its fixed
//! assets, served without a token under a strict policy; anything else a
//! 404 problem.

use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use tower::ServiceExt;

use super::{app, call};
use crate::{Tokens, auth::Role};

async fn get(path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    let (_, router) = app(Tokens::new(vec![(Role::Admin, "a".into())]));
    let req = Request::get(path).body(Body::empty()).expect("request");
    let res = router.oneshot(req).await.expect("infallible");
    let (status, headers) = (res.status(), res.headers().clone());
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .expect("body");
    (
        status,
        headers,
        String::from_utf8(body.to_vec()).expect("UTF-8"),
    )
}

/// The page and every asset come with no token, their content type, no
/// caching without a check, and a policy that allows nothing from
/// elsewhere and nothing inline.
#[tokio::test]
async fn the_page_and_its_assets_are_served_without_a_token_under_a_strict_policy() {
    for (path, content_type, start) in [
        ("/console", "text/html; charset=utf-8", "<!doctype html>"),
        ("/console/", "text/html; charset=utf-8", "<!doctype html>"),
        (
            "/console/console.js",
            "text/javascript; charset=utf-8",
            "// sluice's web console",
        ),
        ("/console/console.css", "text/css; charset=utf-8", "body {"),
        ("/console/favicon.svg", "image/svg+xml", "<svg"),
    ] {
        let (status, headers, body) = get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(header("content-type"), content_type, "{path}");
        assert_eq!(header("cache-control"), "no-cache", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        let policy = header("content-security-policy");
        assert!(
            policy.starts_with("default-src 'self';") && !policy.contains("unsafe"),
            "{path}: {policy}"
        );
        for directive in [
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
        ] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        assert!(body.starts_with(start), "{path}: {body:.80}");
    }
}

/// The page loads only what the router serves, and has no inline script
/// or style the policy would block.
#[tokio::test]
async fn the_page_links_only_served_assets_and_nothing_inline() {
    let (_, _, page) = get("/console").await;
    for asset in ["console.js", "console.css", "favicon.svg"] {
        assert!(page.contains(&format!("\"/console/{asset}\"")), "{asset}");
    }
    assert!(
        page.contains("<script type=\"module\" src=\"/console/console.js\"></script>"),
        "{page}"
    );
    assert!(!page.contains("<style"), "no inline style");
    assert!(!page.contains(" style="), "no style attribute");
    assert_eq!(page.matches("<script").count(), 1, "one script, external");
    let (_, _, script) = get("/console/console.js").await;
    assert!(!script.contains("innerHTML"), "API text goes in as text");
    assert!(
        !script.contains("setAttribute(\"style\""),
        "no style attribute"
    );
}

/// Only the fixed assets: a path that leaves the directory, an unknown
/// name or a nested path is a 404 problem.
#[tokio::test]
async fn anything_else_under_console_is_a_404_problem() {
    let (_, router) = app(Tokens::new(vec![(Role::Admin, "a".into())]));
    for path in [
        "/console/app.js",
        "/console/index.html",
        "/console/..%2FCargo.toml",
    ] {
        let req = Request::get(path).body(Body::empty()).expect("request");
        let (status, problem) = call(router.clone(), req).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(problem["status"], 404, "{path}: {problem}");
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("no console asset `")),
            "{path}: {problem}"
        );
    }
    for path in ["/console/../Cargo.toml", "/console/x/console.js"] {
        let req = Request::get(path).body(Body::empty()).expect("request");
        let (status, problem) = call(router.clone(), req).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(problem["status"], 404, "{path}: {problem}");
    }
}
