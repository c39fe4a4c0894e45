//! A minimal, total DER reader and writer (X.690 §8, §10) for the few structures IKE needs to look into:
//! certificates (RFC 5280 §4.1), SubjectPublicKeyInfo, AlgorithmIdentifier (RFC 7427 §3) and ECDSA signatures.
//!
//! Only low tag numbers (< 31) and definite lengths are accepted; every read is bounds-checked.

/// Universal and context tags (identifier octets) used by the callers.
pub(crate) mod tag {
    pub const BOOLEAN: u8 = 0x01;
    pub const INTEGER: u8 = 0x02;
    pub const BIT_STRING: u8 = 0x03;
    pub const OCTET_STRING: u8 = 0x04;
    pub const NULL: u8 = 0x05;
    pub const OID: u8 = 0x06;
    pub const SEQUENCE: u8 = 0x30;
    pub const SET: u8 = 0x31;
    /// `[n]` constructed (EXPLICIT or IMPLICIT SEQUENCE).
    pub const fn context_cons(n: u8) -> u8 {
        0xa0 | n
    }
    /// `[n]` primitive (IMPLICIT of a primitive type).
    pub const fn context_prim(n: u8) -> u8 {
        0x80 | n
    }
}

/// A DER structure was not what we expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DerError(pub &'static str);

impl std::fmt::Display for DerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// One decoded TLV.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tlv<'a> {
    pub tag: u8,
    /// The contents octets.
    pub value: &'a [u8],
    /// Identifier, length and contents octets.
    pub raw: &'a [u8],
}

/// Sequential reader over a run of TLVs.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn peek_tag(&self) -> Option<u8> {
        self.data.first().copied()
    }

    /// Read the next TLV.
    pub fn read(&mut self) -> Result<Tlv<'a>, DerError> {
        let (&tag, rest) = self.data.split_first().ok_or(DerError("truncated"))?;
        if tag & 0x1f == 0x1f {
            return Err(DerError("high tag numbers are not supported"));
        }
        let (&first, mut rest) = rest.split_first().ok_or(DerError("truncated length"))?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 {
                return Err(DerError("indefinite length"));
            }
            if n > 4 {
                return Err(DerError("length too large"));
            }
            let bytes = rest.get(..n).ok_or(DerError("truncated length"))?;
            rest = rest.get(n..).ok_or(DerError("truncated length"))?;
            let len = bytes.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            if len < 0x80 || bytes.first() == Some(&0) {
                return Err(DerError("non-minimal length"));
            }
            len
        };
        let header = self.data.len() - rest.len();
        let value = rest.get(..len).ok_or(DerError("truncated value"))?;
        let raw = self.data.get(..header + len).ok_or(DerError("truncated value"))?;
        self.data = rest.get(len..).ok_or(DerError("truncated value"))?;
        Ok(Tlv { tag, value, raw })
    }

    /// Read the next TLV, which must carry `tag`; returns its contents.
    pub fn expect(&mut self, tag: u8) -> Result<&'a [u8], DerError> {
        Ok(self.expect_tlv(tag)?.value)
    }

    /// Read the next TLV, which must carry `tag`.
    pub fn expect_tlv(&mut self, tag: u8) -> Result<Tlv<'a>, DerError> {
        let tlv = self.read()?;
        if tlv.tag != tag {
            return Err(DerError("unexpected tag"));
        }
        Ok(tlv)
    }

    /// Read the next TLV only if it carries `tag`.
    pub fn optional(&mut self, tag: u8) -> Result<Option<Tlv<'a>>, DerError> {
        if self.peek_tag() == Some(tag) {
            self.read().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Fail unless all input was consumed.
    pub fn finish(&self) -> Result<(), DerError> {
        if self.data.is_empty() {
            Ok(())
        } else {
            Err(DerError("trailing data"))
        }
    }
}

/// Parse `data` as exactly one TLV with `tag`; returns its contents.
pub(crate) fn single(data: &[u8], tag: u8) -> Result<&[u8], DerError> {
    let mut r = Reader::new(data);
    let v = r.expect(tag)?;
    r.finish()?;
    Ok(v)
}

/// Append a TLV to `out`.
pub(crate) fn write_tlv(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        let significant = bytes.get(skip..).unwrap_or_default();
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(value);
}

/// A TLV as a new vector.
pub(crate) fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(value.len() + 6);
    write_tlv(&mut v, tag, value);
    v
}

/// The contents of a BIT STRING that must have no unused bits (keys, signatures).
pub(crate) fn bit_string_bytes(value: &[u8]) -> Result<&[u8], DerError> {
    match value.split_first() {
        Some((0, rest)) => Ok(rest),
        _ => Err(DerError("bit string with unused bits")),
    }
}

/// Dotted form of an OID's contents octets, for messages (`1.3.6.1.5.5.7.3.1`).
pub(crate) fn oid_to_string(oid: &[u8]) -> String {
    let mut arcs: Vec<u64> = Vec::new();
    let mut acc: u64 = 0;
    for &b in oid {
        acc = (acc << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (acc / 40).min(2);
                arcs.push(first);
                arcs.push(acc - first * 40);
            } else {
                arcs.push(acc);
            }
            acc = 0;
        }
    }
    arcs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_lengths() {
        for len in [0usize, 1, 127, 128, 255, 256, 65535, 70000] {
            let value = vec![0xabu8; len];
            let enc = tlv(tag::OCTET_STRING, &value);
            let mut r = Reader::new(&enc);
            let t = r.read().unwrap();
            assert_eq!((t.tag, t.value.len(), t.raw.len()), (tag::OCTET_STRING, len, enc.len()));
            r.finish().unwrap();
        }
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 0x80, 0x00, 0x00],          // indefinite
            &[0x30, 0x81, 0x05, 0, 0, 0, 0, 0], // non-minimal long form
            &[0x30, 0x85, 1, 0, 0, 0, 0],       // too long length
            &[0x30, 0x03, 0x01],                // truncated
            &[0x1f, 0x01, 0x00],                // high tag
            &[0x30, 0x82, 0x00, 0x80],          // leading zero length
        ] {
            assert!(Reader::new(bad).read().is_err(), "{bad:02x?}");
        }
        assert!(single(&[0x05, 0x00, 0x00], tag::NULL).is_err());
        assert_eq!(oid_to_string(&[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x11]), "1.3.6.1.5.5.7.3.17");
        assert_eq!(oid_to_string(&[0x55, 0x1d, 0x11]), "2.5.29.17");
    }
}
