//! EAP-TLS peer (RFC 5216, with the TLS 1.3 rules of RFC 9190) on a sans-IO `rustls::ClientConnection`, and
//! the TLS part of EAP-TTLS (RFC 5281; TLS 1.3 as in RFC 9427) and of PEAPv0, whose phase 2 is in
//! [`super::ttls`] and [`super::peap`].
//!
//! Type-Data: Flags (L = length included, M = more fragments, S = start), then the 4-octet TLS Message Length
//! if L is set, then TLS records (RFC 5216 §3.1). Fragments are acknowledged by an EAP-TLS message without
//! data (RFC 5216 §2.1.5).

use std::io::Read;
use std::sync::Arc;

use rustls::client::Resumption;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, ProtocolVersion};
use zeroize::Zeroizing;

use super::ttls::{Phase2, MAX_PHASE2_LEN};
use super::{EapError, MethodStep, TlsCredentials, TlsKey, TtlsCredentials};
use crate::crypto::{SigScheme, Signer};

const FLAG_LENGTH: u8 = 0x80;
const FLAG_MORE: u8 = 0x40;
const FLAG_START: u8 = 0x20;

/// Upper bound for one reassembled TLS message from the server.
pub(crate) const MAX_MESSAGE_LEN: usize = 64 * 1024;
/// Bounds for the size of the TLS data in one of our fragments.
pub(crate) const MIN_FRAGMENT: usize = 64;
pub(crate) const MAX_FRAGMENT: usize = 16 * 1024;

/// RFC 5216 §2.3: TLS 1.2 key material label; no context; 64 octets of MSK.
const LABEL_TLS12: &[u8] = b"client EAP encryption";
/// RFC 9190 §2.3: TLS 1.3 exporter label, context = EAP Type-Code 0x0D, 128 octets (MSK | EMSK).
const LABEL_TLS13: &[u8] = b"EXPORTER_EAP_TLS_Key_Material";
const TYPE_CODE_TLS: u8 = 0x0d;
/// RFC 5281 §8: EAP-TTLS keying material with TLS 1.2 (no context).
const LABEL_TTLS12: &[u8] = b"ttls keying material";
/// RFC 9427 §2.1: with TLS 1.3, EAP-TTLS uses the EAP-TLS exporter label with its own Type-Code.
const TYPE_CODE_TTLS: u8 = 0x15;
/// PEAPv0 keys as EAP-TLS does ([MS-PEAP] §3.1.5.5 without crypto-binding; strongSwan, FreeRADIUS); with
/// TLS 1.3 the EAP-TLS exporter with its own Type-Code (RFC 9427 §2.1).
const TYPE_CODE_PEAP: u8 = 0x19;
const MSK_LEN: usize = 64;

/// EAP-TLS, or EAP-TTLS with its phase 2.
#[derive(Debug)]
enum Flavor {
    Tls,
    Ttls(Box<Phase2>),
    Peap(Box<super::peap::Phase2>),
}

/// One EAP-TLS or EAP-TTLS conversation.
#[derive(Debug)]
pub(crate) struct EapTls {
    flavor: Flavor,
    conn: ClientConnection,
    /// TLS bytes to send, and how many of them are already sent.
    outgoing: Vec<u8>,
    sent: usize,
    /// The Identifier of the EAP Request being handled (PEAP's inner packets inherit it).
    outer_id: u8,
    /// Server fragments collected so far, and the total the first fragment announced.
    incoming: Vec<u8>,
    announced: Option<usize>,
    /// RFC 9190 §2.5: the server's one-octet 0x00 application data (TLS 1.3 only).
    success_indication: bool,
    fragment_size: usize,
}

impl EapTls {
    /// Build the TLS client for an EAP-TLS Start.
    pub(crate) fn new(creds: &TlsCredentials, fragment_size: usize, clock: Clock) -> Result<EapTls, EapError> {
        let builder = config_builder(clock)
            .with_protocol_versions(versions(creds.tls13))
            .map_err(tls_error)?
            .with_root_certificates(creds.roots.clone());
        let config = match &creds.key {
            TlsKey::Der(key) => {
                builder.with_client_auth_cert(creds.chain.clone(), key.clone_key()).map_err(tls_error)?
            }
            TlsKey::Signer(signer) => {
                let key = Arc::new(KeystoreKey(signer.clone()));
                let certified = Arc::new(rustls::sign::CertifiedKey::new(creds.chain.clone(), key));
                builder.with_client_cert_resolver(Arc::new(FixedCertificate(certified)))
            }
        };
        Self::build(config, &creds.server_name, Flavor::Tls, fragment_size)
    }

    /// Build the TLS client for an EAP-TTLS Start: the server authenticates with its certificate, we with the
    /// inner method in phase 2.
    pub(crate) fn new_ttls(creds: &TtlsCredentials, fragment_size: usize, clock: Clock) -> Result<EapTls, EapError> {
        let phase2 = Phase2::new(&creds.username, &creds.password, &creds.inner);
        Self::build(tunnel_config(creds, clock)?, &creds.server_name, Flavor::Ttls(Box::new(phase2)), fragment_size)
    }

    /// Build the TLS client for a PEAP Start: like EAP-TTLS, the server authenticates with its certificate, we
    /// with the inner method.
    pub(crate) fn new_peap(creds: &TtlsCredentials, fragment_size: usize, clock: Clock) -> Result<EapTls, EapError> {
        let phase2 = super::peap::Phase2::new(&creds.username, &creds.password, &creds.inner);
        Self::build(tunnel_config(creds, clock)?, &creds.server_name, Flavor::Peap(Box::new(phase2)), fragment_size)
    }

    fn build(
        mut config: ClientConfig,
        server_name: &str,
        flavor: Flavor,
        fragment_size: usize,
    ) -> Result<EapTls, EapError> {
        config.resumption = Resumption::disabled();
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| EapError::InvalidConfig("EAP-TLS server name is not a DNS name or IP address"))?;
        let conn = ClientConnection::new(Arc::new(config), name).map_err(tls_error)?;
        Ok(EapTls {
            flavor,
            conn,
            outgoing: Vec::new(),
            sent: 0,
            outer_id: 0,
            incoming: Vec::new(),
            announced: None,
            success_indication: false,
            fragment_size: fragment_size.clamp(MIN_FRAGMENT, MAX_FRAGMENT),
        })
    }

    /// True when the handshake is over, everything we had is sent and, for TLS 1.3, the protected success
    /// indication arrived: then EAP-Success may be accepted.
    pub(crate) fn is_complete(&self) -> bool {
        let done = !self.conn.is_handshaking() && self.sent == self.outgoing.len();
        if matches!(self.flavor, Flavor::Ttls(_) | Flavor::Peap(_)) {
            return done;
        }
        match self.conn.protocol_version() {
            Some(ProtocolVersion::TLSv1_2) => done,
            Some(ProtocolVersion::TLSv1_3) => done && self.success_indication,
            _ => false,
        }
    }

    /// The MSK (RFC 5216 §2.3 for TLS 1.2, RFC 9190 §2.3 for TLS 1.3; EAP-TTLS: RFC 5281 §8, RFC 9427 §2.1).
    /// Only after [`Self::is_complete`].
    pub(crate) fn msk(&self) -> Result<Zeroizing<Vec<u8>>, EapError> {
        if !self.is_complete() {
            return Err(EapError::Protocol("EAP-TLS handshake not complete"));
        }
        let (label12, type_code) = match self.flavor {
            Flavor::Tls => (LABEL_TLS12, TYPE_CODE_TLS),
            Flavor::Ttls(_) => (LABEL_TTLS12, TYPE_CODE_TTLS),
            Flavor::Peap(_) => (LABEL_TLS12, TYPE_CODE_PEAP),
        };
        match self.conn.protocol_version() {
            Some(ProtocolVersion::TLSv1_3) => {
                let mut km = self
                    .conn
                    .export_keying_material(Zeroizing::new(vec![0u8; 128]), LABEL_TLS13, Some(&[type_code]))
                    .map_err(tls_error)?;
                km.truncate(MSK_LEN);
                Ok(km)
            }
            _ => self.conn.export_keying_material(Zeroizing::new(vec![0u8; MSK_LEN]), label12, None).map_err(tls_error),
        }
    }

    /// EAP-TTLS: whether phase 2 finished so that EAP-Success may be accepted.
    pub(crate) fn phase2_finished(&mut self, rng: &mut dyn rand_core::CryptoRng) -> Result<(), EapError> {
        match &mut self.flavor {
            Flavor::Tls => Ok(()),
            Flavor::Ttls(p) => p.finished(rng),
            Flavor::Peap(p) => p.finished(),
        }
    }

    /// EAP-TTLS: a failure the inner method found, explaining the server's EAP-Failure.
    pub(crate) fn take_phase2_error(&mut self) -> Option<EapError> {
        match &mut self.flavor {
            Flavor::Tls => None,
            Flavor::Ttls(p) => p.take_error(),
            Flavor::Peap(p) => p.take_error(),
        }
    }

    /// Handle the Type-Data of one EAP-TLS Request with Identifier `id`; returns the Type-Data of our Response.
    /// The version bits of EAP-TTLS and PEAP flags are 0 in ours (the only version we speak; a server offering
    /// a higher one accepts that, RFC 5281 §9.1, draft-josefsson-pppext-eap-tls-eap §2.3).
    pub(crate) fn handle(
        &mut self,
        data: &[u8],
        id: u8,
        first: bool,
        rng: &mut dyn rand_core::CryptoRng,
    ) -> Result<MethodStep, EapError> {
        self.outer_id = id;
        let (&flags, mut rest) = data.split_first().ok_or(EapError::Malformed("EAP-TLS without Flags"))?;
        let mut length = None;
        if flags & FLAG_LENGTH != 0 {
            let (len, tail) = rest.split_first_chunk::<4>().ok_or(EapError::Malformed("EAP-TLS Length truncated"))?;
            length = Some(usize::try_from(u32::from_be_bytes(*len)).unwrap_or(usize::MAX));
            rest = tail;
        }
        if flags & FLAG_START != 0 {
            if !first {
                return Err(EapError::Protocol("EAP-TLS Start in the middle of a handshake"));
            }
            // A Start carries no TLS data (RFC 5216 §3.1); answer with the ClientHello.
            return self.flush();
        }
        if first {
            return Err(EapError::Protocol("EAP-TLS request without Start"));
        }
        if self.sent < self.outgoing.len() {
            // We are sending fragments: the server must acknowledge, not send data (RFC 5216 §2.1.5).
            if !rest.is_empty() || flags & FLAG_MORE != 0 {
                return Err(EapError::Protocol("EAP-TLS data where a fragment acknowledgement was expected"));
            }
            return Ok(MethodStep::Reply(self.next_fragment()));
        }
        if rest.is_empty() {
            if self.conn.is_handshaking() {
                return Err(EapError::Protocol("empty EAP-TLS request with nothing to acknowledge"));
            }
            // After the handshake some servers (libreswan/NSS) send an empty request before EAP-Success: answer
            // with what we still have to send, or an empty response (RFC 5216 §2.1.5, RFC 9190 §2.1.1).
            return self.flush();
        }
        if self.incoming.is_empty() {
            if let Some(total) = length {
                if total > MAX_MESSAGE_LEN {
                    return Err(EapError::Malformed("EAP-TLS message longer than 64 KiB"));
                }
                self.announced = Some(total);
            }
        }
        let limit = self.announced.unwrap_or(MAX_MESSAGE_LEN);
        if self.incoming.len() + rest.len() > limit {
            return Err(EapError::Malformed("EAP-TLS fragments exceed the announced length"));
        }
        self.incoming.extend_from_slice(rest);
        if flags & FLAG_MORE != 0 {
            return Ok(MethodStep::Reply(vec![0]));
        }
        if self.announced.is_some_and(|n| n != self.incoming.len()) {
            return Err(EapError::Malformed("EAP-TLS message shorter than the announced length"));
        }
        self.announced = None;
        let message = std::mem::take(&mut self.incoming);
        if let Err(e) = self.feed(&message, rng) {
            return self.fail(e);
        }
        self.flush()
    }

    /// Give one reassembled message to rustls and consume any application data it carried: for EAP-TLS only
    /// the TLS 1.3 success indication, for EAP-TTLS the phase 2 AVPs, which are answered through the tunnel.
    fn feed(&mut self, message: &[u8], rng: &mut dyn rand_core::CryptoRng) -> Result<(), EapError> {
        let mut input = message;
        while !input.is_empty() {
            let n = self.conn.read_tls(&mut input).map_err(|e| EapError::Tls(e.to_string()))?;
            self.conn.process_new_packets().map_err(tls_error)?;
            if n == 0 {
                break;
            }
        }
        let limit = match self.flavor {
            Flavor::Tls => 2,
            Flavor::Ttls(_) | Flavor::Peap(_) => MAX_PHASE2_LEN + 1,
        };
        let mut app = Vec::new();
        let mut buf = [0u8; 512];
        while app.len() < limit {
            match self.conn.reader().read(&mut buf) {
                Ok(0) => break,
                Ok(n) => app.extend_from_slice(buf.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(EapError::Tls(e.to_string())),
            }
        }
        match &mut self.flavor {
            Flavor::Tls => {
                if !app.is_empty() {
                    let tls13 = self.conn.protocol_version() == Some(ProtocolVersion::TLSv1_3);
                    if !tls13 || self.conn.is_handshaking() || app != [0] {
                        return Err(EapError::Tls("unexpected application data from the EAP-TLS server".into()));
                    }
                    tracing::debug!("EAP-TLS protected success indication received");
                    self.success_indication = true;
                }
            }
            Flavor::Ttls(phase2) => {
                if app.len() > MAX_PHASE2_LEN {
                    return Err(EapError::Malformed("EAP-TTLS phase 2 data longer than 16 KiB"));
                }
                // A server that piggybacks its first phase 2 Request on its Finished gets our answer to it;
                // otherwise we open phase 2 with our inner identity (RFC 5281 §7.2).
                let mut reply = Vec::new();
                if !app.is_empty() {
                    if self.conn.is_handshaking() {
                        return Err(EapError::Tls("EAP-TTLS application data during the handshake".into()));
                    }
                    reply = phase2.handle(&app, rng)?;
                } else if !self.conn.is_handshaking() {
                    if let Some(start) = phase2.start()? {
                        tracing::debug!("EAP-TTLS phase 2 started");
                        reply = start;
                    }
                }
                if !reply.is_empty() {
                    std::io::Write::write_all(&mut self.conn.writer(), &reply)
                        .map_err(|e| EapError::Tls(e.to_string()))?;
                }
            }
            Flavor::Peap(phase2) => {
                if app.len() > MAX_PHASE2_LEN {
                    return Err(EapError::Malformed("PEAP phase 2 data longer than 16 KiB"));
                }
                // The server starts phase 2 (with an inner Identity Request); we only answer.
                if !app.is_empty() {
                    if self.conn.is_handshaking() {
                        return Err(EapError::Tls("PEAP application data during the handshake".into()));
                    }
                    let reply = phase2.handle(&app, self.outer_id, rng)?;
                    if !reply.is_empty() {
                        std::io::Write::write_all(&mut self.conn.writer(), &reply)
                            .map_err(|e| EapError::Tls(e.to_string()))?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Collect what rustls wants to send and answer with its first fragment, or with an empty EAP-TLS
    /// message when there is nothing to send (acknowledging the server's final flight).
    fn flush(&mut self) -> Result<MethodStep, EapError> {
        self.collect_output().map_err(|e| EapError::Tls(e.to_string()))?;
        if self.outgoing.is_empty() {
            Ok(MethodStep::Reply(vec![0]))
        } else {
            Ok(MethodStep::Reply(self.next_fragment()))
        }
    }

    fn collect_output(&mut self) -> std::io::Result<()> {
        self.outgoing.clear();
        self.sent = 0;
        while self.conn.wants_write() {
            if self.conn.write_tls(&mut self.outgoing)? == 0 {
                break;
            }
        }
        Ok(())
    }

    /// A TLS failure we still report to the server: send the alert rustls queued (or an empty message) and
    /// fail once the server answers (RFC 5216 §2.1.3).
    fn fail(&mut self, error: EapError) -> Result<MethodStep, EapError> {
        tracing::warn!(%error, "EAP-TLS handshake failed");
        match self.flush() {
            Ok(MethodStep::Reply(data)) => Ok(MethodStep::ReplyThenFail(data, error)),
            _ => Err(error),
        }
    }

    /// The next fragment of `outgoing`: L and the total length on the first of several, M on all but the last.
    fn next_fragment(&mut self) -> Vec<u8> {
        let total = self.outgoing.len();
        let start = self.sent;
        let end = total.min(start.saturating_add(self.fragment_size));
        let chunk = self.outgoing.get(start..end).unwrap_or_default();
        let mut out = Vec::with_capacity(chunk.len() + 5);
        let more = end < total;
        if start == 0 && more {
            out.push(FLAG_LENGTH | FLAG_MORE);
            out.extend_from_slice(&u32::try_from(total).unwrap_or(u32::MAX).to_be_bytes());
        } else {
            out.push(if more { FLAG_MORE } else { 0 });
        }
        out.extend_from_slice(chunk);
        self.sent = end;
        if !more {
            self.outgoing.clear();
            self.sent = 0;
        }
        out
    }
}

/// Always our one certificate and key (the key store's).
#[derive(Debug)]
struct FixedCertificate(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for FixedCertificate {
    fn resolve(
        &self,
        _hints: &[&[u8]],
        _schemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A key store key as rustls sees it: the first of our signer's schemes that the server offered.
struct KeystoreKey(Arc<dyn Signer>);

impl std::fmt::Debug for KeystoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("KeystoreKey").field(&self.0.schemes()).finish()
    }
}

/// The TLS name of one of our signature schemes (the signature formats agree: DER ECDSA, PSS with a salt as long
/// as the hash).
fn tls_scheme(s: SigScheme) -> rustls::SignatureScheme {
    use rustls::SignatureScheme as T;
    match s {
        SigScheme::RsaPkcs1Sha256 => T::RSA_PKCS1_SHA256,
        SigScheme::RsaPkcs1Sha384 => T::RSA_PKCS1_SHA384,
        SigScheme::RsaPkcs1Sha512 => T::RSA_PKCS1_SHA512,
        SigScheme::RsaPssSha256 => T::RSA_PSS_SHA256,
        SigScheme::RsaPssSha384 => T::RSA_PSS_SHA384,
        SigScheme::RsaPssSha512 => T::RSA_PSS_SHA512,
        SigScheme::EcdsaP256Sha256 => T::ECDSA_NISTP256_SHA256,
        SigScheme::EcdsaP384Sha384 => T::ECDSA_NISTP384_SHA384,
        SigScheme::EcdsaP521Sha512 => T::ECDSA_NISTP521_SHA512,
        SigScheme::Ed25519 => T::ED25519,
    }
}

impl rustls::sign::SigningKey for KeystoreKey {
    fn choose_scheme(&self, offered: &[rustls::SignatureScheme]) -> Option<Box<dyn rustls::sign::Signer>> {
        let ours = self.0.schemes().into_iter().find(|s| offered.contains(&tls_scheme(*s)))?;
        Some(Box::new(KeystoreSignature { key: self.0.clone(), scheme: ours }))
    }

    fn algorithm(&self) -> rustls::SignatureAlgorithm {
        match self.0.schemes().first() {
            Some(SigScheme::EcdsaP256Sha256 | SigScheme::EcdsaP384Sha384 | SigScheme::EcdsaP521Sha512) => {
                rustls::SignatureAlgorithm::ECDSA
            }
            Some(SigScheme::Ed25519) => rustls::SignatureAlgorithm::ED25519,
            _ => rustls::SignatureAlgorithm::RSA,
        }
    }
}

struct KeystoreSignature {
    key: Arc<dyn Signer>,
    scheme: SigScheme,
}

impl std::fmt::Debug for KeystoreSignature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeystoreSignature").field("scheme", &self.scheme).finish()
    }
}

impl rustls::sign::Signer for KeystoreSignature {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        self.key.sign(self.scheme, message).map_err(|e| rustls::Error::General(format!("key store signature: {e}")))
    }

    fn scheme(&self) -> rustls::SignatureScheme {
        tls_scheme(self.scheme)
    }
}

/// The wall-clock time (seconds since 1970) the EAP server's certificate is judged at: the IKE SA's clock
/// (sans-IO, like the gateway's certificate), or the system's when there is none (the EAP peer on its own).
pub type Clock = Option<u64>;

/// rustls's clock is the IKE SA's when it has one.
#[derive(Debug)]
struct FixedTime(rustls::pki_types::UnixTime);

impl rustls::time_provider::TimeProvider for FixedTime {
    fn current_time(&self) -> Option<rustls::pki_types::UnixTime> {
        Some(self.0)
    }
}

/// A rustls client configuration builder with our crypto provider and `clock`.
fn config_builder(clock: Clock) -> rustls::ConfigBuilder<ClientConfig, rustls::WantsVersions> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    match clock {
        Some(secs) => {
            let now = rustls::pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs));
            ClientConfig::builder_with_details(provider, Arc::new(FixedTime(now)))
        }
        None => ClientConfig::builder_with_provider(provider),
    }
}

/// The TLS versions we offer: 1.2, and 1.3 when the profile allows it.
fn versions(tls13: bool) -> &'static [&'static rustls::SupportedProtocolVersion] {
    static BOTH: [&rustls::SupportedProtocolVersion; 2] = [&rustls::version::TLS13, &rustls::version::TLS12];
    static TLS12: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
    if tls13 {
        &BOTH
    } else {
        &TLS12
    }
}

/// The TLS client of a tunneled method (EAP-TTLS, PEAP): TLS 1.2 (or 1.3 where allowed), the server checked
/// against `creds`' roots, no client certificate.
fn tunnel_config(creds: &TtlsCredentials, clock: Clock) -> Result<ClientConfig, EapError> {
    Ok(config_builder(clock)
        .with_protocol_versions(versions(creds.tls13))
        .map_err(tls_error)?
        .with_root_certificates(creds.roots.clone())
        .with_no_client_auth())
}

fn tls_error(e: rustls::Error) -> EapError {
    EapError::Tls(e.to_string())
}
