//! The Redis engine: the store in one Redis that several sluice nodes share
//! (`ARCHITECTURE.md`, "The Redis engine"). Every write is planned in Rust
//! (the rules decide, as in the embedded engine) on values read from Redis
//! and applied by one Lua script only if those values are unchanged
//! (`txn`); the feed's cursors are given by that script, so they have no
//! gaps and every node reads the same feed. Leases live in Redis: a node
//! that dies loses its claims when their lease runs out.
//!
//! Each campaign lives in a shard with everything its writes touch, so
//! that each script touches one slot of a Redis Cluster, and the shards
//! spread over its masters (`keys`); with more than one shard, the
//! shards' facts move into the one feed the API reads (`feed`).

/// Plans a write (`$body`, over the plan `$p`, ending in a `Result`) and
/// applies it in shard `$shard`, again until it meets no change made
/// meanwhile. A `return` or `?` in `$body` leaves the calling function
/// without applying anything: only before it plans a change.
macro_rules! write_until_applied {
    ($store:expr, $shard:expr, $what:expr, |$p:ident| $body:block) => {{
        let mut outcome = Err(contended($what));
        for _ in 0..MAX_TRIES {
            let mut $p = Plan::new($store, $shard);
            let answer = $body?;
            if $store.apply_plan($p).await? {
                outcome = Ok(answer);
                break;
            }
        }
        outcome
    }};
}

mod connection;
mod feed;
mod holding;
pub(crate) mod keys;
mod known;
mod leftovers;
mod plan;
mod publish;
mod retention;
mod roles;
mod txn;

pub use connection::{Certificates, Servers};
pub use retention::Forgotten;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use ::redis::{AsyncCommands, FromRedisValue};
use connection::{Closer, Con};
use domain::{CampaignRecord, MessageNo};

use crate::{Result, StoreError, codec};

/// How a node reaches its Redis.
#[derive(Debug, Clone)]
pub struct Options {
    pub servers: Servers,
    pub password: Option<String>,
    /// This node's name among those sharing the Redis: two open stores
    /// never have one name.
    pub node: String,
    /// Replicas that must have a write before it is answered (0: the
    /// master's answer is enough).
    pub replicas: u32,
    /// Over TLS: CAs to trust, and a client certificate to show.
    pub certificates: Certificates,
    /// Shards the campaigns spread over (`keys`): every node of a store
    /// has the same count, fixed when the store is made.
    pub shards: u16,
}

/// Values of several hash fields, in the order asked (`HMGET`).
type Values = Vec<Option<Vec<u8>>>;
/// A hash's fields with their values (`HGETALL`).
type Pair = (Vec<u8>, Vec<u8>);

/// Fields a hash is read by at a time (`hash_slice`): about 7 ms of
/// Redis's time.
const FIELDS_PER_SCAN: usize = 10_000;

/// The oldest Redis the engine runs on: `EVAL_RO` came with 7.0.
const MIN_VERSION: (u32, u32) = (7, 0);

/// Attempts at a write whose reads another writer changed meanwhile.
const MAX_TRIES: usize = 64;

/// How long an upload's staged participants are kept without news of it
/// (its node died mid-upload): then its customers are free again.
const UPLOAD_TTL_SECS: u64 = 3600;

/// An open store says it lives this often, for this long: an upload of a
/// store that stopped saying so (closed, or its node died) is dropped.
const HEARTBEAT: Duration = Duration::from_secs(2);
const HEARTBEAT_TTL_MS: u64 = 6_000;

/// Upload ids are `instance << UPLOAD_BITS | counter`.
const UPLOAD_BITS: u32 = 24;

pub struct Redis {
    /// For the last words as the store is dropped.
    closer: Closer,
    con: Con,
    /// This open store, among every node's (random).
    instance: u64,
    node: String,
    heartbeat: tokio::task::JoinHandle<()>,
    url: String,
    script: ::redis::Script,
    /// Why the last call (or heartbeat) failed, until one succeeds.
    failure: Arc<Mutex<Option<String>>>,
    /// Upload ids: the instance in the high bits, a counter below.
    uploads: AtomicU64,
    /// Requests sent to Redis (`Store::requests`).
    requests: AtomicU64,
    /// Held by an abandon while it writes, and by intake while it plans:
    /// a staging called after an abandon sees its customers free, as the
    /// embedded engine's group order gives.
    abandoning: tokio::sync::RwLock<()>,
    /// Messages and campaigns as this node last read or wrote them.
    known: known::Known,
    /// Uploads this store is publishing now.
    carried: publish::Carried,
    shards: keys::Shards,
}

impl Redis {
    /// Connects to the Redis at `options.url`; an error names the URL.
    pub async fn open(options: Options) -> Result<Self> {
        let reached = reach(&options).await?;
        fit_for_a_store(&reached, &options).await?;
        let Reached {
            con,
            closer,
            described,
        } = reached;
        let unreachable = |e: &dyn std::fmt::Display| unreachable(&options, &described, e);
        let shards = agree_on_shards(&mut con.clone(), options.shards)
            .await
            .map_err(|e| unreachable(&e))?;
        if shards != options.shards {
            return Err(shards_differ(&described, shards, options.shards));
        }
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let instance = (seed ^ (u64::from(std::process::id()) << 20)) & ((1 << 39) - 1);
        let mut beat = con.probe();
        let claimed = say_alive(&mut beat, instance, &options.node)
            .await
            .map_err(|e| unreachable(&e))?;
        if !claimed {
            return Err(StoreError::Unopened(format!(
                "store.node `{}` is the name of another node running on the Redis at {described}: give each node its own name (or wait {} s after a node stopped uncleanly)",
                options.node,
                HEARTBEAT_TTL_MS / 1000
            )));
        }
        let node = options.node.clone();
        let failure = Arc::new(Mutex::new(None));
        let noted = failure.clone();
        let url = described.clone();
        let heartbeat = tokio::spawn(async move {
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                let said = say_alive(&mut beat, instance, &node).await;
                // Also how a node that stopped writing (Redis lost) sees
                // Redis back, and resumes.
                let mut failure = noted.lock().unwrap_or_else(|e| e.into_inner());
                match said {
                    Ok(_) => *failure = None,
                    Err(e) => *failure = Some(format!("Redis at {url} failed: {e}")),
                }
            }
        });
        Ok(Self {
            closer,
            con,
            instance,
            node: options.node.clone(),
            heartbeat,
            url: described,
            script: txn::script(),
            failure,
            uploads: AtomicU64::new(instance << UPLOAD_BITS),
            requests: AtomicU64::new(0),
            abandoning: tokio::sync::RwLock::new(()),
            known: known::Known::default(),
            carried: publish::Carried::default(),
            shards: keys::Shards::new(shards),
        })
    }

    /// Whether the store that made `upload` is open (its uploads live).
    async fn instance_lives(&self, upload: u64) -> Result<bool> {
        let instance = upload >> UPLOAD_BITS;
        if instance == self.instance {
            return Ok(true);
        }
        self.query(::redis::cmd("EXISTS").arg(keys::instance(instance)))
            .await
    }

    /// Why acknowledged writes might not survive a crash of the Redis
    /// server or its replica taking over, if they might: anything short
    /// of `appendonly yes` with `appendfsync always`, and replicas that
    /// writes do not wait for (docs/redis.md, "Durability").
    pub async fn durability_warnings(&self) -> Vec<String> {
        durability_warnings(&self.con, &self.url).await
    }

    /// What `sluice check-config` asks of the Redis of `options` without
    /// writing to it: the warnings of [`durability_warnings`](Self::durability_warnings),
    /// or why [`open`](Self::open) would fail (its version, its replicas,
    /// a store made with another count of shards). One that cannot be
    /// reached is a warning: the configuration may be checked elsewhere.
    /// Every warning and error names its key.
    pub async fn check(options: Options) -> Result<Vec<String>> {
        let reached = match reach(&options).await {
            Ok(reached) => reached,
            Err(unreached) => return Ok(vec![unreached.to_string()]),
        };
        fit_for_a_store(&reached, &options).await?;
        let described = &reached.described;
        let made = made_shards(&mut reached.con.clone())
            .await
            .map_err(|e| unreachable(&options, described, &e))?;
        if let Some(made) = made.filter(|&made| made != options.shards.max(1)) {
            return Err(shards_differ(described, made, options.shards));
        }
        let key = options.servers.key();
        Ok((durability_warnings(&reached.con, described).await)
            .into_iter()
            .map(|w| format!("{key}: {w}"))
            .collect())
    }
}

/// Why acknowledged writes on the Redis behind `con` (at `url`) might not
/// survive a crash of the server or its replica taking over, if they might:
/// anything short of `appendonly yes` with `appendfsync always`, and
/// replicas that writes do not wait for (docs/redis.md, "Durability").
async fn durability_warnings(con: &Con, url: &str) -> Vec<String> {
    let mut warnings: Vec<String> = persistence_warning(con, url).await.into_iter().collect();
    let (asked, has) = (con.replicas(), fewest_replicas(con).await);
    match has {
        Some(n) if asked == 0 && n > 0 => warnings.push(format!(
            "the Redis at {url} has replicas, and store.replicas is 0: a replica that takes over from its master lacks the writes it had not received yet, acknowledged or not; set store.replicas (e.g. 1) for acknowledged means on a replica too"
        )),
        Some(n) if asked > 0 && n == asked => warnings.push(format!(
            "the Redis at {url} has {n} replicas (of a master), as many as store.replicas asks a write to reach: one lost, or a replica taking over, stops every write until another answers; give each master {} replicas",
            asked + 1
        )),
        _ => {}
    }
    warnings
}

async fn persistence_warning(con: &Con, url: &str) -> Option<String> {
    let read: ::redis::RedisResult<(Vec<String>, Vec<String>)> = ::redis::pipe()
        .cmd("CONFIG")
        .arg("GET")
        .arg("appendonly")
        .cmd("CONFIG")
        .arg("GET")
        .arg("appendfsync")
        .query_async(&mut con.clone())
        .await;
    match read {
        Ok((only, fsync)) => {
            let only = only.get(1).map_or("?", String::as_str);
            let fsync = fsync.get(1).map_or("?", String::as_str);
            (only != "yes" || fsync != "always").then(|| format!(
                "the Redis at {url} has appendonly {only}, appendfsync {fsync}: an acknowledged write can be lost if Redis crashes; set `appendonly yes` and `appendfsync always` for acknowledged means durable"
            ))
        }
        Err(e) => Some(format!(
            "cannot read the persistence settings of the Redis at {url} ({e}): make sure it runs with `appendonly yes` and `appendfsync always`"
        )),
    }
}

/// The fewest replicas connected to a master (`INFO replication`; in a
/// Cluster, of every master), if Redis says.
async fn fewest_replicas(con: &Con) -> Option<u32> {
    let info: ::redis::Value = ::redis::cmd("INFO")
        .arg("replication")
        .query_async(&mut con.clone())
        .await
        .ok()?;
    connection::fewest_replicas(&info)
}

impl Redis {
    fn con(&self) -> Con {
        self.con.clone()
    }

    /// Notes how a call to Redis ended, for `write_refusal` (and counts it).
    fn seen<T>(&self, result: ::redis::RedisResult<T>) -> Result<T> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut failure = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(v) => {
                *failure = None;
                Ok(v)
            }
            Err(e) => {
                let why = format!("Redis at {} failed: {e}", self.url);
                *failure = Some(why.clone());
                Err(StoreError::Unavailable(why))
            }
        }
    }

    /// Runs one command.
    async fn query<T: FromRedisValue>(&self, cmd: &::redis::Cmd) -> Result<T> {
        let mut con = self.con();
        let result = cmd.query_async(&mut con).await;
        self.seen(result)
    }

    /// Runs a pipeline, one answer per command.
    async fn pipe<T: FromRedisValue>(&self, pipe: &::redis::Pipeline) -> Result<T> {
        let mut con = self.con();
        let result = pipe.query_async(&mut con).await;
        self.seen(result)
    }

    /// Every field of hash `key` with its value, read a slice at a time
    /// ([`Redis::hash_slice`]). Not a snapshot: a field changed meanwhile
    /// is seen either way.
    async fn hash_entries(&self, key: &str) -> Result<Vec<Pair>> {
        let mut entries: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        let mut cursor = 0u64;
        loop {
            let (next, slice) = self.hash_slice(key, cursor).await?;
            // A scan may give a field twice.
            entries.extend(slice);
            if next == 0 {
                return Ok(entries.into_iter().collect());
            }
            cursor = next;
        }
    }

    /// The slice of hash `key`'s fields with their values at scan cursor
    /// `cursor` (0 to begin), and the cursor of the next (0 after the
    /// last): one `HGETALL` of a hash of 1,000,000 fields held Redis
    /// 240 ms, one `HSCAN` reads about `FIELDS_PER_SCAN`.
    async fn hash_slice(&self, key: &str, cursor: u64) -> Result<(u64, Vec<Pair>)> {
        self.query(
            ::redis::cmd("HSCAN")
                .arg(key)
                .arg(cursor)
                .arg("COUNT")
                .arg(FIELDS_PER_SCAN),
        )
        .await
    }

    async fn hget(&self, key: &str, field: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut con = self.con();
        let result = con.hget(key, field).await;
        self.seen(result)
    }

    /// Applies a plan's write; `false` when what it read has changed
    /// (then nothing known of the messages is trusted any more).
    async fn apply_plan(&self, plan: plan::Plan<'_>) -> Result<bool> {
        let (txn, states, shard) = plan.into_parts();
        let applied = self.apply(txn, shard).await?;
        if applied {
            self.known.written(states);
        } else {
            self.known.forget();
        }
        Ok(applied)
    }

    /// Applies a planned write in `shard` (its facts go to the shard's
    /// feed); `false` when what it read has changed.
    async fn apply(&self, txn: txn::Txn, shard: keys::Shard<'_>) -> Result<bool> {
        if txn.is_empty() {
            return Ok(true);
        }
        // The command is made here, not by a `ScriptInvocation`: that one
        // keeps each argument in an allocation of its own and copies them
        // all again into the command (a write has a few per message).
        let mut eval = ::redis::cmd("EVALSHA");
        eval.arg(self.script.get_hash())
            .arg(2)
            .arg(shard.feed())
            .arg(shard.cursor());
        txn.write_args(&mut eval);
        let mut con = self.con();
        let mut result = eval.query_async(&mut con).await;
        if matches!(&result, Err(e) if e.kind() == ::redis::ErrorKind::Server(::redis::ServerErrorKind::NoScript))
        {
            // A Redis restarted, or another of the Cluster's: load it there.
            let loaded = self.script.prepare_invoke().load_async(&mut con).await;
            self.seen(loaded)?;
            result = eval.query_async(&mut con).await;
        }
        let answer: Vec<u64> = self.seen(result)?;
        Ok(answer.first() == Some(&1))
    }

    async fn campaign_seq(&self, id: &str) -> Result<Option<u32>> {
        let raw: Option<u32> = self
            .query(::redis::cmd("HGET").arg(keys::campaigns()).arg(id))
            .await?;
        Ok(raw)
    }

    /// A campaign's record with the bytes it was read as (for checks).
    async fn campaign_record(&self, seq: u32) -> Result<Option<(CampaignRecord, Vec<u8>)>> {
        match self.hget(&self.shard(seq).campaign(seq), b"rec").await? {
            Some(bytes) => Ok(Some((codec::decode(&bytes)?, bytes))),
            None => Ok(None),
        }
    }

    async fn campaign_by_id(&self, id: &str) -> Result<Option<(CampaignRecord, Vec<u8>)>> {
        match self.campaign_seq(id).await? {
            Some(seq) => self.campaign_record(seq).await,
            None => Ok(None),
        }
    }

    /// The shard of campaign `seq`.
    fn shard(&self, seq: u32) -> keys::Shard<'_> {
        self.shards.of(seq)
    }

    fn next_upload(&self) -> u64 {
        self.uploads.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// The store's count of shards: the one noted in `meta`, or ARGV[1]
/// noted now for a store made now (one made before there were shards has
/// campaigns numbered already, and one shard). KEYS: meta, the next
/// campaign number.
const SHARDS: &str = r#"
local noted = redis.call('HGET', KEYS[1], 'shards')
if noted then return tonumber(noted) end
local count = ARGV[1]
if redis.call('EXISTS', KEYS[2]) == 1 then count = '1' end
redis.call('HSET', KEYS[1], 'shards', count)
return tonumber(count)
"#;

/// A Redis connected to, nothing written to it yet.
struct Reached {
    con: Con,
    closer: Closer,
    described: String,
}

/// Connects to the Redis of `options`; an error names the URL's key.
async fn reach(options: &Options) -> Result<Reached> {
    let described = options.servers.describe();
    let (con, closer) = connection::connect(
        &options.servers,
        options.password.as_deref(),
        options.replicas,
        &options.certificates,
    )
    .await
    .map_err(|e| unreachable(options, &described, &e))?;
    Ok(Reached {
        con,
        closer,
        described,
    })
}

/// Checks what a store needs of the Redis reached (its version, its
/// replicas) before writing anything; an error names the key to change.
async fn fit_for_a_store(reached: &Reached, options: &Options) -> Result<()> {
    let Reached { con, described, .. } = reached;
    let unreachable = |e: &dyn std::fmt::Display| unreachable(options, described, e);
    let server: ::redis::RedisResult<::redis::Value> = ::redis::cmd("INFO")
        .arg("server")
        .query_async(&mut con.clone())
        .await;
    // A server that does not say is taken at its word later.
    if let Some(version) = server.ok().as_ref().and_then(connection::oldest_version)
        && version < MIN_VERSION
    {
        return Err(StoreError::Unopened(format!(
            "the Redis at {} `{described}` is version {}.{}; the engine needs {}.{} or later (read-only scripts, EVAL_RO)",
            options.servers.key(),
            version.0,
            version.1,
            MIN_VERSION.0,
            MIN_VERSION.1
        )));
    }
    if options.replicas > 0 {
        let connected = con
            .clone()
            .replicas_connected()
            .await
            .map_err(|e| unreachable(&e))?;
        if connected < options.replicas {
            return Err(StoreError::Unopened(format!(
                "store.replicas: the Redis at {} `{described}` has {connected} replicas connected (the fewest of any master), and store.replicas asks every write to reach {}",
                options.servers.key(),
                options.replicas
            )));
        }
    }
    Ok(())
}

fn unreachable(options: &Options, described: &str, e: &dyn std::fmt::Display) -> StoreError {
    StoreError::Unopened(format!(
        "cannot reach Redis at {} `{described}`: {e}",
        options.servers.key()
    ))
}

fn shards_differ(described: &str, made: u16, asked: u16) -> StoreError {
    StoreError::Unopened(format!(
        "store.shards: the store at {described} was made with {made} shards, and store.shards asks {asked}: every node of a store has the count it was made with"
    ))
}

/// The count of shards of the store, if it is made: the one noted in
/// `meta`, else 1 if it has numbered campaigns (as [`SHARDS`] decides),
/// read without writing.
async fn made_shards(con: &mut Con) -> ::redis::RedisResult<Option<u16>> {
    let noted: Option<u16> = con.hget(keys::meta(), "shards").await?;
    if noted.is_some() {
        return Ok(noted);
    }
    let numbered: bool = con.exists(keys::next_campaign()).await?;
    Ok(numbered.then_some(1))
}

/// The count of shards of the store, `asked` if it is made now.
async fn agree_on_shards(con: &mut Con, asked: u16) -> ::redis::RedisResult<u16> {
    ::redis::Script::new(SHARDS)
        .key(keys::meta())
        .key(keys::next_campaign())
        .arg(asked.max(1))
        .invoke_async(con)
        .await
}

/// Says this store is alive for ARGV[2] ms more, under its node's name;
/// answers 0 if another live store has the name. KEYS: the instance, the
/// node's name.
static SAY_ALIVE: std::sync::LazyLock<::redis::Script> = std::sync::LazyLock::new(|| {
    ::redis::Script::new(
        r#"
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('SET', KEYS[1], 1, 'PX', ARGV[2])
return 1
"#,
    )
});

/// Says store `instance` of node `node` is alive; `false` when another
/// live store has the name.
async fn say_alive(con: &mut Con, instance: u64, node: &str) -> ::redis::RedisResult<bool> {
    let claimed: i64 = SAY_ALIVE
        .prepare_invoke()
        .key(keys::instance(instance))
        .key(keys::node(node))
        .arg(instance)
        .arg(HEARTBEAT_TTL_MS)
        .invoke_async(con)
        .await?;
    Ok(claimed == 1)
}

/// Removes this store's keys of being alive (its name only if still its).
const SAY_CLOSED: &str = r#"
redis.call('DEL', KEYS[1])
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
"#;

impl Drop for Redis {
    /// Says at once that this store is closed, so that its uploads never
    /// published are dropped (a node that dies says it by its silence).
    fn drop(&mut self) {
        self.heartbeat.abort();
        let mut closing = ::redis::cmd("EVAL");
        closing
            .arg(SAY_CLOSED)
            .arg(2)
            .arg(keys::instance(self.instance))
            .arg(keys::node(&self.node))
            .arg(self.instance);
        let closed = self.closer.run(&closing);
        if let Err(e) = closed {
            tracing::warn!(error = %e, "could not tell Redis this store closed; its uploads are dropped after the heartbeat's expiry");
        }
    }
}

/// The suppression field of `entry`: addresses in any case are one entry.
fn suppression_field(entry: &str) -> String {
    entry.to_lowercase()
}

/// The message of a number of campaign `seq`.
fn message(seq: u32, field: &[u8]) -> Option<MessageNo> {
    keys::parse_number(field).map(|participant| MessageNo {
        campaign: seq,
        participant,
    })
}
