//! The rudp cases: messages both ways, large messages and the size limit, backpressure,
//! direct datagrams, a close with a reason, a vanished peer, a refusal, and a user
//! transport.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use utp_proto::rudp::{CloseCode, CloseReason, Config};

use super::channel;
use super::harness::{case, expect_error, loopback, ok, sleep, spawn, timeout};
use super::pattern;
use super::relay::Relay;
use crate::Runtime;
use crate::rudp::{Error, RudpConfig, RudpConnection, RudpSocket};

/// Message `i` of stream `seed`: its bytes follow from both, so the receiver checks it
/// without a copy.
fn message(seed: u64, i: usize, len: usize) -> Vec<u8> {
    let mut m = vec![0; len];
    pattern::fill(seed ^ i as u64, 0, &mut m);
    m
}

/// Sizes from 1 byte to `max`, spread over orders of magnitude, the same for every run.
fn sizes(count: usize, max: usize) -> Vec<usize> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..count)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let unit = (x >> 11) as f64 / (1u64 << 53) as f64;
            if i == 0 { 1 } else { ((unit * (max as f64).ln()).exp() as usize).clamp(1, max) }
        })
        .collect()
}

fn bind(rt: &Arc<dyn Runtime>, config: RudpConfig) -> RudpSocket {
    RudpSocket::bind(rt.clone(), loopback(), config)
        .unwrap_or_else(|e| panic!("binding a rudp socket on 127.0.0.1 failed: {e}"))
}

fn config(adjust: impl FnOnce(&mut Config)) -> RudpConfig {
    let mut rudp = Config::default();
    adjust(&mut rudp);
    RudpConfig::new(rudp)
}

/// A connected pair on loopback with the given settings: (client side, server side).
async fn connected(
    rt: &Arc<dyn Runtime>,
    client: RudpConfig,
    server: RudpConfig,
) -> (RudpSocket, RudpConnection, RudpSocket, RudpConnection) {
    let server = bind(rt, server);
    let client = bind(rt, client);
    let addr = ok(server.local_addr(), "local_addr");
    let accepting = server.clone();
    let acceptor = spawn(rt, async move { ok(accepting.accept().await, "accept") });
    let c = ok(client.connect(addr).await, "connect");
    let s = acceptor.await;
    (client, c, server, s)
}

/// Receives `expected.len()` messages and checks each against `message(seed, i, len)`.
async fn receive_all<A: crate::PeerAddr + std::hash::Hash>(
    conn: &RudpConnection<A>,
    seed: u64,
    expected: &[usize],
    what: &str,
) {
    for (i, &len) in expected.iter().enumerate() {
        let got = ok(conn.recv().await, what).unwrap_or_else(|| panic!("{what}: ended at {i}"));
        assert_eq!(got.len(), len, "{what}: message {i} length");
        assert!(got == message(seed, i, len), "{what}: message {i} differs");
    }
}

/// 2000 messages of 1 byte to 256 KiB each way at once, every one whole, exactly once and
/// in order; then the client flushes and closes with code 0, and the server's `recv`
/// returns `None`.
///
/// # Panics
///
/// When a message is lost, duplicated, reordered or altered, or the close is not seen.
pub async fn rudp_messages_both_ways(rt: Arc<dyn Runtime>) {
    case(&rt, "rudp_messages_both_ways", async {
        let (_cs, c, _ss, s) = connected(&rt, RudpConfig::default(), RudpConfig::default()).await;
        let up = sizes(2000, 256 << 10);
        let down: Vec<usize> = up.iter().rev().copied().collect();
        let s = Arc::new(s);
        let server = spawn(&rt, {
            let (s, up, down) = (s.clone(), up.clone(), down.clone());
            async move {
                let sender = {
                    let s = s.clone();
                    async move {
                        for (i, &len) in down.iter().enumerate() {
                            ok(s.send(&message(2, i, len)).await, "server send");
                        }
                    }
                };
                futures_lite::future::zip(sender, receive_all(&s, 1, &up, "server recv")).await;
                assert_eq!(ok(s.recv().await, "server recv at the end"), None, "orderly end");
            }
        });
        let sender = async {
            for (i, &len) in up.iter().enumerate() {
                ok(c.send(&message(1, i, len)).await, "client send");
            }
        };
        futures_lite::future::zip(sender, receive_all(&c, 2, &down, "client recv")).await;
        ok(c.flush().await, "client flush");
        ok(c.close(CloseCode::Normal, "done").await, "client close");
        server.await;
        assert_eq!(
            s.close_reason(),
            Some(CloseReason::Peer { code: CloseCode::Normal, reason: "done".into() })
        );
    })
    .await;
}

/// Messages of 0 bytes, 1 byte, 1 MiB and the largest allowed arrive whole; one byte more
/// than the peer's `max_message` is refused with `InvalidInput` and nothing is sent.
///
/// # Panics
///
/// When a message differs or the limit is not enforced.
pub async fn rudp_large_messages(rt: Arc<dyn Runtime>) {
    case(&rt, "rudp_large_messages", async {
        let server_config = config(|c| {
            c.set_max_message(4 << 20).expect("valid");
        });
        let (_cs, c, _ss, s) = connected(&rt, RudpConfig::default(), server_config).await;
        assert_eq!(c.max_message(), 4 << 20, "the server's max_message");
        let lens = [0, 1, 1 << 20, 4 << 20];
        for (i, &len) in lens.iter().enumerate() {
            ok(c.send(&message(3, i, len)).await, "send");
        }
        let too_large = c.send(&vec![0; (4 << 20) + 1]).await;
        let error = too_large.expect_err("a message over max_message is refused");
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert!(
            error.to_string().contains(&(4usize << 20).to_string()),
            "says the maximum: {error}"
        );
        receive_all(&s, 3, &lens, "recv").await;
        ok(c.flush().await, "flush");
        assert_eq!(c.stats().map(|st| st.messages_sent), Some(4), "the refused one was not sent");
    })
    .await;
}

/// A receiver that does not read holds the sender back: with 64 KiB send buffer and
/// reassembly memory, a sender of 200 messages of 8 KiB cannot have sent them all while
/// the receiver stalls (at most the two buffers and one message can be taken); then the
/// receiver reads and all 200 arrive in order.
///
/// # Panics
///
/// When the sender is not held back or a message is lost.
pub async fn rudp_backpressure(rt: Arc<dyn Runtime>) {
    case(&rt, "rudp_backpressure", async {
        let small = config(|c| {
            c.set_send_buffer(64 << 10).expect("valid");
            c.set_reassembly_memory(64 << 10).expect("valid");
            c.set_max_message(16 << 10).expect("valid");
        });
        let (_cs, c, _ss, s) = connected(&rt, small.clone(), small).await;
        let lens = vec![8 << 10; 200];
        let sent = Arc::new(AtomicUsize::new(0));
        let c = Arc::new(c);
        let sender = spawn(&rt, {
            let (c, sent, lens) = (c.clone(), sent.clone(), lens.clone());
            async move {
                for (i, &len) in lens.iter().enumerate() {
                    ok(c.send(&message(4, i, len)).await, "send");
                    sent.fetch_add(1, Ordering::SeqCst);
                }
                ok(c.flush().await, "flush");
            }
        });
        sleep(&rt, Duration::from_millis(500)).await;
        let taken = sent.load(Ordering::SeqCst);
        // Send buffer + reassembly memory + one message beyond, in 8 KiB messages.
        assert!(taken < 30, "{taken} messages taken while the receiver stalled");
        receive_all(&s, 4, &lens, "recv after the stall").await;
        sender.await;
    })
    .await;
}

/// Direct datagrams of every size up to `max_direct` arrive unchanged on loopback; one
/// byte more is refused with `InvalidInput`.
///
/// # Panics
///
/// When a datagram is altered, the limit is not enforced, or none arrive.
pub async fn rudp_direct_datagrams(rt: Arc<dyn Runtime>) {
    case(&rt, "rudp_direct_datagrams", async {
        let (_cs, c, _ss, s) = connected(&rt, RudpConfig::default(), RudpConfig::default()).await;
        let max = c.max_direct();
        assert_eq!(max, 1190);
        let lens: Vec<usize> = (0..100).map(|i| if i == 99 { max } else { i * 11 }).collect();
        for (i, &len) in lens.iter().enumerate() {
            ok(c.send_direct(&message(5, i, len)).await, "send_direct");
        }
        let error = c.send_direct(&vec![0; max + 1]).await.expect_err("too large");
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        let mut got = 0;
        while got < lens.len() {
            let Some(next) = timeout(&rt, Duration::from_secs(5), s.recv_direct()).await else {
                break;
            };
            let payload = ok(next, "recv_direct").expect("the connection is open");
            let i = (0..lens.len())
                .find(|&i| lens[i] == payload.len() && payload == message(5, i, lens[i]))
                .unwrap_or_else(|| {
                    panic!("a direct datagram of {} bytes was altered", payload.len())
                });
            assert!(i >= got, "direct datagrams on loopback keep their order");
            got = i + 1;
        }
        assert_eq!(got, lens.len(), "every direct datagram arrived on loopback");
    })
    .await;
}

/// A close with an application code and a reason: the peer receives every message
/// flushed before it, then its `recv` fails with `ConnectionAborted`, and the error
/// carries the code and the reason; sending on either side then fails.
///
/// # Panics
///
/// When the reason is lost or messages before the close are missing.
pub async fn rudp_close_with_reason(rt: Arc<dyn Runtime>) {
    case(&rt, "rudp_close_with_reason", async {
        let (_cs, c, _ss, s) = connected(&rt, RudpConfig::default(), RudpConfig::default()).await;
        let lens = [10, 20, 30];
        for (i, &len) in lens.iter().enumerate() {
            ok(c.send(&message(6, i, len)).await, "send");
        }
        ok(c.flush().await, "flush");
        ok(c.close(CloseCode::Application(42), "bye now").await, "close");
        receive_all(&s, 6, &lens, "recv before the close").await;
        let error = s.recv().await.expect_err("the connection was closed with an error code");
        assert_eq!(error.kind(), io::ErrorKind::ConnectionAborted);
        let inner = error.get_ref().and_then(|e| e.downcast_ref::<Error>()).cloned();
        assert_eq!(
            inner,
            Some(Error::Closed(CloseReason::Peer {
                code: CloseCode::Application(42),
                reason: "bye now".into()
            }))
        );
        expect_error(s.send(b"late").await, io::ErrorKind::ConnectionAborted, "send after close");
        expect_error(c.send(b"late").await, io::ErrorKind::NotConnected, "send after own close");
        let bad = c.close(CloseCode::Application(2), "reserved").await;
        assert!(bad.is_ok(), "closing an ended connection does nothing");
    })
    .await;
}

/// The peer vanishes (a relay in between stops forwarding): with pings every 200 ms and
/// 2 unanswered allowed, the connection fails with `TimedOut` after at least 600 ms of
/// silence and within 30 s, and says how many pings went unanswered.
///
/// # Panics
///
/// When the silent peer is not noticed in that window.
pub async fn rudp_peer_vanishes(rt: Arc<dyn Runtime>) {
    case(&rt, "rudp_peer_vanishes", async {
        let interval = Duration::from_millis(200);
        let pings = config(|c| {
            c.set_ping_interval(interval).expect("valid");
            c.set_ping_packet_count(2).expect("valid");
        });
        let server = bind(&rt, RudpConfig::default());
        let client = bind(&rt, pings);
        let relay = Relay::new(ok(server.local_addr(), "local_addr"));
        let acceptor = spawn(&rt, async move {
            let s = ok(server.accept().await, "accept through the relay");
            (server, s)
        });
        let c = ok(client.connect(relay.addr()).await, "connect through the relay");
        let (_server, s) = acceptor.await;
        ok(c.send(b"hello").await, "send");
        assert_eq!(ok(s.recv().await, "recv"), Some(b"hello".to_vec()));
        ok(c.flush().await, "flush");
        relay.cut();
        let start = rt.now();
        let error = c.recv().await.expect_err("the peer is gone");
        let took = rt.now() - start;
        assert_eq!(error.kind(), io::ErrorKind::TimedOut, "{error}");
        assert!(error.to_string().contains("2 pings unanswered"), "{error}");
        assert!(took >= interval * 3, "gave up after {took:?}, before three ping intervals");
        assert!(took < Duration::from_secs(30), "noticed the silent peer only after {took:?}");
    })
    .await;
}

/// A listener that never accepts: after its `incoming_timeout` (300 ms) the starter's
/// `connect` fails with `ConnectionRefused`, and the error says why.
///
/// # Panics
///
/// When the connect does not fail that way.
pub async fn rudp_refused(rt: Arc<dyn Runtime>) {
    case(&rt, "rudp_refused", async {
        let impatient = config(|c| {
            c.set_incoming_timeout(Duration::from_millis(300)).expect("valid");
        });
        let server = bind(&rt, impatient);
        let client = bind(&rt, RudpConfig::default());
        let addr = ok(server.local_addr(), "local_addr");
        let error = client.connect(addr).await.expect_err("nobody accepts");
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused, "{error}");
        assert!(error.to_string().contains("not accepted in time"), "{error}");
        drop(server);
    })
    .await;
}

/// rudp over a user-supplied [`Transport`](crate::Transport): the in-memory [`channel`]
/// carries 300 messages each way.
///
/// # Panics
///
/// When a message is altered or lost.
pub async fn rudp_channel_transport(rt: Arc<dyn Runtime>) {
    case(&rt, "rudp_channel_transport", async {
        let (a, b) = channel::pair();
        let server_addr = a.addr();
        let server = ok(RudpSocket::with_transport(rt.clone(), a, RudpConfig::default()), "server");
        let client = ok(RudpSocket::with_transport(rt.clone(), b, RudpConfig::default()), "client");
        let lens = sizes(300, 64 << 10);
        let acceptor = spawn(&rt, {
            let lens = lens.clone();
            async move {
                let s = ok(server.accept().await, "accept over the channel");
                assert_eq!(*s.peer_addr(), channel::ChannelAddr(2));
                for (i, &len) in lens.iter().enumerate() {
                    let got = ok(s.recv().await, "recv").expect("open");
                    assert!(got == message(7, i, len), "message {i} differs");
                    ok(s.send(&got).await, "echo");
                }
                ok(s.flush().await, "flush");
                s
            }
        });
        let c = ok(client.connect(server_addr).await, "connect over the channel");
        for (i, &len) in lens.iter().enumerate() {
            ok(c.send(&message(7, i, len)).await, "send");
        }
        receive_all(&c, 7, &lens, "echoes").await;
        let _s = acceptor.await;
    })
    .await;
}
