//! Test data that needs no copy to verify: byte `i` of stream `seed` is a function of
//! `(seed, i)`, so a receiver checks every chunk where it lands and any loss, duplication,
//! reordering or misalignment shows as a mismatch at a known offset.

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::harness::ok;

/// The chunk size of pattern reads and writes.
const CHUNK: usize = 64 * 1024;

/// Eight bytes of stream `seed` (SplitMix64 of the seed and the word's index).
fn word(seed: u64, index: u64) -> [u8; 8] {
    let mut z = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index;
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)).to_le_bytes()
}

/// Fills `buf` with stream `seed`'s bytes from `offset` on.
pub(crate) fn fill(seed: u64, offset: u64, buf: &mut [u8]) {
    let mut pos = offset;
    let mut done = 0;
    while done < buf.len() {
        let w = word(seed, pos / 8);
        let start = (pos % 8) as usize;
        let n = (8 - start).min(buf.len() - done);
        buf[done..done + n].copy_from_slice(&w[start..start + n]);
        done += n;
        pos += n as u64;
    }
}

/// Checks that `buf` holds stream `seed`'s bytes from `offset` on; panics naming the first
/// wrong offset.
#[track_caller]
pub(crate) fn check(seed: u64, offset: u64, buf: &[u8], what: &str) {
    let mut expected = [0u8; 4096];
    for (i, got) in buf.chunks(expected.len()).enumerate() {
        let at = offset + (i * expected.len()) as u64;
        let expected = &mut expected[..got.len()];
        fill(seed, at, expected);
        if let Some(bad) = got.iter().zip(expected.iter()).position(|(a, b)| a != b) {
            panic!("{what}: received data differs from what was sent at byte {}", at + bad as u64);
        }
    }
}

/// Writes `len` bytes of stream `seed`.
pub(crate) async fn write(stream: &mut (impl AsyncWrite + Unpin), seed: u64, len: u64, what: &str) {
    let mut buf = vec![0; CHUNK];
    let mut offset = 0;
    while offset < len {
        let n = (len - offset).min(CHUNK as u64) as usize;
        fill(seed, offset, &mut buf[..n]);
        ok(stream.write_all(&buf[..n]).await, what);
        offset += n as u64;
    }
}

/// Reads to end-of-stream, checking every byte against stream `seed`; returns how many
/// bytes arrived.
pub(crate) async fn read_to_end(
    stream: &mut (impl AsyncRead + Unpin),
    seed: u64,
    what: &str,
) -> u64 {
    let mut buf = vec![0; CHUNK];
    let mut offset = 0;
    loop {
        let n = ok(stream.read(&mut buf).await, what);
        if n == 0 {
            return offset;
        }
        check(seed, offset, &buf[..n], what);
        offset += n as u64;
    }
}

/// Reads exactly `len` bytes, checking them against stream `seed`.
pub(crate) async fn read_prefix(
    stream: &mut (impl AsyncRead + Unpin),
    seed: u64,
    len: u64,
    what: &str,
) {
    let mut buf = vec![0; CHUNK];
    let mut offset = 0;
    while offset < len {
        let want = (len - offset).min(CHUNK as u64) as usize;
        let n = ok(stream.read(&mut buf[..want]).await, what);
        assert!(n > 0, "{what}: the stream ended after {offset} of {len} bytes");
        check(seed, offset, &buf[..n], what);
        offset += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_split_gives_the_same_bytes() {
        let mut whole = vec![0; 100];
        fill(7, 3, &mut whole);
        let mut parts = vec![0; 100];
        let (a, b) = parts.split_at_mut(13);
        fill(7, 3, a);
        fill(7, 16, b);
        assert_eq!(whole, parts);
        check(7, 3, &whole, "whole");
    }

    #[test]
    #[should_panic(expected = "received data differs")]
    fn a_shift_is_caught() {
        let mut buf = vec![0; 64];
        fill(1, 1, &mut buf);
        check(1, 0, &buf, "shifted");
    }

    #[test]
    fn streams_differ() {
        let (mut a, mut b) = ([0; 32], [0; 32]);
        fill(1, 0, &mut a);
        fill(2, 0, &mut b);
        assert_ne!(a, b);
    }
}
