//! Linux routes, DNS backend and kill switch, planned without I/O so that the decisions are tested without
//! root or a network: which routes `apply` adds (the gateway host route first, then the excluded prefixes on
//! their current path, then the tunnel's), which prefixes stay outside the kill switch, which DNS backend is
//! used and whether the kill switch's firewall table is installed. The facts it needs from the system (the
//! TUN's connected prefixes, `ip route get`, whether systemd-resolved runs) come in as [`LinuxFacts`];
//! `linux.rs` gathers them and executes the plan, journaled.

use std::net::IpAddr;

use super::journal::RouteEntry;
use super::plan;
use super::{DnsBackend, NetworkConfig, PlatformError};

/// The current path to a destination (`ip route get`): the next hop, if any, and the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GatewayPath {
    pub via: Option<IpAddr>,
    pub dev: String,
}

/// What the plan needs to know about the system.
pub(crate) struct LinuxFacts<'a> {
    /// The prefixes connected to the TUN (its own address's network): not routed again.
    pub connected: Vec<(IpAddr, u8)>,
    /// The current path to an address; `None` if it is local.
    pub path: &'a dyn Fn(IpAddr) -> Result<Option<GatewayPath>, PlatformError>,
    /// Whether systemd-resolved is running (for [`DnsBackend::Auto`]).
    pub resolved_running: bool,
}

/// What `apply` does, in this order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LinuxPlan {
    /// The gateway host route, the excluded prefixes on their current path, then the tunnel's routes.
    pub routes: Vec<RouteEntry>,
    /// The excluded prefixes (`a.b.c.d/n`), which the kill switch lets through.
    pub bypass: Vec<String>,
    /// The routes cover everything (`0.0.0.0/0` or both halves).
    pub full_tunnel: bool,
    /// Where DNS goes; `None`: the gateway gave no DNS servers.
    pub dns: Option<DnsBackend>,
    /// The kill switch's nftables table, installed only with a full tunnel.
    pub firewall: Option<String>,
}

/// Plans `cfg` on a system described by `facts`.
pub(crate) fn plan(cfg: &NetworkConfig, facts: &LinuxFacts<'_>) -> Result<LinuxPlan, PlatformError> {
    let tun = cfg.tun_name.as_str();
    let prefixes = plan::tunnel_prefixes(&cfg.routes, &facts.connected)?;
    let full_tunnel = plan::is_full_tunnel(&cfg.routes);

    // The gateway host route goes first, so IKE/ESP never enter the tunnel.
    let mut routes = Vec::new();
    if plan::gateway_needs_host_route(cfg.gateway, &prefixes) {
        if let Some(path) = (facts.path)(cfg.gateway)? {
            routes.push(RouteEntry {
                destination: cfg.gateway,
                prefix_len: plan::max_len(cfg.gateway),
                dev: path.dev,
                via: path.via,
                luid: None,
            });
        }
    }
    // Excluded prefixes keep the path they have now (more specific than the tunnel's routes).
    let mut bypass = Vec::new();
    for &(addr, len) in &cfg.excluded {
        let net = plan::network(addr, len)
            .filter(|_| len > 0)
            .ok_or_else(|| PlatformError::InvalidPrefix(format!("{addr}/{len}")))?;
        bypass.push(format!("{net}/{len}"));
        match (facts.path)(net)? {
            Some(path) => {
                routes.push(RouteEntry { destination: net, prefix_len: len, dev: path.dev, via: path.via, luid: None })
            }
            None => tracing::info!(prefix = %format_args!("{net}/{len}"), "excluded prefix is local: nothing to route"),
        }
    }
    routes.extend(prefixes.iter().map(|&(destination, prefix_len)| RouteEntry {
        destination,
        prefix_len,
        dev: tun.to_owned(),
        via: None,
        luid: None,
    }));

    let dns = match cfg.dns_backend {
        _ if cfg.dns.is_empty() => None,
        DnsBackend::Auto if facts.resolved_running => Some(DnsBackend::SystemdResolved),
        DnsBackend::Auto => Some(DnsBackend::ResolvConf),
        b => Some(b),
    };
    let firewall = match (cfg.kill_switch, full_tunnel) {
        (true, true) => Some(firewall_table(tun)),
        (true, false) => {
            tracing::warn!("kill switch ignored: it needs a full tunnel (the routes cover only some networks)");
            None
        }
        (false, _) => None,
    };
    Ok(LinuxPlan { routes, bypass, full_tunnel, dns, firewall })
}

/// The kill switch's nftables table for TUN `tun`: `ikelink_` and the name with anything but letters, digits
/// and `_` replaced.
pub(crate) fn firewall_table(tun: &str) -> String {
    let safe: String = tun.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    format!("ikelink_{safe}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const GW: [u8; 4] = [203, 0, 113, 2];

    /// Every lookup finds the uplink via the client side's router, as on the client namespace.
    fn via_router(_: IpAddr) -> Result<Option<GatewayPath>, PlatformError> {
        Ok(Some(GatewayPath { via: Some(IpAddr::from([192, 0, 2, 1])), dev: "eth0".into() }))
    }

    fn cfg(routes: &[&str]) -> NetworkConfig {
        NetworkConfig {
            routes: routes.iter().map(|r| plan::parse_prefix(r).unwrap()).collect(),
            dns: vec![IpAddr::from([198, 51, 100, 53])],
            ..NetworkConfig::new("ikl0".to_string(), IpAddr::from(GW))
        }
    }

    fn facts(resolved_running: bool) -> LinuxFacts<'static> {
        LinuxFacts { connected: vec![(IpAddr::from([100, 64, 0, 2]), 32)], path: &via_router, resolved_running }
    }

    #[test]
    fn full_tunnel_keeps_the_gateway_outside_first_and_excluded_prefixes_on_their_path() {
        let mut c = cfg(&["0.0.0.0/0"]);
        c.excluded = vec![(IpAddr::from([198, 51, 100, 77]), 24)];
        c.kill_switch = true;
        let p = plan(&c, &facts(false)).unwrap();
        assert!(p.full_tunnel);
        let first = &p.routes[0];
        assert_eq!((first.destination, first.prefix_len, first.dev.as_str()), (IpAddr::from(GW), 32, "eth0"));
        assert_eq!(p.bypass, ["198.51.100.0/24"], "the host bits are cleared");
        assert_eq!(p.routes[1].dev, "eth0");
        assert!(p.routes[2..].iter().all(|r| r.dev == "ikl0" && r.prefix_len == 1), "{:?}", p.routes);
        assert_eq!(p.dns, Some(DnsBackend::ResolvConf));
        assert_eq!(p.firewall.as_deref(), Some("ikelink_ikl0"));
    }

    #[test]
    fn split_tunnel_needs_no_host_route_and_no_kill_switch() {
        let mut c = cfg(&["198.51.100.0/24"]);
        c.kill_switch = true;
        let p = plan(&c, &facts(true)).unwrap();
        assert!(!p.full_tunnel);
        assert_eq!(p.routes.len(), 1, "the gateway is not covered: no host route {:?}", p.routes);
        assert_eq!(p.firewall, None, "a kill switch needs a full tunnel");
        assert_eq!(p.dns, Some(DnsBackend::SystemdResolved));
        c.dns.clear();
        assert_eq!(plan(&c, &facts(true)).unwrap().dns, None, "no DNS servers: DNS untouched");
    }

    #[test]
    fn bad_excluded_prefixes_and_failed_lookups_are_errors() {
        let mut c = cfg(&["0.0.0.0/0"]);
        c.excluded = vec![(IpAddr::from([10, 0, 0, 0]), 0)];
        assert!(matches!(plan(&c, &facts(false)), Err(PlatformError::InvalidPrefix(_))));
        let failing = |_: IpAddr| -> Result<Option<GatewayPath>, PlatformError> {
            Err(PlatformError::InvalidPrefix("lookup".into()))
        };
        let f = LinuxFacts { connected: Vec::new(), path: &failing, resolved_running: false };
        assert!(plan(&cfg(&["0.0.0.0/0"]), &f).is_err());
    }
}
