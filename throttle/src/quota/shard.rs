//! The quota book's storage: per shard, an open-addressed table of 12-byte
//! slots (a key fingerprint and up to three packed send times).

use super::{INLINE, MASK, MAX_UNITS, TIME_BITS};

#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub(super) struct Slot {
    pub(super) fp: u32,
    pub(super) lo: u32,
    pub(super) hi: u32,
}

impl Slot {
    pub(super) fn state(self) -> u64 {
        u64::from(self.lo) | (u64::from(self.hi) << 32)
    }

    pub(super) fn set_state(&mut self, s: u64) {
        self.lo = s as u32;
        self.hi = (s >> 32) as u32;
    }
}

pub(super) fn unpack(s: u64) -> [i64; INLINE] {
    [
        (s & MASK) as i64,
        ((s >> TIME_BITS) & MASK) as i64,
        ((s >> (2 * TIME_BITS)) & MASK) as i64,
    ]
}

pub(super) fn pack(v: [i64; INLINE]) -> u64 {
    let f = |x: i64| (x.clamp(0, MAX_UNITS)) as u64;
    f(v[0]) | (f(v[1]) << TIME_BITS) | (f(v[2]) << (2 * TIME_BITS))
}

/// Inserts `u` into a descending list, keeping its length.
pub(super) fn insert_desc(v: &mut [i64], u: i64) {
    let Some(pos) = v.iter().position(|&x| x < u) else {
        return;
    };
    v[pos..].rotate_right(1);
    v[pos] = u;
}

#[derive(Debug, Clone, Default)]
pub(super) struct Shard {
    pub(super) slots: Box<[Slot]>,
    pub(super) len: u32,
}

pub(super) fn home(fp: u32, cap: usize) -> usize {
    ((u64::from(fp) * cap as u64) >> 32) as usize
}

impl Shard {
    #[inline]
    pub(super) fn find(&self, fp: u32) -> Option<usize> {
        let cap = self.slots.len();
        if cap == 0 {
            return None;
        }
        let mut i = home(fp, cap);
        loop {
            let s = self.slots.get(i)?;
            if s.fp == fp {
                return Some(i);
            }
            if s.fp == 0 {
                return None;
            }
            i += 1;
            if i == cap {
                i = 0;
            }
        }
    }

    /// Index of `fp`'s slot, inserting an empty one if absent; `true` if
    /// it was inserted.
    #[inline]
    pub(super) fn entry(&mut self, fp: u32) -> (usize, bool) {
        if let Some(i) = self.find(fp) {
            return (i, false);
        }
        let cap = self.slots.len();
        if (self.len as usize + 1) * 8 > cap * 7 {
            self.grow((cap + cap / 4 + 1).max(8));
        }
        self.len += 1;
        (self.place(Slot { fp, lo: 0, hi: 0 }), true)
    }

    /// Removes `fp`'s slot, if any, moving back the slots after it that
    /// probed past it (so that every slot stays reachable from its home).
    pub(super) fn remove(&mut self, fp: u32) -> bool {
        let Some(mut hole) = self.find(fp) else {
            return false;
        };
        let cap = self.slots.len();
        let mut j = hole;
        loop {
            j = (j + 1) % cap;
            let s = self.slots[j];
            if s.fp == 0 {
                break;
            }
            let h = home(s.fp, cap);
            // `s` may move into the hole unless its home lies cyclically
            // in (hole, j]: then the hole is before its home.
            let home_after_hole = if hole <= j {
                hole < h && h <= j
            } else {
                hole < h || h <= j
            };
            if !home_after_hole {
                self.slots[hole] = s;
                hole = j;
            }
        }
        self.slots[hole] = Slot::default();
        self.len -= 1;
        true
    }

    pub(super) fn place(&mut self, slot: Slot) -> usize {
        let cap = self.slots.len();
        let mut i = home(slot.fp, cap);
        while self.slots[i].fp != 0 {
            i += 1;
            if i == cap {
                i = 0;
            }
        }
        self.slots[i] = slot;
        i
    }

    pub(super) fn grow(&mut self, new_cap: usize) {
        let old = std::mem::replace(
            &mut self.slots,
            vec![Slot::default(); new_cap].into_boxed_slice(),
        );
        for s in old.iter().filter(|s| s.fp != 0) {
            self.place(*s);
        }
    }
}
