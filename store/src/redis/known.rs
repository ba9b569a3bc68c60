//! What this node last read or wrote of the messages it works on: a
//! message's state and record as its claim answered them and as this
//! node's writes left them, the links of the SMSC ids it recorded, and the
//! campaigns' records. A write planned on them checks them unchanged like
//! any value it reads (`txn`), so one that another node changed meanwhile
//! only makes the write plan again, from Redis (everything known is
//! forgotten on a conflict). It spares the outcome of a send and its
//! receipt the requests that read what the claim and the send's record
//! already knew.

use std::{
    hash::Hash,
    sync::{Arc, Mutex},
};

use domain::{MessageNo, Participant};

use super::plan::Written;

/// Entries per generation: the newer is kept whole when it is full and a
/// new one starts, so that what was claimed or sent last stays known.
const GENERATION: usize = 50_000;

/// A message's state as stored (checked unchanged by a write), and its
/// participant record, decoded once: it is written once and never changed.
#[derive(Debug, Clone)]
pub(super) struct KnownMessage {
    pub state: Vec<u8>,
    pub participant: Arc<Participant>,
}

/// Looked up per message: hashed fast (the keys are ours).
type Map<K, V> = foldhash::HashMap<K, V>;

/// The most recent entries: two generations of at most `GENERATION`.
struct Recent<K, V> {
    newer: Map<K, V>,
    older: Map<K, V>,
}

impl<K, V> Default for Recent<K, V> {
    fn default() -> Self {
        Self {
            newer: Map::default(),
            older: Map::default(),
        }
    }
}

impl<K: Hash + Eq, V: Clone> Recent<K, V> {
    fn get(&self, key: &K) -> Option<V> {
        self.newer.get(key).or_else(|| self.older.get(key)).cloned()
    }

    fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        match self.newer.get_mut(key) {
            Some(v) => Some(v),
            None => self.older.get_mut(key),
        }
    }

    fn insert(&mut self, key: K, value: V) {
        if self.newer.len() >= GENERATION {
            self.older = std::mem::take(&mut self.newer);
        }
        self.older.remove(&key);
        self.newer.insert(key, value);
    }

    fn remove(&mut self, key: &K) {
        self.newer.remove(key);
        self.older.remove(key);
    }
}

#[derive(Default)]
pub(super) struct Known {
    inner: Mutex<State>,
}

#[derive(Default)]
struct State {
    messages: Recent<MessageNo, KnownMessage>,
    /// SMSC id key → link, as `upstream` holds them.
    links: Recent<Vec<u8>, Vec<u8>>,
    campaigns: Map<u32, Vec<u8>>,
}

impl Known {
    pub fn message(&self, msg: MessageNo) -> Option<KnownMessage> {
        self.lock().messages.get(&msg)
    }

    /// A message as a claim read it.
    pub fn claimed(&self, msg: MessageNo, known: KnownMessage) {
        self.lock().messages.insert(msg, known);
    }

    pub fn link(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.lock().links.get(&key.to_vec())
    }

    /// What a write of this node stored: states kept for messages known,
    /// links and campaign records kept (a link removed is forgotten).
    pub fn written(&self, written: Written) {
        let mut s = self.lock();
        s.campaigns.extend(written.campaigns);
        for (msg, state) in written.states {
            if let Some(k) = s.messages.get_mut(&msg) {
                k.state = state;
            }
        }
        for (key, link) in written.links {
            match link {
                Some(link) => s.links.insert(key, link),
                None => s.links.remove(&key),
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
        *self.lock() = State::default();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
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
            participant: Arc::new(Participant {
                customer: "c".into(),
                address: "+4915100000001".into(),
                segment: None,
                fields: Default::default(),
            }),
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
        let sent = |n: u32, link: Option<&[u8]>| Written {
            states: vec![(msg(n), b"submitted".to_vec())],
            links: vec![(b"id".to_vec(), link.map(<[u8]>::to_vec))],
            campaigns: Vec::new(),
        };
        k.written(sent(2 * GENERATION as u32, Some(b"link")));
        let last = k.message(msg(2 * GENERATION as u32)).expect("known");
        assert_eq!(last.state, b"submitted");
        assert_eq!(k.link(b"id").as_deref(), Some(&b"link"[..]));
        k.written(sent(0, None));
        assert!(k.message(msg(0)).is_none(), "a write adds no message");
        assert!(k.link(b"id").is_none(), "a link removed is forgotten");
        k.forget();
        assert!(k.message(msg(2 * GENERATION as u32)).is_none());
    }
}
