//! [`block_on`]: a minimal executor for the current thread.

use core::cell::Cell;
use core::future::{Future, IntoFuture};
use core::task::{Context, Poll, Waker};
use std::pin::pin;

use crate::misuse::{check_block_on, WouldDeadlock};
use crate::parker::ThreadParker;

/// A thread's parker and the waker made from it, cached so that a `block_on` allocates
/// nothing after the first one on a thread.
struct Cached {
    parker: ThreadParker,
    waker: Waker,
    /// Whether a wait on this thread is using this parker now. A nested wait (a `block_on`
    /// inside a future polled by `block_on`) makes its own parker instead: each level then
    /// has its own `notified` flag and no level can swallow another's wake-up.
    in_use: Cell<bool>,
}

impl Cached {
    fn new() -> Self {
        let parker = ThreadParker::new();
        let waker = parker.waker();
        Self {
            parker,
            waker,
            in_use: Cell::new(false),
        }
    }
}

thread_local! {
    /// The thread's parker and waker, made on first use and kept for the thread's life.
    static CACHED: Cached = Cached::new();
}

/// Clears `in_use` when the outermost wait ends (also on panic).
struct Release<'a>(&'a Cell<bool>);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

/// Runs `f` with the thread's cached parker and its waker (or fresh ones if the cache is in
/// use by an enclosing wait, or the thread's locals are being destroyed).
///
/// One thread-local access and two stores for the cached case: that is all the overhead a
/// `block_on` of a ready future has besides the poll.
pub(crate) fn with_parker<R>(f: impl FnOnce(&ThreadParker, &Waker) -> R) -> R {
    let mut f = Some(f);
    let cached = CACHED.try_with(|c| {
        if c.in_use.replace(true) {
            return None;
        }
        let _release = Release(&c.in_use);
        f.take().map(|f| f(&c.parker, &c.waker))
    });
    match (cached, f) {
        (Ok(Some(out)), _) => out,
        // Nested, or thread-locals gone: a parker of our own (one allocation).
        (_, Some(f)) => {
            let own = Cached::new();
            f(&own.parker, &own.waker)
        }
        (_, None) => unreachable!("`f` ran but returned nothing"),
    }
}

/// Blocks the current thread until `future` completes, and returns its output.
///
/// A minimal executor: the future is pinned on this stack frame and polled on this thread;
/// while it is pending, the thread spins briefly on its wake-up flag (about one measured
/// sleep/wake cycle of this machine, see [`Builder::spin`](crate::Builder::spin)) and then
/// parks until the future's waker is woken. The waker is made once per thread and cached, so a
/// `block_on` allocates nothing after the first one on a thread, and nothing per poll.
///
/// # No reactor
/// `block_on` drives *only* the future you give it. It has no I/O reactor and no timer: a
/// future that needs one — `tokio::time::sleep`, tokio sockets, anything that panics with
/// "there is no reactor running" — must run on its runtime. From a thread, send it there
/// with [`sync_await`](crate::sync_await) or [`Loop::sync_await`](crate::Loop::sync_await),
/// which spawn it on the loop and wait for the result. Futures that only wait for other
/// threads (channels, `aiothreads` handles, oneshot slots, mutexes) work here.
///
/// # Nesting
/// A `block_on` inside a future polled by another `block_on` works (each level has its own
/// wake-up flag), but the outer future is frozen while the inner one runs: if the inner
/// future waits for something only the outer one would produce, the thread deadlocks. The
/// same holds for calling `block_on` on a thread that drives an executor: that executor's
/// other tasks do not run meanwhile.
///
/// # Panics
/// With the [`SyncAwaitError::WouldDeadlock`](crate::SyncAwaitError::WouldDeadlock) reason
/// (the message of every refused blocking call) if the future is pending at its first poll
/// and this thread runs a tokio runtime's scheduler (feature `tokio`: inside tokio's
/// `block_on` of a current-thread runtime, or in a task on a runtime worker), as tokio's own
/// `block_on` refuses there: the runtime's timers, I/O and tasks could not advance while this
/// thread waits. A future ready at once is not checked; tokio's `spawn_blocking` threads and
/// workers inside `block_in_place` are allowed. Other executors' threads are not checked
/// (`block_on` may itself be the thread's executor). A panic of the future propagates.
///
/// # Examples
/// ```
/// let answer = aiothreads::block_on(async { 6 * 7 });
/// assert_eq!(answer, 42);
///
/// // Waiting for another thread:
/// let (tx, rx) = aiothreads::aiothreads_core::slot::oneshot();
/// std::thread::spawn(move || tx.send("from a thread").unwrap());
/// assert_eq!(aiothreads::block_on(rx), Ok("from a thread"));
/// ```
#[track_caller]
pub fn block_on<F: IntoFuture>(future: F) -> F::Output {
    match block_on_checked(future.into_future(), check_block_on) {
        Ok(output) => output,
        Err(refused) => refused.raise(),
    }
}

/// [`block_on`] for the blocking entry points that may be misused: polls `future` once, and
/// if it is pending asks `may_block` before the thread parks for the first time. A future
/// that is ready at once never pays for the check.
///
/// # Errors
/// What `may_block` returns, with the future dropped unfinished.
pub(crate) fn block_on_checked<F: Future>(
    future: F,
    may_block: impl FnOnce() -> Result<(), WouldDeadlock>,
) -> Result<F::Output, WouldDeadlock> {
    let mut future = pin!(future);
    let mut may_block = Some(may_block);
    with_parker(|parker, waker| {
        let mut cx = Context::from_waker(waker);
        // The first poll as is: a future ready at once pays nothing more. Every other poll
        // runs outside tokio's budget (at once if the first found it spent): this thread is no
        // task, and a budget spent by the future it blocks must not keep them `Pending` (see
        // `coop`).
        let mut ready = future.as_mut().poll(&mut cx);
        if ready.is_pending() && crate::coop::budget_spent() {
            ready = crate::coop::poll_unconstrained(future.as_mut(), &mut cx);
        }
        loop {
            if let Poll::Ready(output) = ready {
                return Ok(output);
            }
            if let Some(check) = may_block.take() {
                check()?;
            }
            parker.park_after_spin(crate::backoff::spin_budget());
            ready = crate::coop::poll_unconstrained(future.as_mut(), &mut cx);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;

    #[test]
    fn nested_block_on_keeps_outer_wakeups() {
        let (tx, rx) = aiothreads_core::slot::oneshot::<u32>();
        let out = block_on(async move {
            let t = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(5));
                tx.send(1).unwrap();
            });
            // The inner block_on sleeps past the send: the outer wake must not be lost.
            block_on(async {
                let (tx2, rx2) = aiothreads_core::slot::oneshot::<u32>();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(20));
                    tx2.send(2).unwrap();
                });
                rx2.await.unwrap()
            });
            let v = rx.await.unwrap();
            t.join().unwrap();
            v
        });
        assert_eq!(out, 1);
    }
}
