//! The rudp packet format, version 1, as specified in `docs/rudp.md`.
//!
//! Every datagram holds exactly one packet: a 10-byte common header, then a body whose
//! layout depends on the type. All integers are unsigned and big-endian:
//!
//! | offset | size | field                                                     |
//! |-------:|-----:|-----------------------------------------------------------|
//! |      0 |    1 | `version`: [`VERSION`] (1)                                |
//! |      1 |    1 | `type`: a [`PacketType`], 1 to 9                          |
//! |      2 |    8 | `dst_id`: the receiver's connection id, 0 only in CONNECT |
//!
//! | type | packet      | body (offsets from the start of the datagram)                      |
//! |-----:|-------------|--------------------------------------------------------------------|
//! |    1 | CONNECT     | 10 `src_id` u64, 18 `max_message` u32, 22 `window` u32, 26 `cookie_len` u8, 27 cookie, zero padding to at least [`MIN_CONNECT_LEN`] (64) |
//! |    2 | CONNECT-ACK | 10 `kind` u8, 11 `src_id` u64, 19 `max_message` u32, 23 `window` u32, 27 `cookie_len` u8, 28 cookie |
//! |    3 | DATA        | 10 `packet_number` u64, 18 `message_number` u64, 26 `message_len` u32, 30 `offset` u32, 34 the fragment |
//! |    4 | DATA-ACK    | 10 `delivered` u64, 18 `largest` u64, 26 `ack_delay` u32, 30 `window` u32, 34 `range_count` u8, 35 ranges |
//! |    5 | REPEAT      | 10 `range_count` u8, 11 ranges                                     |
//! |    6 | PING        | 10 `ping_id` u64                                                   |
//! |    7 | PING-ACK    | 10 `ping_id` u64                                                   |
//! |    8 | CLOSE       | 10 `code` u16, 12 `reason_len` u16, 14 reason (UTF-8)              |
//! |    9 | DIRECT      | 10 the payload                                                     |
//!
//! A range is 12 bytes: `start` (u64) and `len` (u32), covering `start..=start + len - 1`.
//!
//! [`Datagram::parse`] checks every field once and returns a [`Datagram`]: the header's
//! `dst_id` and a [`Packet`] that borrows the input (no allocation: ranges stay in their
//! wire bytes and are walked by an iterator). [`Datagram::emit`] writes a datagram into a
//! `Vec<u8>` the caller owns and reuses. Like [`wire::utp`](super::utp) and
//! [`wire::tftp`](super::tftp), emitting **clears** the buffer first and then writes
//! exactly one datagram.
//!
//! # What the parser accepts
//!
//! The codec enforces every rule of the specification that can be checked on one packet
//! alone; whether a valid packet makes sense to a connection (an unknown `dst_id`, a bad
//! cookie, a message over `max_message`) is the engine's business. The checks, in order:
//!
//! - **Version**: the first byte must be [`VERSION`], else [`ParseError::Version`]. It is
//!   checked before anything else, so a datagram of another version is reported as such
//!   whatever its length.
//! - **Type**: the second byte must be 1 to 9, else [`ParseError::UnknownType`].
//! - **Lengths are exact**: a datagram that ends inside a field is
//!   [`ParseError::TooShort`]; bytes after the packet are [`ParseError::TrailingBytes`].
//!   DATA and DIRECT end where the datagram ends, so they never have trailing bytes.
//! - **Connection ids**: CONNECT's `dst_id` must be 0 ([`ParseError::ConnectDstId`]); every
//!   other packet's must not ([`ParseError::ZeroDstId`]): ids are never 0. CONNECT's
//!   `src_id` and an accepting CONNECT-ACK's must not be 0 ([`ParseError::ZeroSrcId`]).
//! - **CONNECT** must be at least [`MIN_CONNECT_LEN`] bytes ([`ParseError::TooShort`]),
//!   with a `cookie_len` of 0 or [`COOKIE_LEN`] ([`ParseError::CookieLen`]). The padding
//!   after the cookie may be **any bytes** and any length: it is ignored, so that a later
//!   version may use it. [`Datagram::emit`] always pads with zeros to exactly 64 bytes.
//! - **CONNECT-ACK**: `kind` 0 (challenge) or 1 (accepted), else
//!   [`ParseError::UnknownAckKind`]. A challenge has `src_id`, `max_message` and `window`
//!   all 0 ([`ParseError::ChallengeFields`]) and a 12-byte cookie; an acceptance has no
//!   cookie ([`ParseError::CookieLen`] otherwise).
//! - **DATA**: `offset + fragment length <= message_len`
//!   ([`ParseError::FragmentBeyondMessage`]), and the fragment is not empty unless
//!   `message_len` is 0 ([`ParseError::EmptyFragment`]).
//! - **Ranges** (DATA-ACK, REPEAT): at most [`MAX_RANGES`] ([`ParseError::TooManyRanges`]),
//!   each at least 1 long ([`ParseError::EmptyRange`]) and ending at most at `u64::MAX`
//!   ([`ParseError::RangeOverflow`]), from the highest down, neither overlapping nor
//!   adjacent ([`ParseError::RangeOrder`]). A REPEAT has at least one
//!   ([`ParseError::NoRanges`]); in a DATA-ACK with ranges the first ends at `largest`
//!   ([`ParseError::LargestMismatch`]).
//! - **CLOSE**: `reason_len` at most [`MAX_REASON_LEN`] ([`ParseError::ReasonTooLong`])
//!   and the reason valid UTF-8 ([`ParseError::ReasonNotUtf8`]). Any code is accepted:
//!   4 and codes above 5 are [`CloseCode::Application`] with the code kept.
//!
//! Parsing never panics, never allocates and always terminates: one forward pass, plus at
//! most [`MAX_RANGES`] ranges to check.
//!
//! # Round trips
//!
//! For every datagram that [`Datagram::parse`] returns, [`Datagram::emit`] writes bytes
//! that parse back to an equal datagram. The wire form is canonical except for CONNECT:
//! its padding is written as zeros, up to exactly [`MIN_CONNECT_LEN`] bytes.
//!
//! # Emitting
//!
//! [`Datagram::try_emit`] returns an [`EmitError`] for a datagram the parser would reject
//! (a wrong `dst_id`, a zero `src_id`, a fragment beyond its message, a REPEAT without
//! ranges, and so on); [`Datagram::emit`] treats these as programming errors and panics.
//! [`Ranges`] built with [`Ranges::from_pairs`] are validated when they are built, with
//! the parser's rules.

use alloc::vec::Vec;
use core::fmt;
use core::hash::{Hash, Hasher};
use core::iter::FusedIterator;

use thiserror::Error;

/// The only rudp version, the first byte of every datagram.
pub const VERSION: u8 = 1;

/// Length of the common header: version, type and `dst_id`.
pub const HEADER_LEN: usize = 10;

/// Shortest CONNECT, padding included; emitted CONNECTs are exactly this long.
pub const MIN_CONNECT_LEN: usize = 64;

/// Length of a listener's cookie.
pub const COOKIE_LEN: usize = 12;

/// Most ranges in a DATA-ACK or a REPEAT.
pub const MAX_RANGES: usize = 32;

/// Longest CLOSE reason, in bytes.
pub const MAX_REASON_LEN: usize = 512;

/// Length of a DATA packet before its fragment: a datagram of `n` bytes carries at most
/// `n - DATA_HEADER_LEN` bytes of fragment.
pub const DATA_HEADER_LEN: usize = 34;

/// Length of one range on the wire: `start` (u64) and `len` (u32).
pub const RANGE_LEN: usize = 12;

/// Length of a CONNECT-ACK before its cookie.
const CONNECT_ACK_LEN: usize = 28;

/// Length of a DATA-ACK before its ranges.
pub const DATA_ACK_LEN: usize = 35;

/// Length of a REPEAT before its ranges.
pub const REPEAT_LEN: usize = 11;

/// Length of a PING or PING-ACK.
const PING_LEN: usize = 18;

/// Length of a CLOSE before its reason.
pub const CLOSE_LEN: usize = 14;

/// CONNECT-ACK `kind` of a challenge.
const KIND_CHALLENGE: u8 = 0;

/// CONNECT-ACK `kind` of an acceptance.
const KIND_ACCEPTED: u8 = 1;

/// One datagram: the header's `dst_id` and the packet it carries.
///
/// The `version` and `type` bytes of the header are not stored: the version is always
/// [`VERSION`] and the type follows from the [`Packet`] variant
/// ([`Packet::packet_type`]).
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub struct Datagram<'a> {
    /// The receiver's connection id: 0 in a CONNECT, never 0 otherwise.
    pub dst_id: u64,
    /// The packet.
    pub packet: Packet<'a>,
}

impl<'a> Datagram<'a> {
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
    /// use utp_proto::wire::rudp::{Datagram, Packet};
    ///
    /// let bytes = [1, 6, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 42];
    /// let datagram = Datagram::parse(&bytes)?;
    /// assert_eq!(datagram.dst_id, 7);
    /// assert_eq!(datagram.packet, Packet::Ping { ping_id: 42 });
    ///
    /// let mut buf = Vec::new();
    /// datagram.emit(&mut buf);
    /// assert_eq!(buf, bytes);
    /// # Ok::<(), utp_proto::wire::rudp::ParseError>(())
    /// ```
    pub fn parse(data: &'a [u8]) -> Result<Self, ParseError> {
        let too_short = ParseError::TooShort { len: data.len() };
        match data.first() {
            None => return Err(too_short),
            Some(&VERSION) => {}
            Some(&version) => return Err(ParseError::Version(version)),
        }
        let packet_type = PacketType::try_from(*data.get(1).ok_or(too_short)?)?;
        let mut reader = Reader { data, rest: data.get(2..).ok_or(too_short)? };
        let dst_id = reader.u64()?;
        if packet_type == PacketType::Connect {
            if dst_id != 0 {
                return Err(ParseError::ConnectDstId(dst_id));
            }
            if data.len() < MIN_CONNECT_LEN {
                return Err(too_short);
            }
        } else if dst_id == 0 {
            return Err(ParseError::ZeroDstId);
        }
        let packet = match packet_type {
            PacketType::Connect => {
                let src_id = reader.src_id()?;
                let max_message = reader.u32()?;
                let window = reader.u32()?;
                let cookie = match reader.u8()? {
                    0 => None,
                    12 => Some(reader.cookie()?),
                    len => return Err(ParseError::CookieLen(len)),
                };
                // The padding may be any bytes: it is ignored.
                reader.rest = &[];
                Packet::Connect { src_id, max_message, window, cookie }
            }
            PacketType::ConnectAck => {
                let kind = reader.u8()?;
                if kind > KIND_ACCEPTED {
                    return Err(ParseError::UnknownAckKind(kind));
                }
                let src_id = reader.u64()?;
                let max_message = reader.u32()?;
                let window = reader.u32()?;
                let cookie_len = reader.u8()?;
                if kind == KIND_CHALLENGE {
                    if src_id != 0 || max_message != 0 || window != 0 {
                        return Err(ParseError::ChallengeFields);
                    }
                    if usize::from(cookie_len) != COOKIE_LEN {
                        return Err(ParseError::CookieLen(cookie_len));
                    }
                    Packet::ConnectAck(ConnectAck::Challenge { cookie: reader.cookie()? })
                } else {
                    if src_id == 0 {
                        return Err(ParseError::ZeroSrcId);
                    }
                    if cookie_len != 0 {
                        return Err(ParseError::CookieLen(cookie_len));
                    }
                    Packet::ConnectAck(ConnectAck::Accepted { src_id, max_message, window })
                }
            }
            PacketType::Data => {
                let packet_number = reader.u64()?;
                let message_number = reader.u64()?;
                let message_len = reader.u32()?;
                let offset = reader.u32()?;
                let fragment = core::mem::take(&mut reader.rest);
                check_fragment(message_len, offset, fragment.len())?;
                Packet::Data { packet_number, message_number, message_len, offset, fragment }
            }
            PacketType::DataAck => {
                let delivered = reader.u64()?;
                let largest = reader.u64()?;
                let ack_delay = reader.u32()?;
                let window = reader.u32()?;
                let ranges = reader.ranges()?;
                check_largest(largest, &ranges).map_err(|_| ParseError::LargestMismatch)?;
                Packet::DataAck { delivered, largest, ack_delay, window, ranges }
            }
            PacketType::Repeat => {
                let ranges = reader.ranges()?;
                if ranges.is_empty() {
                    return Err(ParseError::NoRanges);
                }
                Packet::Repeat { ranges }
            }
            PacketType::Ping => Packet::Ping { ping_id: reader.u64()? },
            PacketType::PingAck => Packet::PingAck { ping_id: reader.u64()? },
            PacketType::Close => {
                let code = CloseCode::from(reader.u16()?);
                let reason_len = reader.u16()?;
                if usize::from(reason_len) > MAX_REASON_LEN {
                    return Err(ParseError::ReasonTooLong(reason_len));
                }
                let reason = reader.bytes(usize::from(reason_len))?;
                let reason = core::str::from_utf8(reason).map_err(|_| ParseError::ReasonNotUtf8)?;
                Packet::Close { code, reason }
            }
            PacketType::Direct => Packet::Direct { payload: core::mem::take(&mut reader.rest) },
        };
        if !reader.rest.is_empty() {
            return Err(ParseError::TrailingBytes { extra: reader.rest.len() });
        }
        Ok(Self { dst_id, packet })
    }

    /// Number of bytes [`emit`](Self::emit) writes for this datagram.
    pub fn emitted_len(&self) -> usize {
        self.packet.emitted_len()
    }

    /// Clears `buf` and writes this datagram into it.
    ///
    /// # Panics
    ///
    /// If [`try_emit`](Self::try_emit) would return an error: the datagram is one the
    /// parser would reject, which is a bug in the caller.
    pub fn emit(&self, buf: &mut Vec<u8>) {
        if let Err(error) = self.try_emit(buf) {
            panic!("cannot emit a rudp datagram: {error}");
        }
    }

    /// Clears `buf` and writes this datagram into it, or reports why it cannot be emitted.
    ///
    /// On error `buf` is left empty.
    ///
    /// # Errors
    ///
    /// An [`EmitError`] if the parser would reject the datagram: see its variants.
    pub fn try_emit(&self, buf: &mut Vec<u8>) -> Result<(), EmitError> {
        buf.clear();
        self.check()?;
        let len = self.emitted_len();
        buf.reserve(len);
        buf.push(VERSION);
        buf.push(self.packet.packet_type().into());
        buf.extend_from_slice(&self.dst_id.to_be_bytes());
        match &self.packet {
            Packet::Connect { src_id, max_message, window, cookie } => {
                buf.extend_from_slice(&src_id.to_be_bytes());
                buf.extend_from_slice(&max_message.to_be_bytes());
                buf.extend_from_slice(&window.to_be_bytes());
                match cookie {
                    Some(cookie) => {
                        buf.push(COOKIE_LEN as u8);
                        buf.extend_from_slice(&cookie[..]);
                    }
                    None => buf.push(0),
                }
                buf.resize(MIN_CONNECT_LEN, 0);
            }
            Packet::ConnectAck(ConnectAck::Challenge { cookie }) => {
                buf.push(KIND_CHALLENGE);
                buf.extend_from_slice(&[0; 16]);
                buf.push(COOKIE_LEN as u8);
                buf.extend_from_slice(&cookie[..]);
            }
            Packet::ConnectAck(ConnectAck::Accepted { src_id, max_message, window }) => {
                buf.push(KIND_ACCEPTED);
                buf.extend_from_slice(&src_id.to_be_bytes());
                buf.extend_from_slice(&max_message.to_be_bytes());
                buf.extend_from_slice(&window.to_be_bytes());
                buf.push(0);
            }
            Packet::Data { packet_number, message_number, message_len, offset, fragment } => {
                buf.extend_from_slice(&packet_number.to_be_bytes());
                buf.extend_from_slice(&message_number.to_be_bytes());
                buf.extend_from_slice(&message_len.to_be_bytes());
                buf.extend_from_slice(&offset.to_be_bytes());
                buf.extend_from_slice(fragment);
            }
            Packet::DataAck { delivered, largest, ack_delay, window, ranges } => {
                buf.extend_from_slice(&delivered.to_be_bytes());
                buf.extend_from_slice(&largest.to_be_bytes());
                buf.extend_from_slice(&ack_delay.to_be_bytes());
                buf.extend_from_slice(&window.to_be_bytes());
                ranges.write(buf);
            }
            Packet::Repeat { ranges } => ranges.write(buf),
            Packet::Ping { ping_id } | Packet::PingAck { ping_id } => {
                buf.extend_from_slice(&ping_id.to_be_bytes());
            }
            Packet::Close { code, reason } => {
                buf.extend_from_slice(&u16::from(*code).to_be_bytes());
                // Checked above: at most MAX_REASON_LEN bytes.
                buf.extend_from_slice(&(reason.len() as u16).to_be_bytes());
                buf.extend_from_slice(reason.as_bytes());
            }
            Packet::Direct { payload } => buf.extend_from_slice(payload),
        }
        debug_assert_eq!(buf.len(), len);
        Ok(())
    }

    /// Checks the rules the parser enforces that a caller-built datagram may break.
    fn check(&self) -> Result<(), EmitError> {
        match self.packet {
            Packet::Connect { .. } if self.dst_id != 0 => {
                return Err(EmitError::ConnectDstId(self.dst_id));
            }
            Packet::Connect { .. } => {}
            _ if self.dst_id == 0 => return Err(EmitError::ZeroDstId),
            _ => {}
        }
        match self.packet {
            Packet::Connect { src_id: 0, .. }
            | Packet::ConnectAck(ConnectAck::Accepted { src_id: 0, .. }) => {
                Err(EmitError::ZeroSrcId)
            }
            Packet::Data { message_len, offset, fragment, .. } => {
                check_fragment(message_len, offset, fragment.len()).map_err(|error| match error {
                    ParseError::EmptyFragment => EmitError::EmptyFragment,
                    _ => EmitError::FragmentBeyondMessage,
                })
            }
            Packet::DataAck { largest, ranges, .. } => check_largest(largest, &ranges),
            Packet::Repeat { ranges } if ranges.is_empty() => Err(EmitError::NoRanges),
            Packet::Close { code: CloseCode::Application(code), .. }
                if code < CloseCode::APPLICATION || code == 5 =>
            {
                Err(EmitError::CloseCode(code))
            }
            Packet::Close { reason, .. } if reason.len() > MAX_REASON_LEN => {
                Err(EmitError::ReasonTooLong { len: reason.len() })
            }
            _ => Ok(()),
        }
    }
}

/// A rudp packet that borrows the datagram it was parsed from: the body after the common
/// header. The header's `dst_id` is in the [`Datagram`] that holds it.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum Packet<'a> {
    /// CONNECT (1): a starter opens a connection. Sent with `dst_id` 0.
    Connect {
        /// The starter's receive id: never 0.
        src_id: u64,
        /// The largest message the starter accepts, in bytes.
        max_message: u32,
        /// The starter's initial receive window, in bytes.
        window: u32,
        /// The listener's cookie, echoed from a challenge; `None` in a first CONNECT.
        cookie: Option<&'a [u8; COOKIE_LEN]>,
    },
    /// CONNECT-ACK (2): a listener's answer to a CONNECT. Sent with the starter's `src_id`
    /// as `dst_id`.
    ConnectAck(ConnectAck<'a>),
    /// DATA (3): one fragment of a message.
    Data {
        /// The packet number: one per transmission, never reused.
        packet_number: u64,
        /// The message number: one per message.
        message_number: u64,
        /// The whole message's length, in bytes.
        message_len: u32,
        /// Where the fragment starts in the message.
        offset: u32,
        /// The fragment: `offset + fragment.len() <= message_len`, and not empty unless
        /// `message_len` is 0.
        fragment: &'a [u8],
    },
    /// DATA-ACK (4): which DATA packets were received, and which messages delivered.
    DataAck {
        /// Every message numbered below this has been delivered.
        delivered: u64,
        /// The largest packet number received.
        largest: u64,
        /// Microseconds between receiving `largest` and sending this.
        ack_delay: u32,
        /// The receive window: bytes the sender may have in flight beyond `delivered`.
        window: u32,
        /// The received packet numbers, from the highest down; if any, the first range
        /// ends at `largest`.
        ranges: Ranges<'a>,
    },
    /// REPEAT (5): a request to repeat the named packets, which are missing.
    Repeat {
        /// The missing packet numbers: at least one range.
        ranges: Ranges<'a>,
    },
    /// PING (6): asks the peer to answer with a PING-ACK.
    Ping {
        /// Chosen by the pinger, echoed in the PING-ACK.
        ping_id: u64,
    },
    /// PING-ACK (7): the answer to a PING.
    PingAck {
        /// The `ping_id` of the PING answered.
        ping_id: u64,
    },
    /// CLOSE (8): the connection ends at once.
    Close {
        /// Why.
        code: CloseCode,
        /// Text for people, at most [`MAX_REASON_LEN`] bytes.
        reason: &'a str,
    },
    /// DIRECT (9): an unreliable datagram for the application.
    Direct {
        /// The payload, possibly empty.
        payload: &'a [u8],
    },
}

impl Packet<'_> {
    /// The packet's type.
    pub const fn packet_type(&self) -> PacketType {
        match self {
            Self::Connect { .. } => PacketType::Connect,
            Self::ConnectAck(_) => PacketType::ConnectAck,
            Self::Data { .. } => PacketType::Data,
            Self::DataAck { .. } => PacketType::DataAck,
            Self::Repeat { .. } => PacketType::Repeat,
            Self::Ping { .. } => PacketType::Ping,
            Self::PingAck { .. } => PacketType::PingAck,
            Self::Close { .. } => PacketType::Close,
            Self::Direct { .. } => PacketType::Direct,
        }
    }

    /// Number of bytes this packet takes on the wire, header included.
    pub fn emitted_len(&self) -> usize {
        match self {
            Self::Connect { .. } => MIN_CONNECT_LEN,
            Self::ConnectAck(ConnectAck::Challenge { .. }) => CONNECT_ACK_LEN + COOKIE_LEN,
            Self::ConnectAck(ConnectAck::Accepted { .. }) => CONNECT_ACK_LEN,
            Self::Data { fragment, .. } => DATA_HEADER_LEN + fragment.len(),
            Self::DataAck { ranges, .. } => DATA_ACK_LEN + RANGE_LEN * ranges.len(),
            Self::Repeat { ranges } => REPEAT_LEN + RANGE_LEN * ranges.len(),
            Self::Ping { .. } | Self::PingAck { .. } => PING_LEN,
            Self::Close { reason, .. } => CLOSE_LEN + reason.len(),
            Self::Direct { payload } => HEADER_LEN + payload.len(),
        }
    }
}

/// The body of a CONNECT-ACK.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum ConnectAck<'a> {
    /// `kind` 0: the starter must send its CONNECT again with this cookie. On the wire
    /// `src_id`, `max_message` and `window` are 0.
    Challenge {
        /// The listener's cookie, to be echoed.
        cookie: &'a [u8; COOKIE_LEN],
    },
    /// `kind` 1: the connection is accepted. On the wire `cookie_len` is 0.
    Accepted {
        /// The listener's receive id: never 0.
        src_id: u64,
        /// The largest message the listener accepts, in bytes.
        max_message: u32,
        /// The listener's initial receive window, in bytes.
        window: u32,
    },
}

/// The type of a packet: the second byte of every datagram.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
#[repr(u8)]
pub enum PacketType {
    /// CONNECT (1).
    Connect = 1,
    /// CONNECT-ACK (2).
    ConnectAck = 2,
    /// DATA (3).
    Data = 3,
    /// DATA-ACK (4).
    DataAck = 4,
    /// REPEAT (5), a request to repeat.
    Repeat = 5,
    /// PING (6).
    Ping = 6,
    /// PING-ACK (7).
    PingAck = 7,
    /// CLOSE (8).
    Close = 8,
    /// DIRECT (9).
    Direct = 9,
}

impl TryFrom<u8> for PacketType {
    type Error = ParseError;

    fn try_from(byte: u8) -> Result<Self, ParseError> {
        Ok(match byte {
            1 => Self::Connect,
            2 => Self::ConnectAck,
            3 => Self::Data,
            4 => Self::DataAck,
            5 => Self::Repeat,
            6 => Self::Ping,
            7 => Self::PingAck,
            8 => Self::Close,
            9 => Self::Direct,
            other => return Err(ParseError::UnknownType(other)),
        })
    }
}

impl From<PacketType> for u8 {
    fn from(packet_type: PacketType) -> Self {
        packet_type as u8
    }
}

/// The code of a CLOSE.
///
/// Codes 0 to 3 and 5 have their own variant; 4 and every code above 5 (which the
/// specification treats as 4) are [`CloseCode::Application`], which keeps the code as it
/// was on the wire.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum CloseCode {
    /// 0: a normal close.
    Normal,
    /// 1: the peer answered no ping.
    PingTimeout,
    /// 2: the peer broke a rule of the protocol.
    ProtocolViolation,
    /// 3: the peer exceeded a limit.
    LimitExceeded,
    /// 5: the sender has no connection with this id (it restarted, or forgot the
    /// connection after closing it). Sent without state, in answer to a packet for an
    /// unknown connection, with the unknown id as `dst_id`.
    UnknownConnection,
    /// 4 or any code above 5: an application error. Parsing never produces a code below
    /// 4, or 5, here, and [`Datagram::try_emit`] refuses one ([`EmitError::CloseCode`]).
    Application(u16),
}

impl CloseCode {
    /// The code of an application error as the specification defines it.
    pub const APPLICATION: u16 = 4;
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        match code {
            0 => Self::Normal,
            1 => Self::PingTimeout,
            2 => Self::ProtocolViolation,
            3 => Self::LimitExceeded,
            5 => Self::UnknownConnection,
            other => Self::Application(other),
        }
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> Self {
        match code {
            CloseCode::Normal => 0,
            CloseCode::PingTimeout => 1,
            CloseCode::ProtocolViolation => 2,
            CloseCode::LimitExceeded => 3,
            CloseCode::UnknownConnection => 5,
            CloseCode::Application(code) => code,
        }
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Self::Normal => "normal close",
            Self::PingTimeout => "ping timeout",
            Self::ProtocolViolation => "protocol violation",
            Self::LimitExceeded => "limit exceeded",
            Self::UnknownConnection => "unknown connection",
            Self::Application(_) => "application error",
        };
        write!(f, "{} ({text})", u16::from(*self))
    }
}

/// The ranges of packet numbers in a DATA-ACK or a REPEAT, validated once.
///
/// Either borrowed from a parsed packet (their wire bytes) or built with
/// [`Ranges::from_pairs`]; both hold the same guarantees: at most [`MAX_RANGES`] ranges,
/// each `(start, len)` with `len >= 1` and `start + len - 1 <= u64::MAX`, from the highest
/// down, neither overlapping nor adjacent. Equality compares the ranges in order,
/// whichever way they were made.
#[derive(Clone, Copy)]
pub struct Ranges<'a>(RangesRepr<'a>);

#[derive(Clone, Copy, Debug)]
enum RangesRepr<'a> {
    /// 12-byte ranges as on the wire, without the count.
    Wire(&'a [u8]),
    /// Ranges built by the caller.
    Pairs(&'a [(u64, u32)]),
}

impl<'a> Ranges<'a> {
    /// No ranges.
    pub const EMPTY: Ranges<'static> = Ranges(RangesRepr::Pairs(&[]));

    /// Ranges from `(start, len)` pairs, highest first, in the order they will be emitted.
    ///
    /// # Errors
    ///
    /// The [`ParseError`] the parser would return for these ranges on the wire:
    /// [`ParseError::TooManyRanges`], [`ParseError::EmptyRange`],
    /// [`ParseError::RangeOverflow`] or [`ParseError::RangeOrder`].
    ///
    /// # Examples
    ///
    /// ```
    /// use utp_proto::wire::rudp::{ParseError, Ranges};
    ///
    /// let ranges = Ranges::from_pairs(&[(10, 3), (4, 2)])?;
    /// assert_eq!(ranges.iter().collect::<Vec<_>>(), [(10, 3), (4, 2)]);
    /// // 5 is followed by 6: adjacent ranges must be written as one.
    /// assert_eq!(Ranges::from_pairs(&[(6, 1), (4, 2)]), Err(ParseError::RangeOrder));
    /// # Ok::<(), ParseError>(())
    /// ```
    pub fn from_pairs(pairs: &'a [(u64, u32)]) -> Result<Self, ParseError> {
        check_ranges(pairs.iter().copied(), pairs.len())?;
        Ok(Self(RangesRepr::Pairs(pairs)))
    }

    /// Validates `count` wire ranges at the start of `data`; returns them and the rest.
    fn parse(count: u8, data: &'a [u8]) -> Result<(Self, &'a [u8]), ParseError> {
        let count = usize::from(count);
        if count > MAX_RANGES {
            return Err(ParseError::TooManyRanges(count));
        }
        let Some((wire, rest)) = data.split_at_checked(count * RANGE_LEN) else {
            return Err(ParseError::TooShort { len: 0 });
        };
        let ranges = Self(RangesRepr::Wire(wire));
        check_ranges(ranges.iter(), count)?;
        Ok((ranges, rest))
    }

    /// The `(start, len)` ranges, highest first.
    pub fn iter(&self) -> RangesIter<'a> {
        RangesIter(self.0)
    }

    /// Number of ranges.
    pub fn len(&self) -> usize {
        match self.0 {
            RangesRepr::Wire(bytes) => bytes.len() / RANGE_LEN,
            RangesRepr::Pairs(pairs) => pairs.len(),
        }
    }

    /// Whether there are no ranges.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `number` is in one of the ranges.
    pub fn contains(&self, number: u64) -> bool {
        self.iter().any(|(start, len)| number >= start && number - start < u64::from(len))
    }

    /// Appends the count and the ranges' wire form to `buf`.
    fn write(&self, buf: &mut Vec<u8>) {
        // At most MAX_RANGES, checked when the ranges were made.
        buf.push(self.len() as u8);
        match self.0 {
            RangesRepr::Wire(bytes) => buf.extend_from_slice(bytes),
            RangesRepr::Pairs(pairs) => {
                for (start, len) in pairs {
                    buf.extend_from_slice(&start.to_be_bytes());
                    buf.extend_from_slice(&len.to_be_bytes());
                }
            }
        }
    }
}

impl Default for Ranges<'_> {
    fn default() -> Self {
        Ranges::EMPTY
    }
}

impl PartialEq for Ranges<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Ranges<'_> {}

impl Hash for Ranges<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for range in self.iter() {
            range.hash(state);
        }
    }
}

impl fmt::Debug for Ranges<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for &Ranges<'a> {
    type Item = (u64, u32);
    type IntoIter = RangesIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over [`Ranges`]: `(start, len)` pairs, highest first.
#[derive(Clone, Debug)]
pub struct RangesIter<'a>(RangesRepr<'a>);

impl Iterator for RangesIter<'_> {
    type Item = (u64, u32);

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            RangesRepr::Wire(bytes) => {
                let (start, rest) = bytes.split_first_chunk::<8>()?;
                let (len, rest) = rest.split_first_chunk::<4>()?;
                *bytes = rest;
                Some((u64::from_be_bytes(*start), u32::from_be_bytes(*len)))
            }
            RangesRepr::Pairs(pairs) => {
                let (&range, rest) = pairs.split_first()?;
                *pairs = rest;
                Some(range)
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let len = match self.0 {
            RangesRepr::Wire(bytes) => bytes.len() / RANGE_LEN,
            RangesRepr::Pairs(pairs) => pairs.len(),
        };
        (len, Some(len))
    }
}

impl ExactSizeIterator for RangesIter<'_> {}

impl FusedIterator for RangesIter<'_> {}

/// Why a datagram is not a valid rudp packet.
#[derive(Clone, Copy, Debug, Eq, Error, Hash, PartialEq)]
#[non_exhaustive]
pub enum ParseError {
    /// The datagram ends inside the header or a field, or is a CONNECT shorter than
    /// [`MIN_CONNECT_LEN`].
    #[error("{len}-byte rudp datagram is truncated")]
    TooShort {
        /// The datagram's length.
        len: usize,
    },
    /// The version is not [`VERSION`].
    #[error("rudp version {0} is not supported: the version is 1")]
    Version(u8),
    /// The type is not 1 to 9.
    #[error("unknown rudp packet type {0}: types are 1 (CONNECT) to 9 (DIRECT)")]
    UnknownType(u8),
    /// Bytes follow the packet.
    #[error("{extra} bytes follow the rudp packet")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
    /// A CONNECT's `dst_id` is not 0.
    #[error("rudp CONNECT has dst_id {0} instead of 0")]
    ConnectDstId(u64),
    /// A packet other than CONNECT has `dst_id` 0.
    #[error("rudp packet has dst_id 0, which only CONNECT may have")]
    ZeroDstId,
    /// A CONNECT or an accepting CONNECT-ACK has `src_id` 0.
    #[error("rudp handshake packet has src_id 0")]
    ZeroSrcId,
    /// A `cookie_len` is not 0 or 12 (CONNECT), not 12 (challenge) or not 0 (acceptance).
    #[error("rudp cookie length {0} is not allowed here")]
    CookieLen(u8),
    /// A CONNECT-ACK's `kind` is not 0 or 1.
    #[error("unknown rudp CONNECT-ACK kind {0}: kinds are 0 (challenge) and 1 (accepted)")]
    UnknownAckKind(u8),
    /// A challenge has a non-zero `src_id`, `max_message` or `window`.
    #[error("rudp challenge has a non-zero src_id, max_message or window")]
    ChallengeFields,
    /// A DATA fragment ends beyond its message: `offset + fragment length > message_len`.
    #[error("rudp DATA fragment ends beyond its message")]
    FragmentBeyondMessage,
    /// A DATA fragment is empty although its message is not.
    #[error("rudp DATA fragment is empty although its message is not")]
    EmptyFragment,
    /// More than [`MAX_RANGES`] ranges.
    #[error("{0} rudp ranges, more than 32")]
    TooManyRanges(usize),
    /// A REPEAT has no range.
    #[error("rudp REPEAT has no range")]
    NoRanges,
    /// A range has `len` 0.
    #[error("rudp range is empty")]
    EmptyRange,
    /// A range ends beyond `u64::MAX`.
    #[error("rudp range ends beyond the largest packet number")]
    RangeOverflow,
    /// A range is not below the one before it, or overlaps or touches it.
    #[error("rudp ranges are not descending, disjoint and separated")]
    RangeOrder,
    /// A DATA-ACK's first range does not end at `largest`.
    #[error("rudp DATA-ACK's first range does not end at largest")]
    LargestMismatch,
    /// A CLOSE's `reason_len` is above [`MAX_REASON_LEN`].
    #[error("rudp CLOSE reason of {0} bytes is longer than 512")]
    ReasonTooLong(u16),
    /// A CLOSE's reason is not UTF-8.
    #[error("rudp CLOSE reason is not UTF-8")]
    ReasonNotUtf8,
}

/// Why [`Datagram::try_emit`] cannot write a datagram.
#[derive(Clone, Copy, Debug, Eq, Error, Hash, PartialEq)]
#[non_exhaustive]
pub enum EmitError {
    /// A CONNECT with a `dst_id` other than 0.
    #[error("cannot emit a rudp CONNECT with dst_id {0}: it must be 0")]
    ConnectDstId(u64),
    /// A packet other than CONNECT with `dst_id` 0.
    #[error("cannot emit a rudp packet other than CONNECT with dst_id 0")]
    ZeroDstId,
    /// A CONNECT or an accepting CONNECT-ACK with `src_id` 0.
    #[error("cannot emit a rudp handshake packet with src_id 0")]
    ZeroSrcId,
    /// DATA whose fragment ends beyond its message (or beyond 4 GiB).
    #[error("cannot emit a rudp DATA fragment that ends beyond its message")]
    FragmentBeyondMessage,
    /// DATA with an empty fragment of a non-empty message.
    #[error("cannot emit an empty rudp DATA fragment of a non-empty message")]
    EmptyFragment,
    /// A DATA-ACK whose first range does not end at `largest`.
    #[error("cannot emit a rudp DATA-ACK whose first range does not end at largest")]
    LargestMismatch,
    /// A REPEAT without ranges.
    #[error("cannot emit a rudp REPEAT without ranges")]
    NoRanges,
    /// A [`CloseCode::Application`] with a code below 4 or 5, which would parse as
    /// another variant.
    #[error("cannot emit rudp close code {0} as an application error: use its own variant")]
    CloseCode(u16),
    /// A CLOSE reason longer than [`MAX_REASON_LEN`].
    #[error("cannot emit a rudp CLOSE reason of {len} bytes: at most 512")]
    ReasonTooLong {
        /// The reason's length.
        len: usize,
    },
}

/// Reads big-endian fields off the front of a datagram.
struct Reader<'a> {
    /// The whole datagram, for error reports.
    data: &'a [u8],
    /// What is left to read.
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn too_short(&self) -> ParseError {
        ParseError::TooShort { len: self.data.len() }
    }

    fn array<const N: usize>(&mut self) -> Result<&'a [u8; N], ParseError> {
        let (array, rest) = self.rest.split_first_chunk::<N>().ok_or(self.too_short())?;
        self.rest = rest;
        Ok(array)
    }

    fn bytes(&mut self, len: usize) -> Result<&'a [u8], ParseError> {
        let (bytes, rest) = self.rest.split_at_checked(len).ok_or(self.too_short())?;
        self.rest = rest;
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, ParseError> {
        self.array::<1>().map(|&[byte]| byte)
    }

    fn u16(&mut self) -> Result<u16, ParseError> {
        self.array().map(|bytes| u16::from_be_bytes(*bytes))
    }

    fn u32(&mut self) -> Result<u32, ParseError> {
        self.array().map(|bytes| u32::from_be_bytes(*bytes))
    }

    fn u64(&mut self) -> Result<u64, ParseError> {
        self.array().map(|bytes| u64::from_be_bytes(*bytes))
    }

    fn src_id(&mut self) -> Result<u64, ParseError> {
        match self.u64()? {
            0 => Err(ParseError::ZeroSrcId),
            src_id => Ok(src_id),
        }
    }

    fn cookie(&mut self) -> Result<&'a [u8; COOKIE_LEN], ParseError> {
        self.array()
    }

    fn ranges(&mut self) -> Result<Ranges<'a>, ParseError> {
        let count = self.u8()?;
        let (ranges, rest) = Ranges::parse(count, self.rest).map_err(|error| match error {
            ParseError::TooShort { .. } => self.too_short(),
            other => other,
        })?;
        self.rest = rest;
        Ok(ranges)
    }
}

/// Checks a DATA fragment of `fragment_len` bytes at `offset` of a `message_len` message.
fn check_fragment(message_len: u32, offset: u32, fragment_len: usize) -> Result<(), ParseError> {
    let end = u64::from(offset).checked_add(fragment_len as u64);
    if end.is_none_or(|end| end > u64::from(message_len)) {
        return Err(ParseError::FragmentBeyondMessage);
    }
    if fragment_len == 0 && message_len != 0 {
        return Err(ParseError::EmptyFragment);
    }
    Ok(())
}

/// Checks that the first range, if any, ends at `largest`.
fn check_largest(largest: u64, ranges: &Ranges<'_>) -> Result<(), EmitError> {
    match ranges.iter().next() {
        Some((start, len)) if u128::from(start) + u128::from(len) - 1 != u128::from(largest) => {
            Err(EmitError::LargestMismatch)
        }
        _ => Ok(()),
    }
}

/// Checks `count` ranges: how many, each one, and their order.
fn check_ranges(ranges: impl Iterator<Item = (u64, u32)>, count: usize) -> Result<(), ParseError> {
    if count > MAX_RANGES {
        return Err(ParseError::TooManyRanges(count));
    }
    // The start of the previous (higher) range.
    let mut above: Option<u64> = None;
    for (start, len) in ranges {
        if len == 0 {
            return Err(ParseError::EmptyRange);
        }
        // One past the range's last number.
        let end = u128::from(start) + u128::from(len);
        if end - 1 > u128::from(u64::MAX) {
            return Err(ParseError::RangeOverflow);
        }
        // Strictly below the previous range with at least one number between them.
        if above.is_some_and(|above| end >= u128::from(above)) {
            return Err(ParseError::RangeOrder);
        }
        above = Some(start);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;

    fn roundtrip(datagram: Datagram<'_>) -> Vec<u8> {
        let mut buf = vec![0xaa; 3];
        datagram.emit(&mut buf);
        assert_eq!(buf.len(), datagram.emitted_len());
        assert_eq!(Datagram::parse(&buf), Ok(datagram));
        buf
    }

    #[test]
    fn header_checks_come_first() {
        assert_eq!(Datagram::parse(&[]), Err(ParseError::TooShort { len: 0 }));
        assert_eq!(Datagram::parse(&[2]), Err(ParseError::Version(2)));
        assert_eq!(Datagram::parse(&[0, 6, 0]), Err(ParseError::Version(0)));
        assert_eq!(Datagram::parse(&[1]), Err(ParseError::TooShort { len: 1 }));
        assert_eq!(Datagram::parse(&[1, 0]), Err(ParseError::UnknownType(0)));
        assert_eq!(Datagram::parse(&[1, 10, 0, 0]), Err(ParseError::UnknownType(10)));
        assert_eq!(Datagram::parse(&[1, 6, 0, 0]), Err(ParseError::TooShort { len: 4 }));
    }

    #[test]
    fn connect_padding_is_ignored_and_emitted_as_zeros() {
        let mut bytes = vec![0u8; 70];
        bytes[..2].copy_from_slice(&[1, 1]);
        bytes[17] = 5; // src_id
        bytes[69] = 0xff;
        let datagram = Datagram::parse(&bytes).unwrap();
        assert_eq!(
            datagram.packet,
            Packet::Connect { src_id: 5, max_message: 0, window: 0, cookie: None }
        );
        let emitted = roundtrip(datagram);
        assert_eq!(emitted.len(), MIN_CONNECT_LEN);
        assert_eq!(emitted[..], bytes[..MIN_CONNECT_LEN]);
        assert_eq!(Datagram::parse(&bytes[..63]), Err(ParseError::TooShort { len: 63 }));
    }

    #[test]
    fn ranges_rules() {
        assert_eq!(Ranges::from_pairs(&[(5, 0)]), Err(ParseError::EmptyRange));
        assert_eq!(Ranges::from_pairs(&[(u64::MAX, 2)]), Err(ParseError::RangeOverflow));
        assert!(Ranges::from_pairs(&[(u64::MAX, 1)]).is_ok());
        assert_eq!(Ranges::from_pairs(&[(1, 1), (5, 1)]), Err(ParseError::RangeOrder));
        assert_eq!(Ranges::from_pairs(&[(5, 1), (5, 1)]), Err(ParseError::RangeOrder));
        assert_eq!(Ranges::from_pairs(&[(5, 1), (3, 3)]), Err(ParseError::RangeOrder));
        assert_eq!(Ranges::from_pairs(&[(5, 1), (3, 2)]), Err(ParseError::RangeOrder));
        assert!(Ranges::from_pairs(&[(5, 1), (3, 1)]).is_ok());
        let many: Vec<(u64, u32)> = (0..33).rev().map(|i| (i * 2, 1)).collect();
        assert_eq!(Ranges::from_pairs(&many), Err(ParseError::TooManyRanges(33)));
        assert!(Ranges::from_pairs(&many[1..]).is_ok());
        let ranges = Ranges::from_pairs(&[(10, 3), (4, 2)]).unwrap();
        assert!(ranges.contains(12) && ranges.contains(4) && !ranges.contains(6));
        assert!(!ranges.contains(13) && !ranges.contains(3));
    }

    #[test]
    fn data_ack_round_trip_and_largest() {
        let pairs = [(10, 3), (4, 2)];
        let ranges = Ranges::from_pairs(&pairs).unwrap();
        let packet = Packet::DataAck { delivered: 1, largest: 12, ack_delay: 7, window: 9, ranges };
        let bytes = roundtrip(Datagram { dst_id: 3, packet });
        assert_eq!(bytes.len(), 35 + 24);
        let packet = Packet::DataAck { delivered: 1, largest: 13, ack_delay: 7, window: 9, ranges };
        let mut buf = Vec::new();
        assert_eq!(
            Datagram { dst_id: 3, packet }.try_emit(&mut buf),
            Err(EmitError::LargestMismatch)
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn close_codes() {
        for code in 0..=10u16 {
            assert_eq!(u16::from(CloseCode::from(code)), code);
        }
        assert_eq!(CloseCode::from(4), CloseCode::Application(4));
        assert_eq!(CloseCode::from(5), CloseCode::UnknownConnection);
        assert_eq!(CloseCode::from(6), CloseCode::Application(6));
        assert_eq!(CloseCode::from(77), CloseCode::Application(77));
        for code in [2, 5] {
            let packet = Packet::Close { code: CloseCode::Application(code), reason: "" };
            assert_eq!(
                Datagram { dst_id: 1, packet }.try_emit(&mut Vec::new()),
                Err(EmitError::CloseCode(code))
            );
        }
        roundtrip(Datagram {
            dst_id: 1,
            packet: Packet::Close { code: CloseCode::Application(77), reason: "bye" },
        });
    }

    #[test]
    fn emit_refuses_what_parse_refuses() {
        let mut buf = Vec::new();
        let ping = Packet::Ping { ping_id: 1 };
        assert_eq!(
            Datagram { dst_id: 0, packet: ping }.try_emit(&mut buf),
            Err(EmitError::ZeroDstId)
        );
        let connect = Packet::Connect { src_id: 1, max_message: 0, window: 0, cookie: None };
        assert_eq!(
            Datagram { dst_id: 2, packet: connect }.try_emit(&mut buf),
            Err(EmitError::ConnectDstId(2))
        );
        let connect = Packet::Connect { src_id: 0, max_message: 0, window: 0, cookie: None };
        assert_eq!(
            Datagram { dst_id: 0, packet: connect }.try_emit(&mut buf),
            Err(EmitError::ZeroSrcId)
        );
        let data = |message_len, offset, fragment| Datagram {
            dst_id: 1,
            packet: Packet::Data {
                packet_number: 0,
                message_number: 0,
                message_len,
                offset,
                fragment,
            },
        };
        assert_eq!(data(2, 1, b"ab").try_emit(&mut buf), Err(EmitError::FragmentBeyondMessage));
        assert_eq!(data(2, 0, b"").try_emit(&mut buf), Err(EmitError::EmptyFragment));
        assert_eq!(
            data(u32::MAX, u32::MAX, b"a").try_emit(&mut buf),
            Err(EmitError::FragmentBeyondMessage)
        );
        roundtrip(data(0, 0, b""));
        roundtrip(data(2, 1, b"b"));
        let repeat = Packet::Repeat { ranges: Ranges::EMPTY };
        assert_eq!(
            Datagram { dst_id: 1, packet: repeat }.try_emit(&mut buf),
            Err(EmitError::NoRanges)
        );
        let reason = "a".repeat(MAX_REASON_LEN + 1);
        let close = Packet::Close { code: CloseCode::Normal, reason: &reason };
        assert_eq!(
            Datagram { dst_id: 1, packet: close }.try_emit(&mut buf),
            Err(EmitError::ReasonTooLong { len: 513 })
        );
        assert!(buf.is_empty());
    }
}
