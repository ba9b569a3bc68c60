//! Tests (unwrap is fine here: the workspace denies it outside tests).
#![allow(clippy::unwrap_used)]

use super::*;
use crate::key::hash64;
use proptest::prelude::*;

const T0: i64 = 1_795_000_000; // 2026-11-18

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(T0 + secs).unwrap()
}

fn book(max: u32, per: i64) -> (QuotaBook, QuotaRule) {
    let rule = QuotaRule::new(max, per).unwrap();
    (QuotaBook::new([("*".to_string(), rule)], at(0)), rule)
}

fn key(i: u64) -> CustomerKey {
    CustomerKey(hash64(&i.to_le_bytes()))
}

#[test]
fn at_most_n_then_free_at() {
    let (mut b, r) = book(2, 86_400);
    let k = key(1);
    assert_eq!(b.try_take(k, r, at(0)), QuotaCheck::Allowed);
    assert_eq!(b.try_take(k, r, at(100)), QuotaCheck::Allowed);
    let QuotaCheck::Exceeded { free_at } = b.try_take(k, r, at(200)) else {
        panic!("third allowed")
    };
    // The first send leaves the period at 0 + P, rounded up to the unit.
    let free = free_at.as_second() - T0;
    assert!((86_400..86_400 + UNIT_SECS).contains(&free), "{free}");
    assert!(matches!(
        b.check(
            k,
            r,
            Timestamp::from_second(free_at.as_second() - 1).unwrap()
        ),
        QuotaCheck::Exceeded { .. }
    ));
    assert_eq!(b.try_take(k, r, free_at), QuotaCheck::Allowed);
    // Other customers are unaffected.
    assert_eq!(b.check(key(2), r, at(200)), QuotaCheck::Allowed);
    assert_eq!(b.len(), 2 - 1);
}

#[test]
fn segments_and_default() {
    let gold = QuotaRule::new(1, 3600).unwrap();
    let all = QuotaRule::new(5, 3600).unwrap();
    let b = QuotaBook::new([("*".to_string(), all), ("gold".to_string(), gold)], at(0));
    assert_eq!(b.rule_for(Some("gold")), Some(gold));
    assert_eq!(b.rule_for(Some("silver")), Some(all));
    assert_eq!(b.rule_for(None), Some(all));
    let none = QuotaBook::new([("gold".to_string(), gold)], at(0));
    assert_eq!(none.rule_for(Some("silver")), None);
    assert!(QuotaRule::new(0, 10).is_err());
    assert!(QuotaRule::new(1, 0).is_err());
    assert!(QuotaRule::new(1, MAX_PERIOD_SECS + 1).is_err());
}

#[test]
fn large_n_spills_and_holds() {
    let (mut b, r) = book(10, 1000);
    let k = key(7);
    for i in 0..10 {
        assert_eq!(b.try_take(k, r, at(i)), QuotaCheck::Allowed, "{i}");
    }
    assert!(matches!(
        b.try_take(k, r, at(500)),
        QuotaCheck::Exceeded { .. }
    ));
    assert_eq!(b.try_take(k, r, at(1000 + UNIT_SECS)), QuotaCheck::Allowed);
}

#[test]
fn export_import_survives_restart() {
    let (mut b, r) = book(3, 7 * 86_400);
    let k = key(42);
    for i in 0..3 {
        b.record(k, r, at(i * 3600));
    }
    let bytes = b.export(k).unwrap().to_bytes();
    // A "restarted" book, created later with a different epoch.
    let mut fresh = QuotaBook::new([("*".to_string(), r)], at(86_400));
    fresh.import(k, &QuotaState::from_bytes(&bytes).unwrap());
    fresh.import(k, &QuotaState::from_bytes(&bytes).unwrap()); // idempotent
    assert_eq!(fresh.export(k).unwrap().sends.len(), 3);
    assert_eq!(fresh.check(k, r, at(86_400)), b.check(k, r, at(86_400)));
    assert!(matches!(
        fresh.check(k, r, at(86_400)),
        QuotaCheck::Exceeded { .. }
    ));
    // export_all keys restore the same identities.
    let mut third = QuotaBook::new([("*".to_string(), r)], at(86_400));
    for (key, state) in fresh.export_all() {
        third.import(key, &state);
    }
    assert!(matches!(
        third.check(k, r, at(86_400)),
        QuotaCheck::Exceeded { .. }
    ));
    assert!(QuotaState::from_bytes(b"Q1\x01\x00abc").is_err());
    assert!(QuotaState::from_bytes(b"XX\x00\x00").is_err());
    assert!(QuotaState::from_bytes(b"Q").is_err());
    assert_eq!(
        QuotaState::from_bytes(b"Q1\x00\x00").unwrap(),
        QuotaState::default()
    );
}

#[test]
fn epoch_moves_forward_without_losing_recent_sends() {
    let (mut b, r) = book(1, 30 * 86_400);
    let k = key(1);
    let late = 900 * 86_400; // beyond the 21-bit range from the first epoch
    b.record(key(2), r, at(0));
    b.record(k, r, at(late));
    assert!(matches!(
        b.check(k, r, at(late + 29 * 86_400)),
        QuotaCheck::Exceeded { .. }
    ));
    assert_eq!(
        b.check(k, r, at(late + 30 * 86_400 + UNIT_SECS)),
        QuotaCheck::Allowed
    );
    assert_eq!(b.check(key(2), r, at(late)), QuotaCheck::Allowed);
}

#[test]
fn purge_forgets_only_expired_customers() {
    let (mut b, r) = book(1, 3600);
    for i in 0..1000 {
        b.record(key(i), r, at(0));
    }
    b.record(key(5000), r, at(7000));
    b.purge(at(7200));
    assert_eq!(b.len(), 1);
    assert!(matches!(
        b.check(key(5000), r, at(7200)),
        QuotaCheck::Exceeded { .. }
    ));
    assert_eq!(b.check(key(1), r, at(7200)), QuotaCheck::Allowed);
}

#[test]
fn memory_per_customer_is_about_16_bytes() {
    let (mut b, r) = book(2, 86_400);
    let n = 200_000u64;
    for i in 0..n {
        b.record(key(i), r, at(i as i64 % 1000));
    }
    assert_eq!(b.len() as u64, n);
    let per = b.memory_bytes() as f64 / n as f64;
    assert!(
        per <= 16.0 + 6.0 * 65_536.0 * 24.0 / n as f64,
        "{per} bytes per customer"
    );
    for i in 0..n {
        assert!(b.export(key(i)).is_some());
    }
}

#[test]
fn clock_backwards_only_overcounts() {
    let (mut b, r) = book(1, 3600);
    let k = key(3);
    b.record(k, r, at(10_000));
    // Far before the book's epoch: no panic, and no send.
    assert!(matches!(
        b.check(k, r, at(-1_000_000_000)),
        QuotaCheck::Exceeded { .. }
    ));
    assert!(matches!(
        b.check(k, r, at(5_000)),
        QuotaCheck::Exceeded { .. }
    ));
    b.record(key(4), r, Timestamp::MIN);
    b.record(key(4), r, Timestamp::MAX);
}

proptest! {
    /// No half-open window of length P ever holds more than N admitted
    /// sends, whatever the attempt pattern (including a clock that steps
    /// back), for inline (N <= 3) and spilled (N > 3) customers.
    #[test]
    fn never_more_than_n_in_any_window(
        max in 1u32..7,
        per in 1i64..20_000,
        steps in proptest::collection::vec((-300i64..3_000, 0u64..3), 1..400),
    ) {
        let rule = QuotaRule::new(max, per).unwrap();
        let mut b = QuotaBook::new([("*".to_string(), rule)], at(0));
        let mut t = 0i64;
        let mut sent: [Vec<i64>; 3] = Default::default();
        for (step, who) in steps {
            t += step;
            if b.try_take(key(who), rule, at(t)) == QuotaCheck::Allowed {
                sent[who as usize].push(t);
            }
        }
        for times in &sent {
            for &a in times {
                let n = times.iter().filter(|&&s| a <= s && s < a + per).count();
                prop_assert!(n <= max as usize, "{n} sends in [{a}, {a}+{per})");
            }
        }
    }

    /// The quota is not stricter than it must be: a customer asking at the
    /// `free_at` it was told is admitted, and `free_at` is at most one unit
    /// later than exact.
    #[test]
    fn free_at_is_tight(max in 1u32..6, per in 60i64..100_000, gaps in proptest::collection::vec(0i64..500, 1..20)) {
        let rule = QuotaRule::new(max, per).unwrap();
        let mut b = QuotaBook::new([("*".to_string(), rule)], at(0));
        let k = key(9);
        let mut t = 0;
        let mut sent = Vec::new();
        for g in gaps {
            t += g;
            match b.try_take(k, rule, at(t)) {
                QuotaCheck::Allowed => sent.push(t),
                QuotaCheck::Exceeded { free_at } => {
                    let exact = sent[sent.len() - max as usize] + per;
                    let f = free_at.as_second() - T0;
                    prop_assert!(f >= exact && f <= exact + UNIT_SECS, "free {f} exact {exact}");
                    prop_assert_eq!(b.try_take(k, rule, free_at), QuotaCheck::Allowed);
                    sent.push(f);
                    t = t.max(f);
                }
            }
        }
    }
}

#[test]
fn probe_lengths_stay_short() {
    let (mut b, r) = book(2, 86_400);
    let n = 300_000u64;
    let mut b2 = QuotaBook::with_capacity([("*".to_string(), r)], at(0), n as usize);
    for i in 0..n {
        b.record(key(i), r, at(0));
        b2.record(key(i), r, at(0));
    }
    for book in [&b, &b2] {
        let (mut total, mut worst, mut count) = (0usize, 0usize, 0usize);
        for sh in book.shards.iter() {
            let cap = sh.slots.len();
            for (i, s) in sh.slots.iter().enumerate().filter(|(_, s)| s.fp != 0) {
                let h = home(s.fp, cap);
                let d = (i + cap - h) % cap;
                total += d + 1;
                worst = worst.max(d + 1);
                count += 1;
            }
        }
        let mean = total as f64 / count as f64;
        eprintln!("mean probes {mean:.2}, worst {worst}");
        assert!(mean < 6.0, "mean probe length {mean}");
    }
}

proptest! {
    /// Customers switching between segments with different rules (inline
    /// and spilled) never exceed the rule in force at each send.
    #[test]
    fn segment_switches_never_undercount(
        steps in proptest::collection::vec((0i64..2_000, 0usize..3), 1..300),
    ) {
        let rules = [QuotaRule::new(2, 5_000).unwrap(), QuotaRule::new(5, 5_000).unwrap(), QuotaRule::new(3, 5_000).unwrap()];
        let names = ["a", "b", "c"];
        let mut b = QuotaBook::new(names.iter().zip(rules).map(|(n, r)| (n.to_string(), r)), at(0));
        let k = key(1);
        let mut t = 0i64;
        let mut sent = Vec::new();
        for (step, seg) in steps {
            t += step;
            let rule = b.rule_for(Some(names[seg])).unwrap();
            if b.try_take(k, rule, at(t)) == QuotaCheck::Allowed {
                let before = sent.iter().filter(|&&s| s > t - rule.per_secs).count();
                prop_assert!(before < rule.max as usize, "{before} earlier sends within P under N={}", rule.max);
                sent.push(t);
            }
        }
    }
}

#[test]
fn a_replaced_state_drops_sends_counted_here_and_keeps_every_other_customer() {
    let (mut b, r) = book(2, 86_400);
    // Customers of one shard, so that their slots probe past each other.
    let same_shard =
        |i: u64| CustomerKey((7 << (64 - SHARD_BITS)) | (i * 0x9E37_79B9 % (1 << 31) + 1));
    for i in 0..200 {
        b.record(same_shard(i), r, at(i as i64));
    }
    let stored = b.export(same_shard(5)).unwrap();
    b.record(same_shard(5), r, at(500));
    assert!(matches!(
        b.check(same_shard(5), r, at(600)),
        QuotaCheck::Exceeded { .. }
    ));
    b.replace(same_shard(5), Some(&stored));
    assert_eq!(
        b.check(same_shard(5), r, at(600)),
        QuotaCheck::Allowed,
        "the send counted here only is gone"
    );
    for i in (0..200).step_by(3) {
        b.replace(same_shard(i), None);
    }
    assert_eq!(b.len(), 200 - 67);
    for i in 0..200 {
        let sends = b.export(same_shard(i)).map_or(0, |s| s.sends.len());
        let expected = usize::from(i % 3 != 0);
        assert_eq!(sends, expected, "customer {i}");
    }
}

#[test]
fn a_forgotten_send_frees_its_place_and_keeps_the_others() {
    let (mut b, r) = book(2, 86_400);
    let (k, other) = (key(1), key(2));
    assert_eq!(b.try_take(k, r, at(0)), QuotaCheck::Allowed);
    assert_eq!(b.try_take(k, r, at(100)), QuotaCheck::Allowed);
    assert_eq!(b.try_take(other, r, at(100)), QuotaCheck::Allowed);
    assert!(matches!(
        b.check(k, r, at(200)),
        QuotaCheck::Exceeded { .. }
    ));

    // The send at 100 did not go: one place is free again, once.
    b.forget(k, at(100));
    assert_eq!(b.try_take(k, r, at(200)), QuotaCheck::Allowed);
    assert!(matches!(
        b.check(k, r, at(300)),
        QuotaCheck::Exceeded { .. }
    ));
    assert_eq!(b.export(other).map(|s| s.sends.len()), Some(1));

    // Forgetting a send that was never recorded changes nothing.
    b.forget(other, at(50_000));
    assert_eq!(b.export(other).map(|s| s.sends.len()), Some(1));
    b.forget(key(3), at(0));
    assert_eq!(b.export(key(3)), None);

    // The last send forgotten: the customer has none left.
    b.forget(other, at(100));
    assert_eq!(b.export(other), None);
}
