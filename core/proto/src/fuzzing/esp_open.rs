//! `esp_open`: the inbound ESP data plane (RFC 4303 §3.4, RFC 4106, RFC 7634, RFC 3602, RFC 4868, RFC 6479) for
//! every suite, fed raw packets, packets our outbound SA sealed, and packets forged with the SA's keys so that
//! they authenticate and their decrypted trailer (padding, pad length, next header) is whatever the input says.
//!
//! Input: a suite byte (suite, ESN, replay window), then records `kind | ...` (see [`esp_open`]).

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use zeroize::Zeroizing;

use super::Input;
use crate::crypto::{AeadKey, CbcKey, Encr, HmacKey, Integ};
use crate::esp::{peek_spi, udp, EspError, EspParams, EspSa, Opened, ESP_HEADER_LEN};

const SPI: u32 = 0xc0ff_ee01;
const MAX_RECORDS: usize = 64;

pub(crate) const SUITES: [(Encr, Option<Integ>); 9] = [
    (Encr::AesGcm16 { key_len: 16 }, None),
    (Encr::AesGcm16 { key_len: 32 }, None),
    (Encr::ChaCha20Poly1305, None),
    (Encr::AesCbc { key_len: 16 }, Some(Integ::HmacSha256_128)),
    (Encr::AesCbc { key_len: 32 }, Some(Integ::HmacSha256_128)),
    (Encr::AesCbc { key_len: 16 }, Some(Integ::HmacSha384_192)),
    (Encr::AesCbc { key_len: 32 }, Some(Integ::HmacSha512_256)),
    (Encr::AesCbc { key_len: 24 }, Some(Integ::HmacSha256_128)),
    (Encr::AesGcm16 { key_len: 24 }, None),
];

pub(crate) fn params(encr: Encr, integ: Option<Integ>, esn: bool) -> EspParams {
    EspParams {
        spi: SPI,
        encr,
        integ,
        enc_key: Zeroizing::new((0..encr.keymat_len()).map(|i| i as u8 ^ 0x5a).collect()),
        integ_key: Zeroizing::new((0..integ.map_or(0, |i| i.key_len())).map(|i| i as u8 ^ 0xa5).collect()),
        esn,
    }
}

/// `N` input bytes, zero-filled past the end.
fn array<const N: usize>(input: &mut Input<'_>) -> [u8; N] {
    let mut a = [0u8; N];
    let b = input.take(N);
    a[..b.len()].copy_from_slice(b);
    a
}

/// Suite byte: bits 0-3 the suite (mod 9), bit 4 ESN, bits 5-6 the replay window (1, 1024, 4096, 65536 packets).
/// Then up to 64 records, each a kind byte (bits 0-1):
/// - 0: `chunk`: a raw packet to open (bit 2: prefix our SPI);
/// - 1: `chunk`: an inner packet (its first nibble forced to 4 or 6 by bit 2) that our outbound SA seals (bit 3:
///   with `seal_in_place`) and the inbound SA must open back to the same bytes, unless it counts as a replay;
/// - 2: `seq u32, [seq_hi u32 with ESN], iv (8 or 16 bytes), chunk`: a plaintext (zero-padded to the block size
///   for CBC) encrypted and authenticated with the SA's keys; if it opens, it must be read as the input says;
/// - 3: `len u8, chunk`: a dummy packet of `len` bytes sealed and opened, and the chunk classified as a UDP 4500
///   datagram (RFC 3948).
pub fn esp_open(data: &[u8]) {
    let mut input = Input::new(data);
    let b = input.u8();
    let (encr, integ) = SUITES[usize::from(b & 0x0f) % SUITES.len()];
    let esn = b & 0x10 != 0;
    let window = [1, 1024, 4096, 65536][usize::from(b >> 5) & 3];
    let p = params(encr, integ, esn);
    let (Ok(mut out_sa), Ok(mut in_sa)) = (EspSa::outbound(&p), EspSa::inbound(&p, window)) else {
        panic!("valid ESP parameters refused");
    };
    let mut rng = ChaCha20Rng::from_seed([0x45; 32]);
    for _ in 0..MAX_RECORDS {
        if input.is_empty() {
            break;
        }
        let kind = input.u8();
        match kind & 3 {
            0 => {
                let mut pkt = input.chunk().to_vec();
                if kind & 4 != 0 {
                    pkt.splice(0..pkt.len().min(4), SPI.to_be_bytes());
                }
                let _ = peek_spi(&pkt);
                open_checked(&mut in_sa, &mut pkt);
            }
            1 => {
                let mut inner = input.chunk().to_vec();
                if let Some(first) = inner.first_mut() {
                    *first = (if kind & 4 != 0 { 0x60 } else { 0x40 }) | (*first & 0x0f);
                }
                let mut out = vec![0u8; inner.len() + out_sa.overhead(inner.len())];
                let sealed = if kind & 8 != 0 {
                    let at = out_sa.payload_offset();
                    if let Some(slot) = out.get_mut(at..at + inner.len()) {
                        slot.copy_from_slice(&inner);
                    }
                    out_sa.seal_in_place(&mut out, inner.len(), &mut rng)
                } else {
                    out_sa.seal(&inner, &mut out, &mut rng)
                };
                let n = match sealed {
                    Ok(n) => n,
                    Err(EspError::NotIpPacket) if inner.is_empty() => continue,
                    Err(e) => panic!("sealing a {}-byte inner packet failed: {e}", inner.len()),
                };
                assert_eq!(n, out.len(), "seal length differs from overhead()");
                let mut pkt = out;
                match in_sa.open(&mut pkt) {
                    Ok(Opened::Packet { inner: range, .. }) => {
                        assert_eq!(pkt.get(range), Some(inner.as_slice()), "opened packet differs from sealed");
                    }
                    // Too old for the window, or (ESN) from before the window's high half: a forged record moved it.
                    Err(EspError::Replay(_)) => {}
                    Err(EspError::AuthFailed) if esn => {}
                    other => panic!("our own sealed packet did not open: {other:?}"),
                }
            }
            2 => forged(&mut input, &mut in_sa, &p),
            _ => {
                let len = usize::from(input.u8());
                let mut out = vec![0u8; len + out_sa.overhead(len)];
                match out_sa.seal_dummy(len, &mut out, &mut rng) {
                    Ok(n) => {
                        let mut pkt = out.get(..n).unwrap_or_default().to_vec();
                        match in_sa.open(&mut pkt) {
                            Ok(Opened::Dummy) | Err(EspError::Replay(_)) => {}
                            Err(EspError::AuthFailed) if esn => {}
                            other => panic!("our own dummy packet did not open as one: {other:?}"),
                        }
                    }
                    Err(e) => panic!("sealing a dummy packet failed: {e}"),
                }
                let chunk = input.chunk();
                if let Ok(udp::Udp4500Kind::Esp) = udp::classify(chunk) {
                    assert!(chunk.len() >= ESP_HEADER_LEN && peek_spi(chunk).is_some_and(|s| s != 0));
                }
            }
        }
    }
    let s = in_sa.stats();
    let _ = (s.packets, s.drop_auth, out_sa.stats().packets);
}

/// Open, and check that a packet that opens points inside the buffer.
fn open_checked(sa: &mut EspSa, pkt: &mut [u8]) -> Option<Opened> {
    let len = pkt.len();
    match sa.open(pkt) {
        Ok(Opened::Packet { inner, next_header }) => {
            assert!(inner.start <= inner.end && inner.end <= len, "inner range {inner:?} outside {len} bytes");
            assert!(matches!(next_header, 4 | 41), "next header {next_header} delivered");
            Some(Opened::Packet { inner, next_header })
        }
        Ok(o) => Some(o),
        Err(_) => None,
    }
}

/// A packet with an arbitrary (but authentic) plaintext.
fn forged(input: &mut Input<'_>, sa: &mut EspSa, p: &EspParams) {
    let (encr, integ, esn) = (p.encr, p.integ, p.esn);
    let seq_lo = input.u32();
    let seq_hi = if esn { input.u32() } else { 0 };
    let mut plain = Vec::new();
    let mut pkt = Vec::new();
    pkt.extend_from_slice(&SPI.to_be_bytes());
    pkt.extend_from_slice(&seq_lo.to_be_bytes());
    let ok = match integ {
        None => {
            let iv: [u8; 8] = array(input);
            plain.extend_from_slice(input.chunk());
            let Ok(key) = AeadKey::new(encr, &p.enc_key) else { panic!("AEAD key refused") };
            let mut aad = SPI.to_be_bytes().to_vec();
            if esn {
                aad.extend_from_slice(&seq_hi.to_be_bytes());
            }
            aad.extend_from_slice(&seq_lo.to_be_bytes());
            let mut body = plain.clone();
            let mut tag = [0u8; 16];
            let ok = key.seal_in_place(&iv, &aad, &mut body, &mut tag).is_ok();
            pkt.extend_from_slice(&iv);
            pkt.extend_from_slice(&body);
            pkt.extend_from_slice(&tag);
            ok
        }
        Some(integ) => {
            let iv: [u8; 16] = array(input);
            plain.extend_from_slice(input.chunk());
            plain.resize(plain.len().next_multiple_of(16), 0);
            let Ok(cbc) = CbcKey::new(&p.enc_key) else { panic!("CBC key refused") };
            let mac = HmacKey::new(integ, &p.integ_key);
            let mut body = plain.clone();
            let ok = cbc.encrypt_in_place(&iv, &mut body).is_ok();
            pkt.extend_from_slice(&iv);
            pkt.extend_from_slice(&body);
            let hi = seq_hi.to_be_bytes();
            let mut icv = vec![0u8; mac.icv_len()];
            mac.sign(&[&pkt, if esn { &hi[..] } else { &[][..] }], &mut icv);
            pkt.extend_from_slice(&icv);
            ok
        }
    };
    if !ok {
        return;
    }
    let iv_len = if integ.is_none() { 8 } else { 16 };
    let mut buf = pkt.clone();
    match open_checked(sa, &mut buf) {
        Some(Opened::Packet { inner, next_header }) => {
            // The trailer said so: inner | 1, 2, ... pad_len | pad_len | next header.
            let (&nh, rest) = plain.split_last().unwrap_or((&0, &[]));
            let (&pad_len, rest) = rest.split_last().unwrap_or((&0, &[]));
            let inner_len = rest.len().checked_sub(usize::from(pad_len));
            assert_eq!(nh, next_header, "next header differs from the plaintext's");
            assert_eq!(Some(inner.len()), inner_len, "inner length differs from what the pad length says");
            let start = ESP_HEADER_LEN + iv_len;
            assert_eq!(inner.start, start);
            assert_eq!(buf.get(inner.clone()), plain.get(..inner.len()), "inner bytes differ from the plaintext");
        }
        Some(Opened::Dummy) => assert_eq!(plain.last(), Some(&59), "a dummy packet without next header 59"),
        None => {}
    }
}
