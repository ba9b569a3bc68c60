//! What this node last read or wrote of the messages it works on: a
//! message's state and record as its claim answered them, its state as
//! this node's writes left it, and the campaigns' records. A write planned
//! on them checks them unchanged like any value it reads (`txn`), so one
//! that another node changed meanwhile only makes the write plan again,
//! from Redis (the caller forgets everything known on a conflict). It
//! spares the outcome of a send and its receipt a request to read what the
//! claim already read.

use std::{collections::HashMap, sync::Mutex};

use domain::MessageNo;

use super::plan::Written;

/// Messages per generation: the newer is kept whole when it is full and a
/// new one starts, so that what was claimed last stays known.
const GENERATION: usize = 50_000;

/// A message's state and participant record, as stored.
#[derive(Debug, Clone)]
pub(super) struct KnownMessage {
    pub state: Vec<u8>,
    pub record: Vec<u8>,
}

#[derive(Default)]
pub(super) struct Known {
    inner: Mutex<Generations>,
}

#[derive(Default)]
struct Generations {
    newer: HashMap<MessageNo, KnownMessage>,
    older: HashMap<MessageNo, KnownMessage>,
    campaigns: HashMap<u32, Vec<u8>>,
}

impl Known {
    pub fn message(&self, msg: MessageNo) -> Option<KnownMessage> {
        let g = self.lock();
        g.newer.get(&msg).or_else(|| g.older.get(&msg)).cloned()
    }

    /// A message as a claim read it.
    pub fn claimed(&self, msg: MessageNo, known: KnownMessage) {
        let mut g = self.lock();
        if g.newer.len() >= GENERATION {
            g.older = std::mem::take(&mut g.newer);
        }
        g.older.remove(&msg);
        g.newer.insert(msg, known);
    }

    /// What a write of this node stored: states kept for messages known,
    /// campaign records kept.
    pub fn written(&self, written: Written) {
        let mut g = self.lock();
        g.campaigns.extend(written.campaigns);
        for (msg, state) in written.states {
            if let Some(k) = g.newer.get_mut(&msg) {
                k.state = state;
            } else if let Some(k) = g.older.get_mut(&msg) {
                k.state = state;
            }
        }
    }

    pub fn campaign(&self, seq: u32) -> Option<Vec<u8>> {
        self.lock().campaigns.get(&seq).cloned()
    }

    pub fn campaign_read(&self, seq: u32, record: &[u8]) {
        self.lock().campaigns.insert(seq, record.to_vec());
    }

    /// Forgets everything: a write met a change made elsewhere.
    pub fn forget(&self) {
        *self.lock() = Generations::default();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(n: u32) -> MessageNo {
        MessageNo {
            campaign: 1,
            participant: n,
        }
    }

    fn known(state: &[u8]) -> KnownMessage {
        KnownMessage {
            state: state.to_vec(),
            record: b"r".to_vec(),
        }
    }

    #[test]
    fn the_last_claimed_stay_known_and_writes_update_them() {
        let k = Known::default();
        for n in 0..(2 * GENERATION as u32 + 10) {
            k.claimed(msg(n), known(b"pending"));
        }
        assert!(k.message(msg(0)).is_none(), "the oldest generation went");
        assert!(k.message(msg(GENERATION as u32 + 5)).is_some());
        let states = |n: u32| Written {
            states: vec![(msg(n), b"submitted".to_vec())],
            campaigns: Vec::new(),
        };
        k.written(states(2 * GENERATION as u32));
        let last = k.message(msg(2 * GENERATION as u32)).expect("known");
        assert_eq!(last.state, b"submitted");
        k.written(states(0));
        assert!(k.message(msg(0)).is_none(), "a write adds nothing new");
        k.forget();
        assert!(k.message(msg(2 * GENERATION as u32)).is_none());
    }
}
