//! Errors of uTP operations.

/// Why a connection ended other than by an orderly close.
#[derive(Clone, Copy, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The peer refused the connection (`ST_RESET` in answer to our SYN).
    #[error("the peer refused the connection")]
    Refused,
    /// The peer reset the connection (`ST_RESET`).
    #[error("the peer reset the connection")]
    Reset,
    /// The peer stopped answering: retransmissions, the handshake, the idle timer or an
    /// expected connection id ran out of time.
    #[error("the peer did not answer in time")]
    TimedOut,
    /// The application reset the connection.
    #[error("the connection was reset locally")]
    LocallyReset,
}

/// Why [`Endpoint::connect`](crate::utp::Endpoint::connect) (or `connect_with_id`,
/// `accept_with_id`) could not start a connection.
#[derive(Clone, Copy, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The endpoint holds `max_connections` connections already; close some or raise the
    /// limit.
    #[error("too many connections: close some or raise Config::max_connections")]
    TooManyConnections,
    /// The connection id is already used with this peer; pick another.
    #[error("connection id {0} is already in use with this peer")]
    IdInUse(u16),
}

/// Why [`Endpoint::accept`](crate::utp::Endpoint::accept) failed.
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

/// Why a write was not accepted.
#[derive(Clone, Copy, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The send buffer is full; wait for [`Event::Writable`](crate::utp::Event::Writable).
    #[error("the send buffer is full")]
    Blocked,
    /// The write side was shut down (`shutdown` or `close` was called).
    #[error("the connection was shut down for writing")]
    Finished,
    /// The connection is closed or failed; the handle is no longer valid.
    #[error("the connection is closed")]
    Closed,
}

/// Why a read returned no data.
#[derive(Clone, Copy, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// Nothing to read yet; wait for [`Event::Readable`](crate::utp::Event::Readable).
    #[error("no data to read yet")]
    Blocked,
    /// The connection is closed or failed; the handle is no longer valid.
    #[error("the connection is closed")]
    Closed,
}
