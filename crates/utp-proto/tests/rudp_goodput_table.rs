//! The rudp goodput table: 4 MiB in 64 KiB messages under each combination of loss and
//! delay, in virtual time, pinned as a snapshot. The simulator is deterministic, so any
//! change in the figures is a change in behaviour: a performance regression shows on any
//! machine. After an intended change, regenerate with `UPDATE_SNAPSHOTS=1 cargo test
//! --test rudp_goodput_table` and copy the table into docs/rudp.md.

mod goodput_common;
mod rudp_common;

use std::time::Duration;

use rudp_common::{exchange, pair};
use utp_proto::rudp::Config;

const SNAPSHOT: &str = "tests/snapshots/rudp_goodput.txt";

fn table() -> String {
    let title = "goodput in KB/s of 4 MiB in 64 KiB messages (one-way delay x random loss, both directions)";
    goodput_common::table(title, |link, seed| {
        let mut config = Config::default();
        config.set_handshake_timeout(Duration::from_secs(60)).expect("valid");
        let mut p = pair(config.clone(), config, link, link, seed);
        let report = exchange(&mut p, vec![64 << 10; 64], seed, 50_000_000);
        assert_eq!(report.bob_stats.messages_received, 64, "{link:?}");
        report.goodput
    })
}

#[test]
fn goodput_table_matches_the_snapshot() {
    goodput_common::assert_snapshot(SNAPSHOT, &table(), "docs/rudp.md");
}
