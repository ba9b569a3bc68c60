//! What only the embedded engine promises beyond the contract: facts are
//! stored in runs, and the feed pages across runs and a reopen.

use super::*;
use crate::{
    Catalog, Intake, Ledger,
    contract::{decl, participant},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_pages_across_fact_runs_and_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let total = FACT_RUN + 904;
    {
        let store = Embedded::open(dir.path()).expect("open");
        store.put_campaign("c1", decl()).await.expect("declare");
        let batch = (0..total).map(|i| participant(&format!("p{i}"))).collect();
        store.add_participants("c1", batch, 1).await.expect("add");
        let page = store.events(FACT_RUN as u64 - 5, 10).await.expect("page");
        let cursors: Vec<u64> = page.iter().map(|e| e.cursor).collect();
        let expected: Vec<u64> = (FACT_RUN as u64 - 4..=FACT_RUN as u64 + 5).collect();
        assert_eq!(cursors, expected, "a page straddling two runs");
    }
    let store = Embedded::open(dir.path()).expect("reopen");
    assert!(
        store
            .events(total as u64, 10)
            .await
            .expect("tail")
            .is_empty()
    );
    store
        .add_participants("c1", vec![participant("late")], 2)
        .await
        .expect("add");
    let tail = store.events(total as u64 - 1, 10).await.expect("tail");
    let cursors: Vec<u64> = tail.iter().map(|e| e.cursor).collect();
    assert_eq!(
        cursors,
        vec![total as u64, total as u64 + 1],
        "cursors continue after a reopen"
    );
    assert_eq!(tail[1].customer, "late");
}
