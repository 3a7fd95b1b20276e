//! The two Portal Network flows of seed `000_f7122e7ea7c85d75` (FindContent/Content and
//! Offer/Accept), replayed with `Profile::Portal` and `InitialSeq::One`, with every
//! seq_nr/ack_nr on the wire checked against libutp's rules (which the Portal spec adopts);
//! plus the Portal-specific parts of connection set-up: `accept_with_id` before and after
//! the SYN, ids that never come, early SYNs nobody claims, and the one-way FIN.
//!
//! Where the seed's own numbering differs from libutp (no libutp-compatible peer numbers
//! packets the seed's way), the tests follow libutp and the comments say so:
//!
//! - the seed's SYN-ACK consumes a seq_nr (`RANDB`), so Bob's first DATA is `RANDB + 1`;
//!   libutp's SYN-ACK does not, and the first DATA carries the SYN-ACK's own seq_nr;
//! - the seed's STATE packets increment seq_nr (Alice's acks go 2, 3, 4, 5); a libutp
//!   STATE carries the sender's next seq_nr without consuming it (all of Alice's are 2);
//! - the seed has Alice answer the SYN-ACK with a "SYN-ACK-ACK"; a libutp initiator sends
//!   nothing for it, its first DATA (or, for a reader, its first ACK) follows;
//! - the seed's initiator acks the SYN-ACK with `ack_nr = RANDB`; libutp's uses
//!   `RANDB - 1` until the first DATA arrives;
//! - the seed's id assignment (listener recv = cid, send = cid + 1) is reversed from the
//!   Portal spec and libutp's SYN rule: the SYN carries the initiator's recv id (cid), so
//!   the listener (Bob) receives on cid + 1 and sends on cid, and Alice sends on cid + 1.

mod utp_common;

use std::time::Duration;

use utp_common::{ALICE, BOB, Fate, Net, Numbering, Sent, Session, check_numbering, payload};
use utp_proto::utp::{Config, ConnectionError, Event, InitialSeq, Profile, State};
use utp_proto::wire::utp::PacketType;
use utp_proto::{Instant, Machine};

fn portal() -> Config {
    let mut c = Config::profile(Profile::Portal);
    c.set_initial_seq(InitialSeq::One).unwrap();
    c
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// Two packets' worth of content: one full DATA and one partial, as in the seed.
fn content(seed: u64) -> Vec<u8> {
    payload(portal().max_payload() + 500, seed)
}

/// The packets before the `n`th delivery of the first packet matching `pred` (the whole
/// log if there is none).
fn before_delivery_of(log: &[Sent], pred: impl Fn(&Sent) -> bool) -> &[Sent] {
    match log.iter().find(|s| pred(s) && !s.deliveries.is_empty()) {
        Some(p) => {
            let d = p.deliveries[0];
            let end = log.iter().position(|s| s.order > d).unwrap_or(log.len());
            &log[..end]
        }
        None => log,
    }
}

/// FindContent: Bob (listener, writer) registers `cid` and writes the content, then closes;
/// Alice (initiator, reader) connects with `cid`, reads to the end and closes.
fn find_content(cid: u16, seed: u64) -> (Net, Session, Vec<u8>) {
    let mut net = Net::new(portal(), portal(), seed);
    let mut s = Session::new(false, true);
    let now = net.now;
    let bob = net.b.accept_with_id(now, ALICE, cid).expect("accept_with_id");
    assert_eq!(net.b.state(bob), Some(State::Listen));
    assert_eq!(net.b.connection_ids(bob), Some((cid.wrapping_add(1), cid)));
    let data = content(seed);
    assert_eq!(net.b.write(bob, &data), Ok(data.len()), "writable before the SYN came");
    net.b.close(now, bob);
    let alice = net.a.connect_with_id(now, BOB, cid).expect("connect_with_id");
    assert_eq!(net.a.connection_ids(alice), Some((cid, cid.wrapping_add(1))));
    s.alice = Some(alice);
    s.bob = Some(bob);
    s.run_until(&mut net, 10_000, |s, _| s.closed_a.is_some() && s.closed_b.is_some());
    (net, s, data)
}

fn numbering(cid: u16) -> Numbering {
    Numbering { initiator: ALICE, acceptor: BOB, id: cid, synack_consumes: false }
}

fn first_transmissions<'a>(log: &'a [&'a Sent]) -> Vec<&'a Sent> {
    let mut seen = std::collections::BTreeSet::new();
    log.iter().copied().filter(|p| seen.insert(p.header.seq_nr)).collect()
}

/// The FindContent packets that do not depend on the close order: SYN, SYN-ACK, Bob's
/// DATA and FIN, Alice's ACKs and her FIN.
fn check_find_content(net: &Net, s: &Session, data: &[u8], cid: u16) {
    let trace = net.trace();
    assert_eq!(s.recv_a, data, "the content arrived intact\n{trace}");
    // Everything before Alice's FIN reached Bob follows libutp's rules to the letter.
    let cut = before_delivery_of(&net.log, |p| p.is(ALICE, PacketType::Fin));
    let (syn_seq, r) = check_numbering(cut, numbering(cid));

    // Seed: "A sends SYN with seqNr: 1". Its id is cid (Alice's recv id).
    let syn = net.sent_of(ALICE, PacketType::Syn);
    assert_eq!(syn.len(), 1, "{trace}");
    assert_eq!((syn_seq, syn[0].header.ack_nr, syn[0].header.connection_id), (1, 0, cid));
    // Seed: "B sends SYN-ACK with seqNr: RANDB, ackNr: 1".
    let synack = net.sent_by(BOB)[0];
    assert_eq!(synack.kind(), PacketType::State);
    assert_eq!((synack.header.ack_nr, synack.header.connection_id), (1, cid));
    // Seed: "B sends DATA with seqNr: RANDB + 1, ackNr: 2", then RANDB + 2, FIN RANDB + 3.
    // libutp: the first DATA reuses the SYN-ACK's number, and Bob acks Alice's SYN (1)
    // because Alice never sends anything that takes a number before her FIN.
    let bob_data = net.sent_of(BOB, PacketType::Data);
    let firsts: Vec<(u16, u16, usize)> = first_transmissions(&bob_data)
        .iter()
        .map(|p| (p.header.seq_nr, p.header.ack_nr, p.payload.len()))
        .collect();
    let full = portal().max_payload();
    assert_eq!(firsts, [(r, 1, full), (r.wrapping_add(1), 1, 500)], "{trace}");
    let bob_fin = net.sent_of(BOB, PacketType::Fin);
    assert_eq!((bob_fin[0].header.seq_nr, bob_fin[0].header.ack_nr), (r.wrapping_add(2), 1));
    // (A RESET carries the id of the packet it answers, so it is not checked here.)
    let bob_packets = net.sent_by(BOB);
    assert!(
        bob_packets
            .iter()
            .filter(|p| p.kind() != PacketType::Reset)
            .all(|p| p.header.connection_id == cid)
    );
    // Seed: "A sends STATE with seqNr: 3, 4, 5"; libutp: every STATE carries 2, Alice's
    // next number, and acknowledges the latest in-order DATA; the last one the FIN.
    let alice_states = net.sent_of(ALICE, PacketType::State);
    assert!(!alice_states.is_empty());
    for p in &alice_states {
        assert_eq!((p.header.seq_nr, p.header.connection_id), (2, cid.wrapping_add(1)), "{p}");
    }
    assert_eq!(alice_states.last().unwrap().header.ack_nr, r.wrapping_add(2), "{trace}");
    assert!(net.sent_of(ALICE, PacketType::Data).is_empty(), "the reader sends no DATA");
    // Alice, having read to the end, closes: her FIN takes her next number, 2.
    let alice_fin = net.sent_of(ALICE, PacketType::Fin);
    assert_eq!((alice_fin[0].header.seq_nr, alice_fin[0].header.ack_nr), (2, r.wrapping_add(2)));
    // The reader saw the end of the stream as soon as the FIN arrived: no waiting.
    let fin_arrival = bob_fin[0].at + net.latency;
    assert_eq!(s.eof_a, Some(fin_arrival), "{trace}");
    // Bob's close completes when Alice acknowledges his FIN.
    assert_eq!(s.closed_b, Some((fin_arrival + net.latency, Ok(()))), "{trace}");
    assert_eq!(s.closed_a.map(|c| c.1), Some(Ok(())), "{trace}");
}

#[test]
fn find_content_replay_follows_libutp_numbering() {
    for (cid, seed) in [(12345, 1), (65535, 2), (0, 3)] {
        let (net, s, data) = find_content(cid, seed);
        check_find_content(&net, &s, &data, cid);
    }
}

#[test]
fn find_content_reader_fin_is_acknowledged_at_once() {
    let cid = 12345;
    let (net, s, data) = find_content(cid, 1);
    check_find_content(&net, &s, &data, cid);
    // Bob (closed, lingering) must acknowledge Alice's FIN (seq 2), and Alice's close
    // complete one round trip after she sent it, not after retransmitting it for seconds.
    check_numbering(&net.log, numbering(cid));
    let alice_fin = net.sent_of(ALICE, PacketType::Fin);
    assert_eq!(alice_fin.len(), 1, "Alice's FIN was retransmitted\n{}", net.trace());
    // Alice has the whole stream and owes nothing: her close completes at once (the
    // session sees the event at its next step, when Bob's ACK of the FIN arrives).
    assert_eq!(s.closed_a, Some((alice_fin[0].at + ms(10), Ok(()))), "{}", net.trace());
}

/// Offer/Accept: Bob (listener, reader) registers `cid`; Alice (initiator, writer)
/// connects with it, writes the content and closes; Bob reads to the end and closes.
fn offer(cid: u16, seed: u64) -> (Net, Session, Vec<u8>) {
    let mut net = Net::new(portal(), portal(), seed);
    let mut s = Session::new(false, true);
    let now = net.now;
    let bob = net.b.accept_with_id(now, ALICE, cid).expect("accept_with_id");
    let alice = net.a.connect_with_id(now, BOB, cid).expect("connect_with_id");
    let data = content(seed);
    assert_eq!(net.a.write(alice, &data), Ok(data.len()));
    net.a.close(now, alice);
    s.alice = Some(alice);
    s.bob = Some(bob);
    s.run_until(&mut net, 10_000, |s, _| s.closed_a.is_some() && s.closed_b.is_some());
    (net, s, data)
}

fn check_offer(net: &Net, s: &Session, data: &[u8], cid: u16) {
    let trace = net.trace();
    assert_eq!(s.recv_b, data, "the content arrived intact\n{trace}");
    let cut = before_delivery_of(&net.log, |p| p.is(BOB, PacketType::Fin));
    let (syn_seq, r) = check_numbering(cut, numbering(cid));
    // Seed: "A sends SYN packet with seqNr: 1"; "B sends SYN-ACK with seqNr: RANDB, ackNr: 1".
    let syn = net.sent_of(ALICE, PacketType::Syn)[0];
    assert_eq!((syn_seq, syn.header.ack_nr, syn.header.connection_id), (1, 0, cid));
    let synack = net.sent_by(BOB)[0];
    assert_eq!(
        (synack.kind(), synack.header.ack_nr, synack.header.connection_id),
        (PacketType::State, 1, cid)
    );
    // Seed: "A sends DATA with seqNr: 2, ackNr: RANDB", then 3, FIN 4. libutp: the same
    // numbers, but ackNr RANDB - 1: Bob's SYN-ACK number is not consumed and Bob sends no
    // DATA, so there is nothing newer to acknowledge.
    let alice_data = net.sent_of(ALICE, PacketType::Data);
    let firsts: Vec<(u16, u16, usize)> = first_transmissions(&alice_data)
        .iter()
        .map(|p| (p.header.seq_nr, p.header.ack_nr, p.payload.len()))
        .collect();
    let rm1 = r.wrapping_sub(1);
    assert_eq!(firsts, [(2, rm1, portal().max_payload()), (3, rm1, 500)], "{trace}");
    let alice_fin = net.sent_of(ALICE, PacketType::Fin)[0];
    assert_eq!((alice_fin.header.seq_nr, alice_fin.header.ack_nr), (4, rm1));
    for p in net
        .sent_by(ALICE)
        .iter()
        .filter(|p| !matches!(p.kind(), PacketType::Syn | PacketType::Reset))
    {
        assert_eq!(p.header.connection_id, cid.wrapping_add(1), "{p}");
    }
    // Seed: "B sends ACK packet with seqNr: RANDB+1 / +2 / +3"; libutp: every STATE
    // carries RANDB (nothing consumed it) and acknowledges the latest in-order packet.
    let bob_states = net.sent_of(BOB, PacketType::State);
    let before_fin: Vec<_> = bob_states
        .iter()
        .filter(|p| p.order < net.sent_of(BOB, PacketType::Fin)[0].order)
        .collect();
    for p in &before_fin {
        assert_eq!((p.header.seq_nr, p.header.connection_id), (r, cid), "{p}");
    }
    assert_eq!(before_fin.last().unwrap().header.ack_nr, 4, "the FIN acknowledged\n{trace}");
    // Bob, having read to the end, closes: his FIN takes RANDB, the number the SYN-ACK
    // announced.
    let bob_fin = net.sent_of(BOB, PacketType::Fin)[0];
    assert_eq!((bob_fin.header.seq_nr, bob_fin.header.ack_nr), (r, 4));
    assert!(net.sent_of(BOB, PacketType::Data).is_empty(), "the reader sends no DATA");
    // Alice's close completes when Bob acknowledges her FIN.
    let acked = before_fin.last().unwrap();
    assert_eq!(s.closed_a, Some((acked.at + net.latency, Ok(()))), "{trace}");
    assert_eq!(s.closed_b.map(|c| c.1), Some(Ok(())), "{trace}");
}

#[test]
fn offer_replay_follows_libutp_numbering() {
    for (cid, seed) in [(4242, 4), (65535, 5)] {
        let (net, s, data) = offer(cid, seed);
        check_offer(&net, &s, &data, cid);
    }
}

#[test]
fn offer_reader_fin_is_acknowledged_at_once() {
    let cid = 4242;
    let (net, s, data) = offer(cid, 4);
    check_offer(&net, &s, &data, cid);
    // Alice (closed, lingering) must acknowledge Bob's FIN; Bob, who has the whole stream
    // and owes nothing, completes his close at once (observed at the session's next step,
    // when Alice's ACK arrives).
    check_numbering(&net.log, numbering(cid));
    let bob_fin = net.sent_of(BOB, PacketType::Fin);
    assert_eq!(bob_fin.len(), 1, "Bob's FIN was retransmitted\n{}", net.trace());
    assert_eq!(s.closed_b, Some((bob_fin[0].at + ms(10), Ok(()))), "{}", net.trace());
}

#[test]
fn accept_with_id_after_the_syn_arrived_picks_it_up() {
    let cid = 777;
    let mut net = Net::new(portal(), portal(), 6);
    let mut s = Session::new(false, true);
    let alice = net.a.connect_with_id(net.now, BOB, cid).unwrap();
    s.alice = Some(alice);
    // The SYN reaches Bob before he registered the id: it waits as an incoming connection.
    net.run_for(ms(15));
    let events = utp_common::drain_events(&mut net.b);
    assert!(
        matches!(events.as_slice(), [Event::Incoming { peer: ALICE, connection_id, .. }] if *connection_id == cid),
        "{events:?}"
    );
    assert_eq!(net.b.pending_incoming(), 1);
    assert!(net.sent_by(BOB).is_empty(), "no answer before the application decides");
    // Half a second later Bob's application registers the id (it sent the Content message).
    net.run_for(ms(485));
    let bob = net.b.accept_with_id(net.now, ALICE, cid).unwrap();
    s.bob = Some(bob);
    assert_eq!(net.b.pending_incoming(), 0, "the waiting SYN was taken");
    assert_eq!(net.b.connection_count(), 1);
    assert_eq!(net.b.state(bob), Some(State::Connected), "Portal: connected on the SYN");
    assert_eq!(net.b.connection_ids(bob), Some((cid + 1, cid)));
    let data = content(6);
    net.b.write(bob, &data).unwrap();
    net.b.close(net.now, bob);
    s.run_until(&mut net, 1_000, |s, _| s.eof_a.is_some());
    assert_eq!(s.recv_a, data);
    let synack = net.sent_by(BOB)[0];
    assert_eq!(synack.at, Instant::from_millis(500), "SYN-ACK sent when the id was registered");
    assert_eq!((synack.kind(), synack.header.ack_nr), (PacketType::State, 1));
    assert_eq!(net.sent_of(ALICE, PacketType::Syn).len(), 1, "no SYN retransmission needed");
    let cut = before_delivery_of(&net.log, |p| p.is(ALICE, PacketType::Fin));
    check_numbering(cut, numbering(cid));
    assert_eq!(
        utp_common::drain_events(&mut net.b)
            .iter()
            .filter(|e| matches!(e, Event::Incoming { .. }))
            .count(),
        0
    );
    assert_eq!(s.incoming_b(), 0);
}

#[test]
fn accept_with_id_registered_twice_is_refused() {
    let mut net = Net::new(portal(), portal(), 7);
    let now = net.now;
    net.b.accept_with_id(now, ALICE, 9).unwrap();
    assert_eq!(net.b.accept_with_id(now, ALICE, 9), Err(utp_proto::utp::ConnectError::IdInUse(9)));
    // Another peer may use the same id.
    assert!(net.b.accept_with_id(now, 3, 9).is_ok());
    net.a.connect_with_id(now, BOB, 9).unwrap();
    assert_eq!(net.a.connect_with_id(now, BOB, 9), Err(utp_proto::utp::ConnectError::IdInUse(9)));
}

#[test]
fn expected_id_that_never_comes_times_out() {
    for timeout in [None, Some(Duration::from_secs(5))] {
        let mut config = portal();
        if let Some(t) = timeout {
            config.set_expected_id_timeout(t).unwrap();
        }
        let mut net = Net::new(portal(), config, 8);
        net.run_for(ms(1_234));
        let start = net.now;
        let bob = net.b.accept_with_id(start, ALICE, 4321).unwrap();
        net.b.write(bob, b"never sent").unwrap();
        let mut closed = None;
        net.run_until(100, |n| {
            for ev in utp_common::drain_events(&mut n.b) {
                if let Event::Closed { handle, result } = ev {
                    assert_eq!(handle, bob);
                    closed = Some((n.now, result));
                }
            }
            closed.is_some()
        });
        let after = timeout.unwrap_or(Duration::from_secs(20));
        assert_eq!(closed, Some((start + after, Err(ConnectionError::TimedOut))));
        assert!(net.log.is_empty(), "a listener sends nothing: {}", net.trace());
        assert_eq!(net.b.state(bob), None);
        assert_eq!(net.b.connection_count(), 0);
        assert_eq!(net.b.poll_timeout(), None);
    }
}

#[test]
fn early_syn_nobody_claims_is_refused_after_incoming_timeout() {
    for timeout in [None, Some(Duration::from_secs(2))] {
        let mut config = portal();
        if let Some(t) = timeout {
            config.set_incoming_timeout(t).unwrap();
        }
        let cid = 1000;
        let mut net = Net::new(portal(), config, 9);
        let mut s = Session::new(false, false);
        s.alice = Some(net.a.connect_with_id(net.now, BOB, cid).unwrap());
        s.run_until(&mut net, 1_000, |s, _| s.closed_a.is_some());
        let after = timeout.unwrap_or(Duration::from_secs(10));
        // The SYN arrived at 10 ms; it is refused `incoming_timeout` later.
        let reset = net.sent_of(BOB, PacketType::Reset);
        assert_eq!(reset.len(), 1, "{}", net.trace());
        assert_eq!(reset[0].at, Instant::from_millis(10) + after, "{}", net.trace());
        assert_eq!(
            (reset[0].header.connection_id, reset[0].header.ack_nr),
            (cid, 1),
            "RESET names the SYN's id and seq_nr"
        );
        assert_eq!(s.closed_a, Some((reset[0].at + ms(10), Err(ConnectionError::Refused))));
        assert_eq!(s.incoming_b(), 1, "retransmitted SYNs are not new connections");
        assert_eq!(net.b.pending_incoming(), 0);
        assert_eq!(net.b.endpoint_stats().incoming_refused, 1);
        // The id may be registered afterwards; it waits for a SYN afresh.
        let bob = net.b.accept_with_id(net.now, ALICE, cid).unwrap();
        assert_eq!(net.b.state(bob), Some(State::Listen));
    }
}

/// FindContent where Bob writes, sends his FIN and is gone: `answer` says whether his
/// node still answers (with RESETs: the connection is forgotten) or is silent.
fn writer_vanishes(answers: bool) -> (Net, Session, Vec<u8>) {
    let cid = 31337;
    let mut net = Net::new(portal(), portal(), 10);
    let mut s = Session::new(false, true);
    let bob = net.b.accept_with_id(net.now, ALICE, cid).unwrap();
    let data = content(10);
    net.b.write(bob, &data).unwrap();
    net.b.shutdown(bob);
    s.alice = Some(net.a.connect_with_id(net.now, BOB, cid).unwrap());
    s.bob = Some(bob);
    // Run until Bob's FIN is on the wire.
    net.run_until(1_000, |n| !n.sent_of(BOB, PacketType::Fin).is_empty());
    if answers {
        // Bob's node forgets the connection (a fresh endpoint knows nothing of it).
        net.b = utp_proto::utp::Endpoint::new(std::sync::Arc::new(portal()), 99);
    } else {
        // Nothing from or to Bob arrives any more.
        net.set_filter(|_| Fate::Drop);
    }
    s.run_until(&mut net, 1_000, |s, _| s.closed_a.is_some());
    (net, s, data)
}

#[test]
fn one_way_fin_writer_forgets_the_connection_reader_closes_cleanly() {
    let (net, s, data) = writer_vanishes(true);
    assert_eq!(s.recv_a, data, "{}", net.trace());
    let fin = net.sent_of(BOB, PacketType::Fin)[0];
    assert_eq!(s.eof_a, Some(fin.at + ms(10)), "end of stream as soon as the FIN arrived");
    // Alice, who has everything and owes nothing, closes cleanly at once (observed at the
    // session's next step); her courtesy FIN meets a node that forgot the connection.
    let reset = net.sent_of(BOB, PacketType::Reset);
    assert!(!reset.is_empty(), "{}", net.trace());
    assert_eq!(s.closed_a, Some((fin.at + ms(20), Ok(()))), "{}", net.trace());
}

#[test]
fn one_way_fin_silent_writer_reader_gets_the_end_of_stream_at_once() {
    let (net, s, data) = writer_vanishes(false);
    assert_eq!(s.recv_a, data);
    let fin = net.sent_of(BOB, PacketType::Fin)[0];
    assert_eq!(s.eof_a, Some(fin.at + ms(10)), "the reader need not wait for anything");
}

#[test]
fn one_way_fin_silent_writer_reader_still_closes_cleanly() {
    let (net, s, data) = writer_vanishes(false);
    assert_eq!(s.recv_a, data);
    // Alice has every byte up to Bob's FIN and owes Bob nothing: the only thing missing is
    // the ACK of her own courtesy FIN, which a Portal writer need not send. Today her FIN
    // is retransmitted on RTO (1+2+4+8+16 s) and the close fails with TimedOut at 31 s.
    let fin = net.sent_of(BOB, PacketType::Fin)[0];
    let (at, result) = s.closed_a.unwrap();
    assert_eq!(result, Ok(()), "{}", net.trace());
    assert!(at <= fin.at + Duration::from_secs(5), "the close hung until {at:?}");
}
