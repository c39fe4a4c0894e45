//! Linux platform layer against the real kernel, each test in its own network namespace.
//!
//! Runs only with `IKELINK_INTEROP=1` as root; otherwise each test prints "skipped" and passes. A test
//! creates `ikltest-<pid>-<n>` with a veth "physical" interface (192.0.2.2/24, default route via
//! 192.0.2.1), then re-executes this test binary inside it (`ip netns exec`) with
//! `IKELINK_PLATFORM_CHILD=<phase>` set; the child does the work and asserts. The namespace and the
//! test's temp directory are removed on drop, also on failure. No traffic leaves the namespace.
#![cfg(target_os = "linux")]

use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ikelink::platform::{
    apply, mss_clamp, open_tun, parse_prefix, recover, recover_with_resolv_conf, DnsBackend, NetworkConfig,
    PlatformError, Tun, TunConfig,
};

const CHILD_ENV: &str = "IKELINK_PLATFORM_CHILD";
const DIR_ENV: &str = "IKELINK_PLATFORM_DIR";
const GATEWAY: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
const TUN_ADDR: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 1);
const ORIGINAL_RESOLV: &[u8] =
    b"# original resolver\r\nnameserver 192.0.2.53\nsearch lan.example\noptions edns0\n\xff\n";

// ---------------------------------------------------------------------------------------------------
// Parent side: namespace guard and child launcher.

fn interop_enabled() -> bool {
    if std::env::var("IKELINK_INTEROP").as_deref() != Ok("1") {
        return false;
    }
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(2)) == Some("0");
    if !root {
        println!("IKELINK_INTEROP=1 but not root");
    }
    root
}

fn child_phase() -> Option<String> {
    std::env::var(CHILD_ENV).ok()
}

fn state_dir() -> PathBuf {
    PathBuf::from(std::env::var(DIR_ENV).expect("child without dir")).join("state")
}

fn test_dir() -> PathBuf {
    PathBuf::from(std::env::var(DIR_ENV).expect("child without dir"))
}

/// A network namespace and temp directory, both removed on drop.
struct Netns {
    name: String,
    dir: PathBuf,
}

fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program} {args:?}: {e}"));
    assert!(out.status.success(), "{program} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Netns {
    fn new() -> Netns {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("ikltest-{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join(&name);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        sh("ip", &["netns", "add", &name]);
        let ns = Netns { name, dir };
        for cmd in [
            "link set lo up",
            "link add phys0 type veth peer name phys0p",
            "link set phys0 up",
            "link set phys0p up",
            "addr add 192.0.2.2/24 dev phys0",
            "route add default via 192.0.2.1",
        ] {
            let mut args = vec!["netns", "exec", &ns.name, "ip"];
            args.extend(cmd.split(' '));
            sh("ip", &args);
        }
        ns
    }

    /// Runs test `test` in the namespace with phase `phase`; panics (showing its output) if it fails.
    fn run_child(&self, test: &str, phase: &str) {
        let exe = std::env::current_exe().unwrap();
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .arg(&exe)
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, phase)
            .env(DIR_ENV, &self.dir)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        println!("--- child {test}/{phase} ({}) ---\n{stdout}\n{stderr}", out.status);
        assert!(out.status.success(), "child {test}/{phase} failed");
        // Guard against the filter matching nothing (the child would "pass" without running).
        assert!(stdout.contains("1 passed") || phase.ends_with("crash"), "child {test}/{phase} did not run the test");
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Parent driver: skip unless enabled, else run the phases in one fresh namespace.
fn run_in_namespace(test: &str, phases: &[&str]) {
    if !interop_enabled() {
        println!("skipped: set IKELINK_INTEROP=1 and run as root");
        return;
    }
    let ns = Netns::new();
    for phase in phases {
        ns.run_child(test, phase);
    }
}

// ---------------------------------------------------------------------------------------------------
// Child side helpers.

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// `ip -4 route` and `ip -6 route` (main table), sorted lines.
fn routes() -> Vec<String> {
    let mut lines: Vec<String> = ["-4", "-6"]
        .iter()
        .flat_map(|f| {
            sh("ip", &[f, "route", "show", "table", "main"]).lines().map(|l| l.trim().to_owned()).collect::<Vec<_>>()
        })
        .filter(|l| !l.is_empty())
        .collect();
    lines.sort();
    lines
}

fn has_route(lines: &[String], prefix: &str, needle: &str) -> bool {
    lines.iter().any(|l| l.starts_with(&format!("{prefix} ")) && l.contains(needle))
}

fn route_get(addr: &str) -> String {
    sh("ip", &["route", "get", addr])
}

fn open_test_tun() -> Tun {
    let tun = open_tun(&TunConfig { name: None, ipv4: Some((TUN_ADDR, 24)), ipv6: None, mtu: 1400 }).expect("open_tun");
    assert!(tun.name().starts_with("ikl"), "name {}", tun.name());
    let link = sh("ip", &["-o", "link", "show", "dev", tun.name()]);
    assert!(link.contains("mtu 1400"), "{link}");
    assert!(link.contains(",UP"), "{link}");
    let addr = sh("ip", &["-o", "-4", "addr", "show", "dev", tun.name()]);
    assert!(addr.contains("inet 100.64.0.1/24"), "{addr}");
    tun
}

fn prefixes(list: &[&str]) -> Vec<(IpAddr, u8)> {
    list.iter().map(|s| parse_prefix(s).unwrap()).collect()
}

fn full_tunnel_config(tun: &str) -> NetworkConfig {
    let mut cfg = NetworkConfig::new(tun, IpAddr::V4(GATEWAY));
    cfg.routes = prefixes(&["0.0.0.0/0", "::/0"]);
    cfg
}

fn resolv_conf_path() -> PathBuf {
    test_dir().join("resolv.conf")
}

fn with_dns(mut cfg: NetworkConfig) -> NetworkConfig {
    cfg.dns = vec!["100.64.0.53".parse().unwrap()];
    cfg.dns_domains = vec!["corp.example".to_owned()];
    cfg.resolv_conf = resolv_conf_path();
    cfg.dns_backend = DnsBackend::ResolvConf;
    cfg
}

fn assert_full_tunnel_routes(tun: &str, before: &[String], after: &[String]) {
    let dev = format!("dev {tun} proto 173");
    assert!(has_route(after, "0.0.0.0/1", &dev), "{after:#?}");
    assert!(has_route(after, "128.0.0.0/1", &dev), "{after:#?}");
    assert!(has_route(after, "::/1", &dev), "{after:#?}");
    assert!(has_route(after, "8000::/1", &dev), "{after:#?}");
    assert!(has_route(after, "203.0.113.2", "via 192.0.2.1 dev phys0 proto 173"), "{after:#?}");
    let defaults = |l: &[String]| -> Vec<String> { l.iter().filter(|x| x.starts_with("default")).cloned().collect() };
    assert_eq!(defaults(before), defaults(after), "default route changed");
    assert_eq!(defaults(after), vec!["default via 192.0.2.1 dev phys0".to_owned()]);
    assert!(route_get("198.51.100.7").contains(&format!("dev {tun}")));
    assert!(route_get("203.0.113.9").contains(&format!("dev {tun}")));
    assert!(route_get("203.0.113.2").contains("via 192.0.2.1 dev phys0"));
}

// ---------------------------------------------------------------------------------------------------
// (a) Full tunnel.

#[test]
fn full_tunnel() {
    let Some(_phase) = child_phase() else {
        return run_in_namespace("full_tunnel", &["main"]);
    };
    let rt = runtime();
    let _enter = rt.enter();
    let tun = open_test_tun();
    let before = routes();
    let cfg = full_tunnel_config(tun.name());
    let mut applied = apply(&cfg, &state_dir()).expect("apply");
    assert!(applied.journal_path().exists());
    let after = routes();
    println!("routes with the full tunnel applied:\n{}", after.join("\n"));
    assert_full_tunnel_routes(tun.name(), &before, &after);
    // The TUN's own connected subnet is untouched, and nothing else changed.
    assert_eq!(after.len(), before.len() + 5, "{after:#?}");

    applied.restore().expect("restore");
    assert_eq!(routes(), before);
    assert!(!applied.journal_path().exists());
    applied.restore().expect("restore is idempotent");
    assert_eq!(routes(), before);

    // A failure halfway (a conflicting route) rolls back what was already installed.
    sh("ip", &["route", "add", "198.51.100.0/24", "via", "192.0.2.1", "dev", "phys0"]);
    let conflicting = routes();
    let mut cfg = full_tunnel_config(tun.name());
    cfg.routes.push(parse_prefix("198.51.100.0/24").unwrap());
    match apply(&cfg, &state_dir()) {
        Err(PlatformError::Command { command, stderr, .. }) => {
            assert!(command.contains("198.51.100.0/24"), "{command}");
            assert!(stderr.contains("File exists"), "{stderr}");
        }
        other => panic!("expected a route conflict, got {other:?}"),
    }
    assert_eq!(routes(), conflicting, "rolled back");
    assert_eq!(fs::read_dir(state_dir()).unwrap().count(), 0, "no journal left");
}

// ---------------------------------------------------------------------------------------------------
// (b) Split tunnel, plus the packet path through the TUN and MSS clamping of a kernel SYN.

#[test]
fn split_tunnel() {
    let Some(_phase) = child_phase() else {
        return run_in_namespace("split_tunnel", &["main"]);
    };
    let rt = runtime();
    let _enter = rt.enter();
    let before_tun = routes();
    let tun = open_test_tun();
    let before = routes();
    let mut cfg = NetworkConfig::new(tun.name(), IpAddr::V4(GATEWAY));
    // The TUN's connected subnet is skipped; host bits are ignored.
    cfg.routes = prefixes(&["198.51.100.7/24", "100.64.0.0/24"]);
    let mut applied = apply(&cfg, &state_dir()).expect("apply");
    assert_eq!(applied.routes(), prefixes(&["198.51.100.0/24"]));
    let after = routes();
    let added: Vec<&String> = after.iter().filter(|l| !before.contains(l)).collect();
    assert_eq!(added.len(), 1, "{after:#?}");
    assert!(added[0].starts_with(&format!("198.51.100.0/24 dev {} proto 173", tun.name())));
    assert!(before.iter().all(|l| after.contains(l)), "{after:#?}");
    assert!(route_get("198.51.100.7").contains(&format!("dev {}", tun.name())));
    assert!(route_get("203.0.113.2").contains("via 192.0.2.1 dev phys0"));

    rt.block_on(syn_through_tun(&tun));

    // The TUN disappears first (as when the driver exits): restore still succeeds.
    drop(tun);
    applied.restore().expect("restore with TUN gone");
    assert_eq!(routes(), before_tun);
}

/// Connects to 198.51.100.7:80 (routed into the TUN), reads the kernel's SYN from the TUN, checks MSS
/// clamping on it, then answers with a RST through the TUN and expects the connect to be refused.
async fn syn_through_tun(tun: &Tun) {
    let target = SocketAddr::from(([198, 51, 100, 7], 80));
    let connect = tokio::spawn(async move {
        tokio::time::timeout(Duration::from_secs(10), tokio::net::TcpStream::connect(target)).await
    });
    let mut buf = vec![0u8; 2048];
    let mut syn = None;
    for _ in 0..50 {
        let n = tokio::time::timeout(Duration::from_secs(5), tun.recv(&mut buf))
            .await
            .expect("no packet from the TUN")
            .expect("recv");
        // With segmentation offload each read starts with a virtio-net header; Segments strips it and
        // completes a partial checksum, as the data plane does.
        let mut packet = vec![0u8; 2048];
        let n = if tun.offload() {
            let mut segs = ikelink::platform::Segments::new(&mut buf[..n]).expect("offload frame");
            match segs.next_into(&mut packet) {
                Some(Ok(len)) => len,
                _ => continue,
            }
        } else {
            packet[..n].copy_from_slice(&buf[..n]);
            n
        };
        let p = &packet[..n];
        if n >= 40 && p[0] == 0x45 && p[9] == 6 && p[16..20] == [198, 51, 100, 7] && p[33] & 0x02 != 0 {
            syn = Some(p.to_vec());
            break;
        }
    }
    let mut syn = syn.expect("no SYN seen");
    assert!(tcp4_checksum_ok(&syn));
    assert_eq!(mss_of(&syn), Some(1360), "kernel MSS for MTU 1400");
    assert!(mss_clamp(&mut syn, 1200));
    assert_eq!(mss_of(&syn), Some(1200));
    assert!(tcp4_checksum_ok(&syn), "checksum after clamping");

    let rst = rst_for(&syn);
    assert!(tcp4_checksum_ok(&rst));
    let sent = tun.send(&rst).await.expect("send");
    assert_eq!(sent, rst.len());
    let result = connect.await.unwrap().expect("connect did not finish");
    let err = result.expect_err("connect should be refused");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
}

fn ones_sum(mut sum: u32, data: &[u8]) -> u32 {
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum
}

fn tcp4_pseudo_sum(p: &[u8]) -> u32 {
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let tcp_len = p.len() - ihl;
    let mut pseudo = p[12..20].to_vec();
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&(tcp_len as u16).to_be_bytes());
    ones_sum(0, &pseudo)
}

fn tcp4_checksum_ok(p: &[u8]) -> bool {
    let ihl = usize::from(p[0] & 0x0f) * 4;
    ones_sum(tcp4_pseudo_sum(p), &p[ihl..]) == 0xffff && ones_sum(0, &p[..ihl]) == 0xffff
}

fn mss_of(p: &[u8]) -> Option<u16> {
    let tcp = &p[usize::from(p[0] & 0x0f) * 4..];
    let end = usize::from(tcp[12] >> 4) * 4;
    let mut i = 20;
    while i + 1 < end {
        match tcp[i] {
            0 => return None,
            1 => i += 1,
            2 => return Some(u16::from_be_bytes([tcp[i + 2], tcp[i + 3]])),
            _ => i += usize::from(tcp[i + 1]).max(2),
        }
    }
    None
}

/// A RST|ACK answering the IPv4 SYN `syn`, with valid checksums.
fn rst_for(syn: &[u8]) -> Vec<u8> {
    let ihl = usize::from(syn[0] & 0x0f) * 4;
    let tcp = &syn[ihl..];
    let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
    let mut p = vec![0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0];
    p.extend_from_slice(&syn[16..20]);
    p.extend_from_slice(&syn[12..16]);
    p.extend_from_slice(&tcp[2..4]);
    p.extend_from_slice(&tcp[0..2]);
    p.extend_from_slice(&0u32.to_be_bytes());
    p.extend_from_slice(&seq.wrapping_add(1).to_be_bytes());
    p.extend_from_slice(&[0x50, 0x14, 0, 0, 0, 0, 0, 0]);
    let ip_sum = !(ones_sum(0, &p[..20]) as u16);
    p[10..12].copy_from_slice(&ip_sum.to_be_bytes());
    let tcp_sum = !(ones_sum(tcp4_pseudo_sum(&p), &p[20..]) as u16);
    p[36..38].copy_from_slice(&tcp_sum.to_be_bytes());
    p
}

// ---------------------------------------------------------------------------------------------------
// (c) DNS through a resolv.conf override.

#[test]
fn dns_resolv_conf() {
    let Some(_phase) = child_phase() else {
        return run_in_namespace("dns_resolv_conf", &["main"]);
    };
    let rt = runtime();
    let _enter = rt.enter();
    let tun = open_test_tun();
    let conf = resolv_conf_path();
    fs::write(&conf, ORIGINAL_RESOLV).unwrap();
    let before = routes();

    // Split tunnel: VPN server first, original server and domains kept after it.
    let mut split = with_dns(NetworkConfig::new(tun.name(), IpAddr::V4(GATEWAY)));
    split.routes = prefixes(&["198.51.100.0/24"]);
    let mut applied = apply(&split, &state_dir()).expect("apply");
    let text = fs::read_to_string(&conf).unwrap();
    println!("split-tunnel resolv.conf:\n{text}");
    let servers: Vec<&str> = text.lines().filter(|l| l.starts_with("nameserver")).collect();
    assert_eq!(servers, vec!["nameserver 100.64.0.53", "nameserver 192.0.2.53"]);
    assert!(text.contains("search corp.example lan.example\n"));
    assert!(text.contains("options edns0\n"));
    applied.restore().expect("restore");
    assert_eq!(fs::read(&conf).unwrap(), ORIGINAL_RESOLV, "byte-exact restore");
    assert_eq!(routes(), before);
    assert_eq!(fs::read_dir(state_dir()).unwrap().count(), 0, "journal and backup removed");

    // Full tunnel: only the VPN's server; restored on drop of the guard.
    let full = with_dns(full_tunnel_config(tun.name()));
    {
        let _applied = apply(&full, &state_dir()).expect("apply");
        let text = fs::read_to_string(&conf).unwrap();
        println!("full-tunnel resolv.conf:\n{text}");
        assert!(text.contains("nameserver 100.64.0.53\n"));
        assert!(!text.contains("192.0.2.53"));
        assert!(text.contains("search corp.example\n"));
    }
    assert_eq!(fs::read(&conf).unwrap(), ORIGINAL_RESOLV, "restored on drop");
    assert_eq!(routes(), before);

    // No resolv.conf at all: ours is removed again.
    fs::remove_file(&conf).unwrap();
    let mut applied = apply(&split, &state_dir()).expect("apply");
    assert!(conf.exists());
    applied.restore().expect("restore");
    assert!(!conf.exists());
}

// ---------------------------------------------------------------------------------------------------
// (d) Crash recovery.

fn snapshot_path() -> PathBuf {
    test_dir().join("routes.snapshot")
}

fn save_snapshot() {
    fs::write(snapshot_path(), routes().join("\n")).unwrap();
}

fn load_snapshot() -> Vec<String> {
    let text = fs::read_to_string(snapshot_path()).unwrap();
    text.lines().map(str::to_owned).collect()
}

fn crash_after_apply(cfg: &NetworkConfig) -> ! {
    let applied = apply(cfg, &state_dir()).expect("apply");
    let after = routes();
    assert_full_tunnel_routes(&cfg.tun_name, &load_snapshot(), &after);
    assert_ne!(fs::read(resolv_conf_path()).unwrap(), ORIGINAL_RESOLV);
    // Simulate kill -9: no restore, no destructors.
    std::mem::forget(applied);
    println!("crashing on purpose");
    std::process::exit(0);
}

fn check_recovery(expected_routes_removed: usize) {
    // Plain `recover` only restores /etc/resolv.conf: this journal names the test's file, so it is refused
    // (moved aside, nothing undone).
    let tampered = recover(&state_dir()).expect("recover").expect("a journal");
    println!("{tampered:#?}");
    assert_eq!(tampered.rejected.len(), 1);
    assert!(tampered.journals.is_empty());
    assert_ne!(routes(), load_snapshot(), "nothing undone");
    let journal = &tampered.rejected[0];
    let mut aside = journal.clone().into_os_string();
    aside.push(".rejected");
    fs::rename(aside, journal).unwrap();

    let report =
        recover_with_resolv_conf(&state_dir(), &resolv_conf_path()).expect("recover").expect("a journal to recover");
    println!("{report:#?}");
    assert_eq!(report.journals.len(), 1);
    assert_eq!(report.dns_restored, 1);
    assert_eq!(report.routes_removed, expected_routes_removed);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(routes(), load_snapshot());
    assert_eq!(fs::read(resolv_conf_path()).unwrap(), ORIGINAL_RESOLV);
    assert_eq!(fs::read_dir(state_dir()).unwrap().count(), 0);
    assert!(recover(&state_dir()).unwrap().is_none(), "nothing left");
}

/// The crashed run's TUN vanished with the process (the kernel removed its routes): recovery removes
/// the gateway host route and restores DNS.
#[test]
fn crash_recovery_tun_gone() {
    let Some(phase) = child_phase() else {
        return run_in_namespace("crash_recovery_tun_gone", &["crash", "recover"]);
    };
    match phase.as_str() {
        "crash" => {
            let rt = runtime();
            let _enter = rt.enter();
            fs::write(resolv_conf_path(), ORIGINAL_RESOLV).unwrap();
            // The state to return to: before the TUN existed.
            save_snapshot();
            let tun = open_test_tun();
            crash_after_apply(&with_dns(full_tunnel_config(tun.name())));
        }
        "recover" => check_recovery(1),
        other => panic!("unknown phase {other}"),
    }
}

/// The crashed run's TUN is persistent and survives it: recovery deletes all five routes.
#[test]
fn crash_recovery_persistent_tun() {
    let Some(phase) = child_phase() else {
        return run_in_namespace("crash_recovery_persistent_tun", &["crash", "recover"]);
    };
    let tun = "ikltest0";
    match phase.as_str() {
        "crash" => {
            sh("ip", &["tuntap", "add", "dev", tun, "mode", "tun"]);
            sh("ip", &["addr", "add", "100.64.0.1/24", "dev", tun]);
            sh("ip", &["link", "set", tun, "up"]);
            fs::write(resolv_conf_path(), ORIGINAL_RESOLV).unwrap();
            save_snapshot();
            let cfg = with_dns(full_tunnel_config(tun));

            // While this process lives, its journal is not touched by recovery, and a second apply for
            // the same TUN is refused.
            let applied = apply(&cfg, &state_dir()).expect("apply");
            let report = recover(&state_dir()).unwrap().unwrap();
            assert!(report.journals.is_empty());
            assert_eq!(report.warnings.len(), 1, "{report:?}");
            assert!(applied.journal_path().exists());
            assert!(matches!(apply(&cfg, &state_dir()), Err(PlatformError::JournalExists(_))));
            drop(applied);
            assert_eq!(routes(), load_snapshot());

            crash_after_apply(&cfg);
        }
        "recover" => check_recovery(5),
        other => panic!("unknown phase {other}"),
    }
}
