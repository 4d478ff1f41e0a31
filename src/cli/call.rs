//! `iip call`: one request, its answer on standard output.

use std::time::Duration;

use super::args::{ClientTls, HelloArgs};
use super::{body_of, endpoints, CliError};
use crate::client::{ClientConfig, ClientError};

/// The arguments of `iip call`.
#[derive(clap::Args)]
pub(crate) struct CallArgs {
    /// Server address: host:port or unix:/path; several, comma-separated,
    /// are tried in order until one can be reached.
    addr: String,
    /// Request path, e.g. /echo or /sys/server_count.
    path: String,
    /// Request body; `@FILE` reads a file, `@-` standard input; default `{}`.
    data: Option<String>,
    /// Seconds the whole call may take: connecting, the hello and the
    /// answer; past it the call fails saying what it waited for.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Print an error answer as it came instead of failing.
    #[arg(long)]
    raw: bool,
    /// A metadata entry KEY=VALUE sent before the body (repeatable), e.g.
    /// `-H request-id=r-7`; offers `metadata` in the hello (spec 14.7).
    /// Against a server without it nothing is sent.
    #[arg(short = 'H', long = "header", value_name = "KEY=VALUE")]
    headers: Vec<String>,
    /// Milliseconds the server has for the request, sent as its
    /// `deadline` (spec 14.7); the call also ends then. Default: what is
    /// left of --timeout when the request goes out.
    #[arg(long, value_name = "MS")]
    deadline: Option<u64>,
    /// Print what the hello negotiated (spec chapter 14) to stderr.
    #[arg(short, long)]
    verbose: bool,
    #[command(flatten)]
    hello: HelloArgs,
    #[command(flatten)]
    tls: ClientTls,
}

impl CallArgs {
    pub(super) async fn run(self) -> Result<(), CliError> {
        let CallArgs { addr, path, data, timeout, raw, headers, deadline, verbose, hello, tls } = self;
        let body = body_of(data).map_err(CliError::Usage)?;
        let limit = Duration::from_secs_f64(timeout.clamp(0.001, 86_400.0));
        let mut call = crate::client::Call::new(path.clone(), body);
        for header in &headers {
            let (key, value) =
                header.split_once('=').ok_or_else(|| CliError::Usage(format!("-H {header:?}: expected KEY=VALUE")))?;
            call = call.with_metadata(key, value);
        }
        if raw {
            call = call.raw();
        }
        let mut extensions = hello.extensions()?;
        extensions.metadata = !headers.is_empty() || deadline.is_some();
        let config = ClientConfig { timeout: limit, extensions, ..ClientConfig::default() };
        // What the call waits for, for the message when time runs out.
        let waiting_for = std::cell::RefCell::new(String::new());
        let work = async {
            let mut unreachable = Vec::new();
            let mut connected = None;
            for target in endpoints(&addr, &tls)? {
                let shown = target.addr.clone();
                *waiting_for.borrow_mut() = format!("a connection to {shown} and its hello");
                let target = match &hello.token {
                    Some(token) => target.with_credentials(crate::proto::extensions::Credentials {
                        scheme: "bearer".into(),
                        credentials: token.clone(),
                    }),
                    None => target,
                };
                match target.connect(config).await {
                    Ok(client) => {
                        connected = Some(client);
                        break;
                    }
                    Err(ClientError::Timeout(limit)) => {
                        unreachable.push(format!("{shown}: no answer to the hello within {limit:?}"))
                    }
                    Err(e) => unreachable.push(e.to_string()),
                }
            }
            let client = connected.ok_or_else(|| CliError::Unreachable(unreachable.join("; ")))?;
            if verbose {
                say!("{}", describe_agreed(client.agreed()));
            }
            *waiting_for.borrow_mut() = format!("the answer to {path}");
            if let Some(ms) = deadline {
                call = call.with_deadline(std::time::Instant::now() + Duration::from_millis(ms));
            }
            Ok::<_, CliError>(client.channel_zero().call_with(call).await)
        };
        let answer = match tokio::time::timeout(limit, work).await {
            Ok(answer) => answer?,
            Err(_) => {
                let what = waiting_for.borrow();
                return Err(CliError::Unreachable(format!("{addr}: no result within {limit:?}, waiting for {what}")));
            }
        };
        match answer {
            Ok(bytes) => {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                out.write_all(&bytes)
                    .and_then(|()| out.flush())
                    .map_err(|e| format!("cannot write the answer: {e}"))?;
                Ok(())
            }
            Err(ClientError::Server { code, message }) => Err(format!("server error {code}: {message}").into()),
            Err(ClientError::Refused(e @ crate::proto::client::RequestError::Metadata(_))) => {
                Err(CliError::Usage(e.to_string()))
            }
            Err(e) => Err(CliError::Unreachable(format!("{addr}: {e}"))),
        }
    }
}

/// One line on what a hello agreed, for `iip call -v`.
pub(crate) fn describe_agreed(agreed: Option<&crate::proto::extensions::Agreed>) -> String {
    let Some(agreed) = agreed else {
        return "iip: no extensions: the server answers no hello (plain IIP/1)".into();
    };
    let mut parts = Vec::new();
    if let Some(ping) = &agreed.ping {
        match ping.idle_timeout_ms {
            Some(ms) => parts.push(format!("ping (server idle timeout {ms} ms)")),
            None => parts.push("ping (no idle timeout)".into()),
        }
    }
    if let Some(auth) = &agreed.auth {
        parts.push(format!("auth as {:?}", auth.identity));
    }
    if let Some(l) = &agreed.limits {
        parts.push(format!(
            "limits (channels {}, message {} B, in flight {})",
            l.max_channels, l.max_message, l.max_in_flight
        ));
    }
    if let Some(c) = &agreed.compression {
        parts.push(format!("compression {} from {} B", c.codec, c.min_size));
    }
    if agreed.going_away.is_some() {
        parts.push("going_away".into());
    }
    if let Some(m) = &agreed.metadata {
        parts.push(format!("metadata (blocks up to {} B)", m.max_size));
    }
    if parts.is_empty() {
        return "iip: hello answered; no extension agreed".into();
    }
    format!("iip: negotiated {}", parts.join(", "))
}
