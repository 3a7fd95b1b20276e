//! What the stateful harnesses do to the datagrams waiting in a queue: duplicate and
//! reorder them, as a network would (the op bytes that pick a variant are the harness's).

use alloc::collections::VecDeque;

use super::input::Input;

/// Copies the first datagram: right behind itself (`x` 0) or to the back (else).
pub(super) fn duplicate_front<T: Clone>(q: &mut VecDeque<T>, x: u8) {
    if let Some(d) = q.front().cloned() {
        if x == 0 {
            q.insert(1, d);
        } else {
            q.push_back(d);
        }
    }
}

/// Reorders the queue: the first to the back (`x` 0), the first two swapped (1), all
/// reversed (2), or rotated by an amount read from `input` (3).
pub(super) fn reorder<T>(q: &mut VecDeque<T>, x: u8, input: &mut Input<'_>) {
    match x {
        0 => q.rotate_left(q.len().min(1)),
        1 if q.len() >= 2 => q.swap(0, 1),
        2 => q.make_contiguous().reverse(),
        3 if !q.is_empty() => {
            let n = usize::from(input.u8()) % q.len();
            q.rotate_left(n);
        }
        _ => {}
    }
}
