//! The foreign traits (implemented by the app in Kotlin or Swift) and their adapters to the core's traits.
//! Every call into the app is guarded: a failure or a panic becomes an error, never an unwinding panic.

use std::io;
#[cfg(unix)]
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use ikelink::crypto::{CryptoError, SigScheme, Signer};
use tracing::warn;

use crate::error::CallbackError;
use crate::types::{SignatureAlgorithm, TunnelSettings, VpnEvent};

/// Receives everything a `VpnClient` has to say. Called from Ikelink's threads, one
/// event at a time, in order; return quickly (post to your own queue).
#[uniffi::export(with_foreign)]
pub trait VpnListener: Send + Sync {
    fn on_event(&self, event: VpnEvent) -> Result<(), CallbackError>;
}

/// Opens the TUN device through the OS (Android `VpnService.Builder` ... `establish()`; Apple
/// `setTunnelNetworkSettings` then the utun descriptor) for these settings, and returns its file descriptor.
///
/// Ikelink works on a duplicate of the descriptor and closes that when the tunnel goes down; the app keeps
/// its own (Android: keep the `ParcelFileDescriptor` and close it after `Closed` or when `open_tun` is called
/// again with new settings; Apple: the utun belongs to the system). Called once per session, and again only
/// if a reconnect brought different settings.
#[uniffi::export(with_foreign)]
pub trait TunProvider: Send + Sync {
    fn open_tun(&self, settings: TunnelSettings) -> Result<i32, CallbackError>;
}

/// Keeps a UDP socket of Ikelink out of the tunnel (Android: `VpnService.protect(fd)`, throw if it returns
/// false). Called for every socket before it sends anything.
#[uniffi::export(with_foreign)]
pub trait SocketProtector: Send + Sync {
    fn protect(&self, fd: i32) -> Result<(), CallbackError>;
}

/// A private key in the platform key store (Android KeyChain/Keystore, Apple Keychain).
#[uniffi::export(with_foreign)]
pub trait KeystoreSigner: Send + Sync {
    /// The algorithms the key can sign with, most preferred first.
    fn algorithms(&self) -> Result<Vec<SignatureAlgorithm>, CallbackError>;
    /// Signs `data` (the whole message; the key store hashes it) with `algorithm`.
    fn sign(&self, algorithm: SignatureAlgorithm, data: Vec<u8>) -> Result<Vec<u8>, CallbackError>;
}

/// Answers one question with the platform's trust store: does the OS trust this certificate chain (DER, end
/// entity first) for a VPN gateway? Return to trust it, throw to refuse (the message is reported).
///
/// Do not match identities here: Ikelink checks that the certificate names the gateway's identity (the
/// profile's `gateway.id`, by default its address) before asking, and verifies the gateway's signature with
/// the end-entity key. `host_name` is that identity when it is a host name or an IP address, for OS policies
/// that take one (Apple's SSL policy); it is null otherwise.
#[uniffi::export(with_foreign)]
pub trait TrustEvaluator: Send + Sync {
    fn evaluate(&self, chain: Vec<Vec<u8>>, host_name: Option<String>) -> Result<(), CallbackError>;
}

/// Looks a host name up outside the tunnel (Android: `Network.getAllByName` on the underlying network; Apple
/// needs none). Ikelink's own lookups (the gateway's name, backups, redirect targets, CRL and OCSP hosts) then
/// do not go into the tunnel while a reconnecting session's TUN is up. Return IP address literals, preferred
/// first; throw if the name has none. Called off the UI thread; it may block.
#[uniffi::export(with_foreign)]
pub trait NameResolver: Send + Sync {
    fn resolve(&self, host: String) -> Result<Vec<String>, CallbackError>;
}

/// Calls into the app, turning a panic on the way into an error.
pub(crate) fn guard<T>(what: &str, f: impl FnOnce() -> Result<T, CallbackError>) -> Result<T, CallbackError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => Err(CallbackError::Failed { reason: format!("{what}: callback panicked") }),
    }
}

/// The app's [`TunProvider`] as the core's.
#[cfg(unix)]
pub(crate) struct TunAdapter(pub Arc<dyn TunProvider>);

#[cfg(unix)]
impl ikelink::platform::TunProvider for TunAdapter {
    fn open_tun(&self, settings: &ikelink::platform::TunnelSettings) -> io::Result<OwnedFd> {
        let fd = guard("open_tun", || self.0.open_tun(settings.into())).map_err(|e| io::Error::other(e.message()))?;
        duplicate(fd)
    }
}

/// Our own copy of the app's descriptor `fd`.
#[cfg(unix)]
fn duplicate(fd: i32) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("invalid TUN descriptor {fd}")));
    }
    let fd: RawFd = fd;
    // SAFETY: the borrow lives only for this call, while the app keeps `fd` open (it returned it to us and
    // owns it); a descriptor that is not open makes `fcntl(F_DUPFD_CLOEXEC)` fail with EBADF.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    borrowed.try_clone_to_owned()
}

/// The app's [`SocketProtector`] as the core's.
#[cfg(unix)]
pub(crate) struct ProtectAdapter(pub Arc<dyn SocketProtector>);

#[cfg(unix)]
impl ikelink::platform::SocketProtector for ProtectAdapter {
    fn protect(&self, socket: BorrowedFd<'_>) -> io::Result<()> {
        let fd = socket.as_raw_fd();
        guard("protect", || self.0.protect(fd)).map_err(|e| io::Error::other(e.message()))
    }
}

/// The app's [`NameResolver`] as the core's.
pub(crate) struct ResolverAdapter(pub Arc<dyn NameResolver>);

impl ikelink::platform::Resolver for ResolverAdapter {
    fn resolve(&self, host: &str) -> io::Result<Vec<std::net::IpAddr>> {
        let names = guard("resolve", || self.0.resolve(host.to_owned())).map_err(|e| io::Error::other(e.message()))?;
        let addrs: Vec<std::net::IpAddr> = names.iter().filter_map(|a| a.trim().parse().ok()).collect();
        if addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("the app's resolver gave no address for `{host}`"),
            ));
        }
        Ok(addrs)
    }
}

/// The app's [`KeystoreSigner`] as the core's [`Signer`].
pub(crate) struct SignerAdapter(pub Arc<dyn KeystoreSigner>);

impl Signer for SignerAdapter {
    fn schemes(&self) -> Vec<SigScheme> {
        match guard("algorithms", || self.0.algorithms()) {
            Ok(a) => a.into_iter().map(SigScheme::from).collect(),
            Err(e) => {
                warn!(error = %e, "the key store signer lists no algorithms");
                Vec::new()
            }
        }
    }

    fn sign(&self, scheme: SigScheme, data: &[u8]) -> Result<Vec<u8>, CryptoError> {
        guard("sign", || self.0.sign(scheme.into(), data.to_vec())).map_err(|e| {
            warn!(error = %e, "the key store refused to sign");
            CryptoError::Internal
        })
    }
}

/// The app's [`TrustEvaluator`] as the core's.
pub(crate) struct TrustAdapter(pub Arc<dyn TrustEvaluator>);

impl ikelink::ike::TrustEvaluator for TrustAdapter {
    fn evaluate(&self, chain: &[Vec<u8>], host_name: Option<&str>) -> Result<(), String> {
        let host_name = host_name.map(str::to_owned);
        guard("evaluate", || self.0.evaluate(chain.to_vec(), host_name)).map_err(|e| e.message().to_owned())
    }
}

#[cfg(all(test, unix))]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    struct Panics;
    impl SocketProtector for Panics {
        fn protect(&self, _fd: i32) -> Result<(), CallbackError> {
            panic!("app bug")
        }
    }

    #[test]
    fn a_panicking_callback_is_an_error() {
        use std::os::fd::AsFd;
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let r = ikelink::platform::SocketProtector::protect(&ProtectAdapter(Arc::new(Panics)), socket.as_fd());
        assert!(r.is_err());
    }

    #[test]
    fn descriptors_are_duplicated_and_bad_ones_refused() {
        assert!(duplicate(-1).is_err());
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let copy = duplicate(socket.as_raw_fd()).unwrap();
        assert_ne!(copy.as_raw_fd(), socket.as_raw_fd());
    }
}
