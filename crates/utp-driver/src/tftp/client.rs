//! The TFTP client: [`get`] and [`put`], one transfer each on a socket of its own.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use utp_proto::tftp::{Config, Negotiated, OptionRequest, Transfer, TransferStats};
use utp_proto::wire::tftp::Mode;

use super::error::TftpError;
use super::task::{
    Clock, Failure, Outcome, Pump, ReadSource, SinkSide, SourceSide, WriteSink, bind_socket,
    unspecified_for,
};
use crate::runtime::Runtime;

/// What a client asks for and how its transfers behave.
///
/// The [`Default`] is a plain RFC 1350 request (no options) in octet mode with the engine's
/// default [`Config`]. Asking for `blksize` and `windowsize` is much faster; a server that
/// ignores the options gets the RFC 1350 defaults (512-byte blocks, one at a time) without
/// further ado.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// The options to ask for. In a [`get`], a `tsize` (any value) asks the server for the
    /// file's size, which then shows in [`Progress::total`] and is checked on arrival; in a
    /// [`put`], `tsize` announces the size of the source (let a server refuse a file too
    /// large for it before anything is sent) and should be the exact length.
    pub request: OptionRequest,
    /// The transfer mode: [`Mode::Octet`] moves bytes as they are; [`Mode::Netascii`]
    /// converts line ends to and from the wire's CR LF.
    pub mode: Mode,
    /// The engine's settings: timeouts, retries, dally, block-number rollover, buffers.
    pub protocol: Arc<Config>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            request: OptionRequest::NONE,
            mode: Mode::Octet,
            protocol: Arc::new(Config::default()),
        }
    }
}

/// How far a transfer is, given to the progress callback of [`get`] and [`put`] whenever
/// it changes.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Progress {
    /// Bytes received so far ([`get`]) or acknowledged by the server ([`put`]).
    pub bytes: u64,
    /// The size, when known: the server's `tsize` answer ([`get`]) or the `tsize` announced
    /// ([`put`]).
    pub total: Option<u64>,
}

/// What a completed transfer moved.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Bytes written to the sink ([`get`]) or read from the source ([`put`]).
    pub bytes: u64,
    /// From sending the request until the data was complete: the last block received, or
    /// the last acknowledgement. The receiver's dally afterwards is not included.
    pub elapsed: Duration,
    /// The options the transfer ran with.
    pub negotiated: Negotiated,
    /// The server's transfer ID: its address and the port that served the transfer.
    pub peer: SocketAddr,
    /// The transfer's counters.
    pub stats: TransferStats,
}

/// Reads the file `remote` from the TFTP server at `server` (usually port 69) into `sink`.
///
/// The request goes from a fresh socket (the unspecified address of the server's family,
/// port 0) and the transfer locks onto the port that answers. The sink is a blocking
/// writer: it is written on the `blocking` thread pool in chunks of 256 KiB, and flushed
/// once everything arrived. `progress` is called as bytes arrive.
///
/// The future resolves once the data is complete and flushed **and** the receiver's dally
/// ([`Config::dally`], 1 s by default) is over: during it, a repeated last block (our final
/// ACK was lost) is acknowledged again, so that the server finishes cleanly too. Dropping
/// the future abandons the transfer; the server notices by its timeout.
///
/// # Errors
///
/// [`TftpError::Request`] if the request cannot be made (nothing is sent);
/// [`TftpError::Socket`] if no socket can be opened; [`TftpError::Transfer`] if the server
/// refuses (its ERROR is in [`TftpError::peer_error`]) or stops answering, or the size
/// differs from its `tsize`; [`TftpError::File`] if writing the sink fails (the server is
/// told with an ERROR). Whatever was written to the sink before a failure stays there.
pub async fn get<W>(
    runtime: Arc<dyn Runtime>,
    server: SocketAddr,
    remote: &str,
    sink: W,
    options: &ClientOptions,
    mut progress: impl FnMut(Progress) + Send,
) -> Result<Summary, TftpError>
where
    W: Write + Send + 'static,
{
    let clock = Clock::new(runtime.clone());
    let transfer = Transfer::client_read(
        options.protocol.clone(),
        server,
        remote,
        options.mode,
        options.request,
        clock.now(),
    )?;
    let (socket, _) = bind_socket(&runtime, unspecified_for(server)).map_err(TftpError::Socket)?;
    let sink =
        SinkSide::new(WriteSink { writer: sink, message: "the client cannot write the file" });
    let outcome = Pump::new(clock, socket, transfer, sink)
        .run(|bytes, transfer| {
            progress(Progress { bytes, total: transfer.negotiated().tsize });
        })
        .await;
    summarize(outcome, "cannot write the sink")
}

/// Writes `source` to the file `remote` on the TFTP server at `server` (usually port 69).
///
/// As [`get`], the other way: the source is a blocking reader, read on the `blocking`
/// thread pool in chunks of 256 KiB until it returns 0 (end of file). `progress` is called as
/// the server acknowledges bytes, with `options.request.tsize` as the total. The future
/// resolves once the server acknowledged the last block.
///
/// # Errors
///
/// As for [`get`]; [`TftpError::File`] if reading the source fails. A server that refuses
/// the upload (writes disabled, file exists, too large) answers with an ERROR, in
/// [`TftpError::peer_error`].
pub async fn put<R>(
    runtime: Arc<dyn Runtime>,
    server: SocketAddr,
    remote: &str,
    source: R,
    options: &ClientOptions,
    mut progress: impl FnMut(Progress) + Send,
) -> Result<Summary, TftpError>
where
    R: Read + Send + 'static,
{
    let clock = Clock::new(runtime.clone());
    let transfer = Transfer::client_write(
        options.protocol.clone(),
        server,
        remote,
        options.mode,
        options.request,
        clock.now(),
    )?;
    let (socket, _) = bind_socket(&runtime, unspecified_for(server)).map_err(TftpError::Socket)?;
    let source =
        SourceSide::new(ReadSource { reader: source, message: "the client cannot read the file" });
    let total = options.request.tsize;
    let outcome = Pump::new(clock, socket, transfer, source)
        .run(|bytes, _| progress(Progress { bytes, total }))
        .await;
    summarize(outcome, "cannot read the source")
}

/// The summary of a completed transfer, or why it failed.
fn summarize(outcome: Outcome, what: &'static str) -> Result<Summary, TftpError> {
    match outcome.result {
        Ok(()) => Ok(Summary {
            bytes: outcome.bytes,
            elapsed: outcome.elapsed,
            negotiated: outcome.negotiated,
            peer: outcome.peer,
            stats: outcome.stats,
        }),
        Err(Failure::Transfer(error)) => Err(TftpError::Transfer(error)),
        Err(Failure::File(failure)) => Err(TftpError::File { what, source: failure.error }),
    }
}
