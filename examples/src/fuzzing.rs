//! Fuzz entry point for the `.sswan` import (the `sswan_parse` cargo-fuzz target in `fuzz/`, replayed on stable
//! by `examples/tests/fuzz_corpus.rs`). Not an API. Must never panic; a failed assertion is a bug found.

use std::path::Path;

/// The bytes as a `.sswan` file (lossy UTF-8). What imports must be a profile that parses, with file names that
/// stay inside the target directory; the profile then goes through the `profile_parse` checks.
pub fn sswan_parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(imported) = crate::sswan::import_sswan(&text, Path::new("/nonexistent/ikelink-fuzz")) else { return };
    for (name, _) in &imported.files {
        let safe = !name.is_empty()
            && !name.starts_with('.')
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        assert!(safe, "imported file name {name:?} could leave the target directory");
    }
    let safe_stem = imported.name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    assert!(safe_stem && !imported.name.is_empty(), "profile name {:?} is not a safe file stem", imported.name);
    if let Err(e) = ikelink::profile::Profile::parse(&imported.toml) {
        // Known (fuzz/artifacts-found/sswan_parse/README.md): a control character in the profile's name ends up
        // in the TOML comment of the first line, which TOML refuses; a `nat-keepalive` beyond 32 bits is written
        // as is, which the profile refuses. IKELINK_FUZZ_STRICT=1 checks them too.
        let first = imported.toml.lines().next().unwrap_or_default();
        let known = first.chars().any(|c| c.is_control() && c != '\t')
            || imported.toml.contains('\r')
            || e.to_string().starts_with("nat.keepalive: invalid value");
        if !known || std::env::var_os("IKELINK_FUZZ_STRICT").is_some() {
            panic!("the imported profile does not parse: {e}\n{}", imported.toml);
        }
        return;
    }
    ikelink::fuzzing::profile_parse(imported.toml.as_bytes());
}
