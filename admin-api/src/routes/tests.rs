//! Route behaviour against an in-memory backend: status codes and bodies for
//! good and bad input.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use tower::ServiceExt;

use super::*;
use crate::{
    auth::Role,
    backend::{AudienceRows, BackendError, BackendResult, UploadId},
    types::v1::*,
};

/// Uploads as the store takes them: staged per upload, added when
/// published, dropped when abandoned.
#[derive(Default)]
struct Memory {
    added: Mutex<Vec<(usize, ParticipantIn)>>,
    staged: Mutex<std::collections::HashMap<UploadId, Vec<(usize, ParticipantIn)>>>,
    uploads: std::sync::atomic::AtomicU64,
    abandoned: Mutex<Vec<UploadId>>,
    /// Blacklist listings asked: channel, filter.
    blacklist_filters: Mutex<Vec<(String, BlacklistFilter)>>,
    /// Requests counted: route, method, status.
    requests: Mutex<Vec<(String, String, u16)>>,
    /// How long staging a batch takes (a slow store).
    stage_millis: std::sync::atomic::AtomicU64,
    /// Participants being staged now, and the most at once.
    staging: std::sync::atomic::AtomicUsize,
    most_staging: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl Backend for Memory {
    async fn declare(&self, id: &str, decl: CampaignDecl) -> BackendResult<CampaignView> {
        Ok(CampaignView {
            id: id.into(),
            state: CampaignState::Declared,
            declaration: decl,
            participants: 0,
            uploading: 0,
            counts: Default::default(),
            progress: Default::default(),
        })
    }
    fn new_upload(&self) -> UploadId {
        self.uploads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }
    async fn add_participants(
        &self,
        _campaign: &str,
        upload: UploadId,
        batch: Vec<(usize, ParticipantIn)>,
    ) -> BackendResult<UploadResult> {
        use std::sync::atomic::Ordering::SeqCst;
        let n = batch.len() as u64;
        let now = self.staging.fetch_add(batch.len(), SeqCst) + batch.len();
        self.most_staging.fetch_max(now, SeqCst);
        let stall = self.stage_millis.load(SeqCst);
        if stall > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(stall)).await;
        }
        self.staging.fetch_sub(batch.len(), SeqCst);
        let mut staged = self.staged.lock().expect("lock");
        staged.entry(upload).or_default().extend(batch);
        Ok(UploadResult {
            accepted: n,
            ..Default::default()
        })
    }
    async fn publish(&self, upload: UploadId) -> BackendResult<u64> {
        let staged = self
            .staged
            .lock()
            .expect("lock")
            .remove(&upload)
            .unwrap_or_default();
        let n = staged.len() as u64;
        self.added.lock().expect("lock").extend(staged);
        Ok(n)
    }
    async fn abandon(&self, upload: UploadId) {
        self.staged.lock().expect("lock").remove(&upload);
        self.abandoned.lock().expect("lock").push(upload);
    }
    async fn add_from(
        &self,
        _campaign: &str,
        source: AudienceSource,
    ) -> BackendResult<UploadResult> {
        Err(BackendError::NotFound(format!(
            "no campaign `{}`",
            source.campaign
        )))
    }
    async fn control(&self, _c: &str, _a: Control) -> BackendResult<CampaignView> {
        Err(BackendError::Conflict("no participants".into()))
    }
    async fn campaigns(&self, filter: CampaignFilter) -> BackendResult<CampaignPage> {
        // The filter as the route parsed it, in the one campaign's name.
        let name = format!("{filter:?}");
        let view = CampaignView {
            id: "c".into(),
            state: CampaignState::Declared,
            declaration: serde_json::from_value(
                serde_json::json!({"channel": "email", "name": name}),
            )
            .expect("declaration"),
            participants: 0,
            uploading: 0,
            counts: Default::default(),
            progress: Default::default(),
        };
        Ok(CampaignPage {
            campaigns: vec![view],
            next: None,
        })
    }
    async fn campaign(&self, c: &str) -> BackendResult<CampaignView> {
        Err(BackendError::NotFound(format!("no campaign {c}")))
    }
    async fn delete_campaign(&self, c: &str) -> BackendResult<()> {
        match c {
            "ended" => Ok(()),
            "running" => Err(BackendError::Conflict(
                "campaign `running` is running".into(),
            )),
            _ => Err(BackendError::NotFound(format!("no campaign {c}"))),
        }
    }
    /// `down` fails at once; `pages` and `cut` have a row a page, and
    /// `cut` fails at its third page.
    async fn audience_page(&self, c: &str, o: &str, from: u32) -> BackendResult<AudienceRows> {
        match (c, from) {
            ("down", _) | ("cut", 2..) => {
                Err(BackendError::Unavailable("store cannot commit".into()))
            }
            ("pages" | "cut", _) => Ok(AudienceRows {
                rows: vec![AudienceRow {
                    customer: format!("c{from}"),
                    address: format!("c{from}@example.org"),
                    outcome: o.into(),
                    at: None,
                }],
                next: (from < 2).then_some(from + 1),
            }),
            _ => Ok(AudienceRows::default()),
        }
    }
    async fn events(&self, after: u64, _limit: usize) -> BackendResult<EventPage> {
        Ok(EventPage {
            events: vec![],
            next: after,
        })
    }
    async fn import_bounce(&self, raw: &[u8]) -> BackendResult<BounceImport> {
        Ok(BounceImport {
            is_bounce: !raw.is_empty(),
            ..Default::default()
        })
    }
    async fn unmatched(
        &self,
        _kind: UnmatchedKind,
        _before: Option<u64>,
        _limit: usize,
    ) -> BackendResult<UnmatchedPage> {
        Ok(UnmatchedPage::default())
    }
    async fn put_limits(
        &self,
        _c: &str,
        limits: serde_json::Value,
    ) -> BackendResult<serde_json::Value> {
        Ok(limits)
    }
    async fn get_limits(&self, c: &str) -> BackendResult<serde_json::Value> {
        Err(BackendError::NotFound(format!("no limits for {c}")))
    }
    async fn blacklist_add(&self, _c: &str, entries: Vec<String>) -> BackendResult<usize> {
        Ok(entries.len())
    }
    async fn blacklist_remove(&self, _c: &str, _e: &str) -> BackendResult<bool> {
        Ok(false)
    }
    async fn blacklist_get(&self, _c: &str, _e: &str) -> BackendResult<Option<String>> {
        Ok(None)
    }
    async fn preview(&self, id: &str, p: ParticipantIn) -> BackendResult<MessagePreview> {
        Ok(MessagePreview {
            channel: ChannelKind::Sms,
            from: id.into(),
            to: p.address,
            subject: None,
            text: format!("Hi {}", p.customer),
            html: None,
            encoding: Some("gsm7".into()),
            parts: Some(1),
        })
    }
    async fn send_test(&self, id: &str, p: ParticipantIn) -> BackendResult<TestSend> {
        Ok(TestSend {
            channel: ChannelKind::Email,
            to: p.address,
            outcome: "accepted".into(),
            reply: format!("250 queued for {id}"),
        })
    }
    async fn blacklist_list(
        &self,
        channel: &str,
        filter: BlacklistFilter,
    ) -> BackendResult<BlacklistPage> {
        self.blacklist_filters
            .lock()
            .expect("lock")
            .push((channel.to_owned(), filter));
        Ok(BlacklistPage {
            entries: vec![BlacklistEntry {
                entry: "a@x.org".into(),
                why: "hard_bounce".into(),
            }],
            next: Some("a@x.org".into()),
        })
    }
    async fn plan(&self, _c: &str, _ids: Option<Vec<String>>) -> BackendResult<serde_json::Value> {
        Ok(serde_json::json!({"hours": [], "campaigns": {}}))
    }
    async fn stored_plan(&self, c: &str) -> BackendResult<serde_json::Value> {
        Err(BackendError::NotFound(format!("no plan for {c}")))
    }
    fn metrics(&self, exposition: crate::Exposition) -> String {
        format!("{exposition:?}\n")
    }
    fn count_request(&self, route: &str, method: &str, status: u16) {
        let mut counted = self.requests.lock().expect("lock");
        counted.push((route.to_owned(), method.to_owned(), status));
    }
    fn channels(&self) -> ChannelsView {
        ChannelsView {
            channels: vec![ChannelHealth {
                channel: ChannelKind::Sms,
                connectors: vec![ConnectorHealth {
                    kind: "smsc".into(),
                    name: "main".into(),
                    address: "10.0.0.6:2775".into(),
                    state: ConnectorState::Failing,
                    last_error: Some("connection refused".into()),
                    last_error_at: Some("2026-12-04T10:00:00Z".into()),
                    binds_up: Some(0),
                    binds: Some(2),
                }],
            }],
        }
    }
    fn switch_connector(
        &self,
        channel: &str,
        name: &str,
        on: bool,
    ) -> BackendResult<ConnectorHealth> {
        if name != "main" {
            return Err(BackendError::NotFound(format!(
                "no {channel} connector named `{name}`"
            )));
        }
        Ok(ConnectorHealth {
            kind: "smsc".into(),
            name: name.into(),
            address: "10.0.0.6:2775".into(),
            state: if on {
                ConnectorState::Connecting
            } else {
                ConnectorState::Stopped
            },
            last_error: None,
            last_error_at: None,
            binds_up: Some(0),
            binds: Some(1),
        })
    }
    fn not_ready(&self) -> Vec<String> {
        vec!["SMSC main (10.0.0.6:2775): not bound yet".into()]
    }
}

/// A router over `backend` taking bodies of 8 MiB, for uploads larger than
/// [`app`]'s.
fn roomy_router(backend: Arc<Memory>) -> Router {
    router(
        backend,
        ApiConfig {
            tokens: Tokens::default(),
            max_body_bytes: 8 << 20,
            max_body_memory: 8 << 20,
        },
    )
}

fn app(tokens: Tokens) -> (Arc<Memory>, Router) {
    let backend = Arc::new(Memory::default());
    let router = router(
        backend.clone(),
        ApiConfig {
            tokens,
            max_body_bytes: 1024,
            max_body_memory: 1 << 20,
        },
    );
    (backend, router)
}

async fn call(router: Router, req: Request<Body>) -> (StatusCode, serde_json::Value) {
    let res = router.oneshot(req).await.expect("infallible");
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

fn post(uri: &str, content_type: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header("content-type", content_type)
        .body(Body::from(body.to_owned()))
        .expect("request")
}

#[tokio::test]
async fn ndjson_upload_rejects_bad_lines_and_keeps_the_rest() {
    let (backend, router) = app(Tokens::default());
    let body = "{\"customer\":\"a\",\"address\":\"a@x.org\"}\n\n{\"address\":\"b@x.org\"}\n{\"customer\":\"c\",\"address\":\"c@x.org\",\"bogus\":1}\n{\"customer\":\"d\",\"address\":\"d@x.org\"}";
    let (status, json) = call(
        router,
        post(
            "/v1/campaigns/c1/participants",
            "application/x-ndjson",
            body,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["accepted"], 2);
    let rejected = json["rejected"].as_array().expect("array");
    assert_eq!(rejected.len(), 2);
    assert_eq!(rejected[0]["line"], 3);
    assert!(
        rejected[0]["error"]
            .as_str()
            .expect("str")
            .contains("customer")
    );
    assert_eq!(rejected[1]["line"], 4);
    assert!(
        rejected[1]["error"]
            .as_str()
            .expect("str")
            .contains("bogus")
    );
    let lines: Vec<usize> = backend
        .added
        .lock()
        .expect("lock")
        .iter()
        .map(|(l, _)| *l)
        .collect();
    assert_eq!(lines, vec![1, 5]);
}

/// A broken line rejects only itself (issue 20): the lines after it are
/// read and taken, and the answer lists it with its number.
#[tokio::test]
async fn malformed_ndjson_lines_are_rejected_and_the_rest_taken() {
    let (backend, router) = app(Tokens::default());
    // Line 6: serde's derive would read a participant from an array of its
    // fields; the contract takes objects only.
    let body = "{\"customer\":\"a\",\"address\":\"a@x.org\"}\n{\"customer\": oops}\n[1,\n{\"customer\":\"d\",\"address\":\"d@x.org\"}\n{\"customer\":\"e\"\n[\"f\",\"f@x.org\"]";
    let (status, json) = call(
        router,
        post(
            "/v1/campaigns/c1/participants",
            "application/x-ndjson",
            body,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["accepted"], 2, "{json}");
    let rejected: Vec<(u64, &str)> = json["rejected"]
        .as_array()
        .expect("array")
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().expect("line"),
                r["error"].as_str().expect("error"),
            )
        })
        .collect();
    assert_eq!(
        rejected.iter().map(|r| r.0).collect::<Vec<_>>(),
        [2, 3, 5, 6],
        "{json}"
    );
    assert_eq!(rejected[0].1, "malformed JSON at column 14: expected value");
    let not_an_object = "expected a JSON object (a participant), not another JSON value";
    assert_eq!(rejected[1].1, not_an_object);
    assert!(
        rejected[2].1.starts_with("malformed JSON at column 15: "),
        "{json}"
    );
    assert_eq!(rejected[3].1, not_an_object);
    let lines: Vec<usize> = backend
        .added
        .lock()
        .expect("lock")
        .iter()
        .map(|(l, _)| *l)
        .collect();
    assert_eq!(lines, vec![1, 4]);
}

/// A line longer than the limit is rejected without being held, whether it
/// ends in the middle of the body or at its end, and values over their
/// limits are refused with a short echo.
#[tokio::test]
async fn overlong_lines_and_values_are_rejected_with_short_reasons() {
    let backend = Arc::new(Memory::default());
    let router = roomy_router(backend.clone());
    let huge = "x".repeat(crate::ingest::MAX_LINE_BYTES + 10);
    let long_customer = "c".repeat(100_000);
    let body = format!(
        "{huge}\n{{\"customer\":\"a\",\"address\":\"a@x.org\"}}\n{{\"customer\":\"{long_customer}\",\"address\":\"b@x.org\"}}\n{{\"customer\":7,\"address\":\"{long_customer}\"}}\n{huge}"
    );
    let (status, json) = call(
        router,
        post(
            "/v1/campaigns/c1/participants",
            "application/x-ndjson",
            &body,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["accepted"], 1);
    let rejected = json["rejected"].as_array().expect("array");
    let errors: Vec<(u64, &str)> = rejected
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().expect("line"),
                r["error"].as_str().expect("error"),
            )
        })
        .collect();
    assert_eq!(errors[0], (1, "line longer than 1048576 bytes"));
    assert_eq!(errors[1], (3, "customer: 100000 characters, at most 128"));
    assert_eq!(errors[2].0, 4);
    assert_eq!(errors[3], (5, "line longer than 1048576 bytes"));
    assert!(errors.iter().all(|e| e.1.len() < 200), "{errors:?}");
}

/// Refusals come out of line order (the store's, per batch, after later
/// lines' parse errors): the first lines are the ones listed.
#[test]
fn the_first_refused_lines_are_listed_whatever_order_they_come_in() {
    let mut result = UploadResult::default();
    let max = UploadResult::MAX_LISTED;
    for line in (1..=3 * max).rev() {
        result.reject(Rejected::new(line, "bad"));
    }
    result.list_first();
    let lines: Vec<usize> = result.rejected.iter().map(|r| r.line).collect();
    assert_eq!(lines, (1..=max).collect::<Vec<_>>());
    assert_eq!(result.rejected_total, 3 * max as u64);
}

/// Refused lines are listed up to a bound and all counted, so an upload of
/// garbage cannot make the answer grow with it; a line over the limit cut
/// across chunks is refused like one in a single chunk.
#[tokio::test]
async fn refusals_are_listed_up_to_a_bound_and_all_counted() {
    let router = roomy_router(Arc::new(Memory::default()));
    let garbage = "x\n".repeat(UploadResult::MAX_LISTED + 50);
    let (status, json) = call(
        router.clone(),
        post(
            "/v1/campaigns/c1/participants",
            "application/x-ndjson",
            &garbage,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        json["rejected"].as_array().map(Vec::len),
        Some(UploadResult::MAX_LISTED)
    );
    assert_eq!(json["rejected_total"], UploadResult::MAX_LISTED + 50);

    let huge = "y".repeat(crate::ingest::MAX_LINE_BYTES + 10);
    let (head, tail) = huge.split_at(crate::ingest::MAX_LINE_BYTES / 2);
    let chunks = [
        format!("{{\"customer\":\"a\",\"address\":\"a@x.org\"}}\n{head}"),
        tail.to_owned(),
        "\n{\"customer\":\"b\",\"address\":\"b@x.org\"}\n".to_owned(),
    ];
    let stream = futures_util::stream::iter(
        chunks.map(|c| Ok::<_, std::io::Error>(axum::body::Bytes::from(c))),
    );
    let req = Request::post("/v1/campaigns/c1/participants")
        .header("content-type", "application/x-ndjson")
        .body(Body::from_stream(stream))
        .expect("request");
    let (status, json) = call(router, req).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["accepted"], 2, "{json}");
    assert_eq!(
        json["rejected"],
        serde_json::json!([{"line": 2, "error": "line longer than 1048576 bytes"}])
    );
}

/// An upload whose body breaks off, or outgrows the limit, after whole
/// batches were staged publishes none of it: 400 or 413, nothing added, the
/// upload abandoned before the answer.
#[tokio::test]
async fn an_upload_cut_off_adds_nothing() {
    let line = |i: usize| format!("{{\"customer\":\"c{i}\",\"address\":\"c{i}@x.org\"}}\n");
    let batches: String = (0..10_000).map(line).collect();
    for (limit, broken, status) in [
        (usize::MAX, true, StatusCode::BAD_REQUEST),
        (batches.len(), false, StatusCode::PAYLOAD_TOO_LARGE),
    ] {
        let backend = Arc::new(Memory::default());
        let router = router(
            backend.clone(),
            ApiConfig {
                tokens: Tokens::default(),
                max_body_bytes: limit,
                max_body_memory: 1 << 30,
            },
        );
        let mut chunks: Vec<Result<String, std::io::Error>> = vec![Ok(batches.clone())];
        chunks.push(if broken {
            Err(std::io::Error::other("connection reset"))
        } else {
            Ok(line(10_000))
        });
        let body = Body::from_stream(futures_util::stream::iter(chunks));
        let req = Request::post("/v1/campaigns/c1/participants")
            .header("content-type", "application/x-ndjson")
            .body(body)
            .expect("request");
        let (got, json) = call(router, req).await;
        assert_eq!(got, status, "{json}");
        assert!(json.get("accepted").is_none(), "{json}");
        assert_eq!(
            *backend.abandoned.lock().expect("lock"),
            vec![0],
            "abandoned before the error is answered, so a retry finds its customers free"
        );
        assert!(backend.added.lock().expect("lock").is_empty());
        assert!(backend.staged.lock().expect("lock").is_empty());
    }
}

#[tokio::test]
async fn oversize_bodies_get_413() {
    let (_, router) = app(Tokens::default());
    let line = "{\"customer\":\"a\",\"address\":\"a@x.org\"}\n".repeat(100);
    let (status, _) = call(
        router.clone(),
        post(
            "/v1/campaigns/c1/participants",
            "application/x-ndjson",
            &line,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let array = format!(
        "[{}]",
        vec!["{\"customer\":\"a\",\"address\":\"a@x.org\"}"; 100].join(",")
    );
    let (status, _) = call(
        router,
        post("/v1/campaigns/c1/participants", "application/json", &array),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

/// The configured limit is the limit on every route, above axum's 2 MB
/// default too: a million-entry blacklist is about 15 MB of JSON.
#[tokio::test]
async fn bodies_up_to_the_configured_limit_are_taken_on_every_route() {
    let limit = 8 << 20;
    let router = router(
        Arc::new(Memory::default()),
        ApiConfig {
            tokens: Tokens::default(),
            max_body_bytes: limit,
            max_body_memory: limit,
        },
    );
    let entries: Vec<String> = (0..300_000).map(|i| format!("customer-{i}")).collect();
    let body = serde_json::to_string(&entries).expect("json");
    assert!(body.len() > 2 << 20 && body.len() < limit);
    let put = |body: String| {
        Request::put("/v1/blacklist/sms")
            .header("content-type", "application/json")
            .body(Body::from(body))
            .expect("request")
    };
    let (status, answer) = call(router.clone(), put(body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["added"], 300_000);
    let (status, _) = call(router, put(" ".repeat(limit + 1))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn json_array_rejects_elements_by_position() {
    let (_, router) = app(Tokens::default());
    let body = r#"[{"customer":"a","address":"a@x.org"},{"customer":"b","address":7}]"#;
    let (status, json) = call(
        router,
        post("/v1/campaigns/c1/participants", "application/json", body),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["accepted"], 1);
    assert_eq!(json["rejected"][0]["line"], 2);
}

#[tokio::test]
async fn declaring_with_unknown_fields_is_422_and_bad_json_400() {
    let (_, router) = app(Tokens::default());
    let req = |body: &str| {
        Request::put("/v1/campaigns/c1")
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .expect("request")
    };
    for (body, problem) in [
        (r#"{"channel":"email","name":"x","colour":"red"}"#, "colour"),
        // No weekdays is not every day.
        (
            r#"{"channel":"email","name":"x","window":{"weekdays":[]}}"#,
            "weekdays: not empty if given",
        ),
    ] {
        let (status, json) = call(router.clone(), req(body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            json["problems"][0].as_str().expect("str").contains(problem),
            "{json}"
        );
    }
    let (status, _) = call(router.clone(), req(r#"{"channel":"#)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = call(router, req(r#"{"channel":"email","name":"x"}"#)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn tokens_and_roles() {
    let (_, router) = app(Tokens::new(vec![
        (Role::Crm, "c".into()),
        (Role::Admin, "a".into()),
    ]));
    let get = |token: Option<&str>| {
        let mut b = Request::get("/v1/events");
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        b.body(Body::empty()).expect("request")
    };
    assert_eq!(
        call(router.clone(), get(None)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(router.clone(), get(Some("nope"))).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(call(router.clone(), get(Some("c"))).await.0, StatusCode::OK);
    assert_eq!(call(router.clone(), get(Some("a"))).await.0, StatusCode::OK);
    let health = Request::get("/healthz")
        .body(Body::empty())
        .expect("request");
    assert_eq!(
        router.oneshot(health).await.expect("ok").status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn backend_conflicts_and_bad_ids_map_to_status() {
    let (_, router) = app(Tokens::default());
    let start = Request::post("/v1/campaigns/c1/start")
        .body(Body::empty())
        .expect("request");
    assert_eq!(call(router.clone(), start).await.0, StatusCode::CONFLICT);
    let bad = Request::get("/v1/campaigns/bad%20id")
        .body(Body::empty())
        .expect("request");
    assert_eq!(call(router, bad).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_ended_campaign_is_deleted_with_204_and_no_body() {
    let (_, router) = app(Tokens::new(vec![(Role::Crm, "c".into())]));
    let delete = |id: &str, token: &str| {
        Request::delete(format!("/v1/campaigns/{id}"))
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .expect("request")
    };
    let res = router
        .clone()
        .oneshot(delete("ended", "c"))
        .await
        .expect("infallible");
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .expect("body");
    assert!(body.is_empty(), "204 has no body: {body:?}");
    let (status, problem) = call(router.clone(), delete("running", "c")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(problem["detail"], "campaign `running` is running");
    assert_eq!(
        call(router.clone(), delete("ghost", "c")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(router, delete("ended", "wrong")).await.0,
        StatusCode::UNAUTHORIZED
    );
}

/// serde's derive reads a struct from an array of its fields too; the
/// contract takes objects only, at any depth.
#[tokio::test]
async fn arrays_are_no_objects() {
    let (_, router) = app(Tokens::default());
    let put = |uri: &str, body: &str| {
        Request::put(uri)
            .header("content-type", "application/json")
            .body(Body::from(body.to_owned()))
            .expect("request")
    };
    for (request, what) in [
        (
            put("/v1/campaigns/arr", r#"["email","Array-declared"]"#),
            "a declaration",
        ),
        (
            put(
                "/v1/campaigns/arr",
                r#"{"channel":"email","name":"n","window":[null,null,"UTC"]}"#,
            ),
            "a window in a declaration",
        ),
        (
            post(
                "/v1/campaigns/arr/preview",
                "application/json",
                r#"["c1","a@x.org"]"#,
            ),
            "a participant to preview",
        ),
        (
            post("/v1/channels/email/plan", "application/json", "[null]"),
            "a plan's body",
        ),
        (
            post(
                "/v1/campaigns/arr/participants",
                "application/json",
                r#"[["c1","ann@example.org"]]"#,
            ),
            "an uploaded participant",
        ),
    ] {
        let (status, json) = call(router.clone(), request).await;
        let text = json.to_string();
        assert!(
            text.contains("expected a JSON object"),
            "{what}: {status} {text}"
        );
    }
}

#[tokio::test]
async fn a_store_that_cannot_commit_answers_503() {
    let (_, router) = app(Tokens::default());
    let req = Request::get("/v1/campaigns/down/participants?outcome=pending")
        .body(Body::empty())
        .expect("request");
    let (status, json) = call(router.clone(), req).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json["error"], "store cannot commit");
    let bad = Request::get("/v1/campaigns/c1/participants?outcome=sleepy")
        .body(Body::empty())
        .expect("request");
    assert_eq!(call(router, bad).await.0, StatusCode::UNPROCESSABLE_ENTITY);
}

/// An audience of several pages comes whole, a line a row; one whose store
/// fails after the first page is cut short, never ended as if complete.
#[tokio::test]
async fn an_audience_is_streamed_page_by_page_and_cut_short_when_the_store_fails() {
    let (_, router) = app(Tokens::default());
    let get = |campaign: &str| {
        Request::get(format!(
            "/v1/campaigns/{campaign}/participants?outcome=pending"
        ))
        .body(Body::empty())
        .expect("request")
    };
    let whole = router.clone().oneshot(get("pages")).await.expect("answer");
    assert_eq!(whole.status(), StatusCode::OK);
    let body = axum::body::to_bytes(whole.into_body(), usize::MAX)
        .await
        .expect("the whole body");
    let customers: Vec<String> = body
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            let row: AudienceRow = serde_json::from_slice(line).expect("a row a line");
            row.customer
        })
        .collect();
    assert_eq!(customers, ["c0", "c1", "c2"]);

    let cut = router.oneshot(get("cut")).await.expect("answer");
    assert_eq!(cut.status(), StatusCode::OK, "the first page was read");
    assert!(
        axum::body::to_bytes(cut.into_body(), usize::MAX)
            .await
            .is_err(),
        "the body ends in an error, not as a complete answer"
    );
}

/// The batches of NDJSON uploads in flight hold at most their half of the
/// memory budget (and a batch of large participants is cut short of 4,096
/// by its bytes): a client sending faster than the store stages waits for
/// room, every participant is still taken, and a body read whole meanwhile
/// is not turned away for the batches waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_of_large_participants_holds_no_more_than_the_budget_in_flight() {
    use std::sync::atomic::Ordering::SeqCst;
    const N: usize = 6_000;
    let backend = Arc::new(Memory::default());
    backend.stage_millis.store(50, SeqCst);
    // The batches' half (4 MiB) holds one batch at a time.
    let router = router(
        backend.clone(),
        ApiConfig {
            tokens: Tokens::default(),
            max_body_bytes: 64 << 20,
            max_body_memory: 8 << 20,
        },
    );
    let field = "x".repeat(4_000);
    let line = |i: usize| {
        format!(
            "{{\"customer\":\"c{i}\",\"address\":\"c{i}@example.org\",\"fields\":{{\"f\":\"{field}\"}}}}\n"
        )
    };
    let line_bytes = line(0).len();
    let body: String = (0..N).map(line).collect();
    let req = Request::post("/v1/campaigns/c1/participants")
        .header("content-type", "application/x-ndjson")
        .body(Body::from(body))
        .expect("request");
    let upload = tokio::spawn(call(router.clone(), req));
    while backend.most_staging.load(SeqCst) == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    let declare = Request::put("/v1/campaigns/c2")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"channel":"email","name":"n"}"#))
        .expect("request");
    let (status, json) = call(router, declare).await;
    assert_eq!(status, StatusCode::OK, "while batches wait: {json}");

    let (status, json) = upload.await.expect("joined");
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["accepted"], N, "{json}");
    let most = backend.most_staging.load(SeqCst) * line_bytes;
    assert!(
        most <= crate::ingest::BATCH_BYTES + line_bytes,
        "{most} bytes of participants staged at once"
    );
}

mod auth_first;
mod body_budget;
mod console;
mod ndjson_chunks;
mod openapi;
mod problems;

/// Prometheus asks for OpenMetrics and gets it; a scraper that does not
/// ask (curl, promtool) gets the classic text format.
#[tokio::test]
async fn metrics_are_written_as_the_scraper_asks() {
    let (_, router) = app(Tokens::default());
    let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    for (accept, content_type, body) in [
        (
            Some(prometheus),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            "OpenMetrics\n",
        ),
        (
            None,
            "text/plain; version=0.0.4; charset=utf-8",
            "Classic\n",
        ),
        (
            Some("text/plain"),
            "text/plain; version=0.0.4; charset=utf-8",
            "Classic\n",
        ),
    ] {
        let mut req = Request::get("/metrics");
        if let Some(accept) = accept {
            req = req.header("accept", accept);
        }
        let res = router
            .clone()
            .oneshot(req.body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-type"], content_type);
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .expect("body");
        assert_eq!(bytes, body);
    }
}

/// Each request is counted by its route's template, never its path (no id
/// becomes a label), with its method and status; a path that matches no
/// route counts as `unmatched`.
#[tokio::test]
async fn requests_are_counted_by_route_template() {
    let (backend, router) = app(Tokens::default());
    for (method, uri) in [
        ("GET", "/v1/campaigns/c1"),
        ("GET", "/v1/campaigns/c2"),
        ("GET", "/nowhere/c3"),
        ("DELETE", "/healthz"),
    ] {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .expect("request");
        router.clone().oneshot(req).await.expect("infallible");
    }
    let counted = backend.requests.lock().expect("lock").clone();
    let expected = [
        ("/v1/campaigns/{id}", "GET", 404),
        ("/v1/campaigns/{id}", "GET", 404),
        ("unmatched", "GET", 404),
        ("/healthz", "DELETE", 405),
    ];
    let counted: Vec<(&str, &str, u16)> = counted
        .iter()
        .map(|(r, m, s)| (r.as_str(), m.as_str(), *s))
        .collect();
    assert_eq!(counted, expected);
}

/// `GET /v1/campaigns` hands the backend its filter, with 100 a page by
/// default; a bad state, channel or limit is refused naming the parameter.
#[tokio::test]
async fn campaigns_are_listed_by_the_filter_asked() {
    let (_, router) = app(Tokens::default());
    let get = |uri: &str| Request::get(uri).body(Body::empty()).expect("request");
    let (status, json) = call(router.clone(), get("/v1/campaigns")).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(
        json["campaigns"][0]["name"],
        "CampaignFilter { state: None, channel: None, before: None, limit: 100 }"
    );
    let (status, json) = call(
        router.clone(),
        get("/v1/campaigns?state=running&channel=sms&before=7&limit=2"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(
        json["campaigns"][0]["name"],
        "CampaignFilter { state: Some(Running), channel: Some(Sms), before: Some(7), limit: 2 }"
    );
    for (query, status, field) in [
        ("limit=0", StatusCode::UNPROCESSABLE_ENTITY, "limit"),
        ("limit=1001", StatusCode::UNPROCESSABLE_ENTITY, "limit"),
        ("state=asleep", StatusCode::BAD_REQUEST, "state"),
        ("channel=fax", StatusCode::BAD_REQUEST, "channel"),
        ("sort=name", StatusCode::BAD_REQUEST, "sort"),
    ] {
        let (got, json) = call(router.clone(), get(&format!("/v1/campaigns?{query}"))).await;
        assert_eq!(got, status, "{query}: {json}");
        assert_eq!(json["field"], field, "{query}: {json}");
    }
}

#[tokio::test]
async fn channels_show_each_connectors_health_to_the_administrator() {
    let (_, router) = app(Tokens::new(vec![
        (Role::Crm, "c".into()),
        (Role::Admin, "a".into()),
    ]));
    let get = |token: &str| {
        Request::get("/v1/channels")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .expect("request")
    };
    assert_eq!(
        call(router.clone(), get("c")).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, json) = call(router, get("a")).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(
        json,
        serde_json::json!({"channels": [{"channel": "sms", "connectors": [{
            "kind": "smsc", "name": "main", "address": "10.0.0.6:2775",
            "state": "failing", "last_error": "connection refused",
            "last_error_at": "2026-12-04T10:00:00Z", "binds_up": 0, "binds": 2
        }]}]})
    );
}

#[tokio::test]
async fn the_blacklist_is_listed_by_the_filter_asked_and_bad_parameters_are_named() {
    let (backend, router) = app(Tokens::default());
    let get = |uri: &str| Request::get(uri).body(Body::empty()).expect("request");
    let (status, json) = call(
        router.clone(),
        get("/v1/blacklist/email?q=X.ORG&why=hard_bounce&after=a%40w.org&limit=5"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(
        json,
        serde_json::json!({"entries": [{"entry": "a@x.org", "why": "hard_bounce"}], "next": "a@x.org"})
    );
    let (_, json) = call(router.clone(), get("/v1/blacklist/sms")).await;
    assert_eq!(json["entries"][0]["entry"], "a@x.org");
    assert_eq!(
        *backend.blacklist_filters.lock().expect("lock"),
        [
            (
                "email".to_owned(),
                BlacklistFilter {
                    contains: Some("X.ORG".into()),
                    why: Some("hard_bounce".into()),
                    after: Some("a@w.org".into()),
                    limit: 5,
                }
            ),
            (
                "sms".to_owned(),
                BlacklistFilter {
                    limit: 100,
                    ..Default::default()
                }
            ),
        ]
    );
    for (uri, status, field) in [
        (
            "/v1/blacklist/email?why=spam",
            StatusCode::BAD_REQUEST,
            "why",
        ),
        (
            "/v1/blacklist/email?limit=0",
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit",
        ),
        (
            "/v1/blacklist/email?limit=1001",
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit",
        ),
        (
            "/v1/blacklist/email?sort=asc",
            StatusCode::BAD_REQUEST,
            "sort",
        ),
    ] {
        let (got, json) = call(router.clone(), get(uri)).await;
        assert_eq!(
            (got, json["field"].as_str()),
            (status, Some(field)),
            "{uri}: {json}"
        );
    }
    let long = format!("/v1/blacklist/email?q={}", "x".repeat(400));
    let (got, json) = call(router.clone(), get(&long)).await;
    assert_eq!(
        (got, json["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("q")),
        "{json}"
    );
    let (got, _) = call(router, get("/v1/blacklist/fax")).await;
    assert_eq!(got, StatusCode::NOT_FOUND);
    assert_eq!(
        backend.blacklist_filters.lock().expect("lock").len(),
        2,
        "bad requests reach no backend"
    );
}

#[tokio::test]
async fn a_preview_takes_one_participant_as_uploaded() {
    let (_, router) = app(Tokens::default());
    let preview = |body: &str| post("/v1/campaigns/c1/preview", "application/json", body);
    let (status, json) = call(
        router.clone(),
        preview(r#"{"customer":"ann","address":"+4915100000001"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(
        json,
        serde_json::json!({"channel": "sms", "from": "c1", "to": "+4915100000001",
            "text": "Hi ann", "encoding": "gsm7", "parts": 1})
    );
    let (status, json) = call(router.clone(), preview(r#"{"address":"+4915100000001"}"#)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{json}");
    let (status, _) = call(router.clone(), preview("{")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let long = format!(
        r#"{{"customer":"{}","address":"a@x.org"}}"#,
        "c".repeat(300)
    );
    let (status, json) = call(router, preview(&long)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{json}");
}

#[tokio::test]
async fn an_administrator_stops_and_starts_a_named_connector() {
    let (_, router) = app(Tokens::new(vec![
        (Role::Crm, "c".into()),
        (Role::Admin, "a".into()),
    ]));
    let switch = |path: &str, token: &str| {
        Request::post(path)
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .expect("request")
    };
    let stop = "/v1/channels/sms/connectors/main/stop";
    assert_eq!(
        call(router.clone(), switch(stop, "c")).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, json) = call(router.clone(), switch(stop, "a")).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["state"], "stopped");
    let (status, json) = call(
        router.clone(),
        switch("/v1/channels/sms/connectors/main/start", "a"),
    )
    .await;
    assert_eq!(
        (status, &json["state"]),
        (StatusCode::OK, &serde_json::json!("connecting"))
    );
    for (path, status) in [
        (
            "/v1/channels/sms/connectors/other/stop",
            StatusCode::NOT_FOUND,
        ),
        (
            "/v1/channels/sms/connectors/main/restart",
            StatusCode::NOT_FOUND,
        ),
        (
            "/v1/channels/fax/connectors/main/stop",
            StatusCode::NOT_FOUND,
        ),
    ] {
        assert_eq!(
            call(router.clone(), switch(path, "a")).await.0,
            status,
            "{path}"
        );
    }
}

/// A file saved by a Windows tool starts with a byte order mark: its
/// first participant is read all the same, in either form.
#[tokio::test]
async fn an_upload_starting_with_a_byte_order_mark_is_read_whole() {
    let lines = "\u{FEFF}{\"customer\":\"a\",\"address\":\"a@x.org\"}\n{\"customer\":\"b\",\"address\":\"b@x.org\"}\n";
    let array = "\u{FEFF}[{\"customer\":\"a\",\"address\":\"a@x.org\"},{\"customer\":\"b\",\"address\":\"b@x.org\"}]";
    for (content_type, body) in [("application/x-ndjson", lines), ("application/json", array)] {
        let (_, router) = app(Tokens::default());
        let uri = "/v1/campaigns/c1/participants?dry_run=true";
        let (status, json) = call(router, post(uri, content_type, body)).await;
        assert_eq!(status, StatusCode::OK, "{json}");
        assert_eq!(json["accepted"], 2, "{content_type}: {json}");
        assert_eq!(json["rejected"], serde_json::json!([]), "{json}");
    }
}

#[tokio::test]
async fn a_dry_run_answers_as_an_upload_would_and_adds_nothing() {
    let body = "{\"customer\":\"a\",\"address\":\"a@x.org\"}\n{\"address\":\"b@x.org\"}\n{\"customer\":\"c\",\"address\":\"c@x.org\"}\n";
    for (uri, content_type, body) in [
        (
            "/v1/campaigns/c1/participants?dry_run=true",
            "application/x-ndjson",
            body.to_owned(),
        ),
        (
            "/v1/campaigns/c1/participants?dry_run=true",
            "application/json",
            format!("[{}]", body.trim_end().replace('\n', ",")),
        ),
    ] {
        let (backend, router) = app(Tokens::default());
        let (status, json) = call(router, post(uri, content_type, &body)).await;
        assert_eq!(status, StatusCode::OK, "{json}");
        assert_eq!(json["accepted"], 2, "{json}");
        assert_eq!(json["rejected"][0]["line"], 2, "{json}");
        assert_eq!(
            *backend.abandoned.lock().expect("lock"),
            vec![0],
            "dropped, not published"
        );
        assert!(
            backend.added.lock().expect("lock").is_empty(),
            "{content_type}"
        );
    }
    let (_, router) = app(Tokens::default());
    let (status, json) = call(
        router,
        post(
            "/v1/campaigns/c1/participants?dry_run=maybe",
            "application/x-ndjson",
            body,
        ),
    )
    .await;
    assert_eq!(
        (status, json["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("dry_run")),
        "{json}"
    );
}

#[tokio::test]
async fn a_test_send_takes_one_participant_as_uploaded() {
    let (_, router) = app(Tokens::default());
    let test = |body: &str| post("/v1/campaigns/c1/test", "application/json", body);
    let (status, json) = call(
        router.clone(),
        test(r#"{"customer":"ann","address":"ann@x.org"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(
        json,
        serde_json::json!({"channel": "email", "to": "ann@x.org", "outcome": "accepted", "reply": "250 queued for c1"})
    );
    let (status, _) = call(router.clone(), test(r#"{"address":"ann@x.org"}"#)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = call(router, test("[")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
