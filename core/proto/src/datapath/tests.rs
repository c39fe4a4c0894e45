//! The packet path's decisions without sockets: selectors both ways, unknown SPIs, the rekey switch
//! (make-before-break), MSS clamping on the way in and out, and UDP 4500 framing.

use std::net::{Ipv4Addr, SocketAddr};

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use zeroize::Zeroizing;

use super::*;
use crate::crypto::Encr;
use crate::esp::EspParams;
use crate::wire::{TrafficSelector, TsAddresses};

const CLIENT: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 2);
const LAN_HOST: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
const ELSEWHERE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 99);
const MSS: u16 = 1300;

fn ts(start: Ipv4Addr, end: Ipv4Addr) -> TrafficSelector {
    TrafficSelector { ip_protocol: 0, start_port: 0, end_port: 65535, addresses: TsAddresses::V4 { start, end } }
}

fn params(spi: u32) -> EspParams {
    let encr = Encr::AesGcm16 { key_len: 32 };
    EspParams {
        spi,
        encr,
        integ: None,
        enc_key: Zeroizing::new((0..encr.keymat_len()).map(|i| i as u8 ^ spi as u8).collect()),
        integ_key: Zeroizing::new(Vec::new()),
        esn: false,
    }
}

/// The client's outbound half and the gateway-side inbound half that opens it, for one SPI.
fn pair(spi: u32, activate: bool) -> (ChildHalf, ChildHalf) {
    let peer = SocketAddr::from(([203, 0, 113, 2], 4500));
    let local = vec![ts(CLIENT, CLIENT)];
    let remote = vec![ts(Ipv4Addr::new(198, 51, 100, 0), Ipv4Addr::new(198, 51, 100, 255))];
    let out = ChildHalf {
        sa: EspSa::outbound(&params(spi)).unwrap(),
        ts_local: local.clone(),
        ts_remote: remote.clone(),
        peer,
        activate,
    };
    // The receiving end sees the same selectors from its side.
    let inb =
        ChildHalf { sa: EspSa::inbound(&params(spi), 64).unwrap(), ts_local: remote, ts_remote: local, peer, activate };
    (out, inb)
}

/// An IPv4 TCP SYN from `src` to `dst` with an MSS option of 1460 (checksum not needed for clamping).
fn syn(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let mut p = vec![0u8; 20 + 24];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(44u16).to_be_bytes());
    p[8] = 64;
    p[9] = 6;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let t = &mut p[20..];
    t[0..2].copy_from_slice(&40000u16.to_be_bytes());
    t[2..4].copy_from_slice(&443u16.to_be_bytes());
    t[12] = 6 << 4; // data offset: 24 bytes
    t[13] = 0x02; // SYN
    t[20..24].copy_from_slice(&[2, 4, 0x05, 0xb4]); // MSS 1460
    p
}

fn mss_of(pkt: &[u8]) -> u16 {
    u16::from_be_bytes([pkt[20 + 22], pkt[20 + 23]])
}

/// Seals `inner` on `out` as the uplink does (read into its slot, sealed in place).
fn seal(out: &mut Outbound, inner: &[u8]) -> Result<Vec<u8>, DropReason> {
    let mut rng = ChaCha20Rng::from_seed([7; 32]);
    let mut slot = vec![0u8; 2048];
    let off = out.payload_offset();
    slot[off..off + inner.len()].copy_from_slice(inner);
    let len = out.seal(&mut slot, inner.len(), MSS, &mut rng)?;
    slot.truncate(len);
    Ok(slot)
}

#[test]
fn outbound_checks_selectors_and_clamps_mss() {
    let (o, i) = pair(0x1000, true);
    let mut out = Outbound::default();
    assert_eq!(seal(&mut out, &syn(CLIENT, LAN_HOST)), Err(DropReason::NoSa), "nothing installed yet");
    out.install(o);
    let mut gw = Inbound::default();
    gw.install(i);
    let mut esp = seal(&mut out, &syn(CLIENT, LAN_HOST)).unwrap();
    let Verdict::Packet(r) = gw.open(&mut esp, u16::MAX) else { panic!("the gateway opens it") };
    assert_eq!(mss_of(&esp[r]), MSS, "the SYN leaving through the tunnel is clamped");
    // Outside the selectors: neither a foreign destination nor a foreign source is sealed.
    assert_eq!(seal(&mut out, &syn(CLIENT, ELSEWHERE)), Err(DropReason::Selector));
    assert_eq!(seal(&mut out, &syn(ELSEWHERE, LAN_HOST)), Err(DropReason::Selector));
    assert_eq!(seal(&mut out, &[0x60; 10]), Err(DropReason::Selector), "not a whole IP packet");
}

#[test]
fn inbound_checks_selectors_spi_and_framing() {
    // The "gateway" seals with its outbound SA, towards the client's inbound one: the gateway's selectors are
    // the client's mirrored, so a half built for the client's uplink seals as the gateway would.
    let (client_in_gw_out, client_in) = {
        let (o, i) = pair(0x2000, true);
        let mirrored = ChildHalf { ts_local: o.ts_remote.clone(), ts_remote: o.ts_local.clone(), ..o };
        (mirrored, ChildHalf { ts_local: i.ts_remote.clone(), ts_remote: i.ts_local.clone(), ..i })
    };
    let mut gw = Outbound::default();
    gw.install(client_in_gw_out);
    let mut client = Inbound::default();
    client.install(client_in);

    let mut esp = seal(&mut gw, &syn(LAN_HOST, CLIENT)).unwrap();
    // On UDP 4500 the ESP packet arrives as is; the marker-prefixed IKE message and a keepalive are told apart.
    let Verdict::Packet(r) = client.receive(&mut esp, 1200) else { panic!("delivered") };
    assert_eq!(mss_of(&esp[r]), 1200, "the SYN-ACK direction is clamped too");
    assert_eq!(client.receive(&mut esp, 1200), Verdict::Dropped(DropReason::Replay), "a replay is dropped");
    let mut ike = [0, 0, 0, 0, 0xaa, 0xbb];
    assert_eq!(client.receive(&mut ike, 1200), Verdict::Ike(4..6));
    assert_eq!(client.receive(&mut [0xff], 1200), Verdict::Keepalive);
    assert_eq!(client.receive(&mut [1, 2], 1200), Verdict::Dropped(DropReason::Malformed));

    // A packet from outside TSr (the gateway may not inject traffic for other networks).
    let (o2, i2) = pair(0x2001, true);
    let mut spoof = Outbound::default();
    spoof.install(ChildHalf { ts_local: vec![ts(ELSEWHERE, ELSEWHERE)], ts_remote: o2.ts_local.clone(), ..o2 });
    client.install(ChildHalf { ts_local: i2.ts_remote.clone(), ts_remote: i2.ts_local.clone(), ..i2 });
    let mut esp = seal(&mut spoof, &syn(ELSEWHERE, CLIENT)).unwrap();
    assert_eq!(client.receive(&mut esp, 1200), Verdict::Dropped(DropReason::Selector));

    // An SPI we never installed.
    let (o3, _) = pair(0x3000, true);
    let mut other = Outbound::default();
    other.install(ChildHalf { ts_local: o3.ts_remote.clone(), ts_remote: o3.ts_local.clone(), ..o3 });
    let mut esp = seal(&mut other, &syn(LAN_HOST, CLIENT)).unwrap();
    assert_eq!(client.receive(&mut esp, 1200), Verdict::Dropped(DropReason::NoSa));
}

#[test]
fn rekey_switches_outbound_only_when_the_old_sa_goes() {
    let (old_o, old_i) = pair(0x4000, true);
    let (new_o, new_i) = pair(0x4001, false);
    let mut out = Outbound::default();
    out.install(old_o);
    out.install(new_o);
    assert_eq!(out.current().map(|h| h.sa.spi()), Some(0x4000), "the new SA waits for the old one's Delete");
    let mut gw = Inbound::default();
    gw.install(old_i);
    gw.install(new_i);
    let mut esp = seal(&mut out, &syn(CLIENT, LAN_HOST)).unwrap();
    assert_eq!(peek_spi(&esp), Some(0x4000));
    assert!(matches!(gw.open(&mut esp, MSS), Verdict::Packet(_)));
    out.remove(0x4001);
    assert_eq!(out.current().map(|h| h.sa.spi()), Some(0x4000), "removing the waiting SA keeps the current");
    let (new_o, _) = pair(0x4001, false);
    out.install(new_o);
    out.remove(0x4000);
    let mut esp = seal(&mut out, &syn(CLIENT, LAN_HOST)).unwrap();
    assert_eq!(peek_spi(&esp), Some(0x4001), "the old SA gone, the new one seals");
    assert!(matches!(gw.open(&mut esp, MSS), Verdict::Packet(_)), "and the gateway still has it");
}

#[test]
fn inbound_keeps_the_previous_sa_until_a_third_arrives() {
    let (o1, i1) = pair(0x5001, true);
    let (o2, i2) = pair(0x5002, true);
    let (_, i3) = pair(0x5003, true);
    let mut client = Inbound::default();
    client.install(i1);
    client.install(i2);
    let mut old = Outbound::default();
    old.install(o1);
    let mut esp1 = seal(&mut old, &syn(CLIENT, LAN_HOST)).unwrap();
    assert!(matches!(client.open(&mut esp1, MSS), Verdict::Packet(_)), "the predecessor still opens");
    let mut newer = Outbound::default();
    newer.install(o2);
    let mut esp2 = seal(&mut newer, &syn(CLIENT, LAN_HOST)).unwrap();
    client.install(i3);
    assert!(matches!(client.open(&mut esp2, MSS), Verdict::Packet(_)));
    let mut esp1b = seal(&mut old, &syn(CLIENT, LAN_HOST)).unwrap();
    assert_eq!(client.open(&mut esp1b, MSS), Verdict::Dropped(DropReason::NoSa), "the oldest went");
    client.remove(0x5002);
    assert_eq!(client.open(&mut esp2, MSS), Verdict::Dropped(DropReason::NoSa), "removed");
}
