//! The client across a real network path with delay and loss: two network
//! namespaces of this test's own, joined by a veth pair whose both ends
//! delay every packet 20 ms (± 5 ms) and drop 1 % of them (`tc netem`).
//! Where the kernel has no netem, nftables drops 2 % of the packets each
//! way instead (no delay), and the test says so.
//! `iip serve` runs in one; a client of this crate (this test binary run
//! again inside the other) pipelines calls on several channels and checks
//! that every call gets its own answer exactly once and none is lost.
//!
//! Needs root with network namespaces and the netem queueing discipline;
//! where either is missing the test says so and passes without running.
//! Everything it creates is removed when it ends, and the load is bounded
//! in count and time.

use std::process::Command;
use std::time::Duration;

const SERVER_IP: &str = "10.213.7.1";
const CLIENT_IP: &str = "10.213.7.2";
const CHILD_ENV: &str = "IIP_NETEM_CLIENT_OF";
const CALLS_PER_WORKER: usize = 500;
const WORKERS: usize = 8;

/// Removes the namespaces (and with them the veth pair) when dropped.
struct Namespaces {
    server: String,
    client: String,
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in [&self.server, &self.client] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0]).args(&args[1..]).output().map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Two namespaces joined by a veth pair with netem on both ends (or
/// nftables loss without delay); returns them and what was applied.
fn link() -> Result<(Namespaces, String), String> {
    let id = std::process::id();
    let namespaces = Namespaces { server: format!("iips{id}"), client: format!("iipc{id}") };
    let (a, b) = (format!("iv{id}a"), format!("iv{id}b"));
    let (s, c) = (namespaces.server.as_str(), namespaces.client.as_str());
    run(&["ip", "netns", "add", s])?;
    run(&["ip", "netns", "add", c])?;
    run(&["ip", "link", "add", &a, "type", "veth", "peer", "name", &b])?;
    run(&["ip", "link", "set", &a, "netns", s])?;
    run(&["ip", "link", "set", &b, "netns", c])?;
    for (ns, dev, ip) in [(s, &a, SERVER_IP), (c, &b, CLIENT_IP)] {
        run(&["ip", "-n", ns, "addr", "add", &format!("{ip}/30"), "dev", dev])?;
        run(&["ip", "-n", ns, "link", "set", dev, "up"])?;
        run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
    }
    let netem = [(s, &a), (c, &b)].iter().try_for_each(|(ns, dev)| {
        run(&[
            "ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "netem", "delay", "20ms", "5ms",
            "loss", "1%",
        ])
    });
    if netem.is_ok() {
        return Ok((namespaces, "20 ms ± 5 ms delay and 1 % loss each way (netem)".into()));
    }
    for ns in [s, c] {
        run(&["ip", "netns", "exec", ns, "nft", "add", "table", "inet", "impair"])
            .and_then(|()| {
                run(&[
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    "nft",
                    "add chain inet impair out { type filter hook output priority 0; }",
                ])
            })
            .and_then(|()| {
                run(&[
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    "nft",
                    "add rule inet impair out numgen random mod 100 < 2 counter drop",
                ])
            })
            .map_err(|nft| format!("no netem ({}) and no nftables ({nft})", netem.clone().unwrap_err()))?;
    }
    Ok((namespaces, "2 % loss each way, no delay (nftables; this kernel has no netem)".into()))
}

#[test]
fn calls_over_a_delayed_lossy_link_are_answered_once_each() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return; // the child runs `netem_client` only
    }
    let (namespaces, impairment) = match link() {
        Ok(link) => link,
        Err(why) => {
            eprintln!("netem test skipped: network namespaces or netem are not available here ({why})");
            return;
        }
    };
    let addr = format!("{SERVER_IP}:9090");
    let mut server = Command::new("ip")
        .args(["netns", "exec", &namespaces.server, env!("CARGO_BIN_EXE_iip"), "serve", "--listen", &addr])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("iip serve starts");
    let child = Command::new("ip")
        .args(["netns", "exec", &namespaces.client])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "netem_client", "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, &addr)
        .env("IIP_NETEM_IMPAIRMENT", &impairment)
        .output()
        .expect("the client runs");
    let _ = server.kill();
    let _ = server.wait();
    // What nftables dropped, when it is the impairment.
    for ns in [&namespaces.server, &namespaces.client] {
        if let Ok(out) =
            Command::new("ip").args(["netns", "exec", ns, "nft", "list", "chain", "inet", "impair", "out"]).output()
        {
            let text = String::from_utf8_lossy(&out.stdout);
            if let Some(counter) = text.split("counter ").nth(1) {
                println!("netem: {ns} dropped {}", counter.split(" drop").next().unwrap_or("?"));
            }
        }
    }
    let said = String::from_utf8_lossy(&child.stdout);
    println!("{said}{}", String::from_utf8_lossy(&child.stderr));
    assert!(child.status.success(), "the client inside the namespace failed");
    assert!(said.contains(&format!("netem: {} answered", WORKERS * CALLS_PER_WORKER)), "{said}");
}

/// The client side, run inside the client namespace by the test above.
#[test]
fn netem_client() {
    let Some(addr) = std::env::var_os(CHILD_ENV) else { return };
    let addr = addr.into_string().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async move {
        use iip::client::{Backend, BackendConfig, Endpoint};
        let config = {
            let mut cfg = BackendConfig::default();
            cfg.client.timeout = Duration::from_secs(20);
            cfg.channels = 4;
            cfg
        };
        let backend = Backend::new(Endpoint::new(addr), config);
        backend.ready(Duration::from_secs(20)).await.expect("the server is reachable across the link");
        let started = std::time::Instant::now();
        let mut workers = Vec::new();
        for w in 0..WORKERS {
            let backend = backend.clone();
            workers.push(tokio::spawn(async move {
                // Pipelined: every call of a worker is in flight at once.
                let calls = (0..CALLS_PER_WORKER).map(|n| {
                    let backend = backend.clone();
                    async move {
                        let body = format!("worker {w} call {n} {}", "x".repeat(n * 37 % 3000));
                        let answer = backend.call("/echo", body.clone()).await;
                        (body, answer)
                    }
                });
                futures::future::join_all(calls).await
            }));
        }
        let (mut answered, mut failed) = (0usize, Vec::new());
        for worker in workers {
            for (body, answer) in worker.await.unwrap() {
                match answer {
                    Ok(got) => {
                        assert_eq!(got, body.as_bytes(), "an answer went to the wrong call");
                        answered += 1;
                    }
                    Err(err) => failed.push(err.to_string()),
                }
            }
        }
        println!(
            "netem: {answered} answered, {} failed, in {:.2?} over {}; {} connection(s)",
            failed.len(),
            started.elapsed(),
            std::env::var("IIP_NETEM_IMPAIRMENT").unwrap_or_default(),
            backend.connections()
        );
        assert!(failed.is_empty(), "calls failed: {failed:?}");
    });
}
