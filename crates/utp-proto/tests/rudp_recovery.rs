//! Recovery of lost DATA (docs/rudp.md, "Established" and "Loss detection"): a gap is asked
//! for with one REPEAT and its fragment resent under a new packet number well before any
//! timer, and however long an outage lasts no packet waits longer than `delivery_timeout`
//! between transmissions. On the hand-driven [`Net`] wire, 10 ms each way.

mod rudp_common;

use std::time::Duration;

use rudp_common::{ALICE, BOB, Fate, Net, Sent, Session};
use utp_proto::Instant;
use utp_proto::rudp::Config;
use utp_proto::wire::rudp::{Packet, PacketType};

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// A DATA packet's (packet number, message number, offset).
fn data(d: &Sent) -> Option<(u64, u64, u32)> {
    match d.datagram()?.packet {
        Packet::Data { packet_number, message_number, offset, .. } => {
            Some((packet_number, message_number, offset))
        }
        _ => None,
    }
}

/// The packet numbers a REPEAT names.
fn named(d: &Sent) -> Vec<u64> {
    match d.datagram().map(|d| d.packet) {
        Some(Packet::Repeat { ranges }) => {
            ranges.iter().flat_map(|(start, len)| start..start + u64::from(len)).collect()
        }
        _ => Vec::new(),
    }
}

#[test]
fn a_gap_is_asked_for_with_one_repeat_and_the_fragment_resent_under_a_new_number() {
    let mut net = Net::default_pair(1);
    let mut s = Session::establish(&mut net);
    // The third DATA of a 12-fragment message is lost on its first transmission.
    net.set_filter(|d| {
        if d.is(ALICE, PacketType::Data) && d.nth == 2 { Fate::Drop } else { Fate::Deliver }
    });
    let message: Vec<u8> = (0..12_000u32).map(|i| (i * 31 % 251) as u8).collect();
    net.a.send(s.alice(), &message).expect("send");
    s.run_until(&mut net, 10_000, |s, _| !s.recv_b.is_empty());
    assert_eq!(s.recv_b, [message], "delivered whole");

    let lost = net.sent_of(ALICE, PacketType::Data)[2].clone();
    let (lost_pn, lost_msg, lost_off) = data(&lost).expect("a DATA");
    assert_eq!(lost.fate, Fate::Drop);
    let repeats = net.sent_of(BOB, PacketType::Repeat);
    assert_eq!(repeats.len(), 1, "one REPEAT for one gap: {}", net.trace());
    assert_eq!(named(repeats[0]), [lost_pn], "it names the missing packet number");
    let asked_at = repeats[0].arrivals[0];

    let resent: Vec<(Instant, u64)> = net
        .sent_of(ALICE, PacketType::Data)
        .iter()
        .filter_map(|d| data(d).map(|(pn, msg, off)| (d.at, pn, msg, off)))
        .filter(|&(_, pn, msg, off)| (msg, off) == (lost_msg, lost_off) && pn != lost_pn)
        .map(|(at, pn, ..)| (at, pn))
        .collect();
    assert_eq!(resent.len(), 1, "the fragment is sent once more: {}", net.trace());
    let (at, pn) = resent[0];
    assert!(pn > lost_pn, "under a new, larger packet number ({pn} after {lost_pn})");
    assert!(at >= asked_at - net.latency, "not before the gap could be known");
    assert!(
        at - lost.at < Config::default().initial_rto(),
        "resent {:?} after the loss: by the REPEAT or the acknowledgements, not a timer",
        at - lost.at
    );
    let a = net.a.stats(s.alice()).expect("alive");
    assert_eq!(a.timeouts, 0, "no probe timeout was needed");
    assert_eq!(a.repeats_received, 1);
    assert_eq!(a.retransmits, 1);
    let b = net.b.stats(s.bob()).expect("alive");
    assert_eq!(b.repeats_sent, 1);
    assert_eq!(b.duplicates, 0);
}

#[test]
fn a_gap_below_packet_threshold_is_not_asked_for() {
    // The last DATA of a message is lost: no later packet numbers show the gap, so there is
    // no REPEAT; the probe timeout (or the acknowledgements) recover it.
    let mut net = Net::default_pair(2);
    let mut s = Session::establish(&mut net);
    net.set_filter(|d| {
        if d.is(ALICE, PacketType::Data) && d.nth == 4 { Fate::Drop } else { Fate::Deliver }
    });
    let message = vec![7u8; 5 * Config::default().fragment_size()];
    net.a.send(s.alice(), &message).expect("send");
    s.run_until(&mut net, 10_000, |s, _| !s.recv_b.is_empty());
    assert_eq!(s.recv_b, [message]);
    assert_eq!(net.sent_of(ALICE, PacketType::Data).len(), 6, "five fragments, one resent");
    assert!(net.sent_of(BOB, PacketType::Repeat).is_empty(), "{}", net.trace());
}

#[test]
fn no_packet_waits_longer_than_delivery_timeout_however_long_the_outage() {
    let timeout = ms(1500);
    let mut alice = Config::default();
    alice.set_delivery_timeout(timeout).expect("valid");
    let mut net = Net::new(alice, Config::default(), 3);
    let mut s = Session::establish(&mut net);
    // Alice's DATA is lost for 20 s; everything else (Bob's pings, Alice's answers) gets
    // through, so neither side gives the other up.
    let start = net.now;
    let end = start + Duration::from_secs(20);
    net.set_filter(move |d| {
        if d.is(ALICE, PacketType::Data) && d.at < end { Fate::Drop } else { Fate::Deliver }
    });
    net.a.send(s.alice(), b"through the outage").expect("send");
    s.run_until(&mut net, 100_000, |s, _| !s.recv_b.is_empty());
    assert_eq!(s.recv_b, [b"through the outage".to_vec()]);

    let sends: Vec<Instant> =
        net.sent_of(ALICE, PacketType::Data).iter().map(|d| d.at).filter(|&t| t >= start).collect();
    let gaps: Vec<Duration> = sends.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.len() >= 12, "a probe at least every delivery_timeout: {gaps:?}");
    assert!(gaps.iter().all(|&g| g <= timeout), "a gap above delivery_timeout: {gaps:?}");
    // The backoff reached the cap (uncapped, the gaps would go 1, 2, 4, 8 s ...).
    assert!(gaps.iter().filter(|&&g| g == timeout).count() >= 8, "{gaps:?}");
    assert!(net.now - end <= timeout + net.latency, "delivered within one timeout of the end");
    let a = net.a.stats(s.alice()).expect("alive");
    assert!(a.rto <= timeout, "rto {:?}", a.rto);
    assert!(s.closed_a.is_none() && s.closed_b.is_none(), "the pings kept it up");
}
