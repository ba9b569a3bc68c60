//! Message states as the committer writes them: every commit's states go
//! into one record (a run), and once enough have gathered the runs are
//! folded and removed. A state is only read when the store opens, so it
//! need not be found by its key: a run costs a message's state a few bytes
//! appended, where a keyed write costs a skiplist insert, a journal entry
//! and its flush and compaction (BENCHMARKS.md, issue 19).
//!
//! A fold writes each message's latest state from the runs: into its
//! chunk (a campaign's 1,024 participants in one record) where many of
//! the chunk's messages changed, as sending in order does; else as a keyed
//! state (the `status` keyspace, as earlier releases wrote every state).
//! Rewriting a chunk takes in the keyed states of its range and removes
//! them, so a keyed state is always newer than its chunk.
//!
//! Keys: a run's is its number (big-endian `u64`); a chunk's is the
//! campaign's number then the chunk's (big-endian `u32`s), so a campaign's
//! chunks share the prefix of its message keys. Values of runs and chunks:
//! a format byte, then per message its key (8 bytes), status (1, its place
//! in `Status::ALL`), attempts (4), due time (8) and time (8), big-endian.
//!
//! Opening applies, in this order, the chunks, the keyed states, then the
//! runs by number: each is newer than what comes before it.

use std::collections::BTreeMap;

use domain::{MessageNo, MessageState, Status};
use fjall::OwnedWriteBatch;

use super::{Keyspaces, io};
use crate::{Result, codec};

/// The format byte of runs and chunks.
const FORMAT: u8 = 1;
/// Bytes of one message's entry.
const ENTRY: usize = 8 + 1 + 4 + 8 + 8;
/// Participants per chunk (a chunk's value: at most 29,697 bytes).
const CHUNK: u32 = 1024;
/// Messages of a chunk changed since the last fold that get the chunk
/// rewritten: a state then costs at most 8 entries written, and sending
/// in order (nearly every message of a chunk changed) writes each once.
/// Fewer are written as keyed states, one key each.
const DENSE: usize = CHUNK as usize / 8;
/// States gathered in runs before they are folded, by default: about
/// 7.6 MB of runs, replayed in well under a second when the store opens.
pub const FOLD_AFTER: usize = 1 << 18;

/// Encoded message states: a run or a chunk.
pub(super) struct Entries(Vec<u8>);

impl Entries {
    pub fn new() -> Self {
        Self(vec![FORMAT])
    }

    pub fn is_empty(&self) -> bool {
        self.0.len() == 1
    }

    pub fn push(&mut self, msg: MessageNo, state: &MessageState) {
        self.0.reserve(ENTRY);
        self.0.extend_from_slice(&codec::message_key(msg));
        self.0.push(state.status.index() as u8);
        self.0.extend_from_slice(&state.attempts.to_be_bytes());
        self.0.extend_from_slice(&state.due.to_be_bytes());
        self.0.extend_from_slice(&state.at.to_be_bytes());
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// The messages' states in a run or chunk's value, in the order written.
pub(super) fn decode(value: &[u8]) -> Result<Vec<(MessageNo, MessageState)>> {
    let corrupt = |detail: &str| codec::corrupt("message states", detail);
    let entries = match value.split_first() {
        Some((&FORMAT, entries)) => entries,
        Some((other, _)) => {
            return Err(corrupt(&format!(
                "unknown format {other} (this release reads {FORMAT})"
            )));
        }
        None => return Err(corrupt("empty record")),
    };
    if entries.len() % ENTRY != 0 {
        return Err(corrupt(&format!(
            "{} bytes, not a whole number of {ENTRY}-byte entries",
            entries.len()
        )));
    }
    entries
        .chunks_exact(ENTRY)
        .map(|e| {
            let be8 = |at: usize| u64::from_be_bytes(e[at..at + 8].try_into().expect("8 bytes"));
            let status = *Status::ALL
                .get(usize::from(e[8]))
                .ok_or_else(|| corrupt(&format!("unknown status {}", e[8])))?;
            let state = MessageState {
                status,
                attempts: u32::from_be_bytes(e[9..13].try_into().expect("4 bytes")),
                due: be8(13),
                at: be8(21),
            };
            Ok((MessageNo::from_u64(be8(0)), state))
        })
        .collect()
}

pub(super) fn run_key(run: u64) -> [u8; 8] {
    run.to_be_bytes()
}

/// The key of the chunk holding `msg`.
pub(super) fn chunk_key(msg: MessageNo) -> [u8; 8] {
    codec::message_key(MessageNo {
        campaign: msg.campaign,
        participant: msg.participant / CHUNK,
    })
}

/// The committer's account of the runs not folded yet.
#[derive(Debug, Default)]
pub(super) struct Runs {
    /// The first run not folded (all before it are removed).
    pub first: u64,
    /// The number the next run gets (counted again from 0 when a store
    /// opens with no run left).
    pub next: u64,
    /// States written in runs since the last fold.
    pub states: usize,
}

impl Runs {
    /// Hands every state in `runs` to `apply`, oldest first, and gives the
    /// account of them.
    pub fn replay(
        runs: &fjall::Keyspace,
        mut apply: impl FnMut(MessageNo, MessageState),
    ) -> Result<Self> {
        let (mut account, mut first) = (Self::default(), None);
        for kv in runs.iter() {
            let (key, value) = kv.into_inner().map_err(io)?;
            let number: [u8; 8] = key[..]
                .try_into()
                .map_err(|_| codec::corrupt("message states", "a run's key is not 8 bytes"))?;
            let number = u64::from_be_bytes(number);
            first.get_or_insert(number);
            account.next = number + 1;
            for (msg, state) in decode(&value)? {
                apply(msg, state);
                account.states += 1;
            }
        }
        account.first = first.unwrap_or(account.next);
        Ok(account)
    }

    /// A new run's number.
    pub fn take_number(&mut self) -> u64 {
        self.next += 1;
        self.next - 1
    }

    /// Folds every run into `batch`: each message's latest state goes into
    /// its chunk where at least [`DENSE`] of the chunk's messages changed,
    /// else into a keyed state; the runs are removed. States of campaigns
    /// not `live` (deleted) are dropped. Once the runs are in `batch` the
    /// account starts again; if the batch is not written, or the runs could
    /// not be read, the store stops taking writes either way.
    pub fn fold(
        &mut self,
        ks: &Keyspaces,
        live: impl Fn(u32) -> bool,
        batch: &mut OwnedWriteBatch,
    ) -> Result<()> {
        // Only what the runs say: the index also holds what is not kept
        // (a deferral, a lease).
        let mut latest = BTreeMap::new();
        for kv in ks.state_runs.range(run_key(self.first)..run_key(self.next)) {
            for (msg, state) in decode(&kv.value().map_err(io)?)? {
                latest.insert(msg, state);
            }
        }
        let latest: Vec<(MessageNo, MessageState)> = latest.into_iter().collect();
        for changed in latest.chunk_by(|(a, _), (b, _)| chunk_key(*a) == chunk_key(*b)) {
            let (first, _) = changed[0];
            if !live(first.campaign) {
                continue;
            }
            if changed.len() >= DENSE {
                rewrite_chunk(ks, chunk_key(first), changed, batch)?;
            } else {
                for (msg, state) in changed {
                    batch.insert(&ks.status, codec::message_key(*msg), codec::encode(state));
                }
            }
        }
        for run in self.first..self.next {
            batch.remove(&ks.state_runs, run_key(run));
        }
        self.first = self.next;
        self.states = 0;
        Ok(())
    }
}

/// Writes chunk `key` anew in `batch`: its states as stored, then the
/// keyed states in its range (newer than the chunk; removed, so that a
/// chunk is never older than a keyed state of its range), then `changed`.
fn rewrite_chunk(
    ks: &Keyspaces,
    key: [u8; 8],
    changed: &[(MessageNo, MessageState)],
    batch: &mut OwnedWriteBatch,
) -> Result<()> {
    let mut states = BTreeMap::new();
    if let Some(stored) = ks.state_chunks.get(key).map_err(io)? {
        states.extend(decode(&stored)?);
    }
    let chunk = MessageNo::from_u64(u64::from_be_bytes(key));
    let first = MessageNo {
        campaign: chunk.campaign,
        participant: chunk.participant * CHUNK,
    };
    let last = MessageNo {
        participant: first.participant + (CHUNK - 1),
        ..first
    };
    for kv in ks
        .status
        .range(codec::message_key(first)..=codec::message_key(last))
    {
        let (k, value) = kv.into_inner().map_err(io)?;
        states.insert(codec::parse_message_key(&k)?, codec::decode(&value)?);
        batch.remove(&ks.status, k);
    }
    states.extend(changed.iter().copied());
    let mut entries = Entries::new();
    for (msg, state) in &states {
        entries.push(*msg, state);
    }
    batch.insert(&ks.state_chunks, key, entries.into_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(status: Status, attempts: u32, due: u64, at: u64) -> MessageState {
        MessageState {
            status,
            attempts,
            due,
            at,
        }
    }

    #[test]
    fn entries_read_back_as_written_in_order() {
        let written = [
            (
                MessageNo {
                    campaign: 3,
                    participant: u32::MAX,
                },
                state(Status::Fallback, u32::MAX, u64::MAX, 1),
            ),
            (
                MessageNo {
                    campaign: 0,
                    participant: 7,
                },
                state(Status::Pending, 2, 1_700_000_000_000, 0),
            ),
        ];
        let mut entries = Entries::new();
        assert!(entries.is_empty());
        for (msg, s) in &written {
            entries.push(*msg, s);
        }
        assert!(!entries.is_empty());
        assert_eq!(decode(&entries.into_bytes()).expect("decodes"), written);
    }

    #[test]
    fn a_damaged_value_is_an_error_naming_what_is_wrong() {
        let mut entries = Entries::new();
        entries.push(
            MessageNo {
                campaign: 1,
                participant: 2,
            },
            &state(Status::Delivered, 1, 0, 9),
        );
        let good = entries.into_bytes();
        let error = |bytes: &[u8]| decode(bytes).expect_err("refused").to_string();
        assert!(error(&good[..good.len() - 1]).contains("whole number"));
        assert!(error(&[]).contains("empty"));
        let mut newer = good.clone();
        newer[0] = FORMAT + 1;
        assert!(error(&newer).contains("unknown format 2"));
        let mut status = good;
        status[1 + 8] = Status::ALL.len() as u8;
        assert!(error(&status).contains("unknown status 8"));
    }

    #[test]
    fn a_message_belongs_to_the_chunk_of_its_campaign_and_number() {
        let key = |campaign, participant| {
            chunk_key(MessageNo {
                campaign,
                participant,
            })
        };
        assert_eq!(key(5, 0), key(5, CHUNK - 1));
        assert_ne!(key(5, CHUNK - 1), key(5, CHUNK));
        assert_ne!(key(5, 0), key(6, 0));
        // A campaign's chunks share the prefix its message keys have.
        assert_eq!(key(5, 3 * CHUNK)[..4], 5u32.to_be_bytes());
    }
}
