//! Our own uTP wire vectors for what the Portal vectors do not cover: multi-word selective
//! ACKs, unknown extensions, the legacy and libtorrent extensions, odd SACK lengths and
//! sequence numbers at the wrap. The expected bytes were written by hand from BEP 29 and
//! the module documentation of `wire::utp`, grouped as
//! `type/version extension | connection_id | timestamp | timestamp difference | wnd_size |
//! seq_nr ack_nr | extension chain | payload`.

mod common;

use utp_proto::wire::utp::{Extension, Header, Packet, PacketType, SelectiveAck, emit};

use common::hex;

/// The header every vector here shares, except where a test changes it.
fn base(packet_type: PacketType) -> Header {
    Header {
        packet_type,
        connection_id: 12345,
        timestamp_us: 1_000_000,
        timestamp_difference_us: 1000,
        wnd_size: 65536,
        seq_nr: 100,
        ack_nr: 200,
    }
}

/// Parses `bytes`, checks that emitting the result gives `bytes` back, and returns it.
fn parse_canonical(bytes: &[u8]) -> Packet<'_> {
    let packet = Packet::parse(bytes).unwrap_or_else(|e| panic!("does not parse: {e}"));
    let extensions: Vec<Extension<'_>> = packet.extensions().collect();
    let mut buf = Vec::new();
    emit(packet.header(), &extensions, packet.payload(), &mut buf);
    assert_eq!(buf, bytes, "re-emitting does not reproduce the input");
    packet
}

/// Emits and checks the bytes against `expected`.
fn assert_emits(header: &Header, extensions: &[Extension<'_>], payload: &[u8], expected: &[u8]) {
    let mut buf = Vec::new();
    emit(header, extensions, payload, &mut buf);
    assert_eq!(buf, expected);
}

#[test]
fn selective_ack_of_8_bytes() {
    let bytes = hex("2101 3039 000f4240 000003e8 00010000 0064 00c8
         0008 05000000_00000080");
    let packet = parse_canonical(&bytes);
    assert_eq!(packet.header(), &base(PacketType::State));
    let sack = packet.selective_ack().unwrap();
    assert_eq!(sack.len_bits(), 64);
    assert!(sack.is_acked(0) && !sack.is_acked(1) && sack.is_acked(2) && sack.is_acked(63));
    assert_eq!(sack.acked_seq_nrs(200).collect::<Vec<_>>(), [202, 204, 265]);
    assert!(packet.payload().is_empty());

    let mask = [5, 0, 0, 0, 0, 0, 0, 0x80];
    assert_emits(
        &base(PacketType::State),
        &[Extension::SelectiveAck(SelectiveAck::new(&mask))],
        &[],
        &bytes,
    );
}

#[test]
fn selective_ack_of_32_bytes() {
    let bytes = hex("2101 3039 000f4240 000003e8 00010000 0064 00c8
         0020 01000000 00000000 00000000 00000000
              10000000 00000000 00000000 00000080");
    let packet = parse_canonical(&bytes);
    let sack = packet.selective_ack().unwrap();
    assert_eq!(sack.len_bits(), 256);
    assert_eq!(sack.count_acked(), 3);
    assert_eq!(sack.acked_seq_nrs(200).collect::<Vec<_>>(), [202, 334, 457]);
}

#[test]
fn unknown_extension_is_skipped_by_length() {
    // Kind 77 with a 3-byte body, then a SACK acknowledging ack_nr + 3, then "hello".
    let bytes = hex("014d 3039 000f4240 000003e8 00010000 0064 00c8
         0103 aabbcc
         0004 02000000
         68656c6c6f");
    let packet = parse_canonical(&bytes);
    assert_eq!(packet.header(), &base(PacketType::Data));
    assert_eq!(packet.first_extension(), 77);
    let extensions: Vec<_> = packet.extensions().collect();
    assert_eq!(
        extensions,
        [
            Extension::Unknown { kind: 77, data: &[0xaa, 0xbb, 0xcc] },
            Extension::SelectiveAck(SelectiveAck::new(&[2, 0, 0, 0])),
        ]
    );
    assert_eq!(extensions[0].kind(), 77);
    assert_eq!(packet.selective_ack().unwrap().acked_seq_nrs(200).collect::<Vec<_>>(), [203]);
    assert_eq!(packet.payload(), b"hello");
    assert_emits(&base(PacketType::Data), &extensions, b"hello", &bytes);
}

#[test]
fn unknown_extension_with_empty_body() {
    let bytes = hex("01c8 3039 000f4240 000003e8 00010000 0064 00c8 0000 41");
    let packet = parse_canonical(&bytes);
    assert_eq!(
        packet.extensions().collect::<Vec<_>>(),
        [Extension::Unknown { kind: 200, data: &[] }]
    );
    assert_eq!(packet.selective_ack(), None);
    assert_eq!(packet.payload(), b"A");
}

#[test]
fn extension_bits_kind_2() {
    let bytes = hex("4102 3039 000f4240 000003e8 00010000 0064 00c8
         0008 00000000 00000001");
    let packet = parse_canonical(&bytes);
    assert_eq!(packet.header().packet_type, PacketType::Syn);
    let bits = [0, 0, 0, 0, 0, 0, 0, 1];
    assert_eq!(packet.extensions().collect::<Vec<_>>(), [Extension::ExtensionBits(&bits)]);
    assert_emits(&base(PacketType::Syn), &[Extension::ExtensionBits(&bits)], &[], &bytes);
}

#[test]
fn extension_bits_of_another_length_are_kept_as_unknown() {
    let bytes = hex("2102 3039 000f4240 000003e8 00010000 0064 00c8 0004 01020304");
    let packet = parse_canonical(&bytes);
    assert_eq!(
        packet.extensions().collect::<Vec<_>>(),
        [Extension::Unknown { kind: 2, data: &[1, 2, 3, 4] }]
    );
}

#[test]
fn close_reason_kind_3() {
    let bytes = hex("1103 3039 000f4240 000003e8 00010000 0064 00c8 0004 0000 0102");
    let packet = parse_canonical(&bytes);
    assert_eq!(packet.header().packet_type, PacketType::Fin);
    assert_eq!(packet.extensions().collect::<Vec<_>>(), [Extension::CloseReason(258)]);
    assert_eq!(packet.close_reason(), Some(258));
    assert_emits(&base(PacketType::Fin), &[Extension::CloseReason(258)], &[], &bytes);
}

#[test]
fn selective_ack_then_close_reason() {
    // libtorrent sends both on its last packets.
    let bytes = hex("2101 3039 000f4240 000003e8 00010000 0064 00c8
         0304 ff000000
         0004 0000 0005");
    let packet = parse_canonical(&bytes);
    assert_eq!(
        packet.selective_ack().unwrap().acked_seq_nrs(200).collect::<Vec<_>>(),
        (202..=209).collect::<Vec<_>>()
    );
    assert_eq!(packet.close_reason(), Some(5));
}

#[test]
fn close_reason_of_another_shape_is_kept_as_unknown() {
    // Two bytes instead of four.
    let short = hex("2103 3039 000f4240 000003e8 00010000 0064 00c8 0002 0005");
    let packet = parse_canonical(&short);
    assert_eq!(
        packet.extensions().collect::<Vec<_>>(),
        [Extension::Unknown { kind: 3, data: &[0, 5] }]
    );
    assert_eq!(packet.close_reason(), None);

    // Non-zero reserved bytes.
    let reserved = hex("2103 3039 000f4240 000003e8 00010000 0064 00c8 0004 0001 0005");
    let packet = parse_canonical(&reserved);
    assert_eq!(
        packet.extensions().collect::<Vec<_>>(),
        [Extension::Unknown { kind: 3, data: &[0, 1, 0, 5] }]
    );
    assert_eq!(packet.close_reason(), None);
}

#[test]
fn selective_ack_length_not_a_multiple_of_4() {
    let bytes = hex("2101 3039 000f4240 000003e8 00010000 0064 00c8 0005 00000000 01");
    let packet = parse_canonical(&bytes);
    let sack = packet.selective_ack().unwrap();
    assert_eq!(sack.bitmask().len(), 5);
    assert_eq!(sack.len_bits(), 40);
    assert!(sack.is_acked(32));
    assert_eq!(sack.acked_seq_nrs(200).collect::<Vec<_>>(), [234]);
}

#[test]
fn selective_ack_of_length_0() {
    let bytes = hex("2101 3039 000f4240 000003e8 00010000 0064 00c8 0000");
    let packet = parse_canonical(&bytes);
    let sack = packet.selective_ack().unwrap();
    assert_eq!(sack.len_bits(), 0);
    assert!(!sack.is_acked(0));
    assert_eq!(sack.acked_seq_nrs(200).count(), 0);
    assert!(packet.payload().is_empty());
}

#[test]
fn sequence_numbers_at_65535() {
    let bytes = hex("2100 3039 000f4240 000003e8 00010000 ffff ffff");
    let packet = parse_canonical(&bytes);
    assert_eq!(packet.header().seq_nr, 65535);
    assert_eq!(packet.header().ack_nr, 65535);
    let header = Header { seq_nr: 65535, ack_nr: 65535, ..base(PacketType::State) };
    assert_emits(&header, &[], &[], &bytes);
}

#[test]
fn selective_ack_wraps_past_65535() {
    // ack_nr 65533: bit 0 is 65535, bit 1 wraps to 0, bit 2 is 1.
    let bytes = hex("0101 3039 000f4240 000003e8 00010000 ffff fffd
         0004 07000000
         78");
    let packet = parse_canonical(&bytes);
    assert_eq!(packet.header().seq_nr, 65535);
    assert_eq!(packet.header().ack_nr, 65533);
    let sack = packet.selective_ack().unwrap();
    assert_eq!(sack.acked_seq_nrs(packet.header().ack_nr).collect::<Vec<_>>(), [65535, 0, 1]);
    assert_eq!(packet.payload(), b"x");
}
