//! Helpers for the uTP scenario tests: two endpoints on a simulated link, and a bulk
//! transfer driven to completion.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use utp_proto::sim::{LinkConfig, Pair};
use utp_proto::utp::{Config, ConnectionError, ConnectionHandle, ConnectionStats, Endpoint, Event};
use utp_proto::{Instant, Machine, Rng};

/// Peers are named by a byte: Alice is 1, Bob is 2.
pub const ALICE: u8 = 1;
pub const BOB: u8 = 2;

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
/// the UDP checksum drops them on a real network (uTP itself has no checksum).
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
