//! Bad input from the network (docs/rudp.md, "Conventions", "Connection ids" and the
//! DATA-ACK rule): datagrams that do not parse are dropped and counted, never answered;
//! packets for unknown ids are counted; a valid id from the wrong address is dropped and
//! counted without touching the connection; a DATA-ACK acknowledging what was never sent
//! is dropped and counted; and garbage during a transfer changes nothing. On the
//! hand-driven [`Net`] wire, 10 ms each way.

mod rudp_common;

use std::time::Duration;

use rudp_common::{ALICE, BOB, Fate, Net, Session, content, emit};
use utp_proto::Rng;
use utp_proto::rudp::{CloseCode, ConnectionStats, State};
use utp_proto::wire::rudp::{ConnectAck, Datagram, Packet, PacketType, Ranges};

const MALLORY: u8 = 3;

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// Injects `bytes` into `to` from `from`; returns how many datagrams any endpoint sent in
/// answer.
fn inject(net: &mut Net, from: u8, to: u8, bytes: &[u8]) -> usize {
    let mark = net.log.len();
    net.inject(from, to, bytes);
    net.since(mark).iter().filter(|d| !d.injected).count()
}

/// A datagram of random length and bytes; half of them start like a rudp packet (version
/// 1, a known type) to get past the first checks.
fn garbage(rng: &mut Rng) -> Vec<u8> {
    let mut bytes = vec![0; rng.below(300) as usize];
    rng.fill(&mut bytes);
    if rng.chance(0.5) && bytes.len() >= 2 {
        bytes[0] = 1;
        bytes[1] = 1 + rng.below(9) as u8;
    }
    bytes
}

fn stats(net: &Net, s: &Session) -> (ConnectionStats, ConnectionStats) {
    (net.a.stats(s.alice()).expect("alive"), net.b.stats(s.bob()).expect("alive"))
}

#[test]
fn random_datagrams_are_dropped_counted_and_never_answered() {
    let mut net = Net::default_pair(1);
    let s = Session::establish(&mut net);
    let before = stats(&net, &s);
    let mut rng = Rng::new(1);
    let mut malformed = [0u64; 2];
    for i in 0..5000 {
        let bytes = garbage(&mut rng);
        let (to, from) = if i % 2 == 0 { (BOB, ALICE) } else { (ALICE, BOB) };
        let from = if i % 3 == 0 { MALLORY } else { from };
        if Datagram::parse(&bytes).is_ok() {
            continue; // a well-formed packet for a random id: answered as unknown, not garbage
        }
        malformed[usize::from(to == BOB)] += 1;
        assert_eq!(inject(&mut net, from, to, &bytes), 0, "no answer to {bytes:?}");
    }
    assert_eq!(net.a.endpoint_stats().malformed, malformed[0]);
    assert_eq!(net.b.endpoint_stats().malformed, malformed[1]);
    assert!(malformed[0] > 2000 && malformed[1] > 2000);
    let after = stats(&net, &s);
    assert_eq!(
        after.0.packets_received, before.0.packets_received,
        "nothing reached Alice's connection"
    );
    assert_eq!(after.1.packets_received, before.1.packets_received, "nor Bob's");
    assert_eq!(net.a.state(s.alice()), Some(State::Established));
    assert_eq!(net.b.state(s.bob()), Some(State::Established));
}

/// One well-formed packet of each type, naming `dst_id` where it names one.
fn samples(dst_id: u64) -> Vec<(PacketType, Vec<u8>)> {
    let cookie = [7u8; 12];
    let ranges = [(20u64, 3u32), (10, 2)];
    let ranges = Ranges::from_pairs(&ranges).expect("valid");
    let packets = [
        Packet::Connect { src_id: 5, max_message: 1000, window: 1000, cookie: Some(&cookie) },
        Packet::ConnectAck(ConnectAck::Challenge { cookie: &cookie }),
        Packet::ConnectAck(ConnectAck::Accepted { src_id: 5, max_message: 1, window: 1 }),
        Packet::Data {
            packet_number: 0,
            message_number: 0,
            message_len: 10,
            offset: 0,
            fragment: b"0123456789",
        },
        Packet::DataAck { delivered: 0, largest: 22, ack_delay: 0, window: 0, ranges },
        Packet::Repeat { ranges },
        Packet::Ping { ping_id: 9 },
        Packet::PingAck { ping_id: 9 },
        Packet::Close { code: CloseCode::Application(4), reason: "why" },
        Packet::Direct { payload: b"payload" },
    ];
    packets
        .into_iter()
        .map(|p| {
            let id = if matches!(p, Packet::Connect { .. }) { 0 } else { dst_id };
            (p.packet_type(), emit(id, p))
        })
        .collect()
}

#[test]
fn truncated_packets_are_malformed_and_change_nothing() {
    let mut net = Net::default_pair(2);
    let s = Session::establish(&mut net);
    let (bob_id, _) = net.b.connection_ids(s.bob()).expect("alive");
    let before = stats(&net, &s);
    let mut expected = 0;
    for (kind, bytes) in samples(bob_id) {
        for len in 0..bytes.len() {
            let cut = &bytes[..len];
            if Datagram::parse(cut).is_ok() {
                // Only DATA and DIRECT run to the end of the datagram: a cut one still
                // parses, and the UDP checksum is what catches it.
                assert!(
                    matches!(kind, PacketType::Data | PacketType::Direct),
                    "{kind:?} cut to {len} bytes parses"
                );
                continue;
            }
            expected += 1;
            assert_eq!(inject(&mut net, ALICE, BOB, cut), 0, "{kind:?} cut to {len}: no answer");
        }
    }
    assert_eq!(net.b.endpoint_stats().malformed, expected);
    assert_eq!(stats(&net, &s).1.packets_received, before.1.packets_received);
    assert_eq!(net.b.state(s.bob()), Some(State::Established));
}

#[test]
fn another_version_is_dropped_whatever_it_holds() {
    let mut net = Net::default_pair(3);
    let s = Session::establish(&mut net);
    let (bob_id, _) = net.b.connection_ids(s.bob()).expect("alive");
    let before = stats(&net, &s);
    let mut n = 0;
    for (kind, bytes) in samples(bob_id) {
        for version in [0u8, 2, 0x7f, 0xff] {
            let mut other = bytes.clone();
            other[0] = version;
            n += 1;
            assert_eq!(inject(&mut net, ALICE, BOB, &other), 0, "{kind:?} of version {version}");
        }
    }
    for short in [&[2u8][..], &[0, 6], &[9, 9, 9]] {
        n += 1;
        assert_eq!(inject(&mut net, ALICE, BOB, short), 0);
    }
    assert_eq!(net.b.endpoint_stats().malformed, n);
    assert_eq!(stats(&net, &s).1.packets_received, before.1.packets_received);
    assert_eq!(net.b.state(s.bob()), Some(State::Established));
}

#[test]
fn packets_for_unknown_ids_are_counted() {
    let mut net = Net::default_pair(4);
    let s = Session::establish(&mut net);
    let before = stats(&net, &s);
    let mut rng = Rng::new(4);
    let mut count = 0;
    for _ in 0..50 {
        let id = rng.next_u64() | 1;
        for (kind, bytes) in samples(id) {
            if kind == PacketType::Connect {
                continue;
            }
            count += 1;
            net.inject(ALICE, BOB, &bytes);
        }
    }
    assert_eq!(net.b.endpoint_stats().unknown_connection, count);
    assert_eq!(net.b.endpoint_stats().malformed, 0);
    net.run_for(ms(100));
    // Bob answered (code 5, naming ids Alice does not send to): Alice counts those as
    // unknown too, and her connection is untouched.
    assert!(net.b.endpoint_stats().unknown_answers > 0);
    assert_eq!(net.a.endpoint_stats().unknown_connection, net.b.endpoint_stats().unknown_answers);
    assert_eq!(stats(&net, &s).0.packets_received, before.0.packets_received);
    assert_eq!(net.a.state(s.alice()), Some(State::Established));
    assert_eq!(net.b.state(s.bob()), Some(State::Established));
}

#[test]
fn a_valid_id_from_another_address_is_dropped_and_counted() {
    let mut net = Net::default_pair(5);
    let mut s = Session::establish(&mut net);
    let (bob_id, _) = net.b.connection_ids(s.bob()).expect("alive");
    let before = stats(&net, &s);
    let mut n = 0;
    for (kind, bytes) in samples(bob_id) {
        if kind == PacketType::Connect {
            continue;
        }
        n += 1;
        assert_eq!(inject(&mut net, MALLORY, BOB, &bytes), 0, "{kind:?} from Mallory: no answer");
    }
    assert_eq!(net.b.endpoint_stats().wrong_peer, n);
    s.run_for(&mut net, ms(100));
    let after = stats(&net, &s);
    assert_eq!(after.1.packets_received, before.1.packets_received);
    assert_eq!(after.1.peer_window, before.1.peer_window, "the forged window was ignored");
    assert_eq!(net.b.state(s.bob()), Some(State::Established), "the CLOSE was ignored");
    assert!(s.recv_b.is_empty() && s.direct_b.is_empty(), "the DATA and DIRECT were ignored");
    assert!(s.closed_a.is_none() && s.closed_b.is_none());
    net.a.send(s.alice(), b"still fine").expect("send");
    s.run_for(&mut net, ms(100));
    assert_eq!(s.recv_b, [b"still fine".to_vec()]);
}

/// A DATA-ACK from Bob to Alice's connection.
fn data_ack(net: &Net, s: &Session, delivered: u64, largest: u64, window: u32) -> Vec<u8> {
    let (alice_id, _) = net.a.connection_ids(s.alice()).expect("alive");
    let range = [(largest, 1u32)];
    let ranges = Ranges::from_pairs(&range).expect("valid");
    emit(alice_id, Packet::DataAck { delivered, largest, ack_delay: 0, window, ranges })
}

#[test]
fn a_data_ack_of_packets_or_messages_never_sent_is_dropped_invalid() {
    let mut net = Net::default_pair(6);
    let mut s = Session::establish(&mut net);
    let alice = s.alice();
    net.a.send(alice, b"one").expect("send");
    s.run_until(&mut net, 1000, |_, n| n.a.is_flushed(alice));
    let before = net.a.stats(alice).expect("alive");
    assert_eq!(before.data_sent, 1);
    // Packet 1 was never sent; nor was message 1.
    net.inject(BOB, ALICE, &data_ack(&net, &s, 1, 1, 0));
    net.inject(BOB, ALICE, &data_ack(&net, &s, 2, 0, 0));
    let after = net.a.stats(alice).expect("alive");
    assert_eq!(after.dropped_invalid, before.dropped_invalid + 2);
    assert_eq!(after.peer_window, before.peer_window, "their window was not taken");
    net.a.send(alice, b"two").expect("send");
    s.run_until(&mut net, 1000, |s, _| s.recv_b.len() == 2);
    assert_eq!(s.recv_b, [b"one".to_vec(), b"two".to_vec()]);
}

#[test]
fn a_data_ack_of_messages_queued_but_never_sent_is_dropped_invalid() {
    // Alice's DATA is lost for now, so the congestion window keeps most of her messages
    // queued, unsent. A DATA-ACK claiming they were all delivered acknowledges messages
    // never sent: it must not make her drop them.
    let mut net = Net::default_pair(7);
    let mut s = Session::establish(&mut net);
    let alice = s.alice();
    net.set_filter(|d| if d.is(ALICE, PacketType::Data) { Fate::Drop } else { Fate::Deliver });
    for i in 0..100 {
        net.a.send(alice, &content(7, i, 1000)).expect("send");
    }
    net.flush();
    let before = net.a.stats(alice).expect("alive");
    assert!(before.data_sent > 0 && before.data_sent < 100, "most are still queued");
    net.inject(BOB, ALICE, &data_ack(&net, &s, 100, 0, 1 << 20));
    let after = net.a.stats(alice).expect("alive");
    assert_eq!(after.dropped_invalid, before.dropped_invalid + 1, "dropped and counted");
    assert!(!net.a.is_flushed(alice), "nothing was acknowledged");
    net.deliver_all();
    s.run_until(&mut net, 100_000, |s, _| s.recv_b.len() == 100);
    for (i, m) in s.recv_b.iter().enumerate() {
        assert_eq!(m, &content(7, i, 1000), "message {i}");
    }
}

#[test]
fn garbage_during_a_transfer_does_not_disturb_it() {
    let mut net = Net::default_pair(8);
    let mut s = Session::establish(&mut net);
    let alice = s.alice();
    let mut rng = Rng::new(8);
    let sizes: Vec<usize> = (0..300).map(|_| 1 + rng.below(30_000) as usize).collect();
    let mut sent = 0;
    let mut injected = 0u64;
    net.run_until(1_000_000, |n| {
        s.poll(n);
        while sent < sizes.len() && n.a.writable(alice) >= sizes[sent] {
            n.a.send(alice, &content(8, sent, sizes[sent])).expect("send");
            sent += 1;
        }
        for _ in 0..rng.below(200) {
            let mut bytes = garbage(&mut rng);
            if rng.chance(0.3) {
                // A real packet cut short, or with its version changed.
                let real = &n.log[rng.below(n.log.len() as u64) as usize].bytes;
                bytes = real[..rng.below(real.len() as u64) as usize].to_vec();
                if rng.chance(0.5) && !bytes.is_empty() {
                    bytes[0] ^= 0x80;
                }
            }
            if Datagram::parse(&bytes).is_ok_and(|d| d.dst_id != 0) {
                continue; // might carry a real id: a forgery, not garbage
            }
            let (from, to) = match rng.below(4) {
                0 => (ALICE, BOB),
                1 => (BOB, ALICE),
                2 => (MALLORY, BOB),
                _ => (MALLORY, ALICE),
            };
            n.inject(from, to, &bytes);
            injected += 1;
        }
        s.recv_b.len() == sizes.len()
    });
    assert!(injected > 1000, "{injected} garbage datagrams");
    assert!(s.closed_a.is_none() && s.closed_b.is_none());
    for (i, m) in s.recv_b.iter().enumerate() {
        assert!(*m == content(8, i, sizes[i]), "message {i}: exactly once, in order, intact");
    }
    let malformed = net.a.endpoint_stats().malformed + net.b.endpoint_stats().malformed;
    assert!(malformed > 500, "{malformed} malformed");
    s.run_for(&mut net, ms(500));
    assert_eq!(s.recv_b.len(), sizes.len(), "nothing twice");
}
