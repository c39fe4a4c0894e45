use std::net::IpAddr;

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
};

use super::*;
use crate::crypto::sig::sign_auth;

const GW: &str = "gw.ikelink.test";
const GW_IP: &str = "203.0.113.2";

fn now() -> u64 {
    date_time_ymd(2027, 6, 1).unix_timestamp() as u64
}

fn dn(cn: &str) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    d.push(DnType::CountryName, "CH");
    d.push(DnType::OrganizationName, "ikelink");
    d.push(DnType::CommonName, cn);
    d
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name = dn(cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = date_time_ymd(2025, 1, 1);
    p.not_after = date_time_ymd(2035, 1, 1);
    p
}

/// A leaf for gw.ikelink.test / 203.0.113.2, valid 2026-01-01 .. 2028-01-01.
fn leaf_params(eku: Vec<ExtendedKeyUsagePurpose>) -> CertificateParams {
    let mut p = CertificateParams::new(vec![GW.to_string()]).unwrap();
    p.subject_alt_names.push(SanType::IpAddress(GW_IP.parse().unwrap()));
    p.distinguished_name = dn(GW);
    p.extended_key_usages = eku;
    p.not_before = date_time_ymd(2026, 1, 1);
    p.not_after = date_time_ymd(2028, 1, 1);
    p
}

/// Root CA -> intermediate CA -> leaf, as DER, plus the keys.
struct Pki {
    root: Vec<u8>,
    root_key_spki: Vec<u8>,
    intermediate: Vec<u8>,
    intermediate_issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let root_params = ca_params(&format!("{name} root CA"));
        let root = root_params.self_signed(&root_key).unwrap().der().to_vec();
        let root_key_spki = root_key.subject_public_key_info();
        let root_issuer = Issuer::new(root_params, root_key);
        let int_key = KeyPair::generate().unwrap();
        let int_params = ca_params(&format!("{name} intermediate CA"));
        let intermediate = int_params.signed_by(&int_key, &root_issuer).unwrap().der().to_vec();
        Pki { root, root_key_spki, intermediate, intermediate_issuer: Issuer::new(int_params, int_key) }
    }

    fn leaf(&self, params: &CertificateParams, key: &KeyPair) -> Vec<u8> {
        params.signed_by(key, &self.intermediate_issuer).unwrap().der().to_vec()
    }

    fn anchors(&self) -> TrustAnchors {
        TrustAnchors::from_der([self.root.as_slice()]).unwrap()
    }

    fn policy(&self) -> GatewayCertPolicy {
        GatewayCertPolicy::new(self.anchors())
    }
}

fn fqdn(s: &str) -> Identification {
    Identification { id_type: IdType::ID_FQDN, data: s.as_bytes().to_vec() }
}

fn ip(s: &str) -> Identification {
    match s.parse::<IpAddr>().unwrap() {
        IpAddr::V4(a) => Identification { id_type: IdType::ID_IPV4_ADDR, data: a.octets().to_vec() },
        IpAddr::V6(a) => Identification { id_type: IdType::ID_IPV6_ADDR, data: a.octets().to_vec() },
    }
}

#[test]
fn validates_chain_and_identities() {
    let pki = Pki::new("ikelink");
    let key = KeyPair::generate().unwrap();
    let leaf = pki.leaf(&leaf_params(vec![ExtendedKeyUsagePurpose::ServerAuth]), &key);
    let chain = [leaf.as_slice(), pki.intermediate.as_slice()];
    let policy = pki.policy();

    let peer = validate_gateway(&chain, &fqdn(GW), &policy, now()).unwrap();
    assert_eq!(peer.spki(), key.subject_public_key_info());
    assert_eq!(peer.subject(), "C=CH, O=ikelink, CN=gw.ikelink.test");
    assert_eq!(peer.alt_names(), ["DNS:gw.ikelink.test", "IP:203.0.113.2"]);
    // Case and a trailing dot do not matter for FQDNs.
    validate_gateway(&chain, &fqdn("GW.Ikelink.Test."), &policy, now()).unwrap();
    validate_gateway(&chain, &ip(GW_IP), &policy, now()).unwrap();
    let dn_id = Identification { id_type: IdType::ID_DER_ASN1_DN, data: peer.subject_der().to_vec() };
    validate_gateway(&chain, &dn_id, &policy, now()).unwrap();

    // The validated key verifies an AUTH signature of the leaf's key.
    let signer = KeyPairSigner::from_pkcs8_der(&key.serialize_der()).unwrap();
    let octets = b"signed octets";
    let auth = sign_auth(&signer, AuthMethod::DIGITAL_SIGNATURE, SigScheme::EcdsaP256Sha256, octets).unwrap();
    assert_eq!(peer.verify_auth(AuthMethod::DIGITAL_SIGNATURE, &auth, octets), Ok(Some(SigScheme::EcdsaP256Sha256)));
    assert_eq!(
        peer.verify_auth(AuthMethod::DIGITAL_SIGNATURE, &auth, b"other octets"),
        Err(CryptoError::AuthenticationFailed)
    );
    let auth = sign_auth(&signer, AuthMethod::ECDSA_256, SigScheme::EcdsaP256Sha256, octets).unwrap();
    assert_eq!(peer.verify_auth(AuthMethod::ECDSA_256, &auth, octets), Ok(Some(SigScheme::EcdsaP256Sha256)));

    // The intermediate may also be configured as a trust anchor instead of being sent.
    let int_policy = GatewayCertPolicy::new(TrustAnchors::from_der([pki.intermediate.as_slice()]).unwrap());
    validate_gateway(&[leaf.as_slice()], &fqdn(GW), &int_policy, now()).unwrap();
}

#[test]
fn rsa_leaf_and_pkcs1_signatures() {
    let pki = Pki::new("ikelink");
    let key = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap();
    let leaf = pki.leaf(&leaf_params(vec![]), &key);
    let peer = validate_gateway(&[&leaf, &pki.intermediate], &fqdn(GW), &pki.policy(), now()).unwrap();
    let signer = KeyPairSigner::from_pkcs8_der(&key.serialize_der()).unwrap();
    for s in signer.schemes() {
        let auth = sign_auth(&signer, AuthMethod::DIGITAL_SIGNATURE, s, b"x").unwrap();
        assert_eq!(peer.verify_auth(AuthMethod::DIGITAL_SIGNATURE, &auth, b"x"), Ok(Some(s)));
    }
}

#[test]
fn rejects_untrusted_and_incomplete_chains() {
    let pki = Pki::new("ikelink");
    let other = Pki::new("evil");
    let key = KeyPair::generate().unwrap();
    let leaf = pki.leaf(&leaf_params(vec![]), &key);
    let chain = [leaf.as_slice(), pki.intermediate.as_slice()];
    assert_eq!(validate_gateway(&chain, &fqdn(GW), &other.policy(), now()), Err(CertError::UntrustedIssuer));
    // Missing intermediate.
    assert_eq!(validate_gateway(&chain[..1], &fqdn(GW), &pki.policy(), now()), Err(CertError::UntrustedIssuer));
    // A leaf signed by the other PKI's intermediate, sent with ours.
    let evil_leaf = other.leaf(&leaf_params(vec![]), &key);
    assert_eq!(
        validate_gateway(&[&evil_leaf, &pki.intermediate], &fqdn(GW), &pki.policy(), now()),
        Err(CertError::UntrustedIssuer)
    );
    // A CA certificate is not a gateway certificate.
    assert!(matches!(
        validate_gateway(&[&pki.intermediate], &fqdn(GW), &pki.policy(), now()),
        Err(CertError::InvalidChain(_))
    ));
    assert_eq!(validate_gateway(&[], &fqdn(GW), &pki.policy(), now()), Err(CertError::NoCertificate));
    let empty = GatewayCertPolicy::new(TrustAnchors::new());
    assert_eq!(validate_gateway(&chain, &fqdn(GW), &empty, now()), Err(CertError::NoTrustAnchors));
    assert!(matches!(
        validate_gateway(&[b"\x30\x03\x02\x01\x00"], &fqdn(GW), &pki.policy(), now()),
        Err(CertError::Malformed(_))
    ));
    let mut truncated = leaf.clone();
    truncated.truncate(leaf.len() - 10);
    assert!(matches!(validate_gateway(&[&truncated], &fqdn(GW), &pki.policy(), now()), Err(CertError::Malformed(_))));
    // A flipped bit in the leaf's signature.
    let mut forged = leaf.clone();
    let last = forged.len() - 3;
    forged[last] ^= 1;
    assert_eq!(
        validate_gateway(&[&forged, &pki.intermediate], &fqdn(GW), &pki.policy(), now()),
        Err(CertError::BadSignature)
    );
}

#[test]
fn checks_validity_period_at_the_given_time() {
    let pki = Pki::new("ikelink");
    let key = KeyPair::generate().unwrap();
    let leaf = pki.leaf(&leaf_params(vec![]), &key);
    let chain = [leaf.as_slice(), pki.intermediate.as_slice()];
    let later = date_time_ymd(2029, 1, 1).unix_timestamp() as u64;
    let earlier = date_time_ymd(2025, 6, 1).unix_timestamp() as u64;
    let not_after = date_time_ymd(2028, 1, 1).unix_timestamp() as u64;
    let not_before = date_time_ymd(2026, 1, 1).unix_timestamp() as u64;
    assert_eq!(
        validate_gateway(&chain, &fqdn(GW), &pki.policy(), later),
        Err(CertError::Expired { not_after, now: later })
    );
    assert_eq!(
        validate_gateway(&chain, &fqdn(GW), &pki.policy(), earlier),
        Err(CertError::NotYetValid { not_before, now: earlier })
    );
    let e = validate_gateway(&chain, &fqdn(GW), &pki.policy(), later).unwrap_err();
    assert!(e.to_string().starts_with("certificate expired"), "{e}");
}

#[test]
fn identity_must_be_in_the_certificate() {
    let pki = Pki::new("ikelink");
    let key = KeyPair::generate().unwrap();
    let mut params = leaf_params(vec![]);
    params.subject_alt_names.push(SanType::DnsName("*.vpn.ikelink.test".try_into().unwrap()));
    params.subject_alt_names.push(SanType::Rfc822Name("gw@ikelink.test".try_into().unwrap()));
    params.subject_alt_names.push(SanType::IpAddress("2001:db8::2".parse().unwrap()));
    let leaf = pki.leaf(&params, &key);
    let chain = [leaf.as_slice(), pki.intermediate.as_slice()];
    let policy = pki.policy();
    let ok = |id: Identification| validate_gateway(&chain, &id, &policy, now());

    ok(fqdn("a.vpn.ikelink.test")).unwrap();
    ok(ip("2001:db8::2")).unwrap();
    ok(Identification { id_type: IdType::ID_RFC822_ADDR, data: b"GW@ikelink.test".to_vec() }).unwrap();

    match ok(fqdn("other.ikelink.test")) {
        Err(CertError::IdentityMismatch { id, names }) => {
            assert_eq!(id, "other.ikelink.test");
            assert!(names.contains(&"DNS:gw.ikelink.test".to_string()), "{names:?}");
            assert!(names.contains(&"subject:C=CH, O=ikelink, CN=gw.ikelink.test".to_string()), "{names:?}");
        }
        other => panic!("{other:?}"),
    }
    for id in [
        ip("203.0.113.9"),
        ip("2001:db8::3"),
        fqdn("vpn.ikelink.test"),
        fqdn("a.b.vpn.ikelink.test"),
        fqdn("203.0.113.2"),
        Identification { id_type: IdType::ID_IPV4_ADDR, data: vec![203, 0, 113] },
        Identification { id_type: IdType::ID_RFC822_ADDR, data: b"other@ikelink.test".to_vec() },
        Identification {
            id_type: IdType::ID_DER_ASN1_DN,
            data: x509::parse(&pki.intermediate).unwrap().subject.to_vec(),
        },
    ] {
        assert!(matches!(ok(id.clone()), Err(CertError::IdentityMismatch { .. })), "{id:?}");
    }
    let e = ok(ip("203.0.113.9")).unwrap_err();
    assert!(e.to_string().contains("203.0.113.9"), "{e}");
    assert_eq!(
        ok(Identification { id_type: IdType::ID_KEY_ID, data: vec![1, 2] }),
        Err(CertError::UnsupportedIdentity("ID_KEY_ID".into()))
    );
}

#[test]
fn dns_name_matching() {
    assert!(dns_matches(b"gw.example.com", b"GW.EXAMPLE.COM"));
    assert!(dns_matches(b"gw.example.com.", b"gw.example.com"));
    assert!(dns_matches(b"*.example.com", b"gw.example.com"));
    assert!(!dns_matches(b"*.example.com", b"example.com"));
    assert!(!dns_matches(b"*.example.com", b".example.com"));
    assert!(!dns_matches(b"*.example.com", b"a.gw.example.com"));
    assert!(!dns_matches(b"*.com", b"example.com"));
    assert!(!dns_matches(b"gw*.example.com", b"gw1.example.com"));
    assert!(!dns_matches(b"gw.example.com", b"*.example.com"));
    assert!(!dns_matches(b"", b""));
}

#[test]
fn pins() {
    let pki = Pki::new("ikelink");
    let key = KeyPair::generate().unwrap();
    let leaf = pki.leaf(&leaf_params(vec![]), &key);
    let chain = [leaf.as_slice(), pki.intermediate.as_slice()];
    let check = |ca: Option<[u8; 32]>, leaf_pin: Option<[u8; 32]>| {
        let mut policy = pki.policy();
        policy.pinned_ca_spki_sha256 = ca;
        policy.pinned_leaf_spki_sha256 = leaf_pin;
        validate_gateway(&chain, &fqdn(GW), &policy, now()).map(|_| ())
    };
    let root_pin = spki_sha256(&pki.root_key_spki);
    assert_eq!(cert_spki_sha256(&pki.root).unwrap(), root_pin);
    let int_pin = cert_spki_sha256(&pki.intermediate).unwrap();
    let leaf_pin = cert_spki_sha256(&leaf).unwrap();
    assert_eq!(leaf_pin, spki_sha256(&key.subject_public_key_info()));
    check(Some(root_pin), None).unwrap();
    check(Some(int_pin), None).unwrap();
    check(None, Some(leaf_pin)).unwrap();
    check(Some(root_pin), Some(leaf_pin)).unwrap();
    assert_eq!(check(Some(leaf_pin), None), Err(CertError::PinMismatch("CA")));
    assert_eq!(check(Some([7; 32]), None), Err(CertError::PinMismatch("CA")));
    assert_eq!(check(None, Some(root_pin)), Err(CertError::PinMismatch("gateway certificate")));
}

#[test]
fn extended_key_usage_policy() {
    use ExtendedKeyUsagePurpose as E;
    let pki = Pki::new("ikelink");
    let key = KeyPair::generate().unwrap();
    let ipsec_ike = E::Other(vec![1, 3, 6, 1, 5, 5, 7, 3, 17]);
    let ike_intermediate = E::Other(vec![1, 3, 6, 1, 5, 5, 8, 2, 2]);
    // (EKU, accepted by default policy, accepted when serverAuth is required)
    let cases = [
        (vec![], true, false),
        (vec![E::ServerAuth], true, true),
        (vec![E::ClientAuth, E::ServerAuth], true, true),
        (vec![ipsec_ike.clone()], true, false),
        (vec![ike_intermediate.clone()], true, false),
        (vec![E::ServerAuth, ike_intermediate], true, true),
        (vec![E::Any], true, false),
        (vec![E::ClientAuth], false, false),
        (vec![E::CodeSigning, E::EmailProtection], false, false),
    ];
    for (eku, default_ok, strict_ok) in cases {
        let leaf = pki.leaf(&leaf_params(eku.clone()), &key);
        let chain = [leaf.as_slice(), pki.intermediate.as_slice()];
        let mut policy = pki.policy();
        let r = validate_gateway(&chain, &fqdn(GW), &policy, now());
        assert_eq!(r.is_ok(), default_ok, "{eku:?}: {r:?}");
        if !default_ok {
            assert!(matches!(r, Err(CertError::BadExtendedKeyUsage(_))), "{r:?}");
        }
        policy.require_server_auth_eku = true;
        let r = validate_gateway(&chain, &fqdn(GW), &policy, now());
        assert_eq!(r.is_ok(), strict_ok, "{eku:?} strict: {r:?}");
        if !strict_ok {
            assert!(matches!(r, Err(CertError::BadExtendedKeyUsage(_))), "{r:?}");
        }
    }
    let leaf = pki.leaf(&leaf_params(vec![E::ClientAuth]), &key);
    let e = validate_gateway(&[&leaf, &pki.intermediate], &fqdn(GW), &pki.policy(), now()).unwrap_err();
    assert_eq!(e, CertError::BadExtendedKeyUsage(vec!["1.3.6.1.5.5.7.3.2".into()]));
}

#[test]
fn key_usage_must_allow_signatures() {
    let pki = Pki::new("ikelink");
    let key = KeyPair::generate().unwrap();
    for (ku, ok) in [
        (vec![KeyUsagePurpose::DigitalSignature], true),
        (vec![KeyUsagePurpose::ContentCommitment], true),
        (vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment], true),
        (vec![KeyUsagePurpose::KeyEncipherment], false),
        (vec![KeyUsagePurpose::KeyAgreement], false),
    ] {
        let mut params = leaf_params(vec![]);
        params.key_usages = ku.clone();
        let leaf = pki.leaf(&params, &key);
        let r = validate_gateway(&[&leaf, &pki.intermediate], &fqdn(GW), &pki.policy(), now());
        if ok {
            r.unwrap();
        } else {
            assert_eq!(r, Err(CertError::BadKeyUsage), "{ku:?}");
        }
    }
}

#[test]
fn certreq_lists_sha1_of_each_anchor_spki() {
    let a = Pki::new("a");
    let b = Pki::new("b");
    let mut anchors = a.anchors();
    anchors.add_der(&b.root).unwrap();
    anchors.add_der(&a.root).unwrap(); // duplicate
    let data = certreq_hashes(&anchors);
    let sha1 = |d: &[u8]| digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, d).as_ref().to_vec();
    assert_eq!(data, [sha1(&a.root_key_spki), sha1(&b.root_key_spki)].concat());
    assert!(certreq_hashes(&TrustAnchors::new()).is_empty());
}

#[test]
fn trust_anchors_from_pem() {
    let a = Pki::new("a");
    let b = Pki::new("b");
    let pem = format!("junk\n{}{}", pem("CERTIFICATE", &a.root), pem("CERTIFICATE", &b.root));
    assert_eq!(TrustAnchors::from_pem(pem.as_bytes()).unwrap().len(), 2);
    assert!(matches!(TrustAnchors::from_pem(b"nothing here"), Err(CertError::Malformed(_))));
    assert!(matches!(TrustAnchors::from_der([&b"\x30\x00"[..]]), Err(CertError::Malformed(_))));
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(line).unwrap());
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn client_credentials_from_pem() {
    let pki = Pki::new("ikelink");
    let key = KeyPair::generate().unwrap();
    let mut params = leaf_params(vec![ExtendedKeyUsagePurpose::ClientAuth]);
    params.subject_alt_names = vec![SanType::Rfc822Name("alice@ikelink.test".try_into().unwrap())];
    params.distinguished_name = dn("alice");
    let leaf = pki.leaf(&params, &key);
    let chain_pem = format!("{}{}", pem("CERTIFICATE", &leaf), pem("CERTIFICATE", &pki.intermediate));
    let creds = ClientCredentials::from_pem(chain_pem.as_bytes(), key.serialize_pem().as_bytes()).unwrap();
    assert_eq!(creds.chain, vec![leaf.clone(), pki.intermediate.clone()]);
    assert_eq!(creds.leaf(), leaf.as_slice());
    let id = creds.subject_identity().unwrap();
    assert_eq!(id.id_type, IdType::ID_DER_ASN1_DN);
    assert_eq!(x509::display_name(&id.data), "C=CH, O=ikelink, CN=alice");
    assert!(format!("{creds:?}").contains("CN=alice"));
    // Our signature verifies with our certificate.
    let s = creds.signer.schemes()[0];
    let auth = sign_auth(creds.signer.as_ref(), AuthMethod::DIGITAL_SIGNATURE, s, b"octets").unwrap();
    assert_eq!(verify_auth(&leaf, AuthMethod::DIGITAL_SIGNATURE, &auth, b"octets"), Ok(Some(s)));

    let other = KeyPair::generate().unwrap();
    assert_eq!(
        ClientCredentials::from_pem(chain_pem.as_bytes(), other.serialize_pem().as_bytes()).unwrap_err(),
        CertError::KeyMismatch
    );
    let ed = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    assert_eq!(
        ClientCredentials::from_pem(chain_pem.as_bytes(), ed.serialize_pem().as_bytes()).unwrap_err(),
        CertError::KeyMismatch
    );
    assert!(matches!(ClientCredentials::from_pem(b"", key.serialize_pem().as_bytes()), Err(CertError::Malformed(_))));
    assert!(matches!(ClientCredentials::from_pem(chain_pem.as_bytes(), b"nope"), Err(CertError::Key(_))));
}

#[cfg(all(feature = "pkcs12", not(any(target_os = "android", target_os = "ios"))))]
#[test]
fn client_credentials_from_pkcs12() {
    use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};
    let pki = Pki::new("ikelink");
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let leaf = pki.leaf(&leaf_params(vec![]), &key);
    let chain = PrivateKeyChain::new(
        vec![1u8, 2, 3, 4],
        PrivateKey::from_der(&key.serialize_der()).unwrap(),
        [Certificate::from_der(&leaf).unwrap(), Certificate::from_der(&pki.intermediate).unwrap()],
    );
    let mut store = KeyStore::new();
    store.add_entry("client", KeyStoreEntry::PrivateKeyChain(chain));
    let p12 = store.writer("secret").write().unwrap();

    let creds = ClientCredentials::from_pkcs12(&p12, "secret").unwrap();
    assert_eq!(creds.chain, vec![leaf, pki.intermediate.clone()]);
    assert_eq!(creds.signer.schemes(), vec![SigScheme::EcdsaP384Sha384]);
    assert!(matches!(ClientCredentials::from_pkcs12(&p12, "wrong"), Err(CertError::Pkcs12(_))));
    assert!(matches!(ClientCredentials::from_pkcs12(b"\x30\x00", "secret"), Err(CertError::Pkcs12(_))));
}

/// A CRL of `issuer` listing the serial numbers `revoked`, DER.
fn crl(issuer: &Issuer<'static, KeyPair>, revoked: &[u64]) -> Vec<u8> {
    let params = rcgen::CertificateRevocationListParams {
        this_update: date_time_ymd(2027, 5, 1),
        next_update: date_time_ymd(2027, 8, 1),
        crl_number: rcgen::SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|&s| rcgen::RevokedCertParams {
                serial_number: rcgen::SerialNumber::from(s),
                revocation_time: date_time_ymd(2027, 5, 1),
                reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    };
    params.signed_by(issuer).unwrap().der().to_vec()
}

#[test]
fn crls_from_distribution_points_under_each_revocation_policy() {
    const URL: &str = "http://203.0.113.2:8080/int.crl";
    let pki = Pki::new("crl");
    let key = KeyPair::generate().unwrap();
    let mut p = leaf_params(vec![]);
    p.serial_number = Some(rcgen::SerialNumber::from(7u64));
    p.crl_distribution_points = vec![
        rcgen::CrlDistributionPoint { uris: vec!["ldap://ca.ikelink.test/cn=int".into(), URL.into()] },
        rcgen::CrlDistributionPoint { uris: vec![URL.into()] },
    ];
    let leaf = pki.leaf(&p, &key);
    let chain = [leaf.as_slice(), pki.intermediate.as_slice()];
    // Only http:// URLs, once; the intermediate names none.
    assert_eq!(crl_urls(&chain), vec![URL.to_string()]);
    // Contacting them is for chains that verify: the path, end entity first; nothing for another CA's chain.
    assert_eq!(verified_chain(&chain, &pki.policy(), now()), vec![leaf.clone(), pki.intermediate.clone()]);
    assert!(verified_chain(&chain, &Pki::new("elsewhere").policy(), now()).is_empty());
    assert!(verified_chain(&chain[..1], &pki.policy(), now()).is_empty(), "no path without the intermediate");
    assert!(crl_urls(&[pki.intermediate.as_slice()]).is_empty());

    let fetched = |crl: Option<Vec<u8>>| vec![RevocationResponse { url: URL.into(), data: crl }];
    let clean = crl(&pki.intermediate_issuer, &[8]);
    let revoked = crl(&pki.intermediate_issuer, &[7]);
    let revoked_pem = pem("X509 CRL", &revoked).into_bytes();
    let check = |mode: Revocation, f: Vec<RevocationResponse>| {
        let mut policy = pki.policy();
        policy.revocation = mode;
        validate_gateway_online(&chain, &fqdn(GW), &policy, &f, None, now()).map(|_| ())
    };
    for mode in [Revocation::Relaxed, Revocation::IfUri] {
        assert_eq!(check(mode, fetched(Some(clean.clone()))), Ok(()), "{mode:?}");
        assert_eq!(check(mode, fetched(Some(revoked.clone()))), Err(CertError::Revoked), "{mode:?}");
        assert_eq!(check(mode, fetched(Some(revoked_pem.clone()))), Err(CertError::Revoked), "{mode:?} PEM");
    }
    // Nothing (or nothing usable) fetched: relaxed goes on, ifuri refuses.
    for f in [None, Some(b"<html>not a CRL</html>".to_vec())] {
        assert_eq!(check(Revocation::Relaxed, fetched(f.clone())), Ok(()));
        assert_eq!(check(Revocation::IfUri, fetched(f)), Err(CertError::RevocationUnknown(Some(URL.into()))));
    }
    // Strict: the intermediate needs a CRL from the root too.
    assert_eq!(check(Revocation::Strict, fetched(Some(clean.clone()))), Err(CertError::RevocationUnknown(None)));
    assert_eq!(check(Revocation::Strict, fetched(None)), Err(CertError::RevocationUnknown(None)));
    // A CRL of another CA does not count (with the same name, its signature fails).
    let other = Pki::new("other");
    let foreign = crl(&other.intermediate_issuer, &[7]);
    assert_eq!(check(Revocation::Relaxed, fetched(Some(foreign.clone()))), Ok(()));
    assert_eq!(check(Revocation::IfUri, fetched(Some(foreign))), Err(CertError::RevocationUnknown(Some(URL.into()))));
}
