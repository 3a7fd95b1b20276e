//! Project automation, run as `cargo xtask <command>`.
//!
//! - `cargo xtask test`: installs whatever the tests need on this machine (real peers
//!   from apt, npm and PyPI as they are added) and runs every test of the workspace,
//!   including benchmarks in test mode and doctests. This is the test command README.md
//!   gives and `.ci/run` calls.

use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("help" | "--help" | "-h") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  test [ARGS...]   install what the tests need, then run every test; ARGS go to each
                   `cargo test` run (e.g. `cargo xtask test -- --nocapture`)";

/// Runs every test: unit, integration, property, simulator, corpus replay, benches in
/// test mode, and doctests.
fn test(extra: &[String]) -> Result<(), String> {
    // Real peers (libutp, tftp-hpa, curl, ...) are installed here as their interop tests
    // are added; today every test runs on the toolchain alone.
    // The fuzz targets are libFuzzer binaries: selected explicitly they would run the
    // fuzzer; their corpus is replayed by utp-proto's `fuzz_corpus` test instead.
    cargo(&["test", "--workspace", "--exclude", "utp-fuzz", "--all-targets"], extra)?;
    cargo(&["test", "--workspace", "--exclude", "utp-fuzz", "--doc"], extra)?;
    Ok(())
}

fn cargo(args: &[&str], extra: &[String]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("xtask: running cargo {} {}", args.join(" "), extra.join(" "));
    let status = Command::new(&cargo)
        .args(args)
        .args(extra)
        .status()
        .map_err(|e| format!("could not run {cargo}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` failed ({status})", args.join(" ")))
    }
}
