//! The IKEv2 initiator (RFC 7296): IKE SA and Child SA negotiation, sans-IO.
//!
//! [`IkeSa`] is driven by the caller: feed it datagrams with [`IkeSa::handle_datagram`] and deadlines with
//! [`IkeSa::handle_timeout`], then drain [`IkeSa::poll_transmit`], [`IkeSa::poll_event`] and read
//! [`IkeSa::poll_timeout`]. It never touches sockets or clocks; its randomness comes from a seed.

mod auth;
mod child;
mod config;
mod error;
mod identity;
pub mod proposal;
mod redirect;
mod sa;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
mod ts;

pub use child::ChildSa;
pub use config::{AuthConfig, GatewayAuth, IkeConfig, Ppk, Retransmit, TrustEvaluator};
pub use error::{CloseReason, IkeError};
pub use identity::{display_identity, parse_identity};
pub use proposal::{EspProposal, EspSuite, IkeProposal, IkeSuite};
pub use redirect::{GatewayIdentity, RedirectError};
pub use sa::{
    Event, IkeSa, NatStatus, PpkStatus, SessionInfo, SocketKind, State, Timer, Transmit, VirtualConfig,
    REVOCATION_FETCH_TIMEOUT,
};
pub use ts::{parse_cidr, ts_contains, ts_to_cidrs, Cidr};
