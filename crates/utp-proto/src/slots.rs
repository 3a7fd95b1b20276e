//! The table an endpoint keeps its connections in, with the two queues that schedule them:
//! connections with something to send, and timer deadlines.
//!
//! Slots are generation-checked, so a key that outlives its connection finds nothing
//! instead of another connection. Work is found without scanning: a round-robin queue of
//! slots that may have something to send, and a min-heap of deadlines in which each slot
//! keeps at most its earliest one (a later deadline is re-armed when that one fires).

use alloc::collections::{BinaryHeap, VecDeque};
use alloc::vec::Vec;
use core::cmp::Reverse;

use crate::Instant;

/// Names a slot of a [`Slots`] table: its index and the generation it was filled in.
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub(crate) struct SlotKey {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

#[derive(Debug)]
struct Slot<C> {
    generation: u32,
    item: Option<C>,
    /// The earliest deadline queued in the heap for this slot.
    timer: Option<Instant>,
    /// Whether the slot is in the ready queue.
    queued: bool,
}

/// Connections in generation-checked slots, with a ready queue and a timer heap.
#[derive(Debug)]
pub(crate) struct Slots<C> {
    slots: Vec<Slot<C>>,
    free: Vec<u32>,
    live: usize,
    ready: VecDeque<u32>,
    timers: BinaryHeap<Reverse<(Instant, u32, u32)>>,
}

impl<C> Default for Slots<C> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            ready: VecDeque::new(),
            timers: BinaryHeap::new(),
        }
    }
}

impl<C> Slots<C> {
    /// How many slots are filled.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Fills a free slot with `item`.
    pub(crate) fn insert(&mut self, item: C) -> SlotKey {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot { generation: 0, item: None, timer: None, queued: false });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.item = Some(item);
        slot.timer = None;
        self.live += 1;
        SlotKey { index, generation: slot.generation }
    }

    /// The item under `key`, unless that slot was emptied since.
    pub(crate) fn get(&self, key: SlotKey) -> Option<&C> {
        let slot = self.slots.get(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        slot.item.as_ref()
    }

    /// The item under `key`, mutably, unless that slot was emptied since.
    pub(crate) fn get_mut(&mut self, key: SlotKey) -> Option<&mut C> {
        let slot = self.slots.get_mut(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        slot.item.as_mut()
    }

    /// The item in slot `index`, whatever its generation.
    pub(crate) fn at(&self, index: u32) -> Option<&C> {
        self.slots.get(index as usize)?.item.as_ref()
    }

    /// The item in slot `index`, whatever its generation, mutably.
    pub(crate) fn at_mut(&mut self, index: u32) -> Option<&mut C> {
        self.slots.get_mut(index as usize)?.item.as_mut()
    }

    /// The key of the filled slot `index`.
    pub(crate) fn key(&self, index: u32) -> Option<SlotKey> {
        let slot = self.slots.get(index as usize)?;
        slot.item.as_ref()?;
        Some(SlotKey { index, generation: slot.generation })
    }

    /// Empties slot `index`; its keys find nothing from now on.
    pub(crate) fn remove(&mut self, index: u32) -> Option<C> {
        let slot = self.slots.get_mut(index as usize)?;
        let item = slot.item.take()?;
        slot.timer = None;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(index);
        self.live -= 1;
        Some(item)
    }

    /// Queues slot `index` for sending (once).
    pub(crate) fn schedule(&mut self, index: u32) {
        if let Some(slot) = self.slots.get_mut(index as usize) {
            if !slot.queued && slot.item.is_some() {
                slot.queued = true;
                self.ready.push_back(index);
            }
        }
    }

    /// The next slot queued for sending, taken off the queue.
    pub(crate) fn pop_ready(&mut self) -> Option<u32> {
        while let Some(index) = self.ready.pop_front() {
            if let Some(slot) = self.slots.get_mut(index as usize) {
                slot.queued = false;
                if slot.item.is_some() {
                    return Some(index);
                }
            }
        }
        None
    }

    /// Arms slot `index`'s timer at `at`, unless an earlier deadline is queued already.
    pub(crate) fn arm(&mut self, index: u32, at: Option<Instant>) {
        let Some(at) = at else { return };
        let Some(slot) = self.slots.get_mut(index as usize) else { return };
        if slot.timer.is_none_or(|queued| at < queued) {
            slot.timer = Some(at);
            self.timers.push(Reverse((at, index, slot.generation)));
        }
    }

    /// Takes the slots whose deadline has come, disarming them. A slot re-armed while they
    /// are handled waits for the next call, so one round of timeouts always ends.
    pub(crate) fn take_due(&mut self, now: Instant, due: &mut Vec<u32>) {
        due.clear();
        while let Some(&Reverse((t, index, generation))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(slot) = self.slots.get_mut(index as usize) else { continue };
            if slot.generation != generation || slot.timer != Some(t) {
                continue; // superseded
            }
            slot.timer = None;
            due.push(index);
        }
    }

    /// The earliest deadline queued (possibly a superseded one: handling it early is
    /// harmless).
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _, _))| *t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_keys_find_nothing_and_slots_are_reused() {
        let mut s = Slots::default();
        let a = s.insert("a");
        assert_eq!(s.get(a), Some(&"a"));
        assert_eq!(s.remove(a.index), Some("a"));
        let b = s.insert("b");
        assert_eq!(b.index, a.index);
        assert_eq!(s.get(a), None, "the old generation");
        assert_eq!(s.get(b), Some(&"b"));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn ready_queue_and_timers() {
        let mut s = Slots::default();
        let a = s.insert(1);
        let b = s.insert(2);
        s.schedule(b.index);
        s.schedule(a.index);
        s.schedule(b.index);
        assert_eq!(s.pop_ready(), Some(b.index));
        assert_eq!(s.pop_ready(), Some(a.index));
        assert_eq!(s.pop_ready(), None);
        let t = Instant::from_millis;
        s.arm(a.index, Some(t(10)));
        s.arm(a.index, Some(t(20)));
        s.arm(b.index, Some(t(5)));
        assert_eq!(s.next_timeout(), Some(t(5)));
        let mut due = Vec::new();
        s.take_due(t(10), &mut due);
        assert_eq!(due, [b.index, a.index]);
        s.take_due(t(30), &mut due);
        assert!(due.is_empty(), "the later arm was superseded by the earlier one");
        s.arm(a.index, Some(t(40)));
        s.remove(a.index);
        s.take_due(t(50), &mut due);
        assert!(due.is_empty(), "a removed slot's timer does not fire");
    }
}
