//! The TFTP packet format: RFC 1350 with option negotiation (RFC 2347, 2348, 2349, 7440).
//!
//! Every packet starts with a big-endian two-byte opcode. Strings are NUL-terminated:
//!
//! | opcode | packet | layout after the opcode                                       |
//! |-------:|--------|---------------------------------------------------------------|
//! |      1 | RRQ    | `filename\0 mode\0` then options `name\0 value\0` ...         |
//! |      2 | WRQ    | as RRQ                                                        |
//! |      3 | DATA   | block number (2 bytes), then 0 to [`MAX_DATA_LEN`] data bytes |
//! |      4 | ACK    | block number (2 bytes), nothing else                          |
//! |      5 | ERROR  | error code (2 bytes), `message\0`                             |
//! |      6 | OACK   | options `name\0 value\0` ...                                  |
//!
//! [`Packet::parse`] checks every field once and returns a [`Packet`] that borrows the
//! datagram (no allocation: options stay in their wire bytes and are walked by an iterator);
//! [`Packet::emit`] writes a packet into a `Vec<u8>` the caller owns and reuses. Like
//! [`wire::utp`](super::utp), emitting **clears** the buffer first and then writes exactly
//! one packet.
//!
//! # What the parser accepts
//!
//! The codec is strict where a mistake could hurt the engine and lenient only where real
//! peers are known to deviate. Whether a *valid* packet makes sense (a block number, an
//! option the server does not support, a value out of range) is the engine's business.
//!
//! - **Opcode**: fewer than 2 bytes is [`ParseError::TooShort`]; an opcode outside 1-6 is
//!   [`ParseError::UnknownOpcode`].
//! - **Requests** (RRQ, WRQ) and **OACK** may be at most [`MAX_REQUEST_LEN`] (512) bytes,
//!   as RFC 2347 requires; longer is [`ParseError::TooLong`]. This bounds the work done on
//!   a packet nobody has authenticated yet.
//! - **Filename**: any bytes but NUL (RFC 1350 asks for netascii, but servers meet UTF-8
//!   names; confining the path is the engine's job). It must be NUL-terminated and
//!   non-empty ([`ParseError::MissingNul`], [`ParseError::EmptyFilename`]).
//! - **Mode**: `netascii`, `octet` or `mail`, in any case, NUL-terminated. `mail` is parsed
//!   so that the engine can refuse it with a clear ERROR; anything else is
//!   [`ParseError::UnknownMode`].
//! - **Options**: `name\0value\0` pairs until the end of the packet. Every string must be
//!   NUL-terminated, including the last value ([`ParseError::MissingNul`]), and ASCII
//!   ([`ParseError::NonAsciiOption`]); names must be non-empty
//!   ([`ParseError::EmptyOptionName`]) and unique ignoring ASCII case
//!   ([`ParseError::DuplicateOption`]); at most [`MAX_OPTIONS`] pairs
//!   ([`ParseError::TooManyOptions`]). Values may be empty; unknown options are kept (the
//!   engine ignores them, as RFC 2347 asks). Option values are not interpreted here: the
//!   typed helpers ([`Options::blksize`], [`Options::timeout`], [`Options::tsize`],
//!   [`Options::windowsize`]) parse them on demand and **report** out-of-range values as
//!   [`OptionValueError`] rather than clamping them.
//! - **DATA**: at least the block number ([`ParseError::TooShort`]) and at most
//!   [`MAX_DATA_LEN`] (the largest `blksize`, 65464) data bytes ([`ParseError::DataTooLong`]).
//!   A short block is valid: it ends the transfer.
//! - **ACK**: exactly 4 bytes ([`ParseError::AckLength`]).
//! - **ERROR** (lenient): the code and a message. Many implementations omit the message's
//!   final NUL, so a message running to the end of the datagram is accepted as is. The
//!   message ends at the first NUL; anything after it (padding some stacks send) is
//!   ignored. Its bytes are not required to be ASCII: an ERROR ends the transfer anyway and
//!   the message is only for display (see [`Packet::Error`]).
//!
//! Parsing never panics and always terminates: it is a single forward scan, plus a
//! duplicate check over at most [`MAX_OPTIONS`] names.
//!
//! # Round trips
//!
//! For every packet that [`Packet::parse`] returns, [`Packet::emit`] writes bytes that parse
//! back to an equal packet. The wire form is canonical except for three lenient spots:
//! the mode is written in lower case, an ERROR message always gets its final NUL, and bytes
//! after an ERROR message's NUL are dropped. Option names keep their case.
//!
//! # Emitting
//!
//! [`Packet::try_emit`] returns an [`EmitError`] for a packet the parser would reject (a
//! filename or message with a NUL, an empty filename, an oversized request or DATA);
//! [`Packet::emit`] treats these as programming errors and panics. Options built with
//! [`Options::from_pairs`] are validated when they are built, with the parser's rules.

use alloc::vec::Vec;
use core::fmt;
use core::iter::FusedIterator;

use thiserror::Error;

/// Opcode of a read request.
pub const OPCODE_RRQ: u16 = 1;
/// Opcode of a write request.
pub const OPCODE_WRQ: u16 = 2;
/// Opcode of a data block.
pub const OPCODE_DATA: u16 = 3;
/// Opcode of an acknowledgement.
pub const OPCODE_ACK: u16 = 4;
/// Opcode of an error.
pub const OPCODE_ERROR: u16 = 5;
/// Opcode of an option acknowledgement (RFC 2347).
pub const OPCODE_OACK: u16 = 6;

/// Longest RRQ, WRQ or OACK, in bytes, opcode included (RFC 2347).
pub const MAX_REQUEST_LEN: usize = 512;

/// Most data bytes a DATA packet can carry: the largest `blksize` of RFC 2348.
pub const MAX_DATA_LEN: usize = 65464;

/// Length of a DATA header and of a whole ACK: opcode and block number.
pub const HEADER_LEN: usize = 4;

/// Most option pairs in one request or OACK.
///
/// Far more than the four options this crate understands and the few that any client sends;
/// it bounds the duplicate check.
pub const MAX_OPTIONS: usize = 32;

/// The default block size of RFC 1350, used when no `blksize` is negotiated.
pub const DEFAULT_BLKSIZE: u16 = 512;

/// Name of the block size option (RFC 2348).
pub const OPTION_BLKSIZE: &str = "blksize";
/// Name of the timeout option (RFC 2349).
pub const OPTION_TIMEOUT: &str = "timeout";
/// Name of the transfer size option (RFC 2349).
pub const OPTION_TSIZE: &str = "tsize";
/// Name of the window size option (RFC 7440).
pub const OPTION_WINDOWSIZE: &str = "windowsize";

/// A parsed TFTP packet that borrows the datagram it was parsed from.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum Packet<'a> {
    /// A read request (RRQ, opcode 1).
    ReadRequest(Request<'a>),
    /// A write request (WRQ, opcode 2).
    WriteRequest(Request<'a>),
    /// A data block (opcode 3).
    Data {
        /// The block number; blocks are numbered from 1, and wrap after 65535.
        block: u16,
        /// The data, at most [`MAX_DATA_LEN`] bytes; shorter than the block size on the
        /// last block.
        data: &'a [u8],
    },
    /// An acknowledgement (opcode 4).
    Ack {
        /// The acknowledged block number; 0 answers a WRQ or an OACK.
        block: u16,
    },
    /// An error (opcode 5), which ends the transfer.
    Error {
        /// The error code.
        code: ErrorCode,
        /// The message, without its terminating NUL. Any bytes but NUL; usually ASCII.
        message: &'a [u8],
    },
    /// An option acknowledgement (OACK, opcode 6, RFC 2347).
    OptionAck(Options<'a>),
}

impl<'a> Packet<'a> {
    /// Parses one datagram.
    ///
    /// See the [module documentation](self) for what is accepted and what is not.
    ///
    /// # Errors
    ///
    /// A [`ParseError`] naming the first thing wrong with `data`.
    ///
    /// # Examples
    ///
    /// ```
    /// use utp_proto::wire::tftp::{Mode, Packet};
    ///
    /// let bytes = b"\x00\x01foo\0octet\0blksize\x001428\0";
    /// let Packet::ReadRequest(request) = Packet::parse(bytes)? else { panic!() };
    /// assert_eq!(request.filename, b"foo");
    /// assert_eq!(request.mode, Mode::Octet);
    /// assert_eq!(request.options.blksize(), Some(Ok(1428)));
    /// # Ok::<(), utp_proto::wire::tftp::ParseError>(())
    /// ```
    pub fn parse(data: &'a [u8]) -> Result<Self, ParseError> {
        let Some((&[hi, lo], rest)) = data.split_first_chunk::<2>() else {
            return Err(ParseError::TooShort { len: data.len() });
        };
        let opcode = u16::from_be_bytes([hi, lo]);
        match opcode {
            OPCODE_RRQ | OPCODE_WRQ | OPCODE_OACK if data.len() > MAX_REQUEST_LEN => {
                Err(ParseError::TooLong { len: data.len() })
            }
            OPCODE_RRQ => Request::parse(rest).map(Self::ReadRequest),
            OPCODE_WRQ => Request::parse(rest).map(Self::WriteRequest),
            OPCODE_OACK => Options::parse(rest).map(Self::OptionAck),
            OPCODE_DATA => {
                let Some((block, data)) = rest.split_first_chunk::<2>() else {
                    return Err(ParseError::TooShort { len: data.len() });
                };
                if data.len() > MAX_DATA_LEN {
                    return Err(ParseError::DataTooLong { len: data.len() });
                }
                Ok(Self::Data { block: u16::from_be_bytes(*block), data })
            }
            OPCODE_ACK => match rest {
                &[hi, lo] => Ok(Self::Ack { block: u16::from_be_bytes([hi, lo]) }),
                _ => Err(ParseError::AckLength { len: data.len() }),
            },
            OPCODE_ERROR => {
                let Some((code, message)) = rest.split_first_chunk::<2>() else {
                    return Err(ParseError::TooShort { len: data.len() });
                };
                // Lenient: the final NUL may be missing, and anything after it is ignored.
                let message = match split_nul(message) {
                    Some((message, _)) => message,
                    None => message,
                };
                Ok(Self::Error { code: ErrorCode::from(u16::from_be_bytes(*code)), message })
            }
            other => Err(ParseError::UnknownOpcode(other)),
        }
    }

    /// The packet's opcode.
    pub const fn opcode(&self) -> u16 {
        match self {
            Self::ReadRequest(_) => OPCODE_RRQ,
            Self::WriteRequest(_) => OPCODE_WRQ,
            Self::Data { .. } => OPCODE_DATA,
            Self::Ack { .. } => OPCODE_ACK,
            Self::Error { .. } => OPCODE_ERROR,
            Self::OptionAck(_) => OPCODE_OACK,
        }
    }

    /// Number of bytes [`emit`](Self::emit) writes for this packet.
    pub fn emitted_len(&self) -> usize {
        match self {
            Self::ReadRequest(request) | Self::WriteRequest(request) => {
                2 + request.filename.len()
                    + 1
                    + request.mode.as_str().len()
                    + 1
                    + request.options.emitted_len()
            }
            Self::Data { data, .. } => HEADER_LEN + data.len(),
            Self::Ack { .. } => HEADER_LEN,
            Self::Error { message, .. } => HEADER_LEN + message.len() + 1,
            Self::OptionAck(options) => 2 + options.emitted_len(),
        }
    }

    /// Clears `buf` and writes this packet into it.
    ///
    /// # Panics
    ///
    /// If [`try_emit`](Self::try_emit) would return an error: the packet is one the parser
    /// would reject, which is a bug in the caller.
    pub fn emit(&self, buf: &mut Vec<u8>) {
        if let Err(error) = self.try_emit(buf) {
            panic!("cannot emit a TFTP packet: {error}");
        }
    }

    /// Clears `buf` and writes this packet into it, or reports why it cannot be emitted.
    ///
    /// On error `buf` is left empty.
    ///
    /// # Errors
    ///
    /// - [`EmitError::EmptyFilename`] or [`EmitError::NulInFilename`] for a request with
    ///   such a filename.
    /// - [`EmitError::TooLong`] for a request or OACK longer than [`MAX_REQUEST_LEN`].
    /// - [`EmitError::DataTooLong`] for DATA with more than [`MAX_DATA_LEN`] bytes.
    /// - [`EmitError::NulInMessage`] for an ERROR message containing a NUL.
    pub fn try_emit(&self, buf: &mut Vec<u8>) -> Result<(), EmitError> {
        buf.clear();
        match self {
            Self::ReadRequest(request) | Self::WriteRequest(request) => {
                if request.filename.is_empty() {
                    return Err(EmitError::EmptyFilename);
                }
                if request.filename.contains(&0) {
                    return Err(EmitError::NulInFilename);
                }
            }
            Self::Data { data, .. } if data.len() > MAX_DATA_LEN => {
                return Err(EmitError::DataTooLong { len: data.len() });
            }
            Self::Error { message, .. } if message.contains(&0) => {
                return Err(EmitError::NulInMessage);
            }
            _ => {}
        }
        let len = self.emitted_len();
        if matches!(self, Self::ReadRequest(_) | Self::WriteRequest(_) | Self::OptionAck(_))
            && len > MAX_REQUEST_LEN
        {
            return Err(EmitError::TooLong { len });
        }
        buf.reserve(len);
        buf.extend_from_slice(&self.opcode().to_be_bytes());
        match self {
            Self::ReadRequest(request) | Self::WriteRequest(request) => {
                push_string(buf, request.filename);
                push_string(buf, request.mode.as_str().as_bytes());
                request.options.write(buf);
            }
            Self::Data { block, data } => {
                buf.extend_from_slice(&block.to_be_bytes());
                buf.extend_from_slice(data);
            }
            Self::Ack { block } => buf.extend_from_slice(&block.to_be_bytes()),
            Self::Error { code, message } => {
                buf.extend_from_slice(&u16::from(*code).to_be_bytes());
                push_string(buf, message);
            }
            Self::OptionAck(options) => options.write(buf),
        }
        Ok(())
    }
}

/// The body of a read or write request.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub struct Request<'a> {
    /// The filename, without its NUL: non-empty, any bytes but NUL. Not checked for path
    /// traversal; that is the engine's job.
    pub filename: &'a [u8],
    /// The transfer mode.
    pub mode: Mode,
    /// The options that follow the mode (RFC 2347), possibly none.
    pub options: Options<'a>,
}

impl<'a> Request<'a> {
    /// Parses the bytes after the opcode.
    fn parse(data: &'a [u8]) -> Result<Self, ParseError> {
        let (filename, rest) = split_nul(data).ok_or(ParseError::MissingNul(Field::Filename))?;
        if filename.is_empty() {
            return Err(ParseError::EmptyFilename);
        }
        let (mode, rest) = split_nul(rest).ok_or(ParseError::MissingNul(Field::Mode))?;
        let mode = Mode::parse(mode).ok_or(ParseError::UnknownMode)?;
        let options = Options::parse(rest)?;
        Ok(Self { filename, mode, options })
    }
}

/// A transfer mode (RFC 1350), matched case-insensitively on the wire.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum Mode {
    /// `netascii`: text with CR LF line ends and CR NUL for a bare CR.
    Netascii,
    /// `octet`: raw bytes.
    Octet,
    /// `mail`: obsolete (mail to a user). Parsed only so that the engine can refuse it.
    Mail,
}

impl Mode {
    /// The mode's name as it is written on the wire (lower case).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Netascii => "netascii",
            Self::Octet => "octet",
            Self::Mail => "mail",
        }
    }

    /// The mode called `name`, ignoring ASCII case, or `None`.
    pub fn parse(name: &[u8]) -> Option<Self> {
        [Self::Netascii, Self::Octet, Self::Mail]
            .into_iter()
            .find(|mode| name.eq_ignore_ascii_case(mode.as_str().as_bytes()))
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The code of an ERROR packet (RFC 1350, and 8 from RFC 2347).
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum ErrorCode {
    /// 0: not defined, see the message.
    NotDefined,
    /// 1: file not found.
    FileNotFound,
    /// 2: access violation.
    AccessViolation,
    /// 3: disk full or allocation exceeded.
    DiskFull,
    /// 4: illegal TFTP operation.
    IllegalOperation,
    /// 5: unknown transfer ID (a packet from the wrong port).
    UnknownTransferId,
    /// 6: file already exists.
    FileAlreadyExists,
    /// 7: no such user.
    NoSuchUser,
    /// 8: option negotiation refused (RFC 2347).
    OptionRefused,
    /// Any other code. Parsing never produces `Other` with a code from 0 to 8.
    Other(u16),
}

impl From<u16> for ErrorCode {
    fn from(code: u16) -> Self {
        match code {
            0 => Self::NotDefined,
            1 => Self::FileNotFound,
            2 => Self::AccessViolation,
            3 => Self::DiskFull,
            4 => Self::IllegalOperation,
            5 => Self::UnknownTransferId,
            6 => Self::FileAlreadyExists,
            7 => Self::NoSuchUser,
            8 => Self::OptionRefused,
            other => Self::Other(other),
        }
    }
}

impl From<ErrorCode> for u16 {
    fn from(code: ErrorCode) -> Self {
        match code {
            ErrorCode::NotDefined => 0,
            ErrorCode::FileNotFound => 1,
            ErrorCode::AccessViolation => 2,
            ErrorCode::DiskFull => 3,
            ErrorCode::IllegalOperation => 4,
            ErrorCode::UnknownTransferId => 5,
            ErrorCode::FileAlreadyExists => 6,
            ErrorCode::NoSuchUser => 7,
            ErrorCode::OptionRefused => 8,
            ErrorCode::Other(other) => other,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Self::NotDefined => "not defined",
            Self::FileNotFound => "file not found",
            Self::AccessViolation => "access violation",
            Self::DiskFull => "disk full or allocation exceeded",
            Self::IllegalOperation => "illegal TFTP operation",
            Self::UnknownTransferId => "unknown transfer ID",
            Self::FileAlreadyExists => "file already exists",
            Self::NoSuchUser => "no such user",
            Self::OptionRefused => "option negotiation refused",
            Self::Other(_) => "unknown code",
        };
        write!(f, "{} ({text})", u16::from(*self))
    }
}

/// One option: a name and a value, both ASCII without NUL.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub struct TftpOption<'a> {
    /// The name as it was written; compare it with [`TftpOption::is`].
    pub name: &'a str,
    /// The value, uninterpreted.
    pub value: &'a str,
}

impl TftpOption<'_> {
    /// Whether this option is called `name`, ignoring ASCII case.
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

/// The options of a request or an OACK, in wire order, validated once.
///
/// Either borrowed from a parsed packet (their wire bytes) or built with
/// [`Options::from_pairs`]; both hold the same guarantees: at most [`MAX_OPTIONS`] pairs,
/// ASCII, no NUL, non-empty names, no name twice (ignoring case). Equality compares the
/// pairs in order, whichever way the options were made.
#[derive(Clone, Copy)]
pub struct Options<'a>(Repr<'a>);

#[derive(Clone, Copy, Debug)]
enum Repr<'a> {
    /// `name\0value\0` pairs as on the wire.
    Wire(&'a [u8]),
    /// Pairs built by the caller.
    Pairs(&'a [(&'a str, &'a str)]),
}

impl<'a> Options<'a> {
    /// No options.
    pub const EMPTY: Options<'static> = Options(Repr::Wire(&[]));

    /// Options from `(name, value)` pairs, in the order they will be emitted.
    ///
    /// # Errors
    ///
    /// The [`ParseError`] the parser would return for these options on the wire: a NUL in
    /// a name or value is [`ParseError::MissingNul`] (it would end the string early).
    pub fn from_pairs(pairs: &'a [(&'a str, &'a str)]) -> Result<Self, ParseError> {
        if pairs.len() > MAX_OPTIONS {
            return Err(ParseError::TooManyOptions);
        }
        for (index, &(name, value)) in pairs.iter().enumerate() {
            if name.contains('\0') {
                return Err(ParseError::MissingNul(Field::OptionName));
            }
            if value.contains('\0') {
                return Err(ParseError::MissingNul(Field::OptionValue));
            }
            check_option(name.as_bytes(), value.as_bytes())?;
            if pairs[..index].iter().any(|(seen, _)| seen.eq_ignore_ascii_case(name)) {
                return Err(ParseError::DuplicateOption);
            }
        }
        Ok(Self(Repr::Pairs(pairs)))
    }

    /// Validates the `name\0value\0` pairs that make up the whole of `data`.
    fn parse(data: &'a [u8]) -> Result<Self, ParseError> {
        let mut rest = data;
        let mut count = 0;
        while !rest.is_empty() {
            let (name, after) = split_nul(rest).ok_or(ParseError::MissingNul(Field::OptionName))?;
            let (value, after) =
                split_nul(after).ok_or(ParseError::MissingNul(Field::OptionValue))?;
            check_option(name, value)?;
            count += 1;
            if count > MAX_OPTIONS {
                return Err(ParseError::TooManyOptions);
            }
            // At most MAX_OPTIONS earlier names to compare with.
            let earlier = &data[..data.len() - rest.len()];
            if (Self(Repr::Wire(earlier))).iter().any(|option| option.is_bytes(name)) {
                return Err(ParseError::DuplicateOption);
            }
            rest = after;
        }
        Ok(Self(Repr::Wire(data)))
    }

    /// The options in wire order.
    pub fn iter(&self) -> OptionsIter<'a> {
        OptionsIter(self.0)
    }

    /// Whether there are no options.
    pub fn is_empty(&self) -> bool {
        match self.0 {
            Repr::Wire(bytes) => bytes.is_empty(),
            Repr::Pairs(pairs) => pairs.is_empty(),
        }
    }

    /// Number of options.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// The value of the option called `name` (ignoring ASCII case), if present.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.iter().find(|option| option.is(name)).map(|option| option.value)
    }

    /// The `blksize` option (RFC 2348), if present: 8 to [`MAX_DATA_LEN`] (65464).
    ///
    /// # Errors
    ///
    /// The inner result is an [`OptionValueError`] if the value is not a decimal number in
    /// that range; the value is reported, never clamped.
    pub fn blksize(&self) -> Option<Result<u16, OptionValueError>> {
        self.get(OPTION_BLKSIZE).map(|value| parse_in_range(value, 8, MAX_DATA_LEN as u64))
    }

    /// The `timeout` option (RFC 2349) in seconds, if present: 1 to 255.
    ///
    /// # Errors
    ///
    /// As for [`blksize`](Self::blksize).
    pub fn timeout(&self) -> Option<Result<u8, OptionValueError>> {
        self.get(OPTION_TIMEOUT).map(|value| parse_in_range(value, 1, 255))
    }

    /// The `tsize` option (RFC 2349) in bytes, if present: any `u64` (0 in a read request
    /// asks the server for the size).
    ///
    /// # Errors
    ///
    /// As for [`blksize`](Self::blksize).
    pub fn tsize(&self) -> Option<Result<u64, OptionValueError>> {
        self.get(OPTION_TSIZE).map(|value| parse_in_range(value, 0, u64::MAX))
    }

    /// The `windowsize` option (RFC 7440) in blocks, if present: 1 to 65535.
    ///
    /// # Errors
    ///
    /// As for [`blksize`](Self::blksize).
    pub fn windowsize(&self) -> Option<Result<u16, OptionValueError>> {
        self.get(OPTION_WINDOWSIZE).map(|value| parse_in_range(value, 1, 65535))
    }

    /// Bytes the options take on the wire.
    fn emitted_len(&self) -> usize {
        match self.0 {
            Repr::Wire(bytes) => bytes.len(),
            Repr::Pairs(_) => self.iter().map(|o| o.name.len() + o.value.len() + 2).sum(),
        }
    }

    /// Appends the options' wire form to `buf`.
    fn write(&self, buf: &mut Vec<u8>) {
        match self.0 {
            Repr::Wire(bytes) => buf.extend_from_slice(bytes),
            Repr::Pairs(_) => {
                for option in self.iter() {
                    push_string(buf, option.name.as_bytes());
                    push_string(buf, option.value.as_bytes());
                }
            }
        }
    }
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options::EMPTY
    }
}

impl PartialEq for Options<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Options<'_> {}

impl core::hash::Hash for Options<'_> {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        for option in self.iter() {
            option.hash(state);
        }
    }
}

impl fmt::Debug for Options<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter().map(|option| (option.name, option.value))).finish()
    }
}

impl<'a> IntoIterator for &Options<'a> {
    type Item = TftpOption<'a>;
    type IntoIter = OptionsIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over [`Options`], in wire order.
#[derive(Clone, Debug)]
pub struct OptionsIter<'a>(Repr<'a>);

impl<'a> Iterator for OptionsIter<'a> {
    type Item = TftpOption<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            Repr::Wire(bytes) => {
                // Validated at parse time: whole `name\0value\0` pairs of ASCII. Should the
                // bytes somehow end early, the iterator just stops.
                let (name, rest) = split_nul(bytes)?;
                let (value, rest) = split_nul(rest)?;
                *bytes = rest;
                let name = core::str::from_utf8(name).ok()?;
                let value = core::str::from_utf8(value).ok()?;
                Some(TftpOption { name, value })
            }
            Repr::Pairs(pairs) => {
                let (&(name, value), rest) = pairs.split_first()?;
                *pairs = rest;
                Some(TftpOption { name, value })
            }
        }
    }
}

impl FusedIterator for OptionsIter<'_> {}

impl TftpOption<'_> {
    fn is_bytes(&self, name: &[u8]) -> bool {
        self.name.as_bytes().eq_ignore_ascii_case(name)
    }
}

/// Parses a decimal option value strictly: ASCII digits only (leading zeros allowed), no
/// sign, no spaces, no overflow.
///
/// # Errors
///
/// [`OptionValueError::NotDecimal`] or [`OptionValueError::TooLarge`].
pub fn parse_decimal(value: &str) -> Result<u64, OptionValueError> {
    if value.is_empty() || !value.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(OptionValueError::NotDecimal);
    }
    value.bytes().try_fold(0u64, |acc, byte| {
        acc.checked_mul(10)
            .and_then(|acc| acc.checked_add(u64::from(byte - b'0')))
            .ok_or(OptionValueError::TooLarge)
    })
}

/// Why an option's value is not acceptable to a typed helper such as [`Options::blksize`].
#[derive(Clone, Copy, Debug, Eq, Error, Hash, PartialEq)]
#[non_exhaustive]
pub enum OptionValueError {
    /// The value is empty or has a byte that is not an ASCII digit.
    #[error("TFTP option value is not a decimal number")]
    NotDecimal,
    /// The value does not fit in 64 bits.
    #[error("TFTP option value does not fit in 64 bits")]
    TooLarge,
    /// The value is a number outside the option's range.
    #[error("TFTP option value {value} is outside {min}..={max}")]
    OutOfRange {
        /// The value.
        value: u64,
        /// The smallest value allowed.
        min: u64,
        /// The largest value allowed.
        max: u64,
    },
}

/// Which string of a request or option list a [`ParseError::MissingNul`] is about.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum Field {
    /// The filename of a request.
    Filename,
    /// The mode of a request.
    Mode,
    /// An option's name.
    OptionName,
    /// An option's value.
    OptionValue,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Filename => "filename",
            Self::Mode => "mode",
            Self::OptionName => "option name",
            Self::OptionValue => "option value",
        })
    }
}

/// Why a datagram is not a TFTP packet.
#[derive(Clone, Copy, Debug, Eq, Error, Hash, PartialEq)]
#[non_exhaustive]
pub enum ParseError {
    /// The datagram ends before the opcode, or before the block number or error code.
    #[error("{len}-byte TFTP packet is truncated")]
    TooShort {
        /// The datagram's length.
        len: usize,
    },
    /// The opcode is not 1 to 6.
    #[error("unknown TFTP opcode {0}: opcodes are 1 (RRQ) to 6 (OACK)")]
    UnknownOpcode(u16),
    /// A request or OACK is longer than [`MAX_REQUEST_LEN`].
    #[error("{len}-byte TFTP request is longer than 512 bytes")]
    TooLong {
        /// The datagram's length.
        len: usize,
    },
    /// A string runs to the end of the datagram without its terminating NUL.
    #[error("TFTP {0} has no terminating NUL")]
    MissingNul(Field),
    /// A request's filename is empty.
    #[error("TFTP request has an empty filename")]
    EmptyFilename,
    /// A request's mode is not `netascii`, `octet` or `mail`.
    #[error("unknown TFTP mode: modes are netascii, octet and mail")]
    UnknownMode,
    /// An option's name or value has a byte above 127.
    #[error("TFTP option name or value is not ASCII")]
    NonAsciiOption,
    /// An option's name is empty.
    #[error("TFTP option has an empty name")]
    EmptyOptionName,
    /// Two options have the same name, ignoring ASCII case.
    #[error("TFTP option appears twice")]
    DuplicateOption,
    /// More than [`MAX_OPTIONS`] options.
    #[error("more than 32 TFTP options")]
    TooManyOptions,
    /// DATA carries more than [`MAX_DATA_LEN`] bytes.
    #[error("TFTP DATA carries {len} bytes, more than the largest block size 65464")]
    DataTooLong {
        /// The number of data bytes.
        len: usize,
    },
    /// An ACK is not exactly 4 bytes long.
    #[error("TFTP ACK is {len} bytes long instead of 4")]
    AckLength {
        /// The datagram's length.
        len: usize,
    },
}

/// Why [`Packet::try_emit`] cannot write a packet.
#[derive(Clone, Copy, Debug, Eq, Error, Hash, PartialEq)]
#[non_exhaustive]
pub enum EmitError {
    /// A request has an empty filename.
    #[error("cannot emit a TFTP request with an empty filename")]
    EmptyFilename,
    /// A request's filename contains a NUL, which would end it early.
    #[error("cannot emit a TFTP filename that contains a NUL")]
    NulInFilename,
    /// An ERROR message contains a NUL, which would end it early.
    #[error("cannot emit a TFTP error message that contains a NUL")]
    NulInMessage,
    /// A request or OACK would be longer than [`MAX_REQUEST_LEN`].
    #[error("TFTP request would be {len} bytes, longer than 512")]
    TooLong {
        /// The length it would have.
        len: usize,
    },
    /// DATA with more than [`MAX_DATA_LEN`] bytes.
    #[error("TFTP DATA of {len} bytes is longer than the largest block size 65464")]
    DataTooLong {
        /// The number of data bytes.
        len: usize,
    },
}

/// Splits `data` at its first NUL: the bytes before it and the bytes after it.
fn split_nul(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = data.iter().position(|&byte| byte == 0)?;
    Some((data.get(..end)?, data.get(end + 1..)?))
}

/// Checks one option's name and value (already split at their NULs).
fn check_option(name: &[u8], value: &[u8]) -> Result<(), ParseError> {
    if !name.is_ascii() || !value.is_ascii() {
        return Err(ParseError::NonAsciiOption);
    }
    if name.is_empty() {
        return Err(ParseError::EmptyOptionName);
    }
    Ok(())
}

/// Parses a decimal value and checks it is in `min..=max`, which must fit in `T`.
fn parse_in_range<T: TryFrom<u64>>(value: &str, min: u64, max: u64) -> Result<T, OptionValueError> {
    let number = parse_decimal(value)?;
    let out_of_range = OptionValueError::OutOfRange { value: number, min, max };
    if !(min..=max).contains(&number) {
        return Err(out_of_range);
    }
    T::try_from(number).map_err(|_| out_of_range)
}

/// Appends `string` and its terminating NUL.
fn push_string(buf: &mut Vec<u8>, string: &[u8]) {
    buf.extend_from_slice(string);
    buf.push(0);
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;

    fn roundtrip(packet: Packet<'_>) -> Vec<u8> {
        let mut buf = vec![0xaa; 3];
        packet.emit(&mut buf);
        assert_eq!(buf.len(), packet.emitted_len());
        assert_eq!(Packet::parse(&buf), Ok(packet));
        buf
    }

    #[test]
    fn read_request_with_options() {
        let bytes = b"\x00\x01foo\0OCTET\0BlkSize\x001428\0windowsize\x0016\0";
        let Ok(Packet::ReadRequest(request)) = Packet::parse(bytes) else { panic!() };
        assert_eq!(request.filename, b"foo");
        assert_eq!(request.mode, Mode::Octet);
        assert_eq!(request.options.len(), 2);
        assert_eq!(request.options.get("blksize"), Some("1428"));
        assert_eq!(request.options.blksize(), Some(Ok(1428)));
        assert_eq!(request.options.windowsize(), Some(Ok(16)));
        assert_eq!(request.options.timeout(), None);
        let names: Vec<&str> = request.options.iter().map(|o| o.name).collect();
        assert_eq!(names, ["BlkSize", "windowsize"]);
        // Mode case is normalised; option names keep their case.
        let emitted = roundtrip(Packet::ReadRequest(request));
        assert_eq!(emitted, b"\x00\x01foo\0octet\0BlkSize\x001428\0windowsize\x0016\0");
    }

    #[test]
    fn modes() {
        for (name, mode) in [
            (&b"netascii"[..], Mode::Netascii),
            (b"NetAscii", Mode::Netascii),
            (b"mail", Mode::Mail),
        ] {
            assert_eq!(Mode::parse(name), Some(mode));
        }
        assert_eq!(Mode::parse(b"binary"), None);
        assert_eq!(Packet::parse(b"\x00\x02f\0binary\0"), Err(ParseError::UnknownMode));
        assert_eq!(Packet::parse(b"\x00\x02f\0octe\xc3\0"), Err(ParseError::UnknownMode));
    }

    #[test]
    fn request_errors() {
        let cases: [(&[u8], ParseError); 11] = [
            (b"", ParseError::TooShort { len: 0 }),
            (b"\x00", ParseError::TooShort { len: 1 }),
            (b"\x00\x07", ParseError::UnknownOpcode(7)),
            (b"\x00\x00", ParseError::UnknownOpcode(0)),
            (b"\x00\x01foo", ParseError::MissingNul(Field::Filename)),
            (b"\x00\x01\0octet\0", ParseError::EmptyFilename),
            (b"\x00\x01foo\0octet", ParseError::MissingNul(Field::Mode)),
            (b"\x00\x01foo\0octet\0blksize", ParseError::MissingNul(Field::OptionName)),
            (b"\x00\x01foo\0octet\0blksize\x00512", ParseError::MissingNul(Field::OptionValue)),
            (b"\x00\x01foo\0octet\0\x00512\0", ParseError::EmptyOptionName),
            (b"\x00\x01foo\0octet\0bl\xffk\x00512\0", ParseError::NonAsciiOption),
        ];
        for (bytes, error) in cases {
            assert_eq!(Packet::parse(bytes), Err(error), "{bytes:?}");
        }
        assert_eq!(
            Packet::parse(b"\x00\x01foo\0octet\0blksize\x00512\0BLKSIZE\x001024\0"),
            Err(ParseError::DuplicateOption)
        );
        assert_eq!(Packet::parse(b"\x00\x06tsize\0\xe9\0"), Err(ParseError::NonAsciiOption));
    }

    #[test]
    fn request_length_and_option_count_are_capped() {
        let mut long = b"\x00\x01".to_vec();
        long.extend_from_slice(&[b'a'; 503]);
        long.extend_from_slice(b"\0octet\0");
        assert_eq!(long.len(), MAX_REQUEST_LEN);
        assert!(Packet::parse(&long).is_ok());
        long.insert(2, b'a');
        assert_eq!(Packet::parse(&long), Err(ParseError::TooLong { len: 513 }));

        let mut many = b"\x00\x06".to_vec();
        for index in 0..=MAX_OPTIONS {
            many.extend_from_slice(format_option(index).as_slice());
        }
        assert_eq!(Packet::parse(&many), Err(ParseError::TooManyOptions));
    }

    fn format_option(index: usize) -> Vec<u8> {
        let mut option = vec![b'o', b'a' + (index / 26) as u8, b'a' + (index % 26) as u8, 0];
        option.extend_from_slice(b"1\0");
        option
    }

    #[test]
    fn data_and_ack() {
        assert_eq!(roundtrip(Packet::Data { block: 1, data: b"" }), b"\x00\x03\x00\x01");
        assert_eq!(
            Packet::parse(b"\x00\x03\xff\xffhi"),
            Ok(Packet::Data { block: 65535, data: b"hi" })
        );
        assert_eq!(Packet::parse(b"\x00\x03\x00"), Err(ParseError::TooShort { len: 3 }));
        let big = vec![0; HEADER_LEN + MAX_DATA_LEN + 1];
        let mut big = big;
        big[1] = 3;
        assert_eq!(Packet::parse(&big), Err(ParseError::DataTooLong { len: MAX_DATA_LEN + 1 }));
        assert!(Packet::parse(&big[..big.len() - 1]).is_ok());

        assert_eq!(roundtrip(Packet::Ack { block: 0x0102 }), b"\x00\x04\x01\x02");
        assert_eq!(Packet::parse(b"\x00\x04\x00"), Err(ParseError::AckLength { len: 3 }));
        assert_eq!(Packet::parse(b"\x00\x04\x00\x01\x00"), Err(ParseError::AckLength { len: 5 }));
    }

    #[test]
    fn error_is_lenient_about_its_nul() {
        let expected = Packet::Error { code: ErrorCode::FileNotFound, message: b"File not found" };
        assert_eq!(Packet::parse(b"\x00\x05\x00\x01File not found\0"), Ok(expected));
        assert_eq!(Packet::parse(b"\x00\x05\x00\x01File not found"), Ok(expected));
        assert_eq!(Packet::parse(b"\x00\x05\x00\x01File not found\0\0\0pad"), Ok(expected));
        assert_eq!(
            Packet::parse(b"\x00\x05\x00\x2a"),
            Ok(Packet::Error { code: ErrorCode::Other(42), message: b"" })
        );
        assert_eq!(Packet::parse(b"\x00\x05\x00"), Err(ParseError::TooShort { len: 3 }));
        roundtrip(expected);
    }

    #[test]
    fn error_codes() {
        for code in 0..=20u16 {
            assert_eq!(u16::from(ErrorCode::from(code)), code);
        }
        assert_eq!(ErrorCode::from(8), ErrorCode::OptionRefused);
        assert_eq!(ErrorCode::from(9), ErrorCode::Other(9));
    }

    #[test]
    fn option_values() {
        assert_eq!(parse_decimal("0"), Ok(0));
        assert_eq!(parse_decimal("00512"), Ok(512));
        assert_eq!(parse_decimal("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(parse_decimal("18446744073709551616"), Err(OptionValueError::TooLarge));
        for bad in ["", "+1", "-1", " 1", "1 ", "0x10", "1e3"] {
            assert_eq!(parse_decimal(bad), Err(OptionValueError::NotDecimal), "{bad:?}");
        }
        let pairs = [("blksize", "7"), ("timeout", "256"), ("tsize", "0"), ("windowsize", "0")];
        let options = Options::from_pairs(&pairs).unwrap();
        assert_eq!(
            options.blksize(),
            Some(Err(OptionValueError::OutOfRange { value: 7, min: 8, max: 65464 }))
        );
        assert_eq!(
            options.timeout(),
            Some(Err(OptionValueError::OutOfRange { value: 256, min: 1, max: 255 }))
        );
        assert_eq!(options.tsize(), Some(Ok(0)));
        assert_eq!(
            options.windowsize(),
            Some(Err(OptionValueError::OutOfRange { value: 0, min: 1, max: 65535 }))
        );
        let pairs = [("blksize", "65464"), ("timeout", "255"), ("windowsize", "65535")];
        let options = Options::from_pairs(&pairs).unwrap();
        assert_eq!(options.blksize(), Some(Ok(65464)));
        assert_eq!(options.timeout(), Some(Ok(255)));
        assert_eq!(options.windowsize(), Some(Ok(65535)));
    }

    #[test]
    fn options_from_pairs_follow_the_parser() {
        assert_eq!(
            Options::from_pairs(&[("a", "1"), ("A", "2")]),
            Err(ParseError::DuplicateOption)
        );
        assert_eq!(Options::from_pairs(&[("", "1")]), Err(ParseError::EmptyOptionName));
        assert_eq!(Options::from_pairs(&[("é", "1")]), Err(ParseError::NonAsciiOption));
        assert!(Options::from_pairs(&[("a\0", "1")]).is_err());
        assert!(Options::from_pairs(&[("a", "1\0")]).is_err());
        let pairs = [("tsize", "0")];
        let built = Options::from_pairs(&pairs).unwrap();
        let Ok(Packet::OptionAck(parsed)) = Packet::parse(b"\x00\x06tsize\x000\0") else {
            panic!()
        };
        assert_eq!(built, parsed);
        assert_eq!(roundtrip(Packet::OptionAck(built)), b"\x00\x06tsize\x000\0");
        assert_eq!(Options::default(), Options::EMPTY);
        assert!(Options::EMPTY.is_empty());
    }

    #[test]
    fn emit_refuses_what_parse_refuses() {
        let mut buf = Vec::new();
        let request = |filename| {
            Packet::WriteRequest(Request { filename, mode: Mode::Octet, options: Options::EMPTY })
        };
        assert_eq!(request(b"").try_emit(&mut buf), Err(EmitError::EmptyFilename));
        assert_eq!(request(b"a\0b").try_emit(&mut buf), Err(EmitError::NulInFilename));
        assert_eq!(request(&[b'a'; 600]).try_emit(&mut buf), Err(EmitError::TooLong { len: 609 }));
        let message = Packet::Error { code: ErrorCode::NotDefined, message: b"a\0" };
        assert_eq!(message.try_emit(&mut buf), Err(EmitError::NulInMessage));
        let data = [0; MAX_DATA_LEN + 1];
        assert_eq!(
            Packet::Data { block: 1, data: &data }.try_emit(&mut buf),
            Err(EmitError::DataTooLong { len: MAX_DATA_LEN + 1 })
        );
        assert!(buf.is_empty());
    }
}
