//! A bulk transfer between two uTP endpoints in memory: no sockets and no simulated link.
//! Datagrams go straight from one endpoint's `poll_transmit` into the other's
//! `handle_datagram` a couple of virtual microseconds later, a round takes 5 µs of virtual
//! time, and timers fire when due. What is measured is the protocol core alone: packetising, acknowledging,
//! congestion control and the copies in and out of the buffers.
//!
//! `cargo bench -p utp-benches --bench utp_transfer` measures 64 MiB per iteration, with
//! throughput in bytes of application data; `cargo test -p utp-benches --benches` runs a
//! 1 MiB transfer as a test. Each variant first runs one transfer that checks every byte.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use utp_benches::{measuring, ship};
use utp_proto::utp::{Config, Endpoint, Event};
use utp_proto::{Instant, Machine};

/// Bytes per iteration when measuring.
const BENCH_LEN: usize = 64 << 20;
/// Bytes per iteration when run as a test (unoptimised): enough to leave slow start.
const TEST_LEN: usize = 1 << 20;
/// Virtual one-way latency: a datagram is handled this long after it was sent. It must not
/// be zero: a timestamp difference of exactly 0 µs means "no sample" in uTP, and without
/// delay samples LEDBAT never opens the window beyond one packet.
const HOP: Duration = Duration::from_micros(2);
/// Virtual time per round of the shuttle (Alice sends, Bob answers, Alice reads it).
const ROUND: Duration = Duration::from_micros(5);
/// The application's write and read size.
const CHUNK: usize = 64 << 10;
/// A transfer that needs more rounds than this is stuck, not slow.
const MAX_ROUNDS: u64 = 50_000_000;

const ALICE: u8 = 1;
const BOB: u8 = 2;

/// What a transfer did, for the checks and for `black_box`.
#[derive(Debug)]
struct Outcome {
    received: usize,
    rounds: u64,
    datagrams: u64,
}

/// Alice writes `len` bytes of `pattern` (repeated) to Bob, who reads them all. With
/// `check`, Bob compares every byte.
fn transfer(config: &Arc<Config>, len: usize, pattern: &[u8], check: bool) -> Outcome {
    let mut alice = Endpoint::<u8>::new(config.clone(), 1);
    let mut bob = Endpoint::<u8>::new(config.clone(), 2);
    let mut now = Instant::from_micros(1);
    let stream = alice.connect(now, BOB).expect("a fresh endpoint has room for a connection");
    let mut buf = Vec::with_capacity(config.max_packet_size());
    let mut read_buf = vec![0u8; CHUNK];
    let (mut written, mut received, mut rounds, mut datagrams) = (0usize, 0usize, 0u64, 0u64);
    let mut reader = None;

    while received < len {
        rounds += 1;
        assert!(rounds < MAX_ROUNDS, "the transfer is stuck at {received} of {len} bytes");
        while written < len {
            let offset = written % pattern.len();
            let end = (offset + CHUNK).min(pattern.len()).min(offset + len - written);
            match alice.write(stream, &pattern[offset..end]) {
                Ok(n) => written += n,
                Err(_) => break, // blocked: the send buffer is full
            }
        }
        let start = now;
        now += HOP;
        datagrams += ship(&mut alice, &ALICE, &mut bob, start, now, &mut buf);
        while let Some(event) = bob.poll_event() {
            match event {
                Event::Incoming { id, .. } => {
                    reader = Some(bob.accept(now, id).expect("Bob accepts the only connection"));
                }
                Event::Closed { result, .. } => panic!("the reader closed: {result:?}"),
                _ => {}
            }
        }
        if let Some(h) = reader {
            while let Ok(n) = bob.read(h, &mut read_buf) {
                if n == 0 {
                    break;
                }
                if check {
                    assert!(matches(pattern, received, &read_buf[..n]), "corrupt bytes");
                }
                received += n;
            }
        }
        let sent = now;
        now += HOP;
        datagrams += ship(&mut bob, &BOB, &mut alice, sent, now, &mut buf);
        while let Some(event) = alice.poll_event() {
            if let Event::Closed { result, .. } = event {
                panic!("the writer closed: {result:?}");
            }
        }
        now = start + ROUND;
        for ep in [&mut alice, &mut bob] {
            if ep.poll_timeout().is_some_and(|t| t <= now) {
                ep.handle_timeout(now);
            }
        }
    }
    assert_eq!(received, len, "Bob read more than Alice wrote");
    Outcome { received, rounds, datagrams }
}

/// Whether `data` is what `pattern`, repeated, holds from `offset` on.
fn matches(pattern: &[u8], offset: usize, mut data: &[u8]) -> bool {
    let mut at = offset % pattern.len();
    while !data.is_empty() {
        let n = (pattern.len() - at).min(data.len());
        if data[..n] != pattern[at..at + n] {
            return false;
        }
        data = &data[n..];
        at = 0;
    }
    true
}

fn utp_transfer(c: &mut Criterion) {
    let measuring = measuring();
    let len = if measuring { BENCH_LEN } else { TEST_LEN };
    // A pattern whose length is not a multiple of any packet size, so misplaced bytes show.
    let pattern: Vec<u8> = (0..1_000_003u32).map(|i| (i ^ (i >> 8) ^ (i >> 16)) as u8).collect();

    let mut jumbo = Config::default();
    jumbo.set_max_packet_size(65_507).expect("65507 bytes is the largest UDP payload");
    let variants =
        [("default_1402", Arc::new(Config::default())), ("jumbo_65507", Arc::new(jumbo))];

    let mut group = c.benchmark_group("utp_transfer");
    group.throughput(Throughput::Bytes(len as u64));
    group.sample_size(10);
    for (name, config) in &variants {
        // One checked run first: every byte arrives intact, and the shape of the exchange.
        let o = transfer(config, len, &pattern, true);
        println!(
            "utp_transfer/{name}: {} bytes in {} rounds, {} datagrams ({:.0} bytes each)",
            o.received,
            o.rounds,
            o.datagrams,
            o.received as f64 / o.datagrams as f64
        );
        group.bench_function(*name, |b| {
            b.iter(|| black_box(transfer(config, len, &pattern, false)));
        });
    }
    group.finish();
}

criterion_group!(benches, utp_transfer);
criterion_main!(benches);
