//! TCP encapsulation of IKE and ESP (RFC 9329), client side, sans-IO: the stream framing only.
//!
//! The initiator opens a TCP connection to the gateway (port 4500 by default) and sends the stream prefix
//! `IKETCP` once (§4); then both directions carry messages with a 2-byte length in front (the length counts
//! itself, §3). An IKE message has the 4-byte non-ESP marker after the length, an ESP packet does not. NAT
//! keepalives are never sent over TCP (§3; a lone 0xFF received is ignored) and IKE fragmentation is not used
//! over it (§7).
//!
//! [`Deframer`] reassembles what arrives across reads in one fixed buffer allocated up front (no allocation per
//! message) and hands out each complete message in place, so ESP is opened where it lies. [`frame_ike`] and
//! [`esp_length_prefix`] build what goes out; the data plane writes ESP packets back to back, each behind its
//! length, and sends a batch with one write. Framing errors are typed ([`TcpError`]); the caller closes such a
//! stream and opens a new one (§6).

#[cfg(test)]
mod tests;

use std::ops::Range;

use crate::esp::ESP_HEADER_LEN;

/// The stream prefix the initiator sends first on a new connection (RFC 9329 §4).
pub const IKETCP_PREFIX: &[u8; 6] = b"IKETCP";
/// The default TCP port of the gateway (RFC 9329 §4: the same as UDP encapsulation).
pub const DEFAULT_TCP_PORT: u16 = 4500;
/// Bytes of the length field.
pub const LENGTH_LEN: usize = 2;
/// Non-ESP marker in front of IKE messages (RFC 9329 §3).
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];
/// The largest frame: the length field counts itself and has 16 bits.
pub const MAX_FRAME: usize = u16::MAX as usize;
/// Framing overhead an ESP packet carries over TCP beyond what UDP encapsulation costs: TCP's header (20 bytes,
/// more with options: 32 with timestamps) plus the length field, minus UDP's 8-byte header. The TUN's MSS
/// clamp accounts for it.
pub const TCP_ESP_OVERHEAD: u16 = 32 + LENGTH_LEN as u16 - 8;

/// Which transport carries IKE and ESP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Transport {
    /// UDP 500/4500 (RFC 7296, RFC 3948).
    #[default]
    Udp,
    /// One TCP stream (RFC 9329).
    Tcp,
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        })
    }
}

/// A stream that cannot be framed any more: it must be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TcpError {
    /// A length field below its own size.
    #[error("TCP encapsulation: invalid frame length {0}")]
    BadLength(u16),
    /// The stream did not start with `IKETCP` (a responder-side check).
    #[error("TCP encapsulation: the stream does not start with IKETCP")]
    BadPrefix,
    /// An outgoing message does not fit into one frame.
    #[error("TCP encapsulation: a message of {0} bytes does not fit a frame")]
    TooLarge(usize),
    /// The output buffer is too small.
    #[error("TCP encapsulation: output buffer too small")]
    NoRoom,
}

/// One message of the stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// An IKE message (after the non-ESP marker).
    Ike(&'a [u8]),
    /// An ESP packet, in place in the deframer's buffer (mutable: opened where it lies).
    Esp(&'a mut [u8]),
    /// A NAT keepalive (one 0xFF byte): ignored (RFC 9329 §3).
    Keepalive,
    /// A well-framed message too short to be ESP: dropped, the stream goes on.
    Runt,
}

/// Writes an IKE message as one frame (length, non-ESP marker, message) into `out`; returns the frame's length.
pub fn frame_ike(message: &[u8], out: &mut [u8]) -> Result<usize, TcpError> {
    let total = LENGTH_LEN + NON_ESP_MARKER.len() + message.len();
    let len = u16::try_from(total).map_err(|_| TcpError::TooLarge(message.len()))?;
    let dst = out.get_mut(..total).ok_or(TcpError::NoRoom)?;
    let (head, body) = dst.split_at_mut(LENGTH_LEN + NON_ESP_MARKER.len());
    head[..LENGTH_LEN].copy_from_slice(&len.to_be_bytes());
    head[LENGTH_LEN..].copy_from_slice(&NON_ESP_MARKER);
    body.copy_from_slice(message);
    Ok(total)
}

/// What the driver gets for a datagram the IKE SA wants sent, when it goes over TCP: the UDP payload
/// (with the non-ESP marker already in front when `natt`) as one frame into `out`. `Ok(0)`: nothing to send
/// (a NAT keepalive, never sent over TCP).
pub fn frame_datagram(payload: &[u8], natt: bool, out: &mut [u8]) -> Result<usize, TcpError> {
    match (natt, payload) {
        (true, [0xff]) => Ok(0),
        (true, [0, 0, 0, 0, ike @ ..]) | (false, ike) => frame_ike(ike, out),
        // ESP the IKE SA never emits; framed as such for completeness.
        (true, esp) => {
            let prefix = esp_length_prefix(esp.len())?;
            let dst = out.get_mut(..LENGTH_LEN + esp.len()).ok_or(TcpError::NoRoom)?;
            dst[..LENGTH_LEN].copy_from_slice(&prefix);
            dst[LENGTH_LEN..].copy_from_slice(esp);
            Ok(dst.len())
        }
    }
}

/// The length field in front of an ESP packet of `esp_len` bytes.
pub fn esp_length_prefix(esp_len: usize) -> Result<[u8; LENGTH_LEN], TcpError> {
    u16::try_from(esp_len + LENGTH_LEN).map(u16::to_be_bytes).map_err(|_| TcpError::TooLarge(esp_len))
}

/// Reassembles the frames of a byte stream in one bounded buffer; see the module documentation.
///
/// Use: read into [`Deframer::spare`], report the bytes with [`Deframer::filled`], then take frames with
/// [`Deframer::next_frame`] until it returns `Ok(None)`.
pub struct Deframer {
    buf: Box<[u8]>,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// Still expecting `IKETCP` (responder side): how many of its bytes were seen.
    prefix: Option<usize>,
}

impl Deframer {
    /// The smallest buffer: one frame of the largest size.
    pub const MIN_CAPACITY: usize = MAX_FRAME;

    /// A deframer for the initiator's side (the responder sends no prefix) with room for `capacity` bytes
    /// (at least [`Deframer::MIN_CAPACITY`]; more lets one read take several frames).
    pub fn new(capacity: usize) -> Deframer {
        Deframer { buf: vec![0u8; capacity.max(Self::MIN_CAPACITY)].into_boxed_slice(), start: 0, end: 0, prefix: None }
    }

    /// A deframer for the responder's side: the stream starts with [`IKETCP_PREFIX`] (test peers).
    pub fn expecting_prefix(capacity: usize) -> Deframer {
        Deframer { prefix: Some(0), ..Deframer::new(capacity) }
    }

    /// Bytes received and not yet taken as frames.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Forget everything buffered (a new stream).
    pub fn reset(&mut self) {
        self.start = 0;
        self.end = 0;
        if self.prefix.is_some() {
            self.prefix = Some(0);
        }
    }

    /// Where the next read goes. Never empty: a partial frame is moved to the front once the tail is short, and
    /// the buffer holds the largest frame.
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() || (self.start > 0 && self.buf.len() - self.end < MAX_FRAME) {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        self.buf.get_mut(self.end..).unwrap_or_default()
    }

    /// `n` bytes were read into [`Deframer::spare`].
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// The next complete frame, `Ok(None)` until more bytes arrive. An error means the stream is broken.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, TcpError> {
        if let Some(seen) = self.prefix {
            let avail = self.buf.get(self.start..self.end).unwrap_or_default();
            let want = IKETCP_PREFIX.len() - seen;
            let take = avail.len().min(want);
            if avail.get(..take) != IKETCP_PREFIX.get(seen..seen + take) {
                return Err(TcpError::BadPrefix);
            }
            self.start += take;
            if take < want {
                self.prefix = Some(seen + take);
                return Ok(None);
            }
            self.prefix = None;
        }
        let Some(&[hi, lo]) = self.buf.get(self.start..self.end).and_then(|b| b.first_chunk::<2>()) else {
            return Ok(None);
        };
        let len = u16::from_be_bytes([hi, lo]);
        let frame_len = usize::from(len);
        if frame_len < LENGTH_LEN {
            return Err(TcpError::BadLength(len));
        }
        if self.end - self.start < frame_len {
            return Ok(None);
        }
        let body: Range<usize> = self.start + LENGTH_LEN..self.start + frame_len;
        self.start += frame_len;
        let data = self.buf.get_mut(body).unwrap_or_default();
        Ok(Some(match data {
            [0xff] => Frame::Keepalive,
            [0, 0, 0, 0, ike @ ..] => Frame::Ike(ike),
            esp if esp.len() >= ESP_HEADER_LEN => Frame::Esp(esp),
            _ => Frame::Runt,
        }))
    }
}

impl std::fmt::Debug for Deframer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deframer").field("buffered", &self.buffered()).finish()
    }
}
