//! `eap_peer`: the EAP peer (`crate::eap`, RFC 3748) for each kind of credentials: EAP-MD5, EAP-MSCHAPv2,
//! EAP-TLS, EAP-TTLS and PEAP, with Identity, Notification and Nak, and the EAP-TLS framing (flags, length,
//! fragments and their acknowledgements, RFC 5216 §2.1.5, §3.1) under the TLS-based methods. The TLS records
//! themselves go to rustls; reaching the tunnels' phase 2 would need a TLS server, which this target does not run.

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use rustls_pki_types::PrivatePkcs8KeyDer;
use zeroize::Zeroizing;

use super::{pki, Input};
use crate::eap::{
    CertificateDer, EapAction, EapConfig, EapCredentials, EapMethod, EapPeer, PrivateKeyDer, RootCertStore,
    TlsCredentials, TlsKey, TtlsCredentials,
};

const MAX_PACKETS: usize = 64;

/// The EAP configurations the first byte chooses from (mod 6), with the method type their Requests use.
pub(crate) fn config(which: u8) -> (EapConfig, u8) {
    let password = || EapCredentials::Password {
        username: "alice".into(),
        password: Zeroizing::new("correct horse battery staple".into()),
    };
    let mut roots = RootCertStore::empty();
    let _ = roots.add(CertificateDer::from(pki::CA.to_vec()));
    let ttls = |inner: Vec<EapMethod>| {
        EapCredentials::Ttls(TtlsCredentials {
            username: "alice".into(),
            password: Zeroizing::new("correct horse battery staple".into()),
            server_name: pki::GW_NAME.into(),
            roots: roots.clone(),
            inner,
            tls13: true,
        })
    };
    let (credentials, allowed, typ) = match which % 6 {
        0 => (password(), vec![], 26),
        1 => (password(), vec![EapMethod::Md5], 4),
        2 => (
            EapCredentials::Tls(TlsCredentials {
                chain: vec![CertificateDer::from(pki::GW.to_vec())],
                key: TlsKey::Der(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki::GW_KEY.to_vec()))),
                server_name: pki::GW_NAME.into(),
                roots: roots.clone(),
                tls13: true,
            }),
            vec![EapMethod::Tls],
            13,
        ),
        3 => (ttls(vec![]), vec![EapMethod::Ttls], 21),
        4 => (ttls(vec![EapMethod::MsChapV2]), vec![EapMethod::Peap], 25),
        _ => (ttls(vec![EapMethod::Md5]), vec![], 25),
    };
    (EapConfig { identity: "alice@example.org".into(), credentials, allowed }, typ)
}

/// First byte: bits 0-2 the configuration ([`config`]), bit 7 the smallest EAP-TLS fragment size (64). Then up
/// to 64 packets from the gateway, each a control byte and a chunk:
/// - ctrl bits 0-1 = 0: the chunk is a whole EAP packet;
/// - 1: a Request of the configuration's method with the chunk as Type-Data;
/// - 2: a Request of the type in the next byte with the chunk as Type-Data;
/// - 3: EAP-Success (bit 2 clear) or EAP-Failure (no chunk).
///
/// Identifiers count up from 1 (bit 3: repeat the previous one). As in IKE_AUTH, the conversation stops at an
/// error, EAP-Success or EAP-Failure. Every Response must be a well-formed Response to the Request's Identifier.
pub fn eap_peer(data: &[u8]) {
    let mut input = Input::new(data);
    let first = input.u8();
    let (cfg, method_type) = config(first);
    let mut peer = EapPeer::new(cfg);
    if first & 0x80 != 0 {
        peer.set_tls_fragment_size(64);
    }
    let mut rng = ChaCha20Rng::from_seed([0x45; 32]);
    let mut id: u8 = 0;
    for _ in 0..MAX_PACKETS {
        if input.is_empty() {
            break;
        }
        let ctrl = input.u8();
        if ctrl & 8 == 0 {
            id = id.wrapping_add(1);
        }
        let packet = match ctrl & 3 {
            0 => input.chunk().to_vec(),
            1 => request(id, method_type, input.chunk()),
            2 => {
                let typ = input.u8();
                request(id, typ, input.chunk())
            }
            _ => vec![if ctrl & 4 == 0 { 3 } else { 4 }, id, 0, 4],
        };
        let is_request = packet.first() == Some(&1) && packet.len() >= 5;
        match peer.handle(&packet, &mut rng) {
            Ok(EapAction::Respond(r)) => {
                assert!(r.len() >= 5, "EAP Response too short: {r:?}");
                assert_eq!(r[0], 2, "not an EAP Response: {r:?}");
                assert_eq!(usize::from(u16::from_be_bytes([r[2], r[3]])), r.len(), "EAP Length field wrong");
                if is_request {
                    assert_eq!(r[1], packet[1], "Response Identifier differs from the Request's");
                }
            }
            Ok(EapAction::Success) => {
                let _ = (peer.msk(), peer.method());
                break;
            }
            Ok(EapAction::Failure) | Err(_) => break,
        }
    }
}

/// An EAP Request packet (RFC 3748 §4.1), Type-Data cut to fit the 16-bit length.
pub(crate) fn request(id: u8, typ: u8, data: &[u8]) -> Vec<u8> {
    let data = data.get(..usize::from(u16::MAX) - 5).unwrap_or(data);
    let len = (5 + data.len()) as u16;
    let mut v = vec![1, id];
    v.extend_from_slice(&len.to_be_bytes());
    v.push(typ);
    v.extend_from_slice(data);
    v
}
