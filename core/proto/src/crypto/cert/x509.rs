//! The parts of an X.509 certificate (RFC 5280 §4.1) that IKE identity and policy checks need and that
//! webpki does not expose: subject, SubjectPublicKeyInfo, subjectAltName, extendedKeyUsage, keyUsage and the
//! CRL distribution points, the OCSP responders (authorityInfoAccess) and what OCSP needs to check a
//! delegated responder's certificate.
//! Signatures, validity and path building are webpki's job.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::der::{self, tag, DerError, Reader};

const OID_SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
const OID_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x0f];
const OID_EXT_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];
const OID_CRL_DISTRIBUTION_POINTS: &[u8] = &[0x55, 0x1d, 0x1f];
/// id-pe-authorityInfoAccess (RFC 5280 §4.2.2.1) and its id-ad-ocsp access method.
const OID_AUTHORITY_INFO_ACCESS: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x01];
const OID_AD_OCSP: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01];
/// UTCTime and GeneralizedTime tags (X.680 §46, §47).
pub(crate) const TAG_UTC_TIME: u8 = 0x17;
pub(crate) const TAG_GENERALIZED_TIME: u8 = 0x18;

/// keyUsage bits (RFC 5280 §4.2.1.3), as the first two octets of the BIT STRING, big-endian.
pub(crate) const KU_DIGITAL_SIGNATURE: u16 = 0x8000;
pub(crate) const KU_NON_REPUDIATION: u16 = 0x4000;

/// A certificate's fields, borrowed from its DER.
#[derive(Debug, Clone)]
pub(crate) struct CertInfo<'a> {
    /// tbsCertificate, full TLV (what the signature covers).
    pub tbs: &'a [u8],
    /// signatureAlgorithm, full TLV, and the signature (BIT STRING contents without the unused-bits octet).
    pub sig_alg: &'a [u8],
    pub signature: &'a [u8],
    /// serialNumber, INTEGER contents.
    pub serial: &'a [u8],
    /// Validity, unix seconds.
    pub not_before: u64,
    pub not_after: u64,
    /// The issuer Name, full TLV.
    pub issuer: &'a [u8],
    /// The subject Name, full TLV (what ID_DER_ASN1_DN carries, RFC 7296 §3.5).
    pub subject: &'a [u8],
    /// SubjectPublicKeyInfo, full TLV.
    pub spki: &'a [u8],
    pub alt_names: Vec<GeneralName<'a>>,
    /// extendedKeyUsage KeyPurposeIds (OID contents), `None` when the extension is absent.
    pub ext_key_usage: Option<Vec<&'a [u8]>>,
    /// keyUsage bits, `None` when the extension is absent.
    pub key_usage: Option<u16>,
    /// The URIs of the cRLDistributionPoints' full names (RFC 5280 §4.2.1.13).
    pub crl_uris: Vec<&'a [u8]>,
    /// The OCSP responder URIs of authorityInfoAccess (RFC 5280 §4.2.2.1).
    pub ocsp_uris: Vec<&'a [u8]>,
}

/// The subjectAltName forms IKE identities map to (RFC 5280 §4.2.1.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GeneralName<'a> {
    Rfc822(&'a [u8]),
    Dns(&'a [u8]),
    /// A Name, full TLV.
    Directory(&'a [u8]),
    Uri(&'a [u8]),
    Ip(&'a [u8]),
    Other,
}

impl GeneralName<'_> {
    /// `DNS:gw.example.com`, `IP:203.0.113.2`, `email:a@b`, `DN:C=CH, CN=x`, `URI:…`.
    pub fn display(&self) -> String {
        match self {
            GeneralName::Dns(v) => format!("DNS:{}", String::from_utf8_lossy(v)),
            GeneralName::Rfc822(v) => format!("email:{}", String::from_utf8_lossy(v)),
            GeneralName::Uri(v) => format!("URI:{}", String::from_utf8_lossy(v)),
            GeneralName::Ip(v) => format!("IP:{}", display_ip(v)),
            GeneralName::Directory(v) => format!("DN:{}", display_name(v)),
            GeneralName::Other => "other".into(),
        }
    }
}

/// Parse a DER certificate.
pub(crate) fn parse(cert: &[u8]) -> Result<CertInfo<'_>, DerError> {
    let mut outer = Reader::new(der::single(cert, tag::SEQUENCE)?);
    let tbs = outer.expect_tlv(tag::SEQUENCE)?;
    let sig_alg = outer.expect_tlv(tag::SEQUENCE)?.raw;
    let signature = der::bit_string_bytes(outer.expect(tag::BIT_STRING)?)?;
    outer.finish()?;
    let mut r = Reader::new(tbs.value);
    let _version = r.optional(tag::context_cons(0))?;
    let serial = r.expect(tag::INTEGER)?;
    r.expect(tag::SEQUENCE)?; // signature
    let issuer = r.expect_tlv(tag::SEQUENCE)?.raw;
    let mut validity = Reader::new(r.expect(tag::SEQUENCE)?);
    let not_before = read_time(&mut validity)?;
    let not_after = read_time(&mut validity)?;
    validity.finish()?;
    let subject = r.expect_tlv(tag::SEQUENCE)?.raw;
    let spki = r.expect_tlv(tag::SEQUENCE)?.raw;
    let _issuer_uid = r.optional(tag::context_prim(1))?;
    let _subject_uid = r.optional(tag::context_prim(2))?;
    let mut info = CertInfo {
        tbs: tbs.raw,
        sig_alg,
        signature,
        serial,
        not_before,
        not_after,
        issuer,
        subject,
        spki,
        alt_names: Vec::new(),
        ext_key_usage: None,
        key_usage: None,
        crl_uris: Vec::new(),
        ocsp_uris: Vec::new(),
    };
    if let Some(exts) = r.optional(tag::context_cons(3))? {
        for (oid, value) in extensions(exts.value)? {
            match oid {
                OID_SUBJECT_ALT_NAME => info.alt_names = parse_general_names(value)?,
                OID_EXT_KEY_USAGE => {
                    let mut r = Reader::new(der::single(value, tag::SEQUENCE)?);
                    let mut ids = Vec::new();
                    while !r.is_empty() {
                        ids.push(r.expect(tag::OID)?);
                    }
                    info.ext_key_usage = Some(ids);
                }
                OID_CRL_DISTRIBUTION_POINTS => info.crl_uris = parse_crl_distribution_points(value)?,
                OID_AUTHORITY_INFO_ACCESS => info.ocsp_uris = parse_ocsp_access(value)?,
                OID_KEY_USAGE => {
                    let bits = der::single(value, tag::BIT_STRING)?;
                    let (_unused, bytes) = bits.split_first().ok_or(DerError("empty keyUsage"))?;
                    let hi = bytes.first().copied().unwrap_or(0);
                    let lo = bytes.get(1).copied().unwrap_or(0);
                    info.key_usage = Some(u16::from_be_bytes([hi, lo]));
                }
                _ => {}
            }
        }
    }
    r.finish()?;
    Ok(info)
}

/// RFC 5280 §4.2.1.13: CRLDistributionPoints ::= SEQUENCE OF DistributionPoint; of each, the URIs of the
/// `fullName` of its `distributionPoint` (implicit tags: `[0]` constructed around a `[0]` GeneralNames).
fn parse_crl_distribution_points(value: &[u8]) -> Result<Vec<&[u8]>, DerError> {
    let mut points = Reader::new(der::single(value, tag::SEQUENCE)?);
    let mut uris = Vec::new();
    while !points.is_empty() {
        let mut point = Reader::new(points.expect(tag::SEQUENCE)?);
        let Some(name) = point.optional(tag::context_cons(0))? else { continue };
        let mut name = Reader::new(name.value);
        // nameRelativeToCRLIssuer ([1]) names no place to fetch from.
        if let Some(full) = name.optional(tag::context_cons(0))? {
            for n in general_name_list(full.value)? {
                if let GeneralName::Uri(u) = n {
                    uris.push(u);
                }
            }
        }
    }
    Ok(uris)
}

/// One extension: extnID and the contents of extnValue.
pub(crate) type Extension<'a> = (&'a [u8], &'a [u8]);

/// The (extnID, extnValue contents) of an Extensions SEQUENCE (RFC 5280 §4.1; RFC 6960 uses the same).
pub(crate) fn extensions(seq: &[u8]) -> Result<Vec<Extension<'_>>, DerError> {
    let mut exts = Reader::new(der::single(seq, tag::SEQUENCE)?);
    let mut out = Vec::new();
    while !exts.is_empty() {
        let mut ext = Reader::new(exts.expect(tag::SEQUENCE)?);
        let oid = ext.expect(tag::OID)?;
        let _critical = ext.optional(tag::BOOLEAN)?;
        let value = ext.expect(tag::OCTET_STRING)?;
        ext.finish()?;
        out.push((oid, value));
    }
    Ok(out)
}

/// AuthorityInfoAccessSyntax ::= SEQUENCE OF AccessDescription { accessMethod, accessLocation GeneralName }:
/// the URIs of the id-ad-ocsp entries.
fn parse_ocsp_access(value: &[u8]) -> Result<Vec<&[u8]>, DerError> {
    let mut r = Reader::new(der::single(value, tag::SEQUENCE)?);
    let mut uris = Vec::new();
    while !r.is_empty() {
        let mut ad = Reader::new(r.expect(tag::SEQUENCE)?);
        let method = ad.expect(tag::OID)?;
        let location = ad.read()?;
        if method == OID_AD_OCSP && location.tag == tag::context_prim(6) {
            uris.push(location.value);
        }
    }
    Ok(uris)
}

/// The next Time (UTCTime or GeneralizedTime) of `r`, as unix seconds.
pub(crate) fn read_time(r: &mut Reader<'_>) -> Result<u64, DerError> {
    let t = r.read()?;
    parse_time(t.tag, t.value)
}

/// UTCTime `YYMMDDHHMMSSZ` (years 1950-2049, RFC 5280 §4.1.2.5.1) or GeneralizedTime `YYYYMMDDHHMMSS[.f]Z`
/// (RFC 5280 §4.1.2.5.2; RFC 6960 allows fractions) as unix seconds.
pub(crate) fn parse_time(tag: u8, v: &[u8]) -> Result<u64, DerError> {
    let bad = DerError("bad time");
    let digits = |s: &[u8]| -> Result<u64, DerError> {
        if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
            return Err(bad);
        }
        Ok(s.iter().fold(0u64, |a, d| a * 10 + u64::from(d - b'0')))
    };
    let body = v.strip_suffix(b"Z").ok_or(bad)?;
    let (year, rest) = match tag {
        TAG_UTC_TIME => {
            let yy = digits(body.get(..2).ok_or(bad)?)?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, body.get(2..).ok_or(bad)?)
        }
        TAG_GENERALIZED_TIME => (digits(body.get(..4).ok_or(bad)?)?, body.get(4..).ok_or(bad)?),
        _ => return Err(DerError("not a time")),
    };
    // Fractional seconds (GeneralizedTime only) are dropped.
    let rest = match (tag, rest.iter().position(|&b| b == b'.')) {
        (TAG_GENERALIZED_TIME, Some(dot)) => rest.get(..dot).ok_or(bad)?,
        _ => rest,
    };
    if rest.len() != 10 {
        return Err(bad);
    }
    let field = |i: usize| digits(rest.get(i..i + 2).unwrap_or_default());
    let (month, day, hour, min, sec) = (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return Err(bad);
    }
    if year < 1970 {
        return Ok(0);
    }
    // Days from the civil date (H. Hinnant's algorithm), March-based years.
    let (y, m) = if month <= 2 { (year - 1, month + 9) } else { (year, month - 3) };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(days * 86_400 + hour * 3600 + min * 60 + sec)
}

fn parse_general_names(value: &[u8]) -> Result<Vec<GeneralName<'_>>, DerError> {
    general_name_list(der::single(value, tag::SEQUENCE)?)
}

/// The GeneralName elements of a GeneralNames' contents.
fn general_name_list(content: &[u8]) -> Result<Vec<GeneralName<'_>>, DerError> {
    let mut r = Reader::new(content);
    let mut names = Vec::new();
    while !r.is_empty() {
        let t = r.read()?;
        names.push(match t.tag {
            t_ if t_ == tag::context_prim(1) => GeneralName::Rfc822(t.value),
            t_ if t_ == tag::context_prim(2) => GeneralName::Dns(t.value),
            t_ if t_ == tag::context_cons(4) => {
                let mut n = Reader::new(t.value);
                let name = n.expect_tlv(tag::SEQUENCE)?.raw;
                n.finish()?;
                GeneralName::Directory(name)
            }
            t_ if t_ == tag::context_prim(6) => GeneralName::Uri(t.value),
            t_ if t_ == tag::context_prim(7) => GeneralName::Ip(t.value),
            _ => GeneralName::Other,
        });
    }
    Ok(names)
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
pub(crate) fn display_name(name: &[u8]) -> String {
    fn inner(name: &[u8]) -> Result<String, DerError> {
        let mut parts = Vec::new();
        let mut rdns = Reader::new(der::single(name, tag::SEQUENCE)?);
        while !rdns.is_empty() {
            let mut set = Reader::new(rdns.expect(tag::SET)?);
            while !set.is_empty() {
                let mut atv = Reader::new(set.expect(tag::SEQUENCE)?);
                let oid = atv.expect(tag::OID)?;
                let value = atv.read()?;
                let key = match oid {
                    [0x55, 0x04, 0x03] => "CN".to_string(),
                    [0x55, 0x04, 0x06] => "C".to_string(),
                    [0x55, 0x04, 0x07] => "L".to_string(),
                    [0x55, 0x04, 0x08] => "ST".to_string(),
                    [0x55, 0x04, 0x0a] => "O".to_string(),
                    [0x55, 0x04, 0x0b] => "OU".to_string(),
                    [0x55, 0x04, 0x05] => "serialNumber".to_string(),
                    [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => "E".to_string(),
                    [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => "DC".to_string(),
                    _ => der::oid_to_string(oid),
                };
                // UTF8String, PrintableString, T61String, IA5String, BMPString is rare and shown as hex.
                let text = match value.tag {
                    0x0c | 0x13 | 0x14 | 0x16 => String::from_utf8_lossy(value.value).into_owned(),
                    _ => format!("#{}", hex(value.raw)),
                };
                parts.push(format!("{key}={text}"));
            }
        }
        Ok(parts.join(", "))
    }
    inner(name).unwrap_or_else(|_| hex(name))
}
