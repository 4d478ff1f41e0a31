//! IIP inside TLS and over a Unix socket: the whole conformance suite
//! passes over each; mutual TLS accepts the right client and refuses
//! others; every misconfiguration gives an error that names its cause, and
//! the server keeps serving other clients; and a third-party TLS stack
//! (Debian's `openssl`) interoperates in both directions.

#[path = "../conformance/certs.rs"]
mod certs;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use certs::TestPki;
use iip::client::{Client, ClientConfig, ClientError, Endpoint};
use iip::conformance::{reference_server, run_suite, shipped_cases, Profile, Verdict};
use iip::server::{Server, ServerHandle};
use iip::tls::{client_config, server_config, server_name, ServerTrust};
use iip::wire::frame::{Frame, FrameLimits};
use iip::wire::status::Status;

fn config() -> ClientConfig {
    let mut cfg = ClientConfig::default();
    cfg.timeout = Duration::from_secs(5);
    cfg
}

async fn tls_echo_server(tls: Arc<iip::tls::ServerConfig>) -> ServerHandle {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    Server::echo().tls(tls).tls_handshake_timeout(Duration::from_secs(2)).build().unwrap().spawn(listener).unwrap()
}

fn endpoint(handle: &ServerHandle, trust: ServerTrust<'_>, name: &str) -> Endpoint {
    let tls = client_config(trust, None).unwrap();
    Endpoint::new(handle.local_addr().to_string()).with_tls(tls, server_name(name).unwrap())
}

async fn echo_works(endpoint: &Endpoint) {
    let client = endpoint.connect(config()).await.expect("a good client connects");
    assert_eq!(client.call("/echo", "still serving").await.unwrap(), "still serving");
}

async fn assert_suite_passes(target: &Endpoint) {
    let cases = shipped_cases().unwrap();
    let results = run_suite(target, &cases, &Profile::reference(), Duration::from_secs(5)).await;
    let failed: Vec<String> = results
        .iter()
        .filter_map(|r| match &r.verdict {
            Verdict::Failed(f) => Some(format!("{}: {f}", r.case.id)),
            _ => None,
        })
        .collect();
    assert!(failed.is_empty(), "over {}: {} case(s) failed:\n{}", target.addr, failed.len(), failed.join("\n"));
    assert!(results.iter().filter(|r| matches!(r.verdict, Verdict::Passed)).count() > 70);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_suite_passes_inside_tls() {
    let pki = TestPki::new("suite");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let handle = reference_server().unwrap().spawn_tls(listener, certs::localhost_server(&pki)).unwrap();
    assert_suite_passes(&endpoint(&handle, ServerTrust::CaFile(&pki.ca()), "localhost")).await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_suite_passes_over_a_unix_socket() {
    let path = std::env::temp_dir().join(format!("iip-suite-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let server = reference_server().unwrap();
    let serving = server.clone();
    let task = tokio::spawn(async move { serving.serve_unix(listener).await });
    let target = Endpoint::new(format!("unix:{}", path.display()));
    assert_suite_passes(&target).await;
    let client = Client::connect_unix(&path, config()).await.unwrap();
    let peers = client.call("/sys/connection_statis", "{}").await.unwrap();
    assert!(String::from_utf8_lossy(&peers).contains("unix:"), "the peer is named as a Unix socket: {peers:?}");
    server.shutdown();
    task.await.unwrap().unwrap();
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn mutual_tls_accepts_the_right_client_and_refuses_others() {
    let pki = TestPki::new("mtls");
    let other = TestPki::new("mtls-other");
    let (cert, key) = pki.issue("mtls-server", &["localhost"], false, false);
    let tls = server_config(&cert, &key, Some(&pki.ca())).unwrap();
    let handle = tls_echo_server(tls).await;
    let addr = handle.local_addr().to_string();
    let with_identity = |identity: Option<(&std::path::Path, &std::path::Path)>| {
        let tls = client_config(ServerTrust::CaFile(&pki.ca()), identity).unwrap();
        Endpoint::new(addr.clone()).with_tls(tls, server_name("localhost").unwrap())
    };
    let (good_cert, good_key) = pki.issue("good-client", &["client.example"], true, false);
    let (bad_cert, bad_key) = other.issue("stranger", &["client.example"], true, false);
    let good = with_identity(Some((&good_cert, &good_key)));
    echo_works(&good).await;
    for (who, endpoint) in [
        ("no certificate", with_identity(None)),
        ("a certificate of another CA", with_identity(Some((&bad_cert, &bad_key)))),
    ] {
        // TLS 1.3 finishes the client's side of the handshake before the
        // server has checked the certificate: the refusal arrives as an
        // alert on the first read.
        let outcome = match endpoint.connect(config()).await {
            Err(err) => err.to_string(),
            Ok(client) => match client.call("/echo", "x").await {
                Err(err) => err.to_string(),
                Ok(_) => panic!("a client with {who} was served"),
            },
        };
        assert!(
            outcome.contains("Certificate") || outcome.contains("certificate") || outcome.contains("closed"),
            "{who}: {outcome}"
        );
        echo_works(&good).await;
    }
}

#[tokio::test]
async fn each_misconfiguration_names_its_cause_and_others_are_still_served() {
    let pki = TestPki::new("errors");
    let handle = tls_echo_server(certs::localhost_server(&pki)).await;
    let good = endpoint(&handle, ServerTrust::CaFile(&pki.ca()), "localhost");
    let other = TestPki::new("errors-other");

    let wrong_ca = endpoint(&handle, ServerTrust::CaFile(&other.ca()), "localhost").connect(config()).await;
    assert!(
        matches!(&wrong_ca, Err(ClientError::Tls(m)) if m.contains("not signed by a CA this client trusts")),
        "{wrong_ca:?}"
    );
    echo_works(&good).await;

    let wrong_name = endpoint(&handle, ServerTrust::CaFile(&pki.ca()), "iip.example").connect(config()).await;
    assert!(matches!(&wrong_name, Err(ClientError::Tls(m)) if m.contains("does not name the host")), "{wrong_name:?}");
    echo_works(&good).await;

    let (cert, key) = pki.issue("expired", &["localhost"], false, true);
    // Refused when a server is set up with it; served past that check, the
    // client says it expired.
    let refused = server_config(&cert, &key, None).unwrap_err().to_string();
    assert!(refused.contains("not now"), "{refused}");
    let unchecked =
        iip::tls::ServerConfig::builder_with_provider(Arc::new(tokio_rustls::rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(iip::tls::load_certs(&cert).unwrap(), iip::tls::load_key(&key).unwrap())
            .unwrap();
    let expired = tls_echo_server(Arc::new(unchecked)).await;
    let outcome = endpoint(&expired, ServerTrust::CaFile(&pki.ca()), "localhost").connect(config()).await;
    assert!(matches!(&outcome, Err(ClientError::Tls(m)) if m.to_lowercase().contains("expired")), "{outcome:?}");
    echo_works(&good).await;

    // A plain client to the TLS server: its frames are no handshake.
    // The hello is the first call to fail.
    let outcome = match Client::connect_with(handle.local_addr(), config()).await {
        Ok(plain) => plain.call("/echo", "plain").await.unwrap_err().to_string(),
        Err(err) => err.to_string(),
    };
    assert!(outcome.contains("TLS") || outcome.contains("closed"), "{outcome}");
    echo_works(&good).await;

    // A TLS client to a plain server.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain_server = Server::echo().build().unwrap().spawn(listener).unwrap();
    let outcome = endpoint(&plain_server, ServerTrust::Insecure, "localhost").connect(config()).await;
    assert!(matches!(&outcome, Err(ClientError::Tls(m)) if m.contains("plain IIP")), "{outcome:?}");
    let plain_client = Client::connect_with(plain_server.local_addr(), config()).await.unwrap();
    assert_eq!(plain_client.call("/echo", "fine").await.unwrap(), "fine");
}

#[tokio::test]
async fn a_stalled_handshake_is_closed_by_the_handshake_timeout() {
    let pki = TestPki::new("stall");
    let handle = tls_echo_server(certs::localhost_server(&pki)).await;
    let mut silent = tokio::net::TcpStream::connect(handle.local_addr()).await.unwrap();
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(5), tokio::io::AsyncReadExt::read(&mut silent, &mut buf));
    assert!(matches!(closed.await, Ok(Ok(0)) | Ok(Err(_))), "the server closes a handshake that never starts");
}

fn encoded(frame: &Frame) -> Vec<u8> {
    let mut out = BytesMut::new();
    iip::wire::encode::encode_frame(frame, &FrameLimits::default(), &mut out).unwrap();
    out.to_vec()
}

/// The interop tests run openssl's own client and server: without it they
/// fail, saying so (`scripts/test` installs it).
fn require_openssl() {
    let present = Command::new("openssl").arg("version").output().is_ok_and(|o| o.status.success());
    assert!(present, "openssl is not installed: the TLS interop tests need it (apt-get install openssl)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_s_client_carries_a_hand_written_request_to_our_server() {
    require_openssl();
    let pki = TestPki::new("s-client");
    let handle = tls_echo_server(certs::localhost_server(&pki)).await;
    let request = encoded(&Frame::new(Status::RequestWhole, &b"/echo"[..], 0, &b"from openssl"[..]));
    let answer = encoded(&Frame::new(Status::ResponseWhole, &b"/echo"[..], 0, &b"from openssl"[..]));
    let addr = handle.local_addr().to_string();
    let ca = pki.ca();
    let output = tokio::task::spawn_blocking(move || {
        let mut child = Command::new("openssl")
            .args(["s_client", "-connect", &addr, "-servername", "localhost", "-quiet", "-verify_return_error"])
            .arg("-CAfile")
            .arg(&ca)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_client starts");
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&request).unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut got = vec![0u8; answer.len()];
        let read = stdout.read_exact(&mut got);
        drop(stdin);
        let _ = child.kill();
        let _ = child.wait();
        read.map(|_| got)
    });
    let got = tokio::time::timeout(Duration::from_secs(10), output).await.unwrap().unwrap().unwrap();
    assert_eq!(got, encoded(&Frame::new(Status::ResponseWhole, &b"/echo"[..], 0, &b"from openssl"[..])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_talks_to_openssl_s_server() {
    require_openssl();
    let pki = TestPki::new("s-server");
    let (cert, key) = pki.issue("s-server", &["localhost"], false, false);
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    // s_server relays its stdin to the client and the client's bytes to its
    // stdout: it plays an IIP server by hand.
    let mut server = Command::new("openssl")
        .args(["s_server", "-accept", &port.to_string(), "-quiet", "-naccept", "1"])
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server starts");
    let addr = format!("127.0.0.1:{port}");
    let target = Endpoint::new(addr)
        .with_tls(client_config(ServerTrust::CaFile(&pki.ca()), None).unwrap(), server_name("localhost").unwrap());
    let mut client = None;
    // openssl s_server is a pipe this test answers by hand: no hello.
    let plain = {
        let mut cfg = config();
        cfg.extensions = iip::client::ClientExtensions::off();
        cfg
    };
    for _ in 0..50 {
        if let Ok(c) = target.connect(plain).await {
            client = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let client = client.expect("our client completes a handshake with openssl s_server");
    let call = tokio::spawn(async move { client.call("/echo", "via openssl").await });
    let mut stdout = server.stdout.take().unwrap();
    let mut stdin = server.stdin.take().unwrap();
    let request = encoded(&Frame::new(Status::RequestWhole, &b"/echo"[..], 0, &b"via openssl"[..]));
    let received = tokio::task::spawn_blocking(move || {
        let mut got = vec![0u8; request.len()];
        stdout.read_exact(&mut got).map(|_| (got, request))
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(received.0, received.1, "s_server received our request frame byte for byte");
    stdin.write_all(&encoded(&Frame::new(Status::ResponseWhole, &b"/echo"[..], 0, &b"answered"[..]))).unwrap();
    stdin.flush().unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(10), call).await.unwrap().unwrap().unwrap();
    assert_eq!(answer, "answered");
    let _ = server.kill();
    let _ = server.wait();
}
