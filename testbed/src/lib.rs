//! `ikelink-testbed`: the interop test harness (Linux only: it runs network namespaces) shared by the interop
//! tests in `tests/`, the demo (`ikelink-demo`, behind examples/demo.sh) and the benchmark (`ikelink-bench`,
//! behind scripts/bench.sh). Test support only, never shipped: no product code depends on it, and nothing the
//! client needs at run time may live here. The client under test is the desktop binary `ikelink` (crate
//! `ikelink-desktop`), which the tests find through [`harness::desktop_bin`].

#[cfg(target_os = "linux")]
pub mod harness;

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
