//! X.509 certificates for IKEv2 certificate authentication (RFC 7296 §2.15, §3.6, §3.7; RFC 4945 §3).
//!
//! - [`TrustAnchors`]: the CAs a profile trusts (PEM/DER; the runtime adds the desktop system store).
//! - [`validate_gateway`]: path validation (rustls-webpki) of the gateway's CERT payloads at a given time, pins,
//!   key usage policy, and the IDr ↔ certificate name check; yields a [`ValidatedPeer`] whose key verifies AUTH.
//! - [`ClientCredentials`]: our certificate chain and a [`Signer`] (PEM, PKCS#12 on desktop).
//! - [`certreq_hashes`]: CERTREQ payload data.
//!
//! Everything here is sans-IO: the OS trust store is read by the runtime crate (`ikelink::trust`), which hands
//! the certificates in as bytes.

mod ocsp;
#[cfg(test)]
mod tests;
pub(crate) mod x509;

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::digest;
use der::asn1::ObjectIdentifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, ExtendedKeyUsageValidator, KeyPurposeIdIter, VerifiedPath};

use super::sig::{verify_auth, verify_signature, KeyPairSigner, SigScheme, Signer};
use super::CryptoError;
use crate::wire::{AuthMethod, IdType, Identification};
pub use ocsp::{ocsp_query, OcspError, OcspQuery, OcspStatus};
use x509::{CertInfo, GeneralName};

/// Why a certificate (chain) or credential was refused. Each kind of failure is its own variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// The gateway sent no CERT payload with an X.509 certificate.
    #[error("the gateway sent no certificate")]
    NoCertificate,
    /// No CA certificates to validate against.
    #[error("no trusted CA certificates are configured")]
    NoTrustAnchors,
    /// A configured CRL lists the certificate.
    #[error("the certificate was revoked (listed in the CA's certificate revocation list)")]
    Revoked,
    /// A configured CRL cannot be used.
    #[error("bad certificate revocation list: {0}")]
    BadCrl(String),
    /// The policy wants a revocation status that could not be had (no CRL from the certificate's distribution
    /// point `url`, or, strict, no CRL for some certificate of the chain).
    #[error("no revocation status for the gateway's certificate chain{}", .0.as_ref().map(|u| format!(" (CRL {u} unavailable)")).unwrap_or_default())]
    RevocationUnknown(Option<String>),
    /// A certificate or PEM/DER input could not be parsed.
    #[error("malformed certificate: {0}")]
    Malformed(String),
    /// No path from the end-entity certificate to a trusted CA.
    #[error("the certificate chain does not lead to a trusted CA")]
    UntrustedIssuer,
    /// A certificate of the chain is past its notAfter.
    #[error("certificate expired: not valid after {not_after} (now {now}, unix seconds)")]
    Expired { not_after: u64, now: u64 },
    /// A certificate of the chain is before its notBefore.
    #[error("certificate not yet valid: not valid before {not_before} (now {now}, unix seconds)")]
    NotYetValid { not_before: u64, now: u64 },
    /// A certificate's signature does not verify with its issuer's key.
    #[error("the certificate was not signed by the trusted CA of that name (untrusted issuer or forged certificate)")]
    BadSignature,
    /// A key type, size or signature algorithm in the chain is not supported (RSA must be ≥ 2048 bits).
    #[error("unsupported key or signature algorithm in the certificate chain")]
    UnsupportedKey,
    /// The chain breaks a structural rule (CA used as end entity, path length, name constraints, unknown
    /// critical extension, path too long).
    #[error("invalid certificate chain: {0}")]
    InvalidChain(String),
    /// The gateway's identity (IDr) is not among the certificate's names.
    #[error("gateway identity `{id}` does not match its certificate, which names {names:?}")]
    IdentityMismatch { id: String, names: Vec<String> },
    /// The identity type cannot be matched against a certificate (e.g. ID_KEY_ID).
    #[error("identity type {0} cannot be checked against a certificate")]
    UnsupportedIdentity(String),
    /// keyUsage is present and allows neither digitalSignature nor nonRepudiation (RFC 4945 §5.1.3.2).
    #[error("certificate key usage does not allow signatures")]
    BadKeyUsage,
    /// extendedKeyUsage does not allow IKE server authentication under the policy.
    #[error("certificate extended key usage {0:?} does not allow IKE server authentication")]
    BadExtendedKeyUsage(Vec<String>),
    /// A pinned SubjectPublicKeyInfo SHA-256 did not match.
    #[error("{0} public key does not match the pinned SHA-256 hash")]
    PinMismatch(&'static str),
    /// The private key does not belong to the certificate.
    #[error("the private key does not match the certificate")]
    KeyMismatch,
    /// The private key could not be loaded or used.
    #[error("private key: {0}")]
    Key(CryptoError),
    /// A PKCS#12 file could not be read (wrong password, unsupported encryption, no key).
    #[error("PKCS#12: {0}")]
    Pkcs12(String),
    /// The operating system's trust store could not be read.
    #[error("system trust store: {0}")]
    SystemStore(String),
}

/// Trusted CA certificates (RFC 5280 §6.1.1 trust anchors).
#[derive(Debug, Clone, Default)]
pub struct TrustAnchors {
    anchors: Vec<TrustAnchor<'static>>,
}

impl TrustAnchors {
    /// No anchors.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every `CERTIFICATE` in a PEM file (e.g. the profile's CA bundle). At least one is required.
    pub fn from_pem(pem: &[u8]) -> Result<Self, CertError> {
        let mut t = Self::new();
        if t.add_pem(pem)? == 0 {
            return Err(CertError::Malformed("no CERTIFICATE in PEM input".into()));
        }
        Ok(t)
    }

    /// DER CA certificates.
    pub fn from_der<'a>(certs: impl IntoIterator<Item = &'a [u8]>) -> Result<Self, CertError> {
        let mut t = Self::new();
        for c in certs {
            t.add_der(c)?;
        }
        Ok(t)
    }

    /// Add one DER CA certificate.
    pub fn add_der(&mut self, der: &[u8]) -> Result<(), CertError> {
        let cert = CertificateDer::from(der);
        let anchor = webpki::anchor_from_trusted_cert(&cert).map_err(|e| CertError::Malformed(e.to_string()))?;
        self.anchors.push(anchor.to_owned());
        Ok(())
    }

    /// Add every `CERTIFICATE` of a PEM input; returns how many.
    pub fn add_pem(&mut self, pem: &[u8]) -> Result<usize, CertError> {
        let mut n = 0;
        for c in CertificateDer::pem_slice_iter(pem) {
            let c = c.map_err(|e| CertError::Malformed(format!("PEM: {e}")))?;
            self.add_der(c.as_ref())?;
            n += 1;
        }
        Ok(n)
    }

    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }

    /// Each anchor's SubjectPublicKeyInfo, DER.
    fn spkis(&self) -> impl Iterator<Item = Vec<u8>> + '_ {
        self.anchors.iter().map(|a| webpki::spki_for_anchor(a).as_ref().to_vec())
    }
}

/// How the gateway's certificate is checked (what strongSwan and Apple's client check).
#[derive(Debug, Clone)]
pub struct GatewayCertPolicy {
    pub anchors: TrustAnchors,
    /// SHA-256 of the DER SubjectPublicKeyInfo of a CA that must be in the validated path (an intermediate or
    /// the trust anchor).
    pub pinned_ca_spki_sha256: Option<[u8; 32]>,
    /// SHA-256 of the DER SubjectPublicKeyInfo of the gateway certificate itself.
    pub pinned_leaf_spki_sha256: Option<[u8; 32]>,
    /// `false` (default, like strongSwan): extendedKeyUsage may be absent; if present it must contain
    /// serverAuth, ipsecIKE (1.3.6.1.5.5.7.3.17), iKEIntermediate (1.3.6.1.5.5.8.2.2) or
    /// anyExtendedKeyUsage. `true` (like Apple and Windows clients): extendedKeyUsage must be present and
    /// contain serverAuth.
    pub require_server_auth_eku: bool,
    /// Certificate revocation lists (DER, RFC 5280 §5) of the CAs in the chain: a listed certificate is
    /// refused; certificates whose issuer has no CRL here are not checked (like strongSwan without `strict`).
    pub crls: Vec<Vec<u8>>,
    /// Whether CRLs are also fetched and OCSP asked, and what a missing status means.
    pub revocation: Revocation,
}

/// Online revocation checking of the gateway's chain (strongSwan's `revocation` setting of a connection).
/// CRLs are fetched over HTTP from the cRLDistributionPoints (RFC 5280 §4.2.1.13) of the end-entity and the
/// intermediate certificates, and the OCSP responder (RFC 6960) of the end-entity certificate is asked;
/// sans-IO, the driver fetches ([`crl_urls`], [`ocsp_query`], [`RevocationRequest`], [`RevocationResponse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Revocation {
    /// Only the CRLs of the policy; nothing is fetched.
    Offline,
    /// Fetch; refuse only a certificate known to be revoked (strongSwan's `relaxed`, its default).
    #[default]
    Relaxed,
    /// Fetch; also refuse a certificate that names a distribution point none of whose CRLs could be had, or
    /// an OCSP responder that gave no usable answer (strongSwan's `ifuri`).
    IfUri,
    /// Fetch; every certificate of the chain needs a CRL (strongSwan's `strict`).
    Strict,
}

impl std::str::FromStr for Revocation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "offline" => Ok(Revocation::Offline),
            "relaxed" => Ok(Revocation::Relaxed),
            "ifuri" => Ok(Revocation::IfUri),
            "strict" => Ok(Revocation::Strict),
            other => Err(format!("unknown `{other}` (relaxed, ifuri, strict, offline)")),
        }
    }
}

/// One fetch the online revocation check needs: GET a CRL from `url`, or POST `ocsp_request` (DER,
/// `application/ocsp-request`, RFC 6960 §A.1) to the OCSP responder at `url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationRequest {
    pub url: String,
    pub ocsp_request: Option<Vec<u8>>,
}

/// What one [`RevocationRequest`] gave: the CRL (DER or PEM) or the DER OCSPResponse, `None` if nothing
/// could be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationResponse {
    pub url: String,
    pub data: Option<Vec<u8>>,
}

/// The OCSP query for the gateway's certificate and the responder's answer (`None`: none came).
pub type OcspAnswer<'a> = (&'a OcspQuery, Option<&'a [u8]>);

/// The `http://` CRL distribution points of the certificates of `chain` (end-entity first), in order, without
/// duplicates; certificates that cannot be parsed are skipped (validation will refuse them).
pub fn crl_urls(chain: &[&[u8]]) -> Vec<String> {
    let mut urls: Vec<String> = Vec::new();
    for cert in chain {
        let Ok(info) = x509::parse(cert) else { continue };
        for u in info.crl_uris.iter().filter_map(|u| http_url(u.as_bytes())) {
            if !urls.contains(&u) {
                urls.push(u);
            }
        }
    }
    urls
}

/// The certificates of `chain` (end-entity first) that lead to one of `policy`'s trust anchors at `now_unix`,
/// as DER: the end-entity certificate and the intermediates of the verified path, in path order; empty if the
/// chain does not verify. Only their CRL distribution points and OCSP responders are worth contacting: a
/// forged chain could otherwise make us fetch from anywhere it names (strongSwan's CVE-2022-40617).
pub fn verified_chain(chain: &[&[u8]], policy: &GatewayCertPolicy, now_unix: u64) -> Vec<Vec<u8>> {
    let Some((&leaf_der, rest)) = chain.split_first() else { return Vec::new() };
    let leaf = CertificateDer::from(leaf_der);
    let Ok(ee) = EndEntityCert::try_from(&leaf) else { return Vec::new() };
    let intermediates: Vec<CertificateDer<'_>> = rest.iter().map(|&c| CertificateDer::from(c)).collect();
    let time = UnixTime::since_unix_epoch(Duration::from_secs(now_unix));
    let path = std::cell::RefCell::new(Vec::new());
    let record = |p: &VerifiedPath<'_>| -> Result<(), webpki::Error> {
        let mut path = path.borrow_mut();
        path.push(leaf_der.to_vec());
        path.extend(p.intermediate_certificates().map(|c| c.der().as_ref().to_vec()));
        Ok(())
    };
    let verified = ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &policy.anchors.anchors,
        &intermediates,
        time,
        AnyEku,
        None,
        Some(&record),
    );
    match verified {
        Ok(_) => path.into_inner(),
        Err(_) => Vec::new(),
    }
}

/// `u` as text if it is an `http://` URL (CRLs are signed, so plain HTTP is the norm, RFC 5280 §4.2.1.13;
/// LDAP and others are not fetched).
fn http_url(u: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(u).ok()?;
    let ok = s.len() > 7 && s.get(..7)?.eq_ignore_ascii_case("http://") && s.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| s.to_owned())
}

/// A fetched CRL as DER: the bytes themselves, or the first CRL of a PEM file.
fn crl_der(bytes: &[u8]) -> Option<Vec<u8>> {
    if bytes.first() == Some(&0x30) {
        return Some(bytes.to_vec());
    }
    let crl = rustls_pki_types::CertificateRevocationListDer::pem_slice_iter(bytes).next()?.ok()?;
    Some(crl.as_ref().to_vec())
}

impl GatewayCertPolicy {
    /// Validate against `anchors`, no pins, EKU only checked when present.
    pub fn new(anchors: TrustAnchors) -> Self {
        GatewayCertPolicy {
            anchors,
            pinned_ca_spki_sha256: None,
            pinned_leaf_spki_sha256: None,
            require_server_auth_eku: false,
            crls: Vec::new(),
            revocation: Revocation::default(),
        }
    }
}

/// The gateway's validated end-entity certificate: its public key verifies the gateway's AUTH payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedPeer {
    spki: Vec<u8>,
    subject: Vec<u8>,
    names: Vec<String>,
}

impl ValidatedPeer {
    /// DER SubjectPublicKeyInfo of the end-entity certificate.
    pub fn spki(&self) -> &[u8] {
        &self.spki
    }

    /// DER subject Name of the end-entity certificate.
    pub fn subject_der(&self) -> &[u8] {
        &self.subject
    }

    /// The subject as text (`C=CH, O=ikelink, CN=gw.ikelink.test`), for logs.
    pub fn subject(&self) -> String {
        x509::display_name(&self.subject)
    }

    /// The certificate's subjectAltNames as text (`DNS:…`, `IP:…`), for logs.
    pub fn alt_names(&self) -> &[String] {
        &self.names
    }

    /// Verify a signature with the certificate's key ([`verify_signature`]).
    pub fn verify(&self, scheme: SigScheme, data: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        verify_signature(&self.spki, scheme, data, sig)
    }

    /// Verify the gateway's AUTH payload data over its signed octets ([`verify_auth`]).
    pub fn verify_auth(
        &self,
        method: AuthMethod,
        auth_data: &[u8],
        octets: &[u8],
    ) -> Result<Option<SigScheme>, CryptoError> {
        verify_auth(&self.spki, method, auth_data, octets)
    }
}

// id-kp-serverAuth, id-kp-ipsecIKE (RFC 4945 §5.1.3.12), iKEIntermediate, anyExtendedKeyUsage (RFC 5280).
const EKU_SERVER_AUTH: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.1");
const EKU_IPSEC_IKE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.17");
const EKU_IKE_INTERMEDIATE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.8.2.2");
const EKU_ANY: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37.0");

/// webpki applies its EKU check to every certificate of the path; like strongSwan we do not restrict CAs by
/// EKU and check the end entity ourselves ([`check_eku`]). Malformed EKU extensions still fail.
struct AnyEku;

impl ExtendedKeyUsageValidator for AnyEku {
    fn validate(&self, iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        for id in iter {
            id?;
        }
        Ok(())
    }
}

/// A DER-encoded distinguished name as text (`C=CH, O=Example, CN=vpn.example.com`).
pub fn display_dn(name: &[u8]) -> String {
    x509::display_name(name)
}

fn map_webpki(e: webpki::Error) -> CertError {
    use webpki::Error as E;
    match e {
        E::UnknownIssuer => CertError::UntrustedIssuer,
        E::CertRevoked => CertError::Revoked,
        E::UnknownRevocationStatus => CertError::RevocationUnknown(None),
        E::CertExpired { time, not_after } => {
            CertError::Expired { not_after: not_after.as_secs(), now: time.as_secs() }
        }
        E::CertNotValidYet { time, not_before } => {
            CertError::NotYetValid { not_before: not_before.as_secs(), now: time.as_secs() }
        }
        E::InvalidSignatureForPublicKey => CertError::BadSignature,
        E::UnsupportedSignatureAlgorithmContext(_) | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => {
            CertError::UnsupportedKey
        }
        E::BadDer
        | E::BadDerTime
        | E::TrailingData(_)
        | E::UnsupportedCertVersion
        | E::MalformedExtensions
        | E::ExtensionValueInvalid
        | E::InvalidCertValidity
        | E::InvalidSerialNumber
        | E::EmptyEkuExtension
        | E::MalformedDnsIdentifier
        | E::MalformedNameConstraint => CertError::Malformed(e.to_string()),
        other => CertError::InvalidChain(other.to_string()),
    }
}

/// SHA-256 of a DER SubjectPublicKeyInfo (the value of the pins of [`GatewayCertPolicy`]).
pub fn spki_sha256(spki: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, spki).as_ref());
    out
}

/// SHA-256 of the SubjectPublicKeyInfo of a DER certificate, to configure a pin from a certificate file.
pub fn cert_spki_sha256(cert: &[u8]) -> Result<[u8; 32], CertError> {
    let info = x509::parse(cert).map_err(|e| CertError::Malformed(e.to_string()))?;
    Ok(spki_sha256(&info.spki))
}

/// Validate the gateway's certificate chain and identity (RFC 7296 §2.15, §3.6; RFC 4945 §3.1, §5).
///
/// `chain` is the end-entity certificate first, then intermediates as received in CERT payloads (order of the
/// intermediates does not matter). `now_unix` is the validation time in unix seconds (sans-IO: the caller
/// reads the clock). `id` is the gateway's IDr: ID_FQDN must match a dNSName subjectAltName (a leftmost `*`
/// label matches one label), ID_IPV4_ADDR/ID_IPV6_ADDR an iPAddress, ID_RFC822_ADDR an rfc822Name
/// (ASCII case-insensitive), ID_DER_ASN1_DN the subject (or a directoryName) byte for byte. The common name
/// is never used. Revocation: against the CRLs of the policy (RFC 5280 §6.3); see [`validate_gateway_online`]
/// for fetched CRLs and OCSP.
pub fn validate_gateway(
    chain: &[&[u8]],
    id: &Identification,
    policy: &GatewayCertPolicy,
    now_unix: u64,
) -> Result<ValidatedPeer, CertError> {
    validate_gateway_online(chain, id, policy, &[], None, now_unix)
}

/// [`validate_gateway`] with the CRLs fetched from the chain's distribution points ([`crl_urls`]) and the
/// OCSP responder's answer about the end-entity certificate ([`ocsp_query`]) as well, judged by the policy's
/// [`Revocation`]. A fetched CRL that does not parse, or an OCSP answer that does not check out, counts as
/// not fetched; an OCSP "revoked" refuses the certificate, an OCSP "good" is its revocation status.
pub fn validate_gateway_online(
    chain: &[&[u8]],
    id: &Identification,
    policy: &GatewayCertPolicy,
    fetched: &[RevocationResponse],
    ocsp: Option<OcspAnswer<'_>>,
    now_unix: u64,
) -> Result<ValidatedPeer, CertError> {
    let (&leaf_der, intermediates) = chain.split_first().ok_or(CertError::NoCertificate)?;
    if policy.anchors.is_empty() {
        return Err(CertError::NoTrustAnchors);
    }
    let info = x509::parse(leaf_der).map_err(|e| CertError::Malformed(format!("end-entity certificate: {e}")))?;
    let leaf = CertificateDer::from(leaf_der);
    let ee = EndEntityCert::try_from(&leaf).map_err(map_webpki)?;
    let intermediates: Vec<CertificateDer<'_>> = intermediates.iter().map(|&c| CertificateDer::from(c)).collect();
    let time = UnixTime::since_unix_epoch(Duration::from_secs(now_unix));

    let ca_pin_failed = std::cell::Cell::new(false);
    let check_ca_pin = |path: &VerifiedPath<'_>| -> Result<(), webpki::Error> {
        let Some(pin) = policy.pinned_ca_spki_sha256 else {
            return Ok(());
        };
        let anchor = webpki::spki_for_anchor(path.anchor());
        let found = spki_sha256(anchor.as_ref()) == pin
            || path.intermediate_certificates().any(|c| spki_sha256(c.subject_public_key_info().as_ref()) == pin);
        if found {
            Ok(())
        } else {
            ca_pin_failed.set(true);
            Err(webpki::Error::UnknownIssuer)
        }
    };
    let mut crls = policy
        .crls
        .iter()
        .map(|der| webpki::OwnedCertRevocationList::from_der(der).map(webpki::CertRevocationList::from))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::BadCrl(e.to_string()))?;
    // The URLs whose CRL could be used, and the CRL's issuer (DER Name contents).
    let mut usable: Vec<(&str, Vec<u8>)> = Vec::new();
    for f in fetched {
        let parsed = f.data.as_deref().and_then(crl_der).map(|d| webpki::OwnedCertRevocationList::from_der(&d));
        match parsed {
            Some(Ok(crl)) => {
                let crl = webpki::CertRevocationList::from(crl);
                usable.push((&f.url, crl.issuer().to_vec()));
                crls.push(crl);
            }
            Some(Err(e)) => tracing::warn!(url = %f.url, %e, "fetched CRL unusable"),
            None => {}
        }
    }
    let strict = policy.revocation == Revocation::Strict;
    let crl_refs: Vec<&webpki::CertRevocationList<'_>> = crls.iter().collect();
    let revocation = match webpki::RevocationOptionsBuilder::new(&crl_refs) {
        Ok(b) => Some(
            b.with_depth(webpki::RevocationCheckDepth::Chain)
                .with_status_policy(if strict {
                    webpki::UnknownStatusPolicy::Deny
                } else {
                    webpki::UnknownStatusPolicy::Allow
                })
                .with_expiration_policy(webpki::ExpirationPolicy::Ignore)
                .build(),
        ),
        // No CRLs configured or fetched.
        Err(_) if strict => return Err(CertError::RevocationUnknown(None)),
        Err(_) => None,
    };
    // OCSP about the end-entity certificate (RFC 6960), once its chain is known to be valid.
    let ocsp_status = match ocsp {
        Some((query, Some(answer))) => match query.check(answer, now_unix) {
            Ok(s) => {
                tracing::info!(url = %query.url, status = ?s, "OCSP answer");
                Some(s)
            }
            Err(e) => {
                tracing::warn!(url = %query.url, %e, "OCSP answer unusable");
                None
            }
        },
        _ => None,
    };
    let ocsp_good = ocsp_status == Some(OcspStatus::Good);
    let verified = ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &policy.anchors.anchors,
        &intermediates,
        time,
        AnyEku,
        revocation,
        Some(&check_ca_pin),
    );
    if let Err(e) = verified {
        if ca_pin_failed.get() && e == webpki::Error::UnknownIssuer {
            return Err(CertError::PinMismatch("CA"));
        }
        return Err(map_webpki(e));
    }
    if ocsp_status == Some(OcspStatus::Revoked) {
        return Err(CertError::Revoked);
    }
    if policy.revocation == Revocation::IfUri {
        // Each certificate that names distribution points needs a CRL of its issuer from one of them; for the
        // end-entity certificate an OCSP "good" also does, and naming an OCSP responder asks for one or the other.
        for (i, cert) in chain.iter().enumerate() {
            let leaf = i == 0;
            if leaf && ocsp_good {
                continue;
            }
            if leaf && crl_urls(&[cert]).is_empty() {
                if let Some((query, _)) = ocsp {
                    return Err(CertError::RevocationUnknown(Some(query.url.clone())));
                }
            }
            let urls = crl_urls(&[cert]);
            let Ok(issuer) = x509::parse(cert).map(|i| i.issuer) else { continue };
            let issuer_contents = der::asn1::AnyRef::try_from(issuer.as_slice()).map_or(&[][..], |a| a.value());
            let found = usable
                .iter()
                .any(|(u, by)| urls.iter().any(|url| url == u) && (by.as_slice() == issuer_contents || *by == issuer));
            if !urls.is_empty() && !found {
                return Err(CertError::RevocationUnknown(urls.into_iter().next()));
            }
        }
    }

    if let Some(pin) = policy.pinned_leaf_spki_sha256 {
        if spki_sha256(&info.spki) != pin {
            return Err(CertError::PinMismatch("gateway certificate"));
        }
    }
    if info.key_usage_signs == Some(false) {
        return Err(CertError::BadKeyUsage);
    }
    check_eku(&info, policy.require_server_auth_eku)?;
    check_identity(id, &info)?;

    Ok(ValidatedPeer {
        names: info.alt_names.iter().map(GeneralName::display).collect(),
        spki: info.spki,
        subject: info.subject,
    })
}

fn check_eku(info: &CertInfo, require_server_auth: bool) -> Result<(), CertError> {
    let shown = |ids: &[ObjectIdentifier]| ids.iter().map(ToString::to_string).collect::<Vec<_>>();
    match (&info.ext_key_usage, require_server_auth) {
        (None, false) => Ok(()),
        (None, true) => Err(CertError::BadExtendedKeyUsage(Vec::new())),
        (Some(ids), true) => {
            if ids.contains(&EKU_SERVER_AUTH) {
                Ok(())
            } else {
                Err(CertError::BadExtendedKeyUsage(shown(ids)))
            }
        }
        (Some(ids), false) => {
            if ids.iter().any(|o| [EKU_SERVER_AUTH, EKU_IPSEC_IKE, EKU_IKE_INTERMEDIATE, EKU_ANY].contains(o)) {
                Ok(())
            } else {
                Err(CertError::BadExtendedKeyUsage(shown(ids)))
            }
        }
    }
}

/// A printable identity for error messages.
fn display_id(id: &Identification) -> String {
    match id.id_type {
        IdType::ID_FQDN | IdType::ID_RFC822_ADDR => String::from_utf8_lossy(&id.data).into_owned(),
        IdType::ID_IPV4_ADDR | IdType::ID_IPV6_ADDR => x509::display_ip(&id.data),
        IdType::ID_DER_ASN1_DN => x509::display_name(&id.data),
        t => format!("{t}:{}", x509::hex(&id.data)),
    }
}

/// Whether the certificate `cert_der` names `id` (RFC 4945 §3.1: the same matching as [`validate_gateway`]);
/// for an expected identity the gateway's IDr need not repeat (strongSwan's loose identity).
pub fn cert_names_identity(cert_der: &[u8], id: &Identification) -> Result<(), CertError> {
    let info = x509::parse(cert_der).map_err(|e| CertError::Malformed(format!("end-entity certificate: {e}")))?;
    check_identity(id, &info)
}

/// RFC 4945 §3.1, §3.2: the ID must be one of the certificate's names.
fn check_identity(id: &Identification, info: &CertInfo) -> Result<(), CertError> {
    let matched = match id.id_type {
        IdType::ID_FQDN => {
            info.alt_names.iter().any(|n| matches!(n, GeneralName::Dns(d) if dns_matches(d.as_bytes(), &id.data)))
        }
        IdType::ID_IPV4_ADDR | IdType::ID_IPV6_ADDR => {
            let want = if id.id_type == IdType::ID_IPV4_ADDR { 4 } else { 16 };
            id.data.len() == want && info.alt_names.iter().any(|n| matches!(n, GeneralName::Ip(a) if *a == id.data))
        }
        IdType::ID_RFC822_ADDR => info
            .alt_names
            .iter()
            .any(|n| matches!(n, GeneralName::Rfc822(e) if e.as_bytes().eq_ignore_ascii_case(&id.data))),
        IdType::ID_DER_ASN1_DN => {
            info.subject == id.data
                || info.alt_names.iter().any(|n| matches!(n, GeneralName::Directory(d) if *d == id.data))
        }
        t => return Err(CertError::UnsupportedIdentity(t.to_string())),
    };
    if matched {
        return Ok(());
    }
    let mut names = vec![format!("subject:{}", x509::display_name(&info.subject))];
    names.extend(info.alt_names.iter().map(GeneralName::display));
    Err(CertError::IdentityMismatch { id: display_id(id), names })
}

/// dNSName match, ASCII case-insensitive, ignoring a trailing dot; `*.example.com` matches exactly one
/// leftmost label (RFC 6125 §6.4.3), and only with at least two labels after it.
fn dns_matches(pattern: &[u8], name: &[u8]) -> bool {
    let trim = |s: &[u8]| -> Vec<u8> { s.strip_suffix(b".").unwrap_or(s).to_ascii_lowercase() };
    let (pattern, name) = (trim(pattern), trim(name));
    if name.is_empty() || name.contains(&b'*') {
        return false;
    }
    if let Some(suffix) = pattern.strip_prefix(b"*.") {
        if !suffix.contains(&b'.') || suffix.contains(&b'*') {
            return false;
        }
        return match name.iter().position(|&b| b == b'.') {
            Some(dot) => dot > 0 && name.get(dot + 1..) == Some(suffix),
            None => false,
        };
    }
    pattern == name
}

/// CERTREQ payload data (RFC 7296 §3.7): the SHA-1 hashes of the SubjectPublicKeyInfo of each trusted CA,
/// concatenated (duplicates once). Send with encoding X509_SIGNATURE (4).
pub fn certreq_hashes(anchors: &TrustAnchors) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(20 * anchors.len());
    for spki in anchors.spkis() {
        let h = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &spki);
        if !out.chunks(20).any(|c| c == h.as_ref()) {
            out.extend_from_slice(h.as_ref());
        }
    }
    out
}

/// Our certificate chain (end entity first, then intermediates to send as CERT payloads) and the key that
/// signs our AUTH payload.
#[derive(Clone)]
pub struct ClientCredentials {
    pub chain: Vec<Vec<u8>>,
    pub signer: Arc<dyn Signer>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let subject = self.chain.first().and_then(|c| x509::parse(c).ok()).map(|i| x509::display_name(&i.subject));
        f.debug_struct("ClientCredentials")
            .field("subject", &subject)
            .field("chain_len", &self.chain.len())
            .field("schemes", &self.signer.schemes())
            .finish()
    }
}

impl ClientCredentials {
    /// Credentials from a chain and a signer, after checking that the end-entity certificate parses and
    /// that the signer's key is the certificate's (one test signature, verified with the certificate).
    pub fn new(chain: Vec<Vec<u8>>, signer: Arc<dyn Signer>) -> Result<Self, CertError> {
        let leaf = chain.first().ok_or_else(|| CertError::Malformed("no certificate".into()))?;
        x509::parse(leaf).map_err(|e| CertError::Malformed(format!("end-entity certificate: {e}")))?;
        let scheme = *signer.schemes().first().ok_or(CertError::Key(CryptoError::Unsupported("no schemes")))?;
        const PROBE: &[u8] = b"ikelink: does this key belong to the certificate?";
        let sig = signer.sign(scheme, PROBE).map_err(CertError::Key)?;
        match verify_signature(leaf, scheme, PROBE, &sig) {
            Ok(()) => Ok(ClientCredentials { chain, signer }),
            Err(CryptoError::AuthenticationFailed) | Err(CryptoError::Unsupported(_)) => Err(CertError::KeyMismatch),
            Err(e) => Err(CertError::Key(e)),
        }
    }

    /// From PEM: `cert_pem` holds the end-entity certificate first, optionally followed by intermediates;
    /// `key_pem` the unencrypted private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, CertError> {
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .map(|c| c.map(|c| c.as_ref().to_vec()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CertError::Malformed(format!("PEM: {e}")))?;
        if chain.is_empty() {
            return Err(CertError::Malformed("no CERTIFICATE in PEM input".into()));
        }
        let signer = KeyPairSigner::from_pem(key_pem).map_err(CertError::Key)?;
        Self::new(chain, Arc::new(signer))
    }

    /// From a PKCS#12 file (`.p12`/`.pfx`, desktop only) holding one private key and its certificate chain.
    /// PBES2 (AES) and the legacy PBES1 (3DES, RC2) encryptions are read (crate `p12-keystore`).
    #[cfg(all(feature = "pkcs12", not(any(target_os = "android", target_os = "ios"))))]
    pub fn from_pkcs12(p12: &[u8], password: &str) -> Result<Self, CertError> {
        use p12_keystore::{KeyStore, Pkcs12ImportPolicy};
        let store = KeyStore::from_pkcs12(p12, password, Pkcs12ImportPolicy::Strict)
            .map_err(|e| CertError::Pkcs12(e.to_string()))?;
        let (_, chain) = store.private_key_chain().ok_or_else(|| CertError::Pkcs12("no private key".into()))?;
        let key = zeroize::Zeroizing::new(chain.key().as_der().to_vec());
        let signer = KeyPairSigner::from_pkcs8_der(&key).map_err(CertError::Key)?;
        let certs: Vec<Vec<u8>> = chain.certs().iter().map(|c| c.as_der().to_vec()).collect();
        Self::new(certs, Arc::new(signer))
    }

    /// The end-entity certificate, DER.
    pub fn leaf(&self) -> &[u8] {
        self.chain.first().map(Vec::as_slice).unwrap_or_default()
    }

    /// ID_DER_ASN1_DN with the end-entity certificate's subject: the IDi strongSwan uses by default.
    pub fn subject_identity(&self) -> Result<Identification, CertError> {
        let info = x509::parse(self.leaf()).map_err(|e| CertError::Malformed(e.to_string()))?;
        Ok(Identification { id_type: IdType::ID_DER_ASN1_DN, data: info.subject })
    }
}
