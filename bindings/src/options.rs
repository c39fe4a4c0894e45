//! What the app gives `connect` besides the profile: session options and what it supplies for authentication
//! (its key store's credentials and secrets, its platform's trust), in place of the profile's files.

use std::sync::Arc;

use crate::platform::{KeystoreSigner, NameResolver, TrustEvaluator};

/// Our certificate and private key, when the profile says `auth.method = "cert"` (or EAP-TLS) and the app holds
/// them (apps have no files: these replace the profile's `auth.cert`/`auth.key`/`auth.pkcs12` paths).
#[derive(uniffi::Enum)]
pub enum ClientIdentity {
    /// A PKCS#12 file's bytes (desktop builds; on Android and iOS import it into the key store and use
    /// `Keystore`).
    Pkcs12 { data: Vec<u8>, password: String },
    /// PEM: the certificate chain (end entity first) and the unencrypted private key (PKCS#8, PKCS#1, SEC1).
    Pem { certificate_chain: Vec<u8>, private_key: Vec<u8> },
    /// A certificate chain (DER, end entity first) whose key stays in the platform key store.
    Keystore { certificate_chain: Vec<Vec<u8>>, signer: Arc<dyn KeystoreSigner> },
}

/// How to judge the gateway's certificate, replacing the profile's `gateway.ca` paths (and the system store).
/// Either way Ikelink checks that the certificate names the gateway's identity (`gateway.id`, by default its
/// address) and verifies the gateway's signature.
#[derive(uniffi::Enum)]
pub enum GatewayTrust {
    /// These CA certificates (PEM); the profile's `pin_sha256`/`pin_ca_sha256`, `crl` and `revocation` still
    /// apply. They also vouch for an EAP-TLS/TTLS or PEAP server.
    CaCertificates { pem: Vec<u8> },
    /// The platform decides whether it trusts the chain (Android `X509TrustManager`, Apple
    /// `SecTrustEvaluateWithError`). Profiles with pins or CRLs are refused: only Ikelink's own anchors check
    /// them.
    Platform { evaluator: Arc<dyn TrustEvaluator> },
}

/// How a session runs. All fields have defaults.
#[derive(uniffi::Record)]
pub struct ConnectOptions {
    /// TUN MTU (strongSwan's default 1400 leaves room for ESP-in-UDP on a 1500-byte path).
    #[uniffi(default = 1400)]
    pub mtu: u16,
    /// Send a `Stats` event this often (0: only on `request_stats`).
    #[uniffi(default = 0)]
    pub stats_interval_secs: u32,
    /// Re-establish the tunnel after it failed (it stays up meanwhile, so nothing leaks).
    #[uniffi(default = true)]
    pub reconnect: bool,
    /// Longest pause between reconnection attempts.
    #[uniffi(default = 60)]
    pub reconnect_max_delay_secs: u32,
    /// Our certificate, for `auth.method = "cert"` (or EAP-TLS) profiles without paths.
    #[uniffi(default = None)]
    pub client_identity: Option<ClientIdentity>,
    /// The gateway's CA or the platform's judgement, for profiles without `gateway.ca` paths.
    #[uniffi(default = None)]
    pub gateway_trust: Option<GatewayTrust>,
    /// The pre-shared key (`auth.method = "psk"`) or the EAP password, from the app's key store, for profiles
    /// without `auth.psk`/`auth.password` (or their files).
    #[uniffi(default = None)]
    pub secret: Option<String>,
    /// The postquantum preshared key (RFC 8784, at least 32 bytes) for the profile's `[ppk] id`, from the app's
    /// key store, for profiles without `ppk.secret`/`ppk.secret_file` (`ProfileFacts.ppk_id` names it).
    #[uniffi(default = None)]
    pub ppk_secret: Option<Vec<u8>>,
    /// The OS drops traffic outside the tunnel: Android always-on VPN with "Block connections without VPN"
    /// (`VpnService.isLockdownEnabled`), Apple `includeAllNetworks`. A profile with `tunnel.kill_switch = true`
    /// is refused unless this is true: Ikelink cannot enforce a kill switch itself on these platforms.
    #[uniffi(default = false)]
    pub kill_switch_by_os: bool,
    /// Resolves names outside the tunnel (Android: on the underlying network); null: the system resolver.
    #[uniffi(default = None)]
    pub resolver: Option<Arc<dyn NameResolver>>,
}
