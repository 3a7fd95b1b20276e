//! Entry points for the fuzz targets in `fuzz/`. Not a stable API.
//!
//! Each entry point takes the fuzzer's bytes and panics only when it finds a bug. The fuzz
//! targets are one-line calls into these functions, and [`TARGETS`] lists them under the
//! name of their fuzz target, which is also the name of their corpus directory in
//! `fuzz/corpus/`, so `tests/fuzz_corpus.rs` replays the committed corpus on stable Rust.

use alloc::vec::Vec;

use crate::wire::utp::{Extension, HEADER_LEN, Packet, emit};

/// A fuzz entry point: takes the fuzzer's bytes, panics only on a bug.
pub type Target = fn(&[u8]);

/// Every fuzz entry point, by the name of its fuzz target and corpus directory.
pub const TARGETS: &[(&str, Target)] = &[("utp_packet", utp_packet)];

/// Parses `data` as a uTP packet; when it parses, checks every accessor, re-emits it and
/// checks that the bytes are identical and parse to the same packet.
///
/// # Panics
///
/// When the codec breaks one of its promises: that is the bug the fuzzer is looking for.
pub fn utp_packet(data: &[u8]) {
    let Ok(packet) = Packet::parse(data) else {
        return;
    };
    let header = packet.header();
    let extensions: Vec<Extension<'_>> = packet.extensions().collect();
    for extension in &extensions {
        if let Extension::SelectiveAck(sack) = extension {
            let acked = sack.acked_seq_nrs(header.ack_nr).count();
            assert_eq!(acked, sack.count_acked(), "acked_seq_nrs disagrees with the bitmask");
        }
    }
    assert_eq!(
        HEADER_LEN + packet.extension_bytes().len() + packet.payload().len(),
        data.len(),
        "header, chain and payload do not add up to the datagram"
    );

    let mut buf = Vec::new();
    emit(header, &extensions, packet.payload(), &mut buf);
    assert_eq!(buf, data, "re-emitting a parsed packet changed its bytes");
    // The bytes are identical, so they parse again; a failure here is a bug too.
    let again = Packet::parse(&buf).expect("re-emitted packet does not parse");
    assert_eq!(again, packet, "re-emitted packet parses differently");
}
