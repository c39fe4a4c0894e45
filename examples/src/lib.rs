//! Library part of `ikelink-cli`: the interop test harness shared by the integration tests, the demo binary and
//! the benchmark script.

pub mod harness;
