//! The opt-in legacy suites (issue 11) end to end in the simulator: our initiator negotiates each with a
//! responder that accepts only that suite, both sides derive the same keys, ESP packets sealed with one side's
//! keys open with the other's, and a legacy group can be reached through INVALID_KE_PAYLOAD. Legacy algorithms
//! stay out of the default proposals, so a gateway that offers only those finds no common proposal.

use std::time::Duration;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::tests::*;
use super::*;
use crate::crypto::Group;
use crate::esp::{EspSa, Opened};
use crate::ike::{EspProposal, IkeError, IkeProposal};
use crate::wire::ExchangeType;

/// A gateway that accepts exactly `ike` / `esp`, like a corporate gateway configured for one legacy suite.
fn only(ike: &str, esp: &str) -> ResponderConfig {
    ResponderConfig {
        ike_proposals: vec![IkeProposal::parse(ike).expect("IKE proposal")],
        esp_proposals: vec![EspProposal::parse(esp).expect("ESP proposal")],
        ..Default::default()
    }
}

/// (IKE proposal, ESP proposal, the IKE suite as the client prints it).
const LEGACY: [(&str, &str, &str); 8] = [
    ("3des-sha1-modp1024", "3des-sha1", "3des-sha1-prfsha1-modp1024"),
    ("aes128-sha1-modp1536", "aes128-sha1", "aes128-sha1-prfsha1-modp1536"),
    ("aes192-sha256-ecp256bp", "aes192-sha256", "aes192-sha256-prfsha256-ecp256bp"),
    ("aes192gcm16-prfsha1-ecp384bp", "aes192gcm16", "aes192gcm16-prfsha1-ecp384bp"),
    ("aes128gcm8-prfsha256-x448", "aes128gcm8", "aes128gcm8-prfsha256-x448"),
    ("aes256gcm12-prfsha384-modp2048", "aes256gcm12", "aes256gcm12-prfsha384-modp2048"),
    ("aes256gcm8-prfsha512-curve448", "aes192gcm8", "aes256gcm8-prfsha512-x448"),
    ("aes256-sha256-x25519", "3des-sha256", "aes256-sha256-prfsha256-x25519"),
];

/// Seals a few packets with one peer's outbound keys and opens them with the other's inbound keys, both ways.
fn esp_round_trip(p: &Pair) {
    let ours = p.child().expect("the initiator installed a Child SA");
    let theirs = p.responder.child.as_ref().expect("the responder has a Child SA");
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    for (tx, rx) in [(&ours.outbound, &theirs.inbound), (&theirs.outbound, &ours.inbound)] {
        let mut tx = EspSa::outbound(tx).unwrap();
        let mut rx = EspSa::inbound(rx, 1024).unwrap();
        let mut buf = vec![0u8; 1600];
        for len in [20usize, 21, 60, 1400] {
            let mut inner = vec![0u8; len];
            inner[0] = 0x45;
            inner.iter_mut().enumerate().skip(1).for_each(|(i, b)| *b = i as u8);
            let n = tx.seal(&inner, &mut buf, &mut rng).unwrap();
            let mut pkt = buf[..n].to_vec();
            match rx.open(&mut pkt).unwrap() {
                Opened::Packet { inner: r, .. } => assert_eq!(&pkt[r], &inner[..]),
                Opened::Dummy => panic!("dummy"),
            }
        }
        assert_eq!(rx.stats().packets, 4);
    }
}

#[test]
fn each_legacy_suite_establishes_and_carries_esp() {
    for (ike, esp, shown) in LEGACY {
        let p = established_pair(config(ike, esp), only(ike, esp));
        assert_eq!(names(&p), HAPPY, "{ike}");
        assert_eq!(p.elapsed(), Duration::ZERO, "no retransmission needed");
        let info = p.session().expect("Established event");
        assert_eq!(info.ike_suite.to_string(), shown);
        assert_eq!(Some(info.ike_suite), p.responder.ike_suite);
        assert!(!info.ike_suite.legacy_algorithms().is_empty() || esp.starts_with("3des"), "{ike}");
        let child = p.child().expect("Child SA");
        assert_eq!(child.suite.to_string(), esp);
        assert_eq!(child.outbound.enc_key.len(), child.suite.encr.keymat_len());
        assert_eq!(child.outbound.integ_key.len(), child.suite.integ.map_or(0, |i| i.key_len()));
        assert_keys_match(&p);
        assert!(p.responder.established());
        assert_eq!(p.responder.peer_auth_ok, Some(true), "{ike}: the gateway verified our AUTH");
        assert!(p.responder.errors.is_empty(), "{ike}: {:?}", p.responder.errors);
        esp_round_trip(&p);
    }
}

/// A profile listing a legacy proposal after a modern one: the gateway's choice decides, the KE group of the
/// first IKE_SA_INIT is the first proposal's, and a gateway that insists on MODP-1024 gets it through
/// INVALID_KE_PAYLOAD (§1.2).
#[test]
fn legacy_group_reached_through_invalid_ke_payload() {
    let mut c = config("aes256gcm16-prfsha256-x25519", "aes256gcm16");
    c.ike_proposals.push(IkeProposal::parse("3des-sha1-modp1024").unwrap());
    c.esp_proposals.push(EspProposal::parse("3des-sha1").unwrap());
    let responder =
        ResponderConfig { required_group: Some(Group::Modp1024), ..only("3des-sha1-modp1024", "3des-sha1") };
    let p = established_pair(c, responder);
    let inits = requests(&p, ExchangeType::IKE_SA_INIT);
    assert_eq!(inits.len(), 2);
    let groups: Vec<u16> = inits
        .iter()
        .filter_map(|d| {
            d.message()?.payloads.iter().find_map(|x| match x {
                crate::wire::Payload::Ke(k) => Some(k.group),
                _ => None,
            })
        })
        .collect();
    assert_eq!(groups, vec![31, 2]);
    let info = p.session().expect("Established");
    assert_eq!(info.ike_suite.to_string(), "3des-sha1-prfsha1-modp1024");
    assert_eq!(p.child().unwrap().suite.to_string(), "3des-sha1");
    assert_keys_match(&p);
    esp_round_trip(&p);
}

/// IKE messages under 3DES and HMAC-SHA1-96 are fragmented (RFC 7383) and reassembled like any other: SKF
/// payloads with 8-byte IVs and blocks.
#[test]
fn fragmented_ike_auth_under_3des() {
    let (ike, esp) = ("3des-sha1-modp1536", "3des-sha1");
    let mut c = config(ike, esp);
    c.local_id = fqdn(&format!("{}.client.example.org", "x".repeat(2000)));
    c.fragment_mtu = 576;
    let responder =
        ResponderConfig { fragmentation: true, fragment_mtu: 576, auth_response_len: Some(2500), ..only(ike, esp) };
    let p = established_pair(c, responder);
    assert_eq!(names(&p), HAPPY);
    let ours = requests(&p, ExchangeType::IKE_AUTH);
    let theirs = responses(&p, ExchangeType::IKE_AUTH);
    assert!(ours.len() >= 4 && theirs.len() >= 5, "{} / {} fragments", ours.len(), theirs.len());
    assert!(ours.iter().chain(&theirs).all(|d| d.skf().is_some() && d.payload.len() + 28 <= 576));
    assert_eq!(p.responder.reassembled.len(), 1);
    assert_keys_match(&p);
}

/// Without the opt-in, a gateway that only speaks legacy suites finds nothing in common: IKE in IKE_SA_INIT,
/// ESP in IKE_AUTH.
#[test]
fn legacy_only_gateway_needs_the_opt_in() {
    let modern = default_config();
    let mut p = Pair::new(modern.clone(), only("3des-sha1-modp1024", "aes256gcm16"));
    p.drive();
    assert_eq!(closed_with(&p), CloseReason::Error(IkeError::NoProposalChosen));
    let mut p = Pair::new(modern.clone(), only("aes256gcm16-prfsha256-x25519", "aes128gcm8"));
    p.drive();
    assert_eq!(closed_with(&p), CloseReason::Error(IkeError::NoProposalChosen));
    // Our defaults carry none of them either.
    let mut c = modern;
    c.ike_proposals = IkeProposal::defaults();
    c.esp_proposals = EspProposal::defaults();
    for (ike, esp, _) in LEGACY {
        let mut p = Pair::new(c.clone(), only(ike, esp));
        p.drive();
        let refused = closed_with(&p);
        // The last suite's IKE part is modern: then the ESP part is what is refused.
        assert_eq!(refused, CloseReason::Error(IkeError::NoProposalChosen), "{ike} / {esp}");
    }
}
