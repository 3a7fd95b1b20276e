//! The `tokio` adapter for `utp-driver`: [`TokioRuntime`] implements the driver's
//! [`Runtime`] with tokio's timer, spawner and UDP socket, and [`TokioStream`] gives a
//! [`UtpStream`] tokio's `AsyncRead` / `AsyncWrite`.
//!
//! [`rudp`] runs rudp sockets (whole messages and direct datagrams), [`tftp`] runs TFTP servers and clients (`get`, `put`) on tokio.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use utp_tokio::IntoTokio;
//!
//! let server = utp_tokio::bind("127.0.0.1:0".parse().unwrap())?;
//! let client = utp_tokio::bind("127.0.0.1:0".parse().unwrap())?;
//! let addr = server.local_addr()?;
//! tokio::spawn(async move {
//!     let mut stream = server.accept().await?.into_tokio();
//!     let mut data = Vec::new();
//!     stream.read_to_end(&mut data).await?;
//!     std::io::Result::Ok(())
//! });
//! let mut stream = client.connect(addr).await?.into_tokio();
//! stream.write_all(b"hello").await?;
//! stream.into_inner().close().await
//! # }
//! ```

pub mod rudp;
pub mod tftp;

use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use tokio::io::{Interest, ReadBuf};
pub use utp_driver;
use utp_driver::{
    AsyncTimer, AsyncUdpSocket, PeerAddr, RecvMeta, Runtime, SocketConfig, UdpBatch, UtpSocket,
    UtpStream, poll_recv_batch_singly, poll_send_segments_singly,
};

/// The driver's [`Runtime`] on tokio. Needs a tokio runtime with the time and IO drivers
/// enabled (`#[tokio::main]` has both).
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioRuntime;

impl Runtime for TokioRuntime {
    fn new_timer(&self, at: Instant) -> Pin<Box<dyn AsyncTimer>> {
        Box::pin(Timer(Box::pin(tokio::time::sleep_until(at.into()))))
    }

    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) {
        tokio::spawn(future);
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Box<dyn AsyncUdpSocket>> {
        socket.set_nonblocking(true)?;
        let batch = UdpBatch::new(&socket)
            .inspect_err(|e| tracing::debug!(error = %e, "UDP without batching"))
            .ok();
        Ok(Box::new(Udp { io: tokio::net::UdpSocket::from_std(socket)?, batch }))
    }
}

/// Binds a uTP socket with default settings on the current tokio runtime.
///
/// # Errors
///
/// Binding or registering the socket failed.
pub fn bind(addr: SocketAddr) -> io::Result<UtpSocket> {
    bind_with(addr, SocketConfig::default())
}

/// Binds a uTP socket with `config` on the current tokio runtime.
///
/// # Errors
///
/// Binding or registering the socket failed.
pub fn bind_with(addr: SocketAddr, config: SocketConfig) -> io::Result<UtpSocket> {
    UtpSocket::bind(Arc::new(TokioRuntime), addr, config)
}

#[derive(Debug)]
struct Timer(Pin<Box<tokio::time::Sleep>>);

impl AsyncTimer for Timer {
    fn reset(mut self: Pin<&mut Self>, at: Instant) {
        self.0.as_mut().reset(at.into());
    }

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

/// tokio's UDP socket; on Linux, batches and receives go through [`UdpBatch`] inside
/// tokio's readiness loop (`poll_*_ready`, then `try_io`, which clears the readiness when
/// the socket would block), as quinn's tokio runtime does.
#[derive(Debug)]
struct Udp {
    io: tokio::net::UdpSocket,
    /// `None` where batching is unsupported: one datagram per system call.
    batch: Option<UdpBatch>,
}

impl Udp {
    /// Runs `op` once the socket is readable, until it does not block.
    fn poll_read<T>(
        &self,
        cx: &mut Context<'_>,
        mut op: impl FnMut() -> io::Result<T>,
    ) -> Poll<io::Result<T>> {
        loop {
            ready!(self.io.poll_recv_ready(cx))?;
            match self.io.try_io(Interest::READABLE, &mut op) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                result => return Poll::Ready(result),
            }
        }
    }
}

impl AsyncUdpSocket for Udp {
    fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        self.io.poll_send_to(cx, buf, target)
    }

    fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        match &self.batch {
            // The rest of a coalesced receive is returned without waiting for readiness.
            Some(batch) if batch.has_held() => Poll::Ready(batch.try_recv_from(&self.io, buf)),
            // A socket with receive offload may hand several datagrams to one read.
            Some(batch) => self.poll_read(cx, || batch.try_recv_from(&self.io, buf)),
            None => {
                let mut buf = ReadBuf::new(buf);
                let from = ready!(self.io.poll_recv_from(cx, &mut buf))?;
                Poll::Ready(Ok((buf.filled().len(), from)))
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }

    fn max_gso_segments(&self) -> usize {
        self.batch.as_ref().map_or(1, UdpBatch::max_gso_segments)
    }

    fn poll_send_segments(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        segment_size: usize,
        target: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        let Some(batch) = &self.batch else {
            return poll_send_segments_singly(self, cx, buf, segment_size, target);
        };
        loop {
            ready!(self.io.poll_send_ready(cx))?;
            let send = || batch.try_send_segments(&self.io, buf, segment_size, target);
            match self.io.try_io(Interest::WRITABLE, send) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                result => return Poll::Ready(result),
            }
        }
    }

    fn poll_recv_batch(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        match &self.batch {
            Some(batch) if batch.has_held() => {
                Poll::Ready(batch.try_recv_batch(&self.io, bufs, meta))
            }
            Some(batch) => self.poll_read(cx, || batch.try_recv_batch(&self.io, bufs, meta)),
            None => poll_recv_batch_singly(self, cx, bufs, meta),
        }
    }
}

/// A [`UtpStream`] with tokio's `AsyncRead` / `AsyncWrite` (`poll_shutdown` sends the FIN
/// and resolves once the peer acknowledged everything).
#[derive(Debug)]
pub struct TokioStream<A: PeerAddr = SocketAddr>(UtpStream<A>);

impl<A: PeerAddr> TokioStream<A> {
    /// The wrapped stream (for `close`, `reset`, `stats`).
    pub fn into_inner(self) -> UtpStream<A> {
        self.0
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &UtpStream<A> {
        &self.0
    }

    /// The wrapped stream, mutably.
    pub fn get_mut(&mut self) -> &mut UtpStream<A> {
        &mut self.0
    }
}

/// Turns a [`UtpStream`] into a [`TokioStream`].
pub trait IntoTokio<A: PeerAddr> {
    /// Wraps the stream for tokio's IO traits.
    fn into_tokio(self) -> TokioStream<A>;
}

impl<A: PeerAddr> IntoTokio<A> for UtpStream<A> {
    fn into_tokio(self) -> TokioStream<A> {
        TokioStream(self)
    }
}

impl<A: PeerAddr> tokio::io::AsyncRead for TokioStream<A> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = ready!(futures_io::AsyncRead::poll_read(
            Pin::new(&mut self.0),
            cx,
            buf.initialize_unfilled()
        ))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<A: PeerAddr> tokio::io::AsyncWrite for TokioStream<A> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        futures_io::AsyncWrite::poll_write(Pin::new(&mut self.0), cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures_io::AsyncWrite::poll_flush(Pin::new(&mut self.0), cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures_io::AsyncWrite::poll_close(Pin::new(&mut self.0), cx)
    }
}

impl<A: PeerAddr> futures_io::AsyncRead for TokioStream<A> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<A: PeerAddr> futures_io::AsyncWrite for TokioStream<A> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}

/// The README's Rust examples compile as doctests (here, where tokio and utp-proto are).
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
