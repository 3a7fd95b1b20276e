//! Our `utp` command against libutp (`interop/peer.js`, npm `utp-native` 2.5.3), over
//! 127.0.0.1: `utp send` to libutp's server, and libutp's client to `utp recv --output`.
//! Both processes must exit 0 and the bytes must be identical: libutp's server reports
//! the SHA-256 of what it received, and the file `utp recv` wrote is compared with the
//! generator byte for byte.
//!
//! The size is 64 MiB; `UTP_INTEROP_CLI_MIB` changes it. Run with
//! `cargo test -p utp-interop --features peers --test cli_libutp -- --nocapture` to see
//! the timings.

#![cfg(feature = "peers")]

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use utp_interop::{PeerCommand, Process, TempDir, check_file, serial, utp_binary, write_data_file};

const MIB: u64 = 1 << 20;

/// How long each process may run.
const TIMEOUT: Duration = Duration::from_secs(180);

/// The bytes per transfer: 64 MiB unless `UTP_INTEROP_CLI_MIB` says otherwise.
fn transfer_len() -> u64 {
    std::env::var("UTP_INTEROP_CLI_MIB")
        .ok()
        .map(|v| v.parse::<u64>().expect("UTP_INTEROP_CLI_MIB: a number of MiB"))
        .unwrap_or(64)
        * MIB
}

/// The JSON summary (`--json`) a `utp send` or `utp recv` printed last.
fn summary(process: &mut Process) -> Value {
    let lines = process.stdout_lines();
    match lines.last().map(|l| serde_json::from_str::<Value>(l)) {
        Some(Ok(summary)) => summary,
        _ => process.fail("no JSON summary on its standard output"),
    }
}

fn report(what: &str, bytes: u64, secs: f64) {
    eprintln!(
        "{what}: {} MiB in {secs:.2} s ({:.1} MiB/s)",
        bytes / MIB,
        bytes as f64 / MIB as f64 / secs
    );
}

#[test]
fn utp_send_to_libutp_server() {
    let _serial = serial();
    let (seed, len) = (21, transfer_len());
    let dir = TempDir::new(env!("CARGO_TARGET_TMPDIR"), "send");
    let input = dir.join("input.bin");
    write_data_file(&input, seed, len);
    let utp = utp_binary();

    let mut server = PeerCommand::server().timeout(TIMEOUT).spawn();
    let addr = server.addr();
    let started = Instant::now();
    let mut send = Process::spawn(
        "utp send",
        Command::new(utp).arg("send").arg(addr.to_string()).arg(&input).arg("--json"),
        TIMEOUT,
    );
    send.wait_success();
    let elapsed = started.elapsed();
    let sent = summary(&mut send);
    if sent["bytes"] != len {
        send.fail(&format!("its summary says {} bytes, not {len}", sent["bytes"]));
    }
    let peer = server.finish();
    peer.assert_received([seed], len);
    report("utp send -> libutp server (process to exit)", len, elapsed.as_secs_f64());
    eprintln!("  utp send's own figure: {} s; libutp's: {} ms", sent["seconds"], peer.single().ms);
}

#[test]
fn libutp_client_to_utp_recv() {
    let _serial = serial();
    let (seed, len) = (22, transfer_len());
    let dir = TempDir::new(env!("CARGO_TARGET_TMPDIR"), "recv");
    let output = dir.join("output.bin");
    let utp = utp_binary();

    let mut recv = Process::spawn(
        "utp recv",
        Command::new(utp)
            .args(["recv", "--listen", "127.0.0.1:0", "--json", "--output"])
            .arg(&output),
        TIMEOUT,
    );
    let listening = recv.wait_for_stderr("listening on ");
    let Some(port) = listening.rsplit_once(':').and_then(|(_, p)| p.trim().parse::<u16>().ok())
    else {
        recv.fail(&format!("cannot read the port in `listening on {listening}`"))
    };
    let started = Instant::now();
    let client = PeerCommand::client(port).bytes(len).seed(seed).timeout(TIMEOUT).spawn();
    // The client exits once our FIN has come and its connection closed; then recv must
    // have exited 0 too.
    let peer = client.finish();
    recv.wait_success();
    let elapsed = started.elapsed();
    let received = summary(&mut recv);
    if received["bytes"] != len {
        recv.fail(&format!("its summary says {} bytes, not {len}", received["bytes"]));
    }
    peer.assert_sent([seed], len);
    if let Err(e) = check_file(&output, seed, len) {
        recv.fail(&e);
    }
    report("libutp client -> utp recv (processes to exit)", len, elapsed.as_secs_f64());
    eprintln!(
        "  utp recv's own figure: {} s; libutp's: {} ms",
        received["seconds"],
        peer.single().ms
    );
}
