//! [`UtpStream`]: one uTP connection as an async byte stream.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};
use utp_proto::utp::{
    ConnectionHandle, ConnectionStats, ReadError, State as ConnState, WriteError,
};

use crate::driver::{Driven, Shared, register};
use crate::error::Error;
use crate::transport::PeerAddr;
use crate::utp::state::State;

/// One uTP connection: a reliable, ordered byte stream implementing
/// [`futures_io::AsyncRead`] and [`futures_io::AsyncWrite`] (and, in `utp-tokio`, tokio's
/// traits through a wrapper).
///
/// - Writes wait while the send buffer is full (`send_buffer` in the engine's config), so
///   a slow reader slows the writer and memory stays bounded.
/// - [`shutdown`](Self::shutdown) (or `AsyncWrite::poll_close`) finishes our direction
///   with a FIN; the peer may go on sending (half-close). `poll_close` resolves once the
///   peer acknowledged everything, FIN included.
/// - [`close`](Self::close) closes gracefully and resolves when the peer acknowledged
///   everything, or fails with `TimedOut`.
/// - [`reset`](Self::reset) aborts with a RESET. Dropping a stream that was neither
///   closed nor shut down resets it too; dropping one after `shutdown` lets the close
///   finish gracefully in the background.
/// - Bytes that arrived before the connection ended stay readable after it ended.
pub struct UtpStream<A: PeerAddr = SocketAddr> {
    shared: Arc<Shared<State<A>>>,
    handle: ConnectionHandle,
    peer: A,
    shut: bool,
}

impl<A: PeerAddr> UtpStream<A> {
    pub(crate) fn new(shared: Arc<Shared<State<A>>>, handle: ConnectionHandle, peer: A) -> Self {
        Self { shared, handle, peer, shut: false }
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> &A {
        &self.peer
    }

    /// The connection ids: (the one we receive on, the one we send with); `None` once the
    /// connection is gone.
    pub fn connection_ids(&self) -> Option<(u16, u16)> {
        self.shared.lock().endpoint.connection_ids(self.handle)
    }

    /// The connection's statistics; `None` once it is gone.
    pub fn stats(&self) -> Option<ConnectionStats> {
        self.shared.lock().endpoint.stats(self.handle)
    }

    /// Where the connection is in its life; `None` once it is gone.
    pub fn state(&self) -> Option<ConnState> {
        self.shared.lock().endpoint.state(self.handle)
    }

    /// Finishes our direction: a FIN follows the data written so far. Reading goes on
    /// until the peer finishes too. Further writes fail with `BrokenPipe`.
    pub fn shutdown(&mut self) {
        if !self.shut {
            self.shut = true;
            let mut st = self.shared.lock();
            st.endpoint.shutdown(self.handle);
            st.after_command();
        }
    }

    /// Closes gracefully: our FIN follows the data written so far, data arriving from now
    /// on is discarded, and the future resolves once the peer acknowledged everything.
    ///
    /// # Errors
    ///
    /// `TimedOut` when the peer stops answering, `ConnectionReset` when it resets,
    /// `NotConnected` if the driver stopped.
    pub async fn close(mut self) -> io::Result<()> {
        self.shut = true;
        {
            let mut st = self.shared.lock();
            if st.streams.get(&self.handle).is_some_and(|s| s.result.is_none()) {
                let now = st.now();
                st.endpoint.close(now, self.handle);
                st.after_command();
            }
        }
        let result = poll_fn(|cx| {
            let mut st = self.shared.lock();
            if let Some(result) = self.result(&st) {
                return Poll::Ready(result);
            }
            match st.streams.get_mut(&self.handle) {
                Some(s) => register(&mut s.close, cx),
                None => return Poll::Ready(Err(Error::DriverStopped.into())),
            }
            Poll::Pending
        })
        .await;
        // The close may have completed in this task (the peer had finished already) with
        // our FIN or last ACK still queued: let the driver hand it to the transport first,
        // so a program may exit as soon as `close` returns.
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
        result
    }

    /// Aborts the connection: the peer gets a RESET and unread data is discarded.
    pub fn reset(self) {
        let mut st = self.shared.lock();
        if st.streams.get(&self.handle).is_some_and(|s| s.result.is_none()) {
            let now = st.now();
            st.endpoint.reset(now, self.handle);
            st.after_command();
        }
        // Drop sees the result and only forgets the stream.
    }

    /// Resolves once the handshake finished or the connection failed.
    pub(crate) async fn established(&self) -> io::Result<()> {
        poll_fn(|cx| {
            let mut st = self.shared.lock();
            if st.core.stopped {
                return Poll::Ready(Err(Error::DriverStopped.into()));
            }
            let Some(s) = st.streams.get_mut(&self.handle) else {
                return Poll::Ready(Err(Error::DriverStopped.into()));
            };
            if s.connected {
                return Poll::Ready(Ok(()));
            }
            if let Some(result) = s.result {
                return Poll::Ready(result.map_err(|e| Error::from(e).into()));
            }
            register(&mut s.connect, cx);
            Poll::Pending
        })
        .await
    }

    /// How the connection ended as an `io::Result`, if it has (or the driver stopped).
    fn result(&self, st: &State<A>) -> Option<io::Result<()>> {
        match st.streams.get(&self.handle).and_then(|s| s.result) {
            Some(Ok(())) => Some(Ok(())),
            Some(Err(e)) => Some(Err(Error::from(e).into())),
            None if st.core.stopped => Some(Err(Error::DriverStopped.into())),
            None => None,
        }
    }
}

impl<A: PeerAddr> AsyncRead for UtpStream<A> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut st = this.shared.lock();
        if let Some(s) = st.streams.get_mut(&this.handle) {
            if !s.leftover.is_empty() {
                let n = buf.len().min(s.leftover.len());
                for (dst, src) in buf.iter_mut().zip(s.leftover.drain(..n)) {
                    *dst = src;
                }
                return Poll::Ready(Ok(n));
            }
        }
        if let Some(result) = this.result(&st) {
            // Everything that arrived was read: a graceful end reads as end-of-stream.
            return Poll::Ready(result.map(|()| 0));
        }
        match st.endpoint.read(this.handle, buf) {
            Ok(n) => {
                st.wake_driver();
                Poll::Ready(Ok(n))
            }
            Err(ReadError::Blocked) => {
                if let Some(s) = st.streams.get_mut(&this.handle) {
                    register(&mut s.read, cx);
                }
                Poll::Pending
            }
            Err(_) => {
                // The endpoint ended the connection; its event carries why.
                st.dispatch_events();
                let ended = st.streams.get(&this.handle).is_some_and(|s| s.result.is_some());
                drop(st);
                if ended {
                    Pin::new(this).poll_read(cx, buf)
                } else {
                    Poll::Ready(Err(Error::DriverStopped.into()))
                }
            }
        }
    }
}

impl<A: PeerAddr> AsyncWrite for UtpStream<A> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.shut {
            return Poll::Ready(Err(Error::WriteShutdown.into()));
        }
        let mut st = this.shared.lock();
        if let Some(result) = this.result(&st) {
            return Poll::Ready(Err(result.err().unwrap_or_else(|| Error::WriteShutdown.into())));
        }
        match st.endpoint.write(this.handle, buf) {
            Ok(n) => {
                st.wake_driver();
                Poll::Ready(Ok(n))
            }
            Err(WriteError::Blocked) => {
                if let Some(s) = st.streams.get_mut(&this.handle) {
                    register(&mut s.write, cx);
                }
                Poll::Pending
            }
            Err(WriteError::Finished) => Poll::Ready(Err(Error::WriteShutdown.into())),
            Err(_) => {
                st.dispatch_events();
                let result = this.result(&st);
                Poll::Ready(Err(result
                    .and_then(Result::err)
                    .unwrap_or_else(|| Error::DriverStopped.into())))
            }
        }
    }

    /// Written bytes are in the engine's send buffer already: nothing to flush.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Shuts our direction down (FIN) and resolves once the peer acknowledged everything,
    /// FIN included.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.shutdown();
        let mut st = this.shared.lock();
        if let Some(result) = this.result(&st) {
            return Poll::Ready(result);
        }
        if st.endpoint.is_flushed(this.handle) {
            return Poll::Ready(Ok(()));
        }
        if let Some(s) = st.streams.get_mut(&this.handle) {
            register(&mut s.close, cx);
        }
        st.wait_flushed(this.handle);
        Poll::Pending
    }
}

impl<A: PeerAddr> Drop for UtpStream<A> {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        let open = st.streams.remove(&self.handle).is_some_and(|s| s.result.is_none());
        if open && !st.core.stopped {
            let now = st.now();
            if self.shut {
                st.endpoint.close(now, self.handle);
            } else {
                st.endpoint.reset(now, self.handle);
            }
            st.after_command();
        }
    }
}

impl<A: PeerAddr> fmt::Debug for UtpStream<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UtpStream")
            .field("peer", &self.peer)
            .field("handle", &self.handle)
            .finish_non_exhaustive()
    }
}
