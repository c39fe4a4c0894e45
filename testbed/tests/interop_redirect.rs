//! Interop against a real strongSwan gateway: IKEv2 Redirect (RFC 5685). `swanctl --redirect` sends our
//! established IKE SA to the gateway's second address; the client follows with REDIRECTED_FROM, keeps its TUN
//! and, in full-tunnel mode, moves the gateway host route. Needs root; runs when IKELINK_INTEROP=1.
#![cfg(target_os = "linux")]

use std::collections::BTreeSet;
use std::time::Duration;

use ikelink_testbed::harness::*;

const T: Duration = Duration::from_secs(20);
/// The gateway's second address, where it redirects us.
const GW2: &str = "203.0.113.3";

fn routes(tb: &Testbed) -> BTreeSet<String> {
    let out = tb.exec(Role::Cli, &["ip", "-4", "route", "show", "table", "main"]).unwrap();
    String::from_utf8_lossy(&out.stdout).lines().map(|l| l.trim().to_string()).collect()
}

fn redirected(full_tunnel: bool) {
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    private_resolv(&tb);
    tb.exec(Role::Gw, &["ip", "addr", "add", &format!("{GW2}/24"), "dev", "eth0"]).unwrap();
    let ts = if full_tunnel { "0.0.0.0/0" } else { LAN_NET };
    let cfg = GatewayConfig { local_ts: vec![ts.into()], ..Default::default() };
    let gw = Gateway::start(&tb, &cfg).unwrap();
    let routes0 = routes(&tb);
    // The full tunnel also runs the kill switch, whose gateway exception must follow the redirect.
    let mut profile = psk_profile(None, None, &[ts]);
    if full_tunnel {
        profile.push_str("kill_switch = true\n");
    }
    let mut c = IkelinkClient::start(&tb, desktop_bin(), &profile, &[]).unwrap();
    c.wait_connected(T).unwrap();
    gw.wait_for_sa_count(1, T).unwrap();
    assert!(tb.ping(Role::Cli, LAN_ADDR, 2).unwrap(), "{}", c.transcript());
    let tun = c.value("tunnel").unwrap();

    gw.swanctl(&["--redirect", "--ike", Gateway::CONN, "--gateway", GW2]).unwrap();
    c.wait_line("the redirect", T, |l| l.starts_with("reconnecting:") && l.contains("redirected us to 203.0.113.3"))
        .unwrap();
    wait_until("an IKE SA with the second address", T, Duration::from_millis(200), || {
        let sas = gw.list_sas()?;
        Ok(sas.contains(&format!("{GW2}[")) && gw.sa_count()? == 1)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", gw.list_sas().unwrap_or_default(), c.transcript()));
    assert!(gw.log().contains(&format!("client got redirected from {GW_ADDR}")), "REDIRECTED_FROM sent");
    assert_eq!(c.value("tunnel").unwrap(), tun, "the TUN and its routes stay");
    assert!(tb.ping(Role::Cli, LAN_ADDR, 3).unwrap(), "ping after the redirect\n{}", c.transcript());
    if full_tunnel {
        let r = routes(&tb);
        assert!(
            r.iter().any(|l| l.starts_with(&format!("{GW2} via {RTR_CLI_ADDR} dev eth0"))),
            "host route to the new gateway on the physical path: {r:?}"
        );
        assert!(!r.iter().any(|l| l.starts_with(&format!("{GW_ADDR} via"))), "old host route removed: {r:?}");
        let rules = tb.exec(Role::Cli, &["nft", "list", "ruleset"]).unwrap();
        let rules = String::from_utf8_lossy(&rules.stdout);
        assert!(rules.contains(&format!("ip daddr {GW2} accept")), "kill switch lets the new gateway pass: {rules}");
        assert!(!rules.contains(&format!("ip daddr {GW_ADDR} accept")), "and no longer the old one: {rules}");
    }
    assert!(c.interrupt(T).unwrap().success());
    gw.wait_for_sa_count(0, T).unwrap();
    assert_eq!(routes(&tb), routes0, "routes restored after disconnect");
}

#[test]
fn redirect_of_an_active_session_split_tunnel() {
    ikelink_testbed::require_interop!();
    redirected(false);
}

#[test]
fn redirect_of_an_active_session_full_tunnel() {
    ikelink_testbed::require_interop!();
    redirected(true);
}
