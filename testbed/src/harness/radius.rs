//! A FreeRADIUS server for the gateway (`eap-radius`): the corporate setup where the VPN gateway relays EAP to
//! a RADIUS server (Windows NPS, FreeRADIUS) that runs PEAP, EAP-TTLS or EAP-MSCHAPv2 itself. It runs in the
//! gateway's namespace on 127.0.0.1:1812 with Debian's stock configuration, copied to a private directory and
//! changed only where the test needs it: the gateway's certificate for the TLS-based methods, the test user,
//! the default EAP type, and no switch to the `freerad` user.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use super::error::{HarnessError, Result};
use super::pki::Pki;
use super::process;
use super::testbed::{Listen, Role, Testbed};
use super::{EAP_PASSWORD, EAP_USER};

/// Where Debian's freeradius package keeps its configuration.
pub const FREERADIUS_CONF: &str = "/etc/freeradius/3.0";
/// The shared secret between the gateway and the RADIUS server (the stock `localhost` client's).
pub const RADIUS_SECRET: &str = "testing123";
/// The RADIUS authentication port, on 127.0.0.1 in the gateway's namespace.
pub const RADIUS_PORT: u16 = 1812;

/// A running FreeRADIUS (`freeradius -X`, its debug output in `radius.log`). Stopped on drop.
#[derive(Debug)]
pub struct Radius {
    child: Option<Child>,
    dir: PathBuf,
}

fn edit(path: &Path, f: impl FnOnce(String) -> Result<String>) -> Result<()> {
    let text = std::fs::read_to_string(path).map_err(|e| HarnessError::io(path, e))?;
    std::fs::write(path, f(text)?).map_err(|e| HarnessError::io(path, e))
}

/// Replaces the value of every `key = ...` line (any indentation) with `value`; fails if there is none.
fn set(text: String, key: &str, value: &str) -> Result<String> {
    let mut found = false;
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            let t = l.trim_start();
            let is_key = t.strip_prefix(key).is_some_and(|r| r.trim_start().starts_with('='));
            if is_key {
                found = true;
                let indent = &l[..l.len() - t.len()];
                format!("{indent}{key} = {value}")
            } else {
                l.to_string()
            }
        })
        .collect();
    if !found {
        return Err(HarnessError::Setup(format!("FreeRADIUS configuration: no `{key}` to set")));
    }
    Ok(out.join("\n") + "\n")
}

/// Comments out every `key = ...` line.
fn unset(text: String, key: &str) -> String {
    text.lines()
        .map(|l| {
            let t = l.trim_start();
            if t.strip_prefix(key).is_some_and(|r| r.trim_start().starts_with('=')) {
                format!("#{l}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

impl Radius {
    /// Whether FreeRADIUS is installed.
    pub fn available() -> bool {
        Path::new(FREERADIUS_CONF).join("radiusd.conf").exists()
    }

    /// Starts FreeRADIUS in the gateway's namespace, its EAP module defaulting to `default_eap` ("peap",
    /// "ttls", "mschapv2"...), with `pki`'s gateway certificate for TLS, and waits (≤ 10 s) until it listens.
    pub fn start(tb: &Testbed, pki: &Pki, default_eap: &str) -> Result<Radius> {
        Radius::start_with(tb, pki, default_eap, "1.2")
    }

    /// [`Radius::start`] with the highest TLS version ("1.2", "1.3") its TLS-based EAP methods accept.
    pub fn start_with(tb: &Testbed, pki: &Pki, default_eap: &str, tls_max: &str) -> Result<Radius> {
        let dir = tb.dir().join("radius");
        let raddb = dir.join("raddb");
        std::fs::create_dir_all(&dir).map_err(|e| HarnessError::io(&dir, e))?;
        let conf = FREERADIUS_CONF.to_string();
        let target = raddb.to_string_lossy().into_owned();
        process::run(Command::new("cp").args(["-a", &conf, &target]), Duration::from_secs(30))?;
        let d = |p: &Path| format!("\"{}\"", p.display());
        edit(&raddb.join("radiusd.conf"), |t| {
            let t = set(t, "raddbdir", &d(&raddb))?;
            let t = set(t, "logdir", &d(&dir))?;
            let t = set(t, "run_dir", &d(&dir))?;
            Ok(unset(unset(t, "user"), "group"))
        })?;
        edit(&raddb.join("mods-available").join("eap"), |t| {
            let t = set(t, "default_eap_type", default_eap)?;
            let t = set(t, "private_key_file", &d(&pki.gw_key))?;
            let t = set(t, "certificate_file", &d(&pki.gw_cert))?;
            let t = set(t, "ca_file", &d(&pki.ca_cert))?;
            let t = set(t, "tls_max_version", &format!("\"{tls_max}\""))?;
            Ok(unset(t, "private_key_password"))
        })?;
        let users = raddb.join("mods-config").join("files").join("authorize");
        edit(&users, |t| Ok(format!("\"{EAP_USER}\" Cleartext-Password := \"{EAP_PASSWORD}\"\n\n{t}")))?;

        let log = dir.join("radius.log");
        let args = ["-X", "-d", &target];
        let child = tb.spawn_listening(Role::Gw, "FreeRADIUS", "freeradius", &args, &log, Listen::Udp(RADIUS_PORT))?;
        Ok(Radius { child: Some(child), dir })
    }

    /// The server's debug output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("radius.log")).unwrap_or_default()
    }

    /// SIGTERM, SIGKILL after 2 s; by PID of the child we started.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            process::terminate(&mut c, Duration::from_secs(2));
        }
    }
}

impl Drop for Radius {
    fn drop(&mut self) {
        self.stop();
    }
}
