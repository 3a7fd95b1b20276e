//! 10,000 messages of 1 byte to 1 MiB, delivered whole, exactly once and in order, under
//! 0, 1, 10 and 30% loss with reordering and duplication; and under corruption behind a
//! UDP checksum.

mod rudp_common;

use std::time::Duration;

use rudp_common::{ALICE, BOB, Udp, exchange, pair, secret, sizes};
use utp_proto::rudp::{CloseCode, CloseReason, Config, Endpoint};
use utp_proto::sim::{LinkConfig, Pair};

const MESSAGES: usize = 10_000;
const MAX: usize = 1 << 20;

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn impaired(loss: f64) -> LinkConfig {
    LinkConfig::default()
        .with_latency(ms(20))
        .with_jitter(ms(2))
        .with_loss(loss)
        .with_duplicate(0.02)
        .with_reorder(0.05, ms(5))
        .with_bandwidth(100_000_000)
        .with_queue_capacity(2000)
}

fn run(loss: f64, seed: u64) {
    let mut config = Config::default();
    // The handshake is not what is under test: at 30% loss each way, give it time.
    config.set_handshake_timeout(Duration::from_secs(60)).expect("valid");
    let link = impaired(loss);
    let mut p = pair(config.clone(), config, link, link, seed);
    let report = exchange(&mut p, sizes(MESSAGES, MAX, seed), seed, 200_000_000);
    let stats = p.stats();
    println!(
        "loss {loss}: {} messages, {} bytes in {:?} ({:.1} MB/s); alice {:?}; bob {:?}; links {:?}",
        MESSAGES,
        report.bytes,
        report.elapsed,
        report.goodput / 1e6,
        report.alice_stats,
        report.bob_stats,
        stats,
    );
    assert_eq!(
        report.bob_closed,
        Some(CloseReason::Peer { code: CloseCode::Normal, reason: "done".into() })
    );
    assert_eq!(report.alice_stats.messages_sent, MESSAGES as u64);
    assert_eq!(report.bob_stats.messages_received, MESSAGES as u64);
    if loss > 0.0 {
        assert!(report.alice_stats.retransmits > 0, "losses were repaired by retransmission");
        assert!(report.bob_stats.repeats_sent > 0, "gaps were reported with REPEAT");
    }
    assert!(stats.a_to_b.duplicated > 0, "the link duplicated packets");
    assert!(report.bob_stats.duplicates > 0, "and the receiver dropped the duplicates");
}

#[test]
fn no_loss() {
    run(0.0, 1);
}

#[test]
fn one_percent_loss() {
    run(0.01, 2);
}

#[test]
fn ten_percent_loss() {
    run(0.10, 3);
}

#[test]
fn thirty_percent_loss() {
    run(0.30, 4);
}

#[test]
fn corruption_behind_a_udp_checksum_is_just_loss() {
    let mut config = Config::default();
    config.set_handshake_timeout(Duration::from_secs(60)).expect("valid");
    let link = impaired(0.01).with_corrupt(0.05);
    let a = Udp::new(Endpoint::new(config.clone().into(), secret(5)));
    let b = Udp::new(Endpoint::new(config.into(), secret(6)));
    let mut p = Pair::symmetric(a, ALICE, b, BOB, link, 7);
    let report = exchange(&mut p, sizes(1000, MAX, 7), 7, 50_000_000);
    assert!(p.a.dropped_corrupt + p.b.dropped_corrupt > 0, "corruption happened");
    assert_eq!(report.bob_stats.messages_received, 1000);
}
