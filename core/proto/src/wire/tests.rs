//! Codec tests: round trips, hand-written RFC 7296 layouts, malformed input and a no-panic sweep.

use super::*;

fn header(exchange: ExchangeType) -> Header {
    Header {
        spi_i: 0x0102_0304_0506_0708,
        spi_r: 0,
        next_payload: 0,
        version: 0x20,
        exchange,
        flags: Flags { initiator: true, version: false, response: false },
        message_id: 0,
        length: 0,
    }
}

fn h(s: &str) -> Vec<u8> {
    let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(clean).expect("test hex")
}

/// Encode, decode, and check equality (with the header fields the encoder fills in).
fn roundtrip(msg: &Message) -> Vec<u8> {
    let bytes = msg.encode();
    let back = Message::decode(&bytes).expect("decode of encoded message");
    let mut expect = msg.clone();
    expect.header.length = bytes.len() as u32;
    expect.header.next_payload = msg.payloads.first().map_or(0, Payload::payload_type);
    assert_eq!(back, expect);
    assert_eq!(back.encode(), bytes, "re-encode is byte-identical");
    bytes
}

fn msg_with(payloads: Vec<Payload>) -> Message {
    Message { header: header(ExchangeType::IKE_AUTH), payloads }
}

fn ike_proposal() -> Proposal {
    Proposal {
        number: 1,
        protocol: ProtocolId::IKE,
        spi: vec![],
        transforms: vec![
            Transform { kind: TransformType::ENCR, id: encr::AES_GCM_16, key_len: Some(256) },
            Transform { kind: TransformType::ENCR, id: encr::CHACHA20_POLY1305, key_len: None },
            Transform { kind: TransformType::PRF, id: prf::HMAC_SHA2_256, key_len: None },
            Transform { kind: TransformType::PRF, id: prf::HMAC_SHA2_512, key_len: None },
            Transform { kind: TransformType::DH, id: dh::CURVE25519, key_len: None },
            Transform { kind: TransformType::DH, id: dh::ECP_256, key_len: None },
        ],
    }
}

fn esp_proposal(number: u8) -> Proposal {
    Proposal {
        number,
        protocol: ProtocolId::ESP,
        spi: vec![0xc0, 0xff, 0xee, 0x01],
        transforms: vec![
            Transform { kind: TransformType::ENCR, id: encr::AES_CBC, key_len: Some(128) },
            Transform { kind: TransformType::INTEG, id: integ::HMAC_SHA2_256_128, key_len: None },
            Transform { kind: TransformType::ESN, id: esn::NO, key_len: None },
        ],
    }
}

fn ts_v4() -> TrafficSelector {
    TrafficSelector {
        ip_protocol: 0,
        start_port: 0,
        end_port: 65535,
        addresses: TsAddresses::V4 { start: Ipv4Addr::new(10, 0, 0, 0), end: Ipv4Addr::new(10, 0, 255, 255) },
    }
}

fn ts_v6() -> TrafficSelector {
    TrafficSelector {
        ip_protocol: 17,
        start_port: 500,
        end_port: 4500,
        addresses: TsAddresses::V6 { start: Ipv6Addr::UNSPECIFIED, end: Ipv6Addr::from([0xff; 16]) },
    }
}

/// One of every plaintext payload kind.
fn all_plain_payloads() -> Vec<Payload> {
    vec![
        Payload::Sa(vec![esp_proposal(1), esp_proposal(2), ike_proposal()]),
        Payload::Ke(KePayload { group: dh::ECP_256, data: (0..64).collect() }),
        Payload::IdI(Identification { id_type: IdType::ID_FQDN, data: b"client.example.com".to_vec() }),
        Payload::IdR(Identification { id_type: IdType::ID_IPV4_ADDR, data: vec![192, 0, 2, 1] }),
        Payload::Cert(CertPayload { encoding: cert_encoding::X509_SIGNATURE, data: vec![0x30, 0x82, 1, 2, 3] }),
        Payload::CertReq(CertPayload { encoding: cert_encoding::X509_SIGNATURE, data: vec![0xaa; 20] }),
        Payload::Auth(AuthPayload { method: AuthMethod::SHARED_KEY_MIC, data: vec![0x55; 32] }),
        Payload::Nonce(vec![7; 32]),
        Payload::Notify(Notify::new(NotifyType::INITIAL_CONTACT, vec![])),
        Payload::Notify(Notify {
            protocol: ProtocolId::ESP.0,
            spi: vec![1, 2, 3, 4],
            notify_type: NotifyType::REKEY_SA,
            data: vec![],
        }),
        Payload::Delete(Delete { protocol: ProtocolId::IKE, spis: vec![] }),
        Payload::Delete(Delete { protocol: ProtocolId::ESP, spis: vec![vec![1, 2, 3, 4], vec![5, 6, 7, 8]] }),
        Payload::VendorId(b"ikelink".to_vec()),
        Payload::TsI(vec![ts_v4(), ts_v6()]),
        Payload::TsR(vec![ts_v4()]),
        Payload::Cp(ConfigPayload {
            cfg_type: CfgType::CFG_REPLY,
            attributes: vec![
                ConfigAttribute { attr_type: cfg_attr::INTERNAL_IP4_ADDRESS, value: vec![10, 1, 2, 3] },
                ConfigAttribute { attr_type: cfg_attr::INTERNAL_IP4_DNS, value: vec![10, 0, 0, 53] },
                ConfigAttribute { attr_type: cfg_attr::INTERNAL_IP6_ADDRESS, value: vec![] },
            ],
        }),
        Payload::Eap(vec![1, 7, 0, 9, 1, b'u', b's', b'e', b'r']),
        Payload::Unknown { payload_type: 49, data: vec![1, 2, 3] },
    ]
}

// ------------------------------------------------------------------------------------------------
// Round trips
// ------------------------------------------------------------------------------------------------

#[test]
fn header_roundtrip_and_layout() {
    let hd = Header {
        spi_i: 0x1122_3344_5566_7788,
        spi_r: 0x99aa_bbcc_ddee_ff00,
        next_payload: 46,
        version: 0x20,
        exchange: ExchangeType::INFORMATIONAL,
        flags: Flags { initiator: true, version: false, response: true },
        message_id: 7,
        length: 0x1234,
    };
    let mut out = Vec::new();
    hd.encode(&mut out);
    assert_eq!(out.len(), HEADER_LEN);
    assert_eq!(out, h("1122334455667788 99aabbccddeeff00 2e 20 25 28 00000007 00001234"));
    assert_eq!(Header::decode(&out).unwrap(), hd);

    // Each flag bit on its own, and reserved flag bits are ignored on receipt.
    out[19] = 0x10 | 0x01 | 0x80;
    let d = Header::decode(&out).unwrap();
    assert_eq!(d.flags, Flags { initiator: false, version: true, response: false });
    // Minor version is not checked.
    out[17] = 0x21;
    assert_eq!(Header::decode(&out).unwrap().version, 0x21);
}

#[test]
fn every_payload_kind_roundtrips_alone() {
    for p in all_plain_payloads() {
        roundtrip(&msg_with(vec![p]));
    }
}

#[test]
fn all_payload_kinds_roundtrip_in_one_chain() {
    let bytes = roundtrip(&msg_with(all_plain_payloads()));
    assert_eq!(bytes[16], payload_type::SA);
}

#[test]
fn empty_message_roundtrips() {
    let bytes = roundtrip(&msg_with(vec![]));
    assert_eq!(bytes.len(), HEADER_LEN);
    assert_eq!(bytes[16], 0);
}

#[test]
fn sk_roundtrip_and_prefix() {
    let body: Vec<u8> = (0..80u8).collect();
    let msg = msg_with(vec![
        Payload::Notify(Notify::new(NotifyType::COOKIE, vec![9; 8])),
        Payload::Sk(Encrypted { first_inner: payload_type::IDI, offset: 28 + 4 + 4 + 8, body: body.clone() }),
    ]);
    let bytes = roundtrip(&msg);

    // The prefix builder produces exactly the same header + SK header as the full encoder.
    let alone =
        msg_with(vec![Payload::Sk(Encrypted { first_inner: payload_type::IDI, offset: 28, body: body.clone() })]);
    let full = roundtrip(&alone);
    let mut built = encode_sk_prefix(&alone.header, payload_type::IDI, body.len());
    assert_eq!(built.len(), HEADER_LEN + 4);
    built.extend_from_slice(&body);
    assert_eq!(built, full);
    let dec = Message::decode(&built).unwrap();
    assert_eq!(dec.header.next_payload, payload_type::SK);
    match &dec.payloads[..] {
        [Payload::Sk(e)] => {
            assert_eq!(e.offset, HEADER_LEN);
            assert_eq!(e.first_inner, payload_type::IDI);
            assert_eq!(e.body, body);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_ne!(bytes, full);
}

#[test]
fn skf_roundtrip_and_prefix() {
    let body = vec![0xab; 40];
    let frag = EncryptedFragment {
        first_inner: payload_type::IDI,
        offset: 28,
        fragment_number: 1,
        total_fragments: 3,
        body: body.clone(),
    };
    let msg = msg_with(vec![Payload::Skf(frag)]);
    let full = roundtrip(&msg);
    let mut built = encode_skf_prefix(&msg.header, payload_type::IDI, 1, 3, body.len());
    assert_eq!(built.len(), HEADER_LEN + 8);
    assert_eq!(&built[28..36], &h("23 00 0030 0001 0003"));
    built.extend_from_slice(&body);
    assert_eq!(built, full);
    assert_eq!(u32::from_be_bytes(built[24..28].try_into().unwrap()) as usize, built.len());
}

#[test]
fn inner_chain_roundtrip_with_base_offset() {
    let inner = vec![
        Payload::IdI(Identification { id_type: IdType::ID_RFC822_ADDR, data: b"a@b.c".to_vec() }),
        Payload::Auth(AuthPayload { method: AuthMethod::DIGITAL_SIGNATURE, data: vec![1; 70] }),
        Payload::Sa(vec![esp_proposal(1)]),
        Payload::TsI(vec![ts_v4()]),
        Payload::TsR(vec![ts_v6()]),
    ];
    let mut out = Vec::new();
    let first = encode_chain(&inner, &mut out);
    assert_eq!(first, payload_type::IDI);
    assert_eq!(decode_chain(first, &out, 1000).unwrap(), inner);
    let mut empty = Vec::new();
    assert_eq!(encode_chain(&[], &mut empty), 0);
    assert!(empty.is_empty());
    assert_eq!(decode_chain(0, &[], 0).unwrap(), vec![]);
}

#[test]
fn ike_sa_init_request() {
    let nat = |t| Payload::Notify(Notify::new(t, vec![0x5a; 20]));
    let msg = Message {
        header: header(ExchangeType::IKE_SA_INIT),
        payloads: vec![
            Payload::Sa(vec![ike_proposal()]),
            Payload::Ke(KePayload { group: dh::CURVE25519, data: vec![0x42; 32] }),
            Payload::Nonce(vec![0x13; 32]),
            nat(NotifyType::NAT_DETECTION_SOURCE_IP),
            nat(NotifyType::NAT_DETECTION_DESTINATION_IP),
            Payload::Notify(Notify::new(NotifyType::IKEV2_FRAGMENTATION_SUPPORTED, vec![])),
            Payload::Notify(Notify::new(NotifyType::SIGNATURE_HASH_ALGORITHMS, vec![0, 2, 0, 3, 0, 4])),
        ],
    };
    let bytes = roundtrip(&msg);
    // Header: I flag, version 2.0, exchange 34, first payload SA.
    assert_eq!(&bytes[16..20], &[33, 0x20, 34, 0x08]);
    // SA payload: next = KE, length = 4 + proposal (8 + 6 transforms: one with key length).
    let sa_len = 4 + 8 + 12 + 5 * 8;
    assert_eq!(&bytes[28..32], &[34, 0, 0, sa_len as u8]);
    // Proposal header: last, reserved, length, #1, IKE, SPI size 0, 6 transforms.
    assert_eq!(&bytes[32..40], &[0, 0, 0, (sa_len - 4) as u8, 1, 1, 0, 6]);
    // First transform: more, len 12, ENCR, AES-GCM-16, key length attribute 0x800e 0x0100.
    assert_eq!(&bytes[40..52], &h("03 00 000c 01 00 0014 800e 0100"));
    // KE payload follows: next = Nonce, len 40, group 31.
    let ke = 28 + sa_len;
    assert_eq!(&bytes[ke..ke + 8], &h("28 00 0028 001f 0000"));
    // Last notify has next payload 0.
    let last = bytes.len() - (8 + 6);
    assert_eq!(&bytes[last..last + 8], &h("00 00 000e 00 00 402f"));
}

// ------------------------------------------------------------------------------------------------
// Hand-written byte strings (RFC 7296 §3 layouts)
// ------------------------------------------------------------------------------------------------

#[test]
fn decode_hand_written_message() {
    let bytes = h(concat!(
        // IKE header: SPIi, SPIr, next=SA(33), ver 2.0, IKE_SA_INIT, flags R, msg id 0, length 0x80 = 128.
        "0102030405060708 a1a2a3a4a5a6a7a8 21 20 22 20 00000000 00000080",
        // SA: next=KE, len 4+28+20 = 52 (0x34)
        "22 00 0034",
        // proposal 1 (more follows): len 28, #1, IKE, SPI size 0, 2 transforms
        "02 00 001c 01 01 00 02",
        // transform ENCR AES-CBC with key length 256
        "03 00 000c 01 00 000c 800e 0100",
        // transform DH 19, last
        "00 00 0008 04 00 0013",
        // proposal 2 (last): len 20, #2, ESP, SPI size 4, 1 transform, SPI
        "00 00 0014 02 03 04 01 deadbeef",
        // transform ESN no, last
        "00 00 0008 05 00 0000",
        // KE: next=Notify, len 4+4+4 = 12, group 19, reserved, data
        "29 00 000c 0013 0000 01020304",
        // Notify: next=TSi, len 8+0+4 = 12, protocol 0, spi size 0, COOKIE, data
        "2c 00 000c 00 00 4006 cafebabe",
        // TSi: next=none, len 4+4+16 = 24, 1 selector, IPv4 range tcp 80-80 192.0.2.0-192.0.2.255
        "00 00 0018 01 000000 07 06 0010 0050 0050 c0000200 c00002ff",
    ));
    assert_eq!(bytes.len(), 0x80);
    let m = Message::decode(&bytes).unwrap();
    assert_eq!(
        m.header,
        Header {
            spi_i: 0x0102030405060708,
            spi_r: 0xa1a2a3a4a5a6a7a8,
            next_payload: 33,
            version: 0x20,
            exchange: ExchangeType::IKE_SA_INIT,
            flags: Flags { initiator: false, version: false, response: true },
            message_id: 0,
            length: 0x80,
        }
    );
    let expect = vec![
        Payload::Sa(vec![
            Proposal {
                number: 1,
                protocol: ProtocolId::IKE,
                spi: vec![],
                transforms: vec![
                    Transform { kind: TransformType::ENCR, id: encr::AES_CBC, key_len: Some(256) },
                    Transform { kind: TransformType::DH, id: dh::ECP_256, key_len: None },
                ],
            },
            Proposal {
                number: 2,
                protocol: ProtocolId::ESP,
                spi: vec![0xde, 0xad, 0xbe, 0xef],
                transforms: vec![Transform { kind: TransformType::ESN, id: esn::NO, key_len: None }],
            },
        ]),
        Payload::Ke(KePayload { group: 19, data: vec![1, 2, 3, 4] }),
        Payload::Notify(Notify::new(NotifyType::COOKIE, vec![0xca, 0xfe, 0xba, 0xbe])),
        Payload::TsI(vec![TrafficSelector {
            ip_protocol: 6,
            start_port: 80,
            end_port: 80,
            addresses: TsAddresses::V4 { start: Ipv4Addr::new(192, 0, 2, 0), end: Ipv4Addr::new(192, 0, 2, 255) },
        }]),
    ];
    assert_eq!(m.payloads, expect);
    // And the encoder produces exactly these bytes.
    assert_eq!(m.encode(), bytes);
}

#[test]
fn decode_hand_written_misc_payloads() {
    // ID_FQDN, AUTH, CERTREQ, Delete(ESP), CP request, EAP, Vendor ID as an inner chain.
    let chain = h(concat!(
        // IDi: next=AUTH(39), len 4+4+3, FQDN "a.b"
        "27 00 000b 02 000000 612e62",
        // AUTH: next=CERTREQ(38), len 4+4+2, PSK MIC
        "26 00 000a 02 000000 aabb",
        // CERTREQ: next=Delete(42), len 4+1+2
        "2a 00 0007 04 1122",
        // Delete: next=CP(47), len 4+4+8, ESP, spi size 4, 2 SPIs
        "2f 00 0010 03 04 0002 00000001 00000002",
        // CP: next=EAP(48), len 4+4+4+4, CFG_REQUEST, INTERNAL_IP4_ADDRESS (empty), R bit set on DNS (ignored)
        "30 00 0010 01 000000 0001 0000 8003 0000",
        // EAP: next=Vendor(43), len 4+5, Response id 7 len 5, type Identity
        "2b 00 0009 02 07 0005 01",
        // Vendor ID: last, critical bit set on a known payload (ignored), len 4+2
        "00 80 0006 abcd",
    ));
    let p = decode_chain(payload_type::IDI, &chain, 0).unwrap();
    assert_eq!(
        p,
        vec![
            Payload::IdI(Identification { id_type: IdType::ID_FQDN, data: b"a.b".to_vec() }),
            Payload::Auth(AuthPayload { method: AuthMethod::SHARED_KEY_MIC, data: vec![0xaa, 0xbb] }),
            Payload::CertReq(CertPayload { encoding: 4, data: vec![0x11, 0x22] }),
            Payload::Delete(Delete { protocol: ProtocolId::ESP, spis: vec![vec![0, 0, 0, 1], vec![0, 0, 0, 2]] }),
            Payload::Cp(ConfigPayload {
                cfg_type: CfgType::CFG_REQUEST,
                attributes: vec![
                    ConfigAttribute { attr_type: cfg_attr::INTERNAL_IP4_ADDRESS, value: vec![] },
                    ConfigAttribute { attr_type: cfg_attr::INTERNAL_IP4_DNS, value: vec![] },
                ],
            }),
            Payload::Eap(vec![2, 7, 0, 5, 1]),
            Payload::VendorId(vec![0xab, 0xcd]),
        ]
    );
}

#[test]
fn decode_hand_written_sk_and_skf() {
    // Header + SK (first inner IDi) with a 6-byte body.
    let bytes = h("0000000000000001 0000000000000002 2e 20 23 08 00000001 00000026 23 00 000a 010203040506");
    let m = Message::decode(&bytes).unwrap();
    assert_eq!(m.payloads, vec![Payload::Sk(Encrypted { first_inner: 35, offset: 28, body: vec![1, 2, 3, 4, 5, 6] })]);
    // Header + SKF fragment 2 of 2 (next payload 0) with a 3-byte body.
    let bytes = h("0000000000000001 0000000000000002 35 20 23 08 00000001 00000027 00 00 000b 0002 0002 aabbcc");
    let m = Message::decode(&bytes).unwrap();
    assert_eq!(
        m.payloads,
        vec![Payload::Skf(EncryptedFragment {
            first_inner: 0,
            offset: 28,
            fragment_number: 2,
            total_fragments: 2,
            body: vec![0xaa, 0xbb, 0xcc],
        })]
    );
    // SK after a plaintext payload: offset points at its generic header.
    let chain = h("2e 00 0004 23 00 0006 abcd");
    match &decode_chain(payload_type::VENDOR_ID, &chain, 28).unwrap()[..] {
        [Payload::VendorId(v), Payload::Sk(e)] => {
            assert!(v.is_empty());
            assert_eq!(e.offset, 32);
            assert_eq!(e.body, vec![0xab, 0xcd]);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn transform_attributes_unknown_are_skipped() {
    // Transform with an unknown TLV attribute (type 0x0001, 3 bytes), key length, unknown TV attribute.
    let sa = h(concat!("00 00 001f 01 01 00 01", "00 00 0017 01 00 000c 0001 0003 aabbcc 800e 0080 8011 1234",));
    let p = decode_chain(payload_type::SA, &[&h("00 00 0023")[..], &sa].concat(), 0).unwrap();
    assert_eq!(
        p,
        vec![Payload::Sa(vec![Proposal {
            number: 1,
            protocol: ProtocolId::IKE,
            spi: vec![],
            transforms: vec![Transform { kind: TransformType::ENCR, id: 12, key_len: Some(128) }],
        }])]
    );
}

#[test]
fn unknown_non_critical_payload_is_kept() {
    let chain = h("28 00 0007 010203 00 00 0014 000102030405060708090a0b0c0d0e0f");
    let p = decode_chain(60, &chain, 0).unwrap();
    assert_eq!(p[0], Payload::Unknown { payload_type: 60, data: vec![1, 2, 3] });
    assert_eq!(p[1], Payload::Nonce((0..16).collect()));
}

// ------------------------------------------------------------------------------------------------
// Malformed input
// ------------------------------------------------------------------------------------------------

fn valid_init() -> Vec<u8> {
    let msg = Message {
        header: header(ExchangeType::IKE_SA_INIT),
        payloads: vec![
            Payload::Sa(vec![ike_proposal(), esp_proposal(2)]),
            Payload::Ke(KePayload { group: dh::CURVE25519, data: vec![0x42; 32] }),
            Payload::Nonce(vec![0x13; 32]),
            Payload::Notify(Notify::new(NotifyType::NAT_DETECTION_SOURCE_IP, vec![0x5a; 20])),
            Payload::TsI(vec![ts_v4(), ts_v6()]),
            Payload::Cp(ConfigPayload {
                cfg_type: CfgType::CFG_REQUEST,
                attributes: vec![ConfigAttribute { attr_type: 1, value: vec![] }],
            }),
            Payload::Delete(Delete { protocol: ProtocolId::ESP, spis: vec![vec![1, 2, 3, 4]] }),
            Payload::Eap(vec![1, 7, 0, 5, 1]),
        ],
    };
    msg.encode()
}

/// A message with the given first payload type and chain, with correct header length.
fn wrap(first: u8, chain: &[u8]) -> Vec<u8> {
    let mut hd = header(ExchangeType::IKE_AUTH);
    hd.next_payload = first;
    hd.length = (HEADER_LEN + chain.len()) as u32;
    let mut out = Vec::new();
    hd.encode(&mut out);
    out.extend_from_slice(chain);
    out
}

fn err(bytes: &[u8]) -> WireError {
    Message::decode(bytes).expect_err("must be rejected")
}

#[test]
fn truncated_header() {
    let b = valid_init();
    assert_eq!(Header::decode(&b[..27]), Err(WireError::Truncated { need: 28, have: 27 }));
    assert_eq!(err(&b[..10]), WireError::Truncated { need: 28, have: 10 });
    assert_eq!(err(&[]), WireError::Truncated { need: 28, have: 0 });
}

#[test]
fn wrong_header_length() {
    let b = valid_init();
    // Message shorter than the header claims.
    assert!(matches!(err(&b[..b.len() - 1]), WireError::BadLength { what: "IKE header", .. }));
    // Longer.
    let mut longer = b.clone();
    longer.push(0);
    assert!(matches!(err(&longer), WireError::BadLength { .. }));
    // Length field smaller than the header itself.
    let mut small = b[..28].to_vec();
    small[24..28].copy_from_slice(&20u32.to_be_bytes());
    assert!(matches!(err(&small), WireError::BadLength { .. }));
}

#[test]
fn version_1_header() {
    let mut b = valid_init();
    b[17] = 0x10;
    assert_eq!(err(&b), WireError::UnsupportedVersion(1));
    b[17] = 0x30;
    assert_eq!(Header::decode(&b), Err(WireError::UnsupportedVersion(3)));
}

#[test]
fn payload_length_below_four() {
    for len in 0..4u8 {
        let b = wrap(payload_type::VENDOR_ID, &[0, 0, 0, len]);
        assert_eq!(err(&b), WireError::BadLength { what: "payload", len: len as usize });
    }
}

#[test]
fn payload_length_past_end() {
    let b = wrap(payload_type::VENDOR_ID, &h("00 00 0009 0102 03"));
    assert!(matches!(err(&b), WireError::Truncated { .. }));
    // Truncated generic header.
    let b = wrap(payload_type::VENDOR_ID, &h("00 00 00"));
    assert!(matches!(err(&b), WireError::Truncated { .. }));
    // Chain announces a next payload but the message ends.
    let b = wrap(payload_type::VENDOR_ID, &h("28 00 0004"));
    assert!(matches!(err(&b), WireError::Truncated { .. }));
}

#[test]
fn trailing_data() {
    let b = wrap(payload_type::VENDOR_ID, &h("00 00 0005 01 ffff"));
    assert_eq!(err(&b), WireError::TrailingData(2));
    // Bytes but no payload at all.
    let b = wrap(0, &h("00"));
    assert_eq!(err(&b), WireError::TrailingData(1));
}

#[test]
fn unknown_critical_payload() {
    let b = wrap(60, &h("00 80 0005 01"));
    assert_eq!(err(&b), WireError::UnknownCritical(60));
    // Same in the middle of a chain.
    let b = wrap(payload_type::VENDOR_ID, &h("3c 00 0004 00 81 0004"));
    assert_eq!(err(&b), WireError::UnknownCritical(60));
}

#[test]
fn sk_not_last() {
    let b = wrap(payload_type::SK, &h("23 00 0006 aabb 00 00 0004"));
    assert_eq!(err(&b), WireError::EncryptedNotLast);
    let b = wrap(payload_type::SKF, &h("23 00 000a 0001 0001 aabb 00 00 0004"));
    assert_eq!(err(&b), WireError::EncryptedNotLast);
}

#[test]
fn skf_fragment_numbers() {
    for (n, t) in [(0u16, 1u16), (1, 0), (3, 2)] {
        let mut chain = h("00 00 000a");
        chain.extend_from_slice(&n.to_be_bytes());
        chain.extend_from_slice(&t.to_be_bytes());
        chain.extend_from_slice(&[1, 2]);
        assert!(matches!(err(&wrap(payload_type::SKF, &chain)), WireError::Invalid { .. }), "{n}/{t}");
    }
    let b = wrap(payload_type::SKF, &h("00 00 0006 0001"));
    assert!(matches!(err(&b), WireError::Truncated { .. }));
}

fn sa_err(body: &str) -> WireError {
    let body = h(body);
    let mut chain = vec![0, 0];
    chain.extend_from_slice(&((body.len() + 4) as u16).to_be_bytes());
    chain.extend_from_slice(&body);
    err(&wrap(payload_type::SA, &chain))
}

#[test]
fn proposal_and_transform_inconsistencies() {
    // Valid baseline: one proposal, one transform.
    let ok = "00 00 0010 01 01 00 01 00 00 0008 01 00 000c";
    assert!(Message::decode(&wrap(payload_type::SA, &[&h("00 00 0014")[..], &h(ok)].concat())).is_ok());

    // Empty SA payload.
    assert!(matches!(sa_err(""), WireError::Truncated { .. }));
    // Proposal length < 8.
    assert_eq!(sa_err("00 00 0007 01 01 00 00"), WireError::BadLength { what: "proposal", len: 7 });
    // Proposal length past the SA payload.
    assert!(matches!(sa_err("00 00 0014 01 01 00 01 00 00 0008 01 00 000c"), WireError::Truncated { .. }));
    // Proposal length shorter than its transforms.
    assert!(matches!(sa_err("00 00 000c 01 01 00 01 00 00 0008 01 00 000c"), WireError::Truncated { .. }));
    // Transform count says 2 but only one present.
    assert!(matches!(sa_err("00 00 0010 01 01 00 02 03 00 0008 01 00 000c"), WireError::Truncated { .. }));
    // Transform count says 1 but two present (and the first claims "more").
    assert!(matches!(
        sa_err("00 00 0018 01 01 00 01 03 00 0008 01 00 000c 00 00 0008 02 00 0005"),
        WireError::Invalid { .. }
    ));
    // Transform count says 1, last flag fine, but extra bytes after it inside the proposal.
    assert!(matches!(sa_err("00 00 0012 01 01 00 01 00 00 0008 01 00 000c ffff"), WireError::BadLength { .. }));
    // Last transform marked "more".
    assert!(matches!(sa_err("00 00 0010 01 01 00 01 03 00 0008 01 00 000c"), WireError::Invalid { .. }));
    // Transform length < 8.
    assert_eq!(
        sa_err("00 00 0010 01 01 00 01 00 00 0007 01 00 000c"),
        WireError::BadLength { what: "transform", len: 7 }
    );
    // Transform length past the proposal.
    assert!(matches!(sa_err("00 00 0010 01 01 00 01 00 00 000c 01 00 000c"), WireError::Truncated { .. }));
    // SPI size past the proposal.
    assert!(matches!(sa_err("00 00 0010 01 03 10 01 00 00 0008 01 00 000c"), WireError::Truncated { .. }));
    // Bad Last Substruc value on a proposal.
    assert!(matches!(sa_err("05 00 0010 01 01 00 01 00 00 0008 01 00 000c"), WireError::Invalid { .. }));
    // "More proposals" but none follow.
    assert!(matches!(sa_err("02 00 0010 01 01 00 01 00 00 0008 01 00 000c"), WireError::Invalid { .. }));
    // Last proposal followed by more bytes.
    assert!(matches!(sa_err("00 00 0010 01 01 00 01 00 00 0008 01 00 000c 0000"), WireError::TrailingData(2)));
    // Malformed attributes: truncated TV, TLV value past the end, Key Length in TLV form, duplicate Key Length.
    assert!(matches!(sa_err("00 00 0012 01 01 00 01 00 00 000a 01 00 000c 800e"), WireError::Truncated { .. }));
    assert!(matches!(sa_err("00 00 0014 01 01 00 01 00 00 000c 01 00 000c 0001 0004"), WireError::Truncated { .. }));
    assert!(matches!(sa_err("00 00 0016 01 01 00 01 00 00 000e 01 00 000c 000e 0002 0100"), WireError::Invalid { .. }));
    assert!(matches!(
        sa_err("00 00 0018 01 01 00 01 00 00 0010 01 00 000c 800e 0080 800e 0100"),
        WireError::Invalid { .. }
    ));
}

fn payload_err(ptype: u8, body: &str) -> WireError {
    let body = h(body);
    let mut chain = vec![0, 0];
    chain.extend_from_slice(&((body.len() + 4) as u16).to_be_bytes());
    chain.extend_from_slice(&body);
    err(&wrap(ptype, &chain))
}

#[test]
fn traffic_selector_errors() {
    use payload_type::TSI;
    // IPv4 selector with length 40.
    assert_eq!(
        payload_err(TSI, "01 000000 07 00 0028 0000 ffff 0a000000 0a0000ff"),
        WireError::BadLength { what: "traffic selector", len: 40 }
    );
    // IPv6 selector with length 16.
    assert!(matches!(
        payload_err(TSI, "01 000000 08 00 0010 0000 ffff 0a000000 0a0000ff"),
        WireError::BadLength { len: 16, .. }
    ));
    // Unknown TS type.
    assert!(matches!(
        payload_err(TSI, "01 000000 09 00 0010 0000 ffff 0a000000 0a0000ff"),
        WireError::Invalid { what: "traffic selector", .. }
    ));
    // Count says 2, one present.
    assert!(matches!(
        payload_err(TSI, "02 000000 07 00 0010 0000 ffff 0a000000 0a0000ff"),
        WireError::Truncated { .. }
    ));
    // Count says 1, extra bytes.
    assert!(matches!(
        payload_err(TSI, "01 000000 07 00 0010 0000 ffff 0a000000 0a0000ff 00"),
        WireError::BadLength { .. }
    ));
    // Selector truncated.
    assert!(matches!(payload_err(TSI, "01 000000 07 00 0010 0000 ffff 0a00"), WireError::Truncated { .. }));
}

#[test]
fn eap_length_mismatch() {
    use payload_type::EAP;
    assert_eq!(payload_err(EAP, "01 07 0006 01"), WireError::BadLength { what: "EAP message", len: 6 });
    assert!(matches!(payload_err(EAP, "01 07 0004 01"), WireError::BadLength { len: 4, .. }));
    assert!(matches!(payload_err(EAP, "01 07 00"), WireError::Truncated { .. }));
}

#[test]
fn nonce_length_bounds() {
    let short = "00".repeat(15);
    let long = "00".repeat(257);
    assert!(matches!(payload_err(payload_type::NONCE, &short), WireError::Invalid { .. }));
    assert!(matches!(payload_err(payload_type::NONCE, &long), WireError::Invalid { .. }));
    assert!(Message::decode(&wrap(payload_type::NONCE, &h(&format!("00 00 0014 {}", "00".repeat(16))))).is_ok());
    let max = format!("00 00 0104 {}", "00".repeat(256));
    assert!(Message::decode(&wrap(payload_type::NONCE, &h(&max))).is_ok());
}

#[test]
fn short_fixed_parts() {
    use payload_type as pt;
    for (t, body) in [
        (pt::KE, "0013 00"),
        (pt::IDI, "02 0000"),
        (pt::IDR, ""),
        (pt::CERT, ""),
        (pt::CERTREQ, ""),
        (pt::AUTH, "02 00"),
        (pt::NOTIFY, "00 00 40"),
        (pt::NOTIFY, "03 04 4009 0102"), // SPI past end
        (pt::DELETE, "03 04 00"),
        (pt::TSR, "01 00"),
        (pt::CP, "01 0000"),
        (pt::CP, "01 000000 0001 0004 0a00"), // attribute value past end
        (pt::CP, "01 000000 0001 00"),        // attribute header truncated
    ] {
        assert!(matches!(payload_err(t, body), WireError::Truncated { .. }), "type {t} body {body}");
    }
}

#[test]
fn delete_inconsistencies() {
    use payload_type::DELETE;
    // SPI count does not match the remaining bytes.
    assert!(matches!(payload_err(DELETE, "03 04 0002 00000001"), WireError::BadLength { .. }));
    assert!(matches!(payload_err(DELETE, "03 04 0001 00000001 00"), WireError::BadLength { .. }));
    // SPI size 0 with a count or data.
    assert!(matches!(payload_err(DELETE, "01 00 0001"), WireError::Invalid { .. }));
    assert!(matches!(payload_err(DELETE, "01 00 0000 00"), WireError::Invalid { .. }));
    // IKE delete is fine.
    assert!(Message::decode(&wrap(DELETE, &h("00 00 0008 01 00 0000"))).is_ok());
}

// ------------------------------------------------------------------------------------------------
// No panics on arbitrary corruption
// ------------------------------------------------------------------------------------------------

/// xorshift64* — deterministic, test only.
struct TestRng(u64);

impl TestRng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn fix_length(b: &mut [u8]) {
    if b.len() >= HEADER_LEN {
        let len = b.len() as u32;
        b[24..28].copy_from_slice(&len.to_be_bytes());
    }
}

#[test]
fn no_panic_on_truncation_and_corruption() {
    let mut seeds = vec![valid_init(), msg_with(all_plain_payloads()).encode()];
    let mut sk = msg_with(vec![Payload::Nonce(vec![1; 16])]);
    sk.payloads.push(Payload::Sk(Encrypted { first_inner: payload_type::IDI, offset: 0, body: vec![9; 40] }));
    seeds.push(sk.encode());

    for seed in &seeds {
        // Every prefix, as is and with the header length patched to match.
        for n in 0..=seed.len() {
            let mut b = seed[..n].to_vec();
            let _ = Message::decode(&b);
            fix_length(&mut b);
            let _ = Message::decode(&b);
            if n >= HEADER_LEN {
                let _ = decode_chain(seed[16], &b[HEADER_LEN..], HEADER_LEN);
            }
        }
    }

    let mut rng = TestRng(0x9e37_79b9_7f4a_7c15);
    for i in 0..2000 {
        let seed = &seeds[i % seeds.len()];
        let mut b = seed.clone();
        for _ in 0..1 + rng.below(6) {
            let pos = rng.below(b.len());
            b[pos] ^= 1 << rng.below(8);
        }
        if rng.below(4) == 0 {
            let pos = rng.below(b.len());
            b[pos] = rng.next() as u8;
        }
        if rng.below(3) == 0 {
            let cut = rng.below(b.len() + 1);
            b.truncate(cut);
        }
        if rng.below(2) == 0 {
            fix_length(&mut b);
        }
        // Keep the version valid most of the time so the payload decoders are exercised.
        if b.len() > 17 && rng.below(8) != 0 {
            b[17] = 0x20;
        }
        if let Ok(m) = Message::decode(&b) {
            // Whatever decodes must re-encode and decode to the same thing (modulo ignored bits).
            let again = Message::decode(&m.encode()).expect("re-decode of re-encoded message");
            assert_eq!(again.payloads, m.payloads);
        }
        if b.len() >= HEADER_LEN {
            let _ = decode_chain(rng.next() as u8, &b[HEADER_LEN..], HEADER_LEN);
        }
    }
}
