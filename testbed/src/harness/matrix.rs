//! The interop matrix (issue 11): with `IKELINK_MATRIX=<file>`, every run of our client in the interop tests
//! appends one JSON line (test, gateway and its version, how each side authenticated, the result, the suites
//! negotiated); `scripts/interop-matrix.sh` runs the interop tests that way and renders `docs/interop.md`, so
//! what the matrix claims is what the tests saw.

use std::cell::RefCell;
use std::io::Write;
use std::sync::OnceLock;

thread_local! {
    /// The gateway the current test talks to, when it is not the default strongSwan one.
    static GATEWAY: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Name the gateway implementation (with its version) the current test thread's client talks to, e.g.
/// `libreswan 4.10`. Without a call the test's gateway is Debian's strongSwan.
pub fn set_gateway(label: &str) {
    GATEWAY.with(|g| *g.borrow_mut() = Some(label.to_owned()));
}

/// The upstream version of a Debian package (`5.9.8` of `5.9.8-5+deb12u1`): installed, or else the one apt
/// would fetch (libreswan is unpacked from a downloaded package, not installed).
pub fn package_version(package: &str) -> Option<String> {
    package_version_in(None, package)
}

/// [`package_version`] of the Debian system in `root` (e.g. strongSwan 6's Debian 13 root), or of this machine.
pub fn package_version_in(root: Option<&std::path::Path>, package: &str) -> Option<String> {
    let out = |cmd: &str, args: &[&str]| {
        std::process::Command::new(cmd).args(args).output().ok().and_then(|o| String::from_utf8(o.stdout).ok())
    };
    let admindir = root.map(|r| format!("--admindir={}", r.join("var/lib/dpkg").display()));
    let mut query: Vec<&str> = admindir.iter().map(String::as_str).collect();
    query.extend(["-W", "-f=${Version}", package]);
    let fetchable = || {
        out("apt-cache", &["show", package])
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Version: ").map(str::to_owned)))
    };
    let installed = out("dpkg-query", &query).filter(|v| !v.trim().is_empty());
    let v = if root.is_some() { installed } else { installed.or_else(fetchable) }?;
    let upstream = v.trim().split_once(':').map_or(v.trim(), |(_, rest)| rest);
    upstream.split('-').next().map(str::to_owned)
}

/// Debian's strongSwan, with its version.
fn strongswan() -> String {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION
        .get_or_init(|| match package_version("strongswan-charon") {
            Some(v) => format!("strongSwan {v}"),
            None => "strongSwan".into(),
        })
        .clone()
}

/// How the profile authenticates us and the gateway, in the matrix's words (`psk`, `cert`, `eap-mschapv2`...).
fn auth_of(profile: &toml::Table) -> (String, String) {
    let get = |section: &str, key: &str| {
        profile.get(section).and_then(|s| s.get(key)).and_then(|v| v.as_str()).map(str::to_owned)
    };
    let method = get("auth", "method").unwrap_or_else(|| "?".into());
    let ours = match method.as_str() {
        "eap" => {
            let m = get("auth", "eap_method").unwrap_or_else(|| "any".into());
            match get("auth", "ttls_inner") {
                Some(inner) => format!("eap-{m}/{inner}"),
                None => format!("eap-{m}"),
            }
        }
        m => m.to_owned(),
    };
    let gateway = get("gateway", "auth").unwrap_or_else(|| if method == "psk" { "psk".into() } else { "cert".into() });
    (ours, gateway)
}

/// What the `ike:` line adds after the SPIs (`pq-fallback=classical`, `ppk=used`...), if anything.
fn post_quantum(lines: &[String]) -> Option<String> {
    let ike = lines.iter().find_map(|l| l.strip_prefix("ike: "))?;
    let extra: Vec<&str> = ike.split_whitespace().skip(1).filter(|w| !w.starts_with("spi_")).collect();
    (!extra.is_empty()).then(|| extra.join(" "))
}

/// Record one client run (called when the client is dropped, with its whole output) if `IKELINK_MATRIX` names
/// a file.
pub(crate) fn record(profile_toml: &str, lines: &[String]) {
    let Ok(path) = std::env::var("IKELINK_MATRIX") else { return };
    let Ok(profile) = profile_toml.parse::<toml::Table>() else { return };
    let (client_auth, gateway_auth) = auth_of(&profile);
    let value = |key: &str| {
        let prefix = format!("{key}: ");
        // The suite only (the SPIs that follow differ from run to run).
        lines.iter().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.split_whitespace().next()).map(str::to_owned)
    };
    let result = if lines.iter().any(|l| l == "connected") {
        "connected".to_owned()
    } else if let Some(e) = lines.iter().find_map(|l| l.strip_prefix("error: ")) {
        format!("refused: {e}")
    } else {
        return; // stopped before any result
    };
    let gateway = GATEWAY.with(|g| g.borrow().clone()).unwrap_or_else(strongswan);
    let row = serde_json::json!({
        "test": std::thread::current().name().unwrap_or("?"),
        "gateway": gateway,
        "client_auth": client_auth,
        "gateway_auth": gateway_auth,
        "result": result,
        "ike": value("ike"),
        "esp": value("esp"),
        "nat": value("nat"),
        "transport": value("transport").or_else(|| {
            // Not connected: what the profile asked for (`udp` when it says nothing).
            let asked = profile.get("gateway").and_then(|g| g.get("transport")).and_then(|v| v.as_str());
            Some(format!("{} (asked)", asked.unwrap_or("udp")))
        }),
        "pq": post_quantum(lines),
    });
    // One write per line: tests in other processes append to the same file at the same time.
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(&path) {
        let _ = f.write_all(format!("{row}\n").as_bytes());
    }
}
