//! A userspace WireGuard tunnel between the client and the gateway namespaces: boringtun-cli on both ends (this
//! kernel has no WireGuard module), configured with `wg` (wireguard-tools) through boringtun's UAPI socket
//! `/var/run/wireguard/<ifname>.sock`, addresses and routes with `ip`. The benchmark (`ikelink-bench`, part (e))
//! compares our client's CPU cost with it.
//!
//! Layout: client `100.64.9.2/24` on its WireGuard interface, gateway `100.64.9.1/24`, the gateway's boringtun
//! listening on [`WG_PORT`] of `GW_ADDR`; the client routes the given networks (the LAN) into the tunnel and its
//! peer allows them; the gateway forwards (the testbed enables forwarding) and the LAN host's default route
//! already points at the gateway, so replies to `100.64.9.2` go back through the tunnel.
//!
//! boringtun-cli runs with its defaults (`--threads` 4, one multi-queue TUN queue per thread, connected UDP
//! sockets) except `--foreground --disable-drop-privileges`. The binary is `target/tools/boringtun/bin/boringtun-cli`
//! (scripts/install-deps.sh installs it, pinned to [`BORINGTUN_VERSION`]) or `$IKELINK_BORINGTUN`.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::error::{HarnessError, Result};
use super::process::{self, wait_until, DEFAULT_COMMAND_TIMEOUT};
use super::testbed::{Role, Testbed, GW_ADDR};

/// The boringtun-cli version scripts/install-deps.sh installs.
pub const BORINGTUN_VERSION: &str = "0.7.1";
/// UDP port of the gateway's boringtun.
pub const WG_PORT: u16 = 51820;
/// The client's tunnel address.
pub const WG_CLI_ADDR: Ipv4Addr = Ipv4Addr::new(100, 64, 9, 2);
/// The gateway's tunnel address.
pub const WG_GW_ADDR: Ipv4Addr = Ipv4Addr::new(100, 64, 9, 1);
/// The tunnel's network (inside 100.64.0.0/16, apart from the strongSwan pool `VIP_NET`).
pub const WG_NET: &str = "100.64.9.0/24";
/// MTU of both WireGuard interfaces: wg-quick's default (1500 - 80).
pub const WG_MTU: u32 = 1420;
/// Where boringtun creates its UAPI sockets (not per namespace: interface names must differ between the ends).
const SOCK_DIR: &str = "/var/run/wireguard";
/// boringtun's environment knobs, removed so its defaults apply whatever the caller's environment holds.
const BORINGTUN_ENV: [&str; 6] = ["WG_THREADS", "WG_LOG_LEVEL", "WG_UAPI_FD", "WG_TUN_FD", "WG_LOG_FILE", "WG_SUDO"];

/// boringtun-cli: `$IKELINK_BORINGTUN`, else `target/tools/boringtun/bin/boringtun-cli` of this checkout.
pub fn boringtun_bin() -> PathBuf {
    match std::env::var_os("IKELINK_BORINGTUN") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("target")
            .join("tools")
            .join("boringtun")
            .join("bin")
            .join("boringtun-cli"),
    }
}

/// Checks that boringtun-cli and `wg` are there; the error names the install script.
pub fn check_boringtun() -> Result<PathBuf> {
    let bin = boringtun_bin();
    let hint = "run scripts/install-deps.sh (it installs wireguard-tools and cargo-installs boringtun-cli into \
                target/tools/boringtun)";
    if !bin.is_file() {
        return Err(HarnessError::Setup(format!("boringtun-cli not found at {}: {hint}", bin.display())));
    }
    let bin = bin.canonicalize().unwrap_or(bin);
    let which = process::run(std::process::Command::new("sh").args(["-c", "command -v wg"]), DEFAULT_COMMAND_TIMEOUT);
    if which.is_err() {
        return Err(HarnessError::Setup(format!("`wg` (wireguard-tools) not found: {hint}")));
    }
    Ok(bin)
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// One end: the boringtun process and its interface.
#[derive(Debug)]
struct End {
    role: Role,
    ifname: String,
    child: Child,
}

impl End {
    fn sock(&self) -> PathBuf {
        Path::new(SOCK_DIR).join(format!("{}.sock", self.ifname))
    }
}

/// A running boringtun tunnel between the client and the gateway namespaces. Dropping it stops both processes
/// (their interfaces, addresses and routes go with them).
#[derive(Debug)]
pub struct WireguardTunnel {
    ends: Vec<End>,
}

impl WireguardTunnel {
    /// Starts boringtun in the client and the gateway namespaces, keys them, and routes `routes` (e.g. the LAN)
    /// from the client into the tunnel. Returns once both UAPI sockets answer and the configuration is applied (the
    /// handshake happens with the first packet).
    pub fn start(tb: &Testbed, routes: &[&str]) -> Result<WireguardTunnel> {
        let bin = check_boringtun()?;
        let bin = bin.to_string_lossy().into_owned();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let base = format!("wg{}t{n}", std::process::id());
        let mut tunnel = WireguardTunnel { ends: Vec::new() };
        for (role, suffix) in [(Role::Gw, 'g'), (Role::Cli, 'c')] {
            let ifname = format!("{base}{suffix}");
            if ifname.len() > 15 {
                return Err(HarnessError::Setup(format!("interface name {ifname} is longer than 15 bytes")));
            }
            let log = tb.dir().join(format!("boringtun-{}.log", role.as_str()));
            let mut cmd = tb.command(role, &bin);
            cmd.args(["--foreground", "--disable-drop-privileges", &ifname]);
            for v in BORINGTUN_ENV {
                cmd.env_remove(v);
            }
            let open = || {
                std::fs::OpenOptions::new().create(true).append(true).open(&log).map_err(|e| HarnessError::io(&log, e))
            };
            cmd.stdin(std::process::Stdio::null()).stdout(open()?).stderr(open()?);
            let command = process::describe(&cmd);
            let child = cmd.spawn().map_err(|source| HarnessError::Spawn { command, source })?;
            tunnel.ends.push(End { role, ifname, child });
        }
        // Both UAPI sockets up (bounded), while both processes live.
        for i in 0..tunnel.ends.len() {
            let sock = tunnel.ends[i].sock();
            let what = format!("boringtun UAPI socket {}", sock.display());
            wait_until(&what, Duration::from_secs(10), Duration::from_millis(20), || {
                let end = &mut tunnel.ends[i];
                if let Ok(Some(st)) = end.child.try_wait() {
                    let log = tb.dir().join(format!("boringtun-{}.log", end.role.as_str()));
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    return Err(HarnessError::Daemon {
                        what: format!("boringtun-cli in {}", end.role.as_str()),
                        detail: format!("exited with {st}: {}", text.trim()),
                    });
                }
                Ok(sock.exists())
            })?;
        }
        tunnel.configure(tb, routes)?;
        Ok(tunnel)
    }

    fn end(&self, role: Role) -> &End {
        self.ends.iter().find(|e| e.role == role).expect("both ends exist")
    }

    fn configure(&self, tb: &Testbed, routes: &[&str]) -> Result<()> {
        let (gw, cli) = (self.end(Role::Gw), self.end(Role::Cli));
        let mut public = Vec::new();
        for end in [gw, cli] {
            let key = tb.exec(end.role, &["wg", "genkey"])?;
            let path = tb.dir().join(format!("wg-{}.key", end.role.as_str()));
            write_private(&path, &key.stdout)?;
            let p = path.to_string_lossy().into_owned();
            tb.exec(end.role, &["wg", "set", &end.ifname, "private-key", &p])?;
            // boringtun's UAPI `get` reports no private key, so `wg show` cannot derive the public one: `wg pubkey`.
            let out = tb.exec(end.role, &["sh", "-c", "wg pubkey < \"$0\"", &p])?;
            let pk = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if pk.len() != 44 {
                return Err(HarnessError::Parse { what: "wg pubkey".into(), detail: pk });
            }
            public.push(pk);
        }
        let (gw_pub, cli_pub) = (&public[0], &public[1]);
        let port = WG_PORT.to_string();
        let cli_allowed = format!("{WG_CLI_ADDR}/32");
        tb.exec(
            Role::Gw,
            &["wg", "set", &gw.ifname, "listen-port", &port, "peer", cli_pub, "allowed-ips", &cli_allowed],
        )?;
        let mut allowed = vec![WG_NET.to_string()];
        allowed.extend(routes.iter().map(|r| r.to_string()));
        let allowed = allowed.join(",");
        let endpoint = format!("{GW_ADDR}:{WG_PORT}");
        tb.exec(
            Role::Cli,
            &["wg", "set", &cli.ifname, "peer", gw_pub, "endpoint", &endpoint, "allowed-ips", &allowed],
        )?;
        let mtu = WG_MTU.to_string();
        for (end, addr) in [(gw, WG_GW_ADDR), (cli, WG_CLI_ADDR)] {
            let a = format!("{addr}/24");
            tb.exec(end.role, &["ip", "addr", "add", &a, "dev", &end.ifname])?;
            tb.exec(end.role, &["ip", "link", "set", &end.ifname, "mtu", &mtu, "up"])?;
        }
        for r in routes {
            tb.exec(Role::Cli, &["ip", "route", "add", r, "dev", &cli.ifname])?;
        }
        Ok(())
    }

    /// PID of the client's boringtun-cli.
    pub fn client_pid(&self) -> u32 {
        self.end(Role::Cli).child.id()
    }

    /// PID of the gateway's boringtun-cli.
    pub fn gateway_pid(&self) -> u32 {
        self.end(Role::Gw).child.id()
    }

    /// The client's WireGuard interface.
    pub fn client_ifname(&self) -> &str {
        &self.end(Role::Cli).ifname
    }

    /// Number of threads of the client's boringtun-cli (from /proc).
    pub fn client_threads(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.client_pid())).map_or(0, |d| d.take(4096).count())
    }

    /// Bytes the client's peer received and sent (`wg show <if> dump`: transfer-rx, transfer-tx). (boringtun reports
    /// the handshake time as seconds since the handshake, not as a date, so it is no use as a "handshake done".)
    pub fn client_transfer(&self, tb: &Testbed) -> Result<(u64, u64)> {
        let cli = self.end(Role::Cli);
        let out = tb.exec(Role::Cli, &["wg", "show", &cli.ifname, "dump"])?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let perr = || HarnessError::Parse { what: "wg show dump".into(), detail: text.clone() };
        // First line: the interface; then one per peer: key psk endpoint allowed-ips handshake rx tx keepalive.
        let f: Vec<&str> = text.lines().nth(1).ok_or_else(perr)?.split('\t').collect();
        let num = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok());
        match (num(5), num(6)) {
            (Some(rx), Some(tx)) => Ok((rx, tx)),
            _ => Err(perr()),
        }
    }

    /// Stops both ends (SIGTERM, then SIGKILL after 5 s) and removes their UAPI sockets.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        for mut end in self.ends.drain(..) {
            process::terminate(&mut end.child, Duration::from_secs(5));
            let _ = std::fs::remove_file(end.sock());
        }
    }
}

impl Drop for WireguardTunnel {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn write_private(path: &Path, key: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| HarnessError::io(path, e))?;
    f.write_all(key).map_err(|e| HarnessError::io(path, e))
}
