//! The `tftp_transfer` harness: one TFTP [`Transfer`] whose peer, clock and application are
//! all played by the fuzzer's bytes.
//!
//! # Input format
//!
//! `[setup, tuning, options, ..., op, op, ...]`; reading past the end of the input yields
//! zeros.
//!
//! - `setup`: bits 0-1 pick the transfer: 0 a client reading (`client_read`), 1 a client
//!   writing (`client_write`), 2 a server answering a read request, 3 a server answering a
//!   write request (both made by a [`Server`] fed the request, then [`Incoming::accept`]).
//!   Bit 2: netascii (else octet); 3: [`Rollover::ToOne`]; 4: no dallying; 5: one-byte send
//!   and receive buffers; 6: `max_retries` 1 and `unverified_retries` 0; 7:
//!   `max_stranger_replies` 1.
//! - `tuning`: bit 0: 1 ms timeouts (10 ms at most); 1: `max_blksize` 8; 2: `max_windowsize`
//!   32768; 3: `max_windowsize` 2; 4: no stranger replies; 5: 1000-byte buffers; 6:
//!   `unverified_retries` 100; 7: a 255 s timeout.
//! - `options` says which options the request carries (see [`option_pairs`]). A client
//!   reads their values (`blksize` u16, `windowsize` u16, `timeout` u8, `tsize` u32) and
//!   brings them into range; a server's request is built from the pairs, then a `u8` length
//!   and the filename's bytes, then a `u8`: bit 0 set, the file's size (`u32`) follows for
//!   [`Incoming::accept`].
//!
//! Each op starts with one byte: the low 4 bits are the operation, the high 4 bits `x`.
//! Datagram ops come from source `x & 3`: 0 the peer's transfer ID (for a client: the port
//! the server answers from), 1 and 2 other ports (for a client: the server's request port
//! 69, then another port of the server's address), 3 another address. A `content` value picks
//! the bytes of DATA or writes (see [`fill`]): `& 3` 0 pseudo-random, 1 text of `a`, `b`, CR
//! and LF, 2 a pattern (a `u8` length up to 16 and its bytes follow), 3 only LF.
//!
//! | op | name | reads | does |
//! |----|------|-------|------|
//! | 0 | raw | u8 len (x & 4: u16), bytes | a raw datagram |
//! | 1 | data | u8 sel, ... | DATA: block (sel & 3: expected, expected + i8, u16, expected - 1), length (sel >> 2 & 3: full, u16 short, empty, u16 any), content (sel >> 4) |
//! | 2 | ack | u8 sel, ... | ACK of (sel & 3: the last block sent, that + i8, u16, 0) |
//! | 3 | oack | u8 options, ... | an OACK (see [`option_pairs`]; bit 4 echoes the client's request) |
//! | 4 | error | u16 code, u8 sel, bytes | an ERROR (sel & 63 message bytes; bit 6: no NUL; bit 7: padding) |
//! | 5 | advance | x & 3: u16 ms, u8 s, –, u16 µs | fire due timers (x & 3 == 2: up to the next one) |
//! | 6 | write | length (x & 3: u8, u16, u16·16, writable), content (x >> 2) | `write` |
//! | 7 | finish | – | `finish` |
//! | 8 | read | u16 size (0 = 65536) | `read` once (x & 1: until empty) |
//! | 9 | abort | u16 code, u8 len, bytes | `abort` |
//! | 10 | poke | – | `handle_timeout` before the timer is due: must change nothing |
//! | 11 | auto | u8 count (x & 1: u16), u8 content | run the peer and application well, `count` rounds: the sender is fed a window and all it sent is acknowledged (x & 4: `finish` at the end); the receiver gets full blocks in order (x & 2: read after each; x & 4: the last one short) |
//! | 12 | request port | u8 len, bytes, u16 code, u8 len, bytes | a datagram to the [`Server`] (source `x & 3` of the client's side); requests it reports are refused |
//! | 13 | reflect | – | the transfer's last datagram, back to it |
//! | 14 | replay | u8 index | one of the last datagrams delivered, again |
//! | 15 | (no-op) | | |
//!
//! # What it checks
//!
//! Nothing panics; `poll_transmit` runs dry; every datagram sent parses; only ERROR 5 goes to
//! anyone but the peer, and only to a stranger owed a reply; a stranger's datagram changes
//! nothing else; a server sends at most `1 + unverified_retries` DATA (and `1 + max_retries`
//! OACKs or ACKs) to a client that never spoke, and its OACK grants only what was asked,
//! within the limits, with the values in force. After each op the timer is `None` or later
//! than now (no busy loop, no due timer left unfired), and a transfer neither over nor
//! waiting for the application has one; `handle_timeout` before the timer changes nothing.
//!
//! Events: `Negotiated` once, first, with values the request allows; nothing after
//! `Complete` or `Failed`; `is_complete` and `error` agree with them; each `Failed` has a
//! cause in the op (an ERROR delivered, a timeout, an OACK, an abort, a size mismatch), and
//! the peer got the matching ERROR (or none when it caused the failure). Once `is_closed`,
//! nothing more goes to the peer.
//!
//! The sending side's DATA holds exactly the bytes written (netascii-encoded), block after
//! block, with a short block only at the end after `finish`; `Complete` comes only once the
//! last block was sent; in lockstep a duplicate ACK sends no DATA (Sorcerer's Apprentice).
//! The receiving side acknowledges exactly the blocks it accepted in order, never an old
//! repeat; each accepted DATA carries the next block number, and `read` returns exactly the
//! accepted payloads in order (decoded), announced by `Readable` or `Complete`; `Complete`
//! comes only after a short block, with the announced `tsize`.
//!
//! The harness makes up at most [`MAX_GENERATED`] bytes of data per input (two wraps of the
//! block number with 8-byte blocks), and asks for a `windowsize` of at most 32768 as a
//! client: beyond that one wire number names two blocks in flight.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;

use super::input::Input;
use crate::config::ConfigError;
use crate::tftp::netascii::{Decoder, Encoder};
use crate::tftp::{
    Config, Direction, Event, Incoming, Negotiated, OptionRequest, Role, Rollover, Server,
    Transfer, TransferError, TransferStats,
};
use crate::wire::tftp::{
    ErrorCode, MAX_DATA_LEN, Mode, OPTION_BLKSIZE, OPTION_TIMEOUT, OPTION_TSIZE, OPTION_WINDOWSIZE,
    Options, Packet, Request, parse_decimal,
};
use crate::{Instant, Machine};

const CLIENT_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const SERVER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));
const OTHER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
/// The client's transfer ID.
const CLIENT: SocketAddr = SocketAddr::new(CLIENT_IP, 50_000);
/// The server's request port.
const SERVER: SocketAddr = SocketAddr::new(SERVER_IP, 69);
/// The port the server answers a client from.
const SERVER_TID: SocketAddr = SocketAddr::new(SERVER_IP, 40_000);
/// What a client asks for.
const FILENAME: &str = "file.bin";

/// Operations per input; the rest of a longer input is ignored.
const MAX_OPS: usize = 4096;
/// `poll_transmit` must return `None` within this many calls.
const MAX_DRAIN: usize = 100_000;
/// Wake-ups within one time advance.
const MAX_WAKEUPS: usize = 100_000;
/// Bytes of DATA payloads and writes the harness makes up, in all: enough for two
/// wraps of the block number with 8-byte blocks, few enough to keep inputs fast.
const MAX_GENERATED: usize = 3 << 19;
/// The largest write in one op.
const MAX_WRITE: usize = 64 << 10;
/// Blocks the `auto` op moves at most, in all: enough to wrap the block number twice.
const MAX_AUTO_BLOCKS: u64 = 140_000;
/// Recently delivered datagrams kept for replays.
const HISTORY: usize = 8;

/// With `TFTP_FUZZ_TRACE` set (and `std`), the harness prints every op, datagram and event
/// to stderr: `TFTP_FUZZ_TRACE=1 ./target/debug/tftp_transfer <input>`.
const TRACE_VAR: &str = "TFTP_FUZZ_TRACE";

/// Runs the input; see the module documentation.
pub(crate) fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let mut h = Harness::new(&mut input);
    h.settle();
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        let start = input.pos();
        h.cause = Cause::default();
        h.op(&mut input);
        h.settle();
        if h.trace {
            trace!("op {:02x?} -> {:?}", &data[start..input.pos().min(data.len())], h.summary());
        }
    }
}

/// The settings, from two bytes; see the module documentation.
fn config(setup: u8, tuning: u8) -> Config {
    /// The harness only picks values the setters accept.
    fn ok(r: Result<&mut Config, ConfigError>) {
        if let Err(e) = r {
            panic!("the harness picked an invalid setting: {e}");
        }
    }
    let mut c = Config::default();
    if setup & 0x08 != 0 {
        ok(c.set_rollover(Rollover::ToOne));
    }
    if setup & 0x10 != 0 {
        ok(c.set_dally(Duration::ZERO));
    }
    if setup & 0x20 != 0 {
        ok(c.set_send_buffer(1));
        ok(c.set_recv_buffer(1));
    }
    if setup & 0x40 != 0 {
        ok(c.set_max_retries(1));
        ok(c.set_unverified_retries(0));
    }
    if setup & 0x80 != 0 {
        ok(c.set_max_stranger_replies(1));
    }
    if tuning & 0x01 != 0 {
        ok(c.set_timeout(Duration::from_millis(1)));
        ok(c.set_min_timeout(Duration::from_millis(1)));
        ok(c.set_max_timeout(Duration::from_millis(10)));
    }
    if tuning & 0x02 != 0 {
        ok(c.set_max_blksize(8));
    }
    if tuning & 0x04 != 0 {
        ok(c.set_max_windowsize(32768));
    }
    if tuning & 0x08 != 0 {
        ok(c.set_max_windowsize(2));
    }
    if tuning & 0x10 != 0 {
        ok(c.set_max_stranger_replies(0));
    }
    if tuning & 0x20 != 0 {
        ok(c.set_send_buffer(1000));
        ok(c.set_recv_buffer(1000));
    }
    if tuning & 0x40 != 0 {
        ok(c.set_unverified_retries(100));
    }
    if tuning & 0x80 != 0 {
        ok(c.set_timeout(Duration::from_secs(255)));
        ok(c.set_max_timeout(Duration::from_secs(255)));
    }
    c
}

/// `(name, value)` option pairs from the input, for a request or an OACK.
///
/// `sel` bits 0-3 include `blksize`, `windowsize`, `timeout` and `tsize`. Their values are
/// read as numbers (u16, u16, u8, u32) unless bit 4 asks for typical ones (what `echo`
/// requested, else 8, 4, 1 and 0) or bit 5 for raw strings (a `u8` length up to 8, then
/// ASCII bytes). Bit 6 writes the names in upper case; bit 7 adds an unknown option.
fn option_pairs(
    input: &mut Input<'_>,
    sel: u8,
    echo: Option<&OptionRequest>,
) -> Vec<(String, String)> {
    let names = [OPTION_BLKSIZE, OPTION_WINDOWSIZE, OPTION_TIMEOUT, OPTION_TSIZE];
    let mut pairs = Vec::new();
    for (i, name) in names.into_iter().enumerate() {
        if sel & (1 << i) == 0 {
            continue;
        }
        let value = if sel & 0x10 != 0 {
            let echoed = echo.and_then(|r| match i {
                0 => r.blksize.map(u64::from),
                1 => r.windowsize.map(u64::from),
                2 => r.timeout.map(u64::from),
                _ => r.tsize,
            });
            alloc::format!("{}", echoed.unwrap_or([8, 4, 1, 0][i]))
        } else if sel & 0x20 != 0 {
            let len = usize::from(input.u8() % 9);
            input.bytes(len).iter().map(|&b| char::from((b & 0x7f).max(1))).collect()
        } else {
            let number = match i {
                0 | 1 => u32::from(input.u16()),
                2 => u32::from(input.u8()),
                _ => input.u32(),
            };
            alloc::format!("{number}")
        };
        let name = if sel & 0x40 != 0 { name.to_ascii_uppercase() } else { String::from(name) };
        pairs.push((name, value));
    }
    if sel & 0x80 != 0 {
        pairs.push((String::from("x-unknown"), String::from("1")));
    }
    pairs
}

/// Emits an OACK (`request` `None`) or a request (`Some((read, filename, mode))`) with the
/// options `pairs`, or `None` if they do not make a valid packet.
fn emit_with_options(
    pairs: &[(String, String)],
    request: Option<(bool, &[u8], Mode)>,
) -> Option<Vec<u8>> {
    let refs: Vec<(&str, &str)> = pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let options = Options::from_pairs(&refs).ok()?;
    let packet = match request {
        None => Packet::OptionAck(options),
        Some((read, filename, mode)) => {
            let request = Request { filename, mode, options };
            if read { Packet::ReadRequest(request) } else { Packet::WriteRequest(request) }
        }
    };
    let mut buf = Vec::new();
    packet.try_emit(&mut buf).ok()?;
    Some(buf)
}

/// The wire number of absolute block `n`.
fn wire(n: u64, rollover: Rollover) -> u16 {
    match rollover {
        Rollover::ToZero => n as u16,
        Rollover::ToOne if n == 0 => 0,
        Rollover::ToOne => ((n - 1) % 65535 + 1) as u16,
    }
}

/// The absolute block with wire number `nr` nearest to `reference` (not below 0, or 1 for
/// a non-zero number under `ToOne`). Written apart from the engine's own, to compare.
fn nearest(nr: u16, reference: u64, rollover: Rollover) -> u64 {
    let reference = reference as i64;
    let (period, here, there, floor) = match rollover {
        Rollover::ToZero => (65536, reference.rem_euclid(65536), i64::from(nr), 0),
        Rollover::ToOne if nr == 0 => return 0,
        Rollover::ToOne => {
            let reference = reference.max(1);
            (65535, (reference - 1).rem_euclid(65535), i64::from(nr) - 1, 1)
        }
    };
    let mut diff = (there - here).rem_euclid(period);
    if diff > period / 2 {
        diff -= period;
    }
    let n = reference + diff;
    (if n < floor { n + period } else { n }) as u64
}

/// Appends `len` made-up bytes to `out`, starting at `offset` of a stream, in one of four
/// styles: `kind` 0 pseudo-random, 1 text made of `a`, `b`, CR and LF, 2 `pattern` repeated,
/// 3 only LF.
fn fill(out: &mut Vec<u8>, kind: u8, pattern: &[u8], offset: u64, len: usize) {
    match kind & 3 {
        3 => out.resize(out.len() + len, b'\n'),
        2 if !pattern.is_empty() => {
            let skip = (offset % pattern.len() as u64) as usize;
            out.extend(pattern.iter().cycle().skip(skip).take(len));
        }
        style => {
            let mut x = (offset ^ 0x5eed).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let end = out.len() + len;
            while out.len() < end {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let n = (end - out.len()).min(8);
                out.extend_from_slice(&x.to_le_bytes()[..n]);
            }
            if style == 1 {
                for byte in &mut out[end - len..] {
                    *byte = b"aab\r\n\n"[usize::from(*byte) % 6];
                }
            }
        }
    }
}

/// A message fit for an ERROR packet: what the engine's sanitizing promises.
fn check_message(message: &[u8]) {
    assert!(message.len() <= 200, "a message of {} bytes", message.len());
    let Ok(text) = core::str::from_utf8(message) else {
        panic!("a message that is not UTF-8: {message:02x?}");
    };
    assert!(!text.chars().any(char::is_control), "a control character in {text:?}");
}

/// What the current op did that may explain an `Event::Failed`.
#[derive(Debug, Default)]
struct Cause {
    error: Option<ErrorCode>,
    oack: bool,
    abort: Option<ErrorCode>,
    timeout: bool,
}

/// What the application sees of a transfer; a stranger's datagram must not change it.
#[derive(Debug, Eq, PartialEq)]
struct Snapshot {
    peer: SocketAddr,
    timer: Option<Instant>,
    complete: bool,
    error: Option<TransferError>,
    negotiated: Negotiated,
    readable: usize,
    writable: usize,
    stats: TransferStats,
}

impl Snapshot {
    fn of(t: &Transfer) -> Self {
        Self {
            peer: t.peer(),
            timer: t.poll_timeout(),
            complete: t.is_complete(),
            error: t.error().cloned(),
            negotiated: t.negotiated(),
            readable: t.readable_len(),
            writable: t.writable_len(),
            stats: t.stats(),
        }
    }
}

struct Harness {
    trace: bool,
    now: Instant,
    config: Arc<Config>,
    role: Role,
    direction: Direction,
    mode: Mode,
    rollover: Rollover,
    transfer: Transfer,
    server: Server,
    /// Where datagrams come from; `sources[0]` is the peer.
    sources: [SocketAddr; 4],
    /// The client's options.
    requested: OptionRequest,
    /// The options of the request the server accepted, and the size it was given.
    request_pairs: Vec<(String, String)>,
    size: Option<u64>,
    buf: Vec<u8>,
    read_buf: Vec<u8>,
    history: VecDeque<Vec<u8>>,
    last_sent: Vec<u8>,
    transmits: u64,
    cause: Cause,

    // Events seen.
    negotiated: Option<Negotiated>,
    complete: bool,
    failed: Option<TransferError>,

    // Sending side: the wire form of everything written, and the highest block sent.
    wire: Vec<u8>,
    written: usize,
    finished: bool,
    sent_hi: u64,

    // Receiving side: the text of the accepted DATA, decoded as the engine should.
    decoder: Decoder,
    unread: VecDeque<u8>,
    received: u64,
    read_total: u64,
    received_at_read: u64,
    notified: bool,
    short_block: bool,

    // Datagrams sent.
    peer_errors: u32,
    /// The code of the ERROR the peer got, and whether the failure was checked against it.
    peer_error: Option<ErrorCode>,
    failure_checked: bool,
    /// The datagram just delivered must not make the transfer send DATA (a duplicate ACK in
    /// lockstep) or an ACK (an old repeat of a block).
    no_data: bool,
    no_ack: bool,
    silent: bool,
    strangers_owed: BTreeMap<SocketAddr, u32>,
    server_owed: BTreeMap<SocketAddr, u32>,
    peer_spoke: bool,
    unverified_data: u32,
    unverified_other: u32,
    stats: TransferStats,
    auto_blocks: u64,
    generated: usize,
}

impl Harness {
    fn new(input: &mut Input<'_>) -> Self {
        let setup = input.u8();
        let tuning = input.u8();
        let config = Arc::new(config(setup, tuning));
        let mode = if setup & 0x04 != 0 { Mode::Netascii } else { Mode::Octet };
        let now = Instant::from_micros(1_000_000);
        let sel = input.u8();
        let mut server = Server::new(config.clone());
        let mut requested = OptionRequest::NONE;
        let mut request_pairs = Vec::new();
        let mut size = None;
        let (transfer, sources) = match setup & 3 {
            scenario @ (0 | 1) => {
                let r = &mut requested;
                if sel & 1 != 0 {
                    r.blksize = Some(input.u16().clamp(8, MAX_DATA_LEN as u16));
                }
                if sel & 2 != 0 {
                    // Beyond 32768 blocks in flight a wire number names two of them.
                    r.windowsize = Some(input.u16().clamp(1, 32768));
                }
                if sel & 4 != 0 {
                    r.timeout = Some(input.u8().max(1));
                }
                if sel & 8 != 0 {
                    r.tsize = Some(u64::from(input.u32()));
                }
                let made = if scenario == 0 {
                    Transfer::client_read(config.clone(), SERVER, FILENAME, mode, requested, now)
                } else {
                    Transfer::client_write(config.clone(), SERVER, FILENAME, mode, requested, now)
                };
                let transfer = made.unwrap_or_else(|e| panic!("the harness asked badly: {e}"));
                let sources = [
                    SERVER_TID,
                    SERVER,
                    SocketAddr::new(SERVER_IP, 40_001),
                    SocketAddr::new(OTHER_IP, 40_000),
                ];
                (transfer, sources)
            }
            scenario => {
                let read = scenario == 2;
                request_pairs = option_pairs(input, sel, None);
                let len = usize::from(input.u8() % 64) + 1;
                let mut filename: Vec<u8> =
                    input.bytes(len).iter().map(|&b| if b == 0 { b'_' } else { b }).collect();
                if filename.is_empty() {
                    filename.push(b'f');
                }
                if input.u8() & 1 != 0 {
                    size = Some(u64::from(input.u32()));
                }
                let emitted = emit_with_options(&request_pairs, Some((read, &filename, mode)));
                let bytes = emitted.unwrap_or_else(|| {
                    request_pairs.clear();
                    emit_with_options(&[], Some((read, &filename, mode))).unwrap_or_else(|| {
                        panic!("a {}-byte filename makes no request", filename.len())
                    })
                });
                server.handle_datagram(now, CLIENT, &bytes);
                let Some(incoming) = server.poll_event() else {
                    panic!("the server did not report a valid request: {bytes:02x?}");
                };
                assert!(server.poll_event().is_none(), "one request, two Incoming");
                assert!(server.poll_transmit(now, &mut Vec::new()).is_none(), "answered a request");
                check_incoming(&incoming, read, &filename, mode, &request_pairs);
                let transfer = incoming.accept(config.clone(), size, now);
                let sources = [
                    CLIENT,
                    SocketAddr::new(CLIENT_IP, 50_001),
                    SocketAddr::new(OTHER_IP, 50_000),
                    SERVER,
                ];
                (transfer, sources)
            }
        };
        let h = Self {
            trace: super::tracing(TRACE_VAR),
            now,
            rollover: config.rollover(),
            config,
            role: transfer.role(),
            direction: transfer.direction(),
            mode,
            transfer,
            server,
            sources,
            requested,
            request_pairs,
            size,
            buf: Vec::new(),
            read_buf: vec![0; 65_536],
            history: VecDeque::new(),
            last_sent: Vec::new(),
            transmits: 0,
            cause: Cause::default(),
            negotiated: None,
            complete: false,
            failed: None,
            wire: Vec::new(),
            written: 0,
            finished: false,
            sent_hi: 0,
            decoder: Decoder::new(),
            unread: VecDeque::new(),
            received: 0,
            read_total: 0,
            received_at_read: 0,
            notified: false,
            short_block: false,
            peer_errors: 0,
            peer_error: None,
            failure_checked: false,
            no_data: false,
            no_ack: false,
            silent: false,
            strangers_owed: BTreeMap::new(),
            server_owed: BTreeMap::new(),
            peer_spoke: false,
            unverified_data: 0,
            unverified_other: 0,
            stats: TransferStats::default(),
            auto_blocks: 0,
            generated: 0,
        };
        let expected = if (setup & 3) % 2 == 0 { Direction::Receive } else { Direction::Send };
        let expected = if setup & 2 != 0 { opposite(expected) } else { expected };
        assert_eq!(h.direction, expected, "the transfer runs the wrong way");
        assert_eq!(h.role, if setup & 2 != 0 { Role::Server } else { Role::Client });
        assert_eq!(h.transfer.mode(), mode, "the transfer has the wrong mode");
        if h.trace {
            trace!(
                "{:?} {:?} {mode:?} {:?} {:?}",
                h.role, h.direction, h.requested, h.request_pairs
            );
        }
        h
    }

    fn op(&mut self, input: &mut Input<'_>) {
        let b = input.u8();
        let x = b >> 4;
        let source = self.sources[usize::from(x & 3)];
        match b & 0x0f {
            0 => {
                let len =
                    if x & 4 != 0 { usize::from(input.u16()) } else { usize::from(input.u8()) };
                let d = input.bytes(len).to_vec();
                self.deliver(source, &d);
            }
            1 => self.data_op(input, source),
            2 => {
                let sel = input.u8();
                let block = match sel & 3 {
                    0 => wire(self.sent_hi, self.rollover),
                    1 => {
                        let delta = i64::from(input.u8() as i8);
                        wire(self.sent_hi.saturating_add_signed(delta), self.rollover)
                    }
                    2 => input.u16(),
                    _ => 0,
                };
                let mut d = vec![0, 4];
                d.extend_from_slice(&block.to_be_bytes());
                self.deliver(source, &d);
            }
            3 => {
                let sel = input.u8();
                let pairs = option_pairs(input, sel, Some(&self.requested));
                if let Some(d) = emit_with_options(&pairs, None) {
                    self.deliver(source, &d);
                }
            }
            4 => {
                let code = input.u16();
                let sel = input.u8();
                let mut d = vec![0, 5];
                d.extend_from_slice(&code.to_be_bytes());
                d.extend_from_slice(input.bytes(usize::from(sel & 63)));
                if sel & 0x40 == 0 {
                    d.push(0);
                }
                if sel & 0x80 != 0 {
                    d.extend_from_slice(b"\0pad");
                }
                self.deliver(source, &d);
            }
            5 => {
                let target = match x & 3 {
                    0 => self.now + Duration::from_millis(u64::from(input.u16())),
                    1 => self.now + Duration::from_secs(u64::from(input.u8())),
                    2 => self.transfer.poll_timeout().unwrap_or(self.now + Duration::from_secs(1)),
                    _ => self.now + Duration::from_micros(u64::from(input.u16())),
                };
                self.advance_to(target);
            }
            6 => {
                let len = match x & 3 {
                    0 => usize::from(input.u8()),
                    1 => usize::from(input.u16()),
                    2 => usize::from(input.u16()) * 16,
                    _ => self.transfer.writable_len(),
                };
                let kind = x >> 2;
                let pattern = if kind == 2 { input.pattern() } else { Vec::new() };
                self.write(len, kind, &pattern);
            }
            7 => self.finish(),
            8 => {
                let size = match input.u16() {
                    0 => 65_536,
                    n => usize::from(n),
                };
                self.read(size, x & 1 != 0);
            }
            9 => {
                let code = ErrorCode::from(input.u16());
                let len = usize::from(input.u8() % 64);
                let message = String::from_utf8_lossy(input.bytes(len)).into_owned();
                self.cause.abort = Some(code);
                self.transfer.abort(code, &message);
            }
            10 => {
                let before = Snapshot::of(&self.transfer);
                self.transfer.handle_timeout(self.now);
                let after = Snapshot::of(&self.transfer);
                assert_eq!(after, before, "handle_timeout before the timer changed the transfer");
                let transmits = self.transmits;
                self.drain();
                assert_eq!(self.transmits, transmits, "handle_timeout before the timer sent");
            }
            11 => {
                let count = if x & 1 != 0 { input.u16() } else { u16::from(input.u8()) };
                let sel = input.u8();
                let pattern = if sel & 3 == 2 { input.pattern() } else { Vec::new() };
                match self.direction {
                    Direction::Send => self.pump(count, sel, &pattern, x & 4 != 0),
                    Direction::Receive => self.feed(count, sel, &pattern, x & 2 != 0, x & 4 != 0),
                }
            }
            12 => {
                let from = [
                    CLIENT,
                    SocketAddr::new(CLIENT_IP, 50_001),
                    SocketAddr::new(OTHER_IP, 50_000),
                    SocketAddr::new(OTHER_IP, 0),
                ][usize::from(x & 3)];
                let len = usize::from(input.u8());
                let d = input.bytes(len).to_vec();
                let code = ErrorCode::from(input.u16());
                let len = usize::from(input.u8() % 64);
                let message = String::from_utf8_lossy(input.bytes(len)).into_owned();
                self.request_port(from, &d, code, &message);
            }
            13 => {
                let d = self.last_sent.clone();
                self.deliver(source, &d);
            }
            14 => {
                let index = usize::from(input.u8());
                if !self.history.is_empty() {
                    let d = self.history[index % self.history.len()].clone();
                    self.deliver(source, &d);
                }
            }
            _ => {}
        }
    }

    /// Builds and delivers a DATA packet; see the module documentation.
    fn data_op(&mut self, input: &mut Input<'_>, source: SocketAddr) {
        let sel = input.u8();
        let expected = self.transfer.stats().data_received + 1;
        let block = match sel & 3 {
            0 => wire(expected, self.rollover),
            1 => wire(expected.saturating_add_signed(i64::from(input.u8() as i8)), self.rollover),
            2 => input.u16(),
            _ => wire(expected - 1, self.rollover),
        };
        let blksize = usize::from(self.transfer.negotiated().blksize);
        let len = match (sel >> 2) & 3 {
            0 => blksize,
            1 => usize::from(input.u16()) % blksize,
            2 => 0,
            _ => usize::from(input.u16()).min(MAX_DATA_LEN),
        };
        let len = self.budget(len);
        let kind = sel >> 4;
        let pattern = if kind & 3 == 2 { input.pattern() } else { Vec::new() };
        let d = self.data_packet(block, len, kind, &pattern, expected);
        self.deliver(source, &d);
    }

    fn data_packet(&self, block: u16, len: usize, kind: u8, pattern: &[u8], at: u64) -> Vec<u8> {
        let start =
            at.saturating_sub(1).saturating_mul(u64::from(self.transfer.negotiated().blksize));
        let mut d = Vec::with_capacity(4 + len);
        d.extend_from_slice(&[0, 3]);
        d.extend_from_slice(&block.to_be_bytes());
        fill(&mut d, kind, pattern, start, len);
        d
    }

    /// Takes up to `n` bytes from the budget of made-up bytes; returns how many.
    fn budget(&mut self, n: usize) -> usize {
        let n = n.min(MAX_GENERATED - self.generated);
        self.generated += n;
        n
    }

    // ---- the application ---------------------------------------------------------------

    fn write(&mut self, len: usize, kind: u8, pattern: &[u8]) {
        let room = self.transfer.writable_len();
        let len = self.budget(len.min(room.saturating_add(2000)).min(MAX_WRITE));
        let mut data = Vec::with_capacity(len);
        fill(&mut data, kind, pattern, self.written as u64, len);
        let taken = self.transfer.write(&data);
        assert!(taken <= len && taken <= room, "write took {taken} of {len} bytes, room {room}");
        if self.mode == Mode::Octet {
            assert_eq!(taken, room.min(len), "write took {taken} of {len} bytes, room {room}");
        }
        if self.mode == Mode::Netascii {
            Encoder::new().encode_to_vec(&data[..taken], &mut self.wire);
        } else {
            self.wire.extend_from_slice(&data[..taken]);
        }
        self.written += taken;
    }

    fn finish(&mut self) {
        self.transfer.finish();
        if self.direction == Direction::Send {
            self.finished = true;
        }
    }

    fn read(&mut self, size: usize, until_empty: bool) {
        loop {
            let n = self.transfer.read(&mut self.read_buf[..size]);
            assert!(n <= size, "read {n} bytes into {size}");
            assert!(n <= self.unread.len(), "read {n} bytes, {} arrived", self.unread.len());
            let (a, b) = self.unread.as_slices();
            let (got, from_a) = (&self.read_buf[..n], n.min(a.len()));
            if got[..from_a] != a[..from_a] || got[from_a..] != b[..n - from_a] {
                panic!("the {n} bytes read at {} differ from what arrived", self.read_total);
            }
            self.unread.drain(..n);
            self.read_total += n as u64;
            self.notified = false;
            self.received_at_read = self.received;
            if n == 0 || !until_empty {
                return;
            }
        }
    }

    /// The sending side, run well: write what fits, acknowledge every block sent.
    fn pump(&mut self, count: u16, sel: u8, pattern: &[u8], finish: bool) {
        for _ in 0..count {
            if self.auto_blocks >= MAX_AUTO_BLOCKS || self.transfer.is_closed() {
                break;
            }
            if !self.finished {
                let n = self.transfer.negotiated();
                self.write(usize::from(n.blksize) * usize::from(n.windowsize), sel, pattern);
                if self.generated == MAX_GENERATED {
                    self.finish();
                }
            }
            self.settle();
            if self.sent_hi == 0 {
                break;
            }
            let mut d = vec![0, 4];
            d.extend_from_slice(&wire(self.sent_hi, self.rollover).to_be_bytes());
            self.deliver(self.sources[0], &d);
            self.settle();
            self.auto_blocks += 1;
        }
        if finish {
            self.finish();
        }
    }

    /// The receiving side, fed well: full blocks in order.
    fn feed(&mut self, count: u16, sel: u8, pattern: &[u8], read: bool, short_end: bool) {
        for i in 0..count {
            let blksize = u64::from(self.transfer.negotiated().blksize);
            if self.auto_blocks >= MAX_AUTO_BLOCKS
                || self.transfer.is_complete()
                || self.transfer.is_closed()
            {
                break;
            }
            let number = self.transfer.stats().data_received + 1;
            let len = if short_end && i + 1 == count { blksize / 2 } else { blksize };
            if self.budget(len as usize) < len as usize {
                break;
            }
            let d =
                self.data_packet(wire(number, self.rollover), len as usize, sel, pattern, number);
            self.deliver(self.sources[0], &d);
            self.settle();
            if read {
                self.read(65_536, true);
                self.settle();
            }
            self.auto_blocks += 1;
            if self.transfer.stats().data_received < number {
                break;
            }
        }
    }

    // ---- the network ---------------------------------------------------------------------

    fn deliver(&mut self, source: SocketAddr, d: &[u8]) {
        let parsed = Packet::parse(d).ok();
        match parsed {
            Some(Packet::Error { code, .. }) => self.cause.error = Some(code),
            Some(Packet::OptionAck(_)) => self.cause.oack = true,
            _ => {}
        }
        if self.trace {
            trace!("  {source} => {parsed:?} ({} bytes)", d.len());
        }
        let before = Snapshot::of(&self.transfer);
        let received_before = before.stats.data_received;
        let before_duplicates = before.stats.duplicate_acks;
        self.transfer.handle_datagram(self.now, source, d);
        let after = self.transfer.stats();
        let must_be_stranger = match self.role {
            Role::Server => source != CLIENT,
            Role::Client => source.ip() != SERVER_IP,
        };
        if after.strangers != before.stats.strangers {
            assert_eq!(after.strangers, before.stats.strangers + 1, "one stranger counted twice");
            let mut expected = before;
            expected.stats.strangers = after.strangers;
            let now = Snapshot::of(&self.transfer);
            assert_eq!(now, expected, "a datagram from stranger {source} changed the transfer");
            if !matches!(parsed, Some(Packet::Error { .. })) {
                *self.strangers_owed.entry(source).or_default() += 1;
            }
        } else {
            assert!(!must_be_stranger, "a datagram from {source} was taken for the peer's");
            if source == self.sources[0] {
                self.peer_spoke = true;
            }
        }
        if after.data_received != received_before {
            self.accepted(received_before, parsed);
        }
        let lockstep = self.transfer.negotiated().windowsize == 1;
        if after.duplicate_acks > before_duplicates && lockstep {
            // RFC 1123 4.2.3.1: an ACK that acknowledges nothing new never sends DATA.
            self.no_data = true;
        }
        if let Some(Packet::Data { block, .. }) = parsed {
            let expected = received_before + 1;
            if nearest(block, expected, self.rollover) + 1 < expected {
                // An old repeat: the rest of a window already answered, or a duplicate.
                self.no_ack = true;
            }
        }
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(d.to_vec());
    }

    /// The receiving side accepted a DATA packet: the model takes its payload too.
    fn accepted(&mut self, before: u64, packet: Option<Packet<'_>>) {
        let after = self.transfer.stats().data_received;
        assert_eq!(after, before + 1, "one datagram counted as {} blocks", after - before);
        let Some(Packet::Data { block, data }) = packet else {
            panic!("data_received counted a datagram that is not DATA: {packet:?}");
        };
        assert_eq!(self.direction, Direction::Receive, "the sending side accepted DATA");
        assert!(!self.short_block, "DATA accepted after the last block");
        assert_eq!(block, wire(after, self.rollover), "DATA {block} accepted as block {after}");
        let blksize = usize::from(self.transfer.negotiated().blksize);
        assert!(data.len() <= blksize, "accepted {} bytes with blksize {blksize}", data.len());
        let last = data.len() < blksize;
        let mut text = Vec::new();
        if self.mode == Mode::Netascii {
            self.decoder.decode_to_vec(data, &mut text);
            if last {
                self.decoder.finish(&mut text);
            }
        } else {
            text.extend_from_slice(data);
        }
        self.received += text.len() as u64;
        self.unread.extend(text);
        self.short_block = last;
    }

    fn request_port(&mut self, from: SocketAddr, d: &[u8], code: ErrorCode, message: &str) {
        self.server.handle_datagram(self.now, from, d);
        *self.server_owed.entry(from).or_default() += 1;
        while let Some(incoming) = self.server.poll_event() {
            assert_eq!(incoming.peer(), from, "an Incoming from the wrong peer");
            let (read, request) = match Packet::parse(d) {
                Ok(Packet::ReadRequest(request)) => (true, request),
                Ok(Packet::WriteRequest(request)) => (false, request),
                other => panic!("the server reported {other:?} as a request"),
            };
            let pairs: Vec<(String, String)> = request
                .options
                .iter()
                .map(|o| (String::from(o.name), String::from(o.value)))
                .collect();
            check_incoming(&incoming, read, request.filename, request.mode, &pairs);
            if self.trace {
                trace!("  request port: {incoming:?}, refused with {code}");
            }
            self.server.refuse(incoming, code, message);
        }
    }

    /// Fires every timer due up to `target`, in order, and moves the clock there.
    fn advance_to(&mut self, target: Instant) {
        let mut wakeups = 0;
        while let Some(at) = self.transfer.poll_timeout() {
            if at > target {
                break;
            }
            self.now = self.now.max(at);
            self.cause.timeout = true;
            self.transfer.handle_timeout(self.now);
            self.settle();
            wakeups += 1;
            assert!(wakeups < MAX_WAKEUPS, "timer storm: {wakeups} wake-ups in one advance");
        }
        self.now = self.now.max(target);
        self.server.handle_timeout(self.now);
    }

    // ---- checks ------------------------------------------------------------------------

    /// Drains everything, then checks the state.
    fn settle(&mut self) {
        self.drain();
        self.check_state();
    }

    fn drain(&mut self) {
        let mut buf = core::mem::take(&mut self.buf);
        let mut sent = 0;
        while let Some(t) = self.transfer.poll_transmit(self.now, &mut buf) {
            sent += 1;
            assert!(sent <= MAX_DRAIN, "poll_transmit does not run dry");
            assert!(t.size <= buf.len(), "a transmit is longer than its buffer");
            assert_eq!(t.segment_size, None, "a TFTP transfer does not batch");
            self.transmits += 1;
            self.check_transmit(t.destination, &buf[..t.size]);
            self.last_sent.clear();
            self.last_sent.extend_from_slice(&buf[..t.size]);
        }
        while let Some(event) = self.transfer.poll_event() {
            if self.trace {
                trace!("  event {event:?}");
            }
            self.check_event(event);
        }
        let mut sent = 0;
        while let Some(t) = self.server.poll_transmit(self.now, &mut buf) {
            sent += 1;
            assert!(sent <= MAX_DRAIN, "the server's poll_transmit does not run dry");
            let d = &buf[..t.size];
            let Ok(Packet::Error { code, message }) = Packet::parse(d) else {
                panic!("the request port sent something but an ERROR: {d:02x?}");
            };
            if self.trace {
                trace!("  request port => {}: ERROR {code}", t.destination);
            }
            assert!(!message.iter().any(|&b| b < 0x20 || b == 0x7f), "a control character");
            let owed = self.server_owed.get_mut(&t.destination).filter(|n| **n > 0);
            let Some(owed) = owed else {
                panic!("the request port answered {}, who sent nothing unanswered", t.destination);
            };
            *owed -= 1;
        }
        assert!(self.server.poll_event().is_none(), "an Incoming nobody asked for");
        self.buf = buf;
        self.no_data = false;
        self.no_ack = false;
    }

    fn check_transmit(&mut self, to: SocketAddr, d: &[u8]) {
        let packet = Packet::parse(d)
            .unwrap_or_else(|e| panic!("sent a datagram that does not parse ({e:?}): {d:02x?}"));
        if self.trace {
            trace!("  => {to}: {packet:?}");
        }
        let peer = self.transfer.peer();
        if to != peer {
            assert!(
                matches!(packet, Packet::Error { code: ErrorCode::UnknownTransferId, .. }),
                "sent {packet:?} to {to}, who is not the peer {peer}"
            );
            let owed = self.strangers_owed.get_mut(&to).filter(|n| **n > 0);
            let Some(owed) = owed else {
                panic!("ERROR 5 to {to}, who sent nothing unanswered");
            };
            *owed -= 1;
            return;
        }
        assert!(!self.silent, "sent {packet:?} to the peer after is_closed");
        match packet {
            Packet::Error { code, message } => {
                self.peer_errors += 1;
                assert_eq!(self.peer_errors, 1, "a second ERROR to the peer ({code})");
                self.peer_error = Some(code);
                assert!(self.transfer.error().is_some(), "ERROR {code} to the peer, not failed");
                check_message(message);
            }
            Packet::ReadRequest(request) | Packet::WriteRequest(request) => {
                assert_eq!(self.role, Role::Client, "a server sent a request");
                let read = matches!(packet, Packet::ReadRequest(_));
                assert_eq!(read, self.direction == Direction::Receive, "a request the wrong way");
                assert!(self.negotiated.is_none(), "the request resent after negotiation");
                assert_eq!(request.filename, FILENAME.as_bytes(), "the filename changed");
                assert_eq!(request.mode, self.mode, "the mode changed");
                let r = &self.requested;
                let asked = |v: Option<u64>| v.map(|v| alloc::format!("{v}"));
                // netascii requests never ask for tsize (servers refuse it).
                let tsize =
                    r.tsize.map(|t| if read { 0 } else { t }).filter(|_| self.mode == Mode::Octet);
                let o = &request.options;
                assert_eq!(o.get(OPTION_BLKSIZE), asked(r.blksize.map(u64::from)).as_deref());
                assert_eq!(o.get(OPTION_WINDOWSIZE), asked(r.windowsize.map(u64::from)).as_deref());
                assert_eq!(o.get(OPTION_TIMEOUT), asked(r.timeout.map(u64::from)).as_deref());
                assert_eq!(o.get(OPTION_TSIZE), asked(tsize).as_deref());
            }
            Packet::OptionAck(options) => {
                assert_eq!(self.role, Role::Server, "a client sent an OACK");
                self.check_oack(&options);
            }
            Packet::Data { block, data } => {
                assert_eq!(self.direction, Direction::Send, "the receiving side sent DATA");
                assert!(!self.no_data, "a duplicate ACK in lockstep made DATA {block} go out");
                self.check_data(block, data);
            }
            Packet::Ack { block } => {
                assert_eq!(self.direction, Direction::Receive, "the sending side sent an ACK");
                assert!(!self.no_ack, "an old repeated block was acknowledged (ACK {block})");
                let received = self.transfer.stats().data_received;
                let expected = wire(received, self.rollover);
                assert_eq!(block, expected, "ACK {block} after {received} blocks in order");
            }
        }
        if self.role == Role::Server && !self.peer_spoke {
            // Only DATA amplifies a spoofed request; an OACK or ACK is retried like anything.
            let (count, limit) = match packet {
                Packet::Data { .. } => {
                    self.unverified_data += 1;
                    (self.unverified_data, 1 + self.config.unverified_retries())
                }
                Packet::Error { .. } => (0, 0),
                _ => {
                    self.unverified_other += 1;
                    (self.unverified_other, 1 + self.config.max_retries())
                }
            };
            assert!(
                count <= limit,
                "{count} {packet:?} to a client that never answered (at most {limit})"
            );
        }
    }

    fn check_data(&mut self, block: u16, data: &[u8]) {
        let blksize = u64::from(self.transfer.negotiated().blksize);
        assert!(data.len() as u64 <= blksize, "DATA of {} bytes, blksize {blksize}", data.len());
        if self.rollover == Rollover::ToOne {
            assert_ne!(block, 0, "DATA 0 under Rollover::ToOne");
        }
        let number = nearest(block, self.sent_hi.max(1), self.rollover);
        assert!(number >= 1, "DATA {block} is block 0");
        let start = (number - 1).saturating_mul(blksize);
        let end = start.saturating_add(data.len() as u64);
        let total = self.wire.len() as u64;
        assert!(end <= total, "DATA {number} holds bytes {start}..{end}, {total} written");
        assert!(
            data == &self.wire[start as usize..end as usize],
            "DATA {number} differs from what was written at {start}"
        );
        if (data.len() as u64) < blksize {
            assert!(self.finished, "a short DATA {number} before finish");
            assert_eq!(end, total, "a short DATA {number} before the end of the data");
        }
        self.sent_hi = self.sent_hi.max(number);
    }

    /// A server's OACK acknowledges only what was asked, with the values in force.
    fn check_oack(&self, options: &Options<'_>) {
        assert!(!options.is_empty(), "an empty OACK");
        let n = self.transfer.negotiated();
        for option in options.iter() {
            let Some((_, asked)) = self.request_pairs.iter().find(|(name, _)| option.is(name))
            else {
                panic!("the OACK grants {}, which was not requested", option.name);
            };
            let (Ok(value), Ok(asked)) = (parse_decimal(option.value), parse_decimal(asked)) else {
                panic!("the OACK grants {option:?} for {asked:?}");
            };
            let fits = if option.is(OPTION_BLKSIZE) {
                value == u64::from(n.blksize)
                    && value <= asked
                    && value <= u64::from(self.config.max_blksize())
            } else if option.is(OPTION_WINDOWSIZE) {
                value == u64::from(n.windowsize)
                    && value <= asked
                    && value <= u64::from(self.config.max_windowsize())
            } else if option.is(OPTION_TIMEOUT) {
                Some(value) == n.timeout.map(u64::from) && value == asked
            } else if option.is(OPTION_TSIZE) {
                let read = self.direction == Direction::Send;
                Some(value) == n.tsize
                    && if read { asked == 0 && Some(value) == self.size } else { value == asked }
            } else {
                false
            };
            assert!(fits, "the OACK grants {option:?} for {asked}; negotiated {n:?}");
        }
    }

    fn check_event(&mut self, event: Event) {
        assert!(self.failed.is_none(), "{event:?} after Event::Failed");
        assert!(!self.complete, "{event:?} after Event::Complete");
        match event {
            Event::Negotiated(n) => {
                assert!(self.negotiated.is_none(), "Event::Negotiated twice");
                assert_eq!(n, self.transfer.negotiated(), "Event::Negotiated disagrees");
                self.check_negotiated(&n);
                self.negotiated = Some(n);
            }
            Event::Readable => {
                assert_eq!(self.direction, Direction::Receive, "Readable on the sending side");
                assert!(self.negotiated.is_some(), "Readable before Negotiated");
                self.notified = true;
            }
            Event::Writable => {
                assert_eq!(self.direction, Direction::Send, "Writable on the receiving side");
                assert!(self.negotiated.is_some(), "Writable before Negotiated");
            }
            Event::Complete => {
                let Some(n) = self.negotiated else { panic!("Complete before Negotiated") };
                match self.direction {
                    Direction::Send => {
                        assert!(self.finished, "Complete before finish");
                        let last = self.wire.len() as u64 / u64::from(n.blksize) + 1;
                        assert_eq!(self.sent_hi, last, "Complete, the last block never sent");
                    }
                    Direction::Receive => {
                        assert!(self.short_block, "Complete before the last block");
                        if let (Mode::Octet, Some(tsize)) = (self.mode, n.tsize) {
                            assert_eq!(tsize, self.received, "Complete, size differs from tsize");
                        }
                        self.notified = true;
                    }
                }
                self.complete = true;
            }
            Event::Failed(error) => {
                self.check_failure(&error);
                self.failed = Some(error);
            }
        }
    }

    fn check_negotiated(&self, n: &Negotiated) {
        assert!(n.blksize >= 8 && usize::from(n.blksize) <= MAX_DATA_LEN, "blksize {n:?}");
        assert!(n.windowsize >= 1, "windowsize 0");
        match self.role {
            Role::Client => {
                let r = &self.requested;
                assert!(n.blksize == 512 || r.blksize.is_some_and(|b| n.blksize <= b), "{n:?}");
                assert!(n.windowsize == 1 || r.windowsize.is_some_and(|w| n.windowsize <= w));
                assert!(n.timeout.is_none() || n.timeout == r.timeout, "{n:?} for {r:?}");
                assert!(n.tsize.is_none() || r.tsize.is_some(), "tsize not asked for: {n:?}");
                if self.direction == Direction::Send && n.tsize.is_some() {
                    assert_eq!(n.tsize, r.tsize, "a write's tsize is not the one announced");
                }
            }
            Role::Server => {
                assert!(n.blksize == 512 || n.blksize <= self.config.max_blksize(), "{n:?}");
                assert!(n.windowsize <= self.config.max_windowsize().max(1), "{n:?}");
                assert!(n.timeout.is_none_or(|t| t >= 1), "timeout 0");
            }
        }
    }

    fn check_failure(&self, error: &TransferError) {
        let c = &self.cause;
        match error {
            TransferError::Peer { code, message } => {
                assert_eq!(c.error, Some(*code), "{error:?} without an ERROR {code} delivered");
                check_message(message.as_bytes());
            }
            TransferError::TimedOut { retries } => {
                assert!(c.timeout, "{error:?} outside a timeout");
                let most = self.config.max_retries().max(self.config.unverified_retries());
                assert!(*retries <= most, "{error:?}");
            }
            TransferError::OptionsRefused(_) => {
                assert!(c.oack && self.role == Role::Client, "{error:?} without an OACK");
            }
            TransferError::Aborted { code, message } => {
                assert_eq!(c.abort, Some(*code), "{error:?} without an abort");
                check_message(message.as_bytes());
            }
            TransferError::SizeMismatch { announced, received } => {
                assert!(self.direction == Direction::Receive && self.mode == Mode::Octet);
                assert_eq!(Some(*announced), self.transfer.negotiated().tsize, "{error:?}");
                assert_eq!(*received, self.received, "{error:?}");
                assert_ne!(announced, received, "{error:?}");
            }
        }
    }

    /// After a complete drain.
    fn check_state(&mut self) {
        let t = &self.transfer;
        assert_eq!(t.is_complete(), self.complete, "is_complete disagrees with the events");
        assert_eq!(t.error(), self.failed.as_ref(), "error() disagrees with the events");
        assert_eq!(t.role(), self.role, "the role changed");
        assert_eq!(t.direction(), self.direction, "the direction changed");
        assert_eq!(t.negotiated(), self.negotiated.unwrap_or_default(), "negotiated() changed");
        let timer = t.poll_timeout();
        if let Some(at) = timer {
            assert!(at > self.now, "the timer asks for {at:?} at {:?}: a busy loop", self.now);
        }
        let over = t.is_complete() || t.error().is_some();
        if !over && timer.is_none() {
            let waits = match self.direction {
                Direction::Send => !self.finished,
                Direction::Receive => t.readable_len() > 0,
            };
            assert!(waits, "stuck: not over, no timer, and the application has nothing to do");
        }
        if t.is_closed() {
            assert!(over, "closed before it is over");
            assert!(timer.is_none(), "closed with a timer");
            self.silent = true;
        }
        if t.error().is_some() || (t.is_complete() && self.direction == Direction::Send) {
            assert!(t.is_closed(), "over and drained, but not closed");
        }
        if t.is_complete() && self.direction == Direction::Receive && self.config.dally().is_zero()
        {
            assert!(t.is_closed(), "complete without dallying, but not closed");
        }

        let s = t.stats();
        let p = self.stats;
        let counters = [
            (s.data_sent, p.data_sent),
            (s.data_retransmitted, p.data_retransmitted),
            (s.data_received, p.data_received),
            (s.data_dropped, p.data_dropped),
            (s.acks_sent, p.acks_sent),
            (s.acks_received, p.acks_received),
            (s.duplicate_acks, p.duplicate_acks),
            (s.timeouts, p.timeouts),
            (s.strangers, p.strangers),
            (s.malformed, p.malformed),
            (s.wire_bytes, p.wire_bytes),
        ];
        assert!(counters.iter().all(|(now, before)| now >= before), "a counter went down: {s:?}");
        self.stats = s;

        assert_eq!(t.readable_len(), self.unread.len(), "readable_len disagrees with DATA taken");
        if self.received > self.received_at_read {
            assert!(self.notified, "bytes arrived without Readable or Complete");
        }
        if self.direction == Direction::Receive || self.finished || over {
            assert_eq!(t.writable_len(), 0, "writable, but nothing may be written");
        }
        if self.sent_hi > 0 {
            assert!(self.negotiated.is_some(), "DATA sent before negotiation");
        }
        if let (Some(error), false) = (&self.failed, self.failure_checked) {
            // The peer heard why, with the right code, unless it caused the failure itself or
            // a download came out short.
            let told = self.peer_error;
            let fits = match error {
                TransferError::Peer { .. } => told.is_none(),
                // An upload that differs from its tsize is refused; a download is acknowledged.
                TransferError::SizeMismatch { .. } => match self.role {
                    Role::Server => told == Some(ErrorCode::NotDefined),
                    Role::Client => told.is_none(),
                },
                TransferError::TimedOut { .. } => {
                    matches!(told, None | Some(ErrorCode::NotDefined))
                }
                TransferError::OptionsRefused(_) => told == Some(ErrorCode::OptionRefused),
                TransferError::Aborted { code, .. } => told == Some(*code),
            };
            assert!(fits, "{error:?}, and the peer got ERROR {told:?}");
            self.failure_checked = true;
        }
    }

    fn summary(&self) -> Snapshot {
        Snapshot::of(&self.transfer)
    }
}

/// The other direction.
fn opposite(direction: Direction) -> Direction {
    match direction {
        Direction::Send => Direction::Receive,
        Direction::Receive => Direction::Send,
    }
}

/// An `Incoming` reports the request it came from.
fn check_incoming(
    incoming: &Incoming,
    read: bool,
    filename: &[u8],
    mode: Mode,
    pairs: &[(String, String)],
) {
    assert_eq!(incoming.is_read(), read, "an Incoming the wrong way");
    let direction = if read { Direction::Send } else { Direction::Receive };
    assert_eq!(incoming.direction(), direction, "an Incoming the wrong way");
    assert_eq!(incoming.filename(), filename, "an Incoming with another filename");
    assert_eq!(incoming.mode(), mode, "an Incoming with another mode");
    let options: Vec<(&str, &str)> = incoming.options().collect();
    let sent: Vec<(&str, &str)> = pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    assert_eq!(options, sent, "an Incoming with other options");
    let tsize = pairs.iter().find(|(n, _)| n.eq_ignore_ascii_case(OPTION_TSIZE));
    let announced = tsize.and_then(|(_, v)| parse_decimal(v).ok()).filter(|_| !read);
    assert_eq!(incoming.announced_size(), announced, "announced_size disagrees with tsize");
}
