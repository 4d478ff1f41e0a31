//! The `iip` command: serve, call, bench, check and attack IIP/1 servers.
//! Built with the `cli` feature (`cargo install iip --features cli`).

#[cfg(not(loom))]
fn main() -> std::process::ExitCode {
    iip::cli::main()
}

/// Under `--cfg loom` only the model-checked core is built.
#[cfg(loom)]
fn main() {}
