//! The four-namespace testbed: client, router (optionally NAT), gateway and the LAN behind the gateway.
//!
//! ```text
//!  cli 192.0.2.2 eth0 ── eth0 192.0.2.1  rtr  203.0.113.1 eth1 ── eth0 203.0.113.2  gw  198.51.100.1 eth1 ── eth0 198.51.100.2 lan
//! ```
//!
//! `rtr` has no route to 198.51.100.0/24, so the LAN is reachable from `cli` only through an IPsec tunnel.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Once;
use std::time::Duration;

use super::error::{HarnessError, Result};
use super::process::{self, TempDir, DEFAULT_COMMAND_TIMEOUT};

/// Client address (cli `eth0`).
pub const CLI_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// Router address on the client side (rtr `eth0`), the client's default gateway.
pub const RTR_CLI_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// Router address on the gateway side (rtr `eth1`).
pub const RTR_GW_ADDR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// Gateway public address (gw `eth0`): where IKE goes.
pub const GW_ADDR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
/// Gateway LAN address (gw `eth1`).
pub const GW_LAN_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// The LAN host (lan `eth0`): reachable from cli only through the tunnel.
pub const LAN_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
/// The LAN behind the gateway.
pub const LAN_NET: &str = "198.51.100.0/24";
/// The client side network.
pub const CLI_NET: &str = "192.0.2.0/24";
/// The virtual IP pool.
pub const VIP_NET: &str = "100.64.0.0/24";
/// Default port of iperf3 servers started by [`Testbed::start_iperf_server`].
pub const IPERF_PORT: u16 = 5201;

/// One of the four namespaces of a testbed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// The client (`eth0` 192.0.2.2).
    Cli,
    /// The router between client and gateway (`eth0` client side, `eth1` gateway side).
    Rtr,
    /// The IPsec gateway (`eth0` public, `eth1` LAN).
    Gw,
    /// A host on the LAN behind the gateway (`eth0`).
    Lan,
}

impl Role {
    /// All roles, in creation order.
    pub const ALL: [Role; 4] = [Role::Cli, Role::Rtr, Role::Gw, Role::Lan];

    /// The namespace suffix.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Cli => "cli",
            Role::Rtr => "rtr",
            Role::Gw => "gw",
            Role::Lan => "lan",
        }
    }

    fn index(self) -> usize {
        match self {
            Role::Cli => 0,
            Role::Rtr => 1,
            Role::Gw => 2,
            Role::Lan => 3,
        }
    }
}

/// Variations of the testbed.
#[derive(Clone, Debug, Default)]
pub struct TestbedOptions {
    /// `rtr` masquerades 192.0.2.0/24 towards 203.0.113.0/24 (random source ports) and only lets replies back in.
    pub nat: bool,
    /// `rtr` drops every IP fragment it receives (before reassembly), for RFC 7383 tests.
    pub drop_fragments: bool,
    /// MTU of the cli <-> rtr link.
    pub mtu: Option<u32>,
    /// `rtr` computes the transport checksums of what it forwards to the gateway (transmit checksum offload off
    /// on its `eth1`, `ethtool -K eth1 tx off`), as a physical link does. A veth hands the gateway TCP segments
    /// whose checksum is still to be filled in (CHECKSUM_PARTIAL); Linux 6.1's espintcp keeps that state on the
    /// packets it decapsulates from them, and the gateway then drops the inner TCP segments it forwards
    /// (`validate_xmit_skb`, counted as gw `eth1` tx drops) while pings pass: bulk ESP-in-TCP crawled at
    /// 0.1 Mbit/s against libreswan in the espintcp VM, and ran at 37 Mbit/s with this (2026-12-06).
    pub wire_checksums: bool,
}

/// Result of one iperf3 run (from the `-J` report).
#[derive(Clone, Debug, PartialEq)]
pub struct IperfResult {
    /// Receiver side throughput (`end.sum_received.bits_per_second`).
    pub bits_per_second: f64,
    /// Bytes received by the receiver (`end.sum_received.bytes`).
    pub bytes: u64,
    /// Sender side throughput (`end.sum_sent.bits_per_second`).
    pub sent_bits_per_second: f64,
    /// Bytes sent (`end.sum_sent.bytes`).
    pub sent_bytes: u64,
    /// TCP retransmissions seen by the sender, if reported.
    pub retransmits: Option<u64>,
}

/// Parameters of [`Testbed::iperf_client_with`].
#[derive(Clone, Debug)]
pub struct IperfOptions {
    /// Transfer exactly this many bytes (`-n`); otherwise run for `seconds`.
    pub bytes: Option<u64>,
    /// Duration (`-t`) when `bytes` is `None`.
    pub seconds: u32,
    /// Server sends, client receives (`-R`).
    pub reverse: bool,
    /// Parallel streams (`-P`).
    pub parallel: u32,
    /// Server port.
    pub port: u16,
    /// Hard bound for the whole run (the process is killed after it).
    pub timeout: Duration,
}

impl Default for IperfOptions {
    fn default() -> Self {
        IperfOptions {
            bytes: None,
            seconds: 5,
            reverse: false,
            parallel: 1,
            port: IPERF_PORT,
            timeout: Duration::from_secs(60),
        }
    }
}

/// What [`Testbed::spawn_listening`] waits for: a listening TCP or a bound UDP socket on this port.
#[derive(Debug, Clone, Copy)]
pub enum Listen {
    Tcp(u16),
    Udp(u16),
}

/// A static HTTP server (`python3 -m http.server`) started by [`Testbed::start_http_server`]; stopped on drop.
#[derive(Debug)]
pub struct HttpServer {
    child: Child,
}

impl HttpServer {
    /// Stops it now (SIGTERM, SIGKILL after 2 s).
    pub fn stop(mut self) {
        process::terminate(&mut self.child, Duration::from_secs(2));
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        process::terminate(&mut self.child, Duration::from_secs(2));
    }
}

/// An iperf3 server started by [`Testbed::start_iperf_server`]; stopped on drop (and with the testbed).
#[derive(Debug)]
pub struct IperfServer {
    child: Child,
    port: u16,
}

impl IperfServer {
    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// PID of the iperf3 process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops it (SIGTERM, SIGKILL after 2 s).
    pub fn stop(mut self) {
        process::terminate(&mut self.child, Duration::from_secs(2));
    }
}

impl Drop for IperfServer {
    fn drop(&mut self) {
        process::terminate(&mut self.child, Duration::from_secs(2));
    }
}

/// A running packet capture started by [`Testbed::start_capture`].
#[derive(Debug)]
pub struct Capture {
    child: Child,
    pcap: PathBuf,
}

impl Capture {
    /// The pcap file being written.
    pub fn path(&self) -> &Path {
        &self.pcap
    }

    /// Stops tcpdump and returns the decoded packets (`tcpdump -nn -r`), one per line.
    pub fn finish(mut self) -> Result<String> {
        process::terminate(&mut self.child, Duration::from_secs(3));
        let mut cmd = Command::new("tcpdump");
        cmd.arg("-nn").arg("-r").arg(&self.pcap);
        let out = process::run(&mut cmd, DEFAULT_COMMAND_TIMEOUT)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        process::terminate(&mut self.child, Duration::from_secs(2));
    }
}

/// The UDP (source port, destination port) pairs in `tcpdump -nn` text output.
pub fn udp_ports(tcpdump_text: &str) -> BTreeSet<(u16, u16)> {
    let mut set = BTreeSet::new();
    for line in tcpdump_text.lines().take(1_000_000) {
        // "12:00:00.000000 IP 192.0.2.2.4500 > 203.0.113.2.4500: UDP-encap: ..." or "...: UDP, length 100"
        let Some((_, rest)) = line.split_once(" IP ") else {
            continue;
        };
        let Some((src, rest)) = rest.split_once(" > ") else {
            continue;
        };
        let Some((dst, kind)) = rest.split_once(": ") else {
            continue;
        };
        let kind_is_udp = kind.starts_with("UDP")
            || kind.starts_with("isakmp")
            || kind.starts_with("NONESP-encap")
            || kind.contains("UDP-encap");
        if !kind_is_udp {
            continue;
        }
        let port = |s: &str| s.rsplit_once('.').and_then(|(_, p)| p.parse::<u16>().ok());
        if let (Some(s), Some(d)) = (port(src), port(dst)) {
            set.insert((s, d));
        }
    }
    set
}

/// A set of network namespaces wired as described in the module docs. Everything is torn down on drop:
/// processes still running in its namespaces (all started by us) are killed by PID, then the namespaces are
/// deleted.
#[derive(Debug)]
pub struct Testbed {
    prefix: String,
    names: [String; 4],
    created: Vec<String>,
    options: TestbedOptions,
    dir: TempDir,
    nft: bool,
}

static STALE_CLEANUP: Once = Once::new();

fn ip() -> Command {
    Command::new("ip")
}

impl Testbed {
    /// Builds the namespaces, links, addresses, routes and (optional) NAT/fragment rules.
    pub fn new(options: TestbedOptions) -> Result<Testbed> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(HarnessError::Setup("the interop testbed needs root (network namespaces)".into()));
        }
        STALE_CLEANUP.call_once(cleanup_stale);
        let prefix = process::unique_prefix();
        let names = Role::ALL.map(|r| format!("{prefix}-{}", r.as_str()));
        let dir = TempDir::new(&format!("{prefix}-testbed"))?;
        let nft = process::run(Command::new("nft").arg("--version"), DEFAULT_COMMAND_TIMEOUT).is_ok();
        let mut tb = Testbed { prefix, names, created: Vec::new(), options, dir, nft };
        tb.build()?; // on error, Drop tears down what exists
        Ok(tb)
    }

    fn build(&mut self) -> Result<()> {
        for role in Role::ALL {
            let name = self.names[role.index()].clone();
            process::run(ip().args(["netns", "add", &name]), DEFAULT_COMMAND_TIMEOUT)?;
            self.created.push(name);
            self.ip(role, &["link", "set", "lo", "up"])?;
        }
        let (cli, rtr, gw, lan) = (
            self.ns(Role::Cli).to_string(),
            self.ns(Role::Rtr).to_string(),
            self.ns(Role::Gw).to_string(),
            self.ns(Role::Lan).to_string(),
        );
        // veth pairs created directly inside the namespaces (no names in the root namespace).
        let veth = |a_ns: &str, a: &str, b_ns: &str, b: &str| -> Result<()> {
            process::run(
                ip().args(["-n", a_ns, "link", "add", a, "type", "veth", "peer", "name", b, "netns", b_ns]),
                DEFAULT_COMMAND_TIMEOUT,
            )
            .map(|_| ())
        };
        veth(&cli, "eth0", &rtr, "eth0")?;
        veth(&gw, "eth0", &rtr, "eth1")?;
        veth(&gw, "eth1", &lan, "eth0")?;

        if let Some(mtu) = self.options.mtu {
            let mtu = mtu.to_string();
            self.ip(Role::Cli, &["link", "set", "eth0", "mtu", &mtu])?;
            self.ip(Role::Rtr, &["link", "set", "eth0", "mtu", &mtu])?;
        }
        let addr = |tb: &Testbed, role: Role, dev: &str, a: &str| -> Result<()> {
            tb.ip(role, &["addr", "add", a, "dev", dev])?;
            tb.ip(role, &["link", "set", dev, "up"])
        };
        addr(self, Role::Cli, "eth0", "192.0.2.2/24")?;
        addr(self, Role::Rtr, "eth0", "192.0.2.1/24")?;
        addr(self, Role::Rtr, "eth1", "203.0.113.1/24")?;
        addr(self, Role::Gw, "eth0", "203.0.113.2/24")?;
        addr(self, Role::Gw, "eth1", "198.51.100.1/24")?;
        addr(self, Role::Lan, "eth0", "198.51.100.2/24")?;
        self.ip(Role::Cli, &["route", "add", "default", "via", "192.0.2.1"])?;
        self.ip(Role::Gw, &["route", "add", "default", "via", "203.0.113.1"])?;
        self.ip(Role::Lan, &["route", "add", "default", "via", "198.51.100.1"])?;
        // rtr: only its two connected networks, deliberately no route to the LAN.
        self.exec(Role::Rtr, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        self.exec(Role::Gw, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        if self.options.wire_checksums {
            self.exec(Role::Rtr, &["ethtool", "-K", "eth1", "tx", "off"])?;
        }

        if self.options.nat || self.options.drop_fragments {
            if self.nft {
                self.apply_nft()?;
            } else {
                self.apply_iptables()?;
            }
        }
        Ok(())
    }

    fn apply_nft(&self) -> Result<()> {
        let mut rules = String::from("table ip ikelink {\n");
        if self.options.drop_fragments {
            // Priority -450 runs before conntrack defragmentation (-400): the fragments themselves are dropped.
            rules.push_str(
                "  chain prerouting_frag {\n    type filter hook prerouting priority -450; policy accept;\n    \
                 ip frag-off & 0x3fff != 0 counter drop\n  }\n",
            );
        }
        if self.options.nat {
            rules.push_str(
                "  chain postrouting_nat {\n    type nat hook postrouting priority srcnat; policy accept;\n    \
                 ip saddr 192.0.2.0/24 oifname \"eth1\" masquerade random\n  }\n  \
                 chain forward_filter {\n    type filter hook forward priority filter; policy drop;\n    \
                 ct state established,related accept\n    \
                 iifname \"eth0\" oifname \"eth1\" ip saddr 192.0.2.0/24 accept\n  }\n",
            );
        }
        rules.push_str("}\n");
        let path = self.dir.path().join("rtr.nft");
        std::fs::write(&path, rules).map_err(|e| HarnessError::io(&path, e))?;
        let p = path.to_string_lossy().into_owned();
        self.exec(Role::Rtr, &["nft", "-f", &p]).map(|_| ())
    }

    fn apply_iptables(&self) -> Result<()> {
        if self.options.drop_fragments {
            // Without nft we cannot hook before defragmentation; fine as long as rtr has no conntrack (no NAT).
            self.exec(Role::Rtr, &["iptables", "-t", "raw", "-A", "PREROUTING", "-f", "-j", "DROP"])?;
        }
        if self.options.nat {
            self.exec(
                Role::Rtr,
                &[
                    "iptables",
                    "-t",
                    "nat",
                    "-A",
                    "POSTROUTING",
                    "-s",
                    CLI_NET,
                    "-o",
                    "eth1",
                    "-j",
                    "MASQUERADE",
                    "--random",
                ],
            )?;
            self.exec(Role::Rtr, &["iptables", "-P", "FORWARD", "DROP"])?;
            self.exec(
                Role::Rtr,
                &["iptables", "-A", "FORWARD", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
            )?;
            self.exec(
                Role::Rtr,
                &["iptables", "-A", "FORWARD", "-i", "eth0", "-o", "eth1", "-s", CLI_NET, "-j", "ACCEPT"],
            )?;
        }
        Ok(())
    }

    /// The unique prefix of this testbed (`ikl<pid>x<n>`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The options it was built with.
    pub fn options(&self) -> &TestbedOptions {
        &self.options
    }

    /// Namespace name of `role`.
    pub fn ns(&self, role: Role) -> &str {
        &self.names[role.index()]
    }

    /// A scratch directory owned by the testbed (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn ip(&self, role: Role, args: &[&str]) -> Result<()> {
        process::run(ip().args(["-n", self.ns(role)]).args(args), DEFAULT_COMMAND_TIMEOUT).map(|_| ())
    }

    /// A `Command` running `program` inside the namespace of `role` (`ip netns exec <ns> program`). Whatever it
    /// spawns is killed when the testbed is dropped.
    pub fn command(&self, role: Role, program: &str) -> Command {
        let mut cmd = ip();
        cmd.args(["netns", "exec", self.ns(role), program]);
        cmd
    }

    /// Runs `args[0]` with `args[1..]` in `role`'s namespace, bounded by 30 s; non-zero exit is an error.
    pub fn exec(&self, role: Role, args: &[&str]) -> Result<Output> {
        self.exec_timeout(role, args, DEFAULT_COMMAND_TIMEOUT)
    }

    /// [`Testbed::exec`] with an explicit time bound.
    pub fn exec_timeout(&self, role: Role, args: &[&str], timeout: Duration) -> Result<Output> {
        let (program, rest) = args.split_first().ok_or_else(|| HarnessError::Setup("exec: empty command".into()))?;
        process::run(self.command(role, program).args(rest), timeout)
    }

    /// Like [`Testbed::exec_timeout`], but returns the output whatever the exit status.
    pub fn exec_unchecked(&self, role: Role, args: &[&str], timeout: Duration) -> Result<Output> {
        let (program, rest) = args.split_first().ok_or_else(|| HarnessError::Setup("exec: empty command".into()))?;
        process::run_unchecked(self.command(role, program).args(rest), timeout)
    }

    /// Starts `program args` in `role`'s namespace with stdin null and stdout/stderr piped (read them, or use
    /// [`Testbed::spawn_logged`] for long-running chatty processes). Killed on testbed drop if still running.
    pub fn spawn(&self, role: Role, program: &str, args: &[&str]) -> Result<Child> {
        let mut cmd = self.command(role, program);
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let command = process::describe(&cmd);
        cmd.spawn().map_err(|source| HarnessError::Spawn { command, source })
    }

    /// Like [`Testbed::spawn`], with stdout and stderr appended to `log`.
    pub fn spawn_logged(&self, role: Role, program: &str, args: &[&str], log: &Path) -> Result<Child> {
        let open =
            || std::fs::OpenOptions::new().create(true).append(true).open(log).map_err(|e| HarnessError::io(log, e));
        let mut cmd = self.command(role, program);
        cmd.args(args).stdin(Stdio::null()).stdout(open()?).stderr(open()?);
        let command = process::describe(&cmd);
        cmd.spawn().map_err(|source| HarnessError::Spawn { command, source })
    }

    /// Pings `addr` from `from` `count` times (200 ms apart, 1 s reply wait, hard deadline); `true` if at least
    /// one reply came back.
    pub fn ping(&self, from: Role, addr: Ipv4Addr, count: u32) -> Result<bool> {
        Ok(self.ping_received(from, addr, count)? > 0)
    }

    /// Number of echo replies out of `count` pings (see [`Testbed::ping`]).
    pub fn ping_received(&self, from: Role, addr: Ipv4Addr, count: u32) -> Result<u32> {
        let count = count.clamp(1, 1000);
        let deadline = (count / 5 + 2).to_string();
        let (c, a) = (count.to_string(), addr.to_string());
        let out = self.exec_unchecked(
            from,
            &["ping", "-n", "-q", "-c", &c, "-i", "0.2", "-W", "1", "-w", &deadline, &a],
            Duration::from_secs(u64::from(count / 5 + 10)),
        )?;
        let text = String::from_utf8_lossy(&out.stdout);
        // "3 packets transmitted, 3 received, ..."
        let received = text
            .lines()
            .find(|l| l.contains("packets transmitted"))
            .and_then(|l| l.split(", ").nth(1))
            .and_then(|s| s.split_whitespace().next())
            .and_then(|n| n.parse::<u32>().ok());
        match received {
            Some(n) => Ok(n),
            None if out.status.code() == Some(2) || text.is_empty() => {
                // ping itself failed (e.g. "Network is unreachable"): nothing received.
                Ok(0)
            }
            None => Err(HarnessError::Parse { what: "ping".into(), detail: text.into_owned() }),
        }
    }

    /// Starts `iperf3 -s` on [`IPERF_PORT`] in `role` and waits (≤ 5 s) until it listens.
    pub fn start_iperf_server(&self, role: Role) -> Result<IperfServer> {
        self.start_iperf_server_on(role, IPERF_PORT)
    }

    /// [`Testbed::start_iperf_server`] on a given port.
    pub fn start_iperf_server_on(&self, role: Role, port: u16) -> Result<IperfServer> {
        let log = self.dir().join(format!("iperf3-{}-{port}.log", role.as_str()));
        let p = port.to_string();
        let listen = Listen::Tcp(port);
        let child = self.spawn_listening(role, "iperf3 server", "iperf3", &["-s", "-p", &p], &log, listen)?;
        Ok(IperfServer { child, port })
    }

    /// Serves the files of `dir` over HTTP on `addr:port` in `role`'s namespace (e.g. CRLs for the gateway's
    /// certificate), and waits (≤ 5 s) until it listens.
    pub fn start_http_server(&self, role: Role, dir: &Path, addr: Ipv4Addr, port: u16) -> Result<HttpServer> {
        let log = self.dir().join(format!("http-{}-{port}.log", role.as_str()));
        let (p, a, d) = (port.to_string(), addr.to_string(), dir.to_string_lossy().into_owned());
        let args = ["-m", "http.server", &p, "--bind", &a, "--directory", &d];
        let child = self.spawn_listening(role, "HTTP server", "python3", &args, &log, Listen::Tcp(port))?;
        Ok(HttpServer { child })
    }

    /// Starts a server (`program args`, output appended to `log`) in `role`'s namespace and waits (≤ 10 s) until
    /// something listens on `listen` there; stops it and fails if it exits first or never listens.
    pub fn spawn_listening(
        &self,
        role: Role,
        what: &str,
        program: &str,
        args: &[&str],
        log: &Path,
        listen: Listen,
    ) -> Result<Child> {
        let mut child = self.spawn_logged(role, program, args, log)?;
        let (flags, port) = match listen {
            Listen::Tcp(p) => ("-Hltn", p),
            Listen::Udp(p) => ("-Hlun", p),
        };
        let filter = format!("sport = :{port}");
        let waited = process::wait_until(
            &format!("{what} to listen"),
            Duration::from_secs(10),
            Duration::from_millis(50),
            || {
                if let Ok(Some(st)) = child.try_wait() {
                    let tail = std::fs::read_to_string(log).unwrap_or_default();
                    let tail: Vec<&str> = tail.lines().rev().take(10).collect();
                    let tail: Vec<&str> = tail.into_iter().rev().collect();
                    let detail = format!("exited with {st}:\n{}", tail.join("\n"));
                    return Err(HarnessError::Daemon { what: what.into(), detail });
                }
                let out = self.exec(role, &["ss", flags, &filter])?;
                Ok(!out.stdout.is_empty())
            },
        );
        if let Err(e) = waited {
            process::terminate(&mut child, Duration::from_secs(1));
            return Err(e);
        }
        Ok(child)
    }

    /// Sends `bytes` with iperf3 (TCP) from `from` to the server at `addr` (bounded by 60 s).
    pub fn iperf_client(&self, from: Role, addr: Ipv4Addr, bytes: u64) -> Result<IperfResult> {
        self.iperf_client_with(from, addr, &IperfOptions { bytes: Some(bytes), ..IperfOptions::default() })
    }

    /// iperf3 client run with explicit options.
    pub fn iperf_client_with(&self, from: Role, addr: Ipv4Addr, o: &IperfOptions) -> Result<IperfResult> {
        let a = addr.to_string();
        let port = o.port.to_string();
        let parallel = o.parallel.clamp(1, 64).to_string();
        let mut args: Vec<String> =
            ["iperf3", "-c", &a, "-p", &port, "-J", "--connect-timeout", "3000", "-P", &parallel]
                .iter()
                .map(|s| s.to_string())
                .collect();
        match o.bytes {
            Some(b) => args.extend(["-n".to_string(), b.to_string()]),
            None => args.extend(["-t".to_string(), o.seconds.clamp(1, 3600).to_string()]),
        }
        if o.reverse {
            args.push("-R".into());
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.exec_unchecked(from, &argv, o.timeout)?;
        let text = String::from_utf8_lossy(&out.stdout);
        let parsed = parse_iperf_json(&text);
        if !out.status.success() {
            return Err(process::failed(argv.join(" "), &out));
        }
        parsed
    }

    /// Starts `tcpdump` on `iface` in `role` with a BPF `filter` (e.g. `"udp"`), writing a pcap into the testbed
    /// directory. Stop it with [`Capture::finish`].
    pub fn start_capture(&self, role: Role, iface: &str, filter: &str) -> Result<Capture> {
        let pcap = self.dir().join(format!("{}-{}-{}.pcap", role.as_str(), iface, process::unique_prefix()));
        let log = pcap.with_extension("log");
        let p = pcap.to_string_lossy().into_owned();
        let mut args = vec!["-i", iface, "--immediate-mode", "-U", "-Z", "root", "-nn", "-w", &p, "-c", "1000000"];
        args.extend(filter.split_whitespace());
        let mut child = self.spawn_logged(role, "tcpdump", &args, &log)?;
        // tcpdump says "listening on ..." once the socket is open.
        let waited = process::wait_until("tcpdump to start", Duration::from_secs(5), Duration::from_millis(20), || {
            if let Ok(Some(st)) = child.try_wait() {
                return Err(HarnessError::Daemon {
                    what: "tcpdump".into(),
                    detail: format!("exited with {st}: {}", std::fs::read_to_string(&log).unwrap_or_default()),
                });
            }
            Ok(std::fs::read_to_string(&log).unwrap_or_default().contains("listening on"))
        });
        if let Err(e) = waited {
            process::terminate(&mut child, Duration::from_secs(1));
            return Err(e);
        }
        Ok(Capture { child, pcap })
    }

    /// Captures UDP on `iface` in `role` while `f` runs, and returns the (src port, dst port) pairs seen.
    pub fn capture_udp_ports<T>(
        &self,
        role: Role,
        iface: &str,
        f: impl FnOnce() -> T,
    ) -> Result<(T, BTreeSet<(u16, u16)>)> {
        let cap = self.start_capture(role, iface, "udp")?;
        let t = f();
        std::thread::sleep(Duration::from_millis(200));
        let text = cap.finish()?;
        Ok((t, udp_ports(&text)))
    }

    /// Number of fragments `rtr` dropped (nft counter; `None` without `drop_fragments` or nft).
    pub fn dropped_fragments(&self) -> Result<Option<u64>> {
        if !self.options.drop_fragments || !self.nft {
            return Ok(None);
        }
        let out = self.exec(Role::Rtr, &["nft", "list", "chain", "ip", "ikelink", "prerouting_frag"])?;
        let text = String::from_utf8_lossy(&out.stdout);
        let n = text.split_whitespace().skip_while(|w| *w != "packets").nth(1).and_then(|n| n.parse().ok());
        Ok(n)
    }

    /// PIDs of processes currently inside the namespace `name`.
    fn ns_pids(name: &str) -> Vec<u32> {
        process::run(ip().args(["netns", "pids", name]), DEFAULT_COMMAND_TIMEOUT)
            .map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().filter_map(|p| p.parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Kills (TERM, then KILL after ≤ 2 s) every process in the given namespaces (all started by this harness),
    /// then deletes the namespaces.
    fn teardown_namespaces(names: &[String]) {
        let mut pids: Vec<u32> = names.iter().flat_map(|n| Self::ns_pids(n)).collect();
        pids.retain(|&p| p > 1 && p != std::process::id());
        for &p in &pids {
            process::signal(p, libc::SIGTERM);
        }
        let gone = |pids: &[u32], names: &[String]| {
            let still: Vec<u32> = names.iter().flat_map(|n| Self::ns_pids(n)).collect();
            pids.iter().all(|p| !still.contains(p))
        };
        if !pids.is_empty() {
            let _ = process::wait_until(
                "processes in testbed namespaces to exit",
                Duration::from_secs(2),
                Duration::from_millis(50),
                || Ok(gone(&pids, names)),
            );
            let still: Vec<u32> = names.iter().flat_map(|n| Self::ns_pids(n)).collect();
            for p in still.into_iter().filter(|p| pids.contains(p)) {
                process::signal(p, libc::SIGKILL);
            }
        }
        for n in names {
            let _ = process::run(ip().args(["netns", "del", n]), DEFAULT_COMMAND_TIMEOUT);
        }
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        let names = std::mem::take(&mut self.created);
        Self::teardown_namespaces(&names);
    }
}

/// Names of all namespaces currently present (`ip netns list`).
pub fn list_namespaces() -> Result<Vec<String>> {
    let out = process::run(ip().args(["netns", "list"]), DEFAULT_COMMAND_TIMEOUT)?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect())
}

/// Best-effort removal of namespaces and temp dirs with our prefix left by harness processes that died.
fn cleanup_stale() {
    let me = std::process::id();
    if let Ok(names) = list_namespaces() {
        let stale: Vec<String> = names
            .into_iter()
            .filter(|n| process::owner_pid(n).is_some_and(|pid| pid != me && !process::pid_exists(pid)))
            .take(1000)
            .collect();
        if !stale.is_empty() {
            eprintln!("harness: removing stale namespaces {stale:?}");
            Testbed::teardown_namespaces(&stale);
        }
    }
    process::cleanup_stale_dirs();
}

fn parse_iperf_json(text: &str) -> Result<IperfResult> {
    let perr = |detail: String| HarnessError::Parse { what: "iperf3 -J".into(), detail };
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| perr(format!("{e}: {text:.300}")))?;
    if let Some(err) = v.get("error").and_then(|e| e.as_str()) {
        return Err(perr(format!("iperf3 error: {err}")));
    }
    let end = v.get("end").ok_or_else(|| perr("no `end` object".into()))?;
    let num = |section: &str, key: &str| end.get(section).and_then(|s| s.get(key));
    let f = |section: &str, key: &str| -> Result<f64> {
        num(section, key).and_then(|x| x.as_f64()).ok_or_else(|| perr(format!("missing end.{section}.{key}")))
    };
    let u = |section: &str, key: &str| -> Result<u64> {
        num(section, key)
            .and_then(|x| x.as_u64().or_else(|| x.as_f64().map(|f| f as u64)))
            .ok_or_else(|| perr(format!("missing end.{section}.{key}")))
    };
    Ok(IperfResult {
        bits_per_second: f("sum_received", "bits_per_second")?,
        bytes: u("sum_received", "bytes")?,
        sent_bits_per_second: f("sum_sent", "bits_per_second")?,
        sent_bytes: u("sum_sent", "bytes")?,
        retransmits: num("sum_sent", "retransmits").and_then(|x| x.as_u64()),
    })
}

/// The `(bytes)` counters of `ip -s xfrm state` ("5321896(bytes), 3720(packets)" under "lifetime current:").
pub fn xfrm_bytes(xfrm: &str) -> Vec<u64> {
    xfrm.lines()
        .filter_map(|l| l.trim().strip_suffix("(packets)"))
        .filter_map(|l| l.split(',').next())
        .filter_map(|b| b.strip_suffix("(bytes)").and_then(|n| n.parse().ok()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_udp_ports() {
        let text = "10:00:00.000001 IP 192.0.2.2.500 > 203.0.113.2.500: isakmp: parent_sa ikev2_init[I]\n\
                    10:00:00.000002 IP 203.0.113.1.40001 > 203.0.113.2.4500: NONESP-encap: isakmp: child_sa\n\
                    10:00:00.000003 IP 203.0.113.1.40001 > 203.0.113.2.4500: UDP-encap: ESP(spi=0x1,seq=0x1), length 100\n\
                    10:00:00.000004 IP 192.0.2.2 > 198.51.100.2: ICMP echo request, id 1, seq 1, length 64\n\
                    10:00:00.000005 IP 192.0.2.2.1234 > 192.0.2.1.53: UDP, length 10\n";
        let p = udp_ports(text);
        assert!(p.contains(&(500, 500)));
        assert!(p.contains(&(40001, 4500)));
        assert!(p.contains(&(1234, 53)));
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn parses_iperf_json() {
        let j = r#"{"start":{},"end":{"sum_sent":{"bytes":2097152,"bits_per_second":1.5e8,"retransmits":0},
                   "sum_received":{"bytes":2097152,"bits_per_second":1.2e8}}}"#;
        let r = parse_iperf_json(j).unwrap();
        assert_eq!(r.bytes, 2097152);
        assert_eq!(r.sent_bytes, 2097152);
        assert!((r.bits_per_second - 1.2e8).abs() < 1.0);
        assert_eq!(r.retransmits, Some(0));
        assert!(parse_iperf_json(r#"{"error":"unable to connect"}"#).is_err());
        assert!(parse_iperf_json("garbage").is_err());
    }
}
