//! Gets and puts under loss, duplication, reordering, jitter and corruption, for every
//! option mix: the file arrives byte-identical and both sides finish, or (at extreme loss) the
//! transfer fails with a clear error within a bound, never hangs.

mod tftp_common;

use std::time::Duration;

use tftp_common::{Net, Op, assert_intact, payload};
use utp_proto::sim::{GilbertElliott, LinkConfig};
use utp_proto::tftp::{Config, OptionRequest, Rollover, TransferError};
use utp_proto::wire::tftp::Mode;

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn impairments() -> Vec<(&'static str, LinkConfig)> {
    let base = LinkConfig::default().with_latency(ms(10));
    vec![
        ("1% loss", base.with_loss(0.01)),
        ("10% loss", base.with_loss(0.10)),
        ("30% loss", base.with_loss(0.30)),
        ("bursty 5% loss", base.with_burst_loss(GilbertElliott::from_average(0.05, 4.0))),
        ("20% duplication", base.with_duplicate(0.2)),
        ("10% reordering", base.with_reorder(0.1, ms(15))),
        ("jitter 10 ms", base.with_jitter(ms(10))),
        ("everything", base.with_loss(0.05).with_duplicate(0.05).with_reorder(0.05, ms(20))),
        ("1% corruption", base.with_corrupt(0.01)),
    ]
}

fn mixes() -> Vec<(&'static str, OptionRequest)> {
    let none = OptionRequest::NONE;
    vec![
        ("lockstep 512", none),
        ("lockstep 1428", OptionRequest { blksize: Some(1428), ..none }),
        ("1428 x 16", OptionRequest { blksize: Some(1428), windowsize: Some(16), ..none }),
        ("512 x 64", OptionRequest { windowsize: Some(64), ..none }),
        (
            "65464 x 4 + timeout 1",
            OptionRequest { blksize: Some(65464), windowsize: Some(4), timeout: Some(1), ..none },
        ),
    ]
}

fn config() -> Config {
    let mut config = Config::default();
    // Generous retries: at 30% loss both ways a round trip fails half the time.
    config.set_max_retries(20).unwrap();
    // And a longer dally: the last ACK may need several tries before the sender hears it.
    config.set_dally(Duration::from_secs(10)).unwrap();
    config
}

#[test]
fn every_mix_survives_every_impairment() {
    let mut seed = 1;
    for (link_name, link) in impairments() {
        for (mix_name, options) in mixes() {
            for op in [Op::Get, Op::Put] {
                seed += 1;
                let data = payload(200_000 + seed as usize * 37, seed);
                let what = format!("{op:?} {mix_name} over {link_name} (seed {seed})");
                let mut net = Net::new(op, Mode::Octet, options, config(), data, link, link, seed);
                let outcome = net.run(Duration::from_secs(24 * 3600));
                if link.corrupt > 0.0 && outcome.client_error.is_some() {
                    // A flipped bit in an opcode or block number may turn a packet into an
                    // ERROR, which ends the transfer: the one acceptable failure here.
                    assert!(
                        matches!(outcome.client_error, Some(TransferError::Peer { .. })),
                        "{what}: {outcome:?}"
                    );
                    continue;
                }
                if link.corrupt > 0.0 {
                    // Corruption of data bytes is not detected by TFTP (UDP checksums do it
                    // on a real network): only the completion is checked.
                    assert!(outcome.client_complete, "{what}: {outcome:?}");
                    continue;
                }
                if link.loss >= 0.3 && op == Op::Get && outcome.client_complete {
                    // TFTP's last-ACK problem: at 30% loss each way the server may never hear
                    // the final ACK although the client has the whole file (which is checked).
                    let served = net.main_served();
                    assert!(
                        served.transfer.is_complete()
                            || matches!(
                                served.transfer.error(),
                                Some(TransferError::TimedOut { .. })
                            ),
                        "{what}: {:?}",
                        served.transfer.error()
                    );
                    assert!(net.client_received == net.data, "{what}: bytes differ");
                    continue;
                }
                assert_intact(&net, op, &outcome, &what);
                assert!(outcome.settled, "{what}: settles ({outcome:?})");
            }
        }
    }
}

#[test]
fn windowsize_64_across_the_rollover_under_loss_duplication_and_reordering() {
    let link = LinkConfig::default()
        .with_latency(ms(5))
        .with_loss(0.02)
        .with_duplicate(0.02)
        .with_reorder(0.02, ms(8));
    for rollover in [Rollover::ToZero, Rollover::ToOne] {
        let mut config = config();
        config.set_rollover(rollover).unwrap();
        for op in [Op::Get, Op::Put] {
            let options =
                OptionRequest { blksize: Some(8), windowsize: Some(64), ..OptionRequest::NONE };
            // 140,000 blocks: two wraps.
            let data = payload(140_000 * 8 + 5, 77);
            let what = format!("{op:?} {rollover:?}");
            let mut net = Net::new(op, Mode::Octet, options, config.clone(), data, link, link, 3);
            let outcome = net.run(Duration::from_secs(24 * 3600));
            assert_intact(&net, op, &outcome, &what);
        }
    }
}

#[test]
fn netascii_survives_loss_and_reordering() {
    let text: Vec<u8> = payload(50_000, 4).iter().map(|b| b"ab\r\n"[usize::from(b % 4)]).collect();
    let link = LinkConfig::default().with_latency(ms(5)).with_loss(0.05).with_reorder(0.05, ms(7));
    for op in [Op::Get, Op::Put] {
        let options =
            OptionRequest { blksize: Some(100), windowsize: Some(8), ..OptionRequest::NONE };
        let mut net = Net::new(op, Mode::Netascii, options, config(), text.clone(), link, link, 5);
        let outcome = net.run(Duration::from_secs(24 * 3600));
        assert_intact(&net, op, &outcome, &format!("netascii {op:?}"));
    }
}

#[test]
fn a_dead_link_fails_with_a_timeout_within_the_retry_bound() {
    for op in [Op::Get, Op::Put] {
        let dead = LinkConfig::default().with_loss(1.0);
        let mut net = Net::new(
            op,
            Mode::Octet,
            OptionRequest::NONE,
            Config::default(),
            payload(10, 1),
            dead,
            dead,
            1,
        );
        let outcome = net.run(Duration::from_secs(3600));
        assert_eq!(outcome.client_error, Some(TransferError::TimedOut { retries: 5 }), "{op:?}");
        // 1 + 2 + 4 + 8 + 8 + 8 seconds of backoff (capped at max_timeout).
        assert_eq!(outcome.elapsed, Duration::from_secs(31), "{op:?}");
        assert!(outcome.settled);
    }
}
