//! The goodput tables of the protocols (one-way delay x random loss, in virtual time) and
//! the snapshot each is pinned to.

use std::fmt::Write as _;
use std::time::Duration;

use utp_proto::sim::LinkConfig;

/// Random loss each way, one column each.
const LOSSES: [f64; 4] = [0.0, 0.001, 0.01, 0.05];
/// One-way delay in milliseconds, one row each.
const DELAYS: [u64; 4] = [1, 10, 50, 150];

/// The table headed by `title`: each cell is `cell(link, seed)`, the goodput in bytes per
/// second over `link` (both directions alike), shown in KB/s. Every cell has its own seed.
pub(crate) fn table(title: &str, mut cell: impl FnMut(LinkConfig, u64) -> f64) -> String {
    let mut out = format!("{title}\n");
    let _ = write!(out, "{:>8}", "delay");
    for loss in LOSSES {
        let _ = write!(out, " {:>9}", format!("{:.1}%", loss * 100.0));
    }
    out.push('\n');
    for (i, delay) in DELAYS.into_iter().enumerate() {
        let _ = write!(out, "{:>6}ms", delay);
        for (j, loss) in LOSSES.into_iter().enumerate() {
            let link =
                LinkConfig::default().with_latency(Duration::from_millis(delay)).with_loss(loss);
            let seed = 1000 + (i * 10 + j) as u64;
            let _ = write!(out, " {:>9.0}", cell(link, seed) / 1000.0);
        }
        out.push('\n');
    }
    out
}

/// Asserts that `table` is what `snapshot` (a path from the crate root) holds; with
/// `UPDATE_SNAPSHOTS` set, writes it there instead. `doc` names the page that shows the
/// table, to update along with it.
pub(crate) fn assert_snapshot(snapshot: &str, table: &str, doc: &str) {
    print!("{table}");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(snapshot, table).expect("write snapshot");
        return;
    }
    let pinned = std::fs::read_to_string(snapshot)
        .expect("snapshot missing: run with UPDATE_SNAPSHOTS=1 to create it");
    assert_eq!(table, pinned, "goodput changed; if intended, UPDATE_SNAPSHOTS=1 and update {doc}");
}
