//! The conformance suite: session vectors, a runner that plays them against
//! any IIP server, reports, and a scripted server for testing clients.

pub mod client;
pub mod report;

pub mod run;
pub mod session;

use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use report::{CaseResult, Verdict};
pub use run::{run_case, Failure, Profile};
pub use session::{load_sessions, Case, CaseLevel, NamedCase};

/// Where the shipped vectors live (this crate's `vectors/`).
pub fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors")
}

/// Where the shipped spec lives (this crate's `spec/`).
pub fn spec_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("spec")
}

/// The reference server configured as [`Profile::reference`] declares:
/// `/echo`, `/echo_benchmark`, `/fail`, 8 channels, 32 MiB requests.
pub fn reference_server() -> crate::server::Server {
    let profile = Profile::reference();
    crate::server::Server::echo()
        .route("/fail", |req: crate::server::Request| async move {
            Err::<bytes::Bytes, _>(crate::server::HandlerError::new(String::from_utf8_lossy(&req.body)))
        })
        .max_channels(profile.max_channels.unwrap_or(8))
        .max_message(profile.max_message.unwrap_or(32 << 20))
        .build()
}

/// Runs every case of `cases` against `addr`, one after another.
pub async fn run_suite(
    target: &crate::client::Endpoint,
    cases: &[NamedCase],
    profile: &Profile,
    timeout: Duration,
) -> Vec<CaseResult> {
    let mut results = Vec::with_capacity(cases.len());
    for case in cases {
        let started = Instant::now();
        let verdict = match profile.satisfies(&case.case.requires) {
            Err(why) => Verdict::Skipped(why),
            Ok(()) => match run_case(target, &case.case, timeout).await {
                Ok(()) => Verdict::Passed,
                Err(failure) => Verdict::Failed(failure),
            },
        };
        results.push(CaseResult { case: case.clone(), verdict, elapsed: started.elapsed() });
    }
    results
}

/// Loads the server cases shipped with this crate.
pub fn shipped_cases() -> Result<Vec<NamedCase>, crate::vector::VectorError> {
    load_sessions(&vectors_dir().join("sessions"))
}
