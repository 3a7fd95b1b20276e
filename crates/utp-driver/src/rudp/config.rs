//! Settings of a driven rudp socket: the engine's [`Config`] plus what only a socket has.

use std::sync::Arc;

use utp_proto::rudp::Config;

use crate::config::DEFAULT_SOCKET_BUFFER;

/// Settings of a [`RudpSocket`](crate::rudp::RudpSocket).
#[derive(Clone, Debug)]
pub struct RudpConfig {
    /// The engine's settings (limits, buffers, timers).
    pub rudp: Arc<Config>,
    /// The kernel receive buffer to ask for (`SO_RCVBUF`), falling back to smaller sizes
    /// when refused; `None` leaves the socket as it is. Default 4 MiB.
    pub recv_buffer: Option<usize>,
    /// The kernel send buffer to ask for (`SO_SNDBUF`), with the same fallback. Default
    /// 4 MiB.
    pub send_buffer: Option<usize>,
    /// The engine's secret (cookie and connection-id keys). `None` (the default) draws it
    /// from the operating system's randomness; set it only to make a run repeatable.
    pub secret: Option<[u8; 32]>,
}

impl Default for RudpConfig {
    fn default() -> Self {
        Self {
            rudp: Arc::new(Config::default()),
            recv_buffer: Some(DEFAULT_SOCKET_BUFFER),
            send_buffer: Some(DEFAULT_SOCKET_BUFFER),
            secret: None,
        }
    }
}

impl RudpConfig {
    /// Default socket settings around the given engine settings.
    pub fn new(rudp: Config) -> Self {
        Self { rudp: Arc::new(rudp), ..Self::default() }
    }
}
