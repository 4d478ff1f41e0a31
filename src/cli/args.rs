//! The command line of `iip`: the commands, their arguments and the
//! settings they share.

use clap::{Parser, Subcommand};

use super::CliError;
use crate::client::Endpoint;

#[derive(Parser)]
#[command(name = "iip", version, about = "IIP/1: serve, call, benchmark and check IIP servers")]
pub(crate) struct Cli {
    /// Log lines as text or as JSON objects (one per line), on stderr; the
    /// level comes from RUST_LOG (default: warn).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// How `iip` writes its log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// Text, one line per event.
    Text,
    /// A JSON object per line.
    Json,
}

/// How a client command reaches a server inside TLS.
#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct ClientTls {
    /// Connect inside TLS.
    #[arg(long)]
    pub(crate) tls: bool,
    /// Trust the CA certificates of this PEM file (implies --tls).
    #[arg(long)]
    pub(crate) tls_ca: Option<std::path::PathBuf>,
    /// Accept any server certificate (implies --tls). Unsafe outside tests:
    /// nothing then stops a man in the middle.
    #[arg(long)]
    pub(crate) insecure: bool,
    /// The name the server's certificate must carry (default: the host of the address).
    #[arg(long)]
    pub(crate) server_name: Option<String>,
    /// Write the TLS session keys to the file $SSLKEYLOGFILE names, for
    /// Wireshark to decrypt a capture. For test traffic only: the file
    /// opens every connection it logs.
    #[arg(long)]
    pub(crate) tls_key_log: bool,
    /// Present this client certificate (PEM) for mutual TLS; needs --tls-client-key.
    #[arg(long, requires = "tls_client_key")]
    pub(crate) tls_client_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-client-cert (PEM).
    #[arg(long, requires = "tls_client_cert")]
    pub(crate) tls_client_key: Option<std::path::PathBuf>,
}

impl ClientTls {
    /// The endpoint for `addr` (`host:port` or `unix:/path`) with these settings.
    pub(crate) fn endpoint(&self, addr: &str) -> Result<Endpoint, String> {
        let endpoint = Endpoint::new(addr);
        if !(self.tls || self.insecure || self.tls_ca.is_some()) {
            return Ok(endpoint);
        }
        let trust = match (&self.tls_ca, self.insecure) {
            (Some(ca), false) => crate::tls::ServerTrust::CaFile(ca),
            (None, true) => {
                say!("iip: warning: --insecure: the server's certificate is not checked");
                crate::tls::ServerTrust::Insecure
            }
            (Some(_), true) => return Err("--tls-ca and --insecure exclude each other".into()),
            (None, false) => return Err("--tls needs --tls-ca FILE (or --insecure to skip verification)".into()),
        };
        let identity = self.tls_client_cert.as_deref().zip(self.tls_client_key.as_deref());
        let mut config = crate::tls::client_config(trust, identity).map_err(|e| e.to_string())?;
        if self.tls_key_log {
            config = crate::tls::client_with_key_log(config);
        }
        let host = self.server_name.clone().unwrap_or_else(|| crate::tls::host_of(addr).to_string());
        let name = crate::tls::server_name(&host).map_err(|e| e.to_string())?;
        Ok(endpoint.with_tls(config, name))
    }
}

/// What `iip call` offers in its hello.
#[derive(clap::Args)]
pub(crate) struct HelloArgs {
    /// Say no hello: a plain IIP/1 client, as the deployed one.
    #[arg(long)]
    pub(crate) no_hello: bool,
    /// Offer this bearer token in the hello (spec chapter 14).
    #[arg(long)]
    pub(crate) token: Option<String>,
    /// Offer compression with this codec: lz4 or zstd.
    #[arg(long, value_name = "CODEC")]
    pub(crate) compress: Option<String>,
}

impl HelloArgs {
    pub(crate) fn extensions(&self) -> Result<crate::client::ClientExtensions, CliError> {
        use crate::client::ClientExtensions;
        if self.no_hello {
            return Ok(ClientExtensions::off());
        }
        let compression = match &self.compress {
            None => None,
            Some(name) => Some(
                crate::proto::extensions::Codec::from_name(name)
                    .ok_or_else(|| CliError::Usage(format!("--compress {name}: lz4 or zstd")))?,
            ),
        };
        Ok(ClientExtensions { compression, ..ClientExtensions::default() })
    }
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Run the embedded server: /echo, /echo_benchmark and the /sys/ paths.
    Serve(super::serve::ServeArgs),
    /// Send one request and print the answer.
    ///
    /// The answer body is written to stdout byte for byte. Exit codes: 0 an
    /// answer; 1 an error answer (code and message on stderr); 2 bad
    /// arguments or an unreadable body file; 3 no connection, a closed
    /// connection or a timeout.
    Call(super::call::CallArgs),
    /// Run the conformance suite against a server and report by spec chapter.
    ///
    /// Exit codes: 0 every selected case passed (deviations and skips
    /// allowed); 1 a case failed; 2 the run could not be made (unreachable
    /// target, bad arguments or vectors, a selection that matches nothing).
    Conformance(super::conformance::ConformanceArgs),
    /// Load an IIP server that serves /echo (or --path) and report req/s and latency percentiles.
    Bench(super::bench::BenchArgs),
    /// Attack an IIP server, an HTTP gateway (--http) or a client (--serve
    /// plays bad servers for it), bounded in count and time, while a good
    /// peer works beside the attack; report per attack whether it held.
    /// Only against programs you run yourself.
    Attack(super::attack::AttackArgs),
    /// Play the server side of the client conformance cases, one connection each.
    ///
    /// With --client-cmd it runs unattended: for each case it starts the
    /// command with {addr} (the scripted server's host:port) and {actions}
    /// (a JSON file of what to do, spec §12.3), and the case passes when the
    /// client's frames follow the script and the command exits 0. Without it,
    /// it listens on --listen and prints what a person should make the client
    /// do, one connection per case.
    ClientConformance(super::conformance::ClientConformanceArgs),
    /// An HTTP gateway: HTTP/1.1 and HTTP/2 (h2c) requests become IIP
    /// requests to the upstream servers, answers become HTTP responses.
    Gateway(super::gateway::GatewayArgs),
    /// Print the IIP frames of a capture (pcap or pcapng, each TCP
    /// direction reassembled), of hex text (plain or xxd) or of raw bytes,
    /// read by this crate's decoder: each frame with its stream offset, and
    /// the framing error that ends a stream with the requirement it breaks.
    Decode(super::decode::DecodeArgs),
    /// Make a development CA and the certificates TLS needs: a server leaf
    /// for the names given, signed by the CA, and with --client a client
    /// certificate for mutual TLS. Keys are written readable by their
    /// owner alone. For development and tests; production certificates
    /// come from your own CA.
    Cert(super::cert::CertArgs),
    /// Perform a client-conformance actions file (spec §12.3) with this
    /// crate's client; exit 0 when every call came to what it expects.
    #[command(hide = true)]
    PlayActions(super::conformance::PlayActionsArgs),
}
