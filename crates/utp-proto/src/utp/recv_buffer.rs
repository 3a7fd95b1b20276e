//! The receive side of a connection: in-order bytes waiting for the application, and
//! packets that arrived ahead of a gap.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

/// In-order bytes not yet read, plus a reorder window of packets past the next expected
/// one. Both count against one capacity, whose free part is the advertised window, so a
/// peer can never make it hold more than the configured bytes.
#[derive(Debug)]
pub(crate) struct RecvBuffer {
    readable: VecDeque<u8>,
    /// Slot `d` holds the packet `d` places past the next expected one; slot 0 (the next
    /// expected packet itself) is delivered at once and never stored.
    reorder: VecDeque<Option<Vec<u8>>>,
    reorder_bytes: usize,
    reorder_count: usize,
    capacity: usize,
    max_reorder: usize,
    pool: Vec<Vec<u8>>,
}

/// The outcome of offering an out-of-order packet.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum Stored {
    Kept,
    Duplicate,
    TooFar,
    NoSpace,
}

impl RecvBuffer {
    pub(crate) fn new(capacity: usize, max_reorder: usize) -> Self {
        Self {
            readable: VecDeque::new(),
            reorder: VecDeque::new(),
            reorder_bytes: 0,
            reorder_count: 0,
            capacity,
            max_reorder,
            pool: Vec::new(),
        }
    }

    /// The free space: the window advertised to the peer.
    pub(crate) fn window(&self) -> usize {
        self.capacity.saturating_sub(self.readable.len() + self.reorder_bytes)
    }

    /// Bytes waiting to be read.
    pub(crate) fn readable(&self) -> usize {
        self.readable.len()
    }

    /// Packets held for reordering.
    #[cfg(test)]
    pub(crate) fn reorder_count(&self) -> usize {
        self.reorder_count
    }

    /// Appends the next in-order payload, if it fits. The reorder window moves on by one.
    pub(crate) fn push_in_order(&mut self, payload: &[u8]) -> bool {
        if payload.len() > self.window() {
            return false;
        }
        self.readable.extend(payload);
        self.advance();
        true
    }

    /// Moves the reorder window on by one packet (the next expected one was consumed).
    fn advance(&mut self) {
        if let Some(slot) = self.reorder.pop_front() {
            debug_assert!(slot.is_none(), "the next expected packet is never stored");
        }
    }

    /// Takes the next in-order packet from the reorder window, if it had arrived early,
    /// appends it to the readable bytes and moves on. Returns its payload length if it did.
    pub(crate) fn pull_next(&mut self) -> Option<usize> {
        let payload = self.reorder.front_mut()?.take()?;
        self.reorder.pop_front();
        self.reorder_bytes -= payload.len();
        self.reorder_count -= 1;
        self.readable.extend(&payload);
        let len = payload.len();
        self.recycle(payload);
        Some(len)
    }

    /// Keeps a packet `distance` places past the next expected one (`distance >= 1`).
    pub(crate) fn store(&mut self, distance: usize, payload: &[u8]) -> Stored {
        if distance == 0 || distance >= self.max_reorder {
            return Stored::TooFar;
        }
        if self.reorder.get(distance).is_some_and(Option::is_some) {
            return Stored::Duplicate;
        }
        if payload.len() > self.window() {
            return Stored::NoSpace;
        }
        if self.reorder.len() <= distance {
            self.reorder.resize(distance + 1, None);
        }
        let mut buf = self.pool.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(payload);
        self.reorder_bytes += buf.len();
        self.reorder_count += 1;
        self.reorder[distance] = Some(buf);
        Stored::Kept
    }

    /// Forgets the payload of every packet held for reordering, keeping their places (they
    /// still count as received for acknowledgements). After a close nothing more is
    /// delivered, and held data must not follow the gap it was waiting for.
    pub(crate) fn discard_held_payloads(&mut self) {
        for slot in self.reorder.iter_mut().flatten() {
            slot.clear();
        }
        self.reorder_bytes = 0;
    }

    /// Drops every packet held for reordering (after the end of the stream, nothing past it
    /// can be delivered).
    pub(crate) fn clear_reorder(&mut self) {
        while let Some(slot) = self.reorder.pop_front() {
            if let Some(buf) = slot {
                self.recycle(buf);
            }
        }
        self.reorder_bytes = 0;
        self.reorder_count = 0;
    }

    /// The selective-ACK bitmask: bit `i` set when the packet `i + 2` past the last
    /// in-order one (the `ack_nr`) is held; sized in multiples of 4 bytes to cover the
    /// furthest packet held, at most `max_bytes`. Empty when nothing is held.
    pub(crate) fn sack(&self, max_bytes: usize, out: &mut [u8; 256]) -> usize {
        if self.reorder_count == 0 {
            return 0;
        }
        // Slot d (>= 1) is the packet d + 1 past ack_nr: bit d - 1.
        let furthest = self.reorder.len().saturating_sub(1);
        let bits_needed = furthest;
        let bytes = bits_needed.div_ceil(32).max(1) * 4;
        let bytes = bytes.min(max_bytes).min(out.len());
        out[..bytes].fill(0);
        for (d, slot) in self.reorder.iter().enumerate().skip(1) {
            let bit = d - 1;
            if bit >= bytes * 8 {
                break;
            }
            if slot.is_some() {
                out[bit / 8] |= 1 << (bit % 8);
            }
        }
        bytes
    }

    /// Copies readable bytes into `buf`; returns how many.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.readable.len());
        let (a, b) = self.readable.as_slices();
        if n <= a.len() {
            buf[..n].copy_from_slice(&a[..n]);
        } else {
            buf[..a.len()].copy_from_slice(a);
            buf[a.len()..n].copy_from_slice(&b[..n - a.len()]);
        }
        self.readable.drain(..n);
        n
    }

    fn recycle(&mut self, buf: Vec<u8>) {
        if self.pool.len() < 64 {
            self.pool.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_bytes_are_read_back() {
        let mut r = RecvBuffer::new(100, 16);
        assert!(r.push_in_order(b"hello "));
        assert!(r.push_in_order(b"world"));
        assert_eq!(r.window(), 89);
        let mut buf = [0u8; 8];
        assert_eq!(r.read(&mut buf), 8);
        assert_eq!(&buf, b"hello wo");
        assert_eq!(r.read(&mut buf), 3);
        assert_eq!(&buf[..3], b"rld");
        assert_eq!(r.window(), 100);
    }

    #[test]
    fn reordered_packets_fill_the_gap_in_order() {
        let mut r = RecvBuffer::new(100, 16);
        assert_eq!(r.store(2, b"C"), Stored::Kept);
        assert_eq!(r.store(1, b"B"), Stored::Kept);
        assert_eq!(r.store(1, b"B"), Stored::Duplicate);
        assert_eq!(r.reorder_count(), 2);
        assert!(r.push_in_order(b"A"));
        assert_eq!(r.pull_next(), Some(1));
        assert_eq!(r.pull_next(), Some(1));
        assert_eq!(r.pull_next(), None);
        let mut buf = [0u8; 3];
        r.read(&mut buf);
        assert_eq!(&buf, b"ABC");
        assert_eq!(r.reorder_count(), 0);
    }

    #[test]
    fn limits_hold() {
        let mut r = RecvBuffer::new(10, 4);
        assert_eq!(r.store(4, b"x"), Stored::TooFar);
        assert_eq!(r.store(1, &[0; 11]), Stored::NoSpace);
        assert!(!r.push_in_order(&[0; 11]));
        assert_eq!(r.store(3, &[0; 6]), Stored::Kept);
        assert_eq!(r.window(), 4, "held packets count against the window");
        assert!(!r.push_in_order(&[0; 5]));
    }

    #[test]
    fn discarded_held_data_never_reaches_the_reader() {
        let mut r = RecvBuffer::new(100, 16);
        r.store(1, b"late");
        r.discard_held_payloads();
        assert_eq!(r.window(), 100, "discarded bytes no longer count");
        assert!(r.push_in_order(b""));
        assert_eq!(r.pull_next(), Some(0), "the held packet still counts as received");
        assert_eq!(r.readable(), 0);
    }

    #[test]
    fn sack_mask_covers_the_held_packets() {
        let mut r = RecvBuffer::new(10_000, 1024);
        let mut mask = [0u8; 256];
        assert_eq!(r.sack(128, &mut mask), 0);
        // ack_nr + 2 is distance 1 (bit 0); ack_nr + 3 is distance 2 (bit 1).
        r.store(1, b"x");
        r.store(3, b"x");
        assert_eq!(r.sack(128, &mut mask), 4);
        assert_eq!(mask[..4], [0b101, 0, 0, 0]);
        r.store(40, b"x");
        assert_eq!(r.sack(128, &mut mask), 8);
        assert_eq!(mask[4], 1 << 7, "distance 40 is bit 39");
        assert_eq!(r.sack(4, &mut mask), 4, "capped");
    }
}
