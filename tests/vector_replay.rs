//! Replays every binary frame vector through the decoder and compares what
//! comes out with its sidecar, fed whole and in pieces of many sizes.

use std::collections::BTreeSet;
use std::path::PathBuf;

use iip::conformance::vector::FrameVector;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn vectors() -> Vec<FrameVector> {
    FrameVector::load_dir(&root().join("vectors/frames")).expect("sidecars load")
}

#[test]
fn every_vector_decodes_as_its_sidecar_says() {
    let mut failures = Vec::new();
    for vector in vectors() {
        let bin = vector.bin_path();
        let bytes = match std::fs::read(&bin) {
            Ok(bytes) => bytes,
            Err(e) => {
                failures.push(format!("{}: cannot read {}: {e}", vector.name, bin.display()));
                continue;
            }
        };
        for chunk in [bytes.len().max(1), 1, 2, 3, 7, 64, 4096] {
            if let Err(e) = vector.check(&bytes, chunk) {
                failures.push(e.to_string());
                break;
            }
        }
    }
    assert!(failures.is_empty(), "{} vector(s) failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn vectors_cover_every_status_value_and_cite_known_requirements() {
    let known = iip::conformance::spec::requirement_ids(&root().join("spec")).expect("spec readable");
    let mut statuses = BTreeSet::new();
    for vector in vectors() {
        for frame in &vector.sidecar.frame {
            statuses.insert(frame.status);
        }
        for id in &vector.sidecar.requirements {
            assert!(known.contains(id.as_str()), "{} cites unknown requirement {id}", vector.name);
        }
    }
    assert_eq!(statuses, (0..=8).collect::<BTreeSet<u8>>());
}
