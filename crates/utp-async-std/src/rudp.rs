//! rudp on async-std: [`utp_driver::rudp`] with [`AsyncStdRuntime`] filled in.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

pub use utp_driver::rudp::*;

use crate::AsyncStdRuntime;

/// Binds a rudp socket driven on async-std; see [`RudpSocket::bind`].
///
/// # Errors
///
/// As [`RudpSocket::bind`].
pub fn bind(addr: SocketAddr, config: RudpConfig) -> io::Result<RudpSocket> {
    RudpSocket::bind(Arc::new(AsyncStdRuntime), addr, config)
}
