//! Property tests of the TFTP codec: emit then parse gives back what was emitted, parse then
//! emit reproduces the input (up to the documented lenient spots), a request missing its
//! final NUL is always refused, and no input makes the parser panic.

use proptest::collection::{hash_set, vec};
use proptest::prelude::*;
use utp_proto::wire::tftp::{
    ErrorCode, MAX_DATA_LEN, MAX_REQUEST_LEN, Mode, Options, Packet, ParseError, Request,
};

/// Owned `(name, value)` pairs with distinct names (ignoring case), so proptest can
/// generate them.
fn options() -> impl Strategy<Value = Vec<(String, String)>> {
    hash_set("[a-z0-9_-]{1,10}", 0..6).prop_flat_map(|names| {
        let names: Vec<String> = names.into_iter().collect();
        let len = names.len();
        (Just(names), vec("[ -~]{0,8}", len), vec(any::<bool>(), len)).prop_map(
            |(names, values, upper)| {
                names
                    .into_iter()
                    .zip(values)
                    .zip(upper)
                    .map(|((name, value), upper)| {
                        (if upper { name.to_ascii_uppercase() } else { name }, value)
                    })
                    .collect()
            },
        )
    })
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![Just(Mode::Netascii), Just(Mode::Octet), Just(Mode::Mail)]
}

/// A filename: any bytes but NUL, short enough that the request stays within 512 bytes.
fn filename() -> impl Strategy<Value = Vec<u8>> {
    vec(1u8..=255, 1..200)
}

fn borrowed_pairs(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    pairs.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect()
}

fn check_round_trip(packet: Packet<'_>) {
    let mut buf = Vec::new();
    packet.emit(&mut buf);
    assert_eq!(buf.len(), packet.emitted_len());
    assert_eq!(Packet::parse(&buf), Ok(packet));
}

/// Emits `packet`, parses it back, and checks it is equal.
fn check_emit_parse(packet: Packet<'_>) -> Result<(), TestCaseError> {
    let mut buf = Vec::new();
    packet.emit(&mut buf);
    prop_assert_eq!(buf.len(), packet.emitted_len());
    prop_assert_eq!(Packet::parse(&buf), Ok(packet));
    Ok(())
}

/// Datagrams that start with a valid opcode more often than not.
fn plausible_datagram() -> impl Strategy<Value = Vec<u8>> {
    let tail = vec(
        prop_oneof![
            4 => any::<u8>(),
            4 => Just(0u8),
            2 => b'a'..=b'z',
        ],
        0..80,
    );
    (0u16..8, tail).prop_map(|(opcode, tail)| {
        let mut bytes = opcode.to_be_bytes().to_vec();
        bytes.extend(tail);
        bytes
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn requests_round_trip(
        write in any::<bool>(),
        filename in filename(),
        mode in mode(),
        pairs in options(),
    ) {
        let borrowed = borrowed_pairs(&pairs);
        let options = Options::from_pairs(&borrowed).unwrap();
        let request = Request { filename: &filename, mode, options };
        let packet =
            if write { Packet::WriteRequest(request) } else { Packet::ReadRequest(request) };
        prop_assume!(packet.emitted_len() <= MAX_REQUEST_LEN);
        check_emit_parse(packet)?;
        // The parsed options iterate as the pairs they were built from.
        let mut buf = Vec::new();
        packet.emit(&mut buf);
        let (Ok(Packet::ReadRequest(parsed)) | Ok(Packet::WriteRequest(parsed))) =
            Packet::parse(&buf)
        else {
            unreachable!("checked above");
        };
        let seen: Vec<(&str, &str)> =
            parsed.options.iter().map(|option| (option.name, option.value)).collect();
        prop_assert_eq!(seen, borrowed);
        // Every name is found by `get`, whatever its case.
        for (name, value) in &pairs {
            prop_assert_eq!(parsed.options.get(&name.to_ascii_lowercase()), Some(value.as_str()));
        }
    }

    #[test]
    fn option_acks_round_trip(pairs in options()) {
        let borrowed = borrowed_pairs(&pairs);
        check_emit_parse(Packet::OptionAck(Options::from_pairs(&borrowed).unwrap()))?;
    }

    #[test]
    fn data_round_trips(
        block in any::<u16>(),
        data in prop_oneof![
            15 => vec(any::<u8>(), 0..1500),
            1 => vec(any::<u8>(), MAX_DATA_LEN - 2..=MAX_DATA_LEN),
        ],
    ) {
        check_emit_parse(Packet::Data { block, data: &data })?;
    }

    #[test]
    fn acks_round_trip(block in any::<u16>()) {
        check_emit_parse(Packet::Ack { block })?;
    }

    #[test]
    fn errors_round_trip(code in any::<u16>(), message in vec(1u8..=255, 0..200)) {
        check_emit_parse(Packet::Error { code: ErrorCode::from(code), message: &message })?;
    }

    #[test]
    fn parse_then_emit_round_trips(bytes in plausible_datagram()) {
        if let Ok(packet) = Packet::parse(&bytes) {
            check_round_trip(packet);
            let mut buf = Vec::new();
            packet.emit(&mut buf);
            match packet {
                // Canonical: the same bytes come back.
                Packet::Data { .. } | Packet::Ack { .. } | Packet::OptionAck(_) => {
                    prop_assert_eq!(buf, bytes);
                }
                // Only the mode's case may change.
                Packet::ReadRequest(_) | Packet::WriteRequest(_) => {
                    prop_assert!(buf.eq_ignore_ascii_case(&bytes));
                }
                // The message gains its NUL and loses whatever followed it.
                Packet::Error { message, .. } => {
                    prop_assert_eq!(&buf[..4 + message.len()], &bytes[..4 + message.len()]);
                }
            }
        }
    }

    #[test]
    fn a_request_without_its_final_nul_is_refused(
        filename in filename(),
        mode in mode(),
        pairs in options(),
    ) {
        let borrowed = borrowed_pairs(&pairs);
        let options = Options::from_pairs(&borrowed).unwrap();
        let packet = Packet::ReadRequest(Request { filename: &filename, mode, options });
        prop_assume!(packet.emitted_len() <= MAX_REQUEST_LEN);
        let mut buf = Vec::new();
        packet.emit(&mut buf);
        buf.pop();
        prop_assert!(matches!(Packet::parse(&buf), Err(ParseError::MissingNul(_))));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..=600)) {
        if let Ok(packet) = Packet::parse(&bytes) {
            check_round_trip(packet);
        }
    }

    #[test]
    fn plausible_bytes_never_panic_and_helpers_are_total(bytes in plausible_datagram()) {
        if let Ok(Packet::ReadRequest(Request { options, .. }) | Packet::OptionAck(options)) =
            Packet::parse(&bytes)
        {
            let _ = (options.blksize(), options.timeout(), options.tsize(), options.windowsize());
            prop_assert_eq!(options.len(), options.iter().count());
        }
    }
}
