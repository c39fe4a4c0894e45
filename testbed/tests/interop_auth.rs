//! Interop against a real strongSwan gateway: certificate and EAP authentication, and their failures (issue 4).
//! Certificates are made by the test with strongSwan's `pki`. Needs root; runs when IKELINK_INTEROP=1.
#![cfg(target_os = "linux")]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ikelink_testbed::harness::*;

const T: Duration = Duration::from_secs(20);

fn p(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// A profile whose gateway must present a certificate from `ca`; `auth` is the body of the [auth] section.
fn cert_gateway_profile(ca: &Path, gateway_id: &str, local_id: Option<&str>, auth: &str) -> String {
    let local = local_id.map(|i| format!("id = \"{i}\"\n")).unwrap_or_default();
    format!(
        "[gateway]\naddress = \"{GW_ADDR}\"\nid = \"{gateway_id}\"\nca = [\"{}\"]\n\n[local]\n{local}\n[auth]\n{auth}\n\n[tunnel]\nremote_ts = [\"{LAN_NET}\"]\n",
        p(ca)
    )
}

fn cert_auth(pki: &Pki) -> String {
    format!("method = \"cert\"\ncert = \"{}\"\nkey = \"{}\"", p(&pki.client_cert), p(&pki.client_key))
}

fn eap_auth(method: &str, password: &str) -> String {
    format!("method = \"eap\"\neap_method = \"{method}\"\nusername = \"{EAP_USER}\"\npassword = \"{password}\"")
}

/// Connect (negotiation only), check the gateway's view, disconnect cleanly.
fn connects(tb: &Testbed, gw: &Gateway, profile: &str) -> IkelinkClient {
    let mut c = IkelinkClient::start(tb, desktop_bin(), profile, &["--no-tun"]).unwrap();
    c.wait_connected(T).unwrap();
    gw.wait_for_sa_count(1, T).unwrap();
    assert!(gw.list_sas().unwrap().contains("INSTALLED"));
    assert!(c.interrupt(T).unwrap().success(), "{}", c.transcript());
    gw.wait_for_sa_count(0, T).unwrap();
    c
}

/// Run the client to its failure; return the single `error:` line.
fn fails(tb: &Testbed, profile: &str) -> String {
    let mut c = IkelinkClient::start(tb, desktop_bin(), profile, &["--no-tun"]).unwrap();
    let st = c.wait_exit(T).unwrap();
    assert_eq!(st.code(), Some(1), "{}", c.transcript());
    assert!(!c.log().contains("panicked"), "{}", c.transcript());
    let errs: Vec<String> = c.lines().into_iter().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errs.len(), 1, "{}", c.transcript());
    errs[0].clone()
}

fn cert_gateway(tb: &Testbed, pki: &Pki, remote_auth: &str) -> GatewayConfig {
    let _ = tb;
    GatewayConfig {
        auth: GatewayAuth::Cert { pki: pki.clone(), remote_auth: remote_auth.into() },
        psk: None,
        eap_users: vec![(EAP_USER.into(), EAP_PASSWORD.into())],
        ..Default::default()
    }
}

#[test]
fn mutual_certificates_rsa_and_ecdsa() {
    ikelink_testbed::require_interop!();
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    for (name, kt) in [("rsa", KeyType::Rsa(2048)), ("ecdsa", KeyType::EcdsaP256)] {
        let dir = tb.dir().join(format!("pki-{name}"));
        let pki = Pki::generate_with(&dir, kt).unwrap();
        let gw = Gateway::start(&tb, &cert_gateway(&tb, &pki, "pubkey")).unwrap();
        // Our identity defaults to the certificate's subject DN.
        let c = connects(&tb, &gw, &cert_gateway_profile(&pki.ca_cert, GW_ID, None, &cert_auth(&pki)));
        assert!(c.value("local-id").unwrap().contains(CLIENT_ID), "{}", c.transcript());
        assert_eq!(c.value("remote-id").unwrap(), GW_ID);
        assert!(gw.log().contains("authentication of") && gw.log().contains("with RSA") || name == "ecdsa");
        drop(gw);
    }
}

#[test]
fn eap_mschapv2_md5_and_tls() {
    ikelink_testbed::require_interop!();
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    let pki = Pki::generate_with(&tb.dir().join("pki"), KeyType::EcdsaP256).unwrap();
    let mut gw = Gateway::start(&tb, &cert_gateway(&tb, &pki, "eap-mschapv2")).unwrap();

    // The Windows/iOS road-warrior setup: gateway certificate + EAP-MSCHAPv2 with an EAP-Identity round.
    connects(&tb, &gw, &cert_gateway_profile(&pki.ca_cert, GW_ID, None, &eap_auth("mschapv2", EAP_PASSWORD)));
    assert!(gw.log().contains("EAP_IDENTITY"), "the gateway ran an EAP-Identity round");

    // Without the EAP-Identity round: the gateway takes IDi as the EAP identity.
    let mut cfg = cert_gateway(&tb, &pki, "eap-mschapv2");
    cfg.remote_id = EAP_USER.into();
    gw.reconfigure(&cfg).unwrap();
    let before = gw.log().matches("EAP_IDENTITY").count();
    connects(&tb, &gw, &cert_gateway_profile(&pki.ca_cert, GW_ID, Some(EAP_USER), &eap_auth("mschapv2", EAP_PASSWORD)));
    assert_eq!(gw.log().matches("EAP_IDENTITY").count(), before, "no EAP-Identity round this time");

    // EAP-MD5 (no MSK: AUTH falls back to SK_pi/SK_pr).
    gw.reconfigure(&cert_gateway(&tb, &pki, "eap-md5")).unwrap();
    connects(&tb, &gw, &cert_gateway_profile(&pki.ca_cert, GW_ID, None, &eap_auth("md5", EAP_PASSWORD)));

    // EAP-TLS with our client certificate.
    gw.reconfigure(&cert_gateway(&tb, &pki, "eap-tls")).unwrap();
    let tls = format!(
        "method = \"eap\"\neap_method = \"tls\"\ncert = \"{}\"\nkey = \"{}\"\neap_identity = \"{CLIENT_ID}\"",
        p(&pki.client_cert),
        p(&pki.client_key)
    );
    connects(&tb, &gw, &cert_gateway_profile(&pki.ca_cert, GW_ID, None, &tls));

    // EAP-TTLS with EAP-MSCHAPv2 inside: an anonymous outer identity, the user name only in the tunnel.
    gw.reconfigure(&cert_gateway(&tb, &pki, "eap-ttls")).unwrap();
    let ttls = format!("{}\neap_identity = \"anonymous\"", eap_auth("ttls", EAP_PASSWORD));
    connects(&tb, &gw, &cert_gateway_profile(&pki.ca_cert, GW_ID, None, &ttls));
    let log = gw.log();
    assert!(log.contains("EAP_TTLS"), "the gateway ran EAP-TTLS");
    assert!(
        log.contains(&format!("phase2 authentication of '{EAP_USER}' with EAP_MSCHAPV2 successful")),
        "inner EAP-MSCHAPv2 for {EAP_USER}"
    );
}

#[test]
fn authentication_failures_are_distinct_errors() {
    ikelink_testbed::require_interop!();
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    let pki = Pki::generate_with(&tb.dir().join("pki"), KeyType::EcdsaP256).unwrap();
    let other = Pki::generate_with(&tb.dir().join("other"), KeyType::EcdsaP256).unwrap();
    let mut gw = Gateway::start(&tb, &cert_gateway(&tb, &pki, "eap-mschapv2")).unwrap();

    // Wrong EAP password: MSCHAPv2 failure E=691.
    let e = fails(&tb, &cert_gateway_profile(&pki.ca_cert, GW_ID, None, &eap_auth("mschapv2", "wrong-password")));
    assert!(e.contains("EAP") && e.contains("691"), "{e}");

    // Wrong password inside EAP-TTLS: the inner MSCHAPv2 failure is the error.
    gw.reconfigure(&cert_gateway(&tb, &pki, "eap-ttls")).unwrap();
    let e = fails(&tb, &cert_gateway_profile(&pki.ca_cert, GW_ID, None, &eap_auth("ttls", "wrong-password")));
    assert!(e.contains("EAP") && e.contains("691"), "{e}");
    gw.reconfigure(&cert_gateway(&tb, &pki, "eap-mschapv2")).unwrap();

    // Gateway certificate from a CA we do not trust.
    let e = fails(&tb, &cert_gateway_profile(&other.ca_cert, GW_ID, None, &eap_auth("mschapv2", EAP_PASSWORD)));
    assert!(e.contains("certificate") && e.to_lowercase().contains("trust"), "{e}");

    // Identity mismatch: we expect another gateway name.
    let e = fails(
        &tb,
        &cert_gateway_profile(&pki.ca_cert, "vpn.elsewhere.test", None, &eap_auth("mschapv2", EAP_PASSWORD)),
    );
    assert!(e.contains("identity") && e.contains("vpn.elsewhere.test"), "{e}");

    // The gateway demands a client certificate; we only have a password.
    gw.reconfigure(&cert_gateway(&tb, &pki, "pubkey")).unwrap();
    let e = fails(&tb, &cert_gateway_profile(&pki.ca_cert, GW_ID, None, &eap_auth("mschapv2", EAP_PASSWORD)));
    assert!(e.contains("client certificate"), "{e}");

    // Expired gateway certificate (valid in 2020 only).
    let s = |p: &Path| p.to_string_lossy().into_owned();
    let out = Command::new("pki")
        .args(["--issue", "--cacert", &s(&pki.ca_cert), "--cakey", &s(&pki.ca_key), "--type", "priv"])
        .args(["--in", &s(&pki.gw_key), "--dn", &format!("C=CH, O=Ikelink Test, CN={GW_ID}")])
        .args(["--san", GW_ID, "--san", &GW_ADDR.to_string(), "--flag", "serverAuth", "--outform", "pem"])
        .args(["--dateform", "%Y-%m-%d %H:%M:%S", "--not-before", "2020-01-01 00:00:00"])
        .args(["--not-after", "2020-12-31 00:00:00"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let expired_dir = tb.dir().join("expired");
    std::fs::create_dir_all(&expired_dir).unwrap();
    let mut expired = pki.clone();
    expired.gw_cert = expired_dir.join("gw-cert.pem");
    std::fs::write(&expired.gw_cert, &out.stdout).unwrap();
    drop(gw);
    let _gw = Gateway::start(&tb, &cert_gateway(&tb, &expired, "eap-mschapv2")).unwrap();
    let e = fails(&tb, &cert_gateway_profile(&pki.ca_cert, GW_ID, None, &eap_auth("mschapv2", EAP_PASSWORD)));
    assert!(e.to_lowercase().contains("expired"), "{e}");
}

/// A strongSwan app profile (.sswan, the road-warrior EAP-MSCHAPv2 setup with the CA inside) imported with
/// `ikelink import` connects to the strongSwan gateway as is.
#[test]
fn imported_strongswan_app_profile_connects() {
    use base64::Engine as _;
    ikelink_testbed::require_interop!();
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    let pki = Pki::generate_with(&tb.dir().join("pki"), KeyType::EcdsaP256).unwrap();
    let gw = Gateway::start(&tb, &cert_gateway(&tb, &pki, "eap-mschapv2")).unwrap();
    let ca = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&pki.ca_cert).unwrap());
    let sswan = format!(
        r#"{{"uuid":"6f1c2a52-2d1e-4d55-9d87-2b1f3c4d5e6f","name":"Test Gateway","type":"ikev2-eap",
            "remote":{{"addr":"{GW_ADDR}","id":"{GW_ID}","cert":"{ca}"}},
            "local":{{"eap_id":"{EAP_USER}","shared_secret":"{EAP_PASSWORD}"}},
            "split-tunneling":{{"subnets":"{LAN_NET}"}},"mtu":1400}}"#
    );
    let file = tb.dir().join("test.sswan");
    std::fs::write(&file, sswan).unwrap();
    let out_dir = tb.dir().join("imported");
    let out = Command::new(desktop_bin()).args(["import", &p(&file), "--dir", &p(&out_dir)]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("warning: mtu"), "{stdout}");
    let profile = std::fs::read_to_string(out_dir.join("test-gateway.toml")).unwrap();
    connects(&tb, &gw, &profile);
}

/// Revocation (RFC 5280 §6.3): with the CA's CRL in the profile (`gateway.crl`, made by `pki --signcrl`), a
/// revoked gateway certificate is refused; a CRL that does not list it changes nothing.
#[test]
fn revoked_gateway_certificate_is_refused() {
    ikelink_testbed::require_interop!();
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    let pki = Pki::generate_with(&tb.dir().join("pki"), KeyType::EcdsaP256).unwrap();
    let mut gw = Gateway::start(&tb, &cert_gateway(&tb, &pki, "eap-mschapv2")).unwrap();
    let crl = |name: &str, revoke: bool| {
        let path = tb.dir().join(name);
        let mut cmd = Command::new("pki");
        cmd.args(["--signcrl", "--cacert", &p(&pki.ca_cert), "--cakey", &p(&pki.ca_key), "--outform", "pem"]);
        if revoke {
            cmd.args(["--reason", "key-compromise", "--cert", &p(&pki.gw_cert)]);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        std::fs::write(&path, out.stdout).unwrap();
        path
    };
    let profile = |crl: &Path| {
        cert_gateway_profile(&pki.ca_cert, GW_ID, None, &eap_auth("mschapv2", EAP_PASSWORD)).replacen(
            "ca = [",
            &format!("crl = [\"{}\"]\nca = [", p(crl)),
            1,
        )
    };
    // A CRL of the CA that does not list the gateway: connects.
    let mut c = IkelinkClient::start(&tb, desktop_bin(), &profile(&crl("empty.crl", false)), &["--no-tun"]).unwrap();
    c.wait_connected(T).unwrap();
    assert!(c.interrupt(T).unwrap().success());
    // The gateway's certificate revoked: refused with its own error.
    let revoked = crl("revoked.crl", true);
    let e = fails(&tb, &profile(&revoked));
    assert!(e.contains("revoked"), "{e}");

    // With certificates both ways the gateway has set up the SAs by its one IKE_AUTH response; our refusal
    // (AUTHENTICATION_FAILED in an INFORMATIONAL, RFC 7296 §2.21.2) makes it delete them at once.
    gw.reconfigure(&cert_gateway(&tb, &pki, "pubkey")).unwrap();
    let mutual = cert_gateway_profile(&pki.ca_cert, GW_ID, None, &cert_auth(&pki)).replacen(
        "ca = [",
        &format!("crl = [\"{}\"]\nca = [", p(&revoked)),
        1,
    );
    let e = fails(&tb, &mutual);
    assert!(e.contains("revoked"), "{e}");
    gw.wait_for_sa_count(0, Duration::from_secs(5)).unwrap();
    assert!(gw.log().contains("received DELETE for IKE_SA"), "the gateway deleted the SAs it had set up");
}

/// Online revocation (RFC 5280 §4.2.1.13): the gateway's certificate names a CRL distribution point, served
/// over HTTP on the gateway's public address; the client fetches the CRL before it trusts the gateway
/// (strongSwan's `revocation` policies: relaxed by default, ifuri on request).
#[test]
fn crl_from_the_distribution_point_is_fetched() {
    ikelink_testbed::require_interop!();
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    let url = format!("http://{GW_ADDR}:8080/ca.crl");
    let pki = Pki::generate_full(&tb.dir().join("pki"), KeyType::EcdsaP256, Some(&url), None).unwrap();
    let _gw = Gateway::start(&tb, &cert_gateway(&tb, &pki, "eap-mschapv2")).unwrap();
    let www = tb.dir().join("www");
    std::fs::create_dir_all(&www).unwrap();
    // What CAs publish: a DER CRL.
    let publish = |revoke: bool| {
        let mut cmd = Command::new("pki");
        cmd.args(["--signcrl", "--cacert", &p(&pki.ca_cert), "--cakey", &p(&pki.ca_key), "--outform", "der"]);
        if revoke {
            cmd.args(["--reason", "key-compromise", "--cert", &p(&pki.gw_cert)]);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        std::fs::write(www.join("ca.crl"), out.stdout).unwrap();
    };
    let http = tb.start_http_server(Role::Gw, &www, GW_ADDR, 8080).unwrap();
    let profile = |revocation: &str| {
        cert_gateway_profile(&pki.ca_cert, GW_ID, None, &eap_auth("mschapv2", EAP_PASSWORD)).replacen(
            "ca = [",
            &format!("revocation = \"{revocation}\"\nca = ["),
            1,
        )
    };

    // A CRL that does not list the gateway: fetched, connects.
    publish(false);
    let mut c = IkelinkClient::start(&tb, desktop_bin(), &profile("relaxed"), &["--no-tun"]).unwrap();
    c.wait_connected(T).unwrap();
    let log = c.log();
    assert!(log.contains("fetched CRL") && log.contains(&url), "{}", c.transcript());
    assert!(c.interrupt(T).unwrap().success());

    // The CA revokes the gateway's certificate: refused with its own error.
    publish(true);
    let e = fails(&tb, &profile("relaxed"));
    assert!(e.contains("revoked"), "{e}");

    // No CRL to be had: relaxed connects anyway, ifuri refuses.
    http.stop();
    let mut c = IkelinkClient::start(&tb, desktop_bin(), &profile("relaxed"), &["--no-tun"]).unwrap();
    c.wait_connected(T).unwrap();
    assert!(c.log().contains("cannot fetch CRL"), "{}", c.transcript());
    assert!(c.interrupt(T).unwrap().success());
    let e = fails(&tb, &profile("ifuri"));
    assert!(e.contains("no revocation status") && e.contains(&url), "{e}");
}

/// The corporate setup: the gateway relays EAP to a RADIUS server (`eap-radius`, here FreeRADIUS 3.2 as a
/// stand-in for Windows NPS) that runs the EAP method itself. PEAPv0 with EAP-MSCHAPv2 inside (what Windows
/// clients and NPS default to), EAP-TLS with our certificate, EAP-TTLS, and plain EAP-MSCHAPv2, each with the MSK
/// from the RADIUS server.
#[test]
fn eap_through_a_radius_server() {
    ikelink_testbed::require_interop!();
    assert!(Radius::available(), "FreeRADIUS is not installed (scripts/install-deps.sh installs it)");
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    let pki = Pki::generate_with(&tb.dir().join("pki"), KeyType::EcdsaP256).unwrap();
    let gw = Gateway::start(&tb, &cert_gateway(&tb, &pki, "eap-radius")).unwrap();
    let tunneled = |method: &str| format!("{}\neap_identity = \"anonymous\"", eap_auth(method, EAP_PASSWORD));
    let eap_tls = format!(
        "method = \"eap\"\neap_method = \"tls\"\ncert = \"{}\"\nkey = \"{}\"\neap_identity = \"{CLIENT_ID}\"",
        p(&pki.client_cert),
        p(&pki.client_key)
    );
    for (radius_eap, tls, profile_auth, method_in_log) in [
        ("tls", "1.2", eap_tls, "EAP-TLS"),
        ("peap", "1.2", tunneled("peap"), "PEAP"),
        ("peap", "1.3", tunneled("peap") + "\ntls_max_version = \"1.3\"", "PEAP over TLS 1.3"),
        ("ttls", "1.2", tunneled("ttls"), "TTLS"),
        ("mschapv2", "1.2", eap_auth("mschapv2", EAP_PASSWORD), "MSCHAPv2"),
    ] {
        let mut radius = Radius::start_with(&tb, &pki, radius_eap, tls).unwrap();
        connects(&tb, &gw, &cert_gateway_profile(&pki.ca_cert, GW_ID, None, &profile_auth));
        let log = radius.log();
        assert!(log.contains("Sent Access-Accept"), "RADIUS accepted {EAP_USER} ({radius_eap})");
        assert!(log.contains(&format!("eap_{radius_eap}: ")), "RADIUS ran {method_in_log}");
        let user = if radius_eap == "tls" { CLIENT_ID } else { EAP_USER };
        assert!(log.contains(&format!("\"{user}\"")), "the (inner) identity reached RADIUS");
        if tls == "1.3" {
            assert!(log.contains("send TLS 1.3"), "{method_in_log}: TLS 1.3 was used");
        }
        // A wrong password is refused with the inner method's reason.
        if radius_eap != "mschapv2" && radius_eap != "tls" {
            let e = fails(&tb, &cert_gateway_profile(&pki.ca_cert, GW_ID, None, &eap_auth(radius_eap, "wrong")));
            eprintln!("{method_in_log}, wrong password: {e}");
            assert!(e.contains("EAP"), "{method_in_log}: {e}");
        }
        radius.stop();
    }
}

/// OCSP (RFC 6960): the gateway's certificate names an OCSP responder (here OpenSSL's `openssl ocsp`, signing
/// with the CA's key, on the gateway's public address); the client asks it before it trusts the gateway. With
/// `revocation = "ifuri"` and no CRL, only a good OCSP answer lets the connection through.
#[test]
fn ocsp_responder_is_asked() {
    ikelink_testbed::require_interop!();
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    let url = format!("http://{GW_ADDR}:8081");
    let pki = Pki::generate_full(&tb.dir().join("pki"), KeyType::EcdsaP256, None, Some(&url)).unwrap();
    let _gw = Gateway::start(&tb, &cert_gateway(&tb, &pki, "eap-mschapv2")).unwrap();
    let out = Command::new("openssl").args(["x509", "-noout", "-serial", "-in", &p(&pki.gw_cert)]).output().unwrap();
    let serial = String::from_utf8_lossy(&out.stdout).trim().trim_start_matches("serial=").to_string();
    assert!(!serial.is_empty(), "{out:?}");
    let index = tb.dir().join("ocsp-index.txt");
    let dn = format!("/C=CH/O=Ikelink Test/CN={GW_ID}");
    // The responder: OpenSSL's, answering from a CA database (index.txt: V valid, R revoked).
    // A delegated responder (AD CS style): its own certificate from the CA, for OCSP signing only.
    let pkis = |args: &[&str], out: &Path| {
        let o = Command::new("pki").args(args).output().unwrap();
        assert!(o.status.success(), "pki {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        std::fs::write(out, o.stdout).unwrap();
    };
    let (signer_key, signer_pub, signer_cert) =
        (tb.dir().join("ocsp.key"), tb.dir().join("ocsp.pub"), tb.dir().join("ocsp.crt"));
    pkis(&["--gen", "--type", "ecdsa", "--size", "256", "--outform", "pem"], &signer_key);
    pkis(&["--pub", "--in", &p(&signer_key), "--outform", "pem"], &signer_pub);
    let (ca_cert, ca_key) = (p(&pki.ca_cert), p(&pki.ca_key));
    let issue = ["--issue", "--cacert", &ca_cert, "--cakey", &ca_key, "--in", &p(&signer_pub)];
    let signer_args = [&issue[..], &["--dn", "C=CH, O=Ikelink Test, CN=OCSP", "--flag", "ocspSigning"]].concat();
    pkis(&[&signer_args[..], &["--outform", "pem"]].concat(), &signer_cert);
    let responder_signed_by = |status: &str, cert: &Path, key: &Path| {
        let revoked = if status == "R" { "251101000000Z,keyCompromise" } else { "" };
        std::fs::write(&index, format!("{status}\t351231235959Z\t{revoked}\t{serial}\tunknown\t{dn}\n")).unwrap();
        let log = tb.dir().join("ocsp.log");
        // `-port` takes a port only: it listens on all addresses of the gateway's namespace.
        let (idx, ca, signer, key) = (p(&index), p(&pki.ca_cert), p(cert), p(key));
        let args =
            ["ocsp", "-index", &idx, "-port", "8081", "-rsigner", &signer, "-rkey", &key, "-CA", &ca, "-nmin", "5"];
        tb.spawn_listening(Role::Gw, "OCSP responder", "openssl", &args, &log, Listen::Tcp(8081)).unwrap()
    };
    let responder = |status: &str| responder_signed_by(status, &pki.ca_cert, &pki.ca_key);
    let stop = |mut c: std::process::Child| {
        let _ = c.kill();
        let _ = c.wait();
    };
    let profile = |revocation: &str| {
        cert_gateway_profile(&pki.ca_cert, GW_ID, None, &eap_auth("mschapv2", EAP_PASSWORD)).replacen(
            "ca = [",
            &format!("revocation = \"{revocation}\"\nca = ["),
            1,
        )
    };

    // Good: connects (ifuri: it is the only status there is).
    let r = responder("V");
    let mut c = IkelinkClient::start(&tb, desktop_bin(), &profile("ifuri"), &["--no-tun"]).unwrap();
    c.wait_connected(T).unwrap();
    let log = c.log();
    assert!(log.contains("OCSP answer") && log.contains("Good"), "{}", c.transcript());
    assert!(c.interrupt(T).unwrap().success());
    stop(r);

    // Good from the delegated responder: connects too.
    let r = responder_signed_by("V", &signer_cert, &signer_key);
    let mut c = IkelinkClient::start(&tb, desktop_bin(), &profile("ifuri"), &["--no-tun"]).unwrap();
    c.wait_connected(T).unwrap();
    assert!(c.log().contains("Good"), "{}", c.transcript());
    assert!(c.interrupt(T).unwrap().success());
    stop(r);

    // Revoked: refused with its own error.
    let r = responder("R");
    let e = fails(&tb, &profile("relaxed"));
    assert!(e.contains("revoked"), "{e}");
    stop(r);

    // No responder: ifuri refuses, relaxed connects.
    let e = fails(&tb, &profile("ifuri"));
    assert!(e.contains("no revocation status") && e.contains(&url), "{e}");
    let mut c = IkelinkClient::start(&tb, desktop_bin(), &profile("relaxed"), &["--no-tun"]).unwrap();
    c.wait_connected(T).unwrap();
    assert!(c.log().contains("cannot fetch OCSP answer"), "{}", c.transcript());
    assert!(c.interrupt(T).unwrap().success());
}

/// Issue 10 (hole 5): without `gateway.id` the gateway must prove the address we dialled. Its certificate names
/// gw.ikelink.test and 203.0.113.2: a profile dialling 203.0.113.2 connects (its IDr is the FQDN, the
/// certificate names the address); the same gateway reached at a second address its certificate does not name
/// is refused with an identity error; `id = "%any"` is the explicit opt-out.
#[test]
fn gateway_identity_defaults_to_its_address() {
    ikelink_testbed::require_interop!();
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    const GW2: &str = "203.0.113.3";
    tb.exec(Role::Gw, &["ip", "addr", "add", &format!("{GW2}/24"), "dev", "eth0"]).unwrap();
    let pki = Pki::generate_with(&tb.dir().join("pki"), KeyType::EcdsaP256).unwrap();
    let gw = Gateway::start(&tb, &cert_gateway(&tb, &pki, "eap-mschapv2")).unwrap();
    let no_id = |address: &str, extra: &str| {
        cert_gateway_profile(&pki.ca_cert, GW_ID, None, &eap_auth("mschapv2", EAP_PASSWORD))
            .replace(&format!("id = \"{GW_ID}\"\n"), extra)
            .replace(&GW_ADDR.to_string(), address)
    };
    let c = connects(&tb, &gw, &no_id(&GW_ADDR.to_string(), ""));
    assert_eq!(c.value("remote-id").unwrap(), GW_ID);

    let e = fails(&tb, &no_id(GW2, ""));
    assert!(e.contains("identity") && e.contains(GW2), "{e}");
    gw.wait_for_sa_count(0, T).unwrap();

    connects(&tb, &gw, &no_id(GW2, "id = \"%any\"\n"));

    // A gateway that identifies with its certificate's DN while the profile names its host name (issue 11):
    // the certificate names the host name, so it is the expected gateway.
    drop(gw);
    let dn = format!("C=CH, O=Ikelink Test, CN={GW_ID}");
    let cfg = GatewayConfig { local_id: dn.clone(), ..cert_gateway(&tb, &pki, "eap-mschapv2") };
    let gw = Gateway::start(&tb, &cfg).unwrap();
    let c = connects(&tb, &gw, &cert_gateway_profile(&pki.ca_cert, GW_ID, None, &eap_auth("mschapv2", EAP_PASSWORD)));
    assert_eq!(c.value("remote-id").unwrap(), dn);
    let e = fails(
        &tb,
        &cert_gateway_profile(&pki.ca_cert, "vpn.elsewhere.test", None, &eap_auth("mschapv2", EAP_PASSWORD)),
    );
    assert!(e.contains("identity") && e.contains("vpn.elsewhere.test"), "{e}");
}
