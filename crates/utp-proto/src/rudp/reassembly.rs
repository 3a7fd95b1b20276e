//! The receiving side of messages: fragments in, whole messages out, each exactly once and
//! in message order, within a memory bound.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec;
use alloc::vec::Vec;

use crate::rudp::config::MESSAGE_OVERHEAD;

/// The most separate byte ranges one message being reassembled may have; a fragment that
/// would add another is dropped unacknowledged (the sender repeats it), so a hostile peer
/// cannot make the bookkeeping of one message grow with its length.
const MAX_PIECES: usize = 256;

/// Messages being reassembled and messages delivered but not yet received by the
/// application.
#[derive(Debug)]
pub(crate) struct Reassembly {
    /// Every message numbered below this has been delivered to `unread` (or received).
    next_deliver: u64,
    partial: BTreeMap<u64, Partial>,
    unread: VecDeque<Vec<u8>>,
    /// Memory of `partial`: each message's whole length plus the overhead.
    reserved: usize,
    /// Bytes of `partial` actually received, plus the overhead per message.
    held: usize,
    /// Memory of `unread`: lengths plus the overhead per message.
    unread_cost: usize,
    limit: usize,
    max_message: u32,
    /// The last new message refused for want of memory (its number and cost): the window
    /// stays shut until that much memory is free, so the sender waits instead of sending
    /// fragments that would be dropped too (and read their loss as congestion).
    wanted: Option<(u64, usize)>,
}

#[derive(Debug)]
struct Partial {
    data: Vec<u8>,
    /// Received byte ranges `[start, end)`, sorted, disjoint and not touching.
    pieces: Vec<(u32, u32)>,
    received: usize,
}

/// What became of a fragment.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum Fragment {
    /// Stored (or delivered); `delivered` messages became receivable.
    Stored {
        /// How many messages were delivered by it.
        delivered: usize,
    },
    /// Nothing new: the bytes are held already or the message was delivered.
    Duplicate,
    /// No room: dropped, and must not be acknowledged.
    NoMemory,
    /// The peer contradicted itself: the connection must close (code 2).
    Violation(&'static str),
    /// The message is larger than we accept: the connection must close (code 3).
    TooLarge,
}

impl Reassembly {
    pub(crate) fn new(limit: usize, max_message: u32) -> Self {
        Self {
            next_deliver: 0,
            partial: BTreeMap::new(),
            unread: VecDeque::new(),
            reserved: 0,
            held: 0,
            unread_cost: 0,
            limit,
            max_message,
            wanted: None,
        }
    }

    /// Every message numbered below this has been delivered.
    pub(crate) fn delivered(&self) -> u64 {
        self.next_deliver
    }

    /// The receive window to advertise: the memory limit minus what is held and unread, and
    /// at least what the next message in order still misses: it was admitted (beyond the
    /// limit, if it is larger), so its missing bytes need no new memory.
    pub(crate) fn window(&self) -> usize {
        let mut free = self.limit.saturating_sub(self.held + self.unread_cost);
        if let Some((number, cost)) = self.wanted {
            let admitted_anyway = number == self.next_deliver && self.unread.is_empty();
            if !admitted_anyway && self.memory() + cost > self.limit {
                free = 0;
            }
        }
        let head = self.partial.get(&self.next_deliver).map_or(0, |p| p.data.len() - p.received);
        free.max(head)
    }

    /// Messages waiting to be received.
    pub(crate) fn readable(&self) -> usize {
        self.unread.len()
    }

    /// Memory in use: reserved for messages being reassembled plus unread messages.
    pub(crate) fn memory(&self) -> usize {
        self.reserved + self.unread_cost
    }

    /// The next whole message, in order.
    pub(crate) fn pop(&mut self) -> Option<Vec<u8>> {
        let message = self.unread.pop_front()?;
        self.unread_cost -= message.len() + MESSAGE_OVERHEAD;
        Some(message)
    }

    /// Takes a fragment of message `number` (`message_len` bytes long) at `offset`. The
    /// codec has checked that the fragment lies within the message.
    pub(crate) fn insert(
        &mut self,
        number: u64,
        message_len: u32,
        offset: u32,
        fragment: &[u8],
    ) -> Fragment {
        if number < self.next_deliver {
            return Fragment::Duplicate;
        }
        if message_len > self.max_message {
            return Fragment::TooLarge;
        }
        let len = message_len as usize;
        if let Some(partial) = self.partial.get_mut(&number) {
            if partial.data.len() != len {
                return Fragment::Violation("a message's fragments disagree on its length");
            }
            let added = match partial.add(offset, fragment) {
                Some(0) => return Fragment::Duplicate,
                Some(added) => added,
                None => return Fragment::NoMemory,
            };
            self.held += added;
            return Fragment::Stored { delivered: self.deliver() };
        }
        let cost = len + MESSAGE_OVERHEAD;
        let head_exception = number == self.next_deliver && self.unread.is_empty();
        if self.memory() + cost > self.limit && !head_exception {
            self.wanted = Some((number, cost));
            return Fragment::NoMemory;
        }
        self.wanted = None;
        // A whole message in one fragment, next in order: straight to the application.
        if number == self.next_deliver && fragment.len() == len {
            self.unread.push_back(fragment.to_vec());
            self.unread_cost += cost;
            self.next_deliver += 1;
            return Fragment::Stored { delivered: 1 + self.deliver() };
        }
        let mut partial = Partial { data: vec![0; len], pieces: Vec::new(), received: 0 };
        let added = partial.add(offset, fragment).unwrap_or(0);
        self.partial.insert(number, partial);
        self.reserved += cost;
        self.held += added + MESSAGE_OVERHEAD;
        Fragment::Stored { delivered: self.deliver() }
    }

    /// Moves every complete message next in order to `unread`; returns how many.
    fn deliver(&mut self) -> usize {
        let mut n = 0;
        while let Some(entry) = self.partial.first_entry() {
            if *entry.key() != self.next_deliver || entry.get().received < entry.get().data.len() {
                break;
            }
            let partial = entry.remove();
            let cost = partial.data.len() + MESSAGE_OVERHEAD;
            self.reserved -= cost;
            self.held -= cost;
            self.unread_cost += cost;
            self.unread.push_back(partial.data);
            self.next_deliver += 1;
            n += 1;
        }
        n
    }
}

impl Partial {
    /// Copies in a fragment; returns the new bytes it brought, or `None` when it would
    /// split the message into too many pieces.
    fn add(&mut self, offset: u32, fragment: &[u8]) -> Option<usize> {
        let start = offset;
        // The codec guarantees offset + len <= message_len <= u32::MAX.
        let end = offset + fragment.len() as u32;
        if start == end {
            return Some(0); // only an empty message has an empty fragment
        }
        // Pieces overlapping or touching [start, end).
        let first = self.pieces.partition_point(|&(_, e)| e < start);
        let last = self.pieces.partition_point(|&(s, _)| s <= end);
        let covered: usize = self.pieces[first..last]
            .iter()
            .map(|&(s, e)| (e.min(end).saturating_sub(s.max(start))) as usize)
            .sum();
        let added = fragment.len() - covered;
        if added == 0 {
            return Some(0);
        }
        if first == last && self.pieces.len() >= MAX_PIECES {
            return None;
        }
        self.data[start as usize..end as usize].copy_from_slice(fragment);
        let merged_start = self.pieces.get(first).map_or(start, |&(s, _)| s.min(start));
        let merged_end = if last > first { self.pieces[last - 1].1.max(end) } else { end };
        self.pieces.splice(first..last, [(merged_start, merged_end)]);
        self.received += added;
        Some(added)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_fragment_messages_in_order_go_straight_out() {
        let mut r = Reassembly::new(1 << 20, 1000);
        assert_eq!(r.insert(0, 3, 0, b"abc"), Fragment::Stored { delivered: 1 });
        assert_eq!(r.insert(0, 3, 0, b"abc"), Fragment::Duplicate);
        assert_eq!(r.pop().as_deref(), Some(&b"abc"[..]));
        assert_eq!(r.insert(1, 0, 0, b""), Fragment::Stored { delivered: 1 });
        assert_eq!(r.pop().as_deref(), Some(&b""[..]), "an empty message is a message");
        assert_eq!(r.delivered(), 2);
        assert_eq!(r.pop(), None);
    }

    #[test]
    fn fragments_in_any_order_make_one_message_in_order() {
        let mut r = Reassembly::new(1 << 20, 1000);
        assert_eq!(r.insert(1, 2, 0, b"xy"), Fragment::Stored { delivered: 0 });
        assert_eq!(r.insert(0, 6, 4, b"ef"), Fragment::Stored { delivered: 0 });
        assert_eq!(r.insert(0, 6, 0, b"ab"), Fragment::Stored { delivered: 0 });
        assert_eq!(r.insert(0, 6, 1, b"bc"), Fragment::Stored { delivered: 0 }, "overlap");
        assert_eq!(r.insert(0, 6, 0, b"abc"), Fragment::Duplicate);
        assert_eq!(r.insert(0, 6, 3, b"d"), Fragment::Stored { delivered: 2 });
        assert_eq!(r.pop().as_deref(), Some(&b"abcdef"[..]));
        assert_eq!(r.pop().as_deref(), Some(&b"xy"[..]));
        assert_eq!(r.insert(0, 6, 0, b"ab"), Fragment::Duplicate, "already delivered");
        assert_eq!(r.memory(), 0);
        assert_eq!(r.window(), 1 << 20);
    }

    #[test]
    fn contradictions_and_limits() {
        let mut r = Reassembly::new(1 << 20, 1000);
        assert_eq!(r.insert(0, 1001, 0, b"a"), Fragment::TooLarge);
        assert_eq!(r.insert(3, 10, 0, b"a"), Fragment::Stored { delivered: 0 });
        assert!(matches!(r.insert(3, 11, 1, b"b"), Fragment::Violation(_)));
    }

    #[test]
    fn memory_is_bounded_but_the_next_message_always_gets_in() {
        let limit = 4096;
        let mut r = Reassembly::new(limit, 100_000);
        // Later messages fill the memory...
        assert_eq!(r.insert(1, 3000, 0, b"a"), Fragment::Stored { delivered: 0 });
        assert_eq!(r.insert(2, 3000, 0, b"b"), Fragment::NoMemory);
        // ...but the next one in order is admitted beyond the limit.
        assert_eq!(r.insert(0, 2000, 0, b"c"), Fragment::Stored { delivered: 0 });
        assert!(r.memory() <= limit + 100_000 + MESSAGE_OVERHEAD);
        // The window counts bytes held, not reserved: the fragments still to come of
        // messages under way need no new memory.
        assert_eq!(r.window(), limit - 2 * (1 + MESSAGE_OVERHEAD));
        // Fragments of messages already reserved are always admitted.
        assert_eq!(r.insert(1, 3000, 1, &[7; 2999]), Fragment::Stored { delivered: 0 });
        assert_eq!(r.insert(0, 2000, 1, &[8; 1999]), Fragment::Stored { delivered: 2 });
        // With messages unread, nothing new gets in beyond the limit.
        assert_eq!(r.insert(2, 3000, 0, b"b"), Fragment::NoMemory);
        assert_eq!(r.pop().map(|m| m.len()), Some(2000));
        assert_eq!(r.pop().map(|m| m.len()), Some(3000));
        assert_eq!(r.insert(2, 3000, 0, b"b"), Fragment::Stored { delivered: 0 });
    }

    #[test]
    fn a_message_larger_than_the_memory_keeps_the_window_open_until_it_is_whole() {
        let limit = 4096;
        let mut r = Reassembly::new(limit, 100_000);
        assert_eq!(r.insert(0, 10_000, 0, &[1; 5000]), Fragment::Stored { delivered: 0 });
        // The limit is passed, but the 5000 bytes still missing are reserved already.
        assert_eq!(r.window(), 5000);
        assert_eq!(r.insert(0, 10_000, 5000, &[2; 4000]), Fragment::Stored { delivered: 0 });
        assert_eq!(r.window(), 1000);
        assert_eq!(r.insert(0, 10_000, 9000, &[3; 1000]), Fragment::Stored { delivered: 1 });
        assert_eq!(r.window(), 0, "delivered and unread: no room until it is read");
        assert_eq!(r.pop().map(|m| m.len()), Some(10_000));
        assert_eq!(r.window(), limit);
    }

    #[test]
    fn a_refused_message_shuts_the_window_until_its_memory_is_free() {
        let limit = 8192;
        let mut r = Reassembly::new(limit, 100_000);
        assert_eq!(r.insert(0, 3000, 0, &[0; 3000]), Fragment::Stored { delivered: 1 });
        assert_eq!(r.insert(1, 3000, 0, &[1; 3000]), Fragment::Stored { delivered: 1 });
        let open = r.window();
        assert!(open > 0 && open < 3000 + MESSAGE_OVERHEAD, "room, but not for a message: {open}");
        assert_eq!(r.insert(2, 3000, 0, &[2; 100]), Fragment::NoMemory);
        assert_eq!(r.window(), 0, "no use sending what would be dropped");
        assert!(r.pop().is_some());
        assert!(r.window() >= 3000, "the refused message fits now");
        assert_eq!(r.insert(2, 3000, 0, &[2; 100]), Fragment::Stored { delivered: 0 });
        // A refused message that becomes the next in order with nothing unread gets in.
        let mut r = Reassembly::new(4096, 100_000);
        assert_eq!(r.insert(0, 3000, 0, &[0; 3000]), Fragment::Stored { delivered: 1 });
        assert_eq!(r.insert(1, 50_000, 0, &[1; 100]), Fragment::NoMemory);
        assert_eq!(r.window(), 0);
        assert!(r.pop().is_some());
        assert!(r.window() > 0, "it would be admitted beyond the limit now");
    }

    #[test]
    fn a_message_cannot_be_shredded_into_unbounded_pieces() {
        let mut r = Reassembly::new(1 << 20, 100_000);
        for i in 0..MAX_PIECES as u32 {
            assert_eq!(r.insert(5, 100_000, i * 2, b"x"), Fragment::Stored { delivered: 0 });
        }
        assert_eq!(r.insert(5, 100_000, 10_000, b"x"), Fragment::NoMemory);
        // Filling a gap merges pieces and is always possible.
        assert_eq!(r.insert(5, 100_000, 1, b"y"), Fragment::Stored { delivered: 0 });
    }
}
