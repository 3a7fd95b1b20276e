//! The sending side of messages: the queue of messages, the packets in flight, and loss
//! detection (acknowledgements, REPEATs, timeouts).
//!
//! Every DATA packet gets a new packet number, retransmissions included, so a packet is
//! acknowledged, lost or in flight, and never ambiguous. A fragment declared lost is queued
//! again and goes out under a new number; it is done once any of its transmissions is
//! acknowledged. A message leaves the queue once all its fragments are acknowledged.
//!
//! Losses are found by time, as RACK does (RFC 8985): a packet is lost once a packet sent
//! after it has been acknowledged and it has been outstanding longer than that packet's
//! round trip plus a reordering window. Counting packets instead (three later ones
//! acknowledged) declares a packet lost as soon as reordering delays it by three packets'
//! worth of time, which at high rates is microseconds; time does not depend on the rate.

use alloc::collections::{BTreeSet, VecDeque};
use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use crate::Instant;
use crate::rudp::config::MESSAGE_OVERHEAD;

/// A message queued for sending.
#[derive(Debug)]
struct OutMessage {
    data: Vec<u8>,
    fragments: u32,
    /// One bit per fragment: acknowledged.
    acked: Vec<u64>,
    acked_count: u32,
}

impl OutMessage {
    fn is_acked(&self, fragment: u32) -> bool {
        self.acked[(fragment / 64) as usize] & (1 << (fragment % 64)) != 0
    }

    /// Marks a fragment acknowledged; returns whether it was new.
    fn ack(&mut self, fragment: u32) -> bool {
        let word = &mut self.acked[(fragment / 64) as usize];
        let bit = 1 << (fragment % 64);
        if *word & bit != 0 {
            return false;
        }
        *word |= bit;
        self.acked_count += 1;
        true
    }
}

#[derive(Clone, Copy, Debug, Eq, PartialEq)]
/// What became of a packet sent: still out (in flight), acknowledged, or declared lost.
enum Flight {
    Out,
    Acked,
    Lost,
}

#[derive(Clone, Copy, Debug)]
struct SentPacket {
    message: u64,
    fragment: u32,
    cost: u32,
    sent_at: Instant,
    state: Flight,
}

/// One fragment to put in a DATA packet.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) struct Next {
    pub(crate) message: u64,
    pub(crate) fragment: u32,
    /// Whether it was sent before.
    pub(crate) retransmit: bool,
}

/// What one DATA-ACK did.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct AckOutcome {
    /// Cost units newly acknowledged.
    pub(crate) acked: usize,
    /// A round-trip sample, when the largest acknowledged packet was newly acknowledged.
    pub(crate) rtt: Option<Duration>,
    /// Packets declared lost by the packet threshold.
    pub(crate) lost: usize,
}

/// The queue of messages and the packets in flight.
#[derive(Debug)]
pub(crate) struct Sender {
    fragment_size: usize,
    /// Messages not yet fully acknowledged, from `base`.
    messages: VecDeque<OutMessage>,
    base: u64,
    /// The next fragment never sent: (message number, fragment).
    cursor: (u64, u32),
    /// Cost of `messages`: lengths plus the overhead per message.
    queued: usize,
    /// Packets from `sent_base`, the oldest still in flight, to `next_pn - 1`.
    sent: VecDeque<SentPacket>,
    sent_base: u64,
    next_pn: u64,
    in_flight: usize,
    /// Fragments declared lost, to send again, oldest message first.
    lost: BTreeSet<(u64, u32)>,
    /// The most recently sent packet acknowledged: when it was sent, its number, and its
    /// round trip (RACK's reference).
    rack: Option<(Instant, u64, Duration)>,
    /// When the oldest packet not yet lost (but sent before `rack`'s) will be, if no
    /// acknowledgement comes first.
    loss_deadline: Option<Instant>,
}

impl Sender {
    pub(crate) fn new(fragment_size: usize) -> Self {
        Self {
            fragment_size,
            messages: VecDeque::new(),
            base: 0,
            cursor: (0, 0),
            queued: 0,
            sent: VecDeque::new(),
            sent_base: 0,
            next_pn: 0,
            in_flight: 0,
            lost: BTreeSet::new(),
            rack: None,
            loss_deadline: None,
        }
    }

    /// Cost units of the messages queued (lengths plus the overhead per message).
    pub(crate) fn queued(&self) -> usize {
        self.queued
    }

    /// Cost units in flight.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Whether every message queued so far has been acknowledged.
    pub(crate) fn is_flushed(&self) -> bool {
        self.messages.is_empty()
    }

    /// The packet number the next DATA gets.
    pub(crate) fn next_pn(&self) -> u64 {
        self.next_pn
    }

    /// The number the next message gets.
    pub(crate) fn next_message(&self) -> u64 {
        self.base + self.messages.len() as u64
    }

    /// Every message numbered below this has had each of its fragments sent at least once:
    /// the most a receiver can have delivered (messages still queued were never sent).
    pub(crate) fn sent_messages(&self) -> u64 {
        self.cursor.0
    }

    /// Queues a message; returns its number. The caller checked its size.
    pub(crate) fn push(&mut self, data: &[u8]) -> u64 {
        let fragments = data.len().div_ceil(self.fragment_size).max(1) as u32;
        let number = self.next_message();
        self.queued += data.len() + MESSAGE_OVERHEAD;
        self.messages.push_back(OutMessage {
            data: data.to_vec(),
            fragments,
            acked: vec![0; fragments.div_ceil(64) as usize],
            acked_count: 0,
        });
        number
    }

    fn message(&self, number: u64) -> Option<&OutMessage> {
        let index = usize::try_from(number.checked_sub(self.base)?).ok()?;
        self.messages.get(index)
    }

    /// The message's length and the fragment's bytes.
    pub(crate) fn fragment(&self, message: u64, fragment: u32) -> Option<(u32, u32, &[u8])> {
        let m = self.message(message)?;
        let offset = fragment as usize * self.fragment_size;
        let end = (offset + self.fragment_size).min(m.data.len());
        Some((m.data.len() as u32, offset as u32, m.data.get(offset..end)?))
    }

    /// The cost of sending a fragment: its length plus the overhead.
    pub(crate) fn cost(&self, next: Next) -> usize {
        self.fragment(next.message, next.fragment).map_or(0, |(_, _, f)| f.len()) + MESSAGE_OVERHEAD
    }

    /// What to send next, if anything: a lost fragment first, then the next new one.
    pub(crate) fn peek(&mut self) -> Option<Next> {
        while let Some(&(message, fragment)) = self.lost.first() {
            if self.message(message).is_some_and(|m| !m.is_acked(fragment)) {
                return Some(Next { message, fragment, retransmit: true });
            }
            self.lost.pop_first();
        }
        let (message, fragment) = self.cursor;
        let m = self.message(message)?;
        debug_assert!(fragment < m.fragments);
        Some(Next { message, fragment, retransmit: false })
    }

    /// Records that `next` (from [`peek`](Self::peek)) went out now as packet number
    /// `next_pn`, which it returns.
    pub(crate) fn sent(&mut self, next: Next, now: Instant) -> u64 {
        if next.retransmit {
            self.lost.remove(&(next.message, next.fragment));
        } else {
            let fragments = self.message(next.message).map_or(1, |m| m.fragments);
            self.cursor = if next.fragment + 1 >= fragments {
                (next.message + 1, 0)
            } else {
                (next.message, next.fragment + 1)
            };
        }
        let cost = self.cost(next);
        let pn = self.next_pn;
        if self.sent.is_empty() {
            self.sent_base = pn;
        }
        self.sent.push_back(SentPacket {
            message: next.message,
            fragment: next.fragment,
            cost: cost as u32,
            sent_at: now,
            state: Flight::Out,
        });
        self.next_pn += 1;
        self.in_flight += cost;
        pn
    }

    /// When the oldest packet in flight was sent.
    pub(crate) fn oldest_in_flight(&self) -> Option<Instant> {
        self.sent.front().map(|p| p.sent_at)
    }

    fn packet_mut(&mut self, pn: u64) -> Option<&mut SentPacket> {
        let index = usize::try_from(pn.checked_sub(self.sent_base)?).ok()?;
        self.sent.get_mut(index)
    }

    /// Handles a DATA-ACK's `largest`, `ack_delay` and ranges (`(start, len)`, highest
    /// first), then looks for losses with the reordering window `reorder`.
    pub(crate) fn on_ack(
        &mut self,
        now: Instant,
        largest: u64,
        ack_delay: Duration,
        ranges: impl Iterator<Item = (u64, u32)>,
        reorder: Duration,
    ) -> AckOutcome {
        let mut outcome = AckOutcome::default();
        if largest >= self.next_pn {
            return outcome; // acknowledges what was never sent: the caller counts it
        }
        for (start, len) in ranges {
            let end = start.saturating_add(u64::from(len) - 1).min(self.next_pn - 1);
            let mut pn = start.max(self.sent_base);
            while pn <= end {
                let Some(p) = self.packet_mut(pn) else { break };
                if p.state == Flight::Out {
                    p.state = Flight::Acked;
                    let (cost, message, fragment, sent_at) =
                        (p.cost as usize, p.message, p.fragment, p.sent_at);
                    self.in_flight -= cost;
                    outcome.acked += cost;
                    let rtt = now.saturating_duration_since(sent_at);
                    if pn == largest {
                        // RFC 9002 5.3: subtract the peer's delay unless that goes below zero.
                        outcome.rtt = Some(rtt.checked_sub(ack_delay).unwrap_or(rtt));
                    }
                    if self.rack.is_none_or(|(_, rack_pn, _)| pn > rack_pn) {
                        self.rack = Some((sent_at, pn, rtt));
                    }
                    self.ack_fragment(message, fragment);
                }
                pn += 1;
            }
        }
        outcome.lost = self.detect_losses(now, reorder);
        outcome
    }

    /// Declares lost every packet in flight sent before the most recently sent packet
    /// acknowledged that has been outstanding longer than that packet's round trip plus
    /// `reorder`; re-arms the loss deadline for the next one. Returns how many.
    pub(crate) fn detect_losses(&mut self, now: Instant, reorder: Duration) -> usize {
        self.loss_deadline = None;
        let mut lost = 0;
        if let Some((_, rack_pn, rack_rtt)) = self.rack {
            let mut pn = self.sent_base;
            while pn < rack_pn {
                let Some(p) = self.packet_mut(pn) else { break };
                if p.state == Flight::Out {
                    let deadline = p.sent_at + rack_rtt + reorder;
                    if now < deadline {
                        // Later packets were sent later, so their deadlines are later too.
                        self.loss_deadline = Some(deadline);
                        break;
                    }
                    self.declare_lost(pn);
                    lost += 1;
                }
                pn += 1;
            }
        }
        self.clean();
        lost
    }

    /// When [`detect_losses`](Self::detect_losses) should run again, if no acknowledgement
    /// comes first.
    pub(crate) fn loss_deadline(&self) -> Option<Instant> {
        self.loss_deadline
    }

    /// Handles a REPEAT: the named packets are missing at the peer, which has received
    /// packets sent after them. Each is declared lost once it has been outstanding for a
    /// round trip (`rtt`) plus `reorder`, as the acknowledgement of a later packet would
    /// have it; younger ones are left to the loss detection. Returns how many were lost.
    pub(crate) fn on_repeat(
        &mut self,
        now: Instant,
        ranges: impl Iterator<Item = (u64, u32)>,
        rtt: Duration,
        reorder: Duration,
    ) -> usize {
        let mut lost = 0;
        for (start, len) in ranges {
            if self.next_pn == 0 {
                break;
            }
            let end = start.saturating_add(u64::from(len) - 1).min(self.next_pn - 1);
            let mut pn = start.max(self.sent_base);
            while pn <= end {
                let Some(p) = self.packet_mut(pn) else { break };
                if p.state == Flight::Out && now >= p.sent_at + rtt + reorder {
                    self.declare_lost(pn);
                    lost += 1;
                }
                pn += 1;
            }
        }
        self.clean();
        lost
    }

    /// The probe timeout fired: queue the oldest fragment in flight to be sent again (its
    /// first transmission stays in flight). Returns whether there was one.
    pub(crate) fn probe(&mut self) -> bool {
        let Some(p) = self.sent.front() else { return false };
        let (message, fragment) = (p.message, p.fragment);
        if self.message(message).is_some_and(|m| !m.is_acked(fragment)) {
            self.lost.insert((message, fragment));
            return true;
        }
        false
    }

    /// Persistent congestion: every packet in flight is lost. Returns how many.
    pub(crate) fn on_timeout(&mut self) -> usize {
        let mut lost = 0;
        let mut pn = self.sent_base;
        while self.packet_mut(pn).is_some() {
            if self.declare_lost(pn) {
                lost += 1;
            }
            pn += 1;
        }
        self.loss_deadline = None;
        self.clean();
        lost
    }

    /// Handles a DATA-ACK's `delivered`: every message below it was delivered, so all its
    /// fragments count as acknowledged (the ranges may not have named them all). Returns the
    /// cost units of packets in flight that this acknowledges.
    pub(crate) fn on_delivered(&mut self, delivered: u64) -> usize {
        if delivered <= self.base {
            return 0;
        }
        let upto = usize::try_from(delivered - self.base).unwrap_or(usize::MAX);
        for m in self.messages.iter_mut().take(upto) {
            for fragment in 0..m.fragments {
                m.ack(fragment);
            }
        }
        let mut acked = 0;
        for p in self.sent.iter_mut() {
            if p.state == Flight::Out && p.message < delivered {
                p.state = Flight::Acked;
                self.in_flight -= p.cost as usize;
                acked += p.cost as usize;
            }
        }
        self.clean();
        acked
    }

    fn declare_lost(&mut self, pn: u64) -> bool {
        let Some(p) = self.packet_mut(pn) else { return false };
        if p.state != Flight::Out {
            return false;
        }
        p.state = Flight::Lost;
        let (cost, message, fragment) = (p.cost as usize, p.message, p.fragment);
        self.in_flight -= cost;
        if self.message(message).is_some_and(|m| !m.is_acked(fragment)) {
            self.lost.insert((message, fragment));
        }
        true
    }

    fn ack_fragment(&mut self, message: u64, fragment: u32) {
        let Some(index) = message.checked_sub(self.base).and_then(|i| usize::try_from(i).ok())
        else {
            return;
        };
        if let Some(m) = self.messages.get_mut(index) {
            m.ack(fragment);
        }
    }

    /// Forgets resolved packets at the front and fully acknowledged messages at the front.
    fn clean(&mut self) {
        while self.sent.front().is_some_and(|p| p.state != Flight::Out) {
            self.sent.pop_front();
            self.sent_base += 1;
        }
        if self.sent.is_empty() {
            self.sent_base = self.next_pn;
        }
        while self.messages.front().is_some_and(|m| m.acked_count == m.fragments) {
            if let Some(m) = self.messages.pop_front() {
                self.queued -= m.data.len() + MESSAGE_OVERHEAD;
            }
            self.base += 1;
        }
        if self.cursor.0 < self.base {
            self.cursor = (self.base, 0);
        }
    }

    /// Drops everything queued and in flight (the connection closed).
    pub(crate) fn clear(&mut self) {
        self.base += self.messages.len() as u64;
        self.cursor = (self.base, 0);
        self.messages.clear();
        self.sent.clear();
        self.lost.clear();
        self.sent_base = self.next_pn;
        self.queued = 0;
        self.in_flight = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn send_all(s: &mut Sender, now: Instant) -> Vec<(u64, Next)> {
        let mut out = Vec::new();
        while let Some(next) = s.peek() {
            let pn = s.sent(next, now);
            out.push((pn, next));
        }
        out
    }

    const REORDER: Duration = Duration::from_millis(5);

    #[test]
    fn messages_split_into_fragments_and_leave_when_acknowledged() {
        let mut s = Sender::new(4);
        assert_eq!(s.push(b"abcdefghij"), 0);
        assert_eq!(s.push(b""), 1);
        let sent = send_all(&mut s, t(0));
        assert_eq!(sent.len(), 4);
        assert_eq!(s.fragment(0, 2), Some((10, 8, &b"ij"[..])));
        assert_eq!(s.fragment(1, 0), Some((0, 0, &b""[..])));
        assert_eq!(s.in_flight(), 10 + 4 * MESSAGE_OVERHEAD);
        let out = s.on_ack(t(50), 3, Duration::ZERO, [(0, 4)].into_iter(), REORDER);
        assert_eq!(out.rtt, Some(Duration::from_millis(50)));
        assert_eq!(out.lost, 0);
        assert!(s.is_flushed());
        assert_eq!(s.in_flight(), 0);
        assert_eq!(s.queued(), 0);
    }

    #[test]
    fn a_packet_is_lost_once_a_later_one_is_acknowledged_and_time_has_passed() {
        let mut s = Sender::new(10);
        for _ in 0..5 {
            s.push(b"x");
        }
        for i in 0..5 {
            let next = s.peek().unwrap();
            s.sent(next, t(i));
        }
        // 1 is missing when 2..=4 are acknowledged at 40 ms: 4 took 36 ms, so 1 is late
        // from 1 + 36 + 5 = 42 ms on, however many packets came after it.
        let out = s.on_ack(t(40), 4, Duration::ZERO, [(2, 3), (0, 1)].into_iter(), REORDER);
        assert_eq!(out.lost, 0, "could still be reordered");
        assert_eq!(s.loss_deadline(), Some(t(42)));
        assert_eq!(s.detect_losses(t(41), REORDER), 0);
        assert_eq!(s.detect_losses(t(42), REORDER), 1);
        assert_eq!(s.loss_deadline(), None);
        let next = s.peek().unwrap();
        assert_eq!(next, Next { message: 1, fragment: 0, retransmit: true });
        assert_eq!(s.sent(next, t(43)), 5, "a new packet number");
        assert!(!s.is_flushed());
        // A late acknowledgement of the old number is ignored; the new one completes.
        s.on_ack(t(60), 5, Duration::ZERO, [(5, 1)].into_iter(), REORDER);
        assert!(s.is_flushed());
        assert_eq!(s.peek(), None);
    }

    #[test]
    fn reordering_within_the_window_is_not_loss() {
        let mut s = Sender::new(10);
        for _ in 0..100 {
            s.push(b"x");
        }
        send_all(&mut s, t(0));
        // 0 arrives 3 ms after the 99 packets sent with it: no loss declared.
        let out = s.on_ack(t(20), 99, Duration::ZERO, [(1, 99)].into_iter(), REORDER);
        assert_eq!(out.lost, 0);
        let out = s.on_ack(t(23), 99, Duration::ZERO, [(0, 100)].into_iter(), REORDER);
        assert_eq!(out.lost, 0);
        assert!(s.is_flushed());
    }

    #[test]
    fn repeats_probes_and_persistent_congestion() {
        let mut s = Sender::new(10);
        for _ in 0..4 {
            s.push(b"y");
        }
        send_all(&mut s, t(0));
        let rtt = Duration::from_millis(20);
        assert_eq!(s.on_repeat(t(10), [(1, 2)].into_iter(), rtt, REORDER), 0, "too young");
        assert_eq!(s.on_repeat(t(25), [(1, 2)].into_iter(), rtt, REORDER), 2);
        assert_eq!(s.on_repeat(t(26), [(1, 2)].into_iter(), rtt, REORDER), 0, "already lost");
        let again = send_all(&mut s, t(30));
        assert_eq!(again.iter().map(|(pn, _)| *pn).collect::<Vec<_>>(), [4, 5]);
        assert!(s.probe(), "the oldest in flight (packet 0) is queued again");
        assert_eq!(s.peek(), Some(Next { message: 0, fragment: 0, retransmit: true }));
        assert_eq!(s.on_timeout(), 4, "0, 3, 4 and 5 were in flight");
        assert_eq!(s.oldest_in_flight(), None);
        assert_eq!(send_all(&mut s, t(40)).len(), 4);
        let never = s.on_ack(t(41), 99, Duration::ZERO, [(0, 100)].into_iter(), REORDER);
        assert_eq!(never.acked, 0, "acknowledges what was never sent");
    }

    #[test]
    fn the_peer_delay_is_taken_out_of_the_sample() {
        let mut s = Sender::new(10);
        s.push(b"z");
        send_all(&mut s, t(0));
        let out = s.on_ack(t(30), 0, Duration::from_millis(10), [(0, 1)].into_iter(), REORDER);
        assert_eq!(out.rtt, Some(Duration::from_millis(20)));
    }
}
