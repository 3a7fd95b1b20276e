//! When things go wrong: a peer that vanishes, and the connection limit.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};

use super::harness::{bind, case, config, expect_error, ok, spawn, timeout, wait_until};
use super::relay::Relay;
use crate::{Runtime, SocketConfig, UtpStream};

/// The most a vanished peer may take to be noticed, even on a loaded CI machine.
const NOTICE_WITHIN: Duration = Duration::from_secs(30);

/// A connected stream through a [`Relay`] that the case can cut, and the server's end.
async fn through_relay(
    rt: &Arc<dyn Runtime>,
    client: SocketConfig,
    server: SocketConfig,
) -> (Relay, UtpStream, UtpStream) {
    let server = bind(rt, server);
    let client = bind(rt, client);
    let relay = Relay::new(ok(server.local_addr(), "local_addr"));
    let acceptor = spawn(rt, async move {
        let mut s = ok(server.accept().await, "accept through the relay");
        let mut ping = [0; 4];
        ok(s.read_exact(&mut ping).await, "server read");
        ok(s.write_all(b"pong").await, "server write");
        s
    });
    let mut c = ok(client.connect(relay.addr()).await, "connect through the relay");
    ok(c.write_all(b"ping").await, "client write");
    let mut pong = [0; 4];
    ok(c.read_exact(&mut pong).await, "client read");
    (relay, c, acceptor.await)
}

/// The peer vanishes (a relay in between stops forwarding) while data is unacknowledged:
/// with retransmission timers of 200 ms to 1 s and 3 retransmissions, the stream fails with
/// `TimedOut`, reads and writes alike, after at least one timeout and within 30 s.
///
/// # Panics
///
/// When the stream does not fail with `TimedOut` in that window.
pub async fn peer_vanishes(rt: Arc<dyn Runtime>) {
    case(&rt, "peer_vanishes", async {
        let rto = Duration::from_millis(200);
        let short = config(|c| {
            c.set_initial_rto(rto).expect("a non-zero timeout");
            c.set_min_rto(rto).expect("a non-zero timeout");
            // RTT samples taken on a loaded machine must not stretch the backoff much.
            c.set_max_rto(Duration::from_secs(1)).expect("a non-zero timeout");
            c.set_max_retransmits(3).expect("a positive count");
        });
        let (relay, mut c, s) = through_relay(&rt, short, SocketConfig::default()).await;
        relay.cut();
        let start = rt.now();
        ok(c.write_all(&[1; 10_000]).await, "write into the send buffer");
        let mut buf = [0; 16];
        expect_error(c.read(&mut buf).await, io::ErrorKind::TimedOut, "read from a vanished peer");
        let took = rt.now() - start;
        assert!(took >= rto, "timed out after {took:?}, sooner than one retransmission timeout");
        assert!(took < NOTICE_WITHIN, "noticed the vanished peer only after {took:?}");
        expect_error(c.write(b"more").await, io::ErrorKind::TimedOut, "write to a vanished peer");
        drop(s);
    })
    .await;
}

/// The peer vanishes from an idle connection: keepalives every 250 ms from the server
/// keep the client's 2 s idle timeout from firing while the relay forwards; once it is
/// cut, the client's pending read fails with `TimedOut` after about the idle timeout
/// (at least half of it) and within 30 s.
///
/// # Panics
///
/// When the idle connection dies while the peer is there, or does not fail with
/// `TimedOut` once it is gone.
pub async fn idle_peer_vanishes(rt: Arc<dyn Runtime>) {
    case(&rt, "idle_peer_vanishes", async {
        let idle = Duration::from_secs(2);
        let client = config(|c| {
            c.set_idle_timeout(Some(idle)).expect("a non-zero timeout");
        });
        let server = config(|c| {
            c.set_keepalive_interval(Some(Duration::from_millis(250)))
                .expect("a non-zero interval");
        });
        let (relay, mut c, s) = through_relay(&rt, client, server).await;
        let mut buf = [0; 16];
        let alive = timeout(&rt, idle * 3 / 2, c.read(&mut buf)).await;
        assert!(alive.is_none(), "the idle stream ended although keepalives arrived: {alive:?}");
        relay.cut();
        let start = rt.now();
        expect_error(c.read(&mut buf).await, io::ErrorKind::TimedOut, "read from a vanished peer");
        let took = rt.now() - start;
        // The last keepalive came up to an interval (or a late timer) before the cut.
        assert!(took >= idle / 2, "timed out after only {took:?}");
        assert!(took < NOTICE_WITHIN, "noticed the vanished peer only after {took:?}");
        drop(s);
    })
    .await;
}

/// The connection limit: a socket whose `max_connections` is 5 fails its 6th `connect`
/// with `QuotaExceeded` at once; resetting one stream frees a place (once the RESET is
/// sent).
///
/// # Panics
///
/// When the 6th connect does not fail so, or a freed place cannot be used.
pub async fn connection_limit(rt: Arc<dyn Runtime>) {
    case(&rt, "connection_limit", async {
        const LIMIT: usize = 5;
        let server = bind(&rt, SocketConfig::default());
        let client = bind(
            &rt,
            config(|c| {
                c.set_max_connections(LIMIT).expect("a positive limit");
            }),
        );
        let server_addr = ok(server.local_addr(), "local_addr");

        let acceptor = spawn(&rt, async move {
            let mut streams = Vec::new();
            for _ in 0..=LIMIT {
                streams.push(ok(server.accept().await, "accept"));
            }
            streams
        });
        let mut streams = Vec::new();
        for _ in 0..LIMIT {
            streams.push(ok(client.connect(server_addr).await, "connect within the limit"));
        }
        expect_error(
            client.connect(server_addr).await,
            io::ErrorKind::QuotaExceeded,
            "connect beyond max_connections",
        );
        assert_eq!(client.connection_count(), LIMIT);
        streams.pop().expect("five streams").reset();
        // The place is free once the driver has sent the RESET.
        wait_until(&rt, || client.connection_count() < LIMIT).await;
        streams.push(ok(client.connect(server_addr).await, "connect after a reset freed a place"));
        assert_eq!(acceptor.await.len(), LIMIT + 1);
    })
    .await;
}
