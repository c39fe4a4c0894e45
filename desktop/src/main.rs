//! `ikelink`: the desktop command-line client.
//!
//! `ikelink connect --profile FILE` establishes the IKE SA and the first Child SA, prints what was negotiated,
//! and disconnects cleanly (sending a Delete) on Ctrl-C or SIGTERM. On failure it prints one line starting with
//! `error:` and exits with status 1.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use ikelink::driver::{ReconnectPolicy, Session, SessionError, SessionEvent, SessionOptions, Stats};
use ikelink::ike::ts_to_cidrs;
use ikelink::ike::CloseReason;
use ikelink::profile::Profile;
use ikelink::wire::TrafficSelector;
use tokio::sync::mpsc;

#[derive(Parser)]
#[command(name = "ikelink", version, about = "Ikelink IKEv2/IPsec VPN client")]
struct Cli {
    /// More logging (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Connect with a profile and stay connected until Ctrl-C / SIGTERM.
    Connect {
        /// The TOML profile (see README.md).
        #[arg(long, short)]
        profile: PathBuf,
        /// Negotiate the SAs only: no TUN device, no traffic.
        #[arg(long)]
        no_tun: bool,
        /// Bring up the TUN but leave routes and DNS alone.
        #[arg(long)]
        no_network: bool,
        /// TUN device name.
        #[arg(long)]
        tun_name: Option<String>,
        /// TUN MTU.
        #[arg(long, default_value_t = 1400)]
        mtu: u16,
        /// Journal of network changes, for recovery after a crash.
        #[arg(long, default_value_os_t = ikelink::platform::default_state_dir())]
        state_dir: PathBuf,
        /// Print a `stats:` line every this many seconds.
        #[arg(long)]
        stats_interval: Option<u64>,
        /// Exit when an established tunnel fails instead of reconnecting.
        #[arg(long)]
        no_reconnect: bool,
        /// Longest wait between reconnection attempts, in seconds.
        #[arg(long, default_value_t = 60)]
        reconnect_max_delay: u64,
    },
    /// Show the state of the running client: what was negotiated and the traffic counters.
    Status {
        /// The running client's --state-dir.
        #[arg(long, default_value_os_t = ikelink::platform::default_state_dir())]
        state_dir: PathBuf,
    },
    /// Check a profile and print what it resolves to, without connecting.
    Check {
        #[arg(long, short)]
        profile: PathBuf,
    },
    /// Convert a strongSwan app profile (.sswan) or an Apple configuration profile (.mobileconfig, IKEv2) into an
    /// Ikelink profile, written with its certificates.
    Import {
        /// The .sswan file (JSON, as strongSwan's Android and Apple apps import) or the .mobileconfig (XML or
        /// binary property list, signed or not).
        file: PathBuf,
        /// Where to write the profile and its files (created if missing; existing files are not replaced).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "error",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();

    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            println!("error: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Connect {
                profile,
                no_tun,
                no_network,
                tun_name,
                mtu,
                state_dir,
                stats_interval,
                no_reconnect,
                reconnect_max_delay,
            } => {
                let options = SessionOptions {
                    data_plane: !no_tun,
                    tun_name,
                    mtu,
                    configure_network: !no_network,
                    state_dir,
                    // Counters refresh the status file every 5 s; `stats:` lines only when asked for.
                    stats_interval: Some(Duration::from_secs(stats_interval.unwrap_or(5).max(1))),
                    watch_network: Some(Duration::from_secs(1)),
                    reconnect: (!no_reconnect).then(|| ReconnectPolicy {
                        max_delay: Duration::from_secs(reconnect_max_delay.max(1)),
                        ..ReconnectPolicy::default()
                    }),
                };
                connect(profile, options, stats_interval.is_some()).await
            }
            Command::Check { profile } => check(profile),
            Command::Import { file, dir } => import(&file, &dir),
            Command::Status { state_dir } => status(&state_dir),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn import(file: &std::path::Path, dir: &std::path::Path) -> Result<(), String> {
    // Larger than any profile (a few certificates at most).
    const MAX_SIZE: u64 = 16 << 20;
    let size = std::fs::metadata(file).map_err(|e| format!("{}: {e}", file.display()))?.len();
    if size > MAX_SIZE {
        return Err(format!("{}: {size} bytes is too large for a profile", file.display()));
    }
    let data = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let dir = dir.canonicalize().map_err(|e| format!("{}: {e}", dir.display()))?;
    let imported = if is_mobileconfig(file, &data) {
        ikelink_desktop::mobileconfig::import_mobileconfig(&data, &dir).map_err(|e| e.to_string())?
    } else {
        let json = String::from_utf8(data).map_err(|_| format!("{}: not a .sswan (JSON) file", file.display()))?;
        ikelink_desktop::sswan::import_sswan(&json, &dir).map_err(|e| e.to_string())?
    };
    let profile = dir.join(format!("{}.toml", imported.name));
    let mut outputs = vec![(profile.clone(), imported.toml.into_bytes())];
    outputs.extend(imported.files.into_iter().map(|(name, data)| (dir.join(name), data)));
    if let Some((p, _)) = outputs.iter().find(|(p, _)| p.exists()) {
        return Err(format!("{} exists; not replacing it", p.display()));
    }
    for (path, data) in &outputs {
        write_private(path, data).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    for w in &imported.warnings {
        println!("warning: {w}");
    }
    // The result must load as a profile.
    Profile::load(&profile).map_err(|e| format!("the imported profile does not load: {e}"))?;
    println!("profile: {}", profile.display());
    Ok(())
}

/// An Apple configuration profile: by its extension, else by its content (a property list or a CMS wrapper;
/// a `.sswan` file is JSON).
fn is_mobileconfig(file: &std::path::Path, data: &[u8]) -> bool {
    match file.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("mobileconfig") => true,
        Some("sswan") => false,
        _ => {
            let start = data.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(data.len());
            !data[start..].starts_with(b"{")
        }
    }
}

/// Creates a file readable only by its owner (it may hold a password or a key).
fn write_private(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)?.write_all(data)
}

fn check(path: PathBuf) -> Result<(), String> {
    let profile = Profile::load(&path).map_err(|e| e.to_string())?;
    let r = profile.resolve().map_err(|e| e.to_string())?;
    if r.kill_switch && !ikelink::platform::KILL_SWITCH_SUPPORTED {
        return Err(ikelink::platform::PlatformError::KillSwitchUnsupported.to_string());
    }
    println!("gateway: {}", r.gateway);
    println!("profile ok");
    Ok(())
}

/// `ikelink status`: print the status file a running client keeps in its state directory.
fn status(state_dir: &std::path::Path) -> Result<(), String> {
    match std::fs::read_to_string(state_dir.join("status")) {
        Ok(text) => {
            print!("{text}");
            Ok(())
        }
        Err(_) => Err(format!("no running client with state directory {}", state_dir.display())),
    }
}

/// What `ikelink status` shows: the connection block and the latest counters, rewritten on each change.
struct StatusFile {
    path: PathBuf,
    connection: Vec<String>,
    stats: String,
}

impl StatusFile {
    fn write(&self) {
        let mut text = self.connection.join("\n");
        text.push('\n');
        if !self.stats.is_empty() {
            text.push_str(&self.stats);
            text.push('\n');
        }
        let tmp = self.path.with_extension("tmp");
        if std::fs::write(&tmp, text).is_ok() {
            let _ = std::fs::rename(&tmp, &self.path);
        }
    }
}

impl Drop for StatusFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Print a line and keep it for the status file.
fn say(status: &mut StatusFile, line: String) {
    println!("{line}");
    status.connection.push(line);
}

fn fmt_ts(ts: &[TrafficSelector]) -> String {
    ts.iter().flat_map(ts_to_cidrs).map(|c| c.to_string()).collect::<Vec<_>>().join(",")
}

fn stats_line(s: &Stats) -> String {
    format!(
        "stats: packets_out={} bytes_out={} packets_in={} bytes_in={} drop_replay={} drop_auth={} drop_malformed={} drop_padding={} drop_selector={} drop_no_sa={} drop_other={} rx_coalesced={}",
        s.packets_out, s.bytes_out, s.packets_in, s.bytes_in, s.drop_replay, s.drop_auth, s.drop_malformed,
        s.drop_padding, s.drop_selector, s.drop_no_sa, s.drop_other, s.rx_coalesced
    )
}

/// A request to end the process other than Ctrl-C: SIGTERM on Unix, the console window closing on Windows.
struct Terminate {
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
    #[cfg(windows)]
    signal: tokio::signal::windows::CtrlClose,
}

impl Terminate {
    fn watch() -> Result<Terminate, String> {
        #[cfg(unix)]
        let signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
        #[cfg(windows)]
        let signal = tokio::signal::windows::ctrl_close();
        Ok(Terminate { signal: signal.map_err(|e| format!("cannot watch for termination: {e}"))? })
    }

    async fn recv(&mut self) -> Option<()> {
        self.signal.recv().await
    }
}

/// How the CLI ends when the session closed: cleanly after our own disconnect; otherwise it prints why
/// (`closed: ...` when the gateway or the network ended the tunnel) and fails.
fn closed(reason: &CloseReason<SessionError>) -> Result<(), String> {
    match reason {
        CloseReason::Local => Ok(()),
        CloseReason::Error(e) => Err(e.to_string()),
        CloseReason::DeletedByPeer
        | CloseReason::Redirected(_)
        | CloseReason::NetworkChanged
        | CloseReason::Reauthenticated => {
            println!("closed: {reason}");
            Err(reason.to_string())
        }
    }
}

async fn connect(path: PathBuf, options: SessionOptions, print_stats: bool) -> Result<(), String> {
    let profile = Profile::load(&path).map_err(|e| e.to_string())?;
    let resolved = profile.resolve().map_err(|e| e.to_string())?;
    println!("connecting: {} as {}", resolved.gateway, ikelink::ike::display_identity(&resolved.ike.local_id));
    // Created 0700, or an existing one checked (owner, mode): recovery replays, as root, the journals in it. An
    // unsafe one is always an error; one we cannot create (not root) only when routes and DNS need it.
    match ikelink::platform::create_state_dir(&options.state_dir) {
        Ok(()) => {}
        Err(e @ ikelink::platform::PlatformError::UnsafeStateDir { .. }) => return Err(e.to_string()),
        Err(e) if options.data_plane && options.configure_network => return Err(e.to_string()),
        Err(e) => tracing::warn!(error = %e, "no state directory: `ikelink status` will not see this client"),
    }
    let mut status =
        StatusFile { path: options.state_dir.join("status"), connection: Vec::new(), stats: String::new() };
    let (tx, mut rx) = mpsc::channel(16);
    let session = Session::start(resolved, options, tx).await.map_err(|e| e.to_string())?;

    let mut sigterm = Terminate::watch()?;
    let mut stopping = false;
    let outcome = loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(SessionEvent::Connected { info, child }) => {
                    status.connection.retain(|l| l.starts_with("tunnel:"));
                    let st = &mut status;
                    say(
                        st,
                        format!(
                            "ike: {} spi_i={:016x} spi_r={:016x}{}",
                            info.ike_suite,
                            info.spi_i,
                            info.spi_r,
                            info.post_quantum_summary()
                        ),
                    );
                    say(st, format!("esp: {} spi_in={:08x} spi_out={:08x}", child.suite, child.spi_in, child.spi_out));
                    say(st, format!("local-id: {}", info.local_id));
                    say(st, format!("remote-id: {}", info.remote_id));
                    if let Some(ip) = info.config.ipv4 {
                        say(st, format!("virtual-ip: {ip}"));
                    }
                    if let Some((ip, p)) = info.config.ipv6 {
                        say(st, format!("virtual-ip6: {ip}/{p}"));
                    }
                    if !info.config.dns.is_empty() {
                        let dns: Vec<String> = info.config.dns.iter().map(|d| d.to_string()).collect();
                        say(st, format!("dns: {}", dns.join(",")));
                    }
                    say(st, format!("ts: local={} remote={}", fmt_ts(&child.ts_i), fmt_ts(&child.ts_r)));
                    let nat = &info.nat;
                    say(st, format!("nat: local={} remote={} encap={}", nat.local_behind_nat, nat.remote_behind_nat, nat.any()));
                    say(st, format!("transport: {}", info.transport));
                    say(st, "connected".into());
                    st.write();
                }
                Some(SessionEvent::State(s)) => tracing::info!(?s, "state"),
                Some(SessionEvent::TunnelUp { tun, mtu, routes, dns }) => {
                    let dns: Vec<String> = dns.iter().map(|d| d.to_string()).collect();
                    say(&mut status, format!("tunnel: dev={tun} mtu={mtu} routes={} dns={}", routes.join(","), dns.join(",")));
                }
                Some(SessionEvent::Stats(s)) => {
                    status.stats = stats_line(&s);
                    status.write();
                    if print_stats {
                        println!("{}", status.stats);
                    }
                }
                Some(SessionEvent::Reconnecting { attempt, delay, reason }) => {
                    let line = format!("reconnecting: attempt={attempt} delay={:.1}s reason={reason}", delay.as_secs_f64());
                    println!("{line}");
                    status.connection.push(line);
                    status.write();
                }
                Some(SessionEvent::ChildSaRekeyed { old_spi_in, child }) => {
                    println!(
                        "rekeyed: old_spi_in={old_spi_in:08x} esp={} spi_in={:08x} spi_out={:08x}",
                        child.suite, child.spi_in, child.spi_out
                    );
                }
                Some(SessionEvent::ChildSaDeleted { inbound_spi, outbound_spi }) => {
                    println!("child-deleted: spi_in={inbound_spi:08x} spi_out={outbound_spi:08x}");
                }
                Some(SessionEvent::Closed(reason)) => break closed(&reason),
                None => break Err("session ended unexpectedly".into()),
            },
            _ = tokio::signal::ctrl_c(), if !stopping => { stopping = true; println!("disconnecting"); break Ok(()) }
            _ = sigterm.recv(), if !stopping => { stopping = true; println!("disconnecting"); break Ok(()) }
        }
    };
    match outcome {
        Ok(()) if stopping => {
            session.disconnect().await.map_err(|e| e.to_string())?;
            // Drain the final events for the last counters and the Closed reason.
            while let Ok(ev) = rx.try_recv() {
                match ev {
                    SessionEvent::Stats(s) => println!("{}", stats_line(&s)),
                    SessionEvent::Closed(reason) => closed(&reason)?,
                    _ => {}
                }
            }
            println!("disconnected");
            Ok(())
        }
        Ok(()) => {
            println!("disconnected");
            Ok(())
        }
        Err(e) => {
            let _ = session.join().await;
            Err(e)
        }
    }
}
