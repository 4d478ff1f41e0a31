//! A balancer fed by DNS carries the user's endpoint to every server it
//! finds: a TLS server requiring credentials listens on each address
//! `localhost` resolves to (127.0.0.1, and ::1 where the machine's resolver
//! gives it), and every one is reached inside TLS with the credentials
//! (each answers with the identity it authenticated and its own name).

#[path = "../conformance/certs.rs"]
mod certs;

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use iip::client::{Balancer, BalancerConfig, Endpoint, Endpoints, Strategy};
use iip::proto::extensions::{AuthPolicy, Credentials};
use iip::server::{BearerTokens, HandlerError, Request, Server, ServerHandle};
use tokio::net::TcpListener;

async fn tls_server(
    listener: TcpListener,
    tls: std::sync::Arc<iip::tls::ServerConfig>,
    name: &'static str,
) -> ServerHandle {
    Server::echo()
        .route("/who", move |req: Request| async move {
            let identity = req.identity().unwrap_or("nobody").to_string();
            Ok::<_, HandlerError>(Bytes::from(format!("{identity}@{name}")))
        })
        .authenticator(BearerTokens::new().with("s3cret", "alice"), AuthPolicy::Required)
        .tls(tls)
        .build()
        .unwrap()
        .spawn(listener)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns_balancer_reaches_every_server_inside_tls_with_the_credentials() {
    let pki = certs::TestPki::new("balanced");
    let (cert, key) = pki.issue("server", &["localhost", "127.0.0.1", "::1"], false, false);
    let tls = iip::tls::server_config(&cert, &key, None).unwrap();
    let v4 = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = v4.local_addr().unwrap().port();
    let resolved: HashSet<std::net::SocketAddr> = tokio::net::lookup_host(("localhost", port)).await.unwrap().collect();
    let mut servers = vec![tls_server(v4, tls.clone(), "127.0.0.1").await];
    let mut expected = HashSet::from(["alice@127.0.0.1".to_string()]);
    if resolved.iter().any(|a| a.is_ipv6()) {
        let v6 = TcpListener::bind(("::1", port)).await.expect("::1 is resolved, so it can be bound");
        servers.push(tls_server(v6, tls, "::1").await);
        expected.insert("alice@::1".to_string());
    }
    let template = Endpoint::new("")
        .with_tls(certs::trusting_client(&pki.ca()), iip::tls::server_name("localhost").unwrap())
        .with_credentials(Credentials { scheme: "bearer".into(), credentials: "s3cret".into() });
    let balancer = Balancer::new(
        Endpoints::Dns { name: format!("localhost:{port}"), interval: Duration::from_millis(200), template },
        {
            let mut cfg = BalancerConfig::default();
            cfg.strategy = Strategy::RoundRobin;
            cfg
        },
    );
    let mut answers = HashSet::new();
    let started = std::time::Instant::now();
    while answers.len() < expected.len() && started.elapsed() < Duration::from_secs(10) {
        let answer = balancer.call("/who", "").await.unwrap();
        answers.insert(String::from_utf8(answer.to_vec()).unwrap());
    }
    assert_eq!(answers, expected);
    let members = balancer.members();
    assert_eq!(members.len(), expected.len(), "{members:?}");
    assert!(members.iter().all(|m| m.up), "{members:?}");
    // Without the template's credentials, the same servers refuse the call.
    let plain = Balancer::new(
        Endpoints::dns(format!("localhost:{port}"), Duration::from_millis(200)),
        BalancerConfig::default(),
    );
    let refused = tokio::time::timeout(Duration::from_secs(2), plain.call("/who", "")).await;
    assert!(matches!(refused, Ok(Err(_)) | Err(_)), "{refused:?}");
    for server in servers {
        server.shutdown().await.unwrap();
    }
}
