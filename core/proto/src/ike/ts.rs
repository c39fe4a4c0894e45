//! Traffic selectors (RFC 7296 §2.9, §3.13) and their conversion to and from CIDR prefixes (for routes).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::wire::{TrafficSelector, TsAddresses};

/// An address prefix such as `198.51.100.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Parse `a.b.c.d/n`, `x::/n` or a bare address (a host prefix). Host bits must be zero.
pub fn parse_cidr(s: &str) -> Result<Cidr, String> {
    let s = s.trim();
    let (a, p) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let addr: IpAddr = a.parse().map_err(|_| format!("`{s}` is not an IP prefix"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match p {
        Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| format!("bad prefix length in `{s}`"))?,
        None => max,
    };
    let c = Cidr { addr, prefix };
    if c.network() != addr {
        return Err(format!("`{s}` has host bits set"));
    }
    Ok(c)
}

impl Cidr {
    fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let m = if self.prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(self.prefix)) };
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & m))
            }
            IpAddr::V6(a) => {
                let m = if self.prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(self.prefix)) };
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & m))
            }
        }
    }

    /// The traffic selector covering this prefix, any protocol and port.
    pub fn to_ts(&self) -> TrafficSelector {
        let addresses = match self.addr {
            IpAddr::V4(a) => {
                let m = if self.prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(self.prefix)) };
                let start = u32::from(a) & m;
                TsAddresses::V4 { start: start.into(), end: (start | !m).into() }
            }
            IpAddr::V6(a) => {
                let m = if self.prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(self.prefix)) };
                let start = u128::from(a) & m;
                TsAddresses::V6 { start: start.into(), end: (start | !m).into() }
            }
        };
        TrafficSelector { ip_protocol: 0, start_port: 0, end_port: 65535, addresses }
    }
}

/// The smallest list of prefixes covering a selector's address range (ports and protocol are ignored).
pub fn ts_to_cidrs(ts: &TrafficSelector) -> Vec<Cidr> {
    match ts.addresses {
        TsAddresses::V4 { start, end } => range_to_cidrs(u128::from(u32::from(start)), u128::from(u32::from(end)), 32)
            .into_iter()
            .map(|(a, p)| Cidr { addr: IpAddr::V4(Ipv4Addr::from(a as u32)), prefix: p })
            .collect(),
        TsAddresses::V6 { start, end } => range_to_cidrs(u128::from(start), u128::from(end), 128)
            .into_iter()
            .map(|(a, p)| Cidr { addr: IpAddr::V6(Ipv6Addr::from(a)), prefix: p })
            .collect(),
    }
}

/// Split [start, end] into aligned blocks. Bounded: at most 2*bits blocks.
fn range_to_cidrs(mut start: u128, end: u128, bits: u8) -> Vec<(u128, u8)> {
    let mut out = Vec::new();
    if start > end {
        return out;
    }
    while out.len() <= 2 * usize::from(bits) {
        // Largest block aligned at start that does not pass end.
        let mut size_bits = if start == 0 { u32::from(bits) } else { start.trailing_zeros().min(u32::from(bits)) };
        loop {
            let last = if size_bits >= 128 { u128::MAX } else { start + ((1u128 << size_bits) - 1) };
            if last <= end {
                break;
            }
            size_bits -= 1;
        }
        out.push((start, bits - size_bits as u8));
        let block_last = if size_bits >= 128 { u128::MAX } else { start + ((1u128 << size_bits) - 1) };
        if block_last >= end {
            break;
        }
        start = block_last + 1;
    }
    out
}

/// Does the selector cover this address?
pub fn ts_contains(ts: &TrafficSelector, addr: IpAddr) -> bool {
    match (&ts.addresses, addr) {
        (TsAddresses::V4 { start, end }, IpAddr::V4(a)) => *start <= a && a <= *end,
        (TsAddresses::V6 { start, end }, IpAddr::V6(a)) => *start <= a && a <= *end,
        _ => false,
    }
}

/// Is `inner` within `outer` (protocol, ports and addresses, §2.9)?
pub fn ts_subset(inner: &TrafficSelector, outer: &TrafficSelector) -> bool {
    let proto = outer.ip_protocol == 0 || outer.ip_protocol == inner.ip_protocol;
    let ports = outer.start_port <= inner.start_port && inner.end_port <= outer.end_port;
    let addrs = match (&inner.addresses, &outer.addresses) {
        (TsAddresses::V4 { start, end }, TsAddresses::V4 { start: s, end: e }) => s <= start && end <= e,
        (TsAddresses::V6 { start, end }, TsAddresses::V6 { start: s, end: e }) => s <= start && end <= e,
        _ => false,
    };
    proto && ports && addrs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_round_trip() {
        for s in ["0.0.0.0/0", "198.51.100.0/24", "100.64.0.7/32", "::/0", "2001:db8::/32"] {
            let c = parse_cidr(s).unwrap();
            assert_eq!(ts_to_cidrs(&c.to_ts()), vec![c], "{s}");
        }
        assert!(parse_cidr("198.51.100.1/24").is_err());
        assert!(parse_cidr("198.51.100.0/33").is_err());
    }

    #[test]
    fn range_split() {
        let ts = TrafficSelector {
            ip_protocol: 0,
            start_port: 0,
            end_port: 65535,
            addresses: TsAddresses::V4 { start: Ipv4Addr::new(10, 0, 0, 1), end: Ipv4Addr::new(10, 0, 0, 6) },
        };
        let c: Vec<String> = ts_to_cidrs(&ts).iter().map(|c| c.to_string()).collect();
        assert_eq!(c, ["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"]);
        assert!(ts_contains(&ts, "10.0.0.3".parse().unwrap()));
        assert!(!ts_contains(&ts, "10.0.0.7".parse().unwrap()));
    }
}
