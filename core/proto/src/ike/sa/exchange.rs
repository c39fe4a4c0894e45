//! The exchange layer of an IKE SA (RFC 7296 §2.1-§2.3, §3.14; RFC 7383): message IDs, our one request in
//! flight and its retransmission, the cached answer to the gateway's last request, SK protection and fragment
//! reassembly, and the datagrams to the gateway's address. It knows who the peers are and which keys protect
//! their messages, not what the messages mean.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use tracing::{debug, info};
use zeroize::Zeroizing;

use super::reassembly::Reassembly;
use super::{Handling, RequestKind, SocketKind, Transmit, NATT_PORT, NON_ESP_MARKER};
use crate::crypto::IkeKeys;
use crate::ike::config::Retransmit;
use crate::ike::error::IkeError;
use crate::ike::proposal::IkeSuite;
use crate::wire::{self, ExchangeType, Flags, Header, Message, Payload};

/// An IKE header for our messages (§3.1); the length is filled in when encoding.
pub(crate) fn ike_header(
    spi_i: u64,
    spi_r: u64,
    exchange: ExchangeType,
    initiator: bool,
    response: bool,
    message_id: u32,
) -> Header {
    Header {
        spi_i,
        spi_r,
        next_payload: 0,
        version: 0x20,
        exchange,
        flags: Flags { initiator, version: false, response },
        message_id,
        length: 0,
    }
}

/// Protect one message with `keys` in the given role (no fragmentation: for short control messages).
fn seal(
    keys: &IkeKeys,
    initiator: bool,
    header: Header,
    payloads: &[Payload],
    rng: &mut ChaCha20Rng,
) -> Result<Vec<u8>, IkeError> {
    let cipher = keys.outbound(initiator);
    let mut inner = Zeroizing::new(Vec::new());
    let first = wire::encode_chain(payloads, &mut inner);
    let mut msg = wire::encode_sk_prefix(&header, first, cipher.sealed_len(inner.len()));
    cipher.seal(&mut msg, &inner, rng)?;
    Ok(msg)
}

/// The inner payloads of an SK message (§3.14), authenticated and decrypted with `keys` in the given role.
fn open_sk(keys: &IkeKeys, initiator: bool, raw: &[u8], msg: &Message) -> Result<Vec<Payload>, Handling> {
    for p in &msg.payloads {
        if let Payload::Sk(sk) = p {
            let plain = keys
                .inbound(initiator)
                .open(raw, sk.offset + 4)
                .map_err(|e| Handling::Drop(format!("decryption failed: {e}")))?;
            return wire::decode_chain(sk.first_inner, &plain, 0)
                .map_err(|e| Handling::Drop(format!("inner payloads: {e}")));
        }
    }
    Err(Handling::Drop("message is not encrypted".into()))
}

/// Our one outstanding request (window size 1, §2.3).
struct Pending {
    kind: RequestKind,
    message_id: u32,
    /// The datagrams of the message: one, or its RFC 7383 fragments.
    message: Vec<Vec<u8>>,
    /// Number of sends so far, and the most we make.
    sends: u32,
    max_sends: u32,
    deadline: Instant,
    first_sent: Instant,
}

/// Our request went unanswered through all its retransmissions (§2.1).
pub(super) struct GaveUp {
    pub kind: RequestKind,
    pub tries: u32,
    pub waited: Duration,
}

/// The IKE SA we rekeyed away from, kept only to exchange its Delete (§1.3.2).
pub(super) struct OldIke {
    pub spi_i: u64,
    pub spi_r: u64,
    initiator: bool,
    keys: Option<IkeKeys>,
    next_message_id: u32,
    /// Our answer to the gateway's last request on it (typically its IKE rekey), for a retransmission (§2.1).
    last_response: Option<(u32, Vec<Vec<u8>>)>,
    /// The message ID of our Delete on it, once sent.
    delete_id: Option<u32>,
}

impl OldIke {
    /// Our cached answer to the gateway's request `message_id` on the old IKE SA, if it was the last one.
    pub fn cached_response(&self, message_id: u32) -> Option<&[Vec<u8>]> {
        self.last_response.as_ref().filter(|(id, _)| *id == message_id).map(|(_, r)| r.as_slice())
    }

    /// Whether a response with this ID answers our Delete (and not a request that was in flight when the gateway
    /// rekeyed).
    pub fn answers_delete(&self, message_id: u32) -> bool {
        self.delete_id == Some(message_id)
    }

    /// Whether a message with this header belongs to the old IKE SA.
    pub fn owns(&self, h: &Header) -> bool {
        self.spi_i == h.spi_i && self.spi_r == h.spi_r
    }

    /// The inner payloads of a message on the old IKE SA.
    pub fn open(&self, raw: &[u8], msg: &Message) -> Result<Vec<Payload>, Handling> {
        let keys = self.keys.as_ref().ok_or(Handling::Drop("old IKE SA without keys".into()))?;
        open_sk(keys, self.initiator, raw, msg).map_err(|e| match e {
            Handling::Drop(reason) => Handling::Drop(format!("old IKE SA: {reason}")),
            fatal => fatal,
        })
    }

    /// Our answer (empty) to the gateway's request `h` on the old IKE SA.
    pub fn seal_response(&self, h: &Header, rng: &mut ChaCha20Rng) -> Result<Vec<u8>, IkeError> {
        let keys = self.keys.as_ref().ok_or(IkeError::Protocol("old IKE SA without keys"))?;
        let header = ike_header(self.spi_i, self.spi_r, h.exchange, self.initiator, true, h.message_id);
        seal(keys, self.initiator, header, &[], rng)
    }

    /// A request on the old IKE SA (its Delete), fire and forget.
    pub fn seal_request(&mut self, payloads: &[Payload], rng: &mut ChaCha20Rng) -> Result<Vec<u8>, IkeError> {
        let header = ike_header(
            self.spi_i,
            self.spi_r,
            ExchangeType::INFORMATIONAL,
            self.initiator,
            false,
            self.next_message_id,
        );
        self.delete_id = Some(self.next_message_id);
        self.next_message_id = self.next_message_id.wrapping_add(1);
        let keys = self.keys.as_ref().ok_or(IkeError::Protocol("old IKE SA without keys"))?;
        seal(keys, self.initiator, header, payloads, rng)
    }
}

/// The exchange layer of one IKE SA; see the module docs.
pub(super) struct Exchange {
    /// The SPIs of the IKE SA, and whether we are its initiator (not after a rekey the gateway started, §2.18).
    pub spi_i: u64,
    pub spi_r: u64,
    pub initiator: bool,
    /// The negotiated algorithms and the keys from them; `None` before IKE_SA_INIT completed and once closed.
    pub suite: Option<IkeSuite>,
    pub keys: Option<IkeKeys>,
    /// Both sides announced IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383 §2.3).
    pub fragmentation: bool,
    /// The largest IP datagram we send once fragmentation is negotiated.
    fragment_mtu: u16,
    retransmit: Retransmit,
    next_message_id: u32,
    pending: Option<Pending>,
    /// Next request ID we expect from the gateway, and our cached answer to the previous one (§2.2).
    peer_next_id: u32,
    last_response: Option<(u32, Vec<Vec<u8>>)>,
    /// Our last response went out while our own request with the same ID was unanswered: it is sent once more
    /// when that request's answer arrives. strongSwan 5.9 drops a response whose ID is that of the request it is still
    /// processing ("ignoring request with ID n, already processing"), e.g. its Child SA rekey started while it
    /// answers our UPDATE_SA_ADDRESSES; the rekey then waits for its own retransmission (4 s), without traffic.
    resend_after_answer: bool,
    /// Reassembly of an RFC 7383 fragmented message (only for the message ID we expect).
    reassembly: Option<Reassembly>,
    /// Our address (for NAT detection) and the gateway's; `nat_t`: IKE runs on the NAT-T socket (port 4500,
    /// with the non-ESP marker, RFC 3948 §2.2).
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub nat_t: bool,
    /// Over TCP (RFC 9329): `local` and `remote` are the stream's ends, which moving to NAT-T leaves alone.
    pub stream: bool,
    transmits: VecDeque<Transmit>,
}

impl Exchange {
    pub fn new(
        spi_i: u64,
        local: SocketAddr,
        remote: SocketAddr,
        nat_t: bool,
        fragment_mtu: u16,
        retransmit: Retransmit,
    ) -> Exchange {
        Exchange {
            spi_i,
            spi_r: 0,
            initiator: true,
            suite: None,
            keys: None,
            fragmentation: false,
            fragment_mtu,
            retransmit,
            next_message_id: 0,
            pending: None,
            peer_next_id: 0,
            last_response: None,
            resend_after_answer: false,
            reassembly: None,
            local,
            remote,
            nat_t,
            stream: false,
            transmits: VecDeque::new(),
        }
    }

    /// The keys of IKE_SA_INIT are in place: requests continue with message ID 1 (§2.2).
    pub fn keyed(&mut self, spi_r: u64, suite: IkeSuite, keys: IkeKeys, fragmentation: bool) {
        self.spi_r = spi_r;
        self.suite = Some(suite);
        self.keys = Some(keys);
        self.fragmentation = fragmentation;
        self.pending = None;
        self.next_message_id = 1;
    }

    /// The message ID our next request will carry (§2.2).
    pub fn next_message_id(&self) -> u32 {
        self.next_message_id
    }

    /// New keys for this IKE SA: after each additional key exchange (RFC 9370 §2.2.2) or a PPK (RFC 8784).
    pub fn update_keys(&mut self, keys: IkeKeys) {
        self.keys = Some(keys);
    }

    /// Move to a new IKE SA (§2.18): new SPIs and keys, message IDs from zero. Returns the old one.
    pub fn rekeyed(&mut self, spi_i: u64, spi_r: u64, initiator: bool, suite: IkeSuite, keys: IkeKeys) -> OldIke {
        let old = OldIke {
            spi_i: self.spi_i,
            spi_r: self.spi_r,
            initiator: self.initiator,
            keys: self.keys.replace(keys),
            next_message_id: self.next_message_id,
            last_response: self.last_response.take(),
            delete_id: None,
        };
        self.spi_i = spi_i;
        self.spi_r = spi_r;
        self.initiator = initiator;
        self.suite = Some(suite);
        self.next_message_id = 0;
        self.peer_next_id = 0;
        self.last_response = None;
        self.resend_after_answer = false;
        self.reassembly = None;
        old
    }

    /// The IKE SA is gone: no request in flight, no keys, nothing half reassembled.
    pub fn close(&mut self) {
        self.pending = None;
        self.keys = None;
        self.reassembly = None;
    }

    /// A request of ours is in flight.
    pub fn busy(&self) -> bool {
        self.pending.is_some()
    }

    /// The kind of our request in flight, if any.
    pub fn pending_kind(&self) -> Option<RequestKind> {
        self.pending.as_ref().map(|p| p.kind)
    }

    /// Forget the request in flight (its answer no longer matters).
    pub fn cancel(&mut self) {
        self.pending = None;
    }

    /// How often the request in flight was sent so far (0 without one).
    pub fn sends(&self) -> u32 {
        self.pending.as_ref().map_or(0, |p| p.sends)
    }

    /// When the request in flight is due for a retransmission (or to be given up).
    pub fn retransmit_deadline(&self) -> Option<Instant> {
        self.pending.as_ref().map(|p| p.deadline)
    }

    /// Next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// One 0xFF byte on the NAT-T socket keeps the NAT mapping (RFC 3948 §2.3).
    pub fn send_keepalive(&mut self) {
        self.transmits.push_back(Transmit { socket: SocketKind::NatT, remote: self.remote, payload: vec![0xff] });
    }

    /// Move IKE to the NAT-T socket (§2.23, RFC 4555 §3.3): the gateway's port 4500, ours `local_natt_port`.
    /// Over TCP only the non-ESP marker changes: the stream stays (RFC 9329 §3).
    pub fn float(&mut self, local_natt_port: u16) {
        self.nat_t = true;
        if !self.stream {
            self.remote.set_port(NATT_PORT);
            self.local.set_port(local_natt_port);
        }
    }

    pub fn emit_all(&mut self, messages: Vec<Vec<u8>>) {
        for m in messages {
            self.emit(m);
        }
    }

    /// Queue an IKE message for sending on the right socket.
    pub fn emit(&mut self, message: Vec<u8>) {
        let (socket, payload) = if self.nat_t {
            let mut v = Vec::with_capacity(4 + message.len());
            v.extend_from_slice(&NON_ESP_MARKER);
            v.extend_from_slice(&message);
            (SocketKind::NatT, v)
        } else {
            (SocketKind::Ike, message)
        };
        self.transmits.push_back(Transmit { socket, remote: self.remote, payload });
    }

    /// The header of our next request (§3.1).
    pub fn request_header(&self, exchange: ExchangeType) -> Header {
        ike_header(self.spi_i, self.spi_r, exchange, self.initiator, false, self.next_message_id)
    }

    /// Protect and send a request, and retransmit it until answered (at most `retransmits` times, §2.1).
    pub fn send_request(
        &mut self,
        now: Instant,
        exchange: ExchangeType,
        kind: RequestKind,
        payloads: &[Payload],
        retransmits: u32,
        rng: &mut ChaCha20Rng,
    ) -> Result<(), IkeError> {
        let message_id = self.next_message_id;
        let msgs = self.encrypt(self.request_header(exchange), payloads, rng)?;
        self.next_message_id = self.next_message_id.wrapping_add(1);
        self.start_request(now, kind, message_id, msgs, retransmits);
        Ok(())
    }

    /// Send a request's datagrams and keep them for retransmission.
    pub fn start_request(
        &mut self,
        now: Instant,
        kind: RequestKind,
        message_id: u32,
        message: Vec<Vec<u8>>,
        retransmits: u32,
    ) {
        self.pending = Some(Pending {
            kind,
            message_id,
            message: message.clone(),
            sends: 1,
            max_sends: retransmits + 1,
            deadline: now + self.retransmit.wait(0),
            first_sent: now,
        });
        self.emit_all(message);
    }

    /// Protect and send a request without waiting for its answer (leaving: §1.4.1, §2.21.2).
    pub fn send_unanswered(&mut self, payloads: &[Payload], rng: &mut ChaCha20Rng) -> Result<(), IkeError> {
        let msgs = self.encrypt(self.request_header(ExchangeType::INFORMATIONAL), payloads, rng)?;
        self.emit_all(msgs);
        Ok(())
    }

    /// Retransmit the request in flight if its deadline passed (§2.1); once the tries are used up, give it up.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<GaveUp> {
        let p = self.pending.as_mut()?;
        if now < p.deadline {
            return None;
        }
        if p.sends >= p.max_sends {
            let gave_up = GaveUp { kind: p.kind, tries: p.sends, waited: now.saturating_duration_since(p.first_sent) };
            self.pending = None;
            return Some(gave_up);
        }
        debug!(kind = ?p.kind, message_id = p.message_id, send = p.sends + 1, "retransmitting");
        p.deadline = now + self.retransmit.wait(p.sends);
        p.sends += 1;
        let msgs = p.message.clone();
        self.emit_all(msgs);
        None
    }

    /// Replace the request in flight by `message` (the same request, built again) and send it now, keeping its
    /// retransmission count and deadline. `false` without one.
    pub fn replace_request(&mut self, message: Vec<Vec<u8>>) -> bool {
        let Some(p) = self.pending.as_mut() else { return false };
        p.message = message.clone();
        self.emit_all(message);
        true
    }

    /// Send the request in flight again now, without counting it as a retransmission (a new TCP stream,
    /// RFC 9329 §6). `false` without one.
    pub fn resend(&mut self) -> bool {
        let Some(msgs) = self.pending.as_ref().map(|p| p.message.clone()) else { return false };
        self.emit_all(msgs);
        true
    }

    /// Which of our requests a response answers (§2.2: the one in flight, by message ID).
    pub fn response_to(&self, h: &Header) -> Result<RequestKind, Handling> {
        let p = self.pending.as_ref().ok_or(Handling::Drop("response without a request".into()))?;
        if h.message_id != p.message_id {
            return Err(Handling::Drop(format!("response to message ID {} (expected {})", h.message_id, p.message_id)));
        }
        Ok(p.kind)
    }

    /// The inner payloads of the response to our request in flight, which it completes.
    pub fn open_response(
        &mut self,
        raw: &[u8],
        msg: &Message,
        expected: ExchangeType,
    ) -> Result<Vec<Payload>, Handling> {
        if msg.header.exchange != expected || msg.header.spi_r != self.spi_r {
            return Err(Handling::Drop("response does not match our request".into()));
        }
        let payloads = self.decrypt(raw, msg)?;
        self.pending = None;
        if let (true, Some((id, resp))) = (std::mem::take(&mut self.resend_after_answer), &self.last_response) {
            debug!(message_id = id, "our answer shared its ID with our request: sending it once more");
            let resp = resp.clone();
            self.emit_all(resp);
        }
        Ok(payloads)
    }

    /// The inner payloads of the gateway's next request; `None` for an authentic retransmission of the previous
    /// one, which our cached response answers (§2.1).
    pub fn open_request(&mut self, raw: &[u8], msg: &Message) -> Result<Option<Vec<Payload>>, Handling> {
        let id = msg.header.message_id;
        if self.last_response.as_ref().is_some_and(|(last, _)| *last == id) {
            // Only an authentic retransmission is answered (an unauthenticated copy could make us reflect our
            // cached response at will).
            if !self.authentic(raw, msg) {
                return Err(Handling::Drop("retransmitted request does not authenticate".into()));
            }
            // A fragmented retransmission: answer once, on its first fragment (RFC 7383 §2.6.1).
            let first_fragment = msg.payloads.iter().all(|p| !matches!(p, Payload::Skf(f) if f.fragment_number != 1));
            if let (true, Some((_, resp))) = (first_fragment, self.last_response.as_ref()) {
                debug!(message_id = id, "gateway retransmitted a request, resending our response");
                let resp = resp.clone();
                self.emit_all(resp);
            }
            return Ok(None);
        }
        if id != self.peer_next_id {
            return Err(Handling::Drop(format!("request ID {id} (expected {})", self.peer_next_id)));
        }
        let payloads = self.decrypt(raw, msg)?;
        self.peer_next_id = self.peer_next_id.wrapping_add(1);
        Ok(Some(payloads))
    }

    /// Answer the gateway's request `h` with `reply`, and keep the answer for its retransmissions (§2.1).
    pub fn respond(&mut self, h: &Header, reply: &[Payload], rng: &mut ChaCha20Rng) -> Result<(), IkeError> {
        let header = ike_header(self.spi_i, self.spi_r, h.exchange, self.initiator, true, h.message_id);
        let resp = self.encrypt(header, reply, rng)?;
        self.resend_after_answer = self.pending.as_ref().is_some_and(|p| p.message_id == h.message_id);
        self.last_response = Some((h.message_id, resp.clone()));
        self.emit_all(resp);
        Ok(())
    }

    /// Largest IKE message we send unfragmented once fragmentation is negotiated: what fits the configured
    /// path MTU after the IP and UDP headers and the non-ESP marker (RFC 7383 §2.5.1).
    fn message_limit(&self) -> usize {
        let ip = if self.remote.is_ipv4() { 20 } else { 40 };
        let marker = if self.nat_t { 4 } else { 0 };
        usize::from(self.fragment_mtu).saturating_sub(ip + 8 + marker).max(256)
    }

    /// Protect a message (§3.14); if it is too large and the gateway supports it, as RFC 7383 fragments.
    fn encrypt(&self, header: Header, payloads: &[Payload], rng: &mut ChaCha20Rng) -> Result<Vec<Vec<u8>>, IkeError> {
        let limit = self.message_limit();
        let keys = self.keys.as_ref().ok_or(IkeError::Protocol("no IKE keys"))?;
        let cipher = keys.outbound(self.initiator);
        let mut inner = Zeroizing::new(Vec::new());
        let first = wire::encode_chain(payloads, &mut inner);
        let body_len = cipher.sealed_len(inner.len());
        if !self.fragmentation || wire::HEADER_LEN + 4 + body_len <= limit {
            let mut msg = wire::encode_sk_prefix(&header, first, body_len);
            cipher.seal(&mut msg, &inner, rng)?;
            return Ok(vec![msg]);
        }
        // Largest plaintext chunk whose fragment fits the limit (sealed_len grows with the plaintext).
        let room = limit.saturating_sub(wire::HEADER_LEN + 8);
        let mut chunk = room;
        while chunk > 1 && cipher.sealed_len(chunk) > room {
            chunk -= 1;
        }
        let total = inner.len().div_ceil(chunk.max(1));
        let total = u16::try_from(total).map_err(|_| IkeError::Protocol("message too large to fragment"))?;
        let mut out = Vec::with_capacity(usize::from(total));
        for (i, part) in inner.chunks(chunk.max(1)).enumerate() {
            let number = (i + 1) as u16;
            let first_inner = if i == 0 { first } else { 0 };
            let mut msg = wire::encode_skf_prefix(&header, first_inner, number, total, cipher.sealed_len(part.len()));
            cipher.seal(&mut msg, part, rng)?;
            out.push(msg);
        }
        info!(fragments = total, bytes = inner.len(), "sending IKE message in RFC 7383 fragments");
        Ok(out)
    }

    /// Whether an SK message or SKF fragment carries a valid integrity check under the current keys (§3.14).
    fn authentic(&self, raw: &[u8], msg: &Message) -> bool {
        let Some(keys) = self.keys.as_ref() else { return false };
        let cipher = keys.inbound(self.initiator);
        msg.payloads.iter().any(|p| match p {
            Payload::Sk(sk) => cipher.open(raw, sk.offset + 4).is_ok(),
            Payload::Skf(f) => self.fragmentation && cipher.open(raw, f.offset + 8).is_ok(),
            _ => false,
        })
    }

    /// Authenticate and decrypt an SK message, or collect an SKF fragment (RFC 7383 §2.6); returns the inner
    /// payloads once the message is whole.
    fn decrypt(&mut self, raw: &[u8], msg: &Message) -> Result<Vec<Payload>, Handling> {
        let keys = self.keys.as_ref().ok_or(Handling::Drop("no keys yet".into()))?;
        let Some(Payload::Skf(f)) = msg.payloads.iter().find(|p| matches!(p, Payload::Sk(_) | Payload::Skf(_))) else {
            return open_sk(keys, self.initiator, raw, msg);
        };
        if !self.fragmentation {
            return Err(Handling::Drop("IKE fragment although fragmentation was not negotiated".into()));
        }
        // Authenticate first: forged fragments never take memory.
        let plain = keys
            .inbound(self.initiator)
            .open(raw, f.offset + 8)
            .map_err(|e| Handling::Drop(format!("fragment decryption failed: {e}")))?;
        let key = (msg.header.message_id, msg.header.flags.response);
        let r = self.reassembly.get_or_insert_with(|| Reassembly::new(key));
        if r.key != key {
            *r = Reassembly::new(key);
        }
        match r.add(f, plain) {
            Ok(Some((first, whole))) => {
                self.reassembly = None;
                wire::decode_chain(first, &whole, 0).map_err(|e| Handling::Drop(format!("reassembled payloads: {e}")))
            }
            Ok(None) => Err(Handling::Drop("fragment stored, waiting for the rest".into())),
            Err(reason) => {
                self.reassembly = None;
                Err(Handling::Drop(format!("fragment rejected: {reason}")))
            }
        }
    }
}
