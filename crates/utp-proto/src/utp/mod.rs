//! uTP (BEP 29 with LEDBAT), wire-compatible with libutp, with a Portal Network profile.
//!
//! An [`Endpoint`] holds every connection on one socket. It is a [`Machine`](crate::Machine):
//! the driver feeds it datagrams and timeouts and drains what it wants to send; the
//! application opens connections with [`Endpoint::connect`], answers
//! [`Event::Incoming`] with [`Endpoint::accept`] or [`Endpoint::refuse`], and moves bytes
//! with [`Endpoint::write`] and [`Endpoint::read`].
//!
//! ```
//! use std::sync::Arc;
//! use utp_proto::utp::{Config, Endpoint, Event};
//! use utp_proto::{Instant, Machine};
//!
//! let config = Arc::new(Config::default());
//! let mut alice = Endpoint::<u8>::new(config.clone(), 1);
//! let mut bob = Endpoint::<u8>::new(config, 2);
//! let now = Instant::ZERO;
//! let stream = alice.connect(now, 2).unwrap();
//! alice.write(stream, b"hello").unwrap();
//!
//! // Shuttle datagrams until Bob has read everything (no loss here; see `sim` for more).
//! let mut buf = Vec::new();
//! let mut got = Vec::new();
//! for _ in 0..10 {
//!     while let Some(t) = alice.poll_transmit(now, &mut buf) {
//!         bob.handle_datagram(now, 1, &buf[..t.size]);
//!     }
//!     while let Some(t) = bob.poll_transmit(now, &mut buf) {
//!         alice.handle_datagram(now, 2, &buf[..t.size]);
//!     }
//!     while let Some(event) = bob.poll_event() {
//!         match event {
//!             Event::Incoming { id, .. } => { bob.accept(now, id).unwrap(); }
//!             Event::Readable(h) => {
//!                 let mut chunk = [0u8; 64];
//!                 let n = bob.read(h, &mut chunk).unwrap();
//!                 got.extend_from_slice(&chunk[..n]);
//!             }
//!             _ => {}
//!         }
//!     }
//! }
//! assert_eq!(got, b"hello");
//! ```
//!
//! `docs/utp.md` describes the behaviour and every setting of [`Config`].

mod config;
mod connection;
mod delay;
mod endpoint;
mod error;
mod event;
mod ledbat;
mod recv_buffer;
mod send_buffer;
mod stats;

pub use crate::config::ConfigError;
pub use config::{Config, InitialSeq, Profile, SynAckSeq};
pub use connection::State;
pub use endpoint::{ConnectionHandle, Endpoint, IncomingId};
pub use error::{AcceptError, ConnectError, ConnectionError, ReadError, WriteError};
pub use event::Event;
pub use ledbat::{Ledbat, LedbatConfig, SlowStart};
pub use stats::{ConnectionStats, EndpointStats};
