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
//! tells where the TCP retransmissions come from. Needs root.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use ikelink_cli::harness::{
    psk_profile, wait_until, ClientConfig, Gateway, GatewayConfig, IkelinkClient, IperfOptions, IperfResult, Role,
    StrongswanClient, Testbed, TestbedOptions, GW_ADDR, LAN_ADDR, LAN_NET, RTR_CLI_ADDR,
};

const WAIT: Duration = Duration::from_secs(20);
/// The memory budget of the issue: at most 15 MB resident under load.
const RSS_LIMIT_MB: f64 = 15.0;

#[derive(Parser)]
#[command(name = "ikelink-bench", about = "iperf3 through ikelink vs strongSwan's client vs no tunnel")]
struct Args {
    /// iperf3 duration of each run, seconds (timed mode).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=300))]
    seconds: u32,
    /// Runs per client (alternating ours / strongSwan); the table shows medians.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=20))]
    runs: u32,
    /// ESP suite used by both clients and accepted by the gateway.
    #[arg(long, default_value = "aes256gcm16", value_parser = ["aes256gcm16", "chacha20poly1305", "aes256-sha256"])]
    suite: String,
    /// Download instead of upload: the LAN host sends, the client receives (`iperf3 -R`).
    #[arg(long)]
    reverse: bool,
}

type Step<T> = Result<T, String>;

fn main() -> ExitCode {
    let args = Args::parse();
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
    let found: Vec<u32> = ns_pids(tb.ns(Role::Cli))
        .into_iter()
        .filter(|p| std::fs::read_link(format!("/proc/{p}/exe")).is_ok_and(|exe| exe == want))
        .collect();
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
    let g0 = cpu_sample(gw_pid).ok_or("cannot read the gateway charon's /proc stat")?;
    let h0 = host_cpu();
    let t0 = Instant::now();
    let r: IperfResult = tb.iperf_client_with(Role::Cli, LAN_ADDR, &opts).map_err(|e| format!("iperf3: {e}"))?;
    let wall = t0.elapsed().as_secs_f64();
    let c1 = client_pid.and_then(cpu_sample);
    let g1 = cpu_sample(gw_pid).ok_or("cannot read the gateway charon's /proc stat")?;
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
    if let (Some(cpu), Some(pct), Some((tn, tp)), Some(rss)) = (r.cpu_s_per_gb, r.client_pct, &r.client_top, r.rss_mb) {
        s += &format!("  client {cpu:.2} CPU-s/GB {pct:.0}% (top thread {tn} {tp:.0}%) peak RSS {rss:.1} MB");
    }
    s += &format!(
        "  gateway charon {:.0}% (top thread {} {:.0}%)  host busy {:.0}%",
        r.gw_pct, r.gw_top.0, r.gw_top.1, r.host_busy_pct
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

fn run_ours(tb: &Testbed, gw: &Gateway, bin: &Path, args: &Args, n: u32) -> Step<Run> {
    let gw_pid = gw.pid().ok_or("gateway charon not running")?;
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
    let r = measure(tb, args, Some(pid), gw_pid)?;
    print_run(&format!("ikelink #{n}"), &r);
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

fn run_strongswan(tb: &Testbed, gw: &Gateway, args: &Args, n: u32) -> Step<Run> {
    let gw_pid = gw.pid().ok_or("gateway charon not running")?;
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
    let r = measure(tb, args, Some(pid), gw_pid)?;
    print_run(&format!("strongSwan client #{n}"), &r);
    sc.terminate().map_err(|e| format!("strongSwan client terminate: {e}"))?;
    sc.stop().map_err(|e| format!("stopping strongSwan's client: {e}"))?;
    gw.wait_for_sa_count(0, WAIT).map_err(|e| format!("gateway SA left after strongSwan's client: {e}"))?;
    Ok(r)
}

/// Adds the strongSwan client's log tail to a message.
fn with_log(sc: &StrongswanClient, e: String) -> String {
    let log = sc.log();
    let tail: Vec<&str> = log.lines().rev().take(30).collect();
    format!("{e}\n--- strongSwan client log tail ---\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
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

fn print_table(args: &Args, none: &Row, ours: &Row, theirs: &Row) {
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
        "", "Mbit/s", "CPU s/GB", "peak RSS MB", "client CPU% (top)", "gw charon% (top)", "host busy%"
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
    println!(
        "{:<30} {:>9} {:>12} {:>12}",
        "ratio ours / strongSwan",
        ratio(Some(ours.mbits), Some(theirs.mbits)),
        ratio(ours.cpu, theirs.cpu),
        ratio(ours.rss, theirs.rss)
    );
    println!("{:<30} {:>9}", "ratio ours / no tunnel", ratio(Some(ours.mbits), Some(none.mbits)));
    println!();
    println!(
        "CPU s/GB: client process CPU time (user+system, all threads) per 10^9 bytes received by the iperf3 receiver."
    );
    println!(
        "CPU%: of one core (a process can exceed 100%); (top): its busiest thread; gw charon = the gateway (libipsec)."
    );
    match ours.rss {
        Some(rss) if rss <= RSS_LIMIT_MB => println!("memory: ikelink peak RSS {rss:.1} MB <= {RSS_LIMIT_MB} MB: ok"),
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

// ---- main -----------------------------------------------------------------------------------------------------

fn run(args: &Args) -> Step<()> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate this executable: {e}"))?;
    let bin = exe.with_file_name("ikelink");
    if !bin.is_file() {
        return Err(format!("{} is missing; run `cargo build --release -p ikelink-cli --bins`", bin.display()));
    }
    println!(
        "ikelink-bench: ESP {}, iperf3 {} s per run{}, {} run(s) per client, client {}",
        args.suite,
        if args.reverse { " (reverse: download)" } else { "" },
        args.seconds,
        args.runs,
        bin.display()
    );
    let tb = Testbed::new(TestbedOptions::default()).map_err(|e| format!("building the testbed: {e}"))?;
    let gw_cfg = GatewayConfig { esp_proposals: args.suite.clone(), ..GatewayConfig::default() };
    let gw = Gateway::start(&tb, &gw_cfg).map_err(|e| format!("starting the strongSwan gateway: {e}"))?;
    let _server = tb.start_iperf_server(Role::Lan).map_err(|e| format!("iperf3 server: {e}"))?;

    println!("\n(a) no tunnel (temporary routes via the router)");
    let none = run_no_tunnel(&tb, &gw, args)?;

    println!("\n(b)/(c) through ikelink and through strongSwan's client, alternating");
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for i in 1..=args.runs {
        // ABBA order so neither client always runs first.
        if i % 2 == 1 {
            ours.push(run_ours(&tb, &gw, &bin, args, i)?);
            theirs.push(run_strongswan(&tb, &gw, args, i)?);
        } else {
            theirs.push(run_strongswan(&tb, &gw, args, i)?);
            ours.push(run_ours(&tb, &gw, &bin, args, i)?);
        }
    }
    print_table(args, &row(&none), &row(&ours), &row(&theirs));
    Ok(())
}
