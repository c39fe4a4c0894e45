//! Ikelink: an IKEv2/IPsec VPN client core.
//!
//! The protocol objects are sans-IO: [`ike::IkeSa`] and [`esp::EspSa`] take `(now, bytes)` and return
//! datagrams to send, a wake-up deadline and events. The [`driver`] (tokio) owns sockets, clocks and the TUN.
//!
//! Module layout mirrors the RFCs:
//! - [`wire`]: the IKEv2 message codec (RFC 7296 §3, RFC 7383 §2.5).
//! - [`crypto`]: PRFs, key derivation, SK payload protection, key exchange (RFC 7296 §2.13-2.14, RFC 5282,
//!   RFC 4868, RFC 5903, RFC 3526, RFC 8031). All third-party crypto lives behind this module.
//! - [`ike`]: the IKE SA and Child SA negotiation state machines (RFC 7296).
//! - [`esp`]: the ESP data plane (RFC 4303, RFC 3948).
//! - [`driver`]: tokio I/O around the sans-IO core.
//! - [`profile`]: the user-facing connection profile.
// No unsafe code, except on Windows in `platform::windows` (Win32 calls), the one module allowed to.
#![cfg_attr(not(windows), forbid(unsafe_code))]
#![cfg_attr(windows, deny(unsafe_code))]

pub mod crypto;
pub mod driver;
pub mod eap;
pub mod esp;
#[doc(hidden)]
pub mod fuzzing;
pub mod ike;
pub mod platform;
pub mod profile;
pub mod wire;
