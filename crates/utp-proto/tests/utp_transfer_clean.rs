//! Bulk transfers on a clean link: the baseline every impaired scenario is compared to.

mod utp_common;

use std::time::Duration;

use utp_common::{pair, payload, transfer};
use utp_proto::sim::LinkConfig;
use utp_proto::utp::Config;

#[test]
fn one_mebibyte_over_a_clean_link_arrives_intact_and_both_sides_close_cleanly() {
    let link = LinkConfig::default().with_latency(Duration::from_millis(10));
    let mut p = pair(Config::default(), Config::default(), link, link, 1);
    let report = transfer(&mut p, payload(1 << 20, 7), 20_000);
    assert_eq!(report.writer_result, Some(Ok(())));
    assert_eq!(report.reader_result, Some(Ok(())));
    println!("{report:?}");
}
