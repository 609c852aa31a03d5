//! Helpers shared by the integration tests: run one async body on every executor, each run
//! bounded by a timeout that fails the test instead of hanging it.

#![allow(dead_code)]

use std::future::Future;
use std::panic;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// The executors every async test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Executor {
    TokioCurrentThread,
    TokioMultiThread,
    Smol,
    FuturesBlockOn,
}

pub const EXECUTORS: [Executor; 4] = [
    Executor::TokioCurrentThread,
    Executor::TokioMultiThread,
    Executor::Smol,
    Executor::FuturesBlockOn,
];

/// Runs `fut` to completion on `exec` (blocking the current thread).
pub fn block_on<T>(exec: Executor, fut: impl Future<Output = T>) -> T {
    match exec {
        Executor::TokioCurrentThread => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(fut),
        Executor::TokioMultiThread => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(fut),
        Executor::Smol => smol::block_on(fut),
        Executor::FuturesBlockOn => futures::executor::block_on(fut),
    }
}

/// Runs `f` on a new thread and fails (panics) if it does not finish within `limit`; a panic
/// of `f` is re-raised here.
pub fn with_timeout<T: Send + 'static>(
    what: &str,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let worker = thread::Builder::new()
        .name(format!("test-{what}"))
        .spawn(move || {
            let _ = tx.send(f());
        })
        .unwrap();
    match rx.recv_timeout(limit) {
        Ok(value) => {
            let _ = worker.join();
            value
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(payload) => panic::resume_unwind(payload),
            Ok(()) => unreachable!("the test thread ended without a result"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what}: timed out after {limit:?} (the test would hang)")
        }
    }
}

/// Runs the async test body made by `make` on every executor, each bounded by 20 s.
pub fn on_all_executors<F, Fut>(make: F)
where
    F: Fn(Executor) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()>,
{
    let make = Arc::new(make);
    for exec in EXECUTORS {
        let make = make.clone();
        with_timeout(&format!("{exec:?}"), Duration::from_secs(20), move || {
            block_on(exec, make(exec));
        });
    }
}

/// Waits (blocking, bounded) until `cond` holds; panics with `what` after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(1));
    }
}
