//! Limits (docs/rudp.md, "Limits"): the peer's `max_message` on `send`, our `max_message`
//! and the message-length rule against a peer's DATA (codes 3 and 2), flow control when the
//! receiving application does not read, the send buffer, `Flushed`, and `max_connections`
//! for `connect`. On the hand-driven [`Net`] wire, 10 ms each way.

mod rudp_common;

use std::time::Duration;

use rudp_common::{ALICE, BOB, Fate, Net, Session, drain_events, emit};
use utp_proto::rudp::{
    CloseCode, CloseReason, Config, ConnectError, Event, MESSAGE_OVERHEAD, SendError,
};
use utp_proto::wire::rudp::{Packet, PacketType};

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn secs(v: u64) -> Duration {
    Duration::from_secs(v)
}

fn bob_config(f: impl FnOnce(&mut Config)) -> Config {
    let mut c = Config::default();
    f(&mut c);
    c
}

#[test]
fn send_refuses_a_message_above_the_peers_max_message() {
    let bob = bob_config(|c| {
        c.set_max_message(1000).expect("valid");
    });
    let mut net = Net::new(Config::default(), bob, 1);
    let mut s = Session::establish(&mut net);
    let (alice, bob) = (s.alice(), s.bob());
    assert_eq!(net.a.max_message(alice), 1000, "the peer's limit, not ours");
    assert_eq!(net.a.send(alice, &[0; 1001]), Err(SendError::TooLarge { len: 1001, max: 1000 }));
    net.a.send(alice, &[1; 1000]).expect("exactly max_message goes");
    // Bob may send Alice up to her max_message (16 MiB), less what his send buffer holds.
    assert_eq!(net.b.max_message(bob), (16 << 20) - MESSAGE_OVERHEAD);
    s.run_until(&mut net, 10_000, |s, _| !s.recv_b.is_empty());
    assert_eq!(s.recv_b, [vec![1; 1000]]);
    assert!(s.closed_b.is_none());

    // A message larger than the sender's own buffer is refused the same way.
    let mut small = Config::default();
    small.set_send_buffer(8192).expect("valid");
    let mut net = Net::new(small, Config::default(), 2);
    let s = Session::establish(&mut net);
    let max = 8192 - MESSAGE_OVERHEAD;
    assert_eq!(net.a.max_message(s.alice()), max);
    assert_eq!(
        net.a.send(s.alice(), &vec![0; max + 1]),
        Err(SendError::TooLarge { len: max + 1, max })
    );
    net.a.send(s.alice(), &vec![0; max]).expect("fits");
}

/// Injects a DATA into Bob as if Alice had sent it on their connection.
fn forge_data(net: &mut Net, s: &Session, pn: u64, message_len: u32, offset: u32, fragment: &[u8]) {
    let (bob_id, _) = net.b.connection_ids(s.bob()).expect("alive");
    let packet =
        Packet::Data { packet_number: pn, message_number: 0, message_len, offset, fragment };
    net.inject(ALICE, BOB, &emit(bob_id, packet));
}

/// Checks that Bob failed with `ours`, sent one CLOSE with `code` and the reason, and that
/// Alice saw it.
#[track_caller]
fn check_failed(net: &mut Net, s: &mut Session, ours: CloseReason, code: CloseCode, reason: &str) {
    s.run_until(net, 1000, |s, _| s.closed_a.is_some() && s.closed_b.is_some());
    assert_eq!(s.closed_b.clone().map(|c| c.1), Some(ours));
    let close = net.sent_of(BOB, PacketType::Close);
    assert_eq!(close[0].close(), Some((code, reason.into())));
    assert_eq!(
        s.closed_a.clone().map(|c| c.1),
        Some(CloseReason::Peer { code, reason: reason.into() })
    );
}

#[test]
fn a_data_announcing_more_than_our_max_message_closes_with_code_3() {
    let bob = bob_config(|c| {
        c.set_max_message(1000).expect("valid");
    });
    let mut net = Net::new(Config::default(), bob, 3);
    let mut s = Session::establish(&mut net);
    // Up to the limit is fine...
    forge_data(&mut net, &s, 0, 1000, 0, b"x");
    s.run_for(&mut net, ms(50));
    assert!(s.closed_b.is_none());
    // ...one byte more is not.
    forge_data(&mut net, &s, 1, 1001, 0, b"x");
    check_failed(
        &mut net,
        &mut s,
        CloseReason::LimitExceeded("message larger than max_message"),
        CloseCode::LimitExceeded,
        "message larger than max_message",
    );
}

#[test]
fn fragments_disagreeing_on_their_messages_length_close_with_code_2() {
    let mut net = Net::default_pair(4);
    let mut s = Session::establish(&mut net);
    forge_data(&mut net, &s, 0, 5000, 0, &[1; 100]);
    forge_data(&mut net, &s, 1, 5000, 100, &[2; 100]);
    assert!(s.closed_b.is_none(), "agreeing fragments are fine");
    forge_data(&mut net, &s, 2, 6000, 200, &[3; 100]);
    let why = "a message's fragments disagree on its length";
    check_failed(
        &mut net,
        &mut s,
        CloseReason::ProtocolViolation(why),
        CloseCode::ProtocolViolation,
        why,
    );
}

/// Alice sends `count` messages of `size` to a Bob whose application does not read for
/// `stall`; checks the bounds of flow control meanwhile, then Bob reads everything.
fn unread_receiver(size: usize, count: usize, limit: usize, max_message: u32, seed: u64) {
    let bob = bob_config(|c| {
        c.set_reassembly_memory(limit).expect("valid");
        c.set_max_message(max_message).expect("valid");
    });
    let mut net = Net::new(Config::default(), bob, seed);
    let mut s = Session::establish(&mut net);
    s.read_b = false;
    let (alice, bob) = (s.alice(), s.bob());
    let message = |i: usize| vec![(i % 251) as u8; size];
    let mut sent = 0;
    let bound = limit + max_message as usize + MESSAGE_OVERHEAD;
    let mut peak = 0;
    let packet = Config::default().fragment_size() + MESSAGE_OVERHEAD;
    let check = |n: &mut Net, sent: &mut usize, peak: &mut usize| {
        while *sent < count && n.a.writable(alice) >= size {
            n.a.send(alice, &message(*sent)).expect("send");
            *sent += 1;
        }
        // Unread messages are all the receiver holds here (the wire is in order, so
        // nothing is reassembled out of order).
        let memory = n.b.readable(bob) * (size + MESSAGE_OVERHEAD);
        assert!(memory <= bound, "receiver memory {memory} over {bound}");
        *peak = (*peak).max(memory);
        let a = n.a.stats(alice).expect("alive");
        assert!(
            a.in_flight <= limit.max(max_message as usize) + 2 * packet,
            "in flight {} beyond what the receiver can take",
            a.in_flight
        );
    };
    s.poll(&mut net);
    net.run_for_with(secs(10), |n| check(n, &mut sent, &mut peak));
    let stalled = net.a.stats(alice).expect("alive");
    assert!(s.recv_b.is_empty());
    assert!(stalled.peer_window < packet, "the window closed: {}", stalled.peer_window);
    assert!(
        net.b.stats(bob).expect("alive").messages_received < count as u64,
        "not everything fit"
    );
    // The sender has stopped: another 20 s brings only the odd window probe.
    net.run_for_with(secs(20), |n| check(n, &mut sent, &mut peak));
    let later = net.a.stats(alice).expect("alive");
    assert!(
        later.data_sent - stalled.data_sent <= 20,
        "{} DATA sent into a closed window in 20 s",
        later.data_sent - stalled.data_sent
    );
    assert!(s.closed_a.is_none() && s.closed_b.is_none(), "a closed window is not a failure");
    assert!(peak >= limit.min(size + MESSAGE_OVERHEAD), "the memory was used: {peak}");
    // The application reads: the window update goes at once, not with the next DATA...
    s.read_b = true;
    let (mark, read_at) = (net.log.len(), net.now);
    s.poll(&mut net);
    net.flush();
    assert!(
        net.since(mark).iter().any(|d| d.is(BOB, PacketType::DataAck) && d.at == read_at),
        "a DATA-ACK announces the opened window"
    );
    // ...and everything arrives, exactly once and in order.
    net.run_until(1_000_000, |n| {
        s.poll(n);
        check(n, &mut sent, &mut peak);
        s.recv_b.len() == count
    });
    net.run_for_with(secs(1), |n| check(n, &mut sent, &mut peak));
    s.poll(&mut net);
    assert_eq!(s.recv_b.len(), count, "nothing twice");
    for (i, m) in s.recv_b.iter().enumerate() {
        assert_eq!(m, &message(i), "message {i}");
    }
}

#[test]
fn an_unread_receiver_holds_at_most_its_memory_and_the_sender_stops() {
    unread_receiver(1000, 300, 16_384, 1 << 20, 5);
}

#[test]
fn the_next_message_gets_in_beyond_the_memory_limit_but_only_one() {
    // Each message is larger than the whole reassembly memory: the next one in order is
    // admitted anyway once everything delivered was read, so memory stays below the limit
    // plus one max_message.
    unread_receiver(100_000, 5, 16_384, 100_000, 6);
}

#[test]
fn a_full_send_buffer_blocks_then_becomes_writable() {
    let mut alice = Config::default();
    alice.set_send_buffer(8192).expect("valid");
    let mut net = Net::new(alice, Config::default(), 7);
    let mut s = Session::establish(&mut net);
    let h = s.alice();
    let cost = 1000 + MESSAGE_OVERHEAD;
    for i in 0..7u8 {
        net.a.send(h, &[i; 1000]).expect("fits");
    }
    assert_eq!(net.a.writable(h), 8192 - 7 * cost - MESSAGE_OVERHEAD);
    assert_eq!(net.a.send(h, &[7; 1000]), Err(SendError::Blocked));
    let room = net.a.writable(h);
    assert_eq!(net.a.send(h, &vec![7; room + 1]), Err(SendError::Blocked));
    net.a.send(h, &vec![7; room]).expect("what writable says fits");
    assert_eq!(net.a.send(h, b""), Err(SendError::Blocked), "even nothing costs its overhead");
    let blocked_at = net.now;
    s.run_until(&mut net, 10_000, |s, _| s.events_a.iter().any(|(_, e)| *e == Event::Writable(h)));
    let writable = s.events_a.iter().find(|(_, e)| *e == Event::Writable(h)).map(|(t, _)| *t);
    assert!(writable > Some(blocked_at), "after acknowledgements");
    net.a.send(h, &[8; 1000]).expect("room again");
    s.run_until(&mut net, 10_000, |s, _| s.recv_b.len() == 9);
    let expected: Vec<Vec<u8>> =
        (0..7u8).map(|i| vec![i; 1000]).chain([vec![7; room], vec![8; 1000]]).collect();
    assert_eq!(s.recv_b, expected);
}

#[test]
fn flushed_comes_once_everything_sent_is_acknowledged() {
    let mut net = Net::default_pair(8);
    let mut s = Session::establish(&mut net);
    let h = s.alice();
    assert!(net.a.is_flushed(h), "nothing sent yet");
    drain_events(&mut net.a);
    for i in 0..20u8 {
        net.a.send(h, &vec![i; 5000]).expect("send");
    }
    assert!(!net.a.is_flushed(h));
    let mut flushed_seen = None;
    net.run_until(10_000, |n| {
        s.poll(n);
        if let Some((t, _)) = s.events_a.iter().find(|(_, e)| *e == Event::Flushed(h)) {
            flushed_seen = Some(*t);
            assert!(n.a.is_flushed(h));
            return true;
        }
        assert!(!n.a.is_flushed(h), "is_flushed only with Event::Flushed");
        false
    });
    let at = flushed_seen.expect("flushed");
    assert_eq!(s.recv_b.len(), 20, "the peer holds everything");
    let last_ack = net
        .sent_of(BOB, PacketType::DataAck)
        .iter()
        .flat_map(|d| d.arrivals.iter().copied())
        .filter(|&t| t <= at)
        .max();
    assert_eq!(last_ack, Some(at), "flushed when the acknowledgement arrived");
    s.run_for(&mut net, secs(1));
    let flushed = s.events_a.iter().filter(|(_, e)| *e == Event::Flushed(h)).count();
    assert_eq!(flushed, 1, "once");
    // And again for the next batch.
    net.a.send(h, b"one more").expect("send");
    s.run_for(&mut net, secs(1));
    assert_eq!(s.events_a.iter().filter(|(_, e)| *e == Event::Flushed(h)).count(), 2);
}

#[test]
fn connect_is_refused_at_max_connections() {
    let mut alice = Config::default();
    alice.set_max_connections(2).expect("valid");
    let mut net = Net::new(alice, Config::default(), 9);
    let first = net.a.connect(net.now, 10).expect("first");
    net.a.connect(net.now, 11).expect("second");
    assert_eq!(net.a.connect(net.now, 12), Err(ConnectError::TooManyConnections));
    // A closed connection counts until it is forgotten.
    net.a.close(net.now, first, CloseCode::Normal, "").expect("close");
    assert_eq!(net.a.connect(net.now, 12), Err(ConnectError::TooManyConnections));
    net.run_for(secs(5));
    assert_eq!(net.a.connection_count(), 1);
    net.a.connect(net.now, 12).expect("room again");

    // Incoming connections waiting for accept count too.
    let mut bob = Config::default();
    bob.set_max_connections(2).expect("valid");
    let mut net = Net::new(Config::default(), bob, 10);
    net.b.connect(net.now, 20).expect("Bob's own");
    let mut s = Session::connect(&mut net);
    s.auto_accept = false;
    s.run_until(&mut net, 1000, |s, _| s.incoming_b() == 1);
    assert_eq!(net.b.pending_incoming(), 1);
    assert_eq!(net.b.connect(net.now, 21), Err(ConnectError::TooManyConnections));
}

#[test]
fn a_lost_window_update_is_recovered_by_the_senders_probe() {
    let bob = bob_config(|c| {
        c.set_reassembly_memory(16_384).expect("valid");
    });
    let mut net = Net::new(Config::default(), bob, 11);
    let mut s = Session::establish(&mut net);
    s.read_b = false;
    for i in 0..100u8 {
        net.a.send(s.alice(), &[i; 1000]).expect("send");
    }
    s.run_for(&mut net, secs(10));
    assert!(s.recv_b.is_empty());
    // The DATA-ACK that announces the reopened window is lost.
    let read_at = net.now;
    net.set_filter(move |d| {
        if d.is(BOB, PacketType::DataAck) && d.at == read_at { Fate::Drop } else { Fate::Deliver }
    });
    s.read_b = true;
    s.run_until(&mut net, 100_000, |s, _| s.recv_b.len() == 100);
    assert!(
        net.now - read_at <= Config::default().delivery_timeout() + secs(1),
        "resumed within a probe timeout: {:?}",
        net.now - read_at
    );
    assert!(net.sent_of(BOB, PacketType::DataAck).iter().any(|d| d.at == read_at), "it was sent");
    for (i, m) in s.recv_b.iter().enumerate() {
        assert_eq!(m, &[i as u8; 1000]);
    }
}

#[test]
fn an_empty_message_is_a_message() {
    let mut net = Net::default_pair(12);
    let mut s = Session::establish(&mut net);
    for m in [&b""[..], b"x", b"", b""] {
        net.a.send(s.alice(), m).expect("send");
    }
    s.run_until(&mut net, 1000, |s, _| s.recv_b.len() == 4);
    assert_eq!(s.recv_b, [vec![], b"x".to_vec(), vec![], vec![]]);
    s.run_for(&mut net, ms(100));
    assert_eq!(s.recv_b.len(), 4);
}

#[test]
fn a_stalled_receiver_is_flow_control_not_congestion() {
    // Bob's application does not read for 30 s. His window shuts once a message no longer
    // fits (not merely when no byte does), so Alice waits instead of sending fragments he
    // would drop; her probe timeouts meanwhile are zero-window probes, at most one per
    // delivery_timeout, and her congestion window is not collapsed by them.
    let bob = bob_config(|c| {
        c.set_reassembly_memory(16_384).expect("valid");
    });
    let mut net = Net::new(Config::default(), bob, 11);
    let mut s = Session::establish(&mut net);
    s.read_b = false;
    let (alice, bob) = (s.alice(), s.bob());
    let mut sent = 0;
    let mut feed = |n: &mut Net| {
        while sent < 300 && n.a.writable(alice) >= 1000 {
            n.a.send(alice, &[(sent % 251) as u8; 1000]).expect("send");
            sent += 1;
        }
    };
    net.run_for_with(secs(30), &mut feed);
    let a = net.a.stats(alice).expect("alive");
    let b = net.b.stats(bob).expect("alive");
    let min_window = 2 * (Config::default().fragment_size() + MESSAGE_OVERHEAD);
    assert!(a.cwnd > min_window, "the congestion window collapsed: {a:?}");
    let probes = 30 / Config::default().delivery_timeout().as_secs() + 3;
    assert!(b.dropped_memory <= probes, "{} fragments dropped for memory", b.dropped_memory);
    assert_eq!(a.peer_window, 0, "the window is shut while no message fits");
    s.read_b = true;
    net.run_until(1_000_000, |n| {
        s.poll(n);
        feed(n);
        s.recv_b.len() == 300
    });
    for (i, m) in s.recv_b.iter().enumerate() {
        assert_eq!(m, &vec![(i % 251) as u8; 1000], "message {i}");
    }
}
