//! A test that returns before its last check passes without checking
//! anything: a `return` slipped in where a peer was missing, a `?` on an
//! `Option`, a loop `break` gone wrong. [`MustReachEnd`] turns that into a
//! failure: the test makes one first, and says [`reached`](MustReachEnd::reached)
//! after its last assertion; dropped before that, the guard fails the test.
//!
//! Every function that starts or runs an external peer takes a
//! `&MustReachEnd`, so a test using a peer does not compile without one.

/// Fails the test when dropped before [`reached`](Self::reached) (unless
/// the test is failing already).
#[must_use = "a test calls `reached` on its guard after its last check"]
#[derive(Debug)]
pub struct MustReachEnd {
    reached: bool,
}

/// The guard a test makes first (`let end = must_reach_end();`) and ends
/// with (`end.reached();`).
pub fn must_reach_end() -> MustReachEnd {
    MustReachEnd { reached: false }
}

impl MustReachEnd {
    /// Says the test got past its last check: dropping the guard is fine now.
    pub fn reached(mut self) {
        self.reached = true;
    }
}

impl Drop for MustReachEnd {
    fn drop(&mut self) {
        // A test failing already shows its own panic, not this one.
        assert!(
            self.reached || std::thread::panicking(),
            "this test returned before its last check: a test that returns early asserts nothing"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test body that checks `found`, or returns early without it.
    fn checks(found: Option<u32>) {
        let end = must_reach_end();
        let Some(found) = found else { return };
        assert_eq!(found, 7);
        end.reached();
    }

    #[test]
    #[should_panic(
        expected = "this test returned before its last check: a test that returns early asserts nothing"
    )]
    fn a_test_that_returns_early_fails() {
        checks(None);
    }

    #[test]
    fn a_test_that_reaches_its_end_passes() {
        checks(Some(7));
    }
}
