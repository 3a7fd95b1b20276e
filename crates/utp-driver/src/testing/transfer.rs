//! Moving data: bulk transfers both ways, many streams at once and one after another,
//! backpressure, and a transport that is not UDP.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};

use super::channel;
use super::harness::{bind, case, config, ok, sleep, spawn};
use super::pattern;
use crate::{Runtime, SocketConfig, UtpSocket};

/// The size of the bulk transfers.
const BULK: u64 = 64 << 20;

/// 64 MiB from the initiator to the acceptor arrive byte-identical; the sender's
/// `close().await` resolves once all is acknowledged, the receiver reads end-of-stream.
///
/// # Panics
///
/// When a byte differs, the length differs, or a close fails.
pub async fn transfer_to_acceptor(rt: Arc<dyn Runtime>) {
    case(&rt, "transfer_to_acceptor", async {
        let server = bind(&rt, SocketConfig::default());
        let client = bind(&rt, SocketConfig::default());
        let server_addr = ok(server.local_addr(), "local_addr");

        let receiver = spawn(&rt, async move {
            let mut s = ok(server.accept().await, "accept");
            let got = pattern::read_to_end(&mut s, 10, "acceptor receiving 64 MiB").await;
            ok(s.close().await, "acceptor close");
            got
        });
        let mut c = ok(client.connect(server_addr).await, "connect");
        pattern::write(&mut c, 10, BULK, "initiator sending 64 MiB").await;
        ok(c.close().await, "initiator close");
        assert_eq!(receiver.await, BULK, "bytes received");
    })
    .await;
}

/// 64 MiB from the acceptor to the initiator, after a small request from the initiator
/// (libutp's rule: the acceptor speaks second), arrive byte-identical.
///
/// # Panics
///
/// When a byte differs, the length differs, or a close fails.
pub async fn transfer_to_initiator(rt: Arc<dyn Runtime>) {
    case(&rt, "transfer_to_initiator", async {
        let server = bind(&rt, SocketConfig::default());
        let client = bind(&rt, SocketConfig::default());
        let server_addr = ok(server.local_addr(), "local_addr");

        let sender = spawn(&rt, async move {
            let mut s = ok(server.accept().await, "accept");
            let mut request = [0; 3];
            ok(s.read_exact(&mut request).await, "acceptor reads the request");
            assert_eq!(&request, b"GET");
            pattern::write(&mut s, 11, BULK, "acceptor sending 64 MiB").await;
            ok(s.close().await, "acceptor close");
        });
        let mut c = ok(client.connect(server_addr).await, "connect");
        ok(c.write_all(b"GET").await, "initiator request");
        let got = pattern::read_to_end(&mut c, 11, "initiator receiving 64 MiB").await;
        assert_eq!(got, BULK, "bytes received");
        ok(c.close().await, "initiator close");
        sender.await;
    })
    .await;
}

/// Streams in [`concurrent_streams`].
const STREAMS: u32 = 100;
/// Bytes each of them carries.
const PER_STREAM: u64 = 256 * 1024;

/// 100 streams at once between one client socket and one server socket, each carrying
/// 256 KiB of its own data (checked byte by byte) and an answer back; every stream is
/// accepted exactly once.
///
/// # Panics
///
/// When a stream fails, its data is altered, or a stream is lost or duplicated.
pub async fn concurrent_streams(rt: Arc<dyn Runtime>) {
    case(&rt, "concurrent_streams", async {
        // All SYNs may arrive before the acceptor gets to them.
        let server = bind(
            &rt,
            config(|c| {
                c.set_max_pending_incoming(2 * STREAMS as usize).expect("a positive limit");
            }),
        );
        let client = bind(&rt, SocketConfig::default());
        let server_addr = ok(server.local_addr(), "local_addr");

        let acceptor = spawn(&rt, {
            let rt = rt.clone();
            async move {
                let mut handlers = Vec::new();
                for _ in 0..STREAMS {
                    let mut s = ok(server.accept().await, "accept");
                    handlers.push(spawn(&rt, async move {
                        let mut id = [0; 4];
                        ok(s.read_exact(&mut id).await, "server reads the stream id");
                        let id = u32::from_le_bytes(id);
                        let got = pattern::read_to_end(&mut s, id.into(), "server stream").await;
                        ok(s.write_all(&got.to_le_bytes()).await, "server answer");
                        ok(s.close().await, "server close");
                        id
                    }));
                }
                let mut ids = BTreeSet::new();
                for h in handlers {
                    let id = h.await;
                    assert!(ids.insert(id), "stream {id} was accepted twice");
                }
                ids
            }
        });

        let senders: Vec<_> = (0..STREAMS)
            .map(|id| {
                let client = client.clone();
                spawn(&rt, async move {
                    let mut c = ok(client.connect(server_addr).await, "connect");
                    ok(c.write_all(&id.to_le_bytes()).await, "client writes the stream id");
                    pattern::write(&mut c, id.into(), PER_STREAM, "client stream").await;
                    c.shutdown();
                    let mut answer = Vec::new();
                    ok(c.read_to_end(&mut answer).await, "client reads the answer");
                    assert_eq!(
                        answer,
                        PER_STREAM.to_le_bytes(),
                        "stream {id}: bytes the server got"
                    );
                    ok(c.close().await, "client close");
                })
            })
            .collect();
        for s in senders {
            s.await;
        }
        let ids = acceptor.await;
        assert_eq!(ids, (0..STREAMS).collect(), "streams the server accepted");
    })
    .await;
}

/// Streams in [`sequential_streams`].
const ROUNDS: u64 = 50;

/// 50 streams one after another on the same two sockets: each time the initiator
/// connects, writes and closes, and the acceptor accepts, reads to end-of-stream and
/// closes.
///
/// # Panics
///
/// When a round fails or its data is altered.
pub async fn sequential_streams(rt: Arc<dyn Runtime>) {
    case(&rt, "sequential_streams", async {
        let server = bind(&rt, SocketConfig::default());
        let client = bind(&rt, SocketConfig::default());
        let server_addr = ok(server.local_addr(), "local_addr");
        const LEN: u64 = 20_000;

        let acceptor = spawn(&rt, async move {
            for round in 0..ROUNDS {
                let mut s = ok(server.accept().await, "accept");
                let got = pattern::read_to_end(&mut s, round, "acceptor read").await;
                assert_eq!(got, LEN, "round {round}: bytes received");
                ok(s.close().await, "acceptor close");
            }
        });
        for round in 0..ROUNDS {
            let mut c = ok(client.connect(server_addr).await, "connect");
            pattern::write(&mut c, round, LEN, "initiator write").await;
            ok(c.close().await, "initiator close");
        }
        acceptor.await;
    })
    .await;
}

/// The driver over a user-supplied [`Transport`](crate::Transport): the in-memory
/// [`channel`] pair carries a 4 MiB transfer one way and 1 MiB back.
///
/// # Panics
///
/// When the data is altered or a close fails.
pub async fn channel_transport(rt: Arc<dyn Runtime>) {
    case(&rt, "channel_transport", async {
        let (a, b) = channel::pair();
        let server_addr = a.addr();
        let server = UtpSocket::with_transport(rt.clone(), a, SocketConfig::default());
        let client = UtpSocket::with_transport(rt.clone(), b, SocketConfig::default());

        let acceptor = spawn(&rt, async move {
            let mut s = ok(server.accept().await, "accept over the channel");
            assert_eq!(*s.peer_addr(), channel::ChannelAddr(2));
            let got = pattern::read_to_end(&mut s, 20, "acceptor read").await;
            pattern::write(&mut s, 21, 1 << 20, "acceptor write").await;
            ok(s.close().await, "acceptor close");
            got
        });
        let mut c = ok(client.connect(server_addr).await, "connect over the channel");
        pattern::write(&mut c, 20, 4 << 20, "initiator write").await;
        c.shutdown();
        let got = pattern::read_to_end(&mut c, 21, "initiator read").await;
        assert_eq!(got, 1 << 20, "bytes the initiator received");
        ok(c.close().await, "initiator close");
        assert_eq!(acceptor.await, 4 << 20, "bytes the acceptor received");
    })
    .await;
}

/// Send and receive buffers in [`backpressure`].
const SMALL_BUFFER: usize = 64 * 1024;
/// What may be accepted beyond both buffers while the reader stalls: a packet or two.
const SLACK: u64 = 4 * 1024;

/// Backpressure with a reader that does not read: with 64 KiB send and receive buffers
/// the writer's writes go pending, and the bytes accepted never exceed both buffers (plus
/// a little slack) while the reader stalls; then the reader drains and all 1 MiB arrives
/// intact.
///
/// # Panics
///
/// When the writer is not held back, is held too far out, or data is altered.
pub async fn backpressure(rt: Arc<dyn Runtime>) {
    case(&rt, "backpressure", async {
        let small = || {
            config(|c| {
                c.set_send_buffer(SMALL_BUFFER).expect("a valid buffer size");
                c.set_recv_buffer(SMALL_BUFFER).expect("a valid buffer size");
            })
        };
        let server = bind(&rt, small());
        let client = bind(&rt, small());
        let server_addr = ok(server.local_addr(), "local_addr");
        const TOTAL: u64 = 1 << 20;
        let bound = 2 * SMALL_BUFFER as u64 + SLACK;

        let accepted = Arc::new(AtomicU64::new(0));
        let writer = spawn(&rt, {
            let accepted = accepted.clone();
            async move {
                let mut c = ok(client.connect(server_addr).await, "connect");
                let mut chunk = vec![0; 8 * 1024];
                let mut offset = 0;
                while offset < TOTAL {
                    let n = (TOTAL - offset).min(chunk.len() as u64) as usize;
                    pattern::fill(30, offset, &mut chunk[..n]);
                    offset += ok(c.write(&chunk[..n]).await, "writer") as u64;
                    accepted.store(offset, Ordering::SeqCst);
                }
                ok(c.close().await, "writer close");
            }
        });

        let mut s = ok(server.accept().await, "accept");
        // Watch the writer until it has made no progress for 500 ms.
        let (mut last, mut still) = (0, 0);
        for _ in 0..400 {
            sleep(&rt, Duration::from_millis(50)).await;
            let now = accepted.load(Ordering::SeqCst);
            assert!(
                now <= bound,
                "the writer got {now} bytes accepted while the reader read nothing \
                 (send + receive buffer = {})",
                2 * SMALL_BUFFER
            );
            if now == last && now > 0 {
                still += 1;
                if still == 10 {
                    break;
                }
            } else {
                (last, still) = (now, 0);
            }
        }
        assert_eq!(still, 10, "the writer never stalled ({last} bytes accepted)");
        assert!(last < TOTAL, "the writer finished although nobody read");

        let got = pattern::read_to_end(&mut s, 30, "reader draining").await;
        assert_eq!(got, TOTAL, "bytes received");
        ok(s.close().await, "reader close");
        writer.await;
    })
    .await;
}
