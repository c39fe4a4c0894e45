//! Fuzz entry points: the bodies of the cargo-fuzz targets in `fuzz/` (nightly, libFuzzer), shared with the
//! stable replay test `core/tests/fuzz_corpus.rs`, which runs every committed seed corpus through them.
//!
//! Not an API: hidden from the docs, no stability promise. Each function takes arbitrary bytes and must never
//! panic; a panic (or a failed assertion of an invariant checked here) is a bug found. Nothing here touches the
//! file system, the network or the clock: the time base is [`epoch`], one fixed `Instant` per process.
//!
//! | target          | what the bytes are                                                                      |
//! |-----------------|-----------------------------------------------------------------------------------------|
//! | `wire_decode`   | an IKE message, a payload chain, and the payload-level decoders behind them            |
//! | `ike_sa`        | a scenario byte, then messages from a scripted gateway that holds the IKE SA's keys     |
//! | `eap_peer`      | a configuration byte, then EAP packets from the gateway (MD5, MSCHAPv2, TLS, TTLS, PEAP) |
//! | `cert_parse`    | a mode byte, then certificates, chains, CRLs, OCSP responses, PEM, keys, signatures      |
//! | `esp_open`      | a suite byte, then ESP packets: raw, sealed by us, or forged with the SA's keys         |
//! | `tcp_deframe`   | a control byte (prefix expected, read size), then a TCP stream (RFC 9329 framing)       |
//! | `pq_exchange`   | a mode byte, then ML-KEM values, hybrid proposals, or a hybrid handshake's messages      |
//!
//! The profile target (`profile_parse`) lives in the runtime crate (`ikelink::fuzzing`), beside the profile; the
//! `.sswan` import in the desktop client's crate.

mod cert_parse;
mod eap_peer;
mod esp_open;
mod ike_sa;
mod pq_exchange;
mod seeds;
mod tcp_deframe;
mod wire_decode;

pub use cert_parse::cert_parse;
pub use eap_peer::eap_peer;
pub use esp_open::esp_open;
pub use ike_sa::ike_sa;
pub use pq_exchange::pq_exchange;
pub use seeds::seeds;
pub use tcp_deframe::tcp_deframe;
pub use wire_decode::wire_decode;

/// The time base of every target: one `Instant` per process. Test support only: the protocol code itself never
/// reads a clock, it takes `now` as an input.
pub fn epoch() -> std::time::Instant {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

/// A target body.
pub type Body = fn(&[u8]);

/// A small PKI for the certificate targets, made by `fuzz/fixtures/make-pki.sh`: an EC P-256 CA, and a gateway
/// certificate it issued (serial 0x1000, `DNS:gw.example.net`, `IP:203.0.113.1`, serverAuth, a CRL distribution
/// point and an OCSP responder), with the gateway's key (PKCS#8).
pub mod pki {
    pub const CA: &[u8] = include_bytes!("pki/ca.der");
    pub const GW: &[u8] = include_bytes!("pki/gw.der");
    pub const GW_KEY: &[u8] = include_bytes!("pki/gw-key.der");
    pub const GW_PEM: &[u8] = include_bytes!("pki/gw.pem");
    pub const GW_KEY_PEM: &[u8] = include_bytes!("pki/gw-key.pem");
    /// A CRL of the CA (revoking another serial) and an OCSP "good" answer for the gateway certificate (no nonce).
    pub const CRL: &[u8] = include_bytes!("pki/ca.crl.der");
    pub const OCSP_GOOD: &[u8] = include_bytes!("pki/ocsp-good.der");
    /// A time inside every validity period of the PKI and of its OCSP answer (2026-12-10, unix seconds).
    pub const NOW: u64 = 1_796_860_800;
    /// The gateway certificate's DNS name.
    pub const GW_NAME: &str = "gw.example.net";
}

/// A cursor over fuzz input that never fails: past the end it yields zeros and empty slices.
pub(crate) struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub(crate) fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    pub(crate) fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// Up to `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.data.split_at(n.min(self.data.len()));
        self.data = tail;
        head
    }

    /// A chunk with a 16-bit length prefix (shorter if the input ends first).
    pub(crate) fn chunk(&mut self) -> &'a [u8] {
        let n = usize::from(self.u16());
        self.take(n)
    }

    /// Everything left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

/// Appends a chunk in the format [`Input::chunk`] reads (for building seeds).
pub(crate) fn put_chunk(out: &mut Vec<u8>, data: &[u8]) {
    let n = u16::try_from(data.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(data.get(..usize::from(n)).unwrap_or(data));
}
