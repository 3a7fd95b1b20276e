//! Helpers for the rudp scenario tests: two endpoints on a simulated link, and a stream of
//! messages driven to completion with every delivery checked.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use utp_proto::rudp::{
    CloseCode, CloseReason, Config, ConnectionHandle, ConnectionStats, Endpoint, Event, RecvError,
    SendError,
};
use utp_proto::sim::{Checksummed, LinkConfig, Pair};
use utp_proto::{Instant, Machine, Rng};

pub use wire::{ALICE, BOB};

pub type Ep = Endpoint<u8>;

/// A secret for an endpoint, from a test seed.
pub fn secret(seed: u64) -> [u8; 32] {
    let mut s = [0u8; 32];
    Rng::new(seed).fill(&mut s);
    s
}

/// Two endpoints with the given settings on links configured by `ab` and `ba`.
pub fn pair(a: Config, b: Config, ab: LinkConfig, ba: LinkConfig, seed: u64) -> Pair<Ep, Ep> {
    Pair::new(
        Endpoint::new(Arc::new(a), secret(seed ^ 0xa11ce)),
        ALICE,
        Endpoint::new(Arc::new(b), secret(seed ^ 0xb0b)),
        BOB,
        ab,
        ba,
        seed,
    )
}

/// What the helpers need from each side: an endpoint, possibly wrapped.
pub trait Side: Machine<Peer = u8, Event = Event<u8>> {
    fn ep(&mut self) -> &mut Ep;
}

impl Side for Ep {
    fn ep(&mut self) -> &mut Ep {
        self
    }
}

/// An endpoint behind a UDP-like checksum: corrupted datagrams are dropped on receipt, as
/// the UDP checksum drops them on a real network.
pub type Udp = Checksummed<Ep>;

impl Side for Udp {
    fn ep(&mut self) -> &mut Ep {
        &mut self.inner
    }
}

/// Message `i` of a run: its bytes follow from the seed and the index, so the receiver can
/// check every message without the sender's copy.
pub fn content(seed: u64, i: usize, len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    Rng::new(seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)).fill(&mut data);
    data
}

/// `count` sizes from 1 byte to `max`, spread evenly over orders of magnitude (uniform in
/// the logarithm), always including 1 and `max`.
pub fn sizes(count: usize, max: usize, seed: u64) -> Vec<usize> {
    let mut rng = Rng::new(seed);
    let ln_max = (max as f64).ln();
    let mut sizes: Vec<usize> =
        (0..count).map(|_| ((rng.unit_f64() * ln_max).exp() as usize).clamp(1, max)).collect();
    if count >= 2 {
        sizes[0] = 1;
        sizes[count / 2] = max;
    }
    sizes
}

/// What a finished exchange measured.
#[derive(Debug)]
pub struct Report {
    /// Virtual time from the connect to the last message received.
    pub elapsed: Duration,
    /// Message bytes per second of virtual time.
    pub goodput: f64,
    pub bytes: u64,
    pub steps: u64,
    pub alice: ConnectionHandle,
    pub bob: ConnectionHandle,
    /// The sender's statistics once everything was acknowledged.
    pub alice_stats: ConnectionStats,
    pub bob_stats: ConnectionStats,
    pub bob_closed: Option<CloseReason>,
}

/// Alice sends messages of `sizes` to Bob, who checks each against [`content`].
pub struct Exchange {
    seed: u64,
    sizes: Vec<usize>,
    pub sent: usize,
    pub received: usize,
    pub bytes: u64,
    pub alice: ConnectionHandle,
    pub bob: Option<ConnectionHandle>,
    pub connected: bool,
    pub done_at: Option<Instant>,
    pub alice_closed: Option<CloseReason>,
    pub bob_closed: Option<CloseReason>,
}

impl Exchange {
    pub fn start<A: Side, B: Side>(pair: &mut Pair<A, B>, sizes: Vec<usize>, seed: u64) -> Self {
        let now = pair.now();
        let alice = pair.a.ep().connect(now, BOB).expect("connect");
        Self {
            seed,
            sizes,
            sent: 0,
            received: 0,
            bytes: 0,
            alice,
            bob: None,
            connected: false,
            done_at: None,
            alice_closed: None,
            bob_closed: None,
        }
    }

    /// Reacts to both sides' events, sends what fits, checks what arrives; true once every
    /// message was received and acknowledged.
    pub fn poll<A: Side, B: Side>(&mut self, pair: &mut Pair<A, B>) -> bool {
        let now = pair.now();
        while let Some(ev) = pair.a.ep().poll_event() {
            match ev {
                Event::Connected(h) if h == self.alice => self.connected = true,
                Event::Closed { handle, reason } if handle == self.alice => {
                    self.alice_closed = Some(reason);
                }
                _ => {}
            }
        }
        while let Some(ev) = pair.b.ep().poll_event() {
            match ev {
                Event::Incoming { id, peer } => {
                    assert_eq!(peer, ALICE);
                    assert!(self.bob.is_none(), "one connection only");
                    self.bob = Some(pair.b.ep().accept(now, id).expect("accept"));
                }
                Event::Closed { handle, reason } if Some(handle) == self.bob => {
                    self.bob_closed = Some(reason);
                }
                _ => {}
            }
        }
        assert!(self.alice_closed.is_none(), "Alice's connection ended: {:?}", self.alice_closed);
        assert!(self.bob_closed.is_none(), "Bob's connection ended: {:?}", self.bob_closed);
        if self.connected {
            while self.sent < self.sizes.len() {
                // Build the message only when it fits: building a megabyte on every step
                // would cost more than the simulation.
                if pair.a.ep().writable(self.alice) < self.sizes[self.sent] {
                    break;
                }
                let message = content(self.seed, self.sent, self.sizes[self.sent]);
                match pair.a.ep().send(self.alice, &message) {
                    Ok(number) => {
                        assert_eq!(number, self.sent as u64, "message numbers count messages");
                        self.sent += 1;
                    }
                    Err(SendError::Blocked) => break,
                    Err(e) => panic!("send failed: {e}"),
                }
            }
        }
        if let Some(bob) = self.bob {
            loop {
                match pair.b.ep().recv(now, bob) {
                    Ok(message) => {
                        let i = self.received;
                        assert!(i < self.sizes.len(), "more messages than were sent");
                        assert_eq!(message.len(), self.sizes[i], "message {i}: length");
                        assert!(
                            message == content(self.seed, i, self.sizes[i]),
                            "message {i}: bytes differ (misordered or corrupted)"
                        );
                        self.received += 1;
                        self.bytes += message.len() as u64;
                    }
                    Err(RecvError::Blocked) => break,
                    Err(e) => panic!("recv failed: {e}"),
                }
            }
        }
        if self.received == self.sizes.len()
            && self.sent == self.sizes.len()
            && self.done_at.is_none()
            && pair.a.ep().is_flushed(self.alice)
        {
            self.done_at = Some(now);
        }
        self.done_at.is_some()
    }
}

/// Runs an exchange of `sizes` to completion, then closes Alice's side and checks that Bob
/// sees a normal close.
pub fn exchange<A: Side, B: Side>(
    pair: &mut Pair<A, B>,
    sizes: Vec<usize>,
    seed: u64,
    max_steps: u64,
) -> Report {
    let start = pair.now();
    let count = sizes.len();
    let mut x = Exchange::start(pair, sizes, seed);
    let steps = pair.drive_until(max_steps, |p| x.poll(p)).unwrap_or_else(|e| {
        panic!(
            "exchange did not finish: {e}; sent {}, received {} of {count}; alice {:?}, bob {:?}",
            x.sent,
            x.received,
            pair_stats(pair, x.alice),
            x.bob.and_then(|b| pair.b.ep().stats(b)),
        )
    });
    let bob = x.bob.expect("accepted");
    let alice_stats = pair.a.ep().stats(x.alice).expect("alive");
    let bob_stats = pair.b.ep().stats(bob).expect("alive");
    let done = x.done_at.expect("done");
    let now = pair.now();
    pair.a.ep().close(now, x.alice, CloseCode::Normal, "done").expect("close");
    pair.drive_until(1_000_000, |p| {
        while let Some(ev) = p.b.ep().poll_event() {
            if let Event::Closed { handle, reason } = ev {
                if handle == bob {
                    x.bob_closed = Some(reason);
                }
            }
        }
        x.bob_closed.is_some()
    })
    .expect("Bob sees the close");
    let elapsed = done - start;
    Report {
        elapsed,
        goodput: x.bytes as f64 / elapsed.as_secs_f64().max(1e-9),
        bytes: x.bytes,
        steps,
        alice: x.alice,
        bob,
        alice_stats,
        bob_stats,
        bob_closed: x.bob_closed,
    }
}

fn pair_stats<A: Side, B: Side>(
    pair: &mut Pair<A, B>,
    h: ConnectionHandle,
) -> Option<ConnectionStats> {
    pair.a.ep().stats(h)
}

// ---- a hand-driven wire: exactly the chosen datagrams lost, delayed or duplicated ----

use std::fmt;

use utp_proto::wire::rudp::{ConnectAck, Datagram, Packet, PacketType};

#[path = "../wire_common/mod.rs"]
mod wire;

#[allow(unused_imports)] // for the tests that script a wire
pub use wire::Fate;

/// rudp on the hand-driven wire: the log keeps each datagram's bytes and type (parsed
/// again by the accessors below).
#[derive(Clone, Copy, Debug)]
pub enum Rudp {}

impl wire::Protocol for Rudp {
    type Ep = Ep;
    type Info = ();
    type Kind = PacketType;

    fn parses(bytes: &[u8]) -> bool {
        Datagram::parse(bytes).is_ok()
    }

    /// Every datagram is recorded, also one that does not parse (its kind is `None`).
    fn info(_: &[u8]) -> Option<()> {
        Some(())
    }

    fn kind(bytes: &[u8], (): &()) -> Option<PacketType> {
        Datagram::parse(bytes).ok().map(|d| d.packet.packet_type())
    }
}

/// One datagram put on the wire (or injected by the test), with what became of it.
pub type Sent = wire::Sent<Rudp>;

/// Alice (`a`, peer [`ALICE`]), Bob (`b`, peer [`BOB`]) and any further endpoints
/// ([`add`](Net::add)) joined by a wire with a fixed latency on which the test decides the
/// fate of each datagram (see `wire_common`).
pub type Net = wire::Wire<Rudp>;

impl Sent {
    /// The parsed datagram; `None` when it does not parse.
    pub fn datagram(&self) -> Option<Datagram<'_>> {
        Datagram::parse(&self.bytes).ok()
    }

    pub fn dst_id(&self) -> Option<u64> {
        self.datagram().map(|d| d.dst_id)
    }

    /// A CLOSE's code and reason.
    pub fn close(&self) -> Option<(CloseCode, String)> {
        match self.datagram()?.packet {
            Packet::Close { code, reason } => Some((code, reason.to_string())),
            _ => None,
        }
    }

    /// A challenge's cookie.
    pub fn cookie(&self) -> Option<[u8; 12]> {
        match self.datagram()?.packet {
            Packet::ConnectAck(ConnectAck::Challenge { cookie }) => Some(*cookie),
            _ => None,
        }
    }

    pub fn is_challenge(&self) -> bool {
        self.cookie().is_some()
    }

    pub fn is_accept(&self) -> bool {
        matches!(
            self.datagram().map(|d| d.packet),
            Some(Packet::ConnectAck(ConnectAck::Accepted { .. }))
        )
    }

    /// Whether a CONNECT carries a cookie.
    pub fn has_cookie(&self) -> bool {
        matches!(self.datagram().map(|d| d.packet), Some(Packet::Connect { cookie: Some(_), .. }))
    }
}

impl fmt::Display for Sent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "#{:<4} t={:>10}us {}->{} {:<5}B {:?}{}: ",
            self.order,
            self.at.as_micros(),
            self.from,
            self.to,
            self.bytes.len(),
            self.fate,
            if self.injected { " (injected)" } else { "" }
        )?;
        match self.datagram() {
            Some(d) => match d.packet {
                Packet::Data { packet_number, message_number, message_len, offset, fragment } => {
                    write!(
                        f,
                        "DATA id={:x} pn={packet_number} msg={message_number} len={message_len} \
                         off={offset} +{}",
                        d.dst_id,
                        fragment.len()
                    )
                }
                Packet::Direct { payload } => {
                    write!(f, "DIRECT id={:x} +{}", d.dst_id, payload.len())
                }
                packet => write!(f, "id={:x} {packet:?}", d.dst_id),
            },
            None => f.write_str("(does not parse)"),
        }
    }
}

impl Net {
    /// Alice and Bob 10 ms apart, every datagram delivered.
    pub fn new(a: Config, b: Config, seed: u64) -> Self {
        Self::with_endpoints(
            Endpoint::new(Arc::new(a), secret(seed ^ 0xa11ce)),
            Endpoint::new(Arc::new(b), secret(seed ^ 0xb0b)),
        )
    }

    /// Both sides with the default settings.
    pub fn default_pair(seed: u64) -> Self {
        Self::new(Config::default(), Config::default(), seed)
    }

    /// Adds an endpoint at `addr` (not [`ALICE`] or [`BOB`]).
    pub fn add(&mut self, addr: u8, config: Config, seed: u64) {
        assert!(addr != ALICE && addr != BOB && self.endpoint(addr).is_none());
        self.others.push((addr, Endpoint::new(Arc::new(config), secret(seed))));
    }
}

/// A datagram's bytes.
pub fn emit(dst_id: u64, packet: Packet<'_>) -> Vec<u8> {
    let mut buf = Vec::new();
    Datagram { dst_id, packet }.emit(&mut buf);
    buf
}

/// A CONNECT as a starter sends it (64 bytes), with or without a cookie.
pub fn connect_bytes(src_id: u64, cookie: Option<&[u8; 12]>) -> Vec<u8> {
    emit(0, Packet::Connect { src_id, max_message: 1 << 20, window: 1 << 20, cookie })
}

/// Every event the endpoint has queued.
pub fn drain_events(ep: &mut Ep) -> Vec<Event<u8>> {
    std::iter::from_fn(|| ep.poll_event()).collect()
}

/// The application on Alice's and Bob's ends of a [`Net`]: records events with their time,
/// accepts Bob's incoming connections when asked to, and reads every message and direct
/// datagram that arrives when asked to.
#[derive(Debug, Default)]
pub struct Session {
    pub alice: Option<ConnectionHandle>,
    pub bob: Option<ConnectionHandle>,
    /// Bob accepts every [`Event::Incoming`] (the first one only).
    pub auto_accept: bool,
    /// Each side reads what arrives.
    pub read_a: bool,
    pub read_b: bool,
    pub events_a: Vec<(Instant, Event<u8>)>,
    pub events_b: Vec<(Instant, Event<u8>)>,
    pub recv_a: Vec<Vec<u8>>,
    pub recv_b: Vec<Vec<u8>>,
    pub direct_a: Vec<Vec<u8>>,
    pub direct_b: Vec<Vec<u8>>,
    pub closed_a: Option<(Instant, CloseReason)>,
    pub closed_b: Option<(Instant, CloseReason)>,
}

impl Session {
    /// Bob accepts, both sides read.
    pub fn new() -> Self {
        Self { auto_accept: true, read_a: true, read_b: true, ..Self::default() }
    }

    /// Alice connects to Bob.
    pub fn connect(net: &mut Net) -> Self {
        let mut s = Self::new();
        s.alice = Some(net.a.connect(net.now, BOB).expect("connect"));
        s
    }

    /// Alice connects, Bob accepts; runs until Alice is connected.
    #[track_caller]
    pub fn establish(net: &mut Net) -> Self {
        let mut s = Self::connect(net);
        s.run_until(net, 10_000, |s, _| s.connected_a().is_some() && s.bob.is_some());
        s
    }

    pub fn alice(&self) -> ConnectionHandle {
        self.alice.expect("Alice connected")
    }

    pub fn bob(&self) -> ConnectionHandle {
        self.bob.expect("Bob accepted")
    }

    /// Handles both sides' events and reads; call it after every step.
    pub fn poll(&mut self, net: &mut Net) {
        let now = net.now;
        while let Some(ev) = net.b.poll_event() {
            match &ev {
                Event::Incoming { id, .. } if self.auto_accept && self.bob.is_none() => {
                    self.bob = Some(net.b.accept(now, *id).expect("accept"));
                }
                Event::Closed { handle, reason } if Some(*handle) == self.bob => {
                    assert!(self.closed_b.is_none(), "Bob's connection closed twice");
                    self.closed_b = Some((now, reason.clone()));
                }
                _ => {}
            }
            self.events_b.push((now, ev));
        }
        while let Some(ev) = net.a.poll_event() {
            if let Event::Closed { handle, reason } = &ev {
                if Some(*handle) == self.alice {
                    assert!(self.closed_a.is_none(), "Alice's connection closed twice");
                    self.closed_a = Some((now, reason.clone()));
                }
            }
            self.events_a.push((now, ev));
        }
        if let (Some(h), true) = (self.alice, self.read_a) {
            read_into(&mut net.a, now, h, &mut self.recv_a, &mut self.direct_a);
        }
        if let (Some(h), true) = (self.bob, self.read_b) {
            read_into(&mut net.b, now, h, &mut self.recv_b, &mut self.direct_b);
        }
    }

    /// Steps `net` (polling after each step) until `done`.
    #[track_caller]
    pub fn run_until(
        &mut self,
        net: &mut Net,
        max_steps: usize,
        mut done: impl FnMut(&Self, &Net) -> bool,
    ) {
        self.poll(net);
        net.run_until(max_steps, |n| {
            self.poll(n);
            done(self, n)
        });
    }

    /// Runs `net` for `duration`, polling after every step.
    pub fn run_for(&mut self, net: &mut Net, duration: Duration) {
        self.poll(net);
        net.run_for_with(duration, |n| self.poll(n));
        self.poll(net);
    }

    /// When Alice saw `Connected`.
    pub fn connected_a(&self) -> Option<Instant> {
        self.events_a.iter().find(|(_, e)| matches!(e, Event::Connected(_))).map(|(t, _)| *t)
    }

    /// How many `Incoming` events Bob saw.
    pub fn incoming_b(&self) -> usize {
        self.events_b.iter().filter(|(_, e)| matches!(e, Event::Incoming { .. })).count()
    }

    /// When a side saw an event matching `f`, in order.
    pub fn times(events: &[(Instant, Event<u8>)], f: impl Fn(&Event<u8>) -> bool) -> Vec<Instant> {
        events.iter().filter(|(_, e)| f(e)).map(|(t, _)| *t).collect()
    }
}

/// Reads every message and direct datagram waiting on `h`.
pub fn read_into(
    ep: &mut Ep,
    now: Instant,
    h: ConnectionHandle,
    messages: &mut Vec<Vec<u8>>,
    direct: &mut Vec<Vec<u8>>,
) {
    while let Ok(m) = ep.recv(now, h) {
        messages.push(m);
    }
    while let Ok(d) = ep.recv_direct(now, h) {
        direct.push(d);
    }
}

/// Alice connects to Bob on a [`Pair`] and Bob accepts; returns both handles once Alice is
/// connected.
#[track_caller]
pub fn establish_pair<A: Side, B: Side>(
    p: &mut Pair<A, B>,
) -> (ConnectionHandle, ConnectionHandle) {
    let now = p.now();
    let alice = p.a.ep().connect(now, BOB).expect("connect");
    let mut bob = None;
    let mut connected = false;
    p.drive_until(100_000, |p| {
        let now = p.now();
        while let Some(ev) = p.b.ep().poll_event() {
            if let Event::Incoming { id, .. } = ev {
                bob = Some(p.b.ep().accept(now, id).expect("accept"));
            }
        }
        while let Some(ev) = p.a.ep().poll_event() {
            if ev == Event::Connected(alice) {
                connected = true;
            }
        }
        connected && bob.is_some()
    })
    .expect("the handshake completes");
    (alice, bob.expect("accepted"))
}
