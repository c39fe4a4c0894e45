//! Interop against a real strongSwan gateway: the kill switch of a full tunnel (`[tunnel] kill_switch = true`).
//! A more specific route that someone else adds leaks past the tunnel without it; with it, such traffic is
//! dropped while IKE and ESP to the gateway and the tunnel keep working; the nftables table goes with the
//! client, also after a crash (journal). Needs root; runs when IKELINK_INTEROP=1.
#![cfg(target_os = "linux")]

use std::time::Duration;

use ikelink_testbed::harness::*;

const T: Duration = Duration::from_secs(20);

/// The nftables tables in the client namespace.
fn tables(tb: &Testbed) -> String {
    String::from_utf8_lossy(&tb.exec(Role::Cli, &["nft", "list", "tables"]).unwrap().stdout).into_owned()
}

fn dev(c: &IkelinkClient) -> String {
    c.value("tunnel").unwrap().split_whitespace().find_map(|w| w.strip_prefix("dev=")).unwrap().to_string()
}

#[test]
fn kill_switch_drops_traffic_outside_the_full_tunnel() {
    ikelink_testbed::require_interop!();
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    private_resolv(&tb);
    let cfg = GatewayConfig { local_ts: vec!["0.0.0.0/0".into()], ..Default::default() };
    let gw = Gateway::start(&tb, &cfg).unwrap();
    let plain = psk_profile(None, None, &["0.0.0.0/0"]);
    let guarded = format!("{plain}kill_switch = true\n");
    let leak = RTR_GW_ADDR.to_string();

    // Without the kill switch, a host route someone adds (DHCP, another tool) takes traffic past the tunnel.
    let mut c = IkelinkClient::start(&tb, desktop_bin(), &plain, &[]).unwrap();
    c.wait_connected(T).unwrap();
    tb.exec(Role::Cli, &["ip", "route", "add", &format!("{leak}/32"), "via", &RTR_CLI_ADDR.to_string()]).unwrap();
    assert!(tb.ping(Role::Cli, RTR_GW_ADDR, 2).unwrap(), "control: the leak route works without the kill switch");
    assert!(!tables(&tb).contains("ikelink_"));
    assert!(c.interrupt(T).unwrap().success());
    gw.wait_for_sa_count(0, T).unwrap();

    // With it, the same packets are dropped; the tunnel works; the table goes with the client.
    let mut c = IkelinkClient::start(&tb, desktop_bin(), &guarded, &[]).unwrap();
    c.wait_connected(T).unwrap();
    let table = format!("ikelink_{}", dev(&c));
    assert!(tables(&tb).contains(&table), "{}", tables(&tb));
    assert!(tb.ping(Role::Cli, LAN_ADDR, 3).unwrap(), "the tunnel works\n{}", c.transcript());
    assert!(!tb.ping(Role::Cli, RTR_GW_ADDR, 2).unwrap(), "the leak route is blocked");
    let rules = String::from_utf8_lossy(&tb.exec(Role::Cli, &["nft", "list", "table", "inet", &table]).unwrap().stdout)
        .into_owned();
    let dropped: u64 = rules
        .lines()
        .find(|l| l.contains("drop"))
        .and_then(|l| l.split_whitespace().skip_while(|w| *w != "packets").nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(dropped >= 2, "the kill switch counted the leaked pings: {rules}");
    assert!(c.interrupt(T).unwrap().success());
    assert!(!tables(&tb).contains("ikelink_"), "table removed on disconnect: {}", tables(&tb));
    assert!(tb.ping(Role::Cli, RTR_GW_ADDR, 1).unwrap(), "without the client the route is usable again");
    gw.wait_for_sa_count(0, T).unwrap();

    // Killed with SIGKILL: the table stays (nothing leaks), and the next start removes it (journal).
    let mut c = IkelinkClient::start(&tb, desktop_bin(), &guarded, &[]).unwrap();
    c.wait_connected(T).unwrap();
    c.kill9().unwrap();
    assert!(tables(&tb).contains(&table), "a crashed client leaves the kill switch in place");
    assert!(!tb.ping(Role::Cli, RTR_GW_ADDR, 1).unwrap(), "still nothing leaks after the crash");
    let mut c = IkelinkClient::start(&tb, desktop_bin(), &plain, &[]).unwrap();
    c.wait_connected(T).unwrap();
    assert!(!tables(&tb).contains("ikelink_"), "recovered at the next start: {}", tables(&tb));
    assert!(c.interrupt(T).unwrap().success());
    tb.exec(Role::Cli, &["ip", "route", "del", &format!("{leak}/32")]).unwrap();
}

/// `[tunnel] exclude`: a prefix kept out of a full tunnel (like the strongSwan app's excluded subnets) keeps its
/// path outside the tunnel, also through the kill switch, while everything else goes through the tunnel; the
/// route goes with the client.
#[test]
fn excluded_prefix_bypasses_the_full_tunnel_and_the_kill_switch() {
    ikelink_testbed::require_interop!();
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    private_resolv(&tb);
    let cfg = GatewayConfig { local_ts: vec!["0.0.0.0/0".into()], ..Default::default() };
    let _gw = Gateway::start(&tb, &cfg).unwrap();
    // The router's far side (203.0.113.1) is reachable directly; through the tunnel it would not answer (the
    // router has no route back to the virtual IPs).
    let excluded = format!("{RTR_GW_ADDR}/32");
    let route_dev = |addr: std::net::Ipv4Addr| -> String {
        let out = tb.exec(Role::Cli, &["ip", "route", "get", &addr.to_string()]).unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split_whitespace().skip_while(|w| *w != "dev").nth(1).unwrap_or_default().to_string()
    };
    let before = route_dev(RTR_GW_ADDR);
    let plain = psk_profile(None, None, &["0.0.0.0/0"]);

    // Control: without the exclusion the full tunnel takes it.
    let mut c = IkelinkClient::start(&tb, desktop_bin(), &plain, &[]).unwrap();
    c.wait_connected(T).unwrap();
    assert_eq!(route_dev(RTR_GW_ADDR), dev(&c), "full tunnel: into the TUN");
    assert!(!tb.ping(Role::Cli, RTR_GW_ADDR, 2).unwrap(), "control: no answer through the tunnel");
    assert!(c.interrupt(T).unwrap().success());

    // Excluded, with the kill switch on: its old path, answered; the LAN still through the tunnel.
    let profile = format!("{plain}kill_switch = true\nexclude = [\"{excluded}\"]\n");
    let mut c = IkelinkClient::start(&tb, desktop_bin(), &profile, &[]).unwrap();
    c.wait_connected(T).unwrap();
    assert_eq!(route_dev(RTR_GW_ADDR), before, "excluded: the path it had before\n{}", c.transcript());
    assert_eq!(route_dev(LAN_ADDR), dev(&c));
    assert!(tb.ping(Role::Cli, RTR_GW_ADDR, 2).unwrap(), "the excluded address answers\n{}", c.transcript());
    assert!(tb.ping(Role::Cli, LAN_ADDR, 2).unwrap(), "the tunnel works\n{}", c.transcript());
    assert!(c.interrupt(T).unwrap().success());
    // Gone with the client.
    let out = tb.exec(Role::Cli, &["ip", "route", "show", &excluded]).unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).trim().is_empty(), "the excluded route was removed");
}
