use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::{Key, Rewriter, serve, serve_on_thread};

mod unsubscribe;

/// A sink holding link tables and events in memory.
#[derive(Default)]
struct MemSink {
    links: HashMap<(u64, u16), Arc<str>>,
    messages: HashSet<u64>,
    events: Mutex<Vec<TrackingEvent>>,
    full: AtomicBool,
    /// Its store does not answer.
    silent: AtomicBool,
}

impl MemSink {
    fn answering(&self) -> Result<(), Overloaded> {
        match self.silent.load(Ordering::Relaxed) {
            true => Err(Overloaded),
            false => Ok(()),
        }
    }
}

impl TrackingSink for MemSink {
    async fn resolve_link(
        &self,
        message: MessageNo,
        link: LinkIndex,
    ) -> Result<Option<Arc<str>>, Overloaded> {
        self.answering()?;
        Ok(self.links.get(&(message.0, link.0)).cloned())
    }
    async fn knows_message(&self, message: MessageNo) -> Result<bool, Overloaded> {
        self.answering()?;
        Ok(self.messages.contains(&message.0))
    }
    fn record(&self, event: TrackingEvent) -> Result<(), Overloaded> {
        if self.full.load(Ordering::Relaxed) {
            return Err(Overloaded);
        }
        self.events.lock().unwrap().push(event);
        Ok(())
    }
    async fn unsubscribe(&self, event: TrackingEvent) -> Result<(), Overloaded> {
        self.record(event)
    }
}

/// The response of an answer that needs no waiting (every one of `MemSink`'s).
fn resolved(answer: impl Future<Output = Response<Full<Bytes>>>) -> Response<Full<Bytes>> {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match std::pin::pin!(answer).poll(&mut cx) {
        Poll::Ready(res) => res,
        Poll::Pending => panic!("the answer waits"),
    }
}

impl MemSink {
    fn kinds(&self) -> Vec<(u64, EventKind)> {
        let events = self.events.lock().unwrap();
        events
            .iter()
            .map(|e| (e.message.0, e.kind.clone()))
            .collect()
    }
}

const OFFER: &str = "https://shop.example/offer?id=1&src=mail";

struct Fixture {
    sink: Arc<MemSink>,
    keys: Arc<Keyring>,
    tracking: Tracking<MemSink>,
}

fn fixture() -> Fixture {
    let mut sink = MemSink::default();
    sink.messages.extend([7, 8]);
    sink.links.insert((7, 0), Arc::from(OFFER));
    sink.links
        .insert((7, 1), Arc::from("https://shop.example/a path/é"));
    sink.links.insert((7, 2), Arc::from("javascript:alert(1)"));
    sink.links
        .insert((8, 0), Arc::from("http://other.example/"));
    let sink = Arc::new(sink);
    let keys = Arc::new(Keyring::from_secret(1, b"handler test secret, 32 bytes!!").unwrap());
    let tracking = Tracking::new(sink.clone(), keys.clone());
    Fixture {
        sink,
        keys,
        tracking,
    }
}

impl Fixture {
    fn get(&self, method: Method, path: &str) -> Response<Full<Bytes>> {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(())
            .unwrap();
        resolved(self.tracking.respond(&req))
    }
    fn click(&self, message: u64, link: u16) -> String {
        let token = self.keys.mint(Token::Click {
            message: MessageNo(message),
            link: LinkIndex(link),
        });
        format!("/c/{token}")
    }
    fn open(&self, message: u64) -> String {
        format!(
            "/o/{}",
            self.keys.mint(Token::Open {
                message: MessageNo(message)
            })
        )
    }
    fn unsub(&self, message: u64) -> String {
        format!(
            "/u/{}",
            self.keys.mint(Token::Unsubscribe {
                message: MessageNo(message)
            })
        )
    }
}

fn body(res: Response<Full<Bytes>>) -> Bytes {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(res.into_body().collect()).unwrap().to_bytes()
}

fn header<'a>(res: &'a Response<Full<Bytes>>, name: &str) -> Option<&'a str> {
    res.headers().get(name).map(|v| v.to_str().unwrap())
}

fn assert_not_found(res: &Response<Full<Bytes>>, what: &str) {
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "{what}");
    assert!(res.headers().get(header::LOCATION).is_none(), "{what}");
}

#[test]
fn click_redirects_to_the_real_url_and_records_each_follow() {
    let f = fixture();
    let path = f.click(7, 0);
    for _ in 0..2 {
        let res = f.get(Method::GET, &path);
        assert_eq!(res.status(), StatusCode::FOUND);
        assert_eq!(header(&res, "location"), Some(OFFER));
        assert_eq!(header(&res, "cache-control"), Some("no-store"));
        assert!(body(res).is_empty());
    }
    let clicked = EventKind::Clicked {
        link: LinkIndex(0),
        url: Arc::from(OFFER),
    };
    assert_eq!(f.sink.kinds(), [(7, clicked.clone()), (7, clicked)]);
    // The query of the tracking URL is ignored.
    let res = f.get(Method::GET, &format!("{path}?utm=x"));
    assert_eq!(header(&res, "location"), Some(OFFER));
}

#[test]
fn location_is_percent_encoded_where_a_header_needs_it() {
    let f = fixture();
    let res = f.get(Method::GET, &f.click(7, 1));
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(
        header(&res, "location"),
        Some("https://shop.example/a%20path/%C3%A9")
    );
}

#[test]
fn head_answers_like_get_and_records_nothing() {
    let f = fixture();
    let res = f.get(Method::HEAD, &f.click(7, 0));
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(header(&res, "location"), Some(OFFER));
    let res = f.get(Method::HEAD, &f.open(7));
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "content-type"), Some("image/gif"));
    assert_eq!(header(&res, "content-length"), Some("43"));
    assert!(body(res).is_empty());
    let res = f.get(Method::HEAD, &f.unsub(7));
    assert_eq!(res.status(), StatusCode::OK);
    assert!(body(res).is_empty());
    assert!(f.sink.kinds().is_empty());
}

#[test]
fn open_pixel_is_an_uncacheable_gif() {
    let f = fixture();
    let res = f.get(Method::GET, &f.open(8));
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "content-type"), Some("image/gif"));
    assert!(header(&res, "cache-control").unwrap().contains("no-store"));
    assert_eq!(header(&res, "pragma"), Some("no-cache"));
    assert!(header(&res, "expires").is_some());
    let gif = body(res);
    assert_eq!(gif.len(), 43);
    assert!(gif.starts_with(b"GIF89a\x01\x00\x01\x00"));
    assert!(gif.ends_with(b";"));
    assert_eq!(f.sink.kinds(), [(8, EventKind::Opened)]);
}

#[test]
fn unsubscribe_page_confirms_then_one_click_post_records() {
    let f = fixture();
    let path = f.unsub(7);
    let res = f.get(Method::GET, &path);
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        header(&res, "content-type"),
        Some("text/html; charset=utf-8")
    );
    let page = String::from_utf8(body(res).to_vec()).unwrap();
    assert!(page.contains("<form method=\"post\">"), "{page}");
    assert!(page.contains("name=\"List-Unsubscribe\" value=\"One-Click\""));
    assert!(f.sink.kinds().is_empty(), "GET must not unsubscribe");

    let req = Request::builder()
        .method(Method::POST)
        .uri(&path)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .unwrap();
    let res = resolved(f.tracking.respond(&req));
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        String::from_utf8(body(res).to_vec())
            .unwrap()
            .contains("Unsubscribed")
    );
    assert_eq!(f.sink.kinds(), [(7, EventKind::Unsubscribed)]);
}

#[test]
fn bad_tokens_unknown_links_and_wrong_kinds_are_404_without_location() {
    let f = fixture();
    let good = f.click(7, 0);
    let token = &good[3..];
    let mut cases = vec![
        ("unknown link", f.click(7, 9)),
        ("unknown message", f.click(9, 0)),
        ("stored URL not http", f.click(7, 2)),
        ("open of unknown message", f.open(9)),
        ("unsubscribe of unknown message", f.unsub(9)),
        ("open token on /c", format!("/c/{}", &f.open(7)[3..])),
        (
            "unsubscribe token on /c",
            format!("/c/{}", &f.unsub(7)[3..]),
        ),
        ("click token on /o", format!("/o/{token}")),
        ("click token on /u", format!("/u/{token}")),
        ("truncated", good[..good.len() - 1].to_string()),
        ("extended", format!("{good}A")),
        ("extra segment", format!("{good}/x")),
        ("empty token", "/c/".into()),
        ("no slash", "/c".into()),
        ("root", "/".into()),
        ("other route", format!("/x/{token}")),
        ("prefixed", format!("/t{good}")),
        ("garbage", "/c/%00%ff%3Cscript%3E".into()),
        ("oversized", format!("/c/{}", "A".repeat(8 * 1024 + 1))),
        (
            "oversized valid prefix",
            format!("{good}{}", "A".repeat(8 * 1024)),
        ),
        ("padding", format!("{good}==")),
    ];
    let other_key = Keyring::from_secret(1, b"another secret, also 32 bytes!!!").unwrap();
    let forged = other_key.mint(Token::Click {
        message: MessageNo(7),
        link: LinkIndex(0),
    });
    cases.push(("signed by another key", format!("/c/{forged}")));
    for i in 0..token.len() {
        let mut chars: Vec<u8> = token.bytes().collect();
        chars[i] = if chars[i] == b'A' { b'B' } else { b'A' };
        cases.push((
            "tampered",
            format!("/c/{}", String::from_utf8(chars).unwrap()),
        ));
    }
    for (what, path) in &cases {
        for method in [Method::GET, Method::HEAD] {
            assert_not_found(&f.get(method, path), what);
        }
    }
    assert!(f.sink.kinds().is_empty());
}

#[test]
fn other_methods_are_405_with_allow() {
    let f = fixture();
    let click = f.click(7, 0);
    for (method, path, allow) in [
        (Method::POST, click.clone(), "GET, HEAD"),
        (Method::PUT, f.open(7), "GET, HEAD"),
        (Method::OPTIONS, click.clone(), "GET, HEAD"),
        (Method::DELETE, f.unsub(7), "GET, HEAD, POST"),
        (Method::PATCH, "/u/garbage".into(), "GET, HEAD, POST"),
    ] {
        let res = f.get(method.clone(), &path);
        assert_eq!(
            res.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(header(&res, "allow"), Some(allow));
        assert!(res.headers().get(header::LOCATION).is_none());
    }
    assert!(f.sink.kinds().is_empty());
}

#[test]
fn an_overloaded_sink_gets_503_not_a_redirect() {
    let f = fixture();
    f.sink.full.store(true, Ordering::Relaxed);
    for path in [f.click(7, 0), f.open(7)] {
        let res = f.get(Method::GET, &path);
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(header(&res, "retry-after"), Some("1"));
        assert!(res.headers().get(header::LOCATION).is_none());
    }
    assert_eq!(
        f.get(Method::POST, &f.unsub(7)).status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    // HEAD records nothing, so it is not refused.
    assert_eq!(
        f.get(Method::HEAD, &f.click(7, 0)).status(),
        StatusCode::FOUND
    );
}

/// A store that cannot answer whether a link or a message is known gets
/// 503, which a client retries (a one-click unsubscribe included), never
/// the 404 that says the link is gone for good.
#[test]
fn a_store_that_does_not_answer_gets_503_not_404() {
    let f = fixture();
    f.sink.silent.store(true, Ordering::Relaxed);
    for (method, path) in [
        (Method::GET, f.click(7, 0)),
        (Method::GET, f.open(7)),
        (Method::GET, f.unsub(7)),
        (Method::POST, f.unsub(7)),
    ] {
        let res = f.get(method.clone(), &path);
        assert_eq!(
            res.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{method} {path}"
        );
        assert!(res.headers().get(header::LOCATION).is_none());
    }
    assert!(f.sink.kinds().is_empty(), "nothing recorded");
}

#[test]
fn links_sent_before_a_key_rotation_still_redirect() {
    let f = fixture();
    let before = f.click(7, 0);
    let rotated = Keyring::from_secret(2, b"the next secret, of 32 bytes....")
        .unwrap()
        .with_verifying(Key::new(1, b"handler test secret, 32 bytes!!").unwrap())
        .unwrap();
    let tracking = Tracking::new(f.sink.clone(), Arc::new(rotated));
    let req = Request::get(&before).body(()).unwrap();
    assert_eq!(
        header(&resolved(tracking.respond(&req)), "location"),
        Some(OFFER)
    );
}

#[test]
fn rewritten_links_resolve_end_to_end() {
    let f = fixture();
    let rw = Rewriter::new(f.keys.clone(), "http://127.0.0.1:7801").unwrap();
    let html = "<a href=\"https://shop.example/offer?id=1&amp;src=mail\">offer</a>";
    let table = crate::LinkTable::from_template(None, Some(html)).unwrap();
    assert_eq!(&*table.urls()[0], OFFER);
    let out = rw.rewrite_html(html, &table, MessageNo(7));
    let start = out.body.find("/c/").unwrap();
    let path = &out.body[start..out.body[start..].find('"').unwrap() + start];
    assert_eq!(header(&f.get(Method::GET, path), "location"), Some(OFFER));
}

async fn exchange(stream: &mut tokio::net::TcpStream, request: &str) -> String {
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    // Read until the headers and the declared body are in.
    loop {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(
            n > 0,
            "connection closed early: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_string)
                })
                .map_or(0, |v| v.trim().parse::<usize>().unwrap());
            let head_only = request.starts_with("HEAD ");
            if head_only || got.len() >= end + 4 + len {
                return text;
            }
        }
    }
}

#[tokio::test]
async fn serve_speaks_http1_with_keep_alive_and_stops_on_shutdown() {
    let f = fixture();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, f.tracking.clone(), 64, None, async move {
        let _ = stopped.await;
    }));

    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let click = f.click(7, 0);
    let res = exchange(
        &mut conn,
        &format!("GET {click} HTTP/1.1\r\nHost: t\r\n\r\n"),
    )
    .await;
    assert!(res.starts_with("HTTP/1.1 302 Found\r\n"), "{res}");
    assert!(
        res.to_ascii_lowercase()
            .contains(&format!("location: {OFFER}\r\n").to_ascii_lowercase())
    );
    // Same connection: keep-alive.
    let res = exchange(
        &mut conn,
        &format!("HEAD {} HTTP/1.1\r\nHost: t\r\n\r\n", f.open(7)),
    )
    .await;
    assert!(res.starts_with("HTTP/1.1 200 OK\r\n"), "{res}");
    assert!(res.contains("content-length: 43\r\n"), "{res}");
    let long = format!("GET /c/{} HTTP/1.1\r\nHost: t\r\n\r\n", "A".repeat(9000));
    let res = exchange(&mut conn, &long).await;
    assert!(res.starts_with("HTTP/1.1 404 Not Found\r\n"), "{res}");
    assert!(!res.to_ascii_lowercase().contains("location:"));
    let post = format!(
        "POST {} HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: 26\r\n\r\nList-Unsubscribe=One-Click",
        f.unsub(8)
    );
    let res = exchange(&mut conn, &post).await;
    assert!(res.starts_with("HTTP/1.1 200 OK\r\n"), "{res}");
    let res = exchange(
        &mut conn,
        &format!("GET {click} HTTP/1.1\r\nHost: t\r\n\r\n"),
    )
    .await;
    assert!(res.starts_with("HTTP/1.1 302 Found\r\n"), "{res}");
    assert_eq!(
        f.sink.kinds().iter().map(|(m, _)| *m).collect::<Vec<_>>(),
        [7, 8, 7]
    );

    stop.send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), server)
        .await
        .expect("serve stops on shutdown")
        .unwrap()
        .unwrap();
    // Idle keep-alive connection is closed, and nobody listens any more.
    let mut rest = Vec::new();
    let _ = conn.read_to_end(&mut rest).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

/// The address of `f`'s tracking served, at most `max_connections` at
/// once, until the test ends.
async fn serving(f: &Fixture, max_connections: usize) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(
        listener,
        f.tracking.clone(),
        max_connections,
        None,
        std::future::pending(),
    ));
    addr
}

#[tokio::test]
async fn serve_accepts_no_connection_beyond_its_limit_until_one_closes() {
    use std::time::Duration;

    let f = fixture();
    let addr = serving(&f, 2).await;
    let request = format!("HEAD {} HTTP/1.1\r\nHost: t\r\n\r\n", f.click(7, 0));
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        let res = exchange(&mut conn, &request).await;
        assert!(res.starts_with("HTTP/1.1 302 Found\r\n"), "{res}");
        held.push(conn);
    }
    // The kernel completes the handshake; the server does not take it up.
    let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
    let waiting = tokio::time::timeout(Duration::from_millis(300), exchange(&mut third, &request));
    assert!(waiting.await.is_err(), "a third connection was served");
    drop(held.pop());
    let res = tokio::time::timeout(Duration::from_secs(5), async {
        let mut answer = String::new();
        while !answer.contains("\r\n\r\n") {
            let mut chunk = [0u8; 512];
            let n = third.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed after {answer:?}");
            answer.push_str(std::str::from_utf8(&chunk[..n]).unwrap());
        }
        answer
    })
    .await
    .expect("served once a slot was free");
    assert!(res.starts_with("HTTP/1.1 302 Found\r\n"), "{res}");
}

#[tokio::test]
async fn serve_refuses_a_request_head_too_long_to_be_one_of_ours() {
    let f = fixture();
    let addr = serving(&f, 64).await;
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let padding = "x".repeat(64 * 1024);
    let request = format!(
        "HEAD {} HTTP/1.1\r\nHost: t\r\nX-Pad: {padding}\r\n\r\n",
        f.click(7, 0)
    );
    let res = exchange(&mut conn, &request).await;
    assert!(
        res.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{res}"
    );
}

#[tokio::test(start_paused = true)]
async fn serve_closes_a_connection_whose_request_head_never_completes() {
    let f = fixture();
    let addr = serving(&f, 64).await;

    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /c/").await.unwrap();
    // The paused clock runs ahead whenever both ends wait: the server's idle
    // window (10-20 s) ends long before this minute does.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        conn.read_to_end(&mut rest),
    )
    .await;
    assert!(closed.is_ok(), "slow client still connected after a minute");
    assert!(rest.is_empty(), "{rest:?}");
}

#[test]
fn serve_on_thread_answers_while_the_callers_runtime_is_blocked_and_stops_on_shutdown() {
    use std::io::{Read, Write};

    let f = fixture();
    let caller = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (addr, served) = caller.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = serve_on_thread(listener, f.tracking.clone(), 64, None, async move {
            let _ = stopped.await;
        })
        .unwrap();
        (addr, served)
    });

    // The caller's only runtime thread is this one, blocked in std I/O: the
    // answer can only come from the listener's own thread.
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    let click = f.click(7, 0);
    conn.write_all(format!("GET {click} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed after {got:?}");
        got.extend_from_slice(&chunk[..n]);
    }
    let res = String::from_utf8(got).unwrap();
    assert!(res.starts_with("HTTP/1.1 302 Found\r\n"), "{res}");
    assert_eq!(
        f.sink.kinds(),
        [(
            7,
            EventKind::Clicked {
                link: LinkIndex(0),
                url: Arc::from(OFFER)
            }
        )]
    );

    stop.send(()).unwrap();
    caller.block_on(served).unwrap();
    assert!(std::net::TcpStream::connect(addr).is_err());
}

fn escape_attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

proptest::proptest! {
    /// Whatever the URL in the template, the redirect goes to that URL, HTML
    /// entities decoded, and nowhere else.
    #[test]
    fn a_rewritten_link_redirects_to_its_original_url(
        tail in "[A-Za-z0-9&=?;'\"<>%#/._~-]{0,40}",
        message in proptest::prelude::any::<u64>(),
    ) {
        let url = format!("https://shop.example/{tail}");
        let html = format!("<p><a href=\"{}\">go</a></p>", escape_attr(&url));
        let table = crate::LinkTable::from_template(None, Some(&html)).unwrap();
        proptest::prop_assert_eq!(&*table.urls()[0], url.as_str());

        let keys = Arc::new(Keyring::from_secret(1, &[9; 32]).unwrap());
        let mut sink = MemSink::default();
        sink.links.insert((message, 0), table.urls()[0].clone());
        let tracking = Tracking::new(Arc::new(sink), keys.clone());
        let rw = Rewriter::new(keys, "https://t.example").unwrap();
        let out = rw.rewrite_html(&html, &table, MessageNo(message));
        proptest::prop_assert_eq!(out.tracked, 1);
        let start = out.body.find("/c/").unwrap();
        let end = start + out.body[start..].find('"').unwrap();
        let res = resolved(tracking.respond(&Request::get(&out.body[start..end]).body(()).unwrap()));
        proptest::prop_assert_eq!(res.status(), StatusCode::FOUND);
        proptest::prop_assert_eq!(header(&res, "location"), Some(url.as_str()));
    }

    /// No path other than a valid token ever gets a Location.
    #[test]
    fn arbitrary_paths_never_redirect(
        route in "[cou]",
        token in "[A-Za-z0-9_%./-]{0,64}",
    ) {
        let f = fixture();
        let path = format!("/{route}/{token}");
        for method in [Method::GET, Method::HEAD, Method::POST] {
            let res = f.get(method, &path);
            proptest::prop_assert!(res.headers().get(header::LOCATION).is_none());
            proptest::prop_assert!(matches!(res.status().as_u16(), 404 | 405));
        }
        proptest::prop_assert!(f.sink.kinds().is_empty());
    }
}
