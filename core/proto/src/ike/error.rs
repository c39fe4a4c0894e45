//! Errors of the IKE state machine, one variant per thing a user can act on, and why an IKE SA closed
//! ([`CloseReason`]: an error is one reason among others).

use std::fmt;
use std::time::Duration;

use super::proposal::ProposalError;
use super::redirect::GatewayIdentity;
use crate::crypto::CryptoError;
use crate::wire::{NotifyType, WireError};

/// Why an IKE SA failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IkeError {
    #[error("no answer from the gateway after {tries} tries over {:.1} s", .waited.as_secs_f64())]
    Timeout { tries: u32, waited: Duration },
    #[error("the gateway stopped answering (dead peer detection gave up after {:.1} s)", .waited.as_secs_f64())]
    DeadPeer { waited: Duration },
    #[error("the gateway rejected our authentication (AUTHENTICATION_FAILED): check the pre-shared key, identity or credentials")]
    AuthenticationFailed,
    #[error(
        "the gateway's AUTH payload does not verify: a wrong pre-shared key, or not the gateway its certificate names"
    )]
    PeerAuthenticationFailed,
    #[error("the gateway requires a client certificate, and this profile has none (it refused EAP/PSK)")]
    ClientCertificateRequired,
    #[error("EAP authentication failed: {0}")]
    Eap(String),
    #[error("the platform does not trust the gateway certificate: {0}")]
    Untrusted(String),
    #[error("gateway certificate rejected: {0}")]
    Certificate(crate::crypto::CertError),
    /// The gateway did not prove who it is before it had to (RFC 7296 §2.16, RFC 5998 §4).
    #[error("the gateway did not authenticate itself: {0}")]
    GatewayNotAuthenticated(&'static str),
    #[error("the gateway's identity {got} is not the expected {expected}")]
    IdentityMismatch { expected: String, got: String },
    #[error("the gateway accepted none of our proposals (NO_PROPOSAL_CHOSEN)")]
    NoProposalChosen,
    #[error("the gateway refused our traffic selectors (TS_UNACCEPTABLE)")]
    TsUnacceptable,
    #[error("the gateway could not assign a virtual IP (INTERNAL_ADDRESS_FAILURE)")]
    InternalAddressFailure,
    #[error("the gateway requires a configuration request (FAILED_CP_REQUIRED)")]
    FailedCpRequired,
    /// The profile requires additional key exchanges (RFC 9370) and the gateway took none (`pq_fallback` off).
    #[error(
        "the gateway does not do the additional (post-quantum) key exchanges of our proposals ({0}); \
             set `ike.pq_fallback = true` to connect with classical key exchange only"
    )]
    PostQuantumRefused(&'static str),
    /// The postquantum preshared key (RFC 8784) was required and the gateway did not use it.
    #[error("the gateway did not use our postquantum preshared key (RFC 8784): {0}; it is required (`ppk.required`)")]
    PpkNotUsed(&'static str),
    /// The gateway rejected an AUTH computed with our postquantum preshared key.
    #[error(
        "the gateway rejected our authentication with the postquantum preshared key (AUTHENTICATION_FAILED): \
             check `ppk.id` and the PPK secret, then the pre-shared key or credentials"
    )]
    PpkAuthenticationFailed,
    #[error("the gateway asked for key exchange group {0}, which we do not offer")]
    UnsupportedKeGroup(u16),
    #[error("the gateway sent error notification {0}")]
    PeerError(NotifyType),
    #[error("invalid proposal choice: {0}")]
    Proposal(#[from] ProposalError),
    #[error("malformed message: {0}")]
    Wire(#[from] WireError),
    #[error("crypto failure: {0}")]
    Crypto(String),
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl From<CryptoError> for IkeError {
    fn from(e: CryptoError) -> Self {
        IkeError::Crypto(e.to_string())
    }
}

impl IkeError {
    /// The error a peer's error notification stands for (§3.10.1).
    pub fn from_notify(t: NotifyType) -> IkeError {
        match t {
            NotifyType::AUTHENTICATION_FAILED => IkeError::AuthenticationFailed,
            NotifyType::NO_PROPOSAL_CHOSEN => IkeError::NoProposalChosen,
            NotifyType::TS_UNACCEPTABLE => IkeError::TsUnacceptable,
            NotifyType::INTERNAL_ADDRESS_FAILURE => IkeError::InternalAddressFailure,
            NotifyType::FAILED_CP_REQUIRED => IkeError::FailedCpRequired,
            t => IkeError::PeerError(t),
        }
    }
}

/// Why an IKE SA (or a session, with the runtime's error type as `E`) ended: on purpose, by the gateway, or
/// because it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason<E = IkeError> {
    /// We closed it: our Delete went out (§1.4.1), or there was no IKE SA to delete yet.
    Local,
    /// The gateway deleted the IKE SA (§1.4.1).
    DeletedByPeer,
    /// The gateway sent us to another gateway (RFC 5685); connect there.
    Redirected(GatewayIdentity),
    /// Our address changed and the gateway cannot follow (no MOBIKE, or it refused the update, RFC 4555).
    NetworkChanged,
    /// A reauthenticated IKE SA took over (make-before-break, §2.8.3).
    Reauthenticated,
    /// It failed.
    Error(E),
}

impl<E> CloseReason<E> {
    /// The error, if it failed.
    pub fn error(&self) -> Option<&E> {
        match self {
            CloseReason::Error(e) => Some(e),
            _ => None,
        }
    }

    /// The same reason with the error turned into another type.
    pub fn map_err<F>(self, f: impl FnOnce(E) -> F) -> CloseReason<F> {
        match self {
            CloseReason::Local => CloseReason::Local,
            CloseReason::DeletedByPeer => CloseReason::DeletedByPeer,
            CloseReason::Redirected(to) => CloseReason::Redirected(to),
            CloseReason::NetworkChanged => CloseReason::NetworkChanged,
            CloseReason::Reauthenticated => CloseReason::Reauthenticated,
            CloseReason::Error(e) => CloseReason::Error(f(e)),
        }
    }
}

impl<E: fmt::Display> fmt::Display for CloseReason<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Local => f.write_str("closed by us"),
            CloseReason::DeletedByPeer => f.write_str("the gateway deleted the IKE SA"),
            CloseReason::Redirected(to) => write!(f, "the gateway redirected us to {to}"),
            CloseReason::NetworkChanged => f.write_str("the network changed and the gateway does not support MOBIKE"),
            CloseReason::Reauthenticated => f.write_str("replaced by a reauthenticated IKE SA"),
            CloseReason::Error(e) => e.fmt(f),
        }
    }
}
