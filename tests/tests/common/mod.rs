//! Helpers of the `threaded` tests, on top of the crate's shared executor matrix
//! (`aiothreads_tests`): tokio current-thread and multi-thread, smol, `futures::executor` and
//! `aiothreads::block_on`, each run bounded by a timeout that fails the test.

#![allow(dead_code, unused_imports)]

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use aiothreads_tests::{with_timeout, Executor, ALL as EXECUTORS};

/// Runs the async test body made by `make` on every executor, each bounded.
pub fn on_all_executors<F, Fut>(make: F)
where
    F: Fn(Executor) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = ()>,
{
    for exec in EXECUTORS {
        let make = make.clone();
        aiothreads_tests::run_with_timeout(exec, move || make(exec));
    }
}

/// Waits (blocking, bounded) until `cond` holds; panics with `what` after `limit`.
pub fn wait_until(what: &str, limit: Duration, cond: impl FnMut() -> bool) {
    assert!(
        aiothreads_tests::wait_until(limit, cond),
        "timed out waiting for {what}"
    );
}

/// An iterator over `0..n` that says when it has been run out and when it has been dropped.
pub struct Watched {
    pub next: u64,
    pub n: u64,
    pub exhausted: Arc<AtomicBool>,
    pub dropped: Arc<AtomicBool>,
}

impl Iterator for Watched {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        if self.next == self.n {
            self.exhausted.store(true, Ordering::SeqCst);
            return None;
        }
        self.next += 1;
        Some(self.next - 1)
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}
