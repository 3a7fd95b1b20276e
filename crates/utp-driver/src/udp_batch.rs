//! Batched UDP I/O through [`quinn-udp`](quinn_udp): [`UdpBatch`], what the adapters'
//! [`AsyncUdpSocket`](crate::AsyncUdpSocket)s use for
//! [`poll_send_segments`](crate::AsyncUdpSocket::poll_send_segments) and
//! [`poll_recv_batch`](crate::AsyncUdpSocket::poll_recv_batch).
//!
//! On Linux a batch of equally sized datagrams leaves in one `sendmsg` with UDP
//! segmentation offload (GSO), and `recvmmsg` fills several buffers per call, each of which
//! may hold several datagrams of one sender coalesced by receive offload (GRO; on loopback
//! a GSO batch arrives whole). Elsewhere [`UdpBatch::new`] reports
//! [`Unsupported`](io::ErrorKind::Unsupported) and the sockets move one datagram per call.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
#[cfg(unix)]
use std::os::fd::AsFd as AsSocket;
#[cfg(windows)]
use std::os::windows::io::AsSocket;
use std::sync::{Mutex, PoisonError};

use quinn_udp::{Transmit, UdpSockRef, UdpSocketState};

use crate::runtime::RecvMeta;

/// The most payload one segmentation-offload send carries: a UDP datagram's length field
/// (and IPv4's total length) is 16 bits, so the kernel refuses a batch whose payload,
/// with an IPv4 and a UDP header, exceeds 65535 bytes.
pub(crate) const MAX_GSO_BYTES: usize = 65_535 - 20 - 8;

/// quinn-udp's batched send and receive state for one UDP socket, with the driver's
/// conventions: sends report partial progress in whole datagrams, and a coalesced receive
/// is split again for callers that take one datagram at a time.
///
/// It does not own the socket: an adapter keeps the socket in its reactor and passes it to
/// each call, inside the reactor's readiness loop (a `WouldBlock` error means "wait for
/// readiness and call again").
#[derive(Debug)]
pub struct UdpBatch {
    state: UdpSocketState,
    /// Datagrams of a coalesced receive not yet returned by
    /// [`try_recv_from`](Self::try_recv_from).
    held: Mutex<Held>,
}

/// The rest of a coalesced receive: `buf[start..end]`, in datagrams of `stride` bytes.
// Made only where `UdpBatch::new` succeeds.
#[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
#[derive(Debug)]
struct Held {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    stride: usize,
    addr: SocketAddr,
}

impl UdpBatch {
    /// Prepares `socket` (bound, about to be registered with a reactor) for batched I/O:
    /// makes it non-blocking, enables receive offload, and probes segmentation offload.
    ///
    /// quinn-udp also sets "don't fragment" (QUIC does its own path MTU discovery); this
    /// puts the socket's fragmentation settings back as they were, so a datagram larger
    /// than the path MTU (a TFTP block of 8 KiB over Ethernet) is still fragmented by IP
    /// rather than refused.
    ///
    /// # Errors
    ///
    /// [`Unsupported`](io::ErrorKind::Unsupported) except on Linux and Android, or the
    /// system refused an option; the socket is then left for unbatched use.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub fn new(socket: &std::net::UdpSocket) -> io::Result<Self> {
        let fragmentation = fragmentation::Saved::read(socket);
        let state = match UdpSocketState::new(socket.into()) {
            Ok(state) => state,
            Err(e) => {
                // Unbatched reads must not get coalesced datagrams.
                fragmentation::disable_gro(socket);
                fragmentation.restore(socket);
                return Err(e);
            }
        };
        fragmentation.restore(socket);
        let held =
            Held { buf: Vec::new(), start: 0, end: 0, stride: 1, addr: RecvMeta::default().addr };
        Ok(Self { state, held: Mutex::new(held) })
    }

    /// Prepares `socket` for batched I/O (not on this platform).
    ///
    /// # Errors
    ///
    /// Always [`Unsupported`](io::ErrorKind::Unsupported): batching is used on Linux and
    /// Android only, where segmentation and receive offload exist.
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub fn new(_socket: &std::net::UdpSocket) -> io::Result<Self> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "batched UDP I/O is used on Linux only"))
    }

    /// The most datagrams one send hands the system; 1 without segmentation offload (and
    /// after the system refused it once).
    pub fn max_gso_segments(&self) -> usize {
        self.state.max_gso_segments().max(1)
    }

    /// Whether datagrams of an earlier coalesced receive are waiting: the next
    /// [`try_recv_from`](Self::try_recv_from) or [`try_recv_batch`](Self::try_recv_batch)
    /// returns them without touching the socket, so call it even when the reactor says the
    /// socket is not readable.
    pub fn has_held(&self) -> bool {
        let held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        held.start < held.end
    }

    /// Sends the datagrams in `buf` (each `segment_size` bytes but the last) to `to`, as
    /// many per system call as segmentation offload allows, and returns how many bytes
    /// went: whole datagrams, at least one. If the system refuses offload for this socket,
    /// the batch goes again one datagram at a time.
    ///
    /// # Errors
    ///
    /// `WouldBlock` when none went for lack of room; any other error of the first send.
    pub fn try_send_segments<S: AsSocket>(
        &self,
        socket: &S,
        buf: &[u8],
        segment_size: usize,
        to: SocketAddr,
    ) -> io::Result<usize> {
        let segment_size = segment_size.max(1);
        let mut sent = 0;
        while sent < buf.len() {
            let per_call = self.max_gso_segments().min(MAX_GSO_BYTES / segment_size).max(1);
            let end = buf.len().min(sent + per_call * segment_size);
            let contents = &buf[sent..end];
            let transmit = Transmit {
                destination: to,
                ecn: None,
                contents,
                segment_size: (contents.len() > segment_size).then_some(segment_size),
                src_ip: None,
            };
            match self.state.try_send(UdpSockRef::from(socket), &transmit) {
                Ok(()) => sent = end,
                // Report the progress; the caller passes the rest again.
                Err(_) if sent > 0 => break,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(e),
                // An offload batch failed and quinn-udp turned offload off for the socket
                // (some drivers refuse it; a segment over the MTU does too): nothing of it
                // went, so send it again one datagram at a time.
                Err(_) if transmit.segment_size.is_some() && self.max_gso_segments() == 1 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(sent)
    }

    /// Receives one datagram into `buf`; a coalesced receive is returned one datagram per
    /// call, the rest held for the next calls ([`has_held`](Self::has_held)).
    ///
    /// # Errors
    ///
    /// `WouldBlock` when nothing is queued; the socket's receive error.
    pub fn try_recv_from<S: AsSocket>(
        &self,
        socket: &S,
        buf: &mut [u8],
    ) -> io::Result<(usize, SocketAddr)> {
        if let Some(taken) = self.take_held(buf) {
            return Ok(taken);
        }
        let mut metas = [quinn_udp::RecvMeta::default()];
        let cap = buf.len();
        let mut bufs = [IoSliceMut::new(buf)];
        let n = self.state.recv(UdpSockRef::from(socket), &mut bufs, &mut metas)?;
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let meta = convert(&metas[0], cap);
        if meta.stride < meta.len {
            let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
            held.buf.clear();
            held.buf.extend_from_slice(&buf[meta.stride..meta.len]);
            held.start = 0;
            held.end = held.buf.len();
            held.stride = meta.stride;
            held.addr = meta.addr;
        }
        Ok((meta.stride, meta.addr))
    }

    /// Receives into up to [`quinn_udp::BATCH_SIZE`] of `bufs` with one system call,
    /// describing each in `meta`, and returns how many were filled. Each buffer should
    /// have room for 64 KiB: a coalesced receive that does not fit loses its cut-off
    /// datagrams.
    ///
    /// # Errors
    ///
    /// `WouldBlock` when nothing is queued; the socket's receive error.
    pub fn try_recv_batch<S: AsSocket>(
        &self,
        socket: &S,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> io::Result<usize> {
        let count = bufs.len().min(meta.len()).min(quinn_udp::BATCH_SIZE);
        if count == 0 {
            return Ok(0);
        }
        if let Some(first) = self.take_held_batch(&mut bufs[0]) {
            meta[0] = first;
            return Ok(1);
        }
        let mut metas = [quinn_udp::RecvMeta::default(); quinn_udp::BATCH_SIZE];
        let n =
            self.state.recv(UdpSockRef::from(socket), &mut bufs[..count], &mut metas[..count])?;
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        for ((meta, quinn), buf) in meta.iter_mut().zip(&metas[..n]).zip(&bufs[..n]) {
            *meta = convert(quinn, buf.len());
        }
        Ok(n)
    }

    /// The next held datagram, copied into `buf`.
    fn take_held(&self, buf: &mut [u8]) -> Option<(usize, SocketAddr)> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if held.start >= held.end {
            return None;
        }
        let datagram = held.stride.min(held.end - held.start);
        let len = datagram.min(buf.len());
        buf[..len].copy_from_slice(&held.buf[held.start..held.start + len]);
        held.start += datagram;
        Some((len, held.addr))
    }

    /// As many held datagrams as fit, copied into `buf` as one coalesced buffer.
    fn take_held_batch(&self, buf: &mut [u8]) -> Option<RecvMeta> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if held.start >= held.end {
            return None;
        }
        let whole = (buf.len() / held.stride).max(1);
        let advance = (whole * held.stride).min(held.end - held.start);
        let len = advance.min(buf.len());
        buf[..len].copy_from_slice(&held.buf[held.start..held.start + len]);
        held.start += advance;
        Some(RecvMeta { addr: held.addr, len, stride: held.stride.min(len) })
    }
}

/// quinn-udp's description of a buffer of `cap` bytes as the driver's. A coalesced buffer
/// filled to the brim may have been cut short by the system: its shorter last datagram,
/// which could be a fragment, is left out.
fn convert(meta: &quinn_udp::RecvMeta, cap: usize) -> RecvMeta {
    let mut len = meta.len.min(cap);
    let stride = if meta.stride == 0 { len } else { meta.stride.min(len) };
    if stride < len && len == cap {
        len -= len % stride;
    }
    RecvMeta { addr: meta.addr, len, stride }
}

/// Saving and restoring what quinn-udp changes about fragmentation.
#[cfg(any(target_os = "linux", target_os = "android"))]
mod fragmentation {
    use nix::sys::socket::{setsockopt, sockopt};
    use rustix::net::sockopt::{
        Ipv4PathMtuDiscovery, Ipv6PathMtuDiscovery, ip_mtu_discover, ipv6_mtu_discover,
        set_ip_mtu_discover, set_ipv6_mtu_discover,
    };

    /// The socket's `IP_MTU_DISCOVER`, `IPV6_MTU_DISCOVER` and `IPV6_DONTFRAG`, where it
    /// has them.
    pub(super) struct Saved {
        v4: Option<Ipv4PathMtuDiscovery>,
        v6: Option<Ipv6PathMtuDiscovery>,
        v6_dontfrag: Option<bool>,
    }

    impl Saved {
        pub(super) fn read(socket: &std::net::UdpSocket) -> Self {
            Self {
                v4: ip_mtu_discover(socket).ok(),
                v6: ipv6_mtu_discover(socket).ok(),
                v6_dontfrag: nix::sys::socket::getsockopt(socket, sockopt::Ipv6DontFrag).ok(),
            }
        }

        /// Puts the settings back, best effort: a socket that keeps "don't fragment" still
        /// works for datagrams that fit the path.
        pub(super) fn restore(self, socket: &std::net::UdpSocket) {
            let results = [
                self.v4.map(|v| set_ip_mtu_discover(socket, v).map_err(std::io::Error::from)),
                self.v6.map(|v| set_ipv6_mtu_discover(socket, v).map_err(std::io::Error::from)),
                self.v6_dontfrag.map(|v| {
                    setsockopt(socket, sockopt::Ipv6DontFrag, &v).map_err(std::io::Error::from)
                }),
            ];
            for e in results.into_iter().flatten().filter_map(Result::err) {
                tracing::debug!(error = %e, "cannot restore a fragmentation setting");
            }
        }
    }

    /// Turns receive offload off, best effort.
    pub(super) fn disable_gro(socket: &std::net::UdpSocket) {
        if let Err(e) = setsockopt(socket, sockopt::UdpGroSegment, &false) {
            tracing::debug!(error = %e, "cannot turn UDP_GRO off");
        }
    }
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use std::net::{Ipv4Addr, UdpSocket};
    use std::time::{Duration, Instant};

    use super::*;

    /// Retries `op` while it would block, for up to 5 s.
    fn retry<T>(mut op: impl FnMut() -> io::Result<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match op() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                result => return result.expect("loopback I/O"),
            }
        }
    }

    /// Ten datagrams of 1200 bytes and one of 300, each starting with its number.
    fn batch() -> Vec<u8> {
        (0..11u8).flat_map(|n| std::iter::repeat_n(n, if n == 10 { 300 } else { 1200 })).collect()
    }

    fn pair() -> (UdpSocket, UdpBatch, UdpSocket, UdpBatch) {
        let tx = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let rx = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let (tx_batch, rx_batch) = (UdpBatch::new(&tx).unwrap(), UdpBatch::new(&rx).unwrap());
        (tx, tx_batch, rx, rx_batch)
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn loopback_offload_sends_and_receives_one_buffer() {
        let (tx, tx_batch, rx, rx_batch) = pair();
        assert!(tx_batch.max_gso_segments() > 1, "this kernel has UDP segmentation offload");
        let data = batch();
        let to = rx.local_addr().unwrap();
        assert_eq!(retry(|| tx_batch.try_send_segments(&tx, &data, 1200, to)), data.len());

        let mut slot = vec![0; 65_536];
        let mut meta = [RecvMeta::default(); 1];
        let filled =
            retry(|| rx_batch.try_recv_batch(&rx, &mut [IoSliceMut::new(&mut slot)], &mut meta));
        assert_eq!(filled, 1);
        // Receive offload hands the whole batch over as one buffer.
        assert_eq!((meta[0].len, meta[0].stride), (data.len(), 1200));
        let datagrams: Vec<&[u8]> = meta[0].datagrams(&slot).collect();
        assert_eq!(datagrams.len(), 11);
        assert_eq!(datagrams.concat(), data);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn fragmentation_settings_survive() {
        use nix::sys::socket::getsockopt;
        use nix::sys::socket::sockopt::Ipv6DontFrag;
        use rustix::net::sockopt::{ip_mtu_discover, ipv6_mtu_discover};

        let v4 = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let before = ip_mtu_discover(&v4).unwrap();
        let _batch = UdpBatch::new(&v4).unwrap();
        assert_eq!(ip_mtu_discover(&v4).unwrap(), before);

        let Ok(v6) = UdpSocket::bind((std::net::Ipv6Addr::LOCALHOST, 0)) else { return };
        let before = (ipv6_mtu_discover(&v6).unwrap(), getsockopt(&v6, Ipv6DontFrag).unwrap());
        let _batch = UdpBatch::new(&v6).unwrap();
        let after = (ipv6_mtu_discover(&v6).unwrap(), getsockopt(&v6, Ipv6DontFrag).unwrap());
        assert_eq!(after, before);
    }

    #[test]
    fn one_at_a_time_receives_split_a_coalesced_batch() {
        let (tx, tx_batch, rx, rx_batch) = pair();
        let data = batch();
        let to = rx.local_addr().unwrap();
        assert_eq!(retry(|| tx_batch.try_send_segments(&tx, &data, 1200, to)), data.len());

        let mut buf = vec![0; 65_536];
        for n in 0..11u8 {
            let (len, from) = retry(|| rx_batch.try_recv_from(&rx, &mut buf));
            assert_eq!(from, tx.local_addr().unwrap());
            assert_eq!(len, if n == 10 { 300 } else { 1200 }, "datagram {n}");
            assert!(buf[..len].iter().all(|&b| b == n), "datagram {n}");
        }
        assert!(!rx_batch.has_held());
    }

    #[test]
    fn sends_past_one_offload_are_split() {
        let (tx, tx_batch, rx, rx_batch) = pair();
        // 64 datagrams of 1432 bytes: more than one offloaded send may carry.
        let data: Vec<u8> = (0..64u8).flat_map(|n| [n; 1432]).collect();
        let to = rx.local_addr().unwrap();
        let mut sent = 0;
        while sent < data.len() {
            sent += retry(|| tx_batch.try_send_segments(&tx, &data[sent..], 1432, to));
        }
        let mut got = Vec::new();
        let mut buf = vec![0; 65_536];
        while got.len() < data.len() {
            let (len, _) = retry(|| rx_batch.try_recv_from(&rx, &mut buf));
            assert_eq!(len, 1432);
            got.extend_from_slice(&buf[..len]);
        }
        assert_eq!(got, data);
    }

    #[test]
    fn a_brim_full_coalesced_buffer_loses_its_cut_last_datagram() {
        let mut meta = quinn_udp::RecvMeta::default();
        (meta.len, meta.stride) = (1000, 300);
        // Full: the 100-byte tail may be a fragment of a cut datagram.
        assert_eq!(convert(&meta, 1000).len, 900);
        // Room to spare: a short last datagram is whole.
        assert_eq!(convert(&meta, 4096).len, 1000);
        meta.stride = 1000;
        assert_eq!(convert(&meta, 1000), RecvMeta { addr: meta.addr, len: 1000, stride: 1000 });
    }
}
