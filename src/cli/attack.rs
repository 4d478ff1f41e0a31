//! `iip attack`: bounded attacks on a server or a gateway while a good
//! client works beside them, or bad servers played for a client.

use std::time::Duration;

use super::{raise_fd_limit, CliError};

/// The arguments of `iip attack`.
#[derive(clap::Args)]
pub(crate) struct AttackArgs {
    /// Server address, e.g. 127.0.0.1:9090.
    #[arg(required_unless_present_any = ["serve", "http"])]
    addr: Option<String>,
    /// Attack the HTTP gateway at this address instead (its upstream
    /// must serve /echo, and /delay for http-slow-requests).
    #[arg(long, value_name = "ADDR", conflicts_with_all = ["addr", "serve"])]
    http: Option<String>,
    /// Instead of attacking a server: play bad servers on this loopback
    /// address (port 0: any) for the client --client-cmd starts.
    #[arg(long, value_name = "ADDR", conflicts_with = "addr", requires = "client_cmd")]
    serve: Option<String>,
    /// With --serve: the client under test, run once per bad server
    /// through the shell with {addr} replaced by the server's address,
    /// e.g. "iip call {addr} /echo x". It passes when it ends within
    /// --client-limit having taken at most 1 GiB.
    #[arg(long, requires = "serve")]
    client_cmd: Option<String>,
    /// With --serve: the bad servers to play (default: all).
    #[arg(long = "server", value_enum, value_delimiter = ',')]
    servers: Vec<crate::conformance::attack::hostile::HostileServer>,
    /// With --serve: seconds the client may run against one bad server.
    #[arg(long, default_value_t = 30.0)]
    client_limit: f64,
    /// Attacks to run (default: all, in order).
    #[arg(long = "only", value_enum, value_delimiter = ',')]
    only: Vec<crate::conformance::attack::AttackKind>,
    /// Seconds each attack lasts at most.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds the server has after an attack to serve a new client.
    #[arg(long, default_value_t = 10.0)]
    recovery: f64,
    /// Connections of the idle flood.
    #[arg(long, default_value_t = 10_100)]
    idle_connections: usize,
    /// Connections of the slow-loris attack.
    #[arg(long, default_value_t = 1_000)]
    loris_connections: usize,
    /// Streams of the garbage attack.
    #[arg(long, default_value_t = 10_000)]
    garbage_streams: usize,
    /// The bearer token the good client offers, for a server that
    /// requires authentication (auth-guessing then has something to guess).
    #[arg(long)]
    token: Option<String>,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

impl AttackArgs {
    pub(super) async fn run(self) -> Result<(), CliError> {
        if let Some(listen) = self.serve.clone() {
            return self.play_bad_servers(listen).await;
        }
        let AttackArgs {
            addr,
            only,
            duration,
            recovery,
            idle_connections,
            loris_connections,
            garbage_streams,
            token,
            json,
            http,
            ..
        } = self;
        use crate::conformance::attack::AttackKind;
        raise_fd_limit(idle_connections.max(loris_connections));
        let over_http = http.is_some();
        let addr = addr.or(http).ok_or_else(|| CliError::Usage("a server address, --http or --serve".into()))?;
        let mut plan = crate::conformance::attack::AttackPlan::new(addr);
        if let Some(wrong) = only.iter().find(|a| a.over_http() != over_http) {
            let want = if over_http { "an attack on a gateway (http-…)" } else { "an attack on an IIP server" };
            return Err(CliError::Usage(format!("--only {}: not {want}", wrong.name())));
        }
        plan.attacks = match (only.is_empty(), over_http) {
            (false, _) => only,
            (true, true) => AttackKind::HTTP.to_vec(),
            (true, false) => AttackKind::ALL.to_vec(),
        };
        plan.duration = Duration::from_secs_f64(duration.clamp(0.1, 3600.0));
        plan.recovery = Duration::from_secs_f64(recovery.clamp(0.1, 3600.0));
        plan.scale.idle_connections = idle_connections;
        plan.scale.loris_connections = loris_connections;
        plan.scale.garbage_streams = garbage_streams;
        plan.credentials =
            token.map(|token| crate::proto::extensions::Credentials { scheme: "bearer".into(), credentials: token });
        let results = crate::conformance::attack::run(&plan, |r| {
            if !json {
                println!("{r}")
            }
        })
        .await;
        if json {
            println!("{}", serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?);
        }
        match results.iter().filter(|r| !r.passed()).count() {
            0 => Ok(()),
            n => Err(format!("{n} attack(s) took the server down, failed the good client or went unpaced").into()),
        }
    }

    /// `--serve`: plays each bad server for the client `--client-cmd` starts.
    async fn play_bad_servers(self, listen: String) -> Result<(), CliError> {
        let AttackArgs { client_cmd, servers, client_limit, json, .. } = self;
        use crate::conformance::attack::hostile;
        let command = client_cmd.ok_or_else(|| CliError::Usage("--serve needs --client-cmd".into()))?;
        let servers = if servers.is_empty() { hostile::HostileServer::ALL.to_vec() } else { servers };
        let limit = Duration::from_secs_f64(client_limit.clamp(0.1, 3600.0));
        let results = hostile::run(&listen, &command, &servers, limit, |r| {
            if !json {
                println!("{r}")
            }
        })
        .await
        .map_err(|e| CliError::Usage(format!("--serve {listen}: {e}")))?;
        if json {
            println!("{}", serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?);
        }
        match results.iter().filter(|r| !r.passed()).count() {
            0 => Ok(()),
            n => Err(format!("the client hung on or took without bound from {n} bad server(s)").into()),
        }
    }
}
