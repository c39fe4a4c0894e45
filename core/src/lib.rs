//! Ikelink: an IKEv2/IPsec VPN client.
//!
//! Two crates make the client. The protocol is sans-IO in [`ikelink_proto`] (re-exported here under the same
//! module names: [`wire`], [`crypto`], [`ike`], [`eap`], [`esp`]): it takes `(now, bytes)` and returns datagrams
//! to send, a wake-up deadline and events, and its dependencies contain no runtime. This crate is the runtime
//! around it:
//! - [`driver`]: tokio I/O around the sans-IO core (sockets, timers, the TUN, certificate status fetches).
//! - [`platform`]: per-OS networking (routes, DNS, kill switch), one file per OS behind one trait.
//! - [`profile`]: the user-facing connection profile, resolved into the core's configuration (reads the files a
//!   profile names, and the OS trust store).
// No unsafe code, except on Windows in `platform::windows` (Win32 calls), the one module allowed to.
#![cfg_attr(not(windows), forbid(unsafe_code))]
#![cfg_attr(windows, deny(unsafe_code))]

pub use ikelink_proto::{crypto, datapath, eap, esp, ike, session, tcp, wire};

pub mod driver;
#[doc(hidden)]
pub mod fuzzing;
pub mod platform;
pub mod profile;
pub mod trust;
