//! The gateway identities of IKEv2 Redirect (RFC 5685 §9): where a gateway sends us (REDIRECT) and where we
//! came from (REDIRECTED_FROM).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// GW Identity Type (RFC 5685 §9.1).
const GW_IPV4: u8 = 1;
const GW_IPV6: u8 = 2;
const GW_FQDN: u8 = 3;
/// Longest host name we accept (RFC 1035 §2.3.4).
const MAX_FQDN: usize = 253;

/// A gateway named in a REDIRECT or REDIRECTED_FROM notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayIdentity {
    Addr(IpAddr),
    /// A host name, resolved by the caller.
    Fqdn(String),
}

impl fmt::Display for GatewayIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GatewayIdentity::Addr(a) => a.fmt(f),
            GatewayIdentity::Fqdn(n) => f.write_str(n),
        }
    }
}

/// Why a REDIRECT notification was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RedirectError {
    #[error("REDIRECT data truncated")]
    Truncated,
    #[error("REDIRECT with unknown gateway identity type {0}")]
    UnknownType(u8),
    #[error("REDIRECT gateway identity has the wrong length for its type")]
    BadLength,
    #[error("REDIRECT names an unusable host name")]
    BadName,
}

impl GatewayIdentity {
    /// Type, length and identity (RFC 5685 §9.1), as REDIRECTED_FROM carries them.
    pub fn encode(&self) -> Vec<u8> {
        let (typ, body): (u8, Vec<u8>) = match self {
            GatewayIdentity::Addr(IpAddr::V4(a)) => (GW_IPV4, a.octets().to_vec()),
            GatewayIdentity::Addr(IpAddr::V6(a)) => (GW_IPV6, a.octets().to_vec()),
            GatewayIdentity::Fqdn(n) => (GW_FQDN, n.as_bytes().iter().copied().take(MAX_FQDN).collect()),
        };
        let mut out = Vec::with_capacity(2 + body.len());
        out.push(typ);
        out.push(u8::try_from(body.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(&body);
        out
    }

    /// Parses the data of a REDIRECT notification: the new gateway and the nonce data after it (the
    /// initiator's Ni in an IKE_SA_INIT response, empty otherwise; RFC 5685 §9.2).
    pub fn parse_redirect(data: &[u8]) -> Result<(GatewayIdentity, &[u8]), RedirectError> {
        let (&[typ, len], rest) = data.split_first_chunk::<2>().ok_or(RedirectError::Truncated)?;
        let body = rest.get(..usize::from(len)).ok_or(RedirectError::Truncated)?;
        let nonce = rest.get(usize::from(len)..).unwrap_or_default();
        let id = match typ {
            GW_IPV4 => {
                let a: [u8; 4] = body.try_into().map_err(|_| RedirectError::BadLength)?;
                GatewayIdentity::Addr(IpAddr::V4(Ipv4Addr::from(a)))
            }
            GW_IPV6 => {
                let a: [u8; 16] = body.try_into().map_err(|_| RedirectError::BadLength)?;
                GatewayIdentity::Addr(IpAddr::V6(Ipv6Addr::from(a)))
            }
            GW_FQDN => {
                let name = std::str::from_utf8(body).map_err(|_| RedirectError::BadName)?;
                let ok = !name.is_empty()
                    && name.len() <= MAX_FQDN
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
                if !ok {
                    return Err(RedirectError::BadName);
                }
                GatewayIdentity::Fqdn(name.to_owned())
            }
            t => return Err(RedirectError::UnknownType(t)),
        };
        Ok((id, nonce))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects() {
        for id in [
            GatewayIdentity::Addr("203.0.113.3".parse().unwrap()),
            GatewayIdentity::Addr("2001:db8::1".parse().unwrap()),
            GatewayIdentity::Fqdn("vpn2.example.com".into()),
        ] {
            let mut data = id.encode();
            assert_eq!(GatewayIdentity::parse_redirect(&data).unwrap(), (id.clone(), &[][..]));
            data.extend_from_slice(&[9; 32]);
            assert_eq!(GatewayIdentity::parse_redirect(&data).unwrap(), (id, &[9u8; 32][..]));
        }
        assert_eq!(GatewayIdentity::parse_redirect(&[1]), Err(RedirectError::Truncated));
        assert_eq!(GatewayIdentity::parse_redirect(&[1, 4, 1, 2]), Err(RedirectError::Truncated));
        assert_eq!(GatewayIdentity::parse_redirect(&[1, 3, 1, 2, 3]), Err(RedirectError::BadLength));
        assert_eq!(GatewayIdentity::parse_redirect(&[2, 4, 1, 2, 3, 4]), Err(RedirectError::BadLength));
        assert_eq!(GatewayIdentity::parse_redirect(&[7, 0]), Err(RedirectError::UnknownType(7)));
        assert_eq!(GatewayIdentity::parse_redirect(&[3, 0]), Err(RedirectError::BadName));
        assert_eq!(GatewayIdentity::parse_redirect(&[3, 3, b'a', b' ', b'b']), Err(RedirectError::BadName));
        assert_eq!(GatewayIdentity::parse_redirect(&[3, 2, 0xc3, 0x28]), Err(RedirectError::BadName));
    }
}
