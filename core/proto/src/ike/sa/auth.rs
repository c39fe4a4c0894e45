//! IKE_AUTH (RFC 7296 §1.2, §2.15, §2.16): our AUTH (PSK, signature) or EAP, the gateway's proof of identity
//! (its AUTH, certificate and IDr), the configuration payload and the first Child SA.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use tracing::{debug, info, trace, warn};
use zeroize::Zeroizing;

use super::{
    first_error_notify, notify_of, ts_within, Event, IkeSa, PpkStatus, RequestKind, SessionInfo, State, VirtualConfig,
    MIN_AUTH_LIFETIME,
};
use crate::crypto::{self, ChildKeys, SigScheme};
use crate::eap::{EapAction, EapPeer};
use crate::ike::auth::{psk_auth, signed_octets};
use crate::ike::config::{AuthConfig, GatewayAuth};
use crate::ike::error::IkeError;
use crate::ike::identity::display_identity;
use crate::ike::proposal::select_esp;
use crate::ike::ts::parse_cidr;
use crate::wire::{
    self, cert_encoding, cfg_attr, AuthMethod, AuthPayload, CertPayload, CfgType, ConfigAttribute, ConfigPayload,
    ExchangeType, Identification, Notify, NotifyType, Payload, TrafficSelector,
};

/// The payloads of an IKE_AUTH response that IKE_AUTH looks at (§1.2, §2.16).
struct AuthResponse<'a> {
    payloads: &'a [Payload],
    idr: Option<&'a Identification>,
    auth: Option<&'a AuthPayload>,
    cp: Option<&'a ConfigPayload>,
    sa: Option<&'a [wire::Proposal]>,
    tsi: Option<&'a Vec<TrafficSelector>>,
    tsr: Option<&'a Vec<TrafficSelector>>,
    eap: Option<&'a [u8]>,
    /// The gateway's X.509 certificates, end entity first.
    certs: Vec<&'a [u8]>,
}

impl<'a> AuthResponse<'a> {
    fn parse(payloads: &'a [Payload]) -> AuthResponse<'a> {
        let mut r = AuthResponse {
            payloads,
            idr: None,
            auth: None,
            cp: None,
            sa: None,
            tsi: None,
            tsr: None,
            eap: None,
            certs: Vec::new(),
        };
        for p in payloads {
            match p {
                Payload::IdR(i) => r.idr = Some(i),
                Payload::Auth(a) => r.auth = Some(a),
                Payload::Cp(c) if c.cfg_type == CfgType::CFG_REPLY => r.cp = Some(c),
                Payload::Sa(s) => r.sa = Some(s),
                Payload::TsI(t) => r.tsi = Some(t),
                Payload::TsR(t) => r.tsr = Some(t),
                Payload::Eap(e) => r.eap = Some(e),
                Payload::Cert(c) if c.encoding == cert_encoding::X509_SIGNATURE => r.certs.push(c.data.as_slice()),
                _ => {}
            }
        }
        r
    }
}

/// Who proved what in IKE_AUTH.
#[derive(Default)]
pub(super) struct Authentication {
    /// IKE_AUTH verified: the IKE SA exists on both sides.
    pub peer_authenticated: bool,
    /// The EAP conversation (§2.16), and whether it ended in success.
    pub eap: Option<EapPeer>,
    pub eap_done: bool,
    /// IDr from the first IKE_AUTH response (EAP continues without it).
    pub gateway_id: Option<Identification>,
}

impl IkeSa {
    pub(super) fn send_auth(&mut self, now: Instant) -> Result<(), IkeError> {
        // IntAuth ends with the message ID of this first IKE_AUTH request (RFC 9242 §3.3.2).
        self.hs.auth_mid = self.ex.next_message_id();
        if self.hs.use_ppk && matches!(self.config.auth, AuthConfig::Eap(_)) {
            return Err(IkeError::Config("a postquantum preshared key (RFC 8784) with EAP is not supported".into()));
        }
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
                if self.hs.use_ppk {
                    let no_ppk = self.without_ppk(|sa| sa.shared_key_auth(Some(&psk)))?;
                    self.push_ppk_notifies(&mut payloads, no_ppk.data);
                }
            }
            AuthConfig::Certificate(creds) => {
                let ours = creds.signer.schemes();
                // RFC 7427: pick a scheme whose hash the gateway announced; strongSwan always takes SHA-256.
                let scheme = SigScheme::select(&ours, &self.hs.peer_hash_algorithms)
                    .or_else(|| ours.iter().copied().find(|s| s.hash_id() == 2))
                    .or_else(|| ours.first().copied())
                    .ok_or_else(|| IkeError::Config("the client key can sign with no scheme".into()))?;
                let octets = self.initiator_octets()?;
                let data = crypto::sign_auth(creds.signer.as_ref(), AuthMethod::DIGITAL_SIGNATURE, scheme, &octets)?;
                payloads.push(Payload::Auth(AuthPayload { method: AuthMethod::DIGITAL_SIGNATURE, data }));
                if self.hs.use_ppk {
                    let signer = creds.signer.clone();
                    let octets = self.without_ppk(|sa| sa.initiator_octets())?;
                    let data = crypto::sign_auth(signer.as_ref(), AuthMethod::DIGITAL_SIGNATURE, scheme, &octets)?;
                    self.push_ppk_notifies(&mut payloads, data);
                }
            }
            AuthConfig::Eap(cfg) => {
                // No AUTH payload: we want EAP (§2.16).
                self.auth.eap = Some(EapPeer::new(cfg.clone()));
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
            .map(|(i, p)| p.to_wire((i + 1) as u8, self.child.first_spi_in, false))
            .collect();
        payloads.push(Payload::Sa(proposals));
        payloads.push(Payload::TsI(self.config.ts_i.clone()));
        payloads.push(Payload::TsR(self.config.ts_r.clone()));
        self.set_state(State::Authenticating);
        self.send_request(now, ExchangeType::IKE_AUTH, RequestKind::Auth, payloads)
    }

    /// The gateway answered IKE_AUTH: a step of EAP, or its AUTH and our first Child SA (§1.2, §2.16).
    pub(super) fn handle_auth_response(&mut self, now: Instant, payloads: Vec<Payload>) -> Result<(), IkeError> {
        // The gateway's certificate is judged only with the CRLs and OCSP answers it points to (the driver fetches).
        let Some(payloads) = self.defer_for_revocation(now, payloads) else { return Ok(()) };
        let r = AuthResponse::parse(&payloads);
        // EAP failures carry the method's own reason (e.g. MSCHAPv2 E=691); let the EAP peer see them first.
        if let (Some(pkt), true) = (r.eap, self.auth.eap.is_some()) {
            return self.continue_eap(now, &r, pkt);
        }
        self.check_auth_refused(&r)?;
        self.settle_ppk(&r)?;
        let idr = self.authenticate_gateway(now, &r)?;
        if self.hs.use_ppk {
            // RFC 8784 §3: from now on SK_d, SK_pi and SK_pr are the PPK-mixed ones.
            if let (Some(keys), Some(ppk)) = (self.ex.keys.as_mut(), self.config.ppk.as_ref()) {
                keys.apply_ppk(&ppk.secret);
            }
            info!("postquantum preshared key (RFC 8784) in use");
        }
        let remote_id = display_identity(&idr);
        info!(remote_id, "gateway authenticated");
        if let Some(to) = self.authenticated_redirect(r.payloads) {
            // RFC 5685 §6: authenticated, but sent elsewhere; the gateway has an IKE SA to delete.
            self.leave_for(now, to);
            return Ok(());
        }
        self.establish(now, &r, remote_id)
    }

    /// One EAP round (§2.16): on the first response, the gateway's identity and (unless EAP-only) its AUTH;
    /// then our answer to the method, or after EAP-Success our AUTH from the MSK.
    fn continue_eap(&mut self, now: Instant, r: &AuthResponse<'_>, pkt: &[u8]) -> Result<(), IkeError> {
        if self.auth.eap_done {
            return Err(IkeError::Protocol("EAP message after EAP success"));
        }
        if self.auth.gateway_id.is_none() {
            self.authenticate_before_eap(now, r)?;
        } else if r.idr.is_some_and(|i| Some(i) != self.auth.gateway_id.as_ref()) {
            return Err(IkeError::Protocol("the gateway changed its IDr during EAP"));
        }
        let Some(mut peer) = self.auth.eap.take() else { return Err(IkeError::Protocol("no EAP state")) };
        if self.clock.1 != 0 {
            peer.set_unix_time(self.unix_time(now));
        }
        let action = peer.handle(pkt, &mut self.rng);
        let msk = peer.msk().map(|m| Zeroizing::new(m.to_vec()));
        let method = peer.method();
        self.auth.eap = Some(peer);
        match action.map_err(|e| IkeError::Eap(e.to_string()))? {
            EapAction::Respond(r) => {
                self.send_request(now, ExchangeType::IKE_AUTH, RequestKind::Auth, vec![Payload::Eap(r)])
            }
            EapAction::Success => {
                if msk.is_none() && !self.auth.peer_authenticated {
                    // Without an MSK both final AUTHs are keyed with SK_p, which whoever answered IKE_SA_INIT
                    // knows: such a method cannot authenticate the gateway (RFC 5998 §4).
                    return Err(IkeError::GatewayNotAuthenticated("its EAP method derived no key"));
                }
                info!(?method, msk = msk.is_some(), "EAP succeeded");
                self.auth.eap_done = true;
                let auth = self.shared_key_auth(msk.as_ref().map(|m| m.as_slice()))?;
                self.send_request(now, ExchangeType::IKE_AUTH, RequestKind::Auth, vec![Payload::Auth(auth)])
            }
            EapAction::Failure => Err(IkeError::Eap("the gateway sent EAP-Failure".into())),
        }
    }

    /// First IKE_AUTH response (§2.16): the gateway proves itself with IDr and AUTH (its certificate) before any
    /// EAP method runs, so no credential of ours reaches a peer that only answered IKE_SA_INIT. Only with
    /// EAP-only authentication (RFC 5998, opted into) may AUTH wait for the end, and then only mutual,
    /// key-generating methods run.
    fn authenticate_before_eap(&mut self, now: Instant, r: &AuthResponse<'_>) -> Result<(), IkeError> {
        let idr = r.idr.ok_or(IkeError::GatewayNotAuthenticated("its first IKE_AUTH response has no IDr"))?;
        self.check_remote_id(idr)?;
        match r.auth {
            Some(a) => {
                self.verify_gateway_signature(idr, a, &r.certs, now)?;
                self.auth.peer_authenticated = true;
            }
            None if self.config.eap_only => {
                info!("EAP-only authentication (RFC 5998): the gateway proves itself through the EAP method")
            }
            None => return Err(IkeError::GatewayNotAuthenticated("it sent no AUTH before EAP")),
        }
        self.auth.gateway_id = Some(idr.clone());
        let authenticated = self.auth.peer_authenticated;
        if let Some(peer) = self.auth.eap.as_mut() {
            peer.set_gateway_authenticated(authenticated);
        }
        Ok(())
    }

    /// The gateway refused us (AUTHENTICATION_FAILED, §2.21.2) or started EAP we did not ask for. Errors about
    /// the IKE SA itself come before those about the Child SA.
    fn check_auth_refused(&self, r: &AuthResponse<'_>) -> Result<(), IkeError> {
        if notify_of(r.payloads, NotifyType::AUTHENTICATION_FAILED).is_some() {
            if self.hs.use_ppk {
                return Err(IkeError::PpkAuthenticationFailed);
            }
            let no_cert = !matches!(self.config.auth, AuthConfig::Certificate(_));
            if no_cert && self.hs.gateway_sent_certreq && self.auth.gateway_id.is_none() {
                // Refused before any EAP started although it asked for certificates: it wants ours.
                return Err(IkeError::ClientCertificateRequired);
            }
            return Err(IkeError::AuthenticationFailed);
        }
        if r.eap.is_some() {
            return Err(IkeError::Protocol("gateway started EAP, which this profile does not use"));
        }
        Ok(())
    }

    /// Verify the gateway's final AUTH (§2.15; after EAP with the MSK, §2.16) for its IDr; returns the IDr.
    fn authenticate_gateway(&mut self, now: Instant, r: &AuthResponse<'_>) -> Result<Identification, IkeError> {
        let Some(auth) = r.auth else {
            if let Some(t) = first_error_notify(r.payloads) {
                return Err(IkeError::from_notify(t));
            }
            return Err(IkeError::Protocol("IKE_AUTH response lacks AUTH"));
        };
        let idr = match (r.idr, self.auth.gateway_id.clone()) {
            (Some(i), Some(first)) if *i != first => {
                return Err(IkeError::Protocol("the gateway changed its IDr during EAP"))
            }
            (Some(i), _) => i.clone(),
            // After EAP the gateway's identity came in the first response.
            (None, Some(i)) => i,
            (None, None) => return Err(IkeError::Protocol("IKE_AUTH response lacks IDr")),
        };
        self.check_remote_id(&idr)?;
        if self.auth.eap_done {
            // §2.16: after EAP both AUTH payloads are computed with the MSK (or SK_p when the method has none).
            let msk = self.auth.eap.as_ref().and_then(|p| p.msk()).map(|m| Zeroizing::new(m.to_vec()));
            if msk.is_none() && !self.auth.peer_authenticated {
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
                    self.verify_gateway_signature(&idr, auth, &r.certs, now)?
                }
            }
        }
        self.auth.peer_authenticated = true;
        Ok(idr)
    }

    /// The gateway is authenticated: the IKE SA is up, with the configuration it gave us and the first Child
    /// SA, which it may only narrow (§1.2, §2.9); then the rekey and reauthentication times.
    fn establish(&mut self, now: Instant, r: &AuthResponse<'_>, remote_id: String) -> Result<(), IkeError> {
        let config = r.cp.map(parse_config_reply).unwrap_or_default();
        // The IKE SA is up even if the Child SA failed (§1.2); a VPN without a Child SA is of no use, though.
        let (Some(sa), Some(tsi), Some(tsr)) = (r.sa, r.tsi, r.tsr) else {
            let e = first_error_notify(r.payloads)
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
        let ck = ChildKeys::derive(ike_suite.prf, &keys.sk_d, None, &self.hs.ni, &self.hs.nr, suite.encr, suite.integ);
        let ppk = match (&self.config.ppk, self.hs.use_ppk) {
            (None, _) => PpkStatus::NotConfigured,
            (Some(_), true) => PpkStatus::Used,
            (Some(_), false) => PpkStatus::NotUsed,
        };
        let info = SessionInfo {
            ike_suite,
            pq_fallback: self.hs.pq_fallback,
            ppk,
            spi_i: self.ex.spi_i,
            spi_r: self.ex.spi_r,
            local_id: display_identity(&self.config.local_id),
            remote_id,
            nat: self.nat,
            config,
            transport: Default::default(),
        };
        self.mobility.supported = self.config.mobike && notify_of(r.payloads, NotifyType::MOBIKE_SUPPORTED).is_some();
        self.set_state(State::Established);
        self.last_heard = now;
        // Keepalives only matter behind a real NAT (RFC 3948 §4); forced encapsulation alone has no mapping to keep.
        if self.ex.nat_t && self.nat.local_behind_nat {
            self.next_keepalive = self.config.keepalive.map(|k| now + k);
        }
        self.events.push_back(Event::Established(info));
        self.child.agreed_ts = Some((tsi.clone(), tsr.clone()));
        self.install_child(now, suite, self.child.first_spi_in, spi_out, ck, true, tsi.clone(), tsr.clone(), None);
        self.rekeying.ike_at = self.rekey_time(now, self.config.ike_lifetime);
        self.rekeying.reauth_at = self.rekey_time(now, self.config.reauth_lifetime);
        self.note_auth_lifetime(now, r.payloads);
        Ok(())
    }

    /// AUTH_LIFETIME (RFC 4478): the gateway wants us to authenticate again within this many seconds.
    /// Reauthenticate at 90% of it (minus jitter), or earlier if our own `reauth_lifetime` says so; at least
    /// [`MIN_AUTH_LIFETIME`] from now, so a gateway cannot make us reconnect in a loop.
    pub(super) fn note_auth_lifetime(&mut self, now: Instant, payloads: &[Payload]) {
        let Some(n) = notify_of(payloads, NotifyType::AUTH_LIFETIME) else { return };
        let Some(secs) = n.data.first_chunk::<4>().map(|b| u32::from_be_bytes(*b)) else {
            debug!("AUTH_LIFETIME without a lifetime; ignored");
            return;
        };
        let lifetime = std::time::Duration::from_secs(u64::from(secs)).mul_f64(0.9).max(MIN_AUTH_LIFETIME);
        if let Some(at) = self.rekey_time(now, Some(lifetime)) {
            info!(secs, "the gateway asks us to reauthenticate (AUTH_LIFETIME)");
            self.rekeying.reauth_at = Some(self.rekeying.reauth_at.map_or(at, |t| t.min(at)));
        }
    }

    /// The gateway's IDr against the identity we expect (a loose expectation is checked against the
    /// certificate instead, in [`IkeSa::verify_gateway_signature`]).
    pub(super) fn check_remote_id(&self, idr: &Identification) -> Result<(), IkeError> {
        match &self.config.remote_id {
            Some(expected) if expected != idr && !self.config.remote_id_loose => {
                Err(IkeError::IdentityMismatch { expected: display_identity(expected), got: display_identity(idr) })
            }
            _ => Ok(()),
        }
    }

    /// The responder's signed octets: RealMessage2 | Ni | prf(SK_pr, IDr') (§2.15) | IntAuth (RFC 9242 §3.3).
    pub(super) fn responder_octets(&self, idr: &Identification) -> Result<Vec<u8>, IkeError> {
        let suite = self.ex.suite.ok_or(IkeError::Protocol("no IKE suite"))?;
        let keys = self.ex.keys.as_ref().ok_or(IkeError::Protocol("no IKE keys"))?;
        let sk_pr = self.ppk_key(&keys.sk_pr);
        let mut octets = signed_octets(suite.prf, &sk_pr, &self.hs.response, &self.hs.ni, idr);
        self.append_int_auth(&mut octets);
        Ok(octets)
    }

    /// Our signed octets: RealMessage1 | Nr | prf(SK_pi, IDi') (§2.15) | IntAuth (RFC 9242 §3.3).
    pub(super) fn initiator_octets(&self) -> Result<Vec<u8>, IkeError> {
        let suite = self.ex.suite.ok_or(IkeError::Protocol("no IKE suite"))?;
        let keys = self.ex.keys.as_ref().ok_or(IkeError::Protocol("no IKE keys"))?;
        let sk_pi = self.ppk_key(&keys.sk_pi);
        let mut octets = signed_octets(suite.prf, &sk_pi, &self.hs.request, &self.hs.nr, &self.config.local_id);
        self.append_int_auth(&mut octets);
        Ok(octets)
    }

    /// IntAuth = IntAuth_iN | IntAuth_rN | IKE_AUTH_MID when IKE_INTERMEDIATE exchanges ran (RFC 9242 §3.3.2).
    fn append_int_auth(&self, octets: &mut Vec<u8>) {
        if let Some((i, r)) = &self.hs.int_auth {
            octets.extend_from_slice(i);
            octets.extend_from_slice(r);
            octets.extend_from_slice(&self.hs.auth_mid.to_be_bytes());
        }
    }

    /// SK_pi / SK_pr for the AUTH payloads: with a PPK in play prf+(PPK, SK_p) (RFC 8784 §3), else as is.
    fn ppk_key(&self, sk_p: &[u8]) -> Zeroizing<Vec<u8>> {
        match (&self.config.ppk, self.hs.use_ppk, self.ex.keys.as_ref()) {
            (Some(ppk), true, Some(keys)) => keys.prf.prf_plus(&ppk.secret, sk_p, sk_p.len()),
            _ => Zeroizing::new(sk_p.to_vec()),
        }
    }

    /// Compute something as if no PPK were in play (NO_PPK_AUTH, RFC 8784 §3).
    fn without_ppk<T>(&mut self, f: impl FnOnce(&Self) -> Result<T, IkeError>) -> Result<T, IkeError> {
        let saved = std::mem::replace(&mut self.hs.use_ppk, false);
        let out = f(self);
        self.hs.use_ppk = saved;
        out
    }

    /// PPK_IDENTITY (PPK_ID_FIXED, RFC 8784 §3.1) and, with an optional PPK, NO_PPK_AUTH with the AUTH data
    /// computed without it.
    fn push_ppk_notifies(&self, payloads: &mut Vec<Payload>, no_ppk_auth: Vec<u8>) {
        let Some(ppk) = &self.config.ppk else { return };
        let mut id = vec![2u8];
        id.extend_from_slice(&ppk.id);
        payloads.push(Payload::Notify(Notify::new(NotifyType::PPK_IDENTITY, id)));
        if !ppk.required {
            payloads.push(Payload::Notify(Notify::new(NotifyType::NO_PPK_AUTH, no_ppk_auth)));
        }
    }

    /// The gateway's final IKE_AUTH response says whether it used our PPK (a PPK_IDENTITY, RFC 8784 §3): if
    /// not, it verified our NO_PPK_AUTH, and its AUTH is classical; refused when the PPK is required.
    fn settle_ppk(&mut self, r: &AuthResponse<'_>) -> Result<(), IkeError> {
        let Some(ppk) = &self.config.ppk else { return Ok(()) };
        if !self.hs.use_ppk || r.auth.is_none() {
            return Ok(());
        }
        if notify_of(r.payloads, NotifyType::PPK_IDENTITY).is_none() {
            if ppk.required {
                return Err(IkeError::PpkNotUsed("its IKE_AUTH response has no PPK_IDENTITY"));
            }
            warn!("the gateway did not use our postquantum preshared key; the IKE SA's keys are classical");
            self.hs.use_ppk = false;
        }
        Ok(())
    }

    /// Our shared-key AUTH (§2.15) with `key`, or SK_pi when there is none (EAP methods without MSK, §2.16).
    pub(super) fn shared_key_auth(&self, key: Option<&[u8]>) -> Result<AuthPayload, IkeError> {
        let suite = self.ex.suite.ok_or(IkeError::Protocol("no IKE suite"))?;
        let keys = self.ex.keys.as_ref().ok_or(IkeError::Protocol("no IKE keys"))?;
        let octets = self.initiator_octets()?;
        let key = key.unwrap_or(&keys.sk_pi);
        Ok(AuthPayload { method: AuthMethod::SHARED_KEY_MIC, data: psk_auth(suite.prf, key, &octets).to_vec() })
    }

    /// Check the gateway's shared-key AUTH with `key`, or SK_pr when there is none.
    pub(super) fn verify_shared_key_auth(
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
    pub(super) fn verify_gateway_signature(
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
    pub(super) fn unix_time(&self, now: Instant) -> u64 {
        let (base_instant, base_unix) = self.clock;
        base_unix.saturating_add(now.saturating_duration_since(base_instant).as_secs())
    }
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
