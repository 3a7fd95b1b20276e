//! Opening streams: who may speak first, and Portal's application-chosen connection ids.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use utp_proto::utp::{Config, Profile};

use super::harness::{
    bind, case, config, config_from, expect_error, ok, spawn, timeout, wait_until,
};
use crate::{Runtime, SocketConfig, UtpStream};

/// Connect and accept with libutp's rules (the default): the acceptor holds what it
/// writes until the initiator's first data has arrived, then data flows both ways on the
/// one stream; both sides see each other's address and complementary connection ids; a
/// half-close and a close end it cleanly.
///
/// # Panics
///
/// When any of that does not hold.
pub async fn connect_accept(rt: Arc<dyn Runtime>) {
    case(&rt, "connect_accept", async {
        let server = bind(&rt, SocketConfig::default());
        let client = bind(&rt, SocketConfig::default());
        let (server_addr, client_addr) =
            (ok(server.local_addr(), "local_addr"), ok(client.local_addr(), "local_addr"));

        let acceptor = spawn(&rt, async move {
            let mut s = ok(server.accept().await, "accept");
            assert_eq!(*s.peer_addr(), client_addr, "the accepted stream's peer address");
            // Held back until the initiator has spoken.
            ok(s.write_all(b"early").await, "server write before the client spoke");
            let mut hello = [0; 5];
            ok(s.read_exact(&mut hello).await, "server read");
            assert_eq!(&hello, b"hello");
            ok(s.write_all(b"world").await, "server write");
            let mut rest = Vec::new();
            ok(s.read_to_end(&mut rest).await, "server read to end");
            assert!(rest.is_empty(), "the client sent more than it wrote: {rest:?}");
            let ids = s.connection_ids();
            ok(s.close().await, "server close");
            ids
        });

        let mut c = ok(client.connect(server_addr).await, "connect");
        assert_eq!(*c.peer_addr(), server_addr, "the connected stream's peer address");
        let client_ids = c.connection_ids().expect("an open stream has connection ids");
        let mut byte = [0; 1];
        let early = timeout(&rt, Duration::from_millis(300), c.read(&mut byte)).await;
        assert!(
            early.is_none(),
            "with libutp's rules the acceptor must not send before the initiator's first data, \
             but the client read {early:?}"
        );
        ok(c.write_all(b"hello").await, "client write");
        let mut reply = [0; 10];
        ok(c.read_exact(&mut reply).await, "client read");
        assert_eq!(&reply, b"earlyworld");
        c.shutdown();
        assert_eq!(ok(c.read(&mut byte).await, "client read to end"), 0, "end of stream");
        ok(c.close().await, "client close");

        let server_ids = acceptor.await.expect("an open stream has connection ids");
        assert_eq!(
            (client_ids.0, client_ids.1),
            (server_ids.1, server_ids.0),
            "each side sends with the id the other receives on"
        );
        assert_eq!(client_ids.1, client_ids.0.wrapping_add(1), "the initiator sends on id + 1");
    })
    .await;
}

/// With `acceptor_sends_first` on both sides, the acceptor speaks first: the initiator
/// reads the greeting before it has sent anything, then answers on the same stream.
///
/// # Panics
///
/// When the greeting or the answer does not arrive intact.
pub async fn acceptor_sends_first(rt: Arc<dyn Runtime>) {
    case(&rt, "acceptor_sends_first", async {
        let first = || {
            config(|c| {
                c.set_acceptor_sends_first(true).expect("a boolean setting");
            })
        };
        let server = bind(&rt, first());
        let client = bind(&rt, first());
        let server_addr = ok(server.local_addr(), "local_addr");

        let acceptor = spawn(&rt, async move {
            let mut s = ok(server.accept().await, "accept");
            ok(s.write_all(b"greeting").await, "server greeting");
            let mut answer = Vec::new();
            ok(s.read_to_end(&mut answer).await, "server read to end");
            assert_eq!(answer, b"answer");
            ok(s.close().await, "server close");
        });

        let mut c = ok(client.connect(server_addr).await, "connect");
        let mut greeting = [0; 8];
        ok(c.read_exact(&mut greeting).await, "client reads the greeting before speaking");
        assert_eq!(&greeting, b"greeting");
        ok(c.write_all(b"answer").await, "client answer");
        c.shutdown();
        let mut rest = Vec::new();
        ok(c.read_to_end(&mut rest).await, "client read to end");
        assert!(rest.is_empty(), "the server sent more than it wrote: {rest:?}");
        ok(c.close().await, "client close");
        acceptor.await;
    })
    .await;
}

/// The connection id both sides of a Portal case agree on out of band.
const PORTAL_ID: u16 = 0x5A5A;

fn portal() -> SocketConfig {
    config_from(Config::profile(Profile::Portal), |_| {})
}

/// Portal's flow with the acceptor first: `accept_with_id` before the initiator's SYN is
/// sent; the acceptor's data written before the SYN arrives is delivered once it does;
/// then data both ways and a clean close. The connection ids are the agreed ones.
///
/// # Panics
///
/// When the streams do not connect with the agreed ids or data does not arrive intact.
pub async fn portal_accept_before_syn(rt: Arc<dyn Runtime>) {
    case(&rt, "portal_accept_before_syn", async {
        let server = bind(&rt, portal());
        let client = bind(&rt, portal());
        let server_addr = ok(server.local_addr(), "local_addr");
        let client_addr = ok(client.local_addr(), "local_addr");

        let mut s = ok(server.accept_with_id(client_addr, PORTAL_ID), "accept_with_id");
        ok(s.write_all(b"offer").await, "server write before the SYN");
        let acceptor = spawn(&rt, async move {
            portal_acceptor(s).await;
            drop(server);
        });
        let c = ok(client.connect_with_id(server_addr, PORTAL_ID).await, "connect_with_id");
        portal_initiator(c).await;
        acceptor.await;
    })
    .await;
}

/// Portal's flow with the initiator first: its SYN arrives (and waits) before
/// `accept_with_id`, which then completes the handshake at once; data both ways.
///
/// # Panics
///
/// When the streams do not connect with the agreed ids or data does not arrive intact.
pub async fn portal_syn_before_accept(rt: Arc<dyn Runtime>) {
    case(&rt, "portal_syn_before_accept", async {
        let server = bind(&rt, portal());
        let client = bind(&rt, portal());
        let server_addr = ok(server.local_addr(), "local_addr");
        let client_addr = ok(client.local_addr(), "local_addr");

        let initiator = spawn(&rt, async move {
            let c = ok(client.connect_with_id(server_addr, PORTAL_ID).await, "connect_with_id");
            portal_initiator(c).await;
        });
        wait_until(&rt, || server.driver_stats().datagrams_received > 0).await;
        let mut s = ok(server.accept_with_id(client_addr, PORTAL_ID), "accept_with_id");
        ok(s.write_all(b"offer").await, "server write");
        portal_acceptor(s).await;
        initiator.await;
    })
    .await;
}

async fn portal_acceptor(mut s: UtpStream) {
    let ids = s.connection_ids().expect("an open stream has connection ids");
    assert_eq!(ids, (PORTAL_ID.wrapping_add(1), PORTAL_ID), "the acceptor's (receive, send) ids");
    let mut request = Vec::new();
    ok(s.read_to_end(&mut request).await, "acceptor read to end");
    assert_eq!(request, b"thanks");
    ok(s.write_all(b"bye").await, "acceptor write after the initiator's FIN");
    ok(s.close().await, "acceptor close");
}

async fn portal_initiator(mut c: UtpStream) {
    let ids = c.connection_ids().expect("an open stream has connection ids");
    assert_eq!(ids, (PORTAL_ID, PORTAL_ID.wrapping_add(1)), "the initiator's (receive, send) ids");
    let mut offer = [0; 5];
    ok(c.read_exact(&mut offer).await, "initiator read");
    assert_eq!(&offer, b"offer");
    ok(c.write_all(b"thanks").await, "initiator write");
    c.shutdown();
    let mut rest = Vec::new();
    ok(c.read_to_end(&mut rest).await, "initiator read to end");
    assert_eq!(rest, b"bye");
    ok(c.close().await, "initiator close");
}

/// `accept_with_id` for a SYN that never comes: reads and writes fail with `TimedOut`
/// once `expected_id_timeout` (here 500 ms) has passed, and not before; the id can then
/// be expected again.
///
/// # Panics
///
/// When the stream does not fail, fails otherwise, or fails much too early or late.
pub async fn portal_accept_times_out(rt: Arc<dyn Runtime>) {
    case(&rt, "portal_accept_times_out", async {
        let wait = Duration::from_millis(500);
        let server = bind(
            &rt,
            config_from(Config::profile(Profile::Portal), |c| {
                c.set_expected_id_timeout(wait).expect("a non-zero timeout");
            }),
        );
        // Nobody sends from here: port 9 is "discard".
        let nobody = std::net::SocketAddr::from(([127, 0, 0, 1], 9));
        let start = rt.now();
        let mut s = ok(server.accept_with_id(nobody, PORTAL_ID), "accept_with_id");
        let mut buf = [0; 16];
        expect_error(s.read(&mut buf).await, io::ErrorKind::TimedOut, "read without a SYN");
        let took = rt.now() - start;
        assert!(took >= wait - Duration::from_millis(50), "failed after {took:?}, before {wait:?}");
        assert!(took < Duration::from_secs(30), "failed only after {took:?}");
        expect_error(s.write(b"late").await, io::ErrorKind::TimedOut, "write after the timeout");
        // The connection is gone, so its id may be expected again.
        drop(s);
        ok(server.accept_with_id(nobody, PORTAL_ID).map(drop), "accept_with_id again");
    })
    .await;
}
