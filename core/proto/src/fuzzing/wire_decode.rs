//! `wire_decode`: the IKE message codec (RFC 7296 §3, RFC 7383 §2.5) and the decoders that read payload contents
//! (identities, traffic selectors, REDIRECT data, proposals against our offers).

use std::net::IpAddr;

use crate::ike::{
    display_identity,
    proposal::{select_esp, select_ike},
    ts_contains, ts_to_cidrs, EspProposal, GatewayIdentity, IkeProposal,
};
use crate::wire::{
    decode_chain, encode_chain, Header, Message, NotifyType, Payload, TrafficSelector, TsAddresses, HEADER_LEN,
};

/// The bytes as a whole message, as a header, and (first byte = type of the first payload) as a payload chain.
/// What decodes must encode and decode again to the same thing.
pub fn wire_decode(data: &[u8]) {
    let _ = Header::decode(data);
    if let Ok(msg) = Message::decode(data) {
        look_into(&msg.payloads);
        let again = Message::decode(&msg.encode());
        match again {
            Ok(again) => {
                let mut expect = msg.clone();
                expect.header.length = again.header.length;
                assert_eq!(normalized(again.payloads), normalized(expect.payloads), "message re-encoding");
            }
            Err(e) => panic!("a decoded message does not decode after encoding: {e}"),
        }
    }
    if let Some((&first, rest)) = data.split_first() {
        if let Ok(payloads) = decode_chain(first, rest, HEADER_LEN) {
            look_into(&payloads);
            let mut bytes = Vec::new();
            let first = encode_chain(&payloads, &mut bytes);
            match decode_chain(first, &bytes, HEADER_LEN) {
                Ok(again) => assert_eq!(normalized(again), normalized(payloads), "chain re-encoding"),
                Err(e) => panic!("a decoded payload chain does not decode after encoding: {e}"),
            }
        }
    }
}

/// Payloads with the SK/SKF offsets cleared: they depend on how long the payloads before them encode.
fn normalized(mut payloads: Vec<Payload>) -> Vec<Payload> {
    for p in &mut payloads {
        match p {
            Payload::Sk(e) => e.offset = 0,
            Payload::Skf(f) => f.offset = 0,
            _ => {}
        }
    }
    payloads
}

/// What the IKE layer reads out of payloads after decoding.
fn look_into(payloads: &[Payload]) {
    let (ike, esp) = (IkeProposal::defaults(), EspProposal::defaults());
    for p in payloads {
        match p {
            Payload::IdI(id) | Payload::IdR(id) => {
                let _ = display_identity(id);
                let _ = id.auth_octets();
            }
            Payload::TsI(list) | Payload::TsR(list) => list.iter().for_each(check_cidrs),
            Payload::Sa(proposals) => {
                let _ = select_ike(&ike, proposals);
                let _ = select_esp(&esp, proposals, false);
                let _ = select_esp(&esp, proposals, true);
            }
            Payload::Notify(n) => {
                let _ = n.notify_type.name();
                if matches!(n.notify_type, NotifyType::REDIRECT | NotifyType::REDIRECTED_FROM) {
                    if let Ok((gw, _nonce)) = GatewayIdentity::parse_redirect(&n.data) {
                        let _ = GatewayIdentity::parse_redirect(&gw.encode());
                    }
                }
            }
            _ => {}
        }
    }
}

/// The prefixes of a selector cover exactly its address range, in order, each aligned.
fn check_cidrs(ts: &TrafficSelector) {
    let cidrs = ts_to_cidrs(ts);
    let (start, end, bits) = match ts.addresses {
        TsAddresses::V4 { start, end } => (u128::from(u32::from(start)), u128::from(u32::from(end)), 32u32),
        TsAddresses::V6 { start, end } => (u128::from(start), u128::from(end), 128u32),
    };
    if start > end {
        assert!(cidrs.is_empty(), "an empty range gives prefixes: {ts:?} -> {cidrs:?}");
        return;
    }
    let mut next = Some(start);
    for c in &cidrs {
        let addr = match c.addr {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        };
        assert_eq!(Some(addr), next, "prefixes of {ts:?} are not contiguous: {cidrs:?}");
        let host_bits = bits - u32::from(c.prefix);
        let size_minus_one = if host_bits >= 128 { u128::MAX } else { (1u128 << host_bits) - 1 };
        assert_eq!(addr & size_minus_one, 0, "prefix {c:?} of {ts:?} is not aligned");
        assert!(ts_contains(ts, c.addr), "{ts:?} does not contain its own prefix {c:?}");
        let last = addr + size_minus_one;
        assert!(last <= end, "prefix {c:?} goes past the end of {ts:?}");
        next = last.checked_add(1);
    }
    assert_eq!(next, end.checked_add(1), "prefixes of {ts:?} stop short: {cidrs:?}");
}
