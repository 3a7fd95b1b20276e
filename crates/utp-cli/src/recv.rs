//! `utp recv`: accept uTP streams and write what they carry to a file or standard output.
//!
//! After the sender's FIN, everything is written out first, and only then is our side
//! closed gracefully (FIN, not RESET): the sender, which waits for that close, therefore
//! succeeds only once the data is stored. A failure to store it resets the stream instead,
//! so the sender fails too.

use std::cell::Cell;
use std::fs::File;
use std::future::poll_fn;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::Poll;
use std::time::Instant;

use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;
use utp_tokio::utp_driver::UtpSocket;
use utp_tokio::{IntoTokio as _, TokioStream};

use crate::Failure;
use crate::transfer::{self, CHUNK, Hasher, Progress, QUEUE, Signals, Summary};

/// Arguments of `utp recv`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address to listen on, as IP:PORT (port 0 picks a free port; the line `listening on
    /// ADDR` on standard error tells which).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:9000")]
    listen: SocketAddr,

    /// Write the stream to FILE, replacing it; `-` or none writes standard output. With
    /// --keep, stream N goes to FILE.N (FILE.1, FILE.2, ...).
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,

    /// Serve streams one after another until interrupted (Ctrl-C or SIGTERM), instead of
    /// exiting after the first. A stream that fails is reported and the next one served.
    #[arg(long)]
    keep: bool,

    /// Print each stream's summary as one JSON object on standard output instead of a line
    /// on standard error; needs --output FILE, since the data would go to standard output.
    #[arg(long)]
    json: bool,

    /// Compute the SHA-256 of each stream's bytes and add it to the summary.
    #[arg(long)]
    sha256: bool,
}

/// Why one stream failed.
enum StreamError {
    /// The sender or the network failed: with --keep, the next stream is served.
    Peer(String),
    /// We failed: the output cannot be written, or we were interrupted. Stops serving.
    Local(String),
}

/// Listens, and receives one stream (or, with `--keep`, one after another).
pub(crate) fn run(args: &Args) -> Result<(), Failure> {
    let output = args.output.as_deref().filter(|p| p.as_os_str() != "-");
    if args.json && output.is_none() {
        return Err(Failure::Usage(
            "--json prints the summary on standard output, where the data goes without \
             --output FILE: pass --output FILE as well"
                .into(),
        ));
    }
    // One stream into FILE: create it now, so a bad path fails before anyone connects.
    let first = match output {
        Some(path) if !args.keep => Some(create(path).map_err(Failure::Runtime)?),
        _ => None,
    };
    let runtime = transfer::runtime()?;
    runtime.block_on(serve(args, output, first))
}

async fn serve(args: &Args, output: Option<&Path>, mut first: Option<File>) -> Result<(), Failure> {
    let socket = utp_tokio::bind_with(args.listen, transfer::socket_config())
        .map_err(|e| Failure::Runtime(format!("cannot listen on {}: {e}", args.listen)))?;
    let local = socket
        .local_addr()
        .map_err(|e| Failure::Runtime(format!("cannot read the listening address: {e}")))?;
    // Installed before announcing, so a signal sent as soon as the line is read is handled.
    let mut signals = Signals::new()?;
    transfer::announce(&format!("listening on {local}"));

    for n in 1u64.. {
        let accepted = tokio::select! {
            result = socket.accept() => result,
            () = signals.wait() => {
                return if args.keep {
                    Ok(())
                } else {
                    Err(Failure::Runtime("interrupted before a sender connected".into()))
                };
            }
        };
        let stream =
            accepted.map_err(|e| Failure::Runtime(format!("cannot accept connections: {e}")))?;
        let peer = *stream.peer_addr();
        let mut stream = stream.into_tokio();
        let (path, sink) = match output {
            None => (None, Sink::Stdout),
            Some(path) => {
                let path = if args.keep { numbered(path, n) } else { path.to_owned() };
                let file = match first.take() {
                    Some(file) => Ok(file),
                    None => create(&path),
                };
                match file {
                    Ok(file) => (Some(path), Sink::File(file)),
                    Err(message) => {
                        abort(stream, &socket).await;
                        return Err(Failure::Runtime(message));
                    }
                }
            }
        };
        let name = path.as_ref().map(|p| p.display().to_string());
        let described = name.clone().unwrap_or_else(|| "standard output".into());

        let progress = Progress::new(None);
        let started = Instant::now();
        let received = Cell::new(0);
        let hasher = Hasher::new(args.sha256);
        let result = tokio::select! {
            result = receive(&mut stream, sink, hasher, &progress, &received, &described) => result,
            () = signals.wait() => Err(StreamError::Local(format!(
                "interrupted after receiving {} bytes from {peer}; {described} is incomplete",
                received.get()
            ))),
        };
        progress.clear();
        let elapsed = started.elapsed();
        let bytes = received.get();
        let outcome = match result {
            Ok(sha256) => {
                // Resolves once our FIN is handed to the socket: the process may exit.
                let closing = stream.into_inner().close();
                tokio::select! {
                    result = closing => {
                        if let Err(e) = result {
                            // The data is complete; only the sender's confirmation is missing.
                            transfer::announce(&format!(
                                "utp: warning: all {bytes} bytes were written to {described}, \
                                 but closing failed: {}",
                                transfer::stream_failure(&e, "sender", bytes)
                            ));
                        }
                        Ok(sha256)
                    }
                    () = signals.wait() => Err(StreamError::Local(format!(
                        "interrupted while closing; all {bytes} bytes were written to {described}"
                    ))),
                }
            }
            Err(e) => {
                abort(stream, &socket).await;
                Err(e)
            }
        };
        match outcome {
            Ok(sha256) => {
                Summary::new(bytes, elapsed, peer, sha256, name)
                    .print("received", "from", args.json)?;
            }
            Err(StreamError::Peer(message)) if args.keep => {
                transfer::announce(&format!("utp: stream {n} from {peer}: {message}"));
            }
            Err(StreamError::Peer(message) | StreamError::Local(message)) => {
                return Err(Failure::Runtime(message));
            }
        }
        if !args.keep {
            break;
        }
    }
    Ok(())
}

/// Moves the stream's bytes to the writing thread until the end of stream, and waits until
/// they are all written. Returns their SHA-256 (if `hasher` hashes); counts them in
/// `received`.
async fn receive(
    stream: &mut TokioStream,
    sink: Sink,
    hasher: Hasher,
    progress: &Progress,
    received: &Cell<u64>,
    described: &str,
) -> Result<Option<String>, StreamError> {
    let (tx, rx) = mpsc::channel(QUEUE);
    let writer = tokio::task::spawn_blocking(move || write_output(sink, hasher, rx));
    let read = loop {
        let mut chunk = vec![0; CHUNK];
        match read_available(stream, &mut chunk).await {
            Ok(0) => break Ok(()),
            Ok(n) => {
                chunk.truncate(n);
                received.set(received.get() + n as u64);
                progress.add(n);
                if tx.send(chunk).await.is_err() {
                    // The writer failed; its result says why.
                    break Ok(());
                }
            }
            Err(e) => break Err(e),
        }
    };
    drop(tx);
    let written = match writer.await {
        Ok(result) => result,
        Err(e) => Err(io::Error::other(format!("the writing thread failed: {e}"))),
    };
    match (read, written) {
        (_, Err(e)) => Err(StreamError::Local(format!(
            "cannot write {described}: {e}; the transfer was aborted"
        ))),
        (Err(e), Ok(_)) => Err(StreamError::Peer(format!(
            "{}; {described} is incomplete",
            transfer::stream_failure(&e, "sender", received.get())
        ))),
        (Ok(()), Ok(sha256)) => Ok(sha256),
    }
}

/// Fills `buf` with what the stream has ready, waiting for the first byte only. `Ok(0)` at
/// the end of the stream.
async fn read_available(stream: &mut TokioStream, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    poll_fn(|cx| {
        while filled < buf.len() {
            let mut rb = ReadBuf::new(&mut buf[filled..]);
            match Pin::new(&mut *stream).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) if rb.filled().is_empty() => break,
                Poll::Ready(Ok(())) => filled += rb.filled().len(),
                // Hand over what was read; the error comes again with the next read.
                Poll::Ready(Err(_)) | Poll::Pending if filled > 0 => break,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(filled))
    })
    .await
}

/// Where the bytes go.
enum Sink {
    Stdout,
    File(File),
}

/// The writing thread: writes (and hashes) every chunk, then flushes.
fn write_output(
    sink: Sink,
    mut hasher: Hasher,
    mut rx: mpsc::Receiver<Vec<u8>>,
) -> io::Result<Option<String>> {
    let mut out: Box<dyn Write> = match sink {
        Sink::Stdout => Box::new(io::stdout().lock()),
        Sink::File(file) => Box::new(file),
    };
    while let Some(chunk) = rx.blocking_recv() {
        hasher.update(&chunk);
        out.write_all(&chunk)?;
        // Standard output may be a terminal or a pipe someone watches: no bytes wait.
        out.flush()?;
    }
    out.flush()?;
    Ok(hasher.finish())
}

/// Creates (or truncates) the output file.
fn create(path: &Path) -> Result<File, String> {
    File::create(path).map_err(|e| {
        format!("cannot create {}: {e}; check the directory and its permissions", path.display())
    })
}

/// FILE.N: where stream `n` goes with --keep.
fn numbered(path: &Path, n: u64) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Resets the stream and gives the RESET a moment to leave, so the sender learns at once.
async fn abort(stream: TokioStream, socket: &UtpSocket) {
    stream.into_inner().reset();
    transfer::settle(socket).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_outputs() {
        assert_eq!(numbered(Path::new("out/data.bin"), 2), Path::new("out/data.bin.2"));
    }
}
