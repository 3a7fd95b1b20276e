//! One-way delay measurement: base delay history with clock-drift handling.
//!
//! uTP packets carry the sender's microsecond clock (`timestamp_us`) and the delay the
//! sender last measured in the other direction (`timestamp_difference_us`). The clocks of
//! the two hosts are unrelated, so a one-way "delay" is only meaningful relative to its own
//! minimum, the base delay: the queueing delay is the sample minus the base. All arithmetic
//! is on wrapping 32-bit microseconds, and no sample value, however crafted, can make it
//! panic.

use core::time::Duration;

use crate::Instant;

/// How many recent samples the current delay is the minimum of (libutp: 3).
const CURRENT_SAMPLES: usize = 3;
/// How many one-minute buckets the base delay is the minimum of (libutp: 13).
const BASE_BUCKETS: usize = 13;
/// How long one base-delay bucket lasts.
const BUCKET: Duration = Duration::from_secs(60);

/// `a < b` on the 32-bit wrapping circle: the shorter way from `a` to `b` goes up.
pub(crate) fn wrapping_less(a: u32, b: u32) -> bool {
    b.wrapping_sub(a) < a.wrapping_sub(b)
}

/// A history of raw one-way delay samples (each the receive time minus the remote send
/// time, on unrelated clocks).
#[derive(Clone, Debug)]
pub(crate) struct DelayHistory {
    base: Option<u32>,
    base_buckets: [u32; BASE_BUCKETS],
    bucket_index: usize,
    bucket_started: Instant,
    current: [u32; CURRENT_SAMPLES],
    current_index: usize,
    samples: u64,
}

impl DelayHistory {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            base: None,
            base_buckets: [0; BASE_BUCKETS],
            bucket_index: 0,
            bucket_started: now,
            current: [u32::MAX; CURRENT_SAMPLES],
            current_index: 0,
            samples: 0,
        }
    }

    /// The base delay (minimum over the history), once there is a sample.
    pub(crate) fn base(&self) -> Option<u32> {
        self.base
    }

    /// Adds a raw sample taken at `now`.
    pub(crate) fn add_sample(&mut self, sample: u32, now: Instant) {
        let base = match self.base {
            Some(base) => base,
            None => {
                self.base_buckets = [sample; BASE_BUCKETS];
                self.bucket_started = now;
                sample
            }
        };
        let bucket = &mut self.base_buckets[self.bucket_index];
        if wrapping_less(sample, *bucket) {
            *bucket = sample;
        }
        let base = if wrapping_less(sample, base) { sample } else { base };
        self.base = Some(base);
        self.current[self.current_index] = sample.wrapping_sub(base);
        self.current_index = (self.current_index + 1) % CURRENT_SAMPLES;
        self.samples += 1;

        if now.saturating_duration_since(self.bucket_started) > BUCKET {
            self.bucket_started = now;
            self.bucket_index = (self.bucket_index + 1) % BASE_BUCKETS;
            self.base_buckets[self.bucket_index] = sample;
            let mut min = self.base_buckets[0];
            for &b in &self.base_buckets[1..] {
                if wrapping_less(b, min) {
                    min = b;
                }
            }
            self.base = Some(min);
        }
    }

    /// The current delay above the base: the smallest of the last few samples. `None`
    /// before any sample.
    pub(crate) fn value(&self) -> Option<u32> {
        // Slots not yet written hold u32::MAX and never win the minimum.
        (self.samples > 0).then(|| self.current.iter().copied().min().unwrap_or(0))
    }

    /// Raises the base (and every bucket) by `offset` microseconds: compensates clock drift
    /// observed in the other direction, or a delay estimate above the round-trip time.
    pub(crate) fn shift(&mut self, offset: u32) {
        for b in &mut self.base_buckets {
            *b = b.wrapping_add(offset);
        }
        if let Some(base) = &mut self.base {
            *base = base.wrapping_add(offset);
        }
        for c in &mut self.current {
            if *c != u32::MAX {
                *c = c.saturating_sub(offset);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: u64) -> Instant {
        Instant::from_millis(secs * 1000)
    }

    #[test]
    fn wrapping_order() {
        assert!(wrapping_less(1, 2));
        assert!(!wrapping_less(2, 1));
        assert!(wrapping_less(u32::MAX - 5, 3), "3 is just past the wrap");
        assert!(!wrapping_less(3, u32::MAX - 5));
    }

    #[test]
    fn queueing_delay_is_sample_minus_base() {
        let mut h = DelayHistory::new(t(0));
        assert_eq!(h.value(), None);
        h.add_sample(1_000_000, t(0));
        assert_eq!(h.value(), Some(0));
        h.add_sample(1_050_000, t(1));
        h.add_sample(1_040_000, t(2));
        h.add_sample(1_060_000, t(3));
        // minimum of the last three samples above the base
        assert_eq!(h.value(), Some(40_000));
        assert_eq!(h.base(), Some(1_000_000));
    }

    #[test]
    fn base_survives_wraparound_of_the_clock() {
        let mut h = DelayHistory::new(t(0));
        h.add_sample(u32::MAX - 1000, t(0));
        h.add_sample(4000, t(1)); // 5001 µs later on the wrapped clock
        assert_eq!(h.base(), Some(u32::MAX - 1000));
        assert_eq!(h.value(), Some(0));
        h.add_sample(9000, t(2));
        h.add_sample(9000, t(3));
        h.add_sample(9000, t(4));
        assert_eq!(h.value(), Some(10_001));
    }

    #[test]
    fn base_forgets_old_minimum_after_thirteen_minutes() {
        let mut h = DelayHistory::new(t(0));
        h.add_sample(100, t(0));
        for minute in 1..=12 {
            h.add_sample(5000, t(minute * 61));
        }
        assert_eq!(h.base(), Some(100), "13 one-minute buckets still include the first");
        h.add_sample(5000, t(13 * 61));
        assert_eq!(h.base(), Some(5000), "the old minimum has aged out");
    }

    #[test]
    fn shift_raises_the_base() {
        let mut h = DelayHistory::new(t(0));
        h.add_sample(1000, t(0));
        h.add_sample(3000, t(0));
        h.add_sample(3000, t(0));
        h.add_sample(3000, t(0));
        assert_eq!(h.value(), Some(2000));
        h.shift(500);
        assert_eq!(h.base(), Some(1500));
        assert_eq!(h.value(), Some(1500));
    }

    #[test]
    fn hostile_samples_never_panic() {
        let mut h = DelayHistory::new(t(0));
        for s in [0, u32::MAX, 1 << 31, (1 << 31) - 1, 1, u32::MAX / 2] {
            h.add_sample(s, t(0));
            let _ = h.value();
            h.shift(u32::MAX);
        }
    }
}
