//! Block numbers: the engine counts blocks with a `u64` that never wraps and maps it to the
//! 16-bit wire number, which wraps after 65535 to 0 or 1 ([`Rollover`]).

use super::Rollover;

/// The wire number of absolute block `block` (block 0 is the acknowledgement of a request).
pub(crate) fn wire(block: u64, rollover: Rollover) -> u16 {
    match rollover {
        Rollover::ToZero => block as u16,
        Rollover::ToOne if block == 0 => 0,
        Rollover::ToOne => ((block - 1) % 65535 + 1) as u16,
    }
}

/// The absolute block whose wire number is `wire_nr`, nearest to `reference`: at most 32767
/// blocks before it or 32768 after it (with [`Rollover::ToOne`], one fewer after). `None`
/// when no block in that range has this number (block 0 under `ToOne`, once past it).
pub(crate) fn absolute(wire_nr: u16, reference: u64, rollover: Rollover) -> Option<u64> {
    let (period, cycle_pos, wire_pos) = match rollover {
        Rollover::ToZero => (65536, reference % 65536, u64::from(wire_nr)),
        Rollover::ToOne => {
            if wire_nr == 0 {
                return (reference <= 32768).then_some(0);
            }
            if reference == 0 {
                // Block 0 is outside the cycle: measure from block 1.
                return absolute(wire_nr, 1, rollover);
            }
            (65535, (reference - 1) % 65535, u64::from(wire_nr - 1))
        }
    };
    let forward = (wire_pos + period - cycle_pos) % period;
    let back = period - forward;
    if forward <= 32768 - (65536 - period) {
        Some(reference + forward)
    } else {
        // Under `ToOne`, no block before 1 has a non-zero number.
        let floor = u64::from(rollover == Rollover::ToOne);
        reference.checked_sub(back).filter(|block| *block >= floor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_zero_wraps_after_65535() {
        assert_eq!(wire(65535, Rollover::ToZero), 65535);
        assert_eq!(wire(65536, Rollover::ToZero), 0);
        assert_eq!(wire(65537, Rollover::ToZero), 1);
    }

    #[test]
    fn to_one_skips_zero() {
        assert_eq!(wire(0, Rollover::ToOne), 0);
        assert_eq!(wire(1, Rollover::ToOne), 1);
        assert_eq!(wire(65535, Rollover::ToOne), 65535);
        assert_eq!(wire(65536, Rollover::ToOne), 1);
        assert_eq!(wire(2 * 65535 + 1, Rollover::ToOne), 1);
    }

    #[test]
    fn absolute_inverts_wire_near_the_reference() {
        for rollover in [Rollover::ToZero, Rollover::ToOne] {
            for reference in [1u64, 2, 100, 65530, 65535, 65536, 65540, 200_000, 1 << 40] {
                for block in reference.saturating_sub(32000)..reference + 32000 {
                    if block == 0 {
                        continue;
                    }
                    let nr = wire(block, rollover);
                    assert_eq!(
                        absolute(nr, reference, rollover),
                        Some(block),
                        "{rollover:?} block {block} reference {reference}"
                    );
                }
            }
        }
    }

    #[test]
    fn block_zero_is_found_only_near_the_start() {
        assert_eq!(absolute(0, 0, Rollover::ToOne), Some(0));
        assert_eq!(absolute(0, 5, Rollover::ToOne), Some(0));
        assert_eq!(absolute(0, 100_000, Rollover::ToOne), None);
        assert_eq!(absolute(0, 0, Rollover::ToZero), Some(0));
        assert_eq!(absolute(0, 65530, Rollover::ToZero), Some(65536));
        assert_eq!(absolute(65535, 1, Rollover::ToZero), None);
        assert_eq!(absolute(65535, 1, Rollover::ToOne), None);
    }
}
