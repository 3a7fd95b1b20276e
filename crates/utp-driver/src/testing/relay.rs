//! A UDP relay on loopback that can be cut: a peer that vanishes without a word.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::harness::loopback;

/// Forwards datagrams between one client and `server` on a thread of its own (so it
/// needs no runtime) until [`cut`](Self::cut), after which it swallows everything both
/// ways: to each side, the other has vanished.
pub(crate) struct Relay {
    addr: SocketAddr,
    cut: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Relay {
    /// Starts a relay to `server`; clients connect to [`addr`](Self::addr).
    pub(crate) fn new(server: SocketAddr) -> Self {
        let socket = UdpSocket::bind(loopback()).expect("binding the relay on 127.0.0.1");
        socket.set_read_timeout(Some(Duration::from_millis(20))).expect("a non-zero timeout");
        let addr = socket.local_addr().expect("a bound socket has an address");
        let cut = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("utp-test-relay".into())
            .spawn({
                let (cut, stop) = (cut.clone(), stop.clone());
                move || forward(&socket, server, &cut, &stop)
            })
            .expect("spawning the relay thread");
        Self { addr, cut, stop, thread: Some(thread) }
    }

    /// Where clients send.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// From now on, nothing passes.
    pub(crate) fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
    }
}

fn forward(socket: &UdpSocket, server: SocketAddr, cut: &AtomicBool, stop: &AtomicBool) {
    let mut buf = vec![0; 65_536];
    let mut client = None;
    while !stop.load(Ordering::SeqCst) {
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(got) => got,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                continue;
            }
            Err(_) => continue,
        };
        if cut.load(Ordering::SeqCst) {
            continue;
        }
        let to = if from == server {
            match client {
                Some(c) => c,
                None => continue,
            }
        } else {
            client = Some(from);
            server
        };
        // A lost datagram is what uTP retransmits for.
        let _ = socket.send_to(&buf[..n], to);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
