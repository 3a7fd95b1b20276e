//! Tests of the netascii conversion: hand-written vectors both ways, and properties: decoding
//! an encoding gives back the input, and cutting the input or the output anywhere (a one-byte
//! block, a CR at the end of a block) gives the same bytes as converting in one go.

use proptest::collection::vec;
use proptest::prelude::*;
use utp_proto::tftp::netascii::{Decoder, Encoder};

/// Encodes `input` in one call to [`Encoder::encode_to_vec`].
fn encode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Encoder::new().encode_to_vec(input, &mut out);
    out
}

/// Decodes `input` in one call, then finishes; returns the text and the malformed count.
fn decode(input: &[u8]) -> (Vec<u8>, u64) {
    decode_blocks(&[input])
}

/// Decodes `blocks` in order, then finishes; returns the text and the malformed count.
fn decode_blocks(blocks: &[&[u8]]) -> (Vec<u8>, u64) {
    let mut decoder = Decoder::new();
    let mut out = Vec::new();
    for block in blocks {
        decoder.decode_to_vec(block, &mut out);
    }
    decoder.finish(&mut out);
    assert_eq!(decoder.pending(), 0);
    (out, decoder.malformed())
}

/// Encodes `input` with [`Encoder::encode`], offering it `chunks[i]` input bytes and a
/// buffer of `outputs[i]` bytes at call `i` (both cycled), then flushes through buffers of
/// the same sizes. Checks the bounds and the progress of every call.
fn encode_in_pieces(input: &[u8], chunks: &[usize], outputs: &[usize]) -> Vec<u8> {
    let mut encoder = Encoder::new();
    let mut out = Vec::new();
    let mut buf = vec![0; outputs.iter().copied().max().unwrap_or(0)];
    let mut rest = input;
    let mut calls = 0;
    while !rest.is_empty() {
        let chunk = &rest[..chunks[calls % chunks.len()].min(rest.len())];
        let output = &mut buf[..outputs[calls % outputs.len()]];
        let pending = encoder.pending();
        let (consumed, written) = encoder.encode(chunk, output);
        assert!(consumed <= chunk.len() && written <= output.len());
        if !output.is_empty() && (pending > 0 || !chunk.is_empty()) {
            assert!(written > 0, "no progress with {pending} pending and {chunk:?}");
        }
        if consumed < chunk.len() {
            assert_eq!(written, output.len(), "output not filled though input was left");
        }
        out.extend_from_slice(&output[..written]);
        rest = &rest[consumed..];
        calls += 1;
        assert!(calls <= 2 * input.len() + 2, "encoding does not progress");
    }
    while encoder.pending() > 0 {
        let output = &mut buf[..outputs[calls % outputs.len()]];
        let written = encoder.flush(output);
        assert_eq!(written, output.len().min(1));
        out.extend_from_slice(&output[..written]);
        calls += 1;
        assert!(calls <= 2 * input.len() + 4, "flushing does not progress");
    }
    out
}

/// Cuts `bytes` at the given positions (taken modulo `bytes.len() + 1`, in any order, with
/// repeats giving empty blocks).
fn cut<'a>(bytes: &'a [u8], positions: &[usize]) -> Vec<&'a [u8]> {
    let mut positions: Vec<usize> = positions.iter().map(|p| p % (bytes.len() + 1)).collect();
    positions.sort_unstable();
    let mut blocks = Vec::new();
    let mut start = 0;
    for end in positions {
        blocks.push(&bytes[start..end]);
        start = end;
    }
    blocks.push(&bytes[start..]);
    blocks
}

/// Bytes rich in CR, LF and NUL, the ones netascii cares about.
fn text() -> impl Strategy<Value = Vec<u8>> {
    vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(0u8), Just(b'a'), any::<u8>()], 0..300)
}

#[test]
fn encode_vectors() {
    let vectors: &[(&[u8], &[u8])] = &[
        (b"", b""),
        (b"a\nb", b"a\r\nb"),
        (b"a\rb", b"a\r\0b"),
        (b"\r\n", b"\r\0\r\n"),
        (b"\n\n", b"\r\n\r\n"),
        (b"\r\r", b"\r\0\r\0"),
        (b"\n\r", b"\r\n\r\0"),
        (b"\0", b"\0"),
        (b"caf\xc3\xa9\n", b"caf\xc3\xa9\r\n"),
        (b"no line end", b"no line end"),
    ];
    for &(local, wire) in vectors {
        assert_eq!(encode(local), wire, "encoding {local:?}");
        assert_eq!(Encoder::encoded_len(local), wire.len() as u64, "length of {local:?}");
        assert_eq!(decode(wire), (local.to_vec(), 0), "decoding {wire:?}");
    }
}

#[test]
fn decode_vectors() {
    let vectors: &[(&[u8], &[u8], u64)] = &[
        (b"", b"", 0),
        (b"a\r\nb", b"a\nb", 0),
        (b"a\r\0b", b"a\rb", 0),
        // A bare LF is kept, and not counted.
        (b"a\nb", b"a\nb", 0),
        (b"\0\0", b"\0\0", 0),
        // A CR followed by anything else is kept with what follows.
        (b"a\rb", b"a\rb", 1),
        (b"\r\x7f", b"\r\x7f", 1),
        // ... which is decoded on its own, even a CR.
        (b"\r\r\n", b"\r\n", 1),
        (b"\r\r\0", b"\r\r", 1),
        (b"\r\r\r", b"\r\r\r", 3),
        // A CR ending the stream is kept, and counted.
        (b"a\r", b"a\r", 1),
        (b"\r\n\r", b"\n\r", 1),
    ];
    for &(wire, local, malformed) in vectors {
        assert_eq!(decode(wire), (local.to_vec(), malformed), "decoding {wire:?}");
    }
}

#[test]
fn encode_into_one_byte_buffers() {
    let mut encoder = Encoder::new();
    let mut byte = [0; 1];
    let mut out = Vec::new();
    let mut input: &[u8] = b"a\r\nb";
    let mut steps = Vec::new();
    while !input.is_empty() || encoder.pending() > 0 {
        let (consumed, written) = encoder.encode(input, &mut byte);
        steps.push((consumed, written, encoder.pending()));
        out.extend_from_slice(&byte[..written]);
        input = &input[consumed..];
    }
    assert_eq!(out, b"a\r\0\r\nb");
    // Each expansion consumes its byte with the CR and writes the second byte on the next
    // call, consuming nothing.
    assert_eq!(steps, [(1, 1, 0), (1, 1, 1), (0, 1, 0), (1, 1, 1), (0, 1, 0), (1, 1, 0)]);
}

#[test]
fn encode_into_an_empty_buffer_does_nothing() {
    let mut encoder = Encoder::new();
    assert_eq!(encoder.encode(b"a\n", &mut []), (0, 0));
    assert_eq!(encoder.pending(), 0);
    let mut byte = [0; 1];
    assert_eq!(encoder.encode(b"\n", &mut byte), (1, 1));
    assert_eq!(encoder.encode(b"a", &mut []), (0, 0));
    assert_eq!(encoder.flush(&mut []), 0);
    assert_eq!(encoder.pending(), 1);
}

#[test]
fn encode_fills_a_block_exactly() {
    // A 4-byte block takes "ab" and the whole expansion of the CR; the LF opens the next one.
    let mut encoder = Encoder::new();
    let mut block = [0; 4];
    assert_eq!(encoder.encode(b"ab\r\nc", &mut block), (3, 4));
    assert_eq!(&block, b"ab\r\0");
    assert_eq!(encoder.pending(), 0);
    assert_eq!(encoder.encode(b"\nc", &mut block), (2, 3));
    assert_eq!(&block[..3], b"\r\nc");
    // A 3-byte block takes "xy" and only the CR of the line end.
    let mut block = [0; 3];
    assert_eq!(encoder.encode(b"xy\n", &mut block), (3, 3));
    assert_eq!(&block, b"xy\r");
    assert_eq!(encoder.pending(), 1);
}

#[test]
fn flush_writes_the_pending_byte_at_the_end_of_the_stream() {
    let mut encoder = Encoder::new();
    let mut block = [0; 2];
    assert_eq!(encoder.encode(b"a\n", &mut block), (2, 2));
    assert_eq!(&block, b"a\r");
    assert_eq!(encoder.pending(), 1);
    assert_eq!(encoder.flush(&mut block), 1);
    assert_eq!(block[0], b'\n');
    assert_eq!(encoder.pending(), 0);
    assert_eq!(encoder.flush(&mut block), 0);
}

#[test]
fn decode_a_cr_at_the_end_of_a_block() {
    assert_eq!(decode_blocks(&[b"a\r", b"\nb"]), (b"a\nb".to_vec(), 0));
    assert_eq!(decode_blocks(&[b"a\r", b"\0b"]), (b"a\rb".to_vec(), 0));
    // Empty blocks in between change nothing.
    assert_eq!(decode_blocks(&[b"a\r", b"", b"", b"\n"]), (b"a\n".to_vec(), 0));
    assert_eq!(decode_blocks(&[b"\r", b"\r", b"\0"]), (b"\r\r".to_vec(), 1));
    assert_eq!(decode_blocks(&[b"\r", b"x"]), (b"\rx".to_vec(), 1));
}

#[test]
fn decode_holds_a_final_cr_until_finish() {
    let mut decoder = Decoder::new();
    let mut out = Vec::new();
    decoder.decode_to_vec(b"last line\r", &mut out);
    assert_eq!(out, b"last line");
    assert_eq!(decoder.pending(), 1);
    decoder.decode_to_vec(b"", &mut out);
    assert_eq!(decoder.pending(), 1);
    decoder.finish(&mut out);
    assert_eq!(out, b"last line\r");
    assert_eq!(decoder.pending(), 0);
    assert_eq!(decoder.malformed(), 1);
    // Finishing again adds nothing.
    decoder.finish(&mut out);
    assert_eq!(out, b"last line\r");
    assert_eq!(decoder.malformed(), 1);
}

#[test]
fn decode_counts_malformed_sequences_across_calls() {
    let mut decoder = Decoder::new();
    let mut out = Vec::new();
    decoder.decode_to_vec(b"a\rb\r", &mut out);
    assert_eq!(decoder.malformed(), 1);
    decoder.decode_to_vec(b"c\r\n", &mut out);
    assert_eq!(decoder.malformed(), 2);
    decoder.finish(&mut out);
    assert_eq!(out, b"a\rb\rc\n");
    assert_eq!(decoder.malformed(), 2);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn decode_after_encode_gives_back_the_input(local in text()) {
        let wire = encode(&local);
        prop_assert_eq!(decode(&wire), (local, 0));
    }

    #[test]
    fn encoded_len_is_the_length_of_the_encoding(local in text()) {
        prop_assert_eq!(Encoder::encoded_len(&local), encode(&local).len() as u64);
    }

    #[test]
    fn encoded_len_adds_up_over_pieces(local in text(), positions in vec(any::<usize>(), 0..8)) {
        let sum: u64 = cut(&local, &positions).iter().map(|piece| Encoder::encoded_len(piece)).sum();
        prop_assert_eq!(sum, Encoder::encoded_len(&local));
    }

    #[test]
    fn encode_in_pieces_matches_one_shot(
        local in text(),
        chunks in vec(1usize..=9, 1..8),
        outputs in vec(1usize..=9, 1..8),
    ) {
        prop_assert_eq!(encode_in_pieces(&local, &chunks, &outputs), encode(&local));
    }

    #[test]
    fn encode_into_one_byte_buffers_matches_one_shot(local in text()) {
        prop_assert_eq!(encode_in_pieces(&local, &[usize::MAX], &[1]), encode(&local));
    }

    #[test]
    fn encode_to_vec_in_pieces_matches_one_shot(
        local in text(),
        positions in vec(any::<usize>(), 0..8),
    ) {
        let mut encoder = Encoder::new();
        let mut out = Vec::new();
        for piece in cut(&local, &positions) {
            encoder.encode_to_vec(piece, &mut out);
        }
        prop_assert_eq!(encoder.pending(), 0);
        prop_assert_eq!(out, encode(&local));
    }

    #[test]
    fn encode_and_encode_to_vec_mix(
        local in text(),
        positions in vec(any::<usize>(), 0..8),
        output in 1usize..=5,
    ) {
        // Alternate the two, leaving a byte pending for encode_to_vec when it happens.
        let mut encoder = Encoder::new();
        let mut out = Vec::new();
        let mut buf = vec![0; output];
        for (i, piece) in cut(&local, &positions).into_iter().enumerate() {
            if i % 2 == 0 {
                encoder.encode_to_vec(piece, &mut out);
                continue;
            }
            let mut rest = piece;
            while !rest.is_empty() {
                let (consumed, written) = encoder.encode(rest, &mut buf);
                out.extend_from_slice(&buf[..written]);
                rest = &rest[consumed..];
            }
        }
        let written = encoder.flush(&mut buf);
        out.extend_from_slice(&buf[..written]);
        prop_assert_eq!(out, encode(&local));
    }

    #[test]
    fn decode_in_blocks_matches_one_shot(wire in text(), positions in vec(any::<usize>(), 0..8)) {
        // Arbitrary bytes, malformed ones included: the text and the count must not depend
        // on where the blocks end.
        prop_assert_eq!(decode_blocks(&cut(&wire, &positions)), decode(&wire));
    }

    #[test]
    fn decode_with_a_cr_ending_every_block(local in text()) {
        let wire = encode(&local);
        let blocks: Vec<&[u8]> = wire.split_inclusive(|&byte| byte == b'\r').collect();
        prop_assert_eq!(decode_blocks(&blocks), (local, 0));
    }

    #[test]
    fn transfer_in_fixed_size_blocks(local in text(), blksize in 1usize..=16) {
        // What a TFTP transfer does: the sender fills blocks of `blksize` encoded bytes, the
        // receiver decodes them one by one.
        let mut encoder = Encoder::new();
        let mut block = vec![0; blksize];
        let mut blocks = Vec::new();
        let mut rest = &local[..];
        loop {
            let (consumed, mut len) = encoder.encode(rest, &mut block);
            rest = &rest[consumed..];
            len += encoder.flush(&mut block[len..]);
            blocks.push(block[..len].to_vec());
            if len < blksize {
                break;
            }
        }
        prop_assert!(rest.is_empty());
        prop_assert_eq!(encoder.pending(), 0);
        let total: usize = blocks.iter().map(Vec::len).sum();
        prop_assert_eq!(total as u64, Encoder::encoded_len(&local));
        let blocks: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
        prop_assert_eq!(decode_blocks(&blocks), (local, 0));
    }
}
