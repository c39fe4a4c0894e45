//! IKEv2 wire codec (RFC 7296 §3, RFC 7383 §2.5).
//!
//! Strict and total: every length is checked, truncation and unknown critical payloads are typed errors,
//! nothing here panics on peer data. Encrypted payloads (SK, SKF) are kept as raw bytes; the IKE layer
//! decrypts them with [`crate::crypto`] and parses the inner chain with [`decode_chain`].

mod codec;
pub mod consts;
#[cfg(test)]
mod tests;

pub use codec::*;
pub use consts::*;

use std::net::{Ipv4Addr, Ipv6Addr};

/// Errors from decoding untrusted bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("message truncated: need {need} bytes, have {have}")]
    Truncated { need: usize, have: usize },
    #[error("bad length {len} in {what}")]
    BadLength { what: &'static str, len: usize },
    #[error("unsupported IKE major version {0}")]
    UnsupportedVersion(u8),
    #[error("unknown critical payload type {0}")]
    UnknownCritical(u8),
    #[error("invalid {what}: {detail}")]
    Invalid { what: &'static str, detail: &'static str },
    #[error("trailing data after last payload ({0} bytes)")]
    TrailingData(usize),
    #[error("SK/SKF payload must be the last payload")]
    EncryptedNotLast,
}

/// IKE header (RFC 7296 §3.1). Length is computed on encode and checked on decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub spi_i: u64,
    pub spi_r: u64,
    /// Type of the first payload.
    pub next_payload: u8,
    /// Major version in the high nibble (2), minor in the low nibble (0): 0x20.
    pub version: u8,
    pub exchange: ExchangeType,
    pub flags: Flags,
    pub message_id: u32,
    /// Total message length as read from / written to the wire.
    pub length: u32,
}

/// Header flags (RFC 7296 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags {
    /// I: set by the original initiator of the IKE SA.
    pub initiator: bool,
    /// V: version (never set by us).
    pub version: bool,
    /// R: this message is a response.
    pub response: bool,
}

/// A decoded IKE message (header and payload chain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub payloads: Vec<Payload>,
}

/// One IKE payload (RFC 7296 §3.2-§3.16, RFC 7383 §2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Sa(Vec<Proposal>),
    Ke(KePayload),
    IdI(Identification),
    IdR(Identification),
    Cert(CertPayload),
    CertReq(CertPayload),
    Auth(AuthPayload),
    Nonce(Vec<u8>),
    Notify(Notify),
    Delete(Delete),
    VendorId(Vec<u8>),
    TsI(Vec<TrafficSelector>),
    TsR(Vec<TrafficSelector>),
    /// Encrypted and authenticated (§3.14): raw body = IV || ciphertext || ICV, `first_inner` is the type of
    /// the first inner payload. `offset` is the byte offset of this payload's generic header within the
    /// whole message (the AEAD associated data is message[..offset + 4]).
    Sk(Encrypted),
    Cp(ConfigPayload),
    /// An EAP message (§3.16) carried verbatim.
    Eap(Vec<u8>),
    /// Encrypted fragment (RFC 7383 §2.5).
    Skf(EncryptedFragment),
    /// A non-critical payload we do not understand; kept so it can be skipped.
    Unknown {
        payload_type: u8,
        data: Vec<u8>,
    },
}

/// SK payload contents (RFC 7296 §3.14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encrypted {
    pub first_inner: u8,
    /// Offset of the SK generic payload header within the message bytes.
    pub offset: usize,
    /// IV || ciphertext (with padding) || ICV.
    pub body: Vec<u8>,
}

/// SKF payload contents (RFC 7383 §2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedFragment {
    /// Type of the first inner payload in fragment 1, 0 in the others.
    pub first_inner: u8,
    pub offset: usize,
    pub fragment_number: u16,
    pub total_fragments: u16,
    pub body: Vec<u8>,
}

/// A proposal inside an SA payload (§3.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    pub number: u8,
    pub protocol: ProtocolId,
    /// Empty for the initial IKE SA proposal; 8 bytes for IKE rekeys; 4 bytes for ESP/AH.
    pub spi: Vec<u8>,
    pub transforms: Vec<Transform>,
}

/// A transform (§3.3.2) with its optional key length attribute (§3.3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Transform {
    pub kind: TransformType,
    pub id: u16,
    /// Key Length attribute in bits (attribute type 14, TV format), if present.
    pub key_len: Option<u16>,
}

/// Key Exchange payload (§3.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KePayload {
    pub group: u16,
    pub data: Vec<u8>,
}

/// Identification payload (§3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identification {
    pub id_type: IdType,
    pub data: Vec<u8>,
}

impl Identification {
    /// The bytes covered by the AUTH computation (§2.15): ID type, 3 reserved bytes, then the data.
    pub fn auth_octets(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(4 + self.data.len());
        v.push(self.id_type.0);
        v.extend_from_slice(&[0, 0, 0]);
        v.extend_from_slice(&self.data);
        v
    }
}

/// CERT and CERTREQ payload (§3.6, §3.7): an encoding byte and the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPayload {
    pub encoding: u8,
    pub data: Vec<u8>,
}

/// Authentication payload (§3.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthPayload {
    pub method: AuthMethod,
    pub data: Vec<u8>,
}

/// Notify payload (§3.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// 0 when no SPI is attached; otherwise the protocol of `spi`.
    pub protocol: u8,
    pub spi: Vec<u8>,
    pub notify_type: NotifyType,
    pub data: Vec<u8>,
}

impl Notify {
    /// A notify with no SPI.
    pub fn new(notify_type: NotifyType, data: Vec<u8>) -> Self {
        Notify { protocol: 0, spi: Vec::new(), notify_type, data }
    }
}

/// Delete payload (§3.11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    pub protocol: ProtocolId,
    /// SPIs, each 4 bytes for ESP/AH; empty for IKE.
    pub spis: Vec<Vec<u8>>,
}

/// One traffic selector (§3.13.1). Only the two address types of RFC 7296 are decoded; others are an error.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TrafficSelector {
    /// IP protocol, 0 for any.
    pub ip_protocol: u8,
    pub start_port: u16,
    pub end_port: u16,
    pub addresses: TsAddresses,
}

/// Address range of a traffic selector.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TsAddresses {
    V4 { start: Ipv4Addr, end: Ipv4Addr },
    V6 { start: Ipv6Addr, end: Ipv6Addr },
}

/// Configuration payload (§3.15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigPayload {
    pub cfg_type: CfgType,
    pub attributes: Vec<ConfigAttribute>,
}

/// One configuration attribute (§3.15.1): type (15 bits) and value, empty in requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigAttribute {
    pub attr_type: u16,
    pub value: Vec<u8>,
}
