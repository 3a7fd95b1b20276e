//! The goodput table: a 4 MiB transfer under each combination of loss and delay, in
//! virtual time, pinned as a snapshot. The simulator is deterministic, so any change in
//! the figures is a change in behaviour: a performance regression shows on any machine.
//! After an intended change, regenerate with `UPDATE_SNAPSHOTS=1 cargo test --test
//! utp_goodput_table` and copy the table into docs/utp.md.

mod goodput_common;
mod utp_common;

use utp_common::{pair, payload, transfer};
use utp_proto::utp::Config;

const SNAPSHOT: &str = "tests/snapshots/utp_goodput.txt";

fn table() -> String {
    let title =
        "goodput in KB/s of a 4 MiB transfer (one-way delay x random loss, both directions)";
    goodput_common::table(title, |link, seed| {
        let mut p = pair(Config::default(), Config::default(), link, link, seed);
        let report = transfer(&mut p, payload(4 << 20, seed), 50_000_000);
        assert_eq!(report.writer_result, Some(Ok(())), "{link:?}");
        report.goodput
    })
}

#[test]
fn goodput_table_matches_the_snapshot() {
    goodput_common::assert_snapshot(SNAPSHOT, &table(), "docs/utp.md");
}
