//! Two machines talking over two simulated links in virtual time: [`Pair`], and the
//! [`Livelock`] it reports when they never settle.

use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use super::{Link, LinkConfig, LinkStats};
use crate::{Instant, Machine, Rng};

/// How many steps [`Pair::drive`] and [`Pair::drive_for`] take before giving up, unless
/// changed with [`Pair::set_step_limit`].
pub const DEFAULT_STEP_LIMIT: u64 = 10_000_000;

/// How many consecutive steps may pass without virtual time advancing before the pair is
/// declared stuck, unless changed with [`Pair::set_stall_limit`].
pub const DEFAULT_STALL_LIMIT: u64 = 10_000;

/// How many transmits one machine may return in a single drain before it is declared to
/// flood (its `poll_transmit` presumably never returns `None`).
pub const MAX_TRANSMITS_PER_DRAIN: usize = 1 << 20;

/// Two machines, `a` and `b`, connected by two seeded [`Link`]s (`a → b` and `b → a`) and
/// stepped in virtual time.
///
/// Each [`step`](Self::step) drains both machines' transmits into the links, jumps the
/// clock to the next thing that happens (a datagram arriving or a machine's timeout),
/// delivers every datagram due and fires every timer due, and drains the transmits again.
/// Nothing else reads a clock, so a run depends only on the machines, the link
/// configurations and the seed: the same inputs replay exactly.
///
/// The pair never calls [`poll_event`](Machine::poll_event): events belong to the test,
/// which reads them through the public [`a`](Self::a) and [`b`](Self::b) fields, from a
/// [`drive_until`](Self::drive_until) predicate or between drives, and may call the
/// machines' application methods at [`now`](Self::now) the same way. The next step drains
/// whatever those calls made the machines want to send.
///
/// See the [module documentation](super) for what "idle" means and which `drive_*` method
/// to use.
pub struct Pair<A: Machine, B: Machine<Peer = A::Peer>> {
    /// The first machine; it sends to [`b_addr`](Self::b_addr) over the `a → b` link.
    pub a: A,
    /// The second machine; it sends to [`a_addr`](Self::a_addr) over the `b → a` link.
    pub b: B,
    a_addr: A::Peer,
    b_addr: A::Peer,
    a_to_b: Link,
    b_to_a: Link,
    now: Instant,
    tx: Vec<u8>,
    rx: Vec<u8>,
    misdirected: [u64; 2],
    steps: u64,
    stalled: u64,
    stall_limit: u64,
    step_limit: u64,
    flood: Option<Side>,
}

/// Statistics of a [`Pair`]: its two links, and what the harness itself dropped.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
#[non_exhaustive]
pub struct PairStats {
    /// The link from `a` to `b`.
    pub a_to_b: LinkStats,
    /// The link from `b` to `a`.
    pub b_to_a: LinkStats,
    /// Datagrams `a` addressed to someone other than `b` (dropped).
    pub misdirected_a: u64,
    /// Datagrams `b` addressed to someone other than `a` (dropped).
    pub misdirected_b: u64,
    /// Steps taken since the pair was made.
    pub steps: u64,
}

/// One of the two machines of a [`Pair`].
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub enum Side {
    /// [`Pair::a`].
    A,
    /// [`Pair::b`].
    B,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::A => "a",
            Self::B => "b",
        })
    }
}

/// Why a [`Pair`] drive gave up.
#[derive(Clone, Copy, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Livelock {
    /// The step limit was reached with work still pending: the machines keep talking or
    /// keep a timer armed (a keepalive is enough).
    #[error(
        "still busy at the step limit: {0}; machines with periodic timers (keepalives) never \
         go idle: drive them with drive_until or drive_for"
    )]
    StepLimit(Snapshot),
    /// Many consecutive steps passed without virtual time advancing: typically a machine
    /// whose `poll_timeout` stays at or before `now` after `handle_timeout`, or machines
    /// answering each other forever over zero-latency links.
    #[error(
        "stuck: {stalled} consecutive steps without virtual time advancing (a timeout that \
         stays at or before now after handle_timeout?): {snapshot}"
    )]
    Stuck {
        /// Consecutive steps taken at the same instant.
        stalled: u64,
        /// The state when the pair gave up.
        snapshot: Snapshot,
    },
    /// A machine returned [`MAX_TRANSMITS_PER_DRAIN`] transmits in a single drain.
    #[error(
        "machine {side} returned {MAX_TRANSMITS_PER_DRAIN} transmits in one drain (does its \
         poll_transmit ever return None?): {snapshot}"
    )]
    Flood {
        /// The machine that floods.
        side: Side,
        /// The state when the pair gave up.
        snapshot: Snapshot,
    },
    /// Only from [`Pair::drive_until`]: the pair went idle (nothing in flight, no timer
    /// armed) while the predicate was still false, so nothing more would ever happen.
    #[error("idle before the predicate held, so it never will: {0}")]
    Idle(Snapshot),
}

/// Where a [`Pair`] stood when it gave up, for [`Livelock`] messages.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct Snapshot {
    /// Virtual time.
    pub now: Instant,
    /// Steps taken by the drive call that gave up.
    pub steps: u64,
    /// Datagrams in flight from `a` to `b`.
    pub in_flight_a_to_b: usize,
    /// Datagrams in flight from `b` to `a`.
    pub in_flight_b_to_a: usize,
    /// `a`'s next timeout.
    pub timeout_a: Option<Instant>,
    /// `b`'s next timeout.
    pub timeout_b: Option<Instant>,
}

impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "at {} after {} steps, {} datagrams in flight a→b and {} b→a, next timeout of a: ",
            self.now, self.steps, self.in_flight_a_to_b, self.in_flight_b_to_a
        )?;
        match self.timeout_a {
            Some(t) => write!(f, "{t}")?,
            None => f.write_str("none")?,
        }
        f.write_str(", of b: ")?;
        match self.timeout_b {
            Some(t) => write!(f, "{t}"),
            None => f.write_str("none"),
        }
    }
}

/// What one attempt to step did.
enum Progress {
    /// Nothing in flight and no timer armed.
    Idle,
    /// The next thing happens after the limit; the clock moved to the limit.
    Later,
    /// Something happened.
    Stepped,
}

impl<A: Machine, B: Machine<Peer = A::Peer>> Pair<A, B> {
    /// Connects `a` (reachable at `a_addr`) and `b` (at `b_addr`) with a link configured by
    /// `a_to_b` and one configured by `b_to_a`, both seeded from `seed`. Virtual time starts
    /// at [`Instant::ZERO`].
    ///
    /// # Panics
    ///
    /// If a link configuration is invalid (see [`LinkConfig::validate`]).
    #[track_caller]
    pub fn new(
        a: A,
        a_addr: A::Peer,
        b: B,
        b_addr: A::Peer,
        a_to_b: LinkConfig,
        b_to_a: LinkConfig,
        seed: u64,
    ) -> Self {
        let mut seeds = Rng::new(seed);
        Self {
            a,
            b,
            a_addr,
            b_addr,
            a_to_b: Link::new(a_to_b, seeds.next_u64()),
            b_to_a: Link::new(b_to_a, seeds.next_u64()),
            now: Instant::ZERO,
            tx: Vec::new(),
            rx: Vec::new(),
            misdirected: [0; 2],
            steps: 0,
            stalled: 0,
            stall_limit: DEFAULT_STALL_LIMIT,
            step_limit: DEFAULT_STEP_LIMIT,
            flood: None,
        }
    }

    /// Like [`new`](Self::new), with the same configuration in both directions (each link
    /// still draws its own random choices).
    ///
    /// # Panics
    ///
    /// If `link` is invalid (see [`LinkConfig::validate`]).
    #[track_caller]
    pub fn symmetric(
        a: A,
        a_addr: A::Peer,
        b: B,
        b_addr: A::Peer,
        link: LinkConfig,
        seed: u64,
    ) -> Self {
        Self::new(a, a_addr, b, b_addr, link, link, seed)
    }

    /// Virtual time: when the last step happened (or the end of the last
    /// [`drive_for`](Self::drive_for)).
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Where `b` sends to reach `a`, and where datagrams from `a` come from.
    pub fn a_addr(&self) -> &A::Peer {
        &self.a_addr
    }

    /// Where `a` sends to reach `b`, and where datagrams from `b` come from.
    pub fn b_addr(&self) -> &A::Peer {
        &self.b_addr
    }

    /// The link from `a` to `b`.
    pub fn a_to_b(&self) -> &Link {
        &self.a_to_b
    }

    /// The link from `b` to `a`.
    pub fn b_to_a(&self) -> &Link {
        &self.b_to_a
    }

    /// The link from `a` to `b`, to change its configuration mid-run.
    pub fn a_to_b_mut(&mut self) -> &mut Link {
        &mut self.a_to_b
    }

    /// The link from `b` to `a`, to change its configuration mid-run.
    pub fn b_to_a_mut(&mut self) -> &mut Link {
        &mut self.b_to_a
    }

    /// Both links' statistics and the harness's own counters.
    pub fn stats(&self) -> PairStats {
        PairStats {
            a_to_b: self.a_to_b.stats(),
            b_to_a: self.b_to_a.stats(),
            misdirected_a: self.misdirected[0],
            misdirected_b: self.misdirected[1],
            steps: self.steps,
        }
    }

    /// Sets how many steps [`drive`](Self::drive) and [`drive_for`](Self::drive_for) take
    /// before giving up (default [`DEFAULT_STEP_LIMIT`]).
    pub fn set_step_limit(&mut self, steps: u64) {
        self.step_limit = steps;
    }

    /// Sets how many consecutive steps may pass without virtual time advancing before a
    /// drive reports [`Livelock::Stuck`] (default [`DEFAULT_STALL_LIMIT`]).
    pub fn set_stall_limit(&mut self, steps: u64) {
        self.stall_limit = steps;
    }

    /// Takes one step: drains both machines' transmits into the links, advances virtual
    /// time to the earliest datagram arrival or machine timeout, delivers every datagram
    /// due (to `a` first, then to `b`), fires every timeout due, and drains the transmits
    /// again.
    ///
    /// Returns `false`, doing nothing, when the pair is idle: no datagram in flight and
    /// neither machine has a timer armed. Time never goes backwards: a timeout already in
    /// the past fires at [`now`](Self::now).
    pub fn step(&mut self) -> bool {
        matches!(self.advance(Instant::MAX), Progress::Stepped)
    }

    /// Steps until the pair is idle and returns how many steps that took.
    ///
    /// # Panics
    ///
    /// With the [`Livelock`] message if the pair is not idle after the step limit
    /// ([`set_step_limit`](Self::set_step_limit)), or gets stuck. Machines with periodic
    /// timers are never idle: use [`drive_until`](Self::drive_until) for them.
    #[track_caller]
    pub fn drive(&mut self) -> u64 {
        match self.drive_bounded(self.step_limit) {
            Ok(steps) => steps,
            Err(e) => panic!("Pair::drive: {e}"),
        }
    }

    /// Steps until the pair is idle, at most `max_steps` times, and returns how many steps
    /// that took.
    ///
    /// # Errors
    ///
    /// [`Livelock::StepLimit`] if work is still pending after `max_steps` steps,
    /// [`Livelock::Stuck`] if virtual time stops advancing (see
    /// [`set_stall_limit`](Self::set_stall_limit)), [`Livelock::Flood`] if a machine's
    /// `poll_transmit` seems never to return `None`.
    pub fn drive_bounded(&mut self, max_steps: u64) -> Result<u64, Livelock> {
        self.drive_to(Instant::MAX, max_steps)
    }

    /// Steps until `done` returns `true`, and returns how many steps that took.
    ///
    /// `done` is called before the first step and after every step. It may read and drain
    /// the machines' events and call their application methods (at [`now`](Self::now)); the
    /// next step first drains what they then want to send.
    ///
    /// # Errors
    ///
    /// [`Livelock::StepLimit`] if `done` is still false after `max_steps` steps,
    /// [`Livelock::Idle`] if the pair goes idle first, [`Livelock::Stuck`] or
    /// [`Livelock::Flood`] as for [`drive_bounded`](Self::drive_bounded).
    pub fn drive_until(
        &mut self,
        max_steps: u64,
        mut done: impl FnMut(&mut Self) -> bool,
    ) -> Result<u64, Livelock> {
        let mut steps = 0;
        loop {
            if done(self) {
                return Ok(steps);
            }
            if steps >= max_steps {
                return Err(Livelock::StepLimit(self.snapshot(steps)));
            }
            let progress = self.advance(Instant::MAX);
            if let Progress::Stepped = progress {
                steps += 1;
            }
            self.check(steps)?;
            if let Progress::Idle | Progress::Later = progress {
                return Err(Livelock::Idle(self.snapshot(steps)));
            }
        }
    }

    /// Steps through everything that happens in the next `duration` of virtual time, leaves
    /// [`now`](Self::now) exactly `duration` later, and returns how many steps that took.
    ///
    /// # Errors
    ///
    /// As for [`drive_bounded`](Self::drive_bounded), with the pair's step limit
    /// ([`set_step_limit`](Self::set_step_limit)).
    pub fn drive_for(&mut self, duration: Duration) -> Result<u64, Livelock> {
        let deadline = self.now + duration;
        let steps = self.drive_to(deadline, self.step_limit)?;
        self.now = self.now.max(deadline);
        Ok(steps)
    }

    /// Steps until idle or until the next thing happens after `deadline`.
    fn drive_to(&mut self, deadline: Instant, max_steps: u64) -> Result<u64, Livelock> {
        let mut steps = 0;
        while steps < max_steps {
            let progress = self.advance(deadline);
            if let Progress::Stepped = progress {
                steps += 1;
            }
            self.check(steps)?;
            if let Progress::Idle | Progress::Later = progress {
                return Ok(steps);
            }
        }
        let pending = self.pending(deadline);
        self.check(steps)?;
        if pending { Err(Livelock::StepLimit(self.snapshot(steps))) } else { Ok(steps) }
    }

    /// One step, unless the pair is idle or the next thing happens after `limit`.
    fn advance(&mut self, limit: Instant) -> Progress {
        self.drain();
        let Some(next) = self.next_wakeup() else {
            return Progress::Idle;
        };
        if next > limit {
            self.now = self.now.max(limit);
            return Progress::Later;
        }
        if next > self.now {
            self.now = next;
            self.stalled = 0;
        } else {
            self.stalled += 1;
        }
        self.steps += 1;
        let now = self.now;
        while self.b_to_a.recv(now, &mut self.rx).is_some() {
            self.a.handle_datagram(now, self.b_addr.clone(), &self.rx);
        }
        if self.a.poll_timeout().is_some_and(|t| t <= now) {
            self.a.handle_timeout(now);
        }
        while self.a_to_b.recv(now, &mut self.rx).is_some() {
            self.b.handle_datagram(now, self.a_addr.clone(), &self.rx);
        }
        if self.b.poll_timeout().is_some_and(|t| t <= now) {
            self.b.handle_timeout(now);
        }
        self.drain();
        Progress::Stepped
    }

    /// Drains both machines' transmits into the links.
    fn drain(&mut self) {
        let now = self.now;
        let [misdirected_a, misdirected_b] = &mut self.misdirected;
        if !drain_into(
            &mut self.a,
            now,
            &self.b_addr,
            &mut self.tx,
            &mut self.a_to_b,
            misdirected_a,
        ) {
            self.flood.get_or_insert(Side::A);
        }
        if !drain_into(
            &mut self.b,
            now,
            &self.a_addr,
            &mut self.tx,
            &mut self.b_to_a,
            misdirected_b,
        ) {
            self.flood.get_or_insert(Side::B);
        }
    }

    /// The earliest datagram arrival or machine timeout.
    fn next_wakeup(&self) -> Option<Instant> {
        [
            self.b_to_a.next_arrival(),
            self.a_to_b.next_arrival(),
            self.a.poll_timeout(),
            self.b.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Whether something will happen at or before `limit`.
    fn pending(&mut self, limit: Instant) -> bool {
        self.drain();
        self.next_wakeup().is_some_and(|t| t <= limit)
    }

    /// Reports a flood or a stall noticed during the last step.
    fn check(&mut self, steps: u64) -> Result<(), Livelock> {
        if let Some(side) = self.flood.take() {
            return Err(Livelock::Flood { side, snapshot: self.snapshot(steps) });
        }
        if self.stalled >= self.stall_limit {
            return Err(Livelock::Stuck { stalled: self.stalled, snapshot: self.snapshot(steps) });
        }
        Ok(())
    }

    fn snapshot(&self, steps: u64) -> Snapshot {
        Snapshot {
            now: self.now,
            steps,
            in_flight_a_to_b: self.a_to_b.in_flight(),
            in_flight_b_to_a: self.b_to_a.in_flight(),
            timeout_a: self.a.poll_timeout(),
            timeout_b: self.b.poll_timeout(),
        }
    }
}

impl<A: Machine, B: Machine<Peer = A::Peer>> fmt::Debug for Pair<A, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pair")
            .field("now", &self.now)
            .field("a_addr", &self.a_addr)
            .field("b_addr", &self.b_addr)
            .field("a_to_b", &self.a_to_b)
            .field("b_to_a", &self.b_to_a)
            .field("steps", &self.steps)
            .finish_non_exhaustive()
    }
}

/// Drains `machine`'s transmits at `now`, sending those addressed to `to` over `link` and
/// counting the datagrams addressed elsewhere (and dropped) in `misdirected`. Returns
/// `false` if the machine was still sending after [`MAX_TRANSMITS_PER_DRAIN`] transmits.
fn drain_into<M: Machine>(
    machine: &mut M,
    now: Instant,
    to: &M::Peer,
    buf: &mut Vec<u8>,
    link: &mut Link,
    misdirected: &mut u64,
) -> bool {
    for _ in 0..MAX_TRANSMITS_PER_DRAIN {
        let Some(transmit) = machine.poll_transmit(now, buf) else {
            return true;
        };
        if transmit.destination == *to {
            for datagram in transmit.datagrams(buf) {
                link.send(now, datagram);
            }
        } else {
            *misdirected += transmit.datagrams(buf).count() as u64;
        }
    }
    false
}
