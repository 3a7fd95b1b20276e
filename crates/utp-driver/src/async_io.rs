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
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use ::async_io::{Async, Timer};

use crate::runtime::{AsyncTimer, AsyncUdpSocket};

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

/// An [`AsyncUdpSocket`] on `async-io`'s reactor: non-blocking `send_to` / `recv_from`
/// on the socket, waiting for the reactor's readiness whenever they would block.
#[derive(Debug)]
pub struct AsyncIoUdpSocket(Async<std::net::UdpSocket>);

impl AsyncIoUdpSocket {
    /// Registers `socket` with the reactor (which makes it non-blocking).
    ///
    /// # Errors
    ///
    /// The reactor could not register the socket.
    pub fn new(socket: std::net::UdpSocket) -> io::Result<Self> {
        Ok(Self(Async::new(socket)?))
    }
}

impl AsyncUdpSocket for AsyncIoUdpSocket {
    fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        loop {
            match self.0.get_ref().send_to(buf, target) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.0.poll_writable(cx))?;
                }
                result => return Poll::Ready(result),
            }
        }
    }

    fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        loop {
            match self.0.get_ref().recv_from(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.0.poll_readable(cx))?;
                }
                result => return Poll::Ready(result),
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().local_addr()
    }
}
