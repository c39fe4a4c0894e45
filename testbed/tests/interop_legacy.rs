//! Interop against a real strongSwan gateway configured with exactly one legacy suite at a time (issue 11: the
//! suites corporate gateways default to): 3DES, AES-192, AES-GCM with 8- and 12-byte ICVs, HMAC-SHA1-96,
//! PRF-HMAC-SHA1, MODP-1024/1536, brainpoolP256r1/P384r1 and Curve448, all opt-in through the profile's
//! `[proposals]`. For each suite the client connects with a TUN, prints what it negotiated, warns about the
//! legacy algorithms, and a ping reaches the LAN through the tunnel (so every legacy ESP transform carries
//! traffic through the gateway's libipsec). Needs root; runs when IKELINK_INTEROP=1 (scripts/test.sh sets it).
#![cfg(target_os = "linux")]

use std::time::Duration;

use ikelink_testbed::harness::*;

const T: Duration = Duration::from_secs(20);

/// One gateway configuration: the IKE and ESP proposal (strongSwan syntax, the same string on both sides), how
/// our client prints the IKE suite (the PRF always spelled out), and how `swanctl --list-sas` names the IKE and
/// ESP suites.
struct Suite {
    ike: &'static str,
    esp: &'static str,
    shown: &'static str,
    gw_ike: &'static str,
    gw_esp: &'static str,
}

const SUITES: &[Suite] = &[
    Suite {
        ike: "3des-sha1-modp1024",
        esp: "3des-sha1",
        shown: "3des-sha1-prfsha1-modp1024",
        gw_ike: "3DES_CBC/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024",
        gw_esp: "3DES_CBC/HMAC_SHA1_96",
    },
    Suite {
        ike: "aes128-sha1-modp1536",
        esp: "aes128-sha1",
        shown: "aes128-sha1-prfsha1-modp1536",
        gw_ike: "AES_CBC-128/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1536",
        gw_esp: "AES_CBC-128/HMAC_SHA1_96",
    },
    Suite {
        ike: "aes192-sha256-ecp256bp",
        esp: "aes192-sha256",
        shown: "aes192-sha256-prfsha256-ecp256bp",
        gw_ike: "AES_CBC-192/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/ECP_256_BP",
        gw_esp: "AES_CBC-192/HMAC_SHA2_256_128",
    },
    Suite {
        ike: "aes192gcm16-prfsha1-ecp384bp",
        esp: "aes192gcm16",
        shown: "aes192gcm16-prfsha1-ecp384bp",
        gw_ike: "AES_GCM_16-192/PRF_HMAC_SHA1/ECP_384_BP",
        gw_esp: "AES_GCM_16-192",
    },
    Suite {
        ike: "aes128gcm8-prfsha256-x448",
        esp: "aes128gcm8",
        shown: "aes128gcm8-prfsha256-x448",
        gw_ike: "AES_GCM_8-128/PRF_HMAC_SHA2_256/CURVE_448",
        gw_esp: "AES_GCM_8-128",
    },
    Suite {
        ike: "aes256gcm12-prfsha384-modp1536",
        esp: "aes256gcm12",
        shown: "aes256gcm12-prfsha384-modp1536",
        gw_ike: "AES_GCM_12-256/PRF_HMAC_SHA2_384/MODP_1536",
        gw_esp: "AES_GCM_12-256",
    },
    Suite {
        ike: "aes256gcm8-prfsha1-curve448",
        esp: "aes192gcm12",
        shown: "aes256gcm8-prfsha1-x448",
        gw_ike: "AES_GCM_8-256/PRF_HMAC_SHA1/CURVE_448",
        gw_esp: "AES_GCM_12-192",
    },
    Suite {
        ike: "aes256-sha1-ecp256bp",
        esp: "3des-sha256",
        shown: "aes256-sha1-prfsha1-ecp256bp",
        gw_ike: "AES_CBC-256/HMAC_SHA1_96/PRF_HMAC_SHA1/ECP_256_BP",
        gw_esp: "3DES_CBC/HMAC_SHA2_256_128",
    },
];

#[test]
fn each_legacy_suite_negotiates_and_carries_ping() {
    ikelink_testbed::require_interop!();
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    private_resolv(&tb);
    let mut cfg = GatewayConfig {
        ike_proposals: SUITES[0].ike.into(),
        esp_proposals: SUITES[0].esp.into(),
        ..Default::default()
    };
    let mut gw = Gateway::start(&tb, &cfg).unwrap();
    assert!(!tb.ping(Role::Cli, LAN_ADDR, 1).unwrap(), "the LAN must be reachable only through the tunnel");
    let mut failures = Vec::new();
    for s in SUITES {
        cfg.ike_proposals = s.ike.into();
        cfg.esp_proposals = s.esp.into();
        gw.reconfigure(&cfg).unwrap();
        let profile = psk_profile(Some(s.ike), Some(s.esp), &[LAN_NET]);
        let mut c = IkelinkClient::start(&tb, desktop_bin(), &profile, &["-v"]).unwrap();
        if let Err(e) = c.wait_connected(T) {
            failures.push(format!("{} / {}: not connected: {e}\n{}\n{}", s.ike, s.esp, c.transcript(), gw.log()));
            let _ = c.interrupt(T);
            let _ = gw.wait_for_sa_count(0, T);
            continue;
        }
        // What the client negotiated and printed.
        let ike = c.value("ike").unwrap();
        assert!(ike.starts_with(&format!("{} ", s.shown)), "{ike}\n{}", c.transcript());
        let esp = c.value("esp").unwrap();
        assert!(esp.starts_with(&format!("{} ", s.esp)), "{esp}\n{}", c.transcript());
        // The gateway agrees.
        gw.wait_for_sa_count(1, T).unwrap();
        let sas = gw.list_sas().unwrap();
        assert!(sas.contains(s.gw_ike), "gateway IKE SA should use {}:\n{sas}", s.gw_ike);
        assert!(sas.contains(s.gw_esp), "gateway Child SA should use {}:\n{sas}", s.gw_esp);
        // The legacy algorithms were logged as such.
        let log = c.log();
        assert!(log.contains("IKE SA negotiated with legacy algorithms"), "{}", c.transcript());
        // Traffic through the tunnel with this ESP transform, both ways (echo request and reply).
        let ping = tb.ping(Role::Cli, LAN_ADDR, 3).unwrap();
        if !ping {
            failures.push(format!("{} / {}: no ping through the tunnel\n{}", s.ike, s.esp, c.transcript()));
        }
        eprintln!("{} / {}: ike: {ike}; esp: {esp}; ping through the tunnel: {ping}", s.ike, s.esp);
        assert!(c.interrupt(T).unwrap().success(), "{}", c.transcript());
        assert!(!c.log().contains("panicked"));
        gw.wait_for_sa_count(0, T).unwrap();
    }
    assert!(failures.is_empty(), "{} of {} suites failed:\n{}", failures.len(), SUITES.len(), failures.join("\n\n"));
}

/// A gateway set to a legacy suite refuses a client on its defaults (they carry no legacy algorithm) with
/// NO_PROPOSAL_CHOSEN, and the client says so in one line.
#[test]
fn default_proposals_do_not_reach_a_legacy_gateway() {
    ikelink_testbed::require_interop!();
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    let cfg = GatewayConfig {
        ike_proposals: "3des-sha1-modp1024".into(),
        esp_proposals: "3des-sha1".into(),
        ..Default::default()
    };
    let gw = Gateway::start(&tb, &cfg).unwrap();
    let mut c = IkelinkClient::start(&tb, desktop_bin(), &psk_profile(None, None, &[LAN_NET]), &["--no-tun"]).unwrap();
    // Unauthenticated IKE_SA_INIT errors count only once three transmissions were answered (RFC 7296 §2.21.1).
    let st = c.wait_exit(Duration::from_secs(60)).unwrap();
    assert_eq!(st.code(), Some(1), "{}", c.transcript());
    let err: Vec<String> = c.lines().into_iter().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(err.len(), 1, "{}", c.transcript());
    assert!(err[0].contains("NO_PROPOSAL_CHOSEN"), "{}", err[0]);
    assert_eq!(gw.sa_count().unwrap(), 0);
}

/// Rekeys by both sides with a legacy suite: the IKE SA under 3DES/SHA-1/MODP-1024, the Child SA under
/// AES-GCM-8 with PFS on brainpoolP256r1 (a fresh ECP_256_BP exchange in every CREATE_CHILD_SA), while a
/// continuous ping runs through the tunnel.
#[test]
fn legacy_suite_rekeys_by_both_sides() {
    ikelink_testbed::require_interop!();
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    private_resolv(&tb);
    let (ike, esp) = ("3des-sha1-modp1024", "aes128gcm8-ecp256bp");
    let cfg = GatewayConfig {
        ike_proposals: ike.into(),
        esp_proposals: esp.into(),
        rekey_time: Some("300s".into()),
        child_rekey_time: Some("300s".into()),
        child_life_time: Some("600s".into()),
        over_time: Some("60s".into()),
        ..Default::default()
    };
    let gw = Gateway::start(&tb, &cfg).unwrap();
    let profile =
        psk_profile(Some(ike), Some(esp), &[LAN_NET]) + "\n[timers]\nrekey_child = 6\nrekey_ike = 12\ndpd = 0\n";
    let mut c = IkelinkClient::start(&tb, desktop_bin(), &profile, &["-v"]).unwrap();
    c.wait_connected(T).unwrap();
    assert!(tb.ping(Role::Cli, LAN_ADDR, 1).unwrap(), "{}", c.transcript());
    let count = 200;
    let ping = start_ping(&tb, LAN_ADDR, count).unwrap();
    std::thread::sleep(Duration::from_secs(8));
    gw.rekey_child().unwrap();
    std::thread::sleep(Duration::from_secs(6));
    gw.rekey_ike().unwrap();
    let (text, received) = finish_ping(ping).unwrap();
    let log = c.log();
    let rekeyed: Vec<String> = c.lines().into_iter().filter(|l| l.starts_with("rekeyed:")).collect();
    eprintln!(
        "ping {received}/{count}; Child SA rekeys: {} (gateway {}, us {}); IKE SA rekeys: {} (gateway {}, us {})",
        rekeyed.len(),
        log.matches("gateway rekeys the Child SA").count(),
        log.matches("rekeying Child SA").count(),
        log.matches("IKE SA rekeyed").count(),
        log.matches("gateway rekeys the IKE SA").count(),
        log.matches("rekeying the IKE SA").count(),
    );
    let t = c.transcript();
    assert!(rekeyed.len() >= 2, "Child SA rekeys by both sides\n{t}");
    assert!(rekeyed.iter().all(|l| l.contains(&format!("esp={esp} "))), "PFS with ecp256bp on every rekey\n{t}");
    assert!(log.contains("gateway rekeys the Child SA") && log.contains("rekeying Child SA"), "{t}");
    assert!(log.contains("gateway rekeys the IKE SA") && log.contains("rekeying the IKE SA"), "{t}");
    assert!(log.matches("IKE SA rekeyed").count() >= 2, "{t}");
    assert!(received >= count - 2, "ping across the rekeys: {text}\n{t}");
    let gw_log = gw.log();
    assert!(!gw_log.contains("failed to establish CHILD_SA"), "gateway saw no failed rekey");
    let sas = gw.list_sas().unwrap();
    assert!(sas.contains("3DES_CBC/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024"), "{sas}");
    assert!(sas.contains("AES_GCM_8-128/ECP_256_BP"), "{sas}");
    assert!(c.interrupt(T).unwrap().success(), "{t}");
    gw.wait_for_sa_count(0, T).unwrap();
}
