//! LEDBAT on a bottleneck: it fills the link but keeps the queue it builds near its target
//! delay (100 ms), instead of filling the bottleneck's whole buffer as a loss-based
//! controller would.

mod utp_common;

use std::time::Duration;

use utp_common::{pair, payload, transfer};
use utp_proto::sim::LinkConfig;
use utp_proto::utp::Config;

#[test]
fn queueing_delay_stays_near_the_target_while_using_the_link() {
    let bandwidth = 1_000_000; // 1 MB/s
    // 20 ms each way; a 2000-packet buffer: up to 2.8 s of queueing if anyone filled it.
    let forward = LinkConfig::default()
        .with_latency(Duration::from_millis(20))
        .with_bandwidth(bandwidth)
        .with_queue_capacity(2000);
    let back = LinkConfig::default().with_latency(Duration::from_millis(20));
    let mut p = pair(Config::default(), Config::default(), forward, back, 42);
    let report = transfer(&mut p, payload(20 << 20, 42), 50_000_000);
    assert_eq!(report.writer_result, Some(Ok(())));
    let stats = report.writer_stats.expect("stats");
    let rtt = stats.rtt.expect("measured");
    let queueing = rtt.saturating_sub(Duration::from_millis(40));
    let utilisation = report.goodput / bandwidth as f64;
    println!("rtt {rtt:?}, queueing {queueing:?}, utilisation {utilisation:.3}, {stats:?}");
    assert!(utilisation > 0.9, "uses the link: {utilisation:.3}");
    assert!(
        queueing >= Duration::from_millis(50) && queueing <= Duration::from_millis(150),
        "queueing delay {queueing:?} should be near the 100 ms target"
    );
    assert_eq!(p.stats().a_to_b.dropped_queue, 0, "never overflows the bottleneck buffer");
}
