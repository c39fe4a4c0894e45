use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use super::mschapv2::{
    authenticator_response, challenge_hash, challenge_response, client_receive_key, client_send_key,
    hash_nt_password_hash, master_key, nt_password_hash, Keys,
};
use super::*;

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

fn arr<const N: usize>(s: &str) -> [u8; N] {
    unhex(s).try_into().unwrap()
}

fn rng() -> ChaCha20Rng {
    ChaCha20Rng::from_seed([7; 32])
}

/// An RNG that repeats fixed bytes, to reproduce the RFC 2759 peer challenge.
struct FixedRng(Vec<u8>);

impl RngCore for FixedRng {
    fn next_u32(&mut self) -> u32 {
        0
    }
    fn next_u64(&mut self) -> u64 {
        0
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for (d, s) in dst.iter_mut().zip(self.0.iter().cycle()) {
            *d = *s;
        }
    }
}
impl rand_core::CryptoRng for FixedRng {}

fn request(id: u8, typ: u8, data: &[u8]) -> Vec<u8> {
    let len = (5 + data.len()) as u16;
    let mut v = vec![1, id];
    v.extend_from_slice(&len.to_be_bytes());
    v.push(typ);
    v.extend_from_slice(data);
    v
}

fn success(id: u8) -> Vec<u8> {
    vec![3, id, 0, 4]
}

fn failure(id: u8) -> Vec<u8> {
    vec![4, id, 0, 4]
}

fn password_config(allowed: Vec<EapMethod>) -> EapConfig {
    EapConfig {
        identity: "user@example.org".into(),
        credentials: EapCredentials::Password {
            username: "User".into(),
            password: Zeroizing::new("clientPass".into()),
        },
        allowed,
    }
}

fn respond(a: Result<EapAction, EapError>) -> Vec<u8> {
    match a {
        Ok(EapAction::Respond(v)) => v,
        other => panic!("expected a response, got {other:?}"),
    }
}

// RFC 2759 §9.2 and RFC 3079 §3.5 sample values.
const AUTH_CHALLENGE: &str = "5B 5D 7C 7D 7B 3F 2F 3E 3C 2C 60 21 32 26 26 28";
const PEER_CHALLENGE: &str = "21 40 23 24 25 5E 26 2A 28 29 5F 2B 3A 33 7C 7E";
const NT_RESPONSE: &str = "82 30 9E CD 8D 70 8B 5E A0 8F AA 39 81 CD 83 54 42 33 11 4A 3D 85 D6 DF";
const AUTH_RESPONSE: &str = "S=407A5589115FD0D6209F510FE9C04566932CDA56";

#[test]
fn eap_mschapv2_rfc2759_vectors() {
    let pw_hash = nt_password_hash("clientPass");
    assert_eq!(pw_hash.as_slice(), unhex("44 EB BA 8D 53 12 B8 D6 11 47 44 11 F5 69 89 AE"));
    let pw_hash_hash = hash_nt_password_hash(&pw_hash);
    assert_eq!(pw_hash_hash.as_slice(), unhex("41 C0 0C 58 4B D2 D9 1C 40 17 A2 A1 2F A5 9F 3F"));
    let challenge = challenge_hash(&arr(PEER_CHALLENGE), &arr(AUTH_CHALLENGE), "User");
    assert_eq!(challenge.as_slice(), unhex("D0 2E 43 86 BC E9 12 26"));
    // A domain prefix is not part of the challenge hash (RFC 2759 §8.2).
    assert_eq!(challenge, challenge_hash(&arr(PEER_CHALLENGE), &arr(AUTH_CHALLENGE), "DOMAIN\\User"));
    let nt_response = challenge_response(&challenge, &pw_hash);
    assert_eq!(nt_response.as_slice(), unhex(NT_RESPONSE));
    let auth = authenticator_response(&pw_hash_hash, &nt_response, &challenge);
    assert_eq!(format!("S={}", hex::encode_upper(auth)), AUTH_RESPONSE);
}

#[test]
fn eap_mschapv2_rfc3079_vectors_and_msk_layout() {
    let pw_hash_hash = arr::<16>("41 C0 0C 58 4B D2 D9 1C 40 17 A2 A1 2F A5 9F 3F");
    let master = master_key(&pw_hash_hash, &arr(NT_RESPONSE));
    assert_eq!(master.as_slice(), unhex("FD EC E3 71 7A 8C 83 8C B3 88 E5 27 AE 3C DD 31"));
    // RFC 3079 §3.5.3 shows the server's SendStartKey128, which is the client's receive key (Magic3).
    assert_eq!(client_receive_key(&master).as_slice(), unhex("8B 7C DC 14 9B 99 3A 1B A1 18 CB 15 3F 56 DC CB"));

    let keys = Keys::compute("User", "clientPass", &arr(AUTH_CHALLENGE), &arr(PEER_CHALLENGE));
    assert_eq!(keys.nt_response.as_slice(), unhex(NT_RESPONSE));
    // MSK = MasterReceiveKey | MasterSendKey of the authenticator | 0^32 (strongSwan, MS-CHAP spec).
    assert_eq!(keys.msk.len(), 64);
    assert_eq!(&keys.msk[..16], client_send_key(&master).as_slice());
    assert_eq!(&keys.msk[16..32], client_receive_key(&master).as_slice());
    assert_eq!(&keys.msk[32..], &[0u8; 32]);
    assert_ne!(&keys.msk[..16], &keys.msk[16..32]);
}

fn mschapv2_challenge(id: u8) -> Vec<u8> {
    let mut d = vec![1, id, 0, 0, 16];
    d.extend_from_slice(&unhex(AUTH_CHALLENGE));
    d.extend_from_slice(b"gw");
    let ms_len = (d.len()) as u16;
    d[2..4].copy_from_slice(&ms_len.to_be_bytes());
    request(id, 26, &d)
}

fn mschapv2_message(op: u8, id: u8, msg: &[u8]) -> Vec<u8> {
    let mut d = vec![op, id];
    d.extend_from_slice(&((4 + msg.len()) as u16).to_be_bytes());
    d.extend_from_slice(msg);
    request(id, 26, &d)
}

#[test]
fn eap_mschapv2_full_conversation() {
    let mut peer = EapPeer::new(password_config(vec![]));
    let mut rng = FixedRng(unhex(PEER_CHALLENGE));

    let r = respond(peer.handle(&request(1, 1, b""), &mut rng));
    assert_eq!(r, [&[2, 1, 0, 21, 1][..], b"user@example.org"].concat());

    let r = respond(peer.handle(&mschapv2_challenge(2), &mut rng));
    assert_eq!(peer.method(), Some(EapMethod::MsChapV2));
    // Code, Id, Length, Type, OpCode, MS-CHAPv2-ID, MS-Length, Value-Size, Peer-Challenge, Reserved, NT-Resp, Flags, Name
    assert_eq!(&r[..4], &[2, 2, 0, 63]);
    assert_eq!(&r[4..10], &[26, 2, 2, 0, 58, 49]);
    assert_eq!(&r[10..26], unhex(PEER_CHALLENGE).as_slice());
    assert_eq!(&r[26..34], &[0u8; 8]);
    assert_eq!(&r[34..58], unhex(NT_RESPONSE).as_slice());
    assert_eq!(r[58], 0);
    assert_eq!(&r[59..], b"User");
    // No MSK before EAP-Success.
    assert!(peer.msk().is_none());

    let msg = format!("{AUTH_RESPONSE} M=Welcome2strongSwan");
    let r = respond(peer.handle(&mschapv2_message(3, 3, msg.as_bytes()), &mut rng));
    assert_eq!(r, [2, 3, 0, 6, 26, 3]);

    assert_eq!(peer.handle(&success(3), &mut rng), Ok(EapAction::Success));
    let keys = Keys::compute("User", "clientPass", &arr(AUTH_CHALLENGE), &arr(PEER_CHALLENGE));
    assert_eq!(peer.msk(), Some(keys.msk.as_slice()));
    // Issue 10, hole 9: no key in Debug output (the derived Debug of the MSCHAPv2 state printed the MSK).
    let dbg = format!("{:?} {:?}", peer, peer.state);
    assert!(!dbg.contains('[') && dbg.contains("redacted"), "{dbg}");
    // Nothing after the end.
    assert!(matches!(peer.handle(&success(4), &mut rng), Err(EapError::Protocol(_))));
}

#[test]
fn eap_mschapv2_lowercase_authenticator_accepted() {
    let mut peer = EapPeer::new(password_config(vec![EapMethod::MsChapV2]));
    let mut rng = FixedRng(unhex(PEER_CHALLENGE));
    respond(peer.handle(&mschapv2_challenge(2), &mut rng));
    let msg = AUTH_RESPONSE.to_lowercase().replace("s=", "S=");
    respond(peer.handle(&mschapv2_message(3, 3, msg.as_bytes()), &mut rng));
    assert_eq!(peer.handle(&success(3), &mut rng), Ok(EapAction::Success));
}

#[test]
fn eap_mschapv2_wrong_authenticator_response() {
    let mut peer = EapPeer::new(password_config(vec![]));
    let mut rng = FixedRng(unhex(PEER_CHALLENGE));
    respond(peer.handle(&mschapv2_challenge(2), &mut rng));
    let bad = b"S=407A5589115FD0D6209F510FE9C04566932CDA57 M=hi";
    assert_eq!(peer.handle(&mschapv2_message(3, 3, bad), &mut rng), Err(EapError::AuthenticatorFailed));
    // Truncated / non-hex authenticator strings are malformed, not a panic.
    for bad in [&b"S=407A"[..], b"S=", b"M=hello", b"S=ZZ7A5589115FD0D6209F510FE9C04566932CDA56"] {
        let mut peer = EapPeer::new(password_config(vec![]));
        respond(peer.handle(&mschapv2_challenge(2), &mut rng));
        assert!(matches!(peer.handle(&mschapv2_message(3, 3, bad), &mut rng), Err(EapError::Malformed(_))));
    }
}

#[test]
fn eap_mschapv2_success_before_verification_is_refused() {
    let mut peer = EapPeer::new(password_config(vec![]));
    let mut rng = rng();
    respond(peer.handle(&mschapv2_challenge(2), &mut rng));
    assert!(matches!(peer.handle(&success(3), &mut rng), Err(EapError::Protocol(_))));
    // EAP-Success with no method at all.
    let mut peer = EapPeer::new(password_config(vec![]));
    respond(peer.handle(&request(1, 1, b""), &mut rng));
    assert!(matches!(peer.handle(&success(2), &mut rng), Err(EapError::Protocol(_))));
}

#[test]
fn eap_mschapv2_failure_691() {
    let mut peer = EapPeer::new(password_config(vec![]));
    let mut rng = rng();
    respond(peer.handle(&mschapv2_challenge(2), &mut rng));
    let msg = b"E=691 R=1 C=00112233445566778899AABBCCDDEEFF V=3 M=Bad user\x07name";
    let r = respond(peer.handle(&mschapv2_message(4, 3, msg), &mut rng));
    assert_eq!(r, [2, 3, 0, 6, 26, 4]);
    match peer.handle(&failure(4), &mut rng) {
        Err(EapError::Rejected(text)) => {
            assert!(text.contains("691"), "{text}");
            assert!(text.contains("wrong user name or password"), "{text}");
            assert!(text.contains("Bad user?name"), "{text}");
        }
        other => panic!("{other:?}"),
    }
    assert!(peer.msk().is_none());

    // A Failure Request followed by a (bogus) EAP-Success still fails.
    let mut peer = EapPeer::new(password_config(vec![]));
    respond(peer.handle(&mschapv2_challenge(2), &mut rng));
    respond(peer.handle(&mschapv2_message(4, 3, b"E=648 R=0 V=3"), &mut rng));
    match peer.handle(&success(4), &mut rng) {
        Err(EapError::Rejected(text)) => assert!(text.contains("password expired"), "{text}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn eap_md5_known_answer() {
    let mut peer = EapPeer::new(EapConfig {
        identity: "alice".into(),
        credentials: EapCredentials::Password { username: "alice".into(), password: Zeroizing::new("secret".into()) },
        allowed: vec![EapMethod::Md5],
    });
    peer.set_gateway_authenticated(true);
    let mut rng = rng();
    let mut data = vec![16];
    data.extend(0u8..16);
    data.extend_from_slice(b"gateway");
    let r = respond(peer.handle(&request(0x2a, 4, &data), &mut rng));
    // MD5(0x2a || "secret" || 00..0f), computed independently.
    let expected = [&[2, 0x2a, 0, 22, 4, 16][..], &unhex("03dc98c5a832692b49df73cf48fcb4e9")].concat();
    assert_eq!(r, expected);
    assert_eq!(peer.method(), Some(EapMethod::Md5));
    assert_eq!(peer.handle(&success(0x2a), &mut rng), Ok(EapAction::Success));
    assert_eq!(peer.msk(), None);
}

#[test]
fn eap_identity_and_notification() {
    let mut peer = EapPeer::new(password_config(vec![]));
    let mut rng = rng();
    let r = respond(peer.handle(&request(7, 1, b"hello"), &mut rng));
    assert_eq!(r, [&[2, 7, 0, 21, 1][..], b"user@example.org"].concat());
    // Trailing link-layer padding past Length is ignored.
    let mut padded = request(8, 2, b"Password expires soon");
    padded.extend_from_slice(&[0; 7]);
    let r = respond(peer.handle(&padded, &mut rng));
    assert_eq!(r, [2, 8, 0, 5, 2]);
    assert_eq!(peer.method(), None);
    assert_eq!(peer.handle(&failure(9), &mut rng), Ok(EapAction::Failure));
}

#[test]
fn eap_nak_for_unsupported_types() {
    let mut rng = rng();
    // PEAP (25) with password credentials: propose MSCHAPv2 (never MD5 unless the profile names it).
    let mut peer = EapPeer::new(password_config(vec![]));
    assert_eq!(respond(peer.handle(&request(3, 25, &[0x20]), &mut rng)), [2, 3, 0, 6, 3, 26]);
    assert_eq!(peer.method(), None);
    // Then the gateway picks MSCHAPv2.
    respond(peer.handle(&mschapv2_challenge(4), &mut rng));
    assert_eq!(peer.method(), Some(EapMethod::MsChapV2));

    // An allowed list restricts (and orders) the proposal; MD5 only once the gateway authenticated.
    let mut peer = EapPeer::new(password_config(vec![EapMethod::Md5, EapMethod::Tls]));
    assert_eq!(peer.handle(&mschapv2_challenge(5), &mut rng), Err(EapError::UnsupportedMethod(26)));
    let mut peer = EapPeer::new(password_config(vec![EapMethod::Md5, EapMethod::Tls]));
    peer.set_gateway_authenticated(true);
    assert_eq!(respond(peer.handle(&mschapv2_challenge(5), &mut rng)), [2, 5, 0, 6, 3, 4]);
    // Expanded type (254) gets a legacy Nak too.
    assert_eq!(respond(peer.handle(&request(6, 254, &[0, 0, 0, 0, 0, 0, 0, 1]), &mut rng)), [2, 6, 0, 6, 3, 4]);

    // Nothing acceptable at all: an error instead of an empty Nak.
    let mut peer = EapPeer::new(password_config(vec![EapMethod::Tls]));
    assert_eq!(peer.handle(&mschapv2_challenge(5), &mut rng), Err(EapError::UnsupportedMethod(26)));
}

#[test]
fn eap_method_switch_is_refused() {
    let mut rng = rng();
    let mut peer = EapPeer::new(password_config(vec![]));
    respond(peer.handle(&mschapv2_challenge(2), &mut rng));
    let mut md5 = vec![16];
    md5.extend([0u8; 16]);
    assert!(matches!(peer.handle(&request(3, 4, &md5), &mut rng), Err(EapError::Protocol(_))));
    assert!(matches!(peer.handle(&request(3, 25, &[]), &mut rng), Err(EapError::Protocol(_))));
    // A second Challenge in the same conversation is refused as well.
    assert!(matches!(peer.handle(&mschapv2_challenge(4), &mut rng), Err(EapError::Protocol(_))));
}

#[test]
fn eap_malformed_packets_are_errors() {
    let mut rng = rng();
    let cases: &[&[u8]] = &[
        &[],
        &[1],
        &[1, 1, 0],
        &[1, 1, 0, 3],       // Length < 4
        &[1, 1, 0, 4],       // Request without Type
        &[1, 1, 0, 9, 1],    // Length beyond the data
        &[9, 1, 0, 4],       // unknown Code
        &[2, 1, 0, 5, 1],    // a Response
        &[1, 1, 0, 5, 3],    // Nak as a Request
        &[1, 1, 0, 5, 4],    // MD5 without Value-Size
        &[1, 1, 0, 6, 4, 0], // MD5 with empty challenge
        &[1, 1, 0, 7, 4, 16, 1],
        &[1, 1, 0, 5, 26],
        &[1, 1, 0, 8, 26, 1, 1, 0],
        &[1, 1, 0, 9, 26, 1, 1, 0, 20],
        &[1, 1, 0, 10, 26, 1, 1, 0, 20, 16],
        &[1, 1, 0, 12, 26, 1, 1, 0, 20, 16, 1, 2],
        &[1, 1, 0, 9, 26, 9, 1, 0, 4],
    ];
    for &c in cases {
        let mut peer = EapPeer::new(password_config(vec![EapMethod::MsChapV2, EapMethod::Md5]));
        peer.set_gateway_authenticated(true);
        assert!(peer.handle(c, &mut rng).is_err(), "{c:?} accepted");
    }
    // Every truncation of valid packets, and random bytes: errors or answers, never a panic.
    let valid = [
        mschapv2_challenge(2),
        mschapv2_message(3, 3, AUTH_RESPONSE.as_bytes()),
        mschapv2_message(4, 3, b"E=691 R=0"),
        request(1, 1, b"x"),
        request(1, 13, &[0xe0, 0, 0, 0, 10, 1, 2]),
    ];
    for p in &valid {
        for n in 0..=p.len() {
            let mut peer = EapPeer::new(password_config(vec![]));
            let _ = peer.handle(&mschapv2_challenge(1), &mut rng);
            let _ = peer.handle(&p[..n], &mut rng);
            // Corrupt the Length field too.
            let mut q = p[..n].to_vec();
            if q.len() >= 4 {
                q[3] = q[3].wrapping_add(3);
            }
            let _ = peer.handle(&q, &mut rng);
        }
    }
    let mut noise = ChaCha20Rng::from_seed([1; 32]);
    for i in 0..3000 {
        let mut buf = vec![0u8; (noise.next_u32() % 80) as usize];
        noise.fill_bytes(&mut buf);
        if buf.len() >= 4 {
            buf[0] = 1 + (i % 4) as u8;
            let len = buf.len() as u16;
            buf[2..4].copy_from_slice(&len.to_be_bytes());
            if buf.len() >= 5 {
                buf[4] = [1, 2, 4, 13, 26, 25][i % 6];
            }
        }
        let mut peer = EapPeer::new(password_config(vec![]));
        let _ = peer.handle(&buf, &mut rng);
        let _ = peer.handle(&mschapv2_challenge(1), &mut rng);
        let _ = peer.handle(&buf, &mut rng);
    }
}

mod tls {
    use std::io::{Read, Write};
    use std::sync::Arc;

    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use rustls::pki_types::PrivatePkcs8KeyDer;
    use rustls::server::WebPkiClientVerifier;
    use rustls::{ServerConfig, ServerConnection, SupportedProtocolVersion};

    use super::*;

    struct Pki {
        ca: CertificateDer<'static>,
        server: (CertificateDer<'static>, PrivateKeyDer<'static>),
        client: (CertificateDer<'static>, PrivateKeyDer<'static>),
    }

    fn pki() -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf = |names: Vec<String>| {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(names).unwrap().signed_by(&key, &issuer).unwrap();
            (cert.der().clone(), PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())))
        };
        Pki {
            ca: ca_cert.der().clone(),
            server: leaf(vec!["radius.example.org".into()]),
            client: leaf(vec!["client.example.org".into()]),
        }
    }

    fn roots(ca: &CertificateDer<'static>) -> RootCertStore {
        let mut r = RootCertStore::empty();
        r.add(ca.clone()).unwrap();
        r
    }

    fn peer_config(pki: &Pki, trust: &CertificateDer<'static>, server_name: &str) -> EapConfig {
        EapConfig {
            identity: "client@example.org".into(),
            credentials: EapCredentials::Tls(TlsCredentials {
                chain: vec![pki.client.0.clone()],
                key: TlsKey::Der(pki.client.1.clone_key()),
                server_name: server_name.into(),
                roots: roots(trust),
                tls13: true,
            }),
            allowed: vec![],
        }
    }

    /// A minimal EAP-TLS authenticator (RFC 5216 server side) over a rustls ServerConnection.
    struct Authenticator {
        conn: ServerConnection,
        id: u8,
        out: Vec<u8>,
        sent: usize,
        incoming: Vec<u8>,
        fragment: usize,
        indication_sent: bool,
        fragments_seen: usize,
        /// Like libreswan (NSS): after the handshake, one empty EAP-TLS request before EAP-Success.
        empty_request_after_handshake: bool,
    }

    impl Authenticator {
        fn new(pki: &Pki, version: &'static SupportedProtocolVersion, fragment: usize) -> Authenticator {
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots(&pki.ca)), provider.clone())
                .build()
                .unwrap();
            let config = ServerConfig::builder_with_provider(provider)
                .with_protocol_versions(&[version])
                .unwrap()
                .with_client_cert_verifier(verifier)
                .with_single_cert(vec![pki.server.0.clone()], pki.server.1.clone_key())
                .unwrap();
            Authenticator {
                conn: ServerConnection::new(Arc::new(config)).unwrap(),
                id: 10,
                out: Vec::new(),
                sent: 0,
                incoming: Vec::new(),
                fragment,
                indication_sent: false,
                fragments_seen: 0,
                empty_request_after_handshake: false,
            }
        }

        fn tls_request(&mut self, type_data: &[u8]) -> Vec<u8> {
            self.id = self.id.wrapping_add(1);
            request(self.id, 13, type_data)
        }

        fn start(&mut self) -> Vec<u8> {
            self.tls_request(&[0x20])
        }

        fn next_fragment(&mut self) -> Vec<u8> {
            let end = self.out.len().min(self.sent + self.fragment);
            let more = end < self.out.len();
            let mut d = Vec::new();
            if self.sent == 0 {
                d.push(0x80 | if more { 0x40 } else { 0 });
                d.extend_from_slice(&(self.out.len() as u32).to_be_bytes());
            } else {
                d.push(if more { 0x40 } else { 0 });
            }
            d.extend_from_slice(&self.out[self.sent..end]);
            self.sent = end;
            if !more {
                self.out.clear();
                self.sent = 0;
            }
            self.tls_request(&d)
        }

        /// Answer one peer Response; `Ok(None)` means EAP-Success was sent, `Err` means EAP-Failure.
        fn on_response(&mut self, resp: &[u8]) -> Result<Vec<u8>, Vec<u8>> {
            assert_eq!(resp[0], 2);
            assert_eq!(resp[1], self.id, "identifier mismatch");
            let len = u16::from_be_bytes([resp[2], resp[3]]) as usize;
            assert_eq!(len, resp.len());
            assert_eq!(resp[4], 13);
            let flags = resp[5];
            let mut data = &resp[6..];
            if flags & 0x80 != 0 {
                data = &data[4..];
            }
            if self.sent > 0 {
                assert!(data.is_empty(), "expected an ACK");
                return Ok(self.next_fragment());
            }
            if !data.is_empty() {
                self.fragments_seen += 1;
            }
            self.incoming.extend_from_slice(data);
            if flags & 0x40 != 0 {
                return Ok(self.tls_request(&[0]));
            }
            let msg = std::mem::take(&mut self.incoming);
            let mut input = &msg[..];
            while !input.is_empty() {
                self.conn.read_tls(&mut input).unwrap();
                if self.conn.process_new_packets().is_err() {
                    // Alert to the peer, then wait for its (empty) answer and fail.
                    self.conn.write_tls(&mut self.out).unwrap();
                    if self.out.is_empty() {
                        return Err(vec![4, self.id.wrapping_add(1), 0, 4]);
                    }
                    return Ok(self.next_fragment());
                }
            }
            if msg.is_empty() && !self.conn.is_handshaking() && self.empty_request_after_handshake {
                self.empty_request_after_handshake = false;
                return Ok(self.tls_request(&[0]));
            }
            if msg.is_empty() && !self.conn.is_handshaking() {
                // Peer acknowledged our final flight.
                self.id = self.id.wrapping_add(1);
                return Err(vec![3, self.id, 0, 4]);
            }
            if msg.is_empty() {
                return Err(vec![4, self.id.wrapping_add(1), 0, 4]);
            }
            if !self.conn.is_handshaking()
                && self.conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3)
                && !self.indication_sent
            {
                self.conn.writer().write_all(&[0]).unwrap();
                self.indication_sent = true;
            }
            while self.conn.wants_write() {
                self.conn.write_tls(&mut self.out).unwrap();
            }
            assert!(!self.out.is_empty(), "server has nothing to say");
            Ok(self.next_fragment())
        }

        fn msk(&self) -> Vec<u8> {
            match self.conn.protocol_version() {
                Some(rustls::ProtocolVersion::TLSv1_3) => {
                    let km = self
                        .conn
                        .export_keying_material(vec![0u8; 128], b"EXPORTER_EAP_TLS_Key_Material", Some(&[13]))
                        .unwrap();
                    km[..64].to_vec()
                }
                _ => self.conn.export_keying_material(vec![0u8; 64], b"client EAP encryption", None).unwrap(),
            }
        }
    }

    /// Drive peer and authenticator until EAP-Success/Failure; returns the peer's final result.
    fn run(peer: &mut EapPeer, auth: &mut Authenticator) -> Result<EapAction, EapError> {
        let mut rng = rng();
        let mut req = auth.start();
        for _ in 0..500 {
            let resp = match peer.handle(&req, &mut rng)? {
                EapAction::Respond(r) => r,
                other => return Ok(other),
            };
            req = match auth.on_response(&resp) {
                Ok(next) => next,
                Err(end) => end,
            };
            // Drain the server's plaintext so that it never blocks.
            let mut sink = [0u8; 64];
            let _ = auth.conn.reader().read(&mut sink);
        }
        panic!("EAP-TLS conversation did not finish");
    }

    fn handshake(version: &'static SupportedProtocolVersion, expect: rustls::ProtocolVersion) {
        let pki = pki();
        let mut peer = EapPeer::new(peer_config(&pki, &pki.ca, "radius.example.org"));
        peer.set_tls_fragment_size(64);
        let mut auth = Authenticator::new(&pki, version, 100);
        assert_eq!(run(&mut peer, &mut auth), Ok(EapAction::Success));
        assert_eq!(peer.method(), Some(EapMethod::Tls));
        assert_eq!(auth.conn.protocol_version(), Some(expect));
        // The peer's certificate flight needed several fragments.
        assert!(auth.fragments_seen > 3, "{}", auth.fragments_seen);
        let msk = peer.msk().expect("MSK").to_vec();
        assert_eq!(msk.len(), 64);
        assert_eq!(msk, auth.msk());
    }

    // Issue 12: the EAP server's certificate is judged at the IKE SA's clock, not the system's (sans-IO).
    #[test]
    fn eap_tls_server_certificate_is_judged_at_the_given_clock() {
        let pki = pki();
        // 1970-01-02: before the certificates' validity (rcgen's default starts in 1975).
        let mut peer = EapPeer::new(peer_config(&pki, &pki.ca, "radius.example.org"));
        peer.set_unix_time(86_400);
        let mut auth = Authenticator::new(&pki, &rustls::version::TLS12, 1000);
        match run(&mut peer, &mut auth) {
            Err(EapError::Tls(e)) => {
                assert!(e.to_lowercase().contains("not valid yet") || e.contains("NotValidYet"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        // 2030: within it.
        let mut peer = EapPeer::new(peer_config(&pki, &pki.ca, "radius.example.org"));
        peer.set_unix_time(1_894_665_600);
        let mut auth = Authenticator::new(&pki, &rustls::version::TLS12, 1000);
        assert_eq!(run(&mut peer, &mut auth), Ok(EapAction::Success));
    }

    // Issue 11: libreswan sends an empty EAP-TLS request after the handshake; it gets an empty response.
    #[test]
    fn eap_tls_empty_request_after_the_handshake_is_answered() {
        for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
            let pki = pki();
            let mut peer = EapPeer::new(peer_config(&pki, &pki.ca, "radius.example.org"));
            let mut auth = Authenticator::new(&pki, version, 1000);
            auth.empty_request_after_handshake = true;
            assert_eq!(run(&mut peer, &mut auth), Ok(EapAction::Success));
            assert!(!auth.empty_request_after_handshake, "the empty request was sent");
            assert_eq!(peer.msk().expect("MSK"), auth.msk().as_slice());
        }
    }

    #[test]
    fn eap_tls12_handshake_with_fragments() {
        handshake(&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2);
    }

    #[test]
    fn eap_tls13_handshake_with_fragments_and_success_indication() {
        handshake(&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3);
    }

    /// The client key stays in a key store: rustls signs through our `Signer` (as the Android/Apple shells'
    /// key store signers do), with TLS 1.2 and 1.3.
    #[test]
    fn eap_tls_with_a_key_store_signer() {
        for (version, expect) in [
            (&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2),
            (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3),
        ] {
            let pki = pki();
            let mut config = peer_config(&pki, &pki.ca, "radius.example.org");
            let PrivateKeyDer::Pkcs8(der) = &pki.client.1 else { panic!("PKCS#8 test key") };
            let signer = crate::crypto::KeyPairSigner::from_pkcs8_der(der.secret_pkcs8_der()).unwrap();
            if let EapCredentials::Tls(t) = &mut config.credentials {
                t.key = TlsKey::Signer(std::sync::Arc::new(signer));
            }
            let mut peer = EapPeer::new(config);
            let mut auth = Authenticator::new(&pki, version, 300);
            assert_eq!(run(&mut peer, &mut auth), Ok(EapAction::Success));
            assert_eq!(auth.conn.protocol_version(), Some(expect));
            assert!(auth.conn.peer_certificates().is_some_and(|c| c.len() == 1), "the server saw our certificate");
            assert_eq!(peer.msk().expect("MSK").to_vec(), auth.msk());
        }
    }

    #[test]
    fn eap_tls_untrusted_server_fails() {
        let other = pki();
        let pki = pki();
        // The peer trusts another CA: it alerts the server, and fails on the EAP-Failure that follows.
        let mut peer = EapPeer::new(peer_config(&pki, &other.ca, "radius.example.org"));
        let mut auth = Authenticator::new(&pki, &rustls::version::TLS13, 300);
        assert!(matches!(run(&mut peer, &mut auth), Err(EapError::Tls(m)) if m.contains("certificate")));
        assert!(peer.msk().is_none());
        // Wrong server name.
        let mut peer = EapPeer::new(peer_config(&pki, &pki.ca, "other.example.org"));
        let mut auth = Authenticator::new(&pki, &rustls::version::TLS12, 300);
        assert!(matches!(run(&mut peer, &mut auth), Err(EapError::Tls(m)) if m.contains("certificate")));
    }

    #[test]
    fn eap_tls_client_rejected_by_server() {
        let other = pki();
        let pki = pki();
        for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
            // Our client certificate comes from a CA the server does not trust: the server's alert ends it.
            let mut config = peer_config(&other, &pki.ca, "radius.example.org");
            if let EapCredentials::Tls(t) = &mut config.credentials {
                t.roots = roots(&pki.ca);
            }
            let mut peer = EapPeer::new(config);
            let mut auth = Authenticator::new(&pki, version, 300);
            let r = run(&mut peer, &mut auth);
            assert!(matches!(&r, Err(EapError::Tls(m)) if m.contains("alert")), "{r:?}");
            assert!(peer.msk().is_none());
        }
    }

    #[test]
    fn eap_tls_success_before_handshake_is_refused() {
        let pki = pki();
        let mut peer = EapPeer::new(peer_config(&pki, &pki.ca, "radius.example.org"));
        let mut rng = rng();
        respond(peer.handle(&request(1, 13, &[0x20]), &mut rng));
        assert!(matches!(peer.handle(&success(2), &mut rng), Err(EapError::Protocol(_))));
        // Data before Start; oversized announced length.
        let mut peer = EapPeer::new(peer_config(&pki, &pki.ca, "radius.example.org"));
        assert!(matches!(peer.handle(&request(1, 13, &[0, 22, 3, 3]), &mut rng), Err(EapError::Protocol(_))));
        let mut peer = EapPeer::new(peer_config(&pki, &pki.ca, "radius.example.org"));
        respond(peer.handle(&request(1, 13, &[0x20]), &mut rng));
        let big = request(2, 13, &[0xc0, 0, 2, 0, 0, 22]);
        assert!(matches!(peer.handle(&big, &mut rng), Err(EapError::Malformed(_))));
    }

    #[test]
    fn eap_tls_reassembly_is_bounded() {
        let pki = pki();
        let mut peer = EapPeer::new(peer_config(&pki, &pki.ca, "radius.example.org"));
        let mut rng = rng();
        respond(peer.handle(&request(1, 13, &[0x20]), &mut rng));
        let chunk = vec![0x16u8; 4000];
        let mut result = Ok(EapAction::Failure);
        for id in 2u8..22 {
            let mut d = vec![0x40];
            d.extend_from_slice(&chunk);
            result = peer.handle(&request(id, 13, &d), &mut rng);
            if result.is_err() {
                break;
            }
            assert_eq!(result, Ok(EapAction::Respond(vec![2, id, 0, 6, 13, 0])));
        }
        assert!(matches!(result, Err(EapError::Malformed(_))));
    }
}

mod ttls {
    use std::io::{Read, Write};
    use std::sync::Arc;

    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use rustls::pki_types::PrivatePkcs8KeyDer;
    use rustls::{ServerConfig, ServerConnection, SupportedProtocolVersion};

    use super::super::ttls::{decode_eap_message, encode_eap_message};
    use super::*;

    const USER: &str = "alice";
    const PASSWORD: &str = "ttls-secret";

    #[test]
    fn avp_codec() {
        let mut out = Vec::new();
        encode_eap_message(&[2, 0, 0, 9, 1, b'a', b'l', b'i', b'c'], &mut out).unwrap();
        // Code 79, flags M, length 8 + 9 = 17, padded to 20.
        assert_eq!(&out[..8], &[0, 0, 0, 79, 0x40, 0, 0, 17]);
        assert_eq!(out.len(), 20);
        assert_eq!(decode_eap_message(&out).unwrap(), vec![2, 0, 0, 9, 1, b'a', b'l', b'i', b'c']);
        // An EAP packet split over two EAP-Message AVPs, after an optional vendor AVP that is skipped.
        let mut two = vec![0, 0, 0, 1, 0x80, 0, 0, 13, 0, 0, 0x01, 0x37, 0xff, 0, 0, 0];
        encode_eap_message(&[1, 2, 0], &mut two).unwrap();
        encode_eap_message(&[6, 4, 16], &mut two).unwrap();
        assert_eq!(decode_eap_message(&two).unwrap(), vec![1, 2, 0, 6, 4, 16]);
        // Unknown mandatory AVP; truncated header; length beyond the data; length below the header; no EAP.
        assert!(matches!(decode_eap_message(&[0, 0, 0, 1, 0x40, 0, 0, 8]), Err(EapError::Protocol(_))));
        assert!(matches!(decode_eap_message(&[0, 0, 0, 79, 0x40, 0]), Err(EapError::Malformed(_))));
        assert!(matches!(decode_eap_message(&[0, 0, 0, 79, 0x40, 0, 0, 30, 1]), Err(EapError::Malformed(_))));
        assert!(matches!(decode_eap_message(&[0, 0, 0, 79, 0x40, 0, 0, 4]), Err(EapError::Malformed(_))));
        assert!(matches!(decode_eap_message(&[0, 0, 0, 1, 0, 0, 0, 8]), Err(EapError::Protocol(_))));
        assert!(matches!(decode_eap_message(&[]), Err(EapError::Protocol(_))));
    }

    struct Pki {
        ca: CertificateDer<'static>,
        other_ca: CertificateDer<'static>,
        server: (CertificateDer<'static>, PrivateKeyDer<'static>),
    }

    fn pki() -> Pki {
        let ca = |_: ()| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            let cert = params.self_signed(&key).unwrap();
            (cert.der().clone(), Issuer::new(params, key))
        };
        let (ca_cert, issuer) = ca(());
        let (other_ca, _) = ca(());
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["aaa.example.org".into()]).unwrap().signed_by(&key, &issuer).unwrap();
        let server = (cert.der().clone(), PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())));
        Pki { ca: ca_cert, other_ca, server }
    }

    fn config(trust: &CertificateDer<'static>, password: &str) -> EapConfig {
        let mut roots = RootCertStore::empty();
        roots.add(trust.clone()).unwrap();
        EapConfig {
            identity: "anonymous@example.org".into(),
            credentials: EapCredentials::Ttls(TtlsCredentials {
                username: USER.into(),
                password: Zeroizing::new(password.into()),
                server_name: "aaa.example.org".into(),
                roots,
                inner: vec![],
                tls13: true,
            }),
            allowed: vec![EapMethod::Ttls],
        }
    }

    /// A minimal EAP-TTLS server (RFC 5281) with EAP-MD5 in phase 2, over a rustls ServerConnection; messages
    /// fit one EAP packet each.
    struct Server {
        conn: ServerConnection,
        id: u8,
        phase2: u8,
        challenge: [u8; 16],
        inner_identity: Option<String>,
        /// Send EAP-Success when phase 2 opens, before it authenticated the peer (a broken server).
        early_success: bool,
    }

    impl Server {
        fn new(pki: &Pki, version: &'static SupportedProtocolVersion) -> Server {
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let config = ServerConfig::builder_with_provider(provider)
                .with_protocol_versions(&[version])
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![pki.server.0.clone()], pki.server.1.clone_key())
                .unwrap();
            Server {
                conn: ServerConnection::new(Arc::new(config)).unwrap(),
                id: 40,
                phase2: 0,
                challenge: [0x5a; 16],
                inner_identity: None,
                early_success: false,
            }
        }

        fn request(&mut self, type_data: &[u8]) -> Vec<u8> {
            self.id = self.id.wrapping_add(1);
            request(self.id, 21, type_data)
        }

        fn end(&mut self, code: u8) -> Vec<u8> {
            self.id = self.id.wrapping_add(1);
            vec![code, self.id, 0, 4]
        }

        /// The next packet for the peer after its Response `resp` (None: the Start).
        fn next(&mut self, resp: Option<&[u8]>) -> Vec<u8> {
            let Some(resp) = resp else { return self.request(&[0x20]) };
            assert_eq!((resp[0], resp[1], resp[4]), (2, self.id, 21));
            let flags = resp[5];
            assert_eq!(flags & 0x40, 0, "messages fit one packet here");
            let data = &resp[if flags & 0x80 != 0 { 10 } else { 6 }..];
            let mut input = data;
            while !input.is_empty() {
                self.conn.read_tls(&mut input).unwrap();
                if self.conn.process_new_packets().is_err() {
                    return self.end(4);
                }
            }
            let mut app = Vec::new();
            let _ = self.conn.reader().read_to_end(&mut app);
            if !app.is_empty() && self.early_success {
                // The handshake is over and the peer opened phase 2, which has not authenticated it yet.
                return self.end(3);
            }
            if !app.is_empty() {
                let eap = decode_eap_message(&app).unwrap();
                match self.phase2 {
                    0 => {
                        // The peer opens phase 2 with its inner identity.
                        assert_eq!(&eap[..5], &[2, 0, 0, eap.len() as u8, 1]);
                        self.inner_identity = Some(String::from_utf8(eap[5..].to_vec()).unwrap());
                        let mut md5 = vec![1, 7, 0, 22, 4, 16];
                        md5.extend_from_slice(&self.challenge);
                        let mut avps = Vec::new();
                        encode_eap_message(&md5, &mut avps).unwrap();
                        self.conn.writer().write_all(&avps).unwrap();
                        self.phase2 = 1;
                    }
                    _ => {
                        assert_eq!(&eap[..6], &[2, 7, 0, 22, 4, 16]);
                        let want = super::super::md5::chap_md5(7, PASSWORD.as_bytes(), &self.challenge);
                        return self.end(if eap[6..22] == want { 3 } else { 4 });
                    }
                }
            }
            let mut out = Vec::new();
            while self.conn.wants_write() {
                self.conn.write_tls(&mut out).unwrap();
            }
            if out.is_empty() {
                return self.end(4);
            }
            let mut d = vec![0x80];
            d.extend_from_slice(&(out.len() as u32).to_be_bytes());
            d.extend_from_slice(&out);
            self.request(&d)
        }

        fn msk(&self) -> Vec<u8> {
            match self.conn.protocol_version() {
                Some(rustls::ProtocolVersion::TLSv1_3) => {
                    let km = self
                        .conn
                        .export_keying_material(vec![0u8; 128], b"EXPORTER_EAP_TLS_Key_Material", Some(&[0x15]))
                        .unwrap();
                    km[..64].to_vec()
                }
                _ => self.conn.export_keying_material(vec![0u8; 64], b"ttls keying material", None).unwrap(),
            }
        }
    }

    fn run(peer: &mut EapPeer, server: &mut Server) -> Result<EapAction, EapError> {
        let mut rng = rng();
        let mut req = server.next(None);
        for _ in 0..50 {
            match peer.handle(&req, &mut rng)? {
                EapAction::Respond(r) => req = server.next(Some(&r)),
                other => return Ok(other),
            }
        }
        panic!("EAP-TTLS conversation did not finish");
    }

    fn conversation(version: &'static SupportedProtocolVersion) {
        let pki = pki();
        let mut peer = EapPeer::new(config(&pki.ca, PASSWORD));
        peer.set_tls_fragment_size(16 * 1024);
        let mut server = Server::new(&pki, version);
        assert_eq!(run(&mut peer, &mut server), Ok(EapAction::Success));
        assert_eq!(peer.method(), Some(EapMethod::Ttls));
        assert_eq!(server.inner_identity.as_deref(), Some(USER), "the user name is sent inside the tunnel");
        assert_eq!(peer.msk().expect("MSK").to_vec(), server.msk());
    }

    #[test]
    fn ttls_md5_over_tls12() {
        conversation(&rustls::version::TLS12);
    }

    #[test]
    fn ttls_md5_over_tls13() {
        conversation(&rustls::version::TLS13);
    }

    #[test]
    fn ttls_failures() {
        let pki = pki();
        // Wrong password: the server's EAP-Failure.
        let mut peer = EapPeer::new(config(&pki.ca, "wrong"));
        let mut server = Server::new(&pki, &rustls::version::TLS12);
        assert_eq!(run(&mut peer, &mut server), Ok(EapAction::Failure));
        assert!(peer.msk().is_none());
        // A server certificate from a CA we do not trust.
        let mut peer = EapPeer::new(config(&pki.other_ca, PASSWORD));
        let mut server = Server::new(&pki, &rustls::version::TLS13);
        assert!(matches!(run(&mut peer, &mut server), Err(EapError::Tls(m)) if m.contains("certificate")));
        // EAP-Success before phase 2 authenticated us is refused.
        let mut peer = EapPeer::new(config(&pki.ca, PASSWORD));
        let mut server = Server::new(&pki, &rustls::version::TLS12);
        server.early_success = true;
        let r = run(&mut peer, &mut server);
        assert!(matches!(&r, Err(EapError::Protocol(m)) if m.contains("phase 2")), "{r:?}");
        assert!(peer.msk().is_none());
    }
}
