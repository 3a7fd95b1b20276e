//! The simulated link loses what it is told to, randomly or in bursts, and replays exactly
//! from its seed.

use core::time::Duration;

use utp_proto::Instant;
use utp_proto::sim::{GilbertElliott, Link, LinkConfig};

/// Sends `count` datagrams carrying their index, one per millisecond, and returns for each
/// whether it was lost (no copy ever arrived).
fn loss_pattern(config: LinkConfig, seed: u64, count: u32) -> Vec<bool> {
    let mut link = Link::new(config, seed);
    let mut arrived = vec![false; count as usize];
    let mut buf = Vec::new();
    let mut now = Instant::ZERO;
    for i in 0..count {
        link.send(now, &i.to_be_bytes());
        while link.recv(now, &mut buf).is_some() {
            arrived[u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize] = true;
        }
        now += Duration::from_millis(1);
    }
    while link.recv(Instant::MAX, &mut buf).is_some() {
        arrived[u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize] = true;
    }
    let stats = link.stats();
    let lost = arrived.iter().filter(|a| !**a).count() as u64;
    assert_eq!(stats.sent, u64::from(count));
    assert_eq!(stats.dropped(), lost, "{stats:?}");
    assert_eq!(stats.delivered, u64::from(count) - lost);
    arrived.into_iter().map(|a| !a).collect()
}

/// The mean length of runs of consecutive losses.
fn mean_burst(lost: &[bool]) -> f64 {
    let (mut runs, mut total, mut current) = (0u64, 0u64, 0u64);
    for &l in lost.iter().chain([&false]) {
        if l {
            current += 1;
        } else if current > 0 {
            runs += 1;
            total += current;
            current = 0;
        }
    }
    total as f64 / runs as f64
}

fn rate(lost: &[bool]) -> f64 {
    lost.iter().filter(|l| **l).count() as f64 / lost.len() as f64
}

#[test]
fn ten_percent_random_loss_drops_ten_percent() {
    let config = LinkConfig::default().with_loss(0.10);
    let lost = loss_pattern(config, 1, 100_000);
    let dropped = lost.iter().filter(|l| **l).count();
    assert!((9_000..=11_000).contains(&dropped), "dropped {dropped} of 100000");
    let mut link = Link::new(config, 1);
    for _ in 0..100_000 {
        link.send(Instant::ZERO, b"x");
    }
    let stats = link.stats();
    assert_eq!(stats.lost_random as usize, dropped, "same seed, same losses");
    assert_eq!(stats.lost_burst, 0);
}

#[test]
fn zero_loss_drops_nothing() {
    let lost = loss_pattern(LinkConfig::default(), 2, 100_000);
    assert!(lost.iter().all(|l| !l));
}

#[test]
fn total_loss_drops_everything() {
    let lost = loss_pattern(LinkConfig::default().with_loss(1.0), 3, 1_000);
    assert!(lost.iter().all(|l| *l));
}

#[test]
fn gilbert_elliott_matches_average_and_burst_length() {
    let model = GilbertElliott::from_average(0.05, 4.0);
    let lost = loss_pattern(LinkConfig::default().with_burst_loss(model), 4, 200_000);
    let average = rate(&lost);
    assert!((average - 0.05).abs() < 0.005, "average loss {average}, configured 0.05");
    let burst = mean_burst(&lost);
    assert!((burst - 4.0).abs() < 0.3, "mean burst {burst}, configured 4");

    // Independent loss at the same rate has runs of 1 / (1 - 0.05) ≈ 1.05.
    let random = loss_pattern(LinkConfig::default().with_loss(0.05), 4, 200_000);
    let random_burst = mean_burst(&random);
    assert!(random_burst < 1.2, "random loss mean run {random_burst}");
    assert!(burst > 3.0 * random_burst);
}

#[test]
fn gilbert_elliott_losses_are_counted_as_burst_losses() {
    let model = GilbertElliott::from_average(0.2, 2.0);
    let mut link = Link::new(LinkConfig::default().with_burst_loss(model), 5);
    for _ in 0..10_000 {
        link.send(Instant::ZERO, b"x");
    }
    let stats = link.stats();
    assert_eq!(stats.lost_random, 0);
    assert!((1_500..2_500).contains(&stats.lost_burst), "{stats:?}");
}

#[test]
fn gilbert_elliott_with_lossy_good_state_and_leaky_bad_state() {
    // Good state loses 1%, bad state 50%; a quarter of the time is bad.
    let model = GilbertElliott {
        p_good_to_bad: 0.01,
        p_bad_to_good: 0.03,
        loss_in_good: 0.01,
        loss_in_bad: 0.5,
    };
    let expected = 0.75 * 0.01 + 0.25 * 0.5;
    assert!((model.average_loss() - expected).abs() < 1e-12);
    let lost = loss_pattern(LinkConfig::default().with_burst_loss(model), 6, 200_000);
    let average = rate(&lost);
    assert!((average - expected).abs() < 0.015, "average loss {average}, expected {expected}");
}

/// Everything a receiver could observe: arrival times and bytes, in order.
fn trace(seed: u64) -> Vec<(Instant, Vec<u8>)> {
    let config = LinkConfig::default()
        .with_latency(Duration::from_millis(20))
        .with_jitter(Duration::from_millis(7))
        .with_loss(0.05)
        .with_burst_loss(GilbertElliott::from_average(0.02, 3.0))
        .with_duplicate(0.05)
        .with_reorder(0.05, Duration::from_millis(15))
        .with_corrupt(0.05)
        .with_bandwidth(2_000_000)
        .with_queue_capacity(20);
    let mut link = Link::new(config, seed);
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let mut now = Instant::ZERO;
    for i in 0..10_000u32 {
        // Bursts of 50 datagrams every 25 ms overflow the queue now and then.
        if i % 50 == 0 {
            now += Duration::from_millis(25);
        }
        let mut datagram = i.to_be_bytes().to_vec();
        datagram.resize(100 + (i % 900) as usize, i as u8);
        link.send(now, &datagram);
        while let Some(at) = link.recv(now, &mut buf) {
            out.push((at, buf.clone()));
        }
    }
    while let Some(at) = link.recv(Instant::MAX, &mut buf) {
        out.push((at, buf.clone()));
    }
    let stats = link.stats();
    for counter in [
        stats.lost_random,
        stats.lost_burst,
        stats.dropped_queue,
        stats.duplicated,
        stats.reordered,
        stats.corrupted,
    ] {
        assert!(counter > 0, "every impairment should show up: {stats:?}");
    }
    out
}

#[test]
fn same_seed_replays_exactly_other_seed_differs() {
    let first = trace(42);
    assert_eq!(first, trace(42));
    assert_ne!(first, trace(43));
}
