//! The IIP/1 conformance suite: `cargo test --test conformance`.
//!
//! Every case in `vectors/sessions/` is one test, named `chapter-file::case`
//! and listed, filtered and counted by cargo like any other. Without
//! `IIP_CONFORMANCE_TARGET` the reference server is started in-process on
//! loopback. With `IIP_CONFORMANCE_TARGET=host:port` the cases run against
//! that server; `IIP_CONFORMANCE_PROFILE` declares what it offers beyond
//! `/echo` (e.g. `max-channels=8,max-message=33554432,fail-route`; spec
//! chapter 12), and cases that need more are ignored.
//! `IIP_CONFORMANCE_TIMEOUT_MS` bounds each wait (default 3000).
//! `IIP_CONFORMANCE_FAIL_FAST=1` fails every case not yet started once one
//! has failed, without running it: a quick "does anything fail" (the
//! mutation runs of `scripts/mutants` ask only that).
//!
//! The client cases of `vectors/client-sessions/` run too, against this
//! crate's client and a scripted server.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use iip::client::Endpoint;
use iip::conformance::client::{drive_reference_client, load_client_cases, ScriptedServer};
use iip::conformance::report::explain;
use iip::conformance::{
    reference_auth_required_server, reference_server, run_one, serve_reference_shutdowns, shipped_cases, vectors_dir,
    Profile, Verdict,
};

#[path = "certs.rs"]
mod certs;
use certs::TestPki;
use iip::conformance::spec::Requirement;
use libtest_mimic::{Arguments, Failed, Trial};
use tokio::runtime::Runtime;

fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
    })
}

/// Whether the suite runs inside TLS (`IIP_CONFORMANCE_TLS=1`).
fn tls_wanted() -> bool {
    std::env::var("IIP_CONFORMANCE_TLS").is_ok_and(|v| v == "1")
}

/// The target, its profile, and (inside TLS without a target) the test
/// PKI whose server certificate the reference server and scripted server use.
fn target() -> Result<(Endpoint, Profile, Option<TestPki>), String> {
    match std::env::var("IIP_CONFORMANCE_TARGET") {
        Ok(addr) if !addr.is_empty() => {
            let profile = Profile::parse(&std::env::var("IIP_CONFORMANCE_PROFILE").unwrap_or_default())?;
            let mut endpoint = Endpoint::new(addr.clone());
            if tls_wanted() {
                // IIP_CONFORMANCE_TLS_CA names the CA to trust; without it any
                // certificate is accepted (a test server's self-signed one).
                let ca = std::env::var("IIP_CONFORMANCE_TLS_CA").ok().filter(|v| !v.is_empty());
                let trust = match &ca {
                    Some(path) => iip::tls::ServerTrust::CaFile(std::path::Path::new(path)),
                    None => iip::tls::ServerTrust::Insecure,
                };
                let config = iip::tls::client_config(trust, None).map_err(|e| e.to_string())?;
                let host =
                    std::env::var("IIP_CONFORMANCE_TLS_NAME").unwrap_or_else(|_| iip::tls::host_of(&addr).to_string());
                endpoint = endpoint.with_tls(config, iip::tls::server_name(&host).map_err(|e| e.to_string())?);
            }
            Ok((endpoint, profile, None))
        }
        _ => {
            let pki = tls_wanted().then(|| TestPki::new("conformance"));
            let tls = pki.as_ref().map(certs::localhost_server);
            // The reference, and beside it the same server requiring
            // authentication (the profile's `auth-required=`).
            let spawn = |server: iip::server::Server| {
                let tls = tls.clone();
                runtime().block_on(async {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
                    match tls {
                        Some(tls) => server.spawn_tls(listener, tls),
                        None => server.spawn(listener),
                    }
                    .map_err(|e| e.to_string())
                })
            };
            let handle = spawn(reference_server().map_err(|e| e.to_string())?)?;
            let required = spawn(reference_auth_required_server().map_err(|e| e.to_string())?)?;
            // And the one the shutdown cases stop, served again after each.
            let shutdowns =
                runtime().block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).map_err(|e| e.to_string())?;
            let shutdown = shutdowns.local_addr().map_err(|e| e.to_string())?.to_string();
            runtime().spawn(serve_reference_shutdowns(shutdowns, tls.clone()));
            let profile = Profile {
                auth_required: Some(required.local_addr().to_string()),
                shutdown: Some(shutdown),
                ..Profile::reference()
            };
            let mut endpoint = Endpoint::new(handle.local_addr().to_string());
            if let Some(pki) = &pki {
                let name = iip::tls::server_name("localhost").map_err(|e| e.to_string())?;
                endpoint = endpoint.with_tls(certs::trusting_client(&pki.ca()), name);
            }
            // The servers live as long as the test process.
            std::mem::forget(handle);
            std::mem::forget(required);
            Ok((endpoint, profile, pki))
        }
    }
}

/// Held while a server case runs: shared by most, alone by those that need
/// the server to themselves.
static SERVER: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Whether `case` (as generated for `profile`) needs the server to itself:
/// it expects an exact change of statistics, which traffic of other cases
/// would disturb, or it fills the server's connection limit or its budget,
/// or it shuts a server down (the shutdown cases share one listener), or
/// it fails authentications, which slows every check from its address.
fn needs_the_server_alone(profile: &Profile, case: &iip::conformance::NamedCase) -> bool {
    let steps = profile.instantiate(&case.case).map(|c| c.steps).unwrap_or_default();
    case.case.requires.max_connections
        || case.case.requires.server_budget
        || case.case.requires.shutdown
        || case.case.requires.auth_pace
        || steps.iter().any(|step| {
            step.expect.iter().chain(step.expect_unordered.iter().flatten()).any(|e| e.json_delta.is_some())
        })
}

/// `run` as a trial's body: under `IIP_CONFORMANCE_FAIL_FAST=1` it is not
/// run once another case has failed, and its own failure stops the rest.
fn fail_fast(run: impl FnOnce() -> Result<(), Failed>) -> Result<(), Failed> {
    use std::sync::atomic::{AtomicBool, Ordering};
    static WANTED: OnceLock<bool> = OnceLock::new();
    static FAILED: AtomicBool = AtomicBool::new(false);
    if !*WANTED.get_or_init(|| std::env::var("IIP_CONFORMANCE_FAIL_FAST").is_ok_and(|v| v == "1")) {
        return run();
    }
    if FAILED.load(Ordering::Relaxed) {
        return Err(Failed::from("not run: an earlier case failed (IIP_CONFORMANCE_FAIL_FAST=1)"));
    }
    let verdict = run();
    if verdict.is_err() {
        FAILED.store(true, Ordering::Relaxed);
    }
    verdict
}

fn main() {
    let args = Arguments::from_args();
    let timeout = Duration::from_millis(
        std::env::var("IIP_CONFORMANCE_TIMEOUT_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(3000),
    );
    let requirements: Arc<BTreeMap<String, Requirement>> =
        Arc::new(iip::conformance::spec::requirements(iip::conformance::spec_dir()).expect("spec/ readable"));
    let selection = iip::conformance::Selection {
        level: std::env::var("IIP_CONFORMANCE_LEVEL").ok().filter(|v| !v.is_empty()),
        requirements: std::env::var("IIP_CONFORMANCE_REQUIREMENT")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect(),
        ..Default::default()
    };
    let cases = selection.apply(shipped_cases().expect("session vectors load")).expect("a selection of cases");
    let target_set = std::env::var("IIP_CONFORMANCE_TARGET").is_ok_and(|v| !v.is_empty());
    let with_client_cases = !target_set || std::env::var("IIP_CONFORMANCE_CLIENT").is_ok_and(|v| v == "1");
    let (target, profile, pki) = target().expect("conformance target");
    let profile = Arc::new(profile);
    // The client cases play a scripted server; inside TLS it uses the test
    // PKI's certificate and the reference client trusts its CA.
    let client_tls = tls_wanted().then(|| pki.unwrap_or_else(|| TestPki::new("client-conformance")));
    let scripted_tls = client_tls.as_ref().map(certs::localhost_server);
    let client_trust = client_tls.as_ref().map(|pki| certs::trusting_client(&pki.ca()));
    let mut trials = Vec::new();
    for case in cases {
        let skip = profile.satisfies(&case.case.requires).is_err();
        let (target, requirements, profile) = (target.clone(), requirements.clone(), profile.clone());
        let kind = case.case.level.name();
        let exclusive = needs_the_server_alone(&profile, &case);
        trials.push(
            Trial::test(format!("server::{}", case.id), move || {
                fail_fast(|| {
                    // Cases run in parallel against one server; a case that
                    // compares statistics exactly or fills its connection
                    // limit has it to itself.
                    let _alone = exclusive.then(|| SERVER.write().unwrap_or_else(|e| e.into_inner()));
                    let _shared = (!exclusive).then(|| SERVER.read().unwrap_or_else(|e| e.into_inner()));
                    match runtime().block_on(run_one(&target, &case, &profile, timeout)) {
                        Verdict::Passed | Verdict::Skipped(_) => Ok(()),
                        Verdict::Deviation { compat, .. } => {
                            eprintln!(
                                "server::{}: deviation ({}), excused for the declared peer",
                                case.id,
                                compat.join(", ")
                            );
                            Ok(())
                        }
                        Verdict::Failed(failure) => Err(Failed::from(format!(
                            "{}\n{}",
                            explain(&case, &failure, &requirements),
                            failure.transcript()
                        ))),
                        other => Err(Failed::from(format!(
                            "server::{}: a verdict this harness does not know: {other:?}",
                            case.id
                        ))),
                    }
                })
            })
            .with_kind(kind)
            .with_ignored_flag(skip),
        );
    }
    let client_cases = if with_client_cases {
        load_client_cases(vectors_dir().join("client-sessions")).expect("client vectors load")
    } else {
        Vec::new()
    };
    let declared = iip::conformance::client_cmd::reference_client_extensions();
    for (chapter, case) in client_cases {
        let kind = case.level.name();
        let skip = case.skipped_for(&declared).is_some();
        let name =
            format!("client::{}::{}", chapter.split_whitespace().next().unwrap_or("client").to_lowercase(), case.name);
        let (scripted_tls, client_trust) = (scripted_tls.clone(), client_trust.clone());
        trials.push(
            Trial::test(name, move || {
                fail_fast(|| {
                    runtime().block_on(async {
                        let server = match scripted_tls {
                            Some(tls) => ScriptedServer::bind_tls("127.0.0.1:0", timeout, tls).await,
                            None => ScriptedServer::bind("127.0.0.1:0", timeout).await,
                        }
                        .map_err(|e| Failed::from(e.to_string()))?;
                        let addr = server.local_addr().map_err(|e| Failed::from(e.to_string()))?;
                        let mut endpoint = Endpoint::new(addr.to_string());
                        if let Some(trust) = client_trust {
                            let name = iip::tls::server_name("localhost").map_err(|e| Failed::from(e.to_string()))?;
                            endpoint = endpoint.with_tls(trust, name);
                        }
                        let script = server.play(&case);
                        let client = drive_reference_client(&endpoint, &case, timeout);
                        let (script, client) = tokio::join!(script, client);
                        let mut problems = Vec::new();
                        if let Err(f) = script {
                            problems.push(format!("the client's frames broke the script at {f}"));
                        }
                        if let Err(e) = client {
                            problems.push(format!("the client observed the wrong outcome: {e}"));
                        }
                        if problems.is_empty() {
                            Ok(())
                        } else {
                            Err(Failed::from(format!(
                                "[{}] {}\n{}",
                                case.requirements.join(", "),
                                case.description,
                                problems.join("\n")
                            )))
                        }
                    })
                })
            })
            .with_kind(kind)
            .with_ignored_flag(skip),
        );
    }
    libtest_mimic::run(&args, trials).exit();
}
