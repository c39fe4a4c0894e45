//! Fuzz entry points: the protocol targets of `ikelink_proto::fuzzing`, and the profile target, which lives here
//! beside the profile. Shared by the cargo-fuzz targets in `fuzz/` and the replay test `core/tests/fuzz_corpus.rs`.
//! Not an API: hidden from the docs, no stability promise.
//!
//! | target          | what the bytes are                                                    |
//! |-----------------|-----------------------------------------------------------------------|
//! | `profile_parse` | a TOML profile, parsed and validated without files or DNS             |
//!
//! The other targets are listed in `ikelink_proto::fuzzing`.

mod profile_parse;

pub use ikelink_proto::fuzzing::{
    cert_parse, eap_peer, epoch, esp_open, ike_sa, pq_exchange, seeds, tcp_deframe, wire_decode, Body,
};
pub use profile_parse::profile_parse;

/// Every target by name, as the replay test walks `fuzz/corpus/<name>/`.
pub const TARGETS: &[(&str, Body)] = &[
    ("wire_decode", wire_decode),
    ("ike_sa", ike_sa),
    ("eap_peer", eap_peer),
    ("cert_parse", cert_parse),
    ("esp_open", esp_open),
    ("tcp_deframe", tcp_deframe),
    ("pq_exchange", pq_exchange),
    ("profile_parse", profile_parse),
];
