//! `utp`: the command-line tool of the utp workspace.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod decode;
mod recv;
mod relay;
mod rudp;
mod send;
mod size;
mod tftp;
mod transfer;

/// uTP, rudp and TFTP over UDP, built on the sans-IO utp-proto state machines.
#[derive(Debug, Parser)]
#[command(name = "utp", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[allow(clippy::large_enum_variant, reason = "parsed once, at startup")]
#[derive(Debug, Subcommand)]
enum Command {
    /// Decode uTP packets given as hex (for example copied from a packet capture).
    Decode(decode::Args),
    /// Relay UDP datagrams through a simulated impaired link (loss, delay, reordering...).
    Relay(relay::Args),
    /// Send a file (or standard input) over one uTP stream to `utp recv`.
    Send(send::Args),
    /// Receive uTP streams into a file (or standard output).
    Recv(recv::Args),
    /// rudp messages: listen and print them, or send files and lines as messages.
    Rudp(rudp::Args),
    /// TFTP: serve a directory, or get and put files.
    Tftp(tftp::Args),
}

/// Why a subcommand failed, which decides the exit status.
#[derive(Debug)]
enum Failure {
    /// The arguments cannot work (exit status 2, as for clap's own usage errors).
    Usage(String),
    /// Running failed (exit status 1).
    Runtime(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Decode(args) => decode::run(&args).map_err(Failure::Runtime),
        Command::Relay(args) => relay::run(&args),
        Command::Send(args) => send::run(&args),
        Command::Recv(args) => recv::run(&args),
        Command::Rudp(args) => rudp::run(&args),
        Command::Tftp(args) => tftp::run(&args),
    };
    let (message, status) = match result {
        Ok(()) => return ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => (message, ExitCode::from(2)),
        Err(Failure::Runtime(message)) => (message, ExitCode::FAILURE),
    };
    eprintln!("utp: {message}");
    status
}
