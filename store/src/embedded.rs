//! The embedded engine: fjall as the durable log, an in-memory index for
//! claims and queries. One committer thread takes every write queued since
//! its last fsync and commits them as one batch, so callers share the cost of
//! durability (group commit) and memory changes only once a write is durable.

use std::{
    collections::HashMap,
    path::Path,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU64},
    },
    thread,
};

use domain::{
    CampaignRecord, ChannelKind, Fact, MessageNo, MessageState, Participant, SuppressReason,
};
use fjall::{Database, Keyspace, KeyspaceCreateOptions};
use tokio::sync::{mpsc, oneshot};

use super::{Result, StoreError, UploadId, codec, flags::Flags, index::CampaignIndex};
pub use space::{DEFAULT_RESERVE, FreeBytes, free_bytes};
pub use states::FOLD_AFTER;

/// Why writes are refused after a commit failed: the engine poisons itself
/// on a failed write, and only a reopen clears that.
const POISONED: &str =
    "an earlier commit failed; the store takes no writes until the daemon restarts (see the log)";

/// Meta key of the next campaign number, kept once a campaign is deleted:
/// numbers are never given twice (message tokens carry them).
const NEXT_CAMPAIGN: &str = "store/next_campaign";

/// Writes taken into one commit at most.
const MAX_GROUP: usize = 512;
/// Durable commits start at most this often. An fsync costs about as much
/// CPU whatever it carries, so under load a commit that waits out the rest
/// of this gathers more writes for the same fsync; after an idle spell a
/// write is committed at once (BENCHMARKS.md, issue 19, "Commits spaced").
const COMMIT_SPACING: std::time::Duration = std::time::Duration::from_micros(800);
/// Facts stored per record: a commit's facts are written as runs of
/// consecutive cursors (key = first cursor), which halves the records an
/// upload writes compared with one record per fact.
const FACT_RUN: usize = 4096;

#[derive(Clone)]
struct Keyspaces {
    campaigns: Keyspace,
    participants: Keyspace,
    /// Message states, one key a message: what a fold left outside a
    /// chunk, and every state of earlier releases (see `states`).
    status: Keyspace,
    /// Message states as written: one run a commit, until folded.
    state_runs: Keyspace,
    /// Message states folded, 1,024 participants of a campaign a record.
    state_chunks: Keyspace,
    facts: Keyspace,
    meta: Keyspace,
    suppressions: Keyspace,
    /// Per message, the `Engagement::bit`s recorded.
    engagement: Keyspace,
    /// SMSC message ids → our messages (see `upstream`).
    upstream: Keyspace,
    /// Participants of uploads not yet published, per staged batch (see
    /// `stage`): what recovery drops.
    stages: Keyspace,
}

#[derive(Default)]
struct Index {
    /// Looked up for every message (a campaign by its number) and keyed by
    /// what the CRM names or we number: hashed with foldhash, a few times
    /// cheaper than SipHash. Addresses stay on SipHash's per-process keys.
    campaigns: foldhash::HashMap<String, CampaignIndex>,
    /// `channel\0address` (address lowercased) → why.
    suppressed: HashMap<String, SuppressReason>,
    ids: foldhash::HashMap<u32, String>,
    next_campaign: u32,
    /// Uploads staged and neither published nor abandoned.
    uploads: HashMap<UploadId, stage::Staged>,
}

impl Index {
    /// A message's state as read back, if its campaign is still there.
    fn set_state(&mut self, msg: MessageNo, s: MessageState) {
        if let Some(c) = self.by_seq(msg.campaign) {
            c.set(msg.participant, s.status, s.attempts, s.due, s.at);
        }
    }

    fn by_seq(&mut self, seq: u32) -> Option<&mut CampaignIndex> {
        let id = self.ids.get(&seq)?;
        self.campaigns.get_mut(id)
    }
}

struct Shared {
    index: Mutex<Index>,
    /// The last upload id given out.
    last_upload: AtomicU64,
    /// Highest fact cursor that is durable; the feed never reads past it.
    durable_cursor: AtomicU64,
    healthy: AtomicBool,
    space: Space,
    ks: Keyspaces,
    _owner: DirectoryOwner,
}

impl Shared {
    fn index(&self) -> MutexGuard<'_, Index> {
        // A panic while holding the lock would be a bug; keep serving reads.
        self.index
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The default store: a data directory, no external service.
pub struct Embedded {
    shared: Arc<Shared>,
    ops: mpsc::Sender<Op>,
}

/// How the embedded engine guards its disk.
pub struct Options {
    /// Free bytes below which commits are refused (`store.min_free_bytes`).
    pub min_free_bytes: u64,
    /// How free bytes are found ([`free_bytes`]; a test may simulate a disk).
    pub free_bytes: FreeBytes,
    /// Message states written in runs before they are folded ([`FOLD_AFTER`];
    /// a test may fold after every commit).
    pub fold_states_after: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            min_free_bytes: DEFAULT_RESERVE,
            free_bytes: Box::new(free_bytes),
            fold_states_after: FOLD_AFTER,
        }
    }
}

impl Options {
    /// A simulated disk whose free bytes are what `free` holds, with a
    /// reserve of 1 MiB: a test fills it (below 1 MiB) and frees it again.
    pub fn disk_of(free: Arc<AtomicU64>) -> Self {
        Self {
            min_free_bytes: 1 << 20,
            free_bytes: Box::new(move |_| Ok(free.load(std::sync::atomic::Ordering::SeqCst))),
            ..Self::default()
        }
    }
}

/// A keyspace's memtable is flushed to disk at this size. fjall's default
/// (64 MiB) held about 250 MiB of memtables in the four keyspaces an
/// upload writes; a quarter of that takes a quarter of the memory and
/// costs the ingest rate nothing measurable (BENCHMARKS.md, issue 19).
const MAX_MEMTABLE_BYTES: u64 = 16 << 20;
/// The memtable of SMSC id links is flushed at this size. An upload does
/// not write it; sending writes it twice a message (a link, then its
/// removal), and a link and its removal meet in one memtable more often,
/// leaving fewer tables to flush, compact and search. Against 16 MiB, SMS
/// took 0.9 µs less CPU a message (measured while message states were
/// keyed writes sized alike; BENCHMARKS.md, issue 19); it can hold 48 MiB
/// more while sending. fjall keeps a keyspace's options from its creation.
const SENDING_MEMTABLE_BYTES: u64 = 64 << 20;

impl Embedded {
    /// Opens (or creates) the store in `dir` with the default options.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with(dir, Options::default())
    }

    /// Opens (or creates) the store in `dir` and rebuilds the index.
    pub fn open_with(dir: &Path, options: Options) -> Result<Self> {
        let owner = DirectoryOwner::claim(dir)?;
        let db = Database::builder(dir)
            .manual_journal_persist(true)
            .open()
            .map_err(|e| StoreError::Unavailable(format!("opening {}: {e}", dir.display())))?;
        let open_sized = |name: &str, memtable_bytes: u64| {
            db.keyspace(name, || {
                KeyspaceCreateOptions::default().max_memtable_size(memtable_bytes)
            })
            .map_err(|e| StoreError::Unavailable(format!("opening keyspace {name}: {e}")))
        };
        let open = |name: &str| open_sized(name, MAX_MEMTABLE_BYTES);
        let ks = Keyspaces {
            campaigns: open("campaigns")?,
            participants: open("participants")?,
            status: open("status")?,
            state_runs: open("state_runs")?,
            state_chunks: open("state_chunks")?,
            facts: open("facts")?,
            meta: open("meta")?,
            suppressions: open("suppressions")?,
            engagement: open("engagement")?,
            upstream: open_sized("upstream", SENDING_MEMTABLE_BYTES)?,
            stages: open("stages")?,
        };
        stage::drop_unpublished(&db, &ks).map_err(|e| e.found_in(dir))?;
        let (index, last_cursor, runs) = recover(&ks).map_err(|e| e.found_in(dir))?;
        let shared = Arc::new(Shared {
            index: Mutex::new(index),
            last_upload: AtomicU64::new(0),
            durable_cursor: AtomicU64::new(last_cursor),
            healthy: AtomicBool::new(true),
            space: Space::new(dir, options.min_free_bytes, options.free_bytes),
            ks,
            _owner: owner,
        });
        let (ops, rx) = mpsc::channel(4 * MAX_GROUP);
        let committer = Committer {
            db,
            shared: shared.clone(),
            next_cursor: last_cursor + 1,
            runs,
            fold_after: options.fold_states_after,
            spare_facts: Vec::new(),
        };
        thread::Builder::new()
            .name("store-commit".into())
            .spawn(move || committer.run(rx))
            .map_err(|e| StoreError::Unavailable(format!("starting the committer: {e}")))?;
        Ok(Self { shared, ops })
    }

    /// A message's flags with their times, as stored.
    fn flags_of(&self, msg: domain::MessageNo) -> Flags {
        match self.shared.ks.engagement.get(codec::message_key(msg)) {
            Ok(Some(bytes)) => Flags::decode(&bytes),
            _ => Flags::default(),
        }
    }

    async fn submit<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T>>) -> Op) -> Result<T> {
        if !self
            .shared
            .healthy
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return Err(StoreError::Unavailable(POISONED.into()));
        }
        let (tx, rx) = oneshot::channel();
        self.ops
            .send(make(tx))
            .await
            .map_err(|_| StoreError::Unavailable("committer stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("committer stopped".into()))?
    }
}

/// Reads everything back after a restart. Leases are not persisted: every
/// message not settled is due again (at-least-once).
fn recover(ks: &Keyspaces) -> Result<(Index, u64, states::Runs)> {
    let mut index = Index::default();
    for kv in ks.campaigns.iter() {
        let value = kv.value().map_err(io)?;
        let record: CampaignRecord = codec::decode(&value)?;
        index.next_campaign = index.next_campaign.max(record.seq + 1);
        index.ids.insert(record.seq, record.id.clone());
        index
            .campaigns
            .insert(record.id.clone(), CampaignIndex::new(record));
    }
    for kv in ks.participants.iter() {
        let (key, value) = kv.into_inner().map_err(io)?;
        let msg = codec::parse_message_key(&key)?;
        let p: Participant = codec::decode(&value)?;
        if let Some(c) = index.by_seq(msg.campaign) {
            c.place(msg.participant, &p.customer, &p.address, Some(0));
        }
    }
    // Chunks, keyed states, then runs: each newer than the one before.
    for kv in ks.state_chunks.iter() {
        for (msg, s) in states::decode(&kv.value().map_err(io)?)? {
            index.set_state(msg, s);
        }
    }
    for kv in ks.status.iter() {
        let (key, value) = kv.into_inner().map_err(io)?;
        let msg = codec::parse_message_key(&key)?;
        let s: MessageState = codec::decode(&value)?;
        index.set_state(msg, s);
    }
    let runs = states::Runs::replay(&ks.state_runs, |msg, s| index.set_state(msg, s))?;
    for kv in ks.engagement.iter() {
        let (key, value) = kv.into_inner().map_err(io)?;
        let msg = codec::parse_message_key(&key)?;
        if let Some(c) = index.by_seq(msg.campaign) {
            c.set_flags(msg.participant, Flags::decode(&value).bits());
        }
    }
    for kv in ks.suppressions.iter() {
        let (key, value) = kv.into_inner().map_err(io)?;
        index.suppressed.insert(
            String::from_utf8_lossy(&key).into_owned(),
            SuppressReason::parse(&String::from_utf8_lossy(&value)),
        );
    }
    if let Some(next) = ks.meta.get(NEXT_CAMPAIGN).map_err(io)? {
        let next: [u8; 4] = next[..]
            .try_into()
            .map_err(|_| codec::corrupt("next campaign number", "not 4 bytes"))?;
        index.next_campaign = index.next_campaign.max(u32::from_be_bytes(next));
    }
    let last_cursor = match ks.facts.last_key_value() {
        Some(kv) => {
            let run: Vec<Fact> = codec::decode(&kv.value().map_err(io)?)?;
            run.last().map_or(0, |e| e.cursor)
        }
        None => 0,
    };
    Ok((index, last_cursor, runs))
}

fn io(e: fjall::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// A message's participant as recorded (its fields and its address, which
/// the index does not keep), or `None` when it has none.
fn read_participant(participants: &Keyspace, msg: MessageNo) -> Result<Option<Participant>> {
    participants
        .get(codec::message_key(msg))
        .map_err(io)?
        .map(|bytes| codec::decode(&bytes))
        .transpose()
}

/// The record of a message that must have one: a live message always has.
fn participant_record(participants: &Keyspace, msg: MessageNo) -> Result<Participant> {
    read_participant(participants, msg)?.ok_or_else(|| StoreError::Corrupt {
        what: "participant",
        detail: format!("message {msg:?} has no record"),
    })
}

/// The records of participants `numbers` (ascending) of campaign
/// `campaign`, in that order, `None` where one has none. Each run of
/// neighbours is read with one range scan, which decodes a block once where
/// a look-up per message searches for it again; numbers far apart cost no
/// scan of what lies between.
fn participant_records(
    participants: &Keyspace,
    campaign: u32,
    numbers: &[u32],
) -> Result<Vec<Option<Participant>>> {
    let key = |participant| {
        codec::message_key(MessageNo {
            campaign,
            participant,
        })
    };
    let mut records = Vec::with_capacity(numbers.len());
    for run in numbers.chunk_by(|a, b| *b == *a + 1) {
        let (first, last) = (run[0], run[run.len() - 1]);
        let mut scan = participants.range(key(first)..=key(last));
        // Every number of the range is in the run, so the next record found
        // is the wanted one's or a later one's (the wanted one has none).
        let mut next = scan
            .next()
            .map(|kv| kv.into_inner().map_err(io))
            .transpose()?;
        for &n in run {
            let found = next.take_if(|(k, _)| k.as_ref() == key(n).as_slice());
            if found.is_some() {
                next = scan
                    .next()
                    .map(|kv| kv.into_inner().map_err(io))
                    .transpose()?;
            }
            records.push(found.map(|(_, value)| codec::decode(&value)).transpose()?);
        }
    }
    Ok(records)
}

/// `channel\0address`, the address lowercased. Built for every message
/// the dispatcher checks, so without `format!` and, for the ASCII address
/// that almost every one is, without a second string.
fn suppression_key(channel: ChannelKind, address: &str) -> String {
    let channel = channel.as_str();
    let mut key = String::with_capacity(channel.len() + 1 + address.len());
    key.push_str(channel);
    key.push('\0');
    if address.is_ascii() {
        let start = key.len();
        key.push_str(address);
        key[start..].make_ascii_lowercase();
    } else {
        key.push_str(&address.to_lowercase());
    }
    key
}

mod commit;
mod leftovers;
mod listing;
mod owner;
mod roles;
mod space;
mod stage;
mod states;

use commit::{Committer, Op};
use owner::DirectoryOwner;
use space::Space;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod upgrade_tests;
