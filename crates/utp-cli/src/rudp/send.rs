//! `utp rudp send`: send files, or the lines of standard input, as rudp messages.
//!
//! Every input is checked before connecting: each file must be readable and not a
//! directory; standard input (`-`) and inputs that are not regular files (pipes) are read
//! whole at once. After the handshake, every size is compared with the receiver's
//! `max_message`, and if one is over it nothing is sent. The files go out one message
//! each, in order, read one at a time on the blocking pool. The command succeeds only once
//! the receiver has acknowledged every message; it then closes with code 0.
//!
//! Without FILE, each line of standard input is a message, sent as it is read (a reading
//! thread hands the lines over), so the command can sit at the end of a pipe that produces
//! lines slowly.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, BufRead, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::mpsc;
use utp_proto::rudp::{Config, MESSAGE_OVERHEAD};
use utp_tokio::rudp::{self, CloseCode, CloseReason, Error, RudpConfig, RudpConnection};

use crate::Failure;
use crate::send::{parse_host_port, resolve};
use crate::transfer::{self, Progress, Signals};

use super::{close_failure, close_reason, close_repeats_wait, connection_failure, mbps, plural};

/// The largest message rudp carries: its length is a 32-bit field.
const MAX_MESSAGE: u64 = u32::MAX as u64;

/// Lines waiting between the reading thread and the connection.
const LINE_QUEUE: usize = 256;

/// Arguments of `utp rudp send`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The receiver (`utp rudp listen`), as HOST:PORT: an IP address or a name to resolve.
    #[arg(value_name = "ADDR", value_parser = parse_host_port)]
    addr: String,

    /// Files to send, each as one message, in order; `-` is all of standard input as one
    /// message. Without FILE, each line of standard input is one message (without its line
    /// terminator).
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,

    /// Print the summary as one JSON object on standard output instead of a line on
    /// standard error.
    #[arg(long)]
    json: bool,

    /// How long to try to connect before giving up, in seconds (fractions allowed).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_connect_timeout)]
    connect_timeout: Duration,
}

/// One message to send.
#[derive(Debug)]
enum Input {
    /// A regular file, read when its turn comes.
    File { path: PathBuf, len: u64 },
    /// Standard input (`-`), or a file that is not a regular one (a pipe, a device): read
    /// whole before connecting, since its size is known only then.
    Loaded { name: String, data: Vec<u8> },
}

impl Input {
    fn name(&self) -> String {
        match self {
            Self::File { path, .. } => path.display().to_string(),
            Self::Loaded { name, .. } => name.clone(),
        }
    }

    fn len(&self) -> u64 {
        match self {
            Self::File { len, .. } => *len,
            Self::Loaded { data, .. } => data.len() as u64,
        }
    }
}

/// What is sent: the given inputs, or the lines of standard input.
#[derive(Debug)]
enum Source {
    Inputs(Vec<Input>),
    Lines,
}

/// Checks and (for standard input and pipes) reads the inputs, connects, sends, and waits
/// until everything is acknowledged.
pub(crate) fn run(args: &Args) -> Result<(), Failure> {
    let source =
        if args.files.is_empty() { Source::Lines } else { Source::Inputs(inputs(&args.files)?) };
    let runtime = transfer::runtime()?;
    let summary = runtime.block_on(send(args, source))?;
    summary.print(args.json)
}

/// Opens every FILE (so that a missing one fails before connecting), then reads standard
/// input and the files that are not regular.
fn inputs(paths: &[PathBuf]) -> Result<Vec<Input>, Failure> {
    let is_stdin = |path: &PathBuf| path.as_os_str() == "-";
    if paths.iter().filter(|p| is_stdin(p)).count() > 1 {
        return Err(Failure::Usage(
            "`-` (all of standard input, as one message) can be given only once".into(),
        ));
    }
    /// An input checked but not read yet.
    enum Checked {
        Stdin,
        Stream(File, PathBuf),
        Ready(Input),
    }
    let mut checked = Vec::with_capacity(paths.len());
    for path in paths {
        if is_stdin(path) {
            checked.push(Checked::Stdin);
            continue;
        }
        let hint = format!("pass the files in it instead (for example {}/*)", path.display());
        let (file, meta) = transfer::open_input(path, &hint)?;
        checked.push(if meta.is_file() {
            too_large(&path.display().to_string(), meta.len())?;
            Checked::Ready(Input::File { path: path.clone(), len: meta.len() })
        } else {
            Checked::Stream(file, path.clone())
        });
    }
    checked
        .into_iter()
        .map(|c| match c {
            Checked::Ready(input) => Ok(input),
            Checked::Stdin => read_whole(&mut io::stdin().lock(), "standard input"),
            Checked::Stream(mut file, path) => read_whole(&mut file, &path.display().to_string()),
        })
        .collect()
}

/// Reads all of `reader` (at most [`MAX_MESSAGE`] bytes) as one message.
fn read_whole(reader: &mut dyn Read, name: &str) -> Result<Input, Failure> {
    let mut data = Vec::new();
    reader
        .take(MAX_MESSAGE + 1)
        .read_to_end(&mut data)
        .map_err(|e| Failure::Runtime(format!("cannot read {name}: {e}")))?;
    too_large(name, data.len() as u64)?;
    Ok(Input::Loaded { name: name.to_owned(), data })
}

/// Fails when `len` is more than any rudp message can be.
fn too_large(name: &str, len: u64) -> Result<(), Failure> {
    if len > MAX_MESSAGE {
        return Err(Failure::Runtime(format!(
            "{name} is over {MAX_MESSAGE} bytes, more than one rudp message can carry (4 GiB - 1 \
             byte); split it"
        )));
    }
    Ok(())
}

/// The engine's settings: the send buffer raised so that the largest input fits it (the
/// receiver's `max_message` is then the only limit), and the handshake timeout.
fn config(args: &Args, source: &Source) -> Config {
    let mut config = Config::default();
    let largest = match source {
        Source::Inputs(inputs) => inputs.iter().map(Input::len).max().unwrap_or(0),
        Source::Lines => 0,
    };
    let needed = usize::try_from(largest)
        .ok()
        .and_then(|len| len.checked_add(MESSAGE_OVERHEAD))
        .unwrap_or(usize::MAX);
    if needed > config.send_buffer() {
        // Larger than the default, so above the minimum of 4096.
        let _ = config.set_send_buffer(needed);
    }
    // Non-zero: checked by the parser.
    let _ = config.set_handshake_timeout(args.connect_timeout);
    config
}

/// What was sent so far.
#[derive(Debug, Default)]
struct Sent {
    messages: Cell<u64>,
    bytes: Cell<u64>,
}

impl Sent {
    fn add(&self, len: usize) {
        self.messages.set(self.messages.get() + 1);
        self.bytes.set(self.bytes.get() + len as u64);
    }

    /// `N messages (B bytes)`.
    fn describe(&self) -> String {
        format!("{} ({} bytes)", plural(self.messages.get(), "message"), self.bytes.get())
    }

    /// Why the connection failed, and how far it got.
    fn failed(&self, why: &str) -> String {
        format!("{why}; sent so far: {}", self.describe())
    }
}

async fn send(args: &Args, source: Source) -> Result<Summary, Failure> {
    let config = config(args, &source);
    let peer = resolve(&args.addr).await?;
    let local: SocketAddr = transfer::any_local(peer);
    let socket = rudp::bind(local, RudpConfig::new(config))
        .map_err(|e| Failure::Runtime(format!("cannot open a UDP socket: {e}")))?;
    let mut signals = Signals::new()?;

    let connecting = Instant::now();
    let conn = tokio::select! {
        result = socket.connect(peer) => {
            result.map_err(|e| connect_failure(&e, &args.addr, peer, connecting))?
        }
        () = signals.wait() => return Err(Failure::Runtime("interrupted while connecting".into())),
    };

    // Every size against the receiver's limit, before anything is sent.
    let max = conn.max_message();
    let over = match &source {
        Source::Inputs(inputs) => inputs.iter().find(|i| i.len() > max as u64),
        Source::Lines => None,
    };
    if let Some(input) = over {
        let (name, len) = (input.name(), input.len());
        let reason = format!("message too large: {name} is {len} bytes, at most {max} accepted");
        abort(&conn, &reason).await;
        return Err(Failure::Runtime(format!(
            "{name} is {len} bytes, over the receiver's limit of {max} bytes per message (its \
             --max-message); nothing was sent"
        )));
    }

    let total = match &source {
        Source::Inputs(inputs) => {
            Some(inputs.iter().map(Input::len).sum::<u64>()).filter(|t| *t > 0)
        }
        Source::Lines => None,
    };
    let progress = Progress::new(total);
    let started = Instant::now();
    let sent = Sent::default();
    let result = tokio::select! {
        result = pump(&conn, source, max, &progress, &sent) => result,
        why = watch(&conn) => Err(sent.failed(&why)),
        () = signals.wait() => Err(format!("interrupted after sending {}", sent.describe())),
    };
    progress.clear();
    if let Err(why) = result {
        // Does nothing when the receiver ended the connection.
        abort(&conn, &why).await;
        return Err(Failure::Runtime(why));
    }
    let elapsed = started.elapsed();
    let stats = conn.stats();
    // Our code and a short reason: accepted.
    let _ = conn.close(CloseCode::Normal, "done").await;
    tokio::time::sleep(close_repeats_wait(stats.as_ref())).await;
    Ok(Summary {
        messages: sent.messages.get(),
        bytes: sent.bytes.get(),
        seconds: elapsed.as_secs_f64(),
        mbps: mbps(sent.bytes.get(), elapsed),
        peer,
        retransmits: stats.map_or(0, |s| s.retransmits),
    })
}

/// Sends every message, then waits until all are acknowledged. The error is a sentence.
async fn pump(
    conn: &RudpConnection,
    source: Source,
    max: usize,
    progress: &Progress,
    sent: &Sent,
) -> Result<(), String> {
    let failed = |e: &io::Error| sent.failed(&connection_failure(e, "receiver"));
    match source {
        Source::Inputs(inputs) => {
            for input in inputs {
                let data = match input {
                    Input::File { path, .. } => read_file(path, max).await?,
                    Input::Loaded { data, .. } => data,
                };
                conn.send(&data).await.map_err(|e| failed(&e))?;
                sent.add(data.len());
                progress.add(data.len());
            }
        }
        Source::Lines => {
            let (tx, mut rx) = mpsc::channel(LINE_QUEUE);
            std::thread::Builder::new()
                .name("utp-rudp-lines".into())
                .spawn(move || read_lines(&mut io::stdin().lock(), max, &tx))
                .map_err(|e| format!("cannot start the reading thread: {e}"))?;
            while let Some(line) = rx.recv().await {
                let line = line.map_err(|e| match e {
                    LineError::TooLong { number } => format!(
                        "line {number} of standard input is longer than {max} bytes, the largest \
                         message this connection carries ({} before it went out)",
                        plural(number - 1, "line")
                    ),
                    LineError::Read(e) => format!("cannot read standard input: {e}"),
                })?;
                conn.send(&line).await.map_err(|e| failed(&e))?;
                sent.add(line.len());
                progress.add(line.len());
            }
        }
    }
    conn.flush().await.map_err(|e| {
        let why = connection_failure(&e, "receiver");
        sent.failed(&format!("{why}, before every message was acknowledged"))
    })
}

/// Reads a file whole, on the blocking pool.
async fn read_file(path: PathBuf, max: usize) -> Result<Vec<u8>, String> {
    let name = path.display().to_string();
    let data = tokio::task::spawn_blocking(move || std::fs::read(&path))
        .await
        .map_err(|e| format!("reading {name} failed: {e}"))?
        .map_err(|e| format!("cannot read {name}: {e}; it was not sent"))?;
    if data.len() > max {
        return Err(format!(
            "{name} grew to {} bytes since it was checked, over the receiver's limit of {max} \
             bytes per message; it was not sent",
            data.len()
        ));
    }
    Ok(data)
}

/// Resolves when the connection ends (the receiver closed it or vanished), with why.
async fn watch(conn: &RudpConnection) -> String {
    loop {
        match conn.recv().await {
            // `utp rudp listen` sends nothing; another receiver may.
            Ok(Some(_)) => {}
            Ok(None) => {
                return conn.close_reason().map_or_else(
                    || "the connection ended".to_owned(),
                    |reason| close_failure(&reason, "receiver"),
                );
            }
            Err(e) => return connection_failure(&e, "receiver"),
        }
    }
}

/// Closes the connection with code 4 and `why` as the reason (nothing happens if it has
/// ended already), and lets the CLOSE's repeats leave.
async fn abort(conn: &RudpConnection, why: &str) {
    let wait = close_repeats_wait(conn.stats().as_ref());
    // Our code and a reason cut to fit: accepted.
    let _ = conn.close(CloseCode::Application(CloseCode::APPLICATION), close_reason(why)).await;
    tokio::time::sleep(wait).await;
}

/// Why a line could not be read.
#[derive(Debug)]
enum LineError {
    /// Line `number` (from 1) is longer than the limit.
    TooLong {
        number: u64,
    },
    Read(io::Error),
}

/// The reading thread: hands each line of `reader` over, without its `\n` or `\r\n`; a
/// last line without a terminator counts. Stops at the first line longer than `max`.
fn read_lines(reader: &mut dyn BufRead, max: usize, tx: &mpsc::Sender<Result<Vec<u8>, LineError>>) {
    let mut number = 0;
    loop {
        number += 1;
        let line = match next_line(reader, max) {
            Ok(Some(line)) => Ok(line),
            Ok(None) => return,
            Err(e) => {
                let e = match e.kind() {
                    io::ErrorKind::FileTooLarge => LineError::TooLong { number },
                    _ => LineError::Read(e),
                };
                Err(e)
            }
        };
        let last = line.is_err();
        // The connection side gave up; it reports why.
        if tx.blocking_send(line).is_err() || last {
            return;
        }
    }
}

/// The next line of `reader` without its terminator; `None` at the end. A line longer than
/// `max` is an error of kind `FileTooLarge`.
fn next_line(reader: &mut dyn BufRead, max: usize) -> io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let mut any = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(any.then_some(line));
        }
        any = true;
        let (taken, end) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        line.extend_from_slice(&available[..if end { taken - 1 } else { taken }]);
        reader.consume(taken);
        // One byte more than `max` may still be the `\r` of a `\r\n`.
        if line.len() > max.saturating_add(1) {
            return Err(io::ErrorKind::FileTooLarge.into());
        }
        if end {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.len() > max {
                return Err(io::ErrorKind::FileTooLarge.into());
            }
            return Ok(Some(line));
        }
    }
}

/// What `send` prints at the end.
#[derive(Debug, Serialize)]
struct Summary {
    /// Messages sent (and acknowledged).
    messages: u64,
    /// Their bytes.
    bytes: u64,
    /// From the end of the handshake until every message was acknowledged.
    seconds: f64,
    /// Megabytes (10^6 bytes) per second.
    mbps: f64,
    /// The receiver.
    peer: SocketAddr,
    /// DATA packets sent again (after a loss, a REPEAT or a timeout).
    retransmits: u64,
}

impl Summary {
    /// One JSON object on standard output with `json`, else one line on standard error:
    /// `sent 5 messages (5243905 bytes) in 0.12 s (43.2 MB/s) to 127.0.0.1:9100`.
    fn print(&self, json: bool) -> Result<(), Failure> {
        if json {
            transfer::print_json(self, "summary", false)
        } else {
            transfer::announce(&format!(
                "sent {} ({} bytes) in {:.2} s ({:.1} MB/s) to {}",
                plural(self.messages, "message"),
                self.bytes,
                self.seconds,
                self.mbps,
                self.peer
            ));
            Ok(())
        }
    }
}

/// Why connecting failed, and what to check.
fn connect_failure(error: &io::Error, addr: &str, peer: SocketAddr, since: Instant) -> Failure {
    let target =
        if addr == peer.to_string() { addr.to_owned() } else { format!("{addr} ({peer})") };
    let refusal = match error.get_ref().and_then(|e| e.downcast_ref::<Error>()) {
        Some(Error::Refused(reason)) => Some(reason.clone()),
        _ => None,
    };
    Failure::Runtime(match (error.kind(), refusal) {
        (io::ErrorKind::TimedOut, _) => format!(
            "no answer from {target} after {:.1} s: is `utp rudp listen` running there, and can \
             UDP reach port {}? (--connect-timeout waits longer)",
            since.elapsed().as_secs_f64(),
            peer.port()
        ),
        (io::ErrorKind::ConnectionRefused, Some(CloseReason::Peer { code, reason })) => {
            if reason.is_empty() {
                format!("{target} refused the connection with code {code}")
            } else {
                format!("{target} refused the connection with code {code}: {reason}")
            }
        }
        (io::ErrorKind::ConnectionRefused, Some(reason)) => {
            format!("{target} refused the connection: {}", close_failure(&reason, "listener"))
        }
        _ => format!("cannot connect to {target}: {error}"),
    })
}

/// `--connect-timeout`: seconds, more than 0 and at most an hour.
fn parse_connect_timeout(text: &str) -> Result<Duration, String> {
    let message = || format!("--connect-timeout must be seconds between 0 and 3600, got `{text}`");
    let secs: f64 = text.trim().parse().map_err(|_| message())?;
    match Duration::try_from_secs_f64(secs) {
        Ok(d) if !d.is_zero() && d <= Duration::from_secs(3600) => Ok(d),
        _ => Err(message()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<Result<Vec<u8>, io::ErrorKind>> {
        let mut reader = io::BufReader::with_capacity(4, input);
        let mut out = Vec::new();
        loop {
            match next_line(&mut reader, max) {
                Ok(Some(line)) => out.push(Ok(line)),
                Ok(None) => return out,
                Err(e) => {
                    out.push(Err(e.kind()));
                    return out;
                }
            }
        }
    }

    #[test]
    fn lines_lose_their_terminators() {
        let got = lines(b"alpha\nbeta\r\n\nlast", 100);
        let want: Vec<Result<Vec<u8>, io::ErrorKind>> =
            vec![Ok(b"alpha".to_vec()), Ok(b"beta".to_vec()), Ok(vec![]), Ok(b"last".to_vec())];
        assert_eq!(got, want);
        assert_eq!(lines(b"", 100), vec![]);
        assert_eq!(lines(b"one\n", 100), vec![Ok(b"one".to_vec())]);
    }

    #[test]
    fn a_line_over_the_limit_is_an_error() {
        assert_eq!(lines(b"12345\r\n", 5), vec![Ok(b"12345".to_vec())]);
        assert_eq!(lines(b"123456\n", 5), vec![Err(io::ErrorKind::FileTooLarge)]);
        assert_eq!(
            lines(b"ok\n1234567890123", 5),
            vec![Ok(b"ok".to_vec()), Err(io::ErrorKind::FileTooLarge)]
        );
    }

    #[test]
    fn connect_timeouts() {
        assert_eq!(parse_connect_timeout("1.5"), Ok(Duration::from_millis(1500)));
        for bad in ["0", "-1", "x", "3601", "NaN"] {
            assert!(parse_connect_timeout(bad).is_err(), "{bad}");
        }
    }
}
