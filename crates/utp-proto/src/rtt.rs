//! Round-trip time estimation and the retransmission timeout (RFC 6298).

use core::time::Duration;

/// Smoothed RTT, RTT variance and the retransmission timeout derived from them.
///
/// Follows RFC 6298 with the gains libutp uses (1/8 for the mean, 1/4 for the variance):
/// the first sample sets `srtt = r` and `rttvar = r / 2`; later samples move them by
/// `(r - srtt) / 8` and `(|srtt - r| - rttvar) / 4`; the timeout is
/// `max(srtt + 4 * rttvar, min_rto)`, capped at `max_rto`. Before any sample the timeout is
/// `initial_rto`. Only packets sent once may give samples (Karn's rule): that is the
/// caller's duty.
#[derive(Clone, Debug)]
pub struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    min_rtt: Option<Duration>,
    latest: Option<Duration>,
    initial_rto: Duration,
    min_rto: Duration,
    max_rto: Duration,
}

impl RttEstimator {
    /// An estimator without samples.
    pub fn new(initial_rto: Duration, min_rto: Duration, max_rto: Duration) -> Self {
        Self {
            srtt: None,
            rttvar: Duration::ZERO,
            min_rtt: None,
            latest: None,
            initial_rto,
            min_rto,
            max_rto: max_rto.max(min_rto),
        }
    }

    /// Feeds one round-trip measurement.
    pub fn on_sample(&mut self, rtt: Duration) {
        self.latest = Some(rtt);
        self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let delta = srtt.abs_diff(rtt);
                // rttvar += (delta - rttvar) / 4, without going negative.
                self.rttvar = if delta >= self.rttvar {
                    self.rttvar + (delta - self.rttvar) / 4
                } else {
                    self.rttvar - (self.rttvar - delta) / 4
                };
                // srtt += (rtt - srtt) / 8
                self.srtt = Some(if rtt >= srtt {
                    srtt + (rtt - srtt) / 8
                } else {
                    srtt - (srtt - rtt) / 8
                });
            }
        }
    }

    /// The smoothed round-trip time, once there is a sample.
    pub fn smoothed(&self) -> Option<Duration> {
        self.srtt
    }

    /// The round-trip variance estimate.
    pub fn variance(&self) -> Duration {
        self.rttvar
    }

    /// The smallest sample seen.
    pub fn min(&self) -> Option<Duration> {
        self.min_rtt
    }

    /// The most recent sample.
    pub fn latest(&self) -> Option<Duration> {
        self.latest
    }

    /// The retransmission timeout before any backoff.
    pub fn rto(&self) -> Duration {
        match self.srtt {
            None => self.initial_rto,
            Some(srtt) => (srtt + self.rttvar * 4).max(self.min_rto).min(self.max_rto),
        }
    }

    /// The retransmission timeout after `backoffs` consecutive timeouts (doubling each
    /// time), capped at the maximum.
    pub fn backed_off_rto(&self, backoffs: u32) -> Duration {
        let factor = 1u32.checked_shl(backoffs.min(16)).unwrap_or(u32::MAX);
        self.rto().saturating_mul(factor).min(self.max_rto.max(self.initial_rto))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn est() -> RttEstimator {
        RttEstimator::new(ms(3000), ms(1000), ms(60_000))
    }

    #[test]
    fn initial_rto_before_samples() {
        let e = est();
        assert_eq!(e.rto(), ms(3000));
        assert_eq!(e.smoothed(), None);
        assert_eq!(e.backed_off_rto(1), ms(6000));
    }

    #[test]
    fn first_sample_sets_mean_and_half_variance() {
        let mut e = RttEstimator::new(ms(3000), ms(10), ms(60_000));
        e.on_sample(ms(100));
        assert_eq!(e.smoothed(), Some(ms(100)));
        assert_eq!(e.variance(), ms(50));
        assert_eq!(e.rto(), ms(300));
    }

    #[test]
    fn later_samples_use_rfc6298_gains() {
        let mut e = RttEstimator::new(ms(3000), ms(1), ms(60_000));
        e.on_sample(ms(100));
        e.on_sample(ms(180));
        // rttvar = 50 + (80 - 50) / 4 = 57.5; srtt = 100 + 80 / 8 = 110
        assert_eq!(e.smoothed(), Some(ms(110)));
        assert_eq!(e.variance(), Duration::from_micros(57_500));
        e.on_sample(ms(110));
        // delta 0: rttvar = 57.5 - 57.5 / 4
        assert_eq!(e.variance(), Duration::from_micros(43_125));
        assert_eq!(e.min(), Some(ms(100)));
        assert_eq!(e.latest(), Some(ms(110)));
    }

    #[test]
    fn rto_respects_floor_cap_and_backoff() {
        let mut e = est();
        e.on_sample(ms(10));
        assert_eq!(e.rto(), ms(1000), "libutp's 1 s floor");
        assert_eq!(e.backed_off_rto(2), ms(4000));
        assert_eq!(e.backed_off_rto(40), ms(60_000), "capped");
        let mut slow = est();
        slow.on_sample(ms(50_000));
        assert_eq!(slow.rto(), ms(60_000));
    }
}
