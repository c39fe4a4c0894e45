//! Interop of the FFI edge (crate `ikelink-ffi`) against a real strongSwan gateway: the generated Python
//! bindings drive a `VpnClient` from a stand-in VPN app (`tests/ffi/vpn_app.py`) in the client namespace. Its TUN
//! provider opens /dev/net/tun the way Android's VpnService.Builder would, its socket protector records the
//! descriptors it gets. Needs root, python3 and the built workspace (`cargo build --workspace --all-targets`);
//! runs when IKELINK_INTEROP=1 (scripts/test.sh sets it).
#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ikelink_testbed::harness::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(20);
/// The app's own hard deadline (SIGALRM), longer than every wait here.
const APP_DEADLINE_SECS: u64 = 90;

/// `target/debug` (or wherever cargo put this test binary's profile directory).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/debug/deps/interop_ffi-<hash>
    exe.parent().and_then(Path::parent).expect("target profile directory").to_path_buf()
}

/// Runs the crate's own uniffi-bindgen (library mode, on the built cdylib) for `language` into `out`.
fn bindgen(language: &str, out: &Path) {
    let target = profile_dir();
    let lib = target.join("libikelink_ffi.so");
    let bindgen = target.join("uniffi-bindgen");
    for f in [&lib, &bindgen] {
        assert!(f.exists(), "{} missing: run `cargo build --workspace --all-targets` first", f.display());
    }
    assert_built_after_sources(&lib);
    std::fs::create_dir_all(out).unwrap();
    let mut cmd = Command::new(&bindgen);
    cmd.args(["generate", "--library"]).arg(&lib).args(["--language", language, "--no-format", "--out-dir"]).arg(out);
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start uniffi-bindgen");
    let status = wait_child_timeout(&mut child, Duration::from_secs(120)).unwrap();
    if status.is_none() {
        let _ = child.kill();
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        status.is_some_and(|s| s.success()),
        "uniffi-bindgen ({language}) failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `cargo test -p ikelink-testbed` does not rebuild the cdylib: refuse to test one older than its sources.
fn assert_built_after_sources(lib: &Path) {
    let built = std::fs::metadata(lib).and_then(|m| m.modified()).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut stack = vec![root.join("bindings/src"), root.join("core/src")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::metadata(&p).and_then(|m| m.modified()).is_ok_and(|t| t > built) {
                panic!("{} is older than {}: run `cargo build --workspace --all-targets`", lib.display(), p.display());
            }
        }
    }
}

/// Generates the Python bindings into `dir`, next to a copy of the cdylib (where the module loads it from).
fn generate_python(dir: &Path) -> PathBuf {
    let out = dir.join("python");
    bindgen("python", &out);
    assert!(out.join("ikelink_ffi.py").exists(), "no Python module generated");
    std::fs::copy(profile_dir().join("libikelink_ffi.so"), out.join("libikelink_ffi.so")).unwrap();
    out
}

/// Every file under `dir`, relative path -> contents.
fn files(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut all = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                all.insert(p.strip_prefix(dir).unwrap().to_path_buf(), std::fs::read(&p).unwrap());
            }
        }
    }
    all
}

/// The committed Kotlin and Swift sources are what the current crate generates (`bindings/generate.sh`).
#[test]
fn committed_bindings_are_current() {
    ikelink_testbed::require_interop!();
    struct Scratch(PathBuf);
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let tmp = Scratch(std::env::temp_dir().join(format!("ikelink-ffi-bindgen-{}", std::process::id())));
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bindings/generated");
    for language in ["kotlin", "swift"] {
        let out = tmp.0.join(language);
        bindgen(language, &out);
        let (fresh, saved) = (files(&out), files(&committed.join(language)));
        assert!(!fresh.is_empty());
        assert!(fresh == saved, "bindings/generated/{language} is stale: run bindings/generate.sh");
    }
}

/// The running app: its JSON lines, its stdin, killed by PID if still running when dropped.
struct App {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<Value>>>,
    log: PathBuf,
}

impl App {
    fn start(tb: &Testbed, python: &Path, good: &Path, bad: &Path) -> App {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ffi/vpn_app.py");
        let log = tb.dir().join("vpn_app.log");
        let stderr = std::fs::File::create(&log).unwrap();
        let mut cmd = tb.command(Role::Cli, "python3");
        cmd.arg(&script).arg(python).arg(good).arg(bad).arg(APP_DEADLINE_SECS.to_string());
        cmd.env("PYTHONDONTWRITEBYTECODE", "1");
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(stderr);
        let mut child = cmd.spawn().expect("start python3 in the client namespace");
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                let v =
                    serde_json::from_str(&line).unwrap_or_else(|_| serde_json::json!({"kind": "raw", "line": line}));
                sink.lock().unwrap().push(v);
            }
        });
        App { child, stdin, lines, log }
    }

    fn all(&self, kind: &str) -> Vec<Value> {
        self.lines.lock().unwrap().iter().filter(|v| v["kind"] == kind).cloned().collect()
    }

    fn transcript(&self) -> String {
        let lines: Vec<String> = self.lines.lock().unwrap().iter().map(|v| v.to_string()).collect();
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        format!("--- app events\n{}\n--- app log\n{log}", lines.join("\n"))
    }

    /// Waits for the `n`-th (1-based) line of `kind`; fails early if the app failed or exited.
    fn wait(&mut self, kind: &str, n: usize) -> Value {
        let deadline = Instant::now() + T;
        loop {
            if let Some(v) = self.all(kind).get(n - 1) {
                return v.clone();
            }
            let failed = !self.all("fail").is_empty();
            let exited = self.child.try_wait().unwrap().is_some();
            if failed || exited || Instant::now() > deadline {
                // The reader thread may still hold the last lines.
                std::thread::sleep(Duration::from_millis(200));
                panic!("no {kind} #{n} (failed={failed}, exited={exited})\n{}", self.transcript());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn send(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{command}").and_then(|()| stdin.flush()).unwrap();
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.stdin = None;
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill(); // by PID: the python3 process `ip netns exec` became
        }
        let _ = self.child.wait();
    }
}

#[test]
fn python_app_connects_through_the_ffi_and_carries_traffic() {
    ikelink_testbed::require_interop!();
    let started = Instant::now();
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    let mut gw = Gateway::start(&tb, &GatewayConfig::default()).unwrap();
    assert!(!tb.ping(Role::Cli, LAN_ADDR, 1).unwrap(), "the LAN must be reachable only through the tunnel");
    let python = generate_python(tb.dir());
    let good = psk_profile(None, None, &[LAN_NET]);
    let bad = good.replace(DEFAULT_PSK, "not-the-gateway-psk-0123456789");
    assert_ne!(good, bad);
    let (good_path, bad_path) = (tb.dir().join("good.toml"), tb.dir().join("wrong-psk.toml"));
    std::fs::write(&good_path, good).unwrap();
    std::fs::write(&bad_path, bad).unwrap();

    let mut app = App::start(&tb, &python, &good_path, &bad_path);
    let connected = app.wait("connected", 1);
    let vip = connected["virtual_ipv4"].as_str().unwrap_or_default().to_string();
    assert!(vip.starts_with("100.64.0."), "virtual IP from the pool: {connected}\n{}", app.transcript());
    assert_eq!(connected["routes"], serde_json::json!([LAN_NET]), "{connected}");
    assert_eq!(app.all("already_connected").len(), 1, "a second connect is refused\n{}", app.transcript());
    let tun_up = app.wait("tunnel_up", 1);
    let status = app.wait("status", 1);
    assert_eq!(status["state"], "CONNECTED", "{status}");

    // The TUN provider was asked once, with what the gateway assigned.
    let opened = app.all("open_tun");
    assert_eq!(opened.len(), 1, "{}", app.transcript());
    let o = &opened[0];
    assert_eq!(o["ipv4"], format!("{vip}/32"), "{o}");
    assert_eq!(o["mtu"], 1400, "{o}");
    assert_eq!(o["routes"], serde_json::json!([LAN_NET]), "{o}");
    assert_eq!(o["dns"], serde_json::json!(["198.51.100.53", "198.51.100.54"]), "{o}");
    assert_eq!(o["gateway"], GW_ADDR.to_string(), "{o}");
    assert_eq!(tun_up["interface"], o["interface"], "the driver uses the app's device: {tun_up}");

    // Every socket was protected: IKE, NAT-T and the route probe, all UDP (that this happens before the
    // first datagram is checked by the driver's unit test `every_socket_is_protected_before_it_sends`).
    let protected = app.all("protect");
    assert!(protected.len() >= 3, "{}", app.transcript());
    assert!(protected.iter().all(|p| p["udp"] == true && p["fd"].as_i64().is_some_and(|fd| fd >= 0)), "{protected:?}");

    gw.wait_for_sa_count(1, T).unwrap();
    assert_eq!(gw.sa_count().unwrap(), 1);
    assert!(gw.leased_vips().unwrap().contains(&vip), "{:?}", gw.leased_vips());
    assert!(tb.ping(Role::Cli, LAN_ADDR, 3).unwrap(), "ping through the FFI tunnel\n{}", app.transcript());
    app.send("stats");
    let stats = app.wait("stats", 1);
    assert!(stats["packets_in"].as_u64().is_some_and(|n| n >= 1), "ESP replies counted: {stats}");
    assert!(stats["packets_out"].as_u64().is_some_and(|n| n >= 1), "{stats}");

    // The gateway drops us: the session reconnects by itself, and keeps the TUN if nothing changed.
    gw.terminate_all().unwrap();
    let reconnecting = app.wait("reconnecting", 1);
    assert_eq!(reconnecting["reason"]["type"], "ClosedByGateway", "{reconnecting}");
    let again = app.wait("connected", 2);
    assert_eq!(again["virtual_ipv4"], connected["virtual_ipv4"], "strongSwan leases the same address again");
    assert_eq!(app.all("open_tun").len(), 1, "same settings: the TUN is reused\n{}", app.transcript());
    gw.wait_for_sa_count(1, T).unwrap();
    assert!(tb.ping(Role::Cli, LAN_ADDR, 3).unwrap(), "ping after the reconnect\n{}", app.transcript());

    // Now with another pool (address and DNS): after the reconnect the TUN provider is asked again.
    let pool = Pool { dns: vec!["198.51.100.53".into()], ..Pool::new("pool1", "100.64.0.100-100.64.0.110") };
    let cfg = GatewayConfig { pools: vec![pool], ..GatewayConfig::default() };
    gw.reconfigure(&cfg).unwrap();
    gw.terminate_all().unwrap();
    app.wait("reconnecting", 2);
    let third = app.wait("connected", 3);
    let vip = third["virtual_ipv4"].as_str().unwrap_or_default().to_string();
    assert!(vip.starts_with("100.64.0.1") && vip != "100.64.0.1", "from the new pool: {third}");
    let opened = app.all("open_tun");
    assert_eq!(opened.len(), 2, "new settings: the TUN is asked for again\n{}", app.transcript());
    assert_eq!(opened[1]["ipv4"], format!("{vip}/32"), "{}", opened[1]);
    assert_eq!(opened[1]["dns"], serde_json::json!(["198.51.100.53"]), "{}", opened[1]);
    assert_eq!(app.wait("tunnel_up", 2)["interface"], opened[1]["interface"]);
    gw.wait_for_sa_count(1, T).unwrap();
    assert!(tb.ping(Role::Cli, LAN_ADDR, 3).unwrap(), "ping through the new TUN\n{}", app.transcript());
    // The first device is gone: the app closed its descriptor and the driver its copy.
    let first = o["interface"].as_str().unwrap().to_string();
    wait_until("the first TUN device to disappear", T, Duration::from_millis(100), || {
        Ok(!tb.exec_unchecked(Role::Cli, &["ip", "link", "show", &first], T)?.status.success())
    })
    .unwrap();
    // The app reports a network change (MOBIKE with an unchanged path): the tunnel stays.
    app.send("network_changed");
    app.wait("network_changed", 1);
    assert!(tb.ping(Role::Cli, LAN_ADDR, 3).unwrap(), "ping after network_changed\n{}", app.transcript());
    assert_eq!(gw.sa_count().unwrap(), 1);
    let o = app.all("open_tun").last().cloned().unwrap();

    app.send("disconnect");
    let closed = app.wait("closed", 1);
    assert!(closed["error"].is_null(), "clean disconnect: {closed}");
    gw.wait_for_sa_count(0, T).unwrap();
    let iface = o["interface"].as_str().unwrap().to_string();
    // Both descriptors (the app's and the driver's copy) are closed, so the device is gone.
    wait_until("the TUN device to disappear", T, Duration::from_millis(100), || {
        let out = tb.exec_unchecked(Role::Cli, &["ip", "link", "show", &iface], T)?;
        Ok(!out.status.success())
    })
    .unwrap();
    assert!(!tb.ping(Role::Cli, LAN_ADDR, 1).unwrap(), "no route to the LAN after disconnect");
    assert_eq!(app.wait("status", 2)["state"], "DISCONNECTED");
    assert_eq!(app.all("not_connected").len(), 1, "{}", app.transcript());

    // The same client with the wrong PSK: a typed error event, no TUN, no crash.
    let failed = app.wait("closed", 2);
    assert_eq!(failed["error"]["type"], "AuthenticationFailed", "{failed}\n{}", app.transcript());
    assert_eq!(app.wait("status", 3)["last_error"]["type"], "AuthenticationFailed");
    assert_eq!(gw.sa_count().unwrap(), 0);
    // The app's TUN provider throws: a typed platform error, and the SAs negotiated meanwhile are deleted.
    app.wait("open_tun_refused", 1);
    let refused = app.wait("closed", 3);
    assert_eq!(refused["error"]["type"], "Platform", "{refused}");
    assert!(refused["error"]["message"].as_str().is_some_and(|m| m.contains("revoked")), "{refused}");
    gw.wait_for_sa_count(0, T).unwrap();
    assert_eq!(app.wait("invalid_options", 1)["error"]["type"], "InvalidOptions");
    let invalid = app.wait("invalid_profile", 1);
    assert!(invalid["error"]["message"].as_str().is_some_and(|m| m.contains("auth.method")), "{invalid}");
    // Dropped while connected (no disconnect call): the gateway gets our Delete, no SA lingers.
    app.wait("ready_for_drop", 1);
    assert_eq!(gw.sa_count().unwrap(), 0);
    let deletes_before = gw.log().matches("received DELETE for IKE_SA").count();
    app.send("drop");
    app.wait("connected_before_drop", 1);
    app.wait("done", 1);
    gw.wait_for_sa_count(0, Duration::from_secs(5)).unwrap();
    // No TUN for the failed attempts; one for this last connection.
    assert_eq!(app.all("open_tun").len(), opened.len() + 1, "{}", app.transcript());
    let deletes = gw.log().matches("received DELETE for IKE_SA").count();
    assert_eq!(deletes, deletes_before + 1, "the drop sent a Delete\n{}", app.transcript());
    let status = wait_child_timeout(&mut app.child, T).unwrap();
    assert!(status.is_some_and(|s| s.success()), "the app exits cleanly: {status:?}\n{}", app.transcript());
    assert!(app.all("fail").is_empty(), "{}", app.transcript());
    let vips: Vec<String> = app.all("connected").iter().map(|c| c["virtual_ipv4"].to_string()).collect();
    eprintln!(
        "interop_ffi: {:.1} s, virtual IPs {vips:?}, TUN opened {} time(s), {} socket(s) protected",
        started.elapsed().as_secs_f64(),
        app.all("open_tun").len(),
        app.all("protect").len()
    );
}
