//! OCSP (RFC 6960) for the gateway's end-entity certificate: the request we send to the responder its
//! authorityInfoAccess names, and the check of the answer (signed by the issuing CA or by a responder it
//! delegated to, §4.2.2.2; about our certificate; fresh; our nonce echoed if the responder echoes one).
//!
//! The ASN.1 of RFC 6960 §4 is declared below and read and written by RustCrypto's `der` (derive) with the
//! `x509-cert` types, the versions the rest of the tree uses. The `x509-ocsp` crate is not used: its only
//! release (0.2.1) is built on `der` 0.7 / `x509-cert` 0.2, a second copy of that stack; it decodes the
//! response into owned types (the signed `tbsResponseData` would have to be re-encoded to check the
//! signature) and fails a whole response on one odd certificate in `certs`. A delegated responder's
//! certificate is checked by webpki (path to the issuing CA, id-kp-OCSPSigning, validity).

use std::time::Duration;

use aws_lc_rs::digest;
use der::asn1::{AnyRef, BitStringRef, GeneralizedTime, IntRef, ObjectIdentifier, OctetString, OctetStringRef};
use der::{Decode, Encode, Sequence, Tag, Tagged};
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use x509_cert::ext::{Extension, Extensions};
use x509_cert::spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};

use super::x509;
use super::TrustAnchors;
use crate::crypto::sig::{verify_signature, SigScheme};

/// id-sha1 (RFC 6960 §4.1.1's CertID hash; what responders expect).
const ID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
/// id-pkix-ocsp-basic (§4.2.1) and id-pkix-ocsp-nonce (§4.4.1).
const OID_OCSP_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
const OID_OCSP_NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");
/// id-kp-OCSPSigning (§4.2.2.2), contents octets (what webpki takes).
const EKU_OCSP_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x09];
/// Clock skew allowed on thisUpdate / nextUpdate.
const SKEW: u64 = 300;
/// How long an answer without nextUpdate counts as fresh.
const NO_NEXT_UPDATE_FRESH: u64 = 3600;

/// OCSPRequest ::= SEQUENCE { tbsRequest TBSRequest, optionalSignature [0] EXPLICIT Signature OPTIONAL }
#[derive(Sequence)]
struct OcspRequest<'a> {
    tbs_request: TbsRequest<'a>,
}

/// TBSRequest ::= SEQUENCE { version [0] DEFAULT v1, requestorName [1] OPTIONAL, requestList SEQUENCE OF
/// Request, requestExtensions [2] EXPLICIT Extensions OPTIONAL }
#[derive(Sequence)]
struct TbsRequest<'a> {
    request_list: Vec<Request<'a>>,
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", optional = "true")]
    request_extensions: Option<Extensions>,
}

/// Request ::= SEQUENCE { reqCert CertID, singleRequestExtensions [0] EXPLICIT Extensions OPTIONAL }
#[derive(Sequence)]
struct Request<'a> {
    req_cert: CertId<'a>,
}

/// CertID ::= SEQUENCE { hashAlgorithm, issuerNameHash OCTET STRING, issuerKeyHash OCTET STRING,
/// serialNumber CertificateSerialNumber }
#[derive(Sequence)]
struct CertId<'a> {
    hash_algorithm: AlgorithmIdentifierRef<'a>,
    issuer_name_hash: &'a OctetStringRef,
    issuer_key_hash: &'a OctetStringRef,
    serial_number: IntRef<'a>,
}

/// OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED, responseBytes [0] EXPLICIT ResponseBytes OPTIONAL }
#[derive(Sequence)]
struct OcspResponse<'a> {
    response_status: AnyRef<'a>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    response_bytes: Option<ResponseBytes<'a>>,
}

/// ResponseBytes ::= SEQUENCE { responseType OBJECT IDENTIFIER, response OCTET STRING }
#[derive(Sequence)]
struct ResponseBytes<'a> {
    response_type: ObjectIdentifier,
    response: &'a OctetStringRef,
}

/// BasicOCSPResponse ::= SEQUENCE { tbsResponseData ResponseData, signatureAlgorithm AlgorithmIdentifier,
/// signature BIT STRING, certs [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }; the signed data and the
/// certificates are kept as they came.
#[derive(Sequence)]
struct BasicOcspResponse<'a> {
    tbs_response_data: AnyRef<'a>,
    signature_algorithm: AnyRef<'a>,
    signature: BitStringRef<'a>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    certs: Option<Vec<AnyRef<'a>>>,
}

/// ResponseData ::= SEQUENCE { version [0] EXPLICIT DEFAULT v1, responderID ResponderID, producedAt
/// GeneralizedTime, responses SEQUENCE OF SingleResponse, responseExtensions [1] EXPLICIT Extensions OPTIONAL }
#[derive(Sequence)]
struct ResponseData<'a> {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    version: Option<AnyRef<'a>>,
    responder_id: AnyRef<'a>,
    produced_at: AnyRef<'a>,
    responses: Vec<SingleResponse<'a>>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    response_extensions: Option<Extensions>,
}

/// SingleResponse ::= SEQUENCE { certID CertID, certStatus CertStatus, thisUpdate GeneralizedTime,
/// nextUpdate [0] EXPLICIT GeneralizedTime OPTIONAL, singleExtensions [1] EXPLICIT Extensions OPTIONAL }
#[derive(Sequence)]
struct SingleResponse<'a> {
    cert_id: CertId<'a>,
    cert_status: AnyRef<'a>,
    this_update: AnyRef<'a>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    next_update: Option<AnyRef<'a>>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    single_extensions: Option<AnyRef<'a>>,
}

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
    Malformed(String),
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

impl From<der::Error> for OcspError {
    fn from(e: der::Error) -> Self {
        OcspError::Malformed(e.to_string())
    }
}

fn sha1(data: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, data).as_ref().to_vec()
}

/// The contents octets of a DER TLV (a Name or SubjectPublicKeyInfo as webpki's trust anchors hold them).
fn contents(tlv: &[u8]) -> Option<&[u8]> {
    AnyRef::from_der(tlv).ok().map(AnyRef::value)
}

/// A SEQUENCE around `contents`.
fn sequence(contents: &[u8]) -> Option<Vec<u8>> {
    AnyRef::new(Tag::Sequence, contents).and_then(|a| a.to_der()).ok()
}

/// The OCSP query for the end-entity certificate of `chain`, if it names an `http://` OCSP responder and its
/// issuer is among the intermediates sent or the trust anchors. `nonce` (16 random octets) goes into the
/// request's nonce extension (§4.4.1).
pub fn ocsp_query(chain: &[&[u8]], anchors: &TrustAnchors, nonce: [u8; 16]) -> Option<OcspQuery> {
    let (leaf, intermediates) = chain.split_first()?;
    let info = x509::parse(leaf).ok()?;
    let url = info.ocsp_uris.iter().find_map(|u| super::http_url(u.as_bytes()))?;
    let (issuer_name, issuer_spki) = intermediates
        .iter()
        .filter_map(|c| x509::parse(c).ok())
        .find(|c| c.subject == info.issuer)
        .map(|c| (c.subject, c.spki))
        .or_else(|| {
            anchors.anchors.iter().find_map(|a| {
                let name = sequence(a.subject.as_ref())?;
                (name == info.issuer).then(|| Some((name, sequence(a.subject_public_key_info.as_ref())?)))?
            })
        })?;
    let name_hash = sha1(&issuer_name);
    let key_hash = sha1(SubjectPublicKeyInfoRef::from_der(&issuer_spki).ok()?.subject_public_key.as_bytes()?);
    let cert_id = CertId {
        hash_algorithm: AlgorithmIdentifierRef { oid: ID_SHA1, parameters: None },
        issuer_name_hash: OctetStringRef::new(&name_hash).ok()?,
        issuer_key_hash: OctetStringRef::new(&key_hash).ok()?,
        serial_number: IntRef::new(&info.serial).ok()?,
    };
    // The nonce's extnValue holds an OCTET STRING (RFC 8954 §2.1).
    let nonce_ext = Extension {
        extn_id: OID_OCSP_NONCE,
        critical: false,
        extn_value: OctetString::new(OctetStringRef::new(&nonce).ok()?.to_der().ok()?).ok()?,
    };
    let request = OcspRequest {
        tbs_request: TbsRequest {
            request_list: vec![Request { req_cert: cert_id }],
            request_extensions: Some(vec![nonce_ext]),
        },
    }
    .to_der()
    .ok()?;
    let serial = info.serial;
    Some(OcspQuery { url, request, name_hash, key_hash, serial, issuer_spki, issuer_name, nonce: nonce.to_vec() })
}

/// A signature over `data` by `spki` with the algorithm of the DER AlgorithmIdentifier `alg`.
fn signed_by(spki: &[u8], alg: &[u8], data: &[u8], sig: &[u8]) -> bool {
    SigScheme::from_algorithm_identifier(alg).is_some_and(|s| verify_signature(spki, s, data, sig).is_ok())
}

/// A Time of a response as unix seconds. GeneralizedTime may carry fractional seconds here (RFC 6960 does
/// not forbid them; `der` follows RFC 5280, which does): they are dropped before `der` reads the time.
fn unix_time(t: AnyRef<'_>) -> Result<u64, OcspError> {
    if t.tag() != Tag::GeneralizedTime {
        return Ok(x509_cert::time::Time::from_der(&t.to_der()?)?.to_unix_duration().as_secs());
    }
    let v = t.value();
    let whole = match (v.iter().position(|&b| b == b'.'), v.last()) {
        (Some(dot), Some(&b'Z')) => [v.get(..dot).unwrap_or_default(), b"Z"].concat(),
        _ => v.to_vec(),
    };
    Ok(GeneralizedTime::from_der(&AnyRef::new(Tag::GeneralizedTime, &whole)?.to_der()?)?.to_unix_duration().as_secs())
}

impl OcspQuery {
    /// A delegated responder's certificate (§4.2.2.2): issued by our CA, for OCSP signing, valid at `now`
    /// (webpki's path check with the CA as the only anchor); its SubjectPublicKeyInfo if so.
    fn delegated(&self, cert: &[u8], now: u64) -> Option<Vec<u8>> {
        let anchor = TrustAnchor {
            subject: contents(&self.issuer_name)?.into(),
            subject_public_key_info: contents(&self.issuer_spki)?.into(),
            name_constraints: None,
        };
        let der = CertificateDer::from(cert);
        let ee = webpki::EndEntityCert::try_from(&der).ok()?;
        let time = UnixTime::since_unix_epoch(Duration::from_secs(now));
        let usage = webpki::KeyUsage::required(EKU_OCSP_SIGNING);
        ee.verify_for_usage(webpki::ALL_VERIFICATION_ALGS, &[anchor], &[], time, usage, None, None).ok()?;
        x509::parse(cert).ok().map(|c| c.spki)
    }

    /// Check the DER OCSPResponse `response` at `now` (unix seconds) and say what it says about our
    /// certificate.
    pub fn check(&self, response: &[u8], now: u64) -> Result<OcspStatus, OcspError> {
        let resp = OcspResponse::from_der(response)?;
        if resp.response_status.tag() != Tag::Enumerated {
            return Err(OcspError::Malformed("responseStatus is not an ENUMERATED".into()));
        }
        if resp.response_status.value() != [0] {
            return Err(OcspError::Status(resp.response_status.value().first().copied().unwrap_or(0xff)));
        }
        let bytes = resp.response_bytes.ok_or_else(|| OcspError::Malformed("no responseBytes".into()))?;
        if bytes.response_type != OID_OCSP_BASIC {
            return Err(OcspError::Malformed("not a basic OCSP response".into()));
        }
        let basic = BasicOcspResponse::from_der(bytes.response.as_bytes())?;
        let tbs = basic.tbs_response_data.to_der()?;
        let sig_alg = basic.signature_algorithm.to_der()?;
        let signature = basic.signature.as_bytes().ok_or_else(|| OcspError::Malformed("signature".into()))?;
        let by_ca = signed_by(&self.issuer_spki, &sig_alg, &tbs, signature);
        let by_delegate = || {
            basic
                .certs
                .iter()
                .flatten()
                .filter_map(|c| self.delegated(&c.to_der().ok()?, now))
                .any(|spki| signed_by(&spki, &sig_alg, &tbs, signature))
        };
        if !by_ca && !by_delegate() {
            return Err(OcspError::BadSignature);
        }

        let data: ResponseData<'_> = basic.tbs_response_data.decode_as()?;
        for ext in data.response_extensions.iter().flatten().filter(|e| e.extn_id == OID_OCSP_NONCE) {
            // The nonce's value is an OCTET STRING inside the extension's (RFC 8954 §2.1); some responders put
            // the bare octets there.
            let value = ext.extn_value.as_bytes();
            let echoed = <&OctetStringRef>::from_der(value).map(OctetStringRef::as_bytes).unwrap_or(value);
            if echoed != self.nonce.as_slice() {
                return Err(OcspError::NonceMismatch);
            }
        }
        for single in &data.responses {
            let id = &single.cert_id;
            let ours = id.hash_algorithm.oid == ID_SHA1
                && id.hash_algorithm.parameters.is_none_or(|p| p == AnyRef::NULL)
                && id.issuer_name_hash.as_bytes() == self.name_hash.as_slice()
                && id.issuer_key_hash.as_bytes() == self.key_hash.as_slice()
                && id.serial_number.as_bytes() == self.serial.as_slice();
            let this_update = unix_time(single.this_update)?;
            let next_update = single.next_update.map(unix_time).transpose()?;
            if !ours {
                continue;
            }
            let fresh_until = next_update.unwrap_or(this_update + NO_NEXT_UPDATE_FRESH);
            if this_update > now + SKEW || now > fresh_until + SKEW {
                return Err(OcspError::Stale);
            }
            // CertStatus ::= CHOICE { good [0] IMPLICIT NULL, revoked [1] IMPLICIT RevokedInfo, unknown [2] ... }
            return Ok(match single.cert_status.tag() {
                Tag::ContextSpecific { constructed: false, number } if number.value() == 0 => OcspStatus::Good,
                Tag::ContextSpecific { constructed: true, number } if number.value() == 1 => OcspStatus::Revoked,
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
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::ext::pkix::{AccessDescription, AuthorityInfoAccessSyntax};

    use super::*;
    use crate::crypto::{KeyPairSigner, Signer};

    const URL: &str = "http://203.0.113.2:8081/";
    const THIS: &str = "20270501000000Z";
    const NEXT: &str = "20270508000000Z";

    fn time(s: &str) -> AnyRef<'_> {
        AnyRef::new(Tag::GeneralizedTime, s.as_bytes()).unwrap()
    }

    fn now() -> u64 {
        unix_time(time("20270502000000Z")).unwrap()
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
        let ad = AccessDescription {
            access_method: ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1"),
            access_location: GeneralName::UniformResourceIdentifier(der::asn1::Ia5String::new(url).unwrap()),
        };
        let content = AuthorityInfoAccessSyntax(vec![ad]).to_der().unwrap();
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
        /// The CertStatus TLV.
        status: Vec<u8>,
        serial: u64,
        next: Option<&'a str>,
        nonce: Option<Vec<u8>>,
        certs: Vec<Vec<u8>>,
    }

    fn good(q: &OcspQuery) -> Answer<'static> {
        Answer { status: vec![0x80, 0x00], serial: 0, next: Some(NEXT), nonce: Some(q.nonce.clone()), certs: vec![] }
    }

    /// A successful basic OCSPResponse about `q`'s issuer and `serial` (0: `q`'s), signed by `signer`.
    fn respond(q: &OcspQuery, a: &Answer<'_>, signer: &dyn Signer) -> Vec<u8> {
        let other: Vec<u8> = a.serial.to_be_bytes().into_iter().skip_while(|&b| b == 0).collect();
        let serial = if a.serial == 0 { q.serial.clone() } else { other };
        let single = SingleResponse {
            cert_id: CertId {
                hash_algorithm: AlgorithmIdentifierRef { oid: ID_SHA1, parameters: None },
                issuer_name_hash: OctetStringRef::new(&q.name_hash).unwrap(),
                issuer_key_hash: OctetStringRef::new(&q.key_hash).unwrap(),
                serial_number: IntRef::new(&serial).unwrap(),
            },
            cert_status: AnyRef::from_der(&a.status).unwrap(),
            this_update: time(THIS),
            next_update: a.next.map(time),
            single_extensions: None,
        };
        let nonce = a.nonce.as_ref().map(|n| {
            let value = OctetStringRef::new(n).unwrap().to_der().unwrap();
            vec![Extension { extn_id: OID_OCSP_NONCE, critical: false, extn_value: OctetString::new(value).unwrap() }]
        });
        let by_key = OctetStringRef::new(&[7; 20]).unwrap().to_der().unwrap();
        let responder_id = AnyRef::new(Tag::ContextSpecific { constructed: true, number: 2u32.into() }, &by_key);
        let data = ResponseData {
            version: None,
            responder_id: responder_id.unwrap(),
            produced_at: time(THIS),
            responses: vec![single],
            response_extensions: nonce,
        };
        let tbs = data.to_der().unwrap();
        let scheme = SigScheme::EcdsaP256Sha256;
        let sig = signer.sign(scheme, &tbs).unwrap();
        let certs: Vec<AnyRef<'_>> = a.certs.iter().map(|c| AnyRef::from_der(c).unwrap()).collect();
        let basic = BasicOcspResponse {
            tbs_response_data: AnyRef::from_der(&tbs).unwrap(),
            signature_algorithm: AnyRef::from_der(scheme.algorithm_identifier().get(1..).unwrap()).unwrap(),
            signature: BitStringRef::from_bytes(&sig).unwrap(),
            certs: (!certs.is_empty()).then_some(certs),
        }
        .to_der()
        .unwrap();
        let response = OctetStringRef::new(&basic).unwrap();
        let status = AnyRef::new(Tag::Enumerated, &[0]).unwrap();
        let bytes = ResponseBytes { response_type: OID_OCSP_BASIC, response };
        OcspResponse { response_status: status, response_bytes: Some(bytes) }.to_der().unwrap()
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
        let req = OcspRequestIn::from_der(&q.request).unwrap();
        assert_eq!(req.tbs_request.request_list.len(), 1);
        let exts = req.tbs_request.request_extensions.expect("request extensions");
        assert_eq!(exts[0].extn_id, OID_OCSP_NONCE);
        assert!(q.request.windows(16).any(|w| w == [9; 16]));
        // No responder named, or the issuer unknown: no query.
        let other = named_ca("another CA");
        assert!(ocsp_query(&[&leaf], &other.anchors, [0; 16]).is_none());
        let mut p = CertificateParams::new(vec!["x.example.net".to_string()]).unwrap();
        p.serial_number = Some(SerialNumber::from(5u64));
        let plain = p.signed_by(&KeyPair::generate().unwrap(), &ca.issuer).unwrap().der().to_vec();
        assert!(ocsp_query(&[&plain], &ca.anchors, [0; 16]).is_none());
    }

    /// The request as the responder reads it.
    #[derive(Sequence)]
    struct OcspRequestIn<'a> {
        tbs_request: TbsRequestIn<'a>,
    }

    #[derive(Sequence)]
    struct TbsRequestIn<'a> {
        request_list: Vec<AnyRef<'a>>,
        #[asn1(context_specific = "2", tag_mode = "EXPLICIT", optional = "true")]
        request_extensions: Option<Extensions>,
    }

    #[test]
    fn answers_are_checked() {
        let ca = new_ca();
        let leaf = leaf(&ca, 42);
        let q = ocsp_query(&[&leaf], &ca.anchors, [9; 16]).unwrap();
        let check = |a: &Answer<'_>, signer: &dyn Signer| q.check(&respond(&q, a, signer), now());

        assert_eq!(check(&good(&q), &ca.signer), Ok(OcspStatus::Good));
        // revoked [1] IMPLICIT RevokedInfo { revocationTime }
        let revoked = [&[0xa1, 0x11, 0x18, 0x0f][..], THIS.as_bytes()].concat();
        assert_eq!(check(&Answer { status: revoked, ..good(&q) }, &ca.signer), Ok(OcspStatus::Revoked));
        assert_eq!(check(&Answer { status: vec![0x82, 0x00], ..good(&q) }, &ca.signer), Ok(OcspStatus::Unknown));
        // Without a nonce (responders that pre-sign) it still counts; another nonce does not.
        assert_eq!(check(&Answer { nonce: None, ..good(&q) }, &ca.signer), Ok(OcspStatus::Good));
        assert_eq!(check(&Answer { nonce: Some(vec![1; 16]), ..good(&q) }, &ca.signer), Err(OcspError::NonceMismatch));
        // About another certificate; stale; signed by someone else.
        assert_eq!(check(&Answer { serial: 43, ..good(&q) }, &ca.signer), Err(OcspError::NotAnswered));
        let stale = Answer { next: Some("20270501120000Z"), ..good(&q) };
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
        let t = |tag, s: &'static str| unix_time(AnyRef::new(tag, s.as_bytes()).unwrap());
        assert_eq!(t(Tag::GeneralizedTime, "19700101000000Z"), Ok(0));
        assert_eq!(t(Tag::GeneralizedTime, "20000301000000Z"), Ok(951_868_800));
        assert_eq!(t(Tag::UtcTime, "270502000000Z"), t(Tag::GeneralizedTime, "20270502000000.5Z"));
        assert!(t(Tag::UtcTime, "2705020000Z").is_err());
        assert!(t(Tag::GeneralizedTime, "20271302000000Z").is_err());
    }
}
