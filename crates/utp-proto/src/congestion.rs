//! The congestion-control interface shared by the protocols.
//!
//! A connection tells its [`Controller`] what acknowledgements, losses and timeouts it saw;
//! the controller answers with a congestion window in bytes. uTP plugs in LEDBAT
//! ([`crate::utp::Ledbat`]); other controllers can be supplied through a
//! [`ControllerFactory`] in the protocol's configuration.

use alloc::boxed::Box;
use core::fmt::Debug;
use core::time::Duration;

use crate::Instant;

/// What one acknowledgement told the sender.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct AckSample {
    /// Payload bytes newly acknowledged (cumulatively or selectively).
    pub bytes_acked: usize,
    /// The one-way queueing delay towards the peer (delay above the base delay), when the
    /// peer reported a delay sample; delay-based controllers need it.
    pub queuing_delay: Option<Duration>,
    /// The smallest round-trip time among the packets this acknowledgement covered.
    pub min_rtt: Option<Duration>,
}

/// Facts a controller is built with.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct ControllerParams {
    /// The largest payload one packet carries, in bytes.
    pub max_payload: usize,
    /// The window never grows beyond this (the send buffer), in bytes.
    pub max_window: usize,
}

/// A congestion controller: turns acknowledgements and losses into a window.
///
/// Calls arrive in time order. A controller never sees packets or timers: the connection
/// does the bookkeeping and reports what happened.
pub trait Controller: Debug + Send {
    /// The congestion window in bytes: how much unacknowledged payload may be in flight.
    fn window(&self) -> usize;

    /// Payload bytes were acknowledged.
    fn on_ack(&mut self, now: Instant, sample: &AckSample);

    /// A loss was detected from acknowledgements (duplicate ACKs or selective ACKs).
    fn on_loss(&mut self, now: Instant);

    /// The retransmission timer fired. `idle` is true when nothing was in flight (the
    /// connection had been quiet rather than losing packets).
    fn on_timeout(&mut self, now: Instant, idle: bool);

    /// The sender had data to send but the window was full: the connection is using all of
    /// its window (not application-limited).
    fn on_window_full(&mut self, now: Instant);

    /// Whether the controller is still in slow start (for statistics).
    fn in_slow_start(&self) -> bool {
        false
    }
}

/// Builds one [`Controller`] per connection; kept in a protocol's configuration.
pub trait ControllerFactory: Debug + Send + Sync {
    /// A controller for a new connection.
    fn build(&self, params: ControllerParams) -> Box<dyn Controller>;
}
