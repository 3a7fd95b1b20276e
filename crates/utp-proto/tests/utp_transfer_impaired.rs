//! 10 MiB transfers arrive byte-identical under every impairment the simulator has, and
//! both sides close cleanly.

mod utp_common;

use std::sync::Arc;
use std::time::Duration;

use utp_common::{ALICE, BOB, Report, Udp, pair, payload, transfer};
use utp_proto::sim::{GilbertElliott, LinkConfig, Pair};
use utp_proto::utp::{Config, Endpoint};

const TEN_MIB: usize = 10 << 20;

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn check(report: &Report, what: &str) {
    assert_eq!(report.writer_result, Some(Ok(())), "{what}: writer closes cleanly");
    assert_eq!(report.reader_result, Some(Ok(())), "{what}: reader closes cleanly");
    println!(
        "{what}: {:.3} MB/s in {:?}; writer {:?}",
        report.goodput / 1e6,
        report.elapsed,
        report.writer_stats
    );
}

fn run_with(config: Config, link: LinkConfig, seed: u64, what: &str) -> Report {
    let mut p = pair(config.clone(), config, link, link, seed);
    let report = transfer(&mut p, payload(TEN_MIB, seed), 50_000_000);
    check(&report, what);
    report
}

fn run(link: LinkConfig, seed: u64, what: &str) -> Report {
    run_with(Config::default(), link, seed, what)
}

#[test]
fn random_loss_up_to_10_percent_with_default_settings() {
    for (i, loss) in [0.0, 0.01, 0.05, 0.10].into_iter().enumerate() {
        let link = LinkConfig::default().with_latency(ms(20)).with_loss(loss);
        run(link, 100 + i as u64, &format!("loss {loss}"));
    }
}

/// Settings for very lossy paths: with a quarter of all packets lost (or losses in long
/// bursts), a retransmission and its ACK both arrive only about half the time, and libutp's
/// cap of 4 consecutive timeouts gives a connection up every few dozen loss episodes.
fn lossy_path_config() -> Config {
    let mut config = Config::default();
    config.set_max_retransmits(10).expect("valid");
    config
}

#[test]
fn random_loss_of_25_percent_with_more_retries() {
    let link = LinkConfig::default().with_latency(ms(20)).with_loss(0.25);
    run_with(lossy_path_config(), link, 7, "loss 0.25");
}

#[test]
fn bursty_loss_with_more_retries() {
    let burst = GilbertElliott::from_average(0.03, 4.0);
    let link = LinkConfig::default().with_latency(ms(20)).with_burst_loss(burst);
    run_with(lossy_path_config(), link, 11, "bursty loss 3%, bursts of 4");
}

#[test]
fn reordering_and_duplication() {
    let link = LinkConfig::default()
        .with_latency(ms(20))
        .with_jitter(ms(5))
        .with_reorder(0.05, ms(15))
        .with_duplicate(0.05);
    let report = run(link, 12, "reorder 5% by 15 ms, duplicate 5%");
    let stats = report.writer_stats.expect("stats");
    assert!(stats.bytes_sent >= TEN_MIB as u64);
}

#[test]
fn corruption_behind_a_udp_checksum() {
    let link = LinkConfig::default().with_latency(ms(20)).with_corrupt(0.05);
    let config = Arc::new(Config::default());
    let mut p = Pair::symmetric(
        Udp::new(Endpoint::new(config.clone(), 1)),
        ALICE,
        Udp::new(Endpoint::new(config, 2)),
        BOB,
        link,
        13,
    );
    let report = transfer(&mut p, payload(TEN_MIB, 13), 50_000_000);
    check(&report, "corrupt 5% (dropped by the checksum)");
    assert!(p.a.dropped_corrupt + p.b.dropped_corrupt > 100, "corruption happened");
}

#[test]
fn round_trip_times_from_1_to_300_ms() {
    for (i, one_way) in [Duration::from_micros(500), ms(25), ms(150)].into_iter().enumerate() {
        let link = LinkConfig::default().with_latency(one_way).with_loss(0.01);
        run(link, 20 + i as u64, &format!("one-way delay {one_way:?}, 1% loss"));
    }
}

#[test]
fn bandwidth_limited_link_with_a_finite_queue() {
    // 2 MB/s bottleneck, 100-packet queue (70 ms of buffering), 20 ms each way.
    let link = LinkConfig::default()
        .with_latency(ms(20))
        .with_bandwidth(2_000_000)
        .with_queue_capacity(100);
    let report = run(link, 30, "2 MB/s bottleneck");
    assert!(report.goodput > 0.8 * 2_000_000.0, "uses most of the bottleneck: {}", report.goodput);
}
