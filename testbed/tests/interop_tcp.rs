//! TCP encapsulation (RFC 9329) against libreswan 4.10's pluto (`listen-tcp=yes`, `enable-tcp=yes`,
//! `tcp-remoteport=4500`): the IKE SA over one TCP stream, and `transport = "auto"` falling back to TCP when the
//! router drops UDP 500/4500 (nftables) and staying on UDP when it does not.
//!
//! strongSwan 5.9.8 has no TCP encapsulation, and pluto attaches the kernel's espintcp to every TCP stream it
//! accepts (`setsockopt(TCP_ULP, "espintcp")`) and closes the stream when that fails: this machine's kernel
//! and the VM's (Debian 12's stock 6.1, `CONFIG_INET_ESPINTCP` unset) have no espintcp, so what these tests
//! prove there is pluto accepting our `IKETCP` stream, the client's bounded re-establishment (0, 1, 2, 4, 8,
//! 10 s), and `auto`'s decision (UDP when it answers, TCP after 6 s when the router drops UDP); with a kernel
//! that has espintcp they expect the IKE and Child SA over the stream.
//!
//! Needs root; runs when IKELINK_INTEROP=1.
#![cfg(target_os = "linux")]

use std::time::Duration;

use ikelink_testbed::harness::*;

const T: Duration = Duration::from_secs(120);

fn pluto_tcp(tb: &Testbed) -> Libreswan {
    assert!(Libreswan::available(), "libreswan is not unpacked (scripts/install-deps.sh)");
    let config = LibreswanConfig {
        extra_setup: "\tlisten-tcp=yes\n".into(),
        extra_conn: "\tenable-tcp=fallback\n\ttcp-remoteport=4500".into(),
        ..Default::default()
    };
    Libreswan::start(tb, &config).unwrap()
}

/// The router drops UDP to and from the gateway's IKE ports (nftables, forward hook); bounded by the
/// namespace's life (the testbed deletes it).
fn drop_udp(tb: &Testbed) {
    let rules = "table ip ikelink_udp {\n chain forward_udp {\n  type filter hook forward priority -10;\n  \
                 udp dport { 500, 4500 } counter drop\n  udp sport { 500, 4500 } counter drop\n }\n}\n";
    let path = tb.dir().join("drop-udp.nft");
    std::fs::write(&path, rules).unwrap();
    tb.exec(Role::Rtr, &["nft", "-f", &path.to_string_lossy()]).unwrap();
}

fn udp_dropped(tb: &Testbed) -> u64 {
    let out = tb.exec(Role::Rtr, &["nft", "list", "table", "ip", "ikelink_udp"]).unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split("packets ").skip(1).filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok()).sum()
}

fn profile(transport: &str) -> String {
    psk_profile(None, None, &[LAN_NET]).replacen("[gateway]\n", &format!("[gateway]\ntransport = \"{transport}\"\n"), 1)
}

/// Runs the client to its end (on a kernel without ESP the Child SA pluto cannot install is its one error) and
/// checks that pluto established the IKE SA; returns the client's transcript.
fn ike_sa_over(tb: &Testbed, gw: &Libreswan, transport: &str) -> String {
    let before = gw.log().matches(Libreswan::IKE_SA_ESTABLISHED).count();
    let mut c = IkelinkClient::start(tb, desktop_bin(), &profile(transport), &["--no-tun", "-vv"]).unwrap();
    let esp = kernel_has_esp(tb).unwrap();
    let st = if esp {
        // The kernel installs pluto's Child SA (ESP in TCP with espintcp): connected, then disconnect.
        if let Err(e) = c.wait_connected(T) {
            let log = gw.log();
            let tcp: Vec<&str> = log.lines().filter(|l| l.contains("TCP") || l.contains("tcp")).take(40).collect();
            panic!(
                "{e}\n{}\n--- pluto ---\n{}\n--- pluto (TCP) ---\n{}",
                c.transcript(),
                gw.conn_log().join("\n"),
                tcp.join("\n")
            );
        }
        let expected = if transport == "tcp" || gw.log().contains("IKETCP") { "tcp" } else { "udp" };
        assert_eq!(c.value("transport").as_deref(), Some(expected), "{}", c.transcript());
        assert!(gw.log().contains(Libreswan::CHILD_SA_ESTABLISHED), "{}", gw.conn_log().join("\n"));
        c.interrupt(T).unwrap()
    } else {
        c.wait_exit(T).unwrap()
    };
    let explain = |what: &str| format!("{what}\n{}\n--- pluto ---\n{}", c.transcript(), gw.conn_log().join("\n"));
    assert!(!c.log().contains("panicked"), "{}", explain("panic"));
    let established = gw.log().matches(Libreswan::IKE_SA_ESTABLISHED).count();
    assert_eq!(established, before + 1, "{}", explain("pluto established the IKE SA"));
    assert!(c.log().contains("gateway authenticated"), "{}", explain("we authenticated pluto"));
    if esp {
        assert!(st.success(), "{}", explain("clean disconnect"));
    } else {
        assert_eq!(st.code(), Some(1), "{}", explain("exit"));
        let errs: Vec<String> = c.lines().into_iter().filter(|l| l.starts_with("error:")).collect();
        assert!(errs.len() == 1 && errs[0].contains("TS_UNACCEPTABLE"), "{}", explain("the kernel's missing ESP"));
    }
    let line = gw.log().lines().rfind(|l| l.contains(Libreswan::IKE_SA_ESTABLISHED)).unwrap_or_default().to_string();
    eprintln!("pluto: {line}");
    c.transcript()
}

/// What pluto logs when it cannot attach espintcp to an accepted stream (it closes it).
const NO_ESPINTCP: &str = "TCP_ULP, \"espintcp\") failed";

/// On a kernel without espintcp pluto accepts our stream, reads `IKETCP`, and closes it: the client opens new
/// streams with its bounded backoff (no storm) while IKE_SA_INIT is retransmitted. Returns the client, running.
fn refused_streams(gw: &Libreswan, c: &mut IkelinkClient) {
    let accepted = || gw.log().matches("IKETCP ACCEPTED: socket").count() / 2;
    wait_until("pluto refuses the stream", T, Duration::from_millis(100), || Ok(gw.log().contains(NO_ESPINTCP)))
        .unwrap_or_else(|e| panic!("{e}\n{}\n--- pluto ---\n{}", c.transcript(), gw.conn_log().join("\n")));
    let first = accepted();
    std::thread::sleep(Duration::from_secs(20));
    let streams = accepted() - first;
    eprintln!("pluto closed every stream (no espintcp in this kernel); {streams} new streams in 20 s");
    // 0, 1, 2, 4, 8, 10 s apart: about 5 in 20 s.
    assert!((2..=8).contains(&streams), "{streams} streams in 20 s\n{}", c.transcript());
    assert!(!c.log().contains("panicked"), "{}", c.transcript());
}

/// Over TCP: pluto either refuses the stream (no espintcp in the kernel: here, and in the VM, whose Debian 12
/// kernel has CONFIG_INET_ESPINTCP unset) and the client backs off, or (a kernel with espintcp) the IKE and
/// Child SA come up over the stream. Stops the client.
fn over_tcp(gw: &Libreswan, mut c: IkelinkClient) {
    let before = gw.log().matches(Libreswan::IKE_SA_ESTABLISHED).count();
    let decided = || {
        let log = gw.log();
        log.contains(NO_ESPINTCP) || log.matches(Libreswan::IKE_SA_ESTABLISHED).count() > before
    };
    wait_until("pluto takes or refuses the stream", T, Duration::from_millis(100), || Ok(decided()))
        .unwrap_or_else(|e| panic!("{e}\n{}\n--- pluto ---\n{}", c.transcript(), gw.conn_log().join("\n")));
    if gw.log().contains(NO_ESPINTCP) {
        refused_streams(gw, &mut c);
    } else {
        c.wait_connected(T).unwrap_or_else(|e| panic!("{e}\n{}", c.transcript()));
        assert_eq!(c.value("transport").as_deref(), Some("tcp"), "{}", c.transcript());
    }
    assert!(c.log().contains("TCP stream to the gateway open"), "{}", c.transcript());
    c.interrupt(T).unwrap();
}

#[test]
fn libreswan_ike_sa_over_tcp() {
    ikelink_testbed::require_interop!();
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    let gw = pluto_tcp(&tb);
    // No UDP at all on the path: whatever pluto sees went over TCP.
    drop_udp(&tb);
    let c = IkelinkClient::start(&tb, desktop_bin(), &profile("tcp"), &["--no-tun", "-vv"]).unwrap();
    over_tcp(&gw, c);
    let tcp_lines: Vec<String> = gw.log().lines().filter(|l| l.contains("TCP")).take(4).map(String::from).collect();
    eprintln!("pluto (TCP):\n{}", tcp_lines.join("\n"));
    assert!(!tcp_lines.is_empty(), "pluto saw the TCP stream");
    assert_eq!(udp_dropped(&tb), 0, "nothing tried UDP");
}

#[test]
fn auto_falls_back_to_tcp_only_when_udp_is_dropped() {
    ikelink_testbed::require_interop!();
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    let gw = pluto_tcp(&tb);
    // UDP works: no stream.
    let t = ike_sa_over(&tb, &gw, "auto");
    assert!(!t.contains("switching to TCP") && !t.contains("TCP stream to the gateway open"), "{t}");
    assert!(!gw.log().contains("IKETCP"), "{}", gw.conn_log().join("\n"));
    // The router drops UDP 500/4500: after the UDP budget (6 s), TCP.
    drop_udp(&tb);
    let started = std::time::Instant::now();
    let c = IkelinkClient::start(&tb, desktop_bin(), &profile("auto"), &["--no-tun", "-vv"]).unwrap();
    wait_until("the client switches to TCP", T, Duration::from_millis(50), || {
        Ok(c.log().contains("no answer over UDP: switching to TCP"))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", c.transcript()));
    let after = started.elapsed();
    eprintln!("switched to TCP {:.1} s after the start", after.as_secs_f64());
    assert!(after >= Duration::from_secs(6), "{after:?}");
    over_tcp(&gw, c);
    let dropped = udp_dropped(&tb);
    eprintln!("router dropped {dropped} UDP datagrams");
    assert!(dropped >= 1, "UDP was tried first");
}
