//! Key exchange: MODP groups (RFC 3526, constant-time crypto-bigint), ECP groups (RFC 5903) and Curve25519
//! (RFC 8031) via aws-lc-rs, with peer value validation per RFC 6989.

use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey};
use crypto_bigint::modular::{MontyForm, MontyParams};
use crypto_bigint::{Odd, Uint, U2048, U3072, U4096};
use zeroize::{Zeroize, Zeroizing};

use super::{CryptoError, Group};

/// How many random scalars we try before giving up (a rejection is astronomically rare).
const MAX_SCALAR_TRIES: usize = 16;

/// RFC 3526 2048-bit MODP prime.
const P2048: Odd<U2048> = Odd::<U2048>::from_be_hex(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74\
     020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437\
     4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED\
     EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05\
     98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB\
     9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B\
     E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718\
     3995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF",
);

/// RFC 3526 3072-bit MODP prime.
const P3072: Odd<U3072> = Odd::<U3072>::from_be_hex(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74\
     020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437\
     4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED\
     EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05\
     98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB\
     9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B\
     E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718\
     3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33\
     A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7\
     ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864\
     D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2\
     08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
);

/// RFC 3526 4096-bit MODP prime.
const P4096: Odd<U4096> = Odd::<U4096>::from_be_hex(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74\
     020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437\
     4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED\
     EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05\
     98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB\
     9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B\
     E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718\
     3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33\
     A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7\
     ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864\
     D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2\
     08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A92108011A723C12A787E6D7\
     88719A10BDBA5B2699C327186AF4E23C1A946834B6150BDA2583E9CA2AD44CE8\
     DBBBC2DB04DE8EF92E8EFC141FBECAA6287C59474E6BC05D99B2964FA090C3A2\
     233BA186515BE7ED1F612970CEE2D7AFB81BDD762170481CD0069127D5B05AA9\
     93B4EA988D8FDDC186FFB7DC90A6C08F4DF435C934063199FFFFFFFFFFFFFFFF",
);

/// The private half of a key exchange.
enum Secret {
    /// MODP private exponent, big-endian.
    Modp(Zeroizing<Vec<u8>>),
    /// ECDH or X25519 private key (aws-lc-rs cleanses it on drop).
    Ec(PrivateKey),
}

/// One side of a Diffie-Hellman exchange: our private key and public value (the KE payload data, §3.4).
/// The private key is zeroized on drop.
pub struct KeyExchange {
    group: Group,
    public: Vec<u8>,
    secret: Secret,
}

impl std::fmt::Debug for KeyExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyExchange").field("group", &self.group).finish_non_exhaustive()
    }
}

impl KeyExchange {
    /// Draws a private key from `rng`: a random exponent for MODP, a random scalar for ECP / X25519
    /// (retried, bounded, if the backend rejects it).
    pub fn generate(group: Group, rng: &mut dyn rand_core::CryptoRng) -> Result<KeyExchange, CryptoError> {
        match group {
            Group::Modp2048 | Group::Modp3072 | Group::Modp4096 => {
                let mut exp = Zeroizing::new(vec![0u8; modp_exponent_len(group)]);
                rng.fill_bytes(&mut exp);
                // Fix the top bit: full-length exponent, never 0 or 1.
                if let Some(b) = exp.first_mut() {
                    *b |= 0x80;
                }
                Self::from_scalar(group, &exp)
            }
            _ => {
                let mut last = CryptoError::KeyRejected;
                for _ in 0..MAX_SCALAR_TRIES {
                    let mut scalar = Zeroizing::new(vec![0u8; ec_scalar_len(group)]);
                    rng.fill_bytes(&mut scalar);
                    if group == Group::Ecp521 {
                        // 521-bit order: clear the 7 unused top bits so most draws are in range.
                        if let Some(b) = scalar.first_mut() {
                            *b &= 0x01;
                        }
                    }
                    match Self::from_scalar(group, &scalar) {
                        Ok(kx) => return Ok(kx),
                        Err(e) => last = e,
                    }
                }
                Err(last)
            }
        }
    }

    /// Builds the key exchange from an explicit private value: the big-endian exponent for MODP (at most
    /// the modulus length), the fixed-length big-endian scalar for ECP (RFC 5903 §8), the 32-byte scalar
    /// for X25519 (RFC 7748 §5).
    pub(crate) fn from_scalar(group: Group, scalar: &[u8]) -> Result<KeyExchange, CryptoError> {
        match group {
            Group::Modp2048 | Group::Modp3072 | Group::Modp4096 => {
                if scalar.is_empty() || scalar.len() > group.public_len() {
                    return Err(CryptoError::BadLength);
                }
                let mut generator = vec![0u8; group.public_len()];
                if let Some(last) = generator.last_mut() {
                    *last = 2;
                }
                let public = modp_pow(group, &generator, scalar)?;
                Ok(KeyExchange {
                    group,
                    public: public.to_vec(),
                    secret: Secret::Modp(Zeroizing::new(scalar.to_vec())),
                })
            }
            _ => {
                let key = PrivateKey::from_private_key(ec_alg(group), scalar).map_err(|_| CryptoError::KeyRejected)?;
                let public = key.compute_public_key().map_err(|_| CryptoError::Internal)?;
                let public = match group {
                    Group::Curve25519 => public.as_ref(),
                    // Uncompressed SEC1 point 0x04 || x || y; IKEv2 carries x || y (RFC 5903 §7).
                    _ => match public.as_ref().split_first() {
                        Some((0x04, xy)) => xy,
                        _ => return Err(CryptoError::Internal),
                    },
                };
                if public.len() != group.public_len() {
                    return Err(CryptoError::Internal);
                }
                Ok(KeyExchange { group, public: public.to_vec(), secret: Secret::Ec(key) })
            }
        }
    }

    /// The group.
    pub fn group(&self) -> Group {
        self.group
    }

    /// Our public value, exactly [`Group::public_len`] bytes (the KE payload's key exchange data).
    pub fn public_value(&self) -> &[u8] {
        &self.public
    }

    /// The shared secret g^ir (§2.14), after validating the peer's value (RFC 6989): MODP 1 < y < p-1
    /// and exactly the modulus length; ECP correct length and point on the curve (the secret is the
    /// x coordinate, RFC 5903 §7); X25519 correct length and a non-zero result (RFC 8031 §2.1).
    pub fn shared_secret(&self, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if peer.len() != self.group.public_len() {
            return Err(CryptoError::InvalidPublicValue);
        }
        match &self.secret {
            Secret::Modp(exp) => {
                if !modp_peer_valid(self.group, peer) {
                    return Err(CryptoError::InvalidPublicValue);
                }
                modp_pow(self.group, peer, exp)
            }
            Secret::Ec(key) => {
                let mut buf = [0u8; 1 + 132];
                let encoded: &[u8] = if self.group == Group::Curve25519 {
                    peer
                } else {
                    let (tag, rest) = buf.split_at_mut(1);
                    tag[0] = 0x04;
                    let dst = rest.get_mut(..peer.len()).ok_or(CryptoError::InvalidPublicValue)?;
                    dst.copy_from_slice(peer);
                    buf.get(..1 + peer.len()).ok_or(CryptoError::InvalidPublicValue)?
                };
                let unparsed = UnparsedPublicKey::new(ec_alg(self.group), encoded);
                agreement::agree(key, unparsed, CryptoError::InvalidPublicValue, |s| {
                    if s.iter().fold(0u8, |acc, b| acc | b) == 0 {
                        return Err(CryptoError::InvalidPublicValue);
                    }
                    Ok(Zeroizing::new(s.to_vec()))
                })
            }
        }
    }
}

fn ec_alg(group: Group) -> &'static agreement::Algorithm {
    match group {
        Group::Ecp256 => &agreement::ECDH_P256,
        Group::Ecp384 => &agreement::ECDH_P384,
        Group::Ecp521 => &agreement::ECDH_P521,
        _ => &agreement::X25519,
    }
}

fn ec_scalar_len(group: Group) -> usize {
    match group {
        Group::Ecp256 => 32,
        Group::Ecp384 => 48,
        Group::Ecp521 => 66,
        _ => 32,
    }
}

/// Private exponent length in bytes: at least twice the group's security strength (RFC 3526 §8,
/// NIST SP 800-56A §5.6.1.1.1 for safe-prime groups).
fn modp_exponent_len(group: Group) -> usize {
    match group {
        Group::Modp2048 => 32,
        Group::Modp3072 => 48,
        _ => 64,
    }
}

fn modp_peer_valid(group: Group, peer: &[u8]) -> bool {
    fn check<const L: usize>(p: &Odd<Uint<L>>, peer: &[u8]) -> bool {
        if peer.len() != L * crypto_bigint::Limb::BYTES {
            return false;
        }
        let y = Uint::<L>::from_be_slice(peer);
        let p_minus_1 = p.as_ref().wrapping_sub(&Uint::ONE);
        y > Uint::ONE && y < p_minus_1
    }
    match group {
        Group::Modp2048 => check(&P2048, peer),
        Group::Modp3072 => check(&P3072, peer),
        Group::Modp4096 => check(&P4096, peer),
        _ => false,
    }
}

/// base^exp mod p, constant time in `exp`; `base` is exactly the modulus length, `exp` at most that long.
fn modp_pow(group: Group, base: &[u8], exp: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    fn pow<const L: usize>(p: &Odd<Uint<L>>, base: &[u8], exp: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let n = L * crypto_bigint::Limb::BYTES;
        if base.len() != n || exp.len() > n {
            return Err(CryptoError::BadLength);
        }
        let mut exp_buf = Zeroizing::new(vec![0u8; n]);
        exp_buf.get_mut(n - exp.len()..).ok_or(CryptoError::BadLength)?.copy_from_slice(exp);
        let mut e = Uint::<L>::from_be_slice(&exp_buf);
        let exp_bits = u32::try_from(exp.len() * 8).map_err(|_| CryptoError::BadLength)?;
        let params = MontyParams::new_vartime(*p);
        let b = Uint::<L>::from_be_slice(base);
        let mut r = MontyForm::new(&b, params).pow_bounded_exp(&e, exp_bits);
        let mut out = r.retrieve();
        let mut bytes = Zeroizing::new(Vec::with_capacity(n));
        for w in out.as_words().iter().rev() {
            bytes.extend_from_slice(&w.to_be_bytes());
        }
        e.as_words_mut().zeroize();
        r.as_montgomery_mut().as_words_mut().zeroize();
        out.as_words_mut().zeroize();
        Ok(bytes)
    }
    match group {
        Group::Modp2048 => pow(&P2048, base, exp),
        Group::Modp3072 => pow(&P3072, base, exp),
        Group::Modp4096 => pow(&P4096, base, exp),
        _ => Err(CryptoError::Unsupported("not a MODP group")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    fn rng() -> rand_chacha::ChaCha20Rng {
        rand_chacha::ChaCha20Rng::seed_from_u64(7)
    }

    /// RFC 7748 §6.1.
    #[test]
    fn x25519_rfc7748() {
        let a = KeyExchange::from_scalar(
            Group::Curve25519,
            &h("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"),
        )
        .unwrap();
        let b = KeyExchange::from_scalar(
            Group::Curve25519,
            &h("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"),
        )
        .unwrap();
        assert_eq!(hex::encode(a.public_value()), "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
        assert_eq!(hex::encode(b.public_value()), "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
        let k = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
        assert_eq!(hex::encode(a.shared_secret(b.public_value()).unwrap()), k);
        assert_eq!(hex::encode(b.shared_secret(a.public_value()).unwrap()), k);
        // Low-order points give an all-zero secret (RFC 8031 §2.1 / RFC 7748 §6.1).
        assert_eq!(a.shared_secret(&[0u8; 32]), Err(CryptoError::InvalidPublicValue));
        let mut one = [0u8; 32];
        one[0] = 1;
        assert_eq!(a.shared_secret(&one), Err(CryptoError::InvalidPublicValue));
        assert_eq!(a.shared_secret(&b.public_value()[..31]), Err(CryptoError::InvalidPublicValue));
    }

    /// RFC 5903 §8.1 (256-bit random ECP group).
    #[test]
    fn ecp256_rfc5903() {
        let i = KeyExchange::from_scalar(
            Group::Ecp256,
            &h("C88F01F510D9AC3F70A292DAA2316DE544E9AAB8AFE84049C62A9C57862D1433"),
        )
        .unwrap();
        let r = KeyExchange::from_scalar(
            Group::Ecp256,
            &h("C6EF9C5D78AE012A011164ACB397CE2088685D8F06BF9BE0B283AB46476BEE53"),
        )
        .unwrap();
        assert_eq!(
            hex::encode_upper(i.public_value()),
            "DAD0B65394221CF9B051E1FECA5787D098DFE637FC90B9EF945D0C3772581180\
             5271A0461CDB8252D61F1C456FA3E59AB1F45B33ACCF5F58389E0577B8990BB3"
        );
        assert_eq!(
            hex::encode_upper(r.public_value()),
            "D12DFB5289C8D4F81208B70270398C342296970A0BCCB74C736FC7554494BF63\
             56FBF3CA366CC23E8157854C13C58D6AAC23F046ADA30F8353E74F33039872AB"
        );
        let girx = "D6840F6B42F6EDAFD13116E0E12565202FEF8E9ECE7DCE03812464D04B9442DE";
        assert_eq!(hex::encode_upper(i.shared_secret(r.public_value()).unwrap()), girx);
        assert_eq!(hex::encode_upper(r.shared_secret(i.public_value()).unwrap()), girx);
    }

    #[test]
    fn ecp_invalid_points_rejected() {
        let mut rng = rng();
        for group in [Group::Ecp256, Group::Ecp384, Group::Ecp521] {
            let a = KeyExchange::generate(group, &mut rng).unwrap();
            let b = KeyExchange::generate(group, &mut rng).unwrap();
            assert_eq!(a.public_value().len(), group.public_len());
            assert_eq!(a.shared_secret(b.public_value()).unwrap(), b.shared_secret(a.public_value()).unwrap());
            assert_eq!(a.shared_secret(b.public_value()).unwrap().len(), group.shared_len());
            let mut bad = b.public_value().to_vec();
            *bad.last_mut().unwrap() ^= 1; // y no longer on the curve
            assert_eq!(a.shared_secret(&bad), Err(CryptoError::InvalidPublicValue));
            let zero = vec![0u8; group.public_len()];
            assert_eq!(a.shared_secret(&zero), Err(CryptoError::InvalidPublicValue));
            assert_eq!(a.shared_secret(&b.public_value()[1..]), Err(CryptoError::InvalidPublicValue));
            let mut long = b.public_value().to_vec();
            long.push(0);
            assert_eq!(a.shared_secret(&long), Err(CryptoError::InvalidPublicValue));
        }
    }

    #[test]
    fn generated_keys_agree() {
        let mut rng = rng();
        for group in [Group::Curve25519, Group::Modp2048, Group::Modp3072] {
            let a = KeyExchange::generate(group, &mut rng).unwrap();
            let b = KeyExchange::generate(group, &mut rng).unwrap();
            assert_eq!(a.group(), group);
            assert_eq!(a.public_value().len(), group.public_len());
            assert_ne!(a.public_value(), b.public_value());
            let s = a.shared_secret(b.public_value()).unwrap();
            assert_eq!(s.len(), group.shared_len());
            assert_eq!(s, b.shared_secret(a.public_value()).unwrap());
            assert_eq!(Group::from_id(group.id()), Some(group));
        }
    }

    /// RFC 6989 §2.1: 1 < y < p-1, and the value must be the modulus length.
    #[test]
    fn modp_rejects_degenerate_values() {
        let mut rng = rng();
        let a = KeyExchange::generate(Group::Modp2048, &mut rng).unwrap();
        let p = h(&format!("{:x}", P2048.as_ref()).to_lowercase());
        assert_eq!(p.len(), 256);
        let mut p_minus_1 = p.clone();
        *p_minus_1.last_mut().unwrap() -= 1;
        let mut one = vec![0u8; 256];
        one[255] = 1;
        for bad in [vec![0u8; 256], one, p_minus_1, p.clone(), vec![0xff; 256]] {
            assert_eq!(a.shared_secret(&bad), Err(CryptoError::InvalidPublicValue));
        }
        let mut two = vec![0u8; 256];
        two[255] = 2;
        assert!(a.shared_secret(&two).is_ok());
        assert_eq!(a.shared_secret(&two[1..]), Err(CryptoError::InvalidPublicValue));
        // g^x with x = 1 is the generator itself.
        let g = KeyExchange::from_scalar(Group::Modp2048, &[1]).unwrap();
        assert_eq!(g.public_value(), &two[..]);
    }

    /// 2^256 mod p = 2^256 and 2^N mod p = 2^N - p (the two's complement of p).
    #[test]
    fn modp_known_powers() {
        for group in [Group::Modp2048, Group::Modp3072, Group::Modp4096] {
            let n = group.public_len();
            let kx = KeyExchange::from_scalar(group, &[1, 0]).unwrap();
            let mut expect = vec![0u8; n];
            expect[n - 33] = 1;
            assert_eq!(kx.public_value(), &expect[..]);

            let bits = u16::try_from(n * 8).unwrap();
            let kx = KeyExchange::from_scalar(group, &bits.to_be_bytes()).unwrap();
            let p = match group {
                Group::Modp2048 => format!("{:x}", P2048.as_ref()),
                Group::Modp3072 => format!("{:x}", P3072.as_ref()),
                _ => format!("{:x}", P4096.as_ref()),
            };
            let mut neg: Vec<u8> = h(&p).iter().map(|b| !b).collect();
            for b in neg.iter_mut().rev() {
                let (v, carry) = b.overflowing_add(1);
                *b = v;
                if !carry {
                    break;
                }
            }
            assert_eq!(kx.public_value(), &neg[..]);
        }
    }

    #[test]
    fn modp4096_agrees() {
        let mut rng = rng();
        let a = KeyExchange::generate(Group::Modp4096, &mut rng).unwrap();
        let b = KeyExchange::generate(Group::Modp4096, &mut rng).unwrap();
        assert_eq!(a.shared_secret(b.public_value()).unwrap(), b.shared_secret(a.public_value()).unwrap());
    }
}
