//! rudp on the driver: [`RudpSocket`] (many connections on one socket) and
//! [`RudpConnection`] (whole messages, exactly once and in order, plus direct datagrams).
//!
//! ```no_run
//! # async fn demo(runtime: std::sync::Arc<dyn utp_driver::Runtime>) -> std::io::Result<()> {
//! use utp_driver::rudp::{CloseCode, RudpConfig, RudpSocket};
//!
//! let socket = RudpSocket::bind(runtime, "127.0.0.1:0".parse().unwrap(), RudpConfig::default())?;
//! let connection = socket.connect("127.0.0.1:9000".parse().unwrap()).await?;
//! connection.send(b"a whole message").await?;
//! let reply = connection.recv().await?; // the peer's next message, whole
//! connection.flush().await?; // everything we sent is acknowledged
//! connection.close(CloseCode::Normal, "done").await?;
//! # let _ = reply; Ok(()) }
//! ```

mod config;
mod connection;
mod error;
mod socket;
mod state;

pub use config::RudpConfig;
pub use connection::RudpConnection;
pub use error::Error;
pub use socket::RudpSocket;
pub use utp_proto::rudp::{CloseCode, CloseReason, ConnectionStats, EndpointStats};
