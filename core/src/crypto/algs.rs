//! Transform identifiers and their sizes (RFC 7296 §3.3.2, RFC 4868, RFC 3602, RFC 5282, RFC 7634).

use crate::wire::{dh, encr, integ, prf};

/// Pseudo-random functions (RFC 7296 §2.13, RFC 4868 §2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prf {
    /// PRF_HMAC_SHA2_256.
    HmacSha256,
    /// PRF_HMAC_SHA2_384.
    HmacSha384,
    /// PRF_HMAC_SHA2_512.
    HmacSha512,
}

impl Prf {
    /// The PRF for an IANA transform id.
    pub fn from_id(id: u16) -> Option<Prf> {
        match id {
            prf::HMAC_SHA2_256 => Some(Prf::HmacSha256),
            prf::HMAC_SHA2_384 => Some(Prf::HmacSha384),
            prf::HMAC_SHA2_512 => Some(Prf::HmacSha512),
            _ => None,
        }
    }

    /// The IANA transform id.
    pub fn id(self) -> u16 {
        match self {
            Prf::HmacSha256 => prf::HMAC_SHA2_256,
            Prf::HmacSha384 => prf::HMAC_SHA2_384,
            Prf::HmacSha512 => prf::HMAC_SHA2_512,
        }
    }

    /// Output length in bytes; also the preferred key length (RFC 4868 §2.1.2, RFC 7296 §2.13).
    pub fn output_len(self) -> usize {
        match self {
            Prf::HmacSha256 => 32,
            Prf::HmacSha384 => 48,
            Prf::HmacSha512 => 64,
        }
    }

    pub(crate) fn hmac_alg(self) -> aws_lc_rs::hmac::Algorithm {
        match self {
            Prf::HmacSha256 => aws_lc_rs::hmac::HMAC_SHA256,
            Prf::HmacSha384 => aws_lc_rs::hmac::HMAC_SHA384,
            Prf::HmacSha512 => aws_lc_rs::hmac::HMAC_SHA512,
        }
    }
}

/// Integrity algorithms: HMAC-SHA2 truncated to half the hash length (RFC 4868 §2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum Integ {
    /// AUTH_HMAC_SHA2_256_128.
    HmacSha256_128,
    /// AUTH_HMAC_SHA2_384_192.
    HmacSha384_192,
    /// AUTH_HMAC_SHA2_512_256.
    HmacSha512_256,
}

impl Integ {
    /// The integrity algorithm for an IANA transform id (`NONE` gives `None`).
    pub fn from_id(id: u16) -> Option<Integ> {
        match id {
            integ::HMAC_SHA2_256_128 => Some(Integ::HmacSha256_128),
            integ::HMAC_SHA2_384_192 => Some(Integ::HmacSha384_192),
            integ::HMAC_SHA2_512_256 => Some(Integ::HmacSha512_256),
            _ => None,
        }
    }

    /// The IANA transform id.
    pub fn id(self) -> u16 {
        match self {
            Integ::HmacSha256_128 => integ::HMAC_SHA2_256_128,
            Integ::HmacSha384_192 => integ::HMAC_SHA2_384_192,
            Integ::HmacSha512_256 => integ::HMAC_SHA2_512_256,
        }
    }

    /// Key length in bytes: the full hash length (RFC 4868 §2.1.1).
    pub fn key_len(self) -> usize {
        match self {
            Integ::HmacSha256_128 => 32,
            Integ::HmacSha384_192 => 48,
            Integ::HmacSha512_256 => 64,
        }
    }

    /// ICV length in bytes: half the hash length (RFC 4868 §2.1.1).
    pub fn icv_len(self) -> usize {
        self.key_len() / 2
    }

    pub(crate) fn hmac_alg(self) -> aws_lc_rs::hmac::Algorithm {
        match self {
            Integ::HmacSha256_128 => aws_lc_rs::hmac::HMAC_SHA256,
            Integ::HmacSha384_192 => aws_lc_rs::hmac::HMAC_SHA384,
            Integ::HmacSha512_256 => aws_lc_rs::hmac::HMAC_SHA512,
        }
    }
}

/// Encryption algorithms for the SK payload and ESP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encr {
    /// ENCR_AES_CBC (RFC 3602); `key_len` in bytes: 16, 24 or 32.
    AesCbc {
        /// Key length in bytes.
        key_len: usize,
    },
    /// ENCR_AES_GCM_16 (RFC 4106, RFC 5282); `key_len` in bytes (without the salt): 16, 24 or 32.
    AesGcm16 {
        /// Key length in bytes, excluding the 4-byte salt.
        key_len: usize,
    },
    /// ENCR_CHACHA20_POLY1305 (RFC 7634): 32-byte key plus 4-byte salt.
    ChaCha20Poly1305,
}

impl Encr {
    /// The algorithm for an IANA transform id and its Key Length attribute (§3.3.5). AES requires the
    /// attribute (128, 192 or 256); ChaCha20-Poly1305 must not have one (RFC 7634 §2).
    pub fn from_transform(id: u16, key_len_bits: Option<u16>) -> Option<Encr> {
        let aes_len = |bits: Option<u16>| match bits {
            Some(128) => Some(16),
            Some(192) => Some(24),
            Some(256) => Some(32),
            _ => None,
        };
        match id {
            encr::AES_CBC => aes_len(key_len_bits).map(|key_len| Encr::AesCbc { key_len }),
            encr::AES_GCM_16 => aes_len(key_len_bits).map(|key_len| Encr::AesGcm16 { key_len }),
            encr::CHACHA20_POLY1305 if key_len_bits.is_none() => Some(Encr::ChaCha20Poly1305),
            _ => None,
        }
    }

    /// The IANA transform id.
    pub fn id(self) -> u16 {
        match self {
            Encr::AesCbc { .. } => encr::AES_CBC,
            Encr::AesGcm16 { .. } => encr::AES_GCM_16,
            Encr::ChaCha20Poly1305 => encr::CHACHA20_POLY1305,
        }
    }

    /// The Key Length attribute to send, in bits (§3.3.5); `None` for ChaCha20-Poly1305.
    pub fn key_len_bits(self) -> Option<u16> {
        match self {
            Encr::AesCbc { key_len } | Encr::AesGcm16 { key_len } => u16::try_from(key_len * 8).ok(),
            Encr::ChaCha20Poly1305 => None,
        }
    }

    /// Whether this is a combined-mode (AEAD) algorithm, used without a separate INTEG transform.
    pub fn is_aead(self) -> bool {
        !matches!(self, Encr::AesCbc { .. })
    }

    /// The cipher key length in bytes, without any salt.
    pub fn key_len(self) -> usize {
        match self {
            Encr::AesCbc { key_len } | Encr::AesGcm16 { key_len } => key_len,
            Encr::ChaCha20Poly1305 => 32,
        }
    }

    /// Key material length in bytes taken from prf+: the key plus the 4-byte salt for AEADs
    /// (RFC 5282 §7.1, RFC 4106 §8.1, RFC 7634 §2).
    pub fn keymat_len(self) -> usize {
        match self {
            Encr::AesCbc { key_len } => key_len,
            Encr::AesGcm16 { key_len } => key_len + 4,
            Encr::ChaCha20Poly1305 => 36,
        }
    }

    /// Length of the explicit IV in bytes: 16 for CBC (RFC 3602), 8 for GCM and ChaCha20-Poly1305.
    pub fn iv_len(self) -> usize {
        match self {
            Encr::AesCbc { .. } => 16,
            Encr::AesGcm16 { .. } | Encr::ChaCha20Poly1305 => 8,
        }
    }

    /// Block size the plaintext is padded to: 16 for CBC, 1 for the AEADs (stream-like).
    pub fn block_len(self) -> usize {
        match self {
            Encr::AesCbc { .. } => 16,
            Encr::AesGcm16 { .. } | Encr::ChaCha20Poly1305 => 1,
        }
    }

    /// AEAD tag length in bytes (16 for both AEADs), 0 for CBC.
    pub fn tag_len(self) -> usize {
        if self.is_aead() {
            16
        } else {
            0
        }
    }
}

/// Key exchange groups (RFC 3526, RFC 5903, RFC 8031).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// 2048-bit MODP group 14 (RFC 3526 §3).
    Modp2048,
    /// 3072-bit MODP group 15 (RFC 3526 §4).
    Modp3072,
    /// 4096-bit MODP group 16 (RFC 3526 §5).
    Modp4096,
    /// 256-bit random ECP group 19 (RFC 5903 §3.1).
    Ecp256,
    /// 384-bit random ECP group 20 (RFC 5903 §3.2).
    Ecp384,
    /// 521-bit random ECP group 21 (RFC 5903 §3.3).
    Ecp521,
    /// Curve25519 group 31 (RFC 8031).
    Curve25519,
}

impl Group {
    /// The group for an IANA transform id.
    pub fn from_id(id: u16) -> Option<Group> {
        match id {
            dh::MODP_2048 => Some(Group::Modp2048),
            dh::MODP_3072 => Some(Group::Modp3072),
            dh::MODP_4096 => Some(Group::Modp4096),
            dh::ECP_256 => Some(Group::Ecp256),
            dh::ECP_384 => Some(Group::Ecp384),
            dh::ECP_521 => Some(Group::Ecp521),
            dh::CURVE25519 => Some(Group::Curve25519),
            _ => None,
        }
    }

    /// The IANA transform id (the KE payload's DH Group Num).
    pub fn id(self) -> u16 {
        match self {
            Group::Modp2048 => dh::MODP_2048,
            Group::Modp3072 => dh::MODP_3072,
            Group::Modp4096 => dh::MODP_4096,
            Group::Ecp256 => dh::ECP_256,
            Group::Ecp384 => dh::ECP_384,
            Group::Ecp521 => dh::ECP_521,
            Group::Curve25519 => dh::CURVE25519,
        }
    }

    /// Length in bytes of the KE payload's key exchange data: the modulus length for MODP (§3.4),
    /// x || y for ECP (RFC 5903 §7), 32 for Curve25519 (RFC 8031 §2).
    pub fn public_len(self) -> usize {
        match self {
            Group::Modp2048 => 256,
            Group::Modp3072 => 384,
            Group::Modp4096 => 512,
            Group::Ecp256 => 64,
            Group::Ecp384 => 96,
            Group::Ecp521 => 132,
            Group::Curve25519 => 32,
        }
    }

    /// Length in bytes of the shared secret g^ir.
    pub fn shared_len(self) -> usize {
        match self {
            Group::Ecp256 | Group::Ecp384 | Group::Ecp521 => self.public_len() / 2,
            _ => self.public_len(),
        }
    }
}
