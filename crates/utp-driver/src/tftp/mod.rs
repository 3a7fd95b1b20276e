//! TFTP on any runtime: a [`TftpServer`] serving a directory, and the client functions
//! [`get`] and [`put`].
//!
//! The protocol is `utp_proto::tftp`'s sans-IO engine; this module gives it sockets,
//! timers and files. Every transfer runs in one task that owns its socket, its
//! [`Transfer`](utp_proto::tftp::Transfer), its timer and its file, so nothing is locked;
//! file I/O runs on the `blocking` crate's thread pool in 256 KiB chunks, so no runtime
//! thread waits for a disk.
//!
//! The served directory and its confinement are [`Root`]: every access stays inside it,
//! uploads follow a [`WritePolicy`] (read-only by default) and become visible only when
//! complete.
//!
//! ```no_run
//! # async fn demo(runtime: std::sync::Arc<dyn utp_driver::Runtime>) -> Result<(), Box<dyn std::error::Error>> {
//! use utp_driver::tftp::{self, ClientOptions, ServerConfig, TftpServer, WritePolicy};
//! use utp_driver::utp_proto::tftp::OptionRequest;
//!
//! // A server for ./srv that accepts new files up to 1 GiB.
//! let mut config = ServerConfig::new("srv");
//! config.policy = WritePolicy::create_only(Some(1 << 30));
//! let server = TftpServer::bind(runtime.clone(), "127.0.0.1:0".parse()?, config)?;
//! let addr = server.local_addr()?;
//! runtime.spawn(Box::pin(server.run()));
//!
//! // Upload, then download, with large blocks and windows.
//! let mut options = ClientOptions::default();
//! options.request = OptionRequest { blksize: Some(1428), windowsize: Some(16), ..OptionRequest::NONE };
//! let data = b"hello".to_vec();
//! options.request.tsize = Some(data.len() as u64);
//! tftp::put(runtime.clone(), addr, "hello.txt", std::io::Cursor::new(data), &options, |_| {}).await?;
//! let copy = std::fs::File::create("hello.copy")?;
//! let summary = tftp::get(runtime, addr, "hello.txt", copy, &options, |_| {}).await?;
//! assert_eq!(summary.bytes, 5);
//! # Ok(())
//! # }
//! ```

mod client;
mod error;
mod root;
mod server;
mod task;

pub use client::{ClientOptions, Progress, Summary, get, put};
pub use error::TftpError;
pub use root::*;
pub use server::{DEFAULT_MAX_TRANSFERS, ServerConfig, ServerEvent, TftpServer};
