//! A scripted IKEv2 responder (RFC 7296 §1.2, §2.14, §2.15, §2.17) built from our own wire and crypto modules,
//! for driving [`crate::ike::IkeSa`] in tests. It is deliberately small: one IKE SA, one Child SA, PSK only.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use zeroize::Zeroizing;

use crate::crypto::{self, ChildKeys, Encr, Group, IkeKeys, Integ, KeyExchange, Prf};
use crate::esp::EspParams;
use crate::ike::child::ChildSa;
use crate::ike::proposal::{EspProposal, EspSuite, IkeProposal, IkeSuite};
use crate::ike::ts::parse_cidr;
use crate::wire::{
    self, cfg_attr, AuthMethod, AuthPayload, CfgType, ConfigAttribute, ConfigPayload, Delete, ExchangeType, Header,
    IdType, Identification, KePayload, Message, Notify, NotifyType, Payload, ProtocolId, TrafficSelector, Transform,
    TransformType, TsAddresses,
};

/// The NAT-T port (RFC 3948).
pub const NATT_PORT: u16 = 4500;
/// The public address of a simulated NAT: what the responder hashes instead of a real address when it behaves as one.
pub const NAT_PUBLIC: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 77)), 61_500);

/// The knobs of the scripted responder.
#[derive(Debug, Clone)]
pub struct ResponderConfig {
    /// The IKE proposals it accepts; it picks the first of the initiator's it supports, transform by transform in
    /// the initiator's order (as strongSwan does), preferring the group of the initiator's KE payload.
    pub ike_proposals: Vec<IkeProposal>,
    /// The ESP proposals it accepts, chosen the same way.
    pub esp_proposals: Vec<EspProposal>,
    /// Answer INVALID_KE_PAYLOAD with this group unless the initiator's KE payload uses it (§1.2, §2.7).
    pub required_group: Option<Group>,
    /// Demand a COOKIE before creating any state (§2.6).
    pub cookie: bool,
    /// The PSK it verifies the initiator's AUTH with; AUTHENTICATION_FAILED when it does not verify (§2.15).
    pub psk: Vec<u8>,
    /// The PSK its own AUTH is computed with, if not `psk` (to make the initiator's verification fail).
    pub sign_psk: Option<Vec<u8>>,
    /// Its identity (IDr).
    pub id: Identification,
    /// The virtual IP handed out in a CFG_REPLY (§3.15) when the initiator asks for one.
    pub vip: Option<Ipv4Addr>,
    /// DNS servers handed out when asked.
    pub dns: Vec<Ipv4Addr>,
    /// Its policy for the initiator's side: the TSi it narrows to; `None` means the VIP as /32 if one was assigned,
    /// else whatever was proposed (§2.9).
    pub ts_i: Option<Vec<TrafficSelector>>,
    /// Its policy for its own side: the TSr it narrows to.
    pub ts_r: Vec<TrafficSelector>,
    /// Answer with exactly these (TSi, TSr), ignoring what was proposed (a misbehaving gateway).
    pub ts_override: Option<(Vec<TrafficSelector>, Vec<TrafficSelector>)>,
    /// Answer IKE_AUTH with IDr and AUTH but this error notify instead of the Child SA (§1.2, §2.21.2).
    pub child_error: Option<NotifyType>,
    /// Behave as if a NAT sat between the peers: the NAT_DETECTION_DESTINATION_IP hash covers an address that is
    /// not the initiator's, so it must float to port 4500 (§2.23).
    pub nat: bool,
    /// Behave as if the gateway sat behind a NAT: its NAT_DETECTION_SOURCE_IP covers another address (§2.23).
    pub nat_gateway: bool,
    /// Never answer anything.
    pub silent: bool,
    /// Send NAT_DETECTION_*_IP notifies in IKE_SA_INIT (§2.23); without them it does not support NAT traversal.
    pub nat_detection: bool,
    /// Announce IKEV2_FRAGMENTATION_SUPPORTED in IKE_SA_INIT (RFC 7383 §2.3); fragmentation is used when the
    /// initiator announced it too.
    pub fragmentation: bool,
    /// The largest IP datagram it sends once fragmentation is negotiated (RFC 7383 §2.5.1): larger encrypted
    /// messages leave as SKF fragments that fit (20 + 8 bytes of IPv4 and UDP, and the non-ESP marker, included).
    pub fragment_mtu: u16,
    /// Split every fragmented message into exactly this many fragments instead (sizes ignored).
    pub fragment_count: Option<u16>,
    /// Misbehave: use SKF fragments as if fragmentation had been negotiated, even when it was not.
    pub fragment_always: bool,
    /// Answer a retransmitted request by fragmenting (and encrypting) the cached response anew with this MTU,
    /// as a peer lowering its fragment size after losses would (RFC 7383 §2.5.2).
    pub refragment_mtu: Option<u16>,
    /// Pad the inner payloads of its IKE_AUTH response with Vendor ID payloads to exactly this many bytes, so
    /// that the response needs fragments.
    pub auth_response_len: Option<usize>,
    /// Seeds its SPIs, nonces, key exchange and IVs.
    pub seed: [u8; 32],
    /// Authenticate with this certificate (DER) and key (RFC 7427 signature) instead of the PSK.
    pub cert: Option<ResponderCert>,
    /// Answer IKE_SA_INIT with only REDIRECT to this gateway (RFC 5685 §3), with `redirect_nonce` as its nonce
    /// data if set, else the initiator's Ni.
    pub redirect_init: Option<crate::ike::GatewayIdentity>,
    pub redirect_nonce: Option<Vec<u8>>,
    /// Add REDIRECT to this gateway to the IKE_AUTH response (RFC 5685 §6).
    pub redirect_auth: Option<crate::ike::GatewayIdentity>,
    /// Add AUTH_LIFETIME with this many seconds to the IKE_AUTH response (RFC 4478).
    pub auth_lifetime: Option<u32>,
    /// Announce MOBIKE_SUPPORTED in the IKE_AUTH response (RFC 4555 §3.3).
    pub mobike: bool,
    /// It implements RFC 9370 and RFC 9242 (additional key exchanges in IKE_INTERMEDIATE and
    /// IKE_FOLLOWUP_KE); without, it skips proposals with ADDKE transforms (unknown transform types, RFC 7296
    /// §3.3.6) and does not announce INTERMEDIATE_EXCHANGE_SUPPORTED.
    pub addke: bool,
    /// Misbehave in IKE_INTERMEDIATE: answer with a KE of this group number, without KE, or with
    /// INVALID_KE_PAYLOAD.
    pub intermediate_ke_group: Option<u16>,
    pub intermediate_omit_ke: bool,
    pub intermediate_invalid_ke: bool,
    /// Misbehave: compute its own AUTH over an IntAuth that is not the one of the exchanges (RFC 9242 §3.3).
    pub tamper_int_auth: bool,
    /// Its postquantum preshared key (RFC 8784): PPK_ID and secret; and whether it requires one.
    pub ppk: Option<(Vec<u8>, Vec<u8>)>,
    pub ppk_required: bool,
}

/// The responder's certificate (DER) and its signer.
#[derive(Clone)]
pub struct ResponderCert(pub Vec<u8>, pub std::sync::Arc<dyn crate::crypto::Signer>);

impl std::fmt::Debug for ResponderCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ResponderCert({} bytes)", self.0.len())
    }
}

impl Default for ResponderConfig {
    fn default() -> Self {
        ResponderConfig {
            ike_proposals: IkeProposal::defaults(),
            esp_proposals: EspProposal::defaults(),
            required_group: None,
            cookie: false,
            psk: b"simulated pre-shared key".to_vec(),
            sign_psk: None,
            id: Identification { id_type: IdType::ID_FQDN, data: b"gw.example.net".to_vec() },
            vip: Some(Ipv4Addr::new(100, 64, 0, 7)),
            dns: vec![Ipv4Addr::new(198, 51, 100, 53)],
            ts_i: None,
            ts_r: vec![cidr_ts("198.51.100.0/24")],
            ts_override: None,
            child_error: None,
            nat: false,
            nat_gateway: false,
            silent: false,
            nat_detection: true,
            fragmentation: false,
            fragment_mtu: 1280,
            fragment_count: None,
            fragment_always: false,
            refragment_mtu: None,
            auth_response_len: None,
            seed: [0x52; 32],
            cert: None,
            redirect_init: None,
            redirect_nonce: None,
            redirect_auth: None,
            auth_lifetime: None,
            mobike: false,
            addke: true,
            intermediate_ke_group: None,
            intermediate_omit_ke: false,
            intermediate_invalid_ke: false,
            tamper_int_auth: false,
            ppk: None,
            ppk_required: false,
        }
    }
}

/// The selector covering `cidr`, any protocol and port.
pub fn cidr_ts(cidr: &str) -> TrafficSelector {
    match parse_cidr(cidr) {
        Ok(c) => c.to_ts(),
        Err(e) => panic!("bad CIDR in test: {e}"),
    }
}

/// A datagram the responder wants sent.
#[derive(Debug, Clone)]
pub struct ResponderTransmit {
    /// Its local port: 500, or 4500 with the non-ESP marker in front of the payload.
    pub from_port: u16,
    pub dst: SocketAddr,
    /// The UDP payload.
    pub payload: Vec<u8>,
}

/// What one NAT detection (§2.23) told the responder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatCheck {
    /// NAT_DETECTION_SOURCE_IP does not hash the address the message came from.
    pub peer_behind_nat: bool,
    /// NAT_DETECTION_DESTINATION_IP does not hash the address and port it came to (libreswan then believes
    /// itself behind a NAT and ignores MOBIKE address updates).
    pub behind_nat: bool,
}

/// One IKE message the responder received, as decoded.
#[derive(Debug, Clone)]
pub struct Received {
    /// The local port it arrived on.
    pub port: u16,
    pub header: Header,
}

/// The responder's half of the IKE SA.
struct Sa {
    spi_i: u64,
    spi_r: u64,
    suite: IkeSuite,
    keys: IkeKeys,
    ni: Vec<u8>,
    nr: Vec<u8>,
    init_request: Vec<u8>,
    init_response: Vec<u8>,
    /// Where the initiator talks from, and which of our ports it uses.
    peer: SocketAddr,
    port: u16,
    /// Next request ID expected from the initiator and our cached answer to the previous one (§2.2).
    expect_id: u32,
    last_response: Option<CachedResponse>,
    /// Our own requests: next ID, and the outstanding one (its datagrams, for retransmission).
    next_id: u32,
    last_request: Option<(u32, Vec<Vec<u8>>)>,
    established: bool,
    /// Deleted, or authentication failed: nothing more is processed.
    dead: bool,
    /// Both sides announced IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383 §2.3).
    fragmentation: bool,
    /// The SKF fragments of the message being reassembled (RFC 7383 §2.6).
    reassembly: Option<Reassembly>,
    /// Additional key exchanges still to run in IKE_INTERMEDIATE (RFC 9370 §2.2.1).
    addke_pending: Vec<Group>,
    /// IntAuth_i and IntAuth_r so far (RFC 9242 §3.3.1), and the message ID of the first IKE_AUTH request.
    int_auth: Option<(Vec<u8>, Vec<u8>)>,
    auth_mid: u32,
    /// Keys to switch to once the current response is out (after an additional key exchange).
    next_keys: Option<IkeKeys>,
    /// The initiator announced USE_PPK and we answered it (RFC 8784 §3).
    use_ppk: bool,
    /// A rekey waiting for its IKE_FOLLOWUP_KE exchanges (RFC 9370 §2.2.4).
    followup: Option<RespFollowup>,
}

/// A rekey between CREATE_CHILD_SA and its last IKE_FOLLOWUP_KE, from the responder's side.
struct RespFollowup {
    link: Vec<u8>,
    pending: Vec<Group>,
    ni: Vec<u8>,
    nr: Vec<u8>,
    shared: Zeroizing<Vec<u8>>,
    additional: Zeroizing<Vec<u8>>,
    target: RespTarget,
}

enum RespTarget {
    Child { spi_in: u32, spi_out: u32, suite: EspSuite, ts_i: Vec<TrafficSelector>, ts_r: Vec<TrafficSelector> },
    Ike { spi_i: u64, spi_r: u64, suite: IkeSuite },
}

/// Our answer to the last request: its datagrams (one, or its fragments), and what it said, for re-fragmenting.
struct CachedResponse {
    message_id: u32,
    exchange: ExchangeType,
    payloads: Vec<Payload>,
    datagrams: Vec<Vec<u8>>,
}

/// Fragments of one message, keyed by message ID and the response flag (RFC 7383 §2.6). Only authenticated
/// fragments get here; the simulator trusts its peer not to flood it.
struct Reassembly {
    message_id: u32,
    response: bool,
    total: u16,
    first_inner: u8,
    parts: Vec<Option<Zeroizing<Vec<u8>>>>,
}

/// An encrypted message opened.
enum Opened {
    /// The inner payloads; with the number of fragments when it came as SKF fragments.
    Whole(Vec<Payload>, Option<u16>),
    /// A fragment was stored; the message is not complete yet.
    Stored,
}

impl Sa {
    /// Authenticate and decrypt an SK message, or collect an SKF fragment (RFC 7383 §2.6).
    fn open(&mut self, raw: &[u8], msg: &Message) -> Result<Opened, String> {
        let cipher = self.keys.inbound(false);
        match msg.payloads.last() {
            Some(Payload::Sk(sk)) => {
                let plain = cipher.open(raw, sk.offset + 4).map_err(|e| format!("decryption: {e}"))?;
                let payloads =
                    wire::decode_chain(sk.first_inner, &plain, 0).map_err(|e| format!("inner payloads: {e}"))?;
                Ok(Opened::Whole(payloads, None))
            }
            Some(Payload::Skf(f)) => {
                if !self.fragmentation {
                    return Err("SKF fragment although fragmentation was not negotiated".into());
                }
                let plain = cipher.open(raw, f.offset + 8).map_err(|e| format!("fragment decryption: {e}"))?;
                let (message_id, response) = (msg.header.message_id, msg.header.flags.response);
                let r = match &mut self.reassembly {
                    Some(r) if r.message_id == message_id && r.response == response => r,
                    slot => slot.insert(Reassembly { message_id, response, total: 0, first_inner: 0, parts: vec![] }),
                };
                if f.total_fragments < r.total {
                    return Ok(Opened::Stored); // an older transmission with fewer fragments
                }
                if f.total_fragments > r.total {
                    r.total = f.total_fragments;
                    r.parts = (0..f.total_fragments).map(|_| None).collect();
                }
                let slot = r.parts.get_mut(usize::from(f.fragment_number) - 1).ok_or("fragment number out of range")?;
                if slot.is_none() {
                    *slot = Some(plain);
                    if f.fragment_number == 1 {
                        r.first_inner = f.first_inner;
                    }
                }
                if r.parts.iter().any(Option::is_none) {
                    return Ok(Opened::Stored);
                }
                let whole: Vec<u8> = r.parts.iter().flatten().flat_map(|p| p.iter().copied()).collect();
                let (first, total) = (r.first_inner, r.total);
                self.reassembly = None;
                let payloads =
                    wire::decode_chain(first, &whole, 0).map_err(|e| format!("reassembled payloads: {e}"))?;
                Ok(Opened::Whole(payloads, Some(total)))
            }
            _ => Err("not encrypted".into()),
        }
    }

    /// Protect a message (§3.14): one SK message, or SKF fragments (RFC 7383 §2.5) when fragmentation is in use
    /// (or forced) and the message does not fit `mtu`, or `count` fragments are asked for.
    fn protect(
        &self,
        rng: &mut ChaCha20Rng,
        config: &ResponderConfig,
        mtu: u16,
        header: Header,
        payloads: &[Payload],
    ) -> Vec<Vec<u8>> {
        let cipher = self.keys.outbound(false);
        let mut inner = Vec::new();
        let first = wire::encode_chain(payloads, &mut inner);
        let fragment = self.fragmentation || config.fragment_always;
        let marker = if self.port == NATT_PORT { 4 } else { 0 };
        let overhead = wire::HEADER_LEN + 8;
        let limit = usize::from(mtu).saturating_sub(28 + marker).max(overhead + cipher.sealed_len(1));
        let parts: Vec<&[u8]> = match config.fragment_count.map(usize::from) {
            Some(n) if fragment && n > 0 && inner.len() >= n => {
                let (base, extra) = (inner.len() / n, inner.len() % n);
                let mut parts = Vec::with_capacity(n);
                let mut rest = inner.as_slice();
                for i in 0..n {
                    let (part, tail) = rest.split_at(base + usize::from(i < extra));
                    parts.push(part);
                    rest = tail;
                }
                parts
            }
            _ if fragment && wire::HEADER_LEN + 4 + cipher.sealed_len(inner.len()) > limit => {
                let mut chunk = limit - overhead;
                while chunk > 1 && overhead + cipher.sealed_len(chunk) > limit {
                    chunk -= 1;
                }
                inner.chunks(chunk).collect()
            }
            _ => {
                let mut msg = wire::encode_sk_prefix(&header, first, cipher.sealed_len(inner.len()));
                if let Err(e) = cipher.seal(&mut msg, &inner, rng) {
                    panic!("responder encryption failed: {e}");
                }
                return vec![msg];
            }
        };
        let total = match u16::try_from(parts.len()) {
            Ok(t) => t,
            Err(_) => panic!("too many fragments for the simulator: {}", parts.len()),
        };
        let mut out = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let first_inner = if i == 0 { first } else { 0 };
            out.push(self.seal_fragment(rng, header, first_inner, i as u16 + 1, total, part));
        }
        out
    }

    /// One SKF fragment with our keys (RFC 7383 §2.5).
    fn seal_fragment(
        &self,
        rng: &mut ChaCha20Rng,
        header: Header,
        first_inner: u8,
        number: u16,
        total: u16,
        plaintext: &[u8],
    ) -> Vec<u8> {
        let cipher = self.keys.outbound(false);
        let mut msg = wire::encode_skf_prefix(&header, first_inner, number, total, cipher.sealed_len(plaintext.len()));
        if let Err(e) = cipher.seal(&mut msg, plaintext, rng) {
            panic!("responder encryption failed: {e}");
        }
        msg
    }
}

/// The responder's IDr and AUTH (§2.15), with its CERT when it has one: RealMessage2 | Ni | prf(SK_pr, IDr')
/// signed (RFC 7427) with its certificate's key, or keyed with `key` (default: its PSK, or `sign_psk`).
fn identity_payloads(sa: &Sa, config: &ResponderConfig, key: Option<&[u8]>) -> Vec<Payload> {
    let prf = sa.suite.prf;
    let sk_pr = sa_sk_p(sa, config, false);
    let mut int_auth = int_auth_octets(sa);
    if config.tamper_int_auth {
        if let Some(b) = int_auth.first_mut() {
            *b ^= 1;
        }
    }
    match (&config.cert, key) {
        (Some(ResponderCert(cert, signer)), None) => {
            let mut octets = sa.init_response.clone();
            octets.extend_from_slice(&sa.ni);
            octets.extend_from_slice(&prf.prf(&sk_pr, &config.id.auth_octets()));
            octets.extend_from_slice(&int_auth);
            let scheme = signer.schemes()[0];
            let data = crypto::sign_auth(signer.as_ref(), AuthMethod::DIGITAL_SIGNATURE, scheme, &octets)
                .expect("responder signs");
            vec![
                Payload::IdR(config.id.clone()),
                Payload::Cert(crate::wire::CertPayload {
                    encoding: crate::wire::cert_encoding::X509_SIGNATURE,
                    data: cert.clone(),
                }),
                Payload::Auth(AuthPayload { method: AuthMethod::DIGITAL_SIGNATURE, data }),
            ]
        }
        _ => {
            let psk = key.unwrap_or(config.sign_psk.as_ref().unwrap_or(&config.psk));
            let my_auth = psk_auth(prf, psk, &sk_pr, &sa.init_response, &sa.ni, &config.id, &int_auth);
            vec![
                Payload::IdR(config.id.clone()),
                Payload::Auth(AuthPayload { method: AuthMethod::SHARED_KEY_MIC, data: my_auth }),
            ]
        }
    }
}

/// Vendor ID payloads (§3.12) that make `reply` exactly `len` bytes long when encoded.
fn pad_to(reply: &mut Vec<Payload>, len: usize) {
    let mut encoded = Vec::new();
    wire::encode_chain(reply, &mut encoded);
    let extra =
        len.checked_sub(encoded.len()).unwrap_or_else(|| panic!("the reply is already {} bytes", encoded.len()));
    let n = extra.div_ceil(60_000);
    assert!(extra == 0 || extra >= 4 * n, "cannot pad by {extra} bytes");
    for i in 0..n {
        let size = extra / n + usize::from(i < extra % n);
        reply.push(Payload::VendorId(vec![0x56; size - 4]));
    }
}

/// The scripted responder.
pub struct Responder {
    pub config: ResponderConfig,
    addr: Ipv4Addr,
    rng: ChaCha20Rng,
    cookie_secret: [u8; 32],
    sa: Option<Sa>,
    out: VecDeque<ResponderTransmit>,
    /// Every message it received (decodable ones).
    pub received: Vec<Received>,
    /// The COOKIE values it handed out.
    pub issued_cookies: Vec<Vec<u8>>,
    /// Whether the initiator's NAT_DETECTION_SOURCE_IP mismatched (it is, or pretends to be, behind a NAT).
    pub peer_behind_nat: Option<bool>,
    /// What each NAT detection it received (IKE_SA_INIT, then INFORMATIONAL) told it.
    pub nat_checks: Vec<NatCheck>,
    /// Whether the initiator's AUTH verified.
    pub peer_auth_ok: Option<bool>,
    /// The Child SA from its side: inbound is the initiator's outbound and vice versa.
    pub child: Option<ChildSa>,
    /// The suite of the IKE SA it created.
    pub ike_suite: Option<IkeSuite>,
    /// Decrypted requests from the initiator after IKE_AUTH: (message ID, payloads).
    pub requests: Vec<(u32, Vec<Payload>)>,
    /// Decrypted responses to its own requests: (message ID, payloads, raw message).
    pub responses: Vec<(u32, Vec<Payload>, Vec<u8>)>,
    /// Things it could not process (undecodable, undecryptable, unexpected).
    pub errors: Vec<String>,
    /// Whether the initiator announced IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383 §2.3).
    pub peer_fragmentation: Option<bool>,
    /// Authenticated SKF fragments it received.
    pub fragments_received: usize,
    /// Messages it reassembled from fragments: (message ID, total fragments).
    pub reassembled: Vec<(u32, u16)>,
    /// Retransmitted requests it answered from its cache.
    pub retransmissions_answered: usize,
    /// Senders of NAT keepalives (RFC 3948 §2.3) it received on port 4500, in order.
    pub keepalives: Vec<SocketAddr>,
    /// IKE_INTERMEDIATE exchanges (RFC 9242) and IKE_FOLLOWUP_KE exchanges (RFC 9370 §2.2.4) it answered with a
    /// key exchange, and CREATE_CHILD_SA requests it answered.
    pub intermediate_exchanges: usize,
    pub followups: usize,
    pub rekeys: usize,
    /// Whether the initiator's AUTH verified with the PPK mixed in (RFC 8784).
    pub ppk_used: Option<bool>,
    /// Child SAs replaced by rekeys.
    pub old_children: Vec<ChildSa>,
    /// The IKE SA rekeyed away from (kept for its Delete), and the new one waiting for our answer to go out.
    old_sa: Option<Sa>,
    pending_sa: Option<Sa>,
}

fn transform(kind: TransformType, id: u16, key_len: Option<u16>) -> Transform {
    Transform { kind, id, key_len }
}

/// AUTH for a PSK (§2.15), written out here independently of `ike::auth`:
/// prf(prf(PSK, "Key Pad for IKEv2"), RealMessage | Nonce | prf(SK_p, IDType | RESERVED | IDData)).
/// With IKE_INTERMEDIATE exchanges the octets end with IntAuth (RFC 9242 §3.3).
fn psk_auth(
    prf: Prf,
    psk: &[u8],
    sk_p: &[u8],
    message: &[u8],
    nonce: &[u8],
    id: &Identification,
    int_auth: &[u8],
) -> Vec<u8> {
    let mut id_body = vec![id.id_type.0, 0, 0, 0];
    id_body.extend_from_slice(&id.data);
    let maced = prf.prf(sk_p, &id_body);
    let key = prf.prf(psk, b"Key Pad for IKEv2");
    prf.prf_parts(&key, &[message, nonce, &maced, int_auth]).to_vec()
}

/// IntAuth_iN | IntAuth_rN | IKE_AUTH_MID (RFC 9242 §3.3.2), empty without IKE_INTERMEDIATE.
fn int_auth_octets(sa: &Sa) -> Vec<u8> {
    match &sa.int_auth {
        Some((i, r)) => [i.as_slice(), r, &sa.auth_mid.to_be_bytes()].concat(),
        None => Vec::new(),
    }
}

/// SK_pi (`initiator`) or SK_pr as the AUTH payloads use them: with the PPK in use prf+(PPK, SK_p) (RFC 8784 §3).
fn sa_sk_p(sa: &Sa, config: &ResponderConfig, initiator: bool) -> Vec<u8> {
    let k = if initiator { &sa.keys.sk_pi } else { &sa.keys.sk_pr };
    match (&config.ppk, sa.use_ppk) {
        (Some((_, secret)), true) => sa.suite.prf.prf_plus(secret, k, k.len()).to_vec(),
        _ => k.to_vec(),
    }
}

/// One step of IntAuth (RFC 9242 §3.3.1): prf(SK_p, IntAuth(prev) | A | P), A being the IKE header and the
/// Encrypted payload header with lengths that count the plaintext only, P the inner payloads; written out here
/// independently of `ike::sa`.
fn int_auth_step(prf: Prf, sk_p: &[u8], prev: &[u8], header: Header, payloads: &[Payload]) -> Vec<u8> {
    let mut plain = Vec::new();
    let first = wire::encode_chain(payloads, &mut plain);
    let mut h = header;
    h.next_payload = wire::payload_type::SK;
    h.length = (wire::HEADER_LEN + 4 + plain.len()) as u32;
    let mut a = Vec::new();
    h.encode(&mut a);
    a.push(first);
    a.push(0);
    a.extend_from_slice(&((4 + plain.len()) as u16).to_be_bytes());
    prf.prf_parts(sk_p, &[prev, &a, &plain]).to_vec()
}

/// The groups of the ADDKE transforms in a chosen proposal, in order (RFC 9370 §2.2.2).
fn addke_of(chosen: &wire::Proposal) -> crate::ike::proposal::AddKe {
    let mut out = [None; 7];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = of_kind(chosen, TransformType::addke(i + 1)).find_map(|t| Group::from_id(t.id));
    }
    out
}

/// The responder's choice for ADDKE1..7 (RFC 9370 §2.2.1): per type the initiator offered, the first method we
/// accept (NONE if offered and we do not need that type); a type we require but the initiator did not offer
/// fails. Without RFC 9370 support any ADDKE transform makes the proposal unacceptable.
fn choose_addke(
    p: &wire::Proposal,
    ours: &crate::ike::proposal::AddKeOffer,
    supported: bool,
) -> Option<Vec<Transform>> {
    let mut out = Vec::new();
    for (i, ours) in ours.iter().enumerate() {
        let kind = TransformType::addke(i + 1);
        let theirs: Vec<u16> = of_kind(p, kind).map(|t| t.id).collect();
        if theirs.is_empty() {
            if !ours.is_empty() && !ours.contains(&None) {
                return None;
            }
            continue;
        }
        if !supported {
            return None;
        }
        let pick = theirs.iter().copied().find(|&id| {
            if id == wire::dh::NONE {
                ours.is_empty() || ours.contains(&None)
            } else {
                Group::from_id(id).is_some_and(|g| ours.contains(&Some(g)))
            }
        })?;
        out.push(transform(kind, pick, None));
    }
    Some(out)
}

/// Intersection of two selectors (§2.9), if any.
fn intersect(a: &TrafficSelector, b: &TrafficSelector) -> Option<TrafficSelector> {
    let ip_protocol = match (a.ip_protocol, b.ip_protocol) {
        (0, p) | (p, 0) => p,
        (x, y) if x == y => x,
        _ => return None,
    };
    let start_port = a.start_port.max(b.start_port);
    let end_port = a.end_port.min(b.end_port);
    if start_port > end_port {
        return None;
    }
    let addresses = match (&a.addresses, &b.addresses) {
        (TsAddresses::V4 { start: s1, end: e1 }, TsAddresses::V4 { start: s2, end: e2 }) => {
            let (start, end) = ((*s1).max(*s2), (*e1).min(*e2));
            (start <= end).then_some(TsAddresses::V4 { start, end })?
        }
        (TsAddresses::V6 { start: s1, end: e1 }, TsAddresses::V6 { start: s2, end: e2 }) => {
            let (start, end) = ((*s1).max(*s2), (*e1).min(*e2));
            (start <= end).then_some(TsAddresses::V6 { start, end })?
        }
        _ => return None,
    };
    Some(TrafficSelector { ip_protocol, start_port, end_port, addresses })
}

/// Narrow the proposed selectors to a policy: every non-empty pairwise intersection.
fn narrow(proposed: &[TrafficSelector], policy: &[TrafficSelector]) -> Vec<TrafficSelector> {
    let mut out: Vec<TrafficSelector> = Vec::new();
    for p in proposed {
        for q in policy {
            if let Some(x) = intersect(p, q) {
                if !out.contains(&x) {
                    out.push(x);
                }
            }
        }
    }
    out
}

fn of_kind(p: &wire::Proposal, kind: TransformType) -> impl Iterator<Item = &Transform> {
    p.transforms.iter().filter(move |t| t.kind == kind)
}

/// The responder's IKE proposal choice: the chosen proposal as sent back and the suite.
fn choose_ike(
    offered: &[wire::Proposal],
    accepted: &[IkeProposal],
    ke_group: u16,
    required: Option<Group>,
    addke_supported: bool,
) -> Option<(wire::Proposal, IkeSuite)> {
    for p in offered.iter().filter(|p| p.protocol == ProtocolId::IKE) {
        for a in accepted {
            let Some(encr) = of_kind(p, TransformType::ENCR)
                .filter_map(|t| Encr::from_transform(t.id, t.key_len))
                .find(|e| a.encr.contains(e))
            else {
                continue;
            };
            let Some(prf) =
                of_kind(p, TransformType::PRF).filter_map(|t| Prf::from_id(t.id)).find(|x| a.prf.contains(x))
            else {
                continue;
            };
            let integ = if encr.is_aead() {
                None
            } else {
                match of_kind(p, TransformType::INTEG)
                    .filter_map(|t| Integ::from_id(t.id))
                    .find(|i| a.integ.contains(i))
                {
                    Some(i) => Some(i),
                    None => continue,
                }
            };
            let groups: Vec<Group> = of_kind(p, TransformType::DH)
                .filter_map(|t| Group::from_id(t.id))
                .filter(|g| a.groups.contains(g) && required.is_none_or(|r| r == *g))
                .collect();
            let Some(group) = groups.iter().copied().find(|g| g.id() == ke_group).or(groups.first().copied()) else {
                continue;
            };
            let Some(addke) = choose_addke(p, &a.addke, addke_supported) else { continue };
            let mut transforms = vec![transform(TransformType::ENCR, encr.id(), encr.key_len_bits())];
            transforms.push(transform(TransformType::PRF, prf.id(), None));
            if let Some(i) = integ {
                transforms.push(transform(TransformType::INTEG, i.id(), None));
            }
            transforms.push(transform(TransformType::DH, group.id(), None));
            transforms.extend(addke);
            let chosen = wire::Proposal { number: p.number, protocol: ProtocolId::IKE, spi: vec![], transforms };
            let addke = addke_of(&chosen);
            return Some((chosen, IkeSuite { encr, integ, prf, group, addke }));
        }
    }
    None
}

/// The responder's ESP proposal choice: the chosen proposal (without our SPI yet), the initiator's SPI, the suite.
fn choose_esp(offered: &[wire::Proposal], accepted: &[EspProposal]) -> Option<(wire::Proposal, u32, EspSuite)> {
    choose_esp_pfs(offered, accepted, None, false)
}

/// As [`choose_esp`], for a CREATE_CHILD_SA: with the initiator's KE group `ke_group` (PFS) the proposal's DH
/// group and additional key exchanges (RFC 9370 §2.2.4) are chosen too.
fn choose_esp_pfs(
    offered: &[wire::Proposal],
    accepted: &[EspProposal],
    ke_group: Option<u16>,
    addke_supported: bool,
) -> Option<(wire::Proposal, u32, EspSuite)> {
    for p in offered.iter().filter(|p| p.protocol == ProtocolId::ESP) {
        let Ok(spi) = <[u8; 4]>::try_from(p.spi.as_slice()) else { continue };
        for a in accepted {
            let Some(encr) = of_kind(p, TransformType::ENCR)
                .filter_map(|t| Encr::from_transform(t.id, t.key_len))
                .find(|e| a.encr.contains(e))
            else {
                continue;
            };
            let integ = if encr.is_aead() {
                None
            } else {
                match of_kind(p, TransformType::INTEG)
                    .filter_map(|t| Integ::from_id(t.id))
                    .find(|i| a.integ.contains(i))
                {
                    Some(i) => Some(i),
                    None => continue,
                }
            };
            let esns: Vec<u16> = of_kind(p, TransformType::ESN).map(|t| t.id).collect();
            let esn = if esns.is_empty() {
                None
            } else {
                match esns.iter().copied().find(|id| a.esn.contains(&(*id == wire::esn::YES))) {
                    Some(id) => Some(id),
                    None => continue,
                }
            };
            let groups: Vec<Group> = of_kind(p, TransformType::DH)
                .filter_map(|t| Group::from_id(t.id))
                .filter(|g| a.groups.contains(g))
                .collect();
            let group = match ke_group {
                None => None,
                Some(k) => match groups.iter().copied().find(|g| g.id() == k).or(groups.first().copied()) {
                    Some(g) => Some(g),
                    None => continue,
                },
            };
            let addke = match group {
                Some(_) => match choose_addke(p, &a.addke, addke_supported) {
                    Some(t) => t,
                    None => continue,
                },
                None => Vec::new(),
            };
            let mut transforms = vec![transform(TransformType::ENCR, encr.id(), encr.key_len_bits())];
            if let Some(i) = integ {
                transforms.push(transform(TransformType::INTEG, i.id(), None));
            }
            if let Some(g) = group {
                transforms.push(transform(TransformType::DH, g.id(), None));
            }
            if let Some(e) = esn {
                transforms.push(transform(TransformType::ESN, e, None));
            }
            transforms.extend(addke);
            let chosen = wire::Proposal { number: p.number, protocol: ProtocolId::ESP, spi: vec![], transforms };
            let addke = addke_of(&chosen);
            let suite = EspSuite { encr, integ, group, esn: esn == Some(wire::esn::YES), addke };
            return Some((chosen, u32::from_be_bytes(spi), suite));
        }
    }
    None
}

impl Responder {
    /// A responder listening on `addr` (ports 500 and 4500).
    pub fn new(config: ResponderConfig, addr: Ipv4Addr) -> Responder {
        let mut rng = ChaCha20Rng::from_seed(config.seed);
        let mut cookie_secret = [0u8; 32];
        rng.fill_bytes(&mut cookie_secret);
        Responder {
            config,
            addr,
            rng,
            cookie_secret,
            sa: None,
            out: VecDeque::new(),
            received: Vec::new(),
            issued_cookies: Vec::new(),
            peer_behind_nat: None,
            nat_checks: Vec::new(),
            peer_auth_ok: None,
            child: None,
            ike_suite: None,
            requests: Vec::new(),
            responses: Vec::new(),
            errors: Vec::new(),
            peer_fragmentation: None,
            fragments_received: 0,
            reassembled: Vec::new(),
            retransmissions_answered: 0,
            keepalives: Vec::new(),
            intermediate_exchanges: 0,
            followups: 0,
            rekeys: 0,
            ppk_used: None,
            old_children: Vec::new(),
            old_sa: None,
            pending_sa: None,
        }
    }

    /// Its IKE address (port 500).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.addr), 500)
    }

    /// Whether IKE_AUTH completed with a Child SA or without one (a child error), and the SA still lives.
    pub fn established(&self) -> bool {
        self.sa.as_ref().is_some_and(|s| s.established && !s.dead)
    }

    /// The IKE SA was deleted (by either side) or failed authentication.
    pub fn sa_dead(&self) -> bool {
        self.sa.as_ref().is_some_and(|s| s.dead)
    }

    /// (SPIi, SPIr) of its IKE SA.
    pub fn spis(&self) -> Option<(u64, u64)> {
        self.sa.as_ref().map(|s| (s.spi_i, s.spi_r))
    }

    /// Next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<ResponderTransmit> {
        self.out.pop_front()
    }

    fn send(&mut self, from_port: u16, dst: SocketAddr, ike: Vec<u8>) {
        let payload = if from_port == NATT_PORT { [&[0u8; 4][..], &ike].concat() } else { ike };
        self.out.push_back(ResponderTransmit { from_port, dst, payload });
    }

    /// Process one IKE message (the non-ESP marker removed) that arrived from `src` on local port `port`.
    pub fn handle(&mut self, src: SocketAddr, port: u16, data: &[u8]) {
        let msg = match Message::decode(data) {
            Ok(m) => m,
            Err(e) => {
                self.errors.push(format!("undecodable message: {e}"));
                return;
            }
        };
        self.received.push(Received { port, header: msg.header });
        if self.config.silent {
            return;
        }
        let h = msg.header;
        if h.flags.response {
            self.handle_response(data, &msg);
        } else if !h.flags.initiator {
            self.errors.push("request without the initiator flag".into());
        } else if h.exchange == ExchangeType::IKE_SA_INIT {
            self.handle_init(src, port, data, &msg);
        } else {
            self.handle_request(src, port, data, &msg);
        }
    }

    fn header(spi_i: u64, spi_r: u64, exchange: ExchangeType, response: bool, message_id: u32) -> Header {
        crate::ike::sa::ike_header(spi_i, spi_r, exchange, false, response, message_id)
    }

    /// An unencrypted IKE_SA_INIT answer carrying one notify, creating no state (§1.2, §2.6).
    fn init_notify(&mut self, src: SocketAddr, port: u16, spi_i: u64, t: NotifyType, data: Vec<u8>) {
        let header = Self::header(spi_i, 0, ExchangeType::IKE_SA_INIT, true, 0);
        let bytes = Message { header, payloads: vec![Payload::Notify(Notify::new(t, data))] }.encode();
        self.send(port, src, bytes);
    }

    /// The COOKIE for this initiator: prf(secret, Ni | IPi | SPIi) as in §2.6.
    fn cookie_for(&self, src: SocketAddr, spi_i: u64, ni: &[u8]) -> Vec<u8> {
        let ip = match src.ip() {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        let mut c = Prf::HmacSha256.prf_parts(&self.cookie_secret, &[ni, &ip, &spi_i.to_be_bytes()]).to_vec();
        c.truncate(20);
        c
    }

    /// Compare the initiator's NAT detection hashes (§2.23) with the addresses of this message: `src`, and ours
    /// with the `port` it came to.
    fn check_nat(&mut self, spi_i: u64, spi_r: u64, src: SocketAddr, port: u16, payloads: &[Payload]) {
        let matches = |t: NotifyType, addr: SocketAddr| {
            let expect = crypto::nat_detection_hash(spi_i, spi_r, addr);
            payloads.iter().any(|p| matches!(p, Payload::Notify(n) if n.notify_type == t && n.data == expect))
        };
        let me = SocketAddr::new(IpAddr::V4(self.addr), port);
        self.nat_checks.push(NatCheck {
            peer_behind_nat: !matches(NotifyType::NAT_DETECTION_SOURCE_IP, src),
            behind_nat: !matches(NotifyType::NAT_DETECTION_DESTINATION_IP, me),
        });
    }

    /// The initiator's address as seen through the (simulated) NAT.
    fn seen(&self, src: SocketAddr) -> SocketAddr {
        if self.config.nat {
            NAT_PUBLIC
        } else {
            src
        }
    }

    fn handle_init(&mut self, src: SocketAddr, port: u16, raw: &[u8], msg: &Message) {
        let h = msg.header;
        if h.message_id != 0 || h.spi_r != 0 {
            self.errors.push("IKE_SA_INIT request with a responder SPI or message ID".into());
            return;
        }
        // A retransmission gets the same answer (§2.1).
        if let Some(sa) = &self.sa {
            if sa.spi_i == h.spi_i && sa.init_request == raw {
                let resp = sa.init_response.clone();
                self.send(port, src, resp);
                return;
            }
        }
        let payloads = &msg.payloads;
        let mut sa_p = None;
        let mut ke = None;
        let mut ni = None;
        let mut nat_src = Vec::new();
        for p in payloads {
            match p {
                Payload::Sa(s) => sa_p = Some(s),
                Payload::Ke(k) => ke = Some(k),
                Payload::Nonce(n) => ni = Some(n),
                Payload::Notify(n) if n.notify_type == NotifyType::NAT_DETECTION_SOURCE_IP => nat_src.push(&n.data),
                _ => {}
            }
        }
        let (Some(sa_p), Some(ke), Some(ni)) = (sa_p, ke, ni) else {
            self.errors.push("IKE_SA_INIT request lacks SA, KE or Nonce".into());
            return self.init_notify(src, port, h.spi_i, NotifyType::INVALID_SYNTAX, vec![]);
        };
        if self.config.cookie {
            let want = self.cookie_for(src, h.spi_i, ni);
            let presented = match payloads.first() {
                Some(Payload::Notify(n)) if n.notify_type == NotifyType::COOKIE => Some(&n.data),
                _ => None,
            };
            if presented != Some(&want) {
                self.issued_cookies.push(want.clone());
                return self.init_notify(src, port, h.spi_i, NotifyType::COOKIE, want);
            }
        }
        if let Some(to) = &self.config.redirect_init {
            let mut data = to.encode();
            data.extend_from_slice(self.config.redirect_nonce.as_deref().unwrap_or(ni));
            return self.init_notify(src, port, h.spi_i, NotifyType::REDIRECT, data);
        }
        if let Some(r) = self.config.required_group {
            if ke.group != r.id() {
                return self.init_notify(
                    src,
                    port,
                    h.spi_i,
                    NotifyType::INVALID_KE_PAYLOAD,
                    r.id().to_be_bytes().to_vec(),
                );
            }
        }
        let Some((chosen, suite)) =
            choose_ike(sa_p, &self.config.ike_proposals, ke.group, self.config.required_group, self.config.addke)
        else {
            return self.init_notify(src, port, h.spi_i, NotifyType::NO_PROPOSAL_CHOSEN, vec![]);
        };
        if suite.group.id() != ke.group {
            let g = suite.group.id().to_be_bytes().to_vec();
            return self.init_notify(src, port, h.spi_i, NotifyType::INVALID_KE_PAYLOAD, g);
        }
        let (ke_r, shared) = match KeyExchange::respond(suite.group, &ke.data, &mut self.rng) {
            Ok(k) => k,
            Err(e) => {
                self.errors.push(format!("bad KE from the initiator: {e}"));
                return self.init_notify(src, port, h.spi_i, NotifyType::INVALID_SYNTAX, vec![]);
            }
        };
        let has = |t: NotifyType| payloads.iter().any(|p| matches!(p, Payload::Notify(n) if n.notify_type == t));
        let addke_pending = crate::ike::proposal::addke_groups(&suite.addke);
        let intermediate = self.config.addke && has(NotifyType::INTERMEDIATE_EXCHANGE_SUPPORTED);
        if !addke_pending.is_empty() && !intermediate {
            self.errors.push("additional key exchanges without INTERMEDIATE_EXCHANGE_SUPPORTED".into());
            return self.init_notify(src, port, h.spi_i, NotifyType::NO_PROPOSAL_CHOSEN, vec![]);
        }
        let use_ppk = self.config.ppk.is_some() && has(NotifyType::USE_PPK);
        let mut spi_r = 0;
        while spi_r == 0 {
            spi_r = self.rng.next_u64();
        }
        let mut nr = vec![0u8; 32];
        self.rng.fill_bytes(&mut nr);
        let keys = match IkeKeys::derive(suite.prf, suite.encr, suite.integ, &shared, ni, &nr, h.spi_i, spi_r) {
            Ok(k) => k,
            Err(e) => panic!("responder key derivation failed: {e}"),
        };
        // NAT detection (§2.23): the request's hashes use SPIr = 0, ours the SPIs of the response header.
        self.check_nat(h.spi_i, 0, src, port, payloads);
        let expect_src = crypto::nat_detection_hash(h.spi_i, 0, src);
        self.peer_behind_nat = Some(!nat_src.iter().any(|d| d.as_slice() == expect_src.as_slice()));
        let me = if self.config.nat_gateway { NAT_PUBLIC } else { SocketAddr::new(IpAddr::V4(self.addr), port) };
        let nat_s = crypto::nat_detection_hash(h.spi_i, spi_r, me).to_vec();
        let nat_d = crypto::nat_detection_hash(h.spi_i, spi_r, self.seen(src)).to_vec();
        let mut payloads = vec![
            Payload::Sa(vec![chosen]),
            Payload::Ke(KePayload { group: suite.group.id(), data: ke_r }),
            Payload::Nonce(nr.clone()),
        ];
        if intermediate {
            payloads.push(Payload::Notify(Notify::new(NotifyType::INTERMEDIATE_EXCHANGE_SUPPORTED, vec![])));
        }
        if use_ppk {
            payloads.push(Payload::Notify(Notify::new(NotifyType::USE_PPK, vec![])));
        }
        if self.config.nat_detection {
            payloads.push(Payload::Notify(Notify::new(NotifyType::NAT_DETECTION_SOURCE_IP, nat_s)));
            payloads.push(Payload::Notify(Notify::new(NotifyType::NAT_DETECTION_DESTINATION_IP, nat_d)));
        }
        let peer_fragmentation = msg
            .payloads
            .iter()
            .any(|p| matches!(p, Payload::Notify(n) if n.notify_type == NotifyType::IKEV2_FRAGMENTATION_SUPPORTED));
        self.peer_fragmentation = Some(peer_fragmentation);
        if self.config.fragmentation {
            payloads.push(Payload::Notify(Notify::new(NotifyType::IKEV2_FRAGMENTATION_SUPPORTED, vec![])));
        }
        let header = Self::header(h.spi_i, spi_r, ExchangeType::IKE_SA_INIT, true, 0);
        let resp = Message { header, payloads }.encode();
        self.ike_suite = Some(suite);
        self.sa = Some(Sa {
            spi_i: h.spi_i,
            spi_r,
            suite,
            keys,
            ni: ni.clone(),
            nr,
            init_request: raw.to_vec(),
            init_response: resp.clone(),
            peer: src,
            port,
            expect_id: 1,
            last_response: None,
            next_id: 0,
            last_request: None,
            established: false,
            dead: false,
            fragmentation: self.config.fragmentation && peer_fragmentation,
            reassembly: None,
            addke_pending,
            int_auth: None,
            auth_mid: 0,
            next_keys: None,
            use_ppk,
            followup: None,
        });
        self.send(port, src, resp);
    }

    fn handle_request(&mut self, src: SocketAddr, port: u16, raw: &[u8], msg: &Message) {
        let h = msg.header;
        if self.old_sa.as_ref().is_some_and(|o| o.spi_i == h.spi_i && o.spi_r == h.spi_r) {
            // A request on the IKE SA rekeyed away from (its Delete, §1.3.2): answer it there.
            std::mem::swap(&mut self.sa, &mut self.old_sa);
            self.handle_request_inner(src, port, raw, msg);
            std::mem::swap(&mut self.sa, &mut self.old_sa);
            if self.old_sa.as_ref().is_some_and(|o| o.dead) {
                self.old_sa = None;
            }
            return;
        }
        self.handle_request_inner(src, port, raw, msg);
    }

    fn handle_request_inner(&mut self, src: SocketAddr, port: u16, raw: &[u8], msg: &Message) {
        let h = msg.header;
        let Some(sa) = self.sa.as_mut() else {
            self.errors.push("request without an IKE SA".into());
            return;
        };
        if sa.spi_i != h.spi_i || sa.spi_r != h.spi_r {
            self.errors.push("request for an unknown IKE SA".into());
            return;
        }
        if let Some(cached) = &sa.last_response {
            if cached.message_id == h.message_id {
                // A retransmission: answer it once, on its first fragment (RFC 7383 §2.6.1).
                if matches!(msg.payloads.last(), Some(Payload::Skf(f)) if f.fragment_number != 1) {
                    return;
                }
                self.retransmissions_answered += 1;
                let datagrams = match self.config.refragment_mtu {
                    Some(mtu) => {
                        let header = Self::header(sa.spi_i, sa.spi_r, cached.exchange, true, cached.message_id);
                        sa.protect(&mut self.rng, &self.config, mtu, header, &cached.payloads)
                    }
                    None => cached.datagrams.clone(),
                };
                for d in datagrams {
                    self.send(port, src, d);
                }
                return;
            }
        }
        if sa.dead {
            self.errors.push("request for a dead IKE SA".into());
            return;
        }
        if h.message_id != sa.expect_id {
            self.errors.push(format!("request ID {} (expected {})", h.message_id, sa.expect_id));
            return;
        }
        let fragment = matches!(msg.payloads.last(), Some(Payload::Skf(_)));
        let payloads = match sa.open(raw, msg) {
            Ok(Opened::Whole(p, fragments)) => {
                if let Some(total) = fragments {
                    self.reassembled.push((h.message_id, total));
                }
                p
            }
            Ok(Opened::Stored) => {
                self.fragments_received += 1;
                return;
            }
            Err(e) => {
                self.errors.push(e);
                return;
            }
        };
        self.fragments_received += usize::from(fragment);
        sa.expect_id += 1;
        sa.peer = src;
        sa.port = port;
        let mut reply = match h.exchange {
            ExchangeType::IKE_INTERMEDIATE if !sa.established => self.intermediate(h, &payloads),
            ExchangeType::CREATE_CHILD_SA if sa.established => self.create_child(&payloads),
            ExchangeType::IKE_FOLLOWUP_KE if sa.established => self.followup(&payloads),
            ExchangeType::IKE_AUTH if !sa.established => self.auth(h.message_id, &payloads),
            ExchangeType::INFORMATIONAL => {
                let natd = payloads
                    .iter()
                    .any(|p| matches!(p, Payload::Notify(n) if n.notify_type == NotifyType::NAT_DETECTION_SOURCE_IP));
                let cookie2 = payloads.iter().find_map(|p| match p {
                    Payload::Notify(n) if n.notify_type == NotifyType::COOKIE2 => Some(n.data.clone()),
                    _ => None,
                });
                if natd {
                    self.check_nat(h.spi_i, h.spi_r, src, port, &payloads);
                }
                let mut reply = self.informational(h.message_id, payloads);
                if natd {
                    // With MOBIKE, NAT detection in INFORMATIONAL too (RFC 4555 §3.8), as strongSwan answers it.
                    let me =
                        if self.config.nat_gateway { NAT_PUBLIC } else { SocketAddr::new(IpAddr::V4(self.addr), port) };
                    let src_hash = crypto::nat_detection_hash(h.spi_i, h.spi_r, me).to_vec();
                    let dst_hash = crypto::nat_detection_hash(h.spi_i, h.spi_r, self.seen(src)).to_vec();
                    reply.push(Payload::Notify(Notify::new(NotifyType::NAT_DETECTION_SOURCE_IP, src_hash)));
                    reply.push(Payload::Notify(Notify::new(NotifyType::NAT_DETECTION_DESTINATION_IP, dst_hash)));
                }
                if let Some(c) = cookie2 {
                    // The COOKIE2 of an address update comes back unchanged (RFC 4555 §3.5).
                    reply.push(Payload::Notify(Notify::new(NotifyType::COOKIE2, c)));
                }
                reply
            }
            _ => {
                self.errors.push(format!("unexpected {} request", h.exchange));
                vec![Payload::Notify(Notify::new(NotifyType::INVALID_SYNTAX, vec![]))]
            }
        };
        if let (ExchangeType::IKE_AUTH, Some(len)) = (h.exchange, self.config.auth_response_len) {
            pad_to(&mut reply, len);
        }
        let Some(sa) = self.sa.as_mut() else { return };
        let header = Self::header(sa.spi_i, sa.spi_r, h.exchange, true, h.message_id);
        let datagrams = sa.protect(&mut self.rng, &self.config, self.config.fragment_mtu, header, &reply);
        sa.last_response = Some(CachedResponse {
            message_id: h.message_id,
            exchange: h.exchange,
            payloads: reply,
            datagrams: datagrams.clone(),
        });
        for d in datagrams {
            self.send(port, src, d);
        }
        // The keys of an additional key exchange apply from the next message on (RFC 9370 §2.2.2).
        if let Some(sa) = self.sa.as_mut() {
            if let Some(k) = sa.next_keys.take() {
                sa.keys = k;
            }
        }
        if let Some(new) = self.pending_sa.take() {
            // Our answer to an IKE SA rekey is out: the new SA takes over (§2.18).
            self.ike_suite = Some(new.suite);
            self.old_sa = self.sa.replace(new);
        }
    }

    /// One additional key exchange in IKE_INTERMEDIATE (RFC 9370 §2.2.1): the initiator's KE must be for the
    /// next negotiated method; both messages are chained into IntAuth (RFC 9242 §3.3.1) with the keys protecting
    /// them, and the new keys, SKEYSEED(n) = prf(SK_d(n-1), SK(n) | Ni | Nr), apply after our answer.
    fn intermediate(&mut self, h: Header, payloads: &[Payload]) -> Vec<Payload> {
        let Some(sa) = self.sa.as_mut() else { return vec![] };
        let Some(&group) = sa.addke_pending.first() else {
            self.errors.push("IKE_INTERMEDIATE without a pending additional key exchange".into());
            return vec![Payload::Notify(Notify::new(NotifyType::INVALID_SYNTAX, vec![]))];
        };
        let ke = payloads.iter().find_map(|p| match p {
            Payload::Ke(k) => Some(k),
            _ => None,
        });
        let Some(ke) = ke.filter(|k| k.group == group.id()) else {
            self.errors.push("IKE_INTERMEDIATE request without a KE for the negotiated method".into());
            return vec![Payload::Notify(Notify::new(
                NotifyType::INVALID_KE_PAYLOAD,
                group.id().to_be_bytes().to_vec(),
            ))];
        };
        let prf = sa.suite.prf;
        let (i_prev, r_prev) = sa.int_auth.take().unwrap_or_default();
        let i_new = int_auth_step(prf, &sa.keys.sk_pi, &i_prev, h, payloads);
        let (data, secret) = match KeyExchange::respond(group, &ke.data, &mut self.rng) {
            Ok(x) => x,
            Err(e) => {
                self.errors.push(format!("bad additional KE: {e}"));
                sa.int_auth = Some((i_new, r_prev));
                return vec![Payload::Notify(Notify::new(NotifyType::INVALID_SYNTAX, vec![]))];
            }
        };
        let reply = if self.config.intermediate_invalid_ke {
            vec![Payload::Notify(Notify::new(NotifyType::INVALID_KE_PAYLOAD, group.id().to_be_bytes().to_vec()))]
        } else if self.config.intermediate_omit_ke {
            vec![]
        } else {
            let g = self.config.intermediate_ke_group.unwrap_or(group.id());
            vec![Payload::Ke(KePayload { group: g, data })]
        };
        let rh = Self::header(sa.spi_i, sa.spi_r, ExchangeType::IKE_INTERMEDIATE, true, h.message_id);
        let r_new = int_auth_step(prf, &sa.keys.sk_pr, &r_prev, rh, &reply);
        sa.int_auth = Some((i_new, r_new));
        let s = sa.suite;
        match IkeKeys::derive_rekey_with(
            prf,
            &sa.keys.sk_d,
            prf,
            s.encr,
            s.integ,
            &secret,
            &sa.ni,
            &sa.nr,
            sa.spi_i,
            sa.spi_r,
        ) {
            Ok(k) => sa.next_keys = Some(k),
            Err(e) => panic!("responder key derivation failed: {e}"),
        }
        sa.addke_pending.remove(0);
        self.intermediate_exchanges += 1;
        reply
    }

    /// CREATE_CHILD_SA from the initiator (§1.3): a Child SA rekey (REKEY_SA) or an IKE SA rekey, with PFS and
    /// additional key exchanges that continue in IKE_FOLLOWUP_KE (RFC 9370 §2.2.4).
    fn create_child(&mut self, payloads: &[Payload]) -> Vec<Payload> {
        let no = |t: NotifyType| vec![Payload::Notify(Notify::new(t, vec![]))];
        let mut sa_p = None;
        let mut ke = None;
        let mut ni = None;
        let (mut tsi, mut tsr) = (None, None);
        for p in payloads {
            match p {
                Payload::Sa(s) => sa_p = Some(s),
                Payload::Ke(k) => ke = Some(k),
                Payload::Nonce(n) => ni = Some(n.clone()),
                Payload::TsI(t) => tsi = Some(t.clone()),
                Payload::TsR(t) => tsr = Some(t.clone()),
                _ => {}
            }
        }
        let (Some(sa_p), Some(ni)) = (sa_p, ni) else {
            self.errors.push("CREATE_CHILD_SA without SA or Nonce".into());
            return no(NotifyType::INVALID_SYNTAX);
        };
        self.rekeys += 1;
        let mut nr = vec![0u8; 32];
        self.rng.fill_bytes(&mut nr);
        let ike = sa_p.iter().any(|p| p.protocol == ProtocolId::IKE);
        let ke_group = ke.map(|k| k.group);
        let (mut reply, target, suite_group, pending) = if ike {
            let Some(ke) = ke else { return no(NotifyType::INVALID_SYNTAX) };
            let Some((mut chosen, suite)) =
                choose_ike(sa_p, &self.config.ike_proposals, ke.group, None, self.config.addke)
            else {
                return no(NotifyType::NO_PROPOSAL_CHOSEN);
            };
            let their = sa_p.iter().find(|p| p.number == chosen.number).map(|p| p.spi.clone()).unwrap_or_default();
            let Ok(their) = <[u8; 8]>::try_from(their.as_slice()) else { return no(NotifyType::INVALID_SYNTAX) };
            let mut spi_r = 0;
            while spi_r == 0 {
                spi_r = self.rng.next_u64();
            }
            chosen.spi = spi_r.to_be_bytes().to_vec();
            let target = RespTarget::Ike { spi_i: u64::from_be_bytes(their), spi_r, suite };
            (
                vec![Payload::Sa(vec![chosen])],
                target,
                Some(suite.group),
                crate::ike::proposal::addke_groups(&suite.addke),
            )
        } else {
            let Some((mut chosen, spi_out, suite)) =
                choose_esp_pfs(sa_p, &self.config.esp_proposals, ke_group, self.config.addke)
            else {
                return no(NotifyType::NO_PROPOSAL_CHOSEN);
            };
            let mut spi_in = 0;
            while spi_in < 256 {
                spi_in = self.rng.next_u32();
            }
            chosen.spi = spi_in.to_be_bytes().to_vec();
            let (Some(tsi), Some(tsr)) = (tsi, tsr) else { return no(NotifyType::INVALID_SYNTAX) };
            let target = RespTarget::Child { spi_in, spi_out, suite, ts_i: tsi, ts_r: tsr };
            (vec![Payload::Sa(vec![chosen])], target, suite.group, crate::ike::proposal::addke_groups(&suite.addke))
        };
        reply.push(Payload::Nonce(nr.clone()));
        let shared = match (suite_group, ke) {
            (Some(g), Some(k)) if k.group == g.id() => match KeyExchange::respond(g, &k.data, &mut self.rng) {
                Ok((data, secret)) => {
                    reply.push(Payload::Ke(KePayload { group: g.id(), data }));
                    secret
                }
                Err(e) => {
                    self.errors.push(format!("bad KE in CREATE_CHILD_SA: {e}"));
                    return no(NotifyType::INVALID_SYNTAX);
                }
            },
            (Some(g), _) => {
                return vec![Payload::Notify(Notify::new(
                    NotifyType::INVALID_KE_PAYLOAD,
                    g.id().to_be_bytes().to_vec(),
                ))]
            }
            (None, _) => Zeroizing::new(Vec::new()),
        };
        if let RespTarget::Child { ts_i, ts_r, .. } = &target {
            reply.push(Payload::TsI(ts_i.clone()));
            reply.push(Payload::TsR(ts_r.clone()));
        }
        let mut f =
            RespFollowup { link: Vec::new(), pending, ni, nr, shared, additional: Zeroizing::new(Vec::new()), target };
        if f.pending.is_empty() {
            self.finish_rekey(f);
        } else {
            let mut link = vec![0u8; 8];
            self.rng.fill_bytes(&mut link);
            f.link.clone_from(&link);
            reply.push(Payload::Notify(Notify::new(NotifyType::ADDITIONAL_KEY_EXCHANGE, link)));
            if let Some(sa) = self.sa.as_mut() {
                sa.followup = Some(f);
            }
        }
        reply
    }

    /// One IKE_FOLLOWUP_KE exchange (RFC 9370 §2.2.4): the link data must be ours, the KE the next method.
    fn followup(&mut self, payloads: &[Payload]) -> Vec<Payload> {
        let Some(sa) = self.sa.as_mut() else { return vec![] };
        let link = payloads.iter().find_map(|p| match p {
            Payload::Notify(n) if n.notify_type == NotifyType::ADDITIONAL_KEY_EXCHANGE => Some(n.data.clone()),
            _ => None,
        });
        let Some(mut f) = sa.followup.take().filter(|f| Some(&f.link) == link.as_ref()) else {
            self.errors.push("IKE_FOLLOWUP_KE without a matching ADDITIONAL_KEY_EXCHANGE".into());
            return vec![Payload::Notify(Notify::new(NotifyType::STATE_NOT_FOUND, vec![]))];
        };
        let group = f.pending.remove(0);
        let ke = payloads.iter().find_map(|p| match p {
            Payload::Ke(k) if k.group == group.id() => Some(k),
            _ => None,
        });
        let Some(ke) = ke else {
            self.errors.push("IKE_FOLLOWUP_KE without a KE for the negotiated method".into());
            return vec![Payload::Notify(Notify::new(
                NotifyType::INVALID_KE_PAYLOAD,
                group.id().to_be_bytes().to_vec(),
            ))];
        };
        let (data, secret) = match KeyExchange::respond(group, &ke.data, &mut self.rng) {
            Ok(x) => x,
            Err(e) => {
                self.errors.push(format!("bad KE in IKE_FOLLOWUP_KE: {e}"));
                return vec![Payload::Notify(Notify::new(NotifyType::INVALID_SYNTAX, vec![]))];
            }
        };
        f.additional.extend_from_slice(&secret);
        self.followups += 1;
        let mut reply = vec![Payload::Ke(KePayload { group: group.id(), data })];
        if f.pending.is_empty() {
            self.finish_rekey(f);
        } else {
            let mut link = vec![0u8; 8];
            self.rng.fill_bytes(&mut link);
            f.link.clone_from(&link);
            reply.push(Payload::Notify(Notify::new(NotifyType::ADDITIONAL_KEY_EXCHANGE, link)));
            sa.followup = Some(f);
        }
        reply
    }

    /// All key exchanges of a rekey are done: the new Child SA, or the new IKE SA once our answer is out, keyed
    /// from SK(0) | Ni | Nr | SK(1) | ... | SK(n) (RFC 9370 §2.2.4).
    fn finish_rekey(&mut self, f: RespFollowup) {
        let Some(sa) = self.sa.as_ref() else { return };
        let prf = sa.suite.prf;
        match f.target {
            RespTarget::Child { spi_in, spi_out, suite, ts_i, ts_r } => {
                let shared = (!f.shared.is_empty()).then_some(f.shared.as_slice());
                let ck = ChildKeys::derive_hybrid(
                    prf,
                    &sa.keys.sk_d,
                    shared,
                    &f.ni,
                    &f.nr,
                    &f.additional,
                    suite.encr,
                    suite.integ,
                );
                let params = |spi: u32, enc: &[u8], integ: &[u8]| EspParams {
                    spi,
                    encr: suite.encr,
                    integ: suite.integ,
                    enc_key: crypto::Zeroizing::new(enc.to_vec()),
                    integ_key: crypto::Zeroizing::new(integ.to_vec()),
                    esn: suite.esn,
                };
                let new = ChildSa {
                    suite,
                    inbound: params(spi_in, &ck.enc_i2r, &ck.integ_i2r),
                    outbound: params(spi_out, &ck.enc_r2i, &ck.integ_r2i),
                    ts_i,
                    ts_r,
                    replaces: self.child.as_ref().map(|c| c.inbound.spi),
                    outbound_now: false,
                };
                if let Some(old) = self.child.replace(new) {
                    self.old_children.push(old);
                }
            }
            RespTarget::Ike { spi_i, spi_r, suite } => {
                let keys = match IkeKeys::derive_rekey_hybrid(
                    prf,
                    &sa.keys.sk_d,
                    suite.prf,
                    suite.encr,
                    suite.integ,
                    &f.shared,
                    &f.ni,
                    &f.nr,
                    &f.additional,
                    spi_i,
                    spi_r,
                ) {
                    Ok(k) => k,
                    Err(e) => panic!("responder key derivation failed: {e}"),
                };
                self.pending_sa = Some(Sa {
                    spi_i,
                    spi_r,
                    suite,
                    keys,
                    ni: f.ni,
                    nr: f.nr,
                    init_request: sa.init_request.clone(),
                    init_response: sa.init_response.clone(),
                    peer: sa.peer,
                    port: sa.port,
                    expect_id: 0,
                    last_response: None,
                    next_id: 0,
                    last_request: None,
                    established: true,
                    dead: false,
                    fragmentation: sa.fragmentation,
                    reassembly: None,
                    addke_pending: Vec::new(),
                    int_auth: None,
                    auth_mid: 0,
                    next_keys: None,
                    use_ppk: false,
                    followup: None,
                });
            }
        }
    }

    /// The IKE_AUTH response (§1.2): verify AUTH, answer with IDr, AUTH, CP, SA, TSi, TSr.
    fn auth(&mut self, message_id: u32, payloads: &[Payload]) -> Vec<Payload> {
        let Some(sa) = self.sa.as_mut() else { return vec![] };
        if !sa.addke_pending.is_empty() {
            self.errors.push("IKE_AUTH before the additional key exchanges".into());
            sa.dead = true;
            return vec![Payload::Notify(Notify::new(NotifyType::INVALID_SYNTAX, vec![]))];
        }
        if sa.auth_mid == 0 {
            sa.auth_mid = message_id;
        }
        let mut idi = None;
        let mut auth = None;
        let mut cp = None;
        let mut sa_p = None;
        let mut tsi = None;
        let mut tsr = None;
        for p in payloads {
            match p {
                Payload::IdI(i) => idi = Some(i),
                Payload::Auth(a) => auth = Some(a),
                Payload::Cp(c) if c.cfg_type == CfgType::CFG_REQUEST => cp = Some(c),
                Payload::Sa(s) => sa_p = Some(s),
                Payload::TsI(t) => tsi = Some(t),
                Payload::TsR(t) => tsr = Some(t),
                _ => {}
            }
        }
        let prf = sa.suite.prf;
        // RFC 8784 §3: the initiator's PPK_ID must name our PPK; otherwise only its NO_PPK_AUTH can do.
        let notify = |t: NotifyType| {
            payloads.iter().find_map(|p| match p {
                Payload::Notify(n) if n.notify_type == t => Some(n.data.clone()),
                _ => None,
            })
        };
        let ppk_id = notify(NotifyType::PPK_IDENTITY);
        let known = match (&self.config.ppk, &ppk_id) {
            (Some((id, _)), Some(got)) => got.first() == Some(&2) && got[1..] == id[..],
            _ => false,
        };
        let no_ppk_auth = notify(NotifyType::NO_PPK_AUTH);
        sa.use_ppk = sa.use_ppk && known;
        let int_auth = int_auth_octets(sa);
        let ok = match (idi, auth) {
            (Some(idi), Some(auth)) => {
                let sk_pi = sa_sk_p(sa, &self.config, true);
                let data = match (&self.config.ppk, known, &no_ppk_auth) {
                    // We have a PPK but not the one it names (or it sent none): its AUTH without PPK.
                    (Some(_), false, Some(n)) if !self.config.ppk_required => Some(n.clone()),
                    (Some(_), false, _) if self.config.ppk_required => None,
                    _ => Some(auth.data.clone()),
                };
                let expect = psk_auth(prf, &self.config.psk, &sk_pi, &sa.init_request, &sa.nr, idi, &int_auth);
                auth.method == AuthMethod::SHARED_KEY_MIC && data.is_some_and(|d| crypto::constant_time_eq(&expect, &d))
            }
            _ => false,
        };
        self.peer_auth_ok = Some(ok);
        self.ppk_used = Some(ok && sa.use_ppk);
        if !ok {
            sa.dead = true;
            return vec![Payload::Notify(Notify::new(NotifyType::AUTHENTICATION_FAILED, vec![]))];
        }
        sa.established = true;
        let mut reply = identity_payloads(sa, &self.config, None);
        if sa.use_ppk {
            reply.push(Payload::Notify(Notify::new(NotifyType::PPK_IDENTITY, vec![])));
            if let Some((_, secret)) = &self.config.ppk {
                sa.keys.apply_ppk(secret);
            }
        }
        if let Some(e) = self.config.child_error {
            reply.push(Payload::Notify(Notify::new(e, vec![])));
            return reply;
        }
        if self.config.mobike {
            reply.push(Payload::Notify(Notify::new(NotifyType::MOBIKE_SUPPORTED, vec![])));
        }
        if let Some(to) = &self.config.redirect_auth {
            reply.push(Payload::Notify(Notify::new(NotifyType::REDIRECT, to.encode())));
        }
        if let Some(secs) = self.config.auth_lifetime {
            reply.push(Payload::Notify(Notify::new(NotifyType::AUTH_LIFETIME, secs.to_be_bytes().to_vec())));
        }
        let mut assigned = None;
        if let Some(req) = cp {
            let mut attrs = Vec::new();
            let wants = |t: u16| req.attributes.iter().any(|a| a.attr_type == t);
            if let (true, Some(vip)) = (wants(cfg_attr::INTERNAL_IP4_ADDRESS), self.config.vip) {
                attrs.push(ConfigAttribute { attr_type: cfg_attr::INTERNAL_IP4_ADDRESS, value: vip.octets().to_vec() });
                assigned = Some(vip);
            }
            if wants(cfg_attr::INTERNAL_IP4_DNS) {
                for d in &self.config.dns {
                    attrs.push(ConfigAttribute { attr_type: cfg_attr::INTERNAL_IP4_DNS, value: d.octets().to_vec() });
                }
            }
            if !attrs.is_empty() {
                reply.push(Payload::Cp(ConfigPayload { cfg_type: CfgType::CFG_REPLY, attributes: attrs }));
            }
        }
        let (Some(sa_p), Some(tsi), Some(tsr)) = (sa_p, tsi, tsr) else {
            self.errors.push("IKE_AUTH request without a Child SA".into());
            return reply;
        };
        let Some((mut chosen, spi_out, suite)) = choose_esp(sa_p, &self.config.esp_proposals) else {
            reply.push(Payload::Notify(Notify::new(NotifyType::NO_PROPOSAL_CHOSEN, vec![])));
            return reply;
        };
        let (ts_i, ts_r) = match &self.config.ts_override {
            Some((i, r)) => (i.clone(), r.clone()),
            None => {
                let policy_i = match (&self.config.ts_i, assigned) {
                    (Some(p), _) => p.clone(),
                    (None, Some(vip)) => vec![cidr_ts(&format!("{vip}/32"))],
                    (None, None) => vec![cidr_ts("0.0.0.0/0"), cidr_ts("::/0")],
                };
                (narrow(tsi, &policy_i), narrow(tsr, &self.config.ts_r))
            }
        };
        if ts_i.is_empty() || ts_r.is_empty() {
            reply.push(Payload::Notify(Notify::new(NotifyType::TS_UNACCEPTABLE, vec![])));
            return reply;
        }
        let mut spi_in = 0;
        while spi_in < 256 {
            spi_in = self.rng.next_u32();
        }
        chosen.spi = spi_in.to_be_bytes().to_vec();
        let ck = ChildKeys::derive(prf, &sa.keys.sk_d, None, &sa.ni, &sa.nr, suite.encr, suite.integ);
        let params = |spi: u32, enc: &[u8], integ: &[u8]| EspParams {
            spi,
            encr: suite.encr,
            integ: suite.integ,
            enc_key: crypto::Zeroizing::new(enc.to_vec()),
            integ_key: crypto::Zeroizing::new(integ.to_vec()),
            esn: suite.esn,
        };
        self.child = Some(ChildSa {
            suite,
            inbound: params(spi_in, &ck.enc_i2r, &ck.integ_i2r),
            outbound: params(spi_out, &ck.enc_r2i, &ck.integ_r2i),
            ts_i: ts_i.clone(),
            ts_r: ts_r.clone(),
            replaces: None,
            outbound_now: true,
        });
        reply.push(Payload::Sa(vec![chosen]));
        reply.push(Payload::TsI(ts_i));
        reply.push(Payload::TsR(ts_r));
        reply
    }

    /// An INFORMATIONAL request from the initiator (§1.4): Deletes are honoured, anything else gets an empty answer.
    fn informational(&mut self, id: u32, payloads: Vec<Payload>) -> Vec<Payload> {
        let mut reply = Vec::new();
        for p in &payloads {
            match p {
                Payload::Delete(d) if d.protocol == ProtocolId::IKE => {
                    if let Some(sa) = self.sa.as_mut() {
                        sa.dead = true;
                    }
                }
                Payload::Delete(d) if d.protocol == ProtocolId::ESP => {
                    let hit = |c: &ChildSa| d.spis.iter().any(|s| s.as_slice() == c.outbound.spi.to_be_bytes());
                    if let Some(pos) = self.old_children.iter().position(&hit) {
                        let old = self.old_children.remove(pos);
                        reply.push(Payload::Delete(Delete {
                            protocol: ProtocolId::ESP,
                            spis: vec![old.inbound.spi.to_be_bytes().to_vec()],
                        }));
                        continue;
                    }
                    let ours = self.child.as_ref().and_then(|c| hit(c).then_some(c.inbound.spi));
                    if let Some(spi) = ours {
                        self.child = None;
                        reply.push(Payload::Delete(Delete {
                            protocol: ProtocolId::ESP,
                            spis: vec![spi.to_be_bytes().to_vec()],
                        }));
                    }
                }
                _ => {}
            }
        }
        self.requests.push((id, payloads));
        reply
    }

    fn handle_response(&mut self, raw: &[u8], msg: &Message) {
        let h = msg.header;
        let Some(sa) = self.sa.as_mut() else {
            self.errors.push("response without an IKE SA".into());
            return;
        };
        if sa.spi_i != h.spi_i || sa.spi_r != h.spi_r || !h.flags.initiator {
            self.errors.push("response for an unknown IKE SA".into());
            return;
        }
        if sa.last_request.as_ref().map(|r| r.0) != Some(h.message_id) {
            self.errors.push(format!("response to message ID {} we did not send", h.message_id));
            return;
        }
        let fragment = matches!(msg.payloads.last(), Some(Payload::Skf(_)));
        match sa.open(raw, msg) {
            Ok(Opened::Whole(p, fragments)) => {
                self.fragments_received += usize::from(fragment);
                if let Some(total) = fragments {
                    self.reassembled.push((h.message_id, total));
                }
                self.responses.push((h.message_id, p, raw.to_vec()));
            }
            Ok(Opened::Stored) => self.fragments_received += 1,
            Err(e) => self.errors.push(e),
        }
    }

    /// Send an INFORMATIONAL request of our own (§1.4) with the next message ID; fragmented when large.
    fn request(&mut self, payloads: Vec<Payload>) {
        let Some(sa) = self.sa.as_mut() else { panic!("the responder has no IKE SA to send a request on") };
        let id = sa.next_id;
        sa.next_id += 1;
        let header = Self::header(sa.spi_i, sa.spi_r, ExchangeType::INFORMATIONAL, false, id);
        let datagrams = sa.protect(&mut self.rng, &self.config, self.config.fragment_mtu, header, &payloads);
        sa.last_request = Some((id, datagrams.clone()));
        let (port, peer) = (sa.port, sa.peer);
        for d in datagrams {
            self.send(port, peer, d);
        }
    }

    /// An INFORMATIONAL request of our own with these payloads (§1.4), e.g. large ones that need fragments.
    pub fn send_informational(&mut self, payloads: Vec<Payload>) {
        self.request(payloads);
    }

    /// The datagrams (without the non-ESP marker) of our outstanding request.
    pub fn outstanding_request(&self) -> Vec<Vec<u8>> {
        self.sa.as_ref().and_then(|sa| sa.last_request.as_ref()).map(|(_, d)| d.clone()).unwrap_or_default()
    }

    /// An authentic SKF fragment (RFC 7383 §2.5) sealed with the responder's keys: a message ID, exchange,
    /// direction and fragment fields of the test's choosing, and any plaintext. For hostile-peer tests.
    #[allow(clippy::too_many_arguments)]
    pub fn seal_fragment(
        &mut self,
        message_id: u32,
        exchange: ExchangeType,
        response: bool,
        first_inner: u8,
        number: u16,
        total: u16,
        plaintext: &[u8],
    ) -> Vec<u8> {
        let Some(sa) = self.sa.as_ref() else { panic!("the responder has no IKE SA") };
        let header = Self::header(sa.spi_i, sa.spi_r, exchange, response, message_id);
        sa.seal_fragment(&mut self.rng, header, first_inner, number, total, plaintext)
    }

    /// An authentic message of the test's choosing, sealed with the responder's keys (one SK payload, never
    /// fragmented): any message ID, exchange and direction. For hostile-gateway tests.
    pub fn seal(&mut self, message_id: u32, exchange: ExchangeType, response: bool, payloads: &[Payload]) -> Vec<u8> {
        let Some(sa) = self.sa.as_ref() else { panic!("the responder has no IKE SA") };
        let header = Self::header(sa.spi_i, sa.spi_r, exchange, response, message_id);
        let cipher = sa.keys.outbound(false);
        let mut inner = Vec::new();
        let first = wire::encode_chain(payloads, &mut inner);
        let mut msg = wire::encode_sk_prefix(&header, first, cipher.sealed_len(inner.len()));
        if let Err(e) = cipher.seal(&mut msg, &inner, &mut self.rng) {
            panic!("responder encryption failed: {e}");
        }
        msg
    }

    /// Its IDr and AUTH (and CERT) as in its IKE_AUTH response; with `key`, a shared-key AUTH keyed with it
    /// instead (e.g. SK_pr, as after an EAP method without MSK, §2.16).
    pub fn identity_payloads(&self, key: Option<&[u8]>) -> Vec<Payload> {
        let Some(sa) = self.sa.as_ref() else { panic!("the responder has no IKE SA") };
        identity_payloads(sa, &self.config, key)
    }

    /// The inner payloads of an encrypted message from the initiator (not fragmented), as the responder reads
    /// them: what a hostile gateway learns.
    pub fn decrypt(&mut self, ike: &[u8]) -> Option<Vec<Payload>> {
        let msg = Message::decode(ike).ok()?;
        match self.sa.as_mut()?.open(ike, &msg) {
            Ok(Opened::Whole(payloads, _)) => Some(payloads),
            _ => None,
        }
    }

    /// SK_pr of its IKE SA (§2.14), which whoever answered IKE_SA_INIT knows.
    pub fn sk_pr(&self) -> Vec<u8> {
        let Some(sa) = self.sa.as_ref() else { panic!("the responder has no IKE SA") };
        sa.keys.sk_pr.to_vec()
    }

    /// A NAT keepalive (RFC 3948 §2.3: one 0xFF byte) arrived on port 4500 from `src`.
    pub fn handle_keepalive(&mut self, src: SocketAddr) {
        self.keepalives.push(src);
    }

    /// An empty INFORMATIONAL request: dead peer detection (§1.4).
    pub fn send_dpd(&mut self) {
        self.request(vec![]);
    }

    /// Delete the IKE SA (§1.4.1).
    pub fn send_delete_ike(&mut self) {
        self.request(vec![Payload::Delete(Delete { protocol: ProtocolId::IKE, spis: vec![] })]);
        if let Some(sa) = self.sa.as_mut() {
            sa.dead = true;
        }
    }

    /// Delete the Child SA: the Delete carries our inbound SPI (§1.4.1, §3.11).
    pub fn send_delete_child(&mut self) {
        let Some(spi) = self.child.as_ref().map(|c| c.inbound.spi) else { panic!("the responder has no Child SA") };
        self.request(vec![Payload::Delete(Delete {
            protocol: ProtocolId::ESP,
            spis: vec![spi.to_be_bytes().to_vec()],
        })]);
    }

    /// Send our outstanding request again, byte for byte (§2.1).
    pub fn retransmit_request(&mut self) {
        let Some(sa) = self.sa.as_ref() else { panic!("the responder has no IKE SA") };
        let Some((_, datagrams)) = sa.last_request.clone() else {
            panic!("the responder has no request to retransmit")
        };
        let (port, peer) = (sa.port, sa.peer);
        for d in datagrams {
            self.send(port, peer, d);
        }
    }
}
