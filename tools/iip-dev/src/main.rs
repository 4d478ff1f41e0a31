//! `iip-dev`: the developers' measuring devices and book tooling, kept out
//! of the `iip` crate and its command: the floors that the Performance
//! chapter's figures are read against, the client's cost, and the book's
//! mdBook preprocessor.

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
    /// Serve a benchmark floor to measure `iip serve` against: the
    /// unchecked IIP echo (no validation, no channel state, no ordering;
    /// `iip bench` drives it), the checked echo (the crate's sans-IO core
    /// behind the thinnest shell), or hyper's HTTP/2 or HTTP/1.1 echo
    /// (h2load and wrk drive them). Never for traffic.
    Floor {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9800")]
        listen: std::net::SocketAddr,
        /// Serve hyper's HTTP/2 echo (cleartext, prior knowledge) instead.
        #[arg(long, conflicts_with_all = ["checked", "http1"])]
        h2: bool,
        /// Serve hyper's HTTP/1.1 echo instead.
        #[arg(long, conflicts_with = "checked")]
        http1: bool,
        /// Serve the checked IIP echo instead: every frame through the
        /// crate's server core, handlers that never wait, statistics kept.
        #[arg(long)]
        checked: bool,
    },
    /// The book's mdBook preprocessor: links every requirement id to its
    /// definition and annotates the hex examples (book/book.toml runs it
    /// through scripts/book-preprocess).
    BookPreprocess {
        /// `supports RENDERER`, as mdBook asks first.
        args: Vec<String>,
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
            Command::Floor { listen, h2, http1, checked } => serve_floor(listen, h2, http1, checked).await,
            Command::BookPreprocess { args } => book_preprocess(&args),
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

/// Serves the floor chosen until accepting fails.
async fn serve_floor(listen: std::net::SocketAddr, h2: bool, http1: bool, checked: bool) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| format!("{listen}: {e}"))?;
    let kind = match (h2, http1, checked) {
        (true, _, _) => "HTTP/2 echo",
        (_, true, _) => "HTTP/1.1 echo",
        (_, _, true) => "checked IIP echo",
        _ => "unchecked IIP echo",
    };
    eprintln!("iip-dev: {kind} floor on {listen}");
    let served = match (h2, http1, checked) {
        (true, _, _) => iip_dev::floor::serve_h2_echo(listener).await,
        (_, true, _) => iip_dev::floor::serve_http1_echo(listener).await,
        (_, _, true) => iip_dev::floor::checked::serve_checked_iip(listener).await,
        _ => iip_dev::floor::serve_unchecked_iip(listener).await,
    };
    served.map_err(|e| e.to_string())
}

/// Runs as mdBook's preprocessor: the book as JSON on standard input, the
/// book with its links and tables on standard output.
fn book_preprocess(args: &[String]) -> Result<(), String> {
    if args.first().map(String::as_str) == Some("supports") {
        return Ok(()); // every renderer: links and tables are plain Markdown
    }
    let mut input = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut input)
        .map_err(|e| format!("cannot read the book: {e}"))?;
    print!("{}", iip_dev::book::preprocess(&input)?);
    Ok(())
}
