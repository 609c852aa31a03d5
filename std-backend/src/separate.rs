//! Jobs on a new, named OS thread per call: [`spawn_separate`] and the `threaded_separate`
//! forms.
//!
//! For work that may block indefinitely (a pipe, a device, a lock held by someone else), so
//! that it can never starve the pool. Each call costs a thread creation (~tens of µs) and, by
//! default, a few MiB of virtual memory for its stack; there is no limit on how many run at
//! once — that is the point, and the risk.

use core::time::Duration;
use std::borrow::Cow;
use std::sync::Arc;
use std::thread;

use crate::task::{JoinError, JoinHandle, Output, Task};

/// The thread name used when none is given.
pub(crate) const DEFAULT_NAME: &str = "aiothreads-separate";

/// Starts `task` on a new thread named `name`.
pub(crate) fn run_on_new_thread<R: Send + 'static>(
    name: Cow<'static, str>,
    task: Arc<dyn Output<R>>,
) -> JoinHandle<R> {
    let job = task.clone().runnable();
    // The thread owns one clone of the task; the handle the other. `run` catches the job's
    // panic and runs it under the captured context, exactly as a pool worker does.
    let spawned = thread::Builder::new()
        .name(name.into_owned())
        .spawn(move || job.run());
    if let Err(e) = spawned {
        // The closure (and its clone of the task) was dropped by `spawn`; the awaiter learns why.
        task.fail(JoinError::SpawnFailed(e));
    }
    JoinHandle::new(task, None, Duration::ZERO)
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
    run_on_new_thread(Cow::Borrowed(DEFAULT_NAME), Task::new(f))
}

/// Same as [`spawn_separate`], with the thread named `name`.
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
    run_on_new_thread(name.into(), Task::new(f))
}
