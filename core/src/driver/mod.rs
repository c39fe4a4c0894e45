//! The tokio driver: owns the UDP sockets and the clock, and moves datagrams in and out of the sans-IO
//! [`IkeSa`](crate::ike::IkeSa).
//!
//! One [`Session`] is one connection attempt: it ends when the IKE SA closes. Events arrive on a channel.

mod dataplane;
mod fetch;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_core::{OsRng, TryRngCore};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::{debug, info, trace, warn};

pub use dataplane::Stats;
use dataplane::{Counters, Half, Update};

use crate::esp::EspSa;
use crate::ike::{
    ts_to_cidrs, ChildSa, EspSuite, Event, GatewayIdentity, IkeError, IkeSa, SessionInfo, SocketKind, State,
};
#[cfg(unix)]
use crate::platform::PlatformHooks;
use crate::platform::{self, AppliedNetwork, NetworkConfig, Tun, TunConfig, TunnelSettings};
use crate::profile::Resolved;
use crate::wire::TrafficSelector;

/// Failures of the driver itself (not of the protocol).
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("cannot open UDP socket on port {port}: {source}")]
    Bind { port: u16, source: std::io::Error },
    #[error("no route to the gateway {addr}: {source}")]
    NoRoute { addr: SocketAddr, source: std::io::Error },
    #[error("randomness unavailable: {0}")]
    Random(String),
    #[error("cannot set up the tunnel device: {0}")]
    Platform(#[from] platform::PlatformError),
    /// The embedder's [`SocketProtector`](crate::platform::SocketProtector) failed.
    #[error("cannot keep the VPN's own socket out of the tunnel: {0}")]
    Protect(std::io::Error),
    /// The embedder's [`TunProvider`](crate::platform::TunProvider) failed.
    #[error("the platform could not open the tunnel device: {0}")]
    OpenTun(std::io::Error),
    #[error(transparent)]
    Ike(#[from] IkeError),
}

/// How the session moves packets and touches the host's network configuration.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Open a TUN device and carry traffic; `false` negotiates the SAs only.
    pub data_plane: bool,
    /// TUN device name (default `ikelink0`).
    pub tun_name: Option<String>,
    /// TUN MTU: the path MTU minus IP, UDP and ESP overhead (strongSwan uses 1400).
    pub mtu: u16,
    /// Install routes for the gateway's traffic selectors and its DNS servers (restored on close).
    pub configure_network: bool,
    /// Where the journal of network changes lives, for recovery after a crash.
    pub state_dir: PathBuf,
    /// How often a [`SessionEvent::Stats`] is sent (never if `None`).
    pub stats_interval: Option<Duration>,
    /// Re-establish the tunnel after it was up and then failed (dead gateway, gateway Delete...).
    pub reconnect: Option<ReconnectPolicy>,
    /// Check this often whether our address towards the gateway changed (desktop; mobile shells call
    /// [`Session::network_changed`] from their network callbacks instead).
    pub watch_network: Option<Duration>,
}

/// Bounded exponential backoff with jitter between reconnection attempts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReconnectPolicy {
    pub initial_delay: Duration,
    pub max_delay: Duration,
    /// 0: keep trying.
    pub max_attempts: u32,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy { initial_delay: Duration::from_secs(1), max_delay: Duration::from_secs(60), max_attempts: 0 }
    }
}

impl ReconnectPolicy {
    /// Delay before attempt `n` (1-based): initial * 2^(n-1), capped, with ±20% jitter from `r` in [0, 1).
    pub fn delay(&self, n: u32, r: f64) -> Duration {
        let base = self.initial_delay.mul_f64(2f64.powi(n.saturating_sub(1).min(30) as i32)).min(self.max_delay);
        base.mul_f64(0.8 + 0.4 * r.clamp(0.0, 1.0))
    }
}

/// Failures a new attempt can fix; credentials and configuration errors are not retried.
fn retriable(e: &IkeError) -> bool {
    !matches!(
        e,
        IkeError::AuthenticationFailed
            | IkeError::PeerAuthenticationFailed
            | IkeError::IdentityMismatch { .. }
            | IkeError::GatewayNotAuthenticated(_)
            | IkeError::Certificate(_)
            | IkeError::Untrusted(_)
            | IkeError::Config(_)
            | IkeError::Eap(_)
            | IkeError::ClientCertificateRequired
            | IkeError::NoProposalChosen
            | IkeError::TsUnacceptable
            | IkeError::UnsupportedKeGroup(_)
    )
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            data_plane: true,
            tun_name: None,
            mtu: 1400,
            configure_network: true,
            state_dir: platform::default_state_dir(),
            stats_interval: None,
            reconnect: Some(ReconnectPolicy::default()),
            watch_network: Some(Duration::from_secs(1)),
        }
    }
}

/// What the application sees.
#[derive(Debug, Clone)]
pub enum SessionEvent {
    State(State),
    /// IKE SA up; `child` describes the first Child SA.
    Connected {
        info: SessionInfo,
        child: ChildSummary,
    },
    ChildSaDeleted {
        inbound_spi: u32,
        outbound_spi: u32,
    },
    /// A Child SA was replaced by a new one (rekey, RFC 7296 §2.8).
    ChildSaRekeyed {
        old_spi_in: u32,
        child: ChildSummary,
    },
    /// The TUN device is up and routes/DNS are applied.
    TunnelUp {
        tun: String,
        mtu: u16,
        routes: Vec<String>,
        dns: Vec<IpAddr>,
    },
    /// Data plane counters.
    Stats(Stats),
    /// The tunnel failed; the next attempt starts after `delay` (the TUN and routes stay, so nothing leaks).
    Reconnecting {
        attempt: u32,
        delay: Duration,
        reason: IkeError,
    },
    /// The session is over; `None` after a clean disconnect.
    Closed(Option<IkeError>),
}

impl ChildSummary {
    fn of(c: &ChildSa) -> ChildSummary {
        ChildSummary {
            suite: c.suite,
            spi_in: c.inbound.spi,
            spi_out: c.outbound.spi,
            ts_i: c.ts_i.clone(),
            ts_r: c.ts_r.clone(),
        }
    }
}

/// A Child SA without its keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSummary {
    pub suite: EspSuite,
    pub spi_in: u32,
    pub spi_out: u32,
    pub ts_i: Vec<TrafficSelector>,
    pub ts_r: Vec<TrafficSelector>,
}

enum Command {
    Disconnect,
    Stats,
    NetworkChanged,
}

/// A running connection. Dropping it does not disconnect; call [`Session::disconnect`].
pub struct Session {
    commands: mpsc::Sender<Command>,
    task: tokio::task::JoinHandle<Result<(), DriverError>>,
}

impl Session {
    /// Bind the sockets and start the IKE SA. Events go to `events`.
    pub async fn start(
        profile: Resolved,
        options: SessionOptions,
        events: mpsc::Sender<SessionEvent>,
    ) -> Result<Session, DriverError> {
        Self::start_inner(profile, options, PlatformHooks::default(), events).await
    }

    /// Like [`Session::start`], with the embedding OS opening the TUN and protecting our sockets (mobile
    /// VPN APIs). With a TUN provider the session sets no routes or DNS itself (`configure_network`,
    /// `tun_name` and `state_dir` are ignored): the OS applies the [`TunnelSettings`] it is given.
    #[cfg(unix)]
    pub async fn start_with_hooks(
        profile: Resolved,
        options: SessionOptions,
        hooks: PlatformHooks,
        events: mpsc::Sender<SessionEvent>,
    ) -> Result<Session, DriverError> {
        Self::start_inner(profile, options, hooks, events).await
    }

    async fn start_inner(
        profile: Resolved,
        options: SessionOptions,
        hooks: PlatformHooks,
        events: mpsc::Sender<SessionEvent>,
    ) -> Result<Session, DriverError> {
        // Refuse before connecting rather than run without the protection the profile asks for.
        if profile.kill_switch
            && !platform::KILL_SWITCH_SUPPORTED
            && options.data_plane
            && options.configure_network
            && hooks.tun.is_none()
        {
            return Err(platform::PlatformError::KillSwitchUnsupported.into());
        }
        let unspecified: IpAddr = match profile.gateway {
            SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        };
        let ike = UdpSocket::bind(SocketAddr::new(unspecified, profile.ike_port))
            .await
            .map_err(|source| DriverError::Bind { port: profile.ike_port, source })?;
        let natt = UdpSocket::bind(SocketAddr::new(unspecified, profile.natt_port))
            .await
            .map_err(|source| DriverError::Bind { port: profile.natt_port, source })?;
        protect(&hooks, &ike)?;
        protect(&hooks, &natt)?;
        // The source address the kernel picks towards the gateway, for NAT detection (RFC 7296 §2.23).
        let probe = UdpSocket::bind(SocketAddr::new(unspecified, 0))
            .await
            .map_err(|source| DriverError::Bind { port: 0, source })?;
        protect(&hooks, &probe)?;
        probe
            .connect(profile.gateway)
            .await
            .map_err(|source| DriverError::NoRoute { addr: profile.gateway, source })?;
        let local_ip =
            probe.local_addr().map_err(|source| DriverError::NoRoute { addr: profile.gateway, source })?.ip();
        drop(probe);
        let ike_port = ike.local_addr().map_err(|source| DriverError::Bind { port: profile.ike_port, source })?.port();
        let local = SocketAddr::new(local_ip, ike_port);

        let mut plane_seed = [0u8; 32];
        OsRng.try_fill_bytes(&mut plane_seed).map_err(|e| DriverError::Random(e.to_string()))?;
        if options.data_plane && options.configure_network && hooks.tun.is_none() {
            if let Some(r) = platform::recover(&options.state_dir)? {
                info!(?r, "restored network settings left by an earlier run");
            }
        }
        let sa = fresh_sa(profile.ike.clone(), local, profile.gateway, &natt)?;
        let (tx, rx) = mpsc::channel(4);
        let gateway_ip = profile.gateway.ip();
        let home_gateway = profile.gateway;
        let driver = Driver {
            sa,
            profile,
            local,
            connected_once: false,
            attempt: 0,
            reconnect_at: None,
            closing: false,
            ike: Arc::new(ike),
            natt: Arc::new(natt),
            options,
            hooks,
            events,
            gateway: gateway_ip,
            counters: Arc::new(Counters::default()),
            plane_seed,
            tun: None,
            child_bytes_base: None,
            tun_settings: None,
            network: None,
            uplink: None,
            downlink: None,
            info: None,
            home_gateway,
            redirect: None,
            redirects: std::collections::VecDeque::new(),
            retiring: None,
            candidate: 0,
            failovers: 0,
            crl_requests: Vec::new(),
            crl_cache: Default::default(),
        };
        let task = tokio::spawn(driver.run(rx));
        Ok(Session { commands: tx, task })
    }

    /// The platform saw a network change (new interface or address): move the tunnel (MOBIKE) or reconnect.
    pub async fn network_changed(&self) {
        let _ = self.commands.send(Command::NetworkChanged).await;
    }

    /// Ask for a [`SessionEvent::Stats`].
    pub async fn request_stats(&self) {
        let _ = self.commands.send(Command::Stats).await;
    }

    /// Ask the session to close the IKE SA (sends a Delete) and wait until it has.
    pub async fn disconnect(self) -> Result<(), DriverError> {
        let _ = self.commands.send(Command::Disconnect).await;
        self.join().await
    }

    /// Wait until the session ends by itself.
    pub async fn join(self) -> Result<(), DriverError> {
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(DriverError::Ike(IkeError::Protocol(if e.is_panic() {
                "driver panicked"
            } else {
                "driver cancelled"
            }))),
        }
    }
}

/// The IKE task: owns the IKE SA and the data plane's lifecycle.
struct Driver {
    sa: IkeSa,
    profile: Resolved,
    /// Our address towards the gateway (for NAT detection).
    local: SocketAddr,
    connected_once: bool,
    /// Reconnection attempts since the last success, and when the next one starts.
    attempt: u32,
    reconnect_at: Option<tokio::time::Instant>,
    /// The user asked to disconnect.
    closing: bool,
    ike: Arc<UdpSocket>,
    natt: Arc<UdpSocket>,
    options: SessionOptions,
    hooks: PlatformHooks,
    events: mpsc::Sender<SessionEvent>,
    gateway: IpAddr,
    counters: Arc<Counters>,
    plane_seed: [u8; 32],
    tun: Option<Arc<Tun>>,
    /// The newest Child SA and the byte counters when it was installed (for byte lifetimes).
    child_bytes_base: Option<(u32, u64)>,
    /// What the TUN was set up with.
    tun_settings: Option<TunnelSettings>,
    network: Option<AppliedNetwork>,
    uplink: Option<mpsc::Sender<Update>>,
    downlink: Option<mpsc::Sender<Update>>,
    info: Option<SessionInfo>,
    /// The profile's gateway address (again after a redirect once that connection fails).
    home_gateway: SocketAddr,
    /// Where the gateway redirected us (RFC 5685) and from which address: the next IKE SA goes there.
    redirect: Option<(SocketAddr, IpAddr)>,
    /// When recent redirects happened (loop protection).
    redirects: std::collections::VecDeque<Instant>,
    /// During a make-before-break reauthentication: the old IKE SA, carrying the traffic until the new one
    /// (`sa`) has its Child SA, then deleted.
    retiring: Option<IkeSa>,
    /// Failover (`gateway.backup`): which gateway of [primary, backups...] we use, and how many of them in a
    /// row did not answer.
    candidate: usize,
    failovers: usize,
    /// Revocation fetches asked for by the IKE SA (its SPI and the requests), started by the run loop.
    crl_requests: Vec<(u64, Vec<crate::crypto::RevocationRequest>)>,
    crl_cache: fetch::CrlCache,
}

/// When a reauthentication's new IKE SA failed, try again this much later (the old one keeps working).
const REAUTH_RETRY: Duration = Duration::from_secs(30);

/// A new IKE SA towards `gateway` with a fresh random seed and the wall clock (for certificate validity).
fn fresh_sa(
    config: crate::ike::IkeConfig,
    local: SocketAddr,
    gateway: SocketAddr,
    natt: &UdpSocket,
) -> Result<IkeSa, DriverError> {
    let mut seed = [0u8; 32];
    OsRng.try_fill_bytes(&mut seed).map_err(|e| DriverError::Random(e.to_string()))?;
    let now = Instant::now();
    let mut sa = IkeSa::new(config, local, gateway, now, seed)?;
    let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    sa.set_unix_time(now, unix);
    if let Ok(a) = natt.local_addr() {
        sa.set_local_natt_port(a.port());
    }
    Ok(sa)
}

/// At most this many redirects within [`REDIRECT_WINDOW`] (RFC 5685 §10 asks for a limit; strongSwan's).
const MAX_REDIRECTS: usize = 5;
const REDIRECT_WINDOW: Duration = Duration::from_secs(300);

impl Driver {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) -> Result<(), DriverError> {
        let (ike_tx, mut ike_rx) = mpsc::channel::<Vec<u8>>(16);
        let (down_tx, down_rx) = mpsc::channel(8);
        let max_mss = self.options.mtu.saturating_sub(40);
        tokio::spawn(dataplane::downlink(None, self.natt.clone(), down_rx, ike_tx, self.counters.clone(), max_mss));
        self.downlink = Some(down_tx);
        let mut buf = vec![0u8; 65536];
        let mut commands_open = true;
        let mut packets_seen = 0u64;
        let mut stats_tick = self.options.stats_interval.map(tokio::time::interval);
        let mut net_tick = self.options.watch_network.map(tokio::time::interval);
        type Fetched = (u64, Vec<crate::crypto::RevocationRequest>, Vec<crate::crypto::RevocationResponse>);
        let (crl_tx, mut crl_rx) = mpsc::channel::<Fetched>(4);
        let result = loop {
            self.flush().await;
            self.process_retiring_events().await;
            let processed = self.process_events().await;
            for (spi, requests) in self.crl_requests.drain(..) {
                let (cache, hooks, tx) = (self.crl_cache.clone(), self.hooks.clone(), crl_tx.clone());
                tokio::spawn(async move {
                    let fetched = fetch::fetch_revocation(&requests, &cache, &hooks).await;
                    let _ = tx.send((spi, requests, fetched)).await;
                });
            }
            match processed {
                Ok(Some(mut reason)) => {
                    if let (Some(IkeError::Redirected(to)), false) = (&reason, self.closing) {
                        match self.follow_redirect(to).await {
                            Ok(()) => {
                                let ev = SessionEvent::Reconnecting {
                                    attempt: self.attempt,
                                    delay: Duration::ZERO,
                                    reason: IkeError::Redirected(to.clone()),
                                };
                                let _ = self.events.send(ev).await;
                                self.reconnect_at = Some(tokio::time::Instant::now());
                                continue;
                            }
                            Err(e) => reason = Some(e),
                        }
                    }
                    // Failover: a gateway that does not answer makes way for the next of `gateway.backup` at
                    // once; after a whole round without an answer the usual policy applies (from the next one).
                    if let (Some(e @ IkeError::Timeout { .. }), false) = (&reason, self.closing) {
                        let n = 1 + self.profile.backups.len();
                        if n > 1 {
                            let from = self.profile.gateway;
                            self.candidate = (self.candidate + 1) % n;
                            if self.failovers + 1 < n {
                                self.failovers += 1;
                                warn!(%from, next = self.candidate, "the gateway does not answer; failing over");
                                let ev = SessionEvent::Reconnecting {
                                    attempt: self.attempt,
                                    delay: Duration::ZERO,
                                    reason: e.clone(),
                                };
                                let _ = self.events.send(ev).await;
                                self.reconnect_at = Some(tokio::time::Instant::now());
                                continue;
                            }
                            self.failovers = 0;
                        }
                    }
                    let retry = match (&reason, self.options.reconnect) {
                        (Some(e), Some(p)) if self.connected_once && !self.closing && retriable(e) => {
                            (p.max_attempts == 0 || self.attempt < p.max_attempts).then_some((e.clone(), p))
                        }
                        _ => None,
                    };
                    match retry {
                        Some((e, p)) => {
                            self.attempt += 1;
                            let mut r = [0u8; 2];
                            let _ = OsRng.try_fill_bytes(&mut r);
                            // Reauthentication is planned: no backoff.
                            let delay = if matches!(e, IkeError::Reauthenticate) {
                                Duration::ZERO
                            } else {
                                p.delay(self.attempt, f64::from(u16::from_be_bytes(r)) / 65536.0)
                            };
                            warn!(%e, attempt = self.attempt, ?delay, "tunnel lost, reconnecting");
                            self.reconnect_at = Some(tokio::time::Instant::now() + delay);
                            let ev = SessionEvent::Reconnecting { attempt: self.attempt, delay, reason: e };
                            let _ = self.events.send(ev).await;
                        }
                        None => {
                            let _ = self.events.send(SessionEvent::Stats(self.counters.snapshot())).await;
                            let _ = self.events.send(SessionEvent::Closed(reason)).await;
                            break Ok(());
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    // The tunnel cannot work: close the IKE SA and report why.
                    warn!(%e, "data plane setup failed");
                    self.sa.close(Instant::now());
                    self.flush().await;
                    let _ = self.events.send(SessionEvent::Closed(Some(IkeError::Config(e.to_string())))).await;
                    break Err(e);
                }
            }
            // What handling the events queued (a Delete of the IKE SA a reauthentication retires).
            self.flush().await;
            let deadline = match self.reconnect_at {
                Some(t) => Some(t),
                None => {
                    let old = self.retiring.as_ref().and_then(|o| o.poll_timeout()).map(|(t, _)| t);
                    let new = self.sa.poll_timeout().map(|(t, _)| t);
                    [old, new].into_iter().flatten().min().map(tokio::time::Instant::from_std)
                }
            };
            let reconnecting = self.reconnect_at.is_some();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            let tick = async {
                match stats_tick.as_mut() {
                    Some(t) => t.tick().await,
                    None => std::future::pending().await,
                }
            };
            let net = async {
                match net_tick.as_mut() {
                    Some(t) => t.tick().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = self.ike.recv_from(&mut buf) => match r {
                    Ok((n, from)) => {
                        trace!(n, %from, "IKE datagram");
                        if let Some(data) = buf.get(..n) {
                            self.route_ike(data);
                        }
                    }
                    Err(e) => debug!(%e, "IKE socket error"),
                },
                m = ike_rx.recv() => if let Some(m) = m {
                    self.route_ike(&m);
                },
                f = crl_rx.recv() => if let Some((spi, requests, fetched)) = f {
                    self.crl_cache.store(&requests, &fetched, Instant::now());
                    if spi == self.sa.spi_i() {
                        self.sa.handle_revocation(Instant::now(), fetched);
                    }
                },
                _ = sleep => if reconnecting {
                    self.reconnect_at = None;
                    if let Err(e) = self.restart().await {
                        warn!(%e, "reconnect attempt failed to start");
                        let _ = self.events.send(SessionEvent::Closed(Some(IkeError::Config(e.to_string())))).await;
                        break Err(e);
                    }
                } else {
                    // ESP from the gateway counts as a sign of life: no DPD needed then.
                    let seen = self.counters.packets_in.load(std::sync::atomic::Ordering::Relaxed);
                    if seen != packets_seen {
                        packets_seen = seen;
                        self.sa.note_inbound_traffic(Instant::now());
                    }
                    if let Some(old) = self.retiring.as_mut() {
                        old.handle_timeout(Instant::now());
                    }
                    self.sa.handle_timeout(Instant::now())
                },
                _ = net => {
                    self.check_network(false).await;
                    self.report_child_traffic();
                }
                _ = tick => { let _ = self.events.send(SessionEvent::Stats(self.counters.snapshot())).await; }
                c = commands.recv(), if commands_open => match c {
                    Some(Command::Disconnect) => {
                        self.closing = true;
                        if self.reconnect_at.take().is_some() {
                            // Between attempts: nothing to delete.
                            let _ = self.events.send(SessionEvent::Closed(None)).await;
                            break Ok(());
                        }
                        if let Some(old) = self.retiring.as_mut() {
                            old.close(Instant::now());
                        }
                        self.sa.close(Instant::now())
                    }
                    Some(Command::Stats) => { let _ = self.events.send(SessionEvent::Stats(self.counters.snapshot())).await; }
                    Some(Command::NetworkChanged) => self.check_network(true).await,
                    None => commands_open = false,
                },
            }
        };
        self.teardown().await;
        result
    }

    /// Byte lifetimes: tell the IKE SA how much the current Child SA has carried.
    fn report_child_traffic(&mut self) {
        let Some((spi_in, base)) = self.child_bytes_base else { return };
        let snap = self.counters.snapshot();
        let total = snap.bytes_in + snap.bytes_out;
        self.sa.note_child_traffic(Instant::now(), spi_in, total.saturating_sub(base));
    }

    /// Our source address towards the gateway now; on a change (or when the platform says so) tell the IKE SA.
    async fn check_network(&mut self, forced: bool) {
        let probe = std::net::UdpSocket::bind(SocketAddr::new(
            if self.profile.gateway.is_ipv4() { Ipv4Addr::UNSPECIFIED.into() } else { Ipv6Addr::UNSPECIFIED.into() },
            0,
        ));
        let probe = probe.and_then(|p| protect(&self.hooks, &p).map(|()| p).map_err(std::io::Error::other));
        let ip = match probe.and_then(|p| p.connect(self.profile.gateway).and_then(|()| p.local_addr())) {
            Ok(a) => a.ip(),
            Err(e) => {
                trace!(%e, "no route to the gateway right now");
                return;
            }
        };
        if ip == self.local.ip() && !forced {
            return;
        }
        info!(old = %self.local.ip(), new = %ip, "local address changed");
        self.local.set_ip(ip);
        let natt_port = self.natt.local_addr().map(|a| a.port()).unwrap_or(self.profile.natt_port);
        if self.reconnect_at.is_none() {
            self.sa.network_changed(Instant::now(), SocketAddr::new(ip, natt_port));
        }
    }

    /// A new IKE SA, keeping the TUN, routes and DNS: towards the gateway a redirect named, else the profile's
    /// (its host name resolved again). The gateway host route follows the address.
    async fn restart(&mut self) -> Result<(), DriverError> {
        let mut ike = self.profile.ike.clone();
        let target = match self.redirect.take() {
            Some((to, from)) => {
                ike.redirected_from = Some(from);
                to
            }
            None => {
                // The current candidate (the profile's gateway, or one of its backups); a backup whose name
                // does not resolve is passed over.
                let n = 1 + self.profile.backups.len();
                let mut target = None;
                for _ in 0..n {
                    target = self.resolve_candidate().await;
                    if target.is_some() {
                        break;
                    }
                    self.candidate = (self.candidate + 1) % n;
                }
                target.unwrap_or(self.home_gateway)
            }
        };
        self.retarget(target.ip())?;
        self.profile.gateway = target;
        self.sa = fresh_sa(ike, self.local, self.profile.gateway, &self.natt)?;
        info!(attempt = self.attempt, gateway = %self.profile.gateway, "reconnecting");
        Ok(())
    }

    /// Make-before-break reauthentication (RFC 7296 §2.8.3): a new IKE SA with full authentication (without
    /// INITIAL_CONTACT, so the gateway keeps the old one meanwhile) while the old one goes on carrying traffic.
    fn start_reauthentication(&mut self) -> Result<(), DriverError> {
        if self.retiring.is_some() {
            return Ok(());
        }
        let mut ike = self.profile.ike.clone();
        ike.initial_contact = false;
        let sa = fresh_sa(ike, self.local, self.profile.gateway, &self.natt)?;
        info!(gateway = %self.profile.gateway, "reauthenticating: a new IKE SA while the current one carries traffic");
        self.retiring = Some(std::mem::replace(&mut self.sa, sa));
        Ok(())
    }

    /// The old IKE SA of a reauthentication: its Child SAs leave the data plane as it deletes them; once it is
    /// closed it is dropped.
    async fn process_retiring_events(&mut self) {
        let Some(old) = self.retiring.as_mut() else { return };
        let mut removed = Vec::new();
        let mut closed = false;
        while let Some(ev) = old.poll_event() {
            match ev {
                Event::ChildSaDeleted { inbound_spi, outbound_spi } => removed.push((inbound_spi, outbound_spi)),
                Event::Closed(_) => closed = true,
                // A rekey the gateway made meanwhile: that SA goes with the old IKE SA.
                _ => {}
            }
        }
        for (inbound_spi, outbound_spi) in removed {
            if let Some(d) = &self.downlink {
                let _ = d.send(Update::Remove(inbound_spi)).await;
            }
            if let Some(u) = &self.uplink {
                let _ = u.send(Update::Remove(outbound_spi)).await;
            }
        }
        if closed {
            info!("the old IKE SA is gone");
            self.retiring = None;
        }
    }

    /// An IKE message to the IKE SA it belongs to (by the initiator's SPI, RFC 7296 §3.1).
    fn route_ike(&mut self, data: &[u8]) {
        let spi_i = data.first_chunk::<8>().map(|b| u64::from_be_bytes(*b));
        match self.retiring.as_mut() {
            Some(old) if spi_i == Some(old.spi_i()) => old.handle_datagram(Instant::now(), data),
            _ => self.sa.handle_datagram(Instant::now(), data),
        }
    }

    /// The gateway sent us elsewhere (RFC 5685): resolve the new gateway and connect there next, unless it
    /// happened too often lately.
    async fn follow_redirect(&mut self, to: &GatewayIdentity) -> Result<(), IkeError> {
        let now = Instant::now();
        while self.redirects.front().is_some_and(|t| now.saturating_duration_since(*t) >= REDIRECT_WINDOW) {
            self.redirects.pop_front();
        }
        if self.redirects.len() >= MAX_REDIRECTS {
            return Err(IkeError::Protocol("redirected more than 5 times within 5 minutes"));
        }
        self.redirects.push_back(now);
        let port = self.home_gateway.port();
        let addr = match to {
            GatewayIdentity::Addr(ip) => SocketAddr::new(*ip, port),
            GatewayIdentity::Fqdn(name) => {
                tokio::net::lookup_host((name.as_str(), port)).await.ok().and_then(|mut a| a.next()).ok_or_else(
                    || IkeError::Config(format!("cannot resolve {name}, where the gateway redirected us")),
                )?
            }
        };
        info!(from = %self.profile.gateway, to = %addr, "following the gateway's redirect");
        self.redirect = Some((addr, self.profile.gateway.ip()));
        Ok(())
    }

    /// Keep the gateway out of the tunnel at its new address: move the host route we installed (desktop), and
    /// remember the address for the tunnel settings.
    /// The address of the current failover candidate: the profile's gateway (its name resolved again, else its
    /// last address) or a backup (`None` if its name does not resolve).
    async fn resolve_candidate(&self) -> Option<SocketAddr> {
        let port = self.home_gateway.port();
        let (name, fallback) = match self.candidate.checked_sub(1) {
            None => match self.profile.gateway_name.clone() {
                Some(name) => (name, Some(self.home_gateway)),
                None => return Some(self.home_gateway),
            },
            Some(i) => {
                let backup = self.profile.backups.get(i)?;
                if let Ok(ip) = backup.parse::<IpAddr>() {
                    return Some(SocketAddr::new(ip, port));
                }
                (backup.clone(), None)
            }
        };
        let resolved = tokio::net::lookup_host((name.as_str(), port)).await.map(|mut a| a.next());
        match resolved {
            Ok(addr) => addr.or(fallback),
            Err(e) => {
                debug!(%e, name, "cannot resolve the gateway; using its last address if there is one");
                fallback
            }
        }
    }

    fn retarget(&mut self, new: IpAddr) -> Result<(), DriverError> {
        if new == self.gateway {
            return Ok(());
        }
        if let Some(n) = self.network.as_mut() {
            n.move_gateway(self.gateway, new)?;
            // The routes are ours and moved: the TUN can stay.
            if let Some(s) = self.tun_settings.as_mut() {
                s.gateway = new;
            }
        }
        self.gateway = new;
        Ok(())
    }

    /// Forward the IKE SA's events; returns `Some(reason)` when it has closed.
    async fn process_events(&mut self) -> Result<Option<Option<IkeError>>, DriverError> {
        while let Some(ev) = self.sa.poll_event() {
            let out = match ev {
                // The old IKE SA still carries the tunnel: the new one's progress is no news for the app.
                Event::StateChanged(_) if self.retiring.is_some() => continue,
                Event::StateChanged(s) => SessionEvent::State(s),
                Event::ReauthenticationDue => {
                    self.start_reauthentication()?;
                    continue;
                }
                Event::Closed(reason) if self.retiring.is_some() && !self.closing => {
                    // The new IKE SA failed; the old one still works: keep it, try again later.
                    warn!(reason = ?reason, "reauthentication failed; keeping the current IKE SA");
                    if let Some(old) = self.retiring.take() {
                        self.sa = old;
                        self.sa.postpone_reauthentication(Instant::now() + REAUTH_RETRY);
                    }
                    continue;
                }
                Event::Established(info) => {
                    self.info = Some(info);
                    continue;
                }
                Event::FetchRevocation(requests) => {
                    self.crl_requests.push((self.sa.spi_i(), requests));
                    continue;
                }
                Event::ChildSaInstalled(_) if self.sa.state() != State::Established => {
                    // Defence in depth (the IKE SA already gates this): no ESP, TUN, route or DNS change for an
                    // IKE SA whose gateway has not authenticated.
                    warn!(state = ?self.sa.state(), "Child SA from an IKE SA that is not established; ignored");
                    continue;
                }
                Event::ChildSaInstalled(c) => {
                    let summary = ChildSummary::of(&c);
                    let rekey = c.replaces;
                    self.install_child(c).await?;
                    match (rekey, self.info.take()) {
                        // The first Child SA completes the connection; later ones are rekeys.
                        (None, Some(info)) => {
                            self.connected_once = true;
                            self.attempt = 0;
                            self.failovers = 0;
                            if let Some(old) = self.retiring.as_mut() {
                                // Make-before-break: the new Child SA carries the traffic now; delete the old SAs.
                                info!("reauthenticated: the new IKE SA carries the tunnel, deleting the old one");
                                old.close(Instant::now());
                            }
                            SessionEvent::Connected { info, child: summary }
                        }
                        (Some(old), _) => SessionEvent::ChildSaRekeyed { old_spi_in: old, child: summary },
                        (None, None) => continue,
                    }
                }
                Event::ChildSaDeleted { inbound_spi, outbound_spi } => {
                    if let Some(d) = &self.downlink {
                        let _ = d.send(Update::Remove(inbound_spi)).await;
                    }
                    if let Some(u) = &self.uplink {
                        let _ = u.send(Update::Remove(outbound_spi)).await;
                    }
                    SessionEvent::ChildSaDeleted { inbound_spi, outbound_spi }
                }
                Event::Closed(reason) => {
                    return Ok(Some(reason));
                }
            };
            let _ = self.events.send(out).await;
        }
        Ok(None)
    }

    /// Hand a Child SA to the data plane; the first one also brings up the TUN, routes and DNS.
    async fn install_child(&mut self, c: ChildSa) -> Result<(), DriverError> {
        let peer = self.sa.remote();
        let inbound = EspSa::inbound(&c.inbound, 1024).map_err(|e| IkeError::Config(format!("ESP: {e}")))?;
        let snap = self.counters.snapshot();
        self.child_bytes_base = Some((c.inbound.spi, snap.bytes_in + snap.bytes_out));
        let outbound = EspSa::outbound(&c.outbound).map_err(|e| IkeError::Config(format!("ESP: {e}")))?;
        // After a reconnect the gateway may hand out another virtual IP (or other routes or DNS servers):
        // rebuild the tunnel; with the same settings the TUN (and routes) stay.
        let settings = self.tunnel_settings(&c);
        if self.tun.is_some() && c.replaces.is_none() && self.tun_settings.as_ref() != Some(&settings) {
            info!("tunnel settings changed on reconnect: rebuilding the tunnel device");
            self.teardown_tunnel();
        }
        if self.options.data_plane && self.tun.is_none() {
            self.bring_up(&settings).await?;
            self.tun_settings = Some(settings);
        }
        if let Some(d) = &self.downlink {
            let half = Half { sa: inbound, ts_local: c.ts_i.clone(), ts_remote: c.ts_r.clone(), peer, activate: true };
            let _ = d.send(Update::Install(Box::new(half))).await;
        }
        if let Some(u) = &self.uplink {
            let half = Half {
                sa: outbound,
                ts_local: c.ts_i.clone(),
                ts_remote: c.ts_r.clone(),
                peer,
                activate: c.outbound_now,
            };
            let _ = u.send(Update::Install(Box::new(half))).await;
        }
        Ok(())
    }

    /// What the tunnel device needs for this Child SA: the virtual IPs, routes for its remote selectors, DNS.
    fn tunnel_settings(&self, c: &ChildSa) -> TunnelSettings {
        let config = self.info.as_ref().map(|i| i.config.clone()).unwrap_or_default();
        TunnelSettings {
            ipv4: config.ipv4.map(|a| (a, 32)),
            ipv6: config.ipv6,
            mtu: self.options.mtu,
            routes: c.ts_r.iter().flat_map(ts_to_cidrs).map(|c| (c.addr, c.prefix)).collect(),
            dns: config.dns,
            dns_domains: config.dns_domains,
            gateway: self.gateway,
            excluded: self.profile.excluded.clone(),
        }
    }

    /// Opens the TUN (ourselves, or through the embedder's provider) and starts the uplink; routes and DNS
    /// too when we manage them.
    async fn bring_up(&mut self, settings: &TunnelSettings) -> Result<(), DriverError> {
        #[allow(clippy::clone_on_copy)] // Off Unix the hook type is uninhabited (and Copy).
        let tun = match self.hooks.tun.clone() {
            #[cfg(not(unix))]
            Some(never) => match never {},
            #[cfg(unix)]
            Some(provider) => {
                // The provider calls into the OS (and maybe a foreign runtime): keep it off the reactor.
                let s = settings.clone();
                let fd = tokio::task::spawn_blocking(move || provider.open_tun(&s))
                    .await
                    .map_err(|e| DriverError::OpenTun(std::io::Error::other(e.to_string())))?
                    .map_err(DriverError::OpenTun)?;
                platform::adopt_tun(fd, settings.mtu)?
            }
            None => platform::open_tun(&TunConfig {
                name: self.options.tun_name.clone(),
                ipv4: settings.ipv4,
                ipv6: settings.ipv6,
                mtu: settings.mtu,
            })?,
        };
        let tun = Arc::new(tun);
        let name = tun.name().to_string();
        if self.options.configure_network && self.hooks.tun.is_none() {
            let applied = platform::apply(
                &NetworkConfig {
                    tun_name: name.clone(),
                    gateway: self.gateway,
                    routes: settings.routes.clone(),
                    dns: settings.dns.clone(),
                    dns_domains: settings.dns_domains.clone(),
                    kill_switch: self.profile.kill_switch,
                    excluded: settings.excluded.clone(),
                    ..NetworkConfig::new(name.clone(), self.gateway)
                },
                &self.options.state_dir,
            )?;
            self.network = Some(applied);
        }
        let (up_tx, up_rx) = mpsc::channel(8);
        let max_mss = self.options.mtu.saturating_sub(40);
        tokio::spawn(dataplane::uplink(
            tun.clone(),
            self.natt.clone(),
            up_rx,
            self.counters.clone(),
            self.plane_seed,
            max_mss,
        ));
        self.uplink = Some(up_tx);
        // The downlink task runs from the start (IKE arrives on the NAT-T socket too); give it the TUN now.
        if let Some(d) = &self.downlink {
            let _ = d.send(Update::Tun(tun.clone())).await;
        }
        self.tun = Some(tun);
        let _ = self
            .events
            .send(SessionEvent::TunnelUp {
                tun: name,
                mtu: settings.mtu,
                routes: settings.routes.iter().map(|(a, p)| format!("{a}/{p}")).collect(),
                dns: settings.dns.clone(),
            })
            .await;
        Ok(())
    }

    /// Send what the IKE SA (and the one a reauthentication retires) want sent.
    async fn flush(&mut self) {
        loop {
            let Some(t) = self.retiring.as_mut().and_then(IkeSa::poll_transmit).or_else(|| self.sa.poll_transmit())
            else {
                return;
            };
            let sock = match t.socket {
                SocketKind::Ike => &self.ike,
                SocketKind::NatT => &self.natt,
            };
            if let Err(e) = sock.send_to(&t.payload, t.remote).await {
                debug!(%e, remote = %t.remote, "send failed");
            }
        }
    }

    /// Stop the data plane tasks and restore routes and DNS.
    async fn teardown(&mut self) {
        self.downlink = None;
        self.teardown_tunnel();
    }

    /// Stop the uplink, restore routes and DNS, close the TUN (the downlink keeps receiving IKE).
    fn teardown_tunnel(&mut self) {
        self.uplink = None;
        self.tun_settings = None;
        if let Some(mut n) = self.network.take() {
            if let Err(e) = n.restore() {
                warn!(%e, "restoring network settings failed");
            }
        }
        self.tun = None;
    }
}

/// Hands a socket to the embedder's [`SocketProtector`](crate::platform::SocketProtector), if any.
#[cfg(unix)]
fn protect(hooks: &PlatformHooks, socket: &impl std::os::fd::AsFd) -> Result<(), DriverError> {
    hooks.protect(socket.as_fd()).map_err(DriverError::Protect)
}

/// No platform hooks outside Unix (the mobile VPN APIs are Android's and Apple's).
#[cfg(not(unix))]
#[derive(Clone, Debug, Default)]
struct PlatformHooks {
    tun: Option<std::convert::Infallible>,
}

#[cfg(not(unix))]
fn protect<S>(_hooks: &PlatformHooks, _socket: &S) -> Result<(), DriverError> {
    Ok(())
}

#[cfg(all(test, unix))]
mod hook_tests {
    use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
    use std::sync::Mutex;

    use super::*;
    use crate::platform::{SocketProtector, TunProvider};

    /// Records the local port of every socket it is given, and whether the fake gateway had already
    /// received a datagram at that moment.
    struct Recorder {
        gateway: Arc<std::net::UdpSocket>,
        seen: Mutex<Vec<(RawFd, u16, bool)>>,
        fail: bool,
    }

    impl SocketProtector for Recorder {
        fn protect(&self, socket: BorrowedFd<'_>) -> std::io::Result<()> {
            if self.fail {
                return Err(std::io::Error::other("protect refused"));
            }
            let sock = std::net::UdpSocket::from(socket.try_clone_to_owned()?);
            let port = sock.local_addr()?.port();
            let mut buf = [0u8; 1];
            let sent_before = self.gateway.peek_from(&mut buf).is_ok();
            if let Ok(mut v) = self.seen.lock() {
                v.push((socket.as_raw_fd(), port, sent_before));
            }
            Ok(())
        }
    }

    struct NoTun;
    impl TunProvider for NoTun {
        fn open_tun(&self, _: &TunnelSettings) -> std::io::Result<OwnedFd> {
            Err(std::io::Error::other("not in this test"))
        }
    }

    fn profile(port: u16) -> Resolved {
        let text = format!(
            "[gateway]\naddress = \"127.0.0.1\"\nport = {port}\n[local]\nid = \"c@ikelink.test\"\nike_port = 0\n\
             natt_port = 0\n[auth]\nmethod = \"psk\"\npsk = \"secret\"\n"
        );
        crate::profile::Profile::parse(&text).unwrap().resolve().unwrap()
    }

    fn recorder(fail: bool) -> (Arc<Recorder>, Arc<std::net::UdpSocket>) {
        let gateway = Arc::new(std::net::UdpSocket::bind("127.0.0.1:0").unwrap());
        gateway.set_nonblocking(true).unwrap();
        (Arc::new(Recorder { gateway: gateway.clone(), seen: Mutex::new(Vec::new()), fail }), gateway)
    }

    #[tokio::test]
    async fn every_socket_is_protected_before_it_sends() {
        let (rec, gateway) = recorder(false);
        let hooks = PlatformHooks { tun: Some(Arc::new(NoTun)), protect: Some(rec.clone()) };
        let options = SessionOptions { watch_network: None, ..SessionOptions::default() };
        let (tx, _rx) = mpsc::channel(16);
        let port = gateway.local_addr().unwrap().port();
        let session = Session::start_with_hooks(profile(port), options, hooks, tx).await.unwrap();
        // The IKE_SA_INIT request arrives from one of the protected sockets.
        gateway.set_nonblocking(false).unwrap();
        gateway.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 2048];
        let (_, from) = tokio::task::spawn_blocking(move || gateway.recv_from(&mut buf)).await.unwrap().unwrap();
        let seen = rec.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 3, "IKE, NAT-T and the route probe: {seen:?}");
        assert!(seen.iter().all(|(fd, _, sent)| *fd >= 0 && !sent), "protected before anything was sent: {seen:?}");
        assert!(seen.iter().any(|(_, p, _)| *p == from.port()), "{from} not among {seen:?}");
        tokio::time::timeout(Duration::from_secs(5), session.disconnect()).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_refused_protect_is_an_error() {
        let (rec, gateway) = recorder(true);
        let hooks = PlatformHooks { tun: None, protect: Some(rec) };
        let (tx, _rx) = mpsc::channel(16);
        let port = gateway.local_addr().unwrap().port();
        let r = Session::start_with_hooks(profile(port), SessionOptions::default(), hooks, tx).await;
        assert!(matches!(r, Err(DriverError::Protect(_))), "{:?}", r.err());
        let mut buf = [0u8; 16];
        assert!(gateway.recv_from(&mut buf).is_err(), "nothing sent");
    }
}
