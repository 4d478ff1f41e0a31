//! `iip-dev`: the developers' measuring devices, kept out of the `iip`
//! crate and its command. Each subcommand prints a table of the book's
//! Performance chapter with the command that made it.

mod client_cost;

use clap::{Parser, Subcommand};

/// The developers' measuring devices of iip.
#[derive(Parser)]
#[command(name = "iip-dev", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The client library's CPU per call, in one run: bare frames, fixed
    /// channels, one reconnecting backend, a balancer over one server and
    /// over two, at the same callers against `iip` echo servers this
    /// command starts as child processes.
    ClientCost(client_cost::Options),
    /// An `iip` echo server (`/echo`), the process `client-cost` starts.
    EchoServer {
        /// Where to listen.
        #[arg(long)]
        listen: String,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("iip-dev: cannot start the runtime: {err}");
            return std::process::ExitCode::from(2);
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::ClientCost(options) => client_cost::run(options).await,
            Command::EchoServer { listen } => client_cost::echo_server(&listen).await,
        }
    });
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("iip-dev: {err}");
            std::process::ExitCode::from(1)
        }
    }
}
