//! One TFTP transfer pumped over its own socket: [`Pump`], and the file ends it moves
//! bytes between ([`SourceSide`], [`SinkSide`]).
//!
//! A pump owns everything its transfer needs (the socket, the [`Transfer`], a timer and the
//! file end), so it needs no lock: one task, one transfer. File I/O runs on the `blocking`
//! crate's thread pool in chunks of [`CHUNK`] bytes, one chunk in flight at a time while the
//! next is prepared, so no runtime thread ever waits for a disk (or a pipe).
//!
//! Each wake-up follows the engine's run loop: receive every datagram waiting, handle the
//! timer, move bytes between the file and the transfer (application commands), drain the
//! transmits, drain the events, then sleep until the next datagram, the transfer's deadline
//! or the end of a file operation.
//!
//! Socket I/O is batched: datagrams arrive several per receive
//! ([`AsyncUdpSocket::poll_recv_batch`]), and consecutive transmits of one size to one
//! destination (a window of DATA) leave together through
//! [`AsyncUdpSocket::poll_send_segments`], in one system call with segmentation offload.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::io::{self, IoSliceMut, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use blocking::{Task, unblock};
use utp_proto::tftp::{Event, Negotiated, Transfer, TransferError, TransferStats};
use utp_proto::wire::tftp::{ErrorCode, Packet};
use utp_proto::{Instant, Machine};

use super::root::{RootError, Upload};
use crate::batch::{Batch, Outgoing};
use crate::config::DEFAULT_SOCKET_BUFFER;
use crate::runtime::{AsyncTimer, AsyncUdpSocket, RecvMeta, Runtime};
use crate::socket_buffers;

/// Bytes per read from a source or write to a sink.
pub(crate) const CHUNK: usize = 256 * 1024;
/// Datagrams received per round before the rest of the loop runs.
const RECV_BATCH: usize = 64;
/// Buffers filled per receive call (each may hold several coalesced datagrams).
const RECV_BUFFERS: usize = 8;
/// Rounds per wake-up before the pump yields to other tasks.
const ROUNDS: usize = 16;
/// The largest datagram received (a DATA of the largest `blksize` is 65468 bytes).
const MAX_DATAGRAM: usize = 65_536;

/// The engine's clock for one transfer: microseconds since the pump's epoch.
#[derive(Clone, Debug)]
pub(crate) struct Clock {
    runtime: Arc<dyn Runtime>,
    epoch: std::time::Instant,
}

impl Clock {
    /// A clock whose epoch is now.
    pub(crate) fn new(runtime: Arc<dyn Runtime>) -> Self {
        let epoch = runtime.now();
        Self { runtime, epoch }
    }

    /// The current time on the engine's scale.
    pub(crate) fn now(&self) -> Instant {
        let since = self.runtime.now().saturating_duration_since(self.epoch);
        Instant::from_micros(u64::try_from(since.as_micros()).unwrap_or(u64::MAX))
    }

    /// An engine instant on the runtime's clock.
    fn to_std(&self, t: Instant) -> std::time::Instant {
        let far = Duration::from_secs(86_400 * 365);
        self.epoch + Duration::from_micros(t.as_micros()).min(far)
    }

    /// Time since the epoch.
    pub(crate) fn elapsed(&self) -> Duration {
        self.runtime.now().saturating_duration_since(self.epoch)
    }
}

/// Binds a UDP socket for one transfer at `addr` (port 0 for a fresh one), raises its kernel
/// buffers, and registers it with the runtime. Returns the socket and its local address.
pub(crate) fn bind_socket(
    runtime: &Arc<dyn Runtime>,
    addr: SocketAddr,
) -> io::Result<(Box<dyn AsyncUdpSocket>, SocketAddr)> {
    let socket = std::net::UdpSocket::bind(addr)?;
    socket.set_nonblocking(true)?;
    // A window of 64 blocks of 64 KiB is 4 MiB; the default buffers would drop most of it.
    let buffers = Some(DEFAULT_SOCKET_BUFFER);
    if let Err(e) = socket_buffers::raise(&socket, buffers, buffers) {
        tracing::debug!(error = %e, "cannot read the socket buffer sizes");
    }
    let local = socket.local_addr()?;
    Ok((runtime.wrap_udp_socket(socket)?, local))
}

/// The unspecified address of `peer`'s family, port 0: where a client binds.
pub(crate) fn unspecified_for(peer: SocketAddr) -> SocketAddr {
    match peer {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    }
}

/// Sends one ERROR datagram from `socket` to `to` (a refusal from a transfer's socket: it is
/// never acknowledged, so never repeated). A send error is logged and ignored.
pub(crate) async fn send_error(
    socket: &dyn AsyncUdpSocket,
    to: SocketAddr,
    code: ErrorCode,
    message: &str,
) {
    let mut buf = Vec::new();
    Packet::Error { code, message: message.as_bytes() }.emit(&mut buf);
    if let Err(e) = poll_fn(|cx| socket.poll_send_to(cx, &buf, to)).await {
        tracing::debug!(error = %e, %to, "cannot send an ERROR");
    }
}

/// A file operation that failed: what to tell the peer, and the error for the local side.
#[derive(Debug)]
pub(crate) struct FileFailure {
    /// The ERROR code sent to the peer.
    pub(crate) code: ErrorCode,
    /// The ERROR message sent to the peer: it must not reveal local paths.
    pub(crate) message: String,
    /// The error itself, for the local report.
    pub(crate) error: io::Error,
}

impl FileFailure {
    fn from_root(e: RootError) -> Self {
        Self { code: e.tftp_code(), message: e.tftp_message(), error: io::Error::other(e) }
    }

    fn from_io(error: io::Error, message: &str) -> Self {
        let code = match error.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => ErrorCode::DiskFull,
            _ => ErrorCode::NotDefined,
        };
        Self { code, message: message.to_owned(), error }
    }
}

/// Where a receiving transfer's bytes go; called on the blocking thread pool.
pub(crate) trait Sink: Send + 'static {
    /// Writes all of `data`.
    fn write(&mut self, data: &[u8]) -> Result<(), FileFailure>;

    /// Makes the data final (flushes, or commits an upload) once the transfer is complete.
    fn finish(self) -> Result<(), FileFailure>;
}

/// An upload into the served directory: committed (renamed into place) only when complete.
impl Sink for Upload {
    fn write(&mut self, data: &[u8]) -> Result<(), FileFailure> {
        self.write_all(data).map_err(FileFailure::from_root)
    }

    fn finish(self) -> Result<(), FileFailure> {
        self.commit().map(drop).map_err(FileFailure::from_root)
    }
}

/// Any [`Write`], with the message the peer gets when writing fails.
#[derive(Debug)]
pub(crate) struct WriteSink<W> {
    pub(crate) writer: W,
    pub(crate) message: &'static str,
}

impl<W: Write + Send + 'static> Sink for WriteSink<W> {
    fn write(&mut self, data: &[u8]) -> Result<(), FileFailure> {
        self.writer.write_all(data).map_err(|e| FileFailure::from_io(e, self.message))
    }

    fn finish(mut self) -> Result<(), FileFailure> {
        self.writer.flush().map_err(|e| FileFailure::from_io(e, self.message))
    }
}

/// Any [`Read`], with the message the peer gets when reading fails.
#[derive(Debug)]
pub(crate) struct ReadSource<R> {
    pub(crate) reader: R,
    pub(crate) message: &'static str,
}

impl<R: Read> ReadSource<R> {
    /// One read, retried when interrupted; a short count is not the end, 0 is.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, FileFailure> {
        loop {
            match self.reader.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                result => return result.map_err(|e| FileFailure::from_io(e, self.message)),
            }
        }
    }
}

/// The file end of a transfer, as the pump sees it.
pub(crate) trait FileSide: Send {
    /// Collects finished file operations, moves bytes between the file and `transfer`, and
    /// starts the next operation, until nothing more can happen without waiting; every
    /// operation left in flight has registered `cx`. On a file error it aborts `transfer`.
    fn poll(&mut self, cx: &mut Context<'_>, transfer: &mut Transfer);

    /// Whether the file end has nothing left to do: finished, or abandoned after a failure
    /// with nothing of it still in flight.
    fn is_done(&self) -> bool;

    /// Bytes moved so far, as progress: received (sink), or acknowledged by the peer
    /// (source).
    fn progress(&self, transfer: &Transfer) -> u64;

    /// Bytes moved in all: written to the sink, or read from the source.
    fn bytes(&self) -> u64;

    /// The file failure that ended the transfer, if any.
    fn take_failure(&mut self) -> Option<FileFailure>;
}

/// What a read in flight hands back: the source, the buffer, and how much was read.
type SourceOp<R> = (ReadSource<R>, Vec<u8>, Result<usize, FileFailure>);

/// Feeds a sending transfer from a [`ReadSource`].
pub(crate) struct SourceSide<R> {
    /// The source, while no read is in flight.
    source: Option<ReadSource<R>>,
    reading: Option<Task<SourceOp<R>>>,
    /// Chunks read and not yet all taken by the transfer: the buffer, how much of it was
    /// taken, and its length.
    ready: VecDeque<(Vec<u8>, usize, usize)>,
    /// A buffer to read the next chunk into.
    spare: Option<Vec<u8>>,
    eof: bool,
    finished: bool,
    abandoned: bool,
    fed: u64,
    failure: Option<FileFailure>,
}

impl<R: Read + Send + 'static> SourceSide<R> {
    pub(crate) fn new(source: ReadSource<R>) -> Self {
        Self {
            source: Some(source),
            reading: None,
            ready: VecDeque::new(),
            spare: None,
            eof: false,
            finished: false,
            abandoned: false,
            fed: 0,
            failure: None,
        }
    }

    /// One pass; whether anything changed.
    fn step(&mut self, cx: &mut Context<'_>, transfer: &mut Transfer) -> bool {
        let mut changed = false;
        if let Some(task) = &mut self.reading {
            if let Poll::Ready((source, buf, result)) = Pin::new(task).poll(cx) {
                self.reading = None;
                self.source = Some(source);
                changed = true;
                match result {
                    Ok(0) => self.eof = true,
                    Ok(n) => {
                        // A reader claiming more than the buffer is not believed past it.
                        let n = n.min(buf.len());
                        self.ready.push_back((buf, 0, n));
                    }
                    Err(failure) => {
                        transfer.abort(failure.code, &failure.message);
                        self.failure = Some(failure);
                    }
                }
            }
        }
        if self.failure.is_some() || transfer.error().is_some() || transfer.is_closed() {
            // Nothing more to send. A read still in flight finishes on its thread and is
            // dropped there.
            self.reading = None;
            self.abandoned = true;
            return changed;
        }
        while let Some((buf, taken, len)) = self.ready.front_mut() {
            let n = transfer.write(&buf[*taken..*len]);
            *taken += n;
            self.fed += n as u64;
            changed |= n > 0;
            if *taken < *len {
                break;
            }
            self.spare = self.ready.pop_front().map(|(buf, _, _)| buf);
        }
        if self.ready.len() < 2 && !self.eof {
            if let Some(mut source) = self.source.take() {
                let mut buf = self.spare.take().unwrap_or_default();
                buf.resize(CHUNK, 0);
                self.reading = Some(unblock(move || {
                    let result = source.read(&mut buf);
                    (source, buf, result)
                }));
                changed = true;
            }
        }
        if self.eof && self.ready.is_empty() && !self.finished {
            transfer.finish();
            self.finished = true;
            changed = true;
        }
        changed
    }
}

impl<R: Read + Send + 'static> FileSide for SourceSide<R> {
    fn poll(&mut self, cx: &mut Context<'_>, transfer: &mut Transfer) {
        while self.step(cx, transfer) {}
    }

    fn is_done(&self) -> bool {
        self.finished || self.abandoned
    }

    fn progress(&self, transfer: &Transfer) -> u64 {
        transfer.stats().wire_bytes.min(self.fed)
    }

    fn bytes(&self) -> u64 {
        self.fed
    }

    fn take_failure(&mut self) -> Option<FileFailure> {
        self.failure.take()
    }
}

/// What a sink operation in flight hands back.
type SinkOp<S> = (Option<S>, Vec<u8>, Result<usize, FileFailure>);

/// Drains a receiving transfer into a [`Sink`].
pub(crate) struct SinkSide<S> {
    /// The sink, while no operation is in flight; `None` once finished or dropped.
    sink: Option<S>,
    /// A write, a finish or a drop in flight.
    op: Option<Task<SinkOp<S>>>,
    /// Bytes taken from the transfer and not yet handed to a write.
    filling: Vec<u8>,
    filled: usize,
    spare: Option<Vec<u8>>,
    pulled: u64,
    written: u64,
    /// The most bytes accepted; more fails the transfer with ERROR 3.
    limit: Option<u64>,
    finished: bool,
    abandoned: bool,
    failure: Option<FileFailure>,
}

impl<S: Sink> SinkSide<S> {
    pub(crate) fn new(sink: S) -> Self {
        Self {
            sink: Some(sink),
            op: None,
            filling: vec![0; CHUNK],
            filled: 0,
            spare: None,
            pulled: 0,
            written: 0,
            limit: None,
            finished: false,
            abandoned: false,
            failure: None,
        }
    }

    /// Fails the transfer with ERROR 3 as soon as it has received more than `limit` bytes.
    ///
    /// The check runs right after each batch of datagrams is handled and before the
    /// transfer's acknowledgements are sent, so the block that passes the limit is never
    /// acknowledged: the sender learns of the refusal even when that block was its last.
    pub(crate) fn with_limit(mut self, limit: Option<u64>) -> Self {
        self.limit = limit;
        self
    }

    /// One pass; whether anything changed.
    fn step(&mut self, cx: &mut Context<'_>, transfer: &mut Transfer) -> bool {
        let mut changed = false;
        if let Some(task) = &mut self.op {
            if let Poll::Ready((sink, buf, result)) = Pin::new(task).poll(cx) {
                self.op = None;
                changed = true;
                match (&sink, result) {
                    (_, Err(failure)) => {
                        transfer.abort(failure.code, &failure.message);
                        self.failure = Some(failure);
                    }
                    // A finish or a drop gives no sink back.
                    (None, Ok(_)) if !self.abandoned => self.finished = true,
                    (_, Ok(n)) => self.written += n as u64,
                }
                self.sink = sink;
                self.spare = Some(buf);
            }
        }
        if let Some(limit) = self.limit {
            let received = self.pulled + transfer.readable_len() as u64;
            if received > limit && self.failure.is_none() {
                let failure = FileFailure::from_root(RootError::TooLarge { limit });
                transfer.abort(failure.code, &failure.message);
                self.failure = Some(failure);
                changed = true;
            }
        }
        if self.op.is_some() || self.finished {
            return changed;
        }
        if self.failure.is_some() || transfer.error().is_some() {
            // Drop the sink on the thread pool: an upload removes its temporary file then.
            if let Some(sink) = self.sink.take() {
                self.abandoned = true;
                self.op = Some(unblock(move || {
                    drop(sink);
                    (None, Vec::new(), Ok(0))
                }));
                return true;
            }
            self.abandoned = true;
            return changed;
        }
        while self.filled < self.filling.len() {
            let n = transfer.read(&mut self.filling[self.filled..]);
            if n == 0 {
                break;
            }
            self.filled += n;
            self.pulled += n as u64;
            changed = true;
        }
        let Some(mut sink) = self.sink.take() else { return changed };
        if self.filled > 0 {
            let mut next = self.spare.take().unwrap_or_default();
            next.resize(CHUNK, 0);
            let buf = std::mem::replace(&mut self.filling, next);
            let len = std::mem::take(&mut self.filled);
            self.op = Some(unblock(move || {
                let result = sink.write(&buf[..len]).map(|()| len);
                (Some(sink), buf, result)
            }));
            return true;
        }
        if transfer.is_complete() && transfer.readable_len() == 0 {
            self.op = Some(unblock(move || (None, Vec::new(), sink.finish().map(|()| 0))));
            return true;
        }
        self.sink = Some(sink);
        changed
    }
}

impl<S: Sink> FileSide for SinkSide<S> {
    fn poll(&mut self, cx: &mut Context<'_>, transfer: &mut Transfer) {
        while self.step(cx, transfer) {}
    }

    fn is_done(&self) -> bool {
        self.op.is_none() && (self.finished || self.abandoned)
    }

    fn progress(&self, transfer: &Transfer) -> u64 {
        self.pulled + transfer.readable_len() as u64
    }

    fn bytes(&self) -> u64 {
        self.written
    }

    fn take_failure(&mut self) -> Option<FileFailure> {
        self.failure.take()
    }
}

/// How a pumped transfer ended.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// `Ok` when the transfer completed and the file end finished.
    pub(crate) result: Result<(), Failure>,
    /// Bytes moved ([`FileSide::bytes`]), or after a failure how far the transfer got
    /// ([`FileSide::progress`]).
    pub(crate) bytes: u64,
    /// From the pump's start to completion (or failure).
    pub(crate) elapsed: Duration,
    pub(crate) negotiated: Negotiated,
    /// The peer's transfer ID.
    pub(crate) peer: SocketAddr,
    pub(crate) stats: TransferStats,
}

/// Why a pumped transfer failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The file end failed (the peer was told with an ERROR if the transfer was not over).
    File(FileFailure),
    /// The transfer failed.
    Transfer(TransferError),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(failure) => failure.error.fmt(f),
            Self::Transfer(error) => error.fmt(f),
        }
    }
}

/// One transfer, its socket, its timer and its file end.
pub(crate) struct Pump<F> {
    clock: Clock,
    socket: Box<dyn AsyncUdpSocket>,
    transfer: Transfer,
    file: F,
    timer: Pin<Box<dyn AsyncTimer>>,
    timer_at: Option<std::time::Instant>,
    /// [`RECV_BUFFERS`] receive buffers of [`MAX_DATAGRAM`] bytes each.
    recv_buf: Vec<u8>,
    recv_meta: [RecvMeta; RECV_BUFFERS],
    /// Where the transfer writes each transmit.
    send_buf: Vec<u8>,
    /// The datagrams on their way out; what the socket could not take yet is retried first.
    batch: Batch<SocketAddr>,
    /// A transmit in `send_buf` that could not join `batch`: it starts the next one.
    carry: Option<Outgoing<SocketAddr>>,
    /// When the transfer completed or failed.
    ended: Option<Duration>,
}

impl<F: FileSide> Pump<F> {
    /// A pump for `transfer`, made with `clock.now()`, over `socket`.
    pub(crate) fn new(
        clock: Clock,
        socket: Box<dyn AsyncUdpSocket>,
        transfer: Transfer,
        file: F,
    ) -> Self {
        let far = clock.runtime.now() + Duration::from_secs(86_400 * 365);
        let timer = clock.runtime.new_timer(far);
        Self {
            clock,
            socket,
            transfer,
            file,
            timer,
            timer_at: None,
            recv_buf: vec![0; RECV_BUFFERS * MAX_DATAGRAM],
            recv_meta: [RecvMeta::default(); RECV_BUFFERS],
            send_buf: Vec::with_capacity(MAX_DATAGRAM),
            batch: Batch::default(),
            carry: None,
            ended: None,
        }
    }

    /// Runs the transfer until it is over (the receiver's dally included) and the file end
    /// is finished or abandoned. `progress` is called with the progress count and the
    /// transfer whenever that count or the negotiated options change.
    pub(crate) async fn run(mut self, mut progress: impl FnMut(u64, &Transfer)) -> Outcome {
        let mut reported = None;
        poll_fn(|cx| self.poll(cx, &mut progress, &mut reported)).await;
        let failure = self.file.take_failure().map(Failure::File);
        let result = match (failure, self.transfer.error()) {
            (Some(failure), _) => Err(failure),
            (None, Some(error)) => Err(Failure::Transfer(error.clone())),
            (None, None) => Ok(()),
        };
        // After a failure, what the peer acknowledged or what arrived says how far it got.
        let bytes = match result {
            Ok(()) => self.file.bytes(),
            Err(_) => self.file.progress(&self.transfer),
        };
        Outcome {
            result,
            bytes,
            elapsed: self.ended.unwrap_or_else(|| self.clock.elapsed()),
            negotiated: self.transfer.negotiated(),
            peer: self.transfer.peer(),
            stats: self.transfer.stats(),
        }
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        progress: &mut impl FnMut(u64, &Transfer),
        reported: &mut Option<(u64, Negotiated)>,
    ) -> Poll<()> {
        for _ in 0..ROUNDS {
            let now = self.clock.now();
            let drained = self.receive(cx, now);
            if self.transfer.poll_timeout().is_some_and(|t| t <= now) {
                self.transfer.handle_timeout(now);
            }
            self.file.poll(cx, &mut self.transfer);
            self.drain_transmits(cx, now);
            while let Some(event) = self.transfer.poll_event() {
                if matches!(event, Event::Complete | Event::Failed(_)) && self.ended.is_none() {
                    self.ended = Some(self.clock.elapsed());
                }
            }
            let now_at = (self.file.progress(&self.transfer), self.transfer.negotiated());
            if *reported != Some(now_at) {
                *reported = Some(now_at);
                progress(now_at.0, &self.transfer);
            }
            let sent = self.batch.is_empty() && self.carry.is_none();
            if self.transfer.is_closed() && self.file.is_done() && sent {
                return Poll::Ready(());
            }
            let at = match self.transfer.poll_timeout() {
                Some(t) => self.clock.to_std(t),
                None => self.clock.runtime.now() + Duration::from_secs(86_400),
            };
            if self.timer_at != Some(at) {
                self.timer.as_mut().reset(at);
                self.timer_at = Some(at);
            }
            let fired = self.timer.as_mut().poll(cx).is_ready();
            if fired {
                self.timer_at = None;
            }
            if !fired && drained {
                return Poll::Pending;
            }
        }
        // Busy: let other tasks run, then go on.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Receives up to [`RECV_BATCH`] datagrams and hands them to the transfer in order;
    /// whether the socket had no more.
    fn receive(&mut self, cx: &mut Context<'_>, now: Instant) -> bool {
        let mut received = 0;
        while received < RECV_BATCH {
            let mut slots = self.recv_buf.chunks_mut(MAX_DATAGRAM);
            let mut bufs: [IoSliceMut<'_>; RECV_BUFFERS] =
                std::array::from_fn(|_| IoSliceMut::new(slots.next().unwrap_or_default()));
            match self.socket.poll_recv_batch(cx, &mut bufs, &mut self.recv_meta) {
                Poll::Ready(Ok(filled)) => {
                    let slots = self.recv_buf.chunks(MAX_DATAGRAM);
                    for (meta, buf) in self.recv_meta.iter().take(filled).zip(slots) {
                        for datagram in meta.datagrams(buf) {
                            self.transfer.handle_datagram(now, meta.addr, datagram);
                            received += 1;
                        }
                    }
                    // A socket that claims success without a datagram still ends the round.
                    received += usize::from(filled == 0);
                }
                // ICMP errors from earlier sends show up here on some systems.
                Poll::Ready(Err(e)) => {
                    tracing::debug!(error = %e, "receive failed");
                    received += 1;
                }
                Poll::Pending => return true,
            }
        }
        false
    }

    /// Sends until the transfer has nothing more or the socket is full.
    ///
    /// Consecutive transmits to one destination are gathered into one batch of equally
    /// sized datagrams (a shorter one may end it), up to the socket's
    /// [`max_gso_segments`](AsyncUdpSocket::max_gso_segments), and the batch is sent with
    /// one [`poll_send_segments`](AsyncUdpSocket::poll_send_segments).
    fn drain_transmits(&mut self, cx: &mut Context<'_>, now: Instant) {
        loop {
            if let Some((rest, segment, &to)) = self.batch.rest() {
                match self.socket.poll_send_segments(cx, rest, segment, to) {
                    Poll::Ready(Ok(n)) => {
                        if n == 0 {
                            tracing::debug!(%to, "socket sent nothing; batch dropped");
                        }
                        self.batch.advance(n);
                    }
                    Poll::Ready(Err(e)) => {
                        // The engine retransmits what matters.
                        tracing::debug!(error = %e, %to, "send failed; batch dropped");
                        self.batch.clear();
                    }
                    Poll::Pending => return,
                }
                continue;
            }
            let first = match self.carry.take() {
                Some(carry) => carry,
                None => match self.transfer.poll_transmit(now, &mut self.send_buf) {
                    Some(t) => Outgoing::new(&t, self.send_buf.len()),
                    None => return,
                },
            };
            if first.len == 0 {
                // UDP could carry it, but no engine of ours emits an empty datagram.
                tracing::debug!(to = %first.to, "empty transmit skipped");
                continue;
            }
            self.batch.start(&first, &self.send_buf[..first.len]);
            let max_segments = self.socket.max_gso_segments();
            while self.batch.has_room(max_segments) {
                let Some(t) = self.transfer.poll_transmit(now, &mut self.send_buf) else { break };
                let next = Outgoing::new(&t, self.send_buf.len());
                if !self.batch.push(&next, &self.send_buf[..next.len]) {
                    self.carry = Some(next);
                    break;
                }
            }
        }
    }
}
