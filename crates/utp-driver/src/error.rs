//! Errors of the driver's API, and how they map to [`std::io::ErrorKind`].

use std::io;

use utp_proto::utp::{AcceptError, ConnectError, ConnectionError};

/// Why a socket or stream operation failed. Every public method returns it inside an
/// [`io::Error`] whose kind is chosen from the table in [`From<Error> for io::Error`];
/// `io::Error::get_ref` and `downcast` give it back.
#[derive(Clone, Copy, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection ended abnormally.
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    /// A connection could not be opened.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// An incoming connection could not be accepted.
    #[error(transparent)]
    Accept(#[from] AcceptError),
    /// The stream was shut down for writing (`shutdown`, `poll_close`).
    #[error("the stream was shut down for writing")]
    WriteShutdown,
    /// The driver task stopped: its transport failed or the runtime dropped it.
    #[error("the socket's driver stopped")]
    DriverStopped,
}

impl From<Error> for io::Error {
    /// | error | kind |
    /// |---|---|
    /// | peer refused (`ST_RESET` to our SYN) | `ConnectionRefused` |
    /// | peer reset | `ConnectionReset` |
    /// | peer stopped answering | `TimedOut` |
    /// | reset locally | `ConnectionAborted` |
    /// | too many connections | `QuotaExceeded` |
    /// | connection id in use | `AddrInUse` |
    /// | incoming connection expired | `NotFound` |
    /// | write after shutdown | `BrokenPipe` |
    /// | driver stopped | `NotConnected` |
    fn from(e: Error) -> Self {
        let kind = match e {
            Error::Connection(ConnectionError::Refused) => io::ErrorKind::ConnectionRefused,
            Error::Connection(ConnectionError::Reset) => io::ErrorKind::ConnectionReset,
            Error::Connection(ConnectionError::TimedOut) => io::ErrorKind::TimedOut,
            Error::Connection(ConnectionError::LocallyReset) => io::ErrorKind::ConnectionAborted,
            Error::Connection(_) => io::ErrorKind::Other,
            Error::Connect(ConnectError::TooManyConnections)
            | Error::Accept(AcceptError::TooManyConnections) => io::ErrorKind::QuotaExceeded,
            Error::Connect(ConnectError::IdInUse(_)) => io::ErrorKind::AddrInUse,
            Error::Connect(_) => io::ErrorKind::Other,
            Error::Accept(AcceptError::Unknown) => io::ErrorKind::NotFound,
            Error::Accept(_) => io::ErrorKind::Other,
            Error::WriteShutdown => io::ErrorKind::BrokenPipe,
            Error::DriverStopped => io::ErrorKind::NotConnected,
        };
        io::Error::new(kind, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_table_and_the_error_comes_back() {
        let cases = [
            (Error::Connection(ConnectionError::Refused), io::ErrorKind::ConnectionRefused),
            (Error::Connection(ConnectionError::Reset), io::ErrorKind::ConnectionReset),
            (Error::Connection(ConnectionError::TimedOut), io::ErrorKind::TimedOut),
            (Error::Connection(ConnectionError::LocallyReset), io::ErrorKind::ConnectionAborted),
            (Error::Connect(ConnectError::TooManyConnections), io::ErrorKind::QuotaExceeded),
            (Error::Connect(ConnectError::IdInUse(7)), io::ErrorKind::AddrInUse),
            (Error::WriteShutdown, io::ErrorKind::BrokenPipe),
            (Error::DriverStopped, io::ErrorKind::NotConnected),
        ];
        for (error, kind) in cases {
            let io = io::Error::from(error);
            assert_eq!(io.kind(), kind, "{error}");
            assert_eq!(io.get_ref().and_then(|e| e.downcast_ref::<Error>()), Some(&error));
        }
    }
}
