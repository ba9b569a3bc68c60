//! The embedded engine passes the store's contract, on a fresh data
//! directory per test.

use std::sync::Arc;

use async_trait::async_trait;
use store::{Store, contract::Harness, embedded::Embedded};
use tempfile::TempDir;

struct EmbeddedHarness {
    dir: TempDir,
}

impl EmbeddedHarness {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }
}

#[async_trait]
impl Harness for EmbeddedHarness {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(Embedded::open(self.dir.path()).expect("open the data directory"))
    }
}

store::contract_suite!(EmbeddedHarness::new());
