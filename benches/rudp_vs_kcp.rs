//! rudp side by side with KCP (the `tokio_kcp` crate) over loopback, in one run.
//!
//! - **Throughput**: one connection carries 1 KiB, 64 KiB and 1 MiB messages one way as
//!   fast as the sender can queue them (128 MiB per run; 4 MiB for KCP with its defaults,
//!   which moves about 2 MB/s); the rate is from the first send to the last
//!   message received. Every message is checked at the receiver: its index (its first
//!   eight bytes) must be the next one expected, so a lost, duplicated or reordered message
//!   fails the run, and its last byte must match.
//! - **Latency**: 64-byte messages, one per millisecond, through `utp relay --loss 0.01`
//!   (1% loss each way); each carries its send time, and the receiver records the one-way
//!   latency (one process, one clock). Reported: p50, p99, p99.9, max, and how many
//!   arrived (all must, exactly once, in order).
//!
//! Contenders: rudp with its **defaults**; KCP with its defaults (`KcpConfig::default()`:
//! 40 ms internal tick, windows of 256 packets); and KCP **tuned for speed** as its users
//! do (`KcpNoDelayConfig::fastest()`: no delay, 10 ms tick, fast resend after 2, no
//! congestion control; windows of 1024; flush on write). All use 4 MiB kernel socket
//! buffers (KCP's own sockets would have the system's 208 KiB and drop at these rates).
//! Everything runs on one current-thread tokio runtime, the same for every contender.
//!
//! Run with `cargo xtask perf-rudp` (which builds `utp` for the relay) or
//! `cargo bench -p utp-benches --bench rudp_vs_kcp -- --relay target/release/utp
//! [--rounds N]`. Without `--bench` (as `cargo test --benches` runs it) every case runs
//! once, small, as a smoke test, and the latency case without the relay.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio_kcp::{KcpConfig, KcpListener, KcpNoDelayConfig, KcpStream};
use utp_tokio::rudp::{self, CloseCode, RudpConfig};

const SOCKET_BUFFER: usize = 4 << 20;
/// Bytes each throughput run moves (divided by 128 in test mode).
const VOLUME: usize = 128 << 20;
/// Latency messages per run, one per millisecond (50 in test mode).
const PINGS: usize = 3000;
const PING_LEN: usize = 64;

#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Contender {
    Rudp,
    KcpDefault,
    KcpFast,
}

impl Contender {
    const ALL: [Contender; 3] = [Contender::Rudp, Contender::KcpDefault, Contender::KcpFast];

    fn name(self) -> &'static str {
        match self {
            Contender::Rudp => "rudp (defaults)",
            Contender::KcpDefault => "KCP (defaults)",
            Contender::KcpFast => "KCP (fastest, wnd 1024)",
        }
    }

    fn kcp_config(self) -> KcpConfig {
        let mut config = KcpConfig::default();
        if self == Contender::KcpFast {
            config.nodelay = KcpNoDelayConfig::fastest();
            config.wnd_size = (1024, 1024);
            config.flush_write = true;
            config.flush_acks_input = true;
        }
        config
    }
}

/// The sending side of a connection, whichever protocol.
enum Sender {
    Rudp(rudp::RudpConnection, rudp::RudpSocket),
    Kcp(KcpStream),
}

/// The receiving side; the socket or listener is held so it lives as long as the stream.
enum Receiver {
    Rudp(rudp::RudpConnection, #[allow(dead_code, reason = "kept alive")] rudp::RudpSocket),
    Kcp(KcpStream, #[allow(dead_code, reason = "kept alive")] Box<KcpListener>),
}

impl Sender {
    async fn send(&mut self, message: &[u8]) -> Result<(), String> {
        match self {
            Sender::Rudp(c, _) => c.send(message).await.map_err(|e| e.to_string()),
            Sender::Kcp(s) => {
                let n = s.send(message).await.map_err(|e| e.to_string())?;
                if n == message.len() { Ok(()) } else { Err(format!("KCP took {n} bytes")) }
            }
        }
    }

    async fn finish(self) {
        if let Sender::Rudp(c, _socket) = self {
            let _ = c.flush().await;
            let _ = c.close(CloseCode::Normal, "done").await;
        }
    }
}

impl Receiver {
    async fn recv(&mut self, buf: &mut Vec<u8>) -> Result<usize, String> {
        match self {
            Receiver::Rudp(c, _) => match c.recv().await {
                Ok(Some(m)) => {
                    *buf = m;
                    Ok(buf.len())
                }
                Ok(None) => Err("the connection ended".into()),
                Err(e) => Err(e.to_string()),
            },
            Receiver::Kcp(s, _) => {
                buf.resize(2 << 20, 0);
                let n = s.recv(buf).await.map_err(|e| e.to_string())?;
                buf.truncate(n);
                Ok(n)
            }
        }
    }
}

fn std_socket(addr: SocketAddr) -> std::net::UdpSocket {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .expect("a UDP socket");
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.set_nonblocking(true).expect("non-blocking");
    socket.bind(&addr.into()).expect("bind on loopback");
    socket.into()
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A listening receiver; returns it (accepting in `connect`) and its address.
async fn listen(who: Contender) -> (ListenSide, SocketAddr) {
    match who {
        Contender::Rudp => {
            let socket = rudp::bind(loopback(), RudpConfig::default()).expect("bind rudp");
            let addr = socket.local_addr().expect("address");
            (ListenSide::Rudp(socket), addr)
        }
        _ => {
            let udp = UdpSocket::from_std(std_socket(loopback())).expect("tokio socket");
            let listener =
                KcpListener::from_socket(who.kcp_config(), udp).await.expect("KCP listener");
            let addr = listener.local_addr().expect("address");
            (ListenSide::Kcp(Box::new(listener)), addr)
        }
    }
}

enum ListenSide {
    Rudp(rudp::RudpSocket),
    Kcp(Box<KcpListener>),
}

/// Connects a sender of `who` to `to` (the listener's address, or a relay's), and accepts
/// it on `listener`. KCP has no handshake: its stream exists at the listener once the
/// first message arrives, so `hello` is sent first and read back here.
async fn connect(who: Contender, listener: ListenSide, to: SocketAddr) -> (Sender, Receiver) {
    match listener {
        ListenSide::Rudp(server) => {
            let client = rudp::bind(loopback(), RudpConfig::default()).expect("bind rudp");
            let accepting = tokio::spawn({
                let server = server.clone();
                async move { server.accept().await }
            });
            let c = client.connect(to).await.expect("rudp connect");
            let s = accepting.await.expect("accept task").expect("rudp accept");
            (Sender::Rudp(c, client), Receiver::Rudp(s, server))
        }
        ListenSide::Kcp(mut listener) => {
            let udp = UdpSocket::from_std(std_socket(loopback())).expect("tokio socket");
            let mut c = KcpStream::connect_with_socket(&who.kcp_config(), udp, to)
                .await
                .expect("KCP connect");
            c.send(b"hello").await.expect("KCP hello");
            let (mut s, _) = listener.accept().await.expect("KCP accept");
            let mut buf = vec![0; 64];
            let n = s.recv(&mut buf).await.expect("KCP hello back");
            assert_eq!(&buf[..n], b"hello");
            (Sender::Kcp(c), Receiver::Kcp(s, listener))
        }
    }
}

/// Message `i` of a throughput run: its index, then bytes that depend on it.
fn message(i: u64, len: usize) -> Vec<u8> {
    let mut m = vec![i as u8; len.max(8)];
    m[..8].copy_from_slice(&i.to_le_bytes());
    m.truncate(len);
    m
}

struct Throughput {
    mbps: f64,
    messages: u64,
    error: Option<String>,
}

async fn throughput(who: Contender, len: usize, volume: usize) -> Throughput {
    // KCP with its defaults moves about 2 MB/s here: a 32nd of the volume measures it as
    // well, in seconds rather than minutes.
    let volume = if who == Contender::KcpDefault { volume / 32 } else { volume };
    let count = (volume / len).max(16) as u64;
    let (listener, addr) = listen(who).await;
    let (mut sender, mut receiver) = connect(who, listener, addr).await;
    let start = Instant::now();
    let (failed, mut send_failure) = tokio::sync::oneshot::channel();
    let sending = tokio::spawn(async move {
        for i in 0..count {
            if let Err(e) = sender.send(&message(i, len)).await {
                let _ = failed.send(format!("send of message {i}: {e}"));
                return None;
            }
        }
        Some(sender)
    });
    let mut buf = Vec::new();
    let mut received = 0u64;
    let mut error = None;
    let mut sender_done = false;
    while received < count {
        let next = tokio::select! {
            next = tokio::time::timeout(Duration::from_secs(20), receiver.recv(&mut buf)) => next,
            failure = &mut send_failure, if !sender_done => {
                sender_done = true;
                match failure {
                    Ok(e) => {
                        error = Some(e);
                        break;
                    }
                    Err(_) => continue, // the sender finished: go on receiving
                }
            }
        };
        match next {
            Ok(Ok(n)) => {
                let index =
                    buf.get(..8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
                let expect_index = if len >= 8 { Some(received) } else { index };
                if n != len || index != expect_index || buf.last() != Some(&(received as u8)) {
                    error = Some(format!(
                        "message {received}: {n} bytes, index {index:?}: lost, duplicated, reordered or altered"
                    ));
                    break;
                }
                received += 1;
            }
            Ok(Err(e)) => {
                error = Some(format!("receive after {received} messages: {e}"));
                break;
            }
            Err(_) => {
                error = Some(format!("nothing for 20 s after {received} messages"));
                break;
            }
        }
    }
    let elapsed = start.elapsed();
    if error.is_none() {
        match sending.await {
            Ok(Some(sender)) => sender.finish().await,
            Ok(None) => error = Some("the sender failed".into()),
            Err(e) => error = Some(format!("the sending task failed: {e}")),
        }
    } else {
        sending.abort();
    }
    drop(receiver);
    let bytes = received as f64 * len as f64;
    Throughput { mbps: bytes / elapsed.as_secs_f64() / 1e6, messages: received, error }
}

struct Latency {
    /// One-way latencies, sorted.
    samples: Vec<Duration>,
    sent: usize,
    error: Option<String>,
}

impl Latency {
    fn quantile(&self, q: f64) -> Duration {
        if self.samples.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.samples.len() as f64 * q).ceil() as usize).clamp(1, self.samples.len());
        self.samples[i - 1]
    }
}

/// Starts `utp relay` in front of `to` with 1% loss each way; returns it and its address.
fn start_relay(utp: &str, to: SocketAddr, seed: u64) -> (Child, SocketAddr) {
    let mut child = Command::new(utp)
        .args(["relay", "--listen", "127.0.0.1:0", "--to", &to.to_string()])
        .args(["--loss", "0.01", "--seed", &seed.to_string()])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {utp} relay: {e}"));
    let stderr = child.stderr.take().expect("piped");
    let mut lines = BufReader::new(stderr).lines();
    let line = lines.next().and_then(Result::ok).unwrap_or_default();
    // "relay listening on ADDR -> TO"
    let addr = line
        .strip_prefix("relay listening on ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line from the relay: {line:?}"));
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

async fn latency(who: Contender, pings: usize, relay: Option<&str>, seed: u64) -> Latency {
    let (listener, addr) = listen(who).await;
    let relayed = relay.map(|utp| start_relay(utp, addr, seed));
    let to = relayed.as_ref().map_or(addr, |(_, a)| *a);
    let (mut sender, mut receiver) = connect(who, listener, to).await;
    let epoch = Instant::now();
    let sending = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for i in 0..pings as u64 {
            tick.tick().await;
            let mut m = vec![0u8; PING_LEN];
            m[..8].copy_from_slice(&i.to_le_bytes());
            let at = epoch.elapsed().as_micros() as u64;
            m[8..16].copy_from_slice(&at.to_le_bytes());
            if sender.send(&m).await.is_err() {
                break;
            }
        }
        sender
    });
    let mut samples = Vec::with_capacity(pings);
    let mut buf = Vec::new();
    let mut error = None;
    while samples.len() < pings {
        match tokio::time::timeout(Duration::from_secs(10), receiver.recv(&mut buf)).await {
            Ok(Ok(n)) if n == PING_LEN => {
                let index = u64::from_le_bytes(buf[..8].try_into().unwrap_or([0; 8]));
                if index != samples.len() as u64 {
                    error = Some(format!("ping {} arrived as number {index}", samples.len()));
                    break;
                }
                let at = u64::from_le_bytes(buf[8..16].try_into().unwrap_or([0; 8]));
                let now = epoch.elapsed().as_micros() as u64;
                samples.push(Duration::from_micros(now.saturating_sub(at)));
            }
            Ok(Ok(n)) => {
                error = Some(format!("a ping of {n} bytes"));
                break;
            }
            Ok(Err(e)) => {
                error = Some(e);
                break;
            }
            Err(_) => {
                error = Some(format!("nothing for 10 s after {} pings", samples.len()));
                break;
            }
        }
    }
    match sending.await {
        Ok(sender) => sender.finish().await,
        Err(e) => error = error.or(Some(format!("the sending task failed: {e}"))),
    }
    if let Some((mut child, _)) = relayed {
        let _ = child.kill();
        let _ = child.wait();
    }
    let sent = pings;
    samples.sort();
    Latency { samples, sent, error }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied().unwrap_or(0.0)
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bench = args.iter().any(|a| a == "--bench");
    let value = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1));
    let relay = value("--relay").cloned();
    let rounds: usize = value("--rounds").and_then(|r| r.parse().ok()).unwrap_or(3);
    let (volume, pings, rounds) =
        if bench { (VOLUME, PINGS, rounds) } else { (VOLUME / 128, 50, 1) };
    let relay = if bench { relay } else { None };
    if bench && relay.is_none() {
        eprintln!("rudp_vs_kcp: no --relay PATH to the utp binary: latency runs without loss");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let sizes = [1 << 10, 64 << 10, 1 << 20];
    let mut failures = Vec::new();

    println!(
        "## Throughput over loopback ({} MiB per run, {rounds} rounds, median)\n",
        volume >> 20
    );
    println!(
        "| contender | message | MB/s (median) | runs (MB/s) | vs rudp | exactly once, in order |"
    );
    println!("|---|---|---|---|---|---|");
    let mut rudp_rate = [0.0f64; 3];
    for (s, &len) in sizes.iter().enumerate() {
        let mut rates = vec![Vec::new(); Contender::ALL.len()];
        let mut notes = vec![String::from("yes"); Contender::ALL.len()];
        for _ in 0..rounds {
            for (c, &who) in Contender::ALL.iter().enumerate() {
                let t = runtime.block_on(throughput(who, len, volume));
                if let Some(e) = t.error {
                    if who == Contender::Rudp {
                        failures.push(format!("{} {len} B: {e}", who.name()));
                    }
                    notes[c] = format!("no: {e} (after {} messages)", t.messages);
                    continue;
                }
                rates[c].push(t.mbps);
            }
        }
        for (c, &who) in Contender::ALL.iter().enumerate() {
            let m = median(rates[c].clone());
            if who == Contender::Rudp {
                rudp_rate[s] = m;
            }
            let runs: Vec<String> = rates[c]
                .iter()
                .map(|r| if *r < 10.0 { format!("{r:.1}") } else { format!("{r:.0}") })
                .collect();
            let ratio = if rudp_rate[s] > 0.0 { m / rudp_rate[s] } else { 0.0 };
            println!(
                "| {} | {} KiB | {m:.1} | {} | {ratio:.2}x | {} |",
                who.name(),
                len >> 10,
                runs.join(", "),
                notes[c]
            );
        }
    }

    let lossy = if relay.is_some() { "through `utp relay --loss 0.01`" } else { "direct, no loss" };
    println!("\n## Latency of {PING_LEN}-byte messages, one per ms, {lossy} ({pings} per run)\n");
    println!("| contender | p50 ms | p99 ms | p99.9 ms | max ms | delivered | vs rudp p99 |");
    println!("|---|---|---|---|---|---|---|");
    let mut rudp_p99 = Duration::ZERO;
    for (round_seed, &who) in Contender::ALL.iter().enumerate() {
        let mut all = Latency { samples: Vec::new(), sent: 0, error: None };
        for r in 0..rounds {
            let seed = 1000 + r as u64 * 10 + round_seed as u64;
            let l = runtime.block_on(latency(who, pings, relay.as_deref(), seed));
            all.sent += l.sent;
            all.samples.extend(l.samples);
            all.error = all.error.or(l.error);
        }
        all.samples.sort();
        if who == Contender::Rudp {
            rudp_p99 = all.quantile(0.99);
            if let Some(e) = &all.error {
                failures.push(format!("rudp latency: {e}"));
            }
        }
        let ratio = if rudp_p99 > Duration::ZERO {
            all.quantile(0.99).as_secs_f64() / rudp_p99.as_secs_f64()
        } else {
            0.0
        };
        println!(
            "| {} | {} | {} | {} | {} | {} of {}{} | {ratio:.2}x |",
            who.name(),
            ms(all.quantile(0.5)),
            ms(all.quantile(0.99)),
            ms(all.quantile(0.999)),
            ms(all.samples.last().copied().unwrap_or_default()),
            all.samples.len(),
            all.sent,
            all.error.map(|e| format!(" ({e})")).unwrap_or_default(),
        );
    }
    if !failures.is_empty() {
        eprintln!("rudp failed: {}", failures.join("; "));
        std::process::exit(1);
    }
}
