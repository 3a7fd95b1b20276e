//! The simulated link delays, duplicates, reorders, corrupts and size-limits datagrams
//! exactly as configured.

use core::time::Duration;

use utp_proto::sim::{Link, LinkConfig};
use utp_proto::{Instant, Rng};

/// One datagram as the receiver saw it.
struct Arrival {
    id: u32,
    sent: Instant,
    at: Instant,
    data: Vec<u8>,
}

/// The bytes of datagram `id`: its index, then filler derived from it.
fn payload(id: u32, len: usize) -> Vec<u8> {
    let mut data = vec![0; len.max(4)];
    data[..4].copy_from_slice(&id.to_be_bytes());
    Rng::new(u64::from(id)).fill(&mut data[4..]);
    data
}

/// Sends `count` datagrams of `len` bytes, one every `spacing`, and returns every arrival
/// in delivery order (draining the link as time passes, like a receiver would).
fn run(link: &mut Link, count: u32, len: usize, spacing: Duration) -> Vec<Arrival> {
    let mut arrivals = Vec::new();
    let mut buf = Vec::new();
    let mut collect = |link: &mut Link, until: Instant, arrivals: &mut Vec<Arrival>| {
        while let Some(at) = link.recv(until, &mut buf) {
            let id = u32::from_be_bytes(buf[..4].try_into().unwrap());
            let sent = Instant::ZERO + spacing * id;
            arrivals.push(Arrival { id, sent, at, data: buf.clone() });
        }
    };
    for id in 0..count {
        let now = Instant::ZERO + spacing * id;
        collect(link, now, &mut arrivals);
        link.send(now, &payload(id, len));
    }
    collect(link, Instant::MAX, &mut arrivals);
    arrivals
}

#[test]
fn latency_is_exact_without_jitter() {
    let latency = Duration::from_micros(37_123);
    let mut link = Link::new(LinkConfig::default().with_latency(latency), 1);
    link.send(Instant::from_millis(5), b"early");
    assert_eq!(link.next_arrival(), Some(Instant::from_millis(5) + latency));
    let mut buf = Vec::new();
    assert_eq!(
        link.recv(Instant::from_millis(5) + latency - Duration::from_micros(1), &mut buf),
        None
    );
    assert_eq!(link.in_flight(), 1);
    assert_eq!(link.recv(Instant::MAX, &mut buf), Some(Instant::from_millis(5) + latency));
    assert_eq!(link.in_flight(), 0);

    let mut link = Link::new(LinkConfig::default().with_latency(latency), 1);
    let arrivals = run(&mut link, 1_000, 100, Duration::from_micros(300));
    assert_eq!(arrivals.len(), 1_000);
    for (i, a) in arrivals.iter().enumerate() {
        assert_eq!(a.id as usize, i, "in order");
        assert_eq!(a.at - a.sent, latency);
    }
}

#[test]
fn jitter_spreads_delays_over_the_configured_range() {
    let latency = Duration::from_millis(20);
    let jitter = Duration::from_millis(10);
    let config = LinkConfig::default().with_latency(latency).with_jitter(jitter);
    let mut link = Link::new(config, 2);
    // Spaced further apart than the jitter, so no datagram waits for an earlier one.
    let arrivals = run(&mut link, 10_000, 50, Duration::from_millis(11));
    assert_eq!(arrivals.len(), 10_000);
    let mut buckets = [0u32; 10];
    for a in &arrivals {
        let delay = a.at - a.sent;
        assert!(delay >= latency && delay <= latency + jitter, "delay {delay:?}");
        let bucket = ((delay - latency).as_micros() * 10 / (jitter.as_micros() + 1)) as usize;
        buckets[bucket] += 1;
    }
    for (i, count) in buckets.iter().enumerate() {
        assert!((800..1_200).contains(count), "bucket {i} has {count} of 10000: {buckets:?}");
    }
}

#[test]
fn jitter_alone_never_reorders() {
    let config = LinkConfig::default()
        .with_latency(Duration::from_millis(20))
        .with_jitter(Duration::from_millis(10));
    let mut link = Link::new(config, 3);
    // Spaced much closer than the jitter.
    let arrivals = run(&mut link, 10_000, 50, Duration::from_micros(500));
    assert!(arrivals.windows(2).all(|w| w[0].id < w[1].id && w[0].at <= w[1].at));
    let max = Duration::from_millis(30);
    assert!(arrivals.iter().all(|a| a.at - a.sent <= max));
    assert_eq!(link.stats().reordered, 0);
}

#[test]
fn duplication_rate_and_identical_copies() {
    let mut link = Link::new(LinkConfig::default().with_duplicate(0.1), 4);
    let arrivals = run(&mut link, 100_000, 40, Duration::from_micros(100));
    let stats = link.stats();
    let rate = stats.duplicated as f64 / 100_000.0;
    assert!((rate - 0.1).abs() < 0.01, "duplication rate {rate}");
    assert_eq!(arrivals.len() as u64, 100_000 + stats.duplicated);
    let mut copies = vec![0u32; 100_000];
    for a in &arrivals {
        copies[a.id as usize] += 1;
        assert_eq!(a.data, payload(a.id, 40), "copy of {} differs", a.id);
    }
    let twice = copies.iter().filter(|c| **c == 2).count() as u64;
    assert_eq!(twice, stats.duplicated);
    assert!(copies.iter().all(|c| (1..=2).contains(c)));
}

#[test]
fn reordering_rate_matches_configuration() {
    let config = LinkConfig::default().with_reorder(0.05, Duration::from_millis(10));
    let mut link = Link::new(config, 5);
    let count = 50_000;
    let arrivals = run(&mut link, count, 20, Duration::from_millis(1));
    assert_eq!(arrivals.len(), count as usize);
    // A datagram arrives after a later-sent one exactly when some higher id came first.
    let mut highest = None;
    let mut late = 0u64;
    for a in &arrivals {
        if highest.is_some_and(|h| a.id < h) {
            late += 1;
            assert_eq!(a.at - a.sent, Duration::from_millis(20), "held back by the delay");
        }
        highest = highest.max(Some(a.id));
    }
    let rate = late as f64 / f64::from(count);
    assert!((rate - 0.05).abs() < 0.005, "reorder rate {rate}");
    assert_eq!(late, link.stats().reordered);
}

#[test]
fn corruption_flips_exactly_one_bit() {
    let mut link = Link::new(LinkConfig::default().with_corrupt(0.1), 6);
    let arrivals = run(&mut link, 100_000, 32, Duration::from_micros(100));
    assert_eq!(arrivals.len(), 100_000);
    let mut corrupted = 0u64;
    let mut flipped_bits = [0u32; 32 * 8];
    for (i, a) in arrivals.iter().enumerate() {
        // The index may be corrupted too, but nothing reorders: the i-th arrival is the
        // i-th datagram sent.
        assert_eq!(a.at, Instant::from_micros(i as u64 * 100) + Duration::from_millis(10));
        let original = payload(i as u32, 32);
        let diff: Vec<(usize, u8)> = a
            .data
            .iter()
            .zip(&original)
            .enumerate()
            .filter(|(_, (x, y))| x != y)
            .map(|(i, (x, y))| (i, x ^ y))
            .collect();
        match diff.as_slice() {
            [] => {}
            [(byte, bits)] => {
                assert_eq!(bits.count_ones(), 1, "one bit flipped in {:?}", a.data);
                flipped_bits[byte * 8 + bits.trailing_zeros() as usize] += 1;
                corrupted += 1;
            }
            more => panic!("several bytes differ: {more:?}"),
        }
    }
    assert_eq!(corrupted, link.stats().corrupted);
    let rate = corrupted as f64 / 100_000.0;
    assert!((rate - 0.1).abs() < 0.01, "corruption rate {rate}");
    // Every bit position gets hit: ~39 each.
    assert!(flipped_bits.iter().all(|n| *n > 10), "{flipped_bits:?}");
}

#[test]
fn mtu_drops_oversized_datagrams_only() {
    let mut link = Link::new(LinkConfig::default().with_mtu(1200), 7);
    link.send(Instant::ZERO, &[0; 1201]);
    link.send(Instant::ZERO, &[1; 1200]);
    link.send(Instant::ZERO, &[]);
    link.send(Instant::ZERO, &[2; 65_000]);
    let stats = link.stats();
    assert_eq!(stats.dropped_mtu, 2);
    assert_eq!(link.in_flight(), 2);
    let mut buf = Vec::new();
    assert!(link.recv(Instant::MAX, &mut buf).is_some());
    assert_eq!(buf, [1; 1200]);
    assert!(link.recv(Instant::MAX, &mut buf).is_some());
    assert!(buf.is_empty());
    assert_eq!(link.recv(Instant::MAX, &mut buf), None);

    // The default carries the largest UDP payload.
    let mut link = Link::new(LinkConfig::default(), 8);
    link.send(Instant::ZERO, &[3; 65_507]);
    link.send(Instant::ZERO, &[3; 65_508]);
    assert_eq!((link.in_flight(), link.stats().dropped_mtu), (1, 1));
}

#[test]
#[should_panic(expected = "loss must be a probability")]
fn invalid_configuration_is_refused() {
    let _ = Link::new(LinkConfig::default().with_loss(-0.1), 9);
}
