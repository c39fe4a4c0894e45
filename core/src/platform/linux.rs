//! Linux routes and DNS with `ip`, `resolvectl` or resolv.conf, journaled for crash recovery.

use std::fs;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};

use super::command::{self, CommandOutput};
use super::journal::{
    backup_path, create_state_dir, io_error, journal_path, owner_alive_with, read_private, recover_with,
    remove_optional, write_atomic, DnsChange, Journal, RouteEntry, UndoStats, JOURNAL_VERSION,
};
use super::linux_plan::{self, firewall_table, GatewayPath, LinuxFacts, LinuxPlan};
use super::plan;
use super::{
    validate_domain, validate_interface_name, DnsBackend, NetworkConfig, PlatformError, RecoveryReport, ROUTE_PROTOCOL,
};

/// Directory that exists while systemd-resolved runs.
const RESOLVED_RUNTIME_DIR: &str = "/run/systemd/resolve";
/// Route lookup results that mean "no usable path".
const UNUSABLE_ROUTE_TYPES: [&str; 4] = ["unreachable", "blackhole", "prohibit", "throw"];

/// Assigns an IPv6 address to an interface (no duplicate address detection: the address is ours).
pub(crate) fn add_ipv6_address(name: &str, addr: Ipv6Addr, len: u8) -> Result<(), PlatformError> {
    let prefix = format!("{addr}/{len}");
    ip(&["-6", "addr", "add", &prefix, "dev", name, "nodad"]).map(|_| ())
}

fn ip(args: &[&str]) -> Result<CommandOutput, PlatformError> {
    command::run("ip", args)
}

fn family_flag(addr: IpAddr) -> &'static str {
    if addr.is_ipv4() {
        "-4"
    } else {
        "-6"
    }
}

/// True if a failed command's stderr says the object (route, device, link) is already gone.
fn is_already_gone(err: &PlatformError) -> bool {
    match err {
        PlatformError::Command { stderr, .. } => {
            stderr.contains("No such process")
                || stderr.contains("Cannot find device")
                || stderr.contains("No such device")
                || stderr.contains("does not exist")
                || stderr.contains("Failed to resolve interface")
                || stderr.contains("Unknown interface")
        }
        _ => false,
    }
}

fn is_file_exists(err: &PlatformError) -> bool {
    matches!(err, PlatformError::Command { stderr, .. } if stderr.contains("File exists"))
}

/// The prefixes of the addresses on `dev` (peer prefix for point-to-point addresses), from
/// `ip -o addr show dev <dev>`.
fn connected_prefixes(dev: &str) -> Result<Vec<(IpAddr, u8)>, PlatformError> {
    let out = ip(&["-o", "addr", "show", "dev", dev])?;
    Ok(parse_addr_show(&out.stdout))
}

fn parse_addr_show(out: &str) -> Vec<(IpAddr, u8)> {
    let mut prefixes = Vec::new();
    for line in out.lines() {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let Some(at) = tokens.iter().position(|t| *t == "inet" || *t == "inet6") else {
            continue;
        };
        let local = tokens.get(at + 1);
        let chosen = if tokens.get(at + 2) == Some(&"peer") { tokens.get(at + 3) } else { local };
        if let Some(Ok(p)) = chosen.map(|s| plan::parse_prefix(s)) {
            prefixes.push(p);
        }
    }
    prefixes
}

/// Looks up the current path to `gateway` (`ip route get`); `None` if the gateway is a local address.
fn gateway_path(gateway: IpAddr, tun_name: &str) -> Result<Option<GatewayPath>, PlatformError> {
    let gw = gateway.to_string();
    let out = ip(&[family_flag(gateway), "route", "get", &gw])?;
    let path = parse_route_get(&out.stdout).map_err(|reason| PlatformError::GatewayRoute { gateway, reason })?;
    if let Some(p) = &path {
        if p.dev == tun_name {
            return Err(PlatformError::GatewayRoute {
                gateway,
                reason: format!("it is currently routed via the tunnel interface {tun_name}"),
            });
        }
    }
    Ok(path)
}

fn parse_route_get(out: &str) -> Result<Option<GatewayPath>, String> {
    let line = out.lines().next().unwrap_or_default();
    let tokens: Vec<&str> = line.split_whitespace().collect();
    match tokens.first() {
        None => return Err("empty route lookup".to_owned()),
        Some(&"local") => return Ok(None),
        Some(t) if UNUSABLE_ROUTE_TYPES.contains(t) => return Err(format!("route type {t}")),
        Some(_) => {}
    }
    let value_after = |key: &str| -> Option<&str> {
        let at = tokens.iter().position(|t| *t == key)?;
        match tokens.get(at + 1) {
            Some(&"inet") | Some(&"inet6") => tokens.get(at + 2).copied(),
            other => other.copied(),
        }
    };
    let via = match value_after("via") {
        Some(v) => Some(v.parse::<IpAddr>().map_err(|_| format!("unparsable next hop {v:?}"))?),
        None => None,
    };
    let dev = value_after("dev").ok_or_else(|| format!("no device in {line:?}"))?;
    Ok(Some(GatewayPath { via, dev: dev.to_owned() }))
}

fn route_args(op: &'static str, r: &RouteEntry) -> Vec<String> {
    let mut args = vec![
        family_flag(r.destination).to_owned(),
        "route".to_owned(),
        op.to_owned(),
        format!("{}/{}", r.destination, r.prefix_len),
    ];
    if let Some(via) = r.via {
        args.push("via".to_owned());
        // An IPv4 route through an IPv6 next hop (as `ip route get` may report it) names the family.
        if via.is_ipv4() != r.destination.is_ipv4() {
            args.push("inet6".to_owned());
        }
        args.push(via.to_string());
    }
    args.push("dev".to_owned());
    args.push(r.dev.clone());
    args.push("proto".to_owned());
    args.push(ROUTE_PROTOCOL.to_string());
    args
}

fn run_route(op: &'static str, r: &RouteEntry) -> Result<(), PlatformError> {
    let args = route_args(op, r);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    ip(&refs).map(|_| ())
}

/// Deletes one of our routes; `Ok(false)` if it was already gone (e.g. the TUN disappeared).
fn delete_route(r: &RouteEntry) -> Result<bool, PlatformError> {
    match run_route("del", r) {
        Ok(()) => Ok(true),
        Err(e) if is_already_gone(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

fn resolved_running() -> bool {
    Path::new(RESOLVED_RUNTIME_DIR).is_dir() && command::run("resolvectl", &["status", "--no-pager"]).is_ok()
}

/// Reads a file, `None` if it does not exist.
fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, PlatformError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(path)(e)),
    }
}

/// Reads a file of the state directory (not through a symbolic link), `None` if it does not exist.
fn read_private_optional(path: &Path) -> Result<Option<Vec<u8>>, PlatformError> {
    match read_private(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(path)(e)),
    }
}

/// Rewrites a file in place (same inode, so bind-mounted files such as a container's resolv.conf work).
fn write_in_place(path: &Path, bytes: &[u8]) -> Result<(), PlatformError> {
    let mut f = fs::OpenOptions::new().write(true).create(true).truncate(true).open(path).map_err(io_error(path))?;
    f.write_all(bytes).map_err(io_error(path))?;
    f.sync_all().map_err(io_error(path))
}

/// Start time (clock ticks after boot) of process `pid`, field 22 of `/proc/<pid>/stat`.
fn process_start(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields after it follow the last ')'.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// True if the process that wrote `journal` still runs.
fn owner_alive(journal: &Journal) -> bool {
    owner_alive_with(journal, process_start)
}

/// The DNS change to make, decided before the journal is written.
enum DnsPlan {
    None,
    Resolved,
    ResolvConf { content: String },
}

/// Applies `cfg`; returns the journal (already on disk) listing what was changed.
pub(crate) fn apply(cfg: &NetworkConfig, state_dir: &Path) -> Result<(PathBuf, Journal), PlatformError> {
    validate_interface_name(&cfg.tun_name)?;
    for d in &cfg.dns_domains {
        validate_domain(d)?;
    }
    let tun = cfg.tun_name.as_str();
    let lookup = |addr: IpAddr| gateway_path(addr, tun);
    let facts = LinuxFacts { connected: connected_prefixes(tun)?, path: &lookup, resolved_running: resolved_running() };
    let LinuxPlan { routes, bypass, full_tunnel, dns, firewall } = linux_plan::plan(cfg, &facts)?;

    create_state_dir(state_dir)?;
    let jpath = journal_path(state_dir, tun);
    if fs::symlink_metadata(&jpath).is_ok() {
        return Err(PlatformError::JournalExists(jpath));
    }

    let (dns_plan, dns_change) = match dns {
        None | Some(DnsBackend::Auto) => (DnsPlan::None, None),
        Some(DnsBackend::SystemdResolved) => (DnsPlan::Resolved, Some(DnsChange::Resolved { link: tun.to_owned() })),
        Some(DnsBackend::ResolvConf) => {
            let original = read_optional(&cfg.resolv_conf)?;
            let backup = match &original {
                Some(bytes) => {
                    let b = backup_path(state_dir, tun);
                    write_atomic(&b, bytes)?;
                    Some(b)
                }
                None => None,
            };
            let content = plan::resolv_conf_content(tun, &cfg.dns, &cfg.dns_domains, original.as_deref(), full_tunnel);
            (
                DnsPlan::ResolvConf { content: content.clone() },
                Some(DnsChange::ResolvConf { path: cfg.resolv_conf.clone(), backup, written: content }),
            )
        }
    };

    let mut journal = Journal {
        version: JOURNAL_VERSION,
        tun_name: tun.to_owned(),
        owner_pid: std::process::id(),
        owner_start: process_start(std::process::id()),
        routes,
        dns: dns_change,
        firewall,
        metrics: Vec::new(),
        bypass,
    };
    if let Err(e) = journal.save(&jpath) {
        if let Some(DnsChange::ResolvConf { backup: Some(b), .. }) = &journal.dns {
            let _ = remove_optional(b);
        }
        return Err(e);
    }

    match install(&mut journal, &jpath, cfg, full_tunnel, &dns_plan) {
        Ok(()) => Ok((jpath, journal)),
        Err(e) => {
            tracing::warn!(error = %e, "applying network settings failed; rolling back");
            if let Err(undo) = restore(&jpath, &journal) {
                tracing::error!(error = %undo, journal = %jpath.display(), "rollback incomplete");
            }
            Err(e)
        }
    }
}

/// Points the gateway host route at `new` instead of `old` (a redirect, RFC 5685, or a gateway name that now
/// resolves elsewhere), while the tunnel routes stay. The new route takes the old one's physical path (the
/// tunnel routes hide the real one from `ip route get` now); without an old route the path is looked up. The
/// journal lists the new route before it is added and drops the old one after it is gone.
pub(crate) fn move_gateway(jpath: &Path, journal: &mut Journal, old: IpAddr, new: IpAddr) -> Result<(), PlatformError> {
    if old == new {
        return Ok(());
    }
    let tun = journal.tun_name.clone();
    let prefixes: Vec<(IpAddr, u8)> =
        journal.routes.iter().filter(|r| r.dev == tun).map(|r| (r.destination, r.prefix_len)).collect();
    let is_host_route =
        |r: &RouteEntry, a: IpAddr| r.dev != tun && r.destination == a && r.prefix_len == plan::max_len(a);
    let old_route = journal.routes.iter().find(|r| is_host_route(r, old)).cloned();
    if plan::gateway_needs_host_route(new, &prefixes) && !journal.routes.iter().any(|r| is_host_route(r, new)) {
        let path = match &old_route {
            Some(r) if r.destination.is_ipv4() == new.is_ipv4() => Some(GatewayPath { via: r.via, dev: r.dev.clone() }),
            _ => gateway_path(new, &tun)?,
        };
        if let Some(path) = path {
            let route = RouteEntry {
                destination: new,
                prefix_len: plan::max_len(new),
                dev: path.dev,
                via: path.via,
                luid: None,
            };
            journal.routes.insert(0, route.clone());
            journal.save(jpath)?;
            match run_route("add", &route) {
                Ok(()) => {
                    tracing::info!(gateway = %new, dev = %route.dev, via = ?route.via, "gateway host route added")
                }
                Err(e) => {
                    journal.routes.retain(|x| x != &route);
                    journal.save(jpath)?;
                    if !is_file_exists(&e) {
                        return Err(e);
                    }
                    tracing::info!(gateway = %new, "host route to gateway already present");
                }
            }
        }
    }
    if let Some(table) = journal.firewall.clone() {
        load_firewall(jpath, &table, &tun, new, &journal.bypass)?;
    }
    if let Some(r) = old_route {
        delete_route(&r)?;
        journal.routes.retain(|x| x != &r);
        journal.save(jpath)?;
        tracing::info!(gateway = %old, "old gateway host route removed");
    }
    Ok(())
}

/// The kill switch (nftables, family inet, output hook): while the tunnel is up nothing leaves the host but
/// through the TUN, to the gateway (IKE and ESP), on loopback, or for DHCP and IPv6 neighbour discovery on the
/// physical link. Loaded as one transaction that replaces any earlier version of the table.
pub(crate) fn firewall_rules(
    table: &str,
    tun: &str,
    gateway: IpAddr,
    bypass: &[String],
) -> Result<String, PlatformError> {
    if tun.contains(['"', '\\']) {
        return Err(PlatformError::InvalidInterfaceName(tun.to_owned()));
    }
    let mut gw = match gateway {
        IpAddr::V4(a) => format!("ip daddr {a} accept"),
        IpAddr::V6(a) => format!("ip6 daddr {a} accept"),
    };
    // Excluded prefixes, re-parsed (the journal is a file): only well-formed ones reach nft.
    for b in bypass {
        let (addr, len) = plan::parse_prefix(b)?;
        let family = if addr.is_ipv4() { "ip" } else { "ip6" };
        gw += &format!("\n\t\t{family} daddr {addr}/{len} accept");
    }
    Ok(format!(
        "add table inet {table}\n\
         flush table inet {table}\n\
         table inet {table} {{\n\
         \tchain output {{\n\
         \t\ttype filter hook output priority filter; policy accept;\n\
         \t\toifname \"lo\" accept\n\
         \t\toifname \"{tun}\" accept\n\
         \t\t{gw}\n\
         \t\tudp sport 68 udp dport 67 accept\n\
         \t\tudp sport 546 udp dport 547 accept\n\
         \t\ticmpv6 type {{ nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert }} accept\n\
         \t\tcounter drop\n\
         \t}}\n\
         }}\n"
    ))
}

/// `<journal>.nft`: the rules file handed to `nft -f`.
fn firewall_rules_path(jpath: &Path) -> PathBuf {
    jpath.with_extension("nft")
}

/// Writes and loads the kill switch for `gateway`.
fn load_firewall(
    jpath: &Path,
    table: &str,
    tun: &str,
    gateway: IpAddr,
    bypass: &[String],
) -> Result<(), PlatformError> {
    let rules = firewall_rules(table, tun, gateway, bypass)?;
    let path = firewall_rules_path(jpath);
    write_atomic(&path, rules.as_bytes())?;
    let p = path.to_string_lossy().into_owned();
    command::run("nft", &["-f", &p])?;
    tracing::info!(table, %gateway, "kill switch on: traffic outside the tunnel is dropped");
    Ok(())
}

fn is_no_such_table(err: &PlatformError) -> bool {
    matches!(err, PlatformError::Command { stderr, .. } if stderr.contains("No such file or directory"))
}

/// Makes the changes the journal lists.
fn install(
    journal: &mut Journal,
    jpath: &Path,
    cfg: &NetworkConfig,
    full_tunnel: bool,
    dns: &DnsPlan,
) -> Result<(), PlatformError> {
    for r in journal.routes.clone() {
        match run_route("add", &r) {
            Ok(()) => {
                tracing::info!(route = %format_args!("{}/{}", r.destination, r.prefix_len), dev = %r.dev, via = ?r.via, "route added");
            }
            // An existing route to the gateway or an excluded prefix already pins its path; not ours to delete.
            Err(e) if r.dev != cfg.tun_name && is_file_exists(&e) => {
                tracing::info!(route = %format_args!("{}/{}", r.destination, r.prefix_len), "route already present");
                journal.routes.retain(|x| x != &r);
                journal.save(jpath)?;
            }
            Err(e) => return Err(e),
        }
    }
    if let Some(table) = &journal.firewall {
        load_firewall(jpath, table, &cfg.tun_name, cfg.gateway, &journal.bypass)?;
    }
    match dns {
        DnsPlan::None => {}
        DnsPlan::Resolved => {
            let servers: Vec<String> = cfg.dns.iter().map(|a| a.to_string()).collect();
            let mut args = vec!["dns", cfg.tun_name.as_str()];
            args.extend(servers.iter().map(String::as_str));
            command::run("resolvectl", &args)?;
            let mut args = vec!["domain", cfg.tun_name.as_str()];
            args.extend(cfg.dns_domains.iter().map(String::as_str));
            if full_tunnel {
                args.push("~.");
            }
            if args.len() > 2 {
                command::run("resolvectl", &args)?;
            }
            tracing::info!(dns = ?cfg.dns, domains = ?cfg.dns_domains, "DNS set via systemd-resolved");
        }
        DnsPlan::ResolvConf { content } => {
            write_in_place(&cfg.resolv_conf, content.as_bytes())?;
            tracing::info!(dns = ?cfg.dns, path = %cfg.resolv_conf.display(), "resolv.conf written");
        }
    }
    Ok(())
}

enum DnsUndo {
    Restored,
    AlreadyRestored,
    Skipped(String),
}

fn undo_dns(dns: &DnsChange) -> Result<DnsUndo, PlatformError> {
    match dns {
        DnsChange::Resolved { link } => match command::run("resolvectl", &["revert", link]) {
            Ok(_) => Ok(DnsUndo::Restored),
            // The link is gone (resolved forgets its settings) or resolved no longer runs (its
            // per-link settings did not survive the restart).
            Err(e) if is_already_gone(&e) || !Path::new(RESOLVED_RUNTIME_DIR).is_dir() => Ok(DnsUndo::AlreadyRestored),
            Err(e) => Err(e),
        },
        DnsChange::ResolvConf { path, backup, written } => {
            let current = read_optional(path)?;
            let original = match backup {
                Some(b) => match read_private_optional(b)? {
                    Some(bytes) => Some(bytes),
                    None => {
                        return Ok(DnsUndo::Skipped(format!(
                            "backup {} of {} is missing; left it as is",
                            b.display(),
                            path.display()
                        )))
                    }
                },
                None => None,
            };
            if current == original {
                return Ok(DnsUndo::AlreadyRestored);
            }
            // Ours if it is what we wrote, or a prefix of it (a write interrupted by a crash).
            let ours = current.as_deref().is_some_and(|c| written.as_bytes().starts_with(c));
            if !ours {
                return Ok(DnsUndo::Skipped(format!("{} was changed by someone else; left it as is", path.display())));
            }
            match original {
                Some(bytes) => write_in_place(path, &bytes)?,
                None => remove_optional(path)?,
            }
            Ok(DnsUndo::Restored)
        }
        DnsChange::WindowsInterface { alias, .. } => {
            Ok(DnsUndo::Skipped(format!("DNS change on Windows interface {alias} cannot be undone here")))
        }
    }
}

/// Undoes everything `journal` lists (DNS first, then routes in reverse order), then deletes the journal
/// and the resolv.conf backup. Errors leave the journal in place for a later retry.
pub(crate) fn restore(jpath: &Path, journal: &Journal) -> Result<UndoStats, PlatformError> {
    let mut stats = UndoStats::default();
    let mut first_error: Option<PlatformError> = None;
    if let Some(dns) = &journal.dns {
        match undo_dns(dns) {
            Ok(DnsUndo::Restored) => stats.dns_restored += 1,
            Ok(DnsUndo::AlreadyRestored) => {}
            Ok(DnsUndo::Skipped(w)) => {
                tracing::warn!("{w}");
                stats.warnings.push(w);
            }
            Err(e) => {
                tracing::error!(error = %e, "restoring DNS failed");
                first_error.get_or_insert(e);
            }
        }
    }
    for r in journal.routes.iter().rev() {
        match delete_route(r) {
            Ok(true) => {
                stats.routes_removed += 1;
                tracing::info!(route = %format_args!("{}/{}", r.destination, r.prefix_len), dev = %r.dev, "route removed");
            }
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, "removing route failed");
                first_error.get_or_insert(e);
            }
        }
    }
    // Last, so nothing leaks while the routes go.
    if let Some(table) = &journal.firewall {
        match command::run("nft", &["delete", "table", "inet", table]) {
            Ok(_) => tracing::info!(table, "kill switch removed"),
            Err(e) if is_already_gone(&e) || is_no_such_table(&e) => {}
            Err(e) => {
                tracing::error!(error = %e, "removing the kill switch failed");
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let _ = remove_optional(&firewall_rules_path(jpath));
    // Journal first: once it is gone nothing refers to the backup any more.
    remove_optional(jpath)?;
    if let Some(DnsChange::ResolvConf { backup: Some(b), .. }) = &journal.dns {
        remove_optional(b)?;
    }
    Ok(stats)
}

/// Processes every journal in `state_dir`; a resolv.conf change is undone only on `resolv_conf`.
pub(crate) fn recover(state_dir: &Path, resolv_conf: &Path) -> Result<Option<RecoveryReport>, PlatformError> {
    recover_with(state_dir, owner_alive, |j| validate_journal(j, state_dir, resolv_conf), restore)
}

/// Checks a journal read back for recovery, which runs as root and hands its names to `ip`, `nft` and
/// `resolvectl` and its paths to file writes: it must list only what [`apply`] could have written for its TUN
/// (the resolver file `resolv_conf` with its backup in `state_dir`, routes with well-formed interfaces and
/// prefixes, the kill switch's own table), so no value can be a path elsewhere or an option (`-...`).
fn validate_journal(journal: &Journal, state_dir: &Path, resolv_conf: &Path) -> Result<(), String> {
    let tun = journal.tun_name.as_str();
    validate_interface_name(tun).map_err(|e| e.to_string())?;
    if !journal.metrics.is_empty() {
        return Err("it lists Windows interface metrics".to_owned());
    }
    for b in &journal.bypass {
        let (addr, len) = plan::parse_prefix(b).map_err(|e| e.to_string())?;
        if len == 0 || plan::network(addr, len) != Some(addr) || format!("{addr}/{len}") != *b {
            return Err(format!("invalid excluded prefix {b:?}"));
        }
    }
    for r in &journal.routes {
        validate_route(r, tun, &journal.bypass)?;
    }
    if let Some(table) = &journal.firewall {
        if *table != firewall_table(tun) {
            return Err(format!("nftables table {table:?} is not the kill switch's {:?}", firewall_table(tun)));
        }
    }
    match &journal.dns {
        None => {}
        Some(DnsChange::Resolved { link }) if link == tun => {}
        Some(DnsChange::Resolved { link }) => return Err(format!("resolved link {link:?} is not the TUN {tun:?}")),
        Some(DnsChange::ResolvConf { path, .. }) if path != resolv_conf => {
            return Err(format!(
                "resolver file {} is not {} (the one this program rewrites)",
                path.display(),
                resolv_conf.display()
            ));
        }
        Some(DnsChange::ResolvConf { backup: Some(b), .. }) if *b != backup_path(state_dir, tun) => {
            return Err(format!("resolv.conf backup {} is not {}", b.display(), backup_path(state_dir, tun).display()));
        }
        Some(DnsChange::ResolvConf { .. }) => {}
        Some(DnsChange::WindowsInterface { .. }) => return Err("it lists a Windows DNS change".to_owned()),
    }
    Ok(())
}

/// A journaled route: a normalized prefix on a valid interface; through the TUN without a next hop, else the
/// gateway's host route or an excluded prefix, with a next hop of its family (or IPv6 for IPv4, RFC 5549).
fn validate_route(r: &RouteEntry, tun: &str, bypass: &[String]) -> Result<(), String> {
    let prefix = format!("{}/{}", r.destination, r.prefix_len);
    validate_interface_name(&r.dev).map_err(|e| format!("route {prefix}: {e}"))?;
    if r.luid.is_some() {
        return Err(format!("route {prefix} has a Windows interface LUID"));
    }
    if r.prefix_len > plan::max_len(r.destination) || plan::network(r.destination, r.prefix_len) != Some(r.destination)
    {
        return Err(format!("invalid route prefix {prefix}"));
    }
    if r.dev == tun {
        return match r.via {
            None => Ok(()),
            Some(via) => Err(format!("route {prefix} through the TUN has a next hop {via}")),
        };
    }
    if let Some(via) = r.via {
        if via.is_ipv4() && r.destination.is_ipv6() {
            return Err(format!("route {prefix} has an IPv4 next hop {via}"));
        }
    }
    if r.prefix_len == plan::max_len(r.destination) || bypass.contains(&prefix) {
        Ok(())
    } else {
        Err(format!("route {prefix} on {} is neither a host route nor an excluded prefix", r.dev))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_route_get() {
        let out = "203.0.113.2 via 192.0.2.1 dev phys0 src 192.0.2.2 uid 0 \n    cache \n";
        assert_eq!(
            parse_route_get(out).unwrap(),
            Some(GatewayPath { via: Some("192.0.2.1".parse().unwrap()), dev: "phys0".into() })
        );
        let onlink = "192.0.2.9 dev phys0 src 192.0.2.2 uid 0\n";
        assert_eq!(parse_route_get(onlink).unwrap(), Some(GatewayPath { via: None, dev: "phys0".into() }));
        let v6 = "2001:db8::1 from :: via fe80::1 dev eth0 proto ra src 2001:db8::2 metric 1024 pref medium\n";
        assert_eq!(parse_route_get(v6).unwrap().unwrap().via, Some("fe80::1".parse().unwrap()));
        let v4_via_v6 = "203.0.113.2 via inet6 fe80::1 dev eth0 src 192.0.2.2 uid 0\n";
        assert_eq!(parse_route_get(v4_via_v6).unwrap().unwrap().via, Some("fe80::1".parse().unwrap()));
        assert_eq!(parse_route_get("local 192.0.2.2 dev lo table local src 192.0.2.2 uid 0\n").unwrap(), None);
        assert!(parse_route_get("unreachable 203.0.113.2 uid 0\n").is_err());
        assert!(parse_route_get("").is_err());
        assert!(parse_route_get("203.0.113.2 via x dev eth0\n").is_err());
        assert!(parse_route_get("203.0.113.2 via 192.0.2.1\n").is_err());
    }

    #[test]
    fn parses_addr_show() {
        let out = "7: ikl0    inet 100.64.0.1/24 scope global ikl0\\       valid_lft forever preferred_lft forever\n\
                   7: ikl0    inet 100.64.0.5 peer 100.64.1.0/24 scope global ikl0\n\
                   7: ikl0    inet6 fe80::1/64 scope link \\       valid_lft forever preferred_lft forever\n\
                   garbage\n";
        assert_eq!(
            parse_addr_show(out),
            vec![
                plan::parse_prefix("100.64.0.1/24").unwrap(),
                plan::parse_prefix("100.64.1.0/24").unwrap(),
                plan::parse_prefix("fe80::1/64").unwrap(),
            ]
        );
    }

    #[test]
    fn route_arguments() {
        let r = RouteEntry {
            destination: "203.0.113.2".parse().unwrap(),
            prefix_len: 32,
            dev: "phys0".into(),
            via: Some("192.0.2.1".parse().unwrap()),
            luid: None,
        };
        assert_eq!(route_args("add", &r).join(" "), "-4 route add 203.0.113.2/32 via 192.0.2.1 dev phys0 proto 173");
        let r = RouteEntry {
            destination: "8000::".parse().unwrap(),
            prefix_len: 1,
            dev: "ikl0".into(),
            via: None,
            luid: None,
        };
        assert_eq!(route_args("del", &r).join(" "), "-6 route del 8000::/1 dev ikl0 proto 173");
        let r = RouteEntry {
            destination: "203.0.113.2".parse().unwrap(),
            prefix_len: 32,
            dev: "phys0".into(),
            via: Some("fe80::1".parse().unwrap()),
            luid: None,
        };
        assert_eq!(
            route_args("del", &r).join(" "),
            "-4 route del 203.0.113.2/32 via inet6 fe80::1 dev phys0 proto 173"
        );
    }

    #[test]
    fn kill_switch_rules() {
        assert_eq!(firewall_table("ikl0"), "ikelink_ikl0");
        assert_eq!(firewall_table("vpn-1.x"), "ikelink_vpn_1_x");
        let r = firewall_rules("ikelink_ikl0", "ikl0", "203.0.113.2".parse().unwrap(), &[]).unwrap();
        // Replaces an earlier version in one transaction; only the TUN, loopback, the gateway and link
        // housekeeping pass; the rest is counted and dropped.
        assert!(r.starts_with("add table inet ikelink_ikl0\nflush table inet ikelink_ikl0\n"), "{r}");
        for want in [
            "type filter hook output priority filter; policy accept;",
            "oifname \"lo\" accept",
            "oifname \"ikl0\" accept",
            "ip daddr 203.0.113.2 accept",
            "udp sport 68 udp dport 67 accept",
            "counter drop",
        ] {
            assert!(r.contains(want), "{want} missing in {r}");
        }
        let r6 = firewall_rules("t", "ikl0", "2001:db8::1".parse().unwrap(), &["192.168.0.0/16".into()]).unwrap();
        assert!(r6.contains("ip daddr 192.168.0.0/16 accept"), "{r6}");
        assert!(firewall_rules("t", "ikl0", "203.0.113.2".parse().unwrap(), &["1.2.3.4/24; flush".into()]).is_err());
        assert!(r6.contains("ip6 daddr 2001:db8::1 accept"), "{r6}");
        assert!(firewall_rules("t", "a\"b", "203.0.113.2".parse().unwrap(), &[]).is_err());
    }

    #[test]
    fn own_process_start_is_readable() {
        let me = std::process::id();
        assert!(process_start(me).is_some());
        let j = Journal {
            version: JOURNAL_VERSION,
            tun_name: "x".into(),
            owner_pid: me,
            owner_start: process_start(me),
            routes: vec![],
            dns: None,
            firewall: None,
            metrics: vec![],
            bypass: vec![],
        };
        assert!(owner_alive(&j));
        let stale = Journal { owner_start: j.owner_start.map(|s| s + 1), ..j };
        assert!(!owner_alive(&stale));
    }

    #[test]
    fn resolv_conf_undo_is_byte_exact_and_respects_foreign_changes() {
        let dir = std::env::temp_dir().join(format!("ikelink-dns-undo-{}", std::process::id()));
        create_state_dir(&dir).unwrap();
        let conf = dir.join("resolv.conf");
        let backup = backup_path(&dir, "ikl0");
        let original = b"nameserver 192.0.2.53\r\n# odd bytes \xff\n".to_vec();
        fs::write(&conf, &original).unwrap();
        fs::write(&backup, &original).unwrap();
        let written = "nameserver 100.64.0.53\n".to_owned();
        let change =
            DnsChange::ResolvConf { path: conf.clone(), backup: Some(backup.clone()), written: written.clone() };
        fs::write(&conf, &written).unwrap();
        assert!(matches!(undo_dns(&change).unwrap(), DnsUndo::Restored));
        assert_eq!(fs::read(&conf).unwrap(), original);
        assert!(matches!(undo_dns(&change).unwrap(), DnsUndo::AlreadyRestored));
        // Interrupted write (truncated) still counts as ours.
        fs::write(&conf, &written[..5]).unwrap();
        assert!(matches!(undo_dns(&change).unwrap(), DnsUndo::Restored));
        assert_eq!(fs::read(&conf).unwrap(), original);
        fs::write(&conf, "nameserver 192.0.2.99\n").unwrap();
        assert!(matches!(undo_dns(&change).unwrap(), DnsUndo::Skipped(_)));
        assert_eq!(fs::read(&conf).unwrap(), b"nameserver 192.0.2.99\n");
        // No original file: restoring removes ours.
        let no_file = DnsChange::ResolvConf { path: conf.clone(), backup: None, written: written.clone() };
        fs::write(&conf, &written).unwrap();
        assert!(matches!(undo_dns(&no_file).unwrap(), DnsUndo::Restored));
        assert!(!conf.exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A journal as [`apply`] writes it: full tunnel, kill switch, an excluded prefix, resolv.conf with backup.
    fn sound_journal(state_dir: &Path, resolv_conf: &Path) -> Journal {
        let route = |d: &str, len: u8, dev: &str, via: Option<&str>| RouteEntry {
            destination: d.parse().unwrap(),
            prefix_len: len,
            dev: dev.into(),
            via: via.map(|v| v.parse().unwrap()),
            luid: None,
        };
        Journal {
            version: JOURNAL_VERSION,
            tun_name: "ikl0".into(),
            owner_pid: u32::MAX,
            owner_start: None,
            routes: vec![
                route("203.0.113.2", 32, "phys0", Some("192.0.2.1")),
                route("192.168.0.0", 16, "phys0", Some("fe80::1")),
                route("2001:db8::2", 128, "phys0", None),
                route("0.0.0.0", 1, "ikl0", None),
                route("128.0.0.0", 1, "ikl0", None),
                route("8000::", 1, "ikl0", None),
            ],
            dns: Some(DnsChange::ResolvConf {
                path: resolv_conf.to_owned(),
                backup: Some(backup_path(state_dir, "ikl0")),
                written: "nameserver 100.64.0.53\n".into(),
            }),
            firewall: Some(firewall_table("ikl0")),
            metrics: vec![],
            bypass: vec!["192.168.0.0/16".into()],
        }
    }

    #[test]
    fn journals_listing_anything_apply_could_not_have_written_are_refused() {
        let state = Path::new("/run/ikelink");
        let conf = Path::new("/etc/resolv.conf");
        let sound = sound_journal(state, conf);
        validate_journal(&sound, state, conf).unwrap();
        let resolved = Journal { dns: Some(DnsChange::Resolved { link: "ikl0".into() }), ..sound.clone() };
        validate_journal(&resolved, state, conf).unwrap();
        let no_backup = Journal {
            dns: Some(DnsChange::ResolvConf { path: conf.into(), backup: None, written: String::new() }),
            ..sound.clone()
        };
        validate_journal(&no_backup, state, conf).unwrap();

        let with_dns = |path: &str, backup: &str| Journal {
            dns: Some(DnsChange::ResolvConf {
                path: path.into(),
                backup: Some(backup.into()),
                written: "nameserver 100.64.0.53\n".into(),
            }),
            ..sound.clone()
        };
        let with_route = |dev: &str, dest: &str, len: u8, via: Option<&str>| {
            let mut j = sound.clone();
            j.routes.push(RouteEntry {
                destination: dest.parse().unwrap(),
                prefix_len: len,
                dev: dev.into(),
                via: via.map(|v| v.parse().unwrap()),
                luid: None,
            });
            j
        };
        let hostile = [
            ("resolver file elsewhere", with_dns("/etc/shadow", "/run/ikelink/ikl0.resolv.conf")),
            ("backup elsewhere", with_dns("/etc/resolv.conf", "/etc/shadow")),
            ("backup of another TUN", with_dns("/etc/resolv.conf", "/run/ikelink/ikl1.resolv.conf")),
            ("backup through ..", with_dns("/etc/resolv.conf", "/run/ikelink/../ikelink/ikl0.resolv.conf")),
            ("table injection", Journal { firewall: Some("foo; rm".into()), ..sound.clone() }),
            ("another table", Journal { firewall: Some("filter".into()), ..sound.clone() }),
            ("option as TUN", Journal { tun_name: "-x".into(), ..sound.clone() }),
            ("path as TUN", Journal { tun_name: "../../x".into(), ..sound.clone() }),
            ("dot TUN", Journal { tun_name: "..".into(), ..sound.clone() }),
            ("option as link", Journal { dns: Some(DnsChange::Resolved { link: "-x".into() }), ..sound.clone() }),
            ("another link", Journal { dns: Some(DnsChange::Resolved { link: "eth0".into() }), ..sound.clone() }),
            ("option as route device", with_route("-x", "198.51.100.0", 24, None)),
            ("spaces in route device", with_route("a b", "198.51.100.9", 32, None)),
            ("host bits", with_route("ikl0", "198.51.100.1", 24, None)),
            ("IPv4 next hop for IPv6", with_route("phys0", "2001:db8::9", 128, Some("192.0.2.1"))),
            ("next hop into the TUN", with_route("ikl0", "198.51.100.0", 24, Some("100.64.0.1"))),
            ("foreign prefix outside the TUN", with_route("phys0", "10.0.0.0", 8, Some("192.0.2.1"))),
            ("bypass injection", Journal { bypass: vec!["1.2.3.0/24; flush ruleset".into()], ..sound.clone() }),
            (
                "Windows DNS",
                Journal { dns: Some(DnsChange::WindowsInterface { luid: 1, alias: "x".into() }), ..sound.clone() },
            ),
        ];
        for (what, j) in hostile {
            assert!(validate_journal(&j, state, conf).is_err(), "{what} accepted");
        }
        let mut too_long = sound.clone();
        too_long.routes[3].prefix_len = 33;
        assert!(validate_journal(&too_long, state, conf).is_err());
        let mut windows = sound.clone();
        windows.routes[0].luid = Some(7);
        assert!(validate_journal(&windows, state, conf).is_err());
    }

    #[test]
    fn recovery_does_not_replay_hostile_journals() {
        let dir = std::env::temp_dir().join(format!("ikelink-hostile-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let state = dir.join("state");
        create_state_dir(&state).unwrap();
        let conf = dir.join("resolv.conf");
        fs::write(&conf, "nameserver 100.64.0.53\n").unwrap();
        // Journals that would have recovery write the backup over another file, or read another file into
        // resolv.conf, or hand `nft` and `ip` a table name or device of their choosing.
        let victim = dir.join("shadow");
        fs::write(&victim, "nameserver 100.64.0.53\n").unwrap();
        let secret = dir.join("secret");
        fs::write(&secret, "root:hash\n").unwrap();
        fs::write(backup_path(&state, "ikl0"), "nameserver 192.0.2.53\n").unwrap();
        let sound = sound_journal(&state, &conf);
        let onto_victim = Journal {
            dns: Some(DnsChange::ResolvConf {
                path: victim.clone(),
                backup: Some(backup_path(&state, "ikl0")),
                written: "nameserver 100.64.0.53\n".into(),
            }),
            routes: vec![],
            firewall: None,
            ..sound.clone()
        };
        onto_victim.save(&journal_path(&state, "ikl0")).unwrap();
        let from_secret = Journal {
            tun_name: "ikl1".into(),
            dns: Some(DnsChange::ResolvConf {
                path: conf.clone(),
                backup: Some(secret.clone()),
                written: "nameserver 100.64.0.53\n".into(),
            }),
            routes: vec![],
            firewall: None,
            ..sound.clone()
        };
        from_secret.save(&journal_path(&state, "ikl1")).unwrap();
        let table = Journal {
            tun_name: "ikl2".into(),
            firewall: Some("foo; rm".into()),
            routes: vec![],
            dns: None,
            ..sound.clone()
        };
        table.save(&journal_path(&state, "ikl2")).unwrap();
        let option = Journal { tun_name: "-x".into(), routes: vec![], dns: None, firewall: None, ..sound.clone() };
        option.save(&journal_path(&state, "-x")).unwrap();
        let escape = Journal { tun_name: "../../x".into(), routes: vec![], dns: None, firewall: None, ..sound };
        escape.save(&journal_path(&state, "x")).unwrap();

        let mut replayed = Vec::new();
        let report = recover_with(
            &state,
            |_| false,
            |j| validate_journal(j, &state, &conf),
            |_, j| {
                replayed.push(j.tun_name.clone());
                Ok(UndoStats::default())
            },
        )
        .unwrap()
        .unwrap();
        assert!(replayed.is_empty(), "replayed {replayed:?}");
        assert_eq!(report.rejected.len(), 5, "{report:?}");
        assert!(report.journals.is_empty());

        // The real recovery, for the two file journals (no command runs for them): nothing is written.
        onto_victim.save(&journal_path(&state, "ikl0")).unwrap();
        from_secret.save(&journal_path(&state, "ikl1")).unwrap();
        let report = recover(&state, &conf).unwrap().unwrap();
        assert_eq!(report.rejected, vec![journal_path(&state, "ikl0"), journal_path(&state, "ikl1")]);
        assert_eq!(report.dns_restored, 0);
        assert_eq!(fs::read(&victim).unwrap(), b"nameserver 100.64.0.53\n");
        assert_eq!(fs::read(&conf).unwrap(), b"nameserver 100.64.0.53\n");
        assert!(state.join("ikl0.state.rejected").exists());
        assert!(!journal_path(&state, "ikl0").exists(), "not retried at every start");
        fs::remove_dir_all(&dir).unwrap();
    }
}
