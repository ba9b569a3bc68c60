//! An unsubscribe is answered only once the sink made it durable.

use std::sync::Mutex;
use std::task::{Context, Poll};

use super::*;

/// A sink whose unsubscribes become durable only when the test says so.
struct SlowSink {
    durable: Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
}

impl TrackingSink for SlowSink {
    async fn resolve_link(
        &self,
        _: MessageNo,
        _: LinkIndex,
    ) -> Result<Option<Arc<str>>, Overloaded> {
        Ok(None)
    }
    async fn knows_message(&self, _: MessageNo) -> Result<bool, Overloaded> {
        Ok(true)
    }
    fn record(&self, _: TrackingEvent) -> Result<(), Overloaded> {
        Ok(())
    }
    async fn unsubscribe(&self, _: TrackingEvent) -> Result<(), Overloaded> {
        let durable = self
            .durable
            .lock()
            .unwrap()
            .take()
            .expect("one unsubscribe");
        durable.await.map_err(|_| Overloaded)
    }
}

/// Handlers over a sink that makes the unsubscribe durable when `durable`
/// resolves, and a one-click POST for message 7.
fn one_click(durable: tokio::sync::oneshot::Receiver<()>) -> (Tracking<SlowSink>, Request<()>) {
    let sink = Arc::new(SlowSink {
        durable: Mutex::new(Some(durable)),
    });
    let keys = Arc::new(Keyring::from_secret(1, b"handler test secret, 32 bytes!!").unwrap());
    let token = keys.mint(Token::Unsubscribe {
        message: MessageNo(7),
    });
    let req = Request::post(format!("/u/{token}")).body(()).unwrap();
    (Tracking::new(sink, keys), req)
}

#[test]
fn the_unsubscribe_page_waits_until_the_unsubscribe_is_durable() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (tracking, req) = one_click(rx);
    let mut answer = std::pin::pin!(tracking.respond(&req));
    let mut cx = Context::from_waker(std::task::Waker::noop());
    assert!(
        answer.as_mut().poll(&mut cx).is_pending(),
        "no confirmation before the sink made the unsubscribe durable"
    );
    tx.send(()).unwrap();
    match answer.as_mut().poll(&mut cx) {
        Poll::Ready(res) => assert_eq!(res.status(), StatusCode::OK),
        Poll::Pending => panic!("durable, yet not answered"),
    }
}

#[test]
fn an_unsubscribe_the_sink_could_not_record_gets_503() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    drop(tx);
    let (tracking, req) = one_click(rx);
    let res = resolved(tracking.respond(&req));
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
}
