//! [`RudpConnection`]: one rudp connection, carrying whole messages and direct datagrams.

use std::fmt;
use std::future::poll_fn;
use std::hash::Hash;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use utp_proto::rudp::{
    CloseCode, CloseReason, ConnectionHandle, ConnectionStats, RecvError, SendDirectError,
    SendError,
};

use crate::driver::{Driven, Shared};
use crate::rudp::error::Error;
use crate::rudp::state::{Inbox, State};
use crate::transport::PeerAddr;

/// One rudp connection: whole messages, delivered exactly once and in order, and
/// unreliable direct datagrams beside them. Every method takes `&self`, so one task may
/// send while another receives (share the connection in an `Arc`).
///
/// - [`send`](Self::send) waits while the send buffer is full, so a slow receiver slows
///   the sender and memory stays bounded.
/// - [`recv`](Self::recv) gives the next message, or `None` once the peer closed in order
///   and every message was received. Messages that arrived before the end stay receivable.
/// - [`flush`](Self::flush) resolves once everything sent was acknowledged.
/// - [`close`](Self::close) ends the connection at once with a code and a reason the peer
///   sees; what is still queued is not sent (flush first to deliver it). Dropping the
///   connection closes it with code 0 and the reason "connection dropped".
pub struct RudpConnection<A: PeerAddr + Hash = SocketAddr> {
    shared: Arc<Shared<State<A>>>,
    handle: ConnectionHandle,
    peer: A,
}

impl<A: PeerAddr + Hash> RudpConnection<A> {
    pub(crate) fn new(shared: Arc<Shared<State<A>>>, handle: ConnectionHandle, peer: A) -> Self {
        Self { shared, handle, peer }
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> &A {
        &self.peer
    }

    /// The connection ids: (the one we receive on, the peer's); `None` once the connection
    /// is gone.
    pub fn connection_ids(&self) -> Option<(u64, u64)> {
        self.shared.lock().endpoint.connection_ids(self.handle)
    }

    /// The connection's statistics; `None` once it is gone.
    pub fn stats(&self) -> Option<ConnectionStats> {
        self.shared.lock().endpoint.stats(self.handle)
    }

    /// The largest message [`send`](Self::send) accepts: the smaller of the peer's
    /// `max_message` and what fits this side's send buffer.
    pub fn max_message(&self) -> usize {
        self.shared.lock().endpoint.max_message(self.handle)
    }

    /// The largest direct datagram [`send_direct`](Self::send_direct) accepts.
    pub fn max_direct(&self) -> usize {
        self.shared.lock().endpoint.config().max_direct()
    }

    /// Why the connection ended, once it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.shared.lock().conns.get(&self.handle).and_then(|c| c.closed.clone())
    }

    /// The error for an operation on a connection that ended (or a stopped driver).
    fn ended(&self, st: &mut State<A>) -> io::Error {
        st.dispatch_events();
        match st.conns.get(&self.handle).and_then(|c| c.closed.clone()) {
            Some(reason) => Error::Closed(reason).into(),
            None => Error::DriverStopped.into(),
        }
    }

    /// Queues `message` for delivery, waiting while the send buffer is full. It has been
    /// delivered once [`flush`](Self::flush) resolves.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a message larger than [`max_message`](Self::max_message) (nothing
    /// is sent); once the connection ended, the error of its [`CloseReason`]
    /// (`BrokenPipe` after the peer's orderly close, `ConnectionAborted`, `TimedOut`, ...).
    pub async fn send(&self, message: &[u8]) -> io::Result<()> {
        poll_fn(|cx| {
            let mut st = self.shared.lock();
            match st.endpoint.send(self.handle, message) {
                Ok(_) => {
                    st.core.wake_driver();
                    Poll::Ready(Ok(()))
                }
                Err(SendError::Blocked) => {
                    match st.conns.get_mut(&self.handle) {
                        Some(c) => c.send.register(cx),
                        None => return Poll::Ready(Err(Error::DriverStopped.into())),
                    }
                    Poll::Pending
                }
                Err(SendError::Closed) => Poll::Ready(Err(self.ended(&mut st))),
                Err(e) => Poll::Ready(Err(Error::Send(e).into())),
            }
        })
        .await
    }

    /// The next message, whole and in order; `None` once the connection ended in order
    /// (code 0 from the peer, or our own `close`) and every message was received.
    ///
    /// # Errors
    ///
    /// Once the connection failed and every message it delivered was received, the error
    /// of its [`CloseReason`].
    pub async fn recv(&self) -> io::Result<Option<Vec<u8>>> {
        poll_fn(|cx| self.poll_take(cx, Inbox::Messages)).await
    }

    /// Sends an unreliable datagram (once, unacknowledged, within the congestion window),
    /// waiting while `direct_queue` datagrams wait already.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a payload larger than [`max_direct`](Self::max_direct) (nothing
    /// is sent: it is never split or truncated); once the connection ended, the error of
    /// its [`CloseReason`].
    pub async fn send_direct(&self, payload: &[u8]) -> io::Result<()> {
        poll_fn(|cx| {
            let mut st = self.shared.lock();
            match st.endpoint.send_direct(self.handle, payload) {
                Ok(()) => {
                    st.core.wake_driver();
                    Poll::Ready(Ok(()))
                }
                Err(SendDirectError::Blocked) => {
                    match st.conns.get_mut(&self.handle) {
                        Some(c) => c.send.register(cx),
                        None => return Poll::Ready(Err(Error::DriverStopped.into())),
                    }
                    Poll::Pending
                }
                Err(SendDirectError::Closed) => Poll::Ready(Err(self.ended(&mut st))),
                Err(e) => Poll::Ready(Err(Error::SendDirect(e).into())),
            }
        })
        .await
    }

    /// The next direct datagram received; `None` once the connection ended in order and
    /// every datagram was received.
    ///
    /// # Errors
    ///
    /// Once the connection failed and every datagram was received, the error of its
    /// [`CloseReason`].
    pub async fn recv_direct(&self) -> io::Result<Option<Vec<u8>>> {
        poll_fn(|cx| self.poll_take(cx, Inbox::Direct)).await
    }

    /// The next message or direct datagram: what was left when the connection ended comes
    /// first, then the endpoint's; `None` at the end of an orderly close.
    fn poll_take(&self, cx: &Context<'_>, inbox: Inbox) -> Poll<io::Result<Option<Vec<u8>>>> {
        let mut st = self.shared.lock();
        let now = st.now();
        if let Some(item) =
            st.conns.get_mut(&self.handle).and_then(|c| c.inbox(inbox).0.pop_front())
        {
            return Poll::Ready(Ok(Some(item)));
        }
        let taken = match inbox {
            Inbox::Messages => st.endpoint.recv(now, self.handle),
            Inbox::Direct => st.endpoint.recv_direct(now, self.handle),
        };
        match taken {
            Ok(item) => {
                if inbox == Inbox::Messages {
                    // Reading may reopen the receive window: the driver tells the peer.
                    st.core.wake_driver();
                }
                Poll::Ready(Ok(Some(item)))
            }
            Err(RecvError::Blocked) => match st.conns.get_mut(&self.handle) {
                Some(c) => {
                    c.inbox(inbox).1.register(cx);
                    Poll::Pending
                }
                None => Poll::Ready(Err(Error::DriverStopped.into())),
            },
            Err(_) => {
                st.dispatch_events();
                let conn = st.conns.get_mut(&self.handle);
                match conn.map(|c| (c.inbox(inbox).0.pop_front(), c.closed.clone())) {
                    Some((Some(item), _)) => Poll::Ready(Ok(Some(item))),
                    Some((None, Some(reason))) => Poll::Ready(end_of_messages(reason)),
                    _ => Poll::Ready(Err(Error::DriverStopped.into())),
                }
            }
        }
    }

    /// Resolves once every message sent so far has been acknowledged: the peer holds them
    /// all and delivers them in order.
    ///
    /// # Errors
    ///
    /// The error of the connection's [`CloseReason`] if it ends first.
    pub async fn flush(&self) -> io::Result<()> {
        poll_fn(|cx| {
            let mut st = self.shared.lock();
            if st.endpoint.is_flushed(self.handle) {
                return Poll::Ready(Ok(()));
            }
            let stopped = st.core.stopped;
            match st.conns.get_mut(&self.handle) {
                Some(c) if c.closed.is_none() && !stopped => c.flush.register(cx),
                _ => return Poll::Ready(Err(self.ended(&mut st))),
            }
            Poll::Pending
        })
        .await
    }

    /// Closes the connection at once with `code` and `reason` (at most 512 bytes), which
    /// the peer sees; resolves once the CLOSE has been handed to the socket. Messages not
    /// yet acknowledged are not sent: [`flush`](Self::flush) first to deliver them. Closing
    /// a connection that already ended does nothing.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a reason too long or an application code that has its own
    /// [`CloseCode`] variant (the connection stays open).
    pub async fn close(&self, code: CloseCode, reason: &str) -> io::Result<()> {
        {
            let mut st = self.shared.lock();
            let now = st.now();
            match st.endpoint.close(now, self.handle, code, reason) {
                Ok(()) | Err(utp_proto::rudp::CloseError::Closed) => {}
                Err(e) => return Err(Error::Close(e).into()),
            }
            st.after_command();
        }
        // Let the driver hand the CLOSE to the transport, so a program may exit as soon as
        // `close` returns.
        let target = self.shared.lock().core.drains + 1;
        poll_fn(|cx| {
            let mut st = self.shared.lock();
            if st.core.stopped || st.core.drains >= target {
                return Poll::Ready(());
            }
            st.core.register_drain(cx);
            Poll::Pending
        })
        .await;
        Ok(())
    }

    /// Resolves once the handshake finished or failed.
    pub(crate) async fn established(&self) -> io::Result<()> {
        poll_fn(|cx| {
            let mut st = self.shared.lock();
            if st.core.stopped {
                return Poll::Ready(Err(Error::DriverStopped.into()));
            }
            let Some(c) = st.conns.get_mut(&self.handle) else {
                return Poll::Ready(Err(Error::DriverStopped.into()));
            };
            if c.connected {
                return Poll::Ready(Ok(()));
            }
            if let Some(reason) = c.closed.clone() {
                return Poll::Ready(Err(Error::Refused(reason).into()));
            }
            c.connect.register(cx);
            Poll::Pending
        })
        .await
    }
}

/// What a receive gives once nothing is left: `None` after an orderly end, else the error.
fn end_of_messages(reason: CloseReason) -> io::Result<Option<Vec<u8>>> {
    if reason.is_normal() || matches!(reason, CloseReason::Local { .. }) {
        Ok(None)
    } else {
        Err(Error::Closed(reason).into())
    }
}

impl<A: PeerAddr + Hash> Drop for RudpConnection<A> {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        let open = st.conns.remove(&self.handle).is_some_and(|c| c.closed.is_none());
        if open && !st.core.stopped {
            let now = st.now();
            // Infallible here: the code is ours and the reason short.
            let _ = st.endpoint.close(now, self.handle, CloseCode::Normal, "connection dropped");
            st.after_command();
        }
    }
}

impl<A: PeerAddr + Hash> fmt::Debug for RudpConnection<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RudpConnection")
            .field("peer", &self.peer)
            .field("handle", &self.handle)
            .finish_non_exhaustive()
    }
}
