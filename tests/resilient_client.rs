//! The production client under failure: a server restarted under load, one
//! of three servers killed and one hung under load, a retry policy that
//! never runs a request twice unless told the route is idempotent.
//!
//! Each scenario prints its figures (run with `--nocapture`); the
//! assertions are about behaviour, with time bounds loose enough for a
//! loaded machine.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use iip::client::retry::RetryPolicy;
use iip::client::{
    Backend, BackendConfig, Balancer, BalancerConfig, Call, ClientConfig, ClientError, Endpoint, Endpoints,
    HealthCheck, Strategy,
};
use iip::server::{Request, Server, ServerHandle};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt};

/// An echo server that counts how often it saw each body, so that a
/// request run twice shows.
async fn counting_echo(
    listener: TcpListener,
    seen: Arc<Mutex<HashMap<Bytes, u32>>>,
    name: &'static str,
) -> ServerHandle {
    Server::builder()
        .route("/echo", move |req: Request| {
            let seen = seen.clone();
            async move {
                *seen.lock().unwrap().entry(req.body().clone()).or_default() += 1;
                Ok::<_, std::convert::Infallible>(req.into_body())
            }
        })
        .route("/who", move |_req: Request| async move { Ok::<_, std::convert::Infallible>(name) })
        .grace(Duration::ZERO)
        .build()
        .unwrap()
        .spawn(listener)
        .unwrap()
}

fn quick() -> BackendConfig {
    let mut cfg = BackendConfig::default();
    cfg.client.timeout = Duration::from_secs(3);
    cfg.channels = 4;
    cfg.connect_timeout = Duration::from_secs(1);
    cfg.backoff.initial = Duration::from_millis(20);
    cfg.backoff.max = Duration::from_millis(200);
    cfg
}

/// When each call ended and what it got: the server's name or the error.
type CallLog = Vec<(Instant, Result<String, String>)>;

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed_maybe_sent: AtomicU64,
    attempts: AtomicU64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restarted_under_load_is_reconnected_and_nothing_runs_twice() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(HashMap::new()));
    let first = counting_echo(listener, seen.clone(), "first").await;
    let backend = Backend::new(Endpoint::new(addr.to_string()), quick());
    backend.ready(Duration::from_secs(5)).await.unwrap();

    // Workers call through the safe retry policy: a request is sent again
    // only when it certainly did not reach the server.
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..8 {
        let (backend, tally, stop) = (backend.clone(), tally.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let attempts = tally.clone();
            let counted = tower::service_fn(move |call: Call| {
                let (backend, tally) = (backend.clone(), attempts.clone());
                async move {
                    tally.attempts.fetch_add(1, Ordering::Relaxed);
                    backend.call_with(call).await
                }
            });
            let mut service = ServiceBuilder::new().retry(RetryPolicy::safe(20)).service(counted);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let body = Bytes::from(format!("worker {w} call {n}"));
                n += 1;
                match service.ready().await.unwrap().call(Call::new("/echo", body.clone())).await {
                    Ok(answer) => {
                        assert_eq!(answer, body, "an answer went to the wrong call");
                        tally.ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(err) if err.may_have_reached_server() => {
                        tally.failed_maybe_sent.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(err) => panic!("a safe retry gave up on a request that was never sent: {err}"),
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = tally.ok.load(Ordering::Relaxed);
    first.shutdown().await.unwrap();
    let down_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let listener = TcpListener::bind(addr).await.unwrap();
    let restarted_at = Instant::now();
    let second = counting_echo(listener, seen.clone(), "second").await;
    let at_restart = tally.ok.load(Ordering::Relaxed);
    while tally.ok.load(Ordering::Relaxed) == at_restart {
        assert!(restarted_at.elapsed() < Duration::from_secs(10), "no call succeeded after the restart");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let recovered = restarted_at.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    let (ok, maybe) = (tally.ok.load(Ordering::Relaxed), tally.failed_maybe_sent.load(Ordering::Relaxed));
    let attempts = tally.attempts.load(Ordering::Relaxed);
    println!(
        "restart: {ok} calls answered ({before} before the restart), {maybe} failed after they may have reached \
         the server, {} retried; down {:?}, first answer {recovered:?} after the restart; {} connections",
        attempts - ok - maybe,
        restarted_at - down_at,
        backend.connections()
    );
    assert!(ok > before && backend.connections() == 2, "{ok} {before} {}", backend.connections());
    let twice: Vec<_> = seen.lock().unwrap().iter().filter(|(_, n)| **n > 1).map(|(b, _)| b.clone()).collect();
    assert!(twice.is_empty(), "requests processed twice: {twice:?}");
    second.shutdown().await.unwrap();
}

/// Load through a balancer of three servers: one killed (its connection
/// goes down) and one hung (connected, answering nothing), found by the
/// probe and paused; calls go to the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_balancer_routes_around_a_killed_and_a_hung_server() {
    let hung = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    let mut endpoints = Vec::new();
    for name in ["a", "b", "c"] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        endpoints.push(Endpoint::new(listener.local_addr().unwrap().to_string()));
        let hung = hung.clone();
        let handle = Server::builder()
            .route("/who", move |_req: Request| {
                let hung = hung.clone();
                async move {
                    if name == "b" && hung.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    }
                    Ok::<_, std::convert::Infallible>(name)
                }
            })
            .grace(Duration::ZERO)
            .build()
            .unwrap()
            .spawn(listener)
            .unwrap();
        handles.push(handle);
    }
    let probe_every = Duration::from_millis(200);
    let backend = {
        let mut cfg = quick();
        cfg.client.timeout = Duration::from_millis(800);
        cfg
    };
    let balancer = Balancer::new(Endpoints::Static(endpoints), {
        let mut cfg = BalancerConfig::default();
        cfg.strategy = Strategy::RoundRobin;
        cfg.health =
            HealthCheck::Probe { route: "/who".into(), interval: probe_every, timeout: Duration::from_millis(150) };
        cfg.backend = backend;
        cfg
    });
    for _ in 0..3 {
        balancer.call("/who", "").await.unwrap();
    }
    let log: Arc<Mutex<CallLog>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (balancer, log, stop) = (balancer.clone(), log.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let result = balancer.call("/who", "").await;
                let entry = result.map(|b| String::from_utf8_lossy(&b).into_owned()).map_err(|e| e.to_string());
                log.lock().unwrap().push((Instant::now(), entry));
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    handles.remove(0).shutdown().await.unwrap(); // "a"
    let killed_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let hung_at = Instant::now();
    hung.store(true, Ordering::Relaxed); // "b"
    tokio::time::sleep(Duration::from_millis(3500)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    let log = std::mem::take(&mut *log.lock().unwrap());
    let count = |from: Instant, to: Instant, who: &str| {
        log.iter().filter(|(t, r)| *t >= from && *t < to && r.as_deref().ok() == Some(who)).count()
    };
    let last_failure = log.iter().filter(|(_, r)| r.is_err()).map(|(t, _)| *t).max();
    let end = Instant::now();
    let after_kill = count(killed_at + Duration::from_millis(100), hung_at, "a");
    // Loose on a loaded machine: two probe rounds and the 800 ms of the
    // calls already sent to the hung server, with a second to spare.
    let settled = hung_at + probe_every * 2 + Duration::from_millis(1800);
    let b_after = count(settled, end, "b");
    let c_after = count(settled, end, "c");
    println!(
        "balancer: {} calls, {} failed; after the kill \"a\" answered {after_kill}; last failure {:?} after the hang; \
         after the probe paused \"b\": b {b_after}, c {c_after}; members {:?}",
        log.len(),
        log.iter().filter(|(_, r)| r.is_err()).count(),
        last_failure.map(|t| t.saturating_duration_since(hung_at)),
        balancer.members()
    );
    assert_eq!(after_kill, 0, "calls still went to the killed server");
    assert_eq!(b_after, 0, "calls still went to the hung server after the probe paused it");
    assert!(c_after > 10, "the healthy server took the load: {c_after}");
    if let Some(t) = last_failure {
        assert!(t < settled, "calls failed after the hung server was paused: {:?} after the hang", t - hung_at);
    }
    let status = balancer.members();
    assert!(!status[0].up && status[1].paused && status[2].up && !status[2].paused, "{status:?}");
    for handle in handles {
        handle.shutdown().await.unwrap();
    }
}

/// The failure-rate check pauses a server whose calls fail, and tries it
/// again after the pause; a key picks the same server every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_rate_pauses_a_failing_server_and_keys_stick() {
    let sick = Arc::new(AtomicBool::new(true));
    let mut handles = Vec::new();
    let mut endpoints = Vec::new();
    for name in ["ok", "sick"] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        endpoints.push(Endpoint::new(listener.local_addr().unwrap().to_string()));
        let sick = sick.clone();
        handles.push(
            Server::builder()
                .layer(tower::load_shed::LoadShedLayer::new())
                .route_service(
                    "/who",
                    tower::service_fn(move |_req: Request| {
                        let sick = sick.clone();
                        async move {
                            if name == "sick" && sick.load(Ordering::Relaxed) {
                                return Err(iip::server::HandlerError::overloaded());
                            }
                            Ok::<_, iip::server::HandlerError>(name)
                        }
                    }),
                )
                .build()
                .unwrap()
                .spawn(listener)
                .unwrap(),
        );
    }
    let pause = Duration::from_millis(2500);
    let balancer = Balancer::new(Endpoints::Static(endpoints), {
        let mut cfg = BalancerConfig::default();
        cfg.strategy = Strategy::RoundRobin;
        cfg.health = HealthCheck::FailureRate { window: 10, min_calls: 4, max_failure_rate: 0.5, pause };
        cfg.backend = quick();
        cfg
    });
    let mut shed = 0;
    for _ in 0..40 {
        if let Err(err) = balancer.call("/who", "").await {
            assert_eq!(err.code(), Some(111), "{err}");
            shed += 1;
        }
    }
    assert!(shed <= 6, "the sick server kept getting calls: {shed} shed of 40");
    assert!(balancer.members()[1].paused);
    sick.store(false, Ordering::Relaxed);
    tokio::time::sleep(pause + Duration::from_millis(100)).await;
    let mut answered = HashMap::<String, usize>::new();
    for _ in 0..20 {
        let who = balancer.call("/who", "").await.unwrap();
        *answered.entry(String::from_utf8_lossy(&who).into_owned()).or_default() += 1;
    }
    assert!(answered.get("sick").copied().unwrap_or(0) > 0, "the server did not come back: {answered:?}");

    let hashed =
        Balancer::new(Endpoints::Static(balancer.members().iter().map(|m| Endpoint::new(m.addr.clone())).collect()), {
            let mut cfg = BalancerConfig::default();
            cfg.strategy = Strategy::Hash;
            cfg.backend = quick();
            cfg
        });
    // A key sticks to its member while the members stay the same: a member
    // whose connection is not up yet is passed over, so wait for them all.
    for _ in 0..500 {
        if hashed.members().iter().all(|m| m.up) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(hashed.members().iter().all(|m| m.up), "the members connect: {:?}", hashed.members());
    for key in ["alice", "bob", "carol", "dave"] {
        let first = hashed
            .call_with(iip::client::Call::new("/who", "").with_key(key).with_timeout(Duration::from_secs(3)))
            .await
            .unwrap();
        for _ in 0..5 {
            let again = hashed
                .call_with(iip::client::Call::new("/who", "").with_key(key).with_timeout(Duration::from_secs(3)))
                .await
                .unwrap();
            assert_eq!(again, first, "key {key} moved");
        }
    }
    for handle in handles {
        handle.shutdown().await.unwrap();
    }
}

/// A backend that cannot connect fails calls with `Unavailable` (not sent)
/// within their timeout, naming the address and the cause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_fails_calls_in_time_and_says_why() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let backend = Backend::new(Endpoint::new(addr.clone()), quick());
    let started = Instant::now();
    let err = backend
        .call_with(iip::client::Call::new("/echo", "x").with_timeout(Duration::from_millis(300)))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(matches!(err, ClientError::Unavailable(_)) && !err.may_have_reached_server(), "{err:?}");
    assert!(err.to_string().contains(&addr), "{err}");
    let err = ServiceBuilder::new()
        .retry(RetryPolicy::safe(2))
        .service(backend.clone())
        .oneshot(Call::new("/echo", "x"))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Unavailable(_)), "{err:?}");
}

/// A pool survives its server's restart: calls after it are answered
/// (before, every call failed with "server shutting down" for ever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_survives_a_server_restart() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(HashMap::new()));
    let first = counting_echo(listener, seen.clone(), "first").await;
    let config = {
        let mut cfg = ClientConfig::default();
        cfg.timeout = Duration::from_secs(5);
        cfg
    };
    let pool = iip::client::Pool::connect(addr.to_string(), 2, 3, config).await.unwrap();
    assert_eq!(&pool.call("/who", "").await.unwrap()[..], b"first");
    first.shutdown().await.unwrap();
    let second = counting_echo(TcpListener::bind(addr).await.unwrap(), seen, "second").await;
    // Each backend notices the close and reconnects by itself; a call made
    // before it noticed may fail typed, never hang.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pool.backends().iter().all(|b| b.connections() == 2 && b.is_up()) {
        assert!(Instant::now() < deadline, "the pool did not reconnect");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for _ in 0..6 {
        assert_eq!(&pool.call("/who", "").await.unwrap()[..], b"second");
    }
    assert!(pool.backends().iter().all(|b| b.connections() == 2));
    second.shutdown().await.unwrap();
}

/// Servers named by DNS: `localhost` resolves to the loopback addresses;
/// those that do not serve stay down and are skipped, the one that serves
/// is called.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_from_a_dns_name_are_found_and_called() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = counting_echo(listener, Arc::default(), "dns").await;
    let balancer = Balancer::new(Endpoints::dns(format!("localhost:{port}"), Duration::from_millis(200)), {
        let mut cfg = BalancerConfig::default();
        cfg.backend = quick();
        cfg
    });
    assert_eq!(&balancer.call("/who", "").await.unwrap()[..], b"dns");
    let members = balancer.members();
    assert!(members.iter().any(|m| m.addr == format!("127.0.0.1:{port}") && m.up), "{members:?}");
    handle.shutdown().await.unwrap();
}

/// Servers announced by a source of `tower::discover` changes, as a
/// service registry would feed them: the changes ready at construction are
/// in force at once, an insert adds a server, a remove takes it out of the
/// picks, an insert under a known key replaces its server, and a source
/// that ends keeps the servers it announced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_from_a_discovery_source_come_and_go() {
    use tower::discover::Change;
    let mut addrs = Vec::new();
    let mut handles = Vec::new();
    for name in ["a", "b"] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.push(listener.local_addr().unwrap().to_string());
        handles.push(counting_echo(listener, Arc::default(), name).await);
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Change<&'static str, Endpoint>>();
    let source = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|change| (Ok::<_, std::convert::Infallible>(change), rx))
    });
    tx.send(Change::Insert("a", Endpoint::new(addrs[0].clone()))).unwrap();
    let balancer = Balancer::discover(source, {
        let mut cfg = BalancerConfig::default();
        cfg.strategy = Strategy::RoundRobin;
        cfg.backend = quick();
        cfg
    });
    assert_eq!(balancer.members().len(), 1, "the ready insert is in force: {:?}", balancer.members());
    let whom = |balancer: Balancer| async move {
        let mut seen = std::collections::BTreeMap::<String, usize>::new();
        for _ in 0..12 {
            let who = balancer.call("/who", "").await.unwrap();
            *seen.entry(String::from_utf8_lossy(&who).into_owned()).or_default() += 1;
        }
        seen.into_keys().collect::<Vec<_>>()
    };
    let all_up = |balancer: Balancer, count: usize| async move {
        for _ in 0..500 {
            let members = balancer.members();
            if members.len() == count && members.iter().all(|m| m.up) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("members never settled: {:?}", balancer.members());
    };
    assert_eq!(whom(balancer.clone()).await, ["a"]);

    tx.send(Change::Insert("b", Endpoint::new(addrs[1].clone()))).unwrap();
    all_up(balancer.clone(), 2).await;
    assert_eq!(whom(balancer.clone()).await, ["a", "b"], "round robin reaches both");

    tx.send(Change::Remove("a")).unwrap();
    all_up(balancer.clone(), 1).await;
    assert_eq!(whom(balancer.clone()).await, ["b"], "a removed server gets no calls");

    tx.send(Change::Insert("b", Endpoint::new(addrs[0].clone()))).unwrap();
    for _ in 0..500 {
        if balancer.members().iter().all(|m| m.addr == addrs[0] && m.up) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(whom(balancer.clone()).await, ["a"], "an insert under a known key replaces its server");

    drop(tx);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(whom(balancer.clone()).await, ["a"], "an ended source keeps its servers");
    for handle in handles {
        handle.shutdown().await.unwrap();
    }
}
