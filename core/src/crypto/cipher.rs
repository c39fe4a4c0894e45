//! Per-packet primitives, allocation-free: AEAD (RFC 4106, RFC 7634), AES-CBC (RFC 3602) and truncated
//! HMAC-SHA2 (RFC 4868). Used by the ESP data plane and by [`super::SkCipher`].

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{DecryptingKey, DecryptionContext, EncryptingKey, EncryptionContext, UnboundCipherKey};
use aws_lc_rs::{constant_time, hmac, iv::FixedLength};
use zeroize::Zeroize;

use super::{CryptoError, Encr, Integ};

/// Salt length of the AEADs' nonce (RFC 4106 §4, RFC 7634 §2).
const SALT_LEN: usize = 4;
/// AEAD tag length (16 for AES-GCM-16 and ChaCha20-Poly1305).
pub(crate) const TAG_LEN: usize = 16;

/// An AEAD key for AES-GCM-16 (RFC 4106) or ChaCha20-Poly1305 (RFC 7634). `keymat` is key || 4-byte salt;
/// the 12-byte nonce is salt || 8-byte explicit IV.
pub struct AeadKey {
    key: LessSafeKey,
    salt: [u8; SALT_LEN],
}

impl AeadKey {
    /// Builds the key from `keymat` (exactly [`Encr::keymat_len`] bytes).
    pub fn new(encr: Encr, keymat: &[u8]) -> Result<AeadKey, CryptoError> {
        let alg = match encr {
            Encr::AesGcm16 { key_len: 16 } => &aead::AES_128_GCM,
            Encr::AesGcm16 { key_len: 24 } => &aead::AES_192_GCM,
            Encr::AesGcm16 { key_len: 32 } => &aead::AES_256_GCM,
            Encr::ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
            Encr::AesGcm16 { .. } => return Err(CryptoError::BadLength),
            Encr::AesCbc { .. } => return Err(CryptoError::Unsupported("AES-CBC is not an AEAD")),
        };
        if keymat.len() != encr.keymat_len() {
            return Err(CryptoError::BadLength);
        }
        let (key_bytes, salt_bytes) = keymat.split_at(encr.key_len());
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(salt_bytes);
        let key = UnboundKey::new(alg, key_bytes).map_err(|_| CryptoError::KeyRejected)?;
        Ok(AeadKey { key: LessSafeKey::new(key), salt })
    }

    fn nonce(&self, iv: &[u8; 8]) -> Nonce {
        let mut n = [0u8; aead::NONCE_LEN];
        n[..SALT_LEN].copy_from_slice(&self.salt);
        n[SALT_LEN..].copy_from_slice(iv);
        Nonce::assume_unique_for_key(n)
    }

    /// Encrypts `data` in place and writes the 16-byte tag. The (key, `iv`) pair must never repeat.
    pub fn seal_in_place(
        &self,
        iv: &[u8; 8],
        aad: &[u8],
        data: &mut [u8],
        tag: &mut [u8; 16],
    ) -> Result<(), CryptoError> {
        let t = self
            .key
            .seal_in_place_separate_tag(self.nonce(iv), Aad::from(aad), data)
            .map_err(|_| CryptoError::BadLength)?;
        tag.copy_from_slice(t.as_ref());
        Ok(())
    }

    /// Verifies `tag` and decrypts `data` in place. On failure `data` holds unspecified bytes.
    pub fn open_in_place(&self, iv: &[u8; 8], aad: &[u8], data: &mut [u8], tag: &[u8]) -> Result<(), CryptoError> {
        if tag.len() != TAG_LEN {
            return Err(CryptoError::AuthenticationFailed);
        }
        self.key
            .open_in_place_separate_tag(self.nonce(iv), Aad::from(aad), tag, data)
            .map(|_| ())
            .map_err(|_| CryptoError::AuthenticationFailed)
    }
}

impl Drop for AeadKey {
    fn drop(&mut self) {
        self.salt.zeroize();
    }
}

impl std::fmt::Debug for AeadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AeadKey").finish_non_exhaustive()
    }
}

/// An AES-CBC key without padding (RFC 3602): the caller pads, `data.len()` must be a multiple of 16.
pub struct CbcKey {
    enc: EncryptingKey,
    dec: DecryptingKey,
}

impl CbcKey {
    /// Builds the key from 16, 24 or 32 key bytes.
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
        Ok(CbcKey { enc, dec })
    }

    /// Encrypts `data` in place with `iv` (which must be unpredictable, RFC 3602 §2.1).
    pub fn encrypt_in_place(&self, iv: &[u8; 16], data: &mut [u8]) -> Result<(), CryptoError> {
        if !data.len().is_multiple_of(16) {
            return Err(CryptoError::BadLength);
        }
        self.enc
            .less_safe_encrypt(data, EncryptionContext::Iv128(FixedLength::from(iv)))
            .map(|_| ())
            .map_err(|_| CryptoError::Internal)
    }

    /// Decrypts `data` in place.
    pub fn decrypt_in_place(&self, iv: &[u8; 16], data: &mut [u8]) -> Result<(), CryptoError> {
        if !data.len().is_multiple_of(16) {
            return Err(CryptoError::BadLength);
        }
        self.dec
            .decrypt(data, DecryptionContext::Iv128(FixedLength::from(iv)))
            .map(|_| ())
            .map_err(|_| CryptoError::Internal)
    }
}

impl std::fmt::Debug for CbcKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CbcKey").finish_non_exhaustive()
    }
}

/// A truncated HMAC-SHA2 key (RFC 4868 §2.1): the ICV is the leading half of the HMAC output.
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
}
