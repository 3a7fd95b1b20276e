//! The `rudp_endpoint` harness: two rudp [`Endpoint`]s (peers named by `u8`) joined by two
//! datagram queues that the fuzzer's bytes control, driven by a sequence of operations
//! decoded from those bytes.
//!
//! # Input format
//!
//! `[config_a, config_b, seed, op, op, ...]`. The two config bytes build each side's
//! [`Config`] (see [`configs`]: most bits change both sides, some only Bob's, so that the
//! two sides disagree on sizes and limits); `seed` seeds both endpoints' secrets. Each op
//! starts with one byte: the low 5 bits are the operation, bits 5 and 6 a small argument `x`
//! (0..=3), and bit 7 the side it applies to (0 = Alice, peer name 1; 1 = Bob, peer name 2).
//! Some ops read more bytes; reading past the end of the input yields zeros. Connections and
//! incoming ids are picked by an index byte counted from the newest (0 = the most recent).
//!
//! | op | name | reads | does |
//! |----|------|-------|------|
//! | 0 | connect | – | `connect` to the other side (x 2: to itself, 3: to a stranger, peer 3) |
//! | 1 | accept | u8 index | `accept` a reported incoming connection |
//! | 2 | refuse | u8 index | `refuse` a reported incoming connection |
//! | 3 | send | u8 conn, length (x: 0 u8, 1 u16, 2 u16·16, 3 u8: even `writable`, odd `writable + 1`) | `send` one message |
//! | 4 | recv | u8 conn | `recv` once (`x & 1`: until it fails) |
//! | 5 | send_direct | u8 conn, length (x: 0 u8, 1 u16, 2 `max_direct`, 3 `max_direct + 1`) | `send_direct` |
//! | 6 | recv_direct | u8 conn | `recv_direct` once (`x & 1`: until it fails) |
//! | 7 | close | u8 conn, u8 code kind, u16 code, reason (x: 0 empty, 1 u8 length + u8 seed, 2 the longest accepted + u8 seed, 3 one byte longer + u8 seed) | `close`, valid codes and reserved ones, ASCII and multi-byte reasons |
//! | 8 | advance | x 0: u16 µs, 1: u16 ms, 2: u8 s, 3: – (to the next timeout) | fire every timer due, in order |
//! | 9 | jump | x 0: u8 s, 1: u16 s, 2: u8 × 10 s, 3: – | move the clock at once (a driver that slept), then fire what is due; x 3: `handle_timeout(now)` early |
//! | 10 | deliver | – | deliver `x + 1` datagrams queued for the side |
//! | 11 | drop | x 3: u8 index | drop a queued datagram (x 0: the next, 1: the last, 2: all, 3: any) |
//! | 12 | duplicate | – | duplicate the next datagram (x 0: right after it, else at the back) |
//! | 13 | reorder | x 3: u8 | x 0: next to the back, 1: swap the next two, 2: reverse, 3: rotate |
//! | 14 | flip | u8 index, u16 bit | flip one bit of a queued datagram |
//! | 15 | mutate | u8 index, u8 field, u32 value | overwrite a field of a queued datagram, truncate it or extend it (see [`mutate`]) |
//! | 16 | inject | x 3: u8 peer; u8 length, bytes | a raw datagram from the other side (x 1: a stranger, 2: itself, 3: any peer) |
//! | 17 | forge | u8 type, u8 conn, u8 id kind, fields | a well-formed packet built with `wire::rudp` naming a real connection id (see [`Harness::forge`]); x 0: queued for the side, 1: from the other side now, 2: from a stranger, 3: from itself |
//! | 18 | flush | – | deliver everything until quiet (x & 1: 1 ms per round; x & 2: read everything) |
//! | 19 | replay | u8 index | deliver again one of the last datagrams the side received |
//! | 20 | rotate | u8 fill | `rotate_cookie_key` with 16 bytes of `fill` |
//! | 21 | query | u8 conn | check the connection's getters |
//! | 22 | settle | – | a perfect network until quiet (at most 120 s), reading everything; then the liveness checks below |
//! | 23.. | (no-op) | | |
//!
//! Messages have their length from the input and their bytes from their connection, their
//! number and the offset ([`message_bytes`]), so the receiver checks every byte; direct
//! datagrams likewise ([`direct_bytes`]).
//!
//! # What it checks
//!
//! Besides "nothing panics":
//!
//! - `poll_transmit` runs dry within [`MAX_DRAIN`] calls; every datagram sent parses and is
//!   at most the sender's `datagram_size`.
//! - Timers: `poll_timeout` never stays at or before an instant after [`MAX_STUCK`](super::clock::MAX_STUCK)
//!   consecutive `handle_timeout` calls at it, and one advance has at most [`MAX_WAKEUPS`](TwoSides::MAX_WAKEUPS).
//! - Events name handles the application holds (incoming ids once each); `Connected` only
//!   for a connection we started, once; nothing follows `Closed`; the close reason fits what
//!   happened (`Local` exactly when we closed, with our code; a handshake timeout only while
//!   connecting; a protocol violation or exceeded limit only on a connection that forged or
//!   damaged datagrams reached; a peer's CLOSE only after the peer connection sent one, with
//!   its code and reason).
//! - Errors are the documented ones, exactly when documented: `connect` and `accept` refuse
//!   only at `max_connections`, `accept` of an answered or expired incoming fails, `send` is
//!   `TooLarge` above `max_message` (with that maximum), `Blocked` only above `writable`,
//!   `NotConnected` only while connecting and `Closed` only once closed; likewise
//!   `send_direct` (`max_direct`), `recv` and `recv_direct` (`Blocked` while open, `Closed`
//!   once closed); `close` reports exactly the first of `Closed`, `ReservedCode`,
//!   `ReasonTooLong` that applies. A closed handle says `Closed` everywhere, and its
//!   getters say closed (or gone).
//! - Messages: `send` numbers them 0, 1, 2, ...; what a connection receives is exactly the
//!   messages its peer connection sent, in order, each once and byte for byte; the count of
//!   messages delivered never exceeds those sent, and equals it once the sender says it is
//!   flushed. Direct datagrams received are ones the peer sent. This holds as long as no
//!   forged, injected or damaged datagram named either connection id ("tainted"); for
//!   tainted connections only the API rules above are checked.
//! - No lost wake-ups: a message is received only after `Readable` (and never while
//!   `readable` says 0), a direct datagram only after `Direct`, and a sender that was
//!   `Blocked` and is flushed has had `Writable`.
//! - Bounds: connections plus pending incoming never exceed `max_connections`; the pending
//!   incoming are exactly those reported, unanswered and not expired; the endpoint holds
//!   exactly the connections the harness was handed and has not seen disappear; unread
//!   messages never take more than `reassembly_memory` plus one `max_message`; at most
//!   `direct_queue` direct datagrams wait; statistics agree with what was sent and received.
//! - After `settle`: no connection is still connecting, no incoming is pending, every
//!   untainted connection whose peer connection is open has all its messages acknowledged,
//!   and closed connections whose messages were all read are forgotten after `close_linger`
//!   (an accepted one no sooner than `cookie_lifetime` + 1 s after it was accepted).

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::time::Duration;

use super::clock::TwoSides;
use super::input::Input;
use super::queue;
use crate::rudp::{
    AcceptError, CloseCode, CloseError, CloseReason, Config, ConfigError, ConnectError,
    ConnectionHandle, CookieKey, Endpoint, Event, IncomingId, MESSAGE_OVERHEAD, RecvError,
    SendDirectError, SendError, State,
};
use crate::utp::LedbatConfig;
use crate::wire::rudp::{ConnectAck, Datagram, HEADER_LEN, Packet, Ranges};
use crate::{Instant, Machine};

/// The peer names of the two sides.
const NAMES: [u8; 2] = [1, 2];
/// A peer that is neither side: what it is sent is lost.
const STRANGER: u8 = 3;
/// Operations per input; the rest of a longer input is ignored.
const MAX_OPS: usize = 4096;
/// `poll_transmit` must return `None` within this many calls.
const MAX_DRAIN: usize = 100_000;
/// Rounds of one flush.
const MAX_FLUSH_ROUNDS: usize = 2000;
/// Datagrams waiting in one queue; more are dropped, as a full socket buffer would.
const MAX_QUEUED: usize = 20_000;
/// Recently delivered datagrams kept per side for replays.
const HISTORY: usize = 32;
/// The `max_message` of both sides unless a config bit lowers it.
const MAX_MESSAGE: u32 = 1 << 20;
/// The largest message the harness offers in one op (one byte over `MAX_MESSAGE`).
const MAX_SEND: usize = MAX_MESSAGE as usize + 1;
/// Message bytes one input may send in all: keeps every run fast.
const MAX_TOTAL: usize = 8 << 20;
/// How long `settle` runs the network at most, in virtual time: beyond the handshake,
/// incoming, ping and linger timeouts of every config.
const SETTLE_TIME: Duration = Duration::from_secs(120);
/// Rounds of one `settle`.
const SETTLE_ROUNDS: usize = 20_000;

/// Runs the input; see the module documentation.
pub(crate) fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let configs = configs(input.u8(), input.u8());
    let seed = input.u8();
    let trace = super::tracing(TRACE_VAR);
    let mut h = Harness::new(configs, seed);
    h.trace = trace;
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        let start = input.pos();
        h.op(&mut input);
        h.drain(0);
        h.drain(1);
        h.check();
        if trace {
            h.trace_op(&data[start..input.pos().min(data.len())]);
        }
    }
    if trace {
        h.trace_summary();
    }
}

/// With `RUDP_FUZZ_TRACE` set (and `std`), the harness prints every op and a summary to
/// stderr: `RUDP_FUZZ_TRACE=1 ./target/debug/rudp_endpoint <input>` shows how a crash came.
const TRACE_VAR: &str = "RUDP_FUZZ_TRACE";

/// The settings of Alice and Bob, from two bytes: every bit switches one setting away from
/// its default towards an edge case. Bits of `a` and the low four of `b` apply to both
/// sides; the high four bits of `b` only to Bob.
fn configs(a: u8, b: u8) -> [Arc<Config>; 2] {
    /// The harness only picks values the setters accept.
    fn ok(r: Result<&mut Config, ConfigError>) {
        r.expect("the harness picks valid settings");
    }
    let bit = |byte: u8, n: u8| byte & (1 << n) != 0;
    let mut c = Config::default();
    ok(c.set_max_connections(8));
    ok(c.set_max_pending(4));
    ok(c.set_max_message(MAX_MESSAGE));
    if bit(a, 0) {
        ok(c.set_datagram_size(128));
    }
    if bit(a, 1) {
        ok(c.set_send_buffer(4096));
    }
    if bit(a, 2) {
        ok(c.set_reassembly_memory(4096));
    }
    if bit(a, 3) {
        ok(c.set_initial_rto(Duration::from_millis(50)));
        ok(c.set_min_rto(Duration::from_millis(1)));
        ok(c.set_delivery_timeout(Duration::from_millis(200)));
    }
    if bit(a, 4) {
        ok(c.set_ack_delay_max(Duration::ZERO));
        ok(c.set_packet_threshold(1));
    }
    if bit(a, 5) {
        ok(c.set_handshake_timeout(Duration::from_secs(1)));
        ok(c.set_incoming_timeout(Duration::from_secs(1)));
        ok(c.set_cookie_lifetime(Duration::from_secs(1)));
    }
    if bit(a, 6) {
        ok(c.set_ping_interval(Duration::from_millis(200)));
        ok(c.set_ping_packet_count(1));
    }
    if bit(a, 7) {
        ok(c.set_close_linger(Duration::ZERO));
    }
    if bit(b, 0) {
        ok(c.set_max_connections(2));
        ok(c.set_max_pending(1));
    }
    if bit(b, 1) {
        ok(c.set_direct_queue(1));
    }
    if bit(b, 2) {
        ok(c.set_answer_limit_entries(1));
        ok(c.set_answer_limit_window(Duration::from_millis(100)));
    }
    if bit(b, 3) {
        c.set_congestion(Arc::new(LedbatConfig::default()));
    }
    let alice = c.clone();
    if bit(b, 4) {
        ok(c.set_max_message(200));
    }
    if bit(b, 5) {
        ok(c.set_reassembly_memory(4096));
        ok(c.set_send_buffer(4096));
    }
    if bit(b, 6) {
        ok(c.set_datagram_size(9000));
    }
    if bit(b, 7) {
        ok(c.set_ack_delay_max(Duration::from_secs(1)));
        ok(c.set_initial_rto(Duration::from_secs(3)));
    }
    [Arc::new(alice), Arc::new(c)]
}

/// What the harness knows about one connection it was handed.
#[derive(Debug)]
struct Conn {
    side: usize,
    handle: ConnectionHandle,
    peer: u8,
    /// Opened with `connect` (rather than `accept`).
    starter: bool,
    recv_id: u64,
    /// The peer's id: 0 until a starter is connected.
    remote_id: u64,
    /// Names the messages and direct datagrams this connection sends.
    stream: u64,
    /// Lengths of the messages `send` took, by message number.
    sent: Vec<usize>,
    /// Lengths of the direct datagrams `send_direct` took.
    directs: Vec<usize>,
    /// Messages the application received.
    received: usize,
    /// Established: accepted, or `Event::Connected` seen.
    connected: bool,
    closed: Option<CloseReason>,
    closed_at: Instant,
    /// When it was opened (accepted, for an accepted one).
    opened_at: Instant,
    /// What `close` was called with, when it succeeded.
    close_sent: Option<(CloseCode, String)>,
    /// `Event::Readable` came since the receive queue was last seen empty.
    readable_signalled: bool,
    /// `Event::Direct` came since the direct queue was last seen empty.
    direct_signalled: bool,
    /// `send` returned `Blocked` and no `Writable` came since.
    blocked: bool,
    /// `state` said `None`: the endpoint forgot it (for good: handles are never reused).
    gone: bool,
}

/// An `Event::Incoming` the harness saw.
#[derive(Debug)]
struct Pending {
    id: IncomingId,
    peer: u8,
    /// `accept` or `refuse` was called for it (successfully, for `accept`).
    answered: bool,
    /// When the endpoint refuses it unanswered.
    deadline: Instant,
}

/// A datagram on its way: who sent it and its bytes.
type Queued = (u8, Vec<u8>);

/// A 64-bit mix of `x` (SplitMix64's finaliser).
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The `len` bytes of message `number` of stream `stream`: a misplaced, stale or foreign
/// byte shows.
fn message_bytes(stream: u64, number: u64, len: usize) -> impl Iterator<Item = u8> {
    let base = mix(stream.rotate_left(40) ^ number);
    (0..len as u64).map(move |k| ((base ^ k).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8)
}

/// The `len` bytes of direct datagram `number` of stream `stream`.
fn direct_bytes(stream: u64, number: u64, len: usize) -> impl Iterator<Item = u8> {
    message_bytes(stream | 1 << 63, number, len)
}

fn side_of(name: u8) -> Option<usize> {
    NAMES.iter().position(|&n| n == name)
}

struct Harness {
    now: Instant,
    configs: [Arc<Config>; 2],
    eps: [Endpoint<u8>; 2],
    /// The harness's copy of each endpoint's cookie key, to forge valid cookies.
    cookies: [CookieKey; 2],
    /// `queues[s]`: datagrams on their way to side `s`.
    queues: [VecDeque<Queued>; 2],
    /// `history[s]`: the last datagrams delivered to side `s`.
    history: [VecDeque<Queued>; 2],
    conns: Vec<Conn>,
    by_handle: BTreeMap<(usize, ConnectionHandle), usize>,
    /// Connections by (side, receive id).
    by_id: BTreeMap<(usize, u64), usize>,
    incoming: [Vec<Pending>; 2],
    /// Connection ids that a forged, injected or damaged datagram carried.
    tainted: BTreeSet<u64>,
    /// Message bytes sent so far (bounded by [`MAX_TOTAL`]).
    total_sent: usize,
    buf: Vec<u8>,
    /// Print every event (see [`tracing`]).
    trace: bool,
}

impl Harness {
    fn new(configs: [Arc<Config>; 2], seed: u8) -> Self {
        let secret = |side: u8| -> [u8; 32] {
            core::array::from_fn(|i| {
                mix((u64::from(seed) << 16) | (u64::from(side) << 8) | i as u64) as u8
            })
        };
        let secrets = [secret(0), secret(1)];
        let cookie = |s: usize| {
            let mut key = [0; 16];
            key.copy_from_slice(&secrets[s][..16]);
            CookieKey::new(key, configs[s].cookie_lifetime())
        };
        Self {
            now: Instant::from_micros(1_000_000),
            eps: [
                Endpoint::new(configs[0].clone(), secrets[0]),
                Endpoint::new(configs[1].clone(), secrets[1]),
            ],
            cookies: [cookie(0), cookie(1)],
            configs,
            queues: [VecDeque::new(), VecDeque::new()],
            history: [VecDeque::new(), VecDeque::new()],
            conns: Vec::new(),
            by_handle: BTreeMap::new(),
            by_id: BTreeMap::new(),
            incoming: [Vec::new(), Vec::new()],
            tainted: BTreeSet::new(),
            total_sent: 0,
            buf: Vec::new(),
            trace: false,
        }
    }

    fn op(&mut self, input: &mut Input<'_>) {
        let b = input.u8();
        let side = usize::from(b >> 7);
        let other = 1 - side;
        let x = (b >> 5) & 3;
        let now = self.now;
        match b & 0x1f {
            0 => {
                let peer = match x {
                    2 => NAMES[side],
                    3 => STRANGER,
                    _ => NAMES[other],
                };
                self.connect(side, peer);
            }
            1 => self.accept(side, input.u8()),
            2 => {
                let index = input.u8();
                if let Some(p) = pick_mut(&mut self.incoming[side], index) {
                    p.answered = true;
                    let id = p.id;
                    self.eps[side].refuse(id);
                }
            }
            3 => {
                let conn = input.u8();
                let len = match x {
                    0 => Len::Exactly(usize::from(input.u8())),
                    1 => Len::Exactly(usize::from(input.u16())),
                    2 => Len::Exactly(usize::from(input.u16()) * 16),
                    _ => Len::Writable(input.u8() & 1 == 1),
                };
                if let Some(i) = self.pick_conn(side, conn) {
                    self.send(i, len);
                }
            }
            4 => {
                if let Some(i) = self.pick_conn(side, input.u8()) {
                    self.recv(i, x & 1 != 0);
                }
            }
            5 => {
                let conn = input.u8();
                let max = self.configs[side].max_direct();
                let len = match x {
                    0 => usize::from(input.u8()),
                    1 => usize::from(input.u16()),
                    2 => max,
                    _ => max + 1,
                };
                if let Some(i) = self.pick_conn(side, conn) {
                    self.send_direct(i, len);
                }
            }
            6 => {
                if let Some(i) = self.pick_conn(side, input.u8()) {
                    self.recv_direct(i, x & 1 != 0);
                }
            }
            7 => {
                let conn = input.u8();
                let kind = input.u8();
                let raw = input.u16();
                let code = match kind % 4 {
                    0 => CloseCode::from(raw),
                    1 => CloseCode::Application(raw),
                    2 => CloseCode::Application(raw % 8),
                    _ => [
                        CloseCode::Normal,
                        CloseCode::PingTimeout,
                        CloseCode::ProtocolViolation,
                        CloseCode::LimitExceeded,
                        CloseCode::UnknownConnection,
                    ][usize::from(raw % 5)],
                };
                let Some(i) = self.pick_conn(side, conn) else { return };
                let max = self.eps[side].max_close_reason(self.conns[i].handle);
                let len = match x {
                    0 => 0,
                    1 => usize::from(input.u8()),
                    2 => max,
                    _ => max + 1,
                };
                let reason = if len == 0 { String::new() } else { reason(len, input.u8()) };
                self.close(i, code, &reason);
            }
            8 => {
                let target = match x {
                    0 => now + Duration::from_micros(u64::from(input.u16())),
                    1 => now + Duration::from_millis(u64::from(input.u16())),
                    2 => now + Duration::from_secs(u64::from(input.u8())),
                    _ => {
                        let next = self.eps.iter().filter_map(Machine::poll_timeout).min();
                        next.unwrap_or(now + Duration::from_secs(1)).max(now)
                    }
                };
                self.advance_to(target);
            }
            9 => {
                let jump = match x {
                    0 => Duration::from_secs(u64::from(input.u8())),
                    1 => Duration::from_secs(u64::from(input.u16())),
                    2 => Duration::from_secs(u64::from(input.u8()) * 10),
                    _ => {
                        // Early (or repeated) calls are harmless, says `Machine`.
                        self.eps[side].handle_timeout(now);
                        return;
                    }
                };
                self.now = now + jump;
                self.advance_to(self.now);
            }
            10 => {
                for _ in 0..=x {
                    self.deliver_next(side);
                }
            }
            11 => {
                let q = &mut self.queues[side];
                match x {
                    0 => drop(q.pop_front()),
                    1 => drop(q.pop_back()),
                    2 => q.clear(),
                    _ => {
                        let index = usize::from(input.u8());
                        if !q.is_empty() {
                            q.remove(index % q.len());
                        }
                    }
                }
            }
            12 => {
                queue::duplicate_front(&mut self.queues[side], x);
            }
            13 => {
                queue::reorder(&mut self.queues[side], x, input);
            }
            14 => {
                let index = input.u8();
                let bit = usize::from(input.u16());
                self.damage(side, index, |d, _| {
                    if !d.is_empty() {
                        let bit = bit % (d.len() * 8);
                        d[bit / 8] ^= 1 << (bit % 8);
                    }
                });
            }
            15 => {
                let index = input.u8();
                let field = input.u8();
                let value = input.u32();
                self.damage(side, index, |d, ids| mutate(d, field, value, ids));
            }
            16 => {
                let from = match x {
                    0 => NAMES[other],
                    1 => STRANGER,
                    2 => NAMES[side],
                    _ => input.u8(),
                };
                let len = usize::from(input.u8());
                let data = input.bytes(len);
                self.taint(data);
                self.eps[side].handle_datagram(now, from, data);
            }
            17 => self.forge(side, x, input),
            18 => self.flush(x & 1 != 0, x & 2 != 0),
            19 => {
                let index = usize::from(input.u8());
                let history = &self.history[side];
                if !history.is_empty() {
                    let (from, d) = history[history.len() - 1 - index % history.len()].clone();
                    self.eps[side].handle_datagram(now, from, &d);
                }
            }
            20 => {
                let secret = [input.u8(); 16];
                self.eps[side].rotate_cookie_key(secret);
                self.cookies[side].rotate(secret);
            }
            21 => {
                if let Some(i) = self.pick_conn(side, input.u8()) {
                    self.query(i);
                }
            }
            22 => self.settle(),
            _ => {}
        }
    }

    fn trace_op(&self, op: &[u8]) {
        let _ = op;
        trace!(
            "{:>12?} op {op:02x?} queued to A/B: {}/{} conns A/B: {}/{}",
            self.now,
            self.queues[0].len(),
            self.queues[1].len(),
            self.eps[0].connection_count(),
            self.eps[1].connection_count(),
        );
    }

    fn trace_summary(&self) {
        for (i, c) in self.conns.iter().enumerate() {
            let _ = (i, c);
            trace!(
                "conn {i}: side {} peer {} starter {} ids {:x}/{:x} sent {} received {} \
                 connected {} closed {:?} close_sent {:?} gone {} tainted {} writer {:?}",
                c.side,
                c.peer,
                c.starter,
                c.recv_id,
                c.remote_id,
                c.sent.len(),
                c.received,
                c.connected,
                c.closed,
                c.close_sent,
                c.gone,
                self.is_tainted(c),
                self.writer_of(i)
            );
        }
        trace!("A: {:?}", self.eps[0].endpoint_stats());
        trace!("B: {:?}", self.eps[1].endpoint_stats());
    }

    // ---- connections -----------------------------------------------------------------

    fn connect(&mut self, side: usize, peer: u8) {
        let max = self.configs[side].max_connections();
        let r = self.eps[side].connect(self.now, peer);
        let ep = &self.eps[side];
        match r {
            Ok(handle) => {
                assert!(
                    ep.connection_count() + ep.pending_incoming() <= max,
                    "connect went over max_connections"
                );
                self.record(side, handle, peer, true);
            }
            Err(ConnectError::TooManyConnections) => assert!(
                ep.connection_count() + ep.pending_incoming() >= max,
                "TooManyConnections below the limit ({} connections, {} pending, max {max})",
                ep.connection_count(),
                ep.pending_incoming()
            ),
        }
    }

    fn accept(&mut self, side: usize, index: u8) {
        let now = self.now;
        let Some(p) = pick_mut(&mut self.incoming[side], index) else { return };
        let (id, answered, expired, peer) = (p.id, p.answered, now >= p.deadline, p.peer);
        let r = self.eps[side].accept(now, id);
        match r {
            Ok(handle) => {
                assert!(!answered, "accept succeeded for an incoming already answered");
                assert!(!expired, "accept succeeded for an incoming past incoming_timeout");
                if let Some(p) = self.incoming[side].iter_mut().find(|p| p.id == id) {
                    p.answered = true;
                }
                self.record(side, handle, peer, false);
                let c = self.conns.last_mut().expect("just recorded");
                c.connected = true;
                assert_ne!(c.remote_id, 0, "an accepted connection knows the peer's id");
            }
            Err(AcceptError::Unknown) => {
                assert!(answered || expired, "accept says Unknown for a pending incoming");
            }
            Err(AcceptError::TooManyConnections) => {
                assert!(!answered && !expired, "TooManyConnections for an answered incoming");
                let max = self.configs[side].max_connections();
                assert!(
                    self.eps[side].connection_count() >= max,
                    "accept says TooManyConnections below the limit"
                );
            }
        }
    }

    fn record(&mut self, side: usize, handle: ConnectionHandle, peer: u8, starter: bool) {
        let ep = &self.eps[side];
        let Some((recv_id, remote_id)) = ep.connection_ids(handle) else {
            panic!("a handle just returned names no connection");
        };
        assert_eq!(ep.peer(handle), Some(&peer), "a new connection has the wrong peer");
        assert_ne!(recv_id, 0, "a connection id is never 0");
        let state = ep.state(handle);
        let expected = if starter { State::Connecting } else { State::Established };
        assert_eq!(state, Some(expected), "a new connection is in the wrong state");
        let index = self.conns.len();
        assert!(
            self.by_handle.insert((side, handle), index).is_none(),
            "a new connection got the handle of an earlier one"
        );
        if let Some(&old) = self.by_id.get(&(side, recv_id)) {
            assert!(self.conns[old].gone, "two live connections share receive id {recv_id:x}");
        }
        self.by_id.insert((side, recv_id), index);
        if self.trace {
            trace!(
                "{:>12?}   side {side}: conn {index} {handle:?} ids {recv_id}/{remote_id}",
                self.now
            );
        }
        self.conns.push(Conn {
            side,
            handle,
            peer,
            starter,
            recv_id,
            remote_id,
            stream: index as u64 + 1,
            sent: Vec::new(),
            directs: Vec::new(),
            received: 0,
            connected: false,
            closed: None,
            closed_at: self.now,
            opened_at: self.now,
            close_sent: None,
            readable_signalled: false,
            direct_signalled: false,
            blocked: false,
            gone: false,
        });
    }

    /// The index of one of `side`'s connections (closed ones included), newest first.
    fn pick_conn(&self, side: usize, index: u8) -> Option<usize> {
        let n = self.conns.iter().filter(|c| c.side == side).count();
        if n == 0 {
            return None;
        }
        let k = usize::from(index) % n;
        self.conns.iter().enumerate().rev().filter(|(_, c)| c.side == side).nth(k).map(|(i, _)| i)
    }

    fn is_tainted(&self, c: &Conn) -> bool {
        self.tainted.contains(&c.recv_id) || self.tainted.contains(&c.remote_id)
    }

    /// The connection that sends what connection `i` receives, when that is certain: the
    /// peer is one of the sides, the ids match both ways, and no forged or damaged datagram
    /// carried either id.
    fn writer_of(&self, i: usize) -> Option<usize> {
        let c = &self.conns[i];
        if c.remote_id == 0 || self.is_tainted(c) {
            return None;
        }
        let side = side_of(c.peer)?;
        let &w = self.by_id.get(&(side, c.remote_id))?;
        let writer = &self.conns[w];
        (writer.remote_id == c.recv_id && writer.peer == NAMES[c.side]).then_some(w)
    }

    /// The connections the other side accepted for starter `i` (not yet connected):
    /// normally one, none before the application accepted.
    fn listeners_of(&self, i: usize) -> Vec<usize> {
        let c = &self.conns[i];
        let Some(side) = side_of(c.peer) else { return Vec::new() };
        (0..self.conns.len())
            .filter(|&w| {
                let l = &self.conns[w];
                l.side == side && !l.starter && l.remote_id == c.recv_id && l.peer == NAMES[c.side]
            })
            .collect()
    }

    fn send(&mut self, i: usize, len: Len) {
        let (side, handle) = (self.conns[i].side, self.conns[i].handle);
        let ep = &self.eps[side];
        let writable = ep.writable(handle);
        let max = ep.max_message(handle);
        let len = match len {
            Len::Exactly(n) => n,
            Len::Writable(over) => writable + usize::from(over),
        }
        .min(MAX_SEND);
        if self.total_sent + len > MAX_TOTAL {
            return;
        }
        let c = &self.conns[i];
        let number = c.sent.len() as u64;
        let message: Vec<u8> = message_bytes(c.stream, number, len).collect();
        let r = self.eps[side].send(handle, &message);
        let c = &mut self.conns[i];
        let open = c.connected && c.closed.is_none();
        match r {
            Ok(n) => {
                assert!(open, "send succeeded on a connection that is not established");
                assert_eq!(n, number, "send numbers messages 0, 1, 2, ...");
                assert!(len <= writable, "send took {len} bytes, over writable ({writable})");
                c.sent.push(len);
                self.total_sent += len;
            }
            Err(SendError::TooLarge { len: l, max: m }) => {
                assert!(open, "TooLarge from a connection that is not established");
                assert_eq!((l, m), (len, max), "TooLarge names the wrong sizes");
                assert!(len > max, "TooLarge for {len} bytes, within max_message ({max})");
            }
            Err(SendError::Blocked) => {
                assert!(open, "Blocked from a connection that is not established");
                assert!(len <= max, "Blocked rather than TooLarge");
                // `writable` 0 means "no message", a 0-byte one included.
                assert!(
                    len > writable || writable == 0,
                    "Blocked for {len} bytes, within writable ({writable})"
                );
                c.blocked = true;
            }
            Err(SendError::NotConnected) => {
                assert!(c.starter && !c.connected && c.closed.is_none(), "NotConnected wrongly");
            }
            Err(SendError::Closed) => assert!(c.closed.is_some(), "send says Closed while open"),
        }
    }

    fn recv(&mut self, i: usize, until_blocked: bool) {
        let (side, handle) = (self.conns[i].side, self.conns[i].handle);
        let writer = self.writer_of(i);
        loop {
            let readable = self.eps[side].readable(handle);
            let r = self.eps[side].recv(self.now, handle);
            let c = &self.conns[i];
            match r {
                Ok(message) => {
                    assert!(readable > 0, "recv returned a message while readable said 0");
                    assert!(c.readable_signalled, "a message was received without Readable");
                    if let Some(w) = writer {
                        let w = &self.conns[w];
                        let number = c.received;
                        assert!(
                            number < w.sent.len(),
                            "conn {i} received message {number}, but its peer sent {}",
                            w.sent.len()
                        );
                        assert_eq!(
                            message.len(),
                            w.sent[number],
                            "conn {i}: message {number} has the wrong length"
                        );
                        let expected = message_bytes(w.stream, number as u64, message.len());
                        if let Some(k) = message.iter().zip(expected).position(|(a, b)| *a != b) {
                            panic!(
                                "conn {i}: byte {k} of message {number} differs from what was sent"
                            );
                        }
                    }
                    let c = &mut self.conns[i];
                    c.received += 1;
                    if self.eps[side].readable(handle) == 0 {
                        c.readable_signalled = false;
                    }
                    if !until_blocked {
                        return;
                    }
                }
                Err(RecvError::Blocked) => {
                    assert_eq!(readable, 0, "recv says Blocked while readable says {readable}");
                    assert!(c.closed.is_none(), "recv of a closed connection says Blocked");
                    self.conns[i].readable_signalled = false;
                    return;
                }
                Err(RecvError::Closed) => {
                    assert_eq!(readable, 0, "recv says Closed while readable says {readable}");
                    assert!(c.closed.is_some(), "recv says Closed before Event::Closed");
                    return;
                }
            }
        }
    }

    fn send_direct(&mut self, i: usize, len: usize) {
        let (side, handle) = (self.conns[i].side, self.conns[i].handle);
        let max = self.configs[side].max_direct();
        let c = &self.conns[i];
        let number = c.directs.len() as u64;
        let payload: Vec<u8> = direct_bytes(c.stream, number, len).collect();
        let r = self.eps[side].send_direct(handle, &payload);
        let c = &mut self.conns[i];
        let open = c.connected && c.closed.is_none();
        match r {
            Ok(()) => {
                assert!(open, "send_direct succeeded on a connection that is not established");
                assert!(len <= max, "send_direct took {len} bytes, over max_direct ({max})");
                c.directs.push(len);
            }
            Err(SendDirectError::TooLarge { len: l, max: m }) => {
                assert!(open, "TooLarge from a connection that is not established");
                assert_eq!((l, m), (len, max), "TooLarge names the wrong sizes");
                assert!(len > max, "TooLarge for {len} bytes, within max_direct ({max})");
            }
            Err(SendDirectError::Blocked) => {
                assert!(open, "Blocked from a connection that is not established");
                assert!(len <= max, "Blocked rather than TooLarge");
            }
            Err(SendDirectError::NotConnected) => {
                assert!(c.starter && !c.connected && c.closed.is_none(), "NotConnected wrongly");
            }
            Err(SendDirectError::Closed) => {
                assert!(c.closed.is_some(), "send_direct says Closed while open");
            }
        }
    }

    fn recv_direct(&mut self, i: usize, until_blocked: bool) {
        let (side, handle) = (self.conns[i].side, self.conns[i].handle);
        let writer = self.writer_of(i);
        let limit = self.configs[side].direct_queue();
        let mut taken = 0;
        loop {
            let r = self.eps[side].recv_direct(self.now, handle);
            let c = &self.conns[i];
            match r {
                Ok(payload) => {
                    assert!(c.direct_signalled, "a direct datagram was received without Direct");
                    taken += 1;
                    assert!(taken <= limit, "more than direct_queue ({limit}) datagrams waited");
                    if let Some(w) = writer {
                        let w = &self.conns[w];
                        let genuine = w.directs.iter().enumerate().any(|(n, &len)| {
                            len == payload.len()
                                && payload.iter().copied().eq(direct_bytes(w.stream, n as u64, len))
                        });
                        assert!(genuine, "conn {i} received a direct datagram its peer never sent");
                    }
                    if !until_blocked {
                        return;
                    }
                }
                Err(RecvError::Blocked) => {
                    assert!(c.closed.is_none(), "recv_direct of a closed connection says Blocked");
                    self.conns[i].direct_signalled = false;
                    return;
                }
                Err(RecvError::Closed) => {
                    assert!(c.closed.is_some(), "recv_direct says Closed before Event::Closed");
                    self.conns[i].direct_signalled = false;
                    return;
                }
            }
        }
    }

    fn close(&mut self, i: usize, code: CloseCode, reason: &str) {
        let (side, handle) = (self.conns[i].side, self.conns[i].handle);
        let max = self.eps[side].max_close_reason(handle);
        let c = &self.conns[i];
        let expected = if c.closed.is_some() {
            Err(CloseError::Closed)
        } else if let CloseCode::Application(n @ (0..=3 | 5)) = code {
            Err(CloseError::ReservedCode(n))
        } else if code == CloseCode::UnknownConnection {
            Err(CloseError::ReservedCode(5)) // only the endpoint says it has no such connection
        } else if reason.len() > max {
            Err(CloseError::ReasonTooLong { len: reason.len(), max })
        } else {
            Ok(())
        };
        let r = self.eps[side].close(self.now, handle, code, reason);
        assert_eq!(r, expected, "close({code:?}, {} bytes of reason)", reason.len());
        if r.is_ok() {
            self.conns[i].close_sent = Some((code, String::from(reason)));
        }
    }

    fn query(&self, i: usize) {
        let c = &self.conns[i];
        let ep = &self.eps[c.side];
        let h = c.handle;
        if c.closed.is_some() {
            assert_eq!(ep.writable(h), 0, "a closed connection is writable");
            assert_eq!(ep.max_message(h), 0, "a closed connection has a max_message");
            assert!(!ep.is_flushed(h), "a closed connection says flushed");
        } else {
            assert_eq!(ep.peer(h), Some(&c.peer), "the peer changed");
            let ids = ep.connection_ids(h);
            let expected = if c.connected || !c.starter { c.remote_id } else { 0 };
            assert_eq!(ids, Some((c.recv_id, expected)), "connection ids changed");
            if !c.connected {
                assert_eq!(ep.max_message(h), 0, "max_message before the handshake");
                assert_eq!(ep.writable(h), 0, "writable before the handshake");
                assert!(!ep.is_flushed(h), "flushed before the handshake");
            } else {
                assert!(ep.writable(h) <= ep.max_message(h), "writable over max_message");
            }
            let reason = ep.max_close_reason(h);
            assert!(reason <= 512, "a close reason over 512 bytes");
            let datagram = self.configs[c.side].datagram_size();
            assert!(reason + 14 <= datagram, "a close reason that does not fit a datagram");
        }
    }

    // ---- the network -----------------------------------------------------------------

    /// Drains `side`'s transmits into the queues and handles its events.
    fn drain(&mut self, side: usize) {
        let now = self.now;
        let max = self.configs[side].datagram_size();
        let mut sent = 0;
        while let Some(t) = self.eps[side].poll_transmit(now, &mut self.buf) {
            sent += 1;
            assert!(sent <= MAX_DRAIN, "poll_transmit does not run dry");
            assert!(t.size <= self.buf.len(), "a transmit is longer than its buffer");
            assert_eq!(t.segment_size, None, "the rudp endpoint does not batch");
            let d = &self.buf[..t.size];
            let parsed = Datagram::parse(d);
            if let Err(e) = parsed {
                panic!("sent a datagram that does not parse ({e:?}): {d:02x?}");
            }
            assert!(
                d.len() <= max,
                "sent {} bytes, over datagram_size ({max}): {parsed:?}",
                d.len()
            );
            if let Some(to) = side_of(t.destination) {
                if self.queues[to].len() < MAX_QUEUED {
                    self.queues[to].push_back((NAMES[side], d.to_vec()));
                }
            }
        }
        self.events(side);
    }

    fn events(&mut self, side: usize) {
        while let Some(event) = self.eps[side].poll_event() {
            if self.trace {
                trace!("{:>12?}   side {side}: {event:?}", self.now);
            }
            let handle = match &event {
                Event::Incoming { id, peer } => {
                    let pending = &mut self.incoming[side];
                    assert!(pending.iter().all(|p| p.id != *id), "incoming id reported twice");
                    let deadline = self.now + self.configs[side].incoming_timeout();
                    pending.push(Pending { id: *id, peer: *peer, answered: false, deadline });
                    continue;
                }
                Event::Connected(h)
                | Event::Readable(h)
                | Event::Direct(h)
                | Event::Writable(h)
                | Event::Flushed(h) => *h,
                Event::Closed { handle, .. } => *handle,
            };
            let Some(&i) = self.by_handle.get(&(side, handle)) else {
                panic!("{event:?} names a handle the application never got");
            };
            assert!(self.conns[i].closed.is_none(), "{event:?} after Event::Closed");
            match event {
                Event::Incoming { .. } => {}
                Event::Connected(_) => {
                    let ids = self.eps[side].connection_ids(handle);
                    let c = &mut self.conns[i];
                    assert!(c.starter, "Event::Connected for an accepted connection");
                    assert!(!c.connected, "Event::Connected twice");
                    c.connected = true;
                    let Some((recv_id, remote_id)) = ids else {
                        panic!("Event::Connected for a connection already gone");
                    };
                    assert_eq!(recv_id, c.recv_id, "the receive id changed");
                    assert_ne!(remote_id, 0, "connected without the peer's id");
                    c.remote_id = remote_id;
                }
                Event::Readable(_) => self.conns[i].readable_signalled = true,
                Event::Direct(_) => self.conns[i].direct_signalled = true,
                Event::Writable(_) => self.conns[i].blocked = false,
                Event::Flushed(_) => {}
                Event::Closed { reason, .. } => {
                    self.check_close_reason(i, &reason);
                    let c = &mut self.conns[i];
                    c.closed = Some(reason);
                    c.closed_at = self.now;
                }
            }
        }
    }

    /// Whether the reason connection `i` reports for its end fits what happened.
    fn check_close_reason(&self, i: usize, reason: &CloseReason) {
        let c = &self.conns[i];
        let tainted = self.is_tainted(c);
        match reason {
            CloseReason::Local { code } => {
                let ours = c.close_sent.as_ref().map(|(code, _)| *code);
                assert_eq!(ours, Some(*code), "closed locally with a code we did not send");
                return;
            }
            _ => assert!(c.close_sent.is_none(), "we closed conn {i}, but it says {reason:?}"),
        }
        match reason {
            CloseReason::HandshakeTimeout => {
                assert!(c.starter && !c.connected, "a handshake timeout after the handshake");
            }
            CloseReason::PingTimeout { .. } => {
                assert!(c.connected, "a ping timeout before the handshake finished");
            }
            CloseReason::ProtocolViolation(_) | CloseReason::LimitExceeded(_) => {
                assert!(tainted, "conn {i}: the genuine peer was blamed: {reason:?}");
            }
            CloseReason::Peer { code, reason: text } => {
                if tainted {
                    return;
                }
                // The connection at the other end: the writer once connected; while
                // connecting, the listener's accepted connection(s) whose CONNECT-ACK has
                // not arrived yet.
                let peers: Vec<usize> = if c.connected {
                    self.writer_of(i).into_iter().collect()
                } else {
                    self.listeners_of(i)
                };
                if peers.iter().any(|&w| self.is_tainted(&self.conns[w])) {
                    return; // a forged packet (or its code-5 answer) may have ended the peer
                }
                if peers.is_empty() {
                    assert!(
                        c.connected || matches!(code, CloseCode::Normal | CloseCode::LimitExceeded),
                        "conn {i}: a refusal with code {code:?} ({text:?})"
                    );
                    return;
                }
                let sent_it = |w: &Conn| {
                    let Some(theirs) = &w.closed else { return false };
                    if *code == CloseCode::UnknownConnection {
                        return true; // the peer forgot its closed connection
                    }
                    let sends = matches!(
                        theirs,
                        CloseReason::Local { .. }
                            | CloseReason::PingTimeout { .. }
                            | CloseReason::ProtocolViolation(_)
                            | CloseReason::LimitExceeded(_)
                    );
                    // A CLOSE repeated in answer to a small packet has no reason.
                    let same_text = text.is_empty()
                        || w.close_sent.as_ref().is_none_or(|(_, sent)| sent == text);
                    sends && Some(*code) == theirs.code() && same_text
                };
                assert!(
                    peers.iter().any(|&w| sent_it(&self.conns[w])),
                    "conn {i}: a CLOSE ({code:?}, {text:?}) that its peer connection did not \
                     send: {:?}",
                    peers
                        .iter()
                        .map(|&w| (&self.conns[w].closed, &self.conns[w].close_sent))
                        .collect::<Vec<_>>()
                );
            }
            CloseReason::Local { .. } => {}
        }
    }

    /// The invariants that hold after every op.
    fn check(&mut self) {
        let mut live = [0usize; 2];
        for i in 0..self.conns.len() {
            if self.conns[i].gone {
                continue;
            }
            self.check_conn(i);
            if !self.conns[i].gone {
                live[self.conns[i].side] += 1;
            }
        }
        for (side, live) in live.into_iter().enumerate() {
            let ep = &self.eps[side];
            let config = &self.configs[side];
            assert_eq!(
                ep.connection_count(),
                live,
                "the endpoint holds connections the application was never handed"
            );
            assert!(
                ep.connection_count() + ep.pending_incoming() <= config.max_connections(),
                "connections and pending incoming over max_connections"
            );
            assert!(ep.pending_incoming() <= config.max_pending(), "over max_pending");
            let now = self.now;
            let waiting =
                self.incoming[side].iter().filter(|p| !p.answered && now < p.deadline).count();
            assert_eq!(
                ep.pending_incoming(),
                waiting,
                "pending incoming are not those reported, unanswered and unexpired"
            );
        }
    }

    fn check_conn(&mut self, i: usize) {
        let c = &self.conns[i];
        let ep = &self.eps[c.side];
        let h = c.handle;
        let state = ep.state(h);
        match state {
            None => {
                assert!(c.closed.is_some(), "conn {i} disappeared without Event::Closed");
                assert_eq!(ep.readable(h), 0, "a gone connection is readable");
                self.conns[i].gone = true;
                return;
            }
            Some(State::Closed) => assert!(c.closed.is_some(), "closed without Event::Closed"),
            Some(State::Connecting) => {
                assert!(c.starter && !c.connected && c.closed.is_none(), "conn {i} connecting")
            }
            Some(State::Established) => {
                assert!(c.connected && c.closed.is_none(), "conn {i} established: {c:?}")
            }
        }
        assert!(c.close_sent.is_none() || c.closed.is_some(), "close() without Event::Closed");
        let readable = ep.readable(h);
        assert!(readable == 0 || c.readable_signalled, "conn {i}: readable without Readable");
        if let Some(stats) = ep.stats(h) {
            assert_eq!(stats.messages_sent, c.sent.len() as u64, "stats: messages_sent");
            let bytes: usize = c.sent.iter().sum();
            assert_eq!(stats.bytes_sent, bytes as u64, "stats: bytes_sent");
            assert_eq!(
                stats.messages_received,
                (c.received + readable) as u64,
                "stats: messages_received is not what was received plus what is readable"
            );
        }
        let config = &self.configs[c.side];
        let bound = config.reassembly_memory() + config.max_message() as usize + MESSAGE_OVERHEAD;
        assert!(readable * MESSAGE_OVERHEAD <= bound, "conn {i}: {readable} messages unread");
        let flushed = ep.is_flushed(h);
        assert!(!flushed || (c.connected && c.closed.is_none()), "flushed but not established");
        assert!(!(c.blocked && flushed), "conn {i}: Blocked, then flushed, but no Writable");
        if let Some(w) = self.writer_of(i) {
            let writer = &self.conns[w];
            let delivered = c.received + readable;
            assert!(
                delivered <= writer.sent.len(),
                "conn {i} delivered {delivered} messages, its peer sent {}",
                writer.sent.len()
            );
            let unread: usize =
                writer.sent[c.received..delivered].iter().map(|len| len + MESSAGE_OVERHEAD).sum();
            assert!(unread <= bound, "conn {i}: {unread} bytes of unread messages (bound {bound})");
            if !writer.gone && self.eps[writer.side].is_flushed(writer.handle) {
                assert_eq!(
                    delivered,
                    writer.sent.len(),
                    "conn {w} says flushed, but conn {i} delivered {delivered} of its {} messages",
                    writer.sent.len()
                );
            }
        }
    }

    fn deliver_next(&mut self, side: usize) {
        if let Some(d) = self.queues[side].pop_front() {
            self.deliver(side, d);
            self.drain(side);
        }
    }

    fn deliver(&mut self, side: usize, (from, d): Queued) {
        self.eps[side].handle_datagram(self.now, from, &d);
        if self.history[side].len() >= HISTORY {
            self.history[side].pop_front();
        }
        self.history[side].push_back((from, d));
    }

    /// Changes a queued datagram (`f` gets it and the ids of the connections the harness
    /// knows); the connection ids it carried before and after are tainted.
    fn damage(&mut self, side: usize, index: u8, f: impl FnOnce(&mut Vec<u8>, &[u64])) {
        if self.queues[side].is_empty() {
            return;
        }
        let ids: Vec<u64> = self.conns.iter().flat_map(|c| [c.recv_id, c.remote_id]).collect();
        let k = usize::from(index) % self.queues[side].len();
        let mut d = core::mem::take(&mut self.queues[side][k].1);
        self.taint(&d);
        f(&mut d, &ids);
        self.taint(&d);
        self.queues[side][k].1 = d;
    }

    /// Taints the connection ids a datagram names, if it parses.
    fn taint(&mut self, d: &[u8]) {
        let Ok(datagram) = Datagram::parse(d) else { return };
        self.tainted.insert(datagram.dst_id);
        match datagram.packet {
            Packet::Connect { src_id, .. }
            | Packet::ConnectAck(ConnectAck::Accepted { src_id, .. }) => {
                self.tainted.insert(src_id);
            }
            _ => {}
        }
    }

    /// Builds a well-formed packet from the input that names a real connection id, and
    /// delivers it (x 1: from the other side, 2: from a stranger, 3: from the side itself)
    /// or queues it for the side (x 0).
    ///
    /// Reads a type byte (`% 9 + 1`), a connection index and an id kind (`% 4`: 0 its
    /// receive id, 1 its peer's id, 2 a number from the input, 3 its receive id + 1), then
    /// the type's fields: numbers are read as a kind byte (`% 4`: u8, u16, u32, u64::MAX -
    /// u8) and a value. A CONNECT's cookie is none, 12 bytes from the input, or one the
    /// receiving side really issued (the harness mirrors its key).
    fn forge(&mut self, side: usize, x: u8, input: &mut Input<'_>) {
        let kind = input.u8() % 9 + 1;
        let conn = usize::from(input.u8());
        let id_kind = input.u8() % 4;
        let known = (!self.conns.is_empty()).then(|| &self.conns[conn % self.conns.len()]);
        let id = match (id_kind, known) {
            (0, Some(c)) => c.recv_id,
            (1, Some(c)) => c.remote_id,
            (3, Some(c)) => c.recv_id.wrapping_add(1),
            _ => number(input),
        }
        .max(1);
        let from = match x {
            2 => STRANGER,
            3 => NAMES[side],
            _ => NAMES[1 - side],
        };
        let mut pairs = [(0u64, 0u32); 4];
        let mut bytes = [0u8; 255];
        let datagram = match kind {
            1 => {
                let max_message = input.u32();
                let window = input.u32();
                let cookie = match input.u8() % 3 {
                    0 => None,
                    1 => {
                        let mut c = [0; 12];
                        c.copy_from_slice(&pad::<12>(input.bytes(12)));
                        Some(c)
                    }
                    _ => Some(self.cookies[side].issue(self.now, &from, id)),
                };
                let mut buf = Vec::new();
                let packet =
                    Packet::Connect { src_id: id, max_message, window, cookie: cookie.as_ref() };
                if (Datagram { dst_id: 0, packet }).try_emit(&mut buf).is_err() {
                    return;
                }
                buf
            }
            2 => {
                let sub = input.u8();
                let cookie = pad::<12>(input.bytes(12));
                let ack = if sub & 1 == 0 {
                    ConnectAck::Challenge { cookie: &cookie }
                } else {
                    let src_id = match known {
                        Some(c) if sub & 2 != 0 => c.recv_id,
                        _ => number(input).max(1),
                    };
                    ConnectAck::Accepted { src_id, max_message: input.u32(), window: input.u32() }
                };
                emit(id, Packet::ConnectAck(ack))
            }
            3 => {
                let packet_number = number(input);
                let message_number = number(input);
                let mut message_len = input.u32();
                let mut offset = input.u32();
                let n = usize::from(input.u8());
                bytes[..n].copy_from_slice(&pad::<255>(input.bytes(n))[..n]);
                let mut fragment = &bytes[..n];
                if message_len == 0 {
                    offset = 0;
                    fragment = &[];
                } else if fragment.is_empty() {
                    fragment = &bytes[..1];
                }
                let end = u64::from(offset) + fragment.len() as u64;
                if end > u64::from(message_len) {
                    match u32::try_from(end) {
                        Ok(end) => message_len = end,
                        Err(_) => {
                            message_len = u32::MAX;
                            offset = u32::MAX - fragment.len() as u32;
                        }
                    }
                }
                emit(
                    id,
                    Packet::Data { packet_number, message_number, message_len, offset, fragment },
                )
            }
            4 => {
                let delivered = number(input);
                let largest = number(input);
                let ack_delay = input.u32();
                let window = input.u32();
                let n = ranges(input, largest, &mut pairs);
                let ranges = Ranges::from_pairs(&pairs[..n]).unwrap_or(Ranges::EMPTY);
                emit(id, Packet::DataAck { delivered, largest, ack_delay, window, ranges })
            }
            5 => {
                let top = number(input);
                let n = ranges(input, top, &mut pairs).max(1);
                let Ok(ranges) = Ranges::from_pairs(&pairs[..n]) else { return };
                emit(id, Packet::Repeat { ranges })
            }
            6 => emit(id, Packet::Ping { ping_id: number(input) }),
            7 => emit(id, Packet::PingAck { ping_id: number(input) }),
            8 => {
                let code = CloseCode::from(input.u16());
                let len = usize::from(input.u8() % 32);
                let text = if len == 0 { String::new() } else { reason(len, input.u8()) };
                emit(id, Packet::Close { code, reason: &text })
            }
            _ => {
                let n = usize::from(input.u8());
                emit(id, Packet::Direct { payload: input.bytes(n) })
            }
        };
        if datagram.is_empty() {
            return;
        }
        if self.trace {
            trace!(
                "{:>12?}   forged to side {side} from {from}: {:?}",
                self.now,
                Datagram::parse(&datagram)
            );
        }
        self.taint(&datagram);
        if x == 0 {
            if self.queues[side].len() < MAX_QUEUED {
                self.queues[side].push_back((from, datagram));
            }
        } else {
            self.eps[side].handle_datagram(self.now, from, &datagram);
        }
    }

    /// Delivers everything queued, round after round, until both queues are empty.
    fn flush(&mut self, tick: bool, read_all: bool) {
        for _ in 0..MAX_FLUSH_ROUNDS {
            if self.queues.iter().all(VecDeque::is_empty) {
                break;
            }
            if tick {
                self.advance_to(self.now + Duration::from_millis(1));
            }
            self.deliver_all();
            if read_all {
                self.read_all();
            }
        }
    }

    fn deliver_all(&mut self) {
        for side in 0..2 {
            // The whole batch, then a drain: acknowledgements coalesce as with a driver.
            for d in core::mem::take(&mut self.queues[side]) {
                self.deliver(side, d);
            }
            self.drain(side);
        }
    }

    fn read_all(&mut self) {
        for i in 0..self.conns.len() {
            if !self.conns[i].gone {
                self.recv(i, true);
                self.recv_direct(i, true);
            }
        }
        self.drain(0);
        self.drain(1);
    }

    /// Runs a perfect network (every datagram delivered, everything read, timers fired)
    /// until every untainted connection with an open peer connection is flushed and nothing
    /// is connecting, or [`SETTLE_TIME`] has passed; then checks that it got there.
    fn settle(&mut self) {
        let end = self.now + SETTLE_TIME;
        for _ in 0..SETTLE_ROUNDS {
            self.deliver_all();
            self.read_all();
            if !self.queues.iter().all(VecDeque::is_empty) {
                continue;
            }
            if self.settled() {
                break;
            }
            let next = self.eps.iter().filter_map(Machine::poll_timeout).min();
            match next {
                Some(t) if t <= end => self.advance_to(t.max(self.now)),
                _ => break,
            }
        }
        self.check();
        for i in 0..self.conns.len() {
            let c = &self.conns[i];
            if c.gone {
                continue;
            }
            let ep = &self.eps[c.side];
            let config = &self.configs[c.side];
            if self.now >= end {
                assert_ne!(
                    ep.state(c.handle),
                    Some(State::Connecting),
                    "conn {i} still connecting"
                );
                assert_eq!(ep.pending_incoming(), 0, "incoming still pending after settle");
            }
            if let Some(w) = self.stalled(i) {
                panic!(
                    "conn {w} stalled: {} messages sent, conn {i} delivered {}, {:?}",
                    self.conns[w].sent.len(),
                    c.received + ep.readable(c.handle),
                    self.eps[self.conns[w].side].stats(self.conns[w].handle)
                );
            }
            // The linger, or three timeouts for the CLOSE's repeats; an accepted connection
            // is also remembered until the starter's cookie has expired.
            let linger = config.close_linger().max(config.delivery_timeout() * 3);
            let mut forget_at = c.closed_at + linger;
            if !c.starter {
                let cookie = config.cookie_lifetime() + Duration::from_secs(1);
                forget_at = forget_at.max(c.opened_at + cookie);
            }
            if c.closed.is_some() && self.now > forget_at + Duration::from_millis(1) {
                assert_eq!(ep.readable(c.handle), 0, "settle read everything");
                assert_eq!(ep.state(c.handle), None, "conn {i} closed and read, never forgotten");
            }
        }
    }

    /// Whether `settle` is done: nothing connecting, and no untainted open connection
    /// waiting for acknowledgements from an open peer connection.
    fn settled(&self) -> bool {
        (0..self.conns.len()).all(|i| {
            let c = &self.conns[i];
            c.gone
                || (self.eps[c.side].state(c.handle) != Some(State::Connecting)
                    && self.stalled(i).is_none())
        })
    }

    /// The writer of open connection `i`, if that is open too and not flushed.
    fn stalled(&self, i: usize) -> Option<usize> {
        let c = &self.conns[i];
        if c.gone || c.closed.is_some() || !c.connected {
            return None;
        }
        let w = self.writer_of(i)?;
        let writer = &self.conns[w];
        let open = !writer.gone && writer.closed.is_none() && writer.connected;
        (open && !self.eps[writer.side].is_flushed(writer.handle)).then_some(w)
    }
}

/// How long a message to send is: a number from the input, or `writable` (plus one).
#[derive(Clone, Copy, Debug)]
enum Len {
    Exactly(usize),
    Writable(bool),
}

/// A datagram's bytes, or none when the packet is not valid to emit.
fn emit(dst_id: u64, packet: Packet<'_>) -> Vec<u8> {
    let mut buf = Vec::new();
    if (Datagram { dst_id, packet }).try_emit(&mut buf).is_err() {
        buf.clear();
    }
    buf
}

/// `bytes`, zero-padded (or cut) to `N`.
fn pad<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    let n = bytes.len().min(N);
    out[..n].copy_from_slice(&bytes[..n]);
    out
}

/// A number of one of four magnitudes: u8, u16, u32, or just below `u64::MAX`.
fn number(input: &mut Input<'_>) -> u64 {
    match input.u8() % 4 {
        0 => u64::from(input.u8()),
        1 => u64::from(input.u16()),
        2 => u64::from(input.u32()),
        _ => u64::MAX - u64::from(input.u8()),
    }
}

/// Up to four ranges from the top down, the first ending at `top`, with gaps between:
/// `(start, len)` pairs in `out`; returns how many.
fn ranges(input: &mut Input<'_>, top: u64, out: &mut [(u64, u32); 4]) -> usize {
    let count = usize::from(input.u8() % 5);
    let mut end = top;
    let mut n = 0;
    for _ in 0..count {
        let len = (u64::from(input.u8()) + 1).min(end.saturating_add(1));
        let start = end - (len - 1);
        out[n] = (start, len as u32);
        n += 1;
        let gap = u64::from(input.u8()) + 2;
        match start.checked_sub(gap) {
            Some(e) => end = e,
            None => break,
        }
    }
    n
}

/// A reason of exactly `len` bytes: ASCII mixed with two- and three-byte characters (the
/// last ones ASCII so that the length is exact).
fn reason(len: usize, seed: u8) -> String {
    const PIECES: [&str; 5] = ["a", "é", "€", " ", "z"];
    let mut s = String::with_capacity(len);
    let mut k = usize::from(seed);
    while s.len() < len {
        let piece = PIECES[k % PIECES.len()];
        s.push_str(if s.len() + piece.len() <= len { piece } else { "a" });
        k = k.wrapping_mul(5).wrapping_add(3);
    }
    s
}

/// Overwrites field `field % 8` of datagram `d` with `value`: 0 the version, 1 the type,
/// 2 `dst_id` (with a known connection id picked by `value`), 3 the first body word (bytes
/// 10..18), 4 bytes 18..26, 5 bytes 26..30; 6 truncates it to `value % (len + 1)` bytes, 7
/// appends `value`'s four bytes.
fn mutate(d: &mut Vec<u8>, field: u8, value: u32, ids: &[u64]) {
    let v = value.to_be_bytes();
    let wide = (u64::from(value) << 32 | u64::from(value.rotate_left(16))).to_be_bytes();
    let mut put = |range: core::ops::Range<usize>, bytes: &[u8]| {
        if let Some(slot) = d.get_mut(range) {
            slot.copy_from_slice(&bytes[..slot.len()]);
        }
    };
    match field % 8 {
        0 => put(0..1, &v[3..]),
        1 => put(1..2, &v[3..]),
        2 => {
            let id =
                if ids.is_empty() { u64::from(value) } else { ids[value as usize % ids.len()] };
            put(2..HEADER_LEN, &id.to_be_bytes());
        }
        3 => put(10..18, &wide),
        4 => put(18..26, &wide),
        5 => put(26..30, &v),
        6 => d.truncate(value as usize % (d.len() + 1)),
        _ => d.extend_from_slice(&v),
    }
}

/// One of `pending`, newest first.
fn pick_mut(pending: &mut [Pending], index: u8) -> Option<&mut Pending> {
    if pending.is_empty() {
        return None;
    }
    let k = pending.len() - 1 - usize::from(index) % pending.len();
    pending.get_mut(k)
}

impl TwoSides for Harness {
    type Side = Endpoint<u8>;
    /// Wake-ups within one advance.
    const MAX_WAKEUPS: usize = 200_000;

    fn side(&mut self, side: usize) -> &mut Endpoint<u8> {
        &mut self.eps[side]
    }

    fn clock(&mut self) -> &mut Instant {
        &mut self.now
    }

    fn drain(&mut self, side: usize) {
        Harness::drain(self, side);
    }
}
