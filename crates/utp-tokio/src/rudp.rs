//! rudp on tokio: [`utp_driver::rudp`] with [`TokioRuntime`] filled in.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

pub use utp_driver::rudp::*;

use crate::TokioRuntime;

/// Binds a rudp socket driven on tokio; see [`RudpSocket::bind`].
///
/// # Errors
///
/// As [`RudpSocket::bind`].
pub fn bind(addr: SocketAddr, config: RudpConfig) -> io::Result<RudpSocket> {
    RudpSocket::bind(Arc::new(TokioRuntime), addr, config)
}
