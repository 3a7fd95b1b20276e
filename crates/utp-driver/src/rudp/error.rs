//! Errors of the rudp API, and how they map to [`std::io::ErrorKind`].

use std::io;

use utp_proto::rudp::{
    AcceptError, CloseCode, CloseError, CloseReason, ConnectError, SendDirectError, SendError,
};

/// Why a rudp socket or connection operation failed. Every public method returns it inside
/// an [`io::Error`] whose kind is chosen from the table in [`From<Error> for io::Error`];
/// `io::Error::get_ref` and `downcast` give it back, with the peer's close code and reason.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection ended (other than by an orderly close seen by `recv`).
    #[error(transparent)]
    Closed(CloseReason),
    /// The listener refused the connection (its CLOSE came during the handshake), or it
    /// did not answer.
    #[error("connection failed: {0}")]
    Refused(CloseReason),
    /// A connection could not be opened.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// An incoming connection could not be accepted.
    #[error(transparent)]
    Accept(#[from] AcceptError),
    /// A message was refused (too large); nothing of it was sent.
    #[error(transparent)]
    Send(SendError),
    /// A direct datagram was refused (too large); nothing was sent.
    #[error(transparent)]
    SendDirect(SendDirectError),
    /// `close` refused its arguments.
    #[error(transparent)]
    Close(CloseError),
    /// The driver task stopped: its transport failed or the runtime dropped it.
    #[error("the socket's driver stopped")]
    DriverStopped,
}

impl From<Error> for io::Error {
    /// | error | kind |
    /// |---|---|
    /// | refused by the listener, or no answer to the handshake | `ConnectionRefused`, `TimedOut` |
    /// | the peer closed with code 0 (for `send`) | `BrokenPipe` |
    /// | the peer closed with another code | `ConnectionAborted` |
    /// | the peer forgot the connection (code 5) | `ConnectionReset` |
    /// | the peer went silent (pings unanswered) | `TimedOut` |
    /// | the peer broke a rule or a limit | `InvalidData` |
    /// | closed locally | `NotConnected` |
    /// | message or datagram too large, bad close arguments | `InvalidInput` |
    /// | too many connections | `QuotaExceeded` |
    /// | incoming connection expired | `NotFound` |
    /// | driver stopped | `NotConnected` |
    fn from(e: Error) -> Self {
        let kind = match &e {
            Error::Refused(CloseReason::HandshakeTimeout) => io::ErrorKind::TimedOut,
            Error::Refused(_) => io::ErrorKind::ConnectionRefused,
            Error::Closed(reason) => match reason {
                CloseReason::Peer { code: CloseCode::Normal, .. } => io::ErrorKind::BrokenPipe,
                CloseReason::Peer { code: CloseCode::UnknownConnection, .. } => {
                    io::ErrorKind::ConnectionReset
                }
                CloseReason::Peer { .. } => io::ErrorKind::ConnectionAborted,
                CloseReason::PingTimeout { .. } | CloseReason::HandshakeTimeout => {
                    io::ErrorKind::TimedOut
                }
                CloseReason::ProtocolViolation(_) | CloseReason::LimitExceeded(_) => {
                    io::ErrorKind::InvalidData
                }
                _ => io::ErrorKind::NotConnected,
            },
            Error::Connect(ConnectError::TooManyConnections)
            | Error::Accept(AcceptError::TooManyConnections) => io::ErrorKind::QuotaExceeded,
            Error::Connect(_) => io::ErrorKind::Other,
            Error::Accept(AcceptError::Unknown) => io::ErrorKind::NotFound,
            Error::Accept(_) => io::ErrorKind::Other,
            Error::Send(_) | Error::SendDirect(_) | Error::Close(_) => io::ErrorKind::InvalidInput,
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
        let peer = |code| CloseReason::Peer { code, reason: "why".into() };
        let cases = [
            (Error::Refused(peer(CloseCode::Normal)), io::ErrorKind::ConnectionRefused),
            (Error::Refused(CloseReason::HandshakeTimeout), io::ErrorKind::TimedOut),
            (Error::Closed(peer(CloseCode::Normal)), io::ErrorKind::BrokenPipe),
            (Error::Closed(peer(CloseCode::Application(9))), io::ErrorKind::ConnectionAborted),
            (Error::Closed(peer(CloseCode::UnknownConnection)), io::ErrorKind::ConnectionReset),
            (Error::Closed(CloseReason::PingTimeout { unanswered: 4 }), io::ErrorKind::TimedOut),
            (Error::Closed(CloseReason::ProtocolViolation("x")), io::ErrorKind::InvalidData),
            (
                Error::Closed(CloseReason::Local { code: CloseCode::Normal }),
                io::ErrorKind::NotConnected,
            ),
            (Error::Send(SendError::TooLarge { len: 10, max: 5 }), io::ErrorKind::InvalidInput),
            (Error::Connect(ConnectError::TooManyConnections), io::ErrorKind::QuotaExceeded),
            (Error::DriverStopped, io::ErrorKind::NotConnected),
        ];
        for (error, kind) in cases {
            let io = io::Error::from(error.clone());
            assert_eq!(io.kind(), kind, "{error}");
            assert_eq!(io.get_ref().and_then(|e| e.downcast_ref::<Error>()), Some(&error));
        }
        let text = io::Error::from(Error::Closed(peer(CloseCode::Application(9)))).to_string();
        assert!(text.contains("9") && text.contains("why"), "the peer's code and reason: {text}");
    }
}
