//! The `iip` command (feature `cli`): `serve`, `call`, `bench`,
//! `conformance`, `client-conformance`, `attack`, `gateway`, `decode` and
//! `cert`. [`main`] parses the arguments and runs one of them.

/// Writes a line to stderr, ignoring a closed stderr: a server whose
/// terminal went away must not die of a message.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod args;
mod attack;
mod bench;
mod call;
mod cert;
mod conformance;
mod decode;
#[cfg(test)]
mod documented;
pub mod frame_load;
mod gateway;
pub mod loadgen;
mod serve;
mod signals;

use args::{Cli, ClientTls, Command, LogFormat};

use std::process::ExitCode;
use std::time::Duration;

use crate::client::Endpoint;
use bytes::Bytes;
use clap::Parser;

/// The TLS server configuration of a certificate and key given on the
/// command line (clap makes them come together), `None` without them.
fn pem_server_config(
    cert: &Option<std::path::PathBuf>,
    key: &Option<std::path::PathBuf>,
    client_ca: Option<&std::path::Path>,
) -> Result<Option<std::sync::Arc<crate::tls::ServerConfig>>, CliError> {
    match (cert, key) {
        (Some(cert), Some(key)) => {
            crate::tls::server_config(cert, key, client_ca).map(Some).map_err(|e| CliError::Usage(e.to_string()))
        }
        _ => Ok(None),
    }
}

/// `None` for 0 (no limit), otherwise that many seconds.
fn seconds_or_off(secs: f64) -> Option<Duration> {
    (secs > 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0 * 365.0)))
}

/// Raises the soft limit on open files to the hard limit, and warns when
/// it still cannot hold `max_connections` connections.
fn raise_fd_limit(max_connections: usize) {
    #[cfg(unix)]
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if (limit as usize) < max_connections.saturating_add(64) => say!(
            "iip: warning: the open-file limit is {limit}, below --max-connections {max_connections} \
             (plus listeners and files); clients past it are refused while descriptors are short"
        ),
        Ok(_) => {}
        Err(err) => say!("iip: warning: cannot read or raise the open-file limit: {err}"),
    }
}

/// The request body of `iip call`: the text itself, `@FILE`, or `@-` for
/// standard input; errors name the file.
fn body_of(data: Option<String>) -> Result<Bytes, String> {
    match data {
        None => Ok(Bytes::from_static(b"{}")),
        Some(d) => match d.strip_prefix('@') {
            Some("-") => {
                let mut body = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut body)
                    .map_err(|e| format!("cannot read the body from standard input: {e}"))?;
                Ok(Bytes::from(body))
            }
            Some(file) => {
                std::fs::read(file).map(Bytes::from).map_err(|e| format!("cannot read the body file {file}: {e}"))
            }
            None => Ok(Bytes::from(d)),
        },
    }
}

/// Why a command failed, and its exit code.
enum CliError {
    /// The command ran and found a failure (exit code 1).
    Failed(String),
    /// The command could not run as asked (exit code 2).
    Usage(String),
    /// The server could not be reached, closed the connection or timed out
    /// (exit code 3).
    Unreachable(String),
}

impl From<String> for CliError {
    fn from(message: String) -> CliError {
        CliError::Failed(message)
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve(args) => args.run().await,
        Command::Call(args) => args.run().await,
        Command::Conformance(args) => args.run().await,
        Command::Bench(args) => args.run().await,
        Command::Attack(args) => args.run().await,
        Command::ClientConformance(args) => args.run().await,
        Command::Gateway(args) => args.run().await,
        Command::Decode(args) => args.run().await,
        Command::Cert(args) => args.run().await,
        Command::PlayActions(args) => args.run().await,
    }
}

/// The endpoints of a comma-separated address list, with the TLS settings.
fn endpoints(addrs: &str, tls: &ClientTls) -> Result<Vec<Endpoint>, CliError> {
    let list: Vec<&str> = addrs.split(',').map(str::trim).filter(|a| !a.is_empty()).collect();
    if list.is_empty() {
        return Err(CliError::Usage(format!("{addrs:?}: no server address")));
    }
    list.into_iter().map(|addr| tls.endpoint(addr).map_err(CliError::Usage)).collect()
}

/// Parses the command line and runs the command; the exit code says how it
/// ended (each command documents its own codes).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr);
    if cli.log_format == LogFormat::Json {
        logs.json().init();
    } else {
        logs.init();
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            say!("iip: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Failed(message)) => {
            say!("iip: {message}");
            ExitCode::FAILURE
        }
        Err(CliError::Usage(message)) => {
            say!("iip: {message}");
            ExitCode::from(2)
        }
        Err(CliError::Unreachable(message)) => {
            say!("iip: {message}");
            ExitCode::from(3)
        }
    }
}
