//! Counters and estimates a rudp connection and endpoint expose.

use core::time::Duration;

/// Statistics of one connection, from [`Endpoint::stats`](crate::rudp::Endpoint::stats).
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
#[non_exhaustive]
pub struct ConnectionStats {
    /// The smoothed round-trip time, once measured.
    pub rtt: Option<Duration>,
    /// The current retransmission timeout (backoff included).
    pub rto: Duration,
    /// The congestion window, in cost units (payload plus 64 bytes per packet).
    pub cwnd: usize,
    /// The receive window the peer last advertised.
    pub peer_window: usize,
    /// Cost units in flight.
    pub in_flight: usize,
    /// Messages accepted by `send`.
    pub messages_sent: u64,
    /// Messages delivered whole to the receive queue.
    pub messages_received: u64,
    /// Message bytes accepted by `send`.
    pub bytes_sent: u64,
    /// Message bytes the application has taken with `recv` (what `messages_received`
    /// counts is delivered to the receive queue; these bytes, once read).
    pub bytes_received: u64,
    /// Packets sent, of every type.
    pub packets_sent: u64,
    /// Packets received and accepted for this connection.
    pub packets_received: u64,
    /// DATA packets sent, retransmissions included.
    pub data_sent: u64,
    /// DATA packets that repeated a fragment (after a loss, a REPEAT or a timeout).
    pub retransmits: u64,
    /// Retransmission timeouts.
    pub timeouts: u64,
    /// REPEAT packets sent (gaps seen).
    pub repeats_sent: u64,
    /// REPEAT packets received.
    pub repeats_received: u64,
    /// DATA packets received that brought nothing new (a fragment already held, a message
    /// already delivered, or a packet number already seen).
    pub duplicates: u64,
    /// DATA packets dropped unacknowledged because the reassembly memory was full.
    pub dropped_memory: u64,
    /// Packets ignored as making no sense in the connection's state.
    pub dropped_invalid: u64,
    /// PINGs sent.
    pub pings_sent: u64,
    /// Direct datagrams sent.
    pub direct_sent: u64,
    /// Direct datagrams received and queued.
    pub direct_received: u64,
    /// Direct datagrams received and dropped because the receive queue was full.
    pub direct_dropped: u64,
}

/// Statistics of an endpoint, from
/// [`Endpoint::endpoint_stats`](crate::rudp::Endpoint::endpoint_stats).
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
#[non_exhaustive]
pub struct EndpointStats {
    /// Datagrams handed to the endpoint.
    pub datagrams_received: u64,
    /// Datagrams sent.
    pub datagrams_sent: u64,
    /// Datagrams that were not valid rudp packets.
    pub malformed: u64,
    /// Packets naming no connection we have.
    pub unknown_connection: u64,
    /// Packets naming one of our connections but coming from another address.
    pub wrong_peer: u64,
    /// Challenges sent (cookies issued).
    pub challenges_sent: u64,
    /// CONNECTs whose cookie was forged or expired (answered with a new challenge).
    pub bad_cookies: u64,
    /// Incoming connections refused (by the application, by a limit, or expired).
    pub incoming_refused: u64,
    /// CLOSEs (code 5) sent in answer to packets of unknown connections.
    pub unknown_answers: u64,
    /// Such answers withheld by the rate limit or because the packet was too small.
    pub unknown_answers_suppressed: u64,
    /// Answers of the endpoint's own (challenges, refusals, code 5) dropped because 1024
    /// were already waiting for `poll_transmit`.
    pub answers_dropped: u64,
}
