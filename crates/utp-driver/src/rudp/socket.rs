//! [`RudpSocket`]: one UDP socket (or other transport) that many rudp connections share.

use std::fmt::Debug;
use std::future::poll_fn;
use std::hash::Hash;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;

use utp_proto::rudp::{Endpoint, EndpointStats};

use crate::driver::{Driver, DriverStats, Shared};
use crate::rudp::config::RudpConfig;
use crate::rudp::connection::RudpConnection;
use crate::rudp::error::Error;
use crate::rudp::state::{ConnState, State};
use crate::runtime::Runtime;
use crate::socket_buffers::SocketBuffers;
use crate::transport::{PeerAddr, Transport, UdpTransport};

/// One socket that many rudp connections share: it listens ([`accept`](Self::accept)) and
/// connects ([`connect`](Self::connect)) at the same time, up to the engine's
/// `max_connections`. A driver task spawned on the runtime pumps it; clones share it.
///
/// The listener side keeps no state for a starter until the starter echoed its cookie;
/// connections that proved their address wait (up to `max_pending`, for
/// `incoming_timeout`) for `accept`, then are refused.
///
/// The driver ends once every `RudpSocket` clone is dropped and every connection has
/// closed (a closed connection's id is remembered for `close_linger`, 10 s by default).
pub struct RudpSocket<A: PeerAddr + Hash = SocketAddr> {
    shared: Arc<Shared<State<A>>>,
    local_addr: Option<SocketAddr>,
    buffers: SocketBuffers,
}

impl RudpSocket<SocketAddr> {
    /// Binds a UDP socket to `addr`, raises its kernel buffers as `config` asks (falling
    /// back to smaller sizes when refused), and starts its driver on `runtime`.
    ///
    /// # Errors
    ///
    /// Binding, configuring or registering the socket failed, or the system has no
    /// randomness for the engine's secret.
    pub fn bind(
        runtime: Arc<dyn Runtime>,
        addr: SocketAddr,
        config: RudpConfig,
    ) -> io::Result<Self> {
        Self::from_std(runtime, std::net::UdpSocket::bind(addr)?, config)
    }

    /// Like [`bind`](Self::bind), for a socket the caller bound (and perhaps configured).
    ///
    /// # Errors
    ///
    /// Configuring or registering the socket failed, or the system has no randomness.
    pub fn from_std(
        runtime: Arc<dyn Runtime>,
        socket: std::net::UdpSocket,
        config: RudpConfig,
    ) -> io::Result<Self> {
        let (transport, local_addr, buffers) =
            UdpTransport::open(&runtime, socket, config.recv_buffer, config.send_buffer)?;
        let mut this = Self::with_transport(runtime, transport, config)?;
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

impl<A: PeerAddr + Hash> RudpSocket<A> {
    /// Runs rudp over any datagram transport and starts its driver on `runtime`. Kernel
    /// buffer settings in `config` do not apply.
    ///
    /// # Errors
    ///
    /// `Other` when `config.secret` is `None` and the system has no randomness to draw it.
    pub fn with_transport<T: Transport<Addr = A>>(
        runtime: Arc<dyn Runtime>,
        transport: T,
        config: RudpConfig,
    ) -> io::Result<Self> {
        let secret = match config.secret {
            Some(secret) => secret,
            None => {
                let mut secret = [0u8; 32];
                getrandom::fill(&mut secret).map_err(|e| {
                    io::Error::other(format!("no system randomness for the rudp secret: {e}"))
                })?;
                secret
            }
        };
        let endpoint = Endpoint::new(config.rudp.clone(), secret);
        let shared = Arc::new(Shared::new(State::new(endpoint, runtime.clone())));
        let driver = Driver::new(shared.clone(), transport, &runtime);
        runtime.spawn(Box::pin(driver));
        Ok(Self { shared, local_addr: None, buffers: SocketBuffers::default() })
    }

    /// Opens a connection to `peer`; resolves once the handshake finished.
    ///
    /// # Errors
    ///
    /// `QuotaExceeded` at `max_connections`; `ConnectionRefused` when the listener refuses
    /// (its reason is in the [`Error`]); `TimedOut` when it does not answer within
    /// `handshake_timeout`; `NotConnected` if the driver stopped.
    pub async fn connect(&self, peer: A) -> io::Result<RudpConnection<A>> {
        let connection = {
            let mut st = self.shared.lock();
            if st.core.stopped {
                return Err(Error::DriverStopped.into());
            }
            let now = st.now();
            let h = st.endpoint.connect(now, peer.clone()).map_err(Error::from)?;
            st.conns.insert(h, ConnState::default());
            st.after_command();
            RudpConnection::new(self.shared.clone(), h, peer)
        };
        // Dropping this future drops `connection`, which abandons the handshake.
        connection.established().await?;
        Ok(connection)
    }

    /// Waits for a starter's connection and accepts it; the connection may send at once.
    ///
    /// # Errors
    ///
    /// `QuotaExceeded` at `max_connections` (the starter is refused); `NotConnected` if
    /// the driver stopped.
    pub async fn accept(&self) -> io::Result<RudpConnection<A>> {
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
            Some(peer) => Ok(RudpConnection::new(self.shared.clone(), h, peer)),
            None => Err(Error::DriverStopped.into()),
        }
    }

    /// The engine's endpoint-wide counters.
    pub fn endpoint_stats(&self) -> EndpointStats {
        self.shared.lock().endpoint.endpoint_stats()
    }

    /// The driver's transport counters.
    pub fn driver_stats(&self) -> DriverStats {
        self.shared.lock().core.stats
    }

    /// Connections the endpoint holds (including closed ones it still remembers).
    pub fn connection_count(&self) -> usize {
        self.shared.lock().endpoint.connection_count()
    }
}

impl<A: PeerAddr + Hash> Clone for RudpSocket<A> {
    fn clone(&self) -> Self {
        self.shared.lock().core.sockets += 1;
        Self { shared: self.shared.clone(), local_addr: self.local_addr, buffers: self.buffers }
    }
}

impl<A: PeerAddr + Hash> Drop for RudpSocket<A> {
    fn drop(&mut self) {
        self.shared.lock().socket_dropped();
    }
}

impl<A: PeerAddr + Hash> Debug for RudpSocket<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RudpSocket").field("local_addr", &self.local_addr).finish_non_exhaustive()
    }
}
