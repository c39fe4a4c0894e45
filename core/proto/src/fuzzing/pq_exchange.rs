//! `pq_exchange`: the wire pieces of the post-quantum additions: ML-KEM key exchange data (FIPS 203 checks in
//! `KeyExchange::respond` and the decapsulation in `KeyExchange::shared_secret`), proposals with additional key
//! exchanges (RFC 9370 ADDKE1..7 transforms) against hybrid offers, and the initiator's handling of a hybrid
//! handshake: the IKE_SA_INIT response (the chosen additional key exchanges, INTERMEDIATE_EXCHANGE_SUPPORTED,
//! USE_PPK with a PPK configured), the IKE_INTERMEDIATE response (the KE of the additional exchange: group,
//! ciphertext length, decapsulation, IntAuth, the key update) and what comes after it.
//!
//! The first byte picks the mode (bits 0-1):
//! - 0 `kem`: a group byte (ML-KEM-512/768/1024, or a DH group), then bytes as the initiator's public value
//!   (`respond`), as a ciphertext for our key (`shared_secret`), and as a mask over a valid ciphertext;
//! - 1 `proposals`: a payload chain (first byte: type of the first payload); SA payloads go through `select_ike`
//!   and `select_esp` against hybrid offers, KE payloads of ML-KEM groups through `respond`;
//! - 2, 3 `handshake`: an IKE SA offering `x25519-ke1_mlkem768` (the other bits of the first byte: PPK, PPK
//!   required, `pq_fallback`, a second additional exchange, ML-KEM-512 instead, the gateway's scripted
//!   IKE_SA_INIT answer), then messages as in [`pq_exchange`].
//!
//! Nothing here reaches IKE_FOLLOWUP_KE / ADDITIONAL_KEY_EXCHANGE (they need an established IKE SA with a hybrid
//! suite, which the scripted gateway of `ike_sa` does not negotiate); the simulator's tests cover those.

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use std::sync::OnceLock;
use zeroize::Zeroizing;

use super::ike_sa::{chain, choose, drain, header, plain_message, Scenario, Stage, Tracker};
use super::{put_chunk, Input};
use crate::crypto::{Encr, Group, IkeKeys, Integ, KeyExchange, Prf};
use crate::ike::proposal::{addke_groups, select_esp, select_ike};
use crate::ike::{EspProposal, IkeProposal, IkeSa, Ppk};
use crate::wire::{
    self, ExchangeType, Header, KePayload, Message, Notify, NotifyType, Payload, TransformType, HEADER_LEN,
};

const MAX_MESSAGES: usize = 16;
const GATEWAY_SEED: [u8; 32] = [0x51; 32];
const LOCAL: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 10)), 500);
const GATEWAY: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 1)), 500);

const KEMS: [Group; 3] = [Group::MlKem512, Group::MlKem768, Group::MlKem1024];
/// Groups for the `kem` mode: the ML-KEMs, then DH groups (whose `respond` validates the peer's value).
const KEM_MODE_GROUPS: [Group; 6] =
    [Group::MlKem512, Group::MlKem768, Group::MlKem1024, Group::Curve25519, Group::Ecp256, Group::Modp2048];

/// The mode byte of the `handshake` mode.
pub(crate) mod flag {
    pub const HANDSHAKE: u8 = 2;
    pub const PPK: u8 = 1 << 2;
    pub const PPK_REQUIRED: u8 = 1 << 3;
    pub const PQ_FALLBACK: u8 = 1 << 4;
    pub const KE2: u8 = 1 << 5;
    pub const MLKEM512: u8 = 1 << 6;
    /// The gateway answers IKE_SA_INIT itself (the fuzz messages start at IKE_INTERMEDIATE).
    pub const SCRIPTED: u8 = 1 << 7;
}

/// The message `ctrl` bits of the `handshake` mode.
pub(crate) mod ctrl {
    /// A request from the gateway (exchange: the byte after the chunk) instead of a response.
    pub const REQUEST: u8 = 1;
    /// In the clear (always so before the gateway has keys).
    pub const PLAIN: u8 = 1 << 1;
    /// Put the gateway's correct KE for the outstanding additional key exchange first.
    pub const KE: u8 = 1 << 2;
    /// Mask that KE's data with the next chunk (XOR, cycled).
    pub const MASK: u8 = 1 << 3;
    /// Change that KE's length by the next byte (signed).
    pub const RESIZE: u8 = 1 << 4;
    /// Message ID off by the next byte (signed).
    pub const ID_OFF: u8 = 1 << 5;
    /// First let the initiator's next timer fire.
    pub const TIMER: u8 = 1 << 7;
}

pub fn pq_exchange(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.u8();
    match mode & 3 {
        0 => kem(&mut input),
        1 => proposals(input.rest()),
        _ => {
            let (mut sa, mut t, now) = handshake(mode, &mut input);
            sa.close(now);
            drain(&mut sa, &mut t);
        }
    }
}

/// One key per ML-KEM parameter set, made once (aws-lc-rs draws it).
fn kem_key(group: Group) -> &'static KeyExchange {
    static KEYS: OnceLock<Vec<KeyExchange>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        let mut rng = ChaCha20Rng::from_seed([0x4b; 32]);
        KEMS.iter()
            .map(|&g| KeyExchange::generate(g, &mut rng).unwrap_or_else(|e| panic!("{g:?} key generation: {e}")))
            .collect()
    });
    let i = KEMS.iter().position(|&g| g == group).unwrap_or(1);
    &keys[i]
}

fn kem(input: &mut Input<'_>) {
    let group = KEM_MODE_GROUPS[usize::from(input.u8()) % KEM_MODE_GROUPS.len()];
    let mut rng = ChaCha20Rng::from_seed([0x52; 32]);
    let peer = input.chunk();
    // The responder's side: a value of the wrong length or (ML-KEM) with a coefficient out of range is refused.
    if let Ok((ours, shared)) = KeyExchange::respond(group, peer, &mut rng) {
        assert_eq!(peer.len(), group.public_len(), "{group:?}: respond took a value of the wrong length");
        assert_eq!(ours.len(), group.response_len(), "{group:?}: response of the wrong length");
        if group.is_kem() {
            assert_eq!(shared.len(), 32, "{group:?}: shared secret length");
        }
    }
    if !group.is_kem() {
        return;
    }
    // The initiator's side: any ciphertext of the right length decapsulates (implicit rejection), any other
    // length is refused.
    let key = kem_key(group);
    let ct = input.chunk();
    match key.shared_secret(ct) {
        Ok(s) => {
            assert_eq!(ct.len(), group.response_len(), "{group:?}: decapsulated a ciphertext of the wrong length");
            assert_eq!(s.len(), 32);
        }
        Err(_) => assert_ne!(ct.len(), group.response_len(), "{group:?}: refused a ciphertext of the right length"),
    }
    // A valid encapsulation to our key agrees; a changed ciphertext gives another secret.
    let (good, shared) = match KeyExchange::respond(group, key.public_value(), &mut rng) {
        Ok(r) => r,
        Err(e) => panic!("{group:?}: encapsulation to a valid key failed: {e}"),
    };
    match key.shared_secret(&good) {
        Ok(s) => assert_eq!(*s, *shared, "{group:?}: decapsulation disagrees"),
        Err(e) => panic!("{group:?}: decapsulation of a valid ciphertext failed: {e}"),
    }
    let mask = input.rest();
    if mask.iter().any(|&b| b != 0) {
        let masked: Vec<u8> = good.iter().zip(mask.iter().cycle()).map(|(c, m)| c ^ m).collect();
        if masked != good {
            match key.shared_secret(&masked) {
                Ok(s) => assert_ne!(*s, *shared, "{group:?}: a changed ciphertext gives the same secret"),
                Err(e) => panic!("{group:?}: a ciphertext of the right length was refused: {e}"),
            }
        }
    }
}

/// Hybrid offers: what a profile with additional key exchanges proposes.
fn offers() -> &'static (Vec<IkeProposal>, Vec<EspProposal>) {
    static OFFERS: OnceLock<(Vec<IkeProposal>, Vec<EspProposal>)> = OnceLock::new();
    OFFERS.get_or_init(|| {
        let ike = [
            "aes256gcm16-prfsha256-x25519-ke1_mlkem768",
            "aes256gcm16-prfsha384-ecp384-ke1_mlkem1024-ke2_mlkem512-ke3_none",
            "aes128-sha256-x25519-ke1_mlkem512-ke1_none",
        ];
        let esp = ["aes256gcm16-x25519-ke1_mlkem768", "aes128gcm16-ke1_mlkem512-ke2_none"];
        let parse_ike = |s: &&str| IkeProposal::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        let parse_esp = |s: &&str| EspProposal::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        (ike.iter().map(parse_ike).collect(), esp.iter().map(parse_esp).collect())
    })
}

fn proposals(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else { return };
    let Ok(payloads) = wire::decode_chain(first, rest, HEADER_LEN) else { return };
    let (ike, esp) = offers();
    let mut rng = ChaCha20Rng::from_seed([0x53; 32]);
    for p in &payloads {
        match p {
            Payload::Sa(sa) => {
                if let Ok(suite) = select_ike(ike, sa) {
                    // What was chosen was offered, in one proposal, required additional exchanges included.
                    let ok =
                        ike.iter().any(|o| o.groups.contains(&suite.group) && addke_offered(&suite.addke, &o.addke));
                    assert!(ok, "select_ike chose what was not offered: {suite:?}");
                    let _ = addke_groups(&suite.addke);
                }
                for pfs in [false, true] {
                    if let Ok((suite, _spi)) = select_esp(esp, sa, pfs) {
                        // Without a group (a rekey's caller refuses that when it sent a KE) nothing additional;
                        // with one, PFS was asked for, and group and additional exchanges were offered.
                        let ok = match suite.group {
                            None => suite.addke.iter().all(Option::is_none),
                            Some(g) => {
                                pfs && esp
                                    .iter()
                                    .any(|o| o.groups.contains(&g) && addke_offered(&suite.addke, &o.addke))
                            }
                        };
                        assert!(ok, "select_esp (pfs {pfs}) chose what was not offered: {suite:?}");
                    }
                }
            }
            Payload::Ke(k) => {
                if let Some(g) = Group::from_id(k.group).filter(|g| g.is_kem()) {
                    let _ = KeyExchange::respond(g, &k.data, &mut rng);
                    let _ = kem_key(g).shared_secret(&k.data);
                }
            }
            Payload::Notify(n) => {
                let _ = n.notify_type.name();
            }
            _ => {}
        }
    }
}

/// Every chosen additional key exchange was offered for its type, and no required one is missing.
fn addke_offered(chosen: &crate::ike::proposal::AddKe, offer: &crate::ike::proposal::AddKeOffer) -> bool {
    chosen.iter().zip(offer.iter()).all(|(c, o)| match c {
        Some(g) => o.contains(&Some(*g)),
        None => o.is_empty() || o.contains(&None),
    })
}

/// The IKE SA's configuration for the mode byte.
fn config(mode: u8) -> crate::ike::IkeConfig {
    let s = Scenario {
        stage: Stage::Init,
        cbc: false,
        fragmentation: false,
        nat: false,
        mobike: false,
        action: 0,
        eap: 0,
        cert: false,
        online: false,
    };
    let mut c = s.config();
    let ke1 = if mode & flag::MLKEM512 != 0 { "mlkem512" } else { "mlkem768" };
    let ke2 = if mode & flag::KE2 != 0 { "-ke2_mlkem1024" } else { "" };
    let ike = format!("aes256gcm16-prfsha256-x25519-ke1_{ke1}{ke2}");
    c.ike_proposals = vec![IkeProposal::parse(&ike).unwrap_or_else(|e| panic!("{ike}: {e}"))];
    c.pq_fallback = mode & flag::PQ_FALLBACK != 0;
    c.ppk = (mode & flag::PPK != 0).then(|| Ppk {
        id: b"fuzz-ppk".to_vec(),
        secret: Zeroizing::new(vec![0x50; 32]),
        required: mode & flag::PPK_REQUIRED != 0,
    });
    c
}

/// The gateway's state once it answered IKE_SA_INIT.
struct Gateway {
    spi_i: u64,
    spi_r: u64,
    prf: Prf,
    encr: Encr,
    integ: Option<Integ>,
    keys: IkeKeys,
    ni: Vec<u8>,
    nr: Vec<u8>,
    rng: ChaCha20Rng,
}

impl Gateway {
    /// Answer IKE_SA_INIT: the first transform of each type (the additional key exchanges included), an X25519
    /// KE, INTERMEDIATE_EXCHANGE_SUPPORTED, USE_PPK when asked.
    fn answer_init(request: &[u8]) -> Option<(Gateway, Vec<u8>)> {
        let msg = Message::decode(request).ok()?;
        let (mut sa, mut ke, mut ni, mut use_ppk) = (None, None, None, false);
        for p in &msg.payloads {
            match p {
                Payload::Sa(s) => sa = s.first(),
                Payload::Ke(k) => ke = Some(k),
                Payload::Nonce(n) => ni = Some(n.clone()),
                Payload::Notify(n) if n.notify_type == NotifyType::USE_PPK => use_ppk = true,
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
        let (public, shared) = KeyExchange::respond(group, &ke.data, &mut rng).ok()?;
        let spi_i = msg.header.spi_i;
        let spi_r = rng.next_u64() | 1;
        let mut nr = vec![0u8; 32];
        rng.fill_bytes(&mut nr);
        let mut payloads = vec![
            Payload::Sa(vec![chosen]),
            Payload::Ke(KePayload { group: group.id(), data: public }),
            Payload::Nonce(nr.clone()),
            Payload::Notify(Notify::new(NotifyType::INTERMEDIATE_EXCHANGE_SUPPORTED, vec![])),
        ];
        if use_ppk {
            payloads.push(Payload::Notify(Notify::new(NotifyType::USE_PPK, vec![])));
        }
        let response = Message { header: header(spi_i, spi_r, ExchangeType::IKE_SA_INIT, true, 0), payloads }.encode();
        let keys = IkeKeys::derive(prf, encr, integ, &shared, &ni, &nr, spi_i, spi_r).ok()?;
        Some((Gateway { spi_i, spi_r, prf, encr, integ, keys, ni, nr, rng }, response))
    }

    fn seal(&mut self, h: &Header, first: u8, plain: &[u8]) -> Vec<u8> {
        let plain = plain.get(..60_000).unwrap_or(plain);
        let cipher = self.keys.outbound(false);
        let mut msg = wire::encode_sk_prefix(h, first, cipher.sealed_len(plain.len()));
        if let Err(e) = cipher.seal(&mut msg, plain, &mut self.rng) {
            panic!("the gateway's encryption failed: {e}");
        }
        msg
    }

    fn open(&self, raw: &[u8]) -> Option<Vec<Payload>> {
        let msg = Message::decode(raw).ok()?;
        match msg.payloads.last()? {
            Payload::Sk(sk) => {
                let plain = self.keys.inbound(false).open(raw, sk.offset + 4).ok()?;
                wire::decode_chain(sk.first_inner, &plain, 0).ok()
            }
            _ => None,
        }
    }

    /// Our answer to the initiator's IKE_INTERMEDIATE request `raw`: (group, KE data, shared secret).
    fn answer_intermediate(&mut self, raw: &[u8]) -> Option<(Group, Vec<u8>, Zeroizing<Vec<u8>>)> {
        let payloads = self.open(raw)?;
        let k = payloads.iter().find_map(|p| match p {
            Payload::Ke(k) => Some(k),
            _ => None,
        })?;
        let group = Group::from_id(k.group)?;
        let (data, shared) = KeyExchange::respond(group, &k.data, &mut self.rng).ok()?;
        Some((group, data, shared))
    }

    /// SKEYSEED(n) = prf(SK_d(n-1), SK(n) | Ni | Nr) and the keys from it (RFC 9370 §2.2.2).
    fn update(&mut self, shared: &[u8]) {
        if let Ok(k) = IkeKeys::derive_rekey_with(
            self.prf,
            &self.keys.sk_d,
            self.prf,
            self.encr,
            self.integ,
            shared,
            &self.ni,
            &self.nr,
            self.spi_i,
            self.spi_r,
        ) {
            self.keys = k;
        }
    }
}

/// Messages, each `ctrl, first payload type, chunk` (the payload chain) and more as [`ctrl`] says.
/// Returns the IKE SA (not closed yet), what it sent and the time.
fn handshake(mode: u8, input: &mut Input<'_>) -> (IkeSa, Tracker, std::time::Instant) {
    let now = super::epoch();
    let mut sa = match IkeSa::new(config(mode), LOCAL, GATEWAY, now, [0x49; 32]) {
        Ok(sa) => sa,
        Err(e) => panic!("IkeSa::new: {e}"),
    };
    let mut now = now;
    let mut t = Tracker::default();
    drain(&mut sa, &mut t);
    let mut gw = None;
    if mode & flag::SCRIPTED != 0 {
        let Some(init) = t.sent.last().cloned() else { panic!("no IKE_SA_INIT request") };
        let Some((g, response)) = Gateway::answer_init(&init) else { panic!("scripted IKE_SA_INIT failed") };
        sa.handle_datagram(now, &response);
        drain(&mut sa, &mut t);
        gw = Some(g);
    }
    for _ in 0..MAX_MESSAGES {
        if input.is_empty() {
            break;
        }
        let c = input.u8();
        if c & ctrl::TIMER != 0 {
            if let Some((at, _)) = sa.poll_timeout() {
                now = now.max(at);
                sa.handle_timeout(now);
                drain(&mut sa, &mut t);
            }
        }
        let first = input.u8();
        let body = input.chunk();
        let (exchange, id, response) = if c & ctrl::REQUEST != 0 {
            (ExchangeType(input.u8()), t.next_id, false)
        } else {
            let (x, id) = t.last_request.unwrap_or((ExchangeType::IKE_SA_INIT, 0));
            (x, id, true)
        };
        let spi_i = sa.spi_i();
        let spi_r = gw.as_ref().map_or(0x1122_3344_5566_7788, |g: &Gateway| g.spi_r);
        let mut h = header(spi_i, spi_r, exchange, response, id);
        if c & ctrl::ID_OFF != 0 {
            h.message_id = h.message_id.wrapping_add_signed(i32::from(input.u8() as i8));
        }
        // The gateway's KE for the outstanding IKE_INTERMEDIATE request, as it is or changed.
        let mut correct = None;
        let (first, body): (u8, std::borrow::Cow<'_, [u8]>) = match (&mut gw, c & ctrl::KE != 0) {
            (Some(g), true) if exchange == ExchangeType::IKE_INTERMEDIATE => {
                let answer = t.sent.last().and_then(|raw| g.answer_intermediate(raw));
                match answer {
                    Some((group, mut data, shared)) => {
                        let mut changed = false;
                        if c & ctrl::MASK != 0 {
                            let mask = input.chunk();
                            if !mask.is_empty() {
                                data.iter_mut().zip(mask.iter().cycle()).for_each(|(d, m)| *d ^= m);
                                changed |= mask.iter().any(|&m| m != 0);
                            }
                        }
                        if c & ctrl::RESIZE != 0 {
                            let by = input.u8() as i8;
                            let len = data.len().saturating_add_signed(isize::from(by));
                            data.resize(len, 0x5a);
                            changed |= by != 0;
                        }
                        if !changed {
                            correct = Some(shared);
                        }
                        let mut payloads = vec![Payload::Ke(KePayload { group: group.id(), data })];
                        if let Ok(rest) = wire::decode_chain(first, body, 0) {
                            payloads.extend(rest);
                        }
                        let (f, b) = chain(&payloads);
                        (f, b.into())
                    }
                    None => (first, body.into()),
                }
            }
            _ => (first, body.into()),
        };
        let before = t.last_request;
        let datagram = match &mut gw {
            Some(g) if c & ctrl::PLAIN == 0 => g.seal(&h, first, &body),
            _ => plain_message(&h, first, &body),
        };
        sa.handle_datagram(now, &datagram);
        drain(&mut sa, &mut t);
        // The initiator took the additional key exchange and moved on: so does the gateway.
        if let (Some(g), Some(shared)) = (&mut gw, correct) {
            if t.last_request != before {
                g.update(&shared);
            }
        }
    }
    (sa, t, now)
}

/// Seeds: valid encodings for each mode. Unlike the other computed seeds, the ML-KEM values are not the same
/// every time (aws-lc-rs draws ML-KEM keys itself): rewriting the seeds changes the `kem-*` files.
pub(crate) fn seeds(out: &mut Vec<(&'static str, String, Vec<u8>)>) {
    let mut rng = ChaCha20Rng::from_seed([0x54; 32]);
    let mut push = |name: &str, v: Vec<u8>| out.push(("pq_exchange", name.to_string(), v));
    for (i, &g) in KEMS.iter().enumerate() {
        let Ok(kx) = KeyExchange::generate(g, &mut rng) else { continue };
        let Ok((ct, _)) = KeyExchange::respond(g, kem_key(g).public_value(), &mut rng) else { continue };
        let mut v = vec![0, i as u8];
        put_chunk(&mut v, kx.public_value());
        put_chunk(&mut v, &ct);
        v.push(1);
        push(&format!("kem-{}", crate::ike::proposal::group_name(g)), v);
    }
    let mut v = vec![0, 3];
    put_chunk(&mut v, &[9u8; 32]);
    push("kem-x25519", v);

    // Proposals: a hybrid SA as a gateway chooses it, with the KE and the notifies of a hybrid exchange.
    let (ike, esp) = offers();
    for (n, chosen) in ike.iter().enumerate() {
        let Ok(kem) = KeyExchange::generate(Group::MlKem768, &mut rng) else { continue };
        let payloads = vec![
            Payload::Sa(vec![choose(&chosen.to_wire(1, vec![]), vec![])]),
            Payload::Ke(KePayload { group: Group::MlKem768.id(), data: kem.public_value().to_vec() }),
            Payload::Notify(Notify::new(NotifyType::INTERMEDIATE_EXCHANGE_SUPPORTED, vec![])),
            Payload::Notify(Notify::new(NotifyType::USE_PPK, vec![])),
            Payload::Notify(Notify::new(NotifyType::ADDITIONAL_KEY_EXCHANGE, vec![1, 2, 3, 4])),
            Payload::Notify(Notify::new(NotifyType::PPK_IDENTITY, b"\x02fuzz-ppk".to_vec())),
            Payload::Notify(Notify::new(NotifyType::NO_PPK_AUTH, vec![0x11; 32])),
        ];
        let (first, bytes) = chain(&payloads);
        let mut v = vec![1, first];
        v.extend_from_slice(&bytes);
        push(&format!("proposals-ike{n}"), v);
    }
    for (n, e) in esp.iter().enumerate() {
        let (first, bytes) = chain(&[Payload::Sa(vec![choose(&e.to_wire(1, 0x0102_0304, true), vec![1, 2, 3, 4])])]);
        let mut v = vec![1, first];
        v.extend_from_slice(&bytes);
        push(&format!("proposals-esp{n}"), v);
    }

    // Handshakes: the gateway's scripted IKE_SA_INIT, then its IKE_INTERMEDIATE answer (correct, masked,
    // resized), then an IKE_AUTH answer with a PPK_IDENTITY.
    let auth = chain(&[
        Payload::Notify(Notify::new(NotifyType::PPK_IDENTITY, b"\x02fuzz-ppk".to_vec())),
        Payload::Nonce(vec![0; 16]),
    ]);
    for (name, mode, msg) in [
        ("handshake-correct", flag::SCRIPTED, vec![ctrl::KE]),
        ("handshake-ppk", flag::SCRIPTED | flag::PPK, vec![ctrl::KE]),
        ("handshake-ke2", flag::SCRIPTED | flag::KE2 | flag::MLKEM512, vec![ctrl::KE]),
        ("handshake-masked", flag::SCRIPTED, vec![ctrl::KE | ctrl::MASK]),
        ("handshake-resized", flag::SCRIPTED, vec![ctrl::KE | ctrl::RESIZE]),
    ] {
        let mut v = vec![flag::HANDSHAKE | mode];
        v.extend_from_slice(&msg);
        v.push(0);
        put_chunk(&mut v, &[]);
        if msg[0] & ctrl::MASK != 0 {
            put_chunk(&mut v, &[0, 0, 0x40]);
        }
        if msg[0] & ctrl::RESIZE != 0 {
            v.push(0xff);
        }
        if mode & flag::KE2 != 0 {
            v.extend_from_slice(&[ctrl::KE, 0]);
            put_chunk(&mut v, &[]);
        }
        v.extend_from_slice(&[0, auth.0]);
        put_chunk(&mut v, &auth.1);
        push(name, v);
    }
    // An IKE_SA_INIT response from the fuzz bytes: the scripted answer's payloads, in the clear.
    let mut sa = match IkeSa::new(config(flag::PPK), LOCAL, GATEWAY, super::epoch(), [0x49; 32]) {
        Ok(sa) => sa,
        Err(e) => panic!("IkeSa::new: {e}"),
    };
    let mut t = Tracker::default();
    drain(&mut sa, &mut t);
    if let Some((_, response)) = t.sent.last().and_then(|r| Gateway::answer_init(r)) {
        if let Ok(m) = Message::decode(&response) {
            let (first, bytes) = chain(&m.payloads);
            let mut v = vec![flag::HANDSHAKE | flag::PPK, ctrl::PLAIN, first];
            put_chunk(&mut v, &bytes);
            push("handshake-init-response", v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::State;

    fn seed(name: &str) -> Vec<u8> {
        let mut out = Vec::new();
        seeds(&mut out);
        out.into_iter().find(|(_, n, _)| n == name).map(|(_, _, v)| v).unwrap_or_else(|| panic!("no seed {name}"))
    }

    /// The last request the initiator sent after the seed's messages (run without the final close).
    fn after(name: &str) -> (State, Option<(ExchangeType, u32)>) {
        let data = seed(name);
        let mut input = Input::new(&data);
        let mode = input.u8();
        let (sa, t, _) = handshake(mode, &mut input);
        (sa.state(), t.last_request)
    }

    /// The seeds reach what they are for: the scripted IKE_SA_INIT starts IKE_INTERMEDIATE, the correct KE
    /// (and a masked ciphertext: implicit rejection) take the initiator on to IKE_AUTH, a resized one ends it.
    #[test]
    fn handshake_seeds_reach_the_additional_key_exchange() {
        let auth = Some((ExchangeType::IKE_AUTH, 2));
        assert_eq!(after("handshake-correct").1, auth);
        assert_eq!(after("handshake-ppk").1, auth);
        assert_eq!(after("handshake-masked").1, auth);
        assert_eq!(after("handshake-ke2").1, Some((ExchangeType::IKE_AUTH, 3)));
        assert_eq!(after("handshake-resized").0, State::Closed);
        assert_eq!(after("handshake-init-response").1, Some((ExchangeType::IKE_INTERMEDIATE, 1)));
    }

    #[test]
    fn every_seed_runs() {
        let mut out = Vec::new();
        seeds(&mut out);
        assert!(out.len() >= 15);
        for (_, _, v) in out {
            pq_exchange(&v);
        }
    }
}
