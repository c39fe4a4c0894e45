//! Windows routes, interface metric and DNS through the IP Helper API, journaled for crash recovery.
//!
//! What to change, in which order, and how to undo it comes from [`super::windows_plan`] (tested on every
//! platform); this module only looks things up and executes the plan with Win32 calls. It is the one module of
//! the crate with `unsafe` code: every block is a single FFI call (or a read of a union the call just filled)
//! with a comment on why it is sound. No shell, no `netsh`.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::OnceLock;

use windows_sys::core::GUID;
use windows_sys::Win32::Foundation::{CloseHandle, FILETIME, NO_ERROR, STILL_ACTIVE, WIN32_ERROR};
use windows_sys::Win32::NetworkManagement::IpHelper::{
    ConvertInterfaceAliasToLuid, ConvertInterfaceLuidToAlias, ConvertInterfaceLuidToGuid, CreateIpForwardEntry2,
    CreateUnicastIpAddressEntry, DeleteIpForwardEntry2, GetBestRoute2, GetIpInterfaceEntry, InitializeIpForwardEntry,
    InitializeIpInterfaceEntry, InitializeUnicastIpAddressEntry, SetIpInterfaceEntry, DNS_INTERFACE_SETTINGS,
    DNS_INTERFACE_SETTINGS_VERSION1, DNS_SETTING_IPV6, DNS_SETTING_NAMESERVER, DNS_SETTING_SEARCHLIST,
    MIB_IPFORWARD_ROW2, MIB_IPINTERFACE_ROW, MIB_UNICASTIPADDRESS_ROW,
};
use windows_sys::Win32::NetworkManagement::Ndis::NET_LUID_LH;
use windows_sys::Win32::Networking::WinSock::{
    IpDadStatePreferred, AF_INET, AF_INET6, IN6_ADDR, IN6_ADDR_0, IN_ADDR, IN_ADDR_0, MIB_IPPROTO_NETMGMT, SOCKADDR_IN,
    SOCKADDR_IN6, SOCKADDR_IN6_0, SOCKADDR_INET,
};
use windows_sys::Win32::System::LibraryLoader::{GetProcAddress, LoadLibraryExW, LOAD_LIBRARY_SEARCH_SYSTEM32};
use windows_sys::Win32::System::Threading::{
    GetExitCodeProcess, GetProcessTimes, OpenProcess, PROCESS_QUERY_LIMITED_INFORMATION,
};

use super::journal::{
    create_state_dir, journal_path, owner_alive_with, recover_with, remove_optional, Journal, RouteEntry, UndoStats,
};
use super::windows_plan::{
    self, dns_clear, is_exists, is_gone, BestRoute, DnsSetting, Interface, InterfaceMetric, NewHostRoute, Op, UndoOp,
};
use super::{NetworkConfig, PlatformError, RecoveryReport};

/// ERROR_ACCESS_DENIED (winerror.h).
const ERROR_ACCESS_DENIED: i32 = 5;
/// IF_MAX_STRING_SIZE + 1: the longest interface alias with its NUL.
const ALIAS_LEN: usize = 257;

fn check(call: &'static str, code: WIN32_ERROR) -> Result<(), PlatformError> {
    if code == NO_ERROR {
        Ok(())
    } else {
        Err(PlatformError::Os { call, code })
    }
}

/// True if `e` says the object is already gone (the TUN disappeared with its routes, a route was deleted).
fn gone(e: &PlatformError) -> bool {
    matches!(e, PlatformError::Os { code, .. } if is_gone(*code))
}

fn exists(e: &PlatformError) -> bool {
    matches!(e, PlatformError::Os { code, .. } if is_exists(*code))
}

/// `Ok(true)` if done, `Ok(false)` if there was nothing left to undo.
fn done(r: Result<(), PlatformError>) -> Result<bool, PlatformError> {
    match r {
        Ok(()) => Ok(true),
        Err(e) if gone(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `s` as a NUL-terminated UTF-16 string.
fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(Some(0)).collect()
}

fn net_luid(luid: u64) -> NET_LUID_LH {
    NET_LUID_LH { Value: luid }
}

fn luid_value(luid: &NET_LUID_LH) -> u64 {
    // SAFETY: both union variants are 64 plain bits; any bit pattern is a valid u64.
    unsafe { luid.Value }
}

/// The LUID of the interface with alias `alias` (the name the `tun` crate gave the Wintun adapter).
fn luid_of(alias: &str) -> Result<u64, PlatformError> {
    let name = wide(alias);
    let mut luid = NET_LUID_LH::default();
    // SAFETY: `name` is NUL-terminated and outlives the call; `luid` is a valid out pointer.
    check("ConvertInterfaceAliasToLuid", unsafe { ConvertInterfaceAliasToLuid(name.as_ptr(), &mut luid) })?;
    Ok(luid_value(&luid))
}

/// The alias of interface `luid`, for the journal and logs (`luid 0x...` if it cannot be read).
fn alias_of(luid: u64) -> String {
    let mut buf = [0u16; ALIAS_LEN];
    let l = net_luid(luid);
    // SAFETY: `buf` holds ALIAS_LEN characters, the length passed.
    let code = unsafe { ConvertInterfaceLuidToAlias(&l, buf.as_mut_ptr(), ALIAS_LEN) };
    if code != NO_ERROR {
        return format!("luid {luid:#x}");
    }
    let end = buf.iter().position(|&c| c == 0).unwrap_or(ALIAS_LEN);
    String::from_utf16_lossy(&buf[..end])
}

fn guid_of(luid: u64) -> Result<GUID, PlatformError> {
    let l = net_luid(luid);
    let mut guid = GUID::from_u128(0);
    // SAFETY: valid in and out pointers for the duration of the call.
    check("ConvertInterfaceLuidToGuid", unsafe { ConvertInterfaceLuidToGuid(&l, &mut guid) })?;
    Ok(guid)
}

/// A zeroed SOCKADDR_INET holding `addr` (port 0, no scope: routes name their interface by LUID).
fn to_sockaddr(addr: IpAddr) -> SOCKADDR_INET {
    let mut sa = SOCKADDR_INET::default();
    match addr {
        IpAddr::V4(a) => {
            sa.Ipv4 = SOCKADDR_IN {
                sin_family: AF_INET,
                sin_port: 0,
                // S_addr is in network byte order: the octets as they are in memory.
                sin_addr: IN_ADDR { S_un: IN_ADDR_0 { S_addr: u32::from_ne_bytes(a.octets()) } },
                sin_zero: [0; 8],
            }
        }
        IpAddr::V6(a) => {
            sa.Ipv6 = SOCKADDR_IN6 {
                sin6_family: AF_INET6,
                sin6_port: 0,
                sin6_flowinfo: 0,
                sin6_addr: IN6_ADDR { u: IN6_ADDR_0 { Byte: a.octets() } },
                Anonymous: SOCKADDR_IN6_0 { sin6_scope_id: 0 },
            }
        }
    }
    sa
}

fn from_sockaddr(sa: &SOCKADDR_INET) -> Option<IpAddr> {
    // SAFETY: `si_family` overlays the family field of both variants, and the variant it names is the one the
    // API filled; all fields are plain integers and byte arrays.
    unsafe {
        match sa.si_family {
            AF_INET => Some(IpAddr::V4(Ipv4Addr::from(sa.Ipv4.sin_addr.S_un.S_addr.to_ne_bytes()))),
            AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(sa.Ipv6.sin6_addr.u.Byte))),
            _ => None,
        }
    }
}

/// The current best route to `dest` (`GetBestRoute2`), whatever interface it takes.
fn best_route(dest: IpAddr) -> Result<BestRoute, PlatformError> {
    let d = to_sockaddr(dest);
    let mut row = MIB_IPFORWARD_ROW2::default();
    let mut source = SOCKADDR_INET::default();
    // SAFETY: null LUID/source mean "any"; `d`, `row` and `source` are valid for the call.
    check("GetBestRoute2", unsafe { GetBestRoute2(ptr::null(), 0, ptr::null(), &d, 0, &mut row, &mut source) })?;
    let luid = luid_value(&row.InterfaceLuid);
    let next_hop = from_sockaddr(&row.NextHop).filter(|a| !a.is_unspecified());
    Ok(BestRoute { interface: Interface { luid, alias: alias_of(luid) }, next_hop })
}

/// The route row for one of our routes: static (`MIB_IPPROTO_NETMGMT`), metric 0 on top of the interface's.
fn route_row(r: &RouteEntry) -> Result<MIB_IPFORWARD_ROW2, PlatformError> {
    let luid = r.luid.ok_or_else(|| PlatformError::InvalidInterfaceName(r.dev.clone()))?;
    let mut row = MIB_IPFORWARD_ROW2::default();
    // SAFETY: `row` is a valid, writable row.
    unsafe { InitializeIpForwardEntry(&mut row) };
    row.InterfaceLuid = net_luid(luid);
    row.DestinationPrefix.Prefix = to_sockaddr(r.destination);
    row.DestinationPrefix.PrefixLength = r.prefix_len;
    let on_link = match r.destination {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    row.NextHop = to_sockaddr(r.via.unwrap_or(on_link));
    row.Metric = 0;
    row.Protocol = MIB_IPPROTO_NETMGMT;
    Ok(row)
}

fn add_route(r: &RouteEntry) -> Result<(), PlatformError> {
    let row = route_row(r)?;
    // SAFETY: `row` is a fully initialized route row.
    check("CreateIpForwardEntry2", unsafe { CreateIpForwardEntry2(&row) })
}

fn delete_route(r: &RouteEntry) -> Result<(), PlatformError> {
    let row = route_row(r)?;
    // SAFETY: as in `add_route`.
    check("DeleteIpForwardEntry2", unsafe { DeleteIpForwardEntry2(&row) })
}

/// The IP interface row of `luid` for one family (`GetIpInterfaceEntry`).
fn interface_row(luid: u64, ipv6: bool) -> Result<MIB_IPINTERFACE_ROW, PlatformError> {
    let mut row = MIB_IPINTERFACE_ROW::default();
    // SAFETY: `row` is a valid, writable row.
    unsafe { InitializeIpInterfaceEntry(&mut row) };
    row.Family = if ipv6 { AF_INET6 } else { AF_INET };
    row.InterfaceLuid = net_luid(luid);
    // SAFETY: `row` names the interface and family; the call fills the rest.
    check("GetIpInterfaceEntry", unsafe { GetIpInterfaceEntry(&mut row) })?;
    Ok(row)
}

/// The metric settings of `luid` for the families it has (IPv6 may be disabled on the host).
fn current_metrics(luid: u64) -> Result<Vec<InterfaceMetric>, PlatformError> {
    let mut out = Vec::new();
    for ipv6 in [false, true] {
        match interface_row(luid, ipv6) {
            Ok(row) => out.push(InterfaceMetric { ipv6, automatic: row.UseAutomaticMetric, metric: row.Metric }),
            Err(e) if ipv6 && gone(&e) => tracing::debug!(tun = luid, "no IPv6 on the TUN; its metric stays"),
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

fn set_metric(luid: u64, ipv6: bool, automatic: bool, metric: u32) -> Result<(), PlatformError> {
    let mut row = interface_row(luid, ipv6)?;
    row.UseAutomaticMetric = automatic;
    row.Metric = metric;
    if !ipv6 {
        // SetIpInterfaceEntry rejects an IPv4 row with the site prefix length GetIpInterfaceEntry reports.
        row.SitePrefixLength = 0;
    }
    // SAFETY: `row` is the complete row just read, with two fields changed.
    check("SetIpInterfaceEntry", unsafe { SetIpInterfaceEntry(&mut row) })
}

type SetInterfaceDnsSettingsFn = unsafe extern "system" fn(GUID, *const DNS_INTERFACE_SETTINGS) -> WIN32_ERROR;

/// `SetInterfaceDnsSettings` (Windows 10 version 2004 and later), looked up at run time so that the client still
/// starts on older systems and can say what is missing.
fn set_dns_api() -> Option<SetInterfaceDnsSettingsFn> {
    static API: OnceLock<Option<SetInterfaceDnsSettingsFn>> = OnceLock::new();
    *API.get_or_init(|| {
        let lib = wide("iphlpapi.dll");
        // SAFETY: NUL-terminated name; loads from System32 only. The module stays loaded for the process's life.
        let module = unsafe { LoadLibraryExW(lib.as_ptr(), ptr::null_mut(), LOAD_LIBRARY_SEARCH_SYSTEM32) };
        if module.is_null() {
            return None;
        }
        // SAFETY: a valid module handle and a NUL-terminated ASCII name.
        let proc = unsafe { GetProcAddress(module, c"SetInterfaceDnsSettings".as_ptr().cast()) }?;
        // SAFETY: the documented signature: DWORD SetInterfaceDnsSettings(GUID, const DNS_INTERFACE_SETTINGS*).
        Some(unsafe { std::mem::transmute::<unsafe extern "system" fn() -> isize, SetInterfaceDnsSettingsFn>(proc) })
    })
}

/// Sets (or with [`dns_clear`], clears) the DNS servers and search list of interface `luid`.
fn set_dns(luid: u64, settings: &[DnsSetting]) -> Result<(), PlatformError> {
    let api = set_dns_api().ok_or(PlatformError::DnsApiUnavailable)?;
    let guid = guid_of(luid)?;
    for s in settings {
        let mut servers = wide(&s.servers);
        let mut search = s.search.as_deref().map(wide);
        let mut flags = u64::from(DNS_SETTING_NAMESERVER);
        if s.ipv6 {
            flags |= u64::from(DNS_SETTING_IPV6);
        }
        if search.is_some() {
            flags |= u64::from(DNS_SETTING_SEARCHLIST);
        }
        let settings = DNS_INTERFACE_SETTINGS {
            Version: DNS_INTERFACE_SETTINGS_VERSION1,
            Flags: flags,
            NameServer: servers.as_mut_ptr(),
            SearchList: search.as_mut().map_or(ptr::null_mut(), |v| v.as_mut_ptr()),
            ..DNS_INTERFACE_SETTINGS::default()
        };
        // SAFETY: the strings are NUL-terminated and live until after the call; the flags name only them.
        check("SetInterfaceDnsSettings", unsafe { api(guid, &settings) })?;
    }
    Ok(())
}

/// Creation time of process `pid` (100 ns units since 1601) if it still runs; `Err(())` if it exists but we may
/// not look at it.
fn process_start(pid: u32) -> Result<Option<u64>, ()> {
    // SAFETY: plain call; a null handle is checked below.
    let handle = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
    if handle.is_null() {
        return match std::io::Error::last_os_error().raw_os_error() {
            Some(ERROR_ACCESS_DENIED) => Err(()),
            _ => Ok(None),
        };
    }
    let (mut creation, mut exit, mut kernel, mut user) =
        (FILETIME::default(), FILETIME::default(), FILETIME::default(), FILETIME::default());
    // SAFETY: a valid process handle and four valid out pointers.
    let times = unsafe { GetProcessTimes(handle, &mut creation, &mut exit, &mut kernel, &mut user) } != 0;
    let mut code = 0u32;
    // SAFETY: as above.
    let running = unsafe { GetExitCodeProcess(handle, &mut code) } != 0 && code == STILL_ACTIVE as u32;
    // SAFETY: the handle is ours and closed once.
    unsafe { CloseHandle(handle) };
    let start = (u64::from(creation.dwHighDateTime) << 32) | u64::from(creation.dwLowDateTime);
    Ok((times && running).then_some(start))
}

/// True if the process that wrote `journal` still runs (or exists and cannot be inspected: left alone).
fn owner_alive(journal: &Journal) -> bool {
    match process_start(journal.owner_pid) {
        Ok(start) => owner_alive_with(journal, |_| start),
        Err(()) => true,
    }
}

/// Assigns an IPv6 address to the TUN (no duplicate address detection: the address is ours).
pub(crate) fn add_ipv6_address(name: &str, addr: Ipv6Addr, len: u8) -> Result<(), PlatformError> {
    if len > 128 {
        return Err(PlatformError::InvalidPrefix(format!("{addr}/{len}")));
    }
    let luid = luid_of(name)?;
    let mut row = MIB_UNICASTIPADDRESS_ROW::default();
    // SAFETY: `row` is a valid, writable row.
    unsafe { InitializeUnicastIpAddressEntry(&mut row) };
    row.InterfaceLuid = net_luid(luid);
    row.Address = to_sockaddr(IpAddr::V6(addr));
    row.OnLinkPrefixLength = len;
    row.DadState = IpDadStatePreferred;
    // SAFETY: a fully initialized row.
    match check("CreateUnicastIpAddressEntry", unsafe { CreateUnicastIpAddressEntry(&row) }) {
        Err(e) if exists(&e) => Ok(()),
        other => other,
    }
}

/// The interface named `alias`.
fn interface(alias: &str) -> Result<Interface, PlatformError> {
    Ok(Interface { luid: luid_of(alias)?, alias: alias.to_owned() })
}

/// The physical path to `gateway` (`None`: it is this host), refusing one through the TUN.
fn gateway_path(gateway: IpAddr, tun: &Interface) -> Result<Option<BestRoute>, PlatformError> {
    let best = best_route(gateway).map_err(|e| PlatformError::GatewayRoute { gateway, reason: e.to_string() })?;
    windows_plan::gateway_path(gateway, tun, best)
}

/// Applies `cfg`; returns the journal (already on disk) listing what was changed.
pub(crate) fn apply(cfg: &NetworkConfig, state_dir: &Path) -> Result<(PathBuf, Journal), PlatformError> {
    let wanted = windows_plan::wanted(cfg)?;
    let tun = interface(&cfg.tun_name)?;
    let path = if wanted.gateway_host_route { gateway_path(cfg.gateway, &tun)? } else { None };
    // Excluded prefixes keep their current best route.
    let mut excluded = Vec::new();
    for p in windows_plan::excluded_networks(cfg)? {
        excluded.push((p, best_route(p.0)?));
    }
    let current = if wanted.full_tunnel { current_metrics(tun.luid)? } else { Vec::new() };
    // Before any change: a missing DNS API fails the whole setup instead of leaving DNS outside the tunnel.
    if !cfg.dns.is_empty() && set_dns_api().is_none() {
        return Err(PlatformError::DnsApiUnavailable);
    }

    create_state_dir(state_dir)?;
    let jpath = journal_path(state_dir, &tun.alias);
    if fs::symlink_metadata(&jpath).is_ok() {
        return Err(PlatformError::JournalExists(jpath));
    }
    let me = std::process::id();
    let start = process_start(me).ok().flatten();
    let mut journal = windows_plan::journal(cfg, &wanted, &tun, path.as_ref(), &excluded, &current, me, start);
    journal.save(&jpath)?;

    match install(&mut journal, &jpath, cfg) {
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

/// Makes the changes the journal lists.
fn install(journal: &mut Journal, jpath: &Path, cfg: &NetworkConfig) -> Result<(), PlatformError> {
    for op in windows_plan::apply_ops(journal, cfg) {
        match op {
            Op::AddRoute(r) => match add_route(&r) {
                Ok(()) => {
                    tracing::info!(route = %format_args!("{}/{}", r.destination, r.prefix_len), dev = %r.dev, via = ?r.via, "route added");
                }
                // The same route exists already (an on-link prefix of the TUN's address, or a host route to the
                // gateway someone else pinned): it is not ours to delete.
                Err(e) if exists(&e) => {
                    tracing::info!(route = %format_args!("{}/{}", r.destination, r.prefix_len), dev = %r.dev, "route already present");
                    journal.routes.retain(|x| x != &r);
                    journal.save(jpath)?;
                }
                Err(e) => return Err(e),
            },
            Op::SetMetric(m) => {
                set_metric(m.luid, m.ipv6, false, m.metric)?;
                tracing::info!(tun = %journal.tun_name, ipv6 = m.ipv6, metric = m.metric, "interface metric set");
            }
            Op::SetDns { luid, alias, settings } => {
                set_dns(luid, &settings)?;
                tracing::info!(tun = %alias, dns = ?cfg.dns, domains = ?cfg.dns_domains, "DNS set on the interface");
            }
        }
    }
    Ok(())
}

/// Undoes everything `journal` lists (DNS, metrics, then routes in reverse order), then deletes the journal.
/// Errors leave the journal in place for a later retry.
pub(crate) fn restore(jpath: &Path, journal: &Journal) -> Result<UndoStats, PlatformError> {
    let mut stats = UndoStats::default();
    let mut first_error: Option<PlatformError> = None;
    for op in windows_plan::undo_ops(journal) {
        let result = match &op {
            UndoOp::ClearDns { luid, alias } => match set_dns(*luid, &dns_clear()) {
                Ok(()) => {
                    stats.dns_restored += 1;
                    tracing::info!(tun = %alias, "DNS settings cleared");
                    Ok(())
                }
                // Without the API nothing was set; with the interface gone its settings went too.
                Err(PlatformError::DnsApiUnavailable) => Ok(()),
                Err(e) if gone(&e) => Ok(()),
                Err(e) => Err(e),
            },
            UndoOp::RestoreMetric(m) => done(set_metric(m.luid, m.ipv6, m.previous_automatic, m.previous_metric))
                .map(|d| {
                    if d {
                        tracing::info!(tun = %journal.tun_name, ipv6 = m.ipv6, "interface metric restored");
                    }
                }),
            UndoOp::DeleteRoute(r) => done(delete_route(r)).map(|d| {
                if d {
                    stats.routes_removed += 1;
                    tracing::info!(route = %format_args!("{}/{}", r.destination, r.prefix_len), dev = %r.dev, "route removed");
                }
            }),
            UndoOp::Foreign(w) => {
                tracing::warn!("{w}");
                stats.warnings.push(w.clone());
                Ok(())
            }
        };
        if let Err(e) = result {
            tracing::error!(error = %e, ?op, "undoing a network change failed");
            first_error.get_or_insert(e);
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    remove_optional(jpath)?;
    Ok(stats)
}

/// Points the gateway host route at `new` instead of `old` (see the Linux variant): the new route is journaled
/// before it is added, the old one dropped from the journal after it is gone.
pub(crate) fn move_gateway(jpath: &Path, journal: &mut Journal, old: IpAddr, new: IpAddr) -> Result<(), PlatformError> {
    let plan = windows_plan::plan_move(journal, old, new);
    let route = match plan.add {
        NewHostRoute::None => None,
        NewHostRoute::Route(r) => Some(r),
        NewHostRoute::Lookup => {
            let tun = match windows_plan::journal_tun(journal) {
                Some(t) => t,
                None => interface(&journal.tun_name)?,
            };
            gateway_path(new, &tun)?.map(|p| windows_plan::host_route(new, &p))
        }
    };
    if let Some(route) = route {
        journal.routes.insert(0, route.clone());
        journal.save(jpath)?;
        match add_route(&route) {
            Ok(()) => tracing::info!(gateway = %new, dev = %route.dev, via = ?route.via, "gateway host route added"),
            Err(e) => {
                journal.routes.retain(|x| x != &route);
                journal.save(jpath)?;
                if !exists(&e) {
                    return Err(e);
                }
                tracing::info!(gateway = %new, "host route to gateway already present");
            }
        }
    }
    if let Some(r) = plan.remove {
        done(delete_route(&r))?;
        journal.routes.retain(|x| x != &r);
        journal.save(jpath)?;
        tracing::info!(gateway = %old, "old gateway host route removed");
    }
    Ok(())
}

/// Processes every journal in `state_dir`. Nothing more to validate than the journal's location: undoing goes
/// through typed API calls on LUIDs, no command line or file path, and Linux entries are left alone.
pub(crate) fn recover(state_dir: &Path) -> Result<Option<RecoveryReport>, PlatformError> {
    recover_with(state_dir, owner_alive, |_| Ok(()), restore)
}
