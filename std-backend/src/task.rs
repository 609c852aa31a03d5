//! One submitted call: the task allocation, its [`JoinHandle`] and [`JoinError`].
//!
//! # Per-call cost (the hot path, pool or separate thread)
//! - **1 heap allocation**: `Arc<Task<F, R>>` holds the closure ([`TakeCell`]), the captured
//!   context and the result [`Slot`]. The queue holds one clone as `Arc<dyn Runnable>`
//!   (unsizing is free), the handle the other as `Arc<dyn Output<R>>`.
//! - **Atomic RMWs**: 1 clone at submission; 1 `TakeCell` swap; 1 clone + 1 drop for the
//!   thread-local that answers [`is_cancelled`](crate::is_cancelled); 2 in `Slot::send` plus
//!   the waker's (only if a waker is registered); 1 to take the value; 2 `Arc` drops.
//! - **Locks and wake-ups**: see the pool module (`pool.rs`): 1 lock on each side, and no
//!   futex wake-up at all when a worker is spinning and the awaiter's first poll spins.

use core::any::Any;
use core::future::Future;
use core::panic::AssertUnwindSafe;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;
use std::fmt;
use std::io;
use std::panic;
use std::sync::Arc;
use std::time::Instant;

use aiothreads_core::slot::{RecvError, Slot};
use aiothreads_core::take::TakeCell;

use crate::cancel::{self, Cancel};
use crate::context::Captured;
use crate::pool::Shared;

/// Why a job gave no result.
///
/// Awaiting a [`JoinHandle`] directly re-raises [`Panicked`](Self::Panicked) with
/// [`std::panic::resume_unwind`] and panics with this error's message for the others;
/// [`JoinHandle::try_join`] hands it over instead.
///
/// # Examples
/// ```
/// use aiothreads::JoinError;
///
/// let handle = aiothreads::spawn(|| -> u32 { panic!("boom") });
/// match futures::executor::block_on(handle.try_join()) {
///     Err(JoinError::Panicked(payload)) => {
///         assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
///     }
///     other => panic!("unexpected {other:?}"),
/// }
/// ```
#[derive(Debug)]
pub enum JoinError {
    /// The job panicked; the payload is what `panic!` was given.
    Panicked(Box<dyn Any + Send + 'static>),
    /// The job never ran: it was skipped (cancelled before it started).
    Cancelled,
    /// No thread could be started to run the job (`std::thread::Builder::spawn` failed).
    SpawnFailed(io::Error),
    /// The pool was shut down before the job started, or refused it because it was shut down.
    Shutdown,
}

impl JoinError {
    /// Whether this is [`JoinError::Panicked`].
    ///
    /// # Examples
    /// ```
    /// assert!(!aiothreads::JoinError::Shutdown.is_panic());
    /// ```
    pub fn is_panic(&self) -> bool {
        matches!(self, Self::Panicked(_))
    }

    /// The panic message, when the job panicked with a string message.
    ///
    /// # Examples
    /// ```
    /// let err = aiothreads::JoinError::Panicked(Box::new("boom"));
    /// assert_eq!(err.panic_message(), Some("boom"));
    /// ```
    pub fn panic_message(&self) -> Option<&str> {
        match self {
            Self::Panicked(payload) => payload_message(payload.as_ref()),
            _ => None,
        }
    }
}

fn payload_message(payload: &(dyn Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&'static str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Panicked(p) => match payload_message(p.as_ref()) {
                Some(msg) => write!(f, "the threaded job panicked: {msg}"),
                None => f.write_str("the threaded job panicked"),
            },
            Self::Cancelled => f.write_str("the threaded job was cancelled before it started"),
            Self::SpawnFailed(e) => write!(f, "no thread could be started for the job: {e}"),
            Self::Shutdown => f.write_str("the thread pool was shut down; the job did not run"),
        }
    }
}

impl core::error::Error for JoinError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::SpawnFailed(e) => Some(e),
            _ => None,
        }
    }
}

/// The result slot's value type.
pub(crate) type Outcome<R> = Result<R, JoinError>;

/// A job as seen by whoever runs it (a pool worker or a separate thread).
pub(crate) trait Runnable: Send + Sync {
    /// Runs the job (or skips it when cancelled) and delivers its result. Never unwinds from
    /// the job itself.
    fn run(self: Arc<Self>);
    /// Delivers `err` without running the job, and drops the closure here.
    fn fail(&self, err: JoinError);
}

/// A job as seen by its handle.
pub(crate) trait Output<R>: Runnable {
    fn slot(&self) -> &Slot<Outcome<R>>;
    fn runnable(self: Arc<Self>) -> Arc<dyn Runnable>;
}

/// The one allocation of a call.
pub(crate) struct Task<F, R> {
    job: TakeCell<(F, Captured)>,
    slot: Slot<Outcome<R>>,
}

impl<F, R> Task<F, R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    /// Allocates the task, capturing the caller's context.
    pub(crate) fn new(f: F) -> Arc<Self> {
        Arc::new(Self {
            job: TakeCell::new((f, Captured::capture())),
            slot: Slot::new(),
        })
    }
}

impl<F, R> Cancel for Task<F, R>
where
    F: Send + 'static,
    R: Send + 'static,
{
    fn is_cancelled(&self) -> bool {
        self.slot.is_closed()
    }
}

impl<F, R> Runnable for Task<F, R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    fn run(self: Arc<Self>) {
        let Some((f, captured)) = self.job.take() else {
            return;
        };
        if self.slot.is_closed() {
            // Cancelled while queued: never run; the closure is dropped here, on the worker.
            drop((f, captured));
            return;
        }
        let outcome = {
            let _current = cancel::enter(self.clone());
            panic::catch_unwind(AssertUnwindSafe(|| captured.scope(f)))
        };
        // A closed slot hands the value back: it is dropped here, on the worker.
        let _ = self.slot.send(outcome.map_err(JoinError::Panicked));
    }

    fn fail(&self, err: JoinError) {
        // Called from the pool's bookkeeping (shutdown, spawn failure), often for many jobs in
        // a row: neither the closure's `Drop` nor the awaiter's waker may unwind out of here,
        // or the jobs after this one would never be failed (and a second panicking `Drop`
        // during that unwinding would abort). Such a panic is reported by the panic hook.
        let job = self.job.take();
        let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(job)));
        let _ = panic::catch_unwind(AssertUnwindSafe(|| self.slot.send(Err(err))));
    }
}

impl<F, R> Output<R> for Task<F, R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    fn slot(&self) -> &Slot<Outcome<R>> {
        &self.slot
    }
    fn runnable(self: Arc<Self>) -> Arc<dyn Runnable> {
        self
    }
}

/// A submitted job: a [`Future`] of its result.
///
/// - `.await` gives the job's return value; if the job panicked, the panic is re-raised here
///   with [`std::panic::resume_unwind`] (as [`std::thread::scope`] does); if the job never ran
///   (pool shut down, no thread could be started) it panics with the [`JoinError`]'s message.
///   Use [`try_join`](Self::try_join) to get a `Result` instead.
/// - **Dropping the handle cancels the job**: a job still queued never runs (its closure is
///   dropped), a running one sees [`is_cancelled`](crate::is_cancelled) become `true`. Use
///   [`detach`](Self::detach) to let it run unobserved.
/// - Cancel-safe: dropping the handle after a `Pending` poll is a cancellation, nothing else.
///
/// # Examples
/// ```
/// # futures::executor::block_on(async {
/// let handle = aiothreads::spawn(|| 6 * 7);
/// assert_eq!(handle.await, 42);
/// # });
/// ```
#[must_use = "dropping a JoinHandle cancels the job; `.await` it or call `.detach()`"]
pub struct JoinHandle<R> {
    task: Option<Arc<dyn Output<R>>>,
    /// `Some` while the job waits for admission to a bounded pool (see `Builder::max_queued`).
    admission: Option<Arc<Shared>>,
    /// Spin budget for the first poll (zero: don't spin).
    spin: Duration,
}

impl<R> fmt::Debug for JoinHandle<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .field("admitted", &self.admission.is_none())
            .finish_non_exhaustive()
    }
}

impl<R> JoinHandle<R> {
    /// Whether the job has delivered its outcome (a value, a panic or an error), so that
    /// awaiting the handle will not wait.
    ///
    /// # Examples
    /// ```
    /// let handle = aiothreads::spawn(|| 1);
    /// while !handle.is_finished() {
    ///     std::thread::yield_now();
    /// }
    /// assert_eq!(futures::executor::block_on(handle), 1);
    /// ```
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_some_and(|t| t.slot().is_ready())
    }
}

impl<R: Send + 'static> JoinHandle<R> {
    pub(crate) fn new(
        task: Arc<dyn Output<R>>,
        admission: Option<Arc<Shared>>,
        spin: Duration,
    ) -> Self {
        Self {
            task: Some(task),
            admission,
            spin,
        }
    }

    /// Lets the job run to completion with nobody waiting for it. Its result is dropped on the
    /// thread that ran it; a panic is reported by the panic hook (printed to stderr by the
    /// default hook), never silently lost.
    ///
    /// A job still waiting for admission to a bounded pool is queued at once, past the bound.
    ///
    /// # Examples
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// static RAN: AtomicBool = AtomicBool::new(false);
    ///
    /// aiothreads::spawn(|| RAN.store(true, Ordering::SeqCst)).detach();
    /// while !RAN.load(Ordering::SeqCst) {
    ///     std::thread::yield_now();
    /// }
    /// ```
    pub fn detach(mut self) {
        let Some(task) = self.task.take() else {
            return;
        };
        if let Some(shared) = self.admission.take() {
            shared.admit_forced(task.runnable());
        }
    }

    /// A future of the job's outcome as a `Result`, never panicking for a failed job.
    ///
    /// # Errors
    /// The [`JoinError`] saying why there is no value.
    ///
    /// # Examples
    /// ```
    /// # futures::executor::block_on(async {
    /// let value = aiothreads::spawn(|| "ok").try_join().await;
    /// assert_eq!(value.unwrap(), "ok");
    /// # });
    /// ```
    pub fn try_join(self) -> TryJoin<R> {
        TryJoin { handle: self }
    }

    /// Same as [`try_join`](Self::try_join).
    ///
    /// # Errors
    /// The [`JoinError`] saying why there is no value.
    ///
    /// # Examples
    /// ```
    /// # futures::executor::block_on(async {
    /// assert_eq!(aiothreads::spawn(|| 3).result().await.unwrap(), 3);
    /// # });
    /// ```
    pub fn result(self) -> TryJoin<R> {
        self.try_join()
    }

    fn poll_outcome(&mut self, cx: &mut Context<'_>) -> Poll<Outcome<R>> {
        let Some(task) = self.task.as_ref() else {
            panic!("JoinHandle polled after it completed");
        };
        if let Some(shared) = self.admission.as_ref() {
            match shared.poll_admit(task, cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(spin)) => {
                    self.admission = None;
                    self.spin = spin;
                }
                Poll::Ready(Err(err)) => {
                    self.admission = None;
                    task.fail(err);
                }
            }
        }
        let slot = task.slot();
        let spin = core::mem::take(&mut self.spin);
        if !spin.is_zero() {
            // First poll of a call that a spinning worker takes at once: wait a few
            // microseconds here rather than pay for a wake-up of this thread (see
            // `Builder::poll_spin`).
            let start = Instant::now();
            loop {
                for _ in 0..16 {
                    if slot.is_ready() {
                        break;
                    }
                    core::hint::spin_loop();
                }
                if slot.is_ready() || start.elapsed() >= spin {
                    break;
                }
            }
        }
        let out = match slot.poll_recv(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(outcome)) => outcome,
            Poll::Ready(Err(RecvError::SenderGone)) => Err(JoinError::Cancelled),
            Poll::Ready(Err(RecvError::AlreadyTaken | RecvError::Closed)) => {
                panic!("JoinHandle polled after it completed")
            }
        };
        self.task = None;
        Poll::Ready(out)
    }
}

impl<R> Drop for JoinHandle<R> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            // Cancel: a queued job is skipped, a running one sees `is_cancelled()`; a value
            // already delivered is dropped here.
            task.slot().close();
            if let Some(shared) = self.admission.take() {
                // We may have been the waiter woken for a free place: pass the turn on.
                shared.admission_pass_on();
            }
        }
    }
}

impl<R: Send + 'static> Future for JoinHandle<R> {
    type Output = R;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<R> {
        match self.get_mut().poll_outcome(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(value)) => Poll::Ready(value),
            Poll::Ready(Err(JoinError::Panicked(payload))) => panic::resume_unwind(payload),
            Poll::Ready(Err(err)) => panic!("{err}"),
        }
    }
}

/// Future returned by [`JoinHandle::try_join`]: the job's outcome as a `Result`.
///
/// Dropping it cancels the job, as dropping the handle does.
///
/// # Examples
/// ```
/// use aiothreads::JoinError;
///
/// futures::executor::block_on(async {
///     assert_eq!(aiothreads::spawn(|| 1).try_join().await.unwrap(), 1);
///     let failed = aiothreads::spawn(|| -> u32 { panic!("disk gone") }).try_join().await;
///     assert!(matches!(failed, Err(JoinError::Panicked(_))));
/// });
/// ```
#[must_use = "futures do nothing unless polled; dropping this cancels the job"]
#[derive(Debug)]
pub struct TryJoin<R> {
    handle: JoinHandle<R>,
}

impl<R: Send + 'static> Future for TryJoin<R> {
    type Output = Result<R, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().handle.poll_outcome(cx)
    }
}
