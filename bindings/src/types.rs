//! Records and enums that cross the FFI.

use std::net::IpAddr;

use ikelink::crypto::SigScheme;
use ikelink::driver::{ChildSummary, Stats};
use ikelink::ike::{ts_to_cidrs, SessionInfo};

use crate::error::VpnError;

/// An IP prefix, e.g. `198.51.100.0` / 24.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct IpPrefix {
    pub address: String,
    pub prefix_length: u8,
}

impl IpPrefix {
    fn of(addr: impl Into<IpAddr>, prefix_length: u8) -> IpPrefix {
        IpPrefix { address: addr.into().to_string(), prefix_length }
    }
}

/// What the OS needs to open the tunnel device: Android `VpnService.Builder` (`addAddress`, `setMtu`,
/// `addRoute`, `addDnsServer`, `addSearchDomain`), Apple `NEPacketTunnelNetworkSettings`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TunnelSettings {
    /// The virtual IPv4 address the gateway assigned (prefix length 32).
    pub ipv4: Option<IpPrefix>,
    /// The virtual IPv6 address the gateway assigned.
    pub ipv6: Option<IpPrefix>,
    pub mtu: u16,
    /// Prefixes to route into the tunnel (the gateway's traffic selectors); `0.0.0.0/0` means full tunnel.
    pub routes: Vec<IpPrefix>,
    pub dns_servers: Vec<String>,
    pub search_domains: Vec<String>,
    /// The gateway's address: it must stay reachable outside the tunnel (Apple `tunnelRemoteAddress`).
    pub gateway: String,
    /// Prefixes the profile keeps out of the tunnel (`tunnel.exclude`): Android `excludeRoute` (API 33+),
    /// Apple `excludedRoutes`.
    pub excluded_routes: Vec<IpPrefix>,
}

impl From<&ikelink::platform::TunnelSettings> for TunnelSettings {
    fn from(s: &ikelink::platform::TunnelSettings) -> Self {
        TunnelSettings {
            ipv4: s.ipv4.map(|(a, p)| IpPrefix::of(a, p)),
            ipv6: s.ipv6.map(|(a, p)| IpPrefix::of(a, p)),
            mtu: s.mtu,
            routes: s.routes.iter().map(|&(a, p)| IpPrefix::of(a, p)).collect(),
            dns_servers: s.dns.iter().map(IpAddr::to_string).collect(),
            search_domains: s.dns_domains.clone(),
            gateway: s.gateway.to_string(),
            excluded_routes: s.excluded.iter().map(|&(a, p)| IpPrefix::of(a, p)).collect(),
        }
    }
}

/// Signature algorithms a `KeystoreSigner` may offer (RFC 7427). ECDSA signatures are DER
/// `Ecdsa-Sig-Value`, as Android's `Signature` and Apple's `SecKeyCreateSignature` produce them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum SignatureAlgorithm {
    RsaPkcs1Sha256,
    RsaPkcs1Sha384,
    RsaPkcs1Sha512,
    RsaPssSha256,
    RsaPssSha384,
    RsaPssSha512,
    EcdsaP256Sha256,
    EcdsaP384Sha384,
    EcdsaP521Sha512,
    Ed25519,
}

impl From<SignatureAlgorithm> for SigScheme {
    fn from(a: SignatureAlgorithm) -> Self {
        match a {
            SignatureAlgorithm::RsaPkcs1Sha256 => SigScheme::RsaPkcs1Sha256,
            SignatureAlgorithm::RsaPkcs1Sha384 => SigScheme::RsaPkcs1Sha384,
            SignatureAlgorithm::RsaPkcs1Sha512 => SigScheme::RsaPkcs1Sha512,
            SignatureAlgorithm::RsaPssSha256 => SigScheme::RsaPssSha256,
            SignatureAlgorithm::RsaPssSha384 => SigScheme::RsaPssSha384,
            SignatureAlgorithm::RsaPssSha512 => SigScheme::RsaPssSha512,
            SignatureAlgorithm::EcdsaP256Sha256 => SigScheme::EcdsaP256Sha256,
            SignatureAlgorithm::EcdsaP384Sha384 => SigScheme::EcdsaP384Sha384,
            SignatureAlgorithm::EcdsaP521Sha512 => SigScheme::EcdsaP521Sha512,
            SignatureAlgorithm::Ed25519 => SigScheme::Ed25519,
        }
    }
}

impl From<SigScheme> for SignatureAlgorithm {
    fn from(s: SigScheme) -> Self {
        match s {
            SigScheme::RsaPkcs1Sha256 => SignatureAlgorithm::RsaPkcs1Sha256,
            SigScheme::RsaPkcs1Sha384 => SignatureAlgorithm::RsaPkcs1Sha384,
            SigScheme::RsaPkcs1Sha512 => SignatureAlgorithm::RsaPkcs1Sha512,
            SigScheme::RsaPssSha256 => SignatureAlgorithm::RsaPssSha256,
            SigScheme::RsaPssSha384 => SignatureAlgorithm::RsaPssSha384,
            SigScheme::RsaPssSha512 => SignatureAlgorithm::RsaPssSha512,
            SigScheme::EcdsaP256Sha256 => SignatureAlgorithm::EcdsaP256Sha256,
            SigScheme::EcdsaP384Sha384 => SignatureAlgorithm::EcdsaP384Sha384,
            SigScheme::EcdsaP521Sha512 => SignatureAlgorithm::EcdsaP521Sha512,
            SigScheme::Ed25519 => SignatureAlgorithm::Ed25519,
        }
    }
}

/// Where the tunnel stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum TunnelState {
    Disconnected,
    /// IKE_SA_INIT in flight.
    Connecting,
    /// IKE_AUTH in flight.
    Authenticating,
    Connected,
    /// The tunnel failed and a new attempt is scheduled.
    Reconnecting,
    /// Our Delete is in flight.
    Disconnecting,
}

/// What was negotiated with the gateway.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SessionDetails {
    pub gateway: String,
    pub virtual_ipv4: Option<String>,
    pub virtual_ipv6: Option<IpPrefix>,
    pub dns_servers: Vec<String>,
    pub search_domains: Vec<String>,
    /// Prefixes routed into the tunnel (the Child SA's remote traffic selectors).
    pub routes: Vec<IpPrefix>,
    /// strongSwan-style suite names, e.g. `aes256gcm16-prfsha256-x25519` / `aes256gcm16`.
    pub ike_suite: String,
    pub esp_suite: String,
    pub local_id: String,
    pub remote_id: String,
    /// A NAT was detected on the path (ESP goes over UDP 4500).
    pub behind_nat: bool,
    /// The additional (post-quantum) key exchanges of the IKE SA (RFC 9370), e.g. `["ke1_mlkem768"]`.
    pub additional_key_exchanges: Vec<String>,
    /// The profile asked for additional key exchanges, the gateway did none, and `ike.pq_fallback` let the
    /// session go on with classical key exchange only.
    pub pq_fallback: bool,
    /// The postquantum preshared key (RFC 8784): `none` (not in the profile), `used`, `not-used` (optional, and
    /// the gateway did not use it).
    pub ppk: String,
    /// What carries IKE and ESP: "udp", or "tcp" (RFC 9329; the profile's `gateway.transport`, with "auto"
    /// the one that answered).
    pub transport: String,
}

impl SessionDetails {
    pub(crate) fn of(gateway: IpAddr, info: &SessionInfo, child: &ChildSummary) -> SessionDetails {
        SessionDetails {
            gateway: gateway.to_string(),
            virtual_ipv4: info.config.ipv4.map(|a| a.to_string()),
            virtual_ipv6: info.config.ipv6.map(|(a, p)| IpPrefix::of(a, p)),
            dns_servers: info.config.dns.iter().map(IpAddr::to_string).collect(),
            search_domains: info.config.dns_domains.clone(),
            routes: child.ts_r.iter().flat_map(ts_to_cidrs).map(|c| IpPrefix::of(c.addr, c.prefix)).collect(),
            ike_suite: info.ike_suite.to_string(),
            esp_suite: child.suite.to_string(),
            local_id: info.local_id.clone(),
            remote_id: info.remote_id.clone(),
            behind_nat: info.nat.local_behind_nat || info.nat.remote_behind_nat,
            additional_key_exchanges: info.additional_key_exchanges(),
            pq_fallback: info.pq_fallback,
            ppk: info.ppk.as_str().to_string(),
            transport: info.transport.to_string(),
        }
    }
}

/// Data plane counters since `connect`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, uniffi::Record)]
pub struct TrafficStats {
    pub packets_out: u64,
    pub bytes_out: u64,
    pub packets_in: u64,
    pub bytes_in: u64,
    /// Inbound packets dropped (unknown SPI, failed integrity, replay, malformed, outside the selectors...).
    pub packets_dropped: u64,
}

impl From<Stats> for TrafficStats {
    fn from(s: Stats) -> Self {
        TrafficStats {
            packets_out: s.packets_out,
            bytes_out: s.bytes_out,
            packets_in: s.packets_in,
            bytes_in: s.bytes_in,
            packets_dropped: s.drop_no_sa
                + s.drop_selector
                + s.drop_replay
                + s.drop_auth
                + s.drop_malformed
                + s.drop_padding
                + s.drop_other,
        }
    }
}

/// What the `VpnListener` hears, in order.
// A handful of events per session, handed over by value to the foreign side: boxing buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum VpnEvent {
    StateChanged {
        state: TunnelState,
    },
    /// The IKE SA and the first Child SA are up.
    Connected {
        details: SessionDetails,
    },
    /// The TUN device carries traffic.
    TunnelUp {
        interface: String,
        mtu: u16,
    },
    /// A Child SA was replaced by a fresh one (rekey); traffic was not interrupted.
    Rekeyed {
        esp_suite: String,
    },
    /// The tunnel failed; the next attempt starts after `delay_ms`.
    Reconnecting {
        attempt: u32,
        delay_ms: u64,
        reason: VpnError,
    },
    Stats {
        stats: TrafficStats,
    },
    /// The session is over; `error` is `None` after `disconnect`. The TUN descriptor is closed by then.
    Closed {
        error: Option<VpnError>,
    },
}

/// A snapshot of the client, for UIs that poll.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct VpnStatus {
    pub state: TunnelState,
    pub details: Option<SessionDetails>,
    pub stats: TrafficStats,
    /// Why the last session ended, if it failed.
    pub last_error: Option<VpnError>,
}
