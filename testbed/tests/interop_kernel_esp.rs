//! Interop with a strongSwan gateway that does ESP in the kernel (issue 11, item 5): `encap = no`, no
//! kernel-libipsec, on a direct path without NAT. The client's default settings must carry traffic: it forces UDP
//! encapsulation (faked NAT detection, RFC 3948), so the gateway sees "remote host is behind NAT" and installs its
//! Child SA with UDP encapsulation; the kernel counts the ESP.
//!
//! Needs a kernel with ESP. This machine's kernel has XFRM but no ESP, so here the test is skipped; it runs in the
//! VM of `scripts/vm-run.sh` (Debian 12's stock kernel), which `IKELINK_VM=1 scripts/test.sh` does. Needs root;
//! runs when IKELINK_INTEROP=1.
#![cfg(target_os = "linux")]

use std::process::Command;
use std::time::{Duration, Instant};

use ikelink_testbed::harness::*;

/// Generous: in the VM everything runs under software emulation (TCG), tens of times slower than native.
const T: Duration = Duration::from_secs(120);

/// Whether this kernel does ESP: a dummy ESP state (AES-GCM, tunnel mode) can be added in a scratch network
/// namespace. `Err` says why not.
fn kernel_esp_probe() -> std::result::Result<(), String> {
    let ns = format!("{NAME_PREFIX}{}x999999-espprobe", std::process::id());
    let run = |args: &[&str]| -> std::result::Result<(), String> {
        let out = Command::new("ip").args(args).output().map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
        }
    };
    run(&["netns", "add", &ns])?;
    let added = run(&[
        "-n",
        &ns,
        "xfrm",
        "state",
        "add",
        "src",
        "192.0.2.1",
        "dst",
        "192.0.2.2",
        "proto",
        "esp",
        "spi",
        "0x1000",
        "mode",
        "tunnel",
        "aead",
        "rfc4106(gcm(aes))",
        "0x0102030405060708090a0b0c0d0e0f1011121314",
        "128",
    ]);
    let _ = run(&["netns", "del", &ns]);
    added
}

/// `Some(reason)` when the test cannot run here.
fn skip_reason() -> Option<String> {
    kernel_esp_probe().err().map(|e| {
        format!(
            "skipped: this kernel has no ESP ({e}); the kernel-ESP gateway test runs in a VM: \
             IKELINK_VM=1 scripts/test.sh, or scripts/vm-run.sh env IKELINK_INTEROP=1 <this test binary>"
        )
    })
}

/// The numbers after `key=` in raw vici output, parsed.
fn raw_numbers(raw: &str, key: &str) -> Vec<u64> {
    raw_values(raw, key).iter().filter_map(|v| v.parse().ok()).collect()
}

#[test]
fn default_client_through_a_kernel_esp_gateway_without_nat() {
    ikelink_testbed::require_interop!();
    if let Some(why) = skip_reason() {
        eprintln!("{why}");
        return;
    }
    let started = Instant::now();
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    private_resolv(&tb);
    let cfg = GatewayConfig::kernel_esp();
    let gw = Gateway::start(&tb, &cfg).unwrap();
    let conf = std::fs::read_to_string(gw.dir().join("strongswan.conf")).unwrap();
    assert!(!conf.contains("kernel-libipsec") && conf.contains("kernel-netlink"), "{conf}");
    let swanctl_conf = std::fs::read_to_string(gw.dir().join("swanctl/swanctl.conf")).unwrap();
    assert!(swanctl_conf.contains("encap = no"), "{swanctl_conf}");
    let _iperf = tb.start_iperf_server(Role::Lan).unwrap();
    assert!(!tb.ping(Role::Cli, LAN_ADDR, 1).unwrap(), "the LAN must be reachable only through the tunnel");

    // The default profile: no [nat] section, so the client's defaults (forced UDP encapsulation) apply.
    let profile = psk_profile(None, None, &[LAN_NET]);
    assert!(!profile.contains("force_encap") && !profile.contains("[nat]"), "{profile}");
    let mut c = IkelinkClient::start(&tb, desktop_bin(), &profile, &["--stats-interval", "1"]).unwrap();
    c.wait_connected(T).unwrap();
    gw.wait_for_sa_count(1, T).map_err(|e| gw.explain(e)).unwrap();
    let nat = c.value("nat").unwrap();
    assert!(nat.starts_with("local=false remote=false") && nat.contains("encap=true"), "{nat}\n{}", c.transcript());
    eprintln!("connected after {:.1} s: esp: {}, nat: {nat}", started.elapsed().as_secs_f64(), c.value("esp").unwrap());

    // ESP on the wire between client and gateway: UDP-encapsulated (port 4500), never raw ESP (protocol 50).
    let cap = tb.start_capture(Role::Gw, "eth0", "esp or udp port 4500").unwrap();
    let pings = tb.ping_received(Role::Cli, LAN_ADDR, 5).unwrap();
    let wire = cap.finish().unwrap();
    assert!(pings >= 3, "{pings}/5 pings through the tunnel\n{wire}\n{}", c.transcript());
    eprintln!("ping: {pings}/5 replies from {LAN_ADDR} through the tunnel");
    let encapsulated = wire.lines().filter(|l| l.contains("UDP-encap: ESP(")).count();
    let raw_esp = wire.lines().filter(|l| l.contains(": ESP(") && !l.contains("UDP-encap")).count();
    assert!(encapsulated >= 2 * pings as usize, "UDP-encapsulated ESP both ways:\n{wire}");
    assert_eq!(raw_esp, 0, "no raw ESP:\n{wire}");

    let t = Instant::now();
    let r = tb
        .iperf_client_with(
            Role::Cli,
            LAN_ADDR,
            &IperfOptions { bytes: Some(5_000_000), timeout: Duration::from_secs(300), ..Default::default() },
        )
        .unwrap();
    assert!(r.sent_bytes >= 5_000_000 && r.bytes > 0, "{r:?}");
    eprintln!(
        "iperf3: {} bytes sent, {} received in {:.1} s, {:.1} Mbit/s received (sender {:.1} Mbit/s), retransmits {:?}",
        r.sent_bytes,
        r.bytes,
        t.elapsed().as_secs_f64(),
        r.bits_per_second / 1e6,
        r.sent_bits_per_second / 1e6,
        r.retransmits
    );

    // The gateway's view: the Child SA in tunnel mode over UDP, with the traffic counted.
    let sas = gw.list_sas().unwrap();
    eprintln!("gateway swanctl --list-sas:\n{sas}");
    assert!(sas.contains("TUNNEL-in-UDP"), "Child SA with UDP encapsulation:\n{sas}");
    let raw = gw.list_sas_raw().unwrap();
    assert!(raw_values(&raw, "encap").contains(&"yes"), "{raw}");
    assert!(raw_values(&raw, "nat-remote").contains(&"yes"), "{raw}");
    assert!(!raw_values(&raw, "nat-local").contains(&"yes"), "the gateway is not behind a NAT: {raw}");
    let bytes_in = raw_numbers(&raw, "bytes-in");
    let bytes_out = raw_numbers(&raw, "bytes-out");
    // Inner packets (TCP payload plus headers) cover at least what the iperf3 receiver got.
    assert!(bytes_in.iter().any(|&b| b >= r.bytes), "gateway received the iperf3 data ({r:?}): {bytes_in:?}\n{raw}");
    assert!(bytes_out.iter().any(|&b| b > 0), "gateway sent through the Child SA: {bytes_out:?}\n{raw}");

    // The kernel holds the SAs (kernel-netlink, not libipsec), with ESP-in-UDP and its own counters.
    let xfrm = tb.exec(Role::Gw, &["ip", "-s", "xfrm", "state"]).unwrap();
    let xfrm = String::from_utf8_lossy(&xfrm.stdout).into_owned();
    eprintln!("gateway ip -s xfrm state:\n{xfrm}");
    assert_eq!(xfrm.matches("proto esp").count(), 2, "one inbound and one outbound ESP SA:\n{xfrm}");
    assert_eq!(xfrm.matches("encap type espinudp sport 4500 dport 4500").count(), 2, "{xfrm}");
    let kernel_bytes: Vec<u64> = xfrm
        .lines()
        // "  5321896(bytes), 3720(packets)" under "lifetime current:"
        .filter_map(|l| l.trim().strip_suffix("(packets)"))
        .filter_map(|l| l.split(',').next())
        .filter_map(|b| b.strip_suffix("(bytes)").and_then(|n| n.parse().ok()))
        .collect();
    assert!(kernel_bytes.iter().any(|&b| b >= r.bytes), "kernel ESP counters {kernel_bytes:?} ({r:?}):\n{xfrm}");

    // Control: the encapsulation is the client's doing. The path has no NAT and the gateway does not force
    // encapsulation (encap = no: it fakes nothing), so UDP encapsulation was negotiated only because the client's
    // NAT detection hash did not match: the gateway concluded "remote host is behind NAT".
    let log = gw.log();
    assert!(log.contains("remote host is behind NAT"), "{log}");
    assert!(!log.contains("local host is behind NAT"), "{log}");
    assert!(!log.contains("faking NAT situation"), "the gateway forced nothing:\n{log}");

    assert!(c.interrupt(T).unwrap().success(), "{}", c.transcript());
    gw.wait_for_sa_count(0, T).unwrap();
    let left = tb.exec(Role::Gw, &["ip", "xfrm", "state"]).unwrap();
    assert!(left.stdout.is_empty(), "kernel SAs removed: {}", String::from_utf8_lossy(&left.stdout));
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
}
