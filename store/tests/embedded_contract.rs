//! The embedded engine passes the store's contract, on a fresh data
//! directory per test: with its message states left in runs (a test writes
//! far fewer than a fold waits for), and folded after every commit.

use std::sync::Arc;

use async_trait::async_trait;
use store::{
    Store,
    contract::Harness,
    embedded::{Embedded, FOLD_AFTER, Options},
};
use tempfile::TempDir;

struct EmbeddedHarness {
    dir: TempDir,
    fold_states_after: usize,
}

impl EmbeddedHarness {
    fn new(fold_states_after: usize) -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
            fold_states_after,
        }
    }
}

#[async_trait]
impl Harness for EmbeddedHarness {
    async fn open(&self) -> Arc<dyn Store> {
        let options = Options {
            fold_states_after: self.fold_states_after,
            ..Options::default()
        };
        Arc::new(Embedded::open_with(self.dir.path(), options).expect("open the data directory"))
    }
}

store::contract_suite!(EmbeddedHarness::new(FOLD_AFTER));

mod folded_after_every_commit {
    use super::*;

    store::contract_suite!(EmbeddedHarness::new(1));
}
