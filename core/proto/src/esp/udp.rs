//! UDP encapsulation of ESP (RFC 3948): telling apart what arrives on port 4500.

use super::{EspError, ESP_HEADER_LEN};

/// UDP port for IKE and UDP-encapsulated ESP after NAT detection (RFC 3948 §2, RFC 7296 §2.23).
pub const NAT_T_PORT: u16 = 4500;
/// Non-ESP marker prepended to IKE messages on port 4500 (RFC 3948 §2.2).
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];
/// NAT-keepalive packet payload (RFC 3948 §2.3).
pub const NAT_KEEPALIVE: [u8; 1] = [0xff];

/// What a UDP datagram received on port 4500 carries (RFC 3948 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Udp4500Kind<'a> {
    /// An IKE message (the bytes after the non-ESP marker).
    Ike(&'a [u8]),
    /// An ESP packet (the whole datagram, starting at the non-zero SPI).
    Esp,
    /// A NAT-keepalive, to be ignored.
    Keepalive,
}

/// Classify a UDP payload received on port 4500: non-ESP marker (4 zero bytes) = IKE, single 0xFF byte =
/// NAT-keepalive, otherwise ESP, which must be at least an ESP header long (its SPI is then non-zero,
/// since a zero first word is the marker).
pub fn classify(datagram: &[u8]) -> Result<Udp4500Kind<'_>, EspError> {
    match datagram {
        [0xff] => Ok(Udp4500Kind::Keepalive),
        [0, 0, 0, 0, ike @ ..] => Ok(Udp4500Kind::Ike(ike)),
        _ if datagram.len() >= ESP_HEADER_LEN => Ok(Udp4500Kind::Esp),
        _ => Err(EspError::Malformed("UDP 4500 datagram too short for ESP")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_datagrams() {
        assert_eq!(classify(&[0xff]).unwrap(), Udp4500Kind::Keepalive);
        let ike = [0, 0, 0, 0, 1, 2, 3];
        assert_eq!(classify(&ike).unwrap(), Udp4500Kind::Ike(&[1, 2, 3]));
        assert_eq!(classify(&[0, 0, 0, 0]).unwrap(), Udp4500Kind::Ike(&[]));
        let esp = [0, 0, 0, 1, 0, 0, 0, 1, 9, 9];
        assert_eq!(classify(&esp).unwrap(), Udp4500Kind::Esp);
        assert!(classify(&[]).is_err());
        assert!(classify(&[0, 0, 0]).is_err());
        assert!(classify(&[0xfe]).is_err());
        assert!(classify(&[1, 2, 3, 4, 5, 6, 7]).is_err());
    }
}
