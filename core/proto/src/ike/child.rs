//! A negotiated Child SA (RFC 7296 §1.3, §2.17): what IKE hands to the ESP data plane.

use super::proposal::EspSuite;
use crate::esp::EspParams;
use crate::wire::TrafficSelector;

/// An installed Child SA: both directions' keys and the narrowed traffic selectors.
pub struct ChildSa {
    pub suite: EspSuite,
    /// The SA the gateway sends to us (our SPI).
    pub inbound: EspParams,
    /// The SA we send to the gateway (its SPI).
    pub outbound: EspParams,
    /// Our side's selectors, as narrowed by the gateway.
    pub ts_i: Vec<TrafficSelector>,
    /// The gateway's side (the networks reached through the tunnel).
    pub ts_r: Vec<TrafficSelector>,
    /// The inbound SPI of the Child SA this one rekeys (that one is deleted soon after).
    pub replaces: Option<u32>,
    /// Send on the new outbound SA right away; otherwise keep the old one until its Delete (§2.8).
    pub outbound_now: bool,
}

impl std::fmt::Debug for ChildSa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildSa")
            .field("suite", &self.suite.to_string())
            .field("spi_in", &format_args!("{:08x}", self.inbound.spi))
            .field("spi_out", &format_args!("{:08x}", self.outbound.spi))
            .field("ts_i", &self.ts_i)
            .field("ts_r", &self.ts_r)
            .finish()
    }
}
