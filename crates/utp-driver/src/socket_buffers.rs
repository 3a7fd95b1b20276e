//! Raising a UDP socket's kernel buffers, with a fallback when the system refuses.

use std::io;

use socket2::SockRef;

/// The kernel buffer sizes a socket ended up with.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct SocketBuffers {
    /// `SO_RCVBUF` as the kernel reports it (Linux reports double the usable size).
    pub recv: usize,
    /// `SO_SNDBUF` as the kernel reports it.
    pub send: usize,
}

/// Asks for `recv` / `send` bytes of kernel buffer; when a size is refused, halves it and
/// tries again, never going below what the socket already had. Returns what was obtained.
///
/// # Errors
///
/// Only when the current sizes cannot even be read.
pub(crate) fn raise(
    socket: &std::net::UdpSocket,
    recv: Option<usize>,
    send: Option<usize>,
) -> io::Result<SocketBuffers> {
    let sock = SockRef::from(socket);
    if let Some(want) = recv {
        let current = sock.recv_buffer_size()?;
        try_sizes(want, current, |n| sock.set_recv_buffer_size(n));
    }
    if let Some(want) = send {
        let current = sock.send_buffer_size()?;
        try_sizes(want, current, |n| sock.set_send_buffer_size(n));
    }
    Ok(SocketBuffers { recv: sock.recv_buffer_size()?, send: sock.send_buffer_size()? })
}

fn try_sizes(mut want: usize, current: usize, mut set: impl FnMut(usize) -> io::Result<()>) {
    while want > current {
        match set(want) {
            Ok(()) => return,
            Err(e) => {
                tracing::debug!(want, error = %e, "socket buffer size refused; trying half");
                want /= 2;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn falls_back_by_halving_until_accepted() {
        let mut tried = Vec::new();
        try_sizes(1 << 20, 1 << 16, |n| {
            tried.push(n);
            if n > 1 << 18 { Err(io::Error::other("no")) } else { Ok(()) }
        });
        assert_eq!(tried, [1 << 20, 1 << 19, 1 << 18]);
    }

    #[test]
    fn never_shrinks_below_the_current_size() {
        let mut tried = Vec::new();
        try_sizes(1 << 20, 1 << 19, |n| {
            tried.push(n);
            Err(io::Error::other("no"))
        });
        assert_eq!(tried, [1 << 20]);
    }

    #[test]
    fn raises_a_real_socket() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let before = SockRef::from(&socket).recv_buffer_size().unwrap();
        let got = raise(&socket, Some(before * 4), Some(1 << 20)).unwrap();
        // The kernel may clamp to its maximum, but never lowers the buffer.
        assert!(got.recv >= before, "{got:?} < {before}");
    }
}
