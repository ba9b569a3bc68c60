//! What each client address holds of a shared limit (sessions, messages
//! being received), so that one sender cannot take all of it: the bounce
//! listener is a public port.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

#[derive(Debug, Clone)]
pub struct PerPeer {
    held: Arc<Mutex<HashMap<IpAddr, usize>>>,
    /// The most one address may hold at once.
    max: usize,
}

/// One unit held by `peer`, given back when dropped.
#[derive(Debug)]
pub struct Held {
    of: PerPeer,
    peer: IpAddr,
}

impl PerPeer {
    pub fn new(max: usize) -> Self {
        Self {
            held: Arc::default(),
            max,
        }
    }

    fn held(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One more for `peer`, unless it holds its most already.
    pub fn take(&self, peer: IpAddr) -> Option<Held> {
        let mut held = self.held();
        let count = held.entry(peer).or_default();
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Held {
            of: self.clone(),
            peer,
        })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = self.of.held();
        if let Some(count) = held.get_mut(&self.peer) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_its_share_and_gets_it_back() {
        let limit = PerPeer::new(2);
        let (one, other): (IpAddr, IpAddr) = ([192, 0, 2, 1].into(), [192, 0, 2, 2].into());
        let first = limit.take(one).expect("first");
        let _second = limit.take(one).expect("second");
        assert!(limit.take(one).is_none(), "a third for the same address");
        assert!(limit.take(other).is_some(), "another address has its own");
        drop(first);
        assert!(limit.take(one).is_some(), "given back");
        assert!(
            limit.held().get(&other).is_none(),
            "nothing kept for an address holding none"
        );
    }
}
