//! The tokio driver: owns the UDP sockets, the clock, the TUN and the fetches, and executes what the sans-IO
//! session policy ([`ikelink_proto::session::Session`]) decides: it feeds it datagrams, timeouts and answers, and
//! carries out its actions (send, resolve, install a Child SA, move the gateway route, fetch a CRL).
//!
//! One [`Session`] is one connection over time (reconnects included). Events arrive on a channel.

mod dataplane;
mod fetch;
mod stream;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_core::{OsRng, TryRngCore};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::{debug, info, trace, warn};

use crate::datapath::ChildHalf;
pub use dataplane::Stats;
use dataplane::{Counters, Update};

use ikelink_proto::session::{Action, Event as PolicyEvent, Session as Policy, SessionConfig, TransportMode};
pub use ikelink_proto::session::{ChildSummary, ReconnectPolicy};
use ikelink_proto::tcp::{frame_datagram, Transport, MAX_FRAME, TCP_ESP_OVERHEAD};

use crate::esp::EspSa;
use crate::ike::{ts_to_cidrs, ChildSa, CloseReason, IkeError, SessionInfo, SocketKind, State};
use crate::platform::PlatformHooks;
use crate::platform::{self, AppliedNetwork, NetworkConfig, Tun, TunConfig, TunnelSettings};
use crate::profile::Resolved;

/// How long a session's end waits for the data-plane tasks to stop (they stop within one scheduling round).
const PLANE_STOP_TIMEOUT: Duration = Duration::from_secs(2);

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
    /// A negotiated Child SA's keys do not make an ESP SA.
    #[error("cannot set up ESP: {0}")]
    Esp(String),
    /// The session task panicked (a bug) or was cancelled.
    #[error("the session task panicked")]
    Panicked,
    #[error("the session task was cancelled")]
    Cancelled,
    #[error(transparent)]
    Ike(#[from] IkeError),
}

/// How a session failed, as the application sees it (the error of [`SessionEvent::Closed`]): the protocol's
/// errors, and the runtime's failures by kind. Cloneable, unlike [`DriverError`], whose text it keeps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The IKE SA ended: the gateway, authentication, negotiation or the configuration.
    #[error(transparent)]
    Ike(IkeError),
    /// The tunnel device, routes, DNS or ESP could not be set up.
    #[error("{0}")]
    Tunnel(String),
    /// The embedder's platform hooks failed (socket protection, the TUN provider).
    #[error("{0}")]
    Platform(String),
    /// Sockets, or no route to the gateway.
    #[error("{0}")]
    Io(String),
    /// No randomness, or a bug: the session task panicked or was cancelled.
    #[error("{0}")]
    Internal(String),
}

impl From<&DriverError> for SessionError {
    fn from(e: &DriverError) -> SessionError {
        let text = e.to_string();
        match e {
            DriverError::Ike(e) => SessionError::Ike(e.clone()),
            DriverError::Platform(_) | DriverError::Esp(_) => SessionError::Tunnel(text),
            DriverError::Protect(_) | DriverError::OpenTun(_) => SessionError::Platform(text),
            DriverError::Bind { .. } | DriverError::NoRoute { .. } => SessionError::Io(text),
            DriverError::Random(_) | DriverError::Panicked | DriverError::Cancelled => SessionError::Internal(text),
        }
    }
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
    /// The IKE SA closed (it failed, the gateway deleted or redirected it...); the next attempt starts after
    /// `delay` (the TUN and routes stay, so nothing leaks).
    Reconnecting {
        attempt: u32,
        delay: Duration,
        reason: CloseReason,
    },
    /// The session is over, and why: [`CloseReason::Local`] after [`Session::disconnect`].
    Closed(CloseReason<SessionError>),
}

impl From<PolicyEvent> for SessionEvent {
    fn from(e: PolicyEvent) -> SessionEvent {
        match e {
            PolicyEvent::State(s) => SessionEvent::State(s),
            PolicyEvent::Connected { info, child } => SessionEvent::Connected { info, child },
            PolicyEvent::ChildSaDeleted { inbound_spi, outbound_spi } => {
                SessionEvent::ChildSaDeleted { inbound_spi, outbound_spi }
            }
            PolicyEvent::ChildSaRekeyed { old_spi_in, child } => SessionEvent::ChildSaRekeyed { old_spi_in, child },
            PolicyEvent::Reconnecting { attempt, delay, reason } => {
                SessionEvent::Reconnecting { attempt, delay, reason }
            }
            PolicyEvent::Closed(reason) => SessionEvent::Closed(reason.map_err(SessionError::Ike)),
        }
    }
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
        let mut seed = [0u8; 32];
        OsRng.try_fill_bytes(&mut seed).map_err(|e| DriverError::Random(e.to_string()))?;
        let natt_port = natt.local_addr().map(|a| a.port()).unwrap_or(profile.natt_port);
        let config = SessionConfig {
            ike: profile.ike.clone(),
            gateway: profile.gateway,
            gateway_name: profile.gateway_name.clone(),
            backups: profile.backups.clone(),
            reconnect: options.reconnect,
            local,
            natt_port,
            transport: profile.transport,
        };
        let policy = Policy::new(config, Instant::now(), unix_now(), seed)?;
        let (tx, rx) = mpsc::channel(4);
        let gateway_ip = profile.gateway.ip();
        let driver = Driver {
            policy,
            profile,
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
            plane_tasks: Vec::new(),
            crl_cache: Default::default(),
            stream: None,
            stream_wanted: 0,
            frame_buf: vec![0u8; MAX_FRAME],
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
            Err(e) if e.is_panic() => Err(DriverError::Panicked),
            Err(_) => Err(DriverError::Cancelled),
        }
    }
}

/// The wall clock in seconds since 1970 (certificate validity), 0 if it is before that.
fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The I/O task: executes the session policy's actions; owns the sockets and the data plane's lifecycle.
struct Driver {
    policy: Policy,
    profile: Resolved,
    ike: Arc<UdpSocket>,
    natt: Arc<UdpSocket>,
    options: SessionOptions,
    hooks: PlatformHooks,
    events: mpsc::Sender<SessionEvent>,
    /// The gateway address our routes keep out of the tunnel.
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
    /// The data-plane tasks: they hold the NAT-T socket and the TUN, so the session waits for them when it ends.
    plane_tasks: Vec<tokio::task::JoinHandle<()>>,
    crl_cache: fetch::CrlCache,
    /// The TCP stream (RFC 9329) when the session runs over TCP, and the one last asked for.
    stream: Option<Arc<stream::StreamWriter>>,
    stream_wanted: u64,
    /// IKE messages framed for the stream.
    frame_buf: Vec<u8>,
}

/// What the run loop's background work reports back.
enum Answer {
    StreamOpened(u64, tokio::net::TcpStream),
    Fetched(u64, Vec<crate::crypto::RevocationRequest>, Vec<crate::crypto::RevocationResponse>),
    Resolved(Option<SocketAddr>),
}

impl Driver {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) -> Result<(), DriverError> {
        let (ike_tx, mut ike_rx) = mpsc::channel::<Vec<u8>>(16);
        let (down_tx, down_rx) = mpsc::channel(8);
        let max_mss = self.max_mss();
        let downlink = dataplane::downlink(None, self.natt.clone(), down_rx, ike_tx, self.counters.clone(), max_mss);
        self.plane_tasks.push(tokio::spawn(downlink));
        self.downlink = Some(down_tx);
        let mut buf = vec![0u8; 65536];
        let mut commands_open = true;
        let mut packets_seen = 0u64;
        let mut stats_tick = self.options.stats_interval.map(tokio::time::interval);
        let mut net_tick = self.options.watch_network.map(tokio::time::interval);
        let (answer_tx, mut answer_rx) = mpsc::channel::<Answer>(4);
        // Streams that broke or could not be opened, by id.
        let (broken_tx, mut broken_rx) = mpsc::channel::<u64>(8);
        let result = loop {
            self.flush().await;
            if let Err(e) = self.execute(&answer_tx, &broken_tx).await {
                // The tunnel cannot work: close the IKE SA and report why.
                warn!(%e, "the tunnel cannot be set up");
                self.policy.abort(Instant::now());
                self.flush().await;
                let _ = self.events.send(SessionEvent::Closed(CloseReason::Error(SessionError::from(&e)))).await;
                break Err(e);
            }
            if self.policy.is_finished() {
                break Ok(());
            }
            self.flush().await;
            let deadline = self.policy.poll_timeout().map(tokio::time::Instant::from_std);
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
                            self.policy.handle_datagram(Instant::now(), data);
                        }
                    }
                    Err(e) => debug!(%e, "IKE socket error"),
                },
                m = ike_rx.recv() => if let Some(m) = m {
                    self.policy.handle_datagram(Instant::now(), &m);
                },
                a = answer_rx.recv() => match a {
                    Some(Answer::Fetched(spi, requests, fetched)) => {
                        self.crl_cache.store(&requests, &fetched, Instant::now());
                        self.policy.revocation_fetched(Instant::now(), spi, fetched);
                    }
                    Some(Answer::Resolved(addr)) => self.policy.resolved(Instant::now(), addr),
                    Some(Answer::StreamOpened(id, s)) => self.stream_opened(id, s, &broken_tx).await,
                    None => {}
                },
                id = broken_rx.recv() => if let Some(id) = id {
                    if self.stream.as_ref().is_some_and(|w| w.id == id) {
                        self.drop_stream().await;
                    }
                    self.policy.stream_closed(Instant::now(), id);
                },
                _ = sleep => {
                    // ESP from the gateway counts as a sign of life: no DPD needed then.
                    let seen = self.counters.packets_in.load(std::sync::atomic::Ordering::Relaxed);
                    if seen != packets_seen {
                        packets_seen = seen;
                        self.policy.note_inbound_traffic(Instant::now());
                    }
                    self.policy.set_clock(Instant::now(), unix_now());
                    self.policy.handle_timeout(Instant::now());
                },
                _ = net => {
                    self.check_network(false);
                    self.report_child_traffic();
                }
                _ = tick => { let _ = self.events.send(SessionEvent::Stats(self.counters.snapshot())).await; }
                c = commands.recv(), if commands_open => match c {
                    Some(Command::Disconnect) => self.policy.close(Instant::now()),
                    Some(Command::Stats) => { let _ = self.events.send(SessionEvent::Stats(self.counters.snapshot())).await; }
                    Some(Command::NetworkChanged) => self.check_network(true),
                    None => commands_open = false,
                },
            }
        };
        self.teardown().await;
        result
    }

    /// Carry out the session policy's actions, in order.
    async fn execute(&mut self, answers: &mpsc::Sender<Answer>, broken: &mpsc::Sender<u64>) -> Result<(), DriverError> {
        while let Some(action) = self.policy.poll_action() {
            match action {
                Action::Event(PolicyEvent::Closed(reason)) => {
                    let _ = self.events.send(SessionEvent::Stats(self.counters.snapshot())).await;
                    let _ = self.events.send(SessionEvent::Closed(reason.map_err(SessionError::Ike))).await;
                }
                Action::Event(e) => {
                    let _ = self.events.send(SessionEvent::from(e)).await;
                }
                Action::Resolve { name, port } => {
                    let (tx, hooks) = (answers.clone(), self.hooks.clone());
                    tokio::spawn(async move {
                        let addr = match lookup(&hooks, &name, port).await {
                            Ok(a) => Some(a),
                            Err(e) => {
                                debug!(%e, name, "cannot resolve");
                                None
                            }
                        };
                        let _ = tx.send(Answer::Resolved(addr)).await;
                    });
                }
                Action::InstallChild { child, peer, info } => self.install_child(child, peer, info.as_ref()).await?,
                Action::RemoveChild { inbound_spi, outbound_spi } => {
                    if let Some(d) = &self.downlink {
                        let _ = d.send(Update::Remove(inbound_spi)).await;
                    }
                    if let Some(u) = &self.uplink {
                        let _ = u.send(Update::Remove(outbound_spi)).await;
                    }
                }
                Action::Retarget { to, .. } => self.retarget(to)?,
                Action::OpenStream { id, to } => {
                    // The new stream replaces the old one at once.
                    self.drop_stream().await;
                    self.stream_wanted = id;
                    let (tx, broken, hooks) = (answers.clone(), broken.clone(), self.hooks.clone());
                    tokio::spawn(async move {
                        match stream::open(&hooks, to).await {
                            Ok(s) => {
                                let _ = tx.send(Answer::StreamOpened(id, s)).await;
                            }
                            Err(e) => {
                                info!(%e, %to, "cannot open the TCP stream to the gateway");
                                let _ = broken.send(id).await;
                            }
                        }
                    });
                }
                Action::FetchRevocation { spi, requests } => {
                    let (cache, hooks, tx) = (self.crl_cache.clone(), self.hooks.clone(), answers.clone());
                    tokio::spawn(async move {
                        let fetched = fetch::fetch_revocation(&requests, &cache, &hooks).await;
                        let _ = tx.send(Answer::Fetched(spi, requests, fetched)).await;
                    });
                }
            }
        }
        Ok(())
    }

    /// The inner TCP MSS: the TUN MTU minus IP and TCP headers, and over TCP encapsulation (possible with
    /// `tcp` and `auto`) minus its extra framing, so a lone sealed packet fits one outer segment.
    fn max_mss(&self) -> u16 {
        let tcp = if self.profile.transport.mode == TransportMode::Udp { 0 } else { TCP_ESP_OVERHEAD };
        self.options.mtu.saturating_sub(40 + tcp)
    }

    /// The stream asked for is connected: IKE and ESP go over it from now on.
    async fn stream_opened(&mut self, id: u64, s: tokio::net::TcpStream, broken: &mpsc::Sender<u64>) {
        if id != self.stream_wanted {
            return;
        }
        let local = match s.local_addr() {
            Ok(a) => a,
            Err(e) => {
                debug!(%e, "TCP stream without a local address");
                let _ = broken.send(id).await;
                return;
            }
        };
        info!(%local, peer = ?s.peer_addr().ok(), "TCP stream to the gateway open (RFC 9329)");
        let (read, write) = s.into_split();
        let writer = Arc::new(stream::StreamWriter::new(id, write, broken.clone()));
        if let Some(d) = &self.downlink {
            let _ = d.send(Update::Stream(id, read, broken.clone())).await;
        }
        if let Some(u) = &self.uplink {
            let _ = u.send(Update::Writer(Some(writer.clone()))).await;
        }
        self.stream = Some(writer);
        self.policy.stream_opened(Instant::now(), id, local);
    }

    /// Stop writing to the current stream (its read half ends in the downlink when replaced).
    async fn drop_stream(&mut self) {
        if self.stream.take().is_some() {
            if let Some(u) = &self.uplink {
                let _ = u.send(Update::Writer(None)).await;
            }
        }
    }

    /// Byte lifetimes: tell the IKE SA how much the current Child SA has carried.
    fn report_child_traffic(&mut self) {
        let Some((spi_in, base)) = self.child_bytes_base else { return };
        let snap = self.counters.snapshot();
        let total = snap.bytes_in + snap.bytes_out;
        self.policy.note_child_traffic(Instant::now(), spi_in, total.saturating_sub(base));
    }

    /// Our source address towards the gateway now, for the session policy (which acts on a change, or always
    /// when the platform says the network changed).
    fn check_network(&mut self, forced: bool) {
        let gateway = self.policy.gateway();
        let probe = std::net::UdpSocket::bind(SocketAddr::new(
            if gateway.is_ipv4() { Ipv4Addr::UNSPECIFIED.into() } else { Ipv6Addr::UNSPECIFIED.into() },
            0,
        ));
        let probe = probe.and_then(|p| protect(&self.hooks, &p).map(|()| p).map_err(std::io::Error::other));
        match probe.and_then(|p| p.connect(gateway).and_then(|()| p.local_addr())) {
            Ok(a) => self.policy.network_changed(Instant::now(), a.ip(), forced),
            Err(e) => trace!(%e, "no route to the gateway right now"),
        }
    }

    /// Keep the gateway out of the tunnel at its new address: move the host route we installed (desktop), and
    /// remember the address for the tunnel settings.
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

    /// Hand a Child SA to the data plane; the first one also brings up the TUN, routes and DNS.
    async fn install_child(
        &mut self,
        c: ChildSa,
        peer: SocketAddr,
        info: Option<&SessionInfo>,
    ) -> Result<(), DriverError> {
        let inbound = EspSa::inbound(&c.inbound, 1024).map_err(|e| DriverError::Esp(e.to_string()))?;
        let snap = self.counters.snapshot();
        self.child_bytes_base = Some((c.inbound.spi, snap.bytes_in + snap.bytes_out));
        let outbound = EspSa::outbound(&c.outbound).map_err(|e| DriverError::Esp(e.to_string()))?;
        // After a reconnect the gateway may hand out another virtual IP (or other routes or DNS servers):
        // rebuild the tunnel; with the same settings the TUN (and routes) stay.
        let settings = self.tunnel_settings(&c, info);
        if self.tun.is_some() && c.replaces.is_none() && self.tun_settings.as_ref() != Some(&settings) {
            info!("tunnel settings changed on reconnect: rebuilding the tunnel device");
            self.teardown_tunnel();
        }
        if self.options.data_plane && self.tun.is_none() {
            self.bring_up(&settings).await?;
            self.tun_settings = Some(settings);
        }
        if let Some(d) = &self.downlink {
            let half =
                ChildHalf { sa: inbound, ts_local: c.ts_i.clone(), ts_remote: c.ts_r.clone(), peer, activate: true };
            let _ = d.send(Update::Install(Box::new(half))).await;
        }
        if let Some(u) = &self.uplink {
            let half = ChildHalf {
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
    fn tunnel_settings(&self, c: &ChildSa, info: Option<&SessionInfo>) -> TunnelSettings {
        let config = info.map(|i| i.config.clone()).unwrap_or_default();
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
        let max_mss = self.max_mss();
        let uplink =
            dataplane::uplink(tun.clone(), self.natt.clone(), up_rx, self.counters.clone(), self.plane_seed, max_mss);
        self.plane_tasks.retain(|t| !t.is_finished());
        self.plane_tasks.push(tokio::spawn(uplink));
        if let Some(w) = &self.stream {
            let _ = up_tx.send(Update::Writer(Some(w.clone()))).await;
        }
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

    /// Send what the IKE SAs (the current one, and one a reauthentication retires) want sent.
    async fn flush(&mut self) {
        while let Some(t) = self.policy.poll_transmit() {
            if self.policy.transport() == Transport::Tcp {
                let Some(w) = self.stream.clone() else { continue };
                match frame_datagram(&t.payload, t.socket == SocketKind::NatT, &mut self.frame_buf) {
                    Ok(0) => {}
                    Ok(n) => {
                        w.write(self.frame_buf.get(..n).unwrap_or_default()).await;
                    }
                    Err(e) => warn!(%e, "IKE message not sent"),
                }
                continue;
            }
            let sock = match t.socket {
                SocketKind::Ike => &self.ike,
                SocketKind::NatT => &self.natt,
            };
            if let Err(e) = sock.send_to(&t.payload, t.remote).await {
                debug!(%e, remote = %t.remote, "send failed");
            }
        }
    }

    /// Stop the data plane, restore routes and DNS, and wait (bounded) until its tasks have let go of the NAT-T socket and the TUN, so
    /// the ports are free when the session reports it has ended: an app may connect again at once.
    async fn teardown(&mut self) {
        self.downlink = None;
        self.teardown_tunnel();
        for task in self.plane_tasks.drain(..) {
            if tokio::time::timeout(PLANE_STOP_TIMEOUT, task).await.is_err() {
                warn!("a data-plane task did not stop in time");
            }
        }
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

/// Resolves a name through the embedder's resolver or the system's.
pub(crate) async fn lookup(hooks: &PlatformHooks, host: &str, port: u16) -> std::io::Result<SocketAddr> {
    hooks.lookup(host, port).await
}

/// No socket protection outside Unix (the mobile VPN APIs are Android's and Apple's).
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
        let hooks = PlatformHooks { tun: Some(Arc::new(NoTun)), protect: Some(rec.clone()), resolve: None };
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

    /// `transport = "tcp"` (RFC 9329): the client connects to the TCP port from a protected socket, sends
    /// `IKETCP` and then IKE_SA_INIT as a length-framed message with the non-ESP marker; when the gateway closes
    /// the stream, the client opens a new one and sends the request in flight again on it.
    #[tokio::test]
    async fn tcp_transport_frames_ike_and_reopens_a_closed_stream() {
        use tokio::io::AsyncReadExt;
        let (rec, udp_gw) = recorder(false);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tcp_port = listener.local_addr().unwrap().port();
        let udp_port = udp_gw.local_addr().unwrap().port();
        let text = format!(
            "[gateway]\naddress = \"127.0.0.1\"\nport = {udp_port}\ntransport = \"tcp\"\ntcp_port = {tcp_port}\n\
             [local]\nid = \"c@ikelink.test\"\nike_port = 0\nnatt_port = 0\n[auth]\nmethod = \"psk\"\npsk = \"secret\"\n"
        );
        let profile = crate::profile::Profile::parse(&text).unwrap().resolve().unwrap();
        let hooks = PlatformHooks { tun: Some(Arc::new(NoTun)), protect: Some(rec.clone()), resolve: None };
        let options = SessionOptions { watch_network: None, ..SessionOptions::default() };
        let (tx, _rx) = mpsc::channel(16);
        let session = Session::start_with_hooks(profile, options, hooks, tx).await.unwrap();
        let t = Duration::from_secs(5);
        let mut spis = Vec::new();
        for round in 0..2 {
            let (mut conn, from) = tokio::time::timeout(t, listener.accept()).await.unwrap().unwrap();
            let mut head = [0u8; 6 + 2 + 4 + 28];
            tokio::time::timeout(t, conn.read_exact(&mut head)).await.unwrap().unwrap();
            assert_eq!(&head[..6], b"IKETCP", "round {round}");
            let len = usize::from(u16::from_be_bytes([head[6], head[7]]));
            assert_eq!(&head[8..12], &[0, 0, 0, 0], "the non-ESP marker");
            let ike = &head[12..];
            assert_eq!(ike[18], 34, "IKE_SA_INIT");
            assert_eq!(usize::from(u16::from_be_bytes([ike[26], ike[27]])) + 6, len, "the frame holds the message");
            spis.push(ike[..8].to_vec());
            // IKE, NAT-T and the route probe, then each stream's socket before it connected (unbound then).
            let _ = from;
            let seen = rec.seen.lock().unwrap().clone();
            assert_eq!(seen.len(), 4 + round, "the stream's socket was protected: {seen:?}");
            assert_eq!(seen.last().map(|s| s.1), Some(0), "protected before it connected: {seen:?}");
            // Cut the stream: the client opens another one and resends IKE_SA_INIT there.
            drop(conn);
        }
        assert_eq!(spis[0], spis[1], "the same IKE SA goes on over the new stream");
        let mut buf = [0u8; 16];
        assert!(udp_gw.recv_from(&mut buf).is_err(), "nothing over UDP");
        tokio::time::timeout(Duration::from_secs(5), session.disconnect()).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_refused_protect_is_an_error() {
        let (rec, gateway) = recorder(true);
        let hooks = PlatformHooks { tun: None, protect: Some(rec), resolve: None };
        let (tx, _rx) = mpsc::channel(16);
        let port = gateway.local_addr().unwrap().port();
        let r = Session::start_with_hooks(profile(port), SessionOptions::default(), hooks, tx).await;
        assert!(matches!(r, Err(DriverError::Protect(_))), "{:?}", r.err());
        let mut buf = [0u8; 16];
        assert!(gateway.recv_from(&mut buf).is_err(), "nothing sent");
    }
}
