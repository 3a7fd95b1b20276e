//! The rudp goodput table: 4 MiB in 64 KiB messages under each combination of loss and
//! delay, in virtual time, pinned as a snapshot. The simulator is deterministic, so any
//! change in the figures is a change in behaviour: a performance regression shows on any
//! machine. After an intended change, regenerate with `UPDATE_SNAPSHOTS=1 cargo test
//! --test rudp_goodput_table` and copy the table into docs/rudp.md.

mod rudp_common;

use std::fmt::Write as _;
use std::time::Duration;

use rudp_common::{exchange, pair};
use utp_proto::rudp::Config;
use utp_proto::sim::LinkConfig;

const SNAPSHOT: &str = "tests/snapshots/rudp_goodput.txt";

fn table() -> String {
    let losses = [0.0, 0.001, 0.01, 0.05];
    let delays = [1u64, 10, 50, 150];
    let mut out = String::from(
        "goodput in KB/s of 4 MiB in 64 KiB messages (one-way delay x random loss, both directions)\n",
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
            let mut config = Config::default();
            config.set_handshake_timeout(Duration::from_secs(60)).expect("valid");
            let mut p = pair(config.clone(), config, link, link, seed);
            let report = exchange(&mut p, vec![64 << 10; 64], seed, 50_000_000);
            assert_eq!(report.bob_stats.messages_received, 64, "delay {delay} loss {loss}");
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
        "goodput changed; if intended, UPDATE_SNAPSHOTS=1 and update docs/rudp.md"
    );
}
