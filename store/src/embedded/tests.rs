//! What only the embedded engine promises beyond the contract: facts are
//! stored in runs, and the feed pages across runs and a reopen; message
//! states are folded from runs into chunks and keys, newest last, and only
//! what is durable; a deleted campaign leaves no upstream links and no
//! states.

use super::*;
use crate::{
    Catalog, Intake, Ledger, Queue,
    contract::{decl, participant, receipt, submitted},
    upstream,
};
use domain::{CampaignState, ReceiptMatch};
use std::path::Path;

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

/// A disk below the reserve refuses every write with the cause, before the
/// engine is touched (its first failed write would poison it until a
/// restart), and writes resume by themselves once space is back; what was
/// acknowledged before is all there, nothing of the refused writes is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_until_space_is_back() {
    use std::sync::{Arc, atomic::AtomicU64};

    use crate::{LimitState, Store};

    let dir = tempfile::tempdir().expect("tempdir");
    let free = Arc::new(AtomicU64::new(1 << 30));
    let store = Embedded::open_with(dir.path(), Options::disk_of(free.clone())).expect("open");
    store.put_campaign("c1", decl()).await.expect("declare");
    store
        .add_participants("c1", vec![participant("a")], 1)
        .await
        .expect("add");
    assert_eq!(store.write_refusal(), None);

    // Below the reserve: nothing new, but what is under way is recorded.
    free.store(800 << 10, std::sync::atomic::Ordering::SeqCst);
    let refused = store
        .add_participants("c1", vec![participant("b")], 2)
        .await
        .expect_err("low on space");
    assert!(matches!(refused, StoreError::DiskFull { .. }), "{refused}");
    store
        .put_meta("counter", b"1".to_vec())
        .await
        .expect("what is under way is still recorded");
    assert!(
        store.put_meta("kept", vec![0; 100 << 10]).await.is_err(),
        "a large value is new data"
    );
    assert!(store.write_refusal().is_some());

    // Below half the reserve: nothing at all.
    free.store(1000, std::sync::atomic::Ordering::SeqCst);
    assert!(store.put_meta("counter", b"2".to_vec()).await.is_err());
    let refused = store
        .add_participants("c1", vec![participant("b")], 2)
        .await
        .expect_err("disk full");
    assert!(
        matches!(refused, StoreError::DiskFull { free: 1000, .. }),
        "{refused}"
    );
    assert!(
        refused
            .to_string()
            .starts_with("disk full: 1000 bytes free in "),
        "{refused}"
    );
    assert!(store.put_campaign("c2", decl()).await.is_err());
    let why = store.write_refusal().expect("refuses writes");
    assert!(why.contains("store.min_free_bytes"), "{why}");
    assert_eq!(
        store.campaign("c2").await.expect("read"),
        None,
        "nothing half-done"
    );

    free.store(1 << 30, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(store.write_refusal(), None);
    let fresh = store
        .add_participants("c1", vec![participant("a"), participant("b")], 3)
        .await
        .expect("writes resume");
    assert_eq!(fresh, [false, true]);
    let kinds: Vec<_> = store
        .events(0, 10)
        .await
        .expect("feed")
        .iter()
        .map(|f| (f.cursor, f.customer.clone()))
        .collect();
    assert_eq!(
        kinds,
        [(1, "a".to_owned()), (2, "b".to_owned())],
        "no cursor lost or skipped"
    );
}

#[test]
fn the_file_system_says_how_much_is_free() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(free_bytes(dir.path()).expect("statvfs") > 0);
}

#[tokio::test]
async fn records_are_read_in_order_with_a_gap_inside_a_run_and_runs_far_apart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Embedded::open(dir.path()).expect("open");
    let seq = store.put_campaign("c1", decl()).await.expect("declare").seq;
    let batch = (0..10).map(|i| participant(&format!("p{i}"))).collect();
    store.add_participants("c1", batch, 1).await.expect("add");
    let participants = &store.shared.ks.participants;
    participants
        .remove(codec::message_key(MessageNo {
            campaign: seq,
            participant: 4,
        }))
        .expect("remove");
    let read = participant_records(participants, seq, &[2, 3, 4, 5, 8, 12]).expect("read");
    let customers: Vec<Option<String>> = read.into_iter().map(|p| p.map(|p| p.customer)).collect();
    let some = |c: &str| Some(c.to_owned());
    assert_eq!(
        customers,
        [some("p2"), some("p3"), None, some("p5"), some("p8"), None]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_campaign_leaves_no_upstream_links_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Embedded::open(dir.path()).expect("open");
    let old = claimed(&store, "old", &["a", "b", "c"]).await;
    let kept = claimed(&store, "kept", &["d", "e", "f"]).await;
    // One text of two parts, one of which was delivered: a progress key.
    store
        .record(vec![
            submitted(old[0], 0, &["o0"]),
            submitted(old[1], 0, &["o1"]),
            submitted(old[2], 0, &["o2a", "o2b"]),
            submitted(kept[0], 0, &["k0"]),
            submitted(kept[1], 0, &["k1"]),
        ])
        .await
        .expect("record");
    store
        .receipts(vec![receipt(0, "o2a", Some(true))])
        .await
        .expect("receipts");
    // The SMSC gave a used id to a new text: that link stays.
    store
        .record(vec![submitted(kept[2], 0, &["o0"])])
        .await
        .expect("record");
    let links = |store: &Embedded| store.shared.ks.upstream.iter().count();
    assert_eq!(
        links(&store),
        6,
        "o0 (now kept's), o1, o2b, progress, k0, k1"
    );

    store
        .set_state("old", CampaignState::Cancelled)
        .await
        .expect("cancel");
    store.delete_campaign("old").await.expect("delete");
    assert_eq!(links(&store), 3, "k0, k1 and o0");
    // The outcome of a send still in flight when its campaign went.
    store
        .record(vec![submitted(old[1], 0, &["late"])])
        .await
        .expect("record");
    assert_eq!(
        links(&store),
        3,
        "a late outcome of a deleted campaign links nothing"
    );
    let matched = store
        .receipts(
            ["k0", "k1", "o0"]
                .map(|id| receipt(0, id, Some(true)))
                .to_vec(),
        )
        .await
        .expect("receipts");
    assert_eq!(matched, vec![ReceiptMatch::Matched; 3]);

    // A link found for a gone campaign whose id an SMSC gave to a live
    // message since is checked again when removed, and stays.
    store
        .add_participants("kept", vec![participant("g")], 1)
        .await
        .expect("add");
    let live = store.claim(kept[0].campaign, 10_000, 1, 60_000).await;
    let live = live.expect("claim")[0].msg;
    store
        .record(vec![submitted(live, 0, &["again"])])
        .await
        .expect("record");
    let keys = vec![upstream::id_key(0, "again")];
    let removed = store
        .submit(|reply| Op::ForgetLinks { keys, reply })
        .await
        .expect("forget");
    assert_eq!((removed, links(&store)), (0, 1));
}

/// Opens the store in `dir`, folding message states once `fold_after` are
/// in runs.
fn open_folding(dir: &Path, fold_after: usize) -> Embedded {
    let options = Options {
        fold_states_after: fold_after,
        ..Options::default()
    };
    Embedded::open_with(dir, options).expect("open")
}

/// Declares running campaign `id` with `people` and claims them all.
async fn claimed(store: &Embedded, id: &str, people: &[impl AsRef<str>]) -> Vec<MessageNo> {
    let seq = store.put_campaign(id, decl()).await.expect("declare").seq;
    let added = people.iter().map(|p| participant(p.as_ref())).collect();
    store.add_participants(id, added, 1).await.expect("add");
    store
        .set_state(id, CampaignState::Running)
        .await
        .expect("run");
    let claims = store.claim(seq, 10_000, people.len(), 60_000).await;
    claims.expect("claim").iter().map(|c| c.msg).collect()
}

fn people(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

fn count(keyspace: &Keyspace) -> usize {
    keyspace.iter().count()
}

/// Keyed states, chunks and runs in the store.
fn stored_states(store: &Embedded) -> (usize, usize, usize) {
    let ks = &store.shared.ks;
    (
        count(&ks.status),
        count(&ks.state_chunks),
        count(&ks.state_runs),
    )
}

async fn by_status(store: &Embedded, campaign: &str, statuses: [&str; 3]) -> [u64; 3] {
    let counts = store.counts(campaign).await.expect("counts");
    statuses.map(|s| counts.by_status.get(s).copied().unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn states_folded_as_keys_are_overtaken_by_later_runs_at_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open_folding(dir.path(), 2);
        let msgs = claimed(&store, "c1", &people("p", 3)).await;
        // Two states of one chunk: too few for the chunk, so keyed.
        store
            .record(vec![
                submitted(msgs[0], 0, &["s0"]),
                submitted(msgs[1], 0, &["s1"]),
            ])
            .await
            .expect("record");
        assert_eq!(stored_states(&store), (2, 0, 0));
        // One state: left in a run, newer than its keyed one.
        store
            .receipts(vec![receipt(0, "s0", Some(true))])
            .await
            .expect("receipt");
        assert_eq!(stored_states(&store), (2, 0, 1));
    }
    let store = open_folding(dir.path(), 2);
    let states = ["delivered", "submitted", "pending"];
    assert_eq!(by_status(&store, "c1", states).await, [1, 1, 1]);
    // The run replayed counts towards the next fold.
    store
        .receipts(vec![receipt(0, "s1", Some(true))])
        .await
        .expect("receipt");
    assert_eq!(stored_states(&store), (2, 0, 0));
    drop(store);
    let store = open_folding(dir.path(), 2);
    assert_eq!(by_status(&store, "c1", states).await, [2, 0, 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_rewritten_keeps_what_it_held_and_took_in_and_later_keyed_states_win() {
    let dir = tempfile::tempdir().expect("tempdir");
    let states = ["delivered", "submitted", "pending"];
    {
        let store = open_folding(dir.path(), 1);
        let msgs = claimed(&store, "c1", &people("p", 200)).await;
        store
            .record(vec![submitted(msgs[5], 0, &["early"])])
            .await
            .expect("record");
        assert_eq!(stored_states(&store), (1, 0, 0), "one state: keyed");
        // Enough of the chunk changed: it is written, with the keyed state.
        let many = (10..150).map(|i| submitted(msgs[i], 0, &[&format!("id{i}")]));
        store.record(many.collect()).await.expect("record");
        assert_eq!(stored_states(&store), (0, 1, 0), "one chunk, nothing keyed");
    }
    let store = open_folding(dir.path(), 1);
    assert_eq!(by_status(&store, "c1", states).await, [0, 141, 59]);
    // Written again: what it held (the early one, 140-149) stays.
    let receipts = (10..140).map(|i| receipt(0, &format!("id{i}"), Some(true)));
    store.receipts(receipts.collect()).await.expect("receipts");
    assert_eq!(stored_states(&store), (0, 1, 0));
    drop(store);
    let store = open_folding(dir.path(), 1);
    assert_eq!(by_status(&store, "c1", states).await, [130, 11, 59]);
    // A later state of a message in the chunk: keyed, newer than it.
    store
        .receipts(vec![receipt(0, "early", Some(true))])
        .await
        .expect("receipt");
    assert_eq!(stored_states(&store), (1, 1, 0));
    drop(store);
    let store = open_folding(dir.path(), 1);
    assert_eq!(by_status(&store, "c1", states).await, [131, 10, 59]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferral_is_not_kept_through_a_fold_and_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open_folding(dir.path(), 1);
        let msgs = claimed(&store, "c1", &people("p", 2)).await;
        // Deciding again after a restart is what a deferral promises.
        let lease = crate::Lease {
            msg: msgs[0],
            until: 10_000 + 60_000,
        };
        store.defer(lease, 1 << 40).await.expect("defer");
        store
            .record(vec![submitted(msgs[1], 0, &["s1"])])
            .await
            .expect("record");
    }
    let store = open_folding(dir.path(), 1);
    let seq = store.campaign("c1").await.expect("read").expect("c1").seq;
    let claims = store.claim(seq, 10_000, 10, 60_000).await.expect("claim");
    assert_eq!(claims.len(), 1, "the deferred message is due again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_campaign_leaves_no_states_behind_nor_gets_them_back_from_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open_folding(dir.path(), 4);
    let old = claimed(&store, "old", &people("o", 140)).await;
    let kept = claimed(&store, "kept", &people("k", 2)).await;
    let submit = |range: std::ops::Range<usize>| {
        range
            .map(|i| submitted(old[i], 0, &[&format!("o{i}")]))
            .collect::<Vec<_>>()
    };
    // Old's states in a chunk, as keys, then in a run.
    store.record(submit(0..130)).await.expect("record");
    store.record(submit(130..134)).await.expect("record");
    store.record(submit(134..136)).await.expect("record");
    assert_eq!(stored_states(&store), (4, 1, 1));
    store
        .set_state("old", CampaignState::Cancelled)
        .await
        .expect("cancel");
    store.delete_campaign("old").await.expect("delete");
    assert_eq!(stored_states(&store), (0, 0, 1), "only the run is left");
    // Kept's two states start a fold: old's states in the run are dropped.
    store
        .record(vec![
            submitted(kept[0], 0, &["k0"]),
            submitted(kept[1], 0, &["k1"]),
        ])
        .await
        .expect("record");
    assert_eq!(stored_states(&store), (2, 0, 0), "kept's two, keyed");
    let kept_seq = kept[0].campaign.to_be_bytes();
    let ks = store.shared.ks.clone();
    assert!(
        ks.status
            .iter()
            .all(|kv| kv.key().expect("key")[..4] == kept_seq),
        "no state of old's"
    );
    drop((ks, store));
    let store = open_folding(dir.path(), 4);
    let states = ["submitted", "pending", "delivered"];
    assert_eq!(by_status(&store, "kept", states).await, [2, 0, 0]);
}

#[test]
fn a_suppression_key_lowercases_ascii_and_unicode_addresses_alike() {
    assert_eq!(
        suppression_key(domain::ChannelKind::Email, "Ann.Lee@Example.ORG"),
        "email\0ann.lee@example.org"
    );
    assert_eq!(
        suppression_key(domain::ChannelKind::Email, "ÄNNE@Bücher.DE"),
        "email\0änne@bücher.de"
    );
    assert_eq!(
        suppression_key(domain::ChannelKind::Sms, "+4915550001"),
        "sms\0+4915550001"
    );
}
