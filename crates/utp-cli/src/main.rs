//! `utp`: the command-line tool of the utp workspace.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod decode;

/// uTP, rudp and TFTP over UDP, built on the sans-IO utp-proto state machines.
#[derive(Debug, Parser)]
#[command(name = "utp", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decode uTP packets given as hex (for example copied from a packet capture).
    Decode(decode::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Decode(args) => decode::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("utp: {message}");
            ExitCode::FAILURE
        }
    }
}
