//! Shared helpers of the integration tests: run one async test body on every executor the
//! crate claims to support, each run bounded by a timeout that fails the test.
//!
//! ```
//! aiothreads_tests::on_every_executor(|| async { assert_eq!(1 + 1, 2) });
//! ```

use std::future::Future;
use std::sync::mpsc;
use std::time::Duration;

/// The executors of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Executor {
    /// `tokio` current-thread runtime.
    TokioCurrentThread,
    /// `tokio` multi-thread runtime (2 workers).
    TokioMultiThread,
    /// `smol::block_on` (async-io's reactor thread).
    Smol,
    /// `futures::executor::block_on`.
    Futures,
    /// `aiothreads::block_on`.
    Aiothreads,
}

/// Every executor of the matrix.
pub const ALL: [Executor; 5] = [
    Executor::TokioCurrentThread,
    Executor::TokioMultiThread,
    Executor::Smol,
    Executor::Futures,
    Executor::Aiothreads,
];

/// The time any single test body may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// A bound on something that must happen *promptly* (a drop that wakes a parked producer, a
/// misuse refused without waiting), scaled by `AIOTHREADS_TEST_TIME_SCALE` (a whole number,
/// default 1). `scripts/valgrind-tests.sh` sets 20: valgrind runs one thread at a time and
/// every instruction 10–50× slower, and a 500 ms bound on an iterator's drop once read 1.02 s
/// there. Bounds that tell parallel from serial work do not scale (sleeping threads overlap
/// under valgrind too), nor do the hang limits, which are far larger.
pub fn prompt(bound: Duration) -> Duration {
    let scale = std::env::var("AIOTHREADS_TEST_TIME_SCALE")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    bound * scale
}

impl Executor {
    /// Runs `fut` to completion on this executor, on the calling thread.
    pub fn block_on<F: Future>(self, fut: F) -> F::Output {
        match self {
            Executor::TokioCurrentThread => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime")
                .block_on(fut),
            Executor::TokioMultiThread => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("tokio runtime")
                .block_on(fut),
            Executor::Smol => smol::block_on(fut),
            Executor::Futures => futures::executor::block_on(fut),
            Executor::Aiothreads => aiothreads::block_on(fut),
        }
    }
}

/// Runs the body made by `make` once on each executor, each on a fresh thread with a
/// [`TIMEOUT`]; a hang fails the test (naming the executor) instead of hanging the suite, and
/// a panic in the body fails it with the executor's name.
pub fn on_every_executor<M, F>(make: M)
where
    M: Fn() -> F + Send + Sync + Clone + 'static,
    F: Future<Output = ()>,
{
    for exec in ALL {
        run_with_timeout(exec, make.clone());
    }
}

/// Runs one body on one executor with the [`TIMEOUT`].
pub fn run_with_timeout<M, F>(exec: Executor, make: M)
where
    M: FnOnce() -> F + Send + 'static,
    F: Future<Output = ()>,
{
    with_timeout(&format!("test body on {exec:?}"), TIMEOUT, move || {
        exec.block_on(make())
    });
}

/// Runs `f` on a new thread and fails the test if it does not finish within `limit` (the
/// test would hang otherwise); a panic of `f` is re-raised here, with `what` printed.
pub fn with_timeout<T: Send + 'static>(
    what: &str,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (done_tx, done_rx) = mpsc::channel();
    let runner = std::thread::Builder::new()
        .name(format!("test: {what}"))
        .spawn(move || {
            let _ = done_tx.send(f());
        })
        .expect("spawn test thread");
    match done_rx.recv_timeout(limit) {
        Ok(value) => {
            runner.join().expect("test thread");
            value
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match runner.join() {
            Err(payload) => {
                eprintln!("{what}: failed");
                std::panic::resume_unwind(payload)
            }
            Ok(()) => unreachable!("the test thread ended without a result"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what}: timed out after {limit:?} (the test would hang)")
        }
    }
}

/// Polls `cond` every millisecond until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < timeout {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    cond()
}

/// Number of threads of this process (Linux: /proc/self/task), for leak checks.
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The message of a panic payload (`&str` or `String`), or a placeholder.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "<non-string payload>".to_owned())
}

/// The README's code blocks, compiled and run as doctests of this crate, whose dependencies are
/// those of the README's install section for tokio (`tests/readme.rs` checks that the two
/// agree), so that the blocks work as pasted.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
