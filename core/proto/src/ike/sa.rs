//! The IKE SA state machine of the initiator (RFC 7296 §1.2, §1.4, §2): IKE_SA_INIT, IKE_AUTH with the first
//! Child SA, INFORMATIONAL exchanges and Delete. Sans-IO: see the module docs of [`crate::ike`].

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use tracing::{debug, info, trace, warn};
use zeroize::Zeroizing;

mod exchange;
mod mobike;
mod reassembly;
mod redirect;
mod rekey;
mod revocation;

pub use revocation::REVOCATION_FETCH_TIMEOUT;

pub(crate) use exchange::ike_header;
use exchange::{Exchange, GaveUp, OldIke};
use rekey::{ChildState, PendingSwitch, Queued, Rekey};

use super::auth::{psk_auth, signed_octets};
use super::child::ChildSa;
use super::config::{AuthConfig, GatewayAuth, IkeConfig};
use super::error::{CloseReason, IkeError};
use super::identity::display_identity;
use super::proposal::{select_esp, select_ike, IkeSuite};
use super::ts::{parse_cidr, ts_subset, Cidr};
use crate::crypto::{self, ChildKeys, Group, IkeKeys, KeyExchange, SigScheme};
use crate::eap::{EapAction, EapPeer};
use crate::wire::{
    self, cert_encoding, cfg_attr, AuthMethod, AuthPayload, CertPayload, CfgType, ConfigAttribute, ConfigPayload,
    Delete, ExchangeType, Identification, KePayload, Message, Notify, NotifyType, Payload, ProtocolId, TrafficSelector,
};

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
    pub ike_suite: IkeSuite,
    pub spi_i: u64,
    pub spi_r: u64,
    pub local_id: String,
    pub remote_id: String,
    pub nat: NatStatus,
    pub config: VirtualConfig,
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
    /// new IKE SA (without INITIAL_CONTACT, see [`IkeConfig::initial_contact`]) and [`IkeSa::close`] this one
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
}

impl RequestKind {
    /// The exchange a request of this kind is sent in.
    fn exchange(self) -> ExchangeType {
        match self {
            RequestKind::Init => ExchangeType::IKE_SA_INIT,
            RequestKind::Auth => ExchangeType::IKE_AUTH,
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
    ni: Vec<u8>,
    nr: Vec<u8>,
    ke: Option<KeyExchange>,
    cookie: Option<Vec<u8>>,
    init_retries: u32,
    /// The IKE_SA_INIT request and response as sent/received: signed in AUTH (§2.15).
    init_request: Vec<u8>,
    init_response: Vec<u8>,
    /// Last time we heard from the gateway (authenticated IKE or ESP), for DPD.
    last_heard: Instant,
    next_keepalive: Option<Instant>,
    child_spi_in: u32,
    /// Installed Child SAs (more than one only during a rekey).
    children: Vec<ChildState>,
    /// Our rekey in flight.
    rekey: Option<Rekey>,
    ike_rekey_at: Option<Instant>,
    reauth_at: Option<Instant>,
    old_ike: Option<OldIke>,
    pending_switch: Option<PendingSwitch>,
    /// Requests waiting for the current one to finish.
    queue: VecDeque<Queued>,
    /// Both sides support MOBIKE (RFC 4555), and the COOKIE2 of our address update in flight.
    mobike: bool,
    mobike_cookie2: Option<Vec<u8>>,
    /// The gateway's last NAT_DETECTION_DESTINATION_IP: our address as it sees it (RFC 4555 §3.8).
    natd_seen: Option<Vec<u8>>,
    /// IKE_AUTH verified: the IKE SA exists on both sides.
    peer_authenticated: bool,
    /// The EAP conversation (§2.16), and whether it ended in success.
    eap: Option<EapPeer>,
    eap_done: bool,
    /// IDr from the first IKE_AUTH response (EAP continues without it).
    gateway_id: Option<Identification>,
    /// The gateway sent CERTREQ in IKE_SA_INIT (it asks for certificates).
    gateway_sent_certreq: bool,
    /// SIGNATURE_HASH_ALGORITHMS the gateway announced (RFC 7427 §4).
    peer_hash_algorithms: Vec<u16>,
    /// (Instant, unix seconds) at the same moment, for certificate validity checks.
    clock: (Instant, u64),
    events: VecDeque<Event>,
    /// Why we are closing when it is not the user's wish (a redirect, RFC 5685): reported in [`Event::Closed`].
    close_reason: Option<CloseReason>,
    /// CRLs and OCSP answers about the gateway's certificate chain, fetched by the driver.
    revocation: revocation::RevocationFetch,
    /// The key exchange group for Child SA rekeys (PFS) when the gateway asked for another one than our first
    /// (INVALID_KE_PAYLOAD, §1.3).
    child_ke_group: Option<Group>,
    /// The traffic selectors (ours, the gateway's) IKE_AUTH agreed on: later Child SAs may only narrow them.
    agreed_ts: Option<(Vec<TrafficSelector>, Vec<TrafficSelector>)>,
    /// The port of our NAT-T socket (our address once IKE floats to port 4500).
    local_natt_port: u16,
    /// An error notification in an (unauthenticated) IKE_SA_INIT response, kept while we wait for a real
    /// answer (§2.21.1), with the number of our transmissions it answered and the last of them; reported if
    /// no valid answer comes.
    init_error: Option<(IkeError, u32, u32)>,
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
            ni,
            nr: Vec::new(),
            ke: Some(ke),
            cookie: None,
            init_retries: 0,
            init_request: Vec::new(),
            init_response: Vec::new(),
            last_heard: now,
            next_keepalive: None,
            child_spi_in,
            children: Vec::new(),
            rekey: None,
            ike_rekey_at: None,
            reauth_at: None,
            old_ike: None,
            pending_switch: None,
            queue: VecDeque::new(),
            mobike: false,
            mobike_cookie2: None,
            natd_seen: None,
            peer_authenticated: false,
            eap: None,
            eap_done: false,
            gateway_id: None,
            peer_hash_algorithms: Vec::new(),
            gateway_sent_certreq: false,
            clock: (now, 0),
            events: VecDeque::new(),
            close_reason: None,
            revocation: Default::default(),
            child_ke_group: None,
            agreed_ts: None,
            local_natt_port: NATT_PORT,
            init_error: None,
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
        if self.ex.nat_t {
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
        let Some(c) = self.children.iter_mut().find(|c| c.spi_in == spi_in) else { return };
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
            if self.reauth_at.is_some_and(|t| now >= t) {
                // Reauthentication (§2.8.3): the caller sets up a fresh IKE SA with full authentication and closes
                // this one once the new one carries the traffic.
                info!("reauthentication time");
                self.reauth_at = None;
                self.events.push_back(Event::ReauthenticationDue);
                return;
            }
            if self.ike_rekey_at.is_some_and(|t| now >= t) {
                if let Err(e) = self.start_ike_rekey(now) {
                    warn!(%e, "cannot rekey the IKE SA");
                }
                return;
            }
            if let Some(i) = self.children.iter().position(|c| c.rekey_at.is_some_and(|t| now >= t)) {
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
        } else if let (RequestKind::Init, Some((e, _, _))) = (kind, self.init_error.take()) {
            // Only unauthenticated errors came back: now they are the answer (§2.21.1).
            self.finish(CloseReason::Error(e));
        } else {
            self.finish(CloseReason::Error(IkeError::Timeout { tries, waited }));
        }
    }

    /// Ask for [`Event::ReauthenticationDue`] again at `at` (the replacement IKE SA failed).
    pub fn postpone_reauthentication(&mut self, at: Instant) {
        self.reauth_at = Some(at);
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
        if self.old_ike.as_ref().is_some_and(|o| o.owns(&h)) {
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
            RequestKind::Init => Ok(()),
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

    fn handle_init_response(&mut self, now: Instant, raw: &[u8], msg: Message) -> Result<(), Handling> {
        let payloads = &msg.payloads;
        if let Some(to) = self.init_redirect(payloads)? {
            self.ex.cancel();
            self.finish(CloseReason::Redirected(to));
            return Ok(());
        }
        if let Some(n) = notify_of(payloads, NotifyType::COOKIE) {
            if self.init_retries >= MAX_INIT_RETRIES || n.data.is_empty() || n.data.len() > 64 {
                return self.note_init_error(IkeError::Protocol("COOKIE loop or bad COOKIE"));
            }
            debug!("gateway asked for a COOKIE (§2.6)");
            self.init_retries += 1;
            self.cookie = Some(n.data.clone());
            self.ex.cancel();
            self.send_init(now);
            return Ok(());
        }
        if let Some(n) = notify_of(payloads, NotifyType::INVALID_KE_PAYLOAD) {
            let wanted = n
                .data
                .get(..2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .ok_or(Handling::Drop("INVALID_KE_PAYLOAD without group".into()))?;
            let Some(group) =
                Group::from_id(wanted).filter(|g| self.config.ike_proposals.iter().any(|p| p.groups.contains(g)))
            else {
                return self.note_init_error(IkeError::UnsupportedKeGroup(wanted));
            };
            if self.init_retries >= MAX_INIT_RETRIES || self.ke.as_ref().map(|k| k.group()) == Some(group) {
                return self.note_init_error(IkeError::Protocol("INVALID_KE_PAYLOAD loop"));
            }
            info!(group = wanted, "gateway asked for another key exchange group (INVALID_KE_PAYLOAD), retrying");
            self.init_retries += 1;
            self.ke = Some(KeyExchange::generate(group, &mut self.rng).map_err(|e| Handling::Fatal(e.into()))?);
            self.ex.cancel();
            self.send_init(now);
            return Ok(());
        }
        if let Some(t) = first_error_notify(payloads) {
            return self.note_init_error(IkeError::from_notify(t));
        }
        if msg.header.spi_r == 0 {
            return Err(Handling::Drop("IKE_SA_INIT response without responder SPI".into()));
        }
        let mut sa = None;
        let mut ke = None;
        let mut nonce = None;
        let mut nat_src = Vec::new();
        let mut nat_dst = None;
        let mut hash_algs = Vec::new();
        for p in payloads {
            match p {
                Payload::Sa(s) => sa = Some(s),
                Payload::Ke(k) => ke = Some(k),
                Payload::Nonce(n) => nonce = Some(n),
                Payload::Notify(n) if n.notify_type == NotifyType::NAT_DETECTION_SOURCE_IP => nat_src.push(&n.data),
                Payload::Notify(n) if n.notify_type == NotifyType::SIGNATURE_HASH_ALGORITHMS => {
                    hash_algs = n.data.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
                }
                Payload::Notify(n) if n.notify_type == NotifyType::NAT_DETECTION_DESTINATION_IP => {
                    nat_dst = Some(&n.data)
                }
                _ => {}
            }
        }
        let (Some(sa), Some(ke_p), Some(nonce)) = (sa, ke, nonce) else {
            return Err(Handling::Fatal(IkeError::Protocol("IKE_SA_INIT response lacks SA, KE or Nonce")));
        };
        let suite = select_ike(&self.config.ike_proposals, sa).map_err(|e| Handling::Fatal(e.into()))?;
        let ours = self.ke.take().ok_or(Handling::Fatal(IkeError::Protocol("no key exchange state")))?;
        if suite.group != ours.group() || ke_p.group != ours.group().id() {
            return Err(Handling::Fatal(IkeError::Protocol("KE group differs from the chosen group")));
        }
        if nonce.len() < 16 || nonce.len() > 256 {
            return Err(Handling::Fatal(IkeError::Protocol("bad responder nonce length")));
        }
        let shared = ours.shared_secret(&ke_p.data).map_err(|e| Handling::Fatal(e.into()))?;
        let spi_r = msg.header.spi_r;
        self.nr = nonce.clone();
        let keys =
            IkeKeys::derive(suite.prf, suite.encr, suite.integ, &shared, &self.ni, &self.nr, self.ex.spi_i, spi_r)
                .map_err(|e| Handling::Fatal(e.into()))?;
        let fragmentation =
            self.config.fragment_mtu > 0 && notify_of(payloads, NotifyType::IKEV2_FRAGMENTATION_SUPPORTED).is_some();
        self.ex.keyed(spi_r, suite, keys, fragmentation);
        self.init_error = None;
        self.init_response = raw.to_vec();
        self.peer_hash_algorithms = hash_algs;
        self.gateway_sent_certreq = payloads.iter().any(|p| matches!(p, Payload::CertReq(_)));

        // NAT detection (§2.23): the gateway hashes what it saw; compare with what we know.
        if let Some(dst) = nat_dst {
            self.natd_seen = Some(dst.clone());
            let expect = crypto::nat_detection_hash(self.ex.spi_i, self.ex.spi_r, self.ex.local);
            self.nat.local_behind_nat = dst.as_slice() != expect.as_slice();
            self.nat.forced = self.config.force_encap;
            let expect = crypto::nat_detection_hash(self.ex.spi_i, self.ex.spi_r, self.ex.remote);
            self.nat.remote_behind_nat = !nat_src.iter().any(|h| h.as_slice() == expect.as_slice());
            // Behind a NAT, and always with MOBIKE (RFC 4555 §3.3), IKE continues on port 4500: from then on
            // our address is the NAT-T socket's, and the gateway's NAT detection covers that one.
            if (self.nat.any() || self.config.mobike) && !self.ex.nat_t {
                self.ex.float(self.local_natt_port);
                self.natd_seen = None;
            }
        } else if self.config.force_encap {
            warn!("gateway does not support NAT traversal; cannot force UDP encapsulation");
        }
        info!(suite = %suite, nat = ?self.nat, "IKE_SA_INIT done");
        self.send_auth(now).map_err(Handling::Fatal)
    }

    /// An IKE_SA_INIT response we cannot go on with (an error notification, a bad COOKIE...) is not
    /// authenticated, so anyone on the path could have sent it (§2.21.1): note it and keep waiting for a valid
    /// answer. Fail with it when the retransmissions run out, or once it answered [`INIT_ERROR_REPEATS`] of our
    /// transmissions (then it is the gateway's answer, and waiting longer only hides the reason).
    fn note_init_error(&mut self, e: IkeError) -> Result<(), Handling> {
        let sends = self.ex.sends();
        let (count, last) = match self.init_error.take() {
            Some((_, count, last)) if last == sends => (count, last),
            Some((_, count, _)) => (count + 1, sends),
            None => (1, sends),
        };
        if count >= INIT_ERROR_REPEATS {
            return Err(Handling::Fatal(e));
        }
        warn!(%e, "unauthenticated IKE_SA_INIT error; waiting for a valid answer (RFC 7296 §2.21.1)");
        self.init_error = Some((e, count, last));
        Err(Handling::Drop("unauthenticated IKE_SA_INIT error noted".into()))
    }

    fn handle_auth_response(&mut self, now: Instant, payloads: Vec<Payload>) -> Result<(), IkeError> {
        // The gateway's certificate is judged only with the CRLs and OCSP answers it points to (the driver fetches).
        let Some(payloads) = self.defer_for_revocation(now, payloads) else { return Ok(()) };
        let mut idr = None;
        let mut auth = None;
        let mut cp = None;
        let mut sa = None;
        let mut tsi = None;
        let mut tsr = None;
        let mut eap = None;
        let mut certs = Vec::new();
        for p in &payloads {
            match p {
                Payload::IdR(i) => idr = Some(i),
                Payload::Auth(a) => auth = Some(a),
                Payload::Cp(c) if c.cfg_type == CfgType::CFG_REPLY => cp = Some(c),
                Payload::Sa(s) => sa = Some(s),
                Payload::TsI(t) => tsi = Some(t),
                Payload::TsR(t) => tsr = Some(t),
                Payload::Eap(e) => eap = Some(e),
                Payload::Cert(c) if c.encoding == cert_encoding::X509_SIGNATURE => certs.push(c.data.as_slice()),
                _ => {}
            }
        }
        // EAP failures carry the method's own reason (e.g. MSCHAPv2 E=691); let the EAP peer see them first.
        if let (Some(pkt), true) = (eap, self.eap.is_some()) {
            if self.eap_done {
                return Err(IkeError::Protocol("EAP message after EAP success"));
            }
            if self.gateway_id.is_none() {
                // First IKE_AUTH response (§2.16): the gateway proves itself with IDr and AUTH (its certificate)
                // before any EAP method runs, so no credential of ours reaches a peer that only answered
                // IKE_SA_INIT. Only with EAP-only authentication (RFC 5998, opted into) may AUTH wait for the end,
                // and then only mutual, key-generating methods run.
                let idr = idr.ok_or(IkeError::GatewayNotAuthenticated("its first IKE_AUTH response has no IDr"))?;
                self.check_remote_id(idr)?;
                match auth {
                    Some(a) => {
                        self.verify_gateway_signature(idr, a, &certs, now)?;
                        self.peer_authenticated = true;
                    }
                    None if self.config.eap_only => {
                        info!("EAP-only authentication (RFC 5998): the gateway proves itself through the EAP method")
                    }
                    None => return Err(IkeError::GatewayNotAuthenticated("it sent no AUTH before EAP")),
                }
                self.gateway_id = Some(idr.clone());
                let authenticated = self.peer_authenticated;
                if let Some(peer) = self.eap.as_mut() {
                    peer.set_gateway_authenticated(authenticated);
                }
            } else if idr.is_some_and(|i| Some(i) != self.gateway_id.as_ref()) {
                return Err(IkeError::Protocol("the gateway changed its IDr during EAP"));
            }
            let Some(mut peer) = self.eap.take() else { return Err(IkeError::Protocol("no EAP state")) };
            if self.clock.1 != 0 {
                peer.set_unix_time(self.unix_time(now));
            }
            let action = peer.handle(pkt, &mut self.rng);
            let msk = peer.msk().map(|m| Zeroizing::new(m.to_vec()));
            let method = peer.method();
            self.eap = Some(peer);
            return match action.map_err(|e| IkeError::Eap(e.to_string()))? {
                EapAction::Respond(r) => {
                    self.send_request(now, ExchangeType::IKE_AUTH, RequestKind::Auth, vec![Payload::Eap(r)])
                }
                EapAction::Success => {
                    if msk.is_none() && !self.peer_authenticated {
                        // Without an MSK both final AUTHs are keyed with SK_p, which whoever answered IKE_SA_INIT
                        // knows: such a method cannot authenticate the gateway (RFC 5998 §4).
                        return Err(IkeError::GatewayNotAuthenticated("its EAP method derived no key"));
                    }
                    info!(?method, msk = msk.is_some(), "EAP succeeded");
                    self.eap_done = true;
                    let auth = self.shared_key_auth(msk.as_ref().map(|m| m.as_slice()))?;
                    self.send_request(now, ExchangeType::IKE_AUTH, RequestKind::Auth, vec![Payload::Auth(auth)])
                }
                EapAction::Failure => Err(IkeError::Eap("the gateway sent EAP-Failure".into())),
            };
        }
        // Errors about the IKE SA itself come first.
        if notify_of(&payloads, NotifyType::AUTHENTICATION_FAILED).is_some() {
            let no_cert = !matches!(self.config.auth, AuthConfig::Certificate(_));
            if no_cert && self.gateway_sent_certreq && self.gateway_id.is_none() {
                // Refused before any EAP started although it asked for certificates: it wants ours.
                return Err(IkeError::ClientCertificateRequired);
            }
            return Err(IkeError::AuthenticationFailed);
        }
        if eap.is_some() {
            return Err(IkeError::Protocol("gateway started EAP, which this profile does not use"));
        }
        let Some(auth) = auth else {
            if let Some(t) = first_error_notify(&payloads) {
                return Err(IkeError::from_notify(t));
            }
            return Err(IkeError::Protocol("IKE_AUTH response lacks AUTH"));
        };
        let idr = match (idr, self.gateway_id.clone()) {
            (Some(i), Some(first)) if *i != first => {
                return Err(IkeError::Protocol("the gateway changed its IDr during EAP"))
            }
            (Some(i), _) => i.clone(),
            // After EAP the gateway's identity came in the first response.
            (None, Some(i)) => i,
            (None, None) => return Err(IkeError::Protocol("IKE_AUTH response lacks IDr")),
        };
        self.check_remote_id(&idr)?;
        if self.eap_done {
            // §2.16: after EAP both AUTH payloads are computed with the MSK (or SK_p when the method has none).
            let msk = self.eap.as_ref().and_then(|p| p.msk()).map(|m| Zeroizing::new(m.to_vec()));
            if msk.is_none() && !self.peer_authenticated {
                return Err(IkeError::GatewayNotAuthenticated("its EAP method derived no key"));
            }
            self.verify_shared_key_auth(msk.as_ref().map(|m| m.as_slice()), &idr, auth)?;
        } else {
            match (&self.config.gateway_auth, &self.config.auth) {
                (GatewayAuth::Psk, AuthConfig::Psk(psk)) => {
                    let psk = psk.clone();
                    self.verify_shared_key_auth(Some(&psk), &idr, auth)?;
                }
                (GatewayAuth::Psk, _) => return Err(IkeError::Config("gateway PSK auth needs a PSK".into())),
                (GatewayAuth::Certificate(_) | GatewayAuth::Platform(_), _) => {
                    self.verify_gateway_signature(&idr, auth, &certs, now)?
                }
            }
        }
        self.peer_authenticated = true;
        let remote_id = display_identity(&idr);
        info!(remote_id, "gateway authenticated");
        if let Some(to) = self.authenticated_redirect(&payloads) {
            // RFC 5685 §6: authenticated, but sent elsewhere; the gateway has an IKE SA to delete.
            self.leave_for(now, to);
            return Ok(());
        }

        let config = cp.map(parse_config_reply).unwrap_or_default();
        // The IKE SA is up even if the Child SA failed (§1.2); a VPN without a Child SA is of no use, though.
        let child_error = first_error_notify(&payloads);
        let (Some(sa), Some(tsi), Some(tsr)) = (sa, tsi, tsr) else {
            let e = child_error
                .map(IkeError::from_notify)
                .unwrap_or(IkeError::Protocol("IKE_AUTH response lacks the Child SA"));
            return Err(e);
        };
        let (suite, spi_out) = select_esp(&self.config.esp_proposals, sa, false)?;
        // The gateway may only narrow what we proposed (§2.9), never widen it.
        if !ts_within(tsi, &self.config.ts_i) || !ts_within(tsr, &self.config.ts_r) {
            warn!(?tsi, ?tsr, "gateway answered with traffic selectors outside what we proposed");
            return Err(IkeError::TsUnacceptable);
        }
        let ike_suite = self.ex.suite.ok_or(IkeError::Protocol("no IKE suite"))?;
        let keys = self.ex.keys.as_ref().ok_or(IkeError::Protocol("no IKE keys"))?;
        let ck = ChildKeys::derive(ike_suite.prf, &keys.sk_d, None, &self.ni, &self.nr, suite.encr, suite.integ);
        let info = SessionInfo {
            ike_suite,
            spi_i: self.ex.spi_i,
            spi_r: self.ex.spi_r,
            local_id: display_identity(&self.config.local_id),
            remote_id,
            nat: self.nat,
            config,
        };
        self.mobike = self.config.mobike && notify_of(&payloads, NotifyType::MOBIKE_SUPPORTED).is_some();
        self.set_state(State::Established);
        self.last_heard = now;
        // Keepalives only matter behind a real NAT (RFC 3948 §4); forced encapsulation alone has no mapping to keep.
        if self.ex.nat_t && self.nat.local_behind_nat {
            self.next_keepalive = self.config.keepalive.map(|k| now + k);
        }
        self.events.push_back(Event::Established(info));
        self.agreed_ts = Some((tsi.clone(), tsr.clone()));
        self.install_child(now, suite, self.child_spi_in, spi_out, ck, true, tsi.clone(), tsr.clone(), None);
        self.ike_rekey_at = self.rekey_time(now, self.config.ike_lifetime);
        self.reauth_at = self.rekey_time(now, self.config.reauth_lifetime);
        self.note_auth_lifetime(now, &payloads);
        Ok(())
    }

    /// AUTH_LIFETIME (RFC 4478): the gateway wants us to authenticate again within this many seconds.
    /// Reauthenticate at 90% of it (minus jitter), or earlier if our own `reauth_lifetime` says so; at least
    /// [`MIN_AUTH_LIFETIME`] from now, so a gateway cannot make us reconnect in a loop.
    fn note_auth_lifetime(&mut self, now: Instant, payloads: &[Payload]) {
        let Some(n) = notify_of(payloads, NotifyType::AUTH_LIFETIME) else { return };
        let Some(secs) = n.data.first_chunk::<4>().map(|b| u32::from_be_bytes(*b)) else {
            debug!("AUTH_LIFETIME without a lifetime; ignored");
            return;
        };
        let lifetime = std::time::Duration::from_secs(u64::from(secs)).mul_f64(0.9).max(MIN_AUTH_LIFETIME);
        if let Some(at) = self.rekey_time(now, Some(lifetime)) {
            info!(secs, "the gateway asks us to reauthenticate (AUTH_LIFETIME)");
            self.reauth_at = Some(self.reauth_at.map_or(at, |t| t.min(at)));
        }
    }

    /// The gateway's IDr against the identity we expect (a loose expectation is checked against the
    /// certificate instead, in [`IkeSa::verify_gateway_signature`]).
    fn check_remote_id(&self, idr: &Identification) -> Result<(), IkeError> {
        match &self.config.remote_id {
            Some(expected) if expected != idr && !self.config.remote_id_loose => {
                Err(IkeError::IdentityMismatch { expected: display_identity(expected), got: display_identity(idr) })
            }
            _ => Ok(()),
        }
    }

    /// The responder's signed octets: RealMessage2 | Ni | prf(SK_pr, IDr') (§2.15).
    fn responder_octets(&self, idr: &Identification) -> Result<Vec<u8>, IkeError> {
        let suite = self.ex.suite.ok_or(IkeError::Protocol("no IKE suite"))?;
        let keys = self.ex.keys.as_ref().ok_or(IkeError::Protocol("no IKE keys"))?;
        Ok(signed_octets(suite.prf, &keys.sk_pr, &self.init_response, &self.ni, idr))
    }

    /// Our signed octets: RealMessage1 | Nr | prf(SK_pi, IDi') (§2.15).
    fn initiator_octets(&self) -> Result<Vec<u8>, IkeError> {
        let suite = self.ex.suite.ok_or(IkeError::Protocol("no IKE suite"))?;
        let keys = self.ex.keys.as_ref().ok_or(IkeError::Protocol("no IKE keys"))?;
        Ok(signed_octets(suite.prf, &keys.sk_pi, &self.init_request, &self.nr, &self.config.local_id))
    }

    /// Our shared-key AUTH (§2.15) with `key`, or SK_pi when there is none (EAP methods without MSK, §2.16).
    fn shared_key_auth(&self, key: Option<&[u8]>) -> Result<AuthPayload, IkeError> {
        let suite = self.ex.suite.ok_or(IkeError::Protocol("no IKE suite"))?;
        let keys = self.ex.keys.as_ref().ok_or(IkeError::Protocol("no IKE keys"))?;
        let octets = self.initiator_octets()?;
        let key = key.unwrap_or(&keys.sk_pi);
        Ok(AuthPayload { method: AuthMethod::SHARED_KEY_MIC, data: psk_auth(suite.prf, key, &octets).to_vec() })
    }

    /// Check the gateway's shared-key AUTH with `key`, or SK_pr when there is none.
    fn verify_shared_key_auth(
        &self,
        key: Option<&[u8]>,
        idr: &Identification,
        auth: &AuthPayload,
    ) -> Result<(), IkeError> {
        if auth.method != AuthMethod::SHARED_KEY_MIC {
            return Err(IkeError::Protocol("gateway used another AUTH method than a shared key"));
        }
        let suite = self.ex.suite.ok_or(IkeError::Protocol("no IKE suite"))?;
        let keys = self.ex.keys.as_ref().ok_or(IkeError::Protocol("no IKE keys"))?;
        let octets = self.responder_octets(idr)?;
        let expect = psk_auth(suite.prf, key.unwrap_or(&keys.sk_pr), &octets);
        if !crypto::constant_time_eq(&expect, &auth.data) {
            return Err(IkeError::PeerAuthenticationFailed);
        }
        Ok(())
    }

    /// Validate the gateway's certificate chain against the policy and IDr, then its signature AUTH.
    fn verify_gateway_signature(
        &self,
        idr: &Identification,
        auth: &AuthPayload,
        certs: &[&[u8]],
        now: Instant,
    ) -> Result<(), IkeError> {
        if auth.method == AuthMethod::SHARED_KEY_MIC {
            return Err(IkeError::Protocol("gateway used a pre-shared key but we expect a certificate"));
        }
        if auth.method == AuthMethod::RSA_SIG && !self.config.legacy_rsa_sha1 {
            // We announced SHA-2 only (RFC 7427 §4); SHA-1 signatures only for legacy gateways, opted into.
            return Err(IkeError::Protocol(
                "gateway signed with RSA and SHA-1 (AUTH method 1); set ike.legacy_rsa_sha1 to accept it",
            ));
        }
        // The identity we expect by default (the gateway's address) must be in its certificate even when the
        // IDr names something else.
        let loose = self.config.remote_id.as_ref().filter(|e| self.config.remote_id_loose && *e != idr);
        let octets = self.responder_octets(idr)?;
        match &self.config.gateway_auth {
            GatewayAuth::Psk => Err(IkeError::Protocol("gateway authenticated with a signature but we expect a PSK")),
            GatewayAuth::Certificate(policy) => {
                let time = self.unix_time(now);
                let peer =
                    crypto::validate_gateway_online(certs, idr, policy, self.fetched_crls(), self.ocsp_answer(), time)
                        .map_err(IkeError::Certificate)?;
                if let (Some(expected), Some(leaf)) = (loose, certs.first()) {
                    crypto::cert_names_identity(leaf, expected).map_err(IkeError::Certificate)?;
                }
                peer.verify_auth(auth.method, &auth.data, &octets).map_err(|_| IkeError::PeerAuthenticationFailed)?;
                info!(subject = %peer.subject(), "gateway certificate valid");
                Ok(())
            }
            GatewayAuth::Platform(evaluator) => {
                // The platform (Android, Apple) vouches for the chain only; the identity rule is ours, the same
                // as with our own anchors: the certificate names the IDr and, when loose, the expected identity.
                let leaf = certs.first().ok_or(IkeError::Protocol("gateway sent no certificate"))?;
                crypto::cert_names_identity(leaf, idr).map_err(IkeError::Certificate)?;
                if let Some(expected) = loose {
                    crypto::cert_names_identity(leaf, expected).map_err(IkeError::Certificate)?;
                }
                let chain: Vec<Vec<u8>> = certs.iter().map(|c| c.to_vec()).collect();
                evaluator.evaluate(&chain, host_name(loose.unwrap_or(idr)).as_deref()).map_err(IkeError::Untrusted)?;
                crypto::verify_auth(leaf, auth.method, &auth.data, &octets)
                    .map_err(|_| IkeError::PeerAuthenticationFailed)?;
                info!("gateway certificate accepted by the platform");
                Ok(())
            }
        }
    }

    /// Wall-clock seconds at `now`, from the time the driver gave with [`IkeSa::set_unix_time`].
    fn unix_time(&self, now: Instant) -> u64 {
        let (base_instant, base_unix) = self.clock;
        base_unix.saturating_add(now.saturating_duration_since(base_instant).as_secs())
    }

    /// The gateway authenticated itself (its AUTH verified; after EAP, the final MSK-based AUTH) and the IKE SA
    /// is up: only then is anything it asks for acted on.
    fn gateway_trusted(&self) -> bool {
        self.peer_authenticated && matches!(self.state, State::Established | State::Closing)
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
                                if let Some(c) = self.children.iter().find(|c| c.spi_out == out) {
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
            _ => return Err(Handling::Drop("unexpected request exchange type".into())),
        }
        self.ex.respond(&h, &reply, &mut self.rng).map_err(Handling::Fatal)?;
        if let Some(sw) = self.pending_switch.take() {
            // Our answer to the gateway's IKE rekey is out: the new IKE SA is the gateway's (§2.18).
            self.switch_ike_sa(now, sw.suite, &sw.shared, &sw.ni, &sw.nr, sw.spi_i, sw.spi_r, false)
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

    fn send_init(&mut self, now: Instant) {
        let Some(ke) = self.ke.as_ref() else { return };
        let mut payloads = Vec::new();
        if let Some(c) = &self.cookie {
            payloads.push(Payload::Notify(Notify::new(NotifyType::COOKIE, c.clone())));
        }
        // Proposals with the group of our KE payload first, so the gateway can pick it without a round trip.
        let proposals = self.ike_proposals_for(ke.group(), Vec::new());
        payloads.push(Payload::Sa(proposals));
        payloads.push(Payload::Ke(KePayload { group: ke.group().id(), data: ke.public_value().to_vec() }));
        payloads.push(Payload::Nonce(self.ni.clone()));
        let src = if self.config.force_encap {
            let mut fake = vec![0u8; 20];
            self.rng.fill_bytes(&mut fake);
            fake
        } else {
            crypto::nat_detection_hash(self.ex.spi_i, 0, self.ex.local).to_vec()
        };
        payloads.push(Payload::Notify(Notify::new(NotifyType::NAT_DETECTION_SOURCE_IP, src)));
        let dst = crypto::nat_detection_hash(self.ex.spi_i, 0, self.ex.remote).to_vec();
        payloads.push(Payload::Notify(Notify::new(NotifyType::NAT_DETECTION_DESTINATION_IP, dst)));
        if self.config.fragment_mtu > 0 {
            payloads.push(Payload::Notify(Notify::new(NotifyType::IKEV2_FRAGMENTATION_SUPPORTED, vec![])));
        }
        let hashes: Vec<u8> = crypto::SUPPORTED_HASH_IDS.iter().flat_map(|h| h.to_be_bytes()).collect();
        payloads.push(Payload::Notify(Notify::new(NotifyType::SIGNATURE_HASH_ALGORITHMS, hashes)));
        if let Some(n) = self.redirect_notify() {
            payloads.push(Payload::Notify(n));
        }
        let header = ike_header(self.ex.spi_i, 0, ExchangeType::IKE_SA_INIT, true, false, 0);
        let bytes = Message { header, payloads }.encode();
        self.init_request = bytes.clone();
        let retransmits = RequestKind::Init.retransmits(&self.config);
        self.ex.start_request(now, RequestKind::Init, 0, vec![bytes], retransmits);
    }

    fn send_auth(&mut self, now: Instant) -> Result<(), IkeError> {
        let idi = self.config.local_id.clone();
        let mut payloads = vec![Payload::IdI(idi)];
        if let AuthConfig::Certificate(creds) = &self.config.auth {
            for c in &creds.chain {
                payloads.push(Payload::Cert(CertPayload { encoding: cert_encoding::X509_SIGNATURE, data: c.clone() }));
            }
        }
        if self.config.initial_contact {
            payloads.push(Payload::Notify(Notify::new(NotifyType::INITIAL_CONTACT, vec![])));
        }
        match &self.config.gateway_auth {
            GatewayAuth::Certificate(policy) => {
                let hashes = crypto::certreq_hashes(&policy.anchors);
                if !hashes.is_empty() {
                    let data = hashes;
                    payloads.push(Payload::CertReq(CertPayload { encoding: cert_encoding::X509_SIGNATURE, data }));
                }
            }
            // The platform knows its anchors; an empty CERTREQ still asks the gateway for its certificate.
            GatewayAuth::Platform(_) => payloads
                .push(Payload::CertReq(CertPayload { encoding: cert_encoding::X509_SIGNATURE, data: Vec::new() })),
            GatewayAuth::Psk => {}
        }
        if let (Some(r), true) = (&self.config.remote_id, self.config.send_remote_id) {
            payloads.push(Payload::IdR(r.clone()));
        }
        match &self.config.auth {
            AuthConfig::Psk(psk) => {
                let psk = psk.clone();
                payloads.push(Payload::Auth(self.shared_key_auth(Some(&psk))?));
            }
            AuthConfig::Certificate(creds) => {
                let ours = creds.signer.schemes();
                // RFC 7427: pick a scheme whose hash the gateway announced; strongSwan always takes SHA-256.
                let scheme = SigScheme::select(&ours, &self.peer_hash_algorithms)
                    .or_else(|| ours.iter().copied().find(|s| s.hash_id() == 2))
                    .or_else(|| ours.first().copied())
                    .ok_or_else(|| IkeError::Config("the client key can sign with no scheme".into()))?;
                let octets = self.initiator_octets()?;
                let data = crypto::sign_auth(creds.signer.as_ref(), AuthMethod::DIGITAL_SIGNATURE, scheme, &octets)?;
                payloads.push(Payload::Auth(AuthPayload { method: AuthMethod::DIGITAL_SIGNATURE, data }));
            }
            AuthConfig::Eap(cfg) => {
                // No AUTH payload: we want EAP (§2.16).
                self.eap = Some(EapPeer::new(cfg.clone()));
                if self.config.eap_only {
                    payloads.push(Payload::Notify(Notify::new(NotifyType::EAP_ONLY_AUTHENTICATION, vec![])));
                }
            }
        }
        let mut attrs = Vec::new();
        if self.config.request_ipv4 {
            attrs.push(ConfigAttribute { attr_type: cfg_attr::INTERNAL_IP4_ADDRESS, value: vec![] });
            if self.config.request_dns {
                attrs.push(ConfigAttribute { attr_type: cfg_attr::INTERNAL_IP4_DNS, value: vec![] });
            }
        }
        if self.config.request_ipv6 {
            attrs.push(ConfigAttribute { attr_type: cfg_attr::INTERNAL_IP6_ADDRESS, value: vec![] });
            if self.config.request_dns {
                attrs.push(ConfigAttribute { attr_type: cfg_attr::INTERNAL_IP6_DNS, value: vec![] });
            }
        }
        if !attrs.is_empty() {
            payloads.push(Payload::Cp(ConfigPayload { cfg_type: CfgType::CFG_REQUEST, attributes: attrs }));
        }
        payloads.push(Payload::Notify(Notify::new(NotifyType::ESP_TFC_PADDING_NOT_SUPPORTED, vec![])));
        if self.config.mobike {
            payloads.push(Payload::Notify(Notify::new(NotifyType::MOBIKE_SUPPORTED, vec![])));
        }
        let proposals = self
            .config
            .esp_proposals
            .iter()
            .enumerate()
            .map(|(i, p)| p.to_wire((i + 1) as u8, self.child_spi_in, false))
            .collect();
        payloads.push(Payload::Sa(proposals));
        payloads.push(Payload::TsI(self.config.ts_i.clone()));
        payloads.push(Payload::TsR(self.config.ts_r.clone()));
        self.set_state(State::Authenticating);
        self.send_request(now, ExchangeType::IKE_AUTH, RequestKind::Auth, payloads)
    }

    /// Our IKE SA proposals with `group` moved first in each, so the gateway can take the KE we send along;
    /// `spi` is empty in IKE_SA_INIT and our new SPI in an IKE SA rekey.
    fn ike_proposals_for(&self, group: Group, spi: Vec<u8>) -> Vec<wire::Proposal> {
        self.config
            .ike_proposals
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut p = p.clone();
                if let Some(pos) = p.groups.iter().position(|g| *g == group) {
                    let g = p.groups.remove(pos);
                    p.groups.insert(0, g);
                }
                p.to_wire((i + 1) as u8, spi.clone())
            })
            .collect()
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
        let payloads = if self.peer_authenticated {
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
        if let Some(pos) = self.children.iter().position(|c| c.spi_in == spi_in) {
            let c = self.children.remove(pos);
            info!(spi_in = format_args!("{:08x}", c.spi_in), "Child SA deleted");
            self.events.push_back(Event::ChildSaDeleted { inbound_spi: c.spi_in, outbound_spi: c.spi_out });
        }
    }

    /// Delete a Child SA we replaced (§1.4.1).
    fn send_child_delete(&mut self, now: Instant, spi_in: u32) {
        if !self.children.iter().any(|c| c.spi_in == spi_in) {
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
        let Some(old) = self.old_ike.as_ref() else { return Err(Handling::Drop("no old IKE SA".into())) };
        let payloads = old.open(raw, msg)?;
        let h = msg.header;
        if h.flags.response {
            debug!("old IKE SA deleted");
            self.old_ike = None;
            return Ok(());
        }
        // The gateway deletes the old IKE SA (or probes it): answer, then forget it.
        let deletes = payloads.iter().any(|p| matches!(p, Payload::Delete(d) if d.protocol == ProtocolId::IKE));
        let msg = old.seal_response(&h, &mut self.rng).map_err(Handling::Fatal)?;
        self.ex.emit(msg);
        if deletes {
            debug!("gateway deleted the old IKE SA");
            self.old_ike = None;
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
        for c in std::mem::take(&mut self.children) {
            self.events.push_back(Event::ChildSaDeleted { inbound_spi: c.spi_in, outbound_spi: c.spi_out });
        }
        self.old_ike = None;
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

fn parse_config_reply(cp: &ConfigPayload) -> VirtualConfig {
    let mut c = VirtualConfig::default();
    for a in &cp.attributes {
        let v = a.value.as_slice();
        match a.attr_type {
            cfg_attr::INTERNAL_IP4_ADDRESS => {
                if let Ok(b) = <[u8; 4]>::try_from(v) {
                    c.ipv4 = Some(Ipv4Addr::from(b));
                }
            }
            cfg_attr::INTERNAL_IP4_NETMASK => {
                if let Ok(b) = <[u8; 4]>::try_from(v) {
                    c.ipv4_netmask = Some(Ipv4Addr::from(b));
                }
            }
            cfg_attr::INTERNAL_IP4_DNS => {
                if let Ok(b) = <[u8; 4]>::try_from(v) {
                    c.dns.push(IpAddr::V4(Ipv4Addr::from(b)));
                }
            }
            cfg_attr::INTERNAL_IP6_ADDRESS => {
                if let (Some(a), Some(&p)) = (v.get(..16).and_then(|a| <[u8; 16]>::try_from(a).ok()), v.get(16)) {
                    if v.len() == 17 && p <= 128 {
                        c.ipv6 = Some((Ipv6Addr::from(a), p));
                    }
                }
            }
            cfg_attr::INTERNAL_IP6_DNS => {
                if let Ok(b) = <[u8; 16]>::try_from(v) {
                    c.dns.push(IpAddr::V6(Ipv6Addr::from(b)));
                }
            }
            cfg_attr::INTERNAL_IP4_SUBNET => {
                if let (Some(a), Some(m)) = (v.get(..4), v.get(4..8)) {
                    if v.len() == 8 {
                        let m = u32::from_be_bytes([m[0], m[1], m[2], m[3]]);
                        if m.leading_ones() + m.trailing_zeros() == 32 {
                            let addr = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
                            if let Ok(cidr) =
                                parse_cidr(&format!("{}/{}", Ipv4Addr::from(u32::from(addr) & m), m.leading_ones()))
                            {
                                c.subnets.push(cidr);
                            }
                        }
                    }
                }
            }
            cfg_attr::INTERNAL_IP6_SUBNET => {
                if let (Some(a), Some(&p)) = (v.get(..16).and_then(|a| <[u8; 16]>::try_from(a).ok()), v.get(16)) {
                    if v.len() == 17 {
                        if let Ok(cidr) = parse_cidr(&format!("{}/{}", Ipv6Addr::from(a), p)) {
                            c.subnets.push(cidr);
                        }
                    }
                }
            }
            cfg_attr::INTERNAL_DNS_DOMAIN => {
                if let Ok(s) = std::str::from_utf8(v) {
                    if !s.is_empty() {
                        c.dns_domains.push(s.to_string());
                    }
                }
            }
            _ => trace!(attr = a.attr_type, "ignoring configuration attribute"),
        }
    }
    c
}

/// An identity as the host name an OS trust policy checks (a DNS name or an IP address), if it is one.
fn host_name(id: &Identification) -> Option<String> {
    matches!(id.id_type, wire::IdType::ID_FQDN | wire::IdType::ID_IPV4_ADDR | wire::IdType::ID_IPV6_ADDR)
        .then(|| display_identity(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_reply_parsing() {
        let cp = ConfigPayload {
            cfg_type: CfgType::CFG_REPLY,
            attributes: vec![
                ConfigAttribute { attr_type: cfg_attr::INTERNAL_IP4_ADDRESS, value: vec![100, 64, 0, 1] },
                ConfigAttribute { attr_type: cfg_attr::INTERNAL_IP4_DNS, value: vec![198, 51, 100, 53] },
                ConfigAttribute { attr_type: cfg_attr::INTERNAL_IP4_DNS, value: vec![1, 2, 3] },
                ConfigAttribute {
                    attr_type: cfg_attr::INTERNAL_IP4_SUBNET,
                    value: vec![198, 51, 100, 0, 255, 255, 255, 0],
                },
                ConfigAttribute {
                    attr_type: cfg_attr::INTERNAL_IP4_SUBNET,
                    value: vec![198, 51, 100, 0, 255, 0, 255, 0],
                },
            ],
        };
        let c = parse_config_reply(&cp);
        assert_eq!(c.ipv4, Some(Ipv4Addr::new(100, 64, 0, 1)));
        assert_eq!(c.dns, vec![IpAddr::V4(Ipv4Addr::new(198, 51, 100, 53))]);
        assert_eq!(c.subnets.len(), 1);
        assert_eq!(c.subnets[0].to_string(), "198.51.100.0/24");
    }
}
