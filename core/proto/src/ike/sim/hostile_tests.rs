//! The hostile-gateway suite: an on-path attacker that answers IKE_SA_INIT before the real gateway (and so holds
//! SK_d, SK_e, SK_a and SK_p of the IKE SA), or a gateway that misbehaves after authenticating. Each test names
//! the hole of issue 10 it covers. Every `holeN_` test failed on 2dbd323, the commit before the authentication
//! gate (checked by running this file there), except the four marked "regression guard", which passed there too.

use std::sync::Arc;
use std::time::Duration;

use rand_core::SeedableRng;
use rcgen::{CertificateParams, IsCa, Issuer, KeyPair};
use zeroize::Zeroizing;

use super::responder::ResponderCert;
use super::tests::*;
use super::*;
use crate::crypto::{CertError, GatewayCertPolicy, KeyPairSigner, TrustAnchors};
use crate::eap::{EapConfig, EapCredentials, EapMethod};
use crate::ike::{AuthConfig, EspProposal, GatewayAuth, State};
use crate::wire::{Delete, ExchangeType, IdType, Identification, KePayload, Notify, NotifyType, Payload, ProtocolId};

const PASSWORD: &str = "correct horse battery staple";

/// A pair whose IKE_AUTH responses from the real responder never arrive: the test plays the gateway from
/// there on, with the IKE SA keys it got from IKE_SA_INIT. Returns once our IKE_AUTH request is out.
fn attacker_pair(config: IkeConfig) -> Pair {
    let mut p = Pair::new(config, ResponderConfig::default());
    p.set_fate(|d| {
        if d.dir == Dir::ToInitiator && d.is(ExchangeType::IKE_AUTH, true) {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    assert!(p.drive_until(|p| p.sent(Dir::ToResponder).any(|d| d.is(ExchangeType::IKE_AUTH, false))));
    // Let the responder take our IKE_AUTH request (its answer is dropped).
    p.run_until(p.elapsed() + Duration::from_millis(1));
    assert_eq!(p.initiator.state(), State::Authenticating);
    p
}

/// An EAP profile (any method), the gateway authenticating with a certificate from an empty trust store.
fn eap_config(allowed: Vec<EapMethod>, eap_only: bool) -> IkeConfig {
    let mut c = default_config();
    c.auth = AuthConfig::Eap(EapConfig {
        identity: "alice".into(),
        credentials: EapCredentials::Password { username: "alice".into(), password: Zeroizing::new(PASSWORD.into()) },
        allowed,
    });
    c.gateway_auth = GatewayAuth::Certificate(Arc::new(GatewayCertPolicy::new(TrustAnchors::new())));
    c.eap_only = eap_only;
    c
}

fn eap_request(id: u8, typ: u8, data: &[u8]) -> Vec<u8> {
    let len = (5 + data.len()) as u16;
    [&[1, id][..], &len.to_be_bytes(), &[typ], data].concat()
}

fn md5_challenge(id: u8) -> Vec<u8> {
    let mut data = vec![16];
    data.extend([0x42; 16]);
    eap_request(id, 4, &data)
}

fn mschapv2_challenge(id: u8) -> Vec<u8> {
    let mut d = vec![1, id, 0, 26, 16];
    d.extend([0x17; 16]);
    d.extend(b"gw");
    eap_request(id, 26, &d)
}

const EAP_SUCCESS: [u8; 4] = [3, 9, 0, 4];

/// The rest of the impersonation after an EAP method: EAP-Success (message 2), then IDr, AUTH keyed with SK_pr
/// (all an attacker holding the IKE SA keys can compute without an MSK) and a Child SA covering everything.
fn finish_as_attacker(p: &mut Pair) {
    let success = p.responder.seal(2, ExchangeType::IKE_AUTH, true, &[Payload::Eap(EAP_SUCCESS.to_vec())]);
    p.inject_to_initiator(&success);
    let sk_pr = p.responder.sk_pr();
    let mut fin = p.responder.identity_payloads(Some(&sk_pr));
    fin.extend(create_child(0x2000, "0.0.0.0/0"));
    let fin = p.responder.seal(3, ExchangeType::IKE_AUTH, true, &fin);
    p.inject_to_initiator(&fin);
}

/// Our IKE_AUTH requests: (message ID, inner payloads as the gateway reads them).
fn auth_requests(p: &mut Pair) -> Vec<(u32, Vec<Payload>)> {
    let msgs: Vec<(u32, Vec<u8>)> = p
        .sent(Dir::ToResponder)
        .filter(|d| d.is(ExchangeType::IKE_AUTH, false))
        .filter_map(|d| Some((d.header()?.message_id, d.ike()?.to_vec())))
        .collect();
    let mut out: Vec<(u32, Vec<Payload>)> = Vec::new();
    for (id, raw) in msgs {
        if out.iter().any(|(i, _)| *i == id) {
            continue; // a retransmission
        }
        out.push((id, p.responder.decrypt(&raw).unwrap_or_default()));
    }
    out
}

/// The EAP packets we sent to the gateway.
fn eap_sent(p: &mut Pair) -> Vec<Vec<u8>> {
    auth_requests(p)
        .into_iter()
        .flat_map(|(_, ps)| ps.into_iter())
        .filter_map(|pl| match pl {
            Payload::Eap(e) => Some(e),
            _ => None,
        })
        .collect()
}

fn answered(p: &Pair, exchange: ExchangeType) -> usize {
    p.sent(Dir::ToResponder).filter(|d| d.is(exchange, true)).count()
}

fn reached_established(p: &Pair) -> bool {
    names(p).iter().any(|n| n == "Established!" || n == "ChildSaInstalled")
}

/// A CREATE_CHILD_SA request for a new Child SA covering everything (TSr from the gateway's view is ours).
fn create_child(spi: u32, ts: &str) -> Vec<Payload> {
    vec![
        Payload::Sa(vec![EspProposal::parse("aes256gcm16").unwrap().to_wire(1, spi, false)]),
        Payload::Nonce(vec![0x33; 32]),
        Payload::TsI(vec![cidr_ts(ts)]),
        Payload::TsR(vec![cidr_ts(ts)]),
    ]
}

// Hole 1: a CREATE_CHILD_SA request while we wait for the IKE_AUTH response installed a Child SA (with TSr
// 0.0.0.0/0) from an unauthenticated SK_d; the driver then brought up the TUN and routes.
#[test]
fn hole1_child_sa_request_before_authentication_is_ignored() {
    let mut p = attacker_pair(default_config());
    let msg = p.responder.seal(0, ExchangeType::CREATE_CHILD_SA, false, &create_child(0x1000, "0.0.0.0/0"));
    p.inject_to_initiator(&msg);
    assert!(p.child().is_none(), "a Child SA from an unauthenticated peer: {:?}", names(&p));
    assert_eq!(answered(&p, ExchangeType::CREATE_CHILD_SA), 0, "no answer to an unauthenticated request");
    assert_eq!(p.initiator.state(), State::Authenticating);
    // The real gateway's answer (its retransmitted response) still completes the connection.
    p.set_fate(|_| Fate::Deliver);
    p.drive_until(|p| p.initiator.state() == State::Established);
    assert_eq!(p.initiator.state(), State::Established);
    assert_keys_match(&p);
}

// Hole 1: an INFORMATIONAL Delete from the IKE_SA_INIT peer closed the attempt.
#[test]
fn hole1_delete_before_authentication_is_ignored() {
    let mut p = attacker_pair(default_config());
    let delete = [Payload::Delete(Delete { protocol: ProtocolId::IKE, spis: vec![] })];
    let msg = p.responder.seal(0, ExchangeType::INFORMATIONAL, false, &delete);
    p.inject_to_initiator(&msg);
    assert!(p.closed().is_none(), "closed by an unauthenticated Delete: {:?}", names(&p));
    assert_eq!(answered(&p, ExchangeType::INFORMATIONAL), 0);
    assert_eq!(p.initiator.state(), State::Authenticating);
}

// Hole 1: an INFORMATIONAL REDIRECT from the IKE_SA_INIT peer sent us to the attacker's host.
#[test]
fn hole1_redirect_before_authentication_is_ignored() {
    let mut p = attacker_pair(default_config());
    let to = crate::ike::GatewayIdentity::Addr(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 66)));
    let redirect = [Payload::Notify(Notify::new(NotifyType::REDIRECT, to.encode()))];
    let msg = p.responder.seal(0, ExchangeType::INFORMATIONAL, false, &redirect);
    p.inject_to_initiator(&msg);
    assert!(p.closed().is_none(), "redirected by an unauthenticated peer: {:?}", names(&p));
    assert_eq!(answered(&p, ExchangeType::INFORMATIONAL), 0);
}

// Hole 1 (neighbours): no unsolicited request of any exchange type is answered or acted on before the gateway
// authenticated, whatever its message ID.
#[test]
fn hole1_unsolicited_requests_before_authentication_get_no_answer() {
    let mut p = attacker_pair(default_config());
    for (id, exchange) in [
        (0, ExchangeType::INFORMATIONAL),
        (0, ExchangeType::IKE_AUTH),
        (1, ExchangeType::INFORMATIONAL),
        (7, ExchangeType::CREATE_CHILD_SA),
    ] {
        let msg = p.responder.seal(id, exchange, false, &[]);
        p.inject_to_initiator(&msg);
    }
    let sent_responses = p.sent(Dir::ToResponder).filter(|d| d.header().is_some_and(|h| h.flags.response)).count();
    assert_eq!(sent_responses, 0);
    assert_eq!(names(&p), ["Authenticating"]);
}

// Hole 2: a first IKE_AUTH response with only an EAP-MD5 request (no IDr, no AUTH) skipped the gateway check;
// MD5 has no MSK, so the attacker could finish with AUTH keyed by SK_pr and became "the gateway". On the way
// it learnt MD5(id || password || challenge) for an offline dictionary attack.
#[test]
fn hole2_eap_md5_without_gateway_auth_cannot_impersonate() {
    let mut p = attacker_pair(eap_config(vec![], false));
    let msg = p.responder.seal(1, ExchangeType::IKE_AUTH, true, &[Payload::Eap(md5_challenge(1))]);
    p.inject_to_initiator(&msg);
    // Play on as the attacker would: EAP-Success, then AUTH keyed with SK_pr.
    finish_as_attacker(&mut p);
    assert!(!reached_established(&p), "impersonated: {:?}", names(&p));
    assert!(eap_sent(&mut p).is_empty(), "no EAP response (no credential) to an unauthenticated peer");
    assert!(
        matches!(p.closed(), Some((_, CloseReason::Error(IkeError::GatewayNotAuthenticated(_))))),
        "{:?}",
        names(&p)
    );
}

// Hole 3: the same gap with EAP-MSCHAPv2 sent the user's NT-Response (crackable to the NT hash).
#[test]
fn hole3_mschapv2_challenge_without_gateway_auth_gets_no_nt_response() {
    let mut p = attacker_pair(eap_config(vec![EapMethod::MsChapV2], false));
    let msg = p.responder.seal(1, ExchangeType::IKE_AUTH, true, &[Payload::Eap(mschapv2_challenge(1))]);
    p.inject_to_initiator(&msg);
    assert!(eap_sent(&mut p).is_empty(), "NT-Response sent to an unauthenticated peer");
    assert!(
        matches!(p.closed(), Some((_, CloseReason::Error(IkeError::GatewayNotAuthenticated(_))))),
        "{:?}",
        names(&p)
    );
    // An IDr alone (no AUTH) does not count either.
    let mut p = attacker_pair(eap_config(vec![EapMethod::MsChapV2], false));
    let idr = Payload::IdR(fqdn("gw.example.net"));
    let msg = p.responder.seal(1, ExchangeType::IKE_AUTH, true, &[idr, Payload::Eap(mschapv2_challenge(1))]);
    p.inject_to_initiator(&msg);
    assert!(eap_sent(&mut p).is_empty());
    assert!(p.closed().is_some());
}

// Hole 4: with `eap_only` (RFC 5998) a method that does not authenticate the gateway (MD5) reached Established.
#[test]
fn hole4_eap_only_refuses_methods_without_mutual_keys() {
    for allowed in [vec![], vec![EapMethod::Md5]] {
        let mut p = attacker_pair(eap_config(allowed.clone(), true));
        let idr = Payload::IdR(fqdn("gw.example.net"));
        let msg = p.responder.seal(1, ExchangeType::IKE_AUTH, true, &[idr, Payload::Eap(md5_challenge(1))]);
        p.inject_to_initiator(&msg);
        finish_as_attacker(&mut p);
        assert!(!reached_established(&p), "{allowed:?}: {:?}", names(&p));
        // No MD5 response left: at most a Nak proposing a mutual method.
        for e in eap_sent(&mut p) {
            assert_eq!(e.get(4), Some(&3), "{allowed:?}: only a Nak, got {e:?}");
            assert!(!e[5..].contains(&4), "{allowed:?}: MD5 proposed in {e:?}");
        }
        assert!(p.closed().is_some(), "{allowed:?}");
    }
}

// Hole 2 (neighbour; regression guard): EAP-Success before the method finished is no success.
#[test]
fn hole2_eap_success_before_the_method_finished_is_refused() {
    let mut p = attacker_pair(eap_config(vec![], true));
    let idr = Payload::IdR(fqdn("gw.example.net"));
    let msg = p.responder.seal(1, ExchangeType::IKE_AUTH, true, &[idr, Payload::Eap(mschapv2_challenge(1))]);
    p.inject_to_initiator(&msg);
    let success = p.responder.seal(2, ExchangeType::IKE_AUTH, true, &[Payload::Eap(EAP_SUCCESS.to_vec())]);
    p.inject_to_initiator(&success);
    assert!(!reached_established(&p));
    assert!(matches!(p.closed(), Some((_, CloseReason::Error(IkeError::Eap(_))))), "{:?}", names(&p));
    // Only our MSCHAPv2 response went out (no AUTH after a premature success).
    assert_eq!(auth_requests(&mut p).len(), 2);
}

// Hole 2 (neighbour): the gateway may not switch EAP methods or change its IDr mid-way.
#[test]
fn hole2_eap_method_switch_and_idr_change_are_refused() {
    let mut p = attacker_pair(eap_config(vec![], true));
    let idr = Payload::IdR(fqdn("gw.example.net"));
    let msg = p.responder.seal(1, ExchangeType::IKE_AUTH, true, &[idr, Payload::Eap(mschapv2_challenge(1))]);
    p.inject_to_initiator(&msg);
    let msg = p.responder.seal(2, ExchangeType::IKE_AUTH, true, &[Payload::Eap(eap_request(2, 13, &[0x20]))]);
    p.inject_to_initiator(&msg);
    assert!(matches!(p.closed(), Some((_, CloseReason::Error(IkeError::Eap(_))))), "{:?}", names(&p));

    let mut p = attacker_pair(eap_config(vec![], true));
    let idr = Payload::IdR(fqdn("gw.example.net"));
    let msg = p.responder.seal(1, ExchangeType::IKE_AUTH, true, &[idr, Payload::Eap(mschapv2_challenge(1))]);
    p.inject_to_initiator(&msg);
    let other = Payload::IdR(fqdn("other.example.net"));
    let msg = p.responder.seal(2, ExchangeType::IKE_AUTH, true, &[other, Payload::Eap(md5_challenge(2))]);
    p.inject_to_initiator(&msg);
    assert!(matches!(p.closed(), Some((_, CloseReason::Error(IkeError::Protocol(_))))), "{:?}", names(&p));
}

/// A CA and a gateway certificate for `names`, with the policy trusting the CA.
fn pki(names: &[&str]) -> (GatewayCertPolicy, ResponderCert) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_der = ca_params.self_signed(&ca_key).unwrap().der().to_vec();
    let ca = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    let der = params.signed_by(&key, &ca).unwrap().der().to_vec();
    let signer = Arc::new(KeyPairSigner::from_pkcs8_der(&key.serialize_der()).unwrap());
    let policy = GatewayCertPolicy::new(TrustAnchors::from_der([ca_der.as_slice()]).unwrap());
    (policy, ResponderCert(der, signer))
}

fn cert_pair(names: &[&str], remote_id: Option<Identification>, loose: bool) -> Pair {
    let (policy, cert) = pki(names);
    let mut c = default_config();
    c.gateway_auth = GatewayAuth::Certificate(Arc::new(policy));
    c.remote_id = remote_id;
    c.remote_id_loose = loose;
    c.send_remote_id = false;
    let responder = ResponderConfig { cert: Some(cert), id: fqdn("gw.example.net"), ..Default::default() };
    let mut p = Pair::new(c, responder);
    p.initiator.set_unix_time(p.now, 1_894_665_600);
    p.drive();
    p
}

// Hole 5: without `gateway.id` any certificate from a trusted CA was accepted under any name. The profile now
// expects the gateway's address (see profile tests); here the IKE SA's side of that rule: the IDr may differ,
// but the certificate must name the expected identity.
#[test]
fn hole5_certificate_must_name_the_expected_identity() {
    let vpn = || Some(fqdn("vpn.example.com"));
    // The gateway presents a valid certificate, for another name than the one we expect.
    let p = cert_pair(&["gw.example.net"], vpn(), true);
    assert!(matches!(closed_with(&p), CloseReason::Error(IkeError::Certificate(CertError::IdentityMismatch { .. }))));
    // Its certificate names both: fine, whatever its IDr.
    let p = cert_pair(&["gw.example.net", "vpn.example.com"], vpn(), true);
    assert_eq!(p.initiator.state(), State::Established, "{:?}", names(&p));
    // An IP address as the expected identity: the certificate's iPAddress.
    let ip = Identification { id_type: IdType::ID_IPV4_ADDR, data: vec![203, 0, 113, 1] };
    let p = cert_pair(&["gw.example.net", "203.0.113.1"], Some(ip.clone()), true);
    assert_eq!(p.initiator.state(), State::Established, "{:?}", names(&p));
    let p = cert_pair(&["gw.example.net", "203.0.113.9"], Some(ip), true);
    assert!(matches!(closed_with(&p), CloseReason::Error(IkeError::Certificate(_))));
    // A strict gateway.id: the IDr itself must match.
    let p = cert_pair(&["gw.example.net", "vpn.example.com"], vpn(), false);
    assert!(matches!(closed_with(&p), CloseReason::Error(IkeError::IdentityMismatch { .. })));
    // A CERT chain for another name than its IDr.
    let p = cert_pair(&["other.example.net"], None, false);
    assert!(matches!(closed_with(&p), CloseReason::Error(IkeError::Certificate(CertError::IdentityMismatch { .. }))));
}

/// The message ID of our last CREATE_CHILD_SA request.
fn last_create_child_id(p: &Pair) -> u32 {
    p.sent(Dir::ToResponder)
        .filter(|d| d.is(ExchangeType::CREATE_CHILD_SA, false))
        .filter_map(|d| d.header())
        .map(|h| h.message_id)
        .last()
        .expect("a CREATE_CHILD_SA request")
}

fn children(p: &Pair) -> Vec<&ChildSa> {
    p.events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::ChildSaInstalled(c) => Some(c),
            _ => None,
        })
        .collect()
}

// Hole 6: a Child SA rekey response could widen the traffic selectors (they feed the data path's filters).
#[test]
fn hole6_rekey_response_cannot_widen_selectors() {
    let mut c = default_config();
    c.child_lifetime = Some(Duration::from_secs(60));
    let mut p = Pair::new(c, ResponderConfig::default());
    assert!(p.drive_until(|p| p.child().is_some()));
    let (first_i, first_r) = (p.child().unwrap().ts_i.clone(), p.child().unwrap().ts_r.clone());
    assert_eq!(first_r, vec![cidr_ts("198.51.100.0/24")]);
    // The gateway's own answer to our rekey is replaced by one with 0.0.0.0/0 on both sides.
    p.set_fate(|d| {
        if d.dir == Dir::ToInitiator && d.is(ExchangeType::CREATE_CHILD_SA, true) {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    assert!(p.drive_until(|p| p.sent(Dir::ToResponder).any(|d| d.is(ExchangeType::CREATE_CHILD_SA, false))));
    let id = last_create_child_id(&p);
    let reply = p.responder.seal(id, ExchangeType::CREATE_CHILD_SA, true, &create_child(0x3000, "0.0.0.0/0"));
    p.inject_to_initiator(&reply);
    for c in children(&p) {
        assert!(c.ts_r.iter().all(|t| first_r.iter().any(|f| crate::ike::ts::ts_subset(t, f))), "{:?}", c.ts_r);
        assert!(c.ts_i.iter().all(|t| first_i.iter().any(|f| crate::ike::ts::ts_subset(t, f))), "{:?}", c.ts_i);
    }
    assert!(matches!(p.closed(), Some((_, CloseReason::Error(IkeError::TsUnacceptable)))), "{:?}", names(&p));
}

// Hole 6: a Child SA the gateway creates anew (after deleting ours) was checked against what we proposed
// (0.0.0.0/0), not what IKE_AUTH agreed.
#[test]
fn hole6_gateway_created_child_cannot_widen_selectors() {
    let mut p = established_pair(default_config(), ResponderConfig::default());
    p.responder.send_delete_child();
    p.run_until(p.elapsed() + Duration::from_millis(1));
    assert!(names(&p).contains(&"ChildSaDeleted".to_string()));
    let before = children(&p).len();
    // Message ID 1: the Delete was the gateway's request 0.
    let msg = p.responder.seal(1, ExchangeType::CREATE_CHILD_SA, false, &create_child(0x4000, "0.0.0.0/0"));
    p.inject_to_initiator(&msg);
    assert_eq!(children(&p).len(), before, "a wider Child SA was installed");
    // Within what IKE_AUTH agreed: accepted.
    let vip = format!("{}/32", p.session().unwrap().config.ipv4.unwrap());
    let mut ok = create_child(0x4001, "198.51.100.0/24");
    ok[3] = Payload::TsR(vec![cidr_ts(&vip)]);
    let msg = p.responder.seal(2, ExchangeType::CREATE_CHILD_SA, false, &ok);
    p.inject_to_initiator(&msg);
    assert_eq!(children(&p).len(), before + 1, "{:?}", names(&p));
}

/// An unauthenticated IKE_SA_INIT response with one notify, for our SPI.
fn forged_init(p: &Pair, t: NotifyType, data: Vec<u8>) -> Vec<u8> {
    let h = crate::ike::sa::ike_header(p.initiator.spi_i(), 0, ExchangeType::IKE_SA_INIT, false, true, 0);
    crate::wire::Message { header: h, payloads: vec![Payload::Notify(Notify::new(t, data))] }.encode()
}

// Hole 8: one forged, unauthenticated IKE_SA_INIT error (or a bad COOKIE, or INVALID_KE_PAYLOAD for a group we
// do not have) ended the attempt at once; the real answer that followed was ignored.
#[test]
fn hole8_forged_init_errors_do_not_end_the_attempt() {
    for (t, data) in [
        (NotifyType::NO_PROPOSAL_CHOSEN, vec![]),
        (NotifyType::AUTHENTICATION_FAILED, vec![]),
        (NotifyType::COOKIE, vec![]),
        (NotifyType::INVALID_KE_PAYLOAD, 15u16.to_be_bytes().to_vec()),
    ] {
        let mut p = Pair::new(default_config(), ResponderConfig::default());
        p.latency = Duration::from_millis(20);
        p.collect();
        let forged = forged_init(&p, t, data);
        p.inject_to_initiator(&forged);
        assert!(p.closed().is_none(), "{t:?}: closed by a forged notify");
        p.drive_until(|p| p.initiator.state() == State::Established);
        assert_eq!(p.initiator.state(), State::Established, "{t:?}: {:?}", names(&p));
    }
}

// Hole 8 (the other half; regression guard): when only errors come back, the error is reported, not a timeout.
#[test]
fn hole8_repeated_init_errors_are_reported() {
    let responder = ResponderConfig { silent: true, ..Default::default() };
    let mut p = Pair::new(default_config(), responder);
    p.collect();
    let forged = forged_init(&p, NotifyType::NO_PROPOSAL_CHOSEN, vec![]);
    p.inject_to_initiator(&forged);
    p.drive();
    assert_eq!(closed_with(&p), CloseReason::Error(IkeError::NoProposalChosen));
}

// Hole 9: the gateway's AUTH method 1 (RSA PKCS#1 with SHA-1) was accepted although we announced SHA-2 only.
#[test]
fn hole9_rsa_sha1_auth_is_refused_unless_legacy() {
    let (policy, cert) = pki(&["gw.example.net"]);
    let mut c = default_config();
    c.gateway_auth = GatewayAuth::Certificate(Arc::new(policy));
    let mut p = attacker_pair(c);
    p.initiator.set_unix_time(p.now, 1_894_665_600);
    let auth = crate::wire::AuthPayload { method: crate::wire::AuthMethod::RSA_SIG, data: vec![0; 256] };
    let cert = crate::wire::CertPayload { encoding: crate::wire::cert_encoding::X509_SIGNATURE, data: cert.0 };
    let mut reply = vec![Payload::IdR(fqdn("gw.example.net")), Payload::Cert(cert), Payload::Auth(auth)];
    reply.extend(create_child(0x5000, "198.51.100.0/24"));
    let msg = p.responder.seal(1, ExchangeType::IKE_AUTH, true, &reply);
    p.inject_to_initiator(&msg);
    match p.closed() {
        Some((_, CloseReason::Error(IkeError::Protocol(why)))) => assert!(why.contains("SHA-1"), "{why}"),
        other => panic!("{other:?}"),
    }
}

/// An established pair and the gateway's CREATE_CHILD_SA request rekeying our Child SA with `sa` and `ke`.
fn gateway_rekey(sa: crate::wire::Proposal, ke: Option<KePayload>) -> Pair {
    let mut p = established_pair(default_config(), ResponderConfig::default());
    let c = p.child().unwrap();
    let (spi_out, ts_i, ts_r) = (c.outbound.spi, c.ts_i.clone(), c.ts_r.clone());
    let mut payloads = vec![
        Payload::Notify(Notify {
            protocol: ProtocolId::ESP.0,
            spi: spi_out.to_be_bytes().to_vec(),
            notify_type: NotifyType::REKEY_SA,
            data: vec![],
        }),
        Payload::Sa(vec![sa]),
        Payload::Nonce(vec![0x44; 32]),
    ];
    payloads.extend(ke.map(Payload::Ke));
    payloads.push(Payload::TsI(ts_r));
    payloads.push(Payload::TsR(ts_i));
    let msg = p.responder.seal(0, ExchangeType::CREATE_CHILD_SA, false, &payloads);
    p.inject_to_initiator(&msg);
    p
}

/// Our answer to the gateway's last request.
fn last_answer(p: &mut Pair) -> Vec<Payload> {
    let raw = p.sent(Dir::ToResponder).filter(|d| d.header().is_some_and(|h| h.flags.response)).last().unwrap();
    let raw = raw.ike().unwrap().to_vec();
    p.responder.decrypt(&raw).unwrap()
}

fn has_notify(payloads: &[Payload], t: NotifyType) -> bool {
    payloads.iter().any(|p| matches!(p, Payload::Notify(n) if n.notify_type == t))
}

// Hole 9: a reserved ESP SPI (0, or below 256) in a gateway-initiated CREATE_CHILD_SA was taken.
#[test]
fn hole9_reserved_spi_in_gateway_rekey_is_refused() {
    for spi in [0u32, 5, 255] {
        let sa = EspProposal::parse("aes256gcm16").unwrap().to_wire(1, spi, false);
        let mut p = gateway_rekey(sa, None);
        assert_eq!(children(&p).len(), 1, "SPI {spi} installed");
        assert!(has_notify(&last_answer(&mut p), NotifyType::NO_PROPOSAL_CHOSEN), "SPI {spi}");
    }
}

// Hole 9: a PFS group was accepted in a gateway rekey although our proposals list none.
#[test]
fn hole9_pfs_group_we_did_not_offer_is_refused() {
    let sa = EspProposal::parse("aes256gcm16-ecp256").unwrap().to_wire(1, 0x6000, true);
    let ke = crate::crypto::KeyExchange::generate(
        crate::crypto::Group::Ecp256,
        &mut rand_chacha::ChaCha20Rng::from_seed([7; 32]),
    )
    .unwrap();
    let ke = KePayload { group: 19, data: ke.public_value().to_vec() };
    let mut p = gateway_rekey(sa, Some(ke));
    assert_eq!(children(&p).len(), 1, "rekeyed with a group we never offered");
    assert!(has_notify(&last_answer(&mut p), NotifyType::NO_PROPOSAL_CHOSEN));
}

// Hole 9: our cached response was resent for any copy of the last request's header, authenticated or not.
#[test]
fn hole9_cached_response_only_for_authentic_retransmissions() {
    let mut p = established_pair(default_config(), ResponderConfig::default());
    p.responder.send_dpd();
    p.run_until(p.elapsed() + Duration::from_millis(1));
    assert_eq!(answered(&p, ExchangeType::INFORMATIONAL), 1);
    let mut copy = p.responder.outstanding_request().remove(0);
    let last = copy.len() - 1;
    copy[last] ^= 1; // broken ICV
    p.inject_to_initiator(&copy);
    assert_eq!(answered(&p, ExchangeType::INFORMATIONAL), 1, "answered a forged retransmission");
    // The authentic retransmission is answered again.
    p.responder.retransmit_request();
    p.run_until(p.elapsed() + Duration::from_millis(1));
    assert_eq!(answered(&p, ExchangeType::INFORMATIONAL), 2);
}

// Neighbours (regression guard): a replayed IKE_AUTH response, a response with a wrong message ID, and one with the wrong SPIs
// change nothing once established.
#[test]
fn replayed_and_misaddressed_responses_change_nothing() {
    let mut p = established_pair(default_config(), ResponderConfig::default());
    let auth_resp = p.log.iter().find(|d| d.dir == Dir::ToInitiator && d.is(ExchangeType::IKE_AUTH, true)).unwrap();
    let auth_resp = auth_resp.ike().unwrap().to_vec();
    let before = names(&p);
    p.inject_to_initiator(&auth_resp);
    let wrong_id = p.responder.seal(9, ExchangeType::INFORMATIONAL, true, &[]);
    p.inject_to_initiator(&wrong_id);
    let mut wrong_spi = p.responder.seal(0, ExchangeType::INFORMATIONAL, false, &[]);
    wrong_spi[8] ^= 0xff; // SPIr
    p.inject_to_initiator(&wrong_spi);
    assert_eq!(names(&p), before);
    assert_eq!(p.initiator.state(), State::Established);
}

// Neighbour (regression guard): AUTH keyed with SK_pr (what an attacker holding the IKE SA keys can compute) instead of the PSK.
#[test]
fn auth_keyed_with_sk_pr_is_refused() {
    let mut p = attacker_pair(default_config());
    let sk_pr = p.responder.sk_pr();
    let mut reply = p.responder.identity_payloads(Some(&sk_pr));
    reply.extend(create_child(0x7000, "198.51.100.0/24"));
    let msg = p.responder.seal(1, ExchangeType::IKE_AUTH, true, &reply);
    p.inject_to_initiator(&msg);
    assert!(!reached_established(&p));
    assert_eq!(closed_with(&p), CloseReason::Error(IkeError::PeerAuthenticationFailed));
}
