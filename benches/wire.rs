//! Parsing and emitting uTP packets: a full-size `ST_DATA` (1400-byte payload) and an
//! `ST_STATE` with an 8-byte selective ACK, with throughput in bytes of packet.
//!
//! `cargo bench -p utp-benches --bench wire` measures; `cargo test -p utp-benches --benches`
//! runs each benchmark once as a test.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use utp_proto::wire::utp::{Extension, Header, Packet, PacketType, SelectiveAck, emit};

/// Payload of the data packet: what fits the 1435-byte libutp budget with room to spare.
const DATA_PAYLOAD_LEN: usize = 1400;

fn header(packet_type: PacketType) -> Header {
    Header {
        packet_type,
        connection_id: 10049,
        timestamp_us: 6_195_294,
        timestamp_difference_us: 916_973_699,
        wnd_size: 1_048_576,
        seq_nr: 16807,
        ack_nr: 11885,
    }
}

fn bench_case(
    c: &mut Criterion,
    name: &str,
    header: Header,
    extensions: &[Extension<'_>],
    payload: &[u8],
) {
    let mut bytes = Vec::new();
    emit(&header, extensions, payload, &mut bytes);

    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("parse", |b| {
        b.iter(|| {
            let packet = Packet::parse(black_box(&bytes)).expect("the benchmark's packet parses");
            // Touch what a connection reads, so the work cannot be skipped.
            black_box((packet.header().seq_nr, packet.selective_ack(), packet.payload().len()))
        });
    });
    let mut buf = Vec::with_capacity(bytes.len());
    group.bench_function("emit", |b| {
        b.iter(|| {
            emit(black_box(&header), black_box(extensions), black_box(payload), &mut buf);
            black_box(buf.len())
        });
    });
    group.finish();
}

fn wire(c: &mut Criterion) {
    let payload: Vec<u8> = (0..DATA_PAYLOAD_LEN).map(|i| i as u8).collect();
    bench_case(c, "utp_data_1400", header(PacketType::Data), &[], &payload);

    let mask = [0b1010_1010, 0, 0xff, 0, 1, 0, 0, 0x80];
    let sack = [Extension::SelectiveAck(SelectiveAck::new(&mask))];
    bench_case(c, "utp_state_sack8", header(PacketType::State), &sack, &[]);
}

criterion_group!(benches, wire);
criterion_main!(benches);
