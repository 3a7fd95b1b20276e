//! TFTP (RFC 1350 with options: RFC 2347, 2348, 2349 and 7440), sans-IO.
//!
//! The packet format is in [`wire::tftp`](crate::wire::tftp); this module is the engine:
//!
//! - [`Transfer`]: one transfer, client or server, sending or receiving, with option
//!   negotiation, windows, block-number rollover, netascii, retransmission with backoff,
//!   transfer-ID checks and dallying. It is a [`Machine`](crate::Machine) like every other.
//! - [`Server`]: the well-known port. It turns requests into [`Incoming`] for the
//!   application to [`accept`](Incoming::accept) (which gives a [`Transfer`] to run on a new
//!   socket) or [`refuse`](Server::refuse), and answers everything else.
//! - [`path`]: turning a requested filename into a safe relative path, and
//!   [`netascii`]: the text conversion.
//!
//! docs/tftp.md has the whole picture: what is supported, the defaults, and the security
//! model.

mod block;
mod config;
mod error;
mod event;
pub mod netascii;
mod options;
pub mod path;
mod server;
mod stats;
mod transfer;

pub use config::{Config, Rollover};
pub use error::TransferError;
pub use event::Event;
pub use options::{MAX_WINDOWSIZE, Name, Negotiated, OackError, OptionRequest, OptionRequestError};
pub use server::{Incoming, Server};
pub use stats::{ServerStats, TransferStats};
pub use transfer::{Direction, RequestError, Role, Transfer};
