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

/// Items a stream delivers in a row before it yields to the executor once (a self-wake and one
/// `Pending`), outside tokio: 10–40 µs of a fast stream on an AMD EPYC VM (5–20 ns per item
/// through an executor), far below a timer tick, and one self-wake per 2 048 items (4.9e-4 per
/// item), so that the wake-ups a stream costs stay under 1e-3 per item with this yield
/// included. The same for a [`FromThreadChannel`](crate::FromThreadChannel)'s receiver.
///
/// Inside a tokio runtime (feature `tokio`) a stream also spends tokio's own budget, one unit
/// per item as tokio's channels do (128 per task poll), so tokio's yield comes first: the
/// task's other tokio resources share that budget, and a task woken on the same runtime waits
/// for 128 items, not 2 048 (PERFORMANCE.md, `interference/stream`). The price is tokio's
/// channels' too: a consumer that does nothing but drain the stream yields every 128 items
/// (the demo's 100 M-item stream on an AMD EPYC VM: a median of 36 against 61 M items/s with
/// 2 048, on 2026-12-02; 57.7 M items/s in one run of 2026-12-03, after the slow path's
/// rework).
pub(crate) const STREAM_BUDGET: u32 = 2048;

/// The cooperative budget of a stream's consumer (an `IterCall`, a `FromThreadChannel`'s
/// receiver), kept in the stream itself: no thread-local per item outside tokio.
///
/// A *run* is the items a stream delivers between two `Pending`s. Outside tokio a run ends
/// after [`STREAM_BUDGET`] items with a self-wake and one `Pending`. Inside a tokio runtime
/// (looked up once per run, when it starts) every item also spends a unit of tokio's budget.
///
/// The consumer's fast path asks [`fast`](Self::fast) and, after taking an item without any
/// other check, calls [`delivered`](Self::delivered); its slow path polls the queue between
/// [`begin`](Self::begin) and [`end`](Self::end).
#[derive(Debug)]
pub(crate) struct RunBudget {
    /// Items delivered in this run.
    streak: u32,
    /// The fast path may deliver items while `streak` is below this: [`STREAM_BUDGET`] during
    /// a run outside tokio; 0 before a run has started (the slow path then looks for a tokio
    /// runtime) and inside tokio (every item spends tokio's budget on the slow path). Without
    /// the `tokio` feature it stays at [`STREAM_BUDGET`].
    fast_limit: u32,
    /// Whether this run is polled inside a tokio runtime.
    #[cfg(feature = "tokio")]
    in_tokio: bool,
    /// The consumer closed the stream ([`stop`](Self::stop)): it delivers nothing more.
    stopped: bool,
}

impl RunBudget {
    pub(crate) const fn new() -> Self {
        Self {
            streak: 0,
            #[cfg(feature = "tokio")]
            fast_limit: 0,
            #[cfg(not(feature = "tokio"))]
            fast_limit: STREAM_BUDGET,
            #[cfg(feature = "tokio")]
            in_tokio: false,
            stopped: false,
        }
    }

    /// The consumer closed the stream: from now on the fast path is off and
    /// [`begin`](Self::begin) ends the stream, whatever is still queued (a closed stream
    /// ends, even while its `close()` future was dropped before it completed).
    pub(crate) fn stop(&mut self) {
        self.stopped = true;
        self.fast_limit = 0;
    }

    /// Whether the fast path may deliver an item now. Cost: a compare.
    #[inline(always)]
    pub(crate) fn fast(&self) -> bool {
        self.streak < self.fast_limit
    }

    /// The fast path delivered an item.
    #[inline(always)]
    pub(crate) fn delivered(&mut self) {
        self.streak += 1;
    }

    /// The stream returns `Pending`: the run ends, and the next poll takes the slow path,
    /// which starts a new run (and, with the `tokio` feature, looks for a runtime).
    #[inline(always)]
    fn end_run(&mut self) {
        self.streak = 0;
        #[cfg(feature = "tokio")]
        {
            self.fast_limit = 0;
        }
    }

    /// After [`STREAM_BUDGET`] items in a row: wakes the task and returns `true` once (the
    /// caller returns `Pending`), and a new run starts.
    #[inline(always)]
    fn own_budget_spent(&mut self, cx: &Context<'_>) -> bool {
        if self.streak < STREAM_BUDGET {
            return false;
        }
        self.end_run();
        cx.waker().wake_by_ref();
        true
    }

    /// The slow path, before the queue is polled: `Pending` when the run's budget (or,
    /// inside a tokio runtime, tokio's) is spent, the task then woken to poll again;
    /// `Ready(None)` once the consumer [stopped](Self::stop) the stream (it ends); else the
    /// ticket to hand to [`end`](Self::end) with the queue's poll.
    ///
    /// Inside a tokio runtime each item also spends a unit of tokio's task budget, as tokio's
    /// own channels do (a thread-local access per item), and tokio's yield comes first (128
    /// units per task poll); the own budget stays as the backstop where tokio sets no budget.
    /// The queue is polled by the caller between `begin` and `end`, so that its item is not
    /// moved through this type (a stream of 1 MiB items needs every copy less of the
    /// consumer's stack it can get).
    #[inline(always)]
    pub(crate) fn begin(&mut self, cx: &mut Context<'_>) -> Poll<Option<Ticket>> {
        if self.stopped {
            return Poll::Ready(None);
        }
        #[cfg(feature = "tokio")]
        let unit = {
            if self.streak == 0 {
                self.in_tokio = in_tokio_runtime();
                self.fast_limit = if self.in_tokio { 0 } else { STREAM_BUDGET };
            }
            if self.in_tokio {
                match tokio::task::coop::poll_proceed(cx) {
                    Poll::Ready(unit) => Some(unit),
                    Poll::Pending => {
                        // tokio woke the task: it yields once, like a tokio resource.
                        self.end_run();
                        return Poll::Pending;
                    }
                }
            } else {
                None
            }
        };
        if self.own_budget_spent(cx) {
            return Poll::Pending;
        }
        Poll::Ready(Some(Ticket {
            #[cfg(feature = "tokio")]
            unit,
        }))
    }

    /// The slow path, after the queue was polled: an item counts towards the run (and spends
    /// tokio's unit); `Pending` ends the run; the end (`Ready(None)`) changes nothing.
    #[inline(always)]
    pub(crate) fn end<T>(&mut self, polled: &Poll<Option<T>>, ticket: Ticket) {
        match polled {
            Poll::Ready(Some(_)) => {
                #[cfg(feature = "tokio")]
                if let Some(unit) = ticket.unit {
                    unit.made_progress();
                }
                self.streak += 1;
            }
            Poll::Ready(None) => {}
            Poll::Pending => self.end_run(),
        }
        #[cfg(not(feature = "tokio"))]
        let _ = ticket;
    }
}

/// What [`RunBudget::begin`] hands to [`RunBudget::end`]: inside tokio, the unit of tokio's
/// budget taken for this poll (given back if no item comes).
#[must_use]
pub(crate) struct Ticket {
    #[cfg(feature = "tokio")]
    unit: Option<tokio::task::coop::RestoreOnPending>,
}

/// Whether this thread runs inside a tokio runtime (a task or `block_on`): once per run of a
/// stream's items, out of line (a thread-local access and a handle's reference count).
#[cfg(feature = "tokio")]
#[cold]
#[inline(never)]
fn in_tokio_runtime() -> bool {
    tokio::runtime::Handle::try_current().is_ok()
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
