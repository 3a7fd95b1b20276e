//! A hand-driven wire for the scenario tests: endpoints joined with a fixed latency, the
//! test deciding the fate of each datagram (targeted loss, delay, duplication), everything
//! that crosses recorded. Where `utp_proto::sim::Pair` impairs at random, this wire does
//! exactly what the test says. The uTP and rudp helpers (`utp_common`, `rudp_common`)
//! instantiate it with a [`Protocol`]: their endpoint and what they read from a datagram.
#![allow(dead_code, unreachable_pub)]

use std::fmt::{self, Debug};
use std::ops::Deref;
use std::time::Duration;

use utp_proto::{Instant, Machine};

/// Peers are named by a byte: Alice is 1, Bob is 2.
pub const ALICE: u8 = 1;
pub const BOB: u8 = 2;

/// Endpoint-emitted datagrams one flush may take from one endpoint: more is a flood.
const MAX_FLUSH: usize = 100_000;

/// What a protocol's helpers put on the wire and read from its datagrams.
pub trait Protocol: Sized {
    /// The endpoint on each address.
    type Ep: Machine<Peer = u8>;
    /// What the log keeps about a datagram besides its bytes (a parsed header, ...).
    type Info: Clone + Debug;
    /// A packet type: the log counts each sender's datagrams by it ([`Sent::nth`]).
    type Kind: Copy + Debug + Eq;

    /// Whether an endpoint may have sent `bytes` (it parses): the wire asserts it.
    fn parses(bytes: &[u8]) -> bool;
    /// What to record of `bytes`; `None` records nothing (an injected datagram that does
    /// not parse is still delivered).
    fn info(bytes: &[u8]) -> Option<Self::Info>;
    /// Its packet type, when it has one.
    fn kind(bytes: &[u8], info: &Self::Info) -> Option<Self::Kind>;
}

/// What the wire does with one datagram.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Fate {
    /// Arrives after the wire's latency.
    Deliver,
    /// Never arrives.
    Drop,
    /// Arrives this much later than the latency would have it.
    Delay(Duration),
    /// Arrives on time, and a copy arrives this much later again.
    Duplicate(Duration),
}

/// One datagram put on the wire (or injected by the test), with what became of it. It
/// dereferences to the protocol's [`Info`](Protocol::Info).
pub struct Sent<P: Protocol> {
    /// Position in the wire's global order of sends and deliveries.
    pub order: u64,
    /// When it was sent.
    pub at: Instant,
    pub from: u8,
    pub to: u8,
    pub bytes: Vec<u8>,
    pub info: P::Info,
    /// Its packet type, when it has one.
    pub kind: Option<P::Kind>,
    /// How many datagrams of this type the same sender sent (or had injected) before.
    pub nth: usize,
    pub fate: Fate,
    /// Put on the wire by the test rather than by an endpoint.
    pub injected: bool,
    /// The global order of each delivery (empty if it was dropped or is in flight).
    pub deliveries: Vec<u64>,
    /// When each copy arrived at an endpoint (empty if dropped, in flight, or addressed to
    /// nobody).
    pub arrivals: Vec<Instant>,
}

impl<P: Protocol> Sent<P> {
    pub fn is(&self, from: u8, kind: P::Kind) -> bool {
        self.from == from && self.kind == Some(kind)
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }
}

impl<P: Protocol> Clone for Sent<P> {
    fn clone(&self) -> Self {
        Self {
            order: self.order,
            at: self.at,
            from: self.from,
            to: self.to,
            bytes: self.bytes.clone(),
            info: self.info.clone(),
            kind: self.kind,
            nth: self.nth,
            fate: self.fate,
            injected: self.injected,
            deliveries: self.deliveries.clone(),
            arrivals: self.arrivals.clone(),
        }
    }
}

impl<P: Protocol> Debug for Sent<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sent")
            .field("order", &self.order)
            .field("at", &self.at)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("info", &self.info)
            .field("kind", &self.kind)
            .field("nth", &self.nth)
            .field("fate", &self.fate)
            .field("injected", &self.injected)
            .field("arrivals", &self.arrivals)
            .finish_non_exhaustive()
    }
}

impl<P: Protocol> Deref for Sent<P> {
    type Target = P::Info;

    fn deref(&self) -> &P::Info {
        &self.info
    }
}

type Filter<P> = Box<dyn FnMut(&Sent<P>) -> Fate>;

/// Alice (`a`, peer [`ALICE`]), Bob (`b`, peer [`BOB`]) and any further endpoints
/// (`others`) joined by a wire with a fixed latency on which the test decides the fate of
/// each datagram. Everything that crosses is recorded in [`log`](Self::log); datagrams to
/// an address with no endpoint are recorded and go nowhere. Time moves only to the next
/// arrival or timer.
pub struct Wire<P: Protocol> {
    pub a: P::Ep,
    pub b: P::Ep,
    pub others: Vec<(u8, P::Ep)>,
    pub now: Instant,
    pub latency: Duration,
    pub log: Vec<Sent<P>>,
    filter: Filter<P>,
    /// (arrival, order of scheduling, index in the log)
    flight: Vec<(Instant, u64, usize)>,
    order: u64,
    buf: Vec<u8>,
}

impl<P: Protocol> Wire<P> {
    /// Alice and Bob 10 ms apart, every datagram delivered.
    pub fn with_endpoints(a: P::Ep, b: P::Ep) -> Self {
        Self {
            a,
            b,
            others: Vec::new(),
            now: Instant::ZERO,
            latency: Duration::from_millis(10),
            log: Vec::new(),
            filter: Box::new(|_| Fate::Deliver),
            flight: Vec::new(),
            order: 0,
            buf: Vec::new(),
        }
    }

    /// Decides the fate of every datagram sent from now on (injected ones excepted).
    pub fn set_filter(&mut self, filter: impl FnMut(&Sent<P>) -> Fate + 'static) {
        self.filter = Box::new(filter);
    }

    /// Every datagram delivered from now on.
    pub fn deliver_all(&mut self) {
        self.set_filter(|_| Fate::Deliver);
    }

    pub fn endpoint(&mut self, addr: u8) -> Option<&mut P::Ep> {
        match addr {
            ALICE => Some(&mut self.a),
            BOB => Some(&mut self.b),
            _ => self.others.iter_mut().find(|(a, _)| *a == addr).map(|(_, ep)| ep),
        }
    }

    /// The endpoint at `addr`.
    #[track_caller]
    pub fn ep(&mut self, addr: u8) -> &mut P::Ep {
        self.endpoint(addr).expect("no endpoint at that address")
    }

    fn addresses(&self) -> Vec<u8> {
        let mut addrs = vec![ALICE, BOB];
        addrs.extend(self.others.iter().map(|(a, _)| *a));
        addrs
    }

    fn next_order(&mut self) -> u64 {
        self.order += 1;
        self.order
    }

    fn record(&mut self, from: u8, to: u8, bytes: Vec<u8>, injected: bool) -> Option<usize> {
        let info = P::info(&bytes)?;
        let kind = P::kind(&bytes, &info);
        let nth = self.log.iter().filter(|s| s.from == from && s.kind == kind).count();
        let order = self.next_order();
        let mut sent = Sent {
            order,
            at: self.now,
            from,
            to,
            bytes,
            info,
            kind,
            nth,
            fate: Fate::Deliver,
            injected,
            deliveries: Vec::new(),
            arrivals: Vec::new(),
        };
        if !injected {
            sent.fate = (self.filter)(&sent);
        }
        self.log.push(sent);
        Some(self.log.len() - 1)
    }

    fn schedule(&mut self, index: usize) {
        let arrive = self.now + self.latency;
        let o = self.next_order();
        match self.log[index].fate {
            Fate::Deliver => self.flight.push((arrive, o, index)),
            Fate::Drop => {}
            Fate::Delay(d) => self.flight.push((arrive + d, o, index)),
            Fate::Duplicate(d) => {
                self.flight.push((arrive, o, index));
                let o2 = self.next_order();
                self.flight.push((arrive + d, o2, index));
            }
        }
    }

    /// Drains every endpoint's transmits onto the wire.
    pub fn flush(&mut self) {
        loop {
            let mut any = false;
            for from in self.addresses() {
                let now = self.now;
                let mut buf = std::mem::take(&mut self.buf);
                let mut out = Vec::new();
                let ep = self.ep(from);
                while let Some(t) = ep.poll_transmit(now, &mut buf) {
                    any = true;
                    for d in t.datagrams(&buf) {
                        out.push((t.destination, d.to_vec()));
                    }
                    assert!(out.len() < MAX_FLUSH, "endpoint {from} floods");
                }
                self.buf = buf;
                for (to, bytes) in out {
                    assert!(
                        P::parses(&bytes),
                        "endpoint {from} emitted a datagram that does not parse: {bytes:?}"
                    );
                    if let Some(i) = self.record(from, to, bytes, false) {
                        self.schedule(i);
                    }
                }
            }
            if !any {
                break;
            }
        }
    }

    /// The next arrival or timer, if any.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let timers = [self.a.poll_timeout(), self.b.poll_timeout()]
            .into_iter()
            .chain(self.others.iter().map(|(_, ep)| ep.poll_timeout()));
        self.flight.iter().map(|f| Some(f.0)).chain(timers).flatten().min()
    }

    /// Flushes, jumps to the next arrival or timer (never past `limit`), delivers what is
    /// due, fires due timers and flushes again. False when nothing is pending before
    /// `limit`.
    pub fn step_until(&mut self, limit: Instant) -> bool {
        self.flush();
        let Some(next) = self.next_wakeup() else { return false };
        if next > limit {
            return false;
        }
        self.now = self.now.max(next);
        let now = self.now;
        let mut due: Vec<(Instant, u64, usize)> =
            self.flight.iter().copied().filter(|f| f.0 <= now).collect();
        self.flight.retain(|f| f.0 > now);
        due.sort();
        for (_, _, index) in due {
            let o = self.next_order();
            self.log[index].deliveries.push(o);
            let (from, to) = (self.log[index].from, self.log[index].to);
            let bytes = self.log[index].bytes.clone();
            if let Some(ep) = self.endpoint(to) {
                ep.handle_datagram(now, from, &bytes);
                self.log[index].arrivals.push(now);
            }
        }
        for addr in self.addresses() {
            let ep = self.ep(addr);
            if ep.poll_timeout().is_some_and(|t| t <= now) {
                ep.handle_timeout(now);
            }
        }
        self.flush();
        true
    }

    pub fn step(&mut self) -> bool {
        self.step_until(Instant::MAX)
    }

    /// Steps until `done` holds (checked before each step); panics after `max_steps` or if
    /// nothing is left to happen.
    #[track_caller]
    pub fn run_until(&mut self, max_steps: usize, mut done: impl FnMut(&mut Self) -> bool)
    where
        Sent<P>: fmt::Display,
    {
        for _ in 0..max_steps {
            if done(self) {
                return;
            }
            if !self.step() {
                if done(self) {
                    return;
                }
                panic!("nothing left to happen at {:?}\n{}", self.now, self.trace());
            }
        }
        if !done(self) {
            panic!("not done after {max_steps} steps at {:?}\n{}", self.now, self.trace());
        }
    }

    /// Runs everything that happens in the next `duration`, calling `each` after every step;
    /// `now` ends exactly that later.
    pub fn run_for_with(&mut self, duration: Duration, mut each: impl FnMut(&mut Self)) {
        let deadline = self.now + duration;
        let mut steps = 0;
        while self.step_until(deadline) {
            each(self);
            steps += 1;
            assert!(steps < 1_000_000, "run_for did not settle");
        }
        self.now = self.now.max(deadline);
    }

    /// Runs everything that happens in the next `duration`; `now` ends exactly that later.
    pub fn run_for(&mut self, duration: Duration) {
        self.run_for_with(duration, |_| {});
    }

    /// Hands `bytes` to `to` at once, as if `from` had sent it (recorded in the log when the
    /// protocol records it), and flushes what that makes the endpoints send.
    pub fn inject(&mut self, from: u8, to: u8, bytes: &[u8]) {
        self.flush();
        let index = self.record(from, to, bytes.to_vec(), true);
        let o = self.next_order();
        if let Some(i) = index {
            self.log[i].deliveries.push(o);
        }
        let now = self.now;
        if let Some(ep) = self.endpoint(to) {
            ep.handle_datagram(now, from, bytes);
            if let Some(i) = index {
                self.log[i].arrivals.push(now);
            }
        }
        self.flush();
    }

    /// Every datagram recorded so far, one a line.
    pub fn trace(&self) -> String
    where
        Sent<P>: fmt::Display,
    {
        self.log.iter().map(|s| format!("{s}\n")).collect()
    }

    /// The datagrams `from` sent (not injected ones).
    pub fn sent_by(&self, from: u8) -> Vec<&Sent<P>> {
        self.log.iter().filter(|s| s.from == from && !s.injected).collect()
    }

    /// The datagrams of `kind` that `from` sent (not injected ones).
    pub fn sent_of(&self, from: u8, kind: P::Kind) -> Vec<&Sent<P>> {
        self.log.iter().filter(|s| s.is(from, kind) && !s.injected).collect()
    }

    /// The datagrams endpoints sent to `to` (not injected ones).
    pub fn sent_to(&self, to: u8) -> Vec<&Sent<P>> {
        self.log.iter().filter(|s| s.to == to && !s.injected).collect()
    }

    /// Log entries from position `from` on.
    pub fn since(&self, from: usize) -> &[Sent<P>] {
        &self.log[from.min(self.log.len())..]
    }
}
