//! Participant ingest over the API (NDJSON, durable before the answer),
//! reported against the store's own batched write rate measured in the same
//! run: `cargo run --release -p bench --bin bench_ingest [PARTICIPANTS]`.

use std::{sync::Arc, time::Instant};

use anyhow::Context;
use bench::{args::positional, http::Api};
use domain::{CampaignDecl, ChannelKind, Fact, FactDetail, FactKind, FieldValue, Participant};
use store::{Catalog, Intake, codec, embedded::Embedded};
use tokio_util::sync::CancellationToken;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 4096;

fn decl() -> CampaignDecl {
    CampaignDecl::new(ChannelKind::Email, "ingest")
}

fn participant(i: usize) -> Participant {
    let mut fields = std::collections::BTreeMap::new();
    fields.insert("name".to_owned(), FieldValue::Text(format!("Customer {i}")));
    Participant {
        customer: format!("cust-{i:09}"),
        address: format!("user{i}@example.org"),
        segment: None,
        fields,
    }
}

/// fjall alone: the same records (participant + fact) in batches of BATCH,
/// each batch made durable with fdatasync, as the store writes them.
fn engine_rate(n: usize) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let db = fjall::Database::builder(dir.path())
        .manual_journal_persist(true)
        .open()?;
    let participants = db.keyspace("participants", fjall::KeyspaceCreateOptions::default)?;
    let facts = db.keyspace("facts", fjall::KeyspaceCreateOptions::default)?;
    let started = Instant::now();
    for chunk_start in (0..n).step_by(BATCH) {
        let mut batch = db.batch().durability(None);
        let mut run = Vec::with_capacity(BATCH);
        for i in chunk_start..(chunk_start + BATCH).min(n) {
            let key = (i as u64).to_be_bytes();
            let p = participant(i);
            batch.insert(&participants, key, codec::encode(&p));
            run.push(Fact {
                cursor: i as u64 + 1,
                at: 1,
                campaign: "raw".into(),
                customer: p.customer,
                kind: FactKind::Accepted,
                detail: FactDetail::default(),
            });
        }
        // A commit's facts are one record, as the store writes them.
        batch.insert(
            &facts,
            (chunk_start as u64).to_be_bytes(),
            codec::encode(&run),
        );
        batch.commit()?;
        db.persist(fjall::PersistMode::SyncData)?;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// The store alone: batches of BATCH committed with two in flight, as the API does.
async fn store_rate(n: usize) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(Embedded::open(dir.path())?);
    store.put_campaign("raw", decl()).await?;
    let started = Instant::now();
    let mut pending = tokio::task::JoinSet::new();
    for chunk_start in (0..n).step_by(BATCH) {
        let batch: Vec<Participant> = (chunk_start..(chunk_start + BATCH).min(n))
            .map(participant)
            .collect();
        let store = store.clone();
        pending.spawn(async move { store.add_participants("raw", batch, 1).await });
        while pending.len() >= 2 {
            pending.join_next().await.context("join")???;
        }
    }
    while let Some(r) = pending.join_next().await {
        r??;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// The whole API path: HTTP, NDJSON parsing, validation, durable commit.
async fn api_rate(n: usize) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let config = bench::loopback_config(dir.path());
    let shutdown = CancellationToken::new();
    let running = gateway::start(config, shutdown.clone()).await?;
    let api = Api::new(running.api);
    let decl = serde_json::json!({"channel": "email", "name": "ingest"});
    api.declare("ingest", &decl).await?;
    let mut body = String::with_capacity(n * 96);
    for i in 0..n {
        let p = participant(i);
        body.push_str(&format!(
            "{{\"customer\":\"{}\",\"address\":\"{}\",\"fields\":{{\"name\":\"Customer {i}\"}}}}\n",
            p.customer, p.address
        ));
    }
    let started = Instant::now();
    api.upload("ingest", body, n).await?;
    let elapsed = started.elapsed().as_secs_f64();
    shutdown.cancel();
    running.stopped().await;
    Ok(n as f64 / elapsed)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = positional(1, "participants", 500_000)?;
    let engine = engine_rate(n)?;
    let store = store_rate(n).await?;
    let api = api_rate(n).await?;
    println!("participants: {n}");
    println!("fjall batched durable writes: {engine:.0} participants/s (2 records each)");
    println!("store batched durable writes: {store:.0} participants/s");
    println!("API NDJSON ingest (durable):  {api:.0} participants/s");
    println!(
        "ratio API/store: {:.2}, API/fjall: {:.2}",
        api / store,
        api / engine
    );
    Ok(())
}
