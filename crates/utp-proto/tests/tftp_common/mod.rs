//! A TFTP client and a TFTP server host (the well-known port plus one port per transfer)
//! over two seeded simulated links, in virtual time.
//!
//! Datagrams cross the links with a 4-byte prefix, the source and destination ports, so the
//! server host can run each transfer on a port of its own, as a real server does: the client
//! sees its answers come from a new transfer ID.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::too_many_arguments,
    reason = "each test file uses part of the harness; Net::new takes the whole scenario"
)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use utp_proto::sim::{Link, LinkConfig};
use utp_proto::tftp::{Config, Event, OptionRequest, Server, Transfer, TransferError};
use utp_proto::wire::tftp::{Mode, Packet, Request};
use utp_proto::{Instant, Machine};

pub const CLIENT_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
pub const SERVER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
pub const CLIENT: SocketAddr = SocketAddr::new(CLIENT_IP, 50_000);
pub const SERVER: SocketAddr = SocketAddr::new(SERVER_IP, 69);
/// The server's first transfer port; the n-th transfer gets `FIRST_TRANSFER_PORT + n`.
pub const FIRST_TRANSFER_PORT: u16 = 40_000;

/// Deterministic pseudo-random bytes.
pub fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// One transfer the server host runs.
pub struct Served {
    pub port: u16,
    pub transfer: Transfer,
    pub offset: usize,
    pub received: Vec<u8>,
    pub events: Vec<Event>,
}

/// What the client does.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Op {
    Get,
    Put,
}

/// The whole simulated network.
pub struct Net {
    pub now: Instant,
    pub up: Link,
    pub down: Link,
    pub config: Arc<Config>,
    pub client: Transfer,
    pub client_events: Vec<Event>,
    pub client_received: Vec<u8>,
    /// What the client sends (put) or the server serves (get).
    pub data: Vec<u8>,
    client_offset: usize,
    /// Whether the client application reads what arrives (false stalls it).
    pub client_reads: bool,
    pub server: Server,
    pub served: Vec<Served>,
    /// The server host strips the options from requests (a server that ignores them).
    pub ignore_options: bool,
    /// Datagrams the machines sent to addresses other than the client and the server.
    pub to_strangers: Vec<(SocketAddr, Vec<u8>)>,
    /// Datagrams sent by the server host, by (time, source port, bytes), when recording.
    pub server_sent: Vec<(Instant, u16, Vec<u8>)>,
    /// Datagrams sent by the client, by (time, bytes), when recording.
    pub client_sent: Vec<(Instant, Vec<u8>)>,
    pub record: bool,
    buf: Vec<u8>,
    rx: Vec<u8>,
}

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    pub client_error: Option<TransferError>,
    pub client_complete: bool,
    pub server_errors: Vec<Option<TransferError>>,
    pub elapsed: Duration,
    pub settled: bool,
}

impl Net {
    /// A client doing `op` on `filename` with `options` against the server host; both use
    /// `config`; `data` is the file (served for a get, uploaded for a put).
    pub fn new(
        op: Op,
        mode: Mode,
        options: OptionRequest,
        config: Config,
        data: Vec<u8>,
        up: LinkConfig,
        down: LinkConfig,
        seed: u64,
    ) -> Self {
        let config = Arc::new(config);
        let now = Instant::ZERO;
        let client = match op {
            Op::Get => Transfer::client_read(config.clone(), SERVER, "file", mode, options, now),
            Op::Put => Transfer::client_write(config.clone(), SERVER, "file", mode, options, now),
        }
        .expect("a valid request");
        Self {
            now,
            up: Link::new(up, seed),
            down: Link::new(down, seed.wrapping_add(0x5151)),
            server: Server::new(config.clone()),
            config,
            client,
            client_events: Vec::new(),
            client_received: Vec::new(),
            data,
            client_offset: 0,
            client_reads: true,
            served: Vec::new(),
            ignore_options: false,
            to_strangers: Vec::new(),
            server_sent: Vec::new(),
            client_sent: Vec::new(),
            record: false,
            buf: Vec::new(),
            rx: Vec::new(),
        }
    }

    /// The application side of every machine: feed senders, drain receivers, collect events,
    /// accept requests.
    fn apps(&mut self) {
        while let Some(event) = self.client.poll_event() {
            self.client_events.push(event);
        }
        feed(&mut self.client, &self.data, &mut self.client_offset);
        if self.client_reads {
            drain(&mut self.client, &mut self.client_received);
        }
        while let Some(incoming) = self.server.poll_event() {
            let port = FIRST_TRANSFER_PORT + self.served.len() as u16;
            let size = Some(self.data.len() as u64);
            let transfer = incoming.accept(self.config.clone(), size, self.now);
            self.served.push(Served {
                port,
                transfer,
                offset: 0,
                received: Vec::new(),
                events: Vec::new(),
            });
        }
        for served in &mut self.served {
            while let Some(event) = served.transfer.poll_event() {
                served.events.push(event);
            }
            feed(&mut served.transfer, &self.data, &mut served.offset);
            drain(&mut served.transfer, &mut served.received);
        }
    }

    /// Drains every machine's transmits onto the links.
    fn flush(&mut self) {
        for _ in 0..8 {
            self.apps();
            let mut any = false;
            while let Some(t) = self.client.poll_transmit(self.now, &mut self.buf) {
                any = true;
                let data = self.buf[..t.size].to_vec();
                if self.record {
                    self.client_sent.push((self.now, data.clone()));
                }
                if t.destination.ip() == SERVER_IP {
                    let framed = frame(CLIENT.port(), t.destination.port(), &data);
                    self.up.send(self.now, &framed);
                } else {
                    self.to_strangers.push((t.destination, data));
                }
            }
            while let Some(t) = self.server.poll_transmit(self.now, &mut self.buf) {
                any = true;
                let data = self.buf[..t.size].to_vec();
                self.server_out(SERVER.port(), t.destination, data);
            }
            for i in 0..self.served.len() {
                while let Some(t) = self.served[i].transfer.poll_transmit(self.now, &mut self.buf) {
                    any = true;
                    let data = self.buf[..t.size].to_vec();
                    let port = self.served[i].port;
                    self.server_out(port, t.destination, data);
                }
            }
            if !any {
                break;
            }
        }
        self.apps();
    }

    fn server_out(&mut self, port: u16, to: SocketAddr, data: Vec<u8>) {
        if self.record {
            self.server_sent.push((self.now, port, data.clone()));
        }
        if to.ip() == CLIENT_IP {
            let framed = frame(port, to.port(), &data);
            self.down.send(self.now, &framed);
        } else {
            self.to_strangers.push((to, data));
        }
    }

    /// Delivers one datagram that arrived at the server host.
    fn server_in(&mut self, data: &[u8]) {
        let Some((src, dst, payload)) = unframe(data) else { return };
        let from = SocketAddr::new(CLIENT_IP, src);
        if dst == SERVER.port() {
            if self.ignore_options {
                if let Some(stripped) = strip_options(payload) {
                    self.server.handle_datagram(self.now, from, &stripped);
                    return;
                }
            }
            self.server.handle_datagram(self.now, from, payload);
        } else if let Some(served) = self.served.iter_mut().find(|s| s.port == dst) {
            served.transfer.handle_datagram(self.now, from, payload);
        }
    }

    /// Injects a datagram from `from` to the server host's transfer port `port`.
    pub fn inject_to_server(&mut self, from: SocketAddr, port: u16, data: &[u8]) {
        if let Some(served) = self.served.iter_mut().find(|s| s.port == port) {
            served.transfer.handle_datagram(self.now, from, data);
        }
        self.flush();
    }

    fn next_event(&self) -> Option<Instant> {
        let mut next = [
            self.up.next_arrival(),
            self.down.next_arrival(),
            self.client.poll_timeout(),
            self.server.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min();
        for served in &self.served {
            if let Some(t) = served.transfer.poll_timeout() {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        next
    }

    /// Whether every machine is closed.
    pub fn settled(&self) -> bool {
        self.client.is_closed() && self.served.iter().all(|s| s.transfer.is_closed())
    }

    /// Runs until every machine is closed, nothing happens any more, `limit` of virtual time
    /// has passed, or `stop` holds.
    pub fn run_until(&mut self, limit: Duration, mut stop: impl FnMut(&Self) -> bool) -> Outcome {
        let end = self.now + limit;
        let mut same_instant = 0u32;
        loop {
            self.flush();
            if self.settled() || stop(self) {
                break;
            }
            let Some(next) = self.next_event() else { break };
            if next > end {
                self.now = end;
                break;
            }
            if next <= self.now {
                same_instant += 1;
                assert!(same_instant < 100_000, "livelock: time does not advance at {}", self.now);
            } else {
                same_instant = 0;
                self.now = next;
            }
            let mut rx = std::mem::take(&mut self.rx);
            while self.up.recv(self.now, &mut rx).is_some() {
                self.server_in(&rx);
            }
            while self.down.recv(self.now, &mut rx).is_some() {
                if let Some((src, dst, payload)) = unframe(&rx) {
                    if dst == CLIENT.port() {
                        let from = SocketAddr::new(SERVER_IP, src);
                        self.client.handle_datagram(self.now, from, payload);
                    }
                }
            }
            self.rx = rx;
            if self.client.poll_timeout().is_some_and(|t| t <= self.now) {
                self.client.handle_timeout(self.now);
            }
            for served in &mut self.served {
                if served.transfer.poll_timeout().is_some_and(|t| t <= self.now) {
                    served.transfer.handle_timeout(self.now);
                }
            }
        }
        self.outcome()
    }

    /// Runs until settled or `limit`.
    pub fn run(&mut self, limit: Duration) -> Outcome {
        self.run_until(limit, |_| false)
    }

    pub fn outcome(&self) -> Outcome {
        Outcome {
            client_error: self.client.error().cloned(),
            client_complete: self.client.is_complete(),
            server_errors: self.served.iter().map(|s| s.transfer.error().cloned()).collect(),
            elapsed: self.now.saturating_duration_since(Instant::ZERO),
            settled: self.settled(),
        }
    }

    /// The served transfer the client locked onto: the one that completed, else the first.
    pub fn main_served(&self) -> &Served {
        self.served
            .iter()
            .find(|s| s.transfer.is_complete())
            .or(self.served.first())
            .expect("the server accepted a request")
    }
}

fn feed(transfer: &mut Transfer, data: &[u8], offset: &mut usize) {
    if transfer.direction() != utp_proto::tftp::Direction::Send {
        return;
    }
    while *offset < data.len() {
        let n = transfer.write(&data[*offset..]);
        if n == 0 {
            break;
        }
        *offset += n;
    }
    if *offset == data.len() {
        transfer.finish();
    }
}

fn drain(transfer: &mut Transfer, into: &mut Vec<u8>) {
    let mut chunk = [0u8; 65536];
    loop {
        let n = transfer.read(&mut chunk);
        if n == 0 {
            break;
        }
        into.extend_from_slice(&chunk[..n]);
    }
}

fn frame(src: u16, dst: u16, data: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(data.len() + 4);
    framed.extend_from_slice(&src.to_be_bytes());
    framed.extend_from_slice(&dst.to_be_bytes());
    framed.extend_from_slice(data);
    framed
}

fn unframe(data: &[u8]) -> Option<(u16, u16, &[u8])> {
    if data.len() < 4 {
        return None;
    }
    let src = u16::from_be_bytes([data[0], data[1]]);
    let dst = u16::from_be_bytes([data[2], data[3]]);
    Some((src, dst, &data[4..]))
}

/// The request without its options, or `None` if `data` is not a request.
pub fn strip_options(data: &[u8]) -> Option<Vec<u8>> {
    let packet = Packet::parse(data).ok()?;
    let stripped = match packet {
        Packet::ReadRequest(r) => {
            Packet::ReadRequest(Request { options: utp_proto::wire::tftp::Options::EMPTY, ..r })
        }
        Packet::WriteRequest(r) => {
            Packet::WriteRequest(Request { options: utp_proto::wire::tftp::Options::EMPTY, ..r })
        }
        _ => return None,
    };
    let mut out = Vec::new();
    stripped.emit(&mut out);
    Some(out)
}

/// Asserts that the transfer `op` moved `net.data` intact and both sides completed.
pub fn assert_intact(net: &Net, op: Op, outcome: &Outcome, what: &str) {
    assert!(outcome.client_error.is_none(), "{what}: client failed: {:?}", outcome.client_error);
    assert!(outcome.client_complete, "{what}: client did not complete ({outcome:?})");
    let served = net.main_served();
    assert!(
        served.transfer.is_complete(),
        "{what}: server transfer did not complete: {:?}",
        served.transfer.error()
    );
    let received = match op {
        Op::Get => &net.client_received,
        Op::Put => &served.received,
    };
    assert_eq!(received.len(), net.data.len(), "{what}: length");
    assert!(received == &net.data, "{what}: bytes differ");
}
