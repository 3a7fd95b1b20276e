//! Settings of a driven socket: the uTP engine's [`Config`] plus what only a socket has.

use std::sync::Arc;

use utp_proto::utp::Config;

/// Settings of a [`UtpSocket`](crate::UtpSocket).
#[derive(Clone, Debug)]
pub struct SocketConfig {
    /// The uTP engine's settings (limits, buffers, timers, profile).
    pub utp: Arc<Config>,
    /// The kernel receive buffer to ask for (`SO_RCVBUF`). Default 4 MiB: the kernel's
    /// usual 208 KiB overflows at loopback rates and every drop costs a retransmission.
    /// When the system refuses, smaller sizes are tried down to its default; `None` leaves
    /// the socket as it is.
    pub recv_buffer: Option<usize>,
    /// The kernel send buffer to ask for (`SO_SNDBUF`). Default 4 MiB, with the same
    /// fallback.
    pub send_buffer: Option<usize>,
    /// Seeds the engine's random numbers (connection ids, initial sequence numbers).
    /// `None` (the default) draws a seed from the standard library's hasher keys and the
    /// clock; set it to make runs repeatable.
    pub seed: Option<u64>,
}

impl Default for SocketConfig {
    fn default() -> Self {
        Self {
            utp: Arc::new(Config::default()),
            recv_buffer: Some(DEFAULT_SOCKET_BUFFER),
            send_buffer: Some(DEFAULT_SOCKET_BUFFER),
            seed: None,
        }
    }
}

impl SocketConfig {
    /// Default socket settings around the given engine settings.
    pub fn new(utp: Config) -> Self {
        Self { utp: Arc::new(utp), ..Self::default() }
    }
}

/// The kernel buffer size asked for by default.
pub const DEFAULT_SOCKET_BUFFER: usize = 4 << 20;
