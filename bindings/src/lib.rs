//! Ikelink for mobile VPN apps, through UniFFI (Kotlin for Android, Swift for iOS/macOS).
//!
//! One object, [`VpnClient`], owns a tokio runtime and at most one session (`VpnClient::new` with the OS's TUN
//! for Android and Apple; `VpnClient::desktop` where Ikelink opens its own TUN and sets routes and DNS: Linux,
//! macOS, Windows); everything it has to say arrives
//! as a [`VpnEvent`] on one [`VpnListener`]. Foreign traits cover only what the OS alone can do:
//! - [`TunProvider`]: open the TUN for the negotiated [`TunnelSettings`] (Android `VpnService.Builder`,
//!   Apple `NEPacketTunnelNetworkSettings` + the utun descriptor); the OS applies routes and DNS.
//! - [`SocketProtector`]: keep the VPN's own UDP sockets out of the tunnel (Android `VpnService.protect`).
//! - [`KeystoreSigner`]: sign with a key that never leaves the platform key store.
//! - [`TrustEvaluator`]: does the platform's trust store trust the gateway's certificate chain? (Ikelink
//!   itself checks that the certificate names the gateway.)
//!
//! No panic crosses the FFI: exported functions return `Result<_, VpnError>`, every call into foreign code is
//! guarded, and foreign failures come back as [`CallbackError`]. Logs go through `tracing`; [`set_logger`]
//! forwards them to the app.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod client;
mod error;
mod logging;
mod options;
mod platform;
mod profile;
mod types;

pub use client::VpnClient;
pub use error::{CallbackError, VpnError};
pub use logging::{set_logger, LogLevel, LogSink};
pub use options::{ClientIdentity, ConnectOptions, GatewayTrust};
pub use platform::{KeystoreSigner, NameResolver, SocketProtector, TrustEvaluator, TunProvider, VpnListener};
pub use profile::{profile_facts, ProfileFacts};
pub use types::{
    IpPrefix, SessionDetails, SignatureAlgorithm, TrafficStats, TunnelSettings, TunnelState, VpnEvent, VpnStatus,
};

uniffi::setup_scaffolding!();
