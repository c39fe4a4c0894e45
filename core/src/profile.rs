//! Connection profiles: a small TOML file a user or an app writes (documented in README.md).
//!
//! ```toml
//! [gateway]
//! address = "203.0.113.2"        # IP or host name
//! id = "gw.ikelink.test"         # expected gateway identity (IDr); optional
//!
//! [local]
//! id = "client@ikelink.test"
//!
//! [auth]
//! method = "psk"
//! psk = "secret"                 # or psk_file = "/path"
//!
//! [proposals]                    # optional; strongSwan syntax, defaults like strongSwan's
//! ike = ["aes256gcm16-prfsha256-x25519"]
//! esp = ["aes256gcm16"]
//!
//! [tunnel]                       # optional
//! virtual_ip = true
//! dns = true
//! remote_ts = ["0.0.0.0/0"]      # full tunnel; list subnets for split tunnel
//!
//! [timers]                       # optional
//! retransmit_timeout = 4.0
//! retransmit_base = 1.8
//! retransmit_tries = 5
//! ```
//! Validation errors name the field (`auth.psk: ...`).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use zeroize::Zeroizing;

use crate::ike::{parse_cidr, parse_identity, AuthConfig, EspProposal, IkeConfig, IkeProposal, Retransmit};

/// A profile error, naming the offending field.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read profile {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("profile is not valid TOML: {0}")]
    Toml(String),
    #[error("{field}: {message}")]
    Field { field: String, message: String },
}

fn field(field: &str, message: impl Into<String>) -> ProfileError {
    ProfileError::Field { field: field.into(), message: message.into() }
}

/// The raw profile as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub gateway: GatewaySection,
    pub local: LocalSection,
    pub auth: AuthSection,
    #[serde(default)]
    pub proposals: ProposalsSection,
    #[serde(default)]
    pub tunnel: TunnelSection,
    #[serde(default)]
    pub timers: TimersSection,
    #[serde(default)]
    pub nat: NatSection,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySection {
    pub address: String,
    #[serde(default = "default_port")]
    pub port: u16,
    pub id: Option<String>,
}

fn default_port() -> u16 {
    500
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSection {
    pub id: String,
    /// Local UDP ports for IKE and NAT-T; 0 picks a free port.
    #[serde(default = "default_ike_port")]
    pub ike_port: u16,
    #[serde(default = "default_natt_port")]
    pub natt_port: u16,
}

fn default_ike_port() -> u16 {
    500
}
fn default_natt_port() -> u16 {
    4500
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    pub method: String,
    pub psk: Option<String>,
    pub psk_file: Option<String>,
}

impl std::fmt::Debug for AuthSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSection").field("method", &self.method).field("psk_file", &self.psk_file).finish()
    }
}

impl Drop for AuthSection {
    fn drop(&mut self) {
        if let Some(p) = self.psk.take() {
            drop(Zeroizing::new(p));
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProposalsSection {
    #[serde(default)]
    pub ike: Vec<String>,
    #[serde(default)]
    pub esp: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunnelSection {
    #[serde(default = "yes")]
    pub virtual_ip: bool,
    #[serde(default)]
    pub virtual_ip6: bool,
    #[serde(default = "yes")]
    pub dns: bool,
    #[serde(default = "default_ts")]
    pub remote_ts: Vec<String>,
    /// Our side's selectors when no virtual IP is requested.
    #[serde(default)]
    pub local_ts: Vec<String>,
}

fn yes() -> bool {
    true
}
fn default_ts() -> Vec<String> {
    vec!["0.0.0.0/0".into()]
}

impl Default for TunnelSection {
    fn default() -> Self {
        TunnelSection { virtual_ip: true, virtual_ip6: false, dns: true, remote_ts: default_ts(), local_ts: vec![] }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimersSection {
    #[serde(default = "default_rt")]
    pub retransmit_timeout: f64,
    #[serde(default = "default_rb")]
    pub retransmit_base: f64,
    #[serde(default = "default_tries")]
    pub retransmit_tries: u32,
}

fn default_rt() -> f64 {
    4.0
}
fn default_rb() -> f64 {
    1.8
}
fn default_tries() -> u32 {
    5
}

impl Default for TimersSection {
    fn default() -> Self {
        TimersSection { retransmit_timeout: 4.0, retransmit_base: 1.8, retransmit_tries: 5 }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatSection {
    /// Always use UDP encapsulation (RFC 3948), even without a NAT.
    #[serde(default)]
    pub force_encap: bool,
}

/// A validated profile, ready to connect.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub gateway: SocketAddr,
    pub ike_port: u16,
    pub natt_port: u16,
    pub ike: IkeConfig,
}

impl Profile {
    /// Read and parse a profile file.
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ProfileError::Read { path: path.display().to_string(), source })?;
        Profile::parse(&text)
    }

    /// Parse profile text.
    pub fn parse(text: &str) -> Result<Profile, ProfileError> {
        toml::from_str(text).map_err(|e| ProfileError::Toml(e.to_string()))
    }

    /// Validate every field and resolve the gateway's address (this may query DNS).
    pub fn resolve(&self) -> Result<Resolved, ProfileError> {
        let ike = self.ike_config()?;
        let addr = &self.gateway.address;
        if addr.trim().is_empty() {
            return Err(field("gateway.address", "is empty"));
        }
        let gateway = match addr.parse::<IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, self.gateway.port),
            Err(_) => (addr.as_str(), self.gateway.port)
                .to_socket_addrs()
                .map_err(|e| field("gateway.address", format!("cannot resolve `{addr}`: {e}")))?
                .next()
                .ok_or_else(|| field("gateway.address", format!("`{addr}` has no address")))?,
        };
        Ok(Resolved { gateway, ike_port: self.local.ike_port, natt_port: self.local.natt_port, ike })
    }

    /// Everything but the gateway address, validated.
    pub fn ike_config(&self) -> Result<IkeConfig, ProfileError> {
        let local_id = parse_identity(&self.local.id).map_err(|e| field("local.id", e))?;
        let remote_id = match &self.gateway.id {
            Some(s) => Some(parse_identity(s).map_err(|e| field("gateway.id", e))?),
            None => None,
        };
        let auth = match self.auth.method.as_str() {
            "psk" => {
                let psk = match (&self.auth.psk, &self.auth.psk_file) {
                    (Some(p), None) => Zeroizing::new(p.as_bytes().to_vec()),
                    (None, Some(f)) => {
                        let mut v =
                            std::fs::read(f).map_err(|e| field("auth.psk_file", format!("cannot read `{f}`: {e}")))?;
                        while v.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                            v.pop();
                        }
                        Zeroizing::new(v)
                    }
                    (Some(_), Some(_)) => return Err(field("auth.psk", "give either psk or psk_file, not both")),
                    (None, None) => return Err(field("auth.psk", "method \"psk\" needs psk or psk_file")),
                };
                if psk.is_empty() {
                    return Err(field("auth.psk", "is empty"));
                }
                AuthConfig::Psk(psk)
            }
            other => return Err(field("auth.method", format!("unknown method `{other}` (supported: psk)"))),
        };
        let ike_proposals = if self.proposals.ike.is_empty() {
            IkeProposal::defaults()
        } else {
            self.proposals
                .ike
                .iter()
                .map(|s| IkeProposal::parse(s).map_err(|e| field("proposals.ike", e.to_string())))
                .collect::<Result<_, _>>()?
        };
        let esp_proposals = if self.proposals.esp.is_empty() {
            EspProposal::defaults()
        } else {
            self.proposals
                .esp
                .iter()
                .map(|s| EspProposal::parse(s).map_err(|e| field("proposals.esp", e.to_string())))
                .collect::<Result<_, _>>()?
        };
        let ts = |name: &str, list: &[String]| -> Result<Vec<_>, ProfileError> {
            list.iter().map(|s| parse_cidr(s).map(|c| c.to_ts()).map_err(|e| field(name, e))).collect()
        };
        let ts_r = ts("tunnel.remote_ts", &self.tunnel.remote_ts)?;
        if ts_r.is_empty() {
            return Err(field("tunnel.remote_ts", "needs at least one prefix"));
        }
        let mut ts_i = ts("tunnel.local_ts", &self.tunnel.local_ts)?;
        if ts_i.is_empty() {
            // With a virtual IP the gateway narrows this to the assigned address (§2.9).
            ts_i.push(parse_cidr("0.0.0.0/0").map_err(|e| field("tunnel.local_ts", e))?.to_ts());
            if self.tunnel.virtual_ip6 {
                ts_i.push(parse_cidr("::/0").map_err(|e| field("tunnel.local_ts", e))?.to_ts());
            }
        }
        let t = &self.timers;
        if !(t.retransmit_timeout.is_finite() && t.retransmit_timeout > 0.0 && t.retransmit_timeout <= 600.0) {
            return Err(field("timers.retransmit_timeout", "must be between 0 and 600 seconds"));
        }
        if !(t.retransmit_base.is_finite() && (1.0..=10.0).contains(&t.retransmit_base)) {
            return Err(field("timers.retransmit_base", "must be between 1 and 10"));
        }
        if t.retransmit_tries > 20 {
            return Err(field("timers.retransmit_tries", "must be at most 20"));
        }
        Ok(IkeConfig {
            local_id,
            remote_id,
            auth,
            ike_proposals,
            esp_proposals,
            request_ipv4: self.tunnel.virtual_ip,
            request_ipv6: self.tunnel.virtual_ip6,
            request_dns: self.tunnel.dns,
            ts_i,
            ts_r,
            retransmit: Retransmit {
                timeout: Duration::from_secs_f64(t.retransmit_timeout),
                base: t.retransmit_base,
                tries: t.retransmit_tries,
            },
            force_encap: self.nat.force_encap,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[gateway]
address = "203.0.113.2"
[local]
id = "client@ikelink.test"
[auth]
method = "psk"
psk = "secret"
"#;

    #[test]
    fn minimal_profile_gets_defaults() {
        let p = Profile::parse(MINIMAL).unwrap();
        let r = p.resolve().unwrap();
        assert_eq!(r.gateway, "203.0.113.2:500".parse().unwrap());
        assert_eq!(r.ike.ike_proposals, IkeProposal::defaults());
        assert!(r.ike.request_ipv4 && r.ike.request_dns);
        assert_eq!(r.ike.retransmit, Retransmit::default());
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (MINIMAL.replace("psk = \"secret\"", ""), "auth.psk"),
            (MINIMAL.replace("method = \"psk\"", "method = \"foo\""), "auth.method"),
            (format!("{MINIMAL}[proposals]\nike = [\"aes256-foo\"]\n"), "proposals.ike"),
            (format!("{MINIMAL}[tunnel]\nremote_ts = [\"10.0.0.1/8\"]\n"), "tunnel.remote_ts"),
            (format!("{MINIMAL}[timers]\nretransmit_timeout = -1.0\n"), "timers.retransmit_timeout"),
            (MINIMAL.replace("client@ikelink.test", ""), "local.id"),
        ];
        for (text, name) in cases {
            let e = Profile::parse(&text).unwrap().resolve().unwrap_err().to_string();
            assert!(e.starts_with(name), "{e} should name {name}");
        }
        let e = Profile::parse(&format!("{MINIMAL}bogus = 1\n")).unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
    }
}
