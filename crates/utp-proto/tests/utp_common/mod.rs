//! Helpers for the uTP scenario tests: two endpoints on a simulated link, and a bulk
//! transfer driven to completion.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use utp_proto::sim::{Checksummed, LinkConfig, Pair};
use utp_proto::utp::{Config, ConnectionError, ConnectionHandle, ConnectionStats, Endpoint, Event};
use utp_proto::{Instant, Machine, Rng};

pub use wire::{ALICE, BOB};

pub type Ep = Endpoint<u8>;

/// Two endpoints with the given settings on links configured by `ab` and `ba`.
pub fn pair(a: Config, b: Config, ab: LinkConfig, ba: LinkConfig, seed: u64) -> Pair<Ep, Ep> {
    Pair::new(
        Endpoint::new(Arc::new(a), seed ^ 0xa11ce),
        ALICE,
        Endpoint::new(Arc::new(b), seed ^ 0xb0b),
        BOB,
        ab,
        ba,
        seed,
    )
}

/// `len` pseudo-random bytes: any misordering or corruption changes them.
pub fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; len];
    Rng::new(seed).fill(&mut data);
    data
}

/// What the transfer helpers need from each side: an endpoint, possibly wrapped.
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

/// What a finished transfer measured.
#[derive(Debug)]
pub struct Report {
    /// Virtual time from the connect to the reader seeing the end of the stream.
    pub elapsed: Duration,
    /// Bytes per second of virtual time.
    pub goodput: f64,
    pub steps: u64,
    pub writer: ConnectionHandle,
    pub reader: ConnectionHandle,
    pub writer_result: Option<Result<(), ConnectionError>>,
    pub reader_result: Option<Result<(), ConnectionError>>,
    /// The writer's statistics as last seen before it closed.
    pub writer_stats: Option<ConnectionStats>,
}

/// The state of a transfer from Alice (writer) to Bob (reader).
pub struct Transfer {
    pub data: Vec<u8>,
    pub written: usize,
    pub received: Vec<u8>,
    pub writer: ConnectionHandle,
    pub reader: Option<ConnectionHandle>,
    pub eof_at: Option<Instant>,
    pub writer_result: Option<Result<(), ConnectionError>>,
    pub reader_result: Option<Result<(), ConnectionError>>,
    pub closed_writer: bool,
    pub writer_stats: Option<ConnectionStats>,
}

impl Transfer {
    /// Alice connects to Bob and will send `data`.
    pub fn start<A: Side, B: Side>(pair: &mut Pair<A, B>, data: Vec<u8>) -> Self {
        let now = pair.now();
        let writer = pair.a.ep().connect(now, BOB).expect("connect");
        Self {
            data,
            written: 0,
            received: Vec::new(),
            writer,
            reader: None,
            eof_at: None,
            writer_result: None,
            reader_result: None,
            closed_writer: false,
            writer_stats: None,
        }
    }

    /// Reacts to both sides' events and moves bytes; true once both sides closed.
    pub fn poll<A: Side, B: Side>(&mut self, pair: &mut Pair<A, B>) -> bool {
        let now = pair.now();
        if let Some(stats) = pair.a.ep().stats(self.writer) {
            self.writer_stats = Some(stats);
        }
        while let Some(ev) = pair.b.ep().poll_event() {
            match ev {
                Event::Incoming { id, .. } => {
                    self.reader = Some(pair.b.ep().accept(now, id).expect("accept"));
                }
                Event::Closed { handle, result } if Some(handle) == self.reader => {
                    self.reader_result = Some(result);
                }
                _ => {}
            }
        }
        while let Some(ev) = pair.a.ep().poll_event() {
            if let Event::Closed { handle, result } = ev {
                if handle == self.writer {
                    self.writer_result = Some(result);
                }
            }
        }
        while self.written < self.data.len() {
            match pair.a.ep().write(self.writer, &self.data[self.written..]) {
                Ok(n) => self.written += n,
                Err(_) => break,
            }
        }
        if self.written == self.data.len() && !self.closed_writer {
            pair.a.ep().close(now, self.writer);
            self.closed_writer = true;
        }
        if let (Some(reader), None) = (self.reader, self.eof_at) {
            let mut buf = [0u8; 65536];
            loop {
                match pair.b.ep().read(reader, &mut buf) {
                    Ok(0) => {
                        self.eof_at = Some(now);
                        pair.b.ep().close(now, reader);
                        break;
                    }
                    Ok(n) => self.received.extend_from_slice(&buf[..n]),
                    Err(_) => break,
                }
            }
        }
        self.writer_result.is_some() && self.reader_result.is_some()
    }
}

/// Sends `data` from Alice to Bob and waits until both have closed; checks the bytes.
pub fn transfer<A: Side, B: Side>(pair: &mut Pair<A, B>, data: Vec<u8>, max_steps: u64) -> Report {
    let start = pair.now();
    let mut t = Transfer::start(pair, data);
    let steps = pair.drive_until(max_steps, |p| t.poll(p)).unwrap_or_else(|e| {
        panic!(
            "transfer did not finish: {e}; received {} of {} bytes, writer {:?}, reader {:?}",
            t.received.len(),
            t.data.len(),
            t.writer_result,
            t.reader_result
        )
    });
    assert_eq!(
        t.received.len(),
        t.data.len(),
        "length differs; writer {:?}, reader {:?}",
        t.writer_result,
        t.reader_result
    );
    assert!(t.received == t.data, "bytes differ");
    let eof = t.eof_at.expect("reader saw the end of the stream");
    let elapsed = eof - start;
    Report {
        elapsed,
        goodput: t.data.len() as f64 / elapsed.as_secs_f64().max(1e-9),
        steps,
        writer: t.writer,
        reader: t.reader.expect("accepted"),
        writer_result: t.writer_result,
        reader_result: t.reader_result,
        writer_stats: t.writer_stats,
    }
}

// ---- a hand-driven wire: targeted loss, duplication and reordering -----------------

use utp_proto::wire::utp::{Header, Packet, PacketType};

#[path = "../wire_common/mod.rs"]
mod wire;

#[allow(unused_imports)] // for the tests that script a wire
pub use wire::Fate;

/// uTP on the hand-driven wire: the log keeps each packet's header and payload.
#[derive(Clone, Copy, Debug)]
pub enum Utp {}

/// What the log keeps of a uTP packet.
#[derive(Clone, Debug)]
pub struct UtpInfo {
    pub header: Header,
    pub payload: Vec<u8>,
}

impl wire::Protocol for Utp {
    type Ep = Ep;
    type Info = UtpInfo;
    type Kind = PacketType;

    fn parses(bytes: &[u8]) -> bool {
        Packet::parse(bytes).is_ok()
    }

    fn info(bytes: &[u8]) -> Option<UtpInfo> {
        let packet = Packet::parse(bytes).ok()?;
        Some(UtpInfo { header: *packet.header(), payload: packet.payload().to_vec() })
    }

    fn kind(_: &[u8], info: &UtpInfo) -> Option<PacketType> {
        Some(info.header.packet_type)
    }
}

/// One datagram put on the wire (or injected by the test), with what became of it; only
/// packets that parse are recorded.
pub type Sent = wire::Sent<Utp>;

/// Alice and Bob joined by a wire with a fixed latency on which the test decides the fate
/// of each datagram (see `wire_common`).
pub type Net = wire::Wire<Utp>;

impl Sent {
    pub fn kind(&self) -> PacketType {
        self.header.packet_type
    }
}

impl std::fmt::Display for Sent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let h = &self.header;
        write!(
            f,
            "#{:<4} t={:>9}us {}->{} {:<8} id={:<5} seq={:<5} ack={:<5} len={:<5} {:?}{}",
            self.order,
            self.at.as_micros(),
            self.from,
            self.to,
            h.packet_type.as_str(),
            h.connection_id,
            h.seq_nr,
            h.ack_nr,
            self.payload.len(),
            self.fate,
            if self.injected { " (injected)" } else { "" }
        )
    }
}

impl Net {
    /// Two endpoints 10 ms apart, every datagram delivered.
    pub fn new(a: Config, b: Config, seed: u64) -> Self {
        Self::with_endpoints(
            Endpoint::new(Arc::new(a), seed ^ 0xa11ce),
            Endpoint::new(Arc::new(b), seed ^ 0xb0b),
        )
    }
}

/// Every event the endpoint has queued.
pub fn drain_events(ep: &mut Ep) -> Vec<Event<u8>> {
    std::iter::from_fn(|| ep.poll_event()).collect()
}

/// A uTP packet's bytes.
pub fn packet_bytes(header: Header, payload: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    utp_proto::wire::utp::emit(&header, &[], payload, &mut buf);
    buf
}

/// A header with the given type, ids and numbers and harmless other fields.
pub fn header(packet_type: PacketType, connection_id: u16, seq_nr: u16, ack_nr: u16) -> Header {
    Header {
        packet_type,
        connection_id,
        timestamp_us: 0,
        timestamp_difference_us: 0,
        wnd_size: 1 << 20,
        seq_nr,
        ack_nr,
    }
}

/// Reads everything readable; `Some(true)` also when the end of the stream was reached.
pub fn read_all(ep: &mut Ep, h: ConnectionHandle, into: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 65536];
    loop {
        match ep.read(h, &mut buf) {
            Ok(0) => return true,
            Ok(n) => into.extend_from_slice(&buf[..n]),
            Err(_) => return false,
        }
    }
}

/// How the sequence numbers of one connection must look on the wire, by libutp's rules.
#[derive(Clone, Copy, Debug)]
pub struct Numbering {
    pub initiator: u8,
    pub acceptor: u8,
    /// The id the SYN carries (the initiator's receive id).
    pub id: u16,
    /// `SynAckSeq::Bep29`: the SYN-ACK's number is consumed (first DATA is one past it)
    /// and the initiator acknowledges it.
    pub synack_consumes: bool,
}

/// Checks every packet of the connection in `log` against libutp's numbering rules and
/// returns (the initiator's SYN seq_nr, the acceptor's SYN-ACK seq_nr):
///
/// - connection ids: the SYN carries `id`; every other packet from the initiator carries
///   `id + 1`, every packet from the acceptor `id`;
/// - the SYN has `ack_nr` 0; the SYN-ACK (the acceptor's first packet, a STATE) has
///   `ack_nr` = the SYN's `seq_nr`;
/// - DATA and FIN take consecutive numbers: the initiator's first is SYN + 1, the
///   acceptor's first is the SYN-ACK's number (libutp; one more with `synack_consumes`);
///   a retransmission repeats an earlier number;
/// - a STATE carries the sender's next unused number (it consumes none), except a repeat
///   of the SYN-ACK;
/// - every packet's `ack_nr` is the last number the sender had received in order when it
///   sent it: the initiator starts from SYN-ACK - 1 (or the SYN-ACK with
///   `synack_consumes`) when the SYN-ACK reaches it, and ignores DATA that arrived before;
///   the acceptor starts from the SYN.
///
/// RESETs and injected packets are skipped. Panics with the trace on any violation.
#[track_caller]
pub fn check_numbering(log: &[Sent], n: Numbering) -> (u16, u16) {
    use std::collections::BTreeSet;
    let trace: String = log.iter().map(|s| format!("{s}\n")).collect();
    let ours: Vec<&Sent> = log
        .iter()
        .filter(|s| !s.injected && s.kind() != PacketType::Reset)
        .filter(|s| {
            (s.from == n.initiator && s.to == n.acceptor)
                || (s.from == n.acceptor && s.to == n.initiator)
        })
        .collect();
    let syn = ours
        .iter()
        .find(|s| s.kind() == PacketType::Syn)
        .unwrap_or_else(|| panic!("no SYN\n{trace}"));
    let syn_seq = syn.header.seq_nr;
    let synack = ours
        .iter()
        .find(|s| s.from == n.acceptor)
        .unwrap_or_else(|| panic!("the acceptor sent nothing\n{trace}"));
    assert_eq!(
        synack.kind(),
        PacketType::State,
        "the acceptor's first packet is the SYN-ACK\n{trace}"
    );
    let synack_seq = synack.header.seq_nr;
    let first_data = |side: u8| -> u16 {
        if side == n.initiator {
            syn_seq.wrapping_add(1)
        } else if n.synack_consumes {
            synack_seq.wrapping_add(1)
        } else {
            synack_seq
        }
    };
    // The numbers each side has used for DATA/FIN so far, and its next one.
    let mut next = [(n.initiator, first_data(n.initiator)), (n.acceptor, first_data(n.acceptor))];
    let next_of = |next: &[(u8, u16); 2], side: u8| next.iter().find(|e| e.0 == side).unwrap().1;
    for s in &ours {
        let h = &s.header;
        let ctx = format!("packet {s}\n{trace}");
        // Connection ids.
        let want_id = if s.kind() == PacketType::Syn || s.from == n.acceptor {
            n.id
        } else {
            n.id.wrapping_add(1)
        };
        assert_eq!(h.connection_id, want_id, "connection id of {ctx}");
        // seq_nr.
        match s.kind() {
            PacketType::Syn => {
                assert_eq!(h.seq_nr, syn_seq, "a retransmitted SYN keeps its number: {ctx}");
                assert_eq!(h.ack_nr, 0, "SYN ack_nr: {ctx}");
                continue;
            }
            PacketType::Data | PacketType::Fin => {
                let nx = next_of(&next, s.from);
                let first = first_data(s.from);
                let used = nx.wrapping_sub(first);
                let off = h.seq_nr.wrapping_sub(first);
                assert!(
                    off <= used,
                    "DATA/FIN must take the next number ({nx}) or repeat one already used: {ctx}"
                );
                if off == used {
                    for e in next.iter_mut().filter(|e| e.0 == s.from) {
                        e.1 = nx.wrapping_add(1);
                    }
                }
            }
            PacketType::State => {
                if s.order == synack.order {
                    assert_eq!(h.ack_nr, syn_seq, "the SYN-ACK acknowledges the SYN: {ctx}");
                    continue;
                }
                if s.from == n.acceptor && h.seq_nr == synack_seq && h.ack_nr == syn_seq {
                    continue; // the SYN-ACK again, answering a retransmitted SYN
                }
                assert_eq!(
                    h.seq_nr,
                    next_of(&next, s.from),
                    "a STATE carries the sender's next number and consumes none: {ctx}"
                );
            }
            PacketType::Reset => unreachable!(),
        }
        // ack_nr: what the sender had received in order from the peer before sending.
        let peer = if s.from == n.initiator { n.acceptor } else { n.initiator };
        let (base, since) = if s.from == n.acceptor {
            (syn_seq, 0)
        } else {
            // The first delivery of the SYN-ACK or of a repeat of it.
            let first_synack_delivery = ours
                .iter()
                .filter(|p| p.from == n.acceptor && p.kind() == PacketType::State)
                .filter(|p| p.header.seq_nr == synack_seq && p.header.ack_nr == syn_seq)
                .flat_map(|p| p.deliveries.iter().copied())
                .min()
                .filter(|&d| d < s.order)
                .unwrap_or_else(|| {
                    panic!("the initiator sent {s} without having got the SYN-ACK\n{trace}")
                });
            let base = if n.synack_consumes { synack_seq } else { synack_seq.wrapping_sub(1) };
            (base, first_synack_delivery)
        };
        let got: BTreeSet<u16> = ours
            .iter()
            .filter(|p| p.from == peer && matches!(p.kind(), PacketType::Data | PacketType::Fin))
            .filter(|p| p.deliveries.iter().any(|&d| d > since && d < s.order))
            .map(|p| p.header.seq_nr.wrapping_sub(base))
            .collect();
        let mut in_order = 0u16;
        while got.contains(&(in_order + 1)) {
            in_order += 1;
        }
        assert_eq!(
            h.ack_nr,
            base.wrapping_add(in_order),
            "ack_nr must be the last number received in order: {ctx}"
        );
    }
    (syn_seq, synack_seq)
}

/// The application on both ends of a [`Net`]: records events with their time, accepts
/// Bob's incoming connections when asked to, reads everything that arrives, and closes a
/// side once it has read to the end when asked to.
#[derive(Debug, Default)]
pub struct Session {
    pub alice: Option<ConnectionHandle>,
    pub bob: Option<ConnectionHandle>,
    /// Bob accepts every [`Event::Incoming`].
    pub auto_accept: bool,
    /// Close a side as soon as it has read the end of the peer's stream.
    pub close_on_eof: bool,
    pub events_a: Vec<(Instant, Event<u8>)>,
    pub events_b: Vec<(Instant, Event<u8>)>,
    pub recv_a: Vec<u8>,
    pub recv_b: Vec<u8>,
    pub eof_a: Option<Instant>,
    pub eof_b: Option<Instant>,
    pub closed_a: Option<(Instant, Result<(), ConnectionError>)>,
    pub closed_b: Option<(Instant, Result<(), ConnectionError>)>,
}

impl Session {
    pub fn new(auto_accept: bool, close_on_eof: bool) -> Self {
        Self { auto_accept, close_on_eof, ..Self::default() }
    }

    /// Handles both sides' events and reads; call it after every step.
    pub fn poll(&mut self, net: &mut Net) {
        let now = net.now;
        while let Some(ev) = net.b.poll_event() {
            match &ev {
                Event::Incoming { id, .. } if self.auto_accept && self.bob.is_none() => {
                    self.bob = Some(net.b.accept(now, *id).expect("accept"));
                }
                Event::Closed { handle, result } if Some(*handle) == self.bob => {
                    self.closed_b.get_or_insert((now, *result));
                }
                _ => {}
            }
            self.events_b.push((now, ev));
        }
        while let Some(ev) = net.a.poll_event() {
            if let Event::Closed { handle, result } = &ev {
                if Some(*handle) == self.alice {
                    self.closed_a.get_or_insert((now, *result));
                }
            }
            self.events_a.push((now, ev));
        }
        if let (Some(h), None) = (self.alice, self.eof_a) {
            if read_all(&mut net.a, h, &mut self.recv_a) {
                self.eof_a = Some(now);
                if self.close_on_eof {
                    net.a.close(now, h);
                }
            }
        }
        if let (Some(h), None) = (self.bob, self.eof_b) {
            if read_all(&mut net.b, h, &mut self.recv_b) {
                self.eof_b = Some(now);
                if self.close_on_eof {
                    net.b.close(now, h);
                }
            }
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
        net.run_until(max_steps, |n| {
            self.poll(n);
            done(self, n)
        });
    }

    /// When Alice saw `Connected`.
    pub fn connected_a(&self) -> Option<Instant> {
        self.events_a.iter().find(|(_, e)| matches!(e, Event::Connected(_))).map(|(t, _)| *t)
    }

    /// When Bob saw `Connected`.
    pub fn connected_b(&self) -> Option<Instant> {
        self.events_b.iter().find(|(_, e)| matches!(e, Event::Connected(_))).map(|(t, _)| *t)
    }

    /// How many `Incoming` events Bob saw.
    pub fn incoming_b(&self) -> usize {
        self.events_b.iter().filter(|(_, e)| matches!(e, Event::Incoming { .. })).count()
    }
}
