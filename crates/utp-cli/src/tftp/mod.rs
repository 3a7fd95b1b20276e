//! `utp tftp`: a TFTP server (`serve`) and client (`get`, `put`) on the driver's
//! `utp_driver::tftp`, over tokio.
//!
//! What the client commands share lives here: the option flags, the server address, the
//! progress bar, the summary and how failures read.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use clap::Subcommand;
use serde::Serialize;
use utp_proto::tftp::{Config, OptionRequest, Rollover, TransferError};
use utp_proto::wire::tftp::{MAX_DATA_LEN, Mode};
use utp_tokio::tftp::{ClientOptions, Progress, Summary, TftpError};

use crate::Failure;
use crate::transfer;

mod get;
mod put;
mod serve;

/// The port of a TFTP server when ADDR names none.
const DEFAULT_PORT: u16 = 69;

/// Bytes a download holds between the network and the file. The engine's default (1 MiB)
/// overflows while a disk write stalls with large windows (64 blocks of 8 KiB and more),
/// and every overflow costs the rest of the window: measured on loopback, 8 MiB made
/// `--blksize 8192 --windowsize 64` steadily faster (see docs/cli.md). One transfer per
/// process, so the memory is affordable here; the server keeps the engine's default.
const CLIENT_RECV_BUFFER: usize = 8 << 20;

/// Arguments of `utp tftp`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve a directory over TFTP (read-only unless writes are enabled).
    Serve(serve::Args),
    /// Download a file from a TFTP server.
    Get(get::Args),
    /// Upload a file (or standard input) to a TFTP server.
    Put(put::Args),
}

/// Runs the subcommand.
pub(crate) fn run(args: &Args) -> Result<(), Failure> {
    match &args.command {
        Command::Serve(args) => serve::run(args),
        Command::Get(args) => get::run(args),
        Command::Put(args) => put::run(args),
    }
}

/// The flags `get` and `put` share.
#[derive(Debug, clap::Args)]
struct ClientFlags {
    /// Block size to ask for, in bytes (RFC 2348); a server that ignores options uses 512.
    #[arg(long, value_name = "BYTES", default_value_t = 1428, value_parser = parse_blksize)]
    blksize: u16,

    /// Blocks sent per acknowledgement to ask for (RFC 7440); a server that ignores options
    /// sends one at a time.
    #[arg(long, value_name = "BLOCKS", default_value_t = 16, value_parser = parse_windowsize)]
    windowsize: u16,

    /// Transfer mode: `octet` moves the bytes as they are, `netascii` converts line ends.
    #[arg(long, value_name = "MODE", default_value = "octet", value_parser = parse_mode)]
    mode: Mode,

    /// Send a plain RFC 1350 request, without options (no blksize, windowsize, timeout or
    /// tsize), for servers that mishandle them.
    #[arg(long, conflicts_with_all = ["blksize", "windowsize"])]
    no_options: bool,

    /// Retransmission timeout in seconds (1 to 255), asked of the server too unless
    /// --no-options. Default: adaptive, starting at 1 s.
    #[arg(long, value_name = "SECS", value_parser = parse_timeout)]
    timeout: Option<u8>,

    /// What follows block 65535: 0 (the common choice) or 1. Must match the server's.
    #[arg(long, value_name = "0|1", default_value = "0", value_parser = parse_rollover)]
    rollover: Rollover,

    /// Print the summary as one JSON object instead of a line on standard error (on standard
    /// output, or on standard error when the data goes to standard output).
    #[arg(long)]
    json: bool,
}

impl ClientFlags {
    /// The client options; `tsize` is the size to announce (`put`) or `Some(0)` to ask for
    /// it (`get`).
    fn options(&self, tsize: Option<u64>) -> ClientOptions {
        let mut protocol = Config::default();
        // At least 1 byte: accepted.
        let _ = protocol.set_recv_buffer(CLIENT_RECV_BUFFER);
        if let Some(secs) = self.timeout {
            // 1 to 255 s, checked by the parser.
            let _ = protocol.set_timeout(std::time::Duration::from_secs(secs.into()));
        }
        let _ = protocol.set_rollover(self.rollover);
        let request = if self.no_options {
            OptionRequest::NONE
        } else {
            OptionRequest {
                blksize: Some(self.blksize),
                windowsize: Some(self.windowsize),
                timeout: self.timeout,
                tsize,
            }
        };
        ClientOptions { request, mode: self.mode, protocol: Arc::new(protocol) }
    }
}

fn parse_blksize(text: &str) -> Result<u16, String> {
    let range = 8..=MAX_DATA_LEN as u64;
    parse_in(text, range, "--blksize must be between 8 and 65464").map(|v| v as u16)
}

fn parse_windowsize(text: &str) -> Result<u16, String> {
    parse_in(text, 1..=65535, "--windowsize must be between 1 and 65535").map(|v| v as u16)
}

fn parse_timeout(text: &str) -> Result<u8, String> {
    parse_in(text, 1..=255, "--timeout must be between 1 and 255 seconds").map(|v| v as u8)
}

fn parse_rollover(text: &str) -> Result<Rollover, String> {
    match text {
        "0" => Ok(Rollover::ToZero),
        "1" => Ok(Rollover::ToOne),
        _ => Err("--rollover must be 0 or 1 (the block number after 65535)".into()),
    }
}

fn parse_mode(text: &str) -> Result<Mode, String> {
    match Mode::parse(text.as_bytes()) {
        Some(mode @ (Mode::Octet | Mode::Netascii)) => Ok(mode),
        _ => Err("--mode must be octet or netascii".into()),
    }
}

/// A whole number in `range`, or `message`.
fn parse_in(
    text: &str,
    range: std::ops::RangeInclusive<u64>,
    message: &str,
) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(v) if range.contains(&v) => Ok(v),
        _ => Err(message.to_owned()),
    }
}

/// A TFTP server as given on the command line: HOST, HOST:PORT, an IP address, or
/// `[IPv6]:PORT`; the port defaults to 69.
#[derive(Clone, Debug, Eq, PartialEq)]
struct ServerAddr {
    host: String,
    port: u16,
}

impl ServerAddr {
    fn parse(text: &str) -> Result<Self, String> {
        let malformed = || {
            format!(
                "expected HOST or HOST:PORT (for example 192.0.2.7, 192.0.2.7:69 or \
                 [2001:db8::7]:69), got `{text}`"
            )
        };
        let ip = |ip: IpAddr, port| Self { host: ip.to_string(), port };
        let parsed = if let Ok(addr) = text.parse::<SocketAddr>() {
            ip(addr.ip(), addr.port())
        } else if let Ok(addr) = text.parse::<IpAddr>() {
            ip(addr, DEFAULT_PORT)
        } else if let Some(v6) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            ip(IpAddr::V6(v6.parse::<Ipv6Addr>().map_err(|_| malformed())?), DEFAULT_PORT)
        } else {
            let (host, port) = match text.rsplit_once(':') {
                Some((host, port)) => (host, port.parse::<u16>().map_err(|_| malformed())?),
                None => (text, DEFAULT_PORT),
            };
            if host.is_empty()
                || host.contains([':', '[', ']', '/'])
                || host.contains(char::is_whitespace)
            {
                return Err(malformed());
            }
            Self { host: host.to_owned(), port }
        };
        if parsed.port == 0 {
            return Err(format!("`{text}`: port 0 cannot be a server's port"));
        }
        Ok(parsed)
    }

    /// Resolves the host, preferring IPv4 (as `utp send` does).
    async fn resolve(&self) -> Result<SocketAddr, Failure> {
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, self.port));
        }
        let resolved: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| {
                Failure::Runtime(format!("cannot resolve {}: {e}; check the host name", self.host))
            })?
            .collect();
        resolved
            .iter()
            .find(|a| a.is_ipv4())
            .or_else(|| resolved.first())
            .copied()
            .ok_or_else(|| Failure::Runtime(format!("{} resolves to no address", self.host)))
    }
}

/// The progress bar, made when the first report comes and remade once the size is known;
/// dropping it clears it.
#[derive(Debug, Default)]
struct ProgressView {
    bar: Option<(transfer::Progress, Option<u64>)>,
    shown: u64,
}

impl ProgressView {
    fn update(&mut self, progress: Progress) {
        let stale = !matches!(&self.bar, Some((_, total)) if *total == progress.total);
        if stale {
            let bar = transfer::Progress::new(progress.total.filter(|t| *t > 0));
            bar.add(usize::try_from(progress.bytes).unwrap_or(usize::MAX));
            self.bar = Some((bar, progress.total));
        } else if let Some((bar, _)) = &self.bar {
            bar.add(usize::try_from(progress.bytes.saturating_sub(self.shown)).unwrap_or(0));
        }
        self.shown = progress.bytes;
    }
}

/// What `get` and `put` print at the end: the keys of `utp send`'s summary plus the block
/// and window sizes the transfer ran with.
#[derive(Debug, Serialize)]
struct TftpSummary {
    #[serde(flatten)]
    base: transfer::Summary,
    blksize: u16,
    windowsize: u16,
}

impl TftpSummary {
    fn new(summary: &Summary, server: SocketAddr, file: Option<String>) -> Self {
        Self {
            base: transfer::Summary::new(summary.bytes, summary.elapsed, server, None, file),
            blksize: summary.negotiated.blksize,
            windowsize: summary.negotiated.windowsize,
        }
    }

    /// Prints the summary: `verb N bytes in S s (R MB/s) PREPOSITION SERVER (blksize B,
    /// windowsize W)` on standard error, or with `json` one JSON object on standard output
    /// (standard error when `stdout_busy`: the data went there).
    fn print(
        &self,
        verb: &str,
        preposition: &str,
        json: bool,
        stdout_busy: bool,
    ) -> Result<(), Failure> {
        if json {
            transfer::print_json(self, "summary", stdout_busy)
        } else {
            let b = &self.base;
            transfer::announce(&format!(
                "{verb} {} bytes in {:.2} s ({:.1} MB/s) {preposition} {} (blksize {}, windowsize {})",
                b.bytes, b.seconds, b.mbps, b.peer, self.blksize, self.windowsize
            ));
            Ok(())
        }
    }
}

/// Why a transfer with `server` failed, and what to check. `local` says what was done to
/// the local end ("write FILE", "read standard input").
fn failure(error: TftpError, server: SocketAddr, local: &str) -> Failure {
    match error {
        TftpError::Request(e) => Failure::Usage(format!("{e}")),
        TftpError::Transfer(TransferError::Peer { code, message }) => {
            Failure::Runtime(format!("{server} answered ERROR {code}: {message}"))
        }
        TftpError::Transfer(TransferError::TimedOut { retries }) => Failure::Runtime(format!(
            "no answer from {server} after {retries} retransmissions: is a TFTP server running \
             there, and can UDP reach it (its replies come from a new port, which some \
             firewalls drop)?"
        )),
        TftpError::Transfer(TransferError::OptionsRefused(e)) => Failure::Runtime(format!(
            "the server's answer to our options is not acceptable ({e}); try --no-options"
        )),
        TftpError::Transfer(TransferError::SizeMismatch { announced, received }) => {
            Failure::Runtime(format!(
                "received {received} bytes but {announced} were announced; the transfer was \
                 discarded"
            ))
        }
        TftpError::Transfer(e) => Failure::Runtime(format!("the transfer failed: {e}")),
        TftpError::File { source, .. } => {
            Failure::Runtime(format!("cannot {local}: {source}; the transfer was aborted"))
        }
        TftpError::Socket(e) => Failure::Runtime(format!("cannot open a UDP socket: {e}")),
        e => Failure::Runtime(format!("the transfer failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses() {
        let at = |host: &str, port| Ok(ServerAddr { host: host.into(), port });
        assert_eq!(ServerAddr::parse("192.0.2.7"), at("192.0.2.7", 69));
        assert_eq!(ServerAddr::parse("192.0.2.7:6969"), at("192.0.2.7", 6969));
        assert_eq!(ServerAddr::parse("::1"), at("::1", 69));
        assert_eq!(ServerAddr::parse("[::1]"), at("::1", 69));
        assert_eq!(ServerAddr::parse("[::1]:70"), at("::1", 70));
        assert_eq!(ServerAddr::parse("tftp.example"), at("tftp.example", 69));
        assert_eq!(ServerAddr::parse("tftp.example:70"), at("tftp.example", 70));
        for bad in ["", ":69", "host:", "host:port", "host:70000", "[::1", "a b", "host:0"] {
            assert!(ServerAddr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn option_ranges_say_what_to_fix() {
        assert_eq!(parse_blksize("5"), Err("--blksize must be between 8 and 65464".into()));
        assert_eq!(parse_blksize("65464"), Ok(65464));
        assert!(parse_blksize("65465").is_err());
        assert_eq!(parse_windowsize("0"), Err("--windowsize must be between 1 and 65535".into()));
        assert!(parse_timeout("256").is_err());
        assert_eq!(parse_rollover("1"), Ok(Rollover::ToOne));
        assert_eq!(parse_mode("NETASCII"), Ok(Mode::Netascii));
        assert!(parse_mode("mail").is_err());
    }

    #[test]
    fn summary_json_has_the_send_keys_and_the_sizes() {
        let summary = TftpSummary {
            base: transfer::Summary::new(
                10,
                std::time::Duration::from_secs(1),
                "127.0.0.1:69".parse().unwrap(),
                None,
                None,
            ),
            blksize: 1428,
            windowsize: 16,
        };
        let json = serde_json::to_value(&summary).unwrap();
        for key in ["bytes", "seconds", "mbps", "peer", "sha256", "file", "blksize", "windowsize"] {
            assert!(json.get(key).is_some(), "{key} missing from {json}");
        }
    }
}
