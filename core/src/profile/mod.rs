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

mod auth;
mod settings;

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::Path;

use serde::Deserialize;
use zeroize::Zeroizing;

pub use auth::{load_crls, root_store_from_pem, Supplied, SuppliedTrust};

use crate::ike::IkeConfig;
use ikelink_proto::session::{TransportMode, TransportPolicy, DEFAULT_TCP_PORT};

/// What to do about a Windows path in a double-quoted TOML string, where `\` starts an escape.
pub(crate) const WINDOWS_PATH_HINT: &str = "a backslash in a double-quoted string starts an escape (`\\t` is a tab); \
     write Windows paths in single quotes ('C:\\certs\\ca.pem'), with doubled backslashes \
     (\"C:\\\\certs\\\\ca.pem\") or with forward slashes (\"C:/certs/ca.pem\")";

/// A TOML syntax error; an invalid escape on a line with a backslash in double quotes (a Windows path, most
/// likely) also says how to write it.
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let msg = e.to_string();
    let line = e.span().and_then(|s| {
        let start = text.get(..s.start)?.rfind('\n').map_or(0, |i| i + 1);
        let end = text.get(s.start..)?.find('\n').map_or(text.len(), |i| s.start + i);
        text.get(start..end)
    });
    let escape = msg.contains("escape") || msg.contains("unicode");
    match line {
        Some(line) if escape && line.contains('"') && line.contains('\\') => format!("{msg}\n{WINDOWS_PATH_HINT}"),
        _ => msg,
    }
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
    /// Something the app supplied instead of a profile field ([`Supplied`]) cannot be used.
    #[error("{what}: {message}")]
    Supplied { what: String, message: String },
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
    /// A postquantum preshared key (RFC 8784).
    pub ppk: Option<PpkSection>,
}

/// `[ppk]`: a postquantum preshared key (RFC 8784), as strongSwan's `ppk_id` / `ppk_required` and its PPK
/// secret.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PpkSection {
    /// The PPK_ID the gateway knows the key by.
    pub id: String,
    /// The key: text, or `0x` and hex as in strongSwan's secrets; or a file holding it.
    pub secret: Option<String>,
    pub secret_file: Option<String>,
    /// Refuse a gateway that does not use the PPK (default); `false` connects without it and says so.
    #[serde(default = "yes")]
    pub required: bool,
}

impl std::fmt::Debug for PpkSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PpkSection")
            .field("id", &self.id)
            .field("secret_file", &self.secret_file)
            .field("required", &self.required)
            .finish_non_exhaustive()
    }
}

impl Drop for PpkSection {
    fn drop(&mut self) {
        if let Some(s) = self.secret.take() {
            drop(Zeroizing::new(s));
        }
    }
}

/// Hex digits (strongSwan's `0x...` secrets) to bytes.
fn decode_hex(h: &[u8]) -> Option<Vec<u8>> {
    if !h.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    h.chunks(2).map(|p| Some(digit(p[0])? << 4 | digit(p[1])?)).collect()
}

impl PpkSection {
    /// The PPK for the IKE SA; at least 32 bytes (RFC 8784 §6 asks for enough entropy).
    /// `supplied` is the app's key (already bytes: no `0x` decoding), used when the profile has none.
    fn resolve(&self, supplied: Option<&Zeroizing<Vec<u8>>>) -> Result<crate::ike::Ppk, ProfileError> {
        if self.id.is_empty() {
            return Err(field("ppk.id", "must not be empty"));
        }
        if supplied.is_some() && (self.secret.is_some() || self.secret_file.is_some()) {
            return Err(field("ppk.secret", "give the PPK either in the profile or from the app"));
        }
        let raw = match (&self.secret, &self.secret_file) {
            (None, None) if supplied.is_some() => {
                let secret = supplied.cloned().unwrap_or_default();
                if secret.len() < 32 {
                    return Err(field("ppk.secret", "the app's PPK must be at least 32 bytes (RFC 8784 §6)"));
                }
                return Ok(crate::ike::Ppk { id: self.id.as_bytes().to_vec(), secret, required: self.required });
            }
            (Some(s), None) => Zeroizing::new(s.as_bytes().to_vec()),
            (None, Some(f)) => {
                let mut v =
                    Zeroizing::new(std::fs::read(f).map_err(|e| field("ppk.secret_file", format!("{f}: {e}")))?);
                while v.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    v.pop();
                }
                v
            }
            _ => return Err(field("ppk.secret", "give either secret or secret_file (or the PPK from the app)")),
        };
        let secret = match raw.strip_prefix(b"0x") {
            Some(h) => Zeroizing::new(
                decode_hex(h).ok_or_else(|| field("ppk.secret", "0x must be followed by pairs of hex digits"))?,
            ),
            None => raw,
        };
        if secret.len() < 32 {
            return Err(field("ppk.secret", "must be at least 32 bytes (RFC 8784 §6)"));
        }
        Ok(crate::ike::Ppk { id: self.id.as_bytes().to_vec(), secret, required: self.required })
    }
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
    /// With additional (post-quantum) key exchanges in the proposals (`ke1_mlkem768`, RFC 9370): also
    /// connect to a gateway that does only classical key exchange (reported), like Apple's
    /// `allowPostQuantumKeyExchangeFallback`. Default: refuse it.
    #[serde(default)]
    pub pq_fallback: bool,
}

fn default_fragment_mtu() -> u16 {
    1280
}

impl Default for IkeSection {
    fn default() -> Self {
        IkeSection {
            fragment_mtu: default_fragment_mtu(),
            mobike: true,
            redirect: true,
            legacy_rsa_sha1: false,
            pq_fallback: false,
        }
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
    /// What carries IKE and ESP: "udp" (default), "tcp" (RFC 9329 TCP encapsulation, one stream to
    /// `tcp_port`), or "auto" (UDP; TCP when IKE_SA_INIT gets no answer over UDP within 6 s, remembered per
    /// network for the session's reconnects).
    pub transport: Option<String>,
    /// The gateway's TCP port for `transport = "tcp" | "auto"` (default 4500).
    pub tcp_port: Option<u16>,
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
    /// `gateway.transport` and `gateway.tcp_port`.
    pub transport: TransportPolicy,
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
        let table: toml::Table = toml::from_str(text).map_err(|e| ProfileError::Toml(toml_error(text, &e)))?;
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
        self.resolve_by(supplied, &|host, port| (host, port).to_socket_addrs().map(Iterator::collect))
    }

    /// Like [`Profile::resolve_with`], looking the gateway's name up with `lookup` (an embedder's resolver, which
    /// asks the network outside the tunnel).
    pub fn resolve_by(
        &self,
        supplied: &Supplied,
        lookup: &dyn Fn(&str, u16) -> std::io::Result<Vec<SocketAddr>>,
    ) -> Result<Resolved, ProfileError> {
        let ike = self.ike_config_with(supplied)?;
        let excluded = self.excluded()?;
        let addr = &self.gateway.address;
        if addr.trim().is_empty() {
            return Err(field("gateway.address", "is empty"));
        }
        let gateway = match addr.parse::<IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, self.gateway.port),
            Err(_) => lookup(addr, self.gateway.port)
                .map_err(|e| field("gateway.address", format!("cannot resolve `{addr}`: {e}")))?
                .into_iter()
                .next()
                .ok_or_else(|| field("gateway.address", format!("`{addr}` has no address")))?,
        };
        let gateway_name = addr.parse::<IpAddr>().is_err().then(|| addr.clone());
        let backups: Vec<String> = self.gateway.backup.iter().map(|b| b.trim().to_owned()).collect();
        if backups.iter().any(|b| b.is_empty() || b.contains(char::is_whitespace)) {
            return Err(field("gateway.backup", "an entry is empty or has spaces"));
        }
        let transport = self.transport()?;
        Ok(Resolved {
            transport,
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

    /// `gateway.transport` and `gateway.tcp_port`.
    pub fn transport(&self) -> Result<TransportPolicy, ProfileError> {
        let mode = match self.gateway.transport.as_deref().map(str::trim) {
            None | Some("udp") => TransportMode::Udp,
            Some("tcp") => TransportMode::Tcp,
            Some("auto") => TransportMode::Auto,
            Some(other) => {
                return Err(field("gateway.transport", format!("`{other}`: expected \"udp\", \"tcp\" or \"auto\"")))
            }
        };
        let tcp_port = match self.gateway.tcp_port {
            Some(0) => return Err(field("gateway.tcp_port", "must not be 0")),
            Some(p) => p,
            None => DEFAULT_TCP_PORT,
        };
        Ok(TransportPolicy { mode, tcp_port, ..TransportPolicy::default() })
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

    /// Everything but the gateway address, validated.
    pub fn ike_config(&self) -> Result<IkeConfig, ProfileError> {
        self.ike_config_with(&Supplied::default())
    }

    /// Like [`Profile::ike_config`], with what an embedding app [`Supplied`] (its key store's credentials, its
    /// platform's trust) in place of files and the system trust store: the one resolver for the CLI and apps.
    pub fn ike_config_with(&self, supplied: &Supplied) -> Result<IkeConfig, ProfileError> {
        let (auth, local_id) = self.client_auth(supplied)?;
        let (gateway_auth, remote_id, remote_id_loose) = self.gateway_auth(supplied)?;
        let (ike_proposals, esp_proposals) = self.proposals()?;
        let (ts_i, ts_r) = self.traffic_selectors()?;
        let t = self.timers()?;
        if !self.nat.force_encap {
            // Never let the negotiated encapsulation differ from what the data path does (issue 11): without a
            // NAT the gateway would expect raw ESP, which this client cannot send.
            tracing::warn!("nat.force_encap = false: raw ESP is not implemented; UDP encapsulation is forced");
        }
        let fragment_mtu = match self.ike.fragment_mtu {
            1..576 => return Err(field("ike.fragment_mtu", "must be 0 (off) or at least 576")),
            m => m,
        };
        Ok(IkeConfig {
            local_id,
            remote_id,
            remote_id_loose,
            legacy_rsa_sha1: self.ike.legacy_rsa_sha1,
            send_remote_id: self.gateway.send_id,
            auth,
            gateway_auth,
            eap_only: self.auth.eap_only,
            ike_proposals,
            esp_proposals,
            request_ipv4: self.tunnel.virtual_ip,
            request_ipv6: self.tunnel.virtual_ip6,
            request_dns: self.tunnel.dns,
            ts_i,
            ts_r,
            retransmit: t.retransmit,
            force_encap: true,
            keepalive: t.keepalive,
            dpd: t.dpd,
            dpd_tries: t.dpd_tries,
            child_lifetime: t.child_lifetime,
            ike_lifetime: t.ike_lifetime,
            child_lifetime_bytes: t.child_lifetime_bytes,
            reauth_lifetime: t.reauth_lifetime,
            mobike: self.ike.mobike,
            redirect: self.ike.redirect,
            redirected_from: None,
            initial_contact: true,
            fragment_mtu,
            pq_fallback: self.ike.pq_fallback,
            ppk: match &self.ppk {
                Some(p) => Some(p.resolve(supplied.ppk_secret.as_ref())?),
                None if supplied.ppk_secret.is_some() => {
                    return Err(field("ppk", "the app supplied a PPK, but the profile has no [ppk] section (id)"))
                }
                None => None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::{IkeProposal, Retransmit};
    use crate::wire::Identification;

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

    // Issue 13: a Windows path in a double-quoted string is an escape error (or, with `\t`/`\n`, silently another
    // name); both errors say to use single quotes, and single quotes keep the path as written.
    #[test]
    fn windows_paths_in_double_quotes_say_what_to_do() {
        let eap = "[gateway]\naddress = \"203.0.113.2\"\nca = [CA]\n[auth]\nmethod = \"eap\"\nusername = \"a\"\n\
                   password = \"b\"\n";
        let e = Profile::parse(&eap.replace("CA", r#""C:\users\me\ca.pem""#)).unwrap_err();
        assert!(matches!(e, ProfileError::Toml(_)), "{e}");
        assert!(e.to_string().contains("single quotes ('C:\\certs\\ca.pem')"), "{e}");
        let e = Profile::parse(&eap.replace("CA", r#""C:\tmp\new.pem""#)).unwrap().ike_config().unwrap_err();
        assert!(e.to_string().starts_with("gateway.ca: `C:\\tmp\\new.pem` contains a control character"), "{e}");
        assert!(e.to_string().contains("single quotes"), "{e}");
        let e = Profile::parse(&eap.replace("CA", r"'C:\users\me\ca.pem'")).unwrap().ike_config().unwrap_err();
        assert!(e.to_string().starts_with(r"gateway.ca: cannot read `C:\users\me\ca.pem`"), "{e}");
        // Other syntax errors get no hint.
        let e = Profile::parse("[gateway\n").unwrap_err().to_string();
        assert!(!e.contains("single quotes"), "{e}");
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

    #[test]
    fn transport_policy() {
        let t = Profile::parse(MINIMAL).unwrap().transport().unwrap();
        assert_eq!((t.mode, t.tcp_port), (TransportMode::Udp, 4500));
        let with = |extra: &str| MINIMAL.replacen("[gateway]\n", &format!("[gateway]\n{extra}\n"), 1);
        let t = Profile::parse(&with("transport = \"tcp\"\ntcp_port = 10443")).unwrap().transport().unwrap();
        assert_eq!((t.mode, t.tcp_port), (TransportMode::Tcp, 10443));
        let t = Profile::parse(&with("transport = \"auto\"")).unwrap().resolve().unwrap().transport;
        assert_eq!((t.mode, t.tcp_port), (TransportMode::Auto, 4500));
        let e = Profile::parse(&with("transport = \"quic\"")).unwrap().transport().unwrap_err().to_string();
        assert!(e.contains("gateway.transport"), "{e}");
        let e = Profile::parse(&with("tcp_port = 0")).unwrap().transport().unwrap_err().to_string();
        assert!(e.contains("gateway.tcp_port"), "{e}");
    }
}

#[cfg(test)]
mod ppk_tests {
    use super::*;

    const BASE: &str = "[gateway]\naddress = \"203.0.113.2\"\n[local]\nid = \"c@ikelink.test\"\n[auth]\nmethod = \"psk\"\npsk = \"secret\"\n";
    const HEX: &str = "0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn with(ppk: &str) -> Profile {
        Profile::parse(&format!("{BASE}[ppk]\n{ppk}\n")).unwrap()
    }

    fn app(key: &[u8]) -> Supplied {
        Supplied { ppk_secret: Some(Zeroizing::new(key.to_vec())), ..Default::default() }
    }

    fn err(r: Result<IkeConfig, ProfileError>) -> String {
        r.err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn profile_secret_hex_text_and_required_default() {
        let ppk = with(&format!("id = \"k1\"\nsecret = \"{HEX}\"")).ike_config().unwrap().ppk.unwrap();
        assert_eq!(
            (ppk.id.as_slice(), ppk.secret.as_slice(), ppk.required),
            (&b"k1"[..], &(0..32).collect::<Vec<u8>>()[..], true)
        );
        let ppk = with("id = \"k1\"\nsecret = \"a passphrase of thirty-two bytes!\"\nrequired = false")
            .ike_config()
            .unwrap()
            .ppk
            .unwrap();
        assert_eq!((ppk.secret.len(), ppk.required), (33, false));
        assert!(err(with("id = \"k1\"\nsecret = \"0x0001\"").ike_config()).contains("at least 32 bytes"));
        assert!(err(with("id = \"k1\"\nsecret = \"0xzz\"").ike_config()).contains("hex"));
        assert!(err(with("id = \"\"\nsecret = \"0x00\"").ike_config()).contains("ppk.id"));
        assert!(err(with("id = \"k1\"").ike_config()).contains("ppk.secret"));
    }

    /// Apps keep the PPK in their key store (ConnectOptions.ppk_secret): used when the profile has none,
    /// refused when both give one or when there is no `[ppk] id` to send with it.
    #[test]
    fn app_supplied_key() {
        let ppk = with("id = \"k1\"").ike_config_with(&app(&[7; 32])).unwrap().ppk.unwrap();
        assert_eq!((ppk.id.as_slice(), ppk.secret.as_slice()), (&b"k1"[..], &[7u8; 32][..]));
        // Bytes as given: no `0x` decoding of a key store's value.
        let ppk = with("id = \"k1\"").ike_config_with(&app(HEX.as_bytes())).unwrap().ppk.unwrap();
        assert_eq!(ppk.secret.len(), HEX.len());
        assert!(err(with("id = \"k1\"").ike_config_with(&app(&[7; 31]))).contains("at least 32 bytes"));
        assert!(err(with(&format!("id = \"k1\"\nsecret = \"{HEX}\"")).ike_config_with(&app(&[7; 32])))
            .contains("either in the profile or from the app"));
        assert!(err(Profile::parse(BASE).unwrap().ike_config_with(&app(&[7; 32]))).contains("no [ppk] section"));
        assert!(Profile::parse(BASE).unwrap().ike_config().unwrap().ppk.is_none());
    }

    #[test]
    fn debug_output_has_no_key() {
        let p = with(&format!("id = \"k1\"\nsecret = \"{HEX}\""));
        let shown = format!("{:?} {:?}", p.ppk, app(b"a key store secret of 32 bytes!!"));
        assert!(!shown.contains("0x0001") && !shown.contains("key store secret"), "{shown}");
    }
}

#[cfg(test)]
mod trust_tests {
    use super::*;
    use crate::ike::GatewayAuth;

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
