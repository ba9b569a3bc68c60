//! The in-memory view of what is durable: per campaign, who its participants
//! are, each message's status, which are due and which are leased. Rebuilt
//! from disk at open; changed only after a commit is durable (claims and
//! releases, which are not persisted, excepted).

mod due;
mod pages;
mod texts;

use std::{
    collections::{BTreeSet, HashMap},
    hash::{BuildHasher, Hasher},
};

use foldhash::fast::RandomState;
use hashbrown::HashTable;

use super::Counts;
use domain::{CampaignRecord, Engagement, FELL_BACK, Millis, Status};
use due::Due;
use pages::Pages;
use texts::{TextRef, Texts};

/// One participant's message as the store's callers see it. Its address
/// is in its participant record, not in memory: what needs it (a
/// suppression, an audience) reads the record.
#[derive(Debug, Clone, Copy)]
pub struct Slot<'a> {
    pub customer: &'a str,
    /// The participant has no address (it falls back at once).
    pub no_address: bool,
    pub status: Status,
    pub attempts: u32,
    pub due: Millis,
    pub at: Millis,
    /// `Engagement::bit`s of what the recipient did.
    pub engaged: u8,
}

/// One participant's message as the index keeps it (32 bytes; its
/// customer is in the campaign's [`Texts`]): the index holds one per
/// participant, so its size is most of the store's memory per participant.
#[derive(Debug, Clone, Copy)]
struct Entry {
    customer: TextRef,
    due: Millis,
    at: Millis,
    attempts: u32,
    /// [`CampaignIndex::address_hash`] of the address, to find the
    /// messages sent to an address without a read of every record.
    address_hash: u32,
    status: Status,
    stage: Stage,
    engaged: u8,
    no_address: bool,
}

/// How a new participant joins its campaign (`CampaignIndex::takes`).
#[derive(Debug, Clone, Copy)]
pub enum Joining<'a> {
    /// Visible at once (a fallback, an audience copy): never kept out by a
    /// customer only staged, whose staged entries it supersedes.
    AtOnce,
    /// Staged by an upload whose participants so far are these numbers
    /// (ascending, as they are allocated). Kept out by its own earlier
    /// entry of the customer, not by another upload's: that is a twin, and
    /// the twin published first is the one kept.
    Staged(&'a [u32]),
}

/// Where a participant is on its way in: only `Live` ones are seen by
/// counts, claims and queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// No participant has this number (yet, or its upload was dropped).
    Empty,
    /// Its upload is being read.
    Staged,
    /// Staged, and then the same customer was added at once (a fallback)
    /// or published by a twin of another upload: dropped when its upload
    /// is published.
    Superseded,
    /// Its upload's publish is being committed.
    Publishing,
    Live,
}

impl Entry {
    /// No participant (yet): not live.
    const EMPTY: Self = Self {
        customer: TextRef::NONE,
        due: 0,
        at: 0,
        attempts: 0,
        address_hash: 0,
        status: Status::Pending,
        stage: Stage::Empty,
        engaged: 0,
        no_address: true,
    };

    fn is_live(&self) -> bool {
        self.stage == Stage::Live
    }
}

/// Leased messages by number, and by expiry so that expiring them costs
/// the expired ones, not a scan of every message in flight.
#[derive(Debug, Default)]
struct Leases {
    until: HashMap<u32, Millis>,
    by_expiry: BTreeSet<(Millis, u32)>,
}

impl Leases {
    fn insert(&mut self, n: u32, until: Millis) {
        if let Some(old) = self.until.insert(n, until) {
            self.by_expiry.remove(&(old, n));
        }
        self.by_expiry.insert((until, n));
    }

    fn remove(&mut self, n: &u32) -> Option<Millis> {
        let until = self.until.remove(n)?;
        self.by_expiry.remove(&(until, *n));
        Some(until)
    }

    /// Messages whose lease ended at or before `now`.
    fn expired(&self, now: Millis) -> Vec<u32> {
        self.by_expiry
            .range(..=(now, u32::MAX))
            .map(|&(_, n)| n)
            .collect()
    }

    fn is_empty(&self) -> bool {
        self.until.is_empty()
    }

    fn len(&self) -> usize {
        self.until.len()
    }
}

#[derive(Debug)]
pub struct CampaignIndex {
    pub record: CampaignRecord,
    /// Participant numbers by customer (hashed from the entries' texts):
    /// one a customer, but for twins staged by uploads read at once, and
    /// those a participant added at once superseded until they are dropped.
    by_customer: HashTable<u32>,
    hasher: RandomState,
    /// Indexed by participant number. An entry exists once durable (and,
    /// while its upload is staged, is not live).
    entries: Pages<Entry>,
    texts: Texts,
    /// Slots that are live.
    live: u64,
    /// Slots of uploads staged, not yet published or dropped.
    staged: u64,
    /// Participant numbers allocated, durable or being committed.
    pub allocated: u32,
    due: Due,
    leased: Leases,
    counts: [u64; Status::ALL.len()],
    /// Messages with each flag bit set (engagements, `FELL_BACK`).
    flagged: [u64; 8],
}

impl CampaignIndex {
    pub fn new(record: CampaignRecord) -> Self {
        Self {
            record,
            by_customer: HashTable::new(),
            hasher: RandomState::default(),
            entries: Pages::default(),
            texts: Texts::default(),
            live: 0,
            staged: 0,
            allocated: 0,
            due: Due::default(),
            leased: Leases::default(),
            counts: [0; Status::ALL.len()],
            flagged: [0; 8],
        }
    }

    fn view(&self, entry: &Entry) -> Slot<'_> {
        Slot {
            customer: self.texts.get(entry.customer),
            no_address: entry.no_address,
            status: entry.status,
            attempts: entry.attempts,
            due: entry.due,
            at: entry.at,
            engaged: entry.engaged,
        }
    }

    fn live_entry_mut(&mut self, participant: u32) -> Option<&mut Entry> {
        self.entries
            .get_mut(participant as usize)
            .filter(|e| e.is_live())
    }

    /// The numbers of `customer`'s entries, in any stage.
    fn numbers_of<'a>(&'a self, customer: &'a str) -> impl Iterator<Item = u32> + 'a {
        let hash = self.hasher.hash_one(customer);
        self.by_customer
            .iter_hash(hash)
            .copied()
            .filter(move |&n| customer_of(&self.entries, &self.texts, n) == customer)
    }

    fn insert_customer(&mut self, customer: &str, participant: u32) {
        let hash = self.hasher.hash_one(customer);
        if self.by_customer.find(hash, |&n| n == participant).is_some() {
            return;
        }
        let (entries, texts, hasher) = (&self.entries, &self.texts, &self.hasher);
        self.by_customer.insert_unique(hash, participant, |&n| {
            hasher.hash_one(customer_of(entries, texts, n))
        });
    }

    /// Marks `customer`'s staged entries superseded: each is dropped when
    /// its upload is published.
    fn supersede_staged(&mut self, customer: &str) {
        let hash = self.hasher.hash_one(customer);
        supersede(
            &self.by_customer,
            &mut self.entries,
            &self.texts,
            (hash, customer),
            None,
        );
    }

    /// Forgets `customer` if it names `participant`.
    fn remove_customer(&mut self, customer: &str, participant: u32) {
        let hash = self.hasher.hash_one(customer);
        if let Ok(e) = self.by_customer.find_entry(hash, |&n| n == participant) {
            e.remove();
        }
    }

    /// A hash of `address` as its messages are looked up: in ASCII
    /// lowercase, as addresses compare.
    fn address_hash(&self, address: &str) -> u32 {
        let mut hasher = self.hasher.build_hasher();
        let mut lower = [0u8; 64];
        for chunk in address.as_bytes().chunks(lower.len()) {
            let lower = &mut lower[..chunk.len()];
            lower.copy_from_slice(chunk);
            lower.make_ascii_lowercase();
            hasher.write(lower);
        }
        hasher.finish() as u32
    }

    /// Live participants whose address may be `address`, newest first:
    /// those with its hash, which the caller checks against their records.
    pub fn maybe_sent_to(&self, address: &str) -> impl Iterator<Item = u32> {
        let hash = self.address_hash(address);
        self.entries
            .enumerate()
            .rev()
            .filter(move |(_, e)| e.is_live() && e.address_hash == hash)
            .map(|(n, _)| n as u32)
    }

    /// Sets a message's flags as recorded durably.
    pub fn set_flags(&mut self, participant: u32, flags: u8) {
        let Some(entry) = self
            .entries
            .get_mut(participant as usize)
            .filter(|e| e.is_live())
        else {
            return;
        };
        for (bit, count) in self.flagged.iter_mut().enumerate() {
            let mask = 1 << bit;
            match (entry.engaged & mask != 0, flags & mask != 0) {
                (false, true) => *count += 1,
                (true, false) => *count -= 1,
                _ => {}
            }
        }
        entry.engaged = flags;
    }

    /// A live participant's message.
    pub fn slot(&self, participant: u32) -> Option<Slot<'_>> {
        let entry = self
            .entries
            .get(participant as usize)
            .filter(|e| e.is_live())?;
        Some(self.view(entry))
    }

    /// Whether nothing is left to send, in flight or being uploaded.
    pub fn may_finish(&self) -> bool {
        rules::may_finish(
            self.counts[Status::Pending.index()],
            self.leased.len() as u64,
            self.staged,
        )
    }

    /// Marks a staged participant as being published, and its twins
    /// staged by other uploads superseded; returns its slot, or `None` when
    /// it is not staged or its customer is live already (then it is
    /// dropped: a duplicate).
    pub fn begin_publish(&mut self, participant: u32) -> Option<Slot<'_>> {
        let entry = *self.entries.get(participant as usize)?;
        if entry.stage != Stage::Staged {
            return None;
        }
        let customer = self.texts.get(entry.customer);
        let hash = self.hasher.hash_one(customer);
        let published_twin = self.by_customer.iter_hash(hash).any(|&n| {
            self.entries.get(n as usize).is_some_and(|e| {
                matches!(e.stage, Stage::Live | Stage::Publishing)
                    && self.texts.get(e.customer) == customer
            })
        });
        if published_twin {
            return None;
        }
        supersede(
            &self.by_customer,
            &mut self.entries,
            &self.texts,
            (hash, customer),
            Some(participant),
        );
        let entry = self.entries.get_mut(participant as usize)?;
        entry.stage = Stage::Publishing;
        let entry = *entry;
        Some(self.view(&entry))
    }

    /// Whether `customer` is taken for a new participant joining as
    /// `joining` says; one joining at once supersedes the customer's staged
    /// entries.
    pub fn takes(&mut self, customer: &str, joining: Joining<'_>) -> bool {
        let mut staged = false;
        for n in self.numbers_of(customer) {
            let Some(entry) = self.entries.get(n as usize) else {
                continue;
            };
            match (entry.stage, joining) {
                (Stage::Live | Stage::Publishing, _) => return true,
                (Stage::Staged, Joining::Staged(own)) if own.binary_search(&n).is_ok() => {
                    return true;
                }
                (Stage::Staged, _) => staged = true,
                (Stage::Superseded | Stage::Empty, _) => {}
            }
        }
        if staged && matches!(joining, Joining::AtOnce) {
            self.supersede_staged(customer);
        }
        false
    }

    /// Every participant number from `first` on, in order, with its slot
    /// if it is live (`None`: staged, superseded, or never used).
    pub fn slots_from(&self, first: u32) -> impl Iterator<Item = (u32, Option<Slot<'_>>)> {
        // Participant numbers are u32, so the enumeration fits.
        self.entries
            .enumerate_from(first as usize)
            .map(|(n, e)| (n as u32, e.is_live().then(|| self.view(e))))
    }

    /// Places a durable participant at its number, live (`at` its time) or
    /// staged; numbers skipped (participants of dropped uploads) stay
    /// empty and never live. One placed live supersedes a staged twin
    /// (`takes` does this for one admitted after the twin's commit; this,
    /// for one admitted in the same commit).
    pub fn place(&mut self, participant: u32, customer: &str, address: &str, at: Option<Millis>) {
        if at.is_some() {
            self.takes(customer, Joining::AtOnce);
        }
        let n = participant as usize;
        self.entries.grow_to(n + 1, || Entry::EMPTY);
        let text = self.texts.push(customer);
        let address_hash = self.address_hash(address);
        if let Some(entry) = self.entries.get_mut(n) {
            self.texts.forget(entry.customer);
            *entry = Entry {
                customer: text,
                address_hash,
                no_address: address.is_empty(),
                stage: Stage::Staged,
                ..Entry::EMPTY
            };
        }
        self.insert_customer(customer, participant);
        self.allocated = self.allocated.max(participant + 1);
        self.staged += 1;
        if let Some(at) = at {
            self.publish(participant, at);
        }
    }

    /// Makes a staged participant live, pending and due, at `at`.
    pub fn publish(&mut self, participant: u32, at: Millis) {
        let Some(entry) = self.entries.get_mut(participant as usize) else {
            return;
        };
        if !matches!(entry.stage, Stage::Staged | Stage::Publishing) {
            return;
        }
        entry.stage = Stage::Live;
        entry.at = at;
        self.live += 1;
        self.staged -= 1;
        self.counts[Status::Pending.index()] += 1;
        self.due.insert(0, participant);
    }

    /// Forgets a staged participant whose upload was dropped: its customer
    /// is free again and its number stays empty.
    pub fn drop_staged(&mut self, participant: u32) {
        let Some(entry) = self.entries.get_mut(participant as usize) else {
            return;
        };
        if !matches!(entry.stage, Stage::Staged | Stage::Superseded) {
            return;
        }
        let text = std::mem::replace(entry, Entry::EMPTY).customer;
        self.staged -= 1;
        let customer = self.texts.get(text).to_owned();
        self.remove_customer(&customer, participant);
        self.texts.forget(text);
        if self.texts.is_wasteful() {
            self.repack_texts();
        }
    }

    /// Copies the texts still referred to into new chunks, dropping those
    /// of dropped uploads.
    fn repack_texts(&mut self) {
        let mut texts = Texts::default();
        for entry in self.entries.iter_mut() {
            if entry.stage != Stage::Empty {
                entry.customer = texts.push(self.texts.get(entry.customer));
            }
        }
        self.texts = texts;
    }

    /// Sets a message's state as recorded durably.
    pub fn set(
        &mut self,
        participant: u32,
        status: Status,
        attempts: u32,
        due: Millis,
        at: Millis,
    ) {
        let Some(entry) = self
            .entries
            .get_mut(participant as usize)
            .filter(|e| e.is_live())
        else {
            return;
        };
        if entry.status == Status::Pending {
            self.due.remove(entry.due, participant);
        }
        self.leased.remove(&participant);
        self.counts[entry.status.index()] -= 1;
        self.counts[status.index()] += 1;
        entry.status = status;
        entry.attempts = attempts;
        entry.due = due;
        entry.at = at;
        if status == Status::Pending {
            self.due.insert(due, participant);
        }
    }

    /// Leases up to `max` due messages; returns (participant, attempts).
    pub fn claim(&mut self, now: Millis, max: usize, lease_until: Millis) -> Vec<(u32, u32)> {
        self.expire_leases(now);
        let mut out = Vec::new();
        while out.len() < max {
            let Some(n) = self.due.pop_due(now) else {
                break;
            };
            self.leased.insert(n, lease_until);
            let attempts = self.entries.get(n as usize).map_or(0, |e| e.attempts);
            out.push((n, attempts));
        }
        out
    }

    fn expire_leases(&mut self, now: Millis) {
        if self.leased.is_empty() {
            return;
        }
        for n in self.leased.expired(now) {
            if let Some(until) = self.leased.until.get(&n).copied() {
                self.give_back(n, until, None);
            }
        }
    }

    /// When the earliest unleased pending message is due.
    pub fn next_due(&mut self) -> Option<Millis> {
        self.due.first().map(|(due, _)| due)
    }

    /// Makes a message leased until `lease_until` (by that lease, not a
    /// later one) due again, at `due` or when it was due, if still pending.
    pub fn give_back(&mut self, participant: u32, lease_until: Millis, due: Option<Millis>) {
        if self.leased.until.get(&participant) != Some(&lease_until) {
            return;
        }
        self.leased.remove(&participant);
        if let Some(entry) = self.live_entry_mut(participant)
            && entry.status == Status::Pending
        {
            let due = due.unwrap_or(entry.due);
            entry.due = due;
            self.due.insert(due, participant);
        }
    }

    /// Messages per status, and per outcome a flag marks: every outcome
    /// the audience query knows (`fallback` adds the messages that fell
    /// back after they ended undelivered to those that never had an address).
    pub fn counts(&self) -> Counts {
        let mut by_status: std::collections::BTreeMap<String, u64> = Status::ALL
            .iter()
            .map(|s| (s.as_str().to_owned(), self.counts[s.index()]))
            .collect();
        let flag = |bit: u8| self.flagged[bit.trailing_zeros() as usize];
        for e in Engagement::ALL {
            by_status.insert(e.as_str().to_owned(), flag(e.bit()));
        }
        *by_status
            .entry(Status::Fallback.as_str().to_owned())
            .or_default() += flag(FELL_BACK);
        Counts {
            participants: self.live,
            staged: self.staged,
            numbered: u64::from(self.allocated),
            by_status,
            in_flight: self.leased.len() as u64,
        }
    }
}

/// Marks the staged entries of `customer` (with its hash), but `kept`,
/// superseded: each is dropped when its upload is published.
fn supersede(
    by_customer: &HashTable<u32>,
    entries: &mut Pages<Entry>,
    texts: &Texts,
    (hash, customer): (u64, &str),
    kept: Option<u32>,
) {
    for &n in by_customer.iter_hash(hash) {
        if Some(n) == kept {
            continue;
        }
        if let Some(entry) = entries.get_mut(n as usize)
            && entry.stage == Stage::Staged
            && texts.get(entry.customer) == customer
        {
            entry.stage = Stage::Superseded;
        }
    }
}

/// The customer of participant `n` (empty for a number with none).
fn customer_of<'a>(entries: &Pages<Entry>, texts: &'a Texts, n: u32) -> &'a str {
    entries
        .get(n as usize)
        .map_or("", |e| texts.get(e.customer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{CampaignDecl, CampaignState, ChannelKind};

    fn index() -> CampaignIndex {
        let decl = CampaignDecl::new(ChannelKind::Email, "t");
        let mut idx = CampaignIndex::new(CampaignRecord {
            id: "c".into(),
            seq: 1,
            state: CampaignState::Running,
            decl,
        });
        for (n, c) in ["a", "b", "c"].into_iter().enumerate() {
            idx.place(n as u32, c, &format!("{c}@x"), Some(0));
        }
        idx
    }

    #[test]
    fn an_entry_stays_32_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 32);
    }

    #[test]
    fn a_customer_added_at_once_supersedes_its_staged_twin_of_the_same_commit() {
        // A fallback and an upload's stage of one customer in one group
        // commit: the index learns of both only when the commit is durable,
        // the staged one first.
        let mut idx = index();
        idx.place(3, "d", "d@x", None);
        idx.place(4, "d", "d@x", Some(7));
        assert!(
            idx.begin_publish(3).is_none(),
            "the staged twin must not go live beside the one added at once"
        );
        idx.drop_staged(3);
        assert!(
            idx.takes("d", Joining::Staged(&[])),
            "the live one keeps the customer"
        );
        assert_eq!(
            idx.slots_from(0)
                .filter(|(_, s)| s.is_some_and(|s| s.customer == "d"))
                .count(),
            1
        );
    }

    #[test]
    fn twins_of_uploads_read_at_once_are_both_staged_and_the_first_published_is_kept() {
        let mut idx = index();
        assert!(!idx.takes("d", Joining::Staged(&[])));
        idx.place(3, "d", "d@x", None);
        assert!(
            idx.takes("d", Joining::Staged(&[3])),
            "twice in one upload: a duplicate"
        );
        assert!(
            !idx.takes("d", Joining::Staged(&[])),
            "another upload stages a twin"
        );
        idx.place(4, "d", "d@x", None);
        assert!(idx.takes("d", Joining::Staged(&[4])));

        assert!(idx.begin_publish(4).is_some(), "the first published wins");
        idx.publish(4, 9);
        assert!(
            idx.begin_publish(3).is_none(),
            "the other twin is a duplicate once one is live"
        );
        idx.drop_staged(3);
        assert_eq!(
            idx.slots_from(0)
                .filter(|(_, s)| s.is_some_and(|s| s.customer == "d"))
                .count(),
            1
        );
        assert_eq!(idx.counts().staged, 0);
        assert!(idx.takes("d", Joining::Staged(&[])));
    }

    #[test]
    fn a_twin_dropped_with_its_upload_leaves_the_other_to_be_published() {
        let mut idx = index();
        idx.place(3, "d", "d@x", None);
        idx.place(4, "d", "d@x", None);
        idx.drop_staged(3);
        assert!(idx.begin_publish(4).is_some());
        idx.publish(4, 9);
        assert!(idx.takes("d", Joining::Staged(&[])));
        assert_eq!(
            idx.slots_from(0)
                .filter(|(_, s)| s.is_some_and(|s| s.customer == "d"))
                .count(),
            1
        );
    }

    #[test]
    fn claims_respect_due_time_and_leases() {
        let mut idx = index();
        idx.set(1, Status::Pending, 1, 500, 0);
        let first = idx.claim(100, 10, 200);
        assert_eq!(first, vec![(0, 0), (2, 0)], "the retry due at 500 waits");
        assert!(
            idx.claim(150, 10, 250).is_empty(),
            "leased messages are not claimed twice"
        );
        let after_lease = idx.claim(200, 10, 300);
        assert_eq!(
            after_lease,
            vec![(0, 0), (2, 0)],
            "an expired lease makes them claimable"
        );
        idx.set(0, Status::Submitted, 1, 0, 210);
        idx.give_back(2, 200, None);
        assert!(
            idx.claim(250, 10, 350).is_empty(),
            "the lease that ran out gives back nothing of the one after it"
        );
        idx.give_back(2, 300, None);
        assert_eq!(
            idx.claim(600, 10, 900),
            vec![(2, 0), (1, 1)],
            "oldest due first"
        );
        let counts = idx.counts();
        assert_eq!(counts.by_status["submitted"], 1);
        assert_eq!(counts.by_status["pending"], 2);
        assert_eq!(counts.in_flight, 2);
    }
}
