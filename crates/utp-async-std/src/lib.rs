//! The `async-std` adapter for `utp-driver`: [`AsyncStdRuntime`] implements the driver's
//! [`Runtime`] with `async-io`'s timer and UDP socket (the reactor async-std runs on) and
//! async-std's task spawner. [`UtpStream`](utp_driver::UtpStream) already implements the
//! `futures-io` traits async-std uses, so no stream wrapper is needed.
//!
//! [`rudp`] runs rudp sockets (whole messages and direct datagrams), [`tftp`] runs TFTP servers and clients (`get`, `put`) on async-std.
//!
//! **async-std is discontinued upstream** ([RUSTSEC-2025-0052]): prefer `utp-smol`, which
//! runs on the same reactor. This crate stays for applications that cannot move yet.
//!
//! [RUSTSEC-2025-0052]: https://rustsec.org/advisories/RUSTSEC-2025-0052.html
//!
//! ```no_run
//! # fn main() -> std::io::Result<()> {
//! use async_std::io::{ReadExt, WriteExt};
//!
//! async_std::task::block_on(async {
//!     let server = utp_async_std::bind("127.0.0.1:0".parse().unwrap())?;
//!     let client = utp_async_std::bind("127.0.0.1:0".parse().unwrap())?;
//!     let addr = server.local_addr()?;
//!     let receiver = async_std::task::spawn(async move {
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

/// The driver's [`Runtime`] on async-std: `async-io` timers and sockets, tasks spawned
/// with `async_std::task::spawn`.
#[derive(Clone, Copy, Debug, Default)]
pub struct AsyncStdRuntime;

impl Runtime for AsyncStdRuntime {
    fn new_timer(&self, at: Instant) -> Pin<Box<dyn AsyncTimer>> {
        Box::pin(AsyncIoTimer::new(at))
    }

    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) {
        // Dropping the handle detaches the task.
        drop(async_std::task::spawn(future));
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Box<dyn AsyncUdpSocket>> {
        Ok(Box::new(AsyncIoUdpSocket::new(socket)?))
    }
}

/// Binds a uTP socket with default settings, driven on async-std.
///
/// # Errors
///
/// Binding or registering the socket failed.
pub fn bind(addr: SocketAddr) -> io::Result<UtpSocket> {
    bind_with(addr, SocketConfig::default())
}

/// Binds a uTP socket with `config`, driven on async-std.
///
/// # Errors
///
/// Binding or registering the socket failed.
pub fn bind_with(addr: SocketAddr, config: SocketConfig) -> io::Result<UtpSocket> {
    UtpSocket::bind(Arc::new(AsyncStdRuntime), addr, config)
}
