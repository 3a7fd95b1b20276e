//! [`TwoSides`]: the virtual clock of the two-endpoint harnesses, with its timer checks.

use crate::{Instant, Machine};

/// Consecutive wake-ups of one endpoint at an instant it already reached: more is a busy
/// loop (`poll_timeout` asking for a time that `handle_timeout` does not move on from).
pub(super) const MAX_STUCK: u32 = 1000;

/// Two machines on one virtual clock, as the stateful harnesses drive them.
pub(super) trait TwoSides {
    /// The machine on each side.
    type Side: Machine;
    /// Wake-ups within one [`advance_to`](Self::advance_to): more is a timer storm.
    const MAX_WAKEUPS: usize;

    /// The machine on `side` (0 or 1).
    fn side(&mut self, side: usize) -> &mut Self::Side;
    /// The harness's clock.
    fn clock(&mut self) -> &mut Instant;
    /// Takes (and checks) everything `side` has to send.
    fn drain(&mut self, side: usize);

    /// Fires every timer due up to `target`, earliest first, draining the side after each,
    /// and moves the clock there. Panics on a busy loop or a timer storm.
    fn advance_to(&mut self, target: Instant) {
        let mut stuck = [0u32; 2];
        let mut wakeups = 0;
        loop {
            let due = (0..2)
                .filter_map(|s| self.side(s).poll_timeout().map(|t| (t, s)))
                .filter(|&(t, _)| t <= target)
                .min();
            let Some((t, side)) = due else { break };
            let at = t.max(*self.clock());
            *self.clock() = at;
            self.side(side).handle_timeout(at);
            self.drain(side);
            if self.side(side).poll_timeout().is_some_and(|next| next <= at) {
                stuck[side] += 1;
                assert!(
                    stuck[side] < MAX_STUCK,
                    "busy loop: after {MAX_STUCK} calls of handle_timeout({at:?}) poll_timeout \
                     still asks for {:?}",
                    self.side(side).poll_timeout()
                );
            } else {
                stuck[side] = 0;
            }
            wakeups += 1;
            assert!(wakeups < Self::MAX_WAKEUPS, "timer storm: {wakeups} wake-ups in one advance");
        }
        let now = self.clock();
        *now = (*now).max(target);
    }
}
