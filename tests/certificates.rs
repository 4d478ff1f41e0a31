//! Certificates without a tutorial: `iip cert`'s files serve TLS and mutual
//! TLS to `iip call` and `iip bench`; the certificate most tutorials make
//! (`openssl req -x509`, a CA certificate) is refused when `iip serve`
//! starts, saying why and how to make a right one, and the book's openssl
//! recipe (a CA and a leaf apart) works; a client facing a server that
//! presents a CA certificate anyway is told so in words.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

const IIP: &str = env!("CARGO_BIN_EXE_iip");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("iip-certs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn iip(args: &[&str]) -> Output {
    Command::new(IIP).args(args).output().expect("iip runs")
}

/// `iip serve` with `args`, once it says where it serves; killed on drop.
struct Serving {
    child: Child,
    addr: String,
}

impl Serving {
    fn start(args: &[&str]) -> Serving {
        Serving::start_with(args, &[])
    }

    fn start_with(args: &[&str], env: &[(&str, &Path)]) -> Serving {
        let mut child = Command::new(IIP)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .spawn()
            .expect("iip serve starts");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while !line.starts_with("iip serving on") {
            line.clear();
            assert!(stderr.read_line(&mut line).unwrap() > 0, "iip serve ended before serving");
        }
        let addr = line.split_whitespace().nth(3).expect("iip serving on ADDR").to_string();
        std::thread::spawn(move || for _ in stderr.lines() {});
        Serving { child, addr }
    }

    fn port(&self) -> &str {
        self.addr.rsplit_once(':').unwrap().1
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

fn require_openssl() {
    let present = Command::new("openssl").arg("version").output().is_ok_and(|o| o.status.success());
    assert!(present, "openssl is not installed: these tests need it (apt-get install openssl)");
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn iip_cert_files_serve_call_bench_and_mutual_tls() {
    let dir = scratch("made");
    let made =
        iip(&["cert", "--name", "localhost", "--ip", "127.0.0.1", "--client", "alice", "--out", &path(&dir, "")]);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    #[cfg(unix)]
    for key in ["ca-key.pem", "server-key.pem", "client-key.pem"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(key)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{key} is private");
    }
    let (cert, key, ca) = (path(&dir, "server.pem"), path(&dir, "server-key.pem"), path(&dir, "ca.pem"));
    let server = Serving::start(&["--tls-cert", &cert, "--tls-key", &key]);
    for addr in [server.addr.clone(), format!("localhost:{}", server.port())] {
        let call = iip(&["call", &addr, "/echo", "over tls", "--tls-ca", &ca]);
        assert!(call.status.success(), "{addr}: {}", String::from_utf8_lossy(&call.stderr));
        assert_eq!(call.stdout, b"over tls");
    }
    let bench = iip(&["bench", &server.addr, "--tls-ca", &ca, "--requests", "200"]);
    assert!(bench.status.success(), "{}", String::from_utf8_lossy(&bench.stderr));

    let mutual = Serving::start(&["--tls-cert", &cert, "--tls-key", &key, "--tls-client-ca", &ca]);
    let (client_cert, client_key) = (path(&dir, "client.pem"), path(&dir, "client-key.pem"));
    let call = iip(&[
        "call",
        &mutual.addr,
        "/echo",
        "me",
        "--tls-ca",
        &ca,
        "--tls-client-cert",
        &client_cert,
        "--tls-client-key",
        &client_key,
    ]);
    assert!(call.status.success(), "{}", String::from_utf8_lossy(&call.stderr));
    assert_eq!(call.stdout, b"me");
    let anonymous = iip(&["call", &mutual.addr, "/echo", "me", "--tls-ca", &ca]);
    assert!(!anonymous.status.success(), "a client without a certificate is refused");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_tutorial_certificate_is_refused_at_start_saying_how_to_make_one() {
    require_openssl();
    let dir = scratch("tutorial");
    openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
    );
    let serve = iip(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        &path(&dir, "cert.pem"),
        "--tls-key",
        &path(&dir, "key.pem"),
    ]);
    assert_eq!(serve.status.code(), Some(2));
    let said = String::from_utf8_lossy(&serve.stderr);
    assert!(said.contains("is a CA certificate") && said.contains("iip cert"), "{said}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_leaf_without_names_is_refused_and_the_books_openssl_recipe_works() {
    require_openssl();
    let dir = scratch("recipe");
    // The book's recipe: a CA, then a leaf it signs with CA:FALSE and names.
    openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca-key.pem",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=my dev CA",
            "-days",
            "365",
        ],
    );
    openssl(
        &dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server-key.pem",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(dir.join("leaf.ext"), "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n")
        .unwrap();
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-days",
            "365",
            "-extfile",
            "leaf.ext",
            "-out",
            "server.pem",
        ],
    );
    let server = Serving::start(&["--tls-cert", &path(&dir, "server.pem"), "--tls-key", &path(&dir, "server-key.pem")]);
    let call = iip(&["call", &server.addr, "/echo", "recipe", "--tls-ca", &path(&dir, "ca.pem")]);
    assert!(call.status.success(), "{}", String::from_utf8_lossy(&call.stderr));
    // The same leaf without its subjectAltName: refused at start.
    std::fs::write(dir.join("bare.ext"), "basicConstraints=CA:FALSE\n").unwrap();
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-days",
            "365",
            "-extfile",
            "bare.ext",
            "-out",
            "bare.pem",
        ],
    );
    let serve = iip(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        &path(&dir, "bare.pem"),
        "--tls-key",
        &path(&dir, "server-key.pem"),
    ]);
    assert_eq!(serve.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&serve.stderr).contains("subjectAltName"),
        "{}",
        String::from_utf8_lossy(&serve.stderr)
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_client_facing_a_ca_certificate_is_told_so_in_words() {
    require_openssl();
    let dir = scratch("ca-as-leaf");
    openssl(
        &dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
    );
    // A server built on rustls directly, past the check iip's own setup makes.
    let certs = iip::tls::load_certs(&dir.join("cert.pem")).unwrap();
    let key = iip::tls::load_key(&dir.join("key.pem")).unwrap();
    let tls = iip::tls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _handle = iip::server::Server::echo().build().unwrap().spawn_tls(listener, std::sync::Arc::new(tls)).unwrap();
    let trust = iip::tls::client_config(iip::tls::ServerTrust::CaFile(&dir.join("cert.pem")), None).unwrap();
    let endpoint =
        iip::client::Endpoint::new(addr.to_string()).with_tls(trust, iip::tls::server_name("localhost").unwrap());
    let err = endpoint.connect(iip::client::ClientConfig::default()).await.unwrap_err().to_string();
    assert!(err.contains("presents a CA certificate as its own"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Session keys go to $SSLKEYLOGFILE only with `--tls-key-log`, on either
/// side: the environment alone writes nothing.
#[test]
fn tls_key_logs_only_with_the_flag() {
    let dir = scratch("keylog");
    let made = iip(&["cert", "--name", "localhost", "--ip", "127.0.0.1", "--out", &path(&dir, "")]);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let (cert, key, ca) = (path(&dir, "server.pem"), path(&dir, "server-key.pem"), path(&dir, "ca.pem"));
    let call = |addr: &str, log: &Path, flag: bool| {
        let mut command = Command::new(IIP);
        command.args(["call", addr, "/echo", "keys", "--tls-ca", &ca]).env("SSLKEYLOGFILE", log);
        if flag {
            command.arg("--tls-key-log");
        }
        let out = command.output().expect("iip call runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    let secrets = |log: &Path| -> Vec<String> {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .map(|l| l.split(' ').next().unwrap_or("").to_string())
            .collect()
    };

    let (server_log, plain_log, client_log) = (dir.join("server.log"), dir.join("plain.log"), dir.join("client.log"));
    let logging = Serving::start_with(
        &["--tls-cert", &cert, "--tls-key", &key, "--tls-key-log"],
        &[("SSLKEYLOGFILE", &server_log)],
    );
    call(&logging.addr, &plain_log, false);
    assert!(secrets(&server_log).iter().any(|s| s == "CLIENT_TRAFFIC_SECRET_0"), "{:?}", secrets(&server_log));
    assert!(!plain_log.exists(), "a client without --tls-key-log wrote keys");

    let quiet = Serving::start_with(&["--tls-cert", &cert, "--tls-key", &key], &[("SSLKEYLOGFILE", &plain_log)]);
    call(&quiet.addr, &client_log, true);
    assert!(!plain_log.exists(), "a server without --tls-key-log wrote keys");
    assert!(secrets(&client_log).iter().any(|s| s == "SERVER_TRAFFIC_SECRET_0"), "{:?}", secrets(&client_log));
}
