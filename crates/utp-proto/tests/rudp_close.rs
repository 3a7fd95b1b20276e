//! Closing (docs/rudp.md, "Closing" and "Unknown connections"): the peer sees the code and
//! reason, nothing queued leaves after the CLOSE, delivered messages stay receivable, a lost
//! CLOSE still arrives (two unasked repeats, then the answer to the peer's next packet while
//! lingering, then code 5 once the id is forgotten), a restarted peer is noticed at the next
//! packet, answers to unknown connections are rate-limited, and `close` refuses what it
//! must. On the hand-driven [`Net`] wire, 10 ms each way.

mod rudp_common;

use std::time::Duration;

use rudp_common::{ALICE, BOB, Fate, Net, Sent, Session, drain_events, emit, secret};
use utp_proto::rudp::{
    CloseCode, CloseError, CloseReason, Config, Endpoint, RecvError, SendDirectError, SendError,
};
use utp_proto::wire::rudp::{Packet, PacketType};
use utp_proto::{Instant, Machine};

const MALLORY: u8 = 3;

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn secs(v: u64) -> Duration {
    Duration::from_secs(v)
}

/// The CLOSEs `from` sent, with their code and reason.
fn closes(net: &Net, from: u8) -> Vec<(Sent, CloseCode, String)> {
    net.sent_of(from, PacketType::Close)
        .into_iter()
        .map(|s| {
            let (code, reason) = s.close().expect("a CLOSE");
            (s.clone(), code, reason)
        })
        .collect()
}

fn code_of(s: &Sent) -> Option<CloseCode> {
    s.close().map(|c| c.0)
}

#[test]
fn the_peer_sees_the_code_and_reason_of_a_close_from_either_side() {
    let cases = [
        (ALICE, CloseCode::Application(42), "bye"),
        (BOB, CloseCode::Normal, "done"),
        (ALICE, CloseCode::Application(4), ""),
        (BOB, CloseCode::Application(65_535), "é — unicode is bytes"),
        (ALICE, CloseCode::LimitExceeded, "too many widgets"),
    ];
    for (seed, (closer, code, reason)) in cases.into_iter().enumerate() {
        let mut net = Net::default_pair(seed as u64);
        let mut s = Session::establish(&mut net);
        let (h, peer_recv) = if closer == ALICE {
            (s.alice(), net.b.connection_ids(s.bob()).expect("alive").0)
        } else {
            (s.bob(), net.a.connection_ids(s.alice()).expect("alive").0)
        };
        let now = net.now;
        net.ep(closer).close(now, h, code, reason).expect("close");
        s.run_until(&mut net, 1000, |s, _| s.closed_a.is_some() && s.closed_b.is_some());
        let (local, remote) = if closer == ALICE {
            (s.closed_a.clone(), s.closed_b.clone())
        } else {
            (s.closed_b.clone(), s.closed_a.clone())
        };
        assert_eq!(local, Some((now, CloseReason::Local { code })), "at once, locally");
        assert_eq!(
            remote,
            Some((now + ms(10), CloseReason::Peer { code, reason: reason.into() })),
            "the peer sees the code and the reason, one way later"
        );
        let close = &closes(&net, closer)[0];
        assert_eq!(close.0.dst_id(), Some(peer_recv), "a CLOSE names the peer's id");
        assert_eq!(close.0.len(), 14 + reason.len());
    }
}

#[test]
fn nothing_queued_is_sent_after_the_close() {
    let mut net = Net::default_pair(10);
    let mut s = Session::establish(&mut net);
    let alice = s.alice();
    for i in 0..200u32 {
        net.a.send(alice, &vec![i as u8; 10_000]).expect("send");
    }
    for _ in 0..50 {
        net.a.send_direct(alice, &[9; 500]).expect("send_direct");
    }
    s.run_for(&mut net, ms(45));
    let data_before = net.sent_of(ALICE, PacketType::Data).len();
    assert!(data_before > 0, "some DATA went before the close");
    net.a.close(net.now, alice, CloseCode::Normal, "enough").expect("close");
    assert_eq!(net.a.send(alice, b"more"), Err(SendError::Closed));
    assert_eq!(net.a.send_direct(alice, b"more"), Err(SendDirectError::Closed));
    s.run_for(&mut net, secs(30));
    let first_close = net.log.iter().position(|d| d.is(ALICE, PacketType::Close)).expect("a CLOSE");
    let after: Vec<_> = net.since(first_close).iter().filter(|d| d.from == ALICE).collect();
    assert!(
        after.iter().all(|d| d.kind == Some(PacketType::Close)),
        "only CLOSEs after the CLOSE\n{}",
        net.trace()
    );
    assert_eq!(net.sent_of(ALICE, PacketType::Data).len(), data_before);
    assert!(s.recv_b.len() < 200, "the queue was not flushed");
    for (i, m) in s.recv_b.iter().enumerate() {
        assert_eq!(m, &vec![i as u8; 10_000], "delivered in order, exactly once");
    }
    assert_eq!(
        s.closed_b.map(|c| c.1),
        Some(CloseReason::Peer { code: CloseCode::Normal, reason: "enough".into() })
    );
}

#[test]
fn messages_delivered_before_the_close_stay_receivable_until_drained() {
    let mut net = Net::default_pair(11);
    let mut s = Session::establish(&mut net);
    s.read_b = false;
    let (alice, bob) = (s.alice(), s.bob());
    for i in 0..5u8 {
        net.a.send(alice, &vec![i; 3000]).expect("send");
    }
    net.a.send_direct(alice, b"direct").expect("send_direct");
    s.run_until(&mut net, 10_000, |_, n| n.a.is_flushed(alice));
    net.a.close(net.now, alice, CloseCode::Normal, "done").expect("close");
    s.run_until(&mut net, 1000, |s, _| s.closed_b.is_some());
    // Long past close_linger: what was delivered is kept until it is read.
    s.run_for(&mut net, secs(60));
    assert_eq!(net.b.readable(bob), 5);
    for i in 0..5u8 {
        assert_eq!(net.b.recv(net.now, bob), Ok(vec![i; 3000]));
    }
    assert_eq!(net.b.recv_direct(net.now, bob), Ok(b"direct".to_vec()));
    assert_eq!(net.b.recv(net.now, bob), Err(RecvError::Closed));
    assert_eq!(net.b.recv_direct(net.now, bob), Err(RecvError::Closed));
    net.run_for(secs(1));
    assert_eq!(net.b.connection_count(), 0, "forgotten once read and past its linger");
    assert_eq!(net.b.recv(net.now, bob), Err(RecvError::Closed), "a stale handle");
}

/// Alice closes with `reason` while the wire loses her CLOSEs that `lose` picks; returns
/// the net and session once Bob's connection ended (or a minute passed).
fn lossy_close(
    reason: &'static str,
    lose: fn(&Sent) -> bool,
    seed: u64,
) -> (Net, Session, Instant) {
    let mut net = Net::default_pair(seed);
    let mut s = Session::establish(&mut net);
    s.run_for(&mut net, secs(1));
    net.set_filter(move |d| if lose(d) { Fate::Drop } else { Fate::Deliver });
    let closed_at = net.now;
    net.a.close(closed_at, s.alice(), CloseCode::Application(7), reason).expect("close");
    let deadline = net.now + secs(60);
    s.run_until(&mut net, 100_000, |s, n| s.closed_b.is_some() || n.now >= deadline);
    s.run_for(&mut net, secs(30));
    (net, s, closed_at)
}

#[test]
fn a_lost_close_arrives_with_one_of_the_two_unasked_repeats() {
    for lost in 1..=2usize {
        let lose = if lost == 1 {
            (|d: &Sent| d.is(ALICE, PacketType::Close) && d.nth < 1) as fn(&Sent) -> bool
        } else {
            |d: &Sent| d.is(ALICE, PacketType::Close) && d.nth < 2
        };
        let (net, s, closed_at) = lossy_close("bye", lose, 20 + lost as u64);
        let sent = closes(&net, ALICE);
        assert_eq!(sent.len(), 3, "the CLOSE and two repeats\n{}", net.trace());
        let interval = sent[1].0.at - sent[0].0.at;
        assert_eq!(sent[0].0.at, closed_at);
        assert_eq!(sent[2].0.at - sent[1].0.at, interval, "a probe timeout apart");
        assert!(interval > Duration::ZERO && interval <= secs(5));
        assert!(sent.iter().all(|c| c.1 == CloseCode::Application(7) && c.2 == "bye"));
        let (at, reason) = s.closed_b.expect("Bob learned of the close");
        assert_eq!(at, sent[lost].0.at + ms(10), "from repeat {lost}");
        assert_eq!(
            reason,
            CloseReason::Peer { code: CloseCode::Application(7), reason: "bye".into() }
        );
        assert!(closes(&net, BOB).is_empty(), "the side that received a CLOSE answers nothing");
    }
}

#[test]
fn a_lost_close_is_answered_at_the_peers_next_packet_while_lingering() {
    // The three unasked copies are lost; Bob's next packet (his ping, 5 s after he last
    // heard Alice) gets the CLOSE again: with its reason when it fits in as many bytes as
    // the ping had (18), without it otherwise.
    for (reason, expected) in [("bye", "bye"), ("a reason longer than a ping", "")] {
        let (net, s, closed_at) =
            lossy_close(reason, |d| d.is(ALICE, PacketType::Close) && d.nth < 3, 30);
        let sent = closes(&net, ALICE);
        assert_eq!(sent.len(), 4, "{}", net.trace());
        let answer = &sent[3].0;
        let ping = net.sent_of(BOB, PacketType::Ping);
        let ping = ping.iter().find(|p| p.at > closed_at).expect("Bob pinged");
        assert_eq!(answer.at, ping.at + ms(10), "answered on arrival");
        assert!(answer.at < closed_at + secs(10), "while lingering");
        assert!(answer.len() <= ping.len(), "never more bytes than the packet answered");
        assert_eq!(sent[3].2, expected);
        let (at, why) = s.closed_b.clone().expect("Bob learned of it");
        assert_eq!(at, answer.at + ms(10));
        assert_eq!(
            why,
            CloseReason::Peer { code: CloseCode::Application(7), reason: expected.into() }
        );
    }
}

#[test]
fn after_close_linger_the_peer_gets_code_5_naming_the_id_it_sends_to() {
    for linger in [secs(10), secs(3)] {
        let mut config = Config::default();
        config.set_close_linger(linger).expect("valid");
        let mut net = Net::new(config, Config::default(), 40);
        let mut s = Session::establish(&mut net);
        s.run_for(&mut net, secs(1));
        // Every CLOSE of Alice's connection is lost; her endpoint's code-5 answers are not.
        net.set_filter(|d| {
            if d.from == ALICE && code_of(d).is_some_and(|c| c != CloseCode::UnknownConnection) {
                Fate::Drop
            } else {
                Fate::Deliver
            }
        });
        let alice = s.alice();
        let (alice_recv, _) = net.a.connection_ids(alice).expect("alive");
        let closed_at = net.now;
        net.a.close(closed_at, alice, CloseCode::Normal, "gone").expect("close");
        s.run_for(&mut net, linger - ms(1));
        assert_eq!(net.a.connection_count(), 1, "the id is remembered for close_linger");
        s.run_for(&mut net, ms(1));
        assert_eq!(net.a.connection_count(), 0, "and forgotten exactly then");
        assert_eq!(s.closed_b, None, "Bob missed every copy");

        let sent_at = net.now;
        net.b.send(s.bob(), b"anyone there?").expect("send");
        s.run_until(&mut net, 1000, |s, _| s.closed_b.is_some());
        let (at, reason) = s.closed_b.clone().expect("closed");
        assert_eq!(
            reason,
            CloseReason::Peer { code: CloseCode::UnknownConnection, reason: String::new() }
        );
        assert_eq!(at, sent_at + ms(20), "one round trip after Bob's next packet");
        let answer: Vec<_> = closes(&net, ALICE)
            .into_iter()
            .filter(|c| c.1 == CloseCode::UnknownConnection)
            .collect();
        assert_eq!(answer.len(), 1);
        assert_eq!(answer[0].0.dst_id(), Some(alice_recv), "the unknown id, the one Bob sends to");
        assert_eq!(answer[0].0.len(), 14, "empty reason");
        assert_eq!(net.a.endpoint_stats().unknown_answers, 1);
        assert!(closes(&net, BOB).is_empty(), "code 5 is not answered");
    }
}

#[test]
fn a_restarted_peer_is_noticed_at_the_next_packet() {
    // Busy: Alice's next message meets a Bob who never heard of her.
    let mut net = Net::default_pair(50);
    let mut s = Session::establish(&mut net);
    let (_, bob_old_id) = net.a.connection_ids(s.alice()).expect("alive");
    net.b = Endpoint::new(Config::default().into(), secret(51));
    s.bob = None;
    let sent_at = net.now;
    net.a.send(s.alice(), b"hello?").expect("send");
    s.run_until(&mut net, 1000, |s, _| s.closed_a.is_some());
    let (at, reason) = s.closed_a.clone().expect("closed");
    assert_eq!(
        reason,
        CloseReason::Peer { code: CloseCode::UnknownConnection, reason: String::new() }
    );
    assert_eq!(at, sent_at + ms(20));
    let answer = closes(&net, BOB);
    assert_eq!(answer.len(), 1);
    assert_eq!(answer[0].0.dst_id(), Some(bob_old_id));
    assert_eq!(net.b.connection_count(), 0, "the answer keeps no state");
    assert_eq!(net.b.endpoint_stats().unknown_connection, 1);

    // Idle: noticed at the next ping, long before the ping timeout.
    let mut net = Net::default_pair(52);
    let mut s = Session::establish(&mut net);
    let heard = net.now;
    net.b = Endpoint::new(Config::default().into(), secret(53));
    s.bob = None;
    s.run_until(&mut net, 10_000, |s, _| s.closed_a.is_some());
    let (at, reason) = s.closed_a.clone().expect("closed");
    assert_eq!(reason.code(), Some(CloseCode::UnknownConnection));
    assert_eq!(at, heard + secs(5) + ms(20), "the first ping's round trip");
}

/// What Bob sent in answer to `bytes` from `from`.
fn answers(net: &mut Net, from: u8, bytes: &[u8]) -> Vec<Sent> {
    let mark = net.log.len();
    net.inject(from, BOB, bytes);
    net.since(mark).iter().filter(|d| d.from == BOB).cloned().collect()
}

#[test]
fn answers_to_unknown_connections_are_rate_limited() {
    let mut config = Config::default();
    config.set_answer_limit_entries(5).expect("valid");
    config.set_answer_limit_window(secs(2)).expect("valid");
    let mut net = Net::new(Config::default(), config, 60);
    let ping = |id: u64| emit(id, Packet::Ping { ping_id: 1 });
    // One answer per (address, id) per window...
    let first = answers(&mut net, MALLORY, &ping(1000));
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].close(), Some((CloseCode::UnknownConnection, String::new())));
    assert_eq!(first[0].dst_id(), Some(1000));
    assert_eq!(first[0].to, MALLORY);
    for _ in 0..9 {
        assert_eq!(answers(&mut net, MALLORY, &ping(1000)).len(), 0);
    }
    // ...the same id from another address is another key...
    assert_eq!(answers(&mut net, 4, &ping(1000)).len(), 1);
    // ...and at most answer_limit_entries in all per window.
    let mut answered = 0;
    for id in 2000..2010 {
        answered += answers(&mut net, MALLORY, &ping(id)).len();
    }
    assert_eq!(answered, 3, "5 in the window: 2 before, 3 now");
    let stats = net.b.endpoint_stats();
    assert_eq!(stats.unknown_connection, 21);
    assert_eq!(stats.unknown_answers, 5);
    assert_eq!(stats.unknown_answers_suppressed, 16);
    // After the window, answered again.
    net.run_for(secs(2));
    assert_eq!(answers(&mut net, MALLORY, &ping(1000)).len(), 1);
    assert_eq!(net.b.connection_count(), 0);
}

#[test]
fn the_default_answer_limit_is_1000_per_10_seconds() {
    let mut net = Net::default_pair(61);
    let mut answered = 0;
    for id in 1..=1500u64 {
        answered += answers(&mut net, MALLORY, &emit(id, Packet::Ping { ping_id: id })).len();
    }
    assert_eq!(answered, 1000);
    net.run_for(ms(9_999));
    assert_eq!(answers(&mut net, MALLORY, &emit(5000, Packet::Ping { ping_id: 0 })).len(), 0);
    net.run_for(ms(1));
    assert_eq!(answers(&mut net, MALLORY, &emit(5001, Packet::Ping { ping_id: 0 })).len(), 1);
}

#[test]
fn no_answer_to_datagrams_under_14_bytes_or_to_a_close() {
    let mut net = Net::default_pair(62);
    let mut id = 100;
    for len in 0..4usize {
        id += 1;
        let direct = emit(id, Packet::Direct { payload: &vec![0; len] });
        assert_eq!(direct.len(), 10 + len);
        assert_eq!(
            answers(&mut net, MALLORY, &direct).len(),
            0,
            "{} bytes: no answer",
            direct.len()
        );
    }
    assert_eq!(net.b.endpoint_stats().unknown_answers_suppressed, 4);
    let direct = emit(id + 1, Packet::Direct { payload: &[0; 4] });
    let answer = answers(&mut net, MALLORY, &direct);
    assert_eq!(answer.len(), 1, "14 bytes get the 14-byte answer");
    assert_eq!(answer[0].len(), 14);
    for (i, code) in [CloseCode::Normal, CloseCode::UnknownConnection, CloseCode::Application(9)]
        .into_iter()
        .enumerate()
    {
        let close = emit(500 + i as u64, Packet::Close { code, reason: "a long enough reason" });
        assert_eq!(answers(&mut net, MALLORY, &close).len(), 0, "a CLOSE is never answered");
    }
    let stats = net.b.endpoint_stats();
    assert_eq!(stats.unknown_connection, 8);
    assert_eq!(stats.unknown_answers, 1);
}

#[test]
fn close_refuses_long_reasons_reserved_codes_and_a_second_close() {
    let mut net = Net::default_pair(70);
    let mut s = Session::establish(&mut net);
    let (alice, now) = (s.alice(), net.now);
    assert_eq!(net.a.max_close_reason(alice), 512);
    let long = "x".repeat(513);
    assert_eq!(
        net.a.close(now, alice, CloseCode::Normal, &long),
        Err(CloseError::ReasonTooLong { len: 513, max: 512 })
    );
    for c in [0, 1, 2, 3, 5] {
        assert_eq!(
            net.a.close(now, alice, CloseCode::Application(c), "x"),
            Err(CloseError::ReservedCode(c)),
            "Application({c}) has its own variant"
        );
    }
    assert_eq!(
        net.a.close(now, alice, CloseCode::UnknownConnection, "x"),
        Err(CloseError::ReservedCode(5)),
        "only the endpoint says it has no such connection"
    );
    // Refusals leave the connection as it was.
    net.a.send(alice, b"still open").expect("send");
    s.run_until(&mut net, 1000, |s, _| s.recv_b.len() == 1);
    assert_eq!(net.sent_of(ALICE, PacketType::Close).len(), 0);

    net.a.close(net.now, alice, CloseCode::Application(6), &"y".repeat(512)).expect("512 is fine");
    assert_eq!(net.a.close(net.now, alice, CloseCode::Normal, ""), Err(CloseError::Closed));
    s.run_until(&mut net, 1000, |s, _| s.closed_b.is_some());
    assert_eq!(s.closed_b.clone().map(|c| c.1.code()), Some(Some(CloseCode::Application(6))));
    assert_eq!(net.b.close(net.now, s.bob(), CloseCode::Normal, ""), Err(CloseError::Closed));
    s.run_for(&mut net, secs(30));
    assert_eq!(
        net.a.close(net.now, alice, CloseCode::Normal, ""),
        Err(CloseError::Closed),
        "stale"
    );
    assert!(drain_events(&mut net.a).is_empty());

    // A small datagram size limits the reason to what fits.
    let mut small = Config::default();
    small.set_datagram_size(128).expect("valid");
    let mut net = Net::new(small, Config::default(), 71);
    let s = Session::establish(&mut net);
    let alice = s.alice();
    assert_eq!(net.a.max_close_reason(alice), 114);
    assert_eq!(
        net.a.close(net.now, alice, CloseCode::Normal, &"z".repeat(115)),
        Err(CloseError::ReasonTooLong { len: 115, max: 114 })
    );
    net.a.close(net.now, alice, CloseCode::Application(4), &"z".repeat(114)).expect("fits");
}

#[test]
fn crossing_closes_end_both_sides_without_an_answer_loop() {
    let mut net = Net::default_pair(80);
    let mut s = Session::establish(&mut net);
    let now = net.now;
    net.a.close(now, s.alice(), CloseCode::Application(10), "from alice").expect("close");
    net.b.close(now, s.bob(), CloseCode::Application(11), "from bob").expect("close");
    s.run_for(&mut net, secs(30));
    assert_eq!(
        s.closed_a.clone().map(|c| c.1),
        Some(CloseReason::Local { code: CloseCode::Application(10) })
    );
    assert_eq!(
        s.closed_b.clone().map(|c| c.1),
        Some(CloseReason::Local { code: CloseCode::Application(11) })
    );
    assert_eq!(closes(&net, ALICE).len(), 3, "the CLOSE and two repeats, no answers to CLOSEs");
    assert_eq!(closes(&net, BOB).len(), 3);
    assert_eq!(net.a.connection_count(), 0);
    assert_eq!(net.b.connection_count(), 0);
    assert_eq!(net.a.poll_timeout(), None);
}
