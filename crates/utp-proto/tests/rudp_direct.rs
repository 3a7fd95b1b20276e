//! Direct datagrams (docs/rudp.md, DIRECT and "Limits"): delivered in order on a clean link,
//! `max_direct` enforced without splitting, `direct_queue` on both sides, never
//! retransmitted, and held to the congestion window.

mod rudp_common;

use std::time::Duration;

use rudp_common::{ALICE, Fate, Net, Session, content, drain_events, establish_pair, pair};
use utp_proto::rudp::{Config, Event, RecvError, SendDirectError};
use utp_proto::sim::LinkConfig;
use utp_proto::wire::rudp::{Packet, PacketType};

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// Direct datagram `i`: its size and bytes follow from the index.
fn datagram(i: usize) -> Vec<u8> {
    content(7, i, (i * 37) % 1191)
}

#[test]
fn direct_datagrams_arrive_whole_and_in_order_on_a_clean_link() {
    let mut net = Net::default_pair(1);
    let mut s = Session::establish(&mut net);
    let (alice, bob) = (s.alice(), s.bob());
    for i in 0..200 {
        net.a.send_direct(alice, &datagram(i)).expect("send_direct");
        net.b.send_direct(bob, &datagram(1000 + i)).expect("send_direct");
    }
    s.run_until(&mut net, 100_000, |s, _| s.direct_b.len() == 200 && s.direct_a.len() == 200);
    for i in 0..200 {
        assert_eq!(s.direct_b[i], datagram(i), "datagram {i} to Bob");
        assert_eq!(s.direct_a[i], datagram(1000 + i), "datagram {i} to Alice");
    }
    let (a, b) = (net.a.stats(alice).expect("alive"), net.b.stats(bob).expect("alive"));
    assert_eq!((a.direct_sent, a.direct_received, a.direct_dropped), (200, 200, 0));
    assert_eq!((b.direct_sent, b.direct_received, b.direct_dropped), (200, 200, 0));
    assert_eq!(a.data_sent, 0, "direct datagrams are not DATA");
    assert!(s.events_b.iter().any(|(_, e)| *e == Event::Direct(bob)));
    s.run_for(&mut net, ms(500));
    assert_eq!(s.direct_b.len(), 200, "nothing twice");
}

#[test]
fn max_direct_bytes_go_one_more_is_refused_and_nothing_is_sent() {
    for size in [1200, 500] {
        let mut config = Config::default();
        config.set_datagram_size(size).expect("valid");
        let max = config.max_direct();
        assert_eq!(max, size - 10);
        let mut net = Net::new(config.clone(), config, 2);
        let mut s = Session::establish(&mut net);
        let alice = s.alice();
        assert_eq!(
            net.a.send_direct(alice, &vec![1; max + 1]),
            Err(SendDirectError::TooLarge { len: max + 1, max })
        );
        s.run_for(&mut net, ms(100));
        assert!(net.sent_of(ALICE, PacketType::Direct).is_empty(), "nothing sent for it");
        assert_eq!(net.a.stats(alice).expect("alive").direct_sent, 0);
        net.a.send_direct(alice, &vec![2; max]).expect("max_direct fits");
        net.a.send_direct(alice, b"").expect("so does nothing");
        s.run_for(&mut net, ms(100));
        let sent = net.sent_of(ALICE, PacketType::Direct);
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0].len(), size, "one whole datagram, never split");
        assert_eq!(s.direct_b, [vec![2; max], vec![]]);
    }
}

#[test]
fn a_full_send_queue_is_blocked_then_writable() {
    let mut config = Config::default();
    config.set_direct_queue(4).expect("valid");
    let mut net = Net::new(config, Config::default(), 3);
    let s = Session::establish(&mut net);
    let alice = s.alice();
    drain_events(&mut net.a);
    for i in 0..4 {
        net.a.send_direct(alice, &datagram(i)).expect("room for 4");
    }
    assert_eq!(net.a.send_direct(alice, b"fifth"), Err(SendDirectError::Blocked));
    assert_eq!(drain_events(&mut net.a), [], "no Writable before anything left");
    net.flush();
    assert_eq!(drain_events(&mut net.a), [Event::Writable(alice)]);
    net.a.send_direct(alice, b"fifth").expect("room again");
    assert_eq!(net.sent_of(ALICE, PacketType::Direct).len(), 4);
}

#[test]
fn the_receive_queue_beyond_direct_queue_drops_and_counts() {
    let mut bob_config = Config::default();
    bob_config.set_direct_queue(4).expect("valid");
    let mut net = Net::new(Config::default(), bob_config, 4);
    let mut s = Session::establish(&mut net);
    s.read_b = false;
    let (alice, bob) = (s.alice(), s.bob());
    for i in 0..10 {
        net.a.send_direct(alice, &datagram(i)).expect("send_direct");
    }
    s.run_for(&mut net, ms(200));
    let stats = net.b.stats(bob).expect("alive");
    assert_eq!((stats.direct_received, stats.direct_dropped), (4, 6));
    for i in 0..4 {
        assert_eq!(net.b.recv_direct(net.now, bob), Ok(datagram(i)), "the first four, in order");
    }
    assert_eq!(net.b.recv_direct(net.now, bob), Err(RecvError::Blocked));
    net.a.send_direct(alice, b"again").expect("send_direct");
    s.run_for(&mut net, ms(100));
    assert_eq!(net.b.recv_direct(net.now, bob), Ok(b"again".to_vec()), "room once read");
    assert_eq!(net.b.stats(bob).expect("alive").direct_dropped, 6);
}

#[test]
fn lost_direct_datagrams_are_not_retransmitted() {
    let mut net = Net::default_pair(5);
    let mut s = Session::establish(&mut net);
    net.set_filter(|d| {
        if d.is(ALICE, PacketType::Direct) && d.nth % 3 == 0 { Fate::Drop } else { Fate::Deliver }
    });
    let alice = s.alice();
    for i in 0..30 {
        net.a.send_direct(alice, &datagram(i)).expect("send_direct");
    }
    s.run_for(&mut net, Duration::from_secs(10));
    let sent = net.sent_of(ALICE, PacketType::Direct);
    assert_eq!(sent.len(), 30, "each sent once");
    assert_eq!(net.a.stats(alice).expect("alive").direct_sent, 30);
    assert_eq!(net.a.stats(alice).expect("alive").retransmits, 0);
    let expected: Vec<Vec<u8>> = (0..30).filter(|i| i % 3 != 0).map(datagram).collect();
    assert_eq!(s.direct_b, expected, "the others, in order, once");
    for (i, d) in sent.iter().enumerate() {
        let Some(Packet::Direct { payload }) = d.datagram().map(|d| d.packet) else { panic!() };
        assert_eq!(payload, &datagram(i)[..]);
    }
}

#[test]
fn direct_datagrams_are_held_to_the_congestion_window() {
    // A 1 MB/s bottleneck with a 20-datagram queue: 256 datagrams of 1190 bytes at once
    // would overflow it. Held to the window (about ten datagrams for a round trip each),
    // they go out over time and none is dropped at the bottleneck.
    let link = LinkConfig::default().with_bandwidth(1_000_000).with_queue_capacity(20);
    let mut p = pair(Config::default(), Config::default(), link, link, 6);
    let (alice, bob) = establish_pair(&mut p);
    let max = p.a.config().max_direct();
    for i in 0..256u32 {
        p.a.send_direct(alice, &vec![i as u8; max]).expect("send_direct");
    }
    let sent = |p: &rudp_common::Ep| p.stats(alice).expect("alive").direct_sent;
    p.drive_for(Duration::from_micros(1)).expect("drive");
    let at_once = sent(&p.a);
    assert!((1..=12).contains(&at_once), "{at_once} sent at once: the window holds ~10");
    p.drive_for(ms(100)).expect("drive");
    let later = sent(&p.a);
    assert!(later > at_once && later < 256, "{later} sent after 100 ms");
    let mut got = Vec::new();
    p.drive_until(1_000_000, |p| {
        while let Ok(d) = p.b.recv_direct(p.now(), bob) {
            got.push(d);
        }
        got.len() == 256
    })
    .expect("all arrive");
    assert_eq!(p.stats().a_to_b.dropped_queue, 0, "no flood at the bottleneck");
    assert!(got.iter().enumerate().all(|(i, d)| d == &vec![i as u8; max]));
    assert!(p.now() > utp_proto::Instant::from_millis(200), "spread over time");
}
