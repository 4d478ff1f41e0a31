//! `iip conformance` and `iip client-conformance`: running the suites and
//! reporting them.

use std::time::Duration;

use super::CliError;
use crate::client::{ClientConfig, ClientError, Endpoint};

/// What `iip conformance` was asked to do.
pub(super) struct ConformanceRun {
    pub(super) target: Endpoint,
    pub(super) profile: crate::conformance::Profile,
    pub(super) selection: crate::conformance::Selection,
    pub(super) vectors: Option<std::path::PathBuf>,
    pub(super) style: crate::conformance::report::Style,
    pub(super) json: Option<std::path::PathBuf>,
    pub(super) junit: Option<std::path::PathBuf>,
}

pub(super) async fn conformance(run: ConformanceRun, waits: crate::conformance::Waits) -> Result<(), CliError> {
    use crate::conformance::{load_sessions, run_suite, shipped_cases};
    let cases = match &run.vectors {
        Some(dir) => load_sessions(dir.join("sessions")),
        None => shipped_cases(),
    }
    .map_err(|e| CliError::Usage(e.to_string()))?;
    let cases = run.selection.apply(cases).map_err(CliError::Usage)?;
    // One clear error for a target that cannot be reached or answers
    // nothing, not one per case.
    probe(&run.target, waits.step).await?;
    let results = run_suite(&run.target, &cases, &run.profile, waits).await;
    let judged = report_and_judge(&results, run.style, run.json, run.junit);
    if waits.expired() {
        let not_run = results
            .iter()
            .filter(|r| matches!(&r.verdict, crate::conformance::Verdict::Skipped(why) if why.starts_with("not run")))
            .count();
        return Err(CliError::Failed(format!("the run's deadline passed: {not_run} case(s) not run")));
    }
    judged
}

/// Connects to `target` and calls `/echo` once, plain IIP/1: an error
/// unless the server answers something within `limit`.
pub(super) async fn probe(target: &Endpoint, limit: Duration) -> Result<(), CliError> {
    let addr = &target.addr;
    let stream = match tokio::time::timeout(limit, target.connect_stream()).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => return Err(CliError::Usage(format!("cannot reach the server: {err}"))),
        Err(_) => {
            return Err(CliError::Usage(format!("cannot reach the server: {addr}: no connection within {limit:?}")))
        }
    };
    let config =
        ClientConfig { timeout: limit, extensions: crate::client::ClientExtensions::off(), ..ClientConfig::default() };
    match crate::client::Client::over(stream, config).call("/echo", "probe").await {
        Err(ClientError::Timeout(_)) => {
            Err(CliError::Usage(format!("{addr}: no answer to /echo within {limit:?}; no case was run")))
        }
        Err(err @ ClientError::Closed { .. }) => {
            Err(CliError::Usage(format!("{addr}: /echo was not answered: {err}; no case was run")))
        }
        _ => Ok(()),
    }
}

/// The report's colours for `--color`: auto (on a terminal), always or never.
pub(super) fn report_style(color: &str) -> Result<crate::conformance::report::Style, CliError> {
    use crate::conformance::report::Style;
    match color {
        "always" => Ok(Style::coloured()),
        "never" => Ok(Style::plain()),
        "auto" if std::io::IsTerminal::is_terminal(&std::io::stdout()) => Ok(Style::coloured()),
        "auto" => Ok(Style::plain()),
        other => Err(CliError::Usage(format!("--color {other}: auto, always or never"))),
    }
}

/// Prints the report, writes the JSON and JUnit files asked for, and fails
/// (exit code 1) when a case failed.
pub(super) fn report_and_judge(
    results: &[crate::conformance::CaseResult],
    style: crate::conformance::report::Style,
    json: Option<std::path::PathBuf>,
    junit: Option<std::path::PathBuf>,
) -> Result<(), CliError> {
    use crate::conformance::report;
    let requirements = crate::conformance::spec::shipped_requirements().map_err(|e| CliError::Usage(e.to_string()))?;
    print!("{}", report::text_report(results, &requirements, style));
    if let Some(path) = json {
        std::fs::write(&path, report::json_report(results)).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if let Some(path) = junit {
        std::fs::write(&path, report::junit_report(results, &requirements))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    match report::totals(results).failed {
        0 => Ok(()),
        n => Err(CliError::Failed(format!("{n} case(s) failed"))),
    }
}

/// How a run's results are reported: on the terminal in `style`, and
/// written as JSON and JUnit where asked.
pub(super) struct Reports {
    pub(super) style: crate::conformance::report::Style,
    pub(super) json: Option<std::path::PathBuf>,
    pub(super) junit: Option<std::path::PathBuf>,
}

/// `iip client-conformance --client-cmd`: every client case against the
/// command, those needing an extension it does not declare skipped.
pub(super) async fn client_conformance_unattended(
    command: &str,
    timeout: Duration,
    tls: Option<std::sync::Arc<crate::tls::ServerConfig>>,
    reports: Reports,
    extensions: &[String],
) -> Result<(), CliError> {
    use crate::conformance::client::load_client_cases;
    use crate::conformance::client_cmd::run_client_suite;
    let cases = load_client_cases(crate::conformance::files::DataDir::embedded("vectors/client-sessions"))
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let results = run_client_suite(command, &cases, timeout, tls, extensions).await;
    report_and_judge(&results, reports.style, reports.json, reports.junit)
}

pub(super) async fn client_conformance(
    listen: &str,
    timeout: Duration,
    tls: Option<std::sync::Arc<crate::tls::ServerConfig>>,
) -> Result<(), String> {
    use crate::conformance::client::{describe_actions, load_client_cases, ScriptedServer};
    let cases = load_client_cases(crate::conformance::files::DataDir::embedded("vectors/client-sessions"))
        .map_err(|e| e.to_string())?;
    let server = match tls {
        Some(tls) => ScriptedServer::bind_tls(listen, timeout, tls).await,
        None => ScriptedServer::bind(listen, timeout).await,
    }
    .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = server.local_addr().map_err(|e| e.to_string())?;
    let (mut passed, mut failed) = (0, 0);
    for (i, (_, case)) in cases.iter().enumerate() {
        println!("case {}/{}: {} [{}]", i + 1, cases.len(), case.name, case.requirements.join(", "));
        println!("  connect to {addr} and {}", describe_actions(&case.actions));
        match server.play(case).await {
            Ok(()) => {
                passed += 1;
                println!("  ok: the client's frames followed the script (check the outcomes above on the client side)");
            }
            Err(f) => {
                failed += 1;
                println!("  FAIL {}", f.to_string().replace('\n', "\n  "));
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        Ok(())
    } else {
        Err(format!("{failed} case(s) failed"))
    }
}
