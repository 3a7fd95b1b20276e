//! The rudp handshake (docs/rudp.md, "Listener" and "Starter"): a stateless challenge for a
//! CONNECT without a valid cookie, never more bytes to an unproven address than it sent,
//! one `Incoming` per starter, accept and refuse, the listener's caps and timeout, a lost
//! CONNECT-ACK, and the starter's retransmission schedule and timeout. Everything runs on
//! the hand-driven [`Net`] wire (10 ms each way), with injected datagrams where a starter
//! is played by hand.

mod rudp_common;

use std::collections::BTreeMap;
use std::time::Duration;

use rudp_common::{ALICE, BOB, Fate, Net, Sent, Session, connect_bytes, drain_events, emit};
use utp_proto::rudp::{AcceptError, CloseCode, CloseReason, Config, Event, SendError, State};
use utp_proto::wire::rudp::{Datagram, Packet, PacketType};
use utp_proto::{Instant, Machine, Rng};

/// A starter played by hand (no endpoint at this address: what Bob sends it is only logged).
const MALLORY: u8 = 3;
const CAROL: u8 = 4;
const DAVE: u8 = 5;

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn at_ms(v: u64) -> Instant {
    Instant::from_millis(v)
}

/// What Bob sent (not injected) from log position `from` on.
fn bob_sent_since(net: &Net, from: usize) -> Vec<Sent> {
    net.since(from).iter().filter(|s| s.from == BOB && !s.injected).cloned().collect()
}

/// Injects `bytes` from `from` to Bob; returns what Bob sent in answer.
fn to_bob(net: &mut Net, from: u8, bytes: &[u8]) -> Vec<Sent> {
    let mark = net.log.len();
    net.inject(from, BOB, bytes);
    bob_sent_since(net, mark)
}

/// Asserts Bob holds nothing for anyone: no connection, no pending one, no timer, no event.
#[track_caller]
fn assert_no_state(net: &mut Net) {
    assert_eq!(net.b.connection_count(), 0, "no connection");
    assert_eq!(net.b.pending_incoming(), 0, "nothing pending");
    assert_eq!(net.b.poll_timeout(), None, "no timer");
    assert_eq!(drain_events(&mut net.b), [], "no event");
}

#[test]
fn a_cookieless_connect_gets_a_40_byte_challenge_and_no_state() {
    let mut net = Net::default_pair(1);
    let answer = to_bob(&mut net, MALLORY, &connect_bytes(0x1234, None));
    assert_eq!(answer.len(), 1, "one answer\n{}", net.trace());
    let challenge = &answer[0];
    assert_eq!(challenge.to, MALLORY);
    assert_eq!(challenge.len(), 40, "a challenge is 40 bytes");
    assert!(challenge.is_challenge(), "{challenge}");
    assert_eq!(challenge.dst_id(), Some(0x1234), "it names the starter's src_id");
    assert_no_state(&mut net);
    assert_eq!(net.b.endpoint_stats().challenges_sent, 1);

    // However many starters ask, nothing is kept.
    let mut rng = Rng::new(1);
    for i in 0..500u64 {
        let from = 10 + (i % 200) as u8;
        let answer = to_bob(&mut net, from, &connect_bytes(rng.next_u64() | 1, None));
        assert_eq!(answer.len(), 1);
        assert!(answer[0].is_challenge());
    }
    assert_no_state(&mut net);
    assert_eq!(net.b.endpoint_stats().challenges_sent, 501);

    // A CONNECT shorter than 64 bytes cannot be answered without amplification: dropped.
    let short = &connect_bytes(0x99, None)[..63];
    assert!(Datagram::parse(short).is_err());
    assert_eq!(to_bob(&mut net, MALLORY, short).len(), 0, "no answer to a short CONNECT");
    assert_eq!(net.b.endpoint_stats().malformed, 1);
    assert_no_state(&mut net);
}

/// Checks the anti-amplification rule over a log: until an address has had a CONNECT with
/// a valid cookie arrive at Bob, Bob sends it no more datagrams and no more bytes than
/// arrived from it, and none longer than the longest that arrived.
#[track_caller]
fn check_no_amplification(net: &Net, proven: &BTreeMap<u8, Instant>) {
    #[derive(Default)]
    struct Tally {
        received: usize,
        received_bytes: usize,
        longest: usize,
        sent: usize,
        sent_bytes: usize,
    }
    let mut tally: BTreeMap<u8, Tally> = BTreeMap::new();
    // Events in the order they happened on the wire: an arrival at Bob is ordered by its
    // arrival time, a send by Bob by its send time (and arrivals before sends at one instant:
    // Bob answers what came).
    let mut events: Vec<(Instant, u8, u64, bool, usize, u8)> = Vec::new();
    for s in &net.log {
        if s.to == BOB {
            for &t in &s.arrivals {
                events.push((t, 0, s.order, true, s.len(), s.from));
            }
        }
        if s.from == BOB && !s.injected {
            events.push((s.at, 1, s.order, false, s.len(), s.to));
        }
    }
    events.sort();
    for (t, _, _, arrival, len, addr) in events {
        if proven.get(&addr).is_some_and(|&p| t >= p) {
            continue;
        }
        let e = tally.entry(addr).or_default();
        if arrival {
            e.received += 1;
            e.received_bytes += len;
            e.longest = e.longest.max(len);
        } else {
            e.sent += 1;
            e.sent_bytes += len;
            assert!(
                e.sent <= e.received && e.sent_bytes <= e.received_bytes && len <= e.longest,
                "at {t}: Bob sent {} datagrams ({} bytes, this one {len}) to unproven address \
                 {addr}, which sent {} ({} bytes, the longest {})\n{}",
                e.sent,
                e.sent_bytes,
                e.received,
                e.received_bytes,
                e.longest,
                net.trace()
            );
        }
    }
}

/// When each address first had a CONNECT with a cookie arrive at Bob.
fn proven_addresses(net: &Net) -> BTreeMap<u8, Instant> {
    let mut proven = BTreeMap::new();
    for s in &net.log {
        if s.to == BOB && s.kind == Some(PacketType::Connect) && s.has_cookie() {
            // Only cookies Bob issued to this address are valid; the tests below echo
            // forged ones only from addresses that never get proven.
            if let Some(&t) = s.arrivals.first() {
                let p = proven.entry(s.from).or_insert(t);
                *p = (*p).min(t);
            }
        }
    }
    proven
}

#[test]
fn the_listener_never_amplifies_over_a_whole_handshake() {
    let mut net = Net::default_pair(2);
    // The first two challenges are lost, so Alice sends three cookieless CONNECTs.
    net.set_filter(|s| {
        if s.from == BOB && s.is_challenge() && s.nth < 2 { Fate::Drop } else { Fate::Deliver }
    });
    let mut s = Session::establish(&mut net);
    let alice = s.alice();
    net.a.send(alice, &vec![7; 50_000]).expect("send");
    net.b.send(s.bob(), &vec![8; 50_000]).expect("send");
    s.run_until(&mut net, 100_000, |s, _| s.recv_a.len() == 1 && s.recv_b.len() == 1);
    assert_eq!(
        net.sent_of(ALICE, PacketType::Connect).iter().filter(|c| !c.has_cookie()).count(),
        3
    );
    let challenges: Vec<_> = net.sent_by(BOB).into_iter().filter(|c| c.is_challenge()).collect();
    assert_eq!(challenges.len(), 3, "one challenge per cookieless CONNECT");
    check_no_amplification(&net, &proven_addresses(&net));
}

#[test]
fn the_listener_never_amplifies_under_a_spoofed_connect_flood() {
    let mut config = Config::default();
    config.set_max_pending(2).expect("valid");
    let mut net = Net::new(Config::default(), config, 3);
    let mut rng = Rng::new(3);
    // A genuine cookie for Mallory, to be replayed from elsewhere and with another id.
    let answer = to_bob(&mut net, MALLORY, &connect_bytes(77, None));
    let mallory_cookie = answer[0].cookie().expect("challenge");
    let mut expected_bad = 0;
    for i in 0..2000u32 {
        let from = 10 + (rng.below(200) as u8);
        let src_id = rng.next_u64() | 1;
        let truncate = i % 97 == 0;
        let mut bytes = match i % 6 {
            0 => connect_bytes(src_id, None),
            1 => {
                let mut forged = [0; 12];
                rng.fill(&mut forged);
                expected_bad += u64::from(!truncate);
                connect_bytes(src_id, Some(&forged))
            }
            2 => {
                expected_bad += u64::from(!truncate);
                connect_bytes(77, Some(&mallory_cookie)) // Mallory's cookie, from elsewhere
            }
            3 => {
                let mut long = connect_bytes(src_id, None);
                long.resize(64 + rng.below(1000) as usize, 0xee); // padding may be anything
                long
            }
            4 => connect_bytes(src_id, None)[..10 + rng.below(54) as usize].to_vec(),
            _ => {
                // Packets for connections that do not exist: answered with 14 bytes, or not.
                let id = rng.next_u64() | 1;
                match rng.below(3) {
                    0 => emit(id, Packet::Ping { ping_id: 1 }),
                    1 => emit(id, Packet::Direct { payload: &[0; 3] }), // 13 bytes: too short
                    _ => emit(id, Packet::Direct { payload: &[0; 4] }),
                }
            }
        };
        if truncate {
            bytes.truncate(63);
        }
        let answers = to_bob(&mut net, from, &bytes);
        assert!(answers.len() <= 1, "at most one answer per datagram");
        for a in &answers {
            assert_eq!(a.to, from, "answers go to the sender");
            assert!(
                a.len() <= bytes.len(),
                "answer of {} bytes to {} bytes: {a}",
                a.len(),
                bytes.len()
            );
            assert!(a.kind != Some(PacketType::Data));
        }
        assert_eq!(net.b.connection_count(), 0);
        assert_eq!(net.b.pending_incoming(), 0);
    }
    assert_eq!(drain_events(&mut net.b), []);
    assert_eq!(net.b.endpoint_stats().bad_cookies, expected_bad);
    check_no_amplification(&net, &BTreeMap::new());
}

#[test]
fn forged_or_expired_cookies_are_counted_and_challenged_again() {
    let mut net = Net::default_pair(4);
    let cookie = to_bob(&mut net, MALLORY, &connect_bytes(42, None))[0].cookie().expect("cookie");
    let other = to_bob(&mut net, MALLORY, &connect_bytes(43, None))[0].cookie().expect("cookie");
    let bad = |net: &Net| net.b.endpoint_stats().bad_cookies;

    let mut cases: Vec<(&str, u8, Vec<u8>)> = Vec::new();
    let mut tampered = cookie;
    tampered[11] ^= 1;
    cases.push(("a tampered hash", MALLORY, connect_bytes(42, Some(&tampered))));
    let mut refreshed = cookie;
    refreshed[3] ^= 1;
    cases.push(("a changed timestamp", MALLORY, connect_bytes(42, Some(&refreshed))));
    cases.push(("another address", CAROL, connect_bytes(42, Some(&cookie))));
    cases.push(("another src_id", MALLORY, connect_bytes(43, Some(&cookie))));
    for (n, (what, from, bytes)) in cases.into_iter().enumerate() {
        let answer = to_bob(&mut net, from, &bytes);
        assert_eq!(bad(&net), n as u64 + 1, "{what}: counted");
        assert_eq!(answer.len(), 1, "{what}: answered");
        assert!(answer[0].is_challenge(), "{what}: with a new challenge: {}", answer[0]);
        assert_eq!(answer[0].to, from);
        assert_no_state(&mut net);
    }

    // Within its lifetime (10 s) a genuine cookie is good (another starter's, issued at the
    // same time)...
    net.run_for(Duration::from_secs(9));
    let fresh = to_bob(&mut net, MALLORY, &connect_bytes(43, Some(&other)));
    assert_eq!(fresh.len(), 0, "a valid cookie is not answered until accept or refuse");
    assert_eq!(net.b.pending_incoming(), 1);
    let Some(Event::Incoming { peer: MALLORY, .. }) = net.b.poll_event() else {
        panic!("a valid cookie makes an Incoming")
    };
    // ...and after it, it is expired: counted, and a new challenge.
    net.run_for(Duration::from_secs(2));
    let before = bad(&net);
    let answer = to_bob(&mut net, MALLORY, &connect_bytes(42, Some(&cookie)));
    assert_eq!(bad(&net), before + 1, "an expired cookie is counted");
    assert_eq!(answer.len(), 1);
    let renewed = answer[0].cookie().expect("a new challenge");
    assert_ne!(renewed, cookie);
    assert_eq!(net.b.pending_incoming(), 1, "only the other starter's");
    // The new cookie works.
    assert_eq!(to_bob(&mut net, MALLORY, &connect_bytes(42, Some(&renewed))).len(), 0);
    assert_eq!(net.b.pending_incoming(), 2);
    assert_eq!(bad(&net), before + 1);
}

#[test]
fn a_valid_cookie_gives_one_incoming_however_often_the_connect_comes() {
    let mut net = Net::default_pair(5);
    let cookie = to_bob(&mut net, MALLORY, &connect_bytes(42, None))[0].cookie().expect("cookie");
    let connect = connect_bytes(42, Some(&cookie));
    for _ in 0..5 {
        assert_eq!(to_bob(&mut net, MALLORY, &connect).len(), 0, "nothing is sent while pending");
    }
    let events = drain_events(&mut net.b);
    assert_eq!(events.len(), 1, "{events:?}");
    let Event::Incoming { id, peer } = events[0] else { panic!("{events:?}") };
    assert_eq!(peer, MALLORY);
    assert_eq!(net.b.pending_incoming(), 1);
    assert_eq!(net.b.connection_count(), 0, "pending is not a connection yet");

    let bob = net.b.accept(net.now, id).expect("accept");
    assert_eq!(net.b.accept(net.now, id), Err(AcceptError::Unknown), "accepted once");
    net.flush();
    let accepts: Vec<_> =
        net.sent_to(MALLORY).into_iter().filter(|s| s.is_accept()).cloned().collect();
    assert_eq!(accepts.len(), 1);
    assert_eq!(accepts[0].len(), 28, "a CONNECT-ACK is 28 bytes");
    assert_eq!(accepts[0].dst_id(), Some(42));
    let (bob_recv, bob_remote) = net.b.connection_ids(bob).expect("alive");
    assert_eq!(bob_remote, 42);
    assert_eq!(
        accepts[0].datagram().map(|d| d.packet),
        Some(Packet::ConnectAck(utp_proto::wire::rudp::ConnectAck::Accepted {
            src_id: bob_recv,
            max_message: 16 << 20,
            window: 64 << 20,
        }))
    );

    // The same CONNECT again (its ACK was lost), with its cookie or without, or a stale
    // one: the CONNECT-ACK again, nothing new.
    let mut stale = cookie;
    stale[5] ^= 0xff;
    for bytes in [connect.clone(), connect_bytes(42, None), connect_bytes(42, Some(&stale))] {
        let answer = to_bob(&mut net, MALLORY, &bytes);
        assert_eq!(answer.len(), 1);
        assert!(answer[0].is_accept(), "resent CONNECT-ACK, not a challenge: {}", answer[0]);
        assert_eq!(answer[0].bytes, accepts[0].bytes);
    }
    assert_eq!(drain_events(&mut net.b), []);
    assert_eq!(net.b.connection_count(), 1);
    assert_eq!(net.b.pending_incoming(), 0);
    assert_eq!(net.b.endpoint_stats().bad_cookies, 0);
}

#[test]
fn duplicated_cookie_connects_on_a_real_handshake_give_one_incoming() {
    let mut net = Net::default_pair(6);
    net.set_filter(|s| {
        if s.from == ALICE && s.kind == Some(PacketType::Connect) {
            Fate::Duplicate(ms(3))
        } else {
            Fate::Deliver
        }
    });
    let mut s = Session::establish(&mut net);
    s.run_for(&mut net, ms(100));
    assert_eq!(s.incoming_b(), 1);
    assert_eq!(net.b.connection_count(), 1);
}

#[test]
fn accept_connects_the_starter_and_both_may_send() {
    let mut net = Net::default_pair(7);
    let mut s = Session::connect(&mut net);
    let alice = s.alice();
    assert_eq!(net.a.state(alice), Some(State::Connecting));
    assert_eq!(net.a.send(alice, b"early"), Err(SendError::NotConnected));
    s.run_until(&mut net, 1000, |s, _| s.connected_a().is_some());
    // CONNECT, challenge, CONNECT with the cookie, CONNECT-ACK: two round trips.
    assert_eq!(s.connected_a(), Some(at_ms(40)));
    let incoming = Session::times(&s.events_b, |e| matches!(e, Event::Incoming { .. }));
    assert_eq!(incoming, [at_ms(30)]);
    let kinds: Vec<(u8, usize, bool)> =
        net.log.iter().map(|s| (s.from, s.len(), s.has_cookie())).collect();
    assert_eq!(kinds, [(ALICE, 64, false), (BOB, 40, false), (ALICE, 64, true), (BOB, 28, false)]);
    assert_eq!(net.a.state(alice), Some(State::Established));
    let bob = s.bob();
    let (a_recv, a_remote) = net.a.connection_ids(alice).expect("alive");
    let (b_recv, b_remote) = net.b.connection_ids(bob).expect("alive");
    assert_eq!((a_recv, a_remote), (b_remote, b_recv), "each side sends to the other's id");
    assert_ne!(a_recv, 0);
    assert_ne!(b_recv, 0);

    net.a.send(alice, b"hello bob").expect("send");
    net.b.send(bob, b"hello alice").expect("send");
    s.run_until(&mut net, 1000, |s, _| !s.recv_a.is_empty() && !s.recv_b.is_empty());
    assert_eq!(s.recv_b, [b"hello bob".to_vec()]);
    assert_eq!(s.recv_a, [b"hello alice".to_vec()]);
}

#[test]
fn the_listener_may_send_at_once_after_accept() {
    let mut net = Net::default_pair(8);
    let mut s = Session::connect(&mut net);
    s.auto_accept = false;
    let mut bob = None;
    net.run_until(1000, |n| {
        s.poll(n);
        if let Some((_, Event::Incoming { id, .. })) = s.events_b.last().cloned() {
            if bob.is_none() {
                let h = n.b.accept(n.now, id).expect("accept");
                n.b.send(h, b"first").expect("the connection may send at once");
                bob = Some(h);
                s.bob = bob;
            }
        }
        !s.recv_a.is_empty()
    });
    assert_eq!(s.recv_a, [b"first".to_vec()]);
    let ack = net.sent_by(BOB).into_iter().position(|p| p.is_accept()).expect("accepted");
    let data = net.sent_by(BOB).into_iter().position(|p| p.kind == Some(PacketType::Data));
    assert!(data > Some(ack), "the CONNECT-ACK goes before the DATA");
}

#[test]
fn refuse_ends_the_starters_connection() {
    let mut net = Net::default_pair(9);
    let mut s = Session::connect(&mut net);
    s.auto_accept = false;
    let alice = s.alice();
    let mut refused = None;
    s.run_until(&mut net, 1000, |s, _| s.incoming_b() == 1);
    if let Some((_, Event::Incoming { id, .. })) = s.events_b.last() {
        refused = Some(*id);
        net.b.refuse(*id);
    }
    let id = refused.expect("an Incoming");
    let refused_at = net.now;
    s.run_until(&mut net, 1000, |s, _| s.closed_a.is_some());
    let (at, reason) = s.closed_a.clone().expect("closed");
    assert_eq!(
        reason,
        CloseReason::Peer { code: CloseCode::Normal, reason: "connection refused".into() }
    );
    assert_eq!(at, refused_at + ms(10), "one way after the refusal");
    let close = net.sent_of(BOB, PacketType::Close);
    assert_eq!(close.len(), 1);
    assert_eq!(close[0].dst_id(), Some(net.a.connection_ids(alice).map_or(0, |c| c.0)));
    assert!(close[0].len() <= 64);
    assert_eq!(net.b.accept(net.now, id), Err(AcceptError::Unknown));
    assert_eq!(net.b.connection_count(), 0);
    assert_eq!(net.b.pending_incoming(), 0);
    assert_eq!(net.b.endpoint_stats().incoming_refused, 1);
    assert_eq!(net.a.send(alice, b"x"), Err(SendError::Closed));
    // Nothing more comes of it: no further CONNECT, no further Incoming.
    let connects = net.sent_of(ALICE, PacketType::Connect).len();
    s.run_for(&mut net, Duration::from_secs(30));
    assert_eq!(net.sent_of(ALICE, PacketType::Connect).len(), connects);
    assert_eq!(s.incoming_b(), 1);
}

/// Carol and Dave besides Alice, all connecting to Bob, who accepts nobody on his own.
fn three_starters(bob: Config, seed: u64) -> (Net, Vec<(u8, utp_proto::rudp::ConnectionHandle)>) {
    let mut net = Net::new(Config::default(), bob, seed);
    net.add(CAROL, Config::default(), seed ^ 0xca);
    net.add(DAVE, Config::default(), seed ^ 0xda);
    let now = net.now;
    let mut handles = Vec::new();
    for addr in [ALICE, CAROL, DAVE] {
        handles.push((addr, net.ep(addr).connect(now, BOB).expect("connect")));
    }
    (net, handles)
}

/// Runs until every starter's connection is either connected or closed; returns, per
/// starter, what its connection reported.
fn outcomes(
    net: &mut Net,
    handles: &[(u8, utp_proto::rudp::ConnectionHandle)],
    bob_events: &mut Vec<Event<u8>>,
    duration: Duration,
) -> BTreeMap<u8, Vec<Event<u8>>> {
    let mut out: BTreeMap<u8, Vec<Event<u8>>> = BTreeMap::new();
    net.run_for_with(duration, |n| {
        bob_events.extend(drain_events(&mut n.b));
        for &(addr, _) in handles {
            let events = drain_events(n.ep(addr));
            out.entry(addr).or_default().extend(events);
        }
    });
    out
}

#[test]
fn max_pending_refuses_with_listener_busy() {
    let mut bob = Config::default();
    bob.set_max_pending(2).expect("valid");
    let (mut net, handles) = three_starters(bob, 10);
    let mut bob_events = Vec::new();
    let out = outcomes(&mut net, &handles, &mut bob_events, ms(200));
    let incoming: Vec<u8> = bob_events
        .iter()
        .filter_map(|e| match e {
            Event::Incoming { peer, .. } => Some(*peer),
            _ => None,
        })
        .collect();
    assert_eq!(incoming, [ALICE, CAROL], "the first two wait, in arrival order");
    assert_eq!(net.b.pending_incoming(), 2);
    let busy = CloseReason::Peer { code: CloseCode::LimitExceeded, reason: "listener busy".into() };
    assert_eq!(out[&DAVE], [Event::Closed { handle: handles[2].1, reason: busy.clone() }]);
    assert_eq!(out[&ALICE], [], "Alice still waits");
    assert_eq!(out[&CAROL], [], "Carol still waits");
    let close: Vec<_> =
        net.sent_by(BOB).into_iter().filter(|s| s.to == DAVE && s.close().is_some()).collect();
    assert_eq!(close.len(), 1);
    assert_eq!(close[0].close(), Some((CloseCode::LimitExceeded, "listener busy".into())));
    assert!(close[0].len() <= 64);
    assert_eq!(net.b.endpoint_stats().incoming_refused, 1);

    // Once one is accepted there is room again: Dave's second attempt waits too.
    let Event::Incoming { id, .. } = bob_events[0] else { unreachable!() };
    let now = net.now;
    net.b.accept(now, id).expect("accept");
    let dave = net.ep(DAVE).connect(now, BOB).expect("connect");
    let out = outcomes(&mut net, &[(DAVE, dave)], &mut bob_events, ms(200));
    assert_eq!(out[&DAVE], []);
    assert!(matches!(bob_events.last(), Some(Event::Incoming { peer: DAVE, .. })));
    assert_eq!(net.b.pending_incoming(), 2);
}

#[test]
fn max_connections_counts_connections_and_pending_ones() {
    let mut bob = Config::default();
    bob.set_max_connections(2).expect("valid");
    let (mut net, handles) = three_starters(bob, 11);
    let mut bob_events = Vec::new();
    // Alice's CONNECT with the cookie arrives first: accept it at once.
    let mut out: BTreeMap<u8, Vec<Event<u8>>> = BTreeMap::new();
    net.run_for_with(ms(200), |n| {
        for e in drain_events(&mut n.b) {
            if let Event::Incoming { id, peer: ALICE } = e {
                n.b.accept(n.now, id).expect("accept");
            }
            bob_events.push(e);
        }
        for &(addr, _) in &handles {
            let events = drain_events(n.ep(addr));
            out.entry(addr).or_default().extend(events);
        }
    });
    assert_eq!(net.b.connection_count(), 1, "Alice's");
    assert_eq!(net.b.pending_incoming(), 1, "Carol's");
    assert!(matches!(out[&ALICE][..], [Event::Connected(_)]));
    assert_eq!(out[&CAROL], []);
    let busy = CloseReason::Peer { code: CloseCode::LimitExceeded, reason: "listener busy".into() };
    assert_eq!(out[&DAVE], [Event::Closed { handle: handles[2].1, reason: busy }]);
    assert_eq!(net.b.connect(net.now, 99), Err(utp_proto::rudp::ConnectError::TooManyConnections));
}

#[test]
fn an_incoming_connection_not_accepted_in_time_is_refused() {
    let mut bob = Config::default();
    bob.set_incoming_timeout(ms(2500)).expect("valid");
    let mut net = Net::new(Config::default(), bob, 12);
    let mut s = Session::connect(&mut net);
    s.auto_accept = false;
    s.run_until(&mut net, 10_000, |s, _| s.closed_a.is_some());
    let incoming = Session::times(&s.events_b, |e| matches!(e, Event::Incoming { .. }));
    assert_eq!(incoming, [at_ms(30)], "one Incoming, when the cookie arrived");
    let close = net.sent_of(BOB, PacketType::Close);
    assert_eq!(close.len(), 1);
    assert_eq!(close[0].at, at_ms(30) + ms(2500), "sent exactly incoming_timeout later");
    assert_eq!(close[0].close(), Some((CloseCode::LimitExceeded, "not accepted in time".into())));
    let (at, reason) = s.closed_a.clone().expect("closed");
    assert_eq!(at, at_ms(2540));
    assert_eq!(
        reason,
        CloseReason::Peer { code: CloseCode::LimitExceeded, reason: "not accepted in time".into() }
    );
    let Some((_, Event::Incoming { id, .. })) = s.events_b.first().cloned() else { unreachable!() };
    assert_eq!(net.b.accept(net.now, id), Err(AcceptError::Unknown), "too late");
    assert_eq!(net.b.pending_incoming(), 0);
    assert_eq!(net.b.endpoint_stats().incoming_refused, 1);
    // The cookied CONNECT Alice repeated meanwhile did not make another Incoming.
    assert!(net.sent_of(ALICE, PacketType::Connect).iter().filter(|c| c.has_cookie()).count() >= 2);
    assert_eq!(s.incoming_b(), 1);
}

#[test]
fn a_lost_connect_ack_is_recovered_by_the_starters_retransmission() {
    let mut net = Net::default_pair(13);
    net.set_filter(|s| {
        if s.from == BOB && s.is_accept() && s.nth == 1 { Fate::Drop } else { Fate::Deliver }
    });
    let mut s = Session::connect(&mut net);
    s.auto_accept = false;
    s.run_until(&mut net, 10_000, |s, _| s.incoming_b() > 0);
    // Bob accepts and sends at once; his CONNECT-ACK is lost, his DATA arrives at a
    // starter still connecting.
    if let Some((_, Event::Incoming { id, .. })) = s.events_b.last().cloned() {
        let h = net.b.accept(net.now, id).expect("accept");
        net.b.send(h, b"sent before Alice knew").expect("send");
        s.bob = Some(h);
    }
    // The filter counts CONNECT-ACKs of both kinds: the challenge was the first.
    s.run_until(&mut net, 10_000, |s, _| s.recv_a.len() == 1);
    let accepts: Vec<_> = net.sent_by(BOB).into_iter().filter(|p| p.is_accept()).cloned().collect();
    assert_eq!(accepts.len(), 2, "the listener resent its CONNECT-ACK\n{}", net.trace());
    assert_eq!(accepts[0].fate, Fate::Drop);
    assert_eq!(accepts[0].bytes, accepts[1].bytes, "the same CONNECT-ACK");
    let connects = net.sent_of(ALICE, PacketType::Connect);
    let resent = connects.iter().find(|c| c.at > accepts[0].at).expect("Alice resent CONNECT");
    assert!(resent.has_cookie(), "with the cookie");
    assert!(resent.at >= at_ms(20) + ms(1000) && resent.at <= at_ms(20) + ms(2000), "{resent}");
    assert_eq!(accepts[1].at, resent.at + ms(10), "answered on arrival");
    assert_eq!(s.connected_a(), Some(accepts[1].at + ms(10)));
    assert_eq!(s.incoming_b(), 1);
    assert_eq!(s.recv_a, [b"sent before Alice knew".to_vec()], "exactly once");
    let early = net.a.stats(s.alice()).expect("alive").dropped_invalid;
    assert!(early >= 1, "the DATA that overtook the CONNECT-ACK was dropped and counted");
}

/// Alice connects to an address where nobody answers; returns when each CONNECT went, and
/// when and how the connection ended.
fn silent_listener(config: Config) -> (Vec<Instant>, Instant, CloseReason, Net) {
    let mut net = Net::new(config, Config::default(), 14);
    const NOBODY: u8 = 9;
    let alice = net.a.connect(net.now, NOBODY).expect("connect");
    let mut closed = None;
    net.run_until(10_000, |n| {
        for e in drain_events(&mut n.a) {
            if let Event::Closed { handle, reason } = e {
                assert_eq!(handle, alice);
                closed = Some((n.now, reason));
            }
        }
        closed.is_some()
    });
    let (at, reason) = closed.expect("closed");
    assert_eq!(net.a.send(alice, b"x"), Err(SendError::Closed));
    let sent = net.sent_by(ALICE);
    assert!(
        sent.iter()
            .all(|s| s.kind == Some(PacketType::Connect) && !s.has_cookie() && s.len() == 64)
    );
    (sent.iter().map(|s| s.at).collect(), at, reason, net)
}

#[test]
fn a_silent_listener_fails_the_handshake_at_handshake_timeout() {
    let (sent, at, reason, mut net) = silent_listener(Config::default());
    assert_eq!(reason, CloseReason::HandshakeTimeout);
    assert_eq!(reason.code(), None, "no CLOSE went over the wire");
    assert!(!reason.is_normal());
    assert_eq!(at, Instant::from_millis(10_000), "exactly handshake_timeout after connect");
    // initial_rto (1 s), doubling: 0, 1, 3, 7 s; nothing at the timeout itself (the
    // listener's id is unknown, so there is nobody to send a CLOSE to).
    assert_eq!(sent, [0, 1000, 3000, 7000].map(at_ms));
    net.run_for(Duration::from_secs(60));
    assert_eq!(net.sent_by(ALICE).len(), 4, "nothing after the failure");
}

#[test]
fn the_handshake_retransmission_schedule_doubles_from_initial_rto() {
    let mut config = Config::default();
    config.set_initial_rto(ms(150)).expect("valid");
    config.set_handshake_timeout(ms(3000)).expect("valid");
    let (sent, at, reason, _) = silent_listener(config);
    assert_eq!(reason, CloseReason::HandshakeTimeout);
    assert_eq!(at, at_ms(3000));
    let gaps: Vec<Duration> = sent.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps, [ms(150), ms(300), ms(600), ms(1200)], "sent at {sent:?}");
}

#[test]
fn an_endpoint_listens_and_connects_at_once() {
    // Bob both listens for Alice and connects to Carol.
    let mut net = Net::default_pair(15);
    net.add(CAROL, Config::default(), 16);
    let mut s = Session::connect(&mut net);
    let to_carol = net.b.connect(net.now, CAROL).expect("connect");
    let mut carol_in = None;
    let mut bob_connected = false;
    net.run_until(10_000, |n| {
        s.poll(n);
        for e in drain_events(n.ep(CAROL)) {
            if let Event::Incoming { id, peer: BOB } = e {
                let now = n.now;
                carol_in = Some(n.ep(CAROL).accept(now, id).expect("accept"));
            }
        }
        bob_connected |= s.events_b.iter().any(|(_, e)| *e == Event::Connected(to_carol));
        s.connected_a().is_some() && bob_connected && carol_in.is_some()
    });
    assert_eq!(net.b.connection_count(), 2);
}

#[test]
fn a_round_trip_is_sampled_only_when_no_connect_was_sent_twice() {
    let mut net = Net::default_pair(17);
    let s = Session::establish(&mut net);
    assert_eq!(net.a.stats(s.alice()).expect("alive").rtt, Some(ms(20)));

    // The first CONNECT is lost: the answer to the second could be the first's (Karn).
    let mut net = Net::default_pair(18);
    net.set_filter(|d| {
        if d.is(ALICE, PacketType::Connect) && d.nth == 0 { Fate::Drop } else { Fate::Deliver }
    });
    let s = Session::establish(&mut net);
    assert_eq!(net.sent_of(ALICE, PacketType::Connect).len(), 3);
    assert_eq!(net.a.stats(s.alice()).expect("alive").rtt, None);
}

#[test]
fn accepting_a_starter_that_gave_up_is_answered_with_code_5() {
    // Alice gives up at her handshake timeout while Bob still holds her CONNECT; when he
    // accepts later, her endpoint no longer knows the connection and says so.
    let mut bob = Config::default();
    bob.set_incoming_timeout(Duration::from_secs(30)).expect("valid");
    let mut net = Net::new(Config::default(), bob, 19);
    let mut s = Session::connect(&mut net);
    s.auto_accept = false;
    s.run_until(&mut net, 10_000, |s, _| s.closed_a.is_some());
    assert_eq!(s.closed_a.clone().map(|c| c.1), Some(CloseReason::HandshakeTimeout));
    s.run_for(&mut net, Duration::from_secs(2));
    assert_eq!(net.a.connection_count(), 0);
    let Some((_, Event::Incoming { id, .. })) = s.events_b.first().cloned() else {
        panic!("Bob got the CONNECT")
    };
    let accepted_at = net.now;
    s.bob = Some(net.b.accept(accepted_at, id).expect("still pending"));
    s.run_until(&mut net, 1000, |s, _| s.closed_b.is_some());
    let (at, reason) = s.closed_b.clone().expect("closed");
    assert_eq!(
        reason,
        CloseReason::Peer { code: CloseCode::UnknownConnection, reason: String::new() }
    );
    assert_eq!(at, accepted_at + ms(20), "one round trip after the CONNECT-ACK");
}

#[test]
fn a_refused_starters_connect_again_gets_the_refusal_again_not_a_new_incoming() {
    // Bob's refusal is lost: Alice's repeated CONNECT (with the same valid cookie) is
    // answered with the refusal again, and the application sees one Incoming, not two.
    let mut net = Net::default_pair(20);
    net.set_filter(|d| {
        if d.is(BOB, PacketType::Close) && d.nth == 0 { Fate::Drop } else { Fate::Deliver }
    });
    let mut s = Session::connect(&mut net);
    s.auto_accept = false;
    let mut refused = 0;
    net.run_until(10_000, |n| {
        s.poll(n);
        for e in &s.events_b[refused..] {
            if let (_, Event::Incoming { id, .. }) = e {
                n.b.refuse(*id);
            }
        }
        refused = s.events_b.len();
        s.closed_a.is_some()
    });
    assert_eq!(s.incoming_b(), 1, "one Incoming per starter\n{}", net.trace());
    assert_eq!(
        s.closed_a.clone().map(|c| c.1),
        Some(CloseReason::Peer { code: CloseCode::Normal, reason: "connection refused".into() })
    );
    let refusals = net.sent_of(BOB, PacketType::Close);
    assert_eq!(refusals.len(), 2, "the refusal, lost, and again for the repeated CONNECT");
    assert_eq!(refusals[0].bytes, refusals[1].bytes);
    assert_eq!(net.b.pending_incoming(), 0);

    // The same after incoming_timeout: a CONNECT repeated after the expiry gets the
    // expiry's CLOSE again.
    let mut bob = Config::default();
    bob.set_incoming_timeout(ms(500)).expect("valid");
    let mut net = Net::new(Config::default(), bob, 21);
    net.set_filter(|d| {
        if d.is(BOB, PacketType::Close) && d.nth == 0 { Fate::Drop } else { Fate::Deliver }
    });
    let mut s = Session::connect(&mut net);
    s.auto_accept = false;
    s.run_until(&mut net, 10_000, |s, _| s.closed_a.is_some());
    assert_eq!(s.incoming_b(), 1);
    assert_eq!(
        s.closed_a.clone().map(|c| c.1),
        Some(CloseReason::Peer {
            code: CloseCode::LimitExceeded,
            reason: "not accepted in time".into()
        })
    );
}

#[test]
fn answers_beyond_the_control_queue_are_dropped_and_counted() {
    // An endpoint whose driver never drains `poll_transmit` queues at most 1024 answers of
    // its own; the rest are dropped, and counted.
    let mut bob = utp_proto::rudp::Endpoint::<u8>::new(Config::default().into(), [9; 32]);
    let now = Instant::from_millis(1);
    for i in 0..1100u64 {
        bob.handle_datagram(now, ALICE, &connect_bytes(i + 1, None));
    }
    let stats = bob.endpoint_stats();
    assert_eq!(stats.challenges_sent, 1100);
    assert_eq!(stats.answers_dropped, 76);
    let mut buf = Vec::new();
    let mut sent = 0;
    while bob.poll_transmit(now, &mut buf).is_some() {
        sent += 1;
    }
    assert_eq!(sent, 1024);
}
