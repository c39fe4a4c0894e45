//! Library part of `ikelink-cli`: the import of strongSwan app profiles ([`sswan`]), and the interop test harness
//! shared by the integration tests, the demo binary and the benchmark script (Linux only: it runs network
//! namespaces).

#[doc(hidden)]
pub mod fuzzing;
#[cfg(target_os = "linux")]
pub mod harness;
pub mod sswan;

/// Return early from a test unless `IKELINK_INTEROP=1` (interop tests need root and strongSwan).
#[macro_export]
macro_rules! require_interop {
    () => {
        if !$crate::harness::interop_enabled() {
            eprintln!("skipped: set IKELINK_INTEROP=1 (needs root and strongSwan)");
            return;
        }
    };
}
