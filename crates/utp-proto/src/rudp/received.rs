//! The packet numbers a receiver has seen, as ranges: what its DATA-ACKs report and where
//! its REPEATs find gaps.

use alloc::collections::VecDeque;

use crate::wire::rudp::MAX_RANGES;

/// How many ranges are remembered; older ones are forgotten (a DATA-ACK reports the newest
/// [`MAX_RANGES`], and the sender learns of older packets from `delivered` or its timer).
const KEPT_RANGES: usize = 2 * MAX_RANGES;

/// Received packet numbers, as disjoint, non-adjacent inclusive ranges in ascending order.
#[derive(Clone, Debug, Default)]
pub(crate) struct Received {
    ranges: VecDeque<(u64, u64)>,
}

/// What [`Received::insert`] found.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum Arrival {
    /// A number not seen before, the next after the largest (or the first).
    InOrder,
    /// A number not seen before, leaving a gap below it.
    AfterGap,
    /// A number not seen before, below the largest: a late or reordered packet.
    Late,
    /// A number already seen (or too old to be remembered).
    Duplicate,
}

impl Received {
    /// The largest number received.
    pub(crate) fn largest(&self) -> Option<u64> {
        self.ranges.back().map(|&(_, end)| end)
    }

    /// Records `pn`.
    pub(crate) fn insert(&mut self, pn: u64) -> Arrival {
        let Some(&(first, _)) = self.ranges.front() else {
            self.ranges.push_back((pn, pn));
            return Arrival::InOrder;
        };
        let Some(last) = self.ranges.back_mut() else { return Arrival::Duplicate };
        // The common case: at or after the end.
        if pn > last.1 {
            if pn == last.1 + 1 {
                last.1 = pn;
                return Arrival::InOrder;
            }
            self.ranges.push_back((pn, pn));
            self.trim();
            return Arrival::AfterGap;
        }
        if pn < first && self.ranges.len() >= KEPT_RANGES {
            return Arrival::Duplicate; // older than what we remember
        }
        // The first range whose end is at or above pn.
        let i = self.ranges.partition_point(|&(_, end)| end < pn);
        if let Some(&(start, _)) = self.ranges.get(i) {
            if start <= pn {
                return Arrival::Duplicate;
            }
        }
        let joins_next = self.ranges.get(i).is_some_and(|&(start, _)| start == pn + 1);
        let joins_prev = i > 0 && self.ranges[i - 1].1 + 1 == pn;
        match (joins_prev, joins_next) {
            (true, true) => {
                let end = self.ranges[i].1;
                self.ranges[i - 1].1 = end;
                self.ranges.remove(i);
            }
            (true, false) => self.ranges[i - 1].1 = pn,
            (false, true) => self.ranges[i].0 = pn,
            (false, false) => {
                self.ranges.insert(i, (pn, pn));
                self.trim();
            }
        }
        Arrival::Late
    }

    fn trim(&mut self) {
        while self.ranges.len() > KEPT_RANGES {
            self.ranges.pop_front();
        }
    }

    /// Writes the newest ranges, highest first, as `(start, len)` into `out`; returns how
    /// many. A range longer than `u32::MAX` numbers is reported by its top part (and ends
    /// the list, since the rest would be adjacent).
    pub(crate) fn ack_ranges(&self, out: &mut [(u64, u32); MAX_RANGES]) -> usize {
        let mut n = 0;
        for &(start, end) in self.ranges.iter().rev().take(MAX_RANGES) {
            let span = end - start;
            if span >= u64::from(u32::MAX) {
                out[n] = (end - (u64::from(u32::MAX) - 1), u32::MAX);
                return n + 1;
            }
            out[n] = (start, span as u32 + 1);
            n += 1;
        }
        n
    }

    /// Writes the missing numbers in `from..=to` as `(start, len)` ranges, highest first,
    /// into `out` (at most [`MAX_RANGES`], the newest); returns how many. Numbers below the
    /// oldest remembered range are not reported.
    pub(crate) fn missing(&self, from: u64, to: u64, out: &mut [(u64, u32); MAX_RANGES]) -> usize {
        let mut n = 0;
        let mut hi = to; // numbers above `hi` are accounted for
        if from > to {
            return 0;
        }
        for &(start, end) in self.ranges.iter().rev() {
            if n == MAX_RANGES {
                break;
            }
            if start > hi {
                continue;
            }
            // The gap between this range's end and `hi`.
            if end < hi {
                let lo = (end + 1).max(from);
                if lo <= hi {
                    let len = (hi - lo + 1).min(u64::from(u32::MAX));
                    out[n] = (hi - len + 1, len as u32);
                    n += 1;
                }
            }
            if start <= from {
                return n;
            }
            hi = start - 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use super::*;

    fn ack(r: &Received) -> Vec<(u64, u32)> {
        let mut out = [(0, 0); MAX_RANGES];
        let n = r.ack_ranges(&mut out);
        out[..n].to_vec()
    }

    fn missing(r: &Received, from: u64, to: u64) -> Vec<(u64, u32)> {
        let mut out = [(0, 0); MAX_RANGES];
        let n = r.missing(from, to, &mut out);
        out[..n].to_vec()
    }

    #[test]
    fn arrivals_are_classified_and_ranges_merge() {
        let mut r = Received::default();
        assert_eq!(r.insert(0), Arrival::InOrder);
        assert_eq!(r.insert(1), Arrival::InOrder);
        assert_eq!(r.insert(4), Arrival::AfterGap);
        assert_eq!(r.insert(1), Arrival::Duplicate);
        assert_eq!(r.insert(7), Arrival::AfterGap);
        assert_eq!(ack(&r), [(7, 1), (4, 1), (0, 2)]);
        assert_eq!(missing(&r, 0, 7), [(5, 2), (2, 2)]);
        assert_eq!(r.insert(3), Arrival::Late);
        assert_eq!(r.insert(2), Arrival::Late);
        assert_eq!(ack(&r), [(7, 1), (0, 5)]);
        assert_eq!(r.insert(6), Arrival::Late);
        assert_eq!(r.insert(5), Arrival::Late);
        assert_eq!(ack(&r), [(0, 8)]);
        assert_eq!(missing(&r, 0, 7), []);
        assert_eq!(r.largest(), Some(7));
    }

    #[test]
    fn missing_respects_its_bounds() {
        let mut r = Received::default();
        for pn in [10, 20, 30] {
            r.insert(pn);
        }
        assert_eq!(missing(&r, 12, 25), [(21, 5), (12, 8)]);
        assert_eq!(missing(&r, 0, 30), [(21, 9), (11, 9)], "nothing below the oldest range");
        assert_eq!(missing(&r, 25, 24), []);
    }

    #[test]
    fn old_ranges_are_forgotten_and_reports_are_capped() {
        let mut r = Received::default();
        for i in 0..200u64 {
            r.insert(i * 2);
        }
        assert_eq!(r.ranges.len(), KEPT_RANGES);
        let ranges = ack(&r);
        assert_eq!(ranges.len(), MAX_RANGES);
        assert_eq!(ranges[0], (398, 1));
        assert_eq!(r.insert(0), Arrival::Duplicate, "forgotten numbers count as seen");
        assert_eq!(missing(&r, 0, 398).len(), MAX_RANGES);
    }
}
