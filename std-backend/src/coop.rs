//! Cooperative scheduling: a handle or stream that is ready at once still gives the executor
//! its turn now and then.
//!
//! A task that awaits calls one after another, or drains a fast stream, may find every result
//! already there: each `poll` returns `Ready`, the task never returns `Pending`, and on a
//! single-threaded executor nothing else runs (timers fire late, other tasks starve). tokio
//! solves this for its own resources with a per-task budget; this module gives ours the same
//! manners on every executor:
//!
//! - **Inside a tokio task** (feature `tokio`), our handles and streams spend tokio's own
//!   budget (`tokio::task::coop::poll_proceed`): they behave like any tokio resource.
//! - **Elsewhere**, a per-thread budget of [`BUDGET`] immediate completions: once it is spent,
//!   the next poll wakes its own task and returns `Pending` once, and the budget is refilled.
//!   Any `Pending` of ours refills it too (the task yields anyway).
//!
//! Cost per poll: one thread-local read and write (and, with the `tokio` feature, tokio's
//! thread-local task id check); no atomic operation.

use core::cell::Cell;
use core::task::{Context, Poll};

/// Immediate completions a thread may deliver before one forced yield (tokio's task budget).
pub(crate) const BUDGET: u32 = 128;

thread_local! {
    /// Completions left before the next forced yield on this thread.
    static LEFT: Cell<u32> = const { Cell::new(BUDGET) };
}

/// A unit of budget taken by a poll. Call [`made_progress`](Self::made_progress) when the poll
/// returns `Ready`; dropping it otherwise gives the unit back.
#[must_use]
pub(crate) struct Unit {
    #[cfg(feature = "tokio")]
    tokio: Option<tokio::task::coop::RestoreOnPending>,
}

impl Unit {
    /// The poll delivered something: the unit stays spent.
    pub(crate) fn made_progress(self) {
        #[cfg(feature = "tokio")]
        if let Some(restore) = &self.tokio {
            restore.made_progress();
        }
    }
}

/// Takes a unit of budget, or wakes the task and returns `Pending` when the budget is spent.
pub(crate) fn poll_proceed(cx: &mut Context<'_>) -> Poll<Unit> {
    #[cfg(feature = "tokio")]
    if tokio::task::try_id().is_some() {
        return match tokio::task::coop::poll_proceed(cx) {
            Poll::Ready(restore) => Poll::Ready(Unit {
                tokio: Some(restore),
            }),
            Poll::Pending => Poll::Pending,
        };
    }
    let spent = LEFT
        .try_with(|left| match left.get() {
            0 => {
                left.set(BUDGET);
                true
            }
            n => {
                left.set(n - 1);
                false
            }
        })
        .unwrap_or(false);
    if spent {
        cx.waker().wake_by_ref();
        return Poll::Pending;
    }
    Poll::Ready(Unit {
        #[cfg(feature = "tokio")]
        tokio: None,
    })
}

/// Polls `future` once outside tokio's cooperative budget, for the loops that block a thread
/// until a future is ready (`block_on`, the `sync_await` hop, `blocking_iter` without a loop).
///
/// The thread that blocks is no task: the budget it may carry belongs to the future it
/// blocks (the future of a multi-thread runtime's `block_on`, say), which cannot yield while
/// it waits. A spent budget would make every tokio resource polled here (tokio's
/// `JoinHandle`, our streams) return `Pending` and wake itself at once, for ever: the loop
/// would spin instead of waiting. Without the `tokio` feature, a plain poll. Cost: tokio's
/// thread-local budget saved and restored around the poll.
pub(crate) fn poll_unconstrained<F: core::future::Future + ?Sized>(
    future: core::pin::Pin<&mut F>,
    cx: &mut Context<'_>,
) -> Poll<F::Output> {
    #[cfg(feature = "tokio")]
    {
        use core::future::Future;
        let mut unconstrained = tokio::task::coop::unconstrained(future);
        core::pin::Pin::new(&mut unconstrained).poll(cx)
    }
    #[cfg(not(feature = "tokio"))]
    future.poll(cx)
}

/// Whether tokio's budget on this thread is spent: a blocking wait whose first poll returned
/// `Pending` then polls again at once, outside it ([`poll_unconstrained`]), instead of
/// waiting for a wake-up that tokio may defer. `false` without the `tokio` feature.
pub(crate) fn budget_spent() -> bool {
    #[cfg(feature = "tokio")]
    return !tokio::task::coop::has_budget_remaining();
    #[cfg(not(feature = "tokio"))]
    false
}

/// One of our polls returned `Pending`: the task yields, so the thread's budget is refilled.
pub(crate) fn refill() {
    let _ = LEFT.try_with(|left| left.set(BUDGET));
}

#[cfg(all(test, not(aiothreads_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Wake, Waker};

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn yields_once_per_budget_and_wakes_itself() {
        std::thread::spawn(|| {
            let count = Arc::new(Count(AtomicUsize::new(0)));
            let waker = Waker::from(count.clone());
            let mut cx = Context::from_waker(&waker);
            let mut pending = 0;
            for _ in 0..(BUDGET as usize + 1) * 3 {
                match poll_proceed(&mut cx) {
                    Poll::Ready(unit) => unit.made_progress(),
                    Poll::Pending => pending += 1,
                }
            }
            assert_eq!(pending, 3);
            assert_eq!(
                count.0.load(Ordering::SeqCst),
                3,
                "each yield wakes its task"
            );
        })
        .join()
        .unwrap();
    }
}
