//! A userspace UDP impairment relay between the client and the gateway (this kernel has no `netem`).
//!
//! The relay runs as a thread of the test process inside the router namespace (`setns` on that thread only). It
//! listens on the router's client-side address ([`RTR_CLI_ADDR`], ports 500 and 4500); the client's profile names
//! that address as its gateway. For every client (source address, source port, relay port) it keeps one upstream
//! socket on the router's gateway-side address, connected to the real gateway on the same port, and forwards
//! both ways. To the gateway the relay is a NAT (the NAT-T float to 4500 gets its own upstream port); to the client
//! the gateway is at the relay's address, so both sides detect a NAT, as behind any real NAT.
//!
//! Each direction has its own [`Impairment`] (drop, duplicate, reorder, delay and jitter, rate limit) drawn from
//! its own seeded generator: the n-th packet of a direction always meets the same decision for a seed.
//! Everything is bounded: the number of flows, the packets held or queued, the time a packet is held, each loop
//! iteration and the relay's lifetime. It stops on drop.
//!
//! ```text
//!  cli ──> 192.0.2.1:{500,4500} [relay in rtr] 203.0.113.1:<port> ──> 203.0.113.2:{500,4500} gw
//! ```

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::fs::File;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::error::{HarnessError, Result};
use super::testbed::{Role, Testbed, GW_ADDR, RTR_CLI_ADDR, RTR_GW_ADDR};

/// Which packets an [`Impairment`] applies to (the others pass untouched, in order).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Traffic {
    /// Everything: IKE, ESP, keepalives.
    #[default]
    All,
    /// IKE only (port 500, and port 4500 with the non-ESP marker).
    Ike,
    /// ESP only (port 4500 without the non-ESP marker, not a NAT keepalive).
    Esp,
}

/// What a packet is, from its port and first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Ike,
    Esp,
    Keepalive,
}

/// Classifies a UDP payload relayed on `port` (500 or 4500).
pub fn classify(port: u16, data: &[u8]) -> Kind {
    if port != 4500 {
        return Kind::Ike;
    }
    match data {
        [0xff] => Kind::Keepalive,
        [0, 0, 0, 0, ..] => Kind::Ike,
        _ => Kind::Esp,
    }
}

impl Traffic {
    fn matches(self, kind: Kind) -> bool {
        match self {
            Traffic::All => true,
            Traffic::Ike => kind == Kind::Ike,
            Traffic::Esp => kind == Kind::Esp,
        }
    }
}

/// The initiator SPI of an IKE_SA_INIT request (not a response) in a payload relayed on `port`.
pub fn ike_sa_init_request(port: u16, data: &[u8]) -> Option<u64> {
    let hdr = if port == 4500 { data.strip_prefix(&[0u8, 0, 0, 0][..])? } else { data };
    if hdr.len() < 28 {
        return None;
    }
    let (exchange, flags) = (hdr[18], hdr[19]);
    // Exchange type 34 = IKE_SA_INIT, flag 0x20 = Response.
    if exchange != 34 || flags & 0x20 != 0 {
        return None;
    }
    Some(u64::from_be_bytes(hdr[..8].try_into().ok()?))
}

/// The impairment of one direction. All probabilities are in `0.0..=1.0`; check with [`Impairment::validate`].
#[derive(Clone, Debug, PartialEq)]
pub struct Impairment {
    /// Probability that a packet is dropped.
    pub drop: f64,
    /// Probability that a (not dropped) packet is sent twice.
    pub duplicate: f64,
    /// Probability that a (not dropped) packet is held back until `reorder_min..=reorder_max` later packets of
    /// its direction have passed, or `reorder_max_hold` has elapsed.
    pub reorder: f64,
    /// Fewest later packets a held packet waits for (≥ 1).
    pub reorder_min: u32,
    /// Most later packets a held packet waits for.
    pub reorder_max: u32,
    /// Longest time a packet is held back for reordering.
    pub reorder_max_hold: Duration,
    /// Fixed delay added to every impaired packet.
    pub delay: Duration,
    /// Uniform random extra delay `0..=jitter` (can reorder too).
    pub jitter: Duration,
    /// Rate limit in bytes per second (a shaper: packets wait for their turn; a packet that would wait longer
    /// than `max_queue_delay` is dropped).
    pub rate: Option<u64>,
    /// Longest wait in the rate limiter's queue.
    pub max_queue_delay: Duration,
    /// Which packets are impaired.
    pub traffic: Traffic,
}

impl Default for Impairment {
    fn default() -> Self {
        Impairment::none()
    }
}

/// Upper bounds that keep an impairment sane (and every wait bounded).
const MAX_DELAY: Duration = Duration::from_secs(5);
const MAX_REORDER_DEPTH: u32 = 10_000;

impl Impairment {
    /// Passes everything untouched.
    pub fn none() -> Impairment {
        Impairment {
            drop: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_min: 1,
            reorder_max: 3,
            reorder_max_hold: Duration::from_millis(200),
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            rate: None,
            max_queue_delay: Duration::from_millis(500),
            traffic: Traffic::All,
        }
    }

    /// Loss, duplication and reordering each with probability `p`, on all traffic. A reordered packet waits for
    /// 1 to 3 later ones of its direction, at most 1 s: in a stream it swaps places with its neighbours; an IKE
    /// request or response (nothing follows it until the peer retransmits) is overtaken by the retransmission
    /// when that comes sooner.
    pub fn lossy(p: f64) -> Impairment {
        Impairment { drop: p, duplicate: p, reorder: p, reorder_max_hold: Duration::from_secs(1), ..Impairment::none() }
    }

    /// Drops everything.
    pub fn blackhole() -> Impairment {
        Impairment { drop: 1.0, ..Impairment::none() }
    }

    /// A typed error for probabilities outside `0..=1`, an empty reorder range or unbounded waits.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(HarnessError::Setup(format!("relay impairment: {what}")));
        for (name, p) in [("drop", self.drop), ("duplicate", self.duplicate), ("reorder", self.reorder)] {
            if !(0.0..=1.0).contains(&p) {
                return bad(&format!("{name} = {p} is not a probability in 0..=1"));
            }
        }
        if self.reorder_min == 0 || self.reorder_min > self.reorder_max || self.reorder_max > MAX_REORDER_DEPTH {
            return bad(&format!(
                "reorder depth {}..={} must satisfy 1 <= min <= max <= {MAX_REORDER_DEPTH}",
                self.reorder_min, self.reorder_max
            ));
        }
        for (name, d) in [
            ("reorder_max_hold", self.reorder_max_hold),
            ("delay", self.delay),
            ("jitter", self.jitter),
            ("max_queue_delay", self.max_queue_delay),
        ] {
            if d > MAX_DELAY {
                return bad(&format!("{name} = {d:?} is over {MAX_DELAY:?}"));
            }
        }
        if self.rate == Some(0) {
            return bad("rate = 0 bytes/s");
        }
        Ok(())
    }

    fn is_none(&self) -> bool {
        self.drop == 0.0
            && self.duplicate == 0.0
            && self.reorder == 0.0
            && self.delay.is_zero()
            && self.jitter.is_zero()
            && self.rate.is_none()
    }
}

/// Counters of one direction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirStats {
    /// Packets received by the relay.
    pub received: u64,
    /// Packets sent on (duplicates included).
    pub forwarded: u64,
    /// Packets dropped by the impairment.
    pub dropped: u64,
    /// Extra copies sent.
    pub duplicated: u64,
    /// Packets sent after a packet that arrived later.
    pub reordered: u64,
    /// Packets held back for reordering.
    pub held: u64,
    /// Packets dropped by the rate limiter or because a queue was full.
    pub overflow: u64,
    /// Packets that could not be sent (socket error).
    pub send_errors: u64,
}

/// Counters of the relay.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Client -> gateway.
    pub up: DirStats,
    /// Gateway -> client.
    pub down: DirStats,
    /// IKE_SA_INIT requests the client sent (retransmissions included), before impairment.
    pub ike_sa_init_requests: u64,
    /// Distinct initiator SPIs of those requests: the number of IKE SA setup attempts.
    pub ike_sa_init_spis: u64,
    /// Client flows (source address, source port, relay port) seen.
    pub flows: u64,
    /// Packets dropped because the flow table was full.
    pub flow_overflow: u64,
}

/// A small seeded generator (splitmix64 seeding, xorshift64*): reproducible, no dependency.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value, 0 included).
    pub fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        Rng(if z == 0 { 0x2545_f491_4f6c_dd1d } else { z })
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0.0..1.0`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u32, hi: u32) -> u32 {
        if hi <= lo {
            return lo;
        }
        lo + (self.next_u64() % u64::from(hi - lo + 1)) as u32
    }
}

/// A packet inside an [`Impairer`]: `flow` is the caller's tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    pub flow: usize,
    pub data: Vec<u8>,
    /// Arrival number in its direction.
    pub seq: u64,
}

#[derive(Debug)]
struct Held {
    packet: Packet,
    release_after: u64,
    deadline: Instant,
}

/// Most packets one direction holds or queues at once; more are dropped (counted as overflow).
pub const MAX_QUEUE: usize = 4096;

/// The impairment of one direction as a deterministic machine: [`Impairer::push`] packets in, take them out
/// with [`Impairer::pop_due`]. Time is passed in, so it is testable without sockets.
#[derive(Debug)]
pub struct Impairer {
    imp: Impairment,
    rng: Rng,
    arrivals: u64,
    order: u64,
    queue: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    slots: Vec<Option<Packet>>,
    free: Vec<usize>,
    held: Vec<Held>,
    max_sent: Option<u64>,
    shaper_free: Option<Instant>,
    /// Its counters.
    pub stats: DirStats,
}

impl Impairer {
    /// A direction with `imp` (validated) and its own generator seeded by `seed`.
    pub fn new(imp: Impairment, seed: u64) -> Result<Impairer> {
        imp.validate()?;
        Ok(Impairer {
            imp,
            rng: Rng::new(seed),
            arrivals: 0,
            order: 0,
            queue: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            held: Vec::new(),
            max_sent: None,
            shaper_free: None,
            stats: DirStats::default(),
        })
    }

    /// Replaces the impairment and restarts the generator from `seed`; packets already held or queued leave as
    /// scheduled and the counters go on.
    pub fn reconfigure(&mut self, imp: Impairment, seed: u64) -> Result<()> {
        imp.validate()?;
        self.imp = imp;
        self.rng = Rng::new(seed);
        self.shaper_free = None;
        Ok(())
    }

    fn pending(&self) -> usize {
        self.queue.len() + self.held.len()
    }

    fn schedule(&mut self, at: Instant, packet: Packet) {
        if self.pending() >= MAX_QUEUE {
            self.stats.overflow += 1;
            return;
        }
        let slot = match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(packet);
                i
            }
            None => {
                self.slots.push(Some(packet));
                self.slots.len() - 1
            }
        };
        self.order += 1;
        self.queue.push(Reverse((at, self.order, slot)));
    }

    /// When the packet leaves, after delay, jitter and the rate limit; `None`: the shaper's queue is too long.
    fn departure(&mut self, now: Instant, len: usize) -> Option<Instant> {
        let mut at = now + self.imp.delay;
        if !self.imp.jitter.is_zero() {
            at += self.imp.jitter.mul_f64(self.rng.unit());
        }
        if let Some(rate) = self.imp.rate {
            let start = self.shaper_free.map_or(at, |f| f.max(at));
            if start.saturating_duration_since(at) > self.imp.max_queue_delay {
                return None;
            }
            self.shaper_free = Some(start + Duration::from_secs_f64(len as f64 / rate as f64));
            at = start;
        }
        Some(at)
    }

    /// A packet of `kind` arrives at `now`.
    pub fn push(&mut self, now: Instant, flow: usize, data: Vec<u8>, kind: Kind) {
        self.stats.received += 1;
        self.arrivals += 1;
        let packet = Packet { flow, data, seq: self.arrivals };
        if !self.imp.traffic.matches(kind) || self.imp.is_none() {
            self.schedule(now, packet);
        } else if self.rng.chance(self.imp.drop) {
            self.stats.dropped += 1;
        } else {
            let dup = self.rng.chance(self.imp.duplicate);
            let hold = self.rng.chance(self.imp.reorder);
            let depth = self.rng.range(self.imp.reorder_min, self.imp.reorder_max);
            if hold && self.pending() < MAX_QUEUE {
                self.stats.held += 1;
                if dup {
                    self.stats.duplicated += 1;
                    self.schedule(now, packet.clone());
                }
                let deadline = now + self.imp.reorder_max_hold;
                self.held.push(Held { packet, release_after: self.arrivals + u64::from(depth), deadline });
            } else {
                match self.departure(now, packet.data.len()) {
                    None => self.stats.overflow += 1,
                    Some(at) => {
                        if dup {
                            self.stats.duplicated += 1;
                            self.schedule(at, packet.clone());
                        }
                        self.schedule(at, packet);
                    }
                }
            }
        }
        self.release_held(now);
    }

    fn release_held(&mut self, now: Instant) {
        let arrivals = self.arrivals;
        let mut i = 0;
        while i < self.held.len() {
            let h = &self.held[i];
            if arrivals >= h.release_after || now >= h.deadline {
                let h = self.held.swap_remove(i);
                self.schedule(now, h.packet);
            } else {
                i += 1;
            }
        }
    }

    /// The packets due at `now`, in departure order (at most `limit`).
    pub fn pop_due(&mut self, now: Instant, limit: usize) -> Vec<Packet> {
        self.release_held(now);
        let mut out = Vec::new();
        while out.len() < limit {
            match self.queue.peek() {
                Some(Reverse((at, _, _))) if *at <= now => {}
                _ => break,
            }
            let Some(Reverse((_, _, slot))) = self.queue.pop() else { break };
            let Some(p) = self.slots.get_mut(slot).and_then(Option::take) else { continue };
            self.free.push(slot);
            match self.max_sent {
                Some(m) if p.seq < m => self.stats.reordered += 1,
                _ => self.max_sent = Some(p.seq),
            }
            self.stats.forwarded += 1;
            out.push(p);
        }
        out
    }

    /// When the next packet is due (a held packet's deadline included).
    pub fn next_due(&self) -> Option<Instant> {
        let q = self.queue.peek().map(|Reverse((at, _, _))| *at);
        let h = self.held.iter().map(|h| h.deadline).min();
        match (q, h) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Configuration of a [`Relay`].
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// Where the relay listens in `rtr` (the address the client's profile names as the gateway).
    pub listen: Ipv4Addr,
    /// The real gateway.
    pub gateway: Ipv4Addr,
    /// Relayed UDP ports (same port on both sides).
    pub ports: Vec<u16>,
    /// Client -> gateway.
    pub up: Impairment,
    /// Gateway -> client.
    pub down: Impairment,
    /// Seed of both directions' generators.
    pub seed: u64,
    /// Most client flows; packets of further ones are dropped.
    pub max_flows: usize,
    /// The relay stops by itself after this long.
    pub max_lifetime: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            listen: RTR_CLI_ADDR,
            gateway: GW_ADDR,
            ports: vec![500, 4500],
            up: Impairment::none(),
            down: Impairment::none(),
            seed: 1,
            max_flows: 64,
            max_lifetime: Duration::from_secs(1800),
        }
    }
}

#[derive(Debug)]
struct Shared {
    up: Impairment,
    down: Impairment,
    seed: u64,
    generation: u64,
    stats: RelayStats,
    spis: BTreeSet<u64>,
}

/// The running relay thread; stopped (and joined) on drop.
#[derive(Debug)]
pub struct Relay {
    stop: Arc<AtomicBool>,
    shared: Arc<Mutex<Shared>>,
    thread: Option<JoinHandle<()>>,
    listen: Ipv4Addr,
}

const MAX_SPIS: usize = 100_000;
const BATCH: usize = 64;

impl Relay {
    /// Starts the relay in the router namespace of `tb`; returns once its sockets are bound.
    pub fn start(tb: &Testbed, config: RelayConfig) -> Result<Relay> {
        config.up.validate()?;
        config.down.validate()?;
        if config.ports.is_empty() || config.ports.len() > 8 || config.max_flows == 0 {
            return Err(HarnessError::Setup(format!(
                "relay: {} ports and {} flows (1..=8 ports, at least one flow)",
                config.ports.len(),
                config.max_flows
            )));
        }
        let netns = format!("/run/netns/{}", tb.ns(Role::Rtr));
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Mutex::new(Shared {
            up: config.up.clone(),
            down: config.down.clone(),
            seed: config.seed,
            generation: 0,
            stats: RelayStats::default(),
            spis: BTreeSet::new(),
        }));
        let (tx, rx) = mpsc::channel();
        let (stop2, shared2, cfg) = (stop.clone(), shared.clone(), config.clone());
        let thread = std::thread::Builder::new()
            .name("impair-relay".into())
            .spawn(move || {
                let sockets = match enter_netns(&netns).and_then(|()| bind_listeners(&cfg)) {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let _ = tx.send(Ok(()));
                run(sockets, &cfg, &stop2, &shared2);
            })
            .map_err(|e| HarnessError::Setup(format!("relay thread: {e}")))?;
        let mut relay = Relay { stop, shared, thread: Some(thread), listen: config.listen };
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(())) => {
                tracing::info!(listen = %config.listen, seed = config.seed, "impairment relay running");
                Ok(relay)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => {
                relay.shutdown();
                Err(HarnessError::Setup("relay thread did not start".into()))
            }
        }
    }

    /// The address the client should use as its gateway.
    pub fn address(&self) -> Ipv4Addr {
        self.listen
    }

    /// Replaces both directions' impairments and restarts their generators from `seed` (packets already held
    /// or queued are sent as scheduled).
    pub fn set_impairment(&self, up: Impairment, down: Impairment, seed: u64) -> Result<()> {
        up.validate()?;
        down.validate()?;
        let mut s = self.shared.lock().map_err(|_| HarnessError::Setup("relay state poisoned".into()))?;
        s.up = up;
        s.down = down;
        s.seed = seed;
        s.generation += 1;
        Ok(())
    }

    /// The counters so far (since the start; they survive [`Relay::set_impairment`]).
    pub fn stats(&self) -> RelayStats {
        self.shared.lock().map(|s| s.stats.clone()).unwrap_or_default()
    }

    /// Stops the relay and returns its final counters.
    pub fn stop(mut self) -> RelayStats {
        self.shutdown();
        self.stats()
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Moves the calling thread (only) into the network namespace at `path`.
fn enter_netns(path: &str) -> Result<()> {
    let f = File::open(path).map_err(|e| HarnessError::io(path, e))?;
    // SAFETY: setns on a valid, open namespace file descriptor; CLONE_NEWNET only changes this thread's network
    // namespace, which a multi-threaded process may do.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if r != 0 {
        return Err(HarnessError::io(path, std::io::Error::last_os_error()));
    }
    Ok(())
}

struct Sockets {
    listeners: Vec<(u16, UdpSocket)>,
}

fn bind_listeners(cfg: &RelayConfig) -> Result<Sockets> {
    let mut listeners = Vec::new();
    for &port in &cfg.ports {
        let addr = SocketAddrV4::new(cfg.listen, port);
        let s = UdpSocket::bind(addr).map_err(|e| HarnessError::Setup(format!("relay: bind {addr}: {e}")))?;
        s.set_nonblocking(true).map_err(|e| HarnessError::Setup(format!("relay: {e}")))?;
        listeners.push((port, s));
    }
    Ok(Sockets { listeners })
}

struct Flow {
    client: SocketAddr,
    listener: usize,
    port: u16,
    upstream: UdpSocket,
}

fn run(sockets: Sockets, cfg: &RelayConfig, stop: &AtomicBool, shared: &Mutex<Shared>) {
    let started = Instant::now();
    let mut flows: Vec<Flow> = Vec::new();
    let mut generation = u64::MAX;
    let mut up = Impairer::new(Impairment::none(), 0).expect("the null impairment is valid");
    let mut down = Impairer::new(Impairment::none(), 0).expect("the null impairment is valid");
    let (mut sa_init, mut flow_overflow) = (0u64, 0u64);
    let mut new_spis: Vec<u64> = Vec::new();
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) && started.elapsed() < cfg.max_lifetime {
        if let Ok(s) = shared.lock() {
            if s.generation != generation {
                generation = s.generation;
                // Validated on the way in.
                let set = up
                    .reconfigure(s.up.clone(), s.seed)
                    .and_then(|()| down.reconfigure(s.down.clone(), s.seed ^ 0xd0d0_d0d0_d0d0_d0d0));
                match set {
                    Ok(()) => tracing::debug!(seed = s.seed, up = ?s.up, down = ?s.down, "relay impairment set"),
                    Err(e) => tracing::warn!(%e, "relay impairment rejected"),
                }
            }
        }
        // Wait for input or the next departure, at most 20 ms (the stop flag is seen within that).
        let now = Instant::now();
        let next = [up.next_due(), down.next_due()].into_iter().flatten().min();
        let wait =
            next.map_or(Duration::from_millis(20), |t| t.saturating_duration_since(now)).min(Duration::from_millis(20));
        let mut fds: Vec<libc::pollfd> = sockets
            .listeners
            .iter()
            .map(|(_, s)| s.as_raw_fd())
            .chain(flows.iter().map(|f| f.upstream.as_raw_fd()))
            .map(|fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 })
            .collect();
        // Rounded up: a departure less than 1 ms away waits 1 ms rather than spinning.
        let ms = wait.as_micros().div_ceil(1000).min(20) as libc::c_int;
        // SAFETY: fds is a valid array of pollfd of the given length for the duration of the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        let now = Instant::now();
        if n > 0 {
            let nl = sockets.listeners.len();
            for (i, pfd) in fds.iter().enumerate() {
                if pfd.revents == 0 {
                    continue;
                }
                if i < nl {
                    let (port, sock) = &sockets.listeners[i];
                    for _ in 0..BATCH {
                        let (len, from) = match sock.recv_from(&mut buf) {
                            Ok(x) => x,
                            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                            Err(e) => {
                                tracing::debug!(%e, "relay: receive from client");
                                break;
                            }
                        };
                        let data = buf[..len].to_vec();
                        if let Some(spi) = ike_sa_init_request(*port, &data) {
                            sa_init += 1;
                            new_spis.push(spi);
                        }
                        let idx = match flows.iter().position(|f| f.client == from && f.listener == i) {
                            Some(x) => x,
                            None if flows.len() >= cfg.max_flows => {
                                flow_overflow += 1;
                                continue;
                            }
                            None => match open_upstream(cfg.gateway, *port) {
                                Ok(upstream) => {
                                    tracing::debug!(%from, port, "relay: new flow");
                                    flows.push(Flow { client: from, listener: i, port: *port, upstream });
                                    flows.len() - 1
                                }
                                Err(e) => {
                                    tracing::warn!(%e, "relay: cannot open an upstream socket");
                                    continue;
                                }
                            },
                        };
                        up.push(now, idx, data, classify(*port, &buf[..len]));
                    }
                } else if let Some(flow) = flows.get(i - nl) {
                    for _ in 0..BATCH {
                        match flow.upstream.recv(&mut buf) {
                            Ok(len) => down.push(now, i - nl, buf[..len].to_vec(), classify(flow.port, &buf[..len])),
                            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                            Err(e) => {
                                // E.g. ICMP port unreachable while the gateway restarts.
                                tracing::debug!(%e, "relay: receive from gateway");
                                break;
                            }
                        }
                    }
                }
            }
        }
        for p in up.pop_due(now, MAX_QUEUE) {
            if let Some(f) = flows.get(p.flow) {
                if f.upstream.send(&p.data).is_err() {
                    up.stats.send_errors += 1;
                }
            }
        }
        for p in down.pop_due(now, MAX_QUEUE) {
            if let Some(f) = flows.get(p.flow) {
                if sockets.listeners[f.listener].1.send_to(&p.data, f.client).is_err() {
                    down.stats.send_errors += 1;
                }
            }
        }
        if let Ok(mut s) = shared.lock() {
            for spi in new_spis.drain(..) {
                if s.spis.len() < MAX_SPIS {
                    s.spis.insert(spi);
                }
            }
            s.stats = RelayStats {
                up: up.stats.clone(),
                down: down.stats.clone(),
                ike_sa_init_requests: sa_init,
                ike_sa_init_spis: s.spis.len() as u64,
                flows: flows.len() as u64,
                flow_overflow,
            };
        }
    }
    tracing::info!("impairment relay stopped");
}

fn open_upstream(gateway: Ipv4Addr, port: u16) -> std::io::Result<UdpSocket> {
    let s = UdpSocket::bind(SocketAddrV4::new(RTR_GW_ADDR, 0))?;
    s.connect(SocketAddrV4::new(gateway, port))?;
    s.set_nonblocking(true)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_through(imp: Impairment, seed: u64, n: usize) -> (Vec<Packet>, DirStats) {
        let mut m = Impairer::new(imp, seed).unwrap();
        let t0 = Instant::now();
        let mut out = Vec::new();
        for i in 0..n {
            let now = t0 + Duration::from_millis(i as u64);
            m.push(now, 0, vec![1, 2, 3, i as u8], Kind::Esp);
            out.extend(m.pop_due(now, usize::MAX));
        }
        // Everything held or delayed is out after its bounded wait.
        out.extend(m.pop_due(t0 + Duration::from_secs(60), usize::MAX));
        assert!(m.next_due().is_none());
        (out, m.stats)
    }

    #[test]
    fn no_impairment_passes_everything_in_order() {
        let (out, st) = run_through(Impairment::none(), 1, 500);
        assert_eq!(out.len(), 500);
        assert!(out.windows(2).all(|w| w[0].seq < w[1].seq));
        assert_eq!((st.dropped, st.duplicated, st.reordered), (0, 0, 0));
    }

    #[test]
    fn reconfiguring_keeps_what_is_held_and_the_counters() {
        let hold = Impairment { reorder: 1.0, reorder_max_hold: Duration::from_secs(1), ..Impairment::none() };
        let mut m = Impairer::new(hold, 1).unwrap();
        let t0 = Instant::now();
        m.push(t0, 0, vec![1], Kind::Esp);
        assert!(m.pop_due(t0, 10).is_empty());
        m.reconfigure(Impairment::none(), 2).unwrap();
        assert!(m.reconfigure(Impairment { drop: 3.0, ..Impairment::none() }, 2).is_err());
        m.push(t0, 0, vec![2], Kind::Esp);
        // The held packet leaves after the later one (released by it or by its deadline), counted as reordered.
        let mut out = m.pop_due(t0, 10);
        out.extend(m.pop_due(t0 + Duration::from_secs(2), 10));
        assert_eq!(out.iter().map(|p| p.data[0]).collect::<Vec<_>>(), vec![2, 1]);
        assert_eq!(m.stats.reordered, 1);
        assert_eq!(m.stats.received, 2);
        assert_eq!(m.stats.forwarded, 2);
    }

    #[test]
    fn blackhole_drops_everything() {
        let (out, st) = run_through(Impairment::blackhole(), 7, 300);
        assert!(out.is_empty());
        assert_eq!(st.dropped, 300);
    }

    #[test]
    fn lossy_rates_are_near_the_probability_and_seeded() {
        let (out, st) = run_through(Impairment::lossy(0.3), 42, 10_000);
        let rate = |n: u64| n as f64 / 10_000.0;
        assert!((rate(st.dropped) - 0.3).abs() < 0.03, "{st:?}");
        // Duplicates and holds are drawn for the 70% that pass.
        assert!((rate(st.duplicated) - 0.21).abs() < 0.03, "{st:?}");
        assert!(st.reordered > 1000, "{st:?}");
        assert_eq!(out.len() as u64, 10_000 - st.dropped + st.duplicated);
        assert_eq!(st.forwarded, out.len() as u64);
        let again = run_through(Impairment::lossy(0.3), 42, 10_000);
        assert_eq!(again.1, st, "same seed, same decisions");
        assert_ne!(run_through(Impairment::lossy(0.3), 43, 10_000).1, st);
    }

    #[test]
    fn reordering_stays_within_its_depth() {
        let imp = Impairment {
            reorder: 0.2,
            reorder_min: 2,
            reorder_max: 16,
            reorder_max_hold: Duration::from_secs(5),
            ..Impairment::none()
        };
        let (out, st) = run_through(imp, 3, 2000);
        assert_eq!(out.len(), 2000, "no loss");
        assert!(st.reordered > 100, "{st:?}");
        // A packet leaves at most 16 (+ packets released together) positions late.
        let mut max_late = 0i64;
        for (pos, p) in out.iter().enumerate() {
            max_late = max_late.max(pos as i64 - (p.seq as i64 - 1));
        }
        assert!(max_late <= 32, "late by {max_late}");
    }

    #[test]
    fn rate_limit_delays_and_drops_beyond_the_queue() {
        let imp = Impairment { rate: Some(1000), max_queue_delay: Duration::from_millis(100), ..Impairment::none() };
        let mut m = Impairer::new(imp, 1).unwrap();
        let t0 = Instant::now();
        for _ in 0..50 {
            m.push(t0, 0, vec![0; 100], Kind::Ike);
        }
        // 100 bytes at 1000 B/s: one every 100 ms; the queue holds ~100 ms of them.
        assert_eq!(m.pop_due(t0, usize::MAX).len(), 1);
        assert!(m.stats.overflow >= 40, "{:?}", m.stats);
        assert_eq!(m.pop_due(t0 + Duration::from_secs(1), usize::MAX).len() as u64, 50 - m.stats.overflow - 1);
    }

    #[test]
    fn traffic_filter_and_classification() {
        assert_eq!(classify(500, &[1, 2]), Kind::Ike);
        assert_eq!(classify(4500, &[0, 0, 0, 0, 1]), Kind::Ike);
        assert_eq!(classify(4500, &[0xff]), Kind::Keepalive);
        assert_eq!(classify(4500, &[0xc0, 1, 2, 3, 0, 0, 0, 1]), Kind::Esp);
        let mut m = Impairer::new(Impairment { traffic: Traffic::Esp, ..Impairment::blackhole() }, 1).unwrap();
        let t0 = Instant::now();
        m.push(t0, 0, vec![0, 0, 0, 0, 9], Kind::Ike);
        m.push(t0, 0, vec![1, 2, 3, 4], Kind::Esp);
        assert_eq!(m.pop_due(t0, 10).len(), 1);
        assert_eq!(m.stats.dropped, 1);
    }

    #[test]
    fn finds_ike_sa_init_requests() {
        let mut hdr = vec![0u8; 28];
        hdr[..8].copy_from_slice(&0x1122_3344_5566_7788u64.to_be_bytes());
        hdr[17] = 0x20;
        hdr[18] = 34;
        hdr[19] = 0x08;
        assert_eq!(ike_sa_init_request(500, &hdr), Some(0x1122_3344_5566_7788));
        let mut natt = vec![0, 0, 0, 0];
        natt.extend_from_slice(&hdr);
        assert_eq!(ike_sa_init_request(4500, &natt), Some(0x1122_3344_5566_7788));
        hdr[19] = 0x20; // a response
        assert_eq!(ike_sa_init_request(500, &hdr), None);
        hdr[19] = 0x08;
        hdr[18] = 35; // IKE_AUTH
        assert_eq!(ike_sa_init_request(500, &hdr), None);
        assert_eq!(ike_sa_init_request(500, &[0; 10]), None);
    }

    #[test]
    fn bad_impairments_are_typed_errors() {
        assert!(Impairment { drop: 1.5, ..Impairment::none() }.validate().is_err());
        assert!(Impairment { duplicate: -0.1, ..Impairment::none() }.validate().is_err());
        assert!(Impairment { reorder: f64::NAN, ..Impairment::none() }.validate().is_err());
        assert!(Impairment { reorder_min: 0, ..Impairment::none() }.validate().is_err());
        assert!(Impairment { reorder_min: 5, reorder_max: 4, ..Impairment::none() }.validate().is_err());
        assert!(Impairment { delay: Duration::from_secs(60), ..Impairment::none() }.validate().is_err());
        assert!(Impairment { rate: Some(0), ..Impairment::none() }.validate().is_err());
        assert!(Impairer::new(Impairment { drop: 2.0, ..Impairment::none() }, 1).is_err());
        assert!(Impairment::lossy(0.3).validate().is_ok());
    }
}
