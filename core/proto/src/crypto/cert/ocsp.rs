//! OCSP (RFC 6960) for the gateway's end-entity certificate: the request we send to the responder its
//! authorityInfoAccess names, and the check of the answer (signed by the issuing CA or by a responder it
//! delegated to, §4.2.2.2; about our certificate; fresh; our nonce echoed if the responder echoes one).
//!
//! rustls-webpki does not do OCSP and the RustCrypto `x509-ocsp` release is built on an older `der` than the
//! rest of our tree, so the few structures are read and written with [`super::der`], like the certificate
//! fields of [`super::x509`].

use aws_lc_rs::digest;

use super::der::{self, tag, DerError, Reader};
use super::x509::{self, CertInfo};
use super::TrustAnchors;
use crate::crypto::sig::{verify_signature, SigScheme};

/// id-sha1 with absent parameters (RFC 6960 §4.1.1's CertID hash; what responders expect), and NULL ones.
const AI_SHA1: &[u8] = &[0x30, 0x07, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a];
const AI_SHA1_NULL: &[u8] = &[0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00];
/// id-pkix-ocsp-basic (§4.2.1) and id-pkix-ocsp-nonce (§4.4.1).
const OID_OCSP_BASIC: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x01];
const OID_OCSP_NONCE: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x02];
/// id-kp-OCSPSigning (§4.2.2.2).
const EKU_OCSP_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x09];
/// ENUMERATED.
const TAG_ENUMERATED: u8 = 0x0a;
/// Clock skew allowed on thisUpdate / nextUpdate.
const SKEW: u64 = 300;
/// How long an answer without nextUpdate counts as fresh.
const NO_NEXT_UPDATE_FRESH: u64 = 3600;

/// An OCSP request for one certificate, and what checking the answer needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcspQuery {
    /// The responder (`http://`, from the certificate's authorityInfoAccess).
    pub url: String,
    /// DER OCSPRequest, to POST as `application/ocsp-request` (§A.1).
    pub request: Vec<u8>,
    /// Our CertID's hashes and serial, to find the answer about our certificate.
    name_hash: Vec<u8>,
    key_hash: Vec<u8>,
    serial: Vec<u8>,
    /// The issuing CA's DER SubjectPublicKeyInfo and subject Name (full TLVs).
    issuer_spki: Vec<u8>,
    issuer_name: Vec<u8>,
    nonce: Vec<u8>,
}

/// What the responder said about the certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OcspStatus {
    Good,
    Revoked,
    Unknown,
}

/// Why an answer cannot be used (then it counts as no answer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OcspError {
    #[error("malformed OCSP response: {0}")]
    Malformed(&'static str),
    /// responseStatus other than successful(0) (§4.2.1: 1 malformedRequest ... 6 unauthorized).
    #[error("OCSP responder answered with status {0}")]
    Status(u8),
    #[error("OCSP response not signed by the CA or a responder it authorized")]
    BadSignature,
    #[error("OCSP response has no answer about the gateway's certificate")]
    NotAnswered,
    #[error("OCSP response is not current")]
    Stale,
    #[error("OCSP response echoes another nonce")]
    NonceMismatch,
}

impl From<DerError> for OcspError {
    fn from(e: DerError) -> Self {
        OcspError::Malformed(e.0)
    }
}

fn sha1(data: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, data).as_ref().to_vec()
}

/// The subjectPublicKey bits of a DER SubjectPublicKeyInfo (what the CertID's issuerKeyHash hashes, §4.1.1).
fn public_key_bits(spki: &[u8]) -> Result<&[u8], DerError> {
    let mut r = Reader::new(der::single(spki, tag::SEQUENCE)?);
    r.expect(tag::SEQUENCE)?;
    let bits = der::bit_string_bytes(r.expect(tag::BIT_STRING)?)?;
    r.finish()?;
    Ok(bits)
}

/// The OCSP query for the end-entity certificate of `chain`, if it names an `http://` OCSP responder and its
/// issuer is among the intermediates sent or the trust anchors. `nonce` (16 random octets) goes into the
/// request's nonce extension (§4.4.1).
pub fn ocsp_query(chain: &[&[u8]], anchors: &TrustAnchors, nonce: [u8; 16]) -> Option<OcspQuery> {
    let (leaf, intermediates) = chain.split_first()?;
    let info = x509::parse(leaf).ok()?;
    let url = info.ocsp_uris.iter().find_map(|u| super::http_url(u))?;
    let (issuer_name, issuer_spki) = intermediates
        .iter()
        .filter_map(|c| x509::parse(c).ok())
        .find(|c| c.subject == info.issuer)
        .map(|c| (c.subject.to_vec(), c.spki.to_vec()))
        .or_else(|| {
            anchors.anchors.iter().find_map(|a| {
                let name = der::tlv(tag::SEQUENCE, a.subject.as_ref());
                (name == info.issuer).then(|| (name, der::tlv(tag::SEQUENCE, a.subject_public_key_info.as_ref())))
            })
        })?;
    let name_hash = sha1(&issuer_name);
    let key_hash = sha1(public_key_bits(&issuer_spki).ok()?);
    let serial = info.serial.to_vec();
    let mut cert_id = AI_SHA1.to_vec();
    der::write_tlv(&mut cert_id, tag::OCTET_STRING, &name_hash);
    der::write_tlv(&mut cert_id, tag::OCTET_STRING, &key_hash);
    der::write_tlv(&mut cert_id, tag::INTEGER, &serial);
    // OCSPRequest { TBSRequest { requestList { Request { CertID } }, requestExtensions [2] { nonce } } }
    let request_list = der::tlv(tag::SEQUENCE, &der::tlv(tag::SEQUENCE, &der::tlv(tag::SEQUENCE, &cert_id)));
    let mut nonce_ext = der::tlv(tag::OID, OID_OCSP_NONCE);
    der::write_tlv(&mut nonce_ext, tag::OCTET_STRING, &der::tlv(tag::OCTET_STRING, &nonce));
    let extensions = der::tlv(tag::context_cons(2), &der::tlv(tag::SEQUENCE, &der::tlv(tag::SEQUENCE, &nonce_ext)));
    let tbs = der::tlv(tag::SEQUENCE, &[request_list, extensions].concat());
    let request = der::tlv(tag::SEQUENCE, &tbs);
    Some(OcspQuery { url, request, name_hash, key_hash, serial, issuer_spki, issuer_name, nonce: nonce.to_vec() })
}

/// A signature over `data` by `spki` with the algorithm of the DER AlgorithmIdentifier `alg`.
fn signed_by(spki: &[u8], alg: &[u8], data: &[u8], sig: &[u8]) -> bool {
    SigScheme::from_algorithm_identifier(alg).is_some_and(|s| verify_signature(spki, s, data, sig).is_ok())
}

/// A delegated responder's certificate (§4.2.2.2): issued and signed by our CA, for OCSP signing, valid now.
fn delegated(query: &OcspQuery, cert: &CertInfo<'_>, now: u64) -> bool {
    cert.issuer == query.issuer_name.as_slice()
        && signed_by(&query.issuer_spki, cert.sig_alg, cert.tbs, cert.signature)
        && cert.ext_key_usage.as_ref().is_some_and(|ids| ids.contains(&EKU_OCSP_SIGNING))
        && cert.not_before <= now + SKEW
        && now <= cert.not_after + SKEW
}

impl OcspQuery {
    /// Check the DER OCSPResponse `response` at `now` (unix seconds) and say what it says about our
    /// certificate.
    pub fn check(&self, response: &[u8], now: u64) -> Result<OcspStatus, OcspError> {
        // OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED, responseBytes [0] EXPLICIT ResponseBytes OPTIONAL }
        let mut r = Reader::new(der::single(response, tag::SEQUENCE)?);
        let status = r.expect(TAG_ENUMERATED)?;
        if status != [0] {
            return Err(OcspError::Status(status.first().copied().unwrap_or(0xff)));
        }
        let bytes = r.expect(tag::context_cons(0))?;
        let mut rb = Reader::new(der::single(bytes, tag::SEQUENCE)?);
        if rb.expect(tag::OID)? != OID_OCSP_BASIC {
            return Err(OcspError::Malformed("not a basic OCSP response"));
        }
        let basic = rb.expect(tag::OCTET_STRING)?;
        // BasicOCSPResponse ::= SEQUENCE { tbsResponseData, signatureAlgorithm, signature, certs [0] OPTIONAL }
        let mut b = Reader::new(der::single(basic, tag::SEQUENCE)?);
        let tbs = b.expect_tlv(tag::SEQUENCE)?;
        let sig_alg = b.expect_tlv(tag::SEQUENCE)?.raw;
        let signature = der::bit_string_bytes(b.expect(tag::BIT_STRING)?)?;
        let certs = b.optional(tag::context_cons(0))?;
        let by_ca = signed_by(&self.issuer_spki, sig_alg, tbs.raw, signature);
        let by_delegate = || -> Result<bool, OcspError> {
            let Some(certs) = certs else { return Ok(false) };
            let mut list = Reader::new(der::single(certs.value, tag::SEQUENCE)?);
            while !list.is_empty() {
                let der = list.expect_tlv(tag::SEQUENCE)?.raw;
                let Ok(cert) = x509::parse(der) else { continue };
                if delegated(self, &cert, now) && signed_by(cert.spki, sig_alg, tbs.raw, signature) {
                    return Ok(true);
                }
            }
            Ok(false)
        };
        if !by_ca && !by_delegate()? {
            return Err(OcspError::BadSignature);
        }

        // ResponseData ::= SEQUENCE { version [0] OPTIONAL, responderID, producedAt, responses, extensions [1] }
        let mut d = Reader::new(tbs.value);
        let _version = d.optional(tag::context_cons(0))?;
        let _responder = d.read()?;
        let _produced_at = d.read()?;
        let mut responses = Reader::new(d.expect(tag::SEQUENCE)?);
        if let Some(exts) = d.optional(tag::context_cons(1))? {
            for (oid, value) in x509::extensions(exts.value)? {
                // The nonce's value is an OCTET STRING inside the extension's (RFC 8954 §2.1); some
                // responders put the bare octets there.
                let echoed = der::single(value, tag::OCTET_STRING).unwrap_or(value);
                if oid == OID_OCSP_NONCE && echoed != self.nonce.as_slice() {
                    return Err(OcspError::NonceMismatch);
                }
            }
        }
        while !responses.is_empty() {
            // SingleResponse ::= SEQUENCE { certID, certStatus, thisUpdate, nextUpdate [0] OPTIONAL, ... }
            let mut single = Reader::new(responses.expect(tag::SEQUENCE)?);
            let mut id = Reader::new(single.expect(tag::SEQUENCE)?);
            let alg = id.expect_tlv(tag::SEQUENCE)?.raw;
            let name_hash = id.expect(tag::OCTET_STRING)?;
            let key_hash = id.expect(tag::OCTET_STRING)?;
            let serial = id.expect(tag::INTEGER)?;
            let ours = (alg == AI_SHA1 || alg == AI_SHA1_NULL)
                && name_hash == self.name_hash.as_slice()
                && key_hash == self.key_hash.as_slice()
                && serial == self.serial.as_slice();
            let cert_status = single.read()?;
            let this_update = x509::read_time(&mut single)?;
            let next_update = match single.optional(tag::context_cons(0))? {
                Some(t) => Some(x509::read_time(&mut Reader::new(t.value))?),
                None => None,
            };
            if !ours {
                continue;
            }
            let fresh_until = next_update.unwrap_or(this_update + NO_NEXT_UPDATE_FRESH);
            if this_update > now + SKEW || now > fresh_until + SKEW {
                return Err(OcspError::Stale);
            }
            return Ok(match cert_status.tag {
                t if t == tag::context_prim(0) => OcspStatus::Good,
                t if t == tag::context_cons(1) => OcspStatus::Revoked,
                _ => OcspStatus::Unknown,
            });
        }
        Err(OcspError::NotAnswered)
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{
        BasicConstraints, CertificateParams, CustomExtension, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
        SerialNumber,
    };

    use super::*;
    use crate::crypto::{KeyPairSigner, Signer};

    const URL: &str = "http://203.0.113.2:8081/";
    const THIS: &[u8] = b"20270501000000Z";
    const NEXT: &[u8] = b"20270508000000Z";

    fn now() -> u64 {
        x509::parse_time(x509::TAG_GENERALIZED_TIME, b"20270502000000Z").unwrap()
    }

    struct Ca {
        issuer: Issuer<'static, KeyPair>,
        signer: KeyPairSigner,
        anchors: TrustAnchors,
    }

    fn new_ca() -> Ca {
        named_ca("ikelink test CA")
    }

    fn named_ca(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let signer = KeyPairSigner::from_pkcs8_der(&key.serialize_der()).unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let der = p.self_signed(&key).unwrap().der().to_vec();
        Ca { issuer: Issuer::new(p, key), signer, anchors: TrustAnchors::from_der([der.as_slice()]).unwrap() }
    }

    /// authorityInfoAccess naming `url` as the OCSP responder.
    fn aia(url: &str) -> CustomExtension {
        let mut ad = der::tlv(tag::OID, &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01]);
        der::write_tlv(&mut ad, tag::context_prim(6), url.as_bytes());
        let content = der::tlv(tag::SEQUENCE, &der::tlv(tag::SEQUENCE, &ad));
        CustomExtension::from_oid_content(&[1, 3, 6, 1, 5, 5, 7, 1, 1], content)
    }

    fn leaf(ca: &Ca, serial: u64) -> Vec<u8> {
        let mut p = CertificateParams::new(vec!["gw.example.net".to_string()]).unwrap();
        p.serial_number = Some(SerialNumber::from(serial));
        p.custom_extensions = vec![aia(URL)];
        p.signed_by(&KeyPair::generate().unwrap(), &ca.issuer).unwrap().der().to_vec()
    }

    /// A delegated responder certificate of `ca` (with id-kp-OCSPSigning if `eku`) and its signer.
    fn responder(ca: &Ca, eku: bool) -> (Vec<u8>, KeyPairSigner) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["ocsp.example.net".to_string()]).unwrap();
        if eku {
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::OcspSigning];
        }
        let der = p.signed_by(&key, &ca.issuer).unwrap().der().to_vec();
        (der, KeyPairSigner::from_pkcs8_der(&key.serialize_der()).unwrap())
    }

    struct Answer<'a> {
        status: Vec<u8>,
        serial: u64,
        next: Option<&'a [u8]>,
        nonce: Option<Vec<u8>>,
        certs: Vec<Vec<u8>>,
    }

    fn good(q: &OcspQuery) -> Answer<'static> {
        Answer { status: vec![0x80, 0x00], serial: 0, next: Some(NEXT), nonce: Some(q.nonce.clone()), certs: vec![] }
    }

    /// A successful basic OCSPResponse about `q`'s issuer and `serial` (0: `q`'s), signed by `signer`.
    fn respond(q: &OcspQuery, a: &Answer<'_>, signer: &dyn Signer) -> Vec<u8> {
        let serial = if a.serial == 0 { q.serial.clone() } else { SerialNumber::from(a.serial).to_bytes() };
        let mut cert_id = AI_SHA1.to_vec();
        der::write_tlv(&mut cert_id, tag::OCTET_STRING, &q.name_hash);
        der::write_tlv(&mut cert_id, tag::OCTET_STRING, &q.key_hash);
        der::write_tlv(&mut cert_id, tag::INTEGER, &serial);
        let mut single = der::tlv(tag::SEQUENCE, &cert_id);
        single.extend_from_slice(&a.status);
        der::write_tlv(&mut single, x509::TAG_GENERALIZED_TIME, THIS);
        if let Some(n) = a.next {
            der::write_tlv(&mut single, tag::context_cons(0), &der::tlv(x509::TAG_GENERALIZED_TIME, n));
        }
        let mut data = der::tlv(tag::context_cons(2), &der::tlv(tag::OCTET_STRING, &[7; 20])); // byKey
        der::write_tlv(&mut data, x509::TAG_GENERALIZED_TIME, THIS);
        der::write_tlv(&mut data, tag::SEQUENCE, &der::tlv(tag::SEQUENCE, &single));
        if let Some(n) = &a.nonce {
            let mut ext = der::tlv(tag::OID, OID_OCSP_NONCE);
            der::write_tlv(&mut ext, tag::OCTET_STRING, &der::tlv(tag::OCTET_STRING, n));
            der::write_tlv(&mut data, tag::context_cons(1), &der::tlv(tag::SEQUENCE, &der::tlv(tag::SEQUENCE, &ext)));
        }
        let tbs = der::tlv(tag::SEQUENCE, &data);
        let scheme = SigScheme::EcdsaP256Sha256;
        let sig = signer.sign(scheme, &tbs).unwrap();
        let mut basic = tbs.clone();
        basic.extend_from_slice(scheme.algorithm_identifier().get(1..).unwrap());
        der::write_tlv(&mut basic, tag::BIT_STRING, &[&[0u8][..], &sig].concat());
        if !a.certs.is_empty() {
            der::write_tlv(&mut basic, tag::context_cons(0), &der::tlv(tag::SEQUENCE, &a.certs.concat()));
        }
        let mut bytes = der::tlv(tag::OID, OID_OCSP_BASIC);
        der::write_tlv(&mut bytes, tag::OCTET_STRING, &der::tlv(tag::SEQUENCE, &basic));
        let mut resp = der::tlv(TAG_ENUMERATED, &[0]);
        der::write_tlv(&mut resp, tag::context_cons(0), &der::tlv(tag::SEQUENCE, &bytes));
        der::tlv(tag::SEQUENCE, &resp)
    }

    #[test]
    fn request_names_the_certificate_and_its_issuer() {
        let ca = new_ca();
        let leaf = leaf(&ca, 42);
        let q = ocsp_query(&[&leaf], &ca.anchors, [9; 16]).expect("an OCSP query");
        assert_eq!(q.url, URL);
        assert_eq!(q.serial, vec![42]);
        assert_eq!(q.name_hash.len(), 20);
        // OCSPRequest { TBSRequest { requestList, [2] extensions } } with our nonce inside.
        let tbs = der::single(&q.request, tag::SEQUENCE).unwrap();
        let mut r = Reader::new(der::single(tbs, tag::SEQUENCE).unwrap());
        r.expect(tag::SEQUENCE).unwrap();
        r.expect(tag::context_cons(2)).unwrap();
        r.finish().unwrap();
        assert!(q.request.windows(16).any(|w| w == [9; 16]));
        // No responder named, or the issuer unknown: no query.
        let other = named_ca("another CA");
        assert!(ocsp_query(&[&leaf], &other.anchors, [0; 16]).is_none());
        let mut p = CertificateParams::new(vec!["x.example.net".to_string()]).unwrap();
        p.serial_number = Some(SerialNumber::from(5u64));
        let plain = p.signed_by(&KeyPair::generate().unwrap(), &ca.issuer).unwrap().der().to_vec();
        assert!(ocsp_query(&[&plain], &ca.anchors, [0; 16]).is_none());
    }

    #[test]
    fn answers_are_checked() {
        let ca = new_ca();
        let leaf = leaf(&ca, 42);
        let q = ocsp_query(&[&leaf], &ca.anchors, [9; 16]).unwrap();
        let check = |a: &Answer<'_>, signer: &dyn Signer| q.check(&respond(&q, a, signer), now());

        assert_eq!(check(&good(&q), &ca.signer), Ok(OcspStatus::Good));
        let revoked = der::tlv(tag::context_cons(1), &der::tlv(x509::TAG_GENERALIZED_TIME, THIS));
        assert_eq!(check(&Answer { status: revoked, ..good(&q) }, &ca.signer), Ok(OcspStatus::Revoked));
        assert_eq!(check(&Answer { status: vec![0x82, 0x00], ..good(&q) }, &ca.signer), Ok(OcspStatus::Unknown));
        // Without a nonce (responders that pre-sign) it still counts; another nonce does not.
        assert_eq!(check(&Answer { nonce: None, ..good(&q) }, &ca.signer), Ok(OcspStatus::Good));
        assert_eq!(check(&Answer { nonce: Some(vec![1; 16]), ..good(&q) }, &ca.signer), Err(OcspError::NonceMismatch));
        // About another certificate; stale; signed by someone else.
        assert_eq!(check(&Answer { serial: 43, ..good(&q) }, &ca.signer), Err(OcspError::NotAnswered));
        let stale = Answer { next: Some(b"20270501120000Z"), ..good(&q) };
        assert_eq!(check(&stale, &ca.signer), Err(OcspError::Stale));
        let stranger = new_ca();
        assert_eq!(check(&good(&q), &stranger.signer), Err(OcspError::BadSignature));
        // A delegated responder: only with id-kp-OCSPSigning, issued by the CA.
        let (cert, signer) = responder(&ca, true);
        assert_eq!(check(&Answer { certs: vec![cert], ..good(&q) }, &signer), Ok(OcspStatus::Good));
        let (cert, signer) = responder(&ca, false);
        assert_eq!(check(&Answer { certs: vec![cert], ..good(&q) }, &signer), Err(OcspError::BadSignature));
        let (cert, signer) = responder(&stranger, true);
        assert_eq!(check(&Answer { certs: vec![cert], ..good(&q) }, &signer), Err(OcspError::BadSignature));
        // Unsuccessful responseStatus (6 unauthorized) and garbage.
        assert_eq!(q.check(&[0x30, 0x03, 0x0a, 0x01, 0x06], now()), Err(OcspError::Status(6)));
        assert!(matches!(q.check(b"<html>", now()), Err(OcspError::Malformed(_))));
    }

    #[test]
    fn times() {
        let t = |tag, s: &[u8]| x509::parse_time(tag, s);
        assert_eq!(t(x509::TAG_GENERALIZED_TIME, b"19700101000000Z"), Ok(0));
        assert_eq!(t(x509::TAG_GENERALIZED_TIME, b"20000301000000Z"), Ok(951_868_800));
        assert_eq!(t(x509::TAG_UTC_TIME, b"270502000000Z"), t(x509::TAG_GENERALIZED_TIME, b"20270502000000.5Z"));
        assert!(t(x509::TAG_UTC_TIME, b"2705020000Z").is_err());
        assert!(t(x509::TAG_GENERALIZED_TIME, b"20271302000000Z").is_err());
    }
}
