//! The send side of a connection: the application's bytes, and the packets cut from them
//! that are in flight.

use alloc::collections::VecDeque;

use crate::Instant;

/// What a packet in the send buffer is.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum Kind {
    Syn,
    Data,
    Fin,
}

/// A packet that was cut from the stream and is not yet acknowledged.
#[derive(Clone, Debug)]
pub(crate) struct OutPacket {
    pub(crate) seq: u16,
    pub(crate) kind: Kind,
    /// Stream offset of the first payload byte.
    offset: u64,
    pub(crate) len: usize,
    pub(crate) transmissions: u32,
    pub(crate) sent_at: Instant,
    /// Declared lost by a timeout; no longer counted in flight until resent.
    pub(crate) need_resend: bool,
    /// Selectively acknowledged: it arrived, but packets before it did not.
    pub(crate) sacked: bool,
}

/// Bytes written by the application, from the oldest unacknowledged byte to the newest,
/// and the packets in flight (consecutive sequence numbers, oldest first).
///
/// Bytes are copied once on `write` and once into the outgoing datagram; packets only
/// record offsets into the byte queue, so retransmissions copy from the same place.
#[derive(Debug)]
pub(crate) struct SendBuffer {
    bytes: VecDeque<u8>,
    /// Stream offset of `bytes[0]`.
    base: u64,
    /// Stream offset of the first byte not yet cut into a packet.
    unsent_from: u64,
    packets: VecDeque<OutPacket>,
    capacity: usize,
    /// Payload bytes sent and neither acknowledged nor declared lost (libutp's `cur_window`).
    in_flight: usize,
    /// Packets waiting to be sent: never sent, or declared lost (and not since acknowledged).
    pending: usize,
}

impl SendBuffer {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            bytes: VecDeque::new(),
            base: 0,
            unsent_from: 0,
            packets: VecDeque::new(),
            capacity,
            in_flight: 0,
            pending: 0,
        }
    }

    /// Queues as much of `data` as fits; returns how much.
    pub(crate) fn write(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.free());
        self.bytes.extend(&data[..n]);
        n
    }

    /// Bytes the application may still write.
    pub(crate) fn free(&self) -> usize {
        self.capacity.saturating_sub(self.bytes.len())
    }

    /// Bytes written but not yet cut into packets.
    pub(crate) fn unsent(&self) -> usize {
        (self.base + self.bytes.len() as u64 - self.unsent_from) as usize
    }

    /// Payload bytes in flight.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Packets not yet acknowledged (libutp's `cur_window_packets`).
    pub(crate) fn packet_count(&self) -> usize {
        self.packets.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    pub(crate) fn front(&self) -> Option<&OutPacket> {
        self.packets.front()
    }

    /// The packets in flight, oldest first.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &OutPacket> {
        self.packets.iter()
    }

    /// The packet with sequence number `seq`, if it is in flight.
    pub(crate) fn get(&self, seq: u16) -> Option<&OutPacket> {
        let front = self.packets.front()?.seq;
        self.packets.get(usize::from(seq.wrapping_sub(front)))
    }

    pub(crate) fn get_mut(&mut self, seq: u16) -> Option<&mut OutPacket> {
        let front = self.packets.front()?.seq;
        self.packets.get_mut(usize::from(seq.wrapping_sub(front)))
    }

    /// Cuts the next `len` unsent bytes (at most what is unsent) into a new packet with
    /// sequence number `seq`; `len` 0 for SYN and FIN.
    pub(crate) fn push(&mut self, seq: u16, kind: Kind, len: usize) -> &mut OutPacket {
        let len = len.min(self.unsent());
        let packet = OutPacket {
            seq,
            kind,
            offset: self.unsent_from,
            len,
            transmissions: 0,
            sent_at: Instant::ZERO,
            need_resend: false,
            sacked: false,
        };
        self.unsent_from += len as u64;
        self.pending += 1;
        self.packets.push_back(packet);
        let last = self.packets.len() - 1;
        &mut self.packets[last]
    }

    /// Records that the packet `seq` was (re)sent at `now`; returns its payload length.
    pub(crate) fn mark_sent(&mut self, seq: u16, now: Instant) -> usize {
        let Some(p) = self.get_mut(seq) else { return 0 };
        let first_or_lost = p.transmissions == 0 || p.need_resend;
        p.transmissions = p.transmissions.saturating_add(1);
        p.need_resend = false;
        p.sent_at = now;
        let len = p.len;
        if first_or_lost {
            self.in_flight += len;
            self.pending -= 1;
        }
        len
    }

    /// Copies the payload of the packet `seq` to `out`.
    pub(crate) fn copy_payload(&self, seq: u16, out: &mut alloc::vec::Vec<u8>) {
        let Some(p) = self.get(seq) else { return };
        let start = (p.offset - self.base) as usize;
        let (a, b) = self.bytes.as_slices();
        let end = start + p.len;
        if end <= a.len() {
            out.extend_from_slice(&a[start..end]);
        } else if start >= a.len() {
            out.extend_from_slice(&b[start - a.len()..end - a.len()]);
        } else {
            out.extend_from_slice(&a[start..]);
            out.extend_from_slice(&b[..end - a.len()]);
        }
    }

    /// Marks the packet `seq` selectively acknowledged. Returns it if this acknowledged it
    /// now (it had been sent and not yet acknowledged).
    pub(crate) fn sack(&mut self, seq: u16) -> Option<OutPacket> {
        let p = self.get_mut(seq)?;
        if p.sacked || p.transmissions == 0 {
            return None;
        }
        p.sacked = true;
        let p = p.clone();
        if p.need_resend {
            self.pending -= 1;
        } else {
            self.in_flight -= p.len;
        }
        Some(p)
    }

    /// Removes the oldest packet, acknowledged cumulatively; returns it (with its earlier
    /// state, so the caller can tell whether it had been selectively acknowledged already).
    pub(crate) fn pop_acked(&mut self) -> Option<OutPacket> {
        let p = self.packets.pop_front()?;
        if !p.sacked {
            if p.need_resend || p.transmissions == 0 {
                self.pending -= 1;
            } else {
                self.in_flight -= p.len;
            }
        }
        let keep_from = self.packets.front().map_or(self.unsent_from, |q| q.offset);
        let release = (keep_from - self.base) as usize;
        self.bytes.drain(..release);
        self.base = keep_from;
        Some(p)
    }

    /// Declares every sent, unacknowledged packet lost (after a retransmission timeout).
    pub(crate) fn mark_all_lost(&mut self) {
        for p in &mut self.packets {
            if p.transmissions > 0 && !p.need_resend && !p.sacked {
                p.need_resend = true;
                self.in_flight -= p.len;
                self.pending += 1;
            }
        }
    }

    /// Declares the packet `seq` lost; returns whether it was in flight.
    pub(crate) fn mark_lost(&mut self, seq: u16) -> bool {
        let Some(p) = self.get_mut(seq) else { return false };
        if p.transmissions == 0 || p.need_resend || p.sacked {
            return false;
        }
        p.need_resend = true;
        let len = p.len;
        self.in_flight -= len;
        self.pending += 1;
        true
    }

    /// The oldest packet that must be sent: declared lost, or never sent.
    pub(crate) fn next_to_send(&self) -> Option<&OutPacket> {
        if self.pending == 0 {
            return None;
        }
        self.packets.iter().find(|p| !p.sacked && (p.need_resend || p.transmissions == 0))
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use super::*;

    #[test]
    fn write_is_bounded_by_capacity() {
        let mut s = SendBuffer::new(10);
        assert_eq!(s.write(b"hello world!"), 10);
        assert_eq!(s.free(), 0);
        assert_eq!(s.write(b"x"), 0);
        assert_eq!(s.unsent(), 10);
    }

    #[test]
    fn packets_copy_their_bytes_and_release_them_when_acked() {
        let mut s = SendBuffer::new(100);
        s.write(b"abcdefgh");
        s.push(7, Kind::Data, 3);
        s.push(8, Kind::Data, 3);
        assert_eq!(s.unsent(), 2);
        assert_eq!(s.mark_sent(7, Instant::ZERO), 3);
        assert_eq!(s.mark_sent(8, Instant::ZERO), 3);
        assert_eq!(s.in_flight(), 6);
        let mut out = Vec::new();
        s.copy_payload(8, &mut out);
        assert_eq!(out, b"def");
        let p = s.pop_acked().unwrap();
        assert_eq!(p.seq, 7);
        assert_eq!(s.in_flight(), 3);
        assert_eq!(s.free(), 95, "acknowledged bytes are released");
        out.clear();
        s.copy_payload(8, &mut out);
        assert_eq!(out, b"def");
    }

    #[test]
    fn sequence_lookup_wraps() {
        let mut s = SendBuffer::new(100);
        s.write(b"abcd");
        s.push(65535, Kind::Data, 2);
        s.push(0, Kind::Data, 2);
        assert_eq!(s.get(0).unwrap().seq, 0);
        assert_eq!(s.get(65535).unwrap().seq, 65535);
        assert!(s.get(1).is_none());
        assert!(s.get(65534).is_none());
    }

    #[test]
    fn sack_and_loss_keep_in_flight_consistent() {
        let mut s = SendBuffer::new(100);
        s.write(&[0; 30]);
        for seq in 1..=3 {
            s.push(seq, Kind::Data, 10);
            s.mark_sent(seq, Instant::ZERO);
        }
        assert_eq!(s.in_flight(), 30);
        assert!(s.sack(3).is_some());
        assert!(s.sack(3).is_none(), "twice is once");
        assert_eq!(s.in_flight(), 20);
        s.mark_all_lost();
        assert_eq!(s.in_flight(), 0);
        assert_eq!(s.next_to_send().unwrap().seq, 1);
        s.mark_sent(1, Instant::ZERO);
        assert_eq!(s.in_flight(), 10);
        s.pop_acked();
        assert_eq!(s.in_flight(), 0);
        assert_eq!(s.next_to_send().unwrap().seq, 2);
        s.pop_acked();
        s.pop_acked();
        assert_eq!(s.in_flight(), 0);
        assert!(s.is_empty());
        assert_eq!(s.free(), 100);
    }

    #[test]
    fn copy_across_the_ring_seam() {
        let mut s = SendBuffer::new(8);
        s.write(b"123456");
        s.push(1, Kind::Data, 6);
        s.mark_sent(1, Instant::ZERO);
        s.pop_acked();
        s.write(b"abcdefgh");
        s.push(2, Kind::Data, 8);
        let mut out = Vec::new();
        s.copy_payload(2, &mut out);
        assert_eq!(out, b"abcdefgh");
    }
}
