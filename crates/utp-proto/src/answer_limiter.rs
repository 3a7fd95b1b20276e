//! A rate limit for answers sent without state to packets of unknown connections (uTP's
//! `ST_RESET`, rudp's CLOSE code 5), so that a stream of stray or spoofed packets cannot
//! turn an endpoint into a reflector.

use alloc::collections::{BTreeSet, VecDeque};
use core::time::Duration;

use crate::Instant;

/// Remembers recent answers so each key (what identifies the packet answered: peer,
/// connection id, ...) gets at most one answer per window, and at most `capacity` answers
/// go out per window in all (libutp's figures for RESETs: 1000 entries, 10 s).
#[derive(Debug)]
pub(crate) struct AnswerLimiter<K> {
    entries: VecDeque<(Instant, K)>,
    keys: BTreeSet<K>,
    capacity: usize,
    window: Duration,
}

impl<K: Clone + Ord> AnswerLimiter<K> {
    pub(crate) fn new(capacity: usize, window: Duration) -> Self {
        Self { entries: VecDeque::new(), keys: BTreeSet::new(), capacity, window }
    }

    /// Whether an answer for `key` may be sent now; records it if so.
    pub(crate) fn allow(&mut self, now: Instant, key: &K) -> bool {
        self.expire(now);
        if self.entries.len() >= self.capacity || self.keys.contains(key) {
            return false;
        }
        self.keys.insert(key.clone());
        self.entries.push_back((now, key.clone()));
        true
    }

    fn expire(&mut self, now: Instant) {
        while let Some((t, key)) = self.entries.front() {
            if now.saturating_duration_since(*t) < self.window {
                break;
            }
            self.keys.remove(key);
            self.entries.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_answer_per_key_per_window_and_a_cap() {
        let mut l = AnswerLimiter::new(2, Duration::from_secs(10));
        let t = Instant::from_millis;
        assert!(l.allow(t(0), &(1u8, 5u16, 9u16)));
        assert!(!l.allow(t(1), &(1u8, 5, 9)), "same packet again");
        assert!(l.allow(t(2), &(1u8, 5, 10)));
        assert!(!l.allow(t(3), &(2u8, 7, 7)), "table full");
        assert!(l.allow(t(10_000), &(2u8, 7, 7)), "the first entry expired");
        assert!(l.allow(t(10_002), &(1u8, 5, 10)), "the second too");
    }
}
