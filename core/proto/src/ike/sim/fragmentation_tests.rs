//! RFC 7383 IKE fragmentation against the scripted responder: both directions fragmented, loss, reordering,
//! duplication and re-fragmented retransmissions, hostile fragments (forged, too many, too large, out of range,
//! floods), and fragmentation that was not negotiated.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use super::tests::*;
use super::*;
use crate::ike::{IkeError, State};
use crate::wire::{self, payload_type, ExchangeType, NotifyType, Payload};

/// Our IDi: big enough that IKE_AUTH needs several fragments at a small MTU.
fn big_config(ike: &str, esp: &str, mtu: u16) -> IkeConfig {
    let mut c = config(ike, esp);
    c.local_id = fqdn(&format!("{}.client.example.org", "x".repeat(3000)));
    c.fragment_mtu = mtu;
    c
}

/// A gateway that supports fragmentation and answers IKE_AUTH with a large response.
fn fragmenting_responder(mtu: u16, response_len: usize) -> ResponderConfig {
    ResponderConfig {
        fragmentation: true,
        fragment_mtu: mtu,
        auth_response_len: Some(response_len),
        ..Default::default()
    }
}

const GCM: (&str, &str) = ("aes256gcm16-prfsha256-x25519", "aes256gcm16");
const CBC: (&str, &str) = ("aes256-sha256-modp2048", "aes256-sha256");

/// The IPv4 and UDP headers in front of every datagram.
const IP_UDP: usize = 28;

fn has_notify(d: &Datagram, t: NotifyType) -> bool {
    d.message().is_some_and(|m| m.payloads.iter().any(|p| matches!(p, Payload::Notify(n) if n.notify_type == t)))
}

/// Checks one transmission of a fragmented message: each datagram fits `mtu`, carries exactly one SKF payload,
/// the fragments are numbered 1..=N with Total Fragments N, and only #1 names the first inner payload. Returns N.
fn check_fragments(set: &[&Datagram], mtu: u16, first_inner: u8) -> usize {
    assert!(set.len() >= 2, "expected a fragmented message, got {} datagram(s)", set.len());
    let n = set.len();
    for (i, d) in set.iter().enumerate() {
        assert!(d.payload.len() + IP_UDP <= usize::from(mtu), "datagram of {} bytes exceeds {mtu}", d.payload.len());
        let m = d.message().expect("decodes");
        assert_eq!(m.header.next_payload, payload_type::SKF, "SKF on the wire");
        assert_eq!(m.payloads.len(), 1);
        let f = d.skf().expect("an SKF payload");
        assert_eq!(usize::from(f.fragment_number), i + 1, "fragments in order 1..N");
        assert_eq!(usize::from(f.total_fragments), n);
        let expect = if i == 0 { first_inner } else { 0 };
        assert_eq!(f.first_inner, expect, "fragment {}: Next Payload", i + 1);
    }
    n
}

#[test]
fn both_directions_fragmented_within_the_limit() {
    for (ike, esp) in [GCM, CBC] {
        for nat in [false, true] {
            let responder = ResponderConfig { nat, ..fragmenting_responder(576, 4000) };
            let p = established_pair(big_config(ike, esp, 576), responder);
            assert_eq!(names(&p), HAPPY, "{ike} nat={nat}");
            assert_eq!(p.elapsed(), Duration::ZERO, "no retransmission needed");
            assert_keys_match(&p);
            assert!(p.responder.errors.is_empty(), "{:?}", p.responder.errors);
            assert_eq!(p.session().expect("Established").remote_id, "gw.example.net");
            // Both announced support in IKE_SA_INIT.
            assert_eq!(p.responder.peer_fragmentation, Some(true));
            assert!(has_notify(requests(&p, ExchangeType::IKE_SA_INIT)[0], NotifyType::IKEV2_FRAGMENTATION_SUPPORTED));
            assert!(has_notify(responses(&p, ExchangeType::IKE_SA_INIT)[0], NotifyType::IKEV2_FRAGMENTATION_SUPPORTED));
            // Ours: IDi first.
            let ours = requests(&p, ExchangeType::IKE_AUTH);
            let n = check_fragments(&ours, 576, payload_type::IDI);
            assert!(n >= 6, "3 KB of IDi at 576 bytes: {n} fragments");
            assert_eq!(p.responder.reassembled, [(1, n as u16)], "the gateway reassembled our IKE_AUTH");
            assert_eq!(p.responder.fragments_received, n);
            // Theirs: IDr first, 4000 bytes of inner payloads.
            let theirs = responses(&p, ExchangeType::IKE_AUTH);
            let m = check_fragments(&theirs, 576, payload_type::IDR);
            assert!(m >= 8, "{m} fragments");
            let socket = if nat { SocketKind::NatT } else { SocketKind::Ike };
            assert!(ours.iter().chain(&theirs).all(|d| d.socket == socket));
            if nat {
                assert!(ours.iter().all(|d| d.payload[..4] == [0; 4] && d.dst.port() == 4500));
            }
        }
    }
}

#[test]
fn small_messages_are_not_fragmented() {
    // Negotiated, but everything fits: plain SK messages.
    let responder = ResponderConfig { fragmentation: true, ..Default::default() };
    let mut p = established_pair(default_config(), responder);
    p.responder.send_dpd();
    p.drive();
    assert_eq!(p.responder.responses.len(), 1);
    assert!(p.log.iter().all(|d| d.skf().is_none()));
    assert_eq!(p.responder.fragments_received, 0);
}

#[test]
fn fragmented_request_from_the_gateway() {
    let responder = fragmenting_responder(576, 1000);
    let mut p = established_pair(big_config(GCM.0, GCM.1, 576), responder);
    p.responder.send_informational(vec![Payload::VendorId(vec![0x77; 3000])]);
    let sent = p.responder.outstanding_request().len();
    assert!(sent >= 6, "{sent} fragments");
    p.drive();
    assert_eq!(p.responder.responses.len(), 1, "answered once the request was whole");
    let (id, payloads, _) = &p.responder.responses[0];
    assert_eq!((*id, payloads.len()), (0, 0));
    // A retransmission of all fragments is answered once, on its first fragment (RFC 7383 §2.6.1).
    p.responder.retransmit_request();
    p.drive();
    let answers: Vec<&Datagram> = responses_from_us(&p);
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0].payload, answers[1].payload, "the cached answer");
    assert_eq!(p.initiator.state(), State::Established);
    assert!(p.responder.errors.is_empty(), "{:?}", p.responder.errors);
}

fn responses_from_us(p: &Pair) -> Vec<&Datagram> {
    p.sent(Dir::ToResponder).filter(|d| d.is(ExchangeType::INFORMATIONAL, true)).collect()
}

/// (direction, fragment number) of the first transmission to lose; everything else reversed and duplicated.
fn reorder_duplicate_lose(p: &mut Pair, lose: Vec<(Dir, u16)>) {
    let mut lost: Vec<(Dir, u16)> = Vec::new();
    p.set_fate(move |d| {
        let Some(f) = d.skf() else { return Fate::Deliver };
        let key = (d.dir, f.fragment_number);
        if lose.contains(&key) && !lost.contains(&key) {
            lost.push(key);
            return Fate::Drop;
        }
        // Reversed (fragment N first), then all of them once more, reversed again.
        let total = u64::from(f.total_fragments);
        let n = u64::from(f.fragment_number);
        let ms = Duration::from_millis;
        Fate::Replace(vec![(ms(total - n), d.payload.clone()), (ms(2 * total - n), d.payload.clone())])
    });
}

#[test]
fn fragments_reordered_duplicated_and_lost() {
    let mut p = Pair::new(big_config(GCM.0, GCM.1, 576), fragmenting_responder(576, 4000));
    reorder_duplicate_lose(&mut p, vec![(Dir::ToResponder, 2), (Dir::ToInitiator, 3)]);
    p.drive();
    assert_eq!(names(&p), HAPPY);
    assert_keys_match(&p);
    let n = p.responder.reassembled[0].1 as usize;
    assert_eq!(p.responder.reassembled, [(1, n as u16)]);
    // Our fragment 2 was lost: one retransmission at 4 s, which completes it.
    let ours = requests(&p, ExchangeType::IKE_AUTH);
    assert_eq!(ours.len(), 2 * n);
    assert!(ours[n..].iter().all(|d| d.at == Duration::from_secs(4)));
    assert_eq!(
        ours[..n].iter().map(|d| &d.payload).collect::<Vec<_>>(),
        ours[n..].iter().map(|d| &d.payload).collect::<Vec<_>>(),
        "a retransmission resends the same fragments"
    );
    // Their fragment 3 was lost in the first answer; the retransmission's first fragment got it resent.
    let (t, _) = p.events.iter().find(|(_, e)| matches!(e, Event::Established(_))).expect("Established");
    assert!(*t > Duration::from_secs(4) && *t < Duration::from_millis(4500), "established at {t:?}");
    assert!(p.responder.retransmissions_answered >= 1);
    assert!(p.responder.errors.is_empty(), "{:?}", p.responder.errors);
}

#[test]
fn a_lost_response_fragment_is_recovered_by_retransmission() {
    let mut p = Pair::new(big_config(GCM.0, GCM.1, 576), fragmenting_responder(576, 4000));
    let mut dropped = false;
    p.set_fate(move |d| match d.skf() {
        Some(f) if d.dir == Dir::ToInitiator && f.fragment_number == f.total_fragments && !dropped => {
            dropped = true;
            Fate::Drop
        }
        _ => Fate::Deliver,
    });
    p.drive();
    assert_eq!(names(&p), HAPPY);
    let n = p.responder.reassembled[0].1 as usize;
    assert_eq!(requests(&p, ExchangeType::IKE_AUTH).len(), 2 * n, "one retransmission");
    assert_eq!(p.responder.retransmissions_answered, 1, "answered on the first fragment only");
    let theirs = responses(&p, ExchangeType::IKE_AUTH);
    let m = theirs.len() / 2;
    assert_eq!(
        theirs[..m].iter().map(|d| &d.payload).collect::<Vec<_>>(),
        theirs[m..].iter().map(|d| &d.payload).collect::<Vec<_>>()
    );
    assert_near(p.elapsed(), 4.0);
}

#[test]
fn a_retransmission_with_more_fragments_restarts_reassembly() {
    // First answer in few large fragments; its fragment 2 is lost and fragment 3 arrives late, in the middle of
    // the second answer, which the gateway cut into more, smaller fragments (RFC 7383 §2.6).
    let responder = ResponderConfig { refragment_mtu: Some(576), ..fragmenting_responder(1280, 4000) };
    let mut p = Pair::new(big_config(GCM.0, GCM.1, 1280), responder);
    p.set_fate(move |d| {
        let Some(f) = d.skf() else { return Fate::Deliver };
        if d.dir != Dir::ToInitiator {
            return Fate::Deliver;
        }
        let ms = Duration::from_millis;
        match (d.at < Duration::from_secs(1), f.fragment_number) {
            (true, 2) => Fate::Drop,
            (true, 3) => Fate::delay(d, Duration::from_micros(4_001_500)),
            (true, _) => Fate::Deliver,
            // The second answer arrives in reverse order, 1 ms apart.
            (false, n) => Fate::delay(d, ms(u64::from(f.total_fragments - n))),
        }
    });
    p.drive();
    assert_eq!(names(&p), HAPPY);
    assert_keys_match(&p);
    let theirs = responses(&p, ExchangeType::IKE_AUTH);
    let first: Vec<u16> = theirs.iter().filter(|d| d.at.is_zero()).map(|d| d.skf().unwrap().total_fragments).collect();
    let second: Vec<u16> =
        theirs.iter().filter(|d| !d.at.is_zero()).map(|d| d.skf().unwrap().total_fragments).collect();
    assert!(first.len() >= 4 && second.len() > first.len(), "{} then {} fragments", first.len(), second.len());
    assert!(
        first.iter().all(|t| usize::from(*t) == first.len()) && second.iter().all(|t| usize::from(*t) == second.len())
    );
    // Established from the second answer alone (the stale fragment 3 was ignored), without a second retransmission.
    let n = p.responder.reassembled[0].1 as usize;
    assert_eq!(requests(&p, ExchangeType::IKE_AUTH).len(), 2 * n);
    let (t, _) = p.events.iter().find(|(_, e)| matches!(e, Event::Established(_))).expect("Established");
    assert_eq!(*t, Duration::from_secs(4) + Duration::from_millis(second.len() as u64 - 1));
}

/// A pair whose IKE_AUTH response fragments were sent by the gateway but withheld from us: returns them (IKE
/// bytes) for the test to deliver in its own order, mixed with hostile ones. Virtual time stays at 0.
fn withheld_auth_response(responder: ResponderConfig) -> (Pair, Vec<Vec<u8>>) {
    let mut p = Pair::new(big_config(GCM.0, GCM.1, 576), responder);
    let held: Rc<RefCell<Vec<Vec<u8>>>> = Rc::default();
    let h = held.clone();
    p.set_fate(move |d| {
        if d.is(ExchangeType::IKE_AUTH, true) && d.at.is_zero() {
            h.borrow_mut().push(d.ike().expect("IKE").to_vec());
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    assert!(p.drive_until(|p| !responses(p, ExchangeType::IKE_AUTH).is_empty()));
    assert_eq!(p.initiator.state(), State::Authenticating);
    let fragments = held.borrow().clone();
    assert!(fragments.len() >= 4);
    (p, fragments)
}

/// Total Fragments of a fragment.
fn total_of(ike: &[u8]) -> u16 {
    match Message::decode(ike).expect("decodes").payloads.pop() {
        Some(Payload::Skf(f)) => f.total_fragments,
        other => panic!("not a fragment: {other:?}"),
    }
}

/// Deliver `fragments` and expect the IKE SA up at once (virtual time 0, no retransmission).
fn deliver_and_expect_established(p: &mut Pair, fragments: &[Vec<u8>]) {
    for f in fragments {
        p.inject_to_initiator(f);
    }
    assert_eq!(p.initiator.state(), State::Established, "events: {:?}", names(p));
    assert_eq!(names(p), HAPPY);
    assert_eq!(p.elapsed(), Duration::ZERO);
    let n = p.responder.reassembled[0].1 as usize;
    assert_eq!(requests(p, ExchangeType::IKE_AUTH).len(), n, "no retransmission");
    assert_keys_match(p);
}

/// An SKF message with a valid-looking header and fragment fields but random contents: what an off-path attacker
/// who learned the SPIs can send.
fn forged_fragment(like: &[u8], number: u16, total: u16, body_len: usize, rng: &mut ChaCha20Rng) -> Vec<u8> {
    let header = Header::decode(like).expect("header");
    let first = if number == 1 { payload_type::IDR } else { 0 };
    let mut msg = wire::encode_skf_prefix(&header, first, number, total, body_len);
    let mut body = vec![0u8; body_len];
    rng.fill_bytes(&mut body);
    msg.extend_from_slice(&body);
    msg
}

/// Forged datagrams made from the genuine fragments.
type Forgery = fn(&[Vec<u8>], &mut ChaCha20Rng) -> Vec<Vec<u8>>;

#[test]
fn forged_fragments_are_dropped_before_storage() {
    // Had any of these been stored, a genuine fragment would be taken for a duplicate of it (and the message
    // would reassemble to garbage), or the genuine set for an older transmission with fewer fragments: the IKE SA
    // could not come up from the genuine fragments alone.
    let forgeries: [Forgery; 2] = [
        // Fragments 2..=N of the genuine set: random bodies, and bit-flipped copies of the real ones.
        |genuine, rng| {
            let total = total_of(&genuine[0]);
            let mut out = Vec::new();
            for number in 2..=total {
                out.push(forged_fragment(&genuine[0], number, total, 200, rng));
                let mut flipped = genuine[usize::from(number) - 1].clone();
                let last = flipped.len() - 1;
                flipped[last] ^= 1;
                out.push(flipped);
            }
            out
        },
        // A "newer transmission" with more fragments.
        |genuine, rng| {
            let total = total_of(&genuine[0]);
            vec![forged_fragment(&genuine[0], 1, total + 1, 200, rng), forged_fragment(&genuine[0], 2, 64, 200, rng)]
        },
    ];
    for forge in forgeries {
        let (mut p, genuine) = withheld_auth_response(fragmenting_responder(576, 4000));
        let mut rng = ChaCha20Rng::seed_from_u64(11);
        let sent = p.log.len();
        for f in forge(&genuine, &mut rng) {
            p.inject_to_initiator(&f);
        }
        assert_eq!(p.log.len(), sent, "nothing sent in reaction");
        assert_eq!(p.initiator.state(), State::Authenticating);
        deliver_and_expect_established(&mut p, &genuine);
    }
}

#[test]
fn authenticated_fragments_out_of_range_are_rejected() {
    let (mut p, genuine) = withheld_auth_response(fragmenting_responder(576, 4000));
    let total = total_of(&genuine[0]);
    let (last, rest) = genuine.split_last().expect("fragments");
    for f in rest {
        p.inject_to_initiator(f);
    }
    // Fragment number 0, beyond Total Fragments, Total Fragments 0: refused without disturbing what is stored.
    for (number, t) in [(0, total), (total + 1, total), (0, 0), (1, 0), (u16::MAX, 2)] {
        let f = p.responder.seal_fragment(1, ExchangeType::IKE_AUTH, true, 0, number, t, &[0; 100]);
        p.inject_to_initiator(&f);
        assert_eq!(p.initiator.state(), State::Authenticating);
    }
    // Overlapping numbers: another fragment 2 of the same set (a duplicate: the first one stays), and a fragment of
    // an "older transmission" with fewer fragments: both ignored.
    let f = p.responder.seal_fragment(1, ExchangeType::IKE_AUTH, true, 0, 2, total, &[0; 100]);
    p.inject_to_initiator(&f);
    let f = p.responder.seal_fragment(1, ExchangeType::IKE_AUTH, true, payload_type::IDR, 1, total - 1, &[0; 100]);
    p.inject_to_initiator(&f);
    // Fragments for other message IDs and the request direction are not ours to reassemble.
    for (id, response) in [(0, true), (2, true), (1, false)] {
        let f = p.responder.seal_fragment(id, ExchangeType::IKE_AUTH, response, 0, total, total, &[0; 100]);
        p.inject_to_initiator(&f);
    }
    deliver_and_expect_established(&mut p, std::slice::from_ref(last));
}

#[test]
fn more_than_64_fragments_are_rejected() {
    // Authenticated first fragments claiming 65 or more fragments are refused before they take memory.
    let (mut p, genuine) = withheld_auth_response(fragmenting_responder(576, 4000));
    for t in [65, 1000, u16::MAX] {
        let f = p.responder.seal_fragment(1, ExchangeType::IKE_AUTH, true, payload_type::IDR, 1, t, &[0; 100]);
        p.inject_to_initiator(&f);
    }
    deliver_and_expect_established(&mut p, &genuine);

    // A gateway whose IKE_AUTH response comes in exactly 64 fragments: accepted; in 65: never reassembled.
    for (count, ok) in [(64, true), (65, false)] {
        let responder = ResponderConfig { fragment_count: Some(count), ..fragmenting_responder(576, 8000) };
        let mut p = Pair::new(big_config(GCM.0, GCM.1, 576), responder);
        p.drive();
        let theirs = responses(&p, ExchangeType::IKE_AUTH);
        assert!(theirs.iter().all(|d| d.skf().is_some_and(|f| f.total_fragments == count)));
        if ok {
            assert_eq!(names(&p), HAPPY);
            assert_eq!(theirs.len(), usize::from(count));
        } else {
            assert!(matches!(closed_with(&p), CloseReason::Error(IkeError::Timeout { tries: 6, .. })));
            assert_eq!(theirs.len(), 6 * usize::from(count), "each retransmission answered, never accepted");
        }
    }
}

#[test]
fn reassembled_size_is_limited_to_64_kib() {
    for (len, ok) in [(64 * 1024, true), (64 * 1024 + 1, false)] {
        let responder = ResponderConfig { fragment_count: Some(64), ..fragmenting_responder(576, len) };
        let mut p = Pair::new(big_config(GCM.0, GCM.1, 576), responder);
        p.drive();
        if ok {
            assert_eq!(names(&p), HAPPY, "{len} bytes");
            assert_keys_match(&p);
        } else {
            assert!(matches!(closed_with(&p), CloseReason::Error(IkeError::Timeout { tries: 6, .. })), "{len} bytes");
        }
    }
}

#[test]
fn a_flood_of_first_fragments_changes_nothing() {
    const FLOOD: usize = 10_000;
    let (mut p, genuine) = withheld_auth_response(fragmenting_responder(576, 4000));
    let total = total_of(&genuine[0]);
    let mut rng = ChaCha20Rng::seed_from_u64(12);
    let sent = p.log.len();
    // Forged first fragments, with every Total Fragments value.
    for i in 0..FLOOD {
        let t = 1 + (i % 64) as u16;
        p.inject_to_initiator(&forged_fragment(&genuine[0], 1, t, 64 + i % 500, &mut rng));
    }
    // The genuine first fragment replayed (authentic, our message ID): stored once, duplicates ignored.
    for _ in 0..FLOOD {
        p.inject_to_initiator(&genuine[0]);
    }
    // Authentic first fragments of "older transmissions" with fewer fragments: ignored.
    for i in 0..FLOOD {
        let t = 1 + (i % usize::from(total - 1)) as u16;
        let f = p.responder.seal_fragment(1, ExchangeType::IKE_AUTH, true, payload_type::IDR, 1, t, &[7; 300]);
        p.inject_to_initiator(&f);
    }
    // Authentic first fragments for message IDs we do not expect.
    for i in 0..FLOOD {
        let id = 2 + i as u32;
        let f = p.responder.seal_fragment(id, ExchangeType::IKE_AUTH, true, payload_type::IDR, 1, 2, &[7; 300]);
        p.inject_to_initiator(&f);
    }
    assert_eq!(p.log.len(), sent, "nothing sent in reaction");
    assert_eq!(p.initiator.state(), State::Authenticating);
    deliver_and_expect_established(&mut p, &genuine[1..]);
}

#[test]
fn a_flood_of_authentic_first_fragments_with_growing_totals() {
    // Each of the first 62 claims a newer transmission with more fragments and restarts reassembly: the state is
    // replaced, never accumulated; the rest are duplicates or older. The genuine set (64 fragments) replaces it.
    let responder = ResponderConfig { fragment_count: Some(64), ..fragmenting_responder(576, 8000) };
    let (mut p, genuine) = withheld_auth_response(responder);
    for i in 0..10_000u32 {
        let t = 2 + (i % 62) as u16;
        let f = p.responder.seal_fragment(1, ExchangeType::IKE_AUTH, true, payload_type::IDR, 2, t, &[9; 100]);
        p.inject_to_initiator(&f);
    }
    deliver_and_expect_established(&mut p, &genuine);
}

#[test]
fn not_negotiated_gateway_does_not_announce() {
    // Our big IKE_AUTH goes out whole; the gateway's SKF fragments (it fragments anyway) are dropped unread.
    let responder = ResponderConfig {
        fragmentation: false,
        fragment_always: true,
        fragment_mtu: 576,
        auth_response_len: Some(4000),
        ..Default::default()
    };
    let mut p = Pair::new(big_config(GCM.0, GCM.1, 576), responder);
    p.drive();
    assert_eq!(p.responder.peer_fragmentation, Some(true), "we announced");
    assert!(!has_notify(&p.log[1], NotifyType::IKEV2_FRAGMENTATION_SUPPORTED));
    let ours = requests(&p, ExchangeType::IKE_AUTH);
    assert_eq!(ours.len(), 6, "one datagram per transmission");
    assert!(ours.iter().all(|d| d.skf().is_none() && d.payload.len() > 3000));
    assert!(responses(&p, ExchangeType::IKE_AUTH).iter().all(|d| d.skf().is_some()));
    assert!(matches!(closed_with(&p), CloseReason::Error(IkeError::Timeout { tries: 6, .. })));
    assert!(p.responder.reassembled.is_empty());

    // The same gateway without the misbehaviour: big messages whole in both directions.
    let responder = ResponderConfig { fragment_mtu: 576, auth_response_len: Some(4000), ..Default::default() };
    let p = established_pair(big_config(GCM.0, GCM.1, 576), responder);
    assert_eq!(requests(&p, ExchangeType::IKE_AUTH).len(), 1);
    assert!(p.log.iter().all(|d| d.skf().is_none()));
    assert!(responses(&p, ExchangeType::IKE_AUTH)[0].payload.len() > 4000);
    assert_keys_match(&p);
}

#[test]
fn not_negotiated_fragmentation_disabled_on_our_side() {
    let mut c = big_config(GCM.0, GCM.1, 0);
    c.fragment_mtu = 0;
    let p = established_pair(c, fragmenting_responder(576, 4000));
    assert_eq!(p.responder.peer_fragmentation, Some(false), "we did not announce");
    assert!(!has_notify(&p.log[0], NotifyType::IKEV2_FRAGMENTATION_SUPPORTED));
    assert!(p.log.iter().all(|d| d.skf().is_none()), "nobody fragments");
    assert_eq!(requests(&p, ExchangeType::IKE_AUTH).len(), 1);
    assert_keys_match(&p);
}
