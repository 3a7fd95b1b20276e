//! `utp relay` end to end: the built binary between UDP sockets on 127.0.0.1.
//!
//! Timing assertions are lower bounds only, and every wait has a generous timeout, so a
//! loaded machine makes the tests slower, not flaky.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long any single wait may take before the test gives up.
const PATIENCE: Duration = Duration::from_secs(60);

#[test]
#[cfg(unix)]
fn loss_rate_matches_the_flag() {
    const TOTAL: u32 = 20_000;
    const BURST: u32 = 100;
    let sink = Sink::start();
    let relay = RelayProcess::start(&[
        "--to",
        &sink.addr.to_string(),
        "--loss",
        "0.05",
        "--seed",
        "1",
        "--json",
    ]);
    let client = local_socket();

    // Send in bursts, each time waiting until all but the last few datagrams of the burst
    // are through (the relay keeps the order), so no socket buffer ever overflows.
    for start in (0..TOTAL).step_by(BURST as usize) {
        for seq in start..start + BURST {
            let mut datagram = [0u8; 16];
            datagram[..4].copy_from_slice(&seq.to_be_bytes());
            client.send_to(&datagram, relay.addr).unwrap();
        }
        // Ten datagrams in a row all lost happens once in 10^13 bursts.
        let target = u64::from(start + BURST - 10);
        wait_for("the burst to get through", || sink.seen_up_to.load(Ordering::SeqCst) > target);
    }

    let report = relay.stop("TERM").json();
    let up = &report["upstream"];
    let received = up["received"].as_u64().unwrap();
    let forwarded = up["forwarded"].as_u64().unwrap();
    let lost = up["lost"].as_u64().unwrap();
    assert_eq!(received, u64::from(TOTAL), "the relay missed datagrams: {report}");
    assert_balanced(up);
    assert_eq!(forwarded + lost, received, "{report}");
    let loss = lost as f64 / received as f64;
    assert!((0.04..=0.06).contains(&loss), "relay counted a loss of {loss}: {report}");

    // What the relay forwarded is already in the sink's socket buffer.
    wait_for("the sink to count every forwarded datagram", || {
        sink.count.load(Ordering::SeqCst) >= forwarded
    });
    let arrived = sink.stop();
    assert_eq!(arrived, forwarded);
    let loss = 1.0 - arrived as f64 / f64::from(TOTAL);
    assert!((0.04..=0.06).contains(&loss), "{arrived} of {TOTAL} arrived");
}

#[test]
#[cfg(unix)]
fn replies_go_back_to_their_sender() {
    let echo = Echo::start();
    let relay = RelayProcess::start(&["--to", &echo.addr.to_string(), "--json"]);
    let clients = [local_socket(), local_socket()];
    for round in 0..10 {
        for (c, client) in clients.iter().enumerate() {
            let message = format!("client {c} message {round}");
            client.send_to(message.as_bytes(), relay.addr).unwrap();
            let (reply, from) = recv_timeout(client);
            assert_eq!(from, relay.addr, "the reply did not come from the relay");
            assert_eq!(reply, message.as_bytes());
        }
    }

    let report = relay.stop("INT").json();
    assert_eq!(report["stopped_by"], "interrupt");
    assert_eq!(report["clients"], 2);
    for direction in ["upstream", "downstream"] {
        let counters = &report[direction];
        assert_eq!(counters["received"], 20, "{report}");
        assert_eq!(counters["forwarded"], 20, "{report}");
        assert_balanced(counters);
    }
    echo.stop();
}

#[test]
#[cfg(unix)]
fn delay_applies_in_both_directions() {
    let echo = Echo::start();
    let relay = RelayProcess::start(&["--to", &echo.addr.to_string(), "--delay", "50"]);
    let client = local_socket();
    for i in 0..3 {
        let sent = Instant::now();
        client.send_to(&[i], relay.addr).unwrap();
        let (reply, _) = recv_timeout(&client);
        let round_trip = sent.elapsed();
        assert_eq!(reply, [i]);
        assert!(round_trip >= Duration::from_millis(100), "round trip of {round_trip:?}");
    }
    let output = relay.stop("TERM");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("relay stopped by terminate"), "{stderr}");
    assert!(stderr.contains("upstream:   received 3 "), "{stderr}");
    echo.stop();
}

#[test]
#[cfg(unix)]
fn duplicate_delivers_every_datagram_twice() {
    let sink = Sink::start();
    let relay =
        RelayProcess::start(&["--to", &sink.addr.to_string(), "--duplicate", "1", "--json"]);
    let client = local_socket();
    for seq in 0..10u32 {
        client.send_to(&seq.to_be_bytes(), relay.addr).unwrap();
        wait_for("both copies", || sink.count.load(Ordering::SeqCst) >= 2 * u64::from(seq + 1));
    }
    let report = relay.stop("TERM").json();
    assert_eq!(report["upstream"]["duplicated"], 10);
    assert_eq!(report["upstream"]["forwarded"], 20);
    assert_balanced(&report["upstream"]);
    assert_eq!(sink.stop(), 20);
}

#[test]
fn duration_stops_the_relay() {
    let relay =
        RelayProcess::start(&["--to", "127.0.0.1:9", "--duration", "0.5", "--seed", "7", "--json"]);
    let output = relay.wait();
    assert!(output.status.success(), "{output:?}");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["stopped_by"], "duration");
    assert_eq!(report["seed"], 7);
    assert!(report["elapsed_secs"].as_f64().unwrap() >= 0.5, "{report}");
}

#[test]
fn remote_addresses_need_allow_remote() {
    for args in [
        ["--listen", "127.0.0.1:0", "--to", "192.0.2.1:9"],
        ["--listen", "0.0.0.0:0", "--to", "127.0.0.1:9"],
    ] {
        let output = run_to_completion(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("--allow-remote"), "{stderr}");
        assert!(stderr.contains("not a loopback address"), "{stderr}");
    }
}

#[test]
fn invalid_impairments_are_usage_errors() {
    for (flag, value, expected) in [
        ("--loss", "1.5", "[0, 1]"),
        ("--duplicate", "-0.1", "[0, 1]"),
        ("--burst-loss", "0.9,1", "cannot be reached"),
        ("--burst-loss", "0.1", "P,LEN"),
        ("--rate", "0", "--rate"),
        ("--delay", "99999999999", "--delay"),
    ] {
        let output =
            run_to_completion(&["--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", flag, value]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.contains(flag) && stderr.contains(expected), "{flag} {value}: {stderr}");
    }
}

/// Checks that every datagram one way is accounted for.
fn assert_balanced(counters: &Value) {
    let get = |name: &str| counters[name].as_u64().unwrap_or_else(|| panic!("no {name}"));
    assert_eq!(
        get("received") + get("duplicated"),
        get("forwarded") + get("lost") + get("dropped_queue") + get("unsent") + get("in_flight"),
        "unbalanced counters: {counters}"
    );
}

/// A running `utp relay --listen 127.0.0.1:0`, killed if the test panics.
struct RelayProcess {
    child: Child,
    addr: SocketAddr,
    stdout: Option<ChildStdout>,
    /// Collects the rest of stderr.
    stderr: Option<JoinHandle<String>>,
}

impl RelayProcess {
    /// Starts the relay on a free port and reads that port from its first line.
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_utp"))
            .args(["relay", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let (first_line_tx, first_line) = mpsc::channel();
        let stderr = thread::spawn(move || {
            let mut lines = stderr.lines().map_while(Result::ok);
            let _ = first_line_tx.send(lines.next());
            lines.map(|line| line + "\n").collect::<String>()
        });
        let mut relay =
            Self { child, addr: SocketAddr::from(([0, 0, 0, 0], 0)), stdout, stderr: Some(stderr) };
        let line =
            first_line.recv_timeout(PATIENCE).expect("the relay did not start").unwrap_or_default();
        let addr = line
            .strip_prefix("relay listening on ")
            .and_then(|rest| rest.split(" -> ").next())
            .and_then(|addr| addr.parse().ok());
        relay.addr = addr.unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
        relay
    }

    /// Sends `signal` (`TERM`, `INT`) and waits for the relay to exit successfully.
    #[cfg(unix)]
    fn stop(self, signal: &str) -> Output {
        let status = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -s {signal} failed");
        let output = self.wait();
        assert!(output.status.success(), "the relay failed: {output:?}");
        output
    }

    /// Waits for the relay to exit and collects its output.
    fn wait(mut self) -> Output {
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the relay did not exit");
            thread::sleep(Duration::from_millis(10));
        };
        let mut stdout = Vec::new();
        if let Some(mut pipe) = self.stdout.take() {
            pipe.read_to_end(&mut stdout).unwrap();
        }
        let stderr = self.stderr.take().map(|h| h.join().unwrap()).unwrap_or_default();
        Output { status, stdout, stderr: stderr.into_bytes() }
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The JSON report printed with `--json`.
trait JsonReport {
    fn json(&self) -> Value;
}

impl JsonReport for Output {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.stdout).unwrap_or_else(|e| {
            panic!("stdout is not JSON ({e}): {}", String::from_utf8_lossy(&self.stdout))
        })
    }
}

/// Runs the relay with a safety `--duration`, for arguments it must refuse at once.
fn run_to_completion(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_utp"))
        .arg("relay")
        .args(args)
        .args(["--duration", "5"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("the relay did not exit");
        }
        thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

/// Counts the datagrams it receives and the highest sequence number (the first four bytes).
struct Sink {
    addr: SocketAddr,
    count: Arc<AtomicU64>,
    /// One more than the highest sequence number seen.
    seen_up_to: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Sink {
    fn start() -> Self {
        let socket = local_socket();
        socket.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let addr = socket.local_addr().unwrap();
        let count = Arc::new(AtomicU64::new(0));
        let seen_up_to = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let thread = {
            let (count, seen_up_to, done) = (count.clone(), seen_up_to.clone(), done.clone());
            thread::spawn(move || {
                let mut buf = [0; 2048];
                while !done.load(Ordering::SeqCst) {
                    let Ok(len) = socket.recv(&mut buf) else { continue };
                    if let Some(seq) = buf[..len].first_chunk::<4>() {
                        seen_up_to
                            .fetch_max(u64::from(u32::from_be_bytes(*seq)) + 1, Ordering::SeqCst);
                    }
                    count.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        Self { addr, count, seen_up_to, done, thread }
    }

    /// Stops the sink and returns how many datagrams it received.
    fn stop(self) -> u64 {
        self.done.store(true, Ordering::SeqCst);
        self.thread.join().unwrap();
        self.count.load(Ordering::SeqCst)
    }
}

/// Sends every datagram back to where it came from.
struct Echo {
    addr: SocketAddr,
    done: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Echo {
    fn start() -> Self {
        let socket = local_socket();
        socket.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let addr = socket.local_addr().unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let thread = {
            let done = done.clone();
            thread::spawn(move || {
                let mut buf = [0; 2048];
                while !done.load(Ordering::SeqCst) {
                    if let Ok((len, from)) = socket.recv_from(&mut buf) {
                        let _ = socket.send_to(&buf[..len], from);
                    }
                }
            })
        };
        Self { addr, done, thread }
    }

    fn stop(self) {
        self.done.store(true, Ordering::SeqCst);
        self.thread.join().unwrap();
    }
}

fn local_socket() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").unwrap()
}

/// Receives one datagram, failing the test after [`PATIENCE`].
fn recv_timeout(socket: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    socket.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut buf = [0; 2048];
    let (len, from) = socket.recv_from(&mut buf).expect("no reply");
    (buf[..len].to_vec(), from)
}

/// Polls `done` until it holds, failing the test after [`PATIENCE`].
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_micros(200));
    }
}
