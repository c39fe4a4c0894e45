//! Sans-IO EAP peer for IKEv2 EAP authentication (RFC 7296 §2.16, RFC 3748).
//!
//! The gateway's EAP Requests arrive in EAP payloads of IKE_AUTH; [`EapPeer::handle`] answers each with an EAP
//! Response, and finally reports EAP-Success or EAP-Failure. When the method derives an MSK
//! ([`EapPeer::msk`]), IKE uses it as the AUTH key; otherwise IKE falls back to SK_pi/SK_pr (RFC 7296 §2.16).
//!
//! Methods: EAP-MD5 (RFC 3748 §5.4), EAP-MSCHAPv2 (draft-kamath-pppext-eap-mschapv2, RFC 2759, RFC 3079),
//! EAP-TLS (RFC 5216, RFC 9190 for TLS 1.3) and EAP-TTLS (RFC 5281, RFC 9427) with EAP-MSCHAPv2 or EAP-MD5
//! inside. Identity and Notification are answered in any state; a Request for a method we do not offer gets a
//! Legacy Nak (RFC 3748 §5.3.1).

mod md5;
mod mschapv2;
mod packet;
mod peap;
mod tls;
mod ttls;

#[cfg(test)]
mod tests;

use std::fmt;

use zeroize::Zeroizing;

pub use rustls::pki_types::{CertificateDer, PrivateKeyDer};
pub use rustls::RootCertStore;

use packet::Packet;

/// What the peer authenticates with.
#[derive(Debug, Clone)]
pub struct EapConfig {
    /// EAP Identity (RFC 3748 §5.1); may differ from the IKE IDi.
    pub identity: String,
    pub credentials: EapCredentials,
    /// Methods we accept, in order of preference; empty means every method our credentials allow.
    pub allowed: Vec<EapMethod>,
}

/// Credentials for the EAP methods.
#[derive(Clone)]
pub enum EapCredentials {
    /// For EAP-MD5 and EAP-MSCHAPv2.
    Password { username: String, password: Zeroizing<String> },
    /// For EAP-TLS.
    Tls(TlsCredentials),
    /// For EAP-TTLS.
    Ttls(TtlsCredentials),
}

impl fmt::Debug for EapCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EapCredentials::Password { username, .. } => {
                f.debug_struct("Password").field("username", username).finish_non_exhaustive()
            }
            EapCredentials::Tls(t) => f.debug_tuple("Tls").field(t).finish(),
            EapCredentials::Ttls(t) => f.debug_tuple("Ttls").field(t).finish(),
        }
    }
}

/// Our EAP-TLS private key.
pub enum TlsKey {
    /// In memory (PKCS#8, PKCS#1 or SEC1 DER).
    Der(PrivateKeyDer<'static>),
    /// In a key store (Android KeyChain, Apple Keychain): only its signatures come out.
    Signer(std::sync::Arc<dyn crate::crypto::Signer>),
}

impl fmt::Debug for TlsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsKey::Der(_) => f.write_str("TlsKey::Der(..)"),
            TlsKey::Signer(s) => f.debug_tuple("TlsKey::Signer").field(&s.schemes()).finish(),
        }
    }
}

impl Clone for TlsKey {
    fn clone(&self) -> Self {
        match self {
            TlsKey::Der(k) => TlsKey::Der(k.clone_key()),
            TlsKey::Signer(s) => TlsKey::Signer(s.clone()),
        }
    }
}

/// Client certificate, key and trust anchors for EAP-TLS.
pub struct TlsCredentials {
    /// Our certificate chain, end entity first.
    pub chain: Vec<CertificateDer<'static>>,
    pub key: TlsKey,
    /// The name the EAP server's certificate must carry (DNS name or IP address).
    pub server_name: String,
    /// Trust anchors for the EAP server's certificate.
    pub roots: RootCertStore,
    /// Offer TLS 1.3 (RFC 9190) as well as 1.2. Off by default, as strongSwan's `max_version` and Windows do:
    /// servers such as libreswan 4.10 negotiate 1.3 but key EAP-TLS as with 1.2 and skip RFC 9190's commitment.
    pub tls13: bool,
}

impl Clone for TlsCredentials {
    fn clone(&self) -> Self {
        TlsCredentials {
            chain: self.chain.clone(),
            key: self.key.clone(),
            server_name: self.server_name.clone(),
            roots: self.roots.clone(),
            tls13: self.tls13,
        }
    }
}

impl fmt::Debug for TlsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsCredentials")
            .field("chain_len", &self.chain.len())
            .field("server_name", &self.server_name)
            .field("roots", &self.roots.len())
            .finish_non_exhaustive()
    }
}

/// A user name and password used inside a server-authenticated TLS tunnel (EAP-TTLS, RFC 5281, or PEAPv0). The
/// outer EAP identity ([`EapConfig::identity`]) may be anonymous; the user name is sent only inside the tunnel.
#[derive(Clone)]
pub struct TtlsCredentials {
    pub username: String,
    pub password: Zeroizing<String>,
    /// The name the EAP server's certificate must carry (DNS name or IP address).
    pub server_name: String,
    /// Trust anchors for the EAP server's certificate.
    pub roots: RootCertStore,
    /// Inner methods we accept (EAP-MSCHAPv2, EAP-MD5); empty: either.
    pub inner: Vec<EapMethod>,
    /// Offer TLS 1.3 (RFC 9427) as well as 1.2 (see [`TlsCredentials::tls13`]).
    pub tls13: bool,
}

impl fmt::Debug for TtlsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TtlsCredentials")
            .field("username", &self.username)
            .field("server_name", &self.server_name)
            .field("roots", &self.roots.len())
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// The EAP methods we implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EapMethod {
    /// EAP-MD5 Challenge, type 4 (RFC 3748 §5.4).
    Md5,
    /// EAP-MSCHAPv2, type 26 (draft-kamath-pppext-eap-mschapv2).
    MsChapV2,
    /// EAP-TLS, type 13 (RFC 5216).
    Tls,
    /// EAP-TTLS, type 21 (RFC 5281).
    Ttls,
    /// PEAP version 0, type 25 ([MS-PEAP]; Windows NPS/RRAS, strongSwan's eap-peap).
    Peap,
}

impl EapMethod {
    /// The EAP Type number (RFC 3748 §5, IANA).
    pub fn type_code(self) -> u8 {
        match self {
            EapMethod::Md5 => packet::TYPE_MD5,
            EapMethod::MsChapV2 => packet::TYPE_MSCHAPV2,
            EapMethod::Tls => packet::TYPE_TLS,
            EapMethod::Ttls => packet::TYPE_TTLS,
            EapMethod::Peap => packet::TYPE_PEAP,
        }
    }

    /// The method for an EAP Type number, if we implement it.
    pub fn from_type_code(t: u8) -> Option<EapMethod> {
        match t {
            packet::TYPE_MD5 => Some(EapMethod::Md5),
            packet::TYPE_MSCHAPV2 => Some(EapMethod::MsChapV2),
            packet::TYPE_TLS => Some(EapMethod::Tls),
            packet::TYPE_TTLS => Some(EapMethod::Ttls),
            packet::TYPE_PEAP => Some(EapMethod::Peap),
            _ => None,
        }
    }

    fn fits(self, credentials: &EapCredentials) -> bool {
        matches!(
            (self, credentials),
            (EapMethod::Md5 | EapMethod::MsChapV2, EapCredentials::Password { .. })
                | (EapMethod::Tls, EapCredentials::Tls(_))
                | (EapMethod::Ttls | EapMethod::Peap, EapCredentials::Ttls(_))
        )
    }
}

/// What to do after an EAP packet from the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EapAction {
    /// Send this EAP Response packet to the gateway.
    Respond(Vec<u8>),
    /// EAP-Success after a completed method; [`EapPeer::msk`] is available if the method derives one.
    Success,
    /// EAP-Failure.
    Failure,
}

/// Why the EAP conversation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EapError {
    #[error("malformed EAP packet: {0}")]
    Malformed(&'static str),
    /// The gateway insists on an EAP method none of our credentials or settings allow.
    #[error("the gateway requested EAP method {0}, and we have no acceptable method to propose instead")]
    UnsupportedMethod(u8),
    #[error("EAP-MSCHAPv2: the gateway's authenticator response is wrong (the gateway does not know the password)")]
    AuthenticatorFailed,
    /// The gateway rejected our credentials; the text says why (e.g. MSCHAPv2 "E=691").
    #[error("the gateway rejected the EAP authentication: {0}")]
    Rejected(String),
    #[error("EAP-TLS/TTLS: {0}")]
    Tls(String),
    #[error("EAP protocol violation: {0}")]
    Protocol(&'static str),
    #[error("invalid EAP configuration: {0}")]
    InvalidConfig(&'static str),
}

/// The result of a method handling one Request: the Type-Data of our Response, possibly with a failure that
/// becomes the result of the conversation once the gateway answers (it must still get our Response first).
#[derive(Debug)]
pub(crate) enum MethodStep {
    Reply(Vec<u8>),
    ReplyThenFail(Vec<u8>, EapError),
}

/// Per-method state.
#[derive(Debug)]
enum MethodState {
    None,
    Md5 { responded: bool },
    MsChapV2(mschapv2::MsChapV2),
    Tls(Box<tls::EapTls>),
}

/// Default size of the TLS data in one of our EAP-TLS fragments: keeps IKE_AUTH requests below 1280 octets.
pub const DEFAULT_TLS_FRAGMENT_SIZE: usize = 1000;

/// The EAP peer state machine (RFC 3748 §2, §4).
pub struct EapPeer {
    pub(crate) config: EapConfig,
    state: MethodState,
    method: Option<EapMethod>,
    msk: Option<Zeroizing<Vec<u8>>>,
    /// A failure found while we still had to answer (MSCHAPv2 Failure Request, TLS alert): reported when the
    /// gateway answers with EAP-Failure (or anything else).
    pub(crate) deferred: Option<EapError>,
    pub(crate) finished: bool,
    tls_fragment_size: usize,
    /// The IKE SA's wall-clock time, for the EAP server's certificate ([`EapPeer::set_unix_time`]).
    clock: tls::Clock,
    /// The gateway already proved itself (IKE AUTH with its certificate). Until then only mutual, key-generating
    /// methods run (RFC 5998 §4), so no credential goes to a peer that only answered IKE_SA_INIT.
    gateway_authenticated: bool,
}

impl fmt::Debug for EapPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EapPeer")
            .field("identity", &self.config.identity)
            .field("method", &self.method)
            .field("has_msk", &self.msk.is_some())
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl EapPeer {
    pub fn new(config: EapConfig) -> EapPeer {
        EapPeer {
            config,
            state: MethodState::None,
            method: None,
            msk: None,
            deferred: None,
            finished: false,
            tls_fragment_size: DEFAULT_TLS_FRAGMENT_SIZE,
            clock: None,
            gateway_authenticated: false,
        }
    }

    /// The wall-clock time (seconds since 1970) to judge the EAP server's certificate at (the IKE SA's clock,
    /// sans-IO); without it rustls reads the system clock.
    pub fn set_unix_time(&mut self, secs: u64) {
        self.clock = Some(secs);
    }

    /// Say whether the gateway already authenticated (its certificate AUTH verified). Until then (the default)
    /// only mutual, key-generating methods are offered (EAP-MSCHAPv2, -TLS, -TTLS, PEAP; never EAP-MD5).
    pub fn set_gateway_authenticated(&mut self, yes: bool) {
        self.gateway_authenticated = yes;
    }

    /// Size of the TLS data in our EAP-TLS fragments (clamped to 64..=16384).
    pub fn set_tls_fragment_size(&mut self, size: usize) {
        self.tls_fragment_size = size.clamp(tls::MIN_FRAGMENT, tls::MAX_FRAGMENT);
    }

    /// The MSK after EAP-Success, for methods that derive one; `None` for EAP-MD5.
    ///
    /// - EAP-MSCHAPv2: 64 octets = MasterReceiveKey | MasterSendKey of the authenticator (RFC 3079 §3.3, i.e.
    ///   the client's send key first) | 32 zero octets, as Microsoft and strongSwan define it.
    /// - EAP-TLS: TLS 1.2 exporter "client EAP encryption", no context, 64 octets (RFC 5216 §2.3); TLS 1.3
    ///   exporter "EXPORTER_EAP_TLS_Key_Material", context 0x0D, first 64 of 128 octets (RFC 9190 §2.3).
    pub fn msk(&self) -> Option<&[u8]> {
        self.msk.as_deref().map(Vec::as_slice)
    }

    /// The method the gateway and we agreed on, once one started.
    pub fn method(&self) -> Option<EapMethod> {
        self.method
    }

    /// Process one EAP packet from the gateway (RFC 3748 §4) and say what to do.
    ///
    /// A gateway's rejection that still needs our Response (MSCHAPv2 Failure Request, TLS alert) yields
    /// `Respond` first; the error is returned when the gateway answers with EAP-Failure.
    pub fn handle(&mut self, packet: &[u8], rng: &mut dyn rand_core::CryptoRng) -> Result<EapAction, EapError> {
        let packet = packet::parse(packet)?;
        if self.finished {
            return Err(EapError::Protocol("EAP packet after the conversation ended"));
        }
        match packet {
            Packet::Success { .. } => {
                self.finished = true;
                if let Some(e) = self.deferred.take() {
                    return Err(e);
                }
                self.success(rng)
            }
            Packet::Failure { .. } => {
                self.finished = true;
                let inner = match &mut self.state {
                    MethodState::Tls(t) => t.take_phase2_error(),
                    _ => None,
                };
                match self.deferred.take().or(inner) {
                    Some(e) => Err(e),
                    None => Ok(EapAction::Failure),
                }
            }
            Packet::Response { .. } => Err(EapError::Malformed("EAP Response sent to the peer")),
            Packet::Request { id, typ, data } => {
                if let Some(e) = self.deferred.take() {
                    self.finished = true;
                    return Err(e);
                }
                self.request(id, typ, data, rng)
            }
        }
    }

    /// EAP-Success: accept it only after the method finished (RFC 3748 §4.2), then take the MSK.
    fn success(&mut self, rng: &mut dyn rand_core::CryptoRng) -> Result<EapAction, EapError> {
        match &mut self.state {
            MethodState::None => Err(EapError::Protocol("EAP-Success without an authentication method")),
            MethodState::Md5 { responded: false } => Err(EapError::Protocol("EAP-Success before our MD5 response")),
            MethodState::Md5 { responded: true } => Ok(EapAction::Success),
            MethodState::MsChapV2(m) => {
                let msk = m.msk().ok_or(EapError::Protocol("EAP-Success before EAP-MSCHAPv2 completed"))?;
                self.msk = Some(Zeroizing::new(msk.to_vec()));
                Ok(EapAction::Success)
            }
            MethodState::Tls(t) => {
                if !t.is_complete() {
                    return Err(EapError::Protocol("EAP-Success before the EAP-TLS handshake completed"));
                }
                t.phase2_finished(rng)?;
                self.msk = Some(t.msk()?);
                Ok(EapAction::Success)
            }
        }
    }

    fn request(
        &mut self,
        id: u8,
        typ: u8,
        data: &[u8],
        rng: &mut dyn rand_core::CryptoRng,
    ) -> Result<EapAction, EapError> {
        let (rtyp, step) = match typ {
            packet::TYPE_IDENTITY => (typ, MethodStep::Reply(self.config.identity.as_bytes().to_vec())),
            packet::TYPE_NOTIFICATION => {
                tracing::info!(message = %packet::printable(data), "EAP notification from the gateway");
                (typ, MethodStep::Reply(Vec::new()))
            }
            packet::TYPE_NAK => return Err(EapError::Malformed("Nak is not a Request type")),
            _ => {
                let ours = self.offered_methods();
                match EapMethod::from_type_code(typ).filter(|m| ours.contains(m)) {
                    Some(m) if self.method.is_none_or(|cur| cur == m) => {
                        if self.method.is_none() {
                            tracing::debug!(method = ?m, "EAP method started");
                        }
                        self.method = Some(m);
                        (typ, self.method_request(m, id, data, rng)?)
                    }
                    _ if self.method.is_some() => {
                        return Err(EapError::Protocol("the gateway switched EAP methods in mid-conversation"))
                    }
                    _ if ours.is_empty() => return Err(EapError::UnsupportedMethod(typ)),
                    _ => {
                        tracing::debug!(requested = typ, offered = ?ours, "EAP Nak");
                        (packet::TYPE_NAK, MethodStep::Reply(ours.iter().map(|m| m.type_code()).collect()))
                    }
                }
            }
        };
        let (data, failure) = match step {
            MethodStep::Reply(d) => (d, None),
            MethodStep::ReplyThenFail(d, e) => (d, Some(e)),
        };
        let response = packet::response(id, rtyp, &data)?;
        self.deferred = failure;
        Ok(EapAction::Respond(response))
    }

    fn method_request(
        &mut self,
        m: EapMethod,
        id: u8,
        data: &[u8],
        rng: &mut dyn rand_core::CryptoRng,
    ) -> Result<MethodStep, EapError> {
        match (m, &self.config.credentials) {
            (EapMethod::Md5, EapCredentials::Password { password, .. }) => {
                tracing::warn!("EAP-MD5: weak (no key, one-way, the challenge answer can be attacked offline)");
                let reply = md5::respond(id, data, password.as_bytes())?;
                self.state = MethodState::Md5 { responded: true };
                Ok(MethodStep::Reply(reply))
            }
            (EapMethod::MsChapV2, EapCredentials::Password { username, password }) => {
                if !matches!(self.state, MethodState::MsChapV2(_)) {
                    self.state = MethodState::MsChapV2(mschapv2::MsChapV2::new());
                }
                let MethodState::MsChapV2(state) = &mut self.state else {
                    return Err(EapError::Protocol("EAP-MSCHAPv2 state"));
                };
                state.handle(data, username, password, rng)
            }
            (EapMethod::Tls, EapCredentials::Tls(creds)) => {
                let first = !matches!(self.state, MethodState::Tls(_));
                if first {
                    self.state =
                        MethodState::Tls(Box::new(tls::EapTls::new(creds, self.tls_fragment_size, self.clock)?));
                }
                let MethodState::Tls(state) = &mut self.state else {
                    return Err(EapError::Protocol("EAP-TLS state"));
                };
                state.handle(data, id, first, rng)
            }
            (EapMethod::Ttls | EapMethod::Peap, EapCredentials::Ttls(creds)) => {
                let first = !matches!(self.state, MethodState::Tls(_));
                if first {
                    let tunnel = if m == EapMethod::Peap {
                        tls::EapTls::new_peap(creds, self.tls_fragment_size, self.clock)?
                    } else {
                        tls::EapTls::new_ttls(creds, self.tls_fragment_size, self.clock)?
                    };
                    self.state = MethodState::Tls(Box::new(tunnel));
                }
                let MethodState::Tls(state) = &mut self.state else {
                    return Err(EapError::Protocol("EAP-TTLS/PEAP state"));
                };
                state.handle(data, id, first, rng)
            }
            _ => Err(EapError::InvalidConfig("credentials do not fit the EAP method")),
        }
    }

    /// Our methods in order of preference: `allowed` (or, by default, every mutual method we implement) that our
    /// credentials can serve. EAP-MD5 authenticates only us and derives no key: it runs only when the profile
    /// names it, and only after the gateway proved itself with its certificate.
    fn offered_methods(&self) -> Vec<EapMethod> {
        const MUTUAL: [EapMethod; 4] = [EapMethod::MsChapV2, EapMethod::Tls, EapMethod::Ttls, EapMethod::Peap];
        let base: &[EapMethod] = if self.config.allowed.is_empty() { &MUTUAL } else { &self.config.allowed };
        let mut out: Vec<EapMethod> = Vec::with_capacity(base.len());
        for &m in base {
            let allowed_now = self.gateway_authenticated || MUTUAL.contains(&m);
            if allowed_now && m.fits(&self.config.credentials) && !out.contains(&m) {
                out.push(m);
            }
        }
        out
    }
}
