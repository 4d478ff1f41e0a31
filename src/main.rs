//! The `iip` command: serve, call, bench and check IIP/1 servers.

#[cfg(not(loom))]
mod cli;

#[cfg(not(loom))]
fn main() -> std::process::ExitCode {
    cli::main()
}

/// Under `--cfg loom` only the model-checked core is built.
#[cfg(loom)]
fn main() {}
