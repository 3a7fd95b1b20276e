//! `utp send`: send a file or standard input over one uTP stream.
//!
//! The input is opened first, so a missing file fails before any packet is sent. Then the
//! stream connects, the input goes out, and our FIN follows it. The command succeeds only
//! once the receiver has acknowledged everything, FIN included. It then waits up to
//! [`CONFIRM_WAIT`] for the receiver to close its side too: `utp recv` closes only after
//! writing everything out, so that confirms the data was stored, and a receiver that
//! failed to store it resets the stream instead (exit 1). A receiver that acknowledged
//! everything but keeps its side open (a libutp application, say) or whose final FIN was
//! lost gets a warning, not a failure: everything was acknowledged.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Instant;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;
use utp_tokio::utp_driver::{UtpSocket, UtpStream};
use utp_tokio::{IntoTokio as _, TokioStream};

use crate::Failure;
use crate::transfer::{self, CHUNK, Hasher, Progress, QUEUE, Signals, Summary};

/// How long, after everything was acknowledged, `send` waits for the receiver to close.
const CONFIRM_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Arguments of `utp send`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The receiver (`utp recv`), as HOST:PORT: an IP address or a name to resolve.
    #[arg(value_name = "ADDR", value_parser = parse_host_port)]
    addr: String,

    /// The file to send; `-` or none sends standard input.
    #[arg(value_name = "FILE")]
    file: Option<PathBuf>,

    /// Print the summary as one JSON object on standard output instead of a line on
    /// standard error.
    #[arg(long)]
    json: bool,

    /// Compute the SHA-256 of the bytes sent and add it to the summary.
    #[arg(long)]
    sha256: bool,
}

/// Accepts HOST:PORT (with `[...]` around an IPv6 address); the host is resolved later.
pub(crate) fn parse_host_port(text: &str) -> Result<String, String> {
    let malformed = || format!("expected HOST:PORT (for example 127.0.0.1:9000), got `{text}`");
    let (host, port) = text.rsplit_once(':').ok_or_else(malformed)?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(malformed());
    }
    Ok(text.to_owned())
}

/// Where the bytes come from.
enum Input {
    Stdin,
    File { file: File, path: PathBuf, len: u64 },
}

impl Input {
    fn open(path: Option<&PathBuf>) -> Result<Self, Failure> {
        let Some(path) = path.filter(|p| p.as_os_str() != "-") else {
            return Ok(Self::Stdin);
        };
        let (file, meta) = transfer::open_input(
            path,
            "send one file at a time (or pipe an archive: tar c DIR | utp send ADDR)",
        )?;
        // A FIFO or device has no meaningful length: show a spinner.
        let len = if meta.is_file() { meta.len() } else { 0 };
        Ok(Self::File { file, path: path.clone(), len })
    }

    /// The number of bytes to expect, when known.
    fn len(&self) -> Option<u64> {
        match self {
            Self::File { len, .. } if *len > 0 => Some(*len),
            _ => None,
        }
    }

    fn name(&self) -> Option<String> {
        match self {
            Self::Stdin => None,
            Self::File { path, .. } => Some(path.display().to_string()),
        }
    }

    fn describe(&self) -> String {
        self.name().unwrap_or_else(|| "standard input".to_owned())
    }
}

/// What the reading thread hands to the stream.
enum Message {
    Data(Vec<u8>),
    /// End of input, with the SHA-256 of everything read.
    End(Option<String>),
    Failed(io::Error),
}

/// Connects to the receiver, sends the input, and waits until it is all acknowledged.
pub(crate) fn run(args: &Args) -> Result<(), Failure> {
    let input = Input::open(args.file.as_ref())?;
    let runtime = transfer::runtime()?;
    let summary = runtime.block_on(send(args, input))?;
    summary.print("sent", "to", args.json)
}

async fn send(args: &Args, input: Input) -> Result<Summary, Failure> {
    let peer = resolve(&args.addr).await?;
    let local: SocketAddr = transfer::any_local(peer);
    let socket = utp_tokio::bind_with(local, transfer::socket_config())
        .map_err(|e| Failure::Runtime(format!("cannot open a UDP socket: {e}")))?;
    let mut signals = Signals::new()?;

    let connecting = Instant::now();
    let stream = tokio::select! {
        result = socket.connect(peer) => {
            result.map_err(|e| connect_failure(&e, &args.addr, peer, connecting))?
        }
        () = signals.wait() => return Err(Failure::Runtime("interrupted while connecting".into())),
    };
    let mut stream = stream.into_tokio();
    let name = input.name();
    let progress = Progress::new(input.len());
    let started = Instant::now();
    let sent = Cell::new(0);
    let result = tokio::select! {
        result = pump(&mut stream, input, Hasher::new(args.sha256), &progress, &sent) => result,
        () = signals.wait() => Err(Failure::Runtime(format!(
            "interrupted after sending {} bytes; the transfer was aborted", sent.get()
        ))),
    };
    progress.clear();
    let sha256 = match result {
        Ok(sha256) => sha256,
        Err(e) => {
            abort(stream.into_inner(), &socket).await;
            return Err(e);
        }
    };
    let sent = sent.get();
    // The receiver closes its side once it has stored everything: wait for that.
    let closed = tokio::select! {
        result = peer_closed(&mut stream) => result,
        () = tokio::time::sleep(CONFIRM_WAIT) => {
            transfer::announce(&format!(
                "utp: warning: the receiver acknowledged all {sent} bytes but did not close \
                 its side within {} s; not waiting for its confirmation",
                CONFIRM_WAIT.as_secs()
            ));
            Ok(())
        }
        () = signals.wait() => Err(Failure::Runtime(format!(
            "interrupted after all {sent} bytes were acknowledged, while the receiver was \
             storing them"
        ))),
    };
    if let Err(e) = closed {
        abort(stream.into_inner(), &socket).await;
        return Err(e);
    }
    let elapsed = started.elapsed();
    // Both FINs are acknowledged: this completes at once.
    stream.into_inner().close().await.map_err(|e| {
        Failure::Runtime(format!(
            "closing failed: {}",
            transfer::stream_failure(&e, "receiver", sent)
        ))
    })?;
    Ok(Summary::new(sent, elapsed, peer, sha256, name))
}

/// Waits for the receiver's FIN, which `utp recv` sends once everything is written out.
/// Whatever the receiver sends meanwhile is discarded.
async fn peer_closed(stream: &mut TokioStream) -> Result<(), Failure> {
    let mut discard = vec![0; 16 * 1024];
    loop {
        match stream.read(&mut discard).await {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) => {
                return Err(Failure::Runtime(format!(
                    "all bytes were acknowledged, but the receiver did not confirm it stored \
                     them: {}",
                    match e.kind() {
                        io::ErrorKind::ConnectionReset => "it reset the connection (it failed \
                            to write its output or was interrupted: see its messages)"
                            .to_owned(),
                        io::ErrorKind::TimedOut => "it stopped answering".to_owned(),
                        _ => e.to_string(),
                    }
                )));
            }
        }
    }
}

/// Moves the input into the stream, then finishes it (FIN) and waits until the receiver
/// acknowledged everything. Returns the input's SHA-256 (if `hasher` hashes); counts the
/// bytes in `sent`.
async fn pump(
    stream: &mut TokioStream,
    input: Input,
    hasher: Hasher,
    progress: &Progress,
    sent: &Cell<u64>,
) -> Result<Option<String>, Failure> {
    let described = input.describe();
    let (tx, mut rx) = mpsc::channel(QUEUE);
    std::thread::Builder::new()
        .name("utp-send-read".into())
        .spawn(move || read_input(input, hasher, &tx))
        .map_err(|e| Failure::Runtime(format!("cannot start the reading thread: {e}")))?;
    let failed =
        |e: &io::Error| Failure::Runtime(transfer::stream_failure(e, "receiver", sent.get()));
    let sha256 = loop {
        match rx.recv().await {
            Some(Message::Data(chunk)) => {
                stream.write_all(&chunk).await.map_err(|e| failed(&e))?;
                sent.set(sent.get() + chunk.len() as u64);
                progress.add(chunk.len());
            }
            Some(Message::End(sha256)) => break sha256,
            Some(Message::Failed(e)) => {
                return Err(Failure::Runtime(format!(
                    "cannot read {described} after {} bytes: {e}; the transfer was aborted",
                    sent.get()
                )));
            }
            None => {
                return Err(Failure::Runtime(format!(
                    "reading {described} stopped unexpectedly after {} bytes",
                    sent.get()
                )));
            }
        }
    };
    stream.shutdown().await.map_err(|e| failed(&e))?;
    Ok(sha256)
}

/// The reading thread: reads (and hashes) the input chunk by chunk.
fn read_input(input: Input, mut hasher: Hasher, tx: &mpsc::Sender<Message>) {
    let mut read = |reader: &mut dyn Read| -> Message {
        loop {
            let mut chunk = vec![0; CHUNK];
            let n = match reader.read(&mut chunk) {
                Ok(0) => return Message::End(hasher.clone().finish()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Message::Failed(e),
            };
            chunk.truncate(n);
            hasher.update(&chunk);
            if tx.blocking_send(Message::Data(chunk)).is_err() {
                // The stream side gave up; it reports why.
                return Message::End(None);
            }
        }
    };
    let last = match input {
        Input::Stdin => read(&mut io::stdin().lock()),
        Input::File { mut file, .. } => read(&mut file),
    };
    let _ = tx.blocking_send(last);
}

/// Resets the stream and gives the RESET a moment to leave, so the receiver learns at once
/// that the data is incomplete.
async fn abort(stream: UtpStream, socket: &UtpSocket) {
    stream.reset();
    transfer::settle(socket).await;
}

/// Resolves `addr` (HOST:PORT), preferring IPv4: `utp recv` listens on 0.0.0.0 by default,
/// and `localhost` often resolves to `::1` first.
pub(crate) async fn resolve(addr: &str) -> Result<SocketAddr, Failure> {
    if let Ok(peer) = addr.parse() {
        return Ok(peer);
    }
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| Failure::Runtime(format!("cannot resolve {addr}: {e}; check the host name")))?
        .collect();
    resolved
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| resolved.first())
        .copied()
        .ok_or_else(|| Failure::Runtime(format!("{addr} resolves to no address")))
}

/// Why connecting failed, and what to check.
fn connect_failure(error: &io::Error, addr: &str, peer: SocketAddr, since: Instant) -> Failure {
    let target =
        if addr == peer.to_string() { addr.to_owned() } else { format!("{addr} ({peer})") };
    Failure::Runtime(match error.kind() {
        io::ErrorKind::TimedOut => format!(
            "no answer from {target} after {:.0} s: is `utp recv` running there, and can UDP \
             reach port {}?",
            since.elapsed().as_secs_f64(),
            peer.port()
        ),
        io::ErrorKind::ConnectionRefused => format!(
            "{target} refused the connection: the receiver is busy with other streams or not \
             accepting; try again later"
        ),
        _ => format!("cannot connect to {target}: {error}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_syntax() {
        for good in ["127.0.0.1:9000", "localhost:1", "[::1]:9000", "example.com:65535"] {
            assert_eq!(parse_host_port(good).as_deref(), Ok(good));
        }
        for bad in ["127.0.0.1", ":9000", "host:", "host:port", "host:70000"] {
            assert!(parse_host_port(bad).is_err(), "{bad}");
        }
    }
}
