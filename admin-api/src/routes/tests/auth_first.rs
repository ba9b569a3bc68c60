//! The token is checked before any body is read: a request without the
//! right token is refused at once, whatever body it announces.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use axum::{
    body::{Body, Bytes},
    http::{Method, Request, StatusCode},
};
use tower::ServiceExt;

use super::app;
use crate::Tokens;

/// A body that notes whether anyone read from it.
fn watched_body(read: Arc<AtomicBool>) -> Body {
    let chunks = futures_util::stream::once(async move {
        read.store(true, Ordering::SeqCst);
        Ok::<_, std::io::Error>(Bytes::from_static(b"{}"))
    });
    Body::from_stream(chunks)
}

#[tokio::test]
async fn no_route_reads_a_body_before_the_token_is_right() {
    let routes = [
        (Method::PUT, "/v1/campaigns/c1"),
        (Method::POST, "/v1/campaigns/c1/participants"),
        (Method::POST, "/v1/campaigns/c1/participants/from"),
        (Method::POST, "/v1/bounces"),
        (Method::PUT, "/v1/channels/email/limits"),
        (Method::POST, "/v1/channels/email/plan"),
        (Method::PUT, "/v1/blacklist/email"),
    ];
    for (token, status) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some("wrong"), StatusCode::UNAUTHORIZED),
    ] {
        for (method, uri) in &routes {
            let (_, router) = app(Tokens::parse("crm:c1,admin:a1").expect("tokens"));
            let read = Arc::new(AtomicBool::new(false));
            let mut req = Request::builder()
                .method(method)
                .uri(*uri)
                .header("content-type", "application/json");
            if let Some(token) = token {
                req = req.header("authorization", format!("Bearer {token}"));
            }
            let req = req.body(watched_body(read.clone())).expect("request");
            let res = router.oneshot(req).await.expect("infallible");
            assert_eq!(res.status(), status, "{method} {uri}");
            assert!(
                !read.load(Ordering::SeqCst),
                "{method} {uri} read the body first"
            );
        }
    }
    // The CRM's token on an admin route: 403, still without the body.
    let (_, router) = app(Tokens::parse("crm:c1,admin:a1").expect("tokens"));
    let read = Arc::new(AtomicBool::new(false));
    let req = Request::put("/v1/channels/email/limits")
        .header("authorization", "Bearer c1")
        .body(watched_body(read.clone()))
        .expect("request");
    let res = router.oneshot(req).await.expect("infallible");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(!read.load(Ordering::SeqCst));
}
