//! TCP encapsulation (RFC 9329 §6): the runtime opened a new stream to the gateway.

use std::net::SocketAddr;
use std::time::Instant;

use tracing::{debug, warn};

use super::{IkeSa, RequestKind, State};
use crate::wire::ExchangeType;

impl IkeSa {
    /// This IKE SA runs over TCP (RFC 9329): its addresses are the stream's ends, which NAT-T does not change.
    pub fn use_stream(&mut self) {
        self.ex.stream = true;
    }

    /// A new TCP stream from `local` to `remote` (the gateway's TCP port) carries this IKE SA from now on (the
    /// old one broke, or `moved`: our address changed). NAT detection hashes these two ends from now on, as
    /// the gateway sees them: with UDP port 500 in its place, libreswan believes itself behind a NAT and
    /// ignores UPDATE_SA_ADDRESSES ("Ignoring MOBIKE UPDATE_SA since we are behind NAT"). An unanswered
    /// IKE_SA_INIT is built again with them (what went out before the stream opened went nowhere); another
    /// request in flight goes out again at once.
    ///
    /// An established SA then tells the gateway to use the new stream (RFC 9329 §6): with MOBIKE by
    /// UPDATE_SA_ADDRESSES, since the new connection is a new source port (RFC 4555 §3.5; libreswan moves its
    /// SAs to another stream only then); without it by a liveness check, which also notices a gateway that
    /// forgot us. After a move without MOBIKE the SA is closed to reconnect ([`IkeSa::network_changed`]).
    pub fn stream_opened(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, moved: bool) {
        self.use_stream();
        self.ex.remote = remote;
        if self.ex.pending_kind() == Some(RequestKind::Init) {
            self.ex.local = local;
            if let Some(init) = self.init_message() {
                self.ex.replace_request(vec![init]);
            }
            return;
        }
        let resent = self.ex.resend();
        if resent {
            debug!("new TCP stream: the request in flight goes out again");
        }
        if moved && self.state == State::Established {
            self.network_changed(now, local);
            return;
        }
        self.ex.local = local;
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
