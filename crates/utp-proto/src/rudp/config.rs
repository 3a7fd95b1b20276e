//! rudp settings: every limit and timer of docs/rudp.md, with its default and why.

use alloc::sync::Arc;
use core::fmt;
use core::time::Duration;

use crate::config::settings;
use crate::congestion::ControllerFactory;
use crate::rudp::newreno::NewRenoConfig;
use crate::wire::rudp::{DATA_HEADER_LEN, HEADER_LEN};

/// What one message or one DATA packet costs in the send buffer, the reassembly memory,
/// the receive window and the congestion window, besides its payload: the bookkeeping a
/// zero-byte message still needs. Counting it keeps a flood of tiny messages bounded like
/// a few large ones.
pub const MESSAGE_OVERHEAD: usize = 64;

/// rudp settings for an [`Endpoint`](crate::rudp::Endpoint) and its connections.
///
/// Build one with [`Config::default`], adjust it with the validated setters, and share it
/// as `Arc<Config>`. Each setting's documentation gives its default and why.
#[derive(Clone)]
pub struct Config {
    max_connections: usize,
    max_pending: usize,
    incoming_timeout: Duration,
    datagram_size: usize,
    max_message: u32,
    send_buffer: usize,
    reassembly_memory: usize,
    direct_queue: usize,
    initial_rto: Duration,
    min_rto: Duration,
    delivery_timeout: Duration,
    ack_delay_max: Duration,
    packet_threshold: u64,
    handshake_timeout: Duration,
    cookie_lifetime: Duration,
    ping_interval: Duration,
    ping_packet_count: u32,
    close_linger: Duration,
    answer_limit_entries: usize,
    answer_limit_window: Duration,
    congestion: Arc<dyn ControllerFactory>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_pending: 64,
            incoming_timeout: Duration::from_secs(10),
            datagram_size: 1200,
            max_message: 16 << 20,
            send_buffer: 16 << 20,
            reassembly_memory: 64 << 20,
            direct_queue: 256,
            initial_rto: Duration::from_secs(1),
            min_rto: Duration::from_millis(10),
            delivery_timeout: Duration::from_secs(5),
            ack_delay_max: Duration::from_millis(10),
            packet_threshold: 3,
            handshake_timeout: Duration::from_secs(10),
            cookie_lifetime: Duration::from_secs(10),
            ping_interval: Duration::from_secs(5),
            ping_packet_count: 4,
            close_linger: Duration::from_secs(10),
            answer_limit_entries: 1000,
            answer_limit_window: Duration::from_secs(10),
            congestion: Arc::new(NewRenoConfig),
        }
    }
}

settings! {
    /// The most connections an endpoint holds at once (closing ones included) plus the
    /// incoming ones waiting for `accept`. Default 1024.
    max_connections / set_max_connections: usize, "at least 1", |v| *v >= 1;
    /// The most incoming connections (CONNECTs with a valid cookie) waiting for
    /// [`accept`](crate::rudp::Endpoint::accept); further ones are refused with a CLOSE
    /// (code 3). Default 64.
    max_pending / set_max_pending: usize, "at least 1", |v| *v >= 1;
    /// How long an incoming connection waits for `accept` before it is refused. Default
    /// 10 s, the starter's default handshake timeout.
    incoming_timeout / set_incoming_timeout: Duration, "non-zero", |v| !v.is_zero();
    /// The largest datagram sent (the UDP payload). Default 1200 bytes: QUIC's figure, which
    /// passes every path of the Internet unfragmented. A DATA packet carries
    /// `datagram_size - 34` bytes of message.
    datagram_size / set_datagram_size: usize, "between 128 and 65507", |v| (128..=65_507).contains(v);
    /// The largest message this side accepts, announced in the handshake; the peer's
    /// `send` refuses larger ones. Default 16 MiB.
    max_message / set_max_message: u32, "at least 1", |v| *v >= 1;
    /// The send buffer: messages queued and not yet fully acknowledged, each counted as its
    /// length plus [`MESSAGE_OVERHEAD`]; `send` waits (or returns `Blocked`) beyond it. It
    /// also caps the congestion window. A message larger than the buffer can never be
    /// sent. Default 16 MiB.
    send_buffer / set_send_buffer: usize, "at least 4096", |v| *v >= 4096;
    /// The reassembly memory of one connection: messages being reassembled (each counted
    /// as its whole length plus [`MESSAGE_OVERHEAD`] from its first fragment on) and whole
    /// messages not yet read. Fragments beyond it are dropped unacknowledged (the sender
    /// repeats them later); the free part is advertised as the receive window. The next
    /// message in order is admitted even beyond the limit once every delivered message has
    /// been read, so memory never exceeds this plus one `max_message`. Default 64 MiB.
    reassembly_memory / set_reassembly_memory: usize, "at least 4096", |v| *v >= 4096;
    /// The most direct datagrams queued per connection each way: to send (beyond it
    /// `send_direct` returns `Blocked`) and received but not yet read (beyond it new ones
    /// are dropped and counted). Default 256.
    direct_queue / set_direct_queue: usize, "at least 1", |v| *v >= 1;
    /// The retransmission timeout before the first round-trip sample, and the first
    /// handshake retransmission. Default 1 s (RFC 6298).
    initial_rto / set_initial_rto: Duration, "non-zero", |v| !v.is_zero();
    /// The smallest retransmission timeout (before the peer's acknowledgement delay is
    /// added). Default 10 ms: rudp serves low-latency applications, and spurious
    /// retransmissions cost little because packet numbers are never reused.
    min_rto / set_min_rto: Duration, "non-zero", |v| !v.is_zero();
    /// The longest a packet waits for its acknowledgement before it is sent again: the
    /// ceiling of the adaptive timeout, backoff included (the seed note's
    /// `delivery_timeout`). Default 5 s.
    delivery_timeout / set_delivery_timeout: Duration, "non-zero", |v| !v.is_zero();
    /// The longest a receiver holds back an acknowledgement (one is sent for every second
    /// DATA otherwise). The sender adds its own value of this to its timeout, so both sides
    /// should agree. Default 10 ms.
    ack_delay_max / set_ack_delay_max: Duration, "at most 1 s", |v| *v <= Duration::from_secs(1);
    /// How many later packets must be acknowledged before an unacknowledged one is declared
    /// lost, and how far below the largest received packet number a receiver asks for a
    /// missing one with REPEAT: the reordering tolerated. Default 3 (RFC 9002).
    packet_threshold / set_packet_threshold: u64, "between 1 and 1000", |v| (1..=1000).contains(v);
    /// How long `connect` tries before it fails. Default 10 s.
    handshake_timeout / set_handshake_timeout: Duration, "non-zero", |v| !v.is_zero();
    /// How long a listener's cookie stays valid. Default 10 s.
    cookie_lifetime / set_cookie_lifetime: Duration, "at least 1 s", |v| *v >= Duration::from_secs(1);
    /// After this long without hearing from the peer a connection sends a PING, and another
    /// after each further interval of silence. Default 5 s (the seed note's).
    ping_interval / set_ping_interval: Duration, "non-zero", |v| !v.is_zero();
    /// Pings left unanswered for one more `ping_interval` close the connection (CLOSE code
    /// 1): a silent peer is given up after `(ping_packet_count + 1) × ping_interval`.
    /// Default 4 (the seed note's), so 25 s.
    ping_packet_count / set_ping_packet_count: u32, "at least 1", |v| *v >= 1;
    /// How long a closed connection's id is remembered, to answer the peer's late packets
    /// (its next PING, if it missed every copy of our CLOSE) with the CLOSE again; unread
    /// messages are kept beyond it until they are read. A closed connection counts
    /// against `max_connections` until then. An accepted connection that sent a CLOSE is
    /// remembered at least `cookie_lifetime` + 1 s after it was accepted, so that a late
    /// copy of the starter's CONNECT cannot open a second one. Default 10 s, two ping
    /// intervals.
    close_linger / set_close_linger: Duration, "any value", |_v| true;
    /// How many recent answers to packets of unknown connections (CLOSE code 5) are
    /// remembered to suppress repeats; when the table is full no further answers are sent.
    /// Default 1000.
    answer_limit_entries / set_answer_limit_entries: usize, "any value", |_v| true;
    /// How long an answer to an unknown connection suppresses another to the same peer and
    /// id. Default 10 s.
    answer_limit_window / set_answer_limit_window: Duration, "any value", |_v| true;
}

impl Config {
    /// The congestion controller factory. Default: [`NewRenoConfig`].
    pub fn congestion(&self) -> &Arc<dyn ControllerFactory> {
        &self.congestion
    }

    /// Replaces the congestion controller (any [`Controller`](crate::congestion::Controller),
    /// uTP's LEDBAT included). rudp carries no one-way timestamps: the queueing delay a
    /// delay-based controller gets is the round trip beyond the smallest one seen.
    pub fn set_congestion(&mut self, factory: Arc<dyn ControllerFactory>) -> &mut Self {
        self.congestion = factory;
        self
    }

    /// The most message bytes one DATA packet carries: `datagram_size - 34`.
    pub fn fragment_size(&self) -> usize {
        self.datagram_size - DATA_HEADER_LEN
    }

    /// The largest direct datagram payload: `datagram_size - 10`.
    pub fn max_direct(&self) -> usize {
        self.datagram_size - HEADER_LEN
    }

    /// The largest message this side can send to a peer that accepts `peer_max` bytes: the
    /// smaller of `peer_max` and what fits the send buffer.
    pub fn max_send_message(&self, peer_max: u32) -> usize {
        (peer_max as usize).min(self.send_buffer - MESSAGE_OVERHEAD)
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("max_connections", &self.max_connections)
            .field("max_pending", &self.max_pending)
            .field("datagram_size", &self.datagram_size)
            .field("max_message", &self.max_message)
            .field("send_buffer", &self.send_buffer)
            .field("reassembly_memory", &self.reassembly_memory)
            .field("delivery_timeout", &self.delivery_timeout)
            .field("ping_interval", &self.ping_interval)
            .field("ping_packet_count", &self.ping_packet_count)
            .field("congestion", &self.congestion)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use alloc::string::ToString;

    use super::*;

    #[test]
    fn defaults_follow_the_seed_note_where_it_has_figures() {
        let c = Config::default();
        assert_eq!(c.ping_interval(), Duration::from_secs(5));
        assert_eq!(c.ping_packet_count(), 4);
        assert_eq!(c.delivery_timeout(), Duration::from_secs(5));
        assert_eq!(c.fragment_size(), 1166);
        assert_eq!(c.max_direct(), 1190);
        assert_eq!(c.max_send_message(u32::MAX), (16 << 20) - MESSAGE_OVERHEAD);
        assert_eq!(c.max_send_message(1000), 1000);
    }

    #[test]
    fn setters_validate_and_say_what_to_fix() {
        let mut c = Config::default();
        let err = c.set_datagram_size(100).unwrap_err();
        assert_eq!(err.to_string(), "datagram_size must be between 128 and 65507, got 100");
        assert_eq!(c.datagram_size(), 1200, "a refused value changes nothing");
        assert!(c.set_ping_packet_count(0).is_err());
        assert!(c.set_ack_delay_max(Duration::from_secs(2)).is_err());
        c.set_datagram_size(9000).unwrap().set_max_message(1 << 30).unwrap();
        assert_eq!(c.fragment_size(), 8966);
    }
}
