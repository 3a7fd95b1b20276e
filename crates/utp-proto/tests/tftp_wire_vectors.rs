//! Hand-written TFTP byte vectors after the examples of RFC 1350, 2347, 2348, 2349 and
//! 7440, checked in both directions: the bytes parse to the packet, and the packet emits
//! the bytes.

use utp_proto::wire::tftp::{
    ErrorCode, Field, Mode, OptionValueError, Options, Packet, ParseError, Request,
};

/// Parses `bytes`, checks the result against `expected`, and that emitting gives `bytes`.
fn check(bytes: &[u8], expected: Packet<'_>) {
    assert_eq!(Packet::parse(bytes), Ok(expected));
    let mut buf = Vec::new();
    expected.emit(&mut buf);
    assert_eq!(buf, bytes);
}

fn request<'a>(filename: &'a [u8], mode: Mode, pairs: &'a [(&'a str, &'a str)]) -> Request<'a> {
    Request { filename, mode, options: Options::from_pairs(pairs).unwrap() }
}

#[test]
fn rfc1350_plain_transfer() {
    check(b"\x00\x01foo\0octet\0", Packet::ReadRequest(request(b"foo", Mode::Octet, &[])));
    check(
        b"\x00\x02bar.txt\0netascii\0",
        Packet::WriteRequest(request(b"bar.txt", Mode::Netascii, &[])),
    );
    check(b"\x00\x04\x00\x00", Packet::Ack { block: 0 });
    check(b"\x00\x03\x00\x01hello", Packet::Data { block: 1, data: b"hello" });
    check(b"\x00\x04\x00\x01", Packet::Ack { block: 1 });
    // The final, empty block of a file whose length is a multiple of the block size.
    check(b"\x00\x03\x00\x02", Packet::Data { block: 2, data: b"" });
}

#[test]
fn rfc1350_mode_is_case_insensitive() {
    assert_eq!(
        Packet::parse(b"\x00\x01foo\0NetASCII\0"),
        Ok(Packet::ReadRequest(request(b"foo", Mode::Netascii, &[])))
    );
    assert_eq!(
        Packet::parse(b"\x00\x01foo\0MAIL\0"),
        Ok(Packet::ReadRequest(request(b"foo", Mode::Mail, &[])))
    );
}

#[test]
fn rfc1350_errors() {
    check(
        b"\x00\x05\x00\x01File not found\0",
        Packet::Error { code: ErrorCode::FileNotFound, message: b"File not found" },
    );
    check(
        b"\x00\x05\x00\x05Unknown transfer ID\0",
        Packet::Error { code: ErrorCode::UnknownTransferId, message: b"Unknown transfer ID" },
    );
    // Without the final NUL, as many implementations send it.
    assert_eq!(
        Packet::parse(b"\x00\x05\x00\x02Access violation"),
        Ok(Packet::Error { code: ErrorCode::AccessViolation, message: b"Access violation" })
    );
}

#[test]
fn rfc2347_negotiation() {
    // |1|foofile|0|octet|0|blksize|0|1432|0|
    let rrq = b"\x00\x01foofile\0octet\0blksize\x001432\0";
    let pairs = [("blksize", "1432")];
    check(rrq, Packet::ReadRequest(request(b"foofile", Mode::Octet, &pairs)));
    // |6|blksize|0|1432|0|
    let oack = b"\x00\x06blksize\x001432\0";
    let Ok(Packet::OptionAck(options)) = Packet::parse(oack) else { panic!("not an OACK") };
    assert_eq!(options.blksize(), Some(Ok(1432)));
    check(oack, Packet::OptionAck(Options::from_pairs(&pairs).unwrap()));
    // The client refuses the OACK.
    check(
        b"\x00\x05\x00\x08Option negotiation refused\0",
        Packet::Error { code: ErrorCode::OptionRefused, message: b"Option negotiation refused" },
    );
}

#[test]
fn rfc2348_blksize() {
    let bytes = b"\x00\x01foo\0octet\0blksize\x001428\0";
    check(bytes, Packet::ReadRequest(request(b"foo", Mode::Octet, &[("blksize", "1428")])));
    let Ok(Packet::ReadRequest(request)) = Packet::parse(bytes) else { panic!("not an RRQ") };
    assert_eq!(request.options.blksize(), Some(Ok(1428)));
    // Out of range values are reported, not clamped.
    let Ok(Packet::ReadRequest(request)) = Packet::parse(b"\x00\x01foo\0octet\0blksize\x0065465\0")
    else {
        panic!("not an RRQ")
    };
    assert_eq!(
        request.options.blksize(),
        Some(Err(OptionValueError::OutOfRange { value: 65465, min: 8, max: 65464 }))
    );
}

#[test]
fn rfc2349_timeout_and_tsize() {
    let rrq = b"\x00\x01foo\0octet\0timeout\x005\0tsize\x000\0";
    let pairs = [("timeout", "5"), ("tsize", "0")];
    check(rrq, Packet::ReadRequest(request(b"foo", Mode::Octet, &pairs)));
    let Ok(Packet::ReadRequest(request)) = Packet::parse(rrq) else { panic!("not an RRQ") };
    assert_eq!(request.options.timeout(), Some(Ok(5)));
    assert_eq!(request.options.tsize(), Some(Ok(0)));
    let oack = b"\x00\x06timeout\x005\0tsize\x00673312\0";
    let Ok(Packet::OptionAck(options)) = Packet::parse(oack) else { panic!("not an OACK") };
    assert_eq!(options.tsize(), Some(Ok(673_312)));
    // A WRQ announces the size it will send.
    let wrq = b"\x00\x02upload.bin\0octet\0tsize\x0018446744073709551615\0";
    let Ok(Packet::WriteRequest(request)) = Packet::parse(wrq) else { panic!("not a WRQ") };
    assert_eq!(request.options.tsize(), Some(Ok(u64::MAX)));
}

#[test]
fn rfc7440_windowsize() {
    let rrq = b"\x00\x01foo\0octet\0windowsize\x0016\0";
    check(rrq, Packet::ReadRequest(request(b"foo", Mode::Octet, &[("windowsize", "16")])));
    let Ok(Packet::ReadRequest(request)) = Packet::parse(rrq) else { panic!("not an RRQ") };
    assert_eq!(request.options.windowsize(), Some(Ok(16)));
}

#[test]
fn option_names_are_case_insensitive() {
    let rrq = b"\x00\x01foo\0octet\0BLKSIZE\x001024\0WindowSize\x004\0";
    let Ok(Packet::ReadRequest(request)) = Packet::parse(rrq) else { panic!("not an RRQ") };
    assert_eq!(request.options.blksize(), Some(Ok(1024)));
    assert_eq!(request.options.windowsize(), Some(Ok(4)));
    // Names keep their case when emitted again.
    let mut buf = Vec::new();
    Packet::ReadRequest(request).emit(&mut buf);
    assert_eq!(buf, rrq);
}

#[test]
fn malformed_vectors() {
    let cases: [(&[u8], ParseError); 9] = [
        (b"\x00\x01foo\0octet\0blksize\x001428", ParseError::MissingNul(Field::OptionValue)),
        (
            b"\x00\x01foo\0octet\0blksize\x001428\0tsize\x000\0blksize\x00512\0",
            ParseError::DuplicateOption,
        ),
        (b"\x00\x01\0octet\0", ParseError::EmptyFilename),
        (b"\x00\x01foo\0binary\0", ParseError::UnknownMode),
        (b"\x00\x01foo\0octet\0blksize\x001\xb4\0", ParseError::NonAsciiOption),
        (b"\x00\x09", ParseError::UnknownOpcode(9)),
        (b"\x00\x04\x00\x01\x00\x00", ParseError::AckLength { len: 6 }),
        (b"\x00\x03\x00", ParseError::TooShort { len: 3 }),
        (b"\x00\x05\x00", ParseError::TooShort { len: 3 }),
    ];
    for (bytes, error) in cases {
        assert_eq!(Packet::parse(bytes), Err(error), "{bytes:?}");
    }
}
