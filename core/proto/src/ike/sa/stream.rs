//! TCP encapsulation (RFC 9329 §6): the runtime opened a new stream to the gateway.

use std::time::Instant;

use tracing::{debug, warn};

use super::{IkeSa, RequestKind, State};
use crate::wire::ExchangeType;

impl IkeSa {
    /// A new TCP stream carries this IKE SA from now on (the old one broke): the request in flight goes out
    /// on it at once. An established SA then tells the gateway to use the new stream (RFC 9329 §6): with
    /// MOBIKE by UPDATE_SA_ADDRESSES, since the new connection is a new source port (RFC 4555 §3.5; libreswan
    /// moves its SAs to another stream only then); without it by a liveness check, which also notices a
    /// gateway that forgot us.
    pub fn stream_reestablished(&mut self, now: Instant) {
        let resent = self.ex.resend();
        if resent {
            debug!("new TCP stream: the request in flight goes out again");
        }
        if self.state != State::Established {
            return;
        }
        let update_in_flight = self.ex.pending_kind() == Some(RequestKind::UpdateAddresses);
        match (self.mobility.supported, resent) {
            (true, false) => self.send_update_addresses(now),
            (true, true) if !update_in_flight => self.queue.push_back(super::rekey::Queued::UpdateAddresses),
            (false, false) => {
                debug!("new TCP stream: liveness check");
                let payloads = self.liveness_payloads();
                if let Err(e) = self.send_request(now, ExchangeType::INFORMATIONAL, RequestKind::Dpd, payloads) {
                    warn!(%e, "cannot send the liveness check");
                }
            }
            _ => {}
        }
    }
}
