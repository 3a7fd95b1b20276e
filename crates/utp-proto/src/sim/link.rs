//! One direction of a simulated network path: [`Link`] and its [`LinkStats`].

use alloc::collections::{BinaryHeap, VecDeque};
use alloc::vec::Vec;
use core::cmp::Ordering;
use core::fmt;
use core::mem;
use core::time::Duration;

use super::LinkConfig;
use crate::{Instant, Rng};

/// How many spare datagram buffers a link keeps for reuse.
const FREE_BUFFERS: usize = 1024;

/// One direction of a simulated network path, impairing datagrams as its [`LinkConfig`]
/// says, in virtual time.
///
/// [`send`](Self::send) decides a datagram's whole fate at once — dropped, or when each of
/// its copies arrives and with which bytes — from the link's seeded [`Rng`], so the same
/// seed and the same sends always give the same deliveries. [`recv`](Self::recv) then
/// hands out the copies whose arrival time has come, earliest first, ties in send order.
///
/// Sending and receiving cost `O(log n)` in the number of datagrams in flight, and the
/// datagram buffers are recycled, so a link carries hundreds of megabytes quickly.
///
/// ```
/// use core::time::Duration;
/// use utp_proto::Instant;
/// use utp_proto::sim::{Link, LinkConfig};
///
/// let mut link = Link::new(LinkConfig::default().with_latency(Duration::from_millis(5)), 1);
/// link.send(Instant::ZERO, b"hello");
/// assert_eq!(link.next_arrival(), Some(Instant::from_millis(5)));
///
/// let mut buf = Vec::new();
/// assert_eq!(link.recv(Instant::from_millis(4), &mut buf), None);
/// assert_eq!(link.recv(Instant::from_millis(5), &mut buf), Some(Instant::from_millis(5)));
/// assert_eq!(buf, b"hello");
/// ```
pub struct Link {
    config: LinkConfig,
    rng: Rng,
    /// Whether the burst-loss model is in its bad state.
    burst_bad: bool,
    /// When the bottleneck finishes transmitting everything it accepted, in microseconds
    /// multiplied by `busy_scale` (so transmission times need no rounding).
    busy_until: u128,
    /// The bandwidth `busy_until` is scaled by.
    busy_scale: u64,
    /// When each datagram held by the bottleneck leaves it, oldest first.
    departures: VecDeque<Instant>,
    /// The latest arrival scheduled so far for a copy that was not reordered: jitter never
    /// lets a copy arrive before it.
    fifo_tail: Instant,
    in_flight: BinaryHeap<Arrival>,
    /// Send order of the next copy, to break ties in arrival time.
    next_seq: u64,
    free: Vec<Vec<u8>>,
    stats: LinkStats,
}

/// What happened to the datagrams offered to a [`Link`].
///
/// Every datagram passed to [`Link::send`] is counted in `sent` and in at most one of the
/// four drop counters; each copy handed out by [`Link::recv`] is counted in `delivered`.
/// Once nothing is in flight, `delivered == sent - dropped() + duplicated`.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
#[non_exhaustive]
pub struct LinkStats {
    /// Datagrams offered to the link.
    pub sent: u64,
    /// Bytes offered to the link.
    pub bytes_sent: u64,
    /// Copies handed out by [`Link::recv`].
    pub delivered: u64,
    /// Bytes handed out by [`Link::recv`].
    pub bytes_delivered: u64,
    /// Datagrams dropped for being longer than the MTU.
    pub dropped_mtu: u64,
    /// Datagrams dropped because the bottleneck queue was full.
    pub dropped_queue: u64,
    /// Datagrams lost to independent random loss.
    pub lost_random: u64,
    /// Datagrams lost to the burst-loss model.
    pub lost_burst: u64,
    /// Extra copies created by duplication.
    pub duplicated: u64,
    /// Copies held back by the reorder delay.
    pub reordered: u64,
    /// Copies with a flipped bit.
    pub corrupted: u64,
}

impl LinkStats {
    /// Datagrams dropped for any reason (MTU, full queue, random or burst loss).
    pub fn dropped(&self) -> u64 {
        self.dropped_mtu + self.dropped_queue + self.lost_random + self.lost_burst
    }
}

impl Link {
    /// A link impairing traffic as `config` says, with every random choice drawn from
    /// `seed`.
    ///
    /// # Panics
    ///
    /// If `config` is invalid (see [`LinkConfig::validate`]).
    #[track_caller]
    pub fn new(config: LinkConfig, seed: u64) -> Self {
        if let Err(e) = config.validate() {
            panic!("{e}");
        }
        let mut rng = Rng::new(seed);
        let burst_bad = config.burst_loss.is_some_and(|ge| rng.chance(ge.bad_fraction()));
        Self {
            config,
            rng,
            burst_bad,
            busy_until: 0,
            busy_scale: 1,
            departures: VecDeque::new(),
            fifo_tail: Instant::ZERO,
            in_flight: BinaryHeap::new(),
            next_seq: 0,
            free: Vec::new(),
            stats: LinkStats::default(),
        }
    }

    /// The impairments in force.
    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    /// Changes the impairments for datagrams sent from now on; those already in flight keep
    /// their fate. The bottleneck keeps what it holds and drains it at the new rate.
    ///
    /// # Panics
    ///
    /// If `config` is invalid (see [`LinkConfig::validate`]).
    #[track_caller]
    pub fn set_config(&mut self, config: LinkConfig) {
        if let Err(e) = config.validate() {
            panic!("{e}");
        }
        if let (None, Some(ge)) = (self.config.burst_loss, config.burst_loss) {
            self.burst_bad = self.rng.chance(ge.bad_fraction());
        }
        self.config = config;
    }

    /// Offers `datagram`, sent at `now`, to the link, which decides its fate at once (see
    /// [`LinkConfig`] for the stages it goes through).
    ///
    /// `now` should not go backwards from one call to the next.
    pub fn send(&mut self, now: Instant, datagram: &[u8]) {
        self.stats.sent += 1;
        self.stats.bytes_sent += datagram.len() as u64;
        if datagram.len() > self.config.mtu {
            self.stats.dropped_mtu += 1;
            return;
        }
        let departure = match self.config.bandwidth {
            None => now,
            Some(bandwidth) => match self.bottleneck(now, datagram.len(), bandwidth) {
                Some(departure) => departure,
                None => {
                    self.stats.dropped_queue += 1;
                    return;
                }
            },
        };
        if self.burst_lost() {
            self.stats.lost_burst += 1;
            return;
        }
        if self.rng.chance(self.config.loss) {
            self.stats.lost_random += 1;
            return;
        }
        self.schedule(departure, datagram);
        if self.rng.chance(self.config.duplicate) {
            self.stats.duplicated += 1;
            self.schedule(departure, datagram);
        }
    }

    /// When the next copy arrives; `None` when nothing is in flight.
    pub fn next_arrival(&self) -> Option<Instant> {
        self.in_flight.peek().map(|a| a.at)
    }

    /// Hands out the next copy due at or before `now` by swapping it into `buf` (the link
    /// keeps `buf`'s old allocation for reuse), and returns its arrival time; `None`, with
    /// `buf` untouched, when no copy is due yet.
    pub fn recv(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Instant> {
        if self.in_flight.peek()?.at > now {
            return None;
        }
        let Arrival { at, mut data, .. } = self.in_flight.pop()?;
        mem::swap(buf, &mut data);
        if self.free.len() < FREE_BUFFERS {
            self.free.push(data);
        }
        self.stats.delivered += 1;
        self.stats.bytes_delivered += buf.len() as u64;
        Some(at)
    }

    /// How many copies are in flight (scheduled but not yet handed out).
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// What has happened to the traffic so far.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// Admits a datagram of `len` bytes to the bottleneck at `now` and returns when it
    /// leaves it; `None` when the queue is full.
    fn bottleneck(&mut self, now: Instant, len: usize, bandwidth: u64) -> Option<Instant> {
        while self.departures.front().is_some_and(|&d| d <= now) {
            self.departures.pop_front();
        }
        if self.departures.len() >= self.config.queue_capacity {
            return None;
        }
        let scale = u128::from(bandwidth);
        if self.busy_scale != bandwidth {
            // The rate changed: re-express the busy horizon in the new unit.
            self.busy_until = self.busy_until.div_ceil(u128::from(self.busy_scale)) * scale;
            self.busy_scale = bandwidth;
        }
        let start = self.busy_until.max(u128::from(now.as_micros()) * scale);
        self.busy_until = start + len as u128 * 1_000_000;
        let departure = Instant::from_micros(
            u64::try_from(self.busy_until.div_ceil(scale)).unwrap_or(u64::MAX),
        );
        self.departures.push_back(departure);
        Some(departure)
    }

    /// Runs the burst-loss model for one datagram: whether it is lost.
    fn burst_lost(&mut self) -> bool {
        let Some(ge) = self.config.burst_loss else {
            return false;
        };
        let (loss, leave) = if self.burst_bad {
            (ge.loss_in_bad, ge.p_bad_to_good)
        } else {
            (ge.loss_in_good, ge.p_good_to_bad)
        };
        let lost = self.rng.chance(loss);
        if self.rng.chance(leave) {
            self.burst_bad = !self.burst_bad;
        }
        lost
    }

    /// Schedules one copy of `datagram`, which left the bottleneck at `departure`.
    fn schedule(&mut self, departure: Instant, datagram: &[u8]) {
        let mut at = departure + self.config.latency;
        if !self.config.jitter.is_zero() {
            let jitter = u64::try_from(self.config.jitter.as_micros()).unwrap_or(u64::MAX);
            at += Duration::from_micros(self.rng.below(jitter.saturating_add(1)));
        }
        at = at.max(self.fifo_tail);
        self.fifo_tail = at;
        if self.rng.chance(self.config.reorder) {
            self.stats.reordered += 1;
            at += self.config.reorder_delay;
        }
        let mut data = self.free.pop().unwrap_or_default();
        data.clear();
        data.extend_from_slice(datagram);
        if !data.is_empty() && self.rng.chance(self.config.corrupt) {
            self.stats.corrupted += 1;
            let bit = self.rng.below(data.len() as u64 * 8);
            data[(bit / 8) as usize] ^= 1 << (bit % 8);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.in_flight.push(Arrival { at, seq, data });
    }
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("config", &self.config)
            .field("in_flight", &self.in_flight.len())
            .field("next_arrival", &self.next_arrival())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// A copy in flight. Ordered so that the max-heap pops the earliest arrival, and among
/// equal arrivals the first sent.
struct Arrival {
    at: Instant,
    seq: u64,
    data: Vec<u8>,
}

impl Ord for Arrival {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

impl PartialOrd for Arrival {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Arrival {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Arrival {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_deliver_in_send_order() {
        let mut link = Link::new(LinkConfig::default(), 0);
        for i in 0..100u8 {
            link.send(Instant::ZERO, &[i]);
        }
        let mut buf = Vec::new();
        for i in 0..100u8 {
            assert_eq!(
                link.recv(Instant::from_millis(10), &mut buf),
                Some(Instant::from_millis(10))
            );
            assert_eq!(buf, [i]);
        }
        assert_eq!(link.recv(Instant::MAX, &mut buf), None);
    }

    #[test]
    fn buffers_are_recycled() {
        let mut link = Link::new(LinkConfig::default(), 0);
        let mut buf = Vec::with_capacity(64);
        for _ in 0..10 {
            link.send(Instant::ZERO, &[1; 32]);
            assert!(link.recv(Instant::MAX, &mut buf).is_some());
        }
        assert_eq!(link.free.len(), 1);
    }

    #[test]
    fn bandwidth_change_keeps_the_backlog() {
        let config = LinkConfig::default().with_latency(Duration::ZERO).with_bandwidth(1_000);
        let mut link = Link::new(config, 0);
        link.send(Instant::ZERO, &[0; 100]); // leaves at 100 ms
        link.set_config(config.with_bandwidth(10_000));
        link.send(Instant::ZERO, &[0; 100]); // waits, then 10 ms more
        let mut buf = Vec::new();
        assert_eq!(link.recv(Instant::MAX, &mut buf), Some(Instant::from_millis(100)));
        assert_eq!(link.recv(Instant::MAX, &mut buf), Some(Instant::from_millis(110)));
    }
}
