//! The one misuse check of every blocking entry point: would blocking *this* thread wait for
//! work that only this thread can do?
//!
//! Every call that parks a thread until something async happens asks here first, at the
//! moment it would actually park (a call that can finish without waiting never pays for the
//! check):
//!
//! | entry point | waits for | check |
//! |---|---|---|
//! | [`Loop::try_sync_await`] (and `sync_await`, `wait_coroutine`, `sync_wait_coroutine`, `Loop::sync_await` through it) | the given / current loop | [`check_may_block`]`(Some(&lp))` |
//! | `sync_await` with no loop known (falls back to `block_on`) | a future run on this thread | [`check_may_block`]`(None)` when the first poll is pending |
//! | the public `block_on` | a future run on this thread | [`check_block_on`] when the first poll is pending |
//! | `blocking_iter`'s `next()` | the loop driving the stream (or this thread, with no loop) | [`check_may_block`] when the ring is empty |
//! | `ThreadSender::put` on a full channel | the task polling the receiver | [`ReceiverSeat::check_may_block`] |
//!
//! A refusal is [`WouldDeadlock`]; the panicking forms panic with [`REASON`], the same text
//! everywhere (it is also `SyncAwaitError::WouldDeadlock`'s `Display`).
//!
//! A `join`-style blocking wait on a job handle should call [`check_may_block`] with the loop
//! it would wait for (`None` if it drives the wait itself with `block_on`) before it parks.

use core::cell::Cell;
use core::fmt;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::loop_handle::{self, Loop};

/// The reason of every `WouldDeadlock` refusal: the panic message of the panicking forms and
/// the `Display` of [`SyncAwaitError::WouldDeadlock`](crate::SyncAwaitError::WouldDeadlock).
pub(crate) const REASON: &str =
    "aiothreads: this thread drives the event loop that this blocking call waits for; blocking \
     it would wait for work that only this thread can do. Use `.await` here, or make the \
     blocking call from a `threaded` worker or a `spawn_blocking` thread";

/// A blocking wait refused because this thread is the one that would have to make progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WouldDeadlock;

impl WouldDeadlock {
    /// Panics with [`REASON`], blaming the caller's caller.
    #[track_caller]
    pub(crate) fn raise(self) -> ! {
        panic!("{REASON}")
    }
}

impl fmt::Display for WouldDeadlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REASON)
    }
}

/// Whether the current thread may block until something happens on `lp`.
///
/// - `Some(lp)`: the wait is for a task on `lp`; refused when this thread drives `lp`
///   ([`Loop::drives_current_thread`]: a tokio scheduler thread of that runtime, or a thread
///   that entered `lp` with [`Loop::enter`]).
/// - `None`: the wait is driven on this thread with `block_on` (no loop known); refused when
///   this thread drives *some* loop (a tokio scheduler thread, or one that entered a loop),
///   whose tasks the future may be waiting for.
///
/// Cost: a thread-local read for marked loops; for tokio, `Handle::try_current` and one poll
/// of `yield_now` with a flag waker (one small allocation). Call it only when the caller is
/// about to park, not per item.
///
/// # Errors
/// [`WouldDeadlock`] when blocking here could never end.
pub(crate) fn check_may_block(lp: Option<&Loop>) -> Result<(), WouldDeadlock> {
    let drives = match lp {
        Some(lp) => lp.drives_current_thread(),
        None => loop_handle::drives_some_loop(),
    };
    if drives {
        Err(WouldDeadlock)
    } else {
        Ok(())
    }
}

/// Whether the public `block_on` may park this thread: refused on a thread that runs a tokio
/// runtime's scheduler (where tokio's own `block_on` refuses too). Threads that
/// entered a loop are not refused: `block_on` may be what drives their executor.
///
/// # Errors
/// [`WouldDeadlock`] on a tokio scheduler thread.
pub(crate) fn check_block_on() -> Result<(), WouldDeadlock> {
    if loop_handle::runs_tokio_scheduler() {
        Err(WouldDeadlock)
    } else {
        Ok(())
    }
}

/// A small number naming the current thread, never 0 (0 if the thread's locals are gone,
/// which then matches nothing).
fn thread_token() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    thread_local! {
        static TOKEN: Cell<usize> = const { Cell::new(0) };
    }
    TOKEN
        .try_with(|t| {
            if t.get() == 0 {
                t.set(NEXT.fetch_add(1, Ordering::Relaxed));
            }
            t.get()
        })
        .unwrap_or(0)
}

/// Where the async side of a channel last waited: the thread that last registered the
/// receiver's waker (polled it and found nothing). Shared by the two halves.
///
/// The receiver records only on a poll that returns `Pending` (the slow path, which has just
/// registered a waker anyway): a load and, when the thread changed, a store. The sender reads
/// it only when a `put` is about to park on a full channel.
#[derive(Debug, Default)]
pub(crate) struct ReceiverSeat {
    /// [`thread_token`] of the thread of the last pending poll; 0: never polled pending.
    thread: AtomicUsize,
}

impl ReceiverSeat {
    /// Called by the receiver after a poll that returned `Pending`.
    pub(crate) fn record(&self) {
        let me = thread_token();
        // Relaxed: the sender compares with its own token, and a thread always sees its own
        // latest store; another thread's token only ever means "not this thread".
        if self.thread.load(Ordering::Relaxed) != me {
            self.thread.store(me, Ordering::Relaxed);
        }
    }

    /// Whether the sender may block on a full channel here: refused when the receiver last
    /// waited on this very thread, i.e. the task that would drain the channel is run by the
    /// thread that would block.
    ///
    /// A receiver moved to another thread after waiting here, and not polled there yet, is
    /// still seen here (a false refusal); a receiver that never waited is never seen.
    ///
    /// # Errors
    /// [`WouldDeadlock`] when the receiver last waited on this thread.
    pub(crate) fn check_may_block(&self) -> Result<(), WouldDeadlock> {
        let me = thread_token();
        if me != 0 && self.thread.load(Ordering::Relaxed) == me {
            Err(WouldDeadlock)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seat_refuses_only_its_own_thread() {
        let seat = std::sync::Arc::new(ReceiverSeat::default());
        assert_eq!(seat.check_may_block(), Ok(()), "never polled: allowed");
        seat.record();
        assert_eq!(seat.check_may_block(), Err(WouldDeadlock));
        let other = std::sync::Arc::clone(&seat);
        std::thread::spawn(move || {
            assert_eq!(other.check_may_block(), Ok(()), "another thread may block");
            other.record();
        })
        .join()
        .unwrap();
        assert_eq!(seat.check_may_block(), Ok(()), "the receiver moved away");
    }

    #[test]
    fn thread_tokens_differ() {
        let here = thread_token();
        assert_ne!(here, 0);
        assert_eq!(here, thread_token());
        let there = std::thread::spawn(thread_token).join().unwrap();
        assert_ne!(here, there);
    }

    #[test]
    fn no_loop_no_refusal_on_a_plain_thread() {
        assert_eq!(check_may_block(None), Ok(()));
        let lp = Loop::from_spawner(drop);
        assert_eq!(check_may_block(Some(&lp)), Ok(()));
        let _driver = lp.enter();
        assert_eq!(check_may_block(Some(&lp)), Err(WouldDeadlock));
        assert_eq!(check_may_block(None), Err(WouldDeadlock));
    }

    #[test]
    fn message_is_the_reason() {
        let p = std::panic::catch_unwind(|| WouldDeadlock.raise()).unwrap_err();
        assert_eq!(p.downcast_ref::<String>().map(String::as_str), Some(REASON));
        assert_eq!(WouldDeadlock.to_string(), REASON);
    }
}
