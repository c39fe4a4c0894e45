//! Connection profiles: a small TOML file a user or an app writes (documented in README.md).
//!
//! ```toml
//! [gateway]
//! address = "203.0.113.2"        # IP or host name
//! id = "gw.ikelink.test"         # expected gateway identity (IDr); optional
//!
//! [local]
//! id = "client@ikelink.test"
//!
//! [auth]
//! method = "psk"
//! psk = "secret"                 # or psk_file = "/path"
//!
//! [proposals]                    # optional; strongSwan syntax, defaults like strongSwan's
//! ike = ["aes256gcm16-prfsha256-x25519"]
//! esp = ["aes256gcm16"]
//!
//! [tunnel]                       # optional
//! virtual_ip = true
//! dns = true
//! remote_ts = ["0.0.0.0/0"]      # full tunnel; list subnets for split tunnel
//!
//! [timers]                       # optional
//! retransmit_timeout = 4.0
//! retransmit_base = 1.8
//! retransmit_tries = 5
//! ```
//! Validation errors name the field (`auth.psk: ...`).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use zeroize::Zeroizing;

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;

use crate::crypto::{ClientCredentials, GatewayCertPolicy, TrustAnchors};
use crate::eap::{EapConfig, EapCredentials, EapMethod, TlsCredentials, TlsKey, TtlsCredentials};
use crate::ike::{
    parse_cidr, parse_identity, AuthConfig, EspProposal, GatewayAuth, IkeConfig, IkeProposal, Retransmit,
};
use crate::wire::{IdType, Identification};

/// The platform's trust store (desktop); mobile platforms decide trust in their shell.
fn system_anchors() -> Result<TrustAnchors, String> {
    crate::trust::system_anchors().map_err(|e| e.to_string())
}

/// A profile error, naming the offending field.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read profile {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("profile is not valid TOML: {0}")]
    Toml(String),
    /// Valid TOML, but not a profile: a missing, unknown or mistyped section or field, named.
    #[error("{0}")]
    Structure(String),
    #[error("{field}: {message}")]
    Field { field: String, message: String },
}

fn field(field: &str, message: impl Into<String>) -> ProfileError {
    ProfileError::Field { field: field.into(), message: message.into() }
}

/// The raw profile as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub gateway: GatewaySection,
    #[serde(default)]
    pub local: LocalSection,
    pub auth: AuthSection,
    #[serde(default)]
    pub proposals: ProposalsSection,
    #[serde(default)]
    pub tunnel: TunnelSection,
    #[serde(default)]
    pub timers: TimersSection,
    #[serde(default)]
    pub nat: NatSection,
    #[serde(default)]
    pub ike: IkeSection,
}

/// IKE protocol options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IkeSection {
    /// RFC 7383 fragmentation: largest IP datagram for IKE messages (0 disables it).
    #[serde(default = "default_fragment_mtu")]
    pub fragment_mtu: u16,
    /// Offer MOBIKE (RFC 4555) so the tunnel follows address changes; otherwise the client reconnects.
    #[serde(default = "yes")]
    pub mobike: bool,
    /// Follow redirects to another gateway (RFC 5685), as load-balanced gateway clusters send them.
    #[serde(default = "yes")]
    pub redirect: bool,
    /// Accept a gateway signature with RSA and SHA-1 (AUTH method 1): only for legacy gateways.
    #[serde(default)]
    pub legacy_rsa_sha1: bool,
}

fn default_fragment_mtu() -> u16 {
    1280
}

impl Default for IkeSection {
    fn default() -> Self {
        IkeSection { fragment_mtu: default_fragment_mtu(), mobike: true, redirect: true, legacy_rsa_sha1: false }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySection {
    pub address: String,
    #[serde(default = "default_port")]
    pub port: u16,
    pub id: Option<String>,
    /// Also send `id` as IDr in IKE_AUTH (for gateways with several identities on one address).
    #[serde(default)]
    pub send_id: bool,
    /// Other addresses or names of the same gateway service (a cluster), tried in order when the current one
    /// does not answer, like strongSwan's list of `remote_addrs`. Same port, identity and trust.
    #[serde(default)]
    pub backup: Vec<String>,
    /// How the gateway authenticates: "psk" or "cert". Default: "psk" with `auth.method = "psk"`, else "cert".
    pub auth: Option<String>,
    /// CA certificates (PEM files) the gateway's certificate must chain to; they replace the system store.
    #[serde(default)]
    pub ca: Vec<String>,
    /// Certificate revocation lists (PEM or DER files) of those CAs: a revoked gateway certificate is refused.
    #[serde(default)]
    pub crl: Vec<String>,
    /// Online revocation checks (CRLs from the certificates' distribution points, OCSP): "relaxed" (default:
    /// refuse only what is known to be revoked), "ifuri" (also refuse when a named distribution point or OCSP
    /// responder gave no status), "strict" (every certificate of the chain needs a CRL), "offline" (fetch
    /// nothing; only `crl`).
    pub revocation: Option<String>,
    /// SHA-256 of the CA's / the gateway certificate's SubjectPublicKeyInfo (hex), to pin them.
    pub pin_ca_sha256: Option<String>,
    pub pin_sha256: Option<String>,
}

fn default_port() -> u16 {
    500
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSection {
    /// Our identity (IDi). Default: the certificate's subject DN with `auth.method = "cert"`, the EAP
    /// identity with "eap"; required with "psk".
    pub id: Option<String>,
    /// Local UDP ports for IKE and NAT-T; 0 picks a free port.
    #[serde(default = "default_ike_port")]
    pub ike_port: u16,
    #[serde(default = "default_natt_port")]
    pub natt_port: u16,
}

impl Default for LocalSection {
    fn default() -> Self {
        LocalSection { id: None, ike_port: default_ike_port(), natt_port: default_natt_port() }
    }
}

fn default_ike_port() -> u16 {
    500
}
fn default_natt_port() -> u16 {
    4500
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    /// "psk", "cert" or "eap".
    pub method: String,
    pub psk: Option<String>,
    pub psk_file: Option<String>,
    /// Our certificate chain (PEM, end entity first) and key (PEM: PKCS#8, PKCS#1 or SEC1), for "cert" and
    /// EAP-TLS; or a PKCS#12 file.
    pub cert: Option<String>,
    pub key: Option<String>,
    pub pkcs12: Option<String>,
    pub pkcs12_password: Option<String>,
    /// "mschapv2", "md5", "tls", "ttls", "peap"; default: whatever mutual method (not MD5) the gateway asks
    /// for among those our credentials allow.
    pub eap_method: Option<String>,
    /// With "ttls" or "peap": the method inside the tunnel, "mschapv2" or "md5"; default: either.
    pub ttls_inner: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<String>,
    /// EAP identity; default: the user name.
    pub eap_identity: Option<String>,
    /// Offer EAP-only authentication (RFC 5998).
    #[serde(default)]
    pub eap_only: bool,
    /// Highest TLS version for EAP-TLS, -TTLS and PEAP: "1.2" (default, as strongSwan and Windows) or "1.3".
    pub tls_max_version: Option<String>,
}

impl std::fmt::Debug for AuthSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSection")
            .field("method", &self.method)
            .field("psk_file", &self.psk_file)
            .field("cert", &self.cert)
            .field("eap_method", &self.eap_method)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Drop for AuthSection {
    fn drop(&mut self) {
        for s in [self.psk.take(), self.password.take(), self.pkcs12_password.take()].into_iter().flatten() {
            drop(Zeroizing::new(s));
        }
    }
}

fn read_secret(
    name: &str,
    inline: &Option<String>,
    file: &Option<String>,
) -> Result<Option<Zeroizing<Vec<u8>>>, ProfileError> {
    match (inline, file) {
        (Some(p), None) => Ok(Some(Zeroizing::new(p.as_bytes().to_vec()))),
        (None, Some(f)) => {
            let mut v =
                std::fs::read(f).map_err(|e| field(&format!("auth.{name}_file"), format!("cannot read `{f}`: {e}")))?;
            while v.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                v.pop();
            }
            Ok(Some(Zeroizing::new(v)))
        }
        (Some(_), Some(_)) => {
            Err(field(&format!("auth.{name}"), format!("give either {name} or {name}_file, not both")))
        }
        (None, None) => Ok(None),
    }
}

fn read_file(name: &str, path: &str) -> Result<Vec<u8>, ProfileError> {
    std::fs::read(path).map_err(|e| field(name, format!("cannot read `{path}`: {e}")))
}

fn parse_hex32(name: &str, s: &str) -> Result<[u8; 32], ProfileError> {
    let s: String = s.chars().filter(|c| !c.is_whitespace() && *c != ':').collect();
    let bytes: Option<Vec<u8>> =
        (0..s.len()).step_by(2).map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok())).collect();
    bytes.and_then(|b| <[u8; 32]>::try_from(b).ok()).ok_or_else(|| field(name, "must be 64 hex digits (SHA-256)"))
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProposalsSection {
    #[serde(default)]
    pub ike: Vec<String>,
    #[serde(default)]
    pub esp: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunnelSection {
    #[serde(default = "yes")]
    pub virtual_ip: bool,
    #[serde(default)]
    pub virtual_ip6: bool,
    #[serde(default = "yes")]
    pub dns: bool,
    #[serde(default = "default_ts")]
    pub remote_ts: Vec<String>,
    /// Our side's selectors when no virtual IP is requested.
    #[serde(default)]
    pub local_ts: Vec<String>,
    /// Full tunnel only: drop whatever would leave outside the tunnel (IPv6 and routes others add included).
    #[serde(default)]
    pub kill_switch: bool,
    /// Prefixes kept out of the tunnel (the local network, services that must not use the VPN), like the
    /// strongSwan app's excluded subnets.
    #[serde(default)]
    pub exclude: Vec<String>,
}

fn yes() -> bool {
    true
}
fn default_ts() -> Vec<String> {
    vec!["0.0.0.0/0".into()]
}

impl Default for TunnelSection {
    fn default() -> Self {
        TunnelSection {
            virtual_ip: true,
            virtual_ip6: false,
            dns: true,
            remote_ts: default_ts(),
            local_ts: vec![],
            kill_switch: false,
            exclude: vec![],
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimersSection {
    #[serde(default = "default_rt")]
    pub retransmit_timeout: f64,
    #[serde(default = "default_rb")]
    pub retransmit_base: f64,
    #[serde(default = "default_tries")]
    pub retransmit_tries: u32,
    /// Dead peer detection interval in seconds (0: off).
    #[serde(default = "default_dpd")]
    pub dpd: u32,
    /// DPD retransmissions before the gateway counts as dead.
    #[serde(default = "default_dpd_tries")]
    pub dpd_tries: u32,
    /// Rekey the Child SA / the IKE SA after this many seconds (minus up to 10% jitter); 0: only when the
    /// gateway does.
    #[serde(default = "default_rekey_child")]
    pub rekey_child: u32,
    #[serde(default = "default_rekey_ike")]
    pub rekey_ike: u32,
    /// Rekey the Child SA after this many bytes (0: no byte lifetime).
    #[serde(default)]
    pub rekey_child_bytes: u64,
    /// Reauthenticate after this many seconds (0: never).
    #[serde(default)]
    pub reauth: u32,
}

fn default_rekey_child() -> u32 {
    3600
}
fn default_rekey_ike() -> u32 {
    14400
}

fn secs(s: u32) -> Option<Duration> {
    (s > 0).then(|| Duration::from_secs(u64::from(s)))
}

fn default_dpd() -> u32 {
    30
}
fn default_dpd_tries() -> u32 {
    3
}

fn default_rt() -> f64 {
    4.0
}
fn default_rb() -> f64 {
    1.8
}
fn default_tries() -> u32 {
    5
}

impl Default for TimersSection {
    fn default() -> Self {
        TimersSection {
            retransmit_timeout: 4.0,
            retransmit_base: 1.8,
            retransmit_tries: 5,
            dpd: default_dpd(),
            dpd_tries: default_dpd_tries(),
            rekey_child: default_rekey_child(),
            rekey_ike: default_rekey_ike(),
            rekey_child_bytes: 0,
            reauth: 0,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatSection {
    /// Always use UDP encapsulation (RFC 3948), even without a NAT (default, as strongSwan's app: the data
    /// path is userspace ESP over UDP; raw ESP is not implemented, so `false` is overridden with a warning).
    #[serde(default = "yes")]
    pub force_encap: bool,
    /// NAT keepalive interval in seconds (0: off); sent only behind a real NAT (RFC 3948 §4).
    #[serde(default = "default_keepalive")]
    pub keepalive: u32,
}

fn default_keepalive() -> u32 {
    20
}

impl Default for NatSection {
    fn default() -> Self {
        NatSection { force_encap: true, keepalive: default_keepalive() }
    }
}

/// CRLs from files, PEM (`X509 CRL` blocks) or DER.
pub fn load_crls(files: &[String]) -> Result<Vec<Vec<u8>>, ProfileError> {
    use rustls::pki_types::CertificateRevocationListDer;
    let mut out = Vec::new();
    for f in files {
        let bytes = read_file("gateway.crl", f)?;
        if bytes.starts_with(b"-----BEGIN") {
            for crl in CertificateRevocationListDer::pem_slice_iter(&bytes) {
                let crl = crl.map_err(|e| field("gateway.crl", format!("{f}: bad PEM: {e:?}")))?;
                out.push(crl.as_ref().to_vec());
            }
        } else {
            out.push(bytes.to_vec());
        }
    }
    Ok(out)
}

/// Trust anchors (for an EAP-TLS/EAP-TTLS server) from PEM certificates.
pub fn root_store_from_pem(pem: &[u8]) -> Result<RootCertStore, ProfileError> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(pem) {
        let c = c.map_err(|e| field("CA certificates", format!("bad PEM: {e:?}")))?;
        roots.add(c).map_err(|e| field("CA certificates", e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(field("CA certificates", "no certificate in the PEM data"));
    }
    Ok(roots)
}

/// Trust an embedding app supplies (mobile platforms have no files or system store for rustls).
#[derive(Debug, Clone, Default)]
pub struct Supplied {
    /// How the gateway's certificate is checked, instead of `gateway.ca` or the system store.
    pub gateway_auth: Option<GatewayAuth>,
    /// Trust anchors for an EAP-TLS/EAP-TTLS server, instead of `gateway.ca`.
    pub eap_roots: Option<RootCertStore>,
    /// Our EAP-TLS certificate chain and key (a key store's), instead of `auth.cert`/`auth.key` files.
    pub eap_tls_identity: Option<(Vec<CertificateDer<'static>>, TlsKey)>,
}

/// A validated profile, ready to connect.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub gateway: SocketAddr,
    /// The gateway's host name when it was given as one (resolved again on reconnect).
    pub gateway_name: Option<String>,
    /// `gateway.backup`: the addresses or names to fail over to, in order.
    pub backups: Vec<String>,
    pub ike_port: u16,
    pub natt_port: u16,
    pub ike: IkeConfig,
    /// Drop traffic outside a full tunnel ([`crate::platform::NetworkConfig::kill_switch`]).
    pub kill_switch: bool,
    /// Prefixes kept out of the tunnel ([`crate::platform::NetworkConfig::excluded`]).
    pub excluded: Vec<(IpAddr, u8)>,
}

impl Profile {
    /// Read and parse a profile file.
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ProfileError::Read { path: path.display().to_string(), source })?;
        Profile::parse(&text)
    }

    /// Parse profile text.
    pub fn parse(text: &str) -> Result<Profile, ProfileError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| ProfileError::Toml(e.to_string()))?;
        table.try_into().map_err(|e: toml::de::Error| {
            // The same error from the text carries the line; the table's carries the field's path.
            let line = toml::from_str::<Profile>(text)
                .err()
                .and_then(|e| e.span())
                .map(|span| 1 + text.get(..span.start).map_or(0, |before| before.matches('\n').count()));
            ProfileError::Structure(explain_structure_error(&e.to_string(), line))
        })
    }

    /// Validate every field and resolve the gateway's address (this may query DNS).
    pub fn resolve(&self) -> Result<Resolved, ProfileError> {
        self.resolve_with(&Supplied::default())
    }

    /// Like [`Profile::resolve`], with trust an embedding app supplies instead of files and the system store.
    pub fn resolve_with(&self, supplied: &Supplied) -> Result<Resolved, ProfileError> {
        let ike = self.ike_config_with(supplied)?;
        let excluded = self.excluded()?;
        let addr = &self.gateway.address;
        if addr.trim().is_empty() {
            return Err(field("gateway.address", "is empty"));
        }
        let gateway = match addr.parse::<IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, self.gateway.port),
            Err(_) => (addr.as_str(), self.gateway.port)
                .to_socket_addrs()
                .map_err(|e| field("gateway.address", format!("cannot resolve `{addr}`: {e}")))?
                .next()
                .ok_or_else(|| field("gateway.address", format!("`{addr}` has no address")))?,
        };
        let gateway_name = addr.parse::<IpAddr>().is_err().then(|| addr.clone());
        let backups: Vec<String> = self.gateway.backup.iter().map(|b| b.trim().to_owned()).collect();
        if backups.iter().any(|b| b.is_empty() || b.contains(char::is_whitespace)) {
            return Err(field("gateway.backup", "an entry is empty or has spaces"));
        }
        Ok(Resolved {
            gateway,
            gateway_name,
            backups,
            ike_port: self.local.ike_port,
            natt_port: self.local.natt_port,
            ike,
            kill_switch: self.tunnel.kill_switch,
            excluded,
        })
    }

    /// `tunnel.exclude` as prefixes (host bits cleared; /0 is refused: that would be no tunnel at all).
    pub fn excluded(&self) -> Result<Vec<(IpAddr, u8)>, ProfileError> {
        self.tunnel
            .exclude
            .iter()
            .map(|s| {
                let bad = |why: &str| field("tunnel.exclude", format!("`{s}`: {why}"));
                let (addr, len) = crate::platform::parse_prefix(s).map_err(|e| bad(&e.to_string()))?;
                if len == 0 {
                    return Err(bad("a /0 would exclude everything"));
                }
                Ok((addr, len))
            })
            .collect()
    }

    /// The identity the gateway must prove (the one place this default is decided): `gateway.id` (for a
    /// certificate gateway a host name, address or e-mail may also be proven by its certificate when the IDr is
    /// another name, such as its DN); without it, for a certificate-authenticated gateway, its address as written (a host name
    /// as FQDN / dNSName, an IP as ID_IPV4/6 / iPAddress), which its certificate must name whatever its IDr
    /// (loose, as strongSwan's app and Apple's client check it). `%any` accepts any name a trusted certificate
    /// carries: an explicit, logged opt-out. A PSK-authenticated gateway proves itself with the key; its IDr is
    /// checked only against a `gateway.id`.
    fn expected_gateway_id(&self, gateway_auth: &str) -> Result<(Option<Identification>, bool), ProfileError> {
        match self.gateway.id.as_deref().map(str::trim) {
            Some("%any") => {
                tracing::warn!(
                    "gateway.id = \"%any\": any gateway with a certificate from a trusted CA is accepted under any name"
                );
                Ok((None, false))
            }
            Some(s) => {
                let id = parse_identity(s).map_err(|e| field("gateway.id", e))?;
                // A name a certificate can carry (host name, address, e-mail) may come back as another IDr, e.g.
                // the certificate's DN, as many gateways send it: then the certificate must name it (issue 11).
                let nameable = matches!(
                    id.id_type,
                    IdType::ID_FQDN | IdType::ID_IPV4_ADDR | IdType::ID_IPV6_ADDR | IdType::ID_RFC822_ADDR
                );
                Ok((Some(id), nameable && gateway_auth != "psk"))
            }
            None if gateway_auth == "psk" => Ok((None, false)),
            None => {
                let addr = self.gateway.address.trim();
                let id = if addr.parse::<IpAddr>().is_ok() {
                    parse_identity(addr)
                } else {
                    parse_identity(&format!("fqdn:{addr}"))
                };
                Ok((Some(id.map_err(|e| field("gateway.address", e))?), true))
            }
        }
    }

    /// Everything but the gateway address, validated.
    pub fn ike_config(&self) -> Result<IkeConfig, ProfileError> {
        self.ike_config_with(&Supplied::default())
    }

    /// Like [`Profile::ike_config`], with what [`Supplied`] gives taking the place of `gateway.ca` files and
    /// the system trust store.
    pub fn ike_config_with(&self, supplied: &Supplied) -> Result<IkeConfig, ProfileError> {
        let a = &self.auth;
        let client_creds = || -> Result<ClientCredentials, ProfileError> {
            match (&a.cert, &a.key, &a.pkcs12) {
                (Some(c), Some(k), None) => {
                    ClientCredentials::from_pem(&read_file("auth.cert", c)?, &read_file("auth.key", k)?)
                        .map_err(|e| field("auth.cert", e.to_string()))
                }
                #[cfg(all(feature = "pkcs12", not(any(target_os = "android", target_os = "ios"))))]
                (None, None, Some(p)) => {
                    let pw = a.pkcs12_password.clone().unwrap_or_default();
                    ClientCredentials::from_pkcs12(&read_file("auth.pkcs12", p)?, &pw)
                        .map_err(|e| field("auth.pkcs12", e.to_string()))
                }
                _ => Err(field("auth.cert", "give cert and key (PEM files) or pkcs12")),
            }
        };
        let (auth, default_id) = match a.method.as_str() {
            "psk" => {
                let psk = read_secret("psk", &a.psk, &a.psk_file)?
                    .ok_or_else(|| field("auth.psk", "method \"psk\" needs psk or psk_file"))?;
                if psk.is_empty() {
                    return Err(field("auth.psk", "is empty"));
                }
                if let Some(why) = weak_psk(&psk) {
                    tracing::warn!("auth.psk is weak ({why}): anyone who records one connection can guess it offline");
                }
                (AuthConfig::Psk(psk), None)
            }
            "cert" => {
                let creds = client_creds()?;
                let id = creds.subject_identity().map_err(|e| field("auth.cert", e.to_string()))?;
                (AuthConfig::Certificate(creds), Some(id))
            }
            "eap" => {
                let method = match a.eap_method.as_deref() {
                    None | Some("any") => None,
                    Some("mschapv2") => Some(EapMethod::MsChapV2),
                    Some("md5") => Some(EapMethod::Md5),
                    Some("tls") => Some(EapMethod::Tls),
                    Some("ttls") => Some(EapMethod::Ttls),
                    Some("peap") => Some(EapMethod::Peap),
                    Some(m) => {
                        return Err(field(
                            "auth.eap_method",
                            format!("unknown EAP method `{m}` (mschapv2, md5, tls, ttls, peap)"),
                        ))
                    }
                };
                // Trust anchors for the certificate of an EAP-TLS or EAP-TTLS server: the app's, or the profile's
                // `gateway.ca`.
                let eap_server_trust = |what: &str| -> Result<(RootCertStore, String), ProfileError> {
                    let server_name = self
                        .gateway
                        .id
                        .clone()
                        .filter(|i| i.trim() != "%any")
                        .unwrap_or_else(|| self.gateway.address.clone());
                    if let Some(roots) = &supplied.eap_roots {
                        return Ok((roots.clone(), server_name));
                    }
                    let mut roots = RootCertStore::empty();
                    for f in &self.gateway.ca {
                        for c in CertificateDer::pem_slice_iter(&read_file("gateway.ca", f)?) {
                            let c = c.map_err(|e| field("gateway.ca", format!("bad PEM: {e:?}")))?;
                            roots.add(c).map_err(|e| field("gateway.ca", e.to_string()))?;
                        }
                    }
                    if roots.is_empty() {
                        return Err(field(
                            "gateway.ca",
                            format!("{what} needs the CA of the EAP server's certificate"),
                        ));
                    }
                    Ok((roots, server_name))
                };
                let tls13 = match a.tls_max_version.as_deref().map(str::trim) {
                    None | Some("1.2") => false,
                    Some("1.3") => true,
                    Some(v) => return Err(field("auth.tls_max_version", format!("`{v}`: \"1.2\" or \"1.3\""))),
                };
                let tunneled = matches!(method, Some(EapMethod::Ttls | EapMethod::Peap));
                if a.ttls_inner.is_some() && !tunneled {
                    return Err(field("auth.ttls_inner", "only with eap_method = \"ttls\" or \"peap\""));
                }
                let credentials = if let (Some(EapMethod::Tls), Some((chain, key))) =
                    (method, supplied.eap_tls_identity.as_ref())
                {
                    let (roots, server_name) = eap_server_trust("EAP-TLS")?;
                    EapCredentials::Tls(TlsCredentials {
                        chain: chain.clone(),
                        key: key.clone(),
                        server_name,
                        roots,
                        tls13,
                    })
                } else if method == Some(EapMethod::Tls) {
                    let creds = client_creds()?;
                    let _ = creds;
                    let chain =
                        a.cert.as_ref().ok_or_else(|| field("auth.cert", "EAP-TLS needs cert and key (PEM)"))?;
                    let key = a.key.as_ref().ok_or_else(|| field("auth.key", "EAP-TLS needs cert and key (PEM)"))?;
                    let chain_pem = read_file("auth.cert", chain)?;
                    let key_pem = read_file("auth.key", key)?;
                    let chain = CertificateDer::pem_slice_iter(&chain_pem)
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| field("auth.cert", format!("bad PEM: {e:?}")))?;
                    let key = PrivateKeyDer::from_pem_slice(&key_pem)
                        .map_err(|e| field("auth.key", format!("bad PEM: {e:?}")))?;
                    let (roots, server_name) = eap_server_trust("EAP-TLS")?;
                    EapCredentials::Tls(TlsCredentials { chain, key: TlsKey::Der(key), server_name, roots, tls13 })
                } else if tunneled {
                    let username = a.username.clone().ok_or_else(|| field("auth.username", "EAP needs a user name"))?;
                    let password = read_secret("password", &a.password, &a.password_file)?
                        .ok_or_else(|| field("auth.password", "EAP needs password or password_file"))?;
                    let password =
                        String::from_utf8(password.to_vec()).map_err(|_| field("auth.password", "is not UTF-8"))?;
                    let inner = match a.ttls_inner.as_deref() {
                        None | Some("any") => Vec::new(),
                        Some("mschapv2") => vec![EapMethod::MsChapV2],
                        Some("md5") => vec![EapMethod::Md5],
                        Some(m) => {
                            return Err(field("auth.ttls_inner", format!("unknown inner method `{m}` (mschapv2, md5)")))
                        }
                    };
                    let (roots, server_name) =
                        eap_server_trust(if method == Some(EapMethod::Peap) { "PEAP" } else { "EAP-TTLS" })?;
                    EapCredentials::Ttls(TtlsCredentials {
                        username,
                        password: Zeroizing::new(password),
                        server_name,
                        roots,
                        inner,
                        tls13,
                    })
                } else {
                    let username = a.username.clone().ok_or_else(|| field("auth.username", "EAP needs a user name"))?;
                    let password = read_secret("password", &a.password, &a.password_file)?
                        .ok_or_else(|| field("auth.password", "EAP needs password or password_file"))?;
                    let password =
                        String::from_utf8(password.to_vec()).map_err(|_| field("auth.password", "is not UTF-8"))?;
                    EapCredentials::Password { username, password: Zeroizing::new(password) }
                };
                let identity = a
                    .eap_identity
                    .clone()
                    .or_else(|| a.username.clone())
                    .or_else(|| self.local.id.clone())
                    .ok_or_else(|| {
                        field("auth.eap_identity", "EAP needs an identity (eap_identity, username or local.id)")
                    })?;
                let id = parse_identity(&identity).map_err(|e| field("auth.eap_identity", e))?;
                (AuthConfig::Eap(EapConfig { identity, credentials, allowed: method.into_iter().collect() }), Some(id))
            }
            other => return Err(field("auth.method", format!("unknown method `{other}` (supported: psk, cert, eap)"))),
        };
        let local_id = match (&self.local.id, default_id) {
            (Some(s), _) => parse_identity(s).map_err(|e| field("local.id", e))?,
            (None, Some(id)) => id,
            (None, None) => return Err(field("local.id", "is required with a pre-shared key")),
        };
        let kind = self.gateway.auth.as_deref().unwrap_or(if a.method == "psk" { "psk" } else { "cert" });
        let (remote_id, remote_id_loose) = self.expected_gateway_id(kind)?;
        let gateway_auth = match kind {
            "cert" if supplied.gateway_auth.is_some() => {
                supplied.gateway_auth.clone().ok_or_else(|| field("gateway.auth", "missing"))?
            }
            "psk" => {
                if a.method != "psk" {
                    return Err(field("gateway.auth", "\"psk\" needs auth.method = \"psk\""));
                }
                GatewayAuth::Psk
            }
            "cert" => {
                let mut anchors = TrustAnchors::new();
                for f in &self.gateway.ca {
                    anchors.add_pem(&read_file("gateway.ca", f)?).map_err(|e| field("gateway.ca", e.to_string()))?;
                }
                if self.gateway.ca.is_empty() {
                    anchors = system_anchors().map_err(|e| field("gateway.ca", e))?;
                }
                let mut policy = GatewayCertPolicy::new(anchors);
                if let Some(p) = &self.gateway.pin_ca_sha256 {
                    policy.pinned_ca_spki_sha256 = Some(parse_hex32("gateway.pin_ca_sha256", p)?);
                }
                if let Some(p) = &self.gateway.pin_sha256 {
                    policy.pinned_leaf_spki_sha256 = Some(parse_hex32("gateway.pin_sha256", p)?);
                }
                policy.crls = load_crls(&self.gateway.crl)?;
                if let Some(r) = &self.gateway.revocation {
                    policy.revocation = r.parse().map_err(|e| field("gateway.revocation", e))?;
                }
                GatewayAuth::Certificate(Arc::new(policy))
            }
            other => return Err(field("gateway.auth", format!("unknown `{other}` (psk, cert)"))),
        };
        let ike_proposals = if self.proposals.ike.is_empty() {
            IkeProposal::defaults()
        } else {
            self.proposals
                .ike
                .iter()
                .map(|s| IkeProposal::parse(s).map_err(|e| field("proposals.ike", e.to_string())))
                .collect::<Result<_, _>>()?
        };
        let esp_proposals = if self.proposals.esp.is_empty() {
            EspProposal::defaults()
        } else {
            self.proposals
                .esp
                .iter()
                .map(|s| EspProposal::parse(s).map_err(|e| field("proposals.esp", e.to_string())))
                .collect::<Result<_, _>>()?
        };
        let ts = |name: &str, list: &[String]| -> Result<Vec<_>, ProfileError> {
            list.iter().map(|s| parse_cidr(s).map(|c| c.to_ts()).map_err(|e| field(name, e))).collect()
        };
        let ts_r = ts("tunnel.remote_ts", &self.tunnel.remote_ts)?;
        if ts_r.is_empty() {
            return Err(field("tunnel.remote_ts", "needs at least one prefix"));
        }
        let mut ts_i = ts("tunnel.local_ts", &self.tunnel.local_ts)?;
        if ts_i.is_empty() {
            // With a virtual IP the gateway narrows this to the assigned address (§2.9).
            ts_i.push(parse_cidr("0.0.0.0/0").map_err(|e| field("tunnel.local_ts", e))?.to_ts());
            if self.tunnel.virtual_ip6 {
                ts_i.push(parse_cidr("::/0").map_err(|e| field("tunnel.local_ts", e))?.to_ts());
            }
        }
        let t = &self.timers;
        if !(t.retransmit_timeout.is_finite() && t.retransmit_timeout > 0.0 && t.retransmit_timeout <= 600.0) {
            return Err(field("timers.retransmit_timeout", "must be between 0 and 600 seconds"));
        }
        if !(t.retransmit_base.is_finite() && (1.0..=10.0).contains(&t.retransmit_base)) {
            return Err(field("timers.retransmit_base", "must be between 1 and 10"));
        }
        if t.retransmit_tries > 20 {
            return Err(field("timers.retransmit_tries", "must be at most 20"));
        }
        Ok(IkeConfig {
            local_id,
            remote_id,
            remote_id_loose,
            legacy_rsa_sha1: self.ike.legacy_rsa_sha1,
            send_remote_id: self.gateway.send_id,
            auth,
            gateway_auth,
            eap_only: a.eap_only,
            ike_proposals,
            esp_proposals,
            request_ipv4: self.tunnel.virtual_ip,
            request_ipv6: self.tunnel.virtual_ip6,
            request_dns: self.tunnel.dns,
            ts_i,
            ts_r,
            retransmit: Retransmit {
                timeout: Duration::from_secs_f64(t.retransmit_timeout),
                base: t.retransmit_base,
                tries: t.retransmit_tries,
            },
            force_encap: {
                if !self.nat.force_encap {
                    // Never let the negotiated encapsulation differ from what the data path does (issue 11):
                    // without a NAT the gateway would expect raw ESP, which this client cannot send.
                    tracing::warn!("nat.force_encap = false: raw ESP is not implemented; UDP encapsulation is forced");
                }
                true
            },
            keepalive: match self.nat.keepalive {
                0 => None,
                k => Some(Duration::from_secs(u64::from(k))),
            },
            dpd: match self.timers.dpd {
                0 => None,
                d => Some(Duration::from_secs(u64::from(d))),
            },
            dpd_tries: self.timers.dpd_tries,
            child_lifetime: secs(self.timers.rekey_child),
            ike_lifetime: secs(self.timers.rekey_ike),
            child_lifetime_bytes: (self.timers.rekey_child_bytes > 0).then_some(self.timers.rekey_child_bytes),
            reauth_lifetime: secs(self.timers.reauth),
            mobike: self.ike.mobike,
            redirect: self.ike.redirect,
            redirected_from: None,
            initial_contact: true,
            fragment_mtu: match self.ike.fragment_mtu {
                0 => 0,
                m if m < 576 => return Err(field("ike.fragment_mtu", "must be 0 (off) or at least 576")),
                m => m,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[gateway]
address = "203.0.113.2"
[local]
id = "client@ikelink.test"
[auth]
method = "psk"
psk = "secret"
"#;

    #[test]
    fn minimal_profile_gets_defaults() {
        let p = Profile::parse(MINIMAL).unwrap();
        let r = p.resolve().unwrap();
        assert_eq!(r.gateway, "203.0.113.2:500".parse().unwrap());
        assert_eq!(r.ike.ike_proposals, IkeProposal::defaults());
        assert!(r.ike.request_ipv4 && r.ike.request_dns);
        assert_eq!(r.ike.retransmit, Retransmit::default());
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (MINIMAL.replace("psk = \"secret\"", ""), "auth.psk"),
            (MINIMAL.replace("method = \"psk\"", "method = \"foo\""), "auth.method"),
            (format!("{MINIMAL}[proposals]\nike = [\"aes256-foo\"]\n"), "proposals.ike"),
            (format!("{MINIMAL}[tunnel]\nremote_ts = [\"10.0.0.1/8\"]\n"), "tunnel.remote_ts"),
            (format!("{MINIMAL}[timers]\nretransmit_timeout = -1.0\n"), "timers.retransmit_timeout"),
            (MINIMAL.replace("client@ikelink.test", ""), "local.id"),
        ];
        for (text, name) in cases {
            let e = Profile::parse(&text).unwrap().resolve().unwrap_err().to_string();
            assert!(e.starts_with(name), "{e} should name {name}");
        }
        let e = Profile::parse(&format!("{MINIMAL}bogus = 1\n")).unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
    }

    // Issue 11: only [gateway] and [auth] are required; a missing, unknown or misspelt section or field is
    // named in plain words (with the nearest known name), never called "not valid TOML".
    #[test]
    fn structure_errors_in_plain_words() {
        let no_local = MINIMAL.replace("[local]\nid = \"client@ikelink.test\"\n", "");
        let e = Profile::parse(&no_local).unwrap().resolve().unwrap_err().to_string();
        assert!(e.starts_with("local.id"), "{e}");
        let eap =
            "[gateway]\naddress = \"203.0.113.2\"\n[auth]\nmethod = \"eap\"\nusername = \"a\"\npassword = \"b\"\n";
        assert!(Profile::parse(eap).unwrap().ike_config().is_ok());
        let cases = [
            (MINIMAL.replace("address", "adress"), "gateway.adress: unknown field; did you mean `address`?"),
            (MINIMAL.replace("[gateway]", "[gatway]"), "[gatway]: unknown section; did you mean [gateway]?"),
            (MINIMAL.replace("[auth]", "[ath]"), "[ath]: unknown section; did you mean [auth]?"),
            (format!("{MINIMAL}[timers]\nretransmit_tmeout = 2.0\n"), "did you mean `retransmit_timeout`?"),
            (MINIMAL.replace("address = \"203.0.113.2\"", ""), "gateway.address: is missing"),
            (MINIMAL.replace("psk = \"secret\"", "psk = 5"), "auth.psk: invalid type"),
            (format!("{MINIMAL}[tunnel]\nnonsense_field = 1\n"), "tunnel.nonsense_field: unknown field (known:"),
        ];
        for (text, want) in cases {
            let e = Profile::parse(&text).unwrap_err();
            assert!(matches!(e, ProfileError::Structure(_)), "{e}");
            assert!(e.to_string().contains(want), "{e} should say {want}");
            assert!(!e.to_string().contains("not valid TOML"), "{e}");
        }
        let e = Profile::parse(&MINIMAL.replace("[auth]\n", "")).unwrap_err().to_string();
        assert!(e.starts_with("local.method: unknown field"), "{e}");
        let e = Profile::parse("[gateway]\naddress = \"x\"\n").unwrap_err().to_string();
        assert_eq!(e, "[auth]: the section is missing");
        let e = Profile::parse("[gateway\n").unwrap_err().to_string();
        assert!(e.contains("not valid TOML"), "{e}");
        let e = Profile::parse(&MINIMAL.replace("address", "adress")).unwrap_err().to_string();
        assert!(e.contains("(line 3)"), "{e}");
    }

    /// An EAP profile whose gateway authenticates with a certificate from the system store.
    fn eap_profile(address: &str, id: Option<&str>) -> String {
        let id = id.map(|i| format!("id = \"{i}\"\n")).unwrap_or_default();
        format!(
            "[gateway]\naddress = \"{address}\"\n{id}[local]\n[auth]\nmethod = \"eap\"\nusername = \"alice\"\npassword = \"pw\"\n"
        )
    }

    // Issue 10, hole 5: without gateway.id any trusted certificate was accepted under any name; the expected
    // identity now defaults to the address as written (loose: the certificate must name it).
    #[test]
    fn gateway_identity_defaults_to_the_address() {
        let c = Profile::parse(&eap_profile("vpn.example.com", None)).unwrap().ike_config().unwrap();
        let fqdn = Identification { id_type: crate::wire::IdType::ID_FQDN, data: b"vpn.example.com".to_vec() };
        assert_eq!(c.remote_id, Some(fqdn));
        assert!(c.remote_id_loose);
        let c = Profile::parse(&eap_profile("203.0.113.2", None)).unwrap().ike_config().unwrap();
        let ip = Identification { id_type: crate::wire::IdType::ID_IPV4_ADDR, data: vec![203, 0, 113, 2] };
        assert_eq!(c.remote_id, Some(ip));
        // An explicit identity: a host name may be proven by the certificate (the IDr may be its DN); a DN or a
        // key ID must be the IDr itself. `%any` is the explicit opt-out.
        let c = Profile::parse(&eap_profile("203.0.113.2", Some("gw.example.com"))).unwrap().ike_config().unwrap();
        assert!(c.remote_id.is_some() && c.remote_id_loose);
        let c = Profile::parse(&eap_profile("203.0.113.2", Some("keyid:0x0102"))).unwrap().ike_config().unwrap();
        assert!(c.remote_id.is_some() && !c.remote_id_loose);
        let c = Profile::parse(&eap_profile("203.0.113.2", Some("%any"))).unwrap().ike_config().unwrap();
        assert_eq!(c.remote_id, None);
        // A PSK gateway proves itself with the key: no default identity.
        let c = Profile::parse(MINIMAL).unwrap().ike_config().unwrap();
        assert_eq!(c.remote_id, None);
    }

    // Issue 10, hole 9: weak pre-shared keys are recognised (a warning is logged).
    #[test]
    fn weak_psks() {
        for weak in ["secret", "aaaaaaaaaaaaaaaaaaaaaaaa", "abcdefghijklmnopqrstuvwxyz", "abababababababababababab"] {
            assert!(weak_psk(weak.as_bytes()).is_some(), "{weak}");
        }
        assert_eq!(weak_psk(b"Tr0ub4dor&3-correct-horse-battery"), None);
    }
}

#[cfg(test)]
mod trust_tests {
    use super::*;

    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn system_store_by_default_profile_ca_replaces_it() {
        let base = r#"
[gateway]
address = "203.0.113.2"
id = "gw.ikelink.test"
[local]
id = "alice@ikelink.test"
[auth]
method = "eap"
username = "alice"
password = "pw"
"#;
        let anchors = |text: &str| match Profile::parse(text).unwrap().ike_config().unwrap().gateway_auth {
            GatewayAuth::Certificate(p) => p.anchors.len(),
            _ => panic!("EAP profiles authenticate the gateway by certificate"),
        };
        let system = crate::trust::system_anchors().map(|a| a.len()).unwrap_or(0);
        assert_eq!(anchors(base), system, "no `ca`: the system store");
        let dir = std::env::temp_dir().join(format!("ikelink-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, ca_pem()).unwrap();
        let with_ca = base.replace("[local]", &format!("ca = [\"{}\"]\n[local]", ca.display()));
        assert_eq!(anchors(&with_ca), 1, "a profile CA replaces the system store");
        let bad_pin = with_ca.replace("[local]", "pin_sha256 = \"abcd\"\n[local]");
        let e = Profile::parse(&bad_pin).unwrap().ike_config().unwrap_err().to_string();
        assert!(e.starts_with("gateway.pin_sha256"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// Why a pre-shared key is too weak to resist an offline dictionary attack on a recorded IKE_AUTH (RFC 7296
/// §2.15 asks for keys as strong as the negotiated keys), if it is: shorter than 20 characters, or one
/// repeated character or a run of consecutive ones.
pub fn weak_psk(psk: &[u8]) -> Option<&'static str> {
    if psk.len() < 20 {
        return Some("shorter than 20 characters");
    }
    let same = psk.windows(2).all(|w| w[0] == w[1]);
    let run =
        psk.windows(2).all(|w| w[1] == w[0].wrapping_add(1)) || psk.windows(2).all(|w| w[0] == w[1].wrapping_add(1));
    let distinct = {
        let mut seen = [false; 256];
        psk.iter().filter(|&&b| !std::mem::replace(&mut seen[usize::from(b)], true)).count()
    };
    if same || run || distinct < 5 {
        return Some("too few different characters");
    }
    None
}

/// Plain words for a profile that is valid TOML but not a valid profile (serde's message and the path the
/// TOML deserializer adds as "in `section`"): which section or field is missing or unknown, the nearest known
/// name for a misspelling, and the line.
fn explain_structure_error(message: &str, line: Option<usize>) -> String {
    let mut lines = message.lines();
    let what = lines.next().unwrap_or_default().trim();
    let path = lines.find_map(|l| l.trim().strip_prefix("in `").and_then(|r| r.strip_suffix('`')));
    let at = line.map(|n| format!(" (line {n})")).unwrap_or_default();
    let quoted = |s: &str| -> Vec<String> { s.split('`').skip(1).step_by(2).map(str::to_owned).collect() };
    if let Some(rest) = what.strip_prefix("unknown field ") {
        let names = quoted(rest);
        let (name, known) = names.split_first().map(|(n, k)| (n.as_str(), k)).unwrap_or(("?", &[]));
        let nearest = nearest(name, known);
        return match path {
            None => {
                let hint = nearest.map(|n| format!("; did you mean [{n}]?")).unwrap_or_default();
                format!("[{name}]: unknown section{hint}{at}")
            }
            Some(section) => {
                let hint = nearest.map(|n| format!("; did you mean `{n}`?")).unwrap_or_default();
                format!("{section}.{name}: unknown field{hint} (known: {}){at}", known.join(", "))
            }
        };
    }
    if let Some(rest) = what.strip_prefix("missing field ") {
        let name = quoted(rest).into_iter().next().unwrap_or_default();
        return match path {
            None => format!("[{name}]: the section is missing"),
            Some(section) => format!("{section}.{name}: is missing{at}"),
        };
    }
    match path {
        Some(p) => format!("{p}: {what}{at}"),
        None => format!("{what}{at}"),
    }
}

/// The known name closest to a misspelt one (edit distance at most a third of its length, at least 2).
fn nearest<'a>(name: &str, known: &'a [String]) -> Option<&'a str> {
    let distance = |a: &str, b: &str| -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let cur = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
                prev = cur;
            }
        }
        row[b.len()]
    };
    let limit = (name.chars().count() / 3).max(2);
    known.iter().map(|k| (distance(name, k), k.as_str())).filter(|(d, _)| *d <= limit).min().map(|(_, k)| k)
}
