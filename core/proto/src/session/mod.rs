//! Session policy, sans-IO: one connection to a gateway over time, around the IKE SAs that carry it.
//!
//! An [`IkeSa`] ends when its gateway goes away; a [`Session`] decides what happens then: reconnect with
//! backoff, fail over to a backup gateway, follow a redirect (RFC 5685) within a limit, reauthenticate
//! make-before-break (RFC 7296 §2.8.3) and fall back to the current IKE SA when that fails, and schedule the
//! revocation fetches the IKE SA asks for. Like the IKE SA it takes `(now, bytes, answers)` and returns
//! datagrams ([`Session::poll_transmit`]), a deadline ([`Session::poll_timeout`]) and [`Action`]s in order
//! ([`Session::poll_action`]): events for the application, and work only the runtime can do (resolve a name,
//! install a Child SA in the data plane, move the gateway's host route, fetch a CRL). Randomness comes from the
//! seed given to [`Session::new`], wall-clock time from [`Session::set_clock`].

#[cfg(test)]
mod tests;
mod transport;

use transport::Link;
pub use transport::{Transport, TransportMode, TransportPolicy, AUTO_UDP_BUDGET, DEFAULT_TCP_PORT, STREAM_RETRY_MAX};

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use tracing::{info, warn};

use crate::crypto::{RevocationRequest, RevocationResponse};
use crate::ike::{
    ChildSa, CloseReason, EspSuite, Event as IkeEvent, GatewayIdentity, IkeConfig, IkeError, IkeSa, SessionInfo, State,
    Transmit,
};
use crate::wire::TrafficSelector;

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
pub fn retriable(e: &IkeError) -> bool {
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

/// At most this many redirects within [`REDIRECT_WINDOW`] (RFC 5685 §10 asks for a limit; strongSwan's).
pub const MAX_REDIRECTS: usize = 5;
pub const REDIRECT_WINDOW: Duration = Duration::from_secs(300);
/// When a reauthentication's new IKE SA failed, try again this much later (the old one keeps working).
pub const REAUTH_RETRY: Duration = Duration::from_secs(30);

/// What a session needs beyond one IKE SA's configuration.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Every IKE SA of the session starts from this.
    pub ike: IkeConfig,
    /// The gateway's address as first resolved (and its name, resolved again on every reconnect).
    pub gateway: SocketAddr,
    pub gateway_name: Option<String>,
    /// Backup gateways (`gateway.backup`), host names or addresses, tried in order when one does not answer.
    pub backups: Vec<String>,
    /// Re-establish the tunnel after it was up and then failed; `None`: the session ends with the IKE SA.
    pub reconnect: Option<ReconnectPolicy>,
    /// Our address towards the gateway (for NAT detection) and our NAT-T port.
    pub local: SocketAddr,
    pub natt_port: u16,
    /// UDP, TCP (RFC 9329) or `auto`.
    pub transport: TransportPolicy,
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

impl ChildSummary {
    pub fn of(c: &ChildSa) -> ChildSummary {
        ChildSummary {
            suite: c.suite,
            spi_in: c.inbound.spi,
            spi_out: c.outbound.spi,
            ts_i: c.ts_i.clone(),
            ts_r: c.ts_r.clone(),
        }
    }
}

/// What the application is told.
#[derive(Debug, Clone)]
// `Connected` is sent once per session; boxing it would only complicate every consumer.
#[allow(clippy::large_enum_variant)]
pub enum Event {
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
    /// The IKE SA closed (it failed, the gateway deleted or redirected it...); the next attempt starts after
    /// `delay`.
    Reconnecting {
        attempt: u32,
        delay: Duration,
        reason: CloseReason,
    },
    /// The session is over; [`CloseReason::Local`] after a disconnect.
    Closed(CloseReason),
}

/// What the runtime does for the session, in order.
#[derive(Debug)]
pub enum Action {
    /// Tell the application.
    Event(Event),
    /// Look `name` up (A/AAAA) and answer with [`Session::resolved`].
    Resolve { name: String, port: u16 },
    /// Hand this Child SA to the data plane, ESP to `peer`. `info` is the connection's configuration (virtual
    /// IP, DNS) with the first Child SA of an IKE SA, for the tunnel device; `None` with a rekey.
    InstallChild { child: ChildSa, peer: SocketAddr, info: Option<SessionInfo> },
    /// Remove this Child SA from the data plane.
    RemoveChild { inbound_spi: u32, outbound_spi: u32 },
    /// The session now talks to a gateway at another address: keep that address out of the tunnel.
    Retarget { from: IpAddr, to: IpAddr },
    /// Fetch these CRLs/OCSP answers and answer with [`Session::revocation_fetched`] (with this `spi`).
    FetchRevocation { spi: u64, requests: Vec<RevocationRequest> },
    /// Open a TCP stream to `to` (RFC 9329: send `IKETCP` first), replacing any other; IKE and ESP go over it
    /// from now on ([`Session::transport`]). Answer with [`Session::stream_opened`] or
    /// [`Session::stream_closed`] (also later, when it breaks), with this `id`.
    OpenStream { id: u64, to: SocketAddr },
}

/// A name lookup the session waits for.
#[derive(Debug, Clone)]
enum Lookup {
    /// The current failover candidate; `fallback` is used when it does not resolve; `tries` candidates so far.
    Candidate { fallback: Option<SocketAddr>, tries: usize },
    /// Where the gateway redirected us, from the gateway at `from`.
    Redirect { name: String, from: IpAddr },
}

/// One connection over time. See the module documentation.
pub struct Session {
    config: SessionConfig,
    sa: IkeSa,
    /// During a make-before-break reauthentication: the old IKE SA, carrying the traffic until the new one
    /// (`sa`) has its Child SA, then deleted.
    retiring: Option<IkeSa>,
    /// The gateway the current IKE SA talks to.
    gateway: SocketAddr,
    local: SocketAddr,
    rng: ChaCha20Rng,
    /// The wall clock at an instant (certificate validity of new IKE SAs).
    clock: (Instant, u64),
    connected_once: bool,
    /// Reconnection attempts since the last success, and when the next one starts.
    attempt: u32,
    reconnect_at: Option<Instant>,
    lookup: Option<Lookup>,
    /// The user asked to disconnect.
    closing: bool,
    finished: bool,
    /// The connection's configuration from IKE_AUTH, until the first Child SA reports the connection.
    info: Option<SessionInfo>,
    /// Where the gateway redirected us (RFC 5685) and from which address: the next IKE SA goes there.
    redirect: Option<(SocketAddr, IpAddr)>,
    /// When recent redirects happened (loop protection).
    redirects: VecDeque<Instant>,
    /// Failover (`gateway.backup`): which gateway of [primary, backups...] we use, and how many of them in a
    /// row did not answer.
    candidate: usize,
    failovers: usize,
    actions: VecDeque<Action>,
    /// UDP or TCP, and the TCP stream.
    link: Link,
}

impl Session {
    /// A session whose first IKE SA starts now (its IKE_SA_INIT is queued). `unix_now` is the wall clock at
    /// `now` (seconds since 1970); `seed` feeds every random choice of the session and its IKE SAs.
    pub fn new(config: SessionConfig, now: Instant, unix_now: u64, seed: [u8; 32]) -> Result<Session, IkeError> {
        let mut rng = ChaCha20Rng::from_seed(seed);
        let gateway = config.gateway;
        let local = config.local;
        let transport = Link::initial(config.transport.mode);
        let sa = new_sa(&config, config.ike.clone(), local, gateway, &mut rng, (now, unix_now), now, transport)?;
        let mut session = Session {
            config,
            sa,
            retiring: None,
            gateway,
            local,
            rng,
            clock: (now, unix_now),
            connected_once: false,
            attempt: 0,
            reconnect_at: None,
            lookup: None,
            closing: false,
            finished: false,
            info: None,
            redirect: None,
            redirects: VecDeque::new(),
            candidate: 0,
            failovers: 0,
            actions: VecDeque::new(),
            link: Link::new(transport),
        };
        session.pick_transport(now);
        Ok(session)
    }

    /// The wall clock now (seconds since 1970), for the certificate checks of the IKE SAs started later.
    pub fn set_clock(&mut self, now: Instant, unix_now: u64) {
        self.clock = (now, unix_now);
    }

    /// The current IKE SA.
    pub fn ike_sa(&self) -> &IkeSa {
        &self.sa
    }

    /// The gateway the session talks to now (the profile's, a backup, or where a redirect sent it).
    pub fn gateway(&self) -> SocketAddr {
        self.gateway
    }

    /// Our address towards the gateway, as last reported.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// Reconnection attempts since the last success.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The session is over ([`Event::Closed`] was queued).
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The next datagram to send: the retiring IKE SA's first, then the current one's.
    /// Over TCP nothing goes out while the stream is not open: what the IKE SAs queue meanwhile is dropped, and
    /// their request in flight is sent again once it is ([`Session::stream_opened`]).
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if !self.link.can_send() {
            while self.retiring.as_mut().and_then(IkeSa::poll_transmit).or_else(|| self.sa.poll_transmit()).is_some() {}
            return None;
        }
        loop {
            let t = self.retiring.as_mut().and_then(IkeSa::poll_transmit).or_else(|| self.sa.poll_transmit())?;
            // No NAT keepalives over TCP (RFC 9329 §3): the stream has its own, and DPD covers liveness.
            if self.link.transport == Transport::Tcp && t.payload == crate::esp::udp::NAT_KEEPALIVE {
                continue;
            }
            return Some(t);
        }
    }

    /// The next action, in the order the session decided them.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Session::handle_timeout`] wants to run; `None` while waiting for a name lookup or when finished.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.finished || self.lookup.is_some() {
            return None;
        }
        if let Some(t) = self.reconnect_at {
            return Some(t);
        }
        let old = self.retiring.as_ref().and_then(|o| o.poll_timeout()).map(|(t, _)| t);
        let new = self.sa.poll_timeout().map(|(t, _)| t);
        [old, new, self.link.deadline()].into_iter().flatten().min()
    }

    /// An IKE message from the network, to the IKE SA it belongs to (by the initiator's SPI, RFC 7296 §3.1).
    pub fn handle_datagram(&mut self, now: Instant, data: &[u8]) {
        if self.finished {
            return;
        }
        self.stream_heard();
        let spi_i = data.first_chunk::<8>().map(|b| u64::from_be_bytes(*b));
        match self.retiring.as_mut() {
            Some(old) if spi_i == Some(old.spi_i()) => old.handle_datagram(now, data),
            _ => self.sa.handle_datagram(now, data),
        }
        self.process(now);
    }

    /// The deadline of [`Session::poll_timeout`] passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.finished {
            return;
        }
        match self.reconnect_at {
            Some(t) if t <= now => {
                self.reconnect_at = None;
                self.restart(now);
            }
            Some(_) => {}
            None => {
                self.transport_timeout(now);
                if self.finished {
                    return;
                }
                if let Some(old) = self.retiring.as_mut() {
                    old.handle_timeout(now);
                }
                self.sa.handle_timeout(now);
            }
        }
        self.process(now);
    }

    /// ESP arrived from the gateway since the last call: a sign of life (no DPD needed).
    pub fn note_inbound_traffic(&mut self, now: Instant) {
        if !self.finished && self.reconnect_at.is_none() {
            self.sa.note_inbound_traffic(now);
        }
    }

    /// Byte lifetimes: the Child SA `spi_in` carried `bytes` so far.
    pub fn note_child_traffic(&mut self, now: Instant, spi_in: u32, bytes: u64) {
        if !self.finished {
            self.sa.note_child_traffic(now, spi_in, bytes);
            self.process(now);
        }
    }

    /// Our address towards the gateway is `ip` now (or the platform says the network changed: `forced`):
    /// move the IKE SA (MOBIKE, or its liveness check decides), unless between attempts.
    pub fn network_changed(&mut self, now: Instant, ip: IpAddr, forced: bool) {
        if self.finished || (ip == self.local.ip() && !forced) {
            return;
        }
        info!(old = %self.local.ip(), new = %ip, "local address changed");
        self.local.set_ip(ip);
        if self.reconnect_at.is_none() && self.lookup.is_none() && !self.stream_network_changed() {
            self.sa.network_changed(now, SocketAddr::new(ip, self.config.natt_port));
        }
        self.process(now);
    }

    /// The answers to a [`Action::FetchRevocation`].
    pub fn revocation_fetched(&mut self, now: Instant, spi: u64, fetched: Vec<RevocationResponse>) {
        if !self.finished && spi == self.sa.spi_i() {
            self.sa.handle_revocation(now, fetched);
            self.process(now);
        }
    }

    /// The answer to the pending [`Action::Resolve`]: the first address, or `None` when the name did not resolve.
    pub fn resolved(&mut self, now: Instant, addr: Option<SocketAddr>) {
        match self.lookup.take() {
            None => {}
            Some(Lookup::Redirect { name, from }) => match addr {
                Some(addr) => self.redirect_to(now, addr, from, GatewayIdentity::Fqdn(name)),
                None => {
                    let e = IkeError::Config(format!("cannot resolve {name}, where the gateway redirected us"));
                    self.finish(CloseReason::Error(e));
                }
            },
            Some(Lookup::Candidate { fallback, tries }) => match addr.or(fallback) {
                Some(target) => self.connect(now, target, None),
                None => {
                    // A backup whose name does not resolve is passed over.
                    let n = 1 + self.config.backups.len();
                    self.candidate = (self.candidate + 1) % n;
                    if tries + 1 >= n {
                        self.connect(now, self.config.gateway, None);
                    } else {
                        self.resolve_candidate(now, tries + 1);
                    }
                }
            },
        }
        self.process(now);
    }

    /// Close the IKE SA (a Delete) and end the session; between attempts it ends at once.
    pub fn close(&mut self, now: Instant) {
        if self.finished {
            return;
        }
        self.closing = true;
        if self.reconnect_at.take().is_some() || self.lookup.take().is_some() {
            // Between attempts: nothing to delete.
            self.finish(CloseReason::Local);
            return;
        }
        if let Some(old) = self.retiring.as_mut() {
            old.close(now);
        }
        self.sa.close(now);
        self.process(now);
    }

    /// The runtime cannot carry the tunnel (it could not set up the data plane): delete the IKE SAs and end
    /// without a further [`Event::Closed`]; the runtime reports its own error. Queued actions are dropped.
    pub fn abort(&mut self, now: Instant) {
        self.closing = true;
        self.finished = true;
        self.actions.clear();
        if let Some(old) = self.retiring.as_mut() {
            old.close(now);
        }
        self.sa.close(now);
    }

    fn event(&mut self, e: Event) {
        self.actions.push_back(Action::Event(e));
    }

    fn finish(&mut self, reason: CloseReason) {
        self.finished = true;
        self.event(Event::Closed(reason));
    }

    /// The IKE SAs' events, turned into actions.
    fn process(&mut self, now: Instant) {
        if self.finished {
            return;
        }
        self.transport_progress();
        self.process_retiring();
        while let Some(ev) = self.sa.poll_event() {
            let out = match ev {
                // The old IKE SA still carries the tunnel: the new one's progress is no news for the app.
                IkeEvent::StateChanged(_) if self.retiring.is_some() => continue,
                IkeEvent::StateChanged(s) => Event::State(s),
                IkeEvent::ReauthenticationDue => {
                    self.start_reauthentication(now);
                    continue;
                }
                IkeEvent::Closed(reason) if self.retiring.is_some() && !self.closing => {
                    // The new IKE SA failed; the old one still works: keep it, try again later.
                    warn!(reason = ?reason, "reauthentication failed; keeping the current IKE SA");
                    if let Some(old) = self.retiring.take() {
                        self.sa = old;
                        self.sa.postpone_reauthentication(now + REAUTH_RETRY);
                    }
                    continue;
                }
                IkeEvent::Established(mut info) => {
                    info.transport = self.link.transport;
                    self.info = Some(info);
                    continue;
                }
                IkeEvent::FetchRevocation(requests) => {
                    self.actions.push_back(Action::FetchRevocation { spi: self.sa.spi_i(), requests });
                    continue;
                }
                IkeEvent::ChildSaInstalled(_) if self.sa.state() != State::Established => {
                    // Defence in depth (the IKE SA already gates this): no ESP, TUN, route or DNS change for an
                    // IKE SA whose gateway has not authenticated.
                    warn!(state = ?self.sa.state(), "Child SA from an IKE SA that is not established; ignored");
                    continue;
                }
                IkeEvent::ChildSaInstalled(c) => {
                    let summary = ChildSummary::of(&c);
                    let rekey = c.replaces;
                    let info = if rekey.is_none() { self.info.clone() } else { None };
                    self.actions.push_back(Action::InstallChild { child: c, peer: self.sa.remote(), info });
                    match (rekey, self.info.take()) {
                        // The first Child SA completes the connection; later ones are rekeys.
                        (None, Some(info)) => {
                            self.connected_once = true;
                            self.attempt = 0;
                            self.failovers = 0;
                            if let Some(old) = self.retiring.as_mut() {
                                // Make-before-break: the new Child SA carries the traffic now; delete the old SAs.
                                info!("reauthenticated: the new IKE SA carries the tunnel, deleting the old one");
                                old.retire(now);
                            }
                            Event::Connected { info, child: summary }
                        }
                        (Some(old), _) => Event::ChildSaRekeyed { old_spi_in: old, child: summary },
                        (None, None) => continue,
                    }
                }
                IkeEvent::ChildSaDeleted { inbound_spi, outbound_spi } => {
                    self.actions.push_back(Action::RemoveChild { inbound_spi, outbound_spi });
                    Event::ChildSaDeleted { inbound_spi, outbound_spi }
                }
                IkeEvent::Closed(reason) => {
                    self.sa_closed(now, reason);
                    return;
                }
            };
            self.event(out);
        }
        // What handling these events did to the old IKE SA (its Delete), and what it reported.
        self.process_retiring();
    }

    /// The old IKE SA of a reauthentication: its Child SAs leave the data plane as it deletes them; once it is
    /// closed it is dropped.
    fn process_retiring(&mut self) {
        let Some(old) = self.retiring.as_mut() else { return };
        let mut closed = false;
        while let Some(ev) = old.poll_event() {
            match ev {
                IkeEvent::ChildSaDeleted { inbound_spi, outbound_spi } => {
                    self.actions.push_back(Action::RemoveChild { inbound_spi, outbound_spi })
                }
                IkeEvent::Closed(_) => closed = true,
                // A rekey the gateway made meanwhile: that SA goes with the old IKE SA.
                _ => {}
            }
        }
        if closed {
            info!("the old IKE SA is gone");
            self.retiring = None;
        }
    }

    /// The current IKE SA closed: follow a redirect, fail over, reconnect after a backoff, or end.
    fn sa_closed(&mut self, now: Instant, mut reason: CloseReason) {
        self.transport_idle();
        if let (CloseReason::Redirected(to), false) = (&reason, self.closing) {
            match self.follow_redirect(now, &to.clone()) {
                Ok(()) => return,
                Err(e) => reason = CloseReason::Error(e),
            }
        }
        // Failover: a gateway that does not answer makes way for the next of `gateway.backup` at once; after a
        // whole round without an answer the usual policy applies (from the next one).
        if let (CloseReason::Error(IkeError::Timeout { .. }), false) = (&reason, self.closing) {
            let n = 1 + self.config.backups.len();
            if n > 1 {
                self.candidate = (self.candidate + 1) % n;
                if self.failovers + 1 < n {
                    self.failovers += 1;
                    warn!(from = %self.gateway, next = self.candidate, "the gateway does not answer; failing over");
                    let ev = Event::Reconnecting { attempt: self.attempt, delay: Duration::ZERO, reason };
                    self.event(ev);
                    self.reconnect_at = Some(now);
                    return;
                }
                self.failovers = 0;
            }
        }
        // Our own close ends the session; a failure only if a new attempt can fix it; the gateway's reasons
        // (its Delete, a redirect we could not follow) and a changed network are reconnected.
        let worth_retrying = match &reason {
            CloseReason::Local => false,
            CloseReason::Error(e) => retriable(e),
            _ => true,
        };
        let retry = match self.config.reconnect {
            Some(p) if self.connected_once && !self.closing && worth_retrying => {
                (p.max_attempts == 0 || self.attempt < p.max_attempts).then_some(p)
            }
            _ => None,
        };
        match retry {
            Some(p) => {
                self.attempt += 1;
                let r = (self.rng.next_u32() >> 16) as u16;
                let delay = p.delay(self.attempt, f64::from(r) / 65536.0);
                warn!(%reason, attempt = self.attempt, ?delay, "tunnel lost, reconnecting");
                self.reconnect_at = Some(now + delay);
                self.event(Event::Reconnecting { attempt: self.attempt, delay, reason });
            }
            None => self.finish(reason),
        }
    }

    /// The gateway sent us elsewhere (RFC 5685): connect there next (after resolving its name), unless it
    /// happened too often lately.
    fn follow_redirect(&mut self, now: Instant, to: &GatewayIdentity) -> Result<(), IkeError> {
        while self.redirects.front().is_some_and(|t| now.saturating_duration_since(*t) >= REDIRECT_WINDOW) {
            self.redirects.pop_front();
        }
        if self.redirects.len() >= MAX_REDIRECTS {
            return Err(IkeError::Protocol("redirected more than 5 times within 5 minutes"));
        }
        self.redirects.push_back(now);
        let from = self.gateway.ip();
        match to {
            GatewayIdentity::Addr(ip) => {
                self.redirect_to(now, SocketAddr::new(*ip, self.config.gateway.port()), from, to.clone())
            }
            GatewayIdentity::Fqdn(name) => {
                self.lookup = Some(Lookup::Redirect { name: name.clone(), from });
                self.actions.push_back(Action::Resolve { name: name.clone(), port: self.config.gateway.port() });
            }
        }
        Ok(())
    }

    /// Connect to `addr` next (`to` as the gateway named it), at once.
    fn redirect_to(&mut self, now: Instant, addr: SocketAddr, from: IpAddr, to: GatewayIdentity) {
        info!(from = %self.gateway, to = %addr, "following the gateway's redirect");
        self.redirect = Some((addr, from));
        let reason = CloseReason::Redirected(to);
        self.event(Event::Reconnecting { attempt: self.attempt, delay: Duration::ZERO, reason });
        self.reconnect_at = Some(now);
    }

    /// A new IKE SA, keeping the tunnel: towards the gateway a redirect named, else the current failover
    /// candidate (the profile's gateway with its name resolved again, or a backup).
    fn restart(&mut self, now: Instant) {
        match self.redirect.take() {
            Some((to, from)) => self.connect(now, to, Some(from)),
            None => self.resolve_candidate(now, 0),
        }
    }

    /// Find the current candidate's address: at once for an address, else through a lookup.
    fn resolve_candidate(&mut self, now: Instant, tries: usize) {
        let port = self.config.gateway.port();
        let (name, fallback) = match self.candidate.checked_sub(1) {
            None => match self.config.gateway_name.clone() {
                Some(name) => (name, Some(self.config.gateway)),
                None => return self.connect(now, self.config.gateway, None),
            },
            Some(i) => match self.config.backups.get(i) {
                Some(backup) => match backup.parse::<IpAddr>() {
                    Ok(ip) => return self.connect(now, SocketAddr::new(ip, port), None),
                    Err(_) => (backup.clone(), None),
                },
                None => return self.connect(now, self.config.gateway, None),
            },
        };
        self.lookup = Some(Lookup::Candidate { fallback, tries });
        self.actions.push_back(Action::Resolve { name, port });
    }

    /// Start the next IKE SA towards `target`.
    fn connect(&mut self, now: Instant, target: SocketAddr, redirected_from: Option<IpAddr>) {
        if target.ip() != self.gateway.ip() {
            self.actions.push_back(Action::Retarget { from: self.gateway.ip(), to: target.ip() });
        }
        self.gateway = target;
        let mut ike = self.config.ike.clone();
        ike.redirected_from = redirected_from;
        let transport = self.pick_transport(now);
        match new_sa(&self.config, ike, self.local, target, &mut self.rng, self.clock, now, transport) {
            Ok(sa) => {
                info!(attempt = self.attempt, gateway = %target, "reconnecting");
                self.sa = sa;
            }
            Err(e) => self.finish(CloseReason::Error(e)),
        }
    }

    /// Make-before-break reauthentication (RFC 7296 §2.8.3): a new IKE SA with full authentication (without
    /// INITIAL_CONTACT, so the gateway keeps the old one meanwhile) while the old one goes on carrying traffic.
    fn start_reauthentication(&mut self, now: Instant) {
        if self.retiring.is_some() {
            return;
        }
        let mut ike = self.config.ike.clone();
        ike.initial_contact = false;
        let transport = self.link.transport;
        // Over TCP the new IKE SA shares the open stream.
        let local = self.stream_local().unwrap_or(self.local);
        match new_sa(&self.config, ike, local, self.gateway, &mut self.rng, self.clock, now, transport) {
            Ok(sa) => {
                info!(gateway = %self.gateway, "reauthenticating: a new IKE SA while the current one carries traffic");
                self.retiring = Some(std::mem::replace(&mut self.sa, sa));
            }
            Err(e) => warn!(%e, "cannot start the reauthentication; keeping the current IKE SA"),
        }
    }
}

/// A new IKE SA with a fresh seed from `rng` and the wall clock carried forward from `clock`. Over TCP it does
/// not fragment (RFC 9329 §7: the stream carries messages of any size), and its gateway address is the TCP
/// port's (what NAT detection hashes; [`IkeSa::stream_opened`]).
#[allow(clippy::too_many_arguments)]
fn new_sa(
    config: &SessionConfig,
    mut ike: IkeConfig,
    local: SocketAddr,
    gateway: SocketAddr,
    rng: &mut ChaCha20Rng,
    clock: (Instant, u64),
    now: Instant,
    transport: Transport,
) -> Result<IkeSa, IkeError> {
    let tcp = transport == Transport::Tcp;
    let remote = if tcp {
        ike.fragment_mtu = 0;
        transport::stream_remote(config, gateway)
    } else {
        gateway
    };
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    let mut sa = IkeSa::new(ike, local, remote, now, seed)?;
    if tcp {
        sa.use_stream();
    }
    let unix = clock.1.saturating_add(now.saturating_duration_since(clock.0).as_secs());
    sa.set_unix_time(now, unix);
    sa.set_local_natt_port(config.natt_port);
    Ok(sa)
}
