//! EAP-TTLS phase 2 (RFC 5281 §7.2, §11): an inner EAP conversation carried in Diameter AVPs (RFC 6733
//! §4.1) inside the TLS tunnel that [`super::tls::EapTls`] runs. The inner methods are our EAP-MD5 and
//! EAP-MSCHAPv2, run by an inner [`EapPeer`] with the user's password.
//!
//! The peer starts phase 2 itself once the handshake is over: it sends its inner EAP-Response/Identity in an
//! EAP-Message AVP (RFC 5281 §11.2.1), then answers each tunneled EAP Request.

use zeroize::Zeroizing;

use super::packet::{self, CODE_SUCCESS, TYPE_IDENTITY};
use super::{EapAction, EapConfig, EapCredentials, EapError, EapMethod, EapPeer};

/// EAP-Message AVP code (RFC 3579 §3.1, used by RFC 5281 §11.2).
const AVP_EAP_MESSAGE: u32 = 79;
/// AVP flags (RFC 5281 §10.1): Vendor-ID present, Mandatory.
const AVP_FLAG_VENDOR: u8 = 0x80;
const AVP_FLAG_MANDATORY: u8 = 0x40;
/// AVP Code, Flags and Length.
const AVP_HEADER_LEN: usize = 8;
/// Bound for the tunneled data of one phase 2 round.
pub(crate) const MAX_PHASE2_LEN: usize = 16 * 1024;

/// Appends one EAP-Message AVP carrying `eap` (mandatory, no vendor, padded to four octets).
pub(crate) fn encode_eap_message(eap: &[u8], out: &mut Vec<u8>) -> Result<(), EapError> {
    let len = AVP_HEADER_LEN + eap.len();
    if len > 0x00ff_ffff {
        return Err(EapError::InvalidConfig("tunneled EAP message too long for an AVP"));
    }
    let len_bytes = u32::try_from(len).map_err(|_| EapError::InvalidConfig("AVP length"))?.to_be_bytes();
    out.extend_from_slice(&AVP_EAP_MESSAGE.to_be_bytes());
    out.push(AVP_FLAG_MANDATORY);
    out.extend_from_slice(len_bytes.get(1..).unwrap_or_default());
    out.extend_from_slice(eap);
    out.resize(out.len() + (4 - len % 4) % 4, 0);
    Ok(())
}

/// The EAP packet in a sequence of AVPs: the data of all EAP-Message AVPs concatenated (an EAP packet may be
/// split over several, RFC 3579 §3.1). Unknown AVPs are skipped unless they are mandatory (RFC 5281 §10.1).
pub(crate) fn decode_eap_message(mut avps: &[u8]) -> Result<Vec<u8>, EapError> {
    let mut eap = Vec::new();
    while !avps.is_empty() {
        let Some((&[c0, c1, c2, c3, flags, l0, l1, l2], _)) = avps.split_first_chunk::<AVP_HEADER_LEN>() else {
            return Err(EapError::Malformed("truncated EAP-TTLS AVP header"));
        };
        let code = u32::from_be_bytes([c0, c1, c2, c3]);
        let len = usize::try_from(u32::from_be_bytes([0, l0, l1, l2])).unwrap_or(usize::MAX);
        let header = if flags & AVP_FLAG_VENDOR != 0 { AVP_HEADER_LEN + 4 } else { AVP_HEADER_LEN };
        if len < header {
            return Err(EapError::Malformed("EAP-TTLS AVP length smaller than its header"));
        }
        let data = avps.get(header..len).ok_or(EapError::Malformed("EAP-TTLS AVP beyond the end of the data"))?;
        if code == AVP_EAP_MESSAGE && flags & AVP_FLAG_VENDOR == 0 {
            eap.extend_from_slice(data);
        } else if flags & AVP_FLAG_MANDATORY != 0 {
            return Err(EapError::Protocol("unknown mandatory AVP in EAP-TTLS phase 2"));
        }
        let padded = len.saturating_add((4 - len % 4) % 4);
        avps = avps.get(padded..).unwrap_or_default();
    }
    if eap.is_empty() {
        return Err(EapError::Protocol("EAP-TTLS phase 2 data without an EAP-Message"));
    }
    Ok(eap)
}

/// The EAP peer inside a TLS tunnel (EAP-TTLS, PEAP): `username`/`password` with the `inner` methods we accept
/// (EAP-MSCHAPv2 and EAP-MD5 only; empty: either).
pub(crate) fn inner_peer(username: &str, password: &Zeroizing<String>, inner: &[EapMethod]) -> EapPeer {
    let mut allowed: Vec<EapMethod> =
        inner.iter().copied().filter(|m| matches!(m, EapMethod::MsChapV2 | EapMethod::Md5)).collect();
    if allowed.is_empty() {
        allowed = vec![EapMethod::MsChapV2, EapMethod::Md5];
    }
    let config = EapConfig {
        identity: username.to_owned(),
        credentials: EapCredentials::Password { username: username.to_owned(), password: password.clone() },
        allowed,
    };
    let mut peer = EapPeer::new(config);
    // Inside the tunnel: the TLS handshake has authenticated the server (certificate and name), so the inner
    // method may be a one-way one.
    peer.set_gateway_authenticated(true);
    peer
}

/// Phase 2 state: the inner EAP peer and whether we sent our inner identity.
pub(crate) struct Phase2 {
    inner: EapPeer,
    started: bool,
}

impl std::fmt::Debug for Phase2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Phase2").field("inner", &self.inner).field("started", &self.started).finish()
    }
}

impl Phase2 {
    /// An inner peer for `username`/`password` that accepts `inner` (empty: MSCHAPv2 or MD5).
    pub(crate) fn new(username: &str, password: &Zeroizing<String>, inner: &[EapMethod]) -> Phase2 {
        Phase2 { inner: inner_peer(username, password, inner), started: false }
    }

    /// The AVPs that open phase 2 (our inner EAP-Response/Identity), once.
    pub(crate) fn start(&mut self) -> Result<Option<Vec<u8>>, EapError> {
        if self.started {
            return Ok(None);
        }
        self.started = true;
        let identity = packet::response(0, TYPE_IDENTITY, self.inner.config.identity.as_bytes())?;
        let mut out = Vec::new();
        encode_eap_message(&identity, &mut out)?;
        Ok(Some(out))
    }

    /// Tunneled AVPs from the server: the AVPs of our answer.
    pub(crate) fn handle(&mut self, avps: &[u8], rng: &mut dyn rand_core::CryptoRng) -> Result<Vec<u8>, EapError> {
        self.started = true;
        let eap = decode_eap_message(avps)?;
        match self.inner.handle(&eap, rng)? {
            EapAction::Respond(response) => {
                let mut out = Vec::new();
                encode_eap_message(&response, &mut out)?;
                Ok(out)
            }
            // Servers end phase 2 with the outer EAP-Success; an inner result needs no answer.
            EapAction::Success | EapAction::Failure => Ok(Vec::new()),
        }
    }

    /// Whether the inner method finished so that the outer EAP-Success may be accepted: the inner peer is
    /// asked whether it would accept an EAP-Success now (MSCHAPv2: the server proved it knows the password).
    pub(crate) fn finished(&mut self, rng: &mut dyn rand_core::CryptoRng) -> Result<(), EapError> {
        if self.inner.finished {
            return match self.inner.deferred.take() {
                Some(e) => Err(e),
                None => Ok(()),
            };
        }
        let success = [CODE_SUCCESS, 0, 0, 4];
        match self.inner.handle(&success, rng) {
            Ok(EapAction::Success) => Ok(()),
            Ok(_) | Err(EapError::Protocol(_)) => {
                Err(EapError::Protocol("EAP-Success before EAP-TTLS phase 2 authenticated us"))
            }
            Err(e) => Err(e),
        }
    }

    /// A failure the inner method found (e.g. MSCHAPv2 E=691) that explains the server's EAP-Failure.
    pub(crate) fn take_error(&mut self) -> Option<EapError> {
        self.inner.deferred.take()
    }
}
