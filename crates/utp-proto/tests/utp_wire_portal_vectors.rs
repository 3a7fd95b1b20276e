//! The six uTP wire test vectors of the Portal Network specification
//! (`portal-network-specs/utp/utp-wire-test-vectors.md`): each decodes to exactly the
//! listed fields and encodes back to the same bytes.

mod common;

use utp_proto::wire::utp::{Extension, Header, Packet, PacketType, SelectiveAck, emit};

use common::hex;

/// One vector: the fields as the specification lists them, and the bytes.
struct Vector {
    name: &'static str,
    header: Header,
    extension: u8,
    sack: Option<&'static [u8]>,
    payload: &'static [u8],
    bytes: &'static str,
}

#[allow(clippy::too_many_arguments)]
const fn header(
    packet_type: PacketType,
    connection_id: u16,
    timestamp_us: u32,
    timestamp_difference_us: u32,
    wnd_size: u32,
    seq_nr: u16,
    ack_nr: u16,
) -> Header {
    Header {
        packet_type,
        connection_id,
        timestamp_us,
        timestamp_difference_us,
        wnd_size,
        seq_nr,
        ack_nr,
    }
}

const VECTORS: &[Vector] = &[
    Vector {
        name: "SYN",
        header: header(PacketType::Syn, 10049, 3384187322, 0, 1048576, 11884, 0),
        extension: 0,
        sack: None,
        payload: &[],
        bytes: "41002741c9b699ba00000000001000002e6c0000",
    },
    Vector {
        name: "ACK",
        header: header(PacketType::State, 10049, 6195294, 916973699, 1048576, 16807, 11885),
        extension: 0,
        sack: None,
        payload: &[],
        bytes: "21002741005e885e36a7e8830010000041a72e6d",
    },
    Vector {
        name: "ACK with selective ACK",
        header: header(PacketType::State, 10049, 6195294, 916973699, 1048576, 16807, 11885),
        extension: 1,
        sack: Some(&[1, 0, 0, 128]),
        payload: &[],
        bytes: "21012741005e885e36a7e8830010000041a72e6d000401000080",
    },
    Vector {
        name: "DATA",
        header: header(PacketType::Data, 26237, 252492495, 242289855, 1048576, 8334, 16806),
        extension: 0,
        sack: None,
        payload: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        bytes: "0100667d0f0cbacf0e710cbf00100000208e41a600010203040506070809",
    },
    Vector {
        name: "FIN",
        header: header(PacketType::Fin, 19003, 515227279, 511481041, 1048576, 41050, 16806),
        extension: 0,
        sack: None,
        payload: &[],
        bytes: "11004a3b1eb5be8f1e7c94d100100000a05a41a6",
    },
    Vector {
        name: "RESET",
        header: header(PacketType::Reset, 62285, 751226811, 0, 0, 55413, 16807),
        extension: 0,
        sack: None,
        payload: &[],
        bytes: "3100f34d2cc6cfbb0000000000000000d87541a7",
    },
];

#[test]
fn portal_vectors_decode_to_the_listed_fields() {
    for vector in VECTORS {
        let bytes = hex(vector.bytes);
        let packet = Packet::parse(&bytes)
            .unwrap_or_else(|e| panic!("{}: does not parse: {e}", vector.name));
        assert_eq!(packet.header(), &vector.header, "{}", vector.name);
        assert_eq!(packet.first_extension(), vector.extension, "{}", vector.name);
        assert_eq!(
            packet.selective_ack().map(|sack| sack.bitmask()),
            vector.sack,
            "{}",
            vector.name
        );
        let expected_extensions = match vector.sack {
            Some(mask) => vec![Extension::SelectiveAck(SelectiveAck::new(mask))],
            None => vec![],
        };
        assert_eq!(packet.extensions().collect::<Vec<_>>(), expected_extensions, "{}", vector.name);
        assert_eq!(packet.payload(), vector.payload, "{}", vector.name);
        assert_eq!(packet.len(), bytes.len(), "{}", vector.name);
    }
}

#[test]
fn portal_vectors_encode_to_the_listed_bytes() {
    let mut buf = Vec::new();
    for vector in VECTORS {
        let extensions: Vec<Extension<'_>> = vector
            .sack
            .map(|mask| Extension::SelectiveAck(SelectiveAck::new(mask)))
            .into_iter()
            .collect();
        emit(&vector.header, &extensions, vector.payload, &mut buf);
        assert_eq!(buf, hex(vector.bytes), "{}", vector.name);
    }
}

#[test]
fn portal_sack_vector_acknowledges_the_right_packets() {
    // Mask [1, 0, 0, 128]: bit 0 (ack_nr + 2) and bit 31 (ack_nr + 33).
    let bytes = hex("21012741005e885e36a7e8830010000041a72e6d000401000080");
    let packet = Packet::parse(&bytes).unwrap();
    let sack = packet.selective_ack().unwrap();
    assert_eq!(sack.len_bits(), 32);
    assert!(sack.is_acked(0) && sack.is_acked(31));
    assert!((1..31).all(|offset| !sack.is_acked(offset)));
    let acked: Vec<u16> = sack.acked_seq_nrs(packet.header().ack_nr).collect();
    assert_eq!(acked, [11887, 11918]);
}
