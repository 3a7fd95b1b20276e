//! Project automation, run as `cargo xtask <command>`.
//!
//! - `cargo xtask test`: installs the real peers the interop tests run against (the
//!   libutp binding from npm, pinned in `interop/`) and runs every test of the workspace,
//!   peers included, plus benchmarks in test mode and doctests. This is the test command
//!   README.md gives and `.ci/run` calls.
//! - `cargo xtask perf-libutp`: the side-by-side loopback comparison with libutp whose
//!   table docs/performance.md keeps.
//! - `cargo xtask perf-rudp`: rudp side by side with KCP (`tokio_kcp`) over loopback:
//!   throughput, and latency at 1% loss through `utp relay`.
//! - `cargo xtask perf-tftp`: `utp tftp get` against tftpd-hpa and our own server, with the
//!   tftp-hpa client, curl and atftp for reference.

mod perf;
mod perf_rudp;
mod perf_tftp;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("install-peers") => install_peers(),
        Some("perf-libutp") => perf::libutp(&args[1..]),
        Some("perf-rudp") => perf_rudp::rudp(&args[1..]),
        Some("perf-tftp") => perf_tftp::tftp(&args[1..]),
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
  install-peers     only install the real peers (npm: interop/; apt, as root: tftp-hpa,
                    tftpd-hpa, atftp, curl)
  perf-libutp [--mib N] [--rounds R]
                    256 MiB (default) over loopback: utp send/recv against libutp's
                    client/server (utp-native, 4 MiB socket buffers), side by side
  perf-rudp [--rounds R]
                    rudp and KCP (tokio_kcp, defaults and tuned) over loopback: 1 KiB,
                    64 KiB and 1 MiB messages, and one-way latency at 1% loss (utp relay)
  perf-tftp [--mib N] [--rounds R]
                    64 MiB (default) over loopback: utp tftp get from tftpd-hpa and from
                    utp tftp serve (windowsize 1, 16, 32, 64), with tftp-hpa, curl and
                    atftp for reference";

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

/// Installs the npm packages of `interop/` exactly as the lockfile pins them, and the TFTP
/// peers from Debian's packages.
fn install_peers() -> Result<(), String> {
    let interop = workspace_root().join("interop");
    run(
        Command::new("npm")
            .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefix"])
            .arg(&interop),
        "npm (install Node.js and npm: `apt-get install nodejs npm`)",
    )?;
    install_tftp_peers()
}

/// The Debian packages of the TFTP peers (`interop/tests/cli_tftp.rs`, `perf-tftp`).
const TFTP_PACKAGES: [&str; 4] = ["tftp-hpa", "tftpd-hpa", "atftp", "curl"];

/// The programs they provide.
const TFTP_PROGRAMS: [&str; 4] = ["tftp", "in.tftpd", "atftp", "curl"];

/// Where a daemon's start is vetoed while packages install (invoke-rc.d, deb-systemd-invoke).
const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";

/// Installs tftp-hpa, tftpd-hpa, atftp and curl with apt unless their programs are there
/// already. The tests run tftpd-hpa themselves on a free port, so the daemon the package
/// would start on port 69 is vetoed (a `policy-rc.d` that exits 101, written only when there
/// is none, removed afterwards).
pub(crate) fn install_tftp_peers() -> Result<(), String> {
    let missing: Vec<&str> =
        TFTP_PROGRAMS.into_iter().filter(|program| find_program(program).is_none()).collect();
    if missing.is_empty() {
        return check_in_tftpd();
    }
    let packages = TFTP_PACKAGES.join(" ");
    if !is_root() {
        return Err(format!(
            "the TFTP peers are not installed (no {} on the PATH): run `sudo apt-get update && \
             sudo DEBIAN_FRONTEND=noninteractive apt-get install -y {packages}`",
            missing.join(", ")
        ));
    }
    eprintln!("xtask: installing the TFTP peers ({packages}): {} missing", missing.join(", "));
    let policy = Path::new(POLICY_RC_D);
    let veto = !policy.exists();
    if veto {
        write_policy_rc_d(policy)?;
    }
    let installed = run(Command::new("apt-get").arg("update"), "apt-get update").and_then(|()| {
        run(
            Command::new("apt-get")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .args(["install", "-y"])
                .args(TFTP_PACKAGES),
            "apt-get install",
        )
    });
    if veto {
        let _ = std::fs::remove_file(policy);
    }
    installed?;
    check_in_tftpd()
}

fn write_policy_rc_d(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    std::fs::write(
        path,
        "#!/bin/sh\n# Written by cargo xtask install-peers: no daemon starts.\nexit 101\n",
    )
    .map_err(fail)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(fail)
}

/// `in.tftpd` must be tftpd-hpa's: the atftpd package replaces it with a link to atftpd.
fn check_in_tftpd() -> Result<(), String> {
    let path = find_program("in.tftpd").ok_or("in.tftpd is not installed")?;
    let version = Command::new(&path)
        .arg("-V")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
    if String::from_utf8_lossy(&version.stdout).contains("tftp-hpa") {
        Ok(())
    } else {
        Err(format!(
            "{} is not tftpd-hpa's (the atftpd package replaces it): run \
             `apt-get install --reinstall tftpd-hpa`",
            path.display()
        ))
    }
}

/// A program on the PATH, or in /usr/sbin or /sbin (where `in.tftpd` is, and a user's
/// PATH may not look).
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
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
