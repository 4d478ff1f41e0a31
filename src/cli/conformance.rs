//! `iip conformance` and `iip client-conformance`: running the suites and
//! reporting them.

use std::time::Duration;

use super::args::ClientTls;
use super::{pem_server_config, CliError};
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

/// The report's colours for `--color`.
pub(super) fn report_style(color: ColorChoice) -> crate::conformance::report::Style {
    use crate::conformance::report::Style;
    match color {
        ColorChoice::Always => Style::coloured(),
        ColorChoice::Never => Style::plain(),
        ColorChoice::Auto if std::io::IsTerminal::is_terminal(&std::io::stdout()) => Style::coloured(),
        ColorChoice::Auto => Style::plain(),
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

/// The arguments of `iip conformance`.
#[derive(clap::Args)]
pub(crate) struct ConformanceArgs {
    /// Server address: host:port, or unix:/path.
    addr: String,
    /// What the server declares beyond /echo, e.g. `max-channels=8,max-message=1048576,fail-route`.
    #[arg(long, default_value = "")]
    profile: String,
    /// The implementation the server is: failures its Appendix A entries
    /// excuse are reported as deviations.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(crate::conformance::KNOWN_PEERS))]
    peer: Option<String>,
    /// Which cases run, by the level of what they check.
    #[arg(long, value_enum, default_value_t = Level::All)]
    level: Level,
    /// Only cases citing a requirement matching this pattern, e.g. 'CHAN-*' (repeatable).
    #[arg(long = "requirement")]
    requirements: Vec<String>,
    /// Only cases of this chapter, e.g. 6 or 06-channels (repeatable).
    #[arg(long = "chapter")]
    chapters: Vec<String>,
    /// Only cases whose name contains this.
    #[arg(long)]
    filter: Option<String>,
    /// Run the cases of this folder (laid out as vectors/: sessions/*.toml)
    /// instead of the ones built in.
    #[arg(long)]
    vectors: Option<std::path::PathBuf>,
    /// Colour of the report.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
    /// Milliseconds each step may wait.
    #[arg(long, default_value_t = 3000)]
    timeout_ms: u64,
    /// Seconds the whole run may take: past it, the case waiting fails
    /// with what it waited for and the rest are not run.
    #[arg(long, default_value_t = 120.0)]
    deadline: f64,
    /// Write a JSON report here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Write a JUnit XML report here.
    #[arg(long)]
    junit: Option<std::path::PathBuf>,
    #[command(flatten)]
    tls: ClientTls,
}

impl ConformanceArgs {
    pub(super) async fn run(self) -> Result<(), CliError> {
        let ConformanceArgs {
            addr,
            profile,
            peer,
            level,
            requirements,
            chapters,
            filter,
            vectors,
            color,
            timeout_ms,
            deadline,
            json,
            junit,
            tls,
        } = self;
        let deadline = std::time::Instant::now() + Duration::from_secs_f64(deadline.clamp(0.1, 86_400.0));
        let target = tls.endpoint(&addr).map_err(CliError::Usage)?;
        let mut profile = crate::conformance::Profile::parse(&profile).map_err(CliError::Usage)?;
        if peer.is_some() {
            profile.peer = peer;
        }
        let level = Some(level.name().to_string());
        let selection = crate::conformance::Selection { level, requirements, chapters, name: filter };
        let style = report_style(color);
        let run = ConformanceRun { target, profile, selection, vectors, style, json, junit };
        let waits = crate::conformance::Waits { step: Duration::from_millis(timeout_ms), deadline: Some(deadline) };
        conformance(run, waits).await
    }
}

/// The arguments of `iip client-conformance`.
#[derive(clap::Args)]
pub(crate) struct ClientConformanceArgs {
    /// Address to listen on (without --client-cmd).
    #[arg(long, default_value = "127.0.0.1:9191")]
    listen: String,
    /// The client under test, e.g. 'python3 myclient.py {addr} {actions}'.
    #[arg(long)]
    client_cmd: Option<String>,
    /// Write a JSON report here (with --client-cmd).
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Write a JUnit XML report here (with --client-cmd).
    #[arg(long)]
    junit: Option<std::path::PathBuf>,
    /// Milliseconds each step may wait.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// Colour of the report (with --client-cmd).
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
    /// Play the scripts inside TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// What the client under test implements (with --client-cmd), joined
    /// by `+`: the extensions of chapter 14 `hello` (it can say hello),
    /// `lz4`, `zstd`, `going_away`, `metadata`, and `answer_limit` (it
    /// takes the `answer_limit` action). Cases that need more are skipped;
    /// none by default.
    #[arg(long, default_value = "", value_parser = parse_extension_list)]
    extensions: ExtensionList,
}

impl ClientConformanceArgs {
    pub(super) async fn run(self) -> Result<(), CliError> {
        let ClientConformanceArgs { listen, client_cmd, json, junit, timeout_ms, color, tls_cert, tls_key, extensions } =
            self;
        let tls = pem_server_config(&tls_cert, &tls_key, None)?;
        let timeout = Duration::from_millis(timeout_ms);
        let style = report_style(color);
        let reports = Reports { style, json, junit };
        match client_cmd {
            Some(command) => client_conformance_unattended(&command, timeout, tls, reports, &extensions.0).await,
            None => Ok(client_conformance(&listen, timeout, tls).await?),
        }
    }
}

/// The arguments of `iip play-actions`.
#[derive(clap::Args)]
pub(crate) struct PlayActionsArgs {
    /// Server address: host:port or unix:/path.
    addr: String,
    /// The actions file.
    actions: std::path::PathBuf,
    /// Seconds each call may wait.
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
    #[command(flatten)]
    tls: ClientTls,
}

impl PlayActionsArgs {
    pub(super) async fn run(self) -> Result<(), CliError> {
        let PlayActionsArgs { addr, actions, timeout, tls } = self;
        let target = tls.endpoint(&addr).map_err(CliError::Usage)?;
        let text = std::fs::read(&actions).map_err(|e| CliError::Usage(format!("{}: {e}", actions.display())))?;
        let file: crate::conformance::client_cmd::ActionsFile =
            serde_json::from_slice(&text).map_err(|e| CliError::Usage(format!("{}: {e}", actions.display())))?;
        let timeout = Duration::from_secs_f64(timeout.clamp(0.001, 3600.0));
        Ok(crate::conformance::client_cmd::play_actions(&target, &file, timeout).await?)
    }
}

/// Which cases `iip conformance --level` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Level {
    /// The cases of MUST requirements.
    Must,
    /// The cases of MUST and SHOULD requirements.
    Should,
    /// Every case, the compatibility cases too.
    All,
}

impl Level {
    /// The level's name, as a [`crate::conformance::Selection`] takes it.
    fn name(self) -> &'static str {
        match self {
            Level::Must => "must",
            Level::Should => "should",
            Level::All => "all",
        }
    }
}

/// When a report is in colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ColorChoice {
    /// On a terminal.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// The `+`-joined names of `--extensions`.
#[derive(Debug, Clone, Default)]
pub struct ExtensionList(pub Vec<String>);

/// Reads `hello+lz4+going_away`; an unknown name is refused, saying which
/// names there are.
fn parse_extension_list(text: &str) -> Result<ExtensionList, String> {
    const KNOWN: [&str; 6] = ["hello", "lz4", "zstd", "going_away", "metadata", "answer_limit"];
    let names: Vec<String> = text.split('+').map(str::trim).filter(|n| !n.is_empty()).map(str::to_string).collect();
    if let Some(unknown) = names.iter().find(|n| !KNOWN.contains(&n.as_str())) {
        return Err(format!("unknown extension {unknown:?}: the client cases know {}", KNOWN.join(", ")));
    }
    Ok(ExtensionList(names))
}
