//! Byte-exact vectors for every rudp packet type, written out by hand from the tables of
//! `docs/rudp.md`: each vector is parsed, compared field by field, and emitted back.

use utp_proto::wire::rudp::{
    COOKIE_LEN, CloseCode, ConnectAck, DATA_HEADER_LEN, Datagram, EmitError, HEADER_LEN,
    MAX_REASON_LEN, MIN_CONNECT_LEN, Packet, PacketType, ParseError, Ranges,
};

const COOKIE: [u8; COOKIE_LEN] = *b"\xc0\xc1\xc2\xc3\xc4\xc5\xc6\xc7\xc8\xc9\xca\xcb";

/// Concatenates byte pieces.
fn bytes(pieces: &[&[u8]]) -> Vec<u8> {
    pieces.concat()
}

/// Parses `wire`, checks it is `expected`, and checks `emit` gives `wire` back.
fn check_vector(wire: &[u8], expected: Datagram<'_>) {
    assert_eq!(Datagram::parse(wire), Ok(expected));
    let mut buf = vec![0xee; 7];
    expected.emit(&mut buf);
    assert_eq!(buf, wire);
    assert_eq!(expected.emitted_len(), wire.len());
}

#[test]
fn connect_without_cookie() {
    let mut wire = bytes(&[
        b"\x01\x01",                         // version 1, type CONNECT
        &[0; 8],                             // dst_id 0
        b"\x01\x02\x03\x04\x05\x06\x07\x08", // 10: src_id
        b"\x01\x00\x00\x00",                 // 18: max_message 16 MiB
        b"\x00\x01\x00\x00",                 // 22: window 64 KiB
        b"\x00",                             // 26: cookie_len 0
    ]);
    assert_eq!(wire.len(), 27);
    wire.resize(MIN_CONNECT_LEN, 0);
    check_vector(
        &wire,
        Datagram {
            dst_id: 0,
            packet: Packet::Connect {
                src_id: 0x0102_0304_0506_0708,
                max_message: 16 << 20,
                window: 65536,
                cookie: None,
            },
        },
    );
}

#[test]
fn connect_with_cookie() {
    let mut wire = bytes(&[
        b"\x01\x01",
        &[0; 8],
        &[0, 0, 0, 0, 0, 0, 0, 9], // 10: src_id 9
        b"\x00\x00\x10\x00",       // 18: max_message 4096
        b"\x00\x00\x20\x00",       // 22: window 8192
        b"\x0c",                   // 26: cookie_len 12
        &COOKIE,                   // 27: cookie
    ]);
    assert_eq!(wire.len(), 39);
    wire.resize(MIN_CONNECT_LEN, 0);
    check_vector(
        &wire,
        Datagram {
            dst_id: 0,
            packet: Packet::Connect {
                src_id: 9,
                max_message: 4096,
                window: 8192,
                cookie: Some(&COOKIE),
            },
        },
    );
}

#[test]
fn connect_rules() {
    let mut wire = bytes(&[b"\x01\x01", &[0; 8], &[0, 0, 0, 0, 0, 0, 0, 9], &[0; 9]]);
    wire.resize(MIN_CONNECT_LEN, 0);
    assert!(Datagram::parse(&wire).is_ok());
    // Shorter than 64 bytes.
    assert_eq!(Datagram::parse(&wire[..63]), Err(ParseError::TooShort { len: 63 }));
    // Non-zero padding and a longer datagram are accepted.
    let mut padded = wire.clone();
    padded.extend_from_slice(b"padding");
    padded[40] = 0x55;
    assert_eq!(Datagram::parse(&padded), Datagram::parse(&wire));
    // dst_id must be 0.
    let mut bad = wire.clone();
    bad[9] = 1;
    assert_eq!(Datagram::parse(&bad), Err(ParseError::ConnectDstId(1)));
    // src_id must not be 0.
    let mut bad = wire.clone();
    bad[17] = 0;
    assert_eq!(Datagram::parse(&bad), Err(ParseError::ZeroSrcId));
    // cookie_len is 0 or 12.
    let mut bad = wire.clone();
    bad[26] = 11;
    assert_eq!(Datagram::parse(&bad), Err(ParseError::CookieLen(11)));
}

#[test]
fn connect_ack_challenge() {
    let wire = bytes(&[
        b"\x01\x02",                         // version 1, type CONNECT-ACK
        b"\x01\x02\x03\x04\x05\x06\x07\x08", // dst_id: the starter's src_id
        b"\x00",                             // 10: kind challenge
        &[0; 8],                             // 11: src_id 0
        &[0; 4],                             // 19: max_message 0
        &[0; 4],                             // 23: window 0
        b"\x0c",                             // 27: cookie_len 12
        &COOKIE,                             // 28: cookie
    ]);
    assert_eq!(wire.len(), 40);
    check_vector(
        &wire,
        Datagram {
            dst_id: 0x0102_0304_0506_0708,
            packet: Packet::ConnectAck(ConnectAck::Challenge { cookie: &COOKIE }),
        },
    );
    let mut bad = wire.clone();
    bad[18] = 1;
    assert_eq!(Datagram::parse(&bad), Err(ParseError::ChallengeFields));
    let mut bad = wire.clone();
    bad[26] = 1;
    assert_eq!(Datagram::parse(&bad), Err(ParseError::ChallengeFields));
    let mut bad = wire.clone();
    bad[10] = 2;
    assert_eq!(Datagram::parse(&bad), Err(ParseError::UnknownAckKind(2)));
    let mut bad = wire[..28].to_vec();
    bad[27] = 0;
    assert_eq!(Datagram::parse(&bad), Err(ParseError::CookieLen(0)));
}

#[test]
fn connect_ack_accepted() {
    let wire = bytes(&[
        b"\x01\x02",
        &[0, 0, 0, 0, 0, 0, 0, 9],           // dst_id 9
        b"\x01",                             // 10: kind accepted
        b"\xa0\xa1\xa2\xa3\xa4\xa5\xa6\xa7", // 11: src_id
        b"\x00\x00\x04\x00",                 // 19: max_message 1024
        b"\x00\x00\x08\x00",                 // 23: window 2048
        b"\x00",                             // 27: cookie_len 0
    ]);
    assert_eq!(wire.len(), 28);
    check_vector(
        &wire,
        Datagram {
            dst_id: 9,
            packet: Packet::ConnectAck(ConnectAck::Accepted {
                src_id: 0xa0a1_a2a3_a4a5_a6a7,
                max_message: 1024,
                window: 2048,
            }),
        },
    );
    let mut bad = wire.clone();
    bad[11..19].fill(0);
    assert_eq!(Datagram::parse(&bad), Err(ParseError::ZeroSrcId));
    let mut bad = bytes(&[&wire, &COOKIE]);
    bad[27] = 12;
    assert_eq!(Datagram::parse(&bad), Err(ParseError::CookieLen(12)));
}

#[test]
fn data() {
    let wire = bytes(&[
        b"\x01\x03",
        &[0, 0, 0, 0, 0, 0, 0, 7], // dst_id 7
        &[0, 0, 0, 0, 0, 0, 1, 0], // 10: packet_number 256
        &[0, 0, 0, 0, 0, 0, 0, 3], // 18: message_number 3
        &[0, 0, 0, 10],            // 26: message_len 10
        &[0, 0, 0, 6],             // 30: offset 6
        b"tail",                   // 34: fragment
    ]);
    assert_eq!(wire.len(), DATA_HEADER_LEN + 4);
    check_vector(
        &wire,
        Datagram {
            dst_id: 7,
            packet: Packet::Data {
                packet_number: 256,
                message_number: 3,
                message_len: 10,
                offset: 6,
                fragment: b"tail",
            },
        },
    );
    // One byte more would end beyond the message.
    let long = bytes(&[&wire, b"!"]);
    assert_eq!(Datagram::parse(&long), Err(ParseError::FragmentBeyondMessage));
    // An empty fragment only for an empty message.
    assert_eq!(Datagram::parse(&wire[..34]), Err(ParseError::EmptyFragment));
    let mut empty = wire[..34].to_vec();
    empty[26..34].fill(0);
    assert!(matches!(
        Datagram::parse(&empty),
        Ok(Datagram { packet: Packet::Data { message_len: 0, fragment: b"", .. }, .. })
    ));
    assert_eq!(Datagram::parse(&wire[..33]), Err(ParseError::TooShort { len: 33 }));
}

#[test]
fn data_ack() {
    let wire = bytes(&[
        b"\x01\x04",
        &[0, 0, 0, 0, 0, 0, 0, 7],    // dst_id 7
        &[0, 0, 0, 0, 0, 0, 0, 2],    // 10: delivered 2
        &[0, 0, 0, 0, 0, 0, 0, 0x14], // 18: largest 20
        &[0, 0, 0x27, 0x10],          // 26: ack_delay 10000 us
        &[0, 1, 0, 0],                // 30: window 65536
        b"\x02",                      // 34: range_count 2
        &[0, 0, 0, 0, 0, 0, 0, 0x10], // 35: start 16
        &[0, 0, 0, 5],                // 43: len 5 (16..=20)
        &[0, 0, 0, 0, 0, 0, 0, 0x0a], // 47: start 10
        &[0, 0, 0, 4],                // 55: len 4 (10..=13)
    ]);
    assert_eq!(wire.len(), 59);
    let pairs = [(16, 5), (10, 4)];
    check_vector(
        &wire,
        Datagram {
            dst_id: 7,
            packet: Packet::DataAck {
                delivered: 2,
                largest: 20,
                ack_delay: 10_000,
                window: 65536,
                ranges: Ranges::from_pairs(&pairs).unwrap(),
            },
        },
    );
    let mut bad = wire.clone();
    bad[25] = 21;
    assert_eq!(Datagram::parse(&bad), Err(ParseError::LargestMismatch));
    let mut bad = wire.clone();
    bad[58] = 6; // 10..=15 touches 16..=20
    assert_eq!(Datagram::parse(&bad), Err(ParseError::RangeOrder));
    let mut bad = wire.clone();
    bad[58] = 0;
    assert_eq!(Datagram::parse(&bad), Err(ParseError::EmptyRange));
    let mut bad = wire.clone();
    bad[34] = 33;
    assert_eq!(Datagram::parse(&bad), Err(ParseError::TooManyRanges(33)));
    let mut bad = wire.clone();
    bad[34] = 3;
    assert_eq!(Datagram::parse(&bad), Err(ParseError::TooShort { len: 59 }));
    let mut bad = wire.clone();
    bad[34] = 1;
    assert_eq!(Datagram::parse(&bad), Err(ParseError::TrailingBytes { extra: 12 }));
    // No ranges at all is allowed, whatever `largest` says.
    let mut none = wire[..35].to_vec();
    none[34] = 0;
    assert!(Datagram::parse(&none).is_ok());
}

#[test]
fn repeat() {
    let wire = bytes(&[
        b"\x01\x05",
        &[0, 0, 0, 0, 0, 0, 0, 7],
        b"\x01",                                           // 10: range_count 1
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe], // 11: start u64::MAX - 1
        &[0, 0, 0, 2],                                     // 19: len 2, ending at u64::MAX
    ]);
    assert_eq!(wire.len(), 23);
    let pairs = [(u64::MAX - 1, 2)];
    check_vector(
        &wire,
        Datagram {
            dst_id: 7,
            packet: Packet::Repeat { ranges: Ranges::from_pairs(&pairs).unwrap() },
        },
    );
    let mut bad = wire.clone();
    bad[22] = 3;
    assert_eq!(Datagram::parse(&bad), Err(ParseError::RangeOverflow));
    let mut none = wire[..11].to_vec();
    none[10] = 0;
    assert_eq!(Datagram::parse(&none), Err(ParseError::NoRanges));
}

#[test]
fn ping_and_ping_ack() {
    for (kind, ping_type) in [(6u8, PacketType::Ping), (7, PacketType::PingAck)] {
        let wire =
            bytes(&[&[1, kind], &[0, 0, 0, 0, 0, 0, 0, 7], b"\x11\x22\x33\x44\x55\x66\x77\x88"]);
        let packet = if ping_type == PacketType::Ping {
            Packet::Ping { ping_id: 0x1122_3344_5566_7788 }
        } else {
            Packet::PingAck { ping_id: 0x1122_3344_5566_7788 }
        };
        assert_eq!(packet.packet_type(), ping_type);
        check_vector(&wire, Datagram { dst_id: 7, packet });
        let long = bytes(&[&wire, b"\0"]);
        assert_eq!(Datagram::parse(&long), Err(ParseError::TrailingBytes { extra: 1 }));
    }
}

#[test]
fn close() {
    let wire = bytes(&[
        b"\x01\x08",
        &[0, 0, 0, 0, 0, 0, 0, 7],
        b"\x00\x02",        // 10: code 2, protocol violation
        b"\x00\x06",        // 12: reason_len 6
        "héllo".as_bytes(), // 14: reason
    ]);
    assert_eq!(wire.len(), 20);
    check_vector(
        &wire,
        Datagram {
            dst_id: 7,
            packet: Packet::Close { code: CloseCode::ProtocolViolation, reason: "héllo" },
        },
    );
    let mut other = wire.clone();
    other[10] = 0x12;
    assert!(matches!(
        Datagram::parse(&other),
        Ok(Datagram { packet: Packet::Close { code: CloseCode::Application(0x1202), .. }, .. })
    ));
    let mut bad = wire.clone();
    bad[15] = 0xff;
    assert_eq!(Datagram::parse(&bad), Err(ParseError::ReasonNotUtf8));
    let mut long = bytes(&[b"\x01\x08", &[0, 0, 0, 0, 0, 0, 0, 7], b"\x00\x00\x02\x01"]);
    long.resize(14 + MAX_REASON_LEN + 1, b'a');
    assert_eq!(Datagram::parse(&long), Err(ParseError::ReasonTooLong(513)));
    long.pop();
    long[12..14].copy_from_slice(&512u16.to_be_bytes());
    assert!(Datagram::parse(&long).is_ok());
}

#[test]
fn direct() {
    let wire = bytes(&[b"\x01\x09", &[0, 0, 0, 0, 0, 0, 0, 7], b"payload"]);
    check_vector(&wire, Datagram { dst_id: 7, packet: Packet::Direct { payload: b"payload" } });
    check_vector(
        &wire[..HEADER_LEN],
        Datagram { dst_id: 7, packet: Packet::Direct { payload: b"" } },
    );
}

#[test]
fn header_rules() {
    let ping = bytes(&[b"\x01\x06", &[0, 0, 0, 0, 0, 0, 0, 7], &[0; 8]]);
    let mut bad = ping.clone();
    bad[0] = 2;
    assert_eq!(Datagram::parse(&bad), Err(ParseError::Version(2)));
    let mut bad = ping.clone();
    bad[1] = 10;
    assert_eq!(Datagram::parse(&bad), Err(ParseError::UnknownType(10)));
    let mut bad = ping.clone();
    bad[9] = 0;
    assert_eq!(Datagram::parse(&bad), Err(ParseError::ZeroDstId));
    assert_eq!(
        Datagram { dst_id: 0, packet: Packet::Ping { ping_id: 0 } }.try_emit(&mut Vec::new()),
        Err(EmitError::ZeroDstId)
    );
}
