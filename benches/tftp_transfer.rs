//! A TFTP read in memory: a server `Transfer` sends a file to a client `Transfer`, with
//! datagrams handed straight from one's `poll_transmit` to the other's `handle_datagram`.
//! What is measured is the engine alone: building DATA, acknowledging, windowing and the
//! copies in and out of the buffers.
//!
//! `cargo bench -p utp-benches --bench tftp_transfer` moves 64 MiB per iteration for each
//! option mix; `cargo test -p utp-benches --benches` runs 1 MiB as a test. Each variant first
//! runs one transfer that checks every byte.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use utp_benches::ship;
use utp_proto::tftp::{Config, OptionRequest, Server, Transfer};
use utp_proto::wire::tftp::Mode;
use utp_proto::{Instant, Machine};

/// Bytes per iteration when measuring.
const BENCH_LEN: usize = 64 << 20;
/// Bytes per iteration when run as a test (unoptimised).
const TEST_LEN: usize = 1 << 20;
/// Virtual one-way latency.
const HOP: Duration = Duration::from_micros(2);
/// The application's write and read size.
const CHUNK: usize = 256 << 10;
/// A transfer needing more rounds than this is stuck, not slow.
const MAX_ROUNDS: u64 = 10_000_000;

fn client_addr() -> SocketAddr {
    "127.0.0.1:50000".parse().expect("a literal address")
}

fn server_addr() -> SocketAddr {
    "127.0.0.1:69".parse().expect("a literal address")
}

/// The server sends `len` bytes of `pattern` (repeated) to the client; returns the bytes
/// received and the datagrams exchanged. With `check`, every byte is compared.
fn transfer(options: OptionRequest, len: usize, pattern: &[u8], check: bool) -> (usize, u64) {
    let config = Arc::new(Config::default());
    let mut now = Instant::from_micros(1);
    let mut client =
        Transfer::client_read(config.clone(), server_addr(), "f", Mode::Octet, options, now)
            .expect("a valid request");
    let mut server = Server::new(config.clone());
    let mut buf = Vec::with_capacity(65536);
    while let Some(t) = client.poll_transmit(now, &mut buf) {
        server.handle_datagram(now, client_addr(), &buf[..t.size]);
    }
    let incoming = server.poll_event().expect("the request arrived");
    let mut sender = incoming.accept(config, Some(len as u64), now);
    let tid: SocketAddr = "127.0.0.1:40000".parse().expect("a literal address");
    let mut read_buf = vec![0u8; CHUNK];
    let (mut written, mut received, mut rounds, mut datagrams) = (0usize, 0usize, 0u64, 0u64);
    while !client.is_complete() {
        rounds += 1;
        assert!(rounds < MAX_ROUNDS, "stuck at {received} of {len} bytes");
        while written < len {
            let offset = written % pattern.len();
            let end = (offset + CHUNK).min(pattern.len()).min(offset + len - written);
            let n = sender.write(&pattern[offset..end]);
            if n == 0 {
                break;
            }
            written += n;
        }
        if written == len {
            sender.finish();
        }
        let start = now;
        now += HOP;
        datagrams += ship(&mut sender, &tid, &mut client, start, now, &mut buf);
        loop {
            let n = client.read(&mut read_buf);
            if n == 0 {
                break;
            }
            if check {
                for (i, byte) in read_buf[..n].iter().enumerate() {
                    assert_eq!(
                        *byte,
                        pattern[(received + i) % pattern.len()],
                        "byte {}",
                        received + i
                    );
                }
            }
            received += n;
        }
        now += HOP;
        datagrams += ship(&mut client, &client_addr(), &mut sender, now, now, &mut buf);
        for machine_timeout in [sender.poll_timeout(), client.poll_timeout()].into_iter().flatten()
        {
            if machine_timeout <= now {
                sender.handle_timeout(now);
                client.handle_timeout(now);
            }
        }
    }
    assert_eq!(received, len);
    (received, datagrams)
}

fn bench(c: &mut Criterion) {
    let len = if cfg!(debug_assertions) { TEST_LEN } else { BENCH_LEN };
    let pattern: Vec<u8> = (0..65_537u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let none = OptionRequest::NONE;
    let mixes = [
        ("lockstep_512", none),
        ("1428_x_16", OptionRequest { blksize: Some(1428), windowsize: Some(16), ..none }),
        ("1428_x_64", OptionRequest { blksize: Some(1428), windowsize: Some(64), ..none }),
        ("65464_x_16", OptionRequest { blksize: Some(65464), windowsize: Some(16), ..none }),
    ];
    let mut group = c.benchmark_group("tftp_transfer");
    group.throughput(Throughput::Bytes(len as u64));
    group.sample_size(10);
    for (name, options) in mixes {
        transfer(options, TEST_LEN, &pattern, true);
        group.bench_function(name, |b| {
            b.iter(|| black_box(transfer(options, len, &pattern, false)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
