//! What matched nothing, kept for an operator to look at: returned mail
//! with no message to attach to, and SMSC receipts for ids no message has.
//! Both come from outside (the bounce domain's MX is public; an SMSC may
//! report messages another system sent on the same account), so what is
//! kept is bounded: the last `capacity` items of a kind, in a ring of store
//! meta keys `kept:KIND:00000`, `kept:KIND:00001`, ... that new items
//! overwrite in turn, each value its number (the items kept before it) on
//! a line of its own, then the item. The ring's position (`kept:KIND`,
//! items kept so far) is in the store too, counted up atomically, so
//! restarts and the nodes sharing a store go on from the same place.

use std::sync::Mutex;

use store::{Store, StoreError};

/// One kind of item kept in a ring.
pub struct Kept {
    /// `kept:KIND`: the count of items kept so far.
    position: String,
    capacity: u64,
    /// That count as this ring last wrote it (`None`: not known yet), so
    /// that keeping an item costs no read while no one else keeps any.
    counted: Mutex<Option<u64>>,
}

impl Kept {
    /// A ring of the last `capacity` items of `kind`.
    pub fn new(kind: &str, capacity: u64) -> Self {
        Self {
            position: format!("kept:{kind}"),
            capacity: capacity.max(1),
            counted: Mutex::new(None),
        }
    }

    /// How many items the ring holds at most.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Keeps `value` in the next place of the ring, over the oldest item.
    pub async fn keep(&self, store: &dyn Store, value: Vec<u8>) -> Result<(), StoreError> {
        self.keep_all(store, vec![value]).await
    }

    /// Keeps `values` in the next places of the ring, in their order, with
    /// one count for all and their places written together (of more than
    /// the ring holds, the last ones).
    pub async fn keep_all(
        &self,
        store: &dyn Store,
        values: Vec<Vec<u8>>,
    ) -> Result<(), StoreError> {
        if values.is_empty() {
            return Ok(());
        }
        let count = values.len() as u64;
        let mut counted = *self.lock();
        let kept = loop {
            let kept = match counted {
                Some(n) => n,
                None => self.stored_count(store).await?,
            };
            // The count is only ever written from 1 up, in decimal.
            let expected = (kept > 0).then(|| kept.to_string());
            let next = (kept + count).to_string().into_bytes();
            if store
                .put_meta_if(&self.position, expected.as_deref().map(str::as_bytes), next)
                .await?
            {
                *self.lock() = Some(kept + count);
                break kept;
            }
            // Another writer (a node, a restart's ring) counted meanwhile.
            counted = None;
        };
        let skipped = count.saturating_sub(self.capacity);
        let writes = (kept..)
            .zip(values)
            .skip(skipped as usize)
            .map(|(n, value)| {
                let mut numbered = format!("{n}\n").into_bytes();
                numbered.extend_from_slice(&value);
                async move { store.put_meta(&self.place(n), numbered).await }
            });
        futures_util::future::try_join_all(writes).await.map(drop)
    }

    /// How many items were kept in all, and the newest `limit` of those
    /// still held that are numbered below `before` (all, without it),
    /// newest first, each with its number (the items kept before it). A
    /// place whose item is not the one its number says (being written
    /// over, or its write failed) is left out.
    pub async fn newest(
        &self,
        store: &dyn Store,
        before: Option<u64>,
        limit: usize,
    ) -> Result<(u64, Vec<(u64, Vec<u8>)>), StoreError> {
        let kept = self.stored_count(store).await?;
        let top = before.map_or(kept, |b| b.min(kept));
        let oldest = kept.saturating_sub(self.capacity);
        let mut items = Vec::new();
        // Down to the oldest held until the page is full: a page of
        // places left out still leads on to the items below them.
        for n in (oldest..top).rev() {
            if items.len() == limit {
                break;
            }
            let value = store.meta(&self.place(n)).await?;
            if let Some(item) = value.as_deref().and_then(|v| numbered(v, n)) {
                items.push((n, item.to_vec()));
            }
        }
        Ok((kept, items))
    }

    /// The count of items kept so far, as the store has it.
    async fn stored_count(&self, store: &dyn Store) -> Result<u64, StoreError> {
        Ok((store.meta(&self.position).await?)
            .and_then(|b| std::str::from_utf8(&b).ok()?.parse().ok())
            .unwrap_or(0))
    }

    /// The key of the ring's place for the item numbered `n`.
    fn place(&self, n: u64) -> String {
        format!("{}:{:05}", self.position, n % self.capacity)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<u64>> {
        // A panic while holding the lock leaves a count that is only a hint.
        self.counted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The item of a stored `value` if it is the one numbered `n`.
fn numbered(value: &[u8], n: u64) -> Option<&[u8]> {
    let line = value.iter().position(|&b| b == b'\n')?;
    let number: u64 = std::str::from_utf8(&value[..line]).ok()?.parse().ok()?;
    (number == n).then(|| &value[line + 1..])
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use store::{LimitState, embedded::Embedded};

    use super::*;

    /// The values kept of `kind`, in any order, as stored.
    async fn kept(store: &dyn Store, kind: &str) -> Vec<Vec<u8>> {
        let mut values: Vec<Vec<u8>> = (store.meta_prefix(&format!("kept:{kind}:")).await)
            .expect("listed")
            .into_iter()
            .map(|(_, value)| value)
            .collect();
        values.sort();
        values
    }

    #[tokio::test]
    async fn only_the_last_items_of_a_kind_are_kept_across_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(Embedded::open(dir.path()).expect("open"));
        let ring = Kept::new("x", 3);
        for i in 0..5u8 {
            ring.keep(store.as_ref(), vec![b'a' + i])
                .await
                .expect("keep");
        }
        assert_eq!(kept(store.as_ref(), "x").await, [b"2\nc", b"3\nd", b"4\ne"]);
        // A new ring over the same store (a restart, another node) goes on
        // over the oldest item.
        let again = Kept::new("x", 3);
        again
            .keep(store.as_ref(), b"f".to_vec())
            .await
            .expect("keep");
        assert_eq!(kept(store.as_ref(), "x").await, [b"3\nd", b"4\ne", b"5\nf"]);
        // The first ring's count is stale now: it reads the store's.
        ring.keep(store.as_ref(), b"g".to_vec())
            .await
            .expect("keep");
        assert_eq!(kept(store.as_ref(), "x").await, [b"4\ne", b"5\nf", b"6\ng"]);
        assert!(kept(store.as_ref(), "y").await.is_empty());
    }

    #[tokio::test]
    async fn items_kept_together_take_the_next_places_in_their_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Embedded::open(dir.path()).expect("open");
        let ring = Kept::new("x", 3);
        ring.keep(&store, b"a".to_vec()).await.expect("keep");
        let values = |bytes: &[u8]| bytes.iter().map(|b| vec![*b]).collect::<Vec<_>>();
        ring.keep_all(&store, values(b"bc")).await.expect("keep");
        assert_eq!(kept(&store, "x").await, [b"0\na", b"1\nb", b"2\nc"]);
        // More than the ring holds: the last ones, all counted.
        ring.keep_all(&store, values(b"defgh")).await.expect("keep");
        assert_eq!(kept(&store, "x").await, [b"5\nf", b"6\ng", b"7\nh"]);
        let (count, _) = ring.newest(&store, None, 1).await.expect("read");
        assert_eq!(count, 8);
        ring.keep_all(&store, Vec::new()).await.expect("nothing");
        assert_eq!(ring.newest(&store, None, 1).await.expect("read").0, 8);
    }

    #[tokio::test]
    async fn the_newest_items_come_first_with_their_numbers_a_page_at_a_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Embedded::open(dir.path()).expect("open");
        let ring = Kept::new("x", 3);
        assert_eq!(
            ring.newest(&store, None, 10).await.expect("read"),
            (0, vec![])
        );
        for i in 0..5u8 {
            ring.keep(&store, vec![i]).await.expect("keep");
        }
        let (kept, items) = ring.newest(&store, None, 10).await.expect("read");
        assert_eq!(kept, 5);
        assert_eq!(items, [(4, vec![4]), (3, vec![3]), (2, vec![2])]);
        let page = |before, limit| {
            let store = &store;
            async move {
                let (_, items) = Kept::new("x", 3)
                    .newest(store, before, limit)
                    .await
                    .expect("read");
                items.into_iter().map(|(n, _)| n).collect::<Vec<_>>()
            }
        };
        assert_eq!(page(None, 2).await, [4, 3]);
        assert_eq!(page(Some(3), 2).await, [2], "item 1 is gone");
        assert_eq!(page(Some(2), 2).await, Vec::<u64>::new());
        assert_eq!(page(Some(99), 1).await, [4]);
    }

    #[tokio::test]
    async fn a_place_not_holding_its_numbers_item_is_left_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Embedded::open(dir.path()).expect("open");
        let ring = Kept::new("x", 2);
        for i in 0..3u8 {
            ring.keep(&store, vec![i]).await.expect("keep");
        }
        // Item 3 counted, its place (item 1's) not written yet.
        store
            .put_meta("kept:x", b"4".to_vec())
            .await
            .expect("count");
        let (kept, items) = ring.newest(&store, None, 10).await.expect("read");
        assert_eq!(kept, 4);
        assert_eq!(items, [(2, vec![2])], "item 1 is not shown as item 3");
        let (_, one) = ring.newest(&store, None, 1).await.expect("read");
        assert_eq!(one, [(2, vec![2])], "a page goes on below a place left out");
    }
}
