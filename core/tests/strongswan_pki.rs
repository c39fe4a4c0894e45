//! Certificates and keys made by strongSwan's `pki` tool (package strongswan-pki, installed by
//! scripts/install-deps.sh) load, validate and sign in the protocol core. A runtime-crate test: it runs a program
//! and writes files, which the sans-IO crate's own tests may not.

use std::net::IpAddr;

use ikelink::crypto::{sign_auth, validate_gateway, CertError, ClientCredentials, GatewayCertPolicy, TrustAnchors};
use ikelink::wire::{AuthMethod, IdType, Identification};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

const GW: &str = "gw.ikelink.test";
const GW_IP: &str = "203.0.113.2";

fn fqdn(s: &str) -> Identification {
    Identification { id_type: IdType::ID_FQDN, data: s.as_bytes().to_vec() }
}

fn ip(s: &str) -> Identification {
    match s.parse::<IpAddr>().unwrap() {
        IpAddr::V4(a) => Identification { id_type: IdType::ID_IPV4_ADDR, data: a.octets().to_vec() },
        IpAddr::V6(a) => Identification { id_type: IdType::ID_IPV6_ADDR, data: a.octets().to_vec() },
    }
}

/// strongSwan's `pki` output (RSA and ECDSA gateways under an RSA CA) validates and its keys load.
#[test]
fn strongswan_pki_certificates() {
    let pki_bin = std::path::Path::new("/usr/bin/pki");
    if !pki_bin.exists() {
        eprintln!("skipping: strongSwan `pki` not installed (package strongswan-pki)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("ikelink-pki-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |args: &[&str], out: &str| {
        let o = std::process::Command::new(pki_bin).args(args).current_dir(&dir).output().unwrap();
        assert!(o.status.success(), "pki {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        std::fs::write(dir.join(out), &o.stdout).unwrap();
    };
    run(&["--gen", "--type", "rsa", "--size", "2048", "--outform", "pem"], "ca.key");
    run(
        &[
            "--self",
            "--ca",
            "--lifetime",
            "10",
            "--in",
            "ca.key",
            "--dn",
            "C=CH, O=ikelink, CN=ikelink CA",
            "--outform",
            "pem",
        ],
        "ca.crt",
    );
    let ca_pem = std::fs::read(dir.join("ca.crt")).unwrap();
    let policy = GatewayCertPolicy::new(TrustAnchors::from_pem(&ca_pem).unwrap());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 120; // certificates are issued below, after this line

    for (kind, size) in [("rsa", "2048"), ("ecdsa", "256")] {
        let key = format!("gw-{kind}.key");
        let crt = format!("gw-{kind}.crt");
        run(&["--gen", "--type", kind, "--size", size, "--outform", "pem"], &key);
        run(&["--pub", "--in", &key, "--outform", "pem"], &format!("gw-{kind}.pub"));
        run(
            &[
                "--issue",
                "--cacert",
                "ca.crt",
                "--cakey",
                "ca.key",
                "--in",
                &format!("gw-{kind}.pub"),
                "--dn",
                "C=CH, O=ikelink, CN=gw.ikelink.test",
                "--san",
                GW,
                "--san",
                GW_IP,
                "--flag",
                "serverAuth",
                "--flag",
                "ikeIntermediate",
                "--outform",
                "pem",
            ],
            &crt,
        );
        let crt_pem = std::fs::read(dir.join(&crt)).unwrap();
        let key_pem = std::fs::read(dir.join(&key)).unwrap();
        let leaf = CertificateDer::from_pem_slice(&crt_pem).unwrap();
        for id in [fqdn(GW), ip(GW_IP)] {
            let peer = validate_gateway(&[leaf.as_ref()], &id, &policy, now).unwrap_or_else(|e| panic!("{kind}: {e}"));
            assert_eq!(peer.subject(), "C=CH, O=ikelink, CN=gw.ikelink.test");
        }
        let mut strict = policy.clone();
        strict.require_server_auth_eku = true;
        validate_gateway(&[leaf.as_ref()], &fqdn(GW), &strict, now).unwrap();
        assert!(matches!(
            validate_gateway(&[leaf.as_ref()], &fqdn("gw2.ikelink.test"), &policy, now),
            Err(CertError::IdentityMismatch { .. })
        ));
        // `pki --gen` writes PKCS#1 (RSA) and SEC1 (EC) keys; they sign for the certificate.
        let creds = ClientCredentials::from_pem(&crt_pem, &key_pem).unwrap_or_else(|e| panic!("{kind}: {e}"));
        let peer = validate_gateway(&[leaf.as_ref()], &fqdn(GW), &policy, now).unwrap();
        for s in creds.signer.schemes() {
            let auth = sign_auth(creds.signer.as_ref(), AuthMethod::DIGITAL_SIGNATURE, s, b"octets").unwrap();
            assert_eq!(peer.verify_auth(AuthMethod::DIGITAL_SIGNATURE, &auth, b"octets"), Ok(Some(s)), "{kind}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
