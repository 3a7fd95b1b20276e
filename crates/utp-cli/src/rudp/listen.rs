//! `utp rudp listen`: accept rudp connections and print every message received.
//!
//! Each connection runs two loops side by side, one over its messages and one over its
//! direct datagrams; both hand what they receive to one output thread, which hashes and
//! prints it, so neither hashing nor a slow standard output stalls the socket. What waits
//! for that thread is bounded by [`OUTPUT_BUDGET`] bytes: beyond it the loops stop reading,
//! the engine's reassembly memory fills, and the senders are slowed down by the receive
//! window.
//!
//! Without `--keep` the first connection is served and its end is the command's: status 0
//! when the sender closed with code 0 after its last message, 1 otherwise. With `--keep`
//! connections are served concurrently until a signal.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest as _, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use utp_proto::rudp::Config;
use utp_tokio::rudp::{self, CloseCode, CloseReason, RudpConfig, RudpConnection, RudpSocket};

use crate::transfer::{self, Signals};
use crate::{Failure, size};

use super::{close_failure, close_repeats_wait, connection_failure, mbps, plural};

/// The default `--max-message`: the engine's default, 16 MiB.
const DEFAULT_MAX_MESSAGE: &str = "16M";

/// Bytes of messages received but not yet printed, at most (a larger message waits until
/// nothing else does).
const OUTPUT_BUDGET: usize = 64 << 20;

/// Records (messages and direct datagrams) waiting for the output thread, at most.
const OUTPUT_QUEUE: usize = 1024;

/// What a record costs in the output budget besides its bytes, so that empty messages are
/// bounded too.
const RECORD_COST: usize = 64;

/// Arguments of `utp rudp listen`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address to listen on, as IP:PORT (port 0 picks a free port; the line `listening on
    /// ADDR` on standard error tells which).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:9100")]
    listen: SocketAddr,

    /// Print each message's bytes, unframed, one message after another (for piping),
    /// instead of a line per message. Direct datagrams are only counted.
    #[arg(long)]
    raw: bool,

    /// Print one JSON object per line for each message and direct datagram: len, sha256,
    /// direct, message, connection, peer.
    #[arg(long)]
    json: bool,

    /// Serve connections, concurrently, until interrupted (Ctrl-C or SIGTERM), instead of
    /// exiting when the first one ends. A connection that fails is reported and the others
    /// go on.
    #[arg(long)]
    keep: bool,

    /// The largest message accepted, in bytes, or with a K, M or G suffix (powers of 1024),
    /// at most 4G. Announced in the handshake: a sender's `send` refuses larger messages.
    #[arg(long, value_name = "SIZE", default_value = DEFAULT_MAX_MESSAGE, value_parser = parse_max_message)]
    max_message: u32,
}

/// How messages are printed.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Format {
    /// `LEN SHA256` (and ` direct` for a direct datagram), one line each.
    Lines,
    /// The bytes of each message, one after another; direct datagrams are not printed.
    Raw,
    /// One JSON object per line.
    Json,
}

/// Listens, and serves one connection (or, with `--keep`, many).
pub(crate) fn run(args: &Args) -> Result<(), Failure> {
    let format = match (args.raw, args.json) {
        (true, true) => {
            return Err(Failure::Usage(
                "--raw prints the messages' bytes and --json prints a JSON object per message: \
                 pass only one of them"
                    .into(),
            ));
        }
        (true, false) => Format::Raw,
        (false, true) => Format::Json,
        (false, false) => Format::Lines,
    };
    let runtime = transfer::runtime()?;
    runtime.block_on(serve(args, format))
}

/// Why serving stopped early.
enum Stop {
    /// A failure to report as it is.
    Failed(Failure),
    /// Standard output could not take more; the output thread's error says why.
    Output,
}

impl From<Failure> for Stop {
    fn from(failure: Failure) -> Self {
        Self::Failed(failure)
    }
}

async fn serve(args: &Args, format: Format) -> Result<(), Failure> {
    let mut config = Config::default();
    // At least 1: checked by the parser.
    let _ = config.set_max_message(args.max_message);
    let socket = rudp::bind(args.listen, RudpConfig::new(config))
        .map_err(|e| bind_failure(args.listen, &e))?;
    let local = socket
        .local_addr()
        .map_err(|e| Failure::Runtime(format!("cannot read the listening address: {e}")))?;
    // Installed before announcing, so a signal sent as soon as the line is read is handled.
    let mut signals = Signals::new()?;
    let (output, writer) = Output::start(format)?;
    transfer::announce(&format!("listening on {local}"));

    let told = if args.keep { "the senders were told" } else { "the sender was told" };
    let result = if args.keep {
        serve_many(&socket, &output, &mut signals).await
    } else {
        serve_first(&socket, &output, &mut signals).await
    };
    drop(output);
    // Every connection has ended: blocking the runtime while the last lines go out is fine.
    let written =
        writer.join().unwrap_or_else(|_| Err(io::Error::other("the output thread panicked")));
    match (result, written) {
        (Err(Stop::Output), Err(e)) => {
            Err(Failure::Runtime(format!("cannot write standard output: {e}; {told} (code 4)")))
        }
        (_, Err(e)) => Err(Failure::Runtime(format!("cannot write standard output: {e}"))),
        (Err(Stop::Output), Ok(())) => {
            Err(Failure::Runtime(format!("the output thread stopped; {told} (code 4)")))
        }
        (Err(Stop::Failed(failure)), Ok(())) => Err(failure),
        (Ok(()), Ok(())) => Ok(()),
    }
}

/// Serves the first connection; its end decides the outcome.
async fn serve_first(
    socket: &RudpSocket,
    output: &Output,
    signals: &mut Signals,
) -> Result<(), Stop> {
    let accepted = tokio::select! {
        accepted = socket.accept() => accepted,
        () = signals.wait() => {
            return Err(Failure::Runtime("interrupted before a sender connected".into()).into());
        }
    };
    let served = Served::new(
        1,
        accepted.map_err(|e| Failure::Runtime(format!("cannot accept connections: {e}")))?,
    );
    let ended = tokio::select! {
        ended = receive(&served, output) => ended,
        never = turn_away(socket) => match never {},
        () = signals.wait() => {
            let wait = interrupt(&served.conn).await;
            tokio::time::sleep(wait).await;
            Ended::Interrupted
        }
    };
    match ended {
        Ended::Output => Err(Stop::Output),
        ended => report(&served, ended, false).map_err(Stop::from),
    }
}

/// Accepts every further connection and closes it at once with code 3, so its sender
/// learns that this listener is busy instead of waiting for its handshake to time out.
async fn turn_away(socket: &RudpSocket) -> Infallible {
    loop {
        if let Ok(conn) = socket.accept().await {
            // A code of its own and a short reason: accepted.
            let _ = conn
                .close(
                    CloseCode::LimitExceeded,
                    "listener busy: it serves one connection (start it with --keep for more)",
                )
                .await;
        } else {
            // The driver stopped; the connection being served reports it.
            return std::future::pending().await;
        }
    }
}

/// Serves connections concurrently until a signal, then closes those still open.
async fn serve_many(
    socket: &RudpSocket,
    output: &Output,
    signals: &mut Signals,
) -> Result<(), Stop> {
    let mut tasks = JoinSet::new();
    let mut open: HashMap<u64, Arc<RudpConnection>> = HashMap::new();
    let mut next = 1;
    let stopped = loop {
        tokio::select! {
            accepted = socket.accept() => match accepted {
                Ok(conn) => {
                    let served = Served::new(next, conn);
                    next += 1;
                    open.insert(served.n, served.conn.clone());
                    let output = output.clone();
                    tasks.spawn(async move {
                        let ended = receive(&served, &output).await;
                        (served, ended)
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::QuotaExceeded => {
                    transfer::announce(&format!("utp: a sender was refused: {e}"));
                }
                Err(e) => {
                    break Err(Failure::Runtime(format!("cannot accept connections: {e}")).into());
                }
            },
            Some(joined) = tasks.join_next() => {
                let (served, ended) = joined_task(joined)?;
                open.remove(&served.n);
                match ended {
                    Ended::Output => break Err(Stop::Output),
                    ended => report(&served, ended, true)?,
                }
            }
            () = signals.wait() => break Ok(()),
        }
    };
    // Stopping: close what is still open, report it, and let the CLOSEs' repeats leave.
    let mut wait = Duration::ZERO;
    for conn in open.values() {
        wait = wait.max(interrupt(conn).await);
    }
    let mut interrupted = 0;
    while let Some(joined) = tasks.join_next().await {
        let (served, ended) = joined_task(joined)?;
        match ended {
            Ended::Output => {}
            ended => {
                interrupted += u64::from(matches!(ended, Ended::Interrupted));
                report(&served, ended, true)?;
            }
        }
    }
    tokio::time::sleep(wait).await;
    stopped?;
    if interrupted > 0 {
        return Err(Failure::Runtime(format!(
            "interrupted while receiving from {}",
            plural(interrupted, "connection")
        ))
        .into());
    }
    Ok(())
}

/// A connection task's result, or why the task failed.
fn joined_task(
    joined: Result<(Served, Ended), tokio::task::JoinError>,
) -> Result<(Served, Ended), Failure> {
    joined.map_err(|e| Failure::Runtime(format!("a connection's task failed: {e}")))
}

/// Closes `conn` because we were stopped; returns how long its CLOSE's repeats need.
async fn interrupt(conn: &RudpConnection) -> Duration {
    let wait = close_repeats_wait(conn.stats().as_ref());
    // Our code and a short reason: accepted.
    let _ = conn
        .close(CloseCode::Application(CloseCode::APPLICATION), "the listener was interrupted")
        .await;
    wait
}

/// One connection being served, and what it received so far.
#[derive(Debug)]
struct Served {
    /// Its number, from 1, in the order connections were accepted.
    n: u64,
    peer: SocketAddr,
    conn: Arc<RudpConnection>,
    counters: Counters,
    started: Instant,
}

impl Served {
    fn new(n: u64, conn: RudpConnection) -> Self {
        Self {
            n,
            peer: *conn.peer_addr(),
            conn: Arc::new(conn),
            counters: Counters::default(),
            started: Instant::now(),
        }
    }
}

/// What a connection received (atomics: the loops run in a task of their own).
#[derive(Debug, Default)]
struct Counters {
    messages: AtomicU64,
    bytes: AtomicU64,
    direct: AtomicU64,
    direct_bytes: AtomicU64,
}

impl Counters {
    /// Counts a message (or a direct datagram) of `len` bytes; returns its number, from 1.
    fn count(&self, direct: bool, len: usize) -> u64 {
        let (count, bytes) =
            if direct { (&self.direct, &self.direct_bytes) } else { (&self.messages, &self.bytes) };
        bytes.fetch_add(len as u64, Ordering::Relaxed);
        count.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// How a connection ended.
#[derive(Debug)]
enum Ended {
    /// The sender closed with code 0 after its last message.
    InOrder,
    /// The sender or the network failed, as a sentence.
    Failed(String),
    /// Standard output could not take more; the connection was closed with code 4.
    Output,
    /// We closed it, on a signal.
    Interrupted,
}

/// Why one of a connection's loops stopped early.
enum LoopEnd {
    Failed(io::Error),
    Output,
}

/// Receives a connection's messages and direct datagrams until it ends.
async fn receive(served: &Served, output: &Output) -> Ended {
    let conn = &*served.conn;
    let pass = |direct: bool, data: Vec<u8>| async move {
        let index = served.counters.count(direct, data.len());
        if output.push(served, index, direct, data).await.is_err() {
            // Our code and a short reason: accepted.
            let _ = conn
                .close(
                    CloseCode::Application(CloseCode::APPLICATION),
                    "the listener cannot write its output",
                )
                .await;
            return Err(LoopEnd::Output);
        }
        Ok(())
    };
    let messages = async {
        loop {
            match conn.recv().await {
                Ok(Some(message)) => pass(false, message).await?,
                Ok(None) => return Ok(()),
                Err(e) => return Err(LoopEnd::Failed(e)),
            }
        }
    };
    let directs = async {
        loop {
            match conn.recv_direct().await {
                Ok(Some(payload)) => pass(true, payload).await?,
                Ok(None) => return Ok(()),
                Err(e) => return Err(LoopEnd::Failed(e)),
            }
        }
    };
    match tokio::join!(messages, directs) {
        (Err(LoopEnd::Output), _) | (_, Err(LoopEnd::Output)) => Ended::Output,
        (Err(LoopEnd::Failed(e)), _) | (_, Err(LoopEnd::Failed(e))) => {
            Ended::Failed(connection_failure(&e, "sender"))
        }
        (Ok(()), Ok(())) => match conn.close_reason() {
            Some(CloseReason::Peer { code: CloseCode::Normal, .. }) => Ended::InOrder,
            Some(CloseReason::Local { .. }) => Ended::Interrupted,
            Some(other) => Ended::Failed(close_failure(&other, "sender")),
            None => Ended::Failed("the connection ended without a reason".into()),
        },
    }
}

/// Reports how a connection ended: its summary line, or its failure (an error without
/// `keep`, a line on standard error with it).
fn report(served: &Served, ended: Ended, keep: bool) -> Result<(), Failure> {
    let c = &served.counters;
    let (messages, bytes) = (Counters::get(&c.messages), Counters::get(&c.bytes));
    let received = format!("{} ({bytes} bytes)", plural(messages, "message"));
    let peer = served.peer;
    let n = served.n;
    let problem = match ended {
        Ended::InOrder => {
            let elapsed = served.started.elapsed();
            let mut line = format!(
                "received {received} in {:.2} s ({:.1} MB/s) from {peer}",
                elapsed.as_secs_f64(),
                mbps(bytes, elapsed)
            );
            let direct = Counters::get(&c.direct);
            if direct > 0 {
                line.push_str(&format!(
                    ", and {} ({} bytes)",
                    plural(direct, "direct datagram"),
                    Counters::get(&c.direct_bytes)
                ));
            }
            if keep {
                line = format!("connection {n}: {line}");
            }
            transfer::announce(&line);
            return Ok(());
        }
        Ended::Failed(why) => format!("failed after {received}: {why}"),
        Ended::Interrupted => {
            format!("was interrupted after {received}; the sender was told (code 4)")
        }
        // The output thread's error is reported instead.
        Ended::Output => return Ok(()),
    };
    if keep {
        transfer::announce(&format!("utp: connection {n} from {peer} {problem}"));
        Ok(())
    } else {
        Err(Failure::Runtime(format!("the connection from {peer} {problem}")))
    }
}

/// The connections' side of the output thread.
#[derive(Clone, Debug)]
struct Output {
    format: Format,
    tx: mpsc::Sender<Record>,
    budget: Arc<Semaphore>,
}

/// The output thread stopped: standard output failed.
#[derive(Debug)]
struct OutputClosed;

/// A message or direct datagram on its way to standard output.
#[derive(Debug)]
struct Record {
    connection: u64,
    peer: SocketAddr,
    /// Its number among the connection's messages (or direct datagrams), from 1.
    index: u64,
    direct: bool,
    data: Vec<u8>,
    /// Its share of [`OUTPUT_BUDGET`], given back once it is printed.
    _permit: OwnedSemaphorePermit,
}

impl Output {
    /// Starts the output thread.
    fn start(format: Format) -> Result<(Self, std::thread::JoinHandle<io::Result<()>>), Failure> {
        let (tx, rx) = mpsc::channel(OUTPUT_QUEUE);
        let budget = Arc::new(Semaphore::new(OUTPUT_BUDGET));
        let closer = budget.clone();
        let writer = std::thread::Builder::new()
            .name("utp-rudp-output".into())
            .spawn(move || {
                let result = write_records(format, rx);
                // Nothing will give permits back: wake whoever waits for them.
                closer.close();
                result
            })
            .map_err(|e| Failure::Runtime(format!("cannot start the output thread: {e}")))?;
        Ok((Self { format, tx, budget }, writer))
    }

    /// Hands a message (or direct datagram) to the output thread, waiting while the budget
    /// is spent. Direct datagrams are dropped here with `--raw`.
    async fn push(
        &self,
        served: &Served,
        index: u64,
        direct: bool,
        data: Vec<u8>,
    ) -> Result<(), OutputClosed> {
        if direct && self.format == Format::Raw {
            return Ok(());
        }
        let cost = (data.len().saturating_add(RECORD_COST)).min(OUTPUT_BUDGET);
        // OUTPUT_BUDGET fits a u32.
        let cost = u32::try_from(cost).unwrap_or(u32::MAX);
        let permit =
            self.budget.clone().acquire_many_owned(cost).await.map_err(|_| OutputClosed)?;
        let record = Record {
            connection: served.n,
            peer: served.peer,
            index,
            direct,
            data,
            _permit: permit,
        };
        self.tx.send(record).await.map_err(|_| OutputClosed)
    }
}

/// One line of `--json`.
#[derive(Debug, Serialize)]
struct JsonLine<'a> {
    len: usize,
    sha256: &'a str,
    direct: bool,
    message: u64,
    connection: u64,
    peer: SocketAddr,
}

/// The output thread: prints every record, flushing whenever none waits.
fn write_records(format: Format, mut rx: mpsc::Receiver<Record>) -> io::Result<()> {
    let mut out = io::BufWriter::with_capacity(64 * 1024, io::stdout().lock());
    while let Some(record) = rx.blocking_recv() {
        write_record(&mut out, format, &record)?;
        drop(record);
        if rx.is_empty() {
            out.flush()?;
        }
    }
    out.flush()
}

fn write_record(out: &mut impl Write, format: Format, record: &Record) -> io::Result<()> {
    let data = &record.data;
    if format == Format::Raw {
        return out.write_all(data);
    }
    let sha256 = transfer::hex(&Sha256::digest(data));
    match format {
        Format::Lines => {
            let direct = if record.direct { " direct" } else { "" };
            writeln!(out, "{} {sha256}{direct}", data.len())
        }
        _ => {
            let line = JsonLine {
                len: data.len(),
                sha256: &sha256,
                direct: record.direct,
                message: record.index,
                connection: record.connection,
                peer: record.peer,
            };
            serde_json::to_writer(&mut *out, &line).map_err(io::Error::other)?;
            out.write_all(b"\n")
        }
    }
}

/// Why listening failed, and what to try.
fn bind_failure(addr: SocketAddr, e: &io::Error) -> Failure {
    let hint = match e.kind() {
        io::ErrorKind::AddrInUse => {
            "; is another `utp rudp listen` running there? (--listen HOST:0 picks a free port)"
        }
        io::ErrorKind::PermissionDenied if addr.port() < 1024 => {
            "; ports below 1024 need privileges"
        }
        _ => "",
    };
    Failure::Runtime(format!("cannot listen on {addr}: {e}{hint}"))
}

/// `--max-message`: a size from 1 byte to 4G (a message's length is 32-bit on the wire,
/// so 4G means 4 GiB - 1 byte).
fn parse_max_message(text: &str) -> Result<u32, String> {
    match size::parse(text, "--max-message")? {
        0 => Err("--max-message must be at least 1 byte".into()),
        n if n == 1 << 32 => Ok(u32::MAX),
        n => u32::try_from(n).map_err(|_| {
            format!("--max-message must be at most 4G (message lengths are 32-bit), got `{text}`")
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_message_sizes() {
        assert_eq!(parse_max_message("16M"), Ok(16 << 20));
        assert_eq!(parse_max_message("1"), Ok(1));
        assert_eq!(parse_max_message("4G"), Ok(u32::MAX));
        assert!(parse_max_message("0").is_err());
        assert!(parse_max_message("5G").unwrap_err().contains("at most 4G"));
        assert!(parse_max_message("12Q").unwrap_err().starts_with("--max-message must be"));
    }

    #[test]
    fn lines_and_json() {
        let budget = Arc::new(Semaphore::new(2));
        let record = Record {
            connection: 2,
            peer: "127.0.0.1:5000".parse().unwrap(),
            index: 3,
            direct: false,
            data: b"hello".to_vec(),
            _permit: budget.clone().try_acquire_owned().unwrap(),
        };
        let hello = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        let mut out = Vec::new();
        write_record(&mut out, Format::Lines, &record).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), format!("5 {hello}\n"));
        let mut out = Vec::new();
        write_record(&mut out, Format::Json, &record).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(json["len"], 5);
        assert_eq!(json["sha256"], hello);
        assert_eq!(json["direct"], false);
        assert_eq!(json["message"], 3);
        assert_eq!(json["connection"], 2);
        assert_eq!(json["peer"], "127.0.0.1:5000");
        let mut out = Vec::new();
        write_record(&mut out, Format::Raw, &record).unwrap();
        assert_eq!(out, b"hello");

        let direct =
            Record { direct: true, _permit: budget.try_acquire_owned().unwrap(), ..record };
        let mut out = Vec::new();
        write_record(&mut out, Format::Lines, &direct).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), format!("5 {hello} direct\n"));
        let mut out = Vec::new();
        write_record(&mut out, Format::Json, &direct).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(json["direct"], true);
    }
}
