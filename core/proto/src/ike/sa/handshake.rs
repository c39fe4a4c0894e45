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
use crate::ike::proposal::select_ike;
use crate::wire::{self, ExchangeType, KePayload, Message, Notify, NotifyType, Payload};

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
        }
    }
}

impl IkeSa {
    pub(super) fn send_init(&mut self, now: Instant) {
        let Some(ke) = self.hs.ke.as_ref() else { return };
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
        let header = ike_header(self.ex.spi_i, 0, ExchangeType::IKE_SA_INIT, true, false, 0);
        let bytes = Message { header, payloads }.encode();
        self.hs.request = bytes.clone();
        let retransmits = RequestKind::Init.retransmits(&self.config);
        self.ex.start_request(now, RequestKind::Init, 0, vec![bytes], retransmits);
    }

    pub(super) fn handle_init_response(&mut self, now: Instant, raw: &[u8], msg: Message) -> Result<(), Handling> {
        let payloads = &msg.payloads;
        if let Some(to) = self.init_redirect(payloads)? {
            self.ex.cancel();
            self.finish(CloseReason::Redirected(to));
            return Ok(());
        }
        if let Some(n) = notify_of(payloads, NotifyType::COOKIE) {
            if self.hs.retries >= MAX_INIT_RETRIES || n.data.is_empty() || n.data.len() > 64 {
                return self.note_init_error(IkeError::Protocol("COOKIE loop or bad COOKIE"));
            }
            debug!("gateway asked for a COOKIE (§2.6)");
            self.hs.retries += 1;
            self.hs.cookie = Some(n.data.clone());
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
            if self.hs.retries >= MAX_INIT_RETRIES || self.hs.ke.as_ref().map(|k| k.group()) == Some(group) {
                return self.note_init_error(IkeError::Protocol("INVALID_KE_PAYLOAD loop"));
            }
            info!(group = wanted, "gateway asked for another key exchange group (INVALID_KE_PAYLOAD), retrying");
            self.hs.retries += 1;
            self.hs.ke = Some(KeyExchange::generate(group, &mut self.rng).map_err(|e| Handling::Fatal(e.into()))?);
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
        let ours = self.hs.ke.take().ok_or(Handling::Fatal(IkeError::Protocol("no key exchange state")))?;
        if suite.group != ours.group() || ke_p.group != ours.group().id() {
            return Err(Handling::Fatal(IkeError::Protocol("KE group differs from the chosen group")));
        }
        if nonce.len() < 16 || nonce.len() > 256 {
            return Err(Handling::Fatal(IkeError::Protocol("bad responder nonce length")));
        }
        let shared = ours.shared_secret(&ke_p.data).map_err(|e| Handling::Fatal(e.into()))?;
        let spi_r = msg.header.spi_r;
        self.hs.nr = nonce.clone();
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
        self.ex.keyed(spi_r, suite, keys, fragmentation);
        self.hs.error = None;
        self.hs.response = raw.to_vec();
        self.hs.peer_hash_algorithms = hash_algs;
        self.hs.gateway_sent_certreq = payloads.iter().any(|p| matches!(p, Payload::CertReq(_)));

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
}
