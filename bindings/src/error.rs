//! The errors of the FFI: [`VpnError`] for the app, [`CallbackError`] for failures of the app's callbacks.

use ikelink::driver::{DriverError, SessionError};
use ikelink::ike::{CloseReason, IkeError};

/// Why a call failed or a session ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum VpnError {
    /// The profile is not valid TOML or a field is wrong (the message names the field).
    #[error("invalid profile: {reason}")]
    InvalidProfile { reason: String },
    /// A `ConnectOptions` value is out of range.
    #[error("invalid options: {reason}")]
    InvalidOptions { reason: String },
    /// A client identity or CA given as bytes cannot be used.
    #[error("invalid credentials: {reason}")]
    InvalidCredentials { reason: String },
    /// `connect` while a session is running.
    #[error("a session is already running")]
    AlreadyConnected,
    /// `disconnect`, `network_changed` or `request_stats` without a session.
    #[error("no session is running")]
    NotConnected,
    /// The gateway rejected us or we rejected its authentication (PSK, identity, credentials, EAP).
    #[error("authentication failed: {reason}")]
    AuthenticationFailed { reason: String },
    /// The gateway's certificate or identity is not trusted.
    #[error("gateway not trusted: {reason}")]
    GatewayUntrusted { reason: String },
    /// No common algorithms or traffic selectors, or no virtual IP for us.
    #[error("negotiation failed: {reason}")]
    NegotiationFailed { reason: String },
    /// The gateway does not answer, or stopped answering.
    #[error("gateway unreachable: {reason}")]
    Unreachable { reason: String },
    /// The operating system failed us: sockets, protecting them, opening the TUN.
    #[error("platform failure: {reason}")]
    Platform { reason: String },
    /// The gateway ended the session: it deleted the IKE SA (an administrator, a gateway restart or shutdown).
    #[error("closed by the gateway: {reason}")]
    ClosedByGateway { reason: String },
    /// The gateway sent us to another gateway (RFC 5685); reported when that ends the session (the redirect
    /// limit, or a reconnect follows).
    #[error("redirected: {reason}")]
    Redirected { reason: String },
    /// The network changed and the session could not move with it (the gateway has no MOBIKE).
    #[error("network changed: {reason}")]
    NetworkChanged { reason: String },
    /// The gateway broke the protocol, or the tunnel ended for another protocol reason.
    #[error("protocol error: {reason}")]
    Protocol { reason: String },
    /// A bug or a broken invariant in Ikelink (reported instead of crashing).
    #[error("internal error: {reason}")]
    Internal { reason: String },
}

impl From<&IkeError> for VpnError {
    fn from(e: &IkeError) -> Self {
        let message = e.to_string();
        match e {
            IkeError::AuthenticationFailed
            | IkeError::PeerAuthenticationFailed
            | IkeError::ClientCertificateRequired
            | IkeError::PpkAuthenticationFailed
            | IkeError::Eap(_) => VpnError::AuthenticationFailed { reason: message },
            IkeError::Untrusted(_)
            | IkeError::Certificate(_)
            | IkeError::IdentityMismatch { .. }
            | IkeError::GatewayNotAuthenticated(_) => VpnError::GatewayUntrusted { reason: message },
            IkeError::NoProposalChosen
            | IkeError::TsUnacceptable
            | IkeError::InternalAddressFailure
            | IkeError::FailedCpRequired
            | IkeError::UnsupportedKeGroup(_)
            | IkeError::PostQuantumRefused(_)
            | IkeError::PpkNotUsed(_)
            | IkeError::Proposal(_) => VpnError::NegotiationFailed { reason: message },
            IkeError::Timeout { .. } | IkeError::DeadPeer { .. } => VpnError::Unreachable { reason: message },
            IkeError::Config(_) => VpnError::InvalidProfile { reason: message },
            IkeError::PeerError(_) | IkeError::Wire(_) | IkeError::Crypto(_) | IkeError::Protocol(_) => {
                VpnError::Protocol { reason: message }
            }
        }
    }
}

/// Each kind of session failure to exactly one kind of app error.
impl From<&SessionError> for VpnError {
    fn from(e: &SessionError) -> Self {
        match e {
            SessionError::Ike(e) => e.into(),
            SessionError::Tunnel(_) | SessionError::Platform(_) | SessionError::Io(_) => {
                VpnError::Platform { reason: e.to_string() }
            }
            SessionError::Internal(_) => VpnError::Internal { reason: e.to_string() },
        }
    }
}

impl VpnError {
    /// What the app hears of a close reason: nothing after our own close, the error of a failure, and
    /// [`VpnError::Protocol`] when the gateway or the network ended the tunnel (its Delete, a redirect, an address
    /// change it cannot follow).
    pub(crate) fn of_close<E>(reason: &CloseReason<E>) -> Option<VpnError>
    where
        E: std::fmt::Display,
        for<'a> VpnError: From<&'a E>,
    {
        match reason {
            CloseReason::Local => None,
            CloseReason::Error(e) => Some(VpnError::from(e)),
            CloseReason::DeletedByPeer => Some(VpnError::ClosedByGateway { reason: reason.to_string() }),
            CloseReason::Redirected(_) => Some(VpnError::Redirected { reason: reason.to_string() }),
            CloseReason::NetworkChanged => Some(VpnError::NetworkChanged { reason: reason.to_string() }),
            // Only an old IKE SA retired by a reauthentication says so; the session does not end with it.
            CloseReason::Reauthenticated => Some(VpnError::Protocol { reason: reason.to_string() }),
        }
    }

    /// Why a reconnect began (a close reason that is never our own).
    pub(crate) fn of_reconnect(reason: &CloseReason) -> VpnError {
        VpnError::of_close(reason).unwrap_or_else(|| VpnError::Protocol { reason: reason.to_string() })
    }
}

impl From<&DriverError> for VpnError {
    fn from(e: &DriverError) -> Self {
        VpnError::from(&SessionError::from(e))
    }
}

/// A failure reported by the app's side of a foreign trait (an exception thrown in Kotlin or Swift).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum CallbackError {
    /// The app could not do what was asked; `reason` says why (named so, since Kotlin exceptions have a
    /// `message` of their own).
    #[error("{reason}")]
    Failed { reason: String },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for CallbackError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        CallbackError::Failed { reason: format!("unexpected callback failure: {}", e.reason) }
    }
}

impl CallbackError {
    pub(crate) fn message(&self) -> &str {
        match self {
            CallbackError::Failed { reason: message } => message,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    // Issue 12: close reasons reach the app as their own kinds, not as protocol errors.
    #[test]
    fn close_reasons_have_their_own_kinds() {
        let close = |r: CloseReason| VpnError::of_close(&r);
        assert_eq!(close(CloseReason::Local), None);
        assert!(matches!(close(CloseReason::DeletedByPeer), Some(VpnError::ClosedByGateway { .. })));
        assert!(matches!(close(CloseReason::NetworkChanged), Some(VpnError::NetworkChanged { .. })));
        let to = ikelink::ike::GatewayIdentity::Addr("203.0.113.9".parse().unwrap());
        assert!(matches!(close(CloseReason::Redirected(to)), Some(VpnError::Redirected { .. })));
        assert!(matches!(
            close(CloseReason::Error(IkeError::NoProposalChosen)),
            Some(VpnError::NegotiationFailed { .. })
        ));
        assert!(matches!(VpnError::of_reconnect(&CloseReason::DeletedByPeer), VpnError::ClosedByGateway { .. }));
    }
}
