//! What the end-to-end tests of the `utp` binary share.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

/// The `utp` binary under test.
pub(crate) fn utp() -> Command {
    Command::new(env!("CARGO_BIN_EXE_utp"))
}

/// A fresh directory under the system's temporary directory, removed when dropped.
pub(crate) struct TempDir(tempfile::TempDir);

impl TempDir {
    /// A directory whose name starts with `utp-cli-{tag}-`.
    pub(crate) fn new(tag: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("utp-cli-{tag}-"))
            .tempdir()
            .expect("the temporary directory is writable");
        Self(dir)
    }

    /// `name` inside the directory.
    pub(crate) fn join(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

/// Pseudo-random bytes (xorshift64*), `len` of them, from `seed`.
pub(crate) fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Bytes a process printed, as text.
pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Reads the first line a listening `utp` command prints on standard error,
/// `listening on ADDR`, and returns ADDR.
pub(crate) fn listening_addr(stderr: &mut impl BufRead) -> SocketAddr {
    let mut first = String::new();
    stderr.read_line(&mut first).expect("the command's standard error is readable");
    first
        .trim_end()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first:?}"))
        .parse()
        .unwrap_or_else(|e| panic!("not an address in {first:?}: {e}"))
}
