//! Replays the committed corpora of the desktop's fuzz targets (`fuzz/corpus/sswan_parse/*`,
//! `fuzz/corpus/mobileconfig_parse/*`) through their bodies (`ikelink_desktop::fuzzing`) on stable, as ordinary
//! tests. The fuzzer (cargo-fuzz, nightly) is in `fuzz/`; the core's targets are replayed by
//! `core/tests/fuzz_corpus.rs`.

use std::path::{Path, PathBuf};

fn replay(target: &str, body: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: empty corpus", dir.display());
    for f in &files {
        let data = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        if std::panic::catch_unwind(|| body(&data)).is_err() {
            panic!("fuzz target {target} panicked on {}", f.display());
        }
    }
    eprintln!("{target}: {} corpus inputs replayed", files.len());
}

#[test]
fn sswan_parse() {
    replay("sswan_parse", ikelink_desktop::fuzzing::sswan_parse);
}

#[test]
fn mobileconfig_parse() {
    replay("mobileconfig_parse", ikelink_desktop::fuzzing::mobileconfig_parse);
}

/// The seeds are real imports, not only inputs that fail early: each one converts.
#[test]
fn mobileconfig_seeds_import() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/mobileconfig_parse");
    for entry in std::fs::read_dir(&dir).expect("corpus") {
        let path = entry.expect("directory entry").path();
        if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("seed-")) {
            let data = std::fs::read(&path).expect("seed");
            let imported = ikelink_desktop::mobileconfig::import_mobileconfig(&data, Path::new("/tmp"));
            assert!(imported.is_ok(), "{}: {:?}", path.display(), imported.err());
        }
    }
}
