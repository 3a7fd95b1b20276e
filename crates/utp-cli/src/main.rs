//! `utp`: the command-line tool of the utp workspace.

use clap::Parser;

/// uTP, rudp and TFTP transfers over UDP, built on the sans-IO utp-proto machines.
#[derive(Debug, Parser)]
#[command(name = "utp", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
