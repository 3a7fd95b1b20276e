//! A timer and a UDP socket on [`async-io`](::async_io)'s reactor (feature `async-io`).
//!
//! `smol` and `async-std` both run their IO and timers on `async-io`, so their adapters
//! (`utp-smol`, `utp-async-std`) share this code and differ only in how they spawn. Any
//! other executor can use it too: `async-io` drives its reactor from its own thread when
//! no `async_io::block_on` does.
//!
//! ```
//! # use std::{future::Future, io, pin::Pin, sync::Arc, time::Instant};
//! use utp_driver::async_io::{AsyncIoTimer, AsyncIoUdpSocket};
//! use utp_driver::{AsyncTimer, AsyncUdpSocket, Runtime};
//!
//! #[derive(Debug)]
//! struct MyRuntime;
//!
//! impl Runtime for MyRuntime {
//!     fn new_timer(&self, at: Instant) -> Pin<Box<dyn AsyncTimer>> {
//!         Box::pin(AsyncIoTimer::new(at))
//!     }
//!
//!     fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) {
//!         std::thread::spawn(move || async_io::block_on(future));
//!     }
//!
//!     fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Box<dyn AsyncUdpSocket>> {
//!         Ok(Box::new(AsyncIoUdpSocket::new(socket)?))
//!     }
//! }
//! # let _ = MyRuntime;
//! ```

use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use ::async_io::{Async, Timer};

use crate::runtime::{
    AsyncTimer, AsyncUdpSocket, RecvMeta, poll_recv_batch_singly, poll_send_segments_singly,
};
use crate::udp_batch::UdpBatch;

/// An [`AsyncTimer`] on `async-io`'s reactor.
#[derive(Debug)]
pub struct AsyncIoTimer {
    timer: Timer,
    at: Instant,
}

impl AsyncIoTimer {
    /// A timer that fires at `at`.
    pub fn new(at: Instant) -> Self {
        Self { timer: Timer::at(at), at }
    }
}

impl AsyncTimer for AsyncIoTimer {
    fn reset(mut self: Pin<&mut Self>, at: Instant) {
        self.at = at;
        self.timer.set_at(at);
    }

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // `async_io::Timer` fires once and then stays pending; the driver's contract is
        // "ready once the deadline has passed", so answer repeated polls from the deadline.
        if Instant::now() >= self.at {
            return Poll::Ready(());
        }
        Pin::new(&mut self.timer).poll(cx).map(|_| ())
    }
}

/// An [`AsyncUdpSocket`] on `async-io`'s reactor: non-blocking sends and receives on the
/// socket, waiting for the reactor's readiness whenever they would block. On Linux,
/// batches go through [`UdpBatch`] (segmentation offload, `recvmmsg`, receive offload).
#[derive(Debug)]
pub struct AsyncIoUdpSocket {
    io: Async<std::net::UdpSocket>,
    /// `None` where batching is unsupported: one datagram per system call.
    batch: Option<UdpBatch>,
}

impl AsyncIoUdpSocket {
    /// Registers `socket` with the reactor (which makes it non-blocking).
    ///
    /// # Errors
    ///
    /// The reactor could not register the socket.
    pub fn new(socket: std::net::UdpSocket) -> io::Result<Self> {
        let batch = UdpBatch::new(&socket)
            .inspect_err(|e| tracing::debug!(error = %e, "UDP without batching"))
            .ok();
        Ok(Self { io: Async::new(socket)?, batch })
    }

    /// Runs `op` until it does not block, waiting for readability in between.
    fn poll_read<T>(
        &self,
        cx: &mut Context<'_>,
        mut op: impl FnMut(&std::net::UdpSocket) -> io::Result<T>,
    ) -> Poll<io::Result<T>> {
        loop {
            match op(self.io.get_ref()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.io.poll_readable(cx))?;
                }
                result => return Poll::Ready(result),
            }
        }
    }

    /// Runs `op` until it does not block, waiting for writability in between.
    fn poll_write<T>(
        &self,
        cx: &mut Context<'_>,
        mut op: impl FnMut(&std::net::UdpSocket) -> io::Result<T>,
    ) -> Poll<io::Result<T>> {
        loop {
            match op(self.io.get_ref()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.io.poll_writable(cx))?;
                }
                result => return Poll::Ready(result),
            }
        }
    }
}

impl AsyncUdpSocket for AsyncIoUdpSocket {
    fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        self.poll_write(cx, |socket| socket.send_to(buf, target))
    }

    fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        match &self.batch {
            // A socket with receive offload may hand several datagrams to one read.
            Some(batch) => self.poll_read(cx, |socket| batch.try_recv_from(socket, buf)),
            None => self.poll_read(cx, |socket| socket.recv_from(buf)),
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
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
        self.poll_write(cx, |socket| batch.try_send_segments(socket, buf, segment_size, target))
    }

    fn poll_recv_batch(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let Some(batch) = &self.batch else {
            return poll_recv_batch_singly(self, cx, bufs, meta);
        };
        self.poll_read(cx, |socket| batch.try_recv_batch(socket, bufs, meta))
    }
}
