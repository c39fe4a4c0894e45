//! Interop test harness: network namespaces (client, NAT-able router, gateway, LAN) and strongSwan daemons
//! (gateway = responder, optional reference client) driven through `swanctl`.
//!
//! Everything is bounded in time, processes are only signalled by the PID of a child we started (or found in a
//! namespace we created), and namespaces are deleted on drop. Needs root. Typical use:
//!
//! ```no_run
//! use ikelink_testbed::harness::*;
//! # fn main() -> Result<()> {
//! let tb = Testbed::new(TestbedOptions::default())?;
//! let gw = Gateway::start(&tb, &GatewayConfig::default())?;
//! let client = StrongswanClient::start(&tb, &ClientConfig::default())?;
//! client.connect()?;
//! gw.wait_for_sa_count(1, std::time::Duration::from_secs(5))?;
//! assert!(tb.ping(Role::Cli, LAN_ADDR, 3)?);
//! # Ok(()) }
//! ```
//!
//! Loss, duplication, reordering, delay and rate limits come from [`Relay`] (userspace: the kernel has no netem).
//!
//! Facts: the kernel here has XFRM but no ESP, so both charons use `kernel-libipsec` (userspace ESP over a TUN
//! `ipsec0`, UDP-encapsulated only, hence `encap = yes`). Set `IKELINK_KEEP_LOGS=1` to keep the temp dirs
//! (`/tmp/ikl<pid>x<n>-*`) with strongswan.conf, swanctl.conf and charon.log; they are also kept when a test
//! panics.

pub mod boringtun;
mod charon;
mod client;
mod desktop;
mod error;
mod gateway;
mod iked;
mod ikelink;
mod libreswan;
pub mod matrix;
mod pki;
mod process;
mod radius;
mod relay;
mod testbed;

pub use charon::{available_plugins, count_established, raw_values, CHARON_SYSTEMD, PLUGINS, PLUGIN_DIR};
pub use client::{ClientAuth, ClientConfig, StrongswanClient};
pub use desktop::desktop_bin;
pub use error::{HarnessError, Result};
pub use gateway::{Gateway, GatewayAuth, GatewayConfig, Pool};
pub use iked::{kernel_has_pfkey, Iked, IkedAuth, IkedConfig, IKECTL, IKED, IKED_ETC, PFKEY_STUB_C};
pub use ikelink::{finish_ping, private_resolv, psk_profile, start_ping, IkelinkClient, NETNS_RESOLV_CONF};
pub use libreswan::{
    espintcp_expected, kernel_has_esp, kernel_has_espintcp, libreswan_root, Libreswan, LibreswanAuth, LibreswanConfig,
};
pub use pki::{KeyType, Pki};
pub use process::{wait_child_timeout, wait_until, TempDir, DEFAULT_COMMAND_TIMEOUT, NAME_PREFIX};
pub use radius::{Radius, FREERADIUS_CONF, RADIUS_PORT, RADIUS_SECRET};
pub use relay::{
    classify, ike_sa_init_request, DirStats, Impairer, Impairment, Kind, Packet, Relay, RelayConfig, RelayStats, Rng,
    Traffic, MAX_QUEUE,
};
pub use testbed::{
    list_namespaces, udp_ports, xfrm_bytes, Capture, HttpServer, IperfOptions, IperfResult, IperfServer, Listen, Role,
    Testbed, TestbedOptions, CLI_ADDR, CLI_NET, GW_ADDR, GW_LAN_ADDR, IPERF_PORT, LAN_ADDR, LAN_NET, RTR_CLI_ADDR,
    RTR_GW_ADDR, VIP_NET,
};

/// Gateway identity used by the default configurations (also a SAN DNS name of the test gateway certificate).
pub const GW_ID: &str = "gw.ikelink.test";
/// Client identity used by the default configurations.
pub const CLIENT_ID: &str = "client@ikelink.test";
/// Default pre-shared key.
pub const DEFAULT_PSK: &str = "ikelink-test-psk-0123456789";
/// Default EAP user name for EAP tests.
pub const EAP_USER: &str = "alice@ikelink.test";
/// Default EAP password for EAP tests.
pub const EAP_PASSWORD: &str = "ikelink-eap-password";

/// Whether interop tests are enabled (`IKELINK_INTEROP=1`).
pub fn interop_enabled() -> bool {
    std::env::var("IKELINK_INTEROP").is_ok_and(|v| v == "1")
}
