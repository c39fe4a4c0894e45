//! TUN segmentation offload: packets read from a Linux TUN opened with `IFF_VNET_HDR` and TSO/USO enabled.
//!
//! Every read starts with a `virtio_net_hdr` (virtio spec §5.1.6; in host byte order, as Linux `tun` uses
//! unless told otherwise). The kernel may then hand over a TCP (or UDP) "super-packet" of up to 64 KB with one
//! IP and transport header, to be cut into `gso_size` payload pieces, and may leave the transport checksum
//! to be completed (`NEEDS_CSUM`: the field holds the pseudo-header sum). [`Segments`] turns such a read into
//! ordinary IP packets, each with its own IP length, IPv4 ID and header checksum, TCP sequence number and
//! flags, and transport checksum (RFC 1071 sums), exactly what the kernel's own software segmentation
//! produces. Nothing here allocates or panics, whatever the bytes.

/// Length of the `virtio_net_hdr` in front of every packet (no mergeable buffers).
pub const VNET_HDR_LEN: usize = 10;

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: complete the checksum from `csum_start`, store it at `+csum_offset`.
const F_NEEDS_CSUM: u8 = 1;
const GSO_NONE: u8 = 0;
const GSO_TCPV4: u8 = 1;
const GSO_UDP_L4: u8 = 5;
const GSO_TCPV6: u8 = 4;
/// ECN bit of `gso_type` (the CWR flag must only stay on the first segment, which we always do).
const GSO_ECN: u8 = 0x80;

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;
const UDP_HEADER_LEN: usize = 8;

/// Why a TUN read could not be turned into packets (the read is dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OffloadError {
    #[error("malformed offloaded TUN packet: {0}")]
    Malformed(&'static str),
    #[error("unsupported GSO type {0}")]
    UnsupportedGso(u8),
    #[error("segment does not fit the output buffer")]
    BufferTooSmall,
}

/// The fields of a `virtio_net_hdr` that matter to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct VnetHdr {
    flags: u8,
    gso_type: u8,
    gso_size: u16,
    csum_start: u16,
    csum_offset: u16,
}

impl VnetHdr {
    fn parse(b: &[u8]) -> Option<VnetHdr> {
        let h: &[u8; VNET_HDR_LEN] = b.get(..VNET_HDR_LEN)?.try_into().ok()?;
        let u16_at = |i: usize| u16::from_ne_bytes([h[i], h[i + 1]]);
        Some(VnetHdr {
            flags: h[0],
            gso_type: h[1],
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
        })
    }
}

/// The transport of a super-packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Tcp,
    Udp,
}

/// The IP packets in one TUN read (virtio-net header + packet): one, or the segments of a super-packet.
#[derive(Debug)]
pub struct Segments<'a> {
    packet: &'a [u8],
    /// `None`: a single packet (checksum already completed in place).
    gso: Option<Gso>,
    /// Next segment (GSO) or whether the single packet was handed out.
    index: usize,
}

#[derive(Debug, Clone, Copy)]
struct Gso {
    transport: Transport,
    v6: bool,
    /// IP header length (= transport header offset).
    ip_len: usize,
    /// IP + transport header length.
    hdr_len: usize,
    mss: usize,
}

impl<'a> Segments<'a> {
    /// Parses a TUN read `frame` (header + packet). A single packet's pending checksum is completed in place.
    pub fn new(frame: &'a mut [u8]) -> Result<Segments<'a>, OffloadError> {
        let hdr = VnetHdr::parse(frame).ok_or(OffloadError::Malformed("shorter than the virtio-net header"))?;
        let packet = frame.get_mut(VNET_HDR_LEN..).unwrap_or_default();
        if packet.is_empty() {
            return Err(OffloadError::Malformed("empty packet"));
        }
        let gso_type = hdr.gso_type & !GSO_ECN;
        if gso_type == GSO_NONE {
            if hdr.flags & F_NEEDS_CSUM != 0 {
                complete_checksum(packet, usize::from(hdr.csum_start), usize::from(hdr.csum_offset))?;
            }
            return Ok(Segments { packet, gso: None, index: 0 });
        }
        let (transport, v6) = match gso_type {
            GSO_TCPV4 => (Transport::Tcp, false),
            GSO_TCPV6 => (Transport::Tcp, true),
            GSO_UDP_L4 => (Transport::Udp, packet[0] >> 4 == 6),
            other => return Err(OffloadError::UnsupportedGso(other)),
        };
        let ip_len = usize::from(hdr.csum_start);
        let proto = match (packet[0] >> 4, v6) {
            (4, false) => {
                let ihl = usize::from(packet[0] & 0x0f) * 4;
                if ihl < 20 || ihl != ip_len {
                    return Err(OffloadError::Malformed("IPv4 header length"));
                }
                *packet.get(9).ok_or(OffloadError::Malformed("truncated IPv4 header"))?
            }
            // Extension headers are not expected on offloaded packets; the pseudo-header needs the final ones.
            (6, true) if ip_len == 40 => *packet.get(6).ok_or(OffloadError::Malformed("truncated IPv6 header"))?,
            _ => return Err(OffloadError::Malformed("IP version does not match the GSO type")),
        };
        let (want_proto, l4_len) = match transport {
            Transport::Tcp => {
                let off = *packet.get(ip_len + 12).ok_or(OffloadError::Malformed("truncated TCP header"))?;
                (IPPROTO_TCP, usize::from(off >> 4) * 4)
            }
            Transport::Udp => (IPPROTO_UDP, UDP_HEADER_LEN),
        };
        if proto != want_proto || l4_len < 20 && transport == Transport::Tcp {
            return Err(OffloadError::Malformed("transport header"));
        }
        let hdr_len = ip_len + l4_len;
        let mss = usize::from(hdr.gso_size);
        if mss == 0 || packet.len() <= hdr_len {
            return Err(OffloadError::Malformed("GSO size or payload"));
        }
        Ok(Segments { packet, gso: Some(Gso { transport, v6, ip_len, hdr_len, mss }), index: 0 })
    }

    /// Length of the largest segment [`next_into`](Self::next_into) will write.
    pub fn max_segment_len(&self) -> usize {
        match self.gso {
            None => self.packet.len(),
            Some(g) => g.hdr_len + g.mss.min(self.packet.len() - g.hdr_len),
        }
    }

    /// Writes the next IP packet to the front of `out`; returns its length, or `None` when all are out.
    pub fn next_into(&mut self, out: &mut [u8]) -> Option<Result<usize, OffloadError>> {
        let Some(g) = self.gso else {
            if self.index > 0 {
                return None;
            }
            self.index = 1;
            let n = self.packet.len();
            return Some(match out.get_mut(..n) {
                Some(o) => {
                    o.copy_from_slice(self.packet);
                    Ok(n)
                }
                None => Err(OffloadError::BufferTooSmall),
            });
        };
        let payload = self.packet.len() - g.hdr_len;
        let start = self.index.checked_mul(g.mss).filter(|&s| s < payload)?;
        let chunk = g.mss.min(payload - start);
        let last = start + chunk == payload;
        let i = self.index;
        self.index += 1;
        let seg_len = g.hdr_len + chunk;
        let Some(o) = out.get_mut(..seg_len) else { return Some(Err(OffloadError::BufferTooSmall)) };
        o[..g.hdr_len].copy_from_slice(&self.packet[..g.hdr_len]);
        o[g.hdr_len..].copy_from_slice(&self.packet[g.hdr_len + start..g.hdr_len + start + chunk]);
        fix_segment(o, g, i, start, last);
        Some(Ok(seg_len))
    }
}

/// IP length, IPv4 ID and checksum, TCP sequence number and flags or UDP length, transport checksum.
fn fix_segment(o: &mut [u8], g: Gso, i: usize, start: usize, last: bool) {
    let seg_len = o.len();
    let l4_len = seg_len - g.ip_len;
    if g.v6 {
        o[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
    } else {
        o[2..4].copy_from_slice(&(seg_len as u16).to_be_bytes());
        let id = u16::from_be_bytes([o[4], o[5]]).wrapping_add(i as u16);
        o[4..6].copy_from_slice(&id.to_be_bytes());
        o[10..12].fill(0);
        let c = !fold(sum(&o[..g.ip_len], 0));
        o[10..12].copy_from_slice(&c.to_be_bytes());
    }
    let (csum_at, proto) = match g.transport {
        Transport::Tcp => {
            let t = g.ip_len;
            let seq = u32::from_be_bytes([o[t + 4], o[t + 5], o[t + 6], o[t + 7]]).wrapping_add(start as u32);
            o[t + 4..t + 8].copy_from_slice(&seq.to_be_bytes());
            if !last {
                o[t + 13] &= !(TCP_FIN | TCP_PSH);
            }
            if i > 0 {
                o[t + 13] &= !TCP_CWR;
            }
            (t + 16, IPPROTO_TCP)
        }
        Transport::Udp => {
            let t = g.ip_len;
            o[t + 4..t + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            (t + 6, IPPROTO_UDP)
        }
    };
    o[csum_at..csum_at + 2].fill(0);
    let pseudo = pseudo_header_sum(o, g.v6, proto, l4_len);
    let mut c = !fold(sum(&o[g.ip_len..], pseudo));
    if c == 0 && proto == IPPROTO_UDP {
        c = 0xffff; // RFC 768: zero means "no checksum"
    }
    o[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
}

/// Completes a partial checksum (`NEEDS_CSUM`): the field at `start + offset` holds the pseudo-header sum.
fn complete_checksum(packet: &mut [u8], start: usize, offset: usize) -> Result<(), OffloadError> {
    let at = start + offset;
    if at + 2 > packet.len() {
        return Err(OffloadError::Malformed("checksum offset beyond the packet"));
    }
    let mut c = !fold(sum(&packet[start..], 0));
    if c == 0 {
        c = 0xffff; // as the kernel does (CSUM_MANGLED_0); equivalent for TCP, required for UDP
    }
    packet[at..at + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// Sum of the pseudo-header (RFC 9293 §3.1, RFC 8200 §8.1): addresses, protocol, transport length.
fn pseudo_header_sum(ip: &[u8], v6: bool, proto: u8, l4_len: usize) -> u64 {
    let tail = u64::from(proto) + l4_len as u64;
    let addrs = if v6 { ip.get(8..40) } else { ip.get(12..20) };
    sum(addrs.unwrap_or_default(), tail)
}

/// One's complement sum of `data` as big-endian 16-bit words (RFC 1071), added to `acc`; not yet folded.
/// Sums 32-bit words into a 64-bit accumulator (RFC 1071 §2 (C)): no carry is lost below 2^32 words.
fn sum(data: &[u8], mut acc: u64) -> u64 {
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    match *words.remainder() {
        [a, b, c] => acc += u64::from(u32::from_be_bytes([a, b, c, 0])),
        [a, b] => acc += u64::from(u32::from_be_bytes([a, b, 0, 0])),
        [a] => acc += u64::from(u32::from_be_bytes([a, 0, 0, 0])),
        _ => {}
    }
    acc
}

fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward RFC 1071 checksum over 16-bit words, as a reference.
    fn reference(data: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for c in data.chunks(2) {
            s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
        while s >> 16 != 0 {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    fn verify_ip(p: &[u8]) -> bool {
        p[0] >> 4 == 6 || reference(&p[..usize::from(p[0] & 15) * 4]) == 0
    }

    /// Transport checksum check over pseudo-header + segment.
    fn verify_l4(p: &[u8]) -> bool {
        let v6 = p[0] >> 4 == 6;
        let (ip_len, proto) = if v6 { (40, p[6]) } else { (usize::from(p[0] & 15) * 4, p[9]) };
        let l4 = &p[ip_len..];
        let mut pseudo = Vec::new();
        if v6 {
            pseudo.extend_from_slice(&p[8..40]);
            pseudo.extend_from_slice(&(l4.len() as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, proto]);
        } else {
            pseudo.extend_from_slice(&p[12..20]);
            pseudo.extend_from_slice(&[0, proto]);
            pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        }
        pseudo.extend_from_slice(l4);
        reference(&pseudo) == 0
    }

    fn vnet(flags: u8, gso_type: u8, gso_size: u16, csum_start: u16, csum_offset: u16) -> Vec<u8> {
        let mut h = vec![flags, gso_type];
        for v in [0u16, gso_size, csum_start, csum_offset] {
            h.extend_from_slice(&v.to_ne_bytes());
        }
        h
    }

    fn tcp_v4(payload: usize, flags: u8) -> Vec<u8> {
        let mut p = vec![0u8; 20 + 32 + payload];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&((52 + payload) as u16).to_be_bytes());
        p[4..6].copy_from_slice(&0xfffeu16.to_be_bytes());
        p[6] = 0x40;
        p[8] = 64;
        p[9] = IPPROTO_TCP;
        p[12..16].copy_from_slice(&[10, 0, 0, 1]);
        p[16..20].copy_from_slice(&[10, 0, 0, 2]);
        p[20..22].copy_from_slice(&1234u16.to_be_bytes());
        p[22..24].copy_from_slice(&80u16.to_be_bytes());
        p[24..28].copy_from_slice(&0xffff_ff00u32.to_be_bytes());
        p[32] = 8 << 4; // 32-byte header (timestamps)
        p[33] = flags;
        for (i, b) in p[52..].iter_mut().enumerate() {
            *b = (i * 7 + 3) as u8;
        }
        p
    }

    fn tcp_v6(payload: usize) -> Vec<u8> {
        let mut p = vec![0u8; 40 + 20 + payload];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&((20 + payload) as u16).to_be_bytes());
        p[6] = IPPROTO_TCP;
        p[7] = 64;
        p[8] = 0xfd;
        p[23] = 1;
        p[24] = 0xfd;
        p[39] = 2;
        p[40 + 4..40 + 8].copy_from_slice(&77u32.to_be_bytes());
        p[40 + 12] = 5 << 4;
        p[40 + 13] = 0x18 | TCP_FIN;
        for (i, b) in p[60..].iter_mut().enumerate() {
            *b = (i * 13 + 1) as u8;
        }
        p
    }

    fn all(frame: &mut [u8]) -> Vec<Vec<u8>> {
        let mut s = Segments::new(frame).unwrap();
        let mut out = vec![0u8; 2000];
        let mut v = Vec::new();
        while let Some(r) = s.next_into(&mut out) {
            let n = r.unwrap();
            v.push(out[..n].to_vec());
        }
        v
    }

    #[test]
    fn checksum_matches_reference() {
        for len in 0..100usize {
            let d: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
            assert_eq!(!fold(sum(&d, 0)), reference(&d), "len {len}");
        }
        let ff = vec![0xffu8; 70000];
        assert_eq!(!fold(sum(&ff, 0)), reference(&ff));
    }

    #[test]
    fn tcp_v4_super_packet_is_cut_like_the_kernel_does() {
        let payload = 3 * 1000 + 123;
        let pkt = tcp_v4(payload, 0x18 | TCP_FIN | TCP_CWR);
        let mut frame = vnet(F_NEEDS_CSUM, GSO_TCPV4, 1000, 20, 16);
        frame.extend_from_slice(&pkt);
        let segs = all(&mut frame);
        assert_eq!(segs.len(), 4);
        let mut data = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            let chunk = if i < 3 { 1000 } else { 123 };
            assert_eq!(s.len(), 52 + chunk);
            assert_eq!(u16::from_be_bytes([s[2], s[3]]) as usize, s.len());
            assert_eq!(u16::from_be_bytes([s[4], s[5]]), 0xfffeu16.wrapping_add(i as u16));
            assert_eq!(u32::from_be_bytes([s[24], s[25], s[26], s[27]]), 0xffff_ff00u32.wrapping_add(i as u32 * 1000));
            let flags = s[33];
            assert_eq!(flags & TCP_FIN != 0, i == 3, "FIN only on the last");
            assert_eq!(flags & TCP_PSH != 0, i == 3, "PSH only on the last");
            assert_eq!(flags & TCP_CWR != 0, i == 0, "CWR only on the first");
            assert!(flags & 0x10 != 0, "ACK kept");
            assert_eq!(&s[20..24], &pkt[20..24]);
            assert_eq!(&s[28..33], &pkt[28..33]);
            assert!(verify_ip(s) && verify_l4(s), "checksums of segment {i}");
            data.extend_from_slice(&s[52..]);
        }
        assert_eq!(&data[..], &pkt[52..]);
    }

    #[test]
    fn tcp_v6_and_udp_super_packets() {
        let pkt = tcp_v6(2500);
        let mut frame = vnet(F_NEEDS_CSUM, GSO_TCPV6 | GSO_ECN, 1200, 40, 16);
        frame.extend_from_slice(&pkt);
        let segs = all(&mut frame);
        assert_eq!(segs.iter().map(Vec::len).collect::<Vec<_>>(), vec![1260, 1260, 160]);
        for s in &segs {
            assert_eq!(u16::from_be_bytes([s[4], s[5]]) as usize, s.len() - 40);
            assert!(verify_l4(s));
        }

        // UDP GSO (USO), IPv4.
        let mut udp = tcp_v4(0, 0)[..20].to_vec();
        udp[9] = IPPROTO_UDP;
        udp.extend_from_slice(&[0x12, 0x34, 0x11, 0x94, 0, 0, 0, 0]);
        udp.extend((0..2100).map(|i| i as u8));
        let mut frame = vnet(F_NEEDS_CSUM, GSO_UDP_L4, 1000, 20, 6);
        frame.extend_from_slice(&udp);
        let segs = all(&mut frame);
        assert_eq!(segs.iter().map(Vec::len).collect::<Vec<_>>(), vec![1028, 1028, 128]);
        for s in &segs {
            assert_eq!(u16::from_be_bytes([s[24], s[25]]) as usize, s.len() - 20);
            assert!(verify_ip(s) && verify_l4(s));
        }
    }

    #[test]
    fn single_packet_checksum_completed_in_place() {
        let mut pkt = tcp_v4(333, 0x18);
        // The kernel leaves the pseudo-header sum (not complemented) in the field.
        let pseudo = fold(pseudo_header_sum(&pkt, false, IPPROTO_TCP, pkt.len() - 20));
        pkt[36..38].copy_from_slice(&pseudo.to_be_bytes());
        let mut frame = vnet(F_NEEDS_CSUM, GSO_NONE, 0, 20, 16);
        frame.extend_from_slice(&pkt);
        let segs = all(&mut frame);
        assert_eq!(segs.len(), 1);
        assert!(verify_l4(&segs[0]));
        // Without NEEDS_CSUM the packet is passed on untouched.
        let mut frame = vnet(0, GSO_NONE, 0, 0, 0);
        frame.extend_from_slice(&pkt);
        assert_eq!(all(&mut frame), vec![pkt.clone()]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Segments::new(&mut [0u8; 5]).is_err());
        assert!(Segments::new(&mut vnet(0, 0, 0, 0, 0)).is_err());
        let mut f = vnet(F_NEEDS_CSUM, GSO_NONE, 0, 20, 16);
        f.extend_from_slice(&[0x45; 30]);
        assert!(Segments::new(&mut f).is_err(), "checksum field beyond the end");
        for gso in [GSO_TCPV4, GSO_TCPV6, GSO_UDP_L4, 3, 0x7f] {
            for start in [0u16, 20, 40, 60] {
                for len in [0usize, 1, 20, 39, 40, 52, 60, 100] {
                    let mut f = vnet(F_NEEDS_CSUM, gso, 100, start, 16);
                    f.extend((0..len).map(|i| if i == 0 { 0x45 } else { (i * 37) as u8 }));
                    if let Ok(mut s) = Segments::new(&mut f) {
                        let mut out = [0u8; 200];
                        while let Some(r) = s.next_into(&mut out) {
                            let _ = r;
                        }
                    }
                }
            }
        }
        // Output buffer too small.
        let mut frame = vnet(0, GSO_TCPV4, 1000, 20, 16);
        frame.extend_from_slice(&tcp_v4(3000, 0x10));
        let mut s = Segments::new(&mut frame).unwrap();
        assert_eq!(s.max_segment_len(), 1052);
        assert_eq!(s.next_into(&mut [0u8; 100]), Some(Err(OffloadError::BufferTooSmall)));
    }
}
