//! libreswan 4.10 (`pluto`) as the IKEv2 responder in the `gw` namespace: the second gateway implementation.
//!
//! Debian's libreswan package conflicts with the strongSwan packages, so it is not installed:
//! `scripts/install-deps.sh` unpacks it (`apt-get download libreswan` + `dpkg -x`) into
//! `target/tools/libreswan` ([`libreswan_root`]; its library dependencies and `libnss3-tools` are installed as
//! packages). pluto hard-codes `/usr/libexec/ipsec/addconn`, which it runs to load the connections: it runs in a
//! private mount namespace (`unshare -m` inside the gateway's network namespace) where the unpacked
//! `usr/libexec` is overlaid on `/usr/libexec`, so nothing on the host changes. Every state path is its own
//! (`--config --rundir --nssdir --secretsfile --ipsecdir --logfile`, `dumpdir=`), so any number of plutos can
//! run side by side.
//!
//! Credentials: the harness [`Pki`] (made by strongSwan's `pki`) imported into pluto's private NSS database
//! (`certutil`, and `pk12util` with a PKCS#12 made by `openssl`).
//!
//! On a kernel without ESP (as here) pluto authenticates the peer and establishes the IKE SA, then cannot
//! install the Child SA ("netlink response for Add SA ...: Function not implemented"), answers it with
//! TS_UNACCEPTABLE and deletes the IKE SA without telling the peer. Its log is the proof of what it accepted:
//! [`Libreswan::IKE_SA_ESTABLISHED`]. On a kernel with ESP (the VM of `scripts/vm-run.sh`) it installs the Child
//! SA (ESP in UDP when the client asks for encapsulation, [`Libreswan::CHILD_SA_ESTABLISHED`]) with an XFRM
//! policy from `leftsubnet` to the client's lease, which takes the LAN's traffic to the pool into the tunnel (no
//! route is needed: the gateway's default route covers the pool), and runs libreswan's own updown script
//! ([`Libreswan::UPDOWN`]; `ipsec _updown` would find strongSwan's). [`Libreswan::traffic_status`] gives its
//! counters.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::Duration;

use super::error::{HarnessError, Result};
use super::pki::{KeyType, Pki};
use super::process::{self, TempDir, DEFAULT_COMMAND_TIMEOUT};
use super::testbed::{Listen, Role, Testbed, GW_ADDR, LAN_NET};
use super::{CLIENT_ID, DEFAULT_PSK, GW_ID};

/// Where `scripts/install-deps.sh` unpacks the libreswan package (overridable with `IKELINK_LIBRESWAN_ROOT`).
pub fn libreswan_root() -> PathBuf {
    match std::env::var_os("IKELINK_LIBRESWAN_ROOT") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("target").join("tools").join("libreswan"),
    }
}

/// Whether this kernel can hold an ESP SA (`CONFIG_INET_ESP`): tries to add one in `tb`'s `lan` namespace (then
/// flushes it). Without it pluto cannot install Child SAs (see the module docs). The same probe as
/// `testbed/tests/interop_kernel_esp.rs` (a tunnel-mode AES-GCM state).
pub fn kernel_has_esp(tb: &Testbed) -> Result<bool> {
    let add = [
        "ip",
        "xfrm",
        "state",
        "add",
        "src",
        "192.0.2.1",
        "dst",
        "192.0.2.2",
        "proto",
        "esp",
        "spi",
        "0x1000",
        "mode",
        "tunnel",
        "aead",
        "rfc4106(gcm(aes))",
        "0x0102030405060708090a0b0c0d0e0f1011121314",
        "128",
    ];
    let out = tb.exec_unchecked(Role::Lan, &add, DEFAULT_COMMAND_TIMEOUT)?;
    if out.status.success() {
        tb.exec(Role::Lan, &["ip", "xfrm", "state", "flush"])?;
    }
    Ok(out.status.success())
}

/// Whether this kernel has espintcp (RFC 9329 ESP-in-TCP, `CONFIG_INET_ESPINTCP`): "espintcp" among the TCP
/// upper-layer protocols it offers (`/proc/sys/net/ipv4/tcp_available_ulp`; registered by `esp4`, which the VM's
/// init loads). pluto attaches it to every TCP stream it accepts and closes the stream without it. Neither this
/// machine's kernel nor Debian's stock 6.1 has it; the VM kernel of `scripts/vm-kernel-espintcp.sh`
/// (`IKELINK_VM_KERNEL=espintcp`) does.
pub fn kernel_has_espintcp() -> bool {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_ulp")
        .is_ok_and(|ulps| ulps.split_whitespace().any(|u| u == "espintcp"))
}

/// Whether the run expects espintcp (`IKELINK_ESPINTCP=1`: `scripts/vm-run.sh` sets it when it boots the
/// espintcp kernel), so the tests that need it fail instead of skipping when [`kernel_has_espintcp`] says no.
pub fn espintcp_expected() -> bool {
    std::env::var("IKELINK_ESPINTCP").is_ok_and(|v| v == "1")
}

/// How pluto authenticates and what it demands from the client.
#[derive(Clone, Debug, Default)]
pub enum LibreswanAuth {
    /// `authby=secret` both ways, with [`LibreswanConfig::psk`].
    #[default]
    Psk,
    /// Certificates both ways (`leftauth`/`rightauth` = `rsasig` or `ecdsa`, after `pki`'s key type); the
    /// client's certificate must come from `pki`'s CA (`rightca=%same`).
    Cert { pki: Pki },
    /// The gateway signs with its certificate, the client authenticates with EAP-TLS only (RFC 5998 style
    /// `rightauth=eaponly`, `rightautheap=tls`: libreswan 4.10's only EAP method, responder only).
    EapTls { pki: Pki },
}

/// Configuration of the pluto responder (`Default` = road-warrior PSK gateway like [`super::GatewayConfig`]).
#[derive(Clone, Debug)]
pub struct LibreswanConfig {
    /// Authentication scheme.
    pub auth: LibreswanAuth,
    /// Gateway identity (`leftid=@...`).
    pub local_id: String,
    /// Accepted client identity (`rightid=`); with certificates `%fromcert`, with EAP-TLS `%any`.
    pub remote_id: String,
    /// The IKE pre-shared key ([`LibreswanAuth::Psk`]).
    pub psk: String,
    /// Address pool (a range, as libreswan wants it); `None` for no CP.
    pub pool: Option<String>,
    /// DNS servers sent to the client (`modecfgdns=`).
    pub dns: Vec<String>,
    /// Local traffic selector (`leftsubnet=`).
    pub local_subnet: String,
    /// `ike=` (libreswan syntax, e.g. `"aes_gcm256-sha2_256;dh19"`); `None` for its defaults (AES-GCM with
    /// MODP-2048 first).
    pub ike: Option<String>,
    /// `esp=`; `None` for its defaults.
    pub esp: Option<String>,
    /// Highest TLS version of pluto's NSS (an NSS policy in the database, e.g. `"tls1.2"`); `None` for NSS's
    /// default (TLS 1.3).
    pub tls_max: Option<String>,
    /// Raw lines appended to the connection.
    pub extra_conn: String,
    /// Raw lines appended to `config setup` (e.g. `listen-tcp=yes` for RFC 9329).
    pub extra_setup: String,
}

impl Default for LibreswanConfig {
    fn default() -> Self {
        LibreswanConfig {
            auth: LibreswanAuth::Psk,
            local_id: GW_ID.into(),
            remote_id: CLIENT_ID.into(),
            psk: DEFAULT_PSK.into(),
            pool: Some("100.64.0.1-100.64.0.254".into()),
            dns: vec!["198.51.100.53".into()],
            local_subnet: LAN_NET.into(),
            ike: None,
            esp: None,
            tls_max: None,
            extra_conn: String::new(),
            extra_setup: String::new(),
        }
    }
}

fn signature_auth(pki: &Pki) -> &'static str {
    match pki.key_type {
        KeyType::Rsa(_) => "rsasig",
        KeyType::EcdsaP256 => "ecdsa",
    }
}

impl LibreswanConfig {
    /// A configuration with certificates both ways.
    pub fn cert(pki: &Pki) -> LibreswanConfig {
        LibreswanConfig {
            auth: LibreswanAuth::Cert { pki: pki.clone() },
            remote_id: "%fromcert".into(),
            ..Default::default()
        }
    }

    /// A configuration where the client authenticates with EAP-TLS only.
    pub fn eap_tls(pki: &Pki) -> LibreswanConfig {
        LibreswanConfig {
            auth: LibreswanAuth::EapTls { pki: pki.clone() },
            remote_id: "%any".into(),
            ..Default::default()
        }
    }

    /// Renders ipsec.conf; `dir` is pluto's private directory (for `dumpdir`).
    pub fn ipsec_conf(&self, dir: &Path) -> String {
        let mut c = format!(
            "# generated by the ikelink interop harness\nconfig setup\n\tlogtime=yes\n\tdumpdir={}\n{}\n",
            dir.join("run").display(),
            self.extra_setup
        );
        c += &format!("conn {}\n", Libreswan::CONN);
        c += "\tikev2=yes\n\tauto=add\n";
        c += &format!("\tleft={GW_ADDR}\n\tleftid=@{}\n\tleftsubnet={}\n", self.local_id, self.local_subnet);
        // libreswan's own updown script (the default, `ipsec _updown`, finds strongSwan's `ipsec` in $PATH, whose
        // _updown fails with "unknown interface version" and makes pluto tear the Child SA down again). The path
        // is the one inside pluto's private mount namespace, where the package's usr/libexec is overlaid, so the
        // script's own /usr/libexec/ipsec/_updown.xfrm is the package's too.
        c += &format!("\tleftupdown={}\n", Libreswan::UPDOWN);
        c += &format!("\tright=%any\n\trightid={}\n", self.remote_id);
        c += "\tnarrowing=yes\n\tfragmentation=yes\n";
        if let Some(pool) = &self.pool {
            c += &format!("\trightaddresspool={pool}\n\tleftmodecfgserver=yes\n\trightmodecfgclient=yes\n");
            if !self.dns.is_empty() {
                c += &format!("\tmodecfgdns=\"{}\"\n", self.dns.join(", "));
            }
        }
        if let Some(ike) = &self.ike {
            c += &format!("\tike={ike}\n");
        }
        if let Some(esp) = &self.esp {
            c += &format!("\tesp={esp}\n");
        }
        match &self.auth {
            LibreswanAuth::Psk => c += "\tauthby=secret\n",
            LibreswanAuth::Cert { pki } => {
                let auth = signature_auth(pki);
                c += &format!("\tleftcert={}\n\tleftsendcert=always\n\trightca=%same\n", Libreswan::CERT_NICK);
                c += &format!("\tleftauth={auth}\n\trightauth={auth}\n");
            }
            LibreswanAuth::EapTls { pki } => {
                // pluto runs EAP only when both ends are configured for EAP-TLS and the peer is "eaponly".
                c += &format!("\tleftcert={}\n\tleftsendcert=always\n\trightca=%same\n", Libreswan::CERT_NICK);
                c += &format!("\tleftauth={}\n\tleftautheap=tls\n", signature_auth(pki));
                c += "\trightauth=eaponly\n\trightautheap=tls\n";
            }
        }
        if !self.extra_conn.is_empty() {
            c += &self.extra_conn;
            c += "\n";
        }
        c
    }

    /// Renders ipsec.secrets.
    pub fn ipsec_secrets(&self) -> String {
        match self.auth {
            LibreswanAuth::Psk => {
                format!("@{} {} : PSK \"{}\"\n", self.local_id, self.remote_id, self.psk.replace('"', ""))
            }
            // The private key is found in the NSS database through the certificate.
            _ => String::new(),
        }
    }
}

/// A running pluto in the testbed's `gw` namespace. Stopped on drop.
#[derive(Debug)]
pub struct Libreswan {
    child: Mutex<Option<Child>>,
    dir: TempDir,
    config: LibreswanConfig,
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| HarnessError::io(path, e))
}

fn tool(program: &str, args: &[&str]) -> Result<()> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    process::run(&mut cmd, Duration::from_secs(60)).map(|_| ())
}

impl Libreswan {
    /// Name of the connection in ipsec.conf.
    pub const CONN: &'static str = "rw";
    /// Nickname of the gateway's certificate in the NSS database.
    pub const CERT_NICK: &'static str = "gw";
    /// What pluto logs once it authenticated the peer and established the IKE SA (followed by how).
    pub const IKE_SA_ESTABLISHED: &'static str = "established IKE SA; authenticated peer";
    /// What pluto logs once it installed a Child SA in the kernel (followed by its SPIs and algorithms).
    pub const CHILD_SA_ESTABLISHED: &'static str = "established Child SA";
    /// The updown script pluto runs (`leftupdown=`): libreswan's, as seen inside pluto's mount namespace.
    pub const UPDOWN: &'static str = "/usr/libexec/ipsec/_updown";

    /// pluto in the unpacked package.
    pub fn pluto_path() -> PathBuf {
        libreswan_root().join("usr/libexec/ipsec/pluto")
    }

    /// Whether the unpacked libreswan and the NSS tools are there (`scripts/install-deps.sh` provides both).
    pub fn available() -> bool {
        Self::pluto_path().exists() && ["certutil", "pk12util", "openssl", "unshare"].into_iter().all(in_path)
    }

    /// Writes the configuration, makes the NSS database (with the certificates of `config`), starts pluto in
    /// `gw` and waits (≤ 10 s) until it listens on port 500 with the connection loaded.
    pub fn start(tb: &Testbed, config: &LibreswanConfig) -> Result<Libreswan> {
        let version = super::matrix::package_version("libreswan").unwrap_or_default();
        super::matrix::set_gateway(format!("libreswan {version}").trim());
        let root = libreswan_root();
        if !Self::pluto_path().exists() {
            return Err(HarnessError::Setup(format!(
                "libreswan is not unpacked in {} (scripts/install-deps.sh does it)",
                root.display()
            )));
        }
        let dir = TempDir::new(&format!("{}-gw-pluto", tb.prefix()))?;
        let d = dir.path().to_path_buf();
        for sub in ["run", "nss", "ipsec.d"] {
            std::fs::create_dir_all(d.join(sub)).map_err(|e| HarnessError::io(d.join(sub), e))?;
        }
        write(&d.join("ipsec.conf"), &config.ipsec_conf(&d))?;
        let secrets = d.join("ipsec.secrets");
        write(&secrets, &config.ipsec_secrets())?;
        set_mode(&secrets, 0o600)?;
        Self::make_nss(&d, config)?;

        let s = |p: &Path| p.to_string_lossy().into_owned();
        let (conf, run, nss, ipsecd, log) = (
            s(&d.join("ipsec.conf")),
            s(&d.join("run")),
            s(&d.join("nss")),
            s(&d.join("ipsec.d")),
            s(&d.join("pluto.log")),
        );
        let root_s = s(&root);
        // `ip netns exec` already gives a slave mount namespace; `unshare -m` makes sure the overlay stays ours.
        // $1 = the unpacked package, the rest = pluto's command line.
        let script =
            "mount -t overlay overlay -o \"lowerdir=$1/usr/libexec:/usr/libexec\" /usr/libexec && shift && exec \"$@\"";
        let args = [
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
            &root_s,
            "/usr/libexec/ipsec/pluto",
            "--nofork",
            "--config",
            &conf,
            "--rundir",
            &run,
            "--nssdir",
            &nss,
            "--secretsfile",
            &s(&secrets),
            "--ipsecdir",
            &ipsecd,
            "--logfile",
            &log,
            "--no-dnssec",
        ];
        let stdout = d.join("pluto.stdout");
        let child = tb.spawn_listening(Role::Gw, "libreswan pluto", "unshare", &args, &stdout, Listen::Udp(500));
        let pluto = Libreswan { child: Mutex::new(None), dir, config: config.clone() };
        let child = child.map_err(|e| pluto.explain(e))?;
        *pluto.lock() = Some(child);
        // addconn runs before pluto listens: by now the connection is loaded, or it never will be.
        let added = format!("\"{}\": added IKEv2 connection", Self::CONN);
        pluto.wait_for_log(&added, Duration::from_secs(5))?;
        Ok(pluto)
    }

    /// A fresh NSS database in `<dir>/nss`; with certificates, the gateway's certificate and key (nickname
    /// [`Self::CERT_NICK`]) and the CA as a trusted CA.
    fn make_nss(dir: &Path, config: &LibreswanConfig) -> Result<()> {
        let db = format!("sql:{}", dir.join("nss").display());
        tool("certutil", &["-N", "-d", &db, "--empty-password"])?;
        if let LibreswanAuth::Cert { pki } | LibreswanAuth::EapTls { pki } = &config.auth {
            let p12 = dir.join("gw.p12");
            let s = |p: &Path| p.to_string_lossy().into_owned();
            tool(
                "openssl",
                &[
                    "pkcs12",
                    "-export",
                    "-in",
                    &s(&pki.gw_cert),
                    "-inkey",
                    &s(&pki.gw_key),
                    "-name",
                    Self::CERT_NICK,
                    "-passout",
                    "pass:",
                    "-out",
                    &s(&p12),
                ],
            )?;
            tool("pk12util", &["-i", &s(&p12), "-d", &db, "-W", ""])?;
            tool("certutil", &["-A", "-d", &db, "-n", "ikelink-ca", "-t", "CT,,", "-a", "-i", &s(&pki.ca_cert)])?;
        }
        if let Some(max) = &config.tls_max {
            // An NSS policy module: caps the TLS version of every SSL socket of this database's users.
            let pkcs11 = dir.join("nss").join("pkcs11.txt");
            let mut text = std::fs::read_to_string(&pkcs11).map_err(|e| HarnessError::io(&pkcs11, e))?;
            text += &format!(
                "\nlibrary=\nname=Policy\nNSS=flags=policyOnly,moduleDB\nconfig=\"allow=tls-version-max={max}\"\n"
            );
            write(&pkcs11, &text)?;
        }
        Ok(())
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &LibreswanConfig {
        &self.config
    }

    /// Its private directory (ipsec.conf, ipsec.secrets, nss/, run/, pluto.log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// PID of pluto while running (`ip netns exec`, `unshare` and `sh` exec it: the child's PID is pluto's).
    pub fn pid(&self) -> Option<u32> {
        self.lock().as_ref().map(Child::id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether pluto is still running.
    pub fn is_running(&self) -> bool {
        self.lock().as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Path of pluto's log.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("pluto.log")
    }

    /// pluto's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Lines of the log that belong to our connection (`"rw"...`), without the timestamps.
    pub fn conn_log(&self) -> Vec<String> {
        let tag = format!("\"{}\"", Self::CONN);
        self.log()
            .lines()
            .filter_map(|l| {
                l.find(&tag).map(|i| l[i..].to_string()).or_else(|| l.contains("ERROR: ").then(|| l.to_string()))
            })
            .collect()
    }

    /// Waits (≤ `timeout`) until the log contains `needle`; fails early if pluto exits.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Result<()> {
        let what = format!("pluto log line containing {needle:?}");
        let r = process::wait_until(&what, timeout, Duration::from_millis(50), || {
            if !self.is_running() {
                return Err(HarnessError::Daemon { what: "libreswan pluto".into(), detail: "exited".into() });
            }
            Ok(self.log().contains(needle))
        });
        r.map_err(|e| self.explain(e))
    }

    /// `whack --trafficstatus` (through pluto's control socket): one line per Child SA, with `inBytes=`,
    /// `outBytes=` and the client's `lease=`.
    pub fn traffic_status(&self) -> Result<String> {
        let whack = libreswan_root().join("usr/libexec/ipsec/whack");
        let ctl = self.dir.path().join("run").join("pluto.ctl");
        let mut cmd = Command::new(&whack);
        cmd.arg("--ctlsocket").arg(&ctl).arg("--trafficstatus");
        let out = process::run(&mut cmd, DEFAULT_COMMAND_TIMEOUT).map_err(|e| self.explain(e))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The `(inBytes, outBytes)` of every Child SA in `whack --trafficstatus` output, as the gateway counts them
    /// (inner packets: what came from the client, what went to it).
    pub fn traffic_bytes(status: &str) -> Vec<(u64, u64)> {
        let field = |line: &str, key: &str| -> Option<u64> {
            line.split([',', ' ']).find_map(|w| w.strip_prefix(key)).and_then(|v| v.trim_end_matches('B').parse().ok())
        };
        status
            .lines()
            .filter(|l| l.contains("type=ESP"))
            .filter_map(|l| Some((field(l, "inBytes=")?, field(l, "outBytes=")?)))
            .collect()
    }

    /// Adds pluto's output and the tail of its log to an error.
    pub fn explain(&self, e: HarnessError) -> HarnessError {
        let stdout = std::fs::read_to_string(self.dir.path().join("pluto.stdout")).unwrap_or_default();
        let log = self.log();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        HarnessError::Daemon {
            what: "libreswan pluto".into(),
            detail: format!(
                "{e}\n--- pluto stdout ---\n{stdout}\n--- pluto log tail ({}) ---\n{}",
                self.log_path().display(),
                tail.join("\n")
            ),
        }
    }

    /// SIGTERM, wait ≤ 5 s, SIGKILL; by PID of the child we started.
    pub fn stop(&mut self) {
        let child = self.lock().take();
        if let Some(mut child) = child {
            process::terminate(&mut child, Duration::from_secs(5));
        }
    }
}

impl Drop for Libreswan {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether `program` is an executable file in `$PATH`.
pub(crate) fn in_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .any(|p| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| HarnessError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psk_conf_and_secrets() {
        let cfg = LibreswanConfig::default();
        let c = cfg.ipsec_conf(Path::new("/tmp/x"));
        assert!(c.contains("conn rw\n"));
        assert!(c.contains("\tauthby=secret\n"));
        assert!(c.contains("\tleftid=@gw.ikelink.test\n"));
        assert!(c.contains("\trightaddresspool=100.64.0.1-100.64.0.254\n"));
        assert!(c.contains("\tleftsubnet=198.51.100.0/24\n"));
        assert!(c.contains("\tdumpdir=/tmp/x/run\n"));
        assert!(c.contains("\tleftupdown=/usr/libexec/ipsec/_updown\n"), "libreswan's own updown: {c}");
        assert_eq!(cfg.ipsec_secrets(), "@gw.ikelink.test client@ikelink.test : PSK \"ikelink-test-psk-0123456789\"\n");
    }

    #[test]
    fn traffic_status_counters() {
        let status = "006 #2: \"rw\"[1] 192.0.2.2, type=ESP, add_time=1700000000, inBytes=5312168, \
                      outBytes=176524, maxBytes=2^63B, id='client@ikelink.test', lease=100.64.0.1/32\n";
        assert_eq!(Libreswan::traffic_bytes(status), vec![(5_312_168, 176_524)]);
        assert!(Libreswan::traffic_bytes("000 no traffic\n").is_empty());
    }

    fn pki(key_type: KeyType) -> Pki {
        let f = |n: &str| PathBuf::from(format!("/nonexistent/{n}"));
        Pki {
            dir: f(""),
            key_type,
            ca_cert: f("ca.crt"),
            ca_key: f("ca.key"),
            gw_cert: f("gw.crt"),
            gw_key: f("gw.key"),
            client_cert: f("client.crt"),
            client_key: f("client.key"),
        }
    }

    #[test]
    fn cert_and_eap_tls_conf() {
        let rsa = LibreswanConfig::cert(&pki(KeyType::Rsa(2048))).ipsec_conf(Path::new("/tmp/x"));
        assert!(rsa.contains("\tleftcert=gw\n\tleftsendcert=always\n\trightca=%same\n"), "{rsa}");
        assert!(rsa.contains("\tleftauth=rsasig\n\trightauth=rsasig\n"), "{rsa}");
        assert!(rsa.contains("\trightid=%fromcert\n") && !rsa.contains("authby"), "{rsa}");
        let eap = LibreswanConfig::eap_tls(&pki(KeyType::EcdsaP256));
        let c = eap.ipsec_conf(Path::new("/tmp/x"));
        assert!(c.contains("\tleftauth=ecdsa\n\tleftautheap=tls\n\trightauth=eaponly\n\trightautheap=tls\n"), "{c}");
        assert!(c.contains("\trightid=%any\n"), "{c}");
        assert_eq!(eap.ipsec_secrets(), "");
    }
}
