//! TCP MSS clamping for packets entering the tunnel (RFC 879 §3, RFC 6691; incremental checksum per
//! RFC 1624 §3).
//!
//! ESP encapsulation shrinks the usable path MTU; lowering the MSS option of TCP SYN and SYN-ACK segments
//! keeps TCP from relying on (often broken) PMTU discovery. Everything here works in place, never
//! allocates and never panics, whatever the bytes.

/// IP protocol number of TCP (IANA).
const IPPROTO_TCP: u8 = 6;
/// TCP option kinds (RFC 9293 §3.2).
const TCP_OPT_END: u8 = 0;
const TCP_OPT_NOP: u8 = 1;
const TCP_OPT_MSS: u8 = 2;
/// TCP SYN flag bit in header byte 13 (RFC 9293 §3.1).
const TCP_FLAG_SYN: u8 = 0x02;
/// Upper bound on IPv6 extension headers walked before giving up (keeps the loop bounded).
const MAX_IPV6_EXT_HEADERS: usize = 8;

/// Lowers the MSS option of an IPv4 or IPv6 TCP SYN (or SYN-ACK) in `packet` to `max_mss` and fixes the
/// TCP checksum incrementally (RFC 1624 eqn. 3).
///
/// Returns `true` if the packet was changed. Anything else (non-TCP, non-SYN, later fragments, MSS already
/// small enough, truncated or malformed packets) is left untouched and returns `false`.
pub fn mss_clamp(packet: &mut [u8], max_mss: u16) -> bool {
    let Some(tcp_offset) = tcp_header_offset(packet) else {
        return false;
    };
    let Some(tcp) = packet.get_mut(tcp_offset..) else {
        return false;
    };
    clamp_tcp(tcp, max_mss)
}

/// Returns the offset of the TCP header of an unfragmented (or first-fragment) TCP packet.
fn tcp_header_offset(packet: &[u8]) -> Option<usize> {
    let first = *packet.first()?;
    match first >> 4 {
        4 => ipv4_tcp_offset(packet),
        6 => ipv6_tcp_offset(packet),
        _ => None,
    }
}

/// IPv4 (RFC 791 §3.1): header length, protocol and fragment offset checks.
fn ipv4_tcp_offset(packet: &[u8]) -> Option<usize> {
    let ihl = usize::from(*packet.first()? & 0x0f) * 4;
    if ihl < 20 || packet.len() < ihl {
        return None;
    }
    let total_len = usize::from(read_u16(packet, 2)?);
    if total_len < ihl || total_len > packet.len() {
        return None;
    }
    if *packet.get(9)? != IPPROTO_TCP {
        return None;
    }
    // Only the first fragment carries the TCP header.
    if read_u16(packet, 6)? & 0x1fff != 0 {
        return None;
    }
    Some(ihl)
}

/// IPv6 (RFC 8200 §3-4): walks hop-by-hop, routing, fragment and destination option headers.
fn ipv6_tcp_offset(packet: &[u8]) -> Option<usize> {
    const HOP_BY_HOP: u8 = 0;
    const ROUTING: u8 = 43;
    const FRAGMENT: u8 = 44;
    const DEST_OPTS: u8 = 60;

    let payload_len = usize::from(read_u16(packet, 4)?);
    if 40 + payload_len > packet.len() {
        return None;
    }
    let mut next = *packet.get(6)?;
    let mut offset = 40usize;
    for _ in 0..MAX_IPV6_EXT_HEADERS {
        match next {
            IPPROTO_TCP => return Some(offset),
            HOP_BY_HOP | ROUTING | DEST_OPTS => {
                next = *packet.get(offset)?;
                let len = (usize::from(*packet.get(offset + 1)?) + 1) * 8;
                offset = offset.checked_add(len)?;
            }
            FRAGMENT => {
                next = *packet.get(offset)?;
                if read_u16(packet, offset + 2)? & 0xfff8 != 0 {
                    return None;
                }
                offset = offset.checked_add(8)?;
            }
            _ => return None,
        }
    }
    None
}

/// Clamps the MSS option in a TCP segment starting at `tcp[0]`.
fn clamp_tcp(tcp: &mut [u8], max_mss: u16) -> bool {
    let Some(&flags) = tcp.get(13) else {
        return false;
    };
    if flags & TCP_FLAG_SYN == 0 {
        return false;
    }
    let Some(&data_offset) = tcp.get(12) else {
        return false;
    };
    let header_len = usize::from(data_offset >> 4) * 4;
    if header_len < 20 || header_len > tcp.len() {
        return false;
    }
    let Some(mss_at) = find_mss_option(tcp, header_len) else {
        return false;
    };
    let Some(old) = read_u16(tcp, mss_at) else {
        return false;
    };
    if old <= max_mss {
        return false;
    }
    let Some(checksum) = read_u16(tcp, 16) else {
        return false;
    };
    // A 16-bit value at an odd offset straddles two checksum words: its bytes contribute swapped.
    let (old_word, new_word) = if mss_at % 2 == 0 { (old, max_mss) } else { (old.swap_bytes(), max_mss.swap_bytes()) };
    let updated = checksum_update(checksum, old_word, new_word);
    write_u16(tcp, mss_at, max_mss) && write_u16(tcp, 16, updated)
}

/// Finds the offset of the 2-byte MSS value within the TCP options (RFC 9293 §3.2).
fn find_mss_option(tcp: &[u8], header_len: usize) -> Option<usize> {
    let mut at = 20usize;
    // Each iteration advances by at least one byte; the header is at most 60 bytes.
    while at < header_len {
        let kind = *tcp.get(at)?;
        match kind {
            TCP_OPT_END => return None,
            TCP_OPT_NOP => at += 1,
            _ => {
                let len = usize::from(*tcp.get(at + 1)?);
                if len < 2 || at + len > header_len {
                    return None;
                }
                if kind == TCP_OPT_MSS {
                    return (len == 4).then_some(at + 2);
                }
                at += len;
            }
        }
    }
    None
}

/// RFC 1624 eqn. 3: `HC' = ~(~HC + ~m + m')` in one's complement arithmetic.
fn checksum_update(checksum: u16, old: u16, new: u16) -> u16 {
    let mut sum = u32::from(!checksum) + u32::from(!old) + u32::from(new);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    // The sum is folded into 16 bits above, so the cast cannot lose information.
    !(sum as u16)
}

fn read_u16(buf: &[u8], at: usize) -> Option<u16> {
    let bytes = buf.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]))
}

fn write_u16(buf: &mut [u8], at: usize, value: u16) -> bool {
    match at.checked_add(2).and_then(|end| buf.get_mut(at..end)) {
        Some(slot) => {
            slot.copy_from_slice(&value.to_be_bytes());
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SYN captured from a Linux TUN device (100.64.0.1:40568 -> 198.51.100.7:8080, MSS 1360,
    /// kernel-computed TCP checksum 0x3e1f).
    const REAL_SYN: &str = "4500003c99d540004006126b64400001c63364079e781f90f98aec0a00000000a002ff003e1f\
                            0000020405500402080ab8252101000000000103030a";

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// Full one's complement sum over `data` (RFC 1071), starting from `initial`.
    fn ones_sum(initial: u32, data: &[u8]) -> u32 {
        let mut sum = initial;
        for chunk in data.chunks(2) {
            let word = if chunk.len() == 2 {
                u16::from_be_bytes([chunk[0], chunk[1]])
            } else {
                u16::from_be_bytes([chunk[0], 0])
            };
            sum += u32::from(word);
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum
    }

    /// Verifies the TCP checksum of an IPv4 packet from scratch.
    fn tcp4_checksum_ok(packet: &[u8]) -> bool {
        let ihl = usize::from(packet[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
        let tcp = &packet[ihl..total];
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&packet[12..20]);
        pseudo.extend_from_slice(&[0, IPPROTO_TCP]);
        pseudo.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
        ones_sum(ones_sum(0, &pseudo), tcp) == 0xffff
    }

    fn tcp6_checksum_ok(packet: &[u8], tcp_at: usize) -> bool {
        let tcp = &packet[tcp_at..];
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&packet[8..40]);
        pseudo.extend_from_slice(&(tcp.len() as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, IPPROTO_TCP]);
        ones_sum(ones_sum(0, &pseudo), tcp) == 0xffff
    }

    fn set_tcp_checksum(packet: &mut [u8], pseudo: &[u8], tcp_at: usize) {
        packet[tcp_at + 16] = 0;
        packet[tcp_at + 17] = 0;
        let sum = ones_sum(ones_sum(0, pseudo), &packet[tcp_at..]);
        let c = !(sum as u16);
        packet[tcp_at + 16..tcp_at + 18].copy_from_slice(&c.to_be_bytes());
    }

    /// An IPv6 SYN (2001:db8::1 -> 2001:db8::2) with `options`, optionally behind a destination
    /// options header, with a correct checksum.
    fn ipv6_syn(options: &[u8], with_ext: bool) -> (Vec<u8>, usize) {
        let mut ext = Vec::new();
        if with_ext {
            ext.extend_from_slice(&[IPPROTO_TCP, 0, 1, 4, 0, 0, 0, 0]); // PadN
        }
        let tcp_len = 20 + options.len();
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&((ext.len() + tcp_len) as u16).to_be_bytes());
        p.push(if with_ext { 60 } else { IPPROTO_TCP });
        p.push(64);
        let src = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let dst = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(&ext);
        let tcp_at = p.len();
        p.extend_from_slice(&[0x9c, 0x40, 0x01, 0xbb, 1, 2, 3, 4, 0, 0, 0, 0]);
        p.push(((tcp_len / 4) as u8) << 4);
        p.push(TCP_FLAG_SYN);
        p.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
        p.extend_from_slice(options);
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&src);
        pseudo.extend_from_slice(&dst);
        pseudo.extend_from_slice(&(tcp_len as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, IPPROTO_TCP]);
        set_tcp_checksum(&mut p, &pseudo, tcp_at);
        (p, tcp_at)
    }

    #[test]
    fn real_ipv4_syn_is_clamped_with_valid_checksum() {
        let mut p = hex(REAL_SYN);
        assert!(tcp4_checksum_ok(&p));
        assert!(mss_clamp(&mut p, 1300));
        assert_eq!(&p[40..44], &[2, 4, 0x05, 0x14]);
        assert!(tcp4_checksum_ok(&p));
        // Expected value computed independently: 0x3e1f adjusted by 0x0550 - 0x0514.
        assert_eq!(u16::from_be_bytes([p[36], p[37]]), 0x3e5b);
        // Idempotent: already small enough.
        let before = p.clone();
        assert!(!mss_clamp(&mut p, 1300));
        assert!(!mss_clamp(&mut p, 1400));
        assert_eq!(p, before);
    }

    #[test]
    fn non_syn_is_untouched() {
        let mut p = hex(REAL_SYN);
        p[33] = 0x10; // ACK only
        let before = p.clone();
        assert!(!mss_clamp(&mut p, 500));
        assert_eq!(p, before);
    }

    #[test]
    fn ipv4_later_fragment_is_untouched() {
        let mut p = hex(REAL_SYN);
        p[6] = 0x00;
        p[7] = 0x10; // fragment offset 16
        let before = p.clone();
        assert!(!mss_clamp(&mut p, 500));
        assert_eq!(p, before);
    }

    #[test]
    fn ipv6_syn_is_clamped() {
        for with_ext in [false, true] {
            let (mut p, tcp_at) = ipv6_syn(&[2, 4, 0x05, 0xa0, 1, 1, 4, 2], with_ext);
            assert!(tcp6_checksum_ok(&p, tcp_at));
            assert!(mss_clamp(&mut p, 1220));
            assert_eq!(&p[tcp_at + 22..tcp_at + 24], &1220u16.to_be_bytes());
            assert!(tcp6_checksum_ok(&p, tcp_at));
        }
    }

    #[test]
    fn mss_at_odd_offset_keeps_checksum_valid() {
        // NOP, then MSS at TCP offset 21 (value at odd offset 23), then padding.
        let (mut p, tcp_at) = ipv6_syn(&[1, 2, 4, 0x23, 0x45, 0, 0, 0], false);
        assert!(tcp6_checksum_ok(&p, tcp_at));
        assert!(mss_clamp(&mut p, 0x0501));
        assert_eq!(&p[tcp_at + 23..tcp_at + 25], &[0x05, 0x01]);
        assert!(tcp6_checksum_ok(&p, tcp_at));
    }

    #[test]
    fn checksum_update_matches_rfc1624_example() {
        // RFC 1624 §4: HC = 0xdd2f, m = 0x5555 -> m' = 0x3285 gives HC' = 0x0000.
        assert_eq!(checksum_update(0xdd2f, 0x5555, 0x3285), 0x0000);
    }

    #[test]
    fn truncated_and_garbage_packets_never_panic() {
        let real = hex(REAL_SYN);
        for len in 0..real.len() {
            let mut p = real[..len].to_vec();
            let before = p.clone();
            assert!(!mss_clamp(&mut p, 100));
            assert_eq!(p, before, "truncated to {len}");
        }
        let (v6, _) = ipv6_syn(&[2, 4, 0x05, 0xa0], true);
        for len in 0..v6.len() {
            let mut p = v6[..len].to_vec();
            assert!(!mss_clamp(&mut p, 100));
        }
        // Deterministic pseudo-random garbage, with plausible first bytes.
        let mut state = 0x1234_5678_9abc_def0u64;
        for i in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 90) as usize;
            let mut p: Vec<u8> = (0..len).map(|j| (state.rotate_left(j as u32 * 8) & 0xff) as u8).collect();
            if let Some(b) = p.first_mut() {
                *b = if i % 2 == 0 { 0x45 } else { 0x60 | (*b & 0x0f) };
            }
            let _ = mss_clamp(&mut p, 536);
        }
        // Bad option lengths inside an otherwise valid SYN.
        for opts in [[2u8, 0, 0, 0], [2, 1, 0, 0], [3, 9, 0, 0], [2, 3, 5, 0], [0, 2, 4, 5]] {
            let (mut p, _) = ipv6_syn(&opts, false);
            let before = p.clone();
            assert!(!mss_clamp(&mut p, 100));
            assert_eq!(p, before);
        }
    }
}
