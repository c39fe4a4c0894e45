//! The packet path: TUN -> ESP seal -> UDP 4500 (uplink) and UDP 4500 -> ESP open -> TUN (downlink).
//!
//! Each direction is one task that owns its [`EspSa`] and reuses one buffer: no allocation per packet.
//! IKE messages arriving on the NAT-T socket (non-ESP marker, RFC 3948 §2.2) are handed to the IKE task.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::{debug, trace, warn};

use crate::esp::udp::{classify, Udp4500Kind};
use crate::esp::{EspError, EspSa, Opened};
use crate::ike::ts_contains;
use crate::platform::{mss_clamp, Tun};
use crate::wire::TrafficSelector;

/// Room in front of and behind an inner packet for the ESP header, IV, padding and ICV.
const BUF_LEN: usize = 65536;

/// Data plane counters, shared by the two tasks and read by the IKE task (relaxed atomics: one add per packet).
#[derive(Debug, Default)]
pub struct Counters {
    pub packets_out: AtomicU64,
    pub bytes_out: AtomicU64,
    pub packets_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub drop_no_sa: AtomicU64,
    pub drop_selector: AtomicU64,
    pub drop_replay: AtomicU64,
    pub drop_auth: AtomicU64,
    pub drop_malformed: AtomicU64,
    pub drop_padding: AtomicU64,
    pub drop_other: AtomicU64,
    pub keepalives_in: AtomicU64,
}

/// A snapshot of [`Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub packets_out: u64,
    pub bytes_out: u64,
    pub packets_in: u64,
    pub bytes_in: u64,
    pub drop_no_sa: u64,
    pub drop_selector: u64,
    pub drop_replay: u64,
    pub drop_auth: u64,
    pub drop_malformed: u64,
    pub drop_padding: u64,
    pub drop_other: u64,
}

impl Counters {
    pub fn snapshot(&self) -> Stats {
        Stats {
            packets_out: self.packets_out.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            packets_in: self.packets_in.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            drop_no_sa: self.drop_no_sa.load(Relaxed),
            drop_selector: self.drop_selector.load(Relaxed),
            drop_replay: self.drop_replay.load(Relaxed),
            drop_auth: self.drop_auth.load(Relaxed),
            drop_malformed: self.drop_malformed.load(Relaxed),
            drop_padding: self.drop_padding.load(Relaxed),
            drop_other: self.drop_other.load(Relaxed),
        }
    }

    fn count_error(&self, e: &EspError) {
        let c = match e {
            EspError::Replay(_) => &self.drop_replay,
            EspError::AuthFailed | EspError::Crypto(_) => &self.drop_auth,
            EspError::BadPadding => &self.drop_padding,
            EspError::Malformed(_) | EspError::SpiMismatch { .. } | EspError::UnsupportedNextHeader(_) => {
                &self.drop_malformed
            }
            _ => &self.drop_other,
        };
        c.fetch_add(1, Relaxed);
    }
}

/// A Child SA's half for one task.
pub struct Half {
    pub sa: EspSa,
    /// Selectors the inner packets must match: for the uplink, the destination against TSr; for the downlink,
    /// the source against TSr and the destination against TSi.
    pub ts_local: Vec<TrafficSelector>,
    pub ts_remote: Vec<TrafficSelector>,
    pub peer: SocketAddr,
    /// Uplink: send on this SA right away; otherwise only once the current one is removed (rekey, §2.8).
    pub activate: bool,
}

/// Changes the IKE task sends to a data plane task.
pub enum Update {
    /// Use this SA from now on (the previous one is kept for inbound until replaced: make-before-break).
    Install(Half),
    /// Stop using the SA with this SPI.
    Remove(u32),
    /// Deliver inbound packets to this TUN (downlink only).
    Tun(Arc<Tun>),
}

fn inner_addrs(pkt: &[u8]) -> Option<(IpAddr, IpAddr)> {
    match pkt.first()? >> 4 {
        4 => {
            let src: [u8; 4] = pkt.get(12..16)?.try_into().ok()?;
            let dst: [u8; 4] = pkt.get(16..20)?.try_into().ok()?;
            Some((IpAddr::from(src), IpAddr::from(dst)))
        }
        6 => {
            let src: [u8; 16] = pkt.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = pkt.get(24..40)?.try_into().ok()?;
            Some((IpAddr::from(src), IpAddr::from(dst)))
        }
        _ => None,
    }
}

fn matches(ts: &[TrafficSelector], a: IpAddr) -> bool {
    ts.iter().any(|t| ts_contains(t, a))
}

/// TUN -> ESP -> UDP. Ends when the update channel closes or the TUN fails.
pub async fn uplink(
    tun: Arc<Tun>,
    natt: Arc<UdpSocket>,
    mut updates: mpsc::Receiver<Update>,
    counters: Arc<Counters>,
    seed: [u8; 32],
    max_mss: u16,
) {
    let mut rng = ChaCha20Rng::from_seed(seed);
    let mut inbuf = vec![0u8; BUF_LEN];
    let mut outbuf = vec![0u8; BUF_LEN];
    let mut current: Option<Half> = None;
    // A rekeyed SA waiting for the old one's Delete.
    let mut next: Option<Half> = None;
    loop {
        tokio::select! {
            biased;
            u = updates.recv() => match u {
                Some(Update::Install(h)) => {
                    if h.activate || current.is_none() {
                        current = Some(h);
                    } else {
                        next = Some(h);
                    }
                }
                Some(Update::Remove(spi)) => {
                    if current.as_ref().is_some_and(|h| h.sa.spi() == spi) {
                        current = next.take();
                    } else if next.as_ref().is_some_and(|h| h.sa.spi() == spi) {
                        next = None;
                    }
                }
                Some(Update::Tun(_)) => {}
                None => return,
            },
            r = tun.recv(&mut inbuf) => {
                let n = match r {
                    Ok(n) => n,
                    Err(e) => {
                        warn!(%e, "TUN read failed; uplink stops");
                        return;
                    }
                };
                let Some(pkt) = inbuf.get_mut(..n) else { continue };
                let Some(h) = current.as_mut() else {
                    counters.drop_no_sa.fetch_add(1, Relaxed);
                    continue;
                };
                match inner_addrs(pkt) {
                    Some((src, dst)) if matches(&h.ts_remote, dst) && matches(&h.ts_local, src) => {}
                    _ => {
                        counters.drop_selector.fetch_add(1, Relaxed);
                        continue;
                    }
                }
                mss_clamp(pkt, max_mss);
                match h.sa.seal(pkt, &mut outbuf, &mut rng) {
                    Ok(len) => {
                        let Some(out) = outbuf.get(..len) else { continue };
                        if let Err(e) = natt.send_to(out, h.peer).await {
                            trace!(%e, "ESP send failed");
                            counters.drop_other.fetch_add(1, Relaxed);
                            continue;
                        }
                        counters.packets_out.fetch_add(1, Relaxed);
                        counters.bytes_out.fetch_add(n as u64, Relaxed);
                    }
                    Err(e) => {
                        debug!(%e, "seal failed");
                        counters.count_error(&e);
                    }
                }
            }
        }
    }
}

/// UDP 4500 -> (IKE task | ESP -> TUN). Ends when the update channel closes.
pub async fn downlink(
    tun: Option<Arc<Tun>>,
    natt: Arc<UdpSocket>,
    mut updates: mpsc::Receiver<Update>,
    ike: mpsc::Sender<Vec<u8>>,
    counters: Arc<Counters>,
    max_mss: u16,
) {
    let mut buf = vec![0u8; BUF_LEN];
    // Current and previous inbound SA: the previous one keeps working until the gateway switches (rekey).
    let mut sas: Vec<Half> = Vec::with_capacity(2);
    let mut tun = tun;
    loop {
        tokio::select! {
            biased;
            u = updates.recv() => match u {
                Some(Update::Install(h)) => {
                    if sas.len() >= 2 {
                        sas.remove(0);
                    }
                    sas.push(h);
                }
                Some(Update::Remove(spi)) => sas.retain(|h| h.sa.spi() != spi),
                Some(Update::Tun(t)) => tun = Some(t),
                None => return,
            },
            r = natt.recv_from(&mut buf) => {
                let (n, from) = match r {
                    Ok(x) => x,
                    Err(e) => {
                        trace!(%e, "NAT-T socket error");
                        continue;
                    }
                };
                let Some(dgram) = buf.get_mut(..n) else { continue };
                match classify(dgram) {
                    Ok(Udp4500Kind::Ike(msg)) => {
                        if ike.send(msg.to_vec()).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    Ok(Udp4500Kind::Keepalive) => {
                        counters.keepalives_in.fetch_add(1, Relaxed);
                        continue;
                    }
                    Ok(Udp4500Kind::Esp) => {}
                    Err(_) => {
                        counters.drop_malformed.fetch_add(1, Relaxed);
                        continue;
                    }
                }
                let spi = crate::esp::peek_spi(dgram);
                let Some(h) = sas.iter_mut().rev().find(|h| Some(h.sa.spi()) == spi) else {
                    trace!(%from, "ESP for an unknown SPI");
                    counters.drop_no_sa.fetch_add(1, Relaxed);
                    continue;
                };
                match h.sa.open(dgram) {
                    Ok(Opened::Packet { inner, .. }) => {
                        let Some(pkt) = dgram.get_mut(inner) else { continue };
                        match inner_addrs(pkt) {
                            Some((src, dst)) if matches(&h.ts_remote, src) && matches(&h.ts_local, dst) => {}
                            _ => {
                                counters.drop_selector.fetch_add(1, Relaxed);
                                continue;
                            }
                        }
                        mss_clamp(pkt, max_mss);
                        let len = pkt.len();
                        if let Some(t) = tun.as_ref() {
                            if let Err(e) = t.send(pkt).await {
                                warn!(%e, "TUN write failed");
                                tun = None;
                                continue;
                            }
                        }
                        counters.packets_in.fetch_add(1, Relaxed);
                        counters.bytes_in.fetch_add(len as u64, Relaxed);
                    }
                    Ok(Opened::Dummy) => {}
                    Err(e) => {
                        trace!(%e, "ESP packet dropped");
                        counters.count_error(&e);
                    }
                }
            }
        }
    }
}
