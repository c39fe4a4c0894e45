//! NAT keepalives (RFC 3948 §2.3), dead peer detection (RFC 7296 §1.4, §2.4) and the timer kinds
//! [`IkeSa::poll_timeout`] reports, in virtual time.

use std::time::Duration;

use super::tests::*;
use super::*;
use crate::ike::{IkeError, State, Timer};
use crate::wire::{ExchangeType, Notify, NotifyType, Payload};

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn live_config(keepalive: Option<u64>, dpd: Option<u64>) -> IkeConfig {
    let mut c = default_config();
    c.keepalive = keepalive.map(s);
    c.dpd = dpd.map(s);
    c.dpd_tries = 2;
    c
}

/// Connect, stopping as soon as the IKE SA is up (timers keep the simulation from settling).
fn establish(config: IkeConfig, responder: ResponderConfig) -> Pair {
    let mut p = Pair::new(config, responder);
    assert!(p.drive_until(|p| p.initiator.state() == State::Established), "events: {:?}", names(&p));
    assert_eq!(p.elapsed(), Duration::ZERO);
    p
}

fn keepalives(p: &Pair) -> Vec<&Datagram> {
    p.sent(Dir::ToResponder).filter(|d| d.is_keepalive()).collect()
}

fn times(ds: &[&Datagram]) -> Vec<f64> {
    ds.iter().map(|d| secs(d.at)).collect()
}

#[test]
fn keepalives_behind_a_nat() {
    let mut p = establish(live_config(Some(20), None), ResponderConfig { nat: true, ..Default::default() });
    assert!(p.session().expect("Established").nat.local_behind_nat);
    let before = p.log.len();
    p.run_until(s(100));
    let k = keepalives(&p);
    assert_eq!(times(&k), [20.0, 40.0, 60.0, 80.0, 100.0]);
    for d in &k {
        assert_eq!(d.payload, [0xff], "one 0xFF byte, no non-ESP marker");
        assert_eq!((d.socket, d.src), (SocketKind::NatT, INITIATOR_NATT));
        assert_eq!(d.dst, SocketAddr::new(p.responder.addr().ip(), 4500));
    }
    assert_eq!(p.responder.keepalives, vec![INITIATOR_NATT; 5]);
    assert_eq!(p.log.len(), before + 5, "nothing else was sent");
    assert_eq!(p.initiator.poll_timeout(), Some((p.start + s(120), Timer::Keepalive)));
    assert!(p.responder.errors.is_empty() && p.undeliverable.is_empty());
    assert_eq!(names(&p), HAPPY);
}

#[test]
fn keepalives_with_forced_encapsulation_only_behind_a_real_nat() {
    // Forced encapsulation alone (no NAT in front of us): no mapping to keep, no keepalives (battery).
    let mut c = live_config(Some(20), None);
    c.force_encap = true;
    let mut p = establish(c.clone(), ResponderConfig::default());
    assert!(p.initiator.nat_t());
    p.run_until(s(100));
    assert!(keepalives(&p).is_empty());
    // Behind a NAT as well: keepalives.
    let mut p = establish(c, ResponderConfig { nat: true, ..Default::default() });
    p.run_until(s(100));
    assert_eq!(times(&keepalives(&p)), [20.0, 40.0, 60.0, 80.0, 100.0]);
    assert_eq!(p.responder.keepalives.len(), 5);
}

// Issue 11: against a gateway that forces UDP encapsulation (strongSwan `encap = yes`: it fakes its own NAT
// detection hash), on a direct path, with MOBIKE and DPD: the liveness checks' NAT detection after the float to
// port 4500 must not look like a changed NAT mapping (no UPDATE_SA_ADDRESSES, no keepalives, not "behind a NAT").
#[test]
fn gateway_forcing_encapsulation_is_no_nat_mapping_change() {
    for force_encap in [false, true] {
        let mut c = live_config(Some(20), Some(30));
        c.mobike = true;
        c.force_encap = force_encap;
        let responder = ResponderConfig { nat_gateway: true, mobike: true, ..Default::default() };
        let mut p = establish(c, responder);
        p.run_until(s(100));
        let natd =
            |p: &Payload| matches!(p, Payload::Notify(n) if n.notify_type == NotifyType::NAT_DETECTION_SOURCE_IP);
        let dpd: Vec<_> = p.responder.requests.iter().filter(|(_, r)| r.iter().any(natd)).collect();
        assert!(dpd.len() >= 2, "liveness checks with NAT detection: {dpd:?}");
        let updates = p.responder.requests.iter().filter(|(_, r)| {
            r.iter().any(|p| matches!(p, Payload::Notify(n) if n.notify_type == NotifyType::UPDATE_SA_ADDRESSES))
        });
        assert_eq!(updates.count(), 0, "force_encap={force_encap}: a NAT mapping change was believed");
        assert!(keepalives(&p).is_empty(), "force_encap={force_encap}: keepalives without a NAT");
        assert!(!p.session().unwrap().nat.local_behind_nat);
    }
}

#[test]
fn no_keepalives_without_a_nat_in_front_of_us() {
    // No NAT at all, and only the gateway behind one (keepalives are the NATed peer's job, RFC 3948 §4).
    for nat_gateway in [false, true] {
        let responder = ResponderConfig { nat_gateway, ..Default::default() };
        let mut p = established_pair(live_config(Some(20), None), responder);
        assert_eq!(p.initiator.poll_timeout(), None);
        p.run_until(s(100));
        assert!(keepalives(&p).is_empty());
        assert_eq!(p.log.len(), 4);
        assert!(p.responder.keepalives.is_empty());
    }
}

#[test]
fn no_keepalives_when_the_gateway_does_not_do_nat_traversal() {
    // force_encap, but the gateway sends no NAT_DETECTION notifies: no UDP encapsulation, ESP stays raw and a
    // keepalive has nothing to keep alive (RFC 3948 §2.3); what sa.rs sends is a 1-byte junk datagram to port 500.
    let mut c = live_config(Some(20), None);
    c.force_encap = true;
    let responder = ResponderConfig { nat_detection: false, ..Default::default() };
    let mut p = establish(c, responder);
    assert!(!p.initiator.nat_t(), "no NAT-T: IKE stays on port 500");
    p.run_until(s(100));
    let k = keepalives(&p);
    assert!(k.is_empty(), "keepalives sent to {:?}", k.iter().map(|d| d.dst).collect::<Vec<_>>());
}

/// The gateway's answers are lost (or it stopped answering altogether).
fn gateway_goes_silent(p: &mut Pair, silent: bool) {
    if silent {
        p.responder.config.silent = true;
    } else {
        p.set_fate(|d| if d.dir == Dir::ToInitiator { Fate::Drop } else { Fate::Deliver });
    }
}

fn dead_peer_after(p: &Pair) -> Duration {
    match closed_with(p) {
        CloseReason::Error(IkeError::DeadPeer { waited }) => waited,
        other => panic!("expected DeadPeer, got {other:?}"),
    }
}

#[test]
fn dpd_declares_a_silent_gateway_dead() {
    for silent in [true, false] {
        let mut p = establish(live_config(None, Some(30)), ResponderConfig::default());
        assert_eq!(p.initiator.poll_timeout(), Some((p.start + s(30), Timer::Dpd)));
        gateway_goes_silent(&mut p, silent);
        p.drive();
        let dpd = requests(&p, ExchangeType::INFORMATIONAL);
        // Sent after 30 s of silence, then retransmitted twice on the retransmission schedule (4 s, x1.8).
        let t = times(&dpd);
        assert_eq!(t.len(), 3, "{t:?}");
        for (a, e) in t.iter().zip([30.0, 34.0, 41.2]) {
            assert!((a - e).abs() < 1e-3, "{t:?}");
        }
        assert!(dpd.iter().all(|d| d.payload == dpd[0].payload), "retransmissions are identical");
        assert_eq!(dpd[0].header().expect("header").message_id, 2);
        assert_near(dead_peer_after(&p), 24.16);
        let (at, _) = p.closed().expect("closed");
        assert_near(at, 54.16);
        assert_eq!(names(&p)[HAPPY.len()..HAPPY.len() + 2], ["ChildSaDeleted", "Closed"]);
        if !silent {
            // The gateway saw an empty INFORMATIONAL (and answered, into the void).
            assert_eq!(p.responder.requests, vec![(2, vec![])]);
            assert_eq!(p.responder.retransmissions_answered, 2);
        }
    }
}

#[test]
fn dpd_tries_zero_gives_up_after_one_send() {
    let mut c = live_config(None, Some(30));
    c.dpd_tries = 0;
    let mut p = establish(c, ResponderConfig::default());
    gateway_goes_silent(&mut p, true);
    p.drive();
    assert_eq!(times(&requests(&p, ExchangeType::INFORMATIONAL)), [30.0]);
    assert_near(dead_peer_after(&p), 4.0);
}

#[test]
fn inbound_esp_suppresses_dpd() {
    let mut p = establish(live_config(None, Some(30)), ResponderConfig::default());
    gateway_goes_silent(&mut p, true);
    // ESP from the gateway every 10 s for 5 minutes: it is alive, no DPD.
    for k in 1..=30 {
        p.run_until(s(10 * k));
        p.initiator.note_inbound_traffic(p.now);
        assert_eq!(p.initiator.poll_timeout(), Some((p.now + s(30), Timer::Dpd)));
    }
    assert!(requests(&p, ExchangeType::INFORMATIONAL).is_empty());
    assert_eq!(p.log.len(), 4);
    assert_eq!(p.initiator.state(), State::Established);
    // The ESP stops: 30 s later the liveness check starts, and fails.
    p.drive();
    assert_eq!(secs(requests(&p, ExchangeType::INFORMATIONAL)[0].at), 330.0);
    assert_near(p.closed().expect("closed").0, 354.16);
    assert_near(dead_peer_after(&p), 24.16);
}

#[test]
fn gateway_requests_postpone_dpd() {
    let mut p = establish(live_config(None, Some(30)), ResponderConfig::default());
    p.run_until(s(20));
    p.responder.send_dpd();
    p.run_until(s(49));
    assert!(requests(&p, ExchangeType::INFORMATIONAL).is_empty(), "heard from the gateway at 20 s");
    assert_eq!(p.initiator.poll_timeout(), Some((p.start + s(50), Timer::Dpd)));
}

#[test]
fn dpd_every_30_s_keeps_an_answering_gateway_for_10_minutes() {
    let mut p = establish(live_config(None, Some(30)), ResponderConfig::default());
    p.run_until(s(600));
    assert_eq!(p.initiator.state(), State::Established);
    assert_eq!(names(&p), HAPPY);
    let dpd = requests(&p, ExchangeType::INFORMATIONAL);
    let expected: Vec<f64> = (1..=20).map(|k| 30.0 * f64::from(k)).collect();
    assert_eq!(times(&dpd), expected);
    let ids: Vec<u32> = p.responder.requests.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, (2..=21).collect::<Vec<u32>>());
    assert!(p.responder.requests.iter().all(|(_, payloads)| payloads.is_empty()), "empty INFORMATIONALs");
    assert_eq!(responses(&p, ExchangeType::INFORMATIONAL).len(), 20);
    assert!(p.timers.iter().all(|(_, k)| *k == Timer::Dpd) && p.timers.len() == 20);
    assert!(p.responder.errors.is_empty(), "{:?}", p.responder.errors);
    assert_eq!(p.initiator.poll_timeout(), Some((p.start + s(630), Timer::Dpd)));
}

#[test]
fn no_dpd_before_established() {
    let mut c = live_config(Some(1), Some(1));
    c.retransmit.tries = 1;
    let mut p = Pair::new(c, ResponderConfig { silent: true, ..Default::default() });
    assert_eq!(p.initiator.poll_timeout(), Some((p.start + s(4), Timer::Retransmit)));
    p.drive();
    assert!(p.timers.iter().all(|(_, k)| *k == Timer::Retransmit));
    assert!(matches!(closed_with(&p), CloseReason::Error(IkeError::Timeout { tries: 2, .. })));
    assert!(keepalives(&p).is_empty());
}

#[test]
fn poll_timeout_reports_the_timer_kinds() {
    let c = live_config(Some(20), Some(30));
    let nat = ResponderConfig { nat: true, ..Default::default() };
    let mut p = Pair::new(c.clone(), nat.clone());
    assert_eq!(p.initiator.poll_timeout(), Some((p.start + s(4), Timer::Retransmit)), "IKE_SA_INIT in flight");
    assert!(p.drive_until(|p| p.initiator.state() == State::Established));
    assert_eq!(p.initiator.poll_timeout(), Some((p.start + s(20), Timer::Keepalive)));
    p.run_until(s(20));
    assert_eq!(p.initiator.poll_timeout(), Some((p.start + s(30), Timer::Dpd)));
    // The gateway dies: DPD, its retransmissions and the keepalives interleave until it is declared dead.
    gateway_goes_silent(&mut p, true);
    p.run_until(s(30));
    assert_eq!(p.initiator.poll_timeout(), Some((p.start + s(34), Timer::Retransmit)), "DPD in flight");
    p.drive();
    let fired: Vec<(f64, Timer)> = p.timers.iter().map(|(t, k)| ((secs(*t) * 1000.0).round() / 1000.0, *k)).collect();
    assert_eq!(
        fired,
        [
            (20.0, Timer::Keepalive),
            (30.0, Timer::Dpd),
            (34.0, Timer::Retransmit),
            (40.0, Timer::Keepalive),
            (41.2, Timer::Retransmit),
            (54.16, Timer::Retransmit),
        ]
    );
    assert_eq!(times(&keepalives(&p)), [20.0, 40.0]);
    assert_near(dead_peer_after(&p), 24.16);
    assert_eq!(p.initiator.poll_timeout(), None);

    // An answering gateway: at 60 s a keepalive and a DPD are due together; one wake-up sends both.
    let mut p = establish(c, nat);
    p.run_until(s(60));
    let fired: Vec<(u64, Timer)> = p.timers.iter().map(|(t, k)| (t.as_secs(), *k)).collect();
    assert_eq!(fired, [(20, Timer::Keepalive), (30, Timer::Dpd), (40, Timer::Keepalive), (60, Timer::Keepalive)]);
    let at_60: Vec<&Datagram> = p.sent(Dir::ToResponder).filter(|d| d.at == s(60)).collect();
    assert_eq!(at_60.len(), 2);
    assert!(at_60[0].is_keepalive() && at_60[1].is(ExchangeType::INFORMATIONAL, false));
    assert_eq!(p.initiator.poll_timeout(), Some((p.start + s(80), Timer::Keepalive)));
    p.run_until(s(80));
    assert_eq!(p.initiator.poll_timeout(), Some((p.start + s(90), Timer::Dpd)));
}

#[test]
fn close_while_dpd_is_outstanding() {
    // The DPD request is lost; we close while it is outstanding. The Delete must not skip ahead of it: a gateway
    // with a window of 1 still expects the DPD's message ID and ignores the Delete, keeping a stale IKE SA.
    let mut p = establish(live_config(None, Some(30)), ResponderConfig::default());
    drop_first(&mut p, |d| d.is(ExchangeType::INFORMATIONAL, false));
    p.run_until(s(31));
    assert_eq!(requests(&p, ExchangeType::INFORMATIONAL).len(), 1, "the DPD went out (and was lost)");
    p.close();
    p.drive();
    assert_eq!(closed_with(&p), CloseReason::Local);
    assert!(p.responder.errors.is_empty(), "{:?}", p.responder.errors);
    assert!(p.responder.sa_dead(), "the gateway processed our Delete");
}

/// When the IKE SA asked for reauthentication, in seconds of virtual time (it stays up meanwhile).
fn reauth_at(p: &Pair) -> f64 {
    let at = p.events.iter().find_map(|(t, e)| matches!(e, Event::ReauthenticationDue).then_some(*t));
    assert!(p.closed().is_none(), "the IKE SA stays up until the caller replaced it: {:?}", p.events);
    assert_eq!(p.events.iter().filter(|(_, e)| matches!(e, Event::ReauthenticationDue)).count(), 1);
    secs(at.expect("ReauthenticationDue"))
}

#[test]
fn auth_lifetime_from_the_gateway_schedules_reauthentication() {
    // RFC 4478: AUTH_LIFETIME 100 s in IKE_AUTH: we reauthenticate at 90% of it, minus up to 10% jitter.
    let responder = ResponderConfig { auth_lifetime: Some(100), ..Default::default() };
    let mut p = establish(default_config(), responder);
    p.run_until(Duration::from_secs(200));
    let t = reauth_at(&p);
    assert!((81.0..=90.0).contains(&t), "reauthenticated after {t} s");

    // Our own, shorter reauth_lifetime wins.
    let mut c = default_config();
    c.reauth_lifetime = Some(Duration::from_secs(30));
    let responder = ResponderConfig { auth_lifetime: Some(100), ..Default::default() };
    let mut p = establish(c, responder);
    p.run_until(Duration::from_secs(200));
    let t = reauth_at(&p);
    assert!((27.0..=30.0).contains(&t), "reauthenticated after {t} s");

    // A lifetime of 0 cannot make us reconnect at once (loop protection): 10 s at the earliest, minus jitter.
    let responder = ResponderConfig { auth_lifetime: Some(0), ..Default::default() };
    let mut p = establish(default_config(), responder);
    p.run_until(Duration::from_secs(200));
    let t = reauth_at(&p);
    assert!((9.0..=10.0).contains(&t), "reauthenticated after {t} s");
}

#[test]
fn auth_lifetime_in_an_informational() {
    let mut p = establish(default_config(), ResponderConfig::default());
    let n = Notify::new(NotifyType::AUTH_LIFETIME, 50u32.to_be_bytes().to_vec());
    p.responder.send_informational(vec![Payload::Notify(n)]);
    p.run_until(Duration::from_secs(200));
    let t = reauth_at(&p);
    assert!((40.5..=45.0).contains(&t), "reauthenticated after {t} s");
    // A malformed one is ignored.
    let mut p = establish(default_config(), ResponderConfig::default());
    p.responder.send_informational(vec![Payload::Notify(Notify::new(NotifyType::AUTH_LIFETIME, vec![1]))]);
    p.run_until(Duration::from_secs(200));
    assert!(p.closed().is_none(), "{:?}", p.events);
    assert!(!p.events.iter().any(|(_, e)| matches!(e, Event::ReauthenticationDue)));
}

/// strongSwan 5.9 drops a response whose message ID is that of the request it is still processing ("ignoring
/// request with ID n, already processing"). Seen in the MOBIKE interop test under load: the gateway answered our
/// UPDATE_SA_ADDRESSES (ID 2) and, before that, started a Child SA rekey (its ID 2); our answer came back while it
/// still processed our request, was dropped, and the rekey (and the traffic) waited 4 s for its retransmission.
/// An answer sent while our own request with the same ID is unanswered goes out once more with that answer.
#[test]
fn an_answer_sharing_the_id_of_our_request_in_flight_is_sent_again_after_its_answer() {
    use crate::ike::EspProposal;
    use crate::wire::ProtocolId;
    let mut c = default_config();
    c.mobike = true;
    let mut p = establish(c, ResponderConfig { mobike: true, ..Default::default() });
    // The gateway's liveness checks 0 and 1: its next request ID is 2, as ours.
    for _ in 0..2 {
        p.responder.send_dpd();
        p.drive();
    }
    let is_rekey_answer =
        |d: &Datagram| d.header().is_some_and(|h| h.flags.response && h.exchange == ExchangeType::CREATE_CHILD_SA);
    let ccsa_answers = move |p: &Pair| p.sent(Dir::ToResponder).filter(|d| is_rekey_answer(d)).count();
    // The first answer is lost, as strongSwan drops it.
    let mut dropped = false;
    p.set_fate(
        move |d| {
            if is_rekey_answer(d) && !std::mem::replace(&mut dropped, true) {
                Fate::Drop
            } else {
                Fate::Deliver
            }
        },
    );
    let now = p.now;
    p.initiator.network_changed(now, "192.0.2.77:4500".parse().unwrap());
    p.drive_until(|_| true);
    let update = p.sent(Dir::ToResponder).last().and_then(|d| d.header()).unwrap();
    assert_eq!((update.exchange, update.message_id), (ExchangeType::INFORMATIONAL, 2));
    // The gateway's Child SA rekey (ID 2) reaches us before its answer to our update.
    let child = p.child().unwrap();
    let rekey = vec![
        Payload::Notify(Notify {
            protocol: ProtocolId::ESP.0,
            spi: child.outbound.spi.to_be_bytes().to_vec(),
            notify_type: NotifyType::REKEY_SA,
            data: vec![],
        }),
        Payload::Sa(vec![EspProposal::parse("aes256gcm16").unwrap().to_wire(1, 0x5000, false)]),
        Payload::Nonce(vec![0x44; 32]),
        Payload::TsI(child.ts_r.clone()),
        Payload::TsR(child.ts_i.clone()),
    ];
    let msg = p.responder.seal(2, ExchangeType::CREATE_CHILD_SA, false, &rekey);
    p.inject_to_initiator(&msg);
    assert_eq!(ccsa_answers(&p), 1);
    let answered_at = p.elapsed();
    // Our update is answered at once (no loss): well within a second, before any retransmission.
    p.run_until(answered_at + Duration::from_secs(1));
    assert!(p.events.iter().any(|(_, e)| matches!(e, Event::ChildSaInstalled(c) if c.outbound.spi == 0x5000)));
    assert_eq!(ccsa_answers(&p), 2, "the answer went out again once the update was answered");
    let again = p.sent(Dir::ToResponder).filter(|d| d.header().is_some_and(|h| h.flags.response)).last().unwrap();
    assert!(again.at - answered_at < Duration::from_secs(1), "at once, not after a retransmission: {:?}", again.at);
}
