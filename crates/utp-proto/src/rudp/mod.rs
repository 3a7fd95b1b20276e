//! rudp: batched reliable messages over UDP (docs/rudp.md is the wire specification).
//!
//! An [`Endpoint`] holds every connection on one socket. It is a [`Machine`](crate::Machine):
//! the driver feeds it datagrams and timeouts and drains what it wants to send. The
//! application opens connections with [`Endpoint::connect`], answers [`Event::Incoming`]
//! with [`Endpoint::accept`] or [`Endpoint::refuse`], sends whole messages with
//! [`Endpoint::send`] and takes them, whole, in order and exactly once, with
//! [`Endpoint::recv`]. [`Endpoint::send_direct`] and [`Endpoint::recv_direct`] carry
//! unreliable datagrams beside them; [`Endpoint::close`] ends a connection at once, with a
//! code and a reason the peer sees.
//!
//! ```
//! use std::sync::Arc;
//! use utp_proto::rudp::{Config, Endpoint, Event};
//! use utp_proto::{Instant, Machine};
//!
//! let config = Arc::new(Config::default());
//! let mut alice = Endpoint::<u8>::new(config.clone(), [1; 32]);
//! let mut bob = Endpoint::<u8>::new(config, [2; 32]);
//! let mut now = Instant::ZERO;
//! let to_bob = alice.connect(now, 2).unwrap();
//!
//! // Shuttle datagrams (no loss here; see `sim` for more), 20 ms a round.
//! let mut buf = Vec::new();
//! let mut got = Vec::new();
//! for _ in 0..10 {
//!     now += std::time::Duration::from_millis(20);
//!     alice.handle_timeout(now);
//!     bob.handle_timeout(now);
//!     while let Some(t) = alice.poll_transmit(now, &mut buf) {
//!         bob.handle_datagram(now, 1, &buf[..t.size]);
//!     }
//!     while let Some(t) = bob.poll_transmit(now, &mut buf) {
//!         alice.handle_datagram(now, 2, &buf[..t.size]);
//!     }
//!     while let Some(event) = alice.poll_event() {
//!         if let Event::Connected(h) = event {
//!             alice.send(h, b"hello").unwrap();
//!         }
//!     }
//!     while let Some(event) = bob.poll_event() {
//!         match event {
//!             Event::Incoming { id, .. } => { bob.accept(now, id).unwrap(); }
//!             Event::Readable(h) => got.push(bob.recv(now, h).unwrap()),
//!             _ => {}
//!         }
//!     }
//! }
//! assert_eq!(got, [b"hello".to_vec()]);
//! assert!(alice.is_flushed(to_bob), "Bob acknowledged it (within his 10 ms ack delay)");
//! ```
//!
//! `docs/rudp.md` is the wire specification and describes every setting of [`Config`].

mod config;
mod connection;
mod cookie;
mod endpoint;
mod error;
mod event;
mod ids;
mod newreno;
mod reassembly;
mod received;
mod sender;
mod stats;

pub use crate::config::ConfigError;
pub use crate::wire::rudp::CloseCode;
pub use config::{Config, MESSAGE_OVERHEAD};
pub use connection::State;
pub use cookie::{COOKIE_LEN, CookieError, CookieKey};
pub use endpoint::{ConnectionHandle, Endpoint, IncomingId};
pub use error::{
    AcceptError, CloseError, CloseReason, ConnectError, RecvError, SendDirectError, SendError,
};
pub use event::Event;
pub use newreno::{NewReno, NewRenoConfig};
pub use stats::{ConnectionStats, EndpointStats};
