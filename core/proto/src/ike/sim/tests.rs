//! Scenarios for the initiator, driven against the scripted responder with virtual time.

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;
use std::time::Duration;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use zeroize::Zeroizing;

use super::*;
use crate::crypto::Group;
use crate::ike::{AuthConfig, EspProposal, IkeProposal, Retransmit, State};
use crate::wire::{Delete, ExchangeType, IdType, Identification, NotifyType, Payload, ProtocolId, TsAddresses};

pub(crate) use super::{config, fqdn};

pub(crate) fn default_config() -> IkeConfig {
    config("aes256gcm16-prfsha256-x25519", "aes256gcm16")
}

pub(crate) fn established_pair(config: IkeConfig, responder: ResponderConfig) -> Pair {
    let mut p = Pair::new(config, responder);
    p.drive();
    assert_eq!(p.initiator.state(), State::Established, "events: {:?}", p.events);
    p
}

pub(crate) fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

pub(crate) fn assert_near(actual: Duration, expected_s: f64) {
    assert!((secs(actual) - expected_s).abs() < 0.001, "{} s, expected {expected_s} s", secs(actual));
}

pub(crate) fn name(e: &Event) -> String {
    match e {
        Event::StateChanged(s) => format!("{s:?}"),
        Event::Established(_) => "Established!".into(),
        Event::ChildSaInstalled(_) => "ChildSaInstalled".into(),
        Event::ChildSaDeleted { .. } => "ChildSaDeleted".into(),
        Event::ReauthenticationDue => "ReauthenticationDue".into(),
        Event::FetchRevocation(r) => {
            format!("FetchRevocation({})", r.iter().map(|r| r.url.as_str()).collect::<Vec<_>>().join(" "))
        }
        Event::Closed(r) => format!("Closed({r:?})"),
    }
}

pub(crate) fn names(p: &Pair) -> Vec<String> {
    p.events.iter().map(|(_, e)| name(e)).collect()
}

pub(super) const HAPPY: [&str; 4] = ["Authenticating", "Established", "Established!", "ChildSaInstalled"];

pub(crate) fn closed_with(p: &Pair) -> CloseReason {
    let (_, r) = p.closed().expect("the IKE SA closed");
    assert_eq!(p.initiator.state(), State::Closed);
    assert_eq!(p.initiator.poll_timeout(), None, "no timer after Closed");
    r.clone()
}

/// Inbound of one peer is the outbound of the other, and the selectors agree.
pub(crate) fn assert_keys_match(p: &Pair) {
    let ours = p.child().expect("the initiator installed a Child SA");
    let theirs = p.responder.child.as_ref().expect("the responder has a Child SA");
    assert_eq!(ours.suite, theirs.suite);
    for (a, b) in [(&ours.inbound, &theirs.outbound), (&ours.outbound, &theirs.inbound)] {
        assert_eq!(a.spi, b.spi);
        assert_eq!(a.encr, b.encr);
        assert_eq!(a.integ, b.integ);
        assert_eq!(a.esn, b.esn);
        assert_eq!(*a.enc_key, *b.enc_key);
        assert_eq!(*a.integ_key, *b.integ_key);
        assert_eq!(a.enc_key.len(), a.encr.keymat_len());
        assert_eq!(a.integ_key.len(), a.integ.map_or(0, |i| i.key_len()));
    }
    assert_ne!(*ours.inbound.enc_key, *ours.outbound.enc_key);
    assert_ne!(ours.inbound.spi, ours.outbound.spi);
    assert_eq!(ours.ts_i, theirs.ts_i);
    assert_eq!(ours.ts_r, theirs.ts_r);
}

pub(crate) fn requests(p: &Pair, exchange: ExchangeType) -> Vec<&Datagram> {
    p.sent(Dir::ToResponder).filter(|d| d.is(exchange, false)).collect()
}

pub(crate) fn responses(p: &Pair, exchange: ExchangeType) -> Vec<&Datagram> {
    p.sent(Dir::ToInitiator).filter(|d| d.is(exchange, true)).collect()
}

#[test]
fn happy_path_for_each_suite() {
    for (ike, esp, suite) in [
        ("aes256gcm16-prfsha256-x25519", "aes256gcm16", "aes256gcm16-prfsha256-x25519"),
        ("aes256-sha256-modp2048", "aes256-sha256", "aes256-sha256-prfsha256-modp2048"),
        ("aes128gcm16-prfsha384-ecp384", "aes128gcm16", "aes128gcm16-prfsha384-ecp384"),
        ("chacha20poly1305-prfsha512-ecp256", "chacha20poly1305", "chacha20poly1305-prfsha512-ecp256"),
    ] {
        let p = established_pair(config(ike, esp), ResponderConfig::default());
        assert_eq!(names(&p), HAPPY, "{ike}");
        assert_eq!(p.elapsed(), Duration::ZERO, "no retransmission needed");
        let info = p.session().expect("Established event");
        assert_eq!(info.ike_suite.to_string(), suite);
        assert_eq!(Some(info.ike_suite), p.responder.ike_suite);
        assert_eq!(Some((info.spi_i, info.spi_r)), p.responder.spis());
        assert_eq!(info.remote_id, "gw.example.net");
        assert_eq!(info.local_id, "client.example.org");
        assert_eq!(info.nat, Default::default());
        assert_eq!(info.config.ipv4, Some(Ipv4Addr::new(100, 64, 0, 7)));
        assert_eq!(info.config.dns, vec![IpAddr::V4(Ipv4Addr::new(198, 51, 100, 53))]);
        let child = p.child().expect("Child SA");
        assert_eq!(child.suite.to_string(), esp);
        assert_eq!(child.ts_i, vec![cidr_ts("100.64.0.7/32")], "TSi narrowed to the virtual IP");
        assert_eq!(child.ts_r, vec![cidr_ts("198.51.100.0/24")], "TSr narrowed to the gateway's network");
        assert_keys_match(&p);
        assert!(p.responder.established());
        assert_eq!(p.responder.peer_auth_ok, Some(true));
        assert_eq!(p.responder.peer_behind_nat, Some(false));
        assert!(p.responder.errors.is_empty(), "{:?}", p.responder.errors);
        assert!(p.undeliverable.is_empty());
        assert_eq!(requests(&p, ExchangeType::IKE_SA_INIT).len(), 1);
        assert_eq!(requests(&p, ExchangeType::IKE_AUTH).len(), 1);
        assert_eq!(p.log.len(), 4);
        assert!(p.log.iter().all(|d| (d.socket == SocketKind::Ike && d.dst.port() == 500) || d.dst == INITIATOR));
        assert_eq!(p.initiator.poll_timeout(), None);
    }
}

/// The KE group of each IKE_SA_INIT request sent.
fn ke_groups(p: &Pair) -> Vec<u16> {
    requests(p, ExchangeType::IKE_SA_INIT)
        .iter()
        .filter_map(|d| {
            d.message()?.payloads.iter().find_map(|x| match x {
                Payload::Ke(k) => Some(k.group),
                _ => None,
            })
        })
        .collect()
}

#[test]
fn invalid_ke_payload_switches_group() {
    let responder = ResponderConfig { required_group: Some(Group::Ecp256), ..Default::default() };
    let p = established_pair(config("aes256gcm16-prfsha256-x25519-ecp256", "aes256gcm16"), responder);
    assert_eq!(ke_groups(&p), vec![31, 19]);
    let info = p.session().expect("Established");
    assert_eq!(info.ike_suite.group, Group::Ecp256);
    assert_eq!(info.ike_suite.to_string(), "aes256gcm16-prfsha256-ecp256");
    assert_keys_match(&p);
    assert_eq!(names(&p), HAPPY);
}

#[test]
fn invalid_ke_payload_with_a_group_we_never_offered() {
    let responder = ResponderConfig { required_group: Some(Group::Modp3072), ..Default::default() };
    let mut p = Pair::new(config("aes256gcm16-prfsha256-x25519-ecp256", "aes256gcm16"), responder);
    p.drive();
    assert_eq!(closed_with(&p), CloseReason::Error(IkeError::UnsupportedKeGroup(15)));
    // Unauthenticated, so not acted on at once (§2.21.1): the same request is retransmitted, and once the
    // answer to three transmissions was the same, it counts.
    assert_eq!(ke_groups(&p), vec![31, 31, 31], "no retry with a group we do not have");
    assert_near(p.elapsed(), 4.0 + 7.2);
}

/// The data of the first payload if it is N(COOKIE).
fn leading_cookie(d: &Datagram) -> Option<Vec<u8>> {
    match d.message()?.payloads.first()? {
        Payload::Notify(n) if n.notify_type == NotifyType::COOKIE => Some(n.data.clone()),
        _ => None,
    }
}

#[test]
fn cookie_is_echoed_first() {
    let responder = ResponderConfig { cookie: true, ..Default::default() };
    let p = established_pair(default_config(), responder);
    assert_eq!(p.responder.issued_cookies.len(), 1);
    let cookie = p.responder.issued_cookies[0].clone();
    let init = requests(&p, ExchangeType::IKE_SA_INIT);
    assert_eq!(init.len(), 2);
    assert_eq!(leading_cookie(init[0]), None);
    assert_eq!(leading_cookie(init[1]), Some(cookie.clone()));
    // The gateway's answer was just the COOKIE notify.
    let first = responses(&p, ExchangeType::IKE_SA_INIT)[0].message().expect("decodes");
    assert_eq!(first.payloads.len(), 1);
    assert_eq!(leading_cookie(responses(&p, ExchangeType::IKE_SA_INIT)[0]), Some(cookie));
    // The rest of the retried request is the same as the first one.
    let m0 = init[0].message().expect("decodes");
    let m1 = init[1].message().expect("decodes");
    assert_eq!(m0.header, Header { length: m0.header.length, next_payload: m0.header.next_payload, ..m1.header });
    assert_eq!(m0.payloads[..], m1.payloads[1..]);
    assert_keys_match(&p);
    assert_eq!(names(&p), HAPPY);
}

#[test]
fn cookie_then_invalid_ke_payload() {
    let responder = ResponderConfig { cookie: true, required_group: Some(Group::Ecp384), ..Default::default() };
    let p = established_pair(config("aes256gcm16-prfsha256-x25519-ecp384", "aes256gcm16"), responder);
    let init = requests(&p, ExchangeType::IKE_SA_INIT);
    assert_eq!(init.len(), 3);
    assert_eq!(ke_groups(&p), vec![31, 31, 20]);
    let cookie = p.responder.issued_cookies.first().cloned();
    assert!(cookie.is_some());
    assert_eq!(leading_cookie(init[1]), cookie);
    assert_eq!(leading_cookie(init[2]), cookie, "the COOKIE is kept for the retry with the new group");
    assert_keys_match(&p);
}

#[test]
fn wrong_psk_on_our_side() {
    let mut c = default_config();
    c.auth = AuthConfig::Psk(Zeroizing::new(b"not the gateway's key".to_vec()));
    let mut p = Pair::new(c, ResponderConfig::default());
    p.drive();
    assert_eq!(closed_with(&p), CloseReason::Error(IkeError::AuthenticationFailed));
    assert_eq!(p.responder.peer_auth_ok, Some(false));
    assert!(p.child().is_none());
    assert_eq!(names(&p), ["Authenticating", "Closed", "Closed(Error(AuthenticationFailed))"]);
}

#[test]
fn gateway_signs_with_another_psk() {
    let responder = ResponderConfig { sign_psk: Some(b"another key".to_vec()), ..Default::default() };
    let mut p = Pair::new(default_config(), responder);
    p.drive();
    assert_eq!(p.responder.peer_auth_ok, Some(true));
    assert_eq!(closed_with(&p), CloseReason::Error(IkeError::PeerAuthenticationFailed));
    assert!(p.child().is_none() && p.session().is_none());
}

#[test]
fn identity_mismatch() {
    let mut c = default_config();
    c.remote_id = Some(fqdn("other.example.net"));
    let mut p = Pair::new(c, ResponderConfig::default());
    p.drive();
    assert_eq!(
        closed_with(&p),
        CloseReason::Error(IkeError::IdentityMismatch {
            expected: "other.example.net".into(),
            got: "gw.example.net".into()
        })
    );
    assert!(p.child().is_none());

    // The right identity works.
    let mut c = default_config();
    c.remote_id = Some(fqdn("gw.example.net"));
    let p = established_pair(c, ResponderConfig::default());
    assert_keys_match(&p);
}

#[test]
fn retransmission_schedule_default() {
    let responder = ResponderConfig { silent: true, ..Default::default() };
    let mut p = Pair::new(default_config(), responder);
    assert!(p.drive_until(|p| p.log.len() == 2));
    assert_near(p.elapsed(), 4.0);
    assert_eq!(p.initiator.state(), State::Connecting);
    p.drive();
    let sends: Vec<Duration> = requests(&p, ExchangeType::IKE_SA_INIT).iter().map(|d| d.at).collect();
    let expected = [0.0, 4.0, 11.2, 24.16, 47.488, 89.4784];
    assert_eq!(sends.len(), expected.len(), "{sends:?}");
    for (s, e) in sends.iter().zip(expected) {
        assert_near(*s, e);
    }
    // All sends carry the same bytes.
    let first = &p.log[0].payload;
    assert!(p.log.iter().all(|d| &d.payload == first));
    // 4 * (1.8^0 + ... + 1.8^5) = 165.06 s after the first send.
    let (at, _) = p.closed().expect("closed");
    assert_near(at, 165.061_12);
    match closed_with(&p) {
        CloseReason::Error(IkeError::Timeout { tries: 6, waited }) => assert_near(waited, 165.061_12),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(p.responder.received.len(), 6);
}

#[test]
fn retransmission_schedule_custom() {
    let mut c = default_config();
    c.retransmit = Retransmit { timeout: Duration::from_secs(1), base: 2.0, tries: 2 };
    let mut p = Pair::new(c, ResponderConfig { silent: true, ..Default::default() });
    p.drive();
    let sends: Vec<f64> = p.log.iter().map(|d| secs(d.at)).collect();
    assert_eq!(sends, [0.0, 1.0, 3.0]);
    let (at, _) = p.closed().expect("closed");
    assert_eq!(at, Duration::from_secs(7));
    assert_eq!(closed_with(&p), CloseReason::Error(IkeError::Timeout { tries: 3, waited: Duration::from_secs(7) }));
}

/// Drops the first datagram matching `pred`.
pub(crate) fn drop_first(p: &mut Pair, pred: impl Fn(&Datagram) -> bool + 'static) {
    let mut dropped = false;
    p.set_fate(move |d| {
        if !dropped && pred(d) {
            dropped = true;
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
}

#[test]
fn lost_auth_request_is_retransmitted() {
    let mut p = Pair::new(default_config(), ResponderConfig::default());
    drop_first(&mut p, |d| d.is(ExchangeType::IKE_AUTH, false));
    p.drive();
    assert_eq!(p.initiator.state(), State::Established);
    let auth = requests(&p, ExchangeType::IKE_AUTH);
    assert_eq!(auth.len(), 2);
    assert_eq!(auth[0].payload, auth[1].payload, "a retransmission is the same message");
    assert_near(auth[1].at, 4.0);
    let (t, _) = p.events.iter().find(|(_, e)| matches!(e, Event::Established(_))).expect("Established");
    assert_near(*t, 4.0);
    assert_eq!(names(&p), HAPPY);
    assert_keys_match(&p);
}

#[test]
fn lost_responses_are_resent_from_the_gateway_cache() {
    for exchange in [ExchangeType::IKE_SA_INIT, ExchangeType::IKE_AUTH] {
        let mut p = Pair::new(default_config(), ResponderConfig::default());
        drop_first(&mut p, move |d| d.is(exchange, true));
        p.drive();
        assert_eq!(p.initiator.state(), State::Established, "{exchange}");
        let resp = responses(&p, exchange);
        assert_eq!(resp.len(), 2);
        assert_eq!(resp[0].payload, resp[1].payload, "the gateway answers a retransmission from its cache");
        assert_near(p.elapsed(), 4.0);
        assert_eq!(names(&p), HAPPY);
        assert!(p.responder.errors.is_empty(), "{:?}", p.responder.errors);
        assert_keys_match(&p);
    }
}

#[test]
fn duplicates_in_both_directions() {
    let mut p = Pair::new(default_config(), ResponderConfig::default());
    p.set_fate(Fate::duplicate);
    p.drive();
    assert_eq!(names(&p), HAPPY);
    assert_keys_match(&p);
    assert_eq!(requests(&p, ExchangeType::IKE_AUTH).len(), 1, "duplicates trigger no retransmission");
    let sent: Vec<usize> = p.sent(Dir::ToResponder).map(|d| d.index).collect();
    assert_eq!(sent, [0, 1], "the log holds what was sent, not the copies");
    // Each duplicated request got a cached answer; nothing confused the gateway.
    assert!(p.responder.errors.is_empty(), "{:?}", p.responder.errors);
    assert_eq!(p.elapsed(), Duration::ZERO);
}

#[test]
fn delayed_response_overtaken_by_retransmission() {
    let mut p = Pair::new(default_config(), ResponderConfig::default());
    let mut first = true;
    p.set_fate(move |d| {
        if first && d.is(ExchangeType::IKE_SA_INIT, true) {
            first = false;
            Fate::delay(d, Duration::from_secs(5))
        } else {
            Fate::Deliver
        }
    });
    p.drive();
    // Retransmission at 4 s gets the cached answer; the late original arrives at 5 s and is ignored.
    assert_eq!(names(&p), HAPPY);
    assert_near(p.elapsed(), 5.0);
    let (t, _) = p.events.last().expect("events");
    assert_near(*t, 4.0);
    assert_keys_match(&p);
}

/// Garbage derived from a real message: random bytes, truncations, wrong SPIs, flags or message ID.
fn garbage_from(real: &[u8], rng: &mut ChaCha20Rng) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for len in [0, 1, 27, 28, 100] {
        let mut r = vec![0u8; len];
        rng.fill_bytes(&mut r);
        out.push(r);
    }
    // Random bytes behind a plausible header.
    let mut r = real[..28].to_vec();
    let mut tail = vec![0u8; 64];
    rng.fill_bytes(&mut tail);
    r.extend_from_slice(&tail);
    let n = r.len() as u32;
    r[24..28].copy_from_slice(&n.to_be_bytes());
    out.push(r);
    // Truncated: as is, and with the length field fixed up.
    out.push(real[..real.len() - 1].to_vec());
    out.push(real[..real.len() / 2].to_vec());
    let mut t = real[..real.len() - 8].to_vec();
    let n = t.len() as u32;
    t[24..28].copy_from_slice(&n.to_be_bytes());
    out.push(t);
    // Wrong initiator SPI.
    let mut w = real.to_vec();
    w[7] ^= 0x55;
    out.push(w);
    // Not a response; wrong message ID.
    let mut w = real.to_vec();
    w[19] ^= 0x20;
    out.push(w);
    let mut w = real.to_vec();
    w[23] ^= 0x01;
    out.push(w);
    out
}

/// Forgeries only authentication can catch: a wrong responder SPI, and one bit flipped at sampled positions
/// after the header. (An IKE_SA_INIT response is not authenticated: the first plausible one wins, §2.4.)
fn tampered_from(real: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut w = real.to_vec();
    w[15] ^= 0x55;
    out.push(w);
    // Tampered: every byte after the header, one at a time (sampled).
    for pos in (28..real.len()).step_by(7).chain([real.len() - 1]) {
        let mut w = real.to_vec();
        w[pos] ^= 0x80;
        out.push(w);
    }
    out
}

#[test]
fn garbage_is_ignored() {
    let mut p = Pair::new(default_config(), ResponderConfig::default());
    let real_auth: Rc<RefCell<Option<Vec<u8>>>> = Rc::default();
    let seen = real_auth.clone();
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    p.set_fate(move |d| {
        if d.dir != Dir::ToInitiator {
            return Fate::Deliver;
        }
        // In front of each real response: junk. For IKE_SA_INIT only what cannot be taken for a real response
        // (its errors are unauthenticated, §2.21.1, and a forged one could end the attempt).
        let mut junk = garbage_from(&d.payload, &mut rng);
        if !d.is(ExchangeType::IKE_SA_INIT, true) {
            junk.extend(tampered_from(&d.payload));
            *seen.borrow_mut() = Some(d.payload.clone());
        }
        let mut v: Vec<(Duration, Vec<u8>)> = junk.into_iter().map(|j| (Duration::ZERO, j)).collect();
        v.push((Duration::ZERO, d.payload.clone()));
        Fate::Replace(v)
    });
    p.drive();
    assert_eq!(names(&p), HAPPY);
    assert_keys_match(&p);
    assert_eq!(p.log.len(), 4, "no retransmission, no reaction to junk");

    // Established: junk and a replayed IKE_AUTH response change nothing.
    let real = real_auth.borrow().clone().expect("saw the IKE_AUTH response");
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    let mut all = garbage_from(&real, &mut rng);
    all.extend(tampered_from(&real));
    all.push(real.clone());
    all.push(p.log[1].payload.clone());
    for g in all {
        p.inject_to_initiator(&g);
        assert_eq!(p.initiator.state(), State::Established);
        assert_eq!(p.events.len(), HAPPY.len());
        assert_eq!(p.log.len(), 4, "nothing is sent in reaction to junk");
        assert_eq!(p.initiator.poll_timeout(), None);
    }
    // And the SA still works.
    p.responder.send_dpd();
    p.drive();
    assert_eq!(p.responder.responses.len(), 1);
}

pub(crate) fn established() -> Pair {
    established_pair(default_config(), ResponderConfig::default())
}

#[test]
fn gateway_retransmission_gets_the_cached_answer() {
    let mut p = established();
    p.responder.send_dpd();
    p.drive();
    p.responder.retransmit_request();
    p.drive();
    let ours: Vec<&Datagram> = p.sent(Dir::ToResponder).filter(|d| d.is(ExchangeType::INFORMATIONAL, true)).collect();
    assert_eq!(ours.len(), 2);
    assert_eq!(ours[0].payload, ours[1].payload, "byte-identical cached response");
    assert_eq!(p.responder.responses.len(), 2);
    assert!(p.responder.responses.iter().all(|(id, payloads, _)| *id == 0 && payloads.is_empty()));
    assert_eq!(names(&p), HAPPY);
}

#[test]
fn dpd_is_answered() {
    let mut p = established();
    for id in 0..3 {
        p.responder.send_dpd();
        p.drive();
        let (rid, payloads, _) = p.responder.responses.last().expect("answered");
        assert_eq!((*rid, payloads.len()), (id, 0));
    }
    assert_eq!(p.initiator.state(), State::Established);
    assert_eq!(names(&p), HAPPY);
}

#[test]
fn gateway_deletes_the_child_sa() {
    let mut p = established();
    let (inb, outb) = {
        let c = p.child().expect("child");
        (c.inbound.spi, c.outbound.spi)
    };
    p.responder.send_delete_child();
    p.drive();
    let deleted: Vec<(u32, u32)> = p
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::ChildSaDeleted { inbound_spi, outbound_spi } => Some((*inbound_spi, *outbound_spi)),
            _ => None,
        })
        .collect();
    assert_eq!(deleted, vec![(inb, outb)]);
    let (_, payloads, _) = p.responder.responses.last().expect("answered");
    assert_eq!(
        payloads,
        &vec![Payload::Delete(Delete { protocol: ProtocolId::ESP, spis: vec![inb.to_be_bytes().to_vec()] })]
    );
    assert_eq!(p.initiator.state(), State::Established, "the IKE SA stays");
}

#[test]
fn gateway_deletes_the_ike_sa() {
    let mut p = established();
    p.responder.send_delete_ike();
    p.drive();
    assert_eq!(closed_with(&p), CloseReason::DeletedByPeer);
    let n = names(&p);
    assert_eq!(n[HAPPY.len()..], ["ChildSaDeleted", "Closed", "Closed(DeletedByPeer)"]);
    let (_, payloads, _) = p.responder.responses.last().expect("answered");
    assert!(payloads.is_empty());
}

#[test]
fn close_after_established() {
    let mut p = established();
    p.close();
    p.drive();
    assert_eq!(closed_with(&p), CloseReason::Local);
    let (_, last) = p.responder.requests.last().expect("the gateway got our request");
    assert_eq!(last, &vec![Payload::Delete(Delete { protocol: ProtocolId::IKE, spis: vec![] })]);
    assert!(p.responder.sa_dead());
    assert_eq!(names(&p)[HAPPY.len()..], ["Closing", "ChildSaDeleted", "Closed", "Closed(Local)"]);
    assert_eq!(p.elapsed(), Duration::ZERO);
}

#[test]
fn retire_after_reauthentication() {
    let mut p = established();
    p.retire();
    p.drive();
    // The same Delete as a close, but the reason says a reauthenticated IKE SA took over (RFC 7296 §2.8.3).
    assert_eq!(closed_with(&p), CloseReason::Reauthenticated);
    assert!(p.responder.sa_dead());
}

#[test]
fn close_with_silent_gateway() {
    let mut p = established();
    p.responder.config.silent = true;
    p.close();
    p.drive();
    assert_eq!(closed_with(&p), CloseReason::Local);
    let deletes = requests(&p, ExchangeType::INFORMATIONAL);
    assert_eq!(deletes.len(), 3, "at most 3 sends of the Delete");
    let t: Vec<f64> = deletes.iter().map(|d| secs(d.at)).collect();
    assert_eq!(t, [0.0, 4.0, 11.2]);
    assert_near(p.elapsed(), 24.16);
}

#[test]
fn close_before_established() {
    let mut p = Pair::new(default_config(), ResponderConfig::default());
    p.close();
    p.drive();
    assert_eq!(closed_with(&p), CloseReason::Local);
}

#[test]
fn nat_float_to_4500() {
    let responder = ResponderConfig { nat: true, ..Default::default() };
    let mut p = established_pair(default_config(), responder);
    let info = p.session().expect("Established");
    assert!(info.nat.local_behind_nat);
    assert!(!info.nat.remote_behind_nat);
    assert!(p.initiator.nat_t());
    assert_eq!(p.initiator.remote().port(), 4500);
    p.responder.send_dpd();
    p.drive();
    assert_eq!(p.responder.responses.len(), 1);
    // The first request went to port 500, everything after it to 4500 with the marker.
    let ours: Vec<&Datagram> = p.sent(Dir::ToResponder).collect();
    assert_eq!((ours[0].socket, ours[0].dst.port()), (SocketKind::Ike, 500));
    assert!(ours.len() >= 3);
    for d in &ours[1..] {
        assert_eq!(d.socket, SocketKind::NatT);
        assert_eq!(d.dst, SocketAddr::new(p.responder.addr().ip(), 4500));
        assert_eq!(d.payload[..4], [0, 0, 0, 0]);
        assert!(d.header().is_some());
    }
    assert!(p.responder.received[1..].iter().all(|r| r.port == 4500));
    assert_eq!(p.responder.received[1].header.exchange, ExchangeType::IKE_AUTH);
    assert!(p.undeliverable.is_empty());
    assert_keys_match(&p);
}

#[test]
fn force_encap_fakes_our_nat_hash() {
    let mut c = default_config();
    c.force_encap = true;
    let p = established_pair(c, ResponderConfig::default());
    assert_eq!(p.responder.peer_behind_nat, Some(true), "our NAT_DETECTION_SOURCE_IP does not match the real hash");
    let info = p.session().expect("Established");
    assert!(info.nat.forced && info.nat.any() && !info.nat.local_behind_nat);
    assert!(p.initiator.nat_t());
    assert!(requests(&p, ExchangeType::IKE_AUTH).iter().all(|d| d.socket == SocketKind::NatT));
    assert_keys_match(&p);
}

#[test]
fn child_errors_close_the_sa() {
    for (notify, err) in [
        (NotifyType::TS_UNACCEPTABLE, IkeError::TsUnacceptable),
        (NotifyType::NO_PROPOSAL_CHOSEN, IkeError::NoProposalChosen),
    ] {
        let responder = ResponderConfig { child_error: Some(notify), ..Default::default() };
        let mut p = Pair::new(default_config(), responder);
        p.drive();
        assert_eq!(closed_with(&p), CloseReason::Error(err));
        assert!(p.child().is_none());
    }
}

#[test]
fn no_common_proposals() {
    // IKE: refused in IKE_SA_INIT.
    let responder = ResponderConfig {
        ike_proposals: vec![IkeProposal::parse("aes128-sha256-modp3072").unwrap()],
        ..Default::default()
    };
    let mut p = Pair::new(default_config(), responder);
    p.drive();
    assert_eq!(closed_with(&p), CloseReason::Error(IkeError::NoProposalChosen));
    // ESP: refused in IKE_AUTH.
    let responder =
        ResponderConfig { esp_proposals: vec![EspProposal::parse("aes128-sha256").unwrap()], ..Default::default() };
    let mut p = Pair::new(default_config(), responder);
    p.drive();
    assert_eq!(closed_with(&p), CloseReason::Error(IkeError::NoProposalChosen));
    // Disjoint selectors.
    let mut c = default_config();
    c.ts_r = vec![cidr_ts("10.0.0.0/8")];
    let mut p = Pair::new(c, ResponderConfig::default());
    p.drive();
    assert_eq!(closed_with(&p), CloseReason::Error(IkeError::TsUnacceptable));
}

#[test]
fn the_responder_picks_our_first_supported_proposal() {
    let mut c = default_config();
    c.ike_proposals = vec![
        IkeProposal::parse("aes256gcm16-prfsha512-ecp521").unwrap(),
        IkeProposal::parse("aes128-aes256-sha384-sha256-ecp256-x25519").unwrap(),
    ];
    c.esp_proposals =
        vec![EspProposal::parse("aes256gcm16-esn").unwrap(), EspProposal::parse("aes128-sha512-noesn-esn").unwrap()];
    let responder = ResponderConfig {
        ike_proposals: vec![IkeProposal::parse("aes256-aes128-sha256-sha384-x25519-ecp256").unwrap()],
        esp_proposals: vec![EspProposal::parse("aes128-sha512-esn").unwrap()],
        ..Default::default()
    };
    let p = established_pair(c, responder);
    let info = p.session().expect("Established");
    // Proposal 2, transforms in our order; our KE group (ecp521, of proposal 1) is refused, ecp256 asked for.
    assert_eq!(info.ike_suite.to_string(), "aes128-sha384-prfsha384-ecp256");
    assert_eq!(ke_groups(&p), vec![21, 19]);
    let child = p.child().expect("child");
    assert_eq!(child.suite.to_string(), "aes128-sha512-esn");
    assert_keys_match(&p);
}

/// Does `inner` lie within one of `outer`?
fn covered(inner: &crate::wire::TrafficSelector, outer: &[crate::wire::TrafficSelector]) -> bool {
    outer.iter().any(|o| match (&inner.addresses, &o.addresses) {
        (TsAddresses::V4 { start, end }, TsAddresses::V4 { start: s, end: e }) => s <= start && end <= e,
        (TsAddresses::V6 { start, end }, TsAddresses::V6 { start: s, end: e }) => s <= start && end <= e,
        _ => false,
    })
}

#[test]
fn widened_traffic_selectors_are_refused() {
    let mut c = default_config();
    c.ts_r = vec![cidr_ts("198.51.100.0/24")];
    let responder = ResponderConfig {
        ts_override: Some((vec![cidr_ts("100.64.0.7/32")], vec![cidr_ts("0.0.0.0/0")])),
        ..Default::default()
    };
    let mut p = Pair::new(c, responder);
    p.drive();
    if let Some(child) = p.child() {
        assert!(
            child.ts_r.iter().all(|t| covered(t, &[cidr_ts("198.51.100.0/24")])),
            "installed a Child SA routing {:?} although we proposed only 198.51.100.0/24",
            child.ts_r
        );
    } else {
        assert_eq!(closed_with(&p), CloseReason::Error(IkeError::TsUnacceptable));
    }
}

#[test]
fn gateway_behind_nat() {
    let responder = ResponderConfig { nat_gateway: true, ..Default::default() };
    let p = established_pair(default_config(), responder);
    let info = p.session().expect("Established");
    assert!(!info.nat.local_behind_nat);
    assert!(info.nat.remote_behind_nat);
    assert!(requests(&p, ExchangeType::IKE_AUTH).iter().all(|d| d.socket == SocketKind::NatT && d.dst.port() == 4500));
    assert_keys_match(&p);
}

#[test]
fn requests_cross_while_closing() {
    // Our Delete and the gateway's DPD cross: we answer the DPD and still close cleanly.
    let mut p = established();
    p.close();
    p.responder.send_dpd();
    p.drive();
    assert_eq!(closed_with(&p), CloseReason::Local);
    assert_eq!(p.responder.responses.len(), 1, "the DPD was answered while closing");
    let n = names(&p);
    assert_eq!(n.iter().filter(|e| *e == "ChildSaDeleted").count(), 1);

    // Both sides delete at once: closed either way, the Child SA reported deleted once.
    let mut p = established();
    p.close();
    p.responder.send_delete_ike();
    p.drive();
    assert!(p.closed().is_some());
    assert_eq!(names(&p).iter().filter(|e| *e == "ChildSaDeleted").count(), 1);
    assert_eq!(p.initiator.poll_timeout(), None);
}

mod platform_trust {
    //! The platform decides whether it trusts the gateway's certificate chain (Android, Apple); the core matches
    //! the gateway's identity against the certificate and checks the AUTH signature with its key.
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::crypto::{CertError, KeyPairSigner};
    use crate::ike::sim::responder::ResponderCert;
    use crate::ike::{GatewayAuth, TrustEvaluator};

    /// An OS that trusts every chain (or none), and records what it was asked.
    struct Platform {
        trust: bool,
        seen: Mutex<Vec<(usize, Option<String>)>>,
    }

    impl TrustEvaluator for Platform {
        fn evaluate(&self, chain: &[Vec<u8>], host_name: Option<&str>) -> Result<(), String> {
            self.seen.lock().unwrap().push((chain.len(), host_name.map(str::to_owned)));
            if self.trust {
                Ok(())
            } else {
                Err("the user declined the certificate".into())
            }
        }
    }

    fn gateway_cert(names: &[&str]) -> (Vec<u8>, Arc<KeyPairSigner>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = rcgen::CertificateParams::new(names).unwrap().self_signed(&key).unwrap();
        (cert.der().to_vec(), Arc::new(KeyPairSigner::from_pkcs8_der(&key.serialize_der()).unwrap()))
    }

    /// The gateway (IDr `gw.example.net`) presents a certificate for `names`; we expect `expected` (loose).
    fn run_with(
        trust: bool,
        signer_matches: bool,
        names: &[&str],
        expected: Option<Identification>,
    ) -> (Pair, Arc<Platform>) {
        let (der, signer) = gateway_cert(names);
        let signer = if signer_matches { signer } else { gateway_cert(names).1 };
        let platform = Arc::new(Platform { trust, seen: Mutex::new(Vec::new()) });
        let mut c = default_config();
        c.gateway_auth = GatewayAuth::Platform(platform.clone());
        c.remote_id_loose = expected.is_some();
        c.remote_id = expected;
        c.send_remote_id = false;
        let responder = ResponderConfig { cert: Some(ResponderCert(der, signer)), ..Default::default() };
        let mut p = Pair::new(c, responder);
        p.drive();
        (p, platform)
    }

    fn run(trust: bool, signer_matches: bool) -> (Pair, Arc<Platform>) {
        run_with(trust, signer_matches, &["gw.example.net"], None)
    }

    fn identity_mismatch(p: &Pair) -> bool {
        matches!(closed_with(p), CloseReason::Error(IkeError::Certificate(CertError::IdentityMismatch { .. })))
    }

    // Issue 12: the OS only says whether it trusts the chain; a chain it trusts for another name than the
    // gateway we expect is refused by the core's identity rule (the same as with our own trust anchors).
    #[test]
    fn trusted_chain_for_another_name_than_expected() {
        let (p, platform) = run_with(true, true, &["gw.example.net"], Some(fqdn("vpn.example.com")));
        assert!(identity_mismatch(&p), "{:?}", closed_with(&p));
        assert!(platform.seen.lock().unwrap().is_empty(), "refused before asking the OS");
        // Named by the certificate as well: accepted, and the OS policy gets the expected name.
        let names = ["gw.example.net", "vpn.example.com"];
        let (p, platform) = run_with(true, true, &names, Some(fqdn("vpn.example.com")));
        assert!(p.session().is_some(), "{:?}", super::names(&p));
        assert_eq!(platform.seen.lock().unwrap()[0].1.as_deref(), Some("vpn.example.com"));
        // An expected IP address must be the certificate's iPAddress.
        let ip = Identification { id_type: IdType::ID_IPV4_ADDR, data: vec![203, 0, 113, 1] };
        let (p, _) = run_with(true, true, &["gw.example.net", "203.0.113.9"], Some(ip.clone()));
        assert!(identity_mismatch(&p), "{:?}", closed_with(&p));
        let (p, platform) = run_with(true, true, &["gw.example.net", "203.0.113.1"], Some(ip));
        assert!(p.session().is_some(), "{:?}", super::names(&p));
        assert_eq!(platform.seen.lock().unwrap()[0].1.as_deref(), Some("203.0.113.1"));
    }

    // RFC 4945 §3.1: even with no expected identity (`%any`), the certificate must name the IDr.
    #[test]
    fn trusted_chain_that_does_not_name_the_idr() {
        let (p, platform) = run_with(true, true, &["other.example.net"], None);
        assert!(identity_mismatch(&p), "{:?}", closed_with(&p));
        assert!(platform.seen.lock().unwrap().is_empty());
    }

    #[test]
    fn trusted_by_the_platform_and_signature_valid() {
        let (p, platform) = run(true, true);
        assert!(p.session().is_some(), "established");
        let seen = platform.seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].0, 1, "the chain the gateway sent");
        assert_eq!(seen[0].1.as_deref(), Some("gw.example.net"), "the IDr as the host name");
    }

    #[test]
    fn distrusted_by_the_platform() {
        let (p, _) = run(false, true);
        assert!(matches!(closed_with(&p), CloseReason::Error(IkeError::Untrusted(_))), "{:?}", closed_with(&p));
    }

    #[test]
    fn trusted_certificate_but_signature_by_another_key() {
        let (p, _) = run(true, false);
        assert_eq!(closed_with(&p), CloseReason::Error(IkeError::PeerAuthenticationFailed));
    }
}
