//! The server's well-known port: [`Server`] takes requests, hands them to the application as
//! [`Incoming`], and answers everything else.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::net::SocketAddr;

use super::options::Grant;
use super::transfer::sanitize;
use super::{Config, Direction, ServerStats, Transfer};
use crate::wire::tftp::{ErrorCode, Mode, Options, Packet, Request};
use crate::{Instant, Machine, Transmit};

/// The listening side of a TFTP server, for its well-known port (69).
///
/// Valid read and write requests come out of [`poll_event`](Machine::poll_event) as
/// [`Incoming`]; the application decides (checks the name, opens the file) and calls
/// [`Incoming::accept`] or [`Server::refuse`]. An accepted
/// request becomes a [`Transfer`] that the application runs on a **new** socket: its port is
/// the transfer's ID.
///
/// Everything else gets the protocol's answer from this port: a malformed request or `mail`
/// mode ERROR 4, a DATA or ACK (which belongs to a transfer, not here) ERROR 5; an ERROR is
/// never answered. Requests from port 0 are ignored. Replies wait in a queue of
/// [`Config::max_stranger_replies`] entries and requests in one of
/// [`Config::max_pending_requests`]; what does not fit is dropped and counted.
#[derive(Debug)]
pub struct Server {
    config: Arc<Config>,
    incoming: VecDeque<Incoming>,
    replies: VecDeque<(SocketAddr, ErrorCode, String)>,
    stats: ServerStats,
}

/// A read or write request waiting for the application's decision.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Incoming {
    peer: SocketAddr,
    direction: Direction,
    filename: Vec<u8>,
    mode: Mode,
    options: Vec<(String, String)>,
}

impl Server {
    /// A server with no requests waiting.
    pub fn new(config: Arc<Config>) -> Self {
        Self {
            config,
            incoming: VecDeque::new(),
            replies: VecDeque::new(),
            stats: ServerStats::default(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> ServerStats {
        self.stats
    }

    /// The configuration.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// Refuses `incoming` with ERROR `code` and `message`, sent from this port. The message
    /// goes to the client as is (control characters replaced, at most 200 bytes): do not put
    /// server paths in it.
    pub fn refuse(&mut self, incoming: Incoming, code: ErrorCode, message: &str) {
        self.reply(incoming.peer, code, sanitize(message));
    }

    fn reply(&mut self, to: SocketAddr, code: ErrorCode, message: String) {
        if self.replies.len() < self.config.max_stranger_replies() {
            self.replies.push_back((to, code, message));
        }
    }
}

impl Machine for Server {
    type Peer = SocketAddr;
    type Event = Incoming;

    fn handle_datagram(&mut self, _now: Instant, remote: SocketAddr, data: &[u8]) {
        if remote.port() == 0 || remote.ip().is_unspecified() || remote.ip().is_multicast() {
            self.stats.malformed += 1;
            return;
        }
        let (request, direction) = match Packet::parse(data) {
            Ok(Packet::ReadRequest(request)) => (request, Direction::Send),
            Ok(Packet::WriteRequest(request)) => (request, Direction::Receive),
            Ok(Packet::Error { .. }) => {
                self.stats.malformed += 1;
                return;
            }
            Ok(_) => {
                self.stats.malformed += 1;
                let message = String::from("unknown transfer ID: this is the request port");
                self.reply(remote, ErrorCode::UnknownTransferId, message);
                return;
            }
            Err(error) => {
                self.stats.malformed += 1;
                let message = alloc::format!("malformed request: {error}");
                self.reply(remote, ErrorCode::IllegalOperation, message);
                return;
            }
        };
        if request.mode == Mode::Mail {
            self.stats.malformed += 1;
            let message = String::from("mode \"mail\" is not supported: use octet or netascii");
            self.reply(remote, ErrorCode::IllegalOperation, message);
            return;
        }
        if self.incoming.len() >= self.config.max_pending_requests() {
            self.stats.requests_dropped += 1;
            return;
        }
        self.stats.requests += 1;
        self.incoming.push_back(Incoming::new(remote, direction, &request));
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn poll_transmit(&mut self, _now: Instant, buf: &mut Vec<u8>) -> Option<Transmit<SocketAddr>> {
        let (to, code, message) = self.replies.pop_front()?;
        Packet::Error { code, message: message.as_bytes() }.emit(buf);
        self.stats.errors_sent += 1;
        Some(Transmit { destination: to, size: buf.len(), segment_size: None })
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn poll_event(&mut self) -> Option<Incoming> {
        self.incoming.pop_front()
    }
}

impl Incoming {
    fn new(peer: SocketAddr, direction: Direction, request: &Request<'_>) -> Self {
        let options = request
            .options
            .iter()
            .map(|option| (String::from(option.name), String::from(option.value)))
            .collect();
        Self { peer, direction, filename: request.filename.to_vec(), mode: request.mode, options }
    }

    /// Who asked: the client's address and port (its transfer ID).
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// [`Direction::Send`] for a read request (the server sends), [`Direction::Receive`] for
    /// a write request.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// Whether this is a read request (RRQ).
    pub fn is_read(&self) -> bool {
        self.direction == Direction::Send
    }

    /// The requested filename, raw: check it (for example with
    /// [`RequestPath::parse`](super::path::RequestPath::parse)) before touching any file.
    pub fn filename(&self) -> &[u8] {
        &self.filename
    }

    /// The transfer mode (never `mail`: the [`Server`] refuses it).
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The requested options, as sent.
    pub fn options(&self) -> impl Iterator<Item = (&str, &str)> {
        self.options.iter().map(|(name, value)| (name.as_str(), value.as_str()))
    }

    /// The size a write request announced with `tsize`, if any: refuse an upload too large
    /// for you before it starts (ERROR 3).
    pub fn announced_size(&self) -> Option<u64> {
        if self.is_read() {
            return None;
        }
        self.with_options(|options| options.tsize().and_then(Result::ok))
    }

    /// Accepts the request. The returned transfer runs on a **new** socket (its port is the
    /// transfer ID): for a read request it sends the file, fed with [`Transfer::write`] and
    /// [`Transfer::finish`], and `size` (the file's size, if known) answers a `tsize` query;
    /// for a write request it receives, drained with [`Transfer::read`], and `size` is
    /// ignored.
    pub fn accept(self, config: Arc<Config>, size: Option<u64>, now: Instant) -> Transfer {
        let grant = self.with_options(|options| {
            Grant::for_request(&options, self.is_read(), self.mode, size, &config)
        });
        Transfer::server(config, self.peer, self.direction, self.mode, &grant, now)
    }
    fn with_options<T>(&self, f: impl FnOnce(Options<'_>) -> T) -> T {
        let pairs: Vec<(&str, &str)> = self.options().collect();
        // The options came from a parsed request: they are valid by construction.
        f(Options::from_pairs(&pairs).unwrap_or_default())
    }
}
