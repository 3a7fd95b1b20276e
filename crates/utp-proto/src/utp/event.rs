//! What an [`Endpoint`](crate::utp::Endpoint) reports to the application.

use crate::utp::{ConnectionError, ConnectionHandle, IncomingId};

/// An event from [`Endpoint::poll_event`](crate::Machine::poll_event).
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum Event<P> {
    /// A SYN arrived that no connection expected. Call
    /// [`accept`](crate::utp::Endpoint::accept) or [`refuse`](crate::utp::Endpoint::refuse);
    /// unanswered, it is refused after `incoming_timeout`.
    Incoming {
        /// Names the pending connection.
        id: IncomingId,
        /// Who sent the SYN.
        peer: P,
        /// The connection id the SYN carries (the initiator's receive id).
        connection_id: u16,
    },
    /// The handshake finished: the connection may send.
    Connected(ConnectionHandle),
    /// Data (or the end of the stream) can be read.
    Readable(ConnectionHandle),
    /// Send-buffer space is free again after a write was refused as blocked.
    Writable(ConnectionHandle),
    /// The connection is over; its handle is no longer valid. `Ok` for an orderly close:
    /// everything we sent was acknowledged, including our FIN, or the peer had finished its
    /// stream and acknowledged all our data (the FIN is then sent as a courtesy).
    Closed {
        /// The connection.
        handle: ConnectionHandle,
        /// How it ended.
        result: Result<(), ConnectionError>,
    },
}
