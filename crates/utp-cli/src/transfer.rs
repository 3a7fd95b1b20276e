//! What `utp send` and `utp recv` share: the runtime, the socket settings, the pipeline
//! between a file thread and the stream, the progress bar, the summary, signals, and how
//! failures read.
//!
//! The stream runs on the async runtime; the file (or standard input or output) is read or
//! written (and, with `--sha256`, hashed) on a thread of its own, so disk and hashing work
//! overlap with the network. Chunks of up to [`CHUNK`] bytes travel between them through a
//! channel of [`QUEUE`] chunks.

use std::fmt::Write as _;
use std::fs::{File, Metadata};
use std::io::{self, IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use utp_proto::utp::Config;
use utp_tokio::utp_driver::{SocketConfig, UtpSocket};

use crate::Failure;

/// Bytes per read from the file or the stream, and per chunk between the two.
pub(crate) const CHUNK: usize = 256 * 1024;

/// Chunks in flight between the file thread and the stream (4 MiB).
pub(crate) const QUEUE: usize = 16;

/// A connection that hears nothing from its peer for this long fails. Both sides send a
/// keepalive after 29 s of silence, so only a dead peer (a killed process, a lost network)
/// trips it; without it a receiver would wait for a vanished sender forever.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The async runtime: one thread runs the stream and the socket's driver. Measured on
/// loopback (see `docs/cli.md`), a multi-threaded runtime was slower and spent about a
/// third more system time: the stream and the driver share one lock and hand work back
/// and forth, so a second worker adds wake-ups rather than parallelism.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(format!("cannot start the async runtime: {e}")))
}

/// The socket settings: the engine's defaults (libutp's timers) plus [`IDLE_TIMEOUT`].
pub(crate) fn socket_config() -> SocketConfig {
    let mut utp = Config::default();
    // A non-zero duration is always accepted.
    let _ = utp.set_idle_timeout(Some(IDLE_TIMEOUT));
    SocketConfig::new(utp)
}

/// A SHA-256 digest as lowercase hex.
pub(crate) fn hex(digest: &[u8]) -> String {
    let mut out = String::with_capacity(digest.len() * 2);
    for byte in digest {
        // Writing into a String cannot fail.
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// A running SHA-256, or nothing when hashing is off.
#[derive(Clone, Debug, Default)]
pub(crate) struct Hasher(Option<Sha256>);

impl Hasher {
    /// A hasher that hashes when `on`.
    pub(crate) fn new(on: bool) -> Self {
        Self(on.then(Sha256::new))
    }

    /// Hashes `data` next.
    pub(crate) fn update(&mut self, data: &[u8]) {
        if let Some(h) = &mut self.0 {
            h.update(data);
        }
    }

    /// The digest as hex, if hashing was on.
    pub(crate) fn finish(self) -> Option<String> {
        self.0.map(|h| hex(&h.finalize()))
    }
}

/// The progress bar on standard error: bytes, rate and (when the total is known) ETA. It is
/// drawn only when standard error is a terminal.
#[derive(Debug)]
pub(crate) struct Progress(ProgressBar);

impl Progress {
    /// A bar towards `total` bytes, or a spinner when the total is unknown.
    pub(crate) fn new(total: Option<u64>) -> Self {
        if !io::stderr().is_terminal() {
            return Self(ProgressBar::hidden());
        }
        let bar = match total {
            Some(total) => ProgressBar::new(total).with_style(style(BAR)),
            None => ProgressBar::new_spinner().with_style(style(SPINNER)),
        };
        bar.enable_steady_tick(Duration::from_millis(200));
        Self(bar)
    }

    /// Counts `n` more bytes.
    pub(crate) fn add(&self, n: usize) {
        self.0.inc(n as u64);
    }

    /// Removes the bar, so the summary line stands alone.
    pub(crate) fn clear(&self) {
        self.0.finish_and_clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}

/// The bar when the size is known (decimal units, like the summary's MB/s).
const BAR: &str =
    "{bar:30} {decimal_bytes}/{decimal_total_bytes} {decimal_bytes_per_sec} ETA {eta}";

/// The spinner when it is not.
const SPINNER: &str = "{spinner} {decimal_bytes} {decimal_bytes_per_sec} {elapsed}";

/// A progress style from one of the templates above, which a test checks are valid.
fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// What one transfer moved, printed when it is over.
#[derive(Debug, Serialize)]
pub(crate) struct Summary {
    /// Bytes of the stream.
    pub(crate) bytes: u64,
    /// From the connection's start (handshake done or connection accepted) to its end
    /// (everything acknowledged, or the end of stream written out).
    pub(crate) seconds: f64,
    /// Megabytes (10^6 bytes) per second.
    pub(crate) mbps: f64,
    /// The other side's address.
    pub(crate) peer: SocketAddr,
    /// SHA-256 of the bytes, as hex; `None` (JSON `null`) without `--sha256`.
    pub(crate) sha256: Option<String>,
    /// The file read or written; `None` for standard input or output.
    pub(crate) file: Option<String>,
}

impl Summary {
    /// A summary of `bytes` moved in `elapsed`.
    pub(crate) fn new(
        bytes: u64,
        elapsed: Duration,
        peer: SocketAddr,
        sha256: Option<String>,
        file: Option<String>,
    ) -> Self {
        let seconds = elapsed.as_secs_f64();
        let mbps = if seconds > 0.0 { bytes as f64 / seconds / 1e6 } else { 0.0 };
        Self { bytes, seconds, mbps, peer, sha256, file }
    }

    /// Prints the summary: one JSON object on standard output with `json`, else one line
    /// on standard error, `sent 268435456 bytes in 1.32 s (203.4 MB/s) to 127.0.0.1:9000`
    /// (`verb` and `preposition` say which side this is).
    pub(crate) fn print(&self, verb: &str, preposition: &str, json: bool) -> Result<(), Failure> {
        if json {
            print_json(self, "summary", false)
        } else {
            let mut line = format!(
                "{verb} {} bytes in {:.2} s ({:.1} MB/s) {preposition} {}",
                self.bytes, self.seconds, self.mbps, self.peer
            );
            if let Some(sha256) = &self.sha256 {
                let _ = write!(line, ", sha256 {sha256}");
            }
            eprintln!("{line}");
            Ok(())
        }
    }
}

/// Waits (at most 200 ms) until `socket` holds no connection, so that a RESET queued by a
/// dropped stream leaves before the process exits.
pub(crate) async fn settle(socket: &UtpSocket) {
    for _ in 0..40 {
        if socket.connection_count() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Ctrl-C and (on Unix) SIGTERM.
#[derive(Debug)]
pub(crate) struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers; must run inside the runtime.
    pub(crate) fn new() -> Result<Self, Failure> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let install = |kind| {
                signal(kind).map_err(|e| {
                    Failure::Runtime(format!("cannot install the signal handlers: {e}"))
                })
            };
            Ok(Self {
                interrupt: install(SignalKind::interrupt())?,
                terminate: install(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Resolves when a signal arrives. Cancel-safe.
    pub(crate) async fn wait(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The unspecified local address of `peer`'s family, with port 0: where a client binds.
pub(crate) fn any_local(peer: SocketAddr) -> SocketAddr {
    if peer.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() }
}

/// Opens `path` for reading, refusing a directory with `{path} is a directory; {hint}`.
/// Returns the file and its metadata.
pub(crate) fn open_input(path: &Path, hint: &str) -> Result<(File, Metadata), Failure> {
    let fail = |e: io::Error| {
        Failure::Runtime(format!("cannot read {}: {e}; check the path", path.display()))
    };
    let file = File::open(path).map_err(fail)?;
    let meta = file.metadata().map_err(fail)?;
    if meta.is_dir() {
        return Err(Failure::Runtime(format!("{} is a directory; {hint}", path.display())));
    }
    Ok((file, meta))
}

/// Prints `value` as one JSON object on a line of its own, on standard output (standard
/// error with `to_stderr`, when the data went to standard output), and flushes it. `what`
/// names it in the errors ("summary", "counters").
pub(crate) fn print_json(
    value: &impl Serialize,
    what: &str,
    to_stderr: bool,
) -> Result<(), Failure> {
    let line = serde_json::to_string(value)
        .map_err(|e| Failure::Runtime(format!("cannot encode the {what}: {e}")))?;
    let printed = if to_stderr {
        let mut stderr = io::stderr().lock();
        writeln!(stderr, "{line}").and_then(|()| stderr.flush())
    } else {
        let mut stdout = io::stdout().lock();
        writeln!(stdout, "{line}").and_then(|()| stdout.flush())
    };
    printed.map_err(|e| Failure::Runtime(format!("cannot print the {what}: {e}")))
}

/// Prints `line` on standard error and flushes it (tests and scripts read it as it comes).
pub(crate) fn announce(line: &str) {
    let mut stderr = io::stderr().lock();
    let _ = writeln!(stderr, "{line}");
    let _ = stderr.flush();
}

/// Why a stream failed, from the point of view of the side that saw it (`peer` names the
/// other side: "receiver" or "sender"), after `bytes` bytes.
pub(crate) fn stream_failure(error: &io::Error, peer: &str, bytes: u64) -> String {
    match error.kind() {
        io::ErrorKind::ConnectionReset => format!(
            "the {peer} reset the connection after {bytes} bytes (it failed or was \
             interrupted: see its messages)"
        ),
        io::ErrorKind::TimedOut => format!(
            "the {peer} stopped answering after {bytes} bytes (it is gone, or the network \
             between us is)"
        ),
        _ => format!("the transfer failed after {bytes} bytes: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_digest_of_nothing() {
        let mut h = Hasher::new(true);
        h.update(b"");
        assert_eq!(
            h.finish().as_deref(),
            Some("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
        assert_eq!(Hasher::new(false).finish(), None);
    }

    #[test]
    fn progress_templates_are_valid() {
        for template in [BAR, SPINNER] {
            assert!(ProgressStyle::with_template(template).is_ok(), "{template}");
        }
    }

    #[test]
    fn summary_line_and_json() {
        let s = Summary::new(
            2_000_000,
            Duration::from_secs(2),
            "127.0.0.1:9000".parse().unwrap(),
            None,
            None,
        );
        assert!((s.mbps - 1.0).abs() < 1e-9);
        let json: serde_json::Value = serde_json::to_value(&s).unwrap();
        assert_eq!(json["bytes"], 2_000_000);
        assert_eq!(json["peer"], "127.0.0.1:9000");
    }
}
