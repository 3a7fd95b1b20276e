//! The `smol` adapter for `utp-driver`: [`SmolRuntime`] implements the driver's
//! [`Runtime`] with `async-io`'s timer and UDP socket (smol's reactor) and smol's global
//! executor. [`UtpStream`](utp_driver::UtpStream) already implements the `futures-io`
//! traits smol uses, so no stream wrapper is needed.
//!
//! [`rudp`] runs rudp sockets (whole messages and direct datagrams), [`tftp`] runs TFTP servers and clients (`get`, `put`) on smol.
//!
//! ```no_run
//! # fn main() -> std::io::Result<()> {
//! use smol::io::{AsyncReadExt, AsyncWriteExt};
//!
//! smol::block_on(async {
//!     let server = utp_smol::bind("127.0.0.1:0".parse().unwrap())?;
//!     let client = utp_smol::bind("127.0.0.1:0".parse().unwrap())?;
//!     let addr = server.local_addr()?;
//!     let receiver = smol::spawn(async move {
//!         let mut stream = server.accept().await?;
//!         let mut data = Vec::new();
//!         stream.read_to_end(&mut data).await?;
//!         stream.close().await?;
//!         std::io::Result::Ok(data)
//!     });
//!     let mut stream = client.connect(addr).await?;
//!     stream.write_all(b"hello").await?;
//!     stream.close().await?;
//!     assert_eq!(receiver.await?, b"hello");
//!     Ok(())
//! })
//! # }
//! ```
//!
//! Driver tasks run on smol's global executor (`smol::spawn`), which runs on its own
//! background thread(s) (`SMOL_THREADS`, default 1), so sockets work inside and outside
//! `smol::block_on`.

pub mod rudp;
pub mod tftp;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

pub use utp_driver;
use utp_driver::async_io::{AsyncIoTimer, AsyncIoUdpSocket};
use utp_driver::{AsyncTimer, AsyncUdpSocket, Runtime, SocketConfig, UtpSocket};

/// The driver's [`Runtime`] on smol: `async-io` timers and sockets, tasks on smol's
/// global executor.
#[derive(Clone, Copy, Debug, Default)]
pub struct SmolRuntime;

impl Runtime for SmolRuntime {
    fn new_timer(&self, at: Instant) -> Pin<Box<dyn AsyncTimer>> {
        Box::pin(AsyncIoTimer::new(at))
    }

    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) {
        smol::spawn(future).detach();
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Box<dyn AsyncUdpSocket>> {
        Ok(Box::new(AsyncIoUdpSocket::new(socket)?))
    }
}

/// Binds a uTP socket with default settings, driven on smol.
///
/// # Errors
///
/// Binding or registering the socket failed.
pub fn bind(addr: SocketAddr) -> io::Result<UtpSocket> {
    bind_with(addr, SocketConfig::default())
}

/// Binds a uTP socket with `config`, driven on smol.
///
/// # Errors
///
/// Binding or registering the socket failed.
pub fn bind_with(addr: SocketAddr, config: SocketConfig) -> io::Result<UtpSocket> {
    UtpSocket::bind(Arc::new(SmolRuntime), addr, config)
}
