//! Which transport carries the session (RFC 9329 TCP encapsulation or UDP), sans-IO: the profile's mode,
//! `auto`'s fallback from UDP to TCP when IKE_SA_INIT gets no answer within [`AUTO_UDP_BUDGET`], the choice
//! remembered per network (our address towards the gateway) for later reconnects, and the TCP stream's life:
//! the runtime opens it when asked ([`Action::OpenStream`]), reports it open or broken, and a broken stream is
//! opened again with a bounded backoff while the IKE SA lives (RFC 9329 §6); on the new stream the request in
//! flight goes out again, or an idle IKE SA checks liveness, which moves the gateway to the new stream.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::{new_sa, Action, Session, SessionConfig};
use crate::ike::State;
pub use crate::tcp::{Transport, DEFAULT_TCP_PORT};

/// `auto`: how long IKE_SA_INIT over UDP may go unanswered before the session switches to TCP. Between the
/// first retransmission (4 s with the default timers) and the second (11.2 s): one lost datagram does not
/// switch, a path that drops UDP costs 6 s.
pub const AUTO_UDP_BUDGET: Duration = Duration::from_secs(6);
/// A broken stream is opened again after 0, 1, 2, 4... seconds, at most this long apart.
pub const STREAM_RETRY_MAX: Duration = Duration::from_secs(10);
/// How many networks `auto` remembers its choice for.
const REMEMBERED_NETWORKS: usize = 8;

/// The profile's `transport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransportMode {
    #[default]
    Udp,
    Tcp,
    /// UDP, falling back to TCP when IKE_SA_INIT gets no answer within the budget.
    Auto,
}

/// How the session reaches the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportPolicy {
    pub mode: TransportMode,
    /// The gateway's TCP port (RFC 9329: 4500 unless configured).
    pub tcp_port: u16,
    /// `auto`: the UDP budget ([`AUTO_UDP_BUDGET`]).
    pub udp_budget: Duration,
}

impl Default for TransportPolicy {
    fn default() -> Self {
        TransportPolicy { mode: TransportMode::Udp, tcp_port: DEFAULT_TCP_PORT, udp_budget: AUTO_UDP_BUDGET }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Closed,
    Opening,
    Open,
}

/// The session's transport state.
#[derive(Debug)]
pub(super) struct Link {
    pub transport: Transport,
    stream: Stream,
    /// The stream the runtime was last asked to open.
    id: u64,
    /// Reopen attempts since the stream was last open, and when the next one starts.
    tries: u32,
    retry_at: Option<Instant>,
    /// `auto` over UDP: switch to TCP if IKE_SA_INIT is still unanswered then.
    udp_deadline: Option<Instant>,
    remembered: VecDeque<(IpAddr, Transport)>,
    /// Our address changed while on TCP: move the IKE SA once the new stream is open.
    moved: bool,
    /// Our end of the stream while it is open (cleared when it closes or a new one is asked for).
    local: Option<SocketAddr>,
}

impl Link {
    pub fn new(transport: Transport) -> Link {
        Link {
            transport,
            stream: Stream::Closed,
            id: 0,
            tries: 0,
            retry_at: None,
            udp_deadline: None,
            remembered: VecDeque::new(),
            moved: false,
            local: None,
        }
    }

    /// The transport a new IKE SA uses on the network `local`.
    pub fn initial(mode: TransportMode) -> Transport {
        match mode {
            TransportMode::Tcp => Transport::Tcp,
            TransportMode::Udp | TransportMode::Auto => Transport::Udp,
        }
    }

    /// Datagrams may go out now.
    pub fn can_send(&self) -> bool {
        self.transport == Transport::Udp || self.stream == Stream::Open
    }

    pub fn deadline(&self) -> Option<Instant> {
        [self.udp_deadline, self.retry_at].into_iter().flatten().min()
    }

    fn remember(&mut self, network: IpAddr, t: Transport) {
        self.remembered.retain(|(ip, _)| *ip != network);
        if self.remembered.len() >= REMEMBERED_NETWORKS {
            self.remembered.pop_front();
        }
        self.remembered.push_back((network, t));
    }

    fn recall(&self, network: IpAddr) -> Option<Transport> {
        self.remembered.iter().find(|(ip, _)| *ip == network).map(|(_, t)| *t)
    }
}

/// Where a TCP stream to `gateway` goes: the profile's TCP port on it.
pub(super) fn stream_remote(config: &SessionConfig, gateway: SocketAddr) -> SocketAddr {
    SocketAddr::new(gateway.ip(), config.transport.tcp_port)
}

impl Session {
    /// The transport the current IKE SA uses.
    pub fn transport(&self) -> Transport {
        self.link.transport
    }

    /// The TCP stream `id` ([`Action::OpenStream`]) is connected, from `local`: send what waits on it.
    pub fn stream_opened(&mut self, now: Instant, id: u64, local: SocketAddr) {
        if self.finished || id != self.link.id || self.link.transport != Transport::Tcp {
            return;
        }
        debug!(id, %local, "TCP stream open");
        // `tries` stays until the gateway answers on the stream: one that accepts and closes at once (pluto
        // without the kernel's espintcp) must not be reconnected in a loop.
        self.link.stream = Stream::Open;
        self.link.local = Some(local);
        self.link.retry_at = None;
        // A new network: MOBIKE moves the SAs (or, without it, the IKE SA reconnects).
        let moved = std::mem::take(&mut self.link.moved);
        let remote = stream_remote(&self.config, self.gateway);
        self.sa.stream_opened(now, local, remote, moved);
        if let Some(old) = self.retiring.as_mut() {
            old.stream_opened(now, local, remote, moved);
        }
        self.process(now);
    }

    /// Something arrived from the gateway: over TCP the stream works, its reopening backoff starts over.
    pub(super) fn stream_heard(&mut self) {
        if self.link.transport == Transport::Tcp && self.link.stream == Stream::Open {
            self.link.tries = 0;
        }
    }

    /// The TCP stream `id` could not be opened, or broke: open another one while the IKE SA lives.
    pub fn stream_closed(&mut self, now: Instant, id: u64) {
        if self.finished || id != self.link.id || self.link.transport != Transport::Tcp {
            return;
        }
        self.link.stream = Stream::Closed;
        self.link.local = None;
        if self.reconnect_at.is_some() || self.lookup.is_some() || self.sa.state() == State::Closed {
            // Between attempts: the next IKE SA opens its own stream.
            return;
        }
        let delay = match self.link.tries {
            0 => Duration::ZERO,
            n => Duration::from_secs(1 << (n - 1).min(4)).min(STREAM_RETRY_MAX),
        };
        self.link.tries = self.link.tries.saturating_add(1);
        warn!(id, tries = self.link.tries, ?delay, "TCP stream to the gateway lost; opening a new one");
        self.link.retry_at = Some(now + delay);
    }

    /// Ask the runtime for a new stream to the current gateway (replacing the old one).
    pub(super) fn open_stream(&mut self) {
        self.link.id += 1;
        self.link.stream = Stream::Opening;
        self.link.retry_at = None;
        self.link.local = None;
        let to = stream_remote(&self.config, self.gateway);
        self.actions.push_back(Action::OpenStream { id: self.link.id, to });
    }

    /// Our end of the open stream, if one is open.
    pub(super) fn stream_local(&self) -> Option<SocketAddr> {
        self.link.local
    }

    /// A new IKE SA (the first, or a reconnect) starts on the network we are on: pick its transport. Returns it.
    pub(super) fn pick_transport(&mut self, now: Instant) -> Transport {
        let mode = self.config.transport.mode;
        let t = match mode {
            TransportMode::Auto => self.link.recall(self.local.ip()).unwrap_or(Transport::Udp),
            m => Link::initial(m),
        };
        self.link.transport = t;
        self.link.udp_deadline = None;
        self.link.retry_at = None;
        self.link.tries = 0;
        self.link.moved = false;
        if t == Transport::Tcp {
            self.open_stream();
        } else if mode == TransportMode::Auto {
            self.link.udp_deadline = Some(now + self.config.transport.udp_budget);
        }
        t
    }

    /// Our address changed: on TCP the stream goes with the old address, so a new one is opened first.
    /// `true` when the move waits for that stream.
    pub(super) fn stream_network_changed(&mut self) -> bool {
        if self.link.transport != Transport::Tcp {
            return false;
        }
        self.link.moved = true;
        self.link.tries = 0;
        self.open_stream();
        true
    }

    /// The IKE SA closed: no stream reopening or UDP budget until the next one starts.
    pub(super) fn transport_idle(&mut self) {
        self.link.retry_at = None;
        self.link.udp_deadline = None;
    }

    /// Progress of the current IKE SA: `auto`'s UDP answered, so UDP works on this network.
    pub(super) fn transport_progress(&mut self) {
        if self.link.udp_deadline.is_some() && self.sa.state() != State::Connecting {
            self.link.udp_deadline = None;
            let network = self.local.ip();
            self.link.remember(network, Transport::Udp);
        }
    }

    /// The transport's own timers: `auto`'s UDP budget, and reopening a broken stream.
    pub(super) fn transport_timeout(&mut self, now: Instant) {
        if self.link.retry_at.is_some_and(|t| t <= now) {
            self.open_stream();
        }
        if self.link.udp_deadline.is_some_and(|t| t <= now) {
            self.link.udp_deadline = None;
            if self.sa.state() != State::Connecting {
                return;
            }
            info!(budget = ?self.config.transport.udp_budget, gateway = %self.gateway.ip(),
                "no answer over UDP: switching to TCP (RFC 9329)");
            let network = self.local.ip();
            self.link.remember(network, Transport::Tcp);
            self.link.transport = Transport::Tcp;
            let ike = self.config.ike.clone();
            match new_sa(&self.config, ike, self.local, self.gateway, &mut self.rng, self.clock, now, Transport::Tcp) {
                Ok(sa) => {
                    self.sa = sa;
                    self.open_stream();
                }
                Err(e) => self.finish(crate::ike::CloseReason::Error(e)),
            }
        }
    }
}
