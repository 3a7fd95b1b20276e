//! `cargo xtask perf-rudp`: rudp side by side with KCP (`tokio_kcp`) over loopback, in one
//! run: builds `utp` in release mode (its `relay` adds the 1% loss of the latency case) and
//! runs the `rudp_vs_kcp` bench of `utp-benches`, which prints the tables that
//! docs/performance.md keeps. What is measured, and how, is in that bench's docs.

use std::path::PathBuf;
use std::process::Command;

use crate::{run, workspace_root};

pub(crate) fn rudp(args: &[String]) -> Result<(), String> {
    let mut rounds: usize = 3;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let value = it.next().ok_or_else(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--rounds" => rounds = value.parse().map_err(|e| format!("--rounds {value}: {e}"))?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    let root = workspace_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(&cargo).args(["build", "--release", "-p", "utp-cli"]), &cargo)?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let utp = target.join("release/utp");
    run(
        Command::new(&cargo)
            .args(["bench", "-p", "utp-benches", "--bench", "rudp_vs_kcp", "--"])
            .arg("--relay")
            .arg(&utp)
            .args(["--rounds", &rounds.to_string()]),
        &cargo,
    )
}
