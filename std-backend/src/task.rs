//! One submitted call: the task allocation, its [`JoinHandle`] and [`JoinError`].
//!
//! # Per-call cost (the hot path, pool or separate thread)
//! - **1 heap allocation**: `Arc<Task<F, R>>` holds the closure ([`TakeCell`]), the captured
//!   context and the result [`Slot`]. The queue holds one clone as `Arc<dyn Runnable>`
//!   (unsizing is free), the handle the other as `Arc<dyn Output<R>>`.
//! - **Atomic RMWs**: 1 clone at submission; 1 `TakeCell` swap; 1 clone + 1 drop for the
//!   thread-local that answers [`is_cancelled`](crate::is_cancelled); 2 in `Slot::send` plus
//!   the waker's (only if a waker is registered); 1 to take the value; 2 `Arc` drops.
//! - **Locks and wake-ups**: see the pool module (`pool.rs`): 1 lock on each side; the awaiter
//!   is woken through its waker once, unless the result was there at its first poll.

use core::any::Any;
use core::future::Future;
use core::panic::AssertUnwindSafe;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::fmt;
use std::io;
use std::panic;
use std::sync::{Arc, Weak};
use std::time::Instant;

use aiothreads_core::slot::{RecvError, Slot};
use aiothreads_core::take::TakeCell;

use crate::backoff;
use crate::cancel::{self, Cancel};
use crate::context::Captured;
use crate::coop;
use crate::placement::AwaiterCpu;

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
///
/// Every job finishes through exactly one place, which its `run` or `fail` writes (a call's
/// result slot, a stream's outcome slot); nothing else reports its end.
pub(crate) trait Runnable: Send + Sync {
    /// Runs the job (or skips it when cancelled) and delivers its outcome. Never unwinds from
    /// the job itself.
    /// `delivering(Delivery::Ready { .. })` is called once the job's outcome is ready, just
    /// before it is delivered and its awaiter woken (a pool worker announces itself there as
    /// the taker of the call that awaiter may submit next); `delivering(Delivery::Unclaimed)`
    /// if the outcome then turns out to have nobody to wake (the awaiter is gone), before the
    /// outcome is dropped. Jobs that deliver continuously (streams) do not call it.
    fn run(self: Arc<Self>, delivering: &dyn Fn(Delivery));
    /// Delivers `err` without running the job, and drops the closure here.
    fn fail(&self, err: JoinError);
}

/// What a job's `run` tells the thread running it about the delivery of its outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// The outcome is about to be delivered; `awaiter_cpu` is the CPU its awaiter went to
    /// sleep on, if it did (`placement.rs`).
    Ready { awaiter_cpu: Option<u32> },
    /// The outcome found nobody to take it and is dropped by the running thread.
    Unclaimed,
}

/// What a job tells the bounded queue it waits in when it is withdrawn before it started.
pub(crate) trait Withdraw: Send + Sync {
    /// Removes the job at address `job` (the address of the `Runnable`) from the queue.
    fn withdraw(&self, job: usize);
}

/// A queued job's link back to its bounded queue, fixed when the job is made — before
/// anyone can withdraw it (`None` for unbounded pools and separate threads: a withdrawn job's
/// empty shell is skipped by the worker that reaches it, its closure already dropped).
#[derive(Default)]
pub(crate) struct QueueLink(Option<Weak<dyn Withdraw>>);

impl QueueLink {
    /// A link to `queue`.
    pub(crate) fn new(queue: Option<Weak<dyn Withdraw>>) -> Self {
        Self(queue)
    }

    /// Tells the queue (if any) that the job at `addr` was withdrawn.
    pub(crate) fn withdrawn(&self, addr: usize) {
        if let Some(queue) = self.0.as_ref().and_then(Weak::upgrade) {
            queue.withdraw(addr);
        }
    }
}

/// The address by which a queue finds a job (see [`Withdraw`]).
pub(crate) fn job_addr<T: ?Sized>(job: &T) -> usize {
    core::ptr::from_ref(job).cast::<()>() as usize
}

/// Drops `value`, reporting a panic of its `Drop` through the panic hook only (the hook has
/// printed it already): used where an unwind would lose other work or abort.
pub(crate) fn drop_quietly<T>(value: T) {
    let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(value)));
}

/// A job as seen by its handle: a result slot, and a way to cancel.
pub(crate) trait Output<R>: Send + Sync {
    fn slot(&self) -> &Slot<Outcome<R>>;
    /// Where the awaiter went to sleep (`placement.rs`).
    fn awaiter_cpu(&self) -> &AwaiterCpu;
    /// Cancels the job: a queued job is withdrawn (its closure dropped here, its place in a
    /// bounded queue freed), a running one sees [`is_cancelled`](crate::is_cancelled).
    fn cancel(&self);
}

/// The one allocation of a call.
pub(crate) struct Task<F, R> {
    job: TakeCell<(F, Captured)>,
    slot: Slot<Outcome<R>>,
    link: QueueLink,
    awaiter_cpu: AwaiterCpu,
}

impl<F, R> Task<F, R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    /// Allocates the task, capturing the caller's context; `link` is the bounded queue it
    /// will wait in, if any.
    pub(crate) fn new(f: F, link: QueueLink) -> Arc<Self> {
        Arc::new(Self {
            job: TakeCell::new((f, Captured::capture())),
            slot: Slot::new(),
            link,
            awaiter_cpu: AwaiterCpu::new(),
        })
    }

    /// The task as a job to run and as the handle of its result.
    pub(crate) fn split(self: Arc<Self>) -> (Arc<dyn Runnable>, JoinHandle<R>) {
        let handle = JoinHandle {
            task: Some(self.clone()),
            yielding: Yielding::No,
        };
        (self, handle)
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
    fn run(self: Arc<Self>, delivering: &dyn Fn(Delivery)) {
        let Some((f, captured)) = self.job.take() else {
            // Withdrawn by its handle, which dropped the closure.
            return;
        };
        if self.slot.is_closed() {
            // Cancelled while queued: never run; the closure is dropped here.
            drop_quietly((f, captured));
            return;
        }
        let outcome = {
            let _current = cancel::enter(self.clone());
            panic::catch_unwind(AssertUnwindSafe(|| captured.scope(f)))
        };
        delivering(Delivery::Ready {
            awaiter_cpu: self.awaiter_cpu.get(),
        });
        // A closed slot hands the value back: it is dropped here, on the worker, by a worker
        // that no longer claims to be free (the value's `Drop` may wait for another call).
        if let Err(value) = self.slot.send(outcome.map_err(JoinError::Panicked)) {
            delivering(Delivery::Unclaimed);
            drop_quietly(value);
        }
    }

    fn fail(&self, err: JoinError) {
        // Called from the pool's bookkeeping (shutdown, spawn failure), often for many jobs in
        // a row: neither the closure's `Drop` nor the awaiter's waker may unwind out of here,
        // or the jobs after this one would never be failed (and a second panicking `Drop`
        // during that unwinding would abort). Such a panic is reported by the panic hook.
        drop_quietly(self.job.take());
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

    fn awaiter_cpu(&self) -> &AwaiterCpu {
        &self.awaiter_cpu
    }

    fn cancel(&self) {
        // Close first: a worker that takes the closure after this skips it.
        self.slot.close();
        if let Some(job) = self.job.take() {
            // Not started: nothing will run. Release what it captured now, not when a worker
            // reaches the empty shell, and free its place in a bounded queue.
            drop_quietly(job);
            self.link.withdrawn(job_addr(self));
        }
    }
}

/// A submitted job: a [`Future`] of its result, and nothing else — a pure receiver of the
/// job's one result slot (it knows nothing of the pool).
///
/// - `.await` gives the job's return value; if the job panicked, the panic is re-raised here
///   with [`std::panic::resume_unwind`] (as [`std::thread::scope`] does); if the job never ran
///   (pool shut down, no thread could be started) it panics with the [`JoinError`]'s message.
///   Use [`try_join`](Self::try_join) to get a `Result` instead.
/// - **Dropping the handle cancels the job**: a job still queued never runs (its closure is
///   dropped at once, on the dropping thread, and it leaves a bounded queue), a running one
///   sees [`is_cancelled`](crate::is_cancelled) become `true`. Use [`detach`](Self::detach)
///   to let it run unobserved.
/// - Polling never spins: a pending handle registers its waker and returns.
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
    /// Whether polls yield while the job runs (see `backoff::yield_window`).
    yielding: Yielding,
}

/// A handle's yield state (see `backoff::yield_window`).
#[derive(Debug, Clone, Copy)]
enum Yielding {
    /// Polls register the waker and sleep: the usual path.
    No,
    /// Yield, starting at the next poll that finds the job unfinished.
    Armed,
    /// Yield until then.
    Until(Instant),
}

impl<R> fmt::Debug for JoinHandle<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish_non_exhaustive()
    }
}

impl<R> JoinHandle<R> {
    /// Makes the polls that find the job unfinished yield for up to the yield window before
    /// they sleep (the job was taken by a spinning worker; see `backoff::yield_window`).
    pub(crate) fn yield_while_running(&mut self) {
        self.yielding = Yielding::Armed;
    }

    /// Whether polls that find the job unfinished yield (see `yield_while_running`).
    #[cfg(test)]
    pub(crate) fn is_yielding(&self) -> bool {
        !matches!(self.yielding, Yielding::No)
    }

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
    /// Lets the job run to completion with nobody waiting for it. Its result is dropped on the
    /// thread that runs it — or here, inside `detach`, if the job has finished already. Either
    /// way a panic in the result's `Drop` is reported by the panic hook (printed to stderr by
    /// the default hook) and never unwinds into the caller: fire-and-forget does not fail
    /// the task that fires. (Dropping the handle instead drops a finished job's result like
    /// any value: a panic of its `Drop` surfaces there.)
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
        if let Some(task) = self.task.take() {
            // Not cancelled: the job runs on. If it has finished, this is its last reference
            // and its result drops here, quietly, as the docs promise (the worker's drop of a
            // result is caught by its own `catch_unwind`).
            drop_quietly(task);
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

    /// Polls the result slot (cost: one atomic load when the value is there; otherwise one
    /// waker registration), spending a unit of the executor's cooperative budget (`coop.rs`):
    /// a loop of calls that all complete at once still yields now and then.
    fn poll_outcome(&mut self, cx: &mut Context<'_>) -> Poll<Outcome<R>> {
        let Some(task) = self.task.as_ref() else {
            panic!("JoinHandle polled after it completed");
        };
        let Poll::Ready(unit) = coop::poll_proceed(cx) else {
            return Poll::Pending;
        };
        if !matches!(self.yielding, Yielding::No) && !task.slot().is_ready() {
            let now = Instant::now();
            let until = match self.yielding {
                Yielding::Until(until) => until,
                _ => now + backoff::yield_window(),
            };
            if now < until {
                // Yield: the executor polls again without sleeping (or runs its other tasks
                // first); nothing is registered, so the completion wakes nobody.
                self.yielding = Yielding::Until(until);
                cx.waker().wake_by_ref();
                coop::refill();
                return Poll::Pending;
            }
            // The job outlasted the window: sleep as usual from now on.
            self.yielding = Yielding::No;
            backoff::await_yield_ended(false);
        }
        let out = match task.slot().poll_recv(cx) {
            Poll::Pending => {
                // Going to sleep: note where, for the worker that will wake us (one `getcpu`
                // on this already slow path; `placement.rs`).
                task.awaiter_cpu().record();
                coop::refill();
                return Poll::Pending;
            }
            Poll::Ready(Ok(outcome)) => outcome,
            Poll::Ready(Err(RecvError::SenderGone)) => Err(JoinError::Cancelled),
            Poll::Ready(Err(RecvError::AlreadyTaken | RecvError::Closed)) => {
                panic!("JoinHandle polled after it completed")
            }
        };
        unit.made_progress();
        if !matches!(self.yielding, Yielding::No) {
            self.yielding = Yielding::No;
            backoff::await_yield_ended(true);
        }
        self.task = None;
        Poll::Ready(out)
    }
}

impl<R> Drop for JoinHandle<R> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            // A queued job is withdrawn, a running one sees `is_cancelled()`; a value already
            // delivered is dropped here.
            task.cancel();
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
