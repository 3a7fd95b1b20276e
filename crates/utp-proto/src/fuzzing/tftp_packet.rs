//! The `tftp_packet` harness: the TFTP codec and the helpers that read what it parsed.
//!
//! The input is one datagram. When [`Packet::parse`] accepts it, the harness checks:
//!
//! - **Round trip**: [`Packet::try_emit`] accepts the packet, writes
//!   [`emitted_len`](Packet::emitted_len) bytes that parse back to an equal packet and that
//!   emit again unchanged; they are the input itself but for the three lenient spots of the
//!   codec (the mode's case, an ERROR message's final NUL, bytes after that NUL).
//! - **Options** (requests and OACK): at most [`MAX_OPTIONS`] pairs of non-empty, ASCII,
//!   NUL-free, case-insensitively unique names with ASCII values; `len`, `get` and `iter`
//!   agree; [`Options::from_pairs`] rebuilds an equal list with the same wire form; each
//!   typed helper (`blksize`, `timeout`, `tsize`, `windowsize`) agrees with
//!   [`parse_decimal`] and its range, which agrees with the decimal syntax.
//! - **Filenames** (requests): [`RequestPath::parse`] does not panic, and a path it accepts is
//!   the filename without its leading slashes, made of at most [`MAX_COMPONENTS`] components,
//!   none empty, `.`, `..`, longer than [`MAX_COMPONENT_LEN`] or reserved, with no backslash,
//!   colon or control character anywhere; its accessors agree and it parses to itself.
//! - **netascii** (DATA payloads): decoding arbitrary wire bytes does not panic and gives the
//!   same text in one piece or split at a point the input picks; encoding the payload as
//!   text and decoding it gives it back with nothing malformed, in one call or in small
//!   bounded blocks; and canonical wire bytes encode back from their decoding.
//!
//! [`RequestPath::parse`] also sees every input whole, parsed or not, so that it meets long
//! and arbitrary names too.

use alloc::string::String;
use alloc::vec::Vec;

use crate::tftp::netascii::{Decoder, Encoder};
use crate::tftp::path::{MAX_COMPONENT_LEN, MAX_COMPONENTS, RequestPath, UPLOAD_TEMP_PREFIX};
use crate::wire::tftp::{
    ErrorCode, HEADER_LEN, MAX_DATA_LEN, MAX_OPTIONS, MAX_REQUEST_LEN, OPTION_BLKSIZE,
    OPTION_TIMEOUT, OPTION_TSIZE, OPTION_WINDOWSIZE, OptionValueError, Options, Packet, TftpOption,
    parse_decimal,
};

/// Runs the input; see the module documentation.
pub(crate) fn run(data: &[u8]) {
    check_path(data);
    let Ok(packet) = Packet::parse(data) else {
        return;
    };
    let mut buf = Vec::new();
    if let Err(error) = packet.try_emit(&mut buf) {
        panic!("a parsed packet cannot be emitted ({error}): {packet:?}");
    }
    assert_eq!(buf.len(), packet.emitted_len(), "emitted_len disagrees with emit: {packet:?}");
    let again = Packet::parse(&buf)
        .unwrap_or_else(|e| panic!("a re-emitted packet does not parse ({e:?}): {buf:02x?}"));
    assert_eq!(again, packet, "a re-emitted packet parses differently");
    let mut twice = Vec::new();
    again.emit(&mut twice);
    assert_eq!(twice, buf, "the wire form is not canonical: emitting again changed it");
    check_wire_form(&packet, data, &buf);

    match packet {
        Packet::ReadRequest(request) | Packet::WriteRequest(request) => {
            assert!(data.len() <= MAX_REQUEST_LEN, "a request over {MAX_REQUEST_LEN} bytes");
            assert!(
                !request.filename.is_empty() && !request.filename.contains(&0),
                "a parsed filename is empty or holds a NUL"
            );
            check_options(&request.options);
            check_path(request.filename);
        }
        Packet::OptionAck(options) => {
            assert!(data.len() <= MAX_REQUEST_LEN, "an OACK over {MAX_REQUEST_LEN} bytes");
            check_options(&options);
        }
        Packet::Data { block, data: payload } => {
            assert!(payload.len() <= MAX_DATA_LEN, "DATA over {MAX_DATA_LEN} bytes");
            check_netascii(payload, block);
        }
        Packet::Ack { .. } => assert_eq!(data.len(), HEADER_LEN, "an ACK is 4 bytes"),
        Packet::Error { code, message } => {
            assert!(!message.contains(&0), "an ERROR message holds a NUL");
            assert_eq!(u16::from(code), u16::from_be_bytes([data[2], data[3]]), "code changed");
            assert_eq!(ErrorCode::from(u16::from(code)), code, "ErrorCode does not round-trip");
        }
    }
}

/// Compares the emitted bytes `out` with the input `data`: equal but for the mode's case,
/// and an ERROR message's terminating NUL and what followed it.
fn check_wire_form(packet: &Packet<'_>, data: &[u8], out: &[u8]) {
    match packet {
        Packet::ReadRequest(request) | Packet::WriteRequest(request) => {
            assert_eq!(out.len(), data.len(), "a re-emitted request changed length");
            let mode_start = 2 + request.filename.len() + 1;
            let mode_end = mode_start + request.mode.as_str().len();
            assert_eq!(out[..mode_start], data[..mode_start], "the filename changed");
            assert!(
                out[mode_start..mode_end].eq_ignore_ascii_case(&data[mode_start..mode_end]),
                "the mode changed beyond its case"
            );
            assert_eq!(out[mode_end..], data[mode_end..], "the options changed");
        }
        Packet::Error { message, .. } => {
            let end = HEADER_LEN + message.len();
            assert_eq!(out[..end], data[..end], "an ERROR's code or message changed");
            assert_eq!(out[end..], [0], "an ERROR is not its message and one NUL");
        }
        Packet::Data { .. } | Packet::Ack { .. } | Packet::OptionAck(_) => {
            assert_eq!(out, data, "re-emitting changed the bytes");
        }
    }
}

/// Checks an option list's guarantees, its accessors and its typed helpers.
fn check_options(options: &Options<'_>) {
    let items: Vec<TftpOption<'_>> = options.iter().collect();
    assert!(items.len() <= MAX_OPTIONS, "more than {MAX_OPTIONS} options");
    assert_eq!(options.len(), items.len(), "len disagrees with iter");
    assert_eq!(options.is_empty(), items.is_empty(), "is_empty disagrees with iter");
    for (index, item) in items.iter().enumerate() {
        assert!(!item.name.is_empty(), "an empty option name");
        for s in [item.name, item.value] {
            assert!(s.is_ascii() && !s.contains('\0'), "an option string is not ASCII without NUL");
        }
        assert!(
            items[..index].iter().all(|earlier| !earlier.is(item.name)),
            "option {} appears twice",
            item.name
        );
        assert_eq!(options.get(item.name), Some(item.value), "get disagrees with iter");
        let upper = item.name.to_ascii_uppercase();
        assert_eq!(options.get(&upper), Some(item.value), "get is case-sensitive");
        check_decimal(item.value);
    }

    let pairs: Vec<(&str, &str)> = items.iter().map(|item| (item.name, item.value)).collect();
    let rebuilt = Options::from_pairs(&pairs)
        .unwrap_or_else(|e| panic!("from_pairs refuses parsed options ({e:?}): {pairs:?}"));
    assert_eq!(rebuilt, *options, "options rebuilt from their pairs differ");
    let (mut wire, mut built) = (Vec::new(), Vec::new());
    Packet::OptionAck(*options).emit(&mut wire);
    Packet::OptionAck(rebuilt).emit(&mut built);
    assert_eq!(built, wire, "options rebuilt from their pairs emit differently");
    assert_eq!(Packet::OptionAck(rebuilt).emitted_len(), wire.len(), "emitted_len of pairs");

    let max_data = MAX_DATA_LEN as u64;
    check_helper(options, OPTION_BLKSIZE, options.blksize().map(|r| r.map(u64::from)), 8, max_data);
    check_helper(options, OPTION_TIMEOUT, options.timeout().map(|r| r.map(u64::from)), 1, 255);
    check_helper(options, OPTION_TSIZE, options.tsize(), 0, u64::MAX);
    let windowsize = options.windowsize().map(|r| r.map(u64::from));
    check_helper(options, OPTION_WINDOWSIZE, windowsize, 1, 65535);
}

/// Checks a typed option helper's answer against the raw value, [`parse_decimal`] and the
/// option's range.
fn check_helper(
    options: &Options<'_>,
    name: &str,
    typed: Option<Result<u64, OptionValueError>>,
    min: u64,
    max: u64,
) {
    let raw = options.get(name);
    assert_eq!(typed.is_some(), raw.is_some(), "the {name} helper disagrees with get");
    let (Some(typed), Some(raw)) = (typed, raw) else { return };
    match (typed, parse_decimal(raw)) {
        (Ok(value), Ok(number)) => {
            assert_eq!(value, number, "{name} {raw:?} read as {value}");
            assert!((min..=max).contains(&value), "{name} {value} accepted outside {min}..={max}");
        }
        (Err(OptionValueError::OutOfRange { value, min: lo, max: hi }), Ok(number)) => {
            assert_eq!((value, lo, hi), (number, min, max), "{name} {raw:?}: wrong range error");
            assert!(!(min..=max).contains(&value), "{name} {value} refused inside its range");
        }
        (Err(typed), Err(decimal)) => assert_eq!(typed, decimal, "{name} {raw:?}: errors differ"),
        (typed, decimal) => panic!("{name} {raw:?}: helper says {typed:?}, decimal {decimal:?}"),
    }
}

/// Checks [`parse_decimal`] against the decimal syntax: ASCII digits only, fitting 64 bits.
fn check_decimal(value: &str) {
    let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
    match parse_decimal(value) {
        Ok(number) => {
            assert!(digits, "{value:?} parsed as the number {number}");
            let trimmed = value.trim_start_matches('0');
            let canonical = if trimmed.is_empty() { "0" } else { trimmed };
            assert_eq!(alloc::format!("{number}"), canonical, "{value:?} parsed as {number}");
        }
        Err(OptionValueError::NotDecimal) => assert!(!digits, "{value:?} is decimal"),
        Err(OptionValueError::TooLarge) => {
            assert!(digits, "{value:?} is not decimal, yet too large");
            assert!(value.trim_start_matches('0').len() >= 20, "{value:?} fits in 64 bits");
        }
        Err(error) => panic!("parse_decimal({value:?}) gave {error:?}"),
    }
}

/// Checks that [`RequestPath::parse`] accepts only confined, normalized paths.
fn check_path(filename: &[u8]) {
    let Ok(path) = RequestPath::parse(filename) else { return };
    let s = path.as_str();
    let Ok(original) = core::str::from_utf8(filename) else {
        panic!("RequestPath accepted a filename that is not UTF-8: {filename:02x?}");
    };
    assert_eq!(s, original.trim_start_matches('/'), "the path is not the name without its /");
    assert!(!s.is_empty() && !s.starts_with('/'), "an empty or absolute path: {s:?}");
    assert!(
        !s.chars().any(|c| c.is_control() || c == '\\' || c == ':'),
        "a control character, backslash or colon in {s:?}"
    );
    let components: Vec<&str> = path.components().collect();
    assert!(
        !components.is_empty() && components.len() <= MAX_COMPONENTS,
        "{} components in {s:?}",
        components.len()
    );
    for component in &components {
        assert!(!matches!(*component, "" | "." | ".."), "an empty, '.' or '..' component in {s:?}");
        assert!(component.len() <= MAX_COMPONENT_LEN, "a component too long in {s:?}");
        assert!(!component.starts_with(UPLOAD_TEMP_PREFIX), "a reserved name in {s:?}");
    }
    assert_eq!(components.join("/"), s, "the components do not make up the path");
    let mut backwards: Vec<&str> = path.components().rev().collect();
    backwards.reverse();
    assert_eq!(backwards, components, "the components differ backwards");
    let (last, parents) = components.split_last().expect("checked non-empty above");
    assert_eq!(path.file_name(), *last, "file_name is not the last component");
    let parent = (!parents.is_empty()).then(|| parents.join("/"));
    assert_eq!(path.parent().map(String::from), parent, "parent is not the other components");
    assert_eq!(alloc::format!("{path}"), s, "Display differs from as_str");
    assert_eq!(RequestPath::parse(s.as_bytes()).as_ref(), Ok(&path), "not a fixed point");
}

/// Checks the netascii decoder on arbitrary wire bytes and the encoder on arbitrary text,
/// both being `payload`; `block` picks where to split it and the encoder's block size.
fn check_netascii(payload: &[u8], block: u16) {
    let (text, malformed) = decode(&[payload]);
    assert!(text.len() <= payload.len(), "decoding made the text longer than the wire bytes");
    let split = usize::from(block) % (payload.len() + 1);
    let (pieces, pieces_malformed) = decode(&[&payload[..split], &payload[split..]]);
    assert_eq!(pieces, text, "decoding in two pieces (split at {split}) differs");
    assert_eq!(pieces_malformed, malformed, "malformed counts differ when split at {split}");

    let mut wire = Vec::new();
    Encoder::new().encode_to_vec(payload, &mut wire);
    assert_eq!(Encoder::encoded_len(payload), wire.len() as u64, "encoded_len is wrong");
    let (back, back_malformed) = decode(&[&wire]);
    assert_eq!(back, payload, "decode(encode(x)) != x");
    assert_eq!(back_malformed, 0, "the encoder wrote malformed netascii");

    // The bounded encoder, filling blocks of 1 to 16 bytes, writes the same bytes.
    let size = usize::from(block >> 8) % 16 + 1;
    let mut encoder = Encoder::new();
    let mut out = [0u8; 16];
    let mut chunked = Vec::new();
    let mut rest = payload;
    while !rest.is_empty() {
        let (consumed, written) = encoder.encode(rest, &mut out[..size]);
        assert!(consumed <= rest.len() && written <= size, "encode overran its buffers");
        assert!(consumed > 0 || written > 0, "encode made no progress");
        chunked.extend_from_slice(&out[..written]);
        rest = &rest[consumed..];
    }
    let written = encoder.flush(&mut out[..size]);
    chunked.extend_from_slice(&out[..written]);
    assert_eq!(encoder.pending(), 0, "a byte is still pending after flush");
    assert_eq!(chunked, wire, "encoding in {size}-byte blocks differs from encode_to_vec");

    // Canonical netascii (every CR paired, every LF after a CR) encodes back from its text.
    let bare_lf =
        payload.iter().enumerate().any(|(i, &b)| b == b'\n' && (i == 0 || payload[i - 1] != b'\r'));
    if malformed == 0 && !bare_lf {
        let mut again = Vec::new();
        Encoder::new().encode_to_vec(&text, &mut again);
        assert_eq!(again, payload, "canonical netascii does not encode back from its text");
    }
}

/// Decodes `pieces` as one stream; returns the text and the malformed count.
fn decode(pieces: &[&[u8]]) -> (Vec<u8>, u64) {
    let mut decoder = Decoder::new();
    let mut text = Vec::new();
    for piece in pieces {
        decoder.decode_to_vec(piece, &mut text);
    }
    decoder.finish(&mut text);
    assert_eq!(decoder.pending(), 0, "a CR is still held after finish");
    (text, decoder.malformed())
}
