//! Gathering a machine's transmits into batches for segmentation offload: consecutive
//! datagrams to one destination, all of one size (the last may be shorter), leave in one
//! system call. The driver loop and the TFTP pump both send this way.

use crate::udp_batch::MAX_GSO_BYTES;

/// A transmit as it is batched: where to, its length, and its datagram size (its length,
/// unless the machine asked for segmentation itself).
#[derive(Clone, Debug)]
pub(crate) struct Outgoing<A> {
    pub(crate) to: A,
    pub(crate) len: usize,
    pub(crate) segment: usize,
}

impl<A: Clone> Outgoing<A> {
    /// `t`, whose bytes are the first `written` of the buffer it was polled into.
    pub(crate) fn new(t: &utp_proto::Transmit<A>, written: usize) -> Self {
        let len = t.size.min(written);
        let segment = t.segment_size.map_or(len, |s| s.clamp(1, len.max(1)));
        Self { to: t.destination.clone(), len, segment }
    }
}

/// Datagrams to one destination leaving together: `buf[sent..]` goes next, in datagrams of
/// `segment` bytes (the last may be shorter).
#[derive(Debug)]
pub(crate) struct Batch<A> {
    pub(crate) buf: Vec<u8>,
    pub(crate) sent: usize,
    pub(crate) to: Option<A>,
    pub(crate) segment: usize,
}

impl<A> Default for Batch<A> {
    fn default() -> Self {
        Self { buf: Vec::with_capacity(MAX_GSO_BYTES), sent: 0, to: None, segment: 1 }
    }
}

impl<A: Clone + PartialEq> Batch<A> {
    /// Whether everything in it went.
    pub(crate) fn is_empty(&self) -> bool {
        self.sent >= self.buf.len()
    }

    /// Forgets what it holds.
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.sent = 0;
    }

    /// The bytes still to send, their datagram size and destination.
    pub(crate) fn rest(&self) -> Option<(&[u8], usize, &A)> {
        let to = self.to.as_ref()?;
        (!self.is_empty()).then(|| (&self.buf[self.sent..], self.segment, to))
    }

    /// Records that `n` more bytes went (0: the transport took nothing; the batch is
    /// dropped, the protocol retransmits what matters).
    pub(crate) fn advance(&mut self, n: usize) {
        if n == 0 {
            self.clear();
        } else {
            self.sent = (self.sent + n).min(self.buf.len());
        }
    }

    /// Starts a batch with `first`, whose bytes are `data`.
    pub(crate) fn start(&mut self, first: &Outgoing<A>, data: &[u8]) {
        self.clear();
        self.buf.extend_from_slice(data);
        self.to = Some(first.to.clone());
        self.segment = first.segment;
    }

    /// Whether one more full datagram may join: under `max_segments` datagrams and the
    /// most one offloaded send carries, and the last datagram is a full one.
    pub(crate) fn has_room(&self, max_segments: usize) -> bool {
        let count = self.buf.len().div_ceil(self.segment);
        self.buf.len() % self.segment == 0
            && count < max_segments
            && self.buf.len() + self.segment <= MAX_GSO_BYTES
    }

    /// Appends `next` (bytes `data`) if it fits: the same destination, one datagram no
    /// longer than the others. Call only when [`has_room`](Self::has_room).
    pub(crate) fn push(&mut self, next: &Outgoing<A>, data: &[u8]) -> bool {
        let single = next.segment == next.len;
        let fits = self.to.as_ref() == Some(&next.to)
            && single
            && next.len > 0
            && next.len <= self.segment;
        if fits {
            self.buf.extend_from_slice(data);
        }
        fits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outgoing(port: u16, len: usize) -> Outgoing<u16> {
        Outgoing { to: port, len, segment: len }
    }

    #[test]
    fn a_batch_takes_equal_datagrams_to_one_destination_and_one_shorter_last() {
        let mut batch = Batch::default();
        batch.start(&outgoing(1, 1432), &[0; 1432]);
        assert!(batch.has_room(64));
        assert!(batch.push(&outgoing(1, 1432), &[1; 1432]));
        assert!(!batch.push(&outgoing(2, 1432), &[2; 1432]), "another destination");
        assert!(!batch.push(&outgoing(1, 1500), &[2; 1500]), "a longer datagram");
        assert!(batch.push(&outgoing(1, 4), &[3; 4]), "a shorter one ends it");
        assert!(!batch.has_room(64), "nothing follows a shorter datagram");
        assert_eq!(batch.buf.len(), 2 * 1432 + 4);
    }

    #[test]
    fn a_batch_stops_at_the_segment_limit_and_one_offloaded_send() {
        let mut batch = Batch::default();
        batch.start(&outgoing(1, 1432), &[0; 1432]);
        assert!(!batch.has_room(1), "a transport without offload sends one at a time");
        let mut count = 1;
        while batch.has_room(64) {
            assert!(batch.push(&outgoing(1, 1432), &[0; 1432]));
            count += 1;
        }
        assert_eq!(count, MAX_GSO_BYTES / 1432);
        batch.advance(1432);
        assert_eq!(
            batch.rest().map(|(r, s, to)| (r.len(), s, *to)),
            Some(((count - 1) * 1432, 1432, 1))
        );
        batch.advance(batch.buf.len());
        assert!(batch.is_empty());
        assert_eq!(batch.rest(), None);
        batch.start(&outgoing(1, 10), &[0; 10]);
        batch.advance(0);
        assert!(batch.is_empty(), "a send that took nothing drops the batch");
    }
}
