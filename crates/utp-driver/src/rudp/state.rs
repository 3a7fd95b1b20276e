//! What a rudp socket's handles and its driver share: the endpoint and every waker.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::task::Context;

use utp_proto::Machine;
use utp_proto::rudp::{
    AcceptError, CloseReason, ConnectionHandle, Endpoint, Event, IncomingId, RecvError,
};

use crate::driver::{Core, Driven, Wakers};
use crate::runtime::Runtime;
use crate::transport::PeerAddr;

/// What a connection's handle waits for, and what is left of a connection that ended.
#[derive(Debug, Default)]
pub(crate) struct ConnState {
    pub(crate) recv: Wakers,
    pub(crate) send: Wakers,
    pub(crate) direct: Wakers,
    pub(crate) connect: Wakers,
    pub(crate) flush: Wakers,
    pub(crate) connected: bool,
    /// Why the connection ended, once it has.
    pub(crate) closed: Option<CloseReason>,
    /// Messages and direct datagrams delivered but not yet received when the connection
    /// ended: taken out of the endpoint at once, so that nothing delivered is lost.
    pub(crate) leftover: VecDeque<Vec<u8>>,
    pub(crate) leftover_direct: VecDeque<Vec<u8>>,
}

/// Which of a connection's two receive queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Inbox {
    /// Whole messages.
    Messages,
    /// Direct datagrams.
    Direct,
}

impl ConnState {
    /// What was left in `inbox` when the connection ended, and the tasks waiting on it.
    pub(crate) fn inbox(&mut self, inbox: Inbox) -> (&mut VecDeque<Vec<u8>>, &mut Wakers) {
        match inbox {
            Inbox::Messages => (&mut self.leftover, &mut self.recv),
            Inbox::Direct => (&mut self.leftover_direct, &mut self.direct),
        }
    }

    fn wake_all(&mut self) {
        for w in
            [&mut self.recv, &mut self.send, &mut self.direct, &mut self.connect, &mut self.flush]
        {
            w.wake();
        }
    }
}

/// The endpoint and the wakers of everything waiting on it.
pub(crate) struct State<A: PeerAddr> {
    pub(crate) endpoint: Endpoint<A>,
    pub(crate) core: Core,
    pub(crate) conns: HashMap<ConnectionHandle, ConnState>,
    /// Incoming connections announced and not yet taken by `accept`.
    incoming: VecDeque<IncomingId>,
    accept_wakers: Wakers,
}

impl<A: PeerAddr + std::hash::Hash> State<A> {
    pub(crate) fn new(endpoint: Endpoint<A>, runtime: Arc<dyn Runtime>) -> Self {
        Self {
            endpoint,
            core: Core::new(runtime),
            conns: HashMap::new(),
            incoming: VecDeque::new(),
            accept_wakers: Wakers::default(),
        }
    }

    pub(crate) fn now(&self) -> utp_proto::Instant {
        self.core.now()
    }

    /// After an application command: hand the endpoint's events to their waiters and
    /// let the driver send what the command produced.
    pub(crate) fn after_command(&mut self) {
        self.dispatch_events();
        self.core.wake_driver();
    }

    /// Takes the next announced incoming connection, if any, accepting it in the
    /// endpoint. Entries that expired meanwhile are skipped.
    pub(crate) fn take_incoming(&mut self) -> Option<Result<ConnectionHandle, AcceptError>> {
        let now = self.now();
        while let Some(id) = self.incoming.pop_front() {
            match self.endpoint.accept(now, id) {
                Ok(h) => {
                    self.conns.insert(h, ConnState { connected: true, ..ConnState::default() });
                    self.after_command();
                    return Some(Ok(h));
                }
                Err(AcceptError::Unknown) => {}
                Err(e) => {
                    self.endpoint.refuse(id);
                    self.after_command();
                    return Some(Err(e));
                }
            }
        }
        None
    }

    pub(crate) fn register_accept(&mut self, cx: &Context<'_>) {
        self.accept_wakers.register(cx);
    }

    /// The last socket handle went away: refuse what waits for `accept`.
    pub(crate) fn socket_dropped(&mut self) {
        self.core.sockets -= 1;
        if self.core.sockets == 0 {
            for id in self.incoming.drain(..) {
                self.endpoint.refuse(id);
            }
            self.accept_wakers.wake();
        }
        self.after_command();
    }

    fn closed(&mut self, h: ConnectionHandle, reason: CloseReason) {
        let now = self.now();
        let Some(conn) = self.conns.get_mut(&h) else { return };
        while let Ok(message) = self.endpoint.recv(now, h) {
            conn.leftover.push_back(message);
        }
        while let Ok(payload) = self.endpoint.recv_direct(now, h) {
            conn.leftover_direct.push_back(payload);
        }
        debug_assert!(matches!(self.endpoint.recv(now, h), Err(RecvError::Closed)));
        conn.closed = Some(reason);
        conn.wake_all();
    }
}

impl<A: PeerAddr + std::hash::Hash> Driven for State<A> {
    type Machine = Endpoint<A>;

    fn machine(&mut self) -> &mut Endpoint<A> {
        &mut self.endpoint
    }

    fn core(&mut self) -> &mut Core {
        &mut self.core
    }

    fn dispatch_events(&mut self) {
        while let Some(event) = self.endpoint.poll_event() {
            match event {
                Event::Incoming { id, .. } => {
                    if self.core.sockets == 0 {
                        self.endpoint.refuse(id);
                        continue;
                    }
                    // Entries beyond the endpoint's own cap have expired there already.
                    if self.incoming.len() >= self.endpoint.config().max_pending() {
                        self.incoming.pop_front();
                    }
                    self.incoming.push_back(id);
                    self.accept_wakers.wake();
                }
                Event::Connected(h) => {
                    if let Some(c) = self.conns.get_mut(&h) {
                        c.connected = true;
                        c.connect.wake();
                    }
                }
                Event::Readable(h) => {
                    if let Some(c) = self.conns.get_mut(&h) {
                        c.recv.wake();
                    }
                }
                Event::Direct(h) => {
                    if let Some(c) = self.conns.get_mut(&h) {
                        c.direct.wake();
                    }
                }
                Event::Writable(h) => {
                    if let Some(c) = self.conns.get_mut(&h) {
                        c.send.wake();
                    }
                }
                Event::Flushed(h) => {
                    if let Some(c) = self.conns.get_mut(&h) {
                        c.flush.wake();
                    }
                }
                Event::Closed { handle, reason } => self.closed(handle, reason),
                _ => {}
            }
        }
    }

    fn finished(&mut self) -> bool {
        self.core.sockets == 0 && self.endpoint.connection_count() == 0
    }

    fn stop(&mut self) {
        self.core.stop();
        for c in self.conns.values_mut() {
            c.wake_all();
        }
        self.accept_wakers.wake();
    }
}
