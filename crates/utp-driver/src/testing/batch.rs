//! The batched socket operations ([`AsyncUdpSocket::poll_send_segments`],
//! [`AsyncUdpSocket::poll_recv_batch`]) of the runtime's socket and the trait's one-by-one
//! defaults, against each other over loopback.

use std::future::poll_fn;
use std::io::{self, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use super::harness::{case, timeout};
use crate::config::DEFAULT_SOCKET_BUFFER;
use crate::{AsyncUdpSocket, RecvMeta, Runtime, socket_buffers};

/// The batches sent, as (datagram size, full datagrams, size of a last shorter one): one
/// with a short last datagram, one larger than one offloaded send may carry (64 KiB), a
/// single datagram, and a batch of one short datagram.
const BATCHES: [(usize, usize, Option<usize>); 4] =
    [(1200, 10, Some(300)), (1432, 64, None), (512, 1, None), (1000, 0, Some(40))];

/// Every datagram of every batch arrives exactly once and in order, for each pairing of
/// sender (the runtime's socket, or the trait's defaults) and receiver (the runtime's
/// batched receive, the default one, or `poll_recv_from`).
pub async fn udp_batches(rt: Arc<dyn Runtime>) {
    case(&rt, "udp_batches", async {
        for batched_send in [true, false] {
            for receiver in [Receiver::Batch, Receiver::DefaultBatch, Receiver::One] {
                let what = format!(
                    "{} send, {receiver:?} receive",
                    if batched_send { "runtime" } else { "default" }
                );
                let tx = socket(&rt, batched_send);
                let rx = socket(&rt, receiver != Receiver::DefaultBatch);
                let to = rx.local_addr().expect("a bound socket has an address");
                let mut expected = Vec::new();
                for (index, &(size, full, last)) in BATCHES.iter().enumerate() {
                    let sizes = std::iter::repeat_n(size, full).chain(last);
                    let datagrams: Vec<Vec<u8>> =
                        sizes.enumerate().map(|(n, len)| datagram(index, n, len)).collect();
                    send_all(&*tx, &datagrams.concat(), size, to).await;
                    expected.extend(datagrams);
                }
                let received =
                    timeout(&rt, Duration::from_secs(10), receive(&*rx, receiver, &expected))
                        .await
                        .unwrap_or_else(|| panic!("{what}: not every datagram arrived"));
                assert_eq!(received.len(), expected.len(), "{what}: datagram count");
                for (n, (got, want)) in received.iter().zip(&expected).enumerate() {
                    assert!(
                        got == want,
                        "{what}: datagram {n} differs ({} bytes, {} expected)",
                        got.len(),
                        want.len()
                    );
                }
            }
        }
    })
    .await;
}

/// How the receiving side reads.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Receiver {
    /// The runtime socket's `poll_recv_batch`.
    Batch,
    /// The trait's default `poll_recv_batch`.
    DefaultBatch,
    /// `poll_recv_from`, one datagram per call.
    One,
}

/// A socket on 127.0.0.1 with large kernel buffers (everything is sent before anything is
/// read): the runtime's own, or one using only the trait's required methods.
fn socket(rt: &Arc<dyn Runtime>, runtime_batching: bool) -> Box<dyn AsyncUdpSocket> {
    let socket = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind on loopback");
    let buffers = Some(DEFAULT_SOCKET_BUFFER);
    socket_buffers::raise(&socket, buffers, buffers).expect("socket buffer sizes");
    let socket = rt.wrap_udp_socket(socket).expect("the runtime takes a bound socket");
    if runtime_batching { socket } else { Box::new(Defaults(socket)) }
}

/// Datagram `n` of batch `batch`, `len` bytes (at least 3): its numbers, then a pattern.
fn datagram(batch: usize, n: usize, len: usize) -> Vec<u8> {
    let mut data: Vec<u8> = (0..len).map(|i| (i * 7 + n * 13 + batch) as u8).collect();
    data[..3].copy_from_slice(&[batch as u8, (n >> 8) as u8, n as u8]);
    data
}

/// Sends `buf` as datagrams of `segment` bytes, passing the rest again after partial
/// progress.
async fn send_all(socket: &dyn AsyncUdpSocket, buf: &[u8], segment: usize, to: SocketAddr) {
    let mut sent = 0;
    while sent < buf.len() {
        let n = poll_fn(|cx| socket.poll_send_segments(cx, &buf[sent..], segment, to))
            .await
            .expect("send on loopback");
        assert!(n > 0 && n % segment == 0 || sent + n == buf.len(), "whole datagrams only: {n}");
        sent += n;
    }
}

/// Receives as many datagrams as `expected` holds.
async fn receive(
    socket: &dyn AsyncUdpSocket,
    receiver: Receiver,
    expected: &[Vec<u8>],
) -> Vec<Vec<u8>> {
    let mut slots = vec![0; 4 * 65_536];
    let mut meta = [RecvMeta::default(); 4];
    let mut received = Vec::new();
    while received.len() < expected.len() {
        if receiver == Receiver::One {
            let (len, _) =
                poll_fn(|cx| socket.poll_recv_from(cx, &mut slots)).await.expect("receive");
            received.push(slots[..len].to_vec());
            continue;
        }
        let filled = poll_fn(|cx| {
            let mut chunks = slots.chunks_mut(65_536);
            let mut bufs: [IoSliceMut<'_>; 4] =
                std::array::from_fn(|_| IoSliceMut::new(chunks.next().unwrap_or_default()));
            socket.poll_recv_batch(cx, &mut bufs, &mut meta)
        })
        .await
        .expect("receive");
        assert!(filled > 0, "a ready batch receive fills a buffer");
        for (meta, buf) in meta.iter().take(filled).zip(slots.chunks(65_536)) {
            received.extend(meta.datagrams(buf).map(<[u8]>::to_vec));
        }
    }
    received
}

/// A socket with only the required methods: the batched ones are the trait's defaults.
#[derive(Debug)]
struct Defaults(Box<dyn AsyncUdpSocket>);

impl AsyncUdpSocket for Defaults {
    fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        target: SocketAddr,
    ) -> Poll<io::Result<usize>> {
        self.0.poll_send_to(cx, buf, target)
    }

    fn poll_recv_from(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, SocketAddr)>> {
        self.0.poll_recv_from(cx, buf)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}
