//! [`Checksummed`]: a machine behind a UDP-like checksum, for links that corrupt bits.

use alloc::vec::Vec;

use crate::{Instant, Machine, Transmit};

/// Bytes the checksum adds to every datagram.
pub const CHECKSUM_LEN: usize = 4;

/// A [`Machine`] behind a checksum, as UDP's checksum protects datagrams on a real network:
/// every datagram it sends carries a 4-byte checksum at its end, and a datagram that
/// arrives damaged (or too short to carry one) is dropped and counted before the inner
/// machine sees it.
///
/// Protocols that rely on UDP's checksum (uTP and rudp have none of their own) see no
/// corruption this way when a [`LinkConfig`](super::LinkConfig) flips bits, just as on a
/// real path; without it they would be handed damaged datagrams no real network delivers.
/// Both ends of a link must be wrapped.
#[derive(Debug)]
pub struct Checksummed<M> {
    /// The machine behind the checksum.
    pub inner: M,
    /// Datagrams dropped because their checksum did not match.
    pub dropped_corrupt: u64,
}

impl<M> Checksummed<M> {
    /// Wraps `inner`.
    pub const fn new(inner: M) -> Self {
        Self { inner, dropped_corrupt: 0 }
    }
}

/// FNV-1a over the datagram: any single flipped bit changes it.
fn checksum(data: &[u8]) -> [u8; CHECKSUM_LEN] {
    data.iter()
        .fold(0x811c_9dc5u32, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
        .to_be_bytes()
}

impl<M: Machine> Machine for Checksummed<M> {
    type Peer = M::Peer;
    type Event = M::Event;

    fn handle_datagram(&mut self, now: Instant, remote: M::Peer, data: &[u8]) {
        let Some(split) = data.len().checked_sub(CHECKSUM_LEN) else {
            self.dropped_corrupt += 1;
            return;
        };
        let (body, sum) = data.split_at(split);
        if checksum(body) != sum {
            self.dropped_corrupt += 1;
            return;
        }
        self.inner.handle_datagram(now, remote, body);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.inner.handle_timeout(now);
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit<M::Peer>> {
        let mut t = self.inner.poll_transmit(now, buf)?;
        buf.truncate(t.size);
        let sum = checksum(buf);
        buf.extend_from_slice(&sum);
        t.size += CHECKSUM_LEN;
        Some(t)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }

    fn poll_event(&mut self) -> Option<M::Event> {
        self.inner.poll_event()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// Sends each queued datagram once; records what it receives.
    #[derive(Default)]
    struct Echo {
        out: Vec<Vec<u8>>,
        got: Vec<Vec<u8>>,
    }

    impl Machine for Echo {
        type Peer = u8;
        type Event = ();
        fn handle_datagram(&mut self, _: Instant, _: u8, data: &[u8]) {
            self.got.push(data.to_vec());
        }
        fn handle_timeout(&mut self, _: Instant) {}
        fn poll_transmit(&mut self, _: Instant, buf: &mut Vec<u8>) -> Option<Transmit<u8>> {
            let d = self.out.pop()?;
            buf.clear();
            buf.extend_from_slice(&d);
            Some(Transmit::single(1, d.len()))
        }
        fn poll_timeout(&self) -> Option<Instant> {
            None
        }
        fn poll_event(&mut self) -> Option<()> {
            None
        }
    }

    #[test]
    fn intact_datagrams_pass_and_any_flipped_bit_is_dropped() {
        let now = Instant::ZERO;
        let mut a = Checksummed::new(Echo { out: vec![b"hello".to_vec()], got: Vec::new() });
        let mut buf = Vec::new();
        let t = a.poll_transmit(now, &mut buf).expect("one datagram");
        assert_eq!(t.size, 5 + CHECKSUM_LEN);
        let sent = buf[..t.size].to_vec();

        let mut b = Checksummed::new(Echo::default());
        b.handle_datagram(now, 1, &sent);
        assert_eq!(b.inner.got, [b"hello".to_vec()], "the checksum is taken off");
        for bit in 0..sent.len() * 8 {
            let mut damaged = sent.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            b.handle_datagram(now, 1, &damaged);
        }
        b.handle_datagram(now, 1, &sent[..3]);
        assert_eq!(b.inner.got.len(), 1, "no damaged datagram got through");
        assert_eq!(b.dropped_corrupt, sent.len() as u64 * 8 + 1);
    }
}
