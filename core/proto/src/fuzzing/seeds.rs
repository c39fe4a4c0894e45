//! Seed inputs for the targets that need computed bytes (encrypted messages, signatures, sealed packets), in
//! each target's input format. `core/tests/fuzz_corpus.rs` writes them to `fuzz/corpus/<target>/seed-<name>`
//! (`IKELINK_FUZZ_WRITE_SEEDS=1`); everything is deterministic, so they come out the same every time.

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::eap_peer::{config as eap_config, request as eap_request};
use super::ike_sa::{chain, setup, Gateway, Scenario, Stage, GATEWAY_CHILD_SPI};
use super::{pki, put_chunk};
use crate::crypto::{sign_auth, KeyPairSigner, SigScheme};
use crate::eap::{EapAction, EapPeer};
use crate::esp::EspSa;
use crate::wire::{
    self, AuthMethod, AuthPayload, CertPayload, Delete, ExchangeType, IdType, Identification, KePayload, Message,
    Notify, NotifyType, Payload, ProtocolId, HEADER_LEN,
};

/// (target, seed name, bytes).
pub type Seed = (&'static str, String, Vec<u8>);

/// Every computed seed.
pub fn seeds() -> Vec<Seed> {
    let mut out = Vec::new();
    ike_and_wire(&mut out);
    eap(&mut out);
    cert(&mut out);
    esp(&mut out);
    tcp(&mut out);
    super::pq_exchange::seeds(&mut out);
    out
}

/// TCP streams: IKE and ESP frames, a keepalive, a runt, with and without the prefix, and a broken length.
fn tcp(out: &mut Vec<Seed>) {
    let mut stream = vec![0, 10, 0, 0, 0, 0, 1, 2, 3, 4, 0, 3, 0xff, 0, 4, 1, 2];
    stream.extend_from_slice(&[0, 14, 0, 0, 0, 1, 0, 0, 0, 1, 9, 9, 9, 9]);
    let mut v = vec![0];
    v.extend_from_slice(&stream);
    push(out, "tcp_deframe", "frames", v);
    let mut v = vec![1 | 2 << 1];
    v.extend_from_slice(b"IKETCP");
    v.extend_from_slice(&stream);
    push(out, "tcp_deframe", "prefixed", v);
    push(out, "tcp_deframe", "bad-length", vec![0, 0, 1, 0]);
}

fn push(out: &mut Vec<Seed>, target: &'static str, name: &str, bytes: Vec<u8>) {
    out.push((target, name.to_string(), bytes));
}

/// One message record of the `ike_sa` format: `ctrl, first, chunk`.
fn record(ctrl: u8, payloads: &[Payload]) -> Vec<u8> {
    let (first, bytes) = chain(payloads);
    let mut v = vec![ctrl, first];
    put_chunk(&mut v, &bytes);
    v
}

fn scenario(stage: Stage, action: u8, eap: u8) -> Scenario {
    Scenario {
        stage,
        cbc: false,
        fragmentation: false,
        nat: false,
        mobike: false,
        action,
        eap,
        cert: false,
        online: false,
    }
}

fn fqdn(s: &str) -> Identification {
    Identification { id_type: IdType::ID_FQDN, data: s.as_bytes().to_vec() }
}

fn ike_and_wire(out: &mut Vec<Seed>) {
    const RESPONSE: u8 = 0;
    const INFORMATIONAL: u8 = 1;
    const CREATE_CHILD_SA: u8 = 1 | 1 << 2;

    // IKE_SA_INIT: the gateway's real answer, and its refusals.
    let init = setup(&scenario(Stage::Init, 0, 0));
    let request = init.tracker.sent.last().cloned().unwrap_or_default();
    push(out, "wire_decode", "ike-sa-init-request", request.clone());
    let s = scenario(Stage::Auth, 0, 0);
    if let Some((_, response)) = Gateway::answer_init(&request, &s) {
        push(out, "wire_decode", "ike-sa-init-response", response.clone());
        let mut v = s.bytes().to_vec();
        v[0] &= !3; // Stage::Init
        v.extend_from_slice(&[RESPONSE | 0x40, response.get(16).copied().unwrap_or(0)]);
        put_chunk(&mut v, response.get(HEADER_LEN..).unwrap_or_default());
        push(out, "ike_sa", "init-response", v);
    }
    for (name, t, data) in [
        ("init-cookie", NotifyType::COOKIE, vec![0xc0; 16]),
        ("init-invalid-ke", NotifyType::INVALID_KE_PAYLOAD, vec![0, 19]),
        ("init-no-proposal", NotifyType::NO_PROPOSAL_CHOSEN, vec![]),
        ("init-redirect", NotifyType::REDIRECT, [&[1u8, 4, 203, 0, 113, 9][..], &[0x11; 32]].concat()),
    ] {
        let mut v = scenario(Stage::Init, 0, 0).bytes().to_vec();
        v.extend(record(RESPONSE | 0x40, &[Payload::Notify(Notify::new(t, data))]));
        push(out, "ike_sa", name, v);
    }

    // IKE_AUTH outstanding: the real answer (which establishes the SA), a refusal, a wrong AUTH.
    let mut auth = setup(&s);
    if let (Some(gw), Some(req)) = (auth.gw.as_mut(), auth.tracker.sent.last()) {
        push(out, "wire_decode", "ike-auth-request", req.clone());
        if let Some(payloads) = gw.open(req) {
            let (first, bytes) = chain(&payloads);
            push(out, "wire_decode", "ike-auth-request-chain", [&[first][..], &bytes].concat());
            let answer = gw.auth_response(&payloads, false);
            let (first, bytes) = chain(&answer);
            push(out, "wire_decode", "ike-auth-response-chain", [&[first][..], &bytes].concat());
            let sealed = gw.seal(&gw.header(ExchangeType::IKE_AUTH, true, 1), first, &bytes);
            push(out, "wire_decode", "ike-auth-response", sealed);
            let mut v = s.bytes().to_vec();
            v.extend(record(RESPONSE, &answer));
            // Then the gateway deletes the Child SA and the IKE SA.
            v.extend(record(INFORMATIONAL, &[delete_esp()]));
            v.extend(record(INFORMATIONAL, &[Payload::Delete(Delete { protocol: ProtocolId::IKE, spis: vec![] })]));
            push(out, "ike_sa", "auth-established-then-deleted", v);
            let mut wrong = answer.clone();
            for p in &mut wrong {
                if let Payload::Auth(a) = p {
                    a.data = vec![0; 32];
                }
            }
            let mut v = s.bytes().to_vec();
            v.extend(record(RESPONSE, &wrong));
            push(out, "ike_sa", "auth-wrong-auth", v);
        }
    }
    let mut v = s.bytes().to_vec();
    v.extend(record(RESPONSE, &[Payload::Notify(Notify::new(NotifyType::AUTHENTICATION_FAILED, vec![]))]));
    push(out, "ike_sa", "auth-failed", v);

    // EAP, for each configuration: the method's first Request, EAP-Success, EAP-Failure.
    for (eap, first) in [
        (0u8, mschapv2_challenge(2)),
        (1, eap_request(2, 4, &[16, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16])),
        (2, eap_request(2, 13, &[0x20])),
        (3, eap_request(2, 21, &[0x20])),
        (4, eap_request(2, 25, &[0x20])),
    ] {
        let mut v = scenario(Stage::Eap, 0, eap).bytes().to_vec();
        v.extend(record(RESPONSE, &[Payload::Eap(first)]));
        v.extend(record(RESPONSE, &[Payload::Eap(vec![3, 3, 0, 4])]));
        push(out, "ike_sa", &format!("eap-{eap}"), v);
    }
    let mut v = scenario(Stage::Eap, 0, 0).bytes().to_vec();
    v.extend(record(RESPONSE, &[Payload::Eap(vec![4, 2, 0, 4])]));
    push(out, "ike_sa", "eap-failure", v);

    // The gateway's certificate, checked online: the real signed answer, then the CRL and OCSP answers.
    let sc = Scenario { cert: true, online: true, ..s };
    let mut auth = setup(&sc);
    if let (Some(gw), Some(req)) = (auth.gw.as_mut(), auth.tracker.sent.last()) {
        if let Some(payloads) = gw.open(req) {
            let mut v = sc.bytes().to_vec();
            v.extend(record(RESPONSE, &gw.auth_response(&payloads, true)));
            v.push(2 | 4 | 8 | 16);
            put_chunk(&mut v, pki::CRL);
            put_chunk(&mut v, pki::OCSP_GOOD);
            v.extend(record(INFORMATIONAL, &[delete_esp()]));
            push(out, "ike_sa", "auth-cert-online", v);
        }
    }
    for (eap, first) in [
        (1u8, eap_request(2, 4, &[16, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16])),
        (0, mschapv2_challenge(2)),
    ] {
        let sc = Scenario { cert: true, online: false, ..scenario(Stage::Eap, 0, eap) };
        let mut v = sc.bytes().to_vec();
        v.extend(record(RESPONSE, &[Payload::Eap(first)]));
        v.extend(record(RESPONSE, &[Payload::Eap(vec![3, 3, 0, 4])]));
        push(out, "ike_sa", &format!("eap-cert-{eap}"), v);
    }
    let sc = Scenario { cert: true, online: true, ..scenario(Stage::Established, 0, 0) };
    let mut v = sc.bytes().to_vec();
    v.extend(record(INFORMATIONAL, &[]));
    push(out, "ike_sa", "established-cert", v);

    // Established: the gateway's requests.
    let est = scenario(Stage::Established, 0, 0);
    let mut v = est.bytes().to_vec();
    v.extend(record(INFORMATIONAL, &[]));
    v.extend(record(INFORMATIONAL, &[delete_esp()]));
    v.extend(record(
        INFORMATIONAL,
        &[Payload::Notify(Notify::new(NotifyType::AUTH_LIFETIME, 3600u32.to_be_bytes().to_vec()))],
    ));
    v.extend(record(
        INFORMATIONAL,
        &[Payload::Notify(Notify::new(
            NotifyType::REDIRECT,
            vec![3, 15, b'v', b'p', b'n', b'2', b'.', b'e', b'x', b'a', b'm', b'p', b'l', b'e', b'.', b'n', b'e'],
        ))],
    ));
    push(out, "ike_sa", "established-informational", v);

    let child_rekey = vec![
        Payload::Notify(Notify {
            protocol: ProtocolId::ESP.0,
            spi: GATEWAY_CHILD_SPI.to_be_bytes().to_vec(),
            notify_type: NotifyType::REKEY_SA,
            data: vec![],
        }),
        Payload::Sa(vec![esp_proposal(0xcafe_0002)]),
        Payload::Nonce(vec![0x4e; 32]),
        Payload::TsI(vec![any_ts()]),
        Payload::TsR(vec![any_ts()]),
    ];
    let mut v = est.bytes().to_vec();
    v.extend(record(CREATE_CHILD_SA, &child_rekey));
    v.extend(record(INFORMATIONAL, &[delete_esp()]));
    push(out, "ike_sa", "established-child-rekey-by-gateway", v);

    let ike_rekey = vec![
        Payload::Sa(vec![wire::Proposal {
            spi: vec![0x77; 8],
            ..crate::ike::IkeProposal::parse("aes256gcm16-prfsha256-x25519")
                .map(|p| p.to_wire(1, vec![]))
                .unwrap_or_else(|_| esp_proposal(1))
        }]),
        Payload::Nonce(vec![0x4f; 32]),
        Payload::Ke(KePayload { group: 31, data: vec![0x09; 32] }),
    ];
    let mut v = est.bytes().to_vec();
    v.extend(record(CREATE_CHILD_SA, &ike_rekey));
    push(out, "ike_sa", "established-ike-rekey-by-gateway", v);

    // Established, with a request of ours outstanding: answers.
    for (action, name) in [(1u8, "dpd"), (2, "delete"), (3, "child-rekey"), (4, "ike-rekey"), (5, "mobike")] {
        let sc = Scenario { mobike: action == 5, ..scenario(Stage::Established, action, 0) };
        let st = setup(&sc);
        let Some(gw) = st.gw.as_ref() else { continue };
        let ours = st.tracker.sent.last().and_then(|m| gw.open(m)).unwrap_or_default();
        let answer: Vec<Payload> = match action {
            3 => ours
                .iter()
                .filter_map(|p| match p {
                    Payload::Sa(props) => props.first().map(|p| {
                        Payload::Sa(vec![wire::Proposal { spi: 0xcafe_0003u32.to_be_bytes().to_vec(), ..p.clone() }])
                    }),
                    Payload::Nonce(_) => Some(Payload::Nonce(vec![0x50; 32])),
                    Payload::TsI(_) | Payload::TsR(_) => Some(p.clone()),
                    _ => None,
                })
                .collect(),
            4 => ours
                .iter()
                .filter_map(|p| match p {
                    Payload::Sa(props) => {
                        props.first().map(|p| Payload::Sa(vec![wire::Proposal { spi: vec![0x66; 8], ..p.clone() }]))
                    }
                    Payload::Nonce(_) => Some(Payload::Nonce(vec![0x51; 32])),
                    Payload::Ke(k) => Some(Payload::Ke(KePayload { group: k.group, data: vec![0x09; 32] })),
                    _ => None,
                })
                .collect(),
            5 => vec![Payload::Notify(Notify::new(NotifyType::NAT_DETECTION_DESTINATION_IP, vec![0; 20]))],
            _ => vec![],
        };
        let mut v = sc.bytes().to_vec();
        v.extend(record(RESPONSE, &answer));
        push(out, "ike_sa", &format!("established-{name}-answered"), v);
    }

    // Fragments (RFC 7383), and NAT-T with a CBC suite.
    let sc = Scenario { fragmentation: true, ..scenario(Stage::Established, 0, 0) };
    let mut v = sc.bytes().to_vec();
    let (first, bytes) = chain(&[delete_esp(), Payload::VendorId(vec![0x56; 200])]);
    v.extend_from_slice(&[INFORMATIONAL | 0x10, first]);
    put_chunk(&mut v, &bytes);
    v.push(2); // three fragments
    push(out, "ike_sa", "established-fragmented-request", v);
    let sc = Scenario { cbc: true, nat: true, ..scenario(Stage::Established, 1, 0) };
    let mut v = sc.bytes().to_vec();
    v.extend(record(RESPONSE, &[]));
    v.extend(record(0x80 | INFORMATIONAL, &[]));
    push(out, "ike_sa", "established-cbc-nat-dpd", v);

    // Payload chains of every kind for the codec.
    let misc = vec![
        Payload::IdI(fqdn("client.example.org")),
        Payload::Cert(CertPayload { encoding: 4, data: pki::GW.to_vec() }),
        Payload::CertReq(CertPayload { encoding: 4, data: vec![0x11; 20] }),
        Payload::Auth(AuthPayload { method: AuthMethod::DIGITAL_SIGNATURE, data: vec![0x22; 40] }),
        Payload::Notify(Notify::new(
            NotifyType::REDIRECT,
            vec![2, 16, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        )),
        Payload::Delete(Delete { protocol: ProtocolId::ESP, spis: vec![vec![1, 2, 3, 4], vec![5, 6, 7, 8]] }),
        Payload::VendorId(b"ikelink".to_vec()),
        Payload::TsI(vec![any_ts()]),
        Payload::Eap(vec![1, 1, 0, 5, 1]),
        Payload::Unknown { payload_type: 99, data: vec![1, 2, 3] },
    ];
    let (first, bytes) = chain(&misc);
    push(out, "wire_decode", "misc-chain", [&[first][..], &bytes].concat());
    let msg = Message {
        header: gw_header(),
        payloads: vec![Payload::Skf(wire::EncryptedFragment {
            first_inner: 42,
            offset: 0,
            fragment_number: 1,
            total_fragments: 2,
            body: vec![0x33; 48],
        })],
    };
    push(out, "wire_decode", "skf-message", msg.encode());
}

fn gw_header() -> wire::Header {
    wire::Header {
        spi_i: 1,
        spi_r: 2,
        next_payload: 0,
        version: 0x20,
        exchange: ExchangeType::IKE_AUTH,
        flags: wire::Flags { initiator: false, version: false, response: true },
        message_id: 1,
        length: 0,
    }
}

fn any_ts() -> wire::TrafficSelector {
    crate::ike::parse_cidr("0.0.0.0/0").map(|c| c.to_ts()).unwrap_or(wire::TrafficSelector {
        ip_protocol: 0,
        start_port: 0,
        end_port: 65535,
        addresses: wire::TsAddresses::V4 { start: [0, 0, 0, 0].into(), end: [255, 255, 255, 255].into() },
    })
}

fn esp_proposal(spi: u32) -> wire::Proposal {
    match crate::ike::EspProposal::parse("aes256gcm16") {
        Ok(p) => p.to_wire(1, spi, false),
        Err(e) => panic!("{e}"),
    }
}

fn delete_esp() -> Payload {
    Payload::Delete(Delete { protocol: ProtocolId::ESP, spis: vec![GATEWAY_CHILD_SPI.to_be_bytes().to_vec()] })
}

/// An EAP-MSCHAPv2 Challenge Request (RFC 2759, draft-kamath-pppext-eap-mschapv2 §2.1).
fn mschapv2_challenge(id: u8) -> Vec<u8> {
    let mut d = vec![1, id, 0, 0, 16];
    d.extend_from_slice(&[0x5b; 16]);
    d.extend_from_slice(b"gw");
    let len = d.len() as u16;
    d[2..4].copy_from_slice(&len.to_be_bytes());
    eap_request(id, 26, &d)
}

fn sha1(parts: &[&[u8]]) -> Vec<u8> {
    let mut c = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY);
    for p in parts {
        c.update(p);
    }
    c.finish().as_ref().to_vec()
}

/// The gateway's side of a whole EAP-MSCHAPv2 conversation with the fuzz configuration 0, answering the peer's
/// actual responses (RFC 2759 §8): Challenge, Success Request with the authenticator response, EAP-Success.
fn mschapv2_conversation() -> Vec<u8> {
    use md4::Digest;
    let (cfg, _) = eap_config(0);
    let mut peer = EapPeer::new(cfg);
    let mut rng = ChaCha20Rng::from_seed([0x45; 32]);
    let mut v = vec![0u8];
    let identity = eap_request(1, 1, &[]);
    let challenge = mschapv2_challenge(2);
    for p in [&identity, &challenge] {
        v.push(0);
        put_chunk(&mut v, p);
    }
    let _ = peer.handle(&identity, &mut rng);
    let Ok(EapAction::Respond(r)) = peer.handle(&challenge, &mut rng) else { return v };
    // Response Type-Data: OpCode, MS-CHAPv2-ID, MS-Length, Value-Size 49, Peer-Challenge, 8 reserved, NT-Response,
    // Flags, Name.
    let Some(value) = r.get(10..59) else { return v };
    let (peer_challenge, nt_response) = (&value[..16], &value[24..48]);
    let password: Vec<u8> = "correct horse battery staple".encode_utf16().flat_map(u16::to_le_bytes).collect();
    let hash = md4::Md4::digest(&password);
    let hash_hash = md4::Md4::digest(hash);
    let challenge_hash = sha1(&[peer_challenge, &[0x5b; 16], b"alice"]);
    let digest = sha1(&[&hash_hash, nt_response, b"Magic server to client signing constant"]);
    let digest = sha1(&[&digest, &challenge_hash[..8], b"Pad to make it do more than one iteration"]);
    let hex: String = digest.iter().map(|b| format!("{b:02X}")).collect();
    let msg = format!("S={hex} M=OK");
    let mut d = vec![3, 2, 0, 0];
    d.extend_from_slice(msg.as_bytes());
    let len = d.len() as u16;
    d[2..4].copy_from_slice(&len.to_be_bytes());
    for p in [eap_request(3, 26, &d), vec![3, 3, 0, 4]] {
        v.push(0);
        put_chunk(&mut v, &p);
    }
    v
}

fn eap(out: &mut Vec<Seed>) {
    push(out, "eap_peer", "mschapv2-success", mschapv2_conversation());
    let simple = |config: u8, packets: &[Vec<u8>]| {
        let mut v = vec![config];
        for p in packets {
            v.push(0);
            put_chunk(&mut v, p);
        }
        v
    };
    let md5 = eap_request(2, 4, &[16, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, b'g', b'w']);
    push(out, "eap_peer", "md5", simple(1, &[eap_request(1, 1, &[]), md5, vec![3, 2, 0, 4]]));
    push(out, "eap_peer", "notification-nak", simple(0, &[eap_request(1, 2, b"hello"), eap_request(2, 13, &[0x20])]));
    let failure = [4u8, 2, 0, 0, b'E', b'=', b'6', b'9', b'1', b' ', b'R', b'=', b'0'];
    let mut failure = failure.to_vec();
    let len = failure.len() as u16;
    failure[2..4].copy_from_slice(&len.to_be_bytes());
    push(
        out,
        "eap_peer",
        "mschapv2-failure",
        simple(0, &[mschapv2_challenge(1), eap_request(2, 26, &failure), vec![4, 3, 0, 4]]),
    );
    // EAP-TLS framing: Start, a first fragment with the L bit, the rest, an acknowledgement; with small
    // fragments of ours (bit 7) so that the ClientHello needs acknowledgements.
    let record = [0x16u8, 0x03, 0x03, 0x00, 0x04, 0x0e, 0x00, 0x00, 0x00];
    let mut first = vec![0xc0, 0, 0, 0, 18];
    first.extend_from_slice(&record);
    let mut second = vec![0x00];
    second.extend_from_slice(&record);
    for (config, typ, name) in [(2u8, 13u8, "tls"), (3, 21, "ttls"), (4, 25, "peap")] {
        let packets =
            [eap_request(1, typ, &[0x20]), eap_request(2, typ, &first), eap_request(3, typ, &second), vec![4, 4, 0, 4]];
        push(out, "eap_peer", &format!("{name}-fragments"), simple(config, &packets));
        let acks = [eap_request(1, typ, &[0x21]), eap_request(2, typ, &[0]), eap_request(3, typ, &[0])];
        push(out, "eap_peer", &format!("{name}-small-fragments"), simple(config | 0x80, &acks));
    }
}

fn cert(out: &mut Vec<Seed>) {
    let with = |mode: u8, rest: &[&[u8]]| [&[mode][..], &rest.concat()].concat();
    push(out, "cert_parse", "gw-cert", with(0, &[pki::GW]));
    push(out, "cert_parse", "ca-cert", with(0, &[pki::CA]));
    let mut chain = vec![1u8, 32 | 4, IdType::ID_FQDN.0];
    put_chunk(&mut chain, pki::GW_NAME.as_bytes());
    put_chunk(&mut chain, pki::CA);
    push(out, "cert_parse", "chain", chain);
    let mut pem = vec![4u8];
    put_chunk(&mut pem, pki::GW_PEM);
    pem.extend_from_slice(pki::GW_KEY_PEM);
    push(out, "cert_parse", "pem", pem);
    push(out, "cert_parse", "key-der", [&[4u8, 0, 0][..], pki::GW_KEY].concat());
    if let Ok(signer) = KeyPairSigner::from_pkcs8_der(pki::GW_KEY) {
        for (method, scheme, name) in [
            (AuthMethod::DIGITAL_SIGNATURE, SigScheme::EcdsaP256Sha256, "sig-rfc7427"),
            (AuthMethod::ECDSA_256, SigScheme::EcdsaP256Sha256, "sig-ecdsa256"),
        ] {
            if let Ok(sig) = sign_auth(&signer, method, scheme, b"signed octets") {
                let mut v = vec![5u8, method.0];
                put_chunk(&mut v, &signer.public_key_spki());
                v.extend_from_slice(&sig);
                push(out, "cert_parse", name, v);
            }
        }
    }
}

fn esp(out: &mut Vec<Seed>) {
    use super::esp_open::{params, SUITES};
    // An IPv4 header and a few bytes of UDP.
    let ip: Vec<u8> =
        [0x45, 0, 0, 0x20, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, 0x30, 0x39, 0, 53, 0, 12, 0, 0].to_vec();
    for (i, &(encr, integ)) in SUITES.iter().enumerate() {
        for esn in [false, true] {
            let b = i as u8 | u8::from(esn) << 4 | 1 << 5;
            let p = params(encr, integ, esn);
            let Ok(mut sa) = EspSa::outbound(&p) else { continue };
            let mut rng = ChaCha20Rng::from_seed([1; 32]);
            let mut pkt = vec![0u8; ip.len() + sa.overhead(ip.len())];
            let Ok(n) = sa.seal(&ip, &mut pkt, &mut rng) else { continue };
            pkt.truncate(n);
            let mut v = vec![b, 0];
            put_chunk(&mut v, &pkt);
            v.push(1);
            put_chunk(&mut v, &ip);
            // A forged packet: seq 5, IV, the IP packet with padding 1 2, pad length 2, next header 4.
            v.push(2);
            v.extend_from_slice(&5u32.to_be_bytes());
            if esn {
                v.extend_from_slice(&0u32.to_be_bytes());
            }
            v.extend_from_slice(&[7; 16][..if integ.is_some() { 16 } else { 8 }]);
            let mut plain = ip.clone();
            plain.extend_from_slice(&[1, 2, 2, 4]);
            put_chunk(&mut v, &plain);
            v.extend_from_slice(&[3, 16]);
            put_chunk(&mut v, &[0xff]);
            push(out, "esp_open", &format!("suite{i}{}", if esn { "-esn" } else { "" }), v);
        }
    }
}
