//! Interop of the post-quantum features (issue 14) against real strongSwan: hybrid key exchange with additional
//! key exchanges (RFC 9370, IKE_INTERMEDIATE RFC 9242, IKE_FOLLOWUP_KE on rekeys) against strongSwan 6.0.1
//! (Debian 13, chrooted; it has no ML-KEM, so the mechanics are proven with classical additional exchanges),
//! the `pq_fallback` policy, and postquantum preshared keys (RFC 8784) against the host's strongSwan 5.9.8.
//! Needs root; IKELINK_INTEROP=1.
#![cfg(target_os = "linux")]

use std::time::Duration;

use ikelink_testbed::harness::*;

const T: Duration = Duration::from_secs(30);
const PPK: &str = "0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn sw6(ike: &str, esp: &str) -> GatewayConfig {
    GatewayConfig {
        ike_proposals: ike.into(),
        esp_proposals: esp.into(),
        strongswan6: true,
        fragmentation: true,
        ..Default::default()
    }
}

/// Connect with `profile`, ping through the tunnel; returns the client and the `ike:` line.
fn connect(tb: &Testbed, profile: &str) -> (IkelinkClient, String) {
    let mut c = IkelinkClient::start(tb, desktop_bin(), profile, &[]).unwrap();
    c.wait_connected(T).unwrap_or_else(|e| panic!("{e}\n{}", c.transcript()));
    assert!(tb.ping(Role::Cli, LAN_ADDR, 1).unwrap(), "{}", c.transcript());
    let ike = c.value("ike").unwrap_or_default();
    (c, ike)
}

fn hybrid(ike: &str, esp: &str, our_child: u32, our_ike: u32) {
    ikelink_testbed::require_interop!();
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    private_resolv(&tb);
    let gw = Gateway::start(&tb, &sw6(ike, esp)).unwrap();
    let profile = psk_profile(Some(ike), Some(esp), &[LAN_NET])
        + &format!("\n[timers]\nrekey_child = {our_child}\nrekey_ike = {our_ike}\ndpd = 0\n");
    let (mut c, line) = connect(&tb, &profile);
    for ke in ike.split('-').filter(|t| t.starts_with("ke")) {
        assert!(line.contains(ke), "ike: {line}");
    }
    let log = gw.log();
    assert!(log.contains("IKE_INTERMEDIATE"), "no IKE_INTERMEDIATE at the gateway");
    // Child SA and IKE SA rekeys (with IKE_FOLLOWUP_KE) under ping.
    let sent = 10 * (our_ike + 8);
    let ping = start_ping(&tb, LAN_ADDR, sent).unwrap();
    let (out, received) = finish_ping(ping).unwrap();
    let lost = sent - received.min(sent);
    assert!(lost <= 3, "lost {lost}: {out}\n{}", c.transcript());
    // The gateway saw both kinds of rekey, each with one IKE_FOLLOWUP_KE per additional exchange, and the client
    // reports every rekeyed Child SA with the whole negotiated transform (the additional exchanges included).
    let log = gw.log();
    let additional = ike.split('-').filter(|t| t.starts_with("ke")).count();
    let ike_rekeys = log.lines().filter(|l| l.contains("IKE_SA rw[") && l.contains("rekeyed between")).count();
    let child_rekeys = log.lines().filter(|l| l.contains("rekeyed CHILD_SA")).count();
    let followups = log.lines().filter(|l| l.contains("parsed IKE_FOLLOWUP_KE request")).count();
    assert!(ike_rekeys >= 1 && child_rekeys >= 2, "ike rekeys {ike_rekeys}, child rekeys {child_rekeys}:\n{log}");
    assert!(
        followups >= additional * (ike_rekeys + child_rekeys),
        "{followups} IKE_FOLLOWUP_KE for {additional}:\n{log}"
    );
    let transcript = c.transcript();
    let rekeyed: Vec<&str> = transcript.lines().filter(|l| l.starts_with("rekeyed:")).collect();
    assert!(rekeyed.len() >= 2, "{transcript}");
    assert!(rekeyed.iter().all(|l| l.contains(&format!("esp={esp} "))), "{transcript}");
    assert!(tb.ping(Role::Cli, LAN_ADDR, 1).unwrap(), "{}", c.transcript());
    c.interrupt(T).unwrap();
}

#[test]
fn sw6_x25519_ke1_ecp384_connects_pings_and_rekeys() {
    hybrid("aes256gcm16-prfsha256-x25519-ke1_ecp384", "aes256gcm16-x25519-ke1_ecp384", 8, 16);
}

#[test]
fn sw6_x25519_ke1_ecp384_ke2_modp3072_connects_pings_and_rekeys() {
    hybrid("aes256gcm16-prfsha256-x25519-ke1_ecp384-ke2_modp3072", "aes256gcm16-x25519-ke1_ecp384-ke2_modp3072", 8, 16);
}

/// The gateway starts the rekeys (RFC 9370 §2.2.4 with us as responder): we answer its CREATE_CHILD_SA with an
/// ADDITIONAL_KEY_EXCHANGE link, then each of its IKE_FOLLOWUP_KE requests, and install the new SA after the
/// last; a Child SA rekey, an IKE SA rekey, and a Child SA rekey on the new IKE SA, under ping.
#[test]
fn sw6_gateway_initiated_rekeys_with_two_additional_exchanges() {
    ikelink_testbed::require_interop!();
    let ike = "aes256gcm16-prfsha256-x25519-ke1_ecp384-ke2_modp3072";
    let esp = "aes256gcm16-x25519-ke1_ecp384-ke2_modp3072";
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    private_resolv(&tb);
    let gw = Gateway::start(&tb, &sw6(ike, esp)).unwrap();
    let profile =
        psk_profile(Some(ike), Some(esp), &[LAN_NET]) + "\n[timers]\nrekey_child = 3600\nrekey_ike = 7200\ndpd = 0\n";
    let (mut c, _) = connect(&tb, &profile);
    let sent = 250;
    let ping = start_ping(&tb, LAN_ADDR, sent).unwrap();
    let mut at = 0;
    for (when, rekey_ike) in [(4u64, false), (10, true), (17, false)] {
        std::thread::sleep(Duration::from_secs(when - at));
        at = when;
        if rekey_ike {
            gw.rekey_ike().unwrap()
        } else {
            gw.rekey_child().unwrap()
        }
    }
    let (out, received) = finish_ping(ping).unwrap();
    let lost = sent - received.min(sent);
    let log = c.log();
    let transcript = c.transcript();
    assert!(lost <= 3, "lost {lost}: {out}\n{transcript}");
    let gw_log = gw.log();
    let followups = gw_log.lines().filter(|l| l.contains("parsed IKE_FOLLOWUP_KE response")).count();
    let child = log.matches("gateway rekeys the Child SA").count();
    let ike_rekeys = log.matches("gateway rekeys the IKE SA").count();
    assert!(child >= 2 && ike_rekeys >= 1, "child {child}, ike {ike_rekeys}:\n{log}");
    assert!(followups >= 2 * (child + ike_rekeys), "{followups} IKE_FOLLOWUP_KE answered:\n{gw_log}");
    assert!(!log.contains("STATE_NOT_FOUND") && !gw_log.contains("N(STATE_NOT_FOUND)"), "{gw_log}");
    let rekeyed: Vec<&str> = transcript.lines().filter(|l| l.starts_with("rekeyed:")).collect();
    assert!(rekeyed.len() >= 2 && rekeyed.iter().all(|l| l.contains(&format!("esp={esp} "))), "{transcript}");
    assert!(tb.ping(Role::Cli, LAN_ADDR, 1).unwrap(), "{transcript}");
    c.interrupt(T).unwrap();
}

fn classical_gateway(fallback: bool) -> (Testbed, Gateway, IkelinkClient) {
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    private_resolv(&tb);
    let gw = Gateway::start(&tb, &sw6("aes256gcm16-prfsha256-x25519", "aes256gcm16")).unwrap();
    let profile = psk_profile(Some("aes256gcm16-prfsha256-x25519-ke1_ecp384"), Some("aes256gcm16"), &[LAN_NET])
        + &format!("\n[ike]\npq_fallback = {fallback}\n");
    let c = IkelinkClient::start(&tb, desktop_bin(), &profile, &["--no-reconnect"]).unwrap();
    (tb, gw, c)
}

#[test]
fn sw6_without_addke_and_fallback_off_is_refused() {
    ikelink_testbed::require_interop!();
    let (_tb, _gw, mut c) = classical_gateway(false);
    let line = c.wait_line("error", T, |l| l.starts_with("error:")).unwrap();
    assert!(line.contains("post-quantum") && line.contains("pq_fallback"), "{line}");
}

#[test]
fn sw6_without_addke_and_fallback_on_connects_classically() {
    ikelink_testbed::require_interop!();
    let (tb, _gw, mut c) = classical_gateway(true);
    c.wait_connected(T).unwrap_or_else(|e| panic!("{e}\n{}", c.transcript()));
    assert!(tb.ping(Role::Cli, LAN_ADDR, 1).unwrap());
    let line = c.value("ike").unwrap();
    assert!(line.contains("pq-fallback=classical") && !line.contains("ke1_"), "{line}");
}

/// A gateway with a PPK for our id (`ppk_required`), as strongSwan configures it.
fn ppk_gateway(strongswan6: bool, secret: &str, required: bool) -> GatewayConfig {
    GatewayConfig {
        ike_proposals: "aes256gcm16-prfsha256-x25519".into(),
        esp_proposals: "aes256gcm16".into(),
        strongswan6,
        extra_conn: format!("    ppk_id = pqid\n    ppk_required = {}\n", if required { "yes" } else { "no" }),
        extra_swanctl: format!("secrets {{\n  ppk-1 {{\n    secret = {secret}\n    id = pqid\n  }}\n}}\n"),
        ..Default::default()
    }
}

fn ppk_profile(secret: &str, required: bool) -> String {
    psk_profile(Some("aes256gcm16-prfsha256-x25519"), Some("aes256gcm16"), &[LAN_NET])
        + &format!("\n[ppk]\nid = \"pqid\"\nsecret = \"{secret}\"\nrequired = {required}\n")
}

fn ppk_case(strongswan6: bool) {
    ikelink_testbed::require_interop!();
    // Required and matching: used.
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    private_resolv(&tb);
    let gw = Gateway::start(&tb, &ppk_gateway(strongswan6, PPK, true)).unwrap();
    let (mut c, line) = connect(&tb, &ppk_profile(PPK, true));
    assert!(line.contains("ppk=used"), "{line}");
    assert!(gw.log().contains("using PPK"), "the gateway did not use the PPK");
    c.interrupt(T).unwrap();
    drop(gw);
    // Mismatched: a clear error.
    let gw = Gateway::start(&tb, &ppk_gateway(strongswan6, &PPK.replace("1f", "ff"), true)).unwrap();
    let mut c = IkelinkClient::start(&tb, desktop_bin(), &ppk_profile(PPK, true), &["--no-reconnect"]).unwrap();
    let err = c.wait_line("error", T, |l| l.starts_with("error:")).unwrap();
    assert!(err.contains("postquantum preshared key") && err.contains("ppk.id"), "{err}");
    drop(gw);
    // Optional, gateway without PPK: classical, reported.
    let mut cfg = GatewayConfig {
        ike_proposals: "aes256gcm16-prfsha256-x25519".into(),
        esp_proposals: "aes256gcm16".into(),
        strongswan6,
        ..Default::default()
    };
    cfg.fragmentation = true;
    let _gw = Gateway::start(&tb, &cfg).unwrap();
    let (mut c, line) = connect(&tb, &ppk_profile(PPK, false));
    assert!(line.contains("ppk=not-used"), "{line}");
    c.interrupt(T).unwrap();
}

#[test]
fn ppk_required_mismatched_optional_strongswan5() {
    ppk_case(false);
}

#[test]
fn ppk_required_mismatched_optional_strongswan6() {
    ppk_case(true);
}
