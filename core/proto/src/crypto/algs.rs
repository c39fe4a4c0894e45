//! Transform identifiers and their sizes (RFC 7296 §3.3.2, RFC 4868, RFC 3602, RFC 5282, RFC 7634).
//!
//! Besides the modern suites, a few legacy algorithms that corporate gateways still default to can be
//! negotiated when a profile names them (issue 11; never in the default proposals): HMAC-SHA1-96 and
//! PRF-HMAC-SHA1 (RFC 2404, RFC 7296), 3DES-CBC (RFC 2451), AES-192, AES-GCM with 8- and 12-byte ICVs
//! (RFC 4106, RFC 5282), MODP-1024/1536 (RFC 2409, RFC 3526), Curve448 (RFC 8031) and the brainpool groups
//! (RFC 6954). [`Encr::is_legacy`] and its siblings say which.

use crate::wire::{dh, encr, integ, prf};

/// IANA IKEv2 transform IDs of the legacy algorithms (RFC 7296 §3.3.2 and the IKEv2 registry).
mod legacy_id {
    /// ENCR_3DES (RFC 2451).
    pub const ENCR_3DES: u16 = 3;
    /// ENCR_AES_GCM_8 and ENCR_AES_GCM_12 (RFC 4106 §8.1, RFC 5282 §7.1).
    pub const ENCR_AES_GCM_8: u16 = 18;
    pub const ENCR_AES_GCM_12: u16 = 19;
    /// PRF_HMAC_SHA1 (RFC 2104).
    pub const PRF_HMAC_SHA1: u16 = 2;
    /// AUTH_HMAC_SHA1_96 (RFC 2404).
    pub const AUTH_HMAC_SHA1_96: u16 = 2;
    /// 1024-bit MODP group 2 (RFC 2409 §6.2) and 1536-bit MODP group 5 (RFC 3526 §2).
    pub const MODP_1024: u16 = 2;
    pub const MODP_1536: u16 = 5;
    /// brainpoolP256r1 and brainpoolP384r1 (RFC 6954); 30 (brainpoolP512r1) is not supported.
    pub const ECP_256_BP: u16 = 28;
    pub const ECP_384_BP: u16 = 29;
    /// Curve448 (RFC 8031).
    pub const CURVE448: u16 = 32;
}

/// Pseudo-random functions (RFC 7296 §2.13, RFC 4868 §2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prf {
    /// PRF_HMAC_SHA1 (legacy, opt-in).
    HmacSha1,
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
            legacy_id::PRF_HMAC_SHA1 => Some(Prf::HmacSha1),
            _ => None,
        }
    }

    /// The IANA transform id.
    pub fn id(self) -> u16 {
        match self {
            Prf::HmacSha256 => prf::HMAC_SHA2_256,
            Prf::HmacSha384 => prf::HMAC_SHA2_384,
            Prf::HmacSha512 => prf::HMAC_SHA2_512,
            Prf::HmacSha1 => legacy_id::PRF_HMAC_SHA1,
        }
    }

    /// Whether this is a legacy algorithm, negotiated only when a profile names it (issue 11).
    pub fn is_legacy(self) -> bool {
        matches!(self, Prf::HmacSha1)
    }

    /// Output length in bytes; also the preferred key length (RFC 4868 §2.1.2, RFC 7296 §2.13).
    pub fn output_len(self) -> usize {
        match self {
            Prf::HmacSha1 => 20,
            Prf::HmacSha256 => 32,
            Prf::HmacSha384 => 48,
            Prf::HmacSha512 => 64,
        }
    }

    pub(crate) fn hmac_alg(self) -> aws_lc_rs::hmac::Algorithm {
        match self {
            Prf::HmacSha1 => aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Prf::HmacSha256 => aws_lc_rs::hmac::HMAC_SHA256,
            Prf::HmacSha384 => aws_lc_rs::hmac::HMAC_SHA384,
            Prf::HmacSha512 => aws_lc_rs::hmac::HMAC_SHA512,
        }
    }
}

/// Integrity algorithms: HMAC-SHA2 truncated to half the hash length (RFC 4868 §2.2), and the legacy
/// HMAC-SHA1 truncated to 96 bits (RFC 2404).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum Integ {
    /// AUTH_HMAC_SHA1_96 (legacy, opt-in): 20-byte key, 12-byte ICV (RFC 2404 §2-3).
    HmacSha1_96,
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
            legacy_id::AUTH_HMAC_SHA1_96 => Some(Integ::HmacSha1_96),
            _ => None,
        }
    }

    /// The IANA transform id.
    pub fn id(self) -> u16 {
        match self {
            Integ::HmacSha256_128 => integ::HMAC_SHA2_256_128,
            Integ::HmacSha384_192 => integ::HMAC_SHA2_384_192,
            Integ::HmacSha512_256 => integ::HMAC_SHA2_512_256,
            Integ::HmacSha1_96 => legacy_id::AUTH_HMAC_SHA1_96,
        }
    }

    /// Whether this is a legacy algorithm, negotiated only when a profile names it (issue 11).
    pub fn is_legacy(self) -> bool {
        matches!(self, Integ::HmacSha1_96)
    }

    /// Key length in bytes: the full hash length (RFC 4868 §2.1.1, RFC 2404 §3).
    pub fn key_len(self) -> usize {
        match self {
            Integ::HmacSha1_96 => 20,
            Integ::HmacSha256_128 => 32,
            Integ::HmacSha384_192 => 48,
            Integ::HmacSha512_256 => 64,
        }
    }

    /// ICV length in bytes: half the hash length (RFC 4868 §2.1.1); 96 bits for HMAC-SHA1-96 (RFC 2404 §2).
    pub fn icv_len(self) -> usize {
        match self {
            Integ::HmacSha1_96 => 12,
            other => other.key_len() / 2,
        }
    }

    pub(crate) fn hmac_alg(self) -> aws_lc_rs::hmac::Algorithm {
        match self {
            Integ::HmacSha1_96 => aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Integ::HmacSha256_128 => aws_lc_rs::hmac::HMAC_SHA256,
            Integ::HmacSha384_192 => aws_lc_rs::hmac::HMAC_SHA384,
            Integ::HmacSha512_256 => aws_lc_rs::hmac::HMAC_SHA512,
        }
    }
}

/// Encryption algorithms for the SK payload and ESP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encr {
    /// ENCR_AES_CBC (RFC 3602); `key_len` in bytes: 16, 24 or 32 (24: legacy, opt-in).
    AesCbc {
        /// Key length in bytes.
        key_len: usize,
    },
    /// ENCR_AES_GCM_16 (RFC 4106, RFC 5282); `key_len` in bytes (without the salt): 16, 24 or 32
    /// (24: legacy, opt-in).
    AesGcm16 {
        /// Key length in bytes, excluding the 4-byte salt.
        key_len: usize,
    },
    /// ENCR_AES_GCM_12 (legacy, opt-in): AES-GCM with a 12-byte ICV (RFC 4106, RFC 5282).
    AesGcm12 {
        /// Key length in bytes, excluding the 4-byte salt.
        key_len: usize,
    },
    /// ENCR_AES_GCM_8 (legacy, opt-in): AES-GCM with an 8-byte ICV (RFC 4106, RFC 5282).
    AesGcm8 {
        /// Key length in bytes, excluding the 4-byte salt.
        key_len: usize,
    },
    /// ENCR_CHACHA20_POLY1305 (RFC 7634): 32-byte key plus 4-byte salt.
    ChaCha20Poly1305,
    /// ENCR_3DES (legacy, opt-in): 3DES-EDE in CBC mode, 24-byte key, 8-byte blocks and IV (RFC 2451).
    TripleDes,
}

impl Encr {
    /// The algorithm for an IANA transform id and its Key Length attribute (§3.3.5). AES requires the
    /// attribute (128, 192 or 256); ChaCha20-Poly1305 and 3DES must not have one (RFC 7634 §2, RFC 7296
    /// §3.3.5: only variable-length ciphers carry it).
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
            legacy_id::ENCR_AES_GCM_12 => aes_len(key_len_bits).map(|key_len| Encr::AesGcm12 { key_len }),
            legacy_id::ENCR_AES_GCM_8 => aes_len(key_len_bits).map(|key_len| Encr::AesGcm8 { key_len }),
            encr::CHACHA20_POLY1305 if key_len_bits.is_none() => Some(Encr::ChaCha20Poly1305),
            legacy_id::ENCR_3DES if key_len_bits.is_none() => Some(Encr::TripleDes),
            _ => None,
        }
    }

    /// The IANA transform id.
    pub fn id(self) -> u16 {
        match self {
            Encr::AesCbc { .. } => encr::AES_CBC,
            Encr::AesGcm16 { .. } => encr::AES_GCM_16,
            Encr::AesGcm12 { .. } => legacy_id::ENCR_AES_GCM_12,
            Encr::AesGcm8 { .. } => legacy_id::ENCR_AES_GCM_8,
            Encr::ChaCha20Poly1305 => encr::CHACHA20_POLY1305,
            Encr::TripleDes => legacy_id::ENCR_3DES,
        }
    }

    /// Whether this is a legacy algorithm, negotiated only when a profile names it (issue 11): 3DES,
    /// AES-192, and AES-GCM with an ICV shorter than 16 bytes.
    pub fn is_legacy(self) -> bool {
        match self {
            Encr::AesCbc { key_len } | Encr::AesGcm16 { key_len } => key_len == 24,
            Encr::AesGcm12 { .. } | Encr::AesGcm8 { .. } | Encr::TripleDes => true,
            Encr::ChaCha20Poly1305 => false,
        }
    }

    /// The Key Length attribute to send, in bits (§3.3.5); `None` for the fixed-length ChaCha20-Poly1305
    /// and 3DES.
    pub fn key_len_bits(self) -> Option<u16> {
        match self {
            Encr::AesCbc { key_len }
            | Encr::AesGcm16 { key_len }
            | Encr::AesGcm12 { key_len }
            | Encr::AesGcm8 { key_len } => u16::try_from(key_len * 8).ok(),
            Encr::ChaCha20Poly1305 | Encr::TripleDes => None,
        }
    }

    /// Whether this is a combined-mode (AEAD) algorithm, used without a separate INTEG transform.
    pub fn is_aead(self) -> bool {
        !matches!(self, Encr::AesCbc { .. } | Encr::TripleDes)
    }

    /// The cipher key length in bytes, without any salt (24 for 3DES: three DES keys with their parity
    /// bits, RFC 2451 §2.2).
    pub fn key_len(self) -> usize {
        match self {
            Encr::AesCbc { key_len }
            | Encr::AesGcm16 { key_len }
            | Encr::AesGcm12 { key_len }
            | Encr::AesGcm8 { key_len } => key_len,
            Encr::ChaCha20Poly1305 => 32,
            Encr::TripleDes => 24,
        }
    }

    /// Key material length in bytes taken from prf+: the key plus the 4-byte salt for AEADs
    /// (RFC 5282 §7.1, RFC 4106 §8.1, RFC 7634 §2).
    pub fn keymat_len(self) -> usize {
        if self.is_aead() {
            self.key_len() + 4
        } else {
            self.key_len()
        }
    }

    /// Length of the explicit IV in bytes: the block size for CBC (16 for AES, RFC 3602; 8 for 3DES,
    /// RFC 2451), 8 for GCM and ChaCha20-Poly1305.
    pub fn iv_len(self) -> usize {
        match self {
            Encr::AesCbc { .. } => 16,
            _ => 8,
        }
    }

    /// Block size the plaintext is padded to: the cipher's block for CBC (16 for AES, 8 for 3DES), 1 for
    /// the AEADs (stream-like).
    pub fn block_len(self) -> usize {
        match self {
            Encr::AesCbc { .. } => 16,
            Encr::TripleDes => 8,
            _ => 1,
        }
    }

    /// AEAD tag (ICV) length in bytes: 16, or 12 / 8 for the short-ICV AES-GCM variants; 0 for CBC.
    pub fn tag_len(self) -> usize {
        match self {
            Encr::AesGcm16 { .. } | Encr::ChaCha20Poly1305 => 16,
            Encr::AesGcm12 { .. } => 12,
            Encr::AesGcm8 { .. } => 8,
            Encr::AesCbc { .. } | Encr::TripleDes => 0,
        }
    }
}

/// Key exchange groups (RFC 3526, RFC 5903, RFC 8031; legacy: RFC 2409, RFC 6954).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// 1024-bit MODP group 2 (RFC 2409 §6.2; legacy, opt-in).
    Modp1024,
    /// 1536-bit MODP group 5 (RFC 3526 §2; legacy, opt-in).
    Modp1536,
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
    /// brainpoolP256r1 group 28 (RFC 6954; legacy, opt-in).
    EcpBp256,
    /// brainpoolP384r1 group 29 (RFC 6954; legacy, opt-in).
    EcpBp384,
    /// Curve25519 group 31 (RFC 8031).
    Curve25519,
    /// Curve448 group 32 (RFC 8031; opt-in).
    Curve448,
    /// ML-KEM-512 (FIPS 203), transform 35 (draft-ietf-ipsecme-ikev2-mlkem): a KEM, not a DH group.
    MlKem512,
    /// ML-KEM-768, transform 36.
    MlKem768,
    /// ML-KEM-1024, transform 37.
    MlKem1024,
}

impl Group {
    /// The group for an IANA transform id.
    pub fn from_id(id: u16) -> Option<Group> {
        match id {
            legacy_id::MODP_1024 => Some(Group::Modp1024),
            legacy_id::MODP_1536 => Some(Group::Modp1536),
            dh::MODP_2048 => Some(Group::Modp2048),
            dh::MODP_3072 => Some(Group::Modp3072),
            dh::MODP_4096 => Some(Group::Modp4096),
            dh::ECP_256 => Some(Group::Ecp256),
            dh::ECP_384 => Some(Group::Ecp384),
            dh::ECP_521 => Some(Group::Ecp521),
            legacy_id::ECP_256_BP => Some(Group::EcpBp256),
            legacy_id::ECP_384_BP => Some(Group::EcpBp384),
            dh::CURVE25519 => Some(Group::Curve25519),
            legacy_id::CURVE448 => Some(Group::Curve448),
            dh::MLKEM_512 => Some(Group::MlKem512),
            dh::MLKEM_768 => Some(Group::MlKem768),
            dh::MLKEM_1024 => Some(Group::MlKem1024),
            _ => None,
        }
    }

    /// The IANA transform id (the KE payload's DH Group Num).
    pub fn id(self) -> u16 {
        match self {
            Group::Modp1024 => legacy_id::MODP_1024,
            Group::Modp1536 => legacy_id::MODP_1536,
            Group::Modp2048 => dh::MODP_2048,
            Group::Modp3072 => dh::MODP_3072,
            Group::Modp4096 => dh::MODP_4096,
            Group::Ecp256 => dh::ECP_256,
            Group::Ecp384 => dh::ECP_384,
            Group::Ecp521 => dh::ECP_521,
            Group::EcpBp256 => legacy_id::ECP_256_BP,
            Group::EcpBp384 => legacy_id::ECP_384_BP,
            Group::Curve25519 => dh::CURVE25519,
            Group::Curve448 => legacy_id::CURVE448,
            Group::MlKem512 => dh::MLKEM_512,
            Group::MlKem768 => dh::MLKEM_768,
            Group::MlKem1024 => dh::MLKEM_1024,
        }
    }

    /// Whether this group is negotiated only when a profile names it (issue 11): the small MODP groups, the
    /// brainpool curves and Curve448 (which is sound, but rare enough to stay out of the defaults).
    pub fn is_legacy(self) -> bool {
        matches!(self, Group::Modp1024 | Group::Modp1536 | Group::EcpBp256 | Group::EcpBp384 | Group::Curve448)
    }

    /// Whether this is a MODP (finite field) group.
    pub(crate) fn is_modp(self) -> bool {
        matches!(self, Group::Modp1024 | Group::Modp1536 | Group::Modp2048 | Group::Modp3072 | Group::Modp4096)
    }

    /// Whether this is a KEM (ML-KEM): the initiator sends an encapsulation key, the responder a ciphertext.
    pub fn is_kem(self) -> bool {
        matches!(self, Group::MlKem512 | Group::MlKem768 | Group::MlKem1024)
    }

    /// Length in bytes of the initiator's KE payload data: the modulus length for MODP (§3.4), x || y for
    /// ECP (RFC 5903 §7, RFC 6954 §4), 32 / 56 for Curve25519 / Curve448 (RFC 8031 §2), the encapsulation key
    /// for ML-KEM (FIPS 203 Table 3). The responder's is [`Group::response_len`].
    pub fn public_len(self) -> usize {
        match self {
            Group::Modp1024 => 128,
            Group::Modp1536 => 192,
            Group::Modp2048 => 256,
            Group::Modp3072 => 384,
            Group::Modp4096 => 512,
            Group::Ecp256 | Group::EcpBp256 => 64,
            Group::Ecp384 | Group::EcpBp384 => 96,
            Group::Ecp521 => 132,
            Group::Curve25519 => 32,
            Group::Curve448 => 56,
            Group::MlKem512 => 800,
            Group::MlKem768 => 1184,
            Group::MlKem1024 => 1568,
        }
    }

    /// Length in bytes of the responder's KE payload data: the ciphertext for ML-KEM (FIPS 203 Table 3),
    /// the same as [`Group::public_len`] for the DH groups.
    pub fn response_len(self) -> usize {
        match self {
            Group::MlKem512 => 768,
            Group::MlKem768 => 1088,
            Group::MlKem1024 => 1568,
            _ => self.public_len(),
        }
    }

    /// Length in bytes of the shared secret g^ir: the x coordinate for ECP (RFC 5903 §7, RFC 6954 §4).
    pub fn shared_len(self) -> usize {
        match self {
            Group::Ecp256 | Group::Ecp384 | Group::Ecp521 | Group::EcpBp256 | Group::EcpBp384 => self.public_len() / 2,
            Group::MlKem512 | Group::MlKem768 | Group::MlKem1024 => 32,
            _ => self.public_len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IANA IKEv2 registry numbers (RFC 7296 §3.3.2 and later registrations) and sizes of every algorithm.
    #[test]
    fn transform_ids_and_sizes() {
        // (encr, id, key length attribute, key, keymat, IV, block, ICV, legacy)
        let encrs = [
            (Encr::TripleDes, 3, None, 24, 24, 8, 8, 0, true),
            (Encr::AesCbc { key_len: 16 }, 12, Some(128), 16, 16, 16, 16, 0, false),
            (Encr::AesCbc { key_len: 24 }, 12, Some(192), 24, 24, 16, 16, 0, true),
            (Encr::AesCbc { key_len: 32 }, 12, Some(256), 32, 32, 16, 16, 0, false),
            (Encr::AesGcm8 { key_len: 16 }, 18, Some(128), 16, 20, 8, 1, 8, true),
            (Encr::AesGcm8 { key_len: 32 }, 18, Some(256), 32, 36, 8, 1, 8, true),
            (Encr::AesGcm12 { key_len: 24 }, 19, Some(192), 24, 28, 8, 1, 12, true),
            (Encr::AesGcm12 { key_len: 32 }, 19, Some(256), 32, 36, 8, 1, 12, true),
            (Encr::AesGcm16 { key_len: 16 }, 20, Some(128), 16, 20, 8, 1, 16, false),
            (Encr::AesGcm16 { key_len: 24 }, 20, Some(192), 24, 28, 8, 1, 16, true),
            (Encr::AesGcm16 { key_len: 32 }, 20, Some(256), 32, 36, 8, 1, 16, false),
            (Encr::ChaCha20Poly1305, 28, None, 32, 36, 8, 1, 16, false),
        ];
        for (e, id, bits, key, keymat, iv, block, tag, legacy) in encrs {
            assert_eq!(e.id(), id, "{e:?}");
            assert_eq!(e.key_len_bits(), bits, "{e:?}");
            assert_eq!(Encr::from_transform(id, bits), Some(e));
            assert_eq!(
                (e.key_len(), e.keymat_len(), e.iv_len(), e.block_len(), e.tag_len()),
                (key, keymat, iv, block, tag)
            );
            assert_eq!(e.is_aead(), tag > 0, "{e:?}");
            assert_eq!(e.is_legacy(), legacy, "{e:?}");
        }
        // 3DES and ChaCha20-Poly1305 have a fixed key length: an attribute makes the transform unknown; AES
        // needs one.
        assert_eq!(Encr::from_transform(3, Some(192)), None);
        assert_eq!(Encr::from_transform(18, None), None);
        assert_eq!(Encr::from_transform(19, Some(64)), None);
        // ENCR_DES (2), ENCR_NULL (11), ENCR_AES_CCM_* (14-16) are not supported.
        for id in [1, 2, 11, 14, 15, 16] {
            assert_eq!(Encr::from_transform(id, None), None);
            assert_eq!(Encr::from_transform(id, Some(128)), None);
        }

        // (integ, id, key, ICV, legacy)
        for (i, id, key, icv, legacy) in [
            (Integ::HmacSha1_96, 2, 20, 12, true),
            (Integ::HmacSha256_128, 12, 32, 16, false),
            (Integ::HmacSha384_192, 13, 48, 24, false),
            (Integ::HmacSha512_256, 14, 64, 32, false),
        ] {
            assert_eq!((i.id(), i.key_len(), i.icv_len(), i.is_legacy()), (id, key, icv, legacy));
            assert_eq!(Integ::from_id(id), Some(i));
        }
        // AUTH_HMAC_MD5_96 (1), AUTH_AES_XCBC_96 (5) are not supported.
        assert_eq!(Integ::from_id(1), None);
        assert_eq!(Integ::from_id(5), None);

        // (group, id, public value, shared secret, legacy)
        for (g, id, public, shared, legacy) in [
            (Group::Modp1024, 2, 128, 128, true),
            (Group::Modp1536, 5, 192, 192, true),
            (Group::Modp2048, 14, 256, 256, false),
            (Group::Modp3072, 15, 384, 384, false),
            (Group::Modp4096, 16, 512, 512, false),
            (Group::Ecp256, 19, 64, 32, false),
            (Group::Ecp384, 20, 96, 48, false),
            (Group::Ecp521, 21, 132, 66, false),
            (Group::EcpBp256, 28, 64, 32, true),
            (Group::EcpBp384, 29, 96, 48, true),
            (Group::Curve25519, 31, 32, 32, false),
            (Group::Curve448, 32, 56, 56, true),
        ] {
            assert_eq!((g.id(), g.public_len(), g.shared_len(), g.is_legacy()), (id, public, shared, legacy));
            assert_eq!(Group::from_id(id), Some(g));
        }
        // MODP-768 (1), MODP-2048 with subgroups (22-24), ECP-192/224 (25, 26), brainpoolP224r1 (27) and
        // brainpoolP512r1 (30) are not supported.
        for id in [1, 22, 23, 24, 25, 26, 27, 30] {
            assert_eq!(Group::from_id(id), None, "{id}");
        }
    }
}
