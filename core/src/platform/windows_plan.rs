//! Windows routes, interface metric and DNS, planned without I/O so that the logic is compiled and tested on
//! every platform: what `apply` journals and then does (in that order), what `restore` undoes (in reverse), how
//! `move_gateway` replaces the gateway host route, and which Win32 error codes mean "already gone" or
//! "already there". `windows.rs` only executes these plans with the IP Helper API.

use std::net::IpAddr;

use super::journal::{DnsChange, Journal, MetricChange, RouteEntry, JOURNAL_VERSION};
use super::plan;
use super::{validate_domain, validate_interface_name, NetworkConfig, PlatformError};

/// Interface metric of the TUN in a full tunnel (automatic metric off): below the automatic metric of any
/// physical adapter (Windows gives 5 and up), so the TUN's DNS servers and routes win ties.
pub(crate) const TUN_METRIC: u32 = 1;

/// Win32 error codes (winerror.h) the executor tells apart; numbers here so that the classification is tested.
pub(crate) const ERROR_FILE_NOT_FOUND: u32 = 2;
pub(crate) const ERROR_ALREADY_EXISTS: u32 = 183;
pub(crate) const ERROR_NOT_FOUND: u32 = 1168;
pub(crate) const ERROR_OBJECT_ALREADY_EXISTS: u32 = 5010;

/// IF_TYPE_SOFTWARE_LOOPBACK (ipifcons.h).
const IF_TYPE_SOFTWARE_LOOPBACK: u16 = 24;

/// The object (route, interface, interface row) no longer exists: nothing left to undo.
pub(crate) fn is_gone(code: u32) -> bool {
    matches!(code, ERROR_FILE_NOT_FOUND | ERROR_NOT_FOUND)
}

/// The route being created exists already.
pub(crate) fn is_exists(code: u32) -> bool {
    matches!(code, ERROR_OBJECT_ALREADY_EXISTS | ERROR_ALREADY_EXISTS)
}

/// The interface type in a NET_LUID (bits 48-63; bits 24-47 are the index, 0-23 reserved).
pub(crate) fn luid_if_type(luid: u64) -> u16 {
    (luid >> 48) as u16
}

/// A network interface: its LUID, which the IP Helper API addresses it by, and its alias (the name users see).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Interface {
    pub luid: u64,
    pub alias: String,
}

/// The best route to an address, as `GetBestRoute2` reports it: the outgoing interface and the next hop
/// (`None`: on-link).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BestRoute {
    pub interface: Interface,
    pub next_hop: Option<IpAddr>,
}

/// An interface's metric setting for one address family, as `GetIpInterfaceEntry` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InterfaceMetric {
    pub ipv6: bool,
    pub automatic: bool,
    pub metric: u32,
}

/// What a configuration asks for, before anything is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Wanted {
    /// Routes via the TUN (full tunnel: the two halves per family).
    pub prefixes: Vec<(IpAddr, u8)>,
    pub full_tunnel: bool,
    /// The tunnel routes would cover the gateway: it needs a host route via the physical path.
    pub gateway_host_route: bool,
}

/// Checks `cfg` and works out the routes. The kill switch is refused: it exists on Linux only (nftables), and
/// connecting without the protection the profile asks for would be worse than not connecting.
pub(crate) fn wanted(cfg: &NetworkConfig) -> Result<Wanted, PlatformError> {
    if cfg.kill_switch {
        return Err(PlatformError::KillSwitchUnsupported);
    }
    validate_interface_name(&cfg.tun_name)?;
    // The alias names the journal file too: nothing Windows reads as a path or wildcard.
    if cfg.tun_name.contains(['\\', '*', '?', '"', '<', '>', '|']) {
        return Err(PlatformError::InvalidInterfaceName(cfg.tun_name.clone()));
    }
    for d in &cfg.dns_domains {
        validate_domain(d)?;
    }
    // Windows would refuse a route equal to an on-link prefix of the TUN's address; the executor drops such a
    // route from the journal (it is not ours) instead of listing the addresses first.
    let prefixes = plan::tunnel_prefixes(&cfg.routes, &[])?;
    let gateway_host_route = plan::gateway_needs_host_route(cfg.gateway, &prefixes);
    Ok(Wanted { prefixes, full_tunnel: plan::is_full_tunnel(&cfg.routes), gateway_host_route })
}

/// Checks the current best route to the gateway: through the TUN it is useless (IKE and ESP would loop into
/// the tunnel); through loopback the gateway is this host and needs no host route (`None`).
pub(crate) fn gateway_path(
    gateway: IpAddr,
    tun: &Interface,
    best: BestRoute,
) -> Result<Option<BestRoute>, PlatformError> {
    if best.interface.luid == tun.luid {
        return Err(PlatformError::GatewayRoute {
            gateway,
            reason: format!("it is currently routed via the tunnel interface {}", tun.alias),
        });
    }
    if luid_if_type(best.interface.luid) == IF_TYPE_SOFTWARE_LOOPBACK {
        return Ok(None);
    }
    Ok(Some(best))
}

/// The host route that keeps `gateway` on the physical path.
pub(crate) fn host_route(gateway: IpAddr, path: &BestRoute) -> RouteEntry {
    RouteEntry {
        destination: gateway,
        prefix_len: plan::max_len(gateway),
        dev: path.interface.alias.clone(),
        via: path.next_hop,
        luid: Some(path.interface.luid),
    }
}

/// A route via the TUN (on-link: the TUN is point-to-point).
pub(crate) fn tun_route((destination, prefix_len): (IpAddr, u8), tun: &Interface) -> RouteEntry {
    RouteEntry { destination, prefix_len, dev: tun.alias.clone(), via: None, luid: Some(tun.luid) }
}

/// The excluded prefixes of `cfg` (`NetworkConfig::excluded`) as networks; a /0 is refused.
pub(crate) fn excluded_networks(cfg: &NetworkConfig) -> Result<Vec<(IpAddr, u8)>, PlatformError> {
    cfg.excluded
        .iter()
        .map(|&(a, l)| {
            plan::network(a, l)
                .filter(|_| l > 0)
                .map(|n| (n, l))
                .ok_or_else(|| PlatformError::InvalidPrefix(format!("{a}/{l}")))
        })
        .collect()
}

/// The route that keeps an excluded prefix on the path it has now (`None`: it is this host, or already routed
/// through the TUN, which would make the route a loop).
pub(crate) fn excluded_route((net, len): (IpAddr, u8), tun: &Interface, best: &BestRoute) -> Option<RouteEntry> {
    if best.interface.luid == tun.luid || luid_if_type(best.interface.luid) == IF_TYPE_SOFTWARE_LOOPBACK {
        return None;
    }
    Some(RouteEntry {
        destination: net,
        prefix_len: len,
        dev: best.interface.alias.clone(),
        via: best.next_hop,
        luid: Some(best.interface.luid),
    })
}

/// The journal for `cfg`, listing in installation order: the gateway host route, the routes keeping the
/// excluded prefixes outside (`excluded`: each with its current best route), the tunnel routes, the TUN's
/// metrics (full tunnel only; `current` are the values to put back) and the DNS change.
#[allow(clippy::too_many_arguments)]
pub(crate) fn journal(
    cfg: &NetworkConfig,
    wanted: &Wanted,
    tun: &Interface,
    gateway_path: Option<&BestRoute>,
    excluded: &[((IpAddr, u8), BestRoute)],
    current: &[InterfaceMetric],
    owner_pid: u32,
    owner_start: Option<u64>,
) -> Journal {
    let mut routes = Vec::new();
    if wanted.gateway_host_route {
        if let Some(path) = gateway_path {
            routes.push(host_route(cfg.gateway, path));
        }
    }
    routes.extend(excluded.iter().filter_map(|(p, best)| excluded_route(*p, tun, best)));
    routes.extend(wanted.prefixes.iter().map(|&p| tun_route(p, tun)));
    let metrics = if wanted.full_tunnel {
        current
            .iter()
            .map(|m| MetricChange {
                luid: tun.luid,
                ipv6: m.ipv6,
                metric: TUN_METRIC,
                previous_automatic: m.automatic,
                previous_metric: m.metric,
            })
            .collect()
    } else {
        Vec::new()
    };
    let dns = (!cfg.dns.is_empty()).then(|| DnsChange::WindowsInterface { luid: tun.luid, alias: tun.alias.clone() });
    Journal {
        version: JOURNAL_VERSION,
        tun_name: tun.alias.clone(),
        owner_pid,
        owner_start,
        routes,
        dns,
        firewall: None,
        metrics,
        bypass: excluded.iter().map(|((a, l), _)| format!("{a}/{l}")).collect(),
    }
}

/// One `SetInterfaceDnsSettings` call: the servers of one family, comma-separated, and the search list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DnsSetting {
    pub ipv6: bool,
    pub servers: String,
    /// Comma-separated search domains (set with the first call only; `Some("")` clears them).
    pub search: Option<String>,
}

/// The calls that install `dns` and `domains` on the TUN: IPv4 servers, then IPv6 servers (each family is a
/// separate setting); nothing for no servers (DNS is left alone, as on Linux).
pub(crate) fn dns_settings(dns: &[IpAddr], domains: &[String]) -> Vec<DnsSetting> {
    let mut out = Vec::new();
    let mut search = (!domains.is_empty()).then(|| domains.join(","));
    for ipv6 in [false, true] {
        let servers: Vec<String> = dns.iter().filter(|a| a.is_ipv6() == ipv6).map(|a| a.to_string()).collect();
        if servers.is_empty() {
            continue;
        }
        out.push(DnsSetting { ipv6, servers: servers.join(","), search: search.take() });
    }
    out
}

/// The calls that clear what [`dns_settings`] installed: no servers for either family, no search list.
pub(crate) fn dns_clear() -> Vec<DnsSetting> {
    vec![
        DnsSetting { ipv6: false, servers: String::new(), search: Some(String::new()) },
        DnsSetting { ipv6: true, servers: String::new(), search: None },
    ]
}

/// A change `apply` makes, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    AddRoute(RouteEntry),
    SetMetric(MetricChange),
    SetDns { luid: u64, alias: String, settings: Vec<DnsSetting> },
}

/// What `apply` does for a journal from [`journal`]: routes (gateway host route first, so IKE and ESP never
/// enter the tunnel), the metrics, then DNS (whose servers are reachable once the routes are there).
pub(crate) fn apply_ops(journal: &Journal, cfg: &NetworkConfig) -> Vec<Op> {
    let mut ops: Vec<Op> = journal.routes.iter().cloned().map(Op::AddRoute).collect();
    ops.extend(journal.metrics.iter().cloned().map(Op::SetMetric));
    if let Some(DnsChange::WindowsInterface { luid, alias }) = &journal.dns {
        ops.push(Op::SetDns { luid: *luid, alias: alias.clone(), settings: dns_settings(&cfg.dns, &cfg.dns_domains) });
    }
    ops
}

/// A change `restore` makes, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UndoOp {
    ClearDns {
        luid: u64,
        alias: String,
    },
    RestoreMetric(MetricChange),
    DeleteRoute(RouteEntry),
    /// An entry this platform cannot undo (a journal written on Linux): reported, left alone.
    Foreign(String),
}

/// What `restore` does for `journal`: the reverse of [`apply_ops`] (DNS, metrics in reverse, routes in reverse).
pub(crate) fn undo_ops(journal: &Journal) -> Vec<UndoOp> {
    let mut ops = Vec::new();
    match &journal.dns {
        None => {}
        Some(DnsChange::WindowsInterface { luid, alias }) => {
            ops.push(UndoOp::ClearDns { luid: *luid, alias: alias.clone() })
        }
        Some(other) => ops.push(UndoOp::Foreign(format!("DNS change {other:?} was not made on Windows; left it"))),
    }
    ops.extend(journal.metrics.iter().rev().cloned().map(UndoOp::RestoreMetric));
    for r in journal.routes.iter().rev() {
        if r.luid.is_some() {
            ops.push(UndoOp::DeleteRoute(r.clone()));
        } else {
            ops.push(UndoOp::Foreign(format!(
                "route {}/{} dev {} has no interface LUID (not made on Windows); left it",
                r.destination, r.prefix_len, r.dev
            )));
        }
    }
    if let Some(table) = &journal.firewall {
        ops.push(UndoOp::Foreign(format!("firewall table {table} is a Linux kill switch; left it")));
    }
    ops
}

/// How the gateway's host route is replaced when the gateway moves from `old` to `new`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MovePlan {
    pub add: NewHostRoute,
    /// The old gateway's host route, deleted after the new one is in place.
    pub remove: Option<RouteEntry>,
}

/// The new gateway's host route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NewHostRoute {
    /// Not needed (the tunnel routes do not cover `new`) or already there.
    None,
    /// Through the old route's physical path (the tunnel routes now hide the real best route).
    Route(RouteEntry),
    /// No old route of the same family to copy: look the path up.
    Lookup,
}

/// Plans [`super::AppliedNetwork::move_gateway`] as the Linux executor does it.
pub(crate) fn plan_move(journal: &Journal, old: IpAddr, new: IpAddr) -> MovePlan {
    if old == new {
        return MovePlan { add: NewHostRoute::None, remove: None };
    }
    let tun = journal.tun_name.as_str();
    let prefixes: Vec<(IpAddr, u8)> =
        journal.routes.iter().filter(|r| r.dev == tun).map(|r| (r.destination, r.prefix_len)).collect();
    let is_host_route =
        |r: &RouteEntry, a: IpAddr| r.dev != tun && r.destination == a && r.prefix_len == plan::max_len(a);
    let remove = journal.routes.iter().find(|r| is_host_route(r, old)).cloned();
    let add = if plan::gateway_needs_host_route(new, &prefixes) && !journal.routes.iter().any(|r| is_host_route(r, new))
    {
        match &remove {
            Some(r) if r.destination.is_ipv4() == new.is_ipv4() => {
                NewHostRoute::Route(RouteEntry { destination: new, prefix_len: plan::max_len(new), ..r.clone() })
            }
            _ => NewHostRoute::Lookup,
        }
    } else {
        NewHostRoute::None
    };
    MovePlan { add, remove }
}

/// The TUN of a journal, from its routes (all TUN routes carry its LUID); `None` if it has none.
pub(crate) fn journal_tun(journal: &Journal) -> Option<Interface> {
    let luid = journal.routes.iter().find(|r| r.dev == journal.tun_name)?.luid?;
    Some(Interface { luid, alias: journal.tun_name.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::parse_prefix;

    const TUN_LUID: u64 = (53 << 48) | (3 << 24);
    const ETH_LUID: u64 = (6 << 48) | (1 << 24);

    fn p(s: &str) -> (IpAddr, u8) {
        parse_prefix(s).unwrap()
    }

    fn tun() -> Interface {
        Interface { luid: TUN_LUID, alias: "ikelink".into() }
    }

    fn eth() -> BestRoute {
        BestRoute {
            interface: Interface { luid: ETH_LUID, alias: "Ethernet".into() },
            next_hop: Some("192.0.2.1".parse().unwrap()),
        }
    }

    fn cfg(routes: &[&str]) -> NetworkConfig {
        NetworkConfig {
            routes: routes.iter().map(|r| p(r)).collect(),
            dns: vec!["100.64.0.53".parse().unwrap(), "fd00::53".parse().unwrap()],
            dns_domains: vec!["corp.example".into(), "lab.example".into()],
            ..NetworkConfig::new("ikelink", "203.0.113.2".parse().unwrap())
        }
    }

    fn metrics() -> Vec<InterfaceMetric> {
        vec![
            InterfaceMetric { ipv6: false, automatic: true, metric: 35 },
            InterfaceMetric { ipv6: true, automatic: true, metric: 35 },
        ]
    }

    fn full_journal() -> (NetworkConfig, Journal) {
        let c = cfg(&["0.0.0.0/0", "::/0"]);
        let w = wanted(&c).unwrap();
        let path = gateway_path(c.gateway, &tun(), eth()).unwrap();
        let j = journal(&c, &w, &tun(), path.as_ref(), &[], &metrics(), 4242, Some(133_000_000_000_000_000));
        (c, j)
    }

    #[test]
    fn excluded_prefixes_keep_their_path_before_the_tunnel_routes() {
        let mut c = cfg(&["0.0.0.0/0"]);
        c.excluded = vec![p("192.168.1.77/24"), p("10.9.0.0/16")];
        let nets = excluded_networks(&c).unwrap();
        assert_eq!(nets, vec![p("192.168.1.0/24"), p("10.9.0.0/16")]);
        let w = wanted(&c).unwrap();
        let path = gateway_path(c.gateway, &tun(), eth()).unwrap();
        // The second one is already routed via the TUN (a leftover): no route for it, it stays inside.
        let via_tun = BestRoute { interface: tun(), next_hop: None };
        let excluded = [(nets[0], eth()), (nets[1], via_tun)];
        let j = journal(&c, &w, &tun(), path.as_ref(), &excluded, &metrics(), 1, None);
        let dests: Vec<String> =
            j.routes.iter().map(|r| format!("{}/{}@{}", r.destination, r.prefix_len, r.dev)).collect();
        assert_eq!(
            dests,
            ["203.0.113.2/32@Ethernet", "192.168.1.0/24@Ethernet", "0.0.0.0/1@ikelink", "128.0.0.0/1@ikelink"]
        );
        assert_eq!(j.bypass, ["192.168.1.0/24", "10.9.0.0/16"]);
        c.excluded = vec![p("0.0.0.0/0")];
        assert!(excluded_networks(&c).is_err());
    }

    #[test]
    fn full_tunnel_applies_host_route_halves_metrics_then_dns() {
        let (c, j) = full_journal();
        assert_eq!(j.tun_name, "ikelink");
        assert_eq!((j.owner_pid, j.owner_start), (4242, Some(133_000_000_000_000_000)));
        let ops = apply_ops(&j, &c);
        let gw = RouteEntry {
            destination: "203.0.113.2".parse().unwrap(),
            prefix_len: 32,
            dev: "Ethernet".into(),
            via: Some("192.0.2.1".parse().unwrap()),
            luid: Some(ETH_LUID),
        };
        let mut want = vec![Op::AddRoute(gw)];
        for half in ["0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1"] {
            want.push(Op::AddRoute(tun_route(p(half), &tun())));
        }
        for ipv6 in [false, true] {
            want.push(Op::SetMetric(MetricChange {
                luid: TUN_LUID,
                ipv6,
                metric: TUN_METRIC,
                previous_automatic: true,
                previous_metric: 35,
            }));
        }
        want.push(Op::SetDns {
            luid: TUN_LUID,
            alias: "ikelink".into(),
            settings: vec![
                DnsSetting {
                    ipv6: false,
                    servers: "100.64.0.53".into(),
                    search: Some("corp.example,lab.example".into()),
                },
                DnsSetting { ipv6: true, servers: "fd00::53".into(), search: None },
            ],
        });
        assert_eq!(ops, want);
    }

    #[test]
    fn restore_undoes_in_reverse() {
        let (_, j) = full_journal();
        let undo = undo_ops(&j);
        assert_eq!(undo[0], UndoOp::ClearDns { luid: TUN_LUID, alias: "ikelink".into() });
        assert!(matches!(&undo[1], UndoOp::RestoreMetric(m) if m.ipv6));
        assert!(matches!(&undo[2], UndoOp::RestoreMetric(m) if !m.ipv6));
        let routes: Vec<&RouteEntry> =
            undo[3..].iter().map(|u| if let UndoOp::DeleteRoute(r) = u { r } else { panic!("{u:?}") }).collect();
        let mut installed: Vec<&RouteEntry> = j.routes.iter().collect();
        installed.reverse();
        assert_eq!(routes, installed);
        assert_eq!(routes.last().unwrap().dev, "Ethernet", "the gateway host route goes last");
    }

    #[test]
    fn split_tunnel_keeps_metric_and_needs_no_host_route() {
        let c = NetworkConfig { dns: vec![], ..cfg(&["198.51.100.7/24", "2001:db8::/64", "198.51.100.0/24"]) };
        let w = wanted(&c).unwrap();
        assert!(!w.full_tunnel && !w.gateway_host_route);
        let j = journal(&c, &w, &tun(), None, &[], &metrics(), 1, None);
        assert!(j.metrics.is_empty() && j.dns.is_none());
        assert_eq!(
            apply_ops(&j, &c),
            vec![
                Op::AddRoute(tun_route(p("198.51.100.0/24"), &tun())),
                Op::AddRoute(tun_route(p("2001:db8::/64"), &tun()))
            ]
        );
        // A split tunnel that covers the gateway still pins it.
        let c = cfg(&["203.0.0.0/8"]);
        assert!(wanted(&c).unwrap().gateway_host_route);
    }

    #[test]
    fn kill_switch_and_bad_input_are_refused() {
        let c = NetworkConfig { kill_switch: true, ..cfg(&["0.0.0.0/0"]) };
        assert!(matches!(wanted(&c), Err(PlatformError::KillSwitchUnsupported)));
        let c = NetworkConfig { dns_domains: vec!["a,b".into()], ..cfg(&["0.0.0.0/0"]) };
        assert!(matches!(wanted(&c), Err(PlatformError::InvalidDomain(_))));
        for bad in ["..\\x", "a*", "a|b"] {
            let c = NetworkConfig { tun_name: bad.into(), ..cfg(&[]) };
            assert!(matches!(wanted(&c), Err(PlatformError::InvalidInterfaceName(_))), "{bad}");
        }
        let c = NetworkConfig { routes: vec![("10.0.0.0".parse().unwrap(), 33)], ..cfg(&[]) };
        assert!(matches!(wanted(&c), Err(PlatformError::InvalidPrefix(_))));
    }

    #[test]
    fn gateway_path_checks() {
        let gw: IpAddr = "203.0.113.2".parse().unwrap();
        assert_eq!(gateway_path(gw, &tun(), eth()).unwrap(), Some(eth()));
        let via_tun = BestRoute { interface: tun(), next_hop: None };
        assert!(matches!(gateway_path(gw, &tun(), via_tun), Err(PlatformError::GatewayRoute { .. })));
        let lo = BestRoute { interface: Interface { luid: 24 << 48, alias: "Loopback".into() }, next_hop: None };
        assert_eq!(gateway_path(gw, &tun(), lo).unwrap(), None);
        assert_eq!(luid_if_type(TUN_LUID), 53);
    }

    #[test]
    fn dns_settings_per_family() {
        let v4: Vec<IpAddr> = vec!["192.0.2.53".parse().unwrap(), "192.0.2.54".parse().unwrap()];
        assert_eq!(
            dns_settings(&v4, &[]),
            vec![DnsSetting { ipv6: false, servers: "192.0.2.53,192.0.2.54".into(), search: None }]
        );
        let v6: Vec<IpAddr> = vec!["fd00::53".parse().unwrap()];
        assert_eq!(
            dns_settings(&v6, &["corp.example".into()]),
            vec![DnsSetting { ipv6: true, servers: "fd00::53".into(), search: Some("corp.example".into()) }]
        );
        assert!(dns_settings(&[], &["corp.example".into()]).is_empty());
        assert!(dns_clear().iter().all(|s| s.servers.is_empty()));
    }

    #[test]
    fn error_codes() {
        assert!(is_gone(ERROR_NOT_FOUND) && is_gone(ERROR_FILE_NOT_FOUND) && !is_gone(5));
        assert!(is_exists(ERROR_OBJECT_ALREADY_EXISTS) && !is_exists(ERROR_NOT_FOUND));
    }

    #[test]
    fn moving_the_gateway_copies_the_old_path_then_deletes_the_old_route() {
        let (_, j) = full_journal();
        let old: IpAddr = "203.0.113.2".parse().unwrap();
        let new: IpAddr = "203.0.113.9".parse().unwrap();
        let m = plan_move(&j, old, new);
        let NewHostRoute::Route(r) = &m.add else { panic!("{m:?}") };
        assert_eq!((r.destination, r.prefix_len, r.luid, r.via), (new, 32, Some(ETH_LUID), j.routes[0].via));
        assert_eq!(m.remove.as_ref(), Some(&j.routes[0]));
        // Another family: the path must be looked up.
        let m = plan_move(&j, old, "2001:db8::9".parse().unwrap());
        assert_eq!(m.add, NewHostRoute::Lookup);
        // Same address: nothing.
        assert_eq!(plan_move(&j, old, old), MovePlan { add: NewHostRoute::None, remove: None });
        // Split tunnel not covering the new gateway: only the old route goes (there is none here).
        let c = cfg(&["198.51.100.0/24"]);
        let js = journal(&c, &wanted(&c).unwrap(), &tun(), None, &[], &[], 1, None);
        assert_eq!(plan_move(&js, old, new), MovePlan { add: NewHostRoute::None, remove: None });
        assert_eq!(journal_tun(&j), Some(tun()));
        assert_eq!(journal_tun(&Journal { routes: vec![], ..j }), None);
    }

    #[test]
    fn linux_journal_entries_are_reported_not_undone() {
        let (_, j) = full_journal();
        let linux = Journal {
            dns: Some(DnsChange::Resolved { link: "ikl0".into() }),
            routes: vec![RouteEntry { luid: None, ..j.routes[1].clone() }],
            metrics: vec![],
            bypass: vec![],
            firewall: Some("ikelink_ikl0".into()),
            ..j
        };
        let undo = undo_ops(&linux);
        assert_eq!(undo.len(), 3);
        assert!(undo.iter().all(|u| matches!(u, UndoOp::Foreign(_))));
    }

    #[test]
    fn windows_journal_round_trips_and_old_journals_still_load() {
        let (_, j) = full_journal();
        let text = toml::to_string(&j).unwrap();
        assert!(text.contains("kind = \"windows_interface\""), "{text}");
        assert_eq!(toml::from_str::<Journal>(&text).unwrap(), j);
        // A journal from before the Windows fields.
        let old = "version = 1\ntun_name = \"ikl0\"\nowner_pid = 7\n\n[[routes]]\ndestination = \"0.0.0.0\"\n\
                   prefix_len = 1\ndev = \"ikl0\"\n";
        let j: Journal = toml::from_str(old).unwrap();
        assert!(j.metrics.is_empty() && j.routes[0].luid.is_none());
    }
}
