//! Bodies read whole share one memory budget (`api.max_body_memory`): while
//! one request holds it, another body is refused at once with 503, and the
//! budget is free again once the first request is answered (issue 20).

use std::sync::Arc;

use axum::{
    body::{Body, Bytes},
    http::{Request, StatusCode},
};
use tokio::sync::oneshot;
use tower::ServiceExt;

use super::{Memory, call};
use crate::{ApiConfig, Tokens, router};

/// A body that sends `first` bytes, says so on `sent`, and ends only when
/// `end` fires.
fn held_open(first: usize, sent: oneshot::Sender<()>, end: oneshot::Receiver<()>) -> Body {
    let chunks = futures_util::stream::unfold(
        (Some(first), Some(sent), Some(end)),
        |(first, sent, end)| async move {
            if let Some(n) = first {
                return Some((Ok(Bytes::from(vec![b' '; n])), (None, sent, end)));
            }
            // Polled again: the first chunk has been taken.
            if let Some(sent) = sent {
                let _ = sent.send(());
            }
            let _ = end?.await;
            None::<(Result<Bytes, std::io::Error>, _)>
        },
    );
    Body::from_stream(chunks)
}

fn declare(body: Body) -> Request<Body> {
    Request::put("/v1/campaigns/c1")
        .header("content-type", "application/json")
        .body(body)
        .expect("request")
}

#[tokio::test]
async fn a_body_beyond_the_shared_budget_is_refused_until_the_holder_is_answered() {
    let router = router(
        Arc::new(Memory::default()),
        ApiConfig {
            tokens: Tokens::default(),
            max_body_bytes: 1000,
            max_body_memory: 1500,
        },
    );
    let (sent, taken) = oneshot::channel();
    let (end, ended) = oneshot::channel();
    let holder = tokio::spawn(
        router
            .clone()
            .oneshot(declare(held_open(1000, sent, ended))),
    );
    taken.await.expect("the first chunk was read");

    let small = || declare(Body::from(r#"{"channel":"email","name":"n"}"#));
    let (status, _) = call(router.clone(), small()).await;
    assert_eq!(status, StatusCode::OK, "what fits in the budget is taken");
    let (status, problem) = call(router.clone(), declare(Body::from(" ".repeat(600)))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .expect("detail")
            .contains("api.max_body_memory"),
        "{problem}"
    );

    end.send(()).expect("holder waits");
    let answered = holder.await.expect("joined").expect("infallible");
    assert_eq!(answered.status(), StatusCode::BAD_REQUEST, "blank JSON");
    let (status, _) = call(router, declare(Body::from(" ".repeat(600)))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the budget is free again");
}
