//! Encoding and decoding (RFC 7296 §3, RFC 7383 §2.5).
//!
//! Decoding never panics: every read goes through [`Reader`], which checks bounds and returns
//! [`WireError`]. Encoding is infallible; its only preconditions (documented on each function) are that
//! variable lengths fit their wire fields, which holds for everything the IKE layer builds.

use super::*;

/// Length of the fixed IKE header (§3.1).
pub const HEADER_LEN: usize = 28;

/// Length of the generic payload header (§3.2).
const GENERIC_LEN: usize = 4;

/// Critical bit in the second byte of the generic payload header (§3.2).
const CRITICAL: u8 = 0x80;

/// Header flag bits (§3.1).
const FLAG_INITIATOR: u8 = 0x08;
const FLAG_VERSION: u8 = 0x10;
const FLAG_RESPONSE: u8 = 0x20;

/// "Last Substruc" values (§3.3.1, §3.3.2).
const LAST: u8 = 0;
const MORE_PROPOSALS: u8 = 2;
const MORE_TRANSFORMS: u8 = 3;

/// Attribute Format bit: set for TV (type/value) attributes (§3.3.5).
const ATTR_TV: u16 = 0x8000;

/// Nonce data length bounds (§3.9).
const NONCE_MIN: usize = 16;
const NONCE_MAX: usize = 256;

/// Traffic selector lengths including the 8-byte fixed part (§3.13.1).
const TS_V4_LEN: usize = 16;
const TS_V6_LEN: usize = 40;

// ---------------------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------------------

/// Bounds-checked cursor over untrusted bytes.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn remaining(&self) -> usize {
        self.buf.len()
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.buf.len() {
            return Err(WireError::Truncated { need: n, have: self.buf.len() });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn skip(&mut self, n: usize) -> Result<(), WireError> {
        self.take(n).map(|_| ())
    }

    /// Everything that is left.
    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }
}

// ---------------------------------------------------------------------------------------------------------
// Header
// ---------------------------------------------------------------------------------------------------------

impl Header {
    /// Decode the IKE header from the first [`HEADER_LEN`] bytes (§3.1). Only the major version is checked
    /// here (it must be 2); the length field is checked by [`Message::decode`].
    pub fn decode(bytes: &[u8]) -> Result<Header, WireError> {
        let mut r = Reader::new(bytes);
        if r.remaining() < HEADER_LEN {
            return Err(WireError::Truncated { need: HEADER_LEN, have: r.remaining() });
        }
        let spi_i = r.u64()?;
        let spi_r = r.u64()?;
        let next_payload = r.u8()?;
        let version = r.u8()?;
        if version >> 4 != 2 {
            return Err(WireError::UnsupportedVersion(version >> 4));
        }
        let exchange = ExchangeType(r.u8()?);
        let f = r.u8()?;
        let flags = Flags {
            initiator: f & FLAG_INITIATOR != 0,
            version: f & FLAG_VERSION != 0,
            response: f & FLAG_RESPONSE != 0,
        };
        let message_id = r.u32()?;
        let length = r.u32()?;
        Ok(Header { spi_i, spi_r, next_payload, version, exchange, flags, message_id, length })
    }

    /// Append the 28-byte header (§3.1), writing `self.length` and `self.next_payload` as they are.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.spi_i.to_be_bytes());
        out.extend_from_slice(&self.spi_r.to_be_bytes());
        out.push(self.next_payload);
        out.push(self.version);
        out.push(self.exchange.0);
        let mut f = 0u8;
        if self.flags.initiator {
            f |= FLAG_INITIATOR;
        }
        if self.flags.version {
            f |= FLAG_VERSION;
        }
        if self.flags.response {
            f |= FLAG_RESPONSE;
        }
        out.push(f);
        out.extend_from_slice(&self.message_id.to_be_bytes());
        out.extend_from_slice(&self.length.to_be_bytes());
    }
}

// ---------------------------------------------------------------------------------------------------------
// Message
// ---------------------------------------------------------------------------------------------------------

impl Message {
    /// Decode a whole message (§3.1): the header, a length check against `bytes.len()`, then the payload
    /// chain. SK/SKF payloads are kept encrypted.
    pub fn decode(bytes: &[u8]) -> Result<Message, WireError> {
        let header = Header::decode(bytes)?;
        if header.length as usize != bytes.len() {
            return Err(WireError::BadLength { what: "IKE header", len: header.length as usize });
        }
        let body = bytes.get(HEADER_LEN..).unwrap_or_default();
        let payloads = decode_chain(header.next_payload, body, HEADER_LEN)?;
        Ok(Message { header, payloads })
    }

    /// Encode the message. `header.next_payload` and `header.length` are computed here. SK and SKF payloads
    /// are written with their body verbatim and must be the last payload. The total length must fit in 32
    /// bits and each payload in 16 bits (see [`encode_chain`]).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + 256);
        self.header.encode(&mut out);
        let first = encode_chain(&self.payloads, &mut out);
        out[16] = first;
        let len = out.len() as u32;
        out[24..28].copy_from_slice(&len.to_be_bytes());
        out
    }
}

/// Header + SK generic payload header for an encrypted message (§3.14) whose SK body
/// (IV || ciphertext || ICV) will be `body_len` bytes. `header.length` and `header.next_payload` (SK) are
/// set here; the caller appends the body. The returned bytes are the AEAD associated data.
pub fn encode_sk_prefix(header: &Header, first_inner: u8, body_len: usize) -> Vec<u8> {
    let payload_len = GENERIC_LEN + body_len;
    let mut h = *header;
    h.next_payload = payload_type::SK;
    h.length = (HEADER_LEN + payload_len) as u32;
    let mut out = Vec::with_capacity(HEADER_LEN + payload_len);
    h.encode(&mut out);
    put_generic(&mut out, first_inner, payload_len);
    out
}

/// Header + SKF generic payload header + Fragment Number + Total Fragments for one encrypted fragment
/// (RFC 7383 §2.5) whose body (IV || ciphertext || ICV) will be `body_len` bytes. The caller appends the
/// body. The returned bytes are the AEAD associated data (RFC 7383 §2.5.3).
pub fn encode_skf_prefix(
    header: &Header,
    first_inner: u8,
    fragment_number: u16,
    total_fragments: u16,
    body_len: usize,
) -> Vec<u8> {
    let payload_len = GENERIC_LEN + 4 + body_len;
    let mut h = *header;
    h.next_payload = payload_type::SKF;
    h.length = (HEADER_LEN + payload_len) as u32;
    let mut out = Vec::with_capacity(HEADER_LEN + payload_len);
    h.encode(&mut out);
    put_generic(&mut out, first_inner, payload_len);
    out.extend_from_slice(&fragment_number.to_be_bytes());
    out.extend_from_slice(&total_fragments.to_be_bytes());
    out
}

fn put_generic(out: &mut Vec<u8>, next: u8, len: usize) {
    debug_assert!(len <= u16::MAX as usize, "payload too long");
    out.push(next);
    out.push(0);
    out.extend_from_slice(&(len as u16).to_be_bytes());
}

// ---------------------------------------------------------------------------------------------------------
// Payload chain
// ---------------------------------------------------------------------------------------------------------

impl Payload {
    /// The payload type number (§3.2) used in the preceding "Next Payload" field.
    pub fn payload_type(&self) -> u8 {
        use payload_type as pt;
        match self {
            Payload::Sa(_) => pt::SA,
            Payload::Ke(_) => pt::KE,
            Payload::IdI(_) => pt::IDI,
            Payload::IdR(_) => pt::IDR,
            Payload::Cert(_) => pt::CERT,
            Payload::CertReq(_) => pt::CERTREQ,
            Payload::Auth(_) => pt::AUTH,
            Payload::Nonce(_) => pt::NONCE,
            Payload::Notify(_) => pt::NOTIFY,
            Payload::Delete(_) => pt::DELETE,
            Payload::VendorId(_) => pt::VENDOR_ID,
            Payload::TsI(_) => pt::TSI,
            Payload::TsR(_) => pt::TSR,
            Payload::Sk(_) => pt::SK,
            Payload::Cp(_) => pt::CP,
            Payload::Eap(_) => pt::EAP,
            Payload::Skf(_) => pt::SKF,
            Payload::Unknown { payload_type, .. } => *payload_type,
        }
    }
}

/// Decode a payload chain (§3.2) whose first payload has type `first`.
///
/// `base_offset` is the offset of `bytes` inside the whole message; it is used to fill
/// [`Encrypted::offset`] / [`EncryptedFragment::offset`] (offset of that payload's generic header).
/// SK and SKF must be the last payload ([`WireError::EncryptedNotLast`] otherwise); their "Next Payload"
/// field is the type of the first inner payload. An unknown payload type with the critical bit set is
/// [`WireError::UnknownCritical`]; without it, [`Payload::Unknown`]. Bytes after the last payload are
/// [`WireError::TrailingData`].
pub fn decode_chain(first: u8, bytes: &[u8], base_offset: usize) -> Result<Vec<Payload>, WireError> {
    let mut payloads = Vec::new();
    let mut r = Reader::new(bytes);
    let mut ptype = first;
    while ptype != payload_type::NONE {
        let offset = base_offset + (bytes.len() - r.remaining());
        let next = r.u8()?;
        let critical = r.u8()? & CRITICAL != 0;
        let len = r.u16()? as usize;
        if len < GENERIC_LEN {
            return Err(WireError::BadLength { what: "payload", len });
        }
        let body = r.take(len - GENERIC_LEN)?;
        let payload = match ptype {
            payload_type::SK => Payload::Sk(Encrypted { first_inner: next, offset, body: body.to_vec() }),
            payload_type::SKF => Payload::Skf(decode_skf(next, offset, body)?),
            _ => decode_payload(ptype, critical, body)?,
        };
        payloads.push(payload);
        if ptype == payload_type::SK || ptype == payload_type::SKF {
            if !r.is_empty() {
                return Err(WireError::EncryptedNotLast);
            }
            return Ok(payloads);
        }
        ptype = next;
    }
    if !r.is_empty() {
        return Err(WireError::TrailingData(r.remaining()));
    }
    Ok(payloads)
}

/// Encode a payload chain (§3.2) and append it to `out`; returns the type of the first payload
/// (0 if `payloads` is empty). SK/SKF payloads carry their `first_inner` in the "Next Payload" field and
/// must therefore be last. Preconditions: each payload's encoding fits in 65535 bytes, SPIs fit in 255
/// bytes, a proposal has at most 255 transforms, a TS payload at most 255 selectors, and all SPIs of a
/// Delete payload have the same length.
pub fn encode_chain(payloads: &[Payload], out: &mut Vec<u8>) -> u8 {
    for (i, p) in payloads.iter().enumerate() {
        let next = match p {
            Payload::Sk(e) => {
                debug_assert!(i + 1 == payloads.len(), "SK must be the last payload");
                e.first_inner
            }
            Payload::Skf(f) => {
                debug_assert!(i + 1 == payloads.len(), "SKF must be the last payload");
                f.first_inner
            }
            _ => payloads.get(i + 1).map_or(payload_type::NONE, Payload::payload_type),
        };
        let start = out.len();
        out.extend_from_slice(&[next, 0, 0, 0]);
        encode_body(p, out);
        let len = out.len() - start;
        debug_assert!(len <= u16::MAX as usize, "payload too long");
        out[start + 2..start + 4].copy_from_slice(&(len as u16).to_be_bytes());
    }
    payloads.first().map_or(payload_type::NONE, Payload::payload_type)
}

// ---------------------------------------------------------------------------------------------------------
// Payload bodies: decoding
// ---------------------------------------------------------------------------------------------------------

fn decode_payload(ptype: u8, critical: bool, body: &[u8]) -> Result<Payload, WireError> {
    use payload_type as pt;
    let mut r = Reader::new(body);
    let p = match ptype {
        pt::SA => Payload::Sa(decode_sa(body)?),
        pt::KE => {
            let group = r.u16()?;
            r.skip(2)?;
            Payload::Ke(KePayload { group, data: r.rest().to_vec() })
        }
        pt::IDI | pt::IDR => {
            let id_type = IdType(r.u8()?);
            r.skip(3)?;
            let id = Identification { id_type, data: r.rest().to_vec() };
            if ptype == pt::IDI {
                Payload::IdI(id)
            } else {
                Payload::IdR(id)
            }
        }
        pt::CERT | pt::CERTREQ => {
            let cert = CertPayload { encoding: r.u8()?, data: r.rest().to_vec() };
            if ptype == pt::CERT {
                Payload::Cert(cert)
            } else {
                Payload::CertReq(cert)
            }
        }
        pt::AUTH => {
            let method = AuthMethod(r.u8()?);
            r.skip(3)?;
            Payload::Auth(AuthPayload { method, data: r.rest().to_vec() })
        }
        pt::NONCE => {
            if !(NONCE_MIN..=NONCE_MAX).contains(&body.len()) {
                return Err(WireError::Invalid { what: "Nonce payload", detail: "nonce must be 16..=256 bytes" });
            }
            Payload::Nonce(body.to_vec())
        }
        pt::NOTIFY => {
            let protocol = r.u8()?;
            let spi_size = r.u8()? as usize;
            let notify_type = NotifyType(r.u16()?);
            let spi = r.take(spi_size)?.to_vec();
            Payload::Notify(Notify { protocol, spi, notify_type, data: r.rest().to_vec() })
        }
        pt::DELETE => Payload::Delete(decode_delete(&mut r)?),
        pt::VENDOR_ID => Payload::VendorId(body.to_vec()),
        pt::TSI => Payload::TsI(decode_ts(&mut r)?),
        pt::TSR => Payload::TsR(decode_ts(&mut r)?),
        pt::CP => Payload::Cp(decode_cp(&mut r)?),
        pt::EAP => Payload::Eap(decode_eap(body)?),
        _ if critical => return Err(WireError::UnknownCritical(ptype)),
        _ => Payload::Unknown { payload_type: ptype, data: body.to_vec() },
    };
    Ok(p)
}

/// SKF body (RFC 7383 §2.5): Fragment Number, Total Fragments, then IV || ciphertext || ICV.
fn decode_skf(first_inner: u8, offset: usize, body: &[u8]) -> Result<EncryptedFragment, WireError> {
    let mut r = Reader::new(body);
    let fragment_number = r.u16()?;
    let total_fragments = r.u16()?;
    if fragment_number == 0 || total_fragments == 0 || fragment_number > total_fragments {
        return Err(WireError::Invalid {
            what: "SKF payload",
            detail: "fragment number must be in 1..=total fragments",
        });
    }
    Ok(EncryptedFragment { first_inner, offset, fragment_number, total_fragments, body: r.rest().to_vec() })
}

/// SA payload body (§3.3): one or more proposals, chained by the "Last Substruc" field.
fn decode_sa(body: &[u8]) -> Result<Vec<Proposal>, WireError> {
    let mut r = Reader::new(body);
    let mut proposals = Vec::new();
    loop {
        let last = r.u8()?;
        r.skip(1)?;
        let len = r.u16()? as usize;
        if len < 8 {
            return Err(WireError::BadLength { what: "proposal", len });
        }
        let mut p = Reader::new(r.take(len - 4)?);
        let number = p.u8()?;
        let protocol = ProtocolId(p.u8()?);
        let spi_size = p.u8()? as usize;
        let num_transforms = p.u8()? as usize;
        let spi = p.take(spi_size)?.to_vec();
        let transforms = decode_transforms(&mut p, num_transforms)?;
        proposals.push(Proposal { number, protocol, spi, transforms });
        match last {
            LAST if r.is_empty() => return Ok(proposals),
            LAST => return Err(WireError::TrailingData(r.remaining())),
            MORE_PROPOSALS if r.is_empty() => {
                return Err(WireError::Invalid { what: "proposal", detail: "more proposals announced but none follow" })
            }
            MORE_PROPOSALS => {}
            _ => return Err(WireError::Invalid { what: "proposal", detail: "bad Last Substruc value" }),
        }
    }
}

/// The transforms of one proposal (§3.3.2): exactly `count` of them must fill the rest of the proposal.
fn decode_transforms(p: &mut Reader<'_>, count: usize) -> Result<Vec<Transform>, WireError> {
    let mut transforms = Vec::with_capacity(count);
    for i in 0..count {
        let last = p.u8()?;
        let expected = if i + 1 == count { LAST } else { MORE_TRANSFORMS };
        if last != expected {
            return Err(WireError::Invalid {
                what: "transform",
                detail: "Last Substruc does not match the proposal's transform count",
            });
        }
        p.skip(1)?;
        let len = p.u16()? as usize;
        if len < 8 {
            return Err(WireError::BadLength { what: "transform", len });
        }
        let mut t = Reader::new(p.take(len - 4)?);
        let kind = TransformType(t.u8()?);
        t.skip(1)?;
        let id = t.u16()?;
        let key_len = decode_attributes(&mut t)?;
        transforms.push(Transform { kind, id, key_len });
    }
    if !p.is_empty() {
        return Err(WireError::BadLength { what: "proposal (transform count)", len: p.remaining() });
    }
    Ok(transforms)
}

/// Transform attributes (§3.3.5). Returns the Key Length (TV, type 14); other attributes are skipped.
fn decode_attributes(t: &mut Reader<'_>) -> Result<Option<u16>, WireError> {
    let mut key_len = None;
    while !t.is_empty() {
        let af_type = t.u16()?;
        let attr_type = af_type & !ATTR_TV;
        if af_type & ATTR_TV != 0 {
            let value = t.u16()?;
            if attr_type == ATTR_KEY_LENGTH {
                if key_len.is_some() {
                    return Err(WireError::Invalid { what: "transform attribute", detail: "duplicate Key Length" });
                }
                key_len = Some(value);
            }
        } else {
            if attr_type == ATTR_KEY_LENGTH {
                return Err(WireError::Invalid {
                    what: "transform attribute",
                    detail: "Key Length must use the TV format",
                });
            }
            let len = t.u16()? as usize;
            t.skip(len)?;
        }
    }
    Ok(key_len)
}

/// Delete payload body (§3.11).
fn decode_delete(r: &mut Reader<'_>) -> Result<Delete, WireError> {
    let protocol = ProtocolId(r.u8()?);
    let spi_size = r.u8()? as usize;
    let num = r.u16()? as usize;
    if spi_size == 0 {
        if num != 0 || !r.is_empty() {
            return Err(WireError::Invalid { what: "Delete payload", detail: "SPIs present with SPI size 0" });
        }
        return Ok(Delete { protocol, spis: Vec::new() });
    }
    if num * spi_size != r.remaining() {
        return Err(WireError::BadLength { what: "Delete payload SPIs", len: r.remaining() });
    }
    let mut spis = Vec::with_capacity(num);
    for _ in 0..num {
        spis.push(r.take(spi_size)?.to_vec());
    }
    Ok(Delete { protocol, spis })
}

/// Traffic selector payload body (§3.13).
fn decode_ts(r: &mut Reader<'_>) -> Result<Vec<TrafficSelector>, WireError> {
    let count = r.u8()? as usize;
    r.skip(3)?;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let ts_type = r.u8()?;
        let ip_protocol = r.u8()?;
        let len = r.u16()? as usize;
        let expected = match ts_type {
            ts_type::IPV4_ADDR_RANGE => TS_V4_LEN,
            ts_type::IPV6_ADDR_RANGE => TS_V6_LEN,
            _ => return Err(WireError::Invalid { what: "traffic selector", detail: "unknown TS type" }),
        };
        if len != expected {
            return Err(WireError::BadLength { what: "traffic selector", len });
        }
        let start_port = r.u16()?;
        let end_port = r.u16()?;
        let addresses = if ts_type == ts_type::IPV4_ADDR_RANGE {
            let start = Ipv4Addr::from(r.array::<4>()?);
            let end = Ipv4Addr::from(r.array::<4>()?);
            TsAddresses::V4 { start, end }
        } else {
            let start = Ipv6Addr::from(r.array::<16>()?);
            let end = Ipv6Addr::from(r.array::<16>()?);
            TsAddresses::V6 { start, end }
        };
        out.push(TrafficSelector { ip_protocol, start_port, end_port, addresses });
    }
    if !r.is_empty() {
        return Err(WireError::BadLength { what: "TS payload (selector count)", len: r.remaining() });
    }
    Ok(out)
}

/// Configuration payload body (§3.15). The reserved R bit of each attribute is ignored.
fn decode_cp(r: &mut Reader<'_>) -> Result<ConfigPayload, WireError> {
    let cfg_type = CfgType(r.u8()?);
    r.skip(3)?;
    let mut attributes = Vec::new();
    while !r.is_empty() {
        let attr_type = r.u16()? & 0x7fff;
        let len = r.u16()? as usize;
        let value = r.take(len)?.to_vec();
        attributes.push(ConfigAttribute { attr_type, value });
    }
    Ok(ConfigPayload { cfg_type, attributes })
}

/// EAP payload body (§3.16): a whole EAP packet (RFC 3748 §4) whose own length must match.
fn decode_eap(body: &[u8]) -> Result<Vec<u8>, WireError> {
    let mut r = Reader::new(body);
    r.skip(2)?;
    let len = r.u16()? as usize;
    if len != body.len() {
        return Err(WireError::BadLength { what: "EAP message", len });
    }
    Ok(body.to_vec())
}

// ---------------------------------------------------------------------------------------------------------
// Payload bodies: encoding
// ---------------------------------------------------------------------------------------------------------

/// Append a payload body (everything after the generic payload header).
fn encode_body(p: &Payload, out: &mut Vec<u8>) {
    match p {
        Payload::Sa(proposals) => encode_sa(proposals, out),
        Payload::Ke(ke) => {
            out.extend_from_slice(&ke.group.to_be_bytes());
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&ke.data);
        }
        Payload::IdI(id) | Payload::IdR(id) => out.extend_from_slice(&id.auth_octets()),
        Payload::Cert(c) | Payload::CertReq(c) => {
            out.push(c.encoding);
            out.extend_from_slice(&c.data);
        }
        Payload::Auth(a) => {
            out.extend_from_slice(&[a.method.0, 0, 0, 0]);
            out.extend_from_slice(&a.data);
        }
        Payload::Nonce(data) | Payload::VendorId(data) | Payload::Eap(data) => out.extend_from_slice(data),
        Payload::Notify(n) => {
            debug_assert!(n.spi.len() <= u8::MAX as usize);
            out.extend_from_slice(&[n.protocol, n.spi.len() as u8]);
            out.extend_from_slice(&n.notify_type.0.to_be_bytes());
            out.extend_from_slice(&n.spi);
            out.extend_from_slice(&n.data);
        }
        Payload::Delete(d) => {
            let spi_size = d.spis.first().map_or(0, Vec::len);
            debug_assert!(spi_size <= u8::MAX as usize);
            debug_assert!(d.spis.iter().all(|s| s.len() == spi_size), "Delete SPIs of unequal size");
            out.extend_from_slice(&[d.protocol.0, spi_size as u8]);
            out.extend_from_slice(&(d.spis.len() as u16).to_be_bytes());
            for spi in &d.spis {
                out.extend_from_slice(spi);
            }
        }
        Payload::TsI(ts) | Payload::TsR(ts) => encode_ts(ts, out),
        Payload::Sk(e) => out.extend_from_slice(&e.body),
        Payload::Skf(f) => {
            out.extend_from_slice(&f.fragment_number.to_be_bytes());
            out.extend_from_slice(&f.total_fragments.to_be_bytes());
            out.extend_from_slice(&f.body);
        }
        Payload::Cp(cp) => {
            out.extend_from_slice(&[cp.cfg_type.0, 0, 0, 0]);
            for a in &cp.attributes {
                debug_assert!(a.value.len() <= u16::MAX as usize);
                out.extend_from_slice(&(a.attr_type & 0x7fff).to_be_bytes());
                out.extend_from_slice(&(a.value.len() as u16).to_be_bytes());
                out.extend_from_slice(&a.value);
            }
        }
        Payload::Unknown { data, .. } => out.extend_from_slice(data),
    }
}

fn encode_sa(proposals: &[Proposal], out: &mut Vec<u8>) {
    for (i, p) in proposals.iter().enumerate() {
        let last = if i + 1 == proposals.len() { LAST } else { MORE_PROPOSALS };
        let start = out.len();
        debug_assert!(p.spi.len() <= u8::MAX as usize && p.transforms.len() <= u8::MAX as usize);
        out.extend_from_slice(&[last, 0, 0, 0]);
        out.extend_from_slice(&[p.number, p.protocol.0, p.spi.len() as u8, p.transforms.len() as u8]);
        out.extend_from_slice(&p.spi);
        for (j, t) in p.transforms.iter().enumerate() {
            let last = if j + 1 == p.transforms.len() { LAST } else { MORE_TRANSFORMS };
            let len: u16 = if t.key_len.is_some() { 12 } else { 8 };
            out.extend_from_slice(&[last, 0]);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&[t.kind.0, 0]);
            out.extend_from_slice(&t.id.to_be_bytes());
            if let Some(k) = t.key_len {
                out.extend_from_slice(&(ATTR_TV | ATTR_KEY_LENGTH).to_be_bytes());
                out.extend_from_slice(&k.to_be_bytes());
            }
        }
        let len = out.len() - start;
        debug_assert!(len <= u16::MAX as usize);
        out[start + 2..start + 4].copy_from_slice(&(len as u16).to_be_bytes());
    }
}

fn encode_ts(ts: &[TrafficSelector], out: &mut Vec<u8>) {
    debug_assert!(ts.len() <= u8::MAX as usize);
    out.extend_from_slice(&[ts.len() as u8, 0, 0, 0]);
    for t in ts {
        let (kind, len) = match t.addresses {
            TsAddresses::V4 { .. } => (ts_type::IPV4_ADDR_RANGE, TS_V4_LEN as u16),
            TsAddresses::V6 { .. } => (ts_type::IPV6_ADDR_RANGE, TS_V6_LEN as u16),
        };
        out.extend_from_slice(&[kind, t.ip_protocol]);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&t.start_port.to_be_bytes());
        out.extend_from_slice(&t.end_port.to_be_bytes());
        match &t.addresses {
            TsAddresses::V4 { start, end } => {
                out.extend_from_slice(&start.octets());
                out.extend_from_slice(&end.octets());
            }
            TsAddresses::V6 { start, end } => {
                out.extend_from_slice(&start.octets());
                out.extend_from_slice(&end.octets());
            }
        }
    }
}
