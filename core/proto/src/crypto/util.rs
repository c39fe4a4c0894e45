//! Small helpers that need a hash or constant-time comparison.

use std::net::SocketAddr;

use aws_lc_rs::digest;

/// NAT_DETECTION_*_IP hash: SHA-1(SPIi | SPIr | IP address | port) (RFC 7296 §2.23).
pub fn nat_detection_hash(spi_i: u64, spi_r: u64, addr: SocketAddr) -> [u8; 20] {
    let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(&spi_i.to_be_bytes());
    ctx.update(&spi_r.to_be_bytes());
    match addr.ip() {
        std::net::IpAddr::V4(a) => ctx.update(&a.octets()),
        std::net::IpAddr::V6(a) => ctx.update(&a.octets()),
    }
    ctx.update(&addr.port().to_be_bytes());
    let mut out = [0u8; 20];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Compare two byte strings without leaking where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nat_hash_depends_on_every_input() {
        let a: SocketAddr = "192.0.2.2:500".parse().unwrap();
        let base = nat_detection_hash(1, 2, a);
        assert_ne!(base, nat_detection_hash(1, 3, a));
        assert_ne!(base, nat_detection_hash(1, 2, "192.0.2.2:4500".parse().unwrap()));
        assert_ne!(base, nat_detection_hash(1, 2, "192.0.2.3:500".parse().unwrap()));
        assert!(constant_time_eq(&base, &nat_detection_hash(1, 2, a)));
        assert!(!constant_time_eq(&base, &base[..19]));
    }
}
