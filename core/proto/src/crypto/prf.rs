//! The IKEv2 pseudo-random function and prf+ (RFC 7296 §2.13, RFC 4868 §2.1).

use aws_lc_rs::hmac;
use zeroize::Zeroizing;

use super::Prf;

impl Prf {
    /// prf(key, data): HMAC with the full output length.
    pub fn prf(self, key: &[u8], data: &[u8]) -> Zeroizing<Vec<u8>> {
        self.prf_parts(key, &[data])
    }

    /// prf(key, data\[0\] | data\[1\] | ...): the PRF over the concatenation of `data`.
    pub fn prf_parts(self, key: &[u8], data: &[&[u8]]) -> Zeroizing<Vec<u8>> {
        let key = hmac::Key::new(self.hmac_alg(), key);
        Zeroizing::new(tag_parts(&key, data).as_ref().to_vec())
    }

    /// prf+(key, seed) truncated to `len` bytes (§2.13):
    /// T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n). prf+ is defined for at most 255 blocks; a longer
    /// request yields only `255 * output_len` bytes (callers derive far less and check lengths).
    pub fn prf_plus(self, key: &[u8], seed: &[u8], len: usize) -> Zeroizing<Vec<u8>> {
        let key = hmac::Key::new(self.hmac_alg(), key);
        let len = len.min(255 * self.output_len());
        let mut out = Zeroizing::new(Vec::with_capacity(len));
        let mut prev = Zeroizing::new(Vec::new());
        let mut counter: u8 = 1;
        while out.len() < len {
            let t = tag_parts(&key, &[&prev, seed, &[counter]]);
            let t = t.as_ref();
            let take = (len - out.len()).min(t.len());
            out.extend_from_slice(t.get(..take).unwrap_or_default());
            prev.clear();
            prev.extend_from_slice(t);
            counter = counter.wrapping_add(1);
        }
        out
    }
}

fn tag_parts(key: &hmac::Key, parts: &[&[u8]]) -> hmac::Tag {
    let mut ctx = hmac::Context::with_key(key);
    for p in parts {
        ctx.update(p);
    }
    ctx.sign()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231 test cases 1 and 2 (HMAC-SHA-256/384/512 are PRF_HMAC_SHA2_*, RFC 4868 §2.1).
    #[test]
    fn prf_rfc4231() {
        assert_eq!(
            hex::encode(Prf::HmacSha256.prf(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        let data = b"what do ya want for nothing?";
        assert_eq!(
            hex::encode(Prf::HmacSha256.prf(b"Jefe", data)),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex::encode(Prf::HmacSha384.prf(b"Jefe", data)),
            "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e\
             8e2240ca5e69e2c78b3239ecfab21649"
        );
        assert_eq!(
            hex::encode(Prf::HmacSha512.prf(b"Jefe", data)),
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
             9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
        );
        assert_eq!(
            Prf::HmacSha384.prf_parts(b"Jefe", &[b"what do ya", b"", b" want for nothing?"]),
            Prf::HmacSha384.prf(b"Jefe", data)
        );
    }

    /// PRF_HMAC_SHA1 is HMAC-SHA1 with its full 20-byte output (RFC 2202 §3 test cases 1-3).
    #[test]
    fn prf_hmac_sha1_rfc2202() {
        let prf = Prf::HmacSha1;
        assert_eq!(prf.output_len(), 20);
        assert!(prf.is_legacy() && !Prf::HmacSha256.is_legacy());
        assert_eq!(hex::encode(prf.prf(&[0x0b; 20], b"Hi There")), "b617318655057264e28bc0b6fb378c8ef146be00");
        assert_eq!(
            hex::encode(prf.prf(b"Jefe", b"what do ya want for nothing?")),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
        assert_eq!(hex::encode(prf.prf(&[0xaa; 20], &[0xdd; 50])), "125d7342b9ac11cd91a39af48aa17b4f63f175d3");
    }

    /// prf+ is T1 | T2 | ... with T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n).
    #[test]
    fn prf_plus_structure() {
        for prf in [Prf::HmacSha1, Prf::HmacSha256, Prf::HmacSha384, Prf::HmacSha512] {
            let (k, s) = (b"key material".as_slice(), b"seed bytes".as_slice());
            let t1 = prf.prf_parts(k, &[s, &[1]]);
            let t2 = prf.prf_parts(k, &[&t1, s, &[2]]);
            let t3 = prf.prf_parts(k, &[&t2, s, &[3]]);
            let expect: Vec<u8> = [&t1[..], &t2[..], &t3[..]].concat();
            let n = prf.output_len();
            for len in [0, 1, n - 1, n, n + 1, 2 * n, 3 * n - 5, 3 * n] {
                assert_eq!(&prf.prf_plus(k, s, len)[..], &expect[..len]);
            }
            assert_eq!(prf.prf_plus(k, s, 300 * n).len(), 255 * n);
        }
    }

    #[test]
    fn ids() {
        for prf in [Prf::HmacSha1, Prf::HmacSha256, Prf::HmacSha384, Prf::HmacSha512] {
            assert_eq!(Prf::from_id(prf.id()), Some(prf));
        }
        assert_eq!(Prf::HmacSha1.id(), 2);
        // PRF_HMAC_MD5 (1), PRF_HMAC_TIGER (3), PRF_AES128_XCBC (4) are not supported.
        for id in [0, 1, 3, 4, 8] {
            assert_eq!(Prf::from_id(id), None);
        }
    }
}
