//! The one async driver for `utp-proto` state machines, for any runtime.
//!
//! A [`UtpSocket`] owns one UDP socket (or any [`Transport`]) and one uTP endpoint; a
//! driver task spawned on the [`Runtime`] pumps the endpoint: it receives batches of
//! datagrams, drains transmits, and sleeps until the endpoint's next deadline. Many
//! [`UtpStream`]s share the socket; they implement [`futures_io::AsyncRead`] and
//! [`futures_io::AsyncWrite`] with real backpressure.
//!
//! [`rudp`] does the same for rudp: a [`RudpSocket`] shares one socket between many
//! [`RudpConnection`]s, which carry whole messages (exactly once, in order) and direct
//! datagrams. [`tftp`] runs TFTP servers and clients. One driver loop serves them all.
//!
//! The runtime adapters `utp-tokio`, `utp-async-std` and `utp-smol` implement [`Runtime`]
//! in a few lines each and re-export this crate.
//!
//! | handle | what it does |
//! |---|---|
//! | [`UtpSocket::bind`] | binds UDP, raises the kernel buffers, starts the driver |
//! | [`UtpSocket::accept`] / [`UtpSocket::connect`] | streams with random connection ids |
//! | [`UtpSocket::accept_with_id`] / [`UtpSocket::connect_with_id`] | Portal's app-chosen ids |
//! | [`UtpStream::shutdown`] | half-close (FIN) |
//! | [`UtpStream::close`] | graceful close, resolved when the peer acknowledged all |
//! | [`UtpStream::reset`] (or drop) | abort with RESET |
//!
//! Errors are [`std::io::Error`]s carrying an [`Error`]; the kinds are listed at
//! [`Error`]'s `From` impl (`ConnectionReset`, `TimedOut`, `ConnectionRefused`, ...).

#[cfg(feature = "async-io")]
pub mod async_io;
mod batch;
mod config;
mod driver;
mod error;
pub mod rudp;
mod runtime;
mod socket_buffers;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tftp;
mod transport;
mod udp_batch;
mod utp;

pub use config::{DEFAULT_SOCKET_BUFFER, SocketConfig};
pub use driver::DriverStats;
pub use error::Error;
pub use rudp::{RudpConnection, RudpSocket};
pub use runtime::{
    AsyncTimer, AsyncUdpSocket, RecvMeta, Runtime, poll_recv_batch_singly,
    poll_send_segments_singly,
};
pub use socket_buffers::SocketBuffers;
pub use transport::{PeerAddr, Transport, UdpTransport};
pub use udp_batch::UdpBatch;
pub use utp::socket::UtpSocket;
pub use utp::stream::UtpStream;
pub use utp_proto;
