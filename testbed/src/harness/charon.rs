//! One strongSwan `charon-systemd` daemon inside a namespace, with its own directory, config, vici socket and
//! log. Shared by [`super::Gateway`] and [`super::StrongswanClient`].

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use super::error::{HarnessError, Result};
use super::process::{self, TempDir, DEFAULT_COMMAND_TIMEOUT};
use super::testbed::{Role, Testbed};

/// The charon binary that has no hard-coded pid file (two instances can run side by side).
pub const CHARON_SYSTEMD: &str = "/usr/sbin/charon-systemd";
/// Where Debian installs the strongSwan plugins.
pub const PLUGIN_DIR: &str = "/usr/lib/ipsec/plugins";

/// Plugins we load, in order. `kernel-libipsec` (userspace ESP, the kernel has none) must come before
/// `kernel-netlink`; `resolve` is deliberately absent (it would rewrite /etc/resolv.conf). Plugins that are not
/// installed (Debian has no `eap-dynamic`) are skipped.
pub const PLUGINS: &[&str] = &[
    "random",
    "nonce",
    "x509",
    "revocation",
    "constraints",
    "pubkey",
    "pkcs1",
    "pkcs8",
    "pkcs12",
    "pem",
    "openssl",
    "gmp",
    "curve25519",
    "hmac",
    "kdf",
    "kernel-libipsec",
    "kernel-netlink",
    "socket-default",
    "vici",
    "updown",
    "attr",
    "eap-identity",
    "eap-mschapv2",
    "eap-md5",
    "eap-tls",
    "eap-ttls",
    "eap-radius",
    "eap-dynamic",
    "xauth-generic",
];

/// Sub-directories of a swanctl directory that `swanctl --load-all` scans.
const SWANCTL_SUBDIRS: &[&str] = &[
    "conf.d", "x509", "x509ca", "x509aa", "x509ocsp", "x509crl", "x509ac", "pubkey", "private", "rsa", "ecdsa",
    "bliss", "pkcs8", "pkcs12",
];

/// The plugins of [`PLUGINS`] that are installed.
pub fn available_plugins() -> Vec<&'static str> {
    PLUGINS.iter().copied().filter(|p| Path::new(PLUGIN_DIR).join(format!("libstrongswan-{p}.so")).exists()).collect()
}

/// How [`Charon::start_in`] runs charon.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CharonSetup<'a> {
    /// Without `kernel-libipsec`: ESP in the kernel's XFRM.
    pub(crate) kernel_esp: bool,
    /// The root of another Debian release to run charon from (chroot).
    pub(crate) root: Option<&'a Path>,
    /// Raw strongswan.conf lines for charon's section.
    pub(crate) extra: &'a str,
}

/// A running charon. Stopped (SIGTERM, then SIGKILL) on drop.
#[derive(Debug)]
pub(crate) struct Charon {
    what: String,
    ns: String,
    child: Option<Child>,
    dir: TempDir,
    vici: String,
}

impl Charon {
    /// Writes strongswan.conf and `swanctl_conf`, starts charon in `role`'s namespace, waits (≤ 10 s) for its
    /// vici socket and loads the configuration. `prepare` may install credentials into the swanctl dir first.
    pub(crate) fn start(
        tb: &Testbed,
        role: Role,
        what: &str,
        swanctl_conf: &str,
        prepare: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<Charon> {
        Self::start_with(tb, role, what, swanctl_conf, false, prepare)
    }

    /// [`Charon::start`]; with `kernel_esp` the `kernel-libipsec` plugin is left out, so `kernel-netlink` installs
    /// the SAs into the kernel's XFRM (needs a kernel with ESP, e.g. the VM of `scripts/vm-run.sh`).
    pub(crate) fn start_with(
        tb: &Testbed,
        role: Role,
        what: &str,
        swanctl_conf: &str,
        kernel_esp: bool,
        prepare: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<Charon> {
        Self::start_in(tb, role, what, swanctl_conf, &CharonSetup { kernel_esp, ..CharonSetup::default() }, prepare)
    }

    /// [`Charon::start_with`] with the variations of `setup`; with `setup.root`, the charon of another Debian
    /// release installed there (e.g. strongSwan 6.0.1 from [`strongswan6_root`]) runs chrooted into it, its
    /// directory bind-mounted at the same path. The mounts live in the private mount namespace `ip netns exec`
    /// gives the process and vanish with it.
    pub(crate) fn start_in(
        tb: &Testbed,
        role: Role,
        what: &str,
        swanctl_conf: &str,
        setup: &CharonSetup<'_>,
        prepare: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<Charon> {
        let CharonSetup { kernel_esp, root, extra: charon_extra } = *setup;
        if let (Some(r), Role::Gw) = (root, role) {
            let version = super::matrix::package_version_in(Some(r), "charon-systemd").unwrap_or_default();
            super::matrix::set_gateway(format!("strongSwan {version}").trim());
        }
        let dir = TempDir::new(&format!("{}-{}-charon", tb.prefix(), role.as_str()))?;
        let d = dir.path().to_path_buf();
        let vici = format!("unix://{}", d.join("charon.vici").display());
        let swanctl = d.join("swanctl");
        for sub in SWANCTL_SUBDIRS {
            let p = swanctl.join(sub);
            std::fs::create_dir_all(&p).map_err(|e| HarnessError::io(&p, e))?;
        }
        write(&d.join("strongswan.conf"), &strongswan_conf(&d, &vici, kernel_esp, root, charon_extra))?;
        write(&swanctl.join("swanctl.conf"), swanctl_conf)?;
        prepare(&swanctl)?;

        let out = std::fs::File::create(d.join("stdout.log")).map_err(|e| HarnessError::io(d.join("stdout.log"), e))?;
        let err = out.try_clone().map_err(|e| HarnessError::io(d.join("stdout.log"), e))?;
        let mut cmd = match root {
            None => {
                let mut cmd = tb.command(role, CHARON_SYSTEMD);
                cmd.env("STRONGSWAN_CONF", d.join("strongswan.conf"));
                cmd
            }
            Some(r) => {
                let (r, dd) = (r.display(), d.display());
                let script = format!(
                    "mount -t proc proc {r}/proc && mount --bind /dev {r}/dev && mount -t sysfs sysfs {r}/sys && \
                     mkdir -p {r}{dd} && mount --bind {dd} {r}{dd} && exec chroot {r} env -i \
                     PATH=/usr/sbin:/usr/bin:/sbin:/bin STRONGSWAN_CONF={dd}/strongswan.conf {CHARON_SYSTEMD}"
                );
                let mut cmd = tb.command(role, "sh");
                cmd.args(["-c", &script]);
                cmd
            }
        };
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let command = process::describe(&cmd);
        let child = cmd.spawn().map_err(|source| HarnessError::Spawn { command, source })?;
        let mut charon = Charon { what: what.to_string(), ns: tb.ns(role).to_string(), child: Some(child), dir, vici };
        let sock = d.join("charon.vici");
        process::wait_until(
            &format!("{what}: vici socket {}", sock.display()),
            Duration::from_secs(10),
            Duration::from_millis(20),
            || {
                charon.check_running()?;
                Ok(sock.exists())
            },
        )
        .map_err(|e| charon.with_log(e))?;
        charon.load_all().map_err(|e| charon.with_log(e))?;
        Ok(charon)
    }

    fn check_running(&mut self) -> Result<()> {
        let Some(child) = self.child.as_mut() else {
            return Err(HarnessError::Daemon { what: self.what.clone(), detail: "stopped".into() });
        };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(st)) => {
                Err(HarnessError::Daemon { what: self.what.clone(), detail: format!("charon exited with {st}") })
            }
            Err(e) => Err(HarnessError::Daemon { what: self.what.clone(), detail: e.to_string() }),
        }
    }

    /// Adds the log tail to an error, for readable test failures.
    pub(crate) fn with_log(&self, e: HarnessError) -> HarnessError {
        let log = self.log();
        let stdout = std::fs::read_to_string(self.dir.path().join("stdout.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        HarnessError::Daemon {
            what: self.what.clone(),
            detail: format!(
                "{e}\n--- charon stdout ---\n{stdout}\n--- charon log tail ({}) ---\n{}",
                self.log_path().display(),
                tail.join("\n")
            ),
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn vici_uri(&self) -> &str {
        &self.vici
    }

    pub(crate) fn swanctl_dir(&self) -> PathBuf {
        self.dir.path().join("swanctl")
    }

    pub(crate) fn namespace(&self) -> &str {
        &self.ns
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Runs `swanctl <args> --uri <vici>` (command first, as swanctl wants) bounded by `timeout`.
    pub(crate) fn swanctl_timeout(&self, args: &[&str], timeout: Duration) -> Result<Output> {
        let mut cmd = Command::new("swanctl");
        cmd.args(args)
            .args(["--uri", &self.vici])
            .env("STRONGSWAN_CONF", self.dir.path().join("strongswan.conf"))
            .env("SWANCTL_DIR", self.swanctl_dir());
        process::run(&mut cmd, timeout)
    }

    pub(crate) fn swanctl(&self, args: &[&str]) -> Result<Output> {
        self.swanctl_timeout(args, DEFAULT_COMMAND_TIMEOUT)
    }

    /// `swanctl --load-all`.
    pub(crate) fn load_all(&self) -> Result<()> {
        self.swanctl(&["--load-all"]).map(|_| ())
    }

    /// Rewrites swanctl.conf and reloads everything.
    pub(crate) fn reload(&self, swanctl_conf: &str) -> Result<()> {
        write(&self.swanctl_dir().join("swanctl.conf"), swanctl_conf)?;
        self.load_all()
    }

    pub(crate) fn list_sas(&self) -> Result<String> {
        let out = self.swanctl(&["--list-sas"])?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub(crate) fn list_sas_raw(&self) -> Result<String> {
        let out = self.swanctl(&["--list-sas", "--raw"])?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub(crate) fn log_path(&self) -> PathBuf {
        self.dir.path().join("charon.log")
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// SIGTERM, wait ≤ 5 s, SIGKILL; by PID of the child we started.
    pub(crate) fn stop(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            match process::terminate(&mut child, Duration::from_secs(5)) {
                Some(_) => {}
                None => {
                    return Err(HarnessError::Daemon {
                        what: self.what.clone(),
                        detail: format!("could not stop charon pid {}", child.id()),
                    })
                }
            }
        }
        Ok(())
    }

    /// SIGKILL (a crash: no Delete is sent), then reap; by PID of the child we started.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            process::signal(child.id(), libc::SIGKILL);
            let _ = process::wait_child_timeout(&mut child, Duration::from_secs(5));
        }
    }

    pub(crate) fn is_running(&mut self) -> bool {
        self.check_running().is_ok()
    }
}

impl Drop for Charon {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| HarnessError::io(path, e))
}

/// The Debian 13 root with strongSwan 6.0.1 (RFC 9370, IKE_INTERMEDIATE, PPK) under the workspace's `target/`,
/// made by `scripts/strongswan6-root.sh` on first use (debootstrap, ~40 s, ~300 MB) and reused.
pub fn strongswan6_root() -> Result<PathBuf> {
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = ws.join("target/strongswan6-trixie");
    if !root.join("usr/sbin/charon-systemd").exists() {
        let mut cmd = Command::new("bash");
        cmd.arg(ws.join("scripts/strongswan6-root.sh")).arg(&root);
        process::run(&mut cmd, Duration::from_secs(600))?;
    }
    Ok(root)
}

fn strongswan_conf(dir: &Path, vici: &str, kernel_esp: bool, root: Option<&Path>, charon_extra: &str) -> String {
    let d = dir.display();
    let mut plugins: Vec<&str> = match root {
        None => available_plugins(),
        Some(r) => PLUGINS
            .iter()
            .copied()
            .filter(|p| r.join(PLUGIN_DIR.trim_start_matches('/')).join(format!("libstrongswan-{p}.so")).exists())
            .collect(),
    };
    if kernel_esp {
        plugins.retain(|p| *p != "kernel-libipsec");
    }
    let plugins = plugins.join(" ");
    let (radius_port, radius_secret) = (super::radius::RADIUS_PORT, super::radius::RADIUS_SECRET);
    format!(
        r#"# generated by the ikelink interop harness
charon-systemd {{
  load = {plugins}
{charon_extra}
  plugins {{
    vici {{
      socket = {vici}
    }}
    openssl {{
      load_legacy = yes
    }}
    eap-ttls {{
      # The inner method of EAP-TTLS (RFC 5281 phase 2) that the gateway runs.
      phase2_method = mschapv2
    }}
    eap-radius {{
      # Used by connections with `auth = eap-radius` (see harness::Radius): EAP relayed to FreeRADIUS.
      servers {{
        local {{
          address = 127.0.0.1
          auth_port = {radius_port}
          secret = {radius_secret}
        }}
      }}
    }}
  }}
  filelog {{
    main {{
      path = {d}/charon.log
      append = no
      flush_line = yes
      time_format = %T
      default = 1
      ike = 2
      cfg = 2
      knl = 2
      enc = 2
    }}
  }}
  journal {{
    default = -1
  }}
  syslog {{
    daemon {{
      default = -1
    }}
  }}
}}
swanctl {{
  socket = {vici}
}}
"#
    )
}

/// Number of established IKE SAs in `swanctl --list-sas --raw` output (one `list-sa event` per IKE SA; the
/// first `state=` of an event is the IKE SA's, child states are never `ESTABLISHED`).
pub fn count_established(raw: &str) -> usize {
    raw.lines()
        .filter(|l| l.starts_with("list-sa event"))
        .filter(|l| l.split_whitespace().find_map(|w| w.strip_prefix("state=")).is_some_and(|s| s == "ESTABLISHED"))
        .count()
}

/// All values of `key=...` tokens in raw vici output (e.g. `local-vips` gives `[100.64.0.1]`), without the
/// surrounding section braces.
pub fn raw_values<'a>(raw: &'a str, key: &str) -> Vec<&'a str> {
    let pat = format!("{key}=");
    raw.split_whitespace()
        .filter_map(|w| w.trim_start_matches('{').strip_prefix(pat.as_str()))
        .map(|v| v.trim_end_matches('}'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_established() {
        let raw = "list-sa event {rw {uniqueid=1 version=2 state=ESTABLISHED local-host=203.0.113.2 child-sas {net-1 {name=net state=INSTALLED remote-ts=[100.64.0.1/32]}}}}\n\
                   list-sa event {rw {uniqueid=2 version=2 state=CONNECTING local-host=203.0.113.2}}\n\
                   list-sa event {rw {uniqueid=3 version=2 state=ESTABLISHED local-host=203.0.113.2}}\n\
                   list-sas reply {}\n";
        assert_eq!(count_established(raw), 2);
        assert_eq!(count_established("list-sas reply {}\n"), 0);
        assert_eq!(raw_values(raw, "uniqueid"), vec!["1", "2", "3"]);
        assert_eq!(raw_values(raw, "remote-ts"), vec!["[100.64.0.1/32]"]);
    }

    #[test]
    fn kernel_esp_leaves_out_libipsec() {
        let load = |conf: &str| conf.lines().find(|l| l.trim_start().starts_with("load = ")).unwrap().to_string();
        let vici = "unix:///tmp/x/charon.vici";
        let userspace = load(&strongswan_conf(Path::new("/tmp/x"), vici, false, None, ""));
        let kernel = load(&strongswan_conf(Path::new("/tmp/x"), vici, true, None, ""));
        assert!(!kernel.contains("kernel-libipsec"), "{kernel}");
        assert_eq!(userspace.contains("kernel-libipsec"), available_plugins().contains(&"kernel-libipsec"));
        assert_eq!(userspace.contains("kernel-netlink"), kernel.contains("kernel-netlink"));
    }
}
