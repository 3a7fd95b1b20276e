//! Entry points for the fuzz targets in `fuzz/`. Not a stable API.
//!
//! Each entry point takes the fuzzer's bytes and panics only when it finds a bug. The fuzz
//! targets are one-line calls into these functions, and [`TARGETS`] lists them under the
//! name of their fuzz target, which is also the name of their corpus directory in
//! `fuzz/corpus/`, so `tests/fuzz_corpus.rs` replays the committed corpus on stable Rust.

use alloc::vec::Vec;

use crate::wire::utp::{Extension, HEADER_LEN, Packet, emit};

/// Prints to stderr with `std`; without it, only checks the format.
macro_rules! trace {
    ($($arg:tt)*) => {{
        #[cfg(feature = "std")]
        std::eprintln!($($arg)*);
        #[cfg(not(feature = "std"))]
        let _ = format_args!($($arg)*);
    }};
}

mod clock;
mod endpoint_pair;
mod input;
mod queue;
mod rudp_pair;
mod tftp_packet;
mod tftp_transfer;

/// Whether the environment variable `var` asks a harness to trace what it does (always
/// `false` without `std`).
fn tracing(var: &str) -> bool {
    #[cfg(feature = "std")]
    return std::env::var_os(var).is_some();
    #[cfg(not(feature = "std"))]
    return {
        let _ = var;
        false
    };
}

/// A fuzz entry point: takes the fuzzer's bytes, panics only on a bug.
pub type Target = fn(&[u8]);

/// Every fuzz entry point, by the name of its fuzz target and corpus directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("utp_packet", utp_packet),
    ("utp_endpoint", utp_endpoint),
    ("tftp_packet", tftp_packet),
    ("tftp_transfer", tftp_transfer),
    ("rudp_packet", rudp_packet),
    ("rudp_endpoint", rudp_endpoint),
];

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

/// Runs a sequence of operations decoded from `data` on two uTP endpoints joined by
/// in-memory queues the input controls: opening, accepting and refusing connections,
/// writing, reading, closing and resetting them, advancing time, and delivering, dropping,
/// duplicating, reordering, corrupting or forging datagrams.
///
/// The input format and every invariant checked are described in
/// `src/fuzzing/endpoint_pair.rs`.
///
/// # Panics
///
/// When an endpoint panics or breaks a promise of its API: `poll_transmit` that never runs
/// dry, a timer that keeps asking for the same instant, events for unknown or closed
/// handles, a closed handle that does not say `Closed`, or a reader receiving bytes that
/// are not a prefix of what its writer wrote.
pub fn utp_endpoint(data: &[u8]) {
    endpoint_pair::run(data);
}

/// Parses `data` as a TFTP packet; when it parses, re-emits it and checks the round trip, the
/// option helpers, the filename's confinement (`tftp::path`) and the netascii conversion of
/// a DATA payload.
///
/// Every invariant checked is described in `src/fuzzing/tftp_packet.rs`.
///
/// # Panics
///
/// When the codec or a helper breaks one of its promises.
pub fn tftp_packet(data: &[u8]) {
    tftp_packet::run(data);
}

/// Runs one TFTP transfer (a client's read or write, or a server's through `Server` and
/// `Incoming::accept`) against a peer, a clock and an application that `data` plays:
/// well-formed or raw datagrams from the peer or from strangers, time advances, writes,
/// reads, `finish` and `abort`.
///
/// The input format and every invariant checked are described in
/// `src/fuzzing/tftp_transfer.rs`.
///
/// # Panics
///
/// When the transfer panics or breaks a promise: `poll_transmit` that never runs dry, a
/// datagram that does not parse or goes to the wrong address, a busy or missing timer, events
/// out of order, DATA that is not what was written, or reads that are not what arrived.
pub fn tftp_transfer(data: &[u8]) {
    tftp_transfer::run(data);
}

/// Parses `data` as a rudp datagram; when it parses, re-emits it and checks that the bytes
/// parse back to an equal datagram, that `emitted_len` is the emitted length, and that the
/// emitted bytes equal the input except for a CONNECT's padding (emitted as exactly 64
/// bytes of zeros).
///
/// # Panics
///
/// When the codec breaks one of those promises.
pub fn rudp_packet(data: &[u8]) {
    use crate::wire::rudp::{Datagram, MIN_CONNECT_LEN, Packet as RudpPacket};

    let Ok(datagram) = Datagram::parse(data) else {
        return;
    };
    let mut out = Vec::new();
    datagram.emit(&mut out);
    assert_eq!(out.len(), datagram.emitted_len(), "emitted_len disagrees with emit");
    let again = Datagram::parse(&out).expect("an emitted datagram parses");
    assert_eq!(again, datagram, "the round trip changed the datagram");
    if matches!(datagram.packet, RudpPacket::Connect { .. }) {
        assert_eq!(out.len(), MIN_CONNECT_LEN, "CONNECT is emitted at the minimum length");
    } else {
        assert_eq!(out, data, "the wire form is canonical");
    }
}

/// Runs a sequence of operations decoded from `data` on two rudp endpoints joined by
/// in-memory queues the input controls: connecting, accepting and refusing, sending and
/// receiving messages and direct datagrams, closing with valid and invalid codes and
/// reasons, advancing and jumping time, rotating cookie keys, and delivering, dropping,
/// duplicating, reordering, corrupting, injecting or forging datagrams.
///
/// The input format and every invariant checked are described in
/// `src/fuzzing/rudp_pair.rs`.
///
/// # Panics
///
/// When an endpoint panics or breaks a promise of its API: `poll_transmit` that never runs
/// dry, a timer that keeps asking for the same instant, events for unknown or closed
/// handles, errors other than the documented ones, a closed handle that does not say
/// `Closed`, messages received that are not exactly those sent (in order, once, byte for
/// byte), a lost wake-up, memory beyond the configured bounds, or a transfer that stalls on
/// a perfect network.
pub fn rudp_endpoint(data: &[u8]) {
    rudp_pair::run(data);
}
