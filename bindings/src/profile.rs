//! The profile TOML (the CLI's format, `ikelink::profile`) plus credentials the app holds as bytes or in its
//! key store instead of files.
//!
//! Without credentials from the app the profile resolves exactly as for the CLI (paths allowed). With them,
//! the parts they replace must be absent from the profile (`auth.cert`/`key`/`pkcs12`, `gateway.ca`); the
//! rest is validated by the core's resolver, then authentication is put together here.

use std::sync::Arc;

use ikelink::crypto::{ClientCredentials, GatewayCertPolicy, TrustAnchors};
use ikelink::eap::{CertificateDer, TlsKey};
use ikelink::ike::{parse_identity, AuthConfig, GatewayAuth};
use ikelink::profile::{root_store_from_pem, Profile, Resolved, Supplied};
use zeroize::Zeroizing;

use crate::error::VpnError;
use crate::platform::{SignerAdapter, TrustAdapter};
use crate::types::{ClientIdentity, GatewayTrust};

/// A profile checked before anything touches the network; [`Checked::resolve`] then looks up the gateway.
pub(crate) struct Checked {
    /// What the core resolver sees (credentials from the app stripped out).
    profile: Profile,
    /// Authentication put together from the app's credentials, if it gave any.
    auth: Option<(AuthConfig, ikelink::wire::Identification)>,
    gateway_auth: Option<GatewayAuth>,
    /// For EAP profiles: the app's trust, which the core resolver uses directly.
    supplied: Option<Supplied>,
}

fn invalid(message: impl ToString) -> VpnError {
    VpnError::InvalidProfile { reason: message.to_string() }
}

fn credentials(message: impl ToString) -> VpnError {
    VpnError::InvalidCredentials { reason: message.to_string() }
}

/// A placeholder pre-shared key for the core resolver when the real authentication comes from the app.
const STAND_IN_PSK: &str = "ikelink-ffi: replaced by the app's credentials";
const STAND_IN_ID: &str = "stand-in@ikelink.invalid";

pub(crate) fn check(
    toml: &str,
    identity: Option<ClientIdentity>,
    trust: Option<GatewayTrust>,
) -> Result<Checked, VpnError> {
    let original = Profile::parse(toml).map_err(invalid)?;
    if identity.is_none() && trust.is_none() {
        original.ike_config().map_err(invalid)?;
        return Ok(Checked { profile: original, auth: None, gateway_auth: None, supplied: None });
    }
    let a = &original.auth;
    let method = a.method.as_str();
    let gateway_auth_kind =
        original.gateway.auth.clone().unwrap_or_else(|| if method == "psk" { "psk".into() } else { "cert".into() });
    // EAP with the gateway's trust and/or (EAP-TLS) our identity from the app: the core resolver takes them
    // directly; PEM CAs also vouch for an EAP-TLS/TTLS server.
    if method == "eap" {
        if identity.is_some() {
            if a.eap_method.as_deref() != Some("tls") {
                return Err(invalid("auth.eap_method: a client identity from the app needs eap_method = \"tls\""));
            }
            if a.cert.is_some() || a.key.is_some() || a.pkcs12.is_some() {
                return Err(invalid("auth.cert: give the client identity either in the profile or to connect()"));
            }
        }
        if trust.is_some() {
            if gateway_auth_kind == "psk" {
                return Err(invalid("gateway.auth: the gateway authenticates with the PSK, not a certificate"));
            }
            if !original.gateway.ca.is_empty() {
                return Err(invalid("gateway.ca: give the gateway's CA either in the profile or to connect()"));
            }
        }
        let eap_roots = match &trust {
            Some(GatewayTrust::CaCertificates { pem }) => Some(root_store_from_pem(pem).map_err(credentials)?),
            _ => None,
        };
        let eap_tls_identity = match identity {
            Some(id) => {
                let c = client_credentials(id)?;
                Some((c.chain.into_iter().map(CertificateDer::from).collect(), TlsKey::Signer(c.signer)))
            }
            None => None,
        };
        let gateway_auth = trust.map(|t| gateway_trust(t, &original)).transpose()?;
        let supplied = Supplied { gateway_auth, eap_roots, eap_tls_identity };
        original.ike_config_with(&supplied).map_err(invalid)?;
        return Ok(Checked { profile: original, auth: None, gateway_auth: None, supplied: Some(supplied) });
    }
    let mut profile = original.clone();

    // Our side.
    let auth = match (identity, method) {
        (None, _) => None,
        (Some(id), "cert") => {
            if a.cert.is_some() || a.key.is_some() || a.pkcs12.is_some() {
                return Err(invalid("auth.cert: give the client identity either in the profile or to connect()"));
            }
            let creds = client_credentials(id)?;
            let local_id = match &original.local.id {
                Some(s) => parse_identity(s).map_err(|e| invalid(format!("local.id: {e}")))?,
                None => creds.subject_identity().map_err(credentials)?,
            };
            // The core resolver checks everything else as for a PSK profile.
            profile.auth.method = "psk".into();
            profile.auth.psk = Some(STAND_IN_PSK.into());
            profile.auth.psk_file = None;
            profile.local.id = Some(STAND_IN_ID.into());
            Some((AuthConfig::Certificate(creds), local_id))
        }
        (Some(_), m) => {
            return Err(invalid(format!(
                "auth.method: a client identity from the app needs method \"cert\", not \"{m}\""
            )))
        }
    };

    // The gateway's side.
    let gateway_auth = match (trust, gateway_auth_kind.as_str()) {
        (Some(_), "psk") => {
            return Err(invalid("gateway.auth: the gateway authenticates with the PSK, not a certificate"))
        }
        (Some(t), _) => {
            if !original.gateway.ca.is_empty() {
                return Err(invalid("gateway.ca: give the gateway's CA either in the profile or to connect()"));
            }
            Some(gateway_trust(t, &original)?)
        }
        (None, _) => None,
    };
    if gateway_auth.is_some() || auth.is_some() {
        // Only the PSK branch of the resolver needs no files or trust store; its result is replaced below.
        if profile.auth.method != "psk" {
            return Err(invalid(format!(
                "auth.method: with the gateway's trust from the app, method \"{}\" needs its credentials in the \
                 profile; only \"psk\" and \"cert\" are supported here",
                profile.auth.method
            )));
        }
        profile.gateway.auth = Some("psk".into());
        profile.gateway.ca.clear();
        profile.gateway.pin_ca_sha256 = None;
        profile.gateway.pin_sha256 = None;
    }
    let gateway_auth = match gateway_auth {
        Some(g) => Some(g),
        // Our identity from the app, the gateway's trust from the profile (its CA files or the system store).
        None if gateway_auth_kind != "psk" => Some(profile_gateway_auth(&original)?),
        None => None,
    };
    profile.ike_config().map_err(invalid)?;
    Ok(Checked { profile, auth, gateway_auth, supplied: None })
}

impl Checked {
    /// Resolves the gateway's address (may query DNS: call off the UI thread) and fills in authentication.
    pub(crate) fn resolve(self) -> Result<Resolved, VpnError> {
        let mut r = match &self.supplied {
            Some(s) => self.profile.resolve_with(s).map_err(invalid)?,
            None => self.profile.resolve().map_err(invalid)?,
        };
        if let Some((auth, local_id)) = self.auth {
            r.ike.auth = auth;
            r.ike.local_id = local_id;
        }
        if let Some(g) = self.gateway_auth {
            r.ike.gateway_auth = g;
        }
        Ok(r)
    }
}

fn client_credentials(id: ClientIdentity) -> Result<ClientCredentials, VpnError> {
    match id {
        ClientIdentity::Pem { certificate_chain, private_key } => {
            let key = Zeroizing::new(private_key);
            ClientCredentials::from_pem(&certificate_chain, &key).map_err(credentials)
        }
        ClientIdentity::Pkcs12 { data, password } => {
            let password = Zeroizing::new(password);
            pkcs12(&data, &password)
        }
        ClientIdentity::Keystore { certificate_chain, signer } => {
            ClientCredentials::new(certificate_chain, Arc::new(SignerAdapter(signer))).map_err(credentials)
        }
    }
}

#[cfg(not(any(target_os = "android", target_os = "ios")))]
fn pkcs12(data: &[u8], password: &str) -> Result<ClientCredentials, VpnError> {
    ClientCredentials::from_pkcs12(data, password).map_err(credentials)
}

#[cfg(any(target_os = "android", target_os = "ios"))]
fn pkcs12(_data: &[u8], _password: &str) -> Result<ClientCredentials, VpnError> {
    Err(credentials("PKCS#12 is read by the platform here: import it into the key store and use Keystore"))
}

fn gateway_trust(t: GatewayTrust, profile: &Profile) -> Result<GatewayAuth, VpnError> {
    match t {
        GatewayTrust::Platform { evaluator } => Ok(GatewayAuth::Platform(Arc::new(TrustAdapter(evaluator)))),
        GatewayTrust::CaCertificates { pem } => {
            let mut anchors = TrustAnchors::new();
            anchors.add_pem(&pem).map_err(credentials)?;
            policy(anchors, profile)
        }
    }
}

/// The gateway's trust as the profile gives it: its `gateway.ca` files, else the system store.
fn profile_gateway_auth(profile: &Profile) -> Result<GatewayAuth, VpnError> {
    let mut anchors = TrustAnchors::new();
    for f in &profile.gateway.ca {
        let pem = std::fs::read(f).map_err(|e| invalid(format!("gateway.ca: cannot read `{f}`: {e}")))?;
        anchors.add_pem(&pem).map_err(|e| invalid(format!("gateway.ca: {e}")))?;
    }
    if profile.gateway.ca.is_empty() {
        anchors = system_anchors()?;
    }
    policy(anchors, profile)
}

#[cfg(not(any(target_os = "android", target_os = "ios")))]
fn system_anchors() -> Result<TrustAnchors, VpnError> {
    TrustAnchors::from_system().map_err(|e| invalid(format!("gateway.ca: {e}")))
}

#[cfg(any(target_os = "android", target_os = "ios"))]
fn system_anchors() -> Result<TrustAnchors, VpnError> {
    Err(invalid("gateway.ca: no system trust store here: give GatewayTrust to connect()"))
}

fn policy(anchors: TrustAnchors, profile: &Profile) -> Result<GatewayAuth, VpnError> {
    let mut policy = GatewayCertPolicy::new(anchors);
    if let Some(p) = &profile.gateway.pin_ca_sha256 {
        policy.pinned_ca_spki_sha256 = Some(hex32("gateway.pin_ca_sha256", p)?);
    }
    if let Some(p) = &profile.gateway.pin_sha256 {
        policy.pinned_leaf_spki_sha256 = Some(hex32("gateway.pin_sha256", p)?);
    }
    policy.crls = ikelink::profile::load_crls(&profile.gateway.crl).map_err(invalid)?;
    if let Some(r) = &profile.gateway.revocation {
        policy.revocation = r.parse().map_err(|e| invalid(format!("gateway.revocation: {e}")))?;
    }
    Ok(GatewayAuth::Certificate(Arc::new(policy)))
}

fn hex32(name: &str, s: &str) -> Result<[u8; 32], VpnError> {
    let digits: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b':').collect();
    let bytes: Option<Vec<u8>> =
        digits.chunks(2).map(|d| std::str::from_utf8(d).ok().and_then(|d| u8::from_str_radix(d, 16).ok())).collect();
    bytes.and_then(|b| <[u8; 32]>::try_from(b).ok()).ok_or_else(|| invalid(format!("{name}: must be 64 hex digits")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    const PSK: &str =
        "[gateway]\naddress = \"203.0.113.2\"\n[local]\nid = \"c@ikelink.test\"\n[auth]\nmethod = \"psk\"\n\
                       psk = \"secret\"\n";
    const CERT: &str = "[gateway]\naddress = \"203.0.113.2\"\nid = \"gw.ikelink.test\"\n[local]\n[auth]\n\
                        method = \"cert\"\n";

    fn pem_identity() -> (ClientIdentity, Vec<u8>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["client.ikelink.test".to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap().pem();
        let ca = cert.clone().into_bytes();
        (
            ClientIdentity::Pem { certificate_chain: cert.into_bytes(), private_key: key.serialize_pem().into_bytes() },
            ca,
        )
    }

    #[test]
    fn a_plain_profile_resolves_as_for_the_cli() {
        let r = check(PSK, None, None).and_then(Checked::resolve);
        assert!(matches!(r, Ok(ref r) if matches!(r.ike.auth, AuthConfig::Psk(_))), "{:?}", r.err());
    }

    #[test]
    fn bad_profiles_are_typed_errors() {
        assert!(matches!(check("nonsense", None, None), Err(VpnError::InvalidProfile { .. })));
        let no_psk = PSK.replace("psk = \"secret\"", "");
        assert!(
            matches!(check(&no_psk, None, None), Err(VpnError::InvalidProfile { reason: message }) if message.contains("auth.psk"))
        );
        // A certificate profile without files or credentials from the app.
        assert!(matches!(check(CERT, None, None), Err(VpnError::InvalidProfile { .. })));
    }

    #[test]
    fn certificate_identity_and_ca_from_bytes() {
        let (identity, ca) = pem_identity();
        let checked = check(CERT, Some(identity), Some(GatewayTrust::CaCertificates { pem: ca }));
        let r = checked.and_then(Checked::resolve).unwrap();
        assert!(matches!(r.ike.auth, AuthConfig::Certificate(_)));
        assert!(matches!(r.ike.gateway_auth, GatewayAuth::Certificate(_)));
        assert_eq!(r.ike.local_id.id_type, ikelink::wire::IdType::ID_DER_ASN1_DN, "the certificate's subject");
        assert_eq!(r.gateway.to_string(), "203.0.113.2:500");
    }

    /// A key store key, as the app would implement [`KeystoreSigner`] (here with an in-memory key).
    struct Keystore(ikelink::crypto::KeyPairSigner);

    impl crate::platform::KeystoreSigner for Keystore {
        fn algorithms(&self) -> Result<Vec<crate::types::SignatureAlgorithm>, crate::error::CallbackError> {
            use ikelink::crypto::Signer;
            Ok(self.0.schemes().into_iter().map(Into::into).collect())
        }
        fn sign(
            &self,
            algorithm: crate::types::SignatureAlgorithm,
            data: Vec<u8>,
        ) -> Result<Vec<u8>, crate::error::CallbackError> {
            use ikelink::crypto::Signer;
            self.0
                .sign(algorithm.into(), &data)
                .map_err(|e| crate::error::CallbackError::Failed { reason: e.to_string() })
        }
    }

    #[test]
    fn keystore_signer_signs_for_its_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert =
            rcgen::CertificateParams::new(vec!["c.ikelink.test".to_string()]).unwrap().self_signed(&key).unwrap();
        let signer = ikelink::crypto::KeyPairSigner::from_pem(key.serialize_pem().as_bytes()).unwrap();
        let identity = ClientIdentity::Keystore {
            certificate_chain: vec![cert.der().to_vec()],
            signer: Arc::new(Keystore(signer)),
        };
        // `ClientCredentials::new` verifies a test signature from the key store with the certificate.
        let r = check(CERT, Some(identity), Some(GatewayTrust::CaCertificates { pem: cert.pem().into_bytes() }));
        assert!(r.is_ok(), "{:?}", r.err());

        // Another key than the certificate's: refused before connecting.
        let other = rcgen::KeyPair::generate().unwrap();
        let signer = ikelink::crypto::KeyPairSigner::from_pem(other.serialize_pem().as_bytes()).unwrap();
        let identity = ClientIdentity::Keystore {
            certificate_chain: vec![cert.der().to_vec()],
            signer: Arc::new(Keystore(signer)),
        };
        assert!(matches!(check(CERT, Some(identity), None), Err(VpnError::InvalidCredentials { .. })));
    }

    /// An OS trust store that trusts one-certificate chains.
    struct Judge;
    impl crate::platform::TrustEvaluator for Judge {
        fn evaluate(&self, chain: Vec<Vec<u8>>, host_name: Option<String>) -> Result<(), crate::error::CallbackError> {
            match chain.len() {
                1 => Ok(()),
                n => Err(crate::error::CallbackError::Failed {
                    reason: format!("untrusted chain of {n} for {host_name:?}"),
                }),
            }
        }
    }

    #[test]
    fn platform_trust_reaches_the_app() {
        let (identity, _) = pem_identity();
        let trust = GatewayTrust::Platform { evaluator: Arc::new(Judge) };
        let r = check(CERT, Some(identity), Some(trust)).and_then(Checked::resolve).unwrap();
        // The core matches the identity; the app's evaluator answers for the chain, with the host name.
        let GatewayAuth::Platform(evaluator) = r.ike.gateway_auth else { panic!("platform trust expected") };
        assert_eq!(evaluator.evaluate(&[vec![1]], Some("gw.ikelink.test")), Ok(()));
        let refused = evaluator.evaluate(&[vec![1], vec![2]], Some("gw.ikelink.test"));
        assert_eq!(refused, Err("untrusted chain of 2 for Some(\"gw.ikelink.test\")".to_string()));
    }

    #[test]
    fn eap_profiles_with_the_gateway_trust_from_the_app() {
        use ikelink::eap::{EapCredentials, EapMethod};
        let eap = |method: &str| {
            format!(
                "[gateway]\naddress = \"203.0.113.2\"\nid = \"gw.ikelink.test\"\n[local]\n[auth]\nmethod = \"eap\"\n\
                 eap_method = \"{method}\"\nusername = \"alice\"\npassword = \"secret\"\n"
            )
        };
        let (_, ca) = pem_identity();
        // EAP-MSCHAPv2, the road-warrior setup: the gateway's CA from the app, the password from the profile.
        let r = check(&eap("mschapv2"), None, Some(GatewayTrust::CaCertificates { pem: ca.clone() }))
            .and_then(Checked::resolve)
            .unwrap();
        let AuthConfig::Eap(c) = &r.ike.auth else { panic!("EAP expected") };
        assert!(matches!(c.credentials, EapCredentials::Password { .. }));
        assert_eq!(c.allowed, vec![EapMethod::MsChapV2]);
        assert!(matches!(r.ike.gateway_auth, GatewayAuth::Certificate(_)));
        // With the platform deciding about the gateway.
        let trust = GatewayTrust::Platform { evaluator: Arc::new(Judge) };
        let r = check(&eap("mschapv2"), None, Some(trust)).and_then(Checked::resolve).unwrap();
        assert!(matches!(r.ike.gateway_auth, GatewayAuth::Platform(_)));
        // EAP-TTLS: the app's CAs also vouch for the EAP server.
        let r = check(&eap("ttls"), None, Some(GatewayTrust::CaCertificates { pem: ca }))
            .and_then(Checked::resolve)
            .unwrap();
        let AuthConfig::Eap(c) = &r.ike.auth else { panic!("EAP expected") };
        let EapCredentials::Ttls(t) = &c.credentials else { panic!("TTLS expected") };
        assert_eq!((t.server_name.as_str(), t.roots.len()), ("gw.ikelink.test", 1));
        // EAP-TLS with the client identity from the app (a key store key) and its CAs.
        let tls = "[gateway]\naddress = \"203.0.113.2\"\nid = \"gw.ikelink.test\"\n[local]\n[auth]\nmethod = \"eap\"\n\
                   eap_method = \"tls\"\neap_identity = \"client.ikelink.test\"\n";
        let (identity, ca) = pem_identity();
        let r = check(tls, Some(identity), Some(GatewayTrust::CaCertificates { pem: ca.clone() }))
            .and_then(Checked::resolve)
            .unwrap();
        let AuthConfig::Eap(c) = &r.ike.auth else { panic!("EAP expected") };
        let EapCredentials::Tls(t) = &c.credentials else { panic!("EAP-TLS expected") };
        assert!(matches!(t.key, ikelink::eap::TlsKey::Signer(_)));
        assert_eq!((t.chain.len(), t.roots.len()), (1, 1));
        // A client identity from the app only serves EAP-TLS.
        let (identity, _) = pem_identity();
        let e = check(&eap("mschapv2"), Some(identity), Some(GatewayTrust::CaCertificates { pem: ca })).err().unwrap();
        assert!(matches!(&e, VpnError::InvalidProfile { reason } if reason.contains("eap_method")), "{e:?}");
        // EAP-TTLS with platform trust has no anchors for the EAP server: a typed error naming gateway.ca.
        let trust = GatewayTrust::Platform { evaluator: Arc::new(Judge) };
        let e = check(&eap("ttls"), None, Some(trust)).err().unwrap();
        assert!(matches!(&e, VpnError::InvalidProfile { reason: message } if message.contains("gateway.ca")), "{e:?}");
    }

    #[test]
    fn wrong_credentials_are_typed_errors() {
        let junk = ClientIdentity::Pem { certificate_chain: b"junk".to_vec(), private_key: b"junk".to_vec() };
        assert!(matches!(check(CERT, Some(junk), None), Err(VpnError::InvalidCredentials { .. })));
        let (identity, _) = pem_identity();
        assert!(matches!(check(PSK, Some(identity), None), Err(VpnError::InvalidProfile { .. })), "PSK profile");
        let bad_ca = GatewayTrust::CaCertificates { pem: b"-----BEGIN CERTIFICATE-----\nxx\n".to_vec() };
        let (identity, _) = pem_identity();
        assert!(check(CERT, Some(identity), Some(bad_ca)).is_err());
    }
}
