//! The TCP stream to the gateway (RFC 9329): opened when the session policy asks, protected from the tunnel
//! like the UDP sockets, with TCP keepalives instead of NAT keepalives; one writer shared by the IKE task and
//! the uplink (each write is whole frames), the read half handed to the downlink, which deframes it.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, Mutex};
use tracing::debug;

use super::{protect, DriverError};
use crate::platform::PlatformHooks;
use crate::tcp::IKETCP_PREFIX;

/// Connecting gives up after this long (the session policy then tries again).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A write that does not complete in this long counts as a broken stream.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// TCP keepalive: probes after this long idle, then this far apart (the kernel gives up after its count).
const KEEPALIVE_IDLE: Duration = Duration::from_secs(20);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);

/// The write half of the current stream; a failed write reports the stream broken on `broken`.
pub struct StreamWriter {
    pub id: u64,
    half: Mutex<OwnedWriteHalf>,
    broken: mpsc::Sender<u64>,
}

impl StreamWriter {
    pub fn new(id: u64, half: OwnedWriteHalf, broken: mpsc::Sender<u64>) -> StreamWriter {
        StreamWriter { id, half: Mutex::new(half), broken }
    }

    /// Writes whole frames; `false` (and the stream reported broken) on failure.
    pub async fn write(&self, frames: &[u8]) -> bool {
        let mut half = self.half.lock().await;
        match tokio::time::timeout(WRITE_TIMEOUT, half.write_all(frames)).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                debug!(%e, id = self.id, "TCP stream write failed");
                let _ = self.broken.try_send(self.id);
                false
            }
            Err(_) => {
                debug!(id = self.id, "TCP stream write timed out");
                let _ = self.broken.try_send(self.id);
                false
            }
        }
    }
}

/// Connects to the gateway, protected and with keepalives, and sends the `IKETCP` prefix (RFC 9329 §4).
pub async fn open(hooks: &PlatformHooks, to: SocketAddr) -> Result<TcpStream, DriverError> {
    let io = |source: std::io::Error| DriverError::NoRoute { addr: to, source };
    let sock = if to.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }.map_err(io)?;
    protect(hooks, &sock)?;
    {
        let s = socket2::SockRef::from(&sock);
        let ka = socket2::TcpKeepalive::new().with_time(KEEPALIVE_IDLE);
        #[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple", windows))]
        let ka = ka.with_interval(KEEPALIVE_INTERVAL);
        let _ = s.set_tcp_keepalive(&ka);
    }
    let _ = KEEPALIVE_INTERVAL;
    let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, sock.connect(to))
        .await
        .map_err(|_| io(std::io::ErrorKind::TimedOut.into()))?
        .map_err(io)?;
    let _ = stream.set_nodelay(true);
    stream.write_all(IKETCP_PREFIX).await.map_err(io)?;
    Ok(stream)
}
