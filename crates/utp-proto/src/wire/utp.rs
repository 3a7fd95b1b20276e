//! The uTP packet format: BEP 29 version 1, as libutp and libtorrent put it on the wire.
//!
//! A packet is a fixed 20-byte [`Header`], a chain of extensions, and the payload. All
//! multi-byte fields are big-endian:
//!
//! | offset | size | field                                                   |
//! |-------:|-----:|---------------------------------------------------------|
//! |      0 |    1 | packet type (high nibble) and version (low nibble, `1`) |
//! |      1 |    1 | kind of the first extension, `0` for none               |
//! |      2 |    2 | `connection_id`                                         |
//! |      4 |    4 | `timestamp_us`                                          |
//! |      8 |    4 | `timestamp_difference_us`                               |
//! |     12 |    4 | `wnd_size`                                              |
//! |     16 |    2 | `seq_nr`                                                |
//! |     18 |    2 | `ack_nr`                                                |
//!
//! Each extension is `next kind (1 byte), body length (1 byte), body`. The chain starts
//! with the kind in the header and ends at the first entry whose "next kind" is `0`;
//! everything after it is payload.
//!
//! [`Packet::parse`] checks every length once and returns a view that borrows the input;
//! [`emit`] writes a packet into a `Vec<u8>` the caller owns and reuses.
//!
//! # What the parser accepts
//!
//! The rules follow what libutp and libtorrent do with the same bytes, leaning towards
//! accepting what a real peer might send, and never losing information:
//!
//! - **Length**: fewer than [`HEADER_LEN`] bytes is [`ParseError::TooShort`].
//! - **Version**: anything but [`VERSION`] (1) is [`ParseError::UnsupportedVersion`]. The
//!   version 0 header of early libutp had a different layout and nobody speaks it.
//! - **Type**: a type nibble above 4 is [`ParseError::UnknownType`].
//! - **Truncation**: an entry whose length byte or body runs past the end of the datagram
//!   is [`ParseError::TruncatedExtension`]; libutp and libtorrent drop such packets too.
//! - **Selective ACK** (kind 1): a body of any length is accepted, including 0 and lengths
//!   that are not a multiple of 4. BEP 29 asks for multiples of 4, but libutp reads
//!   whatever length it is given and libtorrent treats an empty one as "nothing acked".
//!   If a packet carries several, [`Packet::selective_ack`] returns the first one (libutp
//!   would use the last, libtorrent applies each; no implementation sends two), and
//!   [`Packet::extensions`] yields all of them.
//! - **Extension bits** (kind 2, a legacy libutp extension): an 8-byte body is
//!   [`Extension::ExtensionBits`]. libutp drops a packet whose kind-2 body is not 8 bytes
//!   long; we keep such a body as [`Extension::Unknown`] with kind 2 instead, which the
//!   connection ignores like any unknown extension.
//! - **Close reason** (kind 3, libtorrent): a 4-byte body of 2 reserved zero bytes and a
//!   big-endian `u16` reason is [`Extension::CloseReason`]. Any other length, or non-zero
//!   reserved bytes, is kept as [`Extension::Unknown`] with kind 3. libtorrent ignores
//!   other lengths too; it reads the reason whatever the reserved bytes hold, but keeping
//!   those bytes makes parsing lossless (below).
//! - **Other kinds** are [`Extension::Unknown`], skipped by their length as BEP 29 asks.
//! - The payload is whatever follows the chain, for every packet type; whether a `STATE`
//!   or `SYN` may carry one is the connection's business, not the codec's.
//!
//! Parsing never panics and always terminates: every extension consumes at least two
//! bytes, so a chain is at most `(len - 20) / 2` entries long.
//!
//! # Round trips
//!
//! Parsing is lossless, and the wire form is canonical:
//!
//! - For every `bytes` that [`Packet::parse`] accepts, [`emit`] of its header, its
//!   [`extensions`](Packet::extensions) and its payload reproduces `bytes` exactly.
//! - For every header, payload and list of extensions that the parser could have produced
//!   (see [`Extension::from_wire`]), parsing what [`emit`] wrote gives them back. Any other
//!   extension (an `Unknown` whose kind and body look like a known extension, or
//!   `ExtensionBits` that are not 8 bytes long) comes back as
//!   `Extension::from_wire(kind, body)`: same kind, same bytes on the wire.
//!
//! # Emitting
//!
//! An extension body travels with a one-byte length, so it can be at most 255 bytes, and
//! kind 0 means "end of chain", so it cannot be emitted. [`try_emit`] returns an
//! [`EmitError`] for either; [`emit`] treats them as programming errors and panics.

use alloc::vec::Vec;
use core::fmt;
use core::iter::FusedIterator;

use thiserror::Error;

/// Length of the fixed uTP header in bytes.
pub const HEADER_LEN: usize = 20;

/// The only uTP version in use, carried in the low nibble of the first byte.
pub const VERSION: u8 = 1;

/// Extension kind that ends the chain ("no further extension").
pub const EXTENSION_NONE: u8 = 0;

/// Extension kind of a selective acknowledgement ([`Extension::SelectiveAck`]).
pub const EXTENSION_SELECTIVE_ACK: u8 = 1;

/// Extension kind of libutp's legacy extension bits ([`Extension::ExtensionBits`]).
pub const EXTENSION_BITS: u8 = 2;

/// Extension kind of libtorrent's close reason ([`Extension::CloseReason`]).
pub const EXTENSION_CLOSE_REASON: u8 = 3;

/// Longest extension body the one-byte length field can describe.
pub const MAX_EXTENSION_LEN: usize = u8::MAX as usize;

/// Length of the body of an [`Extension::ExtensionBits`] that libutp accepts.
const EXTENSION_BITS_LEN: usize = 8;

/// Length of the body of an [`Extension::CloseReason`]: two reserved bytes and the reason.
const CLOSE_REASON_LEN: usize = 4;

/// A parsed uTP packet: a typed view that borrows the datagram it was parsed from.
///
/// Built by [`Packet::parse`], which validates the header and the whole extension chain,
/// so the accessors cannot fail.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub struct Packet<'a> {
    header: Header,
    first_extension: u8,
    /// The extension chain: from the end of the header to the start of the payload.
    extensions: &'a [u8],
    payload: &'a [u8],
}

impl<'a> Packet<'a> {
    /// Parses one datagram.
    ///
    /// See the [module documentation](self) for what is accepted and what is not.
    ///
    /// # Errors
    ///
    /// - [`ParseError::TooShort`] if `data` is shorter than [`HEADER_LEN`].
    /// - [`ParseError::UnsupportedVersion`] if the version nibble is not [`VERSION`].
    /// - [`ParseError::UnknownType`] if the type nibble is not a [`PacketType`].
    /// - [`ParseError::TruncatedExtension`] if the extension chain runs past the end of
    ///   `data`.
    ///
    /// # Examples
    ///
    /// ```
    /// use utp_proto::wire::utp::{Packet, PacketType};
    ///
    /// let bytes = [
    ///     0x21, 0x00, 0x27, 0x41, 0x00, 0x5e, 0x88, 0x5e, 0x36, 0xa7, 0xe8, 0x83, 0x00, 0x10,
    ///     0x00, 0x00, 0x41, 0xa7, 0x2e, 0x6d,
    /// ];
    /// let packet = Packet::parse(&bytes)?;
    /// assert_eq!(packet.header().packet_type, PacketType::State);
    /// assert_eq!(packet.header().ack_nr, 11885);
    /// assert!(packet.payload().is_empty());
    /// # Ok::<(), utp_proto::wire::utp::ParseError>(())
    /// ```
    pub fn parse(data: &'a [u8]) -> Result<Self, ParseError> {
        let (header, first_extension) = Header::parse(data)?;
        let after_header = data.get(HEADER_LEN..).unwrap_or_default();
        let chain_len = chain_len(first_extension, after_header)?;
        let (extensions, payload) = after_header.split_at_checked(chain_len).unwrap_or_default();
        Ok(Self { header, first_extension, extensions, payload })
    }

    /// The fixed header.
    pub const fn header(&self) -> &Header {
        &self.header
    }

    /// The raw "extension" byte of the header: the kind of the first extension, or `0`.
    pub const fn first_extension(&self) -> u8 {
        self.first_extension
    }

    /// The extensions, in wire order.
    ///
    /// The chain was validated by [`parse`](Self::parse), so the iterator yields no errors.
    pub fn extensions(&self) -> Extensions<'a> {
        Extensions { next_kind: self.first_extension, rest: self.extensions }
    }

    /// The first selective acknowledgement in the extension chain, if any.
    pub fn selective_ack(&self) -> Option<SelectiveAck<'a>> {
        self.extensions().find_map(|extension| match extension {
            Extension::SelectiveAck(sack) => Some(sack),
            _ => None,
        })
    }

    /// The first close reason (libtorrent's kind 3 extension) in the chain, if any.
    pub fn close_reason(&self) -> Option<u16> {
        self.extensions().find_map(|extension| match extension {
            Extension::CloseReason(reason) => Some(reason),
            _ => None,
        })
    }

    /// The bytes of the extension chain as they were on the wire (each entry's "next kind",
    /// length and body), empty when the packet has no extensions.
    pub const fn extension_bytes(&self) -> &'a [u8] {
        self.extensions
    }

    /// The payload: every byte after the extension chain.
    pub const fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// The length of the datagram this packet was parsed from.
    pub const fn len(&self) -> usize {
        HEADER_LEN + self.extensions.len() + self.payload.len()
    }

    /// Always `false`: a packet holds at least a header. Present for symmetry with
    /// [`len`](Self::len).
    pub const fn is_empty(&self) -> bool {
        false
    }
}

/// The fixed 20-byte uTP header, without the version (always [`VERSION`]) and without the
/// extension byte (derived from the extensions when emitting, exposed by
/// [`Packet::first_extension`] when parsing).
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub struct Header {
    /// What the packet is for.
    pub packet_type: PacketType,
    /// The connection id: the receiver's id for the connection (a `SYN` carries the
    /// initiator's receive id).
    pub connection_id: u16,
    /// The sender's clock when sending, in microseconds, truncated to 32 bits.
    pub timestamp_us: u32,
    /// The sender's latest one-way delay sample: its clock when it received the peer's
    /// last packet minus that packet's `timestamp_us`, wrapping, in microseconds.
    pub timestamp_difference_us: u32,
    /// Free space in the sender's receive buffer, in bytes.
    pub wnd_size: u32,
    /// The packet's sequence number.
    pub seq_nr: u16,
    /// The last sequence number the sender received in order.
    pub ack_nr: u16,
}

impl Header {
    /// Parses the fixed header at the start of `data`, returning it with the raw
    /// "extension" byte (the kind of the first extension, `0` for none).
    ///
    /// Bytes after the first [`HEADER_LEN`] are ignored.
    ///
    /// # Errors
    ///
    /// [`ParseError::TooShort`], [`ParseError::UnsupportedVersion`] or
    /// [`ParseError::UnknownType`], checked in that order.
    pub fn parse(data: &[u8]) -> Result<(Self, u8), ParseError> {
        let Some(bytes) = data.first_chunk::<HEADER_LEN>() else {
            return Err(ParseError::TooShort { len: data.len() });
        };
        let version = bytes[0] & 0x0f;
        if version != VERSION {
            return Err(ParseError::UnsupportedVersion(version));
        }
        let packet_type = PacketType::try_from(bytes[0] >> 4)?;
        let header = Self {
            packet_type,
            connection_id: u16::from_be_bytes([bytes[2], bytes[3]]),
            timestamp_us: u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
            timestamp_difference_us: u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]),
            wnd_size: u32::from_be_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]),
            seq_nr: u16::from_be_bytes([bytes[16], bytes[17]]),
            ack_nr: u16::from_be_bytes([bytes[18], bytes[19]]),
        };
        Ok((header, bytes[1]))
    }

    /// Writes the header, with version [`VERSION`] and `extension` as the kind of the first
    /// extension (`0` for none).
    pub fn emit_into(&self, extension: u8, out: &mut [u8; HEADER_LEN]) {
        out[0] = ((self.packet_type as u8) << 4) | VERSION;
        out[1] = extension;
        out[2..4].copy_from_slice(&self.connection_id.to_be_bytes());
        out[4..8].copy_from_slice(&self.timestamp_us.to_be_bytes());
        out[8..12].copy_from_slice(&self.timestamp_difference_us.to_be_bytes());
        out[12..16].copy_from_slice(&self.wnd_size.to_be_bytes());
        out[16..18].copy_from_slice(&self.seq_nr.to_be_bytes());
        out[18..20].copy_from_slice(&self.ack_nr.to_be_bytes());
    }
}

/// The type of a uTP packet, carried in the high nibble of the first byte.
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
#[repr(u8)]
pub enum PacketType {
    /// `ST_DATA`: carries payload.
    Data = 0,
    /// `ST_FIN`: the sender will send nothing after this sequence number.
    Fin = 1,
    /// `ST_STATE`: an acknowledgement without payload; does not consume a sequence number.
    State = 2,
    /// `ST_RESET`: the connection is terminated.
    Reset = 3,
    /// `ST_SYN`: opens a connection.
    Syn = 4,
}

impl PacketType {
    /// The name libutp and BEP 29 use: `"ST_DATA"`, `"ST_FIN"`, `"ST_STATE"`, `"ST_RESET"`
    /// or `"ST_SYN"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Data => "ST_DATA",
            Self::Fin => "ST_FIN",
            Self::State => "ST_STATE",
            Self::Reset => "ST_RESET",
            Self::Syn => "ST_SYN",
        }
    }
}

impl TryFrom<u8> for PacketType {
    type Error = ParseError;

    /// Maps a type number (0 to 4) to its packet type.
    fn try_from(value: u8) -> Result<Self, ParseError> {
        Ok(match value {
            0 => Self::Data,
            1 => Self::Fin,
            2 => Self::State,
            3 => Self::Reset,
            4 => Self::Syn,
            other => return Err(ParseError::UnknownType(other)),
        })
    }
}

impl From<PacketType> for u8 {
    fn from(value: PacketType) -> Self {
        value as Self
    }
}

impl fmt::Display for PacketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// One entry of the extension chain.
///
/// Non-exhaustive: a kind that is [`Unknown`](Self::Unknown) today may get its own variant
/// when an implementation we interoperate with starts using it.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
#[non_exhaustive]
pub enum Extension<'a> {
    /// Kind 1: selective acknowledgement of packets after `ack_nr + 1`.
    SelectiveAck(SelectiveAck<'a>),
    /// Kind 2: libutp's legacy "extension bits", an 8-byte bit field no implementation
    /// assigns meaning to any more. Parsed only from an 8-byte body (other lengths are
    /// [`Unknown`](Self::Unknown)).
    ExtensionBits(&'a [u8]),
    /// Kind 3: libtorrent's close reason, telling the peer why the connection is being
    /// closed (libtorrent's `close_reason_t`). On the wire: two reserved zero bytes, then
    /// the reason as a big-endian `u16`.
    CloseReason(u16),
    /// Any other extension, kept as it was on the wire.
    Unknown {
        /// The extension kind.
        kind: u8,
        /// The body.
        data: &'a [u8],
    },
}

impl<'a> Extension<'a> {
    /// Classifies an extension body the way [`Packet::parse`] does.
    ///
    /// Kind 1 is always a [`SelectiveAck`](Self::SelectiveAck); kind 2 is
    /// [`ExtensionBits`](Self::ExtensionBits) if `body` is 8 bytes long; kind 3 is a
    /// [`CloseReason`](Self::CloseReason) if `body` is 4 bytes long and starts with two
    /// zero bytes; anything else is [`Unknown`](Self::Unknown).
    pub fn from_wire(kind: u8, body: &'a [u8]) -> Self {
        match (kind, body) {
            (EXTENSION_SELECTIVE_ACK, _) => Self::SelectiveAck(SelectiveAck::new(body)),
            (EXTENSION_BITS, _) if body.len() == EXTENSION_BITS_LEN => Self::ExtensionBits(body),
            (EXTENSION_CLOSE_REASON, &[0, 0, high, low]) => {
                Self::CloseReason(u16::from_be_bytes([high, low]))
            }
            _ => Self::Unknown { kind, data: body },
        }
    }

    /// The extension kind as it appears on the wire.
    pub const fn kind(&self) -> u8 {
        match self {
            Self::SelectiveAck(_) => EXTENSION_SELECTIVE_ACK,
            Self::ExtensionBits(_) => EXTENSION_BITS,
            Self::CloseReason(_) => EXTENSION_CLOSE_REASON,
            Self::Unknown { kind, .. } => *kind,
        }
    }

    /// The length of the body on the wire, without the two bytes of kind and length.
    pub const fn body_len(&self) -> usize {
        match self {
            Self::SelectiveAck(sack) => sack.bitmask.len(),
            Self::ExtensionBits(bits) => bits.len(),
            Self::CloseReason(_) => CLOSE_REASON_LEN,
            Self::Unknown { data, .. } => data.len(),
        }
    }

    /// Appends the body to `out`.
    fn write_body(&self, out: &mut Vec<u8>) {
        match self {
            Self::SelectiveAck(sack) => out.extend_from_slice(sack.bitmask),
            Self::ExtensionBits(bits) => out.extend_from_slice(bits),
            Self::CloseReason(reason) => {
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&reason.to_be_bytes());
            }
            Self::Unknown { data, .. } => out.extend_from_slice(data),
        }
    }
}

/// A selective acknowledgement: a bitmask over the packets after `ack_nr + 1`.
///
/// Bit `i` of the mask (counting from the least significant bit of the first byte, then
/// of the second byte, and so on) says whether packet `ack_nr + 2 + i` was received;
/// `ack_nr + 1` is never in the mask since it is, by definition, missing.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub struct SelectiveAck<'a> {
    bitmask: &'a [u8],
}

impl<'a> SelectiveAck<'a> {
    /// A selective acknowledgement over `bitmask`.
    ///
    /// Any length is accepted here; BEP 29 asks for a multiple of 4 bytes, and [`emit`]
    /// refuses more than [`MAX_EXTENSION_LEN`] bytes.
    pub const fn new(bitmask: &'a [u8]) -> Self {
        Self { bitmask }
    }

    /// The bitmask bytes as they are on the wire.
    pub const fn bitmask(&self) -> &'a [u8] {
        self.bitmask
    }

    /// The number of packets the mask covers (8 per byte).
    pub const fn len_bits(&self) -> usize {
        self.bitmask.len() * 8
    }

    /// Whether packet `ack_nr + 2 + offset` is acknowledged; `false` past the end of the
    /// mask.
    pub fn is_acked(&self, offset: usize) -> bool {
        self.bitmask.get(offset / 8).is_some_and(|byte| byte & (1 << (offset % 8)) != 0)
    }

    /// The number of packets acknowledged (bits set).
    pub fn count_acked(&self) -> usize {
        self.bitmask.iter().map(|byte| byte.count_ones() as usize).sum()
    }

    /// The sequence numbers acknowledged, in mask order, given the packet's `ack_nr`.
    ///
    /// Sequence numbers wrap: with `ack_nr` 65535 the first bit stands for packet 1.
    pub fn acked_seq_nrs(&self, ack_nr: u16) -> AckedSeqNrs<'a> {
        AckedSeqNrs { rest: self.bitmask, current: 0, next_byte_seq_nr: ack_nr.wrapping_add(2) }
    }
}

/// Iterator over the extensions of a [`Packet`], returned by [`Packet::extensions`].
#[derive(Clone, Debug)]
pub struct Extensions<'a> {
    next_kind: u8,
    /// The unread part of a chain that [`Packet::parse`] validated.
    rest: &'a [u8],
}

impl<'a> Iterator for Extensions<'a> {
    type Item = Extension<'a>;

    fn next(&mut self) -> Option<Extension<'a>> {
        if self.next_kind == EXTENSION_NONE {
            return None;
        }
        let kind = self.next_kind;
        // `Packet::parse` validated the chain; should these bytes be missing anyway, end
        // the iteration rather than panic.
        let parsed = match self.rest {
            [next, len, rest @ ..] => {
                rest.split_at_checked(usize::from(*len)).map(|(body, rest)| (*next, body, rest))
            }
            _ => None,
        };
        let Some((next, body, rest)) = parsed else {
            self.next_kind = EXTENSION_NONE;
            return None;
        };
        self.next_kind = next;
        self.rest = rest;
        Some(Extension::from_wire(kind, body))
    }
}

impl FusedIterator for Extensions<'_> {}

/// Iterator over the sequence numbers a [`SelectiveAck`] acknowledges, returned by
/// [`SelectiveAck::acked_seq_nrs`].
#[derive(Clone, Debug)]
pub struct AckedSeqNrs<'a> {
    /// Mask bytes not yet loaded into `current`.
    rest: &'a [u8],
    /// The bits of the current byte not yet yielded.
    current: u8,
    /// The sequence number of bit 0 of the next byte in `rest`.
    next_byte_seq_nr: u16,
}

impl Iterator for AckedSeqNrs<'_> {
    type Item = u16;

    fn next(&mut self) -> Option<u16> {
        while self.current == 0 {
            let (&byte, rest) = self.rest.split_first()?;
            self.rest = rest;
            self.current = byte;
            self.next_byte_seq_nr = self.next_byte_seq_nr.wrapping_add(8);
        }
        let bit = self.current.trailing_zeros() as u16;
        self.current &= self.current - 1;
        Some(self.next_byte_seq_nr.wrapping_sub(8).wrapping_add(bit))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let current = self.current.count_ones() as usize;
        (current, Some(current.saturating_add(self.rest.len().saturating_mul(8))))
    }
}

impl FusedIterator for AckedSeqNrs<'_> {}

/// Writes a packet into `buf`, replacing what it held.
///
/// The header's extension byte and each entry's "next kind" byte are derived from
/// `extensions`, in order. `buf` keeps its allocation, so a buffer reused across calls
/// stops allocating once it has grown to the largest packet.
///
/// # Panics
///
/// If [`try_emit`] would fail: an extension body longer than [`MAX_EXTENSION_LEN`] bytes,
/// or an [`Extension::Unknown`] of kind 0. Both are programming errors: the extensions a
/// connection builds never have them.
///
/// # Examples
///
/// ```
/// use utp_proto::wire::utp::{emit, Extension, Header, Packet, PacketType, SelectiveAck};
///
/// let header = Header {
///     packet_type: PacketType::State,
///     connection_id: 10049,
///     timestamp_us: 6195294,
///     timestamp_difference_us: 916973699,
///     wnd_size: 1048576,
///     seq_nr: 16807,
///     ack_nr: 11885,
/// };
/// let sack = Extension::SelectiveAck(SelectiveAck::new(&[1, 0, 0, 128]));
/// let mut buf = Vec::new();
/// emit(&header, &[sack], &[], &mut buf);
/// assert_eq!(buf.len(), 26);
///
/// let packet = Packet::parse(&buf)?;
/// assert_eq!(packet.header(), &header);
/// let acked: Vec<u16> = packet.selective_ack().unwrap().acked_seq_nrs(11885).collect();
/// assert_eq!(acked, [11887, 11918]);
/// # Ok::<(), utp_proto::wire::utp::ParseError>(())
/// ```
pub fn emit(header: &Header, extensions: &[Extension<'_>], payload: &[u8], buf: &mut Vec<u8>) {
    if let Err(error) = try_emit(header, extensions, payload, buf) {
        panic!("cannot emit a uTP packet: {error}");
    }
}

/// Writes a packet into `buf` like [`emit`], or says why it cannot.
///
/// # Errors
///
/// - [`EmitError::ExtensionTooLong`] if an extension body is longer than
///   [`MAX_EXTENSION_LEN`] bytes.
/// - [`EmitError::ExtensionKindZero`] if an [`Extension::Unknown`] has kind 0, which would
///   end the chain.
///
/// On error `buf` is left untouched.
pub fn try_emit(
    header: &Header,
    extensions: &[Extension<'_>],
    payload: &[u8],
    buf: &mut Vec<u8>,
) -> Result<(), EmitError> {
    for extension in extensions {
        let kind = extension.kind();
        if kind == EXTENSION_NONE {
            return Err(EmitError::ExtensionKindZero);
        }
        let len = extension.body_len();
        if len > MAX_EXTENSION_LEN {
            return Err(EmitError::ExtensionTooLong { kind, len });
        }
    }

    buf.clear();
    buf.reserve(emitted_len(extensions, payload.len()));
    let mut bytes = [0; HEADER_LEN];
    let first = extensions.first().map_or(EXTENSION_NONE, Extension::kind);
    header.emit_into(first, &mut bytes);
    buf.extend_from_slice(&bytes);
    for (index, extension) in extensions.iter().enumerate() {
        let next = extensions.get(index + 1).map_or(EXTENSION_NONE, Extension::kind);
        // Checked above: the body is at most 255 bytes.
        let len = extension.body_len() as u8;
        buf.extend_from_slice(&[next, len]);
        extension.write_body(buf);
    }
    buf.extend_from_slice(payload);
    Ok(())
}

/// The length of the packet [`emit`] writes for these extensions and a payload of
/// `payload_len` bytes.
pub fn emitted_len(extensions: &[Extension<'_>], payload_len: usize) -> usize {
    let chain: usize = extensions.iter().map(|extension| 2 + extension.body_len()).sum();
    HEADER_LEN + chain + payload_len
}

/// Why a datagram is not a uTP packet.
#[derive(Clone, Copy, Debug, Eq, Error, Hash, PartialEq)]
#[non_exhaustive]
pub enum ParseError {
    /// The datagram is shorter than the fixed header.
    #[error("{len}-byte datagram is shorter than the 20-byte uTP header")]
    TooShort {
        /// The datagram's length.
        len: usize,
    },
    /// The version nibble is not [`VERSION`].
    #[error("unsupported uTP version {0}: only version 1 exists")]
    UnsupportedVersion(u8),
    /// The type nibble is not one of the five packet types.
    #[error("unknown uTP packet type {0}: types are 0 (ST_DATA) to 4 (ST_SYN)")]
    UnknownType(u8),
    /// An extension's length byte or body runs past the end of the datagram.
    #[error(
        "uTP extension of kind {kind} at byte {offset} needs {needed} bytes \
         but the datagram has {available} left"
    )]
    TruncatedExtension {
        /// The kind of the truncated extension.
        kind: u8,
        /// Where the extension's two-byte "next kind, length" prefix starts in the datagram.
        offset: usize,
        /// The bytes the extension needs from `offset`: 2, plus its body length once that
        /// is known.
        needed: usize,
        /// The bytes left in the datagram from `offset`.
        available: usize,
    },
}

/// Why [`try_emit`] cannot write a packet.
#[derive(Clone, Copy, Debug, Eq, Error, Hash, PartialEq)]
#[non_exhaustive]
pub enum EmitError {
    /// An extension body does not fit the one-byte length field.
    #[error("uTP extension of kind {kind} has a {len}-byte body, but the wire allows at most 255")]
    ExtensionTooLong {
        /// The extension kind.
        kind: u8,
        /// The body length.
        len: usize,
    },
    /// An [`Extension::Unknown`] has kind 0, which on the wire means "end of chain".
    #[error("uTP extension kind 0 cannot be emitted: it marks the end of the extension chain")]
    ExtensionKindZero,
}

/// Validates the extension chain that starts with kind `first` at the beginning of `data`
/// (the bytes after the header) and returns its length in bytes.
fn chain_len(first: u8, data: &[u8]) -> Result<usize, ParseError> {
    let mut kind = first;
    let mut offset = 0;
    while kind != EXTENSION_NONE {
        let available = data.len() - offset;
        let truncated = |needed| ParseError::TruncatedExtension {
            kind,
            offset: HEADER_LEN + offset,
            needed,
            available,
        };
        let Some(&[next, len]) = data.get(offset..offset + 2) else {
            return Err(truncated(2));
        };
        let needed = 2 + usize::from(len);
        if needed > available {
            return Err(truncated(needed));
        }
        offset += needed;
        kind = next;
    }
    Ok(offset)
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;

    fn header(packet_type: PacketType) -> Header {
        Header {
            packet_type,
            connection_id: 0x1234,
            timestamp_us: 0x0102_0304,
            timestamp_difference_us: 0x0506_0708,
            wnd_size: 0x090a_0b0c,
            seq_nr: 0x0d0e,
            ack_nr: 0x0f10,
        }
    }

    #[test]
    fn header_field_offsets() {
        let mut out = [0; HEADER_LEN];
        header(PacketType::Syn).emit_into(7, &mut out);
        assert_eq!(
            out,
            [0x41, 7, 0x12, 0x34, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]
        );
        assert_eq!(Header::parse(&out), Ok((header(PacketType::Syn), 7)));
    }

    #[test]
    fn header_parse_ignores_trailing_bytes() {
        let mut out = [0; HEADER_LEN + 3];
        header(PacketType::Data).emit_into(0, (&mut out[..HEADER_LEN]).try_into().unwrap());
        assert_eq!(Header::parse(&out), Ok((header(PacketType::Data), 0)));
    }

    #[test]
    fn header_errors_in_order() {
        assert_eq!(Header::parse(&[]), Err(ParseError::TooShort { len: 0 }));
        // Bad version and bad type: the version is reported.
        let mut bytes = [0; HEADER_LEN];
        bytes[0] = 0xf2;
        assert_eq!(Header::parse(&bytes), Err(ParseError::UnsupportedVersion(2)));
        bytes[0] = 0xf1;
        assert_eq!(Header::parse(&bytes), Err(ParseError::UnknownType(15)));
    }

    #[test]
    fn packet_type_names_and_numbers() {
        for (number, name) in
            [(0, "ST_DATA"), (1, "ST_FIN"), (2, "ST_STATE"), (3, "ST_RESET"), (4, "ST_SYN")]
        {
            let packet_type = PacketType::try_from(number).unwrap();
            assert_eq!(packet_type.as_str(), name);
            assert_eq!(alloc::format!("{packet_type}"), name);
            assert_eq!(u8::from(packet_type), number);
        }
        for number in 5..=255 {
            assert_eq!(PacketType::try_from(number), Err(ParseError::UnknownType(number)));
        }
    }

    #[test]
    fn from_wire_classification() {
        let eight = [1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(Extension::from_wire(1, &[]), Extension::SelectiveAck(SelectiveAck::new(&[])));
        assert_eq!(Extension::from_wire(2, &eight), Extension::ExtensionBits(&eight));
        assert_eq!(
            Extension::from_wire(2, &eight[..7]),
            Extension::Unknown { kind: 2, data: &eight[..7] }
        );
        assert_eq!(Extension::from_wire(3, &[0, 0, 3, 0xec]), Extension::CloseReason(1004));
        assert_eq!(
            Extension::from_wire(3, &[0, 1, 3, 0xec]),
            Extension::Unknown { kind: 3, data: &[0, 1, 3, 0xec] }
        );
        assert_eq!(
            Extension::from_wire(3, &[0, 0, 3]),
            Extension::Unknown { kind: 3, data: &[0, 0, 3] }
        );
        assert_eq!(Extension::from_wire(200, &[9]), Extension::Unknown { kind: 200, data: &[9] });
    }

    #[test]
    fn sack_bits_lsb_first() {
        let sack = SelectiveAck::new(&[0b0000_0101, 0b1000_0000]);
        assert_eq!(sack.len_bits(), 16);
        assert!(sack.is_acked(0));
        assert!(!sack.is_acked(1));
        assert!(sack.is_acked(2));
        assert!(sack.is_acked(15));
        assert!(!sack.is_acked(16));
        assert!(!sack.is_acked(usize::MAX));
        assert_eq!(sack.count_acked(), 3);
        let acked: Vec<u16> = sack.acked_seq_nrs(100).collect();
        assert_eq!(acked, [102, 104, 117]);
    }

    #[test]
    fn sack_seq_nrs_wrap() {
        let sack = SelectiveAck::new(&[0xff]);
        let acked: Vec<u16> = sack.acked_seq_nrs(65533).collect();
        assert_eq!(acked, [65535, 0, 1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn sack_iterator_skips_empty_bytes() {
        let sack = SelectiveAck::new(&[0, 0, 0, 0x10, 0]);
        let mut iter = sack.acked_seq_nrs(0);
        assert_eq!(iter.size_hint(), (0, Some(40)));
        assert_eq!(iter.next(), Some(2 + 24 + 4));
        assert_eq!(iter.next(), None);
        assert_eq!(iter.next(), None);
    }

    #[test]
    fn emit_derives_chain_bytes() {
        let mut buf = vec![0xaa; 3];
        let extensions = [
            Extension::Unknown { kind: 77, data: &[1, 2] },
            Extension::SelectiveAck(SelectiveAck::new(&[0, 0, 0, 1])),
            Extension::CloseReason(7),
        ];
        emit(&header(PacketType::State), &extensions, b"hi", &mut buf);
        assert_eq!(buf.len(), emitted_len(&extensions, 2));
        assert_eq!(buf[1], 77);
        assert_eq!(
            &buf[HEADER_LEN..],
            &[1, 2, 1, 2, 3, 4, 0, 0, 0, 1, 0, 4, 0, 0, 0, 7, b'h', b'i']
        );
        let packet = Packet::parse(&buf).unwrap();
        assert_eq!(packet.first_extension(), 77);
        assert_eq!(packet.extensions().collect::<Vec<_>>(), extensions);
        assert_eq!(packet.close_reason(), Some(7));
        assert_eq!(packet.payload(), b"hi");
        assert_eq!(packet.len(), buf.len());
    }

    #[test]
    fn emit_errors_leave_buffer_alone() {
        let mut buf = vec![1, 2, 3];
        let long = [0; 256];
        assert_eq!(
            try_emit(
                &header(PacketType::Data),
                &[Extension::SelectiveAck(SelectiveAck::new(&long))],
                &[],
                &mut buf
            ),
            Err(EmitError::ExtensionTooLong { kind: 1, len: 256 })
        );
        assert_eq!(
            try_emit(
                &header(PacketType::Data),
                &[Extension::Unknown { kind: 0, data: &[] }],
                &[],
                &mut buf
            ),
            Err(EmitError::ExtensionKindZero)
        );
        assert_eq!(buf, [1, 2, 3]);
        // 255 bytes is the limit, and it fits.
        let longest = [0; 255];
        let sack = [Extension::SelectiveAck(SelectiveAck::new(&longest))];
        try_emit(&header(PacketType::State), &sack, &[], &mut buf).unwrap();
        assert_eq!(buf.len(), HEADER_LEN + 2 + 255);
        assert_eq!(Packet::parse(&buf).unwrap().selective_ack().unwrap().len_bits(), 2040);
    }

    #[test]
    #[should_panic(expected = "at most 255")]
    fn emit_panics_on_long_body() {
        let long = [0; 300];
        emit(&header(PacketType::Data), &[Extension::ExtensionBits(&long)], &[], &mut Vec::new());
    }

    #[test]
    fn truncated_chain() {
        let mut buf = Vec::new();
        emit(&header(PacketType::State), &[], &[], &mut buf);
        buf[1] = 1;
        assert_eq!(
            Packet::parse(&buf),
            Err(ParseError::TruncatedExtension { kind: 1, offset: 20, needed: 2, available: 0 })
        );
        buf.extend_from_slice(&[5, 4, 0xff, 0xff, 0xff, 0xff]);
        // The SACK is complete but announces a kind-5 extension that is missing.
        assert_eq!(
            Packet::parse(&buf),
            Err(ParseError::TruncatedExtension { kind: 5, offset: 26, needed: 2, available: 0 })
        );
        buf[20] = 0;
        buf[21] = 5;
        assert_eq!(
            Packet::parse(&buf),
            Err(ParseError::TruncatedExtension { kind: 1, offset: 20, needed: 7, available: 6 })
        );
    }

    #[test]
    fn error_messages_say_what_is_wrong() {
        assert_eq!(
            alloc::format!("{}", ParseError::TooShort { len: 19 }),
            "19-byte datagram is shorter than the 20-byte uTP header"
        );
        assert_eq!(
            alloc::format!(
                "{}",
                ParseError::TruncatedExtension { kind: 1, offset: 20, needed: 6, available: 3 }
            ),
            "uTP extension of kind 1 at byte 20 needs 6 bytes but the datagram has 3 left"
        );
    }
}
