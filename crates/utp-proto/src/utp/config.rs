//! uTP settings: every place where libutp and BEP 29 differ is a named setting, with
//! libutp's behaviour the default; [`Profile::Portal`] presets the Portal Network rules.

use alloc::sync::Arc;
use core::fmt;
use core::time::Duration;

use crate::config::settings;
use crate::congestion::ControllerFactory;
use crate::utp::ledbat::LedbatConfig;
use crate::wire::utp::HEADER_LEN;

/// A preset of settings.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
#[non_exhaustive]
pub enum Profile {
    /// libutp's behaviour, the de-facto standard of BitTorrent clients.
    #[default]
    Libutp,
    /// The Portal Network rules (uTP over discv5): the acceptor may send data before the
    /// initiator does. Connection ids are chosen by the application with
    /// [`Endpoint::connect_with_id`](crate::utp::Endpoint::connect_with_id) and
    /// [`Endpoint::accept_with_id`](crate::utp::Endpoint::accept_with_id).
    Portal,
}

/// The sequence number a new connection's SYN carries.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
#[non_exhaustive]
pub enum InitialSeq {
    /// Random (libutp): harder to spoof.
    #[default]
    Random,
    /// 1, as BEP 29 says.
    One,
}

/// How the acceptor numbers its SYN-ACK (the `ST_STATE` answering a SYN).
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
#[non_exhaustive]
pub enum SynAckSeq {
    /// libutp (and the Portal spec): the SYN-ACK carries the acceptor's next sequence number
    /// without consuming it, so its first DATA has the same number, and the initiator sets
    /// its `ack_nr` to `seq_nr - 1`.
    #[default]
    Libutp,
    /// BEP 29: the initiator sets its `ack_nr` to the SYN-ACK's `seq_nr`, so the acceptor's
    /// first DATA has the next number.
    Bep29,
}

/// uTP settings for an [`Endpoint`](crate::utp::Endpoint) and its connections.
///
/// Build one with [`Config::default`] or [`Config::profile`], adjust it with the validated
/// setters, and share it as `Arc<Config>`. Each setting's documentation gives its default
/// and why.
#[derive(Clone)]
pub struct Config {
    max_connections: usize,
    max_pending_incoming: usize,
    incoming_timeout: Duration,
    expected_id_timeout: Duration,
    reset_limit_entries: usize,
    reset_limit_window: Duration,
    max_packet_size: usize,
    send_buffer: usize,
    recv_buffer: usize,
    max_reorder_packets: u16,
    max_sack_bytes: u8,
    initial_rto: Duration,
    min_rto: Duration,
    max_rto: Duration,
    max_retransmits: u32,
    max_syn_retransmits: u32,
    fast_retransmit_threshold: u32,
    ack_nr_slack: u16,
    keepalive_interval: Option<Duration>,
    idle_timeout: Option<Duration>,
    zero_window_probe: Duration,
    handshake_timeout: Duration,
    time_wait: Duration,
    nagle: bool,
    initial_seq: InitialSeq,
    synack_seq: SynAckSeq,
    acceptor_sends_first: bool,
    resend_synack: bool,
    congestion: Arc<dyn ControllerFactory>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_connections: 3000,
            max_pending_incoming: 64,
            incoming_timeout: Duration::from_secs(10),
            expected_id_timeout: Duration::from_secs(20),
            reset_limit_entries: 1000,
            reset_limit_window: Duration::from_secs(10),
            max_packet_size: 1402,
            send_buffer: 1 << 20,
            recv_buffer: 1 << 20,
            max_reorder_packets: 1024,
            max_sack_bytes: 128,
            initial_rto: Duration::from_secs(3),
            min_rto: Duration::from_secs(1),
            max_rto: Duration::from_secs(60),
            max_retransmits: 4,
            max_syn_retransmits: 2,
            fast_retransmit_threshold: 3,
            ack_nr_slack: 3,
            keepalive_interval: Some(Duration::from_secs(29)),
            idle_timeout: None,
            zero_window_probe: Duration::from_secs(15),
            handshake_timeout: Duration::from_secs(30),
            time_wait: Duration::from_secs(3),
            nagle: true,
            initial_seq: InitialSeq::Random,
            synack_seq: SynAckSeq::Libutp,
            acceptor_sends_first: false,
            resend_synack: true,
            congestion: Arc::new(LedbatConfig::default()),
        }
    }
}

settings! {
    /// The most connections an endpoint holds at once, including ones waiting for a SYN
    /// after [`accept_with_id`](crate::utp::Endpoint::accept_with_id). SYNs beyond it are
    /// refused with `ST_RESET`. Default 3000, libutp's limit.
    max_connections / set_max_connections: usize, "at least 1", |v| *v >= 1;
    /// The most incoming SYNs waiting for [`accept`](crate::utp::Endpoint::accept) or
    /// [`refuse`](crate::utp::Endpoint::refuse); further SYNs are refused. Default 64.
    max_pending_incoming / set_max_pending_incoming: usize, "at least 1", |v| *v >= 1;
    /// How long an incoming SYN waits for the application before it is refused. It also
    /// bounds how early a Portal SYN may arrive before its `accept_with_id`. Default 10 s:
    /// an initiator with libutp's timers has given up by then.
    incoming_timeout / set_incoming_timeout: Duration, "non-zero", |v| !v.is_zero();
    /// How long [`accept_with_id`](crate::utp::Endpoint::accept_with_id) waits for the
    /// SYN before the connection fails with a timeout. Default 20 s (ethereum/utp's choice).
    expected_id_timeout / set_expected_id_timeout: Duration, "non-zero", |v| !v.is_zero();
    /// How many recent `ST_RESET`s to unknown connections are remembered to suppress
    /// repeats; when the table is full no further RESETs are sent. Default 1000 (libutp).
    reset_limit_entries / set_reset_limit_entries: usize, "any value", |_v| true;
    /// How long a sent RESET suppresses another for the same packet. Default 10 s (libutp).
    reset_limit_window / set_reset_limit_window: Duration, "any value", |_v| true;
    /// The largest uTP packet sent, header included (the UDP payload). Default 1402 bytes,
    /// libutp's figure for IPv4 after tunnel overheads, so packets pass PPPoE and VPN links
    /// unfragmented.
    max_packet_size / set_max_packet_size: usize, "between 150 and 65507", |v| (150..=65_507).contains(v);
    /// Send buffer: how many bytes the application may have queued and unacknowledged.
    /// Also caps the congestion window. Default 1 MiB (libutp's `UTP_SNDBUF`).
    send_buffer / set_send_buffer: usize, "at least 1500", |v| *v >= 1500;
    /// Receive buffer: in-order bytes not yet read plus out-of-order bytes held; the free
    /// part is advertised as the window. Default 1 MiB (libutp's `UTP_RCVBUF`).
    recv_buffer / set_recv_buffer: usize, "at least 1500", |v| *v >= 1500;
    /// How far ahead of the next expected packet a packet may be and still be kept for
    /// reordering; further ones are dropped. Default 1024 packets (libutp).
    max_reorder_packets / set_max_reorder_packets: u16, "between 2 and 32768", |v| (2..=32_768).contains(v);
    /// The longest selective-ACK bitmask sent, in bytes; masks are sized to the reorder
    /// span in multiples of 4. Default 128 (covers the whole reorder window); libutp always
    /// sends 4 and accepts any length.
    max_sack_bytes / set_max_sack_bytes: u8, "a multiple of 4 from 4 to 252", |v| *v >= 4 && *v % 4 == 0 && *v <= 252;
    /// Retransmission timeout before the first RTT sample. Default 3 s (libutp).
    initial_rto / set_initial_rto: Duration, "non-zero", |v| !v.is_zero();
    /// The smallest retransmission timeout. Default 1 s (libutp); lower it for
    /// low-latency networks.
    min_rto / set_min_rto: Duration, "non-zero", |v| !v.is_zero();
    /// The largest retransmission timeout, backoff included. Default 60 s.
    max_rto / set_max_rto: Duration, "non-zero", |v| !v.is_zero();
    /// Consecutive timeouts after which a connection fails with
    /// [`ConnectionError::TimedOut`](crate::utp::ConnectionError::TimedOut). Default 4 (libutp).
    max_retransmits / set_max_retransmits: u32, "at least 1", |v| *v >= 1;
    /// Consecutive SYN timeouts after which `connect` fails. Default 2 (libutp).
    max_syn_retransmits / set_max_syn_retransmits: u32, "at least 1", |v| *v >= 1;
    /// Duplicate ACKs (or packets selectively acknowledged past a hole) that trigger a fast
    /// retransmit. Default 3.
    fast_retransmit_threshold / set_fast_retransmit_threshold: u32, "at least 1", |v| *v >= 1;
    /// Packets whose `ack_nr` is more than this many packets behind what is in flight, or
    /// ahead of what was sent, are ignored as spoofed. Default 3 (libutp).
    ack_nr_slack / set_ack_nr_slack: u16, "any value", |_v| true;
    /// After this long without sending, a connection sends a keepalive (a duplicate ACK)
    /// to keep NAT mappings open. Default 29 s (libutp). `None` disables keepalives.
    keepalive_interval / set_keepalive_interval: Option<Duration>, "non-zero", |v| v.is_none_or(|d| !d.is_zero());
    /// A connection that hears nothing from its peer for this long fails with
    /// [`ConnectionError::TimedOut`](crate::utp::ConnectionError::TimedOut). Default `None`
    /// (libutp has no idle timeout: only unacknowledged data times out).
    idle_timeout / set_idle_timeout: Option<Duration>, "non-zero", |v| v.is_none_or(|d| !d.is_zero());
    /// After the peer advertises a zero window, wait this long and then probe with one
    /// packet. Default 15 s (libutp).
    zero_window_probe / set_zero_window_probe: Duration, "non-zero", |v| !v.is_zero();
    /// How long an accepted connection waits for its handshake to finish (libutp: the
    /// initiator's first DATA) before it is dropped. Default 30 s.
    handshake_timeout / set_handshake_timeout: Duration, "non-zero", |v| !v.is_zero();
    /// After a connection has closed, its state lingers this long to re-acknowledge a
    /// retransmitted FIN instead of answering it with a RESET. Default 3 s.
    time_wait / set_time_wait: Duration, "any value", |_v| true;
    /// Hold a partly filled packet while other data is unacknowledged, so small writes
    /// coalesce (as libutp does). Default on.
    nagle / set_nagle: bool, "any value", |_v| true;
    /// The SYN's sequence number. Default random (libutp); BEP 29 uses 1.
    initial_seq / set_initial_seq: InitialSeq, "any value", |_v| true;
    /// How the SYN-ACK is numbered. Default libutp's (and the Portal spec's).
    synack_seq / set_synack_seq: SynAckSeq, "any value", |_v| true;
    /// Whether the acceptor may send data before the initiator's first DATA. libutp
    /// (default `false`) waits, so a spoofed SYN cannot make it send to a victim; the Portal
    /// profile allows it because its transport authenticates peers.
    acceptor_sends_first / set_acceptor_sends_first: bool, "any value", |_v| true;
    /// Answer a retransmitted SYN for a connection being accepted with the SYN-ACK again.
    /// libutp ignores it, so a lost SYN-ACK makes the connect fail; default on, which
    /// interoperates with libutp initiators and recovers from the loss.
    resend_synack / set_resend_synack: bool, "any value", |_v| true;
}

impl Config {
    /// The settings of `profile`.
    pub fn profile(profile: Profile) -> Self {
        let mut config = Self::default();
        if profile == Profile::Portal {
            config.acceptor_sends_first = true;
        }
        config
    }

    /// The congestion controller factory. Default: [`LedbatConfig::default`].
    pub fn congestion(&self) -> &Arc<dyn ControllerFactory> {
        &self.congestion
    }

    /// Replaces the congestion controller (for example a [`LedbatConfig`] with another
    /// target delay, or a controller of your own).
    pub fn set_congestion(&mut self, factory: Arc<dyn ControllerFactory>) -> &mut Self {
        self.congestion = factory;
        self
    }

    /// The largest payload one packet carries.
    pub fn max_payload(&self) -> usize {
        self.max_packet_size - HEADER_LEN
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("max_connections", &self.max_connections)
            .field("max_pending_incoming", &self.max_pending_incoming)
            .field("max_packet_size", &self.max_packet_size)
            .field("send_buffer", &self.send_buffer)
            .field("recv_buffer", &self.recv_buffer)
            .field("acceptor_sends_first", &self.acceptor_sends_first)
            .field("synack_seq", &self.synack_seq)
            .field("initial_seq", &self.initial_seq)
            .field("congestion", &self.congestion)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use alloc::string::ToString;

    use super::*;

    #[test]
    fn defaults_are_libutps() {
        let c = Config::default();
        assert_eq!(c.max_packet_size(), 1402);
        assert_eq!(c.initial_rto(), Duration::from_secs(3));
        assert_eq!(c.min_rto(), Duration::from_secs(1));
        assert_eq!(c.max_retransmits(), 4);
        assert_eq!(c.keepalive_interval(), Some(Duration::from_secs(29)));
        assert!(!c.acceptor_sends_first());
        assert_eq!(c.synack_seq(), SynAckSeq::Libutp);
        assert_eq!(c.max_payload(), 1382);
    }

    #[test]
    fn portal_profile_lets_the_acceptor_send_first() {
        let c = Config::profile(Profile::Portal);
        assert!(c.acceptor_sends_first());
        assert_eq!(c.synack_seq(), SynAckSeq::Libutp, "the Portal spec follows libutp here");
    }

    #[test]
    fn setters_validate_and_say_what_to_fix() {
        let mut c = Config::default();
        let err = c.set_max_packet_size(20).unwrap_err();
        assert_eq!(err.to_string(), "max_packet_size must be between 150 and 65507, got 20");
        assert_eq!(c.max_packet_size(), 1402, "a refused value changes nothing");
        c.set_max_packet_size(1200).unwrap().set_nagle(false).unwrap();
        assert_eq!(c.max_packet_size(), 1200);
        assert!(!c.nagle());
        assert!(c.set_max_sack_bytes(6).is_err());
        assert!(c.set_idle_timeout(Some(Duration::ZERO)).is_err());
        assert!(c.set_idle_timeout(None).is_ok());
    }
}
