//! Replays the checked-in fuzz corpus (`fuzz/corpus/<target>/`) through the same
//! invariants the cargo-fuzz targets check (`fuzz/invariants.rs`), so every input a
//! fuzzer once found interesting, crashes it found included, is re-checked by plain
//! `cargo test`. To fuzz for new ones, see `fuzz/Cargo.toml`.

#[path = "../../fuzz/invariants.rs"]
mod invariants;

use std::path::{Path, PathBuf};

/// A fuzz target's corpus files, sorted; at least a handful per target.
fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 5,
        "{} holds only {} files",
        dir.display(),
        files.len()
    );
    files
}

/// Runs every corpus file of `target` and reports all that break an invariant at once.
fn replay(target: &str) {
    let failures: Vec<String> = corpus(target)
        .iter()
        .filter_map(|file| {
            let data = std::fs::read(file).unwrap();
            std::panic::catch_unwind(|| invariants::check(target, &data))
                .err()
                .map(|panic| {
                    let message = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    format!("{}: {message}", file.display())
                })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} corpus file(s) of {target} break an invariant:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn watch_body_corpus() {
    replay("watch_body");
}

#[test]
fn publish_body_corpus() {
    replay("publish_body");
}

#[test]
fn resource_path_corpus() {
    replay("resource_path");
}

#[test]
fn receiver_headers_corpus() {
    replay("receiver_headers");
}

#[test]
fn filter_corpus() {
    replay("filter");
}

#[test]
fn every_target_has_a_fuzz_target_and_a_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for target in invariants::TARGETS {
        let source =
            std::fs::read_to_string(root.join("fuzz_targets").join(format!("{target}.rs")))
                .unwrap_or_else(|e| panic!("fuzz target {target}: {e}"));
        assert!(
            source.contains(&format!("invariants::{target}(")),
            "fuzz target {target} must run invariants::{target}"
        );
        assert!(!corpus(target).is_empty());
    }
}
