//! Messages between two rudp endpoints in memory: no sockets and no simulated link.
//! Datagrams go straight from one endpoint's `poll_transmit` into the other's
//! `handle_datagram` a couple of virtual microseconds later, a round takes 5 µs of virtual
//! time, and when a round moves nothing the clock jumps to the next timer. What is measured is
//! the protocol core alone: fragmenting, acknowledging, congestion control, reassembly and the
//! copies in and out of the buffers.
//!
//! `cargo bench -p utp-benches --bench rudp_transfer` sends 32 MiB per iteration as 1 KiB,
//! 64 KiB and 1 MiB messages, with throughput in both messages and bytes of application data;
//! `cargo test -p utp-benches --benches` sends 2 MiB of each as a test. Each variant first runs
//! one transfer that checks every message.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use utp_benches::{measuring, ship};
use utp_proto::rudp::{Config, ConnectionHandle, Endpoint, Event, SendError};
use utp_proto::{Instant, Machine};

/// Message bytes per iteration when measuring.
const BENCH_LEN: usize = 32 << 20;
/// Message bytes per iteration when run as a test (unoptimised).
const TEST_LEN: usize = 2 << 20;
/// Virtual one-way latency: a datagram is handled this long after it was sent.
const HOP: Duration = Duration::from_micros(2);
/// Virtual time per round of the shuttle (Alice sends, Bob answers, Alice reads it).
const ROUND: Duration = Duration::from_micros(5);
/// A transfer that needs more rounds than this is stuck, not slow.
const MAX_ROUNDS: u64 = 50_000_000;
/// The message sizes measured.
const SIZES: [(&str, usize); 3] = [("1KiB", 1 << 10), ("64KiB", 64 << 10), ("1MiB", 1 << 20)];

const ALICE: u8 = 1;
const BOB: u8 = 2;

/// What a transfer did, for the checks and for `black_box`.
#[derive(Debug)]
struct Outcome {
    messages: usize,
    bytes: usize,
    rounds: u64,
    datagrams: u64,
}

/// Where message `number` starts in the pattern: messages differ, so a misplaced one shows.
fn offset(number: usize, size: usize, pattern: &[u8]) -> usize {
    number.wrapping_mul(7919) % (pattern.len() - size + 1)
}

/// Alice sends `count` messages of `size` bytes (slices of `pattern`) to Bob, who receives
/// them all. With `check`, Bob compares every message.
fn transfer(
    config: &Arc<Config>,
    size: usize,
    count: usize,
    pattern: &[u8],
    check: bool,
) -> Outcome {
    let mut alice = Endpoint::<u8>::new(config.clone(), [1; 32]);
    let mut bob = Endpoint::<u8>::new(config.clone(), [2; 32]);
    let mut now = Instant::from_micros(1);
    let conn = alice.connect(now, BOB).expect("a fresh endpoint has room for a connection");
    let mut buf = Vec::with_capacity(config.datagram_size());
    let mut connected = false;
    let mut reader: Option<ConnectionHandle> = None;
    let (mut sent, mut received, mut bytes, mut rounds, mut datagrams) = (0, 0, 0, 0u64, 0u64);

    while received < count {
        rounds += 1;
        assert!(rounds < MAX_ROUNDS, "the transfer is stuck at {received} of {count} messages");
        while connected && sent < count {
            let start = offset(sent, size, pattern);
            match alice.send(conn, &pattern[start..start + size]) {
                Ok(_) => sent += 1,
                Err(SendError::Blocked) => break, // the send buffer is full
                Err(e) => panic!("send failed: {e}"),
            }
        }
        let moved = datagrams;
        let start = now;
        now += HOP;
        datagrams += ship(&mut alice, &ALICE, &mut bob, start, now, &mut buf);
        while let Some(event) = bob.poll_event() {
            match event {
                Event::Incoming { id, .. } => {
                    reader = Some(bob.accept(now, id).expect("Bob accepts the only connection"));
                }
                Event::Closed { reason, .. } => panic!("the receiver closed: {reason}"),
                _ => {}
            }
        }
        if let Some(h) = reader {
            while let Ok(message) = bob.recv(now, h) {
                if check {
                    let start = offset(received, size, pattern);
                    assert!(message == pattern[start..start + size], "message {received} differs");
                }
                bytes += message.len();
                received += 1;
            }
        }
        let answered = now;
        now += HOP;
        datagrams += ship(&mut bob, &BOB, &mut alice, answered, now, &mut buf);
        while let Some(event) = alice.poll_event() {
            match event {
                Event::Connected(_) => connected = true,
                Event::Closed { reason, .. } => panic!("the sender closed: {reason}"),
                _ => {}
            }
        }
        now = start + ROUND;
        if datagrams == moved {
            // Nothing moved: sleep until the next timer, as a driver would.
            let next = [alice.poll_timeout(), bob.poll_timeout()].into_iter().flatten().min();
            now = now.max(next.expect("an idle transfer has a timer armed"));
        }
        for ep in [&mut alice, &mut bob] {
            if ep.poll_timeout().is_some_and(|t| t <= now) {
                ep.handle_timeout(now);
            }
        }
    }
    assert_eq!(bytes, size * count, "Bob received other messages than Alice sent");
    Outcome { messages: received, bytes, rounds, datagrams }
}

fn rudp_transfer(c: &mut Criterion) {
    let len = if measuring() { BENCH_LEN } else { TEST_LEN };
    // Longer than the largest message, and not a multiple of any fragment size.
    let pattern: Vec<u8> =
        (0..(2 << 20) + 3u32).map(|i| (i ^ (i >> 8) ^ (i >> 16)) as u8).collect();
    let config = Arc::new(Config::default());

    let mut group = c.benchmark_group("rudp_transfer");
    group.sample_size(10);
    for (name, size) in SIZES {
        let count = len / size;
        // One checked run first: every message arrives intact, and the shape of the exchange.
        let o = transfer(&config, size, count, &pattern, true);
        println!(
            "rudp_transfer/{name}: {} messages ({} bytes) in {} rounds, {} datagrams",
            o.messages, o.bytes, o.rounds, o.datagrams
        );
        group.throughput(Throughput::ElementsAndBytes {
            elements: count as u64,
            bytes: (count * size) as u64,
        });
        group.bench_function(name, |b| {
            b.iter(|| black_box(transfer(&config, size, count, &pattern, false)));
        });
    }
    group.finish();
}

criterion_group!(benches, rudp_transfer);
criterion_main!(benches);
