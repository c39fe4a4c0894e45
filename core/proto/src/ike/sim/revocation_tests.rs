//! Online revocation checking against the simulated gateway: the IKE SA asks for the CRLs of the gateway's
//! certificate ([`Event::FetchRevocation`]), waits for them, and judges the certificate with them; without an
//! answer it goes on after [`REVOCATION_FETCH_TIMEOUT`] as the policy says.

use std::sync::Arc;
use std::time::Duration;

use rcgen::{CertificateParams, CrlDistributionPoint, IsCa, Issuer, KeyPair, SerialNumber};

use super::responder::ResponderCert;
use super::tests::*;
use super::*;
use crate::crypto::{CertError, GatewayCertPolicy, KeyPairSigner, Revocation, RevocationResponse, TrustAnchors};
use crate::ike::sa::REVOCATION_FETCH_TIMEOUT;
use crate::ike::{GatewayAuth, State};

pub(crate) const URL: &str = "http://ca.example.net/gw.crl";
const OCSP_URL: &str = "http://ocsp.example.net/";

pub(crate) struct Gateway {
    pub(crate) anchors: TrustAnchors,
    pub(crate) cert: ResponderCert,
    pub(crate) ca: Issuer<'static, KeyPair>,
}

/// A CA and a gateway certificate (serial 5, naming [`URL`]) it issued.
pub(crate) fn gateway() -> Gateway {
    gateway_with(false)
}

/// authorityInfoAccess naming [`OCSP_URL`] as the OCSP responder (RFC 5280 §4.2.2.1).
fn aia() -> rcgen::CustomExtension {
    let (oid, url) = ([0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01], OCSP_URL.as_bytes());
    let mut ad = oid.to_vec();
    ad.push(0x86);
    ad.push(url.len() as u8);
    ad.extend_from_slice(url);
    let mut desc = vec![0x30, ad.len() as u8];
    desc.extend_from_slice(&ad);
    let mut content = vec![0x30, desc.len() as u8];
    content.extend_from_slice(&desc);
    rcgen::CustomExtension::from_oid_content(&[1, 3, 6, 1, 5, 5, 7, 1, 1], content)
}

/// [`gateway`], the certificate also naming an OCSP responder if `ocsp`.
fn gateway_with(ocsp: bool) -> Gateway {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_der = ca_params.self_signed(&ca_key).unwrap().der().to_vec();
    let ca = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["gw.example.net".to_string()]).unwrap();
    params.serial_number = Some(SerialNumber::from(5u64));
    params.crl_distribution_points = vec![CrlDistributionPoint { uris: vec![URL.into()] }];
    if ocsp {
        params.custom_extensions = vec![aia()];
    }
    let der = params.signed_by(&key, &ca).unwrap().der().to_vec();
    let signer = Arc::new(KeyPairSigner::from_pkcs8_der(&key.serialize_der()).unwrap());
    Gateway { anchors: TrustAnchors::from_der([ca_der.as_slice()]).unwrap(), cert: ResponderCert(der, signer), ca }
}

pub(crate) fn crl(ca: &Issuer<'static, KeyPair>, revoked: &[u64]) -> Vec<u8> {
    let t = rcgen::date_time_ymd(2030, 1, 1);
    rcgen::CertificateRevocationListParams {
        this_update: t,
        next_update: rcgen::date_time_ymd(2030, 2, 1),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|&s| rcgen::RevokedCertParams {
                serial_number: SerialNumber::from(s),
                revocation_time: t,
                reason_code: None,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    }
    .signed_by(ca)
    .unwrap()
    .der()
    .to_vec()
}

/// Run until the IKE SA asks for CRLs (or settles without asking).
fn start(gw: &Gateway, mode: Revocation) -> Pair {
    start_pair(gw, mode).0
}

/// [`start`], also returning what the IKE SA asked for.
fn start_pair(gw: &Gateway, mode: Revocation) -> (Pair, Vec<crate::crypto::RevocationRequest>) {
    let mut policy = GatewayCertPolicy::new(gw.anchors.clone());
    policy.revocation = mode;
    let mut c = default_config();
    c.gateway_auth = GatewayAuth::Certificate(Arc::new(policy));
    let responder = ResponderConfig { cert: Some(gw.cert.clone()), ..Default::default() };
    let mut p = Pair::new(c, responder);
    // 2030-01-15: inside the CRL's validity, inside the certificates' (rcgen's default 1975..4096).
    p.initiator.set_unix_time(p.now, 1_894_665_600);
    p.drive_until(|p| p.events.iter().any(|(_, e)| matches!(e, Event::FetchRevocation(_))));
    let requests = p
        .events
        .iter()
        .find_map(|(_, e)| match e {
            Event::FetchRevocation(r) => Some(r.clone()),
            _ => None,
        })
        .unwrap_or_default();
    (p, requests)
}

fn asked(p: &Pair) -> Vec<Vec<String>> {
    p.events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::FetchRevocation(r) => Some(r.iter().map(|r| r.url.clone()).collect()),
            _ => None,
        })
        .collect()
}

fn answer(p: &mut Pair, crl: Option<Vec<u8>>) {
    let now = p.now;
    p.initiator.handle_revocation(now, vec![RevocationResponse { url: URL.into(), data: crl }]);
    p.drive();
}

#[test]
fn waits_for_the_crl_and_accepts_a_certificate_it_does_not_list() {
    let gw = gateway();
    let mut p = start(&gw, Revocation::Relaxed);
    assert_eq!(asked(&p), vec![vec![URL.to_string()]]);
    // Nothing happens until the CRL is there: the gateway is not trusted yet.
    assert_eq!(p.initiator.state(), State::Authenticating);
    assert!(p.session().is_none());
    assert_eq!(p.initiator.poll_timeout().map(|(_, t)| t), Some(Timer::Revocation));
    answer(&mut p, Some(crl(&gw.ca, &[4, 6])));
    assert_eq!(p.initiator.state(), State::Established, "{:?}", names(&p));
    assert!(p.timers.iter().all(|(_, t)| *t != Timer::Revocation));
}

#[test]
fn a_revoked_gateway_certificate_is_refused() {
    let gw = gateway();
    let mut p = start(&gw, Revocation::Relaxed);
    answer(&mut p, Some(crl(&gw.ca, &[5])));
    assert_eq!(closed_with(&p), CloseReason::Error(IkeError::Certificate(CertError::Revoked)));
    assert!(p.session().is_none());
    // The gateway, which has set up the SAs, hears of it (RFC 7296 §2.21.2): an INFORMATIONAL request, last.
    let last = p.sent(Dir::ToResponder).last().expect("sent something");
    assert!(last.is(crate::wire::ExchangeType::INFORMATIONAL, false), "{:?}", last.header());
}

#[test]
fn without_an_answer_the_policy_decides_after_the_timeout() {
    let gw = gateway();
    let mut relaxed = start(&gw, Revocation::Relaxed);
    relaxed.drive();
    assert_eq!(relaxed.initiator.state(), State::Established);
    let (at, _) = relaxed.timers.iter().find(|(_, t)| *t == Timer::Revocation).expect("the fetch timer fired");
    assert!(*at >= REVOCATION_FETCH_TIMEOUT && *at < REVOCATION_FETCH_TIMEOUT + Duration::from_secs(1), "{at:?}");

    let mut ifuri = start(&gw, Revocation::IfUri);
    ifuri.drive();
    assert_eq!(
        closed_with(&ifuri),
        CloseReason::Error(IkeError::Certificate(CertError::RevocationUnknown(Some(URL.into()))))
    );
    // A late answer changes nothing.
    let now = ifuri.now;
    ifuri.initiator.handle_revocation(now, vec![RevocationResponse { url: URL.into(), data: Some(crl(&gw.ca, &[])) }]);
    assert_eq!(ifuri.initiator.state(), State::Closed);
}

#[test]
fn offline_fetches_nothing() {
    let gw = gateway();
    let mut p = start(&gw, Revocation::Offline);
    p.drive();
    assert!(asked(&p).is_empty());
    assert_eq!(p.initiator.state(), State::Established);
}

#[test]
fn asks_the_ocsp_responder_too() {
    let gw = gateway_with(true);
    let (mut p, requests) = start_pair(&gw, Revocation::IfUri);
    // A CRL GET and an OCSP POST (a DER OCSPRequest with our nonce).
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!((requests[0].url.as_str(), requests[0].ocsp_request.is_none()), (URL, true));
    assert_eq!(requests[1].url, OCSP_URL);
    let body = requests[1].ocsp_request.as_deref().expect("an OCSP request");
    assert_eq!(body.first(), Some(&0x30));
    // The responder gave nothing usable, the CRL did: ifuri is satisfied by the CRL.
    let now = p.now;
    p.initiator.handle_revocation(
        now,
        vec![
            RevocationResponse { url: URL.into(), data: Some(crl(&gw.ca, &[])) },
            RevocationResponse { url: OCSP_URL.into(), data: Some(b"garbage".to_vec()) },
        ],
    );
    p.drive();
    assert_eq!(p.initiator.state(), State::Established, "{:?}", names(&p));
}

#[test]
fn a_chain_that_does_not_verify_is_not_followed_online() {
    // The gateway's certificate names a CRL, but chains to a CA we do not trust: nothing is fetched (a forged
    // certificate must not make us contact what it names), and the usual error ends the attempt.
    let gw = gateway();
    let stranger = gateway();
    let mut policy = GatewayCertPolicy::new(stranger.anchors.clone());
    policy.revocation = Revocation::IfUri;
    let mut c = default_config();
    c.gateway_auth = GatewayAuth::Certificate(Arc::new(policy));
    let mut p = Pair::new(c, ResponderConfig { cert: Some(gw.cert.clone()), ..Default::default() });
    p.initiator.set_unix_time(p.now, 1_894_665_600);
    p.drive();
    assert!(asked(&p).is_empty(), "fetched for an untrusted chain");
    // (The stranger CA has the same name as the real one: its signature is what fails.)
    let e = closed_with(&p);
    assert!(
        matches!(e, CloseReason::Error(IkeError::Certificate(CertError::BadSignature | CertError::UntrustedIssuer))),
        "{e:?}"
    );
}
