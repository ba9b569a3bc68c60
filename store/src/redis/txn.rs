//! One atomic write of the Redis engine: the values it was planned on (each
//! checked unchanged), the commands that carry it out, and the facts it
//! appends to the feed, all in one Lua script. A check that fails means
//! another writer (this node or another) changed what the plan read: the
//! caller reads again and plans again (optimistic concurrency), so the
//! rules run in Rust and every decision is still written with its fact,
//! both or neither.

use ::redis::Script;

/// Applies a planned write if nothing it read has changed; answers
/// `{1, first cursor}` or `{0}` on a conflict.
///
/// ARGV: the number of checks, then per check `key field mode value`
/// (mode `=`: the field equals value; `!`: it is absent); the number of
/// commands, then per command its argument count and arguments (`HMAX key
/// field value` sets a field only to a larger number); the number of facts,
/// then each fact. KEYS: the feed stream and its cursor counter.
const SCRIPT: &str = r#"
local i = 1
local checks = tonumber(ARGV[i]); i = i + 1
for _ = 1, checks do
  local now = redis.call('HGET', ARGV[i], ARGV[i + 1])
  if ARGV[i + 2] == '!' then
    if now then return {0} end
  elseif now ~= ARGV[i + 3] then
    return {0}
  end
  i = i + 4
end
local commands = tonumber(ARGV[i]); i = i + 1
for _ = 1, commands do
  local argc = tonumber(ARGV[i]); i = i + 1
  if ARGV[i] == 'HMAX' then
    local was = tonumber(redis.call('HGET', ARGV[i + 1], ARGV[i + 2]) or '-1')
    if tonumber(ARGV[i + 3]) > was then
      redis.call('HSET', ARGV[i + 1], ARGV[i + 2], ARGV[i + 3])
    end
  else
    redis.call(unpack(ARGV, i, i + argc - 1))
  end
  i = i + argc
end
local facts = tonumber(ARGV[i]); i = i + 1
local first = 0
if facts > 0 then
  local last = redis.call('INCRBY', KEYS[2], facts)
  first = last - facts + 1
  for k = 0, facts - 1 do
    redis.call('XADD', KEYS[1], (first + k) .. '-0', 'f', ARGV[i + k])
  end
end
return {1, first}
"#;

pub(super) fn script() -> Script {
    Script::new(SCRIPT)
}

/// What a write was planned on, and what it does.
#[derive(Debug, Default)]
pub(super) struct Txn {
    checks: Vec<Vec<u8>>,
    check_count: usize,
    commands: Vec<Vec<u8>>,
    command_count: usize,
    facts: Vec<Vec<u8>>,
}

impl Txn {
    /// The plan read `field` of hash `key` as `value` (`None`: absent).
    pub fn read(&mut self, key: &str, field: &[u8], value: Option<&[u8]>) {
        self.checks.push(key.as_bytes().to_vec());
        self.checks.push(field.to_vec());
        match value {
            Some(v) => {
                self.checks.push(b"=".to_vec());
                self.checks.push(v.to_vec());
            }
            None => {
                self.checks.push(b"!".to_vec());
                self.checks.push(Vec::new());
            }
        }
        self.check_count += 1;
    }

    /// A Redis command, run if every check holds.
    pub fn command(&mut self, args: &[&[u8]]) {
        self.commands.push(args.len().to_string().into_bytes());
        self.commands.extend(args.iter().map(|a| a.to_vec()));
        self.command_count += 1;
    }

    pub fn hset(&mut self, key: &str, field: &[u8], value: &[u8]) {
        self.command(&[b"HSET", key.as_bytes(), field, value]);
    }

    pub fn hdel(&mut self, key: &str, field: &[u8]) {
        self.command(&[b"HDEL", key.as_bytes(), field]);
    }

    pub fn hincr(&mut self, key: &str, field: &str, by: i64) {
        self.command(&[
            b"HINCRBY",
            key.as_bytes(),
            field.as_bytes(),
            by.to_string().as_bytes(),
        ]);
    }

    /// Sets `field` to `value` unless it holds a larger number already.
    pub fn hmax(&mut self, key: &str, field: &[u8], value: u64) {
        self.command(&[b"HMAX", key.as_bytes(), field, value.to_string().as_bytes()]);
    }

    pub fn zadd(&mut self, key: &str, score: u64, member: &[u8]) {
        self.command(&[
            b"ZADD",
            key.as_bytes(),
            score.to_string().as_bytes(),
            member,
        ]);
    }

    pub fn zrem(&mut self, key: &str, member: &[u8]) {
        self.command(&[b"ZREM", key.as_bytes(), member]);
    }

    pub fn del(&mut self, key: &str) {
        self.command(&[b"DEL", key.as_bytes()]);
    }

    /// A fact (encoded without its cursor) for the feed.
    pub fn fact(&mut self, encoded: Vec<u8>) {
        self.facts.push(encoded);
    }

    pub fn is_empty(&self) -> bool {
        self.check_count == 0 && self.command_count == 0 && self.facts.is_empty()
    }

    /// The script's arguments.
    pub fn into_args(self) -> Vec<Vec<u8>> {
        let mut args =
            Vec::with_capacity(3 + self.checks.len() + self.commands.len() + self.facts.len());
        args.push(self.check_count.to_string().into_bytes());
        args.extend(self.checks);
        args.push(self.command_count.to_string().into_bytes());
        args.extend(self.commands);
        args.push(self.facts.len().to_string().into_bytes());
        args.extend(self.facts);
        args
    }
}
