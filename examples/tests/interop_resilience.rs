//! Interop against a real strongSwan gateway: dead peer detection and automatic reconnection, and roaming
//! (issue 6). Needs root; runs when IKELINK_INTEROP=1.

use std::path::Path;
use std::time::{Duration, Instant};

use ikelink_cli::harness::*;

const BIN: &str = env!("CARGO_BIN_EXE_ikelink");
const T: Duration = Duration::from_secs(20);

macro_rules! interop {
    () => {
        if !interop_enabled() {
            eprintln!("skipped: set IKELINK_INTEROP=1 (needs root and strongSwan)");
            return;
        }
    };
}

fn private_resolv(tb: &Testbed) {
    let dir = Path::new("/etc/netns").join(tb.ns(Role::Cli));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("resolv.conf"), NETNS_RESOLV_CONF).unwrap();
}

#[test]
fn dead_gateway_is_detected_and_the_client_reconnects_by_itself() {
    interop!();
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    private_resolv(&tb);
    let mut gw = Gateway::start(&tb, &GatewayConfig::default()).unwrap();
    // DPD after 2 s of silence, 2 retransmissions 0.5 s / 0.9 s apart: a dead gateway is noticed in ~4 s.
    let profile =
        psk_profile(None, None, &[LAN_NET]) + "\n[timers]\ndpd = 2\ndpd_tries = 2\nretransmit_timeout = 0.5\n";
    let mut c = IkelinkClient::start(&tb, Path::new(BIN), &profile, &["--reconnect-max-delay", "2"]).unwrap();
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
