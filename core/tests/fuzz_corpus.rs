//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/*`) through the fuzz target bodies
//! (`ikelink::fuzzing`) on stable, as ordinary tests: every input a fuzzer once found interesting must still be
//! handled without a panic. The fuzzers themselves (cargo-fuzz, nightly) live in `fuzz/`.
//!
//! `IKELINK_FUZZ_WRITE_SEEDS=1 cargo test -p ikelink --test fuzz_corpus write_seeds -- --ignored` rewrites the
//! computed seeds (`fuzz/corpus/<target>/seed-*`) from `ikelink::fuzzing::seeds()`.

use std::path::{Path, PathBuf};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target)
}

/// Run every file of the target's corpus through `body`; a panic names the file.
fn replay(target: &str) {
    let (_, body) = ikelink::fuzzing::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("no fuzz target {target}"));
    let dir = corpus_dir(target);
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
fn wire_decode() {
    replay("wire_decode");
}

#[test]
fn ike_sa() {
    replay("ike_sa");
}

#[test]
fn eap_peer() {
    replay("eap_peer");
}

#[test]
fn cert_parse() {
    replay("cert_parse");
}

#[test]
fn esp_open() {
    replay("esp_open");
}

#[test]
fn tcp_deframe() {
    replay("tcp_deframe");
}

#[test]
fn pq_exchange() {
    replay("pq_exchange");
}

#[test]
fn profile_parse() {
    replay("profile_parse");
}

/// Every target of `ikelink::fuzzing::TARGETS` has a test above and a corpus.
#[test]
fn every_target_has_a_corpus() {
    for (name, _) in ikelink::fuzzing::TARGETS {
        assert!(corpus_dir(name).is_dir(), "no corpus for fuzz target {name}");
    }
}

/// The computed seeds run without a panic (whether or not they are written).
#[test]
fn seeds_run() {
    for (target, name, bytes) in ikelink::fuzzing::seeds() {
        let (_, body) = ikelink::fuzzing::TARGETS.iter().find(|(t, _)| *t == target).expect("seed for a known target");
        if std::panic::catch_unwind(|| body(&bytes)).is_err() {
            panic!("fuzz target {target} panicked on computed seed {name}");
        }
    }
}

#[test]
#[ignore = "writes fuzz/corpus/*/seed-*; run with IKELINK_FUZZ_WRITE_SEEDS=1"]
fn write_seeds() {
    if std::env::var_os("IKELINK_FUZZ_WRITE_SEEDS").is_none() {
        eprintln!("skipped: set IKELINK_FUZZ_WRITE_SEEDS=1");
        return;
    }
    for (target, name, bytes) in ikelink::fuzzing::seeds() {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).expect("corpus directory");
        std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("seed file");
    }
}
