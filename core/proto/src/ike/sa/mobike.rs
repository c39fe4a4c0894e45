//! MOBIKE (RFC 4555): moving the IKE SA and its Child SAs to a new local address with UPDATE_SA_ADDRESSES.

use std::net::SocketAddr;
use std::time::Instant;

use rand_core::RngCore;
use tracing::{info, warn};

use super::{notify_of, IkeSa, RequestKind, State};
use crate::crypto;
use crate::ike::error::{CloseReason, IkeError};
use crate::wire::{Notify, NotifyType, Payload};

/// MOBIKE's state on the IKE SA.
#[derive(Default)]
pub(super) struct Mobility {
    /// Both sides support MOBIKE (MOBIKE_SUPPORTED in IKE_AUTH, §3.2).
    pub supported: bool,
    /// The COOKIE2 of our address update in flight (§3.5).
    pub cookie2: Option<Vec<u8>>,
    /// The gateway's last NAT_DETECTION_DESTINATION_IP: our address as it sees it (§3.8).
    pub natd_seen: Option<Vec<u8>>,
}

impl IkeSa {
    /// The platform reports a new local address (another network, a new DHCP lease...). With MOBIKE the SAs
    /// move (RFC 4555 §3.5); without it the SA is closed with [`CloseReason::NetworkChanged`] so the driver
    /// reconnects. `local` is the address and port our NAT-T socket now sends from.
    pub fn network_changed(&mut self, now: Instant, local: SocketAddr) {
        if local == self.ex.local && self.state != State::Established {
            return;
        }
        self.ex.local = local;
        match self.state {
            State::Established if self.mobility.supported => {
                if self.ex.busy() {
                    // One request at a time (§2.3): update once the current exchange is done.
                    self.queue.push_back(super::rekey::Queued::UpdateAddresses);
                } else {
                    self.send_update_addresses(now);
                }
            }
            State::Established => {
                info!("network changed and the gateway has no MOBIKE: reconnecting");
                self.abandon(CloseReason::NetworkChanged);
            }
            // Retransmissions of the handshake simply leave from the new address.
            _ => {}
        }
    }

    /// INFORMATIONAL with UPDATE_SA_ADDRESSES, fresh NAT detection and COOKIE2 (RFC 4555 §3.5, §3.9).
    pub(super) fn send_update_addresses(&mut self, now: Instant) {
        let mut cookie2 = vec![0u8; 16];
        self.rng.fill_bytes(&mut cookie2);
        let src = if self.config.force_encap {
            let mut fake = vec![0u8; 20];
            self.rng.fill_bytes(&mut fake);
            fake
        } else {
            crypto::nat_detection_hash(self.ex.spi_i, self.ex.spi_r, self.ex.local).to_vec()
        };
        let dst = crypto::nat_detection_hash(self.ex.spi_i, self.ex.spi_r, self.ex.remote).to_vec();
        let payloads = vec![
            Payload::Notify(Notify::new(NotifyType::UPDATE_SA_ADDRESSES, vec![])),
            Payload::Notify(Notify::new(NotifyType::NAT_DETECTION_SOURCE_IP, src)),
            Payload::Notify(Notify::new(NotifyType::NAT_DETECTION_DESTINATION_IP, dst)),
            Payload::Notify(Notify::new(NotifyType::COOKIE2, cookie2.clone())),
        ];
        info!(local = %self.ex.local, "MOBIKE: moving the SAs to the new address");
        self.mobility.cookie2 = Some(cookie2);
        if let Err(e) =
            self.send_request(now, crate::wire::ExchangeType::INFORMATIONAL, RequestKind::UpdateAddresses, payloads)
        {
            warn!(%e, "cannot send UPDATE_SA_ADDRESSES");
        }
    }

    /// Payloads of a liveness check: with MOBIKE, NAT detection too, to notice a changed NAT mapping (§3.8).
    pub(super) fn liveness_payloads(&mut self) -> Vec<Payload> {
        if !self.mobility.supported {
            return Vec::new();
        }
        let src = crypto::nat_detection_hash(self.ex.spi_i, self.ex.spi_r, self.ex.local).to_vec();
        let dst = crypto::nat_detection_hash(self.ex.spi_i, self.ex.spi_r, self.ex.remote).to_vec();
        vec![
            Payload::Notify(Notify::new(NotifyType::NAT_DETECTION_SOURCE_IP, src)),
            Payload::Notify(Notify::new(NotifyType::NAT_DETECTION_DESTINATION_IP, dst)),
        ]
    }

    /// The gateway saw us from another address or port than before: the NAT mapping changed. With MOBIKE the
    /// gateway does not follow by itself; tell it with UPDATE_SA_ADDRESSES (RFC 4555 §3.8).
    pub(super) fn check_nat_mapping(&mut self, payloads: &[Payload]) {
        let Some(d) = notify_of(payloads, NotifyType::NAT_DETECTION_DESTINATION_IP) else { return };
        let changed = match &self.mobility.natd_seen {
            Some(old) => *old != d.data,
            // The first NAT detection since IKE moved to port 4500: nothing to compare with. Behind a real NAT
            // the mapping may have changed since IKE_AUTH, so update the gateway once (harmless if it did not);
            // without one (forced encapsulation only) there is no mapping to change.
            None => self.nat.local_behind_nat,
        };
        self.mobility.natd_seen = Some(d.data.clone());
        if changed && self.mobility.supported {
            info!("the NAT mapping changed: updating the gateway (MOBIKE)");
            self.queue.push_back(super::rekey::Queued::UpdateAddresses);
        }
    }

    /// The gateway answered UPDATE_SA_ADDRESSES.
    pub(super) fn handle_update_addresses_response(&mut self, payloads: &[Payload]) -> Result<(), IkeError> {
        let expected = self.mobility.cookie2.take();
        let got = notify_of(payloads, NotifyType::COOKIE2).map(|n| n.data.clone());
        if expected.is_none() || got != expected {
            return Err(IkeError::Protocol("UPDATE_SA_ADDRESSES answered without our COOKIE2"));
        }
        if let Some(t) = payloads.iter().find_map(|p| match p {
            Payload::Notify(n) if n.notify_type.is_error() => Some(n.notify_type),
            _ => None,
        }) {
            warn!(notify = %t, "gateway refused the address update: reconnecting");
            self.abandon(CloseReason::NetworkChanged);
            return Ok(());
        }
        if let Some(d) = notify_of(payloads, NotifyType::NAT_DETECTION_DESTINATION_IP) {
            self.mobility.natd_seen = Some(d.data.clone());
            let expect = crypto::nat_detection_hash(self.ex.spi_i, self.ex.spi_r, self.ex.local);
            self.nat.local_behind_nat = d.data.as_slice() != expect.as_slice();
            if self.nat.local_behind_nat && self.config.keepalive.is_some() && self.next_keepalive.is_none() {
                self.next_keepalive = self.config.keepalive.map(|k| self.last_heard + k);
            }
        }
        info!(local = %self.ex.local, nat = ?self.nat, "MOBIKE: SAs moved");
        Ok(())
    }
}
