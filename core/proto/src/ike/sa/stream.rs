//! TCP encapsulation (RFC 9329 §6): the runtime opened a new stream to the gateway.

use std::time::Instant;

use tracing::{debug, warn};

use super::{IkeSa, RequestKind, State};
use crate::wire::ExchangeType;

impl IkeSa {
    /// A new TCP stream carries this IKE SA from now on (the old one broke): the request in flight goes out
    /// on it at once; an idle established SA sends a liveness check, which tells the gateway to use the new
    /// stream (RFC 9329 §6) and notices a gateway that forgot us.
    pub fn stream_reestablished(&mut self, now: Instant) {
        if self.ex.resend() {
            debug!("new TCP stream: the request in flight goes out again");
        } else if self.state == State::Established {
            debug!("new TCP stream: liveness check");
            let payloads = self.liveness_payloads();
            if let Err(e) = self.send_request(now, ExchangeType::INFORMATIONAL, RequestKind::Dpd, payloads) {
                warn!(%e, "cannot send the liveness check");
            }
        }
    }
}
