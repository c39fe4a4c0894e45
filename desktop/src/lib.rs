//! Library part of the desktop client (`ikelink-desktop`): the import of strongSwan app profiles ([`sswan`]) and
//! of Apple configuration profiles ([`mobileconfig`]), used by `ikelink import`, and their fuzz entry points.
//! The binary (`src/main.rs`, the `ikelink` command) only drives the `ikelink` crate; no protocol logic lives here.

#[doc(hidden)]
pub mod fuzzing;
pub mod mobileconfig;
pub mod sswan;
