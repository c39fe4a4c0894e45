//! Encrypted (SK) and Encrypted Fragment (SKF) payload protection: AES-CBC or 3DES-CBC + HMAC (RFC 7296
//! §3.14), AES-GCM with 16-, 12- or 8-byte ICVs (RFC 5282) and ChaCha20-Poly1305 (RFC 7634), for IKE messages
//! (RFC 7383 §2.5 for SKF).

use zeroize::Zeroizing;

use super::cipher::{AeadKey, CbcKey, HmacKey, MAX_TAG_LEN};
use super::{CryptoError, Encr, Integ};

enum Kind {
    Aead(AeadKey),
    Cbc(Box<(CbcKey, HmacKey)>),
}

/// The protection of one direction of an IKE SA (SK_ei/SK_ai or SK_er/SK_ar).
pub struct SkCipher {
    encr: Encr,
    kind: Kind,
}

impl std::fmt::Debug for SkCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SkCipher").field("encr", &self.encr).finish_non_exhaustive()
    }
}

impl SkCipher {
    /// Builds the cipher. AEADs take `integ = None`, `enc_keymat` = key || salt and an empty `integ_key`;
    /// the CBC ciphers (AES, 3DES) require an integrity algorithm and its key.
    pub fn new(encr: Encr, integ: Option<Integ>, enc_keymat: &[u8], integ_key: &[u8]) -> Result<SkCipher, CryptoError> {
        let kind = match (encr.is_aead(), integ) {
            (true, None) => Kind::Aead(AeadKey::new(encr, enc_keymat)?),
            (false, Some(integ)) => {
                if enc_keymat.len() != encr.keymat_len() || integ_key.len() != integ.key_len() {
                    return Err(CryptoError::BadLength);
                }
                Kind::Cbc(Box::new((CbcKey::for_encr(encr, enc_keymat)?, HmacKey::new(integ, integ_key))))
            }
            (true, Some(_)) => return Err(CryptoError::Unsupported("an AEAD is used without an integrity algorithm")),
            (false, None) => return Err(CryptoError::Unsupported("a CBC cipher requires an integrity algorithm")),
        };
        Ok(SkCipher { encr, kind })
    }

    /// The encryption algorithm.
    pub fn encr(&self) -> Encr {
        self.encr
    }

    fn icv_len(&self) -> usize {
        match &self.kind {
            Kind::Aead(key) => key.tag_len(),
            Kind::Cbc(cbc_mac) => cbc_mac.1.icv_len(),
        }
    }

    /// Padding for `plaintext_len` bytes: CBC pads plaintext || Pad Length to the block size; the AEADs
    /// need no padding (RFC 5282 §3).
    fn pad_len(&self, plaintext_len: usize) -> usize {
        let block = self.encr.block_len();
        (block - (plaintext_len + 1) % block) % block
    }

    /// Bytes the encrypted body (IV || ciphertext incl. padding and Pad Length || ICV) takes for
    /// `plaintext_len` bytes of inner payloads.
    pub fn sealed_len(&self, plaintext_len: usize) -> usize {
        self.encr.iv_len() + plaintext_len + self.pad_len(plaintext_len) + 1 + self.icv_len()
    }

    /// Appends IV || ciphertext || ICV to `msg`, which holds the IKE header and the SK (or SKF) generic
    /// header(s) with their final lengths. The IV comes from `rng` (unpredictable for CBC, RFC 7296 §3.14;
    /// 64 random bits for the AEADs, RFC 5282 §3.1). The AEAD's AAD and the CBC ICV cover `msg` from the
    /// IKE header on (RFC 5282 §5.1, RFC 7296 §3.14).
    pub fn seal(
        &self,
        msg: &mut Vec<u8>,
        plaintext: &[u8],
        rng: &mut dyn rand_core::CryptoRng,
    ) -> Result<(), CryptoError> {
        let pad = self.pad_len(plaintext.len());
        let pad_byte = u8::try_from(pad).map_err(|_| CryptoError::BadLength)?;
        let iv_start = msg.len();
        let iv_len = self.encr.iv_len();
        msg.reserve(self.sealed_len(plaintext.len()));
        msg.resize(iv_start + iv_len, 0);
        rng.fill_bytes(msg.get_mut(iv_start..).ok_or(CryptoError::Internal)?);
        let ct_start = msg.len();
        msg.extend_from_slice(plaintext);
        msg.resize(msg.len() + pad, 0);
        msg.push(pad_byte);
        match &self.kind {
            Kind::Aead(key) => {
                let (aad, rest) = msg.split_at_mut(iv_start);
                let (iv, data) = rest.split_at_mut(iv_len);
                let iv: &[u8; 8] = (&*iv).try_into().map_err(|_| CryptoError::Internal)?;
                let mut tag = [0u8; MAX_TAG_LEN];
                let tag = tag.get_mut(..key.tag_len()).ok_or(CryptoError::Internal)?;
                key.seal_in_place(iv, aad, data, tag)?;
                msg.extend_from_slice(tag);
            }
            Kind::Cbc(cbc_mac) => {
                let (cbc, mac) = &**cbc_mac;
                let (head, data) = msg.split_at_mut(ct_start);
                let iv = head.get(iv_start..).ok_or(CryptoError::Internal)?;
                cbc.encrypt_in_place(iv, data)?;
                let icv_start = msg.len();
                msg.resize(icv_start + mac.icv_len(), 0);
                let (covered, icv) = msg.split_at_mut(icv_start);
                mac.sign(&[covered], icv);
            }
        }
        Ok(())
    }

    /// Verifies and decrypts a received message. `msg` is the whole message, `iv_offset` where the IV
    /// starts (after the SK or SKF header); all bytes before it are authenticated. Returns the inner
    /// payload chain without padding.
    pub fn open(&self, msg: &[u8], iv_offset: usize) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let iv_len = self.encr.iv_len();
        let icv_len = self.icv_len();
        let ct_start = iv_offset.checked_add(iv_len).ok_or(CryptoError::BadLength)?;
        let ct_end = msg.len().checked_sub(icv_len).ok_or(CryptoError::BadLength)?;
        // At least the Pad Length byte (and a whole number of blocks for CBC).
        if ct_end <= ct_start || !(ct_end - ct_start).is_multiple_of(self.encr.block_len()) {
            return Err(CryptoError::BadLength);
        }
        let aad = msg.get(..iv_offset).ok_or(CryptoError::BadLength)?;
        let iv = msg.get(iv_offset..ct_start).ok_or(CryptoError::BadLength)?;
        let ct = msg.get(ct_start..ct_end).ok_or(CryptoError::BadLength)?;
        let icv = msg.get(ct_end..).ok_or(CryptoError::BadLength)?;
        let mut data = Zeroizing::new(ct.to_vec());
        match &self.kind {
            Kind::Aead(key) => {
                let iv: &[u8; 8] = iv.try_into().map_err(|_| CryptoError::BadLength)?;
                key.open_in_place(iv, aad, &mut data, icv)?;
            }
            Kind::Cbc(cbc_mac) => {
                let (cbc, mac) = &**cbc_mac;
                let covered = msg.get(..ct_end).ok_or(CryptoError::BadLength)?;
                mac.verify(&[covered], icv)?;
                cbc.decrypt_in_place(iv, &mut data)?;
            }
        }
        let pad = usize::from(*data.last().ok_or(CryptoError::BadPadding)?);
        let keep = data.len().checked_sub(pad + 1).ok_or(CryptoError::BadPadding)?;
        data.truncate(keep);
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    fn ciphers(encr: Encr, integ: Option<Integ>) -> SkCipher {
        let keymat: Vec<u8> = (0..encr.keymat_len() as u8).collect();
        let ikey = vec![0x5a; integ.map_or(0, |i| i.key_len())];
        SkCipher::new(encr, integ, &keymat, &ikey).unwrap()
    }

    fn all() -> Vec<SkCipher> {
        vec![
            ciphers(Encr::AesCbc { key_len: 16 }, Some(Integ::HmacSha256_128)),
            ciphers(Encr::AesCbc { key_len: 32 }, Some(Integ::HmacSha512_256)),
            ciphers(Encr::AesGcm16 { key_len: 16 }, None),
            ciphers(Encr::AesGcm16 { key_len: 32 }, None),
            ciphers(Encr::ChaCha20Poly1305, None),
            // Legacy, opt-in (issue 11).
            ciphers(Encr::TripleDes, Some(Integ::HmacSha1_96)),
            ciphers(Encr::TripleDes, Some(Integ::HmacSha256_128)),
            ciphers(Encr::AesCbc { key_len: 24 }, Some(Integ::HmacSha1_96)),
            ciphers(Encr::AesGcm16 { key_len: 24 }, None),
            ciphers(Encr::AesGcm12 { key_len: 32 }, None),
            ciphers(Encr::AesGcm8 { key_len: 16 }, None),
            ciphers(Encr::AesGcm8 { key_len: 24 }, None),
        ]
    }

    /// A fake IKE header (28 bytes) + SK generic header (4 bytes).
    fn header() -> Vec<u8> {
        (100..132u8).collect()
    }

    #[test]
    fn round_trip_all_lengths() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        for sk in all() {
            for len in [0usize, 1, 14, 15, 16, 17, 31, 32, 100] {
                let pt: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let mut msg = header();
                sk.seal(&mut msg, &pt, &mut rng).unwrap();
                assert_eq!(msg.len(), 32 + sk.sealed_len(len), "{:?} {len}", sk.encr);
                assert_eq!(&msg[..32], &header()[..]);
                assert_eq!(&sk.open(&msg, 32).unwrap()[..], &pt[..]);
            }
        }
    }

    /// The SK payload's layout with the legacy ciphers: 3DES has an 8-byte IV and pads to 8 bytes with a
    /// 12-byte HMAC-SHA1-96 ICV; the short-ICV AES-GCM variants carry an 8-byte IV and an 8- or 12-byte ICV.
    #[test]
    fn legacy_layouts() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4);
        for (sk, iv, icv, block) in [
            (ciphers(Encr::TripleDes, Some(Integ::HmacSha1_96)), 8, 12, 8),
            (ciphers(Encr::AesCbc { key_len: 24 }, Some(Integ::HmacSha1_96)), 16, 12, 16),
            (ciphers(Encr::AesGcm8 { key_len: 32 }, None), 8, 8, 1),
            (ciphers(Encr::AesGcm12 { key_len: 16 }, None), 8, 12, 1),
        ] {
            for len in [0usize, 6, 7, 8, 20] {
                let padded = (len + 1).next_multiple_of(block);
                assert_eq!(sk.sealed_len(len), iv + padded + icv, "{:?} {len}", sk.encr);
                let mut msg = header();
                sk.seal(&mut msg, &vec![0x42; len], &mut rng).unwrap();
                assert_eq!(msg.len(), 32 + iv + padded + icv);
                assert_eq!(sk.open(&msg, 32).unwrap().len(), len);
            }
        }
        // 3DES needs whole 8-byte blocks between the IV and the ICV.
        let sk = ciphers(Encr::TripleDes, Some(Integ::HmacSha1_96));
        let mut msg = header();
        sk.seal(&mut msg, b"0123456789", &mut rng).unwrap();
        let cut = [&msg[..msg.len() - 12 - 1], &msg[msg.len() - 12..]].concat();
        assert_eq!(sk.open(&cut, 32), Err(CryptoError::BadLength));
        assert_eq!(
            SkCipher::new(Encr::TripleDes, Some(Integ::HmacSha1_96), &[0; 24], &[0; 32]).err(),
            Some(CryptoError::BadLength)
        );
        assert!(matches!(SkCipher::new(Encr::TripleDes, None, &[0; 24], &[]), Err(CryptoError::Unsupported(_))));
    }

    #[test]
    fn tamper_detected() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
        for sk in all() {
            let mut msg = header();
            sk.seal(&mut msg, b"inner payloads here", &mut rng).unwrap();
            let iv = 32;
            let ct = iv + sk.encr.iv_len();
            let icv = msg.len() - 1;
            for pos in [0, 27, 31, iv, ct, ct + 1, icv] {
                let mut bad = msg.clone();
                bad[pos] ^= 0x01;
                assert_eq!(sk.open(&bad, 32), Err(CryptoError::AuthenticationFailed), "{:?} byte {pos}", sk.encr);
            }
            // Truncation or a wrong IV offset never panics.
            for cut in 0..msg.len() {
                assert!(sk.open(&msg[..cut], 32).is_err());
            }
            assert!(sk.open(&msg, msg.len() + 5).is_err());
            assert!(sk.open(&msg, 31).is_err());
        }
    }

    #[test]
    fn different_keys_do_not_open() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let a = ciphers(Encr::AesGcm16 { key_len: 16 }, None);
        let b = SkCipher::new(Encr::AesGcm16 { key_len: 16 }, None, &[9u8; 20], &[]).unwrap();
        let mut msg = header();
        a.seal(&mut msg, b"x", &mut rng).unwrap();
        assert_eq!(b.open(&msg, 32), Err(CryptoError::AuthenticationFailed));
    }

    #[test]
    fn bad_combinations() {
        let gcm = Encr::AesGcm16 { key_len: 16 };
        let cbc = Encr::AesCbc { key_len: 16 };
        assert!(matches!(
            SkCipher::new(gcm, Some(Integ::HmacSha256_128), &[0; 20], &[0; 32]),
            Err(CryptoError::Unsupported(_))
        ));
        assert!(matches!(SkCipher::new(cbc, None, &[0; 16], &[]), Err(CryptoError::Unsupported(_))));
        assert_eq!(
            SkCipher::new(cbc, Some(Integ::HmacSha256_128), &[0; 16], &[0; 31]).err(),
            Some(CryptoError::BadLength)
        );
        assert_eq!(SkCipher::new(gcm, None, &[0; 16], &[]).err(), Some(CryptoError::BadLength));
    }
}
