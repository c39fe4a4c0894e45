//! OpenBSD's IKEv2 daemon (OpenIKED 7.2, Debian's `openiked`) as the responder in the `gw` namespace: the third
//! gateway implementation.
//!
//! iked runs in the foreground (`-d -vv`, its log on stderr) with its own configuration file (mode 0600, which
//! iked insists on) and control socket (`-s`, for `ikectl show sa`). Its certificate directory is compiled in
//! (`/etc/iked/`, where its `ca` process also chroots): iked runs in a private mount namespace (`unshare -m`
//! inside the gateway's network namespace) with its own directory bind-mounted over `/etc/iked`.
//!
//! **PF_KEY.** On Linux iked talks to the kernel through PF_KEY v2 (`af_key`), and exits at start when there is
//! none. Kernels without `CONFIG_NET_KEY` (this one; it has no ESP either) get a stand-in: a small `LD_PRELOAD`
//! library ([`PFKEY_STUB_C`], built with `cc` at test time) that answers iked's PF_KEY requests as a kernel
//! would (SPIs for `SADB_GETSPI`, success for adding SAs and flows) and accepts its per-socket IPsec bypass
//! (`IP_IPSEC_POLICY`, which only `af_key` can compile). Everything iked negotiates is real; only the kernel's
//! acknowledgement is simulated, so no ESP packet is ever carried: tests with the stub prove the IKE SA, the
//! authentication and the Child SA negotiation, not traffic. [`Iked::pfkey_stubbed`] says whether it is in use.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::Duration;

use super::error::{HarnessError, Result};
use super::libreswan::in_path;
use super::pki::Pki;
use super::process::{self, TempDir, DEFAULT_COMMAND_TIMEOUT};
use super::testbed::{Listen, Role, Testbed, GW_ADDR, LAN_NET, VIP_NET};
use super::{CLIENT_ID, DEFAULT_PSK, GW_ID};

/// The iked binary of Debian's `openiked` package.
pub const IKED: &str = "/usr/sbin/iked";
/// Its control tool.
pub const IKECTL: &str = "/usr/sbin/ikectl";
/// iked's compiled-in certificate directory (replaced by a private one in iked's mount namespace).
pub const IKED_ETC: &str = "/etc/iked";

/// The PF_KEY stand-in (see the module docs), compiled with `cc -shared -fPIC` and preloaded into iked.
pub const PFKEY_STUB_C: &str = r#"/* PF_KEY v2 stand-in for iked on kernels without CONFIG_NET_KEY (LD_PRELOAD; ikelink interop harness). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define STUB_PF_KEY 15      /* AF_KEY */
#define STUB_SADB_GETSPI 1
#define STUB_SADB_GET 5
#define STUB_SADB_EXT_SA 1

struct stub_msg { uint8_t version, type, errno_, satype; uint16_t len, reserved; uint32_t seq, pid; };
struct stub_sa { uint16_t len, exttype; uint32_t spi; uint8_t replay, state, auth, encrypt; uint32_t flags; };

/* The "kernel": every request is echoed back as its own successful reply (same seq and pid), SADB_GETSPI with
 * a random SPI, SADB_GET (does this SA exist?) with ESRCH. Nothing is ever installed. */
static void *serve(void *arg) {
    int fd = (int)(intptr_t)arg;
    static uint8_t buf[65536];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        if ((size_t)n < sizeof(struct stub_msg)) continue;
        struct stub_msg *m = (struct stub_msg *)buf;
        uint8_t out[sizeof(struct stub_msg) + sizeof(struct stub_sa)];
        struct stub_msg *r = (struct stub_msg *)out;
        *r = *m;
        r->len = sizeof(struct stub_msg) / 8;
        r->errno_ = 0;
        if (m->type == STUB_SADB_GETSPI) {
            struct stub_sa *sa = (struct stub_sa *)(out + sizeof(struct stub_msg));
            uint32_t spi = 0;
            memset(sa, 0, sizeof *sa);
            while (spi < 0x100)
                if (getrandom(&spi, sizeof spi, 0) != (ssize_t)sizeof spi) spi = 0;
            sa->len = sizeof *sa / 8;
            sa->exttype = STUB_SADB_EXT_SA;
            sa->spi = htonl(spi);
            r->len += sizeof *sa / 8;
        } else if (m->type == STUB_SADB_GET) {
            r->errno_ = ESRCH;
        }
        if (send(fd, out, (size_t)r->len * 8, 0) < 0) break;
    }
    close(fd);
    return NULL;
}

/* IP_IPSEC_POLICY / IPV6_IPSEC_POLICY carry PF_KEY policies that only af_key compiles: iked's IPsec bypass on
 * its IKE sockets is accepted as is (no IPsec policy exists to bypass). */
int setsockopt(int fd, int level, int name, const void *val, socklen_t len) {
    static int (*real)(int, int, int, const void *, socklen_t);
    if (!real) real = (int (*)(int, int, int, const void *, socklen_t))dlsym(RTLD_NEXT, "setsockopt");
    if ((level == 0 && name == 16) || (level == 41 && name == 34)) return 0;
    return real(fd, level, name, val, len);
}

/* iked waits 1 ms for PF_KEY's reply (the kernel queues it during the write itself); the stub answers from
 * another thread, which a loaded machine may not run within 1 ms. So a write to a stub socket (the only AF_UNIX
 * SOCK_SEQPACKET sockets in iked; its imsg and control sockets are streams) returns once the reply is readable,
 * waiting at most 5 s. This also holds in iked's other processes, which receive the socket over imsg. */
static int stub_socket(int fd) {
    int domain = 0, type = 0;
    socklen_t len = sizeof domain;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 || domain != AF_UNIX) return 0;
    len = sizeof type;
    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_SEQPACKET;
}

ssize_t writev(int fd, const struct iovec *iov, int iovcnt) {
    static ssize_t (*real)(int, const struct iovec *, int);
    if (!real) real = (ssize_t (*)(int, const struct iovec *, int))dlsym(RTLD_NEXT, "writev");
    ssize_t n = real(fd, iov, iovcnt);
    if (n > 0 && stub_socket(fd)) {
        int saved = errno;
        struct pollfd p = { .fd = fd, .events = POLLIN };
        poll(&p, 1, 5000);
        errno = saved;
    }
    return n;
}

int socket(int domain, int type, int protocol) {
    static int (*real)(int, int, int);
    if (!real) real = (int (*)(int, int, int))dlsym(RTLD_NEXT, "socket");
    if (domain != STUB_PF_KEY) return real(domain, type, protocol);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) return -1;
    pthread_t t;
    if (pthread_create(&t, NULL, serve, (void *)(intptr_t)sv[1]) != 0) {
        close(sv[0]);
        close(sv[1]);
        errno = ENOMEM;
        return -1;
    }
    pthread_detach(t);
    return sv[0];
}
"#;

/// Whether this kernel offers PF_KEY sockets (`CONFIG_NET_KEY`); without them iked needs the stand-in.
pub fn kernel_has_pfkey() -> bool {
    // SAFETY: socket(2) and close(2) have no memory-safety preconditions.
    unsafe {
        let fd = libc::socket(libc::AF_KEY, libc::SOCK_RAW, 2 /* PF_KEY_V2 */);
        if fd < 0 {
            return false;
        }
        libc::close(fd);
    }
    true
}

/// How iked authenticates and what it demands from the client.
#[derive(Clone, Debug, Default)]
pub enum IkedAuth {
    /// Pre-shared key both ways ([`IkedConfig::psk`]).
    #[default]
    Psk,
    /// Certificates both ways: `pki`'s gateway certificate and key, its CA trusted for the client's.
    Cert { pki: Pki },
    /// The gateway signs with `pki`'s certificate, the client authenticates with EAP-MSCHAPv2 (iked's only EAP
    /// method) as one of [`IkedConfig::users`].
    EapMschapv2 { pki: Pki },
}

/// Configuration of the iked responder (`Default` = road-warrior PSK gateway).
#[derive(Clone, Debug)]
pub struct IkedConfig {
    /// Authentication scheme.
    pub auth: IkedAuth,
    /// Gateway identity (`srcid`).
    pub local_id: String,
    /// Required client identity (`dstid`), if any.
    pub remote_id: Option<String>,
    /// The pre-shared key ([`IkedAuth::Psk`]).
    pub psk: String,
    /// EAP users (`user "name" "password"`).
    pub users: Vec<(String, String)>,
    /// Virtual IP pool (`config address <net>/<prefix>`); `None` for no CP.
    pub pool: Option<String>,
    /// DNS servers (`config name-server`).
    pub dns: Vec<String>,
    /// Local traffic selector (`from`); the remote one is the client's virtual IP (`to dynamic`) with a pool.
    pub local_ts: String,
    /// IKE SA proposals in iked syntax (`"ikesa enc aes-256 ..."`); `None` for iked's defaults.
    pub ikesa: Option<String>,
    /// Child SA proposals (`"childsa enc aes-256-gcm"`); `None` for iked's defaults.
    pub childsa: Option<String>,
    /// Raw global lines (`set ...`).
    pub global: String,
}

impl Default for IkedConfig {
    fn default() -> Self {
        IkedConfig {
            auth: IkedAuth::Psk,
            local_id: GW_ID.into(),
            remote_id: Some(CLIENT_ID.into()),
            psk: DEFAULT_PSK.into(),
            users: vec![(super::EAP_USER.into(), super::EAP_PASSWORD.into())],
            pool: Some(VIP_NET.into()),
            dns: vec!["198.51.100.53".into()],
            local_ts: LAN_NET.into(),
            ikesa: None,
            childsa: None,
            global: "set nomobike\n".into(),
        }
    }
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace(['"', '\\'], ""))
}

impl IkedConfig {
    /// Certificates both ways.
    pub fn cert(pki: &Pki) -> IkedConfig {
        IkedConfig { auth: IkedAuth::Cert { pki: pki.clone() }, remote_id: None, ..Default::default() }
    }

    /// Gateway certificate, client EAP-MSCHAPv2.
    pub fn eap_mschapv2(pki: &Pki) -> IkedConfig {
        IkedConfig { auth: IkedAuth::EapMschapv2 { pki: pki.clone() }, remote_id: None, ..Default::default() }
    }

    /// Renders iked.conf.
    pub fn iked_conf(&self) -> String {
        let mut c = String::from("# generated by the ikelink interop harness\n");
        c += &self.global;
        if !c.ends_with('\n') {
            c.push('\n');
        }
        if matches!(self.auth, IkedAuth::EapMschapv2 { .. }) {
            for (user, password) in &self.users {
                c += &format!("user {} {}\n", quote(user), quote(password));
            }
        }
        let to = if self.pool.is_some() { "dynamic" } else { "any" };
        c += &format!(
            "ikev2 {} passive esp from {} to {to} local {GW_ADDR} peer any",
            quote(Iked::POLICY),
            self.local_ts
        );
        if let Some(p) = &self.ikesa {
            c += &format!(" {p}");
        }
        if let Some(p) = &self.childsa {
            c += &format!(" {p}");
        }
        c += &format!(" srcid {}", quote(&self.local_id));
        if let Some(id) = &self.remote_id {
            c += &format!(" dstid {}", quote(id));
        }
        match &self.auth {
            IkedAuth::Psk => c += &format!(" psk {}", quote(&self.psk)),
            IkedAuth::Cert { .. } => {}
            IkedAuth::EapMschapv2 { .. } => c += " eap \"mschap-v2\"",
        }
        if let Some(pool) = &self.pool {
            c += &format!(" config address {pool}");
            for dns in &self.dns {
                c += &format!(" config name-server {dns}");
            }
        }
        c += "\n";
        c
    }
}

/// A running iked in the testbed's `gw` namespace. Stopped on drop.
#[derive(Debug)]
pub struct Iked {
    child: Mutex<Option<Child>>,
    dir: TempDir,
    stubbed: bool,
    config: IkedConfig,
}

fn write(path: &Path, text: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).map_err(|e| HarnessError::io(path, e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| HarnessError::io(path, e))
}

fn copy(from: &Path, to: &Path, mode: u32) -> Result<()> {
    let data = std::fs::read(from).map_err(|e| HarnessError::io(from, e))?;
    write(to, &data, mode)
}

impl Iked {
    /// Name of the policy in iked.conf.
    pub const POLICY: &'static str = "rw";

    /// Whether iked (and, on a kernel without PF_KEY, a C compiler for the stand-in) is installed.
    pub fn available() -> bool {
        Path::new(IKED).exists()
            && Path::new(IKED_ETC).is_dir()
            && in_path("unshare")
            && (kernel_has_pfkey() || in_path("cc"))
    }

    /// Writes the configuration and credentials, starts iked in `gw` and waits (≤ 10 s) until it listens on
    /// port 500.
    pub fn start(tb: &Testbed, config: &IkedConfig) -> Result<Iked> {
        let version = super::matrix::package_version("openiked").unwrap_or_default();
        let stand_in = if kernel_has_pfkey() { "" } else { " (PF_KEY stand-in: IKE SA only)" };
        super::matrix::set_gateway(&format!("OpenIKED {version}{stand_in}"));
        if !Path::new(IKED).exists() || !Path::new(IKED_ETC).is_dir() {
            return Err(HarnessError::Setup(format!(
                "{IKED} is not installed (scripts/install-deps.sh installs openiked)"
            )));
        }
        let dir = TempDir::new(&format!("{}-gw-iked", tb.prefix()))?;
        let d = dir.path().to_path_buf();
        let etc = d.join("etc");
        for sub in ["ca", "certs", "crls", "private", "pubkeys/fqdn", "pubkeys/ipv4", "pubkeys/ipv6", "pubkeys/ufqdn"] {
            std::fs::create_dir_all(etc.join(sub)).map_err(|e| HarnessError::io(etc.join(sub), e))?;
        }
        let key = etc.join("private/local.key");
        if let IkedAuth::Cert { pki } | IkedAuth::EapMschapv2 { pki } = &config.auth {
            copy(&pki.ca_cert, &etc.join("ca/ca.crt"), 0o644)?;
            copy(&pki.gw_cert, &etc.join("certs/gw.crt"), 0o644)?;
            copy(&pki.gw_key, &key, 0o600)?;
        } else {
            // iked refuses to start without a local key, even when it only uses PSKs (Debian's postinst makes one).
            let mut cmd = Command::new("openssl");
            cmd.args(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out"]).arg(&key);
            process::run(&mut cmd, DEFAULT_COMMAND_TIMEOUT)?;
            let data = std::fs::read(&key).map_err(|e| HarnessError::io(&key, e))?;
            write(&key, &data, 0o600)?;
        }
        let conf = d.join("iked.conf");
        write(&conf, config.iked_conf().as_bytes(), 0o600)?;

        let stubbed = !kernel_has_pfkey();
        let s = |p: &Path| p.to_string_lossy().into_owned();
        let (etc_s, conf_s, sock_s) = (s(&etc), s(&conf), s(&d.join("iked.sock")));
        // $1 = our /etc/iked, the rest = iked's command line.
        let script = "mount --bind \"$1\" /etc/iked && shift && exec \"$@\"";
        let mut args: Vec<String> = ["-m", "--propagation", "private", "sh", "-c", script, "sh", &etc_s]
            .iter()
            .map(|a| a.to_string())
            .collect();
        if stubbed {
            let so = Self::build_stub(&d)?;
            args.extend(["env".to_string(), format!("LD_PRELOAD={}", s(&so))]);
        }
        args.extend([IKED, "-d", "-vv", "-f", &conf_s, "-s", &sock_s].iter().map(|a| a.to_string()));
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let log = d.join("iked.log");
        let iked = Iked { child: Mutex::new(None), dir, stubbed, config: config.clone() };
        let child = tb.spawn_listening(Role::Gw, "OpenIKED", "unshare", &argv, &log, Listen::Udp(500));
        let child = child.map_err(|e| iked.explain(e))?;
        *iked.lock() = Some(child);
        Ok(iked)
    }

    /// Compiles [`PFKEY_STUB_C`] into `dir/pfkey_stub.so`.
    fn build_stub(dir: &Path) -> Result<PathBuf> {
        let src = dir.join("pfkey_stub.c");
        let so = dir.join("pfkey_stub.so");
        write(&src, PFKEY_STUB_C.as_bytes(), 0o644)?;
        let mut cmd = Command::new("cc");
        cmd.args(["-O2", "-Wall", "-shared", "-fPIC", "-o"]).arg(&so).arg(&src).args(["-ldl", "-lpthread"]);
        process::run(&mut cmd, Duration::from_secs(60))?;
        Ok(so)
    }

    /// Whether iked runs with the PF_KEY stand-in (no PF_KEY in this kernel): SAs are negotiated, not installed.
    pub fn pfkey_stubbed(&self) -> bool {
        self.stubbed
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &IkedConfig {
        &self.config
    }

    /// Its private directory (iked.conf, etc/, iked.sock, iked.log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// PID of iked's parent process (`ip netns exec`, `unshare`, `sh` and `env` exec it).
    pub fn pid(&self) -> Option<u32> {
        self.lock().as_ref().map(Child::id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether iked is still running.
    pub fn is_running(&self) -> bool {
        self.lock().as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// `ikectl -s <socket> <args>` (bounded by 30 s).
    pub fn ikectl(&self, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new(IKECTL);
        cmd.arg("-s").arg(self.dir.path().join("iked.sock")).args(args);
        let out = process::run(&mut cmd, DEFAULT_COMMAND_TIMEOUT)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `ikectl show sa`: iked's IKE SAs (`iked_sas:` lines), Child SAs and flows.
    pub fn show_sa(&self) -> Result<String> {
        self.ikectl(&["show", "sa"])
    }

    /// Number of established IKE SAs.
    pub fn sa_count(&self) -> Result<usize> {
        Ok(self.show_sa()?.lines().filter(|l| l.starts_with("iked_sas:") && l.contains(" ESTABLISHED ")).count())
    }

    /// Waits (≤ `timeout`) until exactly `n` IKE SAs are established.
    pub fn wait_for_sa_count(&self, n: usize, timeout: Duration) -> Result<()> {
        let what = format!("{n} established IKE SA(s) in iked");
        let r = process::wait_until(&what, timeout, Duration::from_millis(100), || {
            if !self.is_running() {
                return Err(HarnessError::Daemon { what: "OpenIKED".into(), detail: "exited".into() });
            }
            Ok(self.sa_count()? == n)
        });
        r.map_err(|e| self.explain(e))
    }

    /// Path of iked's log (its stderr, `-vv`).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("iked.log")
    }

    /// iked's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Waits (≤ `timeout`) until the log contains `needle`; fails early if iked exits.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Result<()> {
        let what = format!("iked log line containing {needle:?}");
        let r = process::wait_until(&what, timeout, Duration::from_millis(50), || {
            if !self.is_running() {
                return Err(HarnessError::Daemon { what: "OpenIKED".into(), detail: "exited".into() });
            }
            Ok(self.log().contains(needle))
        });
        r.map_err(|e| self.explain(e))
    }

    /// Adds the configuration and the tail of iked's log to an error.
    pub fn explain(&self, e: HarnessError) -> HarnessError {
        let log = self.log();
        let tail: Vec<&str> = log.lines().rev().take(60).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        HarnessError::Daemon {
            what: "OpenIKED".into(),
            detail: format!(
                "{e}\n--- iked.conf ---\n{}--- iked log tail ({}) ---\n{}",
                self.config.iked_conf().replace(&self.config.psk, "<psk>"),
                self.log_path().display(),
                tail.join("\n")
            ),
        }
    }

    /// SIGTERM, wait ≤ 5 s, SIGKILL; by PID of the child we started (iked's parent, which stops its children).
    pub fn stop(&mut self) {
        let child = self.lock().take();
        if let Some(mut child) = child {
            process::terminate(&mut child, Duration::from_secs(5));
        }
    }
}

impl Drop for Iked {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psk_policy() {
        let c = IkedConfig::default().iked_conf();
        assert!(c.contains("set nomobike\n"));
        assert!(c.contains(
            "ikev2 \"rw\" passive esp from 198.51.100.0/24 to dynamic local 203.0.113.2 peer any srcid \"gw.ikelink.test\" \
             dstid \"client@ikelink.test\" psk \"ikelink-test-psk-0123456789\" config address 100.64.0.0/24 \
             config name-server 198.51.100.53\n"
        ));
        assert!(!c.contains("user "));
    }
}
