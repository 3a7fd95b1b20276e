//! Errors of rudp operations, and why a connection ended.

use alloc::string::String;

use crate::wire::rudp::CloseCode;

/// Why a connection ended: [`Event::Closed`](crate::rudp::Event::Closed) carries it, and
/// calls on the closed connection report it.
///
/// [`is_normal`](Self::is_normal) tells an orderly close (code 0, by either side) from a
/// failure.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CloseReason {
    /// This side called [`close`](crate::rudp::Endpoint::close).
    #[error("closed locally with code {code}")]
    Local {
        /// The code we sent.
        code: CloseCode,
    },
    /// The peer sent CLOSE (during the handshake: it refused the connection). Code 5
    /// ([`CloseCode::UnknownConnection`]) means the peer no longer knows the connection:
    /// it restarted or forgot it.
    #[error("closed by the peer with code {code}{}", reason_suffix(reason))]
    Peer {
        /// The peer's code.
        code: CloseCode,
        /// The peer's reason, for people; may be empty.
        reason: String,
    },
    /// The peer answered none of our last `unanswered` pings (CLOSE code 1 was sent).
    #[error("peer silent: {unanswered} pings unanswered")]
    PingTimeout {
        /// How many pings went unanswered.
        unanswered: u32,
    },
    /// The handshake got no acceptance within `handshake_timeout`.
    #[error("the peer did not answer the handshake in time")]
    HandshakeTimeout,
    /// The peer broke a rule of the protocol; we sent CLOSE code 2 saying which.
    #[error("protocol violation by the peer: {0}")]
    ProtocolViolation(&'static str),
    /// The peer exceeded one of our limits; we sent CLOSE code 3 saying which.
    #[error("the peer exceeded a limit: {0}")]
    LimitExceeded(&'static str),
}

fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() { String::new() } else { alloc::format!(": {reason}") }
}

impl CloseReason {
    /// Whether the connection ended in order: closed with code 0 by either side.
    pub fn is_normal(&self) -> bool {
        matches!(
            self,
            Self::Local { code: CloseCode::Normal } | Self::Peer { code: CloseCode::Normal, .. }
        )
    }

    /// The code that went (or came) over the wire; `None` for a handshake timeout, which
    /// sends no CLOSE (the peer never answered).
    pub fn code(&self) -> Option<CloseCode> {
        match self {
            Self::Local { code } | Self::Peer { code, .. } => Some(*code),
            Self::PingTimeout { .. } => Some(CloseCode::PingTimeout),
            Self::HandshakeTimeout => None,
            Self::ProtocolViolation(_) => Some(CloseCode::ProtocolViolation),
            Self::LimitExceeded(_) => Some(CloseCode::LimitExceeded),
        }
    }
}

/// Why [`Endpoint::connect`](crate::rudp::Endpoint::connect) could not start a connection.
#[derive(Clone, Copy, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The endpoint holds `max_connections` connections already; close some or raise the
    /// limit.
    #[error("too many connections: close some or raise Config::max_connections")]
    TooManyConnections,
}

/// Why [`Endpoint::accept`](crate::rudp::Endpoint::accept) failed.
#[derive(Clone, Copy, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AcceptError {
    /// The incoming connection is unknown: already accepted, refused or expired.
    #[error("no such incoming connection: already accepted, refused or expired")]
    Unknown,
    /// The endpoint holds `max_connections` connections already.
    #[error("too many connections: close some or raise Config::max_connections")]
    TooManyConnections,
}

/// Why [`Endpoint::send`](crate::rudp::Endpoint::send) did not take a message. Nothing of
/// the message was queued.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The message is larger than the peer accepts or than the send buffer holds: split it,
    /// or raise the peer's `max_message` and this side's `send_buffer`.
    #[error("message of {len} bytes is too large: at most {max} bytes on this connection")]
    TooLarge {
        /// The message's length.
        len: usize,
        /// The largest message this connection can send.
        max: usize,
    },
    /// The send buffer is full; wait for [`Event::Writable`](crate::rudp::Event::Writable).
    #[error("the send buffer is full")]
    Blocked,
    /// The handshake has not finished; wait for
    /// [`Event::Connected`](crate::rudp::Event::Connected).
    #[error("the connection is not established yet")]
    NotConnected,
    /// The connection is closed (or the handle is stale).
    #[error("the connection is closed")]
    Closed,
}

/// Why [`Endpoint::send_direct`](crate::rudp::Endpoint::send_direct) did not take a
/// datagram. Nothing was queued.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SendDirectError {
    /// The payload does not fit one datagram (`datagram_size - 10` bytes); direct
    /// datagrams are never split or truncated.
    #[error("direct datagram of {len} bytes is too large: at most {max} bytes")]
    TooLarge {
        /// The payload's length.
        len: usize,
        /// The largest direct payload.
        max: usize,
    },
    /// `direct_queue` datagrams wait to be sent already; wait for
    /// [`Event::Writable`](crate::rudp::Event::Writable).
    #[error("the direct datagram queue is full")]
    Blocked,
    /// The handshake has not finished.
    #[error("the connection is not established yet")]
    NotConnected,
    /// The connection is closed (or the handle is stale).
    #[error("the connection is closed")]
    Closed,
}

/// Why a receive returned nothing.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// Nothing to receive yet; wait for [`Event::Readable`](crate::rudp::Event::Readable)
    /// (messages) or [`Event::Direct`](crate::rudp::Event::Direct) (direct datagrams).
    #[error("nothing to receive yet")]
    Blocked,
    /// The connection has ended and everything it delivered has been received.
    #[error("the connection is closed")]
    Closed,
}

/// Why [`Endpoint::close`](crate::rudp::Endpoint::close) refused. The connection was left
/// as it was.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CloseError {
    /// The reason is longer than 512 bytes or than fits a datagram; shorten it.
    #[error("close reason of {len} bytes is too long: at most {max} bytes")]
    ReasonTooLong {
        /// The reason's length.
        len: usize,
        /// The longest reason accepted.
        max: usize,
    },
    /// [`CloseCode::Application`] with a code that has its own variant (below 4, or 5):
    /// use that variant; or [`CloseCode::UnknownConnection`] (5), which only the endpoint
    /// sends, to a packet of a connection it does not have.
    #[error(
        "close code {0} is reserved: use CloseCode::Normal, a protocol code 1 to 3, or an application code of 4 or above 6"
    )]
    ReservedCode(u16),
    /// The connection is already closed (or the handle is stale).
    #[error("the connection is closed")]
    Closed,
}
