//! Key derivation for the IKE SA (RFC 7296 §2.14, §2.18) and Child SAs (§2.17).

use zeroize::Zeroizing;

use super::{CryptoError, Encr, Integ, Prf, SkCipher};

/// The keys of an IKE SA (RFC 7296 §2.14).
pub struct IkeKeys {
    /// The negotiated PRF (used for AUTH, child keys and rekeying).
    pub prf: Prf,
    /// The encryption algorithm of the SK payload.
    pub encr: Encr,
    /// The integrity algorithm of the SK payload (`None` with an AEAD).
    pub integ: Option<Integ>,
    /// SK_d: keys Child SAs and the next IKE SA.
    pub sk_d: Zeroizing<Vec<u8>>,
    /// SK_pi: the initiator's AUTH payload key (§2.15).
    pub sk_pi: Zeroizing<Vec<u8>>,
    /// SK_pr: the responder's AUTH payload key (§2.15).
    pub sk_pr: Zeroizing<Vec<u8>>,
    /// SK_ei / SK_ai: protects messages sent by the original initiator.
    initiator: SkCipher,
    /// SK_er / SK_ar: protects messages sent by the original responder.
    responder: SkCipher,
}

impl std::fmt::Debug for IkeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IkeKeys")
            .field("prf", &self.prf)
            .field("encr", &self.encr)
            .field("integ", &self.integ)
            .finish_non_exhaustive()
    }
}

impl IkeKeys {
    /// SKEYSEED = prf(Ni | Nr, g^ir);
    /// {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr) (§2.14).
    /// Our PRFs take keys of any length, so the PRF key is Ni | Nr whole. With an AEAD `integ` is `None`
    /// and SK_ai / SK_ar are empty.
    #[allow(clippy::too_many_arguments)]
    pub fn derive(
        prf: Prf,
        encr: Encr,
        integ: Option<Integ>,
        shared: &[u8],
        ni: &[u8],
        nr: &[u8],
        spi_i: u64,
        spi_r: u64,
    ) -> Result<IkeKeys, CryptoError> {
        let key: Vec<u8> = [ni, nr].concat();
        let skeyseed = prf.prf(&key, shared);
        Self::expand(prf, encr, integ, &skeyseed, ni, nr, spi_i, spi_r)
    }

    /// IKE SA rekey (§2.18): SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr), then as [`Self::derive`]
    /// with the new SA's nonces and SPIs. `prf` is used both for SKEYSEED and for the new SA; when the new
    /// SA negotiated a different PRF than the old one use [`Self::derive_rekey_with`].
    #[allow(clippy::too_many_arguments)]
    pub fn derive_rekey(
        old_sk_d: &[u8],
        prf: Prf,
        encr: Encr,
        integ: Option<Integ>,
        shared: &[u8],
        ni: &[u8],
        nr: &[u8],
        spi_i: u64,
        spi_r: u64,
    ) -> Result<IkeKeys, CryptoError> {
        Self::derive_rekey_with(prf, old_sk_d, prf, encr, integ, shared, ni, nr, spi_i, spi_r)
    }

    /// IKE SA rekey (§2.18) where SKEYSEED uses the old IKE SA's PRF ("because the rekeying exchange
    /// belongs to the old IKE SA") and prf+ the new SA's `prf`.
    #[allow(clippy::too_many_arguments)]
    pub fn derive_rekey_with(
        old_prf: Prf,
        old_sk_d: &[u8],
        prf: Prf,
        encr: Encr,
        integ: Option<Integ>,
        shared: &[u8],
        ni: &[u8],
        nr: &[u8],
        spi_i: u64,
        spi_r: u64,
    ) -> Result<IkeKeys, CryptoError> {
        Self::derive_rekey_hybrid(old_prf, old_sk_d, prf, encr, integ, shared, ni, nr, &[], spi_i, spi_r)
    }

    /// IKE SA rekey with additional key exchanges (RFC 9370 §2.2.4):
    /// SKEYSEED = prf(SK_d (old), SK(0) | Ni | Nr | SK(1) | ... | SK(n)), `additional` being SK(1) | ... | SK(n).
    /// With `additional` empty this is [`Self::derive_rekey_with`]; with `old_sk_d` = SK_d(n-1) and `shared` =
    /// SK(n) it is the key update after the n-th IKE_INTERMEDIATE exchange (RFC 9370 §2.2.2).
    #[allow(clippy::too_many_arguments)]
    pub fn derive_rekey_hybrid(
        old_prf: Prf,
        old_sk_d: &[u8],
        prf: Prf,
        encr: Encr,
        integ: Option<Integ>,
        shared: &[u8],
        ni: &[u8],
        nr: &[u8],
        additional: &[u8],
        spi_i: u64,
        spi_r: u64,
    ) -> Result<IkeKeys, CryptoError> {
        let skeyseed = old_prf.prf_parts(old_sk_d, &[shared, ni, nr, additional]);
        Self::expand(prf, encr, integ, &skeyseed, ni, nr, spi_i, spi_r)
    }

    /// Mix a postquantum preshared key into SK_d, SK_pi and SK_pr (RFC 8784 §3):
    /// SK_x' = prf+(PPK, SK_x), each as long as before.
    pub fn apply_ppk(&mut self, ppk: &[u8]) {
        let prf = self.prf;
        for k in [&mut self.sk_d, &mut self.sk_pi, &mut self.sk_pr] {
            let new = prf.prf_plus(ppk, k, k.len());
            *k = new;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn expand(
        prf: Prf,
        encr: Encr,
        integ: Option<Integ>,
        skeyseed: &[u8],
        ni: &[u8],
        nr: &[u8],
        spi_i: u64,
        spi_r: u64,
    ) -> Result<IkeKeys, CryptoError> {
        let p = prf.output_len();
        let a = integ.map_or(0, Integ::key_len);
        let e = encr.keymat_len();
        let total = p + 2 * a + 2 * e + 2 * p;
        let seed = [ni, nr, &spi_i.to_be_bytes(), &spi_r.to_be_bytes()].concat();
        let keymat = prf.prf_plus(skeyseed, &seed, total);
        let mut rest: &[u8] = &keymat;
        let mut take = |n: usize| -> Result<Zeroizing<Vec<u8>>, CryptoError> {
            let (head, tail) = rest.split_at_checked(n).ok_or(CryptoError::BadLength)?;
            rest = tail;
            Ok(Zeroizing::new(head.to_vec()))
        };
        let sk_d = take(p)?;
        let sk_ai = take(a)?;
        let sk_ar = take(a)?;
        let sk_ei = take(e)?;
        let sk_er = take(e)?;
        let sk_pi = take(p)?;
        let sk_pr = take(p)?;
        Ok(IkeKeys {
            prf,
            encr,
            integ,
            sk_d,
            sk_pi,
            sk_pr,
            initiator: SkCipher::new(encr, integ, &sk_ei, &sk_ai)?,
            responder: SkCipher::new(encr, integ, &sk_er, &sk_ar)?,
        })
    }

    /// The cipher for messages we send: SK_ei/SK_ai if we are the original initiator, else SK_er/SK_ar.
    pub fn outbound(&self, initiator: bool) -> &SkCipher {
        if initiator {
            &self.initiator
        } else {
            &self.responder
        }
    }

    /// The cipher for messages we receive: SK_er/SK_ar if we are the original initiator, else SK_ei/SK_ai.
    pub fn inbound(&self, initiator: bool) -> &SkCipher {
        self.outbound(!initiator)
    }
}

/// Child SA keys (§2.17): KEYMAT = prf+(SK_d, [g^ir (new)] | Ni | Nr), taken in the order encryption key
/// i->r, integrity key i->r, encryption key r->i, integrity key r->i. Encryption keys include the 4-byte
/// salt for AEADs (RFC 4106 §8.1, RFC 7634 §2); integrity keys are empty with an AEAD.
pub struct ChildKeys {
    /// Encryption key material, initiator to responder.
    pub enc_i2r: Zeroizing<Vec<u8>>,
    /// Integrity key, initiator to responder.
    pub integ_i2r: Zeroizing<Vec<u8>>,
    /// Encryption key material, responder to initiator.
    pub enc_r2i: Zeroizing<Vec<u8>>,
    /// Integrity key, responder to initiator.
    pub integ_r2i: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for ChildKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildKeys").finish_non_exhaustive()
    }
}

impl ChildKeys {
    /// Derives the keys; `shared` is the new g^ir of a CREATE_CHILD_SA with KE (PFS), else `None`.
    pub fn derive(
        prf: Prf,
        sk_d: &[u8],
        shared: Option<&[u8]>,
        ni: &[u8],
        nr: &[u8],
        encr: Encr,
        integ: Option<Integ>,
    ) -> ChildKeys {
        Self::derive_hybrid(prf, sk_d, shared, ni, nr, &[], encr, integ)
    }

    /// Child SA keys after additional key exchanges (RFC 9370 §2.2.4):
    /// KEYMAT = prf+(SK_d, SK(0) | Ni | Nr | SK(1) | ... | SK(n)), `additional` being SK(1) | ... | SK(n).
    #[allow(clippy::too_many_arguments)]
    pub fn derive_hybrid(
        prf: Prf,
        sk_d: &[u8],
        shared: Option<&[u8]>,
        ni: &[u8],
        nr: &[u8],
        additional: &[u8],
        encr: Encr,
        integ: Option<Integ>,
    ) -> ChildKeys {
        let e = encr.keymat_len();
        let a = integ.map_or(0, Integ::key_len);
        let mut seed = Zeroizing::new(Vec::new());
        seed.extend_from_slice(shared.unwrap_or_default());
        seed.extend_from_slice(ni);
        seed.extend_from_slice(nr);
        seed.extend_from_slice(additional);
        // At most 2 * (36 + 64) bytes, far below prf+'s 255 blocks.
        let keymat = prf.prf_plus(sk_d, &seed, 2 * (e + a));
        let part = |from: usize, len: usize| Zeroizing::new(keymat.get(from..from + len).unwrap_or_default().to_vec());
        ChildKeys { enc_i2r: part(0, e), integ_i2r: part(e, a), enc_r2i: part(e + a, e), integ_r2i: part(2 * e + a, a) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;

    const NI: &[u8] = &[0x11; 32];
    const NR: &[u8] = &[0x22; 32];
    const SHARED: &[u8] = &[0x33; 64];

    fn suites() -> Vec<(Prf, Encr, Option<Integ>)> {
        vec![
            (Prf::HmacSha256, Encr::AesCbc { key_len: 16 }, Some(Integ::HmacSha256_128)),
            (Prf::HmacSha512, Encr::AesCbc { key_len: 32 }, Some(Integ::HmacSha384_192)),
            (Prf::HmacSha384, Encr::AesGcm16 { key_len: 32 }, None),
            (Prf::HmacSha256, Encr::ChaCha20Poly1305, None),
            // Legacy, opt-in (issue 11): SHA-1 PRF (20-byte SK_d/SK_p), 3DES (24-byte keys), short-ICV GCM.
            (Prf::HmacSha1, Encr::TripleDes, Some(Integ::HmacSha1_96)),
            (Prf::HmacSha1, Encr::AesCbc { key_len: 24 }, Some(Integ::HmacSha1_96)),
            (Prf::HmacSha1, Encr::AesGcm8 { key_len: 16 }, None),
            (Prf::HmacSha256, Encr::AesGcm12 { key_len: 24 }, None),
        ]
    }

    #[test]
    fn ike_keys_sanity() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4);
        for (prf, encr, integ) in suites() {
            let ini = IkeKeys::derive(prf, encr, integ, SHARED, NI, NR, 1, 2).unwrap();
            let res = IkeKeys::derive(prf, encr, integ, SHARED, NI, NR, 1, 2).unwrap();
            assert_eq!(ini.sk_d.len(), prf.output_len());
            assert_eq!(ini.sk_pi.len(), prf.output_len());
            assert_eq!(ini.sk_pr.len(), prf.output_len());
            assert_ne!(ini.sk_pi, ini.sk_pr);
            assert_ne!(ini.sk_d, ini.sk_pi);
            // Initiator's outbound is the responder's inbound and vice versa.
            let mut msg = vec![1u8; 32];
            ini.outbound(true).seal(&mut msg, b"IDi AUTH SA TSi TSr", &mut rng).unwrap();
            assert_eq!(&res.inbound(false).open(&msg, 32).unwrap()[..], b"IDi AUTH SA TSi TSr");
            assert!(res.outbound(false).open(&msg, 32).is_err());
            let mut msg = vec![2u8; 32];
            res.outbound(false).seal(&mut msg, b"IDr AUTH", &mut rng).unwrap();
            assert_eq!(&ini.inbound(true).open(&msg, 32).unwrap()[..], b"IDr AUTH");
            assert!(ini.outbound(true).open(&msg, 32).is_err());
            // Any input change gives different keys.
            let other = IkeKeys::derive(prf, encr, integ, SHARED, NI, NR, 1, 3).unwrap();
            assert_ne!(other.sk_d, ini.sk_d);
        }
    }

    /// SKEYSEED and the prf+ split follow §2.14 exactly.
    #[test]
    fn ike_keys_layout() {
        let prf = Prf::HmacSha256;
        let encr = Encr::AesCbc { key_len: 16 };
        let integ = Some(Integ::HmacSha256_128);
        let keys = IkeKeys::derive(prf, encr, integ, SHARED, NI, NR, 0x0102, 0x0304).unwrap();
        let skeyseed = prf.prf(&[NI, NR].concat(), SHARED);
        let mut seed = [NI, NR].concat();
        seed.extend_from_slice(&0x0102u64.to_be_bytes());
        seed.extend_from_slice(&0x0304u64.to_be_bytes());
        let km = prf.prf_plus(&skeyseed, &seed, 32 + 2 * 32 + 2 * 16 + 2 * 32);
        assert_eq!(&keys.sk_d[..], &km[..32]);
        assert_eq!(&keys.sk_pi[..], &km[128..160]);
        assert_eq!(&keys.sk_pr[..], &km[160..192]);
        // SK_ei = km[96..112], SK_ai = km[32..64]: check via an independent SkCipher.
        let ei = SkCipher::new(encr, integ, &km[96..112], &km[32..64]).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        let mut msg = vec![0u8; 32];
        ei.seal(&mut msg, b"hello", &mut rng).unwrap();
        assert_eq!(&keys.inbound(false).open(&msg, 32).unwrap()[..], b"hello");

        // Rekey: SKEYSEED = prf(SK_d(old), g^ir | Ni | Nr).
        let new = IkeKeys::derive_rekey(&keys.sk_d, prf, encr, integ, SHARED, NI, NR, 5, 6).unwrap();
        let skeyseed = prf.prf_parts(&keys.sk_d, &[SHARED, NI, NR]);
        let mut seed = [NI, NR].concat();
        seed.extend_from_slice(&5u64.to_be_bytes());
        seed.extend_from_slice(&6u64.to_be_bytes());
        assert_eq!(&new.sk_d[..], &prf.prf_plus(&skeyseed, &seed, 32)[..]);
        let new2 =
            IkeKeys::derive_rekey_with(Prf::HmacSha512, &keys.sk_d, prf, encr, integ, SHARED, NI, NR, 5, 6).unwrap();
        assert_ne!(new2.sk_d, new.sk_d);
    }

    #[test]
    fn bad_suites_rejected() {
        assert!(IkeKeys::derive(
            Prf::HmacSha256,
            Encr::AesGcm16 { key_len: 16 },
            Some(Integ::HmacSha256_128),
            SHARED,
            NI,
            NR,
            1,
            2
        )
        .is_err());
        assert!(IkeKeys::derive(Prf::HmacSha256, Encr::AesCbc { key_len: 16 }, None, SHARED, NI, NR, 1, 2).is_err());
    }

    #[test]
    fn child_keys_layout() {
        let prf = Prf::HmacSha256;
        let sk_d = [0x44u8; 32];
        for (encr, integ) in [
            (Encr::AesCbc { key_len: 32 }, Some(Integ::HmacSha256_128)),
            (Encr::AesGcm16 { key_len: 16 }, None),
            (Encr::ChaCha20Poly1305, None),
            (Encr::TripleDes, Some(Integ::HmacSha1_96)),
            (Encr::AesGcm8 { key_len: 24 }, None),
        ] {
            let e = encr.keymat_len();
            let a = integ.map_or(0, Integ::key_len);
            for shared in [None, Some(SHARED)] {
                let k = ChildKeys::derive(prf, &sk_d, shared, NI, NR, encr, integ);
                let seed = [shared.unwrap_or_default(), NI, NR].concat();
                let km = prf.prf_plus(&sk_d, &seed, 2 * (e + a));
                assert_eq!(&k.enc_i2r[..], &km[..e]);
                assert_eq!(&k.integ_i2r[..], &km[e..e + a]);
                assert_eq!(&k.enc_r2i[..], &km[e + a..2 * e + a]);
                assert_eq!(&k.integ_r2i[..], &km[2 * e + a..]);
                assert_eq!(k.integ_i2r.len(), a);
                assert!(crate::crypto::AeadKey::new(encr, &k.enc_i2r).is_ok() || !encr.is_aead());
            }
        }
    }

    /// The §2.14 split with the legacy suite 3des-sha1-prfsha1: SK_d, SK_pi, SK_pr are 20 bytes (PRF output),
    /// SK_ai/SK_ar 20 bytes (HMAC-SHA1-96 key), SK_ei/SK_er 24 bytes (3DES), in that order.
    #[test]
    fn ike_keys_layout_legacy() {
        let (prf, encr, integ) = (Prf::HmacSha1, Encr::TripleDes, Some(Integ::HmacSha1_96));
        let keys = IkeKeys::derive(prf, encr, integ, SHARED, NI, NR, 7, 8).unwrap();
        let skeyseed = prf.prf(&[NI, NR].concat(), SHARED);
        assert_eq!(skeyseed.len(), 20);
        let mut seed = [NI, NR].concat();
        seed.extend_from_slice(&7u64.to_be_bytes());
        seed.extend_from_slice(&8u64.to_be_bytes());
        let km = prf.prf_plus(&skeyseed, &seed, 20 + 2 * 20 + 2 * 24 + 2 * 20);
        assert_eq!(&keys.sk_d[..], &km[..20]);
        assert_eq!(&keys.sk_pi[..], &km[108..128]);
        assert_eq!(&keys.sk_pr[..], &km[128..148]);
        // SK_ai = km[20..40], SK_ei = km[60..84]: an independent SkCipher opens what the initiator seals.
        let ei = SkCipher::new(encr, integ, &km[60..84], &km[20..40]).unwrap();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(6);
        let mut msg = vec![0u8; 32];
        keys.outbound(true).seal(&mut msg, b"legacy", &mut rng).unwrap();
        assert_eq!(&ei.open(&msg, 32).unwrap()[..], b"legacy");
        let k = ChildKeys::derive(prf, &keys.sk_d, None, NI, NR, encr, integ);
        assert_eq!((k.enc_i2r.len(), k.integ_i2r.len(), k.enc_r2i.len(), k.integ_r2i.len()), (24, 20, 24, 20));
    }
}
