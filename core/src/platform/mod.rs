//! Host networking for the tunnel: the TUN device, routes and DNS.
//!
//! - [`open_tun`] creates and configures the TUN device (via `tun-rs` on Linux, with segmentation offload,
//!   and the `tun` crate elsewhere) and returns a [`Tun`] that the tokio driver reads and writes IP packets
//!   from, without allocating per packet; [`Segments`] cuts offloaded super-packets into packets.
//! - [`apply`] installs the routes for the negotiated traffic selectors (RFC 7296 §2.9) and the DNS servers
//!   from the configuration payload (RFC 7296 §3.15), after writing a journal of what it will undo, and
//!   returns an [`AppliedNetwork`] guard that restores everything on [`AppliedNetwork::restore`] or drop.
//! - [`recover`] undoes what a crashed run's journal lists.
//! - [`mss_clamp`] lowers the TCP MSS of SYNs entering the tunnel.
//!
//! Routing follows the usual client practice: a full tunnel (`0.0.0.0/0`, `::/0`) never replaces the
//! default route but overrides it with two half routes (`0.0.0.0/1` + `128.0.0.0/1`, `::/1` + `8000::/1`)
//! via the TUN, plus a host route to the VPN server through the current physical path so IKE and ESP keep
//! flowing outside the tunnel. Route changes and DNS use `ip` and `resolvectl` (or `/etc/resolv.conf`),
//! run with explicit arguments, never a shell. On Windows the same plan goes through the IP Helper API
//! (`CreateIpForwardEntry2`, `SetInterfaceDnsSettings`, ...) on the Wintun adapter, plus a low interface metric on
//! the TUN for a full tunnel; the pure part of it (`windows_plan`) is unit-tested everywhere. macOS has no route
//! management yet.

// Route and DNS management exists on Linux and Windows; elsewhere parts of the helpers are unused.
#[cfg(unix)]
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
mod command;
mod hooks;
#[cfg_attr(not(any(target_os = "linux", windows)), allow(dead_code))]
mod journal;
#[cfg(target_os = "linux")]
mod linux;
#[cfg(any(target_os = "linux", test))]
mod linux_plan;
mod offload;
#[cfg_attr(not(any(target_os = "linux", windows)), allow(dead_code))]
mod plan;
// The only module with unsafe code (Win32 calls); the crate forbids it elsewhere.
#[cfg(windows)]
#[allow(unsafe_code)]
mod windows;
#[cfg(any(windows, test))]
mod windows_plan;

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

#[cfg(not(target_os = "linux"))]
use tun::AbstractDevice;

pub use crate::datapath::mss_clamp;
pub use hooks::TunnelSettings;
pub use hooks::{PlatformHooks, Resolver};
#[cfg(unix)]
pub use hooks::{SocketProtector, TunProvider};
pub use offload::{OffloadError, Segments, VNET_HDR_LEN};
pub use plan::parse_prefix;

use journal::Journal;

/// Default directory for journals: tmpfs, so a reboot (which also drops all routes) clears it. Windows uses
/// [`default_state_dir`] instead.
pub const DEFAULT_STATE_DIR: &str = "/run/ikelink";
/// True where [`NetworkConfig::kill_switch`] is implemented; elsewhere [`apply`] refuses it.
pub const KILL_SWITCH_SUPPORTED: bool = cfg!(target_os = "linux");

/// The default journal directory: [`DEFAULT_STATE_DIR`], on Windows `%ProgramData%\ikelink`.
pub fn default_state_dir() -> PathBuf {
    #[cfg(windows)]
    {
        let base = std::env::var_os("ProgramData").map_or_else(|| PathBuf::from(r"C:\ProgramData"), PathBuf::from);
        base.join("ikelink")
    }
    #[cfg(not(windows))]
    PathBuf::from(DEFAULT_STATE_DIR)
}
/// Default resolver configuration file rewritten when systemd-resolved is not in use.
pub const DEFAULT_RESOLV_CONF: &str = "/etc/resolv.conf";
/// Default TUN name; on Linux the kernel replaces `%d` with the first free number.
pub const DEFAULT_TUN_NAME: &str = "ikl%d";
/// Default TUN MTU: leaves room for ESP-in-UDP overhead on a 1500-byte path (RFC 3948, RFC 4303).
pub const DEFAULT_TUN_MTU: u16 = 1400;
/// Routing protocol number put on every route we install (`ip route ... proto 173`), so that cleanup only
/// ever deletes routes that are ours.
pub const ROUTE_PROTOCOL: u8 = 173;

/// Errors of the platform layer. Command failures name the command and carry its stderr.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// The `tun` crate failed to create or configure the device.
    #[error("TUN device: {0}")]
    Tun(#[from] tun::Error),
    /// A system tool could not be started.
    #[error("could not run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why it could not be started.
        source: io::Error,
    },
    /// A system tool exited with an error.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Exit code or signal.
        status: String,
        /// Its standard error, trimmed.
        stderr: String,
    },
    /// A system tool did not finish in time and was killed.
    #[error("`{command}` timed out")]
    Timeout {
        /// The command line.
        command: String,
    },
    /// A system tool printed something we could not understand.
    #[error("unexpected output of `{command}`: {output}")]
    UnexpectedOutput {
        /// The command line.
        command: String,
        /// The output in question.
        output: String,
    },
    /// Reading or writing a file (journal, backup, resolv.conf) failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A journal could not be parsed.
    #[error("journal {path} is corrupt: {reason}")]
    Journal {
        /// The journal file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The state directory is unsafe to keep journals in (recovery replays them as root): a symbolic link,
    /// not a directory, owned by another user, or writable by group or others.
    #[error("state directory {path} refused: {reason}; remove it or fix its owner and mode (0700)")]
    UnsafeStateDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A journal for this TUN already exists: a previous run did not clean up; call [`recover`] first.
    #[error("journal {0} already exists; run recovery first")]
    JournalExists(PathBuf),
    /// A route prefix is malformed.
    #[error("invalid prefix {0:?}")]
    InvalidPrefix(String),
    /// An interface name is unusable (empty, too long, or with characters `ip` would misread).
    #[error("invalid interface name {0:?}")]
    InvalidInterfaceName(String),
    /// A DNS domain is unusable (it would corrupt resolv.conf or be read as an option).
    #[error("invalid DNS domain {0:?}")]
    InvalidDomain(String),
    /// The VPN server is not reachable outside the tunnel.
    #[error("no usable route to gateway {gateway}: {reason}")]
    GatewayRoute {
        /// The VPN server's address.
        gateway: IpAddr,
        /// Why the current route cannot be used.
        reason: String,
    },
    /// This operation is not implemented on this operating system.
    #[error("not supported on this platform")]
    Unsupported,
    /// A Windows API call failed (`code`: the Win32 error).
    #[error("{call} failed: {}", io::Error::from_raw_os_error(*code as i32))]
    Os {
        /// The API function.
        call: &'static str,
        /// The Win32 error code.
        code: u32,
    },
    /// Windows before 10 version 2004 lacks `SetInterfaceDnsSettings`, so the tunnel's DNS servers cannot be set.
    #[error(
        "cannot set the tunnel's DNS servers: SetInterfaceDnsSettings is missing (Windows 10 version 2004 or later \
         is needed); set `dns = false` in the profile's [tunnel] section to connect without the VPN's DNS"
    )]
    DnsApiUnavailable,
    /// The profile asks for the kill switch, which exists only on Linux (nftables).
    #[error(
        "the kill switch (tunnel.kill_switch) is only available on Linux (nftables); set `kill_switch = false` \
         to connect without it"
    )]
    KillSwitchUnsupported,
}

/// TUN device settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunConfig {
    /// Interface name; `None` uses [`DEFAULT_TUN_NAME`] on Linux and the next free `utunN` on macOS.
    pub name: Option<String>,
    /// Virtual IPv4 address and prefix length (from INTERNAL_IP4_ADDRESS, RFC 7296 §3.15.1).
    pub ipv4: Option<(Ipv4Addr, u8)>,
    /// Virtual IPv6 address and prefix length (from INTERNAL_IP6_ADDRESS, RFC 7296 §3.15.1).
    pub ipv6: Option<(Ipv6Addr, u8)>,
    /// Interface MTU.
    pub mtu: u16,
}

impl Default for TunConfig {
    fn default() -> Self {
        TunConfig { name: None, ipv4: None, ipv6: None, mtu: DEFAULT_TUN_MTU }
    }
}

/// An open, configured and up TUN device; reads and writes IP packets asynchronously on the tokio runtime it
/// was opened in. The device disappears when dropped.
///
/// All methods take `&self`, so one `Arc<Tun>` can serve a reader task and a writer task. Besides the
/// awaiting [`recv`](Self::recv)/[`send`](Self::send) there are non-blocking [`try_recv`](Self::try_recv) and
/// [`try_send`](Self::try_send), so the data plane can drain the device after one wake-up.
///
/// On Linux the device is opened with segmentation offload when the kernel allows it ([`Tun::offload`]):
/// the kernel then hands over TCP (and UDP) super-packets of up to 64 KB behind a virtio-net header, one read
/// instead of dozens, which [`Segments`] cuts into ordinary packets. Sends are unaffected.
pub struct Tun {
    #[cfg(unix)]
    device: Device,
    #[cfg(not(unix))]
    device: tun::AsyncDevice,
    offload: bool,
    /// Apple utun framing: a 4-byte address family in front of every packet (adopted descriptors only).
    #[cfg_attr(not(unix), allow(dead_code))]
    af_header: bool,
    name: String,
    mtu: u16,
}

/// Where a [`Tun`]'s packets go: a device we opened, or a descriptor the OS opened for us ([`adopt_tun`]).
#[cfg(unix)]
enum Device {
    #[cfg(target_os = "linux")]
    Opened(tokio::io::unix::AsyncFd<tun_rs::SyncDevice>),
    #[cfg(not(target_os = "linux"))]
    Opened(tokio::io::unix::AsyncFd<tun::Device>),
    Adopted(tokio::io::unix::AsyncFd<std::fs::File>),
}

/// The virtio-net header written in front of every packet sent to an offloading TUN: no GSO, checksums done.
#[cfg(target_os = "linux")]
const PLAIN_VNET_HDR: [u8; VNET_HDR_LEN] = [0; VNET_HDR_LEN];

impl Tun {
    /// The interface name the kernel assigned (e.g. `ikl0`, `utun4`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The MTU the device was configured with.
    pub fn mtu(&self) -> u16 {
        self.mtu
    }

    /// Whether reads carry a virtio-net header and may be super-packets (see [`Segments`]).
    pub fn offload(&self) -> bool {
        self.offload
    }

    /// Receives one read into `buf`, returning its length: one IP packet, or with [`offload`](Self::offload)
    /// a virtio-net header and a (super-)packet, so `buf` should then hold 64 KB + [`VNET_HDR_LEN`].
    #[cfg(unix)]
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        use tokio::io::Interest;
        match &self.device {
            Device::Opened(d) => d.async_io(Interest::READABLE, |d| d.recv(buf)).await,
            Device::Adopted(f) => f.async_io(Interest::READABLE, |f| self.read_adopted(f, buf)).await,
        }
    }

    /// Like [`recv`](Self::recv) if a packet is queued; `WouldBlock` if none is.
    #[cfg(unix)]
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        use tokio::io::Interest;
        match &self.device {
            Device::Opened(d) => d.try_io(Interest::READABLE, |d| d.recv(buf)),
            Device::Adopted(f) => f.try_io(Interest::READABLE, |f| self.read_adopted(f, buf)),
        }
    }

    /// Sends one IP packet.
    #[cfg(unix)]
    pub async fn send(&self, packet: &[u8]) -> io::Result<usize> {
        use tokio::io::Interest;
        match &self.device {
            Device::Opened(d) => d.async_io(Interest::WRITABLE, |d| self.write(d, packet)).await,
            Device::Adopted(f) => f.async_io(Interest::WRITABLE, |f| self.write_adopted(f, packet)).await,
        }
    }

    /// Sends one IP packet if the device can take it now; `WouldBlock` otherwise.
    #[cfg(unix)]
    pub fn try_send(&self, packet: &[u8]) -> io::Result<usize> {
        use tokio::io::Interest;
        match &self.device {
            Device::Opened(d) => d.try_io(Interest::WRITABLE, |d| self.write(d, packet)),
            Device::Adopted(f) => f.try_io(Interest::WRITABLE, |f| self.write_adopted(f, packet)),
        }
    }

    /// One packet from an adopted descriptor, without its utun address family if there is one.
    #[cfg(unix)]
    fn read_adopted(&self, mut f: &std::fs::File, buf: &mut [u8]) -> io::Result<usize> {
        use std::io::Read;
        if !self.af_header {
            return f.read(buf);
        }
        let mut af = [0u8; 4];
        let n = f.read_vectored(&mut [io::IoSliceMut::new(&mut af), io::IoSliceMut::new(buf)])?;
        Ok(n.saturating_sub(af.len()))
    }

    /// One packet to an adopted descriptor, behind the utun address family if it wants one.
    #[cfg(unix)]
    fn write_adopted(&self, mut f: &std::fs::File, packet: &[u8]) -> io::Result<usize> {
        use std::io::Write;
        if !self.af_header {
            return f.write(packet);
        }
        let af = utun_address_family(packet);
        Ok(f.write_vectored(&[io::IoSlice::new(&af), io::IoSlice::new(packet)])?.saturating_sub(af.len()))
    }

    #[cfg(target_os = "linux")]
    fn write(&self, d: &tun_rs::SyncDevice, packet: &[u8]) -> io::Result<usize> {
        if self.offload {
            let iov = [io::IoSlice::new(&PLAIN_VNET_HDR), io::IoSlice::new(packet)];
            Ok(d.send_vectored(&iov)?.saturating_sub(VNET_HDR_LEN))
        } else {
            d.send(packet)
        }
    }

    #[cfg(all(unix, not(target_os = "linux")))]
    fn write(&self, d: &tun::Device, packet: &[u8]) -> io::Result<usize> {
        d.send(packet)
    }

    /// Receives one IP packet into `buf`, returning its length. `buf` should hold at least `mtu()` bytes.
    #[cfg(not(unix))]
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.device.recv(buf).await
    }

    /// Not available on this platform: always `WouldBlock` (callers fall back to [`recv`](Self::recv)).
    #[cfg(not(unix))]
    pub fn try_recv(&self, _buf: &mut [u8]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }

    /// Sends one IP packet.
    #[cfg(not(unix))]
    pub async fn send(&self, packet: &[u8]) -> io::Result<usize> {
        self.device.send(packet).await
    }

    /// Not available on this platform: always `WouldBlock` (callers fall back to [`send`](Self::send)).
    #[cfg(not(unix))]
    pub fn try_send(&self, _packet: &[u8]) -> io::Result<usize> {
        Err(io::ErrorKind::WouldBlock.into())
    }
}

impl fmt::Debug for Tun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tun")
            .field("name", &self.name)
            .field("mtu", &self.mtu)
            .field("offload", &self.offload)
            .finish_non_exhaustive()
    }
}

/// Opens the TUN device, sets its addresses and MTU and brings it up.
///
/// Must be called from within a tokio runtime (the device registers with its reactor).
#[cfg(target_os = "linux")]
pub fn open_tun(cfg: &TunConfig) -> Result<Tun, PlatformError> {
    let name = match &cfg.name {
        Some(name) => {
            validate_interface_name(name)?;
            name.as_str()
        }
        None => DEFAULT_TUN_NAME,
    };
    let mut builder = tun_rs::DeviceBuilder::new().name(name).mtu(cfg.mtu).offload(true).enable(true);
    if let Some((addr, len)) = cfg.ipv4 {
        if len > 32 {
            return Err(PlatformError::InvalidPrefix(format!("{addr}/{len}")));
        }
        builder = builder.ipv4(addr, len, None);
    }
    if let Some((addr, len)) = cfg.ipv6 {
        if len > 128 {
            return Err(PlatformError::InvalidPrefix(format!("{addr}/{len}")));
        }
    }
    let device = builder.build_sync().map_err(tun::Error::Io)?;
    device.set_nonblocking(true).map_err(tun::Error::Io)?;
    let offload = device.tcp_gso();
    let name = device.name().map_err(tun::Error::Io)?;
    // `AsyncFd::new` is deprecated only because it cannot prove that the value owns its descriptor;
    // `tun_rs::SyncDevice` does (and tun-rs registers it the very same way).
    #[allow(deprecated)]
    let device = tokio::io::unix::AsyncFd::new(device).map_err(tun::Error::Io)?;
    if let Some((addr, len)) = cfg.ipv6 {
        add_ipv6_address(&name, addr, len)?;
    }
    tracing::info!(tun = %name, mtu = cfg.mtu, ipv4 = ?cfg.ipv4, ipv6 = ?cfg.ipv6, offload, "TUN device up");
    Ok(Tun { device: Device::Opened(device), offload, af_header: false, name, mtu: cfg.mtu })
}

/// Opens the TUN device, sets its addresses and MTU and brings it up.
///
/// Must be called from within a tokio runtime (the device registers with its reactor).
#[cfg(not(target_os = "linux"))]
pub fn open_tun(cfg: &TunConfig) -> Result<Tun, PlatformError> {
    let mut conf = tun::Configuration::default();
    if let Some(name) = &cfg.name {
        validate_interface_name(name)?;
        conf.tun_name(name);
    }
    conf.mtu(cfg.mtu);
    if let Some((addr, len)) = cfg.ipv4 {
        let netmask = plan::ipv4_netmask(len).ok_or_else(|| PlatformError::InvalidPrefix(format!("{addr}/{len}")))?;
        conf.address(addr).netmask(netmask);
        // utun is point-to-point: use the local address as the peer, as macOS VPN clients do.
        #[cfg(target_os = "macos")]
        conf.destination(addr);
    }
    if let Some((addr, len)) = cfg.ipv6 {
        if len > 128 {
            return Err(PlatformError::InvalidPrefix(format!("{addr}/{len}")));
        }
    }
    conf.up();
    #[cfg(unix)]
    let device = {
        let device = tun::create(&conf)?;
        device.set_nonblock().map_err(tun::Error::Io)?;
        // See the Linux variant: the device owns its descriptor.
        #[allow(deprecated)]
        let device = tokio::io::unix::AsyncFd::new(device).map_err(tun::Error::Io)?;
        device
    };
    #[cfg(not(unix))]
    let device = tun::create_as_async(&conf)?;
    #[cfg(unix)]
    let name = device.get_ref().tun_name()?;
    #[cfg(not(unix))]
    let name = device.tun_name()?;
    if let Some((addr, len)) = cfg.ipv6 {
        add_ipv6_address(&name, addr, len)?;
    }
    tracing::info!(tun = %name, mtu = cfg.mtu, ipv4 = ?cfg.ipv4, ipv6 = ?cfg.ipv6, "TUN device up");
    #[cfg(unix)]
    let device = Device::Opened(device);
    Ok(Tun { device, offload: false, af_header: false, name, mtu: cfg.mtu })
}

/// Wraps a TUN descriptor the OS opened for us (Android `VpnService.Builder.establish()`, an Apple utun): no
/// offload, and on Apple platforms utun framing (a 4-byte address family before every packet). The OS has
/// already set its addresses, MTU, routes and DNS. The descriptor is made non-blocking and closed on drop.
///
/// Must be called from within a tokio runtime (the device registers with its reactor).
#[cfg(unix)]
pub fn adopt_tun(fd: std::os::fd::OwnedFd, mtu: u16) -> Result<Tun, PlatformError> {
    adopt(fd, mtu, cfg!(any(target_os = "macos", target_os = "ios")))
}

#[cfg(unix)]
fn adopt(fd: std::os::fd::OwnedFd, mtu: u16, af_header: bool) -> Result<Tun, PlatformError> {
    use std::os::fd::AsRawFd;
    let raw = fd.as_raw_fd();
    // std sets O_NONBLOCK (ioctl FIONBIO) on any descriptor through a socket type, without unsafe code.
    let any = std::os::unix::net::UnixDatagram::from(fd);
    any.set_nonblocking(true).map_err(tun::Error::Io)?;
    let file = std::fs::File::from(std::os::fd::OwnedFd::from(any));
    let name = adopted_name(raw);
    // See `open_tun`: a `File` owns its descriptor.
    #[allow(deprecated)]
    let device = tokio::io::unix::AsyncFd::new(file).map_err(tun::Error::Io)?;
    tracing::info!(tun = %name, mtu, af_header, "adopted the TUN device the platform opened");
    Ok(Tun { device: Device::Adopted(device), offload: false, af_header, name, mtu })
}

/// The interface name of an adopted TUN descriptor (Linux and Android: `iff:` in `/proc/self/fdinfo`).
#[cfg(unix)]
fn adopted_name(fd: std::os::fd::RawFd) -> String {
    std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}"))
        .ok()
        .and_then(|info| info.lines().find_map(|l| l.strip_prefix("iff:").map(|n| n.trim().to_owned())))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| format!("tun-fd{fd}"))
}

/// The utun address family header for `packet` (AF_INET, or AF_INET6 as Apple numbers it), big-endian.
#[cfg(unix)]
fn utun_address_family(packet: &[u8]) -> [u8; 4] {
    const AF_INET: u8 = 2;
    const AF_INET6_APPLE: u8 = 30;
    match packet.first().map(|b| b >> 4) {
        Some(6) => [0, 0, 0, AF_INET6_APPLE],
        _ => [0, 0, 0, AF_INET],
    }
}

#[cfg(target_os = "linux")]
fn add_ipv6_address(name: &str, addr: Ipv6Addr, len: u8) -> Result<(), PlatformError> {
    linux::add_ipv6_address(name, addr, len)
}

#[cfg(target_os = "macos")]
fn add_ipv6_address(name: &str, addr: Ipv6Addr, len: u8) -> Result<(), PlatformError> {
    let addr = addr.to_string();
    let len = len.to_string();
    command::run("ifconfig", &[name, "inet6", &addr, "prefixlen", &len, "alias"]).map(|_| ())
}

#[cfg(windows)]
fn add_ipv6_address(name: &str, addr: Ipv6Addr, len: u8) -> Result<(), PlatformError> {
    windows::add_ipv6_address(name, addr, len)
}

#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
fn add_ipv6_address(_name: &str, _addr: Ipv6Addr, _len: u8) -> Result<(), PlatformError> {
    Err(PlatformError::Unsupported)
}

/// How DNS settings are installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DnsBackend {
    /// systemd-resolved if it is running, else the resolv.conf file.
    #[default]
    Auto,
    /// Per-link settings through `resolvectl`.
    SystemdResolved,
    /// Rewrite [`NetworkConfig::resolv_conf`], restoring the original byte for byte.
    ResolvConf,
}

/// Routes and DNS for an established Child SA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// The TUN interface (from [`Tun::name`]).
    pub tun_name: String,
    /// The VPN server's public address (the outer IKE/ESP peer).
    pub gateway: IpAddr,
    /// Remote traffic selectors as prefixes (address, prefix length); `0.0.0.0/0` / `::/0` mean full
    /// tunnel. Host bits are ignored. See [`parse_prefix`].
    pub routes: Vec<(IpAddr, u8)>,
    /// DNS servers (INTERNAL_IP4_DNS / INTERNAL_IP6_DNS); empty leaves DNS alone.
    pub dns: Vec<IpAddr>,
    /// DNS search/routing domains (INTERNAL_DNS_DOMAIN, RFC 8598).
    pub dns_domains: Vec<String>,
    /// Resolver file used by [`DnsBackend::ResolvConf`].
    pub resolv_conf: PathBuf,
    /// DNS mechanism.
    pub dns_backend: DnsBackend,
    /// Drop everything that would leave the host outside the tunnel (full tunnel only; Linux: nftables).
    pub kill_switch: bool,
    /// Prefixes kept out of the tunnel (local networks, services that must not go through the VPN): routed on
    /// the path they have now, and let out by the kill switch. Longer than /0.
    pub excluded: Vec<(IpAddr, u8)>,
}

impl NetworkConfig {
    /// A configuration with no routes or DNS, the default resolv.conf path and automatic DNS backend.
    pub fn new(tun_name: impl Into<String>, gateway: IpAddr) -> Self {
        NetworkConfig {
            tun_name: tun_name.into(),
            gateway,
            routes: Vec::new(),
            dns: Vec::new(),
            dns_domains: Vec::new(),
            resolv_conf: PathBuf::from(DEFAULT_RESOLV_CONF),
            dns_backend: DnsBackend::Auto,
            kill_switch: false,
            excluded: Vec::new(),
        }
    }
}

/// The path of the journal for TUN `tun_name` in `state_dir` (`<state_dir>/<tun_name>.state`).
pub fn journal_path(state_dir: &Path, tun_name: &str) -> PathBuf {
    journal::journal_path(state_dir, tun_name)
}

/// Creates the state directory (mode 0700) or checks an existing one: on Unix it must be a real directory owned
/// by the effective uid and not writable by group or others ([`PlatformError::UnsafeStateDir`]), since crash
/// recovery replays, as root, what the journals in it say.
pub fn create_state_dir(dir: &Path) -> Result<(), PlatformError> {
    journal::create_state_dir(dir)
}

/// Routes and DNS currently applied; restores the previous state on [`restore`](Self::restore) or drop.
#[derive(Debug)]
pub struct AppliedNetwork {
    journal_path: PathBuf,
    journal: Journal,
    restored: bool,
}

impl AppliedNetwork {
    /// The TUN interface the settings belong to.
    pub fn tun_name(&self) -> &str {
        &self.journal.tun_name
    }

    /// The journal file that lists what will be undone.
    pub fn journal_path(&self) -> &Path {
        &self.journal_path
    }

    /// The routes this guard installed, as (destination, prefix length).
    pub fn routes(&self) -> Vec<(IpAddr, u8)> {
        self.journal.routes.iter().map(|r| (r.destination, r.prefix_len)).collect()
    }

    /// Moves the host route that keeps the gateway out of the tunnel from `old` to `new` (the gateway
    /// redirected us, RFC 5685, or its name resolves elsewhere now). Nothing to do without such a route.
    pub fn move_gateway(&mut self, old: IpAddr, new: IpAddr) -> Result<(), PlatformError> {
        if self.restored {
            return Ok(());
        }
        move_gateway_journal(&self.journal_path, &mut self.journal, old, new)
    }

    /// Removes the routes and restores DNS, then deletes the journal. Idempotent; routes already removed
    /// by the kernel (TUN gone) are fine. On error the journal is kept so [`recover`] can retry.
    pub fn restore(&mut self) -> Result<(), PlatformError> {
        if self.restored {
            return Ok(());
        }
        restore_journal(&self.journal_path, &self.journal)?;
        self.restored = true;
        Ok(())
    }
}

impl Drop for AppliedNetwork {
    fn drop(&mut self) {
        if let Err(e) = self.restore() {
            tracing::error!(error = %e, journal = %self.journal_path.display(), "restoring network settings failed");
        }
    }
}

/// What [`recover`] undid.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Journals processed and deleted.
    pub journals: Vec<PathBuf>,
    /// Routes that were still present and got deleted.
    pub routes_removed: usize,
    /// DNS configurations restored.
    pub dns_restored: usize,
    /// Journals not replayed because they list something this program could not have written (a file other
    /// than the resolver file and its backup, a malformed interface, route or table name); each is renamed to
    /// `<journal>.rejected` and named in a warning.
    pub rejected: Vec<PathBuf>,
    /// Things left alone, with the reason (journal of a live process, resolv.conf changed by someone else,
    /// unreadable journal moved aside).
    pub warnings: Vec<String>,
}

/// Applies routes and DNS for `cfg`, writing the journal to `state_dir` first.
#[cfg(target_os = "linux")]
pub fn apply(cfg: &NetworkConfig, state_dir: &Path) -> Result<AppliedNetwork, PlatformError> {
    let (journal_path, journal) = linux::apply(cfg, state_dir)?;
    Ok(AppliedNetwork { journal_path, journal, restored: false })
}

/// Applies routes, the TUN's interface metric (full tunnel) and DNS for `cfg`, writing the journal to
/// `state_dir` first. The kill switch is refused ([`PlatformError::KillSwitchUnsupported`]).
#[cfg(windows)]
pub fn apply(cfg: &NetworkConfig, state_dir: &Path) -> Result<AppliedNetwork, PlatformError> {
    let (journal_path, journal) = windows::apply(cfg, state_dir)?;
    Ok(AppliedNetwork { journal_path, journal, restored: false })
}

/// Applies routes and DNS for `cfg` (not yet supported on this platform).
#[cfg(not(any(target_os = "linux", windows)))]
pub fn apply(cfg: &NetworkConfig, state_dir: &Path) -> Result<AppliedNetwork, PlatformError> {
    let _ = (cfg, state_dir);
    Err(PlatformError::Unsupported)
}

/// Undoes what every journal in `state_dir` lists (left by a crashed run) and deletes it. Returns `None`
/// if there was nothing to recover. Journals owned by a still-running process are skipped; journals that do not
/// look like ours are refused (see [`RecoveryReport::rejected`]); a resolv.conf change is undone only on
/// [`DEFAULT_RESOLV_CONF`] (see [`recover_with_resolv_conf`]).
#[cfg(target_os = "linux")]
pub fn recover(state_dir: &Path) -> Result<Option<RecoveryReport>, PlatformError> {
    linux::recover(state_dir, Path::new(DEFAULT_RESOLV_CONF))
}

/// [`recover`] for runs whose [`NetworkConfig::resolv_conf`] was `resolv_conf`: a journal's resolv.conf
/// change is undone only on that file.
#[cfg(target_os = "linux")]
pub fn recover_with_resolv_conf(state_dir: &Path, resolv_conf: &Path) -> Result<Option<RecoveryReport>, PlatformError> {
    linux::recover(state_dir, resolv_conf)
}

/// Undoes what every journal in `state_dir` lists (left by a crashed run) and deletes it. Returns `None`
/// if there was nothing to recover. Journals owned by a still-running process are skipped.
#[cfg(windows)]
pub fn recover(state_dir: &Path) -> Result<Option<RecoveryReport>, PlatformError> {
    windows::recover(state_dir)
}

/// [`recover`] (Windows never rewrites a resolver file).
#[cfg(windows)]
pub fn recover_with_resolv_conf(state_dir: &Path, resolv_conf: &Path) -> Result<Option<RecoveryReport>, PlatformError> {
    let _ = resolv_conf;
    windows::recover(state_dir)
}

/// Undoes crashed runs' journals (nothing to do on this platform).
#[cfg(not(any(target_os = "linux", windows)))]
pub fn recover(state_dir: &Path) -> Result<Option<RecoveryReport>, PlatformError> {
    let _ = state_dir;
    Ok(None)
}

/// Undoes crashed runs' journals (nothing to do on this platform).
#[cfg(not(any(target_os = "linux", windows)))]
pub fn recover_with_resolv_conf(state_dir: &Path, resolv_conf: &Path) -> Result<Option<RecoveryReport>, PlatformError> {
    let _ = (state_dir, resolv_conf);
    Ok(None)
}

#[cfg(target_os = "linux")]
fn move_gateway_journal(path: &Path, journal: &mut Journal, old: IpAddr, new: IpAddr) -> Result<(), PlatformError> {
    linux::move_gateway(path, journal, old, new)
}

#[cfg(windows)]
fn move_gateway_journal(path: &Path, journal: &mut Journal, old: IpAddr, new: IpAddr) -> Result<(), PlatformError> {
    windows::move_gateway(path, journal, old, new)
}

#[cfg(not(any(target_os = "linux", windows)))]
fn move_gateway_journal(_: &Path, _: &mut Journal, _: IpAddr, _: IpAddr) -> Result<(), PlatformError> {
    Err(PlatformError::Unsupported)
}

#[cfg(target_os = "linux")]
fn restore_journal(path: &Path, journal: &Journal) -> Result<(), PlatformError> {
    linux::restore(path, journal).map(|_| ())
}

#[cfg(windows)]
fn restore_journal(path: &Path, journal: &Journal) -> Result<(), PlatformError> {
    windows::restore(path, journal).map(|_| ())
}

#[cfg(not(any(target_os = "linux", windows)))]
fn restore_journal(_path: &Path, _journal: &Journal) -> Result<(), PlatformError> {
    Err(PlatformError::Unsupported)
}

/// Checks an interface name: 1-15 bytes (IFNAMSIZ - 1), no whitespace, `/` or `:`, not `.` or `..` (as the
/// kernel's `dev_valid_name`), not an option.
fn validate_interface_name(name: &str) -> Result<(), PlatformError> {
    let ok = !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name.starts_with('-')
        && name.chars().all(|c| c.is_ascii_graphic() && c != '/' && c != ':');
    if ok {
        Ok(())
    } else {
        Err(PlatformError::InvalidInterfaceName(name.to_owned()))
    }
}

#[cfg_attr(not(any(target_os = "linux", windows)), allow(dead_code))]
/// Checks a DNS domain: ASCII letters, digits, `-`, `_` and `.`, at most 253 bytes, not an option.
fn validate_domain(domain: &str) -> Result<(), PlatformError> {
    let ok = !domain.is_empty()
        && domain.len() <= 253
        && !domain.starts_with('-')
        && domain.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(PlatformError::InvalidDomain(domain.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names() {
        for ok in ["ikl0", "ikl%d", "utun3", "tun-vpn_1"] {
            assert!(validate_interface_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "a b", "a/b", "a:1", "0123456789abcdef", "é", ".", "..", "../../x", "a\tb"] {
            assert!(validate_interface_name(bad).is_err(), "{bad}");
        }
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn adopted_descriptor_carries_plain_packets() {
        use std::os::unix::net::UnixDatagram;
        // A datagram socket pair keeps packet boundaries, like a TUN descriptor.
        let (ours, os) = UnixDatagram::pair().unwrap();
        let tun = adopt(ours.into(), 1280, false).unwrap();
        assert!(!tun.offload());
        assert_eq!(tun.mtu(), 1280);
        let mut buf = [0u8; 64];
        assert_eq!(tun.try_recv(&mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock, "non-blocking");
        os.send(&[0x45, 1, 2, 3]).unwrap();
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), tun.recv(&mut buf)).await.unwrap().unwrap();
        assert_eq!(&buf[..n], &[0x45, 1, 2, 3]);
        assert_eq!(tun.send(&[0x60, 9, 9]).await.unwrap(), 3);
        let n = os.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], &[0x60, 9, 9]);
        drop(tun);
        assert_eq!(os.send(&[0x45]).unwrap_err().kind(), io::ErrorKind::ConnectionRefused, "closed on drop");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn adopted_utun_descriptor_strips_and_adds_the_address_family() {
        use std::os::unix::net::UnixDatagram;
        let (ours, os) = UnixDatagram::pair().unwrap();
        let tun = adopt(ours.into(), 1400, true).unwrap();
        let mut buf = [0u8; 64];
        os.send(&[0, 0, 0, 2, 0x45, 7]).unwrap();
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), tun.recv(&mut buf)).await.unwrap().unwrap();
        assert_eq!(&buf[..n], &[0x45, 7]);
        assert_eq!(tun.try_send(&[0x45, 8]).unwrap(), 2);
        assert_eq!(tun.send(&[0x60, 9]).await.unwrap(), 2);
        let n = os.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], &[0, 0, 0, 2, 0x45, 8]);
        let n = os.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], &[0, 0, 0, 30, 0x60, 9]);
    }

    #[test]
    fn domains() {
        for ok in ["corp.example", "a-b.example.", "x"] {
            assert!(validate_domain(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "a b", "a\nnameserver 1.2.3.4", "~.", "a;b"] {
            assert!(validate_domain(bad).is_err(), "{bad}");
        }
    }
}
