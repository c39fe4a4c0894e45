//! Interop against a real strongSwan gateway: behind a masquerading NAT, a NAT mapping change, and IKE
//! fragmentation (RFC 7383) on a path that drops IP fragments (issue 5). Needs root; IKELINK_INTEROP=1.
#![cfg(target_os = "linux")]

use std::path::Path;
use std::time::{Duration, Instant};

use ikelink_testbed::harness::*;

const T: Duration = Duration::from_secs(20);

/// Destination ports and lengths (0 if not shown) of the packets towards the gateway in `tcpdump -nn` text.
fn to_gateway(text: &str) -> Vec<(u16, usize)> {
    let needle = format!("> {GW_ADDR}.");
    text.lines()
        .filter_map(|l| {
            let rest = &l[l.find(&needle)? + needle.len()..];
            let port: u16 = rest.split(':').next()?.parse().ok()?;
            let len = rest.rsplit_once("length ").and_then(|(_, n)| n.trim().parse().ok()).unwrap_or(0);
            Some((port, len))
        })
        .collect()
}

#[test]
fn behind_nat_ike_and_esp_float_to_4500() {
    ikelink_testbed::require_interop!();
    let tb = Testbed::new(TestbedOptions { nat: true, ..Default::default() }).unwrap();
    private_resolv(&tb);
    let gw = Gateway::start(&tb, &GatewayConfig::default()).unwrap();
    let _iperf = tb.start_iperf_server(Role::Lan).unwrap();
    let cap = tb.start_capture(Role::Rtr, "eth1", "udp").unwrap();
    let mut c = IkelinkClient::start(&tb, desktop_bin(), &psk_profile(None, None, &[LAN_NET]), &[]).unwrap();
    c.wait_connected(T).unwrap();
    assert!(c.value("nat").unwrap().starts_with("local=true"), "NAT detected on our side: {}", c.transcript());
    assert!(tb.ping(Role::Cli, LAN_ADDR, 3).unwrap(), "{}", c.transcript());
    let r = tb.iperf_client_with(Role::Cli, LAN_ADDR, &IperfOptions { bytes: Some(2_000_000), ..Default::default() });
    assert!(r.unwrap().sent_bytes >= 2_000_000);
    assert!(c.interrupt(T).unwrap().success());
    let text = cap.finish().unwrap();
    let pkts = to_gateway(&text);
    // Only IKE_SA_INIT goes to port 500; IKE_AUTH, ESP and the Delete go to 4500 from the NAT's random port.
    let to500 = pkts.iter().filter(|(p, _)| *p == 500).count();
    let to4500 = pkts.iter().filter(|(p, _)| *p == 4500).count();
    assert_eq!(to500, 1, "one IKE_SA_INIT to port 500:\n{text}");
    // With UDP GSO one captured packet can be a burst of ESP datagrams (and tcpdump may drop some of those
    // 64 KB packets): count bytes, not packets.
    let bytes4500: usize = pkts.iter().filter(|(p, _)| *p == 4500).map(|(_, n)| n).sum();
    assert!(to4500 > 10 && bytes4500 > 500_000, "IKE and ESP on port 4500: {to4500} packets, {bytes4500} bytes");
    assert_eq!(pkts.len(), to500 + to4500, "nothing else:\n{text}");
    assert!(gw.log().contains("remote host is behind NAT"), "the gateway saw us behind the NAT");
}

#[test]
fn nat_mapping_change_recovers_through_keepalive_and_dpd() {
    ikelink_testbed::require_interop!();
    let tb = Testbed::new(TestbedOptions { nat: true, ..Default::default() }).unwrap();
    private_resolv(&tb);
    let gw = Gateway::start(&tb, &GatewayConfig::default()).unwrap();
    let profile = psk_profile(None, None, &[LAN_NET])
        + "\n[nat]\nkeepalive = 2\n\n[timers]\ndpd = 3\ndpd_tries = 3\nretransmit_timeout = 1.0\n";
    let mut c = IkelinkClient::start(&tb, desktop_bin(), &profile, &[]).unwrap();
    c.wait_connected(T).unwrap();
    assert!(tb.ping(Role::Cli, LAN_ADDR, 2).unwrap());
    let port_before = gw_remote_port(&gw);

    // The NAT forgets its mappings: our next packet leaves from a new random port; the gateway's replies to
    // the old one are dropped.
    tb.exec(Role::Rtr, &["conntrack", "-D", "-p", "udp"]).unwrap();
    let start = Instant::now();
    let mut recovered = false;
    while start.elapsed() < Duration::from_secs(30) {
        if tb.ping(Role::Cli, LAN_ADDR, 1).unwrap() {
            recovered = true;
            break;
        }
    }
    assert!(recovered, "tunnel recovered after the NAT mapping changed\n{}", c.transcript());
    let port_after = gw_remote_port(&gw);
    assert_ne!(port_before, port_after, "the gateway follows our new NAT port");
    assert!(c.interrupt(T).unwrap().success(), "{}", c.transcript());
}

/// The client's port as the gateway sees it (`remote-port` of the IKE SA).
fn gw_remote_port(gw: &Gateway) -> String {
    let raw = gw.list_sas_raw().unwrap();
    raw_values(&raw, "remote-port").into_iter().next().unwrap_or_default().to_string()
}

#[test]
fn ike_fragmentation_with_long_chains_on_a_path_dropping_ip_fragments() {
    ikelink_testbed::require_interop!();
    let tb = Testbed::new(TestbedOptions { drop_fragments: true, ..Default::default() }).unwrap();
    // RSA-4096 everywhere: each IKE_AUTH is several kB, far over one 1280-byte datagram.
    let pki = Pki::generate_with(&tb.dir().join("pki"), KeyType::Rsa(4096)).unwrap();
    let cfg = GatewayConfig {
        auth: GatewayAuth::Cert { pki: pki.clone(), remote_auth: "pubkey".into() },
        psk: None,
        fragmentation: true,
        ..Default::default()
    };
    let gw = Gateway::start(&tb, &cfg).unwrap();
    let p = |x: &Path| x.to_string_lossy().into_owned();
    let profile = format!(
        "[gateway]\naddress = \"{GW_ADDR}\"\nid = \"{GW_ID}\"\nca = [\"{}\"]\n\n[local]\n\n[auth]\nmethod = \"cert\"\ncert = \"{}\"\nkey = \"{}\"\n\n[tunnel]\nremote_ts = [\"{LAN_NET}\"]\n",
        p(&pki.ca_cert),
        p(&pki.client_cert),
        p(&pki.client_key)
    );
    let mut c = IkelinkClient::start(&tb, desktop_bin(), &profile, &["--no-tun", "-vv"]).unwrap();
    c.wait_connected(T).unwrap();
    gw.wait_for_sa_count(1, T).unwrap();
    let log = gw.log();
    assert!(log.contains("received fragment #"), "the gateway reassembled our fragments");
    assert!(log.contains("splitting IKE message"), "the gateway fragmented its IKE_AUTH");
    assert!(c.log().contains("RFC 7383 fragments"), "we fragmented ours\n{}", c.transcript());
    assert!(c.interrupt(T).unwrap().success());
    gw.wait_for_sa_count(0, T).unwrap();
}

/// Issue 11: the lab gateway forces UDP encapsulation (`encap = yes`: it fakes its NAT detection hash). On a
/// direct path, with MOBIKE and dead peer detection (liveness checks carry NAT detection, RFC 4555 §3.8), the
/// client must not take the float to port 4500 for a changed NAT mapping: no UPDATE_SA_ADDRESSES, not "behind
/// a NAT", no keepalives (they would cost a phone its battery). Traffic flows over the forced encapsulation.
#[test]
fn forced_encapsulation_on_a_direct_path_is_no_nat() {
    ikelink_testbed::require_interop!();
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    private_resolv(&tb);
    let gw = Gateway::start(&tb, &GatewayConfig::default()).unwrap();
    let cap = tb.start_capture(Role::Rtr, "eth1", "udp").unwrap();
    let profile = psk_profile(None, None, &[LAN_NET]) + "\n[nat]\nkeepalive = 2\n\n[timers]\ndpd = 2\n";
    let mut c = IkelinkClient::start(&tb, desktop_bin(), &profile, &[]).unwrap();
    c.wait_connected(T).unwrap();
    let nat = c.value("nat").unwrap();
    assert!(nat.starts_with("local=false") && nat.contains("encap=true"), "{nat}");
    // Several idle DPD intervals: liveness checks with NAT detection, and keepalive deadlines, pass.
    std::thread::sleep(Duration::from_secs(9));
    assert!(tb.ping(Role::Cli, LAN_ADDR, 2).unwrap(), "{}", c.transcript());
    assert!(c.interrupt(T).unwrap().success());
    assert!(!c.log().contains("NAT mapping changed"), "{}", c.transcript());
    let text = cap.finish().unwrap();
    let keepalives = to_gateway(&text).iter().filter(|(p, n)| *p == 4500 && *n == 1).count();
    assert_eq!(keepalives, 0, "keepalives without a NAT:\n{text}");
    let log = gw.log();
    let checks = log.lines().filter(|l| l.contains("parsed INFORMATIONAL request") && l.contains("N(NATD_S_IP)"));
    assert!(checks.count() >= 2, "liveness checks with NAT detection:\n{log}");
    assert!(!log.contains("UPD_SA_ADDR"), "no address update:\n{log}");
}
