//! A loss-based congestion controller: NewReno's window arithmetic (RFC 5681, RFC 9002 7.3).

use alloc::boxed::Box;
use core::time::Duration;

use crate::Instant;
use crate::congestion::{AckSample, Controller, ControllerFactory, ControllerParams};

/// Builds [`NewReno`] controllers.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct NewRenoConfig;

impl ControllerFactory for NewRenoConfig {
    fn build(&self, params: ControllerParams) -> Box<dyn Controller> {
        Box::new(NewReno::new(params))
    }
}

/// NewReno: slow start, then one packet per round trip; the window halves on loss, at most
/// once per round trip, and falls to the minimum when the retransmission timer fires.
///
/// - Initial window: `min(10 × max_payload, max(14720, 2 × max_payload))` (RFC 9002).
/// - Minimum window: `2 × max_payload`.
/// - The window grows only while the sender uses all of it (reported through
///   [`Controller::on_window_full`]), so an application-limited sender does not inflate it.
/// - After an idle period the window restarts from at most the initial window (RFC 5681
///   4.1).
#[derive(Clone, Debug)]
pub struct NewReno {
    params: ControllerParams,
    window: usize,
    ssthresh: usize,
    /// Bytes acknowledged in congestion avoidance not yet turned into window growth.
    acked_in_avoidance: usize,
    /// Losses before this instant belong to the recovery already under way.
    recovery_until: Option<Instant>,
    /// The smallest round trip seen, to size a recovery period.
    min_rtt: Option<Duration>,
    /// Whether the window was full since the last acknowledgement.
    limited: bool,
}

impl NewReno {
    /// A controller in slow start with the initial window.
    pub fn new(params: ControllerParams) -> Self {
        let window = initial_window(params).min(params.max_window.max(min_window(params)));
        Self {
            params,
            window,
            ssthresh: usize::MAX,
            acked_in_avoidance: 0,
            recovery_until: None,
            min_rtt: None,
            limited: false,
        }
    }

    fn cap(&mut self) {
        let min = min_window(self.params);
        self.window = self.window.clamp(min, self.params.max_window.max(min));
    }
}

fn initial_window(params: ControllerParams) -> usize {
    (10 * params.max_payload).min(14_720.max(2 * params.max_payload))
}

fn min_window(params: ControllerParams) -> usize {
    2 * params.max_payload
}

impl Controller for NewReno {
    fn window(&self) -> usize {
        self.window
    }

    fn on_ack(&mut self, now: Instant, sample: &AckSample) {
        if let Some(rtt) = sample.min_rtt {
            self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
        }
        let limited = core::mem::take(&mut self.limited);
        if !limited || self.recovery_until.is_some_and(|until| now < until) {
            return;
        }
        if self.window < self.ssthresh {
            self.window = self.window.saturating_add(sample.bytes_acked);
        } else {
            self.acked_in_avoidance += sample.bytes_acked;
            if self.acked_in_avoidance >= self.window {
                self.acked_in_avoidance -= self.window;
                self.window = self.window.saturating_add(self.params.max_payload);
            }
        }
        self.cap();
    }

    fn on_loss(&mut self, now: Instant) {
        if self.recovery_until.is_some_and(|until| now < until) {
            return;
        }
        self.window /= 2;
        self.cap();
        self.ssthresh = self.window;
        self.acked_in_avoidance = 0;
        // One round trip: the losses of the packets in flight now are the same event.
        let rtt = self.min_rtt.unwrap_or(Duration::from_millis(100));
        self.recovery_until = Some(now + rtt);
    }

    fn on_timeout(&mut self, now: Instant, idle: bool) {
        if idle {
            self.window = self.window.min(initial_window(self.params));
            self.cap();
            return;
        }
        self.ssthresh = (self.window / 2).max(min_window(self.params));
        self.window = min_window(self.params);
        self.acked_in_avoidance = 0;
        self.recovery_until = Some(now);
    }

    fn on_window_full(&mut self, _now: Instant) {
        self.limited = true;
    }

    fn in_slow_start(&self) -> bool {
        self.window < self.ssthresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: usize = 1166;

    fn reno() -> NewReno {
        NewReno::new(ControllerParams { max_payload: MSS, max_window: 1 << 20 })
    }

    fn ack(bytes: usize) -> AckSample {
        AckSample {
            bytes_acked: bytes,
            queuing_delay: None,
            min_rtt: Some(Duration::from_millis(20)),
        }
    }

    fn ms(v: u64) -> Instant {
        Instant::from_millis(v)
    }

    #[test]
    fn slow_start_doubles_per_window_while_limited() {
        let mut r = reno();
        let start = r.window();
        assert_eq!(start, 10 * MSS);
        r.on_window_full(ms(0));
        r.on_ack(ms(1), &ack(start));
        assert_eq!(r.window(), 2 * start);
        // Not limited: no growth.
        r.on_ack(ms(2), &ack(start));
        assert_eq!(r.window(), 2 * start);
        assert!(r.in_slow_start());
    }

    #[test]
    fn a_loss_halves_once_per_round_trip() {
        let mut r = reno();
        r.on_ack(ms(0), &ack(0));
        let before = r.window();
        r.on_loss(ms(100));
        assert_eq!(r.window(), before / 2);
        r.on_loss(ms(110)); // same round trip (min RTT 20 ms)
        assert_eq!(r.window(), before / 2);
        r.on_loss(ms(121));
        assert_eq!(r.window(), before / 4);
        assert!(!r.in_slow_start());
    }

    #[test]
    fn congestion_avoidance_adds_one_packet_per_window() {
        let mut r = reno();
        r.on_ack(ms(0), &ack(0));
        r.on_loss(ms(1));
        let w = r.window();
        for i in 0..w / MSS {
            r.on_window_full(ms(100 + i as u64));
            r.on_ack(ms(100 + i as u64), &ack(MSS));
        }
        r.on_window_full(ms(500));
        r.on_ack(ms(500), &ack(w % MSS + MSS));
        assert_eq!(r.window(), w + MSS);
    }

    #[test]
    fn a_timeout_falls_to_the_minimum_and_idle_restarts_at_the_initial_window() {
        let mut r = reno();
        r.on_window_full(ms(0));
        r.on_ack(ms(0), &ack(100 * MSS));
        assert!(r.window() > 10 * MSS);
        r.on_timeout(ms(1000), true);
        assert_eq!(r.window(), 10 * MSS);
        r.on_timeout(ms(2000), false);
        assert_eq!(r.window(), 2 * MSS);
    }

    #[test]
    fn the_window_stays_within_its_bounds() {
        let mut r = NewReno::new(ControllerParams { max_payload: MSS, max_window: 4 * MSS });
        assert_eq!(r.window(), 4 * MSS, "the initial window is capped by the maximum");
        r.on_window_full(ms(0));
        r.on_ack(ms(0), &ack(1 << 30));
        assert_eq!(r.window(), 4 * MSS);
        for t in 0..10 {
            r.on_loss(ms(1000 * t));
        }
        assert_eq!(r.window(), 2 * MSS);
    }
}
