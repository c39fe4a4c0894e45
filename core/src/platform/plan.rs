//! Pure route and resolver planning (no I/O): which prefixes go via the TUN, whether the gateway needs a
//! host route, and the content of a generated resolv.conf.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::PlatformError;

/// Parses `"198.51.100.0/24"`, `"::/0"` or a bare address (a host prefix) into (address, prefix length).
pub fn parse_prefix(s: &str) -> Result<(IpAddr, u8), PlatformError> {
    let bad = || PlatformError::InvalidPrefix(s.to_owned());
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => {
            let addr: IpAddr = a.trim().parse().map_err(|_| bad())?;
            let len: u8 = l.trim().parse().map_err(|_| bad())?;
            (addr, len)
        }
        None => {
            let addr: IpAddr = s.trim().parse().map_err(|_| bad())?;
            (addr, max_len(addr))
        }
    };
    if len > max_len(addr) {
        return Err(bad());
    }
    Ok((addr, len))
}

/// Maximum prefix length for the address family.
pub(crate) fn max_len(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// The IPv4 netmask for a prefix length.
pub(crate) fn ipv4_netmask(len: u8) -> Option<Ipv4Addr> {
    match len {
        0 => Some(Ipv4Addr::UNSPECIFIED),
        1..=32 => Some(Ipv4Addr::from(u32::MAX << (32 - u32::from(len)))),
        _ => None,
    }
}

/// Clears the host bits of `addr/len`; `None` if `len` is too long for the family.
pub(crate) fn network(addr: IpAddr, len: u8) -> Option<IpAddr> {
    match addr {
        IpAddr::V4(a) => {
            let mask = ipv4_netmask(len)?;
            Some(IpAddr::V4(Ipv4Addr::from(u32::from(a) & u32::from(mask))))
        }
        IpAddr::V6(a) => {
            let mask = match len {
                0 => 0,
                1..=128 => u128::MAX << (128 - u32::from(len)),
                _ => return None,
            };
            Some(IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask)))
        }
    }
}

/// True if `addr` lies in `prefix/len` (same family).
pub(crate) fn contains(prefix: IpAddr, len: u8, addr: IpAddr) -> bool {
    prefix.is_ipv4() == addr.is_ipv4() && network(addr, len) == network(prefix, len)
}

/// Turns traffic selector prefixes into the routes to install via the TUN: normalized, deduplicated,
/// default routes split into two halves, and prefixes equal to a connected subnet of the TUN dropped.
pub(crate) fn tunnel_prefixes(
    routes: &[(IpAddr, u8)],
    connected: &[(IpAddr, u8)],
) -> Result<Vec<(IpAddr, u8)>, PlatformError> {
    let connected: Vec<(IpAddr, u8)> = connected.iter().filter_map(|&(a, l)| Some((network(a, l)?, l))).collect();
    let mut out: Vec<(IpAddr, u8)> = Vec::new();
    for &(addr, len) in routes {
        let net = network(addr, len).ok_or_else(|| PlatformError::InvalidPrefix(format!("{addr}/{len}")))?;
        let expanded: [Option<(IpAddr, u8)>; 2] = match (net, len) {
            (IpAddr::V4(_), 0) => {
                [Some((IpAddr::V4(Ipv4Addr::UNSPECIFIED), 1)), Some((IpAddr::V4(Ipv4Addr::new(128, 0, 0, 0)), 1))]
            }
            (IpAddr::V6(_), 0) => [
                Some((IpAddr::V6(Ipv6Addr::UNSPECIFIED), 1)),
                Some((IpAddr::V6(Ipv6Addr::new(0x8000, 0, 0, 0, 0, 0, 0, 0)), 1)),
            ],
            _ => [Some((net, len)), None],
        };
        for p in expanded.into_iter().flatten() {
            if connected.contains(&p) {
                tracing::debug!(prefix = %format_args!("{}/{}", p.0, p.1), "skipping TUN's connected subnet");
                continue;
            }
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    Ok(out)
}

/// True if any traffic selector is a default route (prefix length 0): a full tunnel.
pub(crate) fn is_full_tunnel(routes: &[(IpAddr, u8)]) -> bool {
    routes.iter().any(|&(_, len)| len == 0)
}

/// True if the gateway would be routed into the tunnel by `prefixes`, so it needs a host route.
pub(crate) fn gateway_needs_host_route(gateway: IpAddr, prefixes: &[(IpAddr, u8)]) -> bool {
    prefixes.iter().any(|&(p, l)| contains(p, l, gateway))
}

/// Maximum number of name servers the glibc resolver uses (MAXNS).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
const MAX_NAMESERVERS: usize = 3;

/// Builds the resolv.conf written while the tunnel is up: the VPN's servers and domains first; for a
/// split tunnel the original servers and search domains follow; the original `options` lines are kept.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn resolv_conf_content(
    tun_name: &str,
    dns: &[IpAddr],
    domains: &[String],
    original: Option<&[u8]>,
    full_tunnel: bool,
) -> String {
    let original = original.map(String::from_utf8_lossy).unwrap_or_default();
    let mut servers: Vec<String> = dns.iter().map(|a| a.to_string()).collect();
    let mut search: Vec<String> = domains.to_vec();
    let mut options: Vec<&str> = Vec::new();
    for line in original.lines() {
        let line = line.trim();
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") if !full_tunnel => {
                if let Some(s) = words.next() {
                    if servers.len() < MAX_NAMESERVERS && !servers.iter().any(|x| x == s) {
                        servers.push(s.to_owned());
                    }
                }
            }
            Some("search") | Some("domain") if !full_tunnel => {
                for d in words {
                    if !search.iter().any(|x| x == d) {
                        search.push(d.to_owned());
                    }
                }
            }
            Some("options") => options.push(line),
            _ => {}
        }
    }
    let mut out = format!("# Generated by ikelink for {tun_name}; the previous file is restored on disconnect.\n");
    for s in &servers {
        out.push_str("nameserver ");
        out.push_str(s);
        out.push('\n');
    }
    if !search.is_empty() {
        out.push_str("search ");
        out.push_str(&search.join(" "));
        out.push('\n');
    }
    for o in options {
        out.push_str(o);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> (IpAddr, u8) {
        parse_prefix(s).unwrap()
    }

    #[test]
    fn parses_prefixes() {
        assert_eq!(p("198.51.100.0/24"), ("198.51.100.0".parse().unwrap(), 24));
        assert_eq!(p("::/0"), ("::".parse().unwrap(), 0));
        assert_eq!(p("203.0.113.2"), ("203.0.113.2".parse().unwrap(), 32));
        for bad in ["", "1.2.3.4/33", "::/129", "x/1", "1.2.3.4/", "1.2.3.4/-1"] {
            assert!(parse_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn full_tunnel_is_split_into_halves() {
        let r = tunnel_prefixes(&[p("0.0.0.0/0"), p("::/0")], &[]).unwrap();
        assert_eq!(r, vec![p("0.0.0.0/1"), p("128.0.0.0/1"), p("::/1"), p("8000::/1")]);
        assert!(is_full_tunnel(&[p("0.0.0.0/0")]));
        assert!(!is_full_tunnel(&[p("198.51.100.0/24")]));
    }

    #[test]
    fn split_routes_are_normalized_deduplicated_and_skip_connected() {
        let r = tunnel_prefixes(
            &[p("198.51.100.7/24"), p("198.51.100.0/24"), p("100.64.0.0/24"), p("2001:db8::1/64")],
            &[p("100.64.0.1/24")],
        )
        .unwrap();
        assert_eq!(r, vec![p("198.51.100.0/24"), p("2001:db8::/64")]);
        let bad = tunnel_prefixes(&[("1.2.3.4".parse().unwrap(), 40)], &[]);
        assert!(bad.is_err());
    }

    #[test]
    fn gateway_host_route_only_when_covered() {
        let gw: IpAddr = "203.0.113.2".parse().unwrap();
        assert!(gateway_needs_host_route(gw, &[p("0.0.0.0/1"), p("128.0.0.0/1")]));
        assert!(!gateway_needs_host_route(gw, &[p("198.51.100.0/24")]));
        assert!(!gateway_needs_host_route(gw, &[p("::/1"), p("8000::/1")]));
        assert!(gateway_needs_host_route(gw, &[p("203.0.0.0/8")]));
    }

    #[test]
    fn resolv_conf_for_split_and_full_tunnel() {
        let original = b"# comment\nnameserver 192.0.2.53\nsearch lan.example\noptions edns0\n";
        let dns: Vec<IpAddr> = vec!["100.64.0.53".parse().unwrap()];
        let split = resolv_conf_content("ikl0", &dns, &["corp.example".to_owned()], Some(original), false);
        assert!(split.contains(
            "nameserver 100.64.0.53\nnameserver 192.0.2.53\nsearch corp.example lan.example\noptions edns0\n"
        ));
        let full = resolv_conf_content("ikl0", &dns, &[], Some(original), true);
        assert!(full.ends_with("nameserver 100.64.0.53\noptions edns0\n"));
        assert!(!full.contains("192.0.2.53"));
        let none = resolv_conf_content("ikl0", &dns, &[], None, false);
        assert!(none.ends_with("nameserver 100.64.0.53\n"));
    }
}
