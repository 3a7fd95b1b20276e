//! Criterion benchmarks for the workspace; see the `[[bench]]` targets in `Cargo.toml` and
//! `docs/performance.md` for the latest figures and the commands that produced them.

use utp_proto::{Instant, Machine};

/// Whether criterion measures (`cargo bench`) rather than runs each benchmark once as a
/// test (`cargo test --benches`).
pub fn measuring() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

/// Hands every datagram `from` has to send at `sent` to `to`, arriving at `arrives` from
/// `name` (no network in between: the in-memory benches measure the protocol alone).
/// Returns how many datagrams went.
pub fn ship<A: Machine, B: Machine<Peer = A::Peer>>(
    from: &mut A,
    name: &A::Peer,
    to: &mut B,
    sent: Instant,
    arrives: Instant,
    buf: &mut Vec<u8>,
) -> u64 {
    let mut datagrams = 0;
    while let Some(t) = from.poll_transmit(sent, buf) {
        datagrams += 1;
        to.handle_datagram(arrives, name.clone(), &buf[..t.size]);
    }
    datagrams
}
