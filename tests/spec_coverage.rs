//! Every requirement of the must level in `spec/` is cited by at least one
//! vector: a frame vector, a server session case or a client case.

use std::collections::BTreeSet;

use iip::conformance::client::load_client_cases;
use iip::conformance::spec::{requirements, Level};
use iip::conformance::vector::FrameVector;
use iip::conformance::{shipped_cases, spec_dir, vectors_dir};

/// Every requirement id any vector cites.
fn cited() -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for v in FrameVector::load_dir(&vectors_dir().join("frames")).unwrap() {
        ids.extend(v.sidecar.requirements);
    }
    for c in shipped_cases().unwrap() {
        ids.extend(c.case.requirements);
    }
    for (_, c) in load_client_cases(vectors_dir().join("client-sessions")).unwrap() {
        ids.extend(c.requirements);
    }
    ids
}

/// Requirements the spec lists as checked locally, whose named test file cites them.
fn checked_locally() -> BTreeSet<String> {
    let chapter = std::fs::read_to_string(spec_dir().join("12-conformance.md")).unwrap();
    let table = iip::conformance::spec::table(&chapter, "checked-locally").unwrap();
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    table
        .rows
        .iter()
        .filter(|row| {
            let test = std::fs::read_to_string(root.join(&row[2])).unwrap_or_default();
            let cites = test.contains(&format!("[{}]", row[0]));
            assert!(cites, "{} is listed as checked in {} but that file does not cite it", row[0], row[2]);
            cites
        })
        .map(|row| row[0].clone())
        .collect()
}

#[test]
fn every_must_is_cited_by_a_vector() {
    let spec = requirements(spec_dir()).unwrap();
    let mut cited = cited();
    cited.extend(checked_locally());
    let uncovered: Vec<String> = spec
        .values()
        .filter(|r| r.level == Level::Must && !cited.contains(&r.id))
        .map(|r| format!("[{}] {}", r.id, r.text))
        .collect();
    assert!(
        uncovered.is_empty(),
        "{} MUST requirement(s) cited by no vector:\n{}",
        uncovered.len(),
        uncovered.join("\n")
    );
}

#[test]
fn vectors_cite_only_requirements_that_exist() {
    let spec = requirements(spec_dir()).unwrap();
    let unknown: Vec<String> = cited().into_iter().filter(|id| !spec.contains_key(id)).collect();
    assert!(unknown.is_empty(), "vectors cite ids the spec does not define: {unknown:?}");
}

/// Every property of chapter 15 is a property of the model checker, named
/// by its id (the checker itself fails on one it checks that the chapter
/// does not define).
#[test]
fn every_property_is_model_checked() {
    let spec = requirements(spec_dir()).unwrap();
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let checks = std::fs::read_to_string(root.join("tests/model_check/properties.rs")).unwrap();
    let unchecked: Vec<&String> =
        spec.keys().filter(|id| id.starts_with("PROP-")).filter(|id| !checks.contains(&format!("\"{id} "))).collect();
    assert!(spec.keys().any(|id| id.starts_with("PROP-")), "chapter 15 defines properties");
    assert!(unchecked.is_empty(), "properties of chapter 15 no model property checks: {unchecked:?}");
}
