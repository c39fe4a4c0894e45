//! Configuration of one IKE SA, as built from a [`crate::profile::Profile`].

use std::sync::Arc;
use std::time::Duration;

use zeroize::Zeroizing;

use super::proposal::{EspProposal, IkeProposal};
use crate::crypto::{ClientCredentials, GatewayCertPolicy};
use crate::eap::EapConfig;
use crate::wire::{Identification, TrafficSelector};

/// How we authenticate (RFC 7296 §2.15, §2.16).
#[derive(Clone)]
pub enum AuthConfig {
    /// Pre-shared key (§2.15).
    Psk(Zeroizing<Vec<u8>>),
    /// Our certificate and a signer for its key (RFC 7427 digital signatures).
    Certificate(ClientCredentials),
    /// EAP inside IKE_AUTH (§2.16); the AUTH payloads then use the MSK.
    Eap(EapConfig),
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthConfig::Psk(_) => f.write_str("Psk(<redacted>)"),
            AuthConfig::Certificate(c) => f.debug_tuple("Certificate").field(c).finish(),
            AuthConfig::Eap(e) => f.debug_tuple("Eap").field(e).finish(),
        }
    }
}

/// How the gateway must authenticate to us.
#[derive(Clone)]
pub enum GatewayAuth {
    /// With the same pre-shared key as ours.
    Psk,
    /// With a certificate valid under this policy (trust anchors, pins), naming its IDr.
    Certificate(Arc<GatewayCertPolicy>),
    /// With a certificate whose chain the platform trusts (Android's and Apple's trust stores and user
    /// prompts); the identity it must name is checked here, by the same rule as with [`GatewayAuth::Certificate`].
    Platform(Arc<dyn TrustEvaluator>),
}

/// The platform shell's trust decision (Android `X509TrustManager`, Apple `SecTrustEvaluateWithError`): does the
/// OS trust this chain (end entity first, DER) for a VPN gateway? It answers for the chain only: the core
/// matches the gateway's identity (IDr, the expected identity) against the end-entity certificate itself and
/// checks the AUTH signature with its key.
///
/// `host_name` is the name the certificate must carry (the expected identity, else the IDr) when it is a host
/// name or an IP address, for OS policies that want one (Apple's SSL policy); `None` otherwise.
pub trait TrustEvaluator: Send + Sync {
    fn evaluate(&self, chain: &[Vec<u8>], host_name: Option<&str>) -> Result<(), String>;
}

impl std::fmt::Debug for GatewayAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GatewayAuth::Psk => f.write_str("Psk"),
            GatewayAuth::Certificate(_) => f.write_str("Certificate"),
            GatewayAuth::Platform(_) => f.write_str("Platform"),
        }
    }
}

/// Retransmission schedule (§2.1): wait timeout * base^n after send n, retransmit `tries` times, then give up (strongSwan's defaults: 4 s, 1.8, 5).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retransmit {
    pub timeout: Duration,
    pub base: f64,
    pub tries: u32,
}

impl Default for Retransmit {
    fn default() -> Self {
        Retransmit { timeout: Duration::from_secs(4), base: 1.8, tries: 5 }
    }
}

impl Retransmit {
    /// How long to wait after send number `n` (0-based) before resending or giving up.
    pub fn wait(&self, n: u32) -> Duration {
        let f = self.base.max(1.0).powi(n.min(30) as i32);
        self.timeout.mul_f64(f.min(1e6))
    }

    /// The total time from the first send until we give up (`tries` retransmissions after the first send).
    pub fn total(&self) -> Duration {
        (0..=self.tries).map(|n| self.wait(n)).sum()
    }
}

/// Everything the IKE SA needs to know.
#[derive(Debug, Clone)]
pub struct IkeConfig {
    pub local_id: Identification,
    /// The identity we expect from the gateway: its IDr must be this one, or with `remote_id_loose` its
    /// certificate must name it. `None` only with a PSK-authenticated gateway or the explicit `%any` opt-out.
    pub remote_id: Option<Identification>,
    /// `remote_id` came from the gateway's address (no `gateway.id`): the IDr may be another name as long as the
    /// gateway's certificate also names `remote_id` (as strongSwan's app and Apple's client check it).
    pub remote_id_loose: bool,
    /// Accept the gateway's AUTH method 1 (RSA PKCS#1 v1.5 with SHA-1, RFC 7296 §3.8): legacy gateways only.
    pub legacy_rsa_sha1: bool,
    /// Also send `remote_id` as IDr (§3.5), for gateways with several identities on one address. Off by default:
    /// a gateway that does not recognise it just fails authentication, while checking its answer on our side
    /// gives a clear identity-mismatch error.
    pub send_remote_id: bool,
    pub auth: AuthConfig,
    pub gateway_auth: GatewayAuth,
    /// Offer EAP-only authentication (RFC 5998): the gateway may skip its certificate when the EAP method is
    /// mutual and derives an MSK.
    pub eap_only: bool,
    pub ike_proposals: Vec<IkeProposal>,
    pub esp_proposals: Vec<EspProposal>,
    /// Ask for INTERNAL_IP4_ADDRESS / INTERNAL_IP6_ADDRESS (§3.15).
    pub request_ipv4: bool,
    pub request_ipv6: bool,
    /// Ask for DNS servers.
    pub request_dns: bool,
    /// Traffic selectors we propose (§2.9); the gateway may narrow them.
    pub ts_i: Vec<TrafficSelector>,
    pub ts_r: Vec<TrafficSelector>,
    pub retransmit: Retransmit,
    /// Pretend to be behind a NAT so the gateway and we use UDP encapsulation (RFC 3948) even without one.
    pub force_encap: bool,
    /// IKE fragmentation (RFC 7383): the largest IP datagram we send (default 1280, IPv6's minimum MTU);
    /// 0 disables fragmentation.
    pub fragment_mtu: u16,
    /// NAT keepalive interval (RFC 3948 §2.3), used when we are behind a NAT or force encapsulation.
    pub keepalive: Option<Duration>,
    /// Dead peer detection: an empty INFORMATIONAL after this long without anything from the gateway.
    pub dpd: Option<Duration>,
    /// Retransmissions of a DPD request before the gateway is declared dead.
    pub dpd_tries: u32,
    /// Rekey the Child SA / the IKE SA after this long (minus up to 10% jitter); `None`: leave it to the gateway.
    pub child_lifetime: Option<Duration>,
    pub ike_lifetime: Option<Duration>,
    /// Rekey a Child SA after this many bytes (both directions, minus up to 10% jitter).
    pub child_lifetime_bytes: Option<u64>,
    /// Reauthenticate (a new IKE SA with full authentication) after this long.
    pub reauth_lifetime: Option<Duration>,
    /// Offer MOBIKE (RFC 4555), so the SAs can follow us to a new address.
    pub mobike: bool,
    /// Follow IKEv2 redirects (RFC 5685): announce REDIRECT_SUPPORTED and accept REDIRECT from the gateway.
    pub redirect: bool,
    /// This IKE SA follows a redirect from this gateway address: sent as REDIRECTED_FROM (RFC 5685 §4).
    pub redirected_from: Option<std::net::IpAddr>,
    /// Send INITIAL_CONTACT in IKE_AUTH (§2.4): this is the only IKE SA with the gateway, so it may drop any
    /// older ones of ours. Off for the new IKE SA of a make-before-break reauthentication.
    pub initial_contact: bool,
    /// When the proposals name additional key exchanges (RFC 9370, post-quantum hybrids): also offer them
    /// without, and accept a gateway that only does classical key exchange (reported in the session info).
    /// Off: such a gateway is refused.
    pub pq_fallback: bool,
    /// A postquantum preshared key (RFC 8784) mixed into the IKE SA's keys.
    pub ppk: Option<Ppk>,
}

/// A postquantum preshared key (RFC 8784 §3) and its identity, as strongSwan's `ppk_id` / `ppk_required`.
#[derive(Clone)]
pub struct Ppk {
    /// PPK_ID (sent as PPK_ID_FIXED, RFC 8784 §3.1).
    pub id: Vec<u8>,
    pub secret: Zeroizing<Vec<u8>>,
    /// Refuse a gateway that does not use the PPK; otherwise connect without it (reported).
    pub required: bool,
}

impl std::fmt::Debug for Ppk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ppk").field("id", &String::from_utf8_lossy(&self.id)).field("required", &self.required).finish()
    }
}
