//! `cargo xtask perf-tftp`: TFTP downloads over loopback, in one run, with the ratios.
//!
//! One file (64 MiB by default) is served by tftpd-hpa (`in.tftpd`, on a free port) and by
//! `utp tftp serve` (release build) from the same directory, and fetched round-robin, for
//! `--rounds` rounds so that machine noise hits every pair alike, by:
//!
//! - `utp tftp get` (release) from tftpd-hpa at blksize 512 and 1428: it asks for
//!   windowsize 16, which tftpd-hpa ignores, so it runs in lockstep;
//! - `utp tftp get` from `utp tftp serve` at blksize 1428, windowsize 1, 16, 32 and 64;
//! - for reference, the tftp-hpa client (512-byte blocks: it has no options), curl (blksize
//!   1428) and atftp (blksize 1428, windowsize 16) from both servers.
//!
//! The figure compared is `utp tftp get`'s own (`--json` `seconds`: from the request to the
//! last byte written, without the process start-up nor the 1 s it dallies afterwards to
//! answer a repeated last block); the other clients report none, so theirs is the wall clock
//! of the process (its start-up included, a few milliseconds). Every received file's size is
//! checked, and its SHA-256 in the first round, so that a broken transfer never counts as
//! fast. The ratio is against `utp tftp get` from tftpd-hpa at the same block size.

use std::io::Write as _;
use std::net::UdpSocket;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::perf::{median, spawn, write_file};
use crate::{find_program, run, workspace_root};

/// How long one transfer may take.
const LIMIT: Duration = Duration::from_secs(300);

#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Server {
    TftpdHpa,
    Utp,
}

impl Server {
    fn name(self) -> &'static str {
        match self {
            Server::TftpdHpa => "tftpd-hpa",
            Server::Utp => "utp tftp serve",
        }
    }
}

#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Client {
    Utp,
    TftpHpa,
    Curl,
    Atftp,
}

impl Client {
    fn name(self) -> &'static str {
        match self {
            Client::Utp => "utp tftp get",
            Client::TftpHpa => "tftp-hpa",
            Client::Curl => "curl",
            Client::Atftp => "atftp",
        }
    }
}

/// One client/server pair and the options the client asks for.
#[derive(Clone, Copy, Debug)]
struct Pair {
    client: Client,
    server: Server,
    blksize: u32,
    windowsize: Option<u32>,
}

const fn pair(client: Client, server: Server, blksize: u32, windowsize: Option<u32>) -> Pair {
    Pair { client, server, blksize, windowsize }
}

const PAIRS: [Pair; 13] = [
    pair(Client::Utp, Server::TftpdHpa, 512, Some(16)),
    pair(Client::Utp, Server::TftpdHpa, 1428, Some(16)),
    pair(Client::Utp, Server::Utp, 1428, Some(1)),
    pair(Client::Utp, Server::Utp, 1428, Some(16)),
    pair(Client::Utp, Server::Utp, 1428, Some(32)),
    pair(Client::Utp, Server::Utp, 1428, Some(64)),
    pair(Client::TftpHpa, Server::TftpdHpa, 512, None),
    pair(Client::TftpHpa, Server::Utp, 512, None),
    pair(Client::Curl, Server::TftpdHpa, 1428, None),
    pair(Client::Curl, Server::Utp, 1428, None),
    pair(Client::Atftp, Server::TftpdHpa, 1428, Some(16)),
    pair(Client::Atftp, Server::Utp, 1428, Some(16)),
    // Our client at its defaults (blksize 1428, windowsize 16) against our server, last
    // too, so that the order does not favour it.
    pair(Client::Utp, Server::Utp, 1428, None),
];

/// What one transfer measured.
#[derive(Clone, Debug)]
struct Sample {
    /// The figure compared: the client's own for `utp`, else the wall clock.
    secs: f64,
    wall: f64,
    /// What was granted (`utp --json`): blksize, windowsize.
    granted: Option<(u64, u64)>,
}

struct Setup {
    utp: PathBuf,
    tftp: PathBuf,
    curl: PathBuf,
    atftp: PathBuf,
    out_dir: PathBuf,
    bytes: u64,
    sha256: String,
    ports: [u16; 2],
}

impl Setup {
    fn port(&self, server: Server) -> u16 {
        match server {
            Server::TftpdHpa => self.ports[0],
            Server::Utp => self.ports[1],
        }
    }
}

pub(crate) fn tftp(args: &[String]) -> Result<(), String> {
    let mut mib: u64 = 64;
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
    if rounds == 0 {
        return Err("--rounds must be at least 1".into());
    }
    let root = workspace_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(&cargo).args(["build", "--release", "-p", "utp-cli"]), &cargo)?;
    crate::install_tftp_peers()?;
    let program = |name: &str| find_program(name).ok_or_else(|| format!("{name} is not installed"));
    let in_tftpd = program("in.tftpd")?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);

    let work = WorkDir::new()?;
    let serve_dir = work.0.join("root");
    let out_dir = work.0.join("out");
    for dir in [&serve_dir, &out_dir] {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let bytes = mib << 20;
    let file = serve_dir.join("data.bin");
    write_file(&file, bytes)?;
    let sha256 = sha256sum(&file)?;
    let utp = target.join("release/utp");

    let tftpd = TftpdHpa::start(&in_tftpd, &serve_dir)?;
    let mut serve = spawn(
        Command::new(&utp)
            .args(["tftp", "serve", "--root"])
            .arg(&serve_dir)
            .args(["--listen", "127.0.0.1:0"]),
    )?;
    let utp_port = serve.wait_for(Duration::from_secs(20), |line| {
        line.strip_prefix("listening on ")
            .and_then(|a| a.trim().rsplit(':').next())
            .and_then(|p| p.parse::<u16>().ok())
    })?;
    let setup = Setup {
        utp,
        tftp: program("tftp")?,
        curl: program("curl")?,
        atftp: program("atftp")?,
        out_dir,
        bytes,
        sha256,
        ports: [tftpd.port, utp_port],
    };

    let mut results: Vec<Vec<Sample>> = vec![Vec::new(); PAIRS.len()];
    for round in 0..rounds {
        for (i, pair) in PAIRS.iter().enumerate() {
            let sample = transfer(&setup, pair, round == 0)
                .map_err(|e| format!("{} <- {}: {e}", pair.client.name(), pair.server.name()))?;
            eprintln!(
                "round {}: {} <- {} (blksize {}{}): {:.1} MB/s, {:.2} s wall clock",
                round + 1,
                pair.client.name(),
                pair.server.name(),
                pair.blksize,
                pair.windowsize.map(|w| format!(", windowsize {w}")).unwrap_or_default(),
                bytes as f64 / sample.secs / 1e6,
                sample.wall
            );
            results[i].push(sample);
        }
    }
    drop(serve);
    drop(tftpd);

    let rate = |secs: f64| bytes as f64 / secs / 1e6;
    let baseline = |blksize: u32| {
        PAIRS
            .iter()
            .position(|p| {
                p.client == Client::Utp && p.server == Server::TftpdHpa && p.blksize == blksize
            })
            .map(|i| rate(median(results[i].iter().map(|s| s.secs))))
    };
    let command = std::iter::once("cargo xtask perf-tftp".to_owned())
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    println!("`{command}`\n");
    println!(
        "{mib} MiB download over loopback, {rounds} rounds, median of each (MB = 10^6 bytes). \
         MB/s: utp's own figure (request to last byte) for `utp tftp get`, the process's wall \
         clock for the other clients. Ratio: against `utp tftp get` from tftpd-hpa at the same \
         blksize.\n"
    );
    println!(
        "| client | server | blksize | windowsize asked -> granted | MB/s (median) | runs (MB/s) | wall clock (median) | vs utp <- tftpd-hpa |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (i, pair) in PAIRS.iter().enumerate() {
        let samples = &results[i];
        let mbps = rate(median(samples.iter().map(|s| s.secs)));
        let wall = median(samples.iter().map(|s| s.wall));
        let runs: Vec<String> = samples.iter().map(|s| format!("{:.0}", rate(s.secs))).collect();
        let asked = match (pair.client, pair.windowsize) {
            (Client::Utp, None) => "16 (default)".to_owned(),
            (_, None) => "-".to_owned(),
            (_, Some(w)) => w.to_string(),
        };
        let granted = match samples.first().and_then(|s| s.granted) {
            Some((blksize, windowsize)) if blksize != u64::from(pair.blksize) => {
                format!("{windowsize} (blksize {blksize})")
            }
            Some((_, windowsize)) => windowsize.to_string(),
            None => "-".to_owned(),
        };
        let ratio = baseline(pair.blksize)
            .map_or_else(|| "-".to_owned(), |base| format!("{:.2}x", mbps / base));
        println!(
            "| {} | {} | {} | {asked} -> {granted} | {mbps:.1} | {} | {wall:.2} s | {ratio} |",
            pair.client.name(),
            pair.server.name(),
            pair.blksize,
            runs.join(", ")
        );
    }
    Ok(())
}

/// One download of `data.bin`; checks the size (and the SHA-256 if `hash`).
fn transfer(setup: &Setup, pair: &Pair, hash: bool) -> Result<Sample, String> {
    let port = setup.port(pair.server);
    let addr = format!("127.0.0.1:{port}");
    let out = setup.out_dir.join("received.bin");
    let _ = std::fs::remove_file(&out);
    let blksize = pair.blksize.to_string();
    let mut stdin = None;
    let mut command;
    match pair.client {
        Client::Utp => {
            command = Command::new(&setup.utp);
            command.args(["tftp", "get", &addr, "data.bin", "--json", "--blksize", &blksize]);
            if let Some(w) = pair.windowsize {
                command.args(["--windowsize", &w.to_string()]);
            }
            command.arg("--output").arg(&out);
        }
        Client::TftpHpa => {
            // No options: 512-byte blocks. Its exit status says nothing about server
            // errors; the size check does.
            command = Command::new(&setup.tftp);
            command.current_dir(&setup.out_dir).args(["127.0.0.1", &port.to_string()]);
            stdin = Some("mode octet\nrexmt 1\ntimeout 10\nget data.bin received.bin\nquit\n");
        }
        Client::Curl => {
            command = Command::new(&setup.curl);
            command.args(["-sS", "--tftp-blksize", &blksize, "-o"]).arg(&out);
            command.arg(format!("tftp://{addr}/data.bin"));
        }
        Client::Atftp => {
            command = Command::new(&setup.atftp);
            command.args(["--option", &format!("blksize {blksize}")]);
            if let Some(w) = pair.windowsize {
                command.args(["--option", &format!("windowsize {w}")]);
            }
            command.args(["-g", "-r", "data.bin", "-l"]).arg(&out);
            command.args(["127.0.0.1", &port.to_string()]);
        }
    }
    let started = Instant::now();
    let output = run_with_limit(&mut command, stdin, LIMIT)?;
    let wall = started.elapsed().as_secs_f64();
    if !output.status.success() {
        return Err(format!(
            "failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let len = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    if len != setup.bytes {
        return Err(format!(
            "received {len} bytes, not {}:\n{}{}",
            setup.bytes,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    if hash {
        let got = sha256sum(&out)?;
        if got != setup.sha256 {
            return Err(format!("received SHA-256 {got}, not {}", setup.sha256));
        }
    }
    let _ = std::fs::remove_file(&out);
    let (secs, granted) = match pair.client {
        Client::Utp => {
            let summary = String::from_utf8_lossy(&output.stdout)
                .lines()
                .rev()
                .find_map(|line| serde_json::from_str::<serde_json::Value>(line.trim()).ok())
                .ok_or("no JSON summary on its standard output")?;
            let secs = summary["seconds"].as_f64().ok_or("no `seconds` in its summary")?;
            let granted = summary["blksize"].as_u64().zip(summary["windowsize"].as_u64());
            (secs, granted)
        }
        _ => (wall, None),
    };
    Ok(Sample { secs, wall, granted })
}

/// Runs `command` to its end (killed after `limit`), with `stdin` as its input.
fn run_with_limit(
    command: &mut Command,
    stdin: Option<&str>,
    limit: Duration,
) -> Result<std::process::Output, String> {
    let mut child = command
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {command:?}: {e}"))?;
    if let (Some(script), Some(mut input)) = (stdin, child.stdin.take()) {
        input.write_all(script.as_bytes()).map_err(|e| format!("{command:?}: {e}"))?;
    }
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(output) => output.map_err(|e| format!("{command:?}: {e}")),
        Err(_) => {
            let _ = Command::new("kill").args(["-s", "KILL", &pid.to_string()]).status();
            Err(format!("{command:?} did not finish within {limit:?}"))
        }
    }
}

/// The SHA-256 of a file, from coreutils' `sha256sum`.
fn sha256sum(path: &Path) -> Result<String, String> {
    let output = Command::new("sha256sum")
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run sha256sum: {e}"))?;
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .filter(|hash| output.status.success() && hash.len() == 64)
        .map(str::to_owned)
        .ok_or_else(|| format!("sha256sum {} failed", path.display()))
}

/// tftpd-hpa in the foreground on a free port of 127.0.0.1, in its own process group (it
/// forks a process per transfer), killed with its group when dropped.
struct TftpdHpa {
    child: Child,
    port: u16,
}

impl TftpdHpa {
    fn start(in_tftpd: &Path, root: &Path) -> Result<Self, String> {
        let port = UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map_err(|e| format!("cannot find a free UDP port: {e}"))?
            .port();
        let child = Command::new(in_tftpd)
            .args(["-L", "-s", "-p", "-u", "root", "-B", "65464", "-a"])
            .arg(format!("127.0.0.1:{port}"))
            .arg(root)
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", in_tftpd.display()))?;
        let mut server = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !udp_port_bound(port) {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("tftpd-hpa exited ({status}) (it needs root for `-u root`)"));
            }
            if Instant::now() >= deadline {
                return Err(format!("tftpd-hpa did not bind 127.0.0.1:{port} within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }
}

impl Drop for TftpdHpa {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-s", "KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// Whether a socket is bound to 127.0.0.1:`port` (or any address on it), from
/// /proc/net/udp: probing by binding could steal the port from the server starting.
fn udp_port_bound(port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    table.lines().skip(1).filter_map(|line| line.split_whitespace().nth(1)).any(|local| {
        local == format!("0100007F:{port:04X}") || local == format!("00000000:{port:04X}")
    })
}

/// A directory under the system's temporary directory, removed when dropped.
struct WorkDir(PathBuf);

impl WorkDir {
    fn new() -> Result<Self, String> {
        let path = std::env::temp_dir().join(format!("utp-perf-tftp-{}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
