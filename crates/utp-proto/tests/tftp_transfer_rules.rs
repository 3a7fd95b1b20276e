//! The protocol's rules, one test each: Sorcerer's Apprentice, transfer IDs, amplification,
//! option refusal (ERROR 8), ERROR handling, retransmission backoff, dallying, backpressure
//! and the tsize check.

mod tftp_common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tftp_common::{
    CLIENT, FIRST_TRANSFER_PORT, Net, Op, SERVER, SERVER_IP, assert_intact, payload,
};
use utp_proto::sim::LinkConfig;
use utp_proto::tftp::{
    Config, Event, Name, OackError, OptionRequest, Server, Transfer, TransferError,
};
use utp_proto::wire::tftp::{ErrorCode, Mode, Options, Packet};
use utp_proto::{Instant, Machine};

fn link() -> LinkConfig {
    LinkConfig::default().with_latency(Duration::from_millis(5))
}

/// Everything `machine` wants to send now.
fn drain(
    machine: &mut impl Machine<Peer = SocketAddr>,
    now: Instant,
) -> Vec<(SocketAddr, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    while let Some(t) = machine.poll_transmit(now, &mut buf) {
        out.push((t.destination, buf[..t.size].to_vec()));
        assert!(out.len() < 10_000, "flood");
    }
    out
}

fn emit(packet: Packet<'_>) -> Vec<u8> {
    let mut buf = Vec::new();
    packet.emit(&mut buf);
    buf
}

fn events(transfer: &mut Transfer) -> Vec<Event> {
    std::iter::from_fn(|| transfer.poll_event()).collect()
}

#[test]
fn duplicated_acks_never_cause_retransmissions_in_lockstep() {
    // Sorcerer's Apprentice: every datagram arrives twice. A sender that answered each
    // duplicate ACK with DATA would double its traffic at every block.
    let dup = link().with_duplicate(1.0);
    let mut net = Net::new(
        Op::Get,
        Mode::Octet,
        OptionRequest::NONE,
        Config::default(),
        payload(100 * 512, 1),
        dup,
        dup,
        1,
    );
    let outcome = net.run(Duration::from_secs(600));
    assert_intact(&net, Op::Get, &outcome, "duplicated");
    let stats = net.main_served().transfer.stats();
    assert_eq!(stats.data_retransmitted, 0, "{stats:?}");
    assert_eq!(stats.data_sent, 101);
    assert!(stats.duplicate_acks >= 100, "the duplicates were seen and ignored: {stats:?}");
}

#[test]
fn a_stranger_gets_error_5_and_the_transfer_continues() {
    let mut net = Net::new(
        Op::Put,
        Mode::Octet,
        OptionRequest::NONE,
        Config::default(),
        payload(50 * 512, 2),
        link(),
        link(),
        2,
    );
    net.run_until(Duration::from_secs(60), |n| {
        n.served.first().is_some_and(|s| s.received.len() > 512)
    });
    let stranger: SocketAddr = "192.0.2.99:4444".parse().unwrap();
    let forged = emit(Packet::Data { block: 3, data: b"evil" });
    net.inject_to_server(stranger, FIRST_TRANSFER_PORT, &forged);
    // Same address as the client, wrong port: a stranger too.
    let wrong_port = SocketAddr::new(CLIENT.ip(), CLIENT.port() + 1);
    net.inject_to_server(wrong_port, FIRST_TRANSFER_PORT, &forged);
    let outcome = net.run(Duration::from_secs(600));
    assert_intact(&net, Op::Put, &outcome, "with strangers");
    let replies: Vec<_> = net.to_strangers.iter().filter(|(to, _)| *to == stranger).collect();
    assert_eq!(replies.len(), 1);
    assert!(matches!(
        Packet::parse(&replies[0].1),
        Ok(Packet::Error { code: ErrorCode::UnknownTransferId, .. })
    ));
    assert_eq!(net.main_served().transfer.stats().strangers, 2);
}

#[test]
fn a_client_locks_onto_the_first_answering_port_and_refuses_others() {
    let config = Arc::new(Config::default());
    let now = Instant::ZERO;
    let mut client =
        Transfer::client_read(config, SERVER, "f", Mode::Octet, OptionRequest::NONE, now).unwrap();
    let request = drain(&mut client, now);
    assert_eq!(request.len(), 1);
    assert_eq!(request[0].0, SERVER);
    let tid = SocketAddr::new(SERVER_IP, 40_000);
    client.handle_datagram(now, tid, &emit(Packet::Data { block: 1, data: &[1; 512] }));
    assert_eq!(drain(&mut client, now), vec![(tid, emit(Packet::Ack { block: 1 }))]);
    // A second server port (a duplicate request's transfer) gets ERROR 5.
    let other = SocketAddr::new(SERVER_IP, 40_001);
    client.handle_datagram(now, other, &emit(Packet::Data { block: 2, data: &[9; 10] }));
    let out = drain(&mut client, now);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, other);
    assert!(matches!(
        Packet::parse(&out[0].1),
        Ok(Packet::Error { code: ErrorCode::UnknownTransferId, .. })
    ));
    // Another host entirely, even before locking, is refused too.
    assert_eq!(client.peer(), tid);
    client.handle_datagram(now, tid, &emit(Packet::Data { block: 2, data: &[2; 3] }));
    assert!(!client.is_complete(), "not before the final ACK leaves");
    assert_eq!(drain(&mut client, now), vec![(tid, emit(Packet::Ack { block: 2 }))]);
    assert!(client.is_complete());
}

fn spoofed_request(options: &[(&str, &str)]) -> (Server, Arc<Config>) {
    let config = Arc::new(Config::default());
    let mut server = Server::new(config.clone());
    let options = Options::from_pairs(options).unwrap();
    let request = emit(Packet::ReadRequest(utp_proto::wire::tftp::Request {
        filename: b"big.iso",
        mode: Mode::Octet,
        options,
    }));
    server.handle_datagram(Instant::ZERO, CLIENT, &request);
    (server, config)
}

/// Runs a server transfer toward a peer that never answers; returns every datagram sent.
fn unanswered(transfer: &mut Transfer) -> Vec<Vec<u8>> {
    let mut sent = Vec::new();
    let mut now = Instant::ZERO;
    for _ in 0..100 {
        transfer.write(&[7; 4096]);
        sent.extend(drain(transfer, now).into_iter().map(|(_, d)| d));
        match transfer.poll_timeout() {
            Some(t) => {
                now = t;
                transfer.handle_timeout(now);
            }
            None => break,
        }
    }
    sent
}

#[test]
fn a_spoofed_read_request_is_not_amplified() {
    // Without options: DATA 1 once plus `unverified_retries` (1) retransmissions, then silence.
    let (mut server, config) = spoofed_request(&[]);
    let incoming = server.poll_event().unwrap();
    let mut transfer = incoming.accept(config.clone(), Some(1 << 30), Instant::ZERO);
    let sent = unanswered(&mut transfer);
    assert_eq!(sent.len(), 2, "DATA 1 twice, no window, no ERROR");
    assert!(sent.iter().all(|d| matches!(Packet::parse(d), Ok(Packet::Data { block: 1, .. }))));
    assert!(matches!(transfer.error(), Some(TransferError::TimedOut { .. })));
    // With options: only the small OACK goes out, never DATA.
    let (mut server, config) = spoofed_request(&[("blksize", "65464"), ("windowsize", "64")]);
    let incoming = server.poll_event().unwrap();
    // Opcode, then each string with its NUL.
    let request_len = 2 + ["big.iso", "octet", "blksize", "65464", "windowsize", "64"]
        .iter()
        .map(|s| s.len() + 1)
        .sum::<usize>();
    let mut transfer = incoming.accept(config, Some(1 << 30), Instant::ZERO);
    let sent = unanswered(&mut transfer);
    assert!(!sent.is_empty());
    for datagram in &sent {
        assert!(matches!(Packet::parse(datagram), Ok(Packet::OptionAck(_))), "{datagram:?}");
        assert!(datagram.len() <= request_len);
    }
}

#[test]
fn a_client_refuses_an_oack_it_did_not_ask_for_with_error_8() {
    let config = Arc::new(Config::default());
    let now = Instant::ZERO;
    let options = OptionRequest { blksize: Some(1024), ..OptionRequest::NONE };
    let mut client = Transfer::client_read(config, SERVER, "f", Mode::Octet, options, now).unwrap();
    drain(&mut client, now);
    let tid = SocketAddr::new(SERVER_IP, 40_000);
    let oack = Options::from_pairs(&[("blksize", "2048")]).unwrap();
    client.handle_datagram(now, tid, &emit(Packet::OptionAck(oack)));
    let out = drain(&mut client, now);
    assert_eq!(out.len(), 1);
    assert!(matches!(
        Packet::parse(&out[0].1),
        Ok(Packet::Error { code: ErrorCode::OptionRefused, .. })
    ));
    let expected = TransferError::OptionsRefused(OackError::Value(Name::Blksize));
    assert_eq!(events(&mut client), vec![Event::Failed(expected)]);
    assert!(client.is_closed());
    assert_eq!(client.poll_timeout(), None, "nothing is retransmitted after the refusal");
}

#[test]
fn a_server_stops_at_once_when_the_client_refuses_its_oack() {
    let (mut server, config) = spoofed_request(&[("blksize", "1428")]);
    let incoming = server.poll_event().unwrap();
    let mut transfer = incoming.accept(config, Some(10_000), Instant::ZERO);
    let oack = drain(&mut transfer, Instant::ZERO);
    assert!(matches!(Packet::parse(&oack[0].1), Ok(Packet::OptionAck(_))));
    let refusal = emit(Packet::Error { code: ErrorCode::OptionRefused, message: b"no thanks" });
    transfer.handle_datagram(Instant::from_millis(3), CLIENT, &refusal);
    assert!(drain(&mut transfer, Instant::from_millis(3)).is_empty(), "an ERROR is never answered");
    assert_eq!(transfer.poll_timeout(), None, "and nothing is retransmitted");
    assert!(transfer.is_closed());
    assert_eq!(
        transfer.error(),
        Some(&TransferError::Peer { code: ErrorCode::OptionRefused, message: "no thanks".into() })
    );
}

#[test]
fn timeouts_back_off_exponentially_up_to_the_cap() {
    let config = Arc::new(Config::default());
    let mut client = Transfer::client_write(
        config,
        SERVER,
        "f",
        Mode::Octet,
        OptionRequest::NONE,
        Instant::ZERO,
    )
    .unwrap();
    let mut now = Instant::ZERO;
    let mut gaps = Vec::new();
    loop {
        let sent = drain(&mut client, now);
        let Some(next) = client.poll_timeout() else { break };
        assert!(!sent.is_empty() || !gaps.is_empty());
        gaps.push((next - now).as_secs());
        now = next;
        client.handle_timeout(now);
    }
    assert_eq!(gaps, [1, 2, 4, 8, 8, 8]);
    assert_eq!(client.error(), Some(&TransferError::TimedOut { retries: 5 }));
}

#[test]
fn the_receiver_dallies_to_acknowledge_a_repeated_last_block() {
    let config = Arc::new(Config::default());
    let now = Instant::ZERO;
    let mut client =
        Transfer::client_read(config, SERVER, "f", Mode::Octet, OptionRequest::NONE, now).unwrap();
    drain(&mut client, now);
    let tid = SocketAddr::new(SERVER_IP, 40_000);
    client.handle_datagram(now, tid, &emit(Packet::Data { block: 1, data: b"end" }));
    assert_eq!(drain(&mut client, now).len(), 1);
    assert!(client.is_complete());
    assert!(!client.is_closed(), "dallying");
    // The ACK was lost; the sender repeats the block half a second later.
    let later = Instant::from_millis(500);
    client.handle_datagram(later, tid, &emit(Packet::Data { block: 1, data: b"end" }));
    assert_eq!(drain(&mut client, later), vec![(tid, emit(Packet::Ack { block: 1 }))]);
    let end = client.poll_timeout().unwrap();
    assert_eq!(end, later + Duration::from_secs(1), "each repeat restarts the dally");
    client.handle_timeout(end);
    assert!(client.is_closed());
    let mut buf = [0; 8];
    assert_eq!(client.read(&mut buf), 3, "the data stays readable after the end");
}

#[test]
fn a_receiver_that_is_not_read_stalls_the_sender_and_resumes() {
    let mut config = Config::default();
    config.set_recv_buffer(4096).unwrap();
    let data = payload(100_000, 3);
    let options = OptionRequest { windowsize: Some(4), ..OptionRequest::NONE };
    let mut net = Net::new(Op::Get, Mode::Octet, options, config, data, link(), link(), 3);
    net.client_reads = false;
    // A pause shorter than the sender's patience (its retries with backoff).
    net.run_until(Duration::from_millis(300), |_| false);
    assert!(net.client.readable_len() <= 4096, "the buffer bound holds");
    assert!(!net.client.is_complete());
    net.client_reads = true;
    let outcome = net.run(Duration::from_secs(600));
    assert_intact(&net, Op::Get, &outcome, "after a stall");
}

#[test]
fn a_size_different_from_tsize_fails_the_receiver() {
    let config = Arc::new(Config::default());
    let now = Instant::ZERO;
    let options = OptionRequest { tsize: Some(0), ..OptionRequest::NONE };
    let mut client = Transfer::client_read(config, SERVER, "f", Mode::Octet, options, now).unwrap();
    drain(&mut client, now);
    let tid = SocketAddr::new(SERVER_IP, 40_000);
    let oack = Options::from_pairs(&[("tsize", "10")]).unwrap();
    client.handle_datagram(now, tid, &emit(Packet::OptionAck(oack)));
    assert_eq!(drain(&mut client, now), vec![(tid, emit(Packet::Ack { block: 0 }))]);
    client.handle_datagram(now, tid, &emit(Packet::Data { block: 1, data: b"short" }));
    let out = drain(&mut client, now);
    assert_eq!(out, vec![(tid, emit(Packet::Ack { block: 1 }))], "the sender still gets its ACK");
    let failed = events(&mut client).into_iter().find(|e| matches!(e, Event::Failed(_)));
    assert_eq!(
        failed,
        Some(Event::Failed(TransferError::SizeMismatch { announced: 10, received: 5 }))
    );
}

#[test]
fn the_request_port_answers_what_is_not_a_request() {
    let config = Arc::new(Config::default());
    let mut server = Server::new(config);
    let now = Instant::ZERO;
    server.handle_datagram(now, CLIENT, &emit(Packet::Ack { block: 4 }));
    server.handle_datagram(now, CLIENT, b"\x00\x01no-nul");
    server.handle_datagram(now, CLIENT, b"\x00\x01f\0mail\0");
    server.handle_datagram(
        now,
        CLIENT,
        &emit(Packet::Error { code: ErrorCode::NotDefined, message: b"x" }),
    );
    let codes: Vec<_> = drain(&mut server, now)
        .into_iter()
        .map(|(to, d)| {
            assert_eq!(to, CLIENT);
            match Packet::parse(&d) {
                Ok(Packet::Error { code, .. }) => code,
                other => panic!("{other:?}"),
            }
        })
        .collect();
    assert_eq!(
        codes,
        [ErrorCode::UnknownTransferId, ErrorCode::IllegalOperation, ErrorCode::IllegalOperation],
        "an ERROR is never answered"
    );
    assert!(server.poll_event().is_none());
    assert_eq!(server.stats().malformed, 4);
}

#[test]
fn pending_requests_are_bounded() {
    let mut config = Config::default();
    config.set_max_pending_requests(3).unwrap();
    let mut server = Server::new(Arc::new(config));
    for port in 1000..1010 {
        let from = SocketAddr::new(CLIENT.ip(), port);
        server.handle_datagram(Instant::ZERO, from, b"\x00\x01f\0octet\0");
    }
    assert_eq!(std::iter::from_fn(|| server.poll_event()).count(), 3);
    assert_eq!(server.stats().requests_dropped, 7);
}

#[test]
fn an_upload_different_from_its_tsize_is_refused_not_acknowledged() {
    let config = Arc::new(Config::default());
    let mut server = Server::new(config.clone());
    let options = Options::from_pairs(&[("tsize", "100")]).unwrap();
    let request = emit(Packet::WriteRequest(utp_proto::wire::tftp::Request {
        filename: b"up",
        mode: Mode::Octet,
        options,
    }));
    let now = Instant::ZERO;
    server.handle_datagram(now, CLIENT, &request);
    let mut transfer = server.poll_event().unwrap().accept(config, None, now);
    assert!(matches!(Packet::parse(&drain(&mut transfer, now)[0].1), Ok(Packet::OptionAck(_))));
    transfer.handle_datagram(now, CLIENT, &emit(Packet::Data { block: 1, data: &[1; 200] }));
    let out = drain(&mut transfer, now);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(
        matches!(Packet::parse(&out[0].1), Ok(Packet::Error { code: ErrorCode::NotDefined, .. })),
        "an ERROR, not the final ACK: {out:?}"
    );
    assert_eq!(
        transfer.error(),
        Some(&TransferError::SizeMismatch { announced: 100, received: 200 })
    );
}

#[test]
fn a_netascii_request_does_not_ask_for_tsize() {
    let config = Arc::new(Config::default());
    let options = OptionRequest { blksize: Some(1428), tsize: Some(0), ..OptionRequest::NONE };
    let mut client =
        Transfer::client_read(config, SERVER, "f", Mode::Netascii, options, Instant::ZERO).unwrap();
    let request = drain(&mut client, Instant::ZERO);
    let Ok(Packet::ReadRequest(request)) = Packet::parse(&request[0].1) else { panic!() };
    assert_eq!(request.options.get("blksize"), Some("1428"));
    assert_eq!(request.options.get("tsize"), None);
}

#[test]
fn an_error_while_dallying_ends_the_dally_without_a_failure() {
    for abort in [false, true] {
        let config = Arc::new(Config::default());
        let now = Instant::ZERO;
        let mut client =
            Transfer::client_read(config, SERVER, "f", Mode::Octet, OptionRequest::NONE, now)
                .unwrap();
        drain(&mut client, now);
        let tid = SocketAddr::new(SERVER_IP, 40_000);
        client.handle_datagram(now, tid, &emit(Packet::Data { block: 1, data: b"x" }));
        drain(&mut client, now);
        if abort {
            client.abort(ErrorCode::NotDefined, "bye");
        } else {
            let error = emit(Packet::Error { code: ErrorCode::NotDefined, message: b"gave up" });
            client.handle_datagram(now, tid, &error);
        }
        assert!(drain(&mut client, now).is_empty(), "nothing is sent (abort {abort})");
        assert!(client.is_closed() && client.is_complete() && client.error().is_none());
        let events = events(&mut client);
        assert!(events.contains(&Event::Complete));
        assert!(!events.iter().any(|e| matches!(e, Event::Failed(_))), "{events:?}");
    }
}

#[test]
fn windowsize_is_limited_to_half_the_block_number_space() {
    let options = OptionRequest { windowsize: Some(40_000), ..OptionRequest::NONE };
    let result = Transfer::client_read(
        Arc::new(Config::default()),
        SERVER,
        "f",
        Mode::Octet,
        options,
        Instant::ZERO,
    );
    let error = result.expect_err("refused").to_string();
    assert_eq!(error, "windowsize must be between 1 and 32768 blocks, got 40000");
}

#[test]
fn a_receiver_can_refuse_the_last_block_before_its_ack_leaves() {
    // A server whose upload cap the last block passes: the client gets ERROR 3, not an ACK.
    let config = Arc::new(Config::default());
    let mut server = Server::new(config.clone());
    let now = Instant::ZERO;
    server.handle_datagram(now, CLIENT, b"\x00\x02up\0octet\0");
    let mut transfer = server.poll_event().unwrap().accept(config, None, now);
    assert_eq!(drain(&mut transfer, now), vec![(CLIENT, emit(Packet::Ack { block: 0 }))]);
    transfer.handle_datagram(now, CLIENT, &emit(Packet::Data { block: 1, data: &[1; 100] }));
    assert!(!transfer.is_complete());
    transfer.abort(ErrorCode::DiskFull, "over the cap");
    let out = drain(&mut transfer, now);
    assert_eq!(out.len(), 1);
    assert!(matches!(
        Packet::parse(&out[0].1),
        Ok(Packet::Error { code: ErrorCode::DiskFull, .. })
    ));
    let events = events(&mut transfer);
    assert!(!events.contains(&Event::Complete), "{events:?}");
    assert!(matches!(transfer.error(), Some(TransferError::Aborted { .. })));
}
