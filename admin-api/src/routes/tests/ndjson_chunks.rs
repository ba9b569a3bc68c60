//! However the body of an NDJSON upload is cut into chunks, and whatever
//! bytes it holds, every line is either taken or rejected with its number,
//! exactly as when the body arrives in one piece.

use std::sync::Arc;

use axum::{
    body::{Body, Bytes},
    http::Request,
};
use proptest::prelude::*;

use super::{Memory, call, roomy_router};

/// One line of a body: a participant, a blank, broken JSON or raw bytes.
fn line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[a-z]{1,8}"
            .prop_map(|c| format!(r#"{{"customer":"{c}","address":"{c}@x.org"}}"#).into_bytes()),
        Just(b"   ".to_vec()),
        Just(br#"{"customer": oops"#.to_vec()),
        Just(br#"{"customer":"c","bogus":1}"#.to_vec()),
        proptest::collection::vec(any::<u8>().prop_filter("one line", |&b| b != b'\n'), 0..40),
    ]
}

/// What an upload answered and what reached the backend, by line number.
async fn upload(chunks: Vec<Vec<u8>>) -> (serde_json::Value, Vec<usize>) {
    let backend = Arc::new(Memory::default());
    let router = roomy_router(backend.clone());
    let stream = futures_util::stream::iter(
        chunks
            .into_iter()
            .map(|c| Ok::<_, std::io::Error>(Bytes::from(c))),
    );
    let req = Request::post("/v1/campaigns/c1/participants")
        .header("content-type", "application/x-ndjson")
        .body(Body::from_stream(stream))
        .expect("request");
    let (_, answer) = call(router, req).await;
    let mut taken: Vec<usize> = backend
        .added
        .lock()
        .expect("lock")
        .iter()
        .map(|(l, _)| *l)
        .collect();
    taken.sort_unstable();
    (answer, taken)
}

proptest! {
    #[test]
    fn chunking_changes_nothing(
        lines in proptest::collection::vec(line(), 0..30),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let body = lines.join(&b'\n');
        let mut at: Vec<usize> = cuts.iter().map(|i| i.index(body.len() + 1)).collect();
        at.sort_unstable();
        let mut chunks = Vec::new();
        let mut from = 0;
        for to in at.into_iter().chain([body.len()]) {
            chunks.push(body[from..to].to_vec());
            from = to;
        }
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let (whole, whole_taken) = runtime.block_on(upload(vec![body.clone()]));
        let (cut, cut_taken) = runtime.block_on(upload(chunks));
        prop_assert_eq!(&whole, &cut);
        prop_assert_eq!(&whole_taken, &cut_taken);
        let rejected: Vec<u64> = whole["rejected"]
            .as_array()
            .expect("rejected")
            .iter()
            .map(|r| r["line"].as_u64().expect("line"))
            .collect();
        prop_assert_eq!(whole["accepted"].as_u64(), Some(whole_taken.len() as u64));
        for line in &whole_taken {
            prop_assert!(!rejected.contains(&(*line as u64)));
            prop_assert!((1..=lines.len()).contains(line));
        }
        for line in &rejected {
            prop_assert!((1..=lines.len() as u64).contains(line));
        }
    }
}
