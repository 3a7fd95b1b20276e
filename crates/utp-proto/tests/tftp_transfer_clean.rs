//! Gets and puts over a clean simulated link: every option mix, the sizes around block
//! boundaries, option fallback, netascii, and the block-number rollover.

mod tftp_common;

use std::time::Duration;

use tftp_common::{Net, Op, assert_intact, payload};
use utp_proto::sim::LinkConfig;
use utp_proto::tftp::{Config, Event, Negotiated, OptionRequest, Rollover};
use utp_proto::wire::tftp::Mode;

fn link() -> LinkConfig {
    LinkConfig::default().with_latency(Duration::from_millis(5))
}

fn run(op: Op, options: OptionRequest, config: Config, data: Vec<u8>, what: &str) -> Net {
    let mut net = Net::new(op, Mode::Octet, options, config, data, link(), link(), 1);
    let outcome = net.run(Duration::from_secs(3600));
    assert_intact(&net, op, &outcome, what);
    assert!(outcome.settled, "{what}: every machine closes ({outcome:?})");
    net
}

fn mixes() -> Vec<(&'static str, OptionRequest)> {
    let none = OptionRequest::NONE;
    vec![
        ("no options", none),
        ("blksize 1428", OptionRequest { blksize: Some(1428), ..none }),
        ("blksize 8", OptionRequest { blksize: Some(8), ..none }),
        ("blksize 65464", OptionRequest { blksize: Some(65464), ..none }),
        ("windowsize 4", OptionRequest { windowsize: Some(4), ..none }),
        (
            "1428 x 16 + tsize",
            OptionRequest { blksize: Some(1428), windowsize: Some(16), tsize: Some(0), ..none },
        ),
        (
            "512 x 64 + timeout",
            OptionRequest { blksize: Some(512), windowsize: Some(64), timeout: Some(2), ..none },
        ),
        ("tsize only", OptionRequest { tsize: Some(0), ..none }),
    ]
}

#[test]
fn every_option_mix_and_size_arrives_intact_both_ways() {
    for op in [Op::Get, Op::Put] {
        for (name, mut options) in mixes() {
            let blksize = usize::from(options.blksize.unwrap_or(512));
            for len in [0, 1, blksize - 1, blksize, blksize + 1, 3 * blksize, 100_000] {
                if op == Op::Put && options.tsize.is_some() {
                    options.tsize = Some(len as u64);
                }
                let what = format!("{op:?} {name} {len} bytes");
                run(op, options, Config::default(), payload(len, len as u64), &what);
            }
        }
    }
}

#[test]
fn an_exact_multiple_ends_with_an_empty_block() {
    let net = run(Op::Get, OptionRequest::NONE, Config::default(), payload(1024, 3), "1024");
    let served = net.main_served().transfer.stats();
    assert_eq!(served.data_sent, 3, "two full blocks and an empty one");
    let net = run(Op::Get, OptionRequest::NONE, Config::default(), payload(1023, 3), "1023");
    assert_eq!(net.main_served().transfer.stats().data_sent, 2);
}

#[test]
fn the_options_in_force_are_reported_once_before_data() {
    let options = OptionRequest {
        blksize: Some(1428),
        windowsize: Some(200),
        tsize: Some(0),
        timeout: Some(3),
    };
    let net = run(Op::Get, options, Config::default(), payload(5000, 1), "negotiated");
    let expected =
        Negotiated { blksize: 1428, windowsize: 64, timeout: Some(3), tsize: Some(5000) };
    assert_eq!(net.client_events.first(), Some(&Event::Negotiated(expected)));
    let count = net.client_events.iter().filter(|e| matches!(e, Event::Negotiated(_))).count();
    assert_eq!(count, 1);
    assert_eq!(net.client.negotiated(), expected, "windowsize lowered to the server's maximum");
}

#[test]
fn a_server_that_ignores_options_gets_the_defaults() {
    for op in [Op::Get, Op::Put] {
        let options = OptionRequest {
            blksize: Some(1428),
            windowsize: Some(16),
            tsize: Some(if op == Op::Put { 4000 } else { 0 }),
            timeout: Some(2),
        };
        let data = payload(4000, 9);
        let mut net =
            Net::new(op, Mode::Octet, options, Config::default(), data, link(), link(), 1);
        net.ignore_options = true;
        let outcome = net.run(Duration::from_secs(60));
        assert_intact(&net, op, &outcome, "fallback");
        assert_eq!(net.client.negotiated(), Negotiated::default());
        assert_eq!(net.client_events.first(), Some(&Event::Negotiated(Negotiated::default())));
        assert_eq!(
            net.main_served().transfer.stats().data_sent.max(net.client.stats().data_sent),
            8
        );
    }
}

#[test]
fn netascii_converts_line_ends_across_block_boundaries() {
    // CR and LF land on every position relative to the 8-byte blocks.
    let mut text = Vec::new();
    for i in 0..500u32 {
        text.extend(std::iter::repeat_n(b'a', (i % 9) as usize));
        text.push(if i % 3 == 0 { b'\r' } else { b'\n' });
    }
    text.extend_from_slice(b"\r");
    for op in [Op::Get, Op::Put] {
        let options =
            OptionRequest { blksize: Some(8), windowsize: Some(3), ..OptionRequest::NONE };
        let mut net = Net::new(
            op,
            Mode::Netascii,
            options,
            Config::default(),
            text.clone(),
            link(),
            link(),
            2,
        );
        let outcome = net.run(Duration::from_secs(600));
        assert_intact(&net, op, &outcome, "netascii");
        let sender =
            if op == Op::Get { net.main_served().transfer.stats() } else { net.client.stats() };
        let wire = utp_proto::tftp::netascii::Encoder::encoded_len(&text);
        assert_eq!(sender.wire_bytes, wire, "lengths on the wire count converted bytes");
    }
}

#[test]
fn block_numbers_roll_over_to_zero_or_one_with_windows_across_the_wrap() {
    // blksize 8 makes the 65536th block cheap: 70,000 blocks is 560,000 bytes.
    for rollover in [Rollover::ToZero, Rollover::ToOne] {
        for windowsize in [1u16, 7, 64] {
            let mut config = Config::default();
            config.set_rollover(rollover).unwrap();
            let options = OptionRequest {
                blksize: Some(8),
                windowsize: Some(windowsize),
                ..OptionRequest::NONE
            };
            for op in [Op::Get, Op::Put] {
                let what = format!("{op:?} {rollover:?} windowsize {windowsize}");
                let net = run(op, options, config.clone(), payload(70_000 * 8 + 3, 5), &what);
                let sender = if op == Op::Get {
                    net.main_served().transfer.stats()
                } else {
                    net.client.stats()
                };
                assert_eq!(sender.data_retransmitted, 0, "{what}: nothing resent on a clean link");
            }
        }
    }
}

#[test]
fn sixty_five_thousand_five_hundred_and_thirty_five_blocks_plus_one_byte() {
    // The size the interop tests use: the last block is number 0 after the wrap.
    let data = payload(65_535 * 512 + 1, 8);
    let options = OptionRequest { windowsize: Some(64), ..OptionRequest::NONE };
    run(Op::Get, options, Config::default(), data.clone(), "get 65535 x 512 + 1");
    run(Op::Put, OptionRequest::NONE, Config::default(), data, "put 65535 x 512 + 1");
}
