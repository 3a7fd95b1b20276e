//! The [`Machine`] contract every protocol state machine implements, and [`Transmit`].

use alloc::vec::Vec;
use core::fmt::Debug;
use core::net::SocketAddr;

use crate::Instant;

/// A sans-IO protocol state machine: fed datagrams and timestamps, asked what to send and
/// when to be woken.
///
/// Inputs are `handle_*`, outputs are `poll_*`, and time is always an argument. After any
/// `handle_*` call or application command, drain [`poll_transmit`](Self::poll_transmit)
/// until it returns `None`, then [`poll_event`](Self::poll_event) until `None`, then sleep
/// until [`poll_timeout`](Self::poll_timeout) or the next datagram, whichever comes first.
/// The crate documentation walks through this loop with a complete example.
///
/// Nothing a peer sends can make a machine panic or return an error: malformed or
/// unexpected datagrams are dropped and counted in the machine's statistics.
pub trait Machine {
    /// Who a datagram comes from or goes to.
    ///
    /// A socket address for a machine on a UDP socket; an application may use richer
    /// identities (for example a Portal Network node id together with its address) when it
    /// carries the protocol inside its own datagrams.
    type Peer: Clone + Debug + Eq + Ord;

    /// What the machine reports to the application (new connections, readable data, ...).
    type Event;

    /// Feeds one datagram received from `remote` at `now`.
    ///
    /// Afterwards, poll [`poll_transmit`](Self::poll_transmit), then
    /// [`poll_event`](Self::poll_event), then [`poll_timeout`](Self::poll_timeout).
    fn handle_datagram(&mut self, now: Instant, remote: Self::Peer, data: &[u8]);

    /// Tells the machine that the instant returned by [`poll_timeout`](Self::poll_timeout)
    /// has been reached (calling it early, or more than once, is harmless).
    ///
    /// Afterwards, poll [`poll_transmit`](Self::poll_transmit), then
    /// [`poll_event`](Self::poll_event), then [`poll_timeout`](Self::poll_timeout).
    fn handle_timeout(&mut self, now: Instant);

    /// Writes the next datagram to send into `buf` (which it clears first) and says where
    /// it goes; `None` when there is nothing to send now.
    ///
    /// Poll again after every `handle_*` call and application command, until it returns
    /// `None`.
    #[must_use]
    fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit<Self::Peer>>;

    /// When the machine next wants [`handle_timeout`](Self::handle_timeout) to be called;
    /// `None` when it has no timer armed.
    ///
    /// Poll again after every `handle_*` call and application command.
    #[must_use]
    fn poll_timeout(&self) -> Option<Instant>;

    /// The next event for the application; `None` when there is none.
    ///
    /// Poll after draining [`poll_transmit`](Self::poll_transmit), following every
    /// `handle_*` call and application command, until it returns `None`.
    #[must_use]
    fn poll_event(&mut self) -> Option<Self::Event>;
}

/// One datagram (or one batch of equally sized datagrams) for the driver to send.
///
/// The bytes are in the buffer that was passed to [`Machine::poll_transmit`].
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Transmit<P = SocketAddr> {
    /// Where to send it.
    pub destination: P,
    /// How many bytes of the buffer to send.
    pub size: usize,
    /// `Some(n)`: the buffer holds several datagrams of `n` bytes each (the last may be
    /// shorter), to be sent with segmentation offload or one by one. `None`: one datagram.
    pub segment_size: Option<usize>,
}

impl<P> Transmit<P> {
    /// A single datagram of `size` bytes to `destination`.
    pub fn single(destination: P, size: usize) -> Self {
        Self { destination, size, segment_size: None }
    }

    /// The datagrams this transmit describes, as slices of `buf`.
    pub fn datagrams<'a>(&self, buf: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        let data = &buf[..self.size.min(buf.len())];
        let seg = self.segment_size.unwrap_or(data.len()).max(1);
        data.chunks(seg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_split_by_segment_size() {
        let buf = [1u8, 2, 3, 4, 5, 6, 7];
        let t = Transmit { destination: (), size: 7, segment_size: Some(3) };
        let parts: Vec<&[u8]> = t.datagrams(&buf).collect();
        assert_eq!(parts, [&[1, 2, 3][..], &[4, 5, 6], &[7]]);
        let single = Transmit::single((), 5);
        assert_eq!(single.datagrams(&buf).collect::<Vec<_>>(), [&[1, 2, 3, 4, 5][..]]);
    }
}
