//! The datagram transport a driver runs over: a UDP socket, or anything else that moves
//! datagrams between addresses (an in-memory channel, a tunnel, a discv5 `TALKREQ` pipe).

use std::fmt::Debug;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use crate::runtime::{AsyncUdpSocket, RecvMeta, Runtime};
use crate::socket_buffers::{self, SocketBuffers};

/// What can name a peer: any address type that can be cloned, compared and sent between
/// threads. Implemented for every such type.
pub trait PeerAddr: Clone + Debug + Eq + Ord + Send + Sync + Unpin + 'static {}

impl<T: Clone + Debug + Eq + Ord + Send + Sync + Unpin + 'static> PeerAddr for T {}

/// Moves datagrams between addresses of type [`Addr`](Transport::Addr). The driver calls
/// it from its one task only, so implementations need no internal ordering guarantees
/// beyond "a datagram handed to `poll_send` is sent or dropped".
pub trait Transport: Send + Debug + 'static {
    /// Names a peer; uTP demultiplexes connections by (address, connection id).
    type Addr: PeerAddr;

    /// Receives one datagram into `buf`; pending while none is available.
    ///
    /// # Errors
    ///
    /// A transport error; the driver counts it and goes on receiving.
    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, Self::Addr)>>;

    /// Sends one datagram; pending while the transport cannot take it (the driver retries
    /// the same datagram once woken).
    ///
    /// # Errors
    ///
    /// A transport error; the driver drops the datagram (uTP retransmits) and counts it.
    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
        to: &Self::Addr,
    ) -> Poll<io::Result<()>>;

    /// The most datagrams [`poll_send_segments`](Self::poll_send_segments) takes in one
    /// call: 1 (the default) for a transport that sends one at a time.
    fn max_segments(&self) -> usize {
        1
    }

    /// Sends datagrams of `segment` bytes from `buf` (the last may be shorter), in order,
    /// to `to`; returns how many bytes went, always whole datagrams and at least one
    /// (the caller passes the rest again). Pending while the transport can take none.
    ///
    /// The default sends the first datagram with [`poll_send`](Self::poll_send).
    ///
    /// # Errors
    ///
    /// A transport error, when none of the datagrams went; the driver drops the rest.
    fn poll_send_segments(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
        segment: usize,
        to: &Self::Addr,
    ) -> Poll<io::Result<usize>> {
        let first = &buf[..segment.clamp(1, buf.len().max(1)).min(buf.len())];
        ready!(self.poll_send(cx, first, to))?;
        Poll::Ready(Ok(first.len()))
    }

    /// Receives one or more datagrams and hands each to `deliver` in order; returns how
    /// many. `scratch` is room the transport may receive into (64 KiB). Pending while none
    /// is available.
    ///
    /// The default receives one with [`poll_recv`](Self::poll_recv).
    ///
    /// # Errors
    ///
    /// A transport error; the driver counts it and goes on receiving.
    fn poll_recv_batch(
        &mut self,
        cx: &mut Context<'_>,
        scratch: &mut [u8],
        deliver: &mut dyn FnMut(&[u8], Self::Addr),
    ) -> Poll<io::Result<usize>> {
        let (n, from) = ready!(self.poll_recv(cx, scratch))?;
        deliver(&scratch[..n.min(scratch.len())], from);
        Poll::Ready(Ok(1))
    }
}

/// Receive buffers of a [`UdpTransport`], each room for one datagram (or, with receive
/// offload, several from one sender).
const UDP_RECV_BUFFERS: usize = 8;
/// The size of each.
const UDP_RECV_BUFFER: usize = 65_536;

/// A runtime's UDP socket as a [`Transport`] addressed by [`SocketAddr`], with its
/// batched operations (segmentation offload, `recvmmsg`, receive offload where the socket
/// has them).
#[derive(Debug)]
pub struct UdpTransport {
    socket: Box<dyn AsyncUdpSocket>,
    recv_buf: Vec<u8>,
    recv_meta: [RecvMeta; UDP_RECV_BUFFERS],
}

impl UdpTransport {
    /// Wraps a socket registered with a runtime.
    pub fn new(socket: Box<dyn AsyncUdpSocket>) -> Self {
        Self {
            socket,
            recv_buf: vec![0; UDP_RECV_BUFFERS * UDP_RECV_BUFFER],
            recv_meta: [RecvMeta::default(); UDP_RECV_BUFFERS],
        }
    }

    /// Readies a bound socket for a driver: non-blocking, kernel buffers raised to `recv`
    /// and `send` bytes where given (see [`socket_buffers::raise`]), registered with
    /// `runtime`. Returns the transport, the socket's local address and the buffer sizes
    /// it obtained.
    pub(crate) fn open(
        runtime: &Arc<dyn Runtime>,
        socket: std::net::UdpSocket,
        recv: Option<usize>,
        send: Option<usize>,
    ) -> io::Result<(Self, SocketAddr, SocketBuffers)> {
        socket.set_nonblocking(true)?;
        let buffers = socket_buffers::raise(&socket, recv, send)?;
        let local_addr = socket.local_addr()?;
        Ok((Self::new(runtime.wrap_udp_socket(socket)?), local_addr, buffers))
    }
}

impl Transport for UdpTransport {
    type Addr = SocketAddr;

    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        self.socket.poll_recv_from(cx, buf)
    }

    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
        to: &SocketAddr,
    ) -> Poll<io::Result<()>> {
        self.socket.poll_send_to(cx, buf, *to).map_ok(|_| ())
    }

    fn max_segments(&self) -> usize {
        self.socket.max_gso_segments()
    }

    fn poll_send_segments(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
        segment: usize,
        to: &SocketAddr,
    ) -> Poll<io::Result<usize>> {
        self.socket.poll_send_segments(cx, buf, segment, *to)
    }

    fn poll_recv_batch(
        &mut self,
        cx: &mut Context<'_>,
        _scratch: &mut [u8],
        deliver: &mut dyn FnMut(&[u8], SocketAddr),
    ) -> Poll<io::Result<usize>> {
        let mut slots = self.recv_buf.chunks_mut(UDP_RECV_BUFFER);
        let mut bufs: [IoSliceMut<'_>; UDP_RECV_BUFFERS] =
            std::array::from_fn(|_| IoSliceMut::new(slots.next().unwrap_or_default()));
        let filled = ready!(self.socket.poll_recv_batch(cx, &mut bufs, &mut self.recv_meta))?;
        let mut count = 0;
        for (meta, buf) in
            self.recv_meta.iter().take(filled).zip(self.recv_buf.chunks(UDP_RECV_BUFFER))
        {
            for datagram in meta.datagrams(buf) {
                deliver(datagram, meta.addr);
                count += 1;
            }
        }
        Poll::Ready(Ok(count))
    }
}
