//! TFTP settings shared by every [`Transfer`](super::Transfer) and the
//! [`Server`](super::Server): timers, retries, limits, and what the server grants.

use core::time::Duration;

use crate::config::settings;
use crate::wire::tftp::MAX_DATA_LEN;

/// Where block numbers go after 65535.
///
/// No RFC says; most peers (tftp-hpa, U-Boot, every server we probed) go to 0, some expect 1.
/// A receiver following this crate accepts the block either way only if it is configured the
/// same as the sender, so the setting must match the peer's.
#[derive(Clone, Copy, Debug, Default, Eq, Hash, PartialEq)]
pub enum Rollover {
    /// 65535 is followed by 0 (the common choice, and the default).
    #[default]
    ToZero,
    /// 65535 is followed by 1.
    ToOne,
}

/// Settings for TFTP transfers and the server.
///
/// Build one with [`Config::default`], adjust it with the validated setters, and share it as
/// `Arc<Config>`. Each setting's documentation gives its default and why.
#[derive(Clone, Debug)]
pub struct Config {
    timeout: Duration,
    min_timeout: Duration,
    max_timeout: Duration,
    max_retries: u32,
    unverified_retries: u32,
    dally: Duration,
    rollover: Rollover,
    send_buffer: usize,
    recv_buffer: usize,
    max_blksize: u16,
    max_windowsize: u16,
    max_stranger_replies: usize,
    max_pending_requests: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(1),
            min_timeout: Duration::from_millis(50),
            max_timeout: Duration::from_secs(8),
            max_retries: 5,
            unverified_retries: 1,
            dally: Duration::from_secs(1),
            rollover: Rollover::ToZero,
            send_buffer: 1 << 20,
            recv_buffer: 1 << 20,
            max_blksize: MAX_DATA_LEN as u16,
            max_windowsize: 64,
            max_stranger_replies: 8,
            max_pending_requests: 64,
        }
    }
}

settings! {
    /// The retransmission timeout before any round trip was measured, when the peer did not
    /// negotiate one with the `timeout` option; also the receiver's timeout. Default 1 s
    /// (tftp-hpa's and RFC 2349's customary value).
    timeout / set_timeout: Duration, "between 1 ms and 255 s", |v| {
        *v >= Duration::from_millis(1) && *v <= Duration::from_secs(255)
    };
    /// The floor of the adaptive retransmission timeout (RFC 1123 4.2.3.2). A sender measures
    /// the round trip of blocks sent once and retransmits after `srtt + 4 * rttvar`, but never
    /// sooner than this. Default 50 ms.
    min_timeout / set_min_timeout: Duration, "between 1 ms and 255 s", |v| {
        *v >= Duration::from_millis(1) && *v <= Duration::from_secs(255)
    };
    /// The ceiling of the timeout after exponential backoff. Default 8 s.
    max_timeout / set_max_timeout: Duration, "between 1 ms and 255 s", |v| {
        *v >= Duration::from_millis(1) && *v <= Duration::from_secs(255)
    };
    /// How many consecutive timeouts a transfer survives; the next one fails it with
    /// [`TransferError::TimedOut`](super::TransferError::TimedOut). Default 5.
    max_retries / set_max_retries: u32, "between 1 and 100", |v| (1..=100).contains(v);
    /// How many times a server retransmits DATA toward a peer that has not answered yet (its
    /// read request may have been spoofed). Kept small so that one forged request cannot make
    /// the server flood a victim with blocks: without options a read request is answered by at
    /// most `1 + this` DATA packets. With options the server sends only its OACK, no larger
    /// than a request, until ACK 0 proves the peer real; the OACK is retried like anything
    /// else. Default 1.
    unverified_retries / set_unverified_retries: u32, "at most 100", |v| *v <= 100;
    /// How long the receiver of the last block stays to acknowledge it again if the sender
    /// repeats it (its acknowledgement was lost); each repeat starts the wait again, so a
    /// dally longer than the sender's [`max_timeout`](Self::max_timeout) answers every repeat
    /// on a very lossy path. Default 1 s. Zero disables dallying.
    dally / set_dally: Duration, "at most 255 s", |v| *v <= Duration::from_secs(255);
    /// Where block numbers go after 65535. Default [`Rollover::ToZero`].
    rollover / set_rollover: Rollover, "any value", |_v| true;
    /// Bytes the sending side buffers ahead of the window (the window's own blocks are always
    /// kept for retransmission on top of this). Default 1 MiB.
    send_buffer / set_send_buffer: usize, "at least 1", |v| *v >= 1;
    /// Bytes received and not yet read that the receiving side holds; a block that does not
    /// fit is dropped and fetched again once the application reads. At least two windows are
    /// always accepted. Default 1 MiB.
    recv_buffer / set_recv_buffer: usize, "at least 1", |v| *v >= 1;
    /// The largest `blksize` a server grants (a larger request is lowered to it, RFC 2348).
    /// Default 65464, the protocol's maximum.
    max_blksize / set_max_blksize: u16, "between 8 and 65464", |v| {
        (8..=MAX_DATA_LEN as u16).contains(v)
    };
    /// The largest `windowsize` a server grants (a larger request is lowered to it, RFC 7440).
    /// Default 64: beyond it, window x blksize outgrows common socket buffers.
    max_windowsize / set_max_windowsize: u16, "between 1 and 32768", |v| (1..=32768).contains(v);
    /// ERROR 5 replies to strangers (packets from the wrong address or port) that may wait to
    /// be sent; more strangers are dropped and counted. Default 8.
    max_stranger_replies / set_max_stranger_replies: usize, "any value", |_v| true;
    /// Requests a [`Server`](super::Server) holds until the application takes them; more are
    /// dropped and counted. Default 64.
    max_pending_requests / set_max_pending_requests: usize, "at least 1", |v| *v >= 1;
}
