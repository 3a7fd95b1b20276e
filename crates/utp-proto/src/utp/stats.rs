//! Counters and estimates a uTP connection and endpoint expose.

use core::time::Duration;

/// Statistics of one connection, from [`Endpoint::stats`](crate::utp::Endpoint::stats).
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
#[non_exhaustive]
pub struct ConnectionStats {
    /// The smoothed round-trip time, once measured.
    pub rtt: Option<Duration>,
    /// The current retransmission timeout.
    pub rto: Duration,
    /// The congestion window, in bytes.
    pub cwnd: usize,
    /// The window the peer last advertised, in bytes.
    pub peer_window: usize,
    /// Payload bytes sent, retransmissions included.
    pub bytes_sent: u64,
    /// Payload bytes received in order and handed to the read buffer.
    pub bytes_received: u64,
    /// Packets sent, of every type.
    pub packets_sent: u64,
    /// Packets received and accepted for this connection.
    pub packets_received: u64,
    /// Packets retransmitted (timeouts and fast retransmits).
    pub retransmits: u64,
    /// Of those, fast retransmits (duplicate or selective ACKs).
    pub fast_retransmits: u64,
    /// Retransmission timeouts.
    pub timeouts: u64,
    /// Duplicate data packets received.
    pub duplicates: u64,
    /// Packets ignored as invalid for this connection (ack_nr outside the window, sequence
    /// numbers too far ahead, data past the FIN, data that did not fit the buffer).
    pub dropped_invalid: u64,
}

/// Statistics of an endpoint, from [`Endpoint::endpoint_stats`](crate::utp::Endpoint::endpoint_stats).
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
#[non_exhaustive]
pub struct EndpointStats {
    /// Datagrams handed to the endpoint.
    pub datagrams_received: u64,
    /// Datagrams sent.
    pub datagrams_sent: u64,
    /// Datagrams that were not valid uTP packets.
    pub malformed: u64,
    /// Packets for no known connection.
    pub unknown_connection: u64,
    /// `ST_RESET`s sent to packets of unknown connections or refused SYNs.
    pub resets_sent: u64,
    /// `ST_RESET`s withheld by the rate limit.
    pub resets_suppressed: u64,
    /// Incoming SYNs refused (by the application, by a limit, or expired).
    pub incoming_refused: u64,
}
