//! strongSwan as the IKEv2 responder in the `gw` namespace.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use super::charon::{self, Charon, CharonSetup};
use super::error::{HarnessError, Result};
use super::pki::Pki;
use super::process;
use super::testbed::{Role, Testbed, LAN_NET, VIP_NET};
use super::{CLIENT_ID, DEFAULT_PSK, GW_ID};

/// A virtual IP pool with its configuration attributes (RFC 7296 §3.15).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    /// Pool name (referenced by the connection).
    pub name: String,
    /// Address range, `100.64.0.0/24` or `100.64.0.10-100.64.0.20`.
    pub addrs: String,
    /// INTERNAL_IP4_DNS / INTERNAL_IP6_DNS attributes.
    pub dns: Vec<String>,
    /// Raw swanctl.conf lines added to the pool section (e.g. `split_include = ...`).
    pub extra: String,
}

impl Pool {
    /// A pool without attributes.
    pub fn new(name: &str, addrs: &str) -> Pool {
        Pool { name: name.to_string(), addrs: addrs.to_string(), dns: Vec::new(), extra: String::new() }
    }
}

/// How the gateway authenticates and what it demands from the client.
#[derive(Clone, Debug, Default)]
pub enum GatewayAuth {
    /// Both sides use the pre-shared key of [`GatewayConfig::psk`].
    #[default]
    Psk,
    /// The gateway signs with its certificate from `pki` (installed into its swanctl dir); the client
    /// authenticates with `remote_auth` as swanctl spells it: `"eap-mschapv2"`, `"eap-md5"`, `"eap-tls"`,
    /// `"pubkey"`, `"psk"`. EAP credentials come from [`GatewayConfig::eap_users`].
    Cert { pki: Pki, remote_auth: String },
}

/// Configuration of the responder (`Default` = road-warrior PSK gateway).
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// IKE proposals (`proposals`), e.g. `"aes256gcm16-prfsha256-x25519"`.
    pub ike_proposals: String,
    /// ESP proposals (`esp_proposals`).
    pub esp_proposals: String,
    /// Gateway identity.
    pub local_id: String,
    /// Accepted client identity.
    pub remote_id: String,
    /// Authentication scheme.
    pub auth: GatewayAuth,
    /// `(client id, secret)` of the IKE pre-shared key.
    pub psk: Option<(String, String)>,
    /// `(identity, password)` pairs for EAP.
    pub eap_users: Vec<(String, String)>,
    /// Virtual IP pools; all are referenced by the connection.
    pub pools: Vec<Pool>,
    /// Local traffic selectors of the child.
    pub local_ts: Vec<String>,
    /// `encap = yes` (always needed here: libipsec only does UDP-encapsulated ESP).
    pub encap: bool,
    /// ESP in the kernel: charon without `kernel-libipsec`, so `kernel-netlink` installs the Child SAs into the
    /// kernel's XFRM. Needs a kernel with ESP (this machine's has none: the VM of `scripts/vm-run.sh`). Default
    /// `false`; see [`GatewayConfig::kernel_esp`].
    pub kernel_esp: bool,
    /// RFC 7383 IKE fragmentation.
    pub fragmentation: bool,
    /// RFC 4555 MOBIKE.
    pub mobike: bool,
    /// Dead peer detection interval, e.g. `"10s"`.
    pub dpd_delay: Option<String>,
    /// IKE SA rekey time (connection `rekey_time`).
    pub rekey_time: Option<String>,
    /// Connection `over_time`.
    pub over_time: Option<String>,
    /// Connection `reauth_time`.
    pub reauth_time: Option<String>,
    /// Child SA `rekey_time`.
    pub child_rekey_time: Option<String>,
    /// Child SA `life_time` (hard lifetime).
    pub child_life_time: Option<String>,
    /// Raw text appended inside the connection block.
    pub extra_conn: String,
    /// Raw text appended inside the child block.
    pub extra_child: String,
    /// Raw top-level swanctl.conf text appended at the end.
    pub extra_swanctl: String,
    /// Run strongSwan 6.0.1 (Debian 13, in the chroot of [`super::charon::strongswan6_root`]) instead of the
    /// host's 5.9.8: RFC 9370 additional key exchanges, IKE_INTERMEDIATE, PPK.
    pub strongswan6: bool,
    /// Raw strongswan.conf lines for charon's own section, e.g. `retransmit_timeout = 1.0` (its IKE
    /// retransmission timers: 4 s growing by 1.8, five retransmissions by default).
    pub charon_extra: String,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            ike_proposals: "default".into(),
            esp_proposals: "default".into(),
            local_id: GW_ID.into(),
            remote_id: "%any".into(),
            auth: GatewayAuth::Psk,
            psk: Some((CLIENT_ID.into(), DEFAULT_PSK.into())),
            eap_users: Vec::new(),
            pools: vec![Pool {
                name: "pool0".into(),
                addrs: VIP_NET.into(),
                dns: vec!["198.51.100.53".into(), "198.51.100.54".into()],
                extra: String::new(),
            }],
            local_ts: vec![LAN_NET.into()],
            encap: true,
            kernel_esp: false,
            fragmentation: true,
            mobike: true,
            dpd_delay: None,
            rekey_time: None,
            over_time: None,
            reauth_time: None,
            child_rekey_time: None,
            child_life_time: None,
            extra_conn: String::new(),
            extra_child: String::new(),
            extra_swanctl: String::new(),
            strongswan6: false,
            charon_extra: String::new(),
        }
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// swanctl.conf quoting for secrets and identities.
pub(crate) fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

impl GatewayConfig {
    /// The default gateway with kernel ESP and `encap = no`, as a gateway on a kernel with ESP runs: UDP
    /// encapsulation only when NAT detection asks for it (otherwise the same as `Default`).
    pub fn kernel_esp() -> GatewayConfig {
        GatewayConfig { kernel_esp: true, encap: false, ..GatewayConfig::default() }
    }

    /// Renders the swanctl.conf for this configuration.
    pub fn swanctl_conf(&self) -> String {
        let mut c = String::from("# generated by the ikelink interop harness\nconnections {\n");
        c += &format!("  {} {{\n    version = 2\n", Gateway::CONN);
        c += &format!("    proposals = {}\n", self.ike_proposals);
        c += &format!("    encap = {}\n", yes_no(self.encap));
        c += &format!("    fragmentation = {}\n", yes_no(self.fragmentation));
        c += &format!("    mobike = {}\n", yes_no(self.mobike));
        if !self.pools.is_empty() {
            let names: Vec<&str> = self.pools.iter().map(|p| p.name.as_str()).collect();
            c += &format!("    pools = {}\n", names.join(", "));
        }
        for (k, v) in [
            ("dpd_delay", &self.dpd_delay),
            ("rekey_time", &self.rekey_time),
            ("over_time", &self.over_time),
            ("reauth_time", &self.reauth_time),
        ] {
            if let Some(v) = v {
                c += &format!("    {k} = {v}\n");
            }
        }
        match &self.auth {
            GatewayAuth::Psk => {
                c += &format!("    local {{\n      auth = psk\n      id = {}\n    }}\n", quote(&self.local_id));
                c += &format!("    remote {{\n      auth = psk\n      id = {}\n    }}\n", quote(&self.remote_id));
            }
            GatewayAuth::Cert { pki, remote_auth } => {
                let cert = file_name(&pki.gw_cert);
                c += &format!(
                    "    send_cert = always\n    local {{\n      auth = pubkey\n      certs = {cert}\n      id = {}\n    }}\n",
                    quote(&self.local_id)
                );
                c += &format!("    remote {{\n      auth = {remote_auth}\n      id = {}\n", quote(&self.remote_id));
                // With remote_id %any the gateway asks for an EAP-Identity; with a fixed remote_id it skips that round
                // and takes IDi as the EAP identity.
                if remote_auth.starts_with("eap") && self.remote_id == "%any" {
                    c += "      eap_id = %any\n";
                }
                c += "    }\n";
            }
        }
        c += &format!("    children {{\n      {} {{\n", Gateway::CHILD);
        c += &format!("        local_ts = {}\n", self.local_ts.join(", "));
        c += &format!("        esp_proposals = {}\n", self.esp_proposals);
        for (k, v) in [("rekey_time", &self.child_rekey_time), ("life_time", &self.child_life_time)] {
            if let Some(v) = v {
                c += &format!("        {k} = {v}\n");
            }
        }
        if !self.extra_child.is_empty() {
            c += &self.extra_child;
            c += "\n";
        }
        c += "      }\n    }\n";
        if !self.extra_conn.is_empty() {
            c += &self.extra_conn;
            c += "\n";
        }
        c += "  }\n}\n";

        c += "pools {\n";
        for p in &self.pools {
            c += &format!("  {} {{\n    addrs = {}\n", p.name, p.addrs);
            if !p.dns.is_empty() {
                c += &format!("    dns = {}\n", p.dns.join(", "));
            }
            if !p.extra.is_empty() {
                c += &p.extra;
                c += "\n";
            }
            c += "  }\n";
        }
        c += "}\n";

        c += "secrets {\n";
        if let Some((id, secret)) = &self.psk {
            c += &format!("  ike-client {{\n    id-1 = {}\n    secret = {}\n  }}\n", quote(id), quote(secret));
        }
        for (i, (id, secret)) in self.eap_users.iter().enumerate() {
            c += &format!("  eap-{i} {{\n    id = {}\n    secret = {}\n  }}\n", quote(id), quote(secret));
        }
        c += "}\n";
        c += &self.extra_swanctl;
        c
    }
}

pub(crate) fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// A running strongSwan responder in the testbed's `gw` namespace. Stopped on drop.
#[derive(Debug)]
pub struct Gateway {
    charon: Charon,
    config: GatewayConfig,
}

impl Gateway {
    /// Name of the connection in swanctl.conf.
    pub const CONN: &'static str = "rw";
    /// Name of the child in swanctl.conf.
    pub const CHILD: &'static str = "net";

    /// Starts charon in `gw` with `config` loaded (≤ 10 s for the daemon to come up).
    pub fn start(tb: &Testbed, config: &GatewayConfig) -> Result<Gateway> {
        let conf = config.swanctl_conf();
        let root = if config.strongswan6 { Some(super::charon::strongswan6_root()?) } else { None };
        let setup = CharonSetup { kernel_esp: config.kernel_esp, root: root.as_deref(), extra: &config.charon_extra };
        let charon = Charon::start_in(tb, Role::Gw, "strongSwan gateway", &conf, &setup, |dir| {
            if let GatewayAuth::Cert { pki, .. } = &config.auth {
                pki.install_gateway(dir)?;
            }
            Ok(())
        })?;
        Ok(Gateway { charon, config: config.clone() })
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// Its private directory (strongswan.conf, swanctl/, charon.log, charon.vici).
    pub fn dir(&self) -> &Path {
        self.charon.dir()
    }

    /// `unix://.../charon.vici`.
    pub fn vici_uri(&self) -> &str {
        self.charon.vici_uri()
    }

    /// Namespace it runs in.
    pub fn namespace(&self) -> &str {
        self.charon.namespace()
    }

    /// PID of charon while running.
    pub fn pid(&self) -> Option<u32> {
        self.charon.pid()
    }

    /// Whether charon is still running.
    pub fn is_running(&mut self) -> bool {
        self.charon.is_running()
    }

    /// Runs `swanctl <args> --uri <vici>` (bounded by 30 s).
    pub fn swanctl(&self, args: &[&str]) -> Result<Output> {
        self.charon.swanctl(args)
    }

    /// Replaces the configuration and reloads it (`swanctl --load-all`); existing SAs stay.
    pub fn reconfigure(&mut self, config: &GatewayConfig) -> Result<()> {
        if let GatewayAuth::Cert { pki, .. } = &config.auth {
            pki.install_gateway(&self.charon.swanctl_dir())?;
        }
        self.charon.reload(&config.swanctl_conf())?;
        self.config = config.clone();
        Ok(())
    }

    /// `swanctl --list-sas` (human readable).
    pub fn list_sas(&self) -> Result<String> {
        self.charon.list_sas()
    }

    /// `swanctl --list-sas --raw` (one `list-sa event {...}` line per IKE SA).
    pub fn list_sas_raw(&self) -> Result<String> {
        self.charon.list_sas_raw()
    }

    /// Number of established IKE SAs.
    pub fn sa_count(&self) -> Result<usize> {
        Ok(charon::count_established(&self.list_sas_raw()?))
    }

    /// Virtual IPs currently leased to clients (`remote-vips` of the IKE SAs).
    pub fn leased_vips(&self) -> Result<Vec<String>> {
        let raw = self.list_sas_raw()?;
        Ok(charon::raw_values(&raw, "remote-vips")
            .into_iter()
            .map(|v| v.trim_matches(|c| c == '[' || c == ']').to_string())
            .filter(|v| !v.is_empty())
            .collect())
    }

    /// Polls `pred` (every 100 ms, ≤ `timeout`).
    pub fn wait_for<F>(&self, what: &str, timeout: Duration, mut pred: F) -> Result<()>
    where
        F: FnMut(&Gateway) -> Result<bool>,
    {
        process::wait_until(what, timeout, Duration::from_millis(100), || pred(self))
            .map_err(|e| self.charon.with_log(e))
    }

    /// Waits until exactly `n` IKE SAs are established.
    pub fn wait_for_sa_count(&self, n: usize, timeout: Duration) -> Result<()> {
        self.wait_for(&format!("{n} established IKE SA(s)"), timeout, |g| Ok(g.sa_count()? == n))
    }

    /// Waits until the charon log contains `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Result<()> {
        self.wait_for(&format!("log line containing {needle:?}"), timeout, |g| Ok(g.log().contains(needle)))
    }

    /// Gateway-initiated delete of all IKE SAs of the connection (`swanctl --terminate --ike rw`).
    pub fn terminate_all(&self) -> Result<()> {
        self.charon
            .swanctl_timeout(&["--terminate", "--ike", Self::CONN, "--timeout", "10"], Duration::from_secs(15))
            .map(|_| ())
    }

    /// Gateway-initiated IKE SA rekey (`swanctl --rekey --ike rw`).
    pub fn rekey_ike(&self) -> Result<()> {
        self.charon.swanctl(&["--rekey", "--ike", Self::CONN]).map(|_| ())
    }

    /// Gateway-initiated Child SA rekey (`swanctl --rekey --child net`).
    pub fn rekey_child(&self) -> Result<()> {
        self.charon.swanctl(&["--rekey", "--child", Self::CHILD]).map(|_| ())
    }

    /// Path of the charon log.
    pub fn log_path(&self) -> PathBuf {
        self.charon.log_path()
    }

    /// Contents of the charon log (ike/cfg/knl/enc at level 2).
    pub fn log(&self) -> String {
        self.charon.log()
    }

    /// Adds the log tail to an error (for test failure messages).
    pub fn explain(&self, e: HarnessError) -> HarnessError {
        self.charon.with_log(e)
    }

    /// SIGTERM, wait ≤ 5 s, SIGKILL (by PID of the charon we started).
    pub fn stop(&mut self) -> Result<()> {
        self.charon.stop()
    }

    /// Kill charon with SIGKILL: the gateway vanishes without sending any Delete.
    pub fn kill(&mut self) {
        self.charon.kill()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_conf_has_psk_pool_and_encap() {
        let c = GatewayConfig::default().swanctl_conf();
        assert!(c.contains("encap = yes"));
        assert!(c.contains("pools = pool0"));
        assert!(c.contains("addrs = 100.64.0.0/24"));
        assert!(c.contains("dns = 198.51.100.53, 198.51.100.54"));
        assert!(c.contains("local_ts = 198.51.100.0/24"));
        assert!(c.contains("id-1 = \"client@ikelink.test\""));
        assert!(c.contains("secret = \"ikelink-test-psk-0123456789\""));
        assert!(!c.contains("dpd_delay"));
    }

    #[test]
    fn kernel_esp_conf_has_no_encap() {
        let d = GatewayConfig::default();
        assert!(!d.kernel_esp && d.encap);
        let k = GatewayConfig::kernel_esp();
        assert!(k.kernel_esp && !k.encap);
        let c = k.swanctl_conf();
        assert!(c.contains("encap = no"), "{c}");
        assert_eq!(c.replace("encap = no", "encap = yes"), d.swanctl_conf());
    }

    #[test]
    fn quotes_secrets() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
