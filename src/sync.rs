//! The synchronisation types the multiplexer is built on: `std`'s in normal
//! builds, loom's under `--cfg loom`, so the loom tests check the very code
//! the client runs (no second implementation).

#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard};

/// Locks `mutex`, recovering the data if a panicking thread poisoned it: the
/// multiplexer's state stays consistent between statements, so a panic in a
/// caller must not take every other caller down with it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
