//! Self-test of the interop harness: strongSwan client against strongSwan gateway in the namespace testbed.
//! Needs root and `IKELINK_INTEROP=1`.
#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use ikelink_testbed::harness::*;

fn enabled() -> bool {
    if !interop_enabled() {
        println!("skipped: set IKELINK_INTEROP=1");
        return false;
    }
    true
}

fn assert_namespaces_gone(prefix: &str) {
    let left: Vec<String> = list_namespaces()
        .expect("ip netns list")
        .into_iter()
        .filter(|n| n.starts_with(&format!("{prefix}-")))
        .collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
}

fn in_vip_pool(ip: std::net::Ipv4Addr) -> bool {
    let o = ip.octets();
    o[0] == 100 && o[1] == 64 && o[2] == 0 && o[3] != 0 && o[3] != 255
}

#[test]
fn testbed_isolates_lan_and_tears_down() {
    if !enabled() {
        return;
    }
    let tb = Testbed::new(TestbedOptions::default()).expect("testbed");
    let prefix = tb.prefix().to_string();
    for role in Role::ALL {
        assert!(list_namespaces().unwrap().iter().any(|n| n == tb.ns(role)), "namespace {} missing", tb.ns(role));
    }
    assert!(tb.ping(Role::Cli, RTR_CLI_ADDR, 1).unwrap(), "cli -> rtr");
    assert!(tb.ping(Role::Cli, GW_ADDR, 2).unwrap(), "cli -> gw public");
    assert!(tb.ping(Role::Gw, LAN_ADDR, 1).unwrap(), "gw -> lan");
    assert!(!tb.ping(Role::Cli, LAN_ADDR, 2).unwrap(), "LAN must not be reachable from cli without the tunnel");
    assert!(
        !tb.ping(Role::Cli, GW_LAN_ADDR, 1).unwrap(),
        "gw LAN side must not be reachable from cli without the tunnel"
    );
    // A process left running in a namespace is killed on drop.
    let mut sleeper = tb.spawn(Role::Lan, "sleep", &["300"]).unwrap();
    drop(tb);
    assert_namespaces_gone(&prefix);
    let st = wait_child_timeout(&mut sleeper, Duration::from_secs(5)).unwrap();
    assert!(st.is_some(), "process in testbed survived the drop");
}

#[test]
fn testbed_mtu_and_fragment_drop() {
    if !enabled() {
        return;
    }
    let tb = Testbed::new(TestbedOptions { drop_fragments: true, mtu: Some(1280), ..TestbedOptions::default() })
        .expect("testbed");
    let link = tb.exec(Role::Cli, &["ip", "link", "show", "eth0"]).unwrap();
    assert!(String::from_utf8_lossy(&link.stdout).contains("mtu 1280"));
    assert!(tb.ping(Role::Cli, GW_ADDR, 1).unwrap(), "small ping");
    // 2000-byte echo requests are fragmented by cli (and replies by gw): rtr must drop them.
    let out = tb
        .exec_unchecked(
            Role::Cli,
            &["ping", "-n", "-c", "2", "-i", "0.2", "-W", "1", "-s", "2000", &GW_ADDR.to_string()],
            Duration::from_secs(10),
        )
        .unwrap();
    assert!(!out.status.success(), "fragmented ping passed the router");
    assert!(tb.dropped_fragments().unwrap().unwrap_or(0) >= 2);
}

/// `wire_checksums`: the router's gateway-side link computes checksums itself (no transmit checksum offload),
/// the other links keep theirs, and traffic passes.
#[test]
fn testbed_wire_checksums() {
    if !enabled() {
        return;
    }
    let tb = Testbed::new(TestbedOptions { wire_checksums: true, ..TestbedOptions::default() }).expect("testbed");
    let offload = |role, dev| {
        let out = tb.exec(role, &["ethtool", "-k", dev]).unwrap();
        String::from_utf8_lossy(&out.stdout).lines().find(|l| l.starts_with("tx-checksumming:")).map(str::to_string)
    };
    assert_eq!(offload(Role::Rtr, "eth1").as_deref(), Some("tx-checksumming: off"));
    assert_eq!(offload(Role::Rtr, "eth0").as_deref(), Some("tx-checksumming: on"));
    assert!(tb.ping(Role::Cli, GW_ADDR, 1).unwrap(), "ping through the router");
}

#[test]
fn strongswan_psk_tunnel() {
    if !enabled() {
        return;
    }
    let tb = Testbed::new(TestbedOptions::default()).expect("testbed");
    let prefix = tb.prefix().to_string();
    let gw = Gateway::start(&tb, &GatewayConfig::default()).expect("gateway");
    assert_eq!(gw.sa_count().unwrap(), 0);
    let client = StrongswanClient::start(&tb, &ClientConfig::default()).expect("client");

    let t = Instant::now();
    client.connect().expect("initiate");
    println!("strongSwan PSK tunnel up in {:?}", t.elapsed());
    gw.wait_for_sa_count(1, Duration::from_secs(5)).expect("gateway has one IKE SA");
    assert_eq!(client.sa_count().unwrap(), 1);
    let vip = client.virtual_ip().unwrap().expect("virtual IP assigned");
    assert!(in_vip_pool(vip), "vip {vip} not from the pool");
    assert_eq!(gw.leased_vips().unwrap(), vec![vip.to_string()]);
    assert!(client.log().contains("installing new virtual IP"));

    assert!(
        tb.ping(Role::Cli, LAN_ADDR, 3).unwrap(),
        "ping through the tunnel failed\n{}",
        gw.list_sas().unwrap_or_default()
    );
    let raw = gw.list_sas_raw().unwrap();
    let packets_in: u64 = raw_values(&raw, "packets-in").iter().filter_map(|v| v.parse::<u64>().ok()).sum();
    assert!(packets_in >= 1, "gateway child SA saw no packets: {raw}");

    let _server = tb.start_iperf_server(Role::Lan).expect("iperf3 server");
    let r = tb.iperf_client(Role::Cli, LAN_ADDR, 2 * 1024 * 1024).expect("iperf3 through the tunnel");
    println!("iperf3 2 MiB through strongSwan tunnel: {r:?}");
    assert_eq!(r.sent_bytes, 2 * 1024 * 1024);
    assert!(r.bytes > 0 && r.bits_per_second > 0.0);

    client.terminate().expect("terminate");
    gw.wait_for_sa_count(0, Duration::from_secs(5)).expect("gateway SA deleted");
    assert!(!tb.ping(Role::Cli, LAN_ADDR, 1).unwrap(), "LAN reachable after the tunnel was closed");
    drop(client);
    drop(gw);
    drop(tb);
    assert_namespaces_gone(&prefix);
}

#[test]
fn strongswan_psk_tunnel_behind_nat() {
    if !enabled() {
        return;
    }
    let tb = Testbed::new(TestbedOptions { nat: true, ..TestbedOptions::default() }).expect("testbed");
    let prefix = tb.prefix().to_string();
    let gw = Gateway::start(
        &tb,
        &GatewayConfig {
            ike_proposals: "aes256gcm16-prfsha256-x25519".into(),
            esp_proposals: "aes256gcm16".into(),
            dpd_delay: Some("30s".into()),
            ..GatewayConfig::default()
        },
    )
    .expect("gateway");
    let client = StrongswanClient::start(
        &tb,
        &ClientConfig {
            ike_proposals: "aes256gcm16-prfsha256-x25519".into(),
            esp_proposals: "aes256gcm16".into(),
            ..ClientConfig::default()
        },
    )
    .expect("client");
    let (res, ports) = tb.capture_udp_ports(Role::Gw, "eth0", || client.connect()).expect("capture");
    res.expect("initiate through NAT");
    gw.wait_for_sa_count(1, Duration::from_secs(5)).unwrap();
    let raw = gw.list_sas_raw().unwrap();
    assert_eq!(raw_values(&raw, "remote-host"), vec!["203.0.113.1"]);
    assert_eq!(raw_values(&raw, "nat-remote"), vec!["yes"]);
    assert!(raw_values(&raw, "encr-alg").contains(&"AES_GCM_16"), "proposal not applied: {raw}");
    // Random source ports on the NAT: the gateway sees neither 500 nor 4500 as the client's port.
    assert!(!ports.is_empty(), "nothing captured");
    assert!(
        ports.iter().filter(|(_, d)| *d == 500 || *d == 4500).all(|(s, _)| *s != 500 && *s != 4500),
        "NAT did not remap ports: {ports:?}"
    );
    assert!(tb.ping(Role::Cli, LAN_ADDR, 3).unwrap(), "ping through NAT");
    // Nothing gets in from the outside through the NAT.
    assert!(!tb.ping(Role::Gw, CLI_ADDR, 1).unwrap(), "NAT let gw reach cli");
    drop(client);
    drop(gw);
    drop(tb);
    assert_namespaces_gone(&prefix);
}

#[test]
fn strongswan_cert_eap_mschapv2_tunnel() {
    if !enabled() {
        return;
    }
    let tb = Testbed::new(TestbedOptions::default()).expect("testbed");
    let pki = Pki::generate(&tb.dir().join("pki")).expect("pki");
    let printed = Pki::print(&pki.gw_cert).unwrap();
    assert!(printed.contains("gw.ikelink.test") && printed.contains("203.0.113.2"));
    let gw = Gateway::start(
        &tb,
        &GatewayConfig {
            auth: GatewayAuth::Cert { pki: pki.clone(), remote_auth: "eap-mschapv2".into() },
            psk: None,
            eap_users: vec![(EAP_USER.into(), EAP_PASSWORD.into())],
            ..GatewayConfig::default()
        },
    )
    .expect("gateway");
    let client = StrongswanClient::start(
        &tb,
        &ClientConfig {
            local_id: EAP_USER.into(),
            auth: ClientAuth::Eap {
                pki,
                method: "eap-mschapv2".into(),
                identity: EAP_USER.into(),
                secret: EAP_PASSWORD.into(),
            },
            ..ClientConfig::default()
        },
    )
    .expect("client");
    client.connect().expect("initiate with EAP-MSCHAPv2");
    gw.wait_for_sa_count(1, Duration::from_secs(5)).unwrap();
    assert!(gw.log().contains("EAP method EAP_MSCHAPV2 succeeded"));
    assert!(tb.ping(Role::Cli, LAN_ADDR, 2).unwrap(), "ping through EAP tunnel");
}

#[test]
fn strongswan_rsa_cert_both_ways() {
    if !enabled() {
        return;
    }
    let tb = Testbed::new(TestbedOptions::default()).expect("testbed");
    let pki = Pki::generate_with(&tb.dir().join("pki"), KeyType::Rsa(3072)).expect("pki");
    let gw = Gateway::start(
        &tb,
        &GatewayConfig {
            auth: GatewayAuth::Cert { pki: pki.clone(), remote_auth: "pubkey".into() },
            psk: None,
            ..GatewayConfig::default()
        },
    )
    .expect("gateway");
    let client =
        StrongswanClient::start(&tb, &ClientConfig { auth: ClientAuth::Cert { pki }, ..ClientConfig::default() })
            .expect("client");
    client.connect().expect("initiate with certificates");
    gw.wait_for_sa_count(1, Duration::from_secs(5)).unwrap();
    let expected = "authentication of 'client@ikelink.test' with RSA_EMSA_PKCS1_SHA2_256 successful";
    assert!(gw.log().contains(expected), "missing log line: {expected}");
    assert!(tb.ping(Role::Cli, LAN_ADDR, 2).unwrap(), "ping through cert tunnel");
}
