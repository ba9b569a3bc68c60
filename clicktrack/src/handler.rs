//! The HTTP handlers of the public tracking listener, and the trait through
//! which they ask about links and report events.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::Keyring;
use crate::token::{LinkIndex, MessageNo, Token};

/// Answers questions and takes events for the handlers. The questions may
/// be answered from memory or from a store over the network (hence
/// futures); `record` must not wait: queue events (e.g. `try_send` on a
/// bounded channel drained by a batching writer with group commit).
pub trait TrackingSink: Send + Sync + 'static {
    /// The URL of link `link` of the campaign `message` belongs to; `None`
    /// when the message, its campaign, its link table (e.g. an old campaign
    /// purged from the store) or the link is unknown: the handler then
    /// answers 404. `Err` when that cannot be told now (the store did not
    /// answer): the handler answers 503, which a client may retry, never
    /// the 404 that says the link is gone.
    fn resolve_link(
        &self,
        message: MessageNo,
        link: LinkIndex,
    ) -> impl Future<Output = Result<Option<Arc<str>>, Overloaded>> + Send;

    /// Whether `message` is a message the gateway sent (for opens and
    /// unsubscribes, which name no link); `Err` as for `resolve_link`.
    fn knows_message(
        &self,
        message: MessageNo,
    ) -> impl Future<Output = Result<bool, Overloaded>> + Send;

    /// Takes one event without waiting. `Err(Overloaded)` when it cannot be
    /// queued: the handler then answers 503 instead of pretending success.
    /// The handler answers as soon as this returns `Ok`, so what a crash can
    /// lose of acknowledged events is what the sink holds in memory: its
    /// queue and the batch being committed (bounded by its group-commit
    /// interval).
    fn record(&self, event: TrackingEvent) -> Result<(), Overloaded>;

    /// Takes an unsubscribe and resolves once it is durable together with
    /// what follows from it (the address suppressed): the page that answers
    /// says no more messages will come, so it must not come first. `Err`
    /// when it could not be recorded: the handler answers 503.
    fn unsubscribe(
        &self,
        event: TrackingEvent,
    ) -> impl Future<Output = Result<(), Overloaded>> + Send;
}

/// The sink could not take an event right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overloaded;

/// Something a recipient did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackingEvent {
    /// When the request arrived.
    pub at: SystemTime,
    /// The message it concerns.
    pub message: MessageNo,
    /// What happened.
    pub kind: EventKind,
}

/// What a recipient did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// Followed link `link`, redirected to `url`.
    Clicked {
        /// The link's index in the campaign's table.
        link: LinkIndex,
        /// The URL the recipient was sent to.
        url: Arc<str>,
    },
    /// Loaded the open pixel.
    Opened,
    /// Unsubscribed (one-click POST or the confirmation page's button).
    Unsubscribed,
}

/// The tracking handlers: a cheap-to-clone hyper [`Service`] that the gateway
/// can mount on its own listener, or call through [`Tracking::respond`] from
/// another framework.
///
/// | route | methods | answer |
/// |---|---|---|
/// | `/c/{token}` | GET, HEAD | 302 to the link's URL; GET records [`EventKind::Clicked`] |
/// | `/o/{token}` | GET, HEAD | 1×1 transparent GIF, not cacheable; GET records [`EventKind::Opened`] |
/// | `/u/{token}` | GET, HEAD | a page with a button that POSTs back; records nothing |
/// | `/u/{token}` | POST | RFC 8058 one-click unsubscribe: records [`EventKind::Unsubscribed`] durably, then a small page |
///
/// HEAD answers with the same status and headers as GET but records nothing:
/// HEAD comes from link scanners and prefetchers, not from people. Replays are
/// not detected: each GET of a click URL is one more click.
///
/// A token that does not verify (garbage, truncated, oversized, tampered,
/// unknown key), a token of another kind than its route, an unknown message or
/// link, or a stored URL that is not `http(s)` gives 404 with no `Location`.
/// Another method on a tracking route gives 405 with `Allow`. When the sink
/// refuses an event ([`Overloaded`]) the answer is 503 with `Retry-After`, not
/// the redirect: every 302, pixel and unsubscribe confirmation the handler
/// sends stands for an event the sink accepted.
///
/// [`Service`]: hyper::service::Service
pub struct Tracking<S> {
    sink: Arc<S>,
    keys: Arc<Keyring>,
}

impl<S> Clone for Tracking<S> {
    fn clone(&self) -> Self {
        Tracking {
            sink: self.sink.clone(),
            keys: self.keys.clone(),
        }
    }
}

impl<S> std::fmt::Debug for Tracking<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracking")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

const GIF: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

const CONFIRM_PAGE: &str = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width\"><title>Unsubscribe</title></head>\
<body style=\"font-family:sans-serif;max-width:30em;margin:3em auto\">\
<h1>Unsubscribe</h1><p>Stop receiving these messages?</p>\
<form method=\"post\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
<button type=\"submit\">Unsubscribe</button></form></body></html>\n";

const DONE_PAGE: &str = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width\"><title>Unsubscribed</title></head>\
<body style=\"font-family:sans-serif;max-width:30em;margin:3em auto\">\
<h1>Unsubscribed</h1><p>You will not receive these messages any more.</p></body></html>\n";

const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");
const PAGE_CSP: HeaderValue =
    HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'");

impl<S: TrackingSink> Tracking<S> {
    /// Handlers reporting to `sink` and verifying tokens with `keys`.
    pub fn new(sink: Arc<S>, keys: Arc<Keyring>) -> Self {
        Tracking { sink, keys }
    }

    /// The response to `req`. Only the method and the path are read (the
    /// query is ignored, the body of a one-click POST is not needed: the
    /// token authorises it).
    pub async fn respond<B>(&self, req: &Request<B>) -> Response<Full<Bytes>> {
        self.route(req.method(), req.uri().path()).await
    }

    /// The response to `method` on `path`.
    pub async fn route(&self, method: &Method, path: &str) -> Response<Full<Bytes>> {
        let (route, token) = match path.as_bytes() {
            [b'/', route @ (b'c' | b'o' | b'u'), b'/', ..] => (*route, &path[3..]),
            _ => return not_found(),
        };
        let head = method == Method::HEAD;
        match route {
            b'c' if head || method == Method::GET => self.click(token, head).await,
            b'o' if head || method == Method::GET => self.open(token, head).await,
            b'u' if head || method == Method::GET => self.unsubscribe_page(token, head).await,
            b'u' if method == Method::POST => self.unsubscribe(token).await,
            b'u' => not_allowed("GET, HEAD, POST"),
            _ => not_allowed("GET, HEAD"),
        }
    }

    /// The message `token` names, if it verifies, is of the kind wanted
    /// and is known.
    async fn message_of(
        &self,
        token: &str,
        want: fn(Token) -> Option<MessageNo>,
    ) -> Result<Option<MessageNo>, Overloaded> {
        let Some(message) = self.keys.verify(token).ok().and_then(want) else {
            return Ok(None);
        };
        Ok(self.sink.knows_message(message).await?.then_some(message))
    }

    fn record(&self, message: MessageNo, kind: EventKind) -> Result<(), Overloaded> {
        self.sink.record(TrackingEvent {
            at: SystemTime::now(),
            message,
            kind,
        })
    }

    async fn click(&self, token: &str, head: bool) -> Response<Full<Bytes>> {
        let Ok(Token::Click { message, link }) = self.keys.verify(token) else {
            return not_found();
        };
        let Ok(resolved) = self.sink.resolve_link(message, link).await else {
            return overloaded();
        };
        let Some(url) = resolved else {
            return not_found();
        };
        let Some(location) = location(&url) else {
            return not_found();
        };
        if !head
            && self
                .record(message, EventKind::Clicked { link, url })
                .is_err()
        {
            return overloaded();
        }
        let mut res = Response::new(Full::new(Bytes::new()));
        *res.status_mut() = StatusCode::FOUND;
        let h = res.headers_mut();
        h.insert(header::LOCATION, location);
        h.insert(header::CACHE_CONTROL, NO_STORE);
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        res
    }

    async fn open(&self, token: &str, head: bool) -> Response<Full<Bytes>> {
        let opened = self.message_of(token, |t| match t {
            Token::Open { message } => Some(message),
            _ => None,
        });
        let message = match opened.await {
            Ok(Some(message)) => message,
            Ok(None) => return not_found(),
            Err(Overloaded) => return overloaded(),
        };
        if !head && self.record(message, EventKind::Opened).is_err() {
            return overloaded();
        }
        let mut res = body(StatusCode::OK, GIF, head);
        let h = res.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/gif"));
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store, no-cache, must-revalidate, private, max-age=0"),
        );
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        h.insert(
            header::EXPIRES,
            HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"),
        );
        res
    }

    async fn unsubscribe_message(&self, token: &str) -> Result<Option<MessageNo>, Overloaded> {
        self.message_of(token, |t| match t {
            Token::Unsubscribe { message } => Some(message),
            _ => None,
        })
        .await
    }

    async fn unsubscribe_page(&self, token: &str, head: bool) -> Response<Full<Bytes>> {
        match self.unsubscribe_message(token).await {
            Ok(Some(_)) => html(CONFIRM_PAGE, head),
            Ok(None) => not_found(),
            Err(Overloaded) => overloaded(),
        }
    }

    async fn unsubscribe(&self, token: &str) -> Response<Full<Bytes>> {
        let message = match self.unsubscribe_message(token).await {
            Ok(Some(message)) => message,
            Ok(None) => return not_found(),
            Err(Overloaded) => return overloaded(),
        };
        let event = TrackingEvent {
            at: SystemTime::now(),
            message,
            kind: EventKind::Unsubscribed,
        };
        match self.sink.unsubscribe(event).await {
            Ok(()) => html(DONE_PAGE, false),
            Err(Overloaded) => overloaded(),
        }
    }
}

/// The hyper service's future: the response to one request.
pub type Served = Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send>>;

impl<S: TrackingSink, B> hyper::service::Service<Request<B>> for Tracking<S> {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Served;

    fn call(&self, req: Request<B>) -> Self::Future {
        // The future owns what it reads: the method and the URI (shared,
        // not copied), not the request and its body.
        let tracking = self.clone();
        let (method, uri) = (req.method().clone(), req.uri().clone());
        Box::pin(async move { Ok(tracking.route(&method, uri.path()).await) })
    }
}

/// The `Location` value for a stored URL: only absolute `http(s)` URLs, with
/// bytes that cannot appear in a header percent-encoded.
fn location(url: &str) -> Option<HeaderValue> {
    let scheme_ok = ["http://", "https://"].iter().any(|s| {
        url.get(..s.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(s))
            && url.len() > s.len()
    });
    if !scheme_ok {
        return None;
    }
    if url.bytes().all(|b| b.is_ascii_graphic()) {
        return HeaderValue::from_str(url).ok();
    }
    let mut encoded = String::with_capacity(url.len() + 16);
    for b in url.bytes() {
        if b.is_ascii_graphic() {
            encoded.push(char::from(b));
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            encoded.push('%');
            encoded.push(char::from(HEX[usize::from(b >> 4)]));
            encoded.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    HeaderValue::from_str(&encoded).ok()
}

/// A response with `content`, or for HEAD no body and the same length.
fn body(status: StatusCode, content: &'static [u8], head: bool) -> Response<Full<Bytes>> {
    let mut res = if head {
        let mut res = Response::new(Full::new(Bytes::new()));
        res.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(content.len()));
        res
    } else {
        Response::new(Full::new(Bytes::from_static(content)))
    };
    *res.status_mut() = status;
    res
}

fn html(page: &'static str, head: bool) -> Response<Full<Bytes>> {
    let mut res = body(StatusCode::OK, page.as_bytes(), head);
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, NO_STORE);
    h.insert(header::CONTENT_SECURITY_POLICY, PAGE_CSP);
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        HeaderName::from_static("x-robots-tag"),
        HeaderValue::from_static("noindex"),
    );
    res
}

fn text(status: StatusCode, message: &'static str) -> Response<Full<Bytes>> {
    let mut res = body(status, message.as_bytes(), false);
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, NO_STORE);
    res
}

fn not_found() -> Response<Full<Bytes>> {
    text(StatusCode::NOT_FOUND, "not found\n")
}

fn not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut res = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    res.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    res
}

fn overloaded() -> Response<Full<Bytes>> {
    let mut res = text(StatusCode::SERVICE_UNAVAILABLE, "busy, try again\n");
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    res
}

#[cfg(test)]
mod tests;
