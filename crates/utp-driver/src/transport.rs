//! The datagram transport a driver runs over: a UDP socket, or anything else that moves
//! datagrams between addresses (an in-memory channel, a tunnel, a discv5 `TALKREQ` pipe).

use std::fmt::Debug;
use std::io;
use std::net::SocketAddr;
use std::task::{Context, Poll};

use crate::runtime::AsyncUdpSocket;

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
}

/// A runtime's UDP socket as a [`Transport`] addressed by [`SocketAddr`].
#[derive(Debug)]
pub struct UdpTransport {
    socket: Box<dyn AsyncUdpSocket>,
}

impl UdpTransport {
    /// Wraps a socket registered with a runtime.
    pub fn new(socket: Box<dyn AsyncUdpSocket>) -> Self {
        Self { socket }
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
}
