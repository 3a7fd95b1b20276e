//! What a runtime adapter gives the driver: a timer, a spawner and a UDP socket.

use std::fmt::Debug;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// An async runtime, as the driver sees it. `utp-tokio`, `utp-async-std` and `utp-smol`
/// implement it in a few lines each; implement it yourself for another executor.
pub trait Runtime: Send + Sync + Debug + 'static {
    /// A timer that fires at `at`.
    fn new_timer(&self, at: Instant) -> Pin<Box<dyn AsyncTimer>>;

    /// Runs `future` to completion in the background.
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>);

    /// Registers a bound, non-blocking-capable UDP socket with the runtime's reactor.
    ///
    /// # Errors
    ///
    /// Whatever the reactor reports when it cannot take the socket.
    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Box<dyn AsyncUdpSocket>>;

    /// The current time; tests may override it.
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A resettable timer.
pub trait AsyncTimer: Send + Debug {
    /// Moves the deadline to `at`.
    fn reset(self: Pin<&mut Self>, at: Instant);

    /// Ready once the deadline has passed; registers `cx` for wake-up otherwise.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()>;
}

/// A UDP socket registered with a runtime's reactor.
pub trait AsyncUdpSocket: Send + Sync + Debug {
    /// Sends one datagram to `target`; pending while the socket cannot take it.
    ///
    /// # Errors
    ///
    /// The socket's send error; the driver drops that datagram and counts it.
    fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<io::Result<usize>>;

    /// Receives one datagram into `buf`; pending while none is queued.
    ///
    /// # Errors
    ///
    /// The socket's receive error; the driver counts it and goes on.
    fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, SocketAddr)>>;

    /// The address the socket is bound to.
    ///
    /// # Errors
    ///
    /// The operating system's error.
    fn local_addr(&self) -> io::Result<SocketAddr>;
}
