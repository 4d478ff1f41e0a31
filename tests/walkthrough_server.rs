//! The end of the book's walkthrough "Implementing IIP in another
//! language": the Python server it builds (`conformance/servers/iip_server.py`,
//! standard library only) passes every MUST case of `iip conformance`.
//! Skipped, saying so, where there is no `python3`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn the_walkthrough_server_passes_every_must_case() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/conformance/servers/iip_server.py");
    let spawned = Command::new("python3").arg(script).arg(&addr).stdout(Stdio::piped()).spawn();
    let mut server = spawned.expect("python3 runs the walkthrough's server (apt-get install python3)");
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.contains("serving on"), "the server did not start: {line}");
    let out = Command::new(env!("CARGO_BIN_EXE_iip"))
        .args(["conformance", &addr, "--level", "must", "--profile", "fail-route", "--color", "never"])
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let report = String::from_utf8_lossy(&out.stdout);
    println!("{report}");
    assert_eq!(out.status.code(), Some(0), "{report}{}", String::from_utf8_lossy(&out.stderr));
    let summary = report.lines().rev().find(|l| l.contains(" passed, ")).unwrap_or_default();
    assert!(summary.contains(" 0 failed"), "{summary}");
}
