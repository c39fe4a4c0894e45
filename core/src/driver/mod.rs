//! The tokio driver: owns the UDP sockets and the clock, and moves datagrams in and out of the sans-IO
//! [`IkeSa`](crate::ike::IkeSa).
//!
//! One [`Session`] is one connection attempt: it ends when the IKE SA closes. Events arrive on a channel.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use rand_core::{OsRng, TryRngCore};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::{debug, trace, warn};

use crate::ike::{EspSuite, Event, IkeError, IkeSa, SessionInfo, SocketKind, State};
use crate::profile::Resolved;
use crate::wire::TrafficSelector;

/// Failures of the driver itself (not of the protocol).
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("cannot open UDP socket on port {port}: {source}")]
    Bind { port: u16, source: std::io::Error },
    #[error("no route to the gateway {addr}: {source}")]
    NoRoute { addr: SocketAddr, source: std::io::Error },
    #[error("randomness unavailable: {0}")]
    Random(String),
    #[error(transparent)]
    Ike(#[from] IkeError),
}

/// What the application sees.
#[derive(Debug, Clone)]
pub enum SessionEvent {
    State(State),
    /// IKE SA up; `child` describes the first Child SA.
    Connected {
        info: SessionInfo,
        child: ChildSummary,
    },
    ChildSaDeleted {
        inbound_spi: u32,
        outbound_spi: u32,
    },
    /// The session is over; `None` after a clean disconnect.
    Closed(Option<IkeError>),
}

/// A Child SA without its keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSummary {
    pub suite: EspSuite,
    pub spi_in: u32,
    pub spi_out: u32,
    pub ts_i: Vec<TrafficSelector>,
    pub ts_r: Vec<TrafficSelector>,
}

enum Command {
    Disconnect,
}

/// A running connection. Dropping it does not disconnect; call [`Session::disconnect`].
pub struct Session {
    commands: mpsc::Sender<Command>,
    task: tokio::task::JoinHandle<Result<(), DriverError>>,
}

impl Session {
    /// Bind the sockets and start the IKE SA. Events go to `events`.
    pub async fn start(profile: Resolved, events: mpsc::Sender<SessionEvent>) -> Result<Session, DriverError> {
        let unspecified: IpAddr = match profile.gateway {
            SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        };
        let ike = UdpSocket::bind(SocketAddr::new(unspecified, profile.ike_port))
            .await
            .map_err(|source| DriverError::Bind { port: profile.ike_port, source })?;
        let natt = UdpSocket::bind(SocketAddr::new(unspecified, profile.natt_port))
            .await
            .map_err(|source| DriverError::Bind { port: profile.natt_port, source })?;
        // The source address the kernel picks towards the gateway, for NAT detection (RFC 7296 §2.23).
        let probe = UdpSocket::bind(SocketAddr::new(unspecified, 0))
            .await
            .map_err(|source| DriverError::Bind { port: 0, source })?;
        probe
            .connect(profile.gateway)
            .await
            .map_err(|source| DriverError::NoRoute { addr: profile.gateway, source })?;
        let local_ip =
            probe.local_addr().map_err(|source| DriverError::NoRoute { addr: profile.gateway, source })?.ip();
        drop(probe);
        let ike_port = ike.local_addr().map_err(|source| DriverError::Bind { port: profile.ike_port, source })?.port();
        let local = SocketAddr::new(local_ip, ike_port);

        let mut seed = [0u8; 32];
        OsRng.try_fill_bytes(&mut seed).map_err(|e| DriverError::Random(e.to_string()))?;
        let sa = IkeSa::new(profile.ike, local, profile.gateway, Instant::now(), seed)?;
        let (tx, rx) = mpsc::channel(4);
        let task = tokio::spawn(run(sa, ike, natt, rx, events));
        Ok(Session { commands: tx, task })
    }

    /// Ask the session to close the IKE SA (sends a Delete) and wait until it has.
    pub async fn disconnect(self) -> Result<(), DriverError> {
        let _ = self.commands.send(Command::Disconnect).await;
        self.join().await
    }

    /// Wait until the session ends by itself.
    pub async fn join(self) -> Result<(), DriverError> {
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(DriverError::Ike(IkeError::Protocol(if e.is_panic() {
                "driver panicked"
            } else {
                "driver cancelled"
            }))),
        }
    }
}

async fn run(
    mut sa: IkeSa,
    ike: UdpSocket,
    natt: UdpSocket,
    mut commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<SessionEvent>,
) -> Result<(), DriverError> {
    let mut buf_ike = vec![0u8; 65536];
    let mut buf_natt = vec![0u8; 65536];
    let mut commands_open = true;
    loop {
        flush(&mut sa, &ike, &natt).await;
        let mut closed = false;
        while let Some(ev) = sa.poll_event() {
            let out = match ev {
                Event::StateChanged(s) => SessionEvent::State(s),
                Event::Established(info) => {
                    // The Child SA event follows right behind.
                    let child = match sa.poll_event() {
                        Some(Event::ChildSaInstalled(c)) => ChildSummary {
                            suite: c.suite,
                            spi_in: c.inbound.spi,
                            spi_out: c.outbound.spi,
                            ts_i: c.ts_i.clone(),
                            ts_r: c.ts_r.clone(),
                        },
                        other => {
                            warn!(?other, "Established without a Child SA");
                            continue;
                        }
                    };
                    SessionEvent::Connected { info, child }
                }
                Event::ChildSaInstalled(c) => {
                    debug!(?c, "additional Child SA");
                    continue;
                }
                Event::ChildSaDeleted { inbound_spi, outbound_spi } => {
                    SessionEvent::ChildSaDeleted { inbound_spi, outbound_spi }
                }
                Event::Closed(reason) => {
                    closed = true;
                    SessionEvent::Closed(reason)
                }
            };
            let _ = events.send(out).await;
        }
        if closed {
            return Ok(());
        }
        let deadline = sa.poll_timeout().map(|(t, _)| tokio::time::Instant::from_std(t));
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = ike.recv_from(&mut buf_ike) => match r {
                Ok((n, from)) => {
                    trace!(n, %from, "IKE datagram");
                    if let Some(data) = buf_ike.get(..n) {
                        sa.handle_datagram(Instant::now(), data);
                    }
                }
                Err(e) => debug!(%e, "IKE socket error"),
            },
            r = natt.recv_from(&mut buf_natt) => match r {
                Ok((n, from)) => {
                    let data = buf_natt.get(..n).unwrap_or(&[]);
                    match data {
                        [0, 0, 0, 0, rest @ ..] => sa.handle_datagram(Instant::now(), rest),
                        [0xff] => trace!(%from, "NAT keepalive"),
                        _ => trace!(n, %from, "ESP datagram (no data plane yet)"),
                    }
                }
                Err(e) => debug!(%e, "NAT-T socket error"),
            },
            _ = sleep => sa.handle_timeout(Instant::now()),
            c = commands.recv(), if commands_open => match c {
                Some(Command::Disconnect) => sa.close(Instant::now()),
                None => commands_open = false,
            },
        }
    }
}

async fn flush(sa: &mut IkeSa, ike: &UdpSocket, natt: &UdpSocket) {
    while let Some(t) = sa.poll_transmit() {
        let sock = match t.socket {
            SocketKind::Ike => ike,
            SocketKind::NatT => natt,
        };
        if let Err(e) = sock.send_to(&t.payload, t.remote).await {
            debug!(%e, remote = %t.remote, "send failed");
        }
    }
}
