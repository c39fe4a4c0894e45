//! Fuzz entry point for the `.sswan` import (the `sswan_parse` cargo-fuzz target in `fuzz/`, replayed on stable
//! by `desktop/tests/fuzz_corpus.rs`). Not an API. Must never panic; a failed assertion is a bug found.

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
        panic!("the imported profile does not parse: {e}\n{}", imported.toml);
    }
    ikelink::fuzzing::profile_parse(imported.toml.as_bytes());
}
