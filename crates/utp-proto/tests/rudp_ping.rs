//! Keepalive and the ping timeout (docs/rudp.md, "Established"): an idle connection pings
//! and stays up; a silent peer is given up exactly `(ping_packet_count + 1) x ping_interval`
//! after it was last heard, with a CLOSE of code 1; an outage shorter than that is
//! survived.

mod rudp_common;

use std::time::Duration;

use rudp_common::{ALICE, BOB, Fate, Net, Session, establish_pair, pair};
use utp_proto::rudp::{CloseCode, CloseReason, Config, Event, State};
use utp_proto::sim::LinkConfig;
use utp_proto::wire::rudp::{Packet, PacketType};
use utp_proto::{Instant, Machine};

fn secs(v: u64) -> Duration {
    Duration::from_secs(v)
}

#[test]
fn an_idle_connection_stays_up_for_ten_minutes() {
    let mut p =
        pair(Config::default(), Config::default(), LinkConfig::default(), LinkConfig::default(), 1);
    let (alice, bob) = establish_pair(&mut p);
    p.drive_for(secs(600)).expect("no livelock");
    let mut events = Vec::new();
    while let Some(e) = p.a.poll_event() {
        events.push(e);
    }
    while let Some(e) = p.b.poll_event() {
        events.push(e);
    }
    assert!(
        !events.iter().any(|e| matches!(e, Event::Closed { .. })),
        "nothing closed: {events:?}"
    );
    assert_eq!(p.a.state(alice), Some(State::Established));
    assert_eq!(p.b.state(bob), Some(State::Established));
    let pings =
        p.a.stats(alice).expect("alive").pings_sent + p.b.stats(bob).expect("alive").pings_sent;
    // Whoever hears nothing for 5 s pings; the answer keeps the other quiet: at least one
    // ping per ping interval on the connection, and far fewer than one per step.
    assert!(pings >= 600 / 5 - 1, "{pings} pings in 10 minutes");
    assert!(pings <= 2 * 600 / 5 + 2, "{pings} pings in 10 minutes");
}

/// Establishes, idles a second, then lets `lost` decide which datagram (by sender) is lost
/// from then on; runs until both sides' connections closed or `limit` passed.
fn silence(
    config: Config,
    lost: fn(u8) -> bool,
    limit: Duration,
    seed: u64,
) -> (Net, Session, Instant) {
    let mut net = Net::new(config.clone(), config, seed);
    let mut s = Session::establish(&mut net);
    s.run_for(&mut net, secs(1));
    // A message from Bob is on its way when the silence begins: Alice hears it, Bob never
    // hears her acknowledgement (he keeps probing: sending is not hearing).
    net.b.send(s.bob(), b"last words").expect("send");
    s.run_for(&mut net, Duration::from_millis(5));
    let from = net.now;
    net.set_filter(move |d| if lost(d.from) { Fate::Drop } else { Fate::Deliver });
    let deadline = net.now + limit;
    s.run_until(&mut net, 100_000, |s, n| {
        (s.closed_a.is_some() && s.closed_b.is_some()) || n.now >= deadline
    });
    // Let the CLOSE's repeats and the lingering run out.
    s.run_for(&mut net, secs(30));
    (net, s, from)
}

/// When `to` last had a datagram arrive.
fn last_heard(net: &Net, to: u8) -> Instant {
    net.log
        .iter()
        .filter(|d| d.to == to)
        .flat_map(|d| d.arrivals.iter().copied())
        .max()
        .expect("heard something")
}

/// Checks the side `who` gave up exactly `(count + 1) x interval` after it last heard
/// anything, having sent `count` pings `interval` apart and then a CLOSE of code 1.
#[track_caller]
fn check_gave_up(
    net: &Net,
    who: u8,
    closed: &(Instant, CloseReason),
    interval: Duration,
    count: u32,
    from: Instant,
) {
    let heard = last_heard(net, who);
    let (at, reason) = closed;
    assert_eq!(*reason, CloseReason::PingTimeout { unanswered: count });
    assert_eq!(
        *at,
        heard + interval * (count + 1),
        "given up (count + 1) intervals after the last packet"
    );
    let pings: Vec<Instant> =
        net.sent_of(who, PacketType::Ping).iter().map(|p| p.at).filter(|&t| t > heard).collect();
    let expected: Vec<Instant> = (1..=count).map(|k| heard + interval * k).collect();
    assert_eq!(pings, expected, "one ping per interval of silence");
    let close: Vec<_> = net.sent_of(who, PacketType::Close);
    assert_eq!(close.len(), 3, "the CLOSE and its two repeats");
    assert_eq!(close[0].at, *at);
    let text = format!("peer silent: {count} pings unanswered");
    for c in &close {
        assert_eq!(c.close(), Some((CloseCode::PingTimeout, text.clone())));
    }
    assert!(
        net.sent_by(who).iter().filter(|d| d.at > *at).all(|d| d.kind == Some(PacketType::Close))
    );
    assert!(heard <= from + Duration::from_millis(10), "nothing was heard once the silence began");
}

#[test]
fn a_silent_peer_is_given_up_after_25_seconds_with_close_code_1() {
    let (net, s, from) = silence(Config::default(), |_| true, secs(60), 2);
    let alice = s.closed_a.clone().expect("Alice gave up");
    let bob = s.closed_b.clone().expect("Bob gave up");
    check_gave_up(&net, ALICE, &alice, secs(5), 4, from);
    check_gave_up(&net, BOB, &bob, secs(5), 4, from);
    assert_eq!(alice.0 - last_heard(&net, ALICE), secs(25));
}

#[test]
fn the_ping_timeout_follows_ping_interval_and_ping_packet_count() {
    let mut config = Config::default();
    config.set_ping_interval(Duration::from_millis(1500)).expect("valid");
    config.set_ping_packet_count(2).expect("valid");
    let (net, s, from) = silence(config, |_| true, secs(60), 3);
    let alice = s.closed_a.clone().expect("Alice gave up");
    check_gave_up(&net, ALICE, &alice, Duration::from_millis(1500), 2, from);
    check_gave_up(
        &net,
        BOB,
        &s.closed_b.clone().expect("Bob gave up"),
        Duration::from_millis(1500),
        2,
        from,
    );
    assert_eq!(alice.0 - last_heard(&net, ALICE), Duration::from_millis(4500));
}

#[test]
fn when_only_one_direction_is_lost_the_close_reaches_the_silent_side() {
    // Bob's datagrams are lost, Alice's arrive: Alice hears nothing and gives up; Bob
    // hears her pings (so he never times out) and then her CLOSE.
    let (net, s, from) = silence(Config::default(), |from| from == BOB, secs(60), 4);
    let alice = s.closed_a.clone().expect("Alice gave up");
    check_gave_up(&net, ALICE, &alice, secs(5), 4, from);
    let (at, reason) = s.closed_b.clone().expect("Bob learned of it");
    assert_eq!(
        reason,
        CloseReason::Peer {
            code: CloseCode::PingTimeout,
            reason: "peer silent: 4 pings unanswered".into()
        }
    );
    assert_eq!(at, alice.0 + Duration::from_millis(10), "one way after Alice's CLOSE");
    // Bob answered every ping (his answers were lost).
    let acks = net.sent_of(BOB, PacketType::PingAck).iter().filter(|p| p.at > from).count();
    assert_eq!(acks, 4);
    let pings: Vec<u64> = net
        .sent_of(ALICE, PacketType::Ping)
        .iter()
        .filter_map(|p| match p.datagram()?.packet {
            Packet::Ping { ping_id } => Some(ping_id),
            _ => None,
        })
        .collect();
    let echoed: Vec<u64> = net
        .sent_of(BOB, PacketType::PingAck)
        .iter()
        .filter_map(|p| match p.datagram()?.packet {
            Packet::PingAck { ping_id } => Some(ping_id),
            _ => None,
        })
        .collect();
    assert!(pings.ends_with(&echoed[echoed.len() - 4..]), "PING-ACK echoes the ping_id");
}

#[test]
fn an_outage_shorter_than_the_timeout_is_survived() {
    let mut net = Net::default_pair(5);
    let mut s = Session::establish(&mut net);
    s.run_for(&mut net, secs(1));
    net.set_filter(|_| Fate::Drop);
    s.run_for(&mut net, secs(17));
    net.deliver_all();
    // Long enough that the unanswered count must have been reset by the peer's packets.
    s.run_for(&mut net, secs(120));
    assert_eq!(s.closed_a, None);
    assert_eq!(s.closed_b, None);
    assert_eq!(net.a.state(s.alice()), Some(State::Established));
    net.a.send(s.alice(), b"still there").expect("send");
    s.run_for(&mut net, secs(1));
    assert_eq!(s.recv_b, [b"still there".to_vec()]);
    let pings_a = net.a.stats(s.alice()).expect("alive").pings_sent;
    assert!(pings_a >= 3, "Alice pinged through the outage ({pings_a})");
}

#[test]
fn at_most_four_ping_acks_are_owed_at_once() {
    let mut net = Net::default_pair(6);
    let s = Session::establish(&mut net);
    let (bob_id, _) = net.b.connection_ids(s.bob()).expect("alive");
    let mark = net.log.len();
    for ping_id in 1..=10 {
        let ping = rudp_common::emit(bob_id, Packet::Ping { ping_id });
        net.b.handle_datagram(net.now, ALICE, &ping);
    }
    net.flush();
    let acks: Vec<u64> = net
        .since(mark)
        .iter()
        .filter(|d| d.is(BOB, PacketType::PingAck))
        .filter_map(|d| match d.datagram()?.packet {
            Packet::PingAck { ping_id } => Some(ping_id),
            _ => None,
        })
        .collect();
    assert_eq!(acks, [1, 2, 3, 4], "the first four, echoed");
}
