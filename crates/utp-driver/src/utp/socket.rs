//! [`UtpSocket`]: one UDP socket (or other transport) that many uTP streams share.

use std::fmt::Debug;
use std::future::poll_fn;
use std::hash::BuildHasher;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;

use utp_proto::utp::{Endpoint, EndpointStats};

use crate::config::SocketConfig;
use crate::driver::{Driver, DriverStats, Shared};
use crate::error::Error;
use crate::runtime::Runtime;
use crate::socket_buffers::SocketBuffers;
use crate::transport::{PeerAddr, Transport, UdpTransport};
use crate::utp::state::{State, StreamState};
use crate::utp::stream::UtpStream;

/// One socket that many uTP streams share: it listens ([`accept`](Self::accept)) and
/// connects ([`connect`](Self::connect)) at the same time, up to the engine's
/// `max_connections`. A driver task spawned on the runtime pumps it; clones share it.
///
/// The driver ends once every `UtpSocket` clone is dropped and every connection has
/// closed. SYNs that arrive while no `accept` is waiting queue up to the engine's
/// `max_pending_incoming` for `incoming_timeout`, then are refused.
pub struct UtpSocket<A: PeerAddr = SocketAddr> {
    shared: Arc<Shared<State<A>>>,
    local_addr: Option<SocketAddr>,
    buffers: SocketBuffers,
}

impl UtpSocket<SocketAddr> {
    /// Binds a UDP socket to `addr`, raises its kernel buffers as `config` asks (falling
    /// back to smaller sizes when refused), and starts its driver on `runtime`.
    ///
    /// # Errors
    ///
    /// Binding, configuring or registering the socket failed.
    pub fn bind(
        runtime: Arc<dyn Runtime>,
        addr: SocketAddr,
        config: SocketConfig,
    ) -> io::Result<Self> {
        Self::from_std(runtime, std::net::UdpSocket::bind(addr)?, config)
    }

    /// Like [`bind`](Self::bind), for a socket the caller bound (and perhaps configured).
    ///
    /// # Errors
    ///
    /// Configuring or registering the socket failed.
    pub fn from_std(
        runtime: Arc<dyn Runtime>,
        socket: std::net::UdpSocket,
        config: SocketConfig,
    ) -> io::Result<Self> {
        let (transport, local_addr, buffers) =
            UdpTransport::open(&runtime, socket, config.recv_buffer, config.send_buffer)?;
        let mut this = Self::with_transport(runtime, transport, config);
        this.local_addr = Some(local_addr);
        this.buffers = buffers;
        Ok(this)
    }

    /// The local address the UDP socket is bound to.
    ///
    /// # Errors
    ///
    /// `Unsupported` for a socket over another transport.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.local_addr.ok_or_else(|| io::Error::from(io::ErrorKind::Unsupported))
    }

    /// The kernel buffer sizes the socket obtained.
    pub fn socket_buffers(&self) -> SocketBuffers {
        self.buffers
    }
}

impl<A: PeerAddr> UtpSocket<A> {
    /// Runs uTP over any datagram transport (an in-memory channel, a tunnel, a discv5
    /// session) and starts its driver on `runtime`. Kernel buffer settings in `config`
    /// do not apply.
    pub fn with_transport<T: Transport<Addr = A>>(
        runtime: Arc<dyn Runtime>,
        transport: T,
        config: SocketConfig,
    ) -> Self {
        let seed = config.seed.unwrap_or_else(|| {
            std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now())
        });
        let endpoint = Endpoint::new(config.utp.clone(), seed);
        let shared = Arc::new(Shared::new(State::new(endpoint, runtime.clone())));
        let driver = Driver::new(shared.clone(), transport, &runtime);
        runtime.spawn(Box::pin(driver));
        Self { shared, local_addr: None, buffers: SocketBuffers::default() }
    }

    /// Opens a stream to `peer` with a random connection id; resolves once the handshake
    /// finished.
    ///
    /// # Errors
    ///
    /// `QuotaExceeded` at `max_connections`; `ConnectionRefused` when the peer answers
    /// with a RESET; `TimedOut` when it does not answer; `NotConnected` if the driver
    /// stopped.
    pub async fn connect(&self, peer: A) -> io::Result<UtpStream<A>> {
        self.open(peer, None).await
    }

    /// Opens a stream with a connection id the application chose (Portal: the id received
    /// in a `Content` or `Accept` message); resolves once the handshake finished.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect), and `AddrInUse` when a connection with this peer
    /// already uses `connection_id`.
    pub async fn connect_with_id(&self, peer: A, connection_id: u16) -> io::Result<UtpStream<A>> {
        self.open(peer, Some(connection_id)).await
    }

    async fn open(&self, peer: A, id: Option<u16>) -> io::Result<UtpStream<A>> {
        let stream = {
            let mut st = self.shared.lock();
            if st.core.stopped {
                return Err(Error::DriverStopped.into());
            }
            let now = st.now();
            let h = match id {
                None => st.endpoint.connect(now, peer.clone()),
                Some(id) => st.endpoint.connect_with_id(now, peer.clone(), id),
            }
            .map_err(Error::from)?;
            st.streams.insert(h, StreamState::default());
            st.after_command();
            UtpStream::new(self.shared.clone(), h, peer)
        };
        // Dropping this future drops `stream`, which resets the half-open connection.
        stream.established().await?;
        Ok(stream)
    }

    /// Waits for a peer's connection and accepts it. The stream is returned at once; with
    /// libutp's rules (the default profile) our side sends nothing until the peer's first
    /// data arrives, so a server that speaks first waits for the client to speak.
    ///
    /// # Errors
    ///
    /// `QuotaExceeded` at `max_connections` (the SYN is refused); `NotConnected` if the
    /// driver stopped.
    pub async fn accept(&self) -> io::Result<UtpStream<A>> {
        let h = poll_fn(|cx| {
            let mut st = self.shared.lock();
            if let Some(result) = st.take_incoming() {
                return Poll::Ready(result.map_err(|e| io::Error::from(Error::from(e))));
            }
            if st.core.stopped {
                return Poll::Ready(Err(Error::DriverStopped.into()));
            }
            st.register_accept(cx);
            Poll::Pending
        })
        .await?;
        let peer = self.shared.lock().endpoint.peer(h).cloned();
        match peer {
            Some(peer) => Ok(UtpStream::new(self.shared.clone(), h, peer)),
            None => Err(Error::DriverStopped.into()),
        }
    }

    /// Expects a connection from `peer` whose SYN carries `connection_id` (Portal: the id
    /// we sent in a `Content` or `Accept` message). The stream is usable at once: reads
    /// wait for the peer's data, and fail with `TimedOut` if its SYN does not come within
    /// the engine's `expected_id_timeout`. The SYN may also have arrived already.
    ///
    /// # Errors
    ///
    /// `AddrInUse` when a connection with this peer already uses the id; `QuotaExceeded`
    /// at `max_connections`; `NotConnected` if the driver stopped.
    pub fn accept_with_id(&self, peer: A, connection_id: u16) -> io::Result<UtpStream<A>> {
        let mut st = self.shared.lock();
        if st.core.stopped {
            return Err(Error::DriverStopped.into());
        }
        let now = st.now();
        let h =
            st.endpoint.accept_with_id(now, peer.clone(), connection_id).map_err(Error::from)?;
        st.streams.insert(h, StreamState::default());
        st.after_command();
        Ok(UtpStream::new(self.shared.clone(), h, peer))
    }

    /// The engine's endpoint-wide counters.
    pub fn endpoint_stats(&self) -> EndpointStats {
        self.shared.lock().endpoint.endpoint_stats()
    }

    /// The driver's transport counters.
    pub fn driver_stats(&self) -> DriverStats {
        self.shared.lock().core.stats
    }

    /// Connections the endpoint holds (including ones closing).
    pub fn connection_count(&self) -> usize {
        self.shared.lock().endpoint.connection_count()
    }
}

impl<A: PeerAddr> Clone for UtpSocket<A> {
    fn clone(&self) -> Self {
        self.shared.lock().core.sockets += 1;
        Self { shared: self.shared.clone(), local_addr: self.local_addr, buffers: self.buffers }
    }
}

impl<A: PeerAddr> Drop for UtpSocket<A> {
    fn drop(&mut self) {
        self.shared.lock().socket_dropped();
    }
}

impl<A: PeerAddr> Debug for UtpSocket<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UtpSocket").field("local_addr", &self.local_addr).finish_non_exhaustive()
    }
}
