//! TFTP cases: the driver's [`TftpServer`] and its [`get`] / [`put`] clients over loopback,
//! with a served directory in a fresh temporary directory per case.
//!
//! Each case's tree is `base/root` (served) next to `base/outside` (never to be touched),
//! and every refusal is checked on both ends: the client's error (code and message) and
//! the file system (nothing created, nothing left over, nothing outside the root).

use std::fs;
use std::future::poll_fn;
use std::io::{self, Cursor, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Poll, Waker};
use std::time::Duration;

use utp_proto::tftp::path::UPLOAD_TEMP_PREFIX;
use utp_proto::tftp::{Config, OptionRequest};
use utp_proto::wire::tftp::{ErrorCode, Mode, Packet};

use super::harness::{case, spawn, timeout, wait_until};
use super::pattern;
use crate::tftp::{
    ClientOptions, ServerConfig, ServerEvent, Summary, TftpError, TftpServer, WritePolicy, get, put,
};
use crate::{AsyncUdpSocket, Runtime};

/// Sizes every round trip moves: empty, exactly one block (so an empty block ends it), and
/// about a MiB that is not a multiple of any block size used.
const SIZES: [u64; 3] = [0, 512, (1 << 20) + 333];

/// The receivers' dally in these cases: long enough for loopback, short enough not to slow
/// every transfer by the default second.
const DALLY: Duration = Duration::from_millis(100);

/// The engine settings both ends use here.
fn protocol(adjust: impl FnOnce(&mut Config)) -> Arc<Config> {
    let mut config = Config::default();
    // A valid duration.
    let _ = config.set_dally(DALLY);
    adjust(&mut config);
    Arc::new(config)
}

/// The CLI's options: large blocks and windows, plus `tsize`.
fn fast(tsize: u64) -> ClientOptions {
    let request = OptionRequest {
        blksize: Some(1428),
        windowsize: Some(16),
        tsize: Some(tsize),
        ..OptionRequest::NONE
    };
    ClientOptions { request, mode: Mode::Octet, protocol: protocol(|_| {}) }
}

/// A plain RFC 1350 request.
fn plain() -> ClientOptions {
    ClientOptions { protocol: protocol(|_| {}), ..ClientOptions::default() }
}

/// `get` and `put` with every option mix and size: byte-identical files, the negotiated
/// options, progress up to the size, and no temporary file left.
pub async fn tftp_round_trips(rt: Arc<dyn Runtime>) {
    case(&rt, "tftp_round_trips", async {
        let server = Served::start(&rt, |c| c.policy = overwrite(None));
        for (seed, len) in SIZES.into_iter().enumerate() {
            let seed = seed as u64 + 1;
            for (mix, fast_options) in [("fast", true), ("plain", false)] {
                let what = format!("{len} bytes, {mix} options");
                let options = if fast_options { fast(len) } else { plain() };

                // Download.
                let name = format!("get-{len}-{mix}.bin");
                write_pattern(&server.root().join(&name), seed, len);
                let out = server.base().join(format!("out-{name}"));
                let (summary, last) = get_to_file(&rt, server.addr, &name, &out, &options)
                    .await
                    .unwrap_or_else(|e| panic!("get of {what} failed: {e}"));
                check_file(&out, seed, len, &format!("get of {what}"));
                check_summary(&summary, len, fast_options, true, &what);
                assert_eq!(last.0, len, "get of {what}: the last progress report");
                let total = fast_options.then_some(len).filter(|len| *len > 0);
                assert_eq!(last.1, total, "get of {what}: the progress total (tsize)");

                // Upload.
                let name = format!("put-{len}-{mix}.bin");
                let summary = put(
                    rt.clone(),
                    server.addr,
                    &name,
                    Cursor::new(pattern_bytes(seed, len)),
                    &options,
                    |_| {},
                )
                .await
                .unwrap_or_else(|e| panic!("put of {what} failed: {e}"));
                check_summary(&summary, len, fast_options, false, &what);
                let finished = server.finished(&name).await;
                assert_eq!(finished, (len, Ok(())), "put of {what}: the server's report");
                check_file(&server.root().join(&name), seed, len, &format!("put of {what}"));
            }
        }
        server.assert_no_temporary_files();
    })
    .await;
}

/// `../x` is refused with ERROR 2 both ways, and nothing outside the root is read,
/// created or changed; a missing file is ERROR 1.
pub async fn tftp_path_escape_refused(rt: Arc<dyn Runtime>) {
    case(&rt, "tftp_path_escape_refused", async {
        let server = Served::start(&rt, |c| c.policy = overwrite(None));
        let secret = server.base().join("x");
        fs::write(&secret, b"outside the root").unwrap();
        let before = listing(server.base());

        for name in ["../x", "/../x", "a/../../x"] {
            let error = get(rt.clone(), server.addr, name, io::sink(), &plain(), |_| {})
                .await
                .expect_err("a get that climbs out of the root must fail");
            expect_peer_error(&error, ErrorCode::AccessViolation, "'..'", name);
            let error = put(
                rt.clone(),
                server.addr,
                name,
                Cursor::new(b"pwned".to_vec()),
                &plain(),
                |_| {},
            )
            .await
            .expect_err("a put that climbs out of the root must fail");
            expect_peer_error(&error, ErrorCode::AccessViolation, "'..'", name);
        }
        assert_eq!(fs::read(&secret).unwrap(), b"outside the root");
        assert_eq!(listing(server.base()), before, "nothing changed under the base");

        let error = get(rt.clone(), server.addr, "missing.bin", io::sink(), &plain(), |_| {})
            .await
            .expect_err("a get of a missing file must fail");
        expect_peer_error(&error, ErrorCode::FileNotFound, "not found", "missing.bin");
    })
    .await;
}

/// With the default (read-only) policy an upload is refused with ERROR 2 and creates
/// nothing.
pub async fn tftp_writes_disabled(rt: Arc<dyn Runtime>) {
    case(&rt, "tftp_writes_disabled", async {
        let server = Served::start(&rt, |_| {});
        let before = listing(server.base());
        for options in [plain(), fast(5)] {
            let error = put(
                rt.clone(),
                server.addr,
                "new.bin",
                Cursor::new(b"hello".to_vec()),
                &options,
                |_| {},
            )
            .await
            .expect_err("an upload to a read-only server must fail");
            expect_peer_error(&error, ErrorCode::AccessViolation, "disabled", "new.bin");
        }
        assert_eq!(listing(server.base()), before, "nothing was created");
    })
    .await;
}

/// Create-only: replacing an existing file is ERROR 6 and leaves it as it was; a new name is
/// accepted.
pub async fn tftp_overwrite_denied(rt: Arc<dyn Runtime>) {
    case(&rt, "tftp_overwrite_denied", async {
        let server = Served::start(&rt, |c| c.policy = WritePolicy::create_only(None));
        let existing = server.root().join("existing.bin");
        fs::write(&existing, b"original").unwrap();
        let error = put(
            rt.clone(),
            server.addr,
            "existing.bin",
            Cursor::new(b"new".to_vec()),
            &fast(3),
            |_| {},
        )
        .await
        .expect_err("replacing a file on a create-only server must fail");
        expect_peer_error(&error, ErrorCode::FileAlreadyExists, "exists", "existing.bin");
        assert_eq!(fs::read(&existing).unwrap(), b"original");

        put(rt.clone(), server.addr, "fresh.bin", Cursor::new(b"new".to_vec()), &fast(3), |_| {})
            .await
            .unwrap_or_else(|e| panic!("creating a new file on a create-only server failed: {e}"));
        assert_eq!(server.finished("fresh.bin").await, (3, Ok(())));
        assert_eq!(fs::read(server.root().join("fresh.bin")).unwrap(), b"new");
        server.assert_no_temporary_files();
    })
    .await;
}

/// `max_upload`: an announced size over it is refused before anything is created; an upload
/// without `tsize` that grows past it fails with ERROR 3 (even when the block that passes it
/// is the last) and leaves neither the target nor a temporary file; exactly the cap passes.
pub async fn tftp_upload_over_cap(rt: Arc<dyn Runtime>) {
    case(&rt, "tftp_upload_over_cap", async {
        const CAP: u64 = 1000;
        let server = Served::start(&rt, |c| c.policy = WritePolicy::create_only(Some(CAP)));
        let before = listing(server.base());

        let announced = put(
            rt.clone(),
            server.addr,
            "announced.bin",
            Cursor::new(pattern_bytes(1, CAP + 1)),
            &fast(CAP + 1),
            |_| {},
        )
        .await
        .expect_err("an upload announcing more than the cap must fail");
        expect_peer_error(&announced, ErrorCode::DiskFull, "1000-byte", "announced.bin");
        assert_eq!(listing(server.base()), before, "nothing was created for it");

        // Without tsize: 2000 bytes in lockstep, so block 2 (the 1024th byte) passes the cap;
        // then 1428-byte blocks, where the first and last block passes it.
        for (name, options, len) in
            [("grows.bin", plain(), 2 * CAP), ("last.bin", fast(0), CAP + 1)]
        {
            let mut options = options;
            options.request.tsize = None;
            let error = put(
                rt.clone(),
                server.addr,
                name,
                Cursor::new(pattern_bytes(2, len)),
                &options,
                |_| {},
            )
            .await
            .expect_err("an upload that grows past the cap must fail");
            expect_peer_error(&error, ErrorCode::DiskFull, "1000-byte", name);
            let (_, result) = server.finished(name).await;
            assert!(result.is_err(), "{name}: the server reported success: {result:?}");
            assert_eq!(listing(server.base()), before, "{name}: neither target nor temporary");
        }

        put(
            rt.clone(),
            server.addr,
            "exact.bin",
            Cursor::new(pattern_bytes(3, CAP)),
            &plain(),
            |_| {},
        )
        .await
        .unwrap_or_else(|e| panic!("an upload of exactly the cap failed: {e}"));
        assert_eq!(server.finished("exact.bin").await, (CAP, Ok(())));
        check_file(&server.root().join("exact.bin"), 3, CAP, "exact.bin");
    })
    .await;
}

/// With `max_transfers = 1`, a request while a transfer is in progress is refused with
/// ERROR 0 "server busy"; once that transfer is over, the next request is served.
pub async fn tftp_busy(rt: Arc<dyn Runtime>) {
    case(&rt, "tftp_busy", async {
        let server = Served::start(&rt, |c| {
            c.policy = overwrite(None);
            c.max_transfers = 1;
            // The held upload must outlive the server's patience by far.
            c.protocol = protocol(|p| {
                let _ = p.set_timeout(Duration::from_secs(10));
                let _ = p.set_max_timeout(Duration::from_secs(20));
            });
        });
        fs::write(server.root().join("other.bin"), b"other").unwrap();

        // An upload whose source gives one block and a bit, then waits for the gate.
        let (gate, held) = mpsc::channel();
        let source = Gated {
            first: Some(pattern_bytes(4, 600)),
            gate: held,
            opened: false,
            rest: pattern_bytes(5, 100),
        };
        let holder = {
            let rt = rt.clone();
            let addr = server.addr;
            spawn(
                &rt.clone(),
                async move { put(rt, addr, "held.bin", source, &plain(), |_| {}).await },
            )
        };
        server.started("held.bin").await;

        let error = get(rt.clone(), server.addr, "other.bin", io::sink(), &plain(), |_| {})
            .await
            .expect_err("a request beyond max_transfers must be refused");
        expect_peer_error(&error, ErrorCode::NotDefined, "busy", "other.bin");

        gate.send(()).unwrap();
        let summary = holder.await.unwrap_or_else(|e| panic!("the held upload failed: {e}"));
        assert_eq!(summary.bytes, 700);
        assert_eq!(server.finished("held.bin").await, (700, Ok(())));
        let copy = server.base().join("other.copy");
        get_to_file(&rt, server.addr, "other.bin", &copy, &plain())
            .await
            .unwrap_or_else(|e| panic!("a request after the slot was freed failed: {e}"));
        assert_eq!(fs::read(copy).unwrap(), b"other");
    })
    .await;
}

/// A packet to a transfer's port from anyone but its client gets ERROR 5, and the transfer
/// goes on to complete. The client here is hand-written, so that the test knows the
/// transfer's port (from its first DATA) and controls when it answers.
pub async fn tftp_stranger_gets_error_5(rt: Arc<dyn Runtime>) {
    case(&rt, "tftp_stranger_gets_error_5", async {
        let server = Served::start(&rt, |_| {});
        const LEN: u64 = 3000;
        write_pattern(&server.root().join("f.bin"), 6, LEN);
        let client = Raw::bind(&rt);
        let stranger = Raw::bind(&rt);
        let mut rrq = Vec::new();
        Packet::ReadRequest(utp_proto::wire::tftp::Request {
            filename: b"f.bin",
            mode: Mode::Octet,
            options: utp_proto::wire::tftp::Options::EMPTY,
        })
        .emit(&mut rrq);
        client.send(&rrq, server.addr).await;

        let mut received = Vec::new();
        let mut port = None;
        let mut expected = 1u16;
        let mut knocked = false;
        loop {
            let (datagram, from) = client.recv(&rt, "the server's DATA").await;
            let Ok(Packet::Data { block, data }) = Packet::parse(&datagram) else {
                panic!("expected DATA from the server, got {datagram:?}");
            };
            let transfer_port = *port.get_or_insert(from);
            assert_eq!(from, transfer_port, "every DATA comes from the transfer's port");
            assert_ne!(from, server.addr, "the transfer runs on a port of its own");
            if !knocked {
                knocked = true;
                // Before answering: a stranger knocks on the transfer's port.
                let mut ack = Vec::new();
                Packet::Ack { block: 1 }.emit(&mut ack);
                stranger.send(&ack, from).await;
                let (reply, replier) = stranger.recv(&rt, "the stranger's ERROR").await;
                assert_eq!(replier, from, "the ERROR comes from the transfer's port");
                match Packet::parse(&reply) {
                    Ok(Packet::Error { code: ErrorCode::UnknownTransferId, .. }) => {}
                    other => panic!("the stranger expected ERROR 5, got {other:?}"),
                }
            }
            if block != expected {
                continue; // A repeat while we were busy with the stranger.
            }
            received.extend_from_slice(data);
            let mut ack = Vec::new();
            Packet::Ack { block }.emit(&mut ack);
            client.send(&ack, from).await;
            if data.len() < 512 {
                break;
            }
            expected += 1;
        }
        pattern::check(6, 0, &received, "the hand-written client's download");
        assert_eq!(received.len() as u64, LEN);
        assert_eq!(server.finished("f.bin").await, (LEN, Ok(())));
    })
    .await;
}

/// A server that ignores the options (answers a request with DATA 1 or ACK 0 instead of an
/// OACK, as RFC 1350 servers do): `get` and `put` fall back to 512-byte blocks in lockstep.
/// The server here is hand-written, answering from a port of its own.
pub async fn tftp_client_falls_back(rt: Arc<dyn Runtime>) {
    case(&rt, "tftp_client_falls_back", async {
        let listener = Raw::bind(&rt);
        let transfer = Raw::bind(&rt);
        let addr = listener.local_addr();
        let data = pattern_bytes(7, 612);

        // get: DATA 1 (512 bytes), then DATA 2 (100 bytes, the last).
        let received = SharedBuf::default();
        let getting = {
            let (rt, sink) = (rt.clone(), received.clone());
            spawn(&rt.clone(), async move { get(rt, addr, "f", sink, &fast(0), |_| {}).await })
        };
        let (request, client) = listener.recv(&rt, "the read request").await;
        match Packet::parse(&request) {
            Ok(Packet::ReadRequest(r)) => {
                assert_eq!(r.options.blksize().and_then(Result::ok), Some(1428), "{r:?}");
            }
            other => panic!("expected a read request with options, got {other:?}"),
        }
        for (block, chunk) in (1u16..).zip(data.chunks(512)) {
            let mut packet = Vec::new();
            Packet::Data { block, data: chunk }.emit(&mut packet);
            transfer.send(&packet, client).await;
            let (ack, from) = transfer.recv(&rt, "the client's ACK").await;
            assert_eq!(from, client, "the ACK comes from the client's port");
            assert_eq!(Packet::parse(&ack).ok(), Some(Packet::Ack { block }), "{ack:?}");
        }
        let summary = getting.await.unwrap_or_else(|e| panic!("get without an OACK failed: {e}"));
        let n = summary.negotiated;
        assert_eq!((n.blksize, n.windowsize, n.tsize), (512, 1, None), "get fell back");
        assert_eq!(summary.peer, transfer.local_addr(), "get locked onto the answering port");
        assert!(lock(&received.0).as_slice() == data, "get: the data differs");

        // put: ACK 0, then DATA 1 and 2 come in 512-byte blocks.
        let putting = {
            let (rt, source) = (rt.clone(), Cursor::new(data.clone()));
            spawn(&rt.clone(), async move { put(rt, addr, "f", source, &fast(612), |_| {}).await })
        };
        let (request, client) = listener.recv(&rt, "the write request").await;
        assert!(matches!(Packet::parse(&request), Ok(Packet::WriteRequest(_))), "{request:?}");
        let mut packet = Vec::new();
        Packet::Ack { block: 0 }.emit(&mut packet);
        transfer.send(&packet, client).await;
        let mut stored = Vec::new();
        for block in 1u16.. {
            let (datagram, _) = transfer.recv(&rt, "the client's DATA").await;
            let Ok(Packet::Data { block: got, data }) = Packet::parse(&datagram) else {
                panic!("expected DATA, got {datagram:?}");
            };
            assert_eq!(got, block, "blocks in order, one at a time");
            assert!(data.len() <= 512, "a {}-byte block without a blksize option", data.len());
            stored.extend_from_slice(data);
            Packet::Ack { block }.emit(&mut packet);
            transfer.send(&packet, client).await;
            if data.len() < 512 {
                break;
            }
        }
        let summary = putting.await.unwrap_or_else(|e| panic!("put without an OACK failed: {e}"));
        assert_eq!((summary.negotiated.blksize, summary.negotiated.windowsize), (512, 1));
        assert!(stored == data, "put: the data differs");
    })
    .await;
}

/// A read-write policy without a size limit, overwriting allowed.
fn overwrite(max_upload: Option<u64>) -> WritePolicy {
    WritePolicy { allow_overwrite: true, ..WritePolicy::create_only(max_upload) }
}

/// A server on loopback serving `base/root` of a fresh temporary directory, with its
/// events recorded; stopped when dropped.
struct Served {
    base: TempDir,
    addr: SocketAddr,
    events: Arc<Mutex<Vec<ServerEvent>>>,
    stop: Arc<Stop>,
    rt: Arc<dyn Runtime>,
}

impl Served {
    fn start(rt: &Arc<dyn Runtime>, adjust: impl FnOnce(&mut ServerConfig)) -> Self {
        let base = TempDir::new();
        fs::create_dir(base.path().join("root")).unwrap();
        fs::create_dir(base.path().join("outside")).unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let mut config = ServerConfig::new(base.path().join("root"));
        config.protocol = protocol(|_| {});
        let sink = events.clone();
        config.on_event = Some(Arc::new(move |event| lock(&sink).push(event)));
        adjust(&mut config);
        let server = TftpServer::bind(rt.clone(), SocketAddr::from(([127, 0, 0, 1], 0)), config)
            .unwrap_or_else(|e| panic!("binding a TFTP server on 127.0.0.1 failed: {e}"));
        let addr = server.local_addr().unwrap();
        let stop = Arc::new(Stop::default());
        let stopped = stop.clone();
        rt.spawn(Box::pin(async move {
            futures_lite::future::or(server.run(), stopped.wait()).await;
        }));
        Self { base, addr, events, stop, rt: rt.clone() }
    }

    fn base(&self) -> &Path {
        self.base.path()
    }

    fn root(&self) -> PathBuf {
        self.base.path().join("root")
    }

    /// Waits for the server's `Started` event for `file`.
    async fn started(&self, file: &str) {
        wait_until(&self.rt, || {
            lock(&self.events)
                .iter()
                .any(|e| matches!(e, ServerEvent::Started { file: f, .. } if f == file))
        })
        .await;
    }

    /// Waits for the server's `Finished` event for `file` and takes it: bytes and result.
    async fn finished(&self, file: &str) -> (u64, Result<(), String>) {
        let mut found = None;
        wait_until(&self.rt, || {
            let mut events = lock(&self.events);
            let at = events
                .iter()
                .position(|e| matches!(e, ServerEvent::Finished { file: f, .. } if f == file));
            if let Some(ServerEvent::Finished { bytes, result, .. }) = at.map(|i| events.remove(i))
            {
                found = Some((bytes, result));
            }
            found.is_some()
        })
        .await;
        found.unwrap_or_else(|| unreachable!("wait_until returned"))
    }

    fn assert_no_temporary_files(&self) {
        let left: Vec<_> =
            listing(self.base()).into_iter().filter(|p| p.contains(UPLOAD_TEMP_PREFIX)).collect();
        assert!(left.is_empty(), "temporary upload files were left behind: {left:?}");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.stop();
    }
}

/// Ends the server's task when set.
#[derive(Default)]
struct Stop(Mutex<(bool, Option<Waker>)>);

impl Stop {
    fn stop(&self) {
        let mut state = lock(&self.0);
        state.0 = true;
        if let Some(w) = state.1.take() {
            w.wake();
        }
    }

    async fn wait(&self) {
        poll_fn(|cx| {
            let mut state = lock(&self.0);
            if state.0 {
                return Poll::Ready(());
            }
            state.1 = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
    }
}

/// A source that yields `first`, then waits for the gate, then yields `rest`.
struct Gated {
    first: Option<Vec<u8>>,
    gate: mpsc::Receiver<()>,
    opened: bool,
    rest: Vec<u8>,
}

impl Read for Gated {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(first) = self.first.take() {
            buf[..first.len()].copy_from_slice(&first);
            return Ok(first.len());
        }
        if !self.opened {
            // A dropped sender opens the gate too: the case failed and is unwinding.
            let _ = self.gate.recv();
            self.opened = true;
        }
        let n = self.rest.len().min(buf.len());
        buf[..n].copy_from_slice(&self.rest[..n]);
        self.rest.drain(..n);
        Ok(n)
    }
}

/// A sink whose bytes the case can look at afterwards.
#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        lock(&self.0).extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A raw UDP socket on the runtime, for hand-written packets.
struct Raw(Box<dyn AsyncUdpSocket>);

impl Raw {
    fn bind(rt: &Arc<dyn Runtime>) -> Self {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        Self(rt.wrap_udp_socket(socket).unwrap())
    }

    fn local_addr(&self) -> SocketAddr {
        self.0.local_addr().unwrap()
    }

    async fn send(&self, data: &[u8], to: SocketAddr) {
        poll_fn(|cx| self.0.poll_send_to(cx, data, to)).await.unwrap();
    }

    /// The next datagram, within 10 s.
    async fn recv(&self, rt: &Arc<dyn Runtime>, what: &str) -> (Vec<u8>, SocketAddr) {
        let mut buf = vec![0; 65_536];
        let received =
            timeout(rt, Duration::from_secs(10), poll_fn(|cx| self.0.poll_recv_from(cx, &mut buf)))
                .await
                .unwrap_or_else(|| panic!("waiting for {what} timed out"));
        let (n, from) = received.unwrap_or_else(|e| panic!("receiving {what} failed: {e}"));
        buf.truncate(n);
        (buf, from)
    }
}

/// Downloads `name` into the file `out`; the summary and the last progress report.
async fn get_to_file(
    rt: &Arc<dyn Runtime>,
    addr: SocketAddr,
    name: &str,
    out: &Path,
    options: &ClientOptions,
) -> Result<(Summary, (u64, Option<u64>)), TftpError> {
    let file = fs::File::create(out).unwrap();
    let last = Arc::new(Mutex::new((0, None)));
    let report = last.clone();
    let summary = get(rt.clone(), addr, name, file, options, move |p| {
        *lock(&report) = (p.bytes, p.total);
    })
    .await?;
    let last = *lock(&last);
    Ok((summary, last))
}

#[track_caller]
fn check_summary(summary: &Summary, len: u64, fast_options: bool, get: bool, what: &str) {
    assert_eq!(summary.bytes, len, "{what}: bytes in the summary");
    let n = summary.negotiated;
    // The server leaves an empty file's `tsize 0` out of its OACK (curl refuses it).
    let tsize = Some(len).filter(|len| !get || *len > 0);
    let expected = if fast_options { (1428, 16, tsize) } else { (512, 1, None) };
    assert_eq!((n.blksize, n.windowsize, n.tsize), expected, "{what}: negotiated options");
    assert_ne!(summary.peer.port(), 0, "{what}: the server's transfer port");
}

#[track_caller]
fn expect_peer_error(error: &TftpError, code: ErrorCode, fragment: &str, name: &str) {
    match error.peer_error() {
        Some((got, message)) => {
            assert_eq!(got, code, "{name}: ERROR code (message {message:?})");
            assert!(message.contains(fragment), "{name}: message {message:?} lacks {fragment:?}");
        }
        None => panic!("{name}: expected the server's ERROR {code}, got {error}"),
    }
}

/// `len` bytes of pattern `seed`.
fn pattern_bytes(seed: u64, len: u64) -> Vec<u8> {
    let mut data = vec![0; usize::try_from(len).unwrap()];
    pattern::fill(seed, 0, &mut data);
    data
}

fn write_pattern(path: &Path, seed: u64, len: u64) {
    fs::write(path, pattern_bytes(seed, len)).unwrap();
}

#[track_caller]
fn check_file(path: &Path, seed: u64, len: u64, what: &str) {
    let data = fs::read(path).unwrap_or_else(|e| panic!("{what}: cannot read the result: {e}"));
    assert_eq!(data.len() as u64, len, "{what}: length of the result");
    pattern::check(seed, 0, &data, what);
}

/// Every path under `dir`, relative and sorted, with file sizes.
fn listing(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let relative = path.strip_prefix(base).unwrap().display().to_string();
            if path.is_dir() {
                out.push(format!("{relative}/"));
                walk(base, &path, out);
            } else {
                out.push(format!("{relative} {}", fs::metadata(&path).map_or(0, |m| m.len())));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A directory under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!(
            "utp-tftp-{}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        fs::create_dir(&path).unwrap();
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
