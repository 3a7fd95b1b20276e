//! A 300 MiB transfer: over 220,000 packets, so sequence numbers wrap several times (and
//! the microsecond timestamps pass their 32-bit wrap at 71 minutes when started near it).

mod utp_common;

use std::time::Duration;

use utp_common::{pair, payload, transfer};
use utp_proto::sim::LinkConfig;
use utp_proto::utp::Config;

#[test]
fn three_hundred_mebibytes_wrap_the_sequence_numbers_and_arrive_intact() {
    let link = LinkConfig::default()
        .with_latency(Duration::from_millis(1))
        .with_loss(0.001)
        .with_reorder(0.001, Duration::from_millis(2));
    let mut p = pair(Config::default(), Config::default(), link, link, 300);
    // Start just before the 32-bit microsecond clock wraps (2^32 µs = 71.6 minutes).
    p.drive_for(Duration::from_micros((1 << 32) - 2_000_000)).expect("idle pair");
    let len = 300 << 20;
    let report = transfer(&mut p, payload(len, 300), 50_000_000);
    assert_eq!(report.writer_result, Some(Ok(())));
    assert_eq!(report.reader_result, Some(Ok(())));
    let stats = report.writer_stats.expect("stats");
    assert!(stats.packets_sent > 3 * 65_536, "sequence numbers wrapped: {}", stats.packets_sent);
    println!("{:.1} MB/s, {stats:?}", report.goodput / 1e6);
}
