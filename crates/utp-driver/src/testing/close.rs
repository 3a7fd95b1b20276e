//! Ending streams: half-close, graceful close, reset, and dropping without a close.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use utp_proto::utp::State as ConnState;

use super::harness::{bind, case, expect_error, ok, spawn, wait_until};
use super::pattern;
use crate::{Runtime, SocketConfig};

/// Half-close: the client sends a request and shuts down its direction (FIN); the server
/// reads it to end-of-stream, then writes its reply on the still-open direction and
/// closes; the client reads the whole reply, and its own writes after `shutdown` fail
/// with `BrokenPipe`.
///
/// # Panics
///
/// When the request or reply is cut short or altered, or a close fails.
pub async fn half_close(rt: Arc<dyn Runtime>) {
    case(&rt, "half_close", async {
        let server = bind(&rt, SocketConfig::default());
        let client = bind(&rt, SocketConfig::default());
        let server_addr = ok(server.local_addr(), "local_addr");
        const REQUEST: u64 = 10_000;
        const REPLY: u64 = 300_000;

        let acceptor = spawn(&rt, async move {
            let mut s = ok(server.accept().await, "accept");
            let got = pattern::read_to_end(&mut s, 1, "server reads the request").await;
            assert_eq!(got, REQUEST, "request length");
            pattern::write(&mut s, 2, REPLY, "server writes the reply after the client's FIN")
                .await;
            ok(s.close().await, "server close");
        });

        let mut c = ok(client.connect(server_addr).await, "connect");
        pattern::write(&mut c, 1, REQUEST, "client writes the request").await;
        c.shutdown();
        expect_error(c.write(b"more").await, io::ErrorKind::BrokenPipe, "write after shutdown");
        let got = pattern::read_to_end(&mut c, 2, "client reads the reply").await;
        assert_eq!(got, REPLY, "reply length");
        ok(c.close().await, "client close");
        acceptor.await;
    })
    .await;
}

/// Graceful close: `close().await` returns `Ok` once the peer acknowledged everything;
/// the peer reads all the data, then end-of-stream (`Ok(0)`, again on every further read),
/// and its own close succeeds.
///
/// # Panics
///
/// When a close fails or the peer does not read the data and then end-of-stream.
pub async fn graceful_close(rt: Arc<dyn Runtime>) {
    case(&rt, "graceful_close", async {
        let server = bind(&rt, SocketConfig::default());
        let client = bind(&rt, SocketConfig::default());
        let server_addr = ok(server.local_addr(), "local_addr");
        const LEN: u64 = 100_000;

        let acceptor = spawn(&rt, async move {
            let mut s = ok(server.accept().await, "accept");
            let got = pattern::read_to_end(&mut s, 3, "server read").await;
            assert_eq!(got, LEN, "bytes before end-of-stream");
            let mut buf = [0; 8];
            assert_eq!(ok(s.read(&mut buf).await, "read after end-of-stream"), 0);
            ok(s.close().await, "server close");
        });

        let mut c = ok(client.connect(server_addr).await, "connect");
        pattern::write(&mut c, 3, LEN, "client write").await;
        ok(c.close().await, "client close (resolves once the server acknowledged all)");
        acceptor.await;
    })
    .await;
}

/// `reset()` aborts: the peer's pending read fails with `ConnectionReset`, and so does its
/// next write.
///
/// # Panics
///
/// When the peer's read or write does not fail with `ConnectionReset`.
pub async fn reset(rt: Arc<dyn Runtime>) {
    case(&rt, "reset", async {
        let server = bind(&rt, SocketConfig::default());
        let client = bind(&rt, SocketConfig::default());
        let server_addr = ok(server.local_addr(), "local_addr");

        let acceptor = spawn(&rt, async move {
            let mut s = ok(server.accept().await, "accept");
            let mut buf = [0; 4];
            ok(s.read_exact(&mut buf).await, "server read");
            ok(s.write_all(b"pong").await, "server write");
            // Waits here until the RESET arrives.
            expect_error(
                s.read(&mut buf).await,
                io::ErrorKind::ConnectionReset,
                "read after reset",
            );
            expect_error(s.write(b"x").await, io::ErrorKind::ConnectionReset, "write after reset");
        });

        let mut c = ok(client.connect(server_addr).await, "connect");
        ok(c.write_all(b"ping").await, "client write");
        let mut buf = [0; 4];
        ok(c.read_exact(&mut buf).await, "client read");
        c.reset();
        acceptor.await;
    })
    .await;
}

/// Dropping a stream that was neither closed nor shut down resets it: the peer's pending
/// read fails with `ConnectionReset` (a graceful close would read as end-of-stream), and
/// so does its next write.
///
/// # Panics
///
/// When the peer's read or write does not fail with `ConnectionReset`.
pub async fn drop_resets(rt: Arc<dyn Runtime>) {
    case(&rt, "drop_resets", async {
        let server = bind(&rt, SocketConfig::default());
        let client = bind(&rt, SocketConfig::default());
        let server_addr = ok(server.local_addr(), "local_addr");

        let acceptor = spawn(&rt, async move {
            let mut s = ok(server.accept().await, "accept");
            let mut buf = [0; 2];
            ok(s.read_exact(&mut buf).await, "server read");
            // Small enough for the empty send buffer to take in one write, before the
            // client can have read and dropped.
            pattern::write(&mut s, 4, 2000, "server write").await;
            // Waits here until the client's stream is dropped.
            expect_error(s.read(&mut buf).await, io::ErrorKind::ConnectionReset, "read after drop");
            expect_error(s.write(b"x").await, io::ErrorKind::ConnectionReset, "write after drop");
        });

        let mut c = ok(client.connect(server_addr).await, "connect");
        ok(c.write_all(b"go").await, "client write");
        // Read part of what the server sent and drop the rest with the stream.
        pattern::read_prefix(&mut c, 4, 1000, "client read").await;
        drop(c);
        acceptor.await;
    })
    .await;
}

/// Data outlives the connection: the client shuts down, the server reads to end-of-stream,
/// writes 200 KiB and closes, and its close resolves (so both directions are finished and
/// acknowledged) before the client has read anything; the client then reads all 200 KiB
/// and end-of-stream.
///
/// # Panics
///
/// When bytes that arrived before the connection ended are lost.
pub async fn read_after_close(rt: Arc<dyn Runtime>) {
    case(&rt, "read_after_close", async {
        let server = bind(&rt, SocketConfig::default());
        let client = bind(&rt, SocketConfig::default());
        let server_addr = ok(server.local_addr(), "local_addr");
        const LEN: u64 = 200 * 1024;

        let acceptor = spawn(&rt, async move {
            let mut s = ok(server.accept().await, "accept");
            let mut request = Vec::new();
            ok(s.read_to_end(&mut request).await, "server read to end");
            assert_eq!(request, b"go");
            pattern::write(&mut s, 5, LEN, "server write").await;
            ok(s.close().await, "server close");
        });

        let mut c = ok(client.connect(server_addr).await, "connect");
        ok(c.write_all(b"go").await, "client write");
        c.shutdown();
        acceptor.await;
        let got = pattern::read_to_end(&mut c, 5, "client reads after the server closed").await;
        assert_eq!(got, LEN, "bytes the client read after the connection ended");
        ok(c.close().await, "client close");
    })
    .await;
}

/// Data outlives a reset: the server writes 100 KiB, and once the client's engine has
/// received all of it (its stats say so) the server resets; the client, reading only
/// after the RESET arrived, reads all 100 KiB and then `ConnectionReset`.
///
/// # Panics
///
/// When bytes that arrived before the RESET are lost, or the reset is not reported.
pub async fn read_after_reset(rt: Arc<dyn Runtime>) {
    case(&rt, "read_after_reset", async {
        let server = bind(&rt, SocketConfig::default());
        let client = bind(&rt, SocketConfig::default());
        let server_addr = ok(server.local_addr(), "local_addr");
        const LEN: u64 = 100 * 1024;
        let go = Arc::new(AtomicBool::new(false));

        let acceptor = spawn(&rt, {
            let (rt, go) = (rt.clone(), go.clone());
            async move {
                let mut s = ok(server.accept().await, "accept");
                let mut request = [0; 2];
                ok(s.read_exact(&mut request).await, "server read");
                pattern::write(&mut s, 6, LEN, "server write").await;
                wait_until(&rt, || go.load(Ordering::SeqCst)).await;
                s.reset();
            }
        });

        let mut c = ok(client.connect(server_addr).await, "connect");
        ok(c.write_all(b"go").await, "client write");
        wait_until(&rt, || c.stats().is_some_and(|s| s.bytes_received >= LEN)).await;
        go.store(true, Ordering::SeqCst);
        acceptor.await;
        wait_until(&rt, || c.state().is_none_or(|s| s == ConnState::Closed)).await;
        pattern::read_prefix(&mut c, 6, LEN, "client reads after the RESET").await;
        let mut buf = [0; 16];
        expect_error(c.read(&mut buf).await, io::ErrorKind::ConnectionReset, "read past the data");
    })
    .await;
}
