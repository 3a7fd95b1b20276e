//! Helpers for the interoperability tests against libutp, the reference uTP implementation
//! (BEP 29), which `interop/peer.js` drives through the npm package `utp-native`.
//!
//! - The deterministic test data both sides generate: [`fill_interop_data`],
//!   [`interop_data`], [`interop_sha256`], and [`DataChecker`] to verify received bytes as
//!   they come.
//! - The libutp peer as a child process: [`PeerCommand`] builds the command line,
//!   [`Peer`] reads its JSON events and [`PeerReport`] is what it printed.
//! - Our own `utp` command ([`utp_binary`] builds and finds it) as a child process:
//!   [`Process`] and, for `utp relay`, [`Relay`].
//! - [`TempDir`]: a scratch directory for a test's files, removed when dropped.
//!
//! Every child process is killed when its handle is dropped, and every wait has a deadline:
//! a test that goes wrong fails with the child's standard error in the message instead of
//! hanging. The tests themselves (in `tests/`) need the `peers` feature; see
//! `docs/interop.md`.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// What to do when the libutp peer cannot run.
pub const INSTALL_HINT: &str =
    "run `npm ci --prefix interop --ignore-scripts` (cargo xtask test does it)";

/// The socket buffer size the libutp peer asks for (`--recv-buffer`, `--send-buffer`):
/// with the kernel's default 208 KiB, libutp drops datagrams at loopback rates and its
/// throughput varies widely.
pub const PEER_SOCKET_BUFFER: usize = 4 << 20;

/// How long a child process may run unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// Extra time the Rust side waits after a peer's own `--timeout`, so that the peer's
/// message about it reaches its standard error before the test gives up.
const GRACE: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------
// Test data

/// The splitmix64 mixing function (all arithmetic wrapping), the base of the test data.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fills `buf` with bytes `offset..offset + buf.len()` of the data stream of `seed`, the
/// same bytes `peer.js` generates: byte `i` is byte `i % 8` (little-endian) of
/// `splitmix64((seed << 32) + i / 8)`. Only the low 32 bits of `seed` matter.
pub fn fill_interop_data(seed: u64, offset: u64, buf: &mut [u8]) {
    let base = seed << 32;
    let mut pos = offset;
    let mut i = 0;
    while i < buf.len() {
        let word = splitmix64(base.wrapping_add(pos / 8)).to_le_bytes();
        let start = (pos % 8) as usize;
        let n = (8 - start).min(buf.len() - i);
        buf[i..i + n].copy_from_slice(&word[start..start + n]);
        i += n;
        pos += n as u64;
    }
}

/// The first `len` bytes of the data stream of `seed`.
pub fn interop_data(seed: u64, len: usize) -> Vec<u8> {
    let mut data = vec![0; len];
    fill_interop_data(seed, 0, &mut data);
    data
}

/// The SHA-256 (lowercase hex) of the first `len` bytes of the data stream of `seed`.
pub fn interop_sha256(seed: u64, len: u64) -> String {
    let mut hasher = Sha256::new();
    let mut chunk = vec![0; 1 << 20];
    let mut offset = 0;
    while offset < len {
        let n = usize::try_from(len - offset).map_or(chunk.len(), |left| left.min(chunk.len()));
        fill_interop_data(seed, offset, &mut chunk[..n]);
        hasher.update(&chunk[..n]);
        offset += n as u64;
    }
    hex(&hasher.finalize())
}

/// The SHA-256 of `data`, as lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing into a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Which of `seeds` starts with `prefix` (at least 8 bytes, so that a match is no
/// accident), if any: tells apart the streams of a multi-stream peer, which each send the
/// data of their own seed.
pub fn identify_seed(prefix: &[u8], seeds: impl IntoIterator<Item = u64>) -> Option<u64> {
    assert!(prefix.len() >= 8, "identify_seed needs at least 8 bytes, got {}", prefix.len());
    let mut expected = vec![0; prefix.len()];
    seeds.into_iter().find(|&seed| {
        fill_interop_data(seed, 0, &mut expected);
        expected == prefix
    })
}

/// Checks received bytes against the data stream of one seed, chunk by chunk, as they
/// arrive.
#[derive(Debug)]
pub struct DataChecker {
    seed: u64,
    offset: u64,
    expected: Vec<u8>,
}

impl DataChecker {
    /// A checker expecting the data stream of `seed` from its first byte.
    pub fn new(seed: u64) -> Self {
        Self { seed, offset: 0, expected: Vec::new() }
    }

    /// The seed whose data is expected.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// How many bytes were checked so far.
    pub fn len(&self) -> u64 {
        self.offset
    }

    /// Whether nothing was checked yet.
    pub fn is_empty(&self) -> bool {
        self.offset == 0
    }

    /// Checks that `data` comes next in the stream.
    ///
    /// # Errors
    ///
    /// Where the first differing byte is, and what it should have been.
    pub fn check(&mut self, data: &[u8]) -> Result<(), String> {
        self.expected.resize(data.len(), 0);
        fill_interop_data(self.seed, self.offset, &mut self.expected);
        if let Some(i) = data.iter().zip(&self.expected).position(|(a, b)| a != b) {
            return Err(format!(
                "byte {} differs from the data of seed {}: got {:#04x}, expected {:#04x}",
                self.offset + i as u64,
                self.seed,
                data[i],
                self.expected[i]
            ));
        }
        self.offset += data.len() as u64;
        Ok(())
    }

    /// Checks that exactly `len` bytes were checked.
    ///
    /// # Errors
    ///
    /// How many bytes came instead.
    pub fn finish(&self, len: u64) -> Result<(), String> {
        if self.offset == len {
            Ok(())
        } else {
            Err(format!("got {} bytes of seed {}, expected {len}", self.offset, self.seed))
        }
    }
}

/// Checks a file's contents against the first `len` bytes of the data stream of `seed`.
///
/// # Errors
///
/// The file cannot be read, or it differs (where, or how long it is).
pub fn check_file(path: &Path, seed: u64, len: u64) -> Result<(), String> {
    let mut file =
        std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut checker = DataChecker::new(seed);
    let mut buf = vec![0; 1 << 20];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        checker.check(&buf[..n]).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    checker.finish(len).map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes the first `len` bytes of the data stream of `seed` to a new file at `path`.
///
/// # Panics
///
/// The file cannot be written.
pub fn write_data_file(path: &Path, seed: u64, len: u64) {
    use std::io::Write as _;
    let file = std::fs::File::create(path)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
    let mut out = std::io::BufWriter::new(file);
    let mut chunk = vec![0; 1 << 20];
    let mut offset = 0;
    while offset < len {
        let n = usize::try_from(len - offset).map_or(chunk.len(), |left| left.min(chunk.len()));
        fill_interop_data(seed, offset, &mut chunk[..n]);
        out.write_all(&chunk[..n])
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        offset += n as u64;
    }
    out.flush().unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

// ---------------------------------------------------------------------------------------
// Locations, serialisation

/// The `interop/` folder: `peer.js`, `package.json`, `node_modules/`.
pub fn interop_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The workspace root.
pub fn workspace_root() -> &'static Path {
    interop_dir().parent().unwrap_or_else(|| Path::new("/"))
}

/// The `node` executable: `$NODE` if set, else the first `node` on the `PATH`.
///
/// # Panics
///
/// Neither exists, or `utp-native` is not installed in `interop/node_modules`; the message
/// says how to install it.
pub fn node() -> &'static Path {
    static NODE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = NODE.get_or_init(|| {
        let node = std::env::var_os("NODE").map(PathBuf::from).or_else(|| find_in_path("node"));
        check_peer(node, interop_dir())
    });
    match found {
        Ok(node) => node,
        Err(message) => panic!("{message}"),
    }
}

/// Checks that `node` exists and `utp-native` is installed under `interop`.
fn check_peer(node: Option<PathBuf>, interop: &Path) -> Result<PathBuf, String> {
    let node = node.ok_or_else(|| {
        format!(
            "the libutp peer needs Node.js, and there is no `node` on the PATH (install \
             Node.js 20 and npm, or set NODE), then {INSTALL_HINT}"
        )
    })?;
    if !node.is_file() {
        return Err(format!(
            "the libutp peer needs Node.js, and {} does not exist (check NODE), then \
             {INSTALL_HINT}",
            node.display()
        ));
    }
    let binding = interop.join("node_modules/utp-native/package.json");
    if !binding.is_file() {
        return Err(format!(
            "the libutp peer is not installed ({} is missing): {INSTALL_HINT}",
            binding.display()
        ));
    }
    Ok(node)
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| candidate.is_file())
}

/// Our `utp` command, built with cargo at first use (in the profile of the running test,
/// into the same target directory), or `$UTP_INTEROP_UTP` if set.
///
/// Cargo cannot hand this crate the path of another package's binary (artifact
/// dependencies are unstable), so the path comes from the build's own report
/// (`--message-format json`), whatever the target directory.
///
/// # Panics
///
/// The build fails (with cargo's messages).
pub fn utp_binary() -> &'static Path {
    static UTP: OnceLock<PathBuf> = OnceLock::new();
    UTP.get_or_init(|| {
        if let Some(path) = std::env::var_os("UTP_INTEROP_UTP") {
            return PathBuf::from(path);
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from(env!("CARGO")));
        let mut build = Command::new(&cargo);
        build
            .current_dir(workspace_root())
            .args(["build", "--package", "utp-cli", "--bin", "utp"])
            .args(["--message-format", "json-render-diagnostics"]);
        if let Some(profile) = current_profile() {
            build.args(["--profile", &profile]);
        }
        let output = build
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", cargo.to_string_lossy()));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "building `utp` failed ({}):\n{stderr}", output.status);
        let stdout = String::from_utf8_lossy(&output.stdout);
        stdout
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "utp")
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .unwrap_or_else(|| {
                panic!("cargo built `utp` but did not say where:\n{stdout}\n{stderr}")
            })
    })
}

/// The cargo profile the running test was built in, from where it lives
/// (`<target>/<dir>/deps/<test>`): `debug` is `dev`, other directories are named after
/// their profile.
fn current_profile() -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    let deps = exe.parent()?;
    if deps.file_name()? != "deps" {
        return None;
    }
    let dir = deps.parent()?.file_name()?.to_str()?;
    Some(if dir == "debug" { "dev".to_owned() } else { dir.to_owned() })
}

/// Runs the interop tests of a test binary one at a time: each moves tens of MiB over
/// loopback, and several at once would share the CPUs and the socket buffers, making
/// timings meaningless and drops (and libutp's retransmission give-ups) likelier. Hold
/// the guard for the whole test.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    // A test that failed while holding it leaves nothing to repair.
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------
// Child processes

/// A child process whose standard output and error are read line by line (and kept, for
/// failure messages), with a deadline for the whole run. It is killed when dropped, and
/// if that happens because a test is failing, what it printed is printed too.
#[derive(Debug)]
pub struct Process {
    name: String,
    command: String,
    child: Child,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    stdout_log: Arc<Mutex<String>>,
    stderr_log: Arc<Mutex<String>>,
    deadline: Instant,
    status: Option<ExitStatus>,
    /// Its output is in a panic message already.
    reported: bool,
}

impl Process {
    /// Starts `command` (standard input closed, standard output and error piped); `name`
    /// says what it is in messages ("libutp server", "utp recv"). Every wait fails once
    /// `timeout` has passed since now.
    ///
    /// # Panics
    ///
    /// The process cannot be started.
    pub fn spawn(name: &str, command: &mut Command, timeout: Duration) -> Self {
        let line = describe(command);
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the {name} ({line}): {e}"));
        let stdout_log = Arc::new(Mutex::new(String::new()));
        let stderr_log = Arc::new(Mutex::new(String::new()));
        let stdout = child.stdout.take().map(|out| read_lines(out, stdout_log.clone()));
        let stderr = child.stderr.take().map(|err| read_lines(err, stderr_log.clone()));
        let (Some(stdout), Some(stderr)) = (stdout, stderr) else {
            unreachable!("both streams were piped");
        };
        Self {
            name: name.to_owned(),
            command: line,
            child,
            stdout,
            stderr,
            stdout_log,
            stderr_log,
            deadline: Instant::now() + timeout,
            status: None,
            reported: false,
        }
    }

    /// What the process is, as given to [`spawn`](Self::spawn).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The next line of standard output, or `None` once it is closed.
    ///
    /// # Panics
    ///
    /// The deadline passed first.
    pub fn next_stdout_line(&mut self) -> Option<String> {
        self.next_line(true)
    }

    /// The next line of standard error, or `None` once it is closed.
    ///
    /// # Panics
    ///
    /// The deadline passed first.
    pub fn next_stderr_line(&mut self) -> Option<String> {
        self.next_line(false)
    }

    fn next_line(&mut self, stdout: bool) -> Option<String> {
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let rx = if stdout { &self.stdout } else { &self.stderr };
        match rx.recv_timeout(remaining) {
            Ok(line) => Some(line),
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => {
                let which = if stdout { "standard output" } else { "standard error" };
                self.fail(&format!("timed out waiting for a line on its {which}"))
            }
        }
    }

    /// Waits for the process to exit, reading (and keeping) all it prints.
    ///
    /// # Panics
    ///
    /// The deadline passed first (the process is killed).
    pub fn wait(&mut self) -> ExitStatus {
        if let Some(status) = self.status {
            return status;
        }
        // Both pipes close when the process exits (it has no children).
        while self.next_stdout_line().is_some() {}
        while self.next_stderr_line().is_some() {}
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.status = Some(status);
                    return status;
                }
                Ok(None) if Instant::now() < self.deadline => {
                    thread::sleep(Duration::from_millis(10));
                }
                Ok(None) => self.fail("timed out waiting for it to exit"),
                Err(e) => self.fail(&format!("cannot wait for it: {e}")),
            }
        }
    }

    /// Waits for the process to exit and checks that it succeeded.
    ///
    /// # Panics
    ///
    /// It failed, or the deadline passed first.
    pub fn wait_success(&mut self) {
        let status = self.wait();
        if !status.success() {
            self.fail(&format!("it exited with {status}"));
        }
    }

    /// Asks the process to stop with SIGTERM (through `kill`, which every Linux has).
    ///
    /// # Panics
    ///
    /// `kill` cannot be run.
    pub fn terminate(&mut self) {
        if self.status.is_some() {
            return;
        }
        let status = Command::new("kill")
            .args(["-s", "TERM", &self.child.id().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("cannot run `kill`: {e}"));
        assert!(status.success(), "`kill -s TERM {}` failed: {status}", self.child.id());
    }

    /// Everything the process printed on its standard output so far, line by line (read
    /// or not).
    pub fn stdout_lines(&self) -> Vec<String> {
        let log = self.stdout_log.lock().unwrap_or_else(PoisonError::into_inner);
        log.lines().map(str::to_owned).collect()
    }

    /// Reads standard error up to the first line that starts with `prefix`, and returns
    /// the rest of that line.
    ///
    /// # Panics
    ///
    /// The process closes its standard error first, or the deadline passes.
    pub fn wait_for_stderr(&mut self, prefix: &str) -> String {
        loop {
            let Some(line) = self.next_stderr_line() else {
                self.fail(&format!("it closed its standard error before printing `{prefix}...`"))
            };
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.to_owned();
            }
        }
    }

    /// Everything printed so far, with the command line: for failure messages.
    pub fn diagnostics(&self) -> String {
        let log = |l: &Arc<Mutex<String>>| l.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let (out, err) = (log(&self.stdout_log), log(&self.stderr_log));
        format!(
            "--- {} ({})\n--- its standard output:\n{}--- its standard error:\n{}---",
            self.name,
            self.command,
            if out.is_empty() { "(nothing)\n".to_owned() } else { out },
            if err.is_empty() { "(nothing)\n".to_owned() } else { err },
        )
    }

    /// Panics with `message` about this process and its output, killing it first.
    ///
    /// # Panics
    ///
    /// Always.
    pub fn fail(&mut self, message: &str) -> ! {
        self.kill();
        // Give the reading threads a moment to collect what the process printed last.
        thread::sleep(Duration::from_millis(100));
        self.reported = true;
        panic!("{}: {message}\n{}", self.name, self.diagnostics());
    }

    fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }
}

impl Drop for Process {
    /// Kills the process; when a test is failing, prints what it printed too (unless the
    /// failure message has it already), so that every process of a failed test is seen.
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() && !self.reported {
            thread::sleep(Duration::from_millis(100));
            eprintln!("{}", self.diagnostics());
        }
    }
}

/// Reads `stream` line by line on a thread, appending every line to `log` and sending it.
fn read_lines(stream: impl Read + Send + 'static, log: Arc<Mutex<String>>) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            {
                let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
                log.push_str(&line);
                log.push('\n');
            }
            // The receiver may be gone (the process handle was dropped): keep draining
            // the pipe anyway, so the process never blocks on a full pipe.
            let _ = tx.send(line);
        }
    });
    rx
}

fn describe(command: &Command) -> String {
    let quote = |s: &OsStr| {
        let s = s.to_string_lossy();
        if s.contains(' ') { format!("'{s}'") } else { s.into_owned() }
    };
    std::iter::once(quote(command.get_program()))
        .chain(command.get_args().map(quote))
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------------------
// The libutp peer

/// The command line of a libutp peer (`node interop/peer.js server|client ...`; see
/// `interop/README.md`). The peer asks for [`PEER_SOCKET_BUFFER`] socket buffers unless
/// [`kernel_buffers`](Self::kernel_buffers) is called, and runs for at most
/// [`DEFAULT_TIMEOUT`] unless [`timeout`](Self::timeout) says otherwise.
#[derive(Clone, Debug)]
pub struct PeerCommand {
    mode: &'static str,
    args: Vec<OsString>,
    buffers: bool,
    timeout: Duration,
}

impl PeerCommand {
    /// A server on a free port of 127.0.0.1 (`--port 0`), for one stream unless
    /// [`streams`](Self::streams) says otherwise.
    pub fn server() -> Self {
        Self::new("server", &["--port", "0", "--host", "127.0.0.1"])
    }

    /// A client of the server at 127.0.0.1:`port`; needs [`bytes`](Self::bytes) or
    /// [`file`](Self::file).
    pub fn client(port: u16) -> Self {
        Self::new("client", &["--port", &port.to_string(), "--host", "127.0.0.1"])
    }

    fn new(mode: &'static str, args: &[&str]) -> Self {
        Self {
            mode,
            args: args.iter().map(OsString::from).collect(),
            buffers: true,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Adds `--flag value`.
    pub fn arg(mut self, flag: &str, value: impl Into<OsString>) -> Self {
        self.args.push(format!("--{flag}").into());
        self.args.push(value.into());
        self
    }

    /// How many streams: a server accepts that many, then exits; a client opens that many
    /// over one socket, stream `i` sending the data of seed `seed + i`.
    pub fn streams(self, n: usize) -> Self {
        self.arg("streams", n.to_string())
    }

    /// Client: how many bytes each stream sends.
    pub fn bytes(self, n: u64) -> Self {
        self.arg("bytes", n.to_string())
    }

    /// Client: the seed of stream 0's data.
    pub fn seed(self, seed: u64) -> Self {
        self.arg("seed", seed.to_string())
    }

    /// Client: send the contents of `path` on every stream instead.
    pub fn file(self, path: &Path) -> Self {
        self.arg("file", path.as_os_str())
    }

    /// Server: after each stream's FIN, reply with `n` bytes of the data of seed
    /// `reply_seed + k` on the `k`-th accepted stream.
    pub fn reply(self, n: u64, reply_seed: u64) -> Self {
        self.arg("reply", n.to_string()).arg("reply-seed", reply_seed.to_string())
    }

    /// Client: fail unless every stream gets exactly `n` bytes back.
    pub fn expect_reply(self, n: u64) -> Self {
        self.arg("expect-reply", n.to_string())
    }

    /// Leave the kernel's default socket buffers (no `--recv-buffer`/`--send-buffer`).
    pub fn kernel_buffers(mut self) -> Self {
        self.buffers = false;
        self
    }

    /// How long the peer may run (its `--timeout`); the Rust side waits a few seconds
    /// more, so that the peer's own timeout message is in the failure.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Starts the peer.
    ///
    /// # Panics
    ///
    /// Node or `utp-native` is missing (with the command that installs them), or the
    /// process cannot be started.
    pub fn spawn(self) -> Peer {
        let node = node();
        let mut command = Command::new(node);
        command.arg(interop_dir().join("peer.js")).arg(self.mode).args(&self.args);
        if self.buffers {
            let size = PEER_SOCKET_BUFFER.to_string();
            command.args(["--recv-buffer", &size, "--send-buffer", &size]);
        }
        command.args(["--timeout", &self.timeout.as_millis().to_string()]);
        let name = format!("libutp {}", self.mode);
        let process = Process::spawn(&name, &mut command, self.timeout + GRACE);
        Peer { process, port: None, events: Vec::new() }
    }
}

/// A running libutp peer: its JSON events, one per line of standard output.
#[derive(Debug)]
pub struct Peer {
    process: Process,
    port: Option<u16>,
    events: Vec<Value>,
}

impl Peer {
    /// The next event, or `None` once the peer closed its standard output (exited).
    ///
    /// # Panics
    ///
    /// A line is not JSON, or the deadline passed.
    pub fn next_event(&mut self) -> Option<Value> {
        let line = self.process.next_stdout_line()?;
        match serde_json::from_str::<Value>(&line) {
            Ok(event) => {
                self.events.push(event.clone());
                Some(event)
            }
            Err(e) => self.process.fail(&format!("printed a line that is not JSON ({e})")),
        }
    }

    /// The UDP port the peer is on, from its first event (`listening` for a server,
    /// `bound` for a client).
    ///
    /// # Panics
    ///
    /// The first event is something else, or does not come in time.
    pub fn port(&mut self) -> u16 {
        if let Some(port) = self.port {
            return port;
        }
        let event = self.next_event();
        let port = event
            .as_ref()
            .filter(|e| e["event"] == "listening" || e["event"] == "bound")
            .and_then(|e| e["port"].as_u64())
            .and_then(|p| u16::try_from(p).ok());
        let Some(port) = port else {
            self.process.fail("its first event is not `listening` or `bound` with a port")
        };
        self.port = Some(port);
        port
    }

    /// The address of a server: 127.0.0.1 and [`port`](Self::port).
    pub fn addr(&mut self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port()))
    }

    /// Reads every remaining event, waits for the peer to exit, and checks that it
    /// succeeded and printed one `stream` event per stream and a `done` event.
    ///
    /// # Panics
    ///
    /// It failed, timed out, or printed something unexpected.
    pub fn finish(mut self) -> PeerReport {
        while self.next_event().is_some() {}
        self.process.wait_success();
        let streams: Vec<StreamReport> = self
            .events
            .iter()
            .filter(|e| e["event"] == "stream")
            .map(StreamReport::from_event)
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| self.process.fail(&e));
        let Some(done) = self.events.iter().find(|e| e["event"] == "done").cloned() else {
            self.process.fail("it exited without a `done` event")
        };
        let expected = done["streams"].as_u64();
        if expected != Some(streams.len() as u64) {
            self.process.fail(&format!(
                "it printed {} stream events, its `done` event says {expected:?}",
                streams.len()
            ));
        }
        PeerReport { streams, done, diagnostics: self.process.diagnostics() }
    }

    /// Everything the peer printed so far, for failure messages.
    pub fn diagnostics(&self) -> String {
        self.process.diagnostics()
    }

    /// Panics with `message` and the peer's output, killing it first.
    ///
    /// # Panics
    ///
    /// Always.
    pub fn fail(&mut self, message: &str) -> ! {
        self.process.fail(message)
    }
}

/// What a libutp peer printed, once it exited successfully.
#[derive(Clone, Debug)]
pub struct PeerReport {
    /// One per stream, in the order they finished.
    pub streams: Vec<StreamReport>,
    /// The `done` event.
    pub done: Value,
    /// The peer's command line and output, for failure messages.
    pub diagnostics: String,
}

impl PeerReport {
    /// The only stream.
    ///
    /// # Panics
    ///
    /// There is not exactly one.
    pub fn single(&self) -> &StreamReport {
        assert_eq!(self.streams.len(), 1, "expected one stream\n{}", self.diagnostics);
        &self.streams[0]
    }

    /// Checks that the streams received (`bytes`, `sha256`) the data of `seeds` (one
    /// stream each, in any order), `len` bytes each.
    ///
    /// # Panics
    ///
    /// They did not.
    pub fn assert_received(&self, seeds: impl IntoIterator<Item = u64>, len: u64) {
        let got = self.streams.iter().map(|s| (s.bytes, s.sha256.as_str()));
        self.assert_streams("received", got, seeds, len);
    }

    /// Checks that the streams sent (`sent`, `sent_sha256`) the data of `seeds` (one
    /// stream each, in any order), `len` bytes each.
    ///
    /// # Panics
    ///
    /// They did not.
    pub fn assert_sent(&self, seeds: impl IntoIterator<Item = u64>, len: u64) {
        let got = self.streams.iter().map(|s| (s.sent, s.sent_sha256.as_str()));
        self.assert_streams("sent", got, seeds, len);
    }

    fn assert_streams<'a>(
        &self,
        what: &str,
        got: impl Iterator<Item = (u64, &'a str)>,
        seeds: impl IntoIterator<Item = u64>,
        len: u64,
    ) {
        let mut expected: Vec<(u64, String)> =
            seeds.into_iter().map(|seed| (seed, interop_sha256(seed, len))).collect();
        let mut unexpected = Vec::new();
        let mut seen = HashSet::new();
        for (bytes, sha256) in got {
            match expected.iter().position(|(_, h)| h == sha256) {
                Some(i) if bytes == len => {
                    seen.insert(expected.remove(i).0);
                }
                _ => unexpected.push(format!("{bytes} bytes with sha256 {sha256}")),
            }
        }
        let missing: Vec<u64> = expected.iter().map(|(seed, _)| *seed).collect();
        assert!(
            unexpected.is_empty() && missing.is_empty(),
            "the peer's streams {what} data that does not match: unexpected {unexpected:?}; \
             missing the {len} bytes of seeds {missing:?}\n{}",
            self.diagnostics
        );
    }
}

/// One `stream` event of a libutp peer.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamReport {
    /// The stream's number (the client's; the server's accept order).
    pub index: u64,
    /// Bytes received.
    pub bytes: u64,
    /// SHA-256 of the bytes received.
    pub sha256: String,
    /// Bytes sent.
    pub sent: u64,
    /// SHA-256 of the bytes sent.
    pub sent_sha256: String,
    /// Milliseconds until all data was through (see `interop/README.md`).
    pub ms: f64,
}

impl StreamReport {
    fn from_event(event: &Value) -> Result<Self, String> {
        let number = |key: &str| {
            event[key].as_u64().ok_or_else(|| format!("stream event without `{key}`: {event}"))
        };
        let text = |key: &str| {
            event[key]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("stream event without `{key}`: {event}"))
        };
        Ok(Self {
            index: number("index")?,
            bytes: number("bytes")?,
            sha256: text("sha256")?,
            sent: number("sent")?,
            sent_sha256: text("sent_sha256")?,
            ms: event["ms"].as_f64().unwrap_or(f64::NAN),
        })
    }
}

// ---------------------------------------------------------------------------------------
// utp relay

/// A running `utp relay` between clients and one server, with `--json` counters.
#[derive(Debug)]
pub struct Relay {
    process: Process,
    addr: SocketAddr,
}

impl Relay {
    /// Starts `utp relay --listen 127.0.0.1:0 --to <to> <impairments> --json` and waits
    /// for the address it listens on.
    ///
    /// # Panics
    ///
    /// It cannot be built or started, or does not announce its address in time.
    pub fn spawn(to: SocketAddr, impairments: &[&str], timeout: Duration) -> Self {
        let mut command = Command::new(utp_binary());
        command
            .args(["relay", "--listen", "127.0.0.1:0", "--to", &to.to_string(), "--json"])
            .args(impairments);
        let mut process = Process::spawn("utp relay", &mut command, timeout);
        // "relay listening on 127.0.0.1:40123 -> 127.0.0.1:9000"
        let rest = process.wait_for_stderr("relay listening on ");
        let Some(addr) = rest.split_whitespace().next().and_then(|a| a.parse().ok()) else {
            process.fail(&format!("cannot read the address in `{rest}`"))
        };
        Self { process, addr }
    }

    /// Where clients send.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the relay (SIGTERM) and returns its counters.
    ///
    /// # Panics
    ///
    /// It does not exit successfully or prints no counters.
    pub fn stop(mut self) -> Value {
        self.process.terminate();
        let mut counters = None;
        while let Some(line) = self.process.next_stdout_line() {
            counters = serde_json::from_str::<Value>(&line).ok().or(counters);
        }
        self.process.wait_success();
        counters.unwrap_or_else(|| self.process.fail("it printed no counters"))
    }

    /// Everything the relay printed so far, for failure messages.
    pub fn diagnostics(&self) -> String {
        self.process.diagnostics()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors() {
        assert_eq!(hex(&interop_data(0, 16)), "afcd1d7b39a820e2c15c0289ec2d0a91");
        assert_eq!(hex(&interop_data(7, 16)), "51598a438046dabc40a3c3253caa3e1a");
        assert_eq!(
            interop_sha256(1, 1 << 20),
            "29bf07d088ae967eeb585551e06681b4546ffe864fa3f4d9b73a25a1a69a8362"
        );
        assert_eq!(sha256_hex(&interop_data(1, 1 << 20)), interop_sha256(1, 1 << 20));
    }

    #[test]
    fn any_offset_and_length() {
        let whole = interop_data(3, 100);
        for offset in 0..40 {
            for len in 0..40 {
                let mut part = vec![0; len];
                fill_interop_data(3, offset as u64, &mut part);
                assert_eq!(part, whole[offset..offset + len], "offset {offset}, len {len}");
            }
        }
    }

    #[test]
    fn only_the_low_32_bits_of_the_seed_count() {
        // peer.js takes the seed mod 2^32: (seed << 32) drops the high half here too.
        assert_eq!(interop_data(5, 64), interop_data(5 + (1 << 32), 64));
    }

    #[test]
    fn checker_finds_the_first_difference() {
        let mut data = interop_data(9, 1000);
        let mut checker = DataChecker::new(9);
        checker.check(&data[..123]).unwrap();
        data[500] ^= 1;
        let err = checker.check(&data[123..]).unwrap_err();
        assert!(err.contains("byte 500 "), "{err}");
        let mut checker = DataChecker::new(9);
        checker.check(&data[..400]).unwrap();
        assert!(checker.finish(1000).is_err());
        assert!(checker.finish(400).is_ok());
    }

    #[test]
    fn seeds_are_told_apart() {
        let prefix = interop_data(42, 16);
        assert_eq!(identify_seed(&prefix, 40..48), Some(42));
        assert_eq!(identify_seed(&prefix, 0..40), None);
    }

    #[test]
    fn a_missing_peer_says_how_to_install_it() {
        let exe = std::env::current_exe().unwrap();
        let no_modules = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        for problem in [
            check_peer(None, interop_dir()),
            check_peer(Some(PathBuf::from("/nonexistent/node")), interop_dir()),
            check_peer(Some(exe), &no_modules),
        ] {
            let message = problem.unwrap_err();
            assert!(message.contains(INSTALL_HINT), "{message}");
        }
    }

    #[test]
    fn profile_from_the_test_binary_path() {
        // Tests run from <target>/<profile dir>/deps/.
        assert!(current_profile().is_some());
    }
}

/// A fresh directory for a test's files, removed when dropped.
#[derive(Debug)]
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    /// A directory in `parent` (tests pass `env!("CARGO_TARGET_TMPDIR")`) whose name starts
    /// with `utp-interop-{tag}-`.
    ///
    /// # Panics
    ///
    /// If `parent` is not writable: the test cannot run.
    pub fn new(parent: impl AsRef<Path>, tag: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("utp-interop-{tag}-"))
            .tempdir_in(parent)
            .expect("cannot create a temporary directory");
        Self(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// `name` inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}
