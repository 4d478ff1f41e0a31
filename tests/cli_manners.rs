//! `iip call` and `iip bench` as a script uses them: the answer body comes
//! out byte for byte, `@-` reads standard input, errors name what failed,
//! and the exit codes tell an error answer (1), bad arguments or files (2)
//! and an unreachable server (3) apart; `iip bench` refuses zero counts and
//! fails when a request failed.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use iip::server::Server;

const IIP: &str = env!("CARGO_BIN_EXE_iip");

fn iip(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(IIP)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("iip runs");
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_and_bench_behave_like_unix_tools() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = Server::echo().build().unwrap().spawn(listener).unwrap();
    let addr = handle.local_addr().to_string();
    let file = std::env::temp_dir().join(format!("iip-call-{}.bin", std::process::id()));
    let body: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &body).unwrap();
    let at_file = format!("@{}", file.display());
    let a = addr.clone();
    let outputs = tokio::task::spawn_blocking(move || {
        vec![
            iip(&["call", &a, "/echo", &at_file], None),
            iip(&["call", &a, "/echo", "@-"], Some(b"from stdin")),
            iip(&["call", &a, "/nowhere", "x"], None),
            iip(&["call", &a, "/echo", "@/nonexistent/file"], None),
            iip(&["call", "127.0.0.1:9", "/echo", "x"], None),
            iip(&["bench", &a, "--depth", "0"], None),
            iip(&["bench", &a, "--duration", "0.3", "--path", "/nowhere"], None),
            iip(&["bench", &a, "--duration", "0.3"], None),
        ]
    })
    .await
    .unwrap();
    let _ = std::fs::remove_file(&file);
    let code = |o: &Output| o.status.code().unwrap_or(-1);
    let err = |o: &Output| String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!((code(&outputs[0]), outputs[0].stdout.len()), (0, 2_000_000));
    assert!(outputs[0].stdout == body, "the answer is written byte for byte");
    assert_eq!((code(&outputs[1]), &outputs[1].stdout[..]), (0, &b"from stdin"[..]));
    assert_eq!(code(&outputs[2]), 1, "an error answer: {}", err(&outputs[2]));
    assert!(err(&outputs[2]).contains("102"));
    assert_eq!(code(&outputs[3]), 2);
    assert!(err(&outputs[3]).contains("/nonexistent/file"), "{}", err(&outputs[3]));
    assert_eq!(code(&outputs[4]), 3);
    assert!(err(&outputs[4]).contains("127.0.0.1:9"), "{}", err(&outputs[4]));
    assert_eq!(code(&outputs[5]), 2, "{}", err(&outputs[5]));
    assert_eq!(code(&outputs[6]), 1, "a bench whose requests fail fails: {}", err(&outputs[6]));
    assert_eq!(code(&outputs[7]), 0, "{}", err(&outputs[7]));
    assert!(err(&outputs[7]).contains("1 connection(s)"), "bench echoes its settings: {}", err(&outputs[7]));
    handle.shutdown().await.unwrap();
}

/// `iip call A,B` tries the addresses in order: an unreachable first one is
/// skipped; when none can be reached, each failure is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_takes_several_addresses() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = Server::echo().build().unwrap().spawn(listener).unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let both = format!("{dead},{}", handle.local_addr());
    let dead_only = format!("{dead},{dead}");
    let (good, bad) = tokio::task::spawn_blocking(move || {
        (iip(&["call", &both, "/echo", "failover"], None), iip(&["call", &dead_only, "/echo", "x"], None))
    })
    .await
    .unwrap();
    assert_eq!(good.stdout, b"failover", "{}", String::from_utf8_lossy(&good.stderr));
    assert_eq!(bad.status.code(), Some(3));
    let said = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(said.matches(&dead).count(), 2, "{said}");
    handle.shutdown().await.unwrap();
}

/// `iip call -H` sends metadata entries and `--deadline` the server's
/// time for the request (spec 14.7); a bad entry is a usage error, and a
/// server without the extension gets the body alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_sends_metadata_and_a_deadline() {
    let start = |builder: iip::server::ServerBuilder| async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        builder.build().unwrap().spawn(listener).unwrap()
    };
    let routes = || {
        Server::echo()
            .route("/metadata", iip::conformance::metadata_handler)
            .route("/sleep", iip::conformance::sleep_handler)
    };
    let with = start(routes()).await;
    let without = start(routes().extensions(iip::server::ExtensionsConfig::off())).await;
    let (a, b) = (with.local_addr().to_string(), without.local_addr().to_string());
    let outputs = tokio::task::spawn_blocking(move || {
        vec![
            iip(&["call", &a, "/metadata", "-H", "request-id=r-9", "-H", "x.app=1", "--deadline", "5000"], None),
            iip(&["call", &a, "/sleep", "5000", "--deadline", "200"], None),
            iip(&["call", &a, "/echo", "x", "-H", "Bad=1"], None),
            iip(&["call", &a, "/echo", "x", "-H", "no-equals-sign"], None),
            iip(&["call", &b, "/metadata", "-H", "request-id=r-9"], None),
        ]
    })
    .await
    .unwrap();
    let code = |o: &Output| o.status.code().unwrap_or(-1);
    let json = |o: &Output| serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap_or_default();
    assert_eq!(code(&outputs[0]), 0, "{}", String::from_utf8_lossy(&outputs[0].stderr));
    let seen = json(&outputs[0]);
    assert_eq!((seen["request-id"].as_str(), seen["x.app"].as_str()), (Some("r-9"), Some("1")));
    let left: u64 = seen["deadline"].as_str().unwrap().parse().unwrap();
    assert!((4000..=5000).contains(&left), "{left}");
    // The server's 103 and the client's own limit end the call at the same
    // moment: either may be first.
    let said = String::from_utf8_lossy(&outputs[1].stderr);
    assert!(
        (code(&outputs[1]) == 1 && said.contains("103")) || (code(&outputs[1]) == 3 && said.contains("timed out")),
        "{}: {said}",
        code(&outputs[1])
    );
    assert_eq!((code(&outputs[2]), code(&outputs[3])), (2, 2), "bad entries are usage errors");
    assert!(String::from_utf8_lossy(&outputs[2].stderr).contains("EXT-20"));
    assert_eq!((code(&outputs[4]), json(&outputs[4])), (0, serde_json::json!({})), "nothing reaches a plain server");
    with.shutdown().await.unwrap();
    without.shutdown().await.unwrap();
}

/// `iip bench` reports the CPU time per request it spent, and with
/// `--server-pid` the server's (here the test process, which runs the server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_reports_cpu_per_request() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = Server::echo().build().unwrap().spawn(listener).unwrap();
    let addr = handle.local_addr().to_string();
    let pid = std::process::id().to_string();
    let out = tokio::task::spawn_blocking(move || {
        iip(&["bench", &addr, "--requests", "3000", "--duration", "20", "--server-pid", &pid, "--json"], None)
    })
    .await
    .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["requests"], 3000, "{report}");
    if std::path::Path::new("/proc/self/task").exists() {
        let client = report["client_cpu_us_per_request"].as_f64().unwrap_or(0.0);
        let server = report["server_cpu_us_per_request"].as_f64().unwrap_or(0.0);
        assert!(client > 0.0 && server > 0.0, "{report}");
    }
    handle.shutdown().await.unwrap();
}

/// `iip bench --raw` drives bare frames: it makes exactly the requests asked
/// for over every channel and depth, checks each answer against what it
/// sent (an error answer is a failed request, and the run fails), and
/// takes channel 0 alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_bench_counts_and_checks_every_answer() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = Server::echo().build().unwrap().spawn(listener).unwrap();
    let a = handle.local_addr().to_string();
    let outputs = tokio::task::spawn_blocking(move || {
        let common = ["--raw", "--duration", "20", "--json"];
        let run = |extra: &[&str]| iip(&[&["bench", &a][..], &common[..], extra].concat(), None);
        vec![
            run(&["--requests", "5000", "--connections", "2", "--channels", "7", "--depth", "3"]),
            run(&["--requests", "300", "--channels", "0", "--depth", "4", "--payload", "20000"]),
            run(&["--requests", "200", "--path", "/nowhere"]),
        ]
    })
    .await
    .unwrap();
    let report = |o: &Output| -> serde_json::Value {
        serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&o.stderr)))
    };
    let (many, zero, wrong) = (report(&outputs[0]), report(&outputs[1]), report(&outputs[2]));
    assert_eq!((many["requests"].as_u64(), many["errors"].as_u64()), (Some(5000), Some(0)), "{many}");
    assert_eq!((zero["requests"].as_u64(), zero["errors"].as_u64()), (Some(300), Some(0)), "{zero}");
    assert_eq!(outputs[0].status.code(), Some(0));
    assert_eq!((wrong["requests"].as_u64(), wrong["errors"].as_u64()), (Some(0), Some(200)), "{wrong}");
    assert!(wrong["first_error"].as_str().is_some_and(|e| e.contains("wrong body")), "{wrong}");
    assert_eq!(outputs[2].status.code(), Some(1), "a bench whose requests fail fails");
    handle.shutdown().await.unwrap();
}

/// `iip call` and `iip bench` against a server that accepts and then says
/// nothing: each ends within its limit, saying what it waited for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_fails_call_and_bench_in_bounded_time() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let (a, started) = (addr.clone(), std::time::Instant::now());
    let call = tokio::task::spawn_blocking(move || iip(&["call", &a, "/echo", "x", "--timeout", "1"], None));
    let out = call.await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("hello"), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(4), "{:?}", started.elapsed());
    // Plain IIP/1: the call itself waits.
    let a = addr.clone();
    let call =
        tokio::task::spawn_blocking(move || iip(&["call", &a, "/echo", "x", "--timeout", "1", "--no-hello"], None));
    let out = call.await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("the answer to /echo") || stderr.contains("timed out"), "{stderr}");
    let started = std::time::Instant::now();
    let bench = tokio::task::spawn_blocking(move || iip(&["bench", &addr, "--duration", "1"], None));
    let out = bench.await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(15), "{:?}", started.elapsed());
    silent.abort();
}

/// `iip attack --serve 127.0.0.1:0 --client-cmd CLIENT` with `extra`
/// arguments, off the runtime's threads: (exit code, what it printed).
async fn attack_serve(client: &str, extra: &[&str]) -> (Option<i32>, String) {
    let mut args: Vec<String> = ["attack", "--serve", "127.0.0.1:0", "--client-cmd", client].map(String::from).to_vec();
    args.extend(extra.iter().map(|a| a.to_string()));
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        iip(&args, None)
    })
    .await
    .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code(), said)
}

/// `iip attack --serve` plays bad servers for a client under test: this
/// crate's `iip call` passes each; a client that hangs is caught.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_serve_judges_a_client_against_bad_servers() {
    let (code, said) =
        attack_serve(&format!("'{IIP}' call {{addr}} /echo x --timeout 2"), &["--client-limit", "10"]).await;
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(said.lines().filter(|l| l.contains(" ok ")).count(), 7, "{said}");
    // Offering compression exposes it to the bomb, which it refuses at its
    // answer limit instead of inflating 2 GiB.
    for codec in ["zstd", "lz4"] {
        let client = format!("'{IIP}' call {{addr}} /echo x --timeout 5 --compress {codec}");
        let (code, said) = attack_serve(&client, &["--server", "compression-bomb"]).await;
        assert_eq!(code, Some(0), "{codec}: {said}");
        assert!(said.contains("compression-bomb ok"), "{codec}: {said}");
    }
    // A client that holds more than 1 GiB is caught, however briefly.
    let hog = "python3 -c 'import time; x = b\"1\" * (1200 << 20); time.sleep(0.5)'";
    let (code, said) = attack_serve(hog, &["--server", "compression-bomb"]).await;
    assert_ne!(code, Some(0), "{said}");
    assert!(said.contains("UNBOUNDED"), "{said}");
    let (code, said) = attack_serve("sleep 30", &["--client-limit", "0.5", "--server", "silent"]).await;
    assert_ne!(code, Some(0), "{said}");
    assert!(said.contains("HUNG"), "{said}");
}

/// Every option with a fixed set of values refuses any other with exit
/// code 2, naming the values it takes, before anything runs: no choice
/// falls through to a default.
#[test]
fn choices_outside_their_set_are_refused_by_name() {
    let cases: [(&[&str], &str); 6] = [
        (&["bench", "127.0.0.1:9", "--balance", "fastest"], "round-robin, random, fewest-pending, p2c"),
        (&["conformance", "127.0.0.1:9", "--level", "most"], "must, should, all"),
        (&["conformance", "127.0.0.1:9", "--color", "blue"], "auto, always, never"),
        (&["conformance", "127.0.0.1:9", "--peer", "java-iip"], "go-iip"),
        (&["client-conformance", "--color", "red"], "auto, always, never"),
        (&["--log-format", "xml", "serve"], "text, json"),
    ];
    for (args, values) in cases {
        let out = iip(args, None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(values), "{args:?} names the values {values}: {stderr}");
    }
}
