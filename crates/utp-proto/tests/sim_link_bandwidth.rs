//! The simulated link's bottleneck: the configured rate, a finite tail-drop queue, and
//! queueing delay that grows with the queue.

use core::time::Duration;

use utp_proto::Instant;
use utp_proto::sim::{Link, LinkConfig};

const LATENCY: Duration = Duration::from_millis(10);

fn bottleneck(bandwidth: u64, queue: usize) -> Link {
    let config = LinkConfig::default()
        .with_latency(LATENCY)
        .with_bandwidth(bandwidth)
        .with_queue_capacity(queue);
    Link::new(config, 1)
}

/// Every arrival so far: (arrival time, the datagram's index).
fn drain(link: &mut Link, until: Instant, out: &mut Vec<(Instant, u32)>) {
    let mut buf = Vec::new();
    while let Some(at) = link.recv(until, &mut buf) {
        out.push((at, u32::from_be_bytes(buf[..4].try_into().unwrap())));
    }
}

fn datagram(id: u32, len: usize) -> Vec<u8> {
    let mut d = vec![0; len];
    d[..4].copy_from_slice(&id.to_be_bytes());
    d
}

#[test]
fn saturating_sender_gets_the_configured_rate() {
    // 700 kB/s is not a whole number of microseconds per 1200-byte datagram (1714.28...):
    // the rate must not drift with rounding.
    let bandwidth = 700_000;
    let len = 1200;
    let mut link = bottleneck(bandwidth, 50);
    let mut arrivals = Vec::new();
    let mut now = Instant::ZERO;
    // Offer 1.2 MB/s for 20 s.
    for id in 0..20_000 {
        link.send(now, &datagram(id, len));
        drain(&mut link, now, &mut arrivals);
        now += Duration::from_millis(1);
    }
    drain(&mut link, Instant::MAX, &mut arrivals);
    let stats = link.stats();
    assert!(stats.dropped_queue > 8_000, "{stats:?}");
    assert_eq!(stats.sent, stats.delivered + stats.dropped_queue);
    assert!(arrivals.windows(2).all(|w| w[0].1 < w[1].1), "FIFO");

    let (first, last) = (arrivals[0].0, arrivals[arrivals.len() - 1].0);
    let bytes_after_first = (arrivals.len() - 1) * len;
    let rate = bytes_after_first as f64 / (last - first).as_secs_f64();
    let error = (rate - bandwidth as f64).abs() / bandwidth as f64;
    assert!(error < 0.01, "delivery rate {rate:.0} B/s, configured {bandwidth}");
    assert_eq!(stats.bytes_delivered, (arrivals.len() * len) as u64);
}

#[test]
fn full_queue_tail_drops_and_counts() {
    // 1000-byte datagrams at 100 kB/s: 10 ms each; the bottleneck holds 10.
    let mut link = bottleneck(100_000, 10);
    for id in 0..15 {
        link.send(Instant::ZERO, &datagram(id, 1000));
    }
    assert_eq!(link.stats().dropped_queue, 5);
    assert_eq!(link.in_flight(), 10);

    // By 35 ms three have left the bottleneck: room for three more of the next five.
    let at = Instant::from_millis(35);
    for id in 100..105 {
        link.send(at, &datagram(id, 1000));
    }
    assert_eq!(link.stats().dropped_queue, 7);

    let mut arrivals = Vec::new();
    drain(&mut link, Instant::MAX, &mut arrivals);
    let ids: Vec<u32> = arrivals.iter().map(|a| a.1).collect();
    assert_eq!(ids, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 100, 101, 102], "the tail was dropped");
    // Back to back: one every 10 ms, the last accepted one after a full queue's worth.
    for (i, (at, _)) in arrivals.iter().enumerate() {
        assert_eq!(*at, Instant::ZERO + LATENCY + Duration::from_millis(10) * (i as u32 + 1));
    }
    // The last of the first burst waited for a full queue's worth: capacity × size / rate.
    assert_eq!(arrivals[9].0 - Instant::ZERO, LATENCY + Duration::from_millis(10 * 10));
    // The last of the second burst found the one in service half done: 5 + 9 × 10 ms.
    assert_eq!(arrivals[12].0 - at, LATENCY + Duration::from_millis(95));
}

#[test]
fn queueing_delay_grows_with_occupancy_up_to_capacity() {
    // 500-byte datagrams at 250 kB/s: 2 ms each; offered every 1 ms (twice the rate).
    let capacity = 20;
    let mut link = bottleneck(250_000, capacity);
    let mut delays = Vec::new();
    let mut arrivals = Vec::new();
    for id in 0..200u32 {
        let now = Instant::from_millis(u64::from(id));
        let before = link.stats().dropped_queue;
        link.send(now, &datagram(id, 500));
        if link.stats().dropped_queue == before {
            delays.push((id, now));
        }
        drain(&mut link, now, &mut arrivals);
    }
    drain(&mut link, Instant::MAX, &mut arrivals);
    assert_eq!(arrivals.len(), delays.len());
    let delays: Vec<Duration> = arrivals
        .iter()
        .zip(&delays)
        .map(|((at, id), (sent_id, sent))| {
            assert_eq!(id, sent_id);
            *at - *sent
        })
        .collect();

    let transmission = Duration::from_millis(2);
    assert_eq!(delays[0], LATENCY + transmission, "an empty queue adds one transmission");
    // While the queue fills (it gains one datagram every 2 ms), each accepted datagram
    // waits 1 ms longer than the one before, until the queue is full.
    let full = LATENCY + transmission * capacity as u32;
    let filled = delays.iter().position(|d| *d == full).expect("the queue fills up");
    assert_eq!(filled, 2 * (capacity - 1), "{delays:?}");
    for i in 0..filled {
        assert_eq!(delays[i + 1] - delays[i], Duration::from_millis(1), "at {i}: {delays:?}");
    }
    // Then the delay plateaus at a full queue's worth of transmissions.
    assert!(delays[filled..].iter().all(|d| *d <= full && *d > full - transmission), "{delays:?}");
    assert!(link.stats().dropped_queue > 50);
}

#[test]
fn queue_capacity_is_ignored_without_a_bandwidth_limit() {
    let config = LinkConfig::default().with_queue_capacity(1);
    let mut link = Link::new(config, 2);
    for id in 0..1000 {
        link.send(Instant::ZERO, &datagram(id, 1000));
    }
    assert_eq!(link.stats().dropped_queue, 0);
    assert_eq!(link.next_arrival(), Some(Instant::ZERO + Duration::from_millis(10)));
}

#[test]
fn idle_bottleneck_starts_afresh() {
    let mut link = bottleneck(1_000, 2);
    link.send(Instant::ZERO, &datagram(0, 100)); // 100 ms on the wire
    link.send(Instant::from_millis(10_000), &datagram(1, 100));
    let mut arrivals = Vec::new();
    drain(&mut link, Instant::MAX, &mut arrivals);
    assert_eq!(arrivals[0].0, Instant::from_millis(110));
    assert_eq!(arrivals[1].0, Instant::from_millis(10_110));
}
