//! EAP-MD5 Challenge (RFC 3748 §5.4, with the CHAP computation of RFC 1994 §4.1). Derives no MSK.

use md5::{Digest, Md5};

use super::EapError;

/// Answer an MD5-Challenge Request: Type-Data of the Response is Value-Size (16) followed by
/// MD5(Identifier || secret || Challenge) (RFC 1994 §4.1). We send no Name field.
pub(crate) fn respond(id: u8, data: &[u8], password: &[u8]) -> Result<Vec<u8>, EapError> {
    let (&size, rest) = data.split_first().ok_or(EapError::Malformed("MD5-Challenge without Value-Size"))?;
    if size == 0 {
        return Err(EapError::Malformed("MD5-Challenge with an empty challenge"));
    }
    let challenge = rest.get(..usize::from(size)).ok_or(EapError::Malformed("MD5-Challenge value truncated"))?;
    let mut out = Vec::with_capacity(17);
    out.push(16);
    out.extend_from_slice(&chap_md5(id, password, challenge));
    Ok(out)
}

/// CHAP response value: MD5(Identifier || secret || Challenge) (RFC 1994 §4.1).
pub(crate) fn chap_md5(id: u8, secret: &[u8], challenge: &[u8]) -> [u8; 16] {
    let mut h = Md5::new();
    h.update([id]);
    h.update(secret);
    h.update(challenge);
    h.finalize().into()
}
