//! Jobs on a new, named OS thread per call: [`spawn_separate`] and the `threaded_separate`
//! forms.
//!
//! For work that may block indefinitely (a pipe, a device, a lock held by someone else), so
//! that it can never starve the pool. Each call costs a thread creation (~tens of µs) and, by
//! default, a few MiB of virtual memory for its stack; there is no limit on how many run at
//! once — that is the point, and the risk.

use std::borrow::Cow;
use std::io;
use std::sync::Arc;
use std::thread;

use crate::task::{JoinHandle, QueueLink, Runnable, Task};
use crate::JoinError;

/// The thread name used when none is given.
pub(crate) const DEFAULT_NAME: &str = "aiothreads-separate";

/// Where a separate thread's job runs: its name and stack size.
#[derive(Debug, Clone)]
pub(crate) struct ThreadSpec {
    pub(crate) name: Cow<'static, str>,
    /// Bytes of stack (`None`: the platform's default, as `std::thread::Builder` uses).
    pub(crate) stack_size: Option<usize>,
}

impl ThreadSpec {
    pub(crate) fn named(name: Cow<'static, str>) -> Self {
        Self {
            name,
            stack_size: None,
        }
    }
}

/// Starts `job` on a new thread; if no thread can be started (a name with a NUL byte, the
/// system refusing), the job fails with [`JoinError::SpawnFailed`] and its closure is dropped
/// here.
pub(crate) fn run_on_new_thread(spec: ThreadSpec, job: Arc<dyn Runnable>) {
    if spec.name.contains('\0') {
        // `std::thread::Builder::spawn` would panic in the caller for such a name.
        job.fail(JoinError::SpawnFailed(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a thread name may not contain a NUL byte",
        )));
        return;
    }
    let mut builder = thread::Builder::new().name(spec.name.into_owned());
    if let Some(bytes) = spec.stack_size {
        builder = builder.stack_size(bytes);
    }
    // The thread owns one reference to the job. `run` catches the job's panic and runs it
    // under the captured context, exactly as a pool worker does.
    let runner = job.clone();
    if let Err(e) = builder.spawn(move || runner.run(&|_| {})) {
        // The closure (and its reference) was dropped by `spawn`; the awaiter learns why.
        job.fail(JoinError::SpawnFailed(e));
    }
}

/// Runs `f` on a new thread per `spec` and returns the handle of its result.
pub(crate) fn spawn_on<F, R>(spec: ThreadSpec, f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let (job, handle) = Task::new(f, QueueLink::default()).split();
    run_on_new_thread(spec, job);
    handle
}

/// Runs `f` on a new OS thread (named `aiothreads-separate`), outside any pool; the handle is
/// a `Future` of its result.
///
/// If the thread cannot be created, awaiting the handle gives
/// [`JoinError::SpawnFailed`] (a plain `.await` panics with that message).
///
/// # Examples
/// ```
/// # futures::executor::block_on(async {
/// let name = aiothreads::spawn_separate(|| {
///     std::thread::current().name().map(str::to_owned)
/// })
/// .await;
/// assert_eq!(name.as_deref(), Some("aiothreads-separate"));
/// # });
/// ```
pub fn spawn_separate<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    spawn_on(ThreadSpec::named(Cow::Borrowed(DEFAULT_NAME)), f)
}

/// Same as [`spawn_separate`], with the thread named `name`.
///
/// A name with a NUL byte cannot be given to a thread: awaiting the handle then gives
/// [`JoinError::SpawnFailed`] (kind `InvalidInput`).
///
/// # Examples
/// ```
/// # futures::executor::block_on(async {
/// let handle = aiothreads::spawn_separate_named("reader", || {
///     std::thread::current().name().unwrap().to_owned()
/// });
/// assert_eq!(handle.await, "reader");
/// # });
/// ```
pub fn spawn_separate_named<F, R>(name: impl Into<Cow<'static, str>>, f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    spawn_on(ThreadSpec::named(name.into()), f)
}
