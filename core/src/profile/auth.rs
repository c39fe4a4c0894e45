//! Authentication from a profile: ours (PSK, certificate, EAP) and the gateway's (PSK, certificate under our
//! anchors or the platform's), with what an embedding app [`Supplied`] in place of files and the system store.

use std::net::IpAddr;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;
use zeroize::Zeroizing;

use super::{field, Profile, ProfileError};
use crate::crypto::{ClientCredentials, GatewayCertPolicy, TrustAnchors};
use crate::eap::{EapConfig, EapCredentials, EapMethod, TlsCredentials, TlsKey, TtlsCredentials};
use crate::ike::{parse_identity, AuthConfig, GatewayAuth, TrustEvaluator};
use crate::wire::{IdType, Identification};

/// What an embedding app supplies for authentication, where a desktop profile names files or relies on the
/// system trust store (mobile apps have neither: keys live in a key store, trust in the platform). Each part
/// replaces the profile fields it names, which must then be absent; a part the profile has no use for is an
/// error, never silently ignored.
#[derive(Clone, Default)]
pub struct Supplied {
    /// Our certificate chain and the signer of its key (typically a key store's), for `auth.method = "cert"`
    /// or EAP-TLS, instead of `auth.cert`/`auth.key`/`auth.pkcs12`.
    pub client_credentials: Option<ClientCredentials>,
    /// The pre-shared key (`auth.method = "psk"`) or the EAP password (EAP-MSCHAPv2, -MD5, -TTLS, PEAP), from
    /// a key store, instead of `auth.psk`/`auth.psk_file` or `auth.password`/`auth.password_file`.
    pub secret: Option<Zeroizing<Vec<u8>>>,
    /// How the gateway's certificate is trusted, instead of `gateway.ca` or the system store.
    pub gateway_trust: Option<SuppliedTrust>,
    /// The postquantum preshared key (RFC 8784) for the profile's `[ppk] id`, from a key store, instead of
    /// `ppk.secret`/`ppk.secret_file`.
    pub ppk_secret: Option<Zeroizing<Vec<u8>>>,
}

/// Trust in the gateway's certificate, as an app supplies it.
#[derive(Clone)]
pub enum SuppliedTrust {
    /// These CA certificates anchor the gateway's chain, and an EAP-TLS/TTLS/PEAP server's; the profile's pins,
    /// CRLs and revocation checks still apply.
    CaCertificates(Vec<CertificateDer<'static>>),
    /// The platform decides whether it trusts the chain (Android's and Apple's trust stores); the core still
    /// matches the gateway's identity against the certificate and checks its signature.
    Platform(Arc<dyn TrustEvaluator>),
}

impl SuppliedTrust {
    /// [`SuppliedTrust::CaCertificates`] from PEM: at least one certificate, each usable as a trust anchor.
    pub fn from_pem(pem: &[u8]) -> Result<SuppliedTrust, ProfileError> {
        TrustAnchors::from_pem(pem).map_err(|e| supplied_error("CA certificates", e))?;
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| supplied_error("CA certificates", format!("bad PEM: {e:?}")))?;
        Ok(SuppliedTrust::CaCertificates(certs))
    }
}

impl std::fmt::Debug for SuppliedTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SuppliedTrust::CaCertificates(c) => f.debug_tuple("CaCertificates").field(&c.len()).finish(),
            SuppliedTrust::Platform(_) => f.write_str("Platform"),
        }
    }
}

impl std::fmt::Debug for Supplied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supplied")
            .field("client_credentials", &self.client_credentials)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("gateway_trust", &self.gateway_trust)
            .field("ppk_secret", &self.ppk_secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// The platform's trust store (desktop); mobile platforms decide trust in their shell.
fn system_anchors() -> Result<TrustAnchors, String> {
    #[cfg(not(any(target_os = "android", target_os = "ios")))]
    {
        crate::trust::system_anchors().map_err(|e| e.to_string())
    }
    #[cfg(any(target_os = "android", target_os = "ios"))]
    {
        Err("no system trust store here: name the gateway's CA".into())
    }
}

/// A secret from `auth.<name>` or `auth.<name>_file`, or from the app.
fn read_secret(
    name: &str,
    inline: &Option<String>,
    file: &Option<String>,
    supplied: Option<&Zeroizing<Vec<u8>>>,
) -> Result<Option<Zeroizing<Vec<u8>>>, ProfileError> {
    match (inline, file, supplied) {
        (None, None, Some(s)) => Ok(Some(s.clone())),
        (_, _, Some(_)) => {
            Err(field(&format!("auth.{name}"), format!("give the {name} either in the profile or from the app")))
        }
        (Some(p), None, None) => Ok(Some(Zeroizing::new(p.as_bytes().to_vec()))),
        (None, Some(f), None) => {
            let mut v = read_file(&format!("auth.{name}_file"), f)?;
            while v.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                v.pop();
            }
            Ok(Some(Zeroizing::new(v)))
        }
        (Some(_), Some(_), None) => {
            Err(field(&format!("auth.{name}"), format!("give either {name} or {name}_file, not both")))
        }
        (None, None, None) => Ok(None),
    }
}

/// Reads a file a profile field names. A control character in the name is refused first: in a double-quoted TOML
/// string a Windows path's `\t` or `\n` is an escape, so `"C:\tmp\new.pem"` names a file that does not exist.
pub(super) fn read_file(name: &str, path: &str) -> Result<Vec<u8>, ProfileError> {
    if path.chars().any(char::is_control) {
        return Err(field(
            name,
            format!("`{}` contains a control character: {}", path.escape_debug(), super::WINDOWS_PATH_HINT),
        ));
    }
    std::fs::read(path).map_err(|e| field(name, format!("cannot read `{path}`: {e}")))
}

fn parse_hex32(name: &str, s: &str) -> Result<[u8; 32], ProfileError> {
    let s: String = s.chars().filter(|c| !c.is_whitespace() && *c != ':').collect();
    let bytes: Option<Vec<u8>> =
        (0..s.len()).step_by(2).map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok())).collect();
    bytes.and_then(|b| <[u8; 32]>::try_from(b).ok()).ok_or_else(|| field(name, "must be 64 hex digits (SHA-256)"))
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

/// An error about a part the app supplied (not about the profile text).
fn supplied_error(what: &str, message: impl std::fmt::Display) -> ProfileError {
    ProfileError::Supplied { what: what.into(), message: message.to_string() }
}

impl Profile {
    /// How the gateway authenticates: `gateway.auth`, by default "psk" with `auth.method = "psk"`, else "cert".
    pub fn gateway_auth_kind(&self) -> &str {
        self.gateway.auth.as_deref().unwrap_or(if self.auth.method == "psk" { "psk" } else { "cert" })
    }

    /// Step 1, our side: how we authenticate, and our identity (IDi).
    pub(super) fn client_auth(&self, supplied: &Supplied) -> Result<(AuthConfig, Identification), ProfileError> {
        let a = &self.auth;
        let eap_tls = a.method == "eap" && a.eap_method.as_deref() == Some("tls");
        if supplied.client_credentials.is_some() {
            if a.method == "eap" && !eap_tls {
                return Err(field("auth.eap_method", "a client identity from the app needs eap_method = \"tls\""));
            }
            if a.method != "cert" && a.method != "eap" {
                return Err(field(
                    "auth.method",
                    format!("a client identity from the app needs method \"cert\", not \"{}\"", a.method),
                ));
            }
            if a.cert.is_some() || a.key.is_some() || a.pkcs12.is_some() {
                return Err(field("auth.cert", "give the client identity either in the profile or from the app"));
            }
        }
        if supplied.secret.is_some() && (a.method == "cert" || eap_tls) {
            return Err(field("auth.method", "a secret from the app serves \"psk\" and EAP with a password"));
        }
        let (auth, default_id) = match a.method.as_str() {
            "psk" => {
                let psk = read_secret("psk", &a.psk, &a.psk_file, supplied.secret.as_ref())?
                    .ok_or_else(|| field("auth.psk", "method \"psk\" needs psk or psk_file"))?;
                if psk.is_empty() {
                    return Err(field("auth.psk", "is empty"));
                }
                if let Some(why) = super::weak_psk(&psk) {
                    tracing::warn!("auth.psk is weak ({why}): anyone who records one connection can guess it offline");
                }
                (AuthConfig::Psk(psk), None)
            }
            "cert" => {
                let creds = self.client_credentials(supplied)?;
                let id = creds.subject_identity().map_err(|e| field("auth.cert", e.to_string()))?;
                (AuthConfig::Certificate(creds), Some(id))
            }
            "eap" => {
                let (eap, id) = self.eap_auth(supplied)?;
                (AuthConfig::Eap(eap), Some(id))
            }
            other => return Err(field("auth.method", format!("unknown method `{other}` (supported: psk, cert, eap)"))),
        };
        let local_id = match (&self.local.id, default_id) {
            (Some(s), _) => parse_identity(s).map_err(|e| field("local.id", e))?,
            (None, Some(id)) => id,
            (None, None) => return Err(field("local.id", "is required with a pre-shared key")),
        };
        Ok((auth, local_id))
    }

    /// Our certificate and key: the app's, or the profile's files.
    fn client_credentials(&self, supplied: &Supplied) -> Result<ClientCredentials, ProfileError> {
        if let Some(c) = &supplied.client_credentials {
            return Ok(c.clone());
        }
        let a = &self.auth;
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
    }

    /// EAP (§2.16): the method, its credentials, and the EAP identity.
    fn eap_auth(&self, supplied: &Supplied) -> Result<(EapConfig, Identification), ProfileError> {
        let a = &self.auth;
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
        let tls13 = match a.tls_max_version.as_deref().map(str::trim) {
            None | Some("1.2") => false,
            Some("1.3") => true,
            Some(v) => return Err(field("auth.tls_max_version", format!("`{v}`: \"1.2\" or \"1.3\""))),
        };
        let tunneled = matches!(method, Some(EapMethod::Ttls | EapMethod::Peap));
        if a.ttls_inner.is_some() && !tunneled {
            return Err(field("auth.ttls_inner", "only with eap_method = \"ttls\" or \"peap\""));
        }
        let password = || -> Result<(String, Zeroizing<String>), ProfileError> {
            let username = a.username.clone().ok_or_else(|| field("auth.username", "EAP needs a user name"))?;
            let password = read_secret("password", &a.password, &a.password_file, supplied.secret.as_ref())?
                .ok_or_else(|| field("auth.password", "EAP needs password or password_file"))?;
            let password = String::from_utf8(password.to_vec()).map_err(|_| field("auth.password", "is not UTF-8"))?;
            Ok((username, Zeroizing::new(password)))
        };
        let credentials = if method == Some(EapMethod::Tls) {
            let (chain, key) = match &supplied.client_credentials {
                Some(c) => {
                    (c.chain.iter().cloned().map(CertificateDer::from).collect(), TlsKey::Signer(c.signer.clone()))
                }
                None => self.eap_tls_files()?,
            };
            let (roots, server_name) = self.eap_server_trust("EAP-TLS", supplied)?;
            EapCredentials::Tls(TlsCredentials { chain, key, server_name, roots, tls13 })
        } else if tunneled {
            let (username, password) = password()?;
            let inner = match a.ttls_inner.as_deref() {
                None | Some("any") => Vec::new(),
                Some("mschapv2") => vec![EapMethod::MsChapV2],
                Some("md5") => vec![EapMethod::Md5],
                Some(m) => return Err(field("auth.ttls_inner", format!("unknown inner method `{m}` (mschapv2, md5)"))),
            };
            let what = if method == Some(EapMethod::Peap) { "PEAP" } else { "EAP-TTLS" };
            let (roots, server_name) = self.eap_server_trust(what, supplied)?;
            EapCredentials::Ttls(TtlsCredentials { username, password, server_name, roots, inner, tls13 })
        } else {
            let (username, password) = password()?;
            EapCredentials::Password { username, password }
        };
        let identity =
            a.eap_identity.clone().or_else(|| a.username.clone()).or_else(|| self.local.id.clone()).ok_or_else(
                || field("auth.eap_identity", "EAP needs an identity (eap_identity, username or local.id)"),
            )?;
        let id = parse_identity(&identity).map_err(|e| field("auth.eap_identity", e))?;
        Ok((EapConfig { identity, credentials, allowed: method.into_iter().collect() }, id))
    }

    /// Our EAP-TLS certificate chain and key from `auth.cert`/`auth.key` (PEM).
    fn eap_tls_files(&self) -> Result<(Vec<CertificateDer<'static>>, TlsKey), ProfileError> {
        let a = &self.auth;
        // The same checks as for certificate authentication (the key is the certificate's).
        self.client_credentials(&Supplied::default())?;
        let chain = a.cert.as_ref().ok_or_else(|| field("auth.cert", "EAP-TLS needs cert and key (PEM)"))?;
        let key = a.key.as_ref().ok_or_else(|| field("auth.key", "EAP-TLS needs cert and key (PEM)"))?;
        let chain_pem = read_file("auth.cert", chain)?;
        let key_pem = read_file("auth.key", key)?;
        let chain = CertificateDer::pem_slice_iter(&chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| field("auth.cert", format!("bad PEM: {e:?}")))?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| field("auth.key", format!("bad PEM: {e:?}")))?;
        Ok((chain, TlsKey::Der(key)))
    }

    /// Trust anchors for the certificate of an EAP-TLS/TTLS server or PEAP (the app's CAs, or the profile's
    /// `gateway.ca`), and the name it must carry.
    fn eap_server_trust(&self, what: &str, supplied: &Supplied) -> Result<(RootCertStore, String), ProfileError> {
        let server_name =
            self.gateway.id.clone().filter(|i| i.trim() != "%any").unwrap_or_else(|| self.gateway.address.clone());
        if let Some(SuppliedTrust::CaCertificates(certs)) = &supplied.gateway_trust {
            let mut roots = RootCertStore::empty();
            for c in certs {
                roots.add(c.clone()).map_err(|e| supplied_error("CA certificates", e))?;
            }
            return Ok((roots, server_name));
        }
        let mut roots = RootCertStore::empty();
        for f in &self.gateway.ca {
            for c in CertificateDer::pem_slice_iter(&read_file("gateway.ca", f)?) {
                let c = c.map_err(|e| field("gateway.ca", format!("bad PEM: {e:?}")))?;
                roots.add(c).map_err(|e| field("gateway.ca", e.to_string()))?;
            }
        }
        if roots.is_empty() {
            let why = match supplied.gateway_trust {
                Some(SuppliedTrust::Platform(_)) => " (the platform's trust covers only the gateway's)",
                _ => "",
            };
            return Err(field("gateway.ca", format!("{what} needs the CA of the EAP server's certificate{why}")));
        }
        Ok((roots, server_name))
    }

    /// Step 2, the gateway's side: how it must authenticate, and the identity it must prove (with whether the
    /// certificate may prove it for another IDr, see [`Profile::expected_gateway_id`]).
    pub(super) fn gateway_auth(
        &self,
        supplied: &Supplied,
    ) -> Result<(GatewayAuth, Option<Identification>, bool), ProfileError> {
        let kind = self.gateway_auth_kind();
        let (remote_id, loose) = self.expected_gateway_id(kind)?;
        let gateway_auth = match (kind, &supplied.gateway_trust) {
            ("psk", Some(_)) => {
                return Err(field("gateway.auth", "the gateway authenticates with the PSK, not a certificate"))
            }
            ("psk", None) => {
                if self.auth.method != "psk" {
                    return Err(field("gateway.auth", "\"psk\" needs auth.method = \"psk\""));
                }
                GatewayAuth::Psk
            }
            ("cert", Some(_)) if !self.gateway.ca.is_empty() => {
                return Err(field("gateway.ca", "give the gateway's CA either in the profile or from the app"))
            }
            ("cert", Some(SuppliedTrust::Platform(evaluator))) => {
                // Pins and CRLs are checked against our anchors only: with the platform's trust they would be
                // ignored, so they are refused rather than silently dropped.
                let unchecked = [
                    ("gateway.pin_sha256", self.gateway.pin_sha256.is_some()),
                    ("gateway.pin_ca_sha256", self.gateway.pin_ca_sha256.is_some()),
                    ("gateway.crl", !self.gateway.crl.is_empty()),
                ];
                if let Some((name, _)) = unchecked.iter().find(|(_, set)| *set) {
                    return Err(field(name, "not checked when the platform judges the chain: give the CA instead"));
                }
                GatewayAuth::Platform(evaluator.clone())
            }
            ("cert", Some(SuppliedTrust::CaCertificates(certs))) => {
                let anchors = TrustAnchors::from_der(certs.iter().map(|c| c.as_ref()))
                    .map_err(|e| supplied_error("CA certificates", e))?;
                self.certificate_policy(anchors)?
            }
            ("cert", None) => {
                let mut anchors = TrustAnchors::new();
                for f in &self.gateway.ca {
                    anchors.add_pem(&read_file("gateway.ca", f)?).map_err(|e| field("gateway.ca", e.to_string()))?;
                }
                if self.gateway.ca.is_empty() {
                    anchors = system_anchors().map_err(|e| field("gateway.ca", e))?;
                }
                self.certificate_policy(anchors)?
            }
            (other, _) => return Err(field("gateway.auth", format!("unknown `{other}` (psk, cert)"))),
        };
        Ok((gateway_auth, remote_id, loose))
    }

    /// The gateway's certificate under our `anchors`, with the profile's pins, CRLs and revocation checks.
    fn certificate_policy(&self, anchors: TrustAnchors) -> Result<GatewayAuth, ProfileError> {
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
        Ok(GatewayAuth::Certificate(Arc::new(policy)))
    }

    /// The identity the gateway must prove (the one place this default is decided): `gateway.id` (for a
    /// certificate gateway a host name, address or e-mail may also be proven by its certificate when the IDr is
    /// another name, such as its DN); without it, for a certificate-authenticated gateway, its address as
    /// written (a host name as FQDN / dNSName, an IP as ID_IPV4/6 / iPAddress), which its certificate must name
    /// whatever its IDr (loose, as strongSwan's app and Apple's client check it). `%any` accepts any name a
    /// trusted certificate carries: an explicit, logged opt-out. A PSK-authenticated gateway proves itself with
    /// the key; its IDr is checked only against a `gateway.id`. The same rule holds whoever trusts the chain:
    /// our anchors or the platform's.
    pub(super) fn expected_gateway_id(
        &self,
        gateway_auth: &str,
    ) -> Result<(Option<Identification>, bool), ProfileError> {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KeyPairSigner;

    const CERT: &str = "[gateway]\naddress = \"203.0.113.2\"\nid = \"gw.ikelink.test\"\n[auth]\nmethod = \"cert\"\n";
    const PSK: &str =
        "[gateway]\naddress = \"203.0.113.2\"\n[local]\nid = \"c@ikelink.test\"\n[auth]\nmethod = \"psk\"\n";

    fn credentials() -> (ClientCredentials, Vec<u8>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["c.ikelink.test".into()]).unwrap().self_signed(&key).unwrap();
        let signer = Arc::new(KeyPairSigner::from_pkcs8_der(&key.serialize_der()).unwrap());
        (ClientCredentials::new(vec![cert.der().to_vec()], signer).unwrap(), cert.pem().into_bytes())
    }

    struct Os;
    impl TrustEvaluator for Os {
        fn evaluate(&self, _: &[Vec<u8>], _: Option<&str>) -> Result<(), String> {
            Ok(())
        }
    }

    fn config(text: &str, supplied: &Supplied) -> Result<crate::ike::IkeConfig, String> {
        Profile::parse(text).unwrap().ike_config_with(supplied).map_err(|e| e.to_string())
    }

    // Issue 12: one resolver for the CLI and apps; what the app supplies takes the place of files, with no
    // stand-in values, and the gateway's expected identity is decided the same way whoever trusts the chain.
    #[test]
    fn what_the_app_supplies_replaces_files() {
        let (creds, ca) = credentials();
        let trust = SuppliedTrust::from_pem(&ca).unwrap();
        let s = Supplied { client_credentials: Some(creds.clone()), gateway_trust: Some(trust), ..Default::default() };
        let c = config(CERT, &s).unwrap();
        assert!(matches!(c.auth, AuthConfig::Certificate(_)));
        assert_eq!(c.local_id.id_type, IdType::ID_DER_ASN1_DN, "the certificate's subject");
        assert!(matches!(&c.gateway_auth, GatewayAuth::Certificate(p) if p.anchors.len() == 1));
        let s = Supplied { client_credentials: Some(creds), ..Default::default() };
        let platform = Supplied { gateway_trust: Some(SuppliedTrust::Platform(Arc::new(Os))), ..s.clone() };
        let c = config(CERT, &platform).unwrap();
        assert!(matches!(c.gateway_auth, GatewayAuth::Platform(_)));
        assert_eq!((c.remote_id, c.remote_id_loose), (Some(parse_identity("gw.ikelink.test").unwrap()), true));
        // No gateway.id: the address, as with our own anchors.
        let c = config(&CERT.replace("id = \"gw.ikelink.test\"\n", ""), &platform).unwrap();
        assert_eq!(c.remote_id, Some(parse_identity("203.0.113.2").unwrap()));
        // A PSK from the key store.
        let secret = Supplied {
            secret: Some(Zeroizing::new(b"a pre-shared key from the key store".to_vec())),
            ..Default::default()
        };
        let c = config(PSK, &secret).unwrap();
        assert!(matches!(&c.auth, AuthConfig::Psk(k) if k.as_slice() == b"a pre-shared key from the key store"));
        // An EAP password from the key store.
        let eap = "[gateway]\naddress = \"gw.ikelink.test\"\n[auth]\nmethod = \"eap\"\nusername = \"alice\"\n";
        assert!(matches!(config(eap, &secret).unwrap().auth, AuthConfig::Eap(_)));
        assert!(config(eap, &Supplied::default()).unwrap_err().starts_with("auth.password"));
    }

    #[test]
    fn supplied_parts_that_clash_or_go_unused_are_errors() {
        let (creds, ca) = credentials();
        let creds = Supplied { client_credentials: Some(creds), ..Default::default() };
        let secret = Supplied { secret: Some(Zeroizing::new(b"x".repeat(24))), ..Default::default() };
        let trust = Supplied { gateway_trust: Some(SuppliedTrust::from_pem(&ca).unwrap()), ..Default::default() };
        let platform = Supplied { gateway_trust: Some(SuppliedTrust::Platform(Arc::new(Os))), ..Default::default() };
        let platform_creds = Supplied { client_credentials: creds.client_credentials.clone(), ..platform.clone() };
        let cases = [
            (CERT.replace("method = \"cert\"", "method = \"cert\"\ncert = \"c.pem\"\nkey = \"k.pem\""), &creds, "auth.cert"),
            (PSK.to_string(), &creds, "auth.method"),
            (format!("{PSK}psk = \"inline secret of some length\"\n"), &secret, "auth.psk"),
            (CERT.to_string(), &secret, "auth.method"),
            (format!("{PSK}psk = \"inline secret of some length\"\n"), &trust, "gateway.auth"),
            (CERT.replace("[auth]", "ca = [\"ca.pem\"]\n[auth]"), &platform_creds, "gateway.ca"),
            (CERT.replace("[auth]", &format!("pin_sha256 = \"{}\"\n[auth]", "ab".repeat(32))), &platform_creds, "gateway.pin_sha256"),
            (
                "[gateway]\naddress = \"gw\"\n[auth]\nmethod = \"eap\"\neap_method = \"ttls\"\nusername = \"a\"\npassword = \"b\"\n".into(),
                &platform,
                "gateway.ca",
            ),
            (
                "[gateway]\naddress = \"gw\"\n[auth]\nmethod = \"eap\"\neap_method = \"mschapv2\"\nusername = \"a\"\npassword = \"b\"\n".into(),
                &creds,
                "auth.eap_method",
            ),
        ];
        for (text, supplied, name) in cases {
            let e = config(&text, supplied).unwrap_err();
            assert!(e.starts_with(name), "{e} should name {name}");
        }
        let e = SuppliedTrust::from_pem(b"-----BEGIN CERTIFICATE-----\nxx\n").unwrap_err();
        assert!(matches!(e, ProfileError::Supplied { .. }), "{e}");
        assert!(matches!(SuppliedTrust::from_pem(b""), Err(ProfileError::Supplied { .. })));
    }
}
