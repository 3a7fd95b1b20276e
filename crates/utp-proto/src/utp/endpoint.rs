//! The uTP endpoint: one per socket; demultiplexes packets to connections, answers
//! strangers, and schedules what every connection sends.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt::Debug;
use core::net::SocketAddr;

use crate::answer_limiter::AnswerLimiter;
use crate::slots::{SlotKey, Slots};
use crate::utp::config::{Config, InitialSeq};
use crate::utp::connection::{ConnEvent, Connection, State};
use crate::utp::{
    AcceptError, ConnectError, ConnectionStats, EndpointStats, Event, ReadError, WriteError,
};
use crate::wire::utp::{HEADER_LEN, Header, Packet, PacketType};
use crate::{Instant, Machine, Rng, Transmit};

/// Names a connection of an [`Endpoint`]. A handle outlives its connection harmlessly:
/// once the connection is gone, calls with it fail with a `Closed` error.
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct ConnectionHandle(SlotKey);

/// Names an incoming SYN waiting for [`Endpoint::accept`] or [`Endpoint::refuse`].
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct IncomingId(u64);

#[derive(Debug)]
struct PendingSyn<P> {
    id: IncomingId,
    peer: P,
    header: Header,
    deadline: Instant,
}

/// A uTP endpoint: all the connections on one socket (or one datagram transport).
///
/// It implements [`Machine`]: feed it datagrams with
/// [`handle_datagram`](Machine::handle_datagram), fire its timer with
/// [`handle_timeout`](Machine::handle_timeout), and drain
/// [`poll_transmit`](Machine::poll_transmit) then [`poll_event`](Machine::poll_event).
/// Connections are addressed by [`ConnectionHandle`]; application commands (`write`,
/// `read`, `close`, ...) are methods taking the handle.
///
/// Acknowledgements are coalesced: a connection that received several packets between two
/// drains of `poll_transmit` answers with one ACK. A driver that reads every datagram the
/// socket has before draining thus sends one ACK per batch.
///
/// `P` is how peers are named: `SocketAddr` on a UDP socket, or anything ordered and
/// cloneable (for example a Portal Network node id with its address) when uTP travels
/// inside another protocol's messages.
#[derive(Debug)]
pub struct Endpoint<P = SocketAddr> {
    config: Arc<Config>,
    rng: Rng,
    conns: Slots<Connection<P>>,
    by_key: BTreeMap<(P, u16), u32>,
    incoming: VecDeque<PendingSyn<P>>,
    next_incoming: u64,
    resets: AnswerLimiter<(P, u16, u16)>,
    control: VecDeque<(P, [u8; HEADER_LEN])>,
    due: Vec<u32>,
    events: VecDeque<Event<P>>,
    stats: EndpointStats,
}

impl<P: Clone + Debug + Ord> Endpoint<P> {
    /// An endpoint with no connections. `seed` seeds every random choice (connection ids,
    /// initial sequence numbers): give it fresh OS randomness in production and a constant
    /// in tests.
    pub fn new(config: Arc<Config>, seed: u64) -> Self {
        let resets = AnswerLimiter::new(config.reset_limit_entries(), config.reset_limit_window());
        Self {
            config,
            rng: Rng::new(seed),
            conns: Slots::default(),
            by_key: BTreeMap::new(),
            incoming: VecDeque::new(),
            next_incoming: 0,
            resets,
            control: VecDeque::new(),
            due: Vec::new(),
            events: VecDeque::new(),
            stats: EndpointStats::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// Endpoint-wide counters.
    pub fn endpoint_stats(&self) -> EndpointStats {
        self.stats
    }

    /// How many connections the endpoint holds (lingering closed ones included).
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// How many incoming SYNs wait for `accept` or `refuse`.
    pub fn pending_incoming(&self) -> usize {
        self.incoming.len()
    }

    // ---- opening connections -------------------------------------------------------

    /// Opens a connection to `peer` with a random connection id; the SYN goes out with the
    /// next [`poll_transmit`](Machine::poll_transmit).
    ///
    /// # Errors
    ///
    /// [`ConnectError::TooManyConnections`] at the connection limit.
    pub fn connect(&mut self, now: Instant, peer: P) -> Result<ConnectionHandle, ConnectError> {
        self.check_capacity()?;
        for _ in 0..64 {
            let id = self.rng.next_u16();
            if !self.by_key.contains_key(&(peer.clone(), id)) {
                return self.open(now, peer, id);
            }
        }
        Err(ConnectError::TooManyConnections)
    }

    /// Opens a connection with a connection id the application chose (Portal: Alice, who
    /// received `connection_id` in a `Content` or `Accept` message). The SYN carries
    /// `connection_id`; we receive on it and send on `connection_id + 1`.
    ///
    /// # Errors
    ///
    /// [`ConnectError::IdInUse`] when a connection with this peer already receives on
    /// `connection_id`; [`ConnectError::TooManyConnections`] at the limit.
    pub fn connect_with_id(
        &mut self,
        now: Instant,
        peer: P,
        connection_id: u16,
    ) -> Result<ConnectionHandle, ConnectError> {
        self.check_capacity()?;
        if self.by_key.contains_key(&(peer.clone(), connection_id)) {
            return Err(ConnectError::IdInUse(connection_id));
        }
        self.open(now, peer, connection_id)
    }

    fn open(
        &mut self,
        now: Instant,
        peer: P,
        recv_id: u16,
    ) -> Result<ConnectionHandle, ConnectError> {
        let syn_seq = match self.config.initial_seq() {
            InitialSeq::Random => self.rng.next_u16(),
            InitialSeq::One => 1,
        };
        let conn = Connection::connect(
            peer,
            recv_id,
            recv_id.wrapping_add(1),
            self.config.clone(),
            now,
            syn_seq,
        );
        Ok(self.insert(now, conn))
    }

    /// Expects a connection from `peer` whose SYN carries `connection_id` (Portal: Bob,
    /// who sent `connection_id` in a `Content` or `Accept` message). We receive on
    /// `connection_id + 1` and send on `connection_id`. The SYN may already have arrived
    /// (it waits as an incoming connection) or come later; if it does not come within
    /// `expected_id_timeout` the connection closes with
    /// [`ConnectionError::TimedOut`](crate::utp::ConnectionError::TimedOut). The handle is
    /// usable at once: data written now is sent once the handshake allows.
    ///
    /// # Errors
    ///
    /// [`ConnectError::IdInUse`] when a connection with this peer already receives on
    /// `connection_id + 1`; [`ConnectError::TooManyConnections`] at the limit.
    pub fn accept_with_id(
        &mut self,
        now: Instant,
        peer: P,
        connection_id: u16,
    ) -> Result<ConnectionHandle, ConnectError> {
        self.expire(now);
        if let Some(pos) = self
            .incoming
            .iter()
            .position(|p| p.peer == peer && p.header.connection_id == connection_id)
        {
            let id = self.incoming[pos].id;
            return self.accept(now, id).map_err(|e| match e {
                AcceptError::TooManyConnections => ConnectError::TooManyConnections,
                _ => ConnectError::IdInUse(connection_id),
            });
        }
        self.check_capacity()?;
        let recv_id = connection_id.wrapping_add(1);
        if self.by_key.contains_key(&(peer.clone(), recv_id)) {
            return Err(ConnectError::IdInUse(connection_id));
        }
        let conn = Connection::listen(peer, recv_id, connection_id, self.config.clone(), now);
        Ok(self.insert(now, conn))
    }

    /// Accepts an incoming connection announced by [`Event::Incoming`].
    ///
    /// # Errors
    ///
    /// [`AcceptError::Unknown`] if it was already accepted, refused or expired;
    /// [`AcceptError::TooManyConnections`] at the limit.
    pub fn accept(
        &mut self,
        now: Instant,
        incoming: IncomingId,
    ) -> Result<ConnectionHandle, AcceptError> {
        self.expire(now);
        let pos =
            self.incoming.iter().position(|p| p.id == incoming).ok_or(AcceptError::Unknown)?;
        if self.conns.len() >= self.config.max_connections() {
            return Err(AcceptError::TooManyConnections);
        }
        let syn = self.incoming.remove(pos).ok_or(AcceptError::Unknown)?;
        let recv_id = syn.header.connection_id.wrapping_add(1);
        if self.by_key.contains_key(&(syn.peer.clone(), recv_id)) {
            return Err(AcceptError::Unknown);
        }
        let mut conn = Connection::listen(
            syn.peer,
            recv_id,
            syn.header.connection_id,
            self.config.clone(),
            now,
        );
        conn.accept_syn(now, &syn.header, self.rng.next_u16());
        Ok(self.insert(now, conn))
    }

    /// Refuses an incoming connection: the initiator gets `ST_RESET` (subject to the
    /// RESET rate limit). Unknown ids are ignored.
    pub fn refuse(&mut self, now: Instant, incoming: IncomingId) {
        if let Some(pos) = self.incoming.iter().position(|p| p.id == incoming) {
            if let Some(syn) = self.incoming.remove(pos) {
                self.stats.incoming_refused += 1;
                self.send_reset(now, syn.peer, syn.header.connection_id, syn.header.seq_nr);
            }
        }
    }

    fn check_capacity(&self) -> Result<(), ConnectError> {
        if self.conns.len() >= self.config.max_connections() {
            Err(ConnectError::TooManyConnections)
        } else {
            Ok(())
        }
    }

    fn insert(&mut self, now: Instant, conn: Connection<P>) -> ConnectionHandle {
        let key = (conn.peer.clone(), conn.recv_id);
        let slot = self.conns.insert(conn);
        self.by_key.insert(key, slot.index);
        self.touch(slot.index, now);
        ConnectionHandle(slot)
    }

    // ---- application commands on connections ---------------------------------------

    fn slot_of(&self, h: ConnectionHandle) -> Option<&Connection<P>> {
        self.conns.get(h.0)
    }

    fn conn_mut(&mut self, h: ConnectionHandle) -> Option<&mut Connection<P>> {
        self.conns.get_mut(h.0).filter(|c| !c.is_closed())
    }

    /// Queues `data` for sending; returns how many bytes were taken (possibly fewer than
    /// offered when the send buffer fills).
    ///
    /// # Errors
    ///
    /// [`WriteError::Blocked`] when the send buffer is full (wait for [`Event::Writable`]);
    /// [`WriteError::Finished`] after `shutdown` or `close`; [`WriteError::Closed`] when the
    /// connection is gone.
    pub fn write(&mut self, h: ConnectionHandle, data: &[u8]) -> Result<usize, WriteError> {
        let conn = self.conn_mut(h).ok_or(WriteError::Closed)?;
        let n = conn.write(data)?;
        self.conns.schedule(h.0.index);
        Ok(n)
    }

    /// Reads received bytes into `buf`. `Ok(0)` (with a non-empty `buf`) means the peer
    /// finished its stream and everything was read.
    ///
    /// # Errors
    ///
    /// [`ReadError::Blocked`] when nothing has arrived yet (wait for [`Event::Readable`]);
    /// [`ReadError::Closed`] when the connection is gone.
    pub fn read(&mut self, h: ConnectionHandle, buf: &mut [u8]) -> Result<usize, ReadError> {
        let conn = self.conns.get_mut(h.0).ok_or(ReadError::Closed)?;
        let n = conn.read(buf)?;
        self.conns.schedule(h.0.index);
        Ok(n)
    }

    /// Finishes our direction of the stream: a FIN follows the data already written. The
    /// peer may go on sending (half-close).
    pub fn shutdown(&mut self, h: ConnectionHandle) {
        if let Some(conn) = self.conn_mut(h) {
            conn.shutdown();
            self.conns.schedule(h.0.index);
        }
    }

    /// Closes gracefully: finishes our stream (FIN), discards what arrives from now on, and
    /// reports [`Event::Closed`] with `Ok` once the peer acknowledged everything (or an
    /// error if it stops answering). When the peer already finished its stream and
    /// acknowledged all our data, the close completes at once.
    pub fn close(&mut self, now: Instant, h: ConnectionHandle) {
        if let Some(conn) = self.conn_mut(h) {
            conn.close(now);
            self.touch(h.0.index, now);
        }
    }

    /// Aborts the connection: sends `ST_RESET` and forgets it. Reports [`Event::Closed`]
    /// with [`ConnectionError::LocallyReset`](crate::utp::ConnectionError::LocallyReset).
    pub fn reset(&mut self, now: Instant, h: ConnectionHandle) {
        if let Some(conn) = self.conn_mut(h) {
            conn.reset(now);
            self.touch(h.0.index, now);
        }
    }

    /// The connection's statistics; `None` once it is gone.
    pub fn stats(&self, h: ConnectionHandle) -> Option<ConnectionStats> {
        self.slot_of(h).map(Connection::stats)
    }

    /// Where the connection is in its life; `None` once it is gone.
    pub fn state(&self, h: ConnectionHandle) -> Option<State> {
        self.slot_of(h).map(Connection::state)
    }

    /// The connection's peer.
    pub fn peer(&self, h: ConnectionHandle) -> Option<&P> {
        self.slot_of(h).map(|c| &c.peer)
    }

    /// The connection ids: (the one we receive on, the one we send with).
    pub fn connection_ids(&self, h: ConnectionHandle) -> Option<(u16, u16)> {
        self.slot_of(h).map(|c| (c.recv_id, c.send_id))
    }

    /// Bytes ready to [`read`](Self::read).
    pub fn readable(&self, h: ConnectionHandle) -> usize {
        self.slot_of(h).map_or(0, Connection::readable)
    }

    /// Bytes [`write`](Self::write) would take now.
    pub fn writable(&self, h: ConnectionHandle) -> usize {
        self.slot_of(h).map_or(0, Connection::writable)
    }

    /// Whether everything written so far (and the FIN, if any) was acknowledged.
    pub fn is_flushed(&self, h: ConnectionHandle) -> bool {
        self.slot_of(h).is_none_or(Connection::is_flushed)
    }

    // ---- internals -----------------------------------------------------------------

    fn lookup(&self, peer: &P, recv_id: u16) -> Option<u32> {
        self.by_key.get(&(peer.clone(), recv_id)).copied()
    }

    fn conn_at(&mut self, index: u32) -> Option<&mut Connection<P>> {
        self.conns.at_mut(index)
    }

    /// After a connection changed: collect its events, re-arm its timer, queue it for
    /// sending, and forget it if it is over.
    fn touch(&mut self, index: u32, now: Instant) {
        self.conns.schedule(index);
        self.after_change(index, now);
    }

    fn after_change(&mut self, index: u32, now: Instant) {
        let Some(key) = self.conns.key(index) else { return };
        let handle = ConnectionHandle(key);
        let Some(conn) = self.conns.at_mut(index) else { return };
        while let Some(ev) = conn.poll_event() {
            self.events.push_back(match ev {
                ConnEvent::Connected => Event::Connected(handle),
                ConnEvent::Readable => Event::Readable(handle),
                ConnEvent::Writable => Event::Writable(handle),
                ConnEvent::Closed(result) => Event::Closed { handle, result },
            });
        }
        if conn.is_removable(now) {
            let key = (conn.peer.clone(), conn.recv_id);
            self.conns.remove(index);
            self.by_key.remove(&key);
            return;
        }
        let next = conn.next_timeout();
        self.conns.arm(index, next);
    }

    fn send_reset(&mut self, now: Instant, peer: P, connection_id: u16, their_seq: u16) {
        if !self.resets.allow(now, &(peer.clone(), connection_id, their_seq)) {
            self.stats.resets_suppressed += 1;
            return;
        }
        let header = Header {
            packet_type: PacketType::Reset,
            connection_id,
            timestamp_us: now.wire_micros(),
            timestamp_difference_us: 0,
            wnd_size: 0,
            seq_nr: self.rng.next_u16(),
            ack_nr: their_seq,
        };
        let mut raw = [0u8; HEADER_LEN];
        header.emit_into(0, &mut raw);
        self.stats.resets_sent += 1;
        self.control.push_back((peer, raw));
    }

    /// Drops incoming SYNs nobody answered in time.
    fn expire(&mut self, now: Instant) {
        while self.incoming.front().is_some_and(|p| now >= p.deadline) {
            if let Some(syn) = self.incoming.pop_front() {
                self.stats.incoming_refused += 1;
                self.send_reset(now, syn.peer, syn.header.connection_id, syn.header.seq_nr);
            }
        }
    }

    fn handle_syn(&mut self, now: Instant, peer: P, header: Header) {
        let id = header.connection_id;
        if let Some(index) = self.lookup(&peer, id.wrapping_add(1)) {
            let our_seq = self.rng.next_u16();
            if let Some(conn) = self.conn_at(index) {
                if conn.state() == State::Listen {
                    conn.accept_syn(now, &header, our_seq);
                } else {
                    conn.handle_duplicate_syn(&header);
                }
            }
            self.touch(index, now);
            return;
        }
        if self.incoming.iter().any(|p| p.peer == peer && p.header.connection_id == id) {
            return; // a retransmitted SYN still waiting for the application
        }
        if self.conns.len() >= self.config.max_connections()
            || self.incoming.len() >= self.config.max_pending_incoming()
        {
            self.stats.incoming_refused += 1;
            self.send_reset(now, peer, id, header.seq_nr);
            return;
        }
        let incoming = IncomingId(self.next_incoming);
        self.next_incoming += 1;
        self.events.push_back(Event::Incoming {
            id: incoming,
            peer: peer.clone(),
            connection_id: id,
        });
        self.incoming.push_back(PendingSyn {
            id: incoming,
            peer,
            header,
            deadline: now + self.config.incoming_timeout(),
        });
    }

    fn handle_reset(&mut self, now: Instant, peer: &P, id: u16) {
        let matches_send = |this: &Self, recv: u16| {
            this.lookup(peer, recv).filter(|&i| this.conns.at(i).is_some_and(|c| c.send_id == id))
        };
        let found = self
            .lookup(peer, id)
            .or_else(|| matches_send(self, id.wrapping_add(1)))
            .or_else(|| matches_send(self, id.wrapping_sub(1)));
        match found {
            Some(index) => {
                if let Some(conn) = self.conn_at(index) {
                    conn.handle_reset(now);
                }
                self.touch(index, now);
            }
            None => self.stats.unknown_connection += 1,
        }
    }
}

impl<P: Clone + Debug + Ord> Machine for Endpoint<P> {
    type Peer = P;
    type Event = Event<P>;

    fn handle_datagram(&mut self, now: Instant, remote: P, data: &[u8]) {
        self.stats.datagrams_received += 1;
        self.expire(now);
        let Ok(packet) = Packet::parse(data) else {
            self.stats.malformed += 1;
            return;
        };
        let header = *packet.header();
        match header.packet_type {
            PacketType::Reset => self.handle_reset(now, &remote, header.connection_id),
            PacketType::Syn => self.handle_syn(now, remote, header),
            _ => match self.lookup(&remote, header.connection_id) {
                Some(index) => {
                    if let Some(conn) = self.conn_at(index) {
                        conn.handle_packet(now, &packet);
                    }
                    self.touch(index, now);
                }
                None => {
                    self.stats.unknown_connection += 1;
                    self.send_reset(now, remote, header.connection_id, header.seq_nr);
                }
            },
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.expire(now);
        // The due slots first: a connection re-armed while handling them waits for the
        // next call, so one call always ends.
        let mut due = core::mem::take(&mut self.due);
        self.conns.take_due(now, &mut due);
        for &index in &due {
            if let Some(conn) = self.conns.at_mut(index) {
                conn.handle_timeout(now);
            }
            self.touch(index, now);
        }
        self.due = due;
    }

    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit<P>> {
        if let Some((peer, raw)) = self.control.pop_front() {
            buf.clear();
            buf.extend_from_slice(&raw);
            self.stats.datagrams_sent += 1;
            return Some(Transmit::single(peer, buf.len()));
        }
        while let Some(index) = self.conns.pop_ready() {
            let Some(conn) = self.conns.at_mut(index) else { continue };
            if conn.poll_transmit(now, buf) {
                let destination = conn.peer.clone();
                // It may have more: back of the queue, so connections take turns.
                self.conns.schedule(index);
                self.after_change(index, now);
                self.stats.datagrams_sent += 1;
                return Some(Transmit::single(destination, buf.len()));
            }
            self.after_change(index, now);
        }
        None
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let timer = self.conns.next_timeout();
        let incoming = self.incoming.front().map(|p| p.deadline);
        match (timer, incoming) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn poll_event(&mut self) -> Option<Event<P>> {
        self.events.pop_front()
    }
}
