//! The `utp_endpoint` harness: two uTP [`Endpoint`]s joined by two datagram queues that the
//! fuzzer's bytes control, driven by a sequence of operations decoded from those bytes.
//!
//! # Input format
//!
//! `[config_a, config_b, seed, op, op, ...]`. Both endpoints share one [`Config`] built from
//! the two config bytes (see [`config`]); `seed` seeds both endpoints. Each op starts with
//! one byte: the low 5 bits are the operation, bits 5 and 6 a small argument `x` (0..=3), and
//! bit 7 the side it applies to (0 = Alice, peer name 1; 1 = Bob, peer name 2). Some ops read
//! more bytes; reading past the end of the input yields zeros. Connections and incoming ids
//! are picked by an index byte counted from the newest (0 = the most recent).
//!
//! | op | name | reads | does |
//! |----|------|-------|------|
//! | 0 | connect | – | `connect` to the other side (`x == 3`: to a stranger, peer 3) |
//! | 1 | connect_with_id | u16 id | `connect_with_id` to the other side |
//! | 2 | accept_with_id | u16 id | `accept_with_id` from the other side |
//! | 3 | accept | u8 index | `accept` a reported incoming connection |
//! | 4 | refuse | u8 index | `refuse` a reported incoming connection |
//! | 5 | write | u8 conn, length (x: 0 u8, 1 u16, 2 u16·16, 3 all writable) | `write` |
//! | 6 | read | u8 conn, u16 buffer size (0 = 65536) | `read` once (`x & 1`: until blocked) |
//! | 7 | shutdown | u8 conn | `shutdown` |
//! | 8 | close | u8 conn | `close` |
//! | 9 | reset | u8 conn | `reset` |
//! | 10 | advance | x 0: u16 µs, 1: u16 ms, 2: u8 s, 3: – (to the next timeout) | fire due timers |
//! | 11 | deliver | – | deliver `x + 1` datagrams queued for the side |
//! | 12 | drop | – | drop the next datagram queued for the side |
//! | 13 | duplicate | – | duplicate the next datagram (x 0: right after it, else at the back) |
//! | 14 | reorder | x 3: u8 | x 0: next to the back, 1: swap the next two, 2: reverse, 3: rotate |
//! | 15 | inject | x 3: u8 peer; u8 len, len bytes | a raw datagram from the other side (x 1: a stranger, 2: itself, 3: any peer) |
//! | 16 | flip | u8 index, u16 bit | flip one bit of a queued datagram |
//! | 17 | flush | – | deliver everything until quiet (x & 1: 1 ms per round; x & 2: read everything) |
//! | 18 | mutate | u8 index, u8 field, u32 value | overwrite a header field of a queued datagram, or truncate it |
//! | 19 | replay | u8 index | deliver again one of the last datagrams the side received |
//! | 20 | query | u8 conn | check the connection's getters |
//! | 21.. | (no-op) | | |
//!
//! # What it checks
//!
//! Besides "nothing panics": `poll_transmit` runs dry, every datagram sent parses and fits
//! `max_packet_size`; the timer never asks for the same instant 1000 times in a row; events
//! name handles the application holds, `Connected` and `Closed` come at most once and
//! nothing follows `Closed`; handles of closed connections answer with `Closed` errors;
//! accepting an answered incoming fails; and what a reader reads is a prefix of what its
//! writer wrote (ending with the whole of it at the end of the stream) — unless a datagram
//! of that connection was injected, flipped or mutated, or its connection ids were used
//! more than once (uTP cannot tell incarnations apart).

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use super::clock::TwoSides;
use super::input::Input;
use super::queue;
use crate::utp::{
    AcceptError, Config, ConfigError, ConnectError, ConnectionError, ConnectionHandle, Endpoint,
    Event, IncomingId, InitialSeq, Profile, ReadError, State, SynAckSeq, WriteError,
};
use crate::wire::utp::{HEADER_LEN, Packet};
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
/// The largest write the harness makes in one op.
const MAX_WRITE: usize = 128 << 10;

/// Runs the input; see the module documentation.
pub(crate) fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let config = Arc::new(config(input.u8(), input.u8()));
    let seed = u64::from(input.u8());
    let mut h = Harness::new(config, seed);
    let trace = super::tracing(TRACE_VAR);
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        let start = input.pos();
        h.op(&mut input);
        h.drain(0);
        h.drain(1);
        h.check_endpoints();
        if trace {
            h.trace_op(&data[start..input.pos().min(data.len())]);
        }
    }
    if trace {
        h.trace_summary();
    }
}

/// With `UTP_FUZZ_TRACE` set (and `std`), the harness prints every op and a summary to
/// stderr: `UTP_FUZZ_TRACE=1 ./target/debug/utp_endpoint <input>` shows how a crash came.
const TRACE_VAR: &str = "UTP_FUZZ_TRACE";

/// The settings both endpoints use, from two bytes: every bit switches one setting away
/// from its default towards an edge case.
fn config(a: u8, b: u8) -> Config {
    /// The harness only picks values the setters accept.
    fn ok(r: Result<&mut Config, ConfigError>) {
        r.expect("the harness picks valid settings");
    }
    let bit = |byte: u8, n: u8| byte & (1 << n) != 0;
    let mut c = Config::profile(if bit(a, 0) { Profile::Portal } else { Profile::Libutp });
    ok(c.set_max_connections(16));
    if bit(a, 1) {
        ok(c.set_synack_seq(SynAckSeq::Bep29));
    }
    if bit(a, 2) {
        ok(c.set_initial_seq(InitialSeq::One));
    }
    if bit(a, 3) {
        ok(c.set_nagle(false));
    }
    if bit(a, 4) {
        ok(c.set_send_buffer(3000));
        ok(c.set_recv_buffer(3000));
    }
    if bit(a, 5) {
        ok(c.set_max_packet_size(150));
    }
    if bit(a, 6) {
        ok(c.set_idle_timeout(Some(Duration::from_secs(5))));
    }
    if bit(a, 7) {
        ok(c.set_keepalive_interval(None));
    }
    if bit(b, 0) {
        ok(c.set_initial_rto(Duration::from_millis(100)));
        ok(c.set_min_rto(Duration::from_millis(10)));
        ok(c.set_max_rto(Duration::from_secs(1)));
    }
    if bit(b, 1) {
        ok(c.set_max_reorder_packets(4));
        ok(c.set_max_sack_bytes(4));
    }
    if bit(b, 2) {
        ok(c.set_time_wait(Duration::ZERO));
    }
    if bit(b, 3) {
        ok(c.set_resend_synack(false));
    }
    if bit(b, 4) {
        ok(c.set_max_retransmits(1));
        ok(c.set_max_syn_retransmits(1));
    }
    if bit(b, 5) {
        ok(c.set_max_connections(2));
        ok(c.set_max_pending_incoming(1));
    }
    if bit(b, 6) {
        ok(c.set_reset_limit_entries(1));
        ok(c.set_incoming_timeout(Duration::from_secs(1)));
        ok(c.set_expected_id_timeout(Duration::from_secs(1)));
        ok(c.set_handshake_timeout(Duration::from_secs(1)));
    }
    if bit(b, 7) {
        ok(c.set_fast_retransmit_threshold(1));
        ok(c.set_ack_nr_slack(0));
    }
    c
}

/// What the harness knows about one connection it was handed.
#[derive(Debug)]
struct Conn {
    side: usize,
    handle: ConnectionHandle,
    peer: u8,
    recv_id: u16,
    send_id: u16,
    /// Names the byte stream this connection writes (see [`stream_byte`]).
    stream: u64,
    written: u64,
    read: u64,
    /// `shutdown` or `close` was called before the connection closed: no more writes.
    finished: bool,
    /// `close` was called: what arrives afterwards is discarded.
    closing: bool,
    connected: bool,
    closed: Option<Result<(), ConnectionError>>,
    eof: bool,
}

/// An `Event::Incoming` the harness saw.
#[derive(Debug)]
struct Pending {
    id: IncomingId,
    /// `accept` or `refuse` was called for it.
    answered: bool,
}

/// Byte `offset` of the stream `stream`: position-dependent, so a misplaced byte shows.
fn stream_byte(stream: u64, offset: u64) -> u8 {
    let x = (offset ^ stream.rotate_left(32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (x >> 56) as u8
}

struct Harness {
    now: Instant,
    config: Arc<Config>,
    eps: [Endpoint<u8>; 2],
    /// `queues[s]`: datagrams on their way to side `s`.
    queues: [VecDeque<Vec<u8>>; 2],
    /// `history[s]`: the last datagrams delivered to side `s`.
    history: [VecDeque<Vec<u8>>; 2],
    conns: Vec<Conn>,
    by_handle: BTreeMap<(usize, ConnectionHandle), usize>,
    incoming: [Vec<Pending>; 2],
    /// Connection ids that a forged or damaged datagram carried.
    tainted: BTreeSet<u16>,
    buf: Vec<u8>,
    read_buf: Vec<u8>,
}

impl Harness {
    fn new(config: Arc<Config>, seed: u64) -> Self {
        let seed = seed.wrapping_mul(0x0100_0000_01b3);
        Self {
            now: Instant::from_micros(1_000_000),
            eps: [
                Endpoint::new(config.clone(), seed ^ 0xa11ce),
                Endpoint::new(config.clone(), seed ^ 0xb0b),
            ],
            config,
            queues: [VecDeque::new(), VecDeque::new()],
            history: [VecDeque::new(), VecDeque::new()],
            conns: Vec::new(),
            by_handle: BTreeMap::new(),
            incoming: [Vec::new(), Vec::new()],
            tainted: BTreeSet::new(),
            buf: Vec::new(),
            read_buf: vec![0; 65_536],
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
                let peer = if x == 3 { STRANGER } else { NAMES[other] };
                let r = self.eps[side].connect(now, peer);
                self.opened(side, peer, r);
            }
            1 => {
                let id = input.u16();
                let r = self.eps[side].connect_with_id(now, NAMES[other], id);
                self.opened(side, NAMES[other], r);
            }
            2 => {
                let id = input.u16();
                let r = self.eps[side].accept_with_id(now, NAMES[other], id);
                self.opened(side, NAMES[other], r);
            }
            3 => self.accept(side, input.u8()),
            4 => {
                let index = input.u8();
                if let Some(p) = pick_mut(&mut self.incoming[side], index) {
                    p.answered = true;
                    let id = p.id;
                    self.eps[side].refuse(now, id);
                }
            }
            5 => {
                let conn = input.u8();
                let len = match x {
                    0 => usize::from(input.u8()),
                    1 => usize::from(input.u16()),
                    2 => usize::from(input.u16()) * 16,
                    _ => usize::MAX,
                };
                self.write(side, conn, len);
            }
            6 => {
                let conn = input.u8();
                let size = match input.u16() {
                    0 => 65_536,
                    n => usize::from(n),
                };
                if let Some(i) = self.pick_conn(side, conn) {
                    self.read(i, size, x & 1 != 0);
                }
            }
            7 => {
                if let Some(i) = self.pick_conn(side, input.u8()) {
                    self.eps[side].shutdown(self.conns[i].handle);
                    let c = &mut self.conns[i];
                    c.finished |= c.closed.is_none();
                }
            }
            8 => {
                if let Some(i) = self.pick_conn(side, input.u8()) {
                    self.eps[side].close(now, self.conns[i].handle);
                    let c = &mut self.conns[i];
                    c.finished |= c.closed.is_none();
                    c.closing |= c.closed.is_none();
                }
            }
            9 => {
                if let Some(i) = self.pick_conn(side, input.u8()) {
                    self.eps[side].reset(now, self.conns[i].handle);
                }
            }
            10 => {
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
            11 => {
                for _ in 0..=x {
                    self.deliver_next(side);
                }
            }
            12 => {
                self.queues[side].pop_front();
            }
            13 => {
                queue::duplicate_front(&mut self.queues[side], x);
            }
            14 => {
                queue::reorder(&mut self.queues[side], x, input);
            }
            15 => {
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
            16 => {
                let index = input.u8();
                let bit = usize::from(input.u16());
                self.damage(side, index, |d| {
                    if !d.is_empty() {
                        let bit = bit % (d.len() * 8);
                        d[bit / 8] ^= 1 << (bit % 8);
                    }
                });
            }
            17 => self.flush(x & 1 != 0, x & 2 != 0),
            18 => {
                let index = input.u8();
                let field = input.u8();
                let value = input.u32();
                self.damage(side, index, |d| mutate(d, field, value));
            }
            19 => {
                let index = input.u8();
                let history = &self.history[side];
                if !history.is_empty() {
                    let d = history[history.len() - 1 - usize::from(index) % history.len()].clone();
                    self.eps[side].handle_datagram(now, NAMES[other], &d);
                }
            }
            20 => {
                if let Some(i) = self.pick_conn(side, input.u8()) {
                    self.query(i);
                }
            }
            _ => {}
        }
    }

    fn trace_op(&self, op: &[u8]) {
        let _ = op;
        trace!(
            "{:>12?} op {op:02x?} queued to A/B: {}/{}",
            self.now,
            self.queues[0].len(),
            self.queues[1].len()
        );
    }

    fn trace_summary(&self) {
        for (i, c) in self.conns.iter().enumerate() {
            let _ = (i, c);
            trace!(
                "conn {i}: side {} peer {} ids {}/{} written {} read {} finished {} closing {} \
                 connected {} closed {:?} eof {} writer {:?}",
                c.side,
                c.peer,
                c.recv_id,
                c.send_id,
                c.written,
                c.read,
                c.finished,
                c.closing,
                c.connected,
                c.closed,
                c.eof,
                self.writer_of(i)
            );
        }
        trace!("tainted ids {:?}", self.tainted);
        trace!("A: {:?}", self.eps[0].endpoint_stats());
        trace!("B: {:?}", self.eps[1].endpoint_stats());
    }

    // ---- connections -----------------------------------------------------------------

    /// Records a connection `connect`, `connect_with_id` or `accept_with_id` opened.
    fn opened(&mut self, side: usize, peer: u8, r: Result<ConnectionHandle, ConnectError>) {
        match r {
            Ok(handle) => self.record(side, handle, peer),
            Err(ConnectError::TooManyConnections) => assert!(
                self.eps[side].connection_count() >= self.config.max_connections(),
                "TooManyConnections below the limit"
            ),
            Err(_) => {}
        }
    }

    fn record(&mut self, side: usize, handle: ConnectionHandle, peer: u8) {
        let ep = &self.eps[side];
        let Some((recv_id, send_id)) = ep.connection_ids(handle) else {
            panic!("a handle just returned names no connection");
        };
        assert_eq!(ep.peer(handle), Some(&peer), "a new connection has the wrong peer");
        assert!(
            self.by_handle.insert((side, handle), self.conns.len()).is_none(),
            "a new connection got the handle of an earlier one"
        );
        let stream = self.conns.len() as u64 + 1;
        self.conns.push(Conn {
            side,
            handle,
            peer,
            recv_id,
            send_id,
            stream,
            written: 0,
            read: 0,
            finished: false,
            closing: false,
            connected: false,
            closed: None,
            eof: false,
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

    fn accept(&mut self, side: usize, index: u8) {
        let Some(p) = pick_mut(&mut self.incoming[side], index) else { return };
        let (id, answered) = (p.id, p.answered);
        p.answered = true;
        let now = self.now;
        match self.eps[side].accept(now, id) {
            Ok(handle) => {
                assert!(!answered, "accept succeeded for an incoming already answered");
                let Some(&peer) = self.eps[side].peer(handle) else {
                    panic!("an accepted handle names no connection");
                };
                self.record(side, handle, peer);
            }
            Err(AcceptError::TooManyConnections) => {
                assert!(!answered, "an answered incoming is still pending");
                p_unanswer(&mut self.incoming[side], id);
            }
            Err(_) => {}
        }
    }

    fn write(&mut self, side: usize, index: u8, len: usize) {
        let Some(i) = self.pick_conn(side, index) else { return };
        let handle = self.conns[i].handle;
        let writable = self.eps[side].writable(handle);
        // Offer more than fits now and then, but never megabytes for nothing.
        let len = len.min(writable + 2000).min(MAX_WRITE);
        let c = &self.conns[i];
        let data: Vec<u8> = (0..len as u64).map(|k| stream_byte(c.stream, c.written + k)).collect();
        let r = self.eps[side].write(handle, &data);
        let c = &mut self.conns[i];
        match r {
            Ok(n) => {
                assert!(c.closed.is_none(), "write to a closed connection succeeded");
                assert!(!c.finished, "write after shutdown succeeded");
                assert!(n <= len && (n > 0 || len == 0), "write took {n} of {len} bytes");
                c.written += n as u64;
            }
            Err(WriteError::Blocked) => {
                assert!(c.closed.is_none(), "write to a closed connection says Blocked");
                assert!(!c.finished, "write after shutdown says Blocked");
            }
            Err(WriteError::Finished) => {
                assert!(c.closed.is_none(), "write to a closed connection says Finished");
                assert!(c.finished, "write says Finished without shutdown or close");
            }
            Err(WriteError::Closed) => {
                assert!(c.closed.is_some(), "write says Closed before Event::Closed");
            }
        }
    }

    fn read(&mut self, i: usize, size: usize, until_blocked: bool) {
        let (side, handle) = (self.conns[i].side, self.conns[i].handle);
        let writer = self.writer_of(i);
        loop {
            let r = self.eps[side].read(handle, &mut self.read_buf[..size]);
            let c = &self.conns[i];
            match r {
                Ok(0) => {
                    if size > 0 {
                        if let Some(w) = writer {
                            let w = &self.conns[w];
                            if !c.closing {
                                assert!(w.finished, "end of stream but the writer did not finish");
                                assert_eq!(c.read, w.written, "end of stream before all was read");
                            }
                        }
                        self.conns[i].eof = true;
                    }
                    return;
                }
                Ok(n) => {
                    assert!(n <= size, "read returned more than the buffer holds");
                    assert!(!c.eof, "data after the end of the stream");
                    if let Some(w) = writer {
                        let w = &self.conns[w];
                        assert!(
                            c.read + n as u64 <= w.written,
                            "read {} bytes, more than the {} written",
                            c.read + n as u64,
                            w.written
                        );
                        for (k, &byte) in self.read_buf[..n].iter().enumerate() {
                            let offset = c.read + k as u64;
                            assert_eq!(
                                byte,
                                stream_byte(w.stream, offset),
                                "conn {i} (side {side}, writer conn {w_index}): byte {offset} read \
                                 differs from what was written",
                                w_index = writer.unwrap_or(usize::MAX),
                            );
                        }
                    }
                    self.conns[i].read += n as u64;
                    if !until_blocked {
                        return;
                    }
                }
                Err(ReadError::Blocked) => {
                    assert!(c.closed.is_none(), "read of a closed connection says Blocked");
                    return;
                }
                Err(ReadError::Closed) => {
                    assert!(c.closed.is_some(), "read says Closed before Event::Closed");
                    return;
                }
            }
        }
    }

    /// The connection that writes what connection `i` reads, when that is certain: the
    /// peer is the other side, each end's ids were used once, and no forged datagram
    /// carried them.
    fn writer_of(&self, i: usize) -> Option<usize> {
        let c = &self.conns[i];
        let other = 1 - c.side;
        if c.peer != NAMES[other]
            || self.tainted.contains(&c.recv_id)
            || self.tainted.contains(&c.send_id)
        {
            return None;
        }
        let same = |d: &Conn, side: usize, peer: u8, recv: u16, send: u16| {
            d.side == side && d.peer == peer && d.recv_id == recv && d.send_id == send
        };
        let ours = self.conns.iter().filter(|d| same(d, c.side, c.peer, c.recv_id, c.send_id));
        if ours.count() != 1 {
            return None;
        }
        let mut theirs = self
            .conns
            .iter()
            .enumerate()
            .filter(|(_, d)| same(d, other, NAMES[c.side], c.send_id, c.recv_id));
        match (theirs.next(), theirs.next()) {
            (Some((w, _)), None) => Some(w),
            _ => None,
        }
    }

    fn query(&mut self, i: usize) {
        let c = &self.conns[i];
        let ep = &self.eps[c.side];
        let state = ep.state(c.handle);
        if c.closed.is_some() {
            assert!(matches!(state, None | Some(State::Closed)), "closed but in state {state:?}");
            assert_eq!(ep.writable(c.handle), 0, "a closed connection is writable");
        } else {
            assert!(
                state.is_some_and(|s| s != State::Closed),
                "in state {state:?} before Event::Closed"
            );
            assert_eq!(ep.peer(c.handle), Some(&c.peer), "the peer changed");
            assert_eq!(ep.connection_ids(c.handle), Some((c.recv_id, c.send_id)), "ids changed");
            if c.finished {
                assert_eq!(ep.writable(c.handle), 0, "writable after shutdown");
            }
        }
        let _ = (ep.stats(c.handle), ep.readable(c.handle), ep.is_flushed(c.handle));
    }

    // ---- the network -----------------------------------------------------------------

    /// Drains `side`'s transmits into the other side's queue and handles its events.
    fn drain(&mut self, side: usize) {
        let now = self.now;
        let max_packet = self.config.max_packet_size();
        let mut sent = 0;
        while let Some(t) = self.eps[side].poll_transmit(now, &mut self.buf) {
            sent += 1;
            assert!(sent <= MAX_DRAIN, "poll_transmit does not run dry");
            assert!(t.size <= self.buf.len(), "a transmit is longer than its buffer");
            assert_eq!(t.segment_size, None, "the uTP endpoint does not batch");
            let d = &self.buf[..t.size];
            assert!(d.len() <= max_packet, "sent {} bytes, over max_packet_size", d.len());
            if let Err(e) = Packet::parse(d) {
                panic!("sent a datagram that does not parse ({e:?}): {d:02x?}");
            }
            let to = 1 - side;
            if t.destination == NAMES[to] && self.queues[to].len() < MAX_QUEUED {
                self.queues[to].push_back(d.to_vec());
            }
        }
        self.events(side);
    }

    fn events(&mut self, side: usize) {
        while let Some(event) = self.eps[side].poll_event() {
            let handle = match &event {
                Event::Incoming { id, .. } => {
                    let pending = &mut self.incoming[side];
                    assert!(pending.iter().all(|p| p.id != *id), "incoming id reported twice");
                    pending.push(Pending { id: *id, answered: false });
                    continue;
                }
                Event::Connected(h) | Event::Readable(h) | Event::Writable(h) => *h,
                Event::Closed { handle, .. } => *handle,
            };
            let Some(&i) = self.by_handle.get(&(side, handle)) else {
                panic!("{event:?} names a handle the application never got");
            };
            let c = &mut self.conns[i];
            assert!(c.closed.is_none(), "{event:?} after Event::Closed");
            match event {
                Event::Connected(_) => {
                    assert!(!c.connected, "Event::Connected twice");
                    c.connected = true;
                }
                Event::Closed { result, .. } => c.closed = Some(result),
                _ => {}
            }
        }
    }

    fn check_endpoints(&self) {
        for ep in &self.eps {
            assert!(ep.connection_count() <= self.config.max_connections(), "over the limit");
            assert!(
                ep.pending_incoming() <= self.config.max_pending_incoming(),
                "too many pending incoming connections"
            );
        }
    }

    fn deliver_next(&mut self, side: usize) {
        if let Some(d) = self.queues[side].pop_front() {
            self.deliver(side, d);
            self.drain(side);
        }
    }

    fn deliver(&mut self, side: usize, d: Vec<u8>) {
        self.eps[side].handle_datagram(self.now, NAMES[1 - side], &d);
        if self.history[side].len() >= HISTORY {
            self.history[side].pop_front();
        }
        self.history[side].push_back(d);
    }

    /// Changes a queued datagram; the connection ids it carried before and after are
    /// tainted.
    fn damage(&mut self, side: usize, index: u8, f: impl FnOnce(&mut Vec<u8>)) {
        let q = &mut self.queues[side];
        if q.is_empty() {
            return;
        }
        let k = usize::from(index) % q.len();
        let mut d = core::mem::take(&mut q[k]);
        self.taint(&d);
        f(&mut d);
        self.taint(&d);
        self.queues[side][k] = d;
    }

    fn taint(&mut self, d: &[u8]) {
        if let Ok(p) = Packet::parse(d) {
            self.tainted.insert(p.header().connection_id);
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
            for side in 0..2 {
                // Read the whole batch, then drain: acknowledgements coalesce as with a driver.
                for d in core::mem::take(&mut self.queues[side]) {
                    self.deliver(side, d);
                }
                self.drain(side);
            }
            if read_all {
                for i in 0..self.conns.len() {
                    if self.conns[i].closed.is_none() {
                        self.read(i, 65_536, true);
                    }
                }
                self.drain(0);
                self.drain(1);
            }
        }
    }
}

/// Overwrites header field `field` of datagram `d` with `value`, or truncates it.
fn mutate(d: &mut Vec<u8>, field: u8, value: u32) {
    if d.len() < HEADER_LEN {
        return;
    }
    let v = value.to_be_bytes();
    match field % 8 {
        0 => d[0] = (d[0] & 0x0f) | ((v[3] & 0x0f) << 4), // type
        1 => d[2..4].copy_from_slice(&v[2..]),            // connection id
        2 => d[4..8].copy_from_slice(&v),                 // timestamp
        3 => d[8..12].copy_from_slice(&v),                // timestamp difference
        4 => d[12..16].copy_from_slice(&v),               // window
        5 => d[16..18].copy_from_slice(&v[2..]),          // seq_nr
        6 => d[18..20].copy_from_slice(&v[2..]),          // ack_nr
        _ => d.truncate(value as usize % (d.len() + 1)),
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

/// An accept that failed for lack of room leaves the incoming pending.
fn p_unanswer(pending: &mut [Pending], id: IncomingId) {
    if let Some(p) = pending.iter_mut().find(|p| p.id == id) {
        p.answered = false;
    }
}

impl TwoSides for Harness {
    type Side = Endpoint<u8>;
    /// Wake-ups within one advance (at most 255 s, at most 16 connections per side).
    const MAX_WAKEUPS: usize = 100_000;

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
