//! Replays the committed corpus of the `sswan_parse` fuzz target (`fuzz/corpus/sswan_parse/*`) through its body
//! (`ikelink_desktop::fuzzing::sswan_parse`) on stable, as an ordinary test. The fuzzer (cargo-fuzz, nightly) is in
//! `fuzz/`; the core's targets are replayed by `core/tests/fuzz_corpus.rs`.

use std::path::{Path, PathBuf};

#[test]
fn sswan_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/sswan_parse");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: empty corpus", dir.display());
    for f in &files {
        let data = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        if std::panic::catch_unwind(|| ikelink_desktop::fuzzing::sswan_parse(&data)).is_err() {
            panic!("fuzz target sswan_parse panicked on {}", f.display());
        }
    }
    eprintln!("sswan_parse: {} corpus inputs replayed", files.len());
}
