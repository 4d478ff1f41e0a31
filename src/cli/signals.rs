//! Signals for the long-running commands: the first SIGINT or SIGTERM
//! starts a graceful shutdown, a second one ends the process at once.

/// Waits for SIGINT or SIGTERM, then calls `shutdown` and waits again; the
/// second signal exits with code 130. Spawn it beside the serving task.
pub(super) async fn stop_on_signals(shutdown: impl FnOnce()) {
    wait_for_signal().await;
    say!("iip: shutting down gracefully (a second signal exits at once)");
    shutdown();
    wait_for_signal().await;
    say!("iip: exiting now");
    std::process::exit(130);
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
