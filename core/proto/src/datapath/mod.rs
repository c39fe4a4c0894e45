//! The packet path's decisions, sans-IO: which Child SA seals an outgoing packet and which opens an incoming
//! one (make-before-break rekeying, RFC 7296 §2.8), the traffic selector check of every inner packet
//! (RFC 4301 §5.1, §5.2), TCP MSS clamping ([`mss_clamp`]) and what a datagram on UDP 4500 carries
//! (RFC 3948 §2.2). The runtime's data plane tasks (`ikelink::driver`) only move bytes between the TUN and the
//! socket and count what these types decide; everything works in the caller's buffers, without allocating.

mod mss;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;

use rand_core::CryptoRng;

pub use mss::mss_clamp;

use crate::esp::udp::{classify, Udp4500Kind};
use crate::esp::{peek_spi, EspError, EspSa, Opened};
use crate::ike::ts_contains;
use crate::wire::TrafficSelector;

/// One direction of a Child SA as the data plane uses it.
pub struct ChildHalf {
    pub sa: EspSa,
    /// Selectors the inner packets must match: outbound, the source against TSi and the destination against
    /// TSr; inbound, the source against TSr and the destination against TSi.
    pub ts_local: Vec<TrafficSelector>,
    pub ts_remote: Vec<TrafficSelector>,
    /// Where the ESP packets go (outbound).
    pub peer: SocketAddr,
    /// Outbound: send on this SA right away; otherwise only once the current one is removed (a rekey's new
    /// SA waits for the old one's Delete, RFC 7296 §2.8).
    pub activate: bool,
}

/// Why a packet was dropped; each reason is one counter of the runtime's statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// No SA to seal with, or ESP for an SPI we do not have.
    NoSa,
    /// The inner packet's addresses are outside the Child SA's traffic selectors.
    Selector,
    Replay,
    /// ICV check or decryption failed.
    Auth,
    Malformed,
    Padding,
    Other,
}

impl From<&EspError> for DropReason {
    fn from(e: &EspError) -> DropReason {
        match e {
            EspError::Replay(_) => DropReason::Replay,
            EspError::AuthFailed | EspError::Crypto(_) => DropReason::Auth,
            EspError::BadPadding => DropReason::Padding,
            EspError::Malformed(_) | EspError::SpiMismatch { .. } | EspError::UnsupportedNextHeader(_) => {
                DropReason::Malformed
            }
            _ => DropReason::Other,
        }
    }
}

/// The source and destination address of an IPv4 or IPv6 packet.
fn inner_addrs(pkt: &[u8]) -> Option<(IpAddr, IpAddr)> {
    match pkt.first()? >> 4 {
        4 => {
            let src: [u8; 4] = pkt.get(12..16)?.try_into().ok()?;
            let dst: [u8; 4] = pkt.get(16..20)?.try_into().ok()?;
            Some((IpAddr::from(src), IpAddr::from(dst)))
        }
        6 => {
            let src: [u8; 16] = pkt.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = pkt.get(24..40)?.try_into().ok()?;
            Some((IpAddr::from(src), IpAddr::from(dst)))
        }
        _ => None,
    }
}

fn matches(ts: &[TrafficSelector], a: IpAddr) -> bool {
    ts.iter().any(|t| ts_contains(t, a))
}

/// The outbound side: the SA packets are sealed with, and a rekey's successor waiting for it to go.
#[derive(Default)]
pub struct Outbound {
    current: Option<ChildHalf>,
    next: Option<ChildHalf>,
}

impl Outbound {
    /// Installs an SA: it is used at once if it says so (`activate`) or if there is none yet; otherwise it
    /// waits until the current one is removed.
    pub fn install(&mut self, half: ChildHalf) {
        if half.activate || self.current.is_none() {
            self.current = Some(half);
        } else {
            self.next = Some(half);
        }
    }

    /// Stops using the SA with this SPI; removing the current SA switches to the waiting one.
    pub fn remove(&mut self, spi: u32) {
        if self.current.as_ref().is_some_and(|h| h.sa.spi() == spi) {
            self.current = self.next.take();
        } else if self.next.as_ref().is_some_and(|h| h.sa.spi() == spi) {
            self.next = None;
        }
    }

    /// The SA packets are sealed with now.
    pub fn current(&self) -> Option<&ChildHalf> {
        self.current.as_ref()
    }

    /// Where the inner packet goes in a slot: behind the ESP header and IV of the current SA (0 without one).
    pub fn payload_offset(&self) -> usize {
        self.current.as_ref().map_or(0, |h| h.sa.payload_offset())
    }

    /// Checks the selectors of the inner packet at `slot[payload_offset()..][..n]`, clamps its MSS to
    /// `max_mss` and seals it in place; returns the ESP packet's length.
    pub fn seal(
        &mut self,
        slot: &mut [u8],
        n: usize,
        max_mss: u16,
        rng: &mut dyn CryptoRng,
    ) -> Result<usize, DropReason> {
        let h = self.current.as_mut().ok_or(DropReason::NoSa)?;
        let off = h.sa.payload_offset();
        let pkt = slot.get_mut(off..off + n).ok_or(DropReason::Malformed)?;
        match inner_addrs(pkt) {
            Some((src, dst)) if matches(&h.ts_remote, dst) && matches(&h.ts_local, src) => {}
            _ => return Err(DropReason::Selector),
        }
        mss_clamp(pkt, max_mss);
        h.sa.seal_in_place(slot, n, rng).map_err(|e| DropReason::from(&e))
    }
}

/// What a datagram received on UDP 4500 turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// An IKE message at this range of the datagram, for the IKE SA.
    Ike(Range<usize>),
    /// A NAT-keepalive (RFC 3948 §2.3).
    Keepalive,
    /// An inner packet at this range, checked and clamped, for the TUN.
    Packet(Range<usize>),
    /// An authenticated dummy packet (RFC 4303 §2.6).
    Dummy,
    Dropped(DropReason),
}

/// How many inbound SAs are kept: the current one and its predecessor, which keeps working until the
/// gateway has switched to the new one (RFC 7296 §2.8).
const INBOUND_SAS: usize = 2;

/// The inbound side: the SAs packets are opened with.
#[derive(Default)]
pub struct Inbound {
    sas: Vec<ChildHalf>,
}

impl Inbound {
    /// Installs an SA; with two already, the older one goes.
    pub fn install(&mut self, half: ChildHalf) {
        if self.sas.len() >= INBOUND_SAS {
            self.sas.remove(0);
        }
        self.sas.push(half);
    }

    pub fn remove(&mut self, spi: u32) {
        self.sas.retain(|h| h.sa.spi() != spi);
    }

    /// Classifies a datagram from UDP 4500 and opens ESP in place: the inner packet must match the SA's
    /// selectors (source in TSr, destination in TSi); its MSS is clamped to `max_mss`.
    pub fn receive(&mut self, dgram: &mut [u8], max_mss: u16) -> Verdict {
        match classify(dgram) {
            Ok(Udp4500Kind::Ike(msg)) => return Verdict::Ike(dgram.len() - msg.len()..dgram.len()),
            Ok(Udp4500Kind::Keepalive) => return Verdict::Keepalive,
            Ok(Udp4500Kind::Esp) => {}
            Err(_) => return Verdict::Dropped(DropReason::Malformed),
        }
        self.open(dgram, max_mss)
    }

    /// Opens a raw ESP packet (no UDP 4500 framing).
    pub fn open(&mut self, packet: &mut [u8], max_mss: u16) -> Verdict {
        let spi = peek_spi(packet);
        let Some(h) = self.sas.iter_mut().rev().find(|h| Some(h.sa.spi()) == spi) else {
            return Verdict::Dropped(DropReason::NoSa);
        };
        match h.sa.open(packet) {
            Ok(Opened::Packet { inner, .. }) => {
                let Some(pkt) = packet.get_mut(inner.clone()) else { return Verdict::Dropped(DropReason::Malformed) };
                match inner_addrs(pkt) {
                    Some((src, dst)) if matches(&h.ts_remote, src) && matches(&h.ts_local, dst) => {}
                    _ => return Verdict::Dropped(DropReason::Selector),
                }
                mss_clamp(pkt, max_mss);
                Verdict::Packet(inner)
            }
            Ok(Opened::Dummy) => Verdict::Dummy,
            Err(e) => Verdict::Dropped(DropReason::from(&e)),
        }
    }
}
