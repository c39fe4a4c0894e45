//! Per-packet primitives, allocation-free: AEAD (RFC 4106, RFC 7634), AES-CBC (RFC 3602), 3DES-CBC
//! (RFC 2451) and truncated HMAC (RFC 4868, RFC 2404). Used by the ESP data plane and by [`super::SkCipher`].
//!
//! AES-GCM with a 16-byte ICV, ChaCha20-Poly1305, AES-CBC and HMAC come from aws-lc-rs. Its public API has
//! neither GCM with shorter ICVs nor 3DES, so the legacy AES-GCM-8/-12 (RFC 4106 §8.1: the ICV is the leading
//! bytes of the GCM tag) use RustCrypto's `aes-gcm`, and 3DES-CBC uses RustCrypto's `des` (`TdesEde3`) in
//! the `cbc` crate's CBC mode.

use aes_gcm::aes::cipher::consts::{U12, U8};
use aes_gcm::aes::{Aes128, Aes192, Aes256};
use aes_gcm::{AeadInOut, AesGcm, KeyInit as _};
use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{DecryptingKey, DecryptionContext, EncryptingKey, EncryptionContext, UnboundCipherKey};
use aws_lc_rs::{constant_time, hmac, iv::FixedLength};
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, InnerIvInit, KeyInit as _};
use zeroize::Zeroize;

use super::{CryptoError, Encr, Integ};

/// Salt length of the AEADs' nonce (RFC 4106 §4, RFC 7634 §2).
const SALT_LEN: usize = 4;
/// The longest AEAD tag (16 for AES-GCM-16 and ChaCha20-Poly1305; the legacy AES-GCM-12/-8 are shorter).
pub(crate) const MAX_TAG_LEN: usize = 16;

/// AES-GCM with a short ICV (legacy): key size x tag size.
enum ShortGcm {
    Aes128Icv12(AesGcm<Aes128, U12, U12>),
    Aes192Icv12(AesGcm<Aes192, U12, U12>),
    Aes256Icv12(AesGcm<Aes256, U12, U12>),
    Aes128Icv8(AesGcm<Aes128, U12, U8>),
    Aes192Icv8(AesGcm<Aes192, U12, U8>),
    Aes256Icv8(AesGcm<Aes256, U12, U8>),
}

/// Runs `$body` with `$k` bound to the cipher of any [`ShortGcm`] variant.
macro_rules! with_short_gcm {
    ($gcm:expr, $k:ident => $body:expr) => {
        match $gcm {
            ShortGcm::Aes128Icv12($k) => $body,
            ShortGcm::Aes192Icv12($k) => $body,
            ShortGcm::Aes256Icv12($k) => $body,
            ShortGcm::Aes128Icv8($k) => $body,
            ShortGcm::Aes192Icv8($k) => $body,
            ShortGcm::Aes256Icv8($k) => $body,
        }
    };
}

impl ShortGcm {
    fn new(encr: Encr, key: &[u8]) -> Result<ShortGcm, CryptoError> {
        let bad = |_| CryptoError::BadLength;
        Ok(match encr {
            Encr::AesGcm12 { key_len: 16 } => ShortGcm::Aes128Icv12(AesGcm::new_from_slice(key).map_err(bad)?),
            Encr::AesGcm12 { key_len: 24 } => ShortGcm::Aes192Icv12(AesGcm::new_from_slice(key).map_err(bad)?),
            Encr::AesGcm12 { key_len: 32 } => ShortGcm::Aes256Icv12(AesGcm::new_from_slice(key).map_err(bad)?),
            Encr::AesGcm8 { key_len: 16 } => ShortGcm::Aes128Icv8(AesGcm::new_from_slice(key).map_err(bad)?),
            Encr::AesGcm8 { key_len: 24 } => ShortGcm::Aes192Icv8(AesGcm::new_from_slice(key).map_err(bad)?),
            Encr::AesGcm8 { key_len: 32 } => ShortGcm::Aes256Icv8(AesGcm::new_from_slice(key).map_err(bad)?),
            _ => return Err(CryptoError::BadLength),
        })
    }

    fn seal(&self, nonce: [u8; 12], aad: &[u8], data: &mut [u8], tag: &mut [u8]) -> Result<(), CryptoError> {
        with_short_gcm!(self, k => {
            let t = k.encrypt_inout_detached(&nonce.into(), aad, data.into()).map_err(|_| CryptoError::BadLength)?;
            let t: &[u8] = t.as_ref();
            if tag.len() != t.len() {
                return Err(CryptoError::BadLength);
            }
            tag.copy_from_slice(t);
            Ok(())
        })
    }

    fn open(&self, nonce: [u8; 12], aad: &[u8], data: &mut [u8], tag: &[u8]) -> Result<(), CryptoError> {
        with_short_gcm!(self, k => {
            let tag = tag.try_into().map_err(|_| CryptoError::AuthenticationFailed)?;
            k.decrypt_inout_detached(&nonce.into(), aad, data.into(), tag)
                .map_err(|_| CryptoError::AuthenticationFailed)
        })
    }
}

enum AeadImpl {
    /// aws-lc-rs: AES-GCM-16 and ChaCha20-Poly1305.
    Full(LessSafeKey),
    /// RustCrypto aes-gcm: AES-GCM-12 and AES-GCM-8 (legacy).
    Short(Box<ShortGcm>),
}

/// An AEAD key for AES-GCM (RFC 4106; 16-, 12- or 8-byte ICV) or ChaCha20-Poly1305 (RFC 7634). `keymat` is
/// key || 4-byte salt; the 12-byte nonce is salt || 8-byte explicit IV.
pub struct AeadKey {
    key: AeadImpl,
    salt: [u8; SALT_LEN],
    tag_len: usize,
}

impl AeadKey {
    /// Builds the key from `keymat` (exactly [`Encr::keymat_len`] bytes).
    pub fn new(encr: Encr, keymat: &[u8]) -> Result<AeadKey, CryptoError> {
        let full = match encr {
            Encr::AesGcm16 { key_len: 16 } => Some(&aead::AES_128_GCM),
            Encr::AesGcm16 { key_len: 24 } => Some(&aead::AES_192_GCM),
            Encr::AesGcm16 { key_len: 32 } => Some(&aead::AES_256_GCM),
            Encr::ChaCha20Poly1305 => Some(&aead::CHACHA20_POLY1305),
            Encr::AesGcm16 { .. } => return Err(CryptoError::BadLength),
            Encr::AesGcm12 { .. } | Encr::AesGcm8 { .. } => None,
            Encr::AesCbc { .. } | Encr::TripleDes => return Err(CryptoError::Unsupported("CBC is not an AEAD")),
        };
        if keymat.len() != encr.keymat_len() {
            return Err(CryptoError::BadLength);
        }
        let (key_bytes, salt_bytes) = keymat.split_at(encr.key_len());
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(salt_bytes);
        let key = match full {
            Some(alg) => {
                let key = UnboundKey::new(alg, key_bytes).map_err(|_| CryptoError::KeyRejected)?;
                AeadImpl::Full(LessSafeKey::new(key))
            }
            None => AeadImpl::Short(Box::new(ShortGcm::new(encr, key_bytes)?)),
        };
        Ok(AeadKey { key, salt, tag_len: encr.tag_len() })
    }

    /// Tag (ICV) length in bytes: 16, or 12 / 8 for the short-ICV AES-GCM variants.
    pub fn tag_len(&self) -> usize {
        self.tag_len
    }

    fn nonce_bytes(&self, iv: &[u8; 8]) -> [u8; aead::NONCE_LEN] {
        let mut n = [0u8; aead::NONCE_LEN];
        n[..SALT_LEN].copy_from_slice(&self.salt);
        n[SALT_LEN..].copy_from_slice(iv);
        n
    }

    /// Encrypts `data` in place and writes the tag, which must be exactly [`Self::tag_len`] bytes. The
    /// (key, `iv`) pair must never repeat.
    pub fn seal_in_place(&self, iv: &[u8; 8], aad: &[u8], data: &mut [u8], tag: &mut [u8]) -> Result<(), CryptoError> {
        if tag.len() != self.tag_len {
            return Err(CryptoError::BadLength);
        }
        let nonce = self.nonce_bytes(iv);
        match &self.key {
            AeadImpl::Full(key) => {
                let t = key
                    .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), data)
                    .map_err(|_| CryptoError::BadLength)?;
                tag.copy_from_slice(t.as_ref());
                Ok(())
            }
            AeadImpl::Short(gcm) => gcm.seal(nonce, aad, data, tag),
        }
    }

    /// Verifies `tag` and decrypts `data` in place. On failure `data` holds unspecified bytes.
    pub fn open_in_place(&self, iv: &[u8; 8], aad: &[u8], data: &mut [u8], tag: &[u8]) -> Result<(), CryptoError> {
        if tag.len() != self.tag_len {
            return Err(CryptoError::AuthenticationFailed);
        }
        let nonce = self.nonce_bytes(iv);
        match &self.key {
            AeadImpl::Full(key) => key
                .open_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), tag, data)
                .map(|_| ())
                .map_err(|_| CryptoError::AuthenticationFailed),
            AeadImpl::Short(gcm) => gcm.open(nonce, aad, data, tag),
        }
    }
}

impl Drop for AeadKey {
    fn drop(&mut self) {
        self.salt.zeroize();
    }
}

impl std::fmt::Debug for AeadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AeadKey").field("tag_len", &self.tag_len).finish_non_exhaustive()
    }
}

/// Variant sizes differ, but a key lives as long as its SA (one per direction), and the CBC path must not
/// allocate per packet.
#[allow(clippy::large_enum_variant)]
enum CbcImpl {
    /// aws-lc-rs AES-CBC.
    Aes { enc: EncryptingKey, dec: DecryptingKey },
    /// RustCrypto 3DES-EDE (legacy); its key schedule is zeroized on drop.
    TripleDes(des::TdesEde3),
}

/// A CBC key without padding: AES-CBC (RFC 3602) or 3DES-CBC (RFC 2451). The caller pads: `data.len()` must
/// be a multiple of [`Self::block_len`], and the IV is one block.
pub struct CbcKey {
    inner: CbcImpl,
}

impl CbcKey {
    /// Builds an AES-CBC key from 16, 24 or 32 key bytes.
    pub fn new(key: &[u8]) -> Result<CbcKey, CryptoError> {
        let alg = match key.len() {
            16 => &aws_lc_rs::cipher::AES_128,
            24 => &aws_lc_rs::cipher::AES_192,
            32 => &aws_lc_rs::cipher::AES_256,
            _ => return Err(CryptoError::BadLength),
        };
        let unbound = || UnboundCipherKey::new(alg, key).map_err(|_| CryptoError::KeyRejected);
        let enc = EncryptingKey::cbc(unbound()?).map_err(|_| CryptoError::KeyRejected)?;
        let dec = DecryptingKey::cbc(unbound()?).map_err(|_| CryptoError::KeyRejected)?;
        Ok(CbcKey { inner: CbcImpl::Aes { enc, dec } })
    }

    /// Builds the key of a CBC cipher: AES-CBC with [`Encr::key_len`] bytes, or 3DES-CBC with 24 bytes
    /// (k1 || k2 || k3, RFC 2451 §2.2).
    pub fn for_encr(encr: Encr, key: &[u8]) -> Result<CbcKey, CryptoError> {
        if key.len() != encr.key_len() {
            return Err(CryptoError::BadLength);
        }
        match encr {
            Encr::AesCbc { .. } => CbcKey::new(key),
            Encr::TripleDes => {
                let tdes = des::TdesEde3::new_from_slice(key).map_err(|_| CryptoError::BadLength)?;
                Ok(CbcKey { inner: CbcImpl::TripleDes(tdes) })
            }
            _ => Err(CryptoError::Unsupported("not a CBC cipher")),
        }
    }

    /// Block (and IV) length in bytes: 16 for AES, 8 for 3DES.
    pub fn block_len(&self) -> usize {
        match self.inner {
            CbcImpl::Aes { .. } => 16,
            CbcImpl::TripleDes(_) => 8,
        }
    }

    fn check(&self, iv: &[u8], data: &[u8]) -> Result<(), CryptoError> {
        if iv.len() != self.block_len() || !data.len().is_multiple_of(self.block_len()) {
            return Err(CryptoError::BadLength);
        }
        Ok(())
    }

    /// Encrypts `data` in place with `iv` (one block, which must be unpredictable, RFC 3602 §2.1,
    /// RFC 2451 §2.3).
    pub fn encrypt_in_place(&self, iv: &[u8], data: &mut [u8]) -> Result<(), CryptoError> {
        self.check(iv, data)?;
        match &self.inner {
            CbcImpl::Aes { enc, .. } => {
                let iv: &[u8; 16] = iv.try_into().map_err(|_| CryptoError::BadLength)?;
                enc.less_safe_encrypt(data, EncryptionContext::Iv128(FixedLength::from(iv)))
                    .map(|_| ())
                    .map_err(|_| CryptoError::Internal)
            }
            CbcImpl::TripleDes(tdes) => {
                let len = data.len();
                cbc::Encryptor::<des::TdesEde3>::inner_iv_slice_init(tdes.clone(), iv)
                    .map_err(|_| CryptoError::BadLength)?
                    .encrypt_padded_mut::<NoPadding>(data, len)
                    .map(|_| ())
                    .map_err(|_| CryptoError::BadLength)
            }
        }
    }

    /// Decrypts `data` in place.
    pub fn decrypt_in_place(&self, iv: &[u8], data: &mut [u8]) -> Result<(), CryptoError> {
        self.check(iv, data)?;
        match &self.inner {
            CbcImpl::Aes { dec, .. } => {
                let iv: &[u8; 16] = iv.try_into().map_err(|_| CryptoError::BadLength)?;
                dec.decrypt(data, DecryptionContext::Iv128(FixedLength::from(iv)))
                    .map(|_| ())
                    .map_err(|_| CryptoError::Internal)
            }
            CbcImpl::TripleDes(tdes) => cbc::Decryptor::<des::TdesEde3>::inner_iv_slice_init(tdes.clone(), iv)
                .map_err(|_| CryptoError::BadLength)?
                .decrypt_padded_mut::<NoPadding>(data)
                .map(|_| ())
                .map_err(|_| CryptoError::BadLength),
        }
    }
}

impl std::fmt::Debug for CbcKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CbcKey").field("block_len", &self.block_len()).finish_non_exhaustive()
    }
}

/// A truncated HMAC key: HMAC-SHA2 with the leading half of the output as ICV (RFC 4868 §2.1), or
/// HMAC-SHA1-96 with the leading 12 bytes (RFC 2404 §2).
pub struct HmacKey {
    key: hmac::Key,
    icv_len: usize,
}

impl HmacKey {
    /// Builds the key; `key` should be [`Integ::key_len`] bytes (RFC 4868 §2.1.1), any length is accepted.
    pub fn new(integ: Integ, key: &[u8]) -> HmacKey {
        HmacKey { key: hmac::Key::new(integ.hmac_alg(), key), icv_len: integ.icv_len() }
    }

    /// ICV length in bytes.
    pub fn icv_len(&self) -> usize {
        self.icv_len
    }

    fn tag(&self, parts: &[&[u8]]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        for p in parts {
            ctx.update(p);
        }
        ctx.sign()
    }

    /// Computes the ICV over the concatenation of `parts` and writes it to `out`, which should be
    /// [`Self::icv_len`] bytes (a shorter `out` receives a prefix, extra bytes are left untouched).
    pub fn sign(&self, parts: &[&[u8]], out: &mut [u8]) {
        let tag = self.tag(parts);
        let icv = tag.as_ref().get(..self.icv_len).unwrap_or_default();
        for (o, t) in out.iter_mut().zip(icv) {
            *o = *t;
        }
    }

    /// Verifies `icv` against the concatenation of `parts` in constant time.
    pub fn verify(&self, parts: &[&[u8]], icv: &[u8]) -> Result<(), CryptoError> {
        let tag = self.tag(parts);
        let expected = tag.as_ref().get(..self.icv_len).unwrap_or_default();
        if icv.len() != self.icv_len {
            return Err(CryptoError::AuthenticationFailed);
        }
        constant_time::verify_slices_are_equal(expected, icv).map_err(|_| CryptoError::AuthenticationFailed)
    }
}

impl std::fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HmacKey").field("icv_len", &self.icv_len).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// RFC 3602 §4 cases #1 and #2.
    #[test]
    fn aes_cbc_rfc3602() {
        let cases = [
            (
                "06a9214036b8a15b512e03d534120006",
                "3dafba429d9eb430b422da802c9fac41",
                hex::encode(b"Single block msg"),
                "e353779c1079aeb82708942dbe77181a",
            ),
            (
                "c286696d887c9aa0611bbb3e2025a45a",
                "562e17996d093d28ddb3ba695a2e6f58",
                "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f".to_string(),
                "d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1",
            ),
        ];
        for (k, iv, pt, ct) in cases {
            let key = CbcKey::new(&h(k)).unwrap();
            let iv: [u8; 16] = h(iv).try_into().unwrap();
            let mut data = h(&pt);
            key.encrypt_in_place(&iv, &mut data).unwrap();
            assert_eq!(hex::encode(&data), ct);
            key.decrypt_in_place(&iv, &mut data).unwrap();
            assert_eq!(hex::encode(&data), pt);
        }
        let key = CbcKey::new(&[0u8; 16]).unwrap();
        assert_eq!(key.encrypt_in_place(&[0; 16], &mut [0u8; 15]), Err(CryptoError::BadLength));
        assert!(CbcKey::new(&[0u8; 17]).is_err());
    }

    /// GCM spec (McGrew/Viega) test case 4, split as RFC 4106 salt || IV.
    #[test]
    fn aes_gcm_vector() {
        let mut keymat = h("feffe9928665731c6d6a8f9467308308");
        keymat.extend_from_slice(&h("cafebabe"));
        let key = AeadKey::new(Encr::AesGcm16 { key_len: 16 }, &keymat).unwrap();
        let iv: [u8; 8] = h("facedbaddecaf888").try_into().unwrap();
        let aad = h("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let pt = h("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
                    1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39");
        let mut data = pt.clone();
        let mut tag = [0u8; 16];
        key.seal_in_place(&iv, &aad, &mut data, &mut tag).unwrap();
        assert_eq!(
            hex::encode(&data),
            "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e\
             21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091"
        );
        assert_eq!(hex::encode(tag), "5bc94fbc3221a5db94fae95ae7121a47");
        let ct = data.clone();
        key.open_in_place(&iv, &aad, &mut data, &tag).unwrap();
        assert_eq!(data, pt);
        let mut bad = ct.clone();
        bad[0] ^= 1;
        assert_eq!(key.open_in_place(&iv, &aad, &mut bad, &tag), Err(CryptoError::AuthenticationFailed));
        let mut data = ct.clone();
        assert_eq!(key.open_in_place(&iv, &aad[1..], &mut data, &tag), Err(CryptoError::AuthenticationFailed));
        let mut data = ct;
        assert_eq!(key.open_in_place(&iv, &aad, &mut data, &tag[..15]), Err(CryptoError::AuthenticationFailed));
        assert_eq!(AeadKey::new(Encr::AesGcm16 { key_len: 16 }, &keymat[..16]).err(), Some(CryptoError::BadLength));
    }

    /// RFC 8439 §2.8.2; the 32-bit constant 07000000 is the RFC 7634 salt.
    #[test]
    fn chacha20_poly1305_rfc8439() {
        let mut keymat: Vec<u8> = (0x80u8..=0x9f).collect();
        keymat.extend_from_slice(&[7, 0, 0, 0]);
        let key = AeadKey::new(Encr::ChaCha20Poly1305, &keymat).unwrap();
        let iv: [u8; 8] = h("4041424344454647").try_into().unwrap();
        let aad = h("50515253c0c1c2c3c4c5c6c7");
        let pt = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip \
                   for the future, sunscreen would be it.";
        let mut data = pt.to_vec();
        let mut tag = [0u8; 16];
        key.seal_in_place(&iv, &aad, &mut data, &mut tag).unwrap();
        assert_eq!(
            hex::encode(&data),
            "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6\
             3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36\
             92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc\
             3ff4def08e4b7a9de576d26586cec64b6116"
        );
        assert_eq!(hex::encode(tag), "1ae10b594f09e26a7e902ecbd0600691");
        key.open_in_place(&iv, &aad, &mut data, &tag).unwrap();
        assert_eq!(&data[..], &pt[..]);
        tag[15] ^= 0x80;
        assert_eq!(key.open_in_place(&iv, &aad, &mut data, &tag), Err(CryptoError::AuthenticationFailed));
    }

    /// RFC 4868 §2.7.2 test case 1 (key 0x0b repeated, "Hi There") for all three truncations.
    #[test]
    fn hmac_truncated_rfc4868() {
        let cases = [
            (Integ::HmacSha256_128, "198a607eb44bfbc69903a0f1cf2bbdc5"),
            (Integ::HmacSha384_192, "b6a8d5636f5c6a7224f9977dcf7ee6c7fb6d0c48cbdee973"),
            (Integ::HmacSha512_256, "637edc6e01dce7e6742a99451aae82df23da3e92439e590e43e761b33e910fb8"),
        ];
        for (integ, icv) in cases {
            let key = HmacKey::new(integ, &vec![0x0b; integ.key_len()]);
            assert_eq!(key.icv_len(), integ.icv_len());
            let mut out = vec![0u8; key.icv_len()];
            key.sign(&[b"Hi ", b"", b"There"], &mut out);
            assert_eq!(hex::encode(&out), icv);
            key.verify(&[b"Hi There"], &out).unwrap();
            out[3] ^= 1;
            assert_eq!(key.verify(&[b"Hi There"], &out), Err(CryptoError::AuthenticationFailed));
            out[3] ^= 1;
            assert_eq!(key.verify(&[b"Hi There"], &out[1..]), Err(CryptoError::AuthenticationFailed));
        }
    }

    /// RFC 2202 §3 test cases 1-3; HMAC-SHA1-96 is their leading 12 bytes (RFC 2404 §2).
    #[test]
    fn hmac_sha1_96_rfc2202() {
        let cases: [(Vec<u8>, Vec<u8>, &str); 3] = [
            (vec![0x0b; 20], b"Hi There".to_vec(), "b617318655057264e28bc0b6fb378c8ef146be00"),
            (b"Jefe".to_vec(), b"what do ya want for nothing?".to_vec(), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
            (vec![0xaa; 20], vec![0xdd; 50], "125d7342b9ac11cd91a39af48aa17b4f63f175d3"),
        ];
        let integ = Integ::HmacSha1_96;
        assert_eq!((integ.key_len(), integ.icv_len()), (20, 12));
        for (key, data, full) in cases {
            let key = HmacKey::new(integ, &key);
            assert_eq!(key.icv_len(), 12);
            let mut icv = [0u8; 12];
            key.sign(&[&data], &mut icv);
            assert_eq!(hex::encode(icv), full[..24]);
            key.verify(&[&data[..1], &data[1..]], &icv).unwrap();
            icv[11] ^= 1;
            assert_eq!(key.verify(&[&data], &icv), Err(CryptoError::AuthenticationFailed));
            assert_eq!(key.verify(&[&data], &h(&full[..40])), Err(CryptoError::AuthenticationFailed));
        }
    }

    /// NIST SP 800-67 Appendix B (three-key TDEA over "The qufck brown fox jump"): each block is CBC with a
    /// zero IV; then the same plaintext chained under an IV (reference: OpenSSL des-ede3-cbc).
    #[test]
    fn tdes_cbc_sp800_67() {
        let key = CbcKey::for_encr(Encr::TripleDes, &h("0123456789abcdef23456789abcdef01456789abcdef0123")).unwrap();
        assert_eq!(key.block_len(), 8);
        let pt = b"The qufck brown fox jump";
        let ecb = "a826fd8ce53b855fcce21c8112256fe668d5c05dd9b6b900";
        for (i, block) in pt.chunks(8).enumerate() {
            let mut data = block.to_vec();
            key.encrypt_in_place(&[0; 8], &mut data).unwrap();
            assert_eq!(hex::encode(&data), ecb[i * 16..(i + 1) * 16]);
            key.decrypt_in_place(&[0; 8], &mut data).unwrap();
            assert_eq!(data, block);
        }
        let iv = h("1122334455667788");
        let mut data = pt.to_vec();
        key.encrypt_in_place(&iv, &mut data).unwrap();
        assert_eq!(hex::encode(&data), "d9da2d29b4b07dc3681c146d283220d4a5cd0696ce2b3d42");
        key.decrypt_in_place(&iv, &mut data).unwrap();
        assert_eq!(&data[..], &pt[..]);
        // Whole blocks and a one-block IV only.
        assert_eq!(key.encrypt_in_place(&iv, &mut [0u8; 12]), Err(CryptoError::BadLength));
        assert_eq!(key.encrypt_in_place(&[0; 16], &mut [0u8; 16]), Err(CryptoError::BadLength));
        assert_eq!(key.decrypt_in_place(&iv[..7], &mut [0u8; 8]), Err(CryptoError::BadLength));
        assert!(CbcKey::for_encr(Encr::TripleDes, &[0u8; 16]).is_err());
        assert!(CbcKey::for_encr(Encr::AesGcm16 { key_len: 16 }, &[0u8; 16]).is_err());
        assert!(format!("{key:?}").contains("block_len: 8"));
    }

    /// NIST SP 800-38A F.2.3 (CBC-AES192.Encrypt).
    #[test]
    fn aes192_cbc_sp800_38a() {
        let key =
            CbcKey::for_encr(Encr::AesCbc { key_len: 24 }, &h("8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b"))
                .unwrap();
        assert_eq!(key.block_len(), 16);
        let iv = h("000102030405060708090a0b0c0d0e0f");
        let pt = "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51\
                  30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710";
        let mut data = h(pt);
        key.encrypt_in_place(&iv, &mut data).unwrap();
        assert_eq!(
            hex::encode(&data),
            "4f021db243bc633d7178183a9fa071e8b4d9ada9ad7dedf4e5e738763f69145a\
             571b242012fb7ae07fa9baac3df102e008b0e27988598881d920a9e64f5615cd"
        );
        key.decrypt_in_place(&iv, &mut data).unwrap();
        assert_eq!(hex::encode(&data), pt);
    }

    const GCM_IV: &str = "facedbaddecaf888";
    const GCM_AAD: &str = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
    const GCM_PT: &str = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
                          1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";

    /// GCM spec (McGrew/Viega) test cases 4, 10 and 16 (AES-128/192/256 with AAD): (key, ciphertext, tag).
    fn gcm_spec_vectors() -> [(&'static str, &'static str, &'static str); 3] {
        [
            (
                "feffe9928665731c6d6a8f9467308308",
                "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e\
                 21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
                "5bc94fbc3221a5db94fae95ae7121a47",
            ),
            (
                "feffe9928665731c6d6a8f9467308308feffe9928665731c",
                "3980ca0b3c00e841eb06fac4872a2757859e1ceaa6efd984628593b40ca1e19c\
                 7d773d00c144c525ac619d18c84a3f4718e2448b2fe324d9ccda2710",
                "2519498e80f1478f37ba55bd6d27618c",
            ),
            (
                "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
                "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa\
                 8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
                "76fc6ece0f4e1768cddf8853bb2d551b",
            ),
        ]
    }

    /// AES-GCM with 16-, 12- and 8-byte ICVs for every key size: the same ciphertext, and the ICV is the
    /// leading bytes of the full tag (RFC 4106 §8.1, NIST SP 800-38D §5.2.1.2), so the RustCrypto short-ICV
    /// path agrees with aws-lc-rs and the GCM spec vectors.
    #[test]
    fn aes_gcm_every_key_and_icv_size() {
        let iv: [u8; 8] = h(GCM_IV).try_into().unwrap();
        let aad = h(GCM_AAD);
        let pt = h(GCM_PT);
        for (key, ct, full_tag) in gcm_spec_vectors() {
            let key_len = key.len() / 2;
            for encr in [Encr::AesGcm16 { key_len }, Encr::AesGcm12 { key_len }, Encr::AesGcm8 { key_len }] {
                let mut keymat = h(key);
                keymat.extend_from_slice(&h("cafebabe"));
                let k = AeadKey::new(encr, &keymat).unwrap();
                assert_eq!(k.tag_len(), encr.tag_len());
                let mut data = pt.clone();
                let mut tag = vec![0u8; k.tag_len()];
                k.seal_in_place(&iv, &aad, &mut data, &mut tag).unwrap();
                assert_eq!(hex::encode(&data), ct, "{encr:?}");
                assert_eq!(hex::encode(&tag), full_tag[..2 * k.tag_len()], "{encr:?}");
                let sealed = data.clone();
                k.open_in_place(&iv, &aad, &mut data, &tag).unwrap();
                assert_eq!(data, pt);
                // Any change to the ciphertext, AAD or tag, or a tag of another length, is refused.
                let mut bad = sealed.clone();
                bad[5] ^= 0x10;
                assert_eq!(k.open_in_place(&iv, &aad, &mut bad, &tag), Err(CryptoError::AuthenticationFailed));
                let mut data = sealed.clone();
                assert_eq!(k.open_in_place(&iv, &aad[1..], &mut data, &tag), Err(CryptoError::AuthenticationFailed));
                let mut bad_tag = tag.clone();
                *bad_tag.last_mut().unwrap() ^= 1;
                let mut data = sealed.clone();
                assert_eq!(k.open_in_place(&iv, &aad, &mut data, &bad_tag), Err(CryptoError::AuthenticationFailed));
                let mut data = sealed.clone();
                assert_eq!(
                    k.open_in_place(&iv, &aad, &mut data, &h(full_tag)[..k.tag_len() - 1]),
                    Err(CryptoError::AuthenticationFailed)
                );
                if k.tag_len() < 16 {
                    let mut data = sealed.clone();
                    assert_eq!(
                        k.open_in_place(&iv, &aad, &mut data, &h(full_tag)),
                        Err(CryptoError::AuthenticationFailed)
                    );
                }
                let mut long = vec![0u8; k.tag_len() + 1];
                assert_eq!(k.seal_in_place(&iv, &aad, &mut pt.clone(), &mut long), Err(CryptoError::BadLength));
            }
        }
        assert_eq!(AeadKey::new(Encr::AesGcm8 { key_len: 20 }, &[0u8; 24]).err(), Some(CryptoError::BadLength));
        assert_eq!(AeadKey::new(Encr::AesGcm12 { key_len: 16 }, &[0u8; 16]).err(), Some(CryptoError::BadLength));
        assert!(matches!(AeadKey::new(Encr::TripleDes, &[0u8; 24]), Err(CryptoError::Unsupported(_))));
    }
}
