//! The IKE SA state machine of the initiator (RFC 7296 §1.2, §1.4, §2): IKE_SA_INIT, IKE_AUTH with the first
//! Child SA, INFORMATIONAL exchanges and Delete. Sans-IO: see the module docs of [`crate::ike`].

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use tracing::{debug, info, trace, warn};

mod auth;
mod exchange;
mod handshake;
mod mobike;
mod reassembly;
mod redirect;
mod rekey;
mod revocation;
mod stream;

pub use revocation::REVOCATION_FETCH_TIMEOUT;

use auth::Authentication;
pub(crate) use exchange::ike_header;
use exchange::{Exchange, GaveUp};
use handshake::Handshake;
use mobike::Mobility;
use rekey::{Children, Queued, Rekeying};

use super::child::ChildSa;
use super::config::IkeConfig;
use super::error::{CloseReason, IkeError};
use super::proposal::IkeSuite;
use super::ts::{ts_subset, Cidr};
use crate::crypto::KeyExchange;
use crate::wire::{Delete, ExchangeType, Message, Notify, NotifyType, Payload, ProtocolId, TrafficSelector};

/// IKE's UDP port (§2) and the NAT-T port (RFC 3948).
pub const IKE_PORT: u16 = 500;
pub const NATT_PORT: u16 = 4500;
/// The non-ESP marker in front of IKE messages on port 4500 (RFC 3948 §2.2).
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];
/// The earliest reauthentication an AUTH_LIFETIME (RFC 4478) can ask for.
const MIN_AUTH_LIFETIME: std::time::Duration = std::time::Duration::from_secs(10);
/// Bound on COOKIE and INVALID_KE_PAYLOAD retries of IKE_SA_INIT, so a hostile peer cannot loop us.
const MAX_INIT_RETRIES: u32 = 5;
/// After an unauthenticated IKE_SA_INIT error answered this many of our transmissions, it is taken as the answer.
const INIT_ERROR_REPEATS: u32 = 3;
/// Our nonce length (§2.10: at least half the PRF key size, at least 16 bytes).
const NONCE_LEN: usize = 32;

/// Which of the driver's sockets a datagram leaves from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketKind {
    /// The IKE socket (port 500 on the gateway).
    Ike,
    /// The NAT-T socket (port 4500 on the gateway): IKE with the non-ESP marker, and ESP in UDP.
    NatT,
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub socket: SocketKind,
    pub remote: SocketAddr,
    /// The UDP payload, with the non-ESP marker already in front on the NAT-T socket.
    pub payload: Vec<u8>,
}

/// Why the IKE SA wants to be woken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// Resend the outstanding request or give up (§2.1).
    Retransmit,
    /// Send a NAT keepalive (RFC 3948 §2.3).
    Keepalive,
    /// Nothing heard from the gateway for a while: check it is alive (§1.4).
    Dpd,
    /// A Child SA or the IKE SA reached its rekey time (§2.8).
    Rekey,
    /// The answers asked for with [`Event::FetchRevocation`] did not come in time.
    Revocation,
}

/// Coarse state, for the UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// IKE_SA_INIT in flight.
    Connecting,
    /// IKE_AUTH in flight.
    Authenticating,
    Established,
    /// Our Delete is in flight.
    Closing,
    Closed,
}

/// What NAT detection (§2.23) found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NatStatus {
    /// Our address as the gateway sees it differs from ours: a NAT in front of us (keepalives are ours to send).
    pub local_behind_nat: bool,
    /// The gateway's address differs from what we sent to (or it forces encapsulation).
    pub remote_behind_nat: bool,
    /// We faked our NAT detection hash to get UDP encapsulation without a NAT (RFC 3948; what a userspace
    /// client without raw ESP needs).
    pub forced: bool,
}

impl NatStatus {
    /// UDP encapsulation is used.
    pub fn any(&self) -> bool {
        self.local_behind_nat || self.remote_behind_nat || self.forced
    }
}

/// What the gateway's configuration payload gave us (§3.15).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VirtualConfig {
    pub ipv4: Option<Ipv4Addr>,
    pub ipv4_netmask: Option<Ipv4Addr>,
    pub ipv6: Option<(Ipv6Addr, u8)>,
    pub dns: Vec<IpAddr>,
    /// INTERNAL_IP4_SUBNET / INTERNAL_IP6_SUBNET: networks the gateway protects.
    pub subnets: Vec<Cidr>,
    /// RFC 8598 INTERNAL_DNS_DOMAIN.
    pub dns_domains: Vec<String>,
}

/// A summary of an established IKE SA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The negotiated suite, with its additional key exchanges (RFC 9370) if any.
    pub ike_suite: IkeSuite,
    /// The profile asked for additional (post-quantum) key exchanges, the gateway did none, and
    /// `pq_fallback` let the connection go on classically.
    pub pq_fallback: bool,
    /// Whether a postquantum preshared key (RFC 8784) went into the keys.
    pub ppk: PpkStatus,
    pub spi_i: u64,
    pub spi_r: u64,
    pub local_id: String,
    pub remote_id: String,
    pub nat: NatStatus,
    pub config: VirtualConfig,
    /// UDP or TCP (RFC 9329); set by the session, which owns the transport.
    pub transport: crate::tcp::Transport,
}

impl SessionInfo {
    /// The additional key exchanges (RFC 9370) in strongSwan's names, in order: `["ke1_mlkem768"]`.
    pub fn additional_key_exchanges(&self) -> Vec<String> {
        let names = super::proposal::addke_names(&self.ike_suite.addke);
        names.split('-').filter(|s| !s.is_empty()).map(str::to_string).collect()
    }

    /// The post-quantum facts of the status line: ` pq-fallback=classical` when the gateway did none of the
    /// additional key exchanges we asked for, ` ppk=used` / ` ppk=not-used` with a PPK in the profile.
    pub fn post_quantum_summary(&self) -> String {
        let mut out = String::new();
        if self.pq_fallback {
            out.push_str(" pq-fallback=classical");
        }
        match self.ppk {
            PpkStatus::NotConfigured => {}
            PpkStatus::Used => out.push_str(" ppk=used"),
            PpkStatus::NotUsed => out.push_str(" ppk=not-used"),
        }
        out
    }
}

impl PpkStatus {
    /// `none`, `used` or `not-used`.
    pub fn as_str(self) -> &'static str {
        match self {
            PpkStatus::NotConfigured => "none",
            PpkStatus::Used => "used",
            PpkStatus::NotUsed => "not-used",
        }
    }
}

/// What became of the profile's postquantum preshared key (RFC 8784).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PpkStatus {
    /// The profile has none.
    #[default]
    NotConfigured,
    /// Both sides mixed it into the IKE SA's keys.
    Used,
    /// Optional, and the gateway did not use it: the keys are classical.
    NotUsed,
}

/// Something the caller should know about.
#[derive(Debug)]
pub enum Event {
    StateChanged(State),
    /// IKE_AUTH completed; the first Child SA follows as [`Event::ChildSaInstalled`].
    Established(SessionInfo),
    /// Hand these keys and selectors to the ESP data plane.
    ChildSaInstalled(ChildSa),
    /// Remove this Child SA from the data plane.
    ChildSaDeleted {
        inbound_spi: u32,
        outbound_spi: u32,
    },
    /// Time to reauthenticate (§2.8.3; our `reauth_lifetime` or the gateway's AUTH_LIFETIME, RFC 4478): set up a
    /// new IKE SA (without INITIAL_CONTACT, see [`IkeConfig::initial_contact`]) and [`IkeSa::retire`] this one
    /// once the new one carries the traffic (make-before-break).
    ReauthenticationDue,
    /// Fetch these CRLs (`http://` distribution points of the gateway's chain, RFC 5280 §4.2.1.13) and OCSP
    /// answers (RFC 6960) and hand them to [`IkeSa::handle_revocation`]; the gateway is trusted only after that
    /// (or after [`REVOCATION_FETCH_TIMEOUT`]).
    FetchRevocation(Vec<crate::crypto::RevocationRequest>),
    /// The IKE SA is gone, and why.
    Closed(CloseReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RequestKind {
    Init,
    Auth,
    Delete,
    /// Liveness check: an empty INFORMATIONAL (§1.4).
    Dpd,
    /// CREATE_CHILD_SA rekeying a Child SA / the IKE SA (§1.3).
    RekeyChild,
    RekeyIke,
    /// INFORMATIONAL deleting a Child SA after its rekey.
    DeleteChild(u32),
    /// MOBIKE UPDATE_SA_ADDRESSES (RFC 4555 §3.5).
    UpdateAddresses,
    /// An additional key exchange after IKE_SA_INIT (RFC 9242, RFC 9370 §2.2.1).
    Intermediate,
    /// An additional key exchange of a rekey (RFC 9370 §2.2.4).
    FollowupKe,
}

impl RequestKind {
    /// The exchange a request of this kind is sent in.
    fn exchange(self) -> ExchangeType {
        match self {
            RequestKind::Init => ExchangeType::IKE_SA_INIT,
            RequestKind::Auth => ExchangeType::IKE_AUTH,
            RequestKind::Intermediate => ExchangeType::IKE_INTERMEDIATE,
            RequestKind::FollowupKe => ExchangeType::IKE_FOLLOWUP_KE,
            RequestKind::RekeyChild | RequestKind::RekeyIke => ExchangeType::CREATE_CHILD_SA,
            RequestKind::Delete | RequestKind::Dpd | RequestKind::DeleteChild(_) | RequestKind::UpdateAddresses => {
                ExchangeType::INFORMATIONAL
            }
        }
    }

    /// Retransmissions before we give up (§2.1): a Delete on disconnect at most twice, the user is leaving; a
    /// liveness check `dpd_tries`, so a dead gateway is noticed in bounded time.
    fn retransmits(self, config: &IkeConfig) -> u32 {
        match self {
            RequestKind::Delete => config.retransmit.tries.min(2),
            RequestKind::Dpd => config.dpd_tries,
            _ => config.retransmit.tries,
        }
    }
}

/// An IKE SA, from the initiator's side.
pub struct IkeSa {
    config: IkeConfig,
    rng: ChaCha20Rng,
    state: State,
    /// Message IDs, retransmission, SK protection, fragments and the datagrams to the gateway.
    ex: Exchange,
    nat: NatStatus,
    /// IKE_SA_INIT: nonces, key exchange, cookie, the messages AUTH signs.
    hs: Handshake,
    /// IKE_AUTH: who proved what, and the EAP conversation.
    auth: Authentication,
    /// Last time we heard from the gateway (authenticated IKE or ESP), for DPD.
    last_heard: Instant,
    next_keepalive: Option<Instant>,
    /// The Child SAs and what IKE_AUTH agreed for them.
    child: Children,
    /// Rekeying and reauthentication: ours in flight, the gateway's, the IKE SA being replaced, what is due.
    rekeying: Rekeying,
    /// Requests waiting for the current one to finish.
    queue: VecDeque<Queued>,
    /// MOBIKE (RFC 4555) and the gateway's view of our address.
    mobility: Mobility,
    /// (Instant, unix seconds) at the same moment, for certificate validity checks.
    clock: (Instant, u64),
    events: VecDeque<Event>,
    /// Why we are closing when it is not the user's wish (a redirect, RFC 5685): reported in [`Event::Closed`].
    close_reason: Option<CloseReason>,
    /// CRLs and OCSP answers about the gateway's certificate chain, fetched by the driver.
    revocation: revocation::RevocationFetch,
    /// The port of our NAT-T socket (our address once IKE floats to port 4500).
    local_natt_port: u16,
}

/// Whether every selector of `got` (at least one) lies inside one of `within` (§2.9: narrowing only).
pub(super) fn ts_within(got: &[TrafficSelector], within: &[TrafficSelector]) -> bool {
    !got.is_empty() && got.iter().all(|g| within.iter().any(|w| ts_subset(g, w)))
}

fn notify_of(payloads: &[Payload], t: NotifyType) -> Option<&Notify> {
    payloads.iter().find_map(|p| match p {
        Payload::Notify(n) if n.notify_type == t => Some(n),
        _ => None,
    })
}

fn first_error_notify(payloads: &[Payload]) -> Option<NotifyType> {
    payloads.iter().find_map(|p| match p {
        Payload::Notify(n) if n.notify_type.is_error() => Some(n.notify_type),
        _ => None,
    })
}

impl IkeSa {
    /// Start an IKE SA towards `remote` (the gateway's IKE port, normally 500) from `local` (the address our IKE
    /// socket uses towards it, for NAT detection). Queues the IKE_SA_INIT request. `seed` feeds every random
    /// value this SA will draw (SPIs, nonces, private keys, IVs).
    pub fn new(
        config: IkeConfig,
        local: SocketAddr,
        remote: SocketAddr,
        now: Instant,
        seed: [u8; 32],
    ) -> Result<IkeSa, IkeError> {
        let first = config.ike_proposals.first().ok_or_else(|| IkeError::Config("no IKE proposal".into()))?;
        let group = *first.groups.first().ok_or_else(|| IkeError::Config("IKE proposal without group".into()))?;
        if config.esp_proposals.is_empty() {
            return Err(IkeError::Config("no ESP proposal".into()));
        }
        let mut rng = ChaCha20Rng::from_seed(seed);
        let mut spi_i = 0;
        while spi_i == 0 {
            spi_i = rng.next_u64();
        }
        let mut ni = vec![0u8; NONCE_LEN];
        rng.fill_bytes(&mut ni);
        let mut child_spi_in = 0;
        while child_spi_in < 256 {
            child_spi_in = rng.next_u32();
        }
        let ke = KeyExchange::generate(group, &mut rng)?;
        let nat_t = remote.port() != IKE_PORT;
        let ex = Exchange::new(spi_i, local, remote, nat_t, config.fragment_mtu, config.retransmit);
        let mut sa = IkeSa {
            config,
            rng,
            state: State::Connecting,
            ex,
            nat: NatStatus::default(),
            hs: Handshake::new(ni, ke),
            auth: Authentication::default(),
            last_heard: now,
            next_keepalive: None,
            child: Children::new(child_spi_in),
            rekeying: Rekeying::default(),
            queue: VecDeque::new(),
            mobility: Mobility::default(),
            clock: (now, 0),
            events: VecDeque::new(),
            close_reason: None,
            revocation: Default::default(),
            local_natt_port: NATT_PORT,
        };
        sa.send_init(now);
        Ok(sa)
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Tell the SA the wall-clock time (seconds since 1970) at `now`; needed to check certificate validity.
    pub fn set_unix_time(&mut self, now: Instant, unix_secs: u64) {
        self.clock = (now, unix_secs);
    }

    /// The port our NAT-T socket is bound to (default 4500): our address for NAT detection once IKE moved
    /// there (RFC 3948 §2.2, RFC 4555 §3.8).
    pub fn set_local_natt_port(&mut self, port: u16) {
        self.local_natt_port = port;
        if self.ex.nat_t && !self.ex.stream {
            self.ex.local.set_port(port);
        }
    }

    /// Our SPI (initiator SPI).
    pub fn spi_i(&self) -> u64 {
        self.ex.spi_i
    }

    /// The gateway's current address (port 4500 once NAT-T is in use).
    pub fn remote(&self) -> SocketAddr {
        self.ex.remote
    }

    /// Whether IKE (and so ESP) runs on the NAT-T socket.
    pub fn nat_t(&self) -> bool {
        self.ex.nat_t
    }

    /// Next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.ex.poll_transmit()
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When to call [`IkeSa::handle_timeout`] next, and why.
    pub fn poll_timeout(&self) -> Option<(Instant, Timer)> {
        let mut next = self.ex.retransmit_deadline().map(|t| (t, Timer::Retransmit));
        let mut consider = |t: Option<Instant>, kind: Timer| {
            if let Some(t) = t {
                if next.is_none_or(|(n, _)| t < n) {
                    next = Some((t, kind));
                }
            }
        };
        consider(self.next_keepalive, Timer::Keepalive);
        consider(self.dpd_deadline(), Timer::Dpd);
        consider(self.revocation_deadline(), Timer::Revocation);
        if !self.ex.busy() {
            consider(self.next_rekey_deadline(), Timer::Rekey);
        }
        next
    }

    /// When a liveness check is due: established, idle, and nothing heard for the DPD interval.
    fn dpd_deadline(&self) -> Option<Instant> {
        let interval = self.config.dpd?;
        (self.state == State::Established && !self.ex.busy()).then_some(self.last_heard + interval)
    }

    /// The data plane saw authenticated ESP from the gateway: it is alive (no DPD needed).
    pub fn note_inbound_traffic(&mut self, now: Instant) {
        if now > self.last_heard {
            self.last_heard = now;
        }
    }

    /// Bytes carried by the Child SA with inbound SPI `spi_in` since it was installed (both directions): rekey
    /// it once its byte lifetime (minus jitter) is used up, as strongSwan's rekey_bytes.
    pub fn note_child_traffic(&mut self, now: Instant, spi_in: u32, bytes: u64) {
        let Some(limit) = self.config.child_lifetime_bytes else { return };
        let Some(c) = self.child.installed.iter_mut().find(|c| c.spi_in == spi_in) else { return };
        if bytes >= c.rekey_bytes.unwrap_or(limit) && c.rekey_at.is_some() {
            debug!(bytes, "Child SA byte lifetime reached");
            c.rekey_at = Some(now);
        }
    }

    /// Advance timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.revocation_timeout(now);
        if self.next_keepalive.is_some_and(|t| now >= t) {
            self.ex.send_keepalive();
            self.next_keepalive = self.config.keepalive.map(|k| now + k);
        }
        if !self.ex.busy() && self.state == State::Established {
            if self.send_next_queued(now) {
                return;
            }
            if self.rekeying.reauth_at.is_some_and(|t| now >= t) {
                // Reauthentication (§2.8.3): the caller sets up a fresh IKE SA with full authentication and closes
                // this one once the new one carries the traffic.
                info!("reauthentication time");
                self.rekeying.reauth_at = None;
                self.events.push_back(Event::ReauthenticationDue);
                return;
            }
            // While the gateway's rekey still runs its additional key exchanges, ours wait (§2.8.1).
            let peer_rekeying =
                self.rekeying.peer_followup.as_ref().is_some_and(|f| now < f.started + rekey::PEER_FOLLOWUP_TIMEOUT);
            if !peer_rekeying && self.rekeying.ike_at.is_some_and(|t| now >= t) {
                if let Err(e) = self.start_ike_rekey(now) {
                    warn!(%e, "cannot rekey the IKE SA");
                }
                return;
            }
            if let Some(i) =
                self.child.installed.iter().position(|c| !peer_rekeying && c.rekey_at.is_some_and(|t| now >= t))
            {
                if let Err(e) = self.start_child_rekey(now, i) {
                    warn!(%e, "cannot rekey the Child SA");
                }
                return;
            }
        }
        if self.dpd_deadline().is_some_and(|t| now >= t) {
            debug!("no traffic from the gateway for a while: dead peer detection");
            let payloads = self.liveness_payloads();
            if let Err(e) = self.send_request(now, ExchangeType::INFORMATIONAL, RequestKind::Dpd, payloads) {
                warn!(%e, "cannot send DPD");
            }
            return;
        }
        let Some(GaveUp { kind, tries, waited }) = self.ex.handle_timeout(now) else { return };
        warn!(?kind, tries, "no response from gateway, giving up");
        if kind == RequestKind::Delete || self.state == State::Closing {
            // We were leaving anyway.
            self.finish(CloseReason::Local);
        } else if kind == RequestKind::Dpd {
            self.finish(CloseReason::Error(IkeError::DeadPeer { waited }));
        } else if let (RequestKind::Init, Some((e, _, _))) = (kind, self.hs.error.take()) {
            // Only unauthenticated errors came back: now they are the answer (§2.21.1).
            self.finish(CloseReason::Error(e));
        } else {
            self.finish(CloseReason::Error(IkeError::Timeout { tries, waited }));
        }
    }

    /// Ask for [`Event::ReauthenticationDue`] again at `at` (the replacement IKE SA failed).
    pub fn postpone_reauthentication(&mut self, at: Instant) {
        self.rekeying.reauth_at = Some(at);
    }

    /// A reauthenticated IKE SA carries the traffic now (§2.8.3): close this one, with
    /// [`CloseReason::Reauthenticated`].
    pub fn retire(&mut self, now: Instant) {
        if !matches!(self.state, State::Closing | State::Closed) {
            self.close_reason = Some(CloseReason::Reauthenticated);
        }
        self.close(now);
    }

    /// Start closing: send a Delete for the IKE SA (§1.4.1). Ends with [`Event::Closed`]`(`[`CloseReason::Local`]`)`.
    pub fn close(&mut self, now: Instant) {
        match self.state {
            State::Closed | State::Closing => {}
            State::Established => {
                self.set_state(State::Closing);
                // Nothing else will be sent; the Delete waits for a request in flight (window size 1, §2.3).
                self.queue.clear();
                self.queue.push_back(Queued::DeleteIke);
                if !self.ex.busy() {
                    self.send_next_queued(now);
                }
            }
            State::Connecting | State::Authenticating => {
                // No usable IKE SA yet (or our one request is still in flight): just forget it.
                self.ex.cancel();
                self.finish(CloseReason::Local);
            }
        }
    }

    /// Process one IKE message (the non-ESP marker already removed). Malformed or unauthenticated input is logged
    /// and dropped; protocol failures close the SA with an [`Event::Closed`].
    pub fn handle_datagram(&mut self, now: Instant, data: &[u8]) {
        if self.state == State::Closed {
            return;
        }
        let result = self.handle_inner(now, data);
        if result.is_ok() {
            self.send_next_queued(now);
        }
        if let Err(e) = result {
            match e {
                Handling::Drop(reason) => debug!(%reason, "dropped IKE message"),
                Handling::Fatal(e) => {
                    warn!(%e, "IKE SA failed");
                    self.abandon(CloseReason::Error(e));
                }
            }
        }
    }

    fn handle_inner(&mut self, now: Instant, data: &[u8]) -> Result<(), Handling> {
        let msg = Message::decode(data).map_err(|e| Handling::Drop(e.to_string()))?;
        let h = msg.header;
        if self.rekeying.old_ike.as_ref().is_some_and(|o| o.owns(&h)) {
            return self.handle_old_ike(data, &msg);
        }
        if h.spi_i != self.ex.spi_i {
            return Err(Handling::Drop(format!("unknown SPI {:016x}", h.spi_i)));
        }
        if !h.flags.response {
            if h.flags.initiator == self.ex.initiator {
                return Err(Handling::Drop("request with our own initiator flag".into()));
            }
            return self.handle_peer_request(now, data, msg);
        }
        let kind = self.ex.response_to(&h)?;
        if kind == RequestKind::Init {
            if h.exchange != ExchangeType::IKE_SA_INIT {
                return Err(Handling::Drop("not an IKE_SA_INIT response".into()));
            }
            return self.handle_init_response(now, data, msg);
        }
        let payloads = self.ex.open_response(data, &msg, kind.exchange())?;
        self.last_heard = self.last_heard.max(now);
        if kind == RequestKind::Intermediate {
            return self.handle_intermediate_response(now, &h, payloads).map_err(Handling::Fatal);
        }
        self.handle_response(now, kind, payloads)
    }

    /// The gateway answered our request of this kind (authenticated; not IKE_SA_INIT).
    fn handle_response(&mut self, now: Instant, kind: RequestKind, payloads: Vec<Payload>) -> Result<(), Handling> {
        match kind {
            RequestKind::Auth => self.handle_auth_response(now, payloads).map_err(Handling::Fatal),
            RequestKind::Delete => {
                self.finish(CloseReason::Local);
                Ok(())
            }
            RequestKind::Init | RequestKind::Intermediate => Ok(()),
            RequestKind::FollowupKe => self.handle_followup_response(now, payloads).map_err(Handling::Fatal),
            RequestKind::Dpd => {
                self.check_nat_mapping(&payloads);
                Ok(())
            }
            RequestKind::RekeyChild => self.handle_child_rekey_response(now, payloads).map_err(Handling::Fatal),
            RequestKind::RekeyIke => self.handle_ike_rekey_response(now, payloads).map_err(Handling::Fatal),
            RequestKind::DeleteChild(spi_in) => {
                self.remove_child(spi_in);
                Ok(())
            }
            RequestKind::UpdateAddresses => self.handle_update_addresses_response(&payloads).map_err(Handling::Fatal),
        }
    }

    /// The gateway authenticated itself (its AUTH verified; after EAP, the final MSK-based AUTH) and the IKE SA
    /// is up: only then is anything it asks for acted on.
    fn gateway_trusted(&self) -> bool {
        self.auth.peer_authenticated && matches!(self.state, State::Established | State::Closing)
    }

    /// Answer a request from the gateway (§1.4, §1.5).
    fn handle_peer_request(&mut self, now: Instant, raw: &[u8], msg: Message) -> Result<(), Handling> {
        let h = msg.header;
        if self.ex.keys.is_none() || h.spi_r != self.ex.spi_r {
            return Err(Handling::Drop("request before the IKE SA exists".into()));
        }
        if !self.gateway_trusted() {
            // The authentication gate: until the gateway's AUTH verified (after EAP: the final AUTH), whoever
            // answered IKE_SA_INIT holds the keys; nothing it asks for (Child SA, Delete, REDIRECT) is acted on,
            // and it gets no answer (RFC 7296 §2.21.2: no request before the IKE SA is authenticated).
            return Err(Handling::Drop("request from a gateway that has not authenticated yet".into()));
        }
        let Some(payloads) = self.ex.open_request(raw, &msg)? else { return Ok(()) };
        self.last_heard = self.last_heard.max(now);
        let mut reply = Vec::new();
        let mut close = None;
        let mut redirect = None;
        match h.exchange {
            ExchangeType::INFORMATIONAL => {
                redirect = self.authenticated_redirect(&payloads);
                self.note_auth_lifetime(now, &payloads);
                for p in &payloads {
                    match p {
                        Payload::Delete(d) if d.protocol == ProtocolId::IKE => {
                            info!("gateway deleted the IKE SA");
                            // Our own Delete crossed the gateway's: we were closing anyway.
                            close = Some(match self.state {
                                State::Closing => CloseReason::Local,
                                _ => CloseReason::DeletedByPeer,
                            });
                        }
                        Payload::Delete(d) if d.protocol == ProtocolId::ESP => {
                            let mut ours = Vec::new();
                            for spi in &d.spis {
                                let Ok(b) = <[u8; 4]>::try_from(spi.as_slice()) else { continue };
                                let out = u32::from_be_bytes(b);
                                // The gateway names its inbound SPI, our outbound one (§1.4.1).
                                if let Some(c) = self.child.installed.iter().find(|c| c.spi_out == out) {
                                    let spi_in = c.spi_in;
                                    ours.push(spi_in.to_be_bytes().to_vec());
                                    self.remove_child(spi_in);
                                }
                            }
                            if !ours.is_empty() {
                                reply.push(Payload::Delete(Delete { protocol: ProtocolId::ESP, spis: ours }));
                            }
                        }
                        _ => trace!(?p, "INFORMATIONAL payload"),
                    }
                }
            }
            ExchangeType::CREATE_CHILD_SA => {
                reply = self.handle_peer_create_child(now, &payloads)?;
            }
            ExchangeType::IKE_FOLLOWUP_KE => {
                reply = self.handle_peer_followup(now, &payloads)?;
            }
            _ => return Err(Handling::Drop("unexpected request exchange type".into())),
        }
        self.ex.respond(&h, &reply, &mut self.rng).map_err(Handling::Fatal)?;
        if let Some(sw) = self.rekeying.pending_switch.take() {
            // Our answer to the gateway's IKE rekey is out: the new IKE SA is the gateway's (§2.18).
            self.switch_ike_sa(now, sw.suite, &sw.shared, &sw.additional, &sw.ni, &sw.nr, sw.spi_i, sw.spi_r, false)
                .map_err(Handling::Fatal)?;
        }
        if let Some(reason) = close {
            self.ex.cancel();
            self.finish(reason);
        } else if let Some(to) = redirect {
            // RFC 5685 §5: our (empty) answer is out; now leave for the new gateway.
            self.leave_for(now, to);
        }
        Ok(())
    }

    /// Send a request of ours and retransmit it until answered (window size 1, §2.3).
    fn send_request(
        &mut self,
        now: Instant,
        exchange: ExchangeType,
        kind: RequestKind,
        payloads: Vec<Payload>,
    ) -> Result<(), IkeError> {
        let retransmits = kind.retransmits(&self.config);
        self.ex.send_request(now, exchange, kind, &payloads, retransmits, &mut self.rng)
    }

    /// Send the next queued request if none is in flight; true if one was sent.
    fn send_next_queued(&mut self, now: Instant) -> bool {
        if self.ex.busy() || !matches!(self.state, State::Established | State::Closing) {
            return false;
        }
        match self.queue.pop_front() {
            Some(Queued::DeleteChild(spi)) => self.send_child_delete(now, spi),
            Some(Queued::UpdateAddresses) => self.send_update_addresses(now),
            Some(Queued::DeleteIke) => {
                let payloads = vec![Payload::Delete(Delete { protocol: ProtocolId::IKE, spis: vec![] })];
                if let Err(e) = self.send_request(now, ExchangeType::INFORMATIONAL, RequestKind::Delete, payloads) {
                    warn!(%e, "cannot send Delete");
                    self.finish(CloseReason::Local);
                }
            }
            None => return false,
        }
        true
    }

    /// Give up the IKE SA: if the gateway considers it established, tell it we are gone (§1.4.1), once, without
    /// waiting for an answer.
    fn abandon(&mut self, reason: CloseReason) {
        self.ex.cancel();
        let rejected_gateway = matches!(
            reason.error(),
            Some(
                IkeError::Certificate(_)
                    | IkeError::PeerAuthenticationFailed
                    | IkeError::Untrusted(_)
                    | IkeError::IdentityMismatch { .. }
                    | IkeError::GatewayNotAuthenticated(_)
            )
        );
        let payloads = if self.auth.peer_authenticated {
            Some(vec![Payload::Delete(Delete { protocol: ProtocolId::IKE, spis: vec![] })])
        } else if rejected_gateway && self.ex.keys.is_some() && self.state == State::Authenticating {
            // §2.21.2: we refused the gateway's authentication, which it does not know yet (it may already have
            // set up the SAs): tell it in an INFORMATIONAL of its own, unanswered, as strongSwan does.
            info!("telling the gateway we refused its authentication (AUTHENTICATION_FAILED)");
            Some(vec![Payload::Notify(Notify::new(NotifyType::AUTHENTICATION_FAILED, Vec::new()))])
        } else {
            None
        };
        if let Some(payloads) = payloads {
            if let Err(e) = self.ex.send_unanswered(&payloads, &mut self.rng) {
                debug!(%e, "cannot tell the gateway we are leaving");
            }
        }
        self.finish(reason);
    }

    /// Forget a Child SA and tell the data plane.
    fn remove_child(&mut self, spi_in: u32) {
        if let Some(pos) = self.child.installed.iter().position(|c| c.spi_in == spi_in) {
            let c = self.child.installed.remove(pos);
            info!(spi_in = format_args!("{:08x}", c.spi_in), "Child SA deleted");
            self.events.push_back(Event::ChildSaDeleted { inbound_spi: c.spi_in, outbound_spi: c.spi_out });
        }
    }

    /// Delete a Child SA we replaced (§1.4.1).
    fn send_child_delete(&mut self, now: Instant, spi_in: u32) {
        if !self.child.installed.iter().any(|c| c.spi_in == spi_in) {
            return;
        }
        let payloads =
            vec![Payload::Delete(Delete { protocol: ProtocolId::ESP, spis: vec![spi_in.to_be_bytes().to_vec()] })];
        if let Err(e) = self.send_request(now, ExchangeType::INFORMATIONAL, RequestKind::DeleteChild(spi_in), payloads)
        {
            warn!(%e, "cannot delete the old Child SA");
        }
    }

    /// A message on the IKE SA we rekeyed away from: only its Delete matters (§1.3.2).
    fn handle_old_ike(&mut self, raw: &[u8], msg: &Message) -> Result<(), Handling> {
        let Some(old) = self.rekeying.old_ike.as_ref() else { return Err(Handling::Drop("no old IKE SA".into())) };
        let payloads = old.open(raw, msg)?;
        let h = msg.header;
        if h.flags.response {
            if old.answers_delete(h.message_id) {
                debug!("old IKE SA deleted");
                self.rekeying.old_ike = None;
            } else {
                // The answer to a request that was in flight when the gateway rekeyed; we sent it again on the
                // new IKE SA.
                debug!(message_id = h.message_id, "late answer on the old IKE SA");
            }
            return Ok(());
        }
        if let Some(resp) = old.cached_response(h.message_id) {
            // The gateway did not get our answer to its request on the old SA (typically its IKE rekey, whose
            // response carries the new SA's proposal): the same answer again, not an empty one (§2.1).
            debug!(
                message_id = h.message_id,
                "gateway retransmitted a request on the old IKE SA, resending our response"
            );
            for datagram in resp.iter().cloned() {
                self.ex.emit(datagram);
            }
            return Ok(());
        }
        // The gateway deletes the old IKE SA (or probes it): answer, then forget it.
        let deletes = payloads.iter().any(|p| matches!(p, Payload::Delete(d) if d.protocol == ProtocolId::IKE));
        let msg = old.seal_response(&h, &mut self.rng).map_err(Handling::Fatal)?;
        self.ex.emit(msg);
        if deletes {
            debug!("gateway deleted the old IKE SA");
            self.rekeying.old_ike = None;
        }
        Ok(())
    }

    fn set_state(&mut self, s: State) {
        if self.state != s {
            self.state = s;
            self.events.push_back(Event::StateChanged(s));
        }
    }

    /// The IKE SA is gone: report why (a reason set earlier, a redirect, wins over our own close).
    fn finish(&mut self, reason: CloseReason) {
        if self.state == State::Closed {
            return;
        }
        let reason = match (reason, self.close_reason.take()) {
            (CloseReason::Local, Some(earlier)) => earlier,
            (reason, _) => reason,
        };
        for c in std::mem::take(&mut self.child.installed) {
            self.events.push_back(Event::ChildSaDeleted { inbound_spi: c.spi_in, outbound_spi: c.spi_out });
        }
        self.rekeying.old_ike = None;
        self.ex.close();
        self.next_keepalive = None;
        self.queue.clear();
        // A deferred IKE_AUTH response and its revocation deadline die with the SA (found by fuzzing, ike_sa).
        self.revocation = Default::default();
        self.set_state(State::Closed);
        self.events.push_back(Event::Closed(reason));
    }
}

/// How to treat a message we could not process.
enum Handling {
    /// Ignore it (unauthenticated, malformed, or not for us).
    Drop(String),
    /// The IKE SA cannot go on.
    Fatal(IkeError),
}
