//! What a uTP socket's handles and its driver share: the endpoint and every waker.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::task::{Context, Waker};

use utp_proto::Machine;
use utp_proto::utp::{AcceptError, ConnectionError, ConnectionHandle, Endpoint, Event, IncomingId};

use crate::driver::{Core, Driven, Wakers};
use crate::runtime::Runtime;
use crate::transport::PeerAddr;

/// The endpoint and the wakers of everything waiting on it.
pub(crate) struct State<A: PeerAddr> {
    pub(crate) endpoint: Endpoint<A>,
    pub(crate) core: Core,
    pub(crate) streams: HashMap<ConnectionHandle, StreamState>,
    /// Incoming connections announced and not yet taken by `accept`.
    incoming: VecDeque<IncomingId>,
    accept_wakers: Wakers,
    /// Streams waiting in `poll_close` for everything to be acknowledged.
    flush_waiters: Vec<ConnectionHandle>,
}

/// What a stream handle waits for, and what is left of a connection that ended.
#[derive(Debug, Default)]
pub(crate) struct StreamState {
    pub(crate) read: Option<Waker>,
    pub(crate) write: Option<Waker>,
    pub(crate) connect: Option<Waker>,
    pub(crate) close: Option<Waker>,
    pub(crate) connected: bool,
    /// How the connection ended, once it has.
    pub(crate) result: Option<Result<(), ConnectionError>>,
    /// Bytes received in order but not yet read when the connection ended: taken out of
    /// the endpoint at once, because it forgets the connection soon after.
    pub(crate) leftover: VecDeque<u8>,
}

impl StreamState {
    fn wake_all(&mut self) {
        for waker in [&mut self.read, &mut self.write, &mut self.connect, &mut self.close] {
            if let Some(w) = waker.take() {
                w.wake();
            }
        }
    }
}

impl<A: PeerAddr> State<A> {
    pub(crate) fn new(endpoint: Endpoint<A>, runtime: Arc<dyn Runtime>) -> Self {
        Self {
            endpoint,
            core: Core::new(runtime),
            streams: HashMap::new(),
            incoming: VecDeque::new(),
            accept_wakers: Wakers::default(),
            flush_waiters: Vec::new(),
        }
    }

    /// The endpoint's clock.
    pub(crate) fn now(&self) -> utp_proto::Instant {
        self.core.now()
    }

    pub(crate) fn wake_driver(&mut self) {
        self.core.wake_driver();
    }

    /// Takes the next announced incoming connection, if any, accepting it in the
    /// endpoint. Entries that expired meanwhile are skipped.
    pub(crate) fn take_incoming(&mut self) -> Option<Result<ConnectionHandle, AcceptError>> {
        let now = self.now();
        while let Some(id) = self.incoming.pop_front() {
            match self.endpoint.accept(now, id) {
                Ok(h) => {
                    self.streams.insert(h, StreamState::default());
                    self.after_command();
                    return Some(Ok(h));
                }
                Err(AcceptError::Unknown) => {}
                Err(e) => {
                    self.endpoint.refuse(now, id);
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

    pub(crate) fn wait_flushed(&mut self, h: ConnectionHandle) {
        if !self.flush_waiters.contains(&h) {
            self.flush_waiters.push(h);
        }
    }

    /// After an application command: hand the endpoint's events to their waiters and
    /// let the driver send what the command produced.
    pub(crate) fn after_command(&mut self) {
        self.dispatch_events();
        self.wake_driver();
    }

    /// The last socket handle went away: refuse what waits for `accept`.
    pub(crate) fn socket_dropped(&mut self) {
        self.core.sockets -= 1;
        if self.core.sockets == 0 {
            let now = self.now();
            for id in self.incoming.drain(..) {
                self.endpoint.refuse(now, id);
            }
            self.accept_wakers.wake();
        }
        self.after_command();
    }

    fn closed(&mut self, h: ConnectionHandle, result: Result<(), ConnectionError>) {
        let Some(stream) = self.streams.get_mut(&h) else { return };
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n @ 1..) = self.endpoint.read(h, &mut buf) {
            stream.leftover.extend(&buf[..n]);
        }
        stream.result = Some(result);
        stream.wake_all();
    }
}

impl<A: PeerAddr> Driven for State<A> {
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
                        let now = self.now();
                        self.endpoint.refuse(now, id);
                        continue;
                    }
                    // Entries beyond the endpoint's own cap have expired there already.
                    if self.incoming.len() >= self.endpoint.config().max_pending_incoming() {
                        self.incoming.pop_front();
                    }
                    self.incoming.push_back(id);
                    self.accept_wakers.wake();
                }
                Event::Connected(h) => {
                    if let Some(s) = self.streams.get_mut(&h) {
                        s.connected = true;
                        for w in
                            [s.connect.take(), s.write.take(), s.read.take()].into_iter().flatten()
                        {
                            w.wake();
                        }
                    }
                }
                Event::Readable(h) => {
                    if let Some(w) = self.streams.get_mut(&h).and_then(|s| s.read.take()) {
                        w.wake();
                    }
                }
                Event::Writable(h) => {
                    if let Some(w) = self.streams.get_mut(&h).and_then(|s| s.write.take()) {
                        w.wake();
                    }
                }
                Event::Closed { handle, result } => self.closed(handle, result),
                _ => {}
            }
        }
    }

    fn after_round(&mut self) {
        let endpoint = &self.endpoint;
        let streams = &mut self.streams;
        self.flush_waiters.retain(|h| {
            if endpoint.is_flushed(*h) {
                if let Some(w) = streams.get_mut(h).and_then(|s| s.close.take()) {
                    w.wake();
                }
                false
            } else {
                true
            }
        });
    }

    fn finished(&mut self) -> bool {
        self.core.sockets == 0 && self.endpoint.connection_count() == 0
    }

    fn stop(&mut self) {
        self.core.stop();
        for s in self.streams.values_mut() {
            s.wake_all();
        }
        self.accept_wakers.wake();
    }
}
