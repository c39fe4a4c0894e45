//! `profile_parse`: the TOML profile (`crate::profile`): parsing, then every validation that needs neither files
//! nor DNS. File names in the profile are dropped before validation (so nothing is read), trust comes from
//! [`Supplied`] instead of `gateway.ca` and the system store, and the gateway is only "resolved" when it is an
//! IP address.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use crate::crypto::{GatewayCertPolicy, TrustAnchors};
use crate::eap::{CertificateDer, PrivateKeyDer, RootCertStore, TlsKey};
use crate::ike::{parse_cidr, parse_identity, EspProposal, GatewayAuth, IkeProposal};
use crate::profile::{Profile, Supplied};

/// The bytes as profile text (lossy UTF-8).
pub fn profile_parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(mut p) = Profile::parse(&text) else { return };
    // Nothing is read from files.
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
    static SUPPLIED: OnceLock<Supplied> = OnceLock::new();
    let supplied = SUPPLIED.get_or_init(supplied);
    let _ = p.ike_config_with(supplied);
    if p.gateway.address.parse::<IpAddr>().is_ok() {
        let _ = p.resolve_with(supplied);
    }
}

/// Trust and EAP-TLS identity as an app would supply them, from the fuzz PKI.
fn supplied() -> Supplied {
    let anchors = TrustAnchors::from_der([ikelink_proto::fuzzing::pki::CA]).unwrap_or_default();
    let mut roots = RootCertStore::empty();
    let _ = roots.add(CertificateDer::from(ikelink_proto::fuzzing::pki::CA.to_vec()));
    let key = Some(PrivateKeyDer::Pkcs8(rustls_pki_types::PrivatePkcs8KeyDer::from(
        ikelink_proto::fuzzing::pki::GW_KEY.to_vec(),
    )));
    Supplied {
        gateway_auth: Some(GatewayAuth::Certificate(Arc::new(GatewayCertPolicy::new(anchors)))),
        eap_roots: Some(roots),
        eap_tls_identity: key
            .map(|k| (vec![CertificateDer::from(ikelink_proto::fuzzing::pki::GW.to_vec())], TlsKey::Der(k))),
    }
}
