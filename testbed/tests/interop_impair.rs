//! Interop against a real strongSwan gateway through the userspace impairment relay (issue 15, acceptance 3):
//! random loss, duplication and reordering in both directions. The client's profile names the relay (on the
//! router) as its gateway; to the gateway the relay is a NAT. Needs root; IKELINK_INTEROP=1. The normal run
//! tries 3 seeds at 10% and 5 at 30% and rekeys at 10%; `IKELINK_SOAK=1` tries 20 seeds of each and also
//! rekeys at 30%.
#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use ikelink_testbed::harness::*;

const T: Duration = Duration::from_secs(20);

fn soak() -> bool {
    std::env::var("IKELINK_SOAK").is_ok_and(|v| v == "1")
}

/// A PSK profile whose gateway address is the relay's, with `timers` appended to a `[timers]` section.
fn relayed_profile(relay: &Relay, timers: &str) -> String {
    let direct = format!("address = \"{GW_ADDR}\"");
    let p = psk_profile(None, None, &[LAN_NET]);
    assert!(p.contains(&direct));
    p.replacen(&direct, &format!("address = \"{}\"", relay.address()), 1) + "\n[timers]\n" + timers
}

/// A named counter from the client's last `stats:` line.
fn stat(c: &IkelinkClient, name: &str) -> u64 {
    let line = c.last_value("stats").unwrap_or_else(|| panic!("no stats line\n{}", c.transcript()));
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {line}"))
}

/// The outcome of one handshake through the relay.
struct Try {
    connected: bool,
    took: Duration,
    sa_init_sent: u64,
    detail: String,
}

/// One connection attempt (no reconnects: the retransmission budget of the profile is all it gets): waits for
/// `connected` or an error, then disconnects with the impairment lifted so the Delete reaches the gateway.
fn handshake(tb: &Testbed, relay: &Relay, profile: &str) -> Try {
    let before = relay.stats().ike_sa_init_requests;
    let started = Instant::now();
    let mut c = IkelinkClient::start(tb, desktop_bin(), profile, &["--no-tun", "--no-reconnect"]).unwrap();
    // The budget: 6 sends per exchange, 0.5 s growing by 1.5: ≤ 10.4 s per exchange, two exchanges.
    let line =
        c.wait_line("connected or an error", Duration::from_secs(40), |l| l == "connected" || l.starts_with("error:"));
    let took = started.elapsed();
    let connected = line.as_deref().is_ok_and(|l| l == "connected");
    if connected {
        let nat = c.value("nat").unwrap_or_default();
        assert!(nat.starts_with("local=true"), "the relay is a NAT to the gateway: {nat}\n{}", c.transcript());
    }
    relay.set_impairment(Impairment::none(), Impairment::none(), 0).unwrap();
    if connected {
        assert!(c.interrupt(T).unwrap().success(), "{}", c.transcript());
    } else {
        let _ = c.wait_exit(T);
    }
    let sa_init_sent = relay.stats().ike_sa_init_requests - before;
    let detail = match line {
        Ok(l) => l,
        Err(e) => e.to_string().lines().next().unwrap_or_default().to_string(),
    };
    Try { connected, took, sa_init_sent, detail }
}

/// Handshakes under `p` loss, duplication and reordering both ways, one per seed; returns the successes.
fn success_rate(tb: &Testbed, relay: &Relay, p: f64, seeds: u64, profile: &str) -> u64 {
    let mut ok = 0;
    for seed in 1..=seeds {
        // Distinct seeds per level: the 10% and 30% runs draw different sequences.
        let seed = seed * 1000 + (p * 100.0) as u64;
        relay.set_impairment(Impairment::lossy(p), Impairment::lossy(p), seed).unwrap();
        let t = handshake(tb, relay, profile);
        eprintln!(
            "impair {:.0}% seed {seed}: {} in {:.1} s, {} IKE_SA_INIT sent ({})",
            p * 100.0,
            if t.connected { "connected" } else { "FAILED" },
            t.took.as_secs_f64(),
            t.sa_init_sent,
            t.detail
        );
        ok += u64::from(t.connected);
    }
    eprintln!("impair {:.0}%: {ok}/{seeds} handshakes completed within the retransmission budget", p * 100.0);
    ok
}

#[test]
fn handshake_success_rate_under_10_and_30_percent_loss_duplication_and_reordering() {
    ikelink_testbed::require_interop!();
    let (n10, n30) = if soak() { (20, 20) } else { (3, 5) };
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    private_resolv(&tb);
    let gw = Gateway::start(&tb, &GatewayConfig::default()).unwrap();
    let relay = Relay::start(&tb, RelayConfig::default()).unwrap();
    let profile =
        relayed_profile(&relay, "retransmit_timeout = 0.5\nretransmit_base = 1.5\nretransmit_tries = 5\ndpd = 0\n");

    // Control: everything dropped, the handshake fails after its retransmissions and nothing comes back.
    relay.set_impairment(Impairment::blackhole(), Impairment::blackhole(), 1).unwrap();
    let quick = relayed_profile(&relay, "retransmit_timeout = 0.2\nretransmit_tries = 2\ndpd = 0\n");
    let before = relay.stats();
    let mut c = IkelinkClient::start(&tb, desktop_bin(), &quick, &["--no-tun", "--no-reconnect"]).unwrap();
    assert_eq!(c.wait_exit(T).unwrap().code(), Some(1), "{}", c.transcript());
    assert!(c.lines().iter().any(|l| l.starts_with("error:")), "{}", c.transcript());
    let after = relay.stats();
    assert_eq!(after.ike_sa_init_requests - before.ike_sa_init_requests, 3, "first send and 2 retransmissions");
    assert_eq!(after.up.dropped - before.up.dropped, 3, "{after:?}");
    assert_eq!(after.up.forwarded, before.up.forwarded, "nothing reached the gateway");

    let ok10 = success_rate(&tb, &relay, 0.10, n10, &profile);
    let ok30 = success_rate(&tb, &relay, 0.30, n30, &profile);
    let st = relay.stats();
    eprintln!("relay: {st:?}");
    // The impairment was real in both directions.
    // (An IKE message held back is reordered only if a retransmission overtakes it; otherwise it is late.)
    assert!(st.up.dropped > 0 && st.down.dropped > 0, "{st:?}");
    assert!(st.up.duplicated + st.down.duplicated > 0, "{st:?}");
    assert!(st.up.held + st.down.held > 0, "{st:?}");
    // 10%: all, or (over 20 tries) nearly all. 30%: most.
    assert!(ok10 >= n10 - n10 / 10, "10%: {ok10}/{n10}");
    assert!(ok30 * 2 > n30, "30%: {ok30}/{n30}");
    drop(gw);
}

#[test]
fn rekeys_complete_under_10_percent_impairment_without_a_reconnect_storm() {
    ikelink_testbed::require_interop!();
    rekeys_under(0.10, 10);
}

/// The same at 30% (about a minute: behind `IKELINK_SOAK=1`). It failed in about one run of four until the old
/// IKE SA resent our answer to the gateway's IKE rekey (`lost_response_to_the_gateways_ike_rekey_is_sent_again`).
#[test]
fn rekeys_complete_under_30_percent_impairment_without_a_reconnect_storm() {
    ikelink_testbed::require_interop!();
    if !soak() {
        eprintln!("rekeys at 30%: IKELINK_SOAK=1 runs it");
        return;
    }
    rekeys_under(0.30, 30);
}

/// 40 s of ping at 10/s under `p` loss, duplication and reordering both ways, with Child SA and IKE SA rekeys
/// started by both sides.
fn rekeys_under(p: f64, seed: u64) {
    let pct = (p * 100.0).round() as u32;
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    private_resolv(&tb);
    let cfg = GatewayConfig {
        rekey_time: Some("300s".into()),
        child_rekey_time: Some("300s".into()),
        child_life_time: Some("600s".into()),
        over_time: Some("60s".into()),
        // The gateway retransmits like our profile below (its default, 4 s growing by 1.8, makes one exchange
        // under 30% loss last up to ~3 minutes, far beyond this run).
        charon_extra: "  retransmit_timeout = 1.0\n  retransmit_base = 1.5\n".into(),
        ..Default::default()
    };
    let gw = Gateway::start(&tb, &cfg).unwrap();
    let imp = Impairment::lossy(p);
    let relay =
        Relay::start(&tb, RelayConfig { up: imp.clone(), down: imp.clone(), seed, ..Default::default() }).unwrap();
    // Our rekeys every ~6 s (Child SA) and ~15 s (IKE SA); DPD every 5 s must not mistake loss for death.
    let profile = relayed_profile(
        &relay,
        "retransmit_timeout = 1.0\nretransmit_base = 1.5\nrekey_child = 6\nrekey_ike = 15\ndpd = 5\n",
    );
    let mut c = IkelinkClient::start(&tb, desktop_bin(), &profile, &[]).unwrap();
    c.wait_connected(Duration::from_secs(40)).unwrap();

    let secs = 40u32;
    let count = secs * 10;
    let ping = start_ping(&tb, LAN_ADDR, count).unwrap();
    let mut at = 0;
    for (when, ike) in [(9u32, false), (21, true), (30, false)] {
        std::thread::sleep(Duration::from_secs(u64::from(when - at)));
        at = when;
        if ike {
            gw.rekey_ike().unwrap()
        } else {
            gw.rekey_child().unwrap()
        }
    }
    let (text, received) = finish_ping(ping).unwrap();
    let st = relay.stats();
    relay.set_impairment(Impairment::none(), Impairment::none(), 0).unwrap();
    // Child SA rekeys started by either side, and those that completed or collided (of two colliding rekeys one
    // is refused with TEMPORARY_FAILURE). One may still be retransmitting when the ping ends: wait (bounded) for
    // a moment when every started one is accounted for.
    let collisions = || c.log().matches("TEMPORARY_FAILURE").count() + gw.log().matches("TEMPORARY_FAILURE").count();
    let child_rekeys = || {
        let log = c.log();
        let started = log.matches("gateway rekeys the Child SA").count() + log.matches("rekeying Child SA").count();
        let done = c.lines().iter().filter(|l| l.starts_with("rekeyed:")).count();
        (started, done + collisions())
    };
    let settle = Instant::now();
    while child_rekeys().1 < child_rekeys().0 && settle.elapsed() < Duration::from_secs(25) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let (child_started, child_accounted) = child_rekeys();
    let log = c.log();
    let lines = c.lines();
    assert!(c.interrupt(T).unwrap().success(), "{}", c.transcript());
    // Kept with the testbed directory when an assertion fails (IKELINK_CLIENT_LOG=debug for more).
    let _ = std::fs::write(tb.dir().join("client.log"), c.log());

    let rekeyed = lines.iter().filter(|l| l.starts_with("rekeyed:")).count();
    let gw_child = log.matches("gateway rekeys the Child SA").count();
    let our_child = log.matches("rekeying Child SA").count();
    let ike_by_gw = log.matches("gateway rekeys the IKE SA").count();
    let ike_by_us = log.matches("rekeying the IKE SA").count();
    let ike_done = log.matches("IKE SA rekeyed").count();
    let reconnects = lines.iter().filter(|l| l.starts_with("reconnecting:")).count();
    let connects = lines.iter().filter(|l| *l == "connected").count();
    eprintln!(
        "{pct}% impairment: ping {received}/{count}; Child SA rekeys {rekeyed} (gateway started {gw_child}, we {our_child}); \
         IKE SA rekeys {ike_done} (gateway {ike_by_gw}, we {ike_by_us}, gateway's refused {}); IKE_SA_INIT {} sent, {} SAs attempted; \
         reconnects {reconnects}; Child SA rekeys started {child_started}, completed or collided {child_accounted}\nrelay: {st:?}",
        gw.log().matches("IKE_SA rekeying failed, trying again").count(),
        st.ike_sa_init_requests,
        st.ike_sa_init_spis
    );
    let t = c.transcript();
    assert!(st.up.dropped > 0 && st.down.dropped > 0 && st.up.duplicated > 0 && st.down.duplicated > 0, "{st:?}");
    assert!(st.up.reordered > 0 && st.down.reordered > 0, "{st:?}");
    // No reconnect storm: one IKE SA set up with IKE_SA_INIT, everything after it by rekeying. One reconnect is
    // tolerated (it is no storm) but reported: today two client bugs can cause one when a rekey exchange
    // loses a packet (see lost_response_to_the_gateways_ike_rekey_is_sent_again).
    if reconnects > 0 {
        eprintln!("WARNING: {pct}% impairment: the client reconnected\n{t}");
    }
    assert!(reconnects <= 1 && connects <= 2, "no reconnect storm: {reconnects} reconnects\n{t}");
    assert!(st.ike_sa_init_spis <= 2, "IKE_SA_INIT exchanges: {}", st.ike_sa_init_spis);
    assert!(st.ike_sa_init_requests <= 12, "within two retransmission budgets: {}", st.ike_sa_init_requests);
    assert!(gw_child >= 1 && our_child >= 1 && rekeyed >= 3, "Child SA rekeys by both sides\n{t}");
    assert!(child_accounted >= child_started, "every Child SA rekey completed or collided\n{t}");
    // The gateway's IKE SA rekey completes, or (when a retransmitted exchange of ours is still in progress, as
    // loss makes likely) is refused with TEMPORARY_FAILURE (RFC 7296 §2.25) and superseded by ours.
    let gw_log = gw.log();
    let gw_refused = gw_log.matches("IKE_SA rekeying failed, trying again").count();
    assert!(ike_by_gw + gw_refused >= 1, "the gateway's IKE SA rekey was answered\n{t}");
    assert!(ike_by_us >= 1 && ike_done >= 2, "IKE SA rekeys completed\n{t}");
    // Loss p each way loses 1 - (1 - p)² of the echoes (19% at 10%, 51% at 30%); the tunnel itself never stops.
    let expected = f64::from(count) * (1.0 - p) * (1.0 - p);
    assert!(f64::from(received) >= 0.75 * expected, "bounded loss: {received}/{count}\n{text}");
    assert!(!gw_log.contains("failed to establish CHILD_SA"), "no failed rekey on the gateway");
    gw.wait_for_sa_count(0, T).unwrap();
}

#[test]
fn reordered_esp_within_the_replay_window_is_accepted_and_duplicates_are_dropped() {
    ikelink_testbed::require_interop!();
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    private_resolv(&tb);
    let gw = Gateway::start(&tb, &GatewayConfig::default()).unwrap();
    // Inbound ESP (gateway -> client) held back by 1 to 32 packets, well inside the window; no loss.
    let reorder = Impairment {
        reorder: 0.25,
        reorder_min: 1,
        reorder_max: 32,
        reorder_max_hold: Duration::from_secs(1),
        traffic: Traffic::Esp,
        ..Impairment::none()
    };
    let _iperf = tb.start_iperf_server(Role::Lan).unwrap();
    let relay = Relay::start(&tb, RelayConfig { down: reorder, seed: 64, ..Default::default() }).unwrap();
    let mut c = IkelinkClient::start(&tb, desktop_bin(), &relayed_profile(&relay, "dpd = 0\n"), &[]).unwrap();
    c.wait_connected(T).unwrap();
    gw.wait_for_sa_count(1, T).unwrap();

    let ping = |n: u32| {
        let out = tb
            .exec_unchecked(
                Role::Cli,
                // -w: wait for all replies (up to 30 s), not only twice the longest round trip, since the
                // last replies may be held back for up to 1 s when nothing follows them.
                &["ping", "-n", "-q", "-i", "0.005", "-w", "30", "-c", &n.to_string(), &LAN_ADDR.to_string()],
                Duration::from_secs(60),
            )
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let got = text.lines().find_map(|l| l.split(", ").nth(1)?.strip_suffix(" received")?.parse::<u32>().ok());
        (got.unwrap_or(0), text)
    };
    let (got, text) = ping(600);
    let reordered = relay.stats().down.reordered;
    eprintln!("reordered inbound ESP: {reordered} packets reordered, ping {got}/600");
    assert!(reordered >= 20, "the relay reordered inbound ESP: {:?}", relay.stats());
    assert_eq!(got, 600, "every reordered echo reply accepted:\n{text}\n{}", c.transcript());

    // Duplicated inbound ESP: each copy is a replay the client drops and counts.
    let dup = Impairment { duplicate: 0.2, traffic: Traffic::Esp, ..Impairment::none() };
    relay.set_impairment(Impairment::none(), dup, 65).unwrap();
    let (got, text) = ping(300);
    let st = relay.stats();
    assert_eq!(got, 300, "{text}");
    assert!(!text.contains("duplicates"), "the client passed no duplicate on: {text}");

    // A slow, jittery path: 250 kB/s each way behind a short queue (20 ms, ~4 full packets), 10-20 ms of delay.
    // TCP through the tunnel overfills the queue (its first window alone does; the shaper drops) and still
    // delivers everything.
    let slow = Impairment {
        delay: Duration::from_millis(10),
        jitter: Duration::from_millis(10),
        rate: Some(250_000),
        max_queue_delay: Duration::from_millis(20),
        ..Impairment::none()
    };
    relay.set_impairment(slow.clone(), slow, 66).unwrap();
    let opts = IperfOptions { bytes: Some(1_000_000), ..Default::default() };
    let r = tb.iperf_client_with(Role::Cli, LAN_ADDR, &opts).unwrap();
    relay.set_impairment(Impairment::none(), Impairment::none(), 0).unwrap();
    let shaped = relay.stats();
    eprintln!(
        "shaped path: iperf {r:?}; relay dropped {} over the queue bound upstream",
        shaped.up.overflow - st.up.overflow
    );
    assert!(r.sent_bytes >= 1_000_000, "{r:?}");
    assert!(shaped.up.overflow > st.up.overflow, "the rate limit engaged: {shaped:?}");
    assert!(tb.ping(Role::Cli, LAN_ADDR, 3).unwrap(), "{}", c.transcript());
    assert!(c.interrupt(T).unwrap().success(), "{}", c.transcript());
    let (replay, auth) = (stat(&c, "drop_replay"), stat(&c, "drop_auth"));
    eprintln!("duplicated inbound ESP: {} copies; client drop_replay={replay} drop_auth={auth}", st.down.duplicated);
    assert!(st.down.duplicated >= 20, "{st:?}");
    // Every replay drop is a duplicate: the reordered packets above cost none.
    assert_eq!(replay, st.down.duplicated, "{st:?}\n{}", c.transcript());
    assert_eq!(auth, 0);
    gw.wait_for_sa_count(0, T).unwrap();
}

/// The gateway rekeys the IKE SA and our response is lost (the relay drops all IKE from the client for a
/// moment): the gateway retransmits its request on the old IKE SA, and the client must answer with the same
/// response again (RFC 7296 §2.1), so the rekey completes and no reconnect follows.
///
/// Found by this relay: the client kept the old IKE SA only for its Delete and answered the retransmitted
/// CREATE_CHILD_SA request there with an empty response, which strongSwan rejects ("message verification
/// failed"); the gateway kept the new IKE SA half-open and ignored the client on it until its dead peer detection
/// reconnected. The old IKE SA now keeps our last answer for retransmissions.
#[test]
fn lost_response_to_the_gateways_ike_rekey_is_sent_again() {
    ikelink_testbed::require_interop!();
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    private_resolv(&tb);
    let cfg = GatewayConfig {
        charon_extra: "  retransmit_timeout = 1.0\n  retransmit_base = 1.5\n".into(),
        ..Default::default()
    };
    let gw = Gateway::start(&tb, &cfg).unwrap();
    let relay = Relay::start(&tb, RelayConfig::default()).unwrap();
    let profile = relayed_profile(&relay, "retransmit_timeout = 1.0\nretransmit_base = 1.5\ndpd = 3\n");
    let mut c = IkelinkClient::start(&tb, desktop_bin(), &profile, &[]).unwrap();
    c.wait_connected(T).unwrap();
    assert!(tb.ping(Role::Cli, LAN_ADDR, 2).unwrap());

    let drop_ike = Impairment { drop: 1.0, traffic: Traffic::Ike, ..Impairment::none() };
    relay.set_impairment(drop_ike, Impairment::none(), 1).unwrap();
    gw.rekey_ike().unwrap();
    let start = Instant::now();
    while !c.log().contains("gateway rekeys the IKE SA") && start.elapsed() < T {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(c.log().contains("gateway rekeys the IKE SA"), "{}", c.transcript());
    std::thread::sleep(Duration::from_millis(300));
    let dropped = relay.stats().up.dropped;
    relay.set_impairment(Impairment::none(), Impairment::none(), 0).unwrap();
    assert!(dropped >= 1, "our response was dropped: {:?}", relay.stats());
    // The gateway retransmits after ~1 s; give it its budget.
    let start = Instant::now();
    while !gw.log().contains("IKE_SA rw[2] state change: REKEYING => REKEYED")
        && !gw.log().contains("giving up after")
        && start.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    // Traffic and IKE go on over the new IKE SA for a few DPD rounds.
    std::thread::sleep(Duration::from_secs(8));
    let ok = tb.ping(Role::Cli, LAN_ADDR, 3).unwrap();
    let _ = std::fs::write(tb.dir().join("client.log"), c.log());
    let log = gw.log();
    let t = c.transcript();
    assert!(!log.contains("giving up after"), "the gateway gave up on its IKE SA rekey\n{t}");
    assert!(!c.lines().iter().any(|l| l.starts_with("reconnecting:")), "no reconnect\n{t}");
    assert!(ok, "{t}");
    assert!(c.interrupt(T).unwrap().success(), "{t}");
}
