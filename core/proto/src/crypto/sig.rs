//! Signatures for certificate authentication (RFC 7296 §2.15, §3.8; RFC 4754; RFC 7427; RFC 8420).
//!
//! - [`SigScheme`]: what an AUTH signature is computed with, and its RFC 7427 AlgorithmIdentifier.
//! - [`Signer`]: anything that can sign with a private key; [`KeyPairSigner`] for in-memory keys.
//! - [`verify_signature`], [`verify_auth`]: check a peer's signature with its certificate's public key.
//! - [`encode_digital_signature`], [`decode_digital_signature`], [`sign_auth`]: AUTH payload data.
//!
//! Signature formats: RSA signatures are the raw RSASSA output; ECDSA signatures produced by a [`Signer`] and
//! taken by [`verify_signature`] are DER `Ecdsa-Sig-Value` (X9.62, as RFC 7427 and platform key stores use);
//! the classic methods 9/10/11 (RFC 4754) carry r || s of fixed width, converted by [`sign_auth`] and
//! [`verify_auth`]. Ed25519 signatures are the 64 bytes of RFC 8032 ("pure", hash Identity, RFC 8420).

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as lc, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair, UnparsedPublicKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;

use der::asn1::{AnyRef, BitStringRef, ObjectIdentifier, UintRef};
use der::{Decode, Encode, Sequence};
use x509_cert::spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};

use super::CryptoError;
use crate::wire::AuthMethod;

/// The RNG argument of aws-lc-rs's signing calls. aws-lc-rs ignores it (`_rng` in `EcdsaKeyPair::sign` and
/// `RsaKeyPair::sign`): ECDSA nonces and PSS salts come from AWS-LC's own DRBG, and its `SecureRandom` trait is
/// sealed, so the caller's seeded RNG cannot be passed in. This is the one place the core touches OS randomness,
/// and only through the crypto library. Signatures are not part of what the simulator replays bit for bit.
fn ignored_rng() -> SystemRandom {
    SystemRandom::new()
}

/// What the AUTH payload's signature is computed with (RFC 7427 §3, RFC 4754, RFC 8420).
///
/// For ECDSA, the curve named here is the one a signer uses; when verifying an RFC 7427 signature the
/// AlgorithmIdentifier (`ecdsa-with-SHA256` etc.) only fixes the hash and the curve comes from the peer's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigScheme {
    RsaPkcs1Sha256,
    RsaPkcs1Sha384,
    RsaPkcs1Sha512,
    RsaPssSha256,
    RsaPssSha384,
    RsaPssSha512,
    EcdsaP256Sha256,
    EcdsaP384Sha384,
    EcdsaP521Sha512,
    Ed25519,
}

/// SIGNATURE_HASH_ALGORITHMS values (RFC 7427 §4, RFC 8420 §2) that [`SigScheme`] covers, to announce.
pub const SUPPORTED_HASH_IDS: [u16; 4] = [HASH_SHA2_256, HASH_SHA2_384, HASH_SHA2_512, HASH_IDENTITY];

const HASH_SHA2_256: u16 = 2;
const HASH_SHA2_384: u16 = 3;
const HASH_SHA2_512: u16 = 4;
const HASH_IDENTITY: u16 = 5;

// RFC 7427 Appendix A, each prefixed with its length byte (§3).
// A.1.2-A.1.4: sha{256,384,512}WithRSAEncryption, NULL parameters.
const AI_RSA_PKCS1_SHA256: &[u8] =
    &[15, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00];
const AI_RSA_PKCS1_SHA384: &[u8] =
    &[15, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c, 0x05, 0x00];
const AI_RSA_PKCS1_SHA512: &[u8] =
    &[15, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d, 0x05, 0x00];
// A.3: ecdsa-with-SHA{256,384,512}, parameters absent.
const AI_ECDSA_SHA256: &[u8] = &[12, 0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
const AI_ECDSA_SHA384: &[u8] = &[12, 0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
const AI_ECDSA_SHA512: &[u8] = &[12, 0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04];
// A.4.3: id-RSASSA-PSS with hash SHA-256, MGF1 with SHA-256, salt length 32, default trailer; and the same
// pattern for SHA-384 (salt 48) and SHA-512 (salt 64).
const AI_RSA_PSS_SHA256: &[u8] = &[
    67, 0x30, 0x41, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a, 0x30, 0x34, 0xa0, 0x0f, 0x30,
    0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0xa1, 0x1c, 0x30, 0x1a, 0x06,
    0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65,
    0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0xa2, 0x03, 0x02, 0x01, 0x20,
];
const AI_RSA_PSS_SHA384: &[u8] = &[
    67, 0x30, 0x41, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a, 0x30, 0x34, 0xa0, 0x0f, 0x30,
    0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0xa1, 0x1c, 0x30, 0x1a, 0x06,
    0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65,
    0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0xa2, 0x03, 0x02, 0x01, 0x30,
];
const AI_RSA_PSS_SHA512: &[u8] = &[
    67, 0x30, 0x41, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a, 0x30, 0x34, 0xa0, 0x0f, 0x30,
    0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0xa1, 0x1c, 0x30, 0x1a, 0x06,
    0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65,
    0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0xa2, 0x03, 0x02, 0x01, 0x40,
];
// RFC 8420 §2 / RFC 8410 §3: id-Ed25519, parameters absent.
const AI_ED25519: &[u8] = &[7, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];

// OID contents octets.
const OID_RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_RSASSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
const OID_MGF1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08];
const OID_SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
const OID_SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
const OID_SHA512: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// Hash functions of the schemes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn from_oid(oid: &[u8]) -> Option<Hash> {
        match oid {
            OID_SHA256 => Some(Hash::Sha256),
            OID_SHA384 => Some(Hash::Sha384),
            OID_SHA512 => Some(Hash::Sha512),
            _ => None,
        }
    }

    fn len(self) -> usize {
        match self {
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }
}

/// The NIST curves usable for ECDSA here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    fn from_oid(oid: &[u8]) -> Option<Curve> {
        match oid {
            OID_P256 => Some(Curve::P256),
            OID_P384 => Some(Curve::P384),
            OID_P521 => Some(Curve::P521),
            _ => None,
        }
    }

    /// Octets of a field element (and of r and s in the fixed format of RFC 4754 §7).
    fn field_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }

    /// The scheme a key on this curve signs with.
    fn scheme(self) -> SigScheme {
        match self {
            Curve::P256 => SigScheme::EcdsaP256Sha256,
            Curve::P384 => SigScheme::EcdsaP384Sha384,
            Curve::P521 => SigScheme::EcdsaP521Sha512,
        }
    }

    fn signing_alg(self) -> &'static lc::EcdsaSigningAlgorithm {
        match self {
            Curve::P256 => &lc::ECDSA_P256_SHA256_ASN1_SIGNING,
            Curve::P384 => &lc::ECDSA_P384_SHA384_ASN1_SIGNING,
            Curve::P521 => &lc::ECDSA_P521_SHA512_ASN1_SIGNING,
        }
    }

    /// DER-signature verification for this curve with `hash` (RFC 7427 allows any hash with any curve).
    fn verify_alg(self, hash: Hash) -> &'static lc::EcdsaVerificationAlgorithm {
        match (self, hash) {
            (Curve::P256, Hash::Sha256) => &lc::ECDSA_P256_SHA256_ASN1,
            (Curve::P256, Hash::Sha384) => &lc::ECDSA_P256_SHA384_ASN1,
            (Curve::P256, Hash::Sha512) => &lc::ECDSA_P256_SHA512_ASN1,
            (Curve::P384, Hash::Sha256) => &lc::ECDSA_P384_SHA256_ASN1,
            (Curve::P384, Hash::Sha384) => &lc::ECDSA_P384_SHA384_ASN1,
            (Curve::P384, Hash::Sha512) => &lc::ECDSA_P384_SHA512_ASN1,
            (Curve::P521, Hash::Sha256) => &lc::ECDSA_P521_SHA256_ASN1,
            (Curve::P521, Hash::Sha384) => &lc::ECDSA_P521_SHA384_ASN1,
            (Curve::P521, Hash::Sha512) => &lc::ECDSA_P521_SHA512_ASN1,
        }
    }
}

impl SigScheme {
    /// Every scheme, strongest-first within each key type.
    pub const ALL: [SigScheme; 10] = [
        SigScheme::RsaPssSha512,
        SigScheme::RsaPssSha384,
        SigScheme::RsaPssSha256,
        SigScheme::RsaPkcs1Sha512,
        SigScheme::RsaPkcs1Sha384,
        SigScheme::RsaPkcs1Sha256,
        SigScheme::EcdsaP521Sha512,
        SigScheme::EcdsaP384Sha384,
        SigScheme::EcdsaP256Sha256,
        SigScheme::Ed25519,
    ];

    /// RFC 7427 §3: the ASN.1 AlgorithmIdentifier that prefixes the signature in the AUTH payload, as
    /// length byte + DER (RFC 7427 Appendix A; RFC 8420 §2 for Ed25519).
    pub fn algorithm_identifier(self) -> &'static [u8] {
        match self {
            SigScheme::RsaPkcs1Sha256 => AI_RSA_PKCS1_SHA256,
            SigScheme::RsaPkcs1Sha384 => AI_RSA_PKCS1_SHA384,
            SigScheme::RsaPkcs1Sha512 => AI_RSA_PKCS1_SHA512,
            SigScheme::RsaPssSha256 => AI_RSA_PSS_SHA256,
            SigScheme::RsaPssSha384 => AI_RSA_PSS_SHA384,
            SigScheme::RsaPssSha512 => AI_RSA_PSS_SHA512,
            SigScheme::EcdsaP256Sha256 => AI_ECDSA_SHA256,
            SigScheme::EcdsaP384Sha384 => AI_ECDSA_SHA384,
            SigScheme::EcdsaP521Sha512 => AI_ECDSA_SHA512,
            SigScheme::Ed25519 => AI_ED25519,
        }
    }

    /// The scheme named by a DER AlgorithmIdentifier (without the length byte). Accepts the blobs of
    /// [`SigScheme::algorithm_identifier`] plus equivalent encodings seen in practice: PKCS#1 v1.5 with absent
    /// parameters, and RSASSA-PSS with an explicit trailerField 1. PSS is only accepted with MGF1 over the
    /// same hash and a salt as long as the hash (what aws-lc-rs verifies). `None` for anything else.
    pub fn from_algorithm_identifier(der: &[u8]) -> Option<SigScheme> {
        if let Some(s) = SigScheme::ALL.into_iter().find(|s| s.algorithm_identifier().get(1..) == Some(der)) {
            return Some(s);
        }
        let ai = AlgorithmIdentifierRef::from_der(der).ok()?;
        match (ai.oid.as_bytes(), ai.parameters) {
            // sha{256,384,512}WithRSAEncryption without the NULL parameter.
            ([0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, last], None) => match last {
                0x0b => Some(SigScheme::RsaPkcs1Sha256),
                0x0c => Some(SigScheme::RsaPkcs1Sha384),
                0x0d => Some(SigScheme::RsaPkcs1Sha512),
                _ => None,
            },
            (OID_RSASSA_PSS, Some(params)) => parse_pss_params(params),
            _ => None,
        }
    }

    /// RFC 7427 §4 SIGNATURE_HASH_ALGORITHMS value of the scheme's hash (5, Identity, for Ed25519).
    pub fn hash_id(self) -> u16 {
        match self {
            SigScheme::RsaPkcs1Sha256 | SigScheme::RsaPssSha256 | SigScheme::EcdsaP256Sha256 => HASH_SHA2_256,
            SigScheme::RsaPkcs1Sha384 | SigScheme::RsaPssSha384 | SigScheme::EcdsaP384Sha384 => HASH_SHA2_384,
            SigScheme::RsaPkcs1Sha512 | SigScheme::RsaPssSha512 | SigScheme::EcdsaP521Sha512 => HASH_SHA2_512,
            SigScheme::Ed25519 => HASH_IDENTITY,
        }
    }

    /// The scheme of a classic ECDSA AUTH method (RFC 4754 §3: 9 P-256/SHA-256, 10 P-384/SHA-384,
    /// 11 P-521/SHA-512). RSA_SIG (1) has no scheme here: it means PKCS#1 v1.5 with SHA-1 (see [`verify_auth`]).
    pub fn from_classic_auth_method(method: AuthMethod) -> Option<SigScheme> {
        match method {
            AuthMethod::ECDSA_256 => Some(SigScheme::EcdsaP256Sha256),
            AuthMethod::ECDSA_384 => Some(SigScheme::EcdsaP384Sha384),
            AuthMethod::ECDSA_521 => Some(SigScheme::EcdsaP521Sha512),
            _ => None,
        }
    }

    /// The classic AUTH method that carries this scheme without an AlgorithmIdentifier (ECDSA only).
    pub fn classic_auth_method(self) -> Option<AuthMethod> {
        match self {
            SigScheme::EcdsaP256Sha256 => Some(AuthMethod::ECDSA_256),
            SigScheme::EcdsaP384Sha384 => Some(AuthMethod::ECDSA_384),
            SigScheme::EcdsaP521Sha512 => Some(AuthMethod::ECDSA_521),
            _ => None,
        }
    }

    /// Pick the first of `ours` (in our order of preference) whose hash the peer announced in
    /// SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4).
    pub fn select(ours: &[SigScheme], peer_hash_ids: &[u16]) -> Option<SigScheme> {
        ours.iter().copied().find(|s| peer_hash_ids.contains(&s.hash_id()))
    }

    fn hash(self) -> Option<Hash> {
        match self.hash_id() {
            HASH_SHA2_256 => Some(Hash::Sha256),
            HASH_SHA2_384 => Some(Hash::Sha384),
            HASH_SHA2_512 => Some(Hash::Sha512),
            _ => None,
        }
    }

    fn is_rsa(self) -> bool {
        matches!(
            self,
            SigScheme::RsaPkcs1Sha256
                | SigScheme::RsaPkcs1Sha384
                | SigScheme::RsaPkcs1Sha512
                | SigScheme::RsaPssSha256
                | SigScheme::RsaPssSha384
                | SigScheme::RsaPssSha512
        )
    }

    fn is_pss(self) -> bool {
        matches!(self, SigScheme::RsaPssSha256 | SigScheme::RsaPssSha384 | SigScheme::RsaPssSha512)
    }
}

/// RSASSA-PSS-params ::= SEQUENCE { hashAlgorithm [0], maskGenAlgorithm [1], saltLength [2], trailerField [3] }
/// (RFC 8017 Appendix A.2.3; the defaults, SHA-1 and 20, are not what we take, so they must be present).
#[derive(Sequence)]
struct RsaPssParams<'a> {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    hash: Option<AlgorithmIdentifierRef<'a>>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    mask_gen: Option<AlgorithmIdentifierRef<'a>>,
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", optional = "true")]
    salt_length: Option<u32>,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
    trailer_field: Option<u32>,
}

/// RSASSA-PSS-params restricted to what aws-lc-rs verifies: hash H, MGF1(H), salt length = |H|, trailer 1.
fn parse_pss_params(params: AnyRef<'_>) -> Option<SigScheme> {
    let p: RsaPssParams<'_> = params.decode_as().ok()?;
    let hash = Hash::from_oid(parse_hash_ai(p.hash?)?.as_bytes())?;
    let mgf = p.mask_gen?;
    if mgf.oid.as_bytes() != OID_MGF1 {
        return None;
    }
    let mgf_hash = Hash::from_oid(parse_hash_ai(mgf.parameters?.decode_as().ok()?)?.as_bytes())?;
    if p.trailer_field.is_some_and(|t| t != 1) || mgf_hash != hash || p.salt_length? != hash.len() as u32 {
        return None;
    }
    Some(match hash {
        Hash::Sha256 => SigScheme::RsaPssSha256,
        Hash::Sha384 => SigScheme::RsaPssSha384,
        Hash::Sha512 => SigScheme::RsaPssSha512,
    })
}

/// The OID of a hash AlgorithmIdentifier with NULL or absent parameters.
fn parse_hash_ai(ai: AlgorithmIdentifierRef<'_>) -> Option<ObjectIdentifier> {
    ai.parameters.is_none_or(|p| p == AnyRef::NULL).then_some(ai.oid)
}

/// Keys that can sign: implemented for in-memory keys here ([`KeyPairSigner`]), and by platform shells
/// (Android KeyChain, Apple Keychain) through FFI. Only signing crosses the boundary; the private key never
/// has to.
///
/// `sign` signs `data` itself (the hash is part of the scheme). ECDSA signatures are returned DER-encoded
/// (`Ecdsa-Sig-Value`), RSA and Ed25519 signatures raw.
pub trait Signer: Send + Sync {
    /// The schemes this key can sign with, in order of preference.
    fn schemes(&self) -> Vec<SigScheme>;
    /// Sign `data` with `scheme`, which must be one of [`Signer::schemes`].
    fn sign(&self, scheme: SigScheme, data: &[u8]) -> Result<Vec<u8>, CryptoError>;
}

/// An in-memory private key (RSA, ECDSA P-256/P-384/P-521, Ed25519) that signs with aws-lc-rs.
///
/// Randomness: RSA-PSS salts and ECDSA nonces come from aws-lc-rs' own CSPRNG, not from an injected RNG.
/// Signing happens while building IKE_AUTH, outside any replayable state, so that is acceptable here; the
/// platform signers draw from their key stores' RNG the same way.
pub struct KeyPairSigner {
    key: PrivateKey,
}

enum PrivateKey {
    Rsa(RsaKeyPair),
    Ecdsa(EcdsaKeyPair, Curve),
    Ed25519(Ed25519KeyPair),
}

impl std::fmt::Debug for KeyPairSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.key {
            PrivateKey::Rsa(k) => format!("RSA-{}", k.public_modulus_len() * 8),
            PrivateKey::Ecdsa(_, c) => format!("ECDSA-{c:?}"),
            PrivateKey::Ed25519(_) => "Ed25519".into(),
        };
        f.debug_struct("KeyPairSigner").field("key", &kind).finish()
    }
}

impl KeyPairSigner {
    /// A PKCS#8 (RFC 5208 / RFC 5958) private key: RSA, EC on P-256/P-384/P-521, or Ed25519.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, CryptoError> {
        if let Ok(k) = RsaKeyPair::from_pkcs8(der) {
            return Ok(KeyPairSigner { key: PrivateKey::Rsa(k) });
        }
        for curve in [Curve::P256, Curve::P384, Curve::P521] {
            if let Ok(k) = EcdsaKeyPair::from_pkcs8(curve.signing_alg(), der) {
                return Ok(KeyPairSigner { key: PrivateKey::Ecdsa(k, curve) });
            }
        }
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map(|k| KeyPairSigner { key: PrivateKey::Ed25519(k) })
            .map_err(|_| CryptoError::KeyRejected)
    }

    /// A PKCS#1 `RSAPrivateKey` (RFC 8017 Appendix A.1.2), as in `-----BEGIN RSA PRIVATE KEY-----`.
    pub fn from_pkcs1_der(der: &[u8]) -> Result<Self, CryptoError> {
        RsaKeyPair::from_der(der)
            .map(|k| KeyPairSigner { key: PrivateKey::Rsa(k) })
            .map_err(|_| CryptoError::KeyRejected)
    }

    /// A SEC1 `ECPrivateKey` (RFC 5915), as in `-----BEGIN EC PRIVATE KEY-----`.
    pub fn from_sec1_der(der: &[u8]) -> Result<Self, CryptoError> {
        for curve in [Curve::P256, Curve::P384, Curve::P521] {
            if let Ok(k) = EcdsaKeyPair::from_private_key_der(curve.signing_alg(), der) {
                return Ok(KeyPairSigner { key: PrivateKey::Ecdsa(k, curve) });
            }
        }
        Err(CryptoError::KeyRejected)
    }

    /// The first private key in a PEM file: `PRIVATE KEY` (PKCS#8), `RSA PRIVATE KEY` (PKCS#1) or
    /// `EC PRIVATE KEY` (SEC1), as written by OpenSSL and strongSwan's `pki --gen`. Encrypted keys are not
    /// supported.
    pub fn from_pem(pem: &[u8]) -> Result<Self, CryptoError> {
        match PrivateKeyDer::from_pem_slice(pem).map_err(|_| CryptoError::KeyRejected)? {
            PrivateKeyDer::Pkcs8(k) => Self::from_pkcs8_der(k.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(k) => Self::from_pkcs1_der(k.secret_pkcs1_der()),
            PrivateKeyDer::Sec1(k) => Self::from_sec1_der(k.secret_sec1_der()),
            _ => Err(CryptoError::Unsupported("private key format")),
        }
    }

    /// The key in PKCS#8 DER, PKCS#1 DER, SEC1 DER, or any of these in PEM.
    pub fn from_any(data: &[u8]) -> Result<Self, CryptoError> {
        if data.trim_ascii_start().starts_with(b"-----BEGIN") {
            return Self::from_pem(data);
        }
        Self::from_pkcs8_der(data).or_else(|_| Self::from_pkcs1_der(data)).or_else(|_| Self::from_sec1_der(data))
    }

    /// The public key as DER SubjectPublicKeyInfo (RFC 5280 §4.1.2.7).
    pub fn public_key_spki(&self) -> Vec<u8> {
        match &self.key {
            PrivateKey::Rsa(k) => spki(OID_RSA_ENCRYPTION, Some(AnyRef::NULL), k.public_key().as_ref()),
            PrivateKey::Ecdsa(k, curve) => {
                let curve_oid = match curve {
                    Curve::P256 => OID_P256,
                    Curve::P384 => OID_P384,
                    Curve::P521 => OID_P521,
                };
                let curve = ObjectIdentifier::from_bytes(curve_oid).ok();
                spki(OID_EC_PUBLIC_KEY, curve.as_ref().map(AnyRef::from), k.public_key().as_ref())
            }
            PrivateKey::Ed25519(k) => spki(OID_ED25519, None, k.public_key().as_ref()),
        }
    }
}

/// A DER SubjectPublicKeyInfo (empty if `der` cannot encode it, which it always can for these keys).
fn spki(alg: &[u8], parameters: Option<AnyRef<'_>>, key: &[u8]) -> Vec<u8> {
    let encode = || -> der::Result<Vec<u8>> {
        let algorithm = AlgorithmIdentifierRef { oid: ObjectIdentifier::from_bytes(alg)?, parameters };
        SubjectPublicKeyInfoRef { algorithm, subject_public_key: BitStringRef::from_bytes(key)? }.to_der()
    };
    encode().unwrap_or_default()
}

impl Signer for KeyPairSigner {
    fn schemes(&self) -> Vec<SigScheme> {
        match &self.key {
            PrivateKey::Rsa(_) => vec![
                SigScheme::RsaPssSha256,
                SigScheme::RsaPssSha384,
                SigScheme::RsaPssSha512,
                SigScheme::RsaPkcs1Sha256,
                SigScheme::RsaPkcs1Sha384,
                SigScheme::RsaPkcs1Sha512,
            ],
            PrivateKey::Ecdsa(_, curve) => vec![curve.scheme()],
            PrivateKey::Ed25519(_) => vec![SigScheme::Ed25519],
        }
    }

    fn sign(&self, scheme: SigScheme, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match &self.key {
            PrivateKey::Rsa(k) => {
                let encoding: &'static dyn lc::RsaEncoding = match scheme {
                    SigScheme::RsaPkcs1Sha256 => &lc::RSA_PKCS1_SHA256,
                    SigScheme::RsaPkcs1Sha384 => &lc::RSA_PKCS1_SHA384,
                    SigScheme::RsaPkcs1Sha512 => &lc::RSA_PKCS1_SHA512,
                    SigScheme::RsaPssSha256 => &lc::RSA_PSS_SHA256,
                    SigScheme::RsaPssSha384 => &lc::RSA_PSS_SHA384,
                    SigScheme::RsaPssSha512 => &lc::RSA_PSS_SHA512,
                    _ => return Err(CryptoError::Unsupported("signature scheme does not fit an RSA key")),
                };
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(encoding, &ignored_rng(), data, &mut sig).map_err(|_| CryptoError::Internal)?;
                Ok(sig)
            }
            PrivateKey::Ecdsa(k, curve) => {
                if scheme != curve.scheme() {
                    return Err(CryptoError::Unsupported("signature scheme does not fit the ECDSA key"));
                }
                let sig = k.sign(&ignored_rng(), data).map_err(|_| CryptoError::Internal)?;
                Ok(sig.as_ref().to_vec())
            }
            PrivateKey::Ed25519(k) => {
                if scheme != SigScheme::Ed25519 {
                    return Err(CryptoError::Unsupported("signature scheme does not fit an Ed25519 key"));
                }
                Ok(k.sign(data).as_ref().to_vec())
            }
        }
    }
}

/// A public key taken apart from its SubjectPublicKeyInfo.
enum PublicKey<'a> {
    /// PKCS#1 RSAPublicKey; `pss_only` for id-RSASSA-PSS keys (RFC 4055 §1.2).
    Rsa {
        key: &'a [u8],
        pss_only: bool,
    },
    Ec {
        point: &'a [u8],
        curve: Curve,
    },
    Ed25519(&'a [u8]),
}

/// A DER SubjectPublicKeyInfo as it is, or the one of an X.509 certificate (SubjectPublicKeyInfo: SEQUENCE
/// { AlgorithmIdentifier, BIT STRING }; Certificate: SEQUENCE { tbs, ... }).
fn spki_of(spki_or_cert: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, CryptoError> {
    if SubjectPublicKeyInfoRef::from_der(spki_or_cert).is_ok() {
        return Ok(spki_or_cert.into());
    }
    let cert = super::cert::x509::parse(spki_or_cert).map_err(|_| CryptoError::KeyRejected)?;
    Ok(cert.spki.into())
}

/// Parse a DER SubjectPublicKeyInfo.
fn parse_public_key(spki: &[u8]) -> Result<PublicKey<'_>, CryptoError> {
    let spki = SubjectPublicKeyInfoRef::from_der(spki).map_err(|_| CryptoError::KeyRejected)?;
    let key = spki.subject_public_key.as_bytes().ok_or(CryptoError::KeyRejected)?;
    match spki.algorithm.oid.as_bytes() {
        OID_RSA_ENCRYPTION => Ok(PublicKey::Rsa { key, pss_only: false }),
        OID_RSASSA_PSS => Ok(PublicKey::Rsa { key, pss_only: true }),
        OID_EC_PUBLIC_KEY => {
            let curve_oid = spki
                .algorithm
                .parameters
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
                .ok_or(CryptoError::Unsupported("EC key without named curve"))?;
            let curve = Curve::from_oid(curve_oid.as_bytes()).ok_or(CryptoError::Unsupported("EC curve"))?;
            Ok(PublicKey::Ec { point: key, curve })
        }
        OID_ED25519 => Ok(PublicKey::Ed25519(key)),
        _ => Err(CryptoError::Unsupported("public key algorithm")),
    }
}

/// Verify `sig` over `data` with the public key of a DER SubjectPublicKeyInfo or X.509 certificate (the
/// end-entity certificate's key, e.g. from [`super::ValidatedPeer::spki`]).
///
/// `sig` is in the [`Signer`] format (ECDSA: DER). For ECDSA the curve is the key's, the hash the scheme's.
/// RSA keys must be 2048 to 8192 bits. A wrong signature is `AuthenticationFailed`; a key that does not fit
/// the scheme is `Unsupported`.
pub fn verify_signature(spki_or_cert: &[u8], scheme: SigScheme, data: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
    let spki = spki_of(spki_or_cert)?;
    let key = parse_public_key(&spki)?;
    let (alg, key_bytes): (&'static dyn lc::VerificationAlgorithm, &[u8]) = match (key, scheme) {
        (PublicKey::Rsa { key, pss_only }, s) if s.is_rsa() => {
            if pss_only && !s.is_pss() {
                return Err(CryptoError::Unsupported("RSASSA-PSS key used with PKCS#1 v1.5"));
            }
            let alg: &'static dyn lc::VerificationAlgorithm = match s {
                SigScheme::RsaPkcs1Sha256 => &lc::RSA_PKCS1_2048_8192_SHA256,
                SigScheme::RsaPkcs1Sha384 => &lc::RSA_PKCS1_2048_8192_SHA384,
                SigScheme::RsaPkcs1Sha512 => &lc::RSA_PKCS1_2048_8192_SHA512,
                SigScheme::RsaPssSha256 => &lc::RSA_PSS_2048_8192_SHA256,
                SigScheme::RsaPssSha384 => &lc::RSA_PSS_2048_8192_SHA384,
                _ => &lc::RSA_PSS_2048_8192_SHA512,
            };
            (alg, key)
        }
        (
            PublicKey::Ec { point, curve },
            s @ (SigScheme::EcdsaP256Sha256 | SigScheme::EcdsaP384Sha384 | SigScheme::EcdsaP521Sha512),
        ) => {
            let hash = s.hash().ok_or(CryptoError::Internal)?;
            (curve.verify_alg(hash), point)
        }
        (PublicKey::Ed25519(k), SigScheme::Ed25519) => (&lc::ED25519, k),
        _ => return Err(CryptoError::Unsupported("the peer's key does not fit the signature scheme")),
    };
    UnparsedPublicKey::new(alg, key_bytes).verify(data, sig).map_err(|_| CryptoError::AuthenticationFailed)
}

/// AUTH payload data for method 14 (RFC 7427 §3): length of the AlgorithmIdentifier, the AlgorithmIdentifier,
/// the signature.
pub fn encode_digital_signature(scheme: SigScheme, sig: &[u8]) -> Vec<u8> {
    let ai = scheme.algorithm_identifier();
    let mut v = Vec::with_capacity(ai.len() + sig.len());
    v.extend_from_slice(ai);
    v.extend_from_slice(sig);
    v
}

/// Split AUTH payload data of method 14 (RFC 7427 §3) into scheme and signature. An AlgorithmIdentifier we do
/// not support is `Unsupported`; truncated data or an empty signature is `BadLength`.
pub fn decode_digital_signature(data: &[u8]) -> Result<(SigScheme, &[u8]), CryptoError> {
    let (&len, rest) = data.split_first().ok_or(CryptoError::BadLength)?;
    let len = usize::from(len);
    let ai = rest.get(..len).ok_or(CryptoError::BadLength)?;
    let sig = rest.get(len..).ok_or(CryptoError::BadLength)?;
    if sig.is_empty() {
        return Err(CryptoError::BadLength);
    }
    let scheme = SigScheme::from_algorithm_identifier(ai).ok_or(CryptoError::Unsupported("signature algorithm"))?;
    Ok((scheme, sig))
}

/// Compute the AUTH payload data (RFC 7296 §3.8) over the signed octets (§2.15) for `method`:
/// DIGITAL_SIGNATURE (RFC 7427) with any `scheme` of the signer, or ECDSA_256/384/521 (RFC 4754) with the
/// matching ECDSA scheme. RSA_SIG is refused: it means SHA-1, which we do not sign with.
pub fn sign_auth(
    signer: &dyn Signer,
    method: AuthMethod,
    scheme: SigScheme,
    octets: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    match method {
        AuthMethod::DIGITAL_SIGNATURE => Ok(encode_digital_signature(scheme, &signer.sign(scheme, octets)?)),
        AuthMethod::ECDSA_256 | AuthMethod::ECDSA_384 | AuthMethod::ECDSA_521 => {
            if SigScheme::from_classic_auth_method(method) != Some(scheme) {
                return Err(CryptoError::Unsupported("ECDSA AUTH method does not match the scheme"));
            }
            let curve = match scheme {
                SigScheme::EcdsaP256Sha256 => Curve::P256,
                SigScheme::EcdsaP384Sha384 => Curve::P384,
                _ => Curve::P521,
            };
            ecdsa_der_to_fixed(&signer.sign(scheme, octets)?, curve.field_len())
        }
        _ => Err(CryptoError::Unsupported("AUTH method is not a signature method we can produce")),
    }
}

/// Verify the AUTH payload data of a signature method (RFC 7296 §3.8) over the signed octets, with the
/// peer's public key (SubjectPublicKeyInfo or certificate). Returns the scheme used, `None` for RSA_SIG.
///
/// - DIGITAL_SIGNATURE (14): RFC 7427, any [`SigScheme`].
/// - ECDSA_256/384/521 (9/10/11): RFC 4754, the key must be on the method's curve; r || s.
/// - RSA_SIG (1): RSASSA-PKCS1-v1_5 with SHA-1, as strongSwan and Windows use it (legacy; a caller may refuse
///   method 1 before calling this).
pub fn verify_auth(
    spki_or_cert: &[u8],
    method: AuthMethod,
    auth_data: &[u8],
    octets: &[u8],
) -> Result<Option<SigScheme>, CryptoError> {
    match method {
        AuthMethod::DIGITAL_SIGNATURE => {
            let (scheme, sig) = decode_digital_signature(auth_data)?;
            verify_signature(spki_or_cert, scheme, octets, sig).map(|()| Some(scheme))
        }
        AuthMethod::ECDSA_256 | AuthMethod::ECDSA_384 | AuthMethod::ECDSA_521 => {
            let scheme = SigScheme::from_classic_auth_method(method).ok_or(CryptoError::Internal)?;
            let PublicKey::Ec { curve, .. } = parse_public_key(&spki_of(spki_or_cert)?)? else {
                return Err(CryptoError::Unsupported("the peer's key does not fit the AUTH method"));
            };
            if curve.scheme() != scheme {
                return Err(CryptoError::Unsupported("the peer's EC key is not on the AUTH method's curve"));
            }
            let sig = ecdsa_fixed_to_der(auth_data, curve.field_len())?;
            verify_signature(spki_or_cert, scheme, octets, &sig).map(|()| Some(scheme))
        }
        AuthMethod::RSA_SIG => {
            let spki = spki_of(spki_or_cert)?;
            let PublicKey::Rsa { key, pss_only: false } = parse_public_key(&spki)? else {
                return Err(CryptoError::Unsupported("the peer's key does not fit the AUTH method"));
            };
            UnparsedPublicKey::new(&lc::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, key)
                .verify(octets, auth_data)
                .map_err(|_| CryptoError::AuthenticationFailed)?;
            Ok(None)
        }
        _ => Err(CryptoError::Unsupported("AUTH method is not a signature method")),
    }
}

/// Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } (RFC 3279 §2.2.3).
#[derive(Sequence)]
struct EcdsaSigValue<'a> {
    r: UintRef<'a>,
    s: UintRef<'a>,
}

/// DER `Ecdsa-Sig-Value` to r || s, each left-padded to `n` octets (RFC 4754 §7).
fn ecdsa_der_to_fixed(sig: &[u8], n: usize) -> Result<Vec<u8>, CryptoError> {
    let sig = EcdsaSigValue::from_der(sig).map_err(|_| CryptoError::BadLength)?;
    let mut out = Vec::with_capacity(2 * n);
    for int in [sig.r.as_bytes(), sig.s.as_bytes()] {
        if int.len() > n {
            return Err(CryptoError::BadLength);
        }
        out.resize(out.len() + n - int.len(), 0);
        out.extend_from_slice(int);
    }
    Ok(out)
}

/// r || s (each `n` octets, RFC 4754 §7) to DER `Ecdsa-Sig-Value`.
fn ecdsa_fixed_to_der(sig: &[u8], n: usize) -> Result<Vec<u8>, CryptoError> {
    if sig.len() != 2 * n {
        return Err(CryptoError::BadLength);
    }
    let (r, s) = sig.split_at(n);
    let int = |v| UintRef::new(v).map_err(|_| CryptoError::BadLength);
    EcdsaSigValue { r: int(r)?, s: int(s)? }.to_der().map_err(|_| CryptoError::BadLength)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer;

    fn rsa_signer(bits: aws_lc_rs::rsa::KeySize) -> KeyPairSigner {
        let k = RsaKeyPair::generate(bits).unwrap();
        let pkcs8 = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&k).unwrap();
        KeyPairSigner::from_pkcs8_der(pkcs8.as_ref()).unwrap()
    }

    fn ec_signer(alg: &'static lc::EcdsaSigningAlgorithm) -> KeyPairSigner {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        KeyPairSigner::from_pkcs8_der(pkcs8.as_ref()).unwrap()
    }

    fn ed_signer() -> KeyPairSigner {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        KeyPairSigner::from_pkcs8_der(pkcs8.as_ref()).unwrap()
    }

    #[test]
    fn algorithm_identifiers_round_trip() {
        for s in SigScheme::ALL {
            let ai = s.algorithm_identifier();
            assert_eq!(usize::from(ai[0]), ai.len() - 1, "{s:?}");
            assert_eq!(SigScheme::from_algorithm_identifier(&ai[1..]), Some(s), "{s:?}");
            // The DER is well-formed: one SEQUENCE, nothing after it.
            assert_eq!(der::Tagged::tag(&AnyRef::from_der(&ai[1..]).unwrap()), der::Tag::Sequence);
            let data = encode_digital_signature(s, &[1, 2, 3]);
            assert_eq!(decode_digital_signature(&data).unwrap(), (s, &[1u8, 2, 3][..]));
        }
        // RFC 7427 A.3.1 / A.1.2 spot checks (hex copied from the RFC's examples).
        assert_eq!(hex::encode(&AI_ECDSA_SHA256[1..]), "300a06082a8648ce3d040302");
        assert_eq!(hex::encode(&AI_RSA_PKCS1_SHA256[1..]), "300d06092a864886f70d01010b0500");
        assert_eq!(SigScheme::Ed25519.hash_id(), 5);
        assert_eq!(SigScheme::RsaPssSha384.hash_id(), 3);
    }

    #[test]
    fn algorithm_identifier_variants() {
        // sha256WithRSAEncryption without NULL parameters.
        let ai = hex::decode("300b06092a864886f70d01010b").unwrap();
        assert_eq!(SigScheme::from_algorithm_identifier(&ai), Some(SigScheme::RsaPkcs1Sha256));
        // RSASSA-PSS/SHA-256 with an explicit trailerField 1.
        let mut pss = AI_RSA_PSS_SHA256[1..].to_vec();
        pss.extend_from_slice(&[0xa3, 0x03, 0x02, 0x01, 0x01]);
        pss[1] += 5;
        pss[14] += 5;
        assert_eq!(SigScheme::from_algorithm_identifier(&pss), Some(SigScheme::RsaPssSha256));
        // Salt length 20 with SHA-256 is not what aws-lc-rs verifies.
        let mut salt20 = AI_RSA_PSS_SHA256[1..].to_vec();
        *salt20.last_mut().unwrap() = 20;
        assert_eq!(SigScheme::from_algorithm_identifier(&salt20), None);
        // sha1WithRSAEncryption, ecdsa-with-SHA1, garbage.
        for bad in ["300d06092a864886f70d0101050500", "300906072a8648ce3d0401", "3000", "", "30"] {
            assert_eq!(SigScheme::from_algorithm_identifier(&hex::decode(bad).unwrap()), None, "{bad}");
        }
        assert_eq!(decode_digital_signature(&[]), Err(CryptoError::BadLength));
        assert_eq!(decode_digital_signature(&[20, 0x30]), Err(CryptoError::BadLength));
        assert_eq!(decode_digital_signature(AI_ED25519), Err(CryptoError::BadLength));
        let sha1 = encode_digital_signature(SigScheme::Ed25519, &[0; 64]);
        let mut sha1 = sha1[8..].to_vec();
        sha1.splice(0..0, hex::decode("0f300d06092a864886f70d0101050500").unwrap());
        assert!(matches!(decode_digital_signature(&sha1), Err(CryptoError::Unsupported(_))));
    }

    #[test]
    fn sign_verify_every_scheme() {
        let rsa = rsa_signer(aws_lc_rs::rsa::KeySize::Rsa2048);
        let signers: Vec<(KeyPairSigner, Vec<SigScheme>)> = vec![
            (rsa, SigScheme::ALL.iter().copied().filter(|s| s.is_rsa()).collect()),
            (ec_signer(&lc::ECDSA_P256_SHA256_ASN1_SIGNING), vec![SigScheme::EcdsaP256Sha256]),
            (ec_signer(&lc::ECDSA_P384_SHA384_ASN1_SIGNING), vec![SigScheme::EcdsaP384Sha384]),
            (ec_signer(&lc::ECDSA_P521_SHA512_ASN1_SIGNING), vec![SigScheme::EcdsaP521Sha512]),
            (ed_signer(), vec![SigScheme::Ed25519]),
        ];
        let data = b"RealMessage1 | Nr | prf(SK_pi, IDi')";
        for (signer, schemes) in &signers {
            let spki = signer.public_key_spki();
            let mut offered = signer.schemes();
            offered.sort_by_key(|s| format!("{s:?}"));
            let mut expected = schemes.clone();
            expected.sort_by_key(|s| format!("{s:?}"));
            assert_eq!(offered, expected);
            for &s in schemes {
                let sig = signer.sign(s, data).unwrap();
                verify_signature(&spki, s, data, &sig).unwrap_or_else(|e| panic!("{s:?}: {e}"));
                // Tampered signature and tampered data are rejected.
                let mut bad = sig.clone();
                let last = bad.len() - 1;
                bad[last] ^= 1;
                assert_eq!(verify_signature(&spki, s, data, &bad), Err(CryptoError::AuthenticationFailed), "{s:?}");
                assert_eq!(verify_signature(&spki, s, b"other", &sig), Err(CryptoError::AuthenticationFailed));
                // Method 14 AUTH data round trip.
                let auth = sign_auth(signer, AuthMethod::DIGITAL_SIGNATURE, s, data).unwrap();
                assert_eq!(verify_auth(&spki, AuthMethod::DIGITAL_SIGNATURE, &auth, data), Ok(Some(s)));
                let mut bad = auth.clone();
                bad[last.min(auth.len() - 1)] ^= 0x40;
                assert!(verify_auth(&spki, AuthMethod::DIGITAL_SIGNATURE, &bad, data).is_err());
                // Classic ECDSA methods (RFC 4754): fixed-width r || s.
                if let Some(m) = s.classic_auth_method() {
                    let auth = sign_auth(signer, m, s, data).unwrap();
                    let n = match s {
                        SigScheme::EcdsaP256Sha256 => 32,
                        SigScheme::EcdsaP384Sha384 => 48,
                        _ => 66,
                    };
                    assert_eq!(auth.len(), 2 * n);
                    assert_eq!(verify_auth(&spki, m, &auth, data), Ok(Some(s)));
                    let mut bad = auth;
                    bad[n - 1] ^= 1;
                    assert_eq!(verify_auth(&spki, m, &bad, data), Err(CryptoError::AuthenticationFailed));
                }
            }
        }
        // Wrong key type for the scheme.
        let ed = &signers[4].0;
        let sig = ed.sign(SigScheme::Ed25519, data).unwrap();
        let rsa_spki = signers[0].0.public_key_spki();
        assert!(matches!(
            verify_signature(&rsa_spki, SigScheme::Ed25519, data, &sig),
            Err(CryptoError::Unsupported(_))
        ));
        assert!(ed.sign(SigScheme::RsaPssSha256, data).is_err());
        assert!(signers[1].0.sign(SigScheme::EcdsaP384Sha384, data).is_err());
        // ECDSA P-384 key with ecdsa-with-SHA256 over the P-256 method is refused for the classic method.
        let p384 = &signers[2].0;
        let sig = p384.sign(SigScheme::EcdsaP384Sha384, data).unwrap();
        let fixed = ecdsa_der_to_fixed(&sig, 48).unwrap();
        assert!(verify_auth(&p384.public_key_spki(), AuthMethod::ECDSA_256, &fixed, data).is_err());
        assert!(sign_auth(p384, AuthMethod::RSA_SIG, SigScheme::EcdsaP384Sha384, data).is_err());
        assert!(verify_signature(&[0x30, 0x00], SigScheme::Ed25519, data, &[0; 64]).is_err());
    }

    #[test]
    fn ecdsa_signature_conversion() {
        // Leading zero bytes and high bits survive DER -> fixed -> DER.
        let fixed: Vec<u8> = [vec![0u8; 31], vec![0x80], vec![0x7f; 32]].concat();
        let der_sig = ecdsa_fixed_to_der(&fixed, 32).unwrap();
        assert_eq!(hex::encode(&der_sig[..7]), "30260202008002");
        assert_eq!(ecdsa_der_to_fixed(&der_sig, 32).unwrap(), fixed);
        assert_eq!(ecdsa_fixed_to_der(&fixed[1..], 32), Err(CryptoError::BadLength));
        assert_eq!(ecdsa_der_to_fixed(&der_sig, 16), Err(CryptoError::BadLength));
        assert_eq!(ecdsa_der_to_fixed(&[0x30, 0x03, 0x02, 0x01], 32), Err(CryptoError::BadLength));
    }

    #[test]
    fn selects_scheme_by_peer_hashes() {
        let ours = [SigScheme::RsaPssSha512, SigScheme::RsaPssSha256, SigScheme::RsaPkcs1Sha256];
        assert_eq!(SigScheme::select(&ours, &[2, 3]), Some(SigScheme::RsaPssSha256));
        assert_eq!(SigScheme::select(&ours, &[4]), Some(SigScheme::RsaPssSha512));
        assert_eq!(SigScheme::select(&ours, &[1, 5]), None);
        assert_eq!(SUPPORTED_HASH_IDS, [2, 3, 4, 5]);
    }

    #[test]
    fn loads_pem_keys() {
        for alg in [&rcgen::PKCS_ECDSA_P256_SHA256, &rcgen::PKCS_ECDSA_P384_SHA384, &rcgen::PKCS_ED25519] {
            let k = rcgen::KeyPair::generate_for(alg).unwrap();
            let s = KeyPairSigner::from_pem(k.serialize_pem().as_bytes()).unwrap();
            assert_eq!(s.public_key_spki(), rcgen::PublicKeyData::subject_public_key_info(&k));
            let s = KeyPairSigner::from_any(&k.serialize_der()).unwrap();
            assert_eq!(s.public_key_spki(), rcgen::PublicKeyData::subject_public_key_info(&k));
        }
        assert!(KeyPairSigner::from_pem(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").is_err());
        assert!(KeyPairSigner::from_any(b"garbage").is_err());
    }
}
