//! The in-memory view of what is durable: per campaign, who its participants
//! are, each message's status, which are due and which are leased. Rebuilt
//! from disk at open; changed only after a commit is durable (claims and
//! releases, which are not persisted, excepted).

use std::collections::{BTreeSet, HashMap};

use foldhash::fast::RandomState;

use super::Counts;
use domain::{CampaignRecord, Engagement, FELL_BACK, Millis, Status};

/// One participant's message.
#[derive(Debug, Clone)]
pub struct Slot {
    pub customer: Box<str>,
    pub address: Box<str>,
    pub status: Status,
    pub attempts: u32,
    pub due: Millis,
    pub at: Millis,
    /// `Engagement::bit`s of what the recipient did.
    pub engaged: u8,
    pub stage: Stage,
}

/// Where a participant is on its way in: only `Live` ones are seen by
/// counts, claims and queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// No participant has this number (yet, or its upload was dropped).
    Empty,
    /// Its upload is being read.
    Staged,
    /// Staged, and then the same customer was added at once (a fallback):
    /// dropped when its upload is published.
    Superseded,
    /// Its upload's publish is being committed.
    Publishing,
    Live,
}

impl Slot {
    pub fn is_live(&self) -> bool {
        self.stage == Stage::Live
    }
}

impl Slot {
    /// No participant (yet): not live.
    fn empty() -> Self {
        Self {
            customer: "".into(),
            address: "".into(),
            status: Status::Pending,
            attempts: 0,
            due: 0,
            at: 0,
            engaged: 0,
            stage: Stage::Empty,
        }
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
    pub by_customer: HashMap<Box<str>, u32, RandomState>,
    /// Indexed by participant number. A slot exists once durable (and,
    /// while its upload is staged, is not `live`).
    slots: Vec<Slot>,
    /// Slots that are live.
    live: u64,
    /// Slots of uploads staged, not yet published or dropped.
    staged: u64,
    /// Participant numbers allocated, durable or being committed.
    pub allocated: u32,
    due: BTreeSet<(Millis, u32)>,
    leased: Leases,
    counts: [u64; Status::ALL.len()],
    /// Messages with each flag bit set (engagements, `FELL_BACK`).
    flagged: [u64; 8],
}

impl CampaignIndex {
    pub fn new(record: CampaignRecord) -> Self {
        Self {
            record,
            by_customer: HashMap::default(),
            slots: Vec::new(),
            live: 0,
            staged: 0,
            allocated: 0,
            due: BTreeSet::new(),
            leased: Leases::default(),
            counts: [0; Status::ALL.len()],
            flagged: [0; 8],
        }
    }

    /// Sets a message's flags as recorded durably.
    pub fn set_flags(&mut self, participant: u32, flags: u8) {
        let Some(slot) = self
            .slots
            .get_mut(participant as usize)
            .filter(|s| s.is_live())
        else {
            return;
        };
        for (bit, count) in self.flagged.iter_mut().enumerate() {
            let mask = 1 << bit;
            match (slot.engaged & mask != 0, flags & mask != 0) {
                (false, true) => *count += 1,
                (true, false) => *count -= 1,
                _ => {}
            }
        }
        slot.engaged = flags;
    }

    /// A live participant's message.
    pub fn slot(&self, participant: u32) -> Option<&Slot> {
        self.slots.get(participant as usize).filter(|s| s.is_live())
    }

    /// Whether nothing is left to send, in flight or being uploaded.
    pub fn may_finish(&self) -> bool {
        rules::may_finish(
            self.counts[Status::Pending.index()],
            self.leased.len() as u64,
            self.staged,
        )
    }

    /// Marks a staged participant as being published; returns its slot,
    /// or `None` when it is not staged (then a `Superseded` one is dropped).
    pub fn begin_publish(&mut self, participant: u32) -> Option<&Slot> {
        let slot = self.slots.get_mut(participant as usize)?;
        if slot.stage != Stage::Staged {
            return None;
        }
        slot.stage = Stage::Publishing;
        Some(slot)
    }

    /// Whether `customer` is taken for a new participant, which is staged
    /// unless `at_once`. A customer only staged by an upload does not keep
    /// out one added at once: that staged participant is superseded.
    pub fn takes(&mut self, customer: &str, at_once: bool) -> bool {
        let Some(&n) = self.by_customer.get(customer) else {
            return false;
        };
        let Some(slot) = self.slots.get_mut(n as usize) else {
            return false;
        };
        match slot.stage {
            Stage::Live | Stage::Publishing => true,
            Stage::Staged | Stage::Superseded if at_once => {
                slot.stage = Stage::Superseded;
                false
            }
            Stage::Staged | Stage::Superseded => true,
            Stage::Empty => false,
        }
    }

    /// Every live participant with its number, in number order.
    pub fn live_slots(&self) -> impl DoubleEndedIterator<Item = (u32, &Slot)> {
        // Participant numbers are u32, so the enumeration fits.
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_live())
            .map(|(n, s)| (n as u32, s))
    }

    /// Places a durable participant at its number, live (`at` its time) or
    /// staged; numbers skipped (participants of dropped uploads) stay
    /// empty and never live.
    pub fn place(
        &mut self,
        participant: u32,
        customer: Box<str>,
        address: Box<str>,
        at: Option<Millis>,
    ) {
        let n = participant as usize;
        if self.slots.len() <= n {
            self.slots.resize_with(n + 1, Slot::empty);
        }
        self.by_customer.insert(customer.clone(), participant);
        self.slots[n] = Slot {
            customer,
            address,
            stage: Stage::Staged,
            ..Slot::empty()
        };
        self.allocated = self.allocated.max(participant + 1);
        self.staged += 1;
        if let Some(at) = at {
            self.publish(participant, at);
        }
    }

    /// Makes a staged participant live, pending and due, at `at`.
    pub fn publish(&mut self, participant: u32, at: Millis) {
        let Some(slot) = self.slots.get_mut(participant as usize) else {
            return;
        };
        if !matches!(slot.stage, Stage::Staged | Stage::Publishing) {
            return;
        }
        slot.stage = Stage::Live;
        slot.at = at;
        self.live += 1;
        self.staged -= 1;
        self.counts[Status::Pending.index()] += 1;
        self.due.insert((0, participant));
    }

    /// Forgets a staged participant whose upload was dropped: its customer
    /// is free again and its number stays empty.
    pub fn drop_staged(&mut self, participant: u32) {
        let Some(slot) = self.slots.get_mut(participant as usize) else {
            return;
        };
        if !matches!(slot.stage, Stage::Staged | Stage::Superseded) {
            return;
        }
        let customer = std::mem::replace(slot, Slot::empty()).customer;
        self.staged -= 1;
        if self.by_customer.get(&customer) == Some(&participant) {
            self.by_customer.remove(&customer);
        }
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
        let Some(slot) = self
            .slots
            .get_mut(participant as usize)
            .filter(|s| s.is_live())
        else {
            return;
        };
        if slot.status == Status::Pending {
            self.due.remove(&(slot.due, participant));
        }
        self.leased.remove(&participant);
        self.counts[slot.status.index()] -= 1;
        self.counts[status.index()] += 1;
        *slot = Slot {
            status,
            attempts,
            due,
            at,
            ..slot.clone()
        };
        if status == Status::Pending {
            self.due.insert((due, participant));
        }
    }

    /// Leases up to `max` due messages; returns (participant, attempts).
    pub fn claim(&mut self, now: Millis, max: usize, lease_until: Millis) -> Vec<(u32, u32)> {
        self.expire_leases(now);
        let mut out = Vec::new();
        while out.len() < max {
            let Some(&(due, n)) = self.due.first() else {
                break;
            };
            if due > now {
                break;
            }
            self.due.pop_first();
            self.leased.insert(n, lease_until);
            let attempts = self.slots.get(n as usize).map_or(0, |s| s.attempts);
            out.push((n, attempts));
        }
        out
    }

    fn expire_leases(&mut self, now: Millis) {
        if self.leased.is_empty() {
            return;
        }
        for n in self.leased.expired(now) {
            self.release(n);
        }
    }

    /// When the earliest unleased pending message is due.
    pub fn next_due(&self) -> Option<Millis> {
        self.due.first().map(|&(due, _)| due)
    }

    /// Makes a leased message due again at `due`.
    pub fn defer(&mut self, participant: u32, due: Millis) {
        if self.leased.remove(&participant).is_none() {
            return;
        }
        if let Some(slot) = self.slots.get_mut(participant as usize)
            && slot.status == Status::Pending
        {
            slot.due = due;
            self.due.insert((due, participant));
        }
    }

    /// Makes a leased, still pending message due again.
    pub fn release(&mut self, participant: u32) {
        if self.leased.remove(&participant).is_none() {
            return;
        }
        if let Some(slot) = self.slots.get(participant as usize)
            && slot.status == Status::Pending
        {
            self.due.insert((slot.due, participant));
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
            by_status,
            in_flight: self.leased.len() as u64,
        }
    }
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
            idx.place(n as u32, c.into(), format!("{c}@x").into(), Some(0));
        }
        idx
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
        idx.release(2);
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
