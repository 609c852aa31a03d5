//! Calling async code from threads: [`sync_await`] and friends.
//!
//! From a thread (a `threaded` worker, a `spawn_blocking` closure, a thread of your own), run
//! a future *on an event loop* and block the thread until it completes — the Rust form of
//! Python's `sync_await` / `asyncio.run_coroutine_threadsafe(...).result()`. The future runs
//! on the loop, so it may use the loop's reactor (tokio timers and sockets); the thread
//! blocks on its own parker.
//!
//! | | loop | no loop known | misuse / loop gone | panic in the future |
//! |---|---|---|---|---|
//! | [`sync_await`], [`wait_coroutine`] | [`Loop::current`] | runs it with [`block_on`] | panics with the reason | re-raised here |
//! | [`try_sync_await`] | [`Loop::current`] | `Err(NoLoop)` | `Err(..)` | `Err(Panicked)` |
//! | [`sync_wait_coroutine`], [`Loop::sync_await`] | given | — | panics | re-raised here |
//! | [`Loop::try_sync_await`] | given | — | `Err(..)` | `Err(Panicked)` |
//!
//! The future's own output (a `Result`, say) comes back as it is.
//!
//! # Tokio constructors
//! Some tokio futures need the runtime's context when they are *created* (`tokio::time::sleep`
//! panics with "no reactor running" otherwise). `threaded` workers and
//! [`Snapshot::scope`](crate::Snapshot::scope) of a tokio loop enter that context, so
//! `sync_await(tokio::time::sleep(d))` works there. On other threads, create the future on the
//! loop: `sync_await(async move { tokio::time::sleep(d).await })`, or
//! [`sync_wait_coroutine`]`(&lp, move || tokio::time::sleep(d))`.
//!
//! # Context
//! The waiting thread's [`ContextVar`](crate::ContextVar) values and hook context (the
//! `tracing` span) are visible to the future while it runs on the loop, as a coroutine
//! submitted from a thread in Python runs in that thread's context.
//!
//! # Cost
//! A tokio loop: one allocation (tokio's task), whose `JoinHandle` the waiting thread polls.
//! Other loops: the `Box` of the spawned future and one oneshot slot. The waiting thread
//! spins for the crate's one spin budget (`backoff.rs`: about one measured wake-up cycle of
//! this machine) before it parks. PERFORMANCE.md has the measured hop against tokio's
//! `Handle::spawn` + waiting on its `JoinHandle` from a thread, per CPU.

use core::any::Any;
use core::future::{poll_fn, Future};
use core::panic::AssertUnwindSafe;
use core::pin::pin;
use core::task::Poll;
use std::fmt;
use std::panic::{catch_unwind, resume_unwind};

use aiothreads_core::slot::oneshot;

#[cfg(doc)]
use crate::block_on::block_on;
use crate::block_on::block_on_checked;
use crate::context::ContextSnapshot;
use crate::loop_handle::Loop;
use crate::misuse::{self, check_may_block};

/// Why a [`try_sync_await`] gave no output, or why a
/// [`try_blocking_iter`](crate::try_blocking_iter) ended early.
#[non_exhaustive]
pub enum SyncAwaitError {
    /// No loop is known on this thread: not a `threaded` worker of an async caller, no
    /// [`Loop::enter`] / [`set_current_loop`](crate::set_current_loop), no tokio runtime context.
    NoLoop,
    /// This thread drives the loop the future (or the stream) would run on: blocking it would
    /// wait for work that only this thread can do. Every blocking entry point refuses with
    /// this reason, and its `Display` is the panic message of the panicking forms (the same
    /// text for `sync_await`, `blocking_iter` and `ThreadSender::put`).
    WouldDeadlock,
    /// The loop refused the future (or the task driving the stream) or dropped it unfinished
    /// (it shut down).
    LoopGone,
    /// The future (or the stream) panicked; the payload, as `std::thread::JoinHandle::join`
    /// gives it.
    Panicked(Box<dyn Any + Send>),
}

impl SyncAwaitError {
    /// The panic payload, if the future panicked.
    ///
    /// # Examples
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// let rt = tokio::runtime::Runtime::new().unwrap();
    /// let lp = aiothreads::Loop::from(rt.handle().clone());
    /// let result: Result<u32, _> = lp.try_sync_await(async { if true { panic!("boom") } 1 });
    /// let err = result.unwrap_err();
    /// let payload = err.into_panic().unwrap();
    /// assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
    /// # }
    /// ```
    pub fn into_panic(self) -> Option<Box<dyn Any + Send>> {
        match self {
            Self::Panicked(payload) => Some(payload),
            _ => None,
        }
    }

    fn panic_message(payload: &(dyn Any + Send)) -> &str {
        payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("<non-string panic payload>")
    }
}

impl fmt::Debug for SyncAwaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoLoop => f.write_str("NoLoop"),
            Self::WouldDeadlock => f.write_str("WouldDeadlock"),
            Self::LoopGone => f.write_str("LoopGone"),
            Self::Panicked(p) => f
                .debug_tuple("Panicked")
                .field(&Self::panic_message(&**p))
                .finish(),
        }
    }
}

impl fmt::Display for SyncAwaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoLoop => f.write_str(
                "sync_await: no event loop is known on this thread (call it from a `threaded` \
                 worker, inside a tokio runtime context, after `Loop::enter`, or pass the loop \
                 with `sync_wait_coroutine`)",
            ),
            Self::WouldDeadlock => f.write_str(misuse::REASON),
            Self::LoopGone => f.write_str(
                "aiothreads: the event loop refused the future (or the task driving the stream) \
                 or dropped it unfinished: it has shut down",
            ),
            Self::Panicked(p) => write!(
                f,
                "aiothreads: the awaited future or stream panicked: {}",
                Self::panic_message(&**p)
            ),
        }
    }
}

impl core::error::Error for SyncAwaitError {}

impl From<misuse::WouldDeadlock> for SyncAwaitError {
    fn from(_: misuse::WouldDeadlock) -> Self {
        Self::WouldDeadlock
    }
}

impl SyncAwaitError {
    /// What the panicking forms do with an error: re-raise a panic of the future or stream
    /// as is (its original payload), panic with the error's `Display` otherwise.
    #[track_caller]
    pub(crate) fn raise(self) -> ! {
        match self {
            Self::Panicked(payload) => resume_unwind(payload),
            err => panic!("{err}"),
        }
    }
}

/// Unwraps for the panicking forms: re-raises a panic of the future as is.
#[track_caller]
fn unwrap_or_raise<T>(result: Result<T, SyncAwaitError>) -> T {
    result.unwrap_or_else(|err| err.raise())
}

/// Runs `fut` on the current [`Loop`] and blocks this thread until it completes.
///
/// Call it from a thread that may block: a `threaded` worker (which knows its caller's loop),
/// a tokio `spawn_blocking` thread, a thread with [`set_current_loop`](crate::set_current_loop)
/// or [`Snapshot::scope`](crate::Snapshot::scope). With no loop known it runs the future here
/// with [`block_on`] — fine for futures that need no reactor; use [`try_sync_await`] to get
/// an error instead.
///
/// # Panics
/// - At once, with the [`SyncAwaitError::WouldDeadlock`] reason, if this thread drives the
///   loop (you are on the loop: use `.await`). With no loop known, if the future is pending at
///   its first poll and this thread drives some loop (a tokio scheduler thread, or one
///   that entered a loop with [`Loop::enter`]), whose tasks it may be waiting for.
/// - With the [`SyncAwaitError::LoopGone`] reason if the loop shut down before the future
///   finished.
/// - A panic of the future is re-raised here (its original payload).
///
/// # Examples
/// ```
/// # #[cfg(feature = "tokio")] {
/// use std::time::Duration;
///
/// async fn fetch(id: u32) -> String {
///     tokio::time::sleep(Duration::from_millis(1)).await; // needs the tokio runtime
///     format!("item {id}")
/// }
///
/// let rt = tokio::runtime::Runtime::new().unwrap();
/// let out = rt.block_on(async {
///     tokio::task::spawn_blocking(|| {
///         // Sync code on a blocking thread, calling back into async code:
///         let item = aiothreads::sync_await(fetch(1));
///         item.to_uppercase()
///     })
///     .await
///     .unwrap()
/// });
/// assert_eq!(out, "ITEM 1");
/// # }
/// ```
#[track_caller]
pub fn sync_await<F>(fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match Loop::current() {
        Some(lp) => lp.sync_await(fut),
        // Polled in a copy of this thread's context, as on a loop (where it runs in the context
        // captured for it): what the future sets stays in the copy, so the thread's own
        // context is the same after `sync_await` with a loop or without. Cost: one capture (an
        // `Arc` clone when a value is set), two thread-local swaps per poll.
        None => block_on_checked(ContextSnapshot::capture().wrap(fut), || {
            check_may_block(None)
        })
        .unwrap_or_else(|e| e.raise()),
    }
}

/// [`sync_await`] under the original's other name: waits for a future ("coroutine") from a
/// thread.
///
/// # Panics
/// As [`sync_await`].
///
/// # Examples
/// ```
/// let data = aiothreads::wait_coroutine(async { "data" }); // no loop here: runs inline
/// assert_eq!(data, "data");
/// ```
#[track_caller]
pub fn wait_coroutine<F>(fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    sync_await(fut)
}

/// The strict [`sync_await`]: never falls back to [`block_on`], never panics.
///
/// # Errors
/// [`SyncAwaitError::NoLoop`] when no loop is known here (the future is dropped unpolled);
/// otherwise as [`Loop::try_sync_await`].
///
/// # Examples
/// ```
/// use aiothreads::SyncAwaitError;
/// assert!(matches!(aiothreads::try_sync_await(async { 1 }), Err(SyncAwaitError::NoLoop)));
/// ```
pub fn try_sync_await<F>(fut: F) -> Result<F::Output, SyncAwaitError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match Loop::current() {
        Some(lp) => lp.try_sync_await(fut),
        None => Err(SyncAwaitError::NoLoop),
    }
}

/// Runs the future made by `make` on the given loop and blocks until it completes: Python's
/// `sync_wait_coroutine(loop, coroutine_func)`, for threads that don't know their loop (a
/// thread of your own, `asyncio.to_thread`-style code). `make` is called on the loop.
///
/// # Panics
/// As [`Loop::sync_await`]: with the [`SyncAwaitError::WouldDeadlock`] reason at once if this
/// thread drives `lp`.
///
/// # Examples
/// ```
/// # #[cfg(feature = "tokio")] {
/// let rt = tokio::runtime::Runtime::new().unwrap();
/// let lp = aiothreads::Loop::from(rt.handle().clone());
/// let out = std::thread::spawn(move || {
///     aiothreads::sync_wait_coroutine(&lp, || async { "from the loop" })
/// });
/// assert_eq!(out.join().unwrap(), "from the loop");
/// # }
/// ```
#[track_caller]
pub fn sync_wait_coroutine<M, F>(lp: &Loop, make: M) -> F::Output
where
    M: FnOnce() -> F + Send + 'static,
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    lp.sync_await(async move { make().await })
}

impl Loop {
    /// Runs `fut` on this loop and blocks the current thread until it completes.
    ///
    /// # Panics
    /// With the reason of [`SyncAwaitError::WouldDeadlock`] at once if this thread drives the
    /// loop, of [`SyncAwaitError::LoopGone`] if the loop shut down first. A panic of the future
    /// is re-raised here (its original payload).
    ///
    /// # Examples
    /// See [`Loop`].
    #[track_caller]
    pub fn sync_await<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        unwrap_or_raise(self.try_sync_await(fut))
    }

    /// Runs `fut` on this loop and blocks the current thread until it completes, reporting
    /// every failure as an error.
    ///
    /// # Errors
    /// - [`SyncAwaitError::WouldDeadlock`] at once, without running `fut`, if this thread
    ///   drives the loop (see [`Loop::drives_current_thread`]);
    /// - [`SyncAwaitError::LoopGone`] if the loop refuses the future or drops it unfinished —
    ///   promptly, as soon as it drops it;
    /// - [`SyncAwaitError::Panicked`] if the future panicked (the loop is unharmed).
    ///
    /// # Examples
    /// ```
    /// # #[cfg(feature = "tokio")] {
    /// use aiothreads::SyncAwaitError;
    ///
    /// let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    /// let lp = aiothreads::Loop::from(rt.handle().clone());
    /// // On the loop's own thread: refused, not hung.
    /// rt.block_on(async {
    ///     let r = lp.try_sync_await(async { 1 });
    ///     assert!(matches!(r, Err(SyncAwaitError::WouldDeadlock)));
    /// });
    /// // The runtime goes away while a thread waits: an error, not a hang.
    /// let waiter = std::thread::spawn(move || {
    ///     // `async` block: the sleep is created on the loop, where tokio's context is.
    ///     lp.try_sync_await(async { tokio::time::sleep(std::time::Duration::from_secs(3600)).await })
    /// });
    /// rt.block_on(async { tokio::time::sleep(std::time::Duration::from_millis(20)).await });
    /// drop(rt);
    /// assert!(matches!(waiter.join().unwrap(), Err(SyncAwaitError::LoopGone)));
    /// # }
    /// ```
    pub fn try_sync_await<F>(&self, fut: F) -> Result<F::Output, SyncAwaitError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        check_may_block(Some(self))?;
        #[cfg(feature = "tokio")]
        if let Some(handle) = self.tokio_handle() {
            return tokio_hop(handle, fut);
        }
        let (tx, rx) = oneshot::<Result<F::Output, Box<dyn Any + Send>>>();
        let mut context = ContextSnapshot::capture();
        let task = async move {
            let mut fut = pin!(fut);
            let output = poll_fn(|cx| {
                context.enter(
                    || match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
                        Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
                        Ok(Poll::Pending) => Poll::Pending,
                        Err(payload) => Poll::Ready(Err(payload)),
                    },
                )
            })
            .await;
            // The waiter may not be there any more only if it panicked; nothing to do then.
            let _ = tx.send(output);
            // Dropped without reaching here (loop shutdown): `tx` abandons the slot and the
            // waiter gets `SenderGone`.
        };
        self.spawn(task).map_err(|_| SyncAwaitError::LoopGone)?;
        let result = wait_here(&mut { rx });
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(payload)) => Err(SyncAwaitError::Panicked(payload)),
            Err(_) => Err(SyncAwaitError::LoopGone),
        }
    }
}

/// The hop to a tokio loop in one allocation (tokio's task): the waiting thread polls the
/// task's own `JoinHandle` (allowed from any thread) instead of a oneshot of ours. tokio
/// catches a panic of the future (re-raised here with its payload) and cancels the task when
/// the runtime shuts down (reported as `LoopGone`).
#[cfg(feature = "tokio")]
fn tokio_hop<F>(handle: &tokio::runtime::Handle, fut: F) -> Result<F::Output, SyncAwaitError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let task = ContextSnapshot::capture().wrap(fut);
    let result = wait_here(&mut handle.spawn(task));
    match result {
        Ok(value) => Ok(value),
        Err(e) if e.is_panic() => Err(SyncAwaitError::Panicked(e.into_panic())),
        Err(_) => Err(SyncAwaitError::LoopGone),
    }
}

/// Blocks this thread until `fut` (a handle on the loop's work) is ready: `block_on`'s loop
/// (spin for the crate's budget, then park; polls after the first outside tokio's budget),
/// with no misuse check of its own (the caller made it).
fn wait_here<F: Future + Unpin>(fut: &mut F) -> F::Output {
    match block_on_checked(fut, || Ok(())) {
        Ok(out) => out,
        Err(never) => unreachable!("no check was asked for: {never:?}"),
    }
}
