//! Our own client (`ikelink connect`) run in the client namespace, with its output collected line by line.
//!
//! The client namespace gets a private `/etc/netns/<ns>/resolv.conf` (bind-mounted by `ip netns exec` over
//! `/etc/resolv.conf`), so the client's DNS changes never touch the host's file.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::error::{HarnessError, Result};
use super::process::{signal, wait_child_timeout};
use super::testbed::{Role, Testbed, GW_ADDR};
use super::{CLIENT_ID, DEFAULT_PSK, GW_ID};

/// The resolv.conf the client namespace starts with.
pub const NETNS_RESOLV_CONF: &str = "nameserver 192.0.2.1\n";

/// A PSK profile for the testbed's gateway. `ike`/`esp` are strongSwan proposal strings (defaults if `None`).
pub fn psk_profile(ike: Option<&str>, esp: Option<&str>, remote_ts: &[&str]) -> String {
    let mut p = format!(
        "[gateway]\naddress = \"{GW_ADDR}\"\nid = \"{GW_ID}\"\n\n[local]\nid = \"{CLIENT_ID}\"\n\n[auth]\nmethod = \"psk\"\npsk = \"{DEFAULT_PSK}\"\n"
    );
    if ike.is_some() || esp.is_some() {
        p.push_str("\n[proposals]\n");
        if let Some(i) = ike {
            p.push_str(&format!("ike = [\"{i}\"]\n"));
        }
        if let Some(e) = esp {
            p.push_str(&format!("esp = [\"{e}\"]\n"));
        }
    }
    let ts: Vec<String> = remote_ts.iter().map(|t| format!("\"{t}\"")).collect();
    p.push_str(&format!("\n[tunnel]\nremote_ts = [{}]\n", ts.join(", ")));
    p
}

/// A running `ikelink connect`.
pub struct IkelinkClient {
    child: Option<Child>,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    netns_etc: PathBuf,
    /// The profile file used.
    pub profile: PathBuf,
    /// The state directory (journal of network changes).
    pub state_dir: PathBuf,
}

fn collect(r: impl std::io::Read + Send + 'static, sink: Arc<Mutex<Vec<String>>>) {
    thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(|l| l.ok()) {
            if let Ok(mut v) = sink.lock() {
                v.push(line);
            }
        }
    });
}

impl IkelinkClient {
    /// Write `profile_toml` into the testbed's directory and start `binary connect --profile ...` in the client
    /// namespace, with `args` appended (e.g. `--no-tun`).
    pub fn start(tb: &Testbed, binary: &Path, profile_toml: &str, args: &[&str]) -> Result<IkelinkClient> {
        let netns_etc = PathBuf::from("/etc/netns").join(tb.ns(Role::Cli));
        std::fs::create_dir_all(&netns_etc).map_err(|source| HarnessError::Io { path: netns_etc.clone(), source })?;
        let resolv = netns_etc.join("resolv.conf");
        if !resolv.exists() {
            std::fs::write(&resolv, NETNS_RESOLV_CONF).map_err(|source| HarnessError::Io { path: resolv, source })?;
        }
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let profile = tb.dir().join(format!("profile-{n}.toml"));
        std::fs::write(&profile, profile_toml).map_err(|source| HarnessError::Io { path: profile.clone(), source })?;
        let state_dir = tb.dir().join("ikelink-state");
        let mut cmd = tb.command(Role::Cli, &binary.to_string_lossy());
        cmd.arg("connect").arg("--profile").arg(&profile).arg("--state-dir").arg(&state_dir);
        cmd.args(args);
        cmd.env("RUST_LOG", std::env::var("IKELINK_CLIENT_LOG").unwrap_or_else(|_| "info".into()));
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|source| HarnessError::Spawn { command: format!("{cmd:?}"), source })?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        if let Some(o) = child.stdout.take() {
            collect(o, lines.clone());
        }
        if let Some(e) = child.stderr.take() {
            collect(e, stderr.clone());
        }
        Ok(IkelinkClient { child: Some(child), lines, stderr, netns_etc, profile, state_dir })
    }

    /// All stdout lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// stdout and the tail of stderr, for assertion messages.
    pub fn transcript(&self) -> String {
        let err = self.stderr.lock().map(|v| v.clone()).unwrap_or_default();
        let tail = err.len().saturating_sub(40);
        format!("--- stdout\n{}\n--- stderr (tail)\n{}", self.lines().join("\n"), err[tail..].join("\n"))
    }

    /// Everything the client logged (stderr), for counting log events.
    pub fn log(&self) -> String {
        self.stderr.lock().map(|v| v.join("\n")).unwrap_or_default()
    }

    /// The value of the first `key: value` line.
    pub fn value(&self, key: &str) -> Option<String> {
        let prefix = format!("{key}: ");
        self.lines().iter().find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
    }

    /// The last `key: value` line.
    pub fn last_value(&self, key: &str) -> Option<String> {
        let prefix = format!("{key}: ");
        self.lines().iter().rev().find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
    }

    /// Wait for a stdout line matching `pred`.
    pub fn wait_line(&mut self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> Result<String> {
        let start = Instant::now();
        loop {
            if let Some(l) = self.lines().into_iter().find(|l| pred(l)) {
                return Ok(l);
            }
            if start.elapsed() > timeout {
                return Err(HarnessError::WaitTimeout { what: format!("{what}\n{}", self.transcript()), timeout });
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    // Give the reader thread a moment to take the last lines.
                    thread::sleep(Duration::from_millis(100));
                    if let Some(l) = self.lines().into_iter().find(|l| pred(l)) {
                        return Ok(l);
                    }
                    return Err(HarnessError::WaitTimeout {
                        what: format!("{what} (client exited with {st})\n{}", self.transcript()),
                        timeout,
                    });
                }
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait until the client prints `connected`; an `error:` line fails.
    pub fn wait_connected(&mut self, timeout: Duration) -> Result<()> {
        let l = self.wait_line("connected", timeout, |l| l == "connected" || l.starts_with("error:"))?;
        if l.starts_with("error:") {
            return Err(HarnessError::WaitTimeout {
                what: format!("connected, got {l}\n{}", self.transcript()),
                timeout,
            });
        }
        Ok(())
    }

    /// Send a signal to the client (by its PID).
    pub fn signal(&self, sig: i32) {
        // `ip netns exec` execs the program: the PID of the child we spawned is the client's own.
        if let Some(c) = self.child.as_ref() {
            signal(c.id(), sig);
        }
    }

    /// Wait for the client to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let Some(c) = self.child.as_mut() else {
            return Err(HarnessError::WaitTimeout { what: "client exit (already reaped)".into(), timeout });
        };
        match wait_child_timeout(c, timeout)? {
            Some(st) => {
                self.child = None;
                thread::sleep(Duration::from_millis(100));
                Ok(st)
            }
            None => Err(HarnessError::WaitTimeout { what: format!("client exit\n{}", self.transcript()), timeout }),
        }
    }

    /// Ctrl-C and wait (bounded) for a clean exit.
    pub fn interrupt(&mut self, timeout: Duration) -> Result<ExitStatus> {
        self.signal(libc::SIGINT);
        self.wait_exit(timeout)
    }

    /// SIGKILL: the client gets no chance to clean up (crash simulation).
    pub fn kill9(&mut self) -> Result<ExitStatus> {
        self.signal(libc::SIGKILL);
        self.wait_exit(Duration::from_secs(5))
    }
}

static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Drop for IkelinkClient {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), libc::SIGKILL);
            let _ = wait_child_timeout(&mut c, Duration::from_secs(5));
        }
        if let Ok(profile) = std::fs::read_to_string(&self.profile) {
            super::matrix::record(&profile, &self.lines());
        }
        let _ = std::fs::remove_dir_all(&self.netns_etc);
    }
}

/// Give the client namespace its own resolv.conf (bind-mounted by `ip netns exec`), so DNS changes stay inside.
pub fn private_resolv(tb: &Testbed) {
    let dir = Path::new("/etc/netns").join(tb.ns(Role::Cli));
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join("resolv.conf"), NETNS_RESOLV_CONF);
}

/// A ping from the client to `addr` running in the background (10 per second, `count` of them).
pub fn start_ping(tb: &Testbed, addr: std::net::Ipv4Addr, count: u32) -> Result<Child> {
    let mut cmd = tb.command(Role::Cli, "ping");
    cmd.args(["-n", "-q", "-i", "0.1", "-W", "1", "-c", &count.to_string(), &addr.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    cmd.spawn().map_err(|source| HarnessError::Spawn { command: format!("{cmd:?}"), source })
}

/// Wait for a ping from [`start_ping`]; returns its summary and the number of replies.
pub fn finish_ping(child: Child) -> Result<(String, u32)> {
    let out =
        child.wait_with_output().map_err(|source| HarnessError::Spawn { command: "wait for ping".into(), source })?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // "400 packets transmitted, 400 received, 0% packet loss, time ..."
    let received =
        text.lines().find_map(|l| l.split(", ").nth(1)?.strip_suffix(" received")?.parse().ok()).unwrap_or(0);
    Ok((text, received))
}
