//! Our `utp tftp` server and client against TFTP implementations we did not write, over
//! 127.0.0.1 on ephemeral ports (never port 69): the tftp-hpa client, curl and atftp
//! against `utp tftp serve`, and `utp tftp get|put` against tftpd-hpa (`in.tftpd`). Every
//! transfer moves a file of deterministic pseudo-random bytes (`utp_interop`'s data
//! stream), and the file that arrives is compared with the generator byte for byte.
//!
//! The peers (Debian bookworm: `apt-get install tftp-hpa tftpd-hpa atftp curl`, which
//! `cargo xtask install-peers` does), as probed against each other over 127.0.0.1:
//!
//! | peer | role | options it sends | notes |
//! |---|---|---|---|
//! | tftp-hpa 5.2 `tftp` | client | none: plain RFC 1350, 512-byte blocks only, no `blksize`, `tsize` or `windowsize` | driven through its standard input (`verbose`, `mode octet`, `rexmt 1`, `timeout 10`, `get R L` / `put L R`, `quit`): `-c` takes one command only, and its exit status is 0 even when the server sends an ERROR (it prints `Error code N: ...` on stdout), so success is judged by its output (`Received`/`Sent N bytes`, no `Error`, no `timed out`) and by the file. An upload whose last block number wraps to 0 (65535 * 512 + 1 bytes) never completes: after the final block 0 it sends a DATA 1 of 0 bytes and times out, though the server has the whole file; uploads here use 65536 * 512 + 1 bytes instead, which still cross the wrap. A failed get leaves an empty local file. |
//! | curl 7.88.1 | client | `tsize` (0 on a get, the size on a put), `blksize` (512 unless `--tftp-blksize N`), `timeout 6`; nothing with `--tftp-no-options` | `curl -sS -o L tftp://127.0.0.1:PORT/R`, `curl -sS -T L tftp://...`; exit 0 on success, 68 file not found (ERROR 1), 69 access violation (ERROR 2), 73 file exists (ERROR 6). Rejects an OACK with `tsize 0` on a get (exit 71, "invalid tsize"), so an empty file cannot be fetched with options from any server that honours `tsize` (tftpd-hpa included): that case runs with `--tftp-no-options`. An upload whose last block number wraps to 0 hangs like tftp-hpa's (65536 * 512 + 1 bytes works). |
//! | atftp 0.8.0 | client | `--option "blksize N"`, `--option "windowsize N"` (RFC 7440, both directions: it sends or acknowledges every N blocks), `tsize`, `timeout` | `atftp --option "blksize 1428" --option "windowsize 16" -g -r R -l L 127.0.0.1 PORT` (`-p` to upload); exit 0, or 255 with `tftp: error received from server <...>`. Falls back to lockstep when the OACK leaves `windowsize` out (tftpd-hpa). |
//! | tftpd-hpa 5.2 `in.tftpd` | server | answers `blksize` (up to `-B`, at most 65464), `blksize2`, `tsize` (octet only), `timeout`, `utimeout`, `rollover`; ignores `windowsize` (lockstep only); answers ERROR 8 "Unsupported option(s) requested" to `tsize` in a netascii request (atftp and curl see it too), so a netascii client must not ask for it | `in.tftpd -L -s -c -p -U 022 -u root -B 65464 -a 127.0.0.1:PORT ROOT`: `-L` foreground, `-s` chroot into ROOT, `-c` allow creating files, `-p` plain Unix permissions (else only world-readable files are served and only world-writable ones overwritten), `-u root` (it drops to that user; needs root). It prints nothing (it logs to syslog) and forks a process per transfer, so it runs in its own process group and the group is killed. Rollover to 0. The atftpd package replaces `/usr/sbin/in.tftpd` with a link to atftpd: `in.tftpd -V` must say `tftp-hpa`. |
//!
//! What `utp` must do for these tests: `utp tftp serve --root DIR --listen 127.0.0.1:0
//! --allow-write --allow-create` prints `listening on 127.0.0.1:PORT` (the address it
//! bound) as a line of its standard error; `utp tftp get ADDR REMOTE --output LOCAL|-`
//! and `utp tftp put ADDR LOCAL REMOTE` with `--blksize N`, `--windowsize N`,
//! `--no-options`, `--mode netascii` exit 0 on success and 1 on a transfer failure (our
//! client asks for windowsize 16 unless told: tftpd-hpa ignores it and the client goes on
//! in lockstep); `--output -` puts nothing but the file on standard output. An upload may
//! appear in the server's root a moment after the client exits (the server renames its
//! temporary file): the tests wait up to 10 s for the full size.
//!
//! The big files are 64 MiB (`UTP_INTEROP_TFTP_MIB` changes it). Run with
//! `cargo test -p utp-interop --features peers --test cli_tftp -- --nocapture` to see
//! every transfer and its time.

#![cfg(feature = "peers")]

use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use utp_interop::{
    Process, TempDir, check_file, fill_interop_data, serial, utp_binary, write_data_file,
};

const MIB: u64 = 1 << 20;

/// Nothing: a single empty DATA block.
const EMPTY: u64 = 0;
/// One full block at 512, then an empty one.
const ONE_BLOCK: u64 = 512;
/// 65536 blocks of 512 bytes: the last block's number wraps to 0.
const ROLLOVER: u64 = 65_535 * 512 + 1;
/// For uploads by tftp-hpa and curl, whose last block must not be block 0 (see the table
/// above): 65537 blocks of 512, across the wrap, the last one numbered 1.
const ROLLOVER_UPLOAD: u64 = 65_536 * 512 + 1;
/// Several windows at every block size, and a partial last block at each.
const MEDIUM: u64 = 3 * MIB + 17;

/// How long a server may run: a whole test function.
const SERVER_TIMEOUT: Duration = Duration::from_secs(600);

/// The size of the big transfers: 64 MiB unless `UTP_INTEROP_TFTP_MIB` says otherwise.
fn big() -> u64 {
    std::env::var("UTP_INTEROP_TFTP_MIB")
        .ok()
        .map(|v| v.parse::<u64>().expect("UTP_INTEROP_TFTP_MIB: a number of MiB"))
        .unwrap_or(64)
        * MIB
}

/// How long one client may take for `len` bytes (debug builds, lockstep at 512 included).
fn client_timeout(len: u64) -> Duration {
    Duration::from_secs(30 + 2 * len / MIB)
}

fn describe_len(len: u64) -> String {
    match len {
        ROLLOVER => format!("{len} bytes (65535 * 512 + 1)"),
        ROLLOVER_UPLOAD => format!("{len} bytes (65536 * 512 + 1)"),
        _ if len >= MIB && len % MIB == 0 => format!("{} MiB", len / MIB),
        _ => format!("{len} bytes"),
    }
}

// ---------------------------------------------------------------------------------------
// The cases

#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Dir {
    /// The client reads (RRQ).
    Get,
    /// The client writes (WRQ).
    Put,
}

/// One transfer of a table.
#[derive(Clone, Copy, Debug)]
struct Case {
    dir: Dir,
    len: u64,
    blksize: Option<u32>,
    windowsize: Option<u32>,
    /// curl's `--tftp-no-options`.
    no_options: bool,
}

impl Case {
    const fn new(dir: Dir, len: u64) -> Self {
        Self { dir, len, blksize: None, windowsize: None, no_options: false }
    }

    const fn blksize(mut self, n: u32) -> Self {
        self.blksize = Some(n);
        self
    }

    const fn windowsize(mut self, n: u32) -> Self {
        self.windowsize = Some(n);
        self
    }

    const fn no_options(mut self) -> Self {
        self.no_options = true;
        self
    }
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dir = match self.dir {
            Dir::Get => "get",
            Dir::Put => "put",
        };
        write!(f, "{dir} of {}", describe_len(self.len))?;
        let mut options = Vec::new();
        if let Some(n) = self.blksize {
            options.push(format!("blksize {n}"));
        }
        if let Some(n) = self.windowsize {
            options.push(format!("windowsize {n}"));
        }
        if self.no_options {
            options.push("no options".to_owned());
        }
        if !options.is_empty() {
            write!(f, " ({})", options.join(", "))?;
        }
        Ok(())
    }
}

/// A client that moves `remote` on the server at `addr` to or from `local` (a file name
/// in `cwd`), as `case` says; `Err` says what went wrong, with its output.
type Client =
    fn(case: &Case, addr: SocketAddr, remote: &str, cwd: &Path, local: &str) -> Result<(), String>;

/// Runs every case of a table between `client` and `server`; each moves its own file, of
/// its own seed. Carries on after a failure (up to three) so that one run shows every
/// failing case, then panics listing them.
fn run_table(client_name: &str, client: Client, server: &mut Server, cases: &[Case]) {
    static SEED: AtomicU64 = AtomicU64::new(1000);
    let work = TempDir::new(env!("CARGO_TARGET_TMPDIR"), "client");
    let mut failures = Vec::new();
    for case in cases {
        let seed = SEED.fetch_add(1, Ordering::Relaxed);
        let what = format!("{client_name} -> {}: {case}", server.name);
        let started = Instant::now();
        match transfer(client, server, &work, case, seed) {
            Ok(()) => eprintln!("ok   {what}: {:.2} s", started.elapsed().as_secs_f64()),
            Err(e) => {
                eprintln!("FAIL {what}: {e}");
                failures.push(format!("{what}: {e}"));
                if failures.len() == 3 {
                    failures.push("(stopped after 3 failures)".to_owned());
                    break;
                }
            }
        }
        server.check_alive();
    }
    assert!(
        failures.is_empty(),
        "{} of {} transfers failed:\n\n{}\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n"),
        server.process.diagnostics()
    );
}

/// One case: the source file is written (in the server's root for a get, in `work` for a
/// put), the client runs, and what arrived is compared with the generator.
fn transfer(
    client: Client,
    server: &Server,
    work: &TempDir,
    case: &Case,
    seed: u64,
) -> Result<(), String> {
    let remote = format!("file-{seed}.bin");
    let local = format!("local-{seed}.bin");
    let (source, target) = match case.dir {
        Dir::Get => (server.root.join(&remote), work.join(&local)),
        Dir::Put => (work.join(&local), server.root.join(&remote)),
    };
    write_data_file(&source, seed, case.len);
    let result = client(case, server.addr, &remote, work.path(), &local).and_then(|()| {
        if case.dir == Dir::Put {
            // The server may still be renaming its temporary file when the client exits.
            wait_for_len(&target, case.len, Duration::from_secs(10))?;
        }
        check_file(&target, seed, case.len)
    });
    let _ = std::fs::remove_file(&source);
    let _ = std::fs::remove_file(&target);
    result
}

/// Waits until `path` exists with `len` bytes.
fn wait_for_len(path: &Path, len: u64, limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    loop {
        let now = std::fs::metadata(path).map(|m| m.len());
        match now {
            Ok(n) if n == len => return Ok(()),
            _ if Instant::now() >= deadline => {
                return Err(format!(
                    "after the client succeeded, {} is {} after {limit:?}, not {len} bytes",
                    path.display(),
                    match now {
                        Ok(n) => format!("{n} bytes"),
                        Err(e) => format!("missing ({e})"),
                    }
                ));
            }
            _ => thread::sleep(Duration::from_millis(20)),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The clients

/// tftp-hpa's client, driven through its standard input (see the table at the top).
fn tftp_hpa(
    case: &Case,
    addr: SocketAddr,
    remote: &str,
    cwd: &Path,
    local: &str,
) -> Result<(), String> {
    assert!(case.blksize.is_none() && case.windowsize.is_none(), "tftp-hpa has no options");
    let command = match case.dir {
        Dir::Get => format!("get {remote} {local}"),
        Dir::Put => format!("put {local} {remote}"),
    };
    tftp_hpa_script(addr, cwd, "octet", &command, case.len, case.dir)
}

/// Runs tftp-hpa's `command` in `mode` (octet or netascii); `len` is the size it should
/// report (`None` skips that check: netascii counts converted bytes).
fn tftp_hpa_script(
    addr: SocketAddr,
    cwd: &Path,
    mode: &str,
    command: &str,
    len: impl Into<Option<u64>>,
    dir: Dir,
) -> Result<(), String> {
    let len = len.into();
    let script = format!("verbose\nmode {mode}\nrexmt 1\ntimeout 10\n{command}\nquit\n");
    let mut tftp = Command::new(tool("tftp"));
    tftp.current_dir(cwd).arg(addr.ip().to_string()).arg(addr.port().to_string());
    let run = run_child(&mut tftp, Some(&script), client_timeout(len.unwrap_or(0)))?;
    let output = run.text();
    if !run.status.success() || output.contains("Error") || output.contains("timed out") {
        return Err(format!("tftp-hpa failed: {}", run.describe()));
    }
    if let Some(len) = len.filter(|&len| len > 0) {
        let verb = match dir {
            Dir::Get => "Received",
            Dir::Put => "Sent",
        };
        if !output.contains(&format!("{verb} {len} bytes")) {
            return Err(format!(
                "tftp-hpa did not report `{verb} {len} bytes`: {}",
                run.describe()
            ));
        }
    }
    Ok(())
}

/// curl (`tftp://` URLs).
fn curl(
    case: &Case,
    addr: SocketAddr,
    remote: &str,
    cwd: &Path,
    local: &str,
) -> Result<(), String> {
    assert!(case.windowsize.is_none(), "curl has no windowsize");
    let mut curl = Command::new(tool("curl"));
    curl.current_dir(cwd).args(["-sS", "--max-time"]);
    curl.arg(client_timeout(case.len).as_secs().to_string());
    if let Some(n) = case.blksize {
        curl.args(["--tftp-blksize", &n.to_string()]);
    }
    if case.no_options {
        curl.arg("--tftp-no-options");
    }
    match case.dir {
        Dir::Get => curl.args(["-o", local]),
        Dir::Put => curl.args(["-T", local]),
    };
    curl.arg(format!("tftp://{addr}/{remote}"));
    let run = run_child(&mut curl, None, client_timeout(case.len) + Duration::from_secs(5))?;
    if run.status.success() { Ok(()) } else { Err(format!("curl failed: {}", run.describe())) }
}

/// atftp's client.
fn atftp(
    case: &Case,
    addr: SocketAddr,
    remote: &str,
    cwd: &Path,
    local: &str,
) -> Result<(), String> {
    let mut atftp = Command::new(tool("atftp"));
    atftp.current_dir(cwd);
    if let Some(n) = case.blksize {
        atftp.args(["--option", &format!("blksize {n}")]);
    }
    if let Some(n) = case.windowsize {
        atftp.args(["--option", &format!("windowsize {n}")]);
    }
    atftp.arg(match case.dir {
        Dir::Get => "-g",
        Dir::Put => "-p",
    });
    atftp.args(["-r", remote, "-l", local]).arg(addr.ip().to_string()).arg(addr.port().to_string());
    let run = run_child(&mut atftp, None, client_timeout(case.len))?;
    let output = run.text();
    if run.status.success() && !output.contains("error") && !output.contains("abort") {
        Ok(())
    } else {
        Err(format!("atftp failed: {}", run.describe()))
    }
}

/// Our `utp tftp get|put`.
fn utp(case: &Case, addr: SocketAddr, remote: &str, cwd: &Path, local: &str) -> Result<(), String> {
    let mut utp = Command::new(utp_binary());
    utp.current_dir(cwd).arg("tftp");
    match case.dir {
        Dir::Get => utp.args(["get", &addr.to_string(), remote, "--output", local]),
        Dir::Put => utp.args(["put", &addr.to_string(), local, remote]),
    };
    if let Some(n) = case.blksize {
        utp.args(["--blksize", &n.to_string()]);
    }
    if let Some(n) = case.windowsize {
        utp.args(["--windowsize", &n.to_string()]);
    }
    if case.no_options {
        utp.arg("--no-options");
    }
    let run = run_child(&mut utp, None, client_timeout(case.len))?;
    if run.status.success() { Ok(()) } else { Err(format!("utp failed: {}", run.describe())) }
}

// ---------------------------------------------------------------------------------------
// The servers

/// A running TFTP server on 127.0.0.1 and its root directory. The server (its whole
/// process group: tftpd-hpa forks one process per transfer) is killed when dropped, and
/// its directory removed.
struct Server {
    name: &'static str,
    addr: SocketAddr,
    root: PathBuf,
    process: Process,
    _dir: TempDir,
}

impl Server {
    /// `utp tftp serve --root <fresh dir> --listen 127.0.0.1:0` with `args`, once it has
    /// said where it listens.
    fn utp(args: &[&str]) -> Self {
        let dir = TempDir::new(env!("CARGO_TARGET_TMPDIR"), "utp-root");
        let mut command = Command::new(utp_binary());
        command
            .args(["tftp", "serve", "--root"])
            .arg(dir.path())
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .process_group(0);
        let mut process = Process::spawn("utp tftp serve", &mut command, SERVER_TIMEOUT);
        // "listening on 127.0.0.1:40123"
        let rest = process.wait_for_stderr("listening on ");
        let Some(addr) = rest.split_whitespace().next().and_then(|a| a.parse().ok()) else {
            process.fail(&format!("cannot read the address in `listening on {rest}`"))
        };
        Self { name: "utp tftp serve", addr, root: dir.path().to_path_buf(), process, _dir: dir }
    }

    /// Our server with uploads of new files allowed.
    fn utp_writable() -> Self {
        Self::utp(&["--allow-write", "--allow-create"])
    }

    /// tftpd-hpa in the foreground on a free port, serving (and allowing new files in) a
    /// fresh directory, once it is bound.
    fn tftpd_hpa() -> Self {
        let in_tftpd = in_tftpd();
        let dir = TempDir::new(env!("CARGO_TARGET_TMPDIR"), "tftpd-hpa-root");
        let port = free_udp_port();
        let mut command = Command::new(in_tftpd);
        command
            .args(["-L", "-s", "-c", "-p", "-U", "022", "-u", "root", "-B", "65464", "-a"])
            .arg(format!("127.0.0.1:{port}"))
            .arg(dir.path())
            .process_group(0);
        let mut process = Process::spawn("tftpd-hpa", &mut command, SERVER_TIMEOUT);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !udp_port_bound(port) {
            if Instant::now() >= deadline {
                process.fail(&format!(
                    "it did not bind 127.0.0.1:{port} within 10 s (tftpd-hpa needs root for `-u root`)"
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        Self { name: "tftpd-hpa", addr, root: dir.path().to_path_buf(), process, _dir: dir }
    }

    /// Fails the test if the server is gone (its port no longer bound).
    fn check_alive(&mut self) {
        if !udp_port_bound(self.addr.port()) {
            self.process.fail("the server is no longer listening");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // The group of the server (spawned with process_group(0): its id is the server's):
        // tftpd-hpa's per-transfer processes too. `Process` then reaps the server itself.
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.process.id())])
            .stderr(Stdio::null())
            .status();
    }
}

/// A port of 127.0.0.1 that was free a moment ago.
fn free_udp_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("cannot bind a UDP socket on 127.0.0.1");
    socket.local_addr().expect("a bound socket has an address").port()
}

/// Whether some socket is bound to 127.0.0.1:`port` (or to any address on it), from
/// /proc/net/udp: probing by binding could steal the port from the server starting.
fn udp_port_bound(port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    table.lines().skip(1).filter_map(|line| line.split_whitespace().nth(1)).any(|local| {
        local == format!("0100007F:{port:04X}") || local == format!("00000000:{port:04X}")
    })
}

// ---------------------------------------------------------------------------------------
// Tools and child processes

const INSTALL_HINT: &str = "run `cargo xtask install-peers` (as root), or \
     `apt-get install tftp-hpa tftpd-hpa atftp curl`";

/// A program on the PATH or in /usr/sbin, /sbin (where `in.tftpd` is and a user's PATH
/// may not look).
fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("`{name}` is not installed: {INSTALL_HINT}"))
}

/// tftpd-hpa's `in.tftpd`, checked to be tftpd-hpa's (atftpd's package replaces it).
fn in_tftpd() -> &'static Path {
    static IN_TFTPD: OnceLock<PathBuf> = OnceLock::new();
    IN_TFTPD.get_or_init(|| {
        let path = tool("in.tftpd");
        let version = Command::new(&path)
            .arg("-V")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        assert!(
            version.contains("tftp-hpa"),
            "{} is not tftpd-hpa's (`in.tftpd -V` says {version:?}; the atftpd package replaces \
             it): run `apt-get install --reinstall tftpd-hpa`",
            path.display()
        );
        path
    })
}

/// A child's exit status and everything it printed.
struct Run {
    command: String,
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Run {
    /// Standard output and error, as text.
    fn text(&self) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&self.stdout),
            String::from_utf8_lossy(&self.stderr)
        )
    }

    fn describe(&self) -> String {
        describe_run(&self.command, &format!("{}", self.status), &self.stdout, &self.stderr)
    }
}

fn describe_run(command: &str, status: &str, stdout: &[u8], stderr: &[u8]) -> String {
    let show = |bytes: &[u8]| {
        if bytes.is_empty() {
            "(nothing)".to_owned()
        } else if bytes.len() > 4096 {
            format!(
                "({} bytes, ending in) ...{}",
                bytes.len(),
                String::from_utf8_lossy(&bytes[bytes.len() - 4096..])
            )
        } else {
            String::from_utf8_lossy(bytes).trim_end().to_owned()
        }
    };
    format!(
        "`{command}` {status}\n--- its standard output:\n{}\n--- its standard error:\n{}\n---",
        show(stdout),
        show(stderr)
    )
}

/// A child that is killed (and reaped) when dropped, even when a test panics.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `command` with `stdin` as its standard input (else none), collecting its output;
/// `Err` (with what it printed) when it does not exit within `limit`.
fn run_child(command: &mut Command, stdin: Option<&str>, limit: Duration) -> Result<Run, String> {
    let line = format!(
        "{} {}",
        command.get_program().to_string_lossy(),
        command.get_args().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ")
    );
    let child = command
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `{line}`: {e}"))?;
    let mut child = KillOnDrop(child);
    if let (Some(script), Some(mut input)) = (stdin, child.0.stdin.take()) {
        // Small enough for the pipe's buffer; dropping it closes the child's input.
        input
            .write_all(script.as_bytes())
            .map_err(|e| format!("`{line}`: cannot write its input: {e}"))?;
    }
    let stdout = collect(child.0.stdout.take());
    let stderr = collect(child.0.stderr.take());
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.0.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
            Ok(None) => break None,
            Err(e) => return Err(format!("cannot wait for `{line}`: {e}")),
        }
    };
    if status.is_none() {
        let _ = child.0.kill();
        let _ = child.0.wait();
    }
    let (stdout, stderr) = (join(stdout), join(stderr));
    match status {
        Some(status) => Ok(Run { command: line, status, stdout, stderr }),
        None => {
            Err(describe_run(&line, &format!("did not exit within {limit:?}"), &stdout, &stderr))
        }
    }
}

fn collect(stream: Option<impl Read + Send + 'static>) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut stream) = stream {
            let _ = stream.read_to_end(&mut bytes);
        }
        bytes
    })
}

fn join(reader: JoinHandle<Vec<u8>>) -> Vec<u8> {
    reader.join().unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// The control: the peers' clients against tftpd-hpa

/// The harness and the peers themselves, without our code: when a test against `utp`
/// fails, this one passing says the peer is installed and driven right.
#[test]
fn peers_with_tftpd_hpa() {
    let _serial = serial();
    use Dir::{Get, Put};
    let mut server = Server::tftpd_hpa();
    let plain: Vec<Case> = [Get, Put]
        .iter()
        .flat_map(|&d| [EMPTY, ONE_BLOCK, MEDIUM].map(|n| Case::new(d, n)))
        .collect();
    run_table("tftp-hpa client", tftp_hpa, &mut server, &plain);
    let curl_cases = [
        Case::new(Get, EMPTY).no_options(),
        Case::new(Get, MEDIUM).blksize(1428),
        Case::new(Put, EMPTY).blksize(1428),
        Case::new(Put, MEDIUM).blksize(65464),
    ];
    run_table("curl", curl, &mut server, &curl_cases);
    let atftp_cases = [
        Case::new(Get, MEDIUM).blksize(1428).windowsize(16),
        Case::new(Put, MEDIUM).blksize(1428).windowsize(16),
    ];
    run_table("atftp", atftp, &mut server, &atftp_cases);
}

// ---------------------------------------------------------------------------------------
// Peers' clients against our server

#[test]
fn tftp_hpa_client_with_utp_server() {
    let _serial = serial();
    use Dir::{Get, Put};
    // tftp-hpa has 512-byte blocks only.
    let cases = [
        Case::new(Get, EMPTY),
        Case::new(Get, ONE_BLOCK),
        Case::new(Get, ROLLOVER),
        Case::new(Get, big()),
        Case::new(Put, EMPTY),
        Case::new(Put, ONE_BLOCK),
        Case::new(Put, ROLLOVER_UPLOAD),
        Case::new(Put, big()),
    ];
    run_table("tftp-hpa client", tftp_hpa, &mut Server::utp_writable(), &cases);
}

#[test]
fn curl_with_utp_server() {
    let _serial = serial();
    use Dir::{Get, Put};
    let mut cases = Vec::new();
    for blksize in [512, 1428, 65464] {
        for len in [ONE_BLOCK, MEDIUM] {
            cases.push(Case::new(Get, len).blksize(blksize));
        }
        for len in [EMPTY, ONE_BLOCK, MEDIUM] {
            cases.push(Case::new(Put, len).blksize(blksize));
        }
    }
    cases.extend([
        Case::new(Get, ROLLOVER).blksize(512),
        Case::new(Put, ROLLOVER_UPLOAD).blksize(512),
        // With options curl asks for tsize and refuses the answer 0 (see the table).
        Case::new(Get, EMPTY).no_options(),
        Case::new(Get, MEDIUM).no_options(),
        Case::new(Put, EMPTY).no_options(),
        Case::new(Put, MEDIUM).no_options(),
    ]);
    run_table("curl", curl, &mut Server::utp_writable(), &cases);
}

#[test]
fn atftp_with_utp_server() {
    let _serial = serial();
    use Dir::{Get, Put};
    let mut cases = Vec::new();
    for dir in [Get, Put] {
        for len in [EMPTY, ONE_BLOCK, MEDIUM] {
            cases.push(Case::new(dir, len).blksize(1428).windowsize(16));
        }
        // Windows that straddle the block-number wrap.
        cases.push(Case::new(dir, ROLLOVER).blksize(512).windowsize(16));
        // No options at all: lockstep, 512.
        cases.push(Case::new(dir, MEDIUM));
    }
    run_table("atftp", atftp, &mut Server::utp_writable(), &cases);
}

// ---------------------------------------------------------------------------------------
// Our client against tftpd-hpa

/// Every block size with windowsize 1 and 16 (our client asks for 16 unless told: tftpd-hpa
/// ignores it, and our client must go on in lockstep) and the small sizes; the rollover size
/// at 512 (where it wraps) and a medium one at the larger block sizes; a plain RFC 1350
/// request (`--no-options`); the big file once, at 1428.
fn utp_client_cases(dir: Dir) -> Vec<Case> {
    let mut cases = Vec::new();
    for blksize in [512, 1428, 65464] {
        let third = if blksize == 512 { ROLLOVER } else { MEDIUM };
        for windowsize in [1, 16] {
            for len in [EMPTY, ONE_BLOCK, third] {
                cases.push(Case::new(dir, len).blksize(blksize).windowsize(windowsize));
            }
        }
    }
    for len in [EMPTY, ONE_BLOCK, MEDIUM] {
        cases.push(Case::new(dir, len).no_options());
    }
    cases.push(Case::new(dir, big()).blksize(1428));
    cases
}

#[test]
fn utp_get_from_tftpd_hpa() {
    let _serial = serial();
    run_table("utp tftp get", utp, &mut Server::tftpd_hpa(), &utp_client_cases(Dir::Get));
}

#[test]
fn utp_put_to_tftpd_hpa() {
    let _serial = serial();
    run_table("utp tftp put", utp, &mut Server::tftpd_hpa(), &utp_client_cases(Dir::Put));
}

/// `utp tftp get --output -` writes the file, and nothing else, to its standard output.
#[test]
fn utp_get_to_stdout() {
    let _serial = serial();
    let mut server = Server::tftpd_hpa();
    for (seed, len, blksize) in [(3001, MEDIUM, 1428), (3002, EMPTY, 512), (3003, ONE_BLOCK, 512)] {
        let what = format!(
            "utp tftp get --output - <- tftpd-hpa: {} (blksize {blksize})",
            describe_len(len)
        );
        let remote = format!("stdout-{seed}.bin");
        write_data_file(&server.root.join(&remote), seed, len);
        let mut utp = Command::new(utp_binary());
        utp.args(["tftp", "get", &server.addr.to_string(), &remote, "--output", "-"])
            .args(["--blksize", &blksize.to_string()]);
        let run = run_child(&mut utp, None, client_timeout(len))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(run.status.success(), "{what}: {}", run.describe());
        let mut expected = vec![0; usize::try_from(len).expect("a small file")];
        fill_interop_data(seed, 0, &mut expected);
        if run.stdout != expected {
            let at = run.stdout.iter().zip(&expected).position(|(a, b)| a != b);
            panic!(
                "{what}: its standard output is {} bytes, expected {len}; first difference at \
                 {at:?}\n--- its standard error:\n{}",
                run.stdout.len(),
                String::from_utf8_lossy(&run.stderr)
            );
        }
        eprintln!("ok   {what}");
        server.check_alive();
    }
}

// ---------------------------------------------------------------------------------------
// netascii

/// Text of `len` bytes whose lines end in LF, CR LF or a bare CR, and which ends in a CR:
/// on the wire every LF becomes CR LF and every CR becomes CR NUL, so block boundaries fall
/// inside the two-byte sequences.
fn text(seed: u64, len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    fill_interop_data(seed, 0, &mut bytes);
    for b in &mut bytes {
        *b = match *b % 16 {
            0 => b'\n',
            1 => b'\r',
            _ => b' ' + *b % 95,
        };
    }
    if let Some(last) = bytes.last_mut() {
        *last = b'\r';
    }
    bytes
}

/// Our client's netascii get from tftpd-hpa must not ask for `tsize` (tftpd-hpa refuses
/// it in netascii with ERROR 8); tftp-hpa's netascii transfers with our server must give
/// back the same bytes both ways.
#[test]
fn netascii_round_trips() {
    let _serial = serial();
    let original = text(4001, 200_000);
    let work = TempDir::new(env!("CARGO_TARGET_TMPDIR"), "netascii");
    std::fs::write(work.join("local.txt"), &original).expect("cannot write the text file");
    // The same bytes must come out at the other end.
    let same = |path: &Path| -> Result<(), String> {
        let got =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if got == original {
            return Ok(());
        }
        let at = got.iter().zip(&original).position(|(a, b)| a != b);
        Err(format!(
            "{} holds {} bytes, the original {}; first difference at {at:?}",
            path.display(),
            got.len(),
            original.len()
        ))
    };
    let mut failures = Vec::new();
    let mut outcome = |what: &str, result: Result<(), String>| match result {
        Ok(()) => eprintln!("ok   {what}"),
        Err(e) => {
            eprintln!("FAIL {what}: {e}");
            failures.push(format!("{what}: {e}"));
        }
    };

    // Our client from tftpd-hpa, which converts to netascii on the wire.
    let hpa = Server::tftpd_hpa();
    std::fs::write(hpa.root.join("text.txt"), &original).expect("cannot write the text file");
    let mut utp = Command::new(utp_binary());
    utp.current_dir(work.path())
        .args(["tftp", "get", &hpa.addr.to_string(), "text.txt", "--mode", "netascii"])
        .args(["--output", "from-hpa.txt"]);
    let result = run_child(&mut utp, None, client_timeout(0)).and_then(|run| {
        if run.status.success() { same(&work.join("from-hpa.txt")) } else { Err(run.describe()) }
    });
    outcome("utp tftp get --mode netascii <- tftpd-hpa", result);
    drop(hpa);

    // tftp-hpa's client against our server, both ways.
    let ours = Server::utp_writable();
    std::fs::write(ours.root.join("text.txt"), &original).expect("cannot write the text file");
    let get = "get text.txt from-utp.txt";
    let result = tftp_hpa_script(ours.addr, work.path(), "netascii", get, None, Dir::Get)
        .and_then(|()| same(&work.join("from-utp.txt")));
    outcome("tftp-hpa client mode netascii <- utp tftp serve (get)", result);
    let put = "put local.txt uploaded.txt";
    let uploaded = ours.root.join("uploaded.txt");
    let result = tftp_hpa_script(ours.addr, work.path(), "netascii", put, None, Dir::Put)
        .and_then(|()| wait_for_len(&uploaded, original.len() as u64, Duration::from_secs(10)))
        .and_then(|()| same(&uploaded));
    outcome("tftp-hpa client mode netascii -> utp tftp serve (put)", result);
    assert!(failures.is_empty(), "netascii transfers failed:\n\n{}", failures.join("\n\n"));
}

// ---------------------------------------------------------------------------------------
// Errors across implementations

/// ERROR packets are understood both ways: our client fails (exit 1) on tftpd-hpa's
/// "File not found"; curl maps our server's codes to its own exit codes (1 -> 68, 6 -> 73)
/// and an existing file is left alone without `--allow-overwrite`.
#[test]
fn errors_cross_implementations() {
    let _serial = serial();
    let work = TempDir::new(env!("CARGO_TARGET_TMPDIR"), "errors");

    let hpa = Server::tftpd_hpa();
    let what = "utp tftp get <- tftpd-hpa of a missing file";
    let mut utp = Command::new(utp_binary());
    utp.current_dir(work.path()).args([
        "tftp",
        "get",
        &hpa.addr.to_string(),
        "missing.bin",
        "--output",
        "out.bin",
    ]);
    let run =
        run_child(&mut utp, None, client_timeout(0)).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(run.status.code(), Some(1), "{what}: expected exit status 1: {}", run.describe());
    eprintln!("ok   {what}");
    drop(hpa);

    let ours = Server::utp_writable();
    let curl_run = |args: &[&str]| {
        let mut curl = Command::new(tool("curl"));
        curl.current_dir(work.path()).args(["-sS", "--max-time", "30"]).args(args);
        run_child(&mut curl, None, Duration::from_secs(40))
    };
    let what = "curl <- utp tftp serve of a missing file";
    let url = format!("tftp://{}/missing.bin", ours.addr);
    let run = curl_run(&["-o", "out.bin", &url]).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(
        run.status.code(),
        Some(68),
        "{what}: expected curl's 68 (TFTP ERROR 1): {}",
        run.describe()
    );
    eprintln!("ok   {what}");

    let what = "curl -> utp tftp serve over an existing file without --allow-overwrite";
    let existing = ours.root.join("existing.bin");
    write_data_file(&existing, 4101, 5000);
    write_data_file(&work.join("new.bin"), 4102, 7000);
    let url = format!("tftp://{}/existing.bin", ours.addr);
    let run = curl_run(&["-T", "new.bin", &url]).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(
        run.status.code(),
        Some(73),
        "{what}: expected curl's 73 (TFTP ERROR 6): {}",
        run.describe()
    );
    check_file(&existing, 4101, 5000).unwrap_or_else(|e| panic!("{what}: the file changed: {e}"));
    eprintln!("ok   {what}");
}
