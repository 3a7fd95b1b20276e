//! [`Input`]: the fuzzer's bytes as a stream of small integers and slices, shared by the
//! stateful harnesses.

use alloc::vec::Vec;

/// The fuzzer's bytes, read front to back; zeros past the end.
pub(super) struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    /// Reads `data` from its start.
    pub(super) fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    /// How many bytes were read so far (may pass the end: reads there give zeros).
    pub(super) fn pos(&self) -> usize {
        self.pos
    }

    pub(super) fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    pub(super) fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    pub(super) fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub(super) fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// The next `n` bytes, fewer at the end of the input.
    pub(super) fn bytes(&mut self, n: usize) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        let end = self.pos.saturating_add(n).min(self.data.len());
        self.pos = self.pos.saturating_add(n);
        &self.data[start..end]
    }

    /// A `u8` length (at most 16) and that many bytes: a fill pattern.
    pub(super) fn pattern(&mut self) -> Vec<u8> {
        let len = usize::from(self.u8() % 17);
        self.bytes(len).to_vec()
    }
}
