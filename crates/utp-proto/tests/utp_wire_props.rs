//! Property tests of the uTP codec: emit then parse gives back what was emitted, parse then
//! emit reproduces the input byte for byte (the wire form is canonical), truncation is
//! always detected, and no input makes the parser panic.

use proptest::collection::vec;
use proptest::prelude::*;
use utp_proto::wire::utp::{
    Extension, HEADER_LEN, Header, Packet, PacketType, ParseError, SelectiveAck, emit, emitted_len,
    try_emit,
};

/// An extension that owns its body, so proptest can generate it.
#[derive(Clone, Debug)]
enum OwnedExtension {
    SelectiveAck(Vec<u8>),
    ExtensionBits([u8; 8]),
    CloseReason(u16),
    Unknown { kind: u8, data: Vec<u8> },
}

impl OwnedExtension {
    fn borrow(&self) -> Extension<'_> {
        match self {
            Self::SelectiveAck(mask) => Extension::SelectiveAck(SelectiveAck::new(mask)),
            Self::ExtensionBits(bits) => Extension::ExtensionBits(bits),
            Self::CloseReason(reason) => Extension::CloseReason(*reason),
            Self::Unknown { kind, data } => Extension::Unknown { kind: *kind, data },
        }
    }
}

fn packet_type() -> impl Strategy<Value = PacketType> {
    (0u8..5).prop_map(|n| PacketType::try_from(n).unwrap())
}

fn header() -> impl Strategy<Value = Header> {
    (
        packet_type(),
        any::<u16>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u16>(),
        any::<u16>(),
    )
        .prop_map(
            |(
                packet_type,
                connection_id,
                timestamp_us,
                timestamp_difference_us,
                wnd_size,
                seq_nr,
                ack_nr,
            )| Header {
                packet_type,
                connection_id,
                timestamp_us,
                timestamp_difference_us,
                wnd_size,
                seq_nr,
                ack_nr,
            },
        )
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![vec(any::<u8>(), 0..=8), vec(any::<u8>(), 0..=255)]
}

/// Extensions exactly as the parser produces them (see `Extension::from_wire`).
fn canonical_extension() -> impl Strategy<Value = OwnedExtension> {
    prop_oneof![
        body().prop_map(OwnedExtension::SelectiveAck),
        any::<[u8; 8]>().prop_map(OwnedExtension::ExtensionBits),
        any::<u16>().prop_map(OwnedExtension::CloseReason),
        (4u8..=255, body()).prop_map(|(kind, data)| OwnedExtension::Unknown { kind, data }),
        body()
            .prop_filter("8 bytes is ExtensionBits", |data| data.len() != 8)
            .prop_map(|data| OwnedExtension::Unknown { kind: 2, data }),
        body()
            .prop_filter("a close reason", |data| { !(data.len() == 4 && data[..2] == [0, 0]) })
            .prop_map(|data| OwnedExtension::Unknown { kind: 3, data }),
    ]
}

/// Any extension that can be emitted: every non-zero kind with any body up to 255 bytes.
fn emittable_extension() -> impl Strategy<Value = OwnedExtension> {
    prop_oneof![
        canonical_extension(),
        (1u8..=255, body()).prop_map(|(kind, data)| OwnedExtension::Unknown { kind, data }),
        body().prop_map(|data| OwnedExtension::Unknown { kind: 1, data }),
        body().prop_map(|data| OwnedExtension::Unknown { kind: 3, data }),
        vec(any::<u8>(), 0..=16).prop_map(|data| OwnedExtension::Unknown { kind: 2, data }),
    ]
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![vec(any::<u8>(), 0..=16), vec(any::<u8>(), 0..=1500)]
}

/// Byte strings that often parse: a valid first byte, a small extension kind, and a tail
/// that sometimes forms a chain.
fn plausible_datagram() -> impl Strategy<Value = Vec<u8>> {
    (
        0u8..5,
        prop_oneof![Just(0u8), Just(1u8), Just(2u8), Just(3u8), any::<u8>()],
        any::<[u8; 18]>(),
        vec(
            prop_oneof![
                4 => Just(0u8),
                2 => 1u8..=8,
                1 => any::<u8>(),
            ],
            0..=64,
        ),
    )
        .prop_map(|(packet_type, extension, rest, tail)| {
            let mut bytes = vec![(packet_type << 4) | 1, extension];
            bytes.extend_from_slice(&rest);
            bytes.extend_from_slice(&tail);
            bytes
        })
}

/// Checks everything a parsed packet offers, to exercise every accessor.
fn inspect(packet: &Packet<'_>) {
    for extension in packet.extensions() {
        let _ = extension.kind();
        if let Extension::SelectiveAck(sack) = extension {
            let acked: Vec<u16> = sack.acked_seq_nrs(packet.header().ack_nr).collect();
            assert_eq!(acked.len(), sack.count_acked());
            for (offset, seq_nr) in
                (0..sack.len_bits()).filter(|&offset| sack.is_acked(offset)).zip(&acked)
            {
                assert_eq!(
                    *seq_nr,
                    packet.header().ack_nr.wrapping_add(2).wrapping_add(offset as u16)
                );
            }
        }
    }
    let _ = packet.selective_ack();
    let _ = packet.close_reason();
    assert_eq!(packet.len(), HEADER_LEN + packet.extension_bytes().len() + packet.payload().len());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn emit_then_parse_round_trips(
        header in header(),
        owned in vec(canonical_extension(), 0..=4),
        payload in payload(),
    ) {
        let extensions: Vec<Extension<'_>> = owned.iter().map(OwnedExtension::borrow).collect();
        let mut buf = vec![0xee; 7];
        emit(&header, &extensions, &payload, &mut buf);
        prop_assert_eq!(buf.len(), emitted_len(&extensions, payload.len()));

        let packet = Packet::parse(&buf).unwrap();
        prop_assert_eq!(packet.header(), &header);
        prop_assert_eq!(
            packet.first_extension(),
            extensions.first().map_or(0, Extension::kind)
        );
        prop_assert_eq!(packet.extensions().collect::<Vec<_>>(), extensions);
        prop_assert_eq!(packet.payload(), &payload[..]);
        prop_assert_eq!(packet.len(), buf.len());
    }

    #[test]
    fn emit_then_parse_keeps_kinds_and_bytes_of_any_extension(
        header in header(),
        owned in vec(emittable_extension(), 0..=4),
        payload in payload(),
    ) {
        let extensions: Vec<Extension<'_>> = owned.iter().map(OwnedExtension::borrow).collect();
        let mut buf = Vec::new();
        emit(&header, &extensions, &payload, &mut buf);
        let packet = Packet::parse(&buf).unwrap();
        let parsed: Vec<Extension<'_>> = packet.extensions().collect();
        prop_assert_eq!(
            parsed.iter().map(Extension::kind).collect::<Vec<_>>(),
            extensions.iter().map(Extension::kind).collect::<Vec<_>>()
        );
        prop_assert_eq!(
            parsed.iter().map(Extension::body_len).collect::<Vec<_>>(),
            extensions.iter().map(Extension::body_len).collect::<Vec<_>>()
        );
        prop_assert_eq!(packet.payload(), &payload[..]);
        let mut again = Vec::new();
        emit(packet.header(), &parsed, packet.payload(), &mut again);
        prop_assert_eq!(again, buf);
    }

    #[test]
    fn parse_then_emit_reproduces_the_input(bytes in plausible_datagram()) {
        if let Ok(packet) = Packet::parse(&bytes) {
            inspect(&packet);
            let extensions: Vec<Extension<'_>> = packet.extensions().collect();
            let mut buf = Vec::new();
            emit(packet.header(), &extensions, packet.payload(), &mut buf);
            prop_assert_eq!(buf, bytes);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..=600)) {
        match Packet::parse(&bytes) {
            Ok(packet) => {
                inspect(&packet);
                let extensions: Vec<Extension<'_>> = packet.extensions().collect();
                let mut buf = Vec::new();
                emit(packet.header(), &extensions, packet.payload(), &mut buf);
                prop_assert_eq!(buf, bytes);
            }
            Err(ParseError::TooShort { len }) => prop_assert!(len < HEADER_LEN),
            Err(_) => {}
        }
    }

    #[test]
    fn every_cut_through_the_chain_is_detected(
        header in header(),
        owned in vec(canonical_extension(), 1..=3),
        payload in vec(any::<u8>(), 0..=32),
    ) {
        let extensions: Vec<Extension<'_>> = owned.iter().map(OwnedExtension::borrow).collect();
        let mut buf = Vec::new();
        emit(&header, &extensions, &payload, &mut buf);
        let chain_end = emitted_len(&extensions, 0);
        for cut in 0..buf.len() {
            let result = Packet::parse(&buf[..cut]);
            if cut < HEADER_LEN {
                prop_assert_eq!(result, Err(ParseError::TooShort { len: cut }));
            } else if cut < chain_end {
                let is_truncated = matches!(result, Err(ParseError::TruncatedExtension { .. }));
                prop_assert!(is_truncated, "cut at {}: {:?}", cut, result);
            } else {
                let packet = result.unwrap();
                prop_assert_eq!(packet.payload(), &payload[..cut - chain_end]);
                prop_assert_eq!(packet.extensions().count(), extensions.len());
            }
        }
    }

    #[test]
    fn too_long_extensions_are_refused(
        header in header(),
        kind in 1u8..=255,
        len in 256usize..=1024,
    ) {
        let data = vec![0; len];
        let extensions = [Extension::Unknown { kind, data: &data }];
        let mut buf = vec![1, 2, 3];
        prop_assert!(try_emit(&header, &extensions, &[], &mut buf).is_err());
        prop_assert_eq!(buf, [1, 2, 3]);
    }
}
