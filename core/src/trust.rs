//! The desktop operating system's trust store, read for the sans-IO core (which takes trust anchors as bytes).

use crate::crypto::{CertError, TrustAnchors};

/// The OS trust store's CAs (via rustls-native-certs). Certificates the store holds but webpki cannot use are
/// skipped. This reads files / calls the OS: the profile resolver calls it, never the protocol core.
#[cfg(not(any(target_os = "android", target_os = "ios")))]
pub fn system_anchors() -> Result<TrustAnchors, CertError> {
    let result = rustls_native_certs::load_native_certs();
    let mut t = TrustAnchors::new();
    for c in &result.certs {
        let _ = t.add_der(c.as_ref());
    }
    if t.is_empty() {
        let why = result.errors.first().map(|e| e.to_string()).unwrap_or_else(|| "no certificates".into());
        return Err(CertError::SystemStore(why));
    }
    Ok(t)
}

/// Mobile platforms have no readable store: their shells evaluate trust through the OS instead.
#[cfg(any(target_os = "android", target_os = "ios"))]
pub fn system_anchors() -> Result<TrustAnchors, CertError> {
    Err(CertError::SystemStore("no system trust store here: name the gateway's CA".into()))
}

#[cfg(test)]
mod tests {
    use crate::crypto::CertError;

    #[cfg(not(any(target_os = "android", target_os = "ios")))]
    #[test]
    fn system_trust_store_loads_or_reports() {
        match super::system_anchors() {
            Ok(t) => assert!(!t.is_empty()),
            Err(e) => assert!(matches!(e, CertError::SystemStore(_)), "{e}"),
        }
    }
}
