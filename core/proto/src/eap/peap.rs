//! PEAPv0 phase 2 (draft-josefsson-pppext-eap-tls-eap-05 as Microsoft profiles it in [MS-PEAP] §3.1.5): an
//! inner EAP conversation (EAP-MSCHAPv2, the usual one, or EAP-MD5) inside the TLS tunnel that
//! [`super::tls::EapTls`] runs, ended by an EAP-TLV Result (type 33, [MS-PEAP] §2.2.8).
//!
//! PEAPv0 sends inner EAP packets without their Code, Identifier and Length ([MS-PEAP] §3.1.5.6): the
//! Identifier is the outer packet's. Only an inner Identity Request may come whole, and the Result TLV always
//! does, and is answered whole. Servers such as Windows NPS and strongSwan's eap-peap speak this version.

use super::packet::{self, CODE_REQUEST, CODE_RESPONSE, CODE_SUCCESS};
use super::{EapAction, EapError, EapMethod, EapPeer};
use zeroize::Zeroizing;

/// EAP-TLV ("Extensions") Type ([MS-PEAP] §2.2.8).
const TYPE_TLV: u8 = 33;
/// Result TLV, mandatory bit set; values Success and Failure ([MS-PEAP] §2.2.8.1).
const TLV_RESULT: u16 = 0x8003;
const RESULT_SUCCESS: u16 = 1;
const RESULT_FAILURE: u16 = 2;

/// Phase 2 state: the inner EAP peer and the Result the server sent.
pub(crate) struct Phase2 {
    inner: EapPeer,
    /// `Some(true)` once the server's Result TLV said Success and we agreed.
    result: Option<bool>,
}

impl std::fmt::Debug for Phase2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeapPhase2").field("inner", &self.inner).field("result", &self.result).finish()
    }
}

/// A whole EAP Response with a Result TLV.
fn result_response(id: u8, value: u16) -> Vec<u8> {
    let mut out = vec![CODE_RESPONSE, id, 0, 11, TYPE_TLV];
    out.extend_from_slice(&TLV_RESULT.to_be_bytes());
    out.extend_from_slice(&2u16.to_be_bytes());
    out.extend_from_slice(&value.to_be_bytes());
    out
}

/// The value of the Result TLV in the TLVs of an EAP-TLV Request.
fn result_value(mut tlvs: &[u8]) -> Result<u16, EapError> {
    while let Some((&[t0, t1, l0, l1], rest)) = tlvs.split_first_chunk::<4>() {
        let (typ, len) = (u16::from_be_bytes([t0, t1]), usize::from(u16::from_be_bytes([l0, l1])));
        let value = rest.get(..len).ok_or(EapError::Malformed("PEAP TLV beyond the end of the packet"))?;
        if typ & 0x3fff == TLV_RESULT & 0x3fff {
            let &[v0, v1] = value else { return Err(EapError::Malformed("PEAP Result TLV of the wrong length")) };
            return Ok(u16::from_be_bytes([v0, v1]));
        }
        if typ & 0x8000 != 0 {
            // Crypto-Binding, SoH and other mandatory TLVs we do not implement.
            return Err(EapError::Protocol("unsupported mandatory PEAP TLV"));
        }
        tlvs = rest.get(len..).unwrap_or_default();
    }
    Err(EapError::Malformed("EAP-TLV Request without a Result TLV"))
}

impl Phase2 {
    /// An inner peer for `username`/`password` that accepts `inner` (empty: MSCHAPv2 or MD5).
    pub(crate) fn new(username: &str, password: &Zeroizing<String>, inner: &[EapMethod]) -> Phase2 {
        Phase2 { inner: super::ttls::inner_peer(username, password, inner), result: None }
    }

    /// Tunneled data from the server, `outer_id` being the Identifier of the EAP-PEAP Request that carried it:
    /// the tunneled data of our answer.
    pub(crate) fn handle(
        &mut self,
        data: &[u8],
        outer_id: u8,
        rng: &mut dyn rand_core::CryptoRng,
    ) -> Result<Vec<u8>, EapError> {
        if self.result.is_some() {
            return Err(EapError::Protocol("PEAP data after the Result"));
        }
        let whole = data.len() > 4
            && data.first() == Some(&CODE_REQUEST)
            && data.get(2..4).is_some_and(|l| usize::from(u16::from_be_bytes([l[0], l[1]])) == data.len());
        let request = if whole {
            data.to_vec()
        } else {
            let len = u16::try_from(data.len() + 4).map_err(|_| EapError::Malformed("PEAP data too long"))?;
            let mut p = vec![CODE_REQUEST, outer_id];
            p.extend_from_slice(&len.to_be_bytes());
            p.extend_from_slice(data);
            p
        };
        let (id, typ, tlvs) = match packet::parse(&request)? {
            packet::Packet::Request { id, typ, data } => (id, typ, data),
            _ => return Err(EapError::Protocol("PEAP phase 2 data that is not a Request")),
        };
        if typ == TYPE_TLV {
            return match result_value(tlvs)? {
                RESULT_SUCCESS => {
                    // Only after the inner method authenticated us (MSCHAPv2: and the server proved the password).
                    let success = [CODE_SUCCESS, id, 0, 4];
                    match self.inner.handle(&success, rng) {
                        Ok(EapAction::Success) => {
                            tracing::debug!("PEAP Result: success");
                            self.result = Some(true);
                            Ok(result_response(id, RESULT_SUCCESS))
                        }
                        Err(e @ (EapError::AuthenticatorFailed | EapError::Rejected(_))) => Err(e),
                        _ => Err(EapError::Protocol("PEAP Result success before the inner method authenticated us")),
                    }
                }
                RESULT_FAILURE => {
                    tracing::debug!("PEAP Result: failure");
                    self.result = Some(false);
                    if self.inner.deferred.is_none() {
                        self.inner.deferred = Some(EapError::Rejected(
                            "the server refused the inner authentication (PEAP result)".into(),
                        ));
                    }
                    Ok(result_response(id, RESULT_FAILURE))
                }
                _ => Err(EapError::Malformed("unknown PEAP Result value")),
            };
        }
        match self.inner.handle(&request, rng)? {
            // Our answer without Code, Identifier and Length.
            EapAction::Respond(response) => Ok(response.get(4..).unwrap_or_default().to_vec()),
            EapAction::Success | EapAction::Failure => Ok(Vec::new()),
        }
    }

    /// Whether the outer EAP-Success may be accepted: the server's Result TLV said success and we agreed.
    pub(crate) fn finished(&mut self) -> Result<(), EapError> {
        match self.result {
            Some(true) => Ok(()),
            _ => Err(self.take_error().unwrap_or(EapError::Protocol("EAP-Success before the PEAP Result"))),
        }
    }

    /// A failure the inner method found (e.g. MSCHAPv2 E=691) that explains the server's EAP-Failure.
    pub(crate) fn take_error(&mut self) -> Option<EapError> {
        self.inner.deferred.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_tlvs() {
        assert_eq!(result_value(&[0x80, 0x03, 0, 2, 0, 1]), Ok(1));
        assert_eq!(result_value(&[0x00, 0x03, 0, 2, 0, 2]), Ok(2));
        // An optional TLV first is skipped; a mandatory one we do not know is refused.
        assert_eq!(result_value(&[0x00, 0x07, 0, 1, 9, 0x80, 0x03, 0, 2, 0, 1]), Ok(1));
        assert!(result_value(&[0x80, 0x0c, 0, 1, 9, 0x80, 0x03, 0, 2, 0, 1]).is_err());
        assert!(result_value(&[0x80, 0x03, 0, 3, 0, 1]).is_err());
        assert!(result_value(&[]).is_err());
        assert_eq!(result_response(7, 1), vec![2, 7, 0, 11, 33, 0x80, 0x03, 0, 2, 0, 1]);
    }
}
