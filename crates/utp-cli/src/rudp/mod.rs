//! `utp rudp`: whole messages over rudp (docs/rudp.md), on the driver's
//! `utp_driver::rudp` over tokio. `listen` prints what arrives (one line per message, the
//! raw bytes, or JSON); `send` sends files or lines as messages.
//!
//! What the two share lives here: the engine's settings, the connection's failures as
//! sentences, and the short wait that lets a CLOSE's repeats leave before the process exits.

use std::io;
use std::time::Duration;

use clap::Subcommand;
use utp_tokio::rudp::{CloseCode, CloseReason, ConnectionStats, Error};

use crate::Failure;

mod listen;
mod send;

/// The longest close reason the protocol carries.
const MAX_REASON: usize = 512;

/// The longest wait, after closing, for the CLOSE's two repeats to leave.
const CLOSE_REPEATS_WAIT: Duration = Duration::from_secs(1);

/// Arguments of `utp rudp`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Accept rudp connections and print every message received (its length and SHA-256,
    /// its bytes, or JSON).
    Listen(listen::Args),
    /// Send files (or the lines of standard input) as rudp messages to `utp rudp listen`.
    Send(send::Args),
}

/// Runs the subcommand.
pub(crate) fn run(args: &Args) -> Result<(), Failure> {
    match &args.command {
        Command::Listen(args) => listen::run(args),
        Command::Send(args) => send::run(args),
    }
}

/// Why a connection ended badly, as a sentence about the `peer` ("receiver" or "sender"),
/// from the [`Error`] inside `error` (its kind otherwise).
fn connection_failure(error: &io::Error, peer: &str) -> String {
    let inner = error.get_ref().and_then(|e| e.downcast_ref::<Error>());
    match inner {
        Some(Error::Closed(reason) | Error::Refused(reason)) => close_failure(reason, peer),
        Some(Error::DriverStopped) => "the UDP socket failed (its driver stopped)".to_owned(),
        _ => match error.kind() {
            io::ErrorKind::TimedOut => {
                format!("the {peer} stopped answering (it is gone, or the network between us is)")
            }
            _ => error.to_string(),
        },
    }
}

/// Why a connection ended, as a sentence about the `peer`.
fn close_failure(reason: &CloseReason, peer: &str) -> String {
    match reason {
        CloseReason::Peer { code: CloseCode::UnknownConnection, .. } => format!(
            "the {peer} no longer knows this connection (it restarted, or forgot the \
             connection after closing it)"
        ),
        CloseReason::Peer { code, reason } if reason.is_empty() => {
            format!("the {peer} closed the connection with code {code}")
        }
        CloseReason::Peer { code, reason } => {
            format!("the {peer} closed the connection with code {code}: {reason}")
        }
        CloseReason::PingTimeout { unanswered } => format!(
            "the {peer} stopped answering ({unanswered} pings unanswered): it is gone, or the \
             network between us is"
        ),
        CloseReason::HandshakeTimeout => format!("the {peer} did not answer the handshake"),
        CloseReason::ProtocolViolation(what) => {
            format!("the {peer} broke the protocol ({what}); the connection was closed with code 2")
        }
        CloseReason::LimitExceeded(what) => {
            format!("the {peer} exceeded a limit ({what}); the connection was closed with code 3")
        }
        other => format!("the connection ended: {other}"),
    }
}

/// `reason` cut (at a character boundary) to what a CLOSE carries.
fn close_reason(reason: &str) -> &str {
    if reason.len() <= MAX_REASON {
        return reason;
    }
    let mut end = MAX_REASON;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// How long to stay after a `close`, so the CLOSE's two repeats (a probe timeout apart)
/// leave too and one lost CLOSE does not leave the peer waiting for its ping timeout. At
/// most [`CLOSE_REPEATS_WAIT`]; `stats` are the connection's, read before closing.
fn close_repeats_wait(stats: Option<&ConnectionStats>) -> Duration {
    let rto = stats.map_or(Duration::from_millis(200), |s| s.rto);
    (rto * 2 + Duration::from_millis(5)).min(CLOSE_REPEATS_WAIT)
}

/// Megabytes (10^6 bytes) per second.
fn mbps(bytes: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 { bytes as f64 / seconds / 1e6 } else { 0.0 }
}

/// `n thing` or `n things`.
fn plural(n: u64, thing: &str) -> String {
    if n == 1 { format!("1 {thing}") } else { format!("{n} {thing}s") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_name_the_peer_code_and_reason() {
        let closed = |reason| io::Error::from(Error::Closed(reason));
        let text = connection_failure(
            &closed(CloseReason::Peer { code: CloseCode::Application(4), reason: "boom".into() }),
            "receiver",
        );
        assert_eq!(
            text,
            "the receiver closed the connection with code 4 (application error): boom"
        );
        let text =
            connection_failure(&closed(CloseReason::PingTimeout { unanswered: 4 }), "sender");
        assert!(text.starts_with("the sender stopped answering (4 pings"), "{text}");
        let text = connection_failure(
            &io::Error::from(Error::Refused(CloseReason::HandshakeTimeout)),
            "x",
        );
        assert_eq!(text, "the x did not answer the handshake");
    }

    #[test]
    fn reasons_are_cut_at_a_character_boundary() {
        assert_eq!(close_reason("short"), "short");
        let long = "é".repeat(300);
        let cut = close_reason(&long);
        assert!(cut.len() <= MAX_REASON && cut.len() >= MAX_REASON - 1, "{}", cut.len());
    }

    #[test]
    fn plurals() {
        assert_eq!(plural(1, "message"), "1 message");
        assert_eq!(plural(0, "message"), "0 messages");
    }
}
