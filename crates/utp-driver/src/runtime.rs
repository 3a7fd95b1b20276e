//! What a runtime adapter gives the driver: a timer, a spawner and a UDP socket.

use std::fmt::Debug;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::{Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
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
///
/// Only [`poll_send_to`](Self::poll_send_to), [`poll_recv_from`](Self::poll_recv_from) and
/// [`local_addr`](Self::local_addr) must be written. The batched operations
/// ([`poll_send_segments`](Self::poll_send_segments),
/// [`poll_recv_batch`](Self::poll_recv_batch)) have defaults that move one datagram per
/// call through those two; the adapters of this workspace override them with
/// [`UdpBatch`](crate::UdpBatch) (segmentation offload and `recvmmsg` on Linux), which a
/// socket of your own can use too.
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

    /// The most datagrams [`poll_send_segments`](Self::poll_send_segments) hands the
    /// operating system in one call (with segmentation offload); 1 when it sends them one
    /// by one. It may drop to 1 at run time if the system refuses offload.
    fn max_gso_segments(&self) -> usize {
        1
    }

    /// Sends the datagrams in `buf`, in order, to `target`: each `segment_size` bytes long
    /// except the last, which may be shorter. Returns how many bytes of `buf` went, always
    /// whole datagrams and at least one; the caller passes the rest again (from the first
    /// datagram that did not go, so none is sent twice). Pending while the socket can take
    /// none of them. An empty `buf` sends nothing and returns 0.
    ///
    /// The default sends one datagram per [`poll_send_to`](Self::poll_send_to) call
    /// ([`poll_send_segments_singly`]).
    ///
    /// # Errors
    ///
    /// The socket's send error, when none of the datagrams went; the driver drops the rest
    /// of the batch and counts it (the protocol retransmits what matters).
    fn poll_send_segments(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        segment_size: usize,
        target: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        poll_send_segments_singly(self, cx, buf, segment_size, target)
    }

    /// Receives into `bufs`, filling `meta` with one entry per buffer filled, and returns
    /// how many were filled (at least one, unless `bufs` or `meta` is empty). A buffer may
    /// hold several datagrams coalesced by the system (receive offload):
    /// [`RecvMeta::datagrams`] splits it. Pending while none is queued.
    ///
    /// Give each buffer room for the largest datagram expected (64 KiB for any): a datagram
    /// too long for its buffer is cut short.
    ///
    /// The default receives one datagram with [`poll_recv_from`](Self::poll_recv_from)
    /// ([`poll_recv_batch_singly`]).
    ///
    /// # Errors
    ///
    /// The socket's receive error; the driver counts it and goes on.
    fn poll_recv_batch(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        poll_recv_batch_singly(self, cx, bufs, meta)
    }
}

/// [`AsyncUdpSocket::poll_send_segments`] one datagram per
/// [`poll_send_to`](AsyncUdpSocket::poll_send_to) call: the trait's default, for an
/// implementation that batches only where the system allows.
pub fn poll_send_segments_singly<S: AsyncUdpSocket + ?Sized>(
    socket: &S,
    cx: &mut Context<'_>,
    buf: &[u8],
    segment_size: usize,
    target: SocketAddr,
) -> Poll<io::Result<usize>> {
    let mut sent = 0;
    for datagram in buf.chunks(segment_size.max(1)) {
        match socket.poll_send_to(cx, datagram, target) {
            Poll::Ready(Ok(_)) => sent += datagram.len(),
            // Report the progress; this datagram is tried again first.
            Poll::Ready(Err(_)) | Poll::Pending if sent > 0 => break,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
    }
    Poll::Ready(Ok(sent))
}

/// [`AsyncUdpSocket::poll_recv_batch`] with one
/// [`poll_recv_from`](AsyncUdpSocket::poll_recv_from) call into the first buffer: the
/// trait's default, for an implementation that batches only where the system allows.
pub fn poll_recv_batch_singly<S: AsyncUdpSocket + ?Sized>(
    socket: &S,
    cx: &mut Context<'_>,
    bufs: &mut [IoSliceMut<'_>],
    meta: &mut [RecvMeta],
) -> Poll<io::Result<usize>> {
    let (Some(buf), Some(meta)) = (bufs.first_mut(), meta.first_mut()) else {
        return Poll::Ready(Ok(0));
    };
    let (len, addr) = ready!(socket.poll_recv_from(cx, buf))?;
    *meta = RecvMeta { addr, len, stride: len };
    Poll::Ready(Ok(1))
}

/// What [`AsyncUdpSocket::poll_recv_batch`] received into one buffer: where from, how
/// many bytes, and how they divide into datagrams.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct RecvMeta {
    /// The sender of every datagram in the buffer.
    pub addr: SocketAddr,
    /// Bytes received into the buffer.
    pub len: usize,
    /// The length of each datagram in the buffer but the last, which may be shorter:
    /// `len` when the buffer holds one datagram.
    pub stride: usize,
}

impl RecvMeta {
    /// The datagrams in `buf` (the buffer this entry describes), in the order they were
    /// sent; an empty datagram is one empty slice.
    pub fn datagrams<'a>(&self, buf: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        let data = &buf[..self.len.min(buf.len())];
        let empty = data.is_empty().then_some(data);
        data.chunks(self.stride.max(1)).chain(empty)
    }
}

impl Default for RecvMeta {
    /// An empty entry, to be overwritten by a receive.
    fn default() -> Self {
        Self { addr: (Ipv6Addr::UNSPECIFIED, 0).into(), len: 0, stride: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_split_by_stride() {
        let buf = [1u8, 2, 3, 4, 5, 6, 7, 0, 0];
        let meta = RecvMeta { len: 7, stride: 3, ..RecvMeta::default() };
        let parts: Vec<&[u8]> = meta.datagrams(&buf).collect();
        assert_eq!(parts, [&[1, 2, 3][..], &[4, 5, 6], &[7]]);
        let one = RecvMeta { len: 7, stride: 7, ..RecvMeta::default() };
        assert_eq!(one.datagrams(&buf).collect::<Vec<_>>(), [&buf[..7]]);
        let empty = RecvMeta::default();
        assert_eq!(empty.datagrams(&buf).collect::<Vec<_>>(), [&[][..]]);
    }
}
