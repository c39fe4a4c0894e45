//! Handshake CPU (issue 14): a full IKE_SA_INIT (+ IKE_INTERMEDIATE) + IKE_AUTH handshake with PSK
//! authentication, our initiator against the simulated responder (`ike::sim`, the `sim` feature of
//! `ikelink-proto`), both in this process and on one core, the network a zero-latency in-memory queue. Two suites
//! that differ only in the key exchange: x25519 alone, and x25519 + ML-KEM-768 as an additional key exchange in
//! IKE_INTERMEDIATE (RFC 9370). Each iteration is both peers' whole work: key generation, both sides of every key
//! exchange, key derivation, encryption, AUTH, the Child SA.
//!
//! Beside it the raw key exchange operations, as the handshake uses them (`crypto::KeyExchange`), so that the
//! ratio of the two handshakes can be explained: per handshake the initiator generates and completes every key
//! exchange, the responder answers it (`respond`: a fresh X25519 key and the agreement, or ML-KEM
//! encapsulation).
//!
//! `cargo bench -p ikelink --bench handshake -- --measurement-time 3 --warm-up-time 1`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use ikelink::crypto::{Group, KeyExchange};
use ikelink::ike::sim::{config, Pair, ResponderConfig};
use ikelink::ike::{EspProposal, IkeProposal, State};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const ESP: &str = "aes256gcm16";

const SUITES: [(&str, &str); 2] =
    [("x25519", "aes256gcm16-prfsha256-x25519"), ("x25519+mlkem768", "aes256gcm16-prfsha256-x25519-ke1_mlkem768")];

fn responder(ike: &str) -> ResponderConfig {
    ResponderConfig {
        ike_proposals: vec![IkeProposal::parse(ike).expect("IKE proposal")],
        esp_proposals: vec![EspProposal::parse(ESP).expect("ESP proposal")],
        fragmentation: true,
        ..ResponderConfig::default()
    }
}

/// One handshake, from building the initiator to its `Established`; returns the pair to drop outside the timing.
fn handshake(ike: &str) -> Pair {
    let mut p = Pair::new(config(ike, ESP), responder(ike));
    let done = p.drive_until(|p| p.initiator.state() == State::Established);
    assert!(done && p.child().is_some(), "{ike}: not established: {:?}", p.events);
    p
}

fn bench_handshake(c: &mut Criterion) {
    // Sanity, once, untimed: the suites negotiate what they say (one IKE_INTERMEDIATE for the hybrid).
    for (name, ike) in SUITES {
        let p = handshake(ike);
        let bytes: usize = p.log.iter().map(|d| d.payload.len()).sum();
        eprintln!("{name}: {} datagrams, {bytes} bytes of IKE", p.log.len());
        let pq = ike.contains("mlkem");
        assert_eq!(p.session().expect("session").ike_suite.addke[0].is_some(), pq, "{ike}");
        assert_eq!(p.responder.intermediate_exchanges, usize::from(pq), "{ike}");
        assert!(p.responder.errors.is_empty(), "{:?}", p.responder.errors);
    }
    let mut g = c.benchmark_group("handshake");
    for (name, ike) in SUITES {
        g.bench_function(name, |b| {
            b.iter_with_large_drop(|| handshake(black_box(ike)));
        });
    }
    g.finish();
}

fn bench_kex(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::from_seed([7; 32]);
    let mut g = c.benchmark_group("kex");

    // X25519: the initiator's key pair, its agreement with the responder's value, and the responder's answer
    // (a fresh key pair and the agreement).
    let peer = KeyExchange::generate(Group::Curve25519, &mut rng).expect("x25519");
    let ours = KeyExchange::generate(Group::Curve25519, &mut rng).expect("x25519");
    g.bench_function("x25519/keygen", |b| {
        b.iter(|| KeyExchange::generate(Group::Curve25519, &mut rng).expect("x25519"));
    });
    g.bench_function("x25519/shared", |b| {
        b.iter(|| ours.shared_secret(black_box(peer.public_value())).expect("x25519 shared"));
    });
    g.bench_function("x25519/respond", |b| {
        b.iter(|| KeyExchange::respond(Group::Curve25519, black_box(peer.public_value()), &mut rng).expect("x25519"));
    });

    // ML-KEM-768: the initiator's key pair (encapsulation key in its KE payload), the responder's encapsulation
    // to it (`respond`, with FIPS 203's input check), the initiator's decapsulation (`shared_secret`).
    let kem = KeyExchange::generate(Group::MlKem768, &mut rng).expect("ML-KEM-768");
    let (ct, _) = KeyExchange::respond(Group::MlKem768, kem.public_value(), &mut rng).expect("encapsulate");
    g.bench_function("mlkem768/keygen", |b| {
        b.iter(|| KeyExchange::generate(Group::MlKem768, &mut rng).expect("ML-KEM-768"));
    });
    g.bench_function("mlkem768/encapsulate", |b| {
        b.iter(|| KeyExchange::respond(Group::MlKem768, black_box(kem.public_value()), &mut rng).expect("encaps"));
    });
    g.bench_function("mlkem768/decapsulate", |b| {
        b.iter(|| kem.shared_secret(black_box(&ct)).expect("decaps"));
    });
    g.finish();
}

criterion_group!(benches, bench_handshake, bench_kex);
criterion_main!(benches);
