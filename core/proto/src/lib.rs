//! ikelink-proto: the sans-IO protocol core of Ikelink.
//!
//! Everything here takes `(now, bytes, events)` and returns datagrams to send, commands, a wake-up deadline and
//! events. There are no sockets, clocks, files, tasks or own randomness in this crate, and its dependencies make
//! that a rule, not a habit: no tokio, tun, nix, socket2, windows-sys or rustls-native-certs (checked by
//! `scripts/check-sans-io.sh`). Time comes in as `now`, randomness as an RNG the caller seeds, trust anchors and
//! credentials as bytes. The runtime crate `ikelink` (`core/`) executes what this crate asks for.
//!
//! Module layout mirrors the RFCs:
//! - [`wire`]: the IKEv2 message codec (RFC 7296 §3, RFC 7383 §2.5).
//! - [`crypto`]: PRFs, key derivation, SK payload protection, key exchange, certificates (RFC 7296 §2.13-2.14,
//!   RFC 5282, RFC 4868, RFC 5903, RFC 3526, RFC 8031, RFC 5280). All third-party crypto lives behind this module.
//! - [`ike`]: the IKE SA and Child SA negotiation state machines (RFC 7296), and the two-peer simulator.
//! - [`eap`]: the EAP peer methods run inside IKE_AUTH (RFC 3748, RFC 5216, RFC 5281, MS-PEAP, RFC 2759).
//! - [`esp`]: the ESP data plane (RFC 4303, RFC 3948).
//! - [`session`]: one connection over time: reconnect, failover, redirect, reauthentication, revocation fetches.
#![forbid(unsafe_code)]

pub mod crypto;
pub mod datapath;
pub mod eap;
pub mod esp;
#[doc(hidden)]
pub mod fuzzing;
pub mod ike;
pub mod session;
pub mod tcp;
pub mod wire;
