//! Post-quantum hybrids against the simulated responder: additional key exchanges in IKE_INTERMEDIATE
//! (RFC 9242, RFC 9370 §2.2.1) with IntAuth in both AUTH payloads, IKE_FOLLOWUP_KE in rekeys (RFC 9370 §2.2.4),
//! the `pq_fallback` policy and postquantum preshared keys (RFC 8784). The hostile cases: a gateway that
//! answers the additional key exchange wrongly or signs another IntAuth is refused before anything is installed.

use std::time::Duration;

use zeroize::Zeroizing;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::responder::cidr_ts;
use super::tests::{assert_keys_match, closed_with, config, established_pair, requests};
use super::{Dir, Event, Pair, ResponderConfig};
use crate::crypto::{Group, KeyExchange};
use crate::ike::proposal::{EspProposal, IkeProposal};
use crate::ike::{IkeConfig, IkeError, Ppk, PpkStatus, State};
use crate::wire::{ExchangeType, KePayload, Notify, NotifyType, Payload, ProtocolId, TransformType};

const HYBRID: &str = "aes256gcm16-prfsha256-x25519-ke1_mlkem768";

fn responder(ike: &str, esp: &str) -> ResponderConfig {
    ResponderConfig {
        ike_proposals: vec![IkeProposal::parse(ike).expect("IKE proposal")],
        esp_proposals: vec![EspProposal::parse(esp).expect("ESP proposal")],
        fragmentation: true,
        ..ResponderConfig::default()
    }
}

fn error_of(p: &Pair) -> IkeError {
    closed_with(p).error().cloned().expect("closed with an error")
}

/// Nothing was installed or established: the gateway's answers were refused before IKE_AUTH completed.
fn nothing_acted_on(p: &Pair) {
    assert!(p.session().is_none(), "established");
    assert!(p.child().is_none(), "a Child SA was installed");
}

/// The latest Child SA of both sides agrees (after rekeys).
fn assert_latest_keys_match(p: &Pair) {
    let ours = p
        .events
        .iter()
        .rev()
        .find_map(|(_, e)| match e {
            Event::ChildSaInstalled(c) => Some(c),
            _ => None,
        })
        .expect("a Child SA");
    let theirs = p.responder.child.as_ref().expect("the responder has a Child SA");
    assert_eq!(ours.inbound.spi, theirs.outbound.spi);
    assert_eq!(ours.outbound.spi, theirs.inbound.spi);
    assert_eq!(*ours.inbound.enc_key, *theirs.outbound.enc_key);
    assert_eq!(*ours.outbound.enc_key, *theirs.inbound.enc_key);
}

#[test]
fn x25519_mlkem768_end_to_end_with_rekeys() {
    let esp = "aes256gcm16-x25519-ke1_mlkem768";
    let mut c = config(HYBRID, esp);
    c.child_lifetime = Some(Duration::from_secs(100));
    c.ike_lifetime = Some(Duration::from_secs(250));
    // The 1184-byte encapsulation key does not fit a 1000-byte path: RFC 7383 fragments.
    c.fragment_mtu = 1000;
    let mut p = Pair::new(c, responder(HYBRID, esp));
    p.run_until(Duration::from_secs(10));
    assert_eq!(p.initiator.state(), State::Established, "{:?}", p.events);
    let info = p.session().expect("established").clone();
    assert_eq!(info.ike_suite.addke[0], Some(Group::MlKem768));
    assert_eq!(info.ike_suite.to_string(), "aes256gcm16-prfsha256-x25519-ke1_mlkem768");
    assert!(!info.pq_fallback);
    assert_eq!(p.responder.intermediate_exchanges, 1);
    // One IKE_INTERMEDIATE (message ID 1, fragmented: the encapsulation key is 1184 bytes), then IKE_AUTH (2).
    let inter = requests(&p, ExchangeType::IKE_INTERMEDIATE);
    assert!(inter.len() > 1 && inter.iter().all(|d| d.header().unwrap().message_id == 1 && d.skf().is_some()));
    assert!(requests(&p, ExchangeType::IKE_AUTH).iter().all(|d| d.header().unwrap().message_id == 2));
    assert_eq!(p.responder.peer_auth_ok, Some(true));
    assert_keys_match(&p);

    // Child SA rekeys (CREATE_CHILD_SA with x25519, ML-KEM in IKE_FOLLOWUP_KE) and an IKE SA rekey.
    let spis = p.responder.spis();
    p.run_until(Duration::from_secs(300));
    assert_eq!(p.initiator.state(), State::Established, "{:?}", p.events);
    assert!(p.responder.rekeys >= 3, "rekeys: {}", p.responder.rekeys);
    assert!(p.responder.followups >= 3, "followups: {}", p.responder.followups);
    assert_ne!(p.responder.spis(), spis, "the IKE SA was rekeyed");
    assert_latest_keys_match(&p);
    assert!(requests(&p, ExchangeType::IKE_FOLLOWUP_KE).len() >= 3);
    // The rekeyed IKE SA works: a liveness check on it is answered.
    let answered = p.responder.responses.len();
    p.responder.send_dpd();
    p.run_until(Duration::from_secs(301));
    assert_eq!(p.responder.responses.len(), answered + 1);
    assert!(p.responder.errors.is_empty(), "{:?}", p.responder.errors);
}

#[test]
fn x25519_ecp384_modp3072_three_key_exchanges() {
    let ike = "aes256gcm16-prfsha256-x25519-ke1_ecp384-ke2_modp3072";
    let p = established_pair(config(ike, "aes256gcm16"), responder(ike, "aes256gcm16"));
    let info = p.session().unwrap();
    assert_eq!(info.ike_suite.addke[..2], [Some(Group::Ecp384), Some(Group::Modp3072)]);
    assert_eq!(p.responder.intermediate_exchanges, 2);
    let ids: Vec<u32> =
        requests(&p, ExchangeType::IKE_INTERMEDIATE).iter().map(|d| d.header().unwrap().message_id).collect();
    assert_eq!(ids, [1, 2]);
    assert_keys_match(&p);
    assert!(p.responder.errors.is_empty(), "{:?}", p.responder.errors);
}

/// INVALID_KE_PAYLOAD in IKE_SA_INIT concerns the first key exchange; the additional ones follow as chosen.
#[test]
fn invalid_ke_payload_then_additional_key_exchange() {
    let ike = "aes256gcm16-prfsha256-x25519-ecp256-ke1_mlkem768";
    let mut r = responder(ike, "aes256gcm16");
    r.required_group = Some(Group::Ecp256);
    let p = established_pair(config(ike, "aes256gcm16"), r);
    let info = p.session().unwrap();
    assert_eq!((info.ike_suite.group, info.ike_suite.addke[0]), (Group::Ecp256, Some(Group::MlKem768)));
    assert_eq!(requests(&p, ExchangeType::IKE_SA_INIT).len(), 2);
    assert_keys_match(&p);
}

/// INVALID_KE_PAYLOAD for the additional key exchange itself: its method was agreed, so nothing can be retried.
#[test]
fn hostile_invalid_ke_payload_in_intermediate_is_refused() {
    let mut r = responder(HYBRID, "aes256gcm16");
    r.intermediate_invalid_ke = true;
    let mut p = Pair::new(config(HYBRID, "aes256gcm16"), r);
    p.drive();
    assert!(matches!(error_of(&p), IkeError::Protocol(m) if m.contains("INVALID_KE_PAYLOAD")));
    nothing_acted_on(&p);
}

#[test]
fn hostile_intermediate_with_wrong_ke_group_is_refused() {
    let mut r = responder(HYBRID, "aes256gcm16");
    r.intermediate_ke_group = Some(Group::Ecp256.id());
    let mut p = Pair::new(config(HYBRID, "aes256gcm16"), r);
    p.drive();
    assert!(matches!(error_of(&p), IkeError::Protocol(m) if m.contains("not the chosen additional method")));
    nothing_acted_on(&p);
    assert!(requests(&p, ExchangeType::IKE_AUTH).is_empty(), "no credential of ours went out");
}

#[test]
fn hostile_intermediate_without_ke_is_refused() {
    let mut r = responder(HYBRID, "aes256gcm16");
    r.intermediate_omit_ke = true;
    let mut p = Pair::new(config(HYBRID, "aes256gcm16"), r);
    p.drive();
    assert!(matches!(error_of(&p), IkeError::Protocol(m) if m.contains("lacks KE")));
    nothing_acted_on(&p);
}

/// A gateway whose AUTH covers another IntAuth (RFC 9242 §3.3): the IKE_INTERMEDIATE messages were not the
/// ones it saw, so it is refused, and nothing it sent is acted on.
#[test]
fn hostile_auth_over_another_int_auth_is_refused() {
    let mut r = responder(HYBRID, "aes256gcm16");
    r.tamper_int_auth = true;
    let mut p = Pair::new(config(HYBRID, "aes256gcm16"), r);
    p.drive();
    assert_eq!(error_of(&p), IkeError::PeerAuthenticationFailed);
    assert_eq!(p.responder.peer_auth_ok, Some(true), "our own AUTH with IntAuth verified at the responder");
    nothing_acted_on(&p);
}

/// A tampered IKE_INTERMEDIATE request is caught by the responder's IntAuth check: our AUTH does not verify.
#[test]
fn int_auth_covers_the_intermediate_messages() {
    let c = config(HYBRID, "aes256gcm16");
    let mut p = Pair::new(c, responder(HYBRID, "aes256gcm16"));
    p.drive();
    // Both sides' IntAuth agreed: without it the AUTHs would not have verified.
    assert_eq!(p.responder.peer_auth_ok, Some(true));
    assert!(p.session().is_some());
}

fn fallback_pair(fallback: bool) -> Pair {
    let mut c = config(HYBRID, "aes256gcm16");
    c.pq_fallback = fallback;
    let mut r = responder("aes256gcm16-prfsha256-x25519", "aes256gcm16");
    r.addke = false;
    let mut p = Pair::new(c, r);
    p.drive();
    p
}

#[test]
fn responder_without_addke_and_no_fallback_is_refused() {
    let p = fallback_pair(false);
    assert!(matches!(error_of(&p), IkeError::PostQuantumRefused(_)), "{:?}", p.closed());
    let msg = error_of(&p).to_string();
    assert!(msg.contains("pq_fallback"), "{msg}");
    nothing_acted_on(&p);
}

#[test]
fn responder_without_addke_with_fallback_connects_classically() {
    let p = fallback_pair(true);
    let info = p.session().expect("established");
    assert!(info.pq_fallback);
    assert_eq!(info.ike_suite.addke, [None; 7]);
    assert_eq!(p.responder.intermediate_exchanges, 0);
    assert!(requests(&p, ExchangeType::IKE_INTERMEDIATE).is_empty());
    assert_keys_match(&p);
}

/// `ke1_none`: the additional key exchange is optional; a gateway without it picks NONE.
#[test]
fn optional_additional_key_exchange() {
    let ike = "aes256gcm16-prfsha256-x25519-ke1_mlkem768-ke1_none";
    let p = established_pair(config(ike, "aes256gcm16"), responder("aes256gcm16-prfsha256-x25519", "aes256gcm16"));
    let info = p.session().unwrap();
    assert_eq!(info.ike_suite.addke, [None; 7]);
    assert!(!info.pq_fallback, "optional by the profile, not a fallback");
    let p = established_pair(config(ike, "aes256gcm16"), responder(HYBRID, "aes256gcm16"));
    assert_eq!(p.session().unwrap().ike_suite.addke[0], Some(Group::MlKem768));
}

fn ppk_config(secret: &[u8], required: bool) -> IkeConfig {
    let mut c = config(HYBRID, "aes256gcm16");
    c.ppk = Some(Ppk { id: b"pq-key-1".to_vec(), secret: Zeroizing::new(secret.to_vec()), required });
    c
}

fn ppk_responder(secret: Option<&[u8]>) -> ResponderConfig {
    let mut r = responder(HYBRID, "aes256gcm16");
    r.ppk = secret.map(|s| (b"pq-key-1".to_vec(), s.to_vec()));
    r
}

#[test]
fn ppk_required_and_used() {
    let p = established_pair(
        ppk_config(b"a postquantum preshared key", true),
        ppk_responder(Some(b"a postquantum preshared key")),
    );
    assert_eq!(p.session().unwrap().ppk, PpkStatus::Used);
    assert_eq!(p.responder.ppk_used, Some(true));
    // SK_d was mixed with the PPK on both sides: the Child SA keys agree.
    assert_keys_match(&p);
    let auth = p.sent(Dir::ToResponder).find(|d| d.is(ExchangeType::IKE_AUTH, false)).unwrap().payload.clone();
    let mut r = Pair::new(ppk_config(b"x", true), ppk_responder(Some(b"x")));
    r.drive();
    let inner = r.responder.decrypt(&auth);
    assert!(
        inner.is_none()
            || inner
                .unwrap()
                .iter()
                .all(|p| !matches!(p, Payload::Notify(n) if n.notify_type == crate::wire::NotifyType::NO_PPK_AUTH))
    );
}

#[test]
fn ppk_mismatch_is_a_clear_error() {
    let mut p = Pair::new(ppk_config(b"our PPK", true), ppk_responder(Some(b"the gateway's PPK")));
    p.drive();
    assert_eq!(error_of(&p), IkeError::PpkAuthenticationFailed);
    assert!(error_of(&p).to_string().contains("ppk.id"));
    nothing_acted_on(&p);
}

#[test]
fn ppk_optional_with_a_gateway_without_ppk_connects_classically() {
    let p = established_pair(ppk_config(b"our PPK", false), ppk_responder(None));
    assert_eq!(p.session().unwrap().ppk, PpkStatus::NotUsed);
    assert_keys_match(&p);
}

#[test]
fn ppk_required_with_a_gateway_without_ppk_is_refused() {
    let mut p = Pair::new(ppk_config(b"our PPK", true), ppk_responder(None));
    p.drive();
    assert!(matches!(error_of(&p), IkeError::PpkNotUsed(_)));
    nothing_acted_on(&p);
}

/// Optional PPK, and the gateway has a PPK but under another identity: it takes our NO_PPK_AUTH.
#[test]
fn ppk_optional_unknown_id_uses_no_ppk_auth() {
    let mut r = ppk_responder(Some(b"x"));
    r.ppk = Some((b"another-id".to_vec(), b"x".to_vec()));
    let p = established_pair(ppk_config(b"x", false), r);
    assert_eq!(p.session().unwrap().ppk, PpkStatus::NotUsed);
    assert_eq!(p.responder.ppk_used, Some(false));
    assert_keys_match(&p);
}

/// Our answer to the gateway's request `message_id`.
#[track_caller]
fn answer_to(p: &mut Pair, message_id: u32) -> Vec<Payload> {
    let raw = p
        .sent(Dir::ToResponder)
        .filter(|d| d.header().is_some_and(|h| h.flags.response && h.message_id == message_id))
        .last()
        .expect("an answer");
    let raw = raw.ike().expect("IKE").to_vec();
    p.responder.decrypt(&raw).expect("decrypts")
}

fn installed(p: &Pair) -> usize {
    p.events.iter().filter(|(_, e)| matches!(e, Event::ChildSaInstalled(_))).count()
}

fn notify_data(payloads: &[Payload], t: NotifyType) -> Option<Vec<u8>> {
    payloads.iter().find_map(|p| match p {
        Payload::Notify(n) if n.notify_type == t => Some(n.data.clone()),
        _ => None,
    })
}

/// The gateway starts a Child SA rekey with ML-KEM-768 as an additional exchange (RFC 9370 §2.2.4, we are the
/// responder): our answer carries KEr and the ADDITIONAL_KEY_EXCHANGE link, and nothing is installed yet; an
/// IKE_FOLLOWUP_KE with other link data gets STATE_NOT_FOUND and installs nothing; the one with our link gets
/// the ML-KEM ciphertext (the gateway decapsulates it) and installs the new SA. A gateway that never follows up
/// holds our own rekeys back only for a bounded time.
#[test]
fn gateway_initiated_rekey_with_an_additional_exchange() {
    let esp = "aes256gcm16-x25519-ke1_mlkem768";
    let mut c = config(HYBRID, esp);
    c.child_lifetime = Some(Duration::from_secs(3600));
    // Unfragmented, so the test reads our answers whole (the 1088-byte ciphertext would be fragmented at 1000).
    c.fragment_mtu = 0;
    let mut p = Pair::new(c, responder(HYBRID, esp));
    p.run_until(Duration::from_secs(10));
    assert_eq!(p.initiator.state(), State::Established, "{:?}", p.events);
    let before = installed(&p);
    let old_out = p.child().expect("a Child SA").outbound.spi;
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let x = KeyExchange::generate(Group::Curve25519, &mut rng).unwrap();
    let kem = KeyExchange::generate(Group::MlKem768, &mut rng).unwrap();
    let rekey = |spi: u32, ke: &KeyExchange| {
        vec![
            Payload::Notify(Notify {
                protocol: ProtocolId::ESP.0,
                spi: old_out.to_be_bytes().to_vec(),
                notify_type: NotifyType::REKEY_SA,
                data: vec![],
            }),
            Payload::Sa(vec![EspProposal::parse(esp).unwrap().to_wire(1, spi, true)]),
            Payload::Nonce(vec![0x44; 32]),
            Payload::Ke(KePayload { group: Group::Curve25519.id(), data: ke.public_value().to_vec() }),
            Payload::TsI(vec![cidr_ts("198.51.100.0/24")]),
            Payload::TsR(vec![cidr_ts("0.0.0.0/0")]),
        ]
    };
    let ts_r = format!("{}/32", p.session().unwrap().config.ipv4.unwrap());
    let mut request = rekey(0x5000, &x);
    request[5] = Payload::TsR(vec![cidr_ts(&ts_r)]);
    let msg = p.responder.seal(0, ExchangeType::CREATE_CHILD_SA, false, &request);
    p.inject_to_initiator(&msg);
    let answer = answer_to(&mut p, 0);
    let link = notify_data(&answer, NotifyType::ADDITIONAL_KEY_EXCHANGE).expect("our link data");
    let Some(Payload::Sa(sa)) = answer.iter().find(|p| matches!(p, Payload::Sa(_))) else { panic!("{answer:?}") };
    assert!(sa[0].transforms.iter().any(|t| t.kind == TransformType::addke(1) && t.id == Group::MlKem768.id()));
    assert!(answer.iter().any(|p| matches!(p, Payload::Ke(k) if k.group == Group::Curve25519.id())));
    assert_eq!(installed(&p), before, "installed before the additional exchange");

    let followup = |link: Vec<u8>| {
        vec![
            Payload::Ke(KePayload { group: Group::MlKem768.id(), data: kem.public_value().to_vec() }),
            Payload::Notify(Notify::new(NotifyType::ADDITIONAL_KEY_EXCHANGE, link)),
        ]
    };
    let msg = p.responder.seal(1, ExchangeType::IKE_FOLLOWUP_KE, false, &followup(vec![9; 8]));
    p.inject_to_initiator(&msg);
    assert!(notify_data(&answer_to(&mut p, 1), NotifyType::STATE_NOT_FOUND).is_some());
    assert_eq!(installed(&p), before, "installed on another exchange's link data");

    let msg = p.responder.seal(2, ExchangeType::IKE_FOLLOWUP_KE, false, &followup(link));
    p.inject_to_initiator(&msg);
    let answer = answer_to(&mut p, 2);
    let Some(Payload::Ke(ct)) = answer.iter().find(|p| matches!(p, Payload::Ke(_))) else { panic!("{answer:?}") };
    assert_eq!(ct.group, Group::MlKem768.id());
    assert!(kem.shared_secret(&ct.data).is_ok(), "the gateway decapsulates our ciphertext");
    assert!(notify_data(&answer, NotifyType::ADDITIONAL_KEY_EXCHANGE).is_none(), "the last exchange links on");
    assert_eq!(installed(&p), before + 1);
    let new = p.events.iter().rev().find_map(|(_, e)| match e {
        Event::ChildSaInstalled(c) => Some(c),
        _ => None,
    });
    assert_eq!(new.unwrap().outbound.spi, 0x5000);

    // Another rekey the gateway never follows up: answered, then forgotten after the timeout, so a later rekey
    // of the gateway's is not refused for ever.
    let mut request = rekey(0x6000, &x);
    request[5] = Payload::TsR(vec![cidr_ts(&ts_r)]);
    request[0] = Payload::Notify(Notify {
        protocol: ProtocolId::ESP.0,
        spi: 0x5000u32.to_be_bytes().to_vec(),
        notify_type: NotifyType::REKEY_SA,
        data: vec![],
    });
    let msg = p.responder.seal(3, ExchangeType::CREATE_CHILD_SA, false, &request);
    p.inject_to_initiator(&msg);
    assert!(notify_data(&answer_to(&mut p, 3), NotifyType::ADDITIONAL_KEY_EXCHANGE).is_some());
    let msg = p.responder.seal(4, ExchangeType::CREATE_CHILD_SA, false, &request);
    p.inject_to_initiator(&msg);
    assert!(notify_data(&answer_to(&mut p, 4), NotifyType::TEMPORARY_FAILURE).is_some(), "one at a time");
    let later = p.elapsed() + Duration::from_secs(61);
    p.run_until(later);
    let msg = p.responder.seal(5, ExchangeType::CREATE_CHILD_SA, false, &request);
    p.inject_to_initiator(&msg);
    assert!(notify_data(&answer_to(&mut p, 5), NotifyType::ADDITIONAL_KEY_EXCHANGE).is_some(), "still refused");
}
