//! IKE_SA_INIT (RFC 7296 §1.2, §2.6, §2.10, §2.23): our nonce and key exchange, the COOKIE and
//! INVALID_KE_PAYLOAD retries, the gateway's unauthenticated error answers (§2.21.1) and NAT detection; the
//! messages as sent and received are kept for the AUTH payloads (§2.15).

use std::time::Instant;

use rand_core::RngCore;
use tracing::{debug, info, warn};

use super::{
    first_error_notify, ike_header, notify_of, Handling, IkeSa, RequestKind, INIT_ERROR_REPEATS, MAX_INIT_RETRIES,
};
use crate::crypto::{self, Group, IkeKeys, KeyExchange};
use crate::ike::error::{CloseReason, IkeError};
use crate::ike::proposal::{addke_groups, addke_names, addke_required, select_ike, IkeProposal, IkeSuite};
use crate::wire::{self, ExchangeType, Header, KePayload, Message, Notify, NotifyType, Payload};

/// The state of IKE_SA_INIT, and what IKE_AUTH needs of it.
pub(super) struct Handshake {
    /// Our nonce and the gateway's (§2.10).
    pub ni: Vec<u8>,
    pub nr: Vec<u8>,
    /// Our key exchange, until the gateway's KE arrived.
    pub ke: Option<KeyExchange>,
    /// The gateway's COOKIE (§2.6), and how often it made us start over (COOKIE, INVALID_KE_PAYLOAD).
    pub cookie: Option<Vec<u8>>,
    pub retries: u32,
    /// The IKE_SA_INIT request and response as sent/received: signed in AUTH (§2.15).
    pub request: Vec<u8>,
    pub response: Vec<u8>,
    /// An error notification in an (unauthenticated) IKE_SA_INIT response, kept while we wait for a real
    /// answer (§2.21.1), with the number of our transmissions it answered and the last of them; reported if
    /// no valid answer comes.
    pub error: Option<(IkeError, u32, u32)>,
    /// SIGNATURE_HASH_ALGORITHMS the gateway announced (RFC 7427 §4).
    pub peer_hash_algorithms: Vec<u16>,
    /// The gateway sent CERTREQ in IKE_SA_INIT (it asks for certificates).
    pub gateway_sent_certreq: bool,
    /// The additional key exchanges still to run in IKE_INTERMEDIATE exchanges (RFC 9370 §2.2.1), in order,
    /// and our half of the one in flight.
    pub addke_pending: Vec<Group>,
    pub addke_ke: Option<KeyExchange>,
    /// IntAuth_iN and IntAuth_rN over the IKE_INTERMEDIATE messages (RFC 9242 §3.3.1), and the message ID of
    /// our first IKE_AUTH request: both AUTH payloads cover them (RFC 9242 §3.3).
    pub int_auth: Option<(Vec<u8>, Vec<u8>)>,
    pub auth_mid: u32,
    /// We proposed additional key exchanges, the gateway chose none, and `pq_fallback` allowed it.
    pub pq_fallback: bool,
    /// Our PPK (RFC 8784) is in play: the gateway answered USE_PPK; cleared when it does not use it after all.
    pub use_ppk: bool,
}

impl Handshake {
    pub fn new(ni: Vec<u8>, ke: KeyExchange) -> Handshake {
        Handshake {
            ni,
            nr: Vec::new(),
            ke: Some(ke),
            cookie: None,
            retries: 0,
            request: Vec::new(),
            response: Vec::new(),
            error: None,
            peer_hash_algorithms: Vec::new(),
            gateway_sent_certreq: false,
            addke_pending: Vec::new(),
            addke_ke: None,
            int_auth: None,
            auth_mid: 0,
            pq_fallback: false,
            use_ppk: false,
        }
    }
}

impl IkeSa {
    pub(super) fn send_init(&mut self, now: Instant) {
        let Some(bytes) = self.init_message() else { return };
        let retransmits = RequestKind::Init.retransmits(&self.config);
        self.ex.start_request(now, RequestKind::Init, 0, vec![bytes], retransmits);
    }

    /// Our IKE_SA_INIT request (kept for the AUTH payload's signed octets, §2.15); `None` without a key share.
    pub(super) fn init_message(&mut self) -> Option<Vec<u8>> {
        let ke = self.hs.ke.as_ref()?;
        let mut payloads = Vec::new();
        if let Some(c) = &self.hs.cookie {
            payloads.push(Payload::Notify(Notify::new(NotifyType::COOKIE, c.clone())));
        }
        // Proposals with the group of our KE payload first, so the gateway can pick it without a round trip.
        let proposals = self.ike_proposals_for(ke.group(), Vec::new());
        payloads.push(Payload::Sa(proposals));
        payloads.push(Payload::Ke(KePayload { group: ke.group().id(), data: ke.public_value().to_vec() }));
        payloads.push(Payload::Nonce(self.hs.ni.clone()));
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
        if self.config.ike_proposals.iter().any(|p| p.addke.iter().any(|o| !o.is_empty())) {
            payloads.push(Payload::Notify(Notify::new(NotifyType::INTERMEDIATE_EXCHANGE_SUPPORTED, vec![])));
        }
        if self.config.ppk.is_some() {
            payloads.push(Payload::Notify(Notify::new(NotifyType::USE_PPK, vec![])));
        }
        let header = ike_header(self.ex.spi_i, 0, ExchangeType::IKE_SA_INIT, true, false, 0);
        let bytes = Message { header, payloads }.encode();
        self.hs.request = bytes.clone();
        Some(bytes)
    }

    pub(super) fn handle_init_response(&mut self, now: Instant, raw: &[u8], msg: Message) -> Result<(), Handling> {
        let payloads = &msg.payloads;
        if let Some(done) = self.init_answered_without_sa(now, payloads) {
            return done;
        }
        if msg.header.spi_r == 0 {
            return Err(Handling::Drop("IKE_SA_INIT response without responder SPI".into()));
        }
        let init = InitPayloads::of(payloads)?;
        let suite = select_ike(&self.offered_ike(), init.sa).map_err(|e| Handling::Fatal(e.into()))?;
        let addke = self.check_additional_key_exchanges(&suite, payloads)?;
        self.check_ppk(payloads)?;
        self.derive_ike_keys(&suite, init.ke, init.nonce, msg.header.spi_r, payloads)?;
        self.hs.error = None;
        self.hs.response = raw.to_vec();
        self.hs.peer_hash_algorithms = init.hash_algorithms;
        self.hs.gateway_sent_certreq = payloads.iter().any(|p| matches!(p, Payload::CertReq(_)));
        self.detect_nat(&init.nat_src, init.nat_dst);
        info!(suite = %suite, nat = ?self.nat, "IKE_SA_INIT done");
        if !addke.is_empty() {
            info!(additional = %addke_names(&suite.addke), "running the additional key exchanges (RFC 9370)");
            self.hs.addke_pending = addke;
            return self.send_intermediate(now).map_err(Handling::Fatal);
        }
        self.send_auth(now).map_err(Handling::Fatal)
    }

    /// A response that creates no SA: a redirect (RFC 5685), a COOKIE (§2.6) or INVALID_KE_PAYLOAD (§1.3)
    /// to start over with, or an error notification (§2.21.1). `Some` with the outcome when it was one of them.
    fn init_answered_without_sa(&mut self, now: Instant, payloads: &[Payload]) -> Option<Result<(), Handling>> {
        match self.init_redirect(payloads) {
            Err(e) => return Some(Err(e)),
            Ok(Some(to)) => {
                self.ex.cancel();
                self.finish(CloseReason::Redirected(to));
                return Some(Ok(()));
            }
            Ok(None) => {}
        }
        if let Some(n) = notify_of(payloads, NotifyType::COOKIE) {
            if self.hs.retries >= MAX_INIT_RETRIES || n.data.is_empty() || n.data.len() > 64 {
                return Some(self.note_init_error(IkeError::Protocol("COOKIE loop or bad COOKIE")));
            }
            debug!("gateway asked for a COOKIE (§2.6)");
            self.hs.retries += 1;
            self.hs.cookie = Some(n.data.clone());
            self.ex.cancel();
            self.send_init(now);
            return Some(Ok(()));
        }
        if let Some(n) = notify_of(payloads, NotifyType::INVALID_KE_PAYLOAD) {
            return Some(self.retry_with_group(now, &n.data));
        }
        let t = first_error_notify(payloads)?;
        if t == NotifyType::NO_PROPOSAL_CHOSEN && self.pq_only() {
            // Only proposals with required additional key exchanges went out (pq_fallback off).
            return Some(self.note_init_error(IkeError::PostQuantumRefused("NO_PROPOSAL_CHOSEN")));
        }
        Some(self.note_init_error(IkeError::from_notify(t)))
    }

    /// INVALID_KE_PAYLOAD (§1.3): start over with the group the gateway wants, if we offered it and have not
    /// tried it already.
    fn retry_with_group(&mut self, now: Instant, data: &[u8]) -> Result<(), Handling> {
        let wanted = data
            .get(..2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or(Handling::Drop("INVALID_KE_PAYLOAD without group".into()))?;
        let Some(group) = Group::from_id(wanted).filter(|g| self.offered_ike().iter().any(|p| p.groups.contains(g)))
        else {
            return self.note_init_error(IkeError::UnsupportedKeGroup(wanted));
        };
        if self.hs.retries >= MAX_INIT_RETRIES || self.hs.ke.as_ref().map(|k| k.group()) == Some(group) {
            return self.note_init_error(IkeError::Protocol("INVALID_KE_PAYLOAD loop"));
        }
        info!(group = wanted, "gateway asked for another key exchange group (INVALID_KE_PAYLOAD), retrying");
        self.hs.retries += 1;
        self.hs.ke = Some(KeyExchange::generate(group, &mut self.rng).map_err(|e| Handling::Fatal(e.into()))?);
        self.ex.cancel();
        self.send_init(now);
        Ok(())
    }

    /// The additional key exchanges of the chosen suite (RFC 9370), after checking them against the profile:
    /// none when we required some is refused unless `pq_fallback`; some need IKE_INTERMEDIATE (RFC 9242).
    fn check_additional_key_exchanges(
        &mut self,
        suite: &IkeSuite,
        payloads: &[Payload],
    ) -> Result<Vec<Group>, Handling> {
        let addke = addke_groups(&suite.addke);
        if addke.is_empty() && self.config.ike_proposals.iter().any(|p| addke_required(&p.addke)) {
            if !self.config.pq_fallback {
                return Err(Handling::Fatal(IkeError::PostQuantumRefused("it chose a proposal without them")));
            }
            warn!(suite = %suite, "the gateway chose classical key exchange only; connecting without the \
                   additional (post-quantum) key exchanges as ike.pq_fallback allows");
            self.hs.pq_fallback = true;
        }
        if !addke.is_empty() && notify_of(payloads, NotifyType::INTERMEDIATE_EXCHANGE_SUPPORTED).is_none() {
            return Err(Handling::Fatal(IkeError::Protocol(
                "the gateway chose additional key exchanges without INTERMEDIATE_EXCHANGE_SUPPORTED (RFC 9242)",
            )));
        }
        Ok(addke)
    }

    /// With a PPK in the profile (RFC 8784 §3): whether the gateway answered USE_PPK; refused when the PPK is
    /// required and it did not.
    fn check_ppk(&mut self, payloads: &[Payload]) -> Result<(), Handling> {
        let Some(ppk) = &self.config.ppk else { return Ok(()) };
        self.hs.use_ppk = notify_of(payloads, NotifyType::USE_PPK).is_some();
        if !self.hs.use_ppk {
            if ppk.required {
                return Err(Handling::Fatal(IkeError::PpkNotUsed("it did not answer USE_PPK in IKE_SA_INIT")));
            }
            warn!("the gateway does not support postquantum preshared keys (no USE_PPK); continuing without");
        }
        Ok(())
    }

    /// The shared secret with the gateway's KE and the IKE SA's keys (§2.14); the exchange layer is keyed.
    fn derive_ike_keys(
        &mut self,
        suite: &IkeSuite,
        ke: &KePayload,
        nonce: &[u8],
        spi_r: u64,
        payloads: &[Payload],
    ) -> Result<(), Handling> {
        let ours = self.hs.ke.take().ok_or(Handling::Fatal(IkeError::Protocol("no key exchange state")))?;
        if suite.group != ours.group() || ke.group != ours.group().id() {
            return Err(Handling::Fatal(IkeError::Protocol("KE group differs from the chosen group")));
        }
        if nonce.len() < 16 || nonce.len() > 256 {
            return Err(Handling::Fatal(IkeError::Protocol("bad responder nonce length")));
        }
        let shared = ours.shared_secret(&ke.data).map_err(|e| Handling::Fatal(e.into()))?;
        self.hs.nr = nonce.to_vec();
        let keys = IkeKeys::derive(
            suite.prf,
            suite.encr,
            suite.integ,
            &shared,
            &self.hs.ni,
            &self.hs.nr,
            self.ex.spi_i,
            spi_r,
        )
        .map_err(|e| Handling::Fatal(e.into()))?;
        let fragmentation =
            self.config.fragment_mtu > 0 && notify_of(payloads, NotifyType::IKEV2_FRAGMENTATION_SUPPORTED).is_some();
        self.ex.keyed(spi_r, *suite, keys, fragmentation);
        Ok(())
    }

    /// NAT detection (§2.23): the gateway hashed the addresses it saw; compare with what we know. Behind a NAT,
    /// and always with MOBIKE (RFC 4555 §3.3), IKE continues on port 4500.
    fn detect_nat(&mut self, nat_src: &[&Vec<u8>], nat_dst: Option<&Vec<u8>>) {
        let Some(dst) = nat_dst else {
            if self.config.force_encap {
                warn!("gateway does not support NAT traversal; cannot force UDP encapsulation");
            }
            return;
        };
        self.mobility.natd_seen = Some(dst.clone());
        let expect = crypto::nat_detection_hash(self.ex.spi_i, self.ex.spi_r, self.ex.local);
        self.nat.local_behind_nat = dst.as_slice() != expect.as_slice();
        self.nat.forced = self.config.force_encap;
        let expect = crypto::nat_detection_hash(self.ex.spi_i, self.ex.spi_r, self.ex.remote);
        self.nat.remote_behind_nat = !nat_src.iter().any(|h| h.as_slice() == expect.as_slice());
        // From then on our address is the NAT-T socket's, and the gateway's NAT detection covers that one.
        if (self.nat.any() || self.config.mobike) && !self.ex.nat_t {
            self.ex.float(self.local_natt_port);
            self.mobility.natd_seen = None;
        }
    }

    /// The IKE proposals we offer: the profile's, and with `pq_fallback` each one with additional key
    /// exchanges once more without them (after all of them), for gateways without RFC 9370.
    pub(super) fn offered_ike(&self) -> Vec<IkeProposal> {
        let mut out = self.config.ike_proposals.clone();
        if self.config.pq_fallback {
            for p in &self.config.ike_proposals {
                let c = p.classical();
                if addke_required(&p.addke) && !out.contains(&c) {
                    out.push(c);
                }
            }
        }
        out
    }

    /// Every proposal we offer requires additional key exchanges.
    fn pq_only(&self) -> bool {
        self.offered_ike().iter().all(|p| addke_required(&p.addke))
    }

    /// The next additional key exchange in an IKE_INTERMEDIATE request (RFC 9370 §2.2.1), protected with the
    /// keys so far; its IntAuth_i is computed as it goes out (RFC 9242 §3.3.1).
    pub(super) fn send_intermediate(&mut self, now: Instant) -> Result<(), IkeError> {
        let group = *self.hs.addke_pending.first().ok_or(IkeError::Protocol("no additional key exchange left"))?;
        let ke = KeyExchange::generate(group, &mut self.rng)?;
        let payloads = vec![Payload::Ke(KePayload { group: group.id(), data: ke.public_value().to_vec() })];
        let header = self.ex.request_header(ExchangeType::IKE_INTERMEDIATE);
        self.note_int_auth(true, &header, &payloads)?;
        self.hs.addke_ke = Some(ke);
        self.send_request(now, ExchangeType::IKE_INTERMEDIATE, RequestKind::Intermediate, payloads)
    }

    /// Chain one IKE_INTERMEDIATE message into IntAuth (RFC 9242 §3.3.1-§3.3.2): for our request (`ours`)
    /// IntAuth_i = prf(SK_pi, IntAuth_i(prev) | A | P), for the gateway's response the same with SK_pr and
    /// IntAuth_r, the SK_p being those protecting this exchange. A is the IKE header and the Encrypted
    /// payload's header with the lengths counting only the plaintext P (no IV, padding or ICV, as strongSwan
    /// computes them), P the inner payloads.
    fn note_int_auth(&mut self, ours: bool, header: &Header, payloads: &[Payload]) -> Result<(), IkeError> {
        let suite = self.ex.suite.ok_or(IkeError::Protocol("no IKE suite"))?;
        let keys = self.ex.keys.as_ref().ok_or(IkeError::Protocol("no IKE keys"))?;
        let mut plain = zeroize::Zeroizing::new(Vec::new());
        let first = wire::encode_chain(payloads, &mut plain);
        let a = wire::encode_sk_prefix(header, first, plain.len());
        let (i, r) = self.hs.int_auth.get_or_insert_with(Default::default);
        let (key, chain) = if ours { (&keys.sk_pi, i) } else { (&keys.sk_pr, r) };
        let next = suite.prf.prf_parts(key, &[chain, &a, &plain]);
        *chain = next.to_vec();
        Ok(())
    }

    /// The gateway's half of an additional key exchange (RFC 9370 §2.2.1): its KE for the method it chose, then
    /// SKEYSEED(n) = prf(SK_d(n-1), SK(n) | Ni | Nr) and the new keys (§2.2.2); the next exchange or IKE_AUTH.
    pub(super) fn handle_intermediate_response(
        &mut self,
        now: Instant,
        header: &Header,
        payloads: Vec<Payload>,
    ) -> Result<(), IkeError> {
        let group = *self.hs.addke_pending.first().ok_or(IkeError::Protocol("unexpected IKE_INTERMEDIATE response"))?;
        if let Some(t) = first_error_notify(&payloads) {
            if t == NotifyType::INVALID_KE_PAYLOAD {
                // The method was agreed in IKE_SA_INIT: there is nothing else to retry with (RFC 9370 §2.2.1).
                return Err(IkeError::Protocol(
                    "the gateway refused the additional key exchange method it chose itself (INVALID_KE_PAYLOAD)",
                ));
            }
            return Err(IkeError::from_notify(t));
        }
        let kp = payloads
            .iter()
            .find_map(|p| match p {
                Payload::Ke(k) => Some(k),
                _ => None,
            })
            .ok_or(IkeError::Protocol("IKE_INTERMEDIATE response lacks KE"))?;
        if kp.group != group.id() {
            return Err(IkeError::Protocol("IKE_INTERMEDIATE response KE is not the chosen additional method"));
        }
        let ke = self.hs.addke_ke.take().ok_or(IkeError::Protocol("no additional key exchange in flight"))?;
        let shared = ke.shared_secret(&kp.data)?;
        self.note_int_auth(false, header, &payloads)?;
        let suite = self.ex.suite.ok_or(IkeError::Protocol("no IKE suite"))?;
        let keys = self.ex.keys.as_ref().ok_or(IkeError::Protocol("no IKE keys"))?;
        let new = IkeKeys::derive_rekey_with(
            suite.prf,
            &keys.sk_d,
            suite.prf,
            suite.encr,
            suite.integ,
            &shared,
            &self.hs.ni,
            &self.hs.nr,
            self.ex.spi_i,
            self.ex.spi_r,
        )?;
        self.ex.update_keys(new);
        self.hs.addke_pending.remove(0);
        info!(group = %crate::ike::proposal::group_name(group), "additional key exchange done, keys updated");
        if self.hs.addke_pending.is_empty() {
            self.send_auth(now)
        } else {
            self.send_intermediate(now)
        }
    }

    /// An IKE_SA_INIT response we cannot go on with (an error notification, a bad COOKIE...) is not
    /// authenticated, so anyone on the path could have sent it (§2.21.1): note it and keep waiting for a valid
    /// answer. Fail with it when the retransmissions run out, or once it answered [`INIT_ERROR_REPEATS`] of our
    /// transmissions (then it is the gateway's answer, and waiting longer only hides the reason).
    pub(super) fn note_init_error(&mut self, e: IkeError) -> Result<(), Handling> {
        let sends = self.ex.sends();
        let (count, last) = match self.hs.error.take() {
            Some((_, count, last)) if last == sends => (count, last),
            Some((_, count, _)) => (count + 1, sends),
            None => (1, sends),
        };
        if count >= INIT_ERROR_REPEATS {
            return Err(Handling::Fatal(e));
        }
        warn!(%e, "unauthenticated IKE_SA_INIT error; waiting for a valid answer (RFC 7296 §2.21.1)");
        self.hs.error = Some((e, count, last));
        Err(Handling::Drop("unauthenticated IKE_SA_INIT error noted".into()))
    }

    /// Our IKE SA proposals with `group` moved first in each, so the gateway can take the KE we send along;
    /// `spi` is empty in IKE_SA_INIT and our new SPI in an IKE SA rekey.
    pub(super) fn ike_proposals_for(&self, group: Group, spi: Vec<u8>) -> Vec<wire::Proposal> {
        self.offered_ike()
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
}

/// The payloads of an IKE_SA_INIT response that creates the SA (§1.2).
struct InitPayloads<'a> {
    sa: &'a [wire::Proposal],
    ke: &'a KePayload,
    nonce: &'a [u8],
    /// NAT_DETECTION_SOURCE_IP (any number) and NAT_DETECTION_DESTINATION_IP (§2.23).
    nat_src: Vec<&'a Vec<u8>>,
    nat_dst: Option<&'a Vec<u8>>,
    /// SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4).
    hash_algorithms: Vec<u16>,
}

impl<'a> InitPayloads<'a> {
    fn of(payloads: &'a [Payload]) -> Result<Self, Handling> {
        let (mut sa, mut ke, mut nonce) = (None, None, None);
        let (mut nat_src, mut nat_dst, mut hash_algorithms) = (Vec::new(), None, Vec::new());
        for p in payloads {
            match p {
                Payload::Sa(s) => sa = Some(s),
                Payload::Ke(k) => ke = Some(k),
                Payload::Nonce(n) => nonce = Some(n),
                Payload::Notify(n) if n.notify_type == NotifyType::NAT_DETECTION_SOURCE_IP => nat_src.push(&n.data),
                Payload::Notify(n) if n.notify_type == NotifyType::SIGNATURE_HASH_ALGORITHMS => {
                    hash_algorithms = n.data.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
                }
                Payload::Notify(n) if n.notify_type == NotifyType::NAT_DETECTION_DESTINATION_IP => {
                    nat_dst = Some(&n.data)
                }
                _ => {}
            }
        }
        let (Some(sa), Some(ke), Some(nonce)) = (sa, ke, nonce) else {
            return Err(Handling::Fatal(IkeError::Protocol("IKE_SA_INIT response lacks SA, KE or Nonce")));
        };
        Ok(InitPayloads { sa, ke, nonce, nat_src, nat_dst, hash_algorithms })
    }
}
