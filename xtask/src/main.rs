//! Project automation, run as `cargo xtask <command>`.
//!
//! - `cargo xtask test`: installs the real peers the interop tests run against (the
//!   libutp binding from npm, pinned in `interop/`) and runs every test of the workspace,
//!   peers included, plus benchmarks in test mode and doctests. This is the test command
//!   README.md gives and `.ci/run` calls.
//! - `cargo xtask perf-libutp`: the side-by-side loopback comparison with libutp whose
//!   table docs/performance.md keeps.

mod perf;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("install-peers") => install_peers(),
        Some("perf-libutp") => perf::libutp(&args[1..]),
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
  test [ARGS...]    install the real peers, then run every test (peers included); ARGS go
                    to each `cargo test` run (e.g. `cargo xtask test -- --nocapture`)
  install-peers     only install the real peers (npm: interop/)
  perf-libutp [--mib N] [--rounds R]
                    256 MiB (default) over loopback: utp send/recv against libutp's
                    client/server (utp-native, 4 MiB socket buffers), side by side";

/// Runs every test: unit, integration, property, simulator, corpus replay, conformance,
/// interop with real peers, benches in test mode, and doctests.
fn test(extra: &[String]) -> Result<(), String> {
    install_peers()?;
    // The fuzz targets are libFuzzer binaries: selected explicitly they would run the
    // fuzzer; their corpus is replayed by utp-proto's `fuzz_corpus` test instead.
    // `utp-interop/peers` turns on the tests against real peers; without the feature
    // (a plain `cargo test`) they are not built.
    let base = ["test", "--workspace", "--exclude", "utp-fuzz", "--features", "utp-interop/peers"];
    cargo(&[&base[..], &["--all-targets"]].concat(), extra)?;
    cargo(&[&base[..], &["--doc"]].concat(), extra)?;
    Ok(())
}

/// Installs the npm packages of `interop/` exactly as the lockfile pins them.
fn install_peers() -> Result<(), String> {
    let interop = workspace_root().join("interop");
    run(
        Command::new("npm")
            .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefix"])
            .arg(&interop),
        "npm (install Node.js and npm: `apt-get install nodejs npm`)",
    )
}

pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

fn cargo(args: &[&str], extra: &[String]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("xtask: running cargo {} {}", args.join(" "), extra.join(" "));
    run(Command::new(&cargo).args(args).args(extra), &cargo)
}

pub(crate) fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let status = command.status().map_err(|e| format!("could not run {what}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{command:?} failed ({status})")) }
}
