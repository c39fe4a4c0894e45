//! The profile's negotiation settings: proposals, traffic selectors, timers.

use std::time::Duration;

use super::{field, Profile, ProfileError};
use crate::ike::{parse_cidr, EspProposal, IkeProposal, Retransmit};
use crate::wire::TrafficSelector;

/// `[timers]` and `[nat]`, validated.
pub(super) struct Timers {
    pub retransmit: Retransmit,
    pub keepalive: Option<Duration>,
    pub dpd: Option<Duration>,
    pub dpd_tries: u32,
    pub child_lifetime: Option<Duration>,
    pub ike_lifetime: Option<Duration>,
    pub child_lifetime_bytes: Option<u64>,
    pub reauth_lifetime: Option<Duration>,
}

/// Seconds, 0 meaning "never".
fn secs(s: u32) -> Option<Duration> {
    (s > 0).then(|| Duration::from_secs(u64::from(s)))
}

fn parse_all<T, E: std::fmt::Display>(
    name: &str,
    list: &[String],
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<Vec<T>, ProfileError> {
    list.iter().map(|s| parse(s).map_err(|e| field(name, e.to_string()))).collect()
}

impl Profile {
    /// Step 3: the IKE and ESP proposals (strongSwan's defaults when none are given).
    pub(super) fn proposals(&self) -> Result<(Vec<IkeProposal>, Vec<EspProposal>), ProfileError> {
        let p = &self.proposals;
        let ike = if p.ike.is_empty() {
            IkeProposal::defaults()
        } else {
            parse_all("proposals.ike", &p.ike, IkeProposal::parse)?
        };
        let esp = if p.esp.is_empty() {
            EspProposal::defaults()
        } else {
            parse_all("proposals.esp", &p.esp, EspProposal::parse)?
        };
        Ok((ike, esp))
    }

    /// Step 4: our and the gateway's traffic selectors (TSi, TSr).
    pub(super) fn traffic_selectors(&self) -> Result<(Vec<TrafficSelector>, Vec<TrafficSelector>), ProfileError> {
        let ts = |name: &str, list: &[String]| parse_all(name, list, |s| parse_cidr(s).map(|c| c.to_ts()));
        let ts_r = ts("tunnel.remote_ts", &self.tunnel.remote_ts)?;
        if ts_r.is_empty() {
            return Err(field("tunnel.remote_ts", "needs at least one prefix"));
        }
        let mut ts_i = ts("tunnel.local_ts", &self.tunnel.local_ts)?;
        if ts_i.is_empty() {
            // With a virtual IP the gateway narrows this to the assigned address (§2.9).
            ts_i.push(parse_cidr("0.0.0.0/0").map_err(|e| field("tunnel.local_ts", e))?.to_ts());
            if self.tunnel.virtual_ip6 {
                ts_i.push(parse_cidr("::/0").map_err(|e| field("tunnel.local_ts", e))?.to_ts());
            }
        }
        Ok((ts_i, ts_r))
    }

    /// Step 5: retransmissions, liveness checks and lifetimes.
    pub(super) fn timers(&self) -> Result<Timers, ProfileError> {
        let t = &self.timers;
        if !(t.retransmit_timeout.is_finite() && t.retransmit_timeout > 0.0 && t.retransmit_timeout <= 600.0) {
            return Err(field("timers.retransmit_timeout", "must be between 0 and 600 seconds"));
        }
        if !(t.retransmit_base.is_finite() && (1.0..=10.0).contains(&t.retransmit_base)) {
            return Err(field("timers.retransmit_base", "must be between 1 and 10"));
        }
        if t.retransmit_tries > 20 {
            return Err(field("timers.retransmit_tries", "must be at most 20"));
        }
        Ok(Timers {
            retransmit: Retransmit {
                timeout: Duration::from_secs_f64(t.retransmit_timeout),
                base: t.retransmit_base,
                tries: t.retransmit_tries,
            },
            keepalive: secs(self.nat.keepalive),
            dpd: secs(t.dpd),
            dpd_tries: t.dpd_tries,
            child_lifetime: secs(t.rekey_child),
            ike_lifetime: secs(t.rekey_ike),
            child_lifetime_bytes: (t.rekey_child_bytes > 0).then_some(t.rekey_child_bytes),
            reauth_lifetime: secs(t.reauth),
        })
    }
}
