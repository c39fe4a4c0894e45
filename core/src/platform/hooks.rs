//! What an embedding app does for the driver where only the operating system can: open the TUN device
//! (Android `VpnService.Builder.establish()`, an Apple utun) and keep the driver's own sockets out of the
//! tunnel (Android `VpnService.protect(fd)`). With these hooks the driver configures no routes or DNS itself:
//! the OS applies the [`TunnelSettings`] it was given when it opened the device.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
#[cfg(unix)]
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Arc;

/// What the OS needs to open the tunnel device (Android `VpnService.Builder`, Apple
/// `NEPacketTunnelNetworkSettings`): addresses, MTU, routes and DNS negotiated with the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelSettings {
    /// Virtual IPv4 address and prefix length (INTERNAL_IP4_ADDRESS, RFC 7296 §3.15.1).
    pub ipv4: Option<(Ipv4Addr, u8)>,
    /// Virtual IPv6 address and prefix length (INTERNAL_IP6_ADDRESS).
    pub ipv6: Option<(Ipv6Addr, u8)>,
    /// Interface MTU.
    pub mtu: u16,
    /// Prefixes to route into the tunnel: the gateway's traffic selectors (`0.0.0.0/0` / `::/0`: full tunnel).
    pub routes: Vec<(IpAddr, u8)>,
    /// DNS servers (INTERNAL_IP4_DNS / INTERNAL_IP6_DNS).
    pub dns: Vec<IpAddr>,
    /// DNS search domains (INTERNAL_DNS_DOMAIN, RFC 8598).
    pub dns_domains: Vec<String>,
    /// The gateway's public address, which must stay outside the tunnel (Apple `tunnelRemoteAddress`).
    pub gateway: IpAddr,
    /// Prefixes the profile keeps out of the tunnel (Android `excludeRoute`, Apple `excludedRoutes`).
    pub excluded: Vec<(IpAddr, u8)>,
}

/// Opens the TUN device through the OS for the negotiated [`TunnelSettings`].
///
/// Called once when the first Child SA is up, and again after a reconnect only if the settings changed.
/// The returned descriptor belongs to the driver from then on (it closes it when the tunnel goes down); it
/// carries plain IP packets (on Apple platforms: utun framing, a 4-byte address family first).
#[cfg(unix)]
pub trait TunProvider: Send + Sync {
    fn open_tun(&self, settings: &TunnelSettings) -> io::Result<OwnedFd>;
}

/// Keeps a socket of the driver out of the tunnel (Android `VpnService.protect(fd)`).
///
/// Called with every UDP socket the driver opens (IKE, NAT-T, route probes), before it sends anything.
#[cfg(unix)]
pub trait SocketProtector: Send + Sync {
    fn protect(&self, socket: BorrowedFd<'_>) -> io::Result<()>;
}

/// Looks up a host name outside the tunnel (Android: `Network.getAllByName` on the underlying network). The
/// driver's own lookups (the gateway's name, backups, redirect targets, CRL and OCSP hosts) go through it, so
/// that while the TUN of a reconnecting session is up they do not enter the tunnel that is down. Blocking:
/// called off the runtime's worker threads.
pub trait Resolver: Send + Sync {
    /// The host's addresses, preferred first; an error if it has none.
    fn resolve(&self, host: &str) -> io::Result<Vec<IpAddr>>;
}

/// The hooks an embedder gives [`Session::start_with_hooks`](crate::driver::Session::start_with_hooks).
/// Default: none, the driver opens its own TUN and sets routes and DNS (the desktop client). The TUN provider
/// and the socket protector exist on Unix only (Android, Apple); a resolver everywhere.
#[derive(Clone, Default)]
pub struct PlatformHooks {
    /// Opens the TUN; the driver then leaves routes and DNS to the OS.
    #[cfg(unix)]
    pub tun: Option<Arc<dyn TunProvider>>,
    /// Off Unix there is no TUN provider: always `None`.
    #[cfg(not(unix))]
    pub tun: Option<std::convert::Infallible>,
    /// Protects the driver's sockets.
    #[cfg(unix)]
    pub protect: Option<Arc<dyn SocketProtector>>,
    /// Resolves names outside the tunnel; `None`: the system resolver.
    pub resolve: Option<Arc<dyn Resolver>>,
}

impl PlatformHooks {
    /// Protects `socket` if a protector is set.
    #[cfg(unix)]
    pub fn protect(&self, socket: BorrowedFd<'_>) -> io::Result<()> {
        match &self.protect {
            Some(p) => p.protect(socket),
            None => Ok(()),
        }
    }

    /// The first address of `host` (a name or an address literal) with `port`: through the embedder's
    /// [`Resolver`] if there is one, else the system resolver.
    pub async fn lookup(&self, host: &str, port: u16) -> io::Result<std::net::SocketAddr> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(std::net::SocketAddr::new(ip, port));
        }
        let first = match &self.resolve {
            Some(r) => {
                let (r, name) = (r.clone(), host.to_owned());
                let addrs = tokio::task::spawn_blocking(move || r.resolve(&name))
                    .await
                    .map_err(|e| io::Error::other(format!("resolver task failed: {e}")))??;
                addrs.first().map(|&ip| std::net::SocketAddr::new(ip, port))
            }
            None => tokio::net::lookup_host((host, port)).await?.next(),
        };
        first.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("`{host}` has no address")))
    }
}

impl fmt::Debug for PlatformHooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("PlatformHooks");
        d.field("tun", &self.tun.is_some());
        #[cfg(unix)]
        d.field("protect", &self.protect.is_some());
        d.field("resolve", &self.resolve.is_some()).finish()
    }
}

#[cfg(all(test, unix))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Records the names it is asked for; knows one.
    struct Recording(Mutex<Vec<String>>);

    impl Resolver for Recording {
        fn resolve(&self, host: &str) -> io::Result<Vec<IpAddr>> {
            self.0.lock().unwrap().push(host.to_owned());
            match host {
                "gw.ikelink.invalid" => Ok(vec![IpAddr::from([203, 0, 113, 7]), IpAddr::from([203, 0, 113, 8])]),
                "empty.ikelink.invalid" => Ok(Vec::new()),
                _ => Err(io::Error::new(io::ErrorKind::NotFound, "unknown")),
            }
        }
    }

    // Issue 13: with a resolver, every name the driver looks up goes through it (never the system's, which
    // would ask through the tunnel); address literals need no lookup.
    #[tokio::test]
    async fn names_go_through_the_embedders_resolver() {
        let r = Arc::new(Recording(Mutex::new(Vec::new())));
        let hooks = PlatformHooks { resolve: Some(r.clone()), ..PlatformHooks::default() };
        assert_eq!(hooks.lookup("gw.ikelink.invalid", 4500).await.unwrap().to_string(), "203.0.113.7:4500");
        assert_eq!(hooks.lookup("198.51.100.1", 80).await.unwrap().to_string(), "198.51.100.1:80");
        assert_eq!(hooks.lookup("empty.ikelink.invalid", 80).await.unwrap_err().kind(), io::ErrorKind::NotFound);
        assert!(hooks.lookup("nothing.ikelink.invalid", 80).await.is_err());
        assert_eq!(*r.0.lock().unwrap(), ["gw.ikelink.invalid", "empty.ikelink.invalid", "nothing.ikelink.invalid"]);
    }
}
