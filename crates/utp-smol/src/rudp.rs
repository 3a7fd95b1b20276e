//! rudp on smol: [`utp_driver::rudp`] with [`SmolRuntime`] filled in.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

pub use utp_driver::rudp::*;

use crate::SmolRuntime;

/// Binds a rudp socket driven on smol; see [`RudpSocket::bind`].
///
/// # Errors
///
/// As [`RudpSocket::bind`].
pub fn bind(addr: SocketAddr, config: RudpConfig) -> io::Result<RudpSocket> {
    RudpSocket::bind(Arc::new(SmolRuntime), addr, config)
}
