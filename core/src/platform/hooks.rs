//! What an embedding app does for the driver where only the operating system can: open the TUN device
//! (Android `VpnService.Builder.establish()`, an Apple utun) and keep the driver's own sockets out of the
//! tunnel (Android `VpnService.protect(fd)`). With these hooks the driver configures no routes or DNS itself:
//! the OS applies the [`TunnelSettings`] it was given when it opened the device.

#[cfg(unix)]
use std::fmt;
#[cfg(unix)]
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
#[cfg(unix)]
use std::os::fd::{BorrowedFd, OwnedFd};
#[cfg(unix)]
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

/// The hooks an embedder gives [`Session::start_with_hooks`](crate::driver::Session::start_with_hooks).
/// Default: none, the driver opens its own TUN and sets routes and DNS (the desktop client).
#[cfg(unix)]
#[derive(Clone, Default)]
pub struct PlatformHooks {
    /// Opens the TUN; the driver then leaves routes and DNS to the OS.
    pub tun: Option<Arc<dyn TunProvider>>,
    /// Protects the driver's sockets.
    pub protect: Option<Arc<dyn SocketProtector>>,
}

#[cfg(unix)]
impl PlatformHooks {
    /// Protects `socket` if a protector is set.
    pub fn protect(&self, socket: BorrowedFd<'_>) -> io::Result<()> {
        match &self.protect {
            Some(p) => p.protect(socket),
            None => Ok(()),
        }
    }
}

#[cfg(unix)]
impl fmt::Debug for PlatformHooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlatformHooks")
            .field("tun", &self.tun.is_some())
            .field("protect", &self.protect.is_some())
            .finish()
    }
}
