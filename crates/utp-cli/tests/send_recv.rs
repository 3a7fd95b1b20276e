//! `utp send` and `utp recv` end to end: the real binary, two processes, loopback only.

use std::fs::{self, File};
use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

mod common;

use common::{TempDir, listening_addr, pseudo_random, text, utp};

/// Writes `len` pseudo-random bytes to `path`, a MiB at a time.
fn write_pseudo_random(path: &Path, len: usize) {
    let mut file = File::create(path).unwrap();
    let mut left = len;
    let mut seed = 0x9e37_79b9_7f4a_7c15;
    while left > 0 {
        let block = pseudo_random(seed, left.min(1 << 20));
        file.write_all(&block).unwrap();
        left -= block.len();
        seed = seed.wrapping_add(0x1234_5678_9abc_def1);
    }
}

/// Whether two files hold the same bytes, compared a MiB at a time.
fn same_contents(a: &Path, b: &Path) -> bool {
    let (mut a, mut b) = (File::open(a).unwrap(), File::open(b).unwrap());
    if a.metadata().unwrap().len() != b.metadata().unwrap().len() {
        return false;
    }
    let (mut x, mut y) = (vec![0; 1 << 20], vec![0; 1 << 20]);
    loop {
        let n = read_full(&mut a, &mut x);
        let m = read_full(&mut b, &mut y);
        if n != m || x[..n] != y[..m] {
            return false;
        }
        if n == 0 {
            return true;
        }
    }
}

fn read_full(file: &mut File, buf: &mut [u8]) -> usize {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]).unwrap() {
            0 => break,
            n => filled += n,
        }
    }
    filled
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// A running `utp recv`, its address, and the rest of its standard error.
struct Receiver {
    child: Child,
    addr: SocketAddr,
    stderr: JoinHandle<String>,
}

impl Receiver {
    /// Starts `utp recv --listen 127.0.0.1:0 ARGS...` and reads the port it announces.
    fn start(args: &[&str], stdout: Stdio) -> Self {
        let mut child = utp()
            .args(["recv", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let addr = listening_addr(&mut stderr);
        Self { child, addr, stderr: std::thread::spawn(move || drain(stderr)) }
    }

    fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Waits for the receiver to exit; its status, standard output and standard error.
    fn finish(mut self) -> (std::process::ExitStatus, Vec<u8>, String) {
        let mut stdout = Vec::new();
        if let Some(mut out) = self.child.stdout.take() {
            out.read_to_end(&mut stdout).unwrap();
        }
        let status = wait_bounded(&mut self.child, Duration::from_secs(120));
        (status, stdout, self.stderr.join().unwrap())
    }
}

fn drain(mut stderr: BufReader<ChildStderr>) -> String {
    let mut rest = String::new();
    let _ = stderr.read_to_string(&mut rest);
    rest
}

/// Waits for `child`, killing it (and failing) after `limit`.
fn wait_bounded(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("process still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `utp send ADDR ARGS...` to completion with `stdin` as its input.
fn send(addr: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = utp()
        .arg("send")
        .arg(addr)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(data) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        let data = data.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_256_mib_file_arrives_intact() {
    let dir = TempDir::new("big");
    let (src, dst) = (dir.join("src.bin"), dir.join("dst.bin"));
    let len = 256 << 20;
    write_pseudo_random(&src, len);

    let receiver = Receiver::start(&["--output", dst.to_str().unwrap()], Stdio::null());
    let start = Instant::now();
    let sent = send(&receiver.addr(), &[src.to_str().unwrap()], None);
    let elapsed = start.elapsed();
    let (status, _, recv_err) = receiver.finish();
    eprintln!("256 MiB in {elapsed:?}");
    assert!(sent.status.success(), "send failed: {}", text(&sent.stderr));
    assert!(status.success(), "recv failed: {recv_err}");
    let summary = text(&sent.stderr);
    assert!(summary.starts_with(&format!("sent {len} bytes in ")), "{summary}");
    assert!(recv_err.starts_with(&format!("received {len} bytes in ")), "{recv_err}");
    assert!(same_contents(&src, &dst), "the received file differs");
}

#[test]
fn stdin_to_stdout() {
    let payload = b"hello over uTP\nsecond line, no newline at the end";
    let receiver = Receiver::start(&[], Stdio::piped());
    let sent = send(&receiver.addr(), &["-"], Some(payload));
    let (status, stdout, recv_err) = receiver.finish();
    assert!(sent.status.success(), "send failed: {}", text(&sent.stderr));
    assert!(status.success(), "recv failed: {recv_err}");
    assert_eq!(stdout, payload);
    assert!(sent.stdout.is_empty());
}

#[test]
fn recv_closes_gracefully_after_storing_and_the_sender_exits_0() {
    let dir = TempDir::new("close");
    let dst = dir.join("dst.bin");
    let data = pseudo_random(5, 8 << 20);
    let receiver = Receiver::start(&["--output", dst.to_str().unwrap()], Stdio::null());
    let sent = send(&receiver.addr(), &[], Some(&data));
    // The sender exits 0 only after the receiver's FIN, which comes after the last write.
    assert!(sent.status.success(), "send failed: {}", text(&sent.stderr));
    assert!(fs::read(&dst).unwrap() == data, "the file was incomplete when send exited");
    let (status, _, recv_err) = receiver.finish();
    assert!(status.success(), "recv failed: {recv_err}");
    assert!(!recv_err.contains("warning"), "{recv_err}");
    let summary = text(&sent.stderr);
    assert!(summary.starts_with(&format!("sent {} bytes in ", data.len())), "{summary}");
    assert!(summary.contains(" MB/s) to 127.0.0.1:"), "{summary}");
}

#[test]
fn empty_input_is_an_empty_stream() {
    let receiver = Receiver::start(&[], Stdio::piped());
    let sent = send(&receiver.addr(), &[], Some(b""));
    let (status, stdout, recv_err) = receiver.finish();
    assert!(sent.status.success(), "send failed: {}", text(&sent.stderr));
    assert!(status.success(), "recv failed: {recv_err}");
    assert!(stdout.is_empty());
}

#[test]
fn json_summaries_carry_count_and_digest() {
    let dir = TempDir::new("json");
    let (src, dst) = (dir.join("src.bin"), dir.join("dst.bin"));
    let data = pseudo_random(7, 3 << 20);
    fs::write(&src, &data).unwrap();
    let digest = sha256_hex(&data);

    let receiver =
        Receiver::start(&["--output", dst.to_str().unwrap(), "--json", "--sha256"], Stdio::piped());
    let recv_addr = receiver.addr();
    let sent = send(&recv_addr, &[src.to_str().unwrap(), "--json", "--sha256"], None);
    let (status, stdout, recv_err) = receiver.finish();
    assert!(sent.status.success(), "send failed: {}", text(&sent.stderr));
    assert!(status.success(), "recv failed: {recv_err}");

    let parse = |side: &str, out: &[u8]| -> serde_json::Value {
        serde_json::from_slice(out)
            .unwrap_or_else(|e| panic!("{side}: not one JSON object ({e}): {}", text(out)))
    };
    let (sent_json, recv_json) = (parse("send", &sent.stdout), parse("recv", &stdout));
    for json in [&sent_json, &recv_json] {
        assert_eq!(json["bytes"], data.len() as u64, "{json}");
        assert_eq!(json["sha256"], digest.as_str(), "{json}");
        assert!(json["seconds"].as_f64().is_some_and(|s| s >= 0.0), "{json}");
        assert!(json["mbps"].as_f64().is_some_and(|s| s >= 0.0), "{json}");
        assert!(json["peer"].as_str().is_some_and(|p| p.starts_with("127.0.0.1:")), "{json}");
    }
    assert_eq!(sent_json["peer"], recv_addr.as_str());
    assert!(recv_json["file"].as_str().is_some_and(|f| f.ends_with("dst.bin")), "{recv_json}");
    assert!(sent_json["file"].as_str().is_some_and(|f| f.ends_with("src.bin")), "{sent_json}");
    assert!(fs::read(&dst).unwrap() == data, "the received file differs");
}

#[test]
fn json_needs_an_output_file() {
    for args in [&["recv", "--json"][..], &["recv", "--json", "--output", "-"]] {
        let out = utp().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.starts_with("utp: ") && err.contains("--output FILE"), "{err}");
    }
}

#[test]
fn nobody_listening_fails_with_a_clear_message() {
    // A socket that never answers: nobody else can take the port while it is bound.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let start = Instant::now();
    let sent = send(&addr, &[], Some(b"nobody will read this"));
    let elapsed = start.elapsed();
    eprintln!("connect gave up after {elapsed:?}");
    assert_eq!(sent.status.code(), Some(1));
    let err = text(&sent.stderr);
    assert!(err.starts_with("utp: no answer from "), "{err}");
    assert!(err.contains("utp recv"), "{err}");
    assert!(elapsed < Duration::from_secs(60), "{elapsed:?}");
}

#[test]
fn missing_file_and_bad_address_fail_before_connecting() {
    let dir = TempDir::new("missing");
    let missing = dir.join("no-such-file");
    let out = utp().args(["send", "127.0.0.1:9"]).arg(&missing).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.starts_with("utp: cannot read ") && err.contains("no-such-file"), "{err}");

    let out = utp().args(["send", "127.0.0.1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn keep_serves_streams_one_after_another() {
    let dir = TempDir::new("keep");
    let base = dir.join("out");
    let receiver =
        Receiver::start(&["--keep", "--output", base.to_str().unwrap(), "--json"], Stdio::piped());
    let first = pseudo_random(1, 100_000);
    let second = pseudo_random(2, 1 << 20);
    for data in [&first, &second] {
        let sent = send(&receiver.addr(), &[], Some(data));
        assert!(sent.status.success(), "send failed: {}", text(&sent.stderr));
    }
    // `send` succeeds only after the receiver wrote everything and closed.
    assert!(fs::read(dir.join("out.1")).unwrap() == first, "out.1 differs");
    assert!(fs::read(dir.join("out.2")).unwrap() == second, "out.2 differs");
    stop(receiver, |status, stdout, stderr| {
        let lines: Vec<serde_json::Value> =
            stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2, "{stdout}");
        assert_eq!(lines[0]["bytes"], first.len());
        assert_eq!(lines[1]["bytes"], second.len());
        // Without --sha256 the digest is not computed.
        assert!(lines[0]["sha256"].is_null(), "{}", lines[0]);
        if let Some(status) = status {
            assert!(status.success(), "recv --keep after SIGTERM: {status:?} {stderr}");
        }
    });
}

/// Stops a `--keep` receiver: SIGTERM on Unix (a clean stop: exit 0), else kill. Hands its
/// status (`None` when killed), standard output and standard error to `check`.
fn stop(mut receiver: Receiver, check: impl FnOnce(Option<std::process::ExitStatus>, &str, &str)) {
    let terminated = cfg!(unix)
        && Command::new("kill")
            .args(["-TERM", &receiver.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
    if !terminated {
        receiver.child.kill().unwrap();
    }
    let (status, stdout, stderr) = receiver.finish();
    check(terminated.then_some(status), &text(&stdout), &stderr);
}

#[test]
fn receiver_failure_resets_and_the_sender_fails() {
    // The receiver's standard output is closed at once: writing fails, it resets the
    // stream, and the sender must not report success.
    let mut receiver = Receiver::start(&[], Stdio::piped());
    drop(receiver.child.stdout.take());
    let sent = send(&receiver.addr(), &[], Some(&pseudo_random(3, 4 << 20)));
    let (status, _, recv_err) = receiver.finish();
    assert_eq!(status.code(), Some(1), "{recv_err}");
    assert!(recv_err.contains("utp: cannot write standard output"), "{recv_err}");
    assert_eq!(sent.status.code(), Some(1), "{}", text(&sent.stderr));
    assert!(text(&sent.stderr).contains("reset the connection"), "{}", text(&sent.stderr));
}

/// A receiver that acknowledges everything but never closes its side (as a libutp
/// application may): `send` warns after its confirmation wait and still exits 0.
#[test]
fn a_receiver_that_never_closes_gets_a_warning_not_a_failure() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        runtime.block_on(async move {
            use futures_lite::AsyncReadExt as _;
            let socket = utp_tokio::bind("127.0.0.1:0".parse().unwrap()).unwrap();
            addr_tx.send(socket.local_addr().unwrap()).unwrap();
            let mut stream = socket.accept().await.unwrap();
            let mut got = Vec::new();
            stream.read_to_end(&mut got).await.unwrap();
            // Hold the stream open, without a FIN, until the test is over.
            tokio::task::spawn_blocking(move || done_rx.recv()).await.unwrap().ok();
            got
        })
    });
    let addr: SocketAddr = addr_rx.recv().unwrap();
    let started = Instant::now();
    let out = send(&addr.to_string(), &[], Some(b"kept open"));
    let waited = started.elapsed();
    done_tx.send(()).unwrap();
    let got = server.join().unwrap();
    assert!(out.status.success(), "send failed: {}", text(&out.stderr));
    assert!(text(&out.stderr).contains("did not close its side"), "{}", text(&out.stderr));
    assert!(waited >= Duration::from_secs(10), "the confirmation wait was cut short: {waited:?}");
    assert_eq!(got, b"kept open");
}
