//! Identities (RFC 7296 §3.5) written the way strongSwan users write them.

use std::net::IpAddr;

use crate::wire::{IdType, Identification};

/// Parse an identity string: an IP address is ID_IPV4_ADDR/ID_IPV6_ADDR, `user@host` is ID_RFC822_ADDR,
/// anything else ID_FQDN. Explicit prefixes `fqdn:`, `email:`, `keyid:` (hex, `0x` optional) override the guess.
pub fn parse_identity(s: &str) -> Result<Identification, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("identity is empty".into());
    }
    if let Some(rest) = s.strip_prefix("fqdn:") {
        return Ok(Identification { id_type: IdType::ID_FQDN, data: rest.as_bytes().to_vec() });
    }
    if let Some(rest) = s.strip_prefix("email:") {
        return Ok(Identification { id_type: IdType::ID_RFC822_ADDR, data: rest.as_bytes().to_vec() });
    }
    if let Some(rest) = s.strip_prefix("keyid:") {
        // As strongSwan: `keyid:#hex` (or `keyid:0xhex`) is hex, anything else the text itself (a Cisco group).
        let data = match rest.strip_prefix('#').or_else(|| rest.strip_prefix("0x")) {
            Some(hex) => decode_hex(hex).ok_or_else(|| format!("keyid `{rest}` is not hex"))?,
            None if rest.is_empty() => return Err("keyid is empty".into()),
            None => rest.as_bytes().to_vec(),
        };
        return Ok(Identification { id_type: IdType::ID_KEY_ID, data });
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(match ip {
            IpAddr::V4(a) => Identification { id_type: IdType::ID_IPV4_ADDR, data: a.octets().to_vec() },
            IpAddr::V6(a) => Identification { id_type: IdType::ID_IPV6_ADDR, data: a.octets().to_vec() },
        });
    }
    if s.contains('@') {
        return Ok(Identification { id_type: IdType::ID_RFC822_ADDR, data: s.as_bytes().to_vec() });
    }
    Ok(Identification { id_type: IdType::ID_FQDN, data: s.as_bytes().to_vec() })
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.is_empty() {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok())).collect()
}

/// A printable form of an identity, for logs and errors.
pub fn display_identity(id: &Identification) -> String {
    match id.id_type {
        IdType::ID_IPV4_ADDR => match <[u8; 4]>::try_from(id.data.as_slice()) {
            Ok(b) => std::net::Ipv4Addr::from(b).to_string(),
            Err(_) => format!("{:?}", id.data),
        },
        IdType::ID_IPV6_ADDR => match <[u8; 16]>::try_from(id.data.as_slice()) {
            Ok(b) => std::net::Ipv6Addr::from(b).to_string(),
            Err(_) => format!("{:?}", id.data),
        },
        IdType::ID_FQDN | IdType::ID_RFC822_ADDR => String::from_utf8_lossy(&id.data).into_owned(),
        // The data is the DER of the Name's SEQUENCE.
        IdType::ID_DER_ASN1_DN => crate::crypto::display_dn(&id.data),
        t => {
            let hex: String = id.data.iter().map(|b| format!("{b:02x}")).collect();
            format!("{t}:{hex}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guesses_types() {
        assert_eq!(parse_identity("gw.example.com").unwrap().id_type, IdType::ID_FQDN);
        assert_eq!(parse_identity("me@example.com").unwrap().id_type, IdType::ID_RFC822_ADDR);
        let v4 = parse_identity("203.0.113.2").unwrap();
        assert_eq!((v4.id_type, v4.data), (IdType::ID_IPV4_ADDR, vec![203, 0, 113, 2]));
        assert_eq!(parse_identity("2001:db8::1").unwrap().id_type, IdType::ID_IPV6_ADDR);
        assert_eq!(parse_identity("keyid:0xabcd").unwrap().data, vec![0xab, 0xcd]);
        assert_eq!(parse_identity("keyid:#abcd").unwrap().data, vec![0xab, 0xcd]);
        assert_eq!(parse_identity("keyid:flexvpn-hub").unwrap().data, b"flexvpn-hub".to_vec());
        assert!(parse_identity("keyid:#xyz").is_err() && parse_identity("keyid:").is_err());
        assert!(parse_identity("  ").is_err());
        assert_eq!(display_identity(&parse_identity("203.0.113.2").unwrap()), "203.0.113.2");
    }
}
