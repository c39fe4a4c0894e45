//! `cert_parse`: certificates, chains, CRLs and OCSP responses as the gateway (or its CRL and OCSP servers) send
//! them (`crate::crypto::cert`), PEM and key files as profiles name them, and the signature data of AUTH
//! payloads (RFC 7427). Validation runs against the fuzz PKI ([`super::pki`]) at a fixed time.

use std::sync::OnceLock;

use super::{pki, Input};
use crate::crypto::{
    cert_spki_sha256, crl_urls, decode_digital_signature, display_dn, ocsp_query, spki_sha256, validate_gateway,
    validate_gateway_online, verified_chain, verify_auth, ClientCredentials, GatewayCertPolicy, KeyPairSigner,
    OcspQuery, Revocation, RevocationResponse, SigScheme, TrustAnchors,
};
use crate::wire::{AuthMethod, IdType, Identification};

const CRL_URL: &str = "http://crl.example.net/ca.crl";

fn anchors() -> &'static TrustAnchors {
    static A: OnceLock<TrustAnchors> = OnceLock::new();
    A.get_or_init(|| match TrustAnchors::from_der([pki::CA]) {
        Ok(a) => a,
        Err(e) => panic!("the fuzz CA does not load: {e}"),
    })
}

/// The OCSP query for the fuzz gateway certificate (fixed nonce).
fn query() -> &'static OcspQuery {
    static Q: OnceLock<OcspQuery> = OnceLock::new();
    Q.get_or_init(|| match ocsp_query(&[pki::GW], anchors(), [0; 16]) {
        Some(q) => q,
        None => panic!("no OCSP query for the fuzz gateway certificate"),
    })
}

fn gw_id() -> Identification {
    Identification { id_type: IdType::ID_FQDN, data: pki::GW_NAME.as_bytes().to_vec() }
}

/// A policy from a flags byte: bit 0 require serverAuth EKU, bits 1-2 revocation, bit 3 pin the CA, bit 4 pin
/// the leaf.
fn policy(flags: u8) -> GatewayCertPolicy {
    let mut p = GatewayCertPolicy::new(anchors().clone());
    p.require_server_auth_eku = flags & 1 != 0;
    p.revocation =
        [Revocation::Offline, Revocation::Relaxed, Revocation::IfUri, Revocation::Strict][usize::from(flags >> 1) & 3];
    if flags & 8 != 0 {
        p.pinned_ca_spki_sha256 = cert_spki_sha256(pki::CA).ok();
    }
    if flags & 16 != 0 {
        p.pinned_leaf_spki_sha256 = cert_spki_sha256(pki::GW).ok();
    }
    p
}

/// Mode byte (mod 6), then:
/// - 0: a DER certificate: parsed for its SPKI, CRL distribution points and OCSP responder, added as a trust
///   anchor, validated as the gateway's certificate (under the fuzz CA, and as its own anchor);
/// - 1: `flags, id type, chunk id, chunk*`: a chain (up to 4 certificates; flags bit 5: the fuzz gateway's
///   certificate first) validated under a policy made from `flags`, with an identity from the input;
/// - 2: `flags, rest`: a CRL, configured (DER) and fetched from the gateway certificate's distribution point;
/// - 3: `flags, rest`: an OCSP response about the fuzz gateway certificate, checked and used in validation;
/// - 4: `chunk, rest`: PEM: trust anchors, a certificate chain with the fuzz key, a key (PEM, or DER of any kind)
///   with the fuzz certificate;
/// - 5: `method, chunk spki, rest`: AUTH signature data (RFC 7427, RFC 4754, RSA_SIG) checked with the fuzz
///   gateway's key or with the given SubjectPublicKeyInfo, and the AlgorithmIdentifier decoder.
pub fn cert_parse(data: &[u8]) {
    let mut input = Input::new(data);
    match input.u8() % 6 {
        0 => {
            let cert = input.rest();
            if let Ok(h) = cert_spki_sha256(cert) {
                let _ = h == spki_sha256(cert);
            }
            let _ = crl_urls(&[cert]);
            let _ = display_dn(cert);
            let _ = verified_chain(&[cert], &policy(0), pki::NOW);
            if let Some(q) = ocsp_query(&[cert], anchors(), [0; 16]) {
                let _ = q.check(cert, pki::NOW);
            }
            let _ = validate_gateway(&[cert], &gw_id(), &policy(0), pki::NOW);
            let mut own = TrustAnchors::new();
            if own.add_der(cert).is_ok() {
                let p = GatewayCertPolicy::new(own);
                for id in [gw_id(), Identification { id_type: IdType::ID_DER_ASN1_DN, data: cert.to_vec() }] {
                    if let Ok(peer) = validate_gateway(&[cert], &id, &p, pki::NOW) {
                        let _ = (peer.subject(), peer.alt_names(), peer.spki(), peer.subject_der());
                    }
                }
                let _ = crate::crypto::certreq_hashes(&p.anchors);
            }
        }
        1 => {
            let flags = input.u8();
            let id_type = IdType(input.u8());
            let id = Identification { id_type, data: input.chunk().to_vec() };
            let mut chain: Vec<&[u8]> = Vec::new();
            if flags & 32 != 0 {
                chain.push(pki::GW);
            }
            while !input.is_empty() && chain.len() < 4 {
                chain.push(input.chunk());
            }
            let p = policy(flags);
            let _ = crl_urls(&chain);
            let _ = verified_chain(&chain, &p, pki::NOW);
            let _ = ocsp_query(&chain, anchors(), [0; 16]);
            if let Ok(peer) = validate_gateway(&chain, &id, &p, pki::NOW) {
                let _ = (peer.subject(), peer.alt_names());
            }
        }
        2 => {
            let flags = input.u8();
            let crl = input.rest();
            let mut p = policy(flags);
            let _ = validate_gateway(&[pki::GW], &gw_id(), &p, pki::NOW);
            let fetched = [RevocationResponse { url: CRL_URL.into(), data: Some(crl.to_vec()) }];
            let _ = validate_gateway_online(&[pki::GW], &gw_id(), &p, &fetched, None, pki::NOW);
            p.crls = vec![crl.to_vec()];
            let _ = validate_gateway(&[pki::GW], &gw_id(), &p, pki::NOW);
        }
        3 => {
            let flags = input.u8();
            let response = input.rest();
            let q = query();
            let _ = q.check(response, pki::NOW);
            let _ = q.check(response, u64::from(flags) << 32);
            let p = policy(flags);
            let _ = validate_gateway_online(&[pki::GW], &gw_id(), &p, &[], Some((q, Some(response))), pki::NOW);
        }
        4 => {
            let pem = input.chunk();
            let key = input.rest();
            let _ = TrustAnchors::from_pem(pem);
            let _ = ClientCredentials::from_pem(pem, pki::GW_KEY_PEM);
            let _ = KeyPairSigner::from_pem(key);
            let _ = KeyPairSigner::from_any(key);
            if let Ok(c) = ClientCredentials::from_pem(pki::GW_PEM, key) {
                let _ = c.subject_identity();
            }
        }
        _ => {
            let method = AuthMethod(input.u8());
            let spki = input.chunk();
            let auth = input.rest();
            let octets = b"signed octets";
            let _ = verify_auth(pki::GW, method, auth, octets);
            let _ = verify_auth(spki, method, auth, octets);
            let _ = decode_digital_signature(auth);
            let _ = SigScheme::from_algorithm_identifier(auth);
        }
    }
}
