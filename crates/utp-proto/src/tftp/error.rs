//! Why a transfer failed: [`TransferError`].

use alloc::string::String;

use thiserror::Error;

use super::options::OackError;
use crate::wire::tftp::ErrorCode;

/// Why a [`Transfer`](super::Transfer) failed. Every variant says who gave up and why; the
/// ERROR packet the peer got (if any) carries the same reason.
#[derive(Clone, Debug, Eq, Error, PartialEq)]
#[non_exhaustive]
pub enum TransferError {
    /// The peer sent an ERROR packet.
    #[error("the peer sent ERROR {code}: {message}")]
    Peer {
        /// The code it sent.
        code: ErrorCode,
        /// Its message (lossily decoded, control characters replaced).
        message: String,
    },
    /// Nothing useful came back after every retransmission.
    #[error("timed out after {retries} retransmissions without an answer")]
    TimedOut {
        /// The retransmissions made.
        retries: u32,
    },
    /// The server's OACK was not acceptable; ERROR 8 was sent.
    #[error("refused the server's options: {0}")]
    OptionsRefused(OackError),
    /// The application aborted the transfer; the peer got this ERROR.
    #[error("aborted with ERROR {code}: {message}")]
    Aborted {
        /// The code sent to the peer.
        code: ErrorCode,
        /// The message sent to the peer.
        message: String,
    },
    /// The received size differs from the `tsize` the sender announced.
    #[error("received {received} bytes but the sender announced {announced}")]
    SizeMismatch {
        /// The size the sender announced.
        announced: u64,
        /// The bytes received.
        received: u64,
    },
}
