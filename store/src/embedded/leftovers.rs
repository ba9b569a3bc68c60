//! What a deleted campaign leaves among the upstream links: the links from
//! SMSC message ids to its messages whose receipt never came (and the
//! progress of texts in parts), which no prefix of the campaign reaches.
//! They would pile up for as long as the installation runs, so deleting a
//! campaign removes every link of a campaign that is gone: the links are
//! read off the committer, then removed in writes that check each one's
//! campaign again (an SMSC may have given the id to a new message).

use std::collections::HashSet;

use super::{Embedded, Op, io};
use crate::{Result, StoreError, upstream};

/// Links removed by one write, at most.
const LINKS_PER_WRITE: usize = 1_000;

impl Embedded {
    /// Removes the links of deleted campaigns' messages; answers how many
    /// went.
    pub(super) async fn forget_leftovers(&self) -> Result<u64> {
        let live: HashSet<u32> = self.shared.index().ids.keys().copied().collect();
        let links = self.shared.ks.upstream.clone();
        let gone = tokio::task::spawn_blocking(move || {
            let mut gone = Vec::new();
            for kv in links.iter() {
                let (key, value) = kv.into_inner().map_err(io)?;
                if upstream::campaign_of(&key, &value).is_some_and(|seq| !live.contains(&seq)) {
                    gone.push(key.to_vec());
                }
            }
            Ok::<_, StoreError>(gone)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("reading the upstream links: {e}")))??;
        let mut removed = 0;
        for keys in gone.chunks(LINKS_PER_WRITE) {
            let keys = keys.to_vec();
            removed += self.submit(|reply| Op::ForgetLinks { keys, reply }).await?;
        }
        Ok(removed)
    }
}
