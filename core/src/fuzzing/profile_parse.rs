//! `profile_parse`: the TOML profile (`crate::profile`): parsing, then every validation that needs neither files
//! nor DNS. File names in the profile are dropped before validation (so nothing is read), credentials and trust
//! come from [`Supplied`] instead of files, `gateway.ca` and the system store, and the gateway is only
//! "resolved" when it is an IP address.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use zeroize::Zeroizing;

use crate::crypto::{ClientCredentials, KeyPairSigner};
use crate::eap::CertificateDer;
use crate::ike::{parse_cidr, parse_identity, EspProposal, IkeProposal};
use crate::profile::{Profile, Supplied, SuppliedTrust};

/// The bytes as profile text (lossy UTF-8).
pub fn profile_parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(mut p) = Profile::parse(&text) else { return };
    // Nothing is read from files: secrets in files come from the "key store" instead.
    let secret_file = p.auth.psk_file.is_some() || p.auth.password_file.is_some();
    p.gateway.ca.clear();
    p.gateway.crl.clear();
    p.auth.psk_file = None;
    p.auth.password_file = None;
    p.auth.cert = None;
    p.auth.key = None;
    p.auth.pkcs12 = None;
    let _ = p.excluded();
    for s in p.proposals.ike.iter() {
        let _ = IkeProposal::parse(s);
    }
    for s in p.proposals.esp.iter() {
        let _ = EspProposal::parse(s);
    }
    for s in p.tunnel.remote_ts.iter().chain(&p.tunnel.local_ts) {
        let _ = parse_cidr(s);
    }
    if let Some(id) = &p.gateway.id {
        let _ = parse_identity(id);
    }
    let supplied = supplied(&p, secret_file);
    let _ = p.ike_config_with(&supplied);
    if p.gateway.address.parse::<IpAddr>().is_ok() {
        let _ = p.resolve_with(&supplied);
    }
}

/// Credentials and trust as an app would supply them (the fuzz PKI's), for the parts of the profile that named
/// files.
fn supplied(p: &Profile, secret_file: bool) -> Supplied {
    static CREDENTIALS: OnceLock<Option<ClientCredentials>> = OnceLock::new();
    let credentials = CREDENTIALS.get_or_init(|| {
        let signer = KeyPairSigner::from_pkcs8_der(ikelink_proto::fuzzing::pki::GW_KEY).ok()?;
        ClientCredentials::new(vec![ikelink_proto::fuzzing::pki::GW.to_vec()], Arc::new(signer)).ok()
    });
    let a = &p.auth;
    let wants_credentials = a.method == "cert" || a.eap_method.as_deref() == Some("tls");
    Supplied {
        client_credentials: credentials.clone().filter(|_| wants_credentials),
        secret: secret_file.then(|| Zeroizing::new(b"fuzz: a secret from the key store".to_vec())),
        gateway_trust: (p.gateway_auth_kind() == "cert").then(|| {
            SuppliedTrust::CaCertificates(vec![CertificateDer::from(ikelink_proto::fuzzing::pki::CA.to_vec())])
        }),
        ppk_secret: (secret_file && p.ppk.is_some()).then(|| Zeroizing::new([0x5a; 32].to_vec())),
    }
}
