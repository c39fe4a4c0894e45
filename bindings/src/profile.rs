//! The profile TOML (the CLI's format, `ikelink::profile`) plus what the app supplies for authentication: its
//! credentials as bytes or in its key store, a secret, the gateway's trust. They are handed to the core's
//! resolver as [`Supplied`]; this module only converts them from their FFI form.

use std::sync::Arc;

use ikelink::crypto::ClientCredentials;
use ikelink::profile::{Profile, ProfileError, Resolved, Supplied, SuppliedTrust};
use zeroize::Zeroizing;

use crate::error::VpnError;
use crate::options::{ClientIdentity, GatewayTrust};
use crate::platform::{SignerAdapter, TrustAdapter};

/// A profile checked before anything touches the network; [`Checked::resolve`] then looks up the gateway.
pub(crate) struct Checked {
    profile: Profile,
    supplied: Supplied,
}

fn invalid(e: ProfileError) -> VpnError {
    match e {
        ProfileError::Supplied { .. } => credentials(e),
        e => VpnError::InvalidProfile { reason: e.to_string() },
    }
}

fn credentials(message: impl ToString) -> VpnError {
    VpnError::InvalidCredentials { reason: message.to_string() }
}

/// What a shell needs to know about a profile before connecting (to configure the OS side: Apple
/// `includeAllNetworks` for the kill switch, a password prompt or Keychain lookup for the secret), read by the
/// same parser `connect` uses.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ProfileFacts {
    /// `gateway.address` as written (a name or an address).
    pub gateway_address: String,
    /// `auth.method`: "psk", "cert" or "eap".
    pub auth_method: String,
    /// Whether the profile carries its own PSK or EAP password (or names a file with it); otherwise pass
    /// `ConnectOptions.secret` for "psk" and password-based EAP.
    pub secret_in_profile: bool,
    /// `tunnel.kill_switch`: the OS must drop traffic outside the tunnel (`ConnectOptions.kill_switch_by_os`).
    pub kill_switch: bool,
    /// `ppk.id`: the postquantum preshared key (RFC 8784) the profile uses, if any.
    pub ppk_id: Option<String>,
    /// Whether the profile carries the PPK itself (`ppk.secret`/`ppk.secret_file`); otherwise pass
    /// `ConnectOptions.ppk_secret` when `ppk_id` is set.
    pub ppk_secret_in_profile: bool,
}

/// Reads `profile_toml` with the profile parser and reports what the shell needs before connecting. Errors
/// are those `connect` would give for the profile's structure (`InvalidProfile`).
#[uniffi::export]
pub fn profile_facts(profile_toml: String) -> Result<ProfileFacts, VpnError> {
    let toml = Zeroizing::new(profile_toml);
    let p = Profile::parse(&toml).map_err(invalid)?;
    let a = &p.auth;
    Ok(ProfileFacts {
        gateway_address: p.gateway.address.clone(),
        auth_method: a.method.clone(),
        secret_in_profile: a.psk.is_some() || a.psk_file.is_some() || a.password.is_some() || a.password_file.is_some(),
        kill_switch: p.tunnel.kill_switch,
        ppk_id: p.ppk.as_ref().map(|k| k.id.clone()),
        ppk_secret_in_profile: p.ppk.as_ref().is_some_and(|k| k.secret.is_some() || k.secret_file.is_some()),
    })
}

pub(crate) fn check(
    toml: &str,
    identity: Option<ClientIdentity>,
    trust: Option<GatewayTrust>,
    secret: Option<String>,
    ppk_secret: Option<Vec<u8>>,
) -> Result<Checked, VpnError> {
    let profile = Profile::parse(toml).map_err(invalid)?;
    let supplied = Supplied {
        client_credentials: identity.map(client_credentials).transpose()?,
        secret: secret.map(|s| Zeroizing::new(s.into_bytes())),
        gateway_trust: trust.map(gateway_trust).transpose()?,
        ppk_secret: ppk_secret.map(Zeroizing::new),
    };
    profile.ike_config_with(&supplied).map_err(invalid)?;
    Ok(Checked { profile, supplied })
}

/// The profile's kill switch needs the OS to drop traffic outside the tunnel: Ikelink cannot do it on mobile
/// platforms, and never ignores the setting.
pub(crate) fn check_kill_switch(checked: &Checked, kill_switch_by_os: bool) -> Result<(), VpnError> {
    if checked.profile.tunnel.kill_switch && !kill_switch_by_os {
        return Err(VpnError::InvalidOptions {
            reason: "tunnel.kill_switch: the OS must block traffic outside the VPN, and it does not say so \
                     (ConnectOptions.kill_switch_by_os): on Android turn on always-on VPN with \"Block connections \
                     without VPN\" (lockdown), on Apple platforms set includeAllNetworks in the VPN configuration; \
                     or remove kill_switch from the profile"
                .into(),
        });
    }
    Ok(())
}

impl Checked {
    /// Resolves the gateway's address (may query DNS: call off the UI thread), with the app's resolver if any.
    pub(crate) fn resolve(self, resolver: Option<&dyn ikelink::platform::Resolver>) -> Result<Resolved, VpnError> {
        match resolver {
            Some(r) => self.profile.resolve_by(&self.supplied, &|host, port| {
                Ok(r.resolve(host)?.into_iter().map(|ip| std::net::SocketAddr::new(ip, port)).collect())
            }),
            None => self.profile.resolve_with(&self.supplied),
        }
        .map_err(invalid)
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

fn gateway_trust(t: GatewayTrust) -> Result<SuppliedTrust, VpnError> {
    match t {
        GatewayTrust::Platform { evaluator } => Ok(SuppliedTrust::Platform(Arc::new(TrustAdapter(evaluator)))),
        GatewayTrust::CaCertificates { pem } => SuppliedTrust::from_pem(&pem).map_err(invalid),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use ikelink::ike::{parse_identity, AuthConfig, GatewayAuth};

    /// `check` without a secret from the app.
    fn check(toml: &str, identity: Option<ClientIdentity>, trust: Option<GatewayTrust>) -> Result<Checked, VpnError> {
        super::check(toml, identity, trust, None, None)
    }

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
        let r = check(PSK, None, None).and_then(|c| c.resolve(None));
        assert!(matches!(r, Ok(ref r) if matches!(r.ike.auth, AuthConfig::Psk(_))), "{:?}", r.err());
    }

    // Issue 13: a kill switch is never ignored on mobile: refused unless the OS enforces it; the shells learn
    // about it (and whether to supply a secret) from the same parser.
    #[test]
    fn kill_switch_needs_the_os_and_facts_come_from_the_parser() {
        let ks = format!("{PSK}[tunnel]\nkill_switch = true\n");
        let checked = check(&ks, None, None).unwrap();
        let e = check_kill_switch(&checked, false).unwrap_err();
        assert!(matches!(&e, VpnError::InvalidOptions { reason } if reason.starts_with("tunnel.kill_switch")), "{e:?}");
        assert!(check_kill_switch(&checked, true).is_ok());
        assert!(check_kill_switch(&check(PSK, None, None).unwrap(), false).is_ok());
        let f = profile_facts(ks).unwrap();
        assert_eq!(
            f,
            ProfileFacts {
                gateway_address: "203.0.113.2".into(),
                auth_method: "psk".into(),
                secret_in_profile: true,
                kill_switch: true,
                ppk_id: None,
                ppk_secret_in_profile: false,
            }
        );
        // Dotted keys and inline tables are TOML too.
        let f = profile_facts(format!("tunnel = {{ kill_switch = true }}\n{}", PSK.replace("psk = \"secret\"\n", "")))
            .unwrap();
        assert!(f.kill_switch && !f.secret_in_profile);
        assert!(matches!(profile_facts("[gateway".into()), Err(VpnError::InvalidProfile { .. })));
    }

    // Issue 13: the gateway's name is looked up by the app's resolver (outside the tunnel) when it gives one.
    #[test]
    fn the_apps_resolver_looks_up_the_gateway() {
        struct Fixed;
        impl crate::platform::NameResolver for Fixed {
            fn resolve(&self, host: String) -> Result<Vec<String>, crate::error::CallbackError> {
                match host.as_str() {
                    "vpn.ikelink.invalid" => Ok(vec!["not an address".into(), "203.0.113.9".into()]),
                    _ => Err(crate::error::CallbackError::Failed { reason: format!("unknown {host}") }),
                }
            }
        }
        let adapter = crate::platform::ResolverAdapter(Arc::new(Fixed));
        let named = PSK.replace("203.0.113.2", "vpn.ikelink.invalid");
        let r = check(&named, None, None).and_then(|c| c.resolve(Some(&adapter))).unwrap();
        assert_eq!(r.gateway.to_string(), "203.0.113.9:500");
        let other = PSK.replace("203.0.113.2", "other.ikelink.invalid");
        let e = check(&other, None, None).and_then(|c| c.resolve(Some(&adapter))).unwrap_err();
        assert!(matches!(&e, VpnError::InvalidProfile { reason } if reason.contains("unknown other")), "{e:?}");
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
        let r = checked.and_then(|c| c.resolve(None)).unwrap();
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
        let r = check(CERT, Some(identity), Some(trust)).and_then(|c| c.resolve(None)).unwrap();
        // The core matches the identity; the app's evaluator answers for the chain, with the host name.
        assert_eq!((r.ike.remote_id, r.ike.remote_id_loose), (Some(parse_identity("gw.ikelink.test").unwrap()), true));
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
            .and_then(|c| c.resolve(None))
            .unwrap();
        let AuthConfig::Eap(c) = &r.ike.auth else { panic!("EAP expected") };
        assert!(matches!(c.credentials, EapCredentials::Password { .. }));
        assert_eq!(c.allowed, vec![EapMethod::MsChapV2]);
        assert!(matches!(r.ike.gateway_auth, GatewayAuth::Certificate(_)));
        // With the platform deciding about the gateway.
        let trust = GatewayTrust::Platform { evaluator: Arc::new(Judge) };
        let r = check(&eap("mschapv2"), None, Some(trust)).and_then(|c| c.resolve(None)).unwrap();
        assert!(matches!(r.ike.gateway_auth, GatewayAuth::Platform(_)));
        // EAP-TTLS: the app's CAs also vouch for the EAP server.
        let r = check(&eap("ttls"), None, Some(GatewayTrust::CaCertificates { pem: ca }))
            .and_then(|c| c.resolve(None))
            .unwrap();
        let AuthConfig::Eap(c) = &r.ike.auth else { panic!("EAP expected") };
        let EapCredentials::Ttls(t) = &c.credentials else { panic!("TTLS expected") };
        assert_eq!((t.server_name.as_str(), t.roots.len()), ("gw.ikelink.test", 1));
        // EAP-TLS with the client identity from the app (a key store key) and its CAs.
        let tls = "[gateway]\naddress = \"203.0.113.2\"\nid = \"gw.ikelink.test\"\n[local]\n[auth]\nmethod = \"eap\"\n\
                   eap_method = \"tls\"\neap_identity = \"client.ikelink.test\"\n";
        let (identity, ca) = pem_identity();
        let r = check(tls, Some(identity), Some(GatewayTrust::CaCertificates { pem: ca.clone() }))
            .and_then(|c| c.resolve(None))
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

    // A PSK or an EAP password from the app's key store: no secret in the profile, no stand-in.
    #[test]
    fn secrets_from_the_key_store() {
        let no_psk = PSK.replace("psk = \"secret\"\n", "");
        let secret = || Some("a pre-shared key from the key store".to_string());
        let r = super::check(&no_psk, None, None, secret(), None).and_then(|c| c.resolve(None)).unwrap();
        assert!(matches!(&r.ike.auth, AuthConfig::Psk(k) if k.as_slice() == b"a pre-shared key from the key store"));
        let e = super::check(PSK, None, None, secret(), None).err().unwrap();
        assert!(matches!(&e, VpnError::InvalidProfile { reason } if reason.starts_with("auth.psk")), "{e:?}");
        let (identity, _) = pem_identity();
        let e = super::check(CERT, Some(identity), None, secret(), None).err().unwrap();
        assert!(matches!(&e, VpnError::InvalidProfile { reason } if reason.starts_with("auth.method")), "{e:?}");
    }

    // Issue 14: the postquantum PPK from the app's key store, for a profile that names only its id.
    #[test]
    fn ppk_from_the_key_store() {
        let ppk_id_only = format!("{PSK}[ppk]\nid = \"pq-1\"\n");
        let f = profile_facts(ppk_id_only.clone()).unwrap();
        assert_eq!((f.ppk_id.as_deref(), f.ppk_secret_in_profile), (Some("pq-1"), false));
        let key = || Some(vec![0x42; 32]);
        let r = super::check(&ppk_id_only, None, None, None, key()).and_then(|c| c.resolve(None)).unwrap();
        let ppk = r.ike.ppk.unwrap();
        assert_eq!((ppk.id.as_slice(), ppk.secret.as_slice(), ppk.required), (&b"pq-1"[..], &[0x42; 32][..], true));
        // No key anywhere, a short key, or a key with nowhere to go: refused before connecting, naming the field.
        for (toml, key) in [(ppk_id_only.as_str(), None), (&ppk_id_only, Some(vec![1; 16])), (PSK, key())] {
            let e = super::check(toml, None, None, None, key).err().unwrap();
            assert!(matches!(&e, VpnError::InvalidProfile { reason } if reason.starts_with("ppk")), "{e:?}");
        }
    }

    #[test]
    fn wrong_credentials_are_typed_errors() {
        let junk = ClientIdentity::Pem { certificate_chain: b"junk".to_vec(), private_key: b"junk".to_vec() };
        assert!(matches!(check(CERT, Some(junk), None), Err(VpnError::InvalidCredentials { .. })));
        let (identity, _) = pem_identity();
        assert!(matches!(check(PSK, Some(identity), None), Err(VpnError::InvalidProfile { .. })), "PSK profile");
        let bad_ca = GatewayTrust::CaCertificates { pem: b"-----BEGIN CERTIFICATE-----\nxx\n".to_vec() };
        let (identity, _) = pem_identity();
        assert!(matches!(check(CERT, Some(identity), Some(bad_ca)), Err(VpnError::InvalidCredentials { .. })));
    }
}
