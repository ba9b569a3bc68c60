//! The Redis engine passes the store's contract, against a real
//! `redis-server` started for each test (`support`).

mod support;

use std::sync::Arc;

use async_trait::async_trait;
use store::{Store, contract::Harness};
use support::RedisServer;

struct RedisHarness(RedisServer);

#[async_trait]
impl Harness for RedisHarness {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(
            self.0
                .open("contract")
                .await
                .expect("connect to redis-server"),
        )
    }
}

store::contract_suite!(RedisHarness(RedisServer::start()));
