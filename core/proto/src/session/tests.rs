//! The session policy in virtual time: a [`Session`] against scripted gateways ([`Responder`]s at several
//! addresses), a name service, and a runtime stand-in that records every [`Action`]. Reconnect, failover,
//! redirect limits, reauthentication fallback and revocation timeouts run here in milliseconds; the namespace
//! tests against real gateways stay the evidence that the runtime executes the actions.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::crypto::{CertError, GatewayCertPolicy, Revocation};
use crate::ike::sim::responder::{NatCheck, ResponderConfig};
use crate::ike::sim::revocation_tests::{crl, gateway as cert_gateway, URL};
use crate::ike::sim::tests::default_config;
use crate::ike::sim::{Responder, INITIATOR, INITIATOR_NATT};
use crate::ike::{GatewayAuth, SocketKind};
use crate::wire::{NotifyType, Payload};

const GW_A: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const GW_B: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
const GW_C: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 3);
const LATENCY: Duration = Duration::from_millis(10);
const MAX_STEPS: usize = 50_000;

/// What the runtime stand-in saw, with the virtual time.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // a test record, a few hundred per test
enum Seen {
    Event(Event),
    Resolve(String),
    Install { first: bool },
    Remove,
    Retarget(IpAddr),
    Fetch,
    OpenStream,
}

struct Sim {
    start: Instant,
    now: Instant,
    session: Session,
    gateways: Vec<Responder>,
    names: HashMap<String, IpAddr>,
    log: Vec<(Duration, Seen)>,
    /// Datagrams on the wire: (arrival, to the session?, gateway index or session, bytes).
    in_flight: Vec<(Instant, u64, Hop)>,
    /// A name lookup being answered at this time.
    lookup: Option<(Instant, Option<SocketAddr>)>,
    /// Answer revocation fetches with this CRL (never when `None`).
    crl: Option<Vec<u8>>,
    fetches: Vec<(Instant, u64)>,
    seq: u64,
    steps: usize,
    /// The TCP stream that is open (RFC 9329), one being opened, and what the path lets through.
    stream: Option<u64>,
    opening: Option<(Instant, u64)>,
    udp_blocked: bool,
    tcp_blocked: bool,
    /// The gateway accepts each stream and closes it at once (pluto without the kernel's espintcp).
    tcp_reset: bool,
}

enum Hop {
    ToGateway { gw: usize, port: u16, src: SocketAddr, ike: Vec<u8>, stream: Option<u64> },
    ToSession { ike: Vec<u8>, stream: Option<u64> },
}

fn session_config(ike: IkeConfig, backups: &[&str]) -> SessionConfig {
    SessionConfig {
        ike,
        gateway: SocketAddr::new(IpAddr::V4(GW_A), 500),
        gateway_name: None,
        backups: backups.iter().map(|b| b.to_string()).collect(),
        reconnect: Some(ReconnectPolicy::default()),
        local: INITIATOR,
        natt_port: INITIATOR_NATT.port(),
        transport: TransportPolicy::default(),
    }
}

/// Our end of the TCP stream `id`: each connection has its own source port.
fn stream_local(id: u64) -> SocketAddr {
    SocketAddr::new(INITIATOR.ip(), 40_000 + (id % 20_000) as u16)
}

fn gateways(config: ResponderConfig) -> Vec<Responder> {
    [GW_A, GW_B, GW_C]
        .iter()
        .enumerate()
        .map(|(i, ip)| {
            let mut c = config.clone();
            c.seed[0] = i as u8;
            Responder::new(c, *ip)
        })
        .collect()
}

impl Sim {
    fn new(config: SessionConfig, gateways: Vec<Responder>) -> Sim {
        Sim::at(config, gateways, 1_796_860_800)
    }

    fn at(config: SessionConfig, gateways: Vec<Responder>, unix: u64) -> Sim {
        let start = crate::fuzzing::epoch();
        let session = Session::new(config, start, unix, [7; 32]).expect("session");
        Sim {
            start,
            now: start,
            session,
            gateways,
            names: HashMap::new(),
            log: Vec::new(),
            in_flight: Vec::new(),
            lookup: None,
            crl: None,
            fetches: Vec::new(),
            seq: 0,
            steps: 0,
            stream: None,
            opening: None,
            udp_blocked: false,
            tcp_blocked: false,
            tcp_reset: false,
        }
    }

    /// The path cuts the TCP stream: the runtime reports it broken.
    fn cut_stream(&mut self) {
        if let Some(id) = self.stream.take() {
            self.session.stream_closed(self.now, id);
        }
    }

    fn streams_opened(&self) -> Vec<Duration> {
        self.log.iter().filter(|(_, s)| matches!(s, Seen::OpenStream)).map(|(t, _)| *t).collect()
    }

    fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    fn send(&mut self, hop: Hop) {
        self.seq += 1;
        self.in_flight.push((self.now + LATENCY, self.seq, hop));
    }

    /// Datagrams and actions out of everyone.
    fn collect(&mut self) {
        while let Some(t) = self.session.poll_transmit() {
            let (src, ike) = match t.socket {
                SocketKind::Ike => (INITIATOR, t.payload.clone()),
                SocketKind::NatT => (INITIATOR_NATT, t.payload.get(4..).unwrap_or_default().to_vec()),
            };
            let gw = self.gateways.iter().position(|g| g.addr().ip() == t.remote.ip());
            let tcp = self.session.transport() == Transport::Tcp;
            assert!(!tcp || self.stream.is_some(), "sent over TCP without a stream");
            if tcp && t.payload == [0xff] {
                panic!("a NAT keepalive over TCP");
            }
            if let Some(gw) = gw {
                if tcp {
                    // Over the stream, to the gateway's TCP port; the gateway answers on it.
                    let src = self.stream.map_or(INITIATOR_NATT, stream_local);
                    self.send(Hop::ToGateway { gw, port: DEFAULT_TCP_PORT, src, ike, stream: self.stream });
                } else if !self.udp_blocked {
                    self.send(Hop::ToGateway { gw, port: t.remote.port(), src, ike, stream: None });
                }
            }
        }
        for i in 0..self.gateways.len() {
            while let Some(t) = self.gateways[i].poll_transmit() {
                let ike = if t.from_port == 4500 { t.payload.get(4..).unwrap_or_default().to_vec() } else { t.payload };
                let stream = if self.session.transport() == Transport::Tcp { self.stream } else { None };
                if stream.is_none() && self.udp_blocked {
                    continue;
                }
                self.send(Hop::ToSession { ike, stream });
            }
        }
        while let Some(a) = self.session.poll_action() {
            let at = self.elapsed();
            let seen = match a {
                Action::Event(e) => Seen::Event(e),
                Action::Resolve { name, port } => {
                    let addr = self.names.get(&name).map(|ip| SocketAddr::new(*ip, port));
                    self.lookup = Some((self.now + LATENCY, addr));
                    Seen::Resolve(name)
                }
                Action::InstallChild { info, .. } => Seen::Install { first: info.is_some() },
                Action::RemoveChild { .. } => Seen::Remove,
                Action::Retarget { to, .. } => Seen::Retarget(to),
                Action::FetchRevocation { spi, .. } => {
                    self.fetches.push((self.now + LATENCY, spi));
                    Seen::Fetch
                }
                Action::OpenStream { id, to } => {
                    assert_eq!(to.port(), DEFAULT_TCP_PORT);
                    self.stream = None;
                    self.opening = Some((self.now + LATENCY, id));
                    Seen::OpenStream
                }
            };
            self.log.push((at, seen));
        }
    }

    /// One step: the earliest of a delivery, a lookup answer, a fetch answer and the session's timer.
    fn step(&mut self) -> bool {
        self.steps += 1;
        assert!(self.steps <= MAX_STEPS, "the simulation did not settle");
        self.collect();
        let delivery = self.in_flight.iter().enumerate().min_by_key(|(_, f)| (f.0, f.1)).map(|(i, f)| (f.0, i));
        let fetch = if self.crl.is_some() { self.fetches.first().map(|f| f.0) } else { None };
        let candidates = [
            delivery.map(|d| (d.0, 0)),
            self.lookup.as_ref().map(|l| (l.0, 1)),
            fetch.map(|t| (t, 2)),
            self.session.poll_timeout().map(|t| (t, 3)),
            self.opening.map(|o| (o.0, 4)),
        ];
        let Some((at, kind)) = candidates.into_iter().flatten().min() else { return false };
        self.now = self.now.max(at);
        match kind {
            0 => {
                let Some((_, i)) = delivery else { return false };
                let (_, _, hop) = self.in_flight.swap_remove(i);
                match hop {
                    // What was on a stream that broke since is gone.
                    Hop::ToGateway { stream: Some(id), .. } | Hop::ToSession { stream: Some(id), .. }
                        if self.stream != Some(id) => {}
                    Hop::ToGateway { gw, port, src, ike, .. } => self.gateways[gw].handle(src, port, &ike),
                    Hop::ToSession { ike, .. } => self.session.handle_datagram(self.now, &ike),
                }
            }
            4 => {
                if let Some((_, id)) = self.opening.take() {
                    if self.tcp_blocked {
                        self.session.stream_closed(self.now, id);
                    } else {
                        self.stream = Some(id);
                        self.session.stream_opened(self.now, id, stream_local(id));
                        if self.tcp_reset {
                            self.collect();
                            self.cut_stream();
                        }
                    }
                }
            }
            1 => {
                if let Some((_, addr)) = self.lookup.take() {
                    self.session.resolved(self.now, addr);
                }
            }
            2 => {
                let (_, spi) = self.fetches.remove(0);
                let data = self.crl.clone();
                self.session.revocation_fetched(self.now, spi, vec![RevocationResponse { url: URL.into(), data }]);
            }
            _ => self.session.handle_timeout(self.now),
        }
        self.collect();
        true
    }

    /// Run until `stop` holds or nothing is left to do; returns whether `stop` held.
    fn run_until(&mut self, mut stop: impl FnMut(&Sim) -> bool) -> bool {
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

    fn events(&self) -> impl Iterator<Item = &Event> {
        self.log.iter().filter_map(|(_, s)| match s {
            Seen::Event(e) => Some(e),
            _ => None,
        })
    }

    fn connected(&self) -> usize {
        self.events().filter(|e| matches!(e, Event::Connected { .. })).count()
    }

    fn reconnecting(&self) -> Vec<(u32, Duration, CloseReason)> {
        self.events()
            .filter_map(|e| match e {
                Event::Reconnecting { attempt, delay, reason } => Some((*attempt, *delay, reason.clone())),
                _ => None,
            })
            .collect()
    }

    fn closed(&self) -> Option<&CloseReason> {
        self.events().find_map(|e| match e {
            Event::Closed(r) => Some(r),
            _ => None,
        })
    }

    fn retargets(&self) -> Vec<IpAddr> {
        self.log
            .iter()
            .filter_map(|(_, s)| match s {
                Seen::Retarget(ip) => Some(*ip),
                _ => None,
            })
            .collect()
    }
}

/// A live IKE SA whose gateway dies: the session reconnects with growing, jittered delays and comes back
/// when the gateway does, reusing the tunnel (no Closed event, attempts counted from 1 again next time).
#[test]
fn reconnects_with_backoff_after_the_gateway_dies() {
    let mut ike = default_config();
    ike.dpd = Some(Duration::from_secs(30));
    let mut sim = Sim::new(session_config(ike, &[]), gateways(ResponderConfig::default()));
    assert!(sim.run_until(|s| s.connected() == 1));
    sim.gateways[0].config.silent = true;
    assert!(sim.run_until(|s| s.reconnecting().len() == 2));
    let r = sim.reconnecting();
    assert_eq!(r[0].0, 1);
    assert!(matches!(r[0].2, CloseReason::Error(IkeError::DeadPeer { .. })), "{:?}", r[0].2);
    assert!(r[0].1 >= Duration::from_millis(800) && r[0].1 <= Duration::from_millis(1200), "{:?}", r[0].1);
    // The second attempt timed out in IKE_SA_INIT: twice the delay (±20%).
    assert_eq!(r[1].0, 2);
    assert!(matches!(r[1].2, CloseReason::Error(IkeError::Timeout { .. })), "{:?}", r[1].2);
    assert!(r[1].1 >= Duration::from_millis(1600) && r[1].1 <= Duration::from_millis(2400), "{:?}", r[1].1);
    sim.gateways[0].config.silent = false;
    assert!(sim.run_until(|s| s.connected() == 2));
    assert!(sim.closed().is_none());
    assert_eq!(sim.session.attempt(), 0);
    assert!(sim.retargets().is_empty(), "the same gateway: no route moves");
    // Each connection installed its first Child SA with the tunnel settings.
    let firsts = sim.log.iter().filter(|(_, s)| matches!(s, Seen::Install { first: true, .. })).count();
    assert_eq!(firsts, 2);
}

/// Before it was ever up, a failure is final (a typo in the profile must not retry for ever), and credential
/// errors are never retried.
#[test]
fn no_reconnect_before_the_first_success_or_after_an_authentication_failure() {
    let mut sim = Sim::new(session_config(default_config(), &[]), gateways(ResponderConfig::default()));
    sim.gateways[0].config.silent = true;
    sim.run_until(|s| s.session.is_finished());
    assert!(matches!(sim.closed(), Some(CloseReason::Error(IkeError::Timeout { .. }))), "{:?}", sim.closed());
    assert!(sim.reconnecting().is_empty());

    let mut ike = default_config();
    ike.dpd = Some(Duration::from_secs(30));
    let mut sim = Sim::new(session_config(ike, &[]), gateways(ResponderConfig::default()));
    assert!(sim.run_until(|s| s.connected() == 1));
    // The gateway forgets us and now refuses our key: DPD fails, the reconnect's AUTH fails, that is final.
    sim.gateways[0].config.silent = true;
    assert!(sim.run_until(|s| !s.reconnecting().is_empty()));
    sim.gateways[0].config.silent = false;
    sim.gateways[0].config.psk = b"another key".to_vec();
    sim.run_until(|s| s.session.is_finished());
    assert_eq!(sim.closed(), Some(&CloseReason::Error(IkeError::AuthenticationFailed)));
    assert_eq!(sim.reconnecting().len(), 1);
}

/// A primary that does not answer makes way for the backups at once, in order: a backup name that does not
/// resolve is passed over, and the gateway's host route follows the address.
#[test]
fn fails_over_to_the_next_backup_that_resolves() {
    let config = session_config(default_config(), &["nowhere.example.net", "backup.example.net"]);
    let mut sim = Sim::new(config, gateways(ResponderConfig::default()));
    sim.names.insert("backup.example.net".into(), IpAddr::V4(GW_C));
    sim.gateways[0].config.silent = true;
    assert!(sim.run_until(|s| s.connected() == 1 || s.session.is_finished()));
    assert_eq!(sim.connected(), 1, "{:?}", sim.closed());
    assert_eq!(sim.session.gateway().ip(), IpAddr::V4(GW_C));
    assert_eq!(sim.retargets(), vec![IpAddr::V4(GW_C)]);
    let r = sim.reconnecting();
    assert_eq!(r.len(), 1);
    assert!(matches!(r[0].2, CloseReason::Error(IkeError::Timeout { .. })) && r[0].1 == Duration::ZERO, "{r:?}");
    let asked: Vec<_> = sim
        .log
        .iter()
        .filter_map(|(_, s)| match s {
            Seen::Resolve(n) => Some(n.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(asked, ["nowhere.example.net", "backup.example.net"]);
    assert!(sim.gateways[1].received.is_empty(), "203.0.113.2 is not in the profile");
}

/// When no gateway answers, a whole round of failovers ends the first connection (no endless loop).
#[test]
fn a_round_without_an_answer_ends_the_attempt() {
    let config = session_config(default_config(), &["203.0.113.2"]);
    let mut sim = Sim::new(config, gateways(ResponderConfig { silent: true, ..Default::default() }));
    sim.run_until(|s| s.session.is_finished());
    assert!(matches!(sim.closed(), Some(CloseReason::Error(IkeError::Timeout { .. }))), "{:?}", sim.closed());
    assert_eq!(sim.reconnecting().len(), 1, "one failover, then the round is over");
    assert!(!sim.gateways[0].received.is_empty() && !sim.gateways[1].received.is_empty());
}

/// Gateways that redirect to each other (RFC 5685): followed 5 times within 5 minutes, then the session
/// ends; a redirect to a host name is resolved first.
#[test]
fn redirect_loop_is_cut_after_five() {
    let mut sim = Sim::new(session_config(default_config(), &[]), gateways(ResponderConfig::default()));
    sim.names.insert("b.example.net".into(), IpAddr::V4(GW_B));
    sim.gateways[0].config.redirect_init = Some(GatewayIdentity::Fqdn("b.example.net".into()));
    sim.gateways[1].config.redirect_init = Some(GatewayIdentity::Addr(IpAddr::V4(GW_A)));
    sim.run_until(|s| s.session.is_finished());
    let r = sim.reconnecting();
    assert_eq!(r.len(), MAX_REDIRECTS, "{r:?}");
    assert!(r.iter().all(|(_, d, e)| *d == Duration::ZERO && matches!(e, CloseReason::Redirected(_))));
    assert_eq!(
        sim.closed(),
        Some(&CloseReason::Error(IkeError::Protocol("redirected more than 5 times within 5 minutes")))
    );
    assert!(sim.elapsed() < REDIRECT_WINDOW);
    let b = IpAddr::V4(GW_B);
    let a = IpAddr::V4(GW_A);
    assert_eq!(sim.retargets(), vec![b, a, b, a, b]);
}

/// A redirect that ends the loop: the second gateway accepts us.
#[test]
fn a_redirect_is_followed_to_a_gateway_that_accepts() {
    let mut sim = Sim::new(session_config(default_config(), &[]), gateways(ResponderConfig::default()));
    sim.gateways[0].config.redirect_init = Some(GatewayIdentity::Addr(IpAddr::V4(GW_B)));
    assert!(sim.run_until(|s| s.connected() == 1 || s.session.is_finished()));
    assert_eq!(sim.connected(), 1, "{:?}", sim.closed());
    assert_eq!(sim.session.gateway().ip(), IpAddr::V4(GW_B));
    assert_eq!(sim.retargets(), vec![IpAddr::V4(GW_B)]);
}

/// Make-before-break reauthentication whose new IKE SA fails: the current IKE SA keeps the tunnel (no
/// reconnect, no Closed), and the reauthentication is tried again 30 s later, then succeeds.
#[test]
fn failed_reauthentication_keeps_the_current_ike_sa() {
    let mut ike = default_config();
    ike.reauth_lifetime = Some(Duration::from_secs(3600));
    let mut sim = Sim::new(session_config(ike, &[]), gateways(ResponderConfig::default()));
    assert!(sim.run_until(|s| s.connected() == 1));
    let first = sim.session.ike_sa().spi_i();
    // The gateway refuses the reauthentication's key.
    sim.gateways[0].config.psk = b"rotated too early".to_vec();
    assert!(sim.run_until(|s| s.session.retiring.is_some()));
    let began = sim.elapsed();
    assert!(sim.run_until(|s| s.session.retiring.is_none()));
    assert_eq!(sim.session.ike_sa().spi_i(), first, "the current IKE SA carries on");
    assert_eq!(sim.session.ike_sa().state(), State::Established);
    assert!(sim.reconnecting().is_empty() && sim.closed().is_none());
    // Tried again after REAUTH_RETRY, with the key fixed this time.
    sim.gateways[0].config.psk = ResponderConfig::default().psk;
    assert!(sim.run_until(|s| s.session.retiring.is_some()));
    let again = sim.elapsed();
    assert!(again - began >= REAUTH_RETRY, "{began:?} -> {again:?}");
    assert!(sim.run_until(|s| s.connected() == 2));
    assert_ne!(sim.session.ike_sa().spi_i(), first, "the new IKE SA carries the tunnel");
    assert!(sim.closed().is_none());
}

/// A session with a certificate gateway (its certificate names a CRL, [`URL`]), and the gateway's PKI.
fn cert_session(mode: Revocation) -> (Sim, crate::ike::sim::revocation_tests::Gateway) {
    let gw = cert_gateway();
    let mut policy = GatewayCertPolicy::new(gw.anchors.clone());
    policy.revocation = mode;
    let mut ike = default_config();
    ike.gateway_auth = GatewayAuth::Certificate(Arc::new(policy));
    let responder = ResponderConfig { cert: Some(gw.cert.clone()), ..Default::default() };
    // 2030-01-15: inside the test CRL's validity.
    (Sim::at(session_config(ike, &[]), gateways(responder), 1_894_665_600), gw)
}

/// The IKE SA asks for the gateway's CRL through the session; unanswered, the policy decides after the fetch
/// timeout: relaxed connects, "if a URI is given" ends the session (a certificate error: not retried).
#[test]
fn an_unanswered_revocation_fetch_times_out_as_the_policy_says() {
    let (mut relaxed, _) = cert_session(Revocation::Relaxed);
    assert!(relaxed.run_until(|s| s.connected() == 1 || s.session.is_finished()));
    assert_eq!(relaxed.connected(), 1, "{:?}", relaxed.closed());
    assert_eq!(relaxed.log.iter().filter(|(_, s)| matches!(s, Seen::Fetch)).count(), 1);
    let fetched_at = relaxed.log.iter().find(|(_, s)| matches!(s, Seen::Fetch)).map(|(t, _)| *t);
    let connected_at =
        relaxed.log.iter().find(|(_, s)| matches!(s, Seen::Event(Event::Connected { .. }))).map(|(t, _)| *t);
    let waited = connected_at.zip(fetched_at).map(|(c, f)| c - f).unwrap_or_default();
    assert!(waited >= crate::ike::REVOCATION_FETCH_TIMEOUT, "{waited:?}");

    let (mut strict, _) = cert_session(Revocation::IfUri);
    strict.run_until(|s| s.session.is_finished());
    assert_eq!(
        strict.closed(),
        Some(&CloseReason::Error(IkeError::Certificate(CertError::RevocationUnknown(Some(URL.into()))))),
        "{:?}",
        strict.closed()
    );
    assert!(strict.reconnecting().is_empty());
}

/// An answered fetch: a CRL that lists the gateway's certificate ends the session before anything is installed.
#[test]
fn a_fetched_crl_that_revokes_the_gateway_ends_the_session() {
    let (mut sim, gw) = cert_session(Revocation::Relaxed);
    sim.crl = Some(crl(&gw.ca, &[5]));
    sim.run_until(|s| s.session.is_finished());
    assert!(
        matches!(sim.closed(), Some(CloseReason::Error(IkeError::Certificate(CertError::Revoked)))),
        "{:?}",
        sim.closed()
    );
    assert!(!sim.log.iter().any(|(_, s)| matches!(s, Seen::Install { .. })), "no Child SA from a revoked gateway");
}

/// Disconnecting between attempts ends the session at once, without a Delete to anyone.
#[test]
fn disconnect_while_waiting_to_reconnect_ends_at_once() {
    let mut ike = default_config();
    ike.dpd = Some(Duration::from_secs(30));
    let mut sim = Sim::new(session_config(ike, &[]), gateways(ResponderConfig::default()));
    assert!(sim.run_until(|s| s.connected() == 1));
    sim.gateways[0].config.silent = true;
    assert!(sim.run_until(|s| !s.reconnecting().is_empty()));
    let now = sim.now;
    sim.session.close(now);
    sim.collect();
    assert_eq!(sim.closed(), Some(&CloseReason::Local));
    assert!(sim.session.poll_transmit().is_none());
    assert!(sim.session.poll_timeout().is_none());
}

fn transport_config(mode: TransportMode) -> SessionConfig {
    let mut ike = default_config();
    ike.dpd = Some(Duration::from_secs(30));
    ike.keepalive = Some(Duration::from_secs(20));
    let mut c = session_config(ike, &[]);
    c.transport.mode = mode;
    c
}

fn connected_transport(sim: &Sim) -> Vec<Transport> {
    sim.events()
        .filter_map(|e| match e {
            Event::Connected { info, .. } => Some(info.transport),
            _ => None,
        })
        .collect()
}

/// `transport = "tcp"`: the stream is opened first, nothing is sent before it is open, IKE goes over it (no
/// NAT keepalives, the simulator panics on one), and the connection reports TCP.
#[test]
fn tcp_transport_connects_over_one_stream() {
    let mut sim = Sim::new(transport_config(TransportMode::Tcp), gateways(ResponderConfig::default()));
    sim.udp_blocked = true;
    assert!(sim.run_until(|s| s.connected() == 1));
    assert_eq!(connected_transport(&sim), vec![Transport::Tcp]);
    assert_eq!(sim.streams_opened(), vec![Duration::ZERO]);
    // A minute of idle: DPD over the stream, still one stream, no reconnect.
    let until = sim.now + Duration::from_secs(65);
    sim.run_until(|s| s.now >= until);
    assert_eq!(sim.streams_opened().len(), 1);
    assert!(sim.reconnecting().is_empty());
}

/// `auto`: a path that drops UDP costs the documented budget, then TCP carries the session; the choice is
/// remembered for this network, so the reconnect after the gateway died goes straight to TCP.
#[test]
fn auto_falls_back_to_tcp_and_remembers_the_choice() {
    let mut sim = Sim::new(transport_config(TransportMode::Auto), gateways(ResponderConfig::default()));
    sim.udp_blocked = true;
    assert!(sim.run_until(|s| s.connected() == 1));
    assert_eq!(connected_transport(&sim), vec![Transport::Tcp]);
    let opened = sim.streams_opened();
    assert_eq!(opened, vec![AUTO_UDP_BUDGET], "switched to TCP exactly when the budget ran out");
    sim.gateways[0].config.silent = true;
    assert!(sim.run_until(|s| !s.reconnecting().is_empty()));
    let lost = sim.elapsed();
    sim.gateways[0].config.silent = false;
    assert!(sim.run_until(|s| s.connected() == 2));
    assert_eq!(connected_transport(&sim), vec![Transport::Tcp, Transport::Tcp]);
    let opened = sim.streams_opened();
    let reconnect_stream = opened.iter().find(|t| **t > lost).copied().expect("a new stream");
    // Straight to TCP: within the reconnect delay (1 s ± 20%), not after another UDP budget.
    assert!(reconnect_stream - lost <= Duration::from_millis(1300), "{:?}", reconnect_stream - lost);
}

/// `auto` on a path where UDP works: no stream at all.
#[test]
fn auto_uses_udp_when_it_answers() {
    let mut sim = Sim::new(transport_config(TransportMode::Auto), gateways(ResponderConfig::default()));
    assert!(sim.run_until(|s| s.connected() == 1));
    assert_eq!(connected_transport(&sim), vec![Transport::Udp]);
    let until = sim.now + Duration::from_secs(30);
    sim.run_until(|s| s.now >= until);
    assert!(sim.streams_opened().is_empty());
}

/// A stream cut mid-session is opened again at once and a liveness check goes over the new one: the IKE SA
/// stays (no reconnect). While the path refuses TCP, new streams are tried with a bounded backoff; once the
/// DPD gives up the session reconnects as usual, and gets back on a new stream.
#[test]
fn a_cut_stream_is_reopened_and_the_ike_sa_kept() {
    let mut sim = Sim::new(transport_config(TransportMode::Tcp), gateways(ResponderConfig::default()));
    assert!(sim.run_until(|s| s.connected() == 1));
    let spi = sim.session.ike_sa().spi_i();
    let cut_at = sim.elapsed();
    sim.cut_stream();
    let until = sim.now + Duration::from_secs(5);
    sim.run_until(|s| s.now >= until);
    let opened = sim.streams_opened();
    assert_eq!(opened.len(), 2, "{opened:?}");
    assert!(opened[1] - cut_at <= Duration::from_millis(20), "reopened at once: {opened:?}");
    assert_eq!(sim.session.ike_sa().spi_i(), spi, "the same IKE SA");
    assert_eq!(sim.session.ike_sa().state(), State::Established);
    assert!(no_retransmissions(&sim));
    assert!(sim.reconnecting().is_empty());

    // The path refuses TCP for a while: bounded retries (0, 1, 2, 4, 8, 10, 10 ... s apart; each reconnect opens one too).
    sim.tcp_blocked = true;
    let before = sim.streams_opened().len();
    sim.cut_stream();
    let until = sim.now + Duration::from_secs(60);
    sim.run_until(|s| s.now >= until);
    let tries = sim.streams_opened().len() - before;
    // Backoff within the IKE SA, then the reconnects (DPD gave up) each open one: no storm.
    assert!((5..=16).contains(&tries), "{tries} stream attempts in a minute");
    sim.tcp_blocked = false;
    assert!(sim.run_until(|s| s.connected() == 2));
    assert_eq!(connected_transport(&sim), vec![Transport::Tcp, Transport::Tcp]);
}

/// With MOBIKE, the first request over a reopened stream is UPDATE_SA_ADDRESSES (the new connection is a new
/// source port; libreswan only moves its SAs then); without MOBIKE it is a liveness check. Either way the IKE SA
/// stays and the update (or check) is answered.
#[test]
fn a_reopened_stream_is_announced_by_mobike_when_negotiated() {
    for mobike in [true, false] {
        let responder = ResponderConfig { mobike, ..Default::default() };
        let mut config = transport_config(TransportMode::Tcp);
        config.ike.mobike = true;
        let mut sim = Sim::new(config, gateways(responder));
        assert!(sim.run_until(|s| s.connected() == 1));
        let spi = sim.session.ike_sa().spi_i();
        let before = sim.gateways[0].requests.len();
        sim.cut_stream();
        let until = sim.now + Duration::from_secs(5);
        sim.run_until(|s| s.now >= until);
        let after: Vec<&Vec<Payload>> = sim.gateways[0].requests[before..].iter().map(|(_, p)| p).collect();
        let update = |p: &Vec<Payload>| {
            p.iter().any(|p| matches!(p, Payload::Notify(n) if n.notify_type == NotifyType::UPDATE_SA_ADDRESSES))
        };
        assert_eq!(after.len(), 1, "mobike={mobike}: one request over the new stream: {after:?}");
        assert_eq!(update(after[0]), mobike, "mobike={mobike}: {after:?}");
        // NAT detection over TCP hashes the stream's ends: the gateway's TCP port and our new source port, so
        // the gateway (as libreswan does) neither believes itself behind a NAT nor sees one in front of us.
        let checks = &sim.gateways[0].nat_checks;
        // IKE_SA_INIT's, and with MOBIKE the update's on the new stream.
        assert_eq!(checks.len(), 1 + usize::from(mobike), "mobike={mobike}: {checks:?}");
        assert!(checks.iter().all(|c| *c == NatCheck { peer_behind_nat: false, behind_nat: false }), "{checks:?}");
        assert_eq!(sim.session.ike_sa().spi_i(), spi, "the same IKE SA");
        assert_eq!(sim.session.ike_sa().state(), State::Established);
        assert!(sim.gateways[0].errors.is_empty(), "{:?}", sim.gateways[0].errors);
        assert!(sim.reconnecting().is_empty());
        assert!(no_retransmissions(&sim), "mobike={mobike}");
    }
}

/// Every request reached the first gateway once: none was retransmitted, so each was answered in time.
fn no_retransmissions(sim: &Sim) -> bool {
    let requests: Vec<(u64, u32)> = sim.gateways[0]
        .received
        .iter()
        .filter(|r| !r.header.flags.response)
        .map(|r| (r.header.spi_i, r.header.message_id))
        .collect();
    let unique: std::collections::HashSet<&(u64, u32)> = requests.iter().collect();
    unique.len() == requests.len()
}

/// A gateway that accepts every stream and closes it at once (pluto on a kernel without espintcp) gets a
/// bounded number of new streams: the backoff only starts over once the gateway answered on one.
#[test]
fn a_gateway_that_closes_every_stream_is_not_reconnected_in_a_loop() {
    let mut sim = Sim::new(transport_config(TransportMode::Tcp), gateways(ResponderConfig::default()));
    sim.tcp_reset = true;
    sim.run_until(|s| s.session.is_finished());
    let opened = sim.streams_opened();
    // IKE_SA_INIT's retransmissions run out (about 2 minutes); 0, 1, 2, 4, 8, 10, 10... s apart.
    assert!(matches!(sim.closed(), Some(CloseReason::Error(IkeError::Timeout { .. }))), "{:?}", sim.closed());
    assert!(opened.len() <= 20, "{} streams: {opened:?}", opened.len());
    for w in opened.windows(3) {
        assert!(w[2] - w[0] >= Duration::from_secs(1), "no storm: {opened:?}");
    }
}
