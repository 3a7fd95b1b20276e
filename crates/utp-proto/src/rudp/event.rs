//! What an [`Endpoint`](crate::rudp::Endpoint) reports to the application.

use crate::rudp::{CloseReason, ConnectionHandle, IncomingId};

/// An event from [`Endpoint::poll_event`](crate::Machine::poll_event).
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum Event<P> {
    /// A starter proved its address (it echoed our cookie) and asks to connect. Call
    /// [`accept`](crate::rudp::Endpoint::accept) or
    /// [`refuse`](crate::rudp::Endpoint::refuse); unanswered, it is refused after
    /// `incoming_timeout`.
    Incoming {
        /// Names the pending connection.
        id: IncomingId,
        /// Who asks.
        peer: P,
    },
    /// The handshake of a connection we started finished: it may send.
    Connected(ConnectionHandle),
    /// A whole message can be received with [`recv`](crate::rudp::Endpoint::recv)
    /// (reported when the queue of received messages stops being empty).
    Readable(ConnectionHandle),
    /// A direct datagram can be received with
    /// [`recv_direct`](crate::rudp::Endpoint::recv_direct).
    Direct(ConnectionHandle),
    /// Room again after `send` or `send_direct` returned `Blocked`.
    Writable(ConnectionHandle),
    /// Everything sent has been acknowledged
    /// ([`is_flushed`](crate::rudp::Endpoint::is_flushed) became true).
    Flushed(ConnectionHandle),
    /// The connection ended. Messages it delivered and the application has not received
    /// yet stay receivable; the handle becomes invalid once they are received and
    /// `close_linger` has passed.
    Closed {
        /// The connection.
        handle: ConnectionHandle,
        /// Why.
        reason: CloseReason,
    },
}
