//! The driver task: one per socket, pumping one sans-IO machine (a uTP or rudp endpoint)
//! over one [`Transport`].
//!
//! The machine and everything the user's handles need to find each other live in one
//! state behind one mutex ([`Shared`]). Every lock is held for a few synchronous calls into
//! the core and never across an `.await`. Whoever holds the lock after changing the machine
//! dispatches its events (so wakers fire at once) and wakes the driver task, which alone
//! talks to the transport.
//!
//! The loop is the same for every protocol; what differs (which handles wait for what) is
//! behind [`Driven`], which each protocol's state implements.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use utp_proto::{Instant, Machine};

use crate::batch::{Batch, Outgoing};
use crate::runtime::{AsyncTimer, Runtime};
use crate::transport::Transport;

/// Datagrams received per round before transmits are drained again.
const RECV_BATCH: usize = 64;
/// Rounds per wake-up before the driver yields to other tasks.
const ROUNDS: usize = 16;
/// The largest datagram the driver receives.
const MAX_DATAGRAM: usize = 65_536;

/// What the user handles and the driver task share: a protocol's state behind one mutex.
pub(crate) struct Shared<S> {
    state: Mutex<S>,
}

impl<S> Shared<S> {
    pub(crate) fn new(state: S) -> Self {
        Self { state: Mutex::new(state) }
    }

    /// Locks the state. A panic elsewhere while locked leaves the state usable: every
    /// method keeps it consistent between calls into the machine.
    pub(crate) fn lock(&self) -> MutexGuard<'_, S> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<S> fmt::Debug for Shared<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
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
    /// Send errors reported by the transport (the datagram is dropped; the protocol
    /// retransmits what matters).
    pub send_errors: u64,
}

/// What every driven state has besides its machine: the clock, the driver's waker, the
/// count of socket handles, and the record of complete drains.
pub(crate) struct Core {
    runtime: Arc<dyn Runtime>,
    epoch: std::time::Instant,
    driver: Option<Waker>,
    /// Live socket handles; with none left, incoming connections are refused and the
    /// driver ends once the last connection is gone.
    pub(crate) sockets: usize,
    /// The driver task ended; nothing will be sent or received any more.
    pub(crate) stopped: bool,
    /// How many times the driver has handed everything the machine had to send to the
    /// transport; a close waits for the next one so its last packets leave before it
    /// resolves (and before a process that exits right after it ends).
    pub(crate) drains: u64,
    drain_wakers: Wakers,
    pub(crate) stats: DriverStats,
}

impl Core {
    pub(crate) fn new(runtime: Arc<dyn Runtime>) -> Self {
        let epoch = runtime.now();
        Self {
            runtime,
            epoch,
            driver: None,
            sockets: 1,
            stopped: false,
            drains: 0,
            drain_wakers: Wakers::default(),
            stats: DriverStats::default(),
        }
    }

    /// The machine's clock: microseconds since the socket was made.
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

    /// Wakes `cx` after the driver's next complete drain of transmits.
    pub(crate) fn register_drain(&mut self, cx: &Context<'_>) {
        self.drain_wakers.register(cx);
        self.wake_driver();
    }

    /// Marks the driver stopped and wakes whoever waits for a drain.
    pub(crate) fn stop(&mut self) {
        self.stopped = true;
        self.drain_wakers.wake();
    }
}

/// Tasks waiting for one thing; several may wait at once (a handle is shared by reference
/// between tasks).
#[derive(Debug, Default)]
pub(crate) struct Wakers(Vec<Waker>);

impl Wakers {
    /// Adds `cx`'s waker unless an equivalent one waits already.
    pub(crate) fn register(&mut self, cx: &Context<'_>) {
        if !self.0.iter().any(|w| w.will_wake(cx.waker())) {
            self.0.push(cx.waker().clone());
        }
    }

    /// Wakes every waiting task and forgets them.
    pub(crate) fn wake(&mut self) {
        for w in self.0.drain(..) {
            w.wake();
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

/// A protocol's shared state, as the driver loop sees it.
pub(crate) trait Driven: Send + 'static {
    /// The sans-IO machine pumped.
    type Machine: Machine;

    /// The machine.
    fn machine(&mut self) -> &mut Self::Machine;

    /// What every driven state shares.
    fn core(&mut self) -> &mut Core;

    /// Hands the machine's events to the handles waiting for them.
    fn dispatch_events(&mut self);

    /// After every round: checks that need the whole state (flush waiters, ...).
    fn after_round(&mut self) {}

    /// Whether the driver may end: no socket handle and no connection left.
    fn finished(&mut self) -> bool;

    /// The driver stopped: wake every handle so it sees it.
    fn stop(&mut self);
}

/// The task that pumps one machine over one transport.
pub(crate) struct Driver<T: Transport, S: Driven> {
    shared: Arc<Shared<S>>,
    transport: Box<T>,
    timer: Pin<Box<dyn AsyncTimer>>,
    timer_at: Option<std::time::Instant>,
    recv_buf: Vec<u8>,
    /// Where the machine writes each transmit.
    send_buf: Vec<u8>,
    /// The datagrams on their way out; what the transport could not take yet is retried
    /// first.
    batch: Batch<T::Addr>,
    /// A transmit in `send_buf` that could not join `batch`: it starts the next one.
    carry: Option<Outgoing<T::Addr>>,
}

impl<T, S> Driver<T, S>
where
    T: Transport,
    S: Driven,
    S::Machine: Machine<Peer = T::Addr>,
{
    pub(crate) fn new(shared: Arc<Shared<S>>, transport: T, runtime: &Arc<dyn Runtime>) -> Self {
        let far = runtime.now() + Duration::from_secs(86_400 * 365);
        Self {
            shared,
            transport: Box::new(transport),
            timer: runtime.new_timer(far),
            timer_at: None,
            recv_buf: vec![0; MAX_DATAGRAM],
            send_buf: Vec::with_capacity(MAX_DATAGRAM),
            batch: Batch::default(),
            carry: None,
        }
    }

    /// Whether everything the machine gave has been handed to the transport.
    fn sent_all(&self) -> bool {
        self.batch.is_empty() && self.carry.is_none()
    }

    /// Sends until the machine has nothing more or the transport is full.
    ///
    /// Consecutive transmits to one destination are gathered into one batch of equally
    /// sized datagrams (a shorter one may end it), up to the transport's
    /// [`max_segments`](Transport::max_segments), and the batch is sent with one
    /// [`poll_send_segments`](Transport::poll_send_segments): on a UDP socket, one system
    /// call with segmentation offload.
    fn drain_transmits(&mut self, st: &mut S, cx: &mut Context<'_>, now: Instant) {
        loop {
            if let Some((rest, segment, to)) = self.batch.rest() {
                let datagrams = rest.len().div_ceil(segment);
                match self.transport.poll_send_segments(cx, rest, segment, to) {
                    Poll::Ready(Ok(n)) => {
                        st.core().stats.datagrams_sent += n.div_ceil(segment) as u64;
                        self.batch.advance(n);
                    }
                    Poll::Ready(Err(e)) => {
                        tracing::debug!(error = %e, ?to, "send failed; datagrams dropped");
                        st.core().stats.send_errors += datagrams as u64;
                        self.batch.clear();
                    }
                    Poll::Pending => return,
                }
                continue;
            }
            let first = match self.carry.take() {
                Some(carry) => carry,
                None => match st.machine().poll_transmit(now, &mut self.send_buf) {
                    Some(t) => Outgoing::new(&t, self.send_buf.len()),
                    None => return,
                },
            };
            if first.len == 0 {
                continue; // no engine of ours emits an empty datagram
            }
            self.batch.start(&first, &self.send_buf[..first.len]);
            let max_segments = self.transport.max_segments();
            while self.batch.has_room(max_segments) {
                let Some(t) = st.machine().poll_transmit(now, &mut self.send_buf) else { break };
                let next = Outgoing::new(&t, self.send_buf.len());
                if !self.batch.push(&next, &self.send_buf[..next.len]) {
                    self.carry = Some(next);
                    break;
                }
            }
        }
    }
}

impl<T, S> Future for Driver<T, S>
where
    T: Transport,
    S: Driven,
    S::Machine: Machine<Peer = T::Addr>,
{
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let shared = this.shared.clone();
        let mut guard = shared.lock();
        let st = &mut *guard;
        register(&mut st.core().driver, cx);
        for _ in 0..ROUNDS {
            let now = st.core().now();
            let mut received = 0;
            while received < RECV_BATCH {
                let machine = st.machine();
                let mut deliver = |data: &[u8], from| machine.handle_datagram(now, from, data);
                match this.transport.poll_recv_batch(cx, &mut this.recv_buf, &mut deliver) {
                    Poll::Ready(Ok(n)) => {
                        st.core().stats.datagrams_received += n as u64;
                        // A transport that claims success without a datagram still ends
                        // the round.
                        received += n.max(1);
                    }
                    Poll::Ready(Err(e)) => {
                        tracing::debug!(error = %e, "receive failed");
                        st.core().stats.recv_errors += 1;
                        received += 1;
                    }
                    Poll::Pending => break,
                }
            }
            if st.machine().poll_timeout().is_some_and(|t| t <= now) {
                st.machine().handle_timeout(now);
            }
            this.drain_transmits(st, cx, now);
            if this.sent_all() {
                let core = st.core();
                core.drains += 1;
                core.drain_wakers.wake();
            }
            st.dispatch_events();
            st.after_round();

            if this.sent_all() && st.finished() {
                st.stop();
                return Poll::Ready(());
            }

            let next = st.machine().poll_timeout();
            let core = st.core();
            let at = next.map(|t| core.to_std(t));
            let at = at.unwrap_or_else(|| core.runtime.now() + Duration::from_secs(86_400));
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

impl<T: Transport, S: Driven> Drop for Driver<T, S> {
    fn drop(&mut self) {
        self.shared.lock().stop();
    }
}
