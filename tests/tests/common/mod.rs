//! Helpers of the `threaded` tests, on top of the crate's shared executor matrix
//! (`aiothreads_tests`): tokio current-thread and multi-thread, smol, `futures::executor` and
//! `aiothreads::block_on`, each run bounded by a timeout that fails the test.

#![allow(dead_code, unused_imports)]

use std::future::Future;
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
