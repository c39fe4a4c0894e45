//! Key exchange: MODP groups (RFC 3526, constant-time crypto-bigint), ECP groups (RFC 5903) and Curve25519
//! (RFC 8031) via aws-lc-rs, with peer value validation per RFC 6989; ML-KEM (FIPS 203) via aws-lc-rs's KEM
//! API, as draft-ietf-ipsecme-ikev2-mlkem uses it: the initiator's value is the encapsulation key, the
//! responder's the ciphertext ([`KeyExchange::respond`]), each checked as FIPS 203 §7.2-7.3 requires.
//! aws-lc-rs draws ML-KEM's key and encapsulation randomness from its own DRBG (as for signatures,
//! `sig.rs`): it offers no way to pass ours.
//!
//! Opt-in (issue 11): MODP-1024 and MODP-1536 (RFC 2409 §6.2, RFC 3526 §2) the same way as the other MODP
//! groups; Curve448 (RFC 8031) with RustCrypto's `x448`, brainpoolP256r1/P384r1 (RFC 6954) with RustCrypto's
//! `bp256`/`bp384` and `elliptic-curve`'s ECDH, as aws-lc-rs has neither. brainpoolP512r1 (group 30) has no
//! maintained RustCrypto crate and is not supported.

use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey};
use aws_lc_rs::kem::{self, AlgorithmId, Ciphertext, DecapsulationKey, EncapsulationKey};
use crypto_bigint::modular::{MontyForm, MontyParams};
use crypto_bigint::{Odd, Uint, U1024, U1536, U2048, U3072, U4096};
use elliptic_curve::sec1::{FromSec1Point, ModulusSize, ToSec1Point};
use elliptic_curve::{AffinePoint, CurveArithmetic, FieldBytesSize, PublicKey, SecretKey};
use zeroize::{Zeroize, Zeroizing};

use super::{CryptoError, Group};

/// How many random scalars we try before giving up. A rejection is astronomically rare for the NIST curves;
/// for the brainpool curves (order just above 2^255 / 2^383) about a third of the draws are out of range, so
/// 64 tries fail with probability below 2^-100.
const MAX_SCALAR_TRIES: usize = 64;

/// RFC 2409 §6.2 1024-bit MODP prime (group 2).
const P1024: Odd<U1024> = Odd::<U1024>::from_be_hex(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74\
     020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437\
     4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED\
     EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF",
);

/// RFC 3526 §2 1536-bit MODP prime (group 5).
const P1536: Odd<U1536> = Odd::<U1536>::from_be_hex(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74\
     020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437\
     4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED\
     EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05\
     98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB\
     9ED529077096966D670C354E4ABC9804F1746C08CA237327FFFFFFFFFFFFFFFF",
);

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
    /// X448 private scalar (RFC 7748 §5, clamped when used).
    X448(Zeroizing<[u8; 56]>),
    /// brainpoolP256r1 private scalar (zeroized on drop by `elliptic-curve`).
    Bp256(SecretKey<bp256::BrainpoolP256r1>),
    /// brainpoolP384r1 private scalar.
    Bp384(SecretKey<bp384::BrainpoolP384r1>),
    /// ML-KEM decapsulation key (aws-lc-rs cleanses it on drop).
    MlKem(DecapsulationKey<AlgorithmId>),
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
            g if g.is_kem() => {
                let key = DecapsulationKey::generate(kem_alg(g)).map_err(|_| CryptoError::Internal)?;
                let public =
                    key.encapsulation_key().and_then(|ek| ek.key_bytes()).map_err(|_| CryptoError::Internal)?;
                let public = public.as_ref().to_vec();
                if public.len() != g.public_len() {
                    return Err(CryptoError::Internal);
                }
                Ok(KeyExchange { group, public, secret: Secret::MlKem(key) })
            }
            g if g.is_modp() => {
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
    /// the modulus length), the fixed-length big-endian scalar for ECP (RFC 5903 §8, RFC 6954), the 32- or
    /// 56-byte scalar for X25519 / X448 (RFC 7748 §5).
    pub(crate) fn from_scalar(group: Group, scalar: &[u8]) -> Result<KeyExchange, CryptoError> {
        match group {
            g if g.is_kem() => Err(CryptoError::KeyRejected),
            Group::Curve448 => {
                let scalar: [u8; 56] = scalar.try_into().map_err(|_| CryptoError::BadLength)?;
                let scalar = Zeroizing::new(scalar);
                let public = x448::x448(*scalar, x448::X448_BASEPOINT_BYTES).ok_or(CryptoError::Internal)?;
                Ok(KeyExchange { group, public: public.to_vec(), secret: Secret::X448(scalar) })
            }
            Group::EcpBp256 => {
                let key = SecretKey::from_slice(scalar).map_err(|_| CryptoError::KeyRejected)?;
                let public = ecp_public_xy(&key)?;
                Ok(KeyExchange { group, public, secret: Secret::Bp256(key) })
            }
            Group::EcpBp384 => {
                let key = SecretKey::from_slice(scalar).map_err(|_| CryptoError::KeyRejected)?;
                let public = ecp_public_xy(&key)?;
                Ok(KeyExchange { group, public, secret: Secret::Bp384(key) })
            }
            g if g.is_modp() => {
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
    /// x coordinate, RFC 5903 §7, RFC 6954 §4); X25519 / X448 correct length and a non-zero result
    /// (RFC 8031 §2.1).
    pub fn shared_secret(&self, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if peer.len() != self.group.response_len() {
            return Err(CryptoError::InvalidPublicValue);
        }
        match &self.secret {
            // FIPS 203 §7.3: the ciphertext type check is its length (above); a ciphertext that does not
            // decrypt yields the implicit-rejection secret, which fails the AUTH exchange later.
            Secret::MlKem(key) => {
                let shared = key.decapsulate(Ciphertext::from(peer)).map_err(|_| CryptoError::InvalidPublicValue)?;
                Ok(Zeroizing::new(shared.as_ref().to_vec()))
            }
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
            Secret::X448(scalar) => {
                let peer: [u8; 56] = peer.try_into().map_err(|_| CryptoError::InvalidPublicValue)?;
                // `x448` refuses the low-order points; an all-zero result (a non-canonical encoding of one)
                // is refused as for X25519 (RFC 8031 §2.1).
                let shared = Zeroizing::new(x448::x448(**scalar, peer).ok_or(CryptoError::InvalidPublicValue)?);
                if shared.iter().fold(0u8, |acc, b| acc | b) == 0 {
                    return Err(CryptoError::InvalidPublicValue);
                }
                Ok(Zeroizing::new(shared.to_vec()))
            }
            Secret::Bp256(key) => ecp_shared_x(key, peer),
            Secret::Bp384(key) => ecp_shared_x(key, peer),
        }
    }
}

impl KeyExchange {
    /// The responder's side for the initiator's value `peer`: our KE data and the shared secret. For a DH
    /// group a fresh key pair from `rng` and the DH result; for ML-KEM the ciphertext and secret of
    /// encapsulating to the initiator's key, after FIPS 203 §7.2's checks (length, every coefficient below q).
    pub fn respond(
        group: Group,
        peer: &[u8],
        rng: &mut dyn rand_core::CryptoRng,
    ) -> Result<(Vec<u8>, Zeroizing<Vec<u8>>), CryptoError> {
        if !group.is_kem() {
            let kx = KeyExchange::generate(group, rng)?;
            let shared = kx.shared_secret(peer)?;
            return Ok((kx.public, shared));
        }
        if peer.len() != group.public_len() {
            return Err(CryptoError::InvalidPublicValue);
        }
        let ek = EncapsulationKey::new(kem_alg(group), peer).map_err(|_| CryptoError::InvalidPublicValue)?;
        let (ct, shared) = ek.encapsulate().map_err(|_| CryptoError::InvalidPublicValue)?;
        Ok((ct.as_ref().to_vec(), Zeroizing::new(shared.as_ref().to_vec())))
    }
}

#[cfg(test)]
impl KeyExchange {
    /// An ML-KEM initiator from a known decapsulation key (FIPS 203's expanded form) and its encapsulation key,
    /// for known-answer tests.
    pub(crate) fn from_kem_keys(group: Group, dk: &[u8], ek: &[u8]) -> Result<KeyExchange, CryptoError> {
        let key = DecapsulationKey::new(kem_alg(group), dk).map_err(|_| CryptoError::KeyRejected)?;
        Ok(KeyExchange { group, public: ek.to_vec(), secret: Secret::MlKem(key) })
    }
}

fn kem_alg(group: Group) -> &'static kem::Algorithm<AlgorithmId> {
    match group {
        Group::MlKem512 => &kem::ML_KEM_512,
        Group::MlKem1024 => &kem::ML_KEM_1024,
        _ => &kem::ML_KEM_768,
    }
}

/// x || y of the public point of an `elliptic-curve` secret key (RFC 6954 §4, as RFC 5903 §7).
fn ecp_public_xy<C>(key: &SecretKey<C>) -> Result<Vec<u8>, CryptoError>
where
    C: CurveArithmetic,
    AffinePoint<C>: FromSec1Point<C> + ToSec1Point<C>,
    FieldBytesSize<C>: ModulusSize,
{
    let point = key.public_key().to_sec1_point(false);
    match point.as_bytes().split_first() {
        Some((0x04, xy)) => Ok(xy.to_vec()),
        _ => Err(CryptoError::Internal),
    }
}

/// The x coordinate of the ECDH result with the peer's x || y, which must be a point on the curve other
/// than the identity (RFC 6989 §2.3; the brainpool curves have cofactor 1).
fn ecp_shared_x<C>(key: &SecretKey<C>, peer: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError>
where
    C: CurveArithmetic,
    AffinePoint<C>: FromSec1Point<C> + ToSec1Point<C>,
    FieldBytesSize<C>: ModulusSize,
{
    let mut encoded = [0u8; 1 + 96];
    let (tag, rest) = encoded.split_at_mut(1);
    tag[0] = 0x04;
    rest.get_mut(..peer.len()).ok_or(CryptoError::InvalidPublicValue)?.copy_from_slice(peer);
    let encoded = encoded.get(..1 + peer.len()).ok_or(CryptoError::InvalidPublicValue)?;
    let peer = PublicKey::<C>::from_sec1_bytes(encoded).map_err(|_| CryptoError::InvalidPublicValue)?;
    let shared = key.diffie_hellman(&peer);
    Ok(Zeroizing::new(shared.raw_secret_bytes().to_vec()))
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
        Group::Ecp256 | Group::EcpBp256 => 32,
        Group::Ecp384 | Group::EcpBp384 => 48,
        Group::Ecp521 => 66,
        Group::Curve448 => 56,
        _ => 32,
    }
}

/// Private exponent length in bytes: at least twice the group's security strength (RFC 3526 §8,
/// NIST SP 800-56A §5.6.1.1.1 for safe-prime groups).
fn modp_exponent_len(group: Group) -> usize {
    match group {
        Group::Modp1024 | Group::Modp1536 | Group::Modp2048 => 32,
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
        Group::Modp1024 => check(&P1024, peer),
        Group::Modp1536 => check(&P1536, peer),
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
        Group::Modp1024 => pow(&P1024, base, exp),
        Group::Modp1536 => pow(&P1536, base, exp),
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

    /// RFC 7748 §6.2 (Alice and Bob) and the first §5.2 vector (an arbitrary u-coordinate).
    #[test]
    fn x448_rfc7748() {
        let a = KeyExchange::from_scalar(
            Group::Curve448,
            &h("9a8f4925d1519f5775cf46b04b5800d4ee9ee8bae8bc5565d498c28d\
                d9c9baf574a9419744897391006382a6f127ab1d9ac2d8c0a598726b"),
        )
        .unwrap();
        let b = KeyExchange::from_scalar(
            Group::Curve448,
            &h("1c306a7ac2a0e2e0990b294470cba339e6453772b075811d8fad0d1d\
                6927c120bb5ee8972b0d3e21374c9c921b09d1b0366f10b65173992d"),
        )
        .unwrap();
        assert_eq!(
            hex::encode(a.public_value()),
            "9b08f7cc31b7e3e67d22d5aea121074a273bd2b83de09c63faa73d2c\
             22c5d9bbc836647241d953d40c5b12da88120d53177f80e532c41fa0"
        );
        assert_eq!(
            hex::encode(b.public_value()),
            "3eb7a829b0cd20f5bcfc0b599b6feccf6da4627107bdb0d4f345b430\
             27d8b972fc3e34fb4232a13ca706dcb57aec3dae07bdc1c67bf33609"
        );
        let k = "07fff4181ac6cc95ec1c16a94a0f74d12da232ce40a77552281d282b\
                 b60c0b56fd2464c335543936521c24403085d59a449a5037514a879d";
        assert_eq!(hex::encode(a.shared_secret(b.public_value()).unwrap()), k);
        assert_eq!(hex::encode(b.shared_secret(a.public_value()).unwrap()), k);

        let c = KeyExchange::from_scalar(
            Group::Curve448,
            &h("3d262fddf9ec8e88495266fea19a34d28882acef045104d0d1aae121\
                700a779c984c24f8cdd78fbff44943eba368f54b29259a4f1c600ad3"),
        )
        .unwrap();
        let u = h("06fce640fa3487bfda5f6cf2d5263f8aad88334cbd07437f020f08f9\
                   814dc031ddbdc38c19c6da2583fa5429db94ada18aa7a7fb4ef8a086");
        assert_eq!(
            hex::encode(c.shared_secret(&u).unwrap()),
            "ce3e4ff95a60dc6697da1db1d85e6afbdf79b50a2412d7546d5f239f\
             e14fbaadeb445fc66a01b0779d98223961111e21766282f73dd96b6f"
        );

        // Low-order points (u = 0, 1, p - 1) and wrong lengths are refused (RFC 8031 §2.1, RFC 7748 §6.2).
        let mut one = [0u8; 56];
        one[0] = 1;
        let mut p_minus_1 = [0xffu8; 56];
        p_minus_1[0] = 0xfe;
        p_minus_1[28] = 0xfe;
        for bad in [[0u8; 56], one, p_minus_1] {
            assert_eq!(a.shared_secret(&bad), Err(CryptoError::InvalidPublicValue));
        }
        assert_eq!(a.shared_secret(&b.public_value()[..55]), Err(CryptoError::InvalidPublicValue));
        assert_eq!(KeyExchange::from_scalar(Group::Curve448, &[1u8; 32]).err(), Some(CryptoError::BadLength));
    }

    /// RFC 7027 Appendix A.1 and A.2 (brainpoolP256r1, brainpoolP384r1); RFC 6954 carries x || y in the KE
    /// payload and takes x of the shared point as g^ir, as RFC 5903 does.
    #[test]
    fn brainpool_rfc7027() {
        let cases = [
            (
                Group::EcpBp256,
                "81DB1EE100150FF2EA338D708271BE38300CB54241D79950F77B063039804F1D",
                "44106E913F92BC02A1705D9953A8414DB95E1AAA49E81D9E85F929A8E3100BE5\
                 8AB4846F11CACCB73CE49CBDD120F5A900A69FD32C272223F789EF10EB089BDC",
                "55E40BC41E37E3E2AD25C3C6654511FFA8474A91A0032087593852D3E7D76BD3",
                "8D2D688C6CF93E1160AD04CC4429117DC2C41825E1E9FCA0ADDD34E6F1B39F7B\
                 990C57520812BE512641E47034832106BC7D3E8DD0E4C7F1136D7006547CEC6A",
                "89AFC39D41D3B327814B80940B042590F96556EC91E6AE7939BCE31F3A18BF2B",
            ),
            (
                Group::EcpBp384,
                "1E20F5E048A5886F1F157C74E91BDE2B98C8B52D58E5003D57053FC4B0BD65D6\
                 F15EB5D1EE1610DF870795143627D042",
                "68B665DD91C195800650CDD363C625F4E742E8134667B767B1B476793588F885\
                 AB698C852D4A6E77A252D6380FCAF06855BC91A39C9EC01DEE36017B7D673A93\
                 1236D2F1F5C83942D049E3FA20607493E0D038FF2FD30C2AB67D15C85F7FAA59",
                "032640BC6003C59260F7250C3DB58CE647F98E1260ACCE4ACDA3DD869F74E01F\
                 8BA5E0324309DB6A9831497ABAC96670",
                "4D44326F269A597A5B58BBA565DA5556ED7FD9A8A9EB76C25F46DB69D19DC8CE\
                 6AD18E404B15738B2086DF37E71D1EB462D692136DE56CBE93BF5FA3188EF58B\
                 C8A3A0EC6C1E151A21038A42E9185329B5B275903D192F8D4E1F32FE9CC78C48",
                "0BD9D3A7EA0B3D519D09D8E48D0785FB744A6B355E6304BC51C229FBBCE239BB\
                 ADF6403715C35D4FB2A5444F575D4F42",
            ),
        ];
        for (group, d_a, q_a, d_b, q_b, x_z) in cases {
            let a = KeyExchange::from_scalar(group, &h(d_a)).unwrap();
            let b = KeyExchange::from_scalar(group, &h(d_b)).unwrap();
            assert_eq!(hex::encode_upper(a.public_value()), q_a);
            assert_eq!(hex::encode_upper(b.public_value()), q_b);
            assert_eq!(hex::encode_upper(a.shared_secret(b.public_value()).unwrap()), x_z);
            assert_eq!(hex::encode_upper(b.shared_secret(a.public_value()).unwrap()), x_z);
            // A scalar of zero or not below the group order is refused.
            assert!(KeyExchange::from_scalar(group, &vec![0u8; group.public_len() / 2]).is_err());
            assert!(KeyExchange::from_scalar(group, &vec![0xffu8; group.public_len() / 2]).is_err());
        }
    }

    /// g^x for a fixed 256-bit x in the legacy MODP groups (reference: Python `pow(2, x, p)` with the primes
    /// of RFC 2409 §6.2 / RFC 3526 §2, which were checked against the RFCs' formula
    /// p = 2^n - 2^(n-64) - 1 + 2^64 * ([2^(n-130) pi] + k)).
    #[test]
    fn modp1024_1536_known_answers() {
        let x = h(&"0123456789abcdef".repeat(4));
        let cases = [
            (
                Group::Modp1024,
                "8087115ed28670eee8569b39819c1e0003bb1e0f70cadbd632353cb3c71b2c4dafe38b35465b8c1fc4c8d838665b3612\
                 f2aad22ff8b5fe51da0146e651371d4cc2a761e4bfa8bf5a0adff684de103f2e3b8635dad11f1ef6314701c5ba1fc47f\
                 5e97c9c6d1b93db12ad2e353516a92f841105e21b0112be2d2b7d12d91261fad",
            ),
            (
                Group::Modp1536,
                "9e433f209b5fbf9e8d6e1075b0c9969c4dc642060a79fd918ca5950d470e83c65d0498b5e206c9ed9f981c682d13075f\
                 bfa455edbea73f1ebe0497808dd1cfb1cae6e41e9747d4d77dc9930cafc4bde7047fc405cda9915a4ed41ca91abea86f\
                 80fe3cab01a02427a57ee668bbd1283ebb0907119b9540ebc6bae486f78994eb5220e72eb3bd01b9c6f4c0616d27ef42\
                 0bc261f6da71067ed41b8746397084b50c965c713b71474058309120aef50bfbac2b2defc32de03ee55722dc4d95ea20",
            ),
        ];
        for (group, gx) in cases {
            let kx = KeyExchange::from_scalar(group, &x).unwrap();
            assert_eq!(hex::encode(kx.public_value()), gx);
            // (g^y)^x = (g^x)^y with y = 2: g^2x.
            let two = KeyExchange::from_scalar(group, &[2]).unwrap();
            let mut four = vec![0u8; group.public_len()];
            *four.last_mut().unwrap() = 4;
            assert_eq!(two.public_value(), &four[..]);
            assert_eq!(kx.shared_secret(two.public_value()).unwrap(), two.shared_secret(kx.public_value()).unwrap());
        }
    }

    #[test]
    fn ecp_invalid_points_rejected() {
        let mut rng = rng();
        for group in [Group::Ecp256, Group::Ecp384, Group::Ecp521, Group::EcpBp256, Group::EcpBp384] {
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
        for group in [
            Group::Curve25519,
            Group::Modp2048,
            Group::Modp3072,
            Group::Modp1024,
            Group::Modp1536,
            Group::Curve448,
            Group::EcpBp256,
            Group::EcpBp384,
        ] {
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
        for (group, p) in [
            (Group::Modp2048, format!("{:x}", P2048.as_ref())),
            (Group::Modp1024, format!("{:x}", P1024.as_ref())),
            (Group::Modp1536, format!("{:x}", P1536.as_ref())),
        ] {
            let n = group.public_len();
            let a = KeyExchange::generate(group, &mut rng).unwrap();
            let p = h(&p.to_lowercase());
            assert_eq!(p.len(), n);
            let mut p_minus_1 = p.clone();
            *p_minus_1.last_mut().unwrap() -= 1;
            let mut one = vec![0u8; n];
            one[n - 1] = 1;
            for bad in [vec![0u8; n], one, p_minus_1, p.clone(), vec![0xff; n]] {
                assert_eq!(a.shared_secret(&bad), Err(CryptoError::InvalidPublicValue));
            }
            let mut two = vec![0u8; n];
            two[n - 1] = 2;
            assert!(a.shared_secret(&two).is_ok());
            assert_eq!(a.shared_secret(&two[1..]), Err(CryptoError::InvalidPublicValue));
            // g^x with x = 1 is the generator itself.
            let g = KeyExchange::from_scalar(group, &[1]).unwrap();
            assert_eq!(g.public_value(), &two[..]);
        }
    }

    /// 2^256 mod p = 2^256 and 2^N mod p = 2^N - p (the two's complement of p).
    #[test]
    fn modp_known_powers() {
        for group in [Group::Modp1024, Group::Modp1536, Group::Modp2048, Group::Modp3072, Group::Modp4096] {
            let n = group.public_len();
            let kx = KeyExchange::from_scalar(group, &[1, 0]).unwrap();
            let mut expect = vec![0u8; n];
            expect[n - 33] = 1;
            assert_eq!(kx.public_value(), &expect[..]);

            let bits = u16::try_from(n * 8).unwrap();
            let kx = KeyExchange::from_scalar(group, &bits.to_be_bytes()).unwrap();
            let p = match group {
                Group::Modp1024 => format!("{:x}", P1024.as_ref()),
                Group::Modp1536 => format!("{:x}", P1536.as_ref()),
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
