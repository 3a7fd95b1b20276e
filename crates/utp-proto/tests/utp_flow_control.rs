//! Nagle, ACK coalescing, the receive window with zero-window probing, duplicate-ACK fast
//! retransmit, keepalives and the idle timeout, on two endpoints fed by hand.

mod utp_common;

use std::sync::Arc;
use std::time::Duration;

use utp_common::{ALICE, BOB, Ep, header, packet_bytes};
use utp_proto::utp::{Config, ConnectionError, ConnectionHandle, Endpoint, Event};
use utp_proto::wire::utp::{Packet, PacketType};
use utp_proto::{Instant, Machine};

struct Two {
    a: Ep,
    b: Ep,
    now: Instant,
    a_conn: ConnectionHandle,
    b_conn: ConnectionHandle,
}

/// Every datagram `ep` wants to send now, parsed to (type, seq, ack, payload length).
fn drain(ep: &mut Ep, now: Instant) -> Vec<(PacketType, u16, u16, usize, Vec<u8>)> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    while let Some(t) = ep.poll_transmit(now, &mut buf) {
        let p = Packet::parse(&buf[..t.size]).expect("we send valid packets");
        let h = p.header();
        out.push((h.packet_type, h.seq_nr, h.ack_nr, p.payload().len(), buf[..t.size].to_vec()));
    }
    out
}

fn deliver(
    to: &mut Ep,
    from: u8,
    now: Instant,
    packets: &[(PacketType, u16, u16, usize, Vec<u8>)],
) {
    for p in packets {
        to.handle_datagram(now, from, &p.4);
    }
}

impl Two {
    /// Alice connected to Bob, the handshake done (Alice's first DATA carries `first`).
    fn new(a: Config, b: Config, first: &[u8]) -> Self {
        let mut a = Endpoint::new(Arc::new(a), 1);
        let mut b = Endpoint::new(Arc::new(b), 2);
        let now = Instant::from_millis(1000);
        let a_conn = a.connect(now, BOB).unwrap();
        let syn = drain(&mut a, now);
        deliver(&mut b, ALICE, now, &syn);
        let Some(Event::Incoming { id, .. }) = b.poll_event() else { panic!("no SYN") };
        let b_conn = b.accept(now, id).unwrap();
        let synack = drain(&mut b, now);
        deliver(&mut a, BOB, now, &synack);
        a.write(a_conn, first).unwrap();
        let mut two = Two { a, b, now, a_conn, b_conn };
        two.ab();
        two.ba();
        while two.a.poll_event().is_some() {}
        while two.b.poll_event().is_some() {}
        two
    }

    fn ab(&mut self) -> Vec<(PacketType, u16, u16, usize, Vec<u8>)> {
        let p = drain(&mut self.a, self.now);
        deliver(&mut self.b, ALICE, self.now, &p);
        p
    }

    fn ba(&mut self) -> Vec<(PacketType, u16, u16, usize, Vec<u8>)> {
        let p = drain(&mut self.b, self.now);
        deliver(&mut self.a, BOB, self.now, &p);
        p
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.a.handle_timeout(self.now);
        self.b.handle_timeout(self.now);
    }

    fn read_b(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = self.b.read(self.b_conn, &mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        out
    }
}

fn data_sizes(p: &[(PacketType, u16, u16, usize, Vec<u8>)]) -> Vec<usize> {
    p.iter().filter(|p| p.0 == PacketType::Data).map(|p| p.3).collect()
}

#[test]
fn nagle_holds_small_writes_while_data_is_unacknowledged() {
    let mut t = Two::new(Config::default(), Config::default(), b"x");
    t.a.write(t.a_conn, &[1; 10]).unwrap();
    assert_eq!(data_sizes(&t.ab()), [10], "nothing in flight: sent at once");
    for _ in 0..9 {
        t.a.write(t.a_conn, &[2; 10]).unwrap();
        assert!(data_sizes(&drain(&mut t.a, t.now)).is_empty(), "held behind the packet in flight");
    }
    t.ba(); // Bob acknowledges the first packet
    assert_eq!(data_sizes(&t.ab()), [90], "the nine writes leave as one packet");
}

#[test]
fn without_nagle_every_write_leaves_at_once() {
    let mut config = Config::default();
    config.set_nagle(false).unwrap();
    let mut t = Two::new(config, Config::default(), b"x");
    for _ in 0..5 {
        t.a.write(t.a_conn, &[1; 10]).unwrap();
        assert_eq!(data_sizes(&drain(&mut t.a, t.now)), [10]);
    }
}

#[test]
fn one_ack_per_batch_of_received_packets() {
    let mut t = Two::new(Config::default(), Config::default(), b"x");
    // Open the congestion window first: slow start begins at one packet.
    t.a.write(t.a_conn, &vec![7; 64 * 1382]).unwrap();
    // LEDBAT grows only on real one-way delay samples: let each flight take 1 ms.
    let ms = Duration::from_millis(1);
    for _ in 0..10 {
        let p = drain(&mut t.a, t.now);
        t.now += ms;
        deliver(&mut t.b, ALICE, t.now, &p);
        let q = drain(&mut t.b, t.now);
        t.now += ms;
        deliver(&mut t.a, BOB, t.now, &q);
    }
    t.read_b();
    t.a.write(t.a_conn, &vec![7; 10 * 1382]).unwrap();
    assert!(t.a.stats(t.a_conn).unwrap().cwnd >= 10 * 1382);
    let sent = t.ab();
    assert_eq!(data_sizes(&sent).len(), 10, "ten full packets in one batch");
    let acks = drain(&mut t.b, t.now);
    assert_eq!(acks.len(), 1, "one ACK for the whole batch");
    assert_eq!(acks[0].0, PacketType::State);
    assert_eq!(acks[0].2, sent.last().unwrap().1, "it acknowledges the last packet");
}

#[test]
fn a_full_receive_window_stops_the_sender_until_the_reader_reads() {
    let mut small = Config::default();
    small.set_recv_buffer(4 * 1382).unwrap();
    let mut t = Two::new(Config::default(), small, b"");
    let data: Vec<u8> = (0..20 * 1382).map(|i| i as u8).collect();
    let mut written = t.a.write(t.a_conn, &data).unwrap();
    let mut got = Vec::new();
    for round in 0..200 {
        let sent = t.ab();
        t.ba();
        let in_flight_payload: usize = data_sizes(&sent).iter().sum();
        assert!(in_flight_payload <= 4 * 1382, "round {round}: never more than the window");
        if round % 3 == 2 {
            got.extend(t.read_b()); // a slow reader
        }
        if written < data.len() {
            written += t.a.write(t.a_conn, &data[written..]).unwrap_or(0);
        }
        if got.len() == data.len() {
            break;
        }
    }
    assert_eq!(got, data);
}

#[test]
fn a_zero_window_is_probed_after_15_seconds_when_the_update_is_lost() {
    let mut small = Config::default();
    small.set_recv_buffer(2 * 1382).unwrap();
    let mut t = Two::new(Config::default(), small, b"");
    t.a.write(t.a_conn, &vec![1; 6 * 1382]).unwrap();
    for _ in 0..4 {
        t.ab();
        t.ba(); // Bob's window fills: he reads nothing
    }
    assert!(data_sizes(&t.ab()).is_empty(), "zero window: Alice waits");
    assert_eq!(t.a.stats(t.a_conn).unwrap().peer_window, 0);
    t.read_b();
    let _lost_update = drain(&mut t.b, t.now); // the window update is lost
    t.advance(Duration::from_secs(14));
    assert!(data_sizes(&t.ab()).is_empty(), "still waiting at 14 s");
    t.advance(Duration::from_secs(1));
    assert_eq!(data_sizes(&t.ab()).len(), 1, "one probe packet at 15 s");
    t.ba();
    assert!(!data_sizes(&t.ab()).is_empty(), "the probe's ACK reopened the window");
}

#[test]
fn three_duplicate_acks_resend_the_oldest_packet_before_the_timeout() {
    let mut t = Two::new(Config::default(), Config::default(), b"x");
    t.a.write(t.a_conn, &vec![3; 8 * 1382]).unwrap();
    let sent = drain(&mut t.a, t.now);
    let first = sent[0].1;
    let (recv_id, send_id) = t.b.connection_ids(t.b_conn).unwrap();
    assert_eq!(recv_id, send_id.wrapping_add(1));
    // A peer without selective ACKs: three plain duplicate ACKs of the packet before.
    for _ in 0..3 {
        let dup = packet_bytes(header(PacketType::State, send_id, 100, first.wrapping_sub(1)), &[]);
        t.a.handle_datagram(t.now, BOB, &dup);
    }
    let resent = drain(&mut t.a, t.now);
    assert_eq!(resent.len(), 1, "{resent:?}");
    assert_eq!((resent[0].0, resent[0].1), (PacketType::Data, first), "the oldest, resent");
    assert_eq!(t.a.stats(t.a_conn).unwrap().fast_retransmits, 1);
}

#[test]
fn an_idle_connection_sends_keepalives_every_29_seconds() {
    let mut t = Two::new(Config::default(), Config::default(), b"x");
    t.advance(Duration::from_secs(28));
    assert!(drain(&mut t.a, t.now).is_empty());
    t.advance(Duration::from_secs(1));
    let keepalive = drain(&mut t.a, t.now);
    assert_eq!(keepalive.len(), 1);
    assert_eq!(keepalive[0].0, PacketType::State);
    deliver(&mut t.b, ALICE, t.now, &keepalive);
    assert!(t.b.poll_event().is_none(), "a keepalive is not data");
}

#[test]
fn the_idle_timeout_closes_a_connection_whose_peer_went_silent() {
    let mut config = Config::default();
    config.set_idle_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut t = Two::new(config, Config::default(), b"x");
    // Bob vanishes: nothing from him arrives any more.
    t.advance(Duration::from_millis(4999));
    drain(&mut t.a, t.now);
    assert!(t.a.poll_event().is_none());
    t.advance(Duration::from_millis(1));
    assert_eq!(
        t.a.poll_event(),
        Some(Event::Closed { handle: t.a_conn, result: Err(ConnectionError::TimedOut) })
    );
}
