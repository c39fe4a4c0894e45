//! Interop: the vendor presets of examples/profiles/vendors (issue 11), each against a strongSwan gateway set up
//! with that vendor's proposals, identity and authentication style. strongSwan is only a stand-in for the vendor's
//! product: it negotiates what the vendor's configuration allows, picking (as responder, `prefer_configured_proposals`)
//! the first of its own proposals and algorithms that the client offers, as the vendors document for theirs. So this
//! checks that each preset parses, authenticates the way the vendor does and lands on the vendor's first choice; it
//! cannot catch a vendor's own quirks.
//!
//! One testbed and one gateway, reconfigured for each preset (about 30 s in all). Every preset is tried and the
//! results are printed before the test fails on any of them. Needs root; runs when IKELINK_INTEROP=1.
#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ikelink_testbed::harness::*;

/// A preset's outcome: what it negotiated, or why it failed (the harness's `Result` is for harness errors).
type Outcome<T> = std::result::Result<T, String>;
const T: Duration = Duration::from_secs(20);

/// The test gateway certificate's subject, which the stand-ins send as IDr where the vendor sends its DN.
const GW_DN: &str = "C=CH, O=Ikelink Test, CN=gw.ikelink.test";

/// How the stand-in authenticates itself and the client.
#[derive(Clone, Copy, Debug)]
enum StandInAuth {
    /// Pre-shared key both ways.
    Psk,
    /// The gateway's certificate; the client with the given swanctl `remote.auth` (`eap-mschapv2`, `pubkey`...).
    Cert(&'static str),
}

/// A preset and the vendor it stands in for.
struct Vendor {
    /// File in examples/profiles/vendors.
    file: &'static str,
    /// The vendor's IKE proposals in swanctl syntax (taken as the exact list: swanctl adds no defaults).
    ike: &'static str,
    /// The vendor's ESP proposals.
    esp: &'static str,
    auth: StandInAuth,
    /// The IDr the vendor sends (swanctl `local.id`).
    gw_id: &'static str,
    /// The suites the client must print (`ike:` / `esp:`): the vendor's first choice among what the preset offers.
    expect_ike: &'static str,
    expect_esp: &'static str,
    /// The same suites as `swanctl --list-sas` names them on the gateway.
    gw_ike: &'static str,
    gw_esp: &'static str,
}

/// The proposals here are those the presets' comments cite; where a preset leaves out what Ikelink lacks (group 24,
/// MD5, DES...), the stand-in keeps it and must skip it.
const VENDORS: &[Vendor] = &[
    // Windows' default list (strongSwan's Windows interop page); RRAS sends its DN, users use EAP-MSCHAPv2.
    Vendor {
        file: "windows-rras.toml",
        ike: "3des-aes128-aes192-aes256-sha1-sha256-sha384-modp1024",
        esp: "aes256-aes128-3des-sha1",
        auth: StandInAuth::Cert("eap-mschapv2"),
        gw_id: GW_DN,
        expect_ike: "3des-sha1-prfsha1-modp1024",
        expect_esp: "aes256-sha1",
        gw_ike: "3DES_CBC/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024",
        gw_esp: "AES_CBC-256/HMAC_SHA1_96",
    },
    // Azure's P2S default table, group 24 first; the gateway's IDr is its VpnServer FQDN; client certificates.
    Vendor {
        file: "azure-p2s.toml",
        ike: "aes256gcm16-prfsha384-prfsha256-modp2048s256-modp2048-ecp384-ecp256, \
              aes256-sha384-sha256-modp2048s256-modp2048-ecp384-ecp256, aes256-sha256-modp1024",
        esp: "aes256gcm16, aes256-sha256, aes256-sha1",
        auth: StandInAuth::Cert("pubkey"),
        gw_id: GW_ID,
        expect_ike: "aes256gcm16-prfsha384-modp2048",
        expect_esp: "aes256gcm16",
        gw_ike: "AES_GCM_16-256/PRF_HMAC_SHA2_384/MODP_2048",
        gw_esp: "AES_GCM_16-256",
    },
    // Cisco's recommended IKEv2 policy / IPsec proposal on an ASA, which sends its DN; EAP from RADIUS.
    Vendor {
        file: "cisco-asa.toml",
        ike: "aes256gcm16-prfsha512-prfsha384-prfsha256-ecp521-ecp384-ecp256-modp2048, \
              aes256-sha512-sha384-sha256-ecp521-ecp384-ecp256-modp2048",
        esp: "aes256gcm16, aes256-sha512-sha384-sha256",
        auth: StandInAuth::Cert("eap-mschapv2"),
        gw_id: GW_DN,
        expect_ike: "aes256gcm16-prfsha512-ecp521",
        expect_esp: "aes256gcm16",
        gw_ike: "AES_GCM_16-256/PRF_HMAC_SHA2_512/ECP_521",
        gw_esp: "AES_GCM_16-256",
    },
    // IOS XE smart defaults: the default IKEv2 proposal and transform set; the hub's IDr is the KEY_ID flexvpn-hub.
    Vendor {
        file: "cisco-flexvpn.toml",
        ike: "aes256-sha512-sha384-ecp256-modp2048-ecp521-modp1536",
        esp: "aes128-sha1",
        auth: StandInAuth::Psk,
        gw_id: "keyid:flexvpn-hub",
        expect_ike: "aes256-sha512-prfsha512-ecp256",
        expect_esp: "aes128-sha1",
        gw_ike: "AES_CBC-256/HMAC_SHA2_512_256/PRF_HMAC_SHA2_512/ECP_256",
        gw_esp: "AES_CBC-128/HMAC_SHA1_96",
    },
    // FortiOS 6.x phase 1 / phase 2 defaults, one proposal per pair; localid vpn.example.com; EAP.
    Vendor {
        file: "fortigate.toml",
        ike: "aes128-sha256-modp2048-modp1536, aes256-sha256-modp2048-modp1536, aes128-sha1-modp2048-modp1536, \
              aes256-sha1-modp2048-modp1536",
        esp: "aes128-sha1-modp2048-modp1536, aes256-sha1-modp2048-modp1536, aes128-sha256-modp2048-modp1536, \
              aes256-sha256-modp2048-modp1536, aes128gcm16-modp2048-modp1536, aes256gcm16-modp2048-modp1536, \
              chacha20poly1305-modp2048-modp1536",
        auth: StandInAuth::Cert("eap-mschapv2"),
        gw_id: GW_ID,
        expect_ike: "aes128-sha256-prfsha256-modp2048",
        expect_esp: "aes128-sha1",
        gw_ike: "AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048",
        gw_esp: "AES_CBC-128/HMAC_SHA1_96",
    },
    // PAN-OS "default" IKE and IPSec crypto profiles; Local Identification FQDN; PSK.
    Vendor {
        file: "paloalto.toml",
        ike: "aes128-3des-sha1-modp1024",
        esp: "aes128-3des-sha1-modp1024",
        auth: StandInAuth::Psk,
        gw_id: GW_ID,
        expect_ike: "aes128-sha1-prfsha1-modp1024",
        expect_esp: "aes128-sha1",
        gw_ike: "AES_CBC-128/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024",
        gw_esp: "AES_CBC-128/HMAC_SHA1_96",
    },
    // SonicOS's new-policy proposals; Local IKE ID = the WAN address; PSK.
    Vendor {
        file: "sonicwall.toml",
        ike: "3des-sha1-modp1024",
        esp: "3des-sha1",
        auth: StandInAuth::Psk,
        gw_id: "203.0.113.2",
        expect_ike: "3des-sha1-prfsha1-modp1024",
        expect_esp: "3des-sha1",
        gw_ike: "3DES_CBC/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024",
        gw_esp: "3DES_CBC/HMAC_SHA1_96",
    },
    // RouterOS's default profile and proposal; my-id=auto (the certificate's DN); certificates both ways.
    Vendor {
        file: "mikrotik.toml",
        ike: "aes128-3des-sha1-modp2048-modp1024",
        esp: "aes256-aes192-aes128-sha1-modp1024",
        auth: StandInAuth::Cert("pubkey"),
        gw_id: GW_DN,
        expect_ike: "aes128-sha1-prfsha1-modp2048",
        expect_esp: "aes256-sha1",
        gw_ike: "AES_CBC-128/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_2048",
        gw_esp: "AES_CBC-256/HMAC_SHA1_96",
    },
    // The pfSense recipe's phase 1 / phase 2; My identifier = the FQDN; EAP-MSCHAPv2.
    Vendor {
        file: "pfsense-opnsense.toml",
        ike: "aes256-sha256-modp2048",
        esp: "aes256-sha256",
        auth: StandInAuth::Cert("eap-mschapv2"),
        gw_id: GW_ID,
        expect_ike: "aes256-sha256-prfsha256-modp2048",
        expect_esp: "aes256-sha256",
        gw_ike: "AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048",
        gw_esp: "AES_CBC-256/HMAC_SHA2_256_128",
    },
    // iked's built-in default transforms, legacy members included; srcid = the FQDN; EAP-MSCHAPv2.
    Vendor {
        file: "openbsd-iked.toml",
        ike: "aes256-aes192-aes128-3des-sha256-sha384-sha512-sha1-prfsha256-prfsha384-prfsha512-prfsha1-\
              x25519-ecp521-ecp384-ecp256-modp4096-modp3072-modp2048-modp1536-modp1024, \
              aes128gcm16-aes256gcm16-prfsha256-prfsha384-prfsha512-prfsha1-\
              x25519-ecp521-ecp384-ecp256-modp4096-modp3072-modp2048-modp1536-modp1024",
        esp: "aes256-aes192-aes128-sha256-sha384-sha512-sha1, aes128gcm16-aes256gcm16",
        auth: StandInAuth::Cert("eap-mschapv2"),
        gw_id: GW_ID,
        expect_ike: "aes256-sha256-prfsha256-x25519",
        expect_esp: "aes256-sha256",
        gw_ike: "AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/CURVE_25519",
        gw_esp: "AES_CBC-256/HMAC_SHA2_256_128",
    },
];

fn presets_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/profiles/vendors")
}

fn p(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

impl Vendor {
    fn gateway_config(&self, pki: &Pki) -> GatewayConfig {
        let (auth, psk) = match self.auth {
            StandInAuth::Psk => (GatewayAuth::Psk, Some((CLIENT_ID.into(), DEFAULT_PSK.into()))),
            StandInAuth::Cert(remote) => (GatewayAuth::Cert { pki: pki.clone(), remote_auth: remote.into() }, None),
        };
        GatewayConfig {
            ike_proposals: self.ike.into(),
            esp_proposals: self.esp.into(),
            local_id: self.gw_id.into(),
            auth,
            psk,
            eap_users: vec![(EAP_USER.into(), EAP_PASSWORD.into())],
            ..Default::default()
        }
    }
}

fn table<'a>(t: &'a mut toml::Table, name: &str) -> &'a mut toml::Table {
    t.entry(name).or_insert_with(|| toml::Value::Table(toml::Table::new())).as_table_mut().expect("a table")
}

fn str_list(items: &[String]) -> toml::Value {
    toml::Value::Array(items.iter().map(|s| toml::Value::String(s.clone())).collect())
}

/// The preset with the lab's gateway, trust anchor, credentials and network in place of its placeholders. Its
/// proposals, identity types and authentication method stay as they are.
fn lab_profile(preset: &str, pki: &Pki) -> String {
    let mut t: toml::Table = toml::from_str(preset).expect("preset is TOML");
    let method = t["auth"]["method"].as_str().expect("auth.method").to_string();
    let eap_method = t["auth"].get("eap_method").and_then(|m| m.as_str()).map(str::to_string);

    let gw = table(&mut t, "gateway");
    gw.insert("address".into(), GW_ADDR.to_string().into());
    // The vendor's identity type stays: a KEY_ID as it is (the stand-in sends the same), an address becomes the lab
    // gateway's, a name the name in its certificate.
    if let Some(id) = gw.get("id").and_then(|v| v.as_str()).map(str::to_string) {
        let lab_id = if id.starts_with("keyid:") || id == "%any" {
            id
        } else if id.parse::<std::net::IpAddr>().is_ok() {
            GW_ADDR.to_string()
        } else {
            GW_ID.to_string()
        };
        gw.insert("id".into(), lab_id.into());
    }
    if method != "psk" {
        gw.insert("ca".into(), str_list(&[p(&pki.ca_cert)]));
    }

    let local = table(&mut t, "local");
    match method.as_str() {
        // The stand-in's PSK belongs to this identity; the client certificate names it (e-mail SAN).
        "psk" | "cert" => {
            local.insert("id".into(), CLIENT_ID.into());
        }
        _ => {
            local.remove("id");
        }
    }

    let auth = table(&mut t, "auth");
    for key in ["psk_file", "password_file"] {
        auth.remove(key);
    }
    match method.as_str() {
        "psk" => {
            auth.insert("psk".into(), DEFAULT_PSK.into());
        }
        "cert" => {
            auth.insert("cert".into(), p(&pki.client_cert).into());
            auth.insert("key".into(), p(&pki.client_key).into());
        }
        _ => {
            if eap_method.as_deref() == Some("tls") {
                auth.insert("cert".into(), p(&pki.client_cert).into());
                auth.insert("key".into(), p(&pki.client_key).into());
                auth.insert("eap_identity".into(), CLIENT_ID.into());
            } else {
                auth.remove("eap_identity");
                auth.insert("username".into(), EAP_USER.into());
                auth.insert("password".into(), EAP_PASSWORD.into());
            }
        }
    }

    table(&mut t, "tunnel").insert("remote_ts".into(), str_list(&[LAN_NET.to_string()]));
    toml::to_string(&t).expect("profile serializes")
}

/// `ikelink check` on the lab's version of the preset (the preset itself names files that exist only on a real
/// installation).
fn check(tb: &Testbed, v: &Vendor, profile: &str) -> Outcome<()> {
    let path = tb.dir().join(format!("check-{}", v.file));
    std::fs::write(&path, profile).map_err(|e| e.to_string())?;
    let out =
        Command::new(desktop_bin()).args(["check", "--profile", &p(&path)]).output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ikelink check: {}{}",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The gateway's view: one IKE SA and its Child SA installed, with the same suites.
fn gateway_agrees(gw: &Gateway, v: &Vendor) -> Outcome<()> {
    gw.wait_for_sa_count(1, T).map_err(|e| format!("gateway has no SA: {e}"))?;
    let sas = gw.list_sas().map_err(|e| e.to_string())?;
    // The IKE SA's suite has a line of its own; the Child SA's line ends in "INSTALLED, TUNNEL-in-UDP, ESP:<suite>".
    let ike = sas.lines().any(|l| l.trim() == v.gw_ike);
    let esp = sas.lines().any(|l| l.contains("INSTALLED") && l.trim_end().ends_with(&format!("ESP:{}", v.gw_esp)));
    if ike && esp {
        Ok(())
    } else {
        Err(format!("the gateway shows other suites than {} / {}:\n{sas}", v.gw_ike, v.gw_esp))
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Connect with the preset (negotiation only), compare the suites, disconnect. Returns the `ike:` / `esp:` suites
/// and the gateway identity the client reports.
fn connect(tb: &Testbed, gw: &Gateway, v: &Vendor, profile: &str) -> Outcome<(String, String, String)> {
    let mut c = IkelinkClient::start(tb, desktop_bin(), profile, &["--no-tun", "-v"]).map_err(|e| e.to_string())?;
    let connected = c.wait_connected(T);
    let suite = |key: &str| c.value(key).and_then(|l| l.split_whitespace().next().map(str::to_string));
    let (ike, esp) = (suite("ike").unwrap_or_default(), suite("esp").unwrap_or_default());
    let outcome = match connected {
        Err(e) => Err(format!("did not connect: {e}\n--- gateway log (tail)\n{}", tail(&gw.log(), 25))),
        Ok(()) if ike != v.expect_ike || esp != v.expect_esp => Err(format!(
            "negotiated ike {ike} / esp {esp}, expected ike {} / esp {}\n{}",
            v.expect_ike,
            v.expect_esp,
            c.transcript()
        )),
        Ok(()) => gateway_agrees(gw, v).map(|()| (ike.clone(), esp.clone(), c.value("remote-id").unwrap_or_default())),
    };
    let st = c.interrupt(T);
    let _ = gw.wait_for_sa_count(0, T);
    let suites = outcome?;
    match st {
        Ok(s) if s.success() => Ok(suites),
        other => Err(format!("unclean disconnect: {other:?}\n{}", c.transcript())),
    }
}

#[test]
fn vendor_presets_connect_to_stand_ins() {
    ikelink_testbed::require_interop!();
    let tb = Testbed::new(TestbedOptions::default()).unwrap();
    // RSA, as most of these gateways' certificates are.
    let pki = Pki::generate_with(&tb.dir().join("pki"), KeyType::Rsa(2048)).unwrap();
    let mut gw: Option<Gateway> = None;
    let mut report = Vec::new();
    for v in VENDORS {
        let started = Instant::now();
        let preset = std::fs::read_to_string(presets_dir().join(v.file)).unwrap();
        let profile = lab_profile(&preset, &pki);
        let cfg = v.gateway_config(&pki);
        match gw.as_mut() {
            Some(g) => g.reconfigure(&cfg).unwrap(),
            None => gw = Some(Gateway::start(&tb, &cfg).unwrap()),
        }
        let g = gw.as_ref().expect("gateway running");
        let result = check(&tb, v, &profile).and_then(|()| connect(&tb, g, v, &profile));
        let line = match &result {
            Ok((ike, esp, id)) => format!("ok    {:<24} ike {ike} / esp {esp}, gateway {id}", v.file),
            Err(e) => format!("FAIL  {:<24} {}", v.file, e.lines().next().unwrap_or_default()),
        };
        eprintln!("{line} ({:.1} s)", started.elapsed().as_secs_f64());
        report.push((line, result));
    }
    eprintln!("\nvendor presets against strongSwan stand-ins:");
    for (line, _) in &report {
        eprintln!("  {line}");
    }
    let failures: Vec<String> =
        report.iter().filter_map(|(line, r)| r.as_ref().err().map(|e| format!("{line}\n{e}"))).collect();
    assert!(
        failures.is_empty(),
        "{} of {} presets failed:\n\n{}",
        failures.len(),
        VENDORS.len(),
        failures.join("\n\n")
    );
}

/// The lab substitution keeps what the preset says about the vendor: proposals, identity types, method.
#[test]
fn lab_profile_keeps_the_vendor_settings() {
    let pki = Pki {
        dir: "/pki".into(),
        key_type: KeyType::EcdsaP256,
        ca_cert: "/pki/ca.crt".into(),
        ca_key: "/pki/ca.key".into(),
        gw_cert: "/pki/gw.crt".into(),
        gw_key: "/pki/gw.key".into(),
        client_cert: "/pki/client.crt".into(),
        client_key: "/pki/client.key".into(),
    };
    let read = |f: &str| std::fs::read_to_string(presets_dir().join(f)).unwrap();
    let flex: toml::Table = toml::from_str(&lab_profile(&read("cisco-flexvpn.toml"), &pki)).unwrap();
    assert_eq!(flex["gateway"]["id"].as_str(), Some("keyid:flexvpn-hub"));
    assert_eq!(flex["gateway"]["address"].as_str(), Some("203.0.113.2"));
    assert_eq!(flex["auth"]["psk"].as_str(), Some(DEFAULT_PSK));
    assert!(flex["auth"].get("psk_file").is_none());
    assert_eq!(flex["proposals"]["esp"][0].as_str(), Some("aes128-sha1"));
    let sonic: toml::Table = toml::from_str(&lab_profile(&read("sonicwall.toml"), &pki)).unwrap();
    assert_eq!(sonic["gateway"]["id"].as_str(), Some("203.0.113.2"));
    let rras: toml::Table = toml::from_str(&lab_profile(&read("windows-rras.toml"), &pki)).unwrap();
    assert!(rras["gateway"].get("id").is_none(), "no gateway.id: the certificate must name the address");
    assert_eq!(rras["gateway"]["ca"][0].as_str(), Some("/pki/ca.crt"));
    assert_eq!(rras["auth"]["password"].as_str(), Some(EAP_PASSWORD));
    let azure: toml::Table = toml::from_str(&lab_profile(&read("azure-p2s.toml"), &pki)).unwrap();
    assert_eq!(azure["local"]["id"].as_str(), Some(CLIENT_ID));
    assert_eq!(azure["auth"]["cert"].as_str(), Some("/pki/client.crt"));
    // Every preset has a stand-in, and every stand-in a preset.
    let mut files: Vec<String> = std::fs::read_dir(presets_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".toml"))
        .collect();
    files.sort();
    let mut covered: Vec<String> = VENDORS.iter().map(|v| v.file.to_string()).collect();
    covered.sort();
    assert_eq!(files, covered);
}
