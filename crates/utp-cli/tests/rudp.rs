//! `utp rudp listen` and `utp rudp send` end to end: the real binary, loopback only. A few
//! tests play one side with the library (`utp_tokio::rudp`) to do what `send` does not:
//! direct datagrams, a close with an application code.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use utp_tokio::rudp::{CloseCode, RudpConfig};

mod common;

use common::{TempDir, listening_addr, pseudo_random, text, utp};

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// The `LEN SHA256` line `listen` prints for `data`.
fn line_of(data: &[u8]) -> String {
    format!("{} {}", data.len(), sha256_hex(data))
}

/// Writes `data` to `name` in `dir`; returns the path.
fn write(dir: &TempDir, name: &str, data: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, data).unwrap();
    path
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A running `utp rudp listen`: its address, its standard output (whole, or line by line
/// as it comes) and the rest of its standard error.
struct Listener {
    child: Child,
    addr: SocketAddr,
    stdout: JoinHandle<Vec<u8>>,
    lines: mpsc::Receiver<String>,
    log: mpsc::Receiver<String>,
    stderr: JoinHandle<String>,
}

impl Listener {
    /// Starts `utp rudp listen --listen 127.0.0.1:0 ARGS...` and reads the address it
    /// announces.
    fn start(args: &[&str]) -> Self {
        let mut child = utp()
            .args(["rudp", "listen", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let addr = listening_addr(&mut stderr);
        let mut out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        let stdout = std::thread::spawn(move || {
            let mut all = Vec::new();
            let mut chunk = [0; 64 * 1024];
            loop {
                match out.read(&mut chunk) {
                    Ok(0) | Err(_) => return all,
                    Ok(n) => {
                        let start = all.len();
                        all.extend_from_slice(&chunk[..n]);
                        // Complete lines, for tests that wait for one (text output only).
                        if chunk[..n].contains(&b'\n') {
                            let _ = tx.send(text(&all[start..]));
                        }
                    }
                }
            }
        });
        let (tx, log) = mpsc::channel();
        let stderr = std::thread::spawn(move || {
            let mut rest = String::new();
            for line in stderr.lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line.clone());
                rest.push_str(&line);
                rest.push('\n');
            }
            rest
        });
        Self { child, addr, stdout, lines, log, stderr }
    }

    fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Waits (at most 30 s) until standard output has printed something.
    fn wait_output(&self) -> String {
        self.lines.recv_timeout(Duration::from_secs(30)).expect("the listener printed nothing")
    }

    /// Waits (at most 30 s) for a line on standard error containing `fragment`.
    fn wait_log(&self, fragment: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(fragment) => return line,
                Ok(_) => {}
                Err(e) => panic!("no listener line containing {fragment:?}: {e}"),
            }
        }
    }

    /// Waits for the listener to exit: its status, standard output and standard error.
    fn finish(mut self) -> (ExitStatus, Vec<u8>, String) {
        let status = wait_bounded(&mut self.child, Duration::from_secs(60));
        (status, self.stdout.join().unwrap(), self.stderr.join().unwrap())
    }

    /// Stops a `--keep` listener with SIGTERM (on Unix; killed elsewhere) and finishes it.
    /// The status is `None` when it was killed.
    fn stop(mut self) -> (Option<ExitStatus>, Vec<u8>, String) {
        let terminated = cfg!(unix)
            && std::process::Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status()
                .is_ok_and(|s| s.success());
        if !terminated {
            self.child.kill().unwrap();
        }
        let (status, stdout, stderr) = self.finish();
        (terminated.then_some(status), stdout, stderr)
    }
}

/// Waits for `child`, killing it (and failing) after `limit`.
fn wait_bounded(child: &mut Child, limit: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("process still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Starts `utp rudp send ADDR ARGS...` with its standard input piped.
fn spawn_send(addr: &str, args: &[&str]) -> Child {
    utp()
        .args(["rudp", "send", addr])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs `utp rudp send ADDR ARGS...` to completion with `stdin` as its input.
fn send(addr: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = spawn_send(addr, args);
    let mut pipe = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    std::thread::spawn(move || {
        let _ = pipe.write_all(&data);
    });
    child.wait_with_output().unwrap()
}

/// The lines of a process's output.
fn lines(out: &[u8]) -> Vec<String> {
    text(out).lines().map(str::to_owned).collect()
}

#[test]
fn files_arrive_in_order_with_their_digests() {
    let dir = TempDir::new("rudp-files");
    let sizes = [0, 1, 1200, 1 << 20, 4 << 20];
    let files: Vec<(PathBuf, Vec<u8>)> = sizes
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            let data = pseudo_random(i as u64 + 1, len);
            (write(&dir, &format!("f{i}.bin"), &data), data)
        })
        .collect();
    let args: Vec<&str> = files.iter().map(|(p, _)| arg(p)).collect();

    let listener = Listener::start(&[]);
    let sent = send(&listener.addr(), &args, b"");
    let (status, stdout, stderr) = listener.finish();
    assert!(sent.status.success(), "send failed: {}", text(&sent.stderr));
    assert!(status.success(), "listen failed: {stderr}");

    let want: Vec<String> = files.iter().map(|(_, data)| line_of(data)).collect();
    assert_eq!(lines(&stdout), want);
    let total: usize = sizes.iter().sum();
    let summary = text(&sent.stderr);
    assert!(summary.starts_with(&format!("sent 5 messages ({total} bytes) in ")), "{summary}");
    assert!(summary.contains(" MB/s) to 127.0.0.1:"), "{summary}");
    assert!(stderr.contains(&format!("received 5 messages ({total} bytes) in ")), "{stderr}");
    assert!(sent.stdout.is_empty());
}

#[test]
fn each_line_of_stdin_is_a_message() {
    let listener = Listener::start(&[]);
    let sent = send(&listener.addr(), &[], b"alpha\nbeta\r\n\ngamma");
    let (status, stdout, stderr) = listener.finish();
    assert!(sent.status.success(), "send failed: {}", text(&sent.stderr));
    assert!(status.success(), "listen failed: {stderr}");
    let want: Vec<String> =
        [&b"alpha"[..], b"beta", b"", b"gamma"].iter().map(|m| line_of(m)).collect();
    assert_eq!(lines(&stdout), want);
}

#[test]
fn raw_output_is_the_messages_back_to_back() {
    let dir = TempDir::new("rudp-raw");
    let a = pseudo_random(11, 1200);
    let stdin = pseudo_random(12, 3000);
    let b = pseudo_random(13, 1 << 20);
    let (pa, pb) = (write(&dir, "a.bin", &a), write(&dir, "b.bin", &b));

    let listener = Listener::start(&["--raw"]);
    let sent = send(&listener.addr(), &[arg(&pa), "-", arg(&pb)], &stdin);
    let (status, stdout, stderr) = listener.finish();
    assert!(sent.status.success(), "send failed: {}", text(&sent.stderr));
    assert!(status.success(), "listen failed: {stderr}");
    assert!(stdout == [a, stdin, b].concat(), "the raw output differs");
}

#[test]
fn json_lines_and_summary() {
    let dir = TempDir::new("rudp-json");
    let messages = [pseudo_random(21, 10), pseudo_random(22, 5000), Vec::new()];
    let paths: Vec<PathBuf> =
        messages.iter().enumerate().map(|(i, m)| write(&dir, &format!("{i}"), m)).collect();
    let args: Vec<&str> = paths.iter().map(|p| arg(p)).chain(["--json"]).collect();

    let listener = Listener::start(&["--json"]);
    let addr = listener.addr();
    let sent = send(&addr, &args, b"");
    let (status, stdout, stderr) = listener.finish();
    assert!(sent.status.success(), "send failed: {}", text(&sent.stderr));
    assert!(status.success(), "listen failed: {stderr}");

    let got: Vec<serde_json::Value> =
        lines(&stdout).iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(got.len(), messages.len(), "{}", text(&stdout));
    for (i, (json, message)) in got.iter().zip(&messages).enumerate() {
        assert_eq!(json["len"], message.len(), "{json}");
        assert_eq!(json["sha256"], sha256_hex(message).as_str(), "{json}");
        assert_eq!(json["direct"], false, "{json}");
        assert_eq!(json["message"], i + 1, "{json}");
        assert_eq!(json["connection"], 1, "{json}");
        assert!(json["peer"].as_str().is_some_and(|p| p.starts_with("127.0.0.1:")), "{json}");
    }

    let summary: serde_json::Value = serde_json::from_slice(&sent.stdout)
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {}", text(&sent.stdout)));
    assert_eq!(summary["messages"], 3, "{summary}");
    assert_eq!(summary["bytes"], 5010, "{summary}");
    assert_eq!(summary["peer"], addr.as_str(), "{summary}");
    assert!(summary["seconds"].as_f64().is_some_and(|s| s >= 0.0), "{summary}");
    assert!(summary["mbps"].as_f64().is_some_and(|s| s >= 0.0), "{summary}");
    assert!(summary["retransmits"].as_u64().is_some(), "{summary}");
}

#[test]
fn a_16_mib_file_fits_the_default_limit() {
    // 16 MiB is the listener's default --max-message; it is larger than the sender's
    // default send buffer holds as one message, so this needs the raised buffer.
    let dir = TempDir::new("rudp-16m");
    let data = pseudo_random(31, 16 << 20);
    let path = write(&dir, "big.bin", &data);
    let listener = Listener::start(&[]);
    let sent = send(&listener.addr(), &[arg(&path)], b"");
    let (status, stdout, stderr) = listener.finish();
    assert!(sent.status.success(), "send failed: {}", text(&sent.stderr));
    assert!(status.success(), "listen failed: {stderr}");
    assert_eq!(lines(&stdout), vec![line_of(&data)]);
}

#[test]
fn a_file_over_the_receivers_limit_is_not_sent() {
    let dir = TempDir::new("rudp-limit");
    let small = write(&dir, "small.bin", b"fits");
    let big = write(&dir, "big.bin", &pseudo_random(41, 2000));
    let listener = Listener::start(&["--max-message", "1K"]);
    let sent = send(&listener.addr(), &[arg(&small), arg(&big)], b"");
    let (status, stdout, stderr) = listener.finish();

    assert_eq!(sent.status.code(), Some(1), "{}", text(&sent.stderr));
    let err = text(&sent.stderr);
    assert!(err.starts_with("utp: ") && err.contains("big.bin is 2000 bytes"), "{err}");
    assert!(err.contains("limit of 1024 bytes") && err.contains("nothing was sent"), "{err}");
    // The listener received nothing, and was told why.
    assert!(stdout.is_empty(), "{}", text(&stdout));
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("code 4") && stderr.contains("big.bin"), "{stderr}");
}

#[test]
fn nobody_listening_fails_within_the_connect_timeout() {
    // A socket that never answers: nobody else can take the port while it is bound.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let start = Instant::now();
    let sent = send(&addr, &["--connect-timeout", "1"], b"nobody will read this\n");
    let elapsed = start.elapsed();
    assert_eq!(sent.status.code(), Some(1), "{}", text(&sent.stderr));
    let err = text(&sent.stderr);
    assert!(err.starts_with(&format!("utp: no answer from {addr} after 1.0 s")), "{err}");
    assert!(err.contains("utp rudp listen"), "{err}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
}

#[test]
fn a_missing_file_fails_before_connecting() {
    let dir = TempDir::new("rudp-missing");
    let there = write(&dir, "there.bin", b"x");
    let missing = dir.join("no-such-file");
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let start = Instant::now();
    // Connecting would take the whole 30 s: failing at once shows it was not tried.
    let out = utp()
        .args(["rudp", "send", &addr, arg(&there), arg(&missing), "--connect-timeout", "30"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.starts_with("utp: cannot read ") && err.contains("no-such-file"), "{err}");
}

#[test]
fn usage_errors_exit_2() {
    let cases: &[&[&str]] = &[
        &["rudp", "listen", "--raw", "--json"],
        &["rudp", "listen", "--max-message", "0"],
        &["rudp", "listen", "--max-message", "5G"],
        &["rudp", "listen", "--max-message", "12Q"],
        &["rudp", "send", "127.0.0.1"],
        &["rudp", "send", "127.0.0.1:9", "-", "-"],
        &["rudp", "send", "127.0.0.1:9", "--connect-timeout", "0"],
        &["rudp"],
    ];
    for args in cases {
        let out = utp().args(*args).stdin(Stdio::null()).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
    let out = utp().args(["rudp", "listen", "--raw", "--json"]).output().unwrap();
    let err = text(&out.stderr);
    assert!(err.starts_with("utp: --raw") && err.contains("only one"), "{err}");
}

#[test]
fn keep_serves_connections_concurrently_until_sigterm() {
    let dir = TempDir::new("rudp-keep");
    let listener = Listener::start(&["--keep", "--json"]);
    let addr = listener.addr();
    let messages: Vec<Vec<u8>> =
        (0..3).map(|i| pseudo_random(50 + i, 100_000 * (i as usize + 1))).collect();
    let senders: Vec<Child> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| spawn_send(&addr, &[arg(&write(&dir, &format!("{i}"), m))]))
        .collect();
    for sender in senders {
        let out = sender.wait_with_output().unwrap();
        assert!(out.status.success(), "send failed: {}", text(&out.stderr));
    }
    // Each connection's summary comes once the sender closed and its message was handed to
    // the output; stopping before would cut a connection off.
    for _ in 0..3 {
        listener.wait_log(": received 1 message (");
    }
    let (status, stdout, stderr) = listener.stop();
    if let Some(status) = status {
        assert!(status.success(), "listen --keep after SIGTERM: {status:?} {stderr}");
    }
    let got: Vec<serde_json::Value> =
        lines(&stdout).iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(got.len(), 3, "{}", text(&stdout));
    let mut connections: Vec<u64> = got.iter().map(|j| j["connection"].as_u64().unwrap()).collect();
    connections.sort_unstable();
    assert_eq!(connections, [1, 2, 3]);
    let mut want: Vec<String> = messages.iter().map(|m| sha256_hex(m)).collect();
    let mut have: Vec<String> =
        got.iter().map(|j| j["sha256"].as_str().unwrap().to_owned()).collect();
    want.sort();
    have.sort();
    assert_eq!(have, want);
    for n in 1..=3 {
        assert!(stderr.contains(&format!("connection {n}: received 1 message (")), "{stderr}");
    }
}

#[test]
fn a_listener_without_keep_turns_a_second_sender_away() {
    let listener = Listener::start(&[]);
    let addr = listener.addr();
    // The first sender sends one line and keeps its standard input open.
    let mut first = spawn_send(&addr, &[]);
    let mut pipe = first.stdin.take().unwrap();
    pipe.write_all(b"first\n").unwrap();
    pipe.flush().unwrap();
    assert_eq!(listener.wait_output().trim_end(), line_of(b"first"));

    let second = send(&addr, &["--connect-timeout", "30"], b"second\n");
    assert_eq!(second.status.code(), Some(1), "{}", text(&second.stderr));
    let err = text(&second.stderr);
    assert!(err.contains("listener busy") && err.contains("--keep"), "{err}");

    drop(pipe);
    let out = first.wait_with_output().unwrap();
    assert!(out.status.success(), "the first sender failed: {}", text(&out.stderr));
    let (status, stdout, stderr) = listener.finish();
    assert!(status.success(), "listen failed: {stderr}");
    assert_eq!(lines(&stdout), vec![line_of(b"first")]);
}

/// Runs `f` against the listener at `addr` on a fresh tokio runtime, with a connection.
fn with_connection<F, Fut>(addr: SocketAddr, f: F)
where
    F: FnOnce(utp_tokio::rudp::RudpConnection) -> Fut,
    Fut: Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let socket =
            utp_tokio::rudp::bind("127.0.0.1:0".parse().unwrap(), RudpConfig::default()).unwrap();
        let conn = socket.connect(addr).await.unwrap();
        f(conn).await;
    });
}

#[test]
fn direct_datagrams_are_printed_beside_the_messages() {
    let listener = Listener::start(&["--json"]);
    with_connection(listener.addr, |conn| async move {
        conn.send_direct(b"ping").await.unwrap();
        conn.send(b"a message").await.unwrap();
        conn.flush().await.unwrap();
        // Closing drops direct datagrams not yet sent: wait until it has left.
        let deadline = Instant::now() + Duration::from_secs(10);
        while conn.stats().unwrap().direct_sent == 0 {
            assert!(Instant::now() < deadline, "the direct datagram was never sent");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        conn.close(CloseCode::Normal, "done").await.unwrap();
    });
    let (status, stdout, stderr) = listener.finish();
    assert!(status.success(), "listen failed: {stderr}");
    let got: Vec<serde_json::Value> =
        lines(&stdout).iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    let direct: Vec<_> = got.iter().filter(|j| j["direct"] == true).collect();
    let messages: Vec<_> = got.iter().filter(|j| j["direct"] == false).collect();
    assert_eq!(direct.len(), 1, "{}", text(&stdout));
    assert_eq!(direct[0]["len"], 4);
    assert_eq!(direct[0]["sha256"], sha256_hex(b"ping").as_str());
    assert_eq!(direct[0]["message"], 1);
    assert_eq!(messages.len(), 1, "{}", text(&stdout));
    assert_eq!(messages[0]["sha256"], sha256_hex(b"a message").as_str());
    assert!(stderr.contains("received 1 message (9 bytes)"), "{stderr}");
    assert!(stderr.contains("and 1 direct datagram (4 bytes)"), "{stderr}");
}

#[test]
fn a_sender_closing_with_an_error_code_fails_the_listener() {
    let listener = Listener::start(&[]);
    with_connection(listener.addr, |conn| async move {
        conn.send(b"one").await.unwrap();
        conn.flush().await.unwrap();
        conn.close(CloseCode::Application(7), "boom").await.unwrap();
    });
    let (status, stdout, stderr) = listener.finish();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(lines(&stdout), vec![line_of(b"one")]);
    assert!(stderr.contains("failed after 1 message (3 bytes)"), "{stderr}");
    assert!(stderr.contains("code 7") && stderr.contains("boom"), "{stderr}");
}
