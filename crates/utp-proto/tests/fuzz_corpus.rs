//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the matching entry
//! point of `utp_proto::fuzzing`, so every input the fuzzer found interesting stays a
//! regression test on stable Rust, without cargo-fuzz.
//!
//! A corpus directory without a target, a target without a corpus directory, and an empty
//! corpus directory are all failures.

use std::fs;
use std::path::{Path, PathBuf};

use utp_proto::fuzzing::TARGETS;

fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus")
}

/// The corpus directories, by name.
fn corpus_dirs() -> Vec<(String, PathBuf)> {
    let root = corpus_root();
    let mut dirs: Vec<(String, PathBuf)> = fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", root.display()))
        .map(|entry| entry.expect("readable corpus entry").path())
        .filter(|path| path.is_dir())
        .map(|path| {
            let name = path
                .file_name()
                .and_then(|name| name.to_str())
                .expect("corpus directory names are UTF-8")
                .to_owned();
            (name, path)
        })
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn every_corpus_has_a_target_and_replays_cleanly() {
    for (name, dir) in corpus_dirs() {
        let Some((_, target)) = TARGETS.iter().find(|(target, _)| *target == name) else {
            panic!(
                "fuzz/corpus/{name} has no entry in utp_proto::fuzzing::TARGETS; \
                 add the target or remove the corpus"
            );
        };
        let mut files: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
            .map(|entry| entry.expect("readable corpus entry").path())
            .filter(|path| path.is_file())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "fuzz/corpus/{name} is empty; commit at least one seed input");
        for file in files {
            let data = fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            // A panic names the input through the test output below.
            eprintln!("replaying {}", file.display());
            target(&data);
        }
    }
}

#[test]
fn every_target_has_a_corpus() {
    let dirs = corpus_dirs();
    for (name, _) in TARGETS {
        assert!(
            dirs.iter().any(|(dir, _)| dir == name),
            "fuzz target {name} has no seed corpus in fuzz/corpus/{name}"
        );
    }
}
