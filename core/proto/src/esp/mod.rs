//! ESP data plane (RFC 4303), tunnel mode, sans-IO.
//!
//! An [`EspSa`] is one direction of a Child SA. [`EspSa::seal`] turns an inner IP packet into an ESP packet
//! in a caller-provided buffer; [`EspSa::open`] authenticates and decrypts an ESP packet in place. Neither
//! allocates. Suites: AES-GCM-16 (RFC 4106), ChaCha20-Poly1305 (RFC 7634), AES-CBC (RFC 3602) with
//! HMAC-SHA2 (RFC 4868); opt-in legacy (issue 11): AES-GCM with 12- or 8-byte ICVs (RFC 4106), 3DES-CBC
//! (RFC 2451), HMAC-SHA1-96 (RFC 2404), AES-192. Anti-replay as in RFC 6479 ([`replay`]), UDP encapsulation
//! helpers in [`udp`] (RFC 3948).

pub mod replay;
pub mod udp;

#[cfg(test)]
mod tests;

use core::fmt;
use core::ops::Range;

use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::crypto::{AeadKey, CbcKey, CryptoError, Encr, HmacKey, Integ};
use replay::ReplayWindow;

/// ESP header: SPI (4) + sequence number (4) (RFC 4303 §2).
pub const ESP_HEADER_LEN: usize = 8;
/// Next Header value for an inner IPv4 packet (tunnel mode).
pub const NEXT_HEADER_IPV4: u8 = 4;
/// Next Header value for an inner IPv6 packet (tunnel mode).
pub const NEXT_HEADER_IPV6: u8 = 41;
/// Next Header value of a dummy packet, to be discarded (RFC 4303 §2.6).
pub const NEXT_HEADER_NONE: u8 = 59;

/// The longest AEAD ICV (AES-GCM-16, ChaCha20-Poly1305; the legacy AES-GCM-12/-8 have shorter ones).
const MAX_AEAD_ICV_LEN: usize = 16;
const AEAD_IV_LEN: usize = 8;
/// The largest CBC block, which is also the IV length: 16 for AES, 8 for 3DES.
const MAX_CBC_BLOCK: usize = 16;
/// AEAD ciphertexts are only 4-byte aligned (RFC 4303 §2.4).
const AEAD_ALIGN: usize = 4;
/// Pad Length + Next Header.
const TRAILER_LEN: usize = 2;

/// ESP errors. Network input never panics; every drop reason is a variant (and a counter in [`EspStats`]).
#[derive(Debug, thiserror::Error)]
pub enum EspError {
    #[error("invalid SA parameters: {0}")]
    InvalidParams(&'static str),
    #[error("crypto: {0}")]
    Crypto(#[from] CryptoError),
    #[error("operation needs an {0} SA")]
    WrongDirection(&'static str),
    #[error("output buffer too small: need {need} bytes, have {have}")]
    BufferTooSmall { need: usize, have: usize },
    #[error("inner packet is not IPv4 or IPv6")]
    NotIpPacket,
    #[error("sequence number space exhausted, the SA must be rekeyed")]
    SequenceOverflow,
    #[error("malformed ESP packet: {0}")]
    Malformed(&'static str),
    #[error("SPI {got:#010x} does not belong to this SA ({expected:#010x})")]
    SpiMismatch { expected: u32, got: u32 },
    #[error("replayed or too old sequence number {0}")]
    Replay(u64),
    #[error("ICV verification failed")]
    AuthFailed,
    #[error("invalid ESP padding")]
    BadPadding,
    #[error("unsupported next header {0}")]
    UnsupportedNextHeader(u8),
}

/// What IKE hands over when a Child SA is installed (one direction).
#[derive(Clone)]
pub struct EspParams {
    pub spi: u32,
    pub encr: Encr,
    /// `None` for AEAD transforms.
    pub integ: Option<Integ>,
    /// Encryption key; for AEAD `key || 4-byte salt` (RFC 4106 §8.1, RFC 7634 §2).
    pub enc_key: Zeroizing<Vec<u8>>,
    /// Integrity key; empty for AEAD.
    pub integ_key: Zeroizing<Vec<u8>>,
    /// Extended (64-bit) sequence numbers (RFC 4303 §2.2.1).
    pub esn: bool,
}

impl fmt::Debug for EspParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EspParams")
            .field("spi", &format_args!("{:#010x}", self.spi))
            .field("encr", &self.encr)
            .field("integ", &self.integ)
            .field("esn", &self.esn)
            .finish_non_exhaustive()
    }
}

/// Result of a successful [`EspSa::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// An inner IP packet at `inner` in the caller's buffer; `next_header` is 4 (IPv4) or 41 (IPv6).
    Packet { inner: Range<usize>, next_header: u8 },
    /// A dummy packet (next header 59, RFC 4303 §2.6): authenticated, counted, to be discarded.
    Dummy,
}

/// Per-SA counters. `packets`/`bytes` count inner packets sealed (outbound) or delivered (inbound).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EspStats {
    pub packets: u64,
    pub bytes: u64,
    /// Dummy packets received (next header 59).
    pub dummy: u64,
    pub drop_replay: u64,
    pub drop_auth: u64,
    /// Truncated, wrong SPI, unsupported next header.
    pub drop_malformed: u64,
    pub drop_padding: u64,
}

/// The cipher state of one SA. Variant sizes differ, but an SA is long-lived and there is one per direction.
#[allow(clippy::large_enum_variant)]
enum Transform {
    /// AES-GCM or ChaCha20-Poly1305: IV = 64-bit sequence number, 16-byte tag (12 or 8 for the legacy
    /// AES-GCM variants).
    Aead(AeadKey),
    /// AES-CBC or 3DES-CBC + truncated HMAC: random IV of one block (16 or 8 bytes).
    Cbc { cipher: CbcKey, mac: HmacKey },
}

enum Direction {
    /// Last sequence number sent (0: none yet).
    Outbound {
        seq: u64,
    },
    Inbound {
        window: ReplayWindow,
    },
}

/// One direction of an ESP SA (RFC 4303).
pub struct EspSa {
    spi: u32,
    esn: bool,
    transform: Transform,
    direction: Direction,
    stats: EspStats,
}

impl fmt::Debug for EspSa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dir = match &self.direction {
            Direction::Outbound { .. } => "outbound",
            Direction::Inbound { .. } => "inbound",
        };
        f.debug_struct("EspSa")
            .field("spi", &format_args!("{:#010x}", self.spi))
            .field("direction", &dir)
            .field("esn", &self.esn)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl EspSa {
    /// An SA for sending.
    pub fn outbound(p: &EspParams) -> Result<EspSa, EspError> {
        Self::new(p, Direction::Outbound { seq: 0 })
    }

    /// An SA for receiving with an anti-replay window of at least `replay_window` packets (at least 1024,
    /// rounded up to whole 64-bit blocks, RFC 6479).
    pub fn inbound(p: &EspParams, replay_window: usize) -> Result<EspSa, EspError> {
        let window = ReplayWindow::new(replay_window).ok_or(EspError::InvalidParams("replay window too large"))?;
        Self::new(p, Direction::Inbound { window })
    }

    fn new(p: &EspParams, direction: Direction) -> Result<EspSa, EspError> {
        if p.spi == 0 {
            return Err(EspError::InvalidParams("SPI 0 is reserved"));
        }
        if p.enc_key.len() != p.encr.keymat_len() {
            return Err(EspError::InvalidParams("encryption key length"));
        }
        let transform = match (p.encr, p.integ) {
            (Encr::AesCbc { .. } | Encr::TripleDes, Some(integ)) => {
                if p.integ_key.len() != integ.key_len() {
                    return Err(EspError::InvalidParams("integrity key length"));
                }
                let cipher = CbcKey::for_encr(p.encr, &p.enc_key)?;
                Transform::Cbc { cipher, mac: HmacKey::new(integ, &p.integ_key) }
            }
            (Encr::AesCbc { .. } | Encr::TripleDes, None) => {
                return Err(EspError::InvalidParams("a CBC cipher needs an integrity algorithm"))
            }
            (encr, None) if encr.is_aead() => Transform::Aead(AeadKey::new(encr, &p.enc_key)?),
            _ => return Err(EspError::InvalidParams("AEAD must not be combined with an integrity algorithm")),
        };
        Ok(EspSa { spi: p.spi, esn: p.esn, transform, direction, stats: EspStats::default() })
    }

    pub fn spi(&self) -> u32 {
        self.spi
    }

    pub fn stats(&self) -> &EspStats {
        &self.stats
    }

    /// Whether extended sequence numbers are in use.
    pub fn esn(&self) -> bool {
        self.esn
    }

    /// Outbound: last sequence number sent. Inbound: highest sequence number accepted.
    pub fn seq(&self) -> u64 {
        match &self.direction {
            Direction::Outbound { seq } => *seq,
            Direction::Inbound { window } => window.top(),
        }
    }

    /// Test hook: pretend `seq` packets were already sent.
    #[cfg(test)]
    fn set_last_seq(&mut self, seq: u64) {
        if let Direction::Outbound { seq: s } = &mut self.direction {
            *s = seq;
        }
    }

    fn iv_len(&self) -> usize {
        match &self.transform {
            Transform::Aead(_) => AEAD_IV_LEN,
            Transform::Cbc { cipher, .. } => cipher.block_len(),
        }
    }

    fn icv_len(&self) -> usize {
        match &self.transform {
            Transform::Aead(key) => key.tag_len(),
            Transform::Cbc { mac, .. } => mac.icv_len(),
        }
    }

    fn align(&self) -> usize {
        match &self.transform {
            Transform::Aead(_) => AEAD_ALIGN,
            Transform::Cbc { cipher, .. } => cipher.block_len(),
        }
    }

    /// Encrypted part (inner + padding + trailer) for an inner packet of `inner_len` bytes.
    fn padded_len(&self, inner_len: usize) -> usize {
        (inner_len + TRAILER_LEN).next_multiple_of(self.align())
    }

    /// Exact number of bytes [`seal`](Self::seal) adds to an inner packet of `inner_len` bytes.
    pub fn overhead(&self, inner_len: usize) -> usize {
        ESP_HEADER_LEN + self.iv_len() + self.padded_len(inner_len) - inner_len + self.icv_len()
    }

    /// Worst-case bytes added by ESP (header, IV, maximal padding, trailer, ICV), for MTU computation.
    /// Does not include the UDP encapsulation header (8 bytes, RFC 3948) or the outer IP header.
    pub fn max_overhead(&self) -> usize {
        ESP_HEADER_LEN + self.iv_len() + (self.align() - 1) + TRAILER_LEN + self.icv_len()
    }

    /// Seal an inner IP packet into `out`: SPI | Seq | IV | ciphertext(inner | padding | pad len |
    /// next header) | ICV (RFC 4303 §2). Returns the ESP packet length; `out` needs
    /// [`overhead`](Self::overhead)`(inner.len())` bytes more than `inner`.
    ///
    /// The next header (4 or 41) comes from the IP version nibble. The IV is the 64-bit sequence number for
    /// AEADs (RFC 4106 §3.1, RFC 7634 §2) and random from `rng` for CBC (RFC 3602 §2.3, RFC 2451 §2.3).
    /// Padding is the minimum to the block size (4-byte alignment for AEADs) with bytes 1, 2, 3, ...
    /// (RFC 4303 §2.4).
    pub fn seal(&mut self, inner: &[u8], out: &mut [u8], rng: &mut dyn CryptoRng) -> Result<usize, EspError> {
        let next_header = match inner.first().map(|b| b >> 4) {
            Some(4) => NEXT_HEADER_IPV4,
            Some(6) => NEXT_HEADER_IPV6,
            _ => return Err(EspError::NotIpPacket),
        };
        self.seal_with_next_header(inner, next_header, out, rng)
    }

    /// Seal a dummy packet (next header 59, RFC 4303 §2.6) carrying `len` zero bytes, e.g. for traffic flow
    /// confidentiality. The peer discards it after authentication.
    pub fn seal_dummy(&mut self, len: usize, out: &mut [u8], rng: &mut dyn CryptoRng) -> Result<usize, EspError> {
        let payload_start = ESP_HEADER_LEN + self.iv_len();
        let need = len + self.overhead(len);
        let have = out.len();
        out.get_mut(payload_start..payload_start + len)
            .filter(|_| have >= need)
            .ok_or(EspError::BufferTooSmall { need, have })?
            .fill(0);
        self.seal_prepared(len, NEXT_HEADER_NONE, out, rng)
    }

    /// Where [`seal_in_place`](Self::seal_in_place) expects the inner packet: after the ESP header and IV.
    pub fn payload_offset(&self) -> usize {
        ESP_HEADER_LEN + self.iv_len()
    }

    /// Like [`seal`](Self::seal), but the inner packet (`inner_len` bytes) is already in `buf` at
    /// [`payload_offset`](Self::payload_offset), so it is encrypted where it lies instead of being copied (the
    /// data plane reads packets straight into their ESP slot). `buf` needs
    /// [`overhead`](Self::overhead)`(inner_len)` bytes more than the inner packet; returns the ESP packet length.
    pub fn seal_in_place(
        &mut self,
        buf: &mut [u8],
        inner_len: usize,
        rng: &mut dyn CryptoRng,
    ) -> Result<usize, EspError> {
        let next_header = match buf.get(self.payload_offset()).map(|b| b >> 4) {
            Some(4) if inner_len > 0 => NEXT_HEADER_IPV4,
            Some(6) if inner_len > 0 => NEXT_HEADER_IPV6,
            _ => return Err(EspError::NotIpPacket),
        };
        self.seal_prepared(inner_len, next_header, buf, rng)
    }

    fn seal_with_next_header(
        &mut self,
        inner: &[u8],
        next_header: u8,
        out: &mut [u8],
        rng: &mut dyn CryptoRng,
    ) -> Result<usize, EspError> {
        let payload_start = ESP_HEADER_LEN + self.iv_len();
        let need = inner.len() + self.overhead(inner.len());
        let have = out.len();
        out.get_mut(payload_start..payload_start + inner.len())
            .filter(|_| have >= need)
            .ok_or(EspError::BufferTooSmall { need, have })?
            .copy_from_slice(inner);
        self.seal_prepared(inner.len(), next_header, out, rng)
    }

    /// Seal with the payload already at `out[ESP_HEADER_LEN + iv_len ..][..payload_len]`.
    fn seal_prepared(
        &mut self,
        payload_len: usize,
        next_header: u8,
        out: &mut [u8],
        rng: &mut dyn CryptoRng,
    ) -> Result<usize, EspError> {
        let iv_len = self.iv_len();
        let icv_len = self.icv_len();
        let padded = self.padded_len(payload_len);
        let pad_len = padded - payload_len - TRAILER_LEN;
        let payload_start = ESP_HEADER_LEN + iv_len;
        let icv_start = payload_start + padded;
        let total = icv_start + icv_len;
        let have = out.len();
        let out = out.get_mut(..total).ok_or(EspError::BufferTooSmall { need: total, have })?;

        let Direction::Outbound { seq: last } = &mut self.direction else {
            return Err(EspError::WrongDirection("outbound"));
        };
        let limit = if self.esn { u64::MAX } else { u32::MAX as u64 };
        if *last >= limit {
            return Err(EspError::SequenceOverflow);
        }
        let seq = *last + 1;
        *last = seq;
        let seq_lo = (seq as u32).to_be_bytes();
        let seq_hi = ((seq >> 32) as u32).to_be_bytes();

        let (header, rest) = out.split_at_mut(ESP_HEADER_LEN);
        header[..4].copy_from_slice(&self.spi.to_be_bytes());
        header[4..].copy_from_slice(&seq_lo);
        let (iv, rest) = rest.split_at_mut(iv_len);
        let (body, icv) = rest.split_at_mut(padded);
        // Trailer: padding 1, 2, 3, ..., pad length, next header (RFC 4303 §2.4-2.6).
        let trailer = &mut body[payload_len..];
        for (i, b) in trailer[..pad_len].iter_mut().enumerate() {
            *b = (i + 1) as u8;
        }
        trailer[pad_len] = pad_len as u8; // < 16
        trailer[pad_len + 1] = next_header;

        match &self.transform {
            Transform::Aead(key) => {
                let iv_arr = seq.to_be_bytes();
                iv.copy_from_slice(&iv_arr);
                let mut aad = [0u8; 12];
                let aad = build_aad(&mut aad, self.spi, seq, self.esn);
                let mut tag = [0u8; MAX_AEAD_ICV_LEN];
                let tag = &mut tag[..icv_len];
                key.seal_in_place(&iv_arr, aad, body, tag)?;
                icv.copy_from_slice(tag);
            }
            Transform::Cbc { cipher, mac } => {
                let mut iv_arr = [0u8; MAX_CBC_BLOCK];
                let iv_arr = &mut iv_arr[..iv_len];
                rng.fill_bytes(iv_arr);
                iv.copy_from_slice(iv_arr);
                cipher.encrypt_in_place(iv_arr, body)?;
                let (authed, icv) = out.split_at_mut(icv_start);
                // RFC 4303 §3.3.3: with ESN the high 32 bits are appended for the ICV, not transmitted.
                let hi: &[u8] = if self.esn { &seq_hi } else { &[] };
                mac.sign(&[authed, hi], icv);
            }
        }
        if next_header != NEXT_HEADER_NONE {
            self.stats.packets += 1;
            self.stats.bytes += payload_len as u64;
        }
        Ok(total)
    }

    /// Open an ESP packet in place (`buf` = whole ESP packet starting at the SPI). Order per RFC 4303 §3.4:
    /// replay check (drop early), ICV check, window update, then decryption result checks: padding bytes
    /// (RFC 4303 §2.4) and next header (4, 41, or 59 = [`Opened::Dummy`]). Returns where the inner packet is.
    pub fn open(&mut self, buf: &mut [u8]) -> Result<Opened, EspError> {
        let result = self.open_inner(buf);
        let s = &mut self.stats;
        match &result {
            Ok(Opened::Packet { inner, .. }) => {
                s.packets += 1;
                s.bytes += inner.len() as u64;
            }
            Ok(Opened::Dummy) => s.dummy += 1,
            Err(EspError::Replay(_)) => s.drop_replay += 1,
            Err(EspError::AuthFailed) => s.drop_auth += 1,
            Err(EspError::BadPadding) => s.drop_padding += 1,
            Err(EspError::Malformed(_))
            | Err(EspError::SpiMismatch { .. })
            | Err(EspError::UnsupportedNextHeader(_)) => s.drop_malformed += 1,
            Err(_) => {}
        }
        result
    }

    fn open_inner(&mut self, buf: &mut [u8]) -> Result<Opened, EspError> {
        let iv_len = self.iv_len();
        let icv_len = self.icv_len();
        let align = self.align();
        let Direction::Inbound { window } = &mut self.direction else {
            return Err(EspError::WrongDirection("inbound"));
        };
        let payload_start = ESP_HEADER_LEN + iv_len;
        let min_len = payload_start + TRAILER_LEN.next_multiple_of(align) + icv_len;
        if buf.len() < min_len {
            return Err(EspError::Malformed("truncated"));
        }
        let icv_start = buf.len() - icv_len;
        let ct_len = icv_start - payload_start;
        if matches!(self.transform, Transform::Cbc { .. }) && !ct_len.is_multiple_of(align) {
            return Err(EspError::Malformed("ciphertext not a multiple of the block size"));
        }

        let spi = read_u32(buf, 0).ok_or(EspError::Malformed("truncated"))?;
        if spi != self.spi {
            return Err(EspError::SpiMismatch { expected: self.spi, got: spi });
        }
        let seq_lo = read_u32(buf, 4).ok_or(EspError::Malformed("truncated"))?;
        let seq = if self.esn { window.infer_seq(seq_lo) } else { seq_lo as u64 };
        window.check(seq).map_err(|_| EspError::Replay(seq))?;

        let (authed, icv) = buf.split_at_mut(icv_start);
        match &self.transform {
            Transform::Aead(key) => {
                let mut iv = [0u8; AEAD_IV_LEN];
                iv.copy_from_slice(&authed[ESP_HEADER_LEN..payload_start]);
                let mut aad = [0u8; 12];
                let aad = build_aad(&mut aad, self.spi, seq, self.esn);
                key.open_in_place(&iv, aad, &mut authed[payload_start..], icv).map_err(|_| EspError::AuthFailed)?;
            }
            Transform::Cbc { cipher, mac } => {
                let seq_hi = ((seq >> 32) as u32).to_be_bytes();
                let hi: &[u8] = if self.esn { &seq_hi } else { &[] };
                mac.verify(&[authed, hi], icv).map_err(|_| EspError::AuthFailed)?;
                let mut iv = [0u8; MAX_CBC_BLOCK];
                let iv = &mut iv[..iv_len];
                iv.copy_from_slice(&authed[ESP_HEADER_LEN..payload_start]);
                cipher.decrypt_in_place(iv, &mut authed[payload_start..])?;
            }
        }
        // Authenticated: only now may the window move (RFC 4303 §3.4.3).
        window.update(seq);

        let plain = &authed[payload_start..];
        let (next_header, pad_len) = match plain {
            [.., pad_len, nh] => (*nh, *pad_len as usize),
            _ => return Err(EspError::Malformed("truncated")),
        };
        let inner_len = ct_len.checked_sub(TRAILER_LEN + pad_len).ok_or(EspError::BadPadding)?;
        let padding = &plain[inner_len..ct_len - TRAILER_LEN];
        if !padding.iter().enumerate().all(|(i, &b)| b as usize == i + 1) {
            return Err(EspError::BadPadding);
        }
        match next_header {
            NEXT_HEADER_IPV4 | NEXT_HEADER_IPV6 => {
                Ok(Opened::Packet { inner: payload_start..payload_start + inner_len, next_header })
            }
            NEXT_HEADER_NONE => Ok(Opened::Dummy),
            other => Err(EspError::UnsupportedNextHeader(other)),
        }
    }
}

/// AEAD additional data: SPI || seq (32-bit) or SPI || seq_hi || seq_lo with ESN (RFC 4106 §5, RFC 7634 §3).
fn build_aad(aad: &mut [u8; 12], spi: u32, seq: u64, esn: bool) -> &[u8] {
    aad[..4].copy_from_slice(&spi.to_be_bytes());
    if esn {
        aad[4..].copy_from_slice(&seq.to_be_bytes());
        &aad[..]
    } else {
        aad[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
        &aad[..8]
    }
}

fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    let b = buf.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// SPI of an ESP packet (first 4 bytes), for demultiplexing to the right inbound [`EspSa`].
pub fn peek_spi(packet: &[u8]) -> Option<u32> {
    read_u32(packet, 0)
}
