//! Sans-IO transport protocol state machines.
//!
//! `utp-proto` holds pure state machines for uTP (BEP 29 with LEDBAT, wire-compatible with
//! libutp), and — as the project grows — rudp, TFTP and resumable sessions. They never
//! touch a socket, a clock or the operating system's randomness: they are fed datagrams
//! and timestamps, and asked what to send and when to be woken. The same code therefore
//! runs under a hand-written event loop, any async runtime (see the `utp-driver` crate),
//! the deterministic network simulator in `sim` (feature `sim`), and a fuzzer.
//!
//! The crate is `#![no_std]` with `alloc`; the default `std` feature only adds
//! `std::error::Error` implementations. It contains no `unsafe` code.
//!
//! # The contract
//!
//! Every machine implements [`Machine`]. Inputs are `handle_*` methods, outputs are `poll_*`
//! methods, and time is always an argument, as an [`Instant`] in microseconds since an
//! epoch the caller chooses. Randomness comes from an [`Rng`] the caller seeds.
//!
//! # The run loop
//!
//! Every mutation is followed by a complete drain. A driver repeats:
//!
//! 1. Wait until a datagram arrives or the instant from
//!    [`poll_timeout`](Machine::poll_timeout) is reached, whichever comes first.
//! 2. Feed what happened: [`handle_datagram`](Machine::handle_datagram) for each datagram
//!    received (read the socket until it would block), or
//!    [`handle_timeout`](Machine::handle_timeout) when the timer fired. Application
//!    commands (connect, write, close, ...) count as inputs too.
//! 3. Drain [`poll_transmit`](Machine::poll_transmit) until it returns `None`, sending
//!    each datagram it describes.
//! 4. Drain [`poll_event`](Machine::poll_event) until it returns `None`, handing each
//!    event to the application.
//! 5. If the application reacted to an event with a command, go back to step 3.
//! 6. Ask [`poll_timeout`](Machine::poll_timeout) for the next deadline and go back to
//!    step 1.
//!
//! The drain order — transmits before events — keeps acknowledgements flowing even while
//! the application is busy with what it was just given.
//!
//! ```no_run
//! use std::net::{SocketAddr, UdpSocket};
//! use std::time::{Duration, Instant as StdInstant};
//!
//! use utp_proto::{Instant, Machine};
//!
//! /// Pumps `machine` over a blocking UDP socket until `done` says stop.
//! fn run<M: Machine<Peer = SocketAddr>>(
//!     machine: &mut M,
//!     socket: &UdpSocket,
//!     mut on_event: impl FnMut(&mut M, M::Event),
//!     mut done: impl FnMut(&M) -> bool,
//! ) -> std::io::Result<()> {
//!     let epoch = StdInstant::now();
//!     let now = || Instant::from_micros(epoch.elapsed().as_micros() as u64);
//!     let mut rx = vec![0u8; 65_536];
//!     let mut tx = Vec::with_capacity(65_536);
//!     while !done(machine) {
//!         // 3. and 5.: drain transmits.
//!         while let Some(t) = machine.poll_transmit(now(), &mut tx) {
//!             for datagram in t.datagrams(&tx) {
//!                 socket.send_to(datagram, t.destination)?;
//!             }
//!         }
//!         // 4.: drain events; the application may issue commands on the machine.
//!         let mut reacted = false;
//!         while let Some(event) = machine.poll_event() {
//!             on_event(machine, event);
//!             reacted = true;
//!         }
//!         if reacted {
//!             continue;
//!         }
//!         // 6. and 1.: sleep until the deadline or a datagram.
//!         let wait = machine
//!             .poll_timeout()
//!             .map(|at| at.saturating_duration_since(now()))
//!             .unwrap_or(Duration::from_secs(1))
//!             .max(Duration::from_micros(1));
//!         socket.set_read_timeout(Some(wait))?;
//!         match socket.recv_from(&mut rx) {
//!             // 2.: feed the datagram...
//!             Ok((n, from)) => machine.handle_datagram(now(), from, &rx[..n]),
//!             Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
//!                 // ...or the timeout.
//!                 machine.handle_timeout(now());
//!             }
//!             Err(e) => return Err(e),
//!         }
//!     }
//!     Ok(())
//! }
//! ```
//!
//! # Panic policy
//!
//! A panic is a bug. Network input never causes a panic or an `Err`: a datagram that does
//! not parse, or that makes no sense in the connection's state, is dropped and counted in
//! the machine's statistics, and packets for unknown connections get the protocol's
//! answer. Errors are returned only for application commands that cannot be carried out
//! (for example writing to a closed stream), and say what to fix. Every buffer, table and
//! queue a peer can grow is bounded by a configurable limit.
//!
//! # Modules
//!
//! - [`wire`]: zero-copy parsing and emitting of each protocol's packets.
//! - `sim` (feature `sim`): a seeded network link with latency, jitter, loss,
//!   duplication, reordering, corruption, bandwidth and MTU limits, and a `sim::Pair`
//!   harness that drives two machines over it in virtual time.
//! - `fuzzing` (feature `__fuzzing`): entry points for the fuzz targets; not a stable API.

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod answer_limiter;
pub mod config;
pub mod congestion;
mod machine;
pub mod rand;
pub mod rtt;
pub mod rudp;
mod slots;
pub mod tftp;
pub mod time;
pub mod utp;
pub mod wire;

#[cfg(feature = "sim")]
pub mod sim;

#[cfg(feature = "__fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

pub use machine::{Machine, Transmit};
pub use rand::Rng;
pub use time::Instant;

// The README's Rust examples are compiled as doctests by utp-tokio, which has every crate
// they use.
