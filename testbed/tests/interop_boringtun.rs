//! Harness self-test of the benchmark's userspace WireGuard (testbed/src/harness/boringtun.rs): boringtun-cli on
//! the client and the gateway carries pings from the client to the LAN host, and everything goes on drop.
//! Needs root, `IKELINK_INTEROP=1`, and boringtun-cli + wg (scripts/install-deps.sh).
#![cfg(target_os = "linux")]

use ikelink_testbed::harness::boringtun::{WireguardTunnel, WG_GW_ADDR};
use ikelink_testbed::harness::*;

#[test]
fn boringtun_tunnel_carries_ping_to_lan() {
    if !interop_enabled() {
        println!("skipped: set IKELINK_INTEROP=1");
        return;
    }
    let tb = Testbed::new(TestbedOptions::default()).expect("testbed");
    assert!(!tb.ping(Role::Cli, LAN_ADDR, 1).unwrap(), "LAN reachable without a tunnel");
    let wg = WireguardTunnel::start(&tb, &[LAN_NET]).expect("boringtun tunnel");
    let ifname = wg.client_ifname().to_string();
    assert!(tb.ping(Role::Cli, LAN_ADDR, 3).unwrap(), "LAN host not reachable through boringtun");
    assert!(tb.ping(Role::Cli, WG_GW_ADDR, 1).unwrap(), "gateway tunnel address not reachable");
    let (rx, tx) = wg.client_transfer(&tb).expect("wg show dump");
    assert!(rx > 0 && tx > 0, "no traffic counted: rx {rx} tx {tx}");
    // The pings went through the tunnel, not around it: the client's only way to the LAN is its WireGuard route.
    let route = tb.exec(Role::Cli, &["ip", "route", "get", &LAN_ADDR.to_string()]).unwrap();
    assert!(String::from_utf8_lossy(&route.stdout).contains(&ifname), "LAN not routed via {ifname}");
    assert!(wg.client_threads() >= 1);
    wg.stop();
    assert!(!tb.ping(Role::Cli, LAN_ADDR, 1).unwrap(), "LAN still reachable after stopping boringtun");
    let links = tb.exec(Role::Cli, &["ip", "link", "show"]).unwrap();
    assert!(!String::from_utf8_lossy(&links.stdout).contains(&ifname), "{ifname} left behind");
}
