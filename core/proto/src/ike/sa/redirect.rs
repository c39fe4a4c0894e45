//! IKEv2 Redirect (RFC 5685), initiator side: announce support, and leave for the gateway a REDIRECT names,
//! in the IKE_SA_INIT response (§3), the IKE_AUTH response (§6) or an INFORMATIONAL request (§5). The IKE SA
//! then closes with [`CloseReason::Redirected`] and the driver connects to the new gateway with REDIRECTED_FROM.

use std::time::Instant;

use tracing::{info, warn};

use super::rekey::Queued;
use super::{notify_of, Handling, IkeSa, State};
use crate::ike::error::CloseReason;
use crate::ike::redirect::GatewayIdentity;
use crate::wire::{Notify, NotifyType, Payload};

impl IkeSa {
    /// The notification for our IKE_SA_INIT request: REDIRECTED_FROM after a redirect (which also says we
    /// support redirects, §4), else REDIRECT_SUPPORTED (§3).
    pub(super) fn redirect_notify(&self) -> Option<Notify> {
        if !self.config.redirect {
            return None;
        }
        Some(match self.config.redirected_from {
            Some(from) => Notify::new(NotifyType::REDIRECTED_FROM, GatewayIdentity::Addr(from).encode()),
            None => Notify::new(NotifyType::REDIRECT_SUPPORTED, Vec::new()),
        })
    }

    /// A REDIRECT in the IKE_SA_INIT response (§3). Unauthenticated, so it counts only with our Ni as its nonce
    /// data (an off-path attacker does not know it); otherwise the response is dropped.
    pub(super) fn init_redirect(&self, payloads: &[Payload]) -> Result<Option<GatewayIdentity>, Handling> {
        let Some(n) = notify_of(payloads, NotifyType::REDIRECT) else { return Ok(None) };
        if !self.config.redirect {
            return Err(Handling::Drop("REDIRECT although we did not announce support".into()));
        }
        let (to, nonce) = GatewayIdentity::parse_redirect(&n.data).map_err(|e| Handling::Drop(e.to_string()))?;
        if nonce != self.hs.ni.as_slice() {
            return Err(Handling::Drop("REDIRECT in IKE_SA_INIT without our nonce".into()));
        }
        Ok(Some(to))
    }

    /// A REDIRECT in an authenticated message (§5, §6); a malformed one is logged and ignored.
    pub(super) fn authenticated_redirect(&self, payloads: &[Payload]) -> Option<GatewayIdentity> {
        let n = notify_of(payloads, NotifyType::REDIRECT)?;
        if !self.config.redirect {
            warn!("gateway sent REDIRECT although we did not announce support; ignored");
            return None;
        }
        match GatewayIdentity::parse_redirect(&n.data) {
            Ok((to, _)) => Some(to),
            Err(e) => {
                warn!(%e, "ignoring a malformed REDIRECT");
                None
            }
        }
    }

    /// Leave this gateway for `to`: Delete the IKE SA where the gateway has one, then close with
    /// [`CloseReason::Redirected`].
    pub(super) fn leave_for(&mut self, now: Instant, to: GatewayIdentity) {
        if matches!(self.state, State::Closing | State::Closed) {
            return;
        }
        info!(%to, "the gateway redirects us");
        self.close_reason = Some(CloseReason::Redirected(to));
        if self.auth.peer_authenticated && self.ex.keys.is_some() {
            self.set_state(State::Closing);
            self.queue.clear();
            self.queue.push_back(Queued::DeleteIke);
            if !self.ex.busy() {
                self.send_next_queued(now);
            }
        } else {
            self.ex.cancel();
            self.finish(CloseReason::Local);
        }
    }
}
