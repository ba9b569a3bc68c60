//! How a node talks to its Redis: one server (a connection manager that
//! reconnects by itself) or a Redis Cluster (a cluster connection that
//! follows the slots). Every key of the engine has one hash tag, so every
//! command, pipeline and script goes to the one master that owns it.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use ::redis::{
    Arg, Client, ClientTlsConfig, Cmd, IntoConnectionInfo, Pipeline, RedisFuture, RedisResult,
    TlsCertificates, Value,
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

/// Certificates for `rediss://`, in PEM: CAs to trust instead of the
/// system's, and a client certificate with its key, for a Redis that asks
/// its clients for one (`tls-auth-clients`).
#[derive(Clone, Default)]
pub struct Certificates {
    pub ca: Option<Vec<u8>>,
    /// The certificate (chain) and its private key.
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Certificates")
            .field("ca", &self.ca.is_some())
            .field("client", &self.client.is_some())
            .finish()
    }
}

impl Certificates {
    /// What the `redis` crate takes, if any are given.
    fn for_tls(&self) -> Option<TlsCertificates> {
        (self.ca.is_some() || self.client.is_some()).then(|| TlsCertificates {
            client_tls: self
                .client
                .clone()
                .map(|(client_cert, client_key)| ClientTlsConfig {
                    client_cert,
                    client_key,
                }),
            root_cert: self.ca.clone(),
        })
    }
}

/// A connection to the Redis, shared by every task of the node. With
/// `replicas` above 0, a request that writes is answered only once that
/// many replicas have it, so that what is acknowledged survives a replica
/// taking over from its master (docs/redis.md, "Durability"): the request
/// goes in one pipeline with a `WAIT`, so both travel on one connection
/// (the `WAIT` counts that connection's writes) and, in a Cluster, to the
/// master of the request's keys.
#[derive(Clone)]
pub struct Con {
    link: Link,
    replicas: u32,
    /// Why the last `WAIT` fell short, until one does not: what the store
    /// refuses writes for, whatever reads succeed meanwhile.
    lagging: Arc<Mutex<Lagging>>,
    /// Whether its writes go to Redis while the replicas lag (the
    /// heartbeat's, which find out when they answer again); the others
    /// fail at once then, instead of each holding the connection for
    /// `REPLICA_WAIT_MS`.
    probe: bool,
}

/// What the latest write's `WAIT` said. Writes are numbered as they are
/// sent, so that an older one's answer, noted after a newer one's, does
/// not undo it.
#[derive(Default)]
struct Lagging {
    sent: u64,
    noted: u64,
    why: Option<String>,
}

#[derive(Clone)]
enum Link {
    One(ConnectionManager),
    Cluster(ClusterConnection),
}

/// How long a write waits for its replicas before it fails.
pub const REPLICA_WAIT_MS: u64 = 1_000;

/// The commands the engine reads with; any other command (a script
/// above all) is taken for a write.
const READS: &[&[u8]] = &[
    b"CONFIG",
    b"EVAL_RO",
    b"EXISTS",
    b"HEXISTS",
    b"HGET",
    b"HGETALL",
    b"HMGET",
    b"HSCAN",
    b"HVALS",
    b"INFO",
    b"PING",
    b"SCARD",
    b"SCRIPT",
    b"SMEMBERS",
    b"SRANDMEMBER",
    b"WAIT",
    b"XRANGE",
    b"XREVRANGE",
    b"ZCARD",
    b"ZRANGE",
];

/// Whether `cmd` may change what Redis holds.
fn writes(cmd: &Cmd) -> bool {
    match cmd.args_iter().next() {
        Some(Arg::Simple(name)) => !READS.iter().any(|r| name.eq_ignore_ascii_case(r)),
        _ => true,
    }
}

impl Con {
    /// The replicas a write waits for.
    pub fn replicas(&self) -> u32 {
        self.replicas
    }

    /// This connection, for writes that go to Redis even while the
    /// replicas lag, to find out when they answer again.
    pub fn probe(&self) -> Self {
        Self {
            probe: true,
            ..self.clone()
        }
    }

    /// Why writes are not acknowledged now, if the last `WAIT` fell short.
    pub fn lagging(&self) -> Option<String> {
        self.lag().why.clone()
    }

    fn lag(&self) -> std::sync::MutexGuard<'_, Lagging> {
        self.lagging.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many replicas are connected (a `WAIT` on a connection that
    /// wrote nothing counts each at once, even one that hangs; in a
    /// Cluster, the fewest of any master's).
    pub async fn replicas_connected(&mut self) -> RedisResult<u32> {
        self.wait().query_async(&mut self.link).await
    }

    fn wait(&self) -> Cmd {
        let mut wait = ::redis::cmd("WAIT");
        wait.arg(self.replicas).arg(REPLICA_WAIT_MS);
        wait
    }

    /// Runs `pipeline` (which writes) with a `WAIT` after it; its answers,
    /// or an error when the `WAIT` fell short (or, unless this is a probe,
    /// fell short last time).
    async fn waited(
        &mut self,
        mut pipeline: Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        let number = {
            let mut lag = self.lag();
            if let Some(why) = lag.why.clone().filter(|_| !self.probe) {
                return Err(std::io::Error::other(why).into());
            }
            lag.sent += 1;
            lag.sent
        };
        pipeline.add_command(self.wait());
        let mut answers = self
            .link
            .req_packed_commands(&pipeline, offset, count + 1)
            .await?;
        let waited = answers.pop();
        if answers.iter().any(|a| matches!(a, Value::ServerError(_))) {
            // Refused: nothing is acknowledged, and the refusal says why.
            return Ok(answers);
        }
        let acknowledged = match waited {
            Some(Value::Int(n)) => u32::try_from(n).unwrap_or(0),
            _ => 0,
        };
        let why = (acknowledged < self.replicas).then(|| {
            format!(
                "{acknowledged} of the {} replicas store.replicas asks for acknowledged a write within {REPLICA_WAIT_MS} ms",
                self.replicas
            )
        });
        {
            let mut lag = self.lag();
            if number > lag.noted {
                lag.noted = number;
                lag.why.clone_from(&why);
            }
        }
        match why {
            Some(why) => Err(std::io::Error::other(why).into()),
            None => Ok(answers),
        }
    }
}

impl ConnectionLike for Con {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        if self.replicas == 0 || !writes(cmd) {
            return self.link.req_packed_command(cmd);
        }
        Box::pin(async move {
            let mut pipeline = Pipeline::with_capacity(2);
            pipeline.add_command(cmd.clone());
            let mut answers = self.waited(pipeline, 0, 1).await?;
            Ok(answers.pop().unwrap_or(Value::Nil))
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        if self.replicas == 0 || !pipeline.cmd_iter().any(writes) {
            return self.link.req_packed_commands(pipeline, offset, count);
        }
        Box::pin(async move {
            if pipeline.is_transaction() {
                // A `WAIT` queued in a `MULTI` would not wait; the engine
                // sends none.
                return Err(std::io::Error::other(
                    "a transaction cannot wait for replicas (store.replicas)",
                )
                .into());
            }
            self.waited(pipeline.clone(), offset, count).await
        })
    }

    fn get_db(&self) -> i64 {
        self.link.get_db()
    }
}

impl ConnectionLike for Link {
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

/// The values of `field` in `info`, an answer to `INFO`: one server's
/// text, or (from a Cluster) each master's.
fn info_values(info: &Value, field: &str) -> Vec<String> {
    let texts: Vec<&[u8]> = match info {
        Value::BulkString(text) => vec![text],
        Value::VerbatimString { text, .. } => vec![text.as_bytes()],
        Value::Map(nodes) => nodes
            .iter()
            .filter_map(|(_, text)| match text {
                Value::BulkString(text) => Some(text.as_slice()),
                Value::VerbatimString { text, .. } => Some(text.as_bytes()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let prefix = format!("{field}:");
    texts
        .into_iter()
        .filter_map(|text| {
            String::from_utf8_lossy(text)
                .lines()
                .find_map(|l| Some(l.strip_prefix(&prefix)?.trim().to_owned()))
        })
        .collect()
}

/// The fewest `connected_slaves` in `info` (`INFO replication`).
pub fn fewest_replicas(info: &Value) -> Option<u32> {
    (info_values(info, "connected_slaves").iter())
        .filter_map(|n| n.parse().ok())
        .min()
}

/// The oldest `redis_version` in `info` (`INFO server`), as (major,
/// minor).
pub fn oldest_version(info: &Value) -> Option<(u32, u32)> {
    (info_values(info, "redis_version").iter())
        .filter_map(|v| {
            let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
            Some((parts.next()??, parts.next()??))
        })
        .min()
}

/// Connects, answering the reason when the Redis cannot be reached (a
/// wrong address fails at once instead of being retried in the background).
/// Writes wait for `replicas` replicas ([`Con`]); over TLS, with
/// `certificates` when given.
pub async fn connect(
    servers: &Servers,
    password: Option<&str>,
    replicas: u32,
    certificates: &Certificates,
) -> Result<(Con, Closer), String> {
    let shared = |link| Con {
        link,
        replicas,
        lagging: Arc::default(),
        probe: false,
    };
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
            let client = match certificates.for_tls() {
                Some(certs) => Client::build_with_tls(info, certs),
                None => Client::open(info),
            }
            .map_err(|e| e.to_string())?;
            answered(client.get_multiplexed_async_connection()).await?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(2)))
                .set_response_timeout(Some(Duration::from_secs(10)))
                .set_number_of_retries(2)
                .set_max_delay(Duration::from_millis(500));
            let con = ConnectionManager::new_with_config(client.clone(), config)
                .await
                .map_err(|e| e.to_string())?;
            Ok((shared(Link::One(con)), Closer::One(Box::new(client))))
        }
        Servers::Cluster(urls) => {
            let mut builder = ClusterClient::builder(urls.iter().map(String::as_str))
                .connection_timeout(Duration::from_secs(2))
                .response_timeout(Duration::from_secs(10));
            if let Some(password) = password {
                builder = builder.password(password);
            }
            if let Some(certs) = certificates.for_tls() {
                builder = builder.certs(certs);
            }
            let client = builder.build().map_err(|e| e.to_string())?;
            let con = answered(client.get_async_connection()).await?;
            Ok((
                shared(Link::Cluster(con)),
                Closer::Cluster(Box::new(client)),
            ))
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
    fn scripts_and_unknown_commands_count_as_writes_and_reads_do_not() {
        assert!(!writes(&::redis::cmd("HMGET")));
        assert!(!writes(&::redis::cmd("hget")));
        assert!(!writes(&::redis::cmd("WAIT")));
        assert!(writes(&::redis::cmd("EVALSHA")));
        assert!(writes(&::redis::cmd("HSET")));
        assert!(writes(&::redis::cmd("SOMETHING-NEW")));
    }

    #[test]
    fn the_fewest_replicas_of_any_master_count() {
        let text = |n: u32| {
            Value::BulkString(
                format!("# Replication\r\nrole:master\r\nconnected_slaves:{n}\r\n").into_bytes(),
            )
        };
        assert_eq!(fewest_replicas(&text(2)), Some(2));
        let masters = Value::Map(vec![
            (Value::SimpleString("a".into()), text(2)),
            (Value::SimpleString("b".into()), text(1)),
        ]);
        assert_eq!(fewest_replicas(&masters), Some(1));
        assert_eq!(fewest_replicas(&Value::Nil), None);
    }

    #[test]
    fn the_oldest_version_of_any_master_counts() {
        let text =
            |v: &str| Value::BulkString(format!("# Server\r\nredis_version:{v}\r\n").into_bytes());
        assert_eq!(oldest_version(&text("7.0.15")), Some((7, 0)));
        let masters = Value::Map(vec![
            (Value::SimpleString("a".into()), text("7.2.4")),
            (Value::SimpleString("b".into()), text("6.2.14")),
        ]);
        assert_eq!(oldest_version(&masters), Some((6, 2)));
        assert_eq!(oldest_version(&text("unknown")), None);
    }

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
