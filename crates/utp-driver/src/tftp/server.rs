//! The TFTP server: [`TftpServer`] serves a directory, one task and one socket per transfer.

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use blocking::unblock;
use utp_proto::Machine;
use utp_proto::tftp::path::RequestPath;
use utp_proto::tftp::{Config, Direction, Incoming, Server};
use utp_proto::wire::tftp::ErrorCode;

use super::root::{Denial, Root, RootError, WritePolicy};
use super::task::{Clock, Pump, ReadSource, SinkSide, SourceSide, bind_socket, send_error};
use crate::runtime::{AsyncUdpSocket, Runtime};

/// The default cap on transfers in progress at once.
pub const DEFAULT_MAX_TRANSFERS: usize = 64;

/// Datagrams the listening socket takes per round before yielding.
const RECV_BATCH: usize = 64;
/// The largest datagram received on the listening socket.
const MAX_DATAGRAM: usize = 65_536;

/// What a [`TftpServer`] serves and allows.
#[derive(Clone)]
pub struct ServerConfig {
    /// The served directory; nothing outside it can be read or written (see [`Root`]).
    pub root: PathBuf,
    /// What uploads may do. Default [`WritePolicy::read_only`].
    pub policy: WritePolicy,
    /// Transfers in progress at once (a dallying upload counts until its socket closes);
    /// a request beyond it is refused with ERROR 0 "server busy". Default
    /// [`DEFAULT_MAX_TRANSFERS`] (64).
    pub max_transfers: usize,
    /// The engine's settings: timeouts, retries, the largest `blksize` and `windowsize`
    /// granted, block-number rollover, buffers.
    pub protocol: Arc<Config>,
    /// Called for every request refused and every transfer started and finished, from the
    /// server's tasks: keep it quick (log a line, send on a channel).
    pub on_event: Option<Arc<dyn Fn(ServerEvent) + Send + Sync>>,
}

impl ServerConfig {
    /// Serves `root`, read-only, with the defaults above.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            policy: WritePolicy::read_only(),
            max_transfers: DEFAULT_MAX_TRANSFERS,
            protocol: Arc::new(Config::default()),
            on_event: None,
        }
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("root", &self.root)
            .field("policy", &self.policy)
            .field("max_transfers", &self.max_transfers)
            .field("protocol", &self.protocol)
            .field("on_event", &self.on_event.as_ref().map(|_| "Fn(ServerEvent)"))
            .finish()
    }
}

/// What happened on a [`TftpServer`], for [`ServerConfig::on_event`].
///
/// `direction` is seen from the server: [`Direction::Send`] for a read request (the client
/// downloads), [`Direction::Receive`] for a write request (the client uploads). `file` is the
/// requested name, normalized when it passed the name checks and lossily decoded otherwise:
/// print it with `{:?}`, which escapes anything odd.
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// A request was refused with an ERROR, from the listening port (name, policy, busy)
    /// or from a fresh port (the file system said no).
    Refused {
        /// The client.
        peer: SocketAddr,
        /// The requested name.
        file: String,
        /// Which way the request wanted the data to go.
        direction: Direction,
        /// The ERROR code sent.
        code: ErrorCode,
        /// The ERROR message sent.
        message: String,
        /// Why, for the server's log (may say more than the client was told).
        reason: String,
    },
    /// A transfer was accepted and runs on a socket of its own.
    Started {
        /// The client.
        peer: SocketAddr,
        /// The transfer's own socket (its port is the server's transfer ID).
        local: SocketAddr,
        /// The file, relative to the root.
        file: String,
        /// Which way the data goes.
        direction: Direction,
    },
    /// A transfer is over and its socket closed.
    Finished {
        /// The client.
        peer: SocketAddr,
        /// The file, relative to the root.
        file: String,
        /// Which way the data went.
        direction: Direction,
        /// Bytes read from the file and sent, or written to the upload; after a failure, the
        /// bytes acknowledged by the client or received from it.
        bytes: u64,
        /// From the request's acceptance until the data was complete, or the failure.
        elapsed: Duration,
        /// `Ok` when the transfer completed (an upload: and was committed under its name),
        /// else why not.
        result: Result<(), String>,
    },
}

/// A TFTP server (RFC 1350 with options: `blksize`, `windowsize`, `timeout`, `tsize`).
///
/// It listens on one socket (usually port 69) and runs every accepted transfer on a new
/// socket bound to the listening IP with port 0, in a task of its own spawned on the
/// runtime, so transfers do not wait for each other. Files come from and go to the
/// [`ServerConfig::root`] through a [`Root`], which keeps every access inside it; file I/O
/// runs on the `blocking` thread pool.
///
/// A request is handled in this order:
///
/// | check | refusal |
/// |---|---|
/// | the name passes [`RequestPath::parse`] | ERROR 2 from the listening port |
/// | a write request: writes are enabled | ERROR 2 from the listening port |
/// | a write request: its `tsize` is within `max_upload` | ERROR 3 from the listening port |
/// | fewer than `max_transfers` transfers run | ERROR 0 "server busy ..." from the listening port |
/// | a socket can be bound | ERROR 0 from the listening port |
/// | [`Root::open_read`] or [`Root::start_upload`] succeeds | its ERROR from the new port |
///
/// Nothing is created before all of these pass. An upload goes to a temporary file that is
/// renamed into place only once the transfer is complete; one that fails (or grows past
/// `max_upload`: ERROR 3) leaves nothing behind. Each transfer's socket stays open until
/// the transfer is over, the receiver's dally included.
pub struct TftpServer {
    runtime: Arc<dyn Runtime>,
    socket: Box<dyn AsyncUdpSocket>,
    local: SocketAddr,
    shared: Arc<Shared>,
}

/// What the listening task and the transfer tasks share.
struct Shared {
    root: Root,
    protocol: Arc<Config>,
    max_transfers: usize,
    on_event: Option<Arc<dyn Fn(ServerEvent) + Send + Sync>>,
    /// Transfers in progress.
    active: AtomicUsize,
}

impl Shared {
    fn emit(&self, event: ServerEvent) {
        if let Some(on_event) = &self.on_event {
            on_event(event);
        }
    }
}

impl TftpServer {
    /// Opens the root and binds the listening socket at `addr` (port 0 picks a free port;
    /// [`local_addr`](Self::local_addr) tells which).
    ///
    /// # Errors
    ///
    /// The root cannot be opened as a directory, or the socket cannot be bound or
    /// registered with the runtime.
    pub fn bind(
        runtime: Arc<dyn Runtime>,
        addr: SocketAddr,
        config: ServerConfig,
    ) -> io::Result<Self> {
        let root = Root::open(&config.root, config.policy).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot open {}: {e}", config.root.display()))
        })?;
        let socket = std::net::UdpSocket::bind(addr)?;
        socket.set_nonblocking(true)?;
        let local = socket.local_addr()?;
        let socket = runtime.wrap_udp_socket(socket)?;
        let shared = Arc::new(Shared {
            root,
            protocol: config.protocol,
            max_transfers: config.max_transfers,
            on_event: config.on_event,
            active: AtomicUsize::new(0),
        });
        Ok(Self { runtime, socket, local, shared })
    }

    /// The address the listening socket is bound to.
    ///
    /// # Errors
    ///
    /// None today; the signature matches the sockets'.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    /// Serves requests until the future is dropped; it never resolves on its own.
    ///
    /// Receive errors (some systems report ICMP errors from earlier sends that way) are
    /// logged and skipped. Dropping the future stops taking requests; transfers in
    /// progress go on in their own tasks until they end.
    pub async fn run(self) {
        let mut listener = Listener {
            server: Server::new(self.shared.protocol.clone()),
            clock: Clock::new(self.runtime.clone()),
            recv_buf: vec![0; MAX_DATAGRAM],
            send_buf: Vec::new(),
            pending: None,
            this: self,
        };
        poll_fn(|cx| listener.poll(cx)).await;
    }
}

impl fmt::Debug for TftpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TftpServer").field("local", &self.local).finish_non_exhaustive()
    }
}

/// The listening side's loop state.
struct Listener {
    this: TftpServer,
    server: Server,
    clock: Clock,
    recv_buf: Vec<u8>,
    send_buf: Vec<u8>,
    /// A reply the socket could not take yet: where to, and its length.
    pending: Option<(SocketAddr, usize)>,
}

impl Listener {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let now = self.clock.now();
        let mut received = 0;
        while received < RECV_BATCH {
            match self.this.socket.poll_recv_from(cx, &mut self.recv_buf) {
                Poll::Ready(Ok((n, from))) => {
                    let data = &self.recv_buf[..n.min(self.recv_buf.len())];
                    self.server.handle_datagram(now, from, data);
                }
                Poll::Ready(Err(e)) => tracing::debug!(error = %e, "receive failed"),
                Poll::Pending => break,
            }
            received += 1;
        }
        self.drain_transmits(cx);
        while let Some(incoming) = self.server.poll_event() {
            self.decide(incoming);
        }
        self.drain_transmits(cx);
        if received == RECV_BATCH {
            // A full batch: let other tasks run, then go on.
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }

    fn drain_transmits(&mut self, cx: &mut Context<'_>) {
        loop {
            let (to, len) = match self.pending {
                Some(pending) => pending,
                None => match self.server.poll_transmit(self.clock.now(), &mut self.send_buf) {
                    Some(t) => (t.destination, t.size.min(self.send_buf.len())),
                    None => return,
                },
            };
            match self.this.socket.poll_send_to(cx, &self.send_buf[..len], to) {
                Poll::Ready(result) => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, %to, "send failed; reply dropped");
                    }
                    self.pending = None;
                }
                Poll::Pending => {
                    self.pending = Some((to, len));
                    return;
                }
            }
        }
    }

    /// Refuses `incoming` or starts its transfer (see the table on [`TftpServer`]).
    fn decide(&mut self, incoming: Incoming) {
        let shared = self.this.shared.clone();
        let path = match RequestPath::parse(incoming.filename()) {
            Ok(path) => path,
            Err(e) => return self.refuse(incoming, &RootError::from(e)),
        };
        if !incoming.is_read() {
            let policy = shared.root.policy();
            if !policy.allow_write {
                return self.refuse(incoming, &RootError::from(Denial::WritesDisabled));
            }
            if let (Some(size), Some(limit)) = (incoming.announced_size(), policy.max_upload) {
                if size > limit {
                    return self.refuse(incoming, &RootError::TooLarge { limit });
                }
            }
        }
        let active = shared.active.load(Ordering::Relaxed);
        if active >= shared.max_transfers {
            let message = format!("server busy: {active} transfers in progress, try again later");
            return self.refuse_with(incoming, ErrorCode::NotDefined, &message, &message);
        }
        let bind_at = SocketAddr::new(self.this.local.ip(), 0);
        let (socket, local) = match bind_socket(&self.this.runtime, bind_at) {
            Ok(bound) => bound,
            Err(e) => {
                let reason = format!("cannot open a socket for the transfer: {e}");
                let message = "server cannot open a socket, try again later";
                return self.refuse_with(incoming, ErrorCode::NotDefined, message, &reason);
            }
        };
        shared.active.fetch_add(1, Ordering::Relaxed);
        let slot = Slot(shared.clone());
        let runtime = self.this.runtime.clone();
        self.this.runtime.spawn(Box::pin(serve(runtime, slot, socket, local, incoming, path)));
    }

    fn refuse(&mut self, incoming: Incoming, error: &RootError) {
        self.refuse_with(incoming, error.tftp_code(), &error.tftp_message(), &error.to_string());
    }

    fn refuse_with(&mut self, incoming: Incoming, code: ErrorCode, message: &str, reason: &str) {
        let event = ServerEvent::Refused {
            peer: incoming.peer(),
            file: requested_name(&incoming),
            direction: incoming.direction(),
            code,
            message: message.to_owned(),
            reason: reason.to_owned(),
        };
        self.server.refuse(incoming, code, message);
        self.this.shared.emit(event);
    }
}

/// Holds one of the `max_transfers` slots until dropped.
struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs one accepted request on its own socket: opens the file, then pumps the transfer.
///
/// The slot is given back before the last event, so that whoever waits for that event can
/// count on the slot being free.
async fn serve(
    runtime: Arc<dyn Runtime>,
    slot: Slot,
    socket: Box<dyn AsyncUdpSocket>,
    local: SocketAddr,
    incoming: Incoming,
    path: RequestPath,
) {
    let shared = slot.0.clone();
    let peer = incoming.peer();
    let direction = incoming.direction();
    let file = path.as_str().to_owned();
    let started = |shared: &Shared| {
        let event = ServerEvent::Started { peer, local, file: file.clone(), direction };
        shared.emit(event);
    };
    let refused = |error: &RootError| ServerEvent::Refused {
        peer,
        file: file.clone(),
        direction,
        code: error.tftp_code(),
        message: error.tftp_message(),
        reason: error.to_string(),
    };
    let outcome = if incoming.is_read() {
        let opener = shared.clone();
        match unblock(move || opener.root.open_read(&path)).await {
            Ok((reader, size)) => {
                let clock = Clock::new(runtime);
                let transfer = incoming.accept(shared.protocol.clone(), Some(size), clock.now());
                started(&shared);
                let source = SourceSide::new(ReadSource { reader, message: "server I/O error" });
                Pump::new(clock, socket, transfer, source).run(|_, _| {}).await
            }
            Err(error) => {
                send_error(&*socket, peer, error.tftp_code(), &error.tftp_message()).await;
                drop((socket, slot));
                return shared.emit(refused(&error));
            }
        }
    } else {
        let opener = shared.clone();
        let announced = incoming.announced_size();
        match unblock(move || opener.root.start_upload(&path, announced)).await {
            Ok(upload) => {
                let clock = Clock::new(runtime);
                let transfer = incoming.accept(shared.protocol.clone(), None, clock.now());
                started(&shared);
                let limit = shared.root.policy().max_upload;
                let sink = SinkSide::new(upload).with_limit(limit);
                Pump::new(clock, socket, transfer, sink).run(|_, _| {}).await
            }
            Err(error) => {
                send_error(&*socket, peer, error.tftp_code(), &error.tftp_message()).await;
                drop((socket, slot));
                return shared.emit(refused(&error));
            }
        }
    };
    drop(slot);
    shared.emit(ServerEvent::Finished {
        peer,
        file,
        direction,
        bytes: outcome.bytes,
        elapsed: outcome.elapsed,
        result: outcome.result.map_err(|e| e.to_string()),
    });
}

/// The requested name for the log: normalized if it parses, else lossily decoded.
fn requested_name(incoming: &Incoming) -> String {
    match RequestPath::parse(incoming.filename()) {
        Ok(path) => path.as_str().to_owned(),
        Err(_) => String::from_utf8_lossy(incoming.filename()).into_owned(),
    }
}
