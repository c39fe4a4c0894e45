//! Cryptography for IKEv2 and ESP. All third-party crypto of the project lives behind this module.
//!
//! - [`Prf`], [`Integ`], [`Encr`], [`Group`]: the negotiated transforms (RFC 7296 §3.3.2, RFC 4868, RFC 5282,
//!   RFC 7634, RFC 3526, RFC 5903, RFC 8031) and their key/IV/ICV sizes.
//! - [`Prf::prf_plus`]: prf+ (RFC 7296 §2.13).
//! - [`KeyExchange`]: Diffie-Hellman with peer value validation (RFC 6989).
//! - [`IkeKeys`], [`ChildKeys`]: key derivation (RFC 7296 §2.14, §2.17, §2.18).
//! - [`SkCipher`]: SK / SKF payload protection (RFC 7296 §3.14, RFC 5282, RFC 7634, RFC 7383).
//! - [`AeadKey`], [`CbcKey`], [`HmacKey`]: allocation-free per-packet primitives for ESP (RFC 4106, RFC 7634,
//!   RFC 3602, RFC 4868).

mod algs;
mod cert;
mod cipher;
mod dh;
mod keys;
#[cfg(test)]
mod mlkem_tests;
mod prf;
mod sig;
mod sk;
mod util;

pub use algs::{Encr, Group, Integ, Prf};
pub use cert::{
    cert_names_identity, cert_spki_sha256, certreq_hashes, crl_urls, display_dn, ocsp_query, spki_sha256,
    validate_gateway, validate_gateway_online, verified_chain, CertError, ClientCredentials, GatewayCertPolicy,
    OcspAnswer, OcspError, OcspQuery, OcspStatus, Revocation, RevocationRequest, RevocationResponse, TrustAnchors,
    ValidatedPeer,
};
pub use cipher::{AeadKey, CbcKey, HmacKey};
pub use dh::KeyExchange;
pub use keys::{ChildKeys, IkeKeys};
pub use sig::{
    decode_digital_signature, encode_digital_signature, sign_auth, verify_auth, verify_signature, KeyPairSigner,
    SigScheme, Signer, SUPPORTED_HASH_IDS,
};
pub use sk::SkCipher;
pub use util::{constant_time_eq, nat_detection_hash};
pub use zeroize::Zeroizing;

/// Errors of the crypto layer. Peer-caused failures map to `InvalidPublicValue`, `AuthenticationFailed`,
/// `BadLength` and `BadPadding`; none of them carries secret material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The peer's key exchange value failed validation (RFC 6989) or produced a degenerate secret.
    #[error("invalid key exchange public value")]
    InvalidPublicValue,
    /// ICV or AEAD tag mismatch.
    #[error("integrity check failed")]
    AuthenticationFailed,
    /// A key, IV, ciphertext or buffer has the wrong length.
    #[error("bad length")]
    BadLength,
    /// Decrypted padding is inconsistent (pad length larger than the plaintext).
    #[error("bad padding")]
    BadPadding,
    /// The algorithm or combination of algorithms is not supported here.
    #[error("unsupported algorithm: {0}")]
    Unsupported(&'static str),
    /// The crypto backend rejected key material (e.g. repeatedly invalid random scalars).
    #[error("key rejected")]
    KeyRejected,
    /// The crypto backend failed for a reason that is not the peer's input.
    #[error("internal crypto failure")]
    Internal,
}
