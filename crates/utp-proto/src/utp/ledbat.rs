//! LEDBAT (RFC 6817) as libutp runs it: a delay-based congestion window that yields to
//! other traffic by keeping the queueing delay it causes near a target.

use alloc::boxed::Box;
use core::time::Duration;

use crate::Instant;
use crate::congestion::{AckSample, Controller, ControllerFactory, ControllerParams};

/// How the window grows before the first loss or the first sign of queueing.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
#[non_exhaustive]
pub enum SlowStart {
    /// Double the window every round trip (grow by the bytes acknowledged), leaving slow
    /// start when the queueing delay passes `slow_start_exit` of the target or on the first
    /// loss. Reaches a fast path's capacity in a few round trips.
    #[default]
    Exponential,
    /// libutp's growth: one packet per window acknowledged, or LEDBAT's own gain if that is
    /// larger; so about 3000 bytes per round trip. Very slow on long, fast paths.
    Libutp,
    /// No slow start: LEDBAT's gain from the first acknowledgement.
    Off,
}

/// LEDBAT's settings; the defaults are libutp's.
#[derive(Clone, Debug, PartialEq)]
pub struct LedbatConfig {
    /// The queueing delay LEDBAT aims for. libutp: 100 ms.
    pub target_delay: Duration,
    /// The most the window grows in one round trip at zero queueing delay. libutp: 3000 bytes.
    pub max_cwnd_increase_per_rtt: usize,
    /// The smallest window, in bytes. libutp: 10 bytes (a connection may still send one
    /// packet whenever nothing is in flight).
    pub min_window: usize,
    /// The window is halved at most once per this interval. libutp: 100 ms.
    pub loss_decay_interval: Duration,
    /// With no full window for this long the connection is application-limited and the
    /// window stops growing. libutp: 1 s.
    pub app_limited_after: Duration,
    /// How slow start grows the window.
    pub slow_start: SlowStart,
    /// Slow start ends when the queueing delay exceeds this fraction of the target, in
    /// percent. libutp: 90.
    pub slow_start_exit_percent: u8,
}

impl Default for LedbatConfig {
    fn default() -> Self {
        Self {
            target_delay: Duration::from_millis(100),
            max_cwnd_increase_per_rtt: 3000,
            min_window: 10,
            loss_decay_interval: Duration::from_millis(100),
            app_limited_after: Duration::from_secs(1),
            slow_start: SlowStart::default(),
            slow_start_exit_percent: 90,
        }
    }
}

impl ControllerFactory for LedbatConfig {
    fn build(&self, params: ControllerParams) -> Box<dyn Controller> {
        Box::new(Ledbat::new(self.clone(), params))
    }
}

/// The LEDBAT controller.
#[derive(Clone, Debug)]
pub struct Ledbat {
    config: LedbatConfig,
    params: ControllerParams,
    window: usize,
    slow_start: bool,
    ssthresh: usize,
    last_decay: Option<Instant>,
    last_window_full: Option<Instant>,
}

impl Ledbat {
    /// A controller starting with a window of one packet, in slow start unless configured
    /// otherwise.
    pub fn new(config: LedbatConfig, params: ControllerParams) -> Self {
        let slow_start = config.slow_start != SlowStart::Off;
        Self {
            window: params.max_payload.max(config.min_window).min(params.max_window.max(1)),
            slow_start,
            ssthresh: params.max_window,
            last_decay: None,
            last_window_full: None,
            config,
            params,
        }
    }

    fn clamp(&mut self) {
        self.window = self.window.clamp(self.config.min_window, self.params.max_window.max(1));
    }

    fn app_limited(&self, now: Instant) -> bool {
        match self.last_window_full {
            None => true,
            Some(t) => now.saturating_duration_since(t) > self.config.app_limited_after,
        }
    }
}

impl Controller for Ledbat {
    fn window(&self) -> usize {
        self.window
    }

    fn on_ack(&mut self, now: Instant, sample: &AckSample) {
        let Some(mut delay) = sample.queuing_delay else {
            // Without a delay measurement LEDBAT has nothing to steer by (libutp too).
            return;
        };
        if sample.bytes_acked == 0 {
            return;
        }
        if let Some(rtt) = sample.min_rtt {
            // The one-way queueing delay cannot exceed the round trip.
            delay = delay.min(rtt);
        }
        let target = self.config.target_delay.as_micros().max(1) as f64;
        let our_delay = delay.as_micros() as f64;
        let acked = sample.bytes_acked;
        let window = self.window.max(1);
        let window_factor = acked.min(window) as f64 / acked.max(window) as f64;
        // The gain is capped above by the target (off_target <= target), and below only by
        // the minimum window.
        let delay_factor = (target - our_delay) / target;
        let mut gain = self.config.max_cwnd_increase_per_rtt as f64 * window_factor * delay_factor;
        let limited = self.app_limited(now);
        if gain > 0.0 && limited {
            gain = 0.0;
        }
        let ledbat_window = (window as f64 + gain).max(self.config.min_window as f64) as usize;

        if self.slow_start {
            let exit_delay = target * f64::from(self.config.slow_start_exit_percent) / 100.0;
            let grown = match self.config.slow_start {
                SlowStart::Exponential if !limited => window.saturating_add(acked.min(window)),
                SlowStart::Libutp if !limited => {
                    window + (window_factor * self.params.max_payload as f64) as usize
                }
                _ => window,
            };
            if grown > self.ssthresh {
                self.slow_start = false;
                self.window = ledbat_window;
            } else if our_delay > exit_delay {
                self.slow_start = false;
                self.ssthresh = window;
                self.window = ledbat_window;
            } else {
                self.window = grown.max(ledbat_window);
            }
        } else {
            self.window = ledbat_window;
        }
        self.clamp();
    }

    fn on_loss(&mut self, now: Instant) {
        if let Some(last) = self.last_decay {
            if now.saturating_duration_since(last) < self.config.loss_decay_interval {
                return;
            }
        }
        self.last_decay = Some(now);
        self.window /= 2;
        self.slow_start = false;
        self.clamp();
        self.ssthresh = self.window;
    }

    fn on_timeout(&mut self, _now: Instant, idle: bool) {
        let packet = self.params.max_payload;
        if idle && self.window > packet {
            // Quiet, not lossy: let the window decay by a third.
            self.window = (self.window * 2 / 3).max(packet);
        } else {
            self.window = packet;
            self.slow_start = self.config.slow_start != SlowStart::Off;
        }
        self.clamp();
    }

    fn on_window_full(&mut self, now: Instant) {
        self.last_window_full = Some(now);
    }

    fn in_slow_start(&self) -> bool {
        self.slow_start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: usize = 1000;

    fn ledbat(slow_start: SlowStart) -> Ledbat {
        let config = LedbatConfig { slow_start, ..LedbatConfig::default() };
        Ledbat::new(config, ControllerParams { max_payload: MSS, max_window: 1 << 20 })
    }

    fn ack(bytes: usize, delay_ms: u64) -> AckSample {
        AckSample {
            bytes_acked: bytes,
            queuing_delay: Some(Duration::from_millis(delay_ms)),
            min_rtt: Some(Duration::from_millis(500)),
        }
    }

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn starts_at_one_packet() {
        assert_eq!(ledbat(SlowStart::Exponential).window(), MSS);
    }

    #[test]
    fn exponential_slow_start_doubles_per_window() {
        let mut c = ledbat(SlowStart::Exponential);
        // Large enough that doubling beats LEDBAT's own gain of 3000 bytes per window.
        c.window = 10 * MSS;
        for i in 0..4 {
            c.on_window_full(t(i));
            let w = c.window();
            c.on_ack(t(i), &ack(w, 0));
            assert_eq!(c.window(), 2 * w);
        }
        assert!(c.in_slow_start());
    }

    #[test]
    fn slow_start_ends_near_target_delay() {
        let mut c = ledbat(SlowStart::Exponential);
        c.on_window_full(t(0));
        c.on_ack(t(0), &ack(MSS, 95));
        assert!(!c.in_slow_start(), "95 ms > 90% of 100 ms");
        assert!(c.window() <= MSS + 3000);
    }

    #[test]
    fn libutp_slow_start_grows_about_one_packet_per_window() {
        let mut c = ledbat(SlowStart::Libutp);
        c.window = 10 * MSS;
        c.on_window_full(t(0));
        for _ in 0..10 {
            c.on_ack(t(0), &ack(MSS, 0));
        }
        // Ten acks of a tenth of the window each: LEDBAT's gain (300 B each, shrinking
        // slightly as the window grows) outruns one packet per window.
        let w = c.window();
        assert!((12_500..=13_000).contains(&w), "{w}");
    }

    #[test]
    fn ledbat_gain_follows_delay_off_target() {
        let mut c = ledbat(SlowStart::Off);
        c.window = 100 * MSS;
        c.on_window_full(t(0));
        // A whole window acked at zero delay: + max increase (3000 bytes).
        c.on_ack(t(0), &ack(100 * MSS, 0));
        assert_eq!(c.window(), 100 * MSS + 3000);
        // At the target: no change.
        let w = c.window();
        c.on_ack(t(0), &ack(w, 100));
        assert_eq!(c.window(), w);
        // Above the target: shrinks (half a window acked at 1.5 x target: -750 bytes).
        c.on_ack(t(0), &ack(w / 2, 150));
        assert_eq!(c.window(), w - 750);
    }

    #[test]
    fn delay_is_capped_by_rtt() {
        let mut c = ledbat(SlowStart::Off);
        c.window = 10 * MSS;
        c.on_window_full(t(0));
        let mut sample = ack(10 * MSS, 10_000);
        sample.min_rtt = Some(Duration::ZERO);
        c.on_ack(t(0), &sample);
        assert_eq!(c.window(), 10 * MSS + 3000, "a crafted huge delay is clamped to the rtt");
    }

    #[test]
    fn no_growth_when_application_limited() {
        let mut c = ledbat(SlowStart::Exponential);
        c.on_window_full(t(0));
        c.on_ack(t(2000), &ack(MSS, 0));
        assert_eq!(c.window(), MSS, "window not full for more than 1 s");
        c.on_window_full(t(2000));
        c.on_ack(t(2000), &ack(MSS, 0));
        assert!(c.window() > MSS);
    }

    #[test]
    fn no_delay_sample_no_change() {
        let mut c = ledbat(SlowStart::Exponential);
        c.on_window_full(t(0));
        c.on_ack(t(0), &AckSample { bytes_acked: MSS, queuing_delay: None, min_rtt: None });
        assert_eq!(c.window(), MSS);
    }

    #[test]
    fn loss_halves_at_most_once_per_100ms() {
        let mut c = ledbat(SlowStart::Exponential);
        c.window = 64 * MSS;
        c.on_loss(t(1000));
        assert_eq!(c.window(), 32 * MSS);
        assert!(!c.in_slow_start());
        c.on_loss(t(1050));
        assert_eq!(c.window(), 32 * MSS, "second loss within 100 ms ignored");
        c.on_loss(t(1100));
        assert_eq!(c.window(), 16 * MSS);
        for i in 0..40 {
            c.on_loss(t(2000 + 100 * i));
        }
        assert_eq!(c.window(), 10, "never below the minimum window");
    }

    #[test]
    fn timeout_resets_to_one_packet_or_decays_when_idle() {
        let mut c = ledbat(SlowStart::Exponential);
        c.window = 30 * MSS;
        c.on_timeout(t(0), true);
        assert_eq!(c.window(), 20 * MSS);
        c.slow_start = false;
        c.on_timeout(t(0), false);
        assert_eq!(c.window(), MSS);
        assert!(c.in_slow_start());
    }

    #[test]
    fn window_capped_by_send_buffer() {
        let config = LedbatConfig::default();
        let mut c = Ledbat::new(config, ControllerParams { max_payload: MSS, max_window: 4 * MSS });
        for i in 0..10 {
            c.on_window_full(t(i));
            let w = c.window();
            c.on_ack(t(i), &ack(w, 0));
        }
        assert_eq!(c.window(), 4 * MSS);
    }
}
