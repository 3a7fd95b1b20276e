//! How a simulated [`Link`](super::Link) impairs traffic: [`LinkConfig`] and the
//! [`GilbertElliott`] burst-loss model.

use core::time::Duration;

/// The impairments of one direction of a simulated path.
///
/// The [`Default`] is an ideal link: 10 ms of fixed latency and no impairment at all (no
/// jitter, loss, duplication, reordering or corruption, no bandwidth limit, and an MTU of
/// 65 507 bytes, the largest UDP payload over IPv4). Start from it and add what a test
/// needs with the `with_*` helpers:
///
/// ```
/// use core::time::Duration;
/// use utp_proto::sim::{GilbertElliott, LinkConfig};
///
/// let config = LinkConfig::default()
///     .with_latency(Duration::from_millis(40))
///     .with_jitter(Duration::from_millis(5))
///     .with_burst_loss(GilbertElliott::from_average(0.02, 3.0))
///     .with_bandwidth(1_000_000)
///     .with_mtu(1400);
/// assert!(config.validate().is_ok());
/// ```
///
/// Every datagram offered to the link goes through these stages, in this order (see
/// [`Link::send`](super::Link::send)):
///
/// 1. **MTU**: a datagram longer than [`mtu`](Self::mtu) bytes is dropped.
/// 2. **Bottleneck** (only with a [`bandwidth`](Self::bandwidth)): the datagram joins a
///    FIFO queue served at `bandwidth` bytes per second; if
///    [`queue_capacity`](Self::queue_capacity) datagrams are already held there, it is
///    dropped (tail drop). Otherwise it leaves the bottleneck once it and everything ahead
///    of it have been transmitted.
/// 3. **Loss**: the [`burst_loss`](Self::burst_loss) model, if any, then independent
///    random [`loss`](Self::loss). A lost datagram has still used the bottleneck.
/// 4. **Duplication**: with probability [`duplicate`](Self::duplicate) a second copy is
///    delivered too. Each copy then goes through the last two stages on its own.
/// 5. **Propagation**: [`latency`](Self::latency) plus a uniform random delay in
///    `[0, jitter]`. Jitter never reorders: a copy never arrives before one that went
///    through this stage earlier (except reordered ones, below), as on a real FIFO path.
///    With probability [`reorder`](Self::reorder) the copy is then held back another
///    [`reorder_delay`](Self::reorder_delay), so later datagrams overtake it.
/// 6. **Corruption**: with probability [`corrupt`](Self::corrupt) exactly one uniformly
///    chosen bit of the copy is flipped (an empty datagram is never corrupted).
///
/// Datagrams due at the same instant are delivered in the order they were sent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkConfig {
    /// Fixed one-way propagation delay.
    pub latency: Duration,
    /// Upper bound of the uniform random delay added to [`latency`](Self::latency).
    pub jitter: Duration,
    /// Probability that a datagram is lost, independently of every other one.
    pub loss: f64,
    /// Bursty loss on top of [`loss`](Self::loss); `None` for none.
    pub burst_loss: Option<GilbertElliott>,
    /// Probability that a datagram is delivered twice.
    pub duplicate: f64,
    /// Probability that a delivered copy is held back by
    /// [`reorder_delay`](Self::reorder_delay).
    pub reorder: f64,
    /// Extra delay of a reordered copy; datagrams sent less than this much later overtake it.
    pub reorder_delay: Duration,
    /// Probability that a delivered copy has one bit flipped.
    pub corrupt: f64,
    /// Bottleneck rate in bytes per second (datagram payload bytes; no header overhead is
    /// added); `None` for an infinitely fast link.
    pub bandwidth: Option<u64>,
    /// How many datagrams the bottleneck holds (the one being transmitted included) before
    /// it drops new arrivals. Only used with a [`bandwidth`](Self::bandwidth); the largest
    /// queueing plus transmission delay is therefore
    /// `queue_capacity × datagram size / bandwidth`. `0` drops everything. The default,
    /// 1000, is Linux's default transmit queue length.
    pub queue_capacity: usize,
    /// Largest datagram, in bytes, the link carries; longer ones are dropped.
    pub mtu: usize,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            latency: Duration::from_millis(10),
            jitter: Duration::ZERO,
            loss: 0.0,
            burst_loss: None,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
            corrupt: 0.0,
            bandwidth: None,
            queue_capacity: 1000,
            mtu: 65_507,
        }
    }
}

impl LinkConfig {
    /// This configuration with a fixed one-way `latency`.
    #[must_use]
    pub const fn with_latency(self, latency: Duration) -> Self {
        Self { latency, ..self }
    }

    /// This configuration with up to `jitter` of uniform random extra delay.
    #[must_use]
    pub const fn with_jitter(self, jitter: Duration) -> Self {
        Self { jitter, ..self }
    }

    /// This configuration with independent random loss of probability `loss`.
    #[must_use]
    pub const fn with_loss(self, loss: f64) -> Self {
        Self { loss, ..self }
    }

    /// This configuration with bursty loss following `model`.
    #[must_use]
    pub const fn with_burst_loss(self, model: GilbertElliott) -> Self {
        Self { burst_loss: Some(model), ..self }
    }

    /// This configuration delivering a second copy with probability `duplicate`.
    #[must_use]
    pub const fn with_duplicate(self, duplicate: f64) -> Self {
        Self { duplicate, ..self }
    }

    /// This configuration holding back a copy by `delay` with probability `reorder`.
    #[must_use]
    pub const fn with_reorder(self, reorder: f64, delay: Duration) -> Self {
        Self { reorder, reorder_delay: delay, ..self }
    }

    /// This configuration flipping one bit of a copy with probability `corrupt`.
    #[must_use]
    pub const fn with_corrupt(self, corrupt: f64) -> Self {
        Self { corrupt, ..self }
    }

    /// This configuration with a bottleneck of `bytes_per_second`.
    #[must_use]
    pub const fn with_bandwidth(self, bytes_per_second: u64) -> Self {
        Self { bandwidth: Some(bytes_per_second), ..self }
    }

    /// This configuration with a bottleneck queue holding `packets` datagrams.
    #[must_use]
    pub const fn with_queue_capacity(self, packets: usize) -> Self {
        Self { queue_capacity: packets, ..self }
    }

    /// This configuration carrying datagrams of at most `mtu` bytes.
    #[must_use]
    pub const fn with_mtu(self, mtu: usize) -> Self {
        Self { mtu, ..self }
    }

    /// Checks that every probability is in `[0, 1]` and the bandwidth is not zero.
    ///
    /// # Errors
    ///
    /// [`LinkConfigError::Probability`] naming the first field that is not a probability
    /// (NaN included), or [`LinkConfigError::ZeroBandwidth`].
    pub fn validate(&self) -> Result<(), LinkConfigError> {
        let mut probabilities = [
            ("loss", self.loss),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
            ("corrupt", self.corrupt),
            ("burst_loss.p_good_to_bad", 0.0),
            ("burst_loss.p_bad_to_good", 0.0),
            ("burst_loss.loss_in_good", 0.0),
            ("burst_loss.loss_in_bad", 0.0),
        ];
        if let Some(ge) = self.burst_loss {
            probabilities[4].1 = ge.p_good_to_bad;
            probabilities[5].1 = ge.p_bad_to_good;
            probabilities[6].1 = ge.loss_in_good;
            probabilities[7].1 = ge.loss_in_bad;
        }
        for (field, value) in probabilities {
            if !(0.0..=1.0).contains(&value) {
                return Err(LinkConfigError::Probability { field, value });
            }
        }
        if self.bandwidth == Some(0) {
            return Err(LinkConfigError::ZeroBandwidth);
        }
        Ok(())
    }
}

/// The Gilbert-Elliott two-state model of bursty loss.
///
/// The channel is either *good* or *bad*. Each datagram is lost with the loss probability
/// of the current state, after which the state changes with the transition probability
/// out of it. Losses therefore come in bursts whose length follows the time spent in the
/// bad state: with `loss_in_good = 0` and `loss_in_bad = 1` (the classic Gilbert model
/// that [`from_average`](Self::from_average) builds) a burst lasts `1 / p_bad_to_good`
/// datagrams on average, and the long-run loss rate is
/// `p_good_to_bad / (p_good_to_bad + p_bad_to_good)`.
///
/// A link starts in a state drawn from the model's stationary distribution, so the loss
/// rate is right from the first datagram.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GilbertElliott {
    /// Probability of moving from the good to the bad state after a datagram.
    pub p_good_to_bad: f64,
    /// Probability of moving from the bad to the good state after a datagram.
    pub p_bad_to_good: f64,
    /// Probability that a datagram is lost while the channel is good.
    pub loss_in_good: f64,
    /// Probability that a datagram is lost while the channel is bad.
    pub loss_in_bad: f64,
}

impl GilbertElliott {
    /// The classic Gilbert model (nothing lost while good, everything lost while bad) whose
    /// long-run loss rate is `average_loss` and whose loss bursts last `mean_burst`
    /// datagrams on average.
    ///
    /// # Panics
    ///
    /// If `mean_burst < 1`, if `average_loss` is not in `[0, 1)`, or if the pair is
    /// impossible: bursts of mean length `L` separated by at least one delivered datagram
    /// cannot lose more than `L / (L + 1)` of the traffic.
    #[track_caller]
    #[must_use]
    pub fn from_average(average_loss: f64, mean_burst: f64) -> Self {
        assert!(mean_burst >= 1.0, "GilbertElliott: mean burst length {mean_burst} is below 1");
        assert!(
            (0.0..1.0).contains(&average_loss),
            "GilbertElliott: average loss {average_loss} is not in [0, 1)"
        );
        let p_bad_to_good = 1.0 / mean_burst;
        let p_good_to_bad = average_loss * p_bad_to_good / (1.0 - average_loss);
        assert!(
            p_good_to_bad <= 1.0,
            "GilbertElliott: an average loss of {average_loss} cannot be reached with bursts \
             of mean length {mean_burst} (at most {})",
            mean_burst / (mean_burst + 1.0)
        );
        Self { p_good_to_bad, p_bad_to_good, loss_in_good: 0.0, loss_in_bad: 1.0 }
    }

    /// The long-run fraction of time spent in the bad state.
    pub fn bad_fraction(&self) -> f64 {
        let total = self.p_good_to_bad + self.p_bad_to_good;
        if total <= 0.0 { 0.0 } else { self.p_good_to_bad / total }
    }

    /// The long-run loss rate of the model.
    pub fn average_loss(&self) -> f64 {
        let bad = self.bad_fraction();
        bad * self.loss_in_bad + (1.0 - bad) * self.loss_in_good
    }
}

/// A [`LinkConfig`] that [`LinkConfig::validate`] rejects.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkConfigError {
    /// A field that must be a probability is outside `[0, 1]` or NaN.
    #[error("link config: {field} must be a probability in [0, 1], got {value}")]
    Probability {
        /// The offending field.
        field: &'static str,
        /// Its value.
        value: f64,
    },
    /// The bandwidth is `Some(0)`; use `None` for an unlimited link.
    #[error("link config: bandwidth must be at least 1 byte per second (None means unlimited)")]
    ZeroBandwidth,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_average_hits_the_average_and_burst_length() {
        let ge = GilbertElliott::from_average(0.05, 4.0);
        assert!((ge.average_loss() - 0.05).abs() < 1e-12);
        assert!((1.0 / ge.p_bad_to_good - 4.0).abs() < 1e-12);
        // The extreme: bursts of one separated by single deliveries.
        let ge = GilbertElliott::from_average(0.5, 1.0);
        assert!((ge.p_good_to_bad - 1.0).abs() < 1e-12);
    }

    #[test]
    #[should_panic(expected = "cannot be reached")]
    fn from_average_rejects_impossible_pairs() {
        let _ = GilbertElliott::from_average(0.6, 1.0);
    }

    #[test]
    fn validate_names_the_bad_field() {
        assert_eq!(LinkConfig::default().validate(), Ok(()));
        let bad = LinkConfig::default().with_duplicate(1.5);
        assert_eq!(
            bad.validate(),
            Err(LinkConfigError::Probability { field: "duplicate", value: 1.5 })
        );
        let ge = GilbertElliott { loss_in_bad: f64::NAN, ..GilbertElliott::from_average(0.1, 2.0) };
        assert!(matches!(
            LinkConfig::default().with_burst_loss(ge).validate(),
            Err(LinkConfigError::Probability { field: "burst_loss.loss_in_bad", .. })
        ));
        assert_eq!(
            LinkConfig::default().with_bandwidth(0).validate(),
            Err(LinkConfigError::ZeroBandwidth)
        );
    }
}
