//! `utp relay`: a UDP relay that impairs the traffic it forwards.
//!
//! Datagrams from clients on `--listen` go to `--to`; replies from `--to` go back to the
//! client they answer. Each client gets its own upstream socket, connected to `--to`, so
//! replies can be told apart and nobody but `--to` can answer through it; and its own pair
//! of [`Link`]s from the simulator, one per direction, which decide each datagram's fate.
//! The links run on virtual time, here the microseconds since the relay started: a datagram
//! is offered to its link when it is received and sent on when the link says it arrives.

use std::collections::HashMap;
use std::future::{pending, poll_fn};
use std::hash::{BuildHasher, RandomState};
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::io::ReadBuf;
use tokio::net::UdpSocket;
use tokio::time::sleep_until;
use utp_proto::sim::{GilbertElliott, Link, LinkConfig, LinkConfigError, LinkStats};
use utp_proto::{Instant, Rng};

use crate::{Failure, transfer};

/// Most clients relayed at once; a new client beyond this evicts the one idle longest.
const MAX_CLIENTS: usize = 1024;

/// Largest datagram relayed: a UDP payload cannot be longer.
const MAX_DATAGRAM: usize = 65_535;

/// Longest `--delay`, `--jitter` or `--reorder-delay`: one hour, in milliseconds.
const MAX_DELAY_MS: u64 = 3_600_000;

/// Arguments of `utp relay`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = AFTER_HELP)]
pub(crate) struct Args {
    /// Address to receive clients' datagrams on, as IP:PORT (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,

    /// Address to forward clients' datagrams to, as IP:PORT.
    #[arg(long, value_name = "ADDR")]
    to: SocketAddr,

    /// Probability that a datagram is lost, independently of every other one.
    #[arg(
        long,
        value_name = "P",
        default_value_t = 0.0,
        value_parser = parse_probability,
        allow_negative_numbers = true
    )]
    loss: f64,

    /// Bursty loss (Gilbert model): a long-run loss probability P in bursts of LEN datagrams
    /// on average, for example 0.05,4. Applies before --loss.
    #[arg(long, value_name = "P,LEN", value_parser = parse_burst_loss)]
    burst_loss: Option<GilbertElliott>,

    /// Fixed one-way delay, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0, value_parser = delay_parser())]
    delay: u64,

    /// Uniform random extra one-way delay of up to MS milliseconds (it never reorders).
    #[arg(long, value_name = "MS", default_value_t = 0, value_parser = delay_parser())]
    jitter: u64,

    /// Probability that a datagram is held back by --reorder-delay, so later ones overtake it.
    #[arg(
        long,
        value_name = "P",
        default_value_t = 0.0,
        value_parser = parse_probability,
        allow_negative_numbers = true
    )]
    reorder: f64,

    /// How long a reordered datagram is held back, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 10, value_parser = delay_parser())]
    reorder_delay: u64,

    /// Probability that a datagram is delivered twice.
    #[arg(
        long,
        value_name = "P",
        default_value_t = 0.0,
        value_parser = parse_probability,
        allow_negative_numbers = true
    )]
    duplicate: f64,

    /// Probability that one bit of a datagram is flipped.
    #[arg(
        long,
        value_name = "P",
        default_value_t = 0.0,
        value_parser = parse_probability,
        allow_negative_numbers = true
    )]
    corrupt: f64,

    /// Bottleneck rate in bytes per second (UDP payload bytes) [default: unlimited].
    #[arg(long, value_name = "BYTES_PER_S")]
    rate: Option<u64>,

    /// How many datagrams the bottleneck queue holds before it drops new ones (tail drop)
    /// [default: 1000]. Needs --rate.
    #[arg(long, value_name = "PACKETS", requires = "rate")]
    queue: Option<usize>,

    /// Seed of every random choice, so runs can be replayed [default: random, printed on
    /// exit].
    #[arg(long, value_name = "N")]
    seed: Option<u64>,

    /// Allow --listen and --to to be non-loopback addresses.
    #[arg(long)]
    allow_remote: bool,

    /// Print the counters on exit as one JSON object on stdout instead of text on stderr.
    #[arg(long)]
    json: bool,

    /// Exit after SECS seconds (fractions allowed) [default: run until Ctrl-C or SIGTERM].
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    duration: Option<Duration>,
}

/// The end of `utp relay --help`.
const AFTER_HELP: &str = "\
Both directions are impaired, each by its own link with the same settings. Every client \
(source address) gets its own pair of links and its own upstream socket, so replies from \
--to go back to the client they answer; at most 1024 clients are relayed at once, the one \
idle longest making room for a new one. A datagram goes through the bottleneck (--rate, \
--queue), loss (--burst-loss, then --loss), duplication, delay (--delay, --jitter, \
--reorder) and corruption, in that order.

On startup the relay prints `relay listening on ADDR -> TO` on stderr. When it stops (Ctrl-C, \
SIGTERM, or the end of --duration) it prints, per direction (upstream: clients to --to; \
downstream: --to to clients): received, forwarded, lost, duplicated, reordered, corrupted, \
dropped_queue, unsent (could not be sent: a socket error, or the client was evicted), \
in_flight (still in the link), bytes_received and bytes_forwarded.

Examples:
  utp relay --listen 127.0.0.1:9000 --to 127.0.0.1:9001 --loss 0.05 --delay 20
  utp relay --listen 127.0.0.1:9000 --to 127.0.0.1:9001 --burst-loss 0.02,4 --rate 1000000 --json";

/// Runs the relay until Ctrl-C, SIGTERM or the end of `--duration`, then prints the
/// counters.
///
/// # Errors
///
/// [`Failure::Usage`] when the arguments cannot work together (a non-loopback address
/// without `--allow-remote`, an invalid link configuration); [`Failure::Runtime`] when the
/// sockets or the runtime cannot be set up.
pub(crate) fn run(args: &Args) -> Result<(), Failure> {
    args.check_scope()?;
    let config = args.link_config()?;
    let seed = args.seed.unwrap_or_else(random_seed);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(format!("cannot start the async runtime: {e}")))?;
    let report = runtime.block_on(serve(args, config, seed))?;
    report.print(args.json)
}

impl Args {
    /// Refuses non-loopback addresses unless `--allow-remote` is given.
    fn check_scope(&self) -> Result<(), Failure> {
        if self.allow_remote {
            return Ok(());
        }
        for (flag, addr) in [("--listen", self.listen), ("--to", self.to)] {
            if !addr.ip().to_canonical().is_loopback() {
                return Err(Failure::Usage(format!(
                    "{flag} {addr} is not a loopback address; pass --allow-remote to relay \
                     beyond this machine"
                )));
            }
        }
        Ok(())
    }

    /// The configuration of every link, checked.
    fn link_config(&self) -> Result<LinkConfig, Failure> {
        let ms = Duration::from_millis;
        let mut config = LinkConfig::default()
            .with_latency(ms(self.delay))
            .with_jitter(ms(self.jitter))
            .with_loss(self.loss)
            .with_duplicate(self.duplicate)
            .with_reorder(self.reorder, ms(self.reorder_delay))
            .with_corrupt(self.corrupt)
            .with_mtu(MAX_DATAGRAM);
        if let Some(model) = self.burst_loss {
            config = config.with_burst_loss(model);
        }
        if let Some(rate) = self.rate {
            config = config.with_bandwidth(rate);
        }
        if let Some(packets) = self.queue {
            config = config.with_queue_capacity(packets);
        }
        config.validate().map_err(|e| Failure::Usage(describe_config_error(e)))?;
        Ok(config)
    }
}

/// Binds the socket, announces it, and relays until told to stop.
async fn serve(args: &Args, config: LinkConfig, seed: u64) -> Result<Report, Failure> {
    let listen = UdpSocket::bind(args.listen)
        .await
        .map_err(|e| Failure::Runtime(format!("cannot listen on {}: {e}", args.listen)))?;
    let local = listen
        .local_addr()
        .map_err(|e| Failure::Runtime(format!("cannot read the listening address: {e}")))?;
    if is_own_address(local, args.to) {
        return Err(Failure::Usage(format!(
            "--to {} is the relay's own listening address; the datagrams would loop",
            args.to
        )));
    }
    let clock = Clock::start();
    // Set up before announcing, so a signal sent as soon as the line is read is handled.
    let mut shutdown = Shutdown::new(args.duration.and_then(|d| clock.start.checked_add(d)))
        .map_err(|e| Failure::Runtime(format!("cannot install the signal handlers: {e}")))?;
    let mut stderr = io::stderr().lock();
    let _ = writeln!(stderr, "relay listening on {local} -> {}", args.to);
    let _ = stderr.flush();
    drop(stderr);

    let mut relay = Relay::new(listen, args.to, config, seed, clock);
    let stop = relay.run(&mut shutdown).await;
    Ok(relay.report(stop))
}

/// The relay: the listening socket, the clients and their links, and the counters.
struct Relay {
    listen: UdpSocket,
    to: SocketAddr,
    config: LinkConfig,
    seed: u64,
    /// Draws each new client's link seeds from `seed`.
    seeds: Rng,
    clock: Clock,
    clients: Clients,
    /// Clients seen since the start, evicted ones included.
    clients_seen: u64,
    /// Clients to `to`: what the relay counted itself, plus the links of evicted clients.
    upstream: Counters,
    /// `to` to clients, likewise.
    downstream: Counters,
    /// Where links hand out datagrams.
    out: Vec<u8>,
}

/// What woke the relay up.
enum Wake {
    /// Time to stop.
    Stop(Stop),
    /// A datagram (its length and sender) on the listening socket.
    Client(io::Result<(usize, SocketAddr)>),
    /// A reply (the client it is for, and its length) on an upstream socket.
    Reply(io::Result<(usize, usize)>),
    /// A datagram has reached the end of its link.
    Due,
}

impl Relay {
    fn new(listen: UdpSocket, to: SocketAddr, config: LinkConfig, seed: u64, clock: Clock) -> Self {
        Self {
            listen,
            to,
            config,
            seed,
            seeds: Rng::new(seed),
            clock,
            clients: Clients::default(),
            clients_seen: 0,
            upstream: Counters::default(),
            downstream: Counters::default(),
            out: Vec::with_capacity(MAX_DATAGRAM),
        }
    }

    /// Relays until `shutdown` fires, and says why it did.
    ///
    /// Each turn forwards every datagram that has arrived at the end of its link, then
    /// waits for a signal, a datagram from a client, a reply, or the next arrival.
    async fn run(&mut self, shutdown: &mut Shutdown) -> Stop {
        let mut from_client = vec![0; MAX_DATAGRAM];
        let mut reply = vec![0; MAX_DATAGRAM];
        loop {
            self.forward_arrived().await;
            let next = self.clients.next_arrival().and_then(|at| self.clock.deadline(at));
            let wake = tokio::select! {
                stop = shutdown.wait() => Wake::Stop(stop),
                received = self.listen.recv_from(&mut from_client) => Wake::Client(received),
                received = poll_fn(|cx| self.clients.poll_reply(cx, &mut reply)) => {
                    Wake::Reply(received)
                }
                () = sleep_until_some(next) => Wake::Due,
            };
            match wake {
                Wake::Stop(stop) => return stop,
                Wake::Client(Ok((len, from))) => {
                    self.handle_client(from, &from_client[..len]).await
                }
                Wake::Reply(Ok((client, len))) => self.handle_reply(client, &reply[..len]),
                // Receive errors are ICMP reports of earlier sends (port unreachable and the
                // like): nothing to do but carry on.
                Wake::Client(Err(_)) | Wake::Reply(Err(_)) | Wake::Due => {}
            }
        }
    }

    /// Offers a client's datagram to the client's upstream link, first making room for the
    /// client if it is new.
    async fn handle_client(&mut self, from: SocketAddr, datagram: &[u8]) {
        let now = self.clock.now();
        self.upstream.count_received(datagram);
        let index = match self.clients.find(from) {
            Some(index) => index,
            None => match self.add_client(from, now).await {
                Some(index) => index,
                None => {
                    self.upstream.unsent += 1;
                    return;
                }
            },
        };
        let client = &mut self.clients.list[index];
        client.last_seen = now;
        client.up.send(now, datagram);
    }

    /// Offers a reply from `to` to the downstream link of the client it answers.
    fn handle_reply(&mut self, client: usize, datagram: &[u8]) {
        let now = self.clock.now();
        self.downstream.count_received(datagram);
        match self.clients.list.get_mut(client) {
            Some(client) => client.down.send(now, datagram),
            None => self.downstream.unsent += 1,
        }
    }

    /// Opens an upstream socket for a new client and gives it its links; `None` when no
    /// socket can be opened.
    ///
    /// When the list is full, or the socket cannot be opened (out of file descriptors, say),
    /// the client idle longest is evicted to make room.
    async fn add_client(&mut self, addr: SocketAddr, now: Instant) -> Option<usize> {
        if self.clients.list.len() >= MAX_CLIENTS {
            self.evict_idlest();
        }
        let upstream = match connect_upstream(self.to).await {
            Ok(socket) => socket,
            Err(_) if self.evict_idlest() => connect_upstream(self.to).await.ok()?,
            Err(_) => return None,
        };
        self.clients_seen += 1;
        let client = Client {
            addr,
            upstream,
            up: Link::new(self.config, self.seeds.next_u64()),
            down: Link::new(self.config, self.seeds.next_u64()),
            last_seen: now,
        };
        Some(self.clients.insert(client))
    }

    /// Evicts the client idle longest, folding its links into the counters (what they still
    /// held is unsent); `false` when there is no client.
    fn evict_idlest(&mut self) -> bool {
        let Some(client) = self.clients.remove_idlest() else {
            return false;
        };
        self.upstream.add_link(&client.up);
        self.upstream.unsent += client.up.in_flight() as u64;
        self.downstream.add_link(&client.down);
        self.downstream.unsent += client.down.in_flight() as u64;
        true
    }

    /// Sends on every datagram whose arrival time has come, in both directions.
    async fn forward_arrived(&mut self) {
        let now = self.clock.now();
        for client in &mut self.clients.list {
            while client.up.recv(now, &mut self.out).is_some() {
                let sent = client.upstream.send(&self.out).await;
                self.upstream.count_sent(&self.out, sent.is_ok());
            }
            while client.down.recv(now, &mut self.out).is_some() {
                let sent = self.listen.send_to(&self.out, client.addr).await;
                self.downstream.count_sent(&self.out, sent.is_ok());
            }
        }
    }

    /// The counters so far: the relay's own, plus those of every live link.
    fn report(&self, stop: Stop) -> Report {
        let mut upstream = self.upstream;
        let mut downstream = self.downstream;
        for client in &self.clients.list {
            upstream.add_link(&client.up);
            upstream.in_flight += client.up.in_flight() as u64;
            downstream.add_link(&client.down);
            downstream.in_flight += client.down.in_flight() as u64;
        }
        Report {
            stopped_by: stop.name(),
            seed: self.seed,
            elapsed_secs: self.clock.elapsed().as_secs_f64(),
            clients: self.clients_seen,
            upstream,
            downstream,
        }
    }
}

/// The clients being relayed, in a list with an index by address.
#[derive(Default)]
struct Clients {
    list: Vec<Client>,
    index: HashMap<SocketAddr, usize>,
    /// Where the next [`poll_reply`](Self::poll_reply) starts, so that one busy client
    /// cannot starve the others.
    cursor: usize,
}

/// One client: its address, its upstream socket, and its two links.
struct Client {
    addr: SocketAddr,
    /// Bound to an ephemeral port and connected to `to`: sends the client's datagrams, and
    /// receives only what `to` sends back.
    upstream: UdpSocket,
    /// Client to `to`.
    up: Link,
    /// `to` to client.
    down: Link,
    /// When the client last sent a datagram.
    last_seen: Instant,
}

impl Clients {
    /// Where the client at `addr` is in the list.
    fn find(&self, addr: SocketAddr) -> Option<usize> {
        self.index.get(&addr).copied()
    }

    /// Adds a client and returns where it is in the list.
    fn insert(&mut self, client: Client) -> usize {
        let index = self.list.len();
        self.index.insert(client.addr, index);
        self.list.push(client);
        index
    }

    /// Removes and returns the client idle longest.
    fn remove_idlest(&mut self) -> Option<Client> {
        let (idlest, _) = self.list.iter().enumerate().min_by_key(|(_, c)| c.last_seen)?;
        let evicted = self.list.swap_remove(idlest);
        self.index.remove(&evicted.addr);
        if let Some(moved) = self.list.get(idlest) {
            self.index.insert(moved.addr, idlest);
        }
        Some(evicted)
    }

    /// The earliest arrival on any link.
    fn next_arrival(&self) -> Option<Instant> {
        self.list.iter().flat_map(|c| [c.up.next_arrival(), c.down.next_arrival()]).flatten().min()
    }

    /// Receives a reply on some client's upstream socket into `buf`, and returns that
    /// client's place in the list and the reply's length.
    fn poll_reply(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, usize)>> {
        let count = self.list.len();
        for offset in 0..count {
            let index = (self.cursor + offset) % count;
            let mut read = ReadBuf::new(buf);
            if let Poll::Ready(result) = self.list[index].upstream.poll_recv(cx, &mut read) {
                self.cursor = index + 1;
                return Poll::Ready(result.map(|()| (index, read.filled().len())));
            }
        }
        Poll::Pending
    }
}

/// What happened to the datagrams going one way.
///
/// Once the relay has stopped, `received + duplicated == forwarded + lost + dropped_queue
/// + unsent + in_flight`.
#[derive(Clone, Copy, Debug, Default, Serialize)]
struct Counters {
    /// Datagrams received.
    received: u64,
    /// Copies sent on.
    forwarded: u64,
    /// Datagrams lost to --loss or --burst-loss.
    lost: u64,
    /// Extra copies made by --duplicate.
    duplicated: u64,
    /// Copies held back by --reorder.
    reordered: u64,
    /// Copies with a bit flipped by --corrupt.
    corrupted: u64,
    /// Datagrams dropped because the --queue was full.
    dropped_queue: u64,
    /// Copies that could not be sent: a socket error, their client was evicted, or no
    /// upstream socket could be opened for it.
    unsent: u64,
    /// Copies still in the link when the relay stopped.
    in_flight: u64,
    /// Bytes received.
    bytes_received: u64,
    /// Bytes sent on.
    bytes_forwarded: u64,
}

impl Counters {
    fn count_received(&mut self, datagram: &[u8]) {
        self.received += 1;
        self.bytes_received += datagram.len() as u64;
    }

    fn count_sent(&mut self, datagram: &[u8], sent: bool) {
        if sent {
            self.forwarded += 1;
            self.bytes_forwarded += datagram.len() as u64;
        } else {
            self.unsent += 1;
        }
    }

    /// Adds what `link` did to the datagrams.
    fn add_link(&mut self, link: &Link) {
        let stats: LinkStats = link.stats();
        // No datagram exceeds the MTU, which is the largest UDP payload; counted as lost
        // anyway so that the totals always add up.
        self.lost += stats.lost_random + stats.lost_burst + stats.dropped_mtu;
        self.duplicated += stats.duplicated;
        self.reordered += stats.reordered;
        self.corrupted += stats.corrupted;
        self.dropped_queue += stats.dropped_queue;
    }

    /// The counters as one line of text.
    fn describe(&self) -> String {
        format!(
            "received {} ({} B), forwarded {} ({} B), lost {}, duplicated {}, reordered {}, \
             corrupted {}, dropped by queue {}, unsent {}, in flight {}",
            self.received,
            self.bytes_received,
            self.forwarded,
            self.bytes_forwarded,
            self.lost,
            self.duplicated,
            self.reordered,
            self.corrupted,
            self.dropped_queue,
            self.unsent,
            self.in_flight
        )
    }
}

/// Everything printed when the relay stops.
#[derive(Debug, Serialize)]
struct Report {
    /// What stopped the relay: `interrupt`, `terminate` or `duration`.
    stopped_by: &'static str,
    /// The seed, to replay the run with `--seed`.
    seed: u64,
    /// How long the relay ran.
    elapsed_secs: f64,
    /// Clients seen.
    clients: u64,
    /// Clients to `--to`.
    upstream: Counters,
    /// `--to` to clients.
    downstream: Counters,
}

impl Report {
    /// Prints the report: as JSON on stdout, or as text on stderr.
    fn print(&self, json: bool) -> Result<(), Failure> {
        if json {
            transfer::print_json(self, "counters", false)
        } else {
            let mut stderr = io::stderr().lock();
            let _ = writeln!(
                stderr,
                "relay stopped by {} after {:.3} s (seed {}, {} client{})\n  upstream:   {}\n  \
                 downstream: {}",
                self.stopped_by,
                self.elapsed_secs,
                self.seed,
                self.clients,
                if self.clients == 1 { "" } else { "s" },
                self.upstream.describe(),
                self.downstream.describe()
            );
            Ok(())
        }
    }
}

/// Maps the wall clock onto the links' virtual time: microseconds since the relay started.
struct Clock {
    start: tokio::time::Instant,
}

impl Clock {
    fn start() -> Self {
        Self { start: tokio::time::Instant::now() }
    }

    fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    fn now(&self) -> Instant {
        Instant::from_micros(u64::try_from(self.elapsed().as_micros()).unwrap_or(u64::MAX))
    }

    /// The wall-clock time of `at`; `None` if it is too far away to represent.
    fn deadline(&self, at: Instant) -> Option<tokio::time::Instant> {
        self.start.checked_add(Duration::from_micros(at.as_micros()))
    }
}

/// Why the relay stopped.
#[derive(Clone, Copy, Debug)]
enum Stop {
    /// Ctrl-C (SIGINT).
    Interrupt,
    /// SIGTERM.
    Terminate,
    /// The end of `--duration`.
    Duration,
}

impl Stop {
    fn name(self) -> &'static str {
        match self {
            Self::Interrupt => "interrupt",
            Self::Terminate => "terminate",
            Self::Duration => "duration",
        }
    }
}

/// What stops the relay: Ctrl-C, SIGTERM (on Unix) or the end of `--duration`.
struct Shutdown {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    deadline: Option<tokio::time::Instant>,
}

impl Shutdown {
    /// Installs the signal handlers, and sets the `--duration` deadline (if any); must run
    /// inside the runtime.
    fn new(deadline: Option<tokio::time::Instant>) -> io::Result<Self> {
        #[cfg(unix)]
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            #[cfg(unix)]
            interrupt: signal(SignalKind::interrupt())?,
            #[cfg(unix)]
            terminate: signal(SignalKind::terminate())?,
            deadline,
        })
    }

    /// Waits for the first reason to stop. Cancel-safe.
    async fn wait(&mut self) -> Stop {
        let deadline = sleep_until_some(self.deadline);
        #[cfg(unix)]
        let stop = tokio::select! {
            _ = self.interrupt.recv() => Stop::Interrupt,
            _ = self.terminate.recv() => Stop::Terminate,
            () = deadline => Stop::Duration,
        };
        #[cfg(not(unix))]
        let stop = tokio::select! {
            _ = tokio::signal::ctrl_c() => Stop::Interrupt,
            () = deadline => Stop::Duration,
        };
        stop
    }
}

/// Sleeps until `deadline`, or forever if there is none.
async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => pending().await,
    }
}

/// A socket on an ephemeral port of the right family, connected to `to`.
async fn connect_upstream(to: SocketAddr) -> io::Result<UdpSocket> {
    let any: SocketAddr = if to.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0; 16], 0).into() };
    let socket = UdpSocket::bind(any).await?;
    socket.connect(to).await?;
    Ok(socket)
}

/// Whether datagrams sent to `to` would come back to the relay listening on `local`.
fn is_own_address(local: SocketAddr, to: SocketAddr) -> bool {
    let to_ip = to.ip().to_canonical();
    let local_ip = local.ip().to_canonical();
    to.port() == local.port()
        && (to_ip == local_ip || (local_ip.is_unspecified() && to_ip.is_loopback()))
}

/// A seed from the process's random hash keys and the time, for runs without `--seed`.
fn random_seed() -> u64 {
    RandomState::new().hash_one(SystemTime::now())
}

/// Explains an invalid link configuration in terms of the flags.
fn describe_config_error(error: LinkConfigError) -> String {
    match error {
        LinkConfigError::ZeroBandwidth => "--rate must be at least 1 byte per second".to_owned(),
        LinkConfigError::Probability { field, value } => {
            let flag = match field {
                "loss" => "--loss",
                "duplicate" => "--duplicate",
                "reorder" => "--reorder",
                "corrupt" => "--corrupt",
                _ => "--burst-loss",
            };
            format!("{flag}: {value} is not a probability in [0, 1]")
        }
        other => format!("invalid impairments: {other}"),
    }
}

/// Parses a probability in `[0, 1]`.
fn parse_probability(text: &str) -> Result<f64, String> {
    let p: f64 = text.trim().parse().map_err(|_| "not a number".to_owned())?;
    if (0.0..=1.0).contains(&p) { Ok(p) } else { Err("must be a probability in [0, 1]".to_owned()) }
}

/// Parses `P,LEN` into the Gilbert model with average loss `P` in bursts of `LEN`.
fn parse_burst_loss(text: &str) -> Result<GilbertElliott, String> {
    let (p, len) =
        text.split_once(',').ok_or_else(|| "expected P,LEN, for example 0.05,4".to_owned())?;
    let p = parse_probability(p).map_err(|e| format!("P {e}"))?;
    if p >= 1.0 {
        return Err("P must be below 1".to_owned());
    }
    let len: f64 = len.trim().parse().map_err(|_| "LEN is not a number".to_owned())?;
    if !(len.is_finite() && len >= 1.0) {
        return Err("LEN, the mean burst length in datagrams, must be at least 1".to_owned());
    }
    // The arithmetic of `from_average`, which panics when the pair is impossible.
    let p_good_to_bad = p * (1.0 / len) / (1.0 - p);
    if p_good_to_bad > 1.0 {
        return Err(format!(
            "a loss of {p} cannot be reached with bursts of {len} datagrams on average (at \
             most {:.4}: bursts are separated by at least one delivered datagram)",
            len / (len + 1.0)
        ));
    }
    Ok(GilbertElliott::from_average(p, len))
}

/// Parses a non-negative number of seconds.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text.trim().parse().map_err(|_| "not a number".to_owned())?;
    Duration::try_from_secs_f64(secs)
        .map_err(|_| "must be a non-negative number of seconds".to_owned())
}

/// Parses a delay in milliseconds, up to an hour.
fn delay_parser() -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(..=MAX_DELAY_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_loss_rejects_what_from_average_would_panic_on() {
        assert!(parse_burst_loss("0.05,4").is_ok());
        assert!(parse_burst_loss("0.5,1").is_ok());
        for bad in ["0.6,1", "1,4", "-0.1,4", "NaN,4", "0.1,0.5", "0.1,inf", "0.1,NaN", "0.1", ""] {
            assert!(parse_burst_loss(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn probabilities_are_checked() {
        assert_eq!(parse_probability("0.25"), Ok(0.25));
        assert_eq!(parse_probability("1"), Ok(1.0));
        for bad in ["1.5", "-0.1", "NaN", "inf", "x", ""] {
            assert!(parse_probability(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn own_address_is_detected() {
        let at = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(is_own_address(at("127.0.0.1:9000"), at("127.0.0.1:9000")));
        assert!(is_own_address(at("0.0.0.0:9000"), at("127.0.0.1:9000")));
        assert!(is_own_address(at("[::]:9000"), at("[::1]:9000")));
        assert!(!is_own_address(at("127.0.0.1:9000"), at("127.0.0.1:9001")));
        assert!(!is_own_address(at("0.0.0.0:9000"), at("192.0.2.1:9000")));
    }

    #[test]
    fn the_idlest_client_is_removed() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let to: SocketAddr = "127.0.0.1:9".parse().unwrap();
            let mut clients = Clients::default();
            for (port, last_seen) in [(10_000, 5), (10_001, 1), (10_002, 7), (10_003, 3)] {
                clients.insert(Client {
                    addr: SocketAddr::from(([127, 0, 0, 1], port)),
                    upstream: connect_upstream(to).await.unwrap(),
                    up: Link::new(LinkConfig::default(), 0),
                    down: Link::new(LinkConfig::default(), 1),
                    last_seen: Instant::from_millis(last_seen),
                });
            }
            let ports = |clients: &Clients| {
                let mut ports: Vec<u16> = clients.list.iter().map(|c| c.addr.port()).collect();
                ports.sort_unstable();
                ports
            };
            assert_eq!(clients.remove_idlest().unwrap().addr.port(), 10_001);
            assert_eq!(clients.remove_idlest().unwrap().addr.port(), 10_003);
            assert_eq!(ports(&clients), [10_000, 10_002]);
            for (i, client) in clients.list.iter().enumerate() {
                assert_eq!(clients.find(client.addr), Some(i));
            }
            assert_eq!(clients.find(SocketAddr::from(([127, 0, 0, 1], 10_001))), None);
            assert_eq!(clients.remove_idlest().unwrap().addr.port(), 10_000);
            assert_eq!(clients.remove_idlest().unwrap().addr.port(), 10_002);
            assert!(clients.remove_idlest().is_none());
        });
    }
}
