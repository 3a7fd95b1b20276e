//! The connect/accept handshake: libutp's numbering and connection ids on the wire, the
//! acceptor's "no DATA before the initiator's" rule and its Portal exception, and recovery
//! when each handshake packet is lost, duplicated or reordered. Everything runs on the
//! hand-driven [`Net`] wire (10 ms each way), so exactly the chosen datagram is affected.

mod utp_common;

use std::sync::Arc;
use std::time::Duration;

use utp_common::{ALICE, BOB, Ep, Fate, Net, Numbering, Session, check_numbering};
use utp_proto::utp::{
    Config, ConnectionError, Endpoint, Event, InitialSeq, Profile, State, SynAckSeq,
};
use utp_proto::wire::utp::{Packet, PacketType};
use utp_proto::{Instant, Machine};

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn secs(v: u64) -> Instant {
    Instant::from_millis(v * 1000)
}

/// Alice connects to Bob; Bob accepts every SYN; each side closes once it read the end.
fn start(net: &mut Net) -> Session {
    let mut s = Session::new(true, true);
    s.alice = Some(net.a.connect(net.now, BOB).expect("connect"));
    s
}

/// Alice writes `a` and shuts down, Bob writes `b` and shuts down right after he accepts;
/// runs until both closed and checks both directions arrived intact and closed cleanly.
/// Both FINs are sent before either side has read the other's, so neither close completes
/// before the peer's FIN arrived (the other order is tested, and currently ignored as an
/// engine bug, in `utp_portal_flows.rs` and `utp_reset_and_limits.rs`).
fn run_both_ways(net: &mut Net, s: &mut Session, a: &[u8], b: &[u8]) {
    let alice = s.alice.expect("alice");
    assert_eq!(net.a.write(alice, a), Ok(a.len()));
    net.a.shutdown(alice);
    let mut bob_wrote = false;
    let b = b.to_vec();
    net.run_until(10_000, |n| {
        s.poll(n);
        if let (Some(h), false) = (s.bob, bob_wrote) {
            bob_wrote = true;
            assert_eq!(n.b.write(h, &b), Ok(b.len()));
            n.b.shutdown(h);
        }
        s.closed_a.is_some() && s.closed_b.is_some()
    });
    assert_eq!(s.recv_b, a, "Bob got Alice's bytes\n{}", net.trace());
    assert_eq!(s.recv_a, b, "Alice got Bob's bytes\n{}", net.trace());
    assert_eq!(s.closed_a.map(|c| c.1), Some(Ok(())), "Alice closes cleanly\n{}", net.trace());
    assert_eq!(s.closed_b.map(|c| c.1), Some(Ok(())), "Bob closes cleanly\n{}", net.trace());
}

fn numbering(net: &Net, synack_consumes: bool) -> (u16, u16) {
    let syn = net.sent_of(ALICE, PacketType::Syn)[0].header;
    check_numbering(
        &net.log,
        Numbering { initiator: ALICE, acceptor: BOB, id: syn.connection_id, synack_consumes },
    )
}

#[test]
fn clean_handshake_uses_libutp_ids_and_numbers() {
    let mut net = Net::new(Config::default(), Config::default(), 1);
    let mut s = start(&mut net);
    let alice = s.alice.unwrap();
    assert_eq!(net.a.state(alice), Some(State::SynSent));
    let (a_recv, a_send) = net.a.connection_ids(alice).unwrap();
    assert_eq!(a_send, a_recv.wrapping_add(1), "initiator: send = recv + 1");

    run_both_ways(&mut net, &mut s, b"hello from alice", b"hello from bob");

    let syn = net.sent_of(ALICE, PacketType::Syn);
    assert_eq!(syn.len(), 1, "one SYN on a clean wire");
    assert_eq!(syn[0].header.connection_id, a_recv, "the SYN carries the initiator's recv id");
    assert_eq!(syn[0].header.ack_nr, 0);
    for p in net.sent_by(ALICE).iter().filter(|p| p.kind() != PacketType::Syn) {
        assert_eq!(
            p.header.connection_id, a_send,
            "initiator's later packets carry its send id: {p}"
        );
    }
    for p in net.sent_by(BOB) {
        assert_eq!(p.header.connection_id, a_recv, "acceptor sends with id = SYN's id: {p}");
    }
    let bob_ids = s.events_b.iter().find_map(|(_, e)| match e {
        Event::Incoming { connection_id, peer, .. } => Some((*peer, *connection_id)),
        _ => None,
    });
    assert_eq!(bob_ids, Some((ALICE, a_recv)), "Incoming names the peer and the SYN's id");

    let synack = net.sent_by(BOB)[0];
    assert_eq!(synack.kind(), PacketType::State, "the SYN-ACK is a STATE");
    assert_eq!(synack.header.ack_nr, syn[0].header.seq_nr, "SYN-ACK acknowledges the SYN");
    let bob_data = net.sent_of(BOB, PacketType::Data);
    assert_eq!(
        bob_data[0].header.seq_nr, synack.header.seq_nr,
        "libutp: the SYN-ACK consumes no seq_nr, the acceptor's first DATA has the same"
    );
    let alice_data = net.sent_of(ALICE, PacketType::Data);
    assert_eq!(alice_data[0].header.seq_nr, syn[0].header.seq_nr.wrapping_add(1));
    assert_eq!(
        alice_data[0].header.ack_nr,
        synack.header.seq_nr.wrapping_sub(1),
        "libutp: the initiator's ack_nr is the SYN-ACK's seq_nr - 1"
    );
    // libutp's acceptor stays in SYN_RECV until the initiator's first DATA arrives.
    let first_alice_data_arrival = alice_data[0].deliveries[0];
    assert!(
        bob_data.iter().all(|d| d.order > first_alice_data_arrival),
        "the acceptor sent DATA before the initiator's first DATA arrived\n{}",
        net.trace()
    );
    numbering(&net, false);
}

#[test]
fn acceptor_waits_for_the_initiators_data_by_default() {
    let mut net = Net::new(Config::default(), Config::default(), 2);
    let mut s = start(&mut net);
    s.run_until(&mut net, 100, |s, _| s.bob.is_some());
    let bob = s.bob.unwrap();
    let (a_recv, _) = net.a.connection_ids(s.alice.unwrap()).unwrap();
    assert_eq!(net.b.connection_ids(bob), Some((a_recv.wrapping_add(1), a_recv)), "acceptor ids");
    assert_eq!(net.b.state(bob), Some(State::SynRecv));
    assert_eq!(net.b.write(bob, b"eager"), Ok(5), "the write is queued");
    s.run_until(&mut net, 100, |s, _| s.connected_a().is_some());
    // Two seconds in which Alice connected but sent nothing: Bob must stay quiet.
    net.run_for(Duration::from_secs(2));
    s.poll(&mut net);
    assert!(net.sent_of(BOB, PacketType::Data).is_empty(), "{}", net.trace());
    assert_eq!(net.b.state(bob), Some(State::SynRecv));
    assert!(s.connected_b().is_none());
    // Alice's first DATA unlocks Bob.
    net.a.write(s.alice.unwrap(), b"!").unwrap();
    s.run_until(&mut net, 100, |s, _| s.recv_a == b"eager");
    assert_eq!(net.b.state(bob), Some(State::Connected));
    assert_eq!(s.recv_b, b"!");
    numbering(&net, false);
}

#[test]
fn acceptor_gives_up_after_handshake_timeout_when_the_initiator_never_writes() {
    let mut net = Net::new(Config::default(), Config::default(), 13);
    let mut s = start(&mut net);
    s.run_until(&mut net, 100, |s, _| s.bob.is_some());
    let accepted = net.now;
    net.b.write(s.bob.unwrap(), b"never sent").unwrap();
    s.run_until(&mut net, 1_000, |s, _| s.closed_b.is_some());
    assert_eq!(
        s.closed_b,
        Some((accepted + Duration::from_secs(30), Err(ConnectionError::TimedOut)))
    );
    assert!(net.sent_of(BOB, PacketType::Data).is_empty(), "{}", net.trace());
    // Alice's keepalive (29 s) reached Bob in SYN_RECV: a STATE does not finish the
    // handshake, only DATA does.
    let keepalive = net.sent_of(ALICE, PacketType::State);
    assert_eq!(keepalive.len(), 1, "{}", net.trace());
    assert_eq!(keepalive[0].at, secs(29), "29 s after her last packet, the SYN");
}

#[test]
fn portal_acceptor_sends_first() {
    let mut net = Net::new(Config::profile(Profile::Portal), Config::profile(Profile::Portal), 3);
    let mut s = start(&mut net);
    // The reader finishes its (empty) direction at once and the writer closes once it
    // read that FIN: utp_portal_flows.rs has the Portal order (writer closes first).
    net.a.shutdown(s.alice.unwrap());
    s.run_until(&mut net, 100, |s, _| s.bob.is_some());
    let bob = s.bob.unwrap();
    assert_eq!(net.b.state(bob), Some(State::Connected), "Portal: connected on the SYN");
    assert!(s.connected_b().is_some());
    net.b.write(bob, b"content").unwrap();
    s.run_until(&mut net, 1_000, |s, _| s.closed_a.is_some() && s.closed_b.is_some());
    assert_eq!(s.recv_a, b"content");
    assert!(net.sent_of(ALICE, PacketType::Data).is_empty(), "Alice never sent DATA");
    assert_eq!(net.sent_of(BOB, PacketType::Data).len(), 1);
    assert_eq!(s.closed_a.unwrap().1, Ok(()));
    assert_eq!(s.closed_b.unwrap().1, Ok(()));
    numbering(&net, false);
}

#[test]
fn syn_seq_is_random_by_default_and_one_with_initial_seq_one() {
    let mut one = Config::default();
    one.set_initial_seq(InitialSeq::One).unwrap();
    let mut random = Vec::new();
    for seed in 0..16 {
        for (config, out) in [(Config::default(), Some(&mut random)), (one.clone(), None)] {
            let mut ep: Ep = Endpoint::new(Arc::new(config), seed);
            let h = ep.connect(Instant::ZERO, BOB).unwrap();
            let mut buf = Vec::new();
            let t = ep.poll_transmit(Instant::ZERO, &mut buf).expect("the SYN");
            assert_eq!(t.destination, BOB);
            let p = Packet::parse(&buf[..t.size]).unwrap();
            let hd = p.header();
            assert_eq!(hd.packet_type, PacketType::Syn);
            assert_eq!(hd.connection_id, ep.connection_ids(h).unwrap().0);
            match out {
                Some(v) => v.push(hd.seq_nr),
                None => assert_eq!(hd.seq_nr, 1, "InitialSeq::One"),
            }
        }
    }
    random.sort_unstable();
    random.dedup();
    assert!(random.len() >= 14, "random SYN seq_nrs repeat too much: {random:?}");
}

#[test]
fn bep29_synack_numbering_consumes_the_synack_seq() {
    let mut c = Config::default();
    c.set_synack_seq(SynAckSeq::Bep29).unwrap();
    let mut net = Net::new(c.clone(), c, 4);
    let mut s = start(&mut net);
    run_both_ways(&mut net, &mut s, b"ping", b"pong");
    let synack = net.sent_by(BOB)[0].header;
    let bob_data = net.sent_of(BOB, PacketType::Data)[0].header;
    assert_eq!(bob_data.seq_nr, synack.seq_nr.wrapping_add(1), "BEP 29: first DATA is SYN-ACK + 1");
    let alice_data = net.sent_of(ALICE, PacketType::Data)[0].header;
    assert_eq!(alice_data.ack_nr, synack.seq_nr, "BEP 29: the initiator acknowledges the SYN-ACK");
    numbering(&net, true);
}

#[test]
fn lost_syn_is_retransmitted_after_the_initial_rto() {
    let mut net = Net::new(Config::default(), Config::default(), 5);
    net.set_filter(|p| {
        if p.is(ALICE, PacketType::Syn) && p.nth == 0 { Fate::Drop } else { Fate::Deliver }
    });
    let mut s = start(&mut net);
    run_both_ways(&mut net, &mut s, b"after a lost SYN", b"ok");
    let syns = net.sent_of(ALICE, PacketType::Syn);
    assert_eq!(syns.len(), 2, "{}", net.trace());
    assert_eq!(syns[1].at, secs(3), "resent after initial_rto (3 s)");
    assert_eq!(syns[0].header.seq_nr, syns[1].header.seq_nr);
    assert_eq!(s.incoming_b(), 1);
    assert_eq!(s.connected_a(), Some(secs(3) + ms(20)));
    numbering(&net, false);
}

#[test]
fn lost_synack_is_answered_again_on_the_retransmitted_syn() {
    let mut net = Net::new(Config::default(), Config::default(), 6);
    net.set_filter(|p| {
        if p.is(BOB, PacketType::State) && p.nth == 0 { Fate::Drop } else { Fate::Deliver }
    });
    let mut s = start(&mut net);
    run_both_ways(&mut net, &mut s, b"after a lost SYN-ACK", b"ok");
    let syns = net.sent_of(ALICE, PacketType::Syn);
    assert_eq!(syns.len(), 2, "{}", net.trace());
    assert_eq!(syns[1].at, secs(3));
    let states = net.sent_of(BOB, PacketType::State);
    assert_eq!(states[0].header.seq_nr, states[1].header.seq_nr, "the same SYN-ACK again");
    assert_eq!(states[1].header.ack_nr, syns[0].header.seq_nr);
    assert_eq!(s.incoming_b(), 1, "the retransmitted SYN is not a new connection");
    net.run_for(Duration::from_secs(4)); // time_wait
    assert_eq!(net.a.connection_count() + net.b.connection_count(), 0, "all forgotten");
    numbering(&net, false);
}

#[test]
fn lost_synack_without_resend_synack_fails_like_libutp() {
    let mut b = Config::default();
    b.set_resend_synack(false).unwrap();
    let mut net = Net::new(Config::default(), b, 7);
    net.set_filter(|p| {
        if p.is(BOB, PacketType::State) && p.nth == 0 { Fate::Drop } else { Fate::Deliver }
    });
    let mut s = start(&mut net);
    s.run_until(&mut net, 1_000, |s, _| s.closed_a.is_some());
    assert_eq!(s.closed_a, Some((secs(21), Err(ConnectionError::TimedOut))), "{}", net.trace());
    assert_eq!(net.sent_of(BOB, PacketType::State).len(), 1, "duplicate SYNs are ignored");
}

#[test]
fn lost_first_data_is_retransmitted_and_completes_the_handshake() {
    let mut net = Net::new(Config::default(), Config::default(), 8);
    net.set_filter(|p| {
        if p.is(ALICE, PacketType::Data) && p.nth == 0 { Fate::Drop } else { Fate::Deliver }
    });
    let mut s = start(&mut net);
    let alice = s.alice.unwrap();
    net.a.write(alice, b"first data, lost once").unwrap();
    s.run_until(&mut net, 1_000, |s, _| s.recv_b == b"first data, lost once");
    let data = net.sent_of(ALICE, PacketType::Data);
    assert_eq!(data.len(), 2, "{}", net.trace());
    assert_eq!(data[0].header.seq_nr, data[1].header.seq_nr, "the same DATA again");
    assert!(data[0].deliveries.is_empty() && data[1].deliveries.len() == 1);
    // Bob stayed in SYN_RECV until the retransmission arrived.
    let bob_connected = s.connected_b().expect("Bob connected");
    assert_eq!(bob_connected, data[1].at + ms(10), "{}", net.trace());
    assert!(net.sent_of(BOB, PacketType::Data).is_empty());
    net.a.shutdown(alice);
    let bob = s.bob.unwrap();
    net.b.write(bob, b"ok").unwrap();
    net.b.shutdown(bob);
    s.run_until(&mut net, 1_000, |s, _| s.closed_a.is_some() && s.closed_b.is_some());
    assert_eq!(s.recv_a, b"ok");
    assert_eq!(s.closed_a.unwrap().1, Ok(()));
    assert_eq!(s.closed_b.unwrap().1, Ok(()));
    numbering(&net, false);
}

#[test]
fn portal_lost_synack_after_early_data_recovers() {
    let mut net = Net::new(Config::profile(Profile::Portal), Config::profile(Profile::Portal), 9);
    net.set_filter(|p| {
        if p.is(BOB, PacketType::State) && p.nth == 0 { Fate::Drop } else { Fate::Deliver }
    });
    let mut s = start(&mut net);
    // The reader finishes its (empty) direction at once and the writer closes once it
    // read that FIN: utp_portal_flows.rs has the Portal order (writer closes first).
    net.a.shutdown(s.alice.unwrap());
    let content = utp_common::payload(3000, 9);
    let c = content.clone();
    let mut wrote = false;
    net.run_until(10_000, |n| {
        s.poll(n);
        if let (Some(h), false) = (s.bob, wrote) {
            wrote = true;
            assert_eq!(n.b.write(h, &c), Ok(c.len()));
        }
        s.closed_a.is_some() && s.closed_b.is_some()
    });
    assert_eq!(s.recv_a, content, "{}", net.trace());
    assert_eq!(s.closed_a.unwrap().1, Ok(()));
    assert_eq!(s.closed_b.unwrap().1, Ok(()));
    numbering(&net, false);
}

#[test]
fn duplicated_syn_makes_one_connection() {
    // The copy arrives together with the original (still waiting for accept) ...
    for delay in [Duration::ZERO, ms(5)] {
        let mut net = Net::new(Config::default(), Config::default(), 10);
        net.set_filter(move |p| {
            if p.is(ALICE, PacketType::Syn) { Fate::Duplicate(delay) } else { Fate::Deliver }
        });
        let mut s = start(&mut net);
        run_both_ways(&mut net, &mut s, b"dup syn", b"ok");
        assert_eq!(s.incoming_b(), 1, "one Incoming for a duplicated SYN (delay {delay:?})");
        assert_eq!(net.sent_of(ALICE, PacketType::Syn)[0].deliveries.len(), 2, "{}", net.trace());
        let states = net.sent_of(BOB, PacketType::State);
        if delay > Duration::ZERO {
            // ... or after Bob accepted: answered with the same SYN-ACK.
            assert_eq!(states[1].header.seq_nr, states[0].header.seq_nr, "{}", net.trace());
            assert_eq!(states[1].header.ack_nr, states[0].header.ack_nr);
        }
        numbering(&net, false);
    }
}

#[test]
fn portal_synack_and_first_data_reordered() {
    let mut net = Net::new(Config::profile(Profile::Portal), Config::profile(Profile::Portal), 11);
    // The SYN-ACK arrives 30 ms late, after the DATA sent right behind it.
    net.set_filter(|p| {
        if p.is(BOB, PacketType::State) && p.nth == 0 { Fate::Delay(ms(30)) } else { Fate::Deliver }
    });
    let mut s = start(&mut net);
    // The reader finishes its (empty) direction at once and the writer closes once it
    // read that FIN: utp_portal_flows.rs has the Portal order (writer closes first).
    net.a.shutdown(s.alice.unwrap());
    let mut wrote = false;
    net.run_until(10_000, |n| {
        s.poll(n);
        if let (Some(h), false) = (s.bob, wrote) {
            wrote = true;
            n.b.write(h, b"reordered").unwrap();
        }
        s.closed_a.is_some() && s.closed_b.is_some()
    });
    assert_eq!(s.recv_a, b"reordered", "{}", net.trace());
    let synack = net.sent_by(BOB)[0];
    let data = net.sent_of(BOB, PacketType::Data);
    assert!(data[0].deliveries[0] < synack.deliveries[0], "the DATA overtook the SYN-ACK");
    assert!(data.len() >= 2, "the DATA that overtook the SYN-ACK is resent");
    assert_eq!(s.closed_a.unwrap().1, Ok(()));
    assert_eq!(s.closed_b.unwrap().1, Ok(()));
    numbering(&net, false);
}

#[test]
fn connect_to_a_silent_peer_times_out_after_the_syn_retries() {
    let mut net = Net::new(Config::default(), Config::default(), 12);
    net.set_filter(|_| Fate::Drop);
    let mut s = start(&mut net);
    s.run_until(&mut net, 1_000, |s, _| s.closed_a.is_some());
    let syns = net.sent_of(ALICE, PacketType::Syn);
    let at: Vec<Instant> = syns.iter().map(|p| p.at).collect();
    // initial_rto 3 s, doubling, max_syn_retransmits 2: SYNs at 0, 3, 9; dead at 21 s.
    assert_eq!(at, [secs(0), secs(3), secs(9)], "{}", net.trace());
    assert_eq!(s.closed_a, Some((secs(21), Err(ConnectionError::TimedOut))));
    assert_eq!(net.a.state(s.alice.unwrap()), None, "forgotten after it failed");
    assert_eq!(net.a.connection_count(), 0);
    assert_eq!(net.a.poll_timeout(), None, "no timer left");
}
