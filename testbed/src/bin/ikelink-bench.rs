//! `ikelink-bench`: throughput, CPU and memory of our client against strongSwan's own client, behind
//! `scripts/bench.sh`.
//!
//! One testbed, one strongSwan gateway (PSK, kernel-libipsec). iperf3 TCP client -> LAN host:
//! (a) without a tunnel (temporary routes through the router), (b) through our `ikelink` (the sibling release
//! binary of this executable), (c) through strongSwan's charon as the client (kernel-libipsec, the userspace ESP
//! of strongSwan's Android app), (b) and (c) alternating for `--runs` runs each. Per run the client process's
//! CPU time (utime+stime of all its threads), its peak resident memory (VmHWM) and the gateway charon's CPU are
//! sampled from /proc; the table shows medians and the ratios. Each run also lists the drop counters of all
//! four namespaces that grew meanwhile (UDP socket buffer overflows, TUN/veth queue drops, qdisc drops), which
//! tells where the TCP retransmissions come from.
//!
//! (d) The uplink ESP capacity of each client, which (b)/(c) cannot show because the gateway's userspace ESP
//! and the shared CPUs cap them: a blaster in the client namespace sends fixed-size UDP datagrams into the tunnel
//! as fast as it can, and the router counts and drops the client's ESP (nftables), so nothing downstream limits
//! it. The ESP is counted by bytes (a UDP GSO send crosses the veth as one skb). Needs root.
//!
//! (e) The best userspace tunnel as a yardstick: boringtun (Cloudflare's userspace WireGuard, boringtun-cli with its
//! defaults, i.e. 4 threads on a multi-queue TUN) on both ends, the client's in the client namespace and the
//! gateway's in the gateway namespace (this kernel has no WireGuard module), the LAN routed through it
//! (testbed/src/harness/boringtun.rs). It runs the same iperf3 runs, alternating with (b) and (c), and the table
//! prints ours / boringtun in every run. Not part of (d), which counts ESP. scripts/install-deps.sh installs it.
//!
//! `--libreswan-transports` runs only (f), the cost of TCP encapsulation (RFC 9329, issue 15): our client against
//! libreswan's pluto with its Child SAs in the kernel, alternating `transport = "udp"` (ESP in UDP 4500) and
//! `transport = "tcp"` (ESP in one TCP stream, the gateway's espintcp) in the same run, and prints the client's
//! CPU-s per GB of each and their ratio. It needs kernel ESP and espintcp, so it runs in the VM with the espintcp
//! kernel: `IKELINK_VM_KERNEL=espintcp scripts/vm-run.sh target/release/ikelink-bench --libreswan-transports`
//! (software emulation there: only the same-run ratio means something, not the absolute figures).

#[cfg(target_os = "linux")]
fn main() -> std::process::ExitCode {
    app::main()
}

#[cfg(not(target_os = "linux"))]
fn main() -> std::process::ExitCode {
    eprintln!("the benchmark needs Linux (network namespaces, strongSwan)");
    std::process::ExitCode::FAILURE
}

#[cfg(target_os = "linux")]
mod app {

    use std::collections::HashMap;
    use std::path::{Path, PathBuf};
    use std::process::ExitCode;
    use std::time::{Duration, Instant};

    use clap::Parser;
    use ikelink_testbed::harness::boringtun::{check_boringtun, WireguardTunnel, BORINGTUN_VERSION};
    use ikelink_testbed::harness::{
        kernel_has_espintcp, psk_profile, wait_until, ClientConfig, Gateway, GatewayConfig, IkelinkClient,
        IperfOptions, IperfResult, Libreswan, LibreswanConfig, Role, StrongswanClient, Testbed, TestbedOptions,
        GW_ADDR, LAN_ADDR, LAN_NET, RTR_CLI_ADDR,
    };

    const WAIT: Duration = Duration::from_secs(20);
    /// The memory budget of the issue: at most 15 MB resident under load.
    const RSS_LIMIT_MB: f64 = 15.0;

    #[derive(Parser)]
    #[command(
        name = "ikelink-bench",
        about = "iperf3 through ikelink vs strongSwan's client vs boringtun (userspace WireGuard) vs no tunnel"
    )]
    struct Args {
        /// iperf3 duration of each run, seconds (timed mode).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=300))]
        seconds: u32,
        /// Runs per client (alternating ours / strongSwan / boringtun); the table shows medians.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=20))]
        runs: u32,
        /// ESP suite used by both clients and accepted by the gateway.
        #[arg(long, default_value = "aes256gcm16", value_parser = ["aes256gcm16", "chacha20poly1305", "aes256-sha256"])]
        suite: String,
        /// Download instead of upload: the LAN host sends, the client receives (`iperf3 -R`).
        #[arg(long)]
        reverse: bool,
        /// Skip part (d), the uplink ESP capacity of each client (UDP blast; the router counts and drops the ESP).
        #[arg(long)]
        no_capacity: bool,
        /// Only part (d): skip the iperf3 TCP runs.
        #[arg(long, conflicts_with = "no_capacity")]
        capacity_only: bool,
        /// Inner UDP payload size of the capacity blast, bytes (the inner IP packet is 28 bytes longer).
        #[arg(long, default_value_t = 1300, value_parser = clap::value_parser!(u16).range(64..=1372))]
        blast_size: u16,
        /// Only part (f): our client over UDP vs over TCP (RFC 9329) against libreswan's pluto with kernel ESP
        /// (needs espintcp: the VM kernel of scripts/vm-kernel-espintcp.sh); client CPU-s/GB of each and TCP / UDP.
        #[arg(long, conflicts_with_all = ["no_capacity", "capacity_only"])]
        libreswan_transports: bool,
        /// Internal: run as the UDP blaster (`ADDR:PORT`) inside the client namespace, then print `sent=N errors=M`.
        #[arg(long, hide = true)]
        blast: Option<std::net::SocketAddr>,
    }

    type Step<T> = Result<T, String>;

    pub fn main() -> ExitCode {
        let args = Args::parse();
        if let Some(to) = args.blast {
            return blast(to, args.blast_size, args.seconds);
        }
        match run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("\nikelink-bench FAILED: {e}");
                ExitCode::FAILURE
            }
        }
    }

    // ---- /proc sampling -------------------------------------------------------------------------------------------

    fn clock_ticks() -> f64 {
        // SAFETY: sysconf has no memory-safety preconditions.
        let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if t > 0 {
            t as f64
        } else {
            100.0
        }
    }

    /// utime + stime (ticks) and comm from a `/proc/.../stat` file.
    fn stat_ticks(path: &Path) -> Option<(u64, String)> {
        let s = std::fs::read_to_string(path).ok()?;
        let open = s.find('(')?;
        let close = s.rfind(')')?;
        let comm = s.get(open + 1..close)?.to_string();
        // Fields after the comm start at field 3 (state); utime and stime are fields 14 and 15.
        let f: Vec<&str> = s.get(close + 1..)?.split_whitespace().collect();
        let utime: u64 = f.get(11)?.parse().ok()?;
        let stime: u64 = f.get(12)?.parse().ok()?;
        Some((utime + stime, comm))
    }

    /// CPU time of a process (all threads) and of each of its threads.
    #[derive(Clone, Debug, Default)]
    struct CpuSample {
        ticks: u64,
        threads: HashMap<u32, (String, u64)>,
    }

    fn cpu_sample(pid: u32) -> Option<CpuSample> {
        let (ticks, _) = stat_ticks(&PathBuf::from(format!("/proc/{pid}/stat")))?;
        let mut threads = HashMap::new();
        if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for e in dir.flatten().take(4096) {
                let Ok(tid) = e.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                if let Some((t, comm)) = stat_ticks(&e.path().join("stat")) {
                    threads.insert(tid, (comm, t));
                }
            }
        }
        Some(CpuSample { ticks, threads })
    }

    /// CPU use between two samples over `wall` seconds: (process seconds, process %, busiest thread name, its %).
    fn cpu_delta(a: &CpuSample, b: &CpuSample, wall: f64) -> (f64, f64, String, f64) {
        let hz = clock_ticks();
        let secs = b.ticks.saturating_sub(a.ticks) as f64 / hz;
        let (name, top) = b
            .threads
            .iter()
            .map(|(tid, (comm, t))| {
                let before = a.threads.get(tid).map_or(0, |(_, t0)| *t0);
                (comm.clone(), t.saturating_sub(before))
            })
            .max_by_key(|(_, d)| *d)
            .unwrap_or_default();
        let pct = |s: f64| if wall > 0.0 { 100.0 * s / wall } else { 0.0 };
        (secs, pct(secs), name, pct(top as f64 / hz))
    }

    /// Peak resident set size (VmHWM) in MB (10^6 bytes).
    fn peak_rss_mb(pid: u32) -> Option<f64> {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kb: f64 = s.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.split_whitespace().next()?.parse().ok()?;
        Some(kb * 1024.0 / 1e6)
    }

    /// (busy, total) jiffies of the whole host from /proc/stat.
    fn host_cpu() -> (u64, u64) {
        let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let v: Vec<u64> = s
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .take(8)
            .filter_map(|x| x.parse().ok())
            .collect();
        let total: u64 = v.iter().sum();
        let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
        (total.saturating_sub(idle), total)
    }

    fn ncpus() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    /// PIDs in a namespace (`ip netns pids`).
    fn ns_pids(ns: &str) -> Vec<u32> {
        std::process::Command::new("ip")
            .args(["netns", "pids", ns])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().filter_map(|p| p.parse().ok()).collect())
            .unwrap_or_default()
    }

    /// The PID of our client: the process in the client namespace running `bin`.
    fn find_ikelink_pid(tb: &Testbed, bin: &Path) -> Step<u32> {
        let want = bin.canonicalize().map_err(|e| format!("{}: {e}", bin.display()))?;
        let pids = ns_pids(tb.ns(Role::Cli));
        let mut found: Vec<u32> = pids
            .iter()
            .copied()
            .filter(|p| std::fs::read_link(format!("/proc/{p}/exe")).is_ok_and(|exe| exe == want))
            .collect();
        if found.is_empty() {
            // In the VM (9p root under an overlay) /proc/PID/exe names the file differently: by its name then.
            let name = want.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            found = pids
                .into_iter()
                .filter(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == name))
                .collect();
        }
        match found.as_slice() {
            [pid] => Ok(*pid),
            [] => Err(format!("no process running {} in {}", want.display(), tb.ns(Role::Cli))),
            many => Err(format!("several processes running {} in {}: {many:?}", want.display(), tb.ns(Role::Cli))),
        }
    }

    // ---- where packets are dropped -------------------------------------------------------------------------------

    /// Drop-related counters of all four namespaces: `/proc/net/snmp` and `/proc/net/netstat` (e.g.
    /// `gw Udp.RcvbufErrors`), `/proc/net/dev` (e.g. `cli dev.ikl0.tx_drop`) and qdisc drops (`tc -s qdisc`).
    type Counters = HashMap<String, u64>;

    fn is_drop_counter(name: &str) -> bool {
        ["Err", "Discard", "drop", "Drop", "Overflow", "Prune", "Collapse"].iter().any(|w| name.contains(w))
            && !name.contains("InCsumErrors")
    }

    /// Header/value line pairs as in /proc/net/snmp: `Udp: InDatagrams ...` then `Udp: 12 ...`.
    fn parse_snmp(text: &str, out: &mut Counters, role: &str) {
        let lines: Vec<&str> = text.lines().collect();
        for pair in lines.chunks(2) {
            let [head, vals] = pair else { continue };
            let (Some((proto, names)), Some((_, values))) = (head.split_once(':'), vals.split_once(':')) else {
                continue;
            };
            for (n, v) in names.split_whitespace().zip(values.split_whitespace()) {
                if let Ok(v) = v.parse::<u64>() {
                    out.insert(format!("{role} {proto}.{n}"), v);
                }
            }
        }
    }

    fn drop_counters(tb: &Testbed) -> Counters {
        let mut out = Counters::new();
        for role in Role::ALL {
            let r = role.as_str();
            let read = |args: &[&str]| {
                tb.exec_unchecked(role, args, Duration::from_secs(5))
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default()
            };
            parse_snmp(&read(&["cat", "/proc/net/snmp"]), &mut out, r);
            parse_snmp(&read(&["cat", "/proc/net/netstat"]), &mut out, r);
            for line in read(&["cat", "/proc/net/dev"]).lines().skip(2) {
                let Some((dev, rest)) = line.split_once(':') else { continue };
                let v: Vec<u64> = rest.split_whitespace().filter_map(|x| x.parse().ok()).collect();
                for (name, idx) in [("rx_drop", 3), ("rx_fifo", 4), ("tx_drop", 11), ("tx_fifo", 12)] {
                    if let Some(x) = v.get(idx) {
                        out.insert(format!("{r} dev.{}.{name}", dev.trim()), *x);
                    }
                }
            }
            let mut dev = String::new();
            for w in read(&["tc", "-s", "qdisc", "show"]).split_whitespace().collect::<Vec<_>>().windows(2) {
                if w[0] == "dev" {
                    dev = w[1].to_string();
                } else if w[0] == "(dropped" {
                    if let Ok(x) = w[1].trim_end_matches(',').parse::<u64>() {
                        *out.entry(format!("{r} qdisc.{dev}.dropped")).or_default() += x;
                    }
                }
            }
        }
        out
    }

    /// Non-zero increases of drop-like counters between two snapshots, largest first.
    fn drop_deltas(a: &Counters, b: &Counters) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = b
            .iter()
            .filter(|(k, _)| is_drop_counter(k))
            .filter_map(|(k, x)| {
                let d = x.saturating_sub(a.get(k).copied().unwrap_or(0));
                (d > 0).then(|| (k.clone(), d))
            })
            .collect();
        v.sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
        v
    }

    // ---- one measurement ------------------------------------------------------------------------------------------

    /// One iperf3 run and what was sampled around it.
    #[derive(Clone, Debug, Default)]
    struct Run {
        mbits: f64,
        bytes: u64,
        retransmits: Option<u64>,
        /// Client process CPU seconds per 10^9 bytes received by the iperf3 receiver.
        cpu_s_per_gb: Option<f64>,
        client_pct: Option<f64>,
        client_top: Option<(String, f64)>,
        rss_mb: Option<f64>,
        gw_pct: f64,
        gw_top: (String, f64),
        /// The gateway process sampled: charon ((b), (c)) or boringtun-cli ((e)).
        gw_name: String,
        host_busy_pct: f64,
        /// Drop counters that increased during the run (see [`drop_counters`]).
        drops: Vec<(String, u64)>,
    }

    fn measure(tb: &Testbed, args: &Args, client_pid: Option<u32>, gw_pid: u32) -> Step<Run> {
        let seconds = args.seconds;
        let opts = IperfOptions {
            seconds,
            reverse: args.reverse,
            timeout: Duration::from_secs(u64::from(seconds) + 30),
            ..IperfOptions::default()
        };
        let d0 = drop_counters(tb);
        let c0 = client_pid.and_then(cpu_sample);
        let g0 = cpu_sample(gw_pid).ok_or("cannot read the gateway process's /proc stat")?;
        let h0 = host_cpu();
        let t0 = Instant::now();
        let r: IperfResult = tb.iperf_client_with(Role::Cli, LAN_ADDR, &opts).map_err(|e| format!("iperf3: {e}"))?;
        let wall = t0.elapsed().as_secs_f64();
        let c1 = client_pid.and_then(cpu_sample);
        let g1 = cpu_sample(gw_pid).ok_or("cannot read the gateway process's /proc stat")?;
        let h1 = host_cpu();
        let drops = drop_deltas(&d0, &drop_counters(tb));
        if r.bytes == 0 {
            return Err("iperf3 moved no data".into());
        }
        let (_, gw_pct, gw_name, gw_top) = cpu_delta(&g0, &g1, wall);
        let mut run = Run {
            mbits: r.bits_per_second / 1e6,
            bytes: r.bytes,
            retransmits: r.retransmits,
            gw_pct,
            gw_top: (gw_name, gw_top),
            gw_name: std::fs::read_to_string(format!("/proc/{gw_pid}/comm")).unwrap_or_default().trim().to_string(),
            host_busy_pct: 100.0 * h1.0.saturating_sub(h0.0) as f64 / (h1.1.saturating_sub(h0.1).max(1)) as f64,
            drops,
            ..Run::default()
        };
        if let (Some(a), Some(b)) = (c0, c1) {
            let (secs, pct, name, top) = cpu_delta(&a, &b, wall);
            run.cpu_s_per_gb = Some(secs / (r.bytes as f64 / 1e9));
            run.client_pct = Some(pct);
            run.client_top = Some((name, top));
        }
        if let Some(pid) = client_pid {
            run.rss_mb = peak_rss_mb(pid);
        }
        Ok(run)
    }

    fn print_run(label: &str, r: &Run) {
        let mut s = format!(
            "    {label:<22} {:>8.1} Mbit/s  {:>7.1} MB  retr {:<5}",
            r.mbits,
            r.bytes as f64 / 1e6,
            r.retransmits.map_or("?".into(), |n| n.to_string())
        );
        if let (Some(cpu), Some(pct), Some((tn, tp)), Some(rss)) =
            (r.cpu_s_per_gb, r.client_pct, &r.client_top, r.rss_mb)
        {
            s += &format!("  client {cpu:.2} CPU-s/GB {pct:.0}% (top thread {tn} {tp:.0}%) peak RSS {rss:.1} MB");
        }
        s += &format!(
            "  gateway {} {:.0}% (top thread {} {:.0}%)  host busy {:.0}%",
            r.gw_name, r.gw_pct, r.gw_top.0, r.gw_top.1, r.host_busy_pct
        );
        println!("{s}");
        if !r.drops.is_empty() {
            let list: Vec<String> = r.drops.iter().take(12).map(|(k, d)| format!("{k} +{d}")).collect();
            println!("        drops: {}", list.join(", "));
        }
    }

    /// Waits (≤ 10 s) until the LAN host answers pings from the client.
    fn wait_reachable(tb: &Testbed, what: &str) -> Step<()> {
        wait_until(&format!("{LAN_ADDR} reachable {what}"), Duration::from_secs(10), Duration::from_millis(200), || {
            tb.ping(Role::Cli, LAN_ADDR, 1)
        })
        .map_err(|e| e.to_string())
    }

    // ---- the three ways to the LAN --------------------------------------------------------------------------------

    fn run_no_tunnel(tb: &Testbed, gw: &Gateway, args: &Args) -> Step<Vec<Run>> {
        let gw_pid = gw.pid().ok_or("gateway charon not running")?;
        let lan = LAN_NET;
        let via_rtr = RTR_CLI_ADDR.to_string();
        let via_gw = GW_ADDR.to_string();
        let add = [(Role::Cli, via_rtr.as_str()), (Role::Rtr, via_gw.as_str())];
        for (role, via) in add {
            tb.exec(role, &["ip", "route", "add", lan, "via", via]).map_err(|e| format!("adding a route: {e}"))?;
        }
        let runs: Step<Vec<Run>> = (|| {
            wait_reachable(tb, "without a tunnel (temporary routes)")?;
            let mut v = Vec::new();
            for i in 0..args.runs {
                let r = measure(tb, args, None, gw_pid)?;
                print_run(&format!("no tunnel #{}", i + 1), &r);
                v.push(r);
            }
            Ok(v)
        })();
        for (role, via) in add {
            tb.exec(role, &["ip", "route", "del", lan, "via", via]).map_err(|e| format!("removing a route: {e}"))?;
        }
        let runs = runs?;
        if tb.ping(Role::Cli, LAN_ADDR, 1).map_err(|e| e.to_string())? {
            return Err("the LAN is still reachable without a tunnel after removing the routes".into());
        }
        Ok(runs)
    }

    /// Connects our client, runs `f` with its PID, disconnects.
    fn with_ours<T>(tb: &Testbed, gw: &Gateway, bin: &Path, args: &Args, f: impl FnOnce(u32) -> Step<T>) -> Step<T> {
        let profile = psk_profile(None, Some(&args.suite), &[LAN_NET]);
        let mut c = IkelinkClient::start(tb, bin, &profile, &[]).map_err(|e| format!("starting ikelink: {e}"))?;
        c.wait_connected(WAIT).map_err(|e| format!("ikelink did not connect: {e}"))?;
        c.wait_line("tunnel", WAIT, |l| l.starts_with("tunnel:")).map_err(|e| format!("ikelink tunnel: {e}"))?;
        let esp = c.value("esp").unwrap_or_default();
        if !esp.starts_with(&args.suite) {
            return Err(format!("ikelink negotiated ESP {esp:?}, not {}", args.suite));
        }
        gw.wait_for_sa_count(1, WAIT).map_err(|e| e.to_string())?;
        let pid = find_ikelink_pid(tb, bin)?;
        wait_reachable(tb, "through ikelink")?;
        let r = f(pid)?;
        let st = c.interrupt(WAIT).map_err(|e| format!("ikelink did not exit: {e}"))?;
        if !st.success() {
            return Err(format!("ikelink exited with {st}\n{}", c.transcript()));
        }
        let drops = c.last_value("stats").unwrap_or_default();
        if let Some(bad) = drops.split_whitespace().find(|w| w.starts_with("drop_auth=") && *w != "drop_auth=0") {
            println!("    note: ikelink {bad}");
        }
        gw.wait_for_sa_count(0, WAIT).map_err(|e| format!("gateway SA left after ikelink: {e}"))?;
        Ok(r)
    }

    /// Connects strongSwan's client, runs `f` with its charon's PID, disconnects.
    fn with_strongswan<T>(tb: &Testbed, gw: &Gateway, args: &Args, f: impl FnOnce(u32) -> Step<T>) -> Step<T> {
        let cfg = ClientConfig { esp_proposals: args.suite.clone(), ..ClientConfig::default() };
        let mut sc = StrongswanClient::start(tb, &cfg).map_err(|e| format!("starting strongSwan's client: {e}"))?;
        sc.connect().map_err(|e| format!("strongSwan's client did not connect: {e}"))?;
        gw.wait_for_sa_count(1, WAIT).map_err(|e| e.to_string())?;
        let pid = sc.pid().ok_or("strongSwan client charon not running")?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if !comm.trim().starts_with("charon") {
            return Err(format!("pid {pid} of strongSwan's client is {comm:?}, not charon"));
        }
        wait_reachable(tb, "through strongSwan's client").map_err(|e| with_log(&sc, e))?;
        let r = f(pid)?;
        sc.terminate().map_err(|e| format!("strongSwan client terminate: {e}"))?;
        sc.stop().map_err(|e| format!("stopping strongSwan's client: {e}"))?;
        gw.wait_for_sa_count(0, WAIT).map_err(|e| format!("gateway SA left after strongSwan's client: {e}"))?;
        Ok(r)
    }

    /// Starts boringtun on the client and the gateway with the LAN routed through it, runs `f` with the client's
    /// and the gateway's boringtun PIDs, stops both. Also returns the client boringtun's thread count.
    fn with_boringtun<T>(tb: &Testbed, f: impl FnOnce(u32, u32) -> Step<T>) -> Step<(T, usize)> {
        let wg = WireguardTunnel::start(tb, &[LAN_NET]).map_err(|e| format!("starting boringtun: {e}"))?;
        wait_reachable(tb, "through boringtun")?;
        let r = f(wg.client_pid(), wg.gateway_pid())?;
        let threads = wg.client_threads();
        let (rx, tx) = wg.client_transfer(tb).map_err(|e| e.to_string())?;
        if rx == 0 || tx == 0 {
            return Err(format!("boringtun counted no traffic (rx {rx} tx {tx}): iperf3 went around the tunnel?"));
        }
        wg.stop();
        if tb.ping(Role::Cli, LAN_ADDR, 1).map_err(|e| e.to_string())? {
            return Err("the LAN is still reachable after stopping boringtun".into());
        }
        Ok((r, threads))
    }

    /// Adds the strongSwan client's log tail to a message.
    fn with_log(sc: &StrongswanClient, e: String) -> String {
        let log = sc.log();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        format!("{e}\n--- strongSwan client log tail ---\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
    }

    // ---- (d) uplink ESP capacity ----------------------------------------------------------------------------------

    /// The blaster: sends `size`-byte UDP datagrams to `to` as fast as the socket takes them for `seconds`
    /// (like `iperf3 -u -b 0`, without iperf3's control connection, which could not cross the router while it drops
    /// the ESP). Prints `sent=N errors=M`.
    fn blast(to: std::net::SocketAddr, size: u16, seconds: u32) -> ExitCode {
        let sock = match std::net::UdpSocket::bind("0.0.0.0:0").and_then(|s| s.connect(to).map(|()| s)) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("blast: {e}");
                return ExitCode::FAILURE;
            }
        };
        let buf = vec![0x5a_u8; usize::from(size)];
        let deadline = Instant::now() + Duration::from_secs(u64::from(seconds));
        let (mut sent, mut errors) = (0_u64, 0_u64);
        'outer: loop {
            for _ in 0..256 {
                match sock.send(&buf) {
                    Ok(_) => sent += 1,
                    Err(_) => errors += 1,
                }
            }
            if Instant::now() >= deadline {
                break 'outer;
            }
        }
        println!("sent={sent} errors={errors}");
        ExitCode::SUCCESS
    }

    /// nftables table on the router that counts and drops the client's ESP (ESP-in-UDP to port 4500 whose first four
    /// payload bytes, the SPI, are not the non-ESP marker; and plain ESP), so no gateway limits the measurement.
    const CAPACITY_TABLE: &str = "ikelink_bench_capacity";

    fn install_esp_sink(tb: &Testbed) -> Step<()> {
        let cli = ikelink_testbed::harness::CLI_ADDR;
        let rules = format!(
        "table ip {CAPACITY_TABLE} {{\n  chain forward {{\n    type filter hook forward priority -10; policy accept;\n    \
         ip saddr {cli} udp dport 4500 @th,64,32 != 0 counter drop\n    \
         ip saddr {cli} ip protocol esp counter drop\n  }}\n}}\n"
    );
        let path = tb.dir().join("capacity.nft");
        std::fs::write(&path, rules).map_err(|e| format!("{}: {e}", path.display()))?;
        let p = path.to_string_lossy().into_owned();
        tb.exec(Role::Rtr, &["nft", "-f", &p]).map(|_| ()).map_err(|e| format!("installing the ESP sink: {e}"))
    }

    fn remove_esp_sink(tb: &Testbed) -> Step<()> {
        tb.exec(Role::Rtr, &["nft", "delete", "table", "ip", CAPACITY_TABLE])
            .map(|_| ())
            .map_err(|e| format!("removing the ESP sink: {e}"))
    }

    /// (packets, bytes) counted by the ESP sink's rules.
    fn esp_sink_counters(tb: &Testbed) -> Step<(u64, u64)> {
        let out = tb
            .exec(Role::Rtr, &["nft", "list", "table", "ip", CAPACITY_TABLE])
            .map_err(|e| format!("reading the ESP sink: {e}"))?;
        Ok(parse_nft_counters(&String::from_utf8_lossy(&out.stdout)))
    }

    /// Sums of the `counter packets N bytes M` statements in `nft list` output.
    fn parse_nft_counters(text: &str) -> (u64, u64) {
        let w: Vec<&str> = text.split_whitespace().collect();
        let (mut pkts, mut bytes) = (0, 0);
        for i in 0..w.len() {
            if let ["counter", "packets", p, "bytes", b, ..] = &w[i..] {
                pkts += p.parse::<u64>().unwrap_or(0);
                bytes += b.trim_end_matches(|c: char| !c.is_ascii_digit()).parse::<u64>().unwrap_or(0);
            }
        }
        (pkts, bytes)
    }

    /// One blast through a connected client: inner Mbit/s that left the client as ESP, and client CPU.
    #[derive(Clone, Debug, Default)]
    struct Capacity {
        /// Inner IP bytes per second that the client sent as ESP, in Mbit/s.
        inner_mbits: f64,
        esp_pps: f64,
        /// Datagrams the blaster handed to its socket (some may be dropped before the client reads them).
        sent: u64,
        esp_packets: u64,
        /// What nft counted as packets: one per UDP GSO super-packet, so fewer than `esp_packets` with GSO.
        esp_skbs: u64,
        cpu_s_per_gb: Option<f64>,
        client_pct: Option<f64>,
        client_top: Option<(String, f64)>,
        host_busy_pct: f64,
    }

    fn measure_capacity(tb: &Testbed, args: &Args, client_pid: u32) -> Step<Capacity> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot locate this executable: {e}"))?;
        let exe = exe.to_string_lossy().into_owned();
        let to = format!("{LAN_ADDR}:9");
        let (size, secs) = (args.blast_size.to_string(), args.seconds.to_string());
        install_esp_sink(tb)?;
        let result = (|| {
            let (p0, b0) = esp_sink_counters(tb)?;
            let c0 = cpu_sample(client_pid).ok_or("cannot read the client's /proc stat")?;
            let h0 = host_cpu();
            let t0 = Instant::now();
            let out = tb
                .exec_unchecked(
                    Role::Cli,
                    &[&exe, "--blast", &to, "--blast-size", &size, "--seconds", &secs],
                    Duration::from_secs(u64::from(args.seconds) + 20),
                )
                .map_err(|e| format!("blast: {e}"))?;
            // Let the client drain what it has queued, then read the counters.
            std::thread::sleep(Duration::from_millis(300));
            let wall = t0.elapsed().as_secs_f64();
            let c1 = cpu_sample(client_pid).ok_or("cannot read the client's /proc stat")?;
            let h1 = host_cpu();
            let (p1, b1) = esp_sink_counters(tb)?;
            let text = String::from_utf8_lossy(&out.stdout);
            let sent = text
                .split_whitespace()
                .find_map(|w| w.strip_prefix("sent="))
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| format!("blast printed no count: {text:?} {}", String::from_utf8_lossy(&out.stderr)))?;
            // A UDP GSO send crosses the veth as one skb that nft counts as one packet, so the ESP packets are
            // counted by their bytes: every blasted datagram becomes an ESP packet of the same outer size.
            let outer = outer_len(&args.suite, usize::from(args.blast_size) + 28);
            let esp_bytes = b1.saturating_sub(b0);
            let esp_packets = esp_bytes / outer as u64;
            if esp_packets == 0 {
                return Err(format!("no ESP reached the router during the blast ({} skbs)", p1.saturating_sub(p0)));
            }
            let inner_bytes = esp_packets as f64 * (f64::from(args.blast_size) + 28.0);
            let blast_secs = f64::from(args.seconds);
            let (cpu, pct, name, top) = cpu_delta(&c0, &c1, wall);
            Ok(Capacity {
                inner_mbits: inner_bytes * 8.0 / blast_secs / 1e6,
                esp_pps: esp_packets as f64 / blast_secs,
                sent,
                esp_packets,
                esp_skbs: p1.saturating_sub(p0),
                cpu_s_per_gb: Some(cpu / (inner_bytes / 1e9)),
                client_pct: Some(pct),
                client_top: Some((name, top)),
                host_busy_pct: 100.0 * h1.0.saturating_sub(h0.0) as f64 / (h1.1.saturating_sub(h0.1).max(1)) as f64,
            })
        })();
        remove_esp_sink(tb)?;
        result
    }

    /// Outer IPv4 length of an ESP-in-UDP packet (RFC 3948) carrying an inner packet of `inner` bytes with `suite`
    /// (RFC 4303 §2.4: pad + pad length + next header to the cipher's block size, at least 4).
    fn outer_len(suite: &str, inner: usize) -> usize {
        // (IV, ICV, block)
        let (iv, icv, block) = match suite {
            "aes256-sha256" => (16, 16, 16),
            _ => (8, 16, 4),
        };
        let padded = (inner + 2).div_ceil(block) * block;
        20 + 8 + 8 + iv + padded + icv
    }

    fn print_capacity(label: &str, c: &Capacity) {
        println!(
            "    {label:<22} {:>8.1} Mbit/s inner  {:>9.0} ESP pkt/s  sent {} -> ESP {} ({:.0}%, {} skbs)  client \
         {:.2} CPU-s/GB {:.0}% (top thread {} {:.0}%)  host busy {:.0}%",
            c.inner_mbits,
            c.esp_pps,
            c.sent,
            c.esp_packets,
            100.0 * c.esp_packets as f64 / (c.sent.max(1)) as f64,
            c.esp_skbs,
            c.cpu_s_per_gb.unwrap_or(0.0),
            c.client_pct.unwrap_or(0.0),
            c.client_top.as_ref().map_or("?", |t| t.0.as_str()),
            c.client_top.as_ref().map_or(0.0, |t| t.1),
            c.host_busy_pct
        );
        if c.esp_packets > c.sent {
            println!(
                "        warning: more ESP packets than datagrams sent: the ESP size estimate does not fit this client"
            );
        }
    }

    // ---- (f) TCP encapsulation vs UDP against libreswan ------------------------------------------------------------

    /// Connecting may take long in the VM (software emulation).
    const VM_WAIT: Duration = Duration::from_secs(120);

    /// libreswan's name of our `--suite`.
    fn libreswan_esp(suite: &str) -> &'static str {
        match suite {
            "chacha20poly1305" => "chacha20_poly1305",
            "aes256-sha256" => "aes256-sha2_256",
            _ => "aes_gcm256",
        }
    }

    /// Connects our client over `transport` ("udp" or "tcp") to pluto, runs `f` with its PID, disconnects.
    fn with_ours_over<T>(
        tb: &Testbed,
        gw: &Libreswan,
        bin: &Path,
        args: &Args,
        transport: &str,
        f: impl FnOnce(u32) -> Step<T>,
    ) -> Step<T> {
        let profile = psk_profile(None, Some(&args.suite), &[LAN_NET]).replacen(
            "[gateway]\n",
            &format!("[gateway]\ntransport = \"{transport}\"\n"),
            1,
        );
        let mut c = IkelinkClient::start(tb, bin, &profile, &[]).map_err(|e| format!("starting ikelink: {e}"))?;
        if let Err(e) = c.wait_connected(VM_WAIT) {
            let log = gw.conn_log().join("\n");
            return Err(format!(
                "ikelink did not connect over {transport}: {e}\n{}\n--- pluto ---\n{log}",
                c.transcript()
            ));
        }
        c.wait_line("tunnel", VM_WAIT, |l| l.starts_with("tunnel:")).map_err(|e| format!("ikelink tunnel: {e}"))?;
        if c.value("transport").as_deref() != Some(transport) {
            return Err(format!("ikelink connected over {:?}, not {transport}", c.value("transport")));
        }
        let pid = find_ikelink_pid(tb, bin)?;
        wait_until(&format!("{LAN_ADDR} reachable over {transport}"), VM_WAIT, Duration::from_millis(500), || {
            tb.ping(Role::Cli, LAN_ADDR, 1)
        })
        .map_err(|e| e.to_string())?;
        let r = f(pid)?;
        let st = c.interrupt(VM_WAIT).map_err(|e| format!("ikelink did not exit: {e}"))?;
        if !st.success() {
            return Err(format!("ikelink exited with {st}\n{}", c.transcript()));
        }
        wait_until("pluto removes the Child SA", VM_WAIT, Duration::from_millis(200), || {
            Ok(!gw.traffic_status().map_err(|e| e.to_string()).unwrap_or_default().contains("type=ESP"))
        })
        .map_err(|e| e.to_string())?;
        Ok(r)
    }

    fn run_transports(args: &Args, bin: &Path) -> Step<()> {
        if !kernel_has_espintcp() {
            return Err("this kernel has no espintcp (TCP encapsulation in the gateway's kernel); run it in the VM \
                        with IKELINK_VM_KERNEL=espintcp scripts/vm-run.sh"
                .into());
        }
        if !Libreswan::available() {
            return Err("libreswan is not unpacked (scripts/install-deps.sh)".into());
        }
        // The router computes checksums towards the gateway, as a wire does (see `wire_checksums`): without it the
        // gateway drops the inner TCP it decapsulates from the stream, and TCP crawls at 0.1 Mbit/s.
        let options = TestbedOptions { wire_checksums: true, ..Default::default() };
        let tb = Testbed::new(options).map_err(|e| format!("building the testbed: {e}"))?;
        let config = LibreswanConfig {
            esp: Some(libreswan_esp(&args.suite).into()),
            extra_setup: "\tlisten-tcp=yes\n".into(),
            extra_conn: "\tenable-tcp=fallback\n\ttcp-remoteport=4500".into(),
            ..Default::default()
        };
        let gw = Libreswan::start(&tb, &config).map_err(|e| format!("starting pluto: {e}"))?;
        let gw_pid = gw.pid().ok_or("pluto not running")?;
        let _server = tb.start_iperf_server(Role::Lan).map_err(|e| format!("iperf3 server: {e}"))?;
        println!("\n(f) ikelink over UDP (ESP in UDP 4500) and over TCP (RFC 9329) against libreswan, alternating");
        let (mut udp, mut tcp) = (Vec::new(), Vec::new());
        for i in 1..=args.runs {
            let order: [(&str, &mut Vec<Run>); 2] = if i % 2 == 1 {
                [("udp", &mut udp), ("tcp", &mut tcp)]
            } else {
                [("tcp", &mut tcp), ("udp", &mut udp)]
            };
            for (transport, v) in order {
                let r = with_ours_over(&tb, &gw, bin, args, transport, |pid| measure(&tb, args, Some(pid), gw_pid))?;
                print_run(&format!("ikelink {transport} #{i}"), &r);
                v.push(r);
            }
        }
        let (u, t) = (row(&udp), row(&tcp));
        println!(
            "\nmedians of {} run(s), ESP {}, iperf3 {} s{}:",
            args.runs,
            args.suite,
            args.seconds,
            if args.reverse { " (download)" } else { "" }
        );
        println!(
            "    {:<26} {:>10} {:>16} {:>12} {:>14}",
            "", "Mbit/s", "client CPU-s/GB", "client CPU", "peak RSS MB"
        );
        for (label, r) in [("UDP (ESP in UDP 4500)", &u), ("TCP (RFC 9329 stream)", &t)] {
            println!(
                "    {label:<26} {:>10.1} {:>16} {:>11}% {:>14}",
                r.mbits,
                opt(r.cpu, 2),
                opt(r.client_pct, 0),
                opt(r.rss, 1)
            );
        }
        println!(
            "    TCP / UDP client CPU-s per GB: {}   throughput: {}",
            ratio(t.cpu, u.cpu),
            ratio(Some(t.mbits), Some(u.mbits))
        );
        Ok(())
    }

    // ---- the report -----------------------------------------------------------------------------------------------

    fn median(mut v: Vec<f64>) -> Option<f64> {
        v.retain(|x| x.is_finite());
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let m = v.len() / 2;
        Some(if v.len() % 2 == 1 { v[m] } else { (v[m - 1] + v[m]) / 2.0 })
    }

    /// Medians of a set of runs.
    struct Row {
        mbits: f64,
        cpu: Option<f64>,
        rss: Option<f64>,
        client_pct: Option<f64>,
        client_top: Option<f64>,
        gw_pct: f64,
        gw_top: f64,
        host: f64,
    }

    fn row(runs: &[Run]) -> Row {
        let m = |f: &dyn Fn(&Run) -> Option<f64>| median(runs.iter().filter_map(f).collect());
        Row {
            mbits: m(&|r| Some(r.mbits)).unwrap_or(0.0),
            cpu: m(&|r| r.cpu_s_per_gb),
            rss: m(&|r| r.rss_mb),
            client_pct: m(&|r| r.client_pct),
            client_top: m(&|r| r.client_top.as_ref().map(|t| t.1)),
            gw_pct: m(&|r| Some(r.gw_pct)).unwrap_or(0.0),
            gw_top: m(&|r| Some(r.gw_top.1)).unwrap_or(0.0),
            host: m(&|r| Some(r.host_busy_pct)).unwrap_or(0.0),
        }
    }

    fn opt(v: Option<f64>, prec: usize) -> String {
        v.map_or("-".into(), |x| format!("{x:.prec$}"))
    }

    fn ratio(a: Option<f64>, b: Option<f64>) -> String {
        match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
            _ => "-".into(),
        }
    }

    fn print_table(args: &Args, none: &Row, ours: &Row, theirs: &Row, wg: &Row, wg_threads: &[usize]) {
        println!();
        println!(
            "Results: iperf3 TCP client {} LAN host, ESP {}, {} s per run, median of {} run(s), {} CPUs",
            if args.reverse { "<-" } else { "->" },
            args.suite,
            args.seconds,
            args.runs,
            ncpus()
        );
        println!();
        println!(
            "{:<30} {:>9} {:>12} {:>12} {:>18} {:>18} {:>10}",
            "", "Mbit/s", "CPU s/GB", "peak RSS MB", "client CPU% (top)", "gateway% (top)", "host busy%"
        );
        let line = |name: &str, r: &Row| {
            let client = match (r.client_pct, r.client_top) {
                (Some(p), Some(t)) => format!("{p:.0}% ({t:.0}%)"),
                _ => "-".into(),
            };
            println!(
                "{:<30} {:>9.1} {:>12} {:>12} {:>18} {:>18} {:>10.0}",
                name,
                r.mbits,
                opt(r.cpu, 2),
                opt(r.rss, 1),
                client,
                format!("{:.0}% ({:.0}%)", r.gw_pct, r.gw_top),
                r.host
            );
        };
        line("no tunnel", none);
        line("ikelink (ours)", ours);
        line("strongSwan client (libipsec)", theirs);
        line("boringtun (WireGuard)", wg);
        println!(
            "{:<30} {:>9} {:>12} {:>12}",
            "ratio ours / strongSwan",
            ratio(Some(ours.mbits), Some(theirs.mbits)),
            ratio(ours.cpu, theirs.cpu),
            ratio(ours.rss, theirs.rss)
        );
        println!(
            "{:<30} {:>9} {:>12} {:>12}",
            "ratio ours / boringtun",
            ratio(Some(ours.mbits), Some(wg.mbits)),
            ratio(ours.cpu, wg.cpu),
            ratio(ours.rss, wg.rss)
        );
        println!("{:<30} {:>9}", "ratio ours / no tunnel", ratio(Some(ours.mbits), Some(none.mbits)));
        println!();
        println!(
        "CPU s/GB: client process CPU time (user+system, all threads) per 10^9 bytes received by the iperf3 receiver."
    );
        println!(
        "CPU%: of one core (a process can exceed 100%); (top): its busiest thread; gateway: its charon (libipsec) for \
         ikelink and strongSwan's client, its boringtun-cli for boringtun."
    );
        let threads: Vec<String> = wg_threads.iter().map(usize::to_string).collect();
        println!(
            "boringtun: boringtun-cli {BORINGTUN_VERSION} with its defaults on both ends (--threads 4, multi-queue TUN, \
             MTU {}); client threads seen per run: {}",
            ikelink_testbed::harness::boringtun::WG_MTU,
            if threads.is_empty() { "-".into() } else { threads.join(", ") }
        );
        match ours.rss {
            Some(rss) if rss <= RSS_LIMIT_MB => {
                println!("memory: ikelink peak RSS {rss:.1} MB <= {RSS_LIMIT_MB} MB: ok")
            }
            Some(rss) => println!("memory: ikelink peak RSS {rss:.1} MB > {RSS_LIMIT_MB} MB: OVER BUDGET"),
            None => println!("memory: ikelink peak RSS not measured"),
        }
        let busy_thread = ours.gw_top.max(theirs.gw_top);
        let host = ours.host.max(theirs.host);
        println!(
            "gateway charon: {:.0}% / {:.0}% of one core (ours / strongSwan), busiest thread {:.0}% / {:.0}%",
            ours.gw_pct, theirs.gw_pct, ours.gw_top, theirs.gw_top
        );
        if busy_thread >= 85.0 {
            println!(
                "bottleneck: a gateway charon thread ran at {busy_thread:.0}% of a core: the gateway's userspace ESP \
             (libipsec) likely limits both tunnels"
            );
        } else if host >= 85.0 {
            println!(
                "bottleneck: the host's {} CPUs were {host:.0}% busy (iperf3 on both ends, both IPsec endpoints, the \
             kernel, anything else running): the tunnels are CPU-bound on this machine, not limited by one \
             gateway thread",
                ncpus()
            );
        }
    }

    fn print_capacity_table(args: &Args, ours: &[Capacity], theirs: &[Capacity]) {
        let m = |v: &[Capacity], f: &dyn Fn(&Capacity) -> Option<f64>| median(v.iter().filter_map(f).collect());
        let (om, tm) = (m(ours, &|c| Some(c.inner_mbits)), m(theirs, &|c| Some(c.inner_mbits)));
        let (oc, tc) = (m(ours, &|c| c.cpu_s_per_gb), m(theirs, &|c| c.cpu_s_per_gb));
        let (op, tp) = (m(ours, &|c| Some(c.esp_pps)), m(theirs, &|c| Some(c.esp_pps)));
        println!();
        println!(
            "Uplink ESP capacity: {} B UDP payload ({} B inner IP packets), ESP {}, {} s per run, median of {} run(s)",
            args.blast_size,
            u32::from(args.blast_size) + 28,
            args.suite,
            args.seconds,
            args.runs
        );
        println!();
        println!("{:<30} {:>12} {:>12} {:>12}", "", "inner Mbit/s", "ESP pkt/s", "CPU s/GB");
        println!("{:<30} {:>12} {:>12.0} {:>12}", "ikelink (ours)", opt(om, 1), op.unwrap_or(0.0), opt(oc, 2));
        println!(
            "{:<30} {:>12} {:>12.0} {:>12}",
            "strongSwan client (libipsec)",
            opt(tm, 1),
            tp.unwrap_or(0.0),
            opt(tc, 2)
        );
        println!("{:<30} {:>12} {:>12} {:>12}", "ratio ours / strongSwan", ratio(om, tm), ratio(op, tp), ratio(oc, tc));
        println!();
        println!(
        "inner Mbit/s: inner IP bytes the client sent as ESP (counted on the router) per second of blast; CPU s/GB: \
         client CPU time per 10^9 of those bytes."
    );
    }

    // ---- main -----------------------------------------------------------------------------------------------------

    fn run(args: &Args) -> Step<()> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot locate this executable: {e}"))?;
        let bin = exe.with_file_name("ikelink");
        if !bin.is_file() {
            return Err(format!(
                "{} is missing; run `cargo build --release -p ikelink-desktop -p ikelink-testbed --bins`",
                bin.display()
            ));
        }
        if args.libreswan_transports {
            println!(
                "ikelink-bench: ESP {}, iperf3 {} s per run, {} run(s) per transport, client {}",
                args.suite,
                args.seconds,
                args.runs,
                bin.display()
            );
            return run_transports(args, &bin);
        }
        println!(
            "ikelink-bench: ESP {}, iperf3 {} s per run{}, {} run(s) per client, client {}",
            args.suite,
            args.seconds,
            if args.reverse { " (reverse: download)" } else { "" },
            args.runs,
            bin.display()
        );
        let boringtun =
            if args.capacity_only { None } else { Some(check_boringtun().map_err(|e| format!("(e) boringtun: {e}"))?) };
        if let Some(b) = &boringtun {
            println!("boringtun: {} (boringtun-cli {BORINGTUN_VERSION}, its default --threads)", b.display());
        }
        let tb = Testbed::new(TestbedOptions::default()).map_err(|e| format!("building the testbed: {e}"))?;
        let gw_cfg = GatewayConfig { esp_proposals: args.suite.clone(), ..GatewayConfig::default() };
        let gw = Gateway::start(&tb, &gw_cfg).map_err(|e| format!("starting the strongSwan gateway: {e}"))?;
        let _server = tb.start_iperf_server(Role::Lan).map_err(|e| format!("iperf3 server: {e}"))?;

        let none = if args.capacity_only {
            Vec::new()
        } else {
            println!("\n(a) no tunnel (temporary routes via the router)");
            run_no_tunnel(&tb, &gw, args)?
        };

        if !args.capacity_only {
            println!(
                "\n(b)/(c)/(e) through ikelink, through strongSwan's client and through boringtun (userspace \
                 WireGuard on both ends), alternating"
            );
        }
        let gw_pid = gw.pid().ok_or("gateway charon not running")?;
        let (mut ours, mut theirs, mut wg) = (Vec::new(), Vec::new(), Vec::new());
        let mut wg_threads = Vec::new();
        for i in (1..=args.runs).filter(|_| !args.capacity_only) {
            let run_ours = |v: &mut Vec<Run>| -> Step<()> {
                let r = with_ours(&tb, &gw, &bin, args, |pid| measure(&tb, args, Some(pid), gw_pid))?;
                print_run(&format!("ikelink #{i}"), &r);
                v.push(r);
                Ok(())
            };
            let run_theirs = |v: &mut Vec<Run>| -> Step<()> {
                let r = with_strongswan(&tb, &gw, args, |pid| measure(&tb, args, Some(pid), gw_pid))?;
                print_run(&format!("strongSwan client #{i}"), &r);
                v.push(r);
                Ok(())
            };
            let mut run_wg = |v: &mut Vec<Run>| -> Step<()> {
                let (r, threads) = with_boringtun(&tb, |pid, gw_pid| measure(&tb, args, Some(pid), gw_pid))?;
                print_run(&format!("boringtun #{i}"), &r);
                wg_threads.push(threads);
                v.push(r);
                Ok(())
            };
            // ABC CBA order so no client always runs first.
            if i % 2 == 1 {
                run_ours(&mut ours)?;
                run_theirs(&mut theirs)?;
                run_wg(&mut wg)?;
            } else {
                run_wg(&mut wg)?;
                run_theirs(&mut theirs)?;
                run_ours(&mut ours)?;
            }
        }

        let (mut cap_ours, mut cap_theirs) = (Vec::new(), Vec::new());
        if !args.no_capacity {
            // As on a NIC without UDP segmentation offload, the kernel cuts our UDP GSO batches into datagrams in
            // software, on the client's CPU, before they leave the client's interface. (Otherwise the veth would
            // hand them whole to the router, which drops them uncut: a saving a real path does not give.)
            tb.exec(Role::Cli, &["ethtool", "-K", "eth0", "tx-udp-segmentation", "off"])
                .map_err(|e| format!("switching UDP segmentation offload off: {e}"))?;
            println!(
            "\n(d) uplink ESP capacity: {}-byte UDP datagrams blasted into each client for {} s; the router counts \
             and drops the client's ESP, so the gateway does not limit it",
            args.blast_size, args.seconds
        );
            for i in 1..=args.runs {
                let run_ours = |v: &mut Vec<Capacity>| -> Step<()> {
                    let c = with_ours(&tb, &gw, &bin, args, |pid| measure_capacity(&tb, args, pid))?;
                    print_capacity(&format!("ikelink #{i}"), &c);
                    v.push(c);
                    Ok(())
                };
                let run_theirs = |v: &mut Vec<Capacity>| -> Step<()> {
                    let c = with_strongswan(&tb, &gw, args, |pid| measure_capacity(&tb, args, pid))?;
                    print_capacity(&format!("strongSwan client #{i}"), &c);
                    v.push(c);
                    Ok(())
                };
                if i % 2 == 1 {
                    run_ours(&mut cap_ours)?;
                    run_theirs(&mut cap_theirs)?;
                } else {
                    run_theirs(&mut cap_theirs)?;
                    run_ours(&mut cap_ours)?;
                }
            }
        }
        if !args.capacity_only {
            print_table(args, &row(&none), &row(&ours), &row(&theirs), &row(&wg), &wg_threads);
        }
        if !args.no_capacity {
            print_capacity_table(args, &cap_ours, &cap_theirs);
        }
        Ok(())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn outer_lengths() {
            // 1328-byte inner packet, AES-GCM: 8 SPI/seq + 8 IV + 1332 (1330 padded to 4) + 16 ICV + 28 IP/UDP.
            assert_eq!(outer_len("aes256gcm16", 1328), 1392);
            assert_eq!(outer_len("chacha20poly1305", 1328), 1392);
            // CBC: 16 IV, padded to 16 (1330 -> 1344), HMAC-SHA2-256-128.
            assert_eq!(outer_len("aes256-sha256", 1328), 20 + 8 + 8 + 16 + 1344 + 16);
        }

        #[test]
        fn nft_counters() {
            let text = "table ip t {\n chain forward {\n type filter hook forward priority -10; policy accept;\n \
                    ip saddr 192.0.2.2 udp dport 4500 @th,64,32 != 0 counter packets 12 bytes 34000 drop\n \
                    ip saddr 192.0.2.2 ip protocol esp counter packets 1 bytes 100 drop\n }\n}\n";
            assert_eq!(parse_nft_counters(text), (13, 34100));
            assert_eq!(parse_nft_counters("table ip t {\n}\n"), (0, 0));
        }
    }
}
