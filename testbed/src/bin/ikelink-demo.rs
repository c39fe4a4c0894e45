//! `ikelink-demo`: the end-to-end demo behind `examples/demo.sh`.
//!
//! Builds the namespace testbed (client — router — gateway — LAN), starts strongSwan as the PSK responder,
//! shows that the LAN host is unreachable without a tunnel, connects our `ikelink` client (the sibling binary
//! of this executable) with a split-tunnel profile, pings the LAN host and runs a short iperf3 through the
//! tunnel, disconnects, checks the gateway has no SA left, prints a summary and tears everything down.
//! Needs root. Exits non-zero with a message naming the step that failed.

#[cfg(target_os = "linux")]
fn main() -> std::process::ExitCode {
    app::main()
}

#[cfg(not(target_os = "linux"))]
fn main() -> std::process::ExitCode {
    eprintln!("the demo needs Linux (network namespaces, strongSwan)");
    std::process::ExitCode::FAILURE
}

#[cfg(target_os = "linux")]
mod app {

    use std::path::{Path, PathBuf};
    use std::process::ExitCode;
    use std::time::{Duration, Instant};

    use ikelink_testbed::harness::{
        psk_profile, Gateway, GatewayConfig, IkelinkClient, IperfOptions, Role, Testbed, TestbedOptions, CLI_ADDR,
        GW_ADDR, LAN_ADDR, LAN_NET, RTR_CLI_ADDR, VIP_NET,
    };

    /// Bound for connecting, disconnecting and the gateway's SA bookkeeping.
    const WAIT: Duration = Duration::from_secs(15);
    /// Pings through the tunnel.
    const PINGS: u32 = 4;
    /// iperf3 duration (timed mode).
    const IPERF_SECONDS: u32 = 3;

    /// The suites our client proposes (the gateway's `default` proposals accept them).
    const IKE_PROPOSAL: &str = "aes256gcm16-prfsha256-x25519";
    const ESP_PROPOSAL: &str = "aes256gcm16";

    type Step<T> = Result<T, String>;

    /// Counts the steps and prints their headers.
    struct Steps {
        n: u32,
        total: u32,
        start: Instant,
    }

    impl Steps {
        fn next(&mut self, title: &str) {
            self.n += 1;
            println!();
            println!("==> [{}/{}] {title}", self.n, self.total);
        }

        fn elapsed(&self) -> f64 {
            self.start.elapsed().as_secs_f64()
        }
    }

    fn indent(text: &str) {
        for l in text.lines().filter(|l| !l.trim().is_empty()) {
            println!("    {l}");
        }
    }

    /// What the summary reports.
    struct Summary {
        ike: String,
        esp: String,
        vip: String,
        pings: (u32, u32),
        mbits: f64,
        retransmits: Option<u64>,
        stats: Option<String>,
    }

    pub fn main() -> ExitCode {
        let mut steps = Steps { n: 0, total: 9, start: Instant::now() };
        println!("Ikelink demo: our IKEv2 client against a real strongSwan gateway, in network namespaces");
        match run(&mut steps) {
            Ok(()) => {
                println!();
                println!("demo finished in {:.1} s", steps.elapsed());
                ExitCode::SUCCESS
            }
            Err(e) => {
                // Everything (client, charon, iperf3, namespaces) has been dropped and torn down by now.
                eprintln!();
                if steps.n == 0 {
                    eprintln!("demo FAILED: {e}");
                } else {
                    eprintln!("demo FAILED at step {}/{}: {e}", steps.n, steps.total);
                }
                ExitCode::FAILURE
            }
        }
    }

    fn client_binary() -> Step<PathBuf> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot locate this executable: {e}"))?;
        let bin = exe.with_file_name("ikelink");
        if !bin.is_file() {
            return Err(format!(
                "the client binary {} is missing; build it with `cargo build --release -p ikelink-desktop -p ikelink-testbed --bins`",
                bin.display()
            ));
        }
        Ok(bin)
    }

    fn ping_transcript(tb: &Testbed, count: u32) -> Step<(u32, String)> {
        let c = count.to_string();
        let deadline = (count + 2).to_string();
        let a = LAN_ADDR.to_string();
        let out = tb
            .exec_unchecked(
                Role::Cli,
                &["ping", "-n", "-c", &c, "-i", "0.2", "-W", "1", "-w", &deadline, &a],
                Duration::from_secs(u64::from(count) + 10),
            )
            .map_err(|e| format!("ping: {e}"))?;
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        // "4 packets transmitted, 4 received, 0% packet loss, time 601ms"
        let received = text
            .lines()
            .find(|l| l.contains("packets transmitted"))
            .and_then(|l| l.split(", ").nth(1))
            .and_then(|s| s.split_whitespace().next())
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0);
        Ok((received, text))
    }

    fn run(steps: &mut Steps) -> Step<()> {
        let bin = client_binary()?;

        steps.next("Building the testbed: four network namespaces");
        let tb = Testbed::new(TestbedOptions::default()).map_err(|e| format!("building the testbed: {e}"))?;
        println!("    client  {CLI_ADDR:<15} ({})", tb.ns(Role::Cli));
        println!("    router  {RTR_CLI_ADDR:<15} ({})   no route to the LAN", tb.ns(Role::Rtr));
        println!("    gateway {GW_ADDR:<15} ({})", tb.ns(Role::Gw));
        println!("    LAN     {LAN_ADDR:<15} ({})   behind the gateway, {LAN_NET}", tb.ns(Role::Lan));

        steps.next("Starting strongSwan (charon) as the IKEv2 responder");
        let gw_cfg = GatewayConfig::default();
        let gw = Gateway::start(&tb, &gw_cfg).map_err(|e| format!("starting the strongSwan gateway: {e}"))?;
        println!("    charon-systemd pid {} in {}", gw.pid().unwrap_or(0), gw.namespace());
        println!(
            "    PSK authentication, IKE proposals {}, ESP proposals {}, kernel-libipsec (userspace ESP)",
            gw_cfg.ike_proposals, gw_cfg.esp_proposals
        );
        println!("    virtual IPs from {VIP_NET}, local traffic selector {}", gw_cfg.local_ts.join(", "));

        steps.next("Without a tunnel, the LAN host is unreachable");
        let (n, text) = ping_transcript(&tb, 1)?;
        indent(&text);
        if n != 0 {
            return Err(format!("the LAN host {LAN_ADDR} answered without a tunnel: the testbed is wrong"));
        }
        println!("    ok: {LAN_ADDR} is not reachable from the client");

        steps.next("Connecting ikelink (split tunnel to the LAN)");
        let profile = psk_profile(Some(IKE_PROPOSAL), Some(ESP_PROPOSAL), &[LAN_NET]);
        println!("    {} connect --profile <profile>   (profile:)", bin.display());
        indent(&profile.lines().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n"));
        let t0 = Instant::now();
        let mut client =
            IkelinkClient::start(&tb, &bin, &profile, &[]).map_err(|e| format!("starting ikelink: {e}"))?;
        client.wait_connected(WAIT).map_err(|e| format!("ikelink did not connect: {e}"))?;
        client
            .wait_line("the tunnel device", WAIT, |l| l.starts_with("tunnel:"))
            .map_err(|e| format!("ikelink did not bring up its tunnel: {e}"))?;
        println!("    connected in {:.0} ms; the client printed:", t0.elapsed().as_secs_f64() * 1000.0);
        indent(&client.lines().iter().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n"));
        let ike = client.value("ike").unwrap_or_default();
        let esp = client.value("esp").unwrap_or_default();
        let vip = client.value("virtual-ip").unwrap_or_else(|| "-".into());

        steps.next("The gateway's view (swanctl --list-sas)");
        gw.wait_for_sa_count(1, WAIT).map_err(|e| format!("the gateway has no established IKE SA: {e}"))?;
        let sas = gw.list_sas().map_err(|e| format!("swanctl --list-sas: {e}"))?;
        indent(&sas);
        if !sas.contains("INSTALLED") {
            return Err(format!("the gateway has no installed Child SA:\n{sas}"));
        }

        steps.next(&format!("Pinging the LAN host {LAN_ADDR} through the tunnel"));
        let (received, text) = ping_transcript(&tb, PINGS)?;
        indent(&text);
        if received == 0 {
            return Err(format!("no ping reply from {LAN_ADDR} through the tunnel\n{}", client.transcript()));
        }

        steps.next(&format!("iperf3 TCP client -> LAN host for {IPERF_SECONDS} s through the tunnel"));
        let server = tb.start_iperf_server(Role::Lan).map_err(|e| format!("starting iperf3 on the LAN host: {e}"))?;
        let opts = IperfOptions { seconds: IPERF_SECONDS, timeout: Duration::from_secs(30), ..IperfOptions::default() };
        let r =
            tb.iperf_client_with(Role::Cli, LAN_ADDR, &opts).map_err(|e| format!("iperf3 through the tunnel: {e}"))?;
        server.stop();
        let mbits = r.bits_per_second / 1e6;
        println!(
            "    {:.1} Mbit/s ({:.1} MB received by the LAN host, {} TCP retransmissions)",
            mbits,
            r.bytes as f64 / 1e6,
            r.retransmits.map_or("?".into(), |n| n.to_string())
        );
        if r.bytes == 0 {
            return Err("iperf3 moved no data through the tunnel".into());
        }

        steps.next("Disconnecting (Ctrl-C to ikelink)");
        let st = client.interrupt(WAIT).map_err(|e| format!("ikelink did not exit after Ctrl-C: {e}"))?;
        let lines = client.lines();
        let after: Vec<&String> = lines.iter().skip_while(|l| *l != "disconnecting").collect();
        indent(&after.iter().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n"));
        if !st.success() || !lines.iter().any(|l| l == "disconnected") {
            return Err(format!("ikelink did not disconnect cleanly ({st})\n{}", client.transcript()));
        }
        gw.wait_for_sa_count(0, WAIT).map_err(|e| format!("the gateway still has an IKE SA after our Delete: {e}"))?;
        let sas = gw.list_sas().map_err(|e| format!("swanctl --list-sas: {e}"))?;
        if sas.trim().is_empty() {
            println!("    gateway: swanctl --list-sas is empty, no SA left");
        } else {
            indent(&sas);
        }
        let (n, _) = ping_transcript(&tb, 1)?;
        if n != 0 {
            return Err(format!("{LAN_ADDR} still answers after disconnecting: routes were not restored"));
        }
        println!("    routes restored: {LAN_ADDR} is unreachable again");
        let summary = Summary {
            ike,
            esp,
            vip,
            pings: (received, PINGS),
            mbits,
            retransmits: r.retransmits,
            stats: client.last_value("stats"),
        };
        drop(client);

        steps.next("Tearing down");
        drop(gw);
        drop(tb);
        println!("    charon stopped, namespaces deleted");

        print_summary(&summary, &bin);
        Ok(())
    }

    fn print_summary(s: &Summary, bin: &Path) {
        let first = |v: &str| v.split_whitespace().next().unwrap_or("-").to_string();
        println!();
        println!("Summary");
        println!("    client             {}", bin.display());
        println!("    IKE SA             {}", first(&s.ike));
        println!("    Child SA (ESP)     {}", first(&s.esp));
        println!("    virtual IP         {}", s.vip);
        println!("    ping LAN host      ok ({}/{} replies)", s.pings.0, s.pings.1);
        println!(
            "    iperf3 throughput  {:.1} Mbit/s ({} retransmissions)",
            s.mbits,
            s.retransmits.map_or("?".into(), |n| n.to_string())
        );
        if let Some(stats) = &s.stats {
            let pick = |k: &str| {
                stats.split_whitespace().find_map(|w| w.strip_prefix(&format!("{k}="))).unwrap_or("?").to_string()
            };
            println!(
                "    ESP packets        {} out, {} in, {} dropped for bad ICV",
                pick("packets_out"),
                pick("packets_in"),
                pick("drop_auth")
            );
        }
        println!("    disconnect         clean (Delete sent, gateway has no SA left, routes restored)");
    }
}
