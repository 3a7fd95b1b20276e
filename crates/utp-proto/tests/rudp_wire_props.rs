//! Property tests of the rudp codec: emit then parse gives back what was emitted, parse
//! then emit reproduces the input (except CONNECT padding), a truncated packet is always
//! refused where its length is known, ranges built by hand follow the parser's rules, and
//! no input makes the parser panic.

use proptest::collection::vec;
use proptest::prelude::*;
use utp_proto::wire::rudp::{
    COOKIE_LEN, CloseCode, ConnectAck, DATA_HEADER_LEN, Datagram, HEADER_LEN, MAX_RANGES,
    MIN_CONNECT_LEN, Packet, PacketType, ParseError, Ranges,
};

/// An owned description of a valid packet, so that proptest can generate it.
#[derive(Clone, Debug)]
enum Owned {
    Connect {
        src_id: u64,
        max_message: u32,
        window: u32,
        cookie: Option<[u8; COOKIE_LEN]>,
    },
    Challenge {
        cookie: [u8; COOKIE_LEN],
    },
    Accepted {
        src_id: u64,
        max_message: u32,
        window: u32,
    },
    Data {
        packet_number: u64,
        message_number: u64,
        message_len: u32,
        offset: u32,
        fragment: Vec<u8>,
    },
    DataAck {
        delivered: u64,
        largest: u64,
        ack_delay: u32,
        window: u32,
        ranges: Vec<(u64, u32)>,
    },
    Repeat {
        ranges: Vec<(u64, u32)>,
    },
    Ping {
        ping_id: u64,
    },
    PingAck {
        ping_id: u64,
    },
    Close {
        code: u16,
        reason: String,
    },
    Direct {
        payload: Vec<u8>,
    },
}

impl Owned {
    /// The packet this describes, borrowing from it.
    fn packet(&self) -> Packet<'_> {
        match self {
            Self::Connect { src_id, max_message, window, cookie } => Packet::Connect {
                src_id: *src_id,
                max_message: *max_message,
                window: *window,
                cookie: cookie.as_ref(),
            },
            Self::Challenge { cookie } => Packet::ConnectAck(ConnectAck::Challenge { cookie }),
            Self::Accepted { src_id, max_message, window } => {
                Packet::ConnectAck(ConnectAck::Accepted {
                    src_id: *src_id,
                    max_message: *max_message,
                    window: *window,
                })
            }
            Self::Data { packet_number, message_number, message_len, offset, fragment } => {
                Packet::Data {
                    packet_number: *packet_number,
                    message_number: *message_number,
                    message_len: *message_len,
                    offset: *offset,
                    fragment,
                }
            }
            Self::DataAck { delivered, largest, ack_delay, window, ranges } => Packet::DataAck {
                delivered: *delivered,
                largest: *largest,
                ack_delay: *ack_delay,
                window: *window,
                ranges: Ranges::from_pairs(ranges).expect("generated ranges are valid"),
            },
            Self::Repeat { ranges } => Packet::Repeat {
                ranges: Ranges::from_pairs(ranges).expect("generated ranges are valid"),
            },
            Self::Ping { ping_id } => Packet::Ping { ping_id: *ping_id },
            Self::PingAck { ping_id } => Packet::PingAck { ping_id: *ping_id },
            Self::Close { code, reason } => Packet::Close { code: CloseCode::from(*code), reason },
            Self::Direct { payload } => Packet::Direct { payload },
        }
    }
}

/// Valid ranges, highest first: `min..=max` of them, separated by gaps of at least one.
fn ranges(min: usize, max: usize) -> impl Strategy<Value = Vec<(u64, u32)>> {
    let low =
        prop_oneof![0u64..1000, any::<u64>().prop_map(|low| low >> 1), Just(u64::MAX - (1 << 30))];
    let steps = vec((1u64..1000, 1u32..1000), min..=max);
    let big_last = any::<bool>();
    (low, steps, big_last).prop_map(|(low, steps, big_last)| {
        let mut next = low;
        let mut ranges: Vec<(u64, u32)> = steps
            .into_iter()
            .map(|(gap, len)| {
                let start = next + gap;
                next = start + u64::from(len);
                (start, len)
            })
            .collect();
        // Sometimes end exactly at u64::MAX, when the highest range can reach it.
        if let Some(last) = ranges.last_mut().filter(|_| big_last) {
            if let Ok(len) = u32::try_from(u64::MAX - last.0 + 1) {
                last.1 = len;
            }
        }
        ranges.reverse();
        ranges
    })
}

fn cookie() -> impl Strategy<Value = [u8; COOKIE_LEN]> {
    any::<[u8; COOKIE_LEN]>()
}

fn owned() -> impl Strategy<Value = Owned> {
    let data = (any::<u64>(), any::<u64>(), vec(any::<u8>(), 0..64), any::<u32>(), any::<u32>())
        .prop_map(|(packet_number, message_number, fragment, offset, extra)| {
            let len = fragment.len() as u32;
            let (message_len, offset) = if fragment.is_empty() {
                (0, 0)
            } else {
                let offset = offset.min(u32::MAX - len);
                (offset + len + extra.min(u32::MAX - offset - len), offset)
            };
            Owned::Data { packet_number, message_number, message_len, offset, fragment }
        });
    let data_ack = (any::<u64>(), any::<u64>(), any::<u32>(), any::<u32>(), ranges(0, MAX_RANGES))
        .prop_map(|(delivered, largest, ack_delay, window, ranges)| {
            let largest =
                ranges.first().map_or(largest, |&(start, len)| start + (u64::from(len) - 1));
            Owned::DataAck { delivered, largest, ack_delay, window, ranges }
        });
    prop_oneof![
        (1..=u64::MAX, any::<u32>(), any::<u32>(), proptest::option::of(cookie())).prop_map(
            |(src_id, max_message, window, cookie)| Owned::Connect {
                src_id,
                max_message,
                window,
                cookie
            }
        ),
        cookie().prop_map(|cookie| Owned::Challenge { cookie }),
        (1..=u64::MAX, any::<u32>(), any::<u32>()).prop_map(|(src_id, max_message, window)| {
            Owned::Accepted { src_id, max_message, window }
        }),
        data,
        data_ack,
        ranges(1, MAX_RANGES).prop_map(|ranges| Owned::Repeat { ranges }),
        any::<u64>().prop_map(|ping_id| Owned::Ping { ping_id }),
        any::<u64>().prop_map(|ping_id| Owned::PingAck { ping_id }),
        (any::<u16>(), "\\PC{0,40}").prop_map(|(code, reason)| Owned::Close { code, reason }),
        vec(any::<u8>(), 0..100).prop_map(|payload| Owned::Direct { payload }),
    ]
}

/// A valid datagram: the packet and a `dst_id` that fits it.
fn datagram() -> impl Strategy<Value = (u64, Owned)> {
    (1..=u64::MAX, owned()).prop_map(|(dst_id, owned)| match owned {
        Owned::Connect { .. } => (0, owned),
        _ => (dst_id, owned),
    })
}

fn emit(datagram: &Datagram<'_>) -> Vec<u8> {
    let mut buf = vec![0xee; 5];
    datagram.emit(&mut buf);
    buf
}

/// Datagrams that look like rudp more often than not: valid packets with one byte changed,
/// cut or extended, and header-like noise.
fn plausible_datagram() -> impl Strategy<Value = Vec<u8>> {
    let mutated = (datagram(), any::<prop::sample::Index>(), any::<u8>(), 0usize..4).prop_map(
        |((dst_id, owned), index, byte, how)| {
            let mut bytes = emit(&Datagram { dst_id, packet: owned.packet() });
            let at = index.index(bytes.len());
            match how {
                0 => bytes[at] = byte,
                1 => bytes.truncate(at),
                2 => bytes.insert(at, byte),
                _ => {}
            }
            bytes
        },
    );
    let noise = (0u8..3, 0u8..12, prop_oneof![Just(0u64), any::<u64>()], vec(any::<u8>(), 0..80))
        .prop_map(|(version, packet_type, dst_id, tail)| {
            let mut bytes = vec![version, packet_type];
            bytes.extend_from_slice(&dst_id.to_be_bytes());
            bytes.extend(tail);
            bytes
        });
    prop_oneof![3 => mutated, 1 => noise, 1 => vec(any::<u8>(), 0..120)]
}

/// Whether the packet's length is fixed by its own fields (no body runs to the end).
fn has_explicit_length(packet_type: PacketType) -> bool {
    !matches!(packet_type, PacketType::Connect | PacketType::Data | PacketType::Direct)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn emit_then_parse_round_trips((dst_id, owned) in datagram()) {
        let datagram = Datagram { dst_id, packet: owned.packet() };
        let bytes = emit(&datagram);
        prop_assert_eq!(bytes.len(), datagram.emitted_len());
        prop_assert_eq!(Datagram::parse(&bytes), Ok(datagram));
    }

    #[test]
    fn parse_never_panics_and_parse_then_emit_is_canonical(bytes in plausible_datagram()) {
        let Ok(datagram) = Datagram::parse(&bytes) else { return Ok(()) };
        let emitted = emit(&datagram);
        prop_assert_eq!(emitted.len(), datagram.emitted_len());
        if let Packet::Connect { cookie, .. } = datagram.packet {
            // Fields and cookie are kept; the padding becomes zeros, to exactly 64 bytes.
            let fields = 27 + cookie.map_or(0, |_| COOKIE_LEN);
            prop_assert_eq!(emitted.len(), MIN_CONNECT_LEN);
            prop_assert_eq!(&emitted[..fields], &bytes[..fields]);
            prop_assert!(emitted[fields..].iter().all(|&byte| byte == 0));
        } else {
            prop_assert_eq!(&emitted, &bytes);
        }
        prop_assert_eq!(Datagram::parse(&emitted), Ok(datagram));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..200)) {
        let _ = Datagram::parse(&bytes);
    }

    #[test]
    fn truncation_is_refused((dst_id, owned) in datagram()) {
        let packet = owned.packet();
        let bytes = emit(&Datagram { dst_id, packet });
        let packet_type = packet.packet_type();
        // Below this length every prefix must be refused.
        let refused_below = match packet_type {
            PacketType::Connect => MIN_CONNECT_LEN,
            PacketType::Data => DATA_HEADER_LEN,
            PacketType::Direct => HEADER_LEN,
            _ => bytes.len(),
        };
        for len in 0..refused_below {
            prop_assert!(Datagram::parse(&bytes[..len]).is_err(), "{} of {:?}", len, bytes);
        }
        if has_explicit_length(packet_type) {
            let mut longer = bytes.clone();
            longer.push(0);
            prop_assert_eq!(
                Datagram::parse(&longer),
                Err(ParseError::TrailingBytes { extra: 1 })
            );
        }
    }

    #[test]
    fn ranges_from_pairs_follow_the_parser(
        pairs in vec((prop_oneof![0u64..64, any::<u64>()], prop_oneof![0u32..4, any::<u32>()]), 1..6),
    ) {
        let mut bytes = vec![1, 5, 0, 0, 0, 0, 0, 0, 0, 1, pairs.len() as u8];
        for (start, len) in &pairs {
            bytes.extend_from_slice(&start.to_be_bytes());
            bytes.extend_from_slice(&len.to_be_bytes());
        }
        match (Ranges::from_pairs(&pairs), Datagram::parse(&bytes)) {
            (Ok(built), Ok(Datagram { packet: Packet::Repeat { ranges }, .. })) => {
                prop_assert_eq!(built, ranges);
            }
            (Err(built), Err(parsed)) => prop_assert_eq!(built, parsed),
            (built, parsed) => prop_assert!(false, "{:?} but {:?}", built, parsed),
        }
    }
}
