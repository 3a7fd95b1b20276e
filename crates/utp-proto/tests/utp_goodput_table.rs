//! The goodput table: a 4 MiB transfer under each combination of loss and delay, in
//! virtual time, pinned as a snapshot. The simulator is deterministic, so any change in
//! the figures is a change in behaviour: a performance regression shows on any machine.
//! After an intended change, regenerate with `UPDATE_SNAPSHOTS=1 cargo test --test
//! utp_goodput_table` and copy the table into docs/utp.md.

mod utp_common;

use std::fmt::Write as _;
use std::time::Duration;

use utp_common::{pair, payload, transfer};
use utp_proto::sim::LinkConfig;
use utp_proto::utp::Config;

const SNAPSHOT: &str = "tests/snapshots/utp_goodput.txt";

fn table() -> String {
    let losses = [0.0, 0.001, 0.01, 0.05];
    let delays = [1u64, 10, 50, 150];
    let mut out = String::from(
        "goodput in KB/s of a 4 MiB transfer (one-way delay x random loss, both directions)\n",
    );
    let _ = write!(out, "{:>8}", "delay");
    for loss in losses {
        let _ = write!(out, " {:>9}", format!("{:.1}%", loss * 100.0));
    }
    out.push('\n');
    for (i, delay) in delays.into_iter().enumerate() {
        let _ = write!(out, "{:>6}ms", delay);
        for (j, loss) in losses.into_iter().enumerate() {
            let link =
                LinkConfig::default().with_latency(Duration::from_millis(delay)).with_loss(loss);
            let seed = 1000 + (i * 10 + j) as u64;
            let mut p = pair(Config::default(), Config::default(), link, link, seed);
            let report = transfer(&mut p, payload(4 << 20, seed), 50_000_000);
            assert_eq!(report.writer_result, Some(Ok(())), "delay {delay} loss {loss}");
            let _ = write!(out, " {:>9.0}", report.goodput / 1000.0);
        }
        out.push('\n');
    }
    out
}

#[test]
fn goodput_table_matches_the_snapshot() {
    let table = table();
    print!("{table}");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(SNAPSHOT, &table).expect("write snapshot");
        return;
    }
    let pinned = std::fs::read_to_string(SNAPSHOT)
        .expect("snapshot missing: run with UPDATE_SNAPSHOTS=1 to create it");
    assert_eq!(
        table, pinned,
        "goodput changed; if intended, UPDATE_SNAPSHOTS=1 and update docs/utp.md"
    );
}
