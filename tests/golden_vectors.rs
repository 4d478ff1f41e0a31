//! Golden frame vectors: every `vectors/frames/*.toml` sidecar is built into
//! bytes (by the reference encoder, or raw for invalid vectors) and held as an
//! insta binary snapshot `vectors/frames/NAME.snap.bin`.
//!
//! Make a new vector: write its sidecar, run `cargo insta test`, then
//! `cargo insta review` and accept the new `.snap.bin`.

use std::path::PathBuf;

use iip::conformance::vector::FrameVector;

fn frames_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors/frames")
}

#[test]
fn every_frame_vector_matches_its_golden_bytes() {
    let vectors = FrameVector::load_dir(&frames_dir()).expect("sidecars load");
    assert!(vectors.len() >= 40, "only {} frame vectors", vectors.len());
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(frames_dir());
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| {
        for vector in &vectors {
            let bytes = vector.build().unwrap_or_else(|e| panic!("{}: {e}", vector.name));
            insta::assert_binary_snapshot!(format!("{}.bin", vector.name).as_str(), bytes.to_vec());
        }
    });
}
