//! The parts of an X.509 certificate (RFC 5280 §4.1) that IKE identity and policy checks need and that
//! webpki does not expose: subject, SubjectPublicKeyInfo, subjectAltName, extendedKeyUsage, keyUsage, the
//! CRL distribution points and the OCSP responders (authorityInfoAccess). Signatures, validity, path building
//! and name constraints are webpki's job.
//!
//! The DER is read by RustCrypto's `x509-cert` (on `der`), the crates `p12-keystore` already brings into the
//! tree. Names (subject, issuer, directoryName) are kept as their DER: `der` re-encodes what it decoded,
//! which for a certificate in DER is the original octets (a `SET OF` sent unsorted comes back sorted).

use std::net::{Ipv4Addr, Ipv6Addr};

use der::asn1::{AnyRef, ObjectIdentifier};
use der::{Decode, Encode, Tag, Tagged};
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName as X509GeneralName};
use x509_cert::ext::pkix::{
    AuthorityInfoAccessSyntax, CrlDistributionPoints, ExtendedKeyUsage, KeyUsage, SubjectAltName,
};
use x509_cert::name::Name;
use x509_cert::Certificate;

/// id-ad-ocsp (RFC 5280 §4.2.2.1).
const AD_OCSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");

/// Why a certificate could not be read: the `der` error, as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DerError(pub String);

impl std::fmt::Display for DerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<der::Error> for DerError {
    fn from(e: der::Error) -> Self {
        DerError(e.to_string())
    }
}

/// A certificate's fields.
#[derive(Debug, Clone)]
pub(crate) struct CertInfo {
    /// serialNumber, INTEGER contents.
    pub serial: Vec<u8>,
    /// The issuer Name, DER (full TLV).
    pub issuer: Vec<u8>,
    /// The subject Name, DER (what ID_DER_ASN1_DN carries, RFC 7296 §3.5).
    pub subject: Vec<u8>,
    /// SubjectPublicKeyInfo, DER.
    pub spki: Vec<u8>,
    pub alt_names: Vec<GeneralName>,
    /// extendedKeyUsage KeyPurposeIds, `None` when the extension is absent.
    pub ext_key_usage: Option<Vec<ObjectIdentifier>>,
    /// Whether keyUsage allows digitalSignature or nonRepudiation, `None` when the extension is absent.
    pub key_usage_signs: Option<bool>,
    /// The URIs of the cRLDistributionPoints' full names (RFC 5280 §4.2.1.13).
    pub crl_uris: Vec<String>,
    /// The OCSP responder URIs of authorityInfoAccess (RFC 5280 §4.2.2.1).
    pub ocsp_uris: Vec<String>,
}

/// The subjectAltName forms IKE identities map to (RFC 5280 §4.2.1.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GeneralName {
    Rfc822(String),
    Dns(String),
    /// A Name, DER.
    Directory(Vec<u8>),
    Uri(String),
    Ip(Vec<u8>),
    Other,
}

impl GeneralName {
    fn from_x509(n: &X509GeneralName) -> Result<Self, DerError> {
        Ok(match n {
            X509GeneralName::Rfc822Name(s) => GeneralName::Rfc822(s.to_string()),
            X509GeneralName::DnsName(s) => GeneralName::Dns(s.to_string()),
            X509GeneralName::DirectoryName(name) => GeneralName::Directory(name.to_der()?),
            X509GeneralName::UniformResourceIdentifier(s) => GeneralName::Uri(s.to_string()),
            X509GeneralName::IpAddress(ip) => GeneralName::Ip(ip.as_bytes().to_vec()),
            _ => GeneralName::Other,
        })
    }

    /// `DNS:gw.example.com`, `IP:203.0.113.2`, `email:a@b`, `DN:C=CH, CN=x`, `URI:…`.
    pub fn display(&self) -> String {
        match self {
            GeneralName::Dns(v) => format!("DNS:{v}"),
            GeneralName::Rfc822(v) => format!("email:{v}"),
            GeneralName::Uri(v) => format!("URI:{v}"),
            GeneralName::Ip(v) => format!("IP:{}", display_ip(v)),
            GeneralName::Directory(v) => format!("DN:{}", display_name(v)),
            GeneralName::Other => "other".into(),
        }
    }
}

/// Parse a DER certificate.
pub(crate) fn parse(cert: &[u8]) -> Result<CertInfo, DerError> {
    let cert = Certificate::from_der(cert)?;
    let tbs = cert.tbs_certificate();
    let mut info = CertInfo {
        serial: tbs.serial_number().as_bytes().to_vec(),
        issuer: tbs.issuer().to_der()?,
        subject: tbs.subject().to_der()?,
        spki: tbs.subject_public_key_info().to_der()?,
        alt_names: Vec::new(),
        ext_key_usage: None,
        key_usage_signs: None,
        crl_uris: Vec::new(),
        ocsp_uris: Vec::new(),
    };
    for (_, san) in tbs.filter_extensions::<SubjectAltName>().collect::<Result<Vec<_>, _>>()? {
        info.alt_names = san.0.iter().map(GeneralName::from_x509).collect::<Result<_, _>>()?;
    }
    if let Some(eku) = tbs.filter_extensions::<ExtendedKeyUsage>().last() {
        info.ext_key_usage = Some(eku?.1 .0);
    }
    if let Some(ku) = tbs.filter_extensions::<KeyUsage>().last() {
        let ku = ku?.1;
        info.key_usage_signs = Some(ku.digital_signature() || ku.non_repudiation());
    }
    for (_, points) in tbs.filter_extensions::<CrlDistributionPoints>().collect::<Result<Vec<_>, _>>()? {
        // nameRelativeToCRLIssuer names no place to fetch from.
        for point in points.0 {
            if let Some(DistributionPointName::FullName(names)) = point.distribution_point {
                info.crl_uris.extend(names.iter().filter_map(uri));
            }
        }
    }
    for (_, aia) in tbs.filter_extensions::<AuthorityInfoAccessSyntax>().collect::<Result<Vec<_>, _>>()? {
        info.ocsp_uris
            .extend(aia.0.iter().filter(|ad| ad.access_method == AD_OCSP).filter_map(|ad| uri(&ad.access_location)));
    }
    Ok(info)
}

fn uri(n: &X509GeneralName) -> Option<String> {
    match n {
        X509GeneralName::UniformResourceIdentifier(u) => Some(u.to_string()),
        _ => None,
    }
}

/// An IP address in SAN / ID form (4 or 16 octets) as text.
pub(crate) fn display_ip(v: &[u8]) -> String {
    if let Ok(b) = <[u8; 4]>::try_from(v) {
        Ipv4Addr::from(b).to_string()
    } else if let Ok(b) = <[u8; 16]>::try_from(v) {
        Ipv6Addr::from(b).to_string()
    } else {
        hex(v)
    }
}

pub(crate) fn hex(v: &[u8]) -> String {
    v.iter().map(|b| format!("{b:02x}")).collect()
}

/// A DER Name (full TLV) in the strongSwan / RFC 4514-like order of the encoding: `C=CH, O=ikelink, CN=gw`.
/// Unknown attribute types appear as dotted OIDs, non-string values as `#hex`. Malformed input as hex.
/// (`x509-cert`'s own `Display` is RFC 4514: reversed, without spaces.)
pub(crate) fn display_name(name: &[u8]) -> String {
    fn key(oid: &ObjectIdentifier) -> String {
        let known = [
            ("2.5.4.3", "CN"),
            ("2.5.4.6", "C"),
            ("2.5.4.7", "L"),
            ("2.5.4.8", "ST"),
            ("2.5.4.10", "O"),
            ("2.5.4.11", "OU"),
            ("2.5.4.5", "serialNumber"),
            ("1.2.840.113549.1.9.1", "E"),
            ("0.9.2342.19200300.100.1.25", "DC"),
        ];
        let dotted = oid.to_string();
        known.iter().find(|(o, _)| *o == dotted).map_or(dotted, |(_, k)| (*k).to_string())
    }
    fn value(v: &AnyRef<'_>) -> String {
        // UTF8String, PrintableString, T61String, IA5String; BMPString is rare and shown as hex.
        match v.tag() {
            Tag::Utf8String | Tag::PrintableString | Tag::TeletexString | Tag::Ia5String => {
                String::from_utf8_lossy(v.value()).into_owned()
            }
            _ => format!("#{}", v.to_der().map(|d| hex(&d)).unwrap_or_default()),
        }
    }
    let Ok(parsed) = Name::from_der(name) else { return hex(name) };
    let parts: Vec<String> =
        parsed.iter().map(|atv| format!("{}={}", key(&atv.oid), value(&AnyRef::from(&atv.value)))).collect();
    parts.join(", ")
}
