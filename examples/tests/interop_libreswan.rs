//! Interop against a second gateway implementation: libreswan 4.10's pluto (Debian 12's package, unpacked into
//! target/tools/libreswan by scripts/install-deps.sh) in the gateway's namespace (issue 11).
//!
//! The kernel here has no ESP, and pluto (unlike strongSwan with kernel-libipsec) has no userspace ESP: it
//! authenticates us and establishes the IKE SA, then fails to install the Child SA ("netlink response for Add
//! SA ...: Function not implemented") and answers it with TS_UNACCEPTABLE. So these tests prove, from pluto's
//! own log, that it authenticated us and established the IKE SA (PSK, RSA and ECDSA certificates, EAP-TLS), that
//! we authenticated pluto, and that we report the refused Child SA as one clear error (on a kernel with ESP:
//! that we connect). Needs root; runs when IKELINK_INTEROP=1.
#![cfg(target_os = "linux")]

use std::path::Path;
use std::time::Duration;

use ikelink_cli::harness::*;

const BIN: &str = env!("CARGO_BIN_EXE_ikelink");
const T: Duration = Duration::from_secs(20);

fn p(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn pluto(tb: &Testbed, config: &LibreswanConfig) -> Libreswan {
    assert!(Libreswan::available(), "libreswan is not unpacked in {} (scripts/install-deps.sh)", p(&libreswan_root()));
    Libreswan::start(tb, config).unwrap()
}

/// Runs the client to its end; returns it and its single `error:` line (exit status 1, no panic).
fn run_to_error(tb: &Testbed, profile: &str) -> (IkelinkClient, String) {
    let mut c = IkelinkClient::start(tb, Path::new(BIN), profile, &["--no-tun", "-v"]).unwrap();
    let st = c.wait_exit(T).unwrap();
    assert_eq!(st.code(), Some(1), "{}", c.transcript());
    assert!(!c.log().contains("panicked"), "{}", c.transcript());
    let errs: Vec<String> = c.lines().into_iter().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errs.len(), 1, "{}", c.transcript());
    let e = errs[0].clone();
    (c, e)
}

/// pluto authenticates us (its log: "established IKE SA; authenticated peer <how>") and we authenticate pluto.
/// On a kernel without ESP (as here) the Child SA pluto cannot install comes back as TS_UNACCEPTABLE, our one
/// error; on a kernel with ESP we connect and disconnect cleanly. Returns the client and pluto's
/// "established IKE SA; authenticated peer ..." line.
fn ike_sa_established(tb: &Testbed, gw: &Libreswan, profile: &str, how: &str) -> (IkelinkClient, String) {
    let before = gw.log().matches(Libreswan::IKE_SA_ESTABLISHED).count();
    let c = if kernel_has_esp(tb).unwrap() {
        let mut c = IkelinkClient::start(tb, Path::new(BIN), profile, &["--no-tun", "-v"]).unwrap();
        if let Err(e) = c.wait_connected(T) {
            panic!("{}", gw.explain(e));
        }
        let st = c.interrupt(T).unwrap();
        assert!(st.success(), "clean disconnect exits 0: {st}\n{}", c.transcript());
        c
    } else {
        let (c, e) = run_to_error(tb, profile);
        let explain = |what: &str| format!("{what}\n{}\n--- pluto ---\n{}", c.transcript(), gw.conn_log().join("\n"));
        assert!(e.contains("TS_UNACCEPTABLE"), "{}", explain(&e));
        gw.wait_for_log("setup_half_ipsec_sa() hit fail", T).unwrap();
        // Why the Child SA failed: the kernel, not us.
        assert!(gw.log().contains("Function not implemented"), "{}", explain("kernel ESP missing"));
        eprintln!("client: {e}");
        c
    };
    let explain = |what: &str| format!("{what}\n{}\n--- pluto ---\n{}", c.transcript(), gw.conn_log().join("\n"));
    let log = gw.log();
    assert_eq!(log.matches(Libreswan::IKE_SA_ESTABLISHED).count(), before + 1, "{}", explain("IKE SA established"));
    let line = log
        .lines()
        .rfind(|l| l.contains(Libreswan::IKE_SA_ESTABLISHED))
        .map(|l| l[l.find(Libreswan::IKE_SA_ESTABLISHED).unwrap_or(0)..].to_string())
        .unwrap_or_default();
    assert!(line.contains(how), "pluto authenticated us {how}: {}", explain(&line));
    // We verified pluto's AUTH (before the Child SA answer was looked at).
    assert!(c.log().contains("gateway authenticated"), "{}", explain("we authenticated the gateway"));
    eprintln!("pluto: {line}");
    (c, line)
}

/// A profile for a gateway that presents a certificate from `ca`; no `gateway.id`, so its certificate must name
/// the address we dial (the harness certificate has SAN IP 203.0.113.2; pluto's IDr is gw.ikelink.test).
fn cert_gateway_profile(ca: &Path, auth: &str) -> String {
    format!("[gateway]\naddress = \"{GW_ADDR}\"\nca = [\"{}\"]\n\n[auth]\n{auth}\n\n[tunnel]\nremote_ts = [\"{LAN_NET}\"]\n", p(ca))
}

#[test]
fn psk_proposals_and_wrong_psk() {
    ikelink_cli::require_interop!();
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    let gw = pluto(&tb, &LibreswanConfig::default());

    let (c, _) =
        ike_sa_established(&tb, &gw, &psk_profile(None, None, &[LAN_NET]), &format!("ID_USER_FQDN '{CLIENT_ID}'"));
    let log = gw.log();
    assert!(log.contains("authby=secret"), "PSK");
    // libreswan's default proposals want MODP-2048 first: it asked for it, we retried with it.
    assert!(log.contains("INVALID_KE_PAYLOAD requesting MODP2048"), "pluto asked for MODP-2048");
    assert!(c.log().contains("INVALID_KE_PAYLOAD"), "{}", c.transcript());
    assert!(log.contains("sent IKE_SA_INIT reply {cipher=AES_GCM_16_256 integ=n/a prf=HMAC_SHA2_512 group=MODP2048}"));

    // Only our own proposal (no AES-GCM, no MODP-2048): pluto's defaults include it, no KE retry is needed.
    let before = gw.log().matches("INVALID_KE_PAYLOAD requesting").count();
    let profile = psk_profile(Some("aes128-sha256-ecp256"), Some("aes128-sha256"), &[LAN_NET]);
    ike_sa_established(&tb, &gw, &profile, "authby=secret");
    assert_eq!(gw.log().matches("INVALID_KE_PAYLOAD requesting").count(), before, "ECP-256 accepted at once");
    assert!(gw.log().contains("group=DH19}"), "{}", gw.conn_log().join("\n"));

    // A wrong PSK: pluto refuses us (AUTHENTICATION_FAILED), nothing is established.
    let before = gw.log().matches(Libreswan::IKE_SA_ESTABLISHED).count();
    let wrong = psk_profile(None, None, &[LAN_NET]).replace(DEFAULT_PSK, "a-wrong-psk-of-decent-length-42");
    let (c, e) = run_to_error(&tb, &wrong);
    eprintln!("wrong PSK: {e}");
    assert!(e.contains("AUTHENTICATION_FAILED"), "{e}\n{}", c.transcript());
    assert_eq!(gw.log().matches(Libreswan::IKE_SA_ESTABLISHED).count(), before);
    assert!(gw.log().contains("AUTHENTICATION_FAILED"), "{}", gw.conn_log().join("\n"));
}

#[test]
fn certificates_rsa_and_ecdsa() {
    ikelink_cli::require_interop!();
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    for (name, kt, how) in [
        ("rsa", KeyType::Rsa(2048), "RSA"),
        ("ecdsa", KeyType::EcdsaP256, "'P-256 ECDSA with SHA2_256' digital signature"),
    ] {
        let pki = Pki::generate_with(&tb.dir().join(format!("pki-{name}")), kt).unwrap();
        let gw = pluto(&tb, &LibreswanConfig::cert(&pki));
        let auth = format!("method = \"cert\"\ncert = \"{}\"\nkey = \"{}\"", p(&pki.client_cert), p(&pki.client_key));
        let (c, line) = ike_sa_established(&tb, &gw, &cert_gateway_profile(&pki.ca_cert, &auth), how);
        assert!(line.contains(&format!("peer certificate 'C=CH, O=Ikelink Test, CN={CLIENT_ID}'")), "{line}");
        assert!(line.contains("issued by CA 'C=CH, O=Ikelink Test, CN=Ikelink Test CA'"), "{line}");
        assert!(c.log().contains("gateway certificate valid"), "{}", c.transcript());
    }
}

fn eap_tls_profile(pki: &Pki) -> String {
    let auth = format!(
        "method = \"eap\"\neap_method = \"tls\"\ncert = \"{}\"\nkey = \"{}\"\neap_identity = \"{CLIENT_ID}\"",
        p(&pki.client_cert),
        p(&pki.client_key)
    );
    cert_gateway_profile(&pki.ca_cert, &auth)
}

/// EAP-TLS (libreswan's only EAP method), the client's certificate checked by pluto's NSS. The client offers
/// TLS 1.2 by default (as strongSwan and Windows do: libreswan 4.10 would negotiate 1.3 but keys EAP-TLS as with
/// 1.2 and sends no RFC 9190 commitment). pluto sends an empty EAP-TLS request after the handshake (answered
/// with an empty response), then EAP-Success.
#[test]
fn eap_tls() {
    ikelink_cli::require_interop!();
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    let pki = Pki::generate_with(&tb.dir().join("pki"), KeyType::EcdsaP256).unwrap();
    let gw = pluto(&tb, &LibreswanConfig::eap_tls(&pki));
    let (c, _) = ike_sa_established(&tb, &gw, &eap_tls_profile(&pki), "authby=eaponly");
    assert!(gw.log().contains("NSS: Handshake completed"), "{}", gw.conn_log().join("\n"));
    assert!(c.log().contains("EAP succeeded"), "{}", c.transcript());
}

/// EAP-TLS with pluto's NSS capped at TLS 1.2 (an NSS policy in its database).
#[test]
fn eap_tls_over_tls12() {
    ikelink_cli::require_interop!();
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    let pki = Pki::generate_with(&tb.dir().join("pki"), KeyType::EcdsaP256).unwrap();
    let config = LibreswanConfig { tls_max: Some("tls1.2".into()), ..LibreswanConfig::eap_tls(&pki) };
    let gw = pluto(&tb, &config);
    let (c, _) = ike_sa_established(&tb, &gw, &eap_tls_profile(&pki), "authby=eaponly");
    assert!(gw.log().contains("NSS: Handshake completed"), "{}", gw.conn_log().join("\n"));
    assert!(c.log().contains("EAP succeeded"), "{}", c.transcript());
}
