//! Import of Apple configuration profiles (`.mobileconfig`) with an IKEv2 VPN payload into an Ikelink profile,
//! so a gateway already set up for iPhones and Macs can be used from the desktop client.
//!
//! The file is a property list (XML or binary), possibly signed: a CMS (PKCS#7) SignedData wrapper whose
//! content is the property list. The content is taken out without verifying the signature (the import says so
//! in a warning); encrypted profiles and detached signatures are errors. The first payload of type
//! `com.apple.vpn.managed` with `VPNType = IKEv2` is converted; its certificates come from the profile's
//! `com.apple.security.pkcs12` (our identity, `PayloadCertificateUUID`) and `com.apple.security.root` / `.pem`
//! payloads (the gateway's CA) and are written next to the TOML, as the `.sswan` import does. Every key Ikelink
//! has no equivalent for is listed as a warning. Bad input is an [`ImportError`], never a panic; secrets
//! (`SharedSecret`, `AuthPassword`, the PKCS#12 password) go only into the profile, never into a message.

use plist::{Dictionary, Value};

use crate::sswan::{certificate_pem, stem, Imported};

/// Why a `.mobileconfig` cannot be imported. No variant carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("not an Apple configuration profile (property list): {0}")]
    Plist(String),
    #[error(
        "signed profile whose CMS (PKCS#7) wrapper cannot be read: {0}; export the profile unsigned, or take the \
         content out with `openssl smime -verify -noverify -inform DER -in FILE -out unsigned.mobileconfig`"
    )]
    Signed(String),
    #[error("the profile is encrypted (EncryptedPayloadContent): Ikelink cannot read it; export it unencrypted")]
    Encrypted,
    #[error("the profile has no VPN payload (PayloadType com.apple.vpn.managed)")]
    NoVpn,
    #[error("VPN type `{0}` is not supported: only IKEv2 profiles are imported")]
    UnsupportedType(String),
    #[error("the profile lacks `{0}`")]
    Missing(String),
    #[error("`{field}`: {message}")]
    Invalid { field: String, message: String },
    #[error("{0}")]
    Unsupported(String),
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ImportError {
    ImportError::Invalid { field: field.into(), message: message.into() }
}

/// Converts a `.mobileconfig` (XML or binary property list, signed or not). `dir` is where the profile's files
/// will be written (paths in the TOML point there).
pub fn import_mobileconfig(data: &[u8], dir: &std::path::Path) -> Result<Imported, ImportError> {
    let mut warnings = Vec::new();
    let unwrapped;
    let plist_bytes = if looks_like_plist(data) {
        data
    } else if data.first() == Some(&0x30) {
        unwrapped = cms::signed_content(data).map_err(ImportError::Signed)?;
        if !looks_like_plist(&unwrapped) {
            return Err(ImportError::Plist("the signed content is not a property list".into()));
        }
        warnings.push("the profile is signed; its signature was not verified: import only profiles you trust".into());
        &unwrapped
    } else {
        return Err(ImportError::Plist("neither an XML nor a binary property list, nor a signed profile".into()));
    };
    let root = Value::from_reader(std::io::Cursor::new(plist_bytes)).map_err(|e| ImportError::Plist(e.to_string()))?;
    let root = root.as_dictionary().ok_or_else(|| ImportError::Plist("the top level is not a dictionary".into()))?;
    if root.contains_key("EncryptedPayloadContent") {
        return Err(ImportError::Encrypted);
    }
    let payloads: Vec<&Dictionary> = match root.get("PayloadContent") {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_dictionary).collect(),
        Some(_) => return Err(invalid("PayloadContent", "not an array of payloads")),
        // A bare VPN payload (as some tools export it).
        None => vec![root],
    };
    let vpns: Vec<&Dictionary> =
        payloads.iter().copied().filter(|p| payload_type(p) == "com.apple.vpn.managed").collect();
    let vpn = *vpns.first().ok_or(ImportError::NoVpn)?;
    if vpns.len() > 1 {
        warnings.push(format!("the profile has {} VPN payloads: only the first was imported", vpns.len()));
    }
    let vpn_type = string(vpn, "VPNType", "VPNType")?.ok_or_else(|| ImportError::Missing("VPNType".into()))?;
    if vpn_type != "IKEv2" {
        return Err(ImportError::UnsupportedType(printable(vpn_type)));
    }
    let ike = match vpn.get("IKEv2") {
        Some(Value::Dictionary(d)) => d,
        Some(_) => return Err(invalid("IKEv2", "not a dictionary")),
        None => return Err(ImportError::Missing("IKEv2".into())),
    };

    let name =
        [string(vpn, "UserDefinedName", "UserDefinedName"), string(vpn, "PayloadDisplayName", "PayloadDisplayName")]
            .into_iter()
            .find_map(|s| s.ok().flatten())
            .or_else(|| root.get("PayloadDisplayName").and_then(Value::as_string))
            .unwrap_or("imported")
            .to_owned();
    let stem = stem(&name);
    let path = |file: &str| dir.join(file).to_string_lossy().into_owned();
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();

    let mut gateway = toml::Table::new();
    let address = string(ike, "RemoteAddress", "IKEv2.RemoteAddress")?
        .filter(|a| !a.trim().is_empty())
        .ok_or_else(|| ImportError::Missing("IKEv2.RemoteAddress".into()))?;
    gateway.insert("address".into(), address.into());
    let remote_id = string(ike, "RemoteIdentifier", "IKEv2.RemoteIdentifier")?;
    let server_cn = string(ike, "ServerCertificateCommonName", "IKEv2.ServerCertificateCommonName")?;
    match (remote_id, server_cn) {
        (Some(id), cn) => {
            gateway.insert("id".into(), id.into());
            if let Some(cn) = cn.filter(|cn| *cn != id) {
                warnings.push(format!(
                    "IKEv2.ServerCertificateCommonName ({cn}) differs from RemoteIdentifier: Ikelink checks that the \
                     gateway's certificate names gateway.id, not a separate common name"
                ));
            }
        }
        (None, Some(cn)) => {
            gateway.insert("id".into(), cn.into());
        }
        (None, None) => {}
    }
    // The gateway's CAs: every root and PEM certificate payload.
    let mut cas = Vec::new();
    for (i, p) in payloads.iter().enumerate() {
        let kind = payload_type(p);
        if kind != "com.apple.security.root" && kind != "com.apple.security.pem" {
            continue;
        }
        let field = format!("PayloadContent[{i}].PayloadContent");
        let der =
            p.get("PayloadContent").and_then(Value::as_data).ok_or_else(|| invalid(&field, "no certificate data"))?;
        let file =
            format!("{stem}-ca{}.pem", if cas.is_empty() { String::new() } else { format!("-{}", cas.len() + 1) });
        files.push((file.clone(), certificate_pem(der.to_vec())));
        cas.push(toml::Value::from(path(&file)));
    }
    if !cas.is_empty() {
        gateway.insert("ca".into(), toml::Value::Array(cas.clone()));
    }
    if let Some(issuer) = string(ike, "ServerCertificateIssuerCommonName", "IKEv2.ServerCertificateIssuerCommonName")? {
        let anchors = if cas.is_empty() { "the system trust store" } else { "the profile's CA certificates" };
        warnings.push(format!(
            "IKEv2.ServerCertificateIssuerCommonName ({issuer}) is not checked as such: the gateway's chain must \
             lead to {anchors}"
        ));
    }

    let mut local = toml::Table::new();
    let method = string(ike, "AuthenticationMethod", "IKEv2.AuthenticationMethod")?.unwrap_or("SharedSecret");
    let eap = flag(ike, "ExtendedAuthEnabled")?.unwrap_or(false);
    if let Some(id) = string(ike, "LocalIdentifier", "IKEv2.LocalIdentifier")? {
        if method == "Certificate" && id.contains('=') {
            // A DN: Ikelink's default for certificates is the certificate's subject DN.
            warnings.push(format!(
                "IKEv2.LocalIdentifier ({id}) looks like a distinguished name: left out, so the certificate's \
                 subject DN is sent"
            ));
        } else {
            local.insert("id".into(), id.into());
        }
    }

    let mut auth = toml::Table::new();
    let mut tunnel = toml::Table::new();
    let client_p12 = |files: &mut Vec<(String, Vec<u8>)>, warnings: &mut Vec<String>| {
        client_pkcs12(ike, &payloads, &stem, files, warnings)
    };
    match (method, eap) {
        ("SharedSecret", false) => {
            auth.insert("method".into(), "psk".into());
            match secret(ike, "SharedSecret")? {
                Some(psk) => {
                    auth.insert("psk".into(), psk.into());
                }
                None => {
                    let file = format!("{stem}.psk");
                    auth.insert("psk_file".into(), path(&file).into());
                    warnings.push(format!("no IKEv2.SharedSecret in the profile: put the PSK into {}", path(&file)));
                }
            }
        }
        ("None", true) => {
            auth.insert("method".into(), "eap".into());
            eap_password(ike, &mut auth, &stem, &path, &mut warnings)?;
        }
        ("Certificate", false) => {
            auth.insert("method".into(), "cert".into());
            let (p12, password) = client_p12(&mut files, &mut warnings)?;
            auth.insert("pkcs12".into(), path(&p12).into());
            if let Some(pw) = password {
                auth.insert("pkcs12_password".into(), pw.into());
            }
        }
        ("Certificate", true) => {
            // EAP-TLS with the certificate (Apple's way to say it). Ikelink's EAP-TLS reads PEM files.
            auth.insert("method".into(), "eap".into());
            auth.insert("eap_method".into(), "tls".into());
            let (p12, _) = client_p12(&mut files, &mut warnings)?;
            let (cert, key) = (format!("{stem}-cert.pem"), format!("{stem}-key.pem"));
            auth.insert("cert".into(), path(&cert).into());
            auth.insert("key".into(), path(&key).into());
            warnings.push(format!(
                "EAP-TLS reads PEM files: convert {p} with `openssl pkcs12 -in {p} -nokeys -out {c}` and \
                 `openssl pkcs12 -in {p} -nocerts -nodes -out {k}`",
                p = path(&p12),
                c = path(&cert),
                k = path(&key)
            ));
            if gateway.get("ca").is_none() {
                warnings.push("EAP-TLS checks the EAP server against gateway.ca: the profile has no CA, add it".into());
            }
            if let Some(v) = string(ike, "TLSMaximumVersion", "IKEv2.TLSMaximumVersion")? {
                if v == "1.3" {
                    auth.insert("tls_max_version".into(), "1.3".into());
                }
            }
        }
        ("SharedSecret", true) => {
            return Err(ImportError::Unsupported(
                "IKEv2.AuthenticationMethod = SharedSecret with ExtendedAuthEnabled (EAP for us, a shared secret \
                 for the gateway) is not supported: Ikelink's EAP needs a gateway certificate"
                    .into(),
            ))
        }
        ("None", false) => {
            return Err(invalid("IKEv2.AuthenticationMethod", "None needs ExtendedAuthEnabled (EAP)"));
        }
        (other, _) => {
            return Err(invalid(
                "IKEv2.AuthenticationMethod",
                format!("unknown method `{}` (None, SharedSecret, Certificate)", printable(other)),
            ))
        }
    }

    let pfs = flag(ike, "EnablePFS")?.unwrap_or(false);
    let mut proposals = toml::Table::new();
    let mut timers = toml::Table::new();
    if let Some(p) = sa_parameters(ike, "IKESecurityAssociationParameters", Sa::Ike, &mut warnings)? {
        if let Some(proposal) = p.proposal {
            proposals.insert("ike".into(), toml::Value::Array(vec![proposal.into()]));
        }
        if let Some(min) = p.lifetime_minutes {
            timers.insert("rekey_ike".into(), toml::Value::Integer(i64::from(min) * 60));
        }
    }
    if let Some(p) = sa_parameters(ike, "ChildSecurityAssociationParameters", Sa::Child { pfs }, &mut warnings)? {
        if let Some(proposal) = p.proposal {
            proposals.insert("esp".into(), toml::Value::Array(vec![proposal.into()]));
        }
        if let Some(min) = p.lifetime_minutes {
            timers.insert("rekey_child".into(), toml::Value::Integer(i64::from(min) * 60));
        }
    } else if pfs {
        // Apple's default Child SA parameters (AES-256, SHA2-256, group 14) with PFS.
        proposals.insert("esp".into(), toml::Value::Array(vec!["aes256-sha256-modp2048".into()]));
    }
    if let Some(rate) = string(ike, "DeadPeerDetectionRate", "IKEv2.DeadPeerDetectionRate")? {
        let dpd = match rate {
            "None" => 0,
            "Low" => 1800,
            "Medium" => 600,
            "High" => 60,
            other => {
                let message = format!("unknown rate `{}` (None, Low, Medium, High)", printable(other));
                return Err(invalid("IKEv2.DeadPeerDetectionRate", message));
            }
        };
        timers.insert("dpd".into(), toml::Value::Integer(dpd));
    }

    let mut ike_t = toml::Table::new();
    if flag(ike, "DisableMOBIKE")? == Some(true) {
        ike_t.insert("mobike".into(), false.into());
    }
    if flag(ike, "DisableRedirect")? == Some(true) {
        ike_t.insert("redirect".into(), false.into());
    }
    let mut nat = toml::Table::new();
    if let Some(k) = integer(ike, "NATKeepAliveInterval")? {
        let k = u32::try_from(k)
            .ok()
            .filter(|k| *k > 0)
            .ok_or_else(|| invalid("IKEv2.NATKeepAliveInterval", "not a number of seconds"))?;
        nat.insert("keepalive".into(), i64::from(k).into());
    }
    let include_all = flag(ike, "IncludeAllNetworks")?.or(flag(vpn, "IncludeAllNetworks")?).unwrap_or(false);
    if include_all {
        tunnel.insert("kill_switch".into(), true.into());
        if flag(ike, "ExcludeLocalNetworks")?.or(flag(vpn, "ExcludeLocalNetworks")?) == Some(true) {
            warnings.push("ExcludeLocalNetworks: list your local networks in tunnel.exclude".into());
        }
    }

    for key in ike.keys() {
        if let Some(w) = ikev2_key_warning(key) {
            warnings.push(w);
        }
    }
    for key in vpn.keys() {
        if let Some(w) = vpn_key_warning(key) {
            warnings.push(w);
        }
    }
    for p in &payloads {
        let kind = payload_type(p);
        if !matches!(
            kind,
            "com.apple.vpn.managed"
                | "com.apple.security.root"
                | "com.apple.security.pem"
                | "com.apple.security.pkcs12"
                | "Configuration"
        ) {
            warnings.push(format!("payload {} is not carried over", printable(kind)));
        }
    }

    let mut doc = toml::Table::new();
    doc.insert("gateway".into(), gateway.into());
    doc.insert("local".into(), local.into());
    doc.insert("auth".into(), auth.into());
    for (key, table) in [("proposals", proposals), ("tunnel", tunnel), ("timers", timers), ("nat", nat), ("ike", ike_t)]
    {
        if !table.is_empty() {
            doc.insert(key.into(), table.into());
        }
    }
    let body = toml::to_string(&doc).map_err(|e| ImportError::Plist(e.to_string()))?;
    let toml = format!("# Imported from the Apple configuration profile \"{}\"\n{body}", printable(&name));
    Ok(Imported { name: stem, toml, files, warnings })
}

/// Text for a message or a TOML comment: no control characters, at most 100 characters.
fn printable(s: &str) -> String {
    s.chars().take(100).map(|c| if c.is_control() { ' ' } else { c }).collect()
}

fn looks_like_plist(data: &[u8]) -> bool {
    if data.starts_with(b"bplist") {
        return true;
    }
    let text = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    let start = text.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(text.len());
    text[start..].starts_with(b"<")
}

fn payload_type(d: &Dictionary) -> &str {
    d.get("PayloadType").and_then(Value::as_string).unwrap_or("")
}

/// A string value (empty: absent); another type is an error naming `field`.
fn string<'a>(d: &'a Dictionary, key: &str, field: &str) -> Result<Option<&'a str>, ImportError> {
    match d.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str()).filter(|s| !s.is_empty())),
        Some(_) => Err(invalid(field, "not a string")),
    }
}

/// A secret string: like [`string`], and the error never shows the value.
fn secret<'a>(d: &'a Dictionary, key: &str) -> Result<Option<&'a str>, ImportError> {
    string(d, key, &format!("IKEv2.{key}"))
}

/// Apple's flags: a boolean, or the integer 0 or 1.
fn flag(d: &Dictionary, key: &str) -> Result<Option<bool>, ImportError> {
    match d.get(key) {
        None => Ok(None),
        Some(Value::Boolean(b)) => Ok(Some(*b)),
        Some(Value::Integer(i)) => match i.as_signed() {
            Some(0) => Ok(Some(false)),
            Some(1) => Ok(Some(true)),
            _ => Err(invalid(key, "not 0 or 1")),
        },
        Some(_) => Err(invalid(key, "not a boolean")),
    }
}

fn integer(d: &Dictionary, key: &str) -> Result<Option<i64>, ImportError> {
    match d.get(key) {
        None => Ok(None),
        Some(Value::Integer(i)) => i.as_signed().map(Some).ok_or_else(|| invalid(key, "out of range")),
        Some(_) => Err(invalid(key, "not an integer")),
    }
}

/// The EAP user name and password (or a password file to fill in).
fn eap_password(
    ike: &Dictionary,
    auth: &mut toml::Table,
    stem: &str,
    path: &dyn Fn(&str) -> String,
    warnings: &mut Vec<String>,
) -> Result<(), ImportError> {
    let user = string(ike, "AuthName", "IKEv2.AuthName")?
        .ok_or_else(|| ImportError::Missing("IKEv2.AuthName (the EAP user name)".into()))?;
    auth.insert("username".into(), user.into());
    match secret(ike, "AuthPassword")? {
        Some(p) => {
            auth.insert("password".into(), p.into());
        }
        None => {
            let file = format!("{stem}.password");
            auth.insert("password_file".into(), path(&file).into());
            warnings.push(format!("no IKEv2.AuthPassword in the profile: put the password into {}", path(&file)));
        }
    }
    Ok(())
}

/// Our identity: the PKCS#12 payload `PayloadCertificateUUID` names, written as `{stem}.p12`; its password if
/// the profile has it. Without a usable payload the file name is still returned, with a warning to supply it.
fn client_pkcs12(
    ike: &Dictionary,
    payloads: &[&Dictionary],
    stem: &str,
    files: &mut Vec<(String, Vec<u8>)>,
    warnings: &mut Vec<String>,
) -> Result<(String, Option<String>), ImportError> {
    let file = format!("{stem}.p12");
    let Some(uuid) = string(ike, "PayloadCertificateUUID", "IKEv2.PayloadCertificateUUID")? else {
        warnings.push(format!("no IKEv2.PayloadCertificateUUID: put the client's PKCS#12 into {file}"));
        return Ok((file, None));
    };
    let payload = payloads
        .iter()
        .find(|p| p.get("PayloadUUID").and_then(Value::as_string) == Some(uuid))
        .ok_or_else(|| invalid("IKEv2.PayloadCertificateUUID", "names no payload of the profile"))?;
    match payload_type(payload) {
        "com.apple.security.pkcs12" => {}
        kind @ ("com.apple.security.scep" | "com.apple.security.acme") => {
            return Err(ImportError::Unsupported(format!(
                "the client certificate comes from enrollment ({kind}), which Ikelink cannot do: enroll, export \
                 the identity as PKCS#12 and set auth.pkcs12"
            )))
        }
        other => {
            let message = format!("names a {} payload, not com.apple.security.pkcs12", printable(other));
            return Err(invalid("IKEv2.PayloadCertificateUUID", message));
        }
    }
    let data = payload
        .get("PayloadContent")
        .and_then(Value::as_data)
        .ok_or_else(|| invalid("com.apple.security.pkcs12.PayloadContent", "no PKCS#12 data"))?;
    files.push((file.clone(), data.to_vec()));
    let password = match payload.get("Password") {
        Some(Value::String(p)) => Some(p.clone()),
        Some(_) => return Err(invalid("com.apple.security.pkcs12.Password", "not a string")),
        None => {
            warnings.push("the PKCS#12 payload has no Password: set auth.pkcs12_password if it needs one".into());
            None
        }
    };
    Ok((file, password))
}

#[derive(Clone, Copy, PartialEq)]
enum Sa {
    Ike,
    Child { pfs: bool },
}

struct SaParameters {
    /// One proposal in strongSwan syntax; None when an algorithm is not supported (a warning says which).
    proposal: Option<String>,
    lifetime_minutes: Option<u32>,
}

/// `IKESecurityAssociationParameters` / `ChildSecurityAssociationParameters` as one proposal, with Apple's
/// defaults (AES-256, SHA2-256, group 14) for what is not given.
fn sa_parameters(
    ike: &Dictionary,
    key: &str,
    sa: Sa,
    warnings: &mut Vec<String>,
) -> Result<Option<SaParameters>, ImportError> {
    let d = match ike.get(key) {
        None => return Ok(None),
        Some(Value::Dictionary(d)) => d,
        Some(_) => return Err(invalid(format!("IKEv2.{key}"), "not a dictionary")),
    };
    let field = |k: &str| format!("IKEv2.{key}.{k}");
    let encryption = string(d, "EncryptionAlgorithm", &field("EncryptionAlgorithm"))?.unwrap_or("AES-256");
    let integrity = string(d, "IntegrityAlgorithm", &field("IntegrityAlgorithm"))?.unwrap_or("SHA2-256");
    let group = integer(d, "DiffieHellmanGroup")?.unwrap_or(14);
    let lifetime_minutes = match integer(d, "LifeTimeInMinutes")? {
        None => None,
        Some(m) => Some(
            u32::try_from(m)
                .ok()
                .filter(|m| (1..=71_582_788).contains(m))
                .ok_or_else(|| invalid(field("LifeTimeInMinutes"), "not a number of minutes"))?,
        ),
    };
    for k in d.keys() {
        if !matches!(
            k.as_str(),
            "EncryptionAlgorithm" | "IntegrityAlgorithm" | "DiffieHellmanGroup" | "LifeTimeInMinutes"
        ) {
            warnings.push(format!("{} is not supported; not carried over", field(k)));
        }
    }
    let which = if sa == Sa::Ike { "IKE" } else { "ESP" };
    let unsupported = |what: &str, value: &str, warnings: &mut Vec<String>| {
        warnings.push(format!(
            "{} = {} is not supported: Ikelink's default {which} proposals are used",
            field(what),
            printable(value)
        ));
    };
    let (enc, aead) = match encryption {
        "AES-128" => ("aes128", false),
        "AES-256" => ("aes256", false),
        "AES-128-GCM" => ("aes128gcm16", true),
        "AES-256-GCM" => ("aes256gcm16", true),
        "ChaCha20Poly1305" => ("chacha20poly1305", true),
        "3DES" => ("3des", false),
        other => {
            unsupported("EncryptionAlgorithm", other, warnings);
            return Ok(Some(SaParameters { proposal: None, lifetime_minutes }));
        }
    };
    let (integ, prf) = match integrity {
        "SHA1-96" => ("sha1", "prfsha1"),
        "SHA2-256" => ("sha256", "prfsha256"),
        "SHA2-384" => ("sha384", "prfsha384"),
        "SHA2-512" => ("sha512", "prfsha512"),
        other => {
            unsupported("IntegrityAlgorithm", other, warnings);
            return Ok(Some(SaParameters { proposal: None, lifetime_minutes }));
        }
    };
    let dh = match group {
        2 => "modp1024",
        5 => "modp1536",
        14 => "modp2048",
        15 => "modp3072",
        16 => "modp4096",
        19 => "ecp256",
        20 => "ecp384",
        21 => "ecp521",
        31 => "x25519",
        32 => "x448",
        other => {
            unsupported("DiffieHellmanGroup", &other.to_string(), warnings);
            return Ok(Some(SaParameters { proposal: None, lifetime_minutes }));
        }
    };
    let proposal = match sa {
        Sa::Ike if aead => format!("{enc}-{prf}-{dh}"),
        Sa::Ike => format!("{enc}-{integ}-{dh}"),
        Sa::Child { pfs } => {
            let mut p = if aead { enc.to_owned() } else { format!("{enc}-{integ}") };
            if pfs {
                p.push('-');
                p.push_str(dh);
            }
            p
        }
    };
    Ok(Some(SaParameters { proposal: Some(proposal), lifetime_minutes }))
}

/// A warning for an `IKEv2` key without an Ikelink equivalent (None: carried over, or equivalent by default).
fn ikev2_key_warning(key: &str) -> Option<String> {
    let why = match key {
        "RemoteAddress"
        | "RemoteIdentifier"
        | "LocalIdentifier"
        | "AuthenticationMethod"
        | "ExtendedAuthEnabled"
        | "AuthName"
        | "AuthPassword"
        | "SharedSecret"
        | "PayloadCertificateUUID"
        | "ServerCertificateCommonName"
        | "ServerCertificateIssuerCommonName"
        | "IKESecurityAssociationParameters"
        | "ChildSecurityAssociationParameters"
        | "DeadPeerDetectionRate"
        | "DisableMOBIKE"
        | "DisableRedirect"
        | "EnablePFS"
        | "IncludeAllNetworks"
        | "ExcludeLocalNetworks"
        | "NATKeepAliveInterval"
        | "TLSMaximumVersion"
        // The key type follows from the PKCS#12; revocation is checked by default (best effort, as Apple does).
        | "CertificateType"
        | "EnableCertificateRevocationCheck"
        | "UseConfigurationAttributeInternalIPSubnet" => return None,
        "OnDemandEnabled" | "OnDemandRules" | "OnDemandUserOverrideDisabled" => "connect-on-demand is not supported",
        "MTU" => "the MTU is not carried over (use `ikelink connect --mtu`)",
        "TLSMinimumVersion" => "Ikelink's EAP-TLS needs TLS 1.2 at least",
        "NATKeepAliveOffloadEnable" => "keepalive offload is an Apple hardware feature",
        "EnableFallback" => "fallback to cellular (Wi-Fi Assist) is Apple's",
        "DisconnectOnIdle" | "DisconnectOnIdleTimer" => "disconnecting when idle is not supported",
        "EnforceRoutes" | "ExcludeCellularServices" | "ExcludeAPNs" | "ExcludeDeviceCommunication" => {
            "Apple's routing options are not carried over"
        }
        "PPK" | "PPKIdentifier" | "PPKMandatory" => "post-quantum preshared keys (RFC 8784) are not supported",
        "AuthPasswordDefined" | "PasswordDefined" => return None,
        _ => "not supported; not carried over",
    };
    Some(format!("IKEv2.{}: {why}", printable(key)))
}

/// A warning for a key of the VPN payload itself (outside `IKEv2`).
fn vpn_key_warning(key: &str) -> Option<String> {
    let why = match key {
        k if k.starts_with("Payload") => return None,
        "VPNType" | "IKEv2" | "UserDefinedName" | "IncludeAllNetworks" | "ExcludeLocalNetworks" | "IPv4" => {
            return None
        }
        "DNS" => "custom DNS settings are not carried over (Ikelink takes the gateway's)",
        "Proxies" => "proxy settings are not carried over",
        "OnDemandEnabled" | "OnDemandRules" => "connect-on-demand is not supported",
        "VPNSubType" | "VendorConfig" => "vendor settings are not carried over",
        _ => "not supported; not carried over",
    };
    Some(format!("{}: {why}", printable(key)))
}

/// The content of a CMS (PKCS#7, RFC 5652) SignedData, as Apple's and OpenSSL's signing tools write signed
/// profiles: DER or BER (indefinite lengths, the content in chunks). The signature is not verified.
mod cms {
    /// 1.2.840.113549.1.7.2 and .3: signedData, envelopedData.
    pub(super) const SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
    const ENVELOPED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03];
    /// How deep BER may nest (ContentInfo > SignedData > encapContentInfo > [0] > chunks).
    const MAX_DEPTH: usize = 16;

    /// One BER element: its identifier octet and its contents (without an end-of-contents marker).
    struct Tlv<'a> {
        tag: u8,
        body: &'a [u8],
    }

    /// The element at the start of `input` and what follows it.
    fn element(input: &[u8], depth: usize) -> Result<(Tlv<'_>, &[u8]), String> {
        if depth > MAX_DEPTH {
            return Err("nested too deeply".into());
        }
        let (&tag, rest) = input.split_first().ok_or("truncated")?;
        if tag & 0x1f == 0x1f {
            return Err("multi-byte tags are not used in CMS".into());
        }
        let (&first, rest) = rest.split_first().ok_or("truncated length")?;
        if first == 0x80 {
            // Indefinite length (BER, constructed only): elements up to an end-of-contents marker.
            if tag & 0x20 == 0 {
                return Err("indefinite length on a primitive element".into());
            }
            let mut cursor = rest;
            loop {
                if cursor.starts_with(&[0, 0]) {
                    let len = rest.len() - cursor.len();
                    return Ok((Tlv { tag, body: &rest[..len] }, &cursor[2..]));
                }
                if cursor.is_empty() {
                    return Err("no end-of-contents marker".into());
                }
                cursor = element(cursor, depth + 1)?.1;
            }
        }
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n > 4 || rest.len() < n {
                return Err("bad length".into());
            }
            let len = rest[..n].iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            return take(tag, &rest[n..], len);
        };
        take(tag, rest, len)
    }

    fn take(tag: u8, rest: &[u8], len: usize) -> Result<(Tlv<'_>, &[u8]), String> {
        if rest.len() < len {
            return Err("truncated".into());
        }
        Ok((Tlv { tag, body: &rest[..len] }, &rest[len..]))
    }

    /// The elements inside a constructed element's body.
    fn children(body: &[u8], depth: usize) -> Result<Vec<Tlv<'_>>, String> {
        let mut out = Vec::new();
        let mut cursor = body;
        while !cursor.is_empty() {
            let (t, rest) = element(cursor, depth + 1)?;
            out.push(t);
            cursor = rest;
        }
        Ok(out)
    }

    /// An OCTET STRING's bytes, primitive or constructed from chunks (BER).
    fn octets(t: &Tlv<'_>, depth: usize, out: &mut Vec<u8>) -> Result<(), String> {
        match t.tag {
            0x04 => {
                out.extend_from_slice(t.body);
                Ok(())
            }
            0x24 => children(t.body, depth)?.iter().try_for_each(|c| octets(c, depth + 1, out)),
            _ => Err("the content is not an OCTET STRING".into()),
        }
    }

    pub(super) fn signed_content(data: &[u8]) -> Result<Vec<u8>, String> {
        let (info, _) = element(data, 0)?;
        if info.tag != 0x30 {
            return Err("not a CMS ContentInfo".into());
        }
        let parts = children(info.body, 0)?;
        let oid = parts.first().filter(|t| t.tag == 0x06).ok_or("no content type")?;
        if oid.body == ENVELOPED_DATA {
            return Err("the profile is encrypted (CMS EnvelopedData)".into());
        }
        if oid.body != SIGNED_DATA {
            return Err("not CMS SignedData".into());
        }
        let explicit = parts.get(1).filter(|t| t.tag == 0xa0).ok_or("no SignedData")?;
        let signed = children(explicit.body, 1)?;
        let signed = signed.first().filter(|t| t.tag == 0x30).ok_or("no SignedData")?;
        // version, digestAlgorithms, encapContentInfo, ...
        let fields = children(signed.body, 2)?;
        let encap = fields.get(2).filter(|t| t.tag == 0x30).ok_or("no encapsulated content")?;
        let encap = children(encap.body, 3)?;
        let content = encap.get(1).filter(|t| t.tag == 0xa0).ok_or("detached signature: the profile is not inside")?;
        let inner = children(content.body, 4)?;
        let octet_string = inner.first().ok_or("empty content")?;
        let mut out = Vec::new();
        octets(octet_string, 5, &mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ikelink::profile::Profile;
    use std::path::Path;

    fn sample(name: &str) -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn import(data: &[u8]) -> (Imported, Profile) {
        let i = import_mobileconfig(data, Path::new("/etc/ikelink")).unwrap_or_else(|e| panic!("{e}"));
        let p = Profile::parse(&i.toml).unwrap_or_else(|e| panic!("{e}\n{}", i.toml));
        (i, p)
    }

    fn has_warning(i: &Imported, what: &str) -> bool {
        i.warnings.iter().any(|w| w.contains(what))
    }

    #[test]
    fn eap_profile_with_ca_proposals_and_timers() {
        let (i, p) = import(&sample("eap.mobileconfig"));
        assert_eq!(i.name, "office-vpn");
        assert_eq!(p.gateway.address, "vpn.example.com");
        assert_eq!(p.gateway.id.as_deref(), Some("vpn.example.com"));
        assert_eq!(p.gateway.ca, ["/etc/ikelink/office-vpn-ca.pem"]);
        assert_eq!(p.local.id.as_deref(), Some("alice@example.com"));
        assert_eq!(p.auth.method, "eap");
        assert_eq!(p.auth.username.as_deref(), Some("alice"));
        assert_eq!(p.auth.password.as_deref(), Some("correct horse battery staple"));
        assert_eq!(p.proposals.ike, ["aes256gcm16-prfsha384-ecp384"]);
        assert_eq!(p.proposals.esp, ["aes256gcm16-ecp384"]);
        assert_eq!((p.timers.rekey_ike, p.timers.rekey_child, p.timers.dpd), (1440 * 60, 60 * 60, 60));
        assert!(!p.ike.mobike);
        assert!(p.ike.redirect);
        assert!(p.tunnel.kill_switch);
        for proposal in &p.proposals.ike {
            ikelink::ike::IkeProposal::parse(proposal).unwrap();
        }
        for proposal in &p.proposals.esp {
            ikelink::ike::EspProposal::parse(proposal).unwrap();
        }
        let (file, pem) = &i.files[0];
        assert_eq!(file, "office-vpn-ca.pem");
        assert!(pem.starts_with(b"-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUEjRWeJA=\n"), "{pem:?}");
        for w in ["OnDemandRules", "DNS", "MTU", "ServerCertificateIssuerCommonName", "com.apple.wifi.managed"] {
            assert!(has_warning(&i, w), "warning about {w}: {:?}", i.warnings);
        }
        // The password is in the profile only, never in a warning.
        assert!(!i.warnings.iter().any(|w| w.contains("horse")), "{:?}", i.warnings);
    }

    #[test]
    fn certificate_profile_binary_and_signed() {
        let xml = sample("cert.mobileconfig");
        let (i, p) = import(&xml);
        assert_eq!(p.auth.method, "cert");
        assert_eq!(p.auth.pkcs12.as_deref(), Some("/etc/ikelink/laptop.p12"));
        assert_eq!(p.auth.pkcs12_password.as_deref(), Some("p12 secret"));
        assert_eq!(p.local.id, None, "a DN identifier is left to the certificate");
        assert_eq!(p.gateway.ca, Vec::<String>::new(), "no CA payload: the system store");
        assert_eq!(p.proposals.ike, ["aes256-sha256-modp2048"]);
        assert!(p.proposals.esp.is_empty(), "no PFS, no child parameters: the defaults");
        assert_eq!(i.files, vec![("laptop.p12".to_string(), b"not really a PKCS#12".to_vec())]);
        assert!(has_warning(&i, "distinguished name"), "{:?}", i.warnings);
        assert!(!has_warning(&i, "p12 secret"), "{:?}", i.warnings);

        // The same profile as a binary property list and inside a CMS SignedData (DER and BER).
        let value = Value::from_reader(std::io::Cursor::new(&xml)).unwrap();
        let mut binary = Vec::new();
        value.to_writer_binary(&mut binary).unwrap();
        let (b, _) = import(&binary);
        assert_eq!(b.toml, i.toml);
        for signed in [signed_der(&xml), signed_ber(&xml)] {
            let (s, _) = import(&signed);
            assert_eq!(s.toml, i.toml);
            assert!(has_warning(&s, "not verified"));
        }
    }

    #[test]
    fn psk_profile() {
        let (i, p) = import(&sample("psk.mobileconfig"));
        assert_eq!(p.auth.method, "psk");
        assert_eq!(p.auth.psk.as_deref(), Some("a long pre-shared key for the gateway"));
        assert_eq!(p.proposals.ike, ["aes128-sha256-modp2048"]);
        assert_eq!(p.proposals.esp, ["aes128-sha256-modp2048"]);
        assert_eq!(p.timers.dpd, 0);
        assert!(!p.ike.redirect);
        assert_eq!(p.nat.keepalive, 25);
        assert!(i.warnings.is_empty(), "{:?}", i.warnings);
    }

    /// A minimal profile around an `IKEv2` dictionary body.
    fn profile(ikev2: &str) -> Vec<u8> {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>PayloadContent</key><array><dict>
            <key>PayloadType</key><string>com.apple.vpn.managed</string><key>VPNType</key><string>IKEv2</string>
            <key>IKEv2</key><dict>{ikev2}</dict></dict></array></dict></plist>"#
        )
        .into_bytes()
    }

    #[test]
    fn errors_are_typed_and_name_the_key() {
        let err = |data: &[u8]| import_mobileconfig(data, Path::new("/tmp")).unwrap_err();
        assert!(matches!(err(b"nonsense"), ImportError::Plist(_)));
        assert!(matches!(err(b"<plist><dict><key>a</key>"), ImportError::Plist(_)));
        assert!(matches!(err(&[0x30, 0x03, 0x06, 0x01, 0x00]), ImportError::Signed(_)));
        let e = err(&[0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03, 0, 0]);
        assert!(e.to_string().contains("encrypted"), "{e}");
        let e = err(&signed_detached());
        assert!(e.to_string().contains("detached") && e.to_string().contains("openssl"), "{e}");
        let encrypted = br#"<plist><dict><key>EncryptedPayloadContent</key><data>AAAA</data></dict></plist>"#;
        assert!(matches!(err(encrypted), ImportError::Encrypted));
        assert!(matches!(err(br#"<plist><dict><key>PayloadContent</key><array/></dict></plist>"#), ImportError::NoVpn));
        let l2tp = br#"<plist><dict><key>PayloadType</key><string>com.apple.vpn.managed</string>
                       <key>VPNType</key><string>L2TP</string></dict></plist>"#;
        assert!(matches!(err(l2tp), ImportError::UnsupportedType(t) if t == "L2TP"));
        assert!(matches!(err(&profile("")), ImportError::Missing(k) if k == "IKEv2.RemoteAddress"));
        let e = err(&profile("<key>RemoteAddress</key><integer>1</integer>"));
        assert!(e.to_string().contains("IKEv2.RemoteAddress"), "{e}");
        let base = "<key>RemoteAddress</key><string>gw</string>";
        let e = err(&profile(&format!("{base}<key>AuthenticationMethod</key><string>Magic</string>")));
        assert!(e.to_string().contains("AuthenticationMethod"), "{e}");
        let e = err(&profile(&format!("{base}<key>AuthenticationMethod</key><string>None</string>")));
        assert!(e.to_string().contains("ExtendedAuthEnabled"), "{e}");
        let e = err(&profile(&format!("{base}<key>ExtendedAuthEnabled</key><integer>1</integer>")));
        assert!(matches!(e, ImportError::Unsupported(_)), "{e}");
        let e = err(&profile(&format!(
            "{base}<key>AuthenticationMethod</key><string>None</string><key>ExtendedAuthEnabled</key><true/>"
        )));
        assert!(e.to_string().contains("AuthName"), "{e}");
        let e = err(&profile(&format!("{base}<key>DisableMOBIKE</key><integer>7</integer>")));
        assert!(e.to_string().contains("DisableMOBIKE"), "{e}");
        let e = err(&profile(&format!("{base}<key>SharedSecret</key><integer>7</integer>")));
        assert!(e.to_string().contains("SharedSecret"), "{e}");
        let e = err(&profile(&format!(
            "{base}<key>AuthenticationMethod</key><string>Certificate</string><key>PayloadCertificateUUID</key><string>x</string>"
        )));
        assert!(e.to_string().contains("PayloadCertificateUUID"), "{e}");
        let lifetime =
            "<key>IKESecurityAssociationParameters</key><dict><key>LifeTimeInMinutes</key><integer>-5</integer></dict>";
        let e = err(&profile(&format!("{base}<key>SharedSecret</key><string>k</string>{lifetime}")));
        assert!(e.to_string().contains("LifeTimeInMinutes"), "{e}");
    }

    #[test]
    fn unsupported_algorithms_fall_back_with_a_warning() {
        let des = "<key>RemoteAddress</key><string>gw</string><key>SharedSecret</key><string>k</string>\
                   <key>IKESecurityAssociationParameters</key><dict><key>EncryptionAlgorithm</key><string>DES</string></dict>\
                   <key>ChildSecurityAssociationParameters</key><dict><key>DiffieHellmanGroup</key><integer>1</integer>\
                   <key>Unknown</key><true/></dict><key>SomethingNew</key><true/>";
        let (i, p) = import(&profile(des));
        assert!(p.proposals.ike.is_empty() && p.proposals.esp.is_empty());
        for w in [
            "EncryptionAlgorithm = DES",
            "DiffieHellmanGroup = 1",
            "ChildSecurityAssociationParameters.Unknown",
            "IKEv2.SomethingNew",
        ] {
            assert!(has_warning(&i, w), "warning about {w}: {:?}", i.warnings);
        }
    }

    /// A DER element.
    fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match body.len() {
            n if n < 0x80 => out.push(n as u8),
            n if n < 0x100 => out.extend([0x81, n as u8]),
            n => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend_from_slice(body);
        out
    }

    /// A ContentInfo with SignedData around `content`, DER (definite lengths).
    fn signed_der(content: &[u8]) -> Vec<u8> {
        let data_oid = tlv(0x06, &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01]);
        let encap = tlv(0x30, &[data_oid, tlv(0xa0, &tlv(0x04, content))].concat());
        let signed = tlv(0x30, &[tlv(0x02, &[1]), tlv(0x31, &[]), encap, tlv(0x31, &[])].concat());
        tlv(0x30, &[tlv(0x06, cms::SIGNED_DATA), tlv(0xa0, &signed)].concat())
    }

    /// The same in BER as OpenSSL streams it: indefinite lengths and the content in 100-byte chunks.
    fn signed_ber(content: &[u8]) -> Vec<u8> {
        let mut chunks = Vec::new();
        for c in content.chunks(100) {
            chunks.push(0x04);
            chunks.push(0x64.min(c.len() as u8));
            chunks.extend_from_slice(c);
        }
        let indefinite = |tag: u8, body: &[u8]| [&[tag, 0x80][..], body, &[0, 0]].concat();
        let data_oid = [0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
        let encap = indefinite(0x30, &[&data_oid[..], &indefinite(0xa0, &indefinite(0x24, &chunks))].concat());
        let signed = indefinite(0x30, &[&[0x02, 0x01, 0x01, 0x31, 0x00][..], &encap, &[0x31, 0x00]].concat());
        let oid = [&[0x06, 0x09][..], cms::SIGNED_DATA].concat();
        indefinite(0x30, &[oid, indefinite(0xa0, &signed)].concat())
    }

    /// SignedData without the content (a detached signature).
    fn signed_detached() -> Vec<u8> {
        let encap = tlv(0x30, &tlv(0x06, &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01]));
        let signed = tlv(0x30, &[tlv(0x02, &[1]), tlv(0x31, &[]), encap, tlv(0x31, &[])].concat());
        tlv(0x30, &[tlv(0x06, cms::SIGNED_DATA), tlv(0xa0, &signed)].concat())
    }
}
