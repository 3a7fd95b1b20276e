//! Datagrams that are not uTP packets: each is refused with the error that says why.

mod common;

use utp_proto::wire::utp::{Header, Packet, ParseError};

use common::hex;

/// The Portal SYN vector.
const SYN: &str = "41002741c9b699ba00000000001000002e6c0000";

#[test]
fn shorter_than_the_header() {
    let syn = hex(SYN);
    for len in [0, 1, 19] {
        assert_eq!(Packet::parse(&syn[..len]), Err(ParseError::TooShort { len }), "{len} bytes");
        assert_eq!(Header::parse(&syn[..len]), Err(ParseError::TooShort { len }));
    }
    assert!(Packet::parse(&syn[..20]).is_ok());
}

#[test]
fn versions_other_than_1() {
    let mut syn = hex(SYN);
    for (first_byte, version) in [(0x40, 0), (0x42, 2), (0x4f, 15)] {
        syn[0] = first_byte;
        assert_eq!(Packet::parse(&syn), Err(ParseError::UnsupportedVersion(version)));
    }
}

#[test]
fn packet_types_5_to_15() {
    let mut syn = hex(SYN);
    for packet_type in 5..=15u8 {
        syn[0] = (packet_type << 4) | 1;
        assert_eq!(
            Packet::parse(&syn),
            Err(ParseError::UnknownType(packet_type)),
            "type {packet_type}"
        );
    }
}

#[test]
fn extension_announced_but_nothing_follows() {
    let bytes = hex("2101 3039 000f4240 000003e8 00010000 0064 00c8");
    assert_eq!(
        Packet::parse(&bytes),
        Err(ParseError::TruncatedExtension { kind: 1, offset: 20, needed: 2, available: 0 })
    );
}

#[test]
fn extension_missing_its_length_byte() {
    let bytes = hex("2101 3039 000f4240 000003e8 00010000 0064 00c8 00");
    assert_eq!(
        Packet::parse(&bytes),
        Err(ParseError::TruncatedExtension { kind: 1, offset: 20, needed: 2, available: 1 })
    );
}

#[test]
fn extension_body_shorter_than_its_length() {
    // A SACK announcing 8 bytes with 4 present.
    let bytes = hex("2101 3039 000f4240 000003e8 00010000 0064 00c8 0008 01000000");
    assert_eq!(
        Packet::parse(&bytes),
        Err(ParseError::TruncatedExtension { kind: 1, offset: 20, needed: 10, available: 6 })
    );
    // An unknown extension announcing 255 bytes with none present.
    let bytes = hex("214d 3039 000f4240 000003e8 00010000 0064 00c8 00ff");
    assert_eq!(
        Packet::parse(&bytes),
        Err(ParseError::TruncatedExtension { kind: 77, offset: 20, needed: 257, available: 2 })
    );
}

#[test]
fn second_extension_truncated() {
    // A complete SACK whose "next kind" announces a close reason that is cut short.
    let bytes = hex("2101 3039 000f4240 000003e8 00010000 0064 00c8 0304 01000000 0004 0000");
    assert_eq!(
        Packet::parse(&bytes),
        Err(ParseError::TruncatedExtension { kind: 3, offset: 26, needed: 6, available: 4 })
    );
    // A complete SACK whose "next kind" announces an extension that is not there at all.
    let bytes = hex("2101 3039 000f4240 000003e8 00010000 0064 00c8 0904 01000000");
    assert_eq!(
        Packet::parse(&bytes),
        Err(ParseError::TruncatedExtension { kind: 9, offset: 26, needed: 2, available: 0 })
    );
}

#[test]
fn errors_are_reported_in_header_order() {
    // Too short wins over everything; then the version; then the type; then the chain.
    assert_eq!(Packet::parse(&hex("f0ff")), Err(ParseError::TooShort { len: 2 }));
    let mut bytes = hex("f2ff 3039 000f4240 000003e8 00010000 0064 00c8");
    assert_eq!(Packet::parse(&bytes), Err(ParseError::UnsupportedVersion(2)));
    bytes[0] = 0xf1;
    assert_eq!(Packet::parse(&bytes), Err(ParseError::UnknownType(15)));
    bytes[0] = 0x01;
    assert!(matches!(
        Packet::parse(&bytes),
        Err(ParseError::TruncatedExtension { kind: 0xff, .. })
    ));
}
