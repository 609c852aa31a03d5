//! Cancellation as seen from inside a running job: [`is_cancelled`] and [`CancelToken`].
//!
//! While a worker (or a separate thread) runs a job, a thread-local holds a reference to that
//! job's task. The job is cancelled when its [`JoinHandle`](crate::JoinHandle) is dropped
//! without [`detach`](crate::JoinHandle::detach): the task's result slot is then closed, and
//! [`is_cancelled`] reads that bit (one relaxed load).

use core::cell::RefCell;
use std::fmt;
use std::sync::Arc;

/// Something whose cancellation can be observed: the running task.
pub(crate) trait Cancel: Send + Sync {
    /// Whether the awaiting side has gone away.
    fn is_cancelled(&self) -> bool;
}

thread_local! {
    /// The task being run on this thread, if any.
    static CURRENT: RefCell<Option<Arc<dyn Cancel>>> = const { RefCell::new(None) };
}

/// Installs `task` as the current job of this thread until the guard is dropped (also on
/// unwind); the previous one (nested `sync_call`s never install one, but be safe) is restored.
pub(crate) fn enter(task: Arc<dyn Cancel>) -> EnterGuard {
    let prev = CURRENT.with(|c| c.replace(Some(task)));
    EnterGuard { prev }
}

/// Restores the previous current job on drop.
pub(crate) struct EnterGuard {
    prev: Option<Arc<dyn Cancel>>,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let prev = self.prev.take();
        // `try_with`: during thread teardown the thread-local may already be gone.
        let _ = CURRENT.try_with(|c| c.replace(prev));
    }
}

/// Whether the job running on this thread has been cancelled, i.e. its
/// [`JoinHandle`](crate::JoinHandle) was dropped without being detached.
///
/// Long jobs poll it to stop early. Outside a job (on an async task, on a thread that is not
/// running a pool job or a separate-thread job, or inside `sync_call` run inline) it returns
/// `false`, unless the inline call itself happens inside a job.
///
/// Cost: a thread-local access and one relaxed atomic load.
///
/// # Examples
/// ```
/// use std::time::Duration;
///
/// let handle = aiothreads::spawn(|| {
///     let mut rounds = 0;
///     while !aiothreads::is_cancelled() && rounds < 1000 {
///         std::thread::sleep(Duration::from_millis(1));
///         rounds += 1;
///     }
///     rounds
/// });
/// std::thread::sleep(Duration::from_millis(20));
/// drop(handle); // the job sees `is_cancelled()` and stops early
/// assert!(!aiothreads::is_cancelled()); // not inside a job here
/// ```
pub fn is_cancelled() -> bool {
    CURRENT
        .try_with(|c| c.borrow().as_ref().is_some_and(|t| t.is_cancelled()))
        .unwrap_or(false)
}

/// A handle on the cancellation state of the job that created it, usable from any thread
/// (for example, handed to a helper thread the job starts).
///
/// Cloning is cheap (one reference-count increment).
///
/// # Examples
/// ```
/// use std::time::Duration;
///
/// let handle = aiothreads::spawn(|| {
///     let token = aiothreads::cancel_token();
///     // A helper thread of the job watches the job's cancellation.
///     std::thread::spawn(move || {
///         while !token.is_cancelled() {
///             std::thread::sleep(Duration::from_millis(1));
///         }
///     })
///     .join()
///     .unwrap();
/// });
/// std::thread::sleep(Duration::from_millis(10));
/// drop(handle); // cancels: the helper sees it and the job ends
/// // Outside any job, a token is never cancelled.
/// assert!(!aiothreads::cancel_token().is_cancelled());
/// ```
#[derive(Clone, Default)]
pub struct CancelToken {
    task: Option<Arc<dyn Cancel>>,
}

impl CancelToken {
    /// Whether the job this token belongs to was cancelled; always `false` for a token taken
    /// outside a job. A handle dropped after its job finished also marks the job cancelled,
    /// so a token that outlives its job may read `true` then; only a detached or awaited job
    /// stays `false` for good.
    pub fn is_cancelled(&self) -> bool {
        self.task.as_ref().is_some_and(|t| t.is_cancelled())
    }
}

impl fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelToken")
            .field("in_job", &self.task.is_some())
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

/// The [`CancelToken`] of the job running on this thread (a token that is never cancelled
/// when called outside a job).
///
/// # Examples
/// ```
/// let token = aiothreads::cancel_token();
/// assert!(!token.is_cancelled());
/// ```
pub fn cancel_token() -> CancelToken {
    CancelToken {
        task: CURRENT.try_with(|c| c.borrow().clone()).ok().flatten(),
    }
}
