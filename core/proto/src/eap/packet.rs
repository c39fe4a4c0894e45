//! The EAP packet format (RFC 3748 §4) and the method type numbers (RFC 3748 §5, IANA "EAP Method Types").

use super::EapError;

/// EAP Code field (RFC 3748 §4).
pub(crate) const CODE_REQUEST: u8 = 1;
pub(crate) const CODE_RESPONSE: u8 = 2;
pub(crate) const CODE_SUCCESS: u8 = 3;
pub(crate) const CODE_FAILURE: u8 = 4;

/// EAP Type field (RFC 3748 §5).
pub(crate) const TYPE_IDENTITY: u8 = 1;
pub(crate) const TYPE_NOTIFICATION: u8 = 2;
pub(crate) const TYPE_NAK: u8 = 3;
pub(crate) const TYPE_MD5: u8 = 4;
pub(crate) const TYPE_TLS: u8 = 13;
pub(crate) const TYPE_TTLS: u8 = 21;
pub(crate) const TYPE_PEAP: u8 = 25;
pub(crate) const TYPE_MSCHAPV2: u8 = 26;

/// Code, Identifier and Length (RFC 3748 §4).
const HEADER_LEN: usize = 4;

/// One parsed EAP packet, borrowing its Type-Data from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Packet<'a> {
    Request { id: u8, typ: u8, data: &'a [u8] },
    Response { id: u8, typ: u8, data: &'a [u8] },
    Success { id: u8 },
    Failure { id: u8 },
}

/// Parse one EAP packet. Octets past the Length field are link-layer padding and ignored (RFC 3748 §4).
pub(crate) fn parse(buf: &[u8]) -> Result<Packet<'_>, EapError> {
    let Some((&[code, id, l0, l1], _)) = buf.split_first_chunk::<HEADER_LEN>() else {
        return Err(EapError::Malformed("shorter than the header"));
    };
    let len = usize::from(u16::from_be_bytes([l0, l1]));
    if len < HEADER_LEN {
        return Err(EapError::Malformed("Length field smaller than the header"));
    }
    let body = buf.get(HEADER_LEN..len).ok_or(EapError::Malformed("Length field beyond the end of the packet"))?;
    match code {
        CODE_REQUEST | CODE_RESPONSE => {
            let (&typ, data) = body.split_first().ok_or(EapError::Malformed("Request/Response without a Type"))?;
            Ok(if code == CODE_REQUEST {
                Packet::Request { id, typ, data }
            } else {
                Packet::Response { id, typ, data }
            })
        }
        CODE_SUCCESS => Ok(Packet::Success { id }),
        CODE_FAILURE => Ok(Packet::Failure { id }),
        _ => Err(EapError::Malformed("unknown Code")),
    }
}

/// Build an EAP Response (RFC 3748 §4.1) of the given Type around `data`.
pub(crate) fn response(id: u8, typ: u8, data: &[u8]) -> Result<Vec<u8>, EapError> {
    let len = HEADER_LEN + 1 + data.len();
    let len16 = u16::try_from(len).map_err(|_| EapError::InvalidConfig("EAP response longer than 65535 octets"))?;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&[CODE_RESPONSE, id]);
    out.extend_from_slice(&len16.to_be_bytes());
    out.push(typ);
    out.extend_from_slice(data);
    Ok(out)
}

/// Make a peer-supplied text printable for logs and error messages: control characters become '?',
/// and the result is capped at 200 characters.
pub(crate) fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).chars().take(200).map(|c| if c.is_control() { '?' } else { c }).collect()
}
