//! An in-memory datagram [`Transport`]: two ends of a lossless link, for running the
//! driver without sockets (and as a model for transports of your own).
//!
//! ```
//! # use std::sync::Arc;
//! # fn demo(runtime: Arc<dyn utp_driver::Runtime>) {
//! use utp_driver::testing::channel;
//! use utp_driver::{SocketConfig, UtpSocket};
//!
//! let (a, b) = channel::pair();
//! let server_addr = a.addr();
//! let server = UtpSocket::with_transport(runtime.clone(), a, SocketConfig::default());
//! let client = UtpSocket::with_transport(runtime, b, SocketConfig::default());
//! // client.connect(server_addr).await, server.accept().await, ...
//! # let _ = (server, client, server_addr);
//! # }
//! ```

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::transport::Transport;

/// Datagrams one direction of the link holds; a sender waits (`poll_send` is pending)
/// while its direction is full, so the driver's send backpressure is exercised too.
pub const CAPACITY: usize = 256;

/// The address of one end of a [`pair`]: `ChannelAddr(1)` and `ChannelAddr(2)`.
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct ChannelAddr(pub u8);

/// One end of an in-memory link made by [`pair`].
#[derive(Debug)]
pub struct ChannelTransport {
    addr: ChannelAddr,
    peer: ChannelAddr,
    /// Datagrams we send.
    tx: Arc<Direction>,
    /// Datagrams we receive.
    rx: Arc<Direction>,
}

/// One direction of the link.
#[derive(Debug, Default)]
struct Direction(Mutex<Queue>);

#[derive(Debug, Default)]
struct Queue {
    datagrams: VecDeque<Vec<u8>>,
    /// The receiver, waiting for a datagram.
    recv: Option<Waker>,
    /// The sender, waiting for room.
    send: Option<Waker>,
}

impl Direction {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Two connected transports, addressed `ChannelAddr(1)` and `ChannelAddr(2)`. A datagram
/// sent by one to the other's address arrives in order and intact; datagrams to any
/// other address are dropped, as UDP would.
pub fn pair() -> (ChannelTransport, ChannelTransport) {
    let (one, two) = (ChannelAddr(1), ChannelAddr(2));
    let (to_two, to_one) = (Arc::new(Direction::default()), Arc::new(Direction::default()));
    (
        ChannelTransport { addr: one, peer: two, tx: to_two.clone(), rx: to_one.clone() },
        ChannelTransport { addr: two, peer: one, tx: to_one, rx: to_two },
    )
}

impl ChannelTransport {
    /// This end's address.
    pub fn addr(&self) -> ChannelAddr {
        self.addr
    }

    /// The other end's address.
    pub fn peer_addr(&self) -> ChannelAddr {
        self.peer
    }
}

impl Transport for ChannelTransport {
    type Addr = ChannelAddr;

    fn poll_recv(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, ChannelAddr)>> {
        let mut q = self.rx.lock();
        match q.datagrams.pop_front() {
            Some(datagram) => {
                // Like UDP, a datagram longer than the buffer is truncated.
                let n = datagram.len().min(buf.len());
                buf[..n].copy_from_slice(&datagram[..n]);
                if let Some(w) = q.send.take() {
                    w.wake();
                }
                Poll::Ready(Ok((n, self.peer)))
            }
            None => {
                q.recv = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
        to: &ChannelAddr,
    ) -> Poll<io::Result<()>> {
        if *to != self.peer {
            return Poll::Ready(Ok(()));
        }
        let mut q = self.tx.lock();
        if q.datagrams.len() >= CAPACITY {
            q.send = Some(cx.waker().clone());
            return Poll::Pending;
        }
        q.datagrams.push_back(buf.to_vec());
        if let Some(w) = q.recv.take() {
            w.wake();
        }
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;

    #[test]
    fn datagrams_cross_in_order_and_a_full_direction_waits() {
        let (mut a, mut b) = pair();
        let mut cx = Context::from_waker(Waker::noop());
        for i in 0..CAPACITY {
            let sent = a.poll_send(&mut cx, &[i as u8], &b.addr());
            assert!(matches!(sent, Poll::Ready(Ok(()))));
        }
        assert!(a.poll_send(&mut cx, b"x", &b.addr()).is_pending());
        // Elsewhere: dropped, not queued.
        assert!(matches!(a.poll_send(&mut cx, b"x", &ChannelAddr(9)), Poll::Ready(Ok(()))));
        let mut buf = [0; 4];
        for i in 0..CAPACITY {
            match b.poll_recv(&mut cx, &mut buf) {
                Poll::Ready(Ok((1, from))) => {
                    assert_eq!(from, a.addr());
                    assert_eq!(buf[0], i as u8);
                }
                other => panic!("datagram {i}: {other:?}"),
            }
        }
        assert!(b.poll_recv(&mut cx, &mut buf).is_pending());
    }
}
