//! `utp tftp serve`: serve a directory over TFTP until interrupted.
//!
//! Read-only unless writes are enabled. Uploads are confined to the root like reads, go to
//! a temporary file, and replace or create their target only once complete. One line on
//! standard error per transfer finished or request refused.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use utp_proto::tftp::{Config, Direction, Rollover};
use utp_proto::wire::tftp::ErrorCode;
use utp_tokio::tftp::{ServerConfig, ServerEvent, WritePolicy};

use crate::transfer::{self, Signals};
use crate::{Failure, size};

use super::{parse_in, parse_rollover, parse_timeout};

/// The default `--max-upload`: 4 GiB.
const DEFAULT_MAX_UPLOAD: &str = "4G";

/// Arguments of `utp tftp serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The directory to serve; nothing outside it can be read or written.
    #[arg(long, value_name = "DIR")]
    root: PathBuf,

    /// Address to listen on, as IP:PORT (port 0 picks a free port; the line `listening on
    /// ADDR` on standard error tells which). Ports below 1024 need privileges.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:69")]
    listen: SocketAddr,

    /// Accept uploads that create new files (the same as --allow-create).
    #[arg(long)]
    allow_write: bool,

    /// Accept uploads that create new files.
    #[arg(long)]
    allow_create: bool,

    /// Accept uploads that replace existing files (with --allow-write or --allow-create,
    /// new files too).
    #[arg(long)]
    allow_overwrite: bool,

    /// The largest upload accepted, in bytes, or with a K, M, G or T suffix (powers of
    /// 1024). Checked against the size a client announces and again as data arrives.
    #[arg(long, value_name = "BYTES", default_value = DEFAULT_MAX_UPLOAD, value_parser = parse_max_upload)]
    max_upload: u64,

    /// Transfers in progress at once; more requests are refused with "server busy".
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = parse_max_transfers)]
    max_transfers: usize,

    /// The largest block size granted (a larger request is lowered to it).
    #[arg(long, value_name = "BYTES", default_value_t = 65464, value_parser = parse_max_blksize)]
    max_blksize: u16,

    /// The largest window granted, in blocks (a larger request is lowered to it).
    #[arg(long, value_name = "BLOCKS", default_value_t = 64, value_parser = parse_max_windowsize)]
    max_windowsize: u16,

    /// Retransmission timeout in seconds (1 to 255) when the client does not ask for one.
    /// Default: adaptive, starting at 1 s.
    #[arg(long, value_name = "SECS", value_parser = parse_timeout)]
    timeout: Option<u8>,

    /// What follows block 65535: 0 (the common choice) or 1. Must match the clients'.
    #[arg(long, value_name = "0|1", default_value = "0", value_parser = parse_rollover)]
    rollover: Rollover,
}

/// Serves until SIGINT or SIGTERM.
pub(crate) fn run(args: &Args) -> Result<(), Failure> {
    let config = config(args);
    let runtime = transfer::runtime()?;
    runtime.block_on(async {
        let server =
            utp_tokio::tftp::bind(args.listen, config).map_err(|e| bind_failure(args, &e))?;
        let local = server
            .local_addr()
            .map_err(|e| Failure::Runtime(format!("cannot read the listening address: {e}")))?;
        // Installed before announcing, so a signal sent as soon as the line is read is handled.
        let mut signals = Signals::new()?;
        transfer::announce(&format!("listening on {local}"));
        tokio::select! {
            () = server.run() => {}
            () = signals.wait() => {}
        }
        Ok(())
    })
}

/// The server's settings from the flags.
fn config(args: &Args) -> ServerConfig {
    let policy = WritePolicy {
        allow_write: args.allow_write || args.allow_create || args.allow_overwrite,
        allow_create: args.allow_write || args.allow_create,
        allow_overwrite: args.allow_overwrite,
        max_upload: Some(args.max_upload),
    };
    let mut protocol = Config::default();
    // Every value was range-checked by its parser.
    let _ = protocol.set_max_blksize(args.max_blksize);
    let _ = protocol.set_max_windowsize(args.max_windowsize);
    let _ = protocol.set_rollover(args.rollover);
    if let Some(secs) = args.timeout {
        let _ = protocol.set_timeout(std::time::Duration::from_secs(secs.into()));
    }
    let mut config = ServerConfig::new(args.root.clone());
    config.policy = policy;
    config.max_transfers = args.max_transfers;
    config.protocol = Arc::new(protocol);
    config.on_event = Some(Arc::new(|event| {
        if let Some(line) = log_line(&event) {
            transfer::announce(&line);
        }
    }));
    config
}

/// The log line for a server event; `None` for events not logged.
fn log_line(event: &ServerEvent) -> Option<String> {
    match event {
        ServerEvent::Finished { peer, file, direction, bytes, elapsed, result } => {
            let (verb, preposition, failed) = match direction {
                Direction::Send => ("sent", "to", "send"),
                Direction::Receive => ("received", "from", "receive"),
            };
            Some(match result {
                Ok(()) => {
                    let seconds = elapsed.as_secs_f64();
                    let mbps = if seconds > 0.0 { *bytes as f64 / seconds / 1e6 } else { 0.0 };
                    format!(
                        "{verb} {file:?} {preposition} {peer}: {bytes} bytes in {seconds:.2} s \
                         ({mbps:.1} MB/s)"
                    )
                }
                Err(reason) => {
                    format!(
                        "failed to {failed} {file:?} {preposition} {peer} after {bytes} bytes: {reason}"
                    )
                }
            })
        }
        ServerEvent::Refused { peer, file, direction, code, message, reason } => {
            let request = match direction {
                Direction::Send => "read",
                Direction::Receive => "write",
            };
            let mut line =
                format!("refused {request} of {file:?} from {peer} with ERROR {code}: {message}");
            // ERROR 0 carries a generic message; the reason has the detail.
            if *code == ErrorCode::NotDefined && reason != message {
                line.push_str(&format!(" ({reason})"));
            }
            Some(line)
        }
        _ => None,
    }
}

/// Why listening failed, and what to try.
fn bind_failure(args: &Args, e: &io::Error) -> Failure {
    let hint = match e.kind() {
        io::ErrorKind::PermissionDenied if args.listen.port() < 1024 => {
            "; ports below 1024 need root or CAP_NET_BIND_SERVICE (or use --listen 0.0.0.0:6969)"
        }
        io::ErrorKind::AddrInUse => "; is another TFTP server running there?",
        _ => "",
    };
    Failure::Runtime(format!("cannot serve {} on {}: {e}{hint}", args.root.display(), args.listen))
}

/// `--max-upload`: a size, as [`size::parse`] reads it.
fn parse_max_upload(text: &str) -> Result<u64, String> {
    size::parse(text, "--max-upload")
}

fn parse_max_transfers(text: &str) -> Result<usize, String> {
    parse_in(text, 1..=65535, "--max-transfers must be between 1 and 65535").map(|v| v as usize)
}

fn parse_max_blksize(text: &str) -> Result<u16, String> {
    parse_in(text, 8..=65464, "--max-blksize must be between 8 and 65464").map(|v| v as u16)
}

fn parse_max_windowsize(text: &str) -> Result<u16, String> {
    parse_in(text, 1..=32768, "--max-windowsize must be between 1 and 32768").map(|v| v as u16)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn max_upload_is_a_size() {
        assert_eq!(parse_max_upload("4G"), Ok(4 << 30));
        assert!(parse_max_upload("4X").unwrap_err().starts_with("--max-upload must be a size"));
    }

    #[test]
    fn write_flags_make_the_policy() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: Args,
        }
        let policy = |flags: &[&str]| {
            let mut argv = vec!["serve", "--root", "."];
            argv.extend_from_slice(flags);
            let cli = <Cli as clap::Parser>::parse_from(argv);
            let p = config(&cli.args).policy;
            (p.allow_write, p.allow_create, p.allow_overwrite)
        };
        assert_eq!(policy(&[]), (false, false, false));
        assert_eq!(policy(&["--allow-write"]), (true, true, false));
        assert_eq!(policy(&["--allow-create"]), (true, true, false));
        assert_eq!(policy(&["--allow-overwrite"]), (true, false, true));
        assert_eq!(policy(&["--allow-write", "--allow-overwrite"]), (true, true, true));
    }

    #[test]
    fn log_lines() {
        let peer = "127.0.0.1:5000".parse().unwrap();
        let done = ServerEvent::Finished {
            peer,
            file: "a.bin".into(),
            direction: Direction::Send,
            bytes: 2_000_000,
            elapsed: Duration::from_secs(1),
            result: Ok(()),
        };
        assert_eq!(
            log_line(&done).unwrap(),
            "sent \"a.bin\" to 127.0.0.1:5000: 2000000 bytes in 1.00 s (2.0 MB/s)"
        );
    }
}
