//! CREATE_CHILD_SA (RFC 7296 §1.3): rekeying Child SAs and the IKE SA, started by us on our lifetimes or by
//! the gateway, with make-before-break (the old inbound SA keeps working until its Delete).

use std::time::Instant;

use rand_core::RngCore;
use tracing::{debug, info, warn};

use super::exchange::OldIke;
use super::{ts_within, Event, Handling, IkeSa, RequestKind, State};
use crate::crypto::{ChildKeys, Encr, Group, IkeKeys, Integ, KeyExchange, Prf};
use crate::esp::EspParams;
use crate::ike::child::ChildSa;
use crate::ike::error::IkeError;
use crate::ike::proposal::{
    addke_groups, select_esp, select_ike, AddKe, AddKeOffer, EspProposal, EspSuite, IkeProposal, IkeSuite,
};
use crate::wire::{
    self, Delete, KePayload, Notify, NotifyType, Payload, ProtocolId, TrafficSelector, Transform, TransformType,
};

/// A Child SA as the IKE SA tracks it (the keys live in the data plane).
#[derive(Debug, Clone)]
pub(super) struct ChildState {
    pub spi_in: u32,
    pub spi_out: u32,
    /// Our side's and the gateway's selectors.
    pub ts_local: Vec<TrafficSelector>,
    pub ts_remote: Vec<TrafficSelector>,
    /// When we rekey it (None: never, or a rekey is under way).
    pub rekey_at: Option<Instant>,
    /// Byte lifetime with jitter, if one is configured.
    pub rekey_bytes: Option<u64>,
}

/// The Child SAs of the IKE SA (RFC 7296 §1.3) and what holds for all of them.
pub(super) struct Children {
    /// The inbound SPI of the first Child SA, which IKE_AUTH creates.
    pub first_spi_in: u32,
    /// Installed Child SAs (more than one only during a rekey).
    pub installed: Vec<ChildState>,
    /// The key exchange group for Child SA rekeys (PFS) when the gateway asked for another one than our first
    /// (INVALID_KE_PAYLOAD, §1.3).
    pub ke_group: Option<Group>,
    /// The traffic selectors (ours, the gateway's) IKE_AUTH agreed on: later Child SAs may only narrow them.
    pub agreed_ts: Option<(Vec<TrafficSelector>, Vec<TrafficSelector>)>,
}

impl Children {
    pub fn new(first_spi_in: u32) -> Self {
        Children { first_spi_in, installed: Vec::new(), ke_group: None, agreed_ts: None }
    }
}

/// Rekeying and reauthentication (§2.8, RFC 9370 §2.2.4): what is due, what is under way, and the IKE SA
/// being replaced.
#[derive(Default)]
pub(super) struct Rekeying {
    /// Our rekey in flight.
    pub ours: Option<Rekey>,
    /// When we rekey the IKE SA, and when we reauthenticate (make-before-break, by the driver).
    pub ike_at: Option<Instant>,
    pub reauth_at: Option<Instant>,
    /// The IKE SA a rekey replaced, until its Delete is done.
    pub old_ike: Option<OldIke>,
    /// The gateway's IKE rekey we answered, switched to once the answer went out.
    pub pending_switch: Option<PendingSwitch>,
    /// The gateway's rekey waiting for its IKE_FOLLOWUP_KE requests (RFC 9370 §2.2.4).
    pub peer_followup: Option<PeerFollowup>,
}

/// A rekey we started and whose response we wait for.
pub(super) enum Rekey {
    Child {
        old_in: u32,
        spi_in: u32,
        nonce: Vec<u8>,
        ke: Option<KeyExchange>,
    },
    Ike {
        spi: u64,
        nonce: Vec<u8>,
        ke: KeyExchange,
    },
    /// CREATE_CHILD_SA answered; its additional key exchanges run in IKE_FOLLOWUP_KE (RFC 9370 §2.2.4).
    Followup(Box<Followup>),
}

/// The keying material of a rekey whose additional key exchanges run in IKE_FOLLOWUP_KE exchanges (RFC 9370
/// §2.2.4), whichever side started it: the CREATE_CHILD_SA's nonces and SK(0), SK(1) | ... | SK(n) so far, the
/// methods still to run and the link data of the next exchange (the ADDITIONAL_KEY_EXCHANGE notify).
pub(super) struct AdditionalKeys {
    /// The initiator's nonce and the responder's.
    pub ni: Vec<u8>,
    pub nr: Vec<u8>,
    /// SK(0) of the CREATE_CHILD_SA (empty: none, a Child SA without PFS).
    pub shared: zeroize::Zeroizing<Vec<u8>>,
    /// SK(1) | ... | SK(n) so far.
    pub additional: zeroize::Zeroizing<Vec<u8>>,
    /// The methods still to run, in order; the first is the one in flight.
    pub pending: Vec<Group>,
    /// The link data the next IKE_FOLLOWUP_KE carries.
    pub link: Vec<u8>,
}

impl AdditionalKeys {
    fn new(ni: Vec<u8>, nr: Vec<u8>, shared: &[u8], pending: Vec<Group>, link: Vec<u8>) -> Self {
        let shared = zeroize::Zeroizing::new(shared.to_vec());
        AdditionalKeys { ni, nr, shared, additional: Default::default(), pending, link }
    }

    /// The method of the exchange in flight, done: its shared secret joins SK(1) | ... | SK(n). Returns whether
    /// another follows.
    fn complete(&mut self, secret: &[u8]) -> bool {
        if !self.pending.is_empty() {
            self.pending.remove(0);
        }
        self.additional.extend_from_slice(secret);
        !self.pending.is_empty()
    }
}

/// A rekey between its CREATE_CHILD_SA and the last of its IKE_FOLLOWUP_KE exchanges (RFC 9370 §2.2.4).
pub(super) struct Followup {
    /// What is being rekeyed, with what the CREATE_CHILD_SA settled.
    pub target: FollowupTarget,
    pub keys: AdditionalKeys,
    /// Our half of the exchange in flight.
    pub ke: Option<KeyExchange>,
}

pub(super) enum FollowupTarget {
    Child {
        old_in: u32,
        spi_in: u32,
        spi_out: u32,
        suite: EspSuite,
        ts_local: Vec<TrafficSelector>,
        ts_remote: Vec<TrafficSelector>,
    },
    Ike {
        spi: u64,
        their_spi: u64,
        suite: IkeSuite,
    },
}

/// A gateway's rekey we answered whose additional key exchanges the gateway runs in IKE_FOLLOWUP_KE requests
/// (RFC 9370 §2.2.4); the new SA is installed after our answer to the last of them.
pub(super) struct PeerFollowup {
    pub target: PeerTarget,
    /// The gateway's nonce is `ni`; `link` is the link data we sent and expect back with the next KE.
    pub keys: AdditionalKeys,
    /// When we answered the CREATE_CHILD_SA: a gateway that never follows up does not block our rekeys.
    pub started: Instant,
}

pub(super) enum PeerTarget {
    Child {
        replaces: Option<u32>,
        spi_in: u32,
        spi_out: u32,
        suite: EspSuite,
        ts_local: Vec<TrafficSelector>,
        ts_remote: Vec<TrafficSelector>,
    },
    Ike {
        suite: IkeSuite,
        spi_i: u64,
        spi_r: u64,
    },
}

/// How long a gateway's rekey may wait for its next IKE_FOLLOWUP_KE before we forget it.
pub(super) const PEER_FOLLOWUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The link data of an ADDITIONAL_KEY_EXCHANGE notify (RFC 9370 §2.2.4): opaque, at most a sane size.
fn addke_link(payloads: &[Payload]) -> Option<Vec<u8>> {
    payloads.iter().find_map(|p| match p {
        Payload::Notify(n) if n.notify_type == NotifyType::ADDITIONAL_KEY_EXCHANGE && n.data.len() <= 256 => {
            Some(n.data.clone())
        }
        _ => None,
    })
}

/// Draw a non-reserved ESP SPI (RFC 4303 §2.1: 1-255 are reserved).
pub(super) fn new_esp_spi(rng: &mut dyn RngCore) -> u32 {
    loop {
        let s = rng.next_u32();
        if s >= 256 {
            return s;
        }
    }
}

/// As responder, pick the first of the gateway's ESP proposals whose every transform type has a value we accept
/// (§2.7): returns the suite, the gateway's SPI and the proposal to answer with.
fn choose_esp(ours: &[EspProposal], theirs: &[wire::Proposal]) -> Option<(EspSuite, u32, wire::Proposal)> {
    for p in theirs.iter().filter(|p| p.protocol == ProtocolId::ESP) {
        let spi = u32::from_be_bytes(p.spi.as_slice().try_into().ok()?);
        if spi < 256 {
            // 0 is invalid and 1-255 reserved (RFC 4303 §2.1).
            continue;
        }
        for o in ours {
            let encr = p.transforms.iter().find_map(|t| {
                (t.kind == TransformType::ENCR)
                    .then(|| Encr::from_transform(t.id, t.key_len))
                    .flatten()
                    .filter(|e| o.encr.contains(e))
                    .map(|e| (e, *t))
            });
            let Some((encr, te)) = encr else { continue };
            let integ = if encr.is_aead() {
                None
            } else {
                let Some(i) = p.transforms.iter().find_map(|t| {
                    (t.kind == TransformType::INTEG)
                        .then(|| Integ::from_id(t.id))
                        .flatten()
                        .filter(|i| o.integ.contains(i))
                        .map(|i| (i, *t))
                }) else {
                    continue;
                };
                Some(i)
            };
            let dh: Vec<&Transform> =
                p.transforms.iter().filter(|t| t.kind == TransformType::DH && t.id != 0).collect();
            let group = if dh.is_empty() {
                None
            } else {
                let Some(g) = dh.iter().find_map(|t| {
                    // PFS only with a group we offer ourselves.
                    Group::from_id(t.id).filter(|g| o.groups.contains(g)).map(|g| (g, **t))
                }) else {
                    continue;
                };
                Some(g)
            };
            let esns: Vec<&Transform> = p.transforms.iter().filter(|t| t.kind == TransformType::ESN).collect();
            let esn = if esns.is_empty() {
                Some((false, None))
            } else {
                esns.iter().find_map(|t| {
                    let e = t.id == wire::esn::YES;
                    o.esn.contains(&e).then_some((e, Some(**t)))
                })
            };
            let Some((esn, te_esn)) = esn else { continue };
            // Additional key exchanges (RFC 9370 §2.2.4) only with a key exchange in the CREATE_CHILD_SA itself.
            let Some((addke, addke_tf)) = answer_addke(p, &o.addke) else { continue };
            if group.is_none() && addke.iter().any(Option::is_some) {
                continue;
            }
            let mut transforms = vec![te];
            if let Some((_, t)) = integ {
                transforms.push(t);
            }
            if let Some((_, t)) = group {
                transforms.push(t);
            }
            if let Some(t) = te_esn {
                transforms.push(t);
            }
            transforms.extend(addke_tf);
            let chosen = wire::Proposal { number: p.number, protocol: ProtocolId::ESP, spi: vec![], transforms };
            let suite = EspSuite { encr, integ: integ.map(|(i, _)| i), group: group.map(|(g, _)| g), esn, addke };
            suite.warn_if_legacy();
            return Some((suite, spi, chosen));
        }
    }
    None
}

/// As responder, pick an IKE proposal from the gateway's (§2.7).
fn choose_ike(ours: &[IkeProposal], theirs: &[wire::Proposal]) -> Option<(IkeSuite, u64, wire::Proposal)> {
    for p in theirs.iter().filter(|p| p.protocol == ProtocolId::IKE) {
        let spi = u64::from_be_bytes(p.spi.as_slice().try_into().ok()?);
        if spi == 0 {
            continue; // §3.3.1: an IKE SA's SPI is never zero
        }
        for o in ours {
            let find = |kind: TransformType| p.transforms.iter().filter(move |t| t.kind == kind);
            let Some((encr, te)) = find(TransformType::ENCR)
                .find_map(|t| Encr::from_transform(t.id, t.key_len).filter(|e| o.encr.contains(e)).map(|e| (e, *t)))
            else {
                continue;
            };
            let Some((prf, tp)) = find(TransformType::PRF)
                .find_map(|t| Prf::from_id(t.id).filter(|x| o.prf.contains(x)).map(|x| (x, *t)))
            else {
                continue;
            };
            let integ = if encr.is_aead() {
                None
            } else {
                let Some(i) = find(TransformType::INTEG)
                    .find_map(|t| Integ::from_id(t.id).filter(|x| o.integ.contains(x)).map(|x| (x, *t)))
                else {
                    continue;
                };
                Some(i)
            };
            let Some((group, tg)) = find(TransformType::DH)
                .find_map(|t| Group::from_id(t.id).filter(|g| o.groups.contains(g)).map(|g| (g, *t)))
            else {
                continue;
            };
            let Some((addke, addke_tf)) = answer_addke(p, &o.addke) else { continue };
            let mut transforms = vec![te, tp];
            if let Some((_, t)) = integ {
                transforms.push(t);
            }
            transforms.push(tg);
            transforms.extend(addke_tf);
            let chosen = wire::Proposal { number: p.number, protocol: ProtocolId::IKE, spi: vec![], transforms };
            let suite = IkeSuite { encr, integ: integ.map(|(i, _)| i), prf, group, addke };
            suite.warn_if_legacy();
            return Some((suite, spi, chosen));
        }
    }
    None
}

/// As responder of a gateway's rekey, choose its additional key exchanges (RFC 9370 §2.2.4): per ADDKE type
/// the gateway offers, its first method we accept (NONE only where we offered NONE or nothing for that type);
/// a type we require and it does not offer rules the proposal out. Returns the choice and its transforms.
fn answer_addke(p: &wire::Proposal, ours: &AddKeOffer) -> Option<(AddKe, Vec<Transform>)> {
    let mut chosen: AddKe = [None; 7];
    let mut out = Vec::new();
    for (i, offer) in ours.iter().enumerate() {
        let kind = TransformType::addke(i + 1);
        let theirs: Vec<&Transform> = p.transforms.iter().filter(|t| t.kind == kind).collect();
        let none_ok = offer.is_empty() || offer.contains(&None);
        if theirs.is_empty() {
            if !none_ok {
                return None;
            }
            continue;
        }
        let t = theirs.into_iter().find(|t| match Group::from_id(t.id) {
            _ if t.id == wire::dh::NONE => none_ok,
            Some(g) => offer.contains(&Some(g)),
            None => false,
        })?;
        chosen[i] = (t.id != wire::dh::NONE).then(|| Group::from_id(t.id)).flatten();
        out.push(*t);
    }
    Some((chosen, out))
}

fn nonce_of(payloads: &[Payload]) -> Option<&Vec<u8>> {
    payloads.iter().find_map(|p| match p {
        Payload::Nonce(n) => Some(n),
        _ => None,
    })
}

fn ke_of(payloads: &[Payload]) -> Option<&KePayload> {
    payloads.iter().find_map(|p| match p {
        Payload::Ke(k) => Some(k),
        _ => None,
    })
}

fn sa_of(payloads: &[Payload]) -> Option<&Vec<wire::Proposal>> {
    payloads.iter().find_map(|p| match p {
        Payload::Sa(s) => Some(s),
        _ => None,
    })
}

fn ts_of(payloads: &[Payload]) -> (Option<&Vec<TrafficSelector>>, Option<&Vec<TrafficSelector>>) {
    let mut i = None;
    let mut r = None;
    for p in payloads {
        match p {
            Payload::TsI(t) => i = Some(t),
            Payload::TsR(t) => r = Some(t),
            _ => {}
        }
    }
    (i, r)
}

impl IkeSa {
    /// Jittered rekey time for a lifetime (like strongSwan: up to 10% earlier).
    pub(super) fn rekey_time(&mut self, now: Instant, lifetime: Option<std::time::Duration>) -> Option<Instant> {
        let l = lifetime?;
        let jitter = l.mul_f64(f64::from(self.rng.next_u32() % 1000) / 10_000.0);
        Some(now + l - jitter)
    }

    /// Record a new Child SA and hand its keys to the data plane.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn install_child(
        &mut self,
        now: Instant,
        suite: EspSuite,
        spi_in: u32,
        spi_out: u32,
        keys: ChildKeys,
        we_initiated_exchange: bool,
        ts_local: Vec<TrafficSelector>,
        ts_remote: Vec<TrafficSelector>,
        replaces: Option<u32>,
    ) {
        // KEYMAT order (§2.17): initiator-to-responder first, "initiator" being who started this exchange.
        let (enc_in, integ_in, enc_out, integ_out) = if we_initiated_exchange {
            (keys.enc_r2i, keys.integ_r2i, keys.enc_i2r, keys.integ_i2r)
        } else {
            (keys.enc_i2r, keys.integ_i2r, keys.enc_r2i, keys.integ_r2i)
        };
        let param = |spi, enc_key, integ_key| EspParams {
            spi,
            encr: suite.encr,
            integ: suite.integ,
            enc_key,
            integ_key,
            esn: suite.esn,
        };
        let child = ChildSa {
            suite,
            inbound: param(spi_in, enc_in, integ_in),
            outbound: param(spi_out, enc_out, integ_out),
            ts_i: ts_local.clone(),
            ts_r: ts_remote.clone(),
            replaces,
            // The rekey responder keeps sending on the old SA until the initiator deletes it (§2.8).
            outbound_now: replaces.is_none() || we_initiated_exchange,
        };
        info!(esp = %suite, spi_in = format_args!("{spi_in:08x}"), spi_out = format_args!("{spi_out:08x}"),
              rekey = replaces.is_some(), "Child SA installed");
        // Without a time lifetime a byte lifetime still needs a "rekey pending" marker: far in the future.
        let rekey_at = self.rekey_time(now, self.config.child_lifetime).or_else(|| {
            self.config.child_lifetime_bytes.map(|_| now + std::time::Duration::from_secs(10 * 365 * 86400))
        });
        let rekey_bytes =
            self.config.child_lifetime_bytes.map(|b| b - b / 10 * u64::from(self.rng.next_u32() % 1000) / 1000);
        self.child.installed.push(ChildState { spi_in, spi_out, ts_local, ts_remote, rekey_at, rekey_bytes });
        self.events.push_back(Event::ChildSaInstalled(child));
    }

    /// Our Child SA lifetime ran out: CREATE_CHILD_SA with REKEY_SA (§1.3.3).
    pub(super) fn start_child_rekey(&mut self, now: Instant, idx: usize) -> Result<(), IkeError> {
        let Some(old) = self.child.installed.get_mut(idx) else { return Ok(()) };
        old.rekey_at = None;
        let old = old.clone();
        let spi_in = new_esp_spi(&mut self.rng);
        let mut nonce = vec![0u8; 32];
        self.rng.fill_bytes(&mut nonce);
        // PFS when our ESP proposals name a group (the group of the first one is sent, or the one the gateway
        // asked for with INVALID_KE_PAYLOAD).
        let group =
            self.child.ke_group.or_else(|| self.config.esp_proposals.iter().find_map(|p| p.groups.first().copied()));
        let ke = match group {
            Some(g) => Some(KeyExchange::generate(g, &mut self.rng)?),
            None => None,
        };
        let proposals = self
            .config
            .esp_proposals
            .iter()
            .enumerate()
            .map(|(i, p)| p.to_wire((i + 1) as u8, spi_in, ke.is_some()))
            .collect();
        let mut payloads = vec![Payload::Notify(Notify {
            protocol: ProtocolId::ESP.0,
            spi: old.spi_in.to_be_bytes().to_vec(),
            notify_type: NotifyType::REKEY_SA,
            data: vec![],
        })];
        payloads.push(Payload::Sa(proposals));
        payloads.push(Payload::Nonce(nonce.clone()));
        if let Some(k) = &ke {
            payloads.push(Payload::Ke(KePayload { group: k.group().id(), data: k.public_value().to_vec() }));
        }
        payloads.push(Payload::TsI(old.ts_local.clone()));
        payloads.push(Payload::TsR(old.ts_remote.clone()));
        info!(spi_in = format_args!("{:08x}", old.spi_in), "rekeying Child SA");
        self.rekeying.ours = Some(Rekey::Child { old_in: old.spi_in, spi_in, nonce, ke });
        self.send_request(now, wire::ExchangeType::CREATE_CHILD_SA, RequestKind::RekeyChild, payloads)
    }

    /// The gateway answered our Child SA rekey.
    pub(super) fn handle_child_rekey_response(&mut self, now: Instant, payloads: Vec<Payload>) -> Result<(), IkeError> {
        let Some(Rekey::Child { old_in, spi_in, nonce, ke }) = self.rekeying.ours.take() else {
            return Err(IkeError::Protocol("CREATE_CHILD_SA response without our rekey"));
        };
        let error = payloads.iter().find_map(|p| match p {
            Payload::Notify(n) if n.notify_type.is_error() => Some(n.notify_type),
            _ => None,
        });
        let Some(old) = self.child.installed.iter().find(|c| c.spi_in == old_in).cloned() else {
            return Ok(()); // deleted meanwhile
        };
        if error == Some(NotifyType::INVALID_KE_PAYLOAD) {
            // §1.3: the gateway chose a proposal with another group; if it is one of ours, again with it, now.
            let wanted = payloads.iter().find_map(|p| match p {
                Payload::Notify(n) if n.notify_type == NotifyType::INVALID_KE_PAYLOAD => {
                    n.data.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]]))
                }
                _ => None,
            });
            let ours = wanted
                .and_then(Group::from_id)
                .filter(|g| self.config.esp_proposals.iter().any(|p| p.groups.contains(g)))
                .filter(|g| ke.as_ref().is_some_and(|k| k.group() != *g));
            if let (Some(g), Some(idx)) = (ours, self.child.installed.iter().position(|c| c.spi_in == old_in)) {
                info!(group = g.id(), "the gateway wants another key exchange group for the rekey; retrying");
                self.child.ke_group = Some(g);
                return self.start_child_rekey(now, idx);
            }
        }
        if let Some(t) = error {
            // TEMPORARY_FAILURE (a collision, §2.25) or a refusal: keep the old SA and try again a bit later.
            warn!(notify = %t, "gateway refused our Child SA rekey; retrying later");
            let retry = now + std::time::Duration::from_secs(10 + u64::from(self.rng.next_u32() % 20));
            if let Some(c) = self.child.installed.iter_mut().find(|c| c.spi_in == old_in) {
                c.rekey_at = Some(retry);
            }
            return Ok(());
        }
        let sa = sa_of(&payloads).ok_or(IkeError::Protocol("CREATE_CHILD_SA response lacks SA"))?;
        let (suite, spi_out) = select_esp(&self.config.esp_proposals, sa, ke.is_some())?;
        let nr = nonce_of(&payloads).ok_or(IkeError::Protocol("CREATE_CHILD_SA response lacks Nonce"))?.clone();
        let shared = match (&ke, suite.group, ke_of(&payloads)) {
            (Some(k), Some(g), Some(p)) if k.group() == g && p.group == g.id() => Some(k.shared_secret(&p.data)?),
            (None, None, None) => None,
            _ => return Err(IkeError::Protocol("CREATE_CHILD_SA KE does not match the chosen group")),
        };
        let (tsi, tsr) = ts_of(&payloads);
        let ts_local = tsi.cloned().unwrap_or(old.ts_local.clone());
        let ts_remote = tsr.cloned().unwrap_or(old.ts_remote.clone());
        // The new SA may only narrow the old one's selectors (which IKE_AUTH agreed), never widen them (§2.9).
        if !ts_within(&ts_local, &old.ts_local) || !ts_within(&ts_remote, &old.ts_remote) {
            warn!(?ts_local, ?ts_remote, "gateway widened the traffic selectors in a Child SA rekey");
            return Err(IkeError::TsUnacceptable);
        }
        let pending = addke_groups(&suite.addke);
        if let (false, Some(shared)) = (pending.is_empty(), shared.clone()) {
            let target = FollowupTarget::Child { old_in, spi_in, spi_out, suite, ts_local, ts_remote };
            return self.start_followup(now, target, nonce, nr, shared, pending, &payloads);
        }
        self.finish_child_rekey(
            now,
            old_in,
            spi_in,
            spi_out,
            suite,
            &nonce,
            &nr,
            shared.as_deref().map(|s| s.as_slice()),
            &[],
            ts_local,
            ts_remote,
        )
    }

    /// Install the rekeyed Child SA (with the secrets of its additional key exchanges, RFC 9370 §2.2.4) and
    /// queue the old one's Delete.
    #[allow(clippy::too_many_arguments)]
    fn finish_child_rekey(
        &mut self,
        now: Instant,
        old_in: u32,
        spi_in: u32,
        spi_out: u32,
        suite: EspSuite,
        ni: &[u8],
        nr: &[u8],
        shared: Option<&[u8]>,
        additional: &[u8],
        ts_local: Vec<TrafficSelector>,
        ts_remote: Vec<TrafficSelector>,
    ) -> Result<(), IkeError> {
        let prf = self.ex.suite.ok_or(IkeError::Protocol("no IKE suite"))?.prf;
        let keys = self.ex.keys.as_ref().ok_or(IkeError::Protocol("no IKE keys"))?;
        let ck = ChildKeys::derive_hybrid(prf, &keys.sk_d, shared, ni, nr, additional, suite.encr, suite.integ);
        self.install_child(now, suite, spi_in, spi_out, ck, true, ts_local, ts_remote, Some(old_in));
        // Make-before-break: the new SA is in place; now delete the old one (§1.3.3).
        self.queue.push_back(Queued::DeleteChild(old_in));
        Ok(())
    }

    /// The CREATE_CHILD_SA of a rekey chose additional key exchanges: run them in IKE_FOLLOWUP_KE exchanges,
    /// each carrying the gateway's link data (RFC 9370 §2.2.4).
    #[allow(clippy::too_many_arguments)]
    fn start_followup(
        &mut self,
        now: Instant,
        target: FollowupTarget,
        ni: Vec<u8>,
        nr: Vec<u8>,
        shared: zeroize::Zeroizing<Vec<u8>>,
        pending: Vec<Group>,
        payloads: &[Payload],
    ) -> Result<(), IkeError> {
        let link = addke_link(payloads)
            .ok_or(IkeError::Protocol("rekey with additional key exchanges but no ADDITIONAL_KEY_EXCHANGE notify"))?;
        let f = Followup { target, keys: AdditionalKeys::new(ni, nr, &shared, pending, link), ke: None };
        self.send_followup(now, f)
    }

    fn send_followup(&mut self, now: Instant, mut f: Followup) -> Result<(), IkeError> {
        let group = *f.keys.pending.first().ok_or(IkeError::Protocol("no additional key exchange left"))?;
        let ke = KeyExchange::generate(group, &mut self.rng)?;
        let payloads = vec![
            Payload::Ke(KePayload { group: group.id(), data: ke.public_value().to_vec() }),
            Payload::Notify(Notify::new(NotifyType::ADDITIONAL_KEY_EXCHANGE, f.keys.link.clone())),
        ];
        f.ke = Some(ke);
        self.rekeying.ours = Some(Rekey::Followup(Box::new(f)));
        self.send_request(now, wire::ExchangeType::IKE_FOLLOWUP_KE, RequestKind::FollowupKe, payloads)
    }

    /// The gateway's half of one additional key exchange of a rekey (RFC 9370 §2.2.4); after the last one the
    /// new Child SA or IKE SA with keys from all of them.
    pub(super) fn handle_followup_response(&mut self, now: Instant, payloads: Vec<Payload>) -> Result<(), IkeError> {
        let Some(Rekey::Followup(mut f)) = self.rekeying.ours.take() else {
            return Err(IkeError::Protocol("IKE_FOLLOWUP_KE response without our rekey"));
        };
        if let Some(t) = payloads.iter().find_map(|p| match p {
            Payload::Notify(n) if n.notify_type.is_error() => Some(n.notify_type),
            _ => None,
        }) {
            // The gateway lost the exchange (STATE_NOT_FOUND) or refused it: the old SA stays, try again later.
            warn!(notify = %t, "gateway refused an additional key exchange of our rekey; retrying later");
            let retry = now + std::time::Duration::from_secs(10 + u64::from(self.rng.next_u32() % 20));
            match f.target {
                FollowupTarget::Child { old_in, .. } => {
                    if let Some(c) = self.child.installed.iter_mut().find(|c| c.spi_in == old_in) {
                        c.rekey_at = Some(retry);
                    }
                }
                FollowupTarget::Ike { .. } => self.rekeying.ike_at = Some(retry),
            }
            return Ok(());
        }
        let ke = f.ke.take().ok_or(IkeError::Protocol("no additional key exchange in flight"))?;
        let kp = ke_of(&payloads).ok_or(IkeError::Protocol("IKE_FOLLOWUP_KE response lacks KE"))?;
        if kp.group != ke.group().id() {
            return Err(IkeError::Protocol("IKE_FOLLOWUP_KE response KE is not the chosen additional method"));
        }
        let secret = ke.shared_secret(&kp.data)?;
        if f.keys.complete(&secret) {
            f.keys.link = addke_link(&payloads)
                .ok_or(IkeError::Protocol("IKE_FOLLOWUP_KE response lacks the next ADDITIONAL_KEY_EXCHANGE"))?;
            return self.send_followup(now, *f);
        }
        let Followup { target, keys: AdditionalKeys { ni, nr, shared, additional, .. }, .. } = *f;
        match target {
            FollowupTarget::Child { old_in, spi_in, spi_out, suite, ts_local, ts_remote } => {
                if !self.child.installed.iter().any(|c| c.spi_in == old_in) {
                    return Ok(()); // deleted meanwhile
                }
                self.finish_child_rekey(
                    now,
                    old_in,
                    spi_in,
                    spi_out,
                    suite,
                    &ni,
                    &nr,
                    Some(&shared),
                    &additional,
                    ts_local,
                    ts_remote,
                )
            }
            FollowupTarget::Ike { spi, their_spi, suite } => {
                self.switch_ike_sa(now, suite, &shared, &additional, &ni, &nr, spi, their_spi, true)
            }
        }
    }

    /// The gateway's CREATE_CHILD_SA request: rekey of a Child SA or of the IKE SA. Returns our reply payloads.
    pub(super) fn handle_peer_create_child(
        &mut self,
        now: Instant,
        payloads: &[Payload],
    ) -> Result<Vec<Payload>, Handling> {
        let no = |t: NotifyType| Ok(vec![Payload::Notify(Notify::new(t, vec![]))]);
        if self.rekeying.ours.is_some()
            || self.rekeying.peer_followup.as_ref().is_some_and(|f| now < f.started + PEER_FOLLOWUP_TIMEOUT)
        {
            // A collision with our own rekey (§2.8.1), or the gateway's previous one still runs its additional
            // key exchanges: let the gateway retry later.
            return no(NotifyType::TEMPORARY_FAILURE);
        }
        self.rekeying.peer_followup = None;
        let Some(sa) = sa_of(payloads) else { return no(NotifyType::INVALID_SYNTAX) };
        let Some(ni) = nonce_of(payloads).cloned() else { return no(NotifyType::INVALID_SYNTAX) };
        if sa.iter().any(|p| p.protocol == ProtocolId::IKE) {
            return self.handle_peer_ike_rekey(now, sa, &ni, payloads);
        }
        let rekey = payloads.iter().find_map(|p| match p {
            Payload::Notify(n) if n.notify_type == NotifyType::REKEY_SA && n.protocol == ProtocolId::ESP.0 => {
                n.spi.as_slice().try_into().ok().map(u32::from_be_bytes)
            }
            _ => None,
        });
        let old = match rekey {
            Some(old_spi) => match self.child.installed.iter().find(|c| c.spi_out == old_spi || c.spi_in == old_spi) {
                Some(c) => Some(c.clone()),
                None => {
                    return Ok(vec![Payload::Notify(Notify {
                        protocol: ProtocolId::ESP.0,
                        spi: old_spi.to_be_bytes().to_vec(),
                        notify_type: NotifyType::CHILD_SA_NOT_FOUND,
                        data: vec![],
                    })])
                }
            },
            // The gateway recreates a Child SA it deleted (e.g. after its hard lifetime): fine if we have none.
            None if self.child.installed.is_empty() => None,
            None => {
                debug!("gateway asks for an additional Child SA; we keep one");
                return no(NotifyType::NO_ADDITIONAL_SAS);
            }
        };
        // Selectors the new SA may cover: the old SA's, or for a new one what IKE_AUTH agreed (§2.9).
        let (have_local, have_remote) = match (&old, &self.child.agreed_ts) {
            (Some(o), _) => (o.ts_local.clone(), o.ts_remote.clone()),
            (None, Some((l, r))) => (l.clone(), r.clone()),
            (None, None) => return no(NotifyType::TS_UNACCEPTABLE),
        };
        let Some((suite, spi_out, mut chosen)) = choose_esp(&self.config.esp_proposals, sa) else {
            return no(NotifyType::NO_PROPOSAL_CHOSEN);
        };
        let (shared, ke_reply) = match (suite.group, ke_of(payloads)) {
            (Some(g), Some(k)) if k.group == g.id() => {
                let ours = KeyExchange::generate(g, &mut self.rng).map_err(|e| Handling::Fatal(e.into()))?;
                let Ok(s) = ours.shared_secret(&k.data) else { return no(NotifyType::INVALID_SYNTAX) };
                (Some(s), Some(KePayload { group: g.id(), data: ours.public_value().to_vec() }))
            }
            (Some(g), _) => {
                return Ok(vec![Payload::Notify(Notify::new(
                    NotifyType::INVALID_KE_PAYLOAD,
                    g.id().to_be_bytes().to_vec(),
                ))])
            }
            (None, _) => (None, None),
        };
        // Their TSi is their side, TSr ours; they may not widen what we have.
        let (tsi, tsr) = ts_of(payloads);
        let (Some(tsi), Some(tsr)) = (tsi, tsr) else { return no(NotifyType::INVALID_SYNTAX) };
        if !ts_within(tsr, &have_local) || !ts_within(tsi, &have_remote) {
            return no(NotifyType::TS_UNACCEPTABLE);
        }
        let spi_in = new_esp_spi(&mut self.rng);
        chosen.spi = spi_in.to_be_bytes().to_vec();
        let mut nr = vec![0u8; 32];
        self.rng.fill_bytes(&mut nr);
        let replaces = old.as_ref().map(|o| o.spi_in);
        // The gateway rekeys this one: we do not.
        if let Some(c) = self.child.installed.iter_mut().find(|c| Some(c.spi_in) == replaces) {
            c.rekey_at = None;
        }
        let mut reply = vec![Payload::Sa(vec![chosen]), Payload::Nonce(nr.clone())];
        if let Some(k) = ke_reply {
            reply.push(Payload::Ke(k));
        }
        reply.push(Payload::TsI(tsi.clone()));
        reply.push(Payload::TsR(tsr.clone()));
        let target =
            PeerTarget::Child { replaces, spi_in, spi_out, suite, ts_local: tsr.clone(), ts_remote: tsi.clone() };
        let shared = shared.unwrap_or_default();
        let pending = addke_groups(&suite.addke);
        if pending.is_empty() {
            self.finish_peer_child(now, target, &ni, &nr, &shared, &[]).map_err(Handling::Fatal)?;
        } else {
            let link = self.expect_followups(now, target, &ni, &nr, &shared, pending);
            reply.push(Payload::Notify(Notify::new(NotifyType::ADDITIONAL_KEY_EXCHANGE, link)));
        }
        Ok(reply)
    }

    /// The gateway's rekey chose additional key exchanges: remember what it settled until its IKE_FOLLOWUP_KE
    /// requests ran them (RFC 9370 §2.2.4). Returns the link data for our ADDITIONAL_KEY_EXCHANGE notify.
    fn expect_followups(
        &mut self,
        now: Instant,
        target: PeerTarget,
        ni: &[u8],
        nr: &[u8],
        shared: &[u8],
        pending: Vec<Group>,
    ) -> Vec<u8> {
        let mut link = vec![0u8; 8];
        self.rng.fill_bytes(&mut link);
        info!(additional = pending.len(), "gateway's rekey runs additional key exchanges (RFC 9370)");
        let keys = AdditionalKeys::new(ni.to_vec(), nr.to_vec(), shared, pending, link.clone());
        self.rekeying.peer_followup = Some(PeerFollowup { target, keys, started: now });
        link
    }

    /// Install the Child SA the gateway created or rekeyed, keyed from SK(0) | SK(1) | ... | SK(n)
    /// (RFC 9370 §2.2.4; without additional exchanges RFC 7296 §2.17).
    fn finish_peer_child(
        &mut self,
        now: Instant,
        target: PeerTarget,
        ni: &[u8],
        nr: &[u8],
        shared: &[u8],
        additional: &[u8],
    ) -> Result<(), IkeError> {
        let PeerTarget::Child { replaces, spi_in, spi_out, suite, ts_local, ts_remote } = target else {
            return Err(IkeError::Protocol("not a Child SA rekey"));
        };
        if let Some(old) = replaces {
            if !self.child.installed.iter().any(|c| c.spi_in == old) {
                debug!("the Child SA the gateway rekeyed is gone; not installing its successor");
                return Ok(());
            }
        }
        let prf = self.ex.suite.ok_or(IkeError::Protocol("no IKE suite"))?.prf;
        let keys = self.ex.keys.as_ref().ok_or(IkeError::Protocol("no IKE keys"))?;
        let shared = (!shared.is_empty()).then_some(shared);
        let ck = ChildKeys::derive_hybrid(prf, &keys.sk_d, shared, ni, nr, additional, suite.encr, suite.integ);
        match replaces {
            Some(o) => info!(old = format_args!("{o:08x}"), "gateway rekeys the Child SA"),
            None => info!("gateway creates a new Child SA"),
        }
        self.install_child(now, suite, spi_in, spi_out, ck, false, ts_local, ts_remote, replaces);
        if let Some(c) = self.child.installed.iter_mut().find(|c| Some(c.spi_in) == replaces) {
            c.rekey_at = None;
        }
        Ok(())
    }

    /// The gateway's IKE_FOLLOWUP_KE request (RFC 9370 §2.2.4): the link data must be ours and the KE the next
    /// method; after the last, the new SA. Returns our reply payloads.
    pub(super) fn handle_peer_followup(
        &mut self,
        now: Instant,
        payloads: &[Payload],
    ) -> Result<Vec<Payload>, Handling> {
        let no = |t: NotifyType| Ok(vec![Payload::Notify(Notify::new(t, vec![]))]);
        let link = addke_link(payloads);
        let Some(mut f) = self.rekeying.peer_followup.take() else { return no(NotifyType::STATE_NOT_FOUND) };
        if link.as_ref() != Some(&f.keys.link) || now >= f.started + PEER_FOLLOWUP_TIMEOUT {
            // Not the exchange we wait for (§2.2.4: STATE_NOT_FOUND); ours stays until its own times out.
            let stale = now >= f.started + PEER_FOLLOWUP_TIMEOUT;
            if !stale {
                self.rekeying.peer_followup = Some(f);
            }
            return no(NotifyType::STATE_NOT_FOUND);
        }
        let Some(&group) = f.keys.pending.first() else { return no(NotifyType::STATE_NOT_FOUND) };
        let Some(ke) = ke_of(payloads).filter(|k| k.group == group.id()) else {
            warn!(
                group = group.id(),
                "gateway's IKE_FOLLOWUP_KE lacks the KE of the negotiated method; rekey abandoned"
            );
            return no(NotifyType::INVALID_SYNTAX);
        };
        let (data, secret) = match KeyExchange::respond(group, &ke.data, &mut self.rng) {
            Ok(x) => x,
            Err(e) => {
                warn!(%e, "gateway's IKE_FOLLOWUP_KE has a bad key exchange value; rekey abandoned");
                return no(NotifyType::INVALID_SYNTAX);
            }
        };
        let mut reply = vec![Payload::Ke(KePayload { group: group.id(), data })];
        if f.keys.complete(&secret) {
            let mut link = vec![0u8; 8];
            self.rng.fill_bytes(&mut link);
            f.keys.link.clone_from(&link);
            reply.push(Payload::Notify(Notify::new(NotifyType::ADDITIONAL_KEY_EXCHANGE, link)));
            self.rekeying.peer_followup = Some(f);
            return Ok(reply);
        }
        let PeerFollowup { target, keys: AdditionalKeys { ni, nr, shared, additional, .. }, .. } = f;
        match target {
            PeerTarget::Child { .. } => {
                self.finish_peer_child(now, target, &ni, &nr, &shared, &additional).map_err(Handling::Fatal)?;
            }
            PeerTarget::Ike { suite, spi_i, spi_r } => {
                // Switch once this answer is out, as without additional exchanges.
                self.rekeying.pending_switch = Some(PendingSwitch { suite, shared, additional, ni, nr, spi_i, spi_r });
            }
        }
        Ok(reply)
    }

    /// Our IKE SA lifetime ran out: CREATE_CHILD_SA with a new IKE SA proposal (§1.3.2).
    pub(super) fn start_ike_rekey(&mut self, now: Instant) -> Result<(), IkeError> {
        self.rekeying.ike_at = None;
        let group = self.ex.suite.ok_or(IkeError::Protocol("no IKE suite"))?.group;
        let ke = KeyExchange::generate(group, &mut self.rng)?;
        let mut spi = 0;
        while spi == 0 {
            spi = self.rng.next_u64();
        }
        let mut nonce = vec![0u8; 32];
        self.rng.fill_bytes(&mut nonce);
        let proposals = self.ike_proposals_for(group, spi.to_be_bytes().to_vec());
        let payloads = vec![
            Payload::Sa(proposals),
            Payload::Nonce(nonce.clone()),
            Payload::Ke(KePayload { group: group.id(), data: ke.public_value().to_vec() }),
        ];
        info!("rekeying the IKE SA");
        self.rekeying.ours = Some(Rekey::Ike { spi, nonce, ke });
        self.send_request(now, wire::ExchangeType::CREATE_CHILD_SA, RequestKind::RekeyIke, payloads)
    }

    /// The gateway answered our IKE SA rekey: switch to the new IKE SA, then delete the old one.
    pub(super) fn handle_ike_rekey_response(&mut self, now: Instant, payloads: Vec<Payload>) -> Result<(), IkeError> {
        let Some(Rekey::Ike { spi, nonce, ke }) = self.rekeying.ours.take() else {
            return Err(IkeError::Protocol("IKE rekey response without our rekey"));
        };
        if let Some(t) = payloads.iter().find_map(|p| match p {
            Payload::Notify(n) if n.notify_type.is_error() => Some(n.notify_type),
            _ => None,
        }) {
            warn!(notify = %t, "gateway refused our IKE SA rekey; retrying later");
            self.rekeying.ike_at = Some(now + std::time::Duration::from_secs(10 + u64::from(self.rng.next_u32() % 20)));
            return Ok(());
        }
        let sa = sa_of(&payloads).ok_or(IkeError::Protocol("IKE rekey response lacks SA"))?;
        let suite = select_ike(&self.offered_ike(), sa)?;
        let their_spi = sa
            .first()
            .and_then(|p| <[u8; 8]>::try_from(p.spi.as_slice()).ok())
            .map(u64::from_be_bytes)
            .filter(|s| *s != 0)
            .ok_or(IkeError::Protocol("IKE rekey response without an 8-byte SPI"))?;
        let nr = nonce_of(&payloads).ok_or(IkeError::Protocol("IKE rekey response lacks Nonce"))?.clone();
        let kp = ke_of(&payloads).ok_or(IkeError::Protocol("IKE rekey response lacks KE"))?;
        if kp.group != ke.group().id() || suite.group != ke.group() {
            return Err(IkeError::Protocol("IKE rekey KE group mismatch"));
        }
        let shared = ke.shared_secret(&kp.data)?;
        let pending = addke_groups(&suite.addke);
        if !pending.is_empty() {
            let target = FollowupTarget::Ike { spi, their_spi, suite };
            return self.start_followup(now, target, nonce, nr, shared, pending, &payloads);
        }
        self.switch_ike_sa(now, suite, &shared, &[], &nonce, &nr, spi, their_spi, true)?;
        Ok(())
    }

    fn handle_peer_ike_rekey(
        &mut self,
        now: Instant,
        sa: &[wire::Proposal],
        ni: &[u8],
        payloads: &[Payload],
    ) -> Result<Vec<Payload>, Handling> {
        let no = |t: NotifyType| Ok(vec![Payload::Notify(Notify::new(t, vec![]))]);
        let Some((suite, their_spi, mut chosen)) = choose_ike(&self.offered_ike(), sa) else {
            return no(NotifyType::NO_PROPOSAL_CHOSEN);
        };
        let Some(kp) = ke_of(payloads) else { return no(NotifyType::INVALID_SYNTAX) };
        if kp.group != suite.group.id() {
            return Ok(vec![Payload::Notify(Notify::new(
                NotifyType::INVALID_KE_PAYLOAD,
                suite.group.id().to_be_bytes().to_vec(),
            ))]);
        }
        let ours = KeyExchange::generate(suite.group, &mut self.rng).map_err(|e| Handling::Fatal(e.into()))?;
        let Ok(shared) = ours.shared_secret(&kp.data) else { return no(NotifyType::INVALID_SYNTAX) };
        let mut our_spi = 0;
        while our_spi == 0 {
            our_spi = self.rng.next_u64();
        }
        chosen.spi = our_spi.to_be_bytes().to_vec();
        let mut nr = vec![0u8; 32];
        self.rng.fill_bytes(&mut nr);
        info!("gateway rekeys the IKE SA");
        let mut reply = vec![
            Payload::Sa(vec![chosen]),
            Payload::Nonce(nr.clone()),
            Payload::Ke(KePayload { group: suite.group.id(), data: ours.public_value().to_vec() }),
        ];
        // The gateway is the initiator of the new IKE SA (§2.18): its SPI is SPIi.
        let target = PeerTarget::Ike { suite, spi_i: their_spi, spi_r: our_spi };
        let pending = addke_groups(&suite.addke);
        if !pending.is_empty() {
            let link = self.expect_followups(now, target, ni, &nr, &shared, pending);
            reply.push(Payload::Notify(Notify::new(NotifyType::ADDITIONAL_KEY_EXCHANGE, link)));
            return Ok(reply);
        }
        self.rekeying.pending_switch = Some(PendingSwitch {
            suite,
            shared,
            additional: Default::default(),
            ni: ni.to_vec(),
            nr,
            spi_i: their_spi,
            spi_r: our_spi,
        });
        Ok(reply)
    }

    /// Move to the new IKE SA (§2.18): new SPIs, keys from the old SK_d, message IDs from zero. The old SA is
    /// remembered only to answer (or send) its Delete. `we_initiated`: we started the rekey, so we are the
    /// new SA's initiator.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn switch_ike_sa(
        &mut self,
        now: Instant,
        suite: IkeSuite,
        shared: &[u8],
        additional: &[u8],
        ni: &[u8],
        nr: &[u8],
        spi_ni: u64,
        spi_nr: u64,
        we_initiated: bool,
    ) -> Result<(), IkeError> {
        let old_suite = self.ex.suite.ok_or(IkeError::Protocol("no IKE suite"))?;
        let old_keys = self.ex.keys.as_ref().ok_or(IkeError::Protocol("no IKE keys"))?;
        let (spi_i, spi_r) = (spi_ni, spi_nr);
        let keys = IkeKeys::derive_rekey_hybrid(
            old_suite.prf,
            &old_keys.sk_d,
            suite.prf,
            suite.encr,
            suite.integ,
            shared,
            ni,
            nr,
            additional,
            spi_i,
            spi_r,
        )?;
        if !we_initiated {
            // Our request in flight on the old SA (the gateway rekeyed meanwhile, §2.8): the gateway deletes that
            // SA soon, and retransmissions there may never be answered. Send it again on the new SA.
            match self.ex.pending_kind() {
                Some(RequestKind::DeleteChild(spi)) => self.queue.push_front(Queued::DeleteChild(spi)),
                Some(RequestKind::UpdateAddresses) => self.queue.push_front(Queued::UpdateAddresses),
                Some(RequestKind::Delete) => self.queue.push_front(Queued::DeleteIke),
                // A liveness check: the gateway's rekey just showed it is alive.
                Some(RequestKind::Dpd) | None => {}
                Some(other) => debug!(?other, "request in flight on the old IKE SA dropped"),
            }
            self.ex.cancel();
        }
        self.rekeying.old_ike = Some(self.ex.rekeyed(spi_i, spi_r, we_initiated, suite, keys));
        self.rekeying.ike_at = self.rekey_time(now, self.config.ike_lifetime);
        info!(suite = %suite, spi_i = format_args!("{spi_i:016x}"), spi_r = format_args!("{spi_r:016x}"), "IKE SA rekeyed");
        if we_initiated {
            // Delete the old IKE SA on the old SA (§1.3.2).
            self.send_old_ike_delete(now);
        }
        Ok(())
    }
}

/// What we still have to send once the current request is answered (window size 1, §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Queued {
    DeleteChild(u32),
    UpdateAddresses,
    DeleteIke,
}

/// A gateway-initiated IKE rekey answered: switch after our response went out.
pub(super) struct PendingSwitch {
    pub suite: IkeSuite,
    pub shared: zeroize::Zeroizing<Vec<u8>>,
    /// SK(1) | ... | SK(n) of its additional key exchanges (RFC 9370 §2.2.4).
    pub additional: zeroize::Zeroizing<Vec<u8>>,
    pub ni: Vec<u8>,
    pub nr: Vec<u8>,
    pub spi_i: u64,
    pub spi_r: u64,
}

impl IkeSa {
    /// Send the Delete for the old IKE SA over the old SA, fire and forget (its keys are dropped after).
    fn send_old_ike_delete(&mut self, _now: Instant) {
        let Some(old) = self.rekeying.old_ike.as_mut() else { return };
        let payloads = [Payload::Delete(Delete { protocol: ProtocolId::IKE, spis: vec![] })];
        match old.seal_request(&payloads, &mut self.rng) {
            Ok(msg) => self.ex.emit(msg),
            Err(e) => warn!(%e, "cannot delete the old IKE SA"),
        }
    }

    /// Whether a Child SA rekey, IKE rekey or queued request is due.
    pub(super) fn next_rekey_deadline(&self) -> Option<Instant> {
        if self.state != State::Established {
            return None;
        }
        let due = [self.child.installed.iter().filter_map(|c| c.rekey_at).min(), self.rekeying.ike_at]
            .into_iter()
            .flatten()
            .min()
            // Not before the gateway's own rekey ran its additional key exchanges (or gave up on them).
            .map(|t| self.rekeying.peer_followup.as_ref().map_or(t, |f| t.max(f.started + PEER_FOLLOWUP_TIMEOUT)));
        [due, self.rekeying.reauth_at].into_iter().flatten().min()
    }
}
