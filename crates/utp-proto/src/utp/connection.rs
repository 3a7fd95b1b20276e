//! One uTP connection: handshake, reliable ordered delivery, congestion control, close.
//!
//! A `Connection` is owned by its [`Endpoint`](crate::utp::Endpoint), which feeds it the
//! packets addressed to it, fires its timers and asks it for packets to send. It follows
//! libutp's rules wherever they decide interoperation; each place where it may differ is a
//! [`Config`] setting.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::time::Duration;

use crate::Instant;
use crate::congestion::{AckSample, Controller, ControllerParams};
use crate::rtt::RttEstimator;
use crate::utp::config::{Config, SynAckSeq};
use crate::utp::delay::{DelayHistory, wrapping_less};
use crate::utp::recv_buffer::{RecvBuffer, Stored};
use crate::utp::send_buffer::{Kind, SendBuffer};
use crate::utp::{ConnectionError, ConnectionStats, ReadError, WriteError};
use crate::wire::utp::{Extension, HEADER_LEN, Header, Packet, PacketType, SelectiveAck, emit};

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum State {
    /// Waiting for a SYN with an id the application chose (Portal `accept_with_id`).
    Listen,
    /// Our SYN is out; waiting for the SYN-ACK.
    SynSent,
    /// We answered a SYN; waiting for the initiator's first DATA (libutp's rule).
    SynRecv,
    /// Data flows.
    Connected,
    /// Over: the application was told how it ended. The state may linger briefly to
    /// acknowledge a retransmitted FIN.
    Closed,
}

/// What a connection tells the endpoint, which adds the handle.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum ConnEvent {
    Connected,
    Readable,
    Writable,
    Closed(Result<(), ConnectionError>),
}

/// `a < b` on the 16-bit sequence circle.
fn seq_less(a: u16, b: u16) -> bool {
    b.wrapping_sub(a) < a.wrapping_sub(b)
}

/// Timestamp differences peers send when they have no sample.
fn is_delay_sample(v: u32) -> bool {
    v != 0 && v != i32::MAX as u32
}

/// One uTP connection's state machine.
#[derive(Debug)]
pub(crate) struct Connection<P> {
    pub(crate) peer: P,
    pub(crate) recv_id: u16,
    pub(crate) send_id: u16,
    config: Arc<Config>,
    max_payload: usize,
    state: State,
    /// The next sequence number to use.
    seq_nr: u16,
    /// The last sequence number received in order.
    ack_nr: u16,
    /// For an acceptor: the initiator's SYN sequence number and our SYN-ACK's.
    syn_seq: Option<(u16, u16)>,
    send: SendBuffer,
    recv: RecvBuffer,
    cc: Box<dyn Controller>,
    rtt: RttEstimator,
    consecutive_timeouts: u32,
    rto_deadline: Option<Instant>,
    dup_acks: u32,
    fast_resend_seq: u16,
    fast_resends: VecDeque<u16>,
    /// The latest send time of any packet known to have arrived (for loss detection).
    delivered_sent_at: Instant,
    /// When to send a tail-loss probe if no acknowledgement comes first.
    probe_deadline: Option<Instant>,
    /// A probe may be armed (cleared when one is sent, set again by an acknowledgement).
    probe_allowed: bool,
    peer_window: usize,
    zero_window_deadline: Option<Instant>,
    eof_seq: Option<u16>,
    eof_reached: bool,
    got_data: bool,
    reply_micro: u32,
    our_delay: DelayHistory,
    their_delay: DelayHistory,
    ack_pending: bool,
    synack_pending: bool,
    keepalive_pending: bool,
    reset_pending: bool,
    fin_requested: bool,
    fin_sent: bool,
    fin_acked: bool,
    /// After a close completed with our FIN unacknowledged (see `check_close_complete`):
    /// when to send it again, how often it was resent, and whether a resend is due.
    fin_resend_at: Option<Instant>,
    fin_resends: u32,
    fin_resend_due: bool,
    close_requested: bool,
    last_sent: Instant,
    last_recv: Instant,
    /// Listen: when the expected SYN is given up on. SynRecv: when the handshake is.
    deadline: Option<Instant>,
    linger_until: Option<Instant>,
    result: Option<Result<(), ConnectionError>>,
    write_blocked: bool,
    read_signaled: bool,
    last_window: usize,
    events: VecDeque<ConnEvent>,
    stats: ConnectionStats,
}

impl<P: Clone> Connection<P> {
    fn new(peer: P, recv_id: u16, send_id: u16, config: Arc<Config>, now: Instant) -> Self {
        let max_payload = config.max_payload();
        let params = ControllerParams { max_payload, max_window: config.send_buffer() };
        Self {
            peer,
            recv_id,
            send_id,
            max_payload,
            state: State::Listen,
            seq_nr: 0,
            ack_nr: 0,
            syn_seq: None,
            send: SendBuffer::new(config.send_buffer()),
            recv: RecvBuffer::new(config.recv_buffer(), usize::from(config.max_reorder_packets())),
            cc: config.congestion().build(params),
            rtt: RttEstimator::new(config.initial_rto(), config.min_rto(), config.max_rto()),
            consecutive_timeouts: 0,
            rto_deadline: None,
            dup_acks: 0,
            fast_resend_seq: 0,
            fast_resends: VecDeque::new(),
            delivered_sent_at: Instant::ZERO,
            probe_deadline: None,
            probe_allowed: true,
            peer_window: config.max_payload(),
            zero_window_deadline: None,
            eof_seq: None,
            eof_reached: false,
            got_data: false,
            reply_micro: 0,
            our_delay: DelayHistory::new(now),
            their_delay: DelayHistory::new(now),
            ack_pending: false,
            synack_pending: false,
            keepalive_pending: false,
            reset_pending: false,
            fin_requested: false,
            fin_sent: false,
            fin_acked: false,
            fin_resend_at: None,
            fin_resends: 0,
            fin_resend_due: false,
            close_requested: false,
            last_sent: now,
            last_recv: now,
            deadline: None,
            linger_until: None,
            result: None,
            write_blocked: false,
            read_signaled: false,
            last_window: 0,
            events: VecDeque::new(),
            stats: ConnectionStats::default(),
            config,
        }
    }

    /// An initiator: queues the SYN (sent by the next `poll_transmit`).
    pub(crate) fn connect(
        peer: P,
        recv_id: u16,
        send_id: u16,
        config: Arc<Config>,
        now: Instant,
        syn_seq: u16,
    ) -> Self {
        let mut c = Self::new(peer, recv_id, send_id, config, now);
        c.state = State::SynSent;
        c.seq_nr = syn_seq.wrapping_add(1);
        c.fast_resend_seq = c.seq_nr;
        c.send.push(syn_seq, Kind::Syn, 0);
        c
    }

    /// An acceptor waiting for a SYN carrying `send_id` (Portal `accept_with_id`).
    pub(crate) fn listen(
        peer: P,
        recv_id: u16,
        send_id: u16,
        config: Arc<Config>,
        now: Instant,
    ) -> Self {
        let mut c = Self::new(peer, recv_id, send_id, config, now);
        c.deadline = Some(now + c.config.expected_id_timeout());
        c
    }

    /// Answers the SYN `syn`: from `Listen` to `SynRecv` (or straight to `Connected` when
    /// the acceptor may send first). `our_seq` is our random initial sequence number.
    pub(crate) fn accept_syn(&mut self, now: Instant, syn: &Header, our_seq: u16) {
        debug_assert_eq!(self.state, State::Listen);
        self.last_recv = now;
        self.ack_nr = syn.seq_nr;
        self.peer_window = syn.wnd_size as usize;
        self.syn_seq = Some((syn.seq_nr, our_seq));
        self.seq_nr = match self.config.synack_seq() {
            SynAckSeq::Libutp => our_seq,
            SynAckSeq::Bep29 => our_seq.wrapping_add(1),
        };
        self.fast_resend_seq = self.seq_nr;
        self.synack_pending = true;
        self.measure_delay(now, syn);
        if self.config.acceptor_sends_first() {
            self.state = State::Connected;
            self.deadline = None;
            self.events.push_back(ConnEvent::Connected);
        } else {
            self.state = State::SynRecv;
            self.deadline = Some(now + self.config.handshake_timeout());
        }
    }

    /// A SYN arrived again for this (accepted) connection: the initiator did not get our
    /// SYN-ACK. Answer it again unless data has flowed or the SYN is a different one.
    pub(crate) fn handle_duplicate_syn(&mut self, syn: &Header) {
        if let Some((their_syn, _)) = self.syn_seq {
            if their_syn == syn.seq_nr
                && self.config.resend_synack()
                && !self.got_data
                && self.result.is_none()
            {
                self.synack_pending = true;
            }
        }
    }

    pub(crate) fn state(&self) -> State {
        self.state
    }

    pub(crate) fn stats(&self) -> ConnectionStats {
        let mut s = self.stats;
        s.rtt = self.rtt.smoothed();
        s.rto = self.rtt.backed_off_rto(self.consecutive_timeouts);
        s.cwnd = self.cc.window();
        s.peer_window = self.peer_window;
        s
    }

    pub(crate) fn poll_event(&mut self) -> Option<ConnEvent> {
        self.events.pop_front()
    }

    /// Whether the application has been told the connection ended.
    pub(crate) fn is_closed(&self) -> bool {
        self.result.is_some()
    }

    /// Whether the endpoint may forget this connection.
    pub(crate) fn is_removable(&self, now: Instant) -> bool {
        self.result.is_some()
            && !self.reset_pending
            && !self.ack_pending
            && !self.fin_resend_due
            && (self.fin_acked || self.fin_resend_at.is_none())
            && self.linger_until.is_none_or(|t| now >= t)
    }

    // ---- application commands ------------------------------------------------------

    pub(crate) fn write(&mut self, data: &[u8]) -> Result<usize, WriteError> {
        if self.result.is_some() {
            return Err(WriteError::Closed);
        }
        if self.fin_requested {
            return Err(WriteError::Finished);
        }
        if data.is_empty() {
            return Ok(0);
        }
        let n = self.send.write(data);
        if n < data.len() {
            self.write_blocked = true;
        }
        if n == 0 { Err(WriteError::Blocked) } else { Ok(n) }
    }

    pub(crate) fn read(&mut self, buf: &mut [u8]) -> Result<usize, ReadError> {
        self.read_signaled = false;
        if self.recv.readable() == 0 {
            if self.eof_reached {
                return Ok(0);
            }
            if self.result.is_some() {
                return Err(ReadError::Closed);
            }
            return Err(ReadError::Blocked);
        }
        let n = self.recv.read(buf);
        // Open the window: tell the peer when it grew by a meaningful amount.
        let window = self.recv.window();
        let opened = window.saturating_sub(self.last_window);
        if (self.last_window < self.max_payload && window >= self.max_payload)
            || opened >= self.config.recv_buffer() / 4
        {
            self.ack_pending = true;
        }
        Ok(n)
    }

    /// Bytes waiting to be read.
    pub(crate) fn readable(&self) -> usize {
        self.recv.readable()
    }

    /// Send-buffer space free for `write`.
    pub(crate) fn writable(&self) -> usize {
        if self.fin_requested || self.result.is_some() { 0 } else { self.send.free() }
    }

    /// Whether everything written (and the FIN, if requested) was acknowledged.
    pub(crate) fn is_flushed(&self) -> bool {
        // A FIN asked for but not yet acknowledged (perhaps not even sent) is not flushed.
        self.send.is_empty() && self.send.unsent() == 0 && (!self.fin_requested || self.fin_acked)
    }

    pub(crate) fn shutdown(&mut self) {
        if self.result.is_none() {
            self.fin_requested = true;
        }
    }

    pub(crate) fn close(&mut self, now: Instant) {
        if self.result.is_some() {
            return;
        }
        self.close_requested = true;
        self.fin_requested = true;
        // From now on arriving data is acknowledged but discarded, including data held
        // behind a gap: delivering it after the gap is filled with nothing would misalign
        // the stream.
        self.recv.discard_held_payloads();
        let nothing_written = self.send.unsent() == 0;
        match self.state {
            // Before the handshake finished with nothing to deliver: just forget it. With
            // data written, the close waits for the handshake and the data, like any other.
            State::Listen | State::SynSent | State::SynRecv if nothing_written => {
                self.finish(now, Ok(()), false);
            }
            _ => self.check_close_complete(now),
        }
    }

    pub(crate) fn reset(&mut self, now: Instant) {
        if self.result.is_some() {
            return;
        }
        if !matches!(self.state, State::Listen) {
            self.reset_pending = true;
        }
        self.finish(now, Err(ConnectionError::LocallyReset), false);
    }

    fn finish(&mut self, now: Instant, result: Result<(), ConnectionError>, linger: bool) {
        if self.result.is_some() {
            return;
        }
        self.result = Some(result);
        self.state = State::Closed;
        if result.is_ok() && self.fin_sent && !self.fin_acked {
            // The close completed early with our FIN in flight: keep it reliable.
            self.arm_fin_resend(now);
        }
        // Unread bytes keep the connection for the linger time even after a failure, so
        // the application can still read what arrived before the end.
        let linger = linger || self.recv.readable() > 0;
        self.linger_until = Some(if linger { now + self.config.time_wait() } else { now });
        self.rto_deadline = None;
        self.deadline = None;
        self.zero_window_deadline = None;
        self.fast_resends.clear();
        self.events.push_back(ConnEvent::Closed(result));
    }

    // ---- network input -------------------------------------------------------------

    /// A `ST_RESET` for this connection.
    pub(crate) fn handle_reset(&mut self, now: Instant) {
        if self.result.is_some() {
            // Lingering after a close: nothing more to say to this peer.
            self.linger_until = Some(now);
            self.ack_pending = false;
            return;
        }
        let result = match self.state {
            State::SynSent => Err(ConnectionError::Refused),
            // The peer finished its stream and we have nothing outstanding: a peer that
            // closed without waiting for our FIN (the Portal one-way FIN) loses nothing.
            _ if self.eof_reached && (self.close_requested || self.is_flushed()) => Ok(()),
            _ => Err(ConnectionError::Reset),
        };
        self.finish(now, result, false);
    }

    /// A packet (not SYN, not RESET) addressed to this connection.
    pub(crate) fn handle_packet(&mut self, now: Instant, packet: &Packet<'_>) {
        let h = *packet.header();
        if let Some(result) = self.result {
            // Lingering after a close: keep following the peer's stream (delivering
            // nothing) so our ACKs cover its FIN.
            if result.is_ok() && matches!(h.packet_type, PacketType::Data | PacketType::Fin) {
                self.process_data(&h, &[]);
                self.ack_pending = true;
            }
            // Our FIN is the last packet we numbered.
            if self.fin_sent && !self.fin_acked && h.ack_nr == self.seq_nr.wrapping_sub(1) {
                self.fin_acked = true;
                self.fin_resend_at = None;
                self.fin_resend_due = false;
            }
            return;
        }
        if self.state == State::Listen || !self.ack_nr_acceptable(h.ack_nr) {
            self.stats.dropped_invalid += 1;
            return;
        }
        if self.state == State::SynSent {
            if h.packet_type != PacketType::State {
                // Data before the SYN-ACK: we cannot tell where the peer's stream starts.
                // It is not acknowledged, so the peer sends it again.
                self.stats.dropped_invalid += 1;
                return;
            }
            self.ack_nr = match self.config.synack_seq() {
                SynAckSeq::Libutp => h.seq_nr.wrapping_sub(1),
                SynAckSeq::Bep29 => h.seq_nr,
            };
        }
        self.last_recv = now;
        self.stats.packets_received += 1;
        self.measure_delay(now, &h);
        self.process_acks(now, packet);

        self.peer_window = h.wnd_size as usize;
        if self.peer_window == 0 {
            if self.zero_window_deadline.is_none() {
                self.zero_window_deadline = Some(now + self.config.zero_window_probe());
            }
        } else {
            self.zero_window_deadline = None;
        }

        match (self.state, h.packet_type) {
            (State::SynSent, PacketType::State) => {
                self.state = State::Connected;
                self.events.push_back(ConnEvent::Connected);
            }
            (State::SynRecv, PacketType::Data | PacketType::Fin) => {
                self.state = State::Connected;
                self.deadline = None;
                self.events.push_back(ConnEvent::Connected);
            }
            _ => {}
        }
        if matches!(h.packet_type, PacketType::Data | PacketType::Fin)
            && self.state == State::Connected
        {
            self.process_data(&h, packet.payload());
        }
        self.check_close_complete(now);
    }

    /// A close completes when the peer acknowledged our FIN, or as soon as the peer has
    /// finished its own stream and acknowledged every byte we wrote: our FIN is then a
    /// courtesy that the peer (which may already be gone, as Portal writers are after their
    /// FIN) need not answer.
    fn check_close_complete(&mut self, now: Instant) {
        if !self.close_requested || self.result.is_some() {
            return;
        }
        let delivered =
            self.send.unsent() == 0 && self.send.iter().all(|p| p.kind == Kind::Fin || p.sacked);
        if self.fin_acked || (self.eof_reached && delivered) {
            self.finish(now, Ok(()), true);
        }
    }

    /// libutp's guard against spoofed packets: the `ack_nr` must lie between a little
    /// before the oldest packet in flight and the last one sent.
    fn ack_nr_acceptable(&self, ack_nr: u16) -> bool {
        let last_sent = self.seq_nr.wrapping_sub(1);
        let window = (self.send.packet_count() as u16).saturating_add(self.config.ack_nr_slack());
        !(seq_less(last_sent, ack_nr) || seq_less(ack_nr, last_sent.wrapping_sub(window)))
    }

    /// Takes the delay samples a packet carries.
    fn measure_delay(&mut self, now: Instant, h: &Header) {
        let their_delay =
            if h.timestamp_us == 0 { 0 } else { now.wire_micros().wrapping_sub(h.timestamp_us) };
        self.reply_micro = their_delay;
        if their_delay != 0 {
            let previous = self.their_delay.base();
            self.their_delay.add_sample(their_delay, now);
            // Their base delay fell: their clock runs slow against ours, so ours, as
            // they measure it, drifts up. Raise our base by as much (at most 10 ms).
            if let (Some(prev), Some(new)) = (previous, self.their_delay.base()) {
                if wrapping_less(new, prev) && prev.wrapping_sub(new) <= 10_000 {
                    self.our_delay.shift(prev.wrapping_sub(new));
                }
            }
        }
        if is_delay_sample(h.timestamp_difference_us) {
            self.our_delay.add_sample(h.timestamp_difference_us, now);
        }
    }

    fn process_acks(&mut self, now: Instant, packet: &Packet<'_>) {
        let h = packet.header();
        let mut acked_bytes = 0usize;
        let mut min_rtt: Option<Duration> = None;
        let mut progressed = false;
        let sample = |rtt: &mut RttEstimator, min_rtt: &mut Option<Duration>, sent_at, tx| {
            let r = now.saturating_duration_since(sent_at);
            *min_rtt = Some(min_rtt.map_or(r, |m: Duration| m.min(r)));
            if tx == 1 {
                rtt.on_sample(r);
            }
        };

        // Cumulative acknowledgement.
        if let Some(front) = self.send.front().map(|p| p.seq) {
            let n = usize::from(h.ack_nr.wrapping_sub(front).wrapping_add(1));
            if n <= self.send.packet_count() {
                for _ in 0..n {
                    if self.send.front().is_none_or(|p| p.transmissions == 0) {
                        break; // acknowledges something never sent: ignore the rest
                    }
                    let Some(p) = self.send.pop_acked() else { break };
                    progressed = true;
                    self.delivered_sent_at = self.delivered_sent_at.max(p.sent_at);
                    if !p.sacked {
                        acked_bytes += p.len;
                        sample(&mut self.rtt, &mut min_rtt, p.sent_at, p.transmissions);
                    }
                    if p.kind == Kind::Fin {
                        self.fin_acked = true;
                    }
                }
            }
        }

        if let Some(sack) = packet.selective_ack() {
            acked_bytes += self.process_sack(now, h.ack_nr, &sack, &mut min_rtt);
        } else if h.packet_type == PacketType::State && !progressed {
            self.count_duplicate_ack(now, h.ack_nr);
        }
        if progressed || acked_bytes > 0 {
            self.probe_allowed = true;
            self.probe_deadline = if self.send.is_empty() { None } else { self.probe_after(now) };
        }
        if progressed {
            if packet.selective_ack().is_none() {
                self.dup_acks = 0;
            }
            self.consecutive_timeouts = 0;
            self.rto_deadline = (!self.send.is_empty()).then(|| now + self.rtt.backed_off_rto(0));
        }
        let next = h.ack_nr.wrapping_add(1);
        if seq_less(self.fast_resend_seq, next) {
            self.fast_resend_seq = next;
        }

        if acked_bytes > 0 {
            if let (Some(rtt), Some(value)) = (min_rtt, self.our_delay.value()) {
                let rtt_us = u32::try_from(rtt.as_micros()).unwrap_or(u32::MAX);
                if value > rtt_us {
                    // The delay estimate cannot exceed the round trip: move the base up.
                    self.our_delay.shift(value - rtt_us);
                }
            }
            let queuing_delay = self.our_delay.value().map(|v| Duration::from_micros(u64::from(v)));
            let sample = AckSample { bytes_acked: acked_bytes, queuing_delay, min_rtt };
            self.cc.on_ack(now, &sample);
        }
        if self.write_blocked
            && self.send.free() >= self.max_payload.min(self.config.send_buffer() / 2)
        {
            self.write_blocked = false;
            self.events.push_back(ConnEvent::Writable);
        }
    }

    /// A STATE that acknowledged nothing new. After `fast_retransmit_threshold` of them,
    /// resend the oldest packet in flight.
    fn count_duplicate_ack(&mut self, now: Instant, ack_nr: u16) {
        let Some(front) = self.send.front() else {
            return;
        };
        if ack_nr != front.seq.wrapping_sub(1) || front.transmissions == 0 {
            return;
        }
        self.dup_acks += 1;
        if self.dup_acks == self.config.fast_retransmit_threshold()
            && !seq_less(front.seq, self.fast_resend_seq)
        {
            let seq = front.seq;
            self.fast_resends.push_back(seq);
            self.fast_resend_seq = seq.wrapping_add(1);
            self.stats.fast_retransmits += 1;
            self.cc.on_loss(now);
        }
    }

    /// Applies a selective ACK; returns the payload bytes it newly acknowledged.
    fn process_sack(
        &mut self,
        now: Instant,
        ack_nr: u16,
        sack: &SelectiveAck<'_>,
        min_rtt: &mut Option<Duration>,
    ) -> usize {
        let Some(front) = self.send.front().map(|p| p.seq) else {
            return 0;
        };
        let in_flight = self.send.packet_count();
        let mut acked_bytes = 0;
        let mut count = 0u32;
        for i in 0..sack.len_bits() {
            let v = ack_nr.wrapping_add(2).wrapping_add(i as u16);
            if usize::from(v.wrapping_sub(front)) >= in_flight || !sack.is_acked(i) {
                continue;
            }
            count += 1;
            if let Some(p) = self.send.sack(v) {
                acked_bytes += p.len;
                self.delivered_sent_at = self.delivered_sent_at.max(p.sent_at);
                let r = now.saturating_duration_since(p.sent_at);
                *min_rtt = Some(min_rtt.map_or(r, |m| m.min(r)));
                if p.transmissions == 1 {
                    self.rtt.on_sample(r);
                }
            }
        }
        self.dup_acks = count;
        self.detect_losses(now);
        acked_bytes
    }

    /// Declares lost the packets the acknowledgements prove missing; they are resent, oldest
    /// first, as the window allows. A packet sent once is lost when
    /// `fast_retransmit_threshold` packets after it were acknowledged (libutp's rule; with
    /// fewer packets in flight than that, one fewer than in flight, as TCP's early
    /// retransmit). A packet already resent is lost again when a packet sent after its last
    /// transmission (by more than a quarter of the round trip, the reordering allowance)
    /// was acknowledged; libutp resends each packet once this way and otherwise waits for
    /// the retransmission timeout.
    fn detect_losses(&mut self, now: Instant) {
        let threshold = self.config.fast_retransmit_threshold() as usize;
        let early = self.send.packet_count().saturating_sub(1).max(1);
        let needed = threshold.min(early);
        let reorder = self.rtt.smoothed().map_or(Duration::from_millis(1), |r| r / 4);
        let delivered = self.delivered_sent_at;
        let mut sacked_after = 0usize;
        let mut lost = Vec::new();
        // Walk from the newest packet to the oldest, counting acknowledged ones after each.
        for p in self.send.iter().rev() {
            if p.sacked {
                sacked_after += 1;
                continue;
            }
            if p.transmissions == 0 || p.need_resend || sacked_after == 0 {
                continue;
            }
            let is_lost = if p.transmissions == 1 {
                sacked_after >= needed
            } else {
                p.sent_at + reorder < delivered
            };
            if is_lost {
                lost.push(p.seq);
            }
        }
        let mut any = false;
        for seq in lost {
            if self.send.mark_lost(seq) {
                self.stats.fast_retransmits += 1;
                any = true;
            }
        }
        if any {
            self.cc.on_loss(now);
        }
    }

    fn process_data(&mut self, h: &Header, payload: &[u8]) {
        let seq = h.seq_nr;
        self.got_data = true;
        self.ack_pending = true;
        if self.eof_reached {
            return; // everything up to the FIN was delivered; this is a duplicate
        }
        if h.packet_type == PacketType::Fin && self.eof_seq.is_none() {
            if seq_less(seq, self.ack_nr.wrapping_add(1)) {
                self.stats.dropped_invalid += 1;
                return; // a FIN before data we already delivered is bogus
            }
            self.eof_seq = Some(seq);
        }
        if let Some(eof) = self.eof_seq {
            if seq_less(eof, seq) {
                self.stats.dropped_invalid += 1;
                return; // past the end of the stream
            }
        }
        let distance = usize::from(seq.wrapping_sub(self.ack_nr).wrapping_sub(1));
        let window = usize::from(self.config.max_reorder_packets());
        if distance >= window {
            if distance >= 65_536 - window {
                self.stats.duplicates += 1; // old: our ACK was lost; the ACK above answers it
            } else {
                self.stats.dropped_invalid += 1;
            }
            return;
        }
        // After close, keep acknowledging but discard what arrives.
        let data = if self.close_requested { &[][..] } else { payload };
        if distance > 0 {
            match self.recv.store(distance, data) {
                Stored::Kept => {}
                Stored::Duplicate => self.stats.duplicates += 1,
                Stored::TooFar | Stored::NoSpace => self.stats.dropped_invalid += 1,
            }
            return;
        }
        if !self.recv.push_in_order(data) {
            self.stats.dropped_invalid += 1; // over the window we advertised
            return;
        }
        self.ack_nr = seq;
        self.stats.bytes_received += data.len() as u64;
        loop {
            if self.eof_seq == Some(self.ack_nr) {
                self.eof_reached = true;
                self.recv.clear_reorder();
                break;
            }
            let Some(len) = self.recv.pull_next() else { break };
            self.ack_nr = self.ack_nr.wrapping_add(1);
            self.stats.bytes_received += len as u64;
        }
        if self.result.is_none()
            && !self.read_signaled
            && (self.recv.readable() > 0 || self.eof_reached)
        {
            self.read_signaled = true;
            self.events.push_back(ConnEvent::Readable);
        }
    }

    // ---- timers --------------------------------------------------------------------

    /// The earliest instant this connection wants `handle_timeout`.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        if self.result.is_some() {
            // A pending RESET, ACK or FIN goes out with the next transmit, which rechecks.
            if self.reset_pending || self.ack_pending || self.fin_resend_due {
                return None;
            }
            // While our FIN is being resent, its timer decides; the linger only matters once
            // it is acknowledged or given up (before that the connection is kept anyway, and
            // a linger time already past would wake us for nothing, over and over).
            let fin = self.fin_resend_at.filter(|_| !self.fin_acked);
            return fin.or(self.linger_until);
        }
        let keepalive = match (self.state, self.config.keepalive_interval()) {
            (State::Connected, Some(interval)) if !self.fin_sent && !self.keepalive_pending => {
                Some(self.last_sent + interval)
            }
            _ => None,
        };
        let idle = self.config.idle_timeout().map(|t| self.last_recv + t);
        [
            self.rto_deadline,
            self.probe_deadline,
            self.deadline,
            self.zero_window_deadline,
            keepalive,
            idle,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.result.is_some() {
            if !self.fin_acked && self.fin_resend_at.is_some_and(|t| now >= t) {
                self.fin_resend_at = None;
                if self.fin_resends < self.config.max_retransmits() {
                    self.fin_resends += 1;
                    self.fin_resend_due = true;
                }
            }
            return;
        }
        if self.deadline.is_some_and(|d| now >= d) {
            self.finish(now, Err(ConnectionError::TimedOut), false);
            return;
        }
        if self.config.idle_timeout().is_some_and(|t| now >= self.last_recv + t) {
            self.finish(now, Err(ConnectionError::TimedOut), false);
            return;
        }
        if self.zero_window_deadline.is_some_and(|d| now >= d) {
            // Probe: let one packet through the peer's closed window.
            self.zero_window_deadline = None;
            self.peer_window = self.max_payload;
        }
        if self.probe_deadline.is_some_and(|d| now >= d) {
            self.on_probe(now);
        }
        if self.rto_deadline.is_some_and(|d| now >= d) {
            self.on_rto(now);
            if self.result.is_some() {
                return;
            }
        }
        if let (State::Connected, Some(interval)) = (self.state, self.config.keepalive_interval()) {
            if !self.fin_sent && now >= self.last_sent + interval {
                self.keepalive_pending = true;
            }
        }
    }

    /// When a tail-loss probe is due if nothing is heard: two round trips (at least 10 ms)
    /// after `now`, unless a probe was already sent since the last acknowledgement, or no
    /// round trip was measured yet.
    fn probe_after(&self, now: Instant) -> Option<Instant> {
        if !self.probe_allowed || self.state != State::Connected {
            return None;
        }
        let pto = (self.rtt.smoothed()? * 2).max(Duration::from_millis(10));
        Some(now + pto)
    }

    /// The tail-loss probe (RFC 8985): no acknowledgement for two round trips while packets
    /// are in flight, so the last ones (or their ACKs) were probably lost and nothing after
    /// them will reveal it. Resend the newest packet: its acknowledgement carries a
    /// selective ACK that starts the ordinary loss recovery, long before the
    /// retransmission timeout (at least 1 s by default) would.
    fn on_probe(&mut self, now: Instant) {
        self.probe_deadline = None;
        if self.rto_deadline.is_some_and(|rto| rto <= now) {
            return;
        }
        let newest = self.send.iter().rev().find(|p| !p.sacked && p.transmissions > 0);
        if let Some(seq) = newest.map(|p| p.seq) {
            self.probe_allowed = false;
            self.fast_resends.push_back(seq);
        }
    }

    fn on_rto(&mut self, now: Instant) {
        let Some(oldest) = self.send.front().map(|p| p.seq) else {
            self.rto_deadline = None;
            return;
        };
        let limit = if self.state == State::SynSent {
            self.config.max_syn_retransmits()
        } else {
            self.config.max_retransmits()
        };
        if self.consecutive_timeouts >= limit {
            self.finish(now, Err(ConnectionError::TimedOut), false);
            return;
        }
        self.consecutive_timeouts += 1;
        self.stats.timeouts += 1;
        self.probe_deadline = None;
        self.cc.on_timeout(now, false);
        self.send.mark_all_lost();
        self.dup_acks = 0;
        self.rto_deadline = Some(now + self.rtt.backed_off_rto(self.consecutive_timeouts));
        // Resend the oldest at once, whatever the window says.
        self.fast_resends.clear();
        self.fast_resends.push_back(oldest);
    }

    // ---- output --------------------------------------------------------------------

    /// Writes the next packet to send into `buf`; `false` when there is nothing to send.
    pub(crate) fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> bool {
        if self.reset_pending {
            self.reset_pending = false;
            self.ack_pending = false;
            self.emit_control(now, PacketType::Reset, self.seq_nr, self.ack_nr, buf);
            return true;
        }
        if let Some(result) = self.result {
            if result.is_ok() && self.fin_requested && !self.fin_sent && self.send.unsent() == 0 {
                // The courtesy FIN of a close that completed early (see check_close_complete).
                self.send_fin(now, buf);
                self.arm_fin_resend(now);
                return true;
            }
            if self.fin_resend_due {
                // Resent until acknowledged: a libutp peer sees the end of our stream only
                // in our FIN, and has no idle timer to give up on a lost one.
                self.fin_resend_due = false;
                self.send_packet(now, self.seq_nr.wrapping_sub(1), buf);
                self.arm_fin_resend(now);
                return true;
            }
            if self.ack_pending {
                self.emit_state(now, buf);
                return true;
            }
            return false;
        }
        match self.state {
            State::Listen | State::Closed => return false,
            State::SynSent => {
                let Some(syn) = self.send.front().map(|p| p.seq) else { return false };
                if self.send.next_to_send().is_some() || self.fast_resends.pop_front().is_some() {
                    self.fast_resends.clear();
                    self.send_packet(now, syn, buf);
                    return true;
                }
                return false;
            }
            State::SynRecv | State::Connected => {}
        }
        if self.synack_pending {
            self.synack_pending = false;
            let (_, synack_seq) = self.syn_seq.unwrap_or((0, self.seq_nr));
            self.emit_control(now, PacketType::State, synack_seq, self.ack_nr, buf);
            return true;
        }
        if self.state == State::Connected && self.send_data(now, buf) {
            return true;
        }
        if self.keepalive_pending {
            self.keepalive_pending = false;
            // A duplicate ACK: harmless to the peer, enough for NAT mappings.
            self.emit_control(
                now,
                PacketType::State,
                self.seq_nr,
                self.ack_nr.wrapping_sub(1),
                buf,
            );
            return true;
        }
        if self.ack_pending {
            self.emit_state(now, buf);
            return true;
        }
        false
    }

    /// Sends a retransmission, new data or the FIN, if the windows allow.
    fn send_data(&mut self, now: Instant, buf: &mut Vec<u8>) -> bool {
        while let Some(seq) = self.fast_resends.pop_front() {
            if self.send.get(seq).is_some_and(|p| !p.sacked) {
                self.stats.retransmits += 1;
                self.send_packet(now, seq, buf);
                return true;
            }
        }
        let in_flight = self.send.in_flight();
        let limit = self.cc.window().min(self.config.send_buffer());
        let fits = |len: usize, peer_window: usize| {
            (in_flight + len <= limit || in_flight == 0) && in_flight + len <= peer_window
        };
        if let Some(p) = self.send.next_to_send() {
            let (seq, len, again) = (p.seq, p.len, p.transmissions > 0);
            if fits(len, self.peer_window) {
                if again {
                    self.stats.retransmits += 1;
                }
                self.send_packet(now, seq, buf);
                return true;
            }
            self.cc.on_window_full(now);
            return false;
        }
        let unsent = self.send.unsent();
        if unsent > 0 {
            let len = unsent.min(self.max_payload);
            let max_packets = usize::from(self.config.max_reorder_packets()) - 1;
            // Nagle: hold a partial packet while anything is unacknowledged.
            if len < self.max_payload
                && self.config.nagle()
                && !self.fin_requested
                && !self.send.is_empty()
            {
                return false;
            }
            if !fits(len, self.peer_window) || self.send.packet_count() >= max_packets {
                self.cc.on_window_full(now);
                return false;
            }
            let seq = self.seq_nr;
            self.seq_nr = seq.wrapping_add(1);
            self.send.push(seq, Kind::Data, len);
            self.send_packet(now, seq, buf);
            return true;
        }
        if self.fin_requested && !self.fin_sent {
            self.send_fin(now, buf);
            return true;
        }
        false
    }

    /// Schedules the next resend of a FIN that outlived its connection's close.
    fn arm_fin_resend(&mut self, now: Instant) {
        self.fin_resend_at = Some(now + self.rtt.backed_off_rto(self.fin_resends));
    }

    /// Cuts the FIN (it takes the next sequence number, carries nothing) and sends it.
    fn send_fin(&mut self, now: Instant, buf: &mut Vec<u8>) {
        self.fin_sent = true;
        let seq = self.seq_nr;
        self.seq_nr = seq.wrapping_add(1);
        self.send.push(seq, Kind::Fin, 0);
        self.send_packet(now, seq, buf);
    }

    fn header(&self, now: Instant, packet_type: PacketType, seq_nr: u16, ack_nr: u16) -> Header {
        Header {
            packet_type,
            connection_id: if packet_type == PacketType::Syn { self.recv_id } else { self.send_id },
            timestamp_us: now.wire_micros(),
            timestamp_difference_us: self.reply_micro,
            wnd_size: u32::try_from(self.recv.window()).unwrap_or(u32::MAX),
            seq_nr,
            ack_nr,
        }
    }

    /// Sends (or resends) the packet `seq` from the send buffer.
    fn send_packet(&mut self, now: Instant, seq: u16, buf: &mut Vec<u8>) {
        let Some(p) = self.send.get(seq) else { return };
        let packet_type = match p.kind {
            Kind::Syn => PacketType::Syn,
            Kind::Data => PacketType::Data,
            Kind::Fin => PacketType::Fin,
        };
        let ack_nr = if packet_type == PacketType::Syn { 0 } else { self.ack_nr };
        let header = self.header(now, packet_type, seq, ack_nr);
        buf.clear();
        let mut raw = [0u8; HEADER_LEN];
        header.emit_into(0, &mut raw);
        buf.extend_from_slice(&raw);
        self.send.copy_payload(seq, buf);
        let len = self.send.mark_sent(seq, now);
        self.stats.bytes_sent += len as u64;
        if self.rto_deadline.is_none() {
            self.rto_deadline = Some(now + self.rtt.backed_off_rto(self.consecutive_timeouts));
        }
        if self.probe_deadline.is_none() {
            self.probe_deadline = self.probe_after(now);
        }
        self.sent(now, header.wnd_size);
    }

    /// A STATE acknowledging what arrived, with a selective ACK when packets are missing.
    fn emit_state(&mut self, now: Instant, buf: &mut Vec<u8>) {
        let header = self.header(now, PacketType::State, self.seq_nr, self.ack_nr);
        let mut mask = [0u8; 256];
        let n = if self.eof_reached {
            0
        } else {
            self.recv.sack(usize::from(self.config.max_sack_bytes()), &mut mask)
        };
        if n > 0 {
            emit(&header, &[Extension::SelectiveAck(SelectiveAck::new(&mask[..n]))], &[], buf);
        } else {
            emit(&header, &[], &[], buf);
        }
        self.sent(now, header.wnd_size);
    }

    fn emit_control(
        &mut self,
        now: Instant,
        packet_type: PacketType,
        seq_nr: u16,
        ack_nr: u16,
        buf: &mut Vec<u8>,
    ) {
        let mut header = self.header(now, packet_type, seq_nr, ack_nr);
        if packet_type == PacketType::Reset {
            header.wnd_size = 0;
        }
        emit(&header, &[], &[], buf);
        self.sent(now, header.wnd_size);
    }

    fn sent(&mut self, now: Instant, window: u32) {
        self.ack_pending = false;
        self.last_sent = now;
        self.last_window = window as usize;
        self.stats.packets_sent += 1;
    }
}
