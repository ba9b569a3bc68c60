//! What matched nothing, kept for an operator to look at: returned mail
//! with no message to attach to, and SMSC receipts for ids no message has.
//! Both come from outside (the bounce domain's MX is public; an SMSC may
//! report messages another system sent on the same account), so what is
//! kept is bounded: the last `capacity` items of a kind, in a ring of store
//! meta keys `PREFIX00000`, `PREFIX00001`, ... that new items overwrite in
//! turn.

use std::sync::atomic::{AtomicU64, Ordering};

use store::{Store, StoreError};

/// One kind of item kept in a ring.
pub struct Kept {
    prefix: &'static str,
    capacity: u64,
    next: AtomicU64,
}

impl Kept {
    /// A ring of `capacity` items under meta keys starting with `prefix`.
    pub fn new(prefix: &'static str, capacity: u64) -> Self {
        Self {
            prefix,
            capacity: capacity.max(1),
            // Restarts, and the nodes sharing a store, start at different
            // places in the ring rather than all overwriting its first keys.
            next: AtomicU64::new(domain::now_ms()),
        }
    }

    /// Keeps `value` in the next place of the ring, over the item there.
    pub async fn keep(&self, store: &dyn Store, value: Vec<u8>) -> Result<(), StoreError> {
        let slot = self.next.fetch_add(1, Ordering::Relaxed) % self.capacity;
        store
            .put_meta(&format!("{}{slot:05}", self.prefix), value)
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use store::embedded::Embedded;

    use super::*;

    #[tokio::test]
    async fn only_the_last_items_of_a_kind_are_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(Embedded::open(dir.path()).expect("open"));
        let kept = Kept::new("x:unmatched:", 3);
        for i in 0..5u8 {
            kept.keep(store.as_ref(), vec![i]).await.expect("keep");
        }
        let mut values: Vec<Vec<u8>> = (store.meta_prefix("x:unmatched:").await)
            .expect("listed")
            .into_iter()
            .map(|(_, value)| value)
            .collect();
        values.sort();
        assert_eq!(values, vec![vec![2], vec![3], vec![4]]);
    }
}
