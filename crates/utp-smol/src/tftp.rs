//! TFTP on smol: [`utp_driver::tftp`] with [`SmolRuntime`] filled in.
//!
//! Everything of the driver's module is re-exported; [`bind`], [`get`] and [`put`] only
//! supply the runtime. Serve with `smol::spawn(server.run()).detach()` or by awaiting `server.run()`.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

pub use utp_driver::tftp::*;

use crate::SmolRuntime;

/// Binds a TFTP server driven on smol; see [`TftpServer::bind`].
///
/// # Errors
///
/// As [`TftpServer::bind`].
pub fn bind(addr: SocketAddr, config: ServerConfig) -> io::Result<TftpServer> {
    TftpServer::bind(Arc::new(SmolRuntime), addr, config)
}

/// Reads `remote` from `server` into `sink`, driven on smol; see [`utp_driver::tftp::get`].
///
/// # Errors
///
/// As [`utp_driver::tftp::get`].
pub async fn get<W: Write + Send + 'static>(
    server: SocketAddr,
    remote: &str,
    sink: W,
    options: &ClientOptions,
    progress: impl FnMut(Progress) + Send,
) -> Result<Summary, TftpError> {
    utp_driver::tftp::get(Arc::new(SmolRuntime), server, remote, sink, options, progress).await
}

/// Writes `source` to `remote` on `server`, driven on smol; see [`utp_driver::tftp::put`].
///
/// # Errors
///
/// As [`utp_driver::tftp::put`].
pub async fn put<R: Read + Send + 'static>(
    server: SocketAddr,
    remote: &str,
    source: R,
    options: &ClientOptions,
    progress: impl FnMut(Progress) + Send,
) -> Result<Summary, TftpError> {
    utp_driver::tftp::put(Arc::new(SmolRuntime), server, remote, source, options, progress).await
}
