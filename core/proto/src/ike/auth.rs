//! AUTH payload computation (RFC 7296 §2.15).

use zeroize::Zeroizing;

use crate::crypto::Prf;
use crate::wire::Identification;

/// The pad string of §2.15.
const KEY_PAD: &[u8] = b"Key Pad for IKEv2";

/// Signed octets: RealMessage | Nonce of the peer | prf(SK_p, IDType | RESERVED | IDData) (§2.15).
pub fn signed_octets(prf: Prf, sk_p: &[u8], message: &[u8], peer_nonce: &[u8], id: &Identification) -> Vec<u8> {
    let maced_id = prf.prf(sk_p, &id.auth_octets());
    let mut v = Vec::with_capacity(message.len() + peer_nonce.len() + maced_id.len());
    v.extend_from_slice(message);
    v.extend_from_slice(peer_nonce);
    v.extend_from_slice(&maced_id);
    v
}

/// AUTH = prf( prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets>) (§2.15).
pub fn psk_auth(prf: Prf, psk: &[u8], octets: &[u8]) -> Zeroizing<Vec<u8>> {
    let key = prf.prf(psk, KEY_PAD);
    prf.prf(&key, octets)
}
