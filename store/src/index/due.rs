//! Pending, unleased messages in the order they are claimed: by due time,
//! then by number. Almost all of them are due at once (0: new, or given
//! back) and take a bit each; only retries and deferrals, due later, take an
//! entry in an ordered set.

use std::collections::BTreeSet;

use domain::Millis;

#[derive(Debug, Default)]
pub struct Due {
    /// Bit `n` set: message `n` is due at once.
    now: Vec<u64>,
    now_count: usize,
    /// Words of `now` before this one are all zero.
    first_word: usize,
    later: BTreeSet<(Millis, u32)>,
}

impl Due {
    pub fn insert(&mut self, due: Millis, n: u32) {
        if due > 0 {
            self.later.insert((due, n));
            return;
        }
        let (word, bit) = (n as usize / 64, n % 64);
        if self.now.len() <= word {
            self.now.resize(word + 1, 0);
        }
        if self.now[word] & (1 << bit) == 0 {
            self.now[word] |= 1 << bit;
            self.now_count += 1;
        }
        self.first_word = self.first_word.min(word);
    }

    pub fn remove(&mut self, due: Millis, n: u32) {
        if due > 0 {
            self.later.remove(&(due, n));
            return;
        }
        let (word, bit) = (n as usize / 64, n % 64);
        if let Some(w) = self.now.get_mut(word)
            && *w & (1 << bit) != 0
        {
            *w &= !(1 << bit);
            self.now_count -= 1;
        }
    }

    /// The first message in claim order.
    pub fn first(&mut self) -> Option<(Millis, u32)> {
        match self.first_now() {
            Some(n) => Some((0, n)),
            None => self.later.first().copied(),
        }
    }

    /// Takes the first message in claim order if it is due at `now`.
    pub fn pop_due(&mut self, now: Millis) -> Option<u32> {
        let (due, n) = self.first()?;
        if due > now {
            return None;
        }
        self.remove(due, n);
        Some(n)
    }

    /// The lowest number due at once; moves `first_word` past zero words.
    fn first_now(&mut self) -> Option<u32> {
        if self.now_count == 0 {
            return None;
        }
        while let Some(&w) = self.now.get(self.first_word) {
            if w != 0 {
                return Some((self.first_word * 64) as u32 + w.trailing_zeros());
            }
            self.first_word += 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_at_once_comes_first_in_number_order_then_by_time() {
        let mut due = Due::default();
        for (at, n) in [(500, 1), (0, 130), (0, 2), (200, 7), (0, 64)] {
            due.insert(at, n);
        }
        let order: Vec<_> = std::iter::from_fn(|| due.pop_due(1_000)).collect();
        assert_eq!(order, vec![2, 64, 130, 7, 1]);
        assert_eq!(due.first(), None);
    }

    #[test]
    fn later_messages_wait_and_given_back_ones_come_first_again() {
        let mut due = Due::default();
        due.insert(0, 100);
        due.insert(0, 3);
        due.insert(300, 5);
        assert_eq!(due.pop_due(10), Some(3));
        assert_eq!(due.pop_due(10), Some(100));
        assert_eq!(due.pop_due(10), None, "5 is due at 300");
        due.insert(0, 3);
        assert_eq!(due.first(), Some((0, 3)), "given back below the scan");
        due.remove(0, 3);
        due.remove(0, 3);
        assert_eq!(due.first(), Some((300, 5)), "removing twice counts once");
        assert_eq!(due.pop_due(300), Some(5));
    }
}
