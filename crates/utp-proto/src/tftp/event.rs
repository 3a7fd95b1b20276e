//! What a transfer tells the application: [`Event`].

use super::{Negotiated, TransferError};

/// An event from [`Transfer::poll_event`](super::Transfer).
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// Negotiation is over: the transfer runs with these options (the OACK's, or the
    /// defaults when the server ignored the options). Reported once, before any data.
    Negotiated(Negotiated),
    /// The receiving side has new bytes to [`read`](super::Transfer::read).
    Readable,
    /// The sending side has room for more [`write`](super::Transfer::write)s.
    Writable,
    /// Every byte was acknowledged (sending side), or has arrived and the final ACK was
    /// handed to `poll_transmit` (receiving side: read until
    /// [`read`](super::Transfer::read) returns 0). Until that ACK leaves, the receiving
    /// application may still [`abort`](super::Transfer::abort) and the sender gets the
    /// ERROR instead. The receiving side may dally a little
    /// longer to acknowledge a repeated last block; see
    /// [`is_closed`](super::Transfer::is_closed).
    Complete,
    /// The transfer failed; it sends nothing more except, at most, the ERROR that told the
    /// peer, or (a client whose download differs from its `tsize`) the final ACK the server
    /// is owed. Never follows [`Complete`](Self::Complete): an ERROR or an abort while the
    /// receiver dallies only ends the dally.
    Failed(TransferError),
}
