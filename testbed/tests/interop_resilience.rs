//! Interop against a real strongSwan gateway: dead peer detection and automatic reconnection, and roaming
//! (issue 6). Needs root; runs when IKELINK_INTEROP=1.
#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use ikelink_testbed::harness::*;

const T: Duration = Duration::from_secs(20);

#[test]
fn dead_gateway_is_detected_and_the_client_reconnects_by_itself() {
    ikelink_testbed::require_interop!();
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    private_resolv(&tb);
    let mut gw = Gateway::start(&tb, &GatewayConfig::default()).unwrap();
    // DPD after 2 s of silence, 2 retransmissions 0.5 s / 0.9 s apart: a dead gateway is noticed in ~4 s.
    let profile =
        psk_profile(None, None, &[LAN_NET]) + "\n[timers]\ndpd = 2\ndpd_tries = 2\nretransmit_timeout = 0.5\n";
    let mut c = IkelinkClient::start(&tb, desktop_bin(), &profile, &["--reconnect-max-delay", "2"]).unwrap();
    c.wait_connected(T).unwrap();
    assert!(tb.ping(Role::Cli, LAN_ADDR, 2).unwrap());

    // The gateway's charon dies.
    let killed = Instant::now();
    gw.kill();
    drop(gw);
    let line = c.wait_line("reconnecting", T, |l| l.starts_with("reconnecting:")).unwrap();
    let noticed = killed.elapsed();
    assert!(line.contains("dead peer detection"), "{line}");
    eprintln!("dead gateway noticed after {:.1} s", noticed.as_secs_f64());

    // It comes back: the client reconnects without any action, and traffic flows again.
    let gw = Gateway::start(&tb, &GatewayConfig::default()).unwrap();
    let connected = || c.lines().iter().filter(|l| *l == "connected").count();
    let start = Instant::now();
    while connected() < 2 && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(connected(), 2, "reconnected by itself\n{}", c.transcript());
    gw.wait_for_sa_count(1, T).unwrap();
    assert!(tb.ping(Role::Cli, LAN_ADDR, 3).unwrap(), "{}", c.transcript());
    assert!(c.interrupt(T).unwrap().success(), "{}", c.transcript());
    gw.wait_for_sa_count(0, T).unwrap();
}

/// Move the client to a new address in its subnet: add it, then remove the old one (the default route stays).
fn change_client_address(tb: &Testbed, new: &str) {
    tb.exec(Role::Cli, &["sysctl", "-qw", "net.ipv4.conf.all.promote_secondaries=1"]).unwrap();
    tb.exec(Role::Cli, &["sysctl", "-qw", "net.ipv4.conf.eth0.promote_secondaries=1"]).unwrap();
    tb.exec(Role::Cli, &["ip", "addr", "add", &format!("{new}/24"), "dev", "eth0"]).unwrap();
    tb.exec(Role::Cli, &["ip", "addr", "del", &format!("{CLI_ADDR}/24"), "dev", "eth0"]).unwrap();
    // Make sure the default route survived the change.
    let _ = tb.exec_unchecked(
        Role::Cli,
        &["ip", "route", "replace", "default", "via", &RTR_CLI_ADDR.to_string(), "dev", "eth0"],
        Duration::from_secs(5),
    );
}

/// Ping 10/s for `secs` in the background; returns (transmitted, received).
fn ping_during(tb: &Testbed, secs: u32, during: impl FnOnce()) -> (u32, u32) {
    let count = secs * 10;
    let ping = start_ping(tb, LAN_ADDR, count).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    during();
    let (_, received) = finish_ping(ping).unwrap();
    (count, received)
}

#[test]
fn mobike_moves_the_sas_when_the_address_changes() {
    ikelink_testbed::require_interop!();
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    private_resolv(&tb);
    let gw = Gateway::start(&tb, &GatewayConfig { mobike: true, ..Default::default() }).unwrap();
    let mut c = IkelinkClient::start(&tb, desktop_bin(), &psk_profile(None, None, &[LAN_NET]), &[]).unwrap();
    c.wait_connected(T).unwrap();
    assert!(tb.ping(Role::Cli, LAN_ADDR, 1).unwrap());
    let (sent, got) = ping_during(&tb, 12, || change_client_address(&tb, "192.0.2.77"));
    eprintln!("MOBIKE: {got}/{sent} pings");
    assert!(c.log().contains("MOBIKE: SAs moved"), "{}", c.transcript());
    assert!(gw.log().contains("N(UPD_SA_ADDR)"), "gateway got the address update");
    assert!(!c.lines().iter().any(|l| l.starts_with("reconnecting:")), "no reconnect\n{}", c.transcript());
    assert!(
        sent - got <= 30,
        "the ping goes on with few losses: {got}/{sent}\n{}\n--- gateway\n{}",
        c.transcript(),
        gw.log()
    );
    let sas = gw.list_sas().unwrap();
    assert!(sas.contains("192.0.2.77"), "the gateway talks to our new address:\n{sas}");
    assert!(tb.ping(Role::Cli, LAN_ADDR, 2).unwrap());
    assert!(c.interrupt(T).unwrap().success(), "{}", c.transcript());
}

#[test]
fn without_mobike_the_client_reconnects_from_the_new_address() {
    ikelink_testbed::require_interop!();
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    private_resolv(&tb);
    let gw = Gateway::start(&tb, &GatewayConfig { mobike: false, ..Default::default() }).unwrap();
    let mut c = IkelinkClient::start(&tb, desktop_bin(), &psk_profile(None, None, &[LAN_NET]), &[]).unwrap();
    c.wait_connected(T).unwrap();
    change_client_address(&tb, "192.0.2.78");
    let line = c.wait_line("reconnecting", T, |l| l.starts_with("reconnecting:")).unwrap();
    assert!(line.contains("MOBIKE"), "{line}");
    let start = Instant::now();
    while c.lines().iter().filter(|l| *l == "connected").count() < 2 && start.elapsed() < T {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(c.lines().iter().filter(|l| *l == "connected").count(), 2, "{}", c.transcript());
    gw.wait_for_sa_count(1, T).unwrap();
    assert!(gw.list_sas().unwrap().contains("192.0.2.78"));
    assert!(tb.ping(Role::Cli, LAN_ADDR, 3).unwrap(), "{}", c.transcript());
    assert!(c.interrupt(T).unwrap().success(), "{}", c.transcript());
}

/// `gateway.backup` (strongSwan's list of remote addresses): when the gateway does not answer, the client fails
/// over to the next address at once, before any backoff; with no backup it gives up after its retransmissions.
#[test]
fn unanswered_gateway_fails_over_to_the_backup() {
    ikelink_testbed::require_interop!();
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    private_resolv(&tb);
    let gw = Gateway::start(&tb, &GatewayConfig::default()).unwrap();
    // Nobody has 203.0.113.9 (gateway side, inside our namespaces): IKE_SA_INIT goes unanswered.
    let silent = "203.0.113.9";
    let base = psk_profile(None, None, &[LAN_NET]) + "\n[timers]\nretransmit_timeout = 0.5\nretransmit_tries = 1\n";
    let primary = format!("address = \"{GW_ADDR}\"");
    let with_backup = base.replacen(&primary, &format!("address = \"{silent}\"\nbackup = [\"{GW_ADDR}\"]"), 1);
    let without = base.replacen(&primary, &format!("address = \"{silent}\""), 1);
    assert_ne!(with_backup, base);

    // Control: no backup, no answer: a timeout.
    let mut c = IkelinkClient::start(&tb, desktop_bin(), &without, &["--no-tun"]).unwrap();
    let st = c.wait_exit(T).unwrap();
    assert_eq!(st.code(), Some(1), "{}", c.transcript());
    assert!(c.lines().iter().any(|l| l.starts_with("error:") && l.contains("no answer")), "{}", c.transcript());

    // With the backup: over to it, connected, traffic flows.
    let started = Instant::now();
    let mut c = IkelinkClient::start(&tb, desktop_bin(), &with_backup, &[]).unwrap();
    c.wait_connected(T).unwrap();
    let took = started.elapsed();
    assert!(c.log().contains("failing over"), "{}", c.transcript());
    assert!(c.lines().iter().any(|l| l.starts_with("reconnecting:")), "{}", c.transcript());
    gw.wait_for_sa_count(1, T).unwrap();
    assert!(tb.ping(Role::Cli, LAN_ADDR, 2).unwrap(), "{}", c.transcript());
    assert!(c.interrupt(T).unwrap().success());
    eprintln!("failover: connected through the backup after {took:?}");
}
