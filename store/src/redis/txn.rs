//! One atomic write of the Redis engine: the values it was planned on (each
//! checked unchanged), what it changes, and the facts it appends to the
//! feed, all in one Lua script. A check that fails means another writer
//! (this node or another) changed what the plan read: the caller reads
//! again and plans again (optimistic concurrency), so the rules run in Rust
//! and every decision is still written with its fact, both or neither.
//!
//! A write keeps only the last change of each hash field and sorted-set
//! member and sums counters, so the script makes one call per key (a
//! `HSET` of every field of a hash, one `ZREM` of every member), not one
//! per message; the facts of a write are feed entries of up to
//! `FACTS_PER_ENTRY` facts each (so a page of the feed never decodes a
//! huge write's facts whole).

use std::collections::BTreeMap;

use ::redis::{Cmd, Script};

/// Applies a planned write if nothing it read has changed; answers
/// `{1, first cursor}` or `{0}` on a conflict.
///
/// ARGV, in order: checks (count of keys; per key: key, count, the
/// fields, then per field: mode `=` (equals value) or `!` (absent), value:
/// the fields go to `HMGET` straight from ARGV); runs
/// of facts (count; per run: its count of facts, the run); hashes
/// (count; per key: key, fields to set, field value pairs, fields to
/// delete, fields); sorted sets (count; per key: key, members to add,
/// score member pairs, members to remove, members); counters (count;
/// key field delta triples); maxima, fields set only to a larger number
/// (count; per key: key, count, the fields, their values); other
/// commands, run last in order (count; per command: argument count,
/// arguments). A script stopped by an error keeps
/// what it wrote before, so nothing that can fail comes after a change:
/// a command's arguments are few enough for Lua's `unpack` (`command`).
/// KEYS: the feed stream and its cursor counter.
const SCRIPT: &str = r#"
local i = 1
local function take() local v = ARGV[i]; i = i + 1; return v end
local function number() return tonumber(take()) end

for _ = 1, number() do
  local key, n = take(), number()
  local fields, expected = i, i + n
  for s = 0, n - 1, 1000 do
    local part = redis.call('HMGET', key, unpack(ARGV, fields + s, fields + math.min(s + 999, n - 1)))
    for k = 1, #part do
      local at = expected + 2 * (s + k - 1)
      if ARGV[at] == '!' then
        if part[k] then return {0} end
      elseif part[k] ~= ARGV[at + 1] then
        return {0}
      end
    end
  end
  i = expected + 2 * n
end
-- The facts first: should their append fail, nothing else is written.
-- Each run is one entry, its id the cursor of its first fact.
local sizes, bodies, facts = {}, {}, 0
for r = 1, number() do
  sizes[r], bodies[r] = number(), take()
  facts = facts + sizes[r]
end
local first = 0
if facts > 0 then
  first = redis.call('INCRBY', KEYS[2], facts) - facts + 1
  local cursor = first
  for r = 1, #sizes do
    redis.call('XADD', KEYS[1], cursor .. '-0', 'f', bodies[r], 'n', sizes[r])
    cursor = cursor + sizes[r]
  end
end
-- Calls `command key` with the next n arguments, straight from ARGV, in
-- slices Lua can unpack (an even size: pairs stay whole).
local function each_slice(command, key, n)
  local last = i + n - 1
  for s = i, last, 1000 do
    redis.call(command, key, unpack(ARGV, s, math.min(s + 999, last)))
  end
  i = last + 1
end
-- One key's changes: pairs to `put` (field value, score member), then
-- members to `remove`.
local function change(put, remove)
  local key = take()
  each_slice(put, key, 2 * number())
  each_slice(remove, key, number())
end
for _ = 1, number() do change('HSET', 'HDEL') end
for _ = 1, number() do change('ZADD', 'ZREM') end
for _ = 1, number() do
  redis.call('HINCRBY', take(), take(), take())
end
for _ = 1, number() do
  local key, n = take(), number()
  local fields, values = i, i + n
  for s = 0, n - 1, 1000 do
    local was = redis.call('HMGET', key, unpack(ARGV, fields + s, fields + math.min(s + 999, n - 1)))
    local larger = {}
    for k = 1, #was do
      local value = ARGV[values + s + k - 1]
      if tonumber(value) > (tonumber(was[k]) or -1) then
        larger[#larger + 1] = ARGV[fields + s + k - 1]
        larger[#larger + 1] = value
      end
    end
    if #larger > 0 then redis.call('HSET', key, unpack(larger)) end
  end
  i = values + n
end
for _ = 1, number() do
  local argc = number()
  redis.call(unpack(ARGV, i, i + argc - 1))
  i = i + argc
end
return {1, first}
"#;

/// Where a write's script arguments go, in order.
pub(super) trait Args {
    fn arg(&mut self, arg: &[u8]);

    fn count(&mut self, n: usize) {
        self.arg(itoa::Buffer::new().format(n).as_bytes());
    }
}

impl Args for Cmd {
    fn arg(&mut self, arg: &[u8]) {
        Cmd::arg(self, arg);
    }
}

/// One key's field (or member) changes in the order planned: appended,
/// and settled once, when the arguments are written (sorted by field, one
/// change per field), which costs less than keeping them sorted as they
/// come (a write plans a few per message).
#[derive(Debug)]
struct Fields<V>(Vec<(Bytes, V)>);

impl<V> Default for Fields<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

/// Which of a field's changes stands.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stands {
    First,
    Last,
}

impl<V> Fields<V> {
    fn push(&mut self, field: &[u8], value: V) {
        self.0.push((field.to_vec(), value));
    }

    /// One change per field, in field order: the first or the last planned.
    fn settled(&self, stands: Stands) -> Vec<(&[u8], &V)> {
        let mut planned: Vec<&(Bytes, V)> = self.0.iter().collect();
        // Stable: a field's changes stay in the order planned.
        planned.sort_by(|a, b| a.0.cmp(&b.0));
        let mut settled: Vec<(&[u8], &V)> = Vec::with_capacity(planned.len());
        for (field, value) in planned {
            match settled.last_mut() {
                Some(last) if last.0 == field.as_slice() => {
                    if stands == Stands::Last {
                        last.1 = value;
                    }
                }
                _ => settled.push((field, value)),
            }
        }
        settled
    }
}

/// The arguments of the changes to each key of `keys`: per key, the pairs
/// `pair` writes of each member set (in the script's order) and the
/// members removed.
fn changes<V>(
    args: &mut impl Args,
    keys: &BTreeMap<String, Fields<Option<V>>>,
    pair: impl Fn(&mut dyn FnMut(&[u8]), &[u8], &V),
) {
    args.count(keys.len());
    for (key, members) in keys {
        let members = members.settled(Stands::Last);
        args.arg(key.as_bytes());
        let set = members.iter().filter(|(_, v)| v.is_some()).count();
        args.count(set);
        for &(member, value) in &members {
            if let Some(v) = value {
                pair(&mut |a| args.arg(a), member, v);
            }
        }
        args.count(members.len() - set);
        for &(member, value) in &members {
            if value.is_none() {
                args.arg(member);
            }
        }
    }
}

/// The arguments of per-key field values the script reads with `HMGET`
/// straight from ARGV: per key, its fields, then what `value` writes of
/// each field's value, in the same order.
fn fields_then_values<'t, V: 't>(
    args: &mut impl Args,
    keys: impl ExactSizeIterator<Item = (&'t String, Vec<(&'t [u8], &'t V)>)>,
    value: impl Fn(&mut dyn FnMut(&[u8]), &V),
) {
    args.count(keys.len());
    for (key, fields) in keys {
        args.arg(key.as_bytes());
        args.count(fields.len());
        for (field, _) in &fields {
            args.arg(field);
        }
        for (_, v) in fields {
            value(&mut |a| args.arg(a), v);
        }
    }
}

/// The map of `key` in `maps`, made if new (the key is copied only then:
/// a write sets many fields of few keys).
fn of_key<'m, V: Default>(maps: &'m mut BTreeMap<String, V>, key: &str) -> &'m mut V {
    if !maps.contains_key(key) {
        maps.insert(key.to_owned(), V::default());
    }
    maps.get_mut(key).expect("just made")
}

/// The most facts in one feed entry.
pub(super) const FACTS_PER_ENTRY: usize = 4_096;

/// The most arguments of one `command`: Lua's `unpack` fails over about
/// 8,000 values, midway through the script.
pub(super) const MAX_COMMAND_ARGS: usize = 1_002;

pub(super) fn script() -> Script {
    Script::new(SCRIPT)
}

type Bytes = Vec<u8>;

/// What a write was planned on, and what it does.
#[derive(Debug, Default)]
pub(super) struct Txn {
    /// Per hash, per field: the value read (`None`: absent).
    checks: BTreeMap<String, Fields<Option<Bytes>>>,
    /// Per hash, per field: its last value (`None`: deleted).
    hashes: BTreeMap<String, Fields<Option<Bytes>>>,
    /// Per sorted set, per member: its last score (`None`: removed).
    zsets: BTreeMap<String, Fields<Option<u64>>>,
    /// Per hash, per field: what it is incremented by.
    counters: BTreeMap<String, BTreeMap<String, i64>>,
    /// Per hash, per field: the number it is set to unless it holds a
    /// larger one.
    maxima: BTreeMap<String, BTreeMap<Bytes, u64>>,
    commands: Vec<Vec<Bytes>>,
    /// This write's facts: encoded runs, each with how many it holds.
    facts: Vec<(Bytes, usize)>,
}

impl Txn {
    /// The plan read `field` of hash `key` as `value` (`None`: absent);
    /// the first read of a field is the one checked.
    pub fn read(&mut self, key: &str, field: &[u8], value: Option<&[u8]>) {
        of_key(&mut self.checks, key).push(field, value.map(<[u8]>::to_vec));
    }

    pub fn hset(&mut self, key: &str, field: &[u8], value: &[u8]) {
        self.hash(key, field, Some(value.to_vec()));
    }

    pub fn hdel(&mut self, key: &str, field: &[u8]) {
        self.hash(key, field, None);
    }

    fn hash(&mut self, key: &str, field: &[u8], value: Option<Bytes>) {
        of_key(&mut self.hashes, key).push(field, value);
    }

    pub fn hincr(&mut self, key: &str, field: &str, by: i64) {
        *of_key(of_key(&mut self.counters, key), field) += by;
    }

    pub fn zadd(&mut self, key: &str, score: u64, member: &[u8]) {
        self.zset(key, member, Some(score));
    }

    pub fn zrem(&mut self, key: &str, member: &[u8]) {
        self.zset(key, member, None);
    }

    fn zset(&mut self, key: &str, member: &[u8], score: Option<u64>) {
        of_key(&mut self.zsets, key).push(member, score);
    }

    /// A Redis command, run after the hash, sorted-set, counter and maxima
    /// changes.
    /// At most `MAX_COMMAND_ARGS` arguments (the script unpacks them).
    pub fn command(&mut self, args: &[&[u8]]) {
        assert!(
            args.len() <= MAX_COMMAND_ARGS,
            "a script command of {} arguments",
            args.len()
        );
        self.commands
            .push(args.iter().map(|a| a.to_vec()).collect());
    }

    /// `command key member…` (`SADD`, `SREM`) over every one of
    /// `members`, in as many commands as the argument bound needs.
    pub fn over_members<M: AsRef<[u8]>>(&mut self, command: &[u8], key: &str, members: &[M]) {
        for slice in members.chunks(MAX_COMMAND_ARGS - 2) {
            let mut args: Vec<&[u8]> = vec![command, key.as_bytes()];
            args.extend(slice.iter().map(AsRef::as_ref));
            self.command(&args);
        }
    }

    /// Sets `field` to `value` unless it holds a larger number already.
    pub fn hmax(&mut self, key: &str, field: &[u8], value: u64) {
        let max = of_key(&mut self.maxima, key)
            .entry(field.to_vec())
            .or_default();
        *max = (*max).max(value);
    }

    /// Removes `key` at once; Redis frees a large one's memory in the
    /// background (`UNLINK`: `DEL` of a hash of 1,000,000 fields held
    /// Redis 385 ms).
    pub fn del(&mut self, key: &str) {
        self.command(&[b"UNLINK", key.as_bytes()]);
    }

    /// This write's facts, in order (encoded without their cursors, in
    /// runs of up to `FACTS_PER_ENTRY`).
    pub fn facts(&mut self, facts: &[domain::Fact]) {
        self.facts = facts
            .chunks(FACTS_PER_ENTRY)
            .map(|run| (crate::codec::encode_facts(run), run.len()))
            .collect();
    }

    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
            && self.hashes.is_empty()
            && self.zsets.is_empty()
            && self.counters.is_empty()
            && self.maxima.is_empty()
            && self.commands.is_empty()
            && self.facts.is_empty()
    }

    /// Writes the script's arguments to `args`.
    pub fn write_args(&self, args: &mut impl Args) {
        let checks = self
            .checks
            .iter()
            .map(|(key, fields)| (key, fields.settled(Stands::First)));
        fields_then_values(args, checks, |arg, value| match value {
            Some(v) => {
                arg(b"=");
                arg(v);
            }
            None => {
                arg(b"!");
                arg(b"");
            }
        });
        args.count(self.facts.len());
        for (run, n) in &self.facts {
            args.count(*n);
            args.arg(run);
        }
        changes(args, &self.hashes, |arg, field, value| {
            arg(field);
            arg(value);
        });
        changes(args, &self.zsets, |arg, member, score| {
            arg(itoa::Buffer::new().format(*score).as_bytes());
            arg(member);
        });
        let counters: Vec<(&String, &String, i64)> = self
            .counters
            .iter()
            .flat_map(|(key, fields)| fields.iter().map(move |(field, &by)| (key, field, by)))
            .filter(|&(_, _, by)| by != 0)
            .collect();
        args.count(counters.len());
        for (key, field, by) in counters {
            args.arg(key.as_bytes());
            args.arg(field.as_bytes());
            args.arg(itoa::Buffer::new().format(by).as_bytes());
        }
        let maxima = self.maxima.iter().map(|(key, fields)| {
            let fields = fields.iter().map(|(f, max)| (f.as_slice(), max)).collect();
            (key, fields)
        });
        fields_then_values(args, maxima, |arg, max| {
            arg(itoa::Buffer::new().format(*max).as_bytes());
        });
        args.count(self.commands.len());
        for command in &self.commands {
            args.count(command.len());
            for a in command {
                args.arg(a);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The script arguments of `txn`.
    fn args(txn: &Txn) -> Vec<Bytes> {
        struct Collected(Vec<Bytes>);
        impl Args for Collected {
            fn arg(&mut self, arg: &[u8]) {
                self.0.push(arg.to_vec());
            }
        }
        let mut collected = Collected(Vec::new());
        txn.write_args(&mut collected);
        collected.0
    }

    fn strs(args: &[&str]) -> Vec<Bytes> {
        args.iter().map(|a| a.as_bytes().to_vec()).collect()
    }

    #[test]
    fn a_fields_last_change_is_written_and_its_first_read_checked() {
        let mut txn = Txn::default();
        txn.read("h", b"b", Some(b"1"));
        txn.read("h", b"a", None);
        txn.read("h", b"b", Some(b"2"));
        txn.hset("h", b"y", b"old");
        txn.hset("h", b"x", b"1");
        txn.hdel("h", b"y");
        txn.hset("h", b"z", b"gone");
        txn.hdel("h", b"z");
        txn.hset("h", b"z", b"back");
        txn.zadd("z", 5, b"m");
        txn.zrem("z", b"m");
        assert_eq!(
            args(&txn),
            strs(&[
                // checks: key h, fields a and b, then a absent, b as first read
                "1", "h", "2", "a", "b", "!", "", "=", "1", //
                // no facts
                "0", //
                // hashes: x and z set, y deleted
                "1", "h", "2", "x", "1", "z", "back", "1", "y", //
                // sorted sets: m removed
                "1", "z", "0", "1", "m", //
                // no counters, maxima or commands
                "0", "0", "0",
            ])
        );
    }
}
