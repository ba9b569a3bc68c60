//! How a node talks to its Redis: one server (a connection manager that
//! reconnects by itself) or a Redis Cluster (a cluster connection that
//! follows the slots). Every key of the engine has one hash tag, so every
//! command, pipeline and script goes to the one master that owns it.

use std::time::Duration;

use ::redis::{
    Client, Cmd, IntoConnectionInfo, Pipeline, RedisFuture, RedisResult, Value,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    cluster::ClusterClient,
    cluster_async::ClusterConnection,
};

/// Where the Redis is.
#[derive(Debug, Clone)]
pub enum Servers {
    /// `redis://host:port/db` or `rediss://`.
    One(String),
    /// A Redis Cluster's seed nodes.
    Cluster(Vec<String>),
}

impl Servers {
    /// The server(s), without passwords, for errors and `/readyz`.
    pub fn describe(&self) -> String {
        match self {
            Self::One(url) => redact(url),
            Self::Cluster(urls) => {
                let urls: Vec<String> = urls.iter().map(|u| redact(u)).collect();
                format!("the Redis Cluster of {}", urls.join(", "))
            }
        }
    }

    /// The configuration key that names them.
    pub fn key(&self) -> &'static str {
        match self {
            Self::One(_) => "store.url",
            Self::Cluster(_) => "store.urls",
        }
    }
}

/// A connection to the Redis, shared by every task of the node.
#[derive(Clone)]
pub enum Con {
    One(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Con {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::One(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::One(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::One(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// What can still talk to Redis while the store is dropped (no runtime
/// may be left then): a blocking connection.
pub enum Closer {
    One(Box<Client>),
    Cluster(Box<ClusterClient>),
}

impl Closer {
    /// Runs `cmd` on a blocking connection (one second to connect).
    pub fn run(&self, cmd: &Cmd) -> RedisResult<()> {
        match self {
            Self::One(client) => {
                let mut con = client.get_connection_with_timeout(Duration::from_secs(1))?;
                cmd.query(&mut con)
            }
            Self::Cluster(client) => cmd.query(&mut client.get_connection()?),
        }
    }
}

/// Connects, answering the reason when the Redis cannot be reached (a
/// wrong address fails at once instead of being retried in the background).
pub async fn connect(servers: &Servers, password: Option<&str>) -> Result<(Con, Closer), String> {
    match servers {
        Servers::One(url) => {
            let mut info = url
                .as_str()
                .into_connection_info()
                .map_err(|e| e.to_string())?;
            if let Some(password) = password {
                let settings = info.redis_settings().clone().set_password(password);
                info = info.set_redis_settings(settings);
            }
            let client = Client::open(info).map_err(|e| e.to_string())?;
            answered(client.get_multiplexed_async_connection()).await?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(2)))
                .set_response_timeout(Some(Duration::from_secs(10)))
                .set_number_of_retries(2)
                .set_max_delay(Duration::from_millis(500));
            let con = ConnectionManager::new_with_config(client.clone(), config)
                .await
                .map_err(|e| e.to_string())?;
            Ok((Con::One(con), Closer::One(Box::new(client))))
        }
        Servers::Cluster(urls) => {
            let mut builder = ClusterClient::builder(urls.iter().map(String::as_str))
                .connection_timeout(Duration::from_secs(2))
                .response_timeout(Duration::from_secs(10));
            if let Some(password) = password {
                builder = builder.password(password);
            }
            let client = builder.build().map_err(|e| e.to_string())?;
            let con = answered(client.get_async_connection()).await?;
            Ok((Con::Cluster(con), Closer::Cluster(Box::new(client))))
        }
    }
}

/// The connection `connecting` makes, once it has answered a `PING`
/// within 5 s; else why not.
async fn answered<C: ConnectionLike>(
    connecting: impl Future<Output = RedisResult<C>>,
) -> Result<C, String> {
    let mut con = tokio::time::timeout(Duration::from_secs(5), connecting)
        .await
        .map_err(|_| "no answer within 5 s".to_owned())?
        .map_err(|e| e.to_string())?;
    let _: String = ::redis::cmd("PING")
        .query_async(&mut con)
        .await
        .map_err(|e| e.to_string())?;
    Ok(con)
}

/// The URL without its password.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show_in_errors() {
        assert_eq!(
            redact("redis://:hunter2@db:6379/0"),
            "redis://***@db:6379/0"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        let cluster = Servers::Cluster(vec!["redis://:pw@a:1".into(), "redis://b:2".into()]);
        assert_eq!(
            cluster.describe(),
            "the Redis Cluster of redis://***@a:1, redis://b:2"
        );
    }
}
