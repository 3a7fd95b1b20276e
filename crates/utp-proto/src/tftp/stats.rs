//! Counters of a transfer and of a server: [`TransferStats`], [`ServerStats`].

/// Counters of a [`Transfer`](super::Transfer).
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
#[non_exhaustive]
pub struct TransferStats {
    /// DATA packets sent, retransmissions included.
    pub data_sent: u64,
    /// DATA packets sent again (after a timeout or a request to resend).
    pub data_retransmitted: u64,
    /// DATA packets received and accepted in order.
    pub data_received: u64,
    /// DATA packets received again, out of order, or that did not fit the receive buffer.
    pub data_dropped: u64,
    /// ACK packets sent.
    pub acks_sent: u64,
    /// ACK packets received.
    pub acks_received: u64,
    /// ACKs that acknowledged nothing new and were ignored (Sorcerer's Apprentice rule).
    pub duplicate_acks: u64,
    /// Timeouts that led to a retransmission.
    pub timeouts: u64,
    /// Packets from someone other than the peer (answered with ERROR 5 while the reply queue
    /// has room).
    pub strangers: u64,
    /// Datagrams that did not parse, or were not expected at this point of the transfer.
    pub malformed: u64,
    /// Data bytes acknowledged by the peer (sending side) or received (receiving side), as
    /// they are on the wire (netascii-encoded in netascii mode).
    pub wire_bytes: u64,
}

/// Counters of a [`Server`](super::Server).
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
#[non_exhaustive]
pub struct ServerStats {
    /// Requests handed to the application.
    pub requests: u64,
    /// Requests dropped because too many were waiting.
    pub requests_dropped: u64,
    /// Datagrams that were not a valid request (answered with an ERROR, unless the reply
    /// queue was full).
    pub malformed: u64,
    /// ERROR replies sent.
    pub errors_sent: u64,
}
