//! The rudp endpoint: one per socket; answers the handshake without state, routes packets
//! to connections by id, answers packets of unknown connections, and schedules what every
//! connection sends.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt::Debug;
use core::hash::Hash;
use core::net::SocketAddr;
use core::time::Duration;

use crate::answer_limiter::AnswerLimiter;
use crate::rudp::Config;
use crate::rudp::connection::{ConnEvent, Connection, State};
use crate::rudp::cookie::CookieKey;
use crate::rudp::ids::IdGenerator;
use crate::rudp::{
    AcceptError, CloseError, ConnectError, ConnectionStats, EndpointStats, Event, RecvError,
    SendDirectError, SendError,
};
use crate::slots::{SlotKey, Slots};
use crate::wire::rudp::{
    CLOSE_LEN, COOKIE_LEN, CloseCode, ConnectAck, Datagram, MIN_CONNECT_LEN, Packet,
};
use crate::{Instant, Machine, Transmit};

/// Names a connection of an [`Endpoint`]. A handle outlives its connection harmlessly:
/// once the connection is gone, calls with it fail with a `Closed` error.
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct ConnectionHandle(SlotKey);

/// Names an incoming connection waiting for [`Endpoint::accept`] or [`Endpoint::refuse`].
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct IncomingId(u64);

/// Most answers the endpoint queues itself (challenges, refusals, answers to unknown
/// connections) before new ones are dropped, for a driver slow to drain `poll_transmit`.
const MAX_CONTROL: usize = 1024;

/// Most refused starters remembered (see [`Refused`]); the oldest are forgotten first.
const MAX_REFUSED: usize = 1024;

/// The reason sent when a listener is full; short, so the CLOSE fits in the 64 bytes of
/// the CONNECT it answers.
const BUSY: &str = "listener busy";
const REFUSED: &str = "connection refused";
const EXPIRED: &str = "not accepted in time";

#[derive(Debug)]
struct Pending<P> {
    id: IncomingId,
    peer: P,
    remote_id: u64,
    max_message: u32,
    window: u32,
    deadline: Instant,
}

/// A starter the application refused, or that was not accepted in time: until its cookie
/// expires, its CONNECT again (a retransmission, or its refusal was lost) is answered with
/// the same CLOSE rather than reported as a new incoming connection.
#[derive(Debug)]
struct Refused<P> {
    peer: P,
    remote_id: u64,
    reason: &'static str,
    code: CloseCode,
    until: Instant,
}

/// A datagram the endpoint sends on its own behalf: never more than 64 bytes.
#[derive(Debug)]
struct Control<P> {
    peer: P,
    bytes: [u8; MIN_CONNECT_LEN],
    len: u8,
}

/// A rudp endpoint: all the connections on one socket (or one datagram transport).
///
/// It implements [`Machine`]: feed it datagrams with
/// [`handle_datagram`](Machine::handle_datagram), fire its timer with
/// [`handle_timeout`](Machine::handle_timeout), and drain
/// [`poll_transmit`](Machine::poll_transmit) then [`poll_event`](Machine::poll_event).
/// Connections are addressed by [`ConnectionHandle`]; application commands (`send`,
/// `recv`, `close`, ...) are methods taking the handle.
///
/// An endpoint both listens and connects: CONNECTs are answered with a challenge whatever
/// the application does, and those that echo a valid cookie become [`Event::Incoming`] for
/// the application to [`accept`](Self::accept) or [`refuse`](Self::refuse).
///
/// Acknowledgements are coalesced: a connection that received several DATA between two
/// drains of `poll_transmit` answers with one DATA-ACK for every two.
///
/// `P` is how peers are named: `SocketAddr` on a UDP socket, or anything ordered, hashable
/// and cloneable when rudp travels inside another protocol. Packets of a connection are
/// accepted only from its peer.
#[derive(Debug)]
pub struct Endpoint<P = SocketAddr> {
    config: Arc<Config>,
    ids: IdGenerator,
    cookies: CookieKey,
    conns: Slots<Connection<P>>,
    by_id: BTreeMap<u64, u32>,
    by_remote: BTreeMap<(P, u64), u32>,
    incoming: VecDeque<Pending<P>>,
    refused: VecDeque<Refused<P>>,
    next_incoming: u64,
    answers: AnswerLimiter<(P, u64)>,
    control: VecDeque<Control<P>>,
    events: VecDeque<Event<P>>,
    due: Vec<u32>,
    stats: EndpointStats,
}

impl<P: Clone + Debug + Ord + Hash> Endpoint<P> {
    /// An endpoint with no connections. `secret` keys the handshake cookies (its first 16
    /// bytes) and the connection ids (its last 16): give it fresh OS randomness in
    /// production, and a constant in tests to replay a run exactly.
    pub fn new(config: Arc<Config>, secret: [u8; 32]) -> Self {
        let mut cookie_key = [0; 16];
        let mut id_key = [0; 16];
        cookie_key.copy_from_slice(&secret[..16]);
        id_key.copy_from_slice(&secret[16..]);
        let answers =
            AnswerLimiter::new(config.answer_limit_entries(), config.answer_limit_window());
        Self {
            cookies: CookieKey::new(cookie_key, config.cookie_lifetime()),
            ids: IdGenerator::new(id_key),
            config,
            conns: Slots::default(),
            by_id: BTreeMap::new(),
            by_remote: BTreeMap::new(),
            incoming: VecDeque::new(),
            refused: VecDeque::new(),
            next_incoming: 0,
            answers,
            control: VecDeque::new(),
            events: VecDeque::new(),
            due: Vec::new(),
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

    /// How many connections the endpoint holds (closed ones not yet forgotten included).
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// How many incoming connections wait for `accept` or `refuse`.
    pub fn pending_incoming(&self) -> usize {
        self.incoming.len()
    }

    /// Replaces the cookie key (16 bytes of fresh entropy); cookies issued with the old key
    /// stay valid until they expire.
    pub fn rotate_cookie_key(&mut self, secret: [u8; 16]) {
        self.cookies.rotate(secret);
    }

    // ---- opening connections -------------------------------------------------------

    /// Opens a connection to `peer`; the CONNECT goes out with the next
    /// [`poll_transmit`](Machine::poll_transmit), and [`Event::Connected`] (or
    /// [`Event::Closed`]) tells how it went.
    ///
    /// # Errors
    ///
    /// [`ConnectError::TooManyConnections`] at the connection limit.
    pub fn connect(&mut self, now: Instant, peer: P) -> Result<ConnectionHandle, ConnectError> {
        self.expire(now);
        if self.conns.len() + self.incoming.len() >= self.config.max_connections() {
            return Err(ConnectError::TooManyConnections);
        }
        let recv_id = self.fresh_id();
        let conn = Connection::connect(peer, recv_id, self.config.clone(), now);
        Ok(self.insert(now, conn))
    }

    /// Accepts an incoming connection announced by [`Event::Incoming`]. The connection is
    /// established at once: it may send, and its CONNECT-ACK goes out with the next
    /// transmit.
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
        let pending = self.incoming.remove(pos).ok_or(AcceptError::Unknown)?;
        let recv_id = self.fresh_id();
        let conn = Connection::accepted(
            pending.peer.clone(),
            recv_id,
            pending.remote_id,
            pending.max_message,
            pending.window,
            self.config.clone(),
            now,
        );
        let handle = self.insert(now, conn);
        self.by_remote.insert((pending.peer, pending.remote_id), handle.0.index);
        Ok(handle)
    }

    /// Refuses an incoming connection: the starter gets a CLOSE (code 0, "connection
    /// refused"). Unknown ids are ignored.
    pub fn refuse(&mut self, incoming: IncomingId) {
        if let Some(pos) = self.incoming.iter().position(|p| p.id == incoming) {
            if let Some(p) = self.incoming.remove(pos) {
                self.stats.incoming_refused += 1;
                self.refuse_pending(p, CloseCode::Normal, REFUSED);
            }
        }
    }

    fn fresh_id(&mut self) -> u64 {
        loop {
            let id = self.ids.next_id();
            if !self.by_id.contains_key(&id) {
                return id;
            }
        }
    }

    fn insert(&mut self, now: Instant, conn: Connection<P>) -> ConnectionHandle {
        let recv_id = conn.recv_id;
        let key = self.conns.insert(conn);
        self.by_id.insert(recv_id, key.index);
        self.touch(key.index, now);
        ConnectionHandle(key)
    }

    // ---- application commands on connections ---------------------------------------

    fn conn(&self, h: ConnectionHandle) -> Option<&Connection<P>> {
        self.conns.get(h.0)
    }

    /// Queues `message` to be delivered whole, exactly once and in order; returns its
    /// message number.
    ///
    /// # Errors
    ///
    /// [`SendError::TooLarge`] for a message larger than the peer accepts or the send
    /// buffer holds; [`SendError::Blocked`] when the send buffer is full (wait for
    /// [`Event::Writable`]); [`SendError::NotConnected`] before the handshake finished;
    /// [`SendError::Closed`] when the connection is gone.
    pub fn send(&mut self, h: ConnectionHandle, message: &[u8]) -> Result<u64, SendError> {
        let conn = self.conns.get_mut(h.0).ok_or(SendError::Closed)?;
        let number = conn.send(message)?;
        self.conns.schedule(h.0.index);
        Ok(number)
    }

    /// Takes the next whole message, in order.
    ///
    /// # Errors
    ///
    /// [`RecvError::Blocked`] when none has arrived (wait for [`Event::Readable`]);
    /// [`RecvError::Closed`] when the connection ended and every message it delivered has
    /// been received.
    pub fn recv(&mut self, now: Instant, h: ConnectionHandle) -> Result<Vec<u8>, RecvError> {
        let conn = self.conns.get_mut(h.0).ok_or(RecvError::Closed)?;
        let message = conn.recv();
        self.touch(h.0.index, now);
        message
    }

    /// Queues an unreliable datagram: sent once, unacknowledged, within the congestion
    /// window.
    ///
    /// # Errors
    ///
    /// [`SendDirectError::TooLarge`] when it does not fit one datagram (it is never split
    /// or truncated); [`SendDirectError::Blocked`] when `direct_queue` datagrams wait
    /// already; [`SendDirectError::NotConnected`] before the handshake finished;
    /// [`SendDirectError::Closed`] when the connection is gone.
    pub fn send_direct(
        &mut self,
        h: ConnectionHandle,
        payload: &[u8],
    ) -> Result<(), SendDirectError> {
        let conn = self.conns.get_mut(h.0).ok_or(SendDirectError::Closed)?;
        conn.send_direct(payload)?;
        self.conns.schedule(h.0.index);
        Ok(())
    }

    /// Takes the next direct datagram received.
    ///
    /// # Errors
    ///
    /// [`RecvError::Blocked`] when none has arrived (wait for [`Event::Direct`]);
    /// [`RecvError::Closed`] when the connection ended and all were received.
    pub fn recv_direct(&mut self, now: Instant, h: ConnectionHandle) -> Result<Vec<u8>, RecvError> {
        let conn = self.conns.get_mut(h.0).ok_or(RecvError::Closed)?;
        let payload = conn.recv_direct();
        self.touch(h.0.index, now);
        payload
    }

    /// Closes the connection at once: the CLOSE (with `code` and `reason`) goes out with
    /// the next transmit, nothing queued is sent any more, and [`Event::Closed`] follows.
    /// Messages already delivered stay receivable. To close after everything was
    /// delivered, wait for [`Event::Flushed`] first.
    ///
    /// # Errors
    ///
    /// [`CloseError::ReasonTooLong`] for a reason over 512 bytes (or over what fits a
    /// datagram); [`CloseError::ReservedCode`] for an application code that has its own
    /// variant; [`CloseError::Closed`] when the connection is closed already.
    pub fn close(
        &mut self,
        now: Instant,
        h: ConnectionHandle,
        code: CloseCode,
        reason: &str,
    ) -> Result<(), CloseError> {
        let conn = self.conns.get_mut(h.0).ok_or(CloseError::Closed)?;
        conn.close(now, code, reason)?;
        self.touch(h.0.index, now);
        Ok(())
    }

    /// The connection's statistics; `None` once it is gone.
    pub fn stats(&self, h: ConnectionHandle) -> Option<ConnectionStats> {
        self.conn(h).map(Connection::stats)
    }

    /// Where the connection is in its life; `None` once it is gone.
    pub fn state(&self, h: ConnectionHandle) -> Option<State> {
        self.conn(h).map(Connection::state)
    }

    /// The connection's peer.
    pub fn peer(&self, h: ConnectionHandle) -> Option<&P> {
        self.conn(h).map(|c| &c.peer)
    }

    /// The connection ids: (the one we receive on, the peer's; 0 before the handshake
    /// finished).
    pub fn connection_ids(&self, h: ConnectionHandle) -> Option<(u64, u64)> {
        self.conn(h).map(|c| (c.recv_id, c.remote_id))
    }

    /// Whole messages ready to [`recv`](Self::recv).
    pub fn readable(&self, h: ConnectionHandle) -> usize {
        self.conn(h).map_or(0, Connection::readable)
    }

    /// The largest message [`send`](Self::send) would take now (0 when it would take none).
    pub fn writable(&self, h: ConnectionHandle) -> usize {
        self.conn(h).map_or(0, Connection::writable)
    }

    /// The largest message this connection can ever send (0 before the handshake).
    pub fn max_message(&self, h: ConnectionHandle) -> usize {
        self.conn(h).map_or(0, Connection::max_message)
    }

    /// The longest reason [`close`](Self::close) accepts on this connection.
    pub fn max_close_reason(&self, h: ConnectionHandle) -> usize {
        self.conn(h).map_or(0, Connection::max_reason)
    }

    /// Whether every message sent so far has been acknowledged (held by the peer, which
    /// delivers them in order). `false` before the handshake finished and once closed.
    pub fn is_flushed(&self, h: ConnectionHandle) -> bool {
        self.conn(h).is_some_and(Connection::is_flushed)
    }

    // ---- internals -----------------------------------------------------------------

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
        if core::mem::take(&mut conn.newly_established) {
            self.by_remote.insert((conn.peer.clone(), conn.remote_id), index);
        }
        while let Some(event) = conn.poll_event() {
            self.events.push_back(match event {
                ConnEvent::Connected => Event::Connected(handle),
                ConnEvent::Readable => Event::Readable(handle),
                ConnEvent::Direct => Event::Direct(handle),
                ConnEvent::Writable => Event::Writable(handle),
                ConnEvent::Flushed => Event::Flushed(handle),
                ConnEvent::Closed(reason) => Event::Closed { handle, reason },
            });
        }
        if conn.is_removable(now) {
            let (recv_id, remote) = (conn.recv_id, (conn.peer.clone(), conn.remote_id));
            self.conns.remove(index);
            self.by_id.remove(&recv_id);
            if self.by_remote.get(&remote) == Some(&index) {
                self.by_remote.remove(&remote);
            }
            return;
        }
        // A closed connection past its linger waits only for the application to read what
        // is left (`recv` touches it): a deadline already passed would fire for ever.
        let next = conn.next_timeout().filter(|&t| t > now || !conn.is_closed());
        self.conns.arm(index, next);
    }

    fn push_control(&mut self, peer: P, datagram: Datagram<'_>) {
        if self.control.len() >= MAX_CONTROL {
            self.stats.answers_dropped += 1;
            return;
        }
        let mut buf = Vec::with_capacity(MIN_CONNECT_LEN);
        datagram.emit(&mut buf);
        let mut bytes = [0; MIN_CONNECT_LEN];
        let len = buf.len().min(MIN_CONNECT_LEN);
        bytes[..len].copy_from_slice(&buf[..len]);
        self.control.push_back(Control { peer, bytes, len: len as u8 });
    }

    fn queue_close(&mut self, peer: P, dst_id: u64, code: CloseCode, reason: &'static str) {
        self.push_control(peer, Datagram { dst_id, packet: Packet::Close { code, reason } });
    }

    /// Refuses incoming connections nobody accepted in time, and forgets refused starters
    /// whose cookies have expired.
    fn expire(&mut self, now: Instant) {
        while self.incoming.front().is_some_and(|p| now >= p.deadline) {
            if let Some(p) = self.incoming.pop_front() {
                self.stats.incoming_refused += 1;
                self.refuse_pending(p, CloseCode::LimitExceeded, EXPIRED);
            }
        }
        while self.refused.front().is_some_and(|r| now >= r.until) {
            self.refused.pop_front();
        }
    }

    /// Sends the CLOSE that refuses a pending connection, and remembers it to send again
    /// for as long as the starter's cookie may be valid.
    fn refuse_pending(&mut self, p: Pending<P>, code: CloseCode, reason: &'static str) {
        // The cookie was valid when the CONNECT came, `incoming_timeout` before the deadline,
        // and may stay so for `cookie_lifetime` plus a second (its clock is in seconds).
        let until = p.deadline - self.config.incoming_timeout()
            + self.config.cookie_lifetime()
            + Duration::from_secs(1);
        if self.refused.len() >= MAX_REFUSED {
            self.refused.pop_front();
        }
        self.refused.push_back(Refused {
            peer: p.peer.clone(),
            remote_id: p.remote_id,
            reason,
            code,
            until,
        });
        self.queue_close(p.peer, p.remote_id, code, reason);
    }

    fn handle_connect(
        &mut self,
        now: Instant,
        peer: P,
        src_id: u64,
        max_message: u32,
        window: u32,
        cookie: Option<&[u8; COOKIE_LEN]>,
    ) {
        // The starter's CONNECT again: its CONNECT-ACK was lost. Its address was proven
        // when the connection was accepted.
        if let Some(&index) = self.by_remote.get(&(peer.clone(), src_id)) {
            if let Some(conn) = self.conns.at_mut(index) {
                conn.resend_accept();
            }
            self.touch(index, now);
            return;
        }
        let verified = cookie.is_some_and(|c| {
            let ok = self.cookies.verify(now, &peer, src_id, c).is_ok();
            if !ok {
                self.stats.bad_cookies += 1;
            }
            ok
        });
        if !verified {
            // A first CONNECT, or a cookie forged or expired: a (new) challenge, smaller
            // than the CONNECT, and no state.
            let cookie = self.cookies.issue(now, &peer, src_id);
            self.stats.challenges_sent += 1;
            let packet = Packet::ConnectAck(ConnectAck::Challenge { cookie: &cookie });
            self.push_control(peer, Datagram { dst_id: src_id, packet });
            return;
        }
        if self.incoming.iter().any(|p| p.peer == peer && p.remote_id == src_id) {
            return; // a retransmission while the application decides
        }
        if let Some(r) = self.refused.iter().find(|r| r.peer == peer && r.remote_id == src_id) {
            // Refused already: the refusal again (it may have been lost), not a new Incoming.
            let (code, reason) = (r.code, r.reason);
            self.queue_close(peer, src_id, code, reason);
            return;
        }
        if self.incoming.len() >= self.config.max_pending()
            || self.conns.len() + self.incoming.len() >= self.config.max_connections()
        {
            self.stats.incoming_refused += 1;
            self.queue_close(peer, src_id, CloseCode::LimitExceeded, BUSY);
            return;
        }
        let id = IncomingId(self.next_incoming);
        self.next_incoming += 1;
        self.events.push_back(Event::Incoming { id, peer: peer.clone() });
        self.incoming.push_back(Pending {
            id,
            peer,
            remote_id: src_id,
            max_message,
            window,
            deadline: now + self.config.incoming_timeout(),
        });
    }

    /// A packet for no connection we have: answer with CLOSE code 5 naming the unknown id,
    /// so a peer that lost us learns it at once; never to a CLOSE, never with more bytes
    /// than came, and rate-limited.
    fn answer_unknown(&mut self, now: Instant, peer: P, dst_id: u64, datagram_len: usize) {
        self.stats.unknown_connection += 1;
        if datagram_len < CLOSE_LEN || !self.answers.allow(now, &(peer.clone(), dst_id)) {
            self.stats.unknown_answers_suppressed += 1;
            return;
        }
        self.stats.unknown_answers += 1;
        self.queue_close(peer, dst_id, CloseCode::UnknownConnection, "");
    }
}

impl<P: Clone + Debug + Ord + Hash> Machine for Endpoint<P> {
    type Peer = P;
    type Event = Event<P>;

    fn handle_datagram(&mut self, now: Instant, remote: P, data: &[u8]) {
        self.stats.datagrams_received += 1;
        self.expire(now);
        let Ok(datagram) = Datagram::parse(data) else {
            self.stats.malformed += 1;
            return;
        };
        let dst_id = datagram.dst_id;
        match datagram.packet {
            Packet::Connect { src_id, max_message, window, cookie } => {
                self.handle_connect(now, remote, src_id, max_message, window, cookie);
            }
            packet => match self.by_id.get(&dst_id).copied() {
                Some(index) => {
                    let Some(conn) = self.conns.at_mut(index) else { return };
                    if conn.peer != remote {
                        self.stats.wrong_peer += 1;
                        return;
                    }
                    conn.handle_packet(now, &packet, data.len());
                    self.touch(index, now);
                }
                None => match packet {
                    Packet::Close { code: CloseCode::UnknownConnection, .. } => {
                        // The peer forgot the connection we send to with this id.
                        match self.by_remote.get(&(remote, dst_id)).copied() {
                            Some(index) => {
                                if let Some(conn) = self.conns.at_mut(index) {
                                    conn.handle_unknown(now);
                                }
                                self.touch(index, now);
                            }
                            None => self.stats.unknown_connection += 1,
                        }
                    }
                    Packet::Close { .. } => self.stats.unknown_connection += 1,
                    _ => self.answer_unknown(now, remote, dst_id, data.len()),
                },
            },
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.expire(now);
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
        if let Some(control) = self.control.pop_front() {
            buf.clear();
            buf.extend_from_slice(&control.bytes[..usize::from(control.len)]);
            self.stats.datagrams_sent += 1;
            return Some(Transmit::single(control.peer, buf.len()));
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
