//! ML-KEM (FIPS 203) through [`KeyExchange`]: NIST's ACVP known answers, a round trip per parameter set as the
//! IKE initiator and responder use it (draft-ietf-ipsecme-ikev2-mlkem), and the refusal of malformed
//! encapsulation keys and ciphertexts.

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::{CryptoError, Group, KeyExchange};

const KATS: &str = include_str!("testdata/mlkem-acvp.txt");

struct Kat {
    group: Group,
    ek: Vec<u8>,
    dk: Vec<u8>,
    c: Vec<u8>,
    k: Vec<u8>,
}

/// The cases of `testdata/mlkem-acvp.txt`: values carry over until redefined; each `k` completes a case.
fn kats() -> Vec<Kat> {
    let (mut group, mut ek, mut dk, mut c) = (None, Vec::new(), Vec::new(), Vec::new());
    let mut out = Vec::new();
    for line in KATS.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, value)) = line.split_once(" = ") else { continue };
        match name {
            "set" => {
                group = Some(match value {
                    "ML-KEM-512" => Group::MlKem512,
                    "ML-KEM-768" => Group::MlKem768,
                    "ML-KEM-1024" => Group::MlKem1024,
                    other => panic!("unknown parameter set {other}"),
                })
            }
            "ek" => ek = hex::decode(value).unwrap(),
            "dk" => dk = hex::decode(value).unwrap(),
            "c" => c = hex::decode(value).unwrap(),
            "k" => out.push(Kat {
                group: group.unwrap(),
                ek: ek.clone(),
                dk: dk.clone(),
                c: c.clone(),
                k: hex::decode(value).unwrap(),
            }),
            other => panic!("unknown field {other}"),
        }
    }
    out
}

#[test]
fn acvp_known_answers() {
    let kats = kats();
    assert_eq!(kats.len(), 36, "2 encapsulation + 10 decapsulation cases for each of the 3 parameter sets");
    for (i, t) in kats.iter().enumerate() {
        assert_eq!((t.ek.len(), t.c.len()), (t.group.public_len(), t.group.response_len()), "case {i}");
        // The published encapsulation key passes the responder's checks (FIPS 203 §7.2).
        let mut rng = ChaCha20Rng::from_seed([5; 32]);
        let (ct, _) = KeyExchange::respond(t.group, &t.ek, &mut rng).unwrap();
        assert_eq!(ct.len(), t.group.response_len());
        let initiator = KeyExchange::from_kem_keys(t.group, &t.dk, &t.ek).unwrap();
        let k = initiator.shared_secret(&t.c).unwrap();
        assert_eq!(&k[..], &t.k[..], "case {i}: shared secret (implicit rejection for modified ciphertexts)");
    }
}

#[test]
fn initiator_and_responder_agree_for_each_parameter_set() {
    let mut rng = ChaCha20Rng::from_seed([3; 32]);
    for g in [Group::MlKem512, Group::MlKem768, Group::MlKem1024] {
        assert!(g.is_kem() && g.shared_len() == 32);
        assert_eq!(Group::from_id(g.id()), Some(g));
        let initiator = KeyExchange::generate(g, &mut rng).unwrap();
        assert_eq!(initiator.public_value().len(), g.public_len());
        let (ct, responder_secret) = KeyExchange::respond(g, initiator.public_value(), &mut rng).unwrap();
        assert_eq!(ct.len(), g.response_len());
        let initiator_secret = initiator.shared_secret(&ct).unwrap();
        assert_eq!(initiator_secret.len(), 32);
        assert_eq!(*initiator_secret, *responder_secret, "{g:?}");
        // Another ciphertext of the right length decapsulates to a different (implicit-rejection) secret.
        let mut bad = ct.clone();
        bad[0] ^= 1;
        assert_ne!(*initiator.shared_secret(&bad).unwrap(), *responder_secret, "{g:?}");
    }
}

#[test]
fn malformed_values_are_refused() {
    let mut rng = ChaCha20Rng::from_seed([4; 32]);
    for g in [Group::MlKem512, Group::MlKem768, Group::MlKem1024] {
        let initiator = KeyExchange::generate(g, &mut rng).unwrap();
        let ek = initiator.public_value().to_vec();
        // Wrong lengths, both ways.
        for len in [0, g.public_len() - 1, g.public_len() + 1] {
            let mut v = ek.clone();
            v.resize(len, 0);
            assert!(matches!(KeyExchange::respond(g, &v, &mut rng), Err(CryptoError::InvalidPublicValue)), "{g:?}");
        }
        for len in [0, g.response_len() - 1, g.response_len() + 1] {
            assert!(matches!(initiator.shared_secret(&vec![7; len]), Err(CryptoError::InvalidPublicValue)), "{g:?}");
        }
        // FIPS 203 §7.2 modulus check: a coefficient of 0xfff (>= q = 3329) in the first 12-bit slot.
        let mut v = ek.clone();
        v[0] = 0xff;
        v[1] |= 0x0f;
        assert!(matches!(KeyExchange::respond(g, &v, &mut rng), Err(CryptoError::InvalidPublicValue)), "{g:?}");
    }
    // A KEM has no scalar form.
    assert!(KeyExchange::from_scalar(Group::MlKem768, &[1; 32]).is_err());
}
