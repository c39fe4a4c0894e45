//! Interop against a second gateway implementation: libreswan 4.10's pluto (Debian 12's package, unpacked into
//! target/tools/libreswan by scripts/install-deps.sh) in the gateway's namespace (issue 11).
//!
//! pluto (unlike strongSwan with kernel-libipsec) has no userspace ESP: its Child SAs live in the kernel. Each
//! test proves from pluto's own log that it authenticated us and established the IKE SA (PSK, RSA and ECDSA
//! certificates, EAP-TLS), and that we authenticated pluto; then, after what the kernel can do:
//! - The kernel here has no ESP: pluto fails to install the Child SA ("netlink response for Add SA ...: Function
//!   not implemented") and answers it with TS_UNACCEPTABLE, which we must report as one clear error.
//! - A kernel with ESP (the VM of scripts/vm-run.sh, `IKELINK_VM=1 scripts/test.sh`): the full connection with the
//!   client's defaults (forced UDP encapsulation, a TUN with routes and DNS). pluto installs the Child SA in the
//!   kernel (ESP in UDP 4500) and runs libreswan's updown; we ping the LAN host, reachable only through the tunnel
//!   (the gateway's XFRM policy sends the LAN's replies to our virtual IP back into it), run iperf3, check pluto's
//!   and the kernel's counters, and disconnect cleanly (pluto and the kernel drop the SAs).
//!
//! Needs root; runs when IKELINK_INTEROP=1.
#![cfg(target_os = "linux")]

use std::path::Path;
use std::time::{Duration, Instant};

use ikelink_testbed::harness::*;

/// Generous: in the VM everything runs under software emulation (TCG), tens of times slower than native.
const T: Duration = Duration::from_secs(120);
/// What iperf3 sends through the tunnel on a kernel with ESP (the main connection of PSK and EAP-TLS; the others
/// send [`IPERF_BYTES_SHORT`]).
const IPERF_BYTES: u64 = 5_000_000;
const IPERF_BYTES_SHORT: u64 = 2_000_000;

fn p(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn pluto(tb: &Testbed, config: &LibreswanConfig) -> Libreswan {
    assert!(Libreswan::available(), "libreswan is not unpacked in {} (scripts/install-deps.sh)", p(&libreswan_root()));
    Libreswan::start(tb, config).unwrap()
}

/// Runs the client to its end; returns it and its single `error:` line (exit status 1, no panic).
fn run_to_error(tb: &Testbed, profile: &str) -> (IkelinkClient, String) {
    let mut c = IkelinkClient::start(tb, desktop_bin(), profile, &["--no-tun", "-v"]).unwrap();
    let st = c.wait_exit(T).unwrap();
    assert_eq!(st.code(), Some(1), "{}", c.transcript());
    assert!(!c.log().contains("panicked"), "{}", c.transcript());
    let errs: Vec<String> = c.lines().into_iter().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errs.len(), 1, "{}", c.transcript());
    let e = errs[0].clone();
    (c, e)
}

/// `ping -c count` from the client to the LAN host: the replies and ping's "rtt min/avg/max/mdev" line.
fn ping_lan(tb: &Testbed, count: u32) -> (u32, String) {
    let (n, deadline) = (count.to_string(), (count + 10).to_string());
    let a = LAN_ADDR.to_string();
    let args = ["ping", "-n", "-q", "-c", &n, "-i", "0.2", "-W", "2", "-w", &deadline, &a];
    let out = tb.exec_unchecked(Role::Cli, &args, Duration::from_secs(u64::from(count) + 20)).unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // "5 packets transmitted, 5 received, 0% packet loss, time 803ms" / "rtt min/avg/max/mdev = ..."
    let received = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let rtt = text.lines().find(|l| l.starts_with("rtt ")).unwrap_or_default().to_string();
    (received, rtt)
}

/// A named counter from the client's last `stats:` line.
fn stat(c: &IkelinkClient, name: &str) -> Option<u64> {
    let line = c.last_value("stats")?;
    line.split_whitespace().find_map(|kv| kv.strip_prefix(&format!("{name}="))).and_then(|v| v.parse().ok())
}

fn gw_xfrm(tb: &Testbed, what: &[&str]) -> String {
    let mut args = vec!["ip"];
    args.extend_from_slice(what);
    String::from_utf8_lossy(&tb.exec(Role::Gw, &args).unwrap().stdout).into_owned()
}

/// The full connection on a kernel with ESP (see the module docs): the client with its defaults connects with a
/// TUN, pings the LAN host, sends `iperf_bytes` to it with iperf3 and disconnects; pluto's Child SA (and only it)
/// carried the traffic. Returns the disconnected client.
fn full_traffic(tb: &Testbed, gw: &Libreswan, profile: &str, iperf_bytes: u64) -> IkelinkClient {
    let started = Instant::now();
    private_resolv(tb);
    assert!(!profile.contains("force_encap") && !profile.contains("[nat]"), "the client's defaults: {profile}");
    assert_eq!(ping_lan(tb, 1).0, 0, "the LAN must be reachable only through the tunnel");
    let iperf = tb.start_iperf_server(Role::Lan).unwrap();
    let log_before = gw.log().len();
    let children_before = gw.log().matches(Libreswan::CHILD_SA_ESTABLISHED).count();

    let mut c = IkelinkClient::start(tb, desktop_bin(), profile, &["--stats-interval", "1", "-v"]).unwrap();
    if let Err(e) = c.wait_connected(T) {
        panic!("{}", gw.explain(e));
    }
    let explain = |c: &IkelinkClient, what: &str| {
        format!("{what}\n{}\n--- pluto ---\n{}", c.transcript(), gw.conn_log().join("\n"))
    };
    let value = |c: &IkelinkClient, key: &str| c.value(key).unwrap_or_default();
    let (esp, nat, vip) = (value(&c, "esp"), value(&c, "nat"), value(&c, "virtual-ip"));
    eprintln!(
        "connected after {:.1} s: ike: {} / esp: {esp} / virtual-ip: {vip} / nat: {nat}",
        started.elapsed().as_secs_f64(),
        value(&c, "ike")
    );
    // No NAT on the path: UDP encapsulation is the client's default (faked NAT detection, RFC 3948).
    assert!(nat.contains("encap=true"), "{}", explain(&c, &nat));
    assert!(vip.starts_with("100.64.0."), "a virtual IP from pluto's pool: {}", explain(&c, &vip));
    let children = || gw.log().matches(Libreswan::CHILD_SA_ESTABLISHED).count();
    if let Err(e) = wait_until("pluto's Child SA", T, Duration::from_millis(50), || Ok(children() > children_before)) {
        panic!("{}", explain(&c, &e.to_string()));
    }
    assert_eq!(children(), children_before + 1, "{}", explain(&c, "one Child SA"));
    let log = gw.log();
    assert!(!log.contains("unknown interface version"), "libreswan's own updown: {}", explain(&c, ""));
    // pluto's internal checks: with EAP-TLS it always logs two about the type of its own key
    // (get_local_private_key(), keys.c), on any kernel; anything else (e.g. "kernel_policy == NULL" after a failed
    // updown) is a failure.
    let expectations: Vec<&str> =
        log.lines().filter(|l| l.contains("EXPECTATION FAILED") && !l.contains("get_local_private_key()")).collect();
    assert!(expectations.is_empty(), "{}", explain(&c, &expectations.join("\n")));

    let (pings, rtt) = ping_lan(tb, 5);
    assert!(pings >= 3, "{}", explain(&c, &format!("{pings}/5 pings through the tunnel")));
    eprintln!("ping: {pings}/5 replies from {LAN_ADDR} through the tunnel; {rtt}");

    let t = Instant::now();
    let o = IperfOptions { bytes: Some(iperf_bytes), timeout: Duration::from_secs(300), ..Default::default() };
    let r = tb.iperf_client_with(Role::Cli, LAN_ADDR, &o).unwrap_or_else(|e| panic!("{}", explain(&c, &e.to_string())));
    assert!(r.sent_bytes >= iperf_bytes && r.bytes > 0, "{r:?}");
    eprintln!(
        "iperf3: {} bytes sent, {} received in {:.1} s, {:.2} Mbit/s received (sender {:.2} Mbit/s), retransmits {:?}",
        r.sent_bytes,
        r.bytes,
        t.elapsed().as_secs_f64(),
        r.bits_per_second / 1e6,
        r.sent_bits_per_second / 1e6,
        r.retransmits
    );
    drop(iperf);

    // pluto's counters (the kernel's, of its Child SA) cover what iperf3 delivered, for our virtual IP.
    let status = gw.traffic_status().unwrap();
    eprintln!("pluto whack --trafficstatus:\n{}", status.trim_end());
    let counted = Libreswan::traffic_bytes(&status);
    assert_eq!(counted.len(), 1, "one Child SA: {status}");
    let (bytes_in, bytes_out) = counted[0];
    assert!(bytes_in >= r.bytes && bytes_out > 0, "pluto counted the traffic ({r:?}): {status}");
    assert!(status.contains(&format!("lease={vip}/32")), "{vip}: {status}");

    // The kernel holds both SAs, ESP in UDP 4500, and the policy that sends the LAN's replies to our virtual IP
    // into the tunnel (the gateway's only way back to it: its default route leads to the router, which has no
    // route to the pool).
    let xfrm = gw_xfrm(tb, &["-s", "xfrm", "state"]);
    let brief: Vec<String> = xfrm
        .lines()
        .filter_map(|l| {
            let t = l.trim();
            if ["aead ", "enc ", "auth-trunc "].iter().any(|p| t.starts_with(p)) {
                // The algorithm, not the key.
                Some(format!("\t{}", t.split_whitespace().take(2).collect::<Vec<_>>().join(" ")))
            } else if ["src ", "proto esp", "encap "].iter().any(|p| t.starts_with(p))
                || (t.ends_with("(packets)") && t.starts_with(|c: char| c.is_ascii_digit()))
            {
                Some(l.to_string())
            } else {
                None
            }
        })
        .collect();
    eprintln!("gateway ip -s xfrm state (keys left out):\n{}", brief.join("\n"));
    assert_eq!(xfrm.matches("proto esp").count(), 2, "one inbound and one outbound ESP SA:\n{xfrm}");
    assert_eq!(xfrm.matches("encap type espinudp sport 4500 dport 4500").count(), 2, "{xfrm}");
    assert!(xfrm_bytes(&xfrm).iter().any(|&b| b >= r.bytes), "kernel ESP counters ({r:?}):\n{xfrm}");
    let policy = gw_xfrm(tb, &["xfrm", "policy"]);
    let back = format!("src {LAN_NET} dst {vip}/32");
    let lines: Vec<&str> = policy.lines().collect();
    assert!(
        lines.windows(2).any(|w| w[0].starts_with(&back) && w[1].trim().starts_with("dir out")),
        "the pool routed back through the tunnel:\n{policy}"
    );

    let st = c.interrupt(T).unwrap();
    assert!(st.success(), "clean disconnect exits 0: {st}\n{}", c.transcript());
    assert!(stat(&c, "bytes_out").is_some_and(|b| b >= r.bytes), "{}", c.transcript());
    assert_eq!(stat(&c, "drop_auth"), Some(0), "{}", c.transcript());
    // pluto took our Delete: the kernel SAs are gone, and with them the way to the LAN.
    let gone = wait_until("pluto removes the kernel SAs", T, Duration::from_millis(200), || {
        Ok(!gw_xfrm(tb, &["xfrm", "state"]).contains("proto esp"))
    });
    if let Err(e) = gone {
        panic!("{}", explain(&c, &e.to_string()));
    }
    assert_eq!(ping_lan(tb, 1).0, 0, "the LAN is unreachable again after the disconnect");
    // pluto's own account: the Child SA's traffic, then the IKE SA deleted on our request (no Delete of its own).
    let since = || gw.log().get(log_before..).unwrap_or_default().to_string();
    let deleted = "deleting state (STATE_V2_ESTABLISHED_IKE_SA)";
    if let Err(e) =
        wait_until("pluto deletes the IKE SA", T, Duration::from_millis(100), || Ok(since().contains(deleted)))
    {
        panic!("{}", explain(&c, &e.to_string()));
    }
    let log = since();
    assert!(log.contains("ESP traffic information: in="), "{}", explain(&c, "pluto's traffic information"));
    let excerpt: Vec<&str> = log
        .lines()
        .filter(|l| {
            ["established IKE SA", "established Child SA", "traffic information", deleted, "updown", "ERROR"]
                .iter()
                .any(|w| l.contains(w))
        })
        .collect();
    eprintln!("pluto log (this connection, excerpt):\n{}", excerpt.join("\n"));
    eprintln!("full connection done in {:.1} s", started.elapsed().as_secs_f64());
    c
}

/// pluto authenticates us (its log: "established IKE SA; authenticated peer <how>") and we authenticate pluto.
/// On a kernel without ESP (as here) the Child SA pluto cannot install comes back as TS_UNACCEPTABLE, our one
/// error; on a kernel with ESP, the full connection with traffic ([`full_traffic`], `iperf_bytes` through
/// iperf3). Returns the client and pluto's "established IKE SA; authenticated peer ..." line.
fn ike_sa_established(
    tb: &Testbed,
    gw: &Libreswan,
    profile: &str,
    how: &str,
    iperf_bytes: u64,
) -> (IkelinkClient, String) {
    let before = gw.log().matches(Libreswan::IKE_SA_ESTABLISHED).count();
    let c = if kernel_has_esp(tb).unwrap() {
        full_traffic(tb, gw, profile, iperf_bytes)
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
    if let Some(child) = log.lines().rfind(|l| l.contains(Libreswan::CHILD_SA_ESTABLISHED)) {
        eprintln!("pluto: {}", &child[child.find(Libreswan::CHILD_SA_ESTABLISHED).unwrap_or(0)..]);
    }
    (c, line)
}

/// A profile for a gateway that presents a certificate from `ca`; no `gateway.id`, so its certificate must name
/// the address we dial (the harness certificate has SAN IP 203.0.113.2; pluto's IDr is gw.ikelink.test).
fn cert_gateway_profile(ca: &Path, auth: &str) -> String {
    format!("[gateway]\naddress = \"{GW_ADDR}\"\nca = [\"{}\"]\n\n[auth]\n{auth}\n\n[tunnel]\nremote_ts = [\"{LAN_NET}\"]\n", p(ca))
}

#[test]
fn psk_proposals_and_wrong_psk() {
    ikelink_testbed::require_interop!();
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    let gw = pluto(&tb, &LibreswanConfig::default());

    let psk = psk_profile(None, None, &[LAN_NET]);
    let (c, _) = ike_sa_established(&tb, &gw, &psk, &format!("ID_USER_FQDN '{CLIENT_ID}'"), IPERF_BYTES);
    let log = gw.log();
    assert!(log.contains("authby=secret"), "PSK");
    // libreswan's default proposals want MODP-2048 first: it asked for it, we retried with it.
    assert!(log.contains("INVALID_KE_PAYLOAD requesting MODP2048"), "pluto asked for MODP-2048");
    assert!(c.log().contains("INVALID_KE_PAYLOAD"), "{}", c.transcript());
    assert!(log.contains("sent IKE_SA_INIT reply {cipher=AES_GCM_16_256 integ=n/a prf=HMAC_SHA2_512 group=MODP2048}"));

    // Only our own proposal (no AES-GCM, no MODP-2048): pluto's defaults include it, no KE retry is needed.
    let before = gw.log().matches("INVALID_KE_PAYLOAD requesting").count();
    let profile = psk_profile(Some("aes128-sha256-ecp256"), Some("aes128-sha256"), &[LAN_NET]);
    ike_sa_established(&tb, &gw, &profile, "authby=secret", IPERF_BYTES_SHORT);
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
    ikelink_testbed::require_interop!();
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    for (name, kt, how) in [
        ("rsa", KeyType::Rsa(2048), "RSA"),
        ("ecdsa", KeyType::EcdsaP256, "'P-256 ECDSA with SHA2_256' digital signature"),
    ] {
        let pki = Pki::generate_with(&tb.dir().join(format!("pki-{name}")), kt).unwrap();
        let gw = pluto(&tb, &LibreswanConfig::cert(&pki));
        let auth = format!("method = \"cert\"\ncert = \"{}\"\nkey = \"{}\"", p(&pki.client_cert), p(&pki.client_key));
        let profile = cert_gateway_profile(&pki.ca_cert, &auth);
        let (c, line) = ike_sa_established(&tb, &gw, &profile, how, IPERF_BYTES_SHORT);
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
    ikelink_testbed::require_interop!();
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    let pki = Pki::generate_with(&tb.dir().join("pki"), KeyType::EcdsaP256).unwrap();
    let gw = pluto(&tb, &LibreswanConfig::eap_tls(&pki));
    let (c, _) = ike_sa_established(&tb, &gw, &eap_tls_profile(&pki), "authby=eaponly", IPERF_BYTES);
    assert!(gw.log().contains("NSS: Handshake completed"), "{}", gw.conn_log().join("\n"));
    assert!(c.log().contains("EAP succeeded"), "{}", c.transcript());
}

/// EAP-TLS with pluto's NSS capped at TLS 1.2 (an NSS policy in its database).
#[test]
fn eap_tls_over_tls12() {
    ikelink_testbed::require_interop!();
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    let pki = Pki::generate_with(&tb.dir().join("pki"), KeyType::EcdsaP256).unwrap();
    let config = LibreswanConfig { tls_max: Some("tls1.2".into()), ..LibreswanConfig::eap_tls(&pki) };
    let gw = pluto(&tb, &config);
    let (c, _) = ike_sa_established(&tb, &gw, &eap_tls_profile(&pki), "authby=eaponly", IPERF_BYTES_SHORT);
    assert!(gw.log().contains("NSS: Handshake completed"), "{}", gw.conn_log().join("\n"));
    assert!(c.log().contains("EAP succeeded"), "{}", c.transcript());
}
