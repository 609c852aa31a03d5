//! [`block_on`]: a minimal executor for the current thread.

use core::cell::Cell;
use core::future::{Future, IntoFuture};
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use std::pin::pin;

use crate::parker::ThreadParker;

/// A thread's parker and the waker made from it, cached so that a `block_on` allocates
/// nothing after the first one on a thread.
struct Cached {
    parker: ThreadParker,
    waker: Waker,
}

impl Cached {
    fn new() -> Self {
        let parker = ThreadParker::new();
        let waker = parker.waker();
        Self { parker, waker }
    }
}

thread_local! {
    /// The thread's cached parker. Taken out while a `block_on` runs, so a nested `block_on`
    /// finds it empty and makes its own: each level then has its own `notified` flag and no
    /// level can swallow another's wake-up.
    static CACHED: Cell<Option<Cached>> = const { Cell::new(None) };
}

/// Puts the parker back into the thread's cache when the `block_on` ends (also on panic).
struct Lease(Option<Cached>);

impl Lease {
    fn take() -> Self {
        let cached = CACHED.try_with(Cell::take).ok().flatten();
        Self(Some(cached.unwrap_or_else(Cached::new)))
    }

    fn get(&self) -> &Cached {
        // `Some` from `take` until `drop`.
        self.0.as_ref().expect("lease is filled until dropped")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // `try_with`: during thread-local destruction the parker is simply dropped.
        let _ = CACHED.try_with(|c| c.set(self.0.take()));
    }
}

/// How long a blocked `block_on` (or a worker in `sync_await`) spins on its wake-up flag
/// before it parks the thread. A wake-up that arrives within this window costs no futex
/// wait/wake pair; an idle wait burns at most this much CPU.
pub(crate) const SPIN: Duration = Duration::from_micros(20);

/// Runs `f` with the thread's cached parker and its waker (or fresh ones if the cache is in
/// use by an enclosing wait).
pub(crate) fn with_parker<R>(f: impl FnOnce(&ThreadParker, &Waker) -> R) -> R {
    let lease = Lease::take();
    let cached = lease.get();
    f(&cached.parker, &cached.waker)
}

/// Blocks the current thread until `future` completes, and returns its output.
///
/// A minimal executor: the future is pinned on this stack frame and polled on this thread;
/// while it is pending, the thread spins briefly on its wake-up flag (up to ~20 µs) and then
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
/// # Examples
/// ```
/// let answer = aiothreads::block_on(async { 6 * 7 });
/// assert_eq!(answer, 42);
///
/// // Waiting for another thread:
/// let (tx, rx) = aiothreads::core::slot::oneshot();
/// std::thread::spawn(move || tx.send("from a thread").unwrap());
/// assert_eq!(aiothreads::block_on(rx), Ok("from a thread"));
/// ```
pub fn block_on<F: IntoFuture>(future: F) -> F::Output {
    let mut future = pin!(future.into_future());
    let lease = Lease::take();
    let cached = lease.get();
    let mut cx = Context::from_waker(&cached.waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        cached.parker.park_after_spin(SPIN);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
