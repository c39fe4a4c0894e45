//! Test certificates made with strongSwan's `pki` tool: a CA, a gateway certificate (subjectAltName DNS
//! `gw.ikelink.test` and IP 203.0.113.2, as Apple/Android clients require) and a client certificate.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::error::{HarnessError, Result};
use super::process;
use super::testbed::GW_ADDR;
use super::{CLIENT_ID, GW_ID};

/// Key algorithm of the generated keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// ECDSA on P-256 (fast; the default).
    EcdsaP256,
    /// RSA with the given modulus size (3072, 4096 for large IKE_AUTH messages, ...).
    Rsa(u32),
}

impl KeyType {
    fn gen_args(self) -> Vec<String> {
        match self {
            KeyType::EcdsaP256 => vec!["--type".into(), "ecdsa".into(), "--size".into(), "256".into()],
            KeyType::Rsa(bits) => vec!["--type".into(), "rsa".into(), "--size".into(), bits.to_string()],
        }
    }

    fn type_name(self) -> &'static str {
        match self {
            KeyType::EcdsaP256 => "ecdsa",
            KeyType::Rsa(_) => "rsa",
        }
    }
}

/// The generated files (all PEM).
#[derive(Clone, Debug)]
pub struct Pki {
    /// Directory holding everything.
    pub dir: PathBuf,
    /// Key algorithm used.
    pub key_type: KeyType,
    /// CA certificate (`ca.crt`).
    pub ca_cert: PathBuf,
    /// CA private key.
    pub ca_key: PathBuf,
    /// Gateway certificate, CN and SAN `gw.ikelink.test`, SAN IP 203.0.113.2.
    pub gw_cert: PathBuf,
    /// Gateway private key.
    pub gw_key: PathBuf,
    /// Client certificate, CN and SAN (email) `client@ikelink.test`.
    pub client_cert: PathBuf,
    /// Client private key.
    pub client_key: PathBuf,
}

const PKI_TIMEOUT: Duration = Duration::from_secs(120);

fn pki(args: &[&str]) -> Result<Vec<u8>> {
    let mut cmd = Command::new("pki");
    cmd.args(args);
    Ok(process::run(&mut cmd, PKI_TIMEOUT)?.stdout)
}

fn write(path: &Path, data: &[u8]) -> Result<()> {
    std::fs::write(path, data).map_err(|e| HarnessError::io(path, e))
}

fn copy(from: &Path, to_dir: &Path) -> Result<()> {
    let name = from.file_name().ok_or_else(|| HarnessError::Setup(format!("bad file name {}", from.display())))?;
    std::fs::copy(from, to_dir.join(name)).map_err(|e| HarnessError::io(from, e))?;
    Ok(())
}

impl Pki {
    /// Generates a CA, gateway and client certificate with ECDSA P-256 keys in `dir` (created if needed).
    pub fn generate(dir: &Path) -> Result<Pki> {
        Pki::generate_with(dir, KeyType::EcdsaP256)
    }

    /// Like [`Pki::generate`] with the given key type.
    pub fn generate_with(dir: &Path, key_type: KeyType) -> Result<Pki> {
        Pki::generate_full(dir, key_type, None, None)
    }

    /// Like [`Pki::generate_with`]; the gateway certificate names `crl_uri` as its CRL distribution point and
    /// `ocsp_uri` as its OCSP responder (authorityInfoAccess).
    pub fn generate_full(dir: &Path, key_type: KeyType, crl_uri: Option<&str>, ocsp_uri: Option<&str>) -> Result<Pki> {
        std::fs::create_dir_all(dir).map_err(|e| HarnessError::io(dir, e))?;
        let p = Pki {
            dir: dir.to_path_buf(),
            key_type,
            ca_cert: dir.join("ca.crt"),
            ca_key: dir.join("ca.key"),
            gw_cert: dir.join("gw.crt"),
            gw_key: dir.join("gw.key"),
            client_cert: dir.join("client.crt"),
            client_key: dir.join("client.key"),
        };
        let gen = key_type.gen_args();
        let gen: Vec<&str> = gen.iter().map(String::as_str).collect();
        let s = |p: &Path| p.to_string_lossy().into_owned();
        for key in [&p.ca_key, &p.gw_key, &p.client_key] {
            let mut args = vec!["--gen"];
            args.extend(&gen);
            args.extend(["--outform", "pem"]);
            write(key, &pki(&args)?)?;
        }
        let t = key_type.type_name();
        let ca = pki(&[
            "--self",
            "--ca",
            "--lifetime",
            "3650",
            "--in",
            &s(&p.ca_key),
            "--type",
            t,
            "--dn",
            "C=CH, O=Ikelink Test, CN=Ikelink Test CA",
            "--outform",
            "pem",
        ])?;
        write(&p.ca_cert, &ca)?;
        let gw_dn = format!("C=CH, O=Ikelink Test, CN={GW_ID}");
        let gw_ip = GW_ADDR.to_string();
        let (ca_cert, ca_key, gw_key) = (s(&p.ca_cert), s(&p.ca_key), s(&p.gw_key));
        let mut gw_args = vec![
            "--issue",
            "--lifetime",
            "1825",
            "--cacert",
            &ca_cert,
            "--cakey",
            &ca_key,
            "--type",
            "priv",
            "--in",
            &gw_key,
            "--dn",
            &gw_dn,
            "--san",
            GW_ID,
            "--san",
            &gw_ip,
            "--flag",
            "serverAuth",
            "--outform",
            "pem",
        ];
        if let Some(uri) = crl_uri {
            gw_args.extend(["--crl", uri]);
        }
        if let Some(uri) = ocsp_uri {
            gw_args.extend(["--ocsp", uri]);
        }
        let gw = pki(&gw_args)?;
        write(&p.gw_cert, &gw)?;
        let client_dn = format!("C=CH, O=Ikelink Test, CN={CLIENT_ID}");
        let client = pki(&[
            "--issue",
            "--lifetime",
            "1825",
            "--cacert",
            &s(&p.ca_cert),
            "--cakey",
            &s(&p.ca_key),
            "--type",
            "priv",
            "--in",
            &s(&p.client_key),
            "--dn",
            &client_dn,
            "--san",
            CLIENT_ID,
            "--flag",
            "clientAuth",
            "--outform",
            "pem",
        ])?;
        write(&p.client_cert, &client)?;
        Ok(p)
    }

    /// Copies CA cert, gateway cert and key into a swanctl directory (`x509ca/`, `x509/`, `private/`).
    pub fn install_gateway(&self, swanctl_dir: &Path) -> Result<()> {
        copy(&self.ca_cert, &swanctl_dir.join("x509ca"))?;
        copy(&self.gw_cert, &swanctl_dir.join("x509"))?;
        copy(&self.gw_key, &swanctl_dir.join("private"))
    }

    /// Copies the CA cert (and, with `with_client_cert`, the client cert and key) into a swanctl directory.
    pub fn install_client(&self, swanctl_dir: &Path, with_client_cert: bool) -> Result<()> {
        copy(&self.ca_cert, &swanctl_dir.join("x509ca"))?;
        if with_client_cert {
            copy(&self.client_cert, &swanctl_dir.join("x509"))?;
            copy(&self.client_key, &swanctl_dir.join("private"))?;
        }
        Ok(())
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> Result<String> {
        std::fs::read_to_string(&self.ca_cert).map_err(|e| HarnessError::io(&self.ca_cert, e))
    }

    /// `pki --print` of a certificate (for debugging).
    pub fn print(cert: &Path) -> Result<String> {
        let out = pki(&["--print", "--in", &cert.to_string_lossy()])?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}
