//! Interop against a real strongSwan gateway (charon + swanctl from Debian) in network namespaces: IKE_SA_INIT,
//! IKE_AUTH with PSK, the first Child SA, CP, Delete, and the failure cases (issue 2).
//! Needs root; runs when IKELINK_INTEROP=1 (scripts/test.sh sets it).
#![cfg(target_os = "linux")]

use std::time::Duration;

use ikelink_testbed::harness::*;

const T: Duration = Duration::from_secs(20);

/// Connect with `profile` (negotiation only), check the gateway's view, disconnect, check the SA is gone.
fn connect_check_disconnect(tb: &Testbed, gw: &Gateway, profile: &str, expect_gw_suite: &str) -> IkelinkClient {
    let mut c = IkelinkClient::start(tb, desktop_bin(), profile, &["--no-tun", "-v"]).unwrap();
    c.wait_connected(T).unwrap();
    gw.wait_for_sa_count(1, T).unwrap();
    let sas = gw.list_sas().unwrap();
    assert!(sas.contains(expect_gw_suite), "gateway SA should use {expect_gw_suite}:\n{sas}");
    assert!(sas.contains("INSTALLED"), "gateway should have the Child SA installed:\n{sas}");
    let spi_in = c.value("esp").unwrap();
    // The gateway's outbound SPI is our inbound one.
    let ours = spi_in.split_whitespace().find_map(|w| w.strip_prefix("spi_in=")).unwrap().to_string();
    assert!(sas.contains(&format!("out {ours}")), "gateway should send to our SPI {ours}:\n{sas}");
    let st = c.interrupt(T).unwrap();
    assert!(st.success(), "clean disconnect exits 0: {st}\n{}", c.transcript());
    assert!(c.lines().iter().any(|l| l == "disconnected"), "{}", c.transcript());
    // Our Delete removed the SA on the gateway (acceptance 4).
    gw.wait_for_sa_count(0, T).unwrap();
    assert!(gw.log().contains("received DELETE for IKE_SA"), "gateway saw our Delete");
    c
}

#[test]
fn psk_suites_virtual_ip_dns_and_delete() {
    ikelink_testbed::require_interop!();
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    let mut cfg = GatewayConfig::default();
    let cases = [
        ("aes256gcm16-prfsha256-x25519", "aes256gcm16", "AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519"),
        ("aes256-sha256-modp2048", "aes256-sha256", "AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048"),
        ("aes128gcm16-prfsha384-ecp384", "aes128gcm16", "AES_GCM_16-128/PRF_HMAC_SHA2_384/ECP_384"),
    ];
    // How our client prints the negotiated IKE suite (the PRF always spelled out).
    let shown = ["aes256gcm16-prfsha256-x25519", "aes256-sha256-prfsha256-modp2048", "aes128gcm16-prfsha384-ecp384"];
    cfg.ike_proposals = cases[0].0.into();
    cfg.esp_proposals = cases[0].1.into();
    let mut gw = Gateway::start(&tb, &cfg).unwrap();
    for ((ike, esp, gw_suite), shown) in cases.into_iter().zip(shown) {
        cfg.ike_proposals = ike.into();
        cfg.esp_proposals = esp.into();
        gw.reconfigure(&cfg).unwrap();
        let profile = psk_profile(Some(ike), Some(esp), &[LAN_NET]);
        let c = connect_check_disconnect(&tb, &gw, &profile, gw_suite);
        assert!(c.value("ike").unwrap().starts_with(&format!("{shown} ")), "{}", c.transcript());
        assert!(c.value("esp").unwrap().starts_with(esp), "{}", c.transcript());
        // Acceptance 3: the virtual IP and DNS servers from the gateway's pool.
        let vip = c.value("virtual-ip").unwrap();
        assert!(vip.starts_with("100.64.0."), "{vip}");
        assert_eq!(c.value("dns").unwrap(), "198.51.100.53,198.51.100.54");
        assert_eq!(c.value("ts").unwrap(), format!("local={vip}/32 remote={LAN_NET}"));
        assert_eq!(c.value("remote-id").unwrap(), GW_ID);
        // libipsec needs UDP encapsulation: strongSwan fakes NAT detection, we float to 4500.
        assert!(c.value("nat").unwrap().contains("encap=true"));
    }
}

#[test]
fn invalid_ke_payload_then_success() {
    ikelink_testbed::require_interop!();
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    // Our default proposals send an x25519 KE first; this gateway only takes ECP-256.
    let cfg = GatewayConfig {
        ike_proposals: "aes256gcm16-prfsha256-ecp256".into(),
        esp_proposals: "aes256gcm16".into(),
        ..Default::default()
    };
    let gw = Gateway::start(&tb, &cfg).unwrap();
    let mut c =
        IkelinkClient::start(&tb, desktop_bin(), &psk_profile(None, None, &[LAN_NET]), &["--no-tun", "-v"]).unwrap();
    c.wait_connected(T).unwrap();
    assert_eq!(c.value("ike").unwrap().split_whitespace().next(), Some("aes256gcm16-prfsha256-ecp256"));
    let log = gw.log();
    assert!(log.contains("INVALID_KE_PAYLOAD") || log.contains("requesting ECP_256"), "gateway asked for ECP-256");
    gw.wait_for_sa_count(1, T).unwrap();
    assert!(gw.list_sas().unwrap().contains("ECP_256"));
    assert!(c.interrupt(T).unwrap().success());
    gw.wait_for_sa_count(0, T).unwrap();
}

#[test]
fn wrong_psk_and_unreachable_gateway_fail_cleanly() {
    ikelink_testbed::require_interop!();
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    let gw = Gateway::start(&tb, &GatewayConfig::default()).unwrap();

    // Wrong PSK: the gateway answers AUTHENTICATION_FAILED; we exit 1 with one clear line, no panic.
    let profile = psk_profile(None, None, &[LAN_NET]).replace(DEFAULT_PSK, "not-the-right-key");
    let mut c = IkelinkClient::start(&tb, desktop_bin(), &profile, &["--no-tun"]).unwrap();
    let st = c.wait_exit(T).unwrap();
    assert_eq!(st.code(), Some(1), "{}", c.transcript());
    let err: Vec<String> = c.lines().into_iter().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(err.len(), 1, "{}", c.transcript());
    assert!(err[0].contains("AUTHENTICATION_FAILED"), "{}", err[0]);
    assert!(!c.log().contains("panicked"));
    assert_eq!(gw.sa_count().unwrap(), 0);

    // Unreachable gateway: retransmissions on the configured schedule, then a timeout error.
    let profile = psk_profile(None, None, &[LAN_NET]).replace(&GW_ADDR.to_string(), "203.0.113.99")
        + "\n[timers]\nretransmit_timeout = 0.2\nretransmit_base = 2.0\nretransmit_tries = 3\n";
    let (mut c, ports) = tb
        .capture_udp_ports(Role::Rtr, "eth0", || {
            let mut c = IkelinkClient::start(&tb, desktop_bin(), &profile, &["--no-tun"]).unwrap();
            let st = c.wait_exit(T).unwrap();
            assert_eq!(st.code(), Some(1), "{}", c.transcript());
            c
        })
        .unwrap();
    let line = c.wait_line("error", T, |l| l.starts_with("error:")).unwrap();
    assert!(line.contains("no answer from the gateway after 4 tries"), "{line}");
    assert!(ports.iter().any(|(_, dst)| *dst == 500), "IKE_SA_INIT went to port 500: {ports:?}");
}
