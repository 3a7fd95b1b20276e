//! The `Pair` harness: steps two machines over impaired links in virtual time, replays
//! from its seed, and reports machines that never settle.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use utp_proto::sim::{LinkConfig, Livelock, Pair, Side};
use utp_proto::{Instant, Machine, Transmit};

const DATA: u8 = 0;
const ACK: u8 = 1;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 1], port))
}

/// FNV-1a: any single flipped bit changes it.
fn checksum(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193))
}

/// `kind, seq, checksum, payload`, the checksum covering everything else.
fn encode(buf: &mut Vec<u8>, kind: u8, seq: u32, payload: &[u8]) {
    buf.clear();
    buf.push(kind);
    buf.extend_from_slice(&seq.to_be_bytes());
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(payload);
    let sum = checksum(&[&buf[..5], &buf[9..]].concat());
    buf[5..9].copy_from_slice(&sum.to_be_bytes());
}

/// `(kind, seq, payload)` if the datagram is intact.
fn decode(data: &[u8]) -> Option<(u8, u32, &[u8])> {
    if data.len() < 9 {
        return None;
    }
    let sum = u32::from_be_bytes(data[5..9].try_into().unwrap());
    if sum != checksum(&[&data[..5], &data[9..]].concat()) {
        return None;
    }
    Some((data[0], u32::from_be_bytes(data[1..5].try_into().unwrap()), &data[9..]))
}

/// Stop-and-wait sender: one message in flight, retransmitted every `rto` until acked.
struct Sender {
    peer: SocketAddr,
    queue: VecDeque<Vec<u8>>,
    /// Sequence number of the message at the front of the queue.
    seq: u32,
    send_now: bool,
    retransmit_at: Option<Instant>,
    rto: Duration,
    retransmits: u64,
    events: VecDeque<u32>,
}

impl Sender {
    fn new(peer: SocketAddr) -> Self {
        Self {
            peer,
            queue: VecDeque::new(),
            seq: 0,
            send_now: false,
            retransmit_at: None,
            rto: Duration::from_millis(100),
            retransmits: 0,
            events: VecDeque::new(),
        }
    }

    /// Application command: queue a message.
    fn send(&mut self, message: Vec<u8>) {
        self.send_now |= self.queue.is_empty();
        self.queue.push_back(message);
    }
}

impl Machine for Sender {
    type Peer = SocketAddr;
    /// A message was acknowledged.
    type Event = u32;

    fn handle_datagram(&mut self, _now: Instant, remote: SocketAddr, data: &[u8]) {
        assert_eq!(remote, self.peer);
        if let Some((ACK, seq, _)) = decode(data) {
            if seq == self.seq && !self.queue.is_empty() {
                self.queue.pop_front();
                self.events.push_back(seq);
                self.seq += 1;
                self.retransmit_at = None;
                self.send_now = !self.queue.is_empty();
            }
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.retransmit_at.is_some_and(|t| t <= now) {
            self.retransmit_at = None;
            self.send_now = true;
            self.retransmits += 1;
        }
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        if !self.send_now {
            return None;
        }
        self.send_now = false;
        encode(buf, DATA, self.seq, self.queue.front()?);
        self.retransmit_at = Some(now + self.rto);
        Some(Transmit::single(self.peer, buf.len()))
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.retransmit_at
    }

    fn poll_event(&mut self) -> Option<u32> {
        self.events.pop_front()
    }
}

/// Stop-and-wait receiver: delivers in order, acks everything intact.
struct Receiver {
    peer: SocketAddr,
    expected: u32,
    acks: VecDeque<u32>,
    events: VecDeque<Vec<u8>>,
}

impl Receiver {
    fn new(peer: SocketAddr) -> Self {
        Self { peer, expected: 0, acks: VecDeque::new(), events: VecDeque::new() }
    }
}

impl Machine for Receiver {
    type Peer = SocketAddr;
    /// A message, in order.
    type Event = Vec<u8>;

    fn handle_datagram(&mut self, _now: Instant, remote: SocketAddr, data: &[u8]) {
        assert_eq!(remote, self.peer);
        if let Some((DATA, seq, payload)) = decode(data) {
            if seq == self.expected {
                self.events.push_back(payload.to_vec());
                self.expected += 1;
            }
            if seq < self.expected {
                self.acks.push_back(seq);
            }
        }
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn poll_transmit(&mut self, _now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        let seq = self.acks.pop_front()?;
        encode(buf, ACK, seq, &[]);
        Some(Transmit::single(self.peer, buf.len()))
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn poll_event(&mut self) -> Option<Vec<u8>> {
        self.events.pop_front()
    }
}

fn message(i: u32) -> Vec<u8> {
    format!("message {i} {}", "x".repeat(i as usize % 100)).into_bytes()
}

fn hostile() -> LinkConfig {
    LinkConfig::default()
        .with_latency(Duration::from_millis(20))
        .with_jitter(Duration::from_millis(5))
        .with_loss(0.1)
        .with_duplicate(0.05)
        .with_reorder(0.1, Duration::from_millis(30))
        .with_corrupt(0.05)
}

fn stop_and_wait(count: u32, config: LinkConfig, seed: u64) -> Pair<Sender, Receiver> {
    let mut sender = Sender::new(addr(2));
    for i in 0..count {
        sender.send(message(i));
    }
    Pair::symmetric(sender, addr(1), Receiver::new(addr(1)), addr(2), config, seed)
}

#[test]
fn stop_and_wait_delivers_in_order_over_a_hostile_link() {
    let mut pair = stop_and_wait(300, hostile(), 1);
    let steps = pair.drive();
    assert!(steps > 600);
    let received: Vec<Vec<u8>> = std::iter::from_fn(|| pair.b.poll_event()).collect();
    assert_eq!(received, (0..300).map(message).collect::<Vec<_>>());
    let acked: Vec<u32> = std::iter::from_fn(|| pair.a.poll_event()).collect();
    assert_eq!(acked, (0..300).collect::<Vec<_>>());

    let stats = pair.stats();
    for link in [stats.a_to_b, stats.b_to_a] {
        assert!(link.lost_random > 0 && link.duplicated > 0, "{link:?}");
        assert!(link.reordered > 0 && link.corrupted > 0, "{link:?}");
        assert_eq!(link.delivered, link.sent - link.dropped() + link.duplicated, "all arrived");
    }
    assert!(pair.a.retransmits > 30);
    assert_eq!((stats.misdirected_a, stats.misdirected_b), (0, 0));
    assert_eq!(stats.steps, steps);
    // Idle: nothing in flight, no timer.
    assert_eq!((pair.a_to_b().in_flight(), pair.b_to_a().in_flight()), (0, 0));
    assert!(!pair.step());
}

#[test]
fn same_seed_same_run_other_seed_other_run() {
    let run = |seed| {
        let mut pair = stop_and_wait(100, hostile(), seed);
        pair.drive();
        (pair.now(), pair.stats(), pair.a.retransmits)
    };
    let first = run(7);
    assert_eq!(first, run(7));
    assert_ne!(first, run(8));
}

#[test]
fn ideal_link_takes_exactly_one_round_trip_per_message() {
    let mut pair = stop_and_wait(10, LinkConfig::default(), 3);
    pair.drive();
    assert_eq!(pair.now(), Instant::from_millis(10 * 20));
    assert_eq!(pair.a.retransmits, 0);
}

#[test]
fn step_by_step() {
    let mut pair = stop_and_wait(2, LinkConfig::default(), 10);
    // The first step sends the first message, then jumps to its arrival and delivers it;
    // the ack it causes is already on the way when the step returns.
    assert!(pair.step());
    assert_eq!(pair.now(), Instant::from_millis(10));
    assert_eq!(pair.b.expected, 1);
    assert_eq!((pair.a_to_b().in_flight(), pair.b_to_a().in_flight()), (0, 1));
    assert!(pair.step());
    assert_eq!(pair.now(), Instant::from_millis(20));
    assert_eq!((pair.a_to_b().in_flight(), pair.b_to_a().in_flight()), (1, 0));
    assert!(pair.step() && pair.step());
    assert_eq!(pair.now(), Instant::from_millis(40));
    assert!(!pair.step(), "idle");
    assert_eq!(pair.now(), Instant::from_millis(40));
    assert_eq!(pair.stats().steps, 4);
}

#[test]
fn asymmetric_links_are_used_in_their_direction() {
    let sender = {
        let mut s = Sender::new(addr(2));
        s.send(message(0));
        s
    };
    let forward = LinkConfig::default().with_latency(Duration::from_millis(30));
    let back = LinkConfig::default().with_latency(Duration::from_millis(5));
    let mut pair = Pair::new(sender, addr(1), Receiver::new(addr(1)), addr(2), forward, back, 4);
    pair.drive();
    assert_eq!(pair.now(), Instant::from_millis(35));
    assert_eq!(pair.a_to_b().config().latency, Duration::from_millis(30));
}

#[test]
fn drive_until_stops_when_the_predicate_holds() {
    let mut pair = stop_and_wait(100, hostile(), 5);
    let mut received = Vec::new();
    let steps = pair
        .drive_until(1_000_000, |pair| {
            received.extend(std::iter::from_fn(|| pair.b.poll_event()));
            received.len() >= 10
        })
        .unwrap();
    assert!(steps > 0);
    // Stop-and-wait delivers at most one message per step: it stopped right at ten.
    assert_eq!(received.len(), 10);
    assert!(pair.a.queue.len() >= 89, "the sender is still busy");
    let stopped_at = pair.now();
    pair.drive();
    assert!(pair.now() > stopped_at);
    received.extend(std::iter::from_fn(|| pair.b.poll_event()));
    assert_eq!(received, (0..100).map(message).collect::<Vec<_>>());
}

#[test]
fn drive_until_drains_what_the_predicate_sends() {
    // The application sends the next message only once the previous one is acknowledged.
    let mut pair = stop_and_wait(0, hostile(), 6);
    pair.a.send(message(0));
    let mut sent = 1;
    let steps = pair
        .drive_until(100_000, |pair| {
            while pair.a.poll_event().is_some() {
                if sent < 50 {
                    pair.a.send(message(sent));
                    sent += 1;
                }
            }
            pair.b.expected == 50
        })
        .unwrap();
    assert!(steps > 100);
    let received: Vec<Vec<u8>> = std::iter::from_fn(|| pair.b.poll_event()).collect();
    assert_eq!(received, (0..50).map(message).collect::<Vec<_>>());
}

#[test]
fn drive_until_reports_going_idle_first() {
    let mut pair = stop_and_wait(3, LinkConfig::default(), 7);
    let err = pair.drive_until(1_000, |pair| pair.b.expected == 4).unwrap_err();
    let Livelock::Idle(snapshot) = err else { panic!("{err:?}") };
    assert_eq!(snapshot.now, Instant::from_millis(60));
    assert_eq!((snapshot.in_flight_a_to_b, snapshot.timeout_a), (0, None));
    assert!(err.to_string().contains("idle before the predicate held"), "{err}");
}

#[test]
fn drive_for_advances_exactly() {
    let mut pair = stop_and_wait(100, LinkConfig::default(), 8);
    pair.drive_for(Duration::from_millis(1_010)).unwrap();
    assert_eq!(pair.now(), Instant::from_millis(1_010));
    // 20 ms per message; what arrives exactly at the deadline is delivered: the 51st
    // message (sent at 1000 ms), whose ack is on its way back.
    assert_eq!(pair.b.expected, 51);
    assert_eq!((pair.a_to_b().in_flight(), pair.b_to_a().in_flight()), (0, 1));
    pair.drive();
    assert_eq!(pair.now(), Instant::from_millis(2_000));
    // Idle: time still passes.
    assert_eq!(pair.drive_for(Duration::from_secs(5)), Ok(0));
    assert_eq!(pair.now(), Instant::from_millis(7_000));
}

/// Misbehaving machines for the livelock tests.
#[derive(Default)]
struct Toy {
    peer: u8,
    /// Answers every datagram with one of its own.
    echo: bool,
    /// Datagrams to send now.
    pending: u32,
    /// Asks to be woken at the last instant it was woken (never advancing time).
    timer: Option<Instant>,
    /// Sends forever, to an address nobody has.
    flood: bool,
    /// Sends one GSO batch of three segments, and one datagram to a stranger.
    batch: bool,
    stranger: bool,
    received: Vec<Vec<u8>>,
}

impl Machine for Toy {
    type Peer = u8;
    type Event = ();

    fn handle_datagram(&mut self, _now: Instant, _remote: u8, data: &[u8]) {
        self.received.push(data.to_vec());
        if self.echo {
            self.pending += 1;
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.timer.is_some() {
            self.timer = Some(now);
        }
    }

    fn poll_transmit(&mut self, _now: Instant, buf: &mut Vec<u8>) -> Option<Transmit<u8>> {
        buf.clear();
        if self.flood {
            buf.push(0);
            return Some(Transmit::single(99, 1));
        }
        if std::mem::take(&mut self.batch) {
            buf.extend_from_slice(b"aaabbbc");
            self.stranger = true;
            return Some(Transmit { destination: self.peer, size: 7, segment_size: Some(3) });
        }
        if std::mem::take(&mut self.stranger) {
            buf.push(2);
            return Some(Transmit::single(77, 1));
        }
        if self.pending > 0 {
            self.pending -= 1;
            buf.push(1);
            return Some(Transmit::single(self.peer, 1));
        }
        None
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.timer
    }

    fn poll_event(&mut self) -> Option<()> {
        None
    }
}

fn toys(a: Toy, b: Toy, config: LinkConfig) -> Pair<Toy, Toy> {
    Pair::symmetric(Toy { peer: 2, ..a }, 1, Toy { peer: 1, ..b }, 2, config, 9)
}

#[test]
fn ping_pong_forever_hits_the_step_limit() {
    let a = Toy { echo: true, pending: 1, ..Toy::default() };
    let b = Toy { echo: true, ..Toy::default() };
    let mut pair = toys(a, b, LinkConfig::default());
    let err = pair.drive_bounded(1_000).unwrap_err();
    let Livelock::StepLimit(snapshot) = err else { panic!("{err:?}") };
    assert_eq!(snapshot.steps, 1_000);
    assert_eq!(snapshot.now, Instant::from_millis(10 * 1_000));
    assert_eq!(snapshot.in_flight_a_to_b + snapshot.in_flight_b_to_a, 1);
    let message = err.to_string();
    assert!(message.contains("still busy at the step limit"), "{message}");
    assert!(message.contains("drive_until"), "{message}");
}

#[test]
#[should_panic(expected = "Pair::drive: still busy at the step limit")]
fn drive_panics_on_livelock() {
    let a = Toy { echo: true, pending: 1, ..Toy::default() };
    let b = Toy { echo: true, ..Toy::default() };
    let mut pair = toys(a, b, LinkConfig::default());
    pair.set_step_limit(500);
    pair.drive();
}

#[test]
fn timeout_that_never_advances_is_stuck() {
    let a = Toy { timer: Some(Instant::ZERO), ..Toy::default() };
    let mut pair = toys(a, Toy::default(), LinkConfig::default());
    let err = pair.drive_bounded(1_000_000).unwrap_err();
    let Livelock::Stuck { stalled, snapshot } = err else { panic!("{err:?}") };
    assert_eq!(stalled, 10_000);
    assert_eq!((snapshot.now, snapshot.timeout_a), (Instant::ZERO, Some(Instant::ZERO)));
    assert!(err.to_string().starts_with("stuck: 10000 consecutive steps"), "{err}");

    pair.set_stall_limit(10);
    assert!(matches!(pair.drive_until(1_000_000, |_| false), Err(Livelock::Stuck { .. })));
}

#[test]
fn ping_pong_without_latency_is_stuck() {
    let a = Toy { echo: true, pending: 1, ..Toy::default() };
    let b = Toy { echo: true, ..Toy::default() };
    let mut pair = toys(a, b, LinkConfig::default().with_latency(Duration::ZERO));
    pair.set_stall_limit(100);
    assert!(matches!(pair.drive_bounded(1_000_000), Err(Livelock::Stuck { stalled: 100, .. })));
}

#[test]
fn endless_transmits_are_a_flood() {
    let mut pair =
        toys(Toy::default(), Toy { flood: true, ..Toy::default() }, LinkConfig::default());
    let err = pair.drive_bounded(10).unwrap_err();
    assert!(matches!(err, Livelock::Flood { side: Side::B, .. }), "{err:?}");
    assert_eq!(pair.stats().misdirected_b, utp_proto::sim::MAX_TRANSMITS_PER_DRAIN as u64);
}

#[test]
fn segments_are_split_and_strangers_are_misdirected() {
    let a = Toy { batch: true, ..Toy::default() };
    let mut pair = toys(a, Toy::default(), LinkConfig::default());
    pair.drive();
    assert_eq!(pair.b.received, [&b"aaa"[..], b"bbb", b"c"]);
    let stats = pair.stats();
    assert_eq!((stats.a_to_b.sent, stats.misdirected_a), (3, 1));
    assert_eq!(*pair.a_addr(), 1);
    assert_eq!(*pair.b_addr(), 2);
}
