//! One rudp connection: the handshake as starter, the established exchange (messages,
//! acknowledgements, repeats, pings, direct datagrams) and the close, as docs/rudp.md's
//! state tables say.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::time::Duration;

use crate::Instant;
use crate::congestion::{AckSample, Controller, ControllerParams};
use crate::rtt::RttEstimator;
use crate::rudp::config::MESSAGE_OVERHEAD;
use crate::rudp::reassembly::{Fragment, Reassembly};
use crate::rudp::received::{Arrival, Received};
use crate::rudp::sender::Sender;
use crate::rudp::{
    CloseError, CloseReason, Config, ConnectionStats, RecvError, SendDirectError, SendError,
};
use crate::wire::rudp::{
    CLOSE_LEN, COOKIE_LEN, CloseCode, ConnectAck, DATA_ACK_LEN, Datagram, MAX_RANGES,
    MAX_REASON_LEN, Packet, RANGE_LEN, REPEAT_LEN, Ranges,
};

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum State {
    /// The starter's handshake is under way.
    Connecting,
    /// Messages flow both ways.
    Established,
    /// The connection ended; unread messages may remain.
    Closed,
}

/// What a connection tells its endpoint.
#[derive(Clone, Debug, Eq, PartialEq)]
pub(crate) enum ConnEvent {
    Connected,
    Readable,
    Direct,
    Writable,
    Flushed,
    Closed(CloseReason),
}

#[derive(Debug)]
enum Phase {
    Connecting {
        cookie: Option<[u8; COOKIE_LEN]>,
        attempts: u32,
        resend_at: Instant,
        deadline: Instant,
        /// When the last CONNECT went, and whether any CONNECT was sent twice (then no
        /// round-trip sample is taken: Karn's rule).
        sent_at: Option<Instant>,
        retransmitted: bool,
    },
    Established,
    Closed {
        /// The id is remembered (and late packets answered) until then.
        until: Instant,
        /// When our CLOSE goes out again unasked, and how many more times.
        repeat_at: Option<Instant>,
        repeats: u32,
        interval: Duration,
    },
}

/// Most PING-ACKs owed at once; further PINGs before we answer are answered by these.
const MAX_PING_ACKS: usize = 4;
/// How many times a CLOSE is sent again unasked, a timeout apart, besides the first
/// transmission and the answers to the peer's late packets: there is no acknowledgement of a
/// CLOSE, and a peer that missed it would otherwise learn of it only at its next PING.
const CLOSE_REPEATS: u32 = 2;
/// The smallest reordering window of the loss detection.
const MIN_REORDER: Duration = Duration::from_micros(250);
/// Consecutive probe timeouts after which everything in flight is declared lost and the
/// congestion window collapses (RFC 9002's persistent congestion).
const PERSISTENT_CONGESTION: u32 = 3;
/// How long a direct datagram counts against the congestion window before any round-trip
/// sample exists.
const DIRECT_HOLD_DEFAULT: Duration = Duration::from_millis(100);

/// One connection. Driven by its [`Endpoint`](crate::rudp::Endpoint), which routes packets
/// to it by id after checking the peer's address.
#[derive(Debug)]
pub(crate) struct Connection<P> {
    pub(crate) peer: P,
    pub(crate) recv_id: u64,
    /// The peer's receive id: 0 while a starter is connecting.
    pub(crate) remote_id: u64,
    config: Arc<Config>,
    phase: Phase,
    send_connect: bool,
    send_accept: bool,
    /// Set when a starter's handshake completed, until the endpoint indexed `remote_id`.
    pub(crate) newly_established: bool,
    /// An accepted connection's id is remembered at least until then, closed or not: till
    /// then a late copy of the starter's CONNECT still has a valid cookie, and would open a
    /// second connection sending to the same starter connection.
    remember_until: Instant,
    peer_max_message: u32,
    peer_window: usize,
    sender: Sender,
    reassembly: Reassembly,
    received: Received,
    rtt: RttEstimator,
    /// Consecutive probe timeouts: the timeout doubles with each.
    backoff: u32,
    /// Packets that may go beyond the congestion window: the probes of a probe timeout.
    probes: u32,
    /// When the probe timeout last fired (until something is acknowledged): the next one
    /// counts from there, so a probe that could not go out does not fire again at once.
    last_probe: Option<Instant>,
    cc: Box<dyn Controller>,
    ack_pending: u32,
    ack_now: bool,
    first_unacked_at: Instant,
    largest_at: Instant,
    last_window: usize,
    /// Packet numbers up to this one have been checked for gaps (and REPEATed).
    repeat_through: Option<u64>,
    repeat: Vec<(u64, u32)>,
    last_heard: Instant,
    unanswered: u32,
    ping_id: u64,
    ping_out: bool,
    ping_acks: VecDeque<u64>,
    probe_at: Option<Instant>,
    probe: bool,
    direct_out: VecDeque<Vec<u8>>,
    direct_in: VecDeque<Vec<u8>>,
    direct_flight: VecDeque<(Instant, usize)>,
    direct_in_flight: usize,
    close_out: bool,
    /// The CLOSE we sent, repeated in answer to the peer's late packets: the code, the
    /// reason, and whether a packet asked for it again (with or without the reason).
    close_sent: Option<(CloseCode, String)>,
    resend_close: Option<bool>,
    write_blocked: bool,
    direct_blocked: bool,
    flushed: bool,
    events: VecDeque<ConnEvent>,
    stats: ConnectionStats,
}

impl<P> Connection<P> {
    fn new(peer: P, recv_id: u64, remote_id: u64, config: Arc<Config>, now: Instant) -> Self {
        let cost_per_packet = config.fragment_size() + MESSAGE_OVERHEAD;
        let cc = config.congestion().build(ControllerParams {
            max_payload: cost_per_packet,
            max_window: config.send_buffer(),
        });
        let rtt =
            RttEstimator::new(config.initial_rto(), config.min_rto(), config.delivery_timeout());
        Self {
            peer,
            recv_id,
            remote_id,
            phase: Phase::Established,
            send_connect: false,
            send_accept: false,
            newly_established: false,
            remember_until: now,
            peer_max_message: 0,
            peer_window: 0,
            sender: Sender::new(config.fragment_size()),
            reassembly: Reassembly::new(config.reassembly_memory(), config.max_message()),
            received: Received::default(),
            rtt,
            backoff: 0,
            probes: 0,
            last_probe: None,
            cc,
            ack_pending: 0,
            ack_now: false,
            first_unacked_at: now,
            largest_at: now,
            last_window: config.reassembly_memory(),
            repeat_through: None,
            repeat: Vec::new(),
            last_heard: now,
            unanswered: 0,
            ping_id: 0,
            ping_out: false,
            ping_acks: VecDeque::new(),
            probe_at: None,
            probe: false,
            direct_out: VecDeque::new(),
            direct_in: VecDeque::new(),
            direct_flight: VecDeque::new(),
            direct_in_flight: 0,
            close_out: false,
            close_sent: None,
            resend_close: None,
            write_blocked: false,
            direct_blocked: false,
            flushed: true,
            events: VecDeque::new(),
            stats: ConnectionStats::default(),
            config,
        }
    }

    /// A starter's connection: the CONNECT goes out with the next transmit.
    pub(crate) fn connect(peer: P, recv_id: u64, config: Arc<Config>, now: Instant) -> Self {
        let mut c = Self::new(peer, recv_id, 0, config, now);
        c.phase = Phase::Connecting {
            cookie: None,
            attempts: 0,
            resend_at: now + c.config.initial_rto(),
            deadline: now + c.config.handshake_timeout(),
            sent_at: None,
            retransmitted: false,
        };
        c.send_connect = true;
        c
    }

    /// A listener's connection, accepted: the CONNECT-ACK goes out with the next transmit.
    pub(crate) fn accepted(
        peer: P,
        recv_id: u64,
        remote_id: u64,
        peer_max_message: u32,
        peer_window: u32,
        config: Arc<Config>,
        now: Instant,
    ) -> Self {
        let mut c = Self::new(peer, recv_id, remote_id, config, now);
        // Cookies are checked in whole seconds: valid up to a second beyond their lifetime.
        c.remember_until = now + c.config.cookie_lifetime() + Duration::from_secs(1);
        c.peer_max_message = peer_max_message;
        c.peer_window = peer_window as usize;
        c.send_accept = true;
        c
    }

    pub(crate) fn state(&self) -> State {
        match self.phase {
            Phase::Connecting { .. } => State::Connecting,
            Phase::Established => State::Established,
            Phase::Closed { .. } => State::Closed,
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed { .. })
    }

    pub(crate) fn poll_event(&mut self) -> Option<ConnEvent> {
        self.events.pop_front()
    }

    pub(crate) fn stats(&self) -> ConnectionStats {
        ConnectionStats {
            rtt: self.rtt.smoothed(),
            rto: self.rto(),
            cwnd: self.cc.window(),
            peer_window: self.peer_window,
            in_flight: self.sender.in_flight() + self.direct_in_flight,
            ..self.stats
        }
    }

    /// The retransmission (probe) timeout now: the estimator's, backed off, plus the
    /// longest the peer may delay an acknowledgement, never above `delivery_timeout`.
    fn rto(&self) -> Duration {
        (self.rtt.backed_off_rto(self.backoff) + self.config.ack_delay_max())
            .min(self.config.delivery_timeout())
    }

    /// When the probe timeout fires: a timeout after the oldest packet in flight went, or
    /// after the last probe timeout.
    fn probe_deadline(&self) -> Option<Instant> {
        let oldest = self.sender.oldest_in_flight()?;
        Some(self.last_probe.map_or(oldest, |p| p.max(oldest)) + self.rto())
    }

    /// How long a packet may be overtaken by later ones before it counts as lost: a
    /// quarter of the smallest round trip (RACK's default), at least 250 µs.
    fn reorder_window(&self) -> Duration {
        self.rtt.min().map_or(self.config.initial_rto() / 4, |m| (m / 4).max(MIN_REORDER))
    }

    // ---- application commands -------------------------------------------------------

    /// The largest message `send` takes now (0 before the handshake finished).
    pub(crate) fn max_message(&self) -> usize {
        match self.phase {
            Phase::Established => self.config.max_send_message(self.peer_max_message),
            _ => 0,
        }
    }

    pub(crate) fn send(&mut self, message: &[u8]) -> Result<u64, SendError> {
        match self.phase {
            Phase::Connecting { .. } => return Err(SendError::NotConnected),
            Phase::Closed { .. } => return Err(SendError::Closed),
            Phase::Established => {}
        }
        let max = self.max_message();
        if message.len() > max {
            return Err(SendError::TooLarge { len: message.len(), max });
        }
        let queued = self.sender.queued();
        if queued > 0 && queued + message.len() + MESSAGE_OVERHEAD > self.config.send_buffer() {
            self.write_blocked = true;
            return Err(SendError::Blocked);
        }
        self.stats.messages_sent += 1;
        self.stats.bytes_sent += message.len() as u64;
        self.flushed = false;
        Ok(self.sender.push(message))
    }

    /// Bytes of message `send` would take now.
    pub(crate) fn writable(&self) -> usize {
        if !matches!(self.phase, Phase::Established) {
            return 0;
        }
        let queued = self.sender.queued();
        if queued == 0 {
            return self.max_message();
        }
        (self.config.send_buffer().saturating_sub(queued + MESSAGE_OVERHEAD))
            .min(self.max_message())
    }

    pub(crate) fn recv(&mut self) -> Result<Vec<u8>, RecvError> {
        match self.reassembly.pop() {
            Some(message) => {
                self.stats.bytes_received += message.len() as u64;
                self.maybe_window_update();
                Ok(message)
            }
            None if self.is_closed() => Err(RecvError::Closed),
            None => Err(RecvError::Blocked),
        }
    }

    pub(crate) fn readable(&self) -> usize {
        self.reassembly.readable()
    }

    pub(crate) fn send_direct(&mut self, payload: &[u8]) -> Result<(), SendDirectError> {
        match self.phase {
            Phase::Connecting { .. } => return Err(SendDirectError::NotConnected),
            Phase::Closed { .. } => return Err(SendDirectError::Closed),
            Phase::Established => {}
        }
        let max = self.config.max_direct();
        if payload.len() > max {
            return Err(SendDirectError::TooLarge { len: payload.len(), max });
        }
        if self.direct_out.len() >= self.config.direct_queue() {
            self.direct_blocked = true;
            return Err(SendDirectError::Blocked);
        }
        self.direct_out.push_back(payload.to_vec());
        Ok(())
    }

    pub(crate) fn recv_direct(&mut self) -> Result<Vec<u8>, RecvError> {
        match self.direct_in.pop_front() {
            Some(payload) => Ok(payload),
            None if self.is_closed() => Err(RecvError::Closed),
            None => Err(RecvError::Blocked),
        }
    }

    pub(crate) fn is_flushed(&self) -> bool {
        matches!(self.phase, Phase::Established) && self.sender.is_flushed()
    }

    /// The longest reason `close` accepts.
    pub(crate) fn max_reason(&self) -> usize {
        MAX_REASON_LEN.min(self.config.datagram_size() - CLOSE_LEN)
    }

    pub(crate) fn close(
        &mut self,
        now: Instant,
        code: CloseCode,
        reason: &str,
    ) -> Result<(), CloseError> {
        if self.is_closed() {
            return Err(CloseError::Closed);
        }
        match code {
            CloseCode::Application(c) if c < CloseCode::APPLICATION || c == 5 => {
                return Err(CloseError::ReservedCode(c));
            }
            // Code 5 tells the peer we have no such connection: only the endpoint says that.
            CloseCode::UnknownConnection => return Err(CloseError::ReservedCode(5)),
            _ => {}
        }
        let max = self.max_reason();
        if reason.len() > max {
            return Err(CloseError::ReasonTooLong { len: reason.len(), max });
        }
        self.end(now, CloseReason::Local { code }, Some((code, String::from(reason))));
        Ok(())
    }

    /// Ends the connection; `close` is the CLOSE to send, if any.
    fn end(&mut self, now: Instant, reason: CloseReason, close: Option<(CloseCode, String)>) {
        if self.is_closed() {
            return;
        }
        let linger = match (&self.phase, &close) {
            // The peer does not know us yet (or told us it is gone): nothing to answer.
            (Phase::Connecting { .. }, _) | (_, None) => Duration::ZERO,
            // The peer may still be there: its id is remembered for both reasons.
            _ => self.config.close_linger().max(self.remember_until.saturating_duration_since(now)),
        };
        // A starter without the listener's id cannot address a CLOSE.
        let close = if self.remote_id == 0 { None } else { close };
        let interval = self.rto();
        let repeats = if close.is_some() { CLOSE_REPEATS } else { 0 };
        self.phase = Phase::Closed {
            until: now + linger.max(interval.saturating_mul(CLOSE_REPEATS + 1)),
            repeat_at: (repeats > 0).then(|| now + interval),
            repeats,
            interval,
        };
        self.close_out = close.is_some();
        self.close_sent = close;
        self.sender.clear();
        self.direct_out.clear();
        self.direct_flight.clear();
        self.direct_in_flight = 0;
        self.ack_pending = 0;
        self.ack_now = false;
        self.repeat.clear();
        self.ping_out = false;
        self.ping_acks.clear();
        self.send_accept = false;
        self.send_connect = false;
        self.events.push_back(ConnEvent::Closed(reason));
    }

    /// Closes because the peer broke a rule (code 2) or a limit (code 3).
    fn fail(&mut self, now: Instant, reason: CloseReason) {
        let text = match &reason {
            CloseReason::ProtocolViolation(what) | CloseReason::LimitExceeded(what) => *what,
            _ => "",
        };
        // The CLOSE carries the reason's own code (none goes for a reason without one).
        let close = reason.code().map(|code| (code, String::from(text)));
        self.end(now, reason, close);
    }

    /// The endpoint saw this starter's CONNECT again (its CONNECT-ACK was lost).
    pub(crate) fn resend_accept(&mut self) {
        if matches!(self.phase, Phase::Established) && self.remote_id != 0 {
            self.send_accept = true;
        }
    }

    /// The peer answered a packet with CLOSE code 5: it no longer knows this connection.
    pub(crate) fn handle_unknown(&mut self, now: Instant) {
        self.end(
            now,
            CloseReason::Peer { code: CloseCode::UnknownConnection, reason: String::new() },
            None,
        );
    }

    /// Whether the connection is over and nothing of it is left to read or send.
    pub(crate) fn is_removable(&self, now: Instant) -> bool {
        match self.phase {
            Phase::Closed { until, .. } => {
                now >= until
                    && !self.close_out
                    && self.resend_close.is_none()
                    && self.reassembly.readable() == 0
                    && self.direct_in.is_empty()
            }
            _ => false,
        }
    }

    // ---- network input --------------------------------------------------------------

    /// Handles one packet routed to this connection (its `dst_id` and address checked).
    pub(crate) fn handle_packet(&mut self, now: Instant, packet: &Packet<'_>, datagram_len: usize) {
        match self.phase {
            Phase::Closed { .. } => self.handle_closed(packet, datagram_len),
            Phase::Connecting { .. } => self.handle_connecting(now, packet),
            Phase::Established => {
                self.last_heard = now;
                self.unanswered = 0;
                self.stats.packets_received += 1;
                self.handle_established(now, packet);
            }
        }
        self.after_input();
    }

    fn handle_closed(&mut self, packet: &Packet<'_>, datagram_len: usize) {
        if matches!(packet, Packet::Close { .. }) {
            return;
        }
        let Some((_, reason)) = &self.close_sent else { return };
        // Never answer with more bytes than the packet had.
        if datagram_len >= CLOSE_LEN + reason.len() {
            self.resend_close = Some(true);
        } else if datagram_len >= CLOSE_LEN && self.resend_close.is_none() {
            self.resend_close = Some(false);
        }
    }

    fn handle_connecting(&mut self, now: Instant, packet: &Packet<'_>) {
        let Phase::Connecting { cookie, resend_at, sent_at, retransmitted, .. } = &mut self.phase
        else {
            return;
        };
        let sample = match (*sent_at, *retransmitted) {
            (Some(at), false) => Some(now.saturating_duration_since(at)),
            _ => None,
        };
        match *packet {
            Packet::ConnectAck(ConnectAck::Challenge { cookie: echoed }) => {
                *cookie = Some(*echoed);
                *resend_at = now + self.rtt.rto().max(self.config.initial_rto());
                self.send_connect = true;
                if let Some(rtt) = sample {
                    self.rtt.on_sample(rtt);
                }
            }
            Packet::ConnectAck(ConnectAck::Accepted { src_id, max_message, window }) => {
                if let Some(rtt) = sample {
                    self.rtt.on_sample(rtt);
                }
                self.remote_id = src_id;
                self.peer_max_message = max_message;
                self.peer_window = window as usize;
                self.phase = Phase::Established;
                self.send_connect = false;
                self.newly_established = true;
                self.last_heard = now;
                self.stats.packets_received += 1;
                self.events.push_back(ConnEvent::Connected);
            }
            Packet::Close { code, reason } => {
                self.end(now, CloseReason::Peer { code, reason: String::from(reason) }, None);
            }
            _ => self.stats.dropped_invalid += 1,
        }
    }

    fn handle_established(&mut self, now: Instant, packet: &Packet<'_>) {
        match *packet {
            Packet::Data { packet_number, message_number, message_len, offset, fragment } => {
                self.on_data(now, packet_number, message_number, message_len, offset, fragment);
            }
            Packet::DataAck { delivered, largest, ack_delay, window, ranges } => {
                self.on_ack(now, delivered, largest, ack_delay, window, ranges);
            }
            Packet::Repeat { ranges } => {
                self.stats.repeats_received += 1;
                let rtt = self.rtt.smoothed().unwrap_or(self.config.initial_rto());
                let reorder = self.reorder_window();
                if self.sender.on_repeat(now, ranges.iter(), rtt, reorder) > 0 {
                    self.cc.on_loss(now);
                }
            }
            Packet::Ping { ping_id } => {
                if self.ping_acks.len() < MAX_PING_ACKS {
                    self.ping_acks.push_back(ping_id);
                }
            }
            Packet::PingAck { ping_id } => {
                if ping_id != self.ping_id {
                    self.stats.dropped_invalid += 1;
                }
            }
            Packet::Close { code, reason } => {
                self.end(now, CloseReason::Peer { code, reason: String::from(reason) }, None);
            }
            Packet::Direct { payload } => {
                if self.direct_in.len() < self.config.direct_queue() {
                    if self.direct_in.is_empty() {
                        self.events.push_back(ConnEvent::Direct);
                    }
                    self.direct_in.push_back(payload.to_vec());
                    self.stats.direct_received += 1;
                } else {
                    self.stats.direct_dropped += 1;
                }
            }
            Packet::ConnectAck(ConnectAck::Accepted { src_id, .. }) if src_id == self.remote_id => {
                // Our CONNECT was answered twice: harmless.
            }
            Packet::ConnectAck(_) | Packet::Connect { .. } => self.stats.dropped_invalid += 1,
        }
    }

    fn on_data(
        &mut self,
        now: Instant,
        pn: u64,
        message: u64,
        message_len: u32,
        offset: u32,
        fragment: &[u8],
    ) {
        let readable_before = self.reassembly.readable();
        match self.reassembly.insert(message, message_len, offset, fragment) {
            Fragment::NoMemory => {
                // Not acknowledged: the sender repeats it. Tell it our window now.
                self.stats.dropped_memory += 1;
                self.ack_now = self.received.largest().is_some();
                return;
            }
            Fragment::Violation(what) => {
                self.fail(now, CloseReason::ProtocolViolation(what));
                return;
            }
            Fragment::TooLarge => {
                self.fail(now, CloseReason::LimitExceeded("message larger than max_message"));
                return;
            }
            Fragment::Duplicate => {
                self.stats.duplicates += 1;
                self.ack_now = true;
            }
            Fragment::Stored { delivered } => {
                self.stats.messages_received += delivered as u64;
                if readable_before == 0 && delivered > 0 {
                    self.events.push_back(ConnEvent::Readable);
                }
            }
        }
        let largest_before = self.received.largest();
        match self.received.insert(pn) {
            Arrival::InOrder => {}
            Arrival::AfterGap | Arrival::Late => self.ack_now = true,
            Arrival::Duplicate => self.ack_now = true,
        }
        if self.ack_pending == 0 {
            self.first_unacked_at = now;
        }
        self.ack_pending += 1;
        let largest = self.received.largest();
        if largest != largest_before {
            self.largest_at = now;
            self.find_gaps();
        }
    }

    /// Queues a REPEAT for packet numbers missing `packet_threshold` or more below the
    /// largest received, each gap once.
    fn find_gaps(&mut self) {
        let Some(hi) =
            self.received.largest().and_then(|l| l.checked_sub(self.config.packet_threshold()))
        else {
            return;
        };
        let lo = self.repeat_through.map_or(0, |r| r + 1);
        if lo > hi {
            return;
        }
        self.repeat_through = Some(hi);
        let mut ranges = [(0, 0); MAX_RANGES];
        let n = self.received.missing(lo, hi, &mut ranges);
        if n == 0 {
            return;
        }
        // Merge with a REPEAT not yet sent: the new gaps are above the old ones.
        let mut merged: Vec<(u64, u32)> = ranges[..n].to_vec();
        merged.append(&mut self.repeat);
        merged.truncate(self.ranges_that_fit(REPEAT_LEN));
        self.repeat = merged;
    }

    fn on_ack(
        &mut self,
        now: Instant,
        delivered: u64,
        largest: u64,
        ack_delay: u32,
        window: u32,
        ranges: Ranges<'_>,
    ) {
        if largest >= self.sender_next_pn() || delivered > self.sender.sent_messages() {
            self.stats.dropped_invalid += 1; // acknowledges what was never sent
            return;
        }
        self.peer_window = window as usize;
        let ack_delay = Duration::from_micros(u64::from(ack_delay));
        let reorder = self.reorder_window();
        let outcome = self.sender.on_ack(now, largest, ack_delay, ranges.iter(), reorder);
        let acked = outcome.acked + self.sender.on_delivered(delivered);
        if let Some(rtt) = outcome.rtt {
            self.rtt.on_sample(rtt);
        }
        if acked > 0 {
            self.backoff = 0;
            self.probes = 0;
            self.last_probe = None;
            // No one-way timestamps in rudp: a delay-based controller (LEDBAT) steers by the
            // round trip beyond the smallest one, and without it would never grow.
            let queuing_delay =
                outcome.rtt.zip(self.rtt.min()).map(|(rtt, min)| rtt.saturating_sub(min));
            self.cc.on_ack(
                now,
                &AckSample { bytes_acked: acked, queuing_delay, min_rtt: outcome.rtt },
            );
        }
        if outcome.lost > 0 {
            self.cc.on_loss(now);
        }
        if self.peer_window > 0 {
            self.probe_at = None;
        }
    }

    fn sender_next_pn(&self) -> u64 {
        self.sender.next_pn()
    }

    /// Events that follow from any change: room to write again, everything acknowledged.
    fn after_input(&mut self) {
        if !matches!(self.phase, Phase::Established) {
            return;
        }
        if self.write_blocked && self.sender.queued() < self.config.send_buffer() / 2 {
            self.write_blocked = false;
            self.events.push_back(ConnEvent::Writable);
        }
        if !self.flushed && self.sender.is_flushed() {
            self.flushed = true;
            self.events.push_back(ConnEvent::Flushed);
        }
    }

    /// After the application received a message: if the window had closed and has opened
    /// well, say so without waiting for the next DATA.
    fn maybe_window_update(&mut self) {
        let window = self.reassembly.window();
        let step = (self.config.reassembly_memory() / 4).max(2 * self.config.datagram_size());
        if window >= self.last_window.saturating_add(step) && self.received.largest().is_some() {
            self.ack_now = true;
        }
    }

    // ---- timers ---------------------------------------------------------------------

    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Connecting { resend_at, deadline, .. } => Some(resend_at.min(deadline)),
            Phase::Closed { until, repeat_at, .. } => {
                Some(repeat_at.map_or(until, |r| r.min(until)))
            }
            Phase::Established => {
                let probe = self.probe_deadline();
                let loss = self.sender.loss_deadline();
                let ack = (self.ack_pending > 0)
                    .then(|| self.first_unacked_at + self.config.ack_delay_max());
                let ping = Some(
                    self.last_heard
                        + self.config.ping_interval().saturating_mul(self.unanswered + 1),
                );
                let direct = (!self.direct_out.is_empty())
                    .then(|| self.direct_flight.front().map(|&(t, _)| t))
                    .flatten();
                [probe, loss, ack, ping, self.probe_at, direct].into_iter().flatten().min()
            }
        }
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        match &mut self.phase {
            Phase::Connecting { attempts, resend_at, deadline, retransmitted, .. } => {
                if now >= *deadline {
                    self.end(now, CloseReason::HandshakeTimeout, None);
                } else if now >= *resend_at {
                    *attempts += 1;
                    *retransmitted = true;
                    let backoff = 1u32.checked_shl((*attempts).min(16)).unwrap_or(u32::MAX);
                    *resend_at =
                        (now + self.config.initial_rto().saturating_mul(backoff)).min(*deadline);
                    self.send_connect = true;
                }
            }
            Phase::Closed { repeat_at, repeats, interval, .. } => {
                if repeat_at.is_some_and(|t| t <= now) {
                    *repeats -= 1;
                    *repeat_at = (*repeats > 0).then(|| now + *interval);
                    self.close_out = true;
                }
            }
            Phase::Established => self.established_timeout(now),
        }
    }

    fn established_timeout(&mut self, now: Instant) {
        if self.sender.loss_deadline().is_some_and(|t| t <= now) {
            let reorder = self.reorder_window();
            if self.sender.detect_losses(now, reorder) > 0 {
                self.cc.on_loss(now);
            }
        }
        if self.probe_deadline().is_some_and(|t| t <= now) {
            self.last_probe = Some(now);
            // No acknowledgement for a whole timeout: probe with the oldest fragment (its
            // acknowledgement, or that of the probe, shows what was lost) rather than
            // declaring everything lost, which a late acknowledgement would make spurious.
            self.stats.timeouts += 1;
            self.backoff = (self.backoff + 1).min(16);
            if self.peer_window == 0 {
                // The receiver has no room: its silence is flow control, not congestion.
                // What is in flight goes back to the queue (it was dropped, or will be
                // repeated) and the zero-window probe takes over; the congestion window
                // stays as it was.
                self.sender.on_timeout();
            } else if self.backoff >= PERSISTENT_CONGESTION {
                self.sender.on_timeout();
                self.cc.on_timeout(now, false);
            } else if self.sender.probe() {
                self.probes = 2;
            }
        }
        let silent_until =
            self.last_heard + self.config.ping_interval().saturating_mul(self.unanswered + 1);
        if now >= silent_until {
            if self.unanswered >= self.config.ping_packet_count() {
                let unanswered = self.unanswered;
                let text = alloc::format!("peer silent: {unanswered} pings unanswered");
                self.end(
                    now,
                    CloseReason::PingTimeout { unanswered },
                    Some((CloseCode::PingTimeout, text)),
                );
                return;
            }
            self.unanswered += 1;
            self.ping_id = self.ping_id.wrapping_add(1);
            self.ping_out = true;
        }
        if self.probe_at.is_some_and(|t| t <= now) {
            self.probe_at = None;
            self.probe = true;
        }
    }

    // ---- output ---------------------------------------------------------------------

    /// Writes the next packet into `buf`; `false` when there is nothing to send now.
    pub(crate) fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> bool {
        let sent = match self.phase {
            Phase::Closed { .. } => self.transmit_close(buf),
            Phase::Connecting { .. } => self.transmit_connect(now, buf),
            Phase::Established => self.transmit_established(now, buf),
        };
        if sent {
            self.stats.packets_sent += 1;
        }
        sent
    }

    fn transmit_close(&mut self, buf: &mut Vec<u8>) -> bool {
        let Some((code, reason)) = &self.close_sent else { return false };
        let reason = if core::mem::take(&mut self.close_out) {
            reason.as_str()
        } else {
            match self.resend_close.take() {
                Some(true) => reason.as_str(),
                Some(false) => "",
                None => return false,
            }
        };
        let packet = Packet::Close { code: *code, reason };
        Datagram { dst_id: self.remote_id, packet }.emit(buf);
        true
    }

    fn transmit_connect(&mut self, now: Instant, buf: &mut Vec<u8>) -> bool {
        if !core::mem::take(&mut self.send_connect) {
            return false;
        }
        let window = self.window_to_advertise();
        let Phase::Connecting { cookie, sent_at, .. } = &mut self.phase else { return false };
        *sent_at = Some(now);
        let packet = Packet::Connect {
            src_id: self.recv_id,
            max_message: self.config.max_message(),
            window,
            cookie: cookie.as_ref(),
        };
        Datagram { dst_id: 0, packet }.emit(buf);
        true
    }

    fn window_to_advertise(&self) -> u32 {
        u32::try_from(self.reassembly.window()).unwrap_or(u32::MAX)
    }

    fn transmit_established(&mut self, now: Instant, buf: &mut Vec<u8>) -> bool {
        let dst_id = self.remote_id;
        if core::mem::take(&mut self.send_accept) {
            let packet = Packet::ConnectAck(ConnectAck::Accepted {
                src_id: self.recv_id,
                max_message: self.config.max_message(),
                window: self.window_to_advertise(),
            });
            Datagram { dst_id, packet }.emit(buf);
            return true;
        }
        if let Some(ping_id) = self.ping_acks.pop_front() {
            Datagram { dst_id, packet: Packet::PingAck { ping_id } }.emit(buf);
            return true;
        }
        if core::mem::take(&mut self.ping_out) {
            self.stats.pings_sent += 1;
            Datagram { dst_id, packet: Packet::Ping { ping_id: self.ping_id } }.emit(buf);
            return true;
        }
        if !self.repeat.is_empty() {
            let pairs = core::mem::take(&mut self.repeat);
            // Built from disjoint gaps, highest first; a bug otherwise, so drop rather than panic.
            if let Ok(ranges) = Ranges::from_pairs(&pairs) {
                self.stats.repeats_sent += 1;
                Datagram { dst_id, packet: Packet::Repeat { ranges } }.emit(buf);
                self.repeat = pairs;
                self.repeat.clear();
                return true;
            }
            self.repeat = pairs;
            self.repeat.clear();
        }
        if self.ack_due(now) {
            self.emit_ack(now, buf);
            return true;
        }
        if self.transmit_direct(now, buf) {
            return true;
        }
        self.transmit_data(now, buf)
    }

    fn ack_due(&self, now: Instant) -> bool {
        if self.received.largest().is_none() {
            return false;
        }
        self.ack_now
            || self.ack_pending >= 2
            || (self.ack_pending > 0 && now >= self.first_unacked_at + self.config.ack_delay_max())
    }

    fn emit_ack(&mut self, now: Instant, buf: &mut Vec<u8>) {
        let mut pairs = [(0, 0); MAX_RANGES];
        // The newest first: those left out are the oldest.
        let n = self.received.ack_ranges(&mut pairs).min(self.ranges_that_fit(DATA_ACK_LEN));
        let largest = self.received.largest().unwrap_or(0);
        let window = self.window_to_advertise();
        self.last_window = window as usize;
        let delay = now.saturating_duration_since(self.largest_at).as_micros();
        let packet = match Ranges::from_pairs(&pairs[..n]) {
            Ok(ranges) => Packet::DataAck {
                delivered: self.reassembly.delivered(),
                largest,
                ack_delay: u32::try_from(delay).unwrap_or(u32::MAX),
                window,
                ranges,
            },
            Err(_) => return, // the ranges are built disjoint: unreachable
        };
        Datagram { dst_id: self.remote_id, packet }.emit(buf);
        self.ack_pending = 0;
        self.ack_now = false;
    }

    /// How many ranges fit a DATA-ACK or REPEAT (`fixed` bytes before its ranges) within
    /// `datagram_size`: [`MAX_RANGES`] unless datagrams are small.
    fn ranges_that_fit(&self, fixed: usize) -> usize {
        (self.config.datagram_size().saturating_sub(fixed) / RANGE_LEN).min(MAX_RANGES)
    }

    /// How long a direct datagram counts against the congestion window.
    fn direct_hold(&self) -> Duration {
        self.rtt.smoothed().unwrap_or(DIRECT_HOLD_DEFAULT)
    }

    fn transmit_direct(&mut self, now: Instant, buf: &mut Vec<u8>) -> bool {
        while self.direct_flight.front().is_some_and(|&(t, _)| t <= now) {
            if let Some((_, cost)) = self.direct_flight.pop_front() {
                self.direct_in_flight -= cost;
            }
        }
        let Some(payload) = self.direct_out.front() else { return false };
        let cost = payload.len() + MESSAGE_OVERHEAD;
        let in_flight = self.sender.in_flight() + self.direct_in_flight;
        if in_flight > 0 && in_flight + cost > self.cc.window() {
            return false;
        }
        Datagram { dst_id: self.remote_id, packet: Packet::Direct { payload } }.emit(buf);
        self.direct_out.pop_front();
        self.direct_flight.push_back((now + self.direct_hold(), cost));
        self.direct_in_flight += cost;
        self.stats.direct_sent += 1;
        if self.direct_blocked {
            self.direct_blocked = false;
            self.events.push_back(ConnEvent::Writable);
        }
        true
    }

    fn transmit_data(&mut self, now: Instant, buf: &mut Vec<u8>) -> bool {
        let Some(next) = self.sender.peek() else { return false };
        let cost = self.sender.cost(next);
        let data_in_flight = self.sender.in_flight();
        let in_flight = data_in_flight + self.direct_in_flight;
        let probe = self.probes > 0;
        if in_flight > 0 && in_flight + cost > self.cc.window() && !probe {
            self.cc.on_window_full(now);
            return false;
        }
        let window_ok = if data_in_flight == 0 {
            self.peer_window > 0 || self.probe
        } else {
            data_in_flight + cost <= self.peer_window
        };
        if !window_ok {
            if data_in_flight == 0 && self.probe_at.is_none() {
                self.probe_at = Some(now + self.rto());
            }
            return false;
        }
        self.probe = false;
        self.probes = self.probes.saturating_sub(1);
        let Some((message_len, offset, fragment)) =
            self.sender.fragment(next.message, next.fragment)
        else {
            return false;
        };
        let pn = self.sender.next_pn();
        let packet = Packet::Data {
            packet_number: pn,
            message_number: next.message,
            message_len,
            offset,
            fragment,
        };
        Datagram { dst_id: self.remote_id, packet }.emit(buf);
        self.sender.sent(next, now);
        self.stats.data_sent += 1;
        if next.retransmit {
            self.stats.retransmits += 1;
        }
        true
    }
}
