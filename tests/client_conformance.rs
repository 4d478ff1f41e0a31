//! Client conformance without a person (spec
//! §12.3): `iip client-conformance --client-cmd` starts the client under
//! test once per case with the documented actions file. Our own client
//! (`iip play-actions`) and a tiny standard-library Python client both pass
//! every case; a Python client with one planted defect fails exactly the
//! case that checks it, in the JSON report too.

use std::path::{Path, PathBuf};
use std::process::Command;

const IIP: &str = env!("CARGO_BIN_EXE_iip");

fn python_client() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/clients/iip_client.py")
}

/// The Python client needs python3: without it these tests fail, saying
/// so (`scripts/test` installs it).
fn require_python() {
    let present = Command::new("python3").arg("--version").output().is_ok_and(|o| o.status.success());
    assert!(present, "python3 is not installed: the Python client tests need it (apt-get install python3)");
}

/// Runs the unattended client suite against a client declaring no
/// extension; (exit code, JSON report).
fn run_suite(client_cmd: &str) -> (i32, serde_json::Value) {
    run_suite_declaring(client_cmd, "")
}

/// Runs the unattended client suite against a client declaring
/// `extensions`; (exit code, JSON report).
fn run_suite_declaring(client_cmd: &str, extensions: &str) -> (i32, serde_json::Value) {
    let report =
        std::env::temp_dir().join(format!("iip-client-report-{}-{}.json", std::process::id(), client_cmd.len()));
    let status = Command::new(IIP)
        .args(["client-conformance", "--timeout-ms", "2000", "--client-cmd", client_cmd, "--extensions", extensions])
        .arg("--json")
        .arg(&report)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("iip client-conformance runs");
    let json = serde_json::from_slice(&std::fs::read(&report).expect("a JSON report")).expect("valid JSON");
    let _ = std::fs::remove_file(report);
    (status.code().unwrap_or(-1), json)
}

/// How many client cases the suite has, read from the vectors.
fn case_count() -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors/client-sessions");
    iip::conformance::client::load_client_cases(dir).expect("client cases load").len()
}

/// How many of them a client without extensions is given (no hello action).
fn plain_case_count() -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors/client-sessions");
    let cases = iip::conformance::client::load_client_cases(dir).expect("client cases load");
    cases.iter().filter(|(_, case)| case.needs().is_empty()).count()
}

fn failed_cases(report: &serde_json::Value) -> Vec<String> {
    report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["verdict"] == "failed")
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn our_client_passes_every_client_case_unattended() {
    let (code, report) = run_suite_declaring(
        &format!("'{IIP}' play-actions {{addr}} {{actions}}"),
        "hello+lz4+zstd+going_away+metadata+answer_limit",
    );
    assert_eq!(failed_cases(&report), Vec::<String>::new());
    assert_eq!(code, 0);
    assert_eq!(report["totals"]["passed"], case_count());
}

/// A client that declares no extension is given no case with a hello:
/// they are reported as skipped, not failed.
#[test]
fn cases_with_a_hello_are_skipped_for_a_client_without_extensions() {
    let (code, report) = run_suite(&format!("'{IIP}' play-actions {{addr}} {{actions}}"));
    assert_eq!(code, 0);
    assert_eq!(report["totals"]["passed"], plain_case_count());
    assert_eq!(report["totals"]["skipped"], case_count() - plain_case_count());
    assert!(case_count() > plain_case_count(), "some client cases say hello");
}

#[test]
fn a_python_client_passes_every_client_case_unattended() {
    require_python();
    let (code, report) = run_suite(&format!("python3 '{}' {{addr}} {{actions}}", python_client().display()));
    assert_eq!(failed_cases(&report), Vec::<String>::new());
    assert_eq!(code, 0);
    assert_eq!(report["totals"]["passed"], plain_case_count());
}

#[test]
fn a_planted_defect_fails_exactly_its_case() {
    require_python();
    // The defect: an empty body goes out as a frame of data length 0
    // instead of {} ([MSG-9], [FRAME-6]).
    let source = std::fs::read_to_string(python_client()).unwrap();
    let planted = source.replace("data = b\"{}\"", "pass");
    assert_ne!(planted, source, "the defect is planted");
    let path = std::env::temp_dir().join(format!("iip_client_no_braces_{}.py", std::process::id()));
    std::fs::write(&path, planted).unwrap();
    let (code, report) = run_suite(&format!("python3 '{}' {{addr}} {{actions}}", path.display()));
    let _ = std::fs::remove_file(path);
    assert_eq!(failed_cases(&report), vec!["client::empty-body-sent-as-braces".to_string()]);
    assert_eq!(code, 1);
}

/// A client that exits without connecting fails every case, each within
/// its timeout: the run ends instead of waiting for a connection.
#[test]
fn a_client_that_never_connects_fails_every_case_in_bounded_time() {
    let started = std::time::Instant::now();
    let (code, report) = run_suite("false");
    assert_eq!(code, 1);
    assert_eq!(failed_cases(&report).len(), plain_case_count());
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "{:?}", started.elapsed());
}

/// `--color` is taken by the client suite as by the server suite.
#[test]
fn the_client_suite_takes_color() {
    let out = Command::new(IIP)
        .args(["client-conformance", "--color", "never", "--timeout-ms", "100", "--client-cmd", "false"])
        .output()
        .expect("iip client-conformance runs");
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stdout).contains('\u{1b}'), "no colour with --color never");
}
