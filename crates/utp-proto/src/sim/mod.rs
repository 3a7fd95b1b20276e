//! The deterministic network simulator (feature `sim`).
//!
//! Two pieces, both driven by virtual time and seeded randomness, so every run replays
//! exactly from its seed:
//!
//! - [`Link`]: one direction of a network path. Configured by a [`LinkConfig`] with
//!   latency, jitter, random and bursty ([`GilbertElliott`]) loss, duplication,
//!   reordering, bit corruption, a bandwidth bottleneck with a finite tail-drop queue, and
//!   an MTU. It counts what it did in [`LinkStats`].
//! - [`Pair`]: two [`Machine`](crate::Machine)s joined by two links (`a → b` and `b → a`)
//!   and stepped together: transmits go into the links, the clock jumps to the next
//!   arrival or timeout, datagrams and timeouts are delivered, and so on.
//! - [`Checksummed`]: a machine behind a UDP-like checksum, so that a link's bit
//!   corruption is dropped on receipt as a real network's UDP checksum would drop it.
//!
//! # Idle, and which drive to use
//!
//! A pair is **idle** when no datagram is in flight on either link and neither machine has
//! a timer armed (both [`poll_timeout`](crate::Machine::poll_timeout)s are `None`), after
//! draining their transmits. Nothing can happen any more: [`Pair::step`] returns `false`.
//!
//! - [`Pair::drive`] steps until idle, and panics with a [`Livelock`] message if that takes
//!   more than the step limit. Use it for exchanges that finish with every timer
//!   disarmed.
//! - [`Pair::drive_bounded`] is the same with an explicit bound, returning the
//!   [`Livelock`] instead of panicking: a test can assert that something never settles.
//! - [`Pair::drive_until`] steps until a predicate holds. Machines with periodic timers —
//!   keepalives, idle timeouts, a connection waiting to time out — are **never** idle, so
//!   drive them with this (for example until a "transfer complete" event arrives).
//! - [`Pair::drive_for`] steps through a fixed span of virtual time.
//!
//! Besides the step limit, a drive reports [`Livelock::Stuck`] when many consecutive
//! steps pass without virtual time advancing (a machine whose `poll_timeout` stays at or
//! before `now` after `handle_timeout`), and [`Livelock::Flood`] when a machine's
//! `poll_transmit` never returns `None`.
//!
//! The pair never reads the machines' events: the test owns them, through the public
//! [`Pair::a`] and [`Pair::b`] fields.
//!
//! # Example
//!
//! ```
//! use utp_proto::sim::{LinkConfig, Pair};
//! use utp_proto::{Instant, Machine, Transmit};
//!
//! /// Sends "ping" once; answers every "ping" with "pong"; reports what it receives.
//! #[derive(Default)]
//! struct Pinger { to: u8, ping: bool, answer: bool, events: Vec<Vec<u8>> }
//!
//! impl Machine for Pinger {
//!     type Peer = u8; // a simulated address
//!     type Event = Vec<u8>;
//!     fn handle_datagram(&mut self, _now: Instant, _from: u8, data: &[u8]) {
//!         self.answer |= data == b"ping";
//!         self.events.push(data.to_vec());
//!     }
//!     fn handle_timeout(&mut self, _now: Instant) {}
//!     fn poll_transmit(&mut self, _now: Instant, buf: &mut Vec<u8>) -> Option<Transmit<u8>> {
//!         buf.clear();
//!         if core::mem::take(&mut self.ping) {
//!             buf.extend_from_slice(b"ping");
//!         } else if core::mem::take(&mut self.answer) {
//!             buf.extend_from_slice(b"pong");
//!         } else {
//!             return None;
//!         }
//!         Some(Transmit::single(self.to, buf.len()))
//!     }
//!     fn poll_timeout(&self) -> Option<Instant> { None }
//!     fn poll_event(&mut self) -> Option<Vec<u8>> { self.events.pop() }
//! }
//!
//! let a = Pinger { to: 2, ping: true, ..Pinger::default() };
//! let b = Pinger { to: 1, ..Pinger::default() };
//! let mut pair = Pair::symmetric(a, 1, b, 2, LinkConfig::default(), 7);
//! pair.drive(); // idle once the pong has arrived
//! assert_eq!(pair.b.poll_event().as_deref(), Some(&b"ping"[..]));
//! assert_eq!(pair.a.poll_event().as_deref(), Some(&b"pong"[..]));
//! assert_eq!(pair.now(), Instant::from_millis(20)); // two trips of the default 10 ms
//! ```

mod checksum;
mod config;
mod link;
mod pair;

pub use checksum::{CHECKSUM_LEN, Checksummed};
pub use config::{GilbertElliott, LinkConfig, LinkConfigError};
pub use link::{Link, LinkStats};
pub use pair::{
    DEFAULT_STALL_LIMIT, DEFAULT_STEP_LIMIT, Livelock, MAX_TRANSMITS_PER_DRAIN, Pair, PairStats,
    Side, Snapshot,
};
