//! Fetching for [`Event::FetchRevocation`](crate::ike::Event::FetchRevocation): one HTTP/1.0 GET per CRL
//! distribution point (RFC 5280 §4.2.1.13: CRLs are signed, plain HTTP is what CAs publish) and one POST per
//! OCSP request (RFC 6960 §A.1), over a TCP socket the platform protects like our UDP sockets (the tunnel is
//! not up yet, and must not carry it), bounded in time and size. Responses are parsed with `httparse`;
//! redirects are not followed.
//!
//! Why not an HTTP client crate: what is written here is the URL split and one request line; parsing the
//! response head is `httparse`'s, the parser hyper itself uses. hyper's client (`hyper` + `hyper-util` for the
//! tokio adapter + `http` + `http-body-util`, about ten crates none of which the tree has otherwise) would add
//! HTTP/1.1 keep-alive, chunked bodies and pooling that one `Connection: close` fetch of a CRL does not use,
//! and would still need this socket setup (the platform's protect hook before connect) and the size and time
//! bounds around it. reqwest/ureq bring their own connectors and TLS, which would bypass the protect hook.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{debug, info};

use super::{lookup, protect, PlatformHooks};
use crate::crypto::{RevocationRequest, RevocationResponse};

/// The largest CRL we accept.
const MAX_CRL_BYTES: usize = 4 << 20;
/// Each fetch (resolve, connect, request, whole response) ends within this.
pub(super) const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Fetched CRLs are reused for reconnects and reauthentications this long.
const CACHE_FOR: Duration = Duration::from_secs(3600);
/// At most this many distribution points are fetched for one chain.
const MAX_URLS: usize = 8;

/// Why a fetch failed (logged; the IKE SA only learns that there is no CRL).
#[derive(Debug, thiserror::Error)]
pub(super) enum FetchError {
    #[error("not an http:// URL")]
    BadUrl,
    #[error("cannot resolve {0}")]
    Resolve(String),
    #[error("timed out")]
    Timeout,
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("bad HTTP response: {0}")]
    Http(String),
    #[error("response larger than {MAX_CRL_BYTES} bytes")]
    TooLarge,
}

/// `http://host[:port]/path` split into (host, port, path); `host` may be a bracketed IPv6 literal.
fn split_url(url: &str) -> Result<(String, u16, String), FetchError> {
    let rest =
        url.get(..7).filter(|s| s.eq_ignore_ascii_case("http://")).and(url.get(7..)).ok_or(FetchError::BadUrl)?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(FetchError::BadUrl);
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or(FetchError::BadUrl)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| FetchError::BadUrl)?,
            None if after.is_empty() => 80,
            None => return Err(FetchError::BadUrl),
        };
        (h.to_owned(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p.parse().map_err(|_| FetchError::BadUrl)?),
            None => (authority.to_owned(), 80),
        }
    };
    let path = path.split('#').next().unwrap_or("/");
    Ok((host, port, path.to_owned()))
}

/// The body of a complete HTTP response, if its status is 200.
fn parse_response(raw: &[u8]) -> Result<&[u8], FetchError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(raw).map_err(|e| FetchError::Http(e.to_string()))? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Err(FetchError::Http("truncated header".into())),
    };
    let code = resp.code.unwrap_or(0);
    if code != 200 {
        return Err(FetchError::Status(code));
    }
    let body = raw.get(head_len..).unwrap_or_default();
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(FetchError::Http("transfer-encoding in an HTTP/1.0 response".into()));
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            let len: usize = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| FetchError::Http("bad Content-Length".into()))?;
            return body.get(..len).ok_or_else(|| FetchError::Http("body shorter than Content-Length".into()));
        }
    }
    Ok(body)
}

/// GET `url`, or POST `ocsp_request` to it.
async fn fetch(url: &str, ocsp_request: Option<&[u8]>, hooks: &PlatformHooks) -> Result<Vec<u8>, FetchError> {
    let (host, port, path) = split_url(url)?;
    let addr: SocketAddr = lookup(hooks, &host, port).await.map_err(|_| FetchError::Resolve(host.clone()))?;
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    protect(hooks, &socket).map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut stream = socket.connect(addr).await?;
    let host_header = if host.contains(':') { format!("[{host}]") } else { host.clone() };
    let port_suffix = if port == 80 { String::new() } else { format!(":{port}") };
    let head = match ocsp_request {
        None => format!(
            "GET {path} HTTP/1.0\r\nHost: {host_header}{port_suffix}\r\nUser-Agent: ikelink\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        ),
        Some(body) => format!(
            "POST {path} HTTP/1.0\r\nHost: {host_header}{port_suffix}\r\nUser-Agent: ikelink\r\nContent-Type: application/ocsp-request\r\nAccept: application/ocsp-response\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        ),
    };
    stream.write_all(head.as_bytes()).await?;
    if let Some(body) = ocsp_request {
        stream.write_all(body).await?;
    }
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(buf.get(..n).unwrap_or_default());
        if raw.len() > MAX_CRL_BYTES + 16384 {
            return Err(FetchError::TooLarge);
        }
    }
    parse_response(&raw).map(<[u8]>::to_vec)
}

/// Fetched CRLs by URL, for reconnects and reauthentications.
#[derive(Default, Clone)]
pub(super) struct CrlCache {
    entries: Vec<(String, Instant, Vec<u8>)>,
}

impl CrlCache {
    fn lookup(&self, url: &str, now: Instant) -> Option<Vec<u8>> {
        self.entries
            .iter()
            .find(|(u, at, _)| u == url && now.saturating_duration_since(*at) < CACHE_FOR)
            .map(|(_, _, crl)| crl.clone())
    }

    /// Remember the CRLs a fetch gave (OCSP answers carry our nonce: never reused).
    pub(super) fn store(&mut self, requests: &[RevocationRequest], fetched: &[RevocationResponse], now: Instant) {
        for f in fetched {
            let is_crl = requests.iter().any(|r| r.url == f.url && r.ocsp_request.is_none());
            if let (true, Some(crl)) = (is_crl, &f.data) {
                self.entries.retain(|(u, _, _)| u != &f.url);
                self.entries.push((f.url.clone(), now, crl.clone()));
            }
        }
    }
}

/// Fetch what `requests` ask for concurrently (CRLs the cache has are not fetched again), each within
/// [`FETCH_TIMEOUT`]; the results are in the order of `requests`.
pub(super) async fn fetch_revocation(
    requests: &[RevocationRequest],
    cache: &CrlCache,
    hooks: &PlatformHooks,
) -> Vec<RevocationResponse> {
    let now = Instant::now();
    let mut jobs = tokio::task::JoinSet::new();
    let mut out: Vec<RevocationResponse> = Vec::new();
    for (i, req) in requests.iter().take(MAX_URLS).enumerate() {
        let url = req.url.clone();
        let what = if req.ocsp_request.is_some() { "OCSP answer" } else { "CRL" };
        if let (None, Some(crl)) = (&req.ocsp_request, cache.lookup(&url, now)) {
            debug!(%url, "CRL from the cache");
            out.push(RevocationResponse { url, data: Some(crl) });
            continue;
        }
        out.push(RevocationResponse { url: url.clone(), data: None });
        let (hooks, body) = (hooks.clone(), req.ocsp_request.clone());
        jobs.spawn(async move {
            let result = match tokio::time::timeout(FETCH_TIMEOUT, fetch(&url, body.as_deref(), &hooks)).await {
                Ok(r) => r,
                Err(_) => Err(FetchError::Timeout),
            };
            match result {
                Ok(data) => {
                    info!(%url, bytes = data.len(), "fetched {what}");
                    (i, Some(data))
                }
                Err(e) => {
                    info!(%url, %e, "cannot fetch {what}");
                    (i, None)
                }
            }
        });
    }
    while let Some(done) = jobs.join_next().await {
        if let Ok((i, data)) = done {
            if let Some(slot) = out.get_mut(i) {
                slot.data = data;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split() {
        let s = |u: &str| split_url(u).ok();
        assert_eq!(s("http://ca.example/ca.crl"), Some(("ca.example".into(), 80, "/ca.crl".into())));
        assert_eq!(s("HTTP://203.0.113.2:8080/a/b.crl"), Some(("203.0.113.2".into(), 8080, "/a/b.crl".into())));
        assert_eq!(s("http://[2001:db8::1]:81/x"), Some(("2001:db8::1".into(), 81, "/x".into())));
        assert_eq!(s("http://ca.example"), Some(("ca.example".into(), 80, "/".into())));
        assert!(s("https://ca.example/x").is_none());
        assert!(s("http://user@ca.example/x").is_none());
        assert!(s("http://ca.example:99999/x").is_none());
        assert!(s("http:///x").is_none());
    }

    #[test]
    fn responses_parse() {
        let ok = b"HTTP/1.0 200 OK\r\nContent-Type: application/pkix-crl\r\nContent-Length: 3\r\n\r\nabcdef";
        assert_eq!(parse_response(ok).unwrap(), b"abc");
        let no_len = b"HTTP/1.1 200 OK\r\n\r\nxyz";
        assert_eq!(parse_response(no_len).unwrap(), b"xyz");
        assert!(matches!(parse_response(b"HTTP/1.0 404 Not Found\r\n\r\n"), Err(FetchError::Status(404))));
        assert!(parse_response(b"HTTP/1.0 200 OK\r\nContent-Length: 9\r\n\r\nabc").is_err());
        assert!(parse_response(b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc").is_err());
        assert!(parse_response(b"HTTP/1.0 200").is_err());
        assert!(parse_response(b"garbage").is_err());
    }
}
