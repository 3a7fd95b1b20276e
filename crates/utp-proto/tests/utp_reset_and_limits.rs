//! RESETs and limits: answers to strangers and their rate limit, RESET matching, the
//! connection and pending-SYN caps, `refuse`, spoofed acknowledgements, malformed
//! datagrams, and `reset` versus `close`. Runs on the hand-driven [`Net`] wire, with
//! packets injected where a stranger or a spoofer speaks.

mod utp_common;

use std::time::Duration;

use utp_common::{ALICE, BOB, Ep, Fate, Net, drain_events, header, packet_bytes};
use utp_proto::utp::{
    AcceptError, Config, ConnectError, ConnectionError, ConnectionHandle, Event, State,
};
use utp_proto::wire::utp::{Packet, PacketType};
use utp_proto::{Instant, Machine, Rng};

/// A peer nobody has a connection with.
const STRANGER: u8 = 3;

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// The `Closed` results among `events`, by handle.
fn closed(events: &[Event<u8>]) -> Vec<(ConnectionHandle, Result<(), ConnectionError>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Closed { handle, result } => Some((*handle, *result)),
            _ => None,
        })
        .collect()
}

/// Opens a connection from Alice to Bob and moves one byte each way, so both are
/// `Connected`; returns (Alice's handle, Bob's handle). Other events are discarded.
fn establish(net: &mut Net) -> (ConnectionHandle, ConnectionHandle) {
    let alice = net.a.connect(net.now, BOB).unwrap();
    let mut bob = None;
    net.run_until(100, |n| {
        for e in drain_events(&mut n.b) {
            if let Event::Incoming { id, .. } = e {
                bob = Some(n.b.accept(n.now, id).unwrap());
            }
        }
        bob.is_some()
    });
    let bob = bob.unwrap();
    net.a.write(alice, b"a").unwrap();
    net.run_until(100, |n| n.b.readable(bob) == 1);
    net.b.write(bob, b"b").unwrap();
    net.run_until(100, |n| n.a.readable(alice) == 1);
    let mut buf = [0u8; 8];
    assert_eq!(net.a.read(alice, &mut buf), Ok(1));
    assert_eq!(net.b.read(bob, &mut buf), Ok(1));
    net.run_for(ms(50));
    drain_events(&mut net.a);
    drain_events(&mut net.b);
    assert_eq!(net.a.state(alice), Some(State::Connected));
    assert_eq!(net.b.state(bob), Some(State::Connected));
    (alice, bob)
}

fn resets_to(net: &Net, to: u8) -> Vec<utp_proto::wire::utp::Header> {
    net.log
        .iter()
        .filter(|s| s.to == to && s.kind() == PacketType::Reset && !s.injected)
        .map(|s| s.header)
        .collect()
}

// ---- answers to strangers ------------------------------------------------------------

#[test]
fn data_state_and_fin_for_unknown_connections_get_a_reset() {
    let mut net = Net::new(Config::default(), Config::default(), 1);
    let strays = [
        (PacketType::Data, 500, 77, &b"x"[..]),
        (PacketType::State, 501, 78, &b""[..]),
        (PacketType::Fin, 502, 79, &b""[..]),
    ];
    for (kind, id, seq, body) in strays {
        net.inject(STRANGER, BOB, &packet_bytes(header(kind, id, seq, 5), body));
    }
    let resets = resets_to(&net, STRANGER);
    assert_eq!(resets.len(), 3, "{}", net.trace());
    for (r, (_, id, seq, _)) in resets.iter().zip(strays) {
        assert_eq!(r.connection_id, id, "RESET carries the stray packet's id");
        assert_eq!(r.ack_nr, seq, "RESET's ack_nr is the stray packet's seq_nr");
        assert_eq!(r.wnd_size, 0);
    }
    // Neither a RESET nor a SYN is answered with a RESET.
    net.inject(STRANGER, BOB, &packet_bytes(header(PacketType::Reset, 503, 80, 5), b""));
    net.inject(STRANGER, BOB, &packet_bytes(header(PacketType::Syn, 504, 81, 0), b""));
    assert_eq!(resets_to(&net, STRANGER).len(), 3);
    let stats = net.b.endpoint_stats();
    assert_eq!(stats.unknown_connection, 4, "three strays and the RESET");
    assert_eq!(stats.resets_sent, 3);
    assert_eq!(stats.resets_suppressed, 0);
    assert_eq!(net.b.pending_incoming(), 1, "the SYN waits for the application");
}

#[test]
fn a_repeated_stray_packet_gets_one_reset_per_window() {
    let mut net = Net::new(Config::default(), Config::default(), 2);
    let stray = packet_bytes(header(PacketType::Data, 600, 1234, 9), b"stray");
    for _ in 0..100 {
        net.inject(STRANGER, BOB, &stray);
        net.run_for(ms(50)); // 100 packets over 5 s
    }
    assert_eq!(resets_to(&net, STRANGER).len(), 1, "{}", net.trace());
    let stats = net.b.endpoint_stats();
    assert_eq!((stats.resets_sent, stats.resets_suppressed), (1, 99));
    // Another packet (another seq_nr) is answered at once.
    net.inject(STRANGER, BOB, &packet_bytes(header(PacketType::Data, 600, 1235, 9), b"s"));
    assert_eq!(net.b.endpoint_stats().resets_sent, 2);
    // Once 10 s have passed since the first RESET, the first stray packet gets another.
    assert_eq!(net.now, Instant::from_millis(5000));
    net.run_for(ms(4999));
    net.inject(STRANGER, BOB, &stray);
    assert_eq!(net.b.endpoint_stats().resets_sent, 2, "still inside the window at {:?}", net.now);
    net.run_for(ms(1));
    net.inject(STRANGER, BOB, &stray);
    assert_eq!(net.b.endpoint_stats().resets_sent, 3, "the window ended at {:?}", net.now);
    assert_eq!(net.b.endpoint_stats().resets_suppressed, 100);
}

#[test]
fn reset_limit_entries_caps_the_table() {
    for entries in [0, 5] {
        let mut config = Config::default();
        config.set_reset_limit_entries(entries).unwrap();
        let mut net = Net::new(Config::default(), config, 3);
        for i in 0..10 {
            let stray = packet_bytes(header(PacketType::Data, 700 + i, 1, 1), b"x");
            net.inject(STRANGER, BOB, &stray);
        }
        let stats = net.b.endpoint_stats();
        assert_eq!(stats.resets_sent, entries as u64);
        assert_eq!(stats.resets_suppressed, 10 - entries as u64);
        assert_eq!(resets_to(&net, STRANGER).len(), entries);
        // When the window has passed, the table has room again.
        net.run_for(Duration::from_secs(10));
        net.inject(STRANGER, BOB, &packet_bytes(header(PacketType::Data, 800, 1, 1), b"x"));
        assert_eq!(net.b.endpoint_stats().resets_sent, entries as u64 + u64::from(entries > 0));
    }
}

// ---- RESET matching ------------------------------------------------------------------

#[test]
fn reset_matching_closes_the_right_connection() {
    let mut net = Net::new(Config::default(), Config::default(), 4);
    let (a1, b1) = establish(&mut net);
    let (a2, b2) = establish(&mut net);
    let (a3, b3) = establish(&mut net);
    let (a1_recv, a1_send) = net.a.connection_ids(a1).unwrap();
    let (_, a2_send) = net.a.connection_ids(a2).unwrap();
    let (_, b3_send) = net.b.connection_ids(b3).unwrap();
    let (b1_recv, b1_send) = net.b.connection_ids(b1).unwrap();
    assert_eq!((b1_recv, b1_send), (a1_send, a1_recv));
    let reset = |id: u16| packet_bytes(header(PacketType::Reset, id, 1, 1), b"");

    // From the wrong peer, or with an unrelated id: nothing happens.
    net.inject(STRANGER, ALICE, &reset(a1_recv));
    net.inject(BOB, ALICE, &reset(a1_recv.wrapping_add(1000)));
    assert!(drain_events(&mut net.a).is_empty());
    assert_eq!(net.a.endpoint_stats().unknown_connection, 2);

    // The initiator's receive id (what libutp's peers send): connection 1 only.
    net.inject(BOB, ALICE, &reset(a1_recv));
    assert_eq!(closed(&drain_events(&mut net.a)), [(a1, Err(ConnectionError::Reset))]);
    // The initiator's send id (id - 1 is its receive id): connection 2 only.
    net.inject(BOB, ALICE, &reset(a2_send));
    assert_eq!(closed(&drain_events(&mut net.a)), [(a2, Err(ConnectionError::Reset))]);
    assert_eq!(net.a.state(a3), Some(State::Connected));

    // The acceptor's send id (= the SYN's id; id + 1 is its receive id): connection 3.
    net.inject(ALICE, BOB, &reset(b3_send));
    assert_eq!(closed(&drain_events(&mut net.b)), [(b3, Err(ConnectionError::Reset))]);
    // The acceptor's receive id: connection 2.
    let (b2_recv, _) = net.b.connection_ids(b2).unwrap();
    net.inject(ALICE, BOB, &reset(b2_recv));
    assert_eq!(closed(&drain_events(&mut net.b)), [(b2, Err(ConnectionError::Reset))]);
    assert_eq!(net.b.state(b1), Some(State::Connected), "the others are untouched");
    assert_eq!(net.a.state(a3), Some(State::Connected));
    assert!(
        net.log.iter().all(|s| s.injected || s.kind() != PacketType::Reset),
        "no RESET answers a RESET"
    );
}

#[test]
fn reset_in_syn_sent_is_refused() {
    let mut net = Net::new(Config::default(), Config::default(), 5);
    net.set_filter(|_| Fate::Drop); // Bob never hears the SYNs
    let h1 = net.a.connect(net.now, BOB).unwrap();
    let h2 = net.a.connect(net.now, BOB).unwrap();
    net.flush();
    let (r1, _) = net.a.connection_ids(h1).unwrap();
    let (_, s2) = net.a.connection_ids(h2).unwrap();
    net.inject(BOB, ALICE, &packet_bytes(header(PacketType::Reset, r1, 9, 9), b""));
    net.inject(BOB, ALICE, &packet_bytes(header(PacketType::Reset, s2, 9, 9), b""));
    assert_eq!(
        closed(&drain_events(&mut net.a)),
        [(h1, Err(ConnectionError::Refused)), (h2, Err(ConnectionError::Refused))]
    );
    assert_eq!(net.a.connection_count(), 0);
}

// ---- caps ----------------------------------------------------------------------------

#[test]
fn syns_beyond_max_connections_are_refused() {
    let mut config = Config::default();
    config.set_max_connections(2).unwrap();
    let mut net = Net::new(Config::default(), config, 6);
    let (a1, _) = establish(&mut net);
    let (a2, _) = establish(&mut net);
    let a3 = net.a.connect(net.now, BOB).unwrap();
    let mut events = Vec::new();
    net.run_until(100, |n| {
        events.extend(drain_events(&mut n.a));
        !closed(&events).is_empty()
    });
    assert_eq!(closed(&events), [(a3, Err(ConnectionError::Refused))]);
    let syn = net.log.iter().find(|s| s.is(ALICE, PacketType::Syn) && s.nth == 2).unwrap();
    let resets = resets_to(&net, ALICE);
    assert_eq!(resets.len(), 1, "{}", net.trace());
    assert_eq!(
        (resets[0].connection_id, resets[0].ack_nr),
        (syn.header.connection_id, syn.header.seq_nr)
    );
    assert_eq!(net.a.state(a3), None, "refused and forgotten");
    assert!(drain_events(&mut net.b).is_empty(), "no Incoming for a refused SYN");
    assert_eq!(net.b.endpoint_stats().incoming_refused, 1);
    assert_eq!(net.a.state(a1), Some(State::Connected));
    assert_eq!(net.a.state(a2), Some(State::Connected));
}

#[test]
fn accept_at_max_connections_fails_and_the_syn_can_still_be_refused() {
    let mut config = Config::default();
    config.set_max_connections(1).unwrap();
    let mut net = Net::new(Config::default(), config, 7);
    let h1 = net.a.connect(net.now, BOB).unwrap();
    let h2 = net.a.connect(net.now, BOB).unwrap();
    net.run_for(ms(15));
    let ids: Vec<_> = drain_events(&mut net.b)
        .into_iter()
        .filter_map(|e| match e {
            Event::Incoming { id, .. } => Some(id),
            _ => None,
        })
        .collect();
    assert_eq!(ids.len(), 2, "both SYNs wait (pending SYNs are not connections)");
    net.b.accept(net.now, ids[0]).unwrap();
    assert_eq!(net.b.accept(net.now, ids[1]), Err(AcceptError::TooManyConnections));
    assert_eq!(net.b.pending_incoming(), 1, "still pending after the failed accept");
    net.b.refuse(net.now, ids[1]);
    assert_eq!(net.b.accept(net.now, ids[1]), Err(AcceptError::Unknown));
    net.run_for(ms(30));
    assert_eq!(closed(&drain_events(&mut net.a)), [(h2, Err(ConnectionError::Refused))]);
    assert_eq!(net.a.state(h1), Some(State::Connected));
}

#[test]
fn syns_beyond_max_pending_incoming_are_refused() {
    let mut config = Config::default();
    config.set_max_pending_incoming(2).unwrap();
    let mut net = Net::new(Config::default(), config, 8);
    let hs: Vec<_> = (0..3).map(|_| net.a.connect(net.now, BOB).unwrap()).collect();
    let (third, _) = net.a.connection_ids(hs[2]).unwrap();
    net.run_for(ms(25));
    assert_eq!(net.b.pending_incoming(), 2);
    let incoming = drain_events(&mut net.b);
    assert_eq!(incoming.len(), 2, "{incoming:?}");
    assert_eq!(net.b.endpoint_stats().incoming_refused, 1);
    let resets = resets_to(&net, ALICE);
    assert_eq!(resets.len(), 1);
    assert_eq!(resets[0].connection_id, third);
    assert_eq!(closed(&drain_events(&mut net.a)), [(hs[2], Err(ConnectionError::Refused))]);
}

#[test]
fn connect_and_accept_with_id_fail_at_max_connections() {
    let mut config = Config::default();
    config.set_max_connections(1).unwrap();
    let mut net = Net::new(config, Config::default(), 9);
    let now = net.now;
    let h = net.a.connect(now, BOB).unwrap();
    assert_eq!(net.a.connect(now, BOB), Err(ConnectError::TooManyConnections));
    assert_eq!(net.a.connect_with_id(now, BOB, 5), Err(ConnectError::TooManyConnections));
    assert_eq!(net.a.accept_with_id(now, BOB, 5), Err(ConnectError::TooManyConnections));
    // Once the first is gone there is room again.
    net.a.reset(now, h);
    net.flush();
    assert_eq!(net.a.connection_count(), 0);
    assert!(net.a.connect(net.now, BOB).is_ok());
}

#[test]
fn refuse_sends_a_reset_and_the_initiator_sees_refused() {
    let mut net = Net::new(Config::default(), Config::default(), 10);
    let h = net.a.connect(net.now, BOB).unwrap();
    net.run_for(ms(15));
    let Some(Event::Incoming { id, .. }) = net.b.poll_event() else { panic!("no Incoming") };
    net.b.refuse(net.now, id);
    net.b.refuse(net.now, id); // unknown by now: ignored
    net.run_for(ms(15));
    let syn = net.sent_of(ALICE, PacketType::Syn)[0].header;
    let resets = resets_to(&net, ALICE);
    assert_eq!(resets.len(), 1);
    assert_eq!((resets[0].connection_id, resets[0].ack_nr), (syn.connection_id, syn.seq_nr));
    assert_eq!(closed(&drain_events(&mut net.a)), [(h, Err(ConnectionError::Refused))]);
    assert_eq!(net.b.endpoint_stats().incoming_refused, 1);
    assert_eq!(net.b.accept(net.now, id), Err(AcceptError::Unknown));
    assert_eq!(net.b.connection_count(), 0);
}

// ---- spoofed acknowledgements --------------------------------------------------------

#[test]
fn packets_with_ack_nr_ahead_or_far_behind_are_ignored() {
    let mut net = Net::new(Config::default(), Config::default(), 11);
    let (alice, bob) = establish(&mut net);
    let (alice_recv, _) = net.a.connection_ids(alice).unwrap();
    // Alice's next seq_nr (her last STATE carries it) and Bob's next DATA number.
    let alice_next = net.sent_of(ALICE, PacketType::State).last().unwrap().header.seq_nr;
    let bob_next = net.sent_of(BOB, PacketType::Data).last().unwrap().header.seq_nr.wrapping_add(1);
    let last_sent = alice_next.wrapping_sub(1);
    let before = net.a.stats(alice).unwrap();
    let log_len = net.log.len();
    let spoof =
        |ack: u16| packet_bytes(header(PacketType::Data, alice_recv, bob_next, ack), b"spoof");
    for (i, ack) in [
        alice_next,                    // acknowledges a packet never sent
        alice_next.wrapping_add(1000), // far ahead
        last_sent.wrapping_sub(4),     // behind by more than in flight (0) + 3
        last_sent.wrapping_sub(30000),
    ]
    .into_iter()
    .enumerate()
    {
        net.inject(BOB, ALICE, &spoof(ack));
        let stats = net.a.stats(alice).unwrap();
        assert_eq!(stats.dropped_invalid, before.dropped_invalid + i as u64 + 1, "ack_nr {ack}");
        assert_eq!(net.a.readable(alice), 0, "spoofed data delivered (ack_nr {ack})");
    }
    assert_eq!(net.a.stats(alice).unwrap().packets_received, before.packets_received);
    assert!(drain_events(&mut net.a).is_empty());
    assert!(
        net.log[log_len..].iter().all(|p| p.injected),
        "Alice answered a spoofed packet\n{}",
        net.trace()
    );
    // The connection is unaffected: Bob's real data with the same seq_nr arrives.
    net.b.write(bob, b"real").unwrap();
    net.run_until(100, |n| n.a.readable(alice) == 4);
    let mut buf = [0u8; 16];
    assert_eq!(net.a.read(alice, &mut buf), Ok(4));
    assert_eq!(&buf[..4], b"real");
    // The edge of the window is accepted (libutp: in flight + 3 behind).
    let alice_next = net.sent_of(ALICE, PacketType::State).last().unwrap().header.seq_nr;
    let bob_next = bob_next.wrapping_add(1);
    let edge = packet_bytes(
        header(PacketType::Data, alice_recv, bob_next, alice_next.wrapping_sub(1).wrapping_sub(3)),
        b"edge",
    );
    net.inject(BOB, ALICE, &edge);
    assert_eq!(net.a.readable(alice), 4, "an ack_nr 3 behind is within libutp's slack");
}

#[test]
fn a_spoofed_ack_of_unsent_data_does_not_stop_retransmission() {
    let mut net = Net::new(Config::default(), Config::default(), 12);
    let (alice, bob) = establish(&mut net);
    let (_, bob_send) = net.b.connection_ids(bob).unwrap();
    // Alice's next DATA is lost; a spoofer then claims Bob acknowledged far beyond it.
    let n_data = net.sent_of(ALICE, PacketType::Data).len();
    net.set_filter(move |p| {
        if p.is(ALICE, PacketType::Data) && p.nth == n_data { Fate::Drop } else { Fate::Deliver }
    });
    net.a.write(alice, b"must arrive").unwrap();
    net.flush();
    let lost = net.sent_of(ALICE, PacketType::Data).last().unwrap().header;
    let bob_next = net.sent_of(BOB, PacketType::State).last().unwrap().header.seq_nr;
    let spoof =
        header(PacketType::State, bob_send.wrapping_add(0), bob_next, lost.seq_nr.wrapping_add(5));
    let (alice_recv, _) = net.a.connection_ids(alice).unwrap();
    let spoof = utp_proto::wire::utp::Header { connection_id: alice_recv, ..spoof };
    let dropped = net.a.stats(alice).unwrap().dropped_invalid;
    net.inject(BOB, ALICE, &packet_bytes(spoof, b""));
    assert_eq!(net.a.stats(alice).unwrap().dropped_invalid, dropped + 1);
    assert!(!net.a.is_flushed(alice), "the spoofed ACK acknowledged nothing");
    net.run_until(1_000, |n| n.b.readable(bob) == 11);
    assert_eq!(net.sent_of(ALICE, PacketType::Data).last().unwrap().header.seq_nr, lost.seq_nr);
    net.run_until(1_000, |n| n.a.is_flushed(alice));
}

// ---- malformed datagrams -------------------------------------------------------------

#[test]
fn malformed_datagrams_are_counted_and_never_answered() {
    let mut net = Net::new(Config::default(), Config::default(), 13);
    let (alice, bob) = establish(&mut net);
    let (bob_recv, _) = net.b.connection_ids(bob).unwrap();
    let good = packet_bytes(header(PacketType::State, bob_recv, 1, 1), b"");
    let mut bad: Vec<Vec<u8>> = vec![vec![], vec![0x01], good[..19].to_vec()];
    for version in [0u8, 2, 15] {
        let mut p = good.clone();
        p[0] = (p[0] & 0xf0) | version;
        bad.push(p);
    }
    for kind in 5u8..16 {
        let mut p = good.clone();
        p[0] = (kind << 4) | 1;
        bad.push(p);
    }
    // Extension chains that run past the end: a missing length byte, a body too short,
    // a second entry cut off.
    let mut p = good.clone();
    p[1] = 1;
    bad.push(p.clone());
    bad.push([&p[..], &[0, 4, 0xff]].concat());
    bad.push([&p[..], &[9, 4, 0, 0, 0, 0, 0]].concat());
    let before = net.b.endpoint_stats();
    let bob_stats = net.b.stats(bob).unwrap();
    for d in &bad {
        assert!(Packet::parse(d).is_err(), "{d:?} parses");
        net.b.handle_datagram(net.now, ALICE, d);
    }
    net.flush();
    let after = net.b.endpoint_stats();
    assert_eq!(after.malformed - before.malformed, bad.len() as u64);
    assert_eq!(after.datagrams_received - before.datagrams_received, bad.len() as u64);
    assert_eq!(after.resets_sent, before.resets_sent, "malformed datagrams get no answer");
    assert_eq!(after.datagrams_sent, before.datagrams_sent);
    assert_eq!(net.b.stats(bob).unwrap().packets_received, bob_stats.packets_received);
    // And the connection still works.
    net.a.write(alice, b"still here").unwrap();
    net.run_until(100, |n| n.b.readable(bob) == 10);
}

#[test]
fn mutated_packets_never_panic_and_malformed_ones_are_counted() {
    let mut net = Net::new(Config::default(), Config::default(), 14);
    let (alice, bob) = establish(&mut net);
    net.a.write(alice, &[7u8; 3000]).unwrap();
    net.b.write(bob, &[9u8; 100]).unwrap();
    net.run_for(ms(100));
    let samples: Vec<(u8, Vec<u8>)> = net.log.iter().map(|s| (s.from, s.bytes.clone())).collect();
    let mut rng = Rng::new(14);
    let mut malformed = [0u64; 2];
    let base = [net.a.endpoint_stats().malformed, net.b.endpoint_stats().malformed];
    for i in 0..3000u64 {
        let (from, bytes) = &samples[(rng.next_u64() % samples.len() as u64) as usize];
        let mut d = bytes.clone();
        match i % 4 {
            0 => {
                let at = (rng.next_u64() % d.len() as u64) as usize;
                d[at] ^= 1 << (rng.next_u64() % 8);
            }
            1 => d.truncate((rng.next_u64() % (d.len() as u64 + 1)) as usize),
            2 => {
                let at = (rng.next_u64() % 20) as usize;
                d[at] = rng.next_u64() as u8;
            }
            _ => {
                let n = (rng.next_u64() % 8) as usize;
                d.extend((0..n).map(|_| rng.next_u64() as u8));
                d[1] = rng.next_u64() as u8 % 4;
            }
        }
        // Deliver to the receiver of the original (the right connection, mostly).
        let to = if *from == ALICE { BOB } else { ALICE };
        if Packet::parse(&d).is_err() {
            malformed[usize::from(to == BOB)] += 1;
        }
        let ep: &mut Ep = if to == BOB { &mut net.b } else { &mut net.a };
        ep.handle_datagram(net.now, *from, &d);
        if i % 50 == 0 {
            net.run_for(ms(5));
        }
    }
    net.run_for(Duration::from_secs(60));
    assert_eq!(net.a.endpoint_stats().malformed - base[0], malformed[0]);
    assert_eq!(net.b.endpoint_stats().malformed - base[1], malformed[1]);
    assert!(malformed[0] > 100 && malformed[1] > 100, "{malformed:?}");
}

// ---- reset() and close() -------------------------------------------------------------

#[test]
fn reset_sends_a_reset_and_the_peer_sees_reset() {
    let mut net = Net::new(Config::default(), Config::default(), 15);
    let (alice, bob) = establish(&mut net);
    let (_, alice_send) = net.a.connection_ids(alice).unwrap();
    net.a.write(alice, b"unsent").unwrap();
    let log_len = net.log.len();
    net.a.reset(net.now, alice);
    assert_eq!(closed(&drain_events(&mut net.a)), [(alice, Err(ConnectionError::LocallyReset))]);
    assert_eq!(net.a.write(alice, b"x"), Err(utp_proto::utp::WriteError::Closed));
    net.run_for(ms(20));
    let sent_after: Vec<_> = net.log[log_len..].iter().filter(|p| p.from == ALICE).collect();
    assert_eq!(sent_after.len(), 1, "only the RESET, no DATA of what was written: {}", net.trace());
    let rst = sent_after[0];
    assert_eq!(rst.kind(), PacketType::Reset);
    assert_eq!((rst.header.connection_id, rst.header.wnd_size), (alice_send, 0));
    assert_eq!(closed(&drain_events(&mut net.b)), [(bob, Err(ConnectionError::Reset))]);
    assert_eq!(net.a.state(alice), None);
    assert_eq!(net.b.state(bob), None);
}

#[test]
fn close_completes_only_after_the_peer_acks_the_fin() {
    let mut net = Net::new(Config::default(), Config::default(), 16);
    let (alice, bob) = establish(&mut net);
    // The first ACK of Alice's FIN is lost.
    let n_states = net.sent_of(BOB, PacketType::State).len();
    net.set_filter(move |p| {
        if p.is(BOB, PacketType::State) && p.nth == n_states { Fate::Drop } else { Fate::Deliver }
    });
    net.a.write(alice, b"bye").unwrap();
    net.a.close(net.now, alice);
    let mut a_closed = None;
    let mut got = Vec::new();
    net.run_until(1_000, |n| {
        for (h, r) in closed(&drain_events(&mut n.a)) {
            assert_eq!(h, alice);
            a_closed = Some((n.now, r));
        }
        utp_common::read_all(&mut n.b, bob, &mut got);
        a_closed.is_some()
    });
    assert_eq!(got, b"bye");
    let fins = net.sent_of(ALICE, PacketType::Fin);
    assert_eq!(fins.len(), 2, "the FIN was resent after its ACK was lost\n{}", net.trace());
    let ack = net
        .log
        .iter()
        .filter(|s| s.is(BOB, PacketType::State) && !s.deliveries.is_empty())
        .find(|s| s.header.ack_nr == fins[0].header.seq_nr)
        .expect("an ACK of the FIN arrived");
    assert_eq!(a_closed, Some((ack.at + net.latency, Ok(()))), "{}", net.trace());
    assert!(net.a.is_flushed(alice));
    // Unlike reset(), close sent no RESET, and Bob's side is still open (half-close).
    assert!(resets_to(&net, BOB).is_empty());
    assert_eq!(net.b.state(bob), Some(State::Connected));
    assert!(drain_events(&mut net.b).iter().all(|e| !matches!(e, Event::Closed { .. })));
}

#[test]
fn closing_after_the_peer_closed_completes_in_one_round_trip() {
    // The everyday close: Alice writes and closes; Bob reads to the end and closes.
    let mut net = Net::new(Config::default(), Config::default(), 17);
    let (alice, bob) = establish(&mut net);
    net.a.write(alice, b"done").unwrap();
    net.a.close(net.now, alice);
    let (mut a_closed, mut b_closed, mut got, mut eof) = (None, None, Vec::new(), false);
    net.run_until(10_000, |n| {
        for (_, r) in closed(&drain_events(&mut n.a)) {
            a_closed = Some((n.now, r));
        }
        for (_, r) in closed(&drain_events(&mut n.b)) {
            b_closed = Some((n.now, r));
        }
        if !eof && utp_common::read_all(&mut n.b, bob, &mut got) {
            eof = true;
            n.b.close(n.now, bob);
        }
        a_closed.is_some() && b_closed.is_some()
    });
    assert_eq!(got, b"done");
    assert_eq!(a_closed.map(|c| c.1), Some(Ok(())));
    // Bob's FIN reaches Alice after her close completed; her lingering state must
    // acknowledge it. Bob already had Alice's whole stream and owed nothing, so his close
    // completed at once (observed at the next step, when Alice's ACK arrives).
    let bob_fin = net.sent_of(BOB, PacketType::Fin);
    assert_eq!(bob_fin.len(), 1, "Bob's FIN was retransmitted\n{}", net.trace());
    let last_ack = net.sent_of(ALICE, PacketType::State).last().unwrap().header;
    assert_eq!(last_ack.ack_nr, bob_fin[0].header.seq_nr, "{}", net.trace());
    assert_eq!(b_closed, Some((bob_fin[0].at + ms(10), Ok(()))), "{}", net.trace());
}

#[test]
fn a_shutdown_is_flushed_only_once_its_fin_is_acknowledged() {
    let mut net = Net::new(Config::default(), Config::default(), 17);
    let (alice, _bob) = establish(&mut net);
    net.a.write(alice, b"data").unwrap();
    net.run_until(1_000, |n| n.a.is_flushed(alice));
    // Nothing is unacknowledged and nothing unsent: only the FIN is asked for.
    net.a.shutdown(alice);
    assert!(!net.a.is_flushed(alice), "a FIN not yet sent is not flushed");
    net.flush();
    assert_eq!(net.sent_of(ALICE, PacketType::Fin).len(), 1);
    assert!(!net.a.is_flushed(alice), "a FIN in flight is not flushed");
    net.run_until(1_000, |n| n.a.is_flushed(alice));
}

#[test]
fn a_courtesy_fin_is_resent_until_acknowledged() {
    let mut net = Net::new(Config::default(), Config::default(), 18);
    let (alice, bob) = establish(&mut net);
    // Bob finishes first; once Alice has read everything, her close completes at once.
    net.b.write(bob, b"all of it").unwrap();
    net.b.shutdown(bob);
    let mut got = Vec::new();
    net.run_until(1_000, |n| utp_common::read_all(&mut n.a, alice, &mut got));
    assert_eq!(got, b"all of it");
    // Her courtesy FIN is lost the first time.
    net.set_filter(|p| {
        if p.is(ALICE, PacketType::Fin) && p.nth == 0 { Fate::Drop } else { Fate::Deliver }
    });
    net.a.close(net.now, alice);
    assert_eq!(closed(&drain_events(&mut net.a)), [(alice, Ok(()))]);
    let mut buf = [0u8; 16];
    net.run_until(1_000, |n| n.b.read(bob, &mut buf) == Ok(0));
    let fins = net.sent_of(ALICE, PacketType::Fin);
    assert_eq!(fins.len(), 2, "the FIN was sent again\n{}", net.trace());
    assert_eq!(fins[0].header.seq_nr, fins[1].header.seq_nr);
    // Once acknowledged, it is not sent again, and the connection is forgotten.
    net.run_for(Duration::from_secs(30));
    assert_eq!(net.sent_of(ALICE, PacketType::Fin).len(), 2);
    assert_eq!(net.a.state(alice), None);
}

#[test]
fn what_arrived_stays_readable_after_the_peer_resets() {
    let mut net = Net::new(Config::default(), Config::default(), 19);
    let (alice, bob) = establish(&mut net);
    net.a.write(alice, b"before the end").unwrap();
    net.run_until(1_000, |n| n.b.readable(bob) == 14);
    net.a.reset(net.now, alice);
    let mut events = Vec::new();
    net.run_until(1_000, |n| {
        events.extend(drain_events(&mut n.b));
        !closed(&events).is_empty()
    });
    assert_eq!(closed(&events), [(bob, Err(ConnectionError::Reset))]);
    let mut buf = [0u8; 32];
    assert_eq!(net.b.read(bob, &mut buf), Ok(14));
    assert_eq!(&buf[..14], b"before the end");
}
