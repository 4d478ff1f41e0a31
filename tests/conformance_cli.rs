//! The exit codes of `iip conformance`, as spec §12.2's `exit-codes` table
//! lists them: each code in the table is produced by the situation it names,
//! and the tool runs from a folder that holds no checkout (the spec and
//! vectors are embedded).

use std::process::Command;

use iip::conformance::{reference_server, spec_dir};

const IIP: &str = env!("CARGO_BIN_EXE_iip");

fn conformance(args: &[&str]) -> i32 {
    Command::new(IIP)
        .arg("conformance")
        .args(args)
        .current_dir(std::env::temp_dir())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("iip conformance runs")
        .code()
        .unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_are_the_ones_the_spec_lists() {
    let chapter = std::fs::read_to_string(spec_dir().join("12-conformance.md")).unwrap();
    let table = iip::conformance::spec::table(&chapter, "exit-codes").unwrap();
    let codes: Vec<i32> = table.rows.iter().map(|row| row[0].parse().unwrap()).collect();
    assert_eq!(codes, vec![0, 1, 2]);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = reference_server().unwrap().spawn(listener).unwrap();
    let addr = handle.local_addr().to_string();
    let profile = "max-channels=8,max-message=33554432,fail-route";
    let (a, p) = (addr.clone(), profile.to_string());
    let run = move |extra: Vec<&'static str>| {
        let (a, p) = (a.clone(), p.clone());
        tokio::task::spawn_blocking(move || {
            let mut args = vec![a.as_str(), "--profile", p.as_str()];
            args.extend(extra);
            conformance(&args)
        })
    };
    // 0: every selected case passed.
    assert_eq!(run(vec!["--chapter", "6"]).await.unwrap(), 0);
    // 1: a case failed (the server's channel limit is not the declared 9).
    let wrong = tokio::task::spawn_blocking(move || {
        conformance(&[&addr, "--profile", "max-channels=9", "--requirement", "CHAN-9"])
    });
    assert_eq!(wrong.await.unwrap(), 1);
    // 2: a selection that matches nothing; an unreachable target; a bad profile.
    assert_eq!(run(vec!["--requirement", "NOTHING-*"]).await.unwrap(), 2);
    let unreachable = tokio::task::spawn_blocking(|| conformance(&["127.0.0.1:9", "--chapter", "6"]));
    assert_eq!(unreachable.await.unwrap(), 2);
    let bad = tokio::task::spawn_blocking(|| conformance(&["127.0.0.1:9", "--profile", "peer=nobody"]));
    assert_eq!(bad.await.unwrap(), 2);
    // 1: the run's deadline passes before every case ran.
    let short = run(vec!["--deadline", "0.05"]).await.unwrap();
    assert_eq!(short, 1);
    handle.shutdown().await.unwrap();
}

/// A server that accepts connections and then neither reads nor writes.
async fn silent_server() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_ends_the_run_at_once_with_what_it_waited_for() {
    let (addr, task) = silent_server().await;
    let started = std::time::Instant::now();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(IIP)
            .args(["conformance", &addr.to_string(), "--timeout-ms", "500"])
            .output()
            .expect("iip conformance runs")
    })
    .await
    .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no answer to /echo"), "{stderr}");
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
    task.abort();
}
