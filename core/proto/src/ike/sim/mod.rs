//! A two-peer simulator with virtual time, in the style of quinn-proto's `Pair::drive` tests: our initiator
//! ([`IkeSa`]) against a scripted responder ([`Responder`]), with hooks to drop, duplicate, corrupt, delay
//! (reorder) and inspect every datagram. Deterministic: fixed seeds, and time only moves when the simulator moves
//! it (to the next delivery or the initiator's next `poll_timeout` deadline).

#[cfg(test)]
mod fragmentation_tests;
#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod impairment_tests;
#[cfg(test)]
mod legacy_tests;
#[cfg(test)]
mod liveness_tests;
#[cfg(test)]
mod pq_tests;
#[cfg(test)]
mod redirect_tests;
pub(crate) mod responder;
#[cfg(test)]
pub(crate) mod revocation_tests;
#[cfg(test)]
pub(crate) mod tests;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

pub use responder::{cidr_ts, Responder, ResponderConfig};

#[cfg(test)]
use super::IkeError;
use super::{ChildSa, CloseReason, Event, IkeConfig, IkeSa, SessionInfo, SocketKind, Timer};
use crate::wire::{EncryptedFragment, Header, Message, Payload};

use zeroize::Zeroizing;

use crate::ike::{AuthConfig, EspProposal, IkeProposal, Retransmit};
use crate::wire::{IdType, Identification};

/// The pre-shared key of [`config`] and of [`ResponderConfig::default`].
pub const PSK: &[u8] = b"simulated pre-shared key";

/// An FQDN identity.
pub fn fqdn(s: &str) -> Identification {
    Identification { id_type: IdType::ID_FQDN, data: s.as_bytes().to_vec() }
}

/// A PSK initiator offering `ike` and `esp` (strongSwan syntax), full tunnel, the defaults elsewhere: what the
/// scenarios and the handshake benchmark start from.
pub fn config(ike: &str, esp: &str) -> IkeConfig {
    IkeConfig {
        local_id: fqdn("client.example.org"),
        remote_id: None,
        remote_id_loose: false,
        legacy_rsa_sha1: false,
        send_remote_id: true,
        auth: AuthConfig::Psk(Zeroizing::new(PSK.to_vec())),
        gateway_auth: crate::ike::GatewayAuth::Psk,
        eap_only: false,
        ike_proposals: vec![IkeProposal::parse(ike).expect("IKE proposal")],
        esp_proposals: vec![EspProposal::parse(esp).expect("ESP proposal")],
        request_ipv4: true,
        request_ipv6: false,
        request_dns: true,
        ts_i: vec![cidr_ts("0.0.0.0/0")],
        ts_r: vec![cidr_ts("0.0.0.0/0")],
        retransmit: Retransmit::default(),
        force_encap: false,
        fragment_mtu: 1280,
        keepalive: None,
        dpd: None,
        dpd_tries: 2,
        child_lifetime: None,
        ike_lifetime: None,
        child_lifetime_bytes: None,
        reauth_lifetime: None,
        mobike: false,
        redirect: true,
        redirected_from: None,
        initial_contact: true,
        pq_fallback: false,
        ppk: None,
    }
}

/// Our address as the initiator knows it (the IKE socket).
pub const INITIATOR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)), 500);
/// Our NAT-T socket.
pub const INITIATOR_NATT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)), 4500);
/// The responder's address.
pub const RESPONDER_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// The seed of the initiator.
pub const INITIATOR_SEED: [u8; 32] = [0x49; 32];
/// Default bound on simulation steps.
pub const MAX_STEPS: usize = 10_000;

/// Which way a datagram goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    ToResponder,
    ToInitiator,
}

/// A datagram as sent (before its [`Fate`]).
#[derive(Debug, Clone)]
pub struct Datagram {
    pub dir: Dir,
    /// Virtual time since the start of the simulation.
    pub at: Duration,
    /// Its number among the datagrams sent in the same direction (0-based).
    pub index: usize,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// The initiator's socket it leaves from or arrives at.
    pub socket: SocketKind,
    /// The UDP payload (with the non-ESP marker on the NAT-T socket).
    pub payload: Vec<u8>,
}

impl Datagram {
    /// The IKE message without the non-ESP marker, or `None` for a non-IKE (ESP) datagram on port 4500.
    pub fn ike(&self) -> Option<&[u8]> {
        strip_marker(self.socket, &self.payload)
    }

    /// The decoded IKE header.
    pub fn header(&self) -> Option<Header> {
        self.ike().and_then(|b| Header::decode(b).ok())
    }

    /// The decoded message (encrypted payloads stay encrypted).
    pub fn message(&self) -> Option<Message> {
        self.ike().and_then(|b| Message::decode(b).ok())
    }

    /// Is this an IKE message of exchange `exchange`, a request or a response?
    pub fn is(&self, exchange: crate::wire::ExchangeType, response: bool) -> bool {
        self.header().is_some_and(|h| h.exchange == exchange && h.flags.response == response)
    }

    /// The Encrypted Fragment payload if this is an RFC 7383 fragment.
    pub fn skf(&self) -> Option<EncryptedFragment> {
        match self.message()?.payloads.pop()? {
            Payload::Skf(f) => Some(f),
            _ => None,
        }
    }

    /// A NAT keepalive (RFC 3948 §2.3): one 0xFF byte on the NAT-T socket.
    pub fn is_keepalive(&self) -> bool {
        self.socket == SocketKind::NatT && self.payload == [0xff]
    }
}

fn strip_marker(socket: SocketKind, payload: &[u8]) -> Option<&[u8]> {
    match socket {
        SocketKind::Ike => Some(payload),
        SocketKind::NatT => payload.strip_prefix(&[0u8; 4][..]),
    }
}

/// What happens to a datagram.
#[derive(Debug, Clone)]
pub enum Fate {
    Deliver,
    Drop,
    /// Deliver these UDP payloads instead, each after its own extra delay: duplication, corruption, delay and
    /// reordering (a delayed datagram is overtaken by later ones).
    Replace(Vec<(Duration, Vec<u8>)>),
}

impl Fate {
    /// Deliver the datagram twice.
    pub fn duplicate(d: &Datagram) -> Fate {
        Fate::Replace(vec![(Duration::ZERO, d.payload.clone()), (Duration::ZERO, d.payload.clone())])
    }

    /// Deliver it late.
    pub fn delay(d: &Datagram, by: Duration) -> Fate {
        Fate::Replace(vec![(by, d.payload.clone())])
    }
}

type FateHook = Box<dyn FnMut(&Datagram) -> Fate>;

struct InFlight {
    at: Instant,
    seq: u64,
    dgram: Datagram,
}

/// The initiator and the responder, a virtual clock and the network between them.
pub struct Pair {
    pub start: Instant,
    pub now: Instant,
    pub initiator: IkeSa,
    pub responder: Responder,
    /// Every datagram sent, in order, as sent.
    pub log: Vec<Datagram>,
    /// Every event of the initiator, with its virtual time.
    pub events: Vec<(Duration, Event)>,
    /// Every timer of the initiator that fired, with its virtual time and kind.
    pub timers: Vec<(Duration, Timer)>,
    /// One-way delay of the network.
    pub latency: Duration,
    /// Datagrams to an address nobody listens on, or non-IKE datagrams.
    pub undeliverable: Vec<Datagram>,
    pub max_steps: usize,
    fate: FateHook,
    in_flight: Vec<InFlight>,
    seq: u64,
    steps: usize,
    sent: [usize; 2],
}

impl Pair {
    /// A pair with the initiator's IKE_SA_INIT already queued.
    pub fn new(config: IkeConfig, responder: ResponderConfig) -> Pair {
        let start = crate::fuzzing::epoch();
        let remote = SocketAddr::new(IpAddr::V4(RESPONDER_IP), 500);
        let initiator = match IkeSa::new(config, INITIATOR, remote, start, INITIATOR_SEED) {
            Ok(sa) => sa,
            Err(e) => panic!("IkeSa::new: {e}"),
        };
        Pair {
            start,
            now: start,
            initiator,
            responder: Responder::new(responder, RESPONDER_IP),
            log: Vec::new(),
            events: Vec::new(),
            timers: Vec::new(),
            latency: Duration::ZERO,
            undeliverable: Vec::new(),
            max_steps: MAX_STEPS,
            fate: Box::new(|_| Fate::Deliver),
            in_flight: Vec::new(),
            seq: 0,
            steps: 0,
            sent: [0; 2],
        }
    }

    /// Decide the fate of every datagram from now on.
    pub fn set_fate(&mut self, f: impl FnMut(&Datagram) -> Fate + 'static) {
        self.fate = Box::new(f);
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Move queued datagrams of both peers onto the network and the initiator's events into [`Pair::events`].
    fn collect(&mut self) {
        let at = self.elapsed();
        while let Some(t) = self.initiator.poll_transmit() {
            let src = match t.socket {
                SocketKind::Ike => INITIATOR,
                SocketKind::NatT => INITIATOR_NATT,
            };
            let d = Datagram {
                dir: Dir::ToResponder,
                at,
                index: self.sent[0],
                src,
                dst: t.remote,
                socket: t.socket,
                payload: t.payload,
            };
            self.sent[0] += 1;
            self.launch(d);
        }
        while let Some(t) = self.responder.poll_transmit() {
            let socket = if t.dst.port() == INITIATOR_NATT.port() { SocketKind::NatT } else { SocketKind::Ike };
            let d = Datagram {
                dir: Dir::ToInitiator,
                at,
                index: self.sent[1],
                src: SocketAddr::new(IpAddr::V4(RESPONDER_IP), t.from_port),
                dst: t.dst,
                socket,
                payload: t.payload,
            };
            self.sent[1] += 1;
            self.launch(d);
        }
        while let Some(e) = self.initiator.poll_event() {
            self.events.push((at, e));
        }
    }

    fn launch(&mut self, d: Datagram) {
        let copies = match (self.fate)(&d) {
            Fate::Deliver => vec![(Duration::ZERO, d.payload.clone())],
            Fate::Drop => vec![],
            Fate::Replace(v) => v,
        };
        for (delay, payload) in copies {
            self.seq += 1;
            let dgram = Datagram { payload, ..d.clone() };
            self.in_flight.push(InFlight { at: self.now + self.latency + delay, seq: self.seq, dgram });
        }
        self.log.push(d);
    }

    fn deliver(&mut self, d: Datagram) {
        match d.dir {
            Dir::ToResponder => {
                let ours = d.dst.ip() == IpAddr::V4(RESPONDER_IP);
                let socket = match d.dst.port() {
                    500 => Some(SocketKind::Ike),
                    4500 => Some(SocketKind::NatT),
                    _ => None,
                };
                match (ours, socket) {
                    (true, Some(SocketKind::NatT)) if d.is_keepalive() => self.responder.handle_keepalive(d.src),
                    (true, Some(s)) => match strip_marker(s, &d.payload) {
                        Some(ike) => {
                            let ike = ike.to_vec();
                            self.responder.handle(d.src, d.dst.port(), &ike);
                        }
                        None => self.undeliverable.push(d),
                    },
                    _ => self.undeliverable.push(d),
                }
            }
            Dir::ToInitiator => {
                let ours = d.dst == INITIATOR || d.dst == INITIATOR_NATT;
                match (ours, strip_marker(d.socket, &d.payload)) {
                    (true, Some(ike)) => {
                        let ike = ike.to_vec();
                        self.initiator.handle_datagram(self.now, &ike);
                    }
                    _ => self.undeliverable.push(d),
                }
            }
        }
    }

    /// One step: deliver the next datagram or fire the initiator's timer, whichever is due first (deliveries win
    /// ties). Returns `false` when nothing is left to do.
    pub fn step(&mut self) -> bool {
        self.steps += 1;
        assert!(self.steps <= self.max_steps, "simulation did not settle within {} steps", self.max_steps);
        self.collect();
        let next = self.in_flight.iter().enumerate().min_by_key(|(_, f)| (f.at, f.seq)).map(|(i, f)| (i, f.at));
        let poll = self.initiator.poll_timeout();
        let timer = poll.map(|(t, _)| t);
        let delivery = match (next, timer) {
            (None, None) => return false,
            (Some((i, at)), Some(t)) if at <= t => Some(i),
            (Some((i, _)), None) => Some(i),
            _ => None,
        };
        match (delivery, timer) {
            (Some(i), _) => {
                let f = self.in_flight.swap_remove(i);
                self.now = self.now.max(f.at);
                self.deliver(f.dgram);
            }
            (None, Some(t)) => {
                self.now = self.now.max(t);
                if let Some((_, kind)) = poll {
                    self.timers.push((self.elapsed(), kind));
                }
                self.initiator.handle_timeout(self.now);
            }
            (None, None) => return false,
        }
        self.collect();
        true
    }

    /// Run until nothing is in flight and the initiator has no timer.
    pub fn drive(&mut self) {
        while self.step() {}
    }

    /// Run until `stop` holds (checked before every step) or nothing is left to do; returns whether `stop` held.
    pub fn drive_until(&mut self, mut stop: impl FnMut(&Pair) -> bool) -> bool {
        loop {
            self.collect();
            if stop(self) {
                return true;
            }
            if !self.step() {
                return false;
            }
        }
    }

    /// When the next thing happens: a delivery or the initiator's timer.
    fn next_due(&self) -> Option<Instant> {
        let delivery = self.in_flight.iter().map(|f| f.at).min();
        let timer = self.initiator.poll_timeout().map(|(t, _)| t);
        match (delivery, timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Run everything due up to `at` (virtual time since the start), then move the clock to `at`. For scenarios
    /// that never settle (keepalives, dead peer detection).
    pub fn run_until(&mut self, at: Duration) {
        let until = self.start + at;
        loop {
            self.collect();
            match self.next_due() {
                Some(t) if t <= until => {
                    self.step();
                }
                _ => break,
            }
        }
        self.now = self.now.max(until);
    }

    /// Feed bytes straight to the initiator (no marker handling), as if they had arrived now.
    pub fn inject_to_initiator(&mut self, ike: &[u8]) {
        self.initiator.handle_datagram(self.now, ike);
        self.collect();
    }

    /// Close the initiator now.
    pub fn close(&mut self) {
        self.initiator.close(self.now);
        self.collect();
    }

    /// Close the initiator as replaced by a reauthenticated IKE SA.
    pub fn retire(&mut self) {
        self.initiator.retire(self.now);
        self.collect();
    }

    /// The session info of the `Established` event.
    pub fn session(&self) -> Option<&SessionInfo> {
        self.events.iter().find_map(|(_, e)| match e {
            Event::Established(i) => Some(i),
            _ => None,
        })
    }

    /// The Child SA the initiator installed.
    pub fn child(&self) -> Option<&ChildSa> {
        self.events.iter().find_map(|(_, e)| match e {
            Event::ChildSaInstalled(c) => Some(c),
            _ => None,
        })
    }

    /// The `Closed` event, with its time.
    pub fn closed(&self) -> Option<(Duration, &CloseReason)> {
        self.events.iter().find_map(|(t, e)| match e {
            Event::Closed(r) => Some((*t, r)),
            _ => None,
        })
    }

    /// Datagrams sent in one direction.
    pub fn sent(&self, dir: Dir) -> impl Iterator<Item = &Datagram> {
        self.log.iter().filter(move |d| d.dir == dir)
    }
}
