//! IKEv2 Redirect (RFC 5685) against the simulated gateway: in IKE_SA_INIT, in IKE_AUTH and in an active
//! session, and the notifications we send.

use super::tests::*;
use super::*;
use crate::ike::{GatewayIdentity, State};
use crate::wire::{Delete, ExchangeType, Notify, NotifyType, Payload, ProtocolId};

fn to() -> GatewayIdentity {
    GatewayIdentity::Addr("203.0.113.3".parse().unwrap())
}

/// The notify types of our first IKE_SA_INIT request.
fn init_notifies(p: &Pair) -> Vec<NotifyType> {
    let init = requests(p, ExchangeType::IKE_SA_INIT);
    let msg = init.first().expect("an IKE_SA_INIT request").message().expect("parses");
    msg.payloads
        .iter()
        .filter_map(|p| match p {
            Payload::Notify(n) => Some(n.notify_type),
            _ => None,
        })
        .collect()
}

#[test]
fn we_announce_redirect_support_or_where_we_come_from() {
    let p = established_pair(default_config(), ResponderConfig::default());
    let n = init_notifies(&p);
    assert!(n.contains(&NotifyType::REDIRECT_SUPPORTED) && !n.contains(&NotifyType::REDIRECTED_FROM), "{n:?}");

    let mut c = default_config();
    c.redirected_from = Some("203.0.113.2".parse().unwrap());
    let p = established_pair(c, ResponderConfig::default());
    let init = requests(&p, ExchangeType::IKE_SA_INIT);
    let msg = init[0].message().unwrap();
    let from = msg.payloads.iter().find_map(|p| match p {
        Payload::Notify(n) if n.notify_type == NotifyType::REDIRECTED_FROM => Some(n.data.clone()),
        _ => None,
    });
    assert_eq!(from, Some(vec![1, 4, 203, 0, 113, 2]), "REDIRECTED_FROM with the original gateway (§4)");
    assert!(!init_notifies(&p).contains(&NotifyType::REDIRECT_SUPPORTED));

    let mut c = default_config();
    c.redirect = false;
    let p = established_pair(c, ResponderConfig::default());
    let n = init_notifies(&p);
    assert!(!n.contains(&NotifyType::REDIRECT_SUPPORTED) && !n.contains(&NotifyType::REDIRECTED_FROM));
}

#[test]
fn redirect_in_ike_sa_init() {
    let responder = ResponderConfig { redirect_init: Some(to()), ..Default::default() };
    let mut p = Pair::new(default_config(), responder);
    p.drive();
    assert_eq!(closed_with(&p), CloseReason::Redirected(to()));
    assert_eq!(requests(&p, ExchangeType::IKE_AUTH).len(), 0, "no IKE_AUTH with the redirecting gateway");
    assert_eq!(p.elapsed(), Duration::ZERO);
}

#[test]
fn redirect_in_ike_sa_init_with_a_wrong_nonce_is_ignored() {
    // An off-path attacker does not know our Ni: its REDIRECT is dropped and we keep waiting (then time out).
    let responder =
        ResponderConfig { redirect_init: Some(to()), redirect_nonce: Some(vec![0; 32]), ..Default::default() };
    let mut p = Pair::new(default_config(), responder);
    p.drive();
    assert!(matches!(closed_with(&p), CloseReason::Error(IkeError::Timeout { .. })), "{:?}", p.events);
}

#[test]
fn redirect_when_not_announced_is_ignored() {
    let mut c = default_config();
    c.redirect = false;
    let responder = ResponderConfig { redirect_init: Some(to()), ..Default::default() };
    let mut p = Pair::new(c, responder);
    p.drive();
    assert!(matches!(closed_with(&p), CloseReason::Error(IkeError::Timeout { .. })), "{:?}", p.events);
}

#[test]
fn redirect_in_ike_auth_deletes_the_ike_sa() {
    let fqdn = GatewayIdentity::Fqdn("vpn2.example.net".into());
    let responder = ResponderConfig { redirect_auth: Some(fqdn.clone()), ..Default::default() };
    let mut p = Pair::new(default_config(), responder);
    p.drive();
    assert_eq!(closed_with(&p), CloseReason::Redirected(fqdn));
    // No Child SA was installed; the IKE SA the gateway has is deleted (RFC 5685 §6).
    assert!(!names(&p).iter().any(|n| n == "ChildSaInstalled" || n == "Established!"), "{:?}", names(&p));
    let (_, last) = p.responder.requests.last().expect("the gateway got our Delete");
    assert_eq!(last, &vec![Payload::Delete(Delete { protocol: ProtocolId::IKE, spis: vec![] })]);
    assert!(p.responder.sa_dead());
}

#[test]
fn redirect_in_an_active_session() {
    let mut p = established_pair(default_config(), ResponderConfig::default());
    p.responder.send_informational(vec![Payload::Notify(Notify::new(NotifyType::REDIRECT, to().encode()))]);
    p.drive();
    assert_eq!(closed_with(&p), CloseReason::Redirected(to()));
    // We answered the INFORMATIONAL (empty), then deleted the IKE SA (RFC 5685 §5).
    let (_, answer, _) = p.responder.responses.last().expect("answered");
    assert!(answer.is_empty(), "{answer:?}");
    let (_, last) = p.responder.requests.last().expect("the gateway got our Delete");
    assert_eq!(last, &vec![Payload::Delete(Delete { protocol: ProtocolId::IKE, spis: vec![] })]);
    assert_eq!(
        names(&p)[HAPPY.len()..],
        ["Closing", "ChildSaDeleted", "Closed", "Closed(Redirected(Addr(203.0.113.3)))"]
    );
}

#[test]
fn malformed_redirect_in_an_active_session_is_ignored() {
    let mut p = established_pair(default_config(), ResponderConfig::default());
    p.responder.send_informational(vec![Payload::Notify(Notify::new(NotifyType::REDIRECT, vec![9, 1, 0]))]);
    p.drive();
    assert_eq!(p.initiator.state(), State::Established);
    assert!(p.closed().is_none());
}
