//! The driver task: one per socket, pumping one uTP [`Endpoint`] over one [`Transport`].
//!
//! The endpoint and everything the user handles need to find each other live in
//! [`State`], behind one mutex. Every lock is held for a few synchronous calls into the
//! core and never across an `.await`. Whoever holds the lock after changing the endpoint
//! dispatches its events (so wakers fire at once) and wakes the driver task, which alone
//! talks to the transport.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use utp_proto::utp::{ConnectionError, ConnectionHandle, Endpoint, Event, IncomingId};
use utp_proto::{Instant, Machine};

use crate::runtime::{AsyncTimer, Runtime};
use crate::transport::{PeerAddr, Transport};

/// Datagrams received per round before transmits are drained again.
const RECV_BATCH: usize = 64;
/// Rounds per wake-up before the driver yields to other tasks.
const ROUNDS: usize = 16;
/// The largest datagram the driver receives.
const MAX_DATAGRAM: usize = 65_536;

/// What the user handles and the driver task share.
pub(crate) struct Shared<A: PeerAddr> {
    state: Mutex<State<A>>,
}

impl<A: PeerAddr> Shared<A> {
    pub(crate) fn new(state: State<A>) -> Self {
        Self { state: Mutex::new(state) }
    }

    /// Locks the state. A panic elsewhere while locked leaves the state usable: every
    /// method below keeps it consistent between calls into the endpoint.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State<A>> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<A: PeerAddr> fmt::Debug for Shared<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

/// The endpoint and the wakers of everything waiting on it.
pub(crate) struct State<A: PeerAddr> {
    pub(crate) endpoint: Endpoint<A>,
    runtime: Arc<dyn Runtime>,
    epoch: std::time::Instant,
    driver: Option<Waker>,
    pub(crate) streams: HashMap<ConnectionHandle, StreamState>,
    /// Incoming connections announced and not yet taken by `accept`.
    incoming: VecDeque<IncomingId>,
    accept_wakers: Vec<Waker>,
    /// Streams waiting in `poll_close` for everything to be acknowledged.
    flush_waiters: Vec<ConnectionHandle>,
    /// Live `UtpSocket` handles; with none left, incoming connections are refused and the
    /// driver ends once the last connection is gone.
    pub(crate) sockets: usize,
    /// The driver task ended; nothing will be sent or received any more.
    pub(crate) stopped: bool,
    /// How many times the driver has handed everything the endpoint had to send to the
    /// transport; `close` waits for the next one so its last packets leave before it
    /// resolves (and before a process that exits right after it ends).
    pub(crate) drains: u64,
    drain_wakers: Vec<Waker>,
    pub(crate) stats: DriverStats,
}

/// Counters of what the driver saw at the transport.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct DriverStats {
    /// Datagrams received and handed to the endpoint.
    pub datagrams_received: u64,
    /// Datagrams sent.
    pub datagrams_sent: u64,
    /// Receive errors reported by the transport (counted and skipped).
    pub recv_errors: u64,
    /// Send errors reported by the transport (the datagram is dropped; uTP retransmits).
    pub send_errors: u64,
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

/// Stores `cx`'s waker in `slot` unless an equivalent one is there.
pub(crate) fn register(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

impl<A: PeerAddr> State<A> {
    pub(crate) fn new(endpoint: Endpoint<A>, runtime: Arc<dyn Runtime>) -> Self {
        let epoch = runtime.now();
        Self {
            endpoint,
            runtime,
            epoch,
            driver: None,
            streams: HashMap::new(),
            incoming: VecDeque::new(),
            accept_wakers: Vec::new(),
            flush_waiters: Vec::new(),
            sockets: 1,
            stopped: false,
            drains: 0,
            drain_wakers: Vec::new(),
            stats: DriverStats::default(),
        }
    }

    /// The endpoint's clock: microseconds since the socket was made.
    pub(crate) fn now(&self) -> Instant {
        let since = self.runtime.now().saturating_duration_since(self.epoch);
        Instant::from_micros(u64::try_from(since.as_micros()).unwrap_or(u64::MAX))
    }

    fn to_std(&self, t: Instant) -> std::time::Instant {
        let far = Duration::from_secs(86_400 * 365);
        let since = Duration::from_micros(t.as_micros()).min(far);
        self.epoch + since
    }

    pub(crate) fn wake_driver(&mut self) {
        if let Some(w) = &self.driver {
            w.wake_by_ref();
        }
    }

    /// Takes the next announced incoming connection, if any, accepting it in the
    /// endpoint. Entries that expired meanwhile are skipped.
    pub(crate) fn take_incoming(
        &mut self,
    ) -> Option<Result<ConnectionHandle, utp_proto::utp::AcceptError>> {
        let now = self.now();
        while let Some(id) = self.incoming.pop_front() {
            match self.endpoint.accept(now, id) {
                Ok(h) => {
                    self.streams.insert(h, StreamState::default());
                    self.after_command();
                    return Some(Ok(h));
                }
                Err(utp_proto::utp::AcceptError::Unknown) => {}
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
        if !self.accept_wakers.iter().any(|w| w.will_wake(cx.waker())) {
            self.accept_wakers.push(cx.waker().clone());
        }
    }

    /// Wakes `cx` after the driver's next complete drain of transmits.
    pub(crate) fn register_drain(&mut self, cx: &Context<'_>) {
        if !self.drain_wakers.iter().any(|w| w.will_wake(cx.waker())) {
            self.drain_wakers.push(cx.waker().clone());
        }
        self.wake_driver();
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
        self.sockets -= 1;
        if self.sockets == 0 {
            let now = self.now();
            for id in self.incoming.drain(..) {
                self.endpoint.refuse(now, id);
            }
            for w in self.accept_wakers.drain(..) {
                w.wake();
            }
        }
        self.after_command();
    }

    pub(crate) fn dispatch_events(&mut self) {
        while let Some(event) = self.endpoint.poll_event() {
            match event {
                Event::Incoming { id, .. } => {
                    if self.sockets == 0 {
                        let now = self.now();
                        self.endpoint.refuse(now, id);
                        continue;
                    }
                    // Entries beyond the endpoint's own cap have expired there already.
                    if self.incoming.len() >= self.endpoint.config().max_pending_incoming() {
                        self.incoming.pop_front();
                    }
                    self.incoming.push_back(id);
                    for w in self.accept_wakers.drain(..) {
                        w.wake();
                    }
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

    fn closed(&mut self, h: ConnectionHandle, result: Result<(), ConnectionError>) {
        let Some(stream) = self.streams.get_mut(&h) else { return };
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n @ 1..) = self.endpoint.read(h, &mut buf) {
            stream.leftover.extend(&buf[..n]);
        }
        stream.result = Some(result);
        stream.wake_all();
    }

    fn check_flushed(&mut self) {
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

    fn stop(&mut self) {
        self.stopped = true;
        for s in self.streams.values_mut() {
            s.wake_all();
        }
        for w in self.accept_wakers.drain(..).chain(self.drain_wakers.drain(..)) {
            w.wake();
        }
    }
}

/// The task that pumps one endpoint over one transport.
pub(crate) struct Driver<T: Transport> {
    shared: Arc<Shared<T::Addr>>,
    transport: Box<T>,
    timer: Pin<Box<dyn AsyncTimer>>,
    timer_at: Option<std::time::Instant>,
    recv_buf: Vec<u8>,
    send_buf: Vec<u8>,
    /// A transmit the transport could not take yet: destination, bytes sent of it, its
    /// size and its segment size.
    pending: Option<PendingTransmit<T::Addr>>,
}

struct PendingTransmit<A> {
    to: A,
    offset: usize,
    size: usize,
    segment: usize,
}

impl<T: Transport> Driver<T> {
    pub(crate) fn new(
        shared: Arc<Shared<T::Addr>>,
        transport: T,
        runtime: &Arc<dyn Runtime>,
    ) -> Self {
        let far = runtime.now() + Duration::from_secs(86_400 * 365);
        Self {
            shared,
            transport: Box::new(transport),
            timer: runtime.new_timer(far),
            timer_at: None,
            recv_buf: vec![0; MAX_DATAGRAM],
            send_buf: Vec::with_capacity(MAX_DATAGRAM),
            pending: None,
        }
    }

    /// Sends until the endpoint has nothing more or the transport is full.
    fn drain_transmits(&mut self, st: &mut State<T::Addr>, cx: &mut Context<'_>, now: Instant) {
        loop {
            let pending = match &mut self.pending {
                Some(p) => p,
                None => match st.endpoint.poll_transmit(now, &mut self.send_buf) {
                    Some(t) => self.pending.insert(PendingTransmit {
                        to: t.destination,
                        offset: 0,
                        size: t.size.min(self.send_buf.len()),
                        segment: t.segment_size.unwrap_or(t.size).max(1),
                    }),
                    None => return,
                },
            };
            while pending.offset < pending.size {
                let end = (pending.offset + pending.segment).min(pending.size);
                match self.transport.poll_send(cx, &self.send_buf[pending.offset..end], &pending.to)
                {
                    Poll::Ready(Ok(())) => st.stats.datagrams_sent += 1,
                    Poll::Ready(Err(e)) => {
                        tracing::debug!(error = %e, to = ?pending.to, "send failed; datagram dropped");
                        st.stats.send_errors += 1;
                    }
                    Poll::Pending => return,
                }
                pending.offset = end;
            }
            self.pending = None;
        }
    }
}

impl<T: Transport> Future for Driver<T> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let shared = this.shared.clone();
        let mut st = shared.lock();
        register(&mut st.driver, cx);
        for _ in 0..ROUNDS {
            let now = st.now();
            let mut received = 0;
            while received < RECV_BATCH {
                match this.transport.poll_recv(cx, &mut this.recv_buf) {
                    Poll::Ready(Ok((n, from))) => {
                        st.stats.datagrams_received += 1;
                        let data = &this.recv_buf[..n.min(this.recv_buf.len())];
                        st.endpoint.handle_datagram(now, from, data);
                    }
                    Poll::Ready(Err(e)) => {
                        tracing::debug!(error = %e, "receive failed");
                        st.stats.recv_errors += 1;
                    }
                    Poll::Pending => break,
                }
                received += 1;
            }
            if st.endpoint.poll_timeout().is_some_and(|t| t <= now) {
                st.endpoint.handle_timeout(now);
            }
            this.drain_transmits(&mut st, cx, now);
            if this.pending.is_none() {
                st.drains += 1;
                for w in st.drain_wakers.drain(..) {
                    w.wake();
                }
            }
            st.dispatch_events();
            st.check_flushed();

            if st.sockets == 0 && st.endpoint.connection_count() == 0 && this.pending.is_none() {
                st.stop();
                return Poll::Ready(());
            }

            let at = st.endpoint.poll_timeout().map(|t| st.to_std(t));
            let at = at.unwrap_or_else(|| st.runtime.now() + Duration::from_secs(86_400));
            if this.timer_at != Some(at) {
                this.timer.as_mut().reset(at);
                this.timer_at = Some(at);
            }
            let fired = this.timer.as_mut().poll(cx).is_ready();
            if fired {
                this.timer_at = None;
            }
            if !fired && received < RECV_BATCH {
                return Poll::Pending;
            }
        }
        // Busy: let other tasks run, then go on.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<T: Transport> Drop for Driver<T> {
    fn drop(&mut self) {
        self.shared.lock().stop();
    }
}
