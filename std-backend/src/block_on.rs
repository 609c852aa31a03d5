//! [`block_on`]: a minimal executor for the current thread.

use core::future::{Future, IntoFuture};
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use aiothreads_core::park::{poll_with_lazy_waker, LazyWaker};

use crate::misuse::{check_block_on, WouldDeadlock};
use crate::parker::ThreadParker;

/// A thread's parker and the waker made from it, cached so that a `block_on` allocates
/// nothing after the first one on a thread.
struct Cached {
    parker: ThreadParker,
    waker: Waker,
    /// Whether a wait on this thread is using this parker now. A nested wait (a `block_on`
    /// inside a future polled by `block_on`) makes its own parker instead: each level then
    /// has its own `notified` flag and no level can swallow another's wake-up. Atomic because
    /// the claim may be made by another thread (a scoped thread that clones the waker during
    /// the first poll, see [`FirstPoll`]).
    in_use: AtomicBool,
}

impl Cached {
    fn new() -> Self {
        let parker = ThreadParker::new();
        Self::with(parker)
    }

    fn with(parker: ThreadParker) -> Self {
        let waker = parker.waker();
        Self {
            parker,
            waker,
            in_use: AtomicBool::new(false),
        }
    }
}

thread_local! {
    /// The thread's parker and waker, made on first use and kept for the thread's life.
    static CACHED: Cached = Cached::new();
}

/// The parker a wait uses once its future has kept or needs a waker: the thread's cached one
/// (released again when the claim is dropped), or one of its own if an enclosing wait holds
/// the cached one.
enum Claim<'a> {
    Cached(&'a Cached),
    Own(Cached),
}

impl<'a> Claim<'a> {
    /// Claims `cached` if no other wait of its thread holds it. Callable from any thread.
    fn new(cached: &'a Cached) -> Self {
        // Acquire/Release: a claim made after another wait's release sees everything that
        // wait did with the parker (the flag itself has its own protocol; this is belt and
        // braces for a claim made from a scoped thread).
        if cached.in_use.swap(true, Ordering::Acquire) {
            Claim::Own(Cached::with(cached.parker.sibling()))
        } else {
            Claim::Cached(cached)
        }
    }

    fn parts(&self) -> &Cached {
        match self {
            Claim::Cached(c) => c,
            Claim::Own(c) => c,
        }
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if let Claim::Cached(c) = self {
            c.in_use.store(false, Ordering::Release);
        }
    }
}

/// The state behind the waker of a wait's first poll, on the waiting thread's stack.
///
/// A future that is ready at its first poll never keeps its waker, so the first poll gets a
/// waker that costs nothing to make: a pointer to this struct (the core's
/// [`poll_with_lazy_waker`]). Only if the future clones it
/// (to be woken later) is a real waker claimed ([`Claim`]) and the clone made from it; a
/// wake through the borrowed waker during the poll (a future that yields) sets `woken`.
/// Cost of a ready `block_on`: one thread-local access and three stores, no atomic
/// read-modify-write (the claim's swap happens only when the future keeps its waker).
struct FirstPoll<'a> {
    cached: &'a Cached,
    /// Woken through the borrowed waker during the first poll.
    woken: AtomicBool,
    /// The parker claimed by the first clone (or after the poll, if it was pending).
    claim: OnceLock<Claim<'a>>,
}

impl<'a> FirstPoll<'a> {
    fn new(cached: &'a Cached) -> Self {
        Self {
            cached,
            woken: AtomicBool::new(false),
            claim: OnceLock::new(),
        }
    }

    fn claim(&self) -> &Claim<'a> {
        self.claim.get_or_init(|| Claim::new(self.cached))
    }
}

impl LazyWaker for FirstPoll<'_> {
    /// A clone of the first poll's waker is a clone of the claimed parker's waker.
    fn waker(&self) -> &Waker {
        &self.claim().parts().waker
    }

    fn woken(&self) {
        // Release: pairs with the Acquire load after the poll (a scoped thread's wake).
        self.woken.store(true, Ordering::Release);
    }
}

/// Polls `future` to completion on this thread, with `cached` as the thread's parker: the
/// first poll with a [`FirstPoll`] waker, every later one with the claimed parker's waker.
fn wait<F: Future>(
    cached: &Cached,
    mut future: Pin<&mut F>,
    may_block: &mut Option<impl FnOnce() -> Result<(), WouldDeadlock>>,
) -> Result<F::Output, WouldDeadlock> {
    let first = FirstPoll::new(cached);
    let mut ready = poll_with_lazy_waker(&first, future.as_mut());
    if let Poll::Ready(output) = ready {
        return Ok(output);
    }
    // Acquire: pairs with the Release store in `FirstPoll::woken`.
    let mut woken = first.woken.load(Ordering::Acquire);
    let parts = first.claim().parts();
    let mut cx = Context::from_waker(&parts.waker);
    // Every other poll runs outside tokio's budget (at once if the first found it spent):
    // this thread is no task, and a budget spent by the future it blocks must not keep them
    // `Pending` (see `coop`).
    if crate::coop::budget_spent() {
        ready = crate::coop::poll_unconstrained(future.as_mut(), &mut cx);
    }
    loop {
        if let Poll::Ready(output) = ready {
            return Ok(output);
        }
        if let Some(check) = may_block.take() {
            check()?;
        }
        if !core::mem::take(&mut woken) {
            parts.parker.park_after_spin(crate::backoff::spin_budget());
        }
        ready = crate::coop::poll_unconstrained(future.as_mut(), &mut cx);
    }
}

/// Blocks the current thread until `future` completes, and returns its output.
///
/// A minimal executor: the future is pinned on this stack frame and polled on this thread;
/// while it is pending, the thread spins briefly on its wake-up flag (about one measured
/// sleep/wake cycle of this machine, see [`Builder::spin`](crate::Builder::spin)) and then
/// parks until the future's waker is woken. The waker is made once per thread and cached, so a
/// `block_on` allocates nothing after the first one on a thread, and nothing per poll. The
/// first poll gets a waker that is only lent (no reference count is taken): a future ready at
/// once costs one thread-local access and the poll; one that keeps its waker gets a clone of
/// the thread's cached one.
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
    match CACHED.try_with(|cached| wait(cached, future.as_mut(), &mut may_block)) {
        Ok(out) => out,
        // The thread's locals are being destroyed: a parker of its own (one allocation).
        Err(_) => wait(&Cached::new(), future.as_mut(), &mut may_block),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;

    /// The first poll's waker, cloned on a scoped thread and by the polling thread, woken
    /// by reference and through clones, with the thread's parker then free again (also run
    /// under Miri: the lent waker's vtable is the core's one `unsafe` of this path).
    #[test]
    fn first_poll_waker_clones_and_wakes() {
        let mut polls = 0;
        let out = block_on(core::future::poll_fn(|cx| {
            polls += 1;
            match polls {
                1 => {
                    let waker = cx.waker();
                    std::thread::scope(|s| {
                        // The clone is the point: a claim made from another thread.
                        #[allow(clippy::waker_clone_wake)]
                        s.spawn(|| waker.clone().wake());
                    });
                    Poll::Pending
                }
                2 => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                _ => Poll::Ready(polls),
            }
        }));
        assert_eq!(out, 3);
        let mut first = true;
        let out = block_on(core::future::poll_fn(|cx| {
            if core::mem::take(&mut first) {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready(1)
        }));
        assert_eq!(out, 1);
        assert!(!CACHED.with(|c| c.in_use.load(Ordering::Relaxed)));
    }

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
