//! `cargo xtask perf-libutp`: our `utp send`/`utp recv` against libutp (npm `utp-native`,
//! pinned in `interop/`) over loopback, in one run, with the ratios.
//!
//! Four pairs move the same file, round-robin for `--rounds` rounds so that machine noise
//! hits every pair alike: utp → utp, libutp → libutp, utp → libutp, libutp → utp. The
//! figure compared is the receiver's own: from accepting the stream to having read its
//! last byte (our `recv --json` `seconds`, the peer's `recv_ms`), so process start-up and
//! libutp's lazy connection teardown (up to 500 ms after the close) do not count. The
//! sender's wall-clock time, start-up and the wait for the final acknowledgement
//! included, is shown beside it. libutp runs with 4 MiB socket buffers on both sides
//! (without them it drops datagrams at loopback rates and crawls at a few MB/s); ours run
//! with their defaults.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::{run, workspace_root};

const BUFFER: &str = "4194304";

#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Side {
    Utp,
    Libutp,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Utp => "utp",
            Side::Libutp => "libutp",
        }
    }
}

struct Tools {
    utp: PathBuf,
    peer: PathBuf,
    file: PathBuf,
    bytes: u64,
}

pub(crate) fn libutp(args: &[String]) -> Result<(), String> {
    let mut mib: u64 = 256;
    let mut rounds: usize = 3;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let value = it.next().ok_or_else(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--mib" => mib = value.parse().map_err(|e| format!("--mib {value}: {e}"))?,
            "--rounds" => rounds = value.parse().map_err(|e| format!("--rounds {value}: {e}"))?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    let root = workspace_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(&cargo).args(["build", "--release", "-p", "utp-cli"]), &cargo)?;
    if !root.join("interop/node_modules/utp-native").exists() {
        crate::install_peers()?;
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let file = std::env::temp_dir().join(format!("utp-perf-{}.bin", std::process::id()));
    let bytes = mib << 20;
    write_file(&file, bytes)?;
    let tools = Tools {
        utp: target.join("release/utp"),
        peer: root.join("interop/peer.js"),
        file: file.clone(),
        bytes,
    };
    let pairs = [
        (Side::Utp, Side::Utp),
        (Side::Libutp, Side::Libutp),
        (Side::Utp, Side::Libutp),
        (Side::Libutp, Side::Utp),
    ];
    let mut results: Vec<Vec<(f64, f64)>> = vec![Vec::new(); pairs.len()];
    let outcome = (|| {
        for round in 0..rounds {
            for (i, &(sender, receiver)) in pairs.iter().enumerate() {
                let (recv_s, wall_s) = transfer(&tools, sender, receiver)?;
                eprintln!(
                    "round {}: {} -> {}: {:.1} MB/s (receiver), {:.2} s sender wall clock",
                    round + 1,
                    sender.name(),
                    receiver.name(),
                    bytes as f64 / recv_s / 1e6,
                    wall_s
                );
                results[i].push((recv_s, wall_s));
            }
        }
        Ok::<(), String>(())
    })();
    let _ = std::fs::remove_file(&file);
    outcome?;

    let rate = |secs: f64| bytes as f64 / secs / 1e6;
    let baseline = rate(median(results[1].iter().map(|r| r.0)));
    println!(
        "{mib} MiB, one stream, loopback, {rounds} rounds, median of each (MB = 10^6 bytes)\n"
    );
    println!(
        "| sender -> receiver | receiver MB/s (median) | runs (MB/s) | sender wall clock (median) | vs libutp -> libutp |"
    );
    println!("|---|---|---|---|---|");
    for (i, (sender, receiver)) in pairs.iter().enumerate() {
        let recv = rate(median(results[i].iter().map(|r| r.0)));
        let wall = median(results[i].iter().map(|r| r.1));
        let runs: Vec<String> = results[i].iter().map(|r| format!("{:.0}", rate(r.0))).collect();
        println!(
            "| {} -> {} | {recv:.1} | {} | {wall:.2} s | {:.2}x |",
            sender.name(),
            receiver.name(),
            runs.join(", "),
            recv / baseline
        );
    }
    Ok(())
}

/// One transfer; returns (receiver's stream seconds, sender's wall-clock seconds).
fn transfer(tools: &Tools, sender: Side, receiver: Side) -> Result<(f64, f64), String> {
    let mut server = match receiver {
        Side::Utp => spawn(Command::new(&tools.utp).args([
            "recv",
            "--listen",
            "127.0.0.1:0",
            "--output",
            "/dev/null",
            "--json",
        ]))?,
        Side::Libutp => spawn(Command::new("node").arg(&tools.peer).args([
            "server",
            "--port",
            "0",
            "--recv-buffer",
            BUFFER,
            "--send-buffer",
            BUFFER,
        ]))?,
    };
    let port = server.wait_for(Duration::from_secs(20), |line| match receiver {
        Side::Utp => line
            .strip_prefix("listening on ")
            .and_then(|a| a.trim().rsplit(':').next())
            .and_then(|p| p.parse::<u16>().ok()),
        Side::Libutp => json(line)
            .filter(|v| v["event"] == "listening")
            .and_then(|v| v["port"].as_u64())
            .and_then(|p| u16::try_from(p).ok()),
    })?;
    let started = Instant::now();
    let status = match sender {
        Side::Utp => Command::new(&tools.utp)
            .args(["send", &format!("127.0.0.1:{port}")])
            .arg(&tools.file)
            .stdout(Stdio::null())
            .status(),
        Side::Libutp => Command::new("node")
            .arg(&tools.peer)
            .args(["client", "--port", &port.to_string(), "--recv-buffer", BUFFER])
            .args(["--send-buffer", BUFFER, "--file"])
            .arg(&tools.file)
            .stdout(Stdio::null())
            .status(),
    }
    .map_err(|e| format!("cannot start the {} sender: {e}", sender.name()))?;
    let wall = started.elapsed().as_secs_f64();
    if !status.success() {
        return Err(format!("the {} sender failed ({status})", sender.name()));
    }
    let bytes = tools.bytes;
    let secs = server.wait_for(Duration::from_secs(120), |line| {
        let v = json(line)?;
        match receiver {
            Side::Utp => {
                (v["bytes"].as_u64() == Some(bytes)).then(|| v["seconds"].as_f64()).flatten()
            }
            Side::Libutp => (v["event"] == "stream" && v["bytes"].as_u64() == Some(bytes))
                .then(|| v["recv_ms"].as_f64().map(|ms| ms / 1e3))
                .flatten(),
        }
    })?;
    server.finish()?;
    Ok((secs, wall))
}

fn json(line: &str) -> Option<serde_json::Value> {
    serde_json::from_str(line.trim()).ok()
}

/// A receiver (or server) process whose stdout and stderr lines arrive on one channel.
pub(crate) struct Receiver {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

pub(crate) fn spawn(command: &mut Command) -> Result<Receiver, String> {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {command:?}: {e}"))?;
    let (tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>);
    let stderr = child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>);
    for stream in [stdout, stderr].into_iter().flatten() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    Ok(Receiver { child, lines, seen: Vec::new() })
}

impl Receiver {
    pub(crate) fn wait_for<T>(
        &mut self,
        limit: Duration,
        mut pick: impl FnMut(&str) -> Option<T>,
    ) -> Result<T, String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(v) = pick(&line) {
                        return Ok(v);
                    }
                    self.seen.push(line);
                }
                Err(_) => {
                    let _ = self.child.kill();
                    return Err(format!(
                        "the receiver did not report in time; it printed:\n{}",
                        self.seen.join("\n")
                    ));
                }
            }
        }
    }

    fn finish(mut self) -> Result<(), String> {
        let status = self.child.wait().map_err(|e| e.to_string())?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("the receiver failed ({status}):\n{}", self.seen.join("\n")))
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// A file of `bytes` pseudo-random bytes (xorshift64), so nothing compresses or dedups.
pub(crate) fn write_file(path: &Path, bytes: u64) -> Result<(), String> {
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?,
    );
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        for word in chunk.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..n]).map_err(|e| e.to_string())?;
        left -= n as u64;
    }
    file.flush().map_err(|e| e.to_string())
}
