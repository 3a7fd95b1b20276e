//! Why a TFTP client transfer failed: [`TftpError`], and how it maps to [`io::ErrorKind`].

use std::io;

use utp_proto::tftp::{RequestError, TransferError};
use utp_proto::wire::tftp::ErrorCode;

/// Why a [`get`](super::get) or [`put`](super::put) failed.
///
/// `From<TftpError> for io::Error` picks a kind from the table there; `io::Error::get_ref`
/// and `downcast` give the `TftpError` back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TftpError {
    /// The request cannot be made: an option out of range, a bad remote filename, `mail`
    /// mode, or a request longer than 512 bytes. Nothing was sent.
    #[error("invalid request: {0}")]
    Request(#[from] RequestError),
    /// The transfer failed: the server's ERROR, no answer, an unacceptable OACK, or a size
    /// different from the announced one.
    #[error(transparent)]
    Transfer(#[from] TransferError),
    /// Reading the source or writing the sink failed; the server was told with an ERROR.
    #[error("{what}: {source}")]
    File {
        /// What was being done ("cannot read the source", "cannot write the sink").
        what: &'static str,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The UDP socket could not be opened or failed.
    #[error("UDP socket: {0}")]
    Socket(#[source] io::Error),
}

impl TftpError {
    /// The ERROR the server sent, if that is why the transfer failed.
    pub fn peer_error(&self) -> Option<(ErrorCode, &str)> {
        match self {
            Self::Transfer(TransferError::Peer { code, message }) => Some((*code, message)),
            _ => None,
        }
    }
}

impl From<TftpError> for io::Error {
    /// | error | kind |
    /// |---|---|
    /// | invalid request | `InvalidInput` |
    /// | server ERROR 1 (file not found) | `NotFound` |
    /// | server ERROR 2 (access violation) | `PermissionDenied` |
    /// | server ERROR 3 (disk full) | `StorageFull` |
    /// | server ERROR 6 (file already exists) | `AlreadyExists` |
    /// | any other server ERROR | `Other` |
    /// | no answer | `TimedOut` |
    /// | OACK refused, size mismatch | `InvalidData` |
    /// | aborted locally | `Interrupted` |
    /// | file or socket error | that error's kind |
    fn from(e: TftpError) -> Self {
        let kind = match &e {
            TftpError::Request(_) => io::ErrorKind::InvalidInput,
            TftpError::Transfer(TransferError::Peer { code, .. }) => match code {
                ErrorCode::FileNotFound => io::ErrorKind::NotFound,
                ErrorCode::AccessViolation => io::ErrorKind::PermissionDenied,
                ErrorCode::DiskFull => io::ErrorKind::StorageFull,
                ErrorCode::FileAlreadyExists => io::ErrorKind::AlreadyExists,
                _ => io::ErrorKind::Other,
            },
            TftpError::Transfer(TransferError::TimedOut { .. }) => io::ErrorKind::TimedOut,
            TftpError::Transfer(
                TransferError::OptionsRefused(_) | TransferError::SizeMismatch { .. },
            ) => io::ErrorKind::InvalidData,
            TftpError::Transfer(TransferError::Aborted { .. }) => io::ErrorKind::Interrupted,
            TftpError::Transfer(_) => io::ErrorKind::Other,
            TftpError::File { source, .. } | TftpError::Socket(source) => source.kind(),
        };
        io::Error::new(kind, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_table_and_the_error_comes_back() {
        let peer = |code| TransferError::Peer { code, message: "m".into() };
        let cases = [
            (TftpError::Request(RequestError::Filename), io::ErrorKind::InvalidInput),
            (peer(ErrorCode::FileNotFound).into(), io::ErrorKind::NotFound),
            (peer(ErrorCode::AccessViolation).into(), io::ErrorKind::PermissionDenied),
            (peer(ErrorCode::DiskFull).into(), io::ErrorKind::StorageFull),
            (peer(ErrorCode::FileAlreadyExists).into(), io::ErrorKind::AlreadyExists),
            (peer(ErrorCode::NotDefined).into(), io::ErrorKind::Other),
            (TransferError::TimedOut { retries: 5 }.into(), io::ErrorKind::TimedOut),
            (
                TftpError::File {
                    what: "cannot write the sink",
                    source: io::ErrorKind::BrokenPipe.into(),
                },
                io::ErrorKind::BrokenPipe,
            ),
        ];
        for (error, kind) in cases {
            let text = error.to_string();
            let io = io::Error::from(error);
            assert_eq!(io.kind(), kind, "{text}");
            let back = io.get_ref().and_then(|e| e.downcast_ref::<TftpError>());
            assert_eq!(back.map(ToString::to_string), Some(text));
        }
    }

    #[test]
    fn peer_error_is_only_the_servers() {
        let e = TftpError::from(TransferError::Peer {
            code: ErrorCode::FileNotFound,
            message: "file not found".into(),
        });
        assert_eq!(e.peer_error(), Some((ErrorCode::FileNotFound, "file not found")));
        assert_eq!(TftpError::from(TransferError::TimedOut { retries: 1 }).peer_error(), None);
    }
}
