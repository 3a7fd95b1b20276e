//! One TFTP transfer, either role, either direction: [`Transfer`].

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::net::SocketAddr;
use core::time::Duration;

use thiserror::Error;

use super::block;
use super::netascii::{Decoder, Encoder};
use super::options::{Grant, check_oack};
use super::{
    Config, Event, Negotiated, OptionRequest, OptionRequestError, TransferError, TransferStats,
};
use crate::rtt::RttEstimator;
use crate::wire::tftp::{EmitError, ErrorCode, Mode, OPCODE_DATA, Options, Packet, Request};
use crate::{Instant, Machine, Transmit};

/// Which end of the exchange a transfer is.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum Role {
    /// It sent the request (to the server's well-known port) and locks onto the port that
    /// answers.
    Client,
    /// It answers a request, from a port of its own (its transfer ID).
    Server,
}

/// Which way the data flows, seen from this transfer.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum Direction {
    /// This side sends DATA: a client's write (WRQ) or a server's read (RRQ).
    Send,
    /// This side receives DATA: a client's read or a server's write.
    Receive,
}

/// Where a transfer is.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Phase {
    /// Client: the request is out; waiting for the server's first answer.
    Requesting,
    /// Server: the OACK is out; waiting for ACK 0 (read) or DATA 1 (write).
    OackSent,
    /// Data flows.
    Transferring,
    /// Receiver: the last block is in and acknowledged; a repeat of it is acknowledged
    /// again until the timer ends.
    Dallying,
    /// Complete or failed: only replies already queued are still sent.
    Closed,
}

/// A request the client cannot send.
#[derive(Clone, Debug, Eq, Error, PartialEq)]
#[non_exhaustive]
pub enum RequestError {
    /// An option is out of range.
    #[error(transparent)]
    Option(#[from] OptionRequestError),
    /// The filename is empty or holds a NUL byte.
    #[error("the remote filename must be non-empty and must not contain NUL bytes")]
    Filename,
    /// `mail` mode is obsolete and refused.
    #[error("mode \"mail\" is obsolete and not supported: use octet or netascii")]
    MailMode,
    /// The request would exceed 512 bytes (RFC 2347).
    #[error("the request is longer than 512 bytes: shorten the remote filename")]
    TooLong,
}

/// One TFTP transfer: a state machine for either [`Role`] and either [`Direction`].
///
/// A client makes one with [`client_read`](Self::client_read) or
/// [`client_write`](Self::client_write) and sends from a fresh port to the server's
/// well-known one; a server makes one from a request with
/// [`Incoming::accept`](super::Incoming::accept) and runs it on a fresh socket of its own. Drive it like every [`Machine`]; the application feeds the sending side with
/// [`write`](Self::write) and [`finish`](Self::finish) and drains the receiving side with
/// [`read`](Self::read).
///
/// # Behaviour
///
/// - **Windows** (RFC 7440): the sender sends up to `windowsize` blocks, then waits; the
///   receiver acknowledges the last block of each window, the final block, and, on a gap or
///   a repeat, the last block it has in order, at most once per window's worth of such
///   packets. An acknowledgement of an earlier block makes the sender restart after it.
/// - **Sorcerer's Apprentice** (RFC 1123 4.2.3.1): an acknowledgement that acknowledges
///   nothing new never triggers a retransmission in lockstep (`windowsize` 1); with windows,
///   it restarts the window at most once until the transfer progresses again.
/// - **Timers**: the sender retransmits after an adaptive timeout (RFC 6298 estimator fed by
///   blocks sent once, floored at [`Config::min_timeout`]), the receiver re-acknowledges after
///   [`Config::timeout`]; a negotiated `timeout` option replaces both. Each consecutive
///   timeout doubles the wait (up to [`Config::max_timeout`]); after
///   [`Config::max_retries`] the transfer fails. A server whose peer has not answered yet
///   sends one block, not a window, and retransmits DATA only
///   [`Config::unverified_retries`] times (an OACK is retried normally: it is no larger than
///   the request).
/// - **Transfer IDs**: packets from anyone but the peer get ERROR 5 and change nothing. A
///   client accepts its first answer from any port of the server's address and then locks
///   onto that port.
/// - **Block numbers** wrap after 65535 as [`Config::rollover`] says, windows across the wrap
///   included; internally blocks are counted with 64 bits.
/// - **netascii** is converted on the way in and out, across block boundaries.
/// - **The end**: a block shorter than `blksize` is the last; an exact multiple ends with an
///   empty block. The receiver dallies for [`Config::dally`] to re-acknowledge a repeated last
///   block.
#[derive(Debug)]
pub struct Transfer {
    config: Arc<Config>,
    role: Role,
    direction: Direction,
    mode: Mode,
    peer: SocketAddr,
    locked: bool,
    verified: bool,
    phase: Phase,
    requested: OptionRequest,
    negotiated: Negotiated,
    /// The request (client) or OACK (server) datagram, resent on timeouts.
    control: Vec<u8>,
    control_due: bool,
    control_sent: Option<(Instant, u32)>,
    // Sending side.
    send_buf: VecDeque<u8>,
    base: u64,
    next: u64,
    sent_max: u64,
    finished: bool,
    rewound: bool,
    timing: Option<(u64, Instant)>,
    encoder: Encoder,
    writable_wanted: bool,
    // Receiving side.
    recv_buf: VecDeque<u8>,
    expected: u64,
    since_ack: u32,
    suppress: u32,
    stalled: bool,
    decoder: Decoder,
    received: u64,
    readable_signalled: bool,
    ack_due: Option<u64>,
    last_ack_sent: Option<Instant>,
    // Both.
    error_due: Option<(ErrorCode, String)>,
    stranger_replies: VecDeque<SocketAddr>,
    timer: Option<Instant>,
    retries: u32,
    rtt: RttEstimator,
    events: VecDeque<Event>,
    error: Option<TransferError>,
    complete: bool,
    /// The receiver has the last block; its ACK has not left yet.
    final_ack_pending: bool,
    stats: TransferStats,
}

impl Transfer {
    /// A client reading `filename` from the server at `server` (usually port 69).
    ///
    /// The request goes out on the first [`poll_transmit`](Machine::poll_transmit). A `tsize`
    /// option asks for the size; once known it is in [`negotiated`](Self::negotiated), and a
    /// different number of bytes received fails the transfer. In netascii mode `tsize` is
    /// left out of the request: a converted size is not something servers give.
    ///
    /// # Errors
    ///
    /// [`RequestError`] for an option out of range, a bad filename, `mail` mode, or a request
    /// over 512 bytes.
    pub fn client_read(
        config: Arc<Config>,
        server: SocketAddr,
        filename: &str,
        mode: Mode,
        options: OptionRequest,
        now: Instant,
    ) -> Result<Self, RequestError> {
        Self::client(config, server, filename, mode, options, Direction::Receive, now)
    }

    /// A client writing `filename` to the server at `server` (usually port 69).
    ///
    /// A `tsize` option announces the size; a server may refuse a file too large for it.
    ///
    /// # Errors
    ///
    /// As for [`client_read`](Self::client_read).
    pub fn client_write(
        config: Arc<Config>,
        server: SocketAddr,
        filename: &str,
        mode: Mode,
        options: OptionRequest,
        now: Instant,
    ) -> Result<Self, RequestError> {
        Self::client(config, server, filename, mode, options, Direction::Send, now)
    }

    fn client(
        config: Arc<Config>,
        server: SocketAddr,
        filename: &str,
        mode: Mode,
        options: OptionRequest,
        direction: Direction,
        now: Instant,
    ) -> Result<Self, RequestError> {
        options.validate()?;
        if mode == Mode::Mail {
            return Err(RequestError::MailMode);
        }
        let read = direction == Direction::Receive;
        let mut options = options;
        if mode == Mode::Netascii {
            // A netascii size counts converted bytes: servers refuse the option (tftpd-hpa
            // answers ERROR 8) or cannot know it, so it is not asked for.
            options.tsize = None;
        }
        let pairs = options.pairs(read);
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let options_view = Options::from_pairs(&refs).map_err(|_| RequestError::Filename)?;
        let request = Request { filename: filename.as_bytes(), mode, options: options_view };
        let packet =
            if read { Packet::ReadRequest(request) } else { Packet::WriteRequest(request) };
        let mut control = Vec::new();
        packet.try_emit(&mut control).map_err(|e| match e {
            EmitError::TooLong { .. } => RequestError::TooLong,
            _ => RequestError::Filename,
        })?;
        let mut transfer = Self::new(config, Role::Client, direction, mode, server, now);
        transfer.requested = options;
        transfer.control = control;
        transfer.control_due = true;
        transfer.phase = Phase::Requesting;
        transfer.verified = true;
        Ok(transfer)
    }

    /// A server's transfer for a request from `peer`; `grant` is what the server agreed to.
    pub(crate) fn server(
        config: Arc<Config>,
        peer: SocketAddr,
        direction: Direction,
        mode: Mode,
        grant: &Grant,
        now: Instant,
    ) -> Self {
        let mut transfer = Self::new(config, Role::Server, direction, mode, peer, now);
        transfer.negotiated = grant.negotiated;
        transfer.locked = true;
        if grant.granted.is_empty() {
            transfer.enter_transfer(now);
            if direction == Direction::Receive {
                // ACK 0 answers a WRQ; timeouts repeat it like any acknowledgement.
                transfer.ack_due = Some(0);
                transfer.arm(now);
            }
        } else {
            let pairs = grant.pairs();
            let refs: Vec<(&str, &str)> = pairs.iter().map(|(n, v)| (*n, v.as_str())).collect();
            // At most four short, validated options: always a valid OACK.
            if let Ok(options) = Options::from_pairs(&refs) {
                Packet::OptionAck(options).emit(&mut transfer.control);
            }
            transfer.control_due = true;
            transfer.phase = Phase::OackSent;
        }
        transfer.events.push_back(Event::Negotiated(grant.negotiated));
        transfer
    }

    fn new(
        config: Arc<Config>,
        role: Role,
        direction: Direction,
        mode: Mode,
        peer: SocketAddr,
        _now: Instant,
    ) -> Self {
        let rtt = RttEstimator::new(config.timeout(), config.min_timeout(), config.max_timeout());
        Self {
            config,
            role,
            direction,
            mode,
            peer,
            locked: false,
            verified: false,
            phase: Phase::Transferring,
            requested: OptionRequest::NONE,
            negotiated: Negotiated::default(),
            control: Vec::new(),
            control_due: false,
            control_sent: None,
            send_buf: VecDeque::new(),
            base: 1,
            next: 1,
            sent_max: 1,
            finished: false,
            rewound: false,
            timing: None,
            encoder: Encoder::new(),
            writable_wanted: false,
            recv_buf: VecDeque::new(),
            expected: 1,
            since_ack: 0,
            suppress: 0,
            stalled: false,
            decoder: Decoder::new(),
            received: 0,
            readable_signalled: false,
            ack_due: None,
            last_ack_sent: None,
            error_due: None,
            stranger_replies: VecDeque::new(),
            timer: None,
            retries: 0,
            rtt,
            events: VecDeque::new(),
            error: None,
            complete: false,
            final_ack_pending: false,
            stats: TransferStats::default(),
        }
    }

    /// This transfer's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Which way the data flows.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// The transfer mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The peer: the server's well-known address until a client's first answer, then the
    /// peer's transfer ID (address and port).
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The options in force: the defaults until negotiation is over (see
    /// [`Event::Negotiated`]).
    pub fn negotiated(&self) -> Negotiated {
        self.negotiated
    }

    /// Counters.
    pub fn stats(&self) -> TransferStats {
        self.stats
    }

    /// Why the transfer failed, if it did.
    pub fn error(&self) -> Option<&TransferError> {
        self.error.as_ref()
    }

    /// Whether every byte was acknowledged (sending side), or received and the final ACK
    /// handed to [`poll_transmit`](Machine::poll_transmit) (receiving side).
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Whether the transfer is over, complete or failed, and has nothing left to send: its
    /// socket may be closed.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
            && self.error_due.is_none()
            && self.ack_due.is_none()
            && self.stranger_replies.is_empty()
    }

    /// Bytes [`write`](Self::write) would take now (sending side). In netascii mode a byte
    /// may take two; `write` accounts for that.
    pub fn writable_len(&self) -> usize {
        if self.direction != Direction::Send || self.finished || self.phase == Phase::Closed {
            return 0;
        }
        self.send_capacity().saturating_sub(self.send_buf.len())
    }

    /// Queues `data` to send and returns how much of it was taken (all of it unless the
    /// buffer filled up; then [`Event::Writable`] follows when there is room again). Sending
    /// side only; returns 0 on the receiving side, after [`finish`](Self::finish) or once the
    /// transfer is over.
    pub fn write(&mut self, data: &[u8]) -> usize {
        let room = self.writable_len();
        if room == 0 {
            self.writable_wanted |= !data.is_empty();
            return 0;
        }
        let taken = match self.mode {
            Mode::Netascii => {
                let mut chunk = [0u8; 1024];
                let mut taken = 0;
                let mut room = room;
                while taken < data.len() && room > 0 {
                    let out = room.min(chunk.len());
                    let (consumed, written) =
                        self.encoder.encode(&data[taken..], &mut chunk[..out]);
                    self.send_buf.extend(&chunk[..written]);
                    taken += consumed;
                    room -= written;
                    if consumed == 0 && written == 0 {
                        break;
                    }
                }
                taken
            }
            _ => {
                let taken = room.min(data.len());
                self.send_buf.extend(&data[..taken]);
                taken
            }
        };
        if taken < data.len() {
            self.writable_wanted = true;
        }
        taken
    }

    /// Marks the end of the data (sending side): the last block goes out once everything
    /// before it did. Calling it again does nothing.
    pub fn finish(&mut self) {
        if self.direction != Direction::Send || self.finished {
            return;
        }
        if self.mode == Mode::Netascii {
            let mut pending = [0u8; 1];
            let written = self.encoder.flush(&mut pending);
            self.send_buf.extend(&pending[..written]);
        }
        self.finished = true;
    }

    /// Bytes waiting to be [`read`](Self::read) (receiving side).
    pub fn readable_len(&self) -> usize {
        self.recv_buf.len()
    }

    /// Moves received bytes into `buf` and returns how many; 0 when none are waiting (check
    /// [`is_complete`](Self::is_complete) to tell the end from a pause).
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.recv_buf.len());
        let (a, b) = self.recv_buf.as_slices();
        let from_a = n.min(a.len());
        buf[..from_a].copy_from_slice(&a[..from_a]);
        buf[from_a..n].copy_from_slice(&b[..n - from_a]);
        self.recv_buf.drain(..n);
        self.readable_signalled = false;
        if self.stalled && self.phase == Phase::Transferring && self.recv_room() > 0 {
            // A block was dropped for lack of room: ask for it again now.
            self.stalled = false;
            self.ack_due = Some(self.expected - 1);
            self.timer = None;
        }
        n
    }

    /// Ends the transfer, telling the peer with ERROR `code` and `message` (a NUL in it is
    /// replaced). Does nothing once the transfer is over; once it is complete (a receiver
    /// dallying) it only stops dallying, sends nothing and reports no failure. A receiver
    /// that has the last block but has not sent its final ACK yet is not complete: an abort
    /// then replaces that ACK with the ERROR (how a server refuses an upload whose last block
    /// passes its size cap).
    pub fn abort(&mut self, code: ErrorCode, message: &str) {
        if self.phase == Phase::Closed {
            return;
        }
        if self.complete {
            // Dallying: everything arrived and was acknowledged; just stop answering.
            self.close_quietly();
            return;
        }
        let message = sanitize(message);
        self.fail(TransferError::Aborted { code, message: message.clone() }, Some((code, message)));
    }

    fn send_capacity(&self) -> usize {
        let window = usize::from(self.negotiated.windowsize) * usize::from(self.negotiated.blksize);
        self.config.send_buffer() + window
    }

    fn recv_room(&self) -> usize {
        // Two windows at least, so that a pause of the reader does not drop a whole window.
        let window = usize::from(self.negotiated.windowsize) * usize::from(self.negotiated.blksize);
        self.config.recv_buffer().max(2 * window).saturating_sub(self.recv_buf.len())
    }

    /// Ends a complete transfer's dally: no event, nothing more to send.
    fn close_quietly(&mut self) {
        self.phase = Phase::Closed;
        self.timer = None;
    }

    fn fail(&mut self, error: TransferError, notify: Option<(ErrorCode, String)>) {
        self.phase = Phase::Closed;
        self.timer = None;
        self.ack_due = None;
        self.final_ack_pending = false;
        self.control_due = false;
        self.error_due = notify;
        self.error = Some(error.clone());
        self.events.push_back(Event::Failed(error));
    }

    fn blksize(&self) -> u64 {
        u64::from(self.negotiated.blksize)
    }

    /// The current timeout, backoff included.
    fn rto(&self) -> Duration {
        let base = match self.negotiated.timeout {
            Some(seconds) => Duration::from_secs(u64::from(seconds)),
            None if self.phase == Phase::Requesting => self.config.timeout(),
            None if self.direction == Direction::Send || self.phase == Phase::OackSent => {
                self.rtt.rto()
            }
            None => self.config.timeout(),
        };
        let cap = self.config.max_timeout().max(base);
        base.saturating_mul(1 << self.retries.min(16)).min(cap)
    }

    fn arm(&mut self, now: Instant) {
        self.timer = Some(now + self.rto());
    }

    fn enter_transfer(&mut self, now: Instant) {
        self.phase = Phase::Transferring;
        self.retries = 0;
        self.timer = None;
        if self.direction == Direction::Receive {
            self.arm(now);
        }
    }

    /// Takes a round-trip sample from the request or OACK if it was sent only once.
    fn sample_control(&mut self, now: Instant) {
        if let Some((sent, 1)) = self.control_sent {
            self.rtt.on_sample(now.saturating_duration_since(sent));
        }
    }

    fn accepts_source(&self, source: SocketAddr) -> bool {
        if self.locked { source == self.peer } else { source.ip() == self.peer.ip() }
    }

    fn on_packet(&mut self, now: Instant, packet: Packet<'_>) {
        if let Packet::Error { code, message } = packet {
            if self.complete {
                // A sender that missed our final ACK and gave up: the data is all here.
                self.close_quietly();
            } else if self.phase != Phase::Closed {
                let message = String::from_utf8_lossy(message);
                self.fail(TransferError::Peer { code, message: sanitize(&message) }, None);
            }
            return;
        }
        match (self.phase, self.direction, packet) {
            (Phase::Requesting, direction, Packet::OptionAck(options)) => {
                let read = direction == Direction::Receive;
                match check_oack(&self.requested, &options, read) {
                    Ok(negotiated) => {
                        self.sample_control(now);
                        self.negotiated = negotiated;
                        self.events.push_back(Event::Negotiated(negotiated));
                        self.enter_transfer(now);
                        if read {
                            self.ack_due = Some(0);
                        }
                    }
                    Err(error) => {
                        let message = alloc::format!("{error}");
                        self.fail(
                            TransferError::OptionsRefused(error),
                            Some((ErrorCode::OptionRefused, message)),
                        );
                    }
                }
            }
            (Phase::Requesting, Direction::Receive, Packet::Data { block: 1, data }) => {
                self.sample_control(now);
                self.fall_back();
                self.enter_transfer(now);
                self.on_data(now, 1, data);
            }
            (Phase::Requesting, Direction::Send, Packet::Ack { block: 0 }) => {
                self.sample_control(now);
                self.fall_back();
                self.enter_transfer(now);
            }
            (Phase::OackSent, Direction::Send, Packet::Ack { block: 0 }) => {
                self.verified = true;
                self.sample_control(now);
                self.enter_transfer(now);
            }
            (Phase::OackSent, Direction::Receive, Packet::Data { block, data }) => {
                if block::absolute(block, 1, self.config.rollover()) == Some(1) {
                    self.verified = true;
                    self.sample_control(now);
                    self.enter_transfer(now);
                    self.on_data(now, block, data);
                } else {
                    self.stats.malformed += 1;
                }
            }
            (Phase::Transferring, Direction::Send, Packet::Ack { block }) => {
                self.on_ack(now, block);
            }
            (
                Phase::Transferring | Phase::Dallying,
                Direction::Receive,
                Packet::Data { block, data },
            ) => {
                self.on_data(now, block, data);
            }
            (Phase::Transferring, Direction::Receive, Packet::OptionAck(_))
                if self.role == Role::Client && self.expected == 1 =>
            {
                // Our ACK 0 was lost and the server repeats its OACK.
                self.nonprogress_ack();
            }
            _ => self.stats.malformed += 1,
        }
    }

    /// The server ignored our options: RFC 1350 defaults.
    fn fall_back(&mut self) {
        self.negotiated = Negotiated::default();
        self.events.push_back(Event::Negotiated(self.negotiated));
    }

    fn on_ack(&mut self, now: Instant, wire_block: u16) {
        self.stats.acks_received += 1;
        let rollover = self.config.rollover();
        let Some(acked) = block::absolute(wire_block, self.base, rollover) else {
            self.stats.malformed += 1;
            return;
        };
        if acked + 1 < self.base || acked >= self.next {
            // Older than anything in flight, or for a block never sent.
            self.stats.malformed += 1;
            return;
        }
        self.verified = true;
        if acked + 1 == self.base {
            self.stats.duplicate_acks += 1;
            if self.negotiated.windowsize > 1 && !self.rewound && self.next > self.base {
                // RFC 7440: the receiver asks for everything after its last in-order block.
                self.rewound = true;
                self.go_back(now);
            }
            return;
        }
        // New blocks acknowledged.
        if let Some((timed, sent)) = self.timing {
            if acked >= timed {
                if acked == timed {
                    self.rtt.on_sample(now.saturating_duration_since(sent));
                }
                self.timing = None;
            }
        }
        let done = self.finished && acked >= self.last_block();
        let blocks = acked + 1 - self.base;
        let bytes = usize::try_from(blocks.saturating_mul(self.blksize()))
            .unwrap_or(usize::MAX)
            .min(self.send_buf.len());
        self.stats.wire_bytes += bytes as u64;
        self.send_buf.drain(..bytes);
        self.base = acked + 1;
        self.retries = 0;
        self.rewound = false;
        if self.writable_wanted && self.writable_len() > 0 {
            self.writable_wanted = false;
            self.events.push_back(Event::Writable);
        }
        if done {
            self.complete = true;
            self.phase = Phase::Closed;
            self.timer = None;
            self.events.push_back(Event::Complete);
            return;
        }
        if acked + 1 < self.next {
            // Acknowledged short of what was sent: the receiver lost something after it.
            self.go_back(now);
        } else {
            self.timer = None;
        }
    }

    /// Resends from the oldest unacknowledged block.
    fn go_back(&mut self, now: Instant) {
        self.next = self.base;
        self.timing = None;
        self.arm(now);
    }

    /// The absolute number of the last block, once the data is finished.
    fn last_block(&self) -> u64 {
        self.base + self.send_buf.len() as u64 / self.blksize()
    }

    fn on_data(&mut self, now: Instant, wire_block: u16, data: &[u8]) {
        let rollover = self.config.rollover();
        let Some(number) = block::absolute(wire_block, self.expected, rollover) else {
            self.stats.malformed += 1;
            return;
        };
        if data.len() > self.negotiated.blksize as usize {
            self.stats.malformed += 1;
            return;
        }
        if self.phase == Phase::Dallying {
            self.stats.data_dropped += 1;
            // The final ACK was lost: the sender repeats its last window, which always ends
            // with the final block, so answering that block answers each repeat once.
            if number + 1 == self.expected {
                self.send_ack();
                // Stay while the sender keeps trying; its own retry cap ends the repeats.
                self.timer = Some(now + self.config.dally());
            }
            return;
        }
        if number != self.expected {
            self.stats.data_dropped += 1;
            // A block after a gap: ask for what follows the last in-order block. A repeat of
            // the last in-order block: the sender timed out (a lost ACK, or lockstep's
            // RFC 1350 re-ACK). An older repeat is the rest of a window already answered, or a
            // duplicate made by the network: nothing to say.
            if number > self.expected || number + 1 == self.expected {
                self.nonprogress_ack();
            }
            return;
        }
        if data.len() > self.recv_room() {
            self.stats.data_dropped += 1;
            self.stalled = true;
            self.timer = None;
            return;
        }
        if let Some(sent) = self.last_ack_sent.take() {
            // The first block after an acknowledgement: a round trip.
            self.rtt.on_sample(now.saturating_duration_since(sent));
        }
        self.stats.data_received += 1;
        self.stats.wire_bytes += data.len() as u64;
        self.verified = true;
        match self.mode {
            Mode::Netascii => {
                let mut decoded = Vec::with_capacity(data.len());
                self.decoder.decode_to_vec(data, &mut decoded);
                self.recv_buf.extend(&decoded);
                self.received += decoded.len() as u64;
            }
            _ => {
                self.recv_buf.extend(data);
                self.received += data.len() as u64;
            }
        }
        self.expected += 1;
        self.retries = 0;
        self.suppress = 0;
        self.since_ack += 1;
        if !data.is_empty() && !self.readable_signalled {
            self.readable_signalled = true;
            self.events.push_back(Event::Readable);
        }
        if data.len() < self.negotiated.blksize as usize {
            self.on_last_block(now);
        } else {
            if self.since_ack >= u32::from(self.negotiated.windowsize) {
                self.send_ack();
            }
            self.arm(now);
        }
    }

    fn on_last_block(&mut self, now: Instant) {
        if self.mode == Mode::Netascii {
            let mut tail = Vec::new();
            self.decoder.finish(&mut tail);
            self.received += tail.len() as u64;
            self.recv_buf.extend(&tail);
        }
        match self.negotiated.tsize {
            Some(announced) if self.mode == Mode::Octet && announced != self.received => {
                let received = self.received;
                let error = TransferError::SizeMismatch { announced, received };
                if self.role == Role::Server {
                    // An upload that is not what was announced is not stored: the client must
                    // not take a final ACK for success.
                    let message =
                        alloc::format!("received {received} bytes but tsize announced {announced}");
                    self.fail(error, Some((ErrorCode::NotDefined, message)));
                } else {
                    // The server sent what it had: it still gets its acknowledgement.
                    self.fail(error, None);
                    self.send_ack();
                }
                return;
            }
            _ => {}
        }
        self.send_ack();
        // Complete once the final ACK leaves: until then the application may still refuse the
        // data (an upload over a cap, a full disk) and the sender gets an ERROR instead.
        self.final_ack_pending = true;
        if self.config.dally().is_zero() {
            self.phase = Phase::Closed;
            self.timer = None;
        } else {
            self.phase = Phase::Dallying;
            self.timer = Some(now + self.config.dally());
        }
    }

    fn send_ack(&mut self) {
        self.ack_due = Some(self.expected - 1);
        self.since_ack = 0;
    }

    /// Acknowledges the last in-order block after a repeat or a gap, at most once per
    /// window's worth of such packets (one per window with `windowsize` 1: RFC 1350's re-ACK).
    fn nonprogress_ack(&mut self) {
        if self.suppress > 0 {
            self.suppress -= 1;
            return;
        }
        self.send_ack();
        self.suppress = u32::from(self.negotiated.windowsize) - 1;
    }

    fn on_timeout(&mut self, now: Instant) {
        if self.phase == Phase::Dallying {
            self.phase = Phase::Closed;
            self.timer = None;
            return;
        }
        self.retries += 1;
        self.stats.timeouts += 1;
        // Only DATA toward an unproven peer amplifies; an OACK or ACK is no larger than the
        // request that caused it.
        let amplifies = !self.verified
            && self.phase == Phase::Transferring
            && self.direction == Direction::Send;
        let limit =
            if amplifies { self.config.unverified_retries() } else { self.config.max_retries() };
        if self.retries > limit {
            let error = TransferError::TimedOut { retries: self.retries - 1 };
            // A peer that never answered may not exist (a spoofed request): stay silent.
            let notify = self
                .verified
                .then(|| (ErrorCode::NotDefined, String::from("timed out waiting for the peer")));
            self.fail(error, notify);
            return;
        }
        match (self.phase, self.direction) {
            (Phase::Requesting | Phase::OackSent, _) => self.control_due = true,
            (_, Direction::Receive) => {
                self.send_ack();
                self.suppress = 0;
            }
            (_, Direction::Send) => {
                if self.next > self.base {
                    self.go_back(now);
                    return;
                }
            }
        }
        self.arm(now);
    }

    fn can_send_data(&self) -> bool {
        if self.phase != Phase::Transferring || self.direction != Direction::Send {
            return false;
        }
        let window = if self.verified { u64::from(self.negotiated.windowsize) } else { 1 };
        if self.next >= self.base + window {
            return false;
        }
        let offset = (self.next - self.base) * self.blksize();
        let buffered = self.send_buf.len() as u64;
        if buffered >= offset + self.blksize() {
            return true;
        }
        self.finished && self.next <= self.last_block()
    }

    fn emit_data(&mut self, now: Instant, buf: &mut Vec<u8>) -> Transmit<SocketAddr> {
        let number = self.next;
        let blksize = self.blksize() as usize;
        let offset = ((number - self.base) * self.blksize()) as usize;
        let len = blksize.min(self.send_buf.len() - offset);
        buf.clear();
        // Packet::Data wants one slice; the block may straddle the deque's two halves.
        buf.extend_from_slice(&OPCODE_DATA.to_be_bytes());
        buf.extend_from_slice(&block::wire(number, self.config.rollover()).to_be_bytes());
        let (a, b) = self.send_buf.as_slices();
        let end = offset + len;
        if offset < a.len() {
            buf.extend_from_slice(&a[offset..end.min(a.len())]);
        }
        if end > a.len() {
            buf.extend_from_slice(&b[offset.saturating_sub(a.len())..end - a.len()]);
        }
        self.stats.data_sent += 1;
        if number < self.sent_max {
            self.stats.data_retransmitted += 1;
        } else {
            self.sent_max = number + 1;
            if self.timing.is_none() {
                self.timing = Some((number, now));
            }
        }
        self.next += 1;
        if self.timer.is_none() {
            self.arm(now);
        }
        Transmit { destination: self.peer, size: buf.len(), segment_size: None }
    }
}

impl Machine for Transfer {
    type Peer = SocketAddr;
    type Event = Event;

    fn handle_datagram(&mut self, now: Instant, remote: SocketAddr, data: &[u8]) {
        if !self.accepts_source(remote) {
            self.stats.strangers += 1;
            let is_error = matches!(Packet::parse(data), Ok(Packet::Error { .. }));
            if !is_error && self.stranger_replies.len() < self.config.max_stranger_replies() {
                self.stranger_replies.push_back(remote);
            }
            return;
        }
        let Ok(packet) = Packet::parse(data) else {
            self.stats.malformed += 1;
            return;
        };
        if self.phase == Phase::Closed {
            return;
        }
        if !self.locked {
            self.peer = remote;
            self.locked = true;
        }
        self.on_packet(now, packet);
    }

    fn handle_timeout(&mut self, now: Instant) {
        match self.timer {
            Some(at) if at <= now => self.on_timeout(now),
            _ => {}
        }
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit<SocketAddr>> {
        if let Some(stranger) = self.stranger_replies.pop_front() {
            let packet = Packet::Error {
                code: ErrorCode::UnknownTransferId,
                message: b"unknown transfer ID: this port serves another transfer",
            };
            packet.emit(buf);
            return Some(Transmit { destination: stranger, size: buf.len(), segment_size: None });
        }
        if let Some((code, message)) = self.error_due.take() {
            Packet::Error { code, message: message.as_bytes() }.emit(buf);
            return Some(Transmit { destination: self.peer, size: buf.len(), segment_size: None });
        }
        if self.control_due {
            self.control_due = false;
            buf.clear();
            buf.extend_from_slice(&self.control);
            self.control_sent = Some(match self.control_sent {
                None => (now, 1),
                Some((at, count)) => (at, count + 1),
            });
            self.arm(now);
            return Some(Transmit { destination: self.peer, size: buf.len(), segment_size: None });
        }
        if let Some(number) = self.ack_due.take() {
            Packet::Ack { block: block::wire(number, self.config.rollover()) }.emit(buf);
            if self.final_ack_pending {
                self.final_ack_pending = false;
                self.complete = true;
                self.events.push_back(Event::Complete);
            }
            self.stats.acks_sent += 1;
            self.last_ack_sent = Some(now);
            if self.timer.is_none() && self.phase == Phase::Transferring {
                self.arm(now);
            }
            return Some(Transmit { destination: self.peer, size: buf.len(), segment_size: None });
        }
        if self.can_send_data() {
            return Some(self.emit_data(now, buf));
        }
        None
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.timer
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}

/// A message fit for an ERROR packet or an error value: no NUL or other control character,
/// at most 200 bytes.
pub(crate) fn sanitize(message: &str) -> String {
    let mut out = String::new();
    for c in message.chars() {
        if out.len() + c.len_utf8() > 200 {
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}
