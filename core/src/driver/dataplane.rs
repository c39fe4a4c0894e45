//! The packet path: TUN -> ESP seal -> UDP 4500 (uplink) and UDP 4500 -> ESP open -> TUN (downlink).
//!
//! Each direction is one task that owns its [`EspSa`] and reuses its buffers: no allocation per packet.
//! IKE messages arriving on the NAT-T socket (non-ESP marker, RFC 3948 §2.2) are handed to the IKE task.
//!
//! Costs are per system call and per wake-up rather than per byte, so both tasks drain their source after
//! each wake-up. The uplink reads packets from the TUN straight into their slot of a batch buffer (or, with
//! Linux TUN offload, reads a TCP super-packet of up to 64 KB and cuts it into segments there, see
//! [`Segments`]), seals them in place and sends runs of equal-sized ESP packets with one `sendmsg` using UDP
//! GSO (Linux `UDP_SEGMENT`; one datagram per packet elsewhere or when the kernel refuses). The downlink
//! receives with UDP GRO on Linux (one receive carries a burst of equal-sized datagrams). The NAT-T socket
//! gets large buffers so bursts are not dropped by the kernel.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
#[cfg(any(target_os = "linux", target_os = "android"))]
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::{debug, trace, warn};

use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;

use super::stream::StreamWriter;
use crate::datapath::{ChildHalf, DropReason, Inbound, Outbound, Verdict};
use crate::platform::{Segments, Tun, VNET_HDR_LEN};
use crate::tcp::{esp_length_prefix, Deframer, Frame, LENGTH_LEN};

/// Downlink receive buffer: the largest UDP datagram.
const BUF_LEN: usize = 65536;
/// Room for the largest IP packet the TUN can hand over plus the ESP header, IV, padding and ICV.
const SLOT_LEN: usize = 65536 + 256;
/// Uplink batch: at most this many packets per send burst (UDP GSO allows 64 segments per call).
const MAX_BATCH: usize = 64;
/// Uplink batch: flush once this many ESP bytes are pending; also the most one UDP GSO call carries (the
/// whole super-datagram must fit in one IP packet, 65535 bytes with headers).
const GSO_MAX_BYTES: usize = 65000;
/// Downlink: datagrams handled per wake-up before updates are looked at again.
const MAX_DRAIN: usize = 256;
/// NAT-T socket buffer sizes (bytes; the kernel doubles them for bookkeeping). The default of about 200 KB
/// holds only a few dozen full-size datagrams, which bursts at a few hundred Mbit/s overflow.
const SOCKET_BUFFER: usize = 4 << 20;

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
    /// Datagrams that arrived coalesced with others in one UDP GRO receive.
    pub rx_coalesced: AtomicU64,
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
    /// Datagrams that arrived coalesced with others in one UDP GRO receive (Linux).
    pub rx_coalesced: u64,
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
            rx_coalesced: self.rx_coalesced.load(Relaxed),
        }
    }

    fn count(&self, reason: DropReason) {
        let c = match reason {
            DropReason::NoSa => &self.drop_no_sa,
            DropReason::Selector => &self.drop_selector,
            DropReason::Replay => &self.drop_replay,
            DropReason::Auth => &self.drop_auth,
            DropReason::Malformed => &self.drop_malformed,
            DropReason::Padding => &self.drop_padding,
            DropReason::Other => &self.drop_other,
        };
        c.fetch_add(1, Relaxed);
    }
}

/// Changes the IKE task sends to a data plane task.
pub enum Update {
    /// Use this SA from now on (the previous one is kept for inbound until replaced: make-before-break).
    /// Boxed: an SA is large and installs are rare.
    Install(Box<ChildHalf>),
    /// Stop using the SA with this SPI.
    Remove(u32),
    /// Deliver inbound packets to this TUN (downlink only).
    Tun(Arc<Tun>),
    /// Over TCP (RFC 9329), send ESP on this stream instead of UDP, or UDP again with `None` (uplink only).
    Writer(Option<Arc<StreamWriter>>),
    /// Read this TCP stream (its id), replacing any other; report it broken on the sender (downlink only).
    Stream(u64, OwnedReadHalf, mpsc::Sender<u64>),
}

/// Sends one datagram, or with `segment` a run of datagrams of that size (the last may be shorter) with one
/// UDP GSO call.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn send_segments(
    sock: &UdpSocket,
    buf: &[u8],
    segment: Option<u16>,
    to: &nix::sys::socket::SockaddrStorage,
) -> std::io::Result<usize> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    use std::os::fd::AsRawFd;
    let iov = [std::io::IoSlice::new(buf)];
    let seg;
    let cmsgs: &[ControlMessage<'_>] = match segment.as_ref() {
        Some(s) => {
            seg = [ControlMessage::UdpGsoSegments(s)];
            &seg
        }
        None => &[],
    };
    Ok(sendmsg(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::empty(), Some(to))?)
}

/// Sends batched ESP packets to one peer, using UDP GSO while the kernel accepts it.
struct BatchSender {
    peer: SocketAddr,
    #[cfg(any(target_os = "linux", target_os = "android"))]
    peer_addr: nix::sys::socket::SockaddrStorage,
    /// Cleared for good when the kernel or the route lacks UDP GSO (then one datagram per packet).
    gso: bool,
    /// Largest datagram the kernel accepted as a GSO segment size, lowered when one was refused as too
    /// large for the route (such datagrams then go out one by one and may be fragmented).
    #[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
    gso_max_segment: usize,
}

impl BatchSender {
    fn new() -> Self {
        let peer = SocketAddr::from(([0, 0, 0, 0], 0));
        BatchSender {
            peer,
            #[cfg(any(target_os = "linux", target_os = "android"))]
            peer_addr: peer.into(),
            gso: cfg!(any(target_os = "linux", target_os = "android")),
            gso_max_segment: usize::from(u16::MAX),
        }
    }

    fn set_peer(&mut self, peer: SocketAddr) {
        if peer != self.peer {
            self.peer = peer;
            self.gso_max_segment = usize::from(u16::MAX);
            #[cfg(any(target_os = "linux", target_os = "android"))]
            {
                self.peer_addr = peer.into();
            }
        }
    }

    /// One datagram.
    async fn send_one(&self, natt: &UdpSocket, pkt: &[u8]) -> std::io::Result<usize> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            natt.async_io(Interest::WRITABLE, || send_segments(natt, pkt, None, &self.peer_addr)).await
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            natt.send_to(pkt, self.peer).await
        }
    }

    /// A run of datagrams of `segment` bytes (the last may be shorter) in `buf` with one call; `Ok(false)`
    /// if the kernel refused GSO for it (nothing was sent then).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    async fn send_run(&mut self, natt: &UdpSocket, buf: &[u8], segment: usize) -> std::io::Result<bool> {
        let Ok(seg) = u16::try_from(segment) else { return Ok(false) };
        if segment > self.gso_max_segment {
            return Ok(false);
        }
        match natt.async_io(Interest::WRITABLE, || send_segments(natt, buf, Some(seg), &self.peer_addr)).await {
            Ok(_) => Ok(true),
            Err(e) => match e.raw_os_error() {
                // Too large for the route's MTU: this run goes out one by one (and may be fragmented).
                Some(nix::libc::EINVAL) | Some(nix::libc::EMSGSIZE) => {
                    debug!(%e, segment, "UDP GSO refused for this size");
                    self.gso_max_segment = segment - 1;
                    Ok(false)
                }
                // No UDP GSO here (old kernel, no checksum offload, IPsec policy on the route).
                Some(nix::libc::EIO) | Some(nix::libc::ENOPROTOOPT) | Some(nix::libc::EOPNOTSUPP) => {
                    debug!(%e, "UDP GSO unavailable; sending one datagram per packet");
                    self.gso = false;
                    Ok(false)
                }
                _ => Err(e),
            },
        }
    }

    /// Sends the ESP packets laid out back to back in `buf` with lengths `lens` (ESP, inner) and counts them.
    async fn flush(&mut self, natt: &UdpSocket, buf: &[u8], lens: &[(usize, usize)], counters: &Counters) {
        let mut i = 0;
        let mut at = 0;
        while let Some(&(seg, _)) = lens.get(i) {
            // A run: equal-sized packets, optionally ending with one shorter packet.
            let mut j = i + 1;
            let mut bytes = seg;
            if self.gso {
                while let Some(&(len, _)) = lens.get(j) {
                    if len > seg || j - i >= MAX_BATCH || bytes + len > GSO_MAX_BYTES {
                        break;
                    }
                    bytes += len;
                    j += 1;
                    if len < seg {
                        break;
                    }
                }
            }
            let run = &lens[i..j];
            let inner: usize = run.iter().map(|&(_, n)| n).sum();
            let Some(data) = buf.get(at..at + bytes) else { return };
            #[cfg(any(target_os = "linux", target_os = "android"))]
            let sent = if run.len() > 1 { self.send_run(natt, data, seg).await } else { Ok(false) };
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            let sent: std::io::Result<bool> = Ok(false);
            match sent {
                Ok(true) => {
                    counters.packets_out.fetch_add(run.len() as u64, Relaxed);
                    counters.bytes_out.fetch_add(inner as u64, Relaxed);
                }
                Ok(false) => {
                    let mut off = 0;
                    for &(len, n) in run {
                        let Some(pkt) = data.get(off..off + len) else { break };
                        off += len;
                        if let Err(e) = self.send_one(natt, pkt).await {
                            trace!(%e, "ESP send failed");
                            counters.drop_other.fetch_add(1, Relaxed);
                            continue;
                        }
                        counters.packets_out.fetch_add(1, Relaxed);
                        counters.bytes_out.fetch_add(n as u64, Relaxed);
                    }
                }
                Err(e) => {
                    trace!(%e, "ESP send failed");
                    counters.drop_other.fetch_add(run.len() as u64, Relaxed);
                }
            }
            at += bytes;
            i = j;
        }
    }
}

/// Larger kernel buffers for the NAT-T socket ([`SOCKET_BUFFER`]); beyond `net.core.[rw]mem_max` when we
/// may (CAP_NET_ADMIN), else up to it.
fn size_socket_buffers(sock: &UdpSocket) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use nix::sys::socket::{setsockopt, sockopt};
        if setsockopt(sock, sockopt::RcvBufForce, &SOCKET_BUFFER).is_err() {
            let _ = setsockopt(sock, sockopt::RcvBuf, &SOCKET_BUFFER);
        }
        if setsockopt(sock, sockopt::SndBufForce, &SOCKET_BUFFER).is_err() {
            let _ = setsockopt(sock, sockopt::SndBuf, &SOCKET_BUFFER);
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let s = socket2::SockRef::from(sock);
        let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
        let _ = s.set_send_buffer_size(SOCKET_BUFFER);
    }
}

/// Seals the inner packet at `slot[payload_offset..][..n]`; returns the ESP packet's length (`None`: dropped
/// and counted).
fn seal_packet(
    out: &mut Outbound,
    slot: &mut [u8],
    n: usize,
    max_mss: u16,
    rng: &mut ChaCha20Rng,
    counters: &Counters,
) -> Option<usize> {
    match out.seal(slot, n, max_mss, rng) {
        Ok(len) => Some(len),
        Err(reason) => {
            if !matches!(reason, DropReason::Selector) {
                debug!(?reason, "seal failed");
            }
            counters.count(reason);
            None
        }
    }
}

/// TUN -> ESP -> UDP. Ends when the update channel closes or the TUN fails.
///
/// After each wake-up it reads up to [`MAX_BATCH`] packets (until the TUN is empty), each straight into its
/// place in `batch` behind room for the ESP header and IV, seals it there and sends the batch. With TUN
/// offload a read lands in `staging` instead and its segments are cut into their places in `batch`.
pub async fn uplink(
    tun: Arc<Tun>,
    natt: Arc<UdpSocket>,
    mut updates: mpsc::Receiver<Update>,
    counters: Arc<Counters>,
    seed: [u8; 32],
    max_mss: u16,
) {
    let mut rng = ChaCha20Rng::from_seed(seed);
    let offload = tun.offload();
    let mut staging = vec![0u8; if offload { VNET_HDR_LEN + SLOT_LEN } else { 0 }];
    // Pending ESP packets back to back, then always room for one more largest packet.
    let mut batch = vec![0u8; GSO_MAX_BYTES + SLOT_LEN];
    // (ESP length, inner length) of each pending packet.
    let mut lens: Vec<(usize, usize)> = Vec::with_capacity(MAX_BATCH);
    let mut sender = BatchSender::new();
    let mut out = Outbound::default();
    // Over TCP: each ESP packet behind its 2-byte length, the batch in one write.
    let mut writer: Option<Arc<StreamWriter>> = None;
    loop {
        // The first read is awaited; without offload its slot starts at 0 (the batch is empty here).
        let pre = if writer.is_some() { LENGTH_LEN } else { 0 };
        let off = out.payload_offset() + pre;
        let first = {
            let buf = if offload { &mut staging[..] } else { batch.get_mut(off..).unwrap_or_default() };
            tokio::select! {
                biased;
                u = updates.recv() => {
                    match u {
                        Some(Update::Install(h)) => out.install(*h),
                        Some(Update::Remove(spi)) => out.remove(spi),
                        Some(Update::Writer(w)) => writer = w,
                        Some(Update::Tun(_)) | Some(Update::Stream(..)) => {}
                        None => return,
                    }
                    continue;
                }
                r = tun.recv(buf) => r,
            }
        };
        let mut read = first;
        let Some(peer) = out.current().map(|h| h.peer) else {
            if let Err(e) = read {
                warn!(%e, "TUN read failed; uplink stops");
                return;
            }
            counters.drop_no_sa.fetch_add(1, Relaxed);
            continue;
        };
        sender.set_peer(peer);
        let mut pos = 0;
        loop {
            let n = match read {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    warn!(%e, "TUN read failed; uplink stops");
                    return;
                }
            };
            if offload {
                match Segments::new(staging.get_mut(..n).unwrap_or_default()) {
                    Ok(mut segments) => loop {
                        if lens.len() >= MAX_BATCH || pos >= GSO_MAX_BYTES {
                            let data = batch.get(..pos).unwrap_or_default();
                            send_batch(&mut sender, writer.as_deref(), &natt, data, &lens, &counters).await;
                            lens.clear();
                            pos = 0;
                        }
                        let slot = batch.get_mut(pos + pre..).unwrap_or_default();
                        match segments.next_into(slot.get_mut(off - pre..).unwrap_or_default()) {
                            None => break,
                            Some(Ok(len)) => {
                                if let Some(esp) = seal_packet(&mut out, slot, len, max_mss, &mut rng, &counters) {
                                    put_length(&mut batch, pos, pre, esp);
                                    lens.push((esp + pre, len));
                                    pos += esp + pre;
                                }
                            }
                            Some(Err(e)) => {
                                debug!(%e, "TUN packet dropped");
                                counters.drop_malformed.fetch_add(1, Relaxed);
                                break;
                            }
                        }
                    },
                    Err(e) => {
                        debug!(%e, "TUN packet dropped");
                        counters.drop_malformed.fetch_add(1, Relaxed);
                    }
                }
            } else {
                let slot = batch.get_mut(pos + pre..).unwrap_or_default();
                if let Some(esp) = seal_packet(&mut out, slot, n, max_mss, &mut rng, &counters) {
                    put_length(&mut batch, pos, pre, esp);
                    lens.push((esp + pre, n));
                    pos += esp + pre;
                }
            }
            if lens.len() >= MAX_BATCH || pos >= GSO_MAX_BYTES {
                break;
            }
            let buf = if offload { &mut staging[..] } else { batch.get_mut(pos + off..).unwrap_or_default() };
            read = tun.try_recv(buf);
        }
        if !lens.is_empty() {
            send_batch(&mut sender, writer.as_deref(), &natt, batch.get(..pos).unwrap_or_default(), &lens, &counters)
                .await;
            lens.clear();
        }
    }
}

/// Over TCP: the length field of the ESP packet of `esp` bytes sealed behind it at `batch[pos + pre..]`.
fn put_length(batch: &mut [u8], pos: usize, pre: usize, esp: usize) {
    if pre == 0 {
        return;
    }
    if let (Ok(len), Some(dst)) = (esp_length_prefix(esp), batch.get_mut(pos..pos + LENGTH_LEN)) {
        dst.copy_from_slice(&len);
    }
}

/// Sends a batch: over TCP all frames with one write, else as UDP datagrams (GSO runs).
async fn send_batch(
    sender: &mut BatchSender,
    writer: Option<&StreamWriter>,
    natt: &UdpSocket,
    data: &[u8],
    lens: &[(usize, usize)],
    counters: &Counters,
) {
    match writer {
        Some(w) => {
            if w.write(data).await {
                counters.packets_out.fetch_add(lens.len() as u64, Relaxed);
                counters.bytes_out.fetch_add(lens.iter().map(|&(_, n)| n as u64).sum(), Relaxed);
            } else {
                counters.drop_other.fetch_add(lens.len() as u64, Relaxed);
            }
        }
        None => sender.flush(natt, data, lens, counters).await,
    }
}

/// One receive from the NAT-T socket: `len` bytes from `from`, which with UDP GRO are several datagrams of
/// `segment` bytes each back to back (the last may be shorter).
#[derive(Debug, Clone, Copy)]
struct Received {
    len: usize,
    from: SocketAddr,
    segment: Option<usize>,
}

/// Receives from the NAT-T socket; on Linux with UDP GRO (the kernel coalesces a burst of equal-sized
/// datagrams of one flow into one buffer and reports their size).
struct GroReceiver {
    #[cfg_attr(not(any(target_os = "linux", target_os = "android")), allow(dead_code))]
    gro: bool,
    #[cfg(any(target_os = "linux", target_os = "android"))]
    cmsg: Vec<u8>,
}

impl GroReceiver {
    fn new(natt: &UdpSocket) -> Self {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            use nix::sys::socket::{setsockopt, sockopt};
            let gro = setsockopt(natt, sockopt::UdpGroSegment, &true).is_ok();
            if !gro {
                debug!("UDP GRO unavailable; one datagram per receive");
            }
            GroReceiver { gro, cmsg: nix::cmsg_space!(i32) }
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            let _ = natt;
            GroReceiver { gro: false }
        }
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn recv_gro(cmsg: &mut [u8], natt: &UdpSocket, buf: &mut [u8]) -> std::io::Result<Received> {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, SockaddrStorage};
        use std::os::fd::AsRawFd;
        let mut iov = [std::io::IoSliceMut::new(buf)];
        let msg = recvmsg::<SockaddrStorage>(natt.as_raw_fd(), &mut iov, Some(cmsg), MsgFlags::empty())?;
        let mut segment = None;
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::UdpGroSegments(n) = c {
                    segment = usize::try_from(n).ok().filter(|&n| n > 0);
                }
            }
        }
        let from = msg
            .address
            .and_then(|a| match (a.as_sockaddr_in(), a.as_sockaddr_in6()) {
                (Some(v4), _) => Some(SocketAddr::from(std::net::SocketAddrV4::from(*v4))),
                (_, Some(v6)) => Some(SocketAddr::from(std::net::SocketAddrV6::from(*v6))),
                _ => None,
            })
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        Ok(Received { len: msg.bytes, from, segment })
    }

    /// Waits for the next receive.
    async fn recv(&mut self, natt: &UdpSocket, buf: &mut [u8]) -> std::io::Result<Received> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if self.gro {
            let cmsg = &mut self.cmsg;
            return natt.async_io(Interest::READABLE, || Self::recv_gro(cmsg, natt, buf)).await;
        }
        let (len, from) = natt.recv_from(buf).await?;
        Ok(Received { len, from, segment: None })
    }

    /// The next receive if one is queued; `WouldBlock` otherwise.
    fn try_recv(&mut self, natt: &UdpSocket, buf: &mut [u8]) -> std::io::Result<Received> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if self.gro {
            let cmsg = &mut self.cmsg;
            return natt.try_io(Interest::READABLE, || Self::recv_gro(cmsg, natt, buf));
        }
        let (len, from) = natt.try_recv_from(buf)?;
        Ok(Received { len, from, segment: None })
    }
}

/// UDP 4500 -> (IKE task | ESP -> TUN). Ends when the update channel closes.
///
/// After each wake-up it handles every queued datagram (up to [`MAX_DRAIN`] receives) before waiting again;
/// with UDP GRO one receive carries a burst of datagrams.
pub async fn downlink(
    tun: Option<Arc<Tun>>,
    natt: Arc<UdpSocket>,
    mut updates: mpsc::Receiver<Update>,
    ike: mpsc::Sender<Vec<u8>>,
    counters: Arc<Counters>,
    max_mss: u16,
) {
    size_socket_buffers(&natt);
    let mut rx = GroReceiver::new(&natt);
    let mut buf = vec![0u8; BUF_LEN];
    // Current and previous inbound SA: the previous one keeps working until the gateway switches (rekey).
    let mut sas = Inbound::default();
    let mut tun = tun;
    // Over TCP: the stream being read (its id and where to report it broken), reassembled in one buffer.
    let mut stream: Option<(u64, OwnedReadHalf, mpsc::Sender<u64>)> = None;
    let mut deframer = Deframer::new(2 * BUF_LEN);
    loop {
        let first = tokio::select! {
            biased;
            u = updates.recv() => {
                match u {
                    Some(Update::Install(h)) => sas.install(*h),
                    Some(Update::Remove(spi)) => sas.remove(spi),
                    Some(Update::Tun(t)) => tun = Some(t),
                    Some(Update::Stream(id, r, broken)) => {
                        stream = Some((id, r, broken));
                        deframer.reset();
                    }
                    Some(Update::Writer(_)) => {}
                    None => return,
                }
                continue;
            }
            n = read_stream(&mut stream, &mut deframer) => {
                let ok = match n {
                    Ok(0) => false,
                    Ok(n) => {
                        deframer.filled(n);
                        match stream_frames(&mut deframer, &mut sas, &mut tun, &ike, &counters, max_mss).await {
                            Ok(alive) => alive || return,
                            Err(e) => {
                                debug!(%e, "TCP stream from the gateway malformed");
                                false
                            }
                        }
                    }
                    Err(e) => {
                        debug!(%e, "TCP stream read failed");
                        false
                    }
                };
                if !ok {
                    if let Some((id, _, broken)) = stream.take() {
                        debug!(id, "TCP stream to the gateway closed");
                        let _ = broken.send(id).await;
                    }
                }
                continue;
            }
            r = rx.recv(&natt, &mut buf) => r,
        };
        let mut r = first;
        for _ in 0..MAX_DRAIN {
            let got = match r {
                Ok(x) => x,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    trace!(%e, "NAT-T socket error");
                    break;
                }
            };
            let data = buf.get_mut(..got.len).unwrap_or_default();
            let step = got.segment.unwrap_or(data.len()).max(1);
            if data.len() > step {
                counters.rx_coalesced.fetch_add(data.len().div_ceil(step) as u64, Relaxed);
            }
            for dgram in data.chunks_mut(step) {
                if !inbound(dgram, got.from, &mut sas, &mut tun, &ike, &counters, max_mss).await {
                    return;
                }
            }
            r = rx.try_recv(&natt, &mut buf);
        }
    }
}

/// Reads the stream into the deframer; never completes without a stream.
async fn read_stream(
    stream: &mut Option<(u64, OwnedReadHalf, mpsc::Sender<u64>)>,
    d: &mut Deframer,
) -> std::io::Result<usize> {
    match stream {
        Some((_, r, _)) => r.read(d.spare()).await,
        None => std::future::pending().await,
    }
}

/// Every complete frame of the stream: IKE to the IKE task, ESP opened in place and written to the TUN.
/// `Ok(false)` once the IKE task is gone.
async fn stream_frames(
    d: &mut Deframer,
    sas: &mut Inbound,
    tun: &mut Option<Arc<Tun>>,
    ike: &mpsc::Sender<Vec<u8>>,
    counters: &Counters,
    max_mss: u16,
) -> Result<bool, crate::tcp::TcpError> {
    let from = SocketAddr::from(([0, 0, 0, 0], 0));
    while let Some(f) = d.next_frame()? {
        match f {
            Frame::Ike(m) => {
                if ike.send(m.to_vec()).await.is_err() {
                    return Ok(false);
                }
            }
            Frame::Esp(p) => {
                if !inbound(p, from, sas, tun, ike, counters, max_mss).await {
                    return Ok(false);
                }
            }
            Frame::Keepalive => {
                counters.keepalives_in.fetch_add(1, Relaxed);
            }
            Frame::Runt => counters.count(DropReason::Malformed),
        }
    }
    Ok(true)
}

/// One datagram from UDP 4500: IKE to the IKE task, ESP opened and written to the TUN. `false` once the IKE
/// task is gone.
async fn inbound(
    dgram: &mut [u8],
    from: SocketAddr,
    sas: &mut Inbound,
    tun: &mut Option<Arc<Tun>>,
    ike: &mpsc::Sender<Vec<u8>>,
    counters: &Counters,
    max_mss: u16,
) -> bool {
    match sas.receive(dgram, max_mss) {
        Verdict::Ike(r) => return ike.send(dgram.get(r).unwrap_or_default().to_vec()).await.is_ok(),
        Verdict::Keepalive => {
            counters.keepalives_in.fetch_add(1, Relaxed);
        }
        Verdict::Packet(r) => {
            let Some(pkt) = dgram.get(r) else { return true };
            let len = pkt.len();
            if let Some(t) = tun.as_ref() {
                let written = match t.try_send(pkt) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => t.send(pkt).await,
                    r => r,
                };
                if let Err(e) = written {
                    warn!(%e, "TUN write failed");
                    *tun = None;
                    return true;
                }
            }
            counters.packets_in.fetch_add(1, Relaxed);
            counters.bytes_in.fetch_add(len as u64, Relaxed);
        }
        Verdict::Dummy => {}
        Verdict::Dropped(reason) => {
            trace!(%from, ?reason, "datagram dropped");
            counters.count(reason);
        }
    }
    true
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A UDP GSO send over loopback reaches a UDP GRO socket as one receive: the receiver must report the
    /// segment size so the downlink can cut the burst back into its datagrams.
    #[tokio::test]
    async fn gro_receive_reports_the_segment_size() {
        let rx_sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut rx = GroReceiver::new(&rx_sock);
        assert!(rx.gro, "UDP GRO could not be enabled");
        let tx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to: nix::sys::socket::SockaddrStorage = rx_sock.local_addr().unwrap().into();
        // Five datagrams of 1000 bytes and a last one of 300 in one send.
        let data: Vec<u8> = (0..5300u32).map(|i| (i / 1000) as u8).collect();
        send_segments(&tx, &data, Some(1000), &to).unwrap();
        let mut buf = vec![0u8; BUF_LEN];
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv(&rx_sock, &mut buf)).await.unwrap().unwrap();
        assert_eq!(got.from, tx.local_addr().unwrap());
        assert_eq!(got.len, 5300);
        assert_eq!(got.segment, Some(1000));
        let chunks: Vec<&[u8]> = buf[..got.len].chunks(got.segment.unwrap()).collect();
        assert_eq!(chunks.len(), 6);
        for (i, c) in chunks.iter().enumerate() {
            assert!(c.iter().all(|&b| usize::from(b) == i), "datagram {i}");
        }
        // A single datagram comes without a segment size (or with its own length).
        tx.send_to(&[7u8; 100], rx_sock.local_addr().unwrap()).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv(&rx_sock, &mut buf)).await.unwrap().unwrap();
        assert_eq!(got.len, 100);
        assert!(got.segment.is_none_or(|s| s >= 100), "{got:?}");
        assert!(matches!(rx.try_recv(&rx_sock, &mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock));
    }
}
