//! Import of strongSwan's app profiles (`.sswan` files, JSON, as strongSwan's Android and Apple clients read
//! them) into an Ikelink profile, so users of those apps can move their configuration over.
//!
//! Supported types: `ikev2-eap` (EAP with user name and password; the gateway authenticates with its
//! certificate) and `ikev2-cert` (client certificate from the embedded PKCS#12). Settings Ikelink has no
//! equivalent for are listed as warnings; types it does not support are errors.

use base64::Engine as _;
use serde_json::Value;

/// A converted profile: the TOML text and the files it refers to.
#[derive(Debug)]
pub struct Imported {
    /// The profile's name (for the file name).
    pub name: String,
    pub toml: String,
    /// (file name, content) of certificates and key stores to write next to the profile.
    pub files: Vec<(String, Vec<u8>)>,
    /// Settings that were not carried over.
    pub warnings: Vec<String>,
}

/// Why a `.sswan` file cannot be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("not a strongSwan profile (JSON): {0}")]
    Json(String),
    #[error("the profile lacks `{0}`")]
    Missing(&'static str),
    #[error("`{field}`: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("profile type `{0}` is not supported (ikev2-eap and ikev2-cert are)")]
    Unsupported(String),
}

fn invalid(field: &'static str, message: impl Into<String>) -> ImportError {
    ImportError::Invalid { field, message: message.into() }
}

fn string<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// A base64 value (standard alphabet; line breaks and spaces ignored).
fn base64(field: &'static str, s: &str) -> Result<Vec<u8>, ImportError> {
    let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(clean).map_err(|e| invalid(field, format!("bad base64: {e}")))
}

/// PEM text for a certificate given as DER or already as PEM.
pub(crate) fn certificate_pem(bytes: Vec<u8>) -> Vec<u8> {
    if bytes.starts_with(b"-----BEGIN") {
        return bytes;
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem.into_bytes()
}

/// A file-system friendly stem for the profile's files.
pub(crate) fn stem(name: &str) -> String {
    let s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect();
    let s = s.trim_matches('-').to_lowercase();
    if s.is_empty() {
        "imported".into()
    } else {
        s.chars().take(64).collect()
    }
}

/// Converts a `.sswan` profile. `dir` is where the profile's files will be written (paths in the TOML point
/// there).
pub fn import_sswan(json: &str, dir: &std::path::Path) -> Result<Imported, ImportError> {
    let v: Value = serde_json::from_str(json).map_err(|e| ImportError::Json(e.to_string()))?;
    let name = string(&v, "name").unwrap_or("imported").to_owned();
    let typ = string(&v, "type").ok_or(ImportError::Missing("type"))?;
    let remote = v.get("remote").ok_or(ImportError::Missing("remote"))?;
    let local = v.get("local").cloned().unwrap_or(Value::Null);
    let stem = stem(&name);
    let path = |file: &str| dir.join(file).to_string_lossy().into_owned();
    let mut files = Vec::new();
    let mut warnings = Vec::new();

    let mut gateway = toml::Table::new();
    gateway.insert("address".into(), string(remote, "addr").ok_or(ImportError::Missing("remote.addr"))?.into());
    if let Some(port) = remote.get("port").and_then(Value::as_u64) {
        let port = u16::try_from(port).ok().filter(|p| *p > 0).ok_or_else(|| invalid("remote.port", "not a port"))?;
        gateway.insert("port".into(), i64::from(port).into());
    }
    if let Some(id) = string(remote, "id") {
        gateway.insert("id".into(), id.into());
    }
    if let Some(cert) = string(remote, "cert") {
        let file = format!("{stem}-ca.pem");
        files.push((file.clone(), certificate_pem(base64("remote.cert", cert)?)));
        gateway.insert("ca".into(), toml::Value::Array(vec![path(&file).into()]));
    }
    if remote.get("certreq").and_then(Value::as_bool) == Some(false) {
        warnings.push("remote.certreq = false is not supported: certificate requests are always sent".into());
    }
    if remote.get("revocation").is_some() {
        warnings.push("remote.revocation: CRLs are not fetched; put the CA's CRL into gateway.crl".into());
    }

    let mut local_t = toml::Table::new();
    if let Some(id) = string(&local, "id") {
        local_t.insert("id".into(), id.into());
    }
    let mut auth = toml::Table::new();
    match typ {
        "ikev2-eap" => {
            auth.insert("method".into(), "eap".into());
            let user = string(&local, "eap_id").ok_or(ImportError::Missing("local.eap_id"))?;
            auth.insert("username".into(), user.into());
            match string(&local, "shared_secret") {
                Some(p) => {
                    auth.insert("password".into(), p.into());
                }
                None => {
                    let file = format!("{stem}.password");
                    auth.insert("password_file".into(), path(&file).into());
                    warnings.push(format!("no password in the profile: put it into {}", path(&file)));
                }
            }
        }
        "ikev2-cert" => {
            auth.insert("method".into(), "cert".into());
            let p12 = string(&local, "p12").ok_or(ImportError::Missing("local.p12"))?;
            let file = format!("{stem}.p12");
            files.push((file.clone(), base64("local.p12", p12)?));
            auth.insert("pkcs12".into(), path(&file).into());
            warnings.push("set auth.pkcs12_password if the PKCS#12 file has a password".into());
        }
        other => return Err(ImportError::Unsupported(other.into())),
    }

    let mut proposals = toml::Table::new();
    for (key, name) in [("ike-proposal", "ike"), ("esp-proposal", "esp")] {
        if let Some(p) = string(&v, key) {
            let list: Vec<toml::Value> =
                p.split(',').map(|s| s.trim()).filter(|s| !s.is_empty()).map(Into::into).collect();
            proposals.insert(name.into(), toml::Value::Array(list));
        }
    }

    let mut tunnel = toml::Table::new();
    if let Some(split) = v.get("split-tunneling") {
        let list = |key: &str| -> Vec<String> {
            match split.get(key) {
                Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
                Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
                _ => Vec::new(),
            }
        };
        let subnets = list("subnets");
        if !subnets.is_empty() {
            tunnel.insert("remote_ts".into(), toml::Value::Array(subnets.into_iter().map(Into::into).collect()));
        }
        let excluded = list("excluded");
        if !excluded.is_empty() {
            tunnel.insert("exclude".into(), toml::Value::Array(excluded.into_iter().map(Into::into).collect()));
        }
        if split.get("block-ipv6").and_then(Value::as_bool) == Some(true) {
            warnings.push("split-tunneling.block-ipv6: use tunnel.kill_switch for a full tunnel instead".into());
        }
    }

    let mut nat = toml::Table::new();
    if let Some(k) = v.get("nat-keepalive").and_then(Value::as_u64) {
        // The profile's keepalive is a u32 of seconds (fuzzing finding, sswan_parse): larger values are an error.
        let k = u32::try_from(k).map_err(|_| invalid("nat-keepalive", "not a number of seconds"))?;
        nat.insert("keepalive".into(), i64::from(k).into());
    }
    for (key, what) in [
        ("dns-servers", "custom DNS servers"),
        ("mtu", "the MTU (use `ikelink connect --mtu`)"),
        ("proxy", "proxy settings"),
        ("apps", "per-app VPN"),
        ("excluded-apps", "per-app VPN"),
        ("ipv6-transport", "IPv6 transport"),
    ] {
        if v.get(key).is_some() {
            warnings.push(format!("{key}: {what} not carried over"));
        }
    }

    let mut doc = toml::Table::new();
    doc.insert("gateway".into(), gateway.into());
    doc.insert("local".into(), local_t.into());
    doc.insert("auth".into(), auth.into());
    if !proposals.is_empty() {
        doc.insert("proposals".into(), proposals.into());
    }
    if !tunnel.is_empty() {
        doc.insert("tunnel".into(), tunnel.into());
    }
    if !nat.is_empty() {
        doc.insert("nat".into(), nat.into());
    }
    let body = toml::to_string(&doc).map_err(|e| ImportError::Json(e.to_string()))?;
    // A TOML comment takes no control characters (fuzzing finding, sswan_parse).
    let printable: String = name.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let toml = format!("# Imported from the strongSwan profile \"{printable}\"\n{body}");
    Ok(Imported { name: stem, toml, files, warnings })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ikelink::profile::Profile;
    use std::path::Path;

    const EAP: &str = r#"{
        "uuid": "d8e4b2c4-4d5a-4f1c-9e4b-7a3f0b1c2d3e",
        "name": "Office VPN",
        "type": "ikev2-eap",
        "remote": { "addr": "vpn.example.com", "id": "vpn.example.com",
                    "cert": "MIIBszCCAVmgAwIBAgIUEjRWeJA=" },
        "local": { "eap_id": "alice" },
        "ike-proposal": "aes256gcm16-prfsha256-x25519, aes256-sha256-modp2048",
        "esp-proposal": "aes256gcm16",
        "split-tunneling": { "subnets": "10.0.0.0/8 192.168.0.0/16", "excluded": "10.1.0.0/16" },
        "nat-keepalive": 30,
        "mtu": 1380
    }"#;

    #[test]
    fn eap_profile_with_ca_and_split_tunnel() {
        let i = import_sswan(EAP, Path::new("/etc/ikelink")).unwrap();
        assert_eq!(i.name, "office-vpn");
        let p = Profile::parse(&i.toml).unwrap_or_else(|e| panic!("{e}\n{}", i.toml));
        assert_eq!(p.gateway.address, "vpn.example.com");
        assert_eq!(p.gateway.id.as_deref(), Some("vpn.example.com"));
        assert_eq!(p.gateway.ca, ["/etc/ikelink/office-vpn-ca.pem"]);
        assert_eq!(p.auth.method, "eap");
        assert_eq!(p.auth.username.as_deref(), Some("alice"));
        assert_eq!(p.auth.password_file.as_deref(), Some("/etc/ikelink/office-vpn.password"));
        assert_eq!(p.proposals.ike, ["aes256gcm16-prfsha256-x25519", "aes256-sha256-modp2048"]);
        assert_eq!(p.tunnel.remote_ts, ["10.0.0.0/8", "192.168.0.0/16"]);
        assert_eq!(p.tunnel.exclude, ["10.1.0.0/16"]);
        assert_eq!(p.excluded().unwrap(), vec![("10.1.0.0".parse().unwrap(), 16)]);
        assert_eq!(p.nat.keepalive, 30);
        // The CA (DER in the file) becomes PEM.
        let (file, pem) = &i.files[0];
        assert_eq!(file, "office-vpn-ca.pem");
        assert!(pem.starts_with(b"-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUEjRWeJA=\n"));
        for w in ["mtu", "password"] {
            assert!(i.warnings.iter().any(|x| x.contains(w)), "warning about {w}: {:?}", i.warnings);
        }
    }

    #[test]
    fn cert_profile_and_errors() {
        let cert = r#"{"name":"x","type":"ikev2-cert","remote":{"addr":"203.0.113.2","port":4501},
                       "local":{"p12":"AAEC"}}"#;
        let i = import_sswan(cert, Path::new("/tmp")).unwrap();
        let p = Profile::parse(&i.toml).unwrap();
        assert_eq!((p.auth.method.as_str(), p.gateway.port), ("cert", 4501));
        assert_eq!(p.auth.pkcs12.as_deref(), Some("/tmp/x.p12"));
        assert_eq!(i.files, vec![("x.p12".to_string(), vec![0, 1, 2])]);

        let bad = |json: &str| import_sswan(json, Path::new("/tmp")).unwrap_err().to_string();
        assert!(bad("nonsense").contains("JSON"));
        assert!(bad(r#"{"type":"ikev2-byod-eap","remote":{"addr":"a"}}"#).contains("not supported"));
        assert!(bad(r#"{"type":"ikev2-eap","remote":{}}"#).contains("remote.addr"));
        assert!(bad(r#"{"type":"ikev2-eap","remote":{"addr":"a"}}"#).contains("local.eap_id"));
        assert!(bad(r#"{"type":"ikev2-cert","remote":{"addr":"a"},"local":{"p12":"!!"}}"#).contains("base64"));
        assert!(bad(r#"{"type":"ikev2-cert","remote":{"addr":"a","port":0},"local":{"p12":"AA=="}}"#).contains("port"));
    }
}
