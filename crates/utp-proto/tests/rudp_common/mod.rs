//! Helpers for the rudp scenario tests: two endpoints on a simulated link, and a stream of
//! messages driven to completion with every delivery checked.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use utp_proto::rudp::{
    CloseCode, CloseReason, Config, ConnectionHandle, ConnectionStats, Endpoint, Event, RecvError,
    SendError,
};
use utp_proto::sim::{LinkConfig, Pair};
use utp_proto::{Instant, Machine, Rng};

/// Peers are named by a byte: Alice is 1, Bob is 2.
pub const ALICE: u8 = 1;
pub const BOB: u8 = 2;

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
/// the UDP checksum drops them on a real network (rudp relies on it and has none).
pub struct Udp {
    pub inner: Ep,
    pub dropped_corrupt: u64,
}

impl Udp {
    pub fn new(inner: Ep) -> Self {
        Self { inner, dropped_corrupt: 0 }
    }
}

/// FNV-1a over the datagram: any single flipped bit changes it.
fn checksum(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5u32, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

impl Machine for Udp {
    type Peer = u8;
    type Event = Event<u8>;

    fn handle_datagram(&mut self, now: Instant, remote: u8, data: &[u8]) {
        if data.len() < 4 {
            self.dropped_corrupt += 1;
            return;
        }
        let (body, sum) = data.split_at(data.len() - 4);
        if checksum(body).to_be_bytes() != sum {
            self.dropped_corrupt += 1;
            return;
        }
        self.inner.handle_datagram(now, remote, body);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.inner.handle_timeout(now);
    }

    fn poll_transmit(
        &mut self,
        now: Instant,
        buf: &mut Vec<u8>,
    ) -> Option<utp_proto::Transmit<u8>> {
        let mut t = self.inner.poll_transmit(now, buf)?;
        let sum = checksum(&buf[..t.size]);
        buf.truncate(t.size);
        buf.extend_from_slice(&sum.to_be_bytes());
        t.size += 4;
        Some(t)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }

    fn poll_event(&mut self) -> Option<Event<u8>> {
        self.inner.poll_event()
    }
}

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
