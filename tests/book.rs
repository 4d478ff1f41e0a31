//! The book never drifts from the code: hex examples are vectors, internal
//! links resolve, and the requirements index is regenerated from the sources
//! (`IIP_UPDATE_INDEX=1 cargo test --test book` rewrites it).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use iip::conformance::client::load_client_cases;
use iip::conformance::spec::{requirements, Requirement};
use iip::conformance::vector::{parse_hex, FrameVector};
use iip::conformance::{shipped_cases, spec_dir, vectors_dir};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every markdown file under `dir`, recursively, sorted.
fn markdown_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(markdown_files(&path));
        } else if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
    out.sort();
    out
}

#[test]
fn every_hex_example_is_a_vector_byte_for_byte() {
    let mut checked = 0;
    for file in markdown_files(&spec_dir()) {
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.trim() != "```hex" {
                continue;
            }
            let marker = lines[..i].iter().rev().find(|l| !l.trim().is_empty()).copied().unwrap_or_default();
            let name =
                marker.trim().strip_prefix("<!-- vector: ").and_then(|m| m.strip_suffix(" -->")).unwrap_or_else(|| {
                    panic!("{}:{}: a hex example must follow <!-- vector: NAME -->", file.display(), i + 1)
                });
            let body: String =
                lines[i + 1..].iter().take_while(|l| l.trim() != "```").copied().collect::<Vec<_>>().join(" ");
            let example = parse_hex(&body).unwrap_or_else(|e| panic!("{}:{}: {e}", file.display(), i + 1));
            let vector = std::fs::read(vectors_dir().join("frames").join(format!("{name}.snap.bin")))
                .unwrap_or_else(|e| panic!("{}:{}: vector {name}: {e}", file.display(), i + 1));
            assert_eq!(example, vector, "{}:{}: the example differs from vector {name}", file.display(), i + 1);
            checked += 1;
        }
    }
    assert!(checked >= 3, "only {checked} hex examples found");
}

#[test]
fn internal_links_resolve() {
    let mut broken = Vec::new();
    for file in markdown_files(&spec_dir()) {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            let Some(end) = rest.find(')') else { break };
            let target = &rest[..end];
            let path = target.split('#').next().unwrap_or_default();
            if path.is_empty() || target.contains("://") || target.starts_with("mailto:") || target.contains(' ') {
                continue;
            }
            let resolved = file.parent().unwrap().join(path);
            if !resolved.exists() {
                broken.push(format!("{}: {target}", file.strip_prefix(root()).unwrap_or(&file).display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

fn sort_key(req: &Requirement) -> (PathBuf, String, u32) {
    let (prefix, number) = req.id.split_once('-').unwrap_or((&req.id, "0"));
    (req.chapter.clone(), prefix.to_string(), number.parse().unwrap_or(0))
}

/// Files under `dirs` (source text) that mention `[ID]` or `"ID"`.
fn citing_files(dirs: &[&str]) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for dir in dirs {
        let mut stack = vec![root().join(dir)];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = entry.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|e| e == "rs") {
                    let rel = p.strip_prefix(root()).unwrap().display().to_string();
                    files.push((rel, std::fs::read_to_string(&p).unwrap_or_default()));
                }
            }
        }
    }
    files.sort();
    files
}

fn index_markdown() -> String {
    let reqs = requirements(spec_dir()).unwrap();
    let mut vectors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for v in FrameVector::load_dir(&vectors_dir().join("frames")).unwrap() {
        for id in &v.sidecar.requirements {
            vectors.entry(id.clone()).or_default().push(format!("`frames/{}`", v.name));
        }
    }
    for c in shipped_cases().unwrap() {
        for id in &c.case.requirements {
            vectors.entry(id.clone()).or_default().push(format!("`sessions/{}`", c.id));
        }
    }
    for (_, c) in load_client_cases(vectors_dir().join("client-sessions")).unwrap() {
        for id in &c.requirements {
            vectors.entry(id.clone()).or_default().push(format!("`client/{}`", c.name));
        }
    }
    let sources = citing_files(&["tests", "src", "conformance"]);
    let mut ordered: Vec<&Requirement> = reqs.values().collect();
    ordered.sort_by_key(|r| sort_key(r));
    let mut out = String::from(
        "# Appendix B. Requirements index\n\n\
         Generated by `tests/book.rs` from `spec/`, `vectors/` and the sources; do not edit.\n\
         `IIP_UPDATE_INDEX=1 cargo test --test book` rewrites it, and the test fails when it is stale.\n\n\
         | requirement | level | vectors | code and tests |\n|---|---|---|---|\n",
    );
    let (mut total, mut covered) = (0, 0);
    for req in ordered {
        let chapter = req.chapter.file_name().unwrap().to_string_lossy();
        let level = req.level.name();
        let cited = vectors.get(&req.id).cloned().unwrap_or_default();
        let code: Vec<String> = sources
            .iter()
            .filter(|(_, text)| text.contains(&format!("[{}]", req.id)) || text.contains(&format!("\"{}\"", req.id)))
            .map(|(name, _)| format!("`{name}`"))
            .collect();
        total += 1;
        if !cited.is_empty() || !code.is_empty() {
            covered += 1;
        }
        let shown = |list: &[String]| if list.is_empty() { "—".to_string() } else { list.join(", ") };
        let _ =
            writeln!(out, "| [{}](../{chapter}#{}) | {level} | {} | {} |", req.id, req.id, shown(&cited), shown(&code));
    }
    let _ = write!(out, "\n{covered} of {total} requirements are checked by at least one vector or test.\n");
    out
}

#[test]
fn requirements_index_is_up_to_date() {
    let path = spec_dir().join("reference/requirements-index.md");
    let fresh = index_markdown();
    if std::env::var("IIP_UPDATE_INDEX").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &fresh).unwrap();
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == fresh,
        "spec/reference/requirements-index.md is stale: run IIP_UPDATE_INDEX=1 cargo test --test book"
    );
}

/// The figures under `spec/figures/` are drawn from the spec's own tables
/// and from shipped conformance cases; a figure that no longer matches its
/// source fails (`IIP_UPDATE_FIGURES=1 cargo test --test book` redraws them).
#[test]
fn figures_are_drawn_from_the_spec_and_the_vectors() {
    let chapter = |file: &str| std::fs::read_to_string(spec_dir().join(file)).ok();
    let cases = shipped_cases().unwrap();
    let case = |id: &str| cases.iter().find(|c| c.id == id).map(|c| c.case.clone());
    let figures = iip_dev::book::figures(&chapter, &case).unwrap();
    let dir = spec_dir().join("figures");
    let update = std::env::var("IIP_UPDATE_FIGURES").is_ok_and(|v| v == "1");
    let mut stale = Vec::new();
    for (name, svg) in &figures {
        let path = dir.join(name);
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, svg).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(svg.as_str()) {
            stale.push(name.clone());
        }
        let shown = markdown_files(&spec_dir())
            .iter()
            .any(|md| std::fs::read_to_string(md).unwrap_or_default().contains(&format!("figures/{name}")));
        assert!(shown, "figures/{name} is shown by no chapter");
    }
    assert!(stale.is_empty(), "stale figures {stale:?}: run IIP_UPDATE_FIGURES=1 cargo test --test book");
}

/// Every `[ID]` in the book names a requirement that a chapter defines, so
/// that the preprocessor turns it into a working link.
#[test]
fn every_requirement_reference_has_a_definition() {
    let mut defined = BTreeMap::new();
    let files = markdown_files(&spec_dir());
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for id in iip_dev::book::defined_ids(&text) {
            defined.insert(id, file.strip_prefix(spec_dir()).unwrap().to_path_buf());
        }
    }
    let mut unknown = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let chapter = file.strip_prefix(spec_dir()).unwrap();
        let (linked, missing) = iip_dev::book::link_requirements(&text, chapter, &defined);
        unknown.extend(missing.into_iter().map(|id| format!("{}: {id}", chapter.display())));
        if text.contains("**[") && chapter.starts_with("0") {
            assert!(linked.contains("<a id=\""), "{} defines requirements but got no anchors", chapter.display());
        }
    }
    assert!(unknown.is_empty(), "references to undefined requirements: {unknown:?}");
    assert!(defined.len() > 100, "only {} requirements found", defined.len());
}

/// The counts the README gives of the vectors are the suite's own.
#[test]
fn readme_counts_are_the_suites() {
    let frames = std::fs::read_dir(vectors_dir().join("frames"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().to_string_lossy().ends_with(".snap.bin"))
        .count();
    let server = shipped_cases().unwrap().len();
    let client = load_client_cases(vectors_dir().join("client-sessions")).unwrap().len();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let claim = format!(
        "{frames} binary frame vectors with TOML sidecars, {server} server and {client} client conformance cases"
    );
    assert!(readme.contains(&claim), "README.md should say: {claim}");
}

/// Every `scripts/NAME`, `cargo test --test NAME` and
/// `cargo bench --bench NAME` the README and the book tell a reader to run
/// names a script or target that exists.
#[test]
fn documented_scripts_and_targets_exist() {
    let root = root();
    let mut files = markdown_files(&spec_dir());
    files.extend([root.join("README.md"), root.join("CONTRIBUTING.md")]);
    // Targets declared in the manifest, like `conformance`, live elsewhere.
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let declared = |name: &str| manifest.contains(&format!("name = \"{name}\""));
    let (mut checked, mut missing) = (0, Vec::new());
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let words: Vec<&str> = line.split(|c: char| c.is_whitespace() || c == '`').collect();
            for pair in words.windows(2) {
                let name = pair[1].trim_end_matches([',', '.', ')', ';', ':']);
                let exists = match pair[0] {
                    _ if name.starts_with("scripts/") => root.join(name).is_file(),
                    "--test" => {
                        root.join("tests").join(format!("{name}.rs")).is_file()
                            || root.join("tests").join(name).join("main.rs").is_file()
                            || declared(name)
                    }
                    "--bench" => root.join("benches").join(format!("{name}.rs")).is_file() || declared(name),
                    _ => continue,
                };
                checked += 1;
                if !exists {
                    missing.push(format!("{}:{}: {} {name}", file.display(), n + 1, pair[0]));
                }
            }
        }
    }
    assert!(missing.is_empty(), "documented scripts or targets that do not exist:\n{}", missing.join("\n"));
    assert!(checked >= 20, "only {checked} scripts and targets found: is the extraction broken?");
}
