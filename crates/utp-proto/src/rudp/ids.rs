//! Connection ids nobody can predict: a keyed hash of a counter.
//!
//! A rudp connection id is what authenticates every packet of a connection (a CLOSE
//! included) against off-path attackers, so it must not be guessable from the ids a peer
//! has seen. The crate's [`Rng`](crate::Rng) is fast but not cryptographic (its state can
//! be recovered from its outputs), so ids come from SipHash-2-4 under a 128-bit key the
//! application gives, applied to a counter.

use core::hash::Hasher;

use siphasher::sip::SipHasher24;

/// Draws unpredictable non-zero 64-bit ids.
#[derive(Clone, Debug)]
pub(crate) struct IdGenerator {
    key: [u8; 16],
    counter: u64,
}

impl IdGenerator {
    pub(crate) fn new(key: [u8; 16]) -> Self {
        Self { key, counter: 0 }
    }

    /// The next id: never 0.
    pub(crate) fn next_id(&mut self) -> u64 {
        loop {
            let mut hasher = SipHasher24::new_with_key(&self.key);
            hasher.write_u64(self.counter);
            self.counter = self.counter.wrapping_add(1);
            let id = hasher.finish();
            if id != 0 {
                return id;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use alloc::collections::BTreeSet;

    use super::*;

    #[test]
    fn ids_differ_by_key_and_never_repeat_early() {
        let mut a = IdGenerator::new([1; 16]);
        let mut b = IdGenerator::new([2; 16]);
        let xs: BTreeSet<u64> = (0..1000).map(|_| a.next_id()).collect();
        assert_eq!(xs.len(), 1000);
        assert!(!xs.contains(&0));
        assert!(!xs.contains(&b.next_id()));
        let mut again = IdGenerator::new([1; 16]);
        assert!(xs.contains(&again.next_id()), "same key, same sequence: runs replay");
    }
}
