//! Rate limit for `ST_RESET`s sent to packets of unknown connections.

use alloc::collections::{BTreeSet, VecDeque};
use core::time::Duration;

use crate::Instant;

/// Remembers recent RESETs so a stream of stray packets (or a spoofing attacker) gets at
/// most one RESET per (peer, connection id, sequence number) per window, and at most
/// `capacity` RESETs per window in all (libutp: 1000 entries, 10 s).
#[derive(Debug)]
pub(crate) struct ResetLimiter<P> {
    entries: VecDeque<(Instant, P, u16, u16)>,
    keys: BTreeSet<(P, u16, u16)>,
    capacity: usize,
    window: Duration,
}

impl<P: Clone + Ord> ResetLimiter<P> {
    pub(crate) fn new(capacity: usize, window: Duration) -> Self {
        Self { entries: VecDeque::new(), keys: BTreeSet::new(), capacity, window }
    }

    /// Whether a RESET may be sent now for this packet; records it if so.
    pub(crate) fn allow(&mut self, now: Instant, peer: &P, id: u16, seq: u16) -> bool {
        self.expire(now);
        let key = (peer.clone(), id, seq);
        if self.entries.len() >= self.capacity || self.keys.contains(&key) {
            return false;
        }
        self.keys.insert(key);
        self.entries.push_back((now, peer.clone(), id, seq));
        true
    }

    fn expire(&mut self, now: Instant) {
        while let Some((t, peer, id, seq)) = self.entries.front() {
            if now.saturating_duration_since(*t) < self.window {
                break;
            }
            self.keys.remove(&(peer.clone(), *id, *seq));
            self.entries.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_reset_per_packet_per_window_and_a_cap() {
        let mut l = ResetLimiter::new(2, Duration::from_secs(10));
        let t = Instant::from_millis;
        assert!(l.allow(t(0), &1u8, 5, 9));
        assert!(!l.allow(t(1), &1u8, 5, 9), "same packet again");
        assert!(l.allow(t(2), &1u8, 5, 10));
        assert!(!l.allow(t(3), &2u8, 7, 7), "table full");
        assert!(l.allow(t(10_000), &2u8, 7, 7), "the first entry expired");
        assert!(l.allow(t(10_002), &1u8, 5, 10), "the second too");
    }
}
