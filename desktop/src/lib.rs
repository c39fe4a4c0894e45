//! Library part of the desktop client (`ikelink-desktop`): the import of strongSwan app profiles ([`sswan`]),
//! used by `ikelink import`, and its fuzz entry point. The binary (`src/main.rs`, the `ikelink` command) only
//! drives the `ikelink` crate; no protocol logic lives here.

#[doc(hidden)]
pub mod fuzzing;
pub mod sswan;
