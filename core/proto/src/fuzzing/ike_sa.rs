//! `ike_sa`: the initiator's IKE SA state machine (`crate::ike::IkeSa`) fed by a scripted gateway that holds the
//! SA's keys, so that fuzz bytes arrive as the *authenticated* plaintext payload chain of SK (or SKF) messages:
//! responses to whatever the initiator has outstanding, and requests of the gateway's own (INFORMATIONAL,
//! CREATE_CHILD_SA, ...), in each state: IKE_SA_INIT outstanding (the bytes are then the unencrypted response's
//! payloads), IKE_AUTH outstanding, in the middle of EAP, and established (optionally with a DPD, Delete, Child
//! SA rekey, IKE SA rekey or MOBIKE update of ours outstanding). Raw datagrams and mangled headers are possible too.
//!
//! The gateway's side of IKE_SA_INIT and IKE_AUTH (PSK) is written out here from the wire and crypto modules, as
//! the simulator of `ike::sim` does; everything is deterministic (fixed seeds, virtual time).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use zeroize::Zeroizing;

use super::{eap_peer, pki, Input};
use crate::crypto::{
    nat_detection_hash, sign_auth, Encr, GatewayCertPolicy, Group, IkeKeys, Integ, KeyExchange, KeyPairSigner, Prf,
    Revocation, RevocationResponse, SigScheme, TrustAnchors,
};
use crate::ike::{
    parse_cidr, AuthConfig, EspProposal, Event, GatewayAuth, IkeConfig, IkeProposal, IkeSa, Retransmit, SocketKind,
    State,
};
use crate::wire::{
    self, cert_encoding, cfg_attr, AuthMethod, AuthPayload, CertPayload, CfgType, ConfigAttribute, ConfigPayload,
    ExchangeType, Flags, Header, IdType, Identification, KePayload, Message, Notify, NotifyType, Payload, Proposal,
    ProtocolId, Transform, TransformType, HEADER_LEN,
};

/// Our IKE socket, the gateway, and where a NAT would make us appear.
const LOCAL: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)), 500);
const GATEWAY: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1)), 500);
const NAT_PUBLIC: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 77)), 61_500);
const INITIATOR_SEED: [u8; 32] = [0x49; 32];
const GATEWAY_SEED: [u8; 32] = [0x52; 32];
const PSK: &[u8] = b"fuzzing pre-shared key";
/// The gateway's SPI of the first Child SA.
pub(crate) const GATEWAY_CHILD_SPI: u32 = 0xcafe_0001;
const MAX_MESSAGES: usize = 32;
/// Longest plaintext we protect in one SK payload (its length must fit 16 bits with IV, padding and ICV).
const MAX_PLAINTEXT: usize = 65_000;

/// How far the scripted exchange goes before the fuzz messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// IKE_SA_INIT outstanding.
    Init,
    /// IKE_AUTH (PSK) outstanding.
    Auth,
    /// EAP: the gateway asked for our identity, our answer is outstanding.
    Eap,
    /// IKE_AUTH done (PSK), Child SA installed.
    Established,
}

/// The first two input bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scenario {
    pub stage: Stage,
    /// AES-CBC with HMAC instead of AES-GCM.
    pub cbc: bool,
    /// The gateway supports IKE fragmentation (RFC 7383).
    pub fragmentation: bool,
    /// The gateway sees us behind a NAT (NAT-T on port 4500).
    pub nat: bool,
    /// MOBIKE offered and accepted (RFC 4555).
    pub mobike: bool,
    /// Once established: 0 nothing, 1 a DPD, 2 our Delete, 3 a Child SA rekey, 4 an IKE SA rekey, 5 a network
    /// change, 6 a NAT keepalive; 7 nothing.
    pub action: u8,
    /// The EAP configuration ([`eap_peer::config`]).
    pub eap: u8,
    /// The gateway authenticates with its certificate (the fuzz PKI) and an RFC 7427 signature instead of the
    /// PSK; with EAP, it does so before EAP (no EAP-only authentication).
    pub cert: bool,
    /// With `cert`: revocation is checked online (CRL and OCSP fetches, [`Event::FetchRevocation`]), else offline.
    pub online: bool,
}

impl Scenario {
    pub(crate) fn read(input: &mut Input<'_>) -> Scenario {
        let a = input.u8();
        let b = input.u8();
        Scenario {
            stage: [Stage::Init, Stage::Auth, Stage::Eap, Stage::Established][usize::from(a & 3)],
            cbc: a & 4 != 0,
            fragmentation: a & 8 != 0,
            nat: a & 16 != 0,
            mobike: a & 32 != 0,
            action: b & 7,
            eap: (b >> 3) & 7,
            cert: a & 64 != 0,
            online: a & 128 != 0,
        }
    }

    pub(crate) fn bytes(&self) -> [u8; 2] {
        let stage = match self.stage {
            Stage::Init => 0,
            Stage::Auth => 1,
            Stage::Eap => 2,
            Stage::Established => 3,
        };
        let a = stage
            | u8::from(self.cbc) << 2
            | u8::from(self.fragmentation) << 3
            | u8::from(self.nat) << 4
            | u8::from(self.mobike) << 5
            | u8::from(self.cert) << 6
            | u8::from(self.online) << 7;
        [a, (self.action & 7) | (self.eap & 7) << 3]
    }

    /// The IKE SA's configuration: from an inline PSK profile (so that fields added later get their profile
    /// defaults), then set as the scenario says.
    pub(crate) fn config(&self) -> IkeConfig {
        static BASE: OnceLock<[IkeConfig; 2]> = OnceLock::new();
        static EAP: OnceLock<Vec<AuthConfig>> = OnceLock::new();
        let base = BASE.get_or_init(|| [Self::profile_config(false), Self::profile_config(true)]);
        let mut c = base[usize::from(self.cbc)].clone();
        let any = match parse_cidr("0.0.0.0/0") {
            Ok(c) => c.to_ts(),
            Err(e) => panic!("{e}"),
        };
        let eap = self.stage == Stage::Eap;
        c.local_id = Identification { id_type: IdType::ID_FQDN, data: b"client.example.org".to_vec() };
        c.remote_id = None;
        c.send_remote_id = false;
        if eap {
            let eaps = EAP.get_or_init(|| (0..8).map(|i| AuthConfig::Eap(eap_peer::config(i).0)).collect());
            c.auth = eaps[usize::from(self.eap & 7)].clone();
        } else {
            c.auth = AuthConfig::Psk(Zeroizing::new(PSK.to_vec()));
        }
        c.gateway_auth = if self.cert {
            static POLICIES: OnceLock<[Arc<GatewayCertPolicy>; 2]> = OnceLock::new();
            let p = POLICIES.get_or_init(|| {
                let anchors = match TrustAnchors::from_der([pki::CA]) {
                    Ok(a) => a,
                    Err(e) => panic!("the fuzz CA does not load: {e}"),
                };
                [Revocation::Offline, Revocation::Relaxed].map(|r| {
                    let mut p = GatewayCertPolicy::new(anchors.clone());
                    p.revocation = r;
                    Arc::new(p)
                })
            });
            GatewayAuth::Certificate(p[usize::from(self.online)].clone())
        } else {
            GatewayAuth::Psk
        };
        c.eap_only = eap && !self.cert;
        c.request_ipv4 = true;
        c.request_ipv6 = true;
        c.request_dns = true;
        c.ts_i = vec![any.clone()];
        c.ts_r = vec![any];
        c.retransmit = Retransmit::default();
        c.force_encap = false;
        c.fragment_mtu = 1280;
        c.keepalive = (self.action == 6).then_some(Duration::from_secs(20));
        c.dpd = (self.action == 1).then_some(Duration::from_secs(30));
        c.dpd_tries = 2;
        c.child_lifetime = (self.action == 3).then_some(Duration::from_secs(3600));
        c.ike_lifetime = (self.action == 4).then_some(Duration::from_secs(3600));
        c.child_lifetime_bytes = None;
        c.reauth_lifetime = None;
        c.mobike = self.mobike;
        c.redirect = true;
        c.redirected_from = None;
        c.initial_contact = true;
        c
    }

    /// The base configuration (what a PSK profile with these proposals resolves to); `config` sets the rest.
    fn profile_config(cbc: bool) -> IkeConfig {
        let (ike, esp) = if cbc {
            ("aes128-sha256-x25519", "aes128-sha256")
        } else {
            ("aes256gcm16-prfsha256-x25519", "aes256gcm16")
        };
        let (Ok(ike), Ok(esp)) = (IkeProposal::parse(ike), EspProposal::parse(esp)) else {
            panic!("the fuzz proposals do not parse");
        };
        IkeConfig {
            local_id: Identification { id_type: IdType::ID_FQDN, data: b"client.example.org".to_vec() },
            remote_id: None,
            remote_id_loose: false,
            legacy_rsa_sha1: false,
            send_remote_id: false,
            auth: AuthConfig::Psk(Zeroizing::new(PSK.to_vec())),
            gateway_auth: GatewayAuth::Psk,
            eap_only: false,
            ike_proposals: vec![ike],
            esp_proposals: vec![esp],
            request_ipv4: true,
            request_ipv6: true,
            request_dns: true,
            ts_i: Vec::new(),
            ts_r: Vec::new(),
            retransmit: Retransmit::default(),
            force_encap: false,
            fragment_mtu: 1280,
            keepalive: None,
            dpd: None,
            dpd_tries: 2,
            child_lifetime: None,
            ike_lifetime: None,
            child_lifetime_bytes: None,
            reauth_lifetime: None,
            mobike: false,
            redirect: true,
            redirected_from: None,
            initial_contact: true,
            pq_fallback: false,
            ppk: None,
        }
    }
}

/// The gateway's answer to one IKE_SA_INIT request, and what its keys derive from.
#[derive(Clone)]
struct InitAnswer {
    key: (Vec<u8>, bool, bool),
    response: Vec<u8>,
    shared: Zeroizing<Vec<u8>>,
    ni: Vec<u8>,
    nr: Vec<u8>,
    spi_i: u64,
    spi_r: u64,
    prf: Prf,
    encr: Encr,
    integ: Option<Integ>,
    rng: ChaCha20Rng,
}

/// The gateway's half of the IKE SA.
pub(crate) struct Gateway {
    pub spi_i: u64,
    pub spi_r: u64,
    keys: IkeKeys,
    ni: Vec<u8>,
    init_response: Vec<u8>,
    rng: ChaCha20Rng,
}

/// The first transform of each type of the first proposal, as a responder picks them.
pub(crate) fn choose(p: &Proposal, spi: Vec<u8>) -> Proposal {
    let mut transforms: Vec<Transform> = Vec::new();
    for t in &p.transforms {
        if !transforms.iter().any(|c| c.kind == t.kind) {
            transforms.push(*t);
        }
    }
    Proposal { number: p.number, protocol: p.protocol, spi, transforms }
}

pub(crate) fn header(spi_i: u64, spi_r: u64, exchange: ExchangeType, response: bool, message_id: u32) -> Header {
    Header {
        spi_i,
        spi_r,
        next_payload: 0,
        version: 0x20,
        exchange,
        flags: Flags { initiator: false, version: false, response },
        message_id,
        length: 0,
    }
}

/// A message with an unencrypted payload chain given as bytes.
pub(crate) fn plain_message(h: &Header, first: u8, chain: &[u8]) -> Vec<u8> {
    let mut h = *h;
    h.next_payload = first;
    h.length = u32::try_from(HEADER_LEN + chain.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(HEADER_LEN + chain.len());
    h.encode(&mut out);
    out.extend_from_slice(chain);
    out
}

impl Gateway {
    /// Answer the initiator's IKE_SA_INIT request: the SA chosen, our KE and nonce, NAT detection (§2.23) and
    /// fragmentation support (RFC 7383) as the scenario says.
    pub(crate) fn answer_init(request: &[u8], s: &Scenario) -> Option<(Gateway, Vec<u8>)> {
        // The initiator's request is the same for every run of a scenario (fixed seed): compute the answer once.
        static CACHE: Mutex<Vec<InitAnswer>> = Mutex::new(Vec::new());
        let key = (request.to_vec(), s.nat, s.fragmentation);
        let cached = CACHE.lock().ok().and_then(|c| c.iter().find(|a| a.key == key).cloned());
        let a = match cached {
            Some(a) => a,
            None => {
                let a = Self::compute_init(request, s, key)?;
                if let Ok(mut c) = CACHE.lock() {
                    if c.len() < 32 {
                        c.push(a.clone());
                    }
                }
                a
            }
        };
        let keys = IkeKeys::derive(a.prf, a.encr, a.integ, &a.shared, &a.ni, &a.nr, a.spi_i, a.spi_r).ok()?;
        let gw =
            Gateway { spi_i: a.spi_i, spi_r: a.spi_r, keys, ni: a.ni, init_response: a.response.clone(), rng: a.rng };
        Some((gw, a.response))
    }

    fn compute_init(request: &[u8], s: &Scenario, key: (Vec<u8>, bool, bool)) -> Option<InitAnswer> {
        let msg = Message::decode(request).ok()?;
        let mut sa = None;
        let mut ke = None;
        let mut ni = None;
        for p in &msg.payloads {
            match p {
                Payload::Sa(s) => sa = s.first(),
                Payload::Ke(k) => ke = Some(k),
                Payload::Nonce(n) => ni = Some(n.clone()),
                _ => {}
            }
        }
        let (sa, ke, ni) = (sa?, ke?, ni?);
        let chosen = choose(sa, vec![]);
        let of = |kind| chosen.transforms.iter().find(|t| t.kind == kind);
        let e = of(TransformType::ENCR)?;
        let encr = Encr::from_transform(e.id, e.key_len)?;
        let prf = Prf::from_id(of(TransformType::PRF)?.id)?;
        let integ = of(TransformType::INTEG).and_then(|t| Integ::from_id(t.id));
        let group = Group::from_id(of(TransformType::DH)?.id)?;
        let mut rng = ChaCha20Rng::from_seed(GATEWAY_SEED);
        let kx = KeyExchange::generate(group, &mut rng).ok()?;
        let shared = kx.shared_secret(&ke.data).ok()?;
        let spi_i = msg.header.spi_i;
        let spi_r = rng.next_u64() | 1;
        let mut nr = vec![0u8; 32];
        rng.fill_bytes(&mut nr);
        let seen = if s.nat { NAT_PUBLIC } else { LOCAL };
        let mut payloads = vec![
            Payload::Sa(vec![chosen]),
            Payload::Ke(KePayload { group: group.id(), data: kx.public_value().to_vec() }),
            Payload::Nonce(nr.clone()),
            Payload::Notify(Notify::new(
                NotifyType::NAT_DETECTION_SOURCE_IP,
                nat_detection_hash(spi_i, spi_r, GATEWAY).to_vec(),
            )),
            Payload::Notify(Notify::new(
                NotifyType::NAT_DETECTION_DESTINATION_IP,
                nat_detection_hash(spi_i, spi_r, seen).to_vec(),
            )),
        ];
        if s.fragmentation {
            payloads.push(Payload::Notify(Notify::new(NotifyType::IKEV2_FRAGMENTATION_SUPPORTED, vec![])));
        }
        let response = Message { header: header(spi_i, spi_r, ExchangeType::IKE_SA_INIT, true, 0), payloads }.encode();
        Some(InitAnswer { key, response, shared, ni, nr, spi_i, spi_r, prf, encr, integ, rng })
    }

    pub(crate) fn header(&self, exchange: ExchangeType, response: bool, message_id: u32) -> Header {
        header(self.spi_i, self.spi_r, exchange, response, message_id)
    }

    /// One SK message (§3.14) around `plain` (an encoded payload chain starting with a payload of type `first`).
    pub(crate) fn seal(&mut self, h: &Header, first: u8, plain: &[u8]) -> Vec<u8> {
        let plain = plain.get(..MAX_PLAINTEXT).unwrap_or(plain);
        let cipher = self.keys.outbound(false);
        let mut msg = wire::encode_sk_prefix(h, first, cipher.sealed_len(plain.len()));
        if let Err(e) = cipher.seal(&mut msg, plain, &mut self.rng) {
            panic!("the gateway's encryption failed: {e}");
        }
        msg
    }

    /// SKF fragments (RFC 7383 §2.5) of `plain`: `(number, total, part)` each.
    pub(crate) fn seal_fragments(&mut self, h: &Header, first: u8, parts: &[(u16, u16, &[u8])]) -> Vec<Vec<u8>> {
        let cipher = self.keys.outbound(false);
        let mut out = Vec::with_capacity(parts.len());
        for &(number, total, part) in parts {
            let part = part.get(..MAX_PLAINTEXT).unwrap_or(part);
            let inner = if number == 1 { first } else { 0 };
            let mut msg = wire::encode_skf_prefix(h, inner, number, total, cipher.sealed_len(part.len()));
            if let Err(e) = cipher.seal(&mut msg, part, &mut self.rng) {
                panic!("the gateway's encryption failed: {e}");
            }
            out.push(msg);
        }
        out
    }

    /// Decrypt one of the initiator's SK messages.
    pub(crate) fn open(&self, raw: &[u8]) -> Option<Vec<Payload>> {
        let msg = Message::decode(raw).ok()?;
        match msg.payloads.last()? {
            Payload::Sk(sk) => {
                let plain = self.keys.inbound(false).open(raw, sk.offset + 4).ok()?;
                wire::decode_chain(sk.first_inner, &plain, 0).ok()
            }
            _ => None,
        }
    }

    /// IDr and our AUTH (§2.15): a PSK MAC, or with `cert` our certificate and an RFC 7427 ECDSA signature with
    /// its key.
    pub(crate) fn authentication(&self, cert: bool) -> Vec<Payload> {
        let idr = Identification { id_type: IdType::ID_FQDN, data: pki::GW_NAME.as_bytes().to_vec() };
        let prf = self.keys.prf;
        let maced = prf.prf(&self.keys.sk_pr, &idr.auth_octets());
        if cert {
            static SIGNER: OnceLock<KeyPairSigner> = OnceLock::new();
            let signer = SIGNER.get_or_init(|| match KeyPairSigner::from_pkcs8_der(pki::GW_KEY) {
                Ok(s) => s,
                Err(e) => panic!("the fuzz gateway key does not load: {e}"),
            });
            let octets = [&self.init_response[..], &self.ni, &maced].concat();
            let sig = match sign_auth(signer, AuthMethod::DIGITAL_SIGNATURE, SigScheme::EcdsaP256Sha256, &octets) {
                Ok(s) => s,
                Err(e) => panic!("signing failed: {e}"),
            };
            return vec![
                Payload::IdR(idr),
                Payload::Cert(CertPayload { encoding: cert_encoding::X509_SIGNATURE, data: pki::GW.to_vec() }),
                Payload::Auth(AuthPayload { method: AuthMethod::DIGITAL_SIGNATURE, data: sig }),
            ];
        }
        let key = prf.prf(PSK, b"Key Pad for IKEv2");
        let auth = prf.prf_parts(&key, &[&self.init_response, &self.ni, &maced]).to_vec();
        vec![Payload::IdR(idr), Payload::Auth(AuthPayload { method: AuthMethod::SHARED_KEY_MIC, data: auth })]
    }

    /// Our IKE_AUTH response to an IKE_AUTH request: IDr, AUTH (§2.15), the configuration (a virtual IP and a
    /// DNS server), the Child SA and the proposed selectors.
    pub(crate) fn auth_response(&self, request: &[Payload], cert: bool) -> Vec<Payload> {
        let mut reply = self.authentication(cert);
        reply.extend([Payload::Cp(ConfigPayload {
            cfg_type: CfgType::CFG_REPLY,
            attributes: vec![
                ConfigAttribute { attr_type: cfg_attr::INTERNAL_IP4_ADDRESS, value: vec![100, 64, 0, 7] },
                ConfigAttribute { attr_type: cfg_attr::INTERNAL_IP4_DNS, value: vec![198, 51, 100, 53] },
            ],
        })]);
        for p in request {
            match p {
                Payload::Sa(props) => {
                    if let Some(first) = props.iter().find(|p| p.protocol == ProtocolId::ESP) {
                        reply.push(Payload::Sa(vec![choose(first, GATEWAY_CHILD_SPI.to_be_bytes().to_vec())]));
                    }
                }
                Payload::TsI(_) | Payload::TsR(_) => reply.push(p.clone()),
                Payload::Notify(n) if n.notify_type == NotifyType::MOBIKE_SUPPORTED => {
                    reply.push(Payload::Notify(Notify::new(NotifyType::MOBIKE_SUPPORTED, vec![])))
                }
                _ => {}
            }
        }
        reply
    }
}

/// What the initiator has sent: its outstanding request and the next request ID it expects from the gateway.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    /// The last request it sent: (exchange, message ID).
    pub last_request: Option<(ExchangeType, u32)>,
    /// The message ID of the gateway's next request (advanced when the initiator answers it).
    pub next_id: u32,
    /// Every IKE message it sent, without the non-ESP marker.
    pub sent: Vec<Vec<u8>>,
    /// The URLs of its last [`Event::FetchRevocation`] (CRLs, then the OCSP responder).
    pub revocation: Vec<(String, bool)>,
}

/// Everything the initiator wants to send and tell; checks what must hold whatever it was fed.
pub(crate) fn drain(sa: &mut IkeSa, t: &mut Tracker) {
    while let Some(tx) = sa.poll_transmit() {
        let ike = match tx.socket {
            SocketKind::Ike => Some(tx.payload.as_slice()),
            SocketKind::NatT => tx.payload.strip_prefix(&[0u8; 4][..]),
        };
        let Some(ike) = ike else { continue }; // a NAT keepalive
        let Ok(h) = Header::decode(ike) else { panic!("the initiator sent an undecodable IKE header") };
        // (The I flag is not checked: after the gateway rekeys the IKE SA, the gateway is the original initiator.)
        if h.flags.response {
            if h.message_id == t.next_id {
                t.next_id = t.next_id.wrapping_add(1);
            }
        } else {
            t.last_request = Some((h.exchange, h.message_id));
        }
        if t.sent.len() < 64 {
            t.sent.push(ike.to_vec());
        }
    }
    while let Some(e) = sa.poll_event() {
        match e {
            Event::Closed(_) => assert_eq!(sa.state(), State::Closed, "Closed event in state {:?}", sa.state()),
            Event::FetchRevocation(requests) => {
                t.revocation = requests.into_iter().map(|r| (r.url, r.ocsp_request.is_some())).collect();
            }
            _ => {}
        }
    }
    if sa.state() == State::Closed {
        assert_eq!(sa.poll_timeout(), None, "a closed IKE SA still wants a timer");
    }
}

/// An IKE SA driven to the scenario's stage, with the gateway (`None` at [`Stage::Init`]).
pub(crate) struct Setup {
    pub sa: IkeSa,
    pub gw: Option<Gateway>,
    pub tracker: Tracker,
    pub now: Instant,
    pub start: Instant,
}

pub(crate) fn setup(s: &Scenario) -> Setup {
    let start = super::epoch();
    let now = start;
    let mut sa = match IkeSa::new(s.config(), LOCAL, GATEWAY, now, INITIATOR_SEED) {
        Ok(sa) => sa,
        Err(e) => panic!("IkeSa::new: {e}"),
    };
    sa.set_unix_time(now, pki::NOW);
    let mut tracker = Tracker::default();
    drain(&mut sa, &mut tracker);
    if s.stage == Stage::Init {
        return Setup { sa, gw: None, tracker, now, start };
    }
    let Some(init) = tracker.sent.last().cloned() else { panic!("no IKE_SA_INIT request") };
    let Some((mut gw, response)) = Gateway::answer_init(&init, s) else { panic!("scripted IKE_SA_INIT failed") };
    sa.handle_datagram(now, &response);
    drain(&mut sa, &mut tracker);
    let Some(auth) = tracker.sent.last().cloned() else { panic!("no IKE_AUTH request") };
    let Some(request) = gw.open(&auth) else { panic!("the IKE_AUTH request does not decrypt") };
    match s.stage {
        Stage::Init | Stage::Auth => {}
        Stage::Eap => {
            // EAP-only (RFC 5998) without a certificate: IDr alone; else IDr, CERT and AUTH first.
            let mut payloads = if s.cert {
                gw.authentication(true)
            } else {
                vec![Payload::IdR(Identification { id_type: IdType::ID_FQDN, data: pki::GW_NAME.as_bytes().to_vec() })]
            };
            payloads.push(Payload::Eap(eap_peer::request(1, 1, &[])));
            let (first, plain) = chain(&payloads);
            let msg = gw.seal(&gw.header(ExchangeType::IKE_AUTH, true, 1), first, &plain);
            sa.handle_datagram(now, &msg);
            drain(&mut sa, &mut tracker);
            answer_revocation(&mut sa, &mut tracker, now, None, None);
            assert_eq!(sa.state(), State::Authenticating, "EAP did not start");
        }
        Stage::Established => {
            let (first, plain) = chain(&gw.auth_response(&request, s.cert));
            let msg = gw.seal(&gw.header(ExchangeType::IKE_AUTH, true, 1), first, &plain);
            sa.handle_datagram(now, &msg);
            drain(&mut sa, &mut tracker);
            answer_revocation(&mut sa, &mut tracker, now, None, None);
            assert_eq!(sa.state(), State::Established, "scripted IKE_AUTH did not establish");
        }
    }
    let mut setup = Setup { sa, gw: Some(gw), tracker, now, start };
    if s.stage == Stage::Established {
        let st = &mut setup;
        match s.action {
            1 | 3 | 4 | 6 => fire_timer(st),
            2 => st.sa.close(st.now),
            5 => st.sa.network_changed(st.now, SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 99)), 500)),
            _ => {}
        }
        drain(&mut st.sa, &mut st.tracker);
    }
    setup
}

/// Answer the initiator's last [`Event::FetchRevocation`], if any: `crl` for the CRLs, `ocsp` for the responder.
fn answer_revocation(sa: &mut IkeSa, t: &mut Tracker, now: Instant, crl: Option<&[u8]>, ocsp: Option<&[u8]>) {
    if t.revocation.is_empty() {
        return;
    }
    let fetched: Vec<RevocationResponse> = std::mem::take(&mut t.revocation)
        .into_iter()
        .map(|(url, is_ocsp)| RevocationResponse { url, data: if is_ocsp { ocsp } else { crl }.map(<[u8]>::to_vec) })
        .collect();
    sa.handle_revocation(now, fetched);
    drain(sa, t);
}

fn fire_timer(st: &mut Setup) {
    if let Some((at, _)) = st.sa.poll_timeout() {
        st.now = st.now.max(at);
        st.sa.handle_timeout(st.now);
    }
}

/// Encode payloads as an inner chain: (type of the first, bytes).
pub(crate) fn chain(payloads: &[Payload]) -> (u8, Vec<u8>) {
    let mut out = Vec::new();
    let first = wire::encode_chain(payloads, &mut out);
    (first, out)
}

/// Scenario (2 bytes, [`Scenario`]), then up to 32 messages, each:
/// `ctrl, first payload type, chunk` (the payload chain), and more as `ctrl` says:
/// - ctrl bits 0-1: 0 a response to the initiator's last request; 1 a request from the gateway with the
///   message ID the initiator expects, exchange by bits 2-3 (INFORMATIONAL, CREATE_CHILD_SA, IKE_AUTH, or the
///   byte after the chunk); 2 the chunk is a whole datagram (no first payload type is read), or with bit 2 the
///   answer to the initiator's last FetchRevocation (with bit 3 a chunk for the CRLs, with bit 4 a chunk for the
///   OCSP responder; none of the other bits apply); 3 a message with an exchange byte, a flags byte and a message ID
///   (u32) from the input, after the chunk;
/// - bit 4: SKF fragments (fragment byte after the rest: bits 0-1 number of fragments - 1, bit 2 numbers and
///   totals from the input, bit 3 reversed order, bit 4 the first fragment twice);
/// - bit 5: message ID off by the next byte (signed);
/// - bit 6: unencrypted (the chain goes in the clear; always so before the keys exist);
/// - bit 7: first let the initiator's next timer fire.
pub fn ike_sa(data: &[u8]) {
    let mut input = Input::new(data);
    let s = Scenario::read(&mut input);
    let mut st = setup(&s);
    for _ in 0..MAX_MESSAGES {
        if input.is_empty() {
            break;
        }
        let ctrl = input.u8();
        if ctrl & 0x80 != 0 {
            fire_timer(&mut st);
            drain(&mut st.sa, &mut st.tracker);
        }
        if ctrl & 3 == 2 {
            if ctrl & 4 != 0 {
                // The driver's answers to FetchRevocation.
                let crl = (ctrl & 8 != 0).then(|| input.chunk());
                let ocsp = (ctrl & 16 != 0).then(|| input.chunk());
                answer_revocation(&mut st.sa, &mut st.tracker, st.now, crl, ocsp);
            } else {
                let raw = input.chunk();
                st.sa.handle_datagram(st.now, raw);
                drain(&mut st.sa, &mut st.tracker);
            }
            continue;
        }
        let first = input.u8();
        let body = input.chunk();
        let (mut h, response) = match ctrl & 3 {
            0 => {
                let (exchange, id) = st.tracker.last_request.unwrap_or((ExchangeType::IKE_SA_INIT, 0));
                (header(st.sa.spi_i(), 0, exchange, true, id), true)
            }
            1 => {
                let exchange = match (ctrl >> 2) & 3 {
                    0 => ExchangeType::INFORMATIONAL,
                    1 => ExchangeType::CREATE_CHILD_SA,
                    2 => ExchangeType::IKE_AUTH,
                    _ => ExchangeType(input.u8()),
                };
                (header(st.sa.spi_i(), 0, exchange, false, st.tracker.next_id), false)
            }
            _ => {
                let exchange = ExchangeType(input.u8());
                let f = input.u8();
                let id = input.u32();
                let flags = Flags { initiator: f & 8 != 0, version: f & 16 != 0, response: f & 32 != 0 };
                let mut h = header(st.sa.spi_i(), 0, exchange, false, id);
                h.flags = flags;
                (h, flags.response)
            }
        };
        let _ = response;
        h.spi_r = st.gw.as_ref().map_or(0x1122_3344_5566_7788, |g| g.spi_r);
        if let Some(g) = &st.gw {
            h.spi_i = g.spi_i;
        }
        let fragments = if ctrl & 0x10 != 0 { Some(input.u8()) } else { None };
        if ctrl & 0x20 != 0 {
            let off = input.u8() as i8;
            h.message_id = h.message_id.wrapping_add_signed(i32::from(off));
        }
        let datagrams = match (&mut st.gw, ctrl & 0x40 != 0) {
            (Some(gw), false) => match fragments {
                None => vec![gw.seal(&h, first, body)],
                Some(f) => fragment(gw, &h, first, body, f, &mut input),
            },
            _ => vec![plain_message(&h, first, body)],
        };
        for d in datagrams {
            st.sa.handle_datagram(st.now, &d);
            drain(&mut st.sa, &mut st.tracker);
        }
    }
    st.sa.close(st.now);
    drain(&mut st.sa, &mut st.tracker);
    let _ = st.start;
}

/// Split `body` into fragments as the fragment byte says and protect each.
fn fragment(gw: &mut Gateway, h: &Header, first: u8, body: &[u8], f: u8, input: &mut Input<'_>) -> Vec<Vec<u8>> {
    let n = usize::from(f & 3) + 1;
    let size = body.len().div_ceil(n).max(1);
    let mut parts: Vec<(u16, u16, &[u8])> = Vec::with_capacity(n);
    for i in 0..n {
        let part = body.get(i * size..((i + 1) * size).min(body.len())).unwrap_or_default();
        let (number, total) =
            if f & 4 != 0 { (u16::from(input.u8()), u16::from(input.u8())) } else { (i as u16 + 1, n as u16) };
        parts.push((number, total, part));
    }
    if f & 8 != 0 {
        parts.reverse();
    }
    if f & 16 != 0 {
        if let Some(&p) = parts.first() {
            parts.insert(0, p);
        }
    }
    gw.seal_fragments(h, first, &parts)
}
