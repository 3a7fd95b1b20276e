//! netascii, the text mode of TFTP (RFC 1350), after the Telnet NVT of RFC 764.
//!
//! In netascii mode a line ends with CR LF on the wire, and a carriage return that does not
//! end a line is sent as CR NUL. Local text uses Unix conventions, so the sender's
//! [`Encoder`] and the receiver's [`Decoder`] convert exactly these bytes:
//!
//! | local  | wire     |
//! |--------|----------|
//! | LF     | CR LF    |
//! | CR     | CR NUL   |
//! | other  | the same |
//!
//! A local CR LF is two local characters and becomes CR NUL CR LF. Bytes are not checked to
//! be 7-bit ASCII: anything but CR and LF passes through unchanged, both ways, so that
//! [`Decoder`] gives back exactly what [`Encoder`] was given.
//!
//! # State across blocks
//!
//! Both conversions are stateful, because a two-byte wire sequence may straddle two DATA
//! blocks. The encoder fills a bounded buffer (the next block) and, when only the CR of an
//! expansion fits, carries the second byte over to the next call. The decoder holds a CR
//! that ends a block until the next block (or [`Decoder::finish`]) tells what follows it.
//! Use one encoder or decoder per transfer, and feed it the blocks in order, once each: a
//! duplicate or retransmitted block must not be fed again.
//!
//! # Lengths count wire bytes
//!
//! Everything TFTP measures is measured after conversion: a DATA block holds `blksize`
//! *encoded* bytes, the short block that ends a transfer is short in encoded bytes, and the
//! `tsize` option (RFC 2349) announces the encoded length, which a sender computes with
//! [`Encoder::encoded_len`]. The file a receiver writes is usually shorter than `tsize`.
//!
//! # Leniency
//!
//! The decoder never fails. A CR followed by anything but LF or NUL, or ending the stream,
//! is kept as a CR and counted in [`Decoder::malformed`]; the byte after it is decoded as
//! usual. A bare LF (a peer sending Unix text as netascii) is kept as LF, uncounted.
//!
//! # Examples
//!
//! ```
//! use utp_proto::tftp::netascii::{Decoder, Encoder};
//!
//! let text = b"one\ntwo\rthree\n";
//! let mut wire = Vec::new();
//! Encoder::new().encode_to_vec(text, &mut wire);
//! assert_eq!(wire, b"one\r\ntwo\r\0three\r\n");
//! assert_eq!(Encoder::encoded_len(text), wire.len() as u64);
//!
//! // The wire bytes arrive in blocks that may split a CR from its LF.
//! let (first, second) = wire.split_at(4);
//! assert_eq!(first, b"one\r");
//! let mut decoder = Decoder::new();
//! let mut local = Vec::new();
//! decoder.decode_to_vec(first, &mut local);
//! decoder.decode_to_vec(second, &mut local);
//! decoder.finish(&mut local);
//! assert_eq!(local, text);
//! assert_eq!(decoder.malformed(), 0);
//! ```

use alloc::vec::Vec;

/// Carriage return.
const CR: u8 = b'\r';
/// Line feed.
const LF: u8 = b'\n';
/// The byte that follows a CR that does not end a line.
const NUL: u8 = 0;

/// Converts local text to netascii, incrementally.
///
/// LF becomes CR LF and CR becomes CR NUL; see the [module documentation](self).
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct Encoder {
    /// The second byte of an expansion whose CR was written but which did not fit.
    pending: Option<u8>,
}

impl Encoder {
    /// Creates an encoder at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Encodes as much of `input` as fits in `output`.
    ///
    /// Returns `(consumed, written)`: the number of bytes of `input` consumed and of
    /// `output` written. The byte pending from an earlier call, if any, is written first.
    /// Never writes more than `output.len()` bytes: when only the CR of an expansion fits,
    /// its input byte is consumed and the second byte is kept for the next call (see
    /// [`pending`](Self::pending)). So a call with a non-empty `output` always makes
    /// progress while there is input or a pending byte, and `output` is filled completely
    /// unless the input runs out first.
    ///
    /// # Examples
    ///
    /// ```
    /// use utp_proto::tftp::netascii::Encoder;
    ///
    /// let mut encoder = Encoder::new();
    /// let mut block = [0; 4];
    /// assert_eq!(encoder.encode(b"abc\nd", &mut block), (4, 4));
    /// assert_eq!(&block, b"abc\r");
    /// assert_eq!(encoder.pending(), 1);
    /// assert_eq!(encoder.encode(b"d", &mut block), (1, 2));
    /// assert_eq!(&block[..2], b"\nd");
    /// ```
    #[must_use = "the input not consumed must be passed again, and only `written` bytes are valid"]
    pub fn encode(&mut self, input: &[u8], output: &mut [u8]) -> (usize, usize) {
        let mut written = self.flush(output);
        if self.pending.is_some() {
            return (0, written);
        }
        let mut consumed = 0;
        while consumed < input.len() && written < output.len() {
            let room = output.len() - written;
            let run = &input[consumed..];
            let run = &run[..run.len().min(room)];
            let plain = run.iter().position(|&byte| byte == CR || byte == LF).unwrap_or(run.len());
            output[written..written + plain].copy_from_slice(&run[..plain]);
            consumed += plain;
            written += plain;
            if plain == run.len() {
                continue;
            }
            let second = expansion(run[plain]);
            output[written] = CR;
            consumed += 1;
            written += 1;
            match output.get_mut(written) {
                Some(slot) => {
                    *slot = second;
                    written += 1;
                }
                None => self.pending = Some(second),
            }
        }
        (consumed, written)
    }

    /// Appends the encoding of all of `input` to `out`.
    ///
    /// A byte pending from an earlier [`encode`](Self::encode) is appended first, so
    /// afterwards nothing is pending.
    pub fn encode_to_vec(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.extend(self.pending.take());
        let mut rest = input;
        while let Some(at) = rest.iter().position(|&byte| byte == CR || byte == LF) {
            out.extend_from_slice(&rest[..at]);
            out.extend_from_slice(&[CR, expansion(rest[at])]);
            rest = &rest[at + 1..];
        }
        out.extend_from_slice(rest);
    }

    /// The number of bytes (0 or 1) still to be written before the stream may end.
    ///
    /// It is 1 after an [`encode`](Self::encode) that wrote only the CR of an expansion.
    /// The next `encode` writes that byte first; at the end of the input,
    /// [`flush`](Self::flush) writes it.
    pub fn pending(&self) -> usize {
        usize::from(self.pending.is_some())
    }

    /// Writes the pending byte, if any, to `output`; returns how many bytes were written.
    ///
    /// Writes nothing when nothing is pending or `output` is empty.
    #[must_use = "only the written bytes of `output` are valid"]
    pub fn flush(&mut self, output: &mut [u8]) -> usize {
        match (self.pending, output.first_mut()) {
            (Some(byte), Some(slot)) => {
                *slot = byte;
                self.pending = None;
                1
            }
            _ => 0,
        }
    }

    /// The exact length of the encoding of `input`: its length plus one per CR and LF.
    ///
    /// Each byte encodes on its own, so the length of a file is the sum of the lengths of
    /// its pieces, however it is cut; this is the `tsize` to announce for it.
    #[must_use]
    pub fn encoded_len(input: &[u8]) -> u64 {
        let expanded = input.iter().filter(|&&byte| byte == CR || byte == LF).count();
        // A slice length always fits in a u64 on the platforms Rust supports.
        (input.len() + expanded) as u64
    }
}

/// Converts netascii back to local text, incrementally.
///
/// CR LF becomes LF and CR NUL becomes CR; anything else is kept, and a CR followed by
/// anything else is counted (see [`malformed`](Self::malformed)). See the
/// [module documentation](self).
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct Decoder {
    /// The last byte given was a CR, not yet decoded because its follower is unknown.
    held_cr: bool,
    /// CRs followed by neither LF nor NUL, and CRs that ended a stream.
    malformed: u64,
}

impl Decoder {
    /// Creates a decoder at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes `input`, appending the local text to `out`.
    ///
    /// A CR at the end of `input` is held back until the next call tells what follows
    /// it, or [`finish`](Self::finish) ends the stream. An empty `input` changes nothing.
    pub fn decode_to_vec(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let mut rest = input;
        if self.held_cr {
            let Some(&next) = rest.first() else { return };
            self.held_cr = false;
            rest = &rest[self.after_cr(next, out)..];
        }
        out.reserve(rest.len());
        while let Some(at) = rest.iter().position(|&byte| byte == CR) {
            out.extend_from_slice(&rest[..at]);
            let Some(&next) = rest.get(at + 1) else {
                self.held_cr = true;
                return;
            };
            rest = &rest[at + 1 + self.after_cr(next, out)..];
        }
        out.extend_from_slice(rest);
    }

    /// Ends the stream: a held CR is appended to `out` (and counted as malformed).
    ///
    /// The decoder is then ready for a new stream; [`malformed`](Self::malformed) keeps
    /// counting.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.held_cr {
            self.held_cr = false;
            self.malformed += 1;
            out.push(CR);
        }
    }

    /// The number of bytes (0 or 1) held back: 1 when the input so far ended with a CR.
    pub fn pending(&self) -> usize {
        usize::from(self.held_cr)
    }

    /// How many CRs were followed by neither LF nor NUL, or ended the stream.
    ///
    /// Each was kept as a CR. A correct peer never sends one; a count above zero usually
    /// means the peer sent local text with CR line ends, or binary data, as netascii.
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    /// Decodes a CR followed by `next`; returns how many bytes of `next` were used (0 or 1).
    ///
    /// A `next` that is neither LF nor NUL is not used: it is decoded on its own, so that a
    /// CR in it starts a new sequence.
    fn after_cr(&mut self, next: u8, out: &mut Vec<u8>) -> usize {
        match next {
            LF => {
                out.push(LF);
                1
            }
            NUL => {
                out.push(CR);
                1
            }
            _ => {
                self.malformed += 1;
                out.push(CR);
                0
            }
        }
    }
}

/// The byte after the CR in the encoding of `byte`, which is CR or LF.
fn expansion(byte: u8) -> u8 {
    if byte == LF { LF } else { NUL }
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;

    fn encode(input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        Encoder::new().encode_to_vec(input, &mut out);
        out
    }

    fn decode(input: &[u8]) -> (Vec<u8>, u64) {
        let mut decoder = Decoder::new();
        let mut out = Vec::new();
        decoder.decode_to_vec(input, &mut out);
        decoder.finish(&mut out);
        (out, decoder.malformed())
    }

    #[test]
    fn expansion_pairs() {
        assert_eq!(expansion(LF), LF);
        assert_eq!(expansion(CR), NUL);
    }

    #[test]
    fn encodes_line_ends_and_bare_carriage_returns() {
        assert_eq!(encode(b""), b"");
        assert_eq!(encode(b"a\nb"), b"a\r\nb");
        assert_eq!(encode(b"a\rb"), b"a\r\0b");
        assert_eq!(encode(b"\r\n"), b"\r\0\r\n");
        assert_eq!(encode(b"\0\xff"), b"\0\xff");
    }

    #[test]
    fn decodes_line_ends_and_bare_carriage_returns() {
        assert_eq!(decode(b"a\r\nb"), (b"a\nb".to_vec(), 0));
        assert_eq!(decode(b"a\r\0b"), (b"a\rb".to_vec(), 0));
        assert_eq!(decode(b"\r\0\r\n"), (b"\r\n".to_vec(), 0));
        assert_eq!(decode(b"a\nb"), (b"a\nb".to_vec(), 0));
    }

    #[test]
    fn a_malformed_cr_does_not_swallow_a_following_cr() {
        assert_eq!(decode(b"\r\r\n"), (b"\r\n".to_vec(), 1));
        assert_eq!(decode(b"\r\r\r\0"), (b"\r\r\r".to_vec(), 2));
    }

    #[test]
    fn encode_carries_the_second_byte_of_an_expansion() {
        let mut encoder = Encoder::new();
        let mut byte = [0; 1];
        assert_eq!(encoder.encode(b"\n", &mut byte), (1, 1));
        assert_eq!(byte, [CR]);
        assert_eq!(encoder.pending(), 1);
        assert_eq!(encoder.encode(b"x", &mut []), (0, 0));
        assert_eq!(encoder.encode(b"x", &mut byte), (0, 1));
        assert_eq!(byte, [LF]);
        assert_eq!(encoder.pending(), 0);
        assert_eq!(encoder.flush(&mut byte), 0);
    }

    #[test]
    fn encode_to_vec_writes_the_pending_byte_first() {
        let mut encoder = Encoder::new();
        let mut byte = [0; 1];
        assert_eq!(encoder.encode(b"\r", &mut byte), (1, 1));
        let mut out = vec![byte[0]];
        encoder.encode_to_vec(b"a", &mut out);
        assert_eq!(out, b"\r\0a");
        assert_eq!(encoder.pending(), 0);
    }
}
